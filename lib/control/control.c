/* SPDX-License-Identifier: BSD-3-Clause */
/* The control lcore: final-stage merge, Redis sink, exception replies, self-stats. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_log.h>
#include <rte_mbuf.h>

#include "tally_app.h"

/* Every field tally_stats_foreach() gives: the counter lists, 4 more, 6 per worker. */
#define STATS_FIELDS_MAX                                                                           \
	(TALLY_WC_MAX + TALLY_MALFORMED_MAX + TALLY_CC_MAX + 4 + 6 * TALLY_STATS_MAX_WORKERS)

#define CTL_LOG(app, lvl, fmt, ...)                                                               \
	rte_log(RTE_LOG_##lvl, (app)->logtype, "TALLY: " fmt "\n", ##__VA_ARGS__)

/*
 * Devices hot on any worker, each counted once. Reads the workers' hot sets while they
 * change: a stat, not a decision, so a torn view only shifts it by one for a moment.
 */
static uint64_t
hot_devices(const struct tally_app *app)
{
	uint64_t seen[TALLY_HOT_SET * 4];
	uint32_t n = 0, i, k, j;

	for (i = 0; i < app->nworkers; i++) {
		const struct tally_hot *h = &app->workers[i].hot;

		for (k = 0; k < TALLY_HOT_SET; k++) {
			uint64_t dev = h->set[k].device_id;

			if (!h->set[k].used)
				continue;
			for (j = 0; j < n && seen[j] != dev; j++)
				;
			if (j == n && n < RTE_DIM(seen))
				seen[n++] = dev;
		}
	}
	return n;
}

void
tally_app_totals(const struct tally_app *app, struct tally_stats_totals *t)
{
	const struct tally_sink_stats *ss = app->sink ? tally_sink_stats(app->sink) : NULL;
	uint32_t i;

	memset(t, 0, sizeof(*t));
	for (i = 0; i < app->nworkers; i++) {
		tally_worker_stats_add(&t->w, &app->workers[i].stats);
		if (i < TALLY_STATS_MAX_WORKERS)
			t->per_worker[i] = &app->workers[i].stats;
	}
	t->ctl = app->ctl;
	/* The exception thread's counters (it is their only writer). */
	t->ctl.c[TALLY_CC_arp_replies] = app->exc.arp_replies;
	t->ctl.c[TALLY_CC_icmp_replies] = app->exc.icmp_replies;
	t->ctl.c[TALLY_CC_exception_tx_drops] = app->exc.tx_drops;
	if (ss != NULL) {
		t->ctl.c[TALLY_CC_windows_flushed] = ss->windows_flushed;
		t->ctl.c[TALLY_CC_redis_commands] = ss->commands;
		t->ctl.c[TALLY_CC_redis_errors] = ss->errors;
		t->ctl.c[TALLY_CC_redis_batches] = ss->batches;
		t->ctl.c[TALLY_CC_flush_lag_ms] = ss->flush_lag_ms;
	}
	t->ctl.c[TALLY_CC_merge_full] = app->merger.lost_records;
	if (ss != NULL) {
		t->ctl.c[TALLY_CC_breaker_state] = ss->breaker_state;
		t->ctl.c[TALLY_CC_breaker_opens] = ss->breaker_opens;
		t->ctl.c[TALLY_CC_redis_failures] = ss->failures;
		t->ctl.c[TALLY_CC_window_retries] = ss->window_retries;
		t->ctl.c[TALLY_CC_redis_refused] = ss->refused;
		t->ctl.c[TALLY_CC_redis_refused_records] = ss->refused_records;
		t->ctl.c[TALLY_CC_redis_refused_lost] = ss->refused_lost;
		t->ctl.c[TALLY_CC_redis_redirects] = ss->redirects;
		t->ctl.c[TALLY_CC_redis_masters] = tally_sink_masters(app->sink);
	}
	t->ctl.c[TALLY_CC_sink_queue] = tally_merger_busy(&app->merger);
	t->ctl.c[TALLY_CC_spool_windows] = app->spool.st.windows;
	t->ctl.c[TALLY_CC_spool_bytes] = app->spool.st.bytes;
	t->ctl.c[TALLY_CC_spool_replayed] = app->spool.st.replayed;
	t->ctl.c[TALLY_CC_spool_corrupt] = app->spool.st.corrupt;
	t->ctl.c[TALLY_CC_spool_dropped] = app->spool.st.dropped_new;
	t->ctl.c[TALLY_CC_spool_dropped_segments] = app->spool.st.dropped_old;
	t->ctl.c[TALLY_CC_spool_lost_records] = app->spool_lost;
	t->ctl.c[TALLY_CC_dlq_written] = app->dlq.written;
	t->ctl.c[TALLY_CC_dlq_errors] = app->dlq.errors;
	t->ctl.c[TALLY_CC_dlq_rotations] = app->dlq.pcap.rotations;
	t->w.c[TALLY_WC_hot_keys] = hot_devices(app);
	t->rx_missed = app->rx_missed;
	t->rx_nombuf = app->rx_nombuf;
	t->workers = app->nworkers;
	t->uptime_s = (tally_now_ms() - app->start_ms) / 1000u;
}

/* Give a merged partial back to its worker, clean. */
static void
return_table(struct tally_worker *w, const struct tally_window_msg *m)
{
	tally_table_reset(m->table);
	rte_ring_sp_enqueue(w->free, (void *)(uintptr_t)m->index);
}

/* Merge one partial; 0 when done with it, -ENOSPC to try again later. */
static int
merge_partial(struct tally_app *app, struct tally_worker *w, struct tally_window_msg *m)
{
	int rc = tally_merger_add(&app->merger, m->start_ms, m->table);

	if (rc == -ENOSPC)
		return rc;
	if (rc == -EINVAL)
		app->ctl.c[TALLY_CC_merge_late] += m->table->records;
	return_table(w, m);
	return 0;
}

/*
 * Take every partial a worker has handed over and merge what finds a merge table. Partials
 * that do not wait in order; their windows are not complete yet, so the worker counts as
 * having closed only the windows before the oldest of them. Returns the partials merged.
 */
static unsigned int
drain_worker(struct tally_app *app, uint32_t id)
{
	struct tally_worker *w = &app->workers[id];
	struct tally_window_msg **st = app->stash[id];
	uint64_t closed = w->pub.closed_end_ms;
	unsigned int n = 0;
	uint32_t i, k;
	void *m;

	rte_smp_rmb(); /* partials of every window ending by `closed` are in the ring now */
	/* At most one message per table of the worker's pool: the stash always has room. */
	while (app->nstash[id] < TALLY_WORKER_TABLES && rte_ring_sc_dequeue(w->closed, &m) == 0)
		st[app->nstash[id]++] = m;
	for (i = 0, k = 0; i < app->nstash[id]; i++) {
		if (merge_partial(app, w, st[i]) == 0)
			n++;
		else
			st[k++] = st[i];
	}
	app->nstash[id] = k;
	for (i = 0; i < k; i++)
		if (st[i]->start_ms < closed)
			closed = st[i]->start_ms;
	tally_merger_close(&app->merger, id, closed);
	return n;
}

static void
sample_ports(struct tally_app *app)
{
	struct rte_eth_stats st;
	uint64_t missed = 0, nombuf = 0;
	uint16_t i;

	for (i = 0; i < app->nports; i++) {
		if (rte_eth_stats_get(app->ports[i].port_id, &st) != 0)
			continue;
		missed += st.imissed;
		nombuf += st.rx_nombuf;
	}
	app->rx_missed = missed;
	app->rx_nombuf = nombuf;
}

/* HSET tally:self <field> <value>...; names are copied (malformed:<reason> is built). */
struct stats_cmd {
	int argc;
	const char *argv[2 + 2 * STATS_FIELDS_MAX];
	size_t argvlen[2 + 2 * STATS_FIELDS_MAX];
	char name[STATS_FIELDS_MAX][48];
	char val[STATS_FIELDS_MAX][24];
};

static void
stats_field(void *ctx, const char *name, uint64_t value)
{
	struct stats_cmd *c = ctx;
	int i = (c->argc - 2) / 2;

	if (i >= STATS_FIELDS_MAX)
		return;
	c->argvlen[c->argc] = (size_t)snprintf(c->name[i], sizeof(c->name[i]), "%s", name);
	c->argv[c->argc++] = c->name[i];
	c->argvlen[c->argc] = (size_t)snprintf(c->val[i], sizeof(c->val[i]), "%" PRIu64, value);
	c->argv[c->argc++] = c->val[i];
}

static void
write_stats(struct tally_app *app)
{
	static struct stats_cmd c = {
		.argv = {"HSET", "tally:self"},
		.argvlen = {4, 10},
	};
	struct tally_stats_totals t;

	sample_ports(app);
	tally_app_totals(app, &t);
	c.argc = 2;
	tally_stats_foreach(&t, stats_field, &c);
	tally_sink_command(app->sink, c.argc, c.argv, c.argvlen);
}

static void
log_stats(struct tally_app *app)
{
	struct tally_stats_totals t;

	tally_app_totals(app, &t);
	CTL_LOG(app, INFO,
		"datagrams=%" PRIu64 " records=%" PRIu64 " malformed=%" PRIu64 " other=%" PRIu64
		" table_full=%" PRIu64 " rx_missed=%" PRIu64 " windows_flushed=%" PRIu64
		" redis_commands=%" PRIu64 " redis_errors=%" PRIu64 " flush_lag_ms=%" PRIu64,
		t.w.c[TALLY_WC_datagrams], t.w.c[TALLY_WC_records], t.w.c[TALLY_WC_malformed],
		t.w.c[TALLY_WC_other],
		t.w.c[TALLY_WC_table_full] + t.ctl.c[TALLY_CC_merge_full], t.rx_missed,
		t.ctl.c[TALLY_CC_windows_flushed], t.ctl.c[TALLY_CC_redis_commands],
		t.ctl.c[TALLY_CC_redis_errors], t.ctl.c[TALLY_CC_flush_lag_ms]);
}

/* Put a merged window in the spool; what the spool refuses is counted as lost. */
static void
spool_window(struct tally_app *app, struct tally_table *t, uint64_t start, const char *id)
{
	tally_table_sort(t);
	if (tally_spool_append(&app->spool, start, id, t) != 0) {
		app->spool_lost += t->records;
		CTL_LOG(app, WARNING, "window %" PRIu64 ": %u series not spooled", start, t->series);
	}
}

/* The sink gave a table back (done, or taken back): return it where it belongs. */
static void
table_done(struct tally_app *app, struct tally_table *t, int written)
{
	if (t != app->replay) {
		tally_merger_release(&app->merger, t);
		return;
	}
	tally_table_reset(t);
	if (!written && app->replaying) {
		/* Replayed from the start of the segment next time: merges are idempotent. */
		tally_spool_iter_close(&app->replay_it);
		app->replaying = 0;
	}
}

/* Next spooled record to Redis, when the sink has nothing newer to write. */
static unsigned int
replay_step(struct tally_app *app)
{
	struct tally_spool_rec rec;
	uint32_t i;
	int rc;

	if (!app->replaying) {
		if (tally_spool_iter_open(&app->spool, &app->replay_it) != 0)
			return 0;
		app->replaying = 1;
	}
	rc = tally_spool_iter_next(&app->spool, &app->replay_it, &rec);
	if (rc != 1) {
		/* Every record of the segment is acknowledged (or was damaged): remove it. */
		tally_spool_iter_close(&app->replay_it);
		app->replaying = 0;
		if (rc == 0)
			tally_spool_remove_oldest(&app->spool);
		return 1;
	}
	tally_table_reset(app->replay);
	for (i = 0; i < rec.nseries; i++) {
		const struct tally_spool_series *x = &rec.series[i];
		struct tally_slot from = {.device_id = x->device_id, .metric_id = x->metric_id,
					  .kind = x->kind, .used = 1, .count = x->count,
					  .sum = x->sum, .min = x->min, .max = x->max,
					  .last = x->last, .last_ns = x->last_ns};
		struct tally_slot *to = tally_table_lookup(app->replay, x->device_id,
							   tally_hash_device(x->device_id),
							   x->metric_id);

		if (to == NULL) {
			app->spool_lost += x->count;
			continue;
		}
		tally_slot_merge(to, &from);
		app->replay->records += x->count;
	}
	tally_sink_write_window(app->sink, app->replay, rec.window_start, rec.partial_id);
	return 1;
}

/*
 * Move windows toward Redis. Breaker closed: complete windows first, then the spool; when
 * every merged table waits for the sink, the oldest complete window goes to the spool. Breaker
 * open: everything complete goes to the spool (when there is one), so memory stays flat.
 */
static unsigned int
drive_sink(struct tally_app *app, int force, uint64_t now)
{
	struct tally_table *t;
	uint64_t start;
	unsigned int work = 0;

	if (!tally_sink_available(app->sink)) {
		if (app->spool_on) {
			t = tally_sink_take_back(app->sink, &start);
			if (t != NULL) {
				if (t != app->replay)
					spool_window(app, t, start, app->partial_id);
				table_done(app, t, 0);
				work++;
			}
			while ((t = tally_merger_next(&app->merger, force, &start)) != NULL) {
				spool_window(app, t, start, app->partial_id);
				tally_merger_release(&app->merger, t);
				work++;
			}
		}
		tally_sink_poll(app->sink, now); /* the breaker's probe */
		return work;
	}
	/* Other commands (the stats write) may be pending: they go in the same batch. */
	if (!tally_sink_writing(app->sink)) {
		t = tally_merger_next(&app->merger, force, &start);
		if (t != NULL) {
			tally_sink_write_window(app->sink, t, start, NULL);
			work++;
		} else if (app->spool_on && !app->quit) {
			work += replay_step(app);
		}
	} else if (app->spool_on && tally_merger_busy(&app->merger) == app->nmerge) {
		/* The queue is full: the oldest complete window waits on disk instead. */
		t = tally_merger_next(&app->merger, force, &start);
		if (t != NULL) {
			spool_window(app, t, start, app->partial_id);
			tally_merger_release(&app->merger, t);
			work++;
		}
	}
	t = tally_sink_poll(app->sink, now);
	if (t != NULL) {
		table_done(app, t, 1);
		work++;
	}
	return work;
}

/*
 * Shutdown ran out of time, or Redis is down at the end: spool what is left, including
 * partials still waiting for a merge table (spooling frees the tables they wait for).
 */
static void
spool_everything(struct tally_app *app)
{
	struct tally_table *t;
	uint64_t start;
	uint32_t i, round, waiting;

	t = tally_sink_take_back(app->sink, &start);
	if (t != NULL) {
		if (t != app->replay)
			spool_window(app, t, start, app->partial_id);
		table_done(app, t, 0);
	}
	for (round = 0; round <= TALLY_WORKER_TABLES * TALLY_MERGE_TABLES; round++) {
		for (i = 0; i < app->nworkers; i++)
			drain_worker(app, i);
		while ((t = tally_merger_next(&app->merger, 1, &start)) != NULL) {
			spool_window(app, t, start, app->partial_id);
			tally_merger_release(&app->merger, t);
		}
		for (i = 0, waiting = 0; i < app->nworkers; i++)
			waiting += app->nstash[i] + rte_ring_count(app->workers[i].closed);
		if (waiting == 0)
			return;
	}
	for (i = 0; i < app->nworkers; i++)
		for (round = 0; round < app->nstash[i]; round++)
			app->spool_lost += app->stash[i][round]->table->records;
}

static int
all_workers_done(const struct tally_app *app)
{
	uint32_t i;

	for (i = 0; i < app->nworkers; i++)
		if (!app->workers[i].pub.done)
			return 0;
	return 1;
}

/* Every partial merged, every merged window written. */
static int
all_written(const struct tally_app *app)
{
	uint32_t i;

	for (i = 0; i < app->nworkers; i++)
		if (app->nstash[i] != 0 || rte_ring_count(app->workers[i].closed) != 0)
			return 0;
	/* Pending stand-alone commands (stats) are flushed with the final stats write. */
	return tally_merger_busy(&app->merger) == 0 && !tally_sink_writing(app->sink);
}

/* Redis is down and there is a spool: nothing left to wait for. */
static int
spool_instead(const struct tally_app *app)
{
	return app->spool_on && !tally_sink_available(app->sink);
}

int
tally_control_run(struct tally_app *app)
{
	uint64_t now = tally_now_ms(), deadline = 0;
	const struct tally_sink_stats *ss = tally_sink_stats(app->sink);
	uint64_t errors_before;
	int done = 0;
	uint32_t i;

	app->next_stats_ms = now + app->cfg.stats_ms;
	app->next_log_ms = now + app->cfg.log_ms;
	for (;;) {
		unsigned int work = 0;

		now = tally_now_ms();
		if (!done)
			done = all_workers_done(app);
		for (i = 0; i < app->nworkers; i++)
			work += drain_worker(app, i);
		work += drive_sink(app, done, now);
		if (now >= app->next_stats_ms) {
			write_stats(app);
			app->next_stats_ms = now + app->cfg.stats_ms;
		}
		if (now >= app->next_log_ms) {
			log_stats(app);
			app->next_log_ms = now + app->cfg.log_ms;
		}
		if (app->quit && deadline == 0)
			deadline = now + app->cfg.shutdown_timeout_s * 1000u;
		if (done && (all_written(app) || spool_instead(app))) {
			if (app->spool_on)
				spool_everything(app);
			break;
		}
		if (deadline != 0 && now >= deadline) {
			if (!done)
				continue; /* workers drain in bounded time; wait for them */
			if (app->spool_on) {
				CTL_LOG(app, WARNING, "shutdown timeout: spooling what Redis did not take");
				spool_everything(app);
			} else {
				CTL_LOG(app, ERR, "shutdown timed out with windows unwritten");
			}
			break;
		}
		if (work == 0)
			usleep(done ? 1000 : 100);
	}
	/* Every malformed frame the workers handed over is in the capture before the last stats. */
	tally_dlq_stop(&app->dlq);
	/* Final stats, acknowledged before exit. */
	errors_before = ss->errors;
	write_stats(app);
	tally_sink_sync(app->sink, tally_now_ms());
	log_stats(app);
	if (tally_merger_busy(&app->merger) != 0 || app->spool_lost != 0)
		return -EIO;
	/* With a spool, Redis being down at the end loses nothing: the next start replays. */
	if (ss->errors != errors_before && !app->spool_on)
		return -EIO;
	return 0;
}
