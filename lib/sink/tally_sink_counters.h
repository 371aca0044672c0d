/* SPDX-License-Identifier: BSD-3-Clause */
/* The Redis sink's counters (see tally_worker_counters.h for the entry form). */
#ifndef TALLY_SINK_COUNTERS_H
#define TALLY_SINK_COUNTERS_H

#include <stdint.h>

#define TALLY_SINK_COUNTERS(_)                                                                    \
	_(windows_flushed, COUNTER, "windows", "windows whose every command Redis acknowledged")   \
	_(redis_commands, COUNTER, "commands", "commands acknowledged by Redis")                   \
	_(redis_errors, COUNTER, "commands",                                                       \
	  "commands answered with an error or lost with the connection")                         \
	_(redis_batches, COUNTER, "batches", "pipelined flushes")                                  \
	_(flush_lag_ms, GAUGE, "ms", "the last window's end to its last Redis acknowledgement")   \
	_(breaker_state, GAUGE, "state", "circuit breaker: 0 closed, 1 open, 2 half-open")         \
	_(breaker_opens, COUNTER, "opens", "times the circuit breaker opened")                    \
	_(redis_failures, COUNTER, "failures", "failed flushes and connects")                      \
	_(window_retries, COUNTER, "windows",                                                      \
	  "windows written again after a failure (merges are idempotent)")                       \
	_(redis_refused, COUNTER, "chunks",                                                        \
	  "device chunks Redis refused for a data reason, kept in tally:refused")               \
	_(redis_refused_records, COUNTER, "records", "records of the refused chunks")              \
	_(redis_refused_lost, COUNTER, "chunks",                                                   \
	  "refused chunks that tally:refused did not take either")                              \
	_(redis_redirects, COUNTER, "replies", "cluster: MOVED, ASK and TRYAGAIN replies followed") \
	_(redis_masters, GAUGE, "masters", "masters written to (1 without a cluster)")             \
	_(redis_wait_short, COUNTER, "batches",                                                    \
	  "batches fewer replicas had in time than --redis-wait-replicas asks")                  \
	_(redis_folds, COUNTER, "parts", "device parts folded into a window key that existed")     \
	_(redis_fold_retries, COUNTER, "parts",                                                    \
	  "folds read again: another writer changed the key after it was read")

/*
 * Window write lag (a window's end to its last Redis acknowledgement) as a histogram: the
 * upper bounds of its buckets in ms; one more bucket takes what is above the last.
 */
#define TALLY_LAG_BOUNDS_MS                                                                       \
	{10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000}
#define TALLY_LAG_BUCKETS 13

/* The bucket of a lag of ms milliseconds. */
static inline unsigned int
tally_lag_bucket(uint64_t ms)
{
	static const uint64_t bound[TALLY_LAG_BUCKETS - 1] = TALLY_LAG_BOUNDS_MS;
	unsigned int i;

	for (i = 0; i < TALLY_LAG_BUCKETS - 1 && ms > bound[i]; i++)
		;
	return i;
}

#endif /* TALLY_SINK_COUNTERS_H */
