/* SPDX-License-Identifier: BSD-3-Clause */
/* Redis-compatible HyperLogLog: dense registers, sparse reading, Redis's estimator. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "tally_hll.h"

_Static_assert(TALLY_HLL_DENSE_SIZE == 12304, "Redis's dense HLL string is 12,304 bytes");

/* Offset of the cached cardinality in the header. */
#define HLL_CARD 8
#define HLL_ALPHA_INF 0.721347520444481703680 /* 0.5 / ln(2) */

/* Sparse opcodes: ZERO 00xxxxxx, XZERO 01xxxxxx yyyyyyyy, VAL 1vvvvvxx. */
#define HLL_SPARSE_IS_ZERO(b) (((b)&0xc0) == 0)
#define HLL_SPARSE_IS_XZERO(b) (((b)&0xc0) == 0x40)

static inline uint8_t *
hll_regs(struct tally_hll *h)
{
	return h->raw + TALLY_HLL_HDR_SIZE;
}

static inline const uint8_t *
hll_cregs(const struct tally_hll *h)
{
	return h->raw + TALLY_HLL_HDR_SIZE;
}

static inline void
hll_invalidate(struct tally_hll *h)
{
	h->raw[HLL_CARD + 7] |= 0x80;
}

static inline uint64_t
load64_le(const uint8_t *p)
{
	return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
	       (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 |
	       (uint64_t)p[7] << 56;
}

uint64_t
tally_murmur64a(const void *key, size_t len, uint64_t seed)
{
	const uint64_t m = 0xc6a4a7935bd1e995ull;
	const int r = 47;
	const uint8_t *data = key;
	const uint8_t *end = data + (len & ~(size_t)7);
	uint64_t h = seed ^ (len * m);

	for (; data != end; data += 8) {
		uint64_t k = load64_le(data);

		k *= m;
		k ^= k >> r;
		k *= m;
		h ^= k;
		h *= m;
	}
	switch (len & 7) {
	case 7:
		h ^= (uint64_t)data[6] << 48;
		/* fall through */
	case 6:
		h ^= (uint64_t)data[5] << 40;
		/* fall through */
	case 5:
		h ^= (uint64_t)data[4] << 32;
		/* fall through */
	case 4:
		h ^= (uint64_t)data[3] << 24;
		/* fall through */
	case 3:
		h ^= (uint64_t)data[2] << 16;
		/* fall through */
	case 2:
		h ^= (uint64_t)data[1] << 8;
		/* fall through */
	case 1:
		h ^= (uint64_t)data[0];
		h *= m;
	}
	h ^= h >> r;
	h *= m;
	h ^= h >> r;
	return h;
}

/*
 * Register access that never reads past the last byte: Redis reads one byte beyond (its sds
 * strings end in a NUL), but register 16,383 sits in bits 2-7 of the last byte.
 */
static inline unsigned int
reg_get(const uint8_t *regs, uint32_t idx)
{
	uint32_t bit = idx * TALLY_HLL_BITS, byte = bit >> 3, fb = bit & 7;
	unsigned int v = regs[byte] >> fb;

	if (fb > 8 - TALLY_HLL_BITS)
		v |= (unsigned int)regs[byte + 1] << (8 - fb);
	return v & TALLY_HLL_REGISTER_MAX;
}

static inline void
reg_set(uint8_t *regs, uint32_t idx, unsigned int val)
{
	uint32_t bit = idx * TALLY_HLL_BITS, byte = bit >> 3, fb = bit & 7;

	regs[byte] = (uint8_t)((regs[byte] & ~(TALLY_HLL_REGISTER_MAX << fb)) | (val << fb));
	if (fb > 8 - TALLY_HLL_BITS)
		regs[byte + 1] =
			(uint8_t)((regs[byte + 1] & ~(TALLY_HLL_REGISTER_MAX >> (8 - fb))) |
				  (val >> (8 - fb)));
}

void
tally_hll_init(struct tally_hll *h)
{
	memset(h->raw, 0, sizeof(h->raw));
	memcpy(h->raw, "HYLL", 4);
	h->raw[4] = TALLY_HLL_DENSE;
}

unsigned int
tally_hll_register(const struct tally_hll *h, uint32_t idx)
{
	return reg_get(hll_cregs(h), idx & (TALLY_HLL_REGISTERS - 1));
}

void
tally_hll_raise(struct tally_hll *h, uint32_t idx, unsigned int val)
{
	uint8_t *regs = hll_regs(h);

	idx &= TALLY_HLL_REGISTERS - 1;
	val &= TALLY_HLL_REGISTER_MAX;
	if (val > reg_get(regs, idx))
		reg_set(regs, idx, val);
}

void
tally_hll_stale(struct tally_hll *h)
{
	hll_invalidate(h);
}

int
tally_hll_update(struct tally_hll *h, uint32_t idx, unsigned int val)
{
	uint8_t *regs = hll_regs(h);

	idx &= TALLY_HLL_REGISTERS - 1;
	val &= TALLY_HLL_REGISTER_MAX;
	if (val <= reg_get(regs, idx))
		return 0;
	reg_set(regs, idx, val);
	hll_invalidate(h);
	return 1;
}

int
tally_hll_add(struct tally_hll *h, const void *ele, size_t len)
{
	uint32_t idx;
	unsigned int val = tally_hll_pattern(tally_murmur64a(ele, len, TALLY_HLL_SEED), &idx);

	return tally_hll_update(h, idx, val);
}

int
tally_hll_add_u64(struct tally_hll *h, uint64_t v)
{
	uint32_t idx;
	unsigned int val = tally_hll_pattern_u64(v, &idx);

	return tally_hll_update(h, idx, val);
}

/* A run of n zero registers as sparse opcodes (ZERO up to 64, XZERO up to 16,384). */
static uint8_t *
sparse_zeros(uint8_t *p, uint32_t n)
{
	while (n > 0) {
		uint32_t run = n > TALLY_HLL_REGISTERS ? TALLY_HLL_REGISTERS : n;

		if (run <= 64) {
			*p++ = (uint8_t)(run - 1);
		} else {
			*p++ = (uint8_t)(0x40 | ((run - 1) >> 8));
			*p++ = (uint8_t)((run - 1) & 0xff);
		}
		n -= run;
	}
	return p;
}

int
tally_hll_write_sparse(const uint32_t *regs, uint32_t n, uint8_t *buf, size_t len)
{
	uint8_t *p = buf + TALLY_HLL_HDR_SIZE;
	uint32_t next = 0, i = 0;

	if (len < TALLY_HLL_SPARSE_SIZE(n))
		return -ENOSPC;
	memcpy(buf, "HYLL", 4);
	buf[4] = TALLY_HLL_SPARSE;
	memset(buf + 5, 0, TALLY_HLL_HDR_SIZE - 5);
	buf[15] = 0x80; /* the cached cardinality is not valid: PFCOUNT computes it */
	while (i < n) {
		uint32_t idx = regs[i] >> 6, val = regs[i] & 0x3f, run = 1;

		if (val == 0 || val > 32 || idx < next || idx >= TALLY_HLL_REGISTERS)
			return val > 32 ? -ERANGE : -EINVAL;
		/* VAL: up to 4 adjacent registers of one value in one byte */
		while (run < 4 && i + run < n && regs[i + run] >> 6 == idx + run &&
		       (regs[i + run] & 0x3f) == val)
			run++;
		p = sparse_zeros(p, idx - next);
		*p++ = (uint8_t)(0x80 | (val - 1) << 2 | (run - 1));
		next = idx + run;
		i += run;
	}
	p = sparse_zeros(p, TALLY_HLL_REGISTERS - next);
	return (int)(p - buf);
}

void
tally_hll_merge(struct tally_hll *dst, const struct tally_hll *src)
{
	uint8_t *d = hll_regs(dst);
	const uint8_t *s = hll_cregs(src);
	uint32_t i;

	for (i = 0; i < TALLY_HLL_REGISTERS; i++) {
		unsigned int v = reg_get(s, i);

		if (v > reg_get(d, i))
			reg_set(d, i, v);
	}
	hll_invalidate(dst);
}

/* Header checks of Redis's isHLLObjectOrReply(): -EINVAL or the encoding. */
static int
hll_check_header(const uint8_t *p, size_t len)
{
	if (p == NULL || len < TALLY_HLL_HDR_SIZE || memcmp(p, "HYLL", 4) != 0)
		return -EINVAL;
	if (p[4] == TALLY_HLL_DENSE)
		return len == TALLY_HLL_DENSE_SIZE ? TALLY_HLL_DENSE : -EINVAL;
	if (p[4] == TALLY_HLL_SPARSE)
		return TALLY_HLL_SPARSE;
	return -EINVAL;
}

/*
 * Walk sparse opcodes; with regs NULL only check that the runs cover exactly 16,384
 * registers, otherwise raise regs to the VAL runs (only on opcodes a check accepted).
 */
static int
hll_sparse_walk(const uint8_t *p, const uint8_t *end, uint8_t *regs)
{
	uint32_t idx = 0, run;

	while (p < end) {
		uint8_t b = *p;

		if (HLL_SPARSE_IS_ZERO(b)) {
			run = (b & 0x3f) + 1u;
			p++;
		} else if (HLL_SPARSE_IS_XZERO(b)) {
			if (end - p < 2)
				return -EINVAL;
			run = (((uint32_t)b & 0x3f) << 8 | p[1]) + 1u;
			p += 2;
		} else {
			unsigned int val = ((b >> 2) & 0x1f) + 1u;

			run = (b & 0x3) + 1u;
			if (regs != NULL && idx + run <= TALLY_HLL_REGISTERS) {
				uint32_t i;

				for (i = idx; i < idx + run; i++)
					if (val > reg_get(regs, i))
						reg_set(regs, i, val);
			}
			p++;
		}
		if (idx + run > TALLY_HLL_REGISTERS)
			return -EINVAL;
		idx += run;
	}
	return idx == TALLY_HLL_REGISTERS ? 0 : -EINVAL;
}

int
tally_hll_merge_raw(struct tally_hll *dst, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	int enc = hll_check_header(p, len);
	uint8_t *d = hll_regs(dst);
	uint32_t i;

	if (enc < 0)
		return enc;
	if (enc == TALLY_HLL_SPARSE) {
		if (hll_sparse_walk(p + TALLY_HLL_HDR_SIZE, p + len, NULL) < 0)
			return -EINVAL;
		hll_sparse_walk(p + TALLY_HLL_HDR_SIZE, p + len, d);
	} else {
		for (i = 0; i < TALLY_HLL_REGISTERS; i++) {
			unsigned int v = reg_get(p + TALLY_HLL_HDR_SIZE, i);

			if (v > reg_get(d, i))
				reg_set(d, i, v);
		}
	}
	hll_invalidate(dst);
	return 0;
}

int
tally_hll_parse(struct tally_hll *h, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	int enc = hll_check_header(p, len);

	tally_hll_init(h);
	if (enc < 0)
		return enc;
	if (enc == TALLY_HLL_DENSE) {
		memcpy(h->raw, p, TALLY_HLL_DENSE_SIZE);
		return 0;
	}
	if (hll_sparse_walk(p + TALLY_HLL_HDR_SIZE, p + len, NULL) < 0)
		return -EINVAL;
	memcpy(h->raw, p, TALLY_HLL_HDR_SIZE);
	h->raw[4] = TALLY_HLL_DENSE;
	hll_sparse_walk(p + TALLY_HLL_HDR_SIZE, p + len, hll_regs(h));
	return 0;
}

/* Ertl, "New cardinality estimation algorithms for HyperLogLog sketches", arXiv:1702.01284:
 * sigma and tau, with Redis's loops so the result is the same to the last bit. */
static double
hll_sigma(double x)
{
	double y = 1, z = x, zp;

	if (x == 1.)
		return INFINITY;
	do {
		x *= x;
		zp = z;
		z += x * y;
		y += y;
	} while (zp != z);
	return z;
}

static double
hll_tau(double x)
{
	double y = 1.0, z, zp;

	if (x == 0. || x == 1.)
		return 0.;
	z = 1 - x;
	do {
		x = sqrt(x);
		zp = z;
		y *= 0.5;
		z -= pow(1 - x, 2) * y;
	} while (zp != z);
	return z / 3;
}

uint64_t
tally_hll_estimate(const struct tally_hll *h)
{
	const uint8_t *r = hll_cregs(h);
	const double m = TALLY_HLL_REGISTERS;
	int hist[64] = {0};
	double z;
	int j;

	/* Four registers in every three bytes. */
	for (j = 0; j < (int)TALLY_HLL_REGISTERS / 4; j++, r += 3) {
		hist[r[0] & 63]++;
		hist[(r[0] >> 6 | r[1] << 2) & 63]++;
		hist[(r[1] >> 4 | r[2] << 4) & 63]++;
		hist[(r[2] >> 2) & 63]++;
	}
	z = m * hll_tau((m - hist[TALLY_HLL_Q + 1]) / m);
	for (j = TALLY_HLL_Q; j >= 1; --j) {
		z += hist[j];
		z *= 0.5;
	}
	z += m * hll_sigma(hist[0] / m);
	return (uint64_t)llroundl(HLL_ALPHA_INF * m * m / z);
}

uint64_t
tally_hll_count(struct tally_hll *h)
{
	uint8_t *card = h->raw + HLL_CARD;
	uint64_t n;
	int i;

	if ((card[7] & 0x80) == 0)
		return load64_le(card);
	n = tally_hll_estimate(h);
	for (i = 0; i < 8; i++)
		card[i] = (uint8_t)(n >> (8 * i));
	return n;
}
