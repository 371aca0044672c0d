/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of the aggregation table: insert, update, limits, reset, merge, order. */
#include "test.h"

static struct tally_slot *
find(struct tally_table *t, uint64_t dev, uint32_t metric)
{
	uint32_t i;

	for (i = 0; i < t->series; i++) {
		struct tally_slot *s = &t->slots[t->used_idx[i]];

		if (s->device_id == dev && s->metric_id == metric)
			return s;
	}
	return NULL;
}

static int
add(struct tally_table *t, uint64_t dev, uint32_t metric, double v, uint64_t ts)
{
	return tally_table_add(t, dev, tally_hash_device(dev), metric, 2, v, ts);
}

static void
test_init_rejects(void **state)
{
	uint8_t buf[128] __attribute__((aligned(64)));

	assert_int_equal(tally_table_memsize(0), 0);
	assert_null(tally_table_init(NULL, 16));
	assert_null(tally_table_init(buf, 0));
	assert_null(tally_table_init(buf + 1, 16));
}

static void
test_insert_update(void **state)
{
	void *raw;
	struct tally_table *t = test_table_new(64, &raw);
	struct tally_slot *s;

	assert_int_equal(add(t, 1, 1, 5.0, 10), 0);
	assert_int_equal(add(t, 1, 1, -2.5, 30), 0);
	assert_int_equal(add(t, 1, 1, 9.0, 20), 0); /* older: not the last */
	assert_int_equal(add(t, 1, 2, 1.0, 10), 0);
	assert_int_equal(add(t, 0, 1, 3.0, 10), 0); /* device 0 is a device */
	assert_int_equal(t->series, 3);
	assert_int_equal(t->records, 5);
	s = find(t, 1, 1);
	assert_non_null(s);
	assert_int_equal(s->count, 3);
	assert_true(s->sum == 11.5);
	assert_true(s->min == -2.5);
	assert_true(s->max == 9.0);
	assert_true(s->last == -2.5);
	assert_int_equal(s->last_ns, 30);
	assert_int_equal(s->kind, 2);
	s = find(t, 0, 1);
	assert_non_null(s);
	assert_int_equal(s->count, 1);
	test_table_free(raw);
}

static void
test_same_time_last_wins(void **state)
{
	void *raw;
	struct tally_table *t = test_table_new(16, &raw);

	add(t, 7, 1, 1.0, 100);
	add(t, 7, 1, 2.0, 100); /* same datagram time: arrival order decides */
	assert_true(find(t, 7, 1)->last == 2.0);
	test_table_free(raw);
}

static void
test_full_is_counted_not_corrupting(void **state)
{
	void *raw;
	struct tally_table *t = test_table_new(100, &raw);
	uint64_t dev;
	uint32_t i;

	for (dev = 0; dev < 100; dev++)
		assert_int_equal(add(t, dev, 1, 1.0, 1), 0);
	assert_int_equal(add(t, 1000, 1, 1.0, 1), -1);
	assert_int_equal(add(t, 1001, 2, 1.0, 1), -1);
	assert_int_equal(t->full, 2);
	assert_int_equal(t->series, 100);
	/* Existing series still update once the table is full. */
	assert_int_equal(add(t, 5, 1, 3.0, 2), 0);
	assert_int_equal(find(t, 5, 1)->count, 2);
	for (i = 0; i < t->series; i++)
		assert_true(tally_table_at(t, i)->device_id < 100);
	test_table_free(raw);
}

static void
test_adjacent_metrics_and_wraparound(void **state)
{
	void *raw;
	struct tally_table *t = test_table_new(4096, &raw);
	uint64_t dev;
	uint32_t m;

	/* Many devices x metrics, including metric ids near 2^32 that wrap the slot index. */
	for (dev = 1; dev <= 256; dev++)
		for (m = 0; m < 8; m++)
			assert_int_equal(add(t, dev, m == 7 ? UINT32_MAX : m, (double)m, 1), 0);
	for (dev = 1; dev <= 256; dev++)
		for (m = 0; m < 8; m++)
			assert_int_equal(add(t, dev, m == 7 ? UINT32_MAX : m, (double)m, 2), 0);
	assert_int_equal(t->series, 256 * 8);
	for (dev = 1; dev <= 256; dev++)
		assert_int_equal(find(t, dev, UINT32_MAX)->count, 2);
	test_table_free(raw);
}

static void
test_reset(void **state)
{
	void *raw;
	struct tally_table *t = test_table_new(32, &raw);

	add(t, 1, 1, 1.0, 1);
	add(t, 2, 1, 1.0, 1);
	tally_table_reset(t);
	assert_int_equal(t->series, 0);
	assert_int_equal(t->records, 0);
	assert_null(find(t, 1, 1));
	add(t, 1, 1, 4.0, 1);
	assert_int_equal(find(t, 1, 1)->count, 1);
	assert_true(find(t, 1, 1)->sum == 4.0);
	test_table_free(raw);
}

static void
test_merge(void **state)
{
	void *ra, *rb, *rc;
	struct tally_table *a = test_table_new(32, &ra);
	struct tally_table *b = test_table_new(32, &rb);
	struct tally_table *small = test_table_new(1, &rc);
	struct tally_slot *s;

	add(a, 1, 1, 5.0, 10);
	add(a, 1, 1, 7.0, 40);
	add(b, 1, 1, -1.0, 20);
	add(b, 1, 1, 100.0, 30);
	add(b, 2, 3, 2.0, 5);
	assert_int_equal(tally_table_merge(a, b), 0);
	s = find(a, 1, 1);
	assert_int_equal(s->count, 4);
	assert_true(s->sum == 111.0);
	assert_true(s->min == -1.0);
	assert_true(s->max == 100.0);
	assert_true(s->last == 7.0); /* newest by time, from a */
	assert_int_equal(find(a, 2, 3)->count, 1);
	assert_int_equal(b->series, 2); /* source unchanged */

	/* A destination without room keeps what fits and counts the rest. */
	assert_int_equal(tally_table_merge(small, b), 1);
	assert_int_equal(small->series, 1);
	assert_int_equal(small->full, 1);
	test_table_free(ra);
	test_table_free(rb);
	test_table_free(rc);
}

static void
test_sort(void **state)
{
	void *raw;
	struct tally_table *t = test_table_new(64, &raw);
	uint32_t i;

	add(t, 9, 2, 1, 1);
	add(t, 3, 5, 1, 1);
	add(t, 9, 1, 1, 1);
	add(t, 3, 1, 1, 1);
	add(t, 5, 7, 1, 1);
	tally_table_sort(t);
	for (i = 1; i < t->series; i++) {
		const struct tally_slot *p = tally_table_at(t, i - 1), *q = tally_table_at(t, i);

		assert_true(p->device_id < q->device_id ||
			    (p->device_id == q->device_id && p->metric_id < q->metric_id));
	}
	assert_int_equal(tally_table_at(t, 0)->device_id, 3);
	assert_int_equal(tally_table_at(t, 4)->metric_id, 2);
	test_table_free(raw);
}

/* The radix sort gives exactly the order of the comparison sort, on ids of every width. */
static void
test_sort_fast(void **state)
{
	const uint32_t n = 3000;
	void *ra, *rb;
	struct tally_table *a = test_table_new(n, &ra), *b = test_table_new(n, &rb);
	struct tally_sort_key *scratch = test_malloc(tally_table_sort_scratch_size(n));
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	uint32_t i;

	for (i = 0; i < n; i++) {
		uint64_t dev;
		uint32_t metric;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		/* small ids, huge ids, shared devices, metrics up to 2^32 - 1 */
		dev = i % 3 == 0 ? x % 50 : i % 3 == 1 ? x : UINT64_MAX - x % 7;
		metric = i % 5 == 0 ? (uint32_t)(x >> 32) : (uint32_t)(x % 9);
		add(a, dev, metric, 1, 1);
		add(b, dev, metric, 1, 1);
	}
	assert_int_equal(a->series, b->series);
	tally_table_sort(a);
	tally_table_sort_fast(b, scratch);
	for (i = 0; i < a->series; i++)
		assert_int_equal(a->used_idx[i], b->used_idx[i]);
	/* empty and single-series tables */
	tally_table_reset(b);
	tally_table_sort_fast(b, scratch);
	assert_int_equal(b->series, 0);
	add(b, 7, 7, 1, 1);
	tally_table_sort_fast(b, scratch);
	assert_int_equal(tally_table_at(b, 0)->device_id, 7);
	test_free(scratch);
	test_table_free(ra);
	test_table_free(rb);
}

static void
test_hash_is_stable(void **state)
{
	/* The device hash is part of the documented partitioning: it must never change. */
	assert_true(tally_hash_device(0) == 0);
	assert_true(tally_hash_device(1) == 0xb456bcfc34c2cb2cULL);
	assert_true(tally_hash_device(42) != tally_hash_device(43));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_rejects),
		cmocka_unit_test(test_insert_update),
		cmocka_unit_test(test_same_time_last_wins),
		cmocka_unit_test(test_full_is_counted_not_corrupting),
		cmocka_unit_test(test_adjacent_metrics_and_wraparound),
		cmocka_unit_test(test_reset),
		cmocka_unit_test(test_merge),
		cmocka_unit_test(test_sort),
		cmocka_unit_test(test_sort_fast),
		cmocka_unit_test(test_hash_is_stable),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
