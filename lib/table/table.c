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

#define HLL_SMALL_FIRST 16

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
	size_t len = sizeof(struct tally_hll_small) + (cap + TALLY_HLL_SMALL_PAD) * sizeof(uint32_t);
	uint64_t side = side_alloc(t, len);
	struct tally_hll_small *h;

	if (side == 0)
		return 0;
	h = side_at(t, side);
	memset(h, 0, len);
	h->magic = TALLY_HLL_SMALL_MAGIC;
	h->cap = (uint16_t)cap;
	return side;
}

/* s's side state is now at side (not 0): the slot keeps a copy of its form and bounds. */
static void
side_set(struct tally_table *t, struct tally_slot *s, uint64_t side)
{
	const struct tally_dds *d = side_at(t, side);
	const struct tally_hll_small *h = side_at(t, side);

	s->side = side;
	if (s->kind == TALLY_KIND_HISTOGRAM) {
		s->side_form = d->dense ? TALLY_SIDE_DENSE : TALLY_SIDE_SPARSE;
		s->side_cap = d->cap;
		s->side_lo = d->lo;
	} else if (h->magic == TALLY_HLL_SMALL_MAGIC) {
		s->side_form = TALLY_SIDE_SMALL;
		s->side_cap = h->cap;
		s->side_lo = 0;
	} else {
		s->side_form = TALLY_SIDE_HLL;
		s->side_cap = 0;
		s->side_lo = 0;
	}
}

/* Side state for a series of a side kind that has none yet: 0, or -1 when none is left. */
static int
side_start(struct tally_table *t, struct tally_slot *s, uint8_t kind)
{
	uint64_t side = kind == TALLY_KIND_HISTOGRAM ? sketch_new(t, TALLY_SKETCH_FIRST)
						     : hll_small_new(t, HLL_SMALL_FIRST);

	s->side = 0;
	if (side == 0)
		return -1;
	side_set(t, s, side);
	return 0;
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
	side_set(t, s, side);
	return side_at(t, side);
}

/*
 * A histogram value into s's sketch, n times (a statsd value standing for several); hint:
 * tally_table_side_hint()'s for it, or 0.
 */
static void
sketch_add(struct tally_table *t, struct tally_slot *s, double v, uint32_t hint, uint32_t n)
{
	struct tally_dds *d = side_at(t, s->side);
	uint64_t folded;
	int key, rc;

	if (hint & TALLY_HINT_HISTOGRAM) {
		key = (int16_t)(hint & 0xffff);
		rc = hint & TALLY_HINT_CLAMPED ? TALLY_DDS_CLAMPED : 0;
	} else {
		rc = tally_dds_key(v, &key);
	}
	if (key == 0) {
		d->zero += n;
		return;
	}
	/*
	 * The common cases: a busy series' dense store has the key (known from the slot's copy
	 * of its bounds: the header is not read, the count's line is the only one touched); a
	 * sparse one has it, where the search ahead found it, or room.
	 */
	if (__builtin_expect(s->side_form == TALLY_SIDE_DENSE &&
				     (unsigned int)(key - s->side_lo) < s->side_cap,
			     1)) {
		uint64_t *c = &d->counts[key - s->side_lo];

		*c = *c + n < *c ? UINT64_MAX : *c + n;
	} else if (!d->dense && n == 1 && TALLY_HINT_POS(hint) != 0 &&
		   tally_dds_sparse_add_at(d, (int)TALLY_HINT_POS(hint) - 1, key)) {
		/* counted where the search ahead found its bucket */
	} else if (!d->dense && d->used < d->cap) {
		tally_dds_add_key(d, key, n);
	} else {
		d = sketch_cover(t, s, key, key, 1);
		folded = d->folded;
		tally_dds_add_key(d, key, n);
		t->folded += d->folded - folded;
	}
	if (rc == TALLY_DDS_CLAMPED)
		d->clamped += n;
}

/*
 * Raise register idx to val in the small form h: 0, or -1 when it has no place for a new
 * register (3/4 full, or a probe that ran past the pad; nothing changed).
 */
static int
hll_small_put(struct tally_hll_small *h, unsigned int cap, uint32_t idx, unsigned int val)
{
	uint32_t i = tally_hll_small_home(cap, idx), end = cap + TALLY_HLL_SMALL_PAD;

	for (; i < end && h->e[i] != 0; i++) {
		if (h->e[i] >> 6 == idx) {
			if ((h->e[i] & 0x3f) < val)
				h->e[i] = idx << 6 | val;
			return 0;
		}
	}
	if (i == end || h->used >= cap / 4 * 3) /* the header is read for a new register only */
		return -1;
	h->e[i] = idx << 6 | val;
	h->used++;
	return 0;
}

/* A small form's registers as idx << 6 | value, ascending by idx, into out: their number. */
static uint32_t
hll_small_sorted(const struct tally_hll_small *h, uint32_t *out)
{
	uint32_t i, j, n = 0, end = h->cap + TALLY_HLL_SMALL_PAD;

	/* homes rise with idx: an insertion sort moves each entry a few places at most */
	for (i = 0; i < end; i++) {
		uint32_t e = h->e[i];

		if (e == 0)
			continue;
		for (j = n; j > 0 && out[j - 1] > e; j--)
			out[j] = out[j - 1];
		out[j] = e;
		n++;
	}
	return n;
}

/* Every register of the small form h into the dense HLL d. */
static void
hll_small_to_dense(const struct tally_hll_small *h, struct tally_hll *d)
{
	uint32_t i, end = h->cap + TALLY_HLL_SMALL_PAD;

	for (i = 0; i < end; i++)
		if (h->e[i] != 0)
			tally_hll_update(d, h->e[i] >> 6, h->e[i] & 0x3f);
}

/*
 * Raise register idx of s's HLL to val, growing the small form (or making it dense) when it
 * has no place: 0, or -1 when there is no memory for that (nothing changed).
 */
static int
hll_update(struct tally_table *t, struct tally_slot *s, uint32_t idx, unsigned int val)
{
	struct tally_hll_small *h = side_at(t, s->side), *n;
	unsigned int cap;
	uint64_t side;
	uint32_t i;

	/* from the slot's copy of the form: the header is not read (the line is the register's) */
	if (s->side_form == TALLY_SIDE_HLL) {
		tally_hll_raise(side_at(t, s->side), idx, val);
		return 0;
	}
	if (hll_small_put(h, s->side_cap, idx, val) == 0)
		return 0;
	/* a wider set, with every register placed again (a second try if a probe runs long) */
	for (cap = h->cap * 2u; cap <= TALLY_HLL_SMALL_MAX; cap *= 2) {
		uint64_t mark = t->side_used;
		int ok = 1;

		side = hll_small_new(t, cap);
		if (side == 0)
			return -1;
		n = side_at(t, side);
		for (i = 0; i < h->cap + TALLY_HLL_SMALL_PAD && ok; i++)
			if (h->e[i] != 0)
				ok = hll_small_put(n, cap, h->e[i] >> 6, h->e[i] & 0x3f) == 0;
		if (ok && hll_small_put(n, cap, idx, val) == 0) {
			side_set(t, s, side);
			return 0;
		}
		t->side_used = mark; /* the last handed out: given back */
	}
	side = side_alloc(t, sizeof(struct tally_hll));
	if (side == 0)
		return -1;
	tally_hll_init(side_at(t, side));
	hll_small_to_dense(h, side_at(t, side));
	tally_hll_raise(side_at(t, side), idx, val);
	side_set(t, s, side);
	return 0;
}

/* A distinct element into s's HLL; hint: tally_table_side_hint()'s for it, or 0. */
static int
distinct_add(struct tally_table *t, struct tally_slot *s, double v, uint32_t hint)
{
	uint64_t bits;
	uint32_t idx;
	unsigned int val;

	if (hint & TALLY_HINT_DISTINCT) {
		idx = (hint >> 6) & (TALLY_HLL_REGISTERS - 1);
		val = hint & 0x3f;
	} else {
		memcpy(&bits, &v, sizeof(bits));
		val = tally_hll_pattern_u64(bits, &idx);
	}
	return hll_update(t, s, idx, val);
}

/* The numeric fields of a histogram or distinct series (sum, min, max; no last), n values. */
static void
side_fields_add(struct tally_slot *s, uint8_t kind, double v, uint32_t n)
{
	if (s->count == 0) {
		s->count = n;
		s->sum = kind == TALLY_KIND_HISTOGRAM ? v * n : 0;
		s->min = kind == TALLY_KIND_HISTOGRAM ? v : 0;
		s->max = s->min;
		return;
	}
	s->count += n;
	if (kind != TALLY_KIND_HISTOGRAM)
		return;
	s->sum += v * n;
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

/* A record (n values of it for a histogram: a statsd weight) into s, of a side kind or not. */
static int
side_add(struct tally_table *t, struct tally_slot *s, uint8_t kind, double v, uint64_t ts_ns,
	 uint32_t hint, uint32_t n)
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
		sketch_add(t, s, v, kind == TALLY_KIND_HISTOGRAM ? hint : 0, n);
		break;
	case TALLY_KIND_DISTINCT:
		if (distinct_add(t, s, v, kind == TALLY_KIND_DISTINCT ? hint : 0) != 0) {
			t->side_full++;
			return -1;
		}
		n = 1;
		break;
	default:
		if (v != v) /* a distinct element's bits in a numeric series */
			v = 0;
		tally_slot_add(s, s->kind, v, ts_ns);
		t->records++;
		return 0;
	}
	side_fields_add(s, s->kind, v, n);
	t->records++;
	return 0;
}

int
tally_table_add_side(struct tally_table *t, struct tally_slot *s, uint8_t kind, double v,
		     uint64_t ts_ns, uint32_t hint)
{
	return side_add(t, s, kind, v, ts_ns, hint, 1);
}

int
tally_table_put_ext(struct tally_table *t, struct tally_slot *s, uint8_t kind, double v,
		    uint64_t ts_ns, uint32_t weight)
{
	if (kind == TALLY_KIND_GAUGE) {
		/* a delta on the window's gauge: from its last value, or from 0 */
		double base = s->count > 0 && s->kind == TALLY_KIND_GAUGE ? s->last : 0;

		return tally_table_put(t, s, TALLY_KIND_GAUGE, base + v, ts_ns);
	}
	if (kind != TALLY_KIND_HISTOGRAM || weight <= 1 ||
	    (s->count > 0 && s->kind != TALLY_KIND_HISTOGRAM))
		return tally_table_put(t, s, kind, v, ts_ns);
	return side_add(t, s, TALLY_KIND_HISTOGRAM, v, ts_ns, 0, weight);
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
	const struct tally_hll_small *h;
	int n;

	if (s->kind != TALLY_KIND_DISTINCT || s->side == 0)
		return 0;
	h = side_at(t, s->side);
	if (h->magic == TALLY_HLL_SMALL_MAGIC) {
		uint32_t regs[TALLY_HLL_SMALL_MAX + TALLY_HLL_SMALL_PAD];

		n = tally_hll_write_sparse(regs, hll_small_sorted(h, regs), buf, len);
		if (n != -ERANGE)
			return n;
		/* a register over 32: only the dense form holds it */
		if (len < TALLY_HLL_DENSE_SIZE)
			return -ENOSPC;
		tally_hll_init((struct tally_hll *)buf);
		hll_small_to_dense(h, (struct tally_hll *)buf);
		return TALLY_HLL_DENSE_SIZE;
	}
	if (len < TALLY_HLL_DENSE_SIZE)
		return -ENOSPC;
	memcpy(buf, h, TALLY_HLL_DENSE_SIZE);
	tally_hll_stale((struct tally_hll *)buf); /* the table's raises left its cache as it was */
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
	const struct tally_hll_small *h = src;
	uint32_t i;

	if (h->magic == TALLY_HLL_SMALL_MAGIC) {
		for (i = 0; i < h->cap + TALLY_HLL_SMALL_PAD; i++)
			if (h->e[i] != 0 && hll_update(t, s, h->e[i] >> 6, h->e[i] & 0x3f) != 0)
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
		d = sketch_cover(t, s, lo, hi, tally_dds_buckets(src));
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
