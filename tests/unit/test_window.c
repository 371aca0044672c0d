/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of window alignment and the final stage's merge of partials. */
#include <errno.h>

#include "test.h"
#include "tally_window.h"

#define W 1000

struct fixture {
	void *raw[8];
	struct tally_table *t[8];
	struct tally_merger m;
};

static int
setup(void **state)
{
	struct fixture *f = test_calloc(1, sizeof(*f));
	int i;

	for (i = 0; i < 8; i++)
		f->t[i] = test_table_new(64, &f->raw[i]);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	int i;

	for (i = 0; i < 8; i++)
		test_table_free(f->raw[i]);
	test_free(f);
	return 0;
}

static void
add(struct tally_table *t, uint64_t dev, uint32_t metric, double v)
{
	tally_table_add(t, dev, tally_hash_device(dev), metric, 1, v, 1);
}

static const struct tally_slot *
find(const struct tally_table *t, uint64_t dev, uint32_t metric)
{
	uint32_t i;

	for (i = 0; i < t->series; i++)
		if (tally_table_at(t, i)->device_id == dev && tally_table_at(t, i)->metric_id == metric)
			return tally_table_at(t, i);
	return NULL;
}

static void
test_alignment(void **state)
{
	assert_int_equal(tally_window_start(0, W), 0);
	assert_int_equal(tally_window_start(999, W), 0);
	assert_int_equal(tally_window_start(1000, W), 1000);
	assert_int_equal(tally_window_start(1795798480123ULL, 60000), 1795798440000ULL);
}

static void
test_init_checks(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(tally_merger_init(&f->m, 0, W, f->t, 2), -EINVAL);
	assert_int_equal(tally_merger_init(&f->m, 2, 0, f->t, 2), -EINVAL);
	assert_int_equal(tally_merger_init(&f->m, 2, W, f->t, 0), -EINVAL);
	assert_int_equal(tally_merger_init(&f->m, 2, W, f->t, TALLY_MERGER_MAX_TABLES + 1),
			 -EINVAL);
}

/* Two workers' partials of one window merge into one table, handed out when both closed. */
static void
test_merge_two_workers(void **state)
{
	struct fixture *f = *state;
	struct tally_table *out;
	uint64_t start;

	assert_int_equal(tally_merger_init(&f->m, 2, W, f->t, 2), 0);
	add(f->t[2], 1, 1, 10);
	add(f->t[2], 2, 1, 1);
	add(f->t[3], 1, 1, 5);
	add(f->t[3], 3, 4, 2);
	assert_int_equal(tally_merger_add(&f->m, 5000, f->t[2]), 0);
	tally_merger_close(&f->m, 0, 6000);
	assert_null(tally_merger_next(&f->m, 0, &start)); /* worker 1 still open */
	assert_int_equal(tally_merger_add(&f->m, 5000, f->t[3]), 0);
	tally_merger_close(&f->m, 1, 6000);
	out = tally_merger_next(&f->m, 0, &start);
	assert_non_null(out);
	assert_int_equal(start, 5000);
	assert_int_equal(out->series, 3);
	assert_int_equal(find(out, 1, 1)->count, 2);
	assert_true(find(out, 1, 1)->sum == 15);
	assert_int_equal(tally_merger_busy(&f->m), 1);
	assert_null(tally_merger_next(&f->m, 0, &start));
	tally_merger_release(&f->m, out);
	assert_int_equal(tally_merger_busy(&f->m), 0);
	assert_int_equal(out->series, 0);
}

/* An idle worker closes windows without partials; windows come out oldest first. */
static void
test_idle_worker_and_order(void **state)
{
	struct fixture *f = *state;
	struct tally_table *a, *b;
	uint64_t s1, s2;

	assert_int_equal(tally_merger_init(&f->m, 2, W, f->t, 3), 0);
	add(f->t[3], 1, 1, 1);
	add(f->t[4], 1, 1, 2);
	assert_int_equal(tally_merger_add(&f->m, 2000, f->t[4]), 0);
	assert_int_equal(tally_merger_add(&f->m, 1000, f->t[3]), 0);
	tally_merger_close(&f->m, 0, 3000);
	tally_merger_close(&f->m, 1, 2000); /* worker 1 saw nothing and has closed 1000-2000 */
	a = tally_merger_next(&f->m, 0, &s1);
	assert_non_null(a);
	assert_int_equal(s1, 1000);
	assert_null(tally_merger_next(&f->m, 0, &s2));
	tally_merger_close(&f->m, 1, 3000);
	b = tally_merger_next(&f->m, 0, &s2);
	assert_non_null(b);
	assert_int_equal(s2, 2000);
	tally_merger_release(&f->m, a);
	tally_merger_release(&f->m, b);
}

static void
test_pool_exhaustion_and_late(void **state)
{
	struct fixture *f = *state;
	struct tally_table *out;
	uint64_t start;

	assert_int_equal(tally_merger_init(&f->m, 1, W, f->t, 1), 0);
	add(f->t[3], 1, 1, 1);
	add(f->t[4], 1, 1, 1);
	assert_int_equal(tally_merger_add(&f->m, 1000, f->t[3]), 0);
	assert_int_equal(tally_merger_add(&f->m, 2000, f->t[4]), -ENOSPC);
	tally_merger_close(&f->m, 0, 2000);
	out = tally_merger_next(&f->m, 0, &start);
	assert_non_null(out);
	/* A partial of a window already handed out is refused (the caller counts it late). */
	assert_int_equal(tally_merger_add(&f->m, 1000, f->t[3]), -EINVAL);
	assert_int_equal(f->m.lost_records, 0);
	tally_merger_release(&f->m, out);
	assert_int_equal(tally_merger_add(&f->m, 2000, f->t[4]), 0);
	/* Empty partials need no table. */
	tally_table_reset(f->t[5]);
	assert_int_equal(tally_merger_add(&f->m, 3000, f->t[5]), 0);
}

static void
test_force_at_shutdown(void **state)
{
	struct fixture *f = *state;
	uint64_t start;

	assert_int_equal(tally_merger_init(&f->m, 2, W, f->t, 2), 0);
	add(f->t[3], 1, 1, 1);
	assert_int_equal(tally_merger_add(&f->m, 7000, f->t[3]), 0);
	assert_null(tally_merger_next(&f->m, 0, &start));
	assert_non_null(tally_merger_next(&f->m, 1, &start));
	assert_int_equal(start, 7000);
}

static void
test_merge_table_full(void **state)
{
	struct fixture *f = *state;
	void *raw;
	struct tally_table *tiny = test_table_new(1, &raw);
	struct tally_table *pool[1] = {tiny};

	assert_int_equal(tally_merger_init(&f->m, 1, W, pool, 1), 0);
	add(f->t[3], 1, 1, 1);
	add(f->t[3], 2, 1, 1);
	add(f->t[3], 2, 1, 1);
	assert_int_equal(tally_merger_add(&f->m, 1000, f->t[3]), 0);
	assert_int_equal(f->m.lost_series, 1);
	assert_true(f->m.lost_records == 1 || f->m.lost_records == 2);
	test_table_free(raw);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_alignment),
		cmocka_unit_test_setup_teardown(test_init_checks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_merge_two_workers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idle_worker_and_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pool_exhaustion_and_late, setup, teardown),
		cmocka_unit_test_setup_teardown(test_force_at_shutdown, setup, teardown),
		cmocka_unit_test_setup_teardown(test_merge_table_full, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
