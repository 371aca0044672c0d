/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of wire format v1 validation and frame classification. */
#include <math.h>

#include "test.h"
#include "tally_wire.h"

#define PORT 9797

static uint8_t frame[2048];

/* A valid payload of n records for device 42. */
static uint32_t
make_payload(uint8_t *p, uint16_t n)
{
	uint16_t i;

	tally_wire_put_hdr(p, n, 42, 7, 1000);
	for (i = 0; i < n; i++)
		tally_wire_put_rec(p, i, i + 1, (uint8_t)(1 + i % 3), 1.5 * i);
	return TALLY_WIRE_HDR_LEN + (uint32_t)n * TALLY_WIRE_REC_LEN;
}

static void
put16be(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* Ethernet [+VLAN] + IPv4 + UDP around a payload; returns the frame length. */
static uint32_t
make_ipv4(uint8_t *f, int vlan, const uint8_t *payload, uint32_t plen, uint16_t dport)
{
	uint32_t off = 12;
	uint8_t *ip, *udp;

	memset(f, 0, 64);
	if (vlan) {
		put16be(f + off, 0x8100);
		put16be(f + off + 2, 10);
		off += 4;
	}
	put16be(f + off, 0x0800);
	off += 2;
	ip = f + off;
	ip[0] = 0x45;
	put16be(ip + 2, (uint16_t)(20 + 8 + plen));
	ip[8] = 64;
	ip[9] = 17;
	memcpy(ip + 12, (uint8_t[]){198, 18, 0, 2}, 4);
	memcpy(ip + 16, (uint8_t[]){198, 18, 0, 1}, 4);
	udp = ip + 20;
	put16be(udp, 40000);
	put16be(udp + 2, dport);
	put16be(udp + 4, (uint16_t)(8 + plen));
	put16be(udp + 6, 0);
	memcpy(udp + 8, payload, plen);
	return off + 28 + plen;
}

static uint32_t
make_ipv6(uint8_t *f, const uint8_t *payload, uint32_t plen)
{
	uint8_t *ip = f + 14, *udp = ip + 40;

	memset(f, 0, 14 + 48);
	put16be(f + 12, 0x86dd);
	ip[0] = 0x60;
	put16be(ip + 4, (uint16_t)(8 + plen));
	ip[6] = 17;
	ip[7] = 64;
	ip[8] = 0x20;
	ip[9] = 0x01;
	ip[24] = 0x20;
	ip[25] = 0x01;
	ip[39] = 1;
	put16be(udp + 2, PORT);
	put16be(udp + 4, (uint16_t)(8 + plen));
	memcpy(udp + 8, payload, plen);
	return 14 + 48 + plen;
}

static const struct tally_wire_filter any = {.udp_port = PORT};

static int
validate_reason(const uint8_t *p, uint32_t len)
{
	int rc = tally_wire_validate(p, len);

	return rc == 0 ? -1 : rc - 1;
}

static void
test_valid(void **state)
{
	uint8_t p[32 + 16 * 90];

	assert_int_equal(tally_wire_validate(p, make_payload(p, 1)), 0);
	assert_int_equal(tally_wire_validate(p, make_payload(p, 90)), 0);
}

static void
test_malformed_each_reason(void **state)
{
	uint8_t p[32 + 16 * 4];
	uint32_t len;
	double v;

	len = make_payload(p, 3);
	assert_int_equal(validate_reason(p, 31), TALLY_MALFORMED_SHORT);
	assert_int_equal(validate_reason(p, 0), TALLY_MALFORMED_SHORT);

	p[0] = 'X';
	assert_int_equal(validate_reason(p, len), TALLY_MALFORMED_MAGIC);
	len = make_payload(p, 3);
	p[1] = 'Z';
	assert_int_equal(validate_reason(p, len), TALLY_MALFORMED_MAGIC);

	len = make_payload(p, 3);
	p[2] = 2;
	assert_int_equal(validate_reason(p, len), TALLY_MALFORMED_VERSION);

	len = make_payload(p, 3);
	p[3] = 0x80;
	assert_int_equal(validate_reason(p, len), TALLY_MALFORMED_FLAGS);

	len = make_payload(p, 3);
	p[7] = 1;
	assert_int_equal(validate_reason(p, len), TALLY_MALFORMED_RESERVED);

	len = make_payload(p, 3);
	p[TALLY_WIRE_HDR_LEN + 16 + 6] = 1; /* second record's reserved bytes */
	assert_int_equal(validate_reason(p, len), TALLY_MALFORMED_RESERVED);

	make_payload(p, 3);
	p[4] = 0;
	p[5] = 0;
	assert_int_equal(validate_reason(p, 32), TALLY_MALFORMED_COUNT);

	len = make_payload(p, 3);
	assert_int_equal(validate_reason(p, len - 16), TALLY_MALFORMED_LENGTH);
	assert_int_equal(validate_reason(p, len - 1), TALLY_MALFORMED_LENGTH);
	assert_int_equal(validate_reason(p, 32), TALLY_MALFORMED_LENGTH);
	p[4] = 4; /* count says 4, three present */
	assert_int_equal(validate_reason(p, len), TALLY_MALFORMED_LENGTH);

	len = make_payload(p, 3);
	p[TALLY_WIRE_HDR_LEN + 32 + 4] = 0;
	assert_int_equal(validate_reason(p, len), TALLY_MALFORMED_KIND);
	p[TALLY_WIRE_HDR_LEN + 32 + 4] = 5;
	assert_int_equal(validate_reason(p, len), TALLY_MALFORMED_KIND);
	p[TALLY_WIRE_HDR_LEN + 32 + 4] = TALLY_KIND_DISTINCT;
	assert_int_equal(tally_wire_validate(p, len), 0);

	len = make_payload(p, 3);
	tally_wire_put_rec(p, 2, 9, 2, NAN);
	assert_int_equal(validate_reason(p, len), TALLY_MALFORMED_VALUE);
	tally_wire_put_rec(p, 2, 9, 2, INFINITY);
	assert_int_equal(validate_reason(p, len), TALLY_MALFORMED_VALUE);
	tally_wire_put_rec(p, 2, 9, 2, -INFINITY);
	assert_int_equal(validate_reason(p, len), TALLY_MALFORMED_VALUE);
	/* a distinct record's value is an element: any 64 bits, NaN and infinity patterns too */
	tally_wire_put_rec(p, 2, 9, TALLY_KIND_DISTINCT, NAN);
	assert_int_equal(tally_wire_validate(p, len), 0);
	tally_wire_put_rec(p, 2, 9, TALLY_KIND_DISTINCT, -INFINITY);
	assert_int_equal(tally_wire_validate(p, len), 0);
	v = 1e308;
	tally_wire_put_rec(p, 2, 9, 2, v * 10);
	assert_int_equal(validate_reason(p, len), TALLY_MALFORMED_VALUE);
	tally_wire_put_rec(p, 2, 9, 2, -0.0);
	assert_int_equal(tally_wire_validate(p, len), 0);
	tally_wire_put_rec(p, 2, 9, 2, 4.9e-324); /* subnormal is finite */
	assert_int_equal(tally_wire_validate(p, len), 0);
}

static void
test_reason_names(void **state)
{
	assert_string_equal(tally_malformed_name(TALLY_MALFORMED_SHORT), "short");
	assert_string_equal(tally_malformed_name(TALLY_MALFORMED_VALUE), "value");
	assert_string_equal(tally_malformed_name(TALLY_MALFORMED_FRAGMENT), "fragment");
	assert_null(tally_malformed_name(TALLY_MALFORMED_MAX));
}

static void
test_parse_ipv4_vlan_ipv6(void **state)
{
	uint8_t p[32 + 16 * 8];
	uint32_t plen = make_payload(p, 8), len;
	struct tally_frame fr;

	len = make_ipv4(frame, 0, p, plen, PORT);
	assert_int_equal(tally_wire_parse(frame, len, &any, &fr), TALLY_FRAME_TELEMETRY);
	assert_int_equal(fr.payload_len, plen);
	assert_memory_equal(fr.payload, p, plen);
	/* Ethernet padding after the datagram is fine. */
	assert_int_equal(tally_wire_parse(frame, len + 20, &any, &fr), TALLY_FRAME_TELEMETRY);
	assert_int_equal(fr.payload_len, plen);

	len = make_ipv4(frame, 1, p, plen, PORT);
	assert_int_equal(tally_wire_parse(frame, len, &any, &fr), TALLY_FRAME_TELEMETRY);

	len = make_ipv6(frame, p, plen);
	assert_int_equal(tally_wire_parse(frame, len, &any, &fr), TALLY_FRAME_TELEMETRY);
	assert_int_equal(fr.payload_len, plen);

	len = make_ipv4(frame, 0, p, plen, PORT + 1);
	assert_int_equal(tally_wire_parse(frame, len, &any, &fr), TALLY_FRAME_OTHER);
}

static void
test_parse_truncated_headers(void **state)
{
	uint8_t p[32 + 16 * 2];
	uint32_t plen = make_payload(p, 2), len, cut;
	struct tally_frame fr;

	len = make_ipv4(frame, 0, p, plen, PORT);
	/* Cut inside Ethernet, IPv4 and UDP headers: not telemetry, no crash. */
	for (cut = 0; cut < 14 + 20 + 8; cut++)
		assert_int_equal(tally_wire_parse(frame, cut, &any, &fr), TALLY_FRAME_OTHER);
	/* Cut inside the payload: IP total length is larger than what arrived. */
	fr.reason = 0xff;
	assert_int_equal(tally_wire_parse(frame, len - 5, &any, &fr), TALLY_FRAME_MALFORMED);
	assert_int_equal(fr.reason, TALLY_MALFORMED_TRUNCATED);

	/* UDP length larger than the IP payload. */
	len = make_ipv4(frame, 0, p, plen, PORT);
	put16be(frame + 14 + 20 + 4, (uint16_t)(8 + plen + 1));
	assert_int_equal(tally_wire_parse(frame, len, &any, &fr), TALLY_FRAME_MALFORMED);
	assert_int_equal(fr.reason, TALLY_MALFORMED_TRUNCATED);
	/* UDP length shorter than its header. */
	put16be(frame + 14 + 20 + 4, 7);
	assert_int_equal(tally_wire_parse(frame, len, &any, &fr), TALLY_FRAME_MALFORMED);

	/* Bad IHL. */
	len = make_ipv4(frame, 0, p, plen, PORT);
	frame[14] = 0x44;
	assert_int_equal(tally_wire_parse(frame, len, &any, &fr), TALLY_FRAME_OTHER);

	/* VLAN tag with nothing behind it. */
	len = make_ipv4(frame, 1, p, plen, PORT);
	assert_int_equal(tally_wire_parse(frame, 16, &any, &fr), TALLY_FRAME_OTHER);

	/* IPv6 cut inside its header and inside the payload. */
	len = make_ipv6(frame, p, plen);
	for (cut = 14; cut < 14 + 40 + 8; cut++)
		assert_int_equal(tally_wire_parse(frame, cut, &any, &fr), TALLY_FRAME_OTHER);
	assert_int_equal(tally_wire_parse(frame, len - 1, &any, &fr), TALLY_FRAME_MALFORMED);
	assert_int_equal(fr.reason, TALLY_MALFORMED_TRUNCATED);
}

static void
test_parse_payload_reason_passes_through(void **state)
{
	uint8_t p[32 + 16 * 2];
	uint32_t plen = make_payload(p, 2), len;
	struct tally_frame fr;

	p[2] = 9;
	len = make_ipv4(frame, 0, p, plen, PORT);
	assert_int_equal(tally_wire_parse(frame, len, &any, &fr), TALLY_FRAME_MALFORMED);
	assert_int_equal(fr.reason, TALLY_MALFORMED_VERSION);
}

static void
test_parse_addresses_and_exceptions(void **state)
{
	struct tally_wire_filter f = {.udp_port = PORT, .has_ipv4 = 1};
	uint8_t p[32 + 16];
	uint32_t plen = make_payload(p, 1), len;
	struct tally_frame fr;

	memcpy(&f.ipv4, (uint8_t[]){198, 18, 0, 1}, 4);
	len = make_ipv4(frame, 0, p, plen, PORT);
	assert_int_equal(tally_wire_parse(frame, len, &f, &fr), TALLY_FRAME_TELEMETRY);
	memcpy(&f.ipv4, (uint8_t[]){198, 18, 0, 9}, 4);
	assert_int_equal(tally_wire_parse(frame, len, &f, &fr), TALLY_FRAME_OTHER_ADDR);

	/* ARP is handed to the exception path whatever it asks. */
	memset(frame, 0, 60);
	put16be(frame + 12, 0x0806);
	assert_int_equal(tally_wire_parse(frame, 42, &f, &fr), TALLY_FRAME_ARP);
	assert_int_equal(fr.l3_off, 14);

	/* ICMP echo to our address. */
	memcpy(&f.ipv4, (uint8_t[]){198, 18, 0, 1}, 4);
	len = make_ipv4(frame, 0, p, plen, PORT);
	frame[14 + 9] = 1;
	frame[14 + 20] = 8;
	assert_int_equal(tally_wire_parse(frame, len, &f, &fr), TALLY_FRAME_ICMP);
	assert_int_equal(tally_wire_parse(frame, len, &any, &fr), TALLY_FRAME_OTHER);
}

static void
test_parse_fragments(void **state)
{
	uint8_t p[32 + 16];
	uint32_t plen = make_payload(p, 1), len;
	struct tally_frame fr;

	len = make_ipv4(frame, 0, p, plen, PORT);
	frame[14 + 6] = 0x20; /* more fragments, offset 0 */
	assert_int_equal(tally_wire_parse(frame, len, &any, &fr), TALLY_FRAME_MALFORMED);
	assert_int_equal(fr.reason, TALLY_MALFORMED_FRAGMENT);
	frame[14 + 6] = 0x00;
	frame[14 + 7] = 0x10; /* a later fragment */
	assert_int_equal(tally_wire_parse(frame, len, &any, &fr), TALLY_FRAME_OTHER);
}

/* A jumbo frame: the longest frame the parser reads, and a datagram of the most records. */
static uint8_t jumbo[TALLY_WIRE_FRAME_MAX];
static uint8_t jumbo_payload[TALLY_WIRE_HDR_LEN + TALLY_WIRE_MAX_RECORDS_IPV6 * TALLY_WIRE_REC_LEN];

static void
test_parse_jumbo_limits(void **state)
{
	uint8_t *p = jumbo_payload;
	uint32_t plen, len;
	struct tally_frame fr;

	/* UDP's 16-bit length: 4,092 records over IPv4 (a 65,532-byte packet), 4,093 over IPv6. */
	assert_int_equal(TALLY_WIRE_MAX_RECORDS_IPV4, 4092);
	assert_int_equal(TALLY_WIRE_MAX_RECORDS_IPV6, 4093);
	assert_true(20 + 8 + TALLY_WIRE_HDR_LEN + 16 * (TALLY_WIRE_MAX_RECORDS_IPV4 + 1) > 65535);
	assert_true(8 + TALLY_WIRE_HDR_LEN + 16 * (TALLY_WIRE_MAX_RECORDS_IPV6 + 1) > 65535);

	plen = make_payload(p, TALLY_WIRE_MAX_RECORDS_IPV4);
	assert_int_equal(plen, 65504);
	len = make_ipv4(jumbo, 1, p, plen, PORT);
	assert_int_equal(len, 18 + 20 + 8 + 65504);
	assert_int_equal(tally_wire_parse(jumbo, len, &any, &fr), TALLY_FRAME_TELEMETRY);
	assert_int_equal(fr.payload_len, plen);
	assert_int_equal(((const struct tally_wire_hdr *)fr.payload)->count, 4092);
	/* Padding up to the longest frame the parser reads is still padding. */
	assert_int_equal(tally_wire_parse(jumbo, sizeof(jumbo), &any, &fr), TALLY_FRAME_TELEMETRY);
	assert_int_equal(fr.payload_len, plen);

	plen = make_payload(p, TALLY_WIRE_MAX_RECORDS_IPV6);
	len = make_ipv6(jumbo, p, plen);
	assert_true(len <= sizeof(jumbo));
	assert_int_equal(tally_wire_parse(jumbo, len, &any, &fr), TALLY_FRAME_TELEMETRY);
	assert_int_equal(fr.payload_len, plen);
	assert_memory_equal(fr.payload, p, plen);

	/* Every record is checked, the last one 65 KB into the frame too. */
	jumbo[len - TALLY_WIRE_REC_LEN + 4] = 5;
	assert_int_equal(tally_wire_parse(jumbo, len, &any, &fr), TALLY_FRAME_MALFORMED);
	assert_int_equal(fr.reason, TALLY_MALFORMED_KIND);

	/* Only the first 2 KB of it, one mbuf's worth, is a truncated datagram. */
	plen = make_payload(p, TALLY_WIRE_MAX_RECORDS_IPV4);
	len = make_ipv4(jumbo, 0, p, plen, PORT);
	assert_int_equal(tally_wire_parse(jumbo, 2048, &any, &fr), TALLY_FRAME_MALFORMED);
	assert_int_equal(fr.reason, TALLY_MALFORMED_TRUNCATED);

	/* A jumbo first fragment stays a fragment: fragments are not reassembled. */
	jumbo[14 + 6] = 0x20;
	assert_int_equal(tally_wire_parse(jumbo, len, &any, &fr), TALLY_FRAME_MALFORMED);
	assert_int_equal(fr.reason, TALLY_MALFORMED_FRAGMENT);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_malformed_each_reason),
		cmocka_unit_test(test_reason_names),
		cmocka_unit_test(test_parse_ipv4_vlan_ipv6),
		cmocka_unit_test(test_parse_truncated_headers),
		cmocka_unit_test(test_parse_payload_reason_passes_through),
		cmocka_unit_test(test_parse_addresses_and_exceptions),
		cmocka_unit_test(test_parse_fragments),
		cmocka_unit_test(test_parse_jumbo_limits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
