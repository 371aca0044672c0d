/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Counters of the control side itself: the sink thread's queue and shutdown, the exception
 * thread's replies (see tally_worker_counters.h for the entry form).
 */
#ifndef TALLY_CONTROL_COUNTERS_H
#define TALLY_CONTROL_COUNTERS_H

#define TALLY_DELIVERY_COUNTERS(_)                                                                \
	_(sink_queue, GAUGE, "windows", "merged windows held in memory by the sink thread")       \
	_(unwritten_records, COUNTER, "records",                                                   \
	  "records of windows given up at the shutdown deadline (no spool)")

#define TALLY_EXCEPTION_COUNTERS(_)                                                               \
	_(arp_replies, COUNTER, "replies", "ARP replies sent")                                    \
	_(icmp_replies, COUNTER, "replies",                                                        \
	  "ICMP echo, ICMPv6 echo and neighbor advertisement replies sent")                      \
	_(exception_tx_drops, COUNTER, "replies", "replies the TX queue refused")                 \
	_(exception_rate_limited, COUNTER, "requests",                                             \
	  "valid requests not answered: over --exception-rate")                                  \
	_(exception_refused_checksum, COUNTER, "requests",                                         \
	  "requests with a bad IPv4, ICMP or ICMPv6 checksum")                                   \
	_(exception_refused_fragment, COUNTER, "requests", "ICMP echo requests in IPv4 fragments") \
	_(exception_refused_source, COUNTER, "requests",                                           \
	  "requests from a group MAC or a multicast, broadcast or loopback address")            \
	_(exception_refused_hop_limit, COUNTER, "requests",                                        \
	  "neighbor solicitations whose hop limit is not 255")                                   \
	_(exception_refused_nd, COUNTER, "requests",                                               \
	  "neighbor solicitations invalid per RFC 4861 7.1.1")                                   \
	_(exception_ignored, COUNTER, "frames", "exception frames that are no request for tally")

#endif /* TALLY_CONTROL_COUNTERS_H */
