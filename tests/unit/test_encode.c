/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of the Redis schema v2 command encoding. */
#include <stdio.h>
#include <stdlib.h>

#include "test.h"
#include "tally_sink.h"

#define MAX_CMDS 16

struct captured {
	int n;
	int argc[MAX_CMDS];
	char *argv[MAX_CMDS][TALLY_ENC_MAX_ARGS];
	int has_ref[MAX_CMDS];
	struct tally_enc_ref ref[MAX_CMDS];
};

static void
capture(void *ctx, int argc, const char **argv, const size_t *argvlen,
	const struct tally_enc_ref *ref)
{
	struct captured *c = ctx;
	int i;

	assert_true(c->n < MAX_CMDS);
	c->argc[c->n] = argc;
	c->has_ref[c->n] = ref != NULL;
	if (ref != NULL)
		c->ref[c->n] = *ref;
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
	assert_int_equal(tally_encode_device(&e, t, &pos, 1795798480000ULL, 86400, capture, &c), 3);
	assert_int_equal(pos, 1);
	release(&c);
	assert_int_equal(tally_encode_device(&e, t, &pos, 1795798480000ULL, 86400, capture, &c), 3);
	assert_int_equal(pos, 3);
	assert_int_equal(c.n, 3);

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

	/* the window's data: one chunk from the device's first series */
	assert_true(c.has_ref[0]);
	assert_int_equal(c.ref[0].first, 1);
	assert_int_equal(c.ref[0].entries, 1);
	assert_false(c.has_ref[1]);

	/* latest names the window: no second copy of its fields */
	assert_string_equal(c.argv[2][0], "SET");
	assert_string_equal(c.argv[2][1], "tally:{18446744073709551615}:latest");
	assert_int_equal(c.argc[2], 5);
	assert_string_equal(c.argv[2][2], "1795798480000");
	assert_string_equal(c.argv[2][3], "EX");
	assert_string_equal(c.argv[2][4], "86400");
	assert_false(c.has_ref[2]);

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
	/* two HSET for the window, EXPIRE, SET latest */
	assert_int_equal(tally_encode_device(&e, t, &pos, 1000, 60, capture, &c), 4);
	assert_int_equal(c.argc[0], 2 + 10 * TALLY_ENC_METRICS_PER_CMD);
	assert_int_equal(c.argc[1], 2 + 10 * 6);
	assert_string_equal(field(&c, 1, "70:sum"), "70");
	assert_int_equal(c.ref[1].first, TALLY_ENC_METRICS_PER_CMD);
	assert_string_equal(c.argv[2][0], "EXPIRE");
	assert_string_equal(c.argv[3][0], "SET");
	assert_string_equal(c.argv[3][2], "1000");
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
	/* integral values take a path of their own: it must print exactly what %.17g prints */
	{
		const double ints[] = {0.0,
				       -0.0,
				       1.0,
				       -1.0,
				       7.0,
				       -123456.0,
				       1e15,
				       -1e15,
				       9007199254740991.0,
				       -9007199254740991.0,
				       9007199254740992.0,
				       1e17,
				       4294967296.0};
		char want[48];

		for (i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
			snprintf(want, sizeof(want), "%.17g", ints[i]);
			assert_int_equal(tally_fmt_double(buf, sizeof(buf), ints[i]),
					 (int)strlen(want));
			assert_string_equal(buf, want);
		}
	}
}

/* Index of argument a in command cmd, or -1. */
static int
arg_index(const struct captured *c, int cmd, const char *a)
{
	int i;

	for (i = 0; i < c->argc[cmd]; i++)
		if (strcmp(c->argv[cmd][i], a) == 0)
			return i;
	return -1;
}

static void
test_merge_commands(void **state)
{
	static struct tally_encoder e;
	struct captured c = {0};
	void *raw;
	struct tally_table *t = test_table_new(256, &raw);
	uint32_t pos = 0, m;
	struct tally_enc_entry ent;
	int a;

	tally_table_add(t, 7, tally_hash_device(7), 3, 1, 0.1, 42);
	tally_table_add(t, 7, tally_hash_device(7), 3, 1, 2.5, 41);
	for (m = 10; m < 10 + TALLY_ENC_METRICS_PER_CMD; m++)
		tally_table_add(t, 7, tally_hash_device(7), m, 2, m, 5);
	tally_table_add(t, 8, tally_hash_device(8), 1, 1, 4, 9);
	tally_table_sort(t);
	/* device 7 has 65 metrics: two chunks; device 8 one: three entries in one call */
	assert_int_equal(tally_encode_merge(&e, t, &pos, 60000, 3600, "east:1700", 0, capture, &c),
			 3);
	assert_int_equal(pos, t->series);
	assert_int_equal(c.n, 1);
	assert_true(c.has_ref[0]);
	assert_int_equal(c.ref[0].first, 0);
	assert_int_equal(c.ref[0].entries, 3);
	assert_string_equal(c.argv[0][0], "FCALL");
	assert_string_equal(c.argv[0][1], "tally_merge2");
	assert_string_equal(c.argv[0][2], "6");
	assert_string_equal(c.argv[0][3], "tally:{7}:60000");
	assert_string_equal(c.argv[0][4], "tally:{7}:latest");
	assert_string_equal(c.argv[0][5], "tally:{7}:60000");
	assert_string_equal(c.argv[0][6], "tally:{7}:latest");
	assert_string_equal(c.argv[0][7], "tally:{8}:60000");
	assert_string_equal(c.argv[0][8], "tally:{8}:latest");
	assert_string_equal(c.argv[0][9], "3600");
	assert_string_equal(c.argv[0][10], "60000");
	assert_string_equal(c.argv[0][11], "_applied:east:1700");
	/* entry 1: chunk 0, 64 metrics x 12 arguments; metric 3 first */
	assert_string_equal(c.argv[0][12], "0");
	assert_string_equal(c.argv[0][13], "768");
	assert_string_equal(c.argv[0][14], "3:count");
	assert_string_equal(c.argv[0][15], "2");
	assert_string_equal(c.argv[0][16], "3:sum");
	assert_string_equal(c.argv[0][17], "2.6000000000000001");
	assert_string_equal(c.argv[0][19], "0.10000000000000001");
	assert_string_equal(c.argv[0][21], "2.5");
	assert_string_equal(c.argv[0][22], "3:last");
	assert_string_equal(c.argv[0][23], "0.10000000000000001");
	assert_string_equal(c.argv[0][24], "3:ts");
	assert_string_equal(c.argv[0][25], "00000000000000000042");
	/* entry 2: chunk 1 of device 7, its 65th metric; entry 3: device 8 */
	a = 14 + 768;
	assert_string_equal(c.argv[0][a], "1");
	assert_string_equal(c.argv[0][a + 1], "12");
	assert_string_equal(c.argv[0][a + 2], "73:count");
	assert_string_equal(c.argv[0][a + 14], "0");
	assert_string_equal(c.argv[0][a + 16], "1:count");
	assert_int_equal(c.argc[0], a + 16 + 12);
	assert_int_equal(arg_index(&c, 0, "1:ts"), c.argc[0] - 2);
	release(&c);

	/* the entries a reply is put down to */
	tally_enc_entry(t, TALLY_ENC_METRICS_PER_CMD, &ent);
	assert_int_equal(ent.device_id, 7);
	assert_int_equal(ent.chunk, 1);
	assert_int_equal(ent.n, 1);
	tally_enc_entry(t, TALLY_ENC_METRICS_PER_CMD + 1, &ent);
	assert_int_equal(ent.device_id, 8);
	assert_int_equal(ent.chunk, 0);

	/* One device per call (a cluster): device 7's chunks, then device 8. */
	pos = 0;
	assert_int_equal(
		tally_encode_merge(&e, t, &pos, 60000, 3600,
				   "ip-10-0-12-34.eu-west-1.compute.internal:1795798480123:"
				   "4242:00c0ffee00c0ffee",
				   1, capture, &c),
		2);
	assert_int_equal(pos, TALLY_ENC_METRICS_PER_CMD + 1);
	assert_string_equal(c.argv[0][2], "4");
	/* A long instance name keeps the whole id. */
	assert_string_equal(c.argv[0][9], "_applied:ip-10-0-12-34.eu-west-1.compute.internal:"
					  "1795798480123:4242:00c0ffee00c0ffee");
	assert_int_equal(tally_encode_merge(&e, t, &pos, 60000, 3600, "x", 1, capture, &c), 1);
	assert_string_equal(c.argv[1][3], "tally:{8}:60000");
	assert_int_equal(c.ref[1].first, TALLY_ENC_METRICS_PER_CMD + 1);
	assert_int_equal(tally_encode_merge(&e, t, &pos, 60000, 3600, "x", 1, capture, &c), 0);
	release(&c);
	test_table_free(raw);
	/* the function library is embedded and declares itself */
	assert_memory_equal(tally_merge_lua, "#!lua name=tally2\n", 18);
	assert_non_null(strstr(tally_merge_lua, "register_function('tally_merge2'"));
}

static void
test_merge_call_bounds(void **state)
{
	static struct tally_encoder e;
	struct captured c = {0};
	void *raw;
	struct tally_table *t = test_table_new(4096, &raw);
	uint32_t pos = 0, d, m, calls = 0, entries = 0, n;

	/* 40 devices of 8 metrics: 16 entries per call at most */
	for (d = 1; d <= 40; d++)
		for (m = 1; m <= 8; m++)
			add(t, d, m, m, 1);
	tally_table_sort(t);
	while ((n = tally_encode_merge(&e, t, &pos, 0, 60, "p", 0, capture, &c)) > 0) {
		assert_true(n <= TALLY_ENC_ENTRIES_PER_CALL);
		assert_true(c.argc[calls] <= TALLY_ENC_MAX_ARGS);
		entries += n;
		calls++;
	}
	assert_int_equal(entries, 40);
	assert_int_equal(calls, 3);
	release(&c);
	tally_table_reset(t);
	/* devices of 64 metrics: a call holds what its arguments allow (2 of 770 + 6) */
	for (d = 1; d <= 3; d++)
		for (m = 1; m <= 64; m++)
			add(t, d, m, m, 1);
	tally_table_sort(t);
	pos = 0;
	assert_int_equal(tally_encode_merge(&e, t, &pos, 0, 60, "p", 0, capture, &c), 2);
	assert_true(c.argc[0] <= TALLY_ENC_MAX_ARGS);
	assert_int_equal(tally_encode_merge(&e, t, &pos, 0, 60, "p", 0, capture, &c), 1);
	release(&c);
	test_table_free(raw);
}

/* The longest ids make the longest keys: none is cut (a cut one could meet another). */
static void
test_hll_keys_whole(void **state)
{
	static struct tally_encoder e;
	struct captured c = {0};
	void *raw;
	struct tally_table *t = test_table_new(64, &raw);
	uint64_t dev = UINT64_MAX, start = UINT64_MAX, e1 = 1, e2 = 2;
	double v;
	uint32_t pos = 0;

	(void)state;
	memcpy(&v, &e1, sizeof(v));
	tally_table_add(t, dev, tally_hash_device(dev), UINT32_MAX, TALLY_KIND_DISTINCT, v, 1);
	memcpy(&v, &e2, sizeof(v));
	tally_table_add(t, dev, tally_hash_device(dev), UINT32_MAX - 1, TALLY_KIND_DISTINCT, v, 1);
	tally_table_sort(t);
	assert_int_equal(tally_encode_hll(&e, t, &pos, t->series, start, 60, 1, capture, &c), 1);
	assert_int_equal(c.n, 1);
	assert_string_equal(c.argv[0][3], "tally:{18446744073709551615}:18446744073709551615:hll:tmp");
	assert_string_equal(c.argv[0][4],
			    "tally:{18446744073709551615}:18446744073709551615:hll:4294967294");
	assert_string_equal(c.argv[0][5],
			    "tally:{18446744073709551615}:18446744073709551615:hll:4294967295");
	release(&c);
	/* plain writes: SET of the whole key */
	pos = 0;
	assert_int_equal(tally_encode_hll(&e, t, &pos, t->series, start, 60, 0, capture, &c), 1);
	assert_string_equal(c.argv[0][1],
			    "tally:{18446744073709551615}:18446744073709551615:hll:4294967294");
	release(&c);
	test_free(raw);
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
	/* the transaction holds one key (one slot); the window's start is set after it */
	assert_string_equal(c.argv[3][0], "EXEC");
	assert_string_equal(c.argv[4][0], "SET");
	assert_string_equal(c.argv[4][1], "tally:top:window");
	assert_string_equal(c.argv[4][2], "60000");
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
		cmocka_unit_test(test_merge_call_bounds),
		cmocka_unit_test(test_top),
		cmocka_unit_test(test_hll_keys_whole),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
