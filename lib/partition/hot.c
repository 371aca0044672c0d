/* SPDX-License-Identifier: BSD-3-Clause */
/* Heavy-hitter detection per worker: count-min sketch plus an exact set of hot devices. */
#include <string.h>

#include "tally_partition.h"
#include "tally_table.h"

void
tally_hot_init(struct tally_hot *h, double share)
{
	memset(h, 0, sizeof(*h));
	tally_hot_set_share(h, share);
}

void
tally_hot_set_share(struct tally_hot *h, double share)
{
	/* Integer arithmetic per record: the share as a 32-bit binary fraction. */
	h->share_q32 = share <= 0   ? 0
		       : share >= 1 ? (uint64_t)1 << 32
				    : (uint64_t)(share * 4294967296.0);
}

static struct tally_hot_entry *
set_insert(struct tally_hot *h, uint64_t dev, uint64_t dev_hash)
{
	uint32_t i = tally_hot_home(dev_hash), n;

	/* Keep the set at most 3/4 full so lookups of absent devices stay short. */
	if (h->nhot >= TALLY_HOT_SET * 3 / 4)
		return NULL;
	for (n = 0; n < TALLY_HOT_SET; n++, i = (i + 1) & (TALLY_HOT_SET - 1)) {
		if (!h->set[i].used) {
			h->set[i] = (struct tally_hot_entry){.device_id = dev, .used = 1};
			h->nhot++;
			h->filter |= tally_hot_bit(dev_hash);
			return &h->set[i];
		}
	}
	return NULL;
}

int
tally_hot_promote(struct tally_hot *h, uint64_t dev, uint64_t dev_hash, uint32_t est)
{
	struct tally_hot_entry *e = set_insert(h, dev, dev_hash);

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
	uint64_t threshold = tally_hot_threshold(h, h->interval_records);
	uint32_t i, n = 0;

	for (i = 0; i < TALLY_HOT_SET; i++)
		if (h->set[i].used && h->set[i].records >= threshold)
			keep[n++] = h->set[i];
	memset(h->set, 0, sizeof(h->set));
	h->nhot = 0;
	h->filter = 0;
	for (i = 0; i < n; i++)
		set_insert(h, keep[i].device_id, tally_hash_device(keep[i].device_id));
	memset(h->cms, 0, sizeof(h->cms));
	h->prev_records = h->interval_records;
	h->interval_records = 0;
}
