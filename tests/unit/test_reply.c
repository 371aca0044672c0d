/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of the exception path: ARP, ICMP echo and IPv6 neighbor discovery replies. */
#include "test.h"
#include "tally_reply.h"
#include "tally_wire.h"

#define ETH 14
#define NS_FRAME (ETH + 40 + 32) /* a solicitation with one 8-byte option */
#define DIM(a) (sizeof(a) / sizeof((a)[0]))

static const uint8_t our_mac[6] = {0x02, 0, 0, 0, 0, 0x01};
static const uint8_t peer_mac[6] = {0x02, 0, 0, 0, 0, 0x02};
static const uint8_t bcast_mac[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
static const uint8_t mcast_mac[6] = {0x01, 0x00, 0x5e, 0x00, 0x00, 0x01};
static const uint8_t ip_us[4] = {198, 18, 0, 1};
static const uint8_t ip_peer[4] = {198, 18, 0, 2};
static const uint8_t ip6_peer[16] = {0x20, 0x01, 0, 0x02, [15] = 2};
static const uint8_t ip6_all_nodes[16] = {0xff, 0x02, [15] = 1};
/* Solicited-node multicast address of 2001:2::1 */
static const uint8_t ip6_solicited[16] = {0xff, 0x02, [11] = 1, [12] = 0xff, [15] = 1};
static const uint8_t ip6_unspec[16];
static const uint8_t ip6_loopback[16] = {[15] = 1};

static struct tally_wire_filter
filter(void)
{
	struct tally_wire_filter f = {.udp_port = 9797, .has_ipv4 = 1, .has_ipv6 = 1};

	memcpy(&f.ipv4, ip_us, 4);
	f.ipv6[0] = 0x20;
	f.ipv6[1] = 0x01;
	f.ipv6[3] = 0x02;
	f.ipv6[15] = 1;
	return f;
}

static void
put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void
eth(uint8_t *f, uint16_t type)
{
	memset(f, 0xff, 6);
	memcpy(f + 6, peer_mac, 6);
	put16(f + 12, type);
}

/* Classify as the worker does, then build: the reply length or -refusal. */
static int
reply(uint8_t *fr, uint32_t len, int want_type)
{
	struct tally_wire_filter f = filter();
	struct tally_frame tf;

	assert_int_equal(tally_wire_parse(fr, len, &f, &tf), want_type);
	return tally_reply_build(fr, len, want_type, &tf, our_mac, &f);
}

static void
arp_request(uint8_t *fr)
{
	uint8_t *a = fr + ETH;

	memset(fr, 0, 60);
	eth(fr, 0x0806);
	memcpy(a, (uint8_t[]){0, 1, 8, 0, 6, 4, 0, 1}, 8);
	memcpy(a + 8, peer_mac, 6);
	memcpy(a + 14, ip_peer, 4);
	memcpy(a + 24, ip_us, 4);
}

/* IPv4 header and ICMP checksums of an echo request of tot bytes (20-byte header). */
static void
fix4(uint8_t *ip)
{
	uint32_t tot = (uint32_t)(ip[2] << 8 | ip[3]);

	put16(ip + 10, 0);
	put16(ip + 10, tally_inet_csum(ip, 20, 0));
	put16(ip + 22, 0);
	put16(ip + 22, tally_inet_csum(ip + 20, tot - 20, 0));
}

/* An echo request for us, 46 bytes, checksums right. */
static void
echo_request(uint8_t *fr)
{
	uint8_t *ip = fr + ETH, *icmp = ip + 20;

	memset(fr, 0, ETH + 32);
	eth(fr, 0x0800);
	ip[0] = 0x45;
	ip[3] = 32;
	ip[6] = 0x40; /* DF: not a fragment */
	ip[8] = 64;
	ip[9] = 1;
	memcpy(ip + 12, ip_peer, 4);
	memcpy(ip + 16, ip_us, 4);
	icmp[0] = 8;
	icmp[4] = 0x12;
	memcpy(icmp + 8, "ping", 4);
	fix4(ip);
}

static uint32_t
pseudo_sum(const uint8_t *ip)
{
	uint32_t plen = (uint32_t)(ip[4] << 8 | ip[5]), sum = 0, i;

	for (i = 8; i < 40; i += 2)
		sum += (uint32_t)(ip[i] << 8 | ip[i + 1]);
	return sum + plen + 58;
}

static void
fix6(uint8_t *ip)
{
	uint32_t plen = (uint32_t)(ip[4] << 8 | ip[5]);

	put16(ip + 42, 0);
	put16(ip + 42, tally_inet_csum(ip + 40, plen, pseudo_sum(ip)));
}

static void
ip6_header(uint8_t *ip, uint16_t plen, uint8_t hop, const uint8_t *src, const uint8_t *dst)
{
	ip[0] = 0x60;
	put16(ip + 4, plen);
	ip[6] = 58;
	ip[7] = hop;
	memcpy(ip + 8, src, 16);
	memcpy(ip + 24, dst, 16);
}

/* A neighbor solicitation for our address, with a source link-layer address option. */
static void
ns_request(uint8_t *fr)
{
	struct tally_wire_filter f = filter();
	uint8_t *ip = fr + ETH, *icmp = ip + 40;

	memset(fr, 0, NS_FRAME);
	eth(fr, 0x86dd);
	ip6_header(ip, 32, 255, ip6_peer, ip6_solicited);
	icmp[0] = 135;
	memcpy(icmp + 8, f.ipv6, 16);
	icmp[24] = 1;
	icmp[25] = 1;
	memcpy(icmp + 26, peer_mac, 6);
	fix6(ip);
}

static void
test_arp(void **state)
{
	uint8_t fr[60];
	uint8_t *a = fr + ETH;

	arp_request(fr);
	assert_int_equal(reply(fr, sizeof(fr), TALLY_FRAME_ARP), 60);
	assert_memory_equal(fr, peer_mac, 6);
	assert_memory_equal(fr + 6, our_mac, 6);
	assert_int_equal(a[7], 2);
	assert_memory_equal(a + 8, our_mac, 6);
	assert_memory_equal(a + 14, ip_us, 4);
	assert_memory_equal(a + 18, peer_mac, 6);
	assert_memory_equal(a + 24, ip_peer, 4);

	/* Not for us, a reply, or cut short: no answer, and nothing refused either. */
	arp_request(fr);
	a[27] = 7;
	assert_int_equal(reply(fr, sizeof(fr), TALLY_FRAME_ARP), -TALLY_REPLY_IGNORED);
	arp_request(fr);
	a[7] = 2;
	assert_int_equal(reply(fr, sizeof(fr), TALLY_FRAME_ARP), -TALLY_REPLY_IGNORED);
	arp_request(fr);
	assert_int_equal(reply(fr, 20, TALLY_FRAME_ARP), -TALLY_REPLY_IGNORED);

	/* An address probe (RFC 5227, sender 0.0.0.0) is answered, as a host does. */
	arp_request(fr);
	memset(a + 14, 0, 4);
	assert_int_equal(reply(fr, sizeof(fr), TALLY_FRAME_ARP), 60);
}

static void
test_arp_group_source(void **state)
{
	static const uint8_t *const bad_macs[] = {bcast_mac, mcast_mac};
	static const uint8_t bad_ips[][4] = {
		{224, 0, 0, 1}, {239, 1, 2, 3}, {255, 255, 255, 255}, {127, 0, 0, 1}};
	uint8_t fr[60];
	size_t i;

	for (i = 0; i < DIM(bad_macs); i++) {
		arp_request(fr);
		memcpy(fr + 6, bad_macs[i], 6); /* Ethernet source */
		assert_int_equal(reply(fr, sizeof(fr), TALLY_FRAME_ARP), -TALLY_REPLY_BAD_SOURCE);
		arp_request(fr);
		memcpy(fr + ETH + 8, bad_macs[i], 6); /* ARP sender hardware address */
		assert_int_equal(reply(fr, sizeof(fr), TALLY_FRAME_ARP), -TALLY_REPLY_BAD_SOURCE);
	}
	for (i = 0; i < DIM(bad_ips); i++) {
		arp_request(fr);
		memcpy(fr + ETH + 14, bad_ips[i], 4);
		assert_int_equal(reply(fr, sizeof(fr), TALLY_FRAME_ARP), -TALLY_REPLY_BAD_SOURCE);
	}
}

static void
test_icmp_echo(void **state)
{
	uint8_t fr[ETH + 32];
	uint8_t *ip = fr + ETH, *icmp = ip + 20;

	echo_request(fr);
	assert_int_equal(reply(fr, sizeof(fr), TALLY_FRAME_ICMP), (int)sizeof(fr));
	assert_int_equal(icmp[0], 0);
	assert_memory_equal(ip + 12, ip_us, 4);
	assert_memory_equal(ip + 16, ip_peer, 4);
	/* Checksums verify: the sum over a correct header is 0 after complement. */
	assert_int_equal(tally_inet_csum(ip, 20, 0), 0);
	assert_int_equal(tally_inet_csum(icmp, 12, 0), 0);
	assert_memory_equal(icmp + 8, "ping", 4);
	assert_memory_equal(fr, peer_mac, 6);
}

static void
test_icmp_bad_checksum(void **state)
{
	uint8_t fr[ETH + 32];
	uint8_t *ip = fr + ETH;

	echo_request(fr);
	ip[10] ^= 1; /* IPv4 header checksum */
	assert_int_equal(reply(fr, sizeof(fr), TALLY_FRAME_ICMP), -TALLY_REPLY_BAD_CHECKSUM);
	echo_request(fr);
	ip[20 + 2] ^= 1; /* ICMP checksum */
	assert_int_equal(reply(fr, sizeof(fr), TALLY_FRAME_ICMP), -TALLY_REPLY_BAD_CHECKSUM);
	echo_request(fr);
	ip[20 + 9] ^= 0x80; /* payload, under the ICMP checksum */
	assert_int_equal(reply(fr, sizeof(fr), TALLY_FRAME_ICMP), -TALLY_REPLY_BAD_CHECKSUM);
}

static void
test_icmp_fragment(void **state)
{
	uint8_t fr[ETH + 32];
	uint8_t *ip = fr + ETH;

	echo_request(fr);
	ip[6] = 0x20; /* more fragments */
	fix4(ip);
	assert_int_equal(reply(fr, sizeof(fr), TALLY_FRAME_ICMP), -TALLY_REPLY_FRAGMENT);
	echo_request(fr);
	ip[7] = 0x03; /* offset 24 bytes: the last fragment */
	fix4(ip);
	assert_int_equal(reply(fr, sizeof(fr), TALLY_FRAME_ICMP), -TALLY_REPLY_FRAGMENT);
	echo_request(fr);
	ip[6] = 0x01; /* offset 2048 bytes, high bits */
	fix4(ip);
	assert_int_equal(reply(fr, sizeof(fr), TALLY_FRAME_ICMP), -TALLY_REPLY_FRAGMENT);
}

static void
test_icmp_group_source(void **state)
{
	static const uint8_t bad_ips[][4] = {
		{224, 0, 0, 1}, {255, 255, 255, 255}, {127, 0, 0, 1}, {0, 0, 0, 0}};
	uint8_t fr[ETH + 32];
	size_t i;

	echo_request(fr);
	memcpy(fr + 6, bcast_mac, 6);
	assert_int_equal(reply(fr, sizeof(fr), TALLY_FRAME_ICMP), -TALLY_REPLY_BAD_SOURCE);
	echo_request(fr);
	memcpy(fr + 6, mcast_mac, 6);
	assert_int_equal(reply(fr, sizeof(fr), TALLY_FRAME_ICMP), -TALLY_REPLY_BAD_SOURCE);
	for (i = 0; i < DIM(bad_ips); i++) {
		echo_request(fr);
		memcpy(fr + ETH + 12, bad_ips[i], 4);
		fix4(fr + ETH);
		assert_int_equal(reply(fr, sizeof(fr), TALLY_FRAME_ICMP), -TALLY_REPLY_BAD_SOURCE);
	}
}

static void
test_ipv6_ns(void **state)
{
	struct tally_wire_filter f = filter();
	uint8_t fr[NS_FRAME];
	uint8_t *ip = fr + ETH, *icmp = ip + 40;

	ns_request(fr);
	assert_int_equal(reply(fr, sizeof(fr), TALLY_FRAME_ICMP6), NS_FRAME);
	assert_memory_equal(fr, peer_mac, 6);
	assert_int_equal(icmp[0], 136);
	assert_int_equal(icmp[4], 0x60); /* solicited, override */
	assert_memory_equal(icmp + 8, f.ipv6, 16);
	assert_int_equal(icmp[24], 2);
	assert_memory_equal(icmp + 26, our_mac, 6);
	assert_memory_equal(ip + 8, f.ipv6, 16);
	assert_memory_equal(ip + 24, ip6_peer, 16);
	assert_int_equal(ip[7], 255);
	assert_int_equal(tally_inet_csum(icmp, 32, pseudo_sum(ip)), 0);

	/* Another target: no answer, nothing refused. */
	ns_request(fr);
	icmp[8 + 15] = 9;
	fix6(ip);
	assert_int_equal(reply(fr, sizeof(fr), TALLY_FRAME_ICMP6), -TALLY_REPLY_IGNORED);
}

/* Duplicate address detection: from ::, to the solicited-node group, no SLLA option. */
static void
test_ipv6_ns_dad(void **state)
{
	static const uint8_t all_nodes_mac[6] = {0x33, 0x33, 0, 0, 0, 1};
	uint8_t fr[NS_FRAME];
	uint8_t *ip = fr + ETH, *icmp = ip + 40;

	ns_request(fr);
	memset(ip + 8, 0, 16);
	icmp[24] = 14; /* a nonce option (RFC 7527), as Linux sends */
	fix6(ip);
	assert_int_equal(reply(fr, sizeof(fr), TALLY_FRAME_ICMP6), NS_FRAME);
	assert_int_equal(icmp[0], 136);
	assert_int_equal(icmp[4], 0x20); /* override, not solicited (RFC 4861 7.2.4) */
	assert_memory_equal(ip + 24, ip6_all_nodes, 16);
	assert_memory_equal(fr, all_nodes_mac, 6);
	assert_int_equal(tally_inet_csum(icmp, 32, pseudo_sum(ip)), 0);

	/* DAD to a unicast address, or with a source link-layer address: invalid. */
	ns_request(fr);
	memset(ip + 8, 0, 16);
	icmp[24] = 14;
	memcpy(ip + 24, filter().ipv6, 16);
	fix6(ip);
	assert_int_equal(reply(fr, sizeof(fr), TALLY_FRAME_ICMP6), -TALLY_REPLY_BAD_NS);
	ns_request(fr);
	memset(ip + 8, 0, 16);
	fix6(ip);
	assert_int_equal(reply(fr, sizeof(fr), TALLY_FRAME_ICMP6), -TALLY_REPLY_BAD_NS);
}

static void
test_ipv6_ns_hop_limit(void **state)
{
	static const uint8_t hops[] = {254, 64, 1, 0};
	uint8_t fr[NS_FRAME];
	size_t i;

	for (i = 0; i < sizeof(hops); i++) {
		ns_request(fr);
		fr[ETH + 7] = hops[i];
		fix6(fr + ETH);
		assert_int_equal(reply(fr, sizeof(fr), TALLY_FRAME_ICMP6),
				 -TALLY_REPLY_BAD_HOP_LIMIT);
	}
}

/* RFC 4861 7.1.1, the rest: code 0, length >= 24, target not multicast, options of length > 0. */
static void
test_ipv6_ns_invalid(void **state)
{
	uint8_t fr[NS_FRAME];
	uint8_t *ip = fr + ETH, *icmp = ip + 40;
	uint8_t *cut;

	ns_request(fr);
	icmp[1] = 1;
	fix6(ip);
	assert_int_equal(reply(fr, sizeof(fr), TALLY_FRAME_ICMP6), -TALLY_REPLY_BAD_NS);

	ns_request(fr); /* 16 bytes: no room for the target */
	put16(ip + 4, 16);
	fix6(ip);
	assert_int_equal(reply(fr, ETH + 40 + 16, TALLY_FRAME_ICMP6), -TALLY_REPLY_BAD_NS);

	ns_request(fr);
	memcpy(icmp + 8, ip6_all_nodes, 16);
	fix6(ip);
	assert_int_equal(reply(fr, sizeof(fr), TALLY_FRAME_ICMP6), -TALLY_REPLY_BAD_NS);

	ns_request(fr);
	icmp[25] = 0; /* option length 0 */
	fix6(ip);
	assert_int_equal(reply(fr, sizeof(fr), TALLY_FRAME_ICMP6), -TALLY_REPLY_BAD_NS);

	ns_request(fr);
	icmp[25] = 2; /* 16 bytes, past the end of the message */
	fix6(ip);
	assert_int_equal(reply(fr, sizeof(fr), TALLY_FRAME_ICMP6), -TALLY_REPLY_BAD_NS);

	/* A 1-byte tail that cannot hold an option header, in a buffer that ends there. */
	ns_request(fr);
	put16(ip + 4, 25);
	fix6(ip);
	cut = malloc(ETH + 40 + 25); /* not test_malloc: its guard bytes would hide a read past */
	assert_non_null(cut);
	memcpy(cut, fr, ETH + 40 + 25);
	assert_int_equal(reply(cut, ETH + 40 + 25, TALLY_FRAME_ICMP6), -TALLY_REPLY_BAD_NS);
	free(cut);
}

static void
test_ipv6_ns_checksum_and_source(void **state)
{
	uint8_t fr[NS_FRAME];
	uint8_t *ip = fr + ETH;

	ns_request(fr);
	ip[40 + 2] ^= 1;
	assert_int_equal(reply(fr, sizeof(fr), TALLY_FRAME_ICMP6), -TALLY_REPLY_BAD_CHECKSUM);
	ns_request(fr);
	ip[23] ^= 1; /* source address, under the pseudo-header */
	assert_int_equal(reply(fr, sizeof(fr), TALLY_FRAME_ICMP6), -TALLY_REPLY_BAD_CHECKSUM);

	ns_request(fr);
	memcpy(fr + 6, mcast_mac, 6);
	assert_int_equal(reply(fr, sizeof(fr), TALLY_FRAME_ICMP6), -TALLY_REPLY_BAD_SOURCE);
	ns_request(fr);
	memcpy(ip + 8, ip6_all_nodes, 16);
	fix6(ip);
	assert_int_equal(reply(fr, sizeof(fr), TALLY_FRAME_ICMP6), -TALLY_REPLY_BAD_SOURCE);
	ns_request(fr);
	memcpy(ip + 8, ip6_loopback, 16);
	fix6(ip);
	assert_int_equal(reply(fr, sizeof(fr), TALLY_FRAME_ICMP6), -TALLY_REPLY_BAD_SOURCE);
}

static void
echo6_request(uint8_t *fr)
{
	uint8_t *ip = fr + ETH, *icmp = ip + 40;

	memset(fr, 0, ETH + 40 + 12);
	eth(fr, 0x86dd);
	ip6_header(ip, 12, 64, ip6_peer, filter().ipv6);
	icmp[0] = 128;
	memcpy(icmp + 8, "ping", 4);
	fix6(ip);
}

static void
test_icmp6_echo(void **state)
{
	uint8_t fr[ETH + 40 + 12];
	uint8_t *ip = fr + ETH, *icmp = ip + 40;

	echo6_request(fr);
	assert_int_equal(reply(fr, sizeof(fr), TALLY_FRAME_ICMP6), (int)sizeof(fr));
	assert_int_equal(icmp[0], 129);
	assert_memory_equal(ip + 24, ip6_peer, 16);
	assert_int_equal(tally_inet_csum(icmp, 12, pseudo_sum(ip)), 0);

	echo6_request(fr);
	icmp[9] ^= 1;
	assert_int_equal(reply(fr, sizeof(fr), TALLY_FRAME_ICMP6), -TALLY_REPLY_BAD_CHECKSUM);
	echo6_request(fr);
	memcpy(fr + 6, bcast_mac, 6);
	assert_int_equal(reply(fr, sizeof(fr), TALLY_FRAME_ICMP6), -TALLY_REPLY_BAD_SOURCE);
	echo6_request(fr);
	memcpy(ip + 8, ip6_all_nodes, 16);
	fix6(ip);
	assert_int_equal(reply(fr, sizeof(fr), TALLY_FRAME_ICMP6), -TALLY_REPLY_BAD_SOURCE);
	echo6_request(fr);
	memcpy(ip + 8, ip6_unspec, 16);
	fix6(ip);
	assert_int_equal(reply(fr, sizeof(fr), TALLY_FRAME_ICMP6), -TALLY_REPLY_BAD_SOURCE);
	echo6_request(fr);
	memcpy(ip + 8, ip6_loopback, 16);
	fix6(ip);
	assert_int_equal(reply(fr, sizeof(fr), TALLY_FRAME_ICMP6), -TALLY_REPLY_BAD_SOURCE);
}

/* Time is injected: hz cycles a second, exact counts. */
static void
test_bucket(void **state)
{
	struct tally_reply_bucket b;
	int i;

	tally_reply_bucket_init(&b, 3, 1000, 5000);
	for (i = 0; i < 3; i++)
		assert_int_equal(tally_reply_bucket_take(&b, 5000), 1);
	assert_int_equal(tally_reply_bucket_take(&b, 5000), 0);
	/* A token every 1000 / 3 cycles: not yet at 333, there at 334. */
	assert_int_equal(tally_reply_bucket_take(&b, 5333), 0);
	assert_int_equal(tally_reply_bucket_take(&b, 5334), 1);
	assert_int_equal(tally_reply_bucket_take(&b, 5334), 0);
	/* The bucket holds one second's worth, however long the pause. */
	for (i = 0; i < 3; i++)
		assert_int_equal(tally_reply_bucket_take(&b, 9000), 1);
	assert_int_equal(tally_reply_bucket_take(&b, 9000), 0);
	/* A pause whose dt x rate wraps to 2 must still fill it: (2^64 + 2) / 3 cycles. */
	for (i = 0; i < 3; i++)
		assert_int_equal(tally_reply_bucket_take(&b, 9000 + 6148914691236517206u), 1);
	assert_int_equal(tally_reply_bucket_take(&b, 9000 + 6148914691236517206u), 0);
	for (i = 0; i < 3; i++)
		assert_int_equal(tally_reply_bucket_take(&b, UINT64_MAX - 1), 1);
	assert_int_equal(tally_reply_bucket_take(&b, UINT64_MAX - 1), 0);
	/* A clock that went back gives nothing, and takes nothing. */
	assert_int_equal(tally_reply_bucket_take(&b, 100), 0);
	assert_int_equal(tally_reply_bucket_take(&b, 1100), 1);
}

/* The storm of issue 9: 20,000 requests, one per 50 us, at 1000 a second, 2 GHz TSC. */
static void
test_bucket_storm(void **state)
{
	const uint64_t hz = 2000000000, t0 = 123456789;
	struct tally_reply_bucket b;
	uint64_t replies = 0, limited = 0, i;

	tally_reply_bucket_init(&b, 1000, hz, t0);
	for (i = 0; i < 20000; i++) {
		if (tally_reply_bucket_take(&b, t0 + i * (hz / 20000)))
			replies++;
		else
			limited++;
	}
	/* The burst of 1000, then one per ms over the 0.99995 s the storm lasts. */
	assert_int_equal(replies, 1000 + 999);
	assert_int_equal(replies + limited, 20000);
}

static void
test_bucket_limits(void **state)
{
	struct tally_reply_bucket b;
	int i;

	/* 0: never a reply. */
	tally_reply_bucket_init(&b, 0, 1000, 0);
	for (i = 0; i < 10; i++)
		assert_int_equal(tally_reply_bucket_take(&b, (uint64_t)i * 1000000), 0);
	/* The largest rate on a fast TSC neither overflows nor rounds away a token. */
	tally_reply_bucket_init(&b, TALLY_REPLY_RATE_MAX, 5000000000u, 0);
	for (i = 0; i < (int)TALLY_REPLY_RATE_MAX; i++)
		assert_int_equal(tally_reply_bucket_take(&b, 0), 1);
	assert_int_equal(tally_reply_bucket_take(&b, 0), 0);
	assert_int_equal(tally_reply_bucket_take(&b, 4999), 0);
	assert_int_equal(tally_reply_bucket_take(&b, 5000), 1);
	/* Above the largest rate: clamped to it. */
	tally_reply_bucket_init(&b, UINT64_MAX, 5000000000u, 0);
	assert_int_equal(b.rate, TALLY_REPLY_RATE_MAX);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_arp),
		cmocka_unit_test(test_arp_group_source),
		cmocka_unit_test(test_icmp_echo),
		cmocka_unit_test(test_icmp_bad_checksum),
		cmocka_unit_test(test_icmp_fragment),
		cmocka_unit_test(test_icmp_group_source),
		cmocka_unit_test(test_ipv6_ns),
		cmocka_unit_test(test_ipv6_ns_dad),
		cmocka_unit_test(test_ipv6_ns_hop_limit),
		cmocka_unit_test(test_ipv6_ns_invalid),
		cmocka_unit_test(test_ipv6_ns_checksum_and_source),
		cmocka_unit_test(test_icmp6_echo),
		cmocka_unit_test(test_bucket),
		cmocka_unit_test(test_bucket_storm),
		cmocka_unit_test(test_bucket_limits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
