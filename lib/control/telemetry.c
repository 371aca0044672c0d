/* SPDX-License-Identifier: BSD-3-Clause */
/* /tally/ commands on DPDK's telemetry socket: totals, per worker, per port. */
#include <stdio.h>
#include <stdlib.h>

#include <rte_ethdev.h>
#include <rte_telemetry.h>

#include "tally_app.h"
#include "tally_metrics.h"
#include "tally_prom.h"

/* Telemetry callbacks take no context argument: the one running app. */
static const struct tally_app *tel_app;

/*
 * /tally/stats being filled: a DPDK dict holds RTE_TEL_MAX_DICT_ENTRIES entries, and a field
 * past them would be dropped without a word. The totals come first; the per-worker fields
 * last (tally_stats_foreach()), so with many workers (about 23 and more) the last of those
 * are left out, and counted in `fields_omitted` (the one place kept for it): /tally/workers
 * has every worker's.
 */
struct tel_fill {
	struct rte_tel_data *d;
	unsigned int n;
	unsigned int omitted;
};

/* Telemetry names allow no ':', so `malformed:short` becomes `malformed_short`. */
static void
add_u64(void *ctx, const char *name, uint64_t value)
{
	struct tel_fill *f = ctx;
	char tel[64];
	size_t i;

	if (f->n >= RTE_TEL_MAX_DICT_ENTRIES - 1) {
		f->omitted++;
		return;
	}
	for (i = 0; name[i] != '\0' && i < sizeof(tel) - 1; i++)
		tel[i] = name[i] == ':' ? '_' : name[i];
	tel[i] = '\0';
	if (rte_tel_data_add_dict_u64(f->d, tel, value) == 0)
		f->n++;
	else
		f->omitted++;
}

static int
tel_stats(const char *cmd, const char *params, struct rte_tel_data *d)
{
	struct tally_stats_totals t;
	struct tel_fill f = {.d = d};

	tally_app_totals(tel_app, &t);
	rte_tel_data_start_dict(d);
	tally_stats_foreach(&t, add_u64, &f);
	if (f.omitted > 0)
		rte_tel_data_add_dict_u64(d, "fields_omitted", f.omitted);
	return 0;
}

/*
 * DPDK's telemetry reply is at most 16 KB of JSON: a worker's full counters take about 1.5 KB,
 * so /tally/workers gives them whole while they all fit, and past that (about 10 workers) the
 * balance fields of each worker (a line of tally:self's w<i>: fields) with "detail" saying
 * where the rest is: /tally/worker,<i> (one worker, every counter).
 */
#define TEL_REPLY_MAX (16 * 1024)
#define TEL_WORKER_FULL_MAX 1600 /* a full worker dict, names and 20-digit values, at most */

/* Worker i's counters into the dict c: all of them, or the balance fields. */
static void
worker_fill(struct rte_tel_data *c, uint32_t i, int full)
{
	static const unsigned int balance[] = {
		TALLY_WC_datagrams, TALLY_WC_aggregated, TALLY_WC_series, TALLY_WC_forwarded,
		TALLY_WC_received,  TALLY_WC_hot_records, TALLY_WC_ring_full,
	};
	const struct tally_worker *w = &tel_app->workers[i];
	struct tel_fill f = {.d = c};
	char name[64];
	uint32_t k;

	rte_tel_data_start_dict(c);
	rte_tel_data_add_dict_u64(c, "lcore", tel_app->lcores[i]);
	rte_tel_data_add_dict_u64(c, "rx_queues", w->nrxq);
	if (!full) {
		for (k = 0; k < sizeof(balance) / sizeof(balance[0]); k++)
			rte_tel_data_add_dict_u64(c, tally_worker_counter_info[balance[k]].name,
						  w->stats.c[balance[k]]);
		snprintf(name, sizeof(name), "/tally/worker,%u", i);
		rte_tel_data_add_dict_string(c, "detail", name);
		return;
	}
	for (k = 0; k < TALLY_WC_MAX; k++)
		rte_tel_data_add_dict_u64(c, tally_worker_counter_info[k].name, w->stats.c[k]);
	for (k = 0; k < TALLY_MALFORMED_MAX; k++) {
		snprintf(name, sizeof(name), "malformed:%s", tally_malformed_name(k));
		add_u64(&f, name, w->stats.malformed[k]);
	}
	for (k = 0; k < TALLY_STATSD_REASON_MAX; k++) {
		snprintf(name, sizeof(name), "statsd:%s", tally_statsd_reason_name(k));
		add_u64(&f, name, w->stats.statsd[k]);
	}
}

static int
tel_workers(const char *cmd, const char *params, struct rte_tel_data *d)
{
	const int full = (uint64_t)tel_app->nworkers * TEL_WORKER_FULL_MAX < TEL_REPLY_MAX;
	uint32_t i;

	(void)cmd;
	(void)params;
	rte_tel_data_start_dict(d);
	for (i = 0; i < tel_app->nworkers; i++) {
		struct rte_tel_data *c = rte_tel_data_alloc();
		char name[16];

		if (c == NULL)
			return -1;
		worker_fill(c, i, full);
		snprintf(name, sizeof(name), "w%u", i);
		rte_tel_data_add_dict_container(d, name, c, 0);
	}
	return 0;
}

/* /tally/worker,<i>: every counter of worker i. */
static int
tel_worker(const char *cmd, const char *params, struct rte_tel_data *d)
{
	char *end;
	unsigned long i;

	(void)cmd;
	if (params == NULL || *params == '\0')
		return -1;
	i = strtoul(params, &end, 10);
	if (*end != '\0' || i >= tel_app->nworkers)
		return -1;
	worker_fill(d, (uint32_t)i, 1);
	return 0;
}

static int
tel_ports(const char *cmd, const char *params, struct rte_tel_data *d)
{
	uint16_t i;

	struct tally_port_sample s[TALLY_MAX_PORTS];

	tally_app_port_samples(tel_app, s);
	rte_tel_data_start_dict(d);
	for (i = 0; i < tel_app->nports; i++) {
		const struct tally_port_info *p = &tel_app->ports[i];
		struct rte_tel_data *c = rte_tel_data_alloc();
		unsigned int k;
		char name[80];

		if (c == NULL)
			return -1;
		rte_tel_data_start_dict(c);
		rte_tel_data_add_dict_u64(c, "port_id", p->port_id);
		rte_tel_data_add_dict_u64(c, "rx_queues", p->nb_rxq);
		rte_tel_data_add_dict_u64(c, "rss", p->rss);
		if (s[i].ok)
			for (k = 0; k < TALLY_PC_MAX; k++)
				rte_tel_data_add_dict_u64(c, tally_port_counter_info[k].name,
							  s[i].v[k]);
		snprintf(name, sizeof(name), "%s", p->name);
		rte_tel_data_add_dict_container(d, name, c, 0);
	}
	return 0;
}

int
tally_telemetry_register(struct tally_app *app)
{
	tel_app = app;
	if (rte_telemetry_register_cmd("/tally/stats", tel_stats,
				       "tally totals, the fields of tally:self") != 0 ||
	    rte_telemetry_register_cmd("/tally/workers", tel_workers,
				       "tally counters per worker lcore (the balance fields past "
				       "about 10 workers)") != 0 ||
	    rte_telemetry_register_cmd("/tally/worker", tel_worker,
				       "every counter of one worker. Parameter: worker index") != 0 ||
	    rte_telemetry_register_cmd("/tally/ports", tel_ports,
				       "tally ports: queues, RSS, NIC counters") != 0)
		return -1;
	return 0;
}

/* /metrics: every counter as the telemetry commands read them, and the ports'. */
static size_t
metrics_render(void *ctx, char *buf, size_t cap, int om)
{
	const struct tally_app *app = ctx;
	struct tally_port_sample ports[TALLY_MAX_PORTS];
	struct tally_stats_totals t;
	uint16_t n;

	tally_app_totals(app, &t);
	n = tally_app_port_samples(app, ports);
	return tally_prom_render(buf, cap, &t, ports, n, om);
}

int
tally_metrics_start(struct tally_app *app, char *err, size_t errlen)
{
	struct tally_metrics_conf mc = {
		.body_max = tally_prom_size(app->nworkers, app->nports),
		.render = metrics_render,
		.ctx = app,
	};
	struct tally_metrics *m;
	char why[200];

	if (app->cfg.metrics_listen[0] == '\0')
		return 0;
	if (tally_metrics_parse_listen(app->cfg.metrics_listen, &mc.addr, why, sizeof(why)) != 0) {
		snprintf(err, errlen, "--metrics-listen: %s", why);
		return -1;
	}
	m = calloc(1, sizeof(*m));
	if (m == NULL) {
		snprintf(err, errlen, "--metrics-listen: out of memory");
		return -1;
	}
	if (tally_metrics_open(m, &mc, err, errlen) != 0) {
		free(m);
		return -1;
	}
	if (rte_ctrl_thread_create(&app->metrics_tid, "tally-metrics", NULL, tally_metrics_main,
				   m) != 0) {
		snprintf(err, errlen, "--metrics-listen: cannot start its thread");
		tally_metrics_close(m);
		free(m);
		return -1;
	}
	app->metrics = m;
	rte_log(RTE_LOG_INFO, app->logtype,
		"TALLY: metrics at http://%s/metrics (port %u; %u connections, replies up to %zu "
		"KB)\n",
		app->cfg.metrics_listen, m->port, TALLY_METRICS_CONNS, mc.body_max >> 10);
	return 0;
}

void
tally_metrics_stop(struct tally_app *app)
{
	if (app->metrics == NULL)
		return;
	app->metrics->stop = 1;
	pthread_join(app->metrics_tid, NULL);
	tally_metrics_close(app->metrics);
	free(app->metrics);
	app->metrics = NULL;
}
