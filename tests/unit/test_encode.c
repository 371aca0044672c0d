/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of the Redis schema v1 command encoding. */
#include <stdio.h>
#include <stdlib.h>

#include "test.h"
#include "tally_sink.h"

#define MAX_CMDS 16

struct captured {
	int n;
	int argc[MAX_CMDS];
	char *argv[MAX_CMDS][TALLY_ENC_MAX_ARGS];
};

static void
capture(void *ctx, int argc, const char **argv, const size_t *argvlen)
{
	struct captured *c = ctx;
	int i;

	assert_true(c->n < MAX_CMDS);
	c->argc[c->n] = argc;
	for (i = 0; i < argc; i++) {
		c->argv[c->n][i] = test_malloc(argvlen[i] + 1);
		memcpy(c->argv[c->n][i], argv[i], argvlen[i]);
		c->argv[c->n][i][argvlen[i]] = '\0';
	}
	c->n++;
}

static void
release(struct captured *c)
{
	int i, k;

	for (i = 0; i < c->n; i++)
		for (k = 0; k < c->argc[i]; k++)
			test_free(c->argv[i][k]);
	c->n = 0;
}

/* Value of a field in an HSET command, or NULL. */
static const char *
field(const struct captured *c, int cmd, const char *name)
{
	int i;

	for (i = 2; i + 1 < c->argc[cmd]; i += 2)
		if (strcmp(c->argv[cmd][i], name) == 0)
			return c->argv[cmd][i + 1];
	return NULL;
}

static void
add(struct tally_table *t, uint64_t dev, uint32_t metric, double v, uint64_t ts)
{
	tally_table_add(t, dev, tally_hash_device(dev), metric, 1, v, ts);
}

static void
test_device_commands(void **state)
{
	static struct tally_encoder e;
	struct captured c = {0};
	void *raw;
	struct tally_table *t = test_table_new(64, &raw);
	uint32_t pos = 0;

	add(t, 18446744073709551615ULL, 7, 0.1, 1);
	add(t, 18446744073709551615ULL, 7, 2.5, 2);
	add(t, 18446744073709551615ULL, 3, -1e300, 1);
	add(t, 5, 1, 1, 1);
	tally_table_sort(t);
	/* device 5 first */
	assert_int_equal(tally_encode_device(&e, t, &pos, 1795798480000ULL, 86400, capture, &c), 4);
	assert_int_equal(pos, 1);
	release(&c);
	assert_int_equal(tally_encode_device(&e, t, &pos, 1795798480000ULL, 86400, capture, &c), 4);
	assert_int_equal(pos, 3);
	assert_int_equal(c.n, 4);

	assert_string_equal(c.argv[0][0], "HSET");
	assert_string_equal(c.argv[0][1], "tally:{18446744073709551615}:1795798480000");
	assert_int_equal(c.argc[0], 2 + 2 * 5 * 2);
	assert_string_equal(field(&c, 0, "7:count"), "2");
	assert_string_equal(field(&c, 0, "7:sum"), "2.6000000000000001");
	assert_true(strtod(field(&c, 0, "7:sum"), NULL) == 0.1 + 2.5);
	assert_string_equal(field(&c, 0, "7:min"), "0.10000000000000001");
	assert_true(strtod(field(&c, 0, "7:min"), NULL) == 0.1);
	assert_string_equal(field(&c, 0, "7:max"), "2.5");
	assert_string_equal(field(&c, 0, "7:last"), "2.5");
	assert_string_equal(field(&c, 0, "3:min"), "-1.0000000000000001e+300");
	assert_true(strtod(field(&c, 0, "3:min"), NULL) == -1e300);
	/* metrics in order: 3 before 7 */
	assert_string_equal(c.argv[0][2], "3:count");

	assert_string_equal(c.argv[1][0], "EXPIRE");
	assert_string_equal(c.argv[1][1], "tally:{18446744073709551615}:1795798480000");
	assert_string_equal(c.argv[1][2], "86400");

	assert_string_equal(c.argv[2][0], "HSET");
	assert_string_equal(c.argv[2][1], "tally:{18446744073709551615}:latest");
	assert_string_equal(field(&c, 2, "window"), "1795798480000");
	assert_string_equal(field(&c, 2, "7:last"), "2.5");
	assert_string_equal(c.argv[3][0], "EXPIRE");
	assert_string_equal(c.argv[3][1], "tally:{18446744073709551615}:latest");

	/* past the end: nothing */
	assert_int_equal(tally_encode_device(&e, t, &pos, 1, 1, capture, &c), 0);
	release(&c);
	test_table_free(raw);
}

static void
test_many_metrics_are_chunked(void **state)
{
	static struct tally_encoder e;
	struct captured c = {0};
	void *raw;
	struct tally_table *t = test_table_new(256, &raw);
	uint32_t pos = 0, m;

	for (m = 1; m <= TALLY_ENC_METRICS_PER_CMD + 6; m++)
		add(t, 9, m, m, 1);
	tally_table_sort(t);
	/* two HSET for the window, EXPIRE, two HSET for latest, EXPIRE */
	assert_int_equal(tally_encode_device(&e, t, &pos, 1000, 60, capture, &c), 6);
	assert_int_equal(c.argc[0], 2 + 10 * TALLY_ENC_METRICS_PER_CMD);
	assert_int_equal(c.argc[1], 2 + 10 * 6);
	assert_string_equal(field(&c, 1, "70:sum"), "70");
	assert_string_equal(c.argv[2][0], "EXPIRE");
	assert_string_equal(field(&c, 3, "window"), "1000");
	assert_null(field(&c, 4, "window"));
	release(&c);
	test_table_free(raw);
}

static void
test_double_round_trip(void **state)
{
	const double v[] = {0.0, -0.0, 1.0 / 3, 1e-310, 1.7976931348623157e308, -123456.789,
			    9007199254740993.0};
	char buf[48];
	size_t i;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		tally_fmt_double(buf, sizeof(buf), v[i]);
		assert_memory_equal(&(double){strtod(buf, NULL)}, &v[i], sizeof(double));
	}
	tally_fmt_double(buf, sizeof(buf), 42.0);
	assert_string_equal(buf, "42");
}

static void
test_merge_commands(void **state)
{
	static struct tally_encoder e;
	struct captured c = {0};
	void *raw;
	struct tally_table *t = test_table_new(256, &raw);
	uint32_t pos = 0, m;

	tally_table_add(t, 7, tally_hash_device(7), 3, 1, 0.1, 42);
	tally_table_add(t, 7, tally_hash_device(7), 3, 1, 2.5, 41);
	for (m = 10; m < 10 + TALLY_ENC_METRICS_PER_CMD; m++)
		tally_table_add(t, 7, tally_hash_device(7), m, 2, m, 5);
	tally_table_sort(t);
	/* 65 metrics: two FCALLs, the second with one metric */
	assert_int_equal(tally_encode_device_merge(&e, t, &pos, 60000, 3600, "east:1700", capture,
						   &c), 2);
	assert_int_equal(pos, t->series);
	assert_string_equal(c.argv[0][0], "FCALL");
	assert_string_equal(c.argv[0][1], "tally_merge");
	assert_string_equal(c.argv[0][2], "3");
	assert_string_equal(c.argv[0][3], "tally:{7}:60000");
	assert_string_equal(c.argv[0][4], "tally:{7}:60000:meta");
	assert_string_equal(c.argv[0][5], "tally:{7}:latest");
	assert_string_equal(c.argv[0][6], "east:1700:0");
	assert_string_equal(c.argv[1][6], "east:1700:1");
	assert_string_equal(c.argv[0][7], "3600");
	assert_string_equal(c.argv[0][8], "60000");
	assert_int_equal(c.argc[0], 9 + 7 * TALLY_ENC_METRICS_PER_CMD);
	assert_int_equal(c.argc[1], 9 + 7);
	/* metric 3 first: id, count, sum, min, max, last, time of last (20 digits) */
	assert_string_equal(c.argv[0][9], "3");
	assert_string_equal(c.argv[0][10], "2");
	assert_string_equal(c.argv[0][11], "2.6000000000000001");
	assert_string_equal(c.argv[0][12], "0.10000000000000001");
	assert_string_equal(c.argv[0][13], "2.5");
	assert_string_equal(c.argv[0][14], "0.10000000000000001");
	assert_string_equal(c.argv[0][15], "00000000000000000042");
	release(&c);
	/* A long instance name keeps the whole id, run start and chunk included. */
	pos = 0;
	assert_int_equal(tally_encode_device_merge(&e, t, &pos, 60000, 3600,
						   "ip-10-0-12-34.eu-west-1.compute.internal:1795798480123",
						   capture, &c), 2);
	assert_string_equal(c.argv[1][6],
			    "ip-10-0-12-34.eu-west-1.compute.internal:1795798480123:1");
	release(&c);
	test_table_free(raw);
	/* the function library is embedded and declares itself */
	assert_memory_equal(tally_merge_lua, "#!lua name=tally\n", 17);
	assert_non_null(strstr(tally_merge_lua, "register_function('tally_merge'"));
}

static void
test_top(void **state)
{
	static struct tally_encoder e;
	struct tally_top top;
	struct captured c = {0};
	uint64_t d;
	int i, found = 0;

	tally_top_reset(&top);
	for (d = 1; d <= 1000; d++)
		tally_top_add(&top, d, d % 500); /* the heaviest: 499 and 999 with 499 records */
	tally_top_add(&top, 5000, 100000);
	assert_int_equal(top.n, TALLY_TOP_N);
	for (i = 0; i < (int)top.n; i++) {
		assert_true(top.e[i].records >= 450 || top.e[i].device_id == 5000);
		found |= top.e[i].device_id == 5000;
	}
	assert_true(found);
	assert_int_equal(top.e[0].records, 450); /* heap root: the lightest kept */

	assert_int_equal(tally_encode_top(&e, &top, 60000, capture, &c), 5);
	assert_string_equal(c.argv[0][0], "MULTI");
	assert_string_equal(c.argv[1][0], "DEL");
	assert_string_equal(c.argv[1][1], "tally:top");
	assert_string_equal(c.argv[2][0], "ZADD");
	assert_int_equal(c.argc[2], 2 + 2 * TALLY_TOP_N);
	assert_string_equal(c.argv[3][0], "SET");
	assert_string_equal(c.argv[3][1], "tally:top:window");
	assert_string_equal(c.argv[3][2], "60000");
	assert_string_equal(c.argv[4][0], "EXEC");
	release(&c);

	tally_top_reset(&top);
	assert_int_equal(tally_encode_top(&e, &top, 0, capture, &c), 4); /* no ZADD when empty */
	release(&c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_device_commands),
		cmocka_unit_test(test_many_metrics_are_chunked),
		cmocka_unit_test(test_double_round_trip),
		cmocka_unit_test(test_merge_commands),
		cmocka_unit_test(test_top),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
