/* SPDX-License-Identifier: BSD-3-Clause */
/* HyperLogLog whose state is byte for byte Redis's dense HLL string (PFCOUNT/PFMERGE work). */
#ifndef TALLY_HLL_H
#define TALLY_HLL_H

#include <stddef.h>
#include <stdint.h>

/*
 * Redis 7 hyperloglog.c: a 16-byte header ("HYLL", encoding, 3 unused bytes, the cached
 * cardinality as 8 little-endian bytes whose top bit set means "stale"), then 16,384 6-bit
 * registers packed from the least significant bit of each byte up (register 0 is bits 0-5 of
 * byte 0, register 1 bits 6-7 of byte 0 and 0-3 of byte 1, ...). An element is hashed with
 * MurmurHash64A, seed 0xadc83b19: the low 14 bits pick the register, the position of the
 * lowest set bit of the other 50 (plus one, 51 if none) is the value; a register keeps the max.
 */
#define TALLY_HLL_P 14
#define TALLY_HLL_Q (64 - TALLY_HLL_P)
#define TALLY_HLL_REGISTERS (1u << TALLY_HLL_P)
#define TALLY_HLL_BITS 6
#define TALLY_HLL_REGISTER_MAX ((1u << TALLY_HLL_BITS) - 1)
#define TALLY_HLL_HDR_SIZE 16
#define TALLY_HLL_DENSE_SIZE (TALLY_HLL_HDR_SIZE + TALLY_HLL_REGISTERS * TALLY_HLL_BITS / 8)
#define TALLY_HLL_SEED 0xadc83b19ull
#define TALLY_HLL_DENSE 0
#define TALLY_HLL_SPARSE 1

/*
 * One distinct-count series: 12,304 bytes, always in Redis's dense encoding, so writing it
 * to Redis is writing `raw` as a string value (SET; PFMERGE then folds it into other keys)
 * and reading a key back is tally_hll_parse(). Dense is what tally writes because
 * it is fixed-size (sized at start, never grows), updated in place in O(1) on the per-record
 * path and merged register by register; Redis reads either encoding, never turns a dense key
 * back into a sparse one, and PFADD/PFMERGE keep working on it. One writer at a time.
 */
struct tally_hll {
	uint8_t raw[TALLY_HLL_DENSE_SIZE];
};

/* Redis's MurmurHash64A (MurmurHash2, 64-bit, endian-neutral). */
uint64_t tally_murmur64a(const void *key, size_t len, uint64_t seed);

/* An empty HLL: header "HYLL", dense, cached cardinality 0 (valid), every register 0. */
void tally_hll_init(struct tally_hll *h);

/* Add an element: 1 if a register grew (the cached cardinality is then marked stale), or 0. */
int tally_hll_add(struct tally_hll *h, const void *ele, size_t len);

/* Add tally's element for a record: its 8 value bytes as on the wire (v little-endian). */
int tally_hll_add_u64(struct tally_hll *h, uint64_t v);

/* The register a hash picks, into *idx, and the value it offers there (Redis's hllPatLen). */
static inline unsigned int
tally_hll_pattern(uint64_t hash, uint32_t *idx)
{
	/* The stop bit above the 50 bits makes an all-zero run count Q + 1. */
	uint64_t rest = (hash >> TALLY_HLL_P) | (1ull << TALLY_HLL_Q);

	*idx = (uint32_t)(hash & (TALLY_HLL_REGISTERS - 1));
	return (unsigned int)__builtin_ctzll(rest) + 1;
}

/*
 * The register tally's element v (its 8 bytes little-endian) goes to, into *idx, and the value
 * it offers there (1..51): what tally_hll_add_u64() raises that register to. Inline for the
 * per-record path: tally_murmur64a() of 8 bytes, one block and no tail.
 */
static inline unsigned int
tally_hll_pattern_u64(uint64_t v, uint32_t *idx)
{
	const uint64_t m = 0xc6a4a7935bd1e995ull;
	uint64_t h = TALLY_HLL_SEED ^ (8 * m), k = v * m;

	k ^= k >> 47;
	h ^= k * m;
	h *= m;
	h ^= h >> 47;
	h *= m;
	h ^= h >> 47;
	return tally_hll_pattern(h, idx);
}

/* Bytes of the sparse string of n registers at most (tally_hll_write_sparse()). */
#define TALLY_HLL_SPARSE_SIZE(n) (TALLY_HLL_HDR_SIZE + 3 * (size_t)(n) + 2)

/*
 * Write Redis's sparse HLL string of the registers in regs (n entries idx << 6 | value, idx
 * ascending and distinct, values 1..51; every other register 0) into buf, with the cached
 * cardinality marked stale. Its length; -ERANGE when a value is over 32 (sparse cannot hold
 * it: write the dense form), -ENOSPC when len is short (TALLY_HLL_SPARSE_SIZE(n) suffices).
 */
int tally_hll_write_sparse(const uint32_t *regs, uint32_t n, uint8_t *buf, size_t len);

/* Register idx (< TALLY_HLL_REGISTERS), 0..63. */
unsigned int tally_hll_register(const struct tally_hll *h, uint32_t idx);

/* Raise register idx to val (at most 63) if it is lower: 1 if it changed (cache stale). */
int tally_hll_update(struct tally_hll *h, uint32_t idx, unsigned int val);

/*
 * Raise register idx to val (at most 63) if it is lower, leaving the cached cardinality as it
 * is: for an HLL whose cache nobody reads before tally_hll_stale() marks it (tally's tables,
 * whose per-record update then touches the register's byte alone).
 */
void tally_hll_raise(struct tally_hll *h, uint32_t idx, unsigned int val);

/* Mark the cached cardinality stale (as any register change does in Redis). */
void tally_hll_stale(struct tally_hll *h);

/* Register-wise max of src into dst; dst's cached cardinality is marked stale (as PFMERGE). */
void tally_hll_merge(struct tally_hll *dst, const struct tally_hll *src);

/*
 * Merge a Redis HLL string (dense or sparse, e.g. a GET reply) into dst, as PFMERGE does.
 * It is checked first: a wrong magic, an unknown encoding, a dense string not exactly
 * TALLY_HLL_DENSE_SIZE bytes, or sparse opcodes that do not cover exactly 16,384 registers
 * give -EINVAL and leave dst as it was. Returns 0.
 */
int tally_hll_merge_raw(struct tally_hll *dst, const void *buf, size_t len);

/*
 * Read a Redis HLL string into h, converting sparse to dense as Redis's hllSparseToDense
 * does (the header, cached cardinality included, is kept; the encoding becomes dense).
 * 0, or -EINVAL as for tally_hll_merge_raw() (h is then empty).
 */
int tally_hll_parse(struct tally_hll *h, const void *buf, size_t len);

/* The estimate Redis's hllCount computes from the registers (Ertl's estimator, Redis >= 5). */
uint64_t tally_hll_estimate(const struct tally_hll *h);

/* What PFCOUNT on this key answers: the cached cardinality if valid, else the estimate,
 * which is then cached (as PFCOUNT does). */
uint64_t tally_hll_count(struct tally_hll *h);

#endif /* TALLY_HLL_H */
