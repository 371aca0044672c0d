/* SPDX-License-Identifier: BSD-3-Clause */
/* DDSketch: mergeable log-bucket quantiles with 1% relative accuracy over a fixed range. */
#ifndef TALLY_DDSKETCH_H
#define TALLY_DDSKETCH_H

#include <stddef.h>
#include <stdint.h>

/*
 * Mapping: gamma = (1 + a) / (1 - a) = 101/99 with a = 0.01; bucket index i holds
 * (gamma^(i-1), gamma^i] and its value is (1 - a) * gamma^i, within 1% of everything in it.
 * The range is fixed so that every writer's buckets add: indices -1036..1382, that is
 * |x| in (9.83e-10, 1.0099e12], which contains [1e-9, 1e12]. A key names a bucket with its
 * sign: key k = i + 1037 (1..TALLY_DDS_KEYS) for x > 0, -k for x < 0, 0 for +-0.
 * Signed key order is value order. Edges are exact: a table holds the largest double at or
 * below each real gamma^i, computed from exact fractions at build time.
 */
#define TALLY_DDS_ALPHA 0.01
#define TALLY_DDS_INDEX_MIN (-1036)
#define TALLY_DDS_INDEX_MAX 1382
#define TALLY_DDS_KEYS (TALLY_DDS_INDEX_MAX - TALLY_DDS_INDEX_MIN + 1) /* 2419 per sign */
#define TALLY_DDS_CAP_MAX (2 * TALLY_DDS_KEYS) /* a store this big never folds */

/* Serialisation, version 1: see tally_dds_serialise(). */
#define TALLY_DDS_MAGIC0 'D'
#define TALLY_DDS_MAGIC1 'S'
#define TALLY_DDS_VERSION 1
#define TALLY_DDS_HDR_LEN 4

/* Returned by tally_dds_key() for a value outside the range, held by the edge bucket. */
#define TALLY_DDS_CLAMPED 1

/*
 * One series' sketch: a sorted sparse store of at most `cap` (key, count) pairs in memory
 * the caller gives (tally_dds_memsize(cap) bytes), plus the zero count. Sparse because a
 * series touches about 115 buckets per decade its values span, a small part of the 4,838
 * the range has; sorted so that quantiles, merges and the byte format walk it in value
 * order. Updates never allocate. A value whose bucket is absent when the store is full goes
 * to the nearest bucket present (by key; the lower one on a tie) and is counted in `folded`;
 * values out of range go to the edge bucket and are counted in `clamped`. Either way no
 * value is lost: tally_dds_count() counts them all. One writer at a time.
 */
struct tally_dds {
	uint64_t zero;	  /* values equal to +0 or -0 */
	uint64_t clamped; /* values outside the range, held in the edge bucket of their sign */
	uint64_t folded;  /* values that found the store full, held in the nearest bucket */
	uint16_t cap;	  /* buckets the store can hold */
	uint16_t used;	  /* sparse: buckets it holds (each with a count >= 1); dense: 0 */
	int16_t lo;	  /* dense: the key of counts[0] */
	uint8_t dense;	  /* 0: sparse, 1: dense (see tally_dds_init_dense()) */
	uint8_t reserved;
	uint64_t counts[]; /* sparse: int16_t keys[cap] ascending (in KEY_WORDS words), counts */
};

/* The 8-byte words a sparse store's keys take, before its counts. */
#define TALLY_DDS_KEY_WORDS(cap) (((unsigned int)(cap) + 3) / 4)

/*
 * The dense store of the same sketch: counts[i] is the count of key lo + i, for the cap
 * consecutive keys from lo (a key 0 among them stays 0: zeros have their own count). An
 * update is an index, not a search: what a series of many values wants. A value whose key is
 * outside lo .. lo + cap - 1 goes to the nearer end and is counted in `folded` (the owner
 * moves it to a wider store first when it can: tally_dds_dense_has()). Every function of this
 * header takes either store; equal sketches give equal bytes whatever their stores.
 */
#define TALLY_DDS_DENSE_MAX (2 * TALLY_DDS_KEYS + 1)

/* Bytes of a dense sketch of cap keys: 32 + 8 * cap. 0 if cap is not 1..DENSE_MAX. */
size_t tally_dds_dense_memsize(unsigned int cap);

/*
 * Lay an empty dense sketch of keys lo .. lo + cap - 1 out in mem (8-byte aligned,
 * tally_dds_dense_memsize(cap) bytes). NULL if the keys are not all in -KEYS .. KEYS.
 */
struct tally_dds *tally_dds_init_dense(void *mem, unsigned int cap, int lo);

/* Whether a dense sketch holds key's bucket (key != 0) without folding it. */
static inline int
tally_dds_dense_has(const struct tally_dds *s, int key)
{
	return (unsigned int)(key - s->lo) < s->cap;
}

/*
 * Count n values of key into a dense sketch that has it (tally_dds_dense_has()). It touches
 * the count alone, not the header: a dense store does not keep `used` (tally_dds_buckets()).
 */
static inline void
tally_dds_dense_add(struct tally_dds *s, int key, uint64_t n)
{
	uint64_t *c = &s->counts[key - s->lo];

	*c = *c + n < *c ? UINT64_MAX : *c + n;
}

/* Buckets with a count (the zero count aside): a sparse store's `used`; a dense one counts. */
unsigned int tally_dds_buckets(const struct tally_dds *s);

/*
 * A sparse store's bucket search, inline for callers that prefetch a count ahead of its update:
 * the position of key (not 0) among its keys, or -(insertion point) - 1 when absent.
 */
static inline int
tally_dds_sparse_find(const struct tally_dds *s, int key)
{
	const int16_t *keys = (const int16_t *)s->counts, *base = keys;
	int n = s->used, lo;

	/*
	 * Branch-free lower bound (the step is a conditional move): the keys a series' values
	 * land in are random, so a branch per level would be mispredicted half the time.
	 */
	while (n > 1) {
		int half = n >> 1;

		base = base[half - 1] < key ? base + half : base;
		n -= half;
	}
	lo = (int)(base - keys) + (n == 1 && *base < key);
	if (lo < s->used && keys[lo] == key)
		return lo;
	return -lo - 1;
}

/* The count of a sparse store's bucket at position pos (from tally_dds_sparse_find()). */
static inline uint64_t *
tally_dds_sparse_count(const struct tally_dds *s, int pos)
{
	return (uint64_t *)(uintptr_t)(s->counts + TALLY_DDS_KEY_WORDS(s->cap)) + pos;
}

/*
 * Count one value of key into a sparse store whose bucket at pos (found earlier, perhaps
 * before other updates) is key's: 1, or 0 when it is not (nothing changed; search again).
 */
static inline int
tally_dds_sparse_add_at(struct tally_dds *s, int pos, int key)
{
	uint64_t *c;

	if (pos >= s->used || ((const int16_t *)s->counts)[pos] != key)
		return 0;
	c = tally_dds_sparse_count(s, pos);
	*c += *c != UINT64_MAX;
	return 1;
}

/* The smallest and largest key with a count (0 when only zeros or nothing): 0, or -ENOENT. */
int tally_dds_key_range(const struct tally_dds *s, int *min, int *max);

/* Bytes of a sketch with cap buckets: 32 + 10 * cap, rounded up to 8. 0 if cap is invalid. */
size_t tally_dds_memsize(unsigned int cap);

/*
 * Lay an empty sketch out in mem (8-byte aligned, tally_dds_memsize(cap) bytes). Returns it,
 * valid as long as mem is, or NULL if mem is NULL or misaligned or cap is not 1..CAP_MAX.
 */
struct tally_dds *tally_dds_init(void *mem, unsigned int cap);

/* Empty the sketch (counters too), keeping its capacity. */
void tally_dds_reset(struct tally_dds *s);

/*
 * Key of x into *key: 0 (in range), TALLY_DDS_CLAMPED (|x| below or above the range,
 * subnormals and infinities included: *key is the edge key of x's sign), or -EINVAL (NaN).
 */
int tally_dds_key(double x, int *key);

/* Bounds of a key's bucket: values v in it satisfy *lo < v <= *hi (key > 0), *lo <= v < *hi
 * (key < 0), or v == 0 (key 0). -EINVAL if |key| > TALLY_DDS_KEYS. */
int tally_dds_key_bounds(int key, double *lo, double *hi);

/* The value a key's bucket reports: within 1% of every in-range value in it. 0 for key 0. */
double tally_dds_key_value(int key);

/* Add one value: 0, or -EINVAL for NaN (nothing stored). The per-record path. */
int tally_dds_add(struct tally_dds *s, double x);

/* Add n values to a bucket by key (e.g. read back from Redis): 0, or -EINVAL for a bad key. */
int tally_dds_add_key(struct tally_dds *s, int key, uint64_t n);

/*
 * Add src's counts into dst (src is unchanged). Exact, associative and commutative while dst
 * has room for the union of the buckets; otherwise the buckets that find no room fold as in
 * tally_dds_add and count in dst->folded. Counts saturate at UINT64_MAX (never reached).
 */
void tally_dds_merge(struct tally_dds *dst, const struct tally_dds *src);

/* Values added: zero count plus every bucket's count. */
uint64_t tally_dds_count(const struct tally_dds *s);

/*
 * The q-quantile (0 <= q <= 1) into *value, by DDSketch's rank convention: the value of the
 * bucket holding the element of 0-based rank floor(q * (count - 1)) in sorted order, so
 * within 1% of that element when it was in range. Returns 0, -EINVAL (q not in [0, 1]) or
 * -ENOENT (empty sketch).
 */
int tally_dds_quantile(const struct tally_dds *s, double q, double *value);

/*
 * The n-th non-empty bucket in value order (n < tally_dds_buckets(); the zero count is s->zero), for
 * output by bucket (e.g. cumulative "le" buckets from tally_dds_key_bounds()).
 * Returns 0 or -ERANGE.
 */
int tally_dds_bucket(const struct tally_dds *s, unsigned int n, int *key, uint64_t *count);

/*
 * Serialise into buf (version 1, little-endian): 'D' 'S' version flags(0), then LEB128
 * varints: zero, clamped, folded, the number of buckets B, and B pairs in ascending key
 * order: the first key zigzag-encoded, each later one as (key - previous key - 1), then
 * (count - 1). Equal sketches give equal bytes. Returns the length, or -ENOSPC if len is
 * short (tally_dds_serial_size() is the exact need).
 */
int tally_dds_serialise(const struct tally_dds *s, uint8_t *buf, size_t len);

/* Bytes tally_dds_serialise() writes for s (at most 44 + 12 * tally_dds_buckets(s)). */
size_t tally_dds_serial_size(const struct tally_dds *s);

/*
 * Add a serialised sketch into dst as tally_dds_merge() does. Everything is checked before
 * dst changes: bad magic, version or flags, truncation, non-canonical or overlong varints,
 * keys out of range or not ascending, trailing bytes, or a total over UINT64_MAX give
 * -EINVAL and leave dst as it was. Returns 0.
 */
int tally_dds_merge_bytes(struct tally_dds *dst, const uint8_t *buf, size_t len);

/* The number of buckets a serialised sketch holds (its header only is read), or -EINVAL. */
int tally_dds_bytes_buckets(const uint8_t *buf, size_t len);

/* The smallest and largest key of a serialised sketch's buckets: 0, -ENOENT (none), -EINVAL. */
int tally_dds_bytes_range(const uint8_t *buf, size_t len, int *min, int *max);

/* The folded count a serialised sketch carries (its header only is read; 0 if it is bad). */
uint64_t tally_dds_bytes_folded(const uint8_t *buf, size_t len);

/* Reset s and read a serialised sketch into it: 0 or -EINVAL (s is then empty). */
int tally_dds_parse(struct tally_dds *s, const uint8_t *buf, size_t len);

#endif /* TALLY_DDSKETCH_H */
