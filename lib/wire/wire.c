/* SPDX-License-Identifier: BSD-3-Clause */
/* Frame classification and in-place validation of wire format v1; no copies, no allocation. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tally_wire.h"

#define ETH_HLEN 14
#define VLAN_HLEN 4
#define ETHERTYPE_IPV4 0x0800
#define ETHERTYPE_ARP 0x0806
#define ETHERTYPE_VLAN 0x8100
#define ETHERTYPE_IPV6 0x86dd
#define IPPROTO_ICMP_ 1
#define IPPROTO_UDP_ 17
#define IPPROTO_ICMPV6_ 58
#define IPV6_HLEN 40
#define UDP_HLEN 8
#define ICMP_ECHO_REQUEST 8

static const char *const malformed_names[] = {
#define TALLY_MALFORMED_NAME(sym, name, help) name,
	TALLY_FOREACH_MALFORMED(TALLY_MALFORMED_NAME)
#undef TALLY_MALFORMED_NAME
};

const char *
tally_malformed_name(unsigned int reason)
{
	if (reason >= TALLY_MALFORMED_MAX)
		return NULL;
	return malformed_names[reason];
}

static const char *const malformed_help[] = {
#define TALLY_MALFORMED_HELP(sym, name, help) help,
	TALLY_FOREACH_MALFORMED(TALLY_MALFORMED_HELP)
#undef TALLY_MALFORMED_HELP
};

const char *
tally_malformed_help(unsigned int reason)
{
	return reason < TALLY_MALFORMED_MAX ? malformed_help[reason] : NULL;
}

static inline uint16_t
rd16be(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static inline uint16_t
rd16le(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/* A double is finite when its exponent bits are not all ones. */
static inline int
value_is_finite(const uint8_t *p)
{
	uint64_t bits;

	memcpy(&bits, p, sizeof(bits));
	return ((bits >> 52) & 0x7ff) != 0x7ff;
}

#define REJECT(r) return 1 + TALLY_MALFORMED_##r

int
tally_wire_validate(const uint8_t *p, uint32_t len)
{
	uint32_t count, i;
	const uint8_t *rec;

	if (len < TALLY_WIRE_HDR_LEN)
		REJECT(SHORT);
	if (p[0] != TALLY_WIRE_MAGIC0 || p[1] != TALLY_WIRE_MAGIC1)
		REJECT(MAGIC);
	if (p[2] != TALLY_WIRE_VERSION)
		REJECT(VERSION);
	if (p[3] != 0)
		REJECT(FLAGS);
	if (rd16le(p + 6) != 0)
		REJECT(RESERVED);
	count = rd16le(p + 4);
	if (count == 0)
		REJECT(COUNT);
	if (len != TALLY_WIRE_HDR_LEN + count * TALLY_WIRE_REC_LEN)
		REJECT(LENGTH);
	rec = p + TALLY_WIRE_HDR_LEN;
	for (i = 0; i < count; i++, rec += TALLY_WIRE_REC_LEN) {
		uint8_t kind = rec[4];

		if (kind < TALLY_KIND_COUNTER || kind > TALLY_KIND_DISTINCT)
			REJECT(KIND);
		if ((rec[5] | rec[6] | rec[7]) != 0)
			REJECT(RESERVED);
		/* a distinct record's value is an element's 64 bits, not a number */
		if (kind != TALLY_KIND_DISTINCT && !value_is_finite(rec + 8))
			REJECT(VALUE);
	}
	return 0;
}

/* Whether UDP destination port is one tally reads: v1's, or statsd's when it is on. */
static inline int
our_port(const struct tally_wire_filter *f, uint16_t port)
{
	return port == f->udp_port || (f->statsd_port != 0 && port == f->statsd_port);
}

/*
 * UDP header at l4 with at most avail bytes of IP payload behind it. Frame parsing ends at
 * the payload and its port; the decoder is the port's: v1 is checked here, in place, and
 * statsd text is handed on whole (the worker decodes it line by line).
 */
static int
parse_udp(const uint8_t *l4, uint32_t avail, const struct tally_wire_filter *f, int addr_ok,
	  struct tally_frame *out)
{
	uint16_t ulen, port;
	int rc;

	if (avail < UDP_HLEN)
		return TALLY_FRAME_OTHER;
	port = rd16be(l4 + 2);
	if (!our_port(f, port))
		return TALLY_FRAME_OTHER;
	if (!addr_ok)
		return TALLY_FRAME_OTHER_ADDR;
	ulen = rd16be(l4 + 4);
	if (ulen < UDP_HLEN || ulen > avail) {
		out->reason = TALLY_MALFORMED_TRUNCATED;
		return TALLY_FRAME_MALFORMED;
	}
	out->payload = l4 + UDP_HLEN;
	out->payload_len = ulen - UDP_HLEN;
	out->dst_port = port;
	if (port != f->udp_port)
		return TALLY_FRAME_STATSD;
	rc = tally_wire_validate(out->payload, out->payload_len);
	if (rc != 0) {
		out->reason = (uint8_t)(rc - 1);
		return TALLY_FRAME_MALFORMED;
	}
	return TALLY_FRAME_TELEMETRY;
}

static int
parse_ipv4(const uint8_t *ip, uint32_t len, const struct tally_wire_filter *f,
	   struct tally_frame *out)
{
	uint32_t ihl, tot, dst;
	uint16_t frag;
	int addr_ok;

	if (len < 20 || (ip[0] >> 4) != 4)
		return TALLY_FRAME_OTHER;
	ihl = (uint32_t)(ip[0] & 0x0f) * 4;
	tot = rd16be(ip + 2);
	if (ihl < 20 || ihl > len)
		return TALLY_FRAME_OTHER;
	memcpy(&dst, ip + 16, sizeof(dst));
	addr_ok = !f->has_ipv4 || dst == f->ipv4;
	out->src = ip + 12;
	out->src_len = 4;
	if (ip[9] == IPPROTO_ICMP_) {
		if (f->has_ipv4 && dst == f->ipv4 && len >= ihl + 8 && ip[ihl] == ICMP_ECHO_REQUEST)
			return TALLY_FRAME_ICMP;
		return TALLY_FRAME_OTHER;
	}
	if (ip[9] != IPPROTO_UDP_)
		return TALLY_FRAME_OTHER;
	frag = rd16be(ip + 6);
	if (frag & 0x1fff) /* a later fragment: no UDP header to look at */
		return TALLY_FRAME_OTHER;
	/* Frames may carry Ethernet padding, so the frame may be longer than the datagram. */
	if (tot < ihl || tot > len) {
		if (len >= ihl + UDP_HLEN && our_port(f, rd16be(ip + ihl + 2)) && addr_ok) {
			out->reason = TALLY_MALFORMED_TRUNCATED;
			return TALLY_FRAME_MALFORMED;
		}
		return TALLY_FRAME_OTHER;
	}
	if (frag & 0x2000) { /* first fragment of several */
		if (tot >= ihl + UDP_HLEN && our_port(f, rd16be(ip + ihl + 2)) && addr_ok) {
			out->reason = TALLY_MALFORMED_FRAGMENT;
			return TALLY_FRAME_MALFORMED;
		}
		return TALLY_FRAME_OTHER;
	}
	return parse_udp(ip + ihl, tot - ihl, f, addr_ok, out);
}

static int
parse_ipv6(const uint8_t *ip, uint32_t len, const struct tally_wire_filter *f,
	   struct tally_frame *out)
{
	uint32_t plen;
	int addr_ok;

	if (len < IPV6_HLEN || (ip[0] >> 4) != 6)
		return TALLY_FRAME_OTHER;
	plen = rd16be(ip + 4);
	addr_ok = !f->has_ipv6 || memcmp(ip + 24, f->ipv6, 16) == 0;
	out->src = ip + 8;
	out->src_len = 16;
	if (ip[6] == IPPROTO_ICMPV6_) {
		/* Neighbor solicitations go to a multicast address: the responder checks the target. */
		if (f->has_ipv6 && len >= IPV6_HLEN + 8)
			return TALLY_FRAME_ICMP6;
		return TALLY_FRAME_OTHER;
	}
	if (ip[6] != IPPROTO_UDP_) /* extension headers are not followed in v1 */
		return TALLY_FRAME_OTHER;
	if (plen > len - IPV6_HLEN) {
		if (len >= IPV6_HLEN + UDP_HLEN && our_port(f, rd16be(ip + IPV6_HLEN + 2)) &&
		    addr_ok) {
			out->reason = TALLY_MALFORMED_TRUNCATED;
			return TALLY_FRAME_MALFORMED;
		}
		return TALLY_FRAME_OTHER;
	}
	return parse_udp(ip + IPV6_HLEN, plen, f, addr_ok, out);
}

int
tally_wire_parse(const uint8_t *frame, uint32_t len, const struct tally_wire_filter *f,
		 struct tally_frame *out)
{
	uint32_t off = ETH_HLEN;
	uint16_t type;

	if (len < ETH_HLEN)
		return TALLY_FRAME_OTHER;
	type = rd16be(frame + 12);
	if (type == ETHERTYPE_VLAN) {
		if (len < ETH_HLEN + VLAN_HLEN)
			return TALLY_FRAME_OTHER;
		type = rd16be(frame + 16);
		off += VLAN_HLEN;
	}
	out->l3_off = (uint16_t)off;
	out->l3_type = type;
	switch (type) {
	case ETHERTYPE_IPV4:
		return parse_ipv4(frame + off, len - off, f, out);
	case ETHERTYPE_IPV6:
		return parse_ipv6(frame + off, len - off, f, out);
	case ETHERTYPE_ARP:
		return TALLY_FRAME_ARP;
	default:
		return TALLY_FRAME_OTHER;
	}
}
