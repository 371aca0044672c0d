/* SPDX-License-Identifier: BSD-3-Clause */
/* Counter names and the one list of self-stats fields. */
#include <stdio.h>

#include "tally_stats.h"

const char *const tally_worker_counter_names[TALLY_WC_MAX] = {
#define TALLY_WC_NAME(n) #n,
	TALLY_FOREACH_WORKER_COUNTER(TALLY_WC_NAME)
#undef TALLY_WC_NAME
};

const char *const tally_control_counter_names[TALLY_CC_MAX] = {
#define TALLY_CC_NAME(n) #n,
	TALLY_FOREACH_CONTROL_COUNTER(TALLY_CC_NAME)
#undef TALLY_CC_NAME
};

void
tally_worker_stats_add(struct tally_worker_stats *dst, const struct tally_worker_stats *src)
{
	unsigned int i;

	for (i = 0; i < TALLY_WC_MAX; i++)
		dst->c[i] += src->c[i];
	for (i = 0; i < TALLY_MALFORMED_MAX; i++)
		dst->malformed[i] += src->malformed[i];
	for (i = 0; i < TALLY_STATSD_REASON_MAX; i++)
		dst->statsd[i] += src->statsd[i];
}

void
tally_stats_foreach(const struct tally_stats_totals *t,
		    void (*fn)(void *ctx, const char *name, uint64_t value), void *ctx)
{
	char name[64];
	unsigned int i;

	/* table_full covers every place a record can find no room: worker or merged table. */
	for (i = 0; i < TALLY_WC_MAX; i++)
		fn(ctx, tally_worker_counter_names[i],
		   t->w.c[i] + (i == TALLY_WC_table_full ? t->ctl.c[TALLY_CC_merge_full] : 0));
	for (i = 0; i < TALLY_MALFORMED_MAX; i++) {
		snprintf(name, sizeof(name), "malformed:%s", tally_malformed_name(i));
		fn(ctx, name, t->w.malformed[i]);
	}
	for (i = 0; i < TALLY_STATSD_REASON_MAX; i++) {
		snprintf(name, sizeof(name), "statsd:%s", tally_statsd_reason_name(i));
		fn(ctx, name, t->w.statsd[i]);
	}
	for (i = 0; i < TALLY_CC_MAX; i++)
		fn(ctx, tally_control_counter_names[i], t->ctl.c[i]);
	fn(ctx, "rx_missed", t->rx_missed);
	fn(ctx, "rx_nombuf", t->rx_nombuf);
	fn(ctx, "workers", t->workers);
	fn(ctx, "uptime_s", t->uptime_s);
	/* The balance between workers: w<i>:records is what worker i aggregated. */
	for (i = 0; i < t->workers && i < TALLY_STATS_MAX_WORKERS; i++) {
		static const struct {
			const char *name;
			unsigned int counter;
		} per[] = {
			{"records", TALLY_WC_aggregated},     {"series", TALLY_WC_series},
			{"forwarded", TALLY_WC_forwarded},    {"received", TALLY_WC_received},
			{"hot_records", TALLY_WC_hot_records}, {"ring_full", TALLY_WC_ring_full},
		};
		unsigned int k;

		if (t->per_worker[i] == NULL)
			continue;
		for (k = 0; k < sizeof(per) / sizeof(per[0]); k++) {
			snprintf(name, sizeof(name), "w%u:%s", i, per[k].name);
			fn(ctx, name, t->per_worker[i]->c[per[k].counter]);
		}
	}
}
