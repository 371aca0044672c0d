/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * A port's NIC counters, as /tally/ports and /metrics give them per port: name, kind, unit,
 * help (the form of tally_worker_counters.h) and the struct rte_eth_stats member read.
 */
#ifndef TALLY_PORT_COUNTERS_H
#define TALLY_PORT_COUNTERS_H

#define TALLY_PORT_COUNTERS(_)                                                                    \
	_(ipackets, COUNTER, "packets", "packets the port received", ipackets)                    \
	_(ibytes, COUNTER, "bytes", "bytes the port received", ibytes)                            \
	_(rx_missed, COUNTER, "packets", "packets the NIC dropped: no room in an RX queue",       \
	  imissed)                                                                                \
	_(ierrors, COUNTER, "packets", "erroneous packets received", ierrors)                     \
	_(rx_nombuf, COUNTER, "packets", "RX mbuf allocation failures", rx_nombuf)                \
	_(opackets, COUNTER, "packets", "packets sent (exception replies)", opackets)             \
	_(obytes, COUNTER, "bytes", "bytes sent", obytes)                                         \
	_(oerrors, COUNTER, "packets", "packets the port failed to send", oerrors)

#endif /* TALLY_PORT_COUNTERS_H */
