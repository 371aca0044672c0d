/* SPDX-License-Identifier: BSD-3-Clause */
/* Layout, reset, merge and ordering of the per-lcore aggregation table. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tally_ddsketch.h"
#include "tally_hll.h"
#include "tally_table.h"

#define TABLE_MAX_SERIES (1u << 30)

static uint64_t
slot_count(uint32_t max_series)
{
	uint64_t n = 16;

	while (n < 2ull * max_series)
		n <<= 1;
	return n;
}

static size_t
align64(size_t n)
{
	return (n + 63) & ~(size_t)63;
}

size_t
tally_table_memsize(uint32_t max_series, uint64_t side_bytes)
{
	if (max_series == 0 || max_series > TABLE_MAX_SERIES || side_bytes > TALLY_TABLE_SIDE_MAX)
		return 0;
	return align64(sizeof(struct tally_table)) +
	       slot_count(max_series) * sizeof(struct tally_slot) +
	       align64((size_t)max_series * sizeof(uint32_t)) + align64(side_bytes);
}

struct tally_table *
tally_table_init(void *mem, uint32_t max_series, uint64_t side_bytes)
{
	struct tally_table *t = mem;
	uint64_t nslots;

	if (mem == NULL || max_series == 0 || max_series > TABLE_MAX_SERIES ||
	    side_bytes > TALLY_TABLE_SIDE_MAX || ((uintptr_t)mem & 63) != 0)
		return NULL;
	nslots = slot_count(max_series);
	memset(t, 0, sizeof(*t));
	t->slots = (struct tally_slot *)((uint8_t *)mem + align64(sizeof(*t)));
	t->used_idx = (uint32_t *)(t->slots + nslots);
	t->mask = nslots - 1;
	t->max_series = max_series;
	t->side = (uint8_t *)t->used_idx + align64((size_t)max_series * sizeof(uint32_t));
	t->side_size = align64(side_bytes);
	memset(t->slots, 0, nslots * sizeof(struct tally_slot));
	return t;
}

void
tally_table_reset(struct tally_table *t)
{
	uint32_t i;

	for (i = 0; i < t->series; i++)
		t->slots[t->used_idx[i]].used = 0;
	t->series = 0;
	t->full = 0;
	t->records = 0;
	t->side_used = 0;
	t->side_full = 0;
	t->kind_mismatch = 0;
	t->folded = 0;
}

/* Side memory ---------------------------------------------------------------------------- */

/*
 * A distinct series' registers while few are set: idx << 6 | value, ascending, the same
 * entries Redis's sparse form writes. Past TALLY_HLL_SMALL_MAX it becomes a struct tally_hll
 * (whose bytes begin "HYLL"), told apart by the magic.
 */
#define HLL_SMALL_MAGIC 0x4c4d5354u /* "TSML" */
#define HLL_SMALL_FIRST 16

struct hll_small {
	uint32_t magic;
	uint16_t cap;
	uint16_t used;
	uint32_t e[];
};

/* Hand out len bytes of side memory (8-aligned): the slot's `side` value, or 0 when spent. */
static uint64_t
side_alloc(struct tally_table *t, size_t len)
{
	uint64_t off = t->side_used;

	len = (len + 7) & ~(size_t)7;
	if (t->side_size - t->side_used < len)
		return 0;
	t->side_used += len;
	return off + 1;
}

static inline void *
side_at(const struct tally_table *t, uint64_t side)
{
	return t->side + side - 1;
}

static uint64_t
sketch_new(struct tally_table *t, unsigned int cap)
{
	uint64_t side = side_alloc(t, tally_dds_memsize(cap));

	if (side != 0)
		tally_dds_init(side_at(t, side), cap);
	return side;
}

static uint64_t
hll_small_new(struct tally_table *t, unsigned int cap)
{
	uint64_t side = side_alloc(t, sizeof(struct hll_small) + cap * sizeof(uint32_t));
	struct hll_small *h;

	if (side == 0)
		return 0;
	h = side_at(t, side);
	h->magic = HLL_SMALL_MAGIC;
	h->cap = (uint16_t)cap;
	h->used = 0;
	return side;
}

/* Side state for a series of a side kind that has none yet: 0, or -1 when none is left. */
static int
side_start(struct tally_table *t, struct tally_slot *s, uint8_t kind)
{
	s->side = kind == TALLY_KIND_HISTOGRAM ? sketch_new(t, TALLY_SKETCH_FIRST)
					       : hll_small_new(t, HLL_SMALL_FIRST);
	s->side_len = 0;
	return s->side != 0 ? 0 : -1;
}

/*
 * A series' sketch starts sparse (sorted keys, searched) and small; once it holds
 * SKETCH_SPARSE_MAX buckets and its keys span at most TALLY_SKETCH_CAP, it moves to a dense
 * store (counts indexed by key: an update is an index and an add), which widens as its keys
 * do, up to TALLY_SKETCH_CAP keys. Keys that span more keep the sparse store, up to
 * TALLY_SKETCH_CAP buckets. Past either bound a value goes to its nearest bucket, counted.
 */
#define SKETCH_SPARSE_MAX 32
#define SKETCH_DENSE_MIN 64

static uint64_t
sketch_new_dense(struct tally_table *t, int lo, int hi)
{
	unsigned int range = (unsigned int)(hi - lo + 1), cap = SKETCH_DENSE_MIN;
	uint64_t side;
	int start;

	while (cap < range + range / 4 && cap < TALLY_SKETCH_CAP)
		cap *= 2;
	if (cap < range)
		cap = range;
	/* the room to spare on both sides, within the keys there are */
	start = lo - (int)(cap - range) / 2;
	if (start < -TALLY_DDS_KEYS)
		start = -TALLY_DDS_KEYS;
	if (start + (int)cap - 1 > TALLY_DDS_KEYS)
		start = TALLY_DDS_KEYS - (int)cap + 1;
	side = side_alloc(t, tally_dds_dense_memsize(cap));
	if (side != 0)
		tally_dds_init_dense(side_at(t, side), cap, start);
	return side;
}

/*
 * Move s's sketch to a store that holds keys lo .. hi and `more` new buckets besides the ones
 * it has, when it has not and the bounds allow; else it stays (and folds, counted).
 */
static struct tally_dds *
sketch_cover(struct tally_table *t, struct tally_slot *s, int lo, int hi, unsigned int more)
{
	struct tally_dds *d = side_at(t, s->side);
	unsigned int need = d->used + more, cap;
	uint64_t side = 0;
	int dlo, dhi;

	if (tally_dds_key_range(d, &dlo, &dhi) == 0) {
		lo = dlo < lo ? dlo : lo;
		hi = dhi > hi ? dhi : hi;
	}
	if (d->dense) {
		if (tally_dds_dense_has(d, lo) && tally_dds_dense_has(d, hi))
			return d;
		if (hi - lo + 1 <= TALLY_SKETCH_CAP)
			side = sketch_new_dense(t, lo, hi);
	} else {
		if (need <= d->cap || d->cap >= TALLY_SKETCH_CAP)
			return d;
		if (need > SKETCH_SPARSE_MAX && hi - lo + 1 <= TALLY_SKETCH_CAP) {
			side = sketch_new_dense(t, lo, hi);
		} else {
			for (cap = d->cap; cap < need && cap < TALLY_SKETCH_CAP; cap *= 2)
				;
			side = sketch_new(t, cap > TALLY_SKETCH_CAP ? TALLY_SKETCH_CAP : cap);
		}
	}
	if (side == 0)
		return d; /* no memory left, or keys too far apart: it folds, counted */
	tally_dds_merge(side_at(t, side), d);
	s->side = side;
	return side_at(t, side);
}

static void
sketch_add(struct tally_table *t, struct tally_slot *s, double v)
{
	struct tally_dds *d = side_at(t, s->side);
	uint64_t folded;
	int key, rc = tally_dds_key(v, &key);

	if (key == 0) {
		d->zero++;
		return;
	}
	/* the common cases: a busy series' dense store has the key; a sparse one has room */
	if (__builtin_expect(d->dense && tally_dds_dense_has(d, key), 1)) {
		tally_dds_dense_add(d, key, 1);
	} else if (!d->dense && d->used < d->cap) {
		tally_dds_add_key(d, key, 1);
	} else {
		d = sketch_cover(t, s, key, key, 1);
		folded = d->folded;
		tally_dds_add_key(d, key, 1);
		t->folded += d->folded - folded;
	}
	if (rc == TALLY_DDS_CLAMPED)
		d->clamped++;
}

/* Raise register idx to val in the small form h (which has room). */
static void
hll_small_update(struct hll_small *h, uint32_t idx, unsigned int val)
{
	const uint32_t *base = h->e;
	uint32_t n = h->used, lo;

	/* branch-free lower bound: registers of random elements are random */
	while (n > 1) {
		uint32_t half = n >> 1;

		base = base[half - 1] >> 6 < idx ? base + half : base;
		n -= half;
	}
	lo = (uint32_t)(base - h->e) + (n == 1 && *base >> 6 < idx);
	if (lo < h->used && h->e[lo] >> 6 == idx) {
		if ((h->e[lo] & 0x3f) < val)
			h->e[lo] = idx << 6 | val;
		return;
	}
	memmove(&h->e[lo + 1], &h->e[lo], (h->used - lo) * sizeof(h->e[0]));
	h->e[lo] = idx << 6 | val;
	h->used++;
}

/*
 * Raise register idx of s's HLL to val, growing the small form (or making it dense) when it
 * is full: 0, or -1 when there is no memory for that (nothing changed).
 */
static int
hll_update(struct tally_table *t, struct tally_slot *s, uint32_t idx, unsigned int val)
{
	struct hll_small *h = side_at(t, s->side), *n;
	uint64_t side;
	uint32_t i;

	if (h->magic != HLL_SMALL_MAGIC) {
		tally_hll_update(side_at(t, s->side), idx, val);
		return 0;
	}
	if (h->used == h->cap) {
		if (h->cap * 2u <= TALLY_HLL_SMALL_MAX) {
			side = hll_small_new(t, h->cap * 2u);
			if (side == 0)
				return -1;
			n = side_at(t, side);
			memcpy(n->e, h->e, h->used * sizeof(h->e[0]));
			n->used = h->used;
		} else {
			struct tally_hll *d;

			side = side_alloc(t, sizeof(struct tally_hll));
			if (side == 0)
				return -1;
			d = side_at(t, side);
			tally_hll_init(d);
			for (i = 0; i < h->used; i++)
				tally_hll_update(d, h->e[i] >> 6, h->e[i] & 0x3f);
			tally_hll_update(d, idx, val);
			s->side = side;
			return 0;
		}
		s->side = side;
		h = n;
	}
	hll_small_update(h, idx, val);
	return 0;
}

static int
distinct_add(struct tally_table *t, struct tally_slot *s, double v)
{
	uint64_t bits;
	uint32_t idx;
	unsigned int val;

	memcpy(&bits, &v, sizeof(bits));
	val = tally_hll_pattern_u64(bits, &idx);
	return hll_update(t, s, idx, val);
}

/* The numeric fields of a histogram or distinct series (sum, min, max; no last). */
static void
side_fields_add(struct tally_slot *s, uint8_t kind, double v)
{
	if (s->count == 0) {
		s->count = 1;
		s->sum = kind == TALLY_KIND_HISTOGRAM ? v : 0;
		s->min = s->sum;
		s->max = s->sum;
		return;
	}
	s->count++;
	if (kind != TALLY_KIND_HISTOGRAM)
		return;
	s->sum += v;
	s->min = v < s->min ? v : s->min;
	s->max = v > s->max ? v : s->max;
}

/* Undo the insert of s, the table's last series, which could not be given its state. */
static void
unlink_new(struct tally_table *t, struct tally_slot *s)
{
	s->used = 0;
	t->series--;
}

/* s was inserted by the lookup just before and could not be given what it was for. */
static void
unlink_if_new(struct tally_table *t, struct tally_slot *s)
{
	if (s->count == 0 && t->series > 0 &&
	    t->used_idx[t->series - 1] == (uint32_t)(s - t->slots))
		unlink_new(t, s);
}

int
tally_table_add_side(struct tally_table *t, struct tally_slot *s, uint8_t kind, double v,
		     uint64_t ts_ns)
{
	if (s->count == 0) {
		s->kind = (uint8_t)tally_kind_of(kind);
		if (tally_kind_side(s->kind) && side_start(t, s, s->kind) != 0) {
			unlink_if_new(t, s);
			t->side_full++;
			return -1;
		}
	} else if (s->kind != kind) {
		t->kind_mismatch++;
	}
	switch (s->kind) {
	case TALLY_KIND_HISTOGRAM:
		if (v != v) /* a NaN cannot be placed (only another kind's record brings one) */
			v = 0;
		sketch_add(t, s, v);
		break;
	case TALLY_KIND_DISTINCT:
		if (distinct_add(t, s, v) != 0) {
			t->side_full++;
			return -1;
		}
		break;
	default:
		if (v != v) /* a distinct element's bits in a numeric series */
			v = 0;
		tally_slot_add(s, s->kind, v, ts_ns);
		t->records++;
		return 0;
	}
	side_fields_add(s, s->kind, v);
	t->records++;
	return 0;
}

const struct tally_dds *
tally_table_sketch(const struct tally_table *t, const struct tally_slot *s)
{
	if (s->kind != TALLY_KIND_HISTOGRAM || s->side == 0)
		return NULL;
	return side_at(t, s->side);
}

int
tally_table_hll(const struct tally_table *t, const struct tally_slot *s, uint8_t *buf, size_t len)
{
	const struct hll_small *h;
	int n;

	if (s->kind != TALLY_KIND_DISTINCT || s->side == 0)
		return 0;
	h = side_at(t, s->side);
	if (h->magic == HLL_SMALL_MAGIC) {
		n = tally_hll_write_sparse(h->e, h->used, buf, len);
		if (n != -ERANGE)
			return n;
		/* a register over 32: only the dense form holds it */
		if (len < TALLY_HLL_DENSE_SIZE)
			return -ENOSPC;
		tally_hll_init((struct tally_hll *)buf);
		for (uint32_t i = 0; i < h->used; i++)
			tally_hll_update((struct tally_hll *)buf, h->e[i] >> 6, h->e[i] & 0x3f);
		return TALLY_HLL_DENSE_SIZE;
	}
	if (len < TALLY_HLL_DENSE_SIZE)
		return -ENOSPC;
	memcpy(buf, h, TALLY_HLL_DENSE_SIZE);
	return TALLY_HLL_DENSE_SIZE;
}

/* Numeric fields of src into s (both of kind s->kind, s holding some already). */
static void
side_fields_merge(struct tally_slot *s, const struct tally_slot *src)
{
	s->count += src->count;
	if (s->kind != TALLY_KIND_HISTOGRAM)
		return;
	s->sum += src->sum;
	s->min = src->min < s->min ? src->min : s->min;
	s->max = src->max > s->max ? src->max : s->max;
}

/* Every register of src's HLL (small or dense) into s's. */
static int
hll_fold(struct tally_table *t, struct tally_slot *s, const void *src)
{
	const struct hll_small *h = src;
	uint32_t i;

	if (h->magic == HLL_SMALL_MAGIC) {
		for (i = 0; i < h->used; i++)
			if (hll_update(t, s, h->e[i] >> 6, h->e[i] & 0x3f) != 0)
				return -1;
		return 0;
	}
	for (i = 0; i < TALLY_HLL_REGISTERS; i++) {
		unsigned int v = tally_hll_register(src, i);

		if (v != 0 && hll_update(t, s, i, v) != 0)
			return -1;
	}
	return 0;
}

/* Every bucket of src into s's sketch, growing it as far as the side memory lets. */
static void
sketch_fold(struct tally_table *t, struct tally_slot *s, const struct tally_dds *src)
{
	struct tally_dds *d = side_at(t, s->side);
	uint64_t folded;
	int lo, hi;

	if (tally_dds_key_range(src, &lo, &hi) == 0)
		d = sketch_cover(t, s, lo, hi, src->used);
	folded = d->folded + src->folded;
	tally_dds_merge(d, src);
	t->folded += d->folded - folded;
}

/*
 * The side state of a partial into s's: from src_t's side memory (src->side), or from bytes
 * (buf: a serialised sketch, a Redis HLL string). 0, -EINVAL (bytes that do not parse: nothing
 * changed) or -ENOSPC (no side memory for it).
 */
static int
side_fold(struct tally_table *t, struct tally_slot *s, const struct tally_table *src_t,
	  const struct tally_slot *src, const uint8_t *buf, size_t len)
{
	if (buf != NULL && s->kind == TALLY_KIND_HISTOGRAM) {
		struct tally_dds *d = side_at(t, s->side);
		int n = tally_dds_bytes_buckets(buf, len), lo = 0, hi = 0;
		uint64_t folded;
		int range = tally_dds_bytes_range(buf, len, &lo, &hi);

		if (n < 0 || range == -EINVAL)
			return -EINVAL;
		if (range == 0)
			d = sketch_cover(t, s, lo, hi, (unsigned int)n);
		folded = d->folded;
		if (tally_dds_merge_bytes(d, buf, len) != 0)
			return -EINVAL;
		t->folded += d->folded - folded - tally_dds_bytes_folded(buf, len);
		return 0;
	}
	if (buf != NULL) {
		struct tally_hll h;
		uint32_t i;

		tally_hll_init(&h);
		if (tally_hll_merge_raw(&h, buf, len) != 0)
			return -EINVAL;
		for (i = 0; i < TALLY_HLL_REGISTERS; i++) {
			unsigned int v = tally_hll_register(&h, i);

			/* registers folded before running out stay: a register max is never too much */
			if (v != 0 && hll_update(t, s, i, v) != 0)
				return -ENOSPC;
		}
		return 0;
	}
	if (src->side == 0 || src_t == NULL)
		return 0;
	if (s->kind == TALLY_KIND_HISTOGRAM) {
		sketch_fold(t, s, side_at(src_t, src->side));
		return 0;
	}
	return hll_fold(t, s, side_at(src_t, src->side)) != 0 ? -ENOSPC : 0;
}

static int
fold_partial(struct tally_table *t, struct tally_slot *s, const struct tally_table *src_t,
	     const struct tally_slot *src, const uint8_t *buf, size_t len)
{
	int fresh = s->count == 0, rc;

	if (src->count == 0) {
		unlink_if_new(t, s); /* nothing to keep: a slot the lookup just made goes again */
		return 0;
	}
	if (!fresh && s->kind != src->kind) {
		t->kind_mismatch += src->count;
		/* a sketch or HLL cannot take another kind's partial: left out, counted */
		if (tally_kind_side(s->kind) || tally_kind_side(src->kind))
			return 0;
		/* counter and gauge have the same fields: merged */
	}
	if (!tally_kind_side(src->kind)) {
		tally_slot_merge(s, src);
		t->records += src->count;
		return 0;
	}
	if (fresh) {
		s->kind = src->kind;
		if (side_start(t, s, s->kind) != 0) {
			unlink_if_new(t, s);
			t->side_full += src->count;
			return -ENOSPC;
		}
	}
	rc = side_fold(t, s, src_t, src, buf, len);
	if (rc != 0) {
		if (rc == -ENOSPC)
			t->side_full += src->count;
		if (fresh)
			unlink_if_new(t, s);
		return rc;
	}
	if (fresh) {
		s->count = src->count;
		s->sum = src->sum;
		s->min = src->min;
		s->max = src->max;
	} else {
		side_fields_merge(s, src);
	}
	t->records += src->count;
	return 0;
}

int
tally_table_fold(struct tally_table *t, struct tally_slot *s, const struct tally_table *src_t,
		 const struct tally_slot *src)
{
	return fold_partial(t, s, src_t, src, NULL, 0);
}

int
tally_table_fold_bytes(struct tally_table *t, struct tally_slot *s, const struct tally_slot *src,
		       const uint8_t *buf, size_t len)
{
	return fold_partial(t, s, NULL, src, buf, len);
}

void
tally_slot_merge(struct tally_slot *s, const struct tally_slot *src)
{
	if (src->count == 0)
		return;
	if (s->count == 0) {
		s->kind = src->kind;
		s->count = src->count;
		s->sum = src->sum;
		s->min = src->min;
		s->max = src->max;
		s->last = src->last;
		s->last_ns = src->last_ns;
		return;
	}
	s->count += src->count;
	s->sum += src->sum;
	s->min = src->min < s->min ? src->min : s->min;
	s->max = src->max > s->max ? src->max : s->max;
	if (src->last_ns >= s->last_ns) {
		s->last = src->last;
		s->last_ns = src->last_ns;
	}
}

uint32_t
tally_table_merge(struct tally_table *dst, const struct tally_table *src)
{
	uint32_t i, lost = 0;

	for (i = 0; i < src->series; i++) {
		const struct tally_slot *from = tally_table_at(src, i);
		struct tally_slot *to;

		to = tally_table_lookup(dst, from->device_id, tally_hash_device(from->device_id),
					from->metric_id);
		if (to == NULL) {
			dst->full += from->count;
			lost++;
			continue;
		}
		if (tally_table_fold(dst, to, src, from) != 0)
			lost++;
	}
	return lost;
}

/* qsort has no context argument: the slots to compare through are passed by this pointer. */
static __thread const struct tally_slot *sort_slots;

static int
cmp_idx(const void *a, const void *b)
{
	const struct tally_slot *x = &sort_slots[*(const uint32_t *)a];
	const struct tally_slot *y = &sort_slots[*(const uint32_t *)b];

	if (x->device_id != y->device_id)
		return x->device_id < y->device_id ? -1 : 1;
	if (x->metric_id != y->metric_id)
		return x->metric_id < y->metric_id ? -1 : 1;
	return 0;
}

void
tally_table_sort(struct tally_table *t)
{
	sort_slots = t->slots;
	qsort(t->used_idx, t->series, sizeof(t->used_idx[0]), cmp_idx);
}

/* Byte d of a key, least significant first: metric_id's 4, then device_id's 8. */
static inline unsigned int
sort_byte(const struct tally_sort_key *k, uint32_t d)
{
	return d < 4 ? (k->metric_id >> (8 * d)) & 0xff : (k->device_id >> (8 * (d - 4))) & 0xff;
}

size_t
tally_table_sort_scratch_size(uint32_t max_series)
{
	return 2 * (size_t)max_series * sizeof(struct tally_sort_key);
}

/*
 * The same order as tally_table_sort(), by an LSD radix sort of (device_id, metric_id) keys
 * gathered once: no comparison touches a slot, so a window of 100,000s of series sorts in a
 * few passes over contiguous memory instead of millions of cache misses. A byte that is the
 * same in every key (the high bytes of small ids) costs one counting pass and no move.
 */
void
tally_table_sort_fast(struct tally_table *t, struct tally_sort_key *scratch)
{
	struct tally_sort_key *a = scratch, *b = scratch + t->max_series, *x;
	uint32_t n = t->series, i, d;
	size_t count[256];

	for (i = 0; i < n; i++) {
		const struct tally_slot *s = &t->slots[t->used_idx[i]];

		a[i] = (struct tally_sort_key){s->device_id, s->metric_id, t->used_idx[i]};
	}
	/* least significant digit first: 4 bytes of metric_id, then 8 of device_id */
	for (d = 0; d < 12; d++) {
		size_t sum = 0, c, k;

		memset(count, 0, sizeof(count));
		for (i = 0; i < n; i++)
			count[sort_byte(&a[i], d)]++;
		for (c = 0; c < 256 && count[c] != n; c++)
			;
		if (c < 256)
			continue; /* one bucket holds them all: this byte orders nothing */
		for (c = 0; c < 256; c++) {
			k = count[c];
			count[c] = sum;
			sum += k;
		}
		for (i = 0; i < n; i++)
			b[count[sort_byte(&a[i], d)]++] = a[i];
		x = a;
		a = b;
		b = x;
	}
	for (i = 0; i < n; i++)
		t->used_idx[i] = a[i].idx;
}
