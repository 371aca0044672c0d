/* SPDX-License-Identifier: BSD-3-Clause */
/* The statsd / DogStatsD line grammar: every type, rates, tags, packed values, refusals. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_types),	    cmocka_unit_test(test_gauge_deltas),
		cmocka_unit_test(test_rates_and_sections), cmocka_unit_test(test_tags),
		cmocka_unit_test(test_packed),	    cmocka_unit_test(test_names),
		cmocka_unit_test(test_numbers),	    cmocka_unit_test(test_reason_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
