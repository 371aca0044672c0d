/* SPDX-License-Identifier: BSD-3-Clause */
/* The poll-mode worker: receive, parse, aggregate into lcore-local tables, close windows. */
#ifndef TALLY_WORKER_H
#define TALLY_WORKER_H

#include <stdint.h>

#include <rte_common.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include "tally_dlq.h"
#include "tally_partition.h"
#include "tally_stats.h"
#include "tally_statsd.h"
#include "tally_table.h"
#include "tally_window.h"
#include "tally_wire.h"

#define TALLY_MAX_WORKERS 64
#define TALLY_MAX_PORTS 32
#define TALLY_MAX_RXQ_PER_WORKER 64
#define TALLY_WORKER_TABLES 4 /* current, previous (device mode), two with control */
#define TALLY_FWD_RESERVE 512  /* slots reserved in an owner's ring at once */
#define TALLY_FWD_CHUNK_MAX 128 /* slots of the largest chunk forwarded (254 records) */
#define TALLY_FWD_CHUNK_RECS 254 /* records of that chunk: a header slot, then two a slot */
#define TALLY_FWD_BURST 256    /* slots dequeued per peer ring at once (>= a chunk) */
#define TALLY_FWD_POLL 8       /* ... and at most this many bursts per peer per poll */
#define TALLY_FWD_PUBLISH 8    /* busy polls between publications of forwarded chunks */
#define TALLY_MAX_BURST 512

_Static_assert(TALLY_FWD_CHUNK_MAX == 1 + (TALLY_FWD_CHUNK_RECS + 1) / 2,
	       "the largest chunk's records fill its slots");
_Static_assert(TALLY_FWD_BURST >= TALLY_FWD_CHUNK_MAX && TALLY_FWD_RESERVE >= TALLY_FWD_CHUNK_MAX,
	       "a whole chunk fits in a reservation and in a dequeue burst");

/* Wall-clock time from the TSC, so workers never make a syscall to read the time. */
struct tally_clock {
	uint64_t base_ns;
	uint64_t base_tsc;
	uint64_t hz;
};

static inline uint64_t
tally_clock_ns(const struct tally_clock *c, uint64_t tsc)
{
	return c->base_ns + (uint64_t)((__uint128_t)(tsc - c->base_tsc) * 1000000000u / c->hz);
}

static inline uint64_t
tally_clock_tsc(const struct tally_clock *c, uint64_t ns)
{
	if (ns <= c->base_ns)
		return c->base_tsc;
	return c->base_tsc + (uint64_t)((__uint128_t)(ns - c->base_ns) * c->hz / 1000000000u);
}

struct tally_rxq {
	uint16_t port;
	uint16_t queue;
};

/* What a worker publishes to the control lcore; the worker is the only writer. */
struct tally_worker_pub {
	volatile uint64_t closed_end_ms; /* every window ending by then has been sent */
	volatile int done;               /* drained and stopped */
} __rte_cache_aligned;

enum tally_partition_mode {
	TALLY_PARTITION_NIC = 0, /* aggregate what this worker receives (RSS decides) */
	TALLY_PARTITION_DEVICE,  /* forward each device's records to its owner worker */
};

/*
 * One worker lcore. Set up by the control lcore before launch, then written only by the
 * worker, except `pub` and `stats`, which the control lcore reads.
 */
struct tally_worker {
	uint32_t id;
	uint32_t nworkers;
	uint8_t mode;                /* enum tally_partition_mode */
	uint8_t ntables;
	uint16_t nrxq;
	uint16_t burst;
	struct tally_rxq rxq[TALLY_MAX_RXQ_PER_WORKER];
	struct tally_wire_filter filter;
	uint64_t window_ms;
	uint32_t drain_max;          /* packets read per queue while stopping */
	const struct tally_clock *clock;
	const volatile int *quit;
	struct rte_ring *closed;     /* to control: struct tally_window_msg * of full tables */
	struct rte_ring *free;       /* from control: tables merged and reset, as pool index */
	struct rte_ring *exc;        /* to control: ARP / ICMP mbufs */
	struct rte_ring *dlq;        /* to the dead-letter writer (NULL: no capture) */
	struct tally_dlq_bucket dlq_bucket;
	/*
	 * SIGHUP: settings the control lcore hands over, taken at the next window boundary.
	 * Control writes reload only when reload_seen == reload_gen, then bumps reload_gen
	 * (release); the worker takes it and sets reload_seen (release).
	 */
	struct tally_worker_reload {
		uint64_t dlq_burst; /* this worker's share of --dlq-burst and --dlq-rate */
		uint64_t dlq_rate;
		double hot_share;
	} reload;
	uint32_t reload_gen;
	uint32_t reload_seen;
	struct rte_ring *to[TALLY_MAX_WORKERS];   /* device mode: records to each owner (SP/SC) */
	struct rte_ring *from[TALLY_MAX_WORKERS]; /* device mode: records from each peer */
	struct tally_table *tables[TALLY_WORKER_TABLES];
	struct tally_window_msg msg[TALLY_WORKER_TABLES];

	/* worker-private */
	struct tally_table *cur;     /* NULL while no free table is back from control */
	uint32_t cur_idx;
	uint64_t cur_start_ms;
	uint64_t next_tsc;           /* TSC of the current window's end */
	struct tally_table *prev;    /* device mode: closed here, still open for peers' records */
	uint32_t prev_idx;
	uint64_t prev_start_ms;
	uint32_t nspare;             /* empty tables kept instead of a round trip to control */
	uint32_t spare[TALLY_WORKER_TABLES];
	uint64_t peer_closed[TALLY_MAX_WORKERS]; /* end of the last window each peer closed */
	uint64_t peer_window[TALLY_MAX_WORKERS]; /* window each peer's records are now for */
	uint8_t marker_pending[TALLY_MAX_WORKERS];
	union tally_fwd_slot marker[TALLY_MAX_WORKERS];
	struct tally_fwd_area out[TALLY_MAX_WORKERS]; /* reserved in each owner's ring */
	uint32_t fwd_passes;         /* busy polls since the reservations were published */
	struct tally_hot hot;
	uint64_t hot_flush_tsc;      /* 0: partials only at window close */
	uint64_t next_hot_flush;
	uint64_t hot_in_cur;         /* hot records in the current table since it was taken */
	int finishing;               /* stopping: the last window waits for every peer's end */

	/* statsd text (--statsd-port): NULL when off */
	struct tally_statsd_dec *statsd;
	struct rte_ring *names;      /* to the sink thread: struct tally_name_msg, new names */
	uint64_t sd_arrival_ns;      /* the datagram being decoded: its arrival, */
	uint32_t sd_refused;         /* its lines refused, */
	uint32_t sd_first;           /* and the first one's reason | line << 8 */

	struct tally_worker_pub pub;
	struct tally_worker_stats stats;

	/*
	 * Worker-private: a frame longer than one mbuf (a chain of segments) is copied here
	 * whole to be parsed. Set aside with the worker, so the receive path never allocates.
	 */
	uint8_t scratch[TALLY_WIRE_FRAME_MAX] __rte_cache_aligned;
} __rte_cache_aligned;

/* A statsd series or device seen for the first time, for the sink thread to name in Redis. */
struct tally_name_msg {
	uint64_t id;   /* a series' metric id, or a device id */
	uint16_t what; /* TALLY_STATSD_NAME_SERIES or _DEVICE */
	uint16_t len;
	char text[TALLY_STATSD_SERIES_MAX];
};

/* Set up w->statsd (allocated by the caller) with mem for its seen-sets (see lib/statsd). */
int tally_worker_statsd_init(struct tally_worker *w, const char *device_tag, unsigned int max_tags,
			     uint32_t max, void *mem);

/* lcore entry point; arg is the struct tally_worker. Returns 0 after draining on quit. */
int tally_worker_main(void *arg);

/* Process one burst of received frames (exposed for benchmarks and tests). */
void tally_worker_burst(struct tally_worker *w, struct rte_mbuf **pkts, uint16_t n);

#endif /* TALLY_WORKER_H */
