/* SPDX-License-Identifier: BSD-3-Clause */
/* statsd ingest's counters (see tally_worker_counters.h for the entry form). */
#ifndef TALLY_STATSD_COUNTERS_H
#define TALLY_STATSD_COUNTERS_H

/* Kept by the worker lcores (the decoder). */
#define TALLY_STATSD_WORKER_COUNTERS(_)                                                           \
	_(statsd_datagrams, COUNTER, "datagrams", "datagrams to --statsd-port")                    \
	_(statsd_lines, COUNTER, "lines", "statsd lines taken (one per packed value)")            \
	_(statsd_refused, COUNTER, "lines", "statsd lines refused, all reasons (each in statsd:REASON)") \
	_(statsd_names, COUNTER, "names", "new series and device names sent to the sink thread")  \
	_(statsd_names_dropped, COUNTER, "names",                                                  \
	  "names not sent yet: the names ring was full (sent again at the next line)")

/* Kept by the sink thread (the names store, lib/statsd/names.c). */
#define TALLY_STATSD_NAMES_COUNTERS(_)                                                            \
	_(statsd_names_kept, GAUGE, "names", "series and device names the sink thread keeps")     \
	_(statsd_names_full, COUNTER, "names",                                                     \
	  "names not kept: 2 x --statsd-series or their bytes reached (written by id)")          \
	_(statsd_names_other, COUNTER, "names",                                                    \
	  "a name for an id another text already named (the first kept)")

#endif /* TALLY_STATSD_COUNTERS_H */
