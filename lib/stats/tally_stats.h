/* SPDX-License-Identifier: BSD-3-Clause */
/* Counters: declared once, kept per lcore with one writer, summed off the data path. */
#ifndef TALLY_STATS_H
#define TALLY_STATS_H

#include <stdint.h>
#include <stdio.h>

#include "tally_statsd.h"
#include "tally_wire.h"

/*
 * Every counter is declared once, by the module that keeps it, as
 * _(name, COUNTER|GAUGE, "unit", "one line of help"): lib/worker, lib/dlq, lib/statsd,
 * lib/sink, lib/window, lib/spool and lib/control own their lists. Here they are gathered:
 * tally:self, the telemetry socket, the log line, /metrics and `tally --counters` (README's
 * table, checked by a test) all come from these lists.
 */
#include "tally_control_counters.h"
#include "tally_dlq_counters.h"
#include "tally_metrics_counters.h"
#include "tally_port_counters.h"
#include "tally_sink_counters.h"
#include "tally_spool_counters.h"
#include "tally_statsd_counters.h"
#include "tally_window_counters.h"
#include "tally_worker_counters.h"

/* Counters of a worker lcore; the worker is their only writer. */
#define TALLY_FOREACH_WORKER_COUNTER(_)                                                            \
	TALLY_WORKER_COUNTERS(_) TALLY_DLQ_WORKER_COUNTERS(_) TALLY_STATSD_WORKER_COUNTERS(_)

/* Counters of the control side: final stage, sink thread, spool, DLQ writer, exceptions. */
#define TALLY_FOREACH_CONTROL_COUNTER(_)                                                           \
	TALLY_SINK_COUNTERS(_) TALLY_MERGE_COUNTERS(_) TALLY_DELIVERY_COUNTERS(_)                  \
	TALLY_SPOOL_COUNTERS(_) TALLY_STATSD_NAMES_COUNTERS(_) TALLY_DLQ_COUNTERS(_)               \
	TALLY_EXCEPTION_COUNTERS(_) TALLY_METRICS_COUNTERS(_)

/* tally:self's own fields (sampled by the control lcore). */
#define TALLY_FOREACH_OWN_FIELD(_)                                                                 \
	_(rx_missed, COUNTER, "packets", "NIC imissed, all ports: no room in an RX queue")          \
	_(rx_nombuf, COUNTER, "packets", "RX mbuf allocation failures, all ports")                 \
	_(workers, GAUGE, "lcores", "worker lcores")                                               \
	_(uptime_s, GAUGE, "seconds", "seconds since tally started")

enum tally_stat_kind {
	TALLY_STAT_COUNTER, /* only goes up (from start) */
	TALLY_STAT_GAUGE,   /* a level now */
};

/* What a counter is: from its module's list. */
struct tally_stat_info {
	const char *name;
	const char *unit;
	const char *help;
	enum tally_stat_kind kind;
};

enum tally_worker_counter {
#define TALLY_WC_ENUM(n, k, u, h) TALLY_WC_##n,
	TALLY_FOREACH_WORKER_COUNTER(TALLY_WC_ENUM)
#undef TALLY_WC_ENUM
	TALLY_WC_MAX
};

enum tally_control_counter {
#define TALLY_CC_ENUM(n, k, u, h) TALLY_CC_##n,
	TALLY_FOREACH_CONTROL_COUNTER(TALLY_CC_ENUM)
#undef TALLY_CC_ENUM
	TALLY_CC_MAX
};

enum tally_own_field {
#define TALLY_OWN_ENUM(n, k, u, h) TALLY_OWN_##n,
	TALLY_FOREACH_OWN_FIELD(TALLY_OWN_ENUM)
#undef TALLY_OWN_ENUM
	TALLY_OWN_MAX
};

enum tally_port_counter {
#define TALLY_PC_ENUM(n, k, u, h, member) TALLY_PC_##n,
	TALLY_PORT_COUNTERS(TALLY_PC_ENUM)
#undef TALLY_PC_ENUM
	TALLY_PC_MAX
};

struct tally_worker_stats {
	uint64_t c[TALLY_WC_MAX];
	uint64_t malformed[TALLY_MALFORMED_MAX];
	uint64_t statsd[TALLY_STATSD_REASON_MAX];
} __attribute__((aligned(64)));

struct tally_control_stats {
	uint64_t c[TALLY_CC_MAX];
} __attribute__((aligned(64)));

extern const struct tally_stat_info tally_worker_counter_info[TALLY_WC_MAX];
extern const struct tally_stat_info tally_control_counter_info[TALLY_CC_MAX];
extern const struct tally_stat_info tally_own_field_info[TALLY_OWN_MAX];
extern const struct tally_stat_info tally_port_counter_info[TALLY_PC_MAX];

/* The per-worker fields of tally:self (w<i>:<name>): the balance between workers. */
struct tally_balance_field {
	const char *name;
	unsigned int counter; /* enum tally_worker_counter */
};
#define TALLY_BALANCE_FIELDS 6
extern const struct tally_balance_field tally_balance_fields[TALLY_BALANCE_FIELDS];

/* dst += src, counter by counter (for totals over workers). */
void tally_worker_stats_add(struct tally_worker_stats *dst, const struct tally_worker_stats *src);

#define TALLY_STATS_MAX_WORKERS 64

/* A snapshot of everything tally:self reports. */
struct tally_stats_totals {
	struct tally_worker_stats w;       /* sum over workers */
	const struct tally_worker_stats *per_worker[TALLY_STATS_MAX_WORKERS];
	struct tally_control_stats ctl;
	uint64_t own[TALLY_OWN_MAX]; /* rx_missed, rx_nombuf, workers, uptime_s */
	/* Window write lag (window end -> its last ack): windows per bucket, and their sum. */
	uint64_t lag_buckets[TALLY_LAG_BUCKETS];
	uint64_t lag_sum_ms;
	uint32_t workers;
};

/*
 * Visit every tally:self field in order: name and integer value. Used for the Redis hash,
 * the telemetry dictionary and the log alike, so the three never disagree.
 */
void tally_stats_foreach(const struct tally_stats_totals *t,
			 void (*fn)(void *ctx, const char *name, uint64_t value), void *ctx);

/*
 * Describe every field tally_stats_foreach() gives, in its order, with its kind, unit and
 * help; a reason is one field per reason (`malformed:short`), the per-worker fields once as
 * `w<i>:<name>`. For `tally --counters` and README's table.
 */
void tally_stats_describe(void (*fn)(void *ctx, const char *name, const struct tally_stat_info *i),
			  void *ctx);

/*
 * Every field as a Markdown table (field, kind, unit, Prometheus name, help), then the ports'
 * NIC counters: `tally --counters`, README's Self-stats table.
 */
void tally_stats_print_table(FILE *f);

#endif /* TALLY_STATS_H */
