/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The exception path on its own thread: ARP, ICMP echo and IPv6 neighbor discovery are
 * answered even while the control lcore waits on a slow or hung Redis.
 */
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

#include "tally_app.h"
#include "tally_reply.h"

#define EXC_BURST 32
#define EXC_IDLE_US 200

static const struct tally_port_info *
find_port(const struct tally_app *app, uint16_t port_id)
{
	uint16_t i;

	for (i = 0; i < app->nports; i++)
		if (app->ports[i].port_id == port_id)
			return &app->ports[i];
	return NULL;
}

/*
 * Answer ARP / ICMP / ICMPv6 the workers handed over, on the port's TX queue. A request is
 * checked first and takes a token only once it deserves a reply, so refusals never starve
 * the requests that do.
 */
static unsigned int
serve_exceptions(struct tally_app *app, struct tally_worker *w, struct tally_reply_bucket *bucket)
{
	struct rte_mbuf *pkts[EXC_BURST];
	unsigned int n, i;

	n = rte_ring_sc_dequeue_burst(w->exc, (void **)pkts, EXC_BURST, NULL);
	for (i = 0; i < n; i++) {
		struct rte_mbuf *m = pkts[i];
		const struct tally_port_info *p = find_port(app, m->port);
		uint8_t *data = rte_pktmbuf_mtod(m, uint8_t *);
		struct tally_frame fr;
		int type, len;

		type = tally_wire_parse(data, rte_pktmbuf_data_len(m), &w->filter, &fr);
		len = p != NULL && m->nb_segs == 1
			      ? tally_reply_build(data, rte_pktmbuf_data_len(m), type, &fr, p->mac,
						  &w->filter)
			      : -TALLY_REPLY_IGNORED;
		if (len < 0) {
			app->exc.refused[-len]++;
			rte_pktmbuf_free(m);
			continue;
		}
		if (!tally_reply_bucket_take(bucket, rte_get_tsc_cycles())) {
			app->exc.rate_limited++;
			rte_pktmbuf_free(m);
			continue;
		}
		m->data_len = (uint16_t)len;
		m->pkt_len = (uint32_t)len;
		m->ol_flags = 0;
		if (rte_eth_tx_burst(p->port_id, 0, &m, 1) != 1) {
			app->exc.tx_drops++;
			rte_pktmbuf_free(m);
		} else if (type == TALLY_FRAME_ARP) {
			app->exc.arp_replies++;
		} else {
			app->exc.icmp_replies++;
		}
	}
	return n;
}

static void *
exception_main(void *arg)
{
	struct tally_app *app = arg;
	struct tally_reply_bucket bucket;
	uint32_t i;

	tally_reply_bucket_init(&bucket, app->cfg.exception_rate, rte_get_tsc_hz(),
				rte_get_tsc_cycles());
	while (!app->exc.stop) {
		unsigned int n = 0;

		for (i = 0; i < app->nworkers; i++)
			n += serve_exceptions(app, &app->workers[i], &bucket);
		if (n == 0)
			usleep(EXC_IDLE_US);
	}
	return NULL;
}

int
tally_exception_start(struct tally_app *app)
{
	if (rte_ctrl_thread_create(&app->exc.tid, "tally-exc", NULL, exception_main, app) != 0)
		return -1;
	app->exc.running = 1;
	return 0;
}

void
tally_exception_stop(struct tally_app *app)
{
	if (!app->exc.running)
		return;
	app->exc.stop = 1;
	pthread_join(app->exc.tid, NULL);
	app->exc.running = 0;
}
