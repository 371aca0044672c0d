/* SPDX-License-Identifier: BSD-3-Clause */
/* The running application: its resources, and the control lcore (final stage, sink, stats). */
#ifndef TALLY_APP_H
#define TALLY_APP_H

#include <stddef.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

#include <rte_mempool.h>

#include <rte_ring.h>

#include "tally_catalog.h"
#include "tally_config.h"
#include "tally_delivery.h"
#include "tally_dlq.h"
#include "tally_metrics.h"
#include "tally_port.h"
#include "tally_prom.h"
#include "tally_reply.h"
#include "tally_sink.h"
#include "tally_spool.h"
#include "tally_stats.h"
#include "tally_window.h"
#include "tally_worker.h"

#define TALLY_MERGE_TABLES TALLY_MERGER_MAX_TABLES /* at most; --sink-queue-mb decides */
#define TALLY_MAX_TABLES (TALLY_MAX_WORKERS * TALLY_WORKER_TABLES + TALLY_MERGE_TABLES + 1)

/* Memory of one table: hugepages from EAL when it has them, else anonymous pages. */
struct tally_mem {
	void *addr;
	size_t len;
	int mapped; /* from mmap() rather than rte_malloc() */
};

/* A complete window on its way from the control lcore to the sink thread. */
struct tally_window_handoff {
	struct tally_table *table;
	uint64_t start_ms;
};

struct tally_app {
	struct tally_config cfg;
	/*
	 * The metric catalog (cfg.catalog_file), or NULL: loaded by tally_app_init(), read-only
	 * from then on (any lcore may read it), freed by tally_app_free() after the lcores stop.
	 */
	struct tally_catalog *catalog;
	struct tally_clock clock;
	volatile int quit;             /* set by the signal handler */
	volatile int reload;           /* SIGHUP seen (set by its handler, cleared by control) */
	int app_argc;                  /* the application arguments, read again at SIGHUP */
	char **app_argv;
	/* SIGHUP -> the sink thread: written by control when sink_reload_seen == _gen */
	struct tally_sink_reload sink_next;
	uint32_t sink_reload_gen;
	uint32_t sink_reload_seen;
	int sink_reload_pending; /* control: Redis settings to hand over once the sink is free */
	struct tally_worker_reload worker_next; /* SIGHUP -> workers, until every one has it */
	int worker_reload_pending;
	uint32_t nworkers;
	struct tally_worker *workers;  /* nworkers, one per worker lcore */
	unsigned int lcores[TALLY_MAX_WORKERS];
	uint16_t nports;
	struct tally_port_info ports[TALLY_MAX_PORTS];
	struct rte_mempool *mp;
	struct tally_merger merger;
	struct tally_table *merge_tables[TALLY_MERGE_TABLES];
	uint32_t nmerge;
	int spool_on;
	struct tally_spool spool;
	struct tally_table *replay; /* one spooled record at a time, on its way to Redis */
	struct tally_sink *sink;
	/* The sink thread: owns sink, spool and dlv; control hands it windows through rings. */
	struct tally_delivery dlv;
	struct tally_sort_key *sort_scratch; /* the sink thread's, for sorting window tables */
	/* statsd: the names of series and devices (the sink thread's), NULL when off */
	struct tally_names *names;
	struct rte_ring *to_sink;   /* struct tally_window_handoff: complete windows */
	struct rte_ring *from_sink; /* their tables, written or spooled */
	pthread_t sink_tid;
	int sink_running;
	int sink_finish;	   /* control -> sink: everything is handed over */
	uint64_t sink_deadline_ms; /* control -> sink: the shutdown deadline, 0 until quit */
	int sink_rc;		   /* sink -> control, after the join */
	struct tally_dlq dlq;
	struct {                       /* the exception thread: ARP / ICMP replies */
		pthread_t tid;
		volatile int stop;
		int running;
		uint64_t arp_replies;
		uint64_t icmp_replies;
		uint64_t tx_drops;
		uint64_t rate_limited;			   /* over --exception-rate */
		uint64_t refused[TALLY_REPLY_REFUSAL_MAX]; /* by enum tally_reply_refusal */
	} exc;
	struct tally_metrics *metrics; /* --metrics-listen's endpoint, NULL when off */
	pthread_t metrics_tid;
	char partial_id[TALLY_HOST_MAX + 32];
	struct tally_control_stats ctl;
	/* Partials taken from a worker that found no free merge table yet, oldest first. */
	struct tally_window_msg *stash[TALLY_MAX_WORKERS][TALLY_WORKER_TABLES];
	uint32_t nstash[TALLY_MAX_WORKERS];
	struct tally_mem mem[TALLY_MAX_TABLES];
	uint32_t nmem;
	uint64_t rx_missed;
	uint64_t rx_nombuf;
	/*
	 * The ports' NIC counters as the control lcore sampled them (every --stats-ms): the one
	 * caller of rte_eth_stats_get() once running, since PMDs do not make it thread-safe.
	 * Readers on other threads (telemetry, /metrics) copy them with tally_app_port_samples().
	 */
	struct tally_port_sample port_snap[TALLY_MAX_PORTS];
	uint32_t port_seq; /* odd while the control lcore writes port_snap */
	uint64_t start_ms;             /* wall clock at start (the windows' clock, partial ids) */
	uint64_t start_mono_ms;        /* tally_now_ms() at start, for uptime */
	uint64_t next_stats_ms;
	uint64_t next_log_ms;
	int logtype;
};

/*
 * Build everything from app->cfg after rte_eal_init(): mbuf pool, ports, rings, tables,
 * the Redis connection, telemetry commands. Returns 0, or -1 with a one-line reason in err
 * (what was built is freed).
 */
int tally_app_init(struct tally_app *app, char *err, size_t errlen);

/*
 * The plan of a run from app->cfg and EAL's lcores: the workers (app->lcores, nworkers) and
 * the merged windows of --sink-queue-mb (nmerge). 0, or -1 with a one-line reason in err.
 */
int tally_app_plan(struct tally_app *app, char *err, size_t errlen);

/* --instance unset: the host name (else "tally"). */
void tally_app_default_instance(struct tally_config *c);

/* Whether the sink queue holds fewer windows than a slow Redis needs (*want of them). */
int tally_app_sink_queue_short(const struct tally_app *app, uint64_t *want);

/*
 * The memory the options imply (*need) against what there is (*have: --max-memory-mb, else
 * free hugepages + MemAvailable). 0, or -1 with a one-line reason naming the options.
 */
int tally_app_memory(const struct tally_app *app, uint64_t *need, uint64_t *have, char *err,
		     size_t errlen);

/*
 * --check-config, after rte_eal_init(): check what tally_app_init() would set up without
 * running it, one line per finding to out ("tally: check: ok|warning|problem: ...") and what
 * it would run. Returns the exit status: 0 without problems (warnings allowed), else 1.
 */
int tally_check_config(struct tally_app *app, FILE *out);

/*
 * SIGHUP (the control lcore): read the command line and the --config file again, apply the
 * keys that need no restart (Redis address and credentials, flush bounds, DLQ rate, log and
 * stats periods, hot share) and log each change; the others are logged as needing a restart
 * and keep their values. The sink thread and the workers take theirs when they can
 * (tally_reload_push()).
 */
void tally_reload(struct tally_app *app);

/* Hand the sink thread and the workers what they have not taken yet (while it is pending). */
void tally_reload_push(struct tally_app *app);

/* Launch tally_worker_main() on every worker lcore. */
int tally_app_launch(struct tally_app *app);

/*
 * The control loop, on the main lcore, until app->quit and everything is written: merges
 * windows, drives the Redis sink, answers ARP/ICMP, writes stats. Returns 0 when every
 * window was acknowledged by Redis, -EIO when something could not be written.
 */
int tally_control_run(struct tally_app *app);

/* Start the sink thread (tally_control_run() stops and joins it). */
int tally_sink_thread_start(struct tally_app *app);

/* Start / stop the thread answering ARP and ICMP (off the control lcore). */
int tally_exception_start(struct tally_app *app);
void tally_exception_stop(struct tally_app *app);

/* Release everything tally_app_init() built. */
void tally_app_free(struct tally_app *app);

/* The ports' last sampled NIC counters, a consistent copy (any thread); returns nports. */
uint16_t tally_app_port_samples(const struct tally_app *app, struct tally_port_sample *out);

/* Snapshot of every counter, for tally:self, telemetry and the log. */
void tally_app_totals(const struct tally_app *app, struct tally_stats_totals *t);

/* Register the /tally/ telemetry commands (they read app until it is freed). */
int tally_telemetry_register(struct tally_app *app);

/*
 * Start / stop the /metrics endpoint of --metrics-listen (nothing when unset): its thread
 * reads the counters as the telemetry commands do. 0, or -1 with a one-line reason in err.
 */
int tally_metrics_start(struct tally_app *app, char *err, size_t errlen);
void tally_metrics_stop(struct tally_app *app);

/*
 * Monotonic milliseconds (control path only): every interval, timer and deadline, so a
 * wall-clock step neither stalls nor hurries them.
 */
uint64_t tally_now_ms(void);

/*
 * Now on the windows' clock: wall-clock ms as read at start, advanced by the TSC since (arg:
 * the struct tally_app). A wall-clock step during a run does not move window boundaries.
 */
uint64_t tally_wall_ms(void *arg);

#endif /* TALLY_APP_H */
