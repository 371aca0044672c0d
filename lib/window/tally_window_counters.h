/* SPDX-License-Identifier: BSD-3-Clause */
/* The final stage's counters (the merger; see tally_worker_counters.h for the entry form). */
#ifndef TALLY_WINDOW_COUNTERS_H
#define TALLY_WINDOW_COUNTERS_H

#define TALLY_MERGE_COUNTERS(_)                                                                   \
	_(merge_full, COUNTER, "records",                                                          \
	  "records lost: a merged window table was full (part of table_full)")                   \
	_(merge_late, COUNTER, "records", "records of a window already written (should stay 0)")  \
	_(side_full, COUNTER, "records",                                                           \
	  "histogram and distinct records not stored: the side memory was spent")                \
	_(kind_mismatch, COUNTER, "records",                                                       \
	  "records of another kind than their series' or the catalog's (stored as that kind)")   \
	_(sketch_folded, COUNTER, "values",                                                        \
	  "histogram values put in a neighbouring bucket: sketch memory spent")

#endif /* TALLY_WINDOW_COUNTERS_H */
