/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of the exception path: ARP, ICMP echo and IPv6 neighbor discovery replies. */
#include "test.h"
#include "tally_reply.h"
#include "tally_wire.h"

static const uint8_t our_mac[6] = {0x02, 0, 0, 0, 0, 0x01};
static const uint8_t peer_mac[6] = {0x02, 0, 0, 0, 0, 0x02};
static const uint8_t ip_us[4] = {198, 18, 0, 1};
static const uint8_t ip_peer[4] = {198, 18, 0, 2};

static struct tally_wire_filter
filter(void)
{
	struct tally_wire_filter f = {.udp_port = 9797, .has_ipv4 = 1, .has_ipv6 = 1};

	memcpy(&f.ipv4, (uint8_t[]){198, 18, 0, 1}, 4);
	f.ipv6[0] = 0x20;
	f.ipv6[1] = 0x01;
	f.ipv6[3] = 0x02;
	f.ipv6[15] = 1;
	return f;
}

static void
eth(uint8_t *f, uint16_t type)
{
	memset(f, 0xff, 6);
	memcpy(f + 6, peer_mac, 6);
	f[12] = (uint8_t)(type >> 8);
	f[13] = (uint8_t)type;
}

static void
test_arp(void **state)
{
	struct tally_wire_filter f = filter();
	uint8_t fr[60] = {0};
	struct tally_frame tf;
	uint8_t *a = fr + 14;

	eth(fr, 0x0806);
	memcpy(a, (uint8_t[]){0, 1, 8, 0, 6, 4, 0, 1}, 8);
	memcpy(a + 8, peer_mac, 6);
	memcpy(a + 14, (uint8_t[]){198, 18, 0, 2}, 4);
	memcpy(a + 24, (uint8_t[]){198, 18, 0, 1}, 4);
	assert_int_equal(tally_wire_parse(fr, sizeof(fr), &f, &tf), TALLY_FRAME_ARP);
	assert_int_equal(tally_reply_build(fr, sizeof(fr), TALLY_FRAME_ARP, &tf, our_mac, &f), 60);
	assert_memory_equal(fr, peer_mac, 6);
	assert_memory_equal(fr + 6, our_mac, 6);
	assert_int_equal(a[7], 2);
	assert_memory_equal(a + 8, our_mac, 6);
	assert_memory_equal(a + 14, ip_us, 4);
	assert_memory_equal(a + 18, peer_mac, 6);
	assert_memory_equal(a + 24, ip_peer, 4);

	/* Not for us, or a reply: no answer. */
	eth(fr, 0x0806);
	memcpy(a, (uint8_t[]){0, 1, 8, 0, 6, 4, 0, 1}, 8);
	memcpy(a + 24, (uint8_t[]){198, 18, 0, 7}, 4);
	assert_int_equal(tally_reply_build(fr, sizeof(fr), TALLY_FRAME_ARP, &tf, our_mac, &f), -1);
	assert_int_equal(tally_reply_build(fr, 20, TALLY_FRAME_ARP, &tf, our_mac, &f), -1);
}

static void
test_icmp_echo(void **state)
{
	struct tally_wire_filter f = filter();
	uint8_t fr[14 + 20 + 8 + 4] = {0};
	uint8_t *ip = fr + 14, *icmp = ip + 20;
	struct tally_frame tf;

	eth(fr, 0x0800);
	ip[0] = 0x45;
	ip[3] = 32;
	ip[8] = 64;
	ip[9] = 1;
	memcpy(ip + 12, (uint8_t[]){198, 18, 0, 2}, 4);
	memcpy(ip + 16, (uint8_t[]){198, 18, 0, 1}, 4);
	icmp[0] = 8;
	icmp[4] = 0x12;
	memcpy(icmp + 8, "ping", 4);
	assert_int_equal(tally_wire_parse(fr, sizeof(fr), &f, &tf), TALLY_FRAME_ICMP);
	assert_int_equal(tally_reply_build(fr, sizeof(fr), TALLY_FRAME_ICMP, &tf, our_mac, &f),
			 (int)sizeof(fr));
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
test_ipv6_ns(void **state)
{
	struct tally_wire_filter f = filter();
	uint8_t fr[14 + 40 + 32] = {0};
	uint8_t *ip = fr + 14, *icmp = ip + 40;
	struct tally_frame tf;
	uint32_t sum = 0;
	int i;

	eth(fr, 0x86dd);
	ip[0] = 0x60;
	ip[5] = 32;
	ip[6] = 58;
	ip[7] = 255;
	ip[8] = 0x20;
	ip[9] = 0x01;
	ip[11] = 0x02;
	ip[23] = 2; /* source 2001:2::2 */
	ip[24] = 0xff;
	ip[25] = 0x02; /* solicited-node multicast (not checked) */
	icmp[0] = 135;
	memcpy(icmp + 8, f.ipv6, 16);
	icmp[24] = 1;
	icmp[25] = 1;
	memcpy(icmp + 26, peer_mac, 6);
	assert_int_equal(tally_wire_parse(fr, sizeof(fr), &f, &tf), TALLY_FRAME_ICMP6);
	assert_int_equal(tally_reply_build(fr, sizeof(fr), TALLY_FRAME_ICMP6, &tf, our_mac, &f),
			 14 + 40 + 32);
	assert_int_equal(icmp[0], 136);
	assert_int_equal(icmp[4], 0x60);
	assert_memory_equal(icmp + 8, f.ipv6, 16);
	assert_int_equal(icmp[24], 2);
	assert_memory_equal(icmp + 26, our_mac, 6);
	assert_memory_equal(ip + 8, f.ipv6, 16);
	assert_int_equal(ip[39], 2);
	for (i = 8; i < 40; i += 2)
		sum += (uint32_t)(ip[i] << 8 | ip[i + 1]);
	assert_int_equal(tally_inet_csum(icmp, 32, sum + 32 + 58), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_arp),
		cmocka_unit_test(test_icmp_echo),
		cmocka_unit_test(test_ipv6_ns),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
