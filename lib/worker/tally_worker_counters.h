/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The worker lcore's counters: name, kind (COUNTER only goes up, GAUGE is a level now), unit,
 * one line of help. The worker is their only writer; lib/stats gathers this list with the
 * other modules' (tally_stats.h) for tally:self, telemetry, the log and /metrics.
 */
#ifndef TALLY_WORKER_COUNTERS_H
#define TALLY_WORKER_COUNTERS_H

#define TALLY_WORKER_COUNTERS(_)                                                                  \
	_(rx_packets, COUNTER, "frames", "frames received")                                       \
	_(datagrams, COUNTER, "datagrams", "valid telemetry datagrams")                           \
	_(records, COUNTER, "records", "records in valid datagrams")                              \
	_(malformed, COUNTER, "datagrams", "datagrams rejected, all reasons (each in malformed:REASON)") \
	_(other, COUNTER, "frames", "frames that are not telemetry for tally")                   \
	_(exceptions, COUNTER, "frames", "ARP and ICMP frames handed to the exception thread")    \
	_(exception_drops, COUNTER, "frames", "exception frames dropped: its ring was full")      \
	_(table_full, COUNTER, "records",                                                          \
	  "records that found no room in a worker table (--table-series); tally:self adds merge_full")          \
	_(window_stall, COUNTER, "records",                                                        \
	  "records dropped: no clean table was ready at a window boundary")                      \
	_(windows_closed, COUNTER, "windows", "partial windows handed to the final stage")        \
	_(busy_polls, COUNTER, "calls", "rx_burst calls that returned packets")                   \
	_(idle_polls, COUNTER, "calls", "rx_burst calls that returned nothing")                   \
	_(aggregated, COUNTER, "records", "records aggregated in this worker's tables")          \
	_(series, GAUGE, "series", "live series in the worker's current table")                   \
	_(forwarded, COUNTER, "records", "device mode: records sent to their owner worker")      \
	_(received, COUNTER, "records", "device mode: records received from other workers")      \
	_(hot_records, COUNTER, "records",                                                         \
	  "records of hot devices aggregated where they arrived instead of forwarded")           \
	_(ring_full, COUNTER, "records",                                                           \
	  "device mode: records aggregated where they arrived: the owner's ring was full")       \
	_(window_slip, COUNTER, "records",                                                         \
	  "device mode: forwarded records that arrived after their window closed (next one)")    \
	_(hot_keys, GAUGE, "devices", "devices hot now (each counted once)")

#endif /* TALLY_WORKER_COUNTERS_H */
