/* SPDX-License-Identifier: BSD-3-Clause */
/* Layout, reset, merge and ordering of the per-lcore aggregation table. */
#include <stdlib.h>
#include <string.h>

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
tally_table_memsize(uint32_t max_series)
{
	if (max_series == 0 || max_series > TABLE_MAX_SERIES)
		return 0;
	return align64(sizeof(struct tally_table)) +
	       slot_count(max_series) * sizeof(struct tally_slot) +
	       align64((size_t)max_series * sizeof(uint32_t));
}

struct tally_table *
tally_table_init(void *mem, uint32_t max_series)
{
	struct tally_table *t = mem;
	uint64_t nslots;

	if (mem == NULL || max_series == 0 || max_series > TABLE_MAX_SERIES ||
	    ((uintptr_t)mem & 63) != 0)
		return NULL;
	nslots = slot_count(max_series);
	memset(t, 0, sizeof(*t));
	t->slots = (struct tally_slot *)((uint8_t *)mem + align64(sizeof(*t)));
	t->used_idx = (uint32_t *)(t->slots + nslots);
	t->mask = nslots - 1;
	t->max_series = max_series;
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
		tally_slot_merge(to, from);
		dst->records += from->count;
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
