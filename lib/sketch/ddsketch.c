/* SPDX-License-Identifier: BSD-3-Clause */
/* DDSketch with exact bucket edges, a caller-sized sparse store, and its byte format. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "tally_ddsketch.h"
#include "dds_tables.h"

_Static_assert(DDS_GEN_KEYS == TALLY_DDS_KEYS, "generated tables match the header");
_Static_assert(DDS_GEN_INDEX_MIN == TALLY_DDS_INDEX_MIN, "generated tables match the header");
_Static_assert(TALLY_DDS_CAP_MAX <= UINT16_MAX, "cap and used are 16-bit");
_Static_assert(sizeof(struct tally_dds) == 32, "sketch header layout");

#define DDS_VARINT_MAX 10
#define DDS_COUNT_MAX UINT64_MAX

/*
 * A sparse store's keys come first, right after the header (a store of up to 48 buckets has
 * its header and keys in two cache lines: its search waits for no more), then its counts.
 */
static inline int16_t *
dds_keys(const struct tally_dds *s)
{
	return (int16_t *)(uintptr_t)s->counts;
}

static inline uint64_t *
dds_cnt(const struct tally_dds *s)
{
	return tally_dds_sparse_count(s, 0);
}

/* The buckets with a count, in key order, whichever the store. */
struct dds_it {
	const struct tally_dds *s;
	int i;
};

static inline int
dds_next(struct dds_it *it, int *key, uint64_t *count)
{
	const struct tally_dds *s = it->s;

	if (!s->dense) {
		if (it->i >= s->used)
			return 0;
		*key = dds_keys(s)[it->i];
		*count = dds_cnt(s)[it->i];
		it->i++;
		return 1;
	}
	while (it->i < s->cap && s->counts[it->i] == 0)
		it->i++;
	if (it->i >= s->cap)
		return 0;
	*key = s->lo + it->i;
	*count = s->counts[it->i];
	it->i++;
	return 1;
}

size_t
tally_dds_dense_memsize(unsigned int cap)
{
	if (cap == 0 || cap > TALLY_DDS_DENSE_MAX)
		return 0;
	return sizeof(struct tally_dds) + cap * sizeof(uint64_t);
}

struct tally_dds *
tally_dds_init_dense(void *mem, unsigned int cap, int lo)
{
	struct tally_dds *s = mem;

	if (mem == NULL || ((uintptr_t)mem & 7) != 0 || tally_dds_dense_memsize(cap) == 0 ||
	    lo < -TALLY_DDS_KEYS || lo + (int)cap - 1 > TALLY_DDS_KEYS)
		return NULL;
	memset(s, 0, tally_dds_dense_memsize(cap));
	s->cap = (uint16_t)cap;
	s->lo = (int16_t)lo;
	s->dense = 1;
	return s;
}

int
tally_dds_key_range(const struct tally_dds *s, int *min, int *max)
{
	struct dds_it it = {s, 0};
	uint64_t c;
	int k;

	if (!s->dense) {
		if (s->used == 0)
			return -ENOENT;
		*min = dds_keys(s)[0];
		*max = dds_keys(s)[s->used - 1];
		return 0;
	}
	if (!dds_next(&it, min, &c))
		return -ENOENT;
	for (k = s->cap - 1; k >= 0 && s->counts[k] == 0; k--)
		;
	*max = s->lo + k;
	return 0;
}

size_t
tally_dds_memsize(unsigned int cap)
{
	if (cap == 0 || cap > TALLY_DDS_CAP_MAX)
		return 0;
	return sizeof(struct tally_dds) + (TALLY_DDS_KEY_WORDS(cap) + cap) * sizeof(uint64_t);
}

struct tally_dds *
tally_dds_init(void *mem, unsigned int cap)
{
	struct tally_dds *s = mem;

	if (mem == NULL || ((uintptr_t)mem & 7) != 0 || tally_dds_memsize(cap) == 0)
		return NULL;
	memset(s, 0, sizeof(*s));
	s->cap = (uint16_t)cap;
	return s;
}

void
tally_dds_reset(struct tally_dds *s)
{
	s->zero = 0;
	s->clamped = 0;
	s->folded = 0;
	s->used = 0;
	if (s->dense)
		memset(s->counts, 0, s->cap * sizeof(s->counts[0]));
}

/* Key of |x| for finite bounds[0] < a <= bounds[KEYS]: one table load and one compare. */
static inline int
dds_key_in_range(double a)
{
	uint64_t bits;
	int key;

	memcpy(&bits, &a, sizeof(bits));
	key = tally_dds_lookup[(bits >> DDS_SLOT_SHIFT) - DDS_SLOT0];
	return key + (a > tally_dds_bound[key]);
}

int
tally_dds_key(double x, int *key)
{
	double a = fabs(x);
	int sign = signbit(x) ? -1 : 1;

	if (isnan(x))
		return -EINVAL;
	if (a == 0) {
		*key = 0;
		return 0;
	}
	/* Subnormals and infinities land here too: the edge bucket, counted by the caller. */
	if (a <= tally_dds_bound[0]) {
		*key = sign;
		return TALLY_DDS_CLAMPED;
	}
	if (a > tally_dds_bound[TALLY_DDS_KEYS]) {
		*key = sign * TALLY_DDS_KEYS;
		return TALLY_DDS_CLAMPED;
	}
	*key = sign * dds_key_in_range(a);
	return 0;
}

int
tally_dds_key_bounds(int key, double *lo, double *hi)
{
	int k = key < 0 ? -key : key;

	if (k > TALLY_DDS_KEYS)
		return -EINVAL;
	if (key == 0) {
		*lo = 0;
		*hi = 0;
	} else if (key > 0) {
		*lo = tally_dds_bound[k - 1];
		*hi = tally_dds_bound[k];
	} else {
		*lo = -tally_dds_bound[k];
		*hi = -tally_dds_bound[k - 1];
	}
	return 0;
}

double
tally_dds_key_value(int key)
{
	int k = key < 0 ? -key : key;
	double v;

	if (key == 0 || k > TALLY_DDS_KEYS)
		return 0;
	/* 2 gamma^i / (1 + gamma) = (1 - a) gamma^i: 1% from both ends of its bucket. */
	v = (1 - TALLY_DDS_ALPHA) * tally_dds_bound[k];
	return key < 0 ? -v : v;
}

static inline uint64_t
sat_add(uint64_t a, uint64_t b)
{
	uint64_t r;

	return __builtin_add_overflow(a, b, &r) ? DDS_COUNT_MAX : r;
}

/* Count n values of key (not 0) into the store: insert, or fold into a neighbour if full. */
static void
dds_put(struct tally_dds *s, int key, uint64_t n)
{
	int16_t *keys = dds_keys(s);
	uint64_t *cnt = dds_cnt(s);
	int pos, at;

	if (s->dense) {
		if (!tally_dds_dense_has(s, key)) {
			/* outside the store: the nearer end takes the values */
			key = key < s->lo ? s->lo : s->lo + s->cap - 1;
			if (key == 0) /* an end never stands on the zero bucket's key ... */
				key = s->lo == 0 ? 1 : -1;
			s->folded = sat_add(s->folded, n);
		}
		tally_dds_dense_add(s, key, n);
		return;
	}
	pos = tally_dds_sparse_find(s, key);

	if (pos >= 0) {
		cnt[pos] = sat_add(cnt[pos], n);
		return;
	}
	at = -pos - 1;
	if (s->used < s->cap) {
		memmove(&cnt[at + 1], &cnt[at], (s->used - at) * sizeof(cnt[0]));
		memmove(&keys[at + 1], &keys[at], (s->used - at) * sizeof(keys[0]));
		cnt[at] = n;
		keys[at] = (int16_t)key;
		s->used++;
		return;
	}
	/* Full: the neighbour nearer in key space takes the values (the lower one on a tie). */
	if (at == s->used || (at > 0 && key - keys[at - 1] <= keys[at] - key))
		at--;
	cnt[at] = sat_add(cnt[at], n);
	s->folded = sat_add(s->folded, n);
}

int
tally_dds_add(struct tally_dds *s, double x)
{
	int key, rc;

	rc = tally_dds_key(x, &key);
	if (rc < 0)
		return rc;
	if (rc == TALLY_DDS_CLAMPED)
		s->clamped++;
	if (key == 0)
		s->zero++;
	else
		dds_put(s, key, 1);
	return 0;
}

int
tally_dds_add_key(struct tally_dds *s, int key, uint64_t n)
{
	if (key < -TALLY_DDS_KEYS || key > TALLY_DDS_KEYS)
		return -EINVAL;
	if (n == 0)
		return 0;
	if (key == 0)
		s->zero = sat_add(s->zero, n);
	else
		dds_put(s, key, n);
	return 0;
}

void
tally_dds_merge(struct tally_dds *dst, const struct tally_dds *src)
{
	const int16_t *skeys = dds_keys(src);
	int16_t *dkeys = dds_keys(dst);
	const uint64_t *scnt = dds_cnt(src);
	uint64_t *dcnt = dds_cnt(dst);
	int i, j, k, uni = dst->used;

	dst->zero = sat_add(dst->zero, src->zero);
	dst->clamped = sat_add(dst->clamped, src->clamped);
	dst->folded = sat_add(dst->folded, src->folded);
	if (dst->dense || src->dense) {
		struct dds_it it = {src, 0};
		uint64_t c;

		while (dds_next(&it, &k, &c))
			dds_put(dst, k, c);
		return;
	}

	/* Size of the union first: if it fits, merge in place from the back (no scratch). */
	for (i = 0, j = 0; j < src->used;) {
		if (i < dst->used && dkeys[i] < skeys[j]) {
			i++;
		} else {
			if (i >= dst->used || dkeys[i] != skeys[j])
				uni++;
			else
				i++;
			j++;
		}
	}
	if (uni > dst->cap) {
		for (j = 0; j < src->used; j++)
			dds_put(dst, skeys[j], scnt[j]);
		return;
	}
	i = dst->used - 1;
	j = src->used - 1;
	for (k = uni - 1; j >= 0; k--) {
		if (i >= 0 && dkeys[i] > skeys[j]) {
			dkeys[k] = dkeys[i];
			dcnt[k] = dcnt[i];
			i--;
		} else if (i >= 0 && dkeys[i] == skeys[j]) {
			dkeys[k] = dkeys[i];
			dcnt[k] = sat_add(dcnt[i], scnt[j]);
			i--;
			j--;
		} else {
			dkeys[k] = skeys[j];
			dcnt[k] = scnt[j];
			j--;
		}
	}
	dst->used = (uint16_t)uni;
}

uint64_t
tally_dds_count(const struct tally_dds *s)
{
	struct dds_it it = {s, 0};
	uint64_t n = s->zero, c;
	int k;

	while (dds_next(&it, &k, &c))
		n = sat_add(n, c);
	return n;
}

int
tally_dds_quantile(const struct tally_dds *s, double q, double *value)
{
	struct dds_it it = {s, 0};
	uint64_t n = tally_dds_count(s), rank, seen = 0, c;
	int zero_done = 0, key = 0, last = 0;
	double r;

	if (!(q >= 0 && q <= 1))
		return -EINVAL;
	if (n == 0)
		return -ENOENT;
	/* rank = floor(q (n - 1)), kept below n when n - 1 rounds up in a double. */
	r = floor(q * (double)(n - 1));
	rank = r >= (double)(n - 1) ? n - 1 : (uint64_t)r;
	while (dds_next(&it, &key, &c)) {
		if (key > 0 && !zero_done) {
			/* the zeros sit between the negative and the positive buckets */
			zero_done = 1;
			seen = sat_add(seen, s->zero);
			if (seen > rank) {
				*value = 0;
				return 0;
			}
		}
		seen = sat_add(seen, c);
		last = key;
		if (seen > rank) {
			*value = tally_dds_key_value(key);
			return 0;
		}
	}
	if (!zero_done && s->zero > 0 && sat_add(seen, s->zero) > rank) {
		*value = 0;
		return 0;
	}
	/* Only saturated counts can run past the end: report the last bucket. */
	*value = last != 0 ? tally_dds_key_value(last) : 0;
	return 0;
}

int
tally_dds_bucket(const struct tally_dds *s, unsigned int n, int *key, uint64_t *count)
{
	struct dds_it it = {s, 0};
	unsigned int i;

	if (n >= tally_dds_buckets(s))
		return -ERANGE;
	if (!s->dense) {
		*key = dds_keys(s)[n];
		*count = dds_cnt(s)[n];
		return 0;
	}
	for (i = 0; i <= n; i++)
		dds_next(&it, key, count);
	return 0;
}

/* ---- Serialisation ---- */

static inline size_t
varint_len(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

static inline uint8_t *
varint_put(uint8_t *p, uint64_t v)
{
	while (v >= 0x80) {
		*p++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*p++ = (uint8_t)v;
	return p;
}

/* Read a canonical LEB128 varint; NULL on truncation, overlong or > 64-bit encodings. */
static const uint8_t *
varint_get(const uint8_t *p, const uint8_t *end, uint64_t *v)
{
	uint64_t r = 0;
	int i;

	for (i = 0; i < DDS_VARINT_MAX && p < end; i++) {
		uint8_t b = *p++;

		if (i == DDS_VARINT_MAX - 1 && b > 1)
			return NULL;
		r |= (uint64_t)(b & 0x7f) << (7 * i);
		if ((b & 0x80) == 0) {
			/* A last 0 byte after others spells a shorter number longer. */
			if (b == 0 && i > 0)
				return NULL;
			*v = r;
			return p;
		}
	}
	return NULL;
}

static inline uint32_t
zigzag(int key)
{
	return key < 0 ? (uint32_t)(-2 * key - 1) : (uint32_t)(2 * key);
}

static inline int
unzigzag(uint64_t z)
{
	return (z & 1) ? -(int)(z >> 1) - 1 : (int)(z >> 1);
}

unsigned int
tally_dds_buckets(const struct tally_dds *s)
{
	unsigned int i, n = 0;

	if (!s->dense)
		return s->used;
	for (i = 0; i < s->cap; i++)
		n += s->counts[i] != 0;
	return n;
}

/* Bytes of s's buckets as serialised, and their number into *nb: one pass over the store. */
static size_t
dds_measure(const struct tally_dds *s, uint64_t *nb)
{
	struct dds_it it = {s, 0};
	size_t len = 0;
	uint64_t c;
	int k, prev = 0, first = 1;

	*nb = 0;
	while (dds_next(&it, &k, &c)) {
		len += varint_len(first ? zigzag(k) : (uint64_t)(k - prev - 1));
		len += varint_len(c - 1);
		prev = k;
		first = 0;
		++*nb;
	}
	return len;
}

static size_t
dds_serial_size(const struct tally_dds *s, uint64_t *nb)
{
	size_t body = dds_measure(s, nb);

	return TALLY_DDS_HDR_LEN + varint_len(s->zero) + varint_len(s->clamped) +
	       varint_len(s->folded) + varint_len(*nb) + body;
}

size_t
tally_dds_serial_size(const struct tally_dds *s)
{
	uint64_t nb;

	return dds_serial_size(s, &nb);
}

int
tally_dds_serialise(const struct tally_dds *s, uint8_t *buf, size_t len)
{
	struct dds_it it = {s, 0};
	uint64_t c, nb;
	size_t need = dds_serial_size(s, &nb);
	uint8_t *p = buf;
	int k, prev = 0, first = 1;

	if (need > len || need > INT32_MAX)
		return -ENOSPC;
	*p++ = TALLY_DDS_MAGIC0;
	*p++ = TALLY_DDS_MAGIC1;
	*p++ = TALLY_DDS_VERSION;
	*p++ = 0;
	p = varint_put(p, s->zero);
	p = varint_put(p, s->clamped);
	p = varint_put(p, s->folded);
	p = varint_put(p, nb);
	while (dds_next(&it, &k, &c)) {
		p = varint_put(p, first ? zigzag(k) : (uint64_t)(k - prev - 1));
		p = varint_put(p, c - 1);
		prev = k;
		first = 0;
	}
	return (int)(p - buf);
}

/*
 * Walk a serialised sketch. With dst NULL it only checks it; otherwise it adds it into dst
 * (call it that way only on bytes a check pass accepted).
 */
static int
dds_walk(struct tally_dds *dst, const uint8_t *buf, size_t len)
{
	const uint8_t *p = buf, *end;
	uint64_t zero, clamped, folded, nb, v, total, b;
	int key = 0;

	if (buf == NULL || len < TALLY_DDS_HDR_LEN || p[0] != TALLY_DDS_MAGIC0 ||
	    p[1] != TALLY_DDS_MAGIC1 || p[2] != TALLY_DDS_VERSION || p[3] != 0)
		return -EINVAL;
	end = buf + len;
	p += TALLY_DDS_HDR_LEN;
	if ((p = varint_get(p, end, &zero)) == NULL || (p = varint_get(p, end, &clamped)) == NULL ||
	    (p = varint_get(p, end, &folded)) == NULL || (p = varint_get(p, end, &nb)) == NULL)
		return -EINVAL;
	if (nb > TALLY_DDS_CAP_MAX)
		return -EINVAL;
	total = zero;
	for (b = 0; b < nb; b++) {
		if ((p = varint_get(p, end, &v)) == NULL)
			return -EINVAL;
		if (b == 0) {
			if (v > 2 * TALLY_DDS_KEYS)
				return -EINVAL;
			key = unzigzag(v);
		} else {
			if (v >= 2 * TALLY_DDS_KEYS)
				return -EINVAL;
			key += (int)v + 1;
		}
		if (key == 0 || key < -TALLY_DDS_KEYS || key > TALLY_DDS_KEYS)
			return -EINVAL;
		if ((p = varint_get(p, end, &v)) == NULL || v == UINT64_MAX)
			return -EINVAL;
		if (__builtin_add_overflow(total, v + 1, &total))
			return -EINVAL;
		if (dst != NULL)
			dds_put(dst, key, v + 1);
	}
	if (p != end)
		return -EINVAL;
	if (dst != NULL) {
		dst->zero = sat_add(dst->zero, zero);
		dst->clamped = sat_add(dst->clamped, clamped);
		dst->folded = sat_add(dst->folded, folded);
	}
	return 0;
}

int
tally_dds_merge_bytes(struct tally_dds *dst, const uint8_t *buf, size_t len)
{
	int rc = dds_walk(NULL, buf, len);

	if (rc == 0)
		dds_walk(dst, buf, len);
	return rc;
}

int
tally_dds_parse(struct tally_dds *s, const uint8_t *buf, size_t len)
{
	tally_dds_reset(s);
	return tally_dds_merge_bytes(s, buf, len);
}

/* The first n header varints of a serialised sketch into v: 0 or -EINVAL. */
static int
dds_header(const uint8_t *buf, size_t len, uint64_t *v, int n)
{
	const uint8_t *p = buf, *end = buf + len;
	int i;

	if (buf == NULL || len < TALLY_DDS_HDR_LEN || p[0] != TALLY_DDS_MAGIC0 ||
	    p[1] != TALLY_DDS_MAGIC1 || p[2] != TALLY_DDS_VERSION || p[3] != 0)
		return -EINVAL;
	p += TALLY_DDS_HDR_LEN;
	for (i = 0; i < n; i++) /* zero, clamped, folded, then the bucket count */
		if ((p = varint_get(p, end, &v[i])) == NULL)
			return -EINVAL;
	return 0;
}

int
tally_dds_bytes_buckets(const uint8_t *buf, size_t len)
{
	uint64_t v[4];

	if (dds_header(buf, len, v, 4) != 0 || v[3] > TALLY_DDS_CAP_MAX)
		return -EINVAL;
	return (int)v[3];
}

uint64_t
tally_dds_bytes_folded(const uint8_t *buf, size_t len)
{
	uint64_t v[3];

	return dds_header(buf, len, v, 3) == 0 ? v[2] : 0;
}

int
tally_dds_bytes_range(const uint8_t *buf, size_t len, int *min, int *max)
{
	const uint8_t *p = buf, *end = buf + len;
	uint64_t v, nb, b;
	int i, key = 0;

	if (buf == NULL || len < TALLY_DDS_HDR_LEN || p[0] != TALLY_DDS_MAGIC0 ||
	    p[1] != TALLY_DDS_MAGIC1 || p[2] != TALLY_DDS_VERSION || p[3] != 0)
		return -EINVAL;
	p += TALLY_DDS_HDR_LEN;
	for (i = 0; i < 4; i++)
		if ((p = varint_get(p, end, &nb)) == NULL)
			return -EINVAL;
	if (nb == 0)
		return -ENOENT;
	for (b = 0; b < nb; b++) {
		if ((p = varint_get(p, end, &v)) == NULL || v >= 2 * TALLY_DDS_KEYS + 1)
			return -EINVAL;
		key = b == 0 ? unzigzag(v) : key + (int)v + 1;
		if (key < -TALLY_DDS_KEYS || key > TALLY_DDS_KEYS)
			return -EINVAL;
		if (b == 0)
			*min = key;
		if ((p = varint_get(p, end, &v)) == NULL)
			return -EINVAL;
	}
	*max = key;
	return 0;
}
