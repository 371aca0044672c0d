/* SPDX-License-Identifier: BSD-3-Clause */
/* The poll-mode loop: no locks, atomics, syscalls or allocation per packet. */
#include <stdint.h>

#include <rte_branch_prediction.h>
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_prefetch.h>

#include "tally_worker.h"

/* Take a clean table back from the control lcore, if one is there. */
static void
worker_take_table(struct tally_worker *w)
{
	void *idx;

	if (rte_ring_sc_dequeue(w->free, &idx) != 0)
		return;
	w->cur_idx = (uint32_t)(uintptr_t)idx;
	w->cur = w->tables[w->cur_idx];
}

/* Close the current window (if it holds anything) and start the one holding tsc. */
static void
worker_roll(struct tally_worker *w, uint64_t tsc)
{
	uint64_t now_ms = tally_clock_ns(w->clock, tsc) / 1000000u;
	uint64_t start = tally_window_start(now_ms, w->window_ms);

	if (w->cur != NULL && w->cur->series > 0) {
		struct tally_window_msg *m = &w->msg[w->cur_idx];

		m->start_ms = w->cur_start_ms;
		m->table = w->cur;
		m->worker = w->id;
		m->index = w->cur_idx;
		/* The ring holds every table of the pool, so this cannot fail. */
		rte_ring_sp_enqueue(w->closed, m);
		w->cur = NULL;
		w->stats.c[TALLY_WC_windows_closed]++;
	}
	if (w->cur == NULL)
		worker_take_table(w);
	rte_smp_wmb();
	w->pub.closed_end_ms = start;
	w->cur_start_ms = start;
	w->next_tsc = tally_clock_tsc(w->clock, (start + w->window_ms) * 1000000u);
}

static inline void
worker_exception(struct tally_worker *w, struct rte_mbuf *m)
{
	w->stats.c[TALLY_WC_exceptions]++;
	if (rte_ring_sp_enqueue(w->exc, m) != 0) {
		w->stats.c[TALLY_WC_exception_drops]++;
		rte_pktmbuf_free(m);
	}
}

/* Aggregate the valid datagrams of a burst: hash and prefetch first, then update. */
static inline void
worker_aggregate(struct tally_worker *w, const struct tally_wire_hdr **dg, uint16_t nd,
		 uint64_t arrival_ns)
{
	struct tally_table *t = w->cur;
	uint64_t hash[TALLY_MAX_BURST];
	uint64_t records = 0;
	uint16_t i, r;

	for (i = 0; i < nd; i++)
		records += dg[i]->count;
	w->stats.c[TALLY_WC_records] += records;
	if (unlikely(t == NULL)) {
		w->stats.c[TALLY_WC_window_stall] += records;
		return;
	}
	for (i = 0; i < nd; i++) {
		const struct tally_wire_rec *rec = (const struct tally_wire_rec *)(dg[i] + 1);

		hash[i] = tally_hash_device(dg[i]->device_id);
		tally_table_prefetch(t, hash[i], rec[0].metric_id);
	}
	for (i = 0; i < nd; i++) {
		const struct tally_wire_hdr *h = dg[i];
		const struct tally_wire_rec *rec = (const struct tally_wire_rec *)(h + 1);
		uint64_t ts = h->time_ns != 0 ? h->time_ns : arrival_ns;

		for (r = 0; r < h->count; r++)
			tally_table_add(t, h->device_id, hash[i], rec[r].metric_id, rec[r].kind,
					rec[r].value, ts);
	}
	w->stats.c[TALLY_WC_table_full] += t->full;
	t->full = 0;
}

void
tally_worker_burst(struct tally_worker *w, struct rte_mbuf **pkts, uint16_t n)
{
	const struct tally_wire_hdr *dg[TALLY_MAX_BURST];
	struct rte_mbuf *done[TALLY_MAX_BURST];
	uint16_t nd = 0, nf = 0, i;

	for (i = 0; i < n; i++) {
		struct rte_mbuf *m = pkts[i];
		struct tally_frame fr;
		int type;

		type = tally_wire_parse(rte_pktmbuf_mtod(m, const uint8_t *),
					rte_pktmbuf_data_len(m), &w->filter, &fr);
		if (likely(type == TALLY_FRAME_TELEMETRY)) {
			dg[nd++] = (const struct tally_wire_hdr *)fr.payload;
			done[nf++] = m;
			continue;
		}
		switch (type) {
		case TALLY_FRAME_MALFORMED:
			w->stats.c[TALLY_WC_malformed]++;
			w->stats.malformed[fr.reason]++;
			done[nf++] = m;
			break;
		case TALLY_FRAME_ARP:
		case TALLY_FRAME_ICMP:
		case TALLY_FRAME_ICMP6:
			worker_exception(w, m);
			break;
		default:
			w->stats.c[TALLY_WC_other]++;
			done[nf++] = m;
			break;
		}
	}
	w->stats.c[TALLY_WC_rx_packets] += n;
	w->stats.c[TALLY_WC_datagrams] += nd;
	if (nd > 0)
		worker_aggregate(w, dg, nd, tally_clock_ns(w->clock, rte_rdtsc()));
	rte_pktmbuf_free_bulk(done, nf);
}

/* One pass over the worker's queues; returns the packets received. */
static uint32_t
worker_poll(struct tally_worker *w)
{
	struct rte_mbuf *pkts[TALLY_MAX_BURST];
	uint32_t total = 0;
	uint16_t q, n;

	for (q = 0; q < w->nrxq; q++) {
		n = rte_eth_rx_burst(w->rxq[q].port, w->rxq[q].queue, pkts, w->burst);
		if (n == 0) {
			w->stats.c[TALLY_WC_idle_polls]++;
			continue;
		}
		w->stats.c[TALLY_WC_busy_polls]++;
		tally_worker_burst(w, pkts, n);
		total += n;
	}
	return total;
}

int
tally_worker_main(void *arg)
{
	struct tally_worker *w = arg;
	uint32_t drained = 0;

	w->next_tsc = 0;
	while (!*w->quit) {
		uint64_t tsc = rte_rdtsc();

		if (unlikely(tsc >= w->next_tsc))
			worker_roll(w, tsc);
		else if (unlikely(w->cur == NULL))
			worker_take_table(w);
		worker_poll(w);
	}
	/* Stop: read what the queues still hold (bounded: a replay may never run dry). */
	while (drained < w->drain_max) {
		uint32_t n = worker_poll(w);

		if (n == 0)
			break;
		drained += n;
	}
	if (w->cur == NULL)
		worker_take_table(w);
	worker_roll(w, rte_rdtsc());
	rte_smp_wmb();
	w->pub.closed_end_ms = UINT64_MAX;
	w->pub.done = 1;
	return 0;
}
