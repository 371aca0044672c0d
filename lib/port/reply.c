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

static int
arp_reply(uint8_t *frame, uint32_t len, uint32_t l3, const uint8_t mac[6],
	  const struct tally_wire_filter *f)
{
	uint8_t *a = frame + l3;

	if (!f->has_ipv4 || len < l3 + ARP_LEN)
		return -1;
	/* Ethernet / IPv4 / request for our address */
	if (a[0] != 0 || a[1] != 1 || a[2] != 0x08 || a[3] != 0 || a[4] != 6 || a[5] != 4 ||
	    a[6] != 0 || a[7] != 1 || memcmp(a + 24, &f->ipv4, 4) != 0)
		return -1;
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
	uint8_t *ip = frame + l3;
	uint32_t ihl = (uint32_t)(ip[0] & 0x0f) * 4;
	uint32_t tot = (uint32_t)(ip[2] << 8 | ip[3]);
	uint8_t *icmp = ip + ihl;

	if (!f->has_ipv4 || ihl < 20 || tot < ihl + 8 || l3 + tot > len || icmp[0] != 8 ||
	    memcmp(ip + 16, &f->ipv4, 4) != 0)
		return -1;
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

/* ICMPv6 checksum: pseudo-header (addresses, length, next header) then the message. */
static void
icmp6_csum(uint8_t *ip, uint32_t plen)
{
	uint8_t *icmp = ip + IPV6_HLEN;
	uint32_t sum = 0, i;

	for (i = 8; i < IPV6_HLEN; i += 2)
		sum += (uint32_t)(ip[i] << 8 | ip[i + 1]);
	sum += plen + 58;
	put16(icmp + 2, 0);
	put16(icmp + 2, tally_inet_csum(icmp, plen, sum));
}

static int
icmp6_reply(uint8_t *frame, uint32_t len, uint32_t l3, const uint8_t mac[6],
	    const struct tally_wire_filter *f)
{
	static const uint8_t all_nodes[16] = {0xff, 0x02, [15] = 1};
	static const uint8_t unspec[16];
	uint8_t *ip = frame + l3;
	uint8_t *icmp = ip + IPV6_HLEN;
	uint32_t plen = (uint32_t)(ip[4] << 8 | ip[5]);

	if (!f->has_ipv6 || len < l3 + IPV6_HLEN + plen || plen < 8 || ip[6] != 58)
		return -1;
	if (icmp[0] == ICMP6_NS) {
		/* The reply is 32 bytes; a solicitation without options is shorter. */
		if (plen < 24 || len < l3 + IPV6_HLEN + NA_LEN || memcmp(icmp + 8, f->ipv6, 16) != 0)
			return -1;
		if (memcmp(ip + 8, unspec, 16) == 0) /* duplicate address detection */
			memcpy(ip + 24, all_nodes, 16);
		else
			memcpy(ip + 24, ip + 8, 16);
		memcpy(ip + 8, f->ipv6, 16);
		put16(ip + 4, NA_LEN);
		ip[7] = 255;
		icmp[0] = ICMP6_NA;
		icmp[1] = 0;
		icmp[4] = 0x60; /* solicited, override */
		icmp[5] = icmp[6] = icmp[7] = 0;
		icmp[24] = 2; /* target link-layer address option */
		icmp[25] = 1;
		memcpy(icmp + 26, mac, ETH_ALEN);
		icmp6_csum(ip, NA_LEN);
		eth_reply(frame, mac);
		return (int)(l3 + IPV6_HLEN + NA_LEN);
	}
	if (icmp[0] == ICMP6_ECHO_REQUEST && memcmp(ip + 24, f->ipv6, 16) == 0) {
		memcpy(ip + 24, ip + 8, 16);
		memcpy(ip + 8, f->ipv6, 16);
		ip[7] = 64;
		icmp[0] = ICMP6_ECHO_REPLY;
		icmp6_csum(ip, plen);
		eth_reply(frame, mac);
		return (int)(l3 + IPV6_HLEN + plen);
	}
	return -1;
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
		return -1;
	}
}
