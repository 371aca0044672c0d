/* SPDX-License-Identifier: BSD-3-Clause */
/* The control lcore (final-stage merge, log) and the sink thread (delivery to Redis, stats). */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_log.h>
#include <rte_mbuf.h>

#include "tally_app.h"
#include "tally_names.h"

/* Every field tally_stats_foreach() gives: the counter lists and the balance per worker. */
#define STATS_FIELDS_MAX                                                                           \
	(TALLY_WC_MAX + TALLY_MALFORMED_MAX + TALLY_STATSD_REASON_MAX + TALLY_CC_MAX +           \
	 TALLY_OWN_MAX + TALLY_BALANCE_FIELDS * TALLY_STATS_MAX_WORKERS)

/*
 * tally:catalog is written again this often, so a Redis that was down, flushed or replaced by
 * a failover gets it back; in HSETs of at most this many fields.
 */
#define CATALOG_WRITE_MS 60000
#define CATALOG_FIELDS_PER_CMD 1000
#define CATALOG_KEY "tally:catalog"
#define NAMES_KEY "tally:names"     /* statsd series: metric id -> name{tags} */
#define DEVICES_KEY "tally:devices" /* statsd devices: device id -> name */

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
	t->ctl.c[TALLY_CC_exception_rate_limited] = app->exc.rate_limited;
	t->ctl.c[TALLY_CC_exception_ignored] = app->exc.refused[TALLY_REPLY_IGNORED];
	t->ctl.c[TALLY_CC_exception_refused_checksum] = app->exc.refused[TALLY_REPLY_BAD_CHECKSUM];
	t->ctl.c[TALLY_CC_exception_refused_source] = app->exc.refused[TALLY_REPLY_BAD_SOURCE];
	t->ctl.c[TALLY_CC_exception_refused_fragment] = app->exc.refused[TALLY_REPLY_FRAGMENT];
	t->ctl.c[TALLY_CC_exception_refused_hop_limit] =
		app->exc.refused[TALLY_REPLY_BAD_HOP_LIMIT];
	t->ctl.c[TALLY_CC_exception_refused_nd] = app->exc.refused[TALLY_REPLY_BAD_NS];
	if (ss != NULL) {
		t->ctl.c[TALLY_CC_windows_flushed] = ss->windows_flushed;
		t->ctl.c[TALLY_CC_redis_commands] = ss->commands;
		t->ctl.c[TALLY_CC_redis_errors] = ss->errors;
		t->ctl.c[TALLY_CC_redis_batches] = ss->batches;
		t->ctl.c[TALLY_CC_flush_lag_ms] = ss->flush_lag_ms;
		memcpy(t->lag_buckets, ss->lag_buckets, sizeof(t->lag_buckets));
		t->lag_sum_ms = ss->lag_sum_ms;
	}
	t->ctl.c[TALLY_CC_merge_full] = app->merger.lost_records;
	t->ctl.c[TALLY_CC_side_full] = app->merger.side_full;
	t->ctl.c[TALLY_CC_kind_mismatch] = app->merger.kind_mismatch;
	t->ctl.c[TALLY_CC_sketch_folded] = app->merger.folded;
	if (ss != NULL) {
		t->ctl.c[TALLY_CC_breaker_state] = ss->breaker_state;
		t->ctl.c[TALLY_CC_breaker_opens] = ss->breaker_opens;
		t->ctl.c[TALLY_CC_redis_failures] = ss->failures;
		t->ctl.c[TALLY_CC_window_retries] = ss->window_retries;
		t->ctl.c[TALLY_CC_redis_refused] = ss->refused;
		t->ctl.c[TALLY_CC_redis_refused_records] = ss->refused_records;
		t->ctl.c[TALLY_CC_redis_refused_lost] = ss->refused_lost;
		t->ctl.c[TALLY_CC_redis_redirects] = ss->redirects;
		t->ctl.c[TALLY_CC_redis_wait_short] = ss->wait_short;
		t->ctl.c[TALLY_CC_redis_folds] = ss->folds;
		t->ctl.c[TALLY_CC_redis_fold_retries] = ss->fold_retries;
		t->ctl.c[TALLY_CC_redis_masters] = tally_sink_masters(app->sink);
	}
	t->ctl.c[TALLY_CC_sink_queue] = app->dlv.qn;
	t->ctl.c[TALLY_CC_spool_windows] = app->spool.st.windows;
	t->ctl.c[TALLY_CC_spool_bytes] = app->spool.st.bytes;
	t->ctl.c[TALLY_CC_spool_replayed] = app->spool.st.replayed;
	t->ctl.c[TALLY_CC_spool_corrupt] = app->spool.st.corrupt;
	t->ctl.c[TALLY_CC_spool_dropped] = app->spool.st.dropped_new;
	t->ctl.c[TALLY_CC_spool_dropped_segments] = app->spool.st.dropped_old;
	t->ctl.c[TALLY_CC_spool_lost_records] = app->dlv.st.spool_lost;
	t->ctl.c[TALLY_CC_spool_write_errors] = app->spool.st.write_errors;
	t->ctl.c[TALLY_CC_spool_skipped] = app->spool.st.skipped;
	t->ctl.c[TALLY_CC_spool_set_aside] = app->spool.st.set_aside;
	t->ctl.c[TALLY_CC_unwritten_records] = app->dlv.st.unwritten_records;
	if (app->names != NULL) {
		t->ctl.c[TALLY_CC_statsd_names_kept] = app->names->count;
		t->ctl.c[TALLY_CC_statsd_names_full] = app->names->full;
		t->ctl.c[TALLY_CC_statsd_names_other] = app->names->other;
	}
	t->ctl.c[TALLY_CC_dlq_written] = app->dlq.written;
	t->ctl.c[TALLY_CC_dlq_errors] = app->dlq.errors;
	t->ctl.c[TALLY_CC_dlq_rotations] = app->dlq.pcap.rotations;
	t->w.c[TALLY_WC_hot_keys] = hot_devices(app);
	if (app->metrics != NULL) {
		t->ctl.c[TALLY_CC_metrics_scrapes] = app->metrics->scrapes;
		t->ctl.c[TALLY_CC_metrics_errors] = app->metrics->errors;
		t->ctl.c[TALLY_CC_metrics_refused] = app->metrics->refused;
	}
	t->own[TALLY_OWN_rx_missed] = app->rx_missed;
	t->own[TALLY_OWN_rx_nombuf] = app->rx_nombuf;
	t->own[TALLY_OWN_workers] = app->nworkers;
	t->own[TALLY_OWN_uptime_s] = (tally_now_ms() - app->start_mono_ms) / 1000u;
	t->workers = app->nworkers;
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

	/* a seqcount: readers copy port_snap again while port_seq is odd or has moved */
	__atomic_store_n(&app->port_seq, app->port_seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	for (i = 0; i < app->nports; i++) {
		struct tally_port_sample *s = &app->port_snap[i];

		s->name = app->ports[i].name;
		s->ok = rte_eth_stats_get(app->ports[i].port_id, &st) == 0;
		if (!s->ok)
			continue;
#define TALLY_PORT_READ(n, k, u, h, member) s->v[TALLY_PC_##n] = st.member;
		TALLY_PORT_COUNTERS(TALLY_PORT_READ)
#undef TALLY_PORT_READ
		missed += st.imissed;
		nombuf += st.rx_nombuf;
	}
	__atomic_store_n(&app->port_seq, app->port_seq + 1, __ATOMIC_RELEASE);
	app->rx_missed = missed;
	app->rx_nombuf = nombuf;
}

uint16_t
tally_app_port_samples(const struct tally_app *app, struct tally_port_sample *out)
{
	uint32_t before, after;

	do {
		before = __atomic_load_n(&app->port_seq, __ATOMIC_ACQUIRE);
		memcpy(out, app->port_snap, sizeof(app->port_snap[0]) * app->nports);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		after = __atomic_load_n(&app->port_seq, __ATOMIC_RELAXED);
	} while ((before & 1) != 0 || before != after);
	return app->nports;
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

/* The tally:self write: the sink thread's (it alone talks to Redis). */
static void
write_stats(struct tally_app *app)
{
	static struct stats_cmd c = {
		.argv = {"HSET", "tally:self"},
		.argvlen = {4, 10},
	};
	struct tally_stats_totals t;

	tally_app_totals(app, &t);
	c.argc = 2;
	tally_stats_foreach(&t, stats_field, &c);
	tally_sink_command(app->sink, c.argc, c.argv, c.argvlen);
}

/* HSET tally:catalog <id> "NAME UNIT KIND" ...: the sink thread's, like stats_cmd. */
struct catalog_cmd {
	const char *argv[2 + 2 * CATALOG_FIELDS_PER_CMD];
	size_t argvlen[2 + 2 * CATALOG_FIELDS_PER_CMD];
	char id[CATALOG_FIELDS_PER_CMD][12];
	char val[CATALOG_FIELDS_PER_CMD][TALLY_CATALOG_VALUE_MAX];
};

/* MULTI, EXEC (key NULL) or DEL key, sent where tally:catalog lives. */
static void
catalog_simple(struct tally_app *app, const char *cmd, const char *key)
{
	const char *argv[2] = {cmd, key};
	size_t argvlen[2] = {strlen(cmd), key != NULL ? strlen(key) : 0};

	tally_sink_command_on(app->sink, CATALOG_KEY, key != NULL ? 2 : 1, argv, argvlen);
}

/*
 * The catalog as the hash tally:catalog (field: the decimal id, value: "NAME UNIT KIND"),
 * replaced whole in one transaction, so a reader never sees half of it, nor an old entry
 * beside new ones. One key: its MULTI and EXEC go where it lives in a cluster.
 */
static void
write_catalog(struct tally_app *app)
{
	static struct catalog_cmd c = {
		.argv = {"HSET", CATALOG_KEY},
		.argvlen = {4, sizeof(CATALOG_KEY) - 1},
	};
	uint32_t n = tally_catalog_count(app->catalog), i = 0, k;

	catalog_simple(app, "MULTI", NULL);
	catalog_simple(app, "DEL", CATALOG_KEY);
	while (i < n) {
		for (k = 0; k < CATALOG_FIELDS_PER_CMD && i < n; k++, i++) {
			const struct tally_catalog_entry *e = tally_catalog_at(app->catalog, i);

			c.argv[2 + 2 * k] = c.id[k];
			c.argvlen[2 + 2 * k] =
				(size_t)snprintf(c.id[k], sizeof(c.id[k]), "%" PRIu32, e->id);
			c.argv[3 + 2 * k] = c.val[k];
			c.argvlen[3 + 2 * k] =
				(size_t)tally_catalog_value(e, c.val[k], sizeof(c.val[k]));
		}
		tally_sink_command_on(app->sink, CATALOG_KEY, 2 + 2 * (int)k, c.argv, c.argvlen);
	}
	catalog_simple(app, "EXEC", NULL);
}

/* HSET tally:names <metric id> <series>, or tally:devices <device id> <name>. */
static void
hset_name(struct tally_app *app, uint64_t key, const char *text, uint16_t len)
{
	/* a series' key is its metric id (below 2^32), a device's its id (2^63 and up) */
	const char *h = key < (1ull << 32) ? NAMES_KEY : DEVICES_KEY;
	char id[24];
	const char *argv[4] = {"HSET", h, id, text};
	size_t argvlen[4] = {4, strlen(h), 0, len};

	argvlen[2] = (size_t)snprintf(id, sizeof(id), "%" PRIu64, key);
	tally_sink_command_on(app->sink, h, 4, argv, argvlen);
}

/*
 * New statsd names from the workers' rings into the sink thread's names, all of them: before
 * a window that arrived is written (its series were named before it closed), so its fields
 * are named by them. A name with no room left goes to Redis at once when it can (its
 * series' fields are named by its metric id); the others wait for write_names().
 */
static unsigned int
take_names(struct tally_app *app)
{
	static struct tally_name_msg msg;
	unsigned int n = 0;
	uint32_t i;

	for (i = 0; i < app->nworkers; i++) {
		struct rte_ring *r = app->workers[i].names;

		while (r != NULL && rte_ring_sc_dequeue_elem(r, &msg, sizeof(msg)) == 0) {
			if (tally_names_add(app->names, msg.id, msg.text, msg.len) == -2 &&
			    tally_sink_available(app->sink))
				hset_name(app, msg.id, msg.text, msg.len);
			n++;
		}
	}
	return n;
}

/* The names kept and not yet in Redis: tally:names and tally:devices. Bounded per call. */
static unsigned int
write_names(struct tally_app *app)
{
	unsigned int n = 0;
	const char *text;
	uint64_t key;
	uint16_t len;

	while (app->names != NULL && n < 256 && tally_names_next(app->names, &key, &text, &len)) {
		hset_name(app, key, text, len);
		tally_names_written(app->names);
		n++;
	}
	return n;
}

/* Records dropped anywhere, by cause, for the loud line of log_stats(). */
struct drops {
	uint64_t window_stall, table_full, spool_lost, unwritten, refused_lost;
};

static void
drops_of(const struct tally_stats_totals *t, struct drops *d)
{
	d->window_stall = t->w.c[TALLY_WC_window_stall];
	d->table_full = t->w.c[TALLY_WC_table_full] + t->ctl.c[TALLY_CC_merge_full];
	d->spool_lost = t->ctl.c[TALLY_CC_spool_lost_records];
	d->unwritten = t->ctl.c[TALLY_CC_unwritten_records];
	d->refused_lost = t->ctl.c[TALLY_CC_redis_refused_lost];
}

/* The fields of the one-line log, by their names in the counter lists. */
static const char *const log_fields[] = {
	"datagrams",	   "records",	     "malformed",    "other",	      "table_full",
	"rx_missed",	   "windows_flushed", "redis_commands", "redis_errors", "flush_lag_ms",
	"sink_queue",
};

struct log_line {
	char text[512];
	size_t len;
};

static void
log_field(void *ctx, const char *name, uint64_t value)
{
	struct log_line *l = ctx;
	unsigned int i;
	int n;

	for (i = 0; i < RTE_DIM(log_fields) && strcmp(log_fields[i], name) != 0; i++)
		;
	if (i == RTE_DIM(log_fields) || l->len >= sizeof(l->text))
		return;
	n = snprintf(l->text + l->len, sizeof(l->text) - l->len, "%s%s=%" PRIu64,
		     l->len ? " " : "", name, value);
	if (n > 0)
		l->len += (size_t)n;
}

static void
log_stats(struct tally_app *app)
{
	static struct drops last;
	struct tally_stats_totals t;
	struct log_line line = {.len = 0};
	struct drops d;

	tally_app_totals(app, &t);
	tally_stats_foreach(&t, log_field, &line);
	CTL_LOG(app, INFO, "%s", line.text);
	drops_of(&t, &d);
	/* Loud: data was lost since the last line, and why. */
	if (d.window_stall != last.window_stall || d.table_full != last.table_full ||
	    d.spool_lost != last.spool_lost || d.unwritten != last.unwritten ||
	    d.refused_lost != last.refused_lost)
		CTL_LOG(app, WARNING,
			"DROPPED records since the last line: window_stall=%" PRIu64
			" (no clean table at a window boundary: the final stage is behind, the "
			"sink "
			"queue is full%s) table_full=%" PRIu64
			" (--table-series) spool_lost=%" PRIu64
			" (spool full or failing) unwritten=%" PRIu64
			" (no spool at the shutdown deadline) refused_lost=%" PRIu64,
			d.window_stall - last.window_stall,
			app->spool_on ? "" : " and there is no spool",
			d.table_full - last.table_full, d.spool_lost - last.spool_lost,
			d.unwritten - last.unwritten, d.refused_lost - last.refused_lost);
	last = d;
}

/*
 * The sink thread: takes complete windows from the control lcore, writes them to Redis (or
 * spools them), hands their tables back, writes tally:self. Nothing else waits on Redis.
 */
static void *
sink_main(void *arg)
{
	struct tally_app *app = arg;
	const struct tally_sink_stats *ss = tally_sink_stats(app->sink);
	uint64_t now = tally_now_ms(), next_stats = now + app->cfg.stats_ms, errors_before;
	uint64_t next_catalog = 0; /* 0: not written yet */
	int warned = 0;

	for (;;) {
		uint64_t deadline = __atomic_load_n(&app->sink_deadline_ms, __ATOMIC_ACQUIRE);
		int finish = __atomic_load_n(&app->sink_finish, __ATOMIC_ACQUIRE);
		struct tally_window_handoff h;
		struct tally_table *t;
		unsigned int work = 0;
		uint32_t gen;

		now = tally_now_ms();
		while (rte_ring_sc_dequeue_elem(app->to_sink, &h, sizeof(h)) == 0) {
			tally_delivery_add(&app->dlv, h.table, h.start_ms);
			work++;
		}
		if (app->names != NULL)
			work += take_names(app);
		/*
		 * SIGHUP's new Redis settings, once the sink can take them; a new server gets
		 * what is written once again: the statsd names and the catalog.
		 */
		gen = __atomic_load_n(&app->sink_reload_gen, __ATOMIC_ACQUIRE);
		if (gen != app->sink_reload_seen) {
			int rc = tally_sink_reload(app->sink, &app->sink_next);

			if (rc != 0) {
				explicit_bzero(app->sink_next.password,
					       sizeof(app->sink_next.password));
				__atomic_store_n(&app->sink_reload_seen, gen, __ATOMIC_RELEASE);
			}
			if (rc == 2) {
				if (app->names != NULL)
					tally_names_rewrite(app->names);
				next_catalog = 0;
			}
		}
		/*
		 * Shutdown ran out of time, or a second signal said not to wait: what Redis did
		 * not take is spooled (or lost), and Redis is not tried again, so the stop takes
		 * at most one Redis timeout past the deadline (a connect under way then).
		 */
		if (deadline != 0 && (now >= deadline || app->quit > 1)) {
			if (!warned)
				CTL_LOG(app, WARNING, "%s: %s what Redis did not take",
					app->quit > 1 ? "second stop signal" : "shutdown timeout",
					app->spool_on ? "spooling" : "giving up");
			warned = 1;
			if (!tally_delivery_idle(&app->dlv)) {
				tally_delivery_flush_to_spool(&app->dlv);
				work++;
			}
		} else {
			work += tally_delivery_step(&app->dlv, now, deadline != 0);
		}
		while ((t = tally_delivery_release(&app->dlv)) != NULL) {
			rte_ring_sp_enqueue(app->from_sink, t);
			work++;
		}
		/* held back while a reload waits for the sink to have nothing pending */
		if (tally_sink_available(app->sink) && gen == app->sink_reload_seen)
			work += write_names(app);
		if (now >= next_stats) {
			write_stats(app);
			next_stats = now + app->cfg.stats_ms;
			/* not while the breaker is open: at the first stats write after it closes */
			if (app->catalog != NULL && now >= next_catalog &&
			    tally_sink_available(app->sink)) {
				write_catalog(app);
				next_catalog = now + CATALOG_WRITE_MS;
			}
		}
		if (finish && tally_delivery_idle(&app->dlv) && rte_ring_count(app->to_sink) == 0)
			break;
		/*
		 * A millisecond idle is nothing next to --flush-ms; it keeps the CPU for others.
		 * Replies Redis sends end the wait at once.
		 */
		if (work == 0)
			tally_sink_wait(app->sink, 1000);
	}
	/*
	 * Final stats, acknowledged before exit, on a new connection if the last was dropped;
	 * but not after the deadline: a Redis that let it pass must not cost another timeout.
	 */
	if (!warned)
		tally_sink_poll(app->sink, tally_now_ms());
	/* A run shorter than --stats-ms writes its catalog with its only stats. */
	if (!warned && app->catalog != NULL && next_catalog == 0 &&
	    tally_sink_available(app->sink))
		write_catalog(app);
	if (!warned && tally_sink_available(app->sink))
		while (write_names(app) > 0)
			;
	errors_before = ss->errors;
	write_stats(app);
	tally_sink_sync(app->sink, tally_now_ms());
	/* With a spool, Redis being down at the end loses nothing: the next start replays. */
	app->sink_rc = ss->errors != errors_before && !app->spool_on ? -EIO : 0;
	return NULL;
}

int
tally_sink_thread_start(struct tally_app *app)
{
	if (rte_ctrl_thread_create(&app->sink_tid, "tally-sink", NULL, sink_main, app) != 0)
		return -1;
	app->sink_running = 1;
	return 0;
}

/* Tables the sink thread is done with go back to the merger. */
static unsigned int
take_released(struct tally_app *app)
{
	unsigned int n = 0;
	void *t;

	while (rte_ring_sc_dequeue(app->from_sink, &t) == 0) {
		tally_merger_release(&app->merger, t);
		n++;
	}
	return n;
}

/* Complete windows (with force, every open one) go to the sink thread, oldest first. */
static unsigned int
hand_over(struct tally_app *app, int force)
{
	struct tally_window_handoff h;
	unsigned int n = 0;

	/* The ring holds every merge table: an enqueue never fails. */
	while ((h.table = tally_merger_next(&app->merger, force, &h.start_ms)) != NULL) {
		rte_ring_sp_enqueue_elem(app->to_sink, &h, sizeof(h));
		n++;
	}
	return n;
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

/* Every partial merged and every window handed to the sink thread. */
static int
all_handed_over(const struct tally_app *app)
{
	uint32_t i;

	for (i = 0; i < app->nworkers; i++)
		if (app->nstash[i] != 0 || rte_ring_count(app->workers[i].closed) != 0)
			return 0;
	return tally_merger_merging(&app->merger) == 0;
}

int
tally_control_run(struct tally_app *app)
{
	uint64_t now = tally_now_ms(), deadline = 0;
	int done = 0;
	uint32_t i;

	if (tally_sink_thread_start(app) != 0) {
		CTL_LOG(app, ERR, "cannot start the sink thread");
		return -EIO;
	}
	app->next_stats_ms = now + app->cfg.stats_ms;
	app->next_log_ms = now + app->cfg.log_ms;
	for (;;) {
		unsigned int work = 0;

		now = tally_now_ms();
		if (!done)
			done = all_workers_done(app);
		for (i = 0; i < app->nworkers; i++)
			work += drain_worker(app, i);
		work += hand_over(app, done);
		work += take_released(app);
		if (now >= app->next_stats_ms) {
			sample_ports(app);
			app->next_stats_ms = now + app->cfg.stats_ms;
		}
		if (now >= app->next_log_ms) {
			log_stats(app);
			app->next_log_ms = now + app->cfg.log_ms;
		}
		if (app->reload && !app->quit) {
			app->reload = 0;
			tally_reload(app);
			app->next_log_ms = RTE_MIN(app->next_log_ms, now + app->cfg.log_ms);
		}
		if (app->worker_reload_pending || app->sink_reload_pending)
			tally_reload_push(app);
		if (app->quit && deadline == 0) {
			deadline = now + app->cfg.shutdown_timeout_s * 1000u;
			__atomic_store_n(&app->sink_deadline_ms, deadline, __ATOMIC_RELEASE);
		}
		/* Workers drain in bounded time; what they hand over, the sink writes or spools. */
		if (done && all_handed_over(app))
			break;
		if (work == 0)
			usleep(done ? 1000 : 100);
	}
	/* Every malformed frame the workers handed over is in the capture before the last stats. */
	tally_dlq_stop(&app->dlq);
	sample_ports(app);
	__atomic_store_n(&app->sink_finish, 1, __ATOMIC_RELEASE);
	pthread_join(app->sink_tid, NULL);
	app->sink_running = 0;
	take_released(app);
	log_stats(app);
	if (tally_merger_busy(&app->merger) != 0 || app->dlv.st.spool_lost != 0 ||
	    app->dlv.st.unwritten != 0)
		return -EIO;
	return app->sink_rc;
}
