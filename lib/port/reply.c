/* SPDX-License-Identifier: BSD-3-Clause */
/* Builds ARP / ICMP / ICMPv6 replies in place so senders can reach a port without a kernel. */
#include <string.h>

#include "tally_reply.h"

#define ETH_ALEN 6
#define ARP_LEN 28
#define IPV6_HLEN 40
#define ICMP6_ECHO_REQUEST 128
#define ICMP6_ECHO_REPLY 129
#define ICMP6_NS 135
#define ICMP6_NA 136
#define NA_LEN 32
#define NS_MIN_LEN 24 /* type, code, checksum, reserved, target */
#define ND_OPT_SLLA 1 /* source link-layer address option */
#define NS_HOP_LIMIT 255

uint16_t
tally_inet_csum(const void *buf, uint32_t len, uint32_t sum)
{
	const uint8_t *p = buf;

	while (len > 1) {
		sum += (uint32_t)(p[0] << 8 | p[1]);
		p += 2;
		len -= 2;
	}
	if (len)
		sum += (uint32_t)(p[0] << 8);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static void
put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* Reply goes back to the sender, from us. */
static void
eth_reply(uint8_t *frame, const uint8_t mac[6])
{
	memcpy(frame, frame + ETH_ALEN, ETH_ALEN);
	memcpy(frame + ETH_ALEN, mac, ETH_ALEN);
}

/* Group bit: broadcast or multicast, never a sender's own address (IEEE 802). */
static int
mac_is_group(const uint8_t *mac)
{
	return mac[0] & 1;
}

/* Multicast, reserved (with 255.255.255.255) or loopback: no host's (RFC 1122 3.2.1.3). */
static int
ipv4_bad_source(const uint8_t *a)
{
	return a[0] >= 224 || a[0] == 127;
}

static int
arp_reply(uint8_t *frame, uint32_t len, uint32_t l3, const uint8_t mac[6],
	  const struct tally_wire_filter *f)
{
	uint8_t *a = frame + l3;

	if (!f->has_ipv4 || len < l3 + ARP_LEN)
		return -TALLY_REPLY_IGNORED;
	/* Ethernet / IPv4 / request for our address */
	if (a[0] != 0 || a[1] != 1 || a[2] != 0x08 || a[3] != 0 || a[4] != 6 || a[5] != 4 ||
	    a[6] != 0 || a[7] != 1 || memcmp(a + 24, &f->ipv4, 4) != 0)
		return -TALLY_REPLY_IGNORED;
	/* A sender IP of 0.0.0.0 is an address probe (RFC 5227): answered, as a host does. */
	if (mac_is_group(frame + ETH_ALEN) || mac_is_group(a + 8) || ipv4_bad_source(a + 14))
		return -TALLY_REPLY_BAD_SOURCE;
	a[7] = 2;
	memcpy(a + 18, a + 8, ETH_ALEN + 4); /* target := sender */
	memcpy(a + 8, mac, ETH_ALEN);
	memcpy(a + 14, &f->ipv4, 4);
	eth_reply(frame, mac);
	return (int)len;
}

static int
icmp_reply(uint8_t *frame, uint32_t len, uint32_t l3, const uint8_t mac[6],
	   const struct tally_wire_filter *f)
{
	static const uint8_t any[4];
	uint8_t *ip = frame + l3;
	uint32_t ihl = (uint32_t)(ip[0] & 0x0f) * 4;
	uint32_t tot = (uint32_t)(ip[2] << 8 | ip[3]);
	uint8_t *icmp = ip + ihl;

	if (!f->has_ipv4 || ihl < 20 || tot < ihl + 8 || l3 + tot > len || icmp[0] != 8 ||
	    memcmp(ip + 16, &f->ipv4, 4) != 0)
		return -TALLY_REPLY_IGNORED;
	if (tally_inet_csum(ip, ihl, 0) != 0)
		return -TALLY_REPLY_BAD_CHECKSUM;
	/* More fragments or an offset: the part in hand is not the whole request. */
	if ((ip[6] & 0x3f) != 0 || ip[7] != 0)
		return -TALLY_REPLY_FRAGMENT;
	if (tally_inet_csum(icmp, tot - ihl, 0) != 0)
		return -TALLY_REPLY_BAD_CHECKSUM;
	if (mac_is_group(frame + ETH_ALEN) || ipv4_bad_source(ip + 12) ||
	    memcmp(ip + 12, any, 4) == 0)
		return -TALLY_REPLY_BAD_SOURCE;
	memcpy(ip + 16, ip + 12, 4);
	memcpy(ip + 12, &f->ipv4, 4);
	ip[8] = 64;
	put16(ip + 10, 0);
	put16(ip + 10, tally_inet_csum(ip, ihl, 0));
	icmp[0] = 0;
	put16(icmp + 2, 0);
	put16(icmp + 2, tally_inet_csum(icmp, tot - ihl, 0));
	eth_reply(frame, mac);
	return (int)(l3 + tot);
}

/* ICMPv6 checksum over the pseudo-header (addresses, length, next header) and the message. */
static uint16_t
icmp6_sum(const uint8_t *ip, uint32_t plen)
{
	uint32_t sum = 0, i;

	for (i = 8; i < IPV6_HLEN; i += 2)
		sum += (uint32_t)(ip[i] << 8 | ip[i + 1]);
	sum += plen + 58;
	return tally_inet_csum(ip + IPV6_HLEN, plen, sum);
}

static void
icmp6_csum(uint8_t *ip, uint32_t plen)
{
	put16(ip + IPV6_HLEN + 2, 0);
	put16(ip + IPV6_HLEN + 2, icmp6_sum(ip, plen));
}

static int
ipv6_is_multicast(const uint8_t *a)
{
	return a[0] == 0xff;
}

/* Multicast or loopback (::1): never the address of a host on the link (RFC 4291 2.5.3). */
static int
ipv6_bad_source(const uint8_t *a)
{
	static const uint8_t loopback[16] = {[15] = 1};

	return ipv6_is_multicast(a) || memcmp(a, loopback, 16) == 0;
}

/*
 * The checks of RFC 4861 7.1.1 that are left once the target is ours and the checksum holds:
 * hop limit 255 (the solicitation was not routed), code 0, every option longer than 0 and
 * inside the message, and from the unspecified address (duplicate address detection) only
 * to a solicited-node multicast address and without a source link-layer address option.
 */
static int
ns_check(const uint8_t *ip, uint32_t plen)
{
	static const uint8_t solicited[13] = {0xff, 0x02, [11] = 1, [12] = 0xff};
	static const uint8_t unspec[16];
	const uint8_t *icmp = ip + IPV6_HLEN;
	int dad = memcmp(ip + 8, unspec, 16) == 0;
	uint32_t off;

	if (ip[7] != NS_HOP_LIMIT)
		return -TALLY_REPLY_BAD_HOP_LIMIT;
	if (icmp[1] != 0)
		return -TALLY_REPLY_BAD_NS;
	if (dad && memcmp(ip + 24, solicited, sizeof(solicited)) != 0)
		return -TALLY_REPLY_BAD_NS;
	for (off = NS_MIN_LEN; off < plen; off += icmp[off + 1] * 8u) {
		if (plen - off < 2 || icmp[off + 1] == 0 || icmp[off + 1] * 8u > plen - off)
			return -TALLY_REPLY_BAD_NS;
		if (dad && icmp[off] == ND_OPT_SLLA)
			return -TALLY_REPLY_BAD_NS;
	}
	return 0;
}

static int
ns_reply(uint8_t *frame, uint32_t len, uint32_t l3, const uint8_t mac[6],
	 const struct tally_wire_filter *f)
{
	static const uint8_t all_nodes[16] = {0xff, 0x02, [15] = 1};
	static const uint8_t all_nodes_mac[ETH_ALEN] = {0x33, 0x33, 0, 0, 0, 1};
	static const uint8_t unspec[16];
	uint8_t *ip = frame + l3;
	uint8_t *icmp = ip + IPV6_HLEN;
	uint32_t plen = (uint32_t)(ip[4] << 8 | ip[5]);
	int dad, rc;

	if (plen < NS_MIN_LEN || ipv6_is_multicast(icmp + 8))
		return -TALLY_REPLY_BAD_NS;
	if (memcmp(icmp + 8, f->ipv6, 16) != 0)
		return -TALLY_REPLY_IGNORED;
	if (icmp6_sum(ip, plen) != 0)
		return -TALLY_REPLY_BAD_CHECKSUM;
	if (mac_is_group(frame + ETH_ALEN) || ipv6_bad_source(ip + 8))
		return -TALLY_REPLY_BAD_SOURCE;
	rc = ns_check(ip, plen);
	if (rc != 0)
		return rc;
	/* The advertisement is 32 bytes; a solicitation without options is shorter. */
	if (len < l3 + IPV6_HLEN + NA_LEN)
		return -TALLY_REPLY_IGNORED;
	dad = memcmp(ip + 8, unspec, 16) == 0;
	/* Duplicate address detection: answered to all nodes, unsolicited (RFC 4861 7.2.4). */
	if (dad)
		memcpy(ip + 24, all_nodes, 16);
	else
		memcpy(ip + 24, ip + 8, 16);
	memcpy(ip + 8, f->ipv6, 16);
	put16(ip + 4, NA_LEN);
	ip[7] = NS_HOP_LIMIT;
	icmp[0] = ICMP6_NA;
	icmp[1] = 0;
	icmp[4] = dad ? 0x20 : 0x60; /* override, and solicited unless answering DAD */
	icmp[5] = icmp[6] = icmp[7] = 0;
	icmp[24] = 2; /* target link-layer address option */
	icmp[25] = 1;
	memcpy(icmp + 26, mac, ETH_ALEN);
	icmp6_csum(ip, NA_LEN);
	eth_reply(frame, mac);
	if (dad)
		memcpy(frame, all_nodes_mac, ETH_ALEN);
	return (int)(l3 + IPV6_HLEN + NA_LEN);
}

static int
icmp6_reply(uint8_t *frame, uint32_t len, uint32_t l3, const uint8_t mac[6],
	    const struct tally_wire_filter *f)
{
	static const uint8_t unspec[16];
	uint8_t *ip = frame + l3;
	uint8_t *icmp = ip + IPV6_HLEN;
	uint32_t plen = (uint32_t)(ip[4] << 8 | ip[5]);

	if (!f->has_ipv6 || len < l3 + IPV6_HLEN + plen || plen < 8 || ip[6] != 58)
		return -TALLY_REPLY_IGNORED;
	if (icmp[0] == ICMP6_NS)
		return ns_reply(frame, len, l3, mac, f);
	if (icmp[0] != ICMP6_ECHO_REQUEST || memcmp(ip + 24, f->ipv6, 16) != 0)
		return -TALLY_REPLY_IGNORED;
	if (icmp6_sum(ip, plen) != 0)
		return -TALLY_REPLY_BAD_CHECKSUM;
	if (mac_is_group(frame + ETH_ALEN) || ipv6_bad_source(ip + 8) ||
	    memcmp(ip + 8, unspec, 16) == 0)
		return -TALLY_REPLY_BAD_SOURCE;
	memcpy(ip + 24, ip + 8, 16);
	memcpy(ip + 8, f->ipv6, 16);
	ip[7] = 64;
	icmp[0] = ICMP6_ECHO_REPLY;
	icmp6_csum(ip, plen);
	eth_reply(frame, mac);
	return (int)(l3 + IPV6_HLEN + plen);
}

int
tally_reply_build(uint8_t *frame, uint32_t len, int frame_type, const struct tally_frame *fr,
		  const uint8_t mac[6], const struct tally_wire_filter *f)
{
	switch (frame_type) {
	case TALLY_FRAME_ARP:
		return arp_reply(frame, len, fr->l3_off, mac, f);
	case TALLY_FRAME_ICMP:
		return icmp_reply(frame, len, fr->l3_off, mac, f);
	case TALLY_FRAME_ICMP6:
		return icmp6_reply(frame, len, fr->l3_off, mac, f);
	default:
		return -TALLY_REPLY_IGNORED;
	}
}

void
tally_reply_bucket_init(struct tally_reply_bucket *b, uint64_t rate, uint64_t hz, uint64_t now)
{
	b->rate = rate < TALLY_REPLY_RATE_MAX ? rate : TALLY_REPLY_RATE_MAX;
	b->hz = hz != 0 ? hz : 1;
	b->cap = b->rate * b->hz;
	b->credit = b->cap;
	b->last = now;
}

int
tally_reply_bucket_take(struct tally_reply_bucket *b, uint64_t now)
{
	uint64_t dt = now > b->last ? now - b->last : 0;

	if (b->rate == 0)
		return 0;
	b->last = now;
	/* One second (hz cycles) refills any bucket; capping dt first keeps dt x rate in range. */
	if (dt >= b->hz)
		b->credit = b->cap;
	else if (b->cap - b->credit > dt * b->rate)
		b->credit += dt * b->rate;
	else
		b->credit = b->cap;
	if (b->credit < b->hz)
		return 0;
	b->credit -= b->hz;
	return 1;
}
