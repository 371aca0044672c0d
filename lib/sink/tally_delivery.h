/* SPDX-License-Identifier: BSD-3-Clause */
/* Delivery of closed windows: to the sink, else to the spool, and back from it on recovery. */
#ifndef TALLY_DELIVERY_H
#define TALLY_DELIVERY_H

#include <stddef.h>
#include <stdint.h>

#include "tally_spool.h"
#include "tally_table.h"

#define TALLY_DELIVERY_MAX_QUEUE 16 /* windows held at most (the merger's pool) */

/*
 * What delivery needs of a sink (tally_sink.h is the Redis one, single node or cluster; a
 * unit test gives a fake). Every call comes from the thread that runs the delivery.
 */
struct tally_sink_ops {
	/* writes may be given (the breaker is closed) */
	int (*available)(const void *sink);
	/* start writing a whole window (sorted here); 0 or -EBUSY while one is being written */
	int (*write_window)(void *sink, struct tally_table *t, uint64_t start_ms,
			    const char *partial_id);
	/* the window being written, given back unwritten (its writes so far are idempotent) */
	struct tally_table *(*take_back)(void *sink, uint64_t *start_ms);
	/* a slice of work; returns the table of a window Redis acknowledged whole, or NULL */
	struct tally_table *(*poll)(void *sink, uint64_t now_ms);
	/* a window is being written */
	int (*writing)(const void *sink);
};

/* The Redis sink's ops (struct tally_sink). */
extern const struct tally_sink_ops tally_redis_sink_ops;

struct tally_delivery_conf {
	const struct tally_sink_ops *ops;
	void *sink;
	struct tally_spool *spool;  /* NULL: no spool */
	struct tally_table *replay; /* with a spool: one spooled record at a time, to the sink */
	const char *partial_id;     /* this run's, for the windows it spools */
	struct tally_names *names;  /* statsd names: spooled with their windows, kept on replay */
	uint32_t queue_max;         /* windows held beyond the one being written: then spool */
	struct tally_sort_key *sort_scratch; /* for tally_table_sort_fast(), or NULL */
	void (*log)(void *arg, int warning, const char *line);
	void *log_arg;
};

struct tally_delivery_stats {
	uint64_t spool_lost;     /* records lost: the spool refused or failed, or none at the end */
	uint64_t unwritten;      /* windows given up at the shutdown deadline without a spool */
	uint64_t unwritten_records;
};

/*
 * The state machine. Complete windows come in oldest first (tally_delivery_add); the oldest
 * goes to the sink; while the breaker is open every window goes to the spool (so memory
 * stays flat through an outage); when more than queue_max wait, the oldest not being
 * written goes to the spool; when the sink has nothing newer, spooled records are replayed
 * oldest first. A spool that fails a write (full or read-only disk) leaves windows in
 * memory, up to queue_max + 1, and is tried again every second; past that they are lost
 * and counted (spool_lost). Tables come back out through tally_delivery_release() once written or
 * spooled. Single-threaded: one thread owns it.
 */
struct tally_delivery {
	struct tally_delivery_conf conf;
	struct {
		struct tally_table *t;
		uint64_t start;
	} q[TALLY_DELIVERY_MAX_QUEUE]; /* q[0] oldest */
	uint32_t qn;
	int q0_writing;               /* q[0] is with the sink */
	struct tally_table *out[TALLY_DELIVERY_MAX_QUEUE];
	uint32_t nout;
	struct tally_spool_iter it;
	int replaying;                /* it is open */
	int replay_writing;           /* the replay table is with the sink */
	int spool_failing;            /* the last spool write failed: windows wait in memory */
	uint64_t spool_retry_ms;      /* when the spool is tried again */
	uint64_t now_ms;              /* of the current step */
	struct tally_delivery_stats st;
};

/* Set up over conf (copied). Returns 0 or -EINVAL. */
int tally_delivery_init(struct tally_delivery *d, const struct tally_delivery_conf *conf);

/* Take a complete window (the caller's table until released). 0, or -ENOSPC when full. */
int tally_delivery_add(struct tally_delivery *d, struct tally_table *t, uint64_t start_ms);

/* A table done with (written, spooled or given up), or NULL. */
struct tally_table *tally_delivery_release(struct tally_delivery *d);

/*
 * Move windows toward Redis: one step of the state machine. quitting: do not start a replay
 * (shutdown). Returns the work done (0: nothing to do now).
 */
unsigned int tally_delivery_step(struct tally_delivery *d, uint64_t now_ms, int quitting);

/*
 * Shutdown ran out of time, or Redis is down at the end: spool every window held (given up
 * and counted without a spool); their tables are released.
 */
void tally_delivery_flush_to_spool(struct tally_delivery *d);

/* Nothing held, nothing being written. */
int tally_delivery_idle(const struct tally_delivery *d);

/* Windows held (waiting or being written). */
uint32_t tally_delivery_held(const struct tally_delivery *d);

/* Close the replay iterator (the spool itself stays the caller's). */
void tally_delivery_fini(struct tally_delivery *d);

#endif /* TALLY_DELIVERY_H */
