/* SPDX-License-Identifier: BSD-3-Clause */
/* The statsd / DogStatsD line grammar: every type, rates, tags, packed values, refusals. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tally_hll.h"
#include "tally_names.h"
#include "tally_statsd.h"

static struct tally_statsd_line L;

static int
parse(const char *s)
{
	return tally_statsd_parse_line(s, (uint32_t)strlen(s), 8, &L);
}

#define REFUSED(s, r) assert_int_equal(parse(s), 1 + TALLY_STATSD_##r)

static int
name_is(const char *want)
{
	return L.name_len == strlen(want) && memcmp(L.name, want, L.name_len) == 0;
}

static int
tag_is(int i, const char *want)
{
	return L.tags[i].len == strlen(want) && memcmp(L.tags[i].p, want, L.tags[i].len) == 0;
}

static void
test_types(void **state)
{
	(void)state;
	assert_int_equal(parse("page.views:1|c"), 0);
	assert_true(name_is("page.views"));
	assert_int_equal(L.type, TALLY_STATSD_COUNTER);
	assert_int_equal(L.nvalues, 1);
	assert_true(L.values[0] == 1.0);
	assert_true(L.rate == 1.0);
	assert_int_equal(L.ntags, 0);

	assert_int_equal(parse("fuel:0.5|g"), 0);
	assert_int_equal(L.type, TALLY_STATSD_GAUGE);
	assert_int_equal(L.delta, 0);
	assert_true(L.values[0] == 0.5);

	assert_int_equal(parse("rt:320|ms"), 0);
	assert_int_equal(L.type, TALLY_STATSD_TIMER);
	assert_int_equal(parse("sz:12|h"), 0);
	assert_int_equal(L.type, TALLY_STATSD_HISTOGRAM);
	assert_int_equal(parse("lat:0.25|d"), 0);
	assert_int_equal(L.type, TALLY_STATSD_DISTRIBUTION);

	assert_int_equal(parse("users:alice|s"), 0);
	assert_int_equal(L.type, TALLY_STATSD_SET);
	assert_int_equal(L.member_len, 5);
	assert_memory_equal(L.member, "alice", 5);
	/* a member may hold ':' (the name ends at the first) */
	assert_int_equal(parse("flows:10.0.0.1:443|s"), 0);
	assert_int_equal(L.member_len, 12);

	REFUSED("x:1|q", UNKNOWN_TYPE);
	REFUSED("x:1|", UNKNOWN_TYPE);
	REFUSED("x:1|msx", UNKNOWN_TYPE);
	REFUSED("x:1", NO_TYPE);
	REFUSED("x|c", NO_COLON);
	REFUSED("x", NO_COLON);
	REFUSED(":1|c", EMPTY_NAME);
	REFUSED("users:|s", BAD_VALUE);
}

static void
test_gauge_deltas(void **state)
{
	(void)state;
	assert_int_equal(parse("g:+4|g"), 0);
	assert_int_equal(L.delta, 1);
	assert_true(L.values[0] == 4);
	assert_int_equal(parse("g:-10|g"), 0);
	assert_int_equal(L.delta, 1);
	assert_true(L.values[0] == -10);
	/* for other types a sign is a sign */
	assert_int_equal(parse("c:-2|c"), 0);
	assert_int_equal(L.delta, 0);
	assert_true(L.values[0] == -2);
	REFUSED("g:+-3|g", BAD_VALUE);
	REFUSED("g:--3|g", BAD_VALUE);
	REFUSED("g:+|g", BAD_VALUE);
	/* packed gauge values are all deltas or none */
	assert_int_equal(parse("g:+1:+2|g"), 0);
	assert_int_equal(L.nvalues, 2);
	REFUSED("g:1:+2|g", BAD_VALUE);
}

static void
test_rates_and_sections(void **state)
{
	(void)state;
	assert_int_equal(parse("c:3|c|@0.1"), 0);
	assert_true(L.rate == 0.1);
	assert_int_equal(parse("c:3|c|@1"), 0);
	assert_true(L.rate == 1);
	REFUSED("c:3|c|@0", BAD_RATE);
	REFUSED("c:3|c|@1.5", BAD_RATE);
	REFUSED("c:3|c|@-0.5", BAD_RATE);
	REFUSED("c:3|c|@", BAD_RATE);
	REFUSED("c:3|c|@x", BAD_RATE);
	REFUSED("c:3|c|@nan", BAD_RATE);

	assert_int_equal(parse("c:3|c|@0.5|#env:prod,region:eu|c:abc123|T1700000000"), 0);
	assert_true(L.rate == 0.5);
	assert_int_equal(L.ntags, 2);
	assert_true(tag_is(0, "env:prod"));
	assert_true(tag_is(1, "region:eu"));
	assert_int_equal(L.container_len, 6);
	assert_true(L.ts_s == 1700000000);
	/* any order */
	assert_int_equal(parse("c:3|c|#a|@0.25"), 0);
	assert_true(L.rate == 0.25);
	assert_true(tag_is(0, "a"));
	REFUSED("c:3|c|T17x", BAD_TIMESTAMP);
	REFUSED("c:3|c|T", BAD_TIMESTAMP);
	REFUSED("c:3|c|T1234567890123", BAD_TIMESTAMP);
	/* DogStatsD's later fields are skipped; anything else is refused */
	assert_int_equal(parse("c:3|c|e:ext|card:high"), 0);
	REFUSED("c:3|c|x", BAD_FIELD);
	REFUSED("c:3|c||#a", BAD_FIELD);
	REFUSED("c:3|c|", BAD_FIELD);
	REFUSED("_e{5,4}:title|text", EVENT);
	REFUSED("_sc|check|0", EVENT);
}

static void
test_tags(void **state)
{
	char line[2048];
	int i;

	(void)state;
	REFUSED("c:1|c|#a,,b", BAD_TAG);
	REFUSED("c:1|c|#", BAD_TAG);
	REFUSED("c:1|c|#a,", BAD_TAG);
	REFUSED("c:1|c|#a\x01", BAD_TAG);
	/* 8 tags allowed here, 9 refused */
	assert_int_equal(parse("c:1|c|#a,b,c,d,e,f,g,h"), 0);
	assert_int_equal(L.ntags, 8);
	REFUSED("c:1|c|#a,b,c,d,e,f,g,h,i", TOO_MANY_TAGS);
	strcpy(line, "c:1|c|#");
	for (i = 0; i < TALLY_STATSD_TAG_MAX + 1; i++)
		strcat(line, "t");
	REFUSED(line, TOO_LONG);
	line[strlen(line) - 1] = '\0';
	assert_int_equal(parse(line), 0);
	/* the bound given is held to TAGS_MAX */
	strcpy(line, "c:1|c|#t");
	for (i = 1; i < TALLY_STATSD_TAGS_MAX + 1; i++)
		strcat(line, ",t");
	assert_int_equal(tally_statsd_parse_line(line, (uint32_t)strlen(line), 1000, &L),
			 1 + TALLY_STATSD_TOO_MANY_TAGS);
}

static void
test_packed(void **state)
{
	char line[4096];
	int i;

	(void)state;
	assert_int_equal(parse("lat:1:2.5:3e2|d"), 0);
	assert_int_equal(L.nvalues, 3);
	assert_true(L.values[0] == 1 && L.values[1] == 2.5 && L.values[2] == 300);
	REFUSED("lat:1::3|d", BAD_VALUE);
	REFUSED("lat:1:2:|d", BAD_VALUE);
	strcpy(line, "x:1");
	for (i = 1; i < TALLY_STATSD_VALUES_MAX; i++)
		strcat(line, ":1");
	strcat(line, "|c");
	assert_int_equal(parse(line), 0);
	assert_int_equal(L.nvalues, TALLY_STATSD_VALUES_MAX);
	line[strlen(line) - 2] = '\0';
	strcat(line, ":1|c");
	REFUSED(line, TOO_MANY_VALUES);
}

static void
test_names(void **state)
{
	char line[512];
	int i;

	(void)state;
	/* UTF-8 is a name; bytes that are not, or control bytes, are not */
	assert_int_equal(parse("temp\xc2\xb0\x43:21|g"), 0);
	assert_int_equal(parse("\xe6\xb8\xa9\xe5\xba\xa6:21|g"), 0);
	REFUSED("bad\xff:1|c", BAD_NAME);
	REFUSED("bad\xc0\x80:1|c", BAD_NAME); /* overlong NUL */
	REFUSED("bad\xed\xa0\x80:1|c", BAD_NAME); /* a UTF-16 surrogate */
	REFUSED("bad\xe2\x82:1|c", BAD_NAME);     /* cut short */
	/* text_ok() takes 8 printable bytes at a time: every byte of a long name is looked at */
	for (i = 0; i < 40; i++) {
		static const char bad[] = {0x01, 0x1f, 0x7f, (char)0x80, (char)0xff};
		char name[48];
		unsigned int k;

		memset(name, 'a', sizeof(name));
		assert_int_equal(tally_statsd_text_ok(name, 40), 1);
		for (k = 0; k < sizeof(bad); k++) {
			name[i] = bad[k];
			assert_int_equal(tally_statsd_text_ok(name, 40), 0);
		}
		name[i] = ' ';
		assert_int_equal(tally_statsd_text_ok(name, 40), 1);
		name[i] = '~';
		assert_int_equal(tally_statsd_text_ok(name, 40), 1);
		memcpy(name + i, "\xc2\xb0", 2); /* UTF-8 amid ASCII */
		assert_int_equal(tally_statsd_text_ok(name, 41), 1);
	}
	REFUSED("tab\tname:1|c", BAD_NAME);
	REFUSED("del\x7f:1|c", BAD_NAME);
	line[0] = '\0';
	for (i = 0; i < TALLY_STATSD_NAME_MAX; i++)
		strcat(line, "n");
	strcat(line, ":1|c");
	assert_int_equal(parse(line), 0);
	memmove(line + 1, line, strlen(line) + 1);
	REFUSED(line, TOO_LONG);
	/* a trailing CR (CRLF lines) is not part of the line */
	assert_int_equal(parse("c:1|c\r"), 0);
	assert_int_equal(L.type, TALLY_STATSD_COUNTER);
	assert_int_equal(parse("c:1|c|#a:b\r"), 0);
	assert_true(tag_is(0, "a:b"));
}

static void
test_numbers(void **state)
{
	double v;
	struct {
		const char *s;
		double v;
	} ok[] = {
		{"0", 0},	 {"-0", -0.0},	     {"1", 1},		 {"+1", 1},
		{"0.1", 0.1},	 {".5", 0.5},	     {"5.", 5},		 {"1e3", 1000},
		{"1E-3", 0.001}, {"2.5e+2", 250},    {"-12.75", -12.75}, {"123456789012345", 123456789012345.0},
		{"0.000001", 1e-6}, {"1234567890123456789012", 1234567890123456789012.0},
		{"1.7976931348623157e308", 1.7976931348623157e308}, {"4.9e-324", 4.9e-324},
		{"0.30000000000000004", 0.30000000000000004}, {"1e-400", 0},
	};
	const char *bad[] = {"", "+", "-", ".", "e5", "1e", "1e+", "nan", "inf", "-inf", "0x10",
			     "1,5", " 1", "1 ", "1e309", "-1e309", "1.2.3", "++1"};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(tally_statsd_number(ok[i].s, (uint32_t)strlen(ok[i].s), &v), 0);
		assert_true(v == ok[i].v);
		assert_true(signbit(v) == signbit(ok[i].v));
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(tally_statsd_number(bad[i], (uint32_t)strlen(bad[i]), &v), -1);
	REFUSED("x:1e309|c", BAD_VALUE);
	REFUSED("x:nan|g", BAD_VALUE);
	REFUSED("x:inf|ms", BAD_VALUE);
	/* the fast path and strtod agree on many short decimals */
	for (i = 0; i < 100000; i++) {
		char s[32];
		int n = snprintf(s, sizeof(s), "%zu.%03zu", i * 7919 % 100000, i % 1000);

		assert_int_equal(tally_statsd_number(s, (uint32_t)n, &v), 0);
		assert_true(v == strtod(s, NULL));
	}
}

/* The decoder, with what it emits and refuses collected. */
struct got {
	struct {
		uint64_t device_id, time_ns;
		uint32_t metric_id;
		uint8_t kind;
		uint32_t weight;
		double v;
	} rec[512];
	uint32_t nrec, nbatch;
	unsigned int bad[64], bad_line[64], nbad;
	char names[64][256];
	uint64_t name_id[64];
	int name_what[64];
	unsigned int nnames;
};

static struct got G;
static unsigned int refuse_names; /* on_name() refuses this many (a full ring) */

static void
emit(void *ctx, const struct tally_wire_hdr **dg, uint16_t n)
{
	uint16_t i, k;

	(void)ctx;
	for (i = 0; i < n; i++) {
		const struct tally_wire_rec *r = (const struct tally_wire_rec *)(dg[i] + 1);

		G.nbatch++;
		for (k = 0; k < dg[i]->count; k++) {
			assert_true(G.nrec < 512);
			G.rec[G.nrec].device_id = dg[i]->device_id;
			G.rec[G.nrec].time_ns = dg[i]->time_ns;
			G.rec[G.nrec].metric_id = r[k].metric_id;
			G.rec[G.nrec].kind = r[k].kind;
			G.rec[G.nrec].weight = 1u + (r[k].reserved[1] | (uint32_t)r[k].reserved[2] << 8);
			G.rec[G.nrec].v = r[k].value;
			G.nrec++;
		}
	}
}

static void
bad(void *ctx, unsigned int reason, uint32_t line)
{
	(void)ctx;
	G.bad[G.nbad] = reason;
	G.bad_line[G.nbad++] = line;
}

static int
on_name(void *ctx, int what, uint64_t id, const char *text, uint32_t len)
{
	(void)ctx;
	if (refuse_names > 0) {
		refuse_names--;
		return -1; /* a full ring: the decoder tells it again at the next line */
	}
	G.name_id[G.nnames] = id;
	G.name_what[G.nnames] = what;
	memcpy(G.names[G.nnames], text, len);
	G.names[G.nnames++][len] = '\0';
	return 0;
}

static struct tally_statsd_dec D;
static uint64_t seen_mem[1 << 16];

static uint32_t
decode(const char *s, const uint8_t *src)
{
	uint32_t n;

	memset(&G, 0, sizeof(G));
	n = tally_statsd_decode(&D, (const uint8_t *)s, (uint32_t)strlen(s), src, 4, 0);
	tally_statsd_flush(&D);
	return n;
}

static int
has_name(int what, const char *text)
{
	unsigned int i;

	for (i = 0; i < G.nnames; i++)
		if (G.name_what[i] == what && strcmp(G.names[i], text) == 0)
			return 1;
	return 0;
}

static void
test_decode(void **state)
{
	static const uint8_t ip[4] = {198, 18, 0, 7};
	uint64_t dev_web, dev_ip;

	(void)state;
	assert_true(tally_statsd_seen_memsize(100) <= sizeof(seen_mem));
	assert_int_equal(tally_statsd_dec_init(&D, "host", 8, 100, seen_mem, emit, bad, on_name,
					       NULL),
			 0);
	/* lines of two devices, CRLF and an empty line, a bad line among them */
	assert_int_equal(decode("req:2|c|@0.5|#host:web1,route:/a,env:prod\r\n"
				"\n"
				"temp:21.5|g|#host:web1\n"
				"bad line\n"
				"temp:-1.5|g|#host:web1\n"
				"lat:10:20|ms|@0.1\n"
				"users:alice|s|#host:web1\n",
				ip),
			 5);
	assert_int_equal(G.nbad, 1);
	assert_int_equal(G.bad[0], TALLY_STATSD_NO_COLON);
	assert_int_equal(G.bad_line[0], 3);
	assert_int_equal(G.nrec, 6);
	/* the series: name and other tags sorted; the device: the host tag, else the sender */
	assert_true(has_name(TALLY_STATSD_NAME_SERIES, "req{env:prod,route:/a}"));
	assert_true(has_name(TALLY_STATSD_NAME_SERIES, "temp"));
	assert_true(has_name(TALLY_STATSD_NAME_SERIES, "lat"));
	assert_true(has_name(TALLY_STATSD_NAME_DEVICE, "web1"));
	assert_true(has_name(TALLY_STATSD_NAME_DEVICE, "198.18.0.7"));
	dev_web = G.rec[0].device_id;
	assert_true(dev_web & TALLY_STATSD_DEVICE_BIT);
	assert_int_equal(G.rec[0].kind, TALLY_KIND_COUNTER);
	assert_true(G.rec[0].v == 4); /* 2 at a rate of 0.5 */
	assert_int_equal(G.rec[1].kind, TALLY_KIND_GAUGE);
	assert_true(G.rec[1].v == 21.5);
	assert_int_equal(G.rec[2].kind, TALLY_KIND_EXT | TALLY_KIND_GAUGE);
	assert_true(G.rec[2].v == -1.5);
	dev_ip = G.rec[3].device_id;
	assert_true(dev_ip != dev_web && (dev_ip & TALLY_STATSD_DEVICE_BIT));
	assert_int_equal(G.rec[3].kind, TALLY_KIND_EXT | TALLY_KIND_HISTOGRAM);
	assert_int_equal(G.rec[3].weight, 10);
	assert_true(G.rec[3].v == 10 && G.rec[4].v == 20);
	assert_int_equal(G.rec[5].kind, TALLY_KIND_DISTINCT);
	assert_int_equal(G.rec[5].device_id, dev_web);
	/* web1, the sender, web1 again: three batches */
	assert_int_equal(G.nbatch, 3);
	/* names are reported once; the same series by another tag order is the same id */
	assert_int_equal(decode("req:1|c|#route:/a,env:prod,host:web1\n", ip), 1);
	assert_int_equal(G.nnames, 0);
	assert_int_equal(G.rec[0].device_id, dev_web);
	/* T<unix> is the batch's time */
	assert_int_equal(decode("req:1|c|#host:web1|T1700000000\nreq:1|c|#host:web1\n", ip), 2);
	assert_true(G.rec[0].time_ns == 1700000000ull * 1000000000ull);
	assert_true(G.rec[1].time_ns == 0);
	assert_int_equal(G.nbatch, 2);
	/* a host tag with no value is refused */
	assert_int_equal(decode("x:1|c|#host:\n", ip), 0);
	assert_int_equal(G.bad[0], TALLY_STATSD_BAD_TAG);
	/* a name of digits alone is refused: digits name a series by its id in Redis fields */
	assert_int_equal(decode("404:1|c\n4x:1|c\n", ip), 1);
	assert_int_equal(G.bad[0], TALLY_STATSD_BAD_NAME);
	/* a name not taken (a full ring) is told again at the next line; the records count */
	refuse_names = 2;
	assert_int_equal(decode("fresh:1|c|#host:newhost\n", ip), 1);
	assert_int_equal(G.nnames, 0);
	assert_int_equal(G.nrec, 1);
	assert_int_equal(decode("fresh:2|c|#host:newhost\n", ip), 1);
	assert_int_equal(G.nnames, 2);
	assert_true(has_name(TALLY_STATSD_NAME_SERIES, "fresh"));
	assert_true(has_name(TALLY_STATSD_NAME_DEVICE, "newhost"));
	assert_int_equal(decode("fresh:3|c|#host:newhost\n", ip), 1);
	assert_int_equal(G.nnames, 0);
}

/* Two series texts whose ids collide: the second is refused, counted, never merged. */
static void
test_decode_collision(void **state)
{
	static uint32_t *ids;
	static const uint8_t ip[4] = {198, 18, 0, 9};
	char a[32], b[32], line[80];
	uint32_t i, j, found = 0;

	(void)state;
	ids = calloc(1u << 20, sizeof(*ids));
	assert_non_null(ids);
	/* a birthday search over names m<i>: about 80,000 of them share a 32-bit id */
	for (i = 1; i < 2000000 && !found; i++) {
		uint32_t id, slot;

		snprintf(a, sizeof(a), "m%u", i);
		id = (uint32_t)tally_murmur64a(a, strlen(a), TALLY_HLL_SEED);
		for (slot = id & ((1u << 20) - 1);; slot = (slot + 1) & ((1u << 20) - 1)) {
			if (ids[slot] == 0) {
				ids[slot] = i;
				break;
			}
			snprintf(b, sizeof(b), "m%u", ids[slot]);
			if ((uint32_t)tally_murmur64a(b, strlen(b), TALLY_HLL_SEED) == id) {
				found = 1;
				break;
			}
		}
	}
	free(ids);
	assert_true(found);
	assert_int_equal(tally_statsd_dec_init(&D, "host", 8, 100, seen_mem, emit, bad, on_name,
					       NULL),
			 0);
	tally_statsd_dec_forget(&D);
	snprintf(line, sizeof(line), "%s:1|c\n", b);
	assert_int_equal(decode(line, ip), 1);
	snprintf(line, sizeof(line), "%s:1|c\n%s:5|c\n", a, b);
	assert_int_equal(decode(line, ip), 1);
	assert_int_equal(G.nbad, 1);
	assert_int_equal(G.bad[0], TALLY_STATSD_COLLISION);
	assert_int_equal(G.bad_line[0], 0);
	assert_true(G.nrec == 1 && G.rec[0].v == 5);
	/* a full set refuses new series, keeps taking known ones */
	assert_int_equal(tally_statsd_dec_init(&D, "host", 8, 2, seen_mem, emit, bad, on_name, NULL),
			 0);
	tally_statsd_dec_forget(&D);
	assert_int_equal(decode("s1:1|c\ns2:1|c\ns3:1|c\ns1:1|c\n", ip), 3);
	assert_int_equal(G.nbad, 1);
	assert_int_equal(G.bad[0], TALLY_STATSD_SERIES_FULL);
	for (j = 0; j < 1; j++)
		assert_int_equal(G.bad_line[j], 2);
}

static void
test_reason_names(void **state)
{
	unsigned int r;

	(void)state;
	for (r = 0; r < TALLY_STATSD_REASON_MAX; r++)
		assert_non_null(tally_statsd_reason_name(r));
	assert_null(tally_statsd_reason_name(TALLY_STATSD_REASON_MAX));
	assert_string_equal(tally_statsd_reason_name(TALLY_STATSD_NO_COLON), "no_colon");
}

/* The sink thread's names: kept once, found, bounded, handed to Redis in order. */
static void
test_names_kept(void **state)
{
	static uint64_t mem[4096];
	struct tally_names n;
	const char *text;
	uint64_t key;
	uint16_t len;
	size_t upto;

	(void)state;
	assert_true(tally_names_memsize(4, 256) <= sizeof(mem));
	assert_int_equal(tally_names_init(&n, mem, 0, 256), -EINVAL);
	assert_int_equal(tally_names_init(&n, mem, 4, 256), 0);
	/* a series (its metric id, 0 included) and a device (2^63 and up) never meet */
	assert_int_equal(tally_names_add(&n, 0, "req{env:prod}", 13), 1);
	upto = n.arena_used;
	assert_int_equal(tally_names_add(&n, TALLY_STATSD_DEVICE_BIT | 0, "web1", 4), 1);
	assert_int_equal(tally_names_add(&n, 0, "req{env:prod}", 13), 0);
	assert_int_equal(tally_names_add(&n, 0, "other", 5), -1);
	assert_int_equal(n.other, 1);
	text = tally_names_find(&n, 0, SIZE_MAX, &len);
	assert_non_null(text);
	assert_int_equal(len, 13);
	assert_memory_equal(text, "req{env:prod}", 13);
	text = tally_names_find(&n, TALLY_STATSD_DEVICE_BIT, SIZE_MAX, &len);
	assert_true(text != NULL && len == 4 && memcmp(text, "web1", 4) == 0);
	/* a window that started before the device was named does not see it */
	assert_null(tally_names_find(&n, TALLY_STATSD_DEVICE_BIT, upto, &len));
	assert_non_null(tally_names_find(&n, 0, upto, &len));
	assert_null(tally_names_find(&n, 7, SIZE_MAX, &len));
	/* to Redis in the order they came, once */
	assert_int_equal(tally_names_next(&n, &key, &text, &len), 1);
	assert_int_equal(key, 0);
	tally_names_written(&n);
	assert_int_equal(tally_names_next(&n, &key, &text, &len), 1);
	assert_true(key == TALLY_STATSD_DEVICE_BIT && len == 4);
	tally_names_written(&n);
	assert_int_equal(tally_names_next(&n, &key, &text, &len), 0);
	tally_names_rewrite(&n);
	assert_int_equal(tally_names_next(&n, &key, &text, &len), 1);
	/* bounded: by count, and by bytes */
	assert_int_equal(tally_names_add(&n, 1, "a", 1), 1);
	assert_int_equal(tally_names_add(&n, 2, "b", 1), 1);
	assert_int_equal(tally_names_add(&n, 3, "c", 1), -2);
	assert_int_equal(n.full, 1);
	assert_int_equal(n.count, 4);
	assert_int_equal(tally_names_init(&n, mem, 4, 64), 0);
	assert_int_equal(tally_names_add(&n, 1, "0123456789012345678901234567890123456789", 40),
			 1);
	assert_int_equal(tally_names_add(&n, 2, "0123456789", 10), -2);
	assert_null(tally_names_find(&n, 2, SIZE_MAX, &len));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_types),	    cmocka_unit_test(test_gauge_deltas),
		cmocka_unit_test(test_rates_and_sections), cmocka_unit_test(test_tags),
		cmocka_unit_test(test_packed),	    cmocka_unit_test(test_names),
		cmocka_unit_test(test_numbers),	    cmocka_unit_test(test_reason_names),
		cmocka_unit_test(test_decode),	    cmocka_unit_test(test_decode_collision),
		cmocka_unit_test(test_names_kept),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
