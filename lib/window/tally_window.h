/* SPDX-License-Identifier: BSD-3-Clause */
/* Tumbling windows: alignment, and the final stage that merges the workers' partials. */
#ifndef TALLY_WINDOW_H
#define TALLY_WINDOW_H

#include <stdint.h>

#include "tally_table.h"

#define TALLY_MERGER_MAX_WORKERS 128
#define TALLY_MERGER_MAX_TABLES 16

/* Start of the window holding t_ms: windows are aligned to multiples of window_ms. */
static inline uint64_t
tally_window_start(uint64_t t_ms, uint64_t window_ms)
{
	return t_ms - t_ms % window_ms;
}

/* A window closed by one worker, with the partial it aggregated (never empty). */
struct tally_window_msg {
	uint64_t start_ms;
	struct tally_table *table;
	uint32_t index; /* the table's place in the worker's pool */
};

/*
 * The final stage. Each worker closes its windows in order; a window is complete when every
 * worker has closed it (or a later one). Partials are merged into one table per open window,
 * taken from a fixed pool; complete windows are handed out oldest first.
 * Single-threaded: only the control lcore touches it.
 */
struct tally_merger {
	uint32_t nworkers;
	uint32_t ntables;
	uint64_t window_ms;
	uint64_t closed[TALLY_MERGER_MAX_WORKERS]; /* end (ms) of the last window each closed */
	struct tally_table *pool[TALLY_MERGER_MAX_TABLES];
	uint64_t start[TALLY_MERGER_MAX_TABLES];   /* window of each busy table */
	uint8_t state[TALLY_MERGER_MAX_TABLES];    /* free, merging, handed out */
	uint64_t done;                             /* end of the newest window handed out */
	uint64_t lost_series;                      /* series that did not fit a merge table */
	uint64_t lost_records;
	uint64_t side_full;     /* records without side memory (workers' tables and merges) */
	uint64_t kind_mismatch; /* records of another kind than their series' */
	uint64_t folded;        /* sketch values put in a neighbouring bucket (memory spent) */
};

/*
 * Set a merger up over ntables empty tables (owned by the caller, who frees them after the
 * merger is done). Returns 0 or -EINVAL.
 */
int tally_merger_init(struct tally_merger *m, uint32_t nworkers, uint64_t window_ms,
		      struct tally_table **tables, uint32_t ntables);

/*
 * Merge one worker's partial of a window. Returns 0 when merged (the partial may be reused
 * at once), -ENOSPC when no merge table is free (retry later, after handing windows out),
 * -EINVAL for a window that was already handed out (the caller counts it as late).
 */
int tally_merger_add(struct tally_merger *m, uint64_t start_ms, const struct tally_table *part);

/*
 * Record that a worker has closed every window ending at or before end_ms, and sent their
 * partials. Workers that saw nothing in a window close it without a partial.
 */
void tally_merger_close(struct tally_merger *m, uint32_t worker, uint64_t end_ms);

/*
 * The oldest complete window, or NULL. With force, the oldest open window even if some
 * worker has not closed it (used at shutdown, after every worker has stopped). The table
 * stays valid until tally_merger_release().
 */
struct tally_table *tally_merger_next(struct tally_merger *m, int force, uint64_t *start_ms);

/* Give a handed-out table back to the pool. */
void tally_merger_release(struct tally_merger *m, struct tally_table *t);

/* Tables currently merging or handed out. */
uint32_t tally_merger_busy(const struct tally_merger *m);

/* Tables currently merging (windows not handed out yet). */
uint32_t tally_merger_merging(const struct tally_merger *m);

#endif /* TALLY_WINDOW_H */
