/* SPDX-License-Identifier: BSD-3-Clause */
/* The /metrics endpoint's own counters (see tally_worker_counters.h for the entry form). */
#ifndef TALLY_METRICS_COUNTERS_H
#define TALLY_METRICS_COUNTERS_H

#define TALLY_METRICS_COUNTERS(_)                                                                 \
	_(metrics_scrapes, COUNTER, "requests", "GET /metrics answered 200 (--metrics-listen)")     \
	_(metrics_errors, COUNTER, "requests",                                                     \
	  "requests answered with an error status: bad, too large, too slow, unknown path")      \
	_(metrics_refused, COUNTER, "connections",                                                 \
	  "connections over --metrics-listen's limit, answered 503 and closed")

#endif /* TALLY_METRICS_COUNTERS_H */
