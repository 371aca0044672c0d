/* SPDX-License-Identifier: BSD-3-Clause */
/* The spool's counters (see tally_worker_counters.h for the entry form). */
#ifndef TALLY_SPOOL_COUNTERS_H
#define TALLY_SPOOL_COUNTERS_H

#define TALLY_SPOOL_COUNTERS(_)                                                                   \
	_(spool_windows, COUNTER, "windows", "windows (or parts) written to the spool")            \
	_(spool_bytes, GAUGE, "bytes", "bytes in the spool")                                      \
	_(spool_replayed, COUNTER, "records", "spool records written back to Redis")              \
	_(spool_corrupt, COUNTER, "records", "spool records skipped: torn or failing their CRC")   \
	_(spool_dropped, COUNTER, "windows", "windows not spooled at the cap (drop-new)")          \
	_(spool_dropped_segments, COUNTER, "segments", "segments deleted at the cap (drop-oldest)") \
	_(spool_lost_records, COUNTER, "records", "records lost: the spool refused or failed")     \
	_(spool_write_errors, COUNTER, "appends",                                                  \
	  "spool appends the file system failed (full, read-only)")                             \
	_(spool_skipped, COUNTER, "entries",                                                       \
	  "entries named like segments that are not regular files")                              \
	_(spool_set_aside, COUNTER, "segments", "damaged or unknown segments renamed to .bad")

#endif /* TALLY_SPOOL_COUNTERS_H */
