/* SPDX-License-Identifier: BSD-3-Clause */
/* Wire format v1 and the frame parser: Ethernet/VLAN/IPv4/IPv6/UDP down to validated records. */
#ifndef TALLY_WIRE_H
#define TALLY_WIRE_H

#include <stdint.h>
#include <string.h>

#define TALLY_WIRE_MAGIC0 'T'
#define TALLY_WIRE_MAGIC1 'Y'
#define TALLY_WIRE_VERSION 1
#define TALLY_WIRE_HDR_LEN 32
#define TALLY_WIRE_REC_LEN 16

/*
 * Limits that follow from IP and UDP, not from tally. The longest frame a datagram can need:
 * Ethernet, one 802.1Q tag, an IPv6 header and the largest payload its 16-bit length allows
 * (an IPv4 packet, header included, is at most 65,535 bytes); anything past it is padding.
 * The most records a datagram can carry: UDP's 16-bit length caps the payload at 65,507
 * bytes over IPv4 and 65,527 over IPv6.
 */
#define TALLY_WIRE_FRAME_MAX (14 + 4 + 40 + 65535)
#define TALLY_WIRE_MAX_RECORDS_IPV4 ((65535 - 20 - 8 - TALLY_WIRE_HDR_LEN) / TALLY_WIRE_REC_LEN)
#define TALLY_WIRE_MAX_RECORDS_IPV6 ((65535 - 8 - TALLY_WIRE_HDR_LEN) / TALLY_WIRE_REC_LEN)

/* Record kinds of v1 (1 counter, 2 gauge, 3 histogram, 4 distinct): lib/table's list. */
#include "tally_aggregate.h"

/*
 * Why a datagram was rejected. Declared once: the enum, the names used in stats
 * (`malformed:<name>`) and tally-gen's injected faults all come from this list.
 * The order is the order the checks run in.
 */
#define TALLY_FOREACH_MALFORMED(_)                                                                 \
	_(SHORT, "short", "payload shorter than the 32-byte header")                                \
	_(MAGIC, "magic", "first two bytes are not 'T' 'Y'")                                        \
	_(VERSION, "version", "version is not 1")                                                   \
	_(FLAGS, "flags", "a flag bit is set")                                                      \
	_(RESERVED, "reserved", "a reserved byte (header or record) is not zero")                   \
	_(COUNT, "count", "count is zero")                                                          \
	_(LENGTH, "length", "payload length is not 32 + 16 * count")                                \
	_(KIND, "kind", "a record kind is not 1..4")                                                \
	_(VALUE, "value", "a value (kinds 1-3) is NaN or inf")                                      \
	_(TRUNCATED, "truncated", "IP or UDP length disagrees with the frame")                      \
	_(FRAGMENT, "fragment", "an IP fragment addressed to the telemetry port")

enum tally_malformed {
#define TALLY_MALFORMED_ENUM(sym, name, help) TALLY_MALFORMED_##sym,
	TALLY_FOREACH_MALFORMED(TALLY_MALFORMED_ENUM)
#undef TALLY_MALFORMED_ENUM
	TALLY_MALFORMED_MAX
};

/* Number of reasons that concern the v1 payload itself (tally-gen can inject these). */
#define TALLY_MALFORMED_PAYLOAD_MAX TALLY_MALFORMED_TRUNCATED

/* Stats name of a reason ("short", "magic", ...); NULL when out of range. */
const char *tally_malformed_name(unsigned int reason);
/* Its one line of help; NULL when out of range. */
const char *tally_malformed_help(unsigned int reason);

/* Datagram header as it sits in the UDP payload (little-endian on the wire). */
struct __attribute__((packed)) tally_wire_hdr {
	uint8_t magic[2];
	uint8_t version;
	uint8_t flags;
	uint16_t count;
	uint16_t reserved;
	uint64_t device_id;
	uint64_t seq;
	uint64_t time_ns;
};

struct __attribute__((packed)) tally_wire_rec {
	uint32_t metric_id;
	uint8_t kind;
	uint8_t reserved[3];
	double value; /* kind 4: the element's 64 bits (read them with memcpy) */
};

/* Host is little-endian (x86-64, arm64): the wire layout is read in place, with no copy. */
_Static_assert(sizeof(struct tally_wire_hdr) == TALLY_WIRE_HDR_LEN, "v1 header is 32 bytes");
_Static_assert(sizeof(struct tally_wire_rec) == TALLY_WIRE_REC_LEN, "v1 record is 16 bytes");
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "wire format is read in place");

/*
 * Validate a v1 payload in place. Returns 0 when every check passes, else 1 + the
 * tally_malformed reason. The payload is not modified or copied.
 */
int tally_wire_validate(const uint8_t *payload, uint32_t len);

/* What a frame turned out to be. */
enum tally_frame_type {
	TALLY_FRAME_TELEMETRY = 0, /* valid v1 datagram: payload/payload_len are set */
	TALLY_FRAME_MALFORMED,     /* addressed to us but rejected: reason is set */
	TALLY_FRAME_ARP,           /* ARP: l3 offset is set, for the exception path */
	TALLY_FRAME_ICMP,          /* ICMP echo request to our IPv4 address */
	TALLY_FRAME_ICMP6,         /* ICMPv6 (echo request or neighbor solicitation) */
	TALLY_FRAME_OTHER_ADDR,    /* telemetry port but another destination address */
	TALLY_FRAME_OTHER,         /* anything else */
	TALLY_FRAME_STATSD,        /* a datagram to the statsd port: payload, src are set */
};

/* What the parser matches on; all in network byte order except udp_port. */
struct tally_wire_filter {
	uint16_t udp_port;  /* host order */
	uint16_t statsd_port; /* host order; 0: statsd text is not read */
	uint8_t has_ipv4;   /* when 0, any IPv4 destination is accepted */
	uint8_t has_ipv6;   /* when 0, any IPv6 destination is accepted */
	uint32_t ipv4;      /* network order */
	uint8_t ipv6[16];
};

struct tally_frame {
	const uint8_t *payload; /* UDP payload (TELEMETRY, STATSD, MALFORMED) */
	uint32_t payload_len;
	const uint8_t *src;     /* the IPv4 or IPv6 source address (STATSD) */
	uint8_t src_len;        /* 4 or 16 */
	uint16_t dst_port;
	uint16_t l3_off;        /* offset of the L3 header (ARP, ICMP, ICMP6) */
	uint16_t l3_type;       /* ethertype of the L3 header, host order */
	uint8_t reason;         /* tally_malformed when type is MALFORMED */
};

/*
 * Classify an Ethernet frame (at most one 802.1Q tag) and, for telemetry, validate the v1
 * payload. The destination MAC is never looked at: the NIC filters, and replayed captures
 * carry foreign MACs. Returns a tally_frame_type; out points into the frame.
 */
int tally_wire_parse(const uint8_t *frame, uint32_t len, const struct tally_wire_filter *f,
		     struct tally_frame *out);

/* Encode helpers, used by tally-gen and tests. buf must hold 32 + 16 * count bytes. */
static inline void
tally_wire_put_hdr(uint8_t *buf, uint16_t count, uint64_t device_id, uint64_t seq,
		   uint64_t time_ns)
{
	struct tally_wire_hdr h = {
		.magic = {TALLY_WIRE_MAGIC0, TALLY_WIRE_MAGIC1},
		.version = TALLY_WIRE_VERSION,
		.flags = 0,
		.count = count,
		.reserved = 0,
		.device_id = device_id,
		.seq = seq,
		.time_ns = time_ns,
	};
	memcpy(buf, &h, sizeof(h));
}

static inline void
tally_wire_put_rec(uint8_t *buf, uint16_t idx, uint32_t metric_id, uint8_t kind, double value)
{
	struct tally_wire_rec r = {.metric_id = metric_id, .kind = kind, .value = value};
	memcpy(buf + TALLY_WIRE_HDR_LEN + (uint32_t)idx * TALLY_WIRE_REC_LEN, &r, sizeof(r));
}

#endif /* TALLY_WIRE_H */
