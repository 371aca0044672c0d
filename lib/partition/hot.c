/* SPDX-License-Identifier: BSD-3-Clause */
/* Heavy-hitter detection per worker: count-min sketch plus an exact set of hot devices. */
#include <string.h>

#include "tally_partition.h"
#include "tally_table.h"

void
tally_hot_init(struct tally_hot *h, double share)
{
	memset(h, 0, sizeof(*h));
	h->share = share;
}

static inline uint32_t
set_home(uint64_t dev_hash)
{
	return (uint32_t)(dev_hash >> 20) & (TALLY_HOT_SET - 1);
}

static struct tally_hot_entry *
set_find(struct tally_hot *h, uint64_t dev, uint64_t dev_hash)
{
	uint32_t i = set_home(dev_hash), n;

	for (n = 0; n < TALLY_HOT_SET; n++, i = (i + 1) & (TALLY_HOT_SET - 1)) {
		if (!h->set[i].used)
			return NULL;
		if (h->set[i].device_id == dev)
			return &h->set[i];
	}
	return NULL;
}

static struct tally_hot_entry *
set_insert(struct tally_hot *h, uint64_t dev, uint64_t dev_hash)
{
	uint32_t i = set_home(dev_hash), n;

	/* Keep the set at most 3/4 full so lookups of absent devices stay short. */
	if (h->nhot >= TALLY_HOT_SET * 3 / 4)
		return NULL;
	for (n = 0; n < TALLY_HOT_SET; n++, i = (i + 1) & (TALLY_HOT_SET - 1)) {
		if (!h->set[i].used) {
			h->set[i] = (struct tally_hot_entry){.device_id = dev, .used = 1};
			h->nhot++;
			return &h->set[i];
		}
	}
	return NULL;
}

int
tally_hot_is(const struct tally_hot *h, uint64_t device_id, uint64_t dev_hash)
{
	return h->nhot > 0 && set_find((struct tally_hot *)h, device_id, dev_hash) != NULL;
}

int
tally_hot_observe(struct tally_hot *h, uint64_t dev, uint64_t dev_hash, uint32_t records)
{
	struct tally_hot_entry *e;
	uint32_t c0, c1, est;
	uint64_t base, threshold;

	if (h->share <= 0)
		return 0;
	h->interval_records += records;
	if (h->nhot > 0) {
		e = set_find(h, dev, dev_hash);
		if (e != NULL) {
			e->records += records;
			return 1;
		}
	}
	/* Two rows indexed by independent bits of the device hash. */
	c0 = (uint32_t)dev_hash & (TALLY_HOT_COLS - 1);
	c1 = (uint32_t)(dev_hash >> 40) & (TALLY_HOT_COLS - 1);
	h->cms[0][c0] += records;
	h->cms[1][c1] += records;
	est = h->cms[0][c0] < h->cms[1][c1] ? h->cms[0][c0] : h->cms[1][c1];
	base = h->prev_records > h->interval_records ? h->prev_records : h->interval_records;
	threshold = (uint64_t)(h->share * (double)base);
	if (threshold < TALLY_HOT_MIN_RECORDS)
		threshold = TALLY_HOT_MIN_RECORDS;
	if (est < threshold)
		return 0;
	e = set_insert(h, dev, dev_hash);
	if (e == NULL) {
		h->set_full++;
		return 0;
	}
	e->records = est;
	return 1;
}

void
tally_hot_tick(struct tally_hot *h)
{
	struct tally_hot_entry keep[TALLY_HOT_SET];
	uint64_t threshold = (uint64_t)(h->share * (double)h->interval_records);
	uint32_t i, n = 0;

	if (threshold < TALLY_HOT_MIN_RECORDS)
		threshold = TALLY_HOT_MIN_RECORDS;
	for (i = 0; i < TALLY_HOT_SET; i++)
		if (h->set[i].used && h->set[i].records >= threshold)
			keep[n++] = h->set[i];
	memset(h->set, 0, sizeof(h->set));
	h->nhot = 0;
	for (i = 0; i < n; i++)
		set_insert(h, keep[i].device_id, tally_hash_device(keep[i].device_id));
	memset(h->cms, 0, sizeof(h->cms));
	h->prev_records = h->interval_records;
	h->interval_records = 0;
}
