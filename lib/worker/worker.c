/* SPDX-License-Identifier: BSD-3-Clause */
/* The poll-mode loop: no locks, atomics, syscalls or allocation per packet. */
#include <stdint.h>

#include <rte_branch_prediction.h>
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_memcpy.h>
#include <rte_prefetch.h>
#include <rte_ring_elem.h>

#include "tally_statsd.h"
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

/* A record's weight: reserved[1..2] hold weight - 1 for a statsd histogram (TALLY_KIND_EXT). */
static inline uint32_t
rec_weight(uint8_t lo, uint8_t hi)
{
	return 1u + (lo | (uint32_t)hi << 8);
}

/*
 * Add one record, v1's or a decoder's: a kind with TALLY_KIND_EXT (a statsd gauge delta or
 * weighted histogram value) goes to tally_table_put_ext(). 0, or -1 as tally_table_add().
 */
static inline int
table_add_rec(struct tally_table *t, uint64_t dev, uint64_t hash, uint32_t metric, uint8_t kind,
	      double v, uint32_t weight, uint64_t ts)
{
	struct tally_slot *s;

	if (likely(!(kind & TALLY_KIND_EXT)))
		return tally_table_add(t, dev, hash, metric, kind, v, ts);
	s = tally_table_lookup(t, dev, hash, metric);
	if (s == NULL) {
		t->full++;
		return -1;
	}
	return tally_table_put_ext(t, s, kind & (uint8_t)~TALLY_KIND_EXT, v, ts, weight);
}

/* Aggregate one record into t, or count why it could not be. */
static inline void
worker_add(struct tally_worker *w, struct tally_table *t, uint64_t dev, uint64_t hash,
	   const struct tally_wire_rec *r, uint64_t ts)
{
	if (unlikely(t == NULL)) {
		WC(w, window_stall)++;
		return;
	}
	/* 0, or -1: no room (full), or no side memory (the table counts it, side_full) */
	if (table_add_rec(t, dev, hash, r->metric_id, r->kind, r->value,
			  rec_weight(r->reserved[1], r->reserved[2]), ts) == 0) {
		WC(w, aggregated)++;
	} else if (t->full != 0) {
		t->full = 0;
		WC(w, table_full)++;
	}
}

/* Device mode ---------------------------------------------------------------------------- */

/* Aggregate here records that could not go to their owner, counted. */
static void
spill_records(struct tally_worker *w, uint64_t dev, const struct tally_wire_rec *rec, uint32_t n,
	      uint64_t hash, uint64_t ts)
{
	uint32_t i;

	for (i = 0; i < n; i++)
		worker_add(w, w->cur, dev, hash, &rec[i], ts);
	WC(w, ring_full) += n;
}

/* Publish the chunks written into dst's ring and give back the slots reserved but unused. */
static void
fwd_commit(struct tally_worker *w, uint32_t dst)
{
	struct tally_fwd_area *z = &w->out[dst];

	if (z->n == 0)
		return;
	rte_ring_enqueue_zc_elem_finish(w->to[dst], z->used);
	WC(w, forwarded) += z->recs;
	z->n = z->used = z->recs = 0;
}

/* Reserve up to TALLY_FWD_RESERVE slots of dst's ring to write in place; returns how many. */
static uint32_t
fwd_reserve(struct tally_worker *w, uint32_t dst)
{
	struct tally_fwd_area *z = &w->out[dst];
	struct rte_ring_zc_data zcd;
	uint32_t n;

	n = rte_ring_enqueue_zc_burst_elem_start(w->to[dst], sizeof(union tally_fwd_slot),
						 TALLY_FWD_RESERVE, &zcd, NULL);
	if (n > 0)
		*z = (struct tally_fwd_area){.a = zcd.ptr1, .b = zcd.ptr2, .na = zcd.n1, .n = n};
	return n;
}

/*
 * Write a datagram's records into its owner's ring, as one chunk, or as several in order when
 * it has more records than a chunk holds (a jumbo datagram). Chunks for an owner go into one
 * reservation, published (fwd_commit) when it is full, every TALLY_FWD_PUBLISH busy polls,
 * when the worker is idle, and before a window marker. When the ring has no room, or a marker
 * for that owner still waits for room (chunks may not overtake it), the records left are
 * aggregated here: a full ring never blocks a worker and loses nothing.
 */
static void
forward_datagram(struct tally_worker *w, uint32_t dst, const struct tally_wire_hdr *h,
		 uint64_t hash, uint64_t ts)
{
	const struct tally_wire_rec *rec = (const struct tally_wire_rec *)(h + 1);
	struct tally_fwd_area *z = &w->out[dst];
	uint32_t left = h->count;

	while (left > 0) {
		uint32_t n = RTE_MIN(left, (uint32_t)TALLY_FWD_CHUNK_RECS);
		uint32_t need = tally_fwd_slots(n);

		if (unlikely(w->marker_pending[dst]))
			break;
		if (unlikely(z->used + need > z->n)) {
			fwd_commit(w, dst);
			if (fwd_reserve(w, dst) < need) {
				fwd_commit(w, dst);
				break;
			}
		}
		tally_fwd_area_put(z, h->device_id, ts, rec, n);
		rec += n;
		left -= n;
	}
	if (unlikely(left > 0))
		spill_records(w, h->device_id, rec, left, hash, ts);
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
		fwd_commit(w, p);
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

/* Aggregate one chunk a peer forwarded: *recs counts what came, *agg what went into t. */
static inline void
receive_chunk(struct tally_worker *w, struct tally_table *t, const union tally_fwd_slot *c,
	      uint64_t hash, uint32_t *recs, uint32_t *agg)
{
	uint32_t i, n, lost = 0;

	if (likely(c->hdr.type == TALLY_FWD_SINGLE)) {
		/* The common case of small datagrams: the record is in the header slot. */
		*recs += 1;
		if (unlikely(t == NULL)) {
			WC(w, window_stall)++;
			return;
		}
		if (likely(table_add_rec(t, c->hdr.device_id, hash, c->hdr.nrec, c->hdr.kind,
					 c->hdr.value, rec_weight(c->hdr.pad[0], c->hdr.pad[1]),
					 c->hdr.ts_ns) == 0)) {
			*agg += 1;
		} else if (t->full != 0) {
			t->full = 0;
			WC(w, table_full)++;
		} /* else no side memory: the table counted it (side_full) */
		return;
	}
	n = tally_fwd_nrec(c);
	*recs += n;
	if (unlikely(t == NULL)) {
		WC(w, window_stall) += n;
		return;
	}
	for (i = 0; i < n; i++) {
		struct tally_wire_rec r = tally_fwd_rec(c, i);

		lost += table_add_rec(t, c->hdr.device_id, hash, r.metric_id, r.kind, r.value,
				      rec_weight(r.reserved[1], r.reserved[2]), c->hdr.ts_ns) != 0;
	}
	*agg += n - lost;
	WC(w, table_full) += t->full;
	t->full = 0;
}

/* Take the chunks and markers one peer forwarded, reading them in place; returns slots. */
static uint32_t
receive_from(struct tally_worker *w, uint32_t p)
{
	const union tally_fwd_slot *c[TALLY_FWD_BURST];
	uint64_t hash[TALLY_FWD_BURST];
	union tally_fwd_slot tmp[TALLY_FWD_CHUNK_MAX];
	uint32_t total = 0, recs = 0, agg = 0, n, i, j, nc, k;

	/* Drain more than a poll can bring in, so a busy sender does not fill the ring. */
	for (k = 0; k < TALLY_FWD_POLL; k++) {
		struct rte_ring_zc_data zcd;
		struct tally_fwd_area z;
		struct tally_table *t;
		int have_t = 0;

		n = rte_ring_dequeue_zc_burst_elem_start(w->from[p], sizeof(union tally_fwd_slot),
							 TALLY_FWD_BURST, &zcd, NULL);
		if (n == 0)
			break;
		z = (struct tally_fwd_area){.a = zcd.ptr1, .b = zcd.ptr2, .na = zcd.n1, .n = n};
		/*
		 * Chunks were published whole, but the burst may cut the last one: it stays for
		 * the next round. As on the receive path, hash and prefetch every chunk's home
		 * slot before any update. At most one chunk runs over the ring's wrap (tmp).
		 */
		t = w->cur;
		for (i = 0, nc = 0; i < n; nc++) {
			uint32_t span = tally_fwd_span(tally_fwd_at(&z, i));

			if (i + span > n)
				break;
			c[nc] = tally_fwd_area_chunk(&z, i, tmp);
			i += span;
			if (c[nc]->hdr.type == TALLY_FWD_MARKER)
				continue;
			hash[nc] = tally_hash_device(c[nc]->hdr.device_id);
			if (likely(t != NULL))
				tally_table_prefetch(t, hash[nc],
						     tally_fwd_rec(c[nc], 0).metric_id);
		}
		for (j = 0; j < nc; j++) {
			if (unlikely(c[j]->hdr.type == TALLY_FWD_MARKER)) {
				/* The peer's last marker (next window "never") closes all. */
				w->peer_closed[p] = c[j]->hdr.ts_ns == UINT64_MAX
							    ? UINT64_MAX
							    : c[j]->hdr.device_id + w->window_ms;
				w->peer_window[p] = c[j]->hdr.ts_ns;
				have_t = 0;
				continue;
			}
			if (!have_t) {
				t = table_for(w, w->peer_window[p]);
				have_t = 1;
			}
			receive_chunk(w, t, c[j], hash[j], &recs, &agg);
		}
		rte_ring_dequeue_zc_elem_finish(w->from[p], i);
		total += i;
		if (n < TALLY_FWD_BURST)
			break;
	}
	WC(w, received) += recs;
	WC(w, aggregated) += agg;
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
	w->next_tsc = start == UINT64_MAX
			      ? UINT64_MAX
			      : tally_clock_tsc(w->clock, (start + w->window_ms) * 1000000u);
	WC(w, hot_keys) = w->hot.nhot;
	tally_hot_tick(&w->hot);
}

/* New settings from SIGHUP (at a window boundary, off the per-packet path). */
static void
worker_reload(struct tally_worker *w, uint32_t gen, uint64_t tsc)
{
	if (w->dlq != NULL)
		tally_dlq_bucket_init(&w->dlq_bucket, w->reload.dlq_burst, w->reload.dlq_rate,
				      w->clock->hz, tsc);
	tally_hot_set_share(&w->hot, w->mode == TALLY_PARTITION_DEVICE ? w->reload.hot_share : 0);
	__atomic_store_n(&w->reload_seen, gen, __ATOMIC_RELEASE);
}

static void
worker_roll(struct tally_worker *w, uint64_t tsc)
{
	uint64_t now_ms = tally_clock_ns(w->clock, tsc) / 1000000u;
	uint32_t gen = __atomic_load_n(&w->reload_gen, __ATOMIC_ACQUIRE);

	if (unlikely(gen != w->reload_seen))
		worker_reload(w, gen, tsc);

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
worker_dead_letter(struct tally_worker *w, struct rte_mbuf *m, uint8_t reason, uint32_t usr)
{
	if (!tally_dlq_bucket_take(&w->dlq_bucket, rte_rdtsc())) {
		WC(w, dlq_dropped)++;
		return -1;
	}
	m->hash.usr = usr != 0 ? usr : reason;
	if (rte_ring_sp_enqueue(w->dlq, m) != 0) {
		WC(w, dlq_ring_full)++;
		return -1;
	}
	WC(w, dlq_queued)++;
	return 0;
}

/*
 * Device mode: send each datagram of another worker's device to its owner, unless that
 * device is hot here (then it is pre-aggregated here, a partial). Leaves in loc[] the
 * datagrams to aggregate here and returns how many. Which worker owns a device is a coin
 * toss, so the split is made without branching on it: the CPU keeps running ahead across
 * the burst instead of stopping at every mispredicted owner test. Only other workers'
 * devices are measured for heat (a device that lives here is never forwarded anyway); the
 * share is of all the records this worker receives.
 */
static inline uint16_t
worker_steer(struct tally_worker *w, const struct tally_wire_hdr **dg, uint16_t nd,
	     const uint64_t *hash, uint64_t records, uint16_t *loc, uint64_t arrival_ns)
{
	uint32_t owner[TALLY_MAX_BURST];
	uint16_t rem[TALLY_MAX_BURST];
	uint64_t hot_records = 0, thr = tally_hot_begin(&w->hot, records);
	uint16_t i, nl = 0, nr = 0, nf = 0;

	for (i = 0; i < nd; i++) {
		uint32_t remote;

		owner[i] = tally_owner(hash[i], w->nworkers);
		remote = owner[i] != w->id;
		loc[nl] = i;
		nl += remote ^ 1;
		rem[nr] = i;
		nr += remote;
	}
	/* Hot remote datagrams join the local ones; the rest are forwarded (rem[0..nf)). */
	for (i = 0; i < nr; i++) {
		const struct tally_wire_hdr *h = dg[rem[i]];
		uint32_t hot = (uint32_t)tally_hot_account(&w->hot, thr, h->device_id, hash[rem[i]],
							   h->count);

		loc[nl] = rem[i];
		nl += hot;
		rem[nf] = rem[i];
		nf += hot ^ 1;
		hot_records += hot * h->count;
	}
	WC(w, hot_records) += hot_records;
	w->hot_in_cur += hot_records;
	for (i = 0; i < nf; i++) {
		const struct tally_wire_hdr *h = dg[rem[i]];

		forward_datagram(w, owner[rem[i]], h, hash[rem[i]],
				 h->time_ns != 0 ? h->time_ns : arrival_ns);
	}
	WC(w, hot_keys) = w->hot.nhot;
	return nl;
}

/*
 * Records ahead whose side state is prefetched: the slot is found and the header prefetched
 * SIDE_AHEAD2 records ahead, the count a value goes to SIDE_AHEAD records ahead (the header
 * is in by then). The slots found, and what the second step worked out for the record (its
 * bucket key, sparse position or register: tally_table_side_hint()), wait in a ring of
 * SIDE_RING for their update.
 */
#define SIDE_AHEAD 4
#define SIDE_AHEAD2 8
#define SIDE_AHEAD3 16 /* the slot itself, before it is searched */
#define SIDE_RING 16

struct side_ahead {
	struct tally_slot *s;
	uint32_t hint;
};

/* Where the record `ahead` records after record r of datagram j is, if the burst has it. */
static inline const struct tally_wire_rec *
rec_ahead(const struct tally_wire_hdr **dg, const uint16_t *loc, uint16_t nl, uint16_t j,
	  uint32_t r, uint32_t ahead, uint16_t *dj)
{
	uint32_t a = r + ahead;

	while (j < nl && a >= dg[loc[j]]->count) {
		a -= dg[loc[j]]->count;
		j++;
	}
	if (j >= nl)
		return NULL;
	*dj = j;
	return (const struct tally_wire_rec *)(dg[loc[j]] + 1) + a;
}

/* Step one for the record n + SIDE_AHEAD2: find it, work out its hint, prefetch. */
static inline void
side_first(const struct tally_table *t, const struct tally_wire_hdr **dg, const uint16_t *loc,
	   const uint64_t *hash, uint16_t nl, uint16_t j, uint32_t r, struct side_ahead *ring,
	   uint32_t n)
{
	uint16_t dj;
	const struct tally_wire_rec *x = rec_ahead(dg, loc, nl, j, r, SIDE_AHEAD2, &dj);
	struct side_ahead *a = &ring[(n + SIDE_AHEAD2) % SIDE_RING];

	if (x != NULL)
		a->s = tally_table_side_prefetch(t, dg[loc[dj]]->device_id, hash[loc[dj]],
						 x->metric_id, x->kind, x->value, &a->hint);
}

/* Step zero for the record n + SIDE_AHEAD3: prefetch its slot. */
static inline void
side_zero(const struct tally_table *t, const struct tally_wire_hdr **dg, const uint16_t *loc,
	  const uint64_t *hash, uint16_t nl, uint16_t j, uint32_t r)
{
	uint16_t dj;
	const struct tally_wire_rec *x = rec_ahead(dg, loc, nl, j, r, SIDE_AHEAD3, &dj);

	if (x != NULL)
		tally_table_prefetch(t, hash[loc[dj]], x->metric_id);
}

/* Step two for the record n + SIDE_AHEAD: a sparse sketch's bucket, prefetched. */
static inline void
side_second(const struct tally_table *t, struct side_ahead *ring, uint32_t n)
{
	struct side_ahead *a = &ring[(n + SIDE_AHEAD) % SIDE_RING];

	if (a->hint & TALLY_HINT_HISTOGRAM)
		a->hint = tally_table_side_hint2(t, a->s, a->hint);
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
	uint16_t loc[TALLY_MAX_BURST];
	struct side_ahead ring[SIDE_RING];
	uint64_t records = 0, lost = 0;
	uint32_t n = 0;
	uint16_t i, j, r, nl;
	int side;

	for (i = 0; i < nd; i++) {
		records += dg[i]->count;
		hash[i] = tally_hash_device(dg[i]->device_id);
	}
	WC(w, records) += records;
	if (w->mode == TALLY_PARTITION_DEVICE) {
		nl = worker_steer(w, dg, nd, hash, records, loc, arrival_ns);
	} else {
		for (i = 0; i < nd; i++)
			loc[i] = i;
		nl = nd;
	}
	if (unlikely(t == NULL)) {
		for (j = 0; j < nl; j++)
			WC(w, window_stall) += dg[loc[j]]->count;
		return;
	}
	for (j = 0; j < nl; j++) {
		const struct tally_wire_rec *rec = (const struct tally_wire_rec *)(dg[loc[j]] + 1);

		tally_table_prefetch(t, hash[loc[j]], rec[0].metric_id);
	}
	side = t->side_used != 0;
	if (side && nl > 0) {
		/* the first records of the burst go through both steps before their update */
		for (r = 0; r < SIDE_AHEAD2; r++) {
			uint16_t dj;
			const struct tally_wire_rec *x = rec_ahead(dg, loc, nl, 0, 0, r, &dj);
			struct side_ahead *a = &ring[r % SIDE_RING];

			a->s = NULL;
			a->hint = 0;
			if (x != NULL)
				a->s = tally_table_side_prefetch(t, dg[loc[dj]]->device_id,
								 hash[loc[dj]], x->metric_id,
								 x->kind, x->value, &a->hint);
		}
		for (r = 0; r < SIDE_AHEAD; r++)
			if (ring[r].hint & TALLY_HINT_HISTOGRAM)
				ring[r].hint = tally_table_side_hint2(t, ring[r].s, ring[r].hint);
	}
	for (j = 0; j < nl; j++) {
		const struct tally_wire_hdr *h = dg[loc[j]];
		const struct tally_wire_rec *rec = (const struct tally_wire_rec *)(h + 1);
		uint64_t ts = h->time_ns != 0 ? h->time_ns : arrival_ns;

		if (!side) {
			for (r = 0; r < h->count; r++)
				lost += table_add_rec(t, h->device_id, hash[loc[j]],
						      rec[r].metric_id, rec[r].kind, rec[r].value,
						      rec_weight(rec[r].reserved[1],
								 rec[r].reserved[2]),
						      ts) != 0;
			WC(w, aggregated) += h->count;
			continue;
		}
		for (r = 0; r < h->count; r++, n++) {
			struct tally_slot *s = ring[n % SIDE_RING].s;
			uint32_t hint = ring[n % SIDE_RING].hint;

			side_zero(t, dg, loc, hash, nl, j, r);
			side_first(t, dg, loc, hash, nl, j, r, ring, n);
			side_second(t, ring, n);
			/* a series found ahead is used as it is; a new one is inserted now */
			if (s == NULL || s->device_id != h->device_id ||
			    s->metric_id != rec[r].metric_id || !s->used)
				s = tally_table_lookup(t, h->device_id, hash[loc[j]],
						       rec[r].metric_id);
			if (unlikely(s == NULL)) {
				t->full++;
				lost++;
				continue;
			}
			if (unlikely(rec[r].kind & TALLY_KIND_EXT))
				lost += tally_table_put_ext(t, s, rec[r].kind & ~TALLY_KIND_EXT,
							    rec[r].value, ts,
							    rec_weight(rec[r].reserved[1],
								       rec[r].reserved[2])) != 0;
			else
				lost += tally_table_put_hint(t, s, rec[r].kind, rec[r].value, ts,
							     hint) != 0;
		}
		WC(w, aggregated) += h->count;
	}
	WC(w, aggregated) -= lost;
	WC(w, table_full) += t->full;
	t->full = 0;
	WC(w, series) = t->series;
}

/* statsd ------------------------------------------------------------------------------- */

/* The decoder's batches: aggregated at once, like v1 datagrams (steered in device mode). */
static void
statsd_emit(void *ctx, const struct tally_wire_hdr **dg, uint16_t n)
{
	struct tally_worker *w = ctx;

	worker_aggregate(w, dg, n, w->sd_arrival_ns);
}

static void
statsd_bad(void *ctx, unsigned int reason, uint32_t line)
{
	struct tally_worker *w = ctx;

	w->stats.statsd[reason]++;
	if (w->sd_refused++ == 0)
		w->sd_first = reason | (line & 0xffff) << 8;
}

static int
statsd_name(void *ctx, int what, uint64_t id, const char *text, uint32_t len)
{
	struct tally_worker *w = ctx;
	struct tally_name_msg msg;

	/* first sight of a name only: a copy into the ring, never per record */
	msg.id = id;
	msg.what = (uint16_t)what;
	msg.len = (uint16_t)len;
	memcpy(msg.text, text, len);
	if (w->names == NULL)
		return 0;
	if (rte_ring_sp_enqueue_elem(w->names, &msg, sizeof(msg)) == 0) {
		WC(w, statsd_names)++;
		return 0;
	}
	WC(w, statsd_names_dropped)++;
	return -1;
}

int
tally_worker_statsd_init(struct tally_worker *w, const char *device_tag, unsigned int max_tags,
			 uint32_t max, void *mem)
{
	return tally_statsd_dec_init(w->statsd, device_tag, max_tags, max, mem, statsd_emit,
				     statsd_bad, statsd_name, w);
}

/*
 * A statsd datagram: decoded line by line into the decoder's batches, aggregated with the
 * burst's others at its end (tally_statsd_flush()). Refused lines are counted one by one; the datagram goes to the
 * dead-letter capture with its first refused line's reason. 1 when the capture took m.
 */
static int
worker_statsd(struct tally_worker *w, struct rte_mbuf *m, const struct tally_frame *fr,
	      uint64_t arrival_ns)
{
	uint32_t taken;

	WC(w, statsd_datagrams)++;
	w->sd_arrival_ns = arrival_ns;
	w->sd_refused = 0;
	taken = tally_statsd_decode(w->statsd, fr->payload, fr->payload_len, fr->src, fr->src_len,
				    0);
	WC(w, statsd_lines) += taken;
	if (w->sd_refused == 0)
		return 0;
	WC(w, statsd_refused) += w->sd_refused;
	if (w->dlq == NULL)
		return 0;
	return worker_dead_letter(w, m, 0, TALLY_DLQ_STATSD | w->sd_first) == 0;
}

/*
 * A frame in several segments (longer than one mbuf: a jumbo frame, or net_pcap's copy of a
 * big packet) is copied whole into the scratch buffer and parsed there. The copy stops at the
 * end of the chain, whatever pkt_len says, and at the scratch buffer's end: what lies past
 * TALLY_WIRE_FRAME_MAX is never part of a datagram.
 */
static int
worker_parse_chain(struct tally_worker *w, const struct rte_mbuf *m, struct tally_frame *fr)
{
	uint32_t len = 0, n;

	for (; m != NULL && len < sizeof(w->scratch); m = m->next) {
		n = RTE_MIN((uint32_t)rte_pktmbuf_data_len(m), (uint32_t)sizeof(w->scratch) - len);
		rte_memcpy(w->scratch + len, rte_pktmbuf_mtod(m, const uint8_t *), n);
		len += n;
	}
	return tally_wire_parse(w->scratch, len, &w->filter, fr);
}

void
tally_worker_burst(struct tally_worker *w, struct rte_mbuf **pkts, uint16_t n)
{
	const struct tally_wire_hdr *dg[TALLY_MAX_BURST];
	struct rte_mbuf *done[TALLY_MAX_BURST];
	uint64_t arrival_ns = 0;
	uint16_t nd = 0, nf = 0, i;
	uint32_t ndg = 0;
	int in_scratch = 0; /* a datagram in dg[] lies in the scratch buffer */

	for (i = 0; i < n; i++) {
		struct rte_mbuf *m = pkts[i];
		struct tally_frame fr;
		int type;

		if (likely(m->nb_segs == 1)) {
			type = tally_wire_parse(rte_pktmbuf_mtod(m, const uint8_t *),
						rte_pktmbuf_data_len(m), &w->filter, &fr);
		} else {
			/*
			 * The scratch buffer holds one frame: aggregate the datagram still in it
			 * (and those before it, so records keep their arrival order) before it
			 * is overwritten.
			 */
			if (in_scratch) {
				if (arrival_ns == 0)
					arrival_ns = tally_clock_ns(w->clock, rte_rdtsc());
				worker_aggregate(w, dg, nd, arrival_ns);
				ndg += nd;
				nd = 0;
			}
			type = worker_parse_chain(w, m, &fr);
			in_scratch = type == TALLY_FRAME_TELEMETRY;
		}
		if (likely(type == TALLY_FRAME_TELEMETRY)) {
			dg[nd++] = (const struct tally_wire_hdr *)fr.payload;
			done[nf++] = m;
			continue;
		}
		if (type == TALLY_FRAME_STATSD && w->statsd != NULL) {
			/* statsd and v1 series never meet (a statsd device id is 2^63 or more) */
			if (arrival_ns == 0)
				arrival_ns = tally_clock_ns(w->clock, rte_rdtsc());
			if (!worker_statsd(w, m, &fr, arrival_ns))
				done[nf++] = m;
			continue;
		}
		switch (type) {
		case TALLY_FRAME_MALFORMED:
			WC(w, malformed)++;
			w->stats.malformed[fr.reason]++;
			if (w->dlq != NULL && worker_dead_letter(w, m, fr.reason, 0) == 0)
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
	WC(w, datagrams) += ndg + nd;
	if (nd > 0) {
		/* One arrival time for the burst: that of its first aggregation. */
		if (arrival_ns == 0)
			arrival_ns = tally_clock_ns(w->clock, rte_rdtsc());
		worker_aggregate(w, dg, nd, arrival_ns);
	}
	if (w->statsd != NULL)
		tally_statsd_flush(w->statsd); /* the burst's statsd records, together */
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
	if (w->mode == TALLY_PARTITION_DEVICE && w->nworkers > 1) {
		/*
		 * Publish what was written into the owners' rings every few busy passes (at once
		 * when idle): each publication moves the rings' head and tail lines between
		 * cores, so fewer of them carry more records each.
		 */
		if (total == 0 || ++w->fwd_passes >= TALLY_FWD_PUBLISH) {
			for (q = 0; q < w->nworkers; q++)
				fwd_commit(w, q);
			w->fwd_passes = 0;
		}
		receive_forwarded(w);
	}
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
