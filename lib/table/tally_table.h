/* SPDX-License-Identifier: BSD-3-Clause */
/* Per-lcore aggregation table: (device_id, metric_id) -> the aggregate of the series' kind. */
#ifndef TALLY_TABLE_H
#define TALLY_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include <string.h>

#include "tally_aggregate.h"
#include "tally_ddsketch.h"
#include "tally_hll.h"

/*
 * Side memory of a table: a histogram's sketch starts with TALLY_SKETCH_FIRST buckets and
 * holds at most TALLY_SKETCH_CAP (10,272 bytes): about 9 decades of values at 1%, and what the
 * sink's payload bounds allow for 64 series of a chunk. A distinct series' HLL is a small set
 * of its registers (struct tally_hll_small, 4 bytes a place) of up to TALLY_HLL_SMALL_MAX
 * places, 3/4 of them used at most, then Redis's dense form (12,304 bytes).
 */
#define TALLY_SKETCH_FIRST 8
#define TALLY_SKETCH_CAP 1024
#define TALLY_HLL_SMALL_MAX 1024
#define TALLY_TABLE_SIDE_MAX (1ull << 40)
/* Side memory set aside per histogram or distinct series of --histogram/distinct-series. */
#define TALLY_SIDE_PER_SERIES 4096

/*
 * A distinct series' registers while few are set: an open-addressed set of entries
 * idx << 6 | value (0: an empty place) of `cap` places (a power of two) and
 * TALLY_HLL_SMALL_PAD more past them, so that a probe never wraps. A register's home is
 * tally_hll_small_home(): one place, known from the element's hash alone, so its line can be
 * prefetched; homes rise with idx, so the set reads almost in register order. It doubles at
 * 3/4 full (or when a probe runs past the pad); past TALLY_HLL_SMALL_MAX places it becomes a
 * struct tally_hll (whose bytes begin "HYLL"), told apart by the magic.
 */
#define TALLY_HLL_SMALL_MAGIC 0x4c4d5354u /* "TSML" */
#define TALLY_HLL_SMALL_PAD 16u

struct tally_hll_small {
	uint32_t magic;
	uint16_t cap;
	uint16_t used;
	uint32_t e[];
};

static inline uint32_t
tally_hll_small_home(uint32_t cap, uint32_t idx)
{
	return idx >> (TALLY_HLL_P - __builtin_ctz(cap));
}

/*
 * What the per-record path works out for a histogram or distinct record a few records ahead
 * of its update (tally_table_side_hint()), for the update to use: 0, nothing; a histogram's
 * bucket key (low 16 bits, signed), whether its value was clamped, and for a sparse sketch
 * the position its bucket was found at, plus one (TALLY_HINT_POS; 0 when absent); or a
 * distinct element's register and value (idx << 6 | value).
 */
#define TALLY_HINT_HISTOGRAM (1u << 31)
#define TALLY_HINT_DISTINCT (1u << 30)
#define TALLY_HINT_CLAMPED (1u << 29)
#define TALLY_HINT_POS(h) (((h) >> 16) & 0x7ff)

/*
 * One series, one cache line. A device's metrics sit in adjacent slots (home slot is
 * hash(device_id) + metric_id), so a datagram's records touch few lines.
 */
struct tally_slot {
	uint64_t device_id;
	uint32_t metric_id;
	uint8_t kind;
	uint8_t used;
	uint16_t pad;
	uint64_t count;
	double sum;
	double min;
	double max;
	union {
		struct { /* counter, gauge */
			double last;
			uint64_t last_ns; /* time of `last`: device time when known, else arrival */
		};
		struct {	       /* histogram, distinct: their state in the table's side memory */
			uint64_t side; /* its offset + 1; 0: none (no room was left for it) */
			/*
			 * What the per-record path needs of the state's header, copied here
			 * whenever the state moves, so that an update reads no header: its form
			 * (TALLY_SIDE_*), places (a sketch store's or small HLL's cap) and a dense
			 * sketch's first key.
			 */
			uint16_t side_cap;
			int16_t side_lo;
			uint8_t side_form;
			uint8_t side_pad[3];
		};
	};
} __attribute__((aligned(64)));

_Static_assert(sizeof(struct tally_slot) == 64, "a slot is one cache line");

/* The form of a series' side state (slot side_form). */
#define TALLY_SIDE_SPARSE 1 /* a sketch, sparse store */
#define TALLY_SIDE_DENSE 2  /* a sketch, dense store */
#define TALLY_SIDE_SMALL 3  /* an HLL's small set of registers */
#define TALLY_SIDE_HLL 4    /* an HLL, Redis's dense string */

/*
 * Open-addressing table with linear probing over a power-of-two slot array, at most half
 * full. The list of used slots makes reset and iteration cost O(series), not O(slots).
 * Memory is given by the caller (hugepages in tally, test_malloc in tests) and never grows:
 * an insert beyond max_series is refused and counted in `full`.
 *
 * Histogram sketches and distinct-count HLLs do not fit a slot: they live in the table's side
 * memory, side_size bytes set aside with the table, handed out in order and all given back at
 * reset (no allocation, no free list). A sketch starts with 8 buckets and moves to twice its
 * room when it needs more, up to TALLY_SKETCH_CAP; an HLL starts as a short sorted list of
 * registers and becomes Redis's dense 12,304 bytes past TALLY_HLL_SMALL_MAX of them. When the
 * side memory is spent, a sketch that cannot grow folds values into its nearest bucket
 * (counted in the sketch and in `folded`), and a record whose series has no state yet, or
 * whose HLL cannot grow, is not stored: counted in `side_full`.
 */
struct tally_table {
	struct tally_slot *slots;
	uint32_t *used_idx;   /* indices of used slots, in insertion order */
	uint64_t mask;
	uint32_t max_series;
	uint32_t series;
	uint64_t full;        /* records that found no room */
	uint64_t records;     /* records stored */
	uint8_t *side;        /* side memory: sketches and HLLs */
	uint64_t side_size;
	uint64_t side_used;
	uint64_t side_full;     /* records not stored: no side memory for their series */
	uint64_t kind_mismatch; /* records of another kind than their series', stored as its kind */
	uint64_t folded;        /* values a full sketch put in a neighbouring bucket */
	/*
	 * The kinds a metric catalog gives (NULL: none): kinds[id] for ids below
	 * TALLY_TABLE_KIND_IDS (0: the catalog says nothing), kind_of() above. A record of
	 * another kind is counted in kind_mismatch and stored as the catalog's kind.
	 */
	const uint8_t *kinds;
	uint8_t (*kind_of)(const void *ctx, uint32_t id);
	const void *kind_ctx;
} __attribute__((aligned(64)));

#define TALLY_TABLE_KIND_IDS 65536

/* Give t a catalog's kinds (kinds: TALLY_TABLE_KIND_IDS entries; kind_of may be NULL). */
static inline void
tally_table_set_kinds(struct tally_table *t, const uint8_t *kinds,
		      uint8_t (*kind_of)(const void *ctx, uint32_t id), const void *ctx)
{
	t->kinds = kinds;
	t->kind_of = kind_of;
	t->kind_ctx = ctx;
}

/* Bytes needed for a table of max_series series (header, slots, index list, side memory). */
size_t tally_table_memsize(uint32_t max_series, uint64_t side_bytes);

/*
 * Lay a table out in mem (64-byte aligned, tally_table_memsize() bytes, zeroed or not).
 * Returns the table, valid as long as mem is, or NULL if max_series is 0 or too big.
 */
struct tally_table *tally_table_init(void *mem, uint32_t max_series, uint64_t side_bytes);

/* Forget every series; cost is proportional to the series held. */
void tally_table_reset(struct tally_table *t);

/* Stable hash of a device id (also the owner hash of later partitioning). */
static inline uint64_t
tally_hash_device(uint64_t device_id)
{
	uint64_t h = device_id;

	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

static inline struct tally_slot *
tally_table_home(const struct tally_table *t, uint64_t dev_hash, uint32_t metric_id)
{
	return &t->slots[(dev_hash + metric_id) & t->mask];
}

static inline void
tally_table_prefetch(const struct tally_table *t, uint64_t dev_hash, uint32_t metric_id)
{
	__builtin_prefetch(tally_table_home(t, dev_hash, metric_id), 1, 3);
}

/* Find the slot of a series, inserting it if absent; NULL when the table is full. */
static inline struct tally_slot *
tally_table_lookup(struct tally_table *t, uint64_t device_id, uint64_t dev_hash,
		   uint32_t metric_id)
{
	uint64_t i = (dev_hash + metric_id) & t->mask;

	for (;;) {
		struct tally_slot *s = &t->slots[i];

		if (!s->used) {
			if (t->series >= t->max_series)
				return NULL;
			s->used = 1;
			s->device_id = device_id;
			s->metric_id = metric_id;
			s->count = 0;
			t->used_idx[t->series++] = (uint32_t)i;
			return s;
		}
		if (s->device_id == device_id && s->metric_id == metric_id)
			return s;
		i = (i + 1) & t->mask;
	}
}

/* Fold one observation into a slot of a counter or gauge. */
static inline void
tally_slot_add(struct tally_slot *s, uint8_t kind, double v, uint64_t ts_ns)
{
	if (s->count == 0) {
		s->kind = kind;
		s->count = 1;
		s->sum = v;
		s->min = v;
		s->max = v;
		s->last = v;
		s->last_ns = ts_ns;
		return;
	}
	s->count++;
	s->sum += v;
	s->min = v < s->min ? v : s->min;
	s->max = v > s->max ? v : s->max;
	if (ts_ns >= s->last_ns) {
		s->last = v;
		s->last_ns = ts_ns;
	}
}

/* The slot of a series if the table has it, or NULL; nothing is inserted. */
static inline const struct tally_slot *
tally_table_find(const struct tally_table *t, uint64_t device_id, uint64_t dev_hash,
		 uint32_t metric_id)
{
	uint64_t i = (dev_hash + metric_id) & t->mask;

	for (;;) {
		const struct tally_slot *s = &t->slots[i];

		if (!s->used)
			return NULL;
		if (s->device_id == device_id && s->metric_id == metric_id)
			return s;
		i = (i + 1) & t->mask;
	}
}

/*
 * Bring a histogram's sketch or a distinct series' registers toward the cache ahead of its
 * update: they lie apart from the slot, wherever the side memory had room, so without this
 * every such record waits for memory on its own. Step one, a few records ahead (the slot
 * prefetched before): find the series, work out the record's bucket key or register (the
 * hint, which the update uses instead of working it out again) and prefetch the one line the
 * update touches, from what the slot keeps of the state's header: a dense sketch's count, an
 * HLL's register, the home of a register in a small set; for a sparse sketch its header and
 * keys. Step two, fewer records ahead, for a sparse sketch only: search its keys (in by then)
 * and prefetch the count, the position going into the hint.
 */
static inline uint32_t
tally_table_side_hint(const struct tally_table *t, const struct tally_slot *s, uint8_t kind,
		      double v)
{
	const uint8_t *p = s != NULL && s->side != 0 && s->kind == kind ? t->side + s->side - 1
									 : NULL;
	uint32_t hint, idx;

	if (kind == TALLY_KIND_DISTINCT) {
		uint64_t bits;
		unsigned int val;

		memcpy(&bits, &v, sizeof(bits));
		val = tally_hll_pattern_u64(bits, &idx);
		hint = TALLY_HINT_DISTINCT | idx << 6 | val;
		if (p == NULL)
			return hint;
		if (s->side_form == TALLY_SIDE_HLL)
			__builtin_prefetch(p + TALLY_HLL_HDR_SIZE + idx * TALLY_HLL_BITS / 8, 1, 3);
		else
			__builtin_prefetch(&((const struct tally_hll_small *)p)
						    ->e[tally_hll_small_home(s->side_cap, idx)],
					   1, 3);
		return hint;
	}
	if (kind == TALLY_KIND_HISTOGRAM) {
		int key, rc = tally_dds_key(v, &key);

		if (rc < 0)
			return 0; /* NaN: the update sees to it */
		hint = TALLY_HINT_HISTOGRAM | (rc == TALLY_DDS_CLAMPED ? TALLY_HINT_CLAMPED : 0) |
		       (uint16_t)key;
		if (p == NULL || key == 0)
			return hint;
		if (s->side_form == TALLY_SIDE_DENSE) {
			if ((unsigned int)(key - s->side_lo) < s->side_cap)
				__builtin_prefetch(&((const struct tally_dds *)p)->counts[key - s->side_lo],
						   1, 3);
		} else {
			/* the header and the keys (32 bytes and 2 a key) */
			__builtin_prefetch(p, 1, 3);
			if (s->side_cap > 16)
				__builtin_prefetch(p + 64, 1, 3);
		}
		return hint;
	}
	return 0;
}

/* Step one: the series of a record (NULL: not there yet) and its hint into *hint. */
static inline struct tally_slot *
tally_table_side_prefetch(const struct tally_table *t, uint64_t device_id, uint64_t dev_hash,
			  uint32_t metric_id, uint8_t kind, double v, uint32_t *hint)
{
	const struct tally_slot *s = tally_table_find(t, device_id, dev_hash, metric_id);

	*hint = kind >= TALLY_KIND_HISTOGRAM ? tally_table_side_hint(t, s, kind, v) : 0;
	return (struct tally_slot *)(uintptr_t)s;
}

/* Step two: for a record of a sparse sketch, its bucket's position into the hint. */
static inline uint32_t
tally_table_side_hint2(const struct tally_table *t, const struct tally_slot *s, uint32_t hint)
{
	const struct tally_dds *d;
	int pos, key = (int16_t)(hint & 0xffff);

	if (!(hint & TALLY_HINT_HISTOGRAM) || s == NULL || s->side == 0 ||
	    s->kind != TALLY_KIND_HISTOGRAM || s->side_form != TALLY_SIDE_SPARSE || key == 0)
		return hint;
	d = (const struct tally_dds *)(t->side + s->side - 1);
	pos = tally_dds_sparse_find(d, key);
	if (pos < 0)
		return hint;
	__builtin_prefetch(tally_dds_sparse_count(d, pos), 1, 3);
	return hint | (uint32_t)(pos + 1) << 16;
}

/*
 * Add a record of a histogram or distinct series, or one whose kind differs from its series'
 * (out of line: counters and gauges never come here). s was just returned by
 * tally_table_lookup(). Returns 0, or -1 when it was counted in `side_full`.
 */
int tally_table_add_side(struct tally_table *t, struct tally_slot *s, uint8_t kind, double v,
			 uint64_t ts_ns, uint32_t hint);

/*
 * Add one record into its series' slot s (from tally_table_lookup()); 0, or -1 when it was
 * not stored (counted in side_full).
 */
/* The catalog's kind of a record's metric: the record's own when it gives none. */
static inline uint8_t
tally_table_kind(struct tally_table *t, uint32_t metric_id, uint8_t kind, double *v)
{
	uint8_t want = metric_id < TALLY_TABLE_KIND_IDS ? t->kinds[metric_id]
			: t->kind_of != NULL		      ? t->kind_of(t->kind_ctx, metric_id)
							      : 0;

	if (want == 0 || want == kind)
		return kind;
	t->kind_mismatch++;
	/* a distinct element's bits may read as NaN or infinity: no number for a sum */
	if (kind == TALLY_KIND_DISTINCT && want != TALLY_KIND_DISTINCT && *v - *v != 0)
		*v = 0;
	return want;
}

static inline int
tally_table_put_hint(struct tally_table *t, struct tally_slot *s, uint8_t kind, double v,
		     uint64_t ts_ns, uint32_t hint)
{
	if (__builtin_expect(t->kinds != NULL, 0)) {
		uint8_t want = tally_table_kind(t, s->metric_id, kind, &v);

		if (want != kind)
			hint = 0; /* worked out for the record's own kind */
		kind = want;
	}
	if (__builtin_expect(kind <= TALLY_KIND_GAUGE && (s->count == 0 || s->kind == kind), 1)) {
		tally_slot_add(s, kind, v, ts_ns);
		t->records++;
		return 0;
	}
	return tally_table_add_side(t, s, kind, v, ts_ns, hint);
}

static inline int
tally_table_put(struct tally_table *t, struct tally_slot *s, uint8_t kind, double v,
		uint64_t ts_ns)
{
	return tally_table_put_hint(t, s, kind, v, ts_ns, 0);
}

/* Add one record; returns 0, or -1 when it was counted as `full` (or `side_full`). */
static inline int
tally_table_add(struct tally_table *t, uint64_t device_id, uint64_t dev_hash, uint32_t metric_id,
		uint8_t kind, double v, uint64_t ts_ns)
{
	struct tally_slot *s = tally_table_lookup(t, device_id, dev_hash, metric_id);

	if (s == NULL) {
		t->full++;
		return -1;
	}
	return tally_table_put(t, s, kind, v, ts_ns);
}

/*
 * What v1 cannot carry (statsd's): a gauge delta (kind GAUGE: the window's gauge moves from its
 * last value, or 0, by v) or a histogram value standing for `weight` values (count and sum
 * grow by weight, its bucket by weight). 0, or -1 as tally_table_put().
 */
int tally_table_put_ext(struct tally_table *t, struct tally_slot *s, uint8_t kind, double v,
			uint64_t ts_ns, uint32_t weight);

/* The sketch of a histogram series of t, or NULL (none: no side memory was left for it). */
const struct tally_dds *tally_table_sketch(const struct tally_table *t, const struct tally_slot *s);

/*
 * The state of a distinct series as a Redis HLL string (sparse while its registers allow,
 * else dense) into buf; its length, 0 when the series has none, -ENOSPC when len is short
 * (TALLY_HLL_DENSE_SIZE always suffices).
 */
int tally_table_hll(const struct tally_table *t, const struct tally_slot *s, uint8_t *buf,
		    size_t len);

/*
 * Fold a partial aggregate (src, with its side state in src_t, which may be NULL for a slot of
 * a counter or gauge) into s, a slot of t from tally_table_lookup(). 0, or -ENOSPC when src's
 * side state found no room (its records are then counted in t->side_full and left out; a slot
 * the lookup had just inserted is given back). Partials of different kinds: see README.
 */
int tally_table_fold(struct tally_table *t, struct tally_slot *s, const struct tally_table *src_t,
		     const struct tally_slot *src);

/*
 * The same with src's side state as bytes (tally_dds_serialise() for a histogram, a Redis HLL
 * string for a distinct series; buf NULL: none), as the spool keeps it. 0, -ENOSPC (no side
 * memory: counted in side_full), or -EINVAL (bytes that do not parse: nothing stored).
 */
int tally_table_fold_bytes(struct tally_table *t, struct tally_slot *s, const struct tally_slot *src,
			   const uint8_t *buf, size_t len);

/* Fold a partial aggregate of a counter or gauge (another slot) into s; s must be used. */
void tally_slot_merge(struct tally_slot *s, const struct tally_slot *src);

/*
 * Merge every series of src into dst (src is not changed), sketches and HLLs too. Returns the
 * number of series that did not fit; their records are added to dst->full (or side_full).
 */
uint32_t tally_table_merge(struct tally_table *dst, const struct tally_table *src);

/* Sort the used-slot list by (device_id, metric_id), so a device's series are contiguous. */
void tally_table_sort(struct tally_table *t);

/* A sort key of tally_table_sort_fast(). */
struct tally_sort_key {
	uint64_t device_id;
	uint32_t metric_id;
	uint32_t idx;
};

/* Bytes of the scratch tally_table_sort_fast() needs for a table of max_series series. */
size_t tally_table_sort_scratch_size(uint32_t max_series);

/*
 * The same order as tally_table_sort(), much faster on large tables, with no allocation:
 * scratch is the caller's, tally_table_sort_scratch_size(t->max_series) bytes.
 */
void tally_table_sort_fast(struct tally_table *t, struct tally_sort_key *scratch);

/* The i-th used slot (0 <= i < t->series), in list order. */
static inline const struct tally_slot *
tally_table_at(const struct tally_table *t, uint32_t i)
{
	return &t->slots[t->used_idx[i]];
}

#endif /* TALLY_TABLE_H */
