/* SPDX-License-Identifier: BSD-3-Clause */
/* Builds and frees tally's resources: mbuf pool, ports, worker queues, rings, tables, sink. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_log.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_ring_elem.h>

#include "tally_app.h"
#include "tally_names.h"
#include "tally_auth.h"

#define MBUF_CACHE 256
#define EXC_RING_SIZE 1024
#define NAMES_RING_SIZE 1024 /* statsd names waiting for the sink thread, per worker */
/*
 * The sink thread keeps the names of statsd series and devices (their Redis fields are named
 * by them): at most 2 x --statsd-series names, this many bytes of them per --statsd-series.
 */
#define NAMES_BYTES_PER_SERIES 192
#define DLQ_RING_MIN UINT64_C(1024)
#define DLQ_RING_MAX UINT64_C(65536)
#define TABLE_RING_SIZE 8 /* more than TALLY_WORKER_TABLES: enqueues never fail */

static int
fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

uint64_t
tally_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t
tally_wall_ms(void *arg)
{
	const struct tally_app *app = arg;

	return tally_clock_ns(&app->clock, rte_rdtsc()) / 1000000u;
}

/* The sink's own lines (refused writes), through tally's log type. */
static void
sink_log(void *arg, int warning, const char *line)
{
	const struct tally_app *app = arg;

	rte_log(warning ? RTE_LOG_WARNING : RTE_LOG_INFO, app->logtype, "TALLY: %s\n", line);
}

/* A stop signal during start-up: large tables take seconds each to clear; stop between them. */
static int
stopped(const struct tally_app *app, char *err, size_t errlen)
{
	return app->quit ? fail(err, errlen, "start-up stopped by a signal") : 0;
}

/* Side memory of every table: the sketches and HLLs of its histogram and distinct series. */
static uint64_t
side_bytes(const struct tally_config *c)
{
	return (c->histogram_series + c->distinct_series) * TALLY_SIDE_PER_SERIES;
}

_Static_assert(TALLY_CATALOG_DENSE_IDS == TALLY_TABLE_KIND_IDS, "the catalog's dense kinds");

/* The catalog's kind of a metric id beyond its dense array (a table's kind_of). */
static uint8_t
catalog_kind_of(const void *ctx, uint32_t id)
{
	return tally_catalog_kind(ctx, id);
}

static struct tally_table *
table_alloc(struct tally_app *app, uint64_t series, int socket)
{
	size_t len = tally_table_memsize((uint32_t)series, side_bytes(&app->cfg));
	struct tally_table *t;
	struct tally_mem *mem;
	void *p;

	if (len == 0 || app->nmem >= TALLY_MAX_TABLES)
		return NULL;
	mem = &app->mem[app->nmem];
	p = rte_malloc_socket("tally_table", len, RTE_CACHE_LINE_SIZE, socket);
	mem->mapped = 0;
	if (p == NULL) { /* --no-huge or a small -m: ordinary pages, transparent hugepages */
		p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			return NULL;
		madvise(p, len, MADV_HUGEPAGE);
		mem->mapped = 1;
	}
	mem->addr = p;
	mem->len = len;
	app->nmem++;
	t = tally_table_init(p, (uint32_t)series, side_bytes(&app->cfg));
	if (t != NULL && app->catalog != NULL)
		tally_table_set_kinds(t, app->catalog->dense, catalog_kind_of, app->catalog);
	return t;
}

static struct rte_ring *
ring_create(const char *kind, uint32_t id, unsigned int size, int socket)
{
	char name[RTE_RING_NAMESIZE];

	snprintf(name, sizeof(name), "tally_%s_%u", kind, id);
	return rte_ring_create(name, size, socket, RING_F_SP_ENQ | RING_F_SC_DEQ);
}

/* Spread the port's RX queues over the workers, continuing where the last port stopped. */
static int
assign_queues(struct tally_app *app, const struct tally_port_info *p, uint32_t *next)
{
	uint16_t q;

	for (q = 0; q < p->nb_rxq; q++) {
		struct tally_worker *w = &app->workers[*next % app->nworkers];

		if (w->nrxq >= TALLY_MAX_RXQ_PER_WORKER)
			return -ENOSPC;
		w->rxq[w->nrxq++] = (struct tally_rxq){.port = p->port_id, .queue = q};
		(*next)++;
	}
	return 0;
}

static int
ports_init(struct tally_app *app, char *err, size_t errlen)
{
	uint32_t next = 0;
	uint16_t port;
	int rc;

	const struct tally_port_rss rss = {
		.fields = app->cfg.rss_fields,
		.key_len = app->cfg.rss_key_len,
		.key = app->cfg.rss_key,
	};

	RTE_ETH_FOREACH_DEV(port) {
		struct tally_port_info *p = &app->ports[app->nports];

		if (app->nports >= TALLY_MAX_PORTS)
			return fail(err, errlen, "more than %d ports", TALLY_MAX_PORTS);
		rc = tally_port_init(port, (uint16_t)app->nworkers, (uint16_t)app->cfg.rx_desc,
				     app->mp, &rss, p, err, errlen);
		if (rc != 0)
			return -1;
		app->nports++;
		if (assign_queues(app, p, &next) != 0)
			return fail(err, errlen, "port %u: too many RX queues per worker", port);
		rte_log(RTE_LOG_INFO, app->logtype,
			"TALLY: port %u (%s): %u RX queue(s), RSS %s, RETA %u entries\n", port,
			p->name, p->nb_rxq, p->rss ? "on" : "off", p->reta_size);
	}
	if (app->nports == 0)
		return fail(err, errlen, "no Ethernet port: give one with -a PCI_ADDR or --vdev");
	return 0;
}

/* Device mode with several workers exchanges records: one table more each (the previous). */
static int
device_exchange(const struct tally_app *app)
{
	return app->cfg.partition == TALLY_PARTITION_DEVICE && app->nworkers > 1;
}

static uint32_t
tables_per_worker(const struct tally_app *app)
{
	return device_exchange(app) ? 4 : 3;
}

static int
worker_init(struct tally_app *app, struct tally_worker *w, uint32_t id, char *err,
	    size_t errlen)
{
	const struct tally_config *c = &app->cfg;
	int socket = (int)rte_lcore_to_socket_id(app->lcores[id]);
	uint32_t i;

	w->id = id;
	w->nworkers = app->nworkers;
	w->mode = c->partition;
	w->ntables = tables_per_worker(app);
	tally_hot_init(&w->hot, w->mode == TALLY_PARTITION_DEVICE ? c->hot_share : 0);
	if (w->mode == TALLY_PARTITION_DEVICE && c->hot_flush_ms > 0)
		w->hot_flush_tsc = c->hot_flush_ms * (rte_get_tsc_hz() / 1000u);
	w->burst = (uint16_t)c->burst;
	w->window_ms = c->window_ms;
	w->drain_max = (uint32_t)c->rx_desc * 2 * (w->nrxq ? w->nrxq : 1);
	w->clock = &app->clock;
	w->quit = &app->quit;
	w->filter.udp_port = c->udp_port;
	w->filter.statsd_port = c->statsd_port;
	w->filter.has_ipv4 = c->has_ipv4;
	w->filter.ipv4 = c->ipv4;
	w->filter.has_ipv6 = c->has_ipv6;
	memcpy(w->filter.ipv6, c->ipv6, sizeof(w->filter.ipv6));
	w->closed = ring_create("closed", id, TABLE_RING_SIZE, socket);
	w->free = ring_create("free", id, TABLE_RING_SIZE, socket);
	w->exc = ring_create("exc", id, EXC_RING_SIZE, socket);
	if (w->closed == NULL || w->free == NULL || w->exc == NULL)
		return fail(err, errlen, "worker %u: cannot create rings: %s", id,
			    rte_strerror(rte_errno));
	if (c->dlq_path[0] != '\0') {
		/* The capture rate is shared out evenly between the workers. */
		uint64_t n = app->nworkers, burst = (c->dlq_burst + n - 1) / n;

		/* Room for a whole burst, so one arriving at line rate is captured entire. */
		w->dlq = ring_create("dlq", id,
				     (unsigned int)RTE_MIN(rte_align64pow2(RTE_MAX(burst + 1,
									DLQ_RING_MIN)),
							   DLQ_RING_MAX),
				     socket);
		if (w->dlq == NULL)
			return fail(err, errlen, "worker %u: cannot create the DLQ ring: %s", id,
				    rte_strerror(rte_errno));
		tally_dlq_bucket_init(&w->dlq_bucket, burst, (c->dlq_rate + n - 1) / n,
				      app->clock.hz, app->clock.base_tsc);
	}
	if (c->statsd_port != 0) {
		size_t seen = tally_statsd_seen_memsize((uint32_t)c->statsd_series);
		void *mem = rte_zmalloc_socket("tally_statsd_seen", seen, RTE_CACHE_LINE_SIZE, socket);

		w->statsd = rte_zmalloc_socket("tally_statsd", sizeof(*w->statsd),
					       RTE_CACHE_LINE_SIZE, socket);
		char name[RTE_RING_NAMESIZE];

		snprintf(name, sizeof(name), "tally_names_%u", id);
		w->names = rte_ring_create_elem(name, sizeof(struct tally_name_msg), NAMES_RING_SIZE,
						socket, RING_F_SP_ENQ | RING_F_SC_DEQ);
		if (mem == NULL || w->statsd == NULL || w->names == NULL)
			return fail(err, errlen, "worker %u: cannot allocate the statsd decoder", id);
		if (tally_worker_statsd_init(w, c->statsd_device_tag, (unsigned int)c->statsd_max_tags,
					     (uint32_t)c->statsd_series, mem) != 0)
			return fail(err, errlen, "--statsd-device-tag: '%s' is not a tag name",
				    c->statsd_device_tag);
	}
	for (i = 0; i < w->ntables; i++) {
		if (stopped(app, err, errlen) != 0)
			return -1;
		w->tables[i] = table_alloc(app, c->table_series, socket);
		if (w->tables[i] == NULL)
			return fail(err, errlen, "worker %u: cannot allocate a table of %lu series",
				    id, (unsigned long)c->table_series);
		if (i > 0)
			rte_ring_sp_enqueue(w->free, (void *)(uintptr_t)i);
	}
	w->cur = w->tables[0];
	w->cur_idx = 0;
	return 0;
}

/* Device mode: one SP/SC ring of forwarded records per ordered worker pair. */
static int
fwd_rings_init(struct tally_app *app, char *err, size_t errlen)
{
	uint32_t i, j;

	if (!device_exchange(app))
		return 0;
	for (i = 0; i < app->nworkers; i++) {
		for (j = 0; j < app->nworkers; j++) {
			char name[RTE_RING_NAMESIZE];
			struct rte_ring *r;

			if (i == j)
				continue;
			snprintf(name, sizeof(name), "tfwd_%u_%u", i, j);
			r = rte_ring_create_elem(name, sizeof(union tally_fwd_slot),
						 (unsigned int)app->cfg.fwd_ring,
						 (int)rte_lcore_to_socket_id(app->lcores[j]),
						 RING_F_SP_ENQ | RING_F_SC_DEQ | RING_F_EXACT_SZ);
			if (r == NULL)
				return fail(err, errlen, "cannot create ring %s of %lu records: %s",
					    name, (unsigned long)app->cfg.fwd_ring,
					    rte_strerror(rte_errno));
			app->workers[i].to[j] = r;
			app->workers[j].from[i] = r;
		}
	}
	return 0;
}

/*
 * What the sink thread works with: the delivery state machine over the Redis sink and the
 * spool, and the two rings to and from the control lcore (each holds every merge table).
 */
static int
sink_thread_init(struct tally_app *app, char *err, size_t errlen)
{
	const struct tally_delivery_conf dc = {
		.ops = &tally_redis_sink_ops,
		.sink = app->sink,
		.spool = app->spool_on ? &app->spool : NULL,
		.replay = app->replay,
		.partial_id = app->partial_id,
		.names = app->names,
		/* two merge tables stay free for the windows being merged at a boundary */
		.queue_max = app->nmerge > 3 ? app->nmerge - 3 : 0,
		.sort_scratch = app->sort_scratch,
		.log = sink_log,
		.log_arg = app,
	};
	int socket = (int)rte_socket_id();

	if (tally_delivery_init(&app->dlv, &dc) != 0)
		return fail(err, errlen, "cannot set up window delivery");
	app->to_sink = rte_ring_create_elem("tally_to_sink", sizeof(struct tally_window_handoff),
					    app->nmerge + 1, socket,
					    RING_F_SP_ENQ | RING_F_SC_DEQ | RING_F_EXACT_SZ);
	app->from_sink = rte_ring_create("tally_from_sink", app->nmerge + 1, socket,
					 RING_F_SP_ENQ | RING_F_SC_DEQ | RING_F_EXACT_SZ);
	if (app->to_sink == NULL || app->from_sink == NULL)
		return fail(err, errlen, "cannot create the sink rings: %s",
			    rte_strerror(rte_errno));
	return 0;
}

/* MemAvailable of /proc/meminfo in bytes, or 0 when it cannot be read. */
static uint64_t
mem_available(void)
{
	char line[128];
	uint64_t kb = 0;
	FILE *f = fopen("/proc/meminfo", "r");

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "MemAvailable: %" SCNu64 " kB", &kb) == 1)
			break;
	fclose(f);
	return kb << 10;
}

/* Free bytes of DPDK's heaps (hugepages, or -m memory with --no-huge), all sockets. */
static uint64_t
heap_free(void)
{
	struct rte_malloc_socket_stats st;
	uint64_t sum = 0;
	unsigned int i;

	for (i = 0; i < rte_socket_count(); i++)
		if (rte_malloc_get_socket_stats(rte_socket_id_by_idx(i), &st) == 0)
			sum += st.heap_freesz_bytes;
	return sum;
}

/* The sink thread's statsd names (the memory behind struct tally_names). */
static uint64_t
names_memsize(const struct tally_config *c)
{
	return c->statsd_port == 0 ? 0
				   : tally_names_memsize(2 * (uint32_t)c->statsd_series,
							 c->statsd_series * NAMES_BYTES_PER_SERIES);
}

/* "119.5 GiB" or "36 MiB", into buf. */
static const char *
human(uint64_t bytes, char *buf, size_t len)
{
	if (bytes >= 1u << 30)
		snprintf(buf, len, "%.1f GiB", (double)bytes / (1u << 30));
	else
		snprintf(buf, len, "%" PRIu64 " MiB", (bytes + (1u << 20) - 1) >> 20);
	return buf;
}

/*
 * What the options imply, added up before anything large is allocated: a --table-series a
 * thousand times too big must be a one-line error at once, not minutes of zeroing memory
 * and then the kernel's OOM killer on the whole host.
 */
int
tally_app_memory(const struct tally_app *app, uint64_t *need_out, uint64_t *have_out, char *err,
		 size_t errlen)
{
	const struct tally_config *c = &app->cfg;
	int device = device_exchange(app);
	uint64_t table = tally_table_memsize((uint32_t)c->table_series, side_bytes(c));
	uint64_t ntables = (uint64_t)app->nworkers * tables_per_worker(app) + app->nmerge +
			   (c->spool_dir[0] != '\0' ? 1 : 0);
	uint64_t mbuf = rte_mempool_calc_obj_size(sizeof(struct rte_mbuf) +
						   RTE_MBUF_DEFAULT_BUF_SIZE, 0, NULL);
	uint64_t tables = ntables * table;
	uint64_t sort = tally_table_sort_scratch_size((uint32_t)c->table_series);
	uint64_t pool = c->mbufs * mbuf;
	uint64_t rings = device ? (uint64_t)app->nworkers * (app->nworkers - 1) * c->fwd_ring *
					  sizeof(union tally_fwd_slot)
				: 0;
	/* statsd: each worker's decoder, its seen-sets and its names ring */
	uint64_t statsd = c->statsd_port == 0
				  ? 0
				  : (uint64_t)app->nworkers *
					    (sizeof(struct tally_statsd_dec) +
					     tally_statsd_seen_memsize((uint32_t)c->statsd_series) +
					     (uint64_t)NAMES_RING_SIZE * sizeof(struct tally_name_msg)) +
					    names_memsize(c);
	uint64_t need = tables + sort + pool + rings + statsd;
	uint64_t have = c->max_memory_mb > 0 ? c->max_memory_mb << 20 : heap_free() + mem_available();
	char b[7][16];

	*need_out = need;
	*have_out = have;
	if (need <= have)
		return 0;
	return fail(err, errlen,
		    "memory: the options need %s (%" PRIu64 " tables of --table-series %" PRIu64
		    " and %s of --histogram-series/--distinct-series side memory = %s: %u per "
		    "worker x %u, %u for --sink-queue-mb %" PRIu64 "%s; their sort "
		    "buffer %s; --mbufs %" PRIu64 " %s; --fwd-ring %s), more than %s %s: lower "
		    "--table-series, --histogram-series, --distinct-series or --sink-queue-mb",
		    human(need, b[0], 16), ntables, c->table_series, human(side_bytes(c), b[6], 16),
		    human(tables, b[1], 16),
		    tables_per_worker(app), app->nworkers, app->nmerge, c->sink_queue_mb,
		    c->spool_dir[0] != '\0' ? ", 1 for spool replay" : "", human(sort, b[2], 16),
		    c->mbufs, human(pool, b[3], 16), human(rings, b[4], 16),
		    c->max_memory_mb > 0 ? "--max-memory-mb" : "the host has free (hugepages + "
							       "MemAvailable):",
		    human(have, b[5], 16));
}

void
tally_app_default_instance(struct tally_config *c)
{
	if (c->instance[0] == '\0' && gethostname(c->instance, sizeof(c->instance) - 1) != 0)
		strcpy(c->instance, "tally");
}

int
tally_app_plan(struct tally_app *app, char *err, size_t errlen)
{
	const struct tally_config *c = &app->cfg;
	unsigned int lcore;

	app->logtype = rte_log_register_type_and_pick_level("tally", RTE_LOG_INFO);
	if (app->logtype < 0)
		app->logtype = RTE_LOGTYPE_EAL;
	app->nworkers = 0;
	RTE_LCORE_FOREACH_WORKER(lcore) {
		if (app->nworkers >= TALLY_MAX_WORKERS)
			return fail(err, errlen, "more than %d worker lcores", TALLY_MAX_WORKERS);
		app->lcores[app->nworkers++] = lcore;
	}
	if (app->nworkers == 0)
		return fail(err, errlen, "need at least 2 lcores (e.g. -l 0-1): the main lcore "
			    "runs control, the others are workers");
	/*
	 * The sink queue: as many merged tables as --sink-queue-mb holds, at least 4: one being
	 * written, one waiting, and the two windows a boundary may have merging at once. Their
	 * side memory (sketches, HLLs) comes on top, as in every table: tally_app_memory() adds
	 * it.
	 */
	app->nmerge = (uint32_t)RTE_MIN((c->sink_queue_mb << 20) /
					 tally_table_memsize((uint32_t)c->table_series, 0),
				 (uint64_t)TALLY_MERGE_TABLES);
	app->nmerge = RTE_MAX(app->nmerge, 4u);
	return 0;
}

int
tally_app_sink_queue_short(const struct tally_app *app, uint64_t *want)
{
	const struct tally_config *c = &app->cfg;

	*want = 3 + 2 * ((c->redis_timeout_ms + c->window_ms - 1) / c->window_ms);
	return app->nmerge < *want;
}

int
tally_app_init(struct tally_app *app, char *err, size_t errlen)
{
	const struct tally_config *c = &app->cfg;
	char password[TALLY_AUTH_PASSWORD_SIZE] = "";
	struct tally_sink_conf sc;
	struct timespec ts;
	uint64_t rnd, want, need, have;
	uint32_t i;

	if (tally_app_plan(app, err, errlen) != 0)
		return -1;
	clock_gettime(CLOCK_REALTIME, &ts);
	app->clock.base_tsc = rte_rdtsc();
	app->clock.base_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	app->clock.hz = rte_get_tsc_hz();
	app->start_ms = app->clock.base_ns / 1000000u;
	app->start_mono_ms = tally_now_ms();
	rte_log(RTE_LOG_INFO, app->logtype, "TALLY: %u worker(s), TSC %" PRIu64 " Hz\n",
		app->nworkers, app->clock.hz);
	/* While the sink waits on a slow Redis (a batch may take --redis-timeout-ms) windows
	 * keep closing: the queue must hold them, or the workers run out of tables. */
	if (tally_app_sink_queue_short(app, &want))
		rte_log(RTE_LOG_WARNING, app->logtype,
			"TALLY: --sink-queue-mb %lu holds %u windows of --table-series %lu; a "
			"Redis "
			"answering within --redis-timeout-ms %lu needs %lu at --window-ms %lu, or "
			"records may be dropped (window_stall)\n",
			(unsigned long)c->sink_queue_mb, app->nmerge,
			(unsigned long)c->table_series, (unsigned long)c->redis_timeout_ms,
			(unsigned long)want, (unsigned long)c->window_ms);
	if (tally_app_memory(app, &need, &have, err, errlen) != 0)
		return -1;
	app->workers = rte_zmalloc("tally_workers", sizeof(*app->workers) * app->nworkers,
				   RTE_CACHE_LINE_SIZE);
	if (app->workers == NULL)
		return fail(err, errlen, "cannot allocate worker contexts");
	/* Before the workers start, so they may read it from their first record on. */
	if (c->catalog_file[0] != '\0') {
		app->catalog = tally_catalog_load(c->catalog_file, err, errlen);
		if (app->catalog == NULL)
			goto undo;
		rte_log(RTE_LOG_INFO, app->logtype, "TALLY: catalog %s: %u metrics\n",
			c->catalog_file, tally_catalog_count(app->catalog));
	}
	app->mp = rte_pktmbuf_pool_create("tally_mbufs", (unsigned int)c->mbufs, MBUF_CACHE, 0,
					  RTE_MBUF_DEFAULT_BUF_SIZE, (int)rte_socket_id());
	if (app->mp == NULL)
		goto undo_msg_pool;
	if (ports_init(app, err, errlen) != 0)
		goto undo;
	for (i = 0; i < app->nworkers; i++)
		if (worker_init(app, &app->workers[i], i, err, errlen) != 0)
			goto undo;
	if (fwd_rings_init(app, err, errlen) != 0)
		goto undo;
	if (c->dlq_path[0] != '\0') {
		struct rte_ring *rings[TALLY_MAX_WORKERS];

		for (i = 0; i < app->nworkers; i++)
			rings[i] = app->workers[i].dlq;
		if (tally_dlq_start(&app->dlq, c->dlq_path, c->dlq_max_mb << 20, rings,
				    app->nworkers, err, errlen) != 0)
			goto undo;
	}
	for (i = 0; i < app->nmerge; i++) {
		if (stopped(app, err, errlen) != 0)
			goto undo;
		app->merge_tables[i] = table_alloc(app, c->table_series, (int)rte_socket_id());
		if (app->merge_tables[i] == NULL) {
			fail(err, errlen, "cannot allocate merge tables of %lu series",
			     (unsigned long)c->table_series);
			goto undo;
		}
	}
	if (c->spool_dir[0] != '\0') {
		const struct tally_spool_conf spc = {
			.dir = c->spool_dir,
			.max_bytes = c->spool_max_mb << 20,
			.policy = c->spool_policy,
			.log = sink_log,
			.log_arg = app,
		};

		if (tally_spool_open(&app->spool, &spc, err, errlen) != 0)
			goto undo;
		app->spool_on = 1;
		app->replay = table_alloc(app, c->table_series, (int)rte_socket_id());
		if (app->replay == NULL) {
			fail(err, errlen, "cannot allocate the spool replay table");
			goto undo;
		}
		if (tally_spool_segments(&app->spool) > 0)
			rte_log(RTE_LOG_INFO, app->logtype,
				"TALLY: spool %s holds %" PRIu64 " segment(s) to replay\n",
				c->spool_dir, tally_spool_segments(&app->spool));
	}
	if (tally_merger_init(&app->merger, app->nworkers, c->window_ms, app->merge_tables,
			      app->nmerge) != 0) {
		fail(err, errlen, "cannot set up the final stage");
		goto undo;
	}
	tally_app_default_instance(&app->cfg);
	/* Partial ids must stay whole: they are what makes a merge apply once. */
	if (strlen(c->instance) > TALLY_INSTANCE_MAX) {
		fail(err, errlen, "--instance: '%s' is longer than %d characters", c->instance,
		     TALLY_INSTANCE_MAX);
		goto undo;
	}
	/*
	 * A partial's id: this instance and this run, so a restart never reuses one; the pid and
	 * a random part keep it unique for two instances of one host name started in the same
	 * millisecond, and across a clock stepped back.
	 */
	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != (ssize_t)sizeof(rnd))
		rnd = rte_rdtsc() ^ ((uint64_t)getpid() << 32);
	snprintf(app->partial_id, sizeof(app->partial_id), "%s:%" PRIu64 ":%d:%016" PRIx64,
		 c->instance, app->start_ms, (int)getpid(), rnd);
	if (c->redis_password_file[0] != '\0' &&
	    tally_password_file_read(c->redis_password_file, password, sizeof(password), err,
				     errlen) != 0)
		goto undo;
	app->sort_scratch = malloc(tally_table_sort_scratch_size((uint32_t)c->table_series));
	if (app->sort_scratch == NULL) {
		fail(err, errlen, "cannot allocate the sort buffer of %lu series",
		     (unsigned long)c->table_series);
		goto undo;
	}
	if (c->statsd_port != 0) {
		app->names = calloc(1, sizeof(*app->names) + names_memsize(c));
		if (app->names == NULL ||
		    tally_names_init(app->names, app->names + 1, 2 * (uint32_t)c->statsd_series,
				     c->statsd_series * NAMES_BYTES_PER_SERIES) != 0) {
			fail(err, errlen, "cannot allocate the statsd names (--statsd-series %" PRIu64
			     ")", c->statsd_series);
			goto undo;
		}
	}
	sc = (struct tally_sink_conf){
		.names = app->names,
		.host = c->redis_host,
		.port = c->redis_port,
		.flush_batch = c->flush_batch,
		.flush_ms = c->flush_ms,
		.timeout_ms = c->redis_timeout_ms,
		.wait_replicas = (uint32_t)c->redis_wait_replicas,
		.max_series = (uint32_t)c->table_series,
		.sort_scratch = app->sort_scratch,
		.retention_s = c->retention_s,
		.window_ms = c->window_ms,
		.merge = c->redis_write == 0,
		.partial_id = app->partial_id,
		.start_open = app->spool_on,
		.breaker_failures = (uint32_t)c->breaker_failures,
		.backoff_ms = c->breaker_backoff_ms,
		.backoff_max_ms = c->breaker_max_ms,
		.cluster = c->redis_cluster,
		.log = sink_log,
		.log_arg = app,
		.wall_ms = tally_wall_ms,
		.user = c->redis_user,
		.password = password,
	};
	app->sink = tally_sink_create(&sc, err, errlen);
	/* The sink keeps its own copy for reconnects. */
	explicit_bzero(password, sizeof(password));
	if (app->sink == NULL)
		goto undo;
	if (sink_thread_init(app, err, errlen) != 0)
		goto undo;
	if (tally_exception_start(app) != 0) {
		fail(err, errlen, "cannot start the exception thread");
		goto undo;
	}
	if (tally_telemetry_register(app) != 0)
		rte_log(RTE_LOG_WARNING, app->logtype, "TALLY: telemetry commands not registered\n");
	if (tally_metrics_start(app, err, errlen) != 0)
		goto undo;
	return 0;

undo_msg_pool:
	fail(err, errlen, "cannot create a pool of %lu mbufs: %s (more hugepages, or a smaller "
	     "--mbufs)", (unsigned long)c->mbufs, rte_strerror(rte_errno));
undo:
	tally_app_free(app);
	return -1;
}

int
tally_app_launch(struct tally_app *app)
{
	uint32_t i;
	int rc;

	for (i = 0; i < app->nworkers; i++) {
		rc = rte_eal_remote_launch(tally_worker_main, &app->workers[i], app->lcores[i]);
		if (rc != 0)
			return rc;
	}
	return 0;
}

void
tally_app_free(struct tally_app *app)
{
	uint32_t i, j;

	tally_metrics_stop(app);
	tally_exception_stop(app);
	tally_delivery_fini(&app->dlv);
	tally_sink_free(app->sink);
	app->sink = NULL;
	rte_ring_free(app->to_sink);
	rte_ring_free(app->from_sink);
	app->to_sink = app->from_sink = NULL;
	free(app->sort_scratch);
	app->sort_scratch = NULL;
	free(app->names);
	app->names = NULL;
	if (app->spool_on)
		tally_spool_close(&app->spool);
	app->spool_on = 0;
	tally_dlq_stop(&app->dlq);
	for (i = 0; i < app->nports; i++)
		tally_port_close(app->ports[i].port_id);
	app->nports = 0;
	if (app->workers != NULL) {
		for (i = 0; i < app->nworkers; i++) {
			struct tally_worker *w = &app->workers[i];
			void *m;

			if (w->exc != NULL)
				while (rte_ring_sc_dequeue(w->exc, &m) == 0)
					rte_pktmbuf_free(m);
			rte_ring_free(w->dlq);
			rte_ring_free(w->closed);
			rte_ring_free(w->free);
			rte_ring_free(w->exc);
			for (j = 0; j < app->nworkers; j++)
				rte_ring_free(w->to[j]);
		}
		rte_free(app->workers);
		app->workers = NULL;
	}
	for (i = 0; i < app->nmem; i++) {
		if (app->mem[i].mapped)
			munmap(app->mem[i].addr, app->mem[i].len);
		else
			rte_free(app->mem[i].addr);
	}
	app->nmem = 0;
	rte_mempool_free(app->mp);
	app->mp = NULL;
	tally_catalog_free(app->catalog);
	app->catalog = NULL;
}
