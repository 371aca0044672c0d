/* SPDX-License-Identifier: BSD-3-Clause */
/* The poll-mode loop: no locks, atomics, syscalls or allocation per packet. */
#include <stdint.h>

#include <rte_branch_prediction.h>
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_prefetch.h>
#include <rte_ring_elem.h>

#include "tally_worker.h"

#define WC(w, n) ((w)->stats.c[TALLY_WC_##n])

/* Take a clean table: one kept here, else one back from the control lcore. */
static struct tally_table *
worker_take_table(struct tally_worker *w, uint32_t *idx)
{
	void *p;

	if (w->nspare > 0) {
		*idx = w->spare[--w->nspare];
		return w->tables[*idx];
	}
	if (rte_ring_sc_dequeue(w->free, &p) != 0)
		return NULL;
	*idx = (uint32_t)(uintptr_t)p;
	return w->tables[*idx];
}

/* Hand a closed window's table to control, or keep it when it holds nothing. */
static void
worker_hand_off(struct tally_worker *w, struct tally_table *t, uint32_t idx, uint64_t start)
{
	struct tally_window_msg *m = &w->msg[idx];

	if (t->series == 0) {
		w->spare[w->nspare++] = idx;
		return;
	}
	m->start_ms = start;
	m->table = t;
	m->index = idx;
	/* The ring holds every table of the pool, so this cannot fail. */
	rte_ring_sp_enqueue(w->closed, m);
	WC(w, windows_closed)++;
}

/* Everything of windows ending by end_ms has been handed to control. */
static void
worker_publish_closed(struct tally_worker *w, uint64_t end_ms)
{
	rte_smp_wmb();
	w->pub.closed_end_ms = end_ms;
}

/* Aggregate one record into t, or count why it could not be. */
static inline void
worker_add(struct tally_worker *w, struct tally_table *t, uint64_t dev, uint64_t hash,
	   uint32_t metric, uint8_t kind, double v, uint64_t ts)
{
	struct tally_slot *s;

	if (unlikely(t == NULL)) {
		WC(w, window_stall)++;
		return;
	}
	s = tally_table_lookup(t, dev, hash, metric);
	if (unlikely(s == NULL)) {
		WC(w, table_full)++;
		return;
	}
	tally_slot_add(s, kind, v, ts);
	t->records++;
	WC(w, aggregated)++;
}

/* Device mode ---------------------------------------------------------------------------- */

/* Aggregate here a chunk that could not go to its owner. */
static void
spill_chunk(struct tally_worker *w, const union tally_fwd_slot *c)
{
	uint64_t hash = tally_hash_device(c->hdr.device_id);
	uint32_t i, n = tally_fwd_nrec(c);

	for (i = 0; i < n; i++) {
		struct tally_wire_rec r = tally_fwd_rec(c, i);

		worker_add(w, w->cur, c->hdr.device_id, hash, r.metric_id, r.kind, r.value,
			   c->hdr.ts_ns);
	}
	WC(w, ring_full) += n;
}

/*
 * Send the chunks staged for one owner in one ring operation. When the ring has no room for
 * all of them, as many whole chunks as fit go, and the rest is aggregated here: a full ring
 * never blocks a worker and loses nothing.
 */
static void
stage_flush(struct tally_worker *w, uint32_t dst)
{
	union tally_fwd_slot *st = w->stage[dst];
	uint32_t n = w->nstage[dst], i = 0;

	if (n == 0)
		return;
	if (rte_ring_sp_enqueue_bulk_elem(w->to[dst], st, sizeof(*st), n, NULL) == n) {
		WC(w, forwarded) += w->stage_recs[dst];
	} else {
		for (i = 0; i < n; i += tally_fwd_span(&st[i])) {
			uint32_t k = tally_fwd_span(&st[i]);

			if (rte_ring_sp_enqueue_bulk_elem(w->to[dst], &st[i], sizeof(*st), k,
							  NULL) == k)
				WC(w, forwarded) += tally_fwd_nrec(&st[i]);
			else
				spill_chunk(w, &st[i]);
		}
	}
	w->nstage[dst] = 0;
	w->stage_recs[dst] = 0;
}

/* Queue a datagram's records for their owner, as one chunk. */
static void
forward_datagram(struct tally_worker *w, uint32_t dst, const struct tally_wire_hdr *h,
		 uint64_t ts)
{
	uint32_t need = tally_fwd_slots(h->count);

	if (unlikely(need > TALLY_FWD_STAGE)) {
		/* Bigger than a stage (jumbo datagrams): aggregate it here, counted. */
		const struct tally_wire_rec *rec = (const struct tally_wire_rec *)(h + 1);
		uint64_t hash = tally_hash_device(h->device_id);
		uint16_t i;

		for (i = 0; i < h->count; i++)
			worker_add(w, w->cur, h->device_id, hash, rec[i].metric_id, rec[i].kind,
				   rec[i].value, ts);
		WC(w, ring_full) += h->count;
		return;
	}
	if (w->nstage[dst] + need > TALLY_FWD_STAGE)
		stage_flush(w, dst);
	w->nstage[dst] += (uint16_t)tally_fwd_put_chunk(&w->stage[dst][w->nstage[dst]],
							 h->device_id, ts,
							 (const struct tally_wire_rec *)(h + 1),
							 h->count);
	w->stage_recs[dst] += h->count;
	/* Chunks may not overtake a window marker that is still waiting for room. */
	if (unlikely(w->marker_pending[dst])) {
		w->nstage[dst] -= (uint16_t)need;
		w->stage_recs[dst] -= h->count;
		spill_chunk(w, &w->stage[dst][w->nstage[dst]]);
	}
}

static void
send_markers(struct tally_worker *w)
{
	uint32_t p;

	for (p = 0; p < w->nworkers; p++) {
		if (p == w->id || !w->marker_pending[p])
			continue;
		if (rte_ring_sp_enqueue_elem(w->to[p], &w->marker[p], sizeof(w->marker[p])) == 0)
			w->marker_pending[p] = 0;
	}
}

/* Tell every peer that this worker has closed `closed` and now sends for `next`. */
static void
queue_markers(struct tally_worker *w, uint64_t closed, uint64_t next)
{
	uint32_t p;

	for (p = 0; p < w->nworkers; p++) {
		if (p == w->id)
			continue;
		stage_flush(w, p);
		/* A newer marker replaces one still waiting: it closes the older window too. */
		w->marker[p].hdr = (struct tally_fwd_hdr){
			.device_id = closed, .type = TALLY_FWD_MARKER, .ts_ns = next};
		w->marker_pending[p] = 1;
	}
	send_markers(w);
}

/* The previous window is complete once every peer has closed it. */
static void
try_close_prev(struct tally_worker *w, int force)
{
	uint64_t end;
	uint32_t p;

	if (w->prev == NULL)
		return;
	end = w->prev_start_ms + w->window_ms;
	/* Stopping, the last window stays open until every peer has sent all it ever will. */
	for (p = 0; p < w->nworkers && !force; p++)
		if (p != w->id && w->peer_closed[p] < (w->finishing ? UINT64_MAX : end))
			return;
	if (w->finishing && w->cur != NULL && w->cur->series > 0) {
		/* Records that slipped past their window count in the last one, before it goes. */
		uint64_t full = w->prev->full;

		tally_table_merge(w->prev, w->cur);
		WC(w, table_full) += w->prev->full - full;
		tally_table_reset(w->cur);
	}
	worker_hand_off(w, w->prev, w->prev_idx, w->prev_start_ms);
	w->prev = NULL;
	worker_publish_closed(w, end);
}

static void worker_roll_to(struct tally_worker *w, uint64_t start);

/* The table for records a peer sends for window `win`. */
static inline struct tally_table *
table_for(struct tally_worker *w, uint64_t win)
{
	if (likely(win == w->cur_start_ms))
		return w->cur;
	if (w->prev != NULL && win == w->prev_start_ms)
		return w->prev;
	if (win > w->cur_start_ms && win != UINT64_MAX) {
		/* The peer crossed the boundary a moment earlier: follow it. */
		if (w->prev != NULL)
			try_close_prev(w, 1);
		worker_roll_to(w, win);
		return w->cur;
	}
	WC(w, window_slip)++;
	return w->cur;
}

/* Aggregate one chunk a peer forwarded. */
static inline void
receive_chunk(struct tally_worker *w, struct tally_table *t, const union tally_fwd_slot *c,
	      uint64_t hash)
{
	uint32_t i, n = tally_fwd_nrec(c);

	WC(w, received) += n;
	for (i = 0; i < n; i++) {
		struct tally_wire_rec r = tally_fwd_rec(c, i);

		worker_add(w, t, c->hdr.device_id, hash, r.metric_id, r.kind, r.value,
			   c->hdr.ts_ns);
	}
}

/* Take the chunks and markers one peer forwarded; returns the slots taken. */
static uint32_t
receive_from(struct tally_worker *w, uint32_t p)
{
	union tally_fwd_slot buf[TALLY_FWD_BURST + TALLY_FWD_STAGE];
	uint64_t hash[TALLY_FWD_BURST + TALLY_FWD_STAGE];
	uint32_t total = 0, n, i, k;

	/* Drain more than a poll can bring in, so a busy sender does not fill the ring. */
	for (k = 0; k < TALLY_FWD_POLL; k++) {
		struct tally_table *t = NULL;
		int have_t = 0;

		n = rte_ring_sc_dequeue_burst_elem(w->from[p], buf, sizeof(buf[0]), TALLY_FWD_BURST,
						   NULL);
		if (n == 0)
			break;
		/* Complete a chunk cut by the burst: it was enqueued whole, so it is there. */
		for (i = 0; i < n; i += tally_fwd_span(&buf[i]))
			;
		if (i > n && rte_ring_sc_dequeue_bulk_elem(w->from[p], &buf[n], sizeof(buf[0]),
							   i - n, NULL) == i - n)
			n = i;
		total += n;
		/* As on the receive path: hash and prefetch every chunk's home slot first. */
		t = w->cur;
		for (i = 0; i < n; i += tally_fwd_span(&buf[i])) {
			if (buf[i].hdr.type == TALLY_FWD_MARKER)
				continue;
			hash[i] = tally_hash_device(buf[i].hdr.device_id);
			if (likely(t != NULL))
				tally_table_prefetch(t, hash[i], tally_fwd_rec(&buf[i], 0).metric_id);
		}
		for (i = 0; i < n;) {
			const union tally_fwd_slot *c = &buf[i];

			if (unlikely(c->hdr.type == TALLY_FWD_MARKER)) {
				/* The peer's last marker (next window "never") closes everything. */
				w->peer_closed[p] = c->hdr.ts_ns == UINT64_MAX
							    ? UINT64_MAX
							    : c->hdr.device_id + w->window_ms;
				w->peer_window[p] = c->hdr.ts_ns;
				have_t = 0;
				i++;
				continue;
			}
			if (!have_t) {
				t = table_for(w, w->peer_window[p]);
				have_t = 1;
			}
			receive_chunk(w, t, c, hash[i]);
			i += tally_fwd_span(c);
		}
		if (n < TALLY_FWD_BURST)
			break;
	}
	return total;
}

/* Take records forwarded by all peers, retry markers, close the previous window if done. */
static uint32_t
receive_forwarded(struct tally_worker *w)
{
	uint32_t p, total = 0;

	for (p = 0; p < w->nworkers; p++)
		if (p != w->id)
			total += receive_from(w, p);
	if (total > 0 && w->cur != NULL)
		WC(w, series) = w->cur->series;
	send_markers(w);
	try_close_prev(w, 0);
	return total;
}

/* Windows ------------------------------------------------------------------------------- */

/* Close the current window and start the one beginning at start (ms). */
static void
worker_roll_to(struct tally_worker *w, uint64_t start)
{
	uint64_t closed = w->cur_start_ms;
	struct tally_table *t = w->cur;
	uint32_t idx = w->cur_idx;

	if (w->mode == TALLY_PARTITION_DEVICE && w->nworkers > 1) {
		queue_markers(w, closed, start);
		if (w->prev != NULL) /* peers never closed it: their late records go to cur */
			try_close_prev(w, 1);
		if (t != NULL) {
			w->prev = t;
			w->prev_idx = idx;
			w->prev_start_ms = closed;
		}
	} else {
		if (t != NULL)
			worker_hand_off(w, t, idx, closed);
		worker_publish_closed(w, start);
	}
	w->cur = worker_take_table(w, &w->cur_idx);
	w->hot_in_cur = 0;
	w->cur_start_ms = start;
	w->next_tsc = start == UINT64_MAX ? UINT64_MAX :
		      tally_clock_tsc(w->clock, (start + w->window_ms) * 1000000u);
	WC(w, hot_keys) = w->hot.nhot;
	tally_hot_tick(&w->hot);
}

static void
worker_roll(struct tally_worker *w, uint64_t tsc)
{
	uint64_t now_ms = tally_clock_ns(w->clock, tsc) / 1000000u;

	worker_roll_to(w, tally_window_start(now_ms, w->window_ms));
}

/*
 * Hand the current table over in the middle of its window when it holds hot devices' partials,
 * and go on in a clean one: the final stage merges any number of partials of a window, so the
 * hot aggregates reach it sooner and totals stay exact. Skipped while no clean table is free.
 */
static void
worker_hot_flush(struct tally_worker *w, uint64_t tsc)
{
	struct tally_table *t = w->cur;
	uint32_t idx = w->cur_idx;

	w->next_hot_flush = tsc + w->hot_flush_tsc;
	/* Keep a clean table for the next window boundary: flush only with two at hand. */
	if (t == NULL || w->hot_in_cur == 0 || w->nspare + rte_ring_count(w->free) < 2)
		return;
	worker_hand_off(w, t, idx, w->cur_start_ms);
	w->cur = worker_take_table(w, &w->cur_idx);
	w->hot_in_cur = 0;
}

/* Receive path ---------------------------------------------------------------------------- */

static inline void
worker_exception(struct tally_worker *w, struct rte_mbuf *m)
{
	WC(w, exceptions)++;
	if (rte_ring_sp_enqueue(w->exc, m) != 0) {
		WC(w, exception_drops)++;
		rte_pktmbuf_free(m);
	}
}

/* Hand a malformed frame to the dead-letter writer, within the capture rate. */
static inline int
worker_dead_letter(struct tally_worker *w, struct rte_mbuf *m, uint8_t reason)
{
	if (!tally_dlq_bucket_take(&w->dlq_bucket, rte_rdtsc())) {
		WC(w, dlq_dropped)++;
		return -1;
	}
	m->hash.usr = reason;
	if (rte_ring_sp_enqueue(w->dlq, m) != 0) {
		WC(w, dlq_ring_full)++;
		return -1;
	}
	WC(w, dlq_queued)++;
	return 0;
}

/*
 * Aggregate the valid datagrams of a burst: decide where each goes and prefetch the home
 * slots of the local ones first, then update.
 */
static inline void
worker_aggregate(struct tally_worker *w, const struct tally_wire_hdr **dg, uint16_t nd,
		 uint64_t arrival_ns)
{
	struct tally_table *t = w->cur;
	uint64_t hash[TALLY_MAX_BURST];
	uint8_t local[TALLY_MAX_BURST];
	uint64_t records = 0;
	uint16_t i, r;

	for (i = 0; i < nd; i++) {
		const struct tally_wire_rec *rec = (const struct tally_wire_rec *)(dg[i] + 1);
		uint32_t owner;
		int hot;

		records += dg[i]->count;
		hash[i] = tally_hash_device(dg[i]->device_id);
		local[i] = 1;
		if (w->mode == TALLY_PARTITION_DEVICE) {
			hot = tally_hot_observe(&w->hot, dg[i]->device_id, hash[i], dg[i]->count);
			owner = tally_owner(hash[i], w->nworkers);
			if (owner != w->id) {
				local[i] = hot;
				if (!hot) {
					forward_datagram(w, owner, dg[i],
							 dg[i]->time_ns ? dg[i]->time_ns
									: arrival_ns);
					continue;
				}
				WC(w, hot_records) += dg[i]->count;
				w->hot_in_cur += dg[i]->count;
			}
		}
		if (likely(t != NULL))
			tally_table_prefetch(t, hash[i], rec[0].metric_id);
	}
	WC(w, records) += records;
	for (i = 0; i < nd; i++) {
		const struct tally_wire_hdr *h = dg[i];
		const struct tally_wire_rec *rec = (const struct tally_wire_rec *)(h + 1);
		uint64_t ts = h->time_ns != 0 ? h->time_ns : arrival_ns;

		if (!local[i])
			continue;
		if (unlikely(t == NULL)) {
			WC(w, window_stall) += h->count;
			continue;
		}
		for (r = 0; r < h->count; r++)
			tally_table_add(t, h->device_id, hash[i], rec[r].metric_id, rec[r].kind,
					rec[r].value, ts);
		WC(w, aggregated) += h->count;
	}
	if (likely(t != NULL)) {
		WC(w, aggregated) -= t->full;
		WC(w, table_full) += t->full;
		t->full = 0;
		WC(w, series) = t->series;
	}
	if (w->mode == TALLY_PARTITION_DEVICE) {
		for (i = 0; i < w->nworkers; i++)
			stage_flush(w, i);
		WC(w, hot_keys) = w->hot.nhot;
	}
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
			WC(w, malformed)++;
			w->stats.malformed[fr.reason]++;
			if (w->dlq != NULL && worker_dead_letter(w, m, fr.reason) == 0)
				break; /* the writer frees it */
			done[nf++] = m;
			break;
		case TALLY_FRAME_ARP:
		case TALLY_FRAME_ICMP:
		case TALLY_FRAME_ICMP6:
			worker_exception(w, m);
			break;
		default:
			WC(w, other)++;
			done[nf++] = m;
			break;
		}
	}
	WC(w, rx_packets) += n;
	WC(w, datagrams) += nd;
	if (nd > 0)
		worker_aggregate(w, dg, nd, tally_clock_ns(w->clock, rte_rdtsc()));
	rte_pktmbuf_free_bulk(done, nf);
}

/* One pass over the worker's queues (and peers' rings); returns the packets received. */
static uint32_t
worker_poll(struct tally_worker *w)
{
	struct rte_mbuf *pkts[TALLY_MAX_BURST];
	uint32_t total = 0;
	uint16_t q, n;

	for (q = 0; q < w->nrxq; q++) {
		n = rte_eth_rx_burst(w->rxq[q].port, w->rxq[q].queue, pkts, w->burst);
		if (n == 0) {
			WC(w, idle_polls)++;
			continue;
		}
		WC(w, busy_polls)++;
		tally_worker_burst(w, pkts, n);
		total += n;
	}
	if (w->mode == TALLY_PARTITION_DEVICE && w->nworkers > 1)
		receive_forwarded(w);
	return total;
}

/* Device mode at stop: close the last window and wait until every peer has closed theirs. */
static void
worker_finish_device(struct tally_worker *w)
{
	uint64_t last = w->cur_start_ms;
	uint32_t p;
	int waiting;

	w->finishing = 1;
	worker_roll_to(w, UINT64_MAX);
	do {
		receive_forwarded(w);
		waiting = w->prev != NULL;
		for (p = 0; p < w->nworkers; p++)
			waiting |= p != w->id &&
				   (w->marker_pending[p] || w->peer_closed[p] != UINT64_MAX);
	} while (waiting);
	/* Without a last table (none was free), what slipped in is handed over before the end. */
	if (w->cur != NULL && w->cur->series > 0)
		worker_hand_off(w, w->cur, w->cur_idx, last);
	w->cur = NULL;
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
			w->cur = worker_take_table(w, &w->cur_idx);
		else if (unlikely(w->hot_flush_tsc != 0 && tsc >= w->next_hot_flush))
			worker_hot_flush(w, tsc);
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
		w->cur = worker_take_table(w, &w->cur_idx);
	if (w->mode == TALLY_PARTITION_DEVICE && w->nworkers > 1) {
		worker_finish_device(w);
	} else {
		if (w->cur != NULL)
			worker_hand_off(w, w->cur, w->cur_idx, w->cur_start_ms);
		w->cur = NULL;
	}
	worker_publish_closed(w, UINT64_MAX);
	w->pub.done = 1;
	return 0;
}
