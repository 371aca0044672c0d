/* SPDX-License-Identifier: BSD-3-Clause */
/* The counter lists gathered, and the one list of self-stats fields. */
#include <stdio.h>
#include <string.h>

#include "tally_prom.h"
#include "tally_stats.h"

#define TALLY_STAT_INFO(n, k, u, h) {.name = #n, .unit = u, .help = h, .kind = TALLY_STAT_##k},

const struct tally_stat_info tally_worker_counter_info[TALLY_WC_MAX] = {
	TALLY_FOREACH_WORKER_COUNTER(TALLY_STAT_INFO)};

const struct tally_stat_info tally_control_counter_info[TALLY_CC_MAX] = {
	TALLY_FOREACH_CONTROL_COUNTER(TALLY_STAT_INFO)};

const struct tally_stat_info tally_own_field_info[TALLY_OWN_MAX] = {
	TALLY_FOREACH_OWN_FIELD(TALLY_STAT_INFO)};

#define TALLY_PORT_INFO(n, k, u, h, member) TALLY_STAT_INFO(n, k, u, h)
const struct tally_stat_info tally_port_counter_info[TALLY_PC_MAX] = {
	TALLY_PORT_COUNTERS(TALLY_PORT_INFO)};

const struct tally_balance_field tally_balance_fields[TALLY_BALANCE_FIELDS] = {
	{"records", TALLY_WC_aggregated},     {"series", TALLY_WC_series},
	{"forwarded", TALLY_WC_forwarded},    {"received", TALLY_WC_received},
	{"hot_records", TALLY_WC_hot_records}, {"ring_full", TALLY_WC_ring_full},
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
	unsigned int i, k;

	/* table_full covers every place a record can find no room: worker or merged table. */
	for (i = 0; i < TALLY_WC_MAX; i++)
		fn(ctx, tally_worker_counter_info[i].name,
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
		fn(ctx, tally_control_counter_info[i].name, t->ctl.c[i]);
	for (i = 0; i < TALLY_OWN_MAX; i++)
		fn(ctx, tally_own_field_info[i].name, t->own[i]);
	/* The balance between workers: w<i>:records is what worker i aggregated. */
	for (i = 0; i < t->workers && i < TALLY_STATS_MAX_WORKERS; i++) {
		if (t->per_worker[i] == NULL)
			continue;
		for (k = 0; k < TALLY_BALANCE_FIELDS; k++) {
			snprintf(name, sizeof(name), "w%u:%s", i, tally_balance_fields[k].name);
			fn(ctx, name, t->per_worker[i]->c[tally_balance_fields[k].counter]);
		}
	}
}

void
tally_stats_describe(void (*fn)(void *ctx, const char *name, const struct tally_stat_info *i),
		     void *ctx)
{
	char name[64];
	unsigned int i;

	for (i = 0; i < TALLY_WC_MAX; i++)
		fn(ctx, tally_worker_counter_info[i].name, &tally_worker_counter_info[i]);
	for (i = 0; i < TALLY_MALFORMED_MAX; i++) {
		struct tally_stat_info r = {
			.unit = "datagrams",
			.help = tally_malformed_help(i),
			.kind = TALLY_STAT_COUNTER,
		};

		snprintf(name, sizeof(name), "malformed:%s", tally_malformed_name(i));
		r.name = name;
		fn(ctx, name, &r);
	}
	for (i = 0; i < TALLY_STATSD_REASON_MAX; i++) {
		struct tally_stat_info r = {
			.unit = "lines",
			.help = tally_statsd_reason_help(i),
			.kind = TALLY_STAT_COUNTER,
		};

		snprintf(name, sizeof(name), "statsd:%s", tally_statsd_reason_name(i));
		r.name = name;
		fn(ctx, name, &r);
	}
	for (i = 0; i < TALLY_CC_MAX; i++)
		fn(ctx, tally_control_counter_info[i].name, &tally_control_counter_info[i]);
	for (i = 0; i < TALLY_OWN_MAX; i++)
		fn(ctx, tally_own_field_info[i].name, &tally_own_field_info[i]);
	for (i = 0; i < TALLY_BALANCE_FIELDS; i++) {
		const struct tally_stat_info *c =
			&tally_worker_counter_info[tally_balance_fields[i].counter];
		struct tally_stat_info r = *c;

		snprintf(name, sizeof(name), "w<i>:%s", tally_balance_fields[i].name);
		r.name = name;
		r.help = c->help;
		fn(ctx, name, &r);
	}
}

/* One row of the table: where a field is found in the exposition. */
static void
print_row(void *ctx, const char *name, const struct tally_stat_info *i)
{
	FILE *f = ctx;
	char prom[160];
	const char *colon = strchr(name, ':');

	if (strncmp(name, "w<i>:", 5) == 0) {
		unsigned int k;

		for (k = 0; k < TALLY_BALANCE_FIELDS; k++)
			if (strcmp(name + 5, tally_balance_fields[k].name) == 0)
				break;
		tally_prom_sample_name(&tally_worker_counter_info[tally_balance_fields[k].counter],
				       "", prom, sizeof(prom));
		strcat(prom, "{worker=\"i\"}");
	} else if (colon != NULL) {
		snprintf(prom, sizeof(prom), "tally_%s_total{worker,reason=\"%s\"}",
			 strncmp(name, "malformed:", 10) == 0 ? "malformed_reason"
							      : "statsd_refused_reason",
			 colon + 1);
	} else {
		unsigned int k;

		tally_prom_sample_name(i, "", prom, sizeof(prom));
		for (k = 0; k < TALLY_WC_MAX; k++)
			if (i == &tally_worker_counter_info[k])
				strcat(prom, "{worker}");
	}
	fprintf(f, "| `%s` | %s | %s | `%s` | %s |\n", name,
		i->kind == TALLY_STAT_COUNTER ? "counter" : "gauge", i->unit, prom, i->help);
}

void
tally_stats_print_table(FILE *f)
{
	char prom[160];
	unsigned int k;

	fprintf(f, "| field | kind | unit | Prometheus | meaning |\n|---|---|---|---|---|\n");
	tally_stats_describe(print_row, f);
	fprintf(f, "\n| port counter | kind | unit | Prometheus | meaning |\n|---|---|---|---|---|\n");
	for (k = 0; k < TALLY_PC_MAX; k++) {
		const struct tally_stat_info *i = &tally_port_counter_info[k];

		tally_prom_sample_name(i, "port_", prom, sizeof(prom));
		fprintf(f, "| `%s` | %s | %s | `%s{port}` | %s |\n", i->name,
			i->kind == TALLY_STAT_COUNTER ? "counter" : "gauge", i->unit, prom, i->help);
	}
}
