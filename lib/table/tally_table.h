/* SPDX-License-Identifier: BSD-3-Clause */
/* Per-lcore aggregation table: (device_id, metric_id) -> count, sum, min, max, last. */
#ifndef TALLY_TABLE_H
#define TALLY_TABLE_H

#include <stddef.h>
#include <stdint.h>

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
	double last;
	uint64_t last_ns; /* time of `last`: device time when known, else arrival time */
} __attribute__((aligned(64)));

_Static_assert(sizeof(struct tally_slot) == 64, "a slot is one cache line");

/*
 * Open-addressing table with linear probing over a power-of-two slot array, at most half
 * full. The list of used slots makes reset and iteration cost O(series), not O(slots).
 * Memory is given by the caller (hugepages in tally, test_malloc in tests) and never grows:
 * an insert beyond max_series is refused and counted in `full`.
 */
struct tally_table {
	struct tally_slot *slots;
	uint32_t *used_idx;   /* indices of used slots, in insertion order */
	uint64_t mask;
	uint32_t max_series;
	uint32_t series;
	uint64_t full;        /* records that found no room */
	uint64_t records;     /* records stored */
} __attribute__((aligned(64)));

/* Bytes needed for a table of max_series series (header, slots, index list). */
size_t tally_table_memsize(uint32_t max_series);

/*
 * Lay a table out in mem (64-byte aligned, tally_table_memsize() bytes, zeroed or not).
 * Returns the table, valid as long as mem is, or NULL if max_series is 0 or too big.
 */
struct tally_table *tally_table_init(void *mem, uint32_t max_series);

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

/* Fold one observation into a slot. */
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

/* Add one record; returns 0, or -1 when it was counted as `full`. */
static inline int
tally_table_add(struct tally_table *t, uint64_t device_id, uint64_t dev_hash, uint32_t metric_id,
		uint8_t kind, double v, uint64_t ts_ns)
{
	struct tally_slot *s = tally_table_lookup(t, device_id, dev_hash, metric_id);

	if (s == NULL) {
		t->full++;
		return -1;
	}
	tally_slot_add(s, kind, v, ts_ns);
	t->records++;
	return 0;
}

/* Fold a partial aggregate (another slot) into s; s must be used. */
void tally_slot_merge(struct tally_slot *s, const struct tally_slot *src);

/*
 * Merge every series of src into dst (src is not changed). Returns the number of series
 * that did not fit; their records are added to dst->full.
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
