/* SPDX-License-Identifier: BSD-3-Clause */
/* Dead-letter capture: malformed datagrams to a pcapng file, rate-limited, off the poll path. */
#ifndef TALLY_DLQ_H
#define TALLY_DLQ_H

#include <pthread.h>
#include <stdint.h>

#include <rte_ring.h>

#include "tally_pcapng.h"

#define TALLY_DLQ_MAX_RINGS 64

/*
 * What a frame in the capture was refused for (mbuf hash.usr): a tally_malformed reason, or
 * with TALLY_DLQ_STATSD a statsd datagram's first refused line: its tally_statsd_reason (bits
 * 0-7) and line number from 0 (bits 8-23).
 */
#define TALLY_DLQ_STATSD (1u << 31)

/*
 * Token bucket of one worker: `burst` frames at once, then `per_sec` a second. Time is the
 * TSC; tokens are kept in units of 1/hz so no division is needed per frame.
 */
struct tally_dlq_bucket {
	uint64_t tokens;   /* x hz */
	uint64_t cap;      /* burst x hz */
	uint64_t per_sec;
	uint64_t hz;
	uint64_t last_tsc;
};

static inline void
tally_dlq_bucket_init(struct tally_dlq_bucket *b, uint64_t burst, uint64_t per_sec, uint64_t hz,
		      uint64_t now_tsc)
{
	b->cap = burst * hz;
	b->tokens = b->cap;
	b->per_sec = per_sec;
	b->hz = hz;
	b->last_tsc = now_tsc;
}

/* Take one token at TSC now; 1 when the frame may be captured. */
static inline int
tally_dlq_bucket_take(struct tally_dlq_bucket *b, uint64_t now)
{
	uint64_t dt = now - b->last_tsc;

	b->last_tsc = now;
	/* A long quiet spell refills the bucket; cap dt first so the product cannot overflow. */
	if (dt > b->cap / b->per_sec + 1)
		dt = b->cap / b->per_sec + 1;
	b->tokens += dt * b->per_sec;
	if (b->tokens > b->cap)
		b->tokens = b->cap;
	if (b->tokens < b->hz)
		return 0;
	b->tokens -= b->hz;
	return 1;
}

/* The writer: a control thread draining the workers' DLQ rings into the pcapng file. */
struct tally_dlq {
	struct tally_pcapng pcap;
	struct rte_ring *rings[TALLY_DLQ_MAX_RINGS];
	uint32_t nrings;
	volatile int stop;
	int running;
	pthread_t tid;
	uint64_t written;  /* frames in the capture files */
	uint64_t errors;   /* frames that could not be written */
};

/*
 * Open the capture (truncating it) and start the writer thread over the given SP/SC rings of
 * mbufs; each mbuf carries its malformed reason in hash.usr and is freed once written.
 * Returns 0, or -1 with a one-line reason in err.
 */
int tally_dlq_start(struct tally_dlq *d, const char *path, uint64_t max_bytes,
		    struct rte_ring **rings, uint32_t nrings, char *err, size_t errlen);

/* Write what the rings still hold, stop the thread and close the file. */
void tally_dlq_stop(struct tally_dlq *d);

#endif /* TALLY_DLQ_H */
