/* SPDX-License-Identifier: BSD-3-Clause */
/* The dead-letter path's counters (see tally_worker_counters.h for the entry form). */
#ifndef TALLY_DLQ_COUNTERS_H
#define TALLY_DLQ_COUNTERS_H

/* Kept by the worker lcores (they hand malformed frames over). */
#define TALLY_DLQ_WORKER_COUNTERS(_)                                                              \
	_(dlq_queued, COUNTER, "frames", "malformed frames handed to the dead-letter writer")     \
	_(dlq_dropped, COUNTER, "frames", "malformed frames over --dlq-rate, counted only")        \
	_(dlq_ring_full, COUNTER, "frames", "malformed frames dropped: the writer's ring was full")

/* Kept by the dead-letter writer thread. */
#define TALLY_DLQ_COUNTERS(_)                                                                     \
	_(dlq_written, COUNTER, "frames", "frames in the dead-letter capture")                     \
	_(dlq_errors, COUNTER, "frames", "frames the dead-letter capture could not take")          \
	_(dlq_rotations, COUNTER, "files", "capture files rotated at --dlq-max-mb")

#endif /* TALLY_DLQ_COUNTERS_H */
