/* SPDX-License-Identifier: BSD-3-Clause */
/* /tally/ commands on DPDK's telemetry socket: totals, per worker, per port. */
#include <stdio.h>

#include <rte_ethdev.h>
#include <rte_telemetry.h>

#include "tally_app.h"

/* Telemetry callbacks take no context argument: the one running app. */
static const struct tally_app *tel_app;

/* Telemetry names allow no ':', so `malformed:short` becomes `malformed_short`. */
static void
add_u64(void *ctx, const char *name, uint64_t value)
{
	char tel[64];
	size_t i;

	for (i = 0; name[i] != '\0' && i < sizeof(tel) - 1; i++)
		tel[i] = name[i] == ':' ? '_' : name[i];
	tel[i] = '\0';
	rte_tel_data_add_dict_u64(ctx, tel, value);
}

static int
tel_stats(const char *cmd, const char *params, struct rte_tel_data *d)
{
	struct tally_stats_totals t;

	tally_app_totals(tel_app, &t);
	rte_tel_data_start_dict(d);
	tally_stats_foreach(&t, add_u64, d);
	return 0;
}

static int
tel_workers(const char *cmd, const char *params, struct rte_tel_data *d)
{
	uint32_t i, k;

	rte_tel_data_start_dict(d);
	for (i = 0; i < tel_app->nworkers; i++) {
		const struct tally_worker *w = &tel_app->workers[i];
		struct rte_tel_data *c = rte_tel_data_alloc();
		char name[64];

		if (c == NULL)
			return -1;
		rte_tel_data_start_dict(c);
		rte_tel_data_add_dict_u64(c, "lcore", tel_app->lcores[i]);
		rte_tel_data_add_dict_u64(c, "rx_queues", w->nrxq);
		for (k = 0; k < TALLY_WC_MAX; k++)
			rte_tel_data_add_dict_u64(c, tally_worker_counter_names[k], w->stats.c[k]);
		for (k = 0; k < TALLY_MALFORMED_MAX; k++) {
			snprintf(name, sizeof(name), "malformed:%s", tally_malformed_name(k));
			add_u64(c, name, w->stats.malformed[k]);
		}
		for (k = 0; k < TALLY_STATSD_REASON_MAX; k++) {
			snprintf(name, sizeof(name), "statsd:%s", tally_statsd_reason_name(k));
			add_u64(c, name, w->stats.statsd[k]);
		}
		snprintf(name, sizeof(name), "w%u", i);
		rte_tel_data_add_dict_container(d, name, c, 0);
	}
	return 0;
}

static int
tel_ports(const char *cmd, const char *params, struct rte_tel_data *d)
{
	uint16_t i;

	rte_tel_data_start_dict(d);
	for (i = 0; i < tel_app->nports; i++) {
		const struct tally_port_info *p = &tel_app->ports[i];
		struct rte_tel_data *c = rte_tel_data_alloc();
		struct rte_eth_stats st;
		char name[80];

		if (c == NULL)
			return -1;
		rte_tel_data_start_dict(c);
		rte_tel_data_add_dict_u64(c, "port_id", p->port_id);
		rte_tel_data_add_dict_u64(c, "rx_queues", p->nb_rxq);
		rte_tel_data_add_dict_u64(c, "rss", p->rss);
		if (rte_eth_stats_get(p->port_id, &st) == 0) {
			rte_tel_data_add_dict_u64(c, "ipackets", st.ipackets);
			rte_tel_data_add_dict_u64(c, "ibytes", st.ibytes);
			rte_tel_data_add_dict_u64(c, "rx_missed", st.imissed);
			rte_tel_data_add_dict_u64(c, "ierrors", st.ierrors);
			rte_tel_data_add_dict_u64(c, "rx_nombuf", st.rx_nombuf);
			rte_tel_data_add_dict_u64(c, "opackets", st.opackets);
		}
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
				       "tally counters per worker lcore") != 0 ||
	    rte_telemetry_register_cmd("/tally/ports", tel_ports,
				       "tally ports: queues, RSS, NIC counters") != 0)
		return -1;
	return 0;
}
