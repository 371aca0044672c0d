/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of the metric catalog: the [metrics] format, its errors by line, lookups, limits. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "test.h"
#include "tally_catalog.h"

static char err[512];

/* text in a fresh file; the path is test_malloc'd (free with drop()). */
static char *
write_file(const char *text)
{
	char *path = test_malloc(64);
	FILE *f;
	int fd;

	strcpy(path, "/tmp/tally_catalog_XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static void
drop(char *path)
{
	unlink(path);
	test_free(path);
}

static struct tally_catalog *
load_text(const char *text, char **path)
{
	*path = write_file(text);
	err[0] = '\0';
	return tally_catalog_load(*path, err, sizeof(err));
}

static void
test_good_file(void **state)
{
	static const char text[] =
		"; a sample with another section, comments and blanks\n"
		"[tally]\n"
		"window-ms = 1000\n"
		"17 = ignored gauge\n"
		"\n"
		"[ metrics ]   ; the catalog\n"
		"# ids in any order\n"
		"17 = cpu.temp celsius gauge\n"
		"  1=requests count counter   ; inline comment\n"
		"3\t=\tlatency.ms\tms\thistogram\n"
		"4 = users - distinct\n"
		"65536 = big/id:1 gauge # no unit\n"
		"4294967295 = last_one B counter\n"
		"0 = zero counter\n"
		"[other]\n"
		"5 = not read\n";
	const struct tally_catalog_entry *e;
	struct tally_catalog *c;
	char value[TALLY_CATALOG_VALUE_MAX];
	char *path;

	c = load_text(text, &path);
	assert_non_null(c);
	assert_int_equal(tally_catalog_count(c), 7);
	/* in ascending id order */
	assert_int_equal(tally_catalog_at(c, 0)->id, 0);
	assert_int_equal(tally_catalog_at(c, 1)->id, 1);
	assert_int_equal(tally_catalog_at(c, 2)->id, 3);
	assert_int_equal(tally_catalog_at(c, 3)->id, 4);
	assert_int_equal(tally_catalog_at(c, 4)->id, 17);
	assert_int_equal(tally_catalog_at(c, 5)->id, 65536);
	assert_int_equal(tally_catalog_at(c, 6)->id, 4294967295u);
	assert_null(tally_catalog_at(c, 7));

	e = tally_catalog_find(c, 17);
	assert_non_null(e);
	assert_string_equal(e->name, "cpu.temp");
	assert_string_equal(e->unit, "celsius");
	assert_int_equal(e->kind, TALLY_KIND_GAUGE);
	e = tally_catalog_find(c, 1);
	assert_string_equal(e->name, "requests");
	assert_string_equal(e->unit, "count");
	assert_int_equal(e->kind, TALLY_KIND_COUNTER);
	e = tally_catalog_find(c, 3);
	assert_string_equal(e->name, "latency.ms");
	assert_int_equal(e->kind, TALLY_KIND_HISTOGRAM);
	e = tally_catalog_find(c, 4);
	assert_string_equal(e->unit, "");
	assert_int_equal(e->kind, TALLY_KIND_DISTINCT);
	e = tally_catalog_find(c, 65536);
	assert_string_equal(e->name, "big/id:1");
	assert_string_equal(e->unit, "");
	assert_string_equal(tally_catalog_find(c, 0)->name, "zero");
	assert_string_equal(tally_catalog_find(c, 4294967295u)->unit, "B");
	assert_null(tally_catalog_find(c, 2));
	assert_null(tally_catalog_find(c, 5));
	assert_null(tally_catalog_find(c, 65537));

	assert_int_equal(tally_catalog_find_name(c, "cpu.temp")->id, 17);
	assert_int_equal(tally_catalog_find_name(c, "last_one")->id, 4294967295u);
	assert_null(tally_catalog_find_name(c, "ignored"));
	assert_null(tally_catalog_find_name(c, "cpu"));
	assert_null(tally_catalog_find_name(c, ""));

	/* the fast path: dense below 65536, a binary search above */
	assert_int_equal(tally_catalog_kind(c, 17), TALLY_KIND_GAUGE);
	assert_int_equal(tally_catalog_kind(c, 0), TALLY_KIND_COUNTER);
	assert_int_equal(tally_catalog_kind(c, 2), TALLY_KIND_NONE);
	assert_int_equal(tally_catalog_kind(c, 65535), TALLY_KIND_NONE);
	assert_int_equal(tally_catalog_kind(c, 65536), TALLY_KIND_GAUGE);
	assert_int_equal(tally_catalog_kind(c, 65537), TALLY_KIND_NONE);
	assert_int_equal(tally_catalog_kind(c, 4294967295u), TALLY_KIND_COUNTER);
	assert_int_equal(tally_catalog_kind(c, 4294967294u), TALLY_KIND_NONE);

	/* tally:catalog's values */
	tally_catalog_value(tally_catalog_find(c, 17), value, sizeof(value));
	assert_string_equal(value, "cpu.temp celsius gauge");
	tally_catalog_value(tally_catalog_find(c, 4), value, sizeof(value));
	assert_string_equal(value, "users - distinct");
	tally_catalog_free(c);
	drop(path);
}

/* Every error is one line naming the file and the line, and what is wrong there. */
static void
test_errors(void **state)
{
	static const struct {
		const char *text;
		const char *want;
	} bad[] = {
		{"[metrics]\nx = a gauge\n", ":2: bad id 'x'"},
		{"[metrics]\n4294967296 = a gauge\n", ":2: bad id '4294967296'"},
		{"[metrics]\n-1 = a gauge\n", ":2: bad id '-1'"},
		{"[metrics]\n+1 = a gauge\n", ":2: bad id '+1'"},
		{"[metrics]\n= a gauge\n", ":2: bad id ''"},
		{"[metrics]\n1 2 = a gauge\n", ":2: bad id '1 2'"},
		{"[metrics]\n1 = a gauge\n\n1 = b counter\n",
		 ":4: id 1 is already given on line 2"},
		{"[metrics]\n1 = a gauge\n2 = a counter\n",
		 ":3: name 'a' is already given on line 2 (id 1)"},
		{"[metrics]\n1 = a!b gauge\n", ":2: id 1: bad name 'a!b'"},
		{"[metrics]\n1 = 123 gauge\n", ":2: id 1: bad name '123': all digits"},
		{"[metrics]\n1 = -x gauge\n", ":2: id 1: bad name '-x': starts with '-'"},
		{"[metrics]\n1 = "
		 "a2345678901234567890123456789012345678901234567890123456789012345 gauge\n",
		 ":2: id 1: bad name 'a234"},
		{"[metrics]\n1 = a b!c gauge\n", ":2: id 1: bad unit 'b!c'"},
		{"[metrics]\n1 = a b2345678901234567 gauge\n", ":2: id 1: bad unit 'b234"},
		{"[metrics]\n1 = a gauges\n", ":2: id 1: unknown kind 'gauges'"},
		{"[metrics]\n1 = a celsius Gauge\n", ":2: id 1: unknown kind 'Gauge'"},
		{"[metrics]\n1 = cpu.temp\n", ":2: id 1: missing the kind after 'cpu.temp'"},
		{"[metrics]\n1 = gauge\n", ":2: id 1: missing the name before the kind 'gauge'"},
		{"[metrics]\n1 =   ; nothing\n", ":2: id 1: missing the name and the kind"},
		{"[metrics]\n1 = a b gauge extra words\n", ":2: id 1: extra words 'extra words'"},
		{"[metrics]\n1 a gauge\n", ":2: '1 a gauge' is not ID = NAME [UNIT] KIND"},
		{"[metrics]\n1 = a gauge\n[tally]\n[metrics]\n", ":4: section [metrics] again "
								 "(first on line 1)"},
		{"[tally]\n1 = a gauge\n", ": no [metrics] section"},
		{"", ": no [metrics] section"},
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *path;
		struct tally_catalog *c = load_text(bad[i].text, &path);

		if (c != NULL || strstr(err, bad[i].want) == NULL ||
		    strncmp(err, path, strlen(path)) != 0 || strchr(err, '\n') != NULL)
			fail_msg("case %zu: %s: want '%s' after the path, got '%s'", i, bad[i].text,
				 bad[i].want, err);
		drop(path);
	}
	err[0] = '\0';
	assert_null(tally_catalog_load("/nonexistent/catalog.ini", err, sizeof(err)));
	assert_non_null(strstr(err, "cannot read /nonexistent/catalog.ini: No such file"));
}

/* The lengths at their limits, and ids at both ends. */
static void
test_limits(void **state)
{
	char name64[TALLY_CATALOG_NAME_MAX + 1], unit16[TALLY_CATALOG_UNIT_MAX + 1];
	char text[256], value[TALLY_CATALOG_VALUE_MAX];
	const struct tally_catalog_entry *e;
	struct tally_catalog *c;
	char *path;
	int len;

	memset(name64, 'n', TALLY_CATALOG_NAME_MAX);
	name64[TALLY_CATALOG_NAME_MAX] = '\0';
	memset(unit16, 'u', TALLY_CATALOG_UNIT_MAX);
	unit16[TALLY_CATALOG_UNIT_MAX] = '\0';
	snprintf(text, sizeof(text), "[metrics]\n4294967295 = %s %s histogram\n0 = 1a counter\n",
		 name64, unit16);
	c = load_text(text, &path);
	assert_non_null(c);
	e = tally_catalog_find(c, 4294967295u);
	assert_string_equal(e->name, name64);
	assert_string_equal(e->unit, unit16);
	/* the longest value fits TALLY_CATALOG_VALUE_MAX */
	len = tally_catalog_value(e, value, sizeof(value));
	assert_int_equal(len, TALLY_CATALOG_VALUE_MAX - 1);
	assert_int_equal((int)strlen(value), len);
	assert_string_equal(tally_catalog_find(c, 0)->name, "1a");
	tally_catalog_free(c);
	drop(path);
}

/* A file of n entries (ids i * step + base), each "m<i> u gauge|histogram". */
static char *
write_many(uint32_t n, uint32_t step, uint32_t base)
{
	char *path = write_file("");
	FILE *f = fopen(path, "w");
	uint32_t i;

	assert_non_null(f);
	fputs("[metrics]\n", f);
	for (i = 0; i < n; i++)
		fprintf(f, "%u = m%u u %s\n", i * step + base, i, i % 3 ? "gauge" : "histogram");
	fclose(f);
	return path;
}

/*
 * 65,536 entries, ids i * 65535 + 3 (all but the first above the dense range, the last near
 * 2^32): every lookup; one entry more is refused.
 */
static void
test_many(void **state)
{
	const uint32_t n = TALLY_CATALOG_MAX, step = 65535;
	uint8_t *kinds = test_malloc(TALLY_CATALOG_DENSE_IDS);
	struct tally_catalog *c;
	char name[16];
	char *path = write_many(n, step, 3);
	uint32_t i;

	err[0] = '\0';
	c = tally_catalog_load(path, err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(tally_catalog_count(c), n);
	for (i = 0; i < n; i++) {
		uint32_t id = i * step + 3;
		uint8_t want = i % 3 ? TALLY_KIND_GAUGE : TALLY_KIND_HISTOGRAM;
		const struct tally_catalog_entry *e;

		snprintf(name, sizeof(name), "m%u", i);
		if (tally_catalog_kind(c, id) != want || tally_catalog_kind(c, id + 1) != 0)
			fail_msg("kind of id %u", id);
		e = tally_catalog_find(c, id);
		if (e == NULL || e->id != id || strcmp(e->name, name) != 0)
			fail_msg("find %u", id);
		e = tally_catalog_find_name(c, name);
		if (e == NULL || e->id != id)
			fail_msg("find_name %s", name);
		if (tally_catalog_at(c, i)->id != id)
			fail_msg("at %u", i);
	}
	/* only id 3 is below 65536 */
	tally_catalog_kinds(c, kinds, TALLY_CATALOG_DENSE_IDS);
	for (i = 0; i < TALLY_CATALOG_DENSE_IDS; i++)
		if (kinds[i] != (i == 3 ? TALLY_KIND_HISTOGRAM : 0))
			fail_msg("kinds[%u] = %u", i, kinds[i]);
	tally_catalog_free(c);
	drop(path);

	path = write_many(n + 1, 1, 0);
	err[0] = '\0';
	assert_null(tally_catalog_load(path, err, sizeof(err)));
	snprintf(name, sizeof(name), ":%u: ", n + 2);
	assert_non_null(strstr(err, name));
	assert_non_null(strstr(err, "more than 65536 metrics"));
	drop(path);
	test_free(kinds);
}

/* Dense ids: the kinds map a worker keeps equals tally_catalog_kind() everywhere. */
static void
test_dense_map(void **state)
{
	uint8_t *kinds = test_malloc(TALLY_CATALOG_DENSE_IDS + 8);
	struct tally_catalog *c;
	char *path = write_many(1000, 61, 0);
	uint32_t i;

	err[0] = '\0';
	c = tally_catalog_load(path, err, sizeof(err));
	assert_non_null(c);
	memset(kinds, 0xaa, TALLY_CATALOG_DENSE_IDS + 8);
	tally_catalog_kinds(c, kinds, TALLY_CATALOG_DENSE_IDS);
	for (i = 0; i < TALLY_CATALOG_DENSE_IDS; i++)
		if (kinds[i] != tally_catalog_kind(c, i))
			fail_msg("kinds[%u] %u, kind %u", i, kinds[i], tally_catalog_kind(c, i));
	assert_int_equal(kinds[TALLY_CATALOG_DENSE_IDS], 0xaa); /* not written past n */
	tally_catalog_kinds(c, kinds, 62); /* a smaller map: ids 0 and 61 only */
	assert_int_equal(kinds[0], TALLY_KIND_HISTOGRAM);
	assert_int_equal(kinds[61], TALLY_KIND_GAUGE);
	assert_int_equal(kinds[62], tally_catalog_kind(c, 62)); /* untouched */
	tally_catalog_free(c);
	drop(path);
	test_free(kinds);
}

/* The entry parser alone: what tally-query reads back from tally:catalog. */
static void
test_parse_entry(void **state)
{
	struct tally_catalog_entry e;
	char why[256], value[TALLY_CATALOG_VALUE_MAX];
	const char *s;

	s = "cpu.temp celsius gauge";
	assert_int_equal(tally_catalog_parse_entry(s, strlen(s), &e, why, sizeof(why)), 0);
	assert_string_equal(e.name, "cpu.temp");
	assert_string_equal(e.unit, "celsius");
	assert_int_equal(e.kind, TALLY_KIND_GAUGE);
	tally_catalog_value(&e, value, sizeof(value));
	assert_string_equal(value, s);
	s = "users - distinct";
	assert_int_equal(tally_catalog_parse_entry(s, strlen(s), &e, why, sizeof(why)), 0);
	assert_string_equal(e.unit, "");
	tally_catalog_value(&e, value, sizeof(value));
	assert_string_equal(value, s);
	/* only len bytes are read */
	s = "requests counter garbage";
	assert_int_equal(tally_catalog_parse_entry(s, 16, &e, why, sizeof(why)), 0);
	assert_string_equal(e.name, "requests");
	assert_int_equal(e.kind, TALLY_KIND_COUNTER);
	s = "a b c d";
	assert_int_equal(tally_catalog_parse_entry(s, strlen(s), &e, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "extra words 'd'"));
	assert_int_equal(tally_catalog_parse_entry("", 0, &e, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "missing the name and the kind"));
}

/* No catalog: every lookup says "not in it". */
static void
test_null(void **state)
{
	uint8_t kinds[4] = {9, 9, 9, 9};

	assert_int_equal(tally_catalog_count(NULL), 0);
	assert_null(tally_catalog_at(NULL, 0));
	assert_null(tally_catalog_find(NULL, 1));
	assert_null(tally_catalog_find_name(NULL, "a"));
	assert_int_equal(tally_catalog_kind(NULL, 1), 0);
	assert_int_equal(tally_catalog_kind(NULL, 1u << 20), 0);
	tally_catalog_kinds(NULL, kinds, 4);
	assert_int_equal(kinds[0] | kinds[1] | kinds[2] | kinds[3], 0);
	tally_catalog_free(NULL);
}

/* An empty [metrics] section is an empty catalog, not an error. */
static void
test_empty(void **state)
{
	struct tally_catalog *c;
	char *path;

	c = load_text("[metrics]\n; nothing yet\n", &path);
	assert_non_null(c);
	assert_int_equal(tally_catalog_count(c), 0);
	assert_int_equal(tally_catalog_kind(c, 1), 0);
	assert_int_equal(tally_catalog_kind(c, 1u << 20), 0);
	assert_null(tally_catalog_find_name(c, "a"));
	tally_catalog_free(c);
	drop(path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_file), cmocka_unit_test(test_errors),
		cmocka_unit_test(test_limits),	  cmocka_unit_test(test_many),
		cmocka_unit_test(test_dense_map), cmocka_unit_test(test_parse_entry),
		cmocka_unit_test(test_null),	  cmocka_unit_test(test_empty),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
