/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of the aggregation table: insert, update, limits, reset, merge, order, and the
 * side memory of histograms and distinct counts. */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "tally_ddsketch.h"
#include "tally_hll.h"
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

	assert_int_equal(tally_table_memsize(0, 0), 0);
	assert_int_equal(tally_table_memsize(16, TALLY_TABLE_SIDE_MAX + 1), 0);
	assert_null(tally_table_init(NULL, 16, 0));
	assert_null(tally_table_init(buf, 0, 0));
	assert_null(tally_table_init(buf + 1, 16, 0));
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


static int
add_kind(struct tally_table *t, uint64_t dev, uint32_t metric, uint8_t kind, double v)
{
	return tally_table_add(t, dev, tally_hash_device(dev), metric, kind, v, 1);
}

static double
element(uint64_t e)
{
	double v;

	memcpy(&v, &e, sizeof(v));
	return v;
}

/* A reference sketch of every value, built directly (capacity for the whole range). */
static struct tally_dds *
ref_sketch(void **raw)
{
	size_t len = tally_dds_memsize(TALLY_DDS_CAP_MAX);

	*raw = test_malloc(len);
	return tally_dds_init(*raw, TALLY_DDS_CAP_MAX);
}

/* A sketch's canonical bytes: equal sketches give equal bytes. */
static int
sketch_equal(const struct tally_dds *a, const struct tally_dds *b)
{
	static uint8_t x[60000], y[60000];
	int nx = tally_dds_serialise(a, x, sizeof(x)), ny = tally_dds_serialise(b, y, sizeof(y));

	return nx > 0 && nx == ny && memcmp(x, y, (size_t)nx) == 0;
}

/* A distinct series' registers equal a reference HLL's. */
static void
assert_hll_equal(const struct tally_table *t, const struct tally_slot *s,
		 const struct tally_hll *ref)
{
	static uint8_t buf[TALLY_HLL_DENSE_SIZE];
	static struct tally_hll got;
	uint32_t i;
	int n = tally_table_hll(t, s, buf, sizeof(buf));

	assert_true(n > 0);
	assert_int_equal(tally_hll_parse(&got, buf, (size_t)n), 0);
	for (i = 0; i < TALLY_HLL_REGISTERS; i++)
		assert_int_equal(tally_hll_register(&got, i), tally_hll_register(ref, i));
	assert_int_equal(tally_hll_estimate(&got), tally_hll_estimate(ref));
}

static void
test_histogram_series(void **state)
{
	void *raw, *rraw;
	struct tally_table *t = test_table_new_side(64, 1 << 20, &raw);
	struct tally_dds *ref = ref_sketch(&rraw);
	const struct tally_dds *d;
	struct tally_slot *s;
	double v;
	int i;

	(void)state;
	/* 600 values over 5 decades: the sketch moves to more room (8 ... 1024 buckets) */
	for (i = 0; i < 600; i++) {
		v = pow(10, i / 120.0) * (i % 2 ? 1 : -1);
		assert_int_equal(add_kind(t, 5, 3, TALLY_KIND_HISTOGRAM, v), 0);
		tally_dds_add(ref, v);
	}
	assert_int_equal(add_kind(t, 5, 3, TALLY_KIND_HISTOGRAM, 0.0), 0);
	tally_dds_add(ref, 0.0);
	s = find(t, 5, 3);
	assert_non_null(s);
	assert_int_equal(s->kind, TALLY_KIND_HISTOGRAM);
	assert_int_equal(s->count, 601);
	d = tally_table_sketch(t, s);
	assert_non_null(d);
	assert_int_equal(tally_dds_count(d), 601);
	assert_true(d->cap <= TALLY_SKETCH_CAP && d->cap >= tally_dds_buckets(d));
	assert_true(sketch_equal(d, ref));
	assert_int_equal(t->folded, 0);
	assert_true(s->min < -9e4 && s->max > 9e4);
	assert_int_equal(t->records, 601);
	/* values within a few decades of one sign: the sketch moves to a dense store */
	{
		void *r2;
		struct tally_dds *ref2 = ref_sketch(&r2);

		for (i = 0; i < 5000; i++) {
			v = 1.0 + (i * 7919 % 100000) / 100.0;
			assert_int_equal(add_kind(t, 6, 1, TALLY_KIND_HISTOGRAM, v), 0);
			tally_dds_add(ref2, v);
		}
		d = tally_table_sketch(t, find(t, 6, 1));
		assert_true(d->dense);
		assert_true(sketch_equal(d, ref2));
		assert_int_equal(t->folded, 0);
		test_free(r2);
	}
	/* a reset gives every byte of side memory back */
	tally_table_reset(t);
	assert_int_equal(t->side_used, 0);
	test_free(rraw);
	test_free(raw);
}

static void
test_histogram_cap_folds(void **state)
{
	void *raw;
	struct tally_table *t = test_table_new_side(16, 1 << 20, &raw);
	const struct tally_dds *d;
	int i;

	(void)state;
	/* 2,000 buckets wanted, 1,024 allowed: the rest fold into neighbours, counted */
	for (i = 0; i < 2000; i++)
		add_kind(t, 1, 1, TALLY_KIND_HISTOGRAM, pow(101.0 / 99.0, i - 900));
	d = tally_table_sketch(t, find(t, 1, 1));
	assert_int_equal(d->cap, TALLY_SKETCH_CAP);
	assert_int_equal(tally_dds_buckets(d), TALLY_SKETCH_CAP);
	assert_int_equal(tally_dds_count(d), 2000);
	assert_true(t->folded > 0);
	assert_int_equal(t->folded, d->folded);
	test_free(raw);
}

static void
test_side_full(void **state)
{
	void *raw;
	/* room for a few small sketches only */
	struct tally_table *t = test_table_new_side(64, 400, &raw);
	uint32_t series;
	int i, stored = 0;

	(void)state;
	for (i = 0; i < 10; i++)
		stored += add_kind(t, 1, (uint32_t)i, TALLY_KIND_HISTOGRAM, 1.0) == 0;
	assert_true(stored >= 1 && stored < 10);
	assert_int_equal(t->side_full, 10 - stored);
	assert_int_equal(t->series, stored); /* the refused series are not left behind empty */
	assert_int_equal(t->records, stored);
	/* a series that has its sketch keeps taking values: it folds when it cannot grow */
	series = t->series;
	for (i = 0; i < 100; i++)
		assert_int_equal(add_kind(t, 1, 0, TALLY_KIND_HISTOGRAM, 1.0 + i), 0);
	assert_int_equal(t->series, series);
	assert_int_equal(tally_dds_count(tally_table_sketch(t, find(t, 1, 0))), 101);
	assert_true(t->folded > 0);
	/* counters and gauges need no side memory */
	assert_int_equal(add_kind(t, 2, 1, TALLY_KIND_COUNTER, 1.0), 0);
	test_free(raw);
}

static void
test_distinct_series(void **state)
{
	void *raw;
	struct tally_table *t = test_table_new_side(16, 1 << 20, &raw);
	static struct tally_hll ref;
	struct tally_slot *s;
	uint8_t buf[TALLY_HLL_DENSE_SIZE];
	uint64_t e;
	int n;

	(void)state;
	tally_hll_init(&ref);
	/* few elements: a short list of registers, written in Redis's sparse form */
	for (e = 0; e < 300; e++) {
		assert_int_equal(add_kind(t, 9, 4, TALLY_KIND_DISTINCT, element(e * 7919)), 0);
		assert_int_equal(add_kind(t, 9, 4, TALLY_KIND_DISTINCT, element(e * 7919)), 0);
		tally_hll_add_u64(&ref, e * 7919);
	}
	s = find(t, 9, 4);
	assert_int_equal(s->count, 600);
	n = tally_table_hll(t, s, buf, sizeof(buf));
	assert_true(n > 0 && n < 2000);
	assert_int_equal(buf[4], TALLY_HLL_SPARSE);
	assert_hll_equal(t, s, &ref);
	/* many: the dense form, the same registers; NaN and infinity patterns are elements too */
	for (e = 300; e < 20000; e++) {
		assert_int_equal(add_kind(t, 9, 4, TALLY_KIND_DISTINCT, element(e * 7919)), 0);
		tally_hll_add_u64(&ref, e * 7919);
	}
	add_kind(t, 9, 4, TALLY_KIND_DISTINCT, element(0x7ff8000000000001ull));
	tally_hll_add_u64(&ref, 0x7ff8000000000001ull);
	n = tally_table_hll(t, s, buf, sizeof(buf));
	assert_int_equal(n, TALLY_HLL_DENSE_SIZE);
	assert_hll_equal(t, s, &ref);
	assert_int_equal(s->count, 600 + 19700 + 1);
	test_free(raw);
}

/*
 * Registers crowded into a few homes of the small set: probes run long, past its pad, and the
 * set grows (or goes dense) early; whatever the form, the registers are the reference's, the
 * hinted update (what the worker's look-ahead works out) gives the same, and the sparse output
 * is in register order.
 */
static void
test_distinct_crowded(void **state)
{
	void *raw;
	struct tally_table *t = test_table_new_side(16, 1 << 20, &raw);
	static struct tally_hll ref;
	struct tally_slot *s;
	uint8_t buf[TALLY_HLL_DENSE_SIZE];
	static uint8_t seen[TALLY_HLL_REGISTERS];
	uint64_t e = 1, n = 0;
	/* registers set: the sizes of set met on the way, then past 3/4 of the largest (dense) */
	unsigned int want[] = {20, 60, 200, 700, 900}, w = 0, regs = 0;

	(void)state;
	tally_hll_init(&ref);
	while (w < sizeof(want) / sizeof(want[0])) {
		uint32_t idx, hint;
		unsigned int val;

		e = e * 6364136223846793005ull + 1442695040888963407ull;
		val = tally_hll_pattern_u64(e, &idx);
		if (idx >= want[w] + 100)
			continue; /* only low registers: the first homes of any size of set */
		s = find(t, 3, 3);
		hint = n % 2 ? tally_table_side_hint(t, s, TALLY_KIND_DISTINCT, element(e)) : 0;
		if (s == NULL)
			s = tally_table_lookup(t, 3, tally_hash_device(3), 3);
		assert_non_null(s);
		assert_int_equal(tally_table_put_hint(t, s, TALLY_KIND_DISTINCT, element(e), 1, hint),
				 0);
		tally_hll_update(&ref, idx, val);
		n++;
		regs += !seen[idx];
		seen[idx] = 1;
		if (regs == want[w]) {
			int len = tally_table_hll(t, s, buf, sizeof(buf));

			assert_true(len > 0);
			assert_int_equal(buf[4], s->side_form == TALLY_SIDE_HLL ? TALLY_HLL_DENSE
										: TALLY_HLL_SPARSE);
			assert_hll_equal(t, s, &ref);
			w++;
		}
	}
	assert_int_equal(find(t, 3, 3)->count, n);
	assert_int_equal(find(t, 3, 3)->side_form, TALLY_SIDE_HLL);
	test_free(raw);
}

/*
 * Histogram records updated with hints worked out several records ahead, as the worker does:
 * keys, clamping and sparse positions that other updates moved meanwhile (inserts, the move to
 * a dense store) still give exactly the reference sketch.
 */
static void
test_histogram_hints(void **state)
{
	void *raw, *rr;
	struct tally_table *t = test_table_new_side(64, 1 << 20, &raw);
	struct tally_dds *ref = ref_sketch(&rr);
	double v[4000];
	uint32_t hint[4000];
	uint64_t x = 7;
	int i, ahead = 6;

	(void)state;
	for (i = 0; i < 4000; i++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		/* a few decades, some zeros, negatives and values out of range */
		v[i] = (double)(x >> 40) / 1e3 * (i % 7 == 0 ? -1 : 1);
		if (i % 101 == 0)
			v[i] = 0;
		if (i % 211 == 0)
			v[i] = 1e300;
	}
	for (i = 0; i < 4000 + ahead; i++) {
		if (i < 4000) {
			/* step one and two for record i, before the updates of the records before it */
			struct tally_slot *s = find(t, 2, 5);

			hint[i] = tally_table_side_hint(t, s, TALLY_KIND_HISTOGRAM, v[i]);
			hint[i] = tally_table_side_hint2(t, s, hint[i]);
		}
		if (i >= ahead) {
			int k = i - ahead;
			struct tally_slot *s = tally_table_lookup(t, 2, tally_hash_device(2), 5);

			assert_int_equal(tally_table_put_hint(t, s, TALLY_KIND_HISTOGRAM, v[k], 1,
							      hint[k]),
					 0);
			tally_dds_add(ref, v[k]);
		}
	}
	assert_true(sketch_equal(tally_table_sketch(t, find(t, 2, 5)), ref));
	assert_int_equal(find(t, 2, 5)->count, 4000);
	assert_int_equal(tally_table_sketch(t, find(t, 2, 5))->clamped, ref->clamped);
	test_free(rr);
	test_free(raw);
}

/* What v1 cannot carry: gauge deltas and histogram values standing for several (statsd). */
static void
test_put_ext(void **state)
{
	void *raw, *rr;
	struct tally_table *t = test_table_new_side(64, 1 << 20, &raw);
	struct tally_dds *ref = ref_sketch(&rr);
	struct tally_slot *s;

	(void)state;
	/* deltas from 0, then from the window's last value */
	s = tally_table_lookup(t, 4, tally_hash_device(4), 1);
	assert_int_equal(tally_table_put_ext(t, s, TALLY_KIND_GAUGE, 2.5, 1, 1), 0);
	assert_int_equal(tally_table_put_ext(t, s, TALLY_KIND_GAUGE, -1, 2, 1), 0);
	assert_true(s->last == 1.5 && s->count == 2 && s->sum == 4 && s->min == 1.5 &&
		    s->max == 2.5);
	/* a delta on a counter series: one kind_mismatch, stored as the series' kind */
	s = tally_table_lookup(t, 4, tally_hash_device(4), 2);
	assert_int_equal(tally_table_put(t, s, TALLY_KIND_COUNTER, 1, 1), 0);
	assert_int_equal(tally_table_put_ext(t, s, TALLY_KIND_GAUGE, 1, 2, 1), 0);
	assert_int_equal(t->kind_mismatch, 1);
	assert_int_equal(s->kind, TALLY_KIND_COUNTER);
	/* weighted values: count and sum by weight, the bucket by weight, as n adds of each */
	s = tally_table_lookup(t, 4, tally_hash_device(4), 3);
	assert_int_equal(tally_table_put_ext(t, s, TALLY_KIND_HISTOGRAM, 10, 1, 4), 0);
	assert_int_equal(tally_table_put_ext(t, s, TALLY_KIND_HISTOGRAM, 0.5, 1, 1), 0);
	assert_int_equal(tally_table_put_ext(t, s, TALLY_KIND_HISTOGRAM, 0, 1, 3), 0);
	assert_int_equal(tally_table_put_ext(t, s, TALLY_KIND_HISTOGRAM, 1e300, 1, 2), 0);
	tally_dds_add_key(ref, 0, 3);
	for (int i = 0; i < 4; i++)
		tally_dds_add(ref, 10);
	tally_dds_add(ref, 0.5);
	tally_dds_add(ref, 1e300);
	tally_dds_add(ref, 1e300);
	assert_true(sketch_equal(tally_table_sketch(t, s), ref));
	assert_int_equal(tally_table_sketch(t, s)->clamped, 2);
	assert_true(s->count == 10 && s->sum == 40 + 0.5 + 2e300 && s->min == 0 && s->max == 1e300);
	assert_int_equal(t->records, 2 + 2 + 4);
	test_free(rr);
	test_free(raw);
}

static void
test_side_merge(void **state)
{
	void *ra, *rb, *rd, *rr;
	struct tally_table *a = test_table_new_side(64, 1 << 20, &ra);
	struct tally_table *b = test_table_new_side(64, 1 << 20, &rb);
	struct tally_table *dst = test_table_new_side(64, 1 << 20, &rd);
	struct tally_dds *ref = ref_sketch(&rr);
	static struct tally_hll href;
	struct tally_slot *s;
	int i;

	(void)state;
	tally_hll_init(&href);
	for (i = 0; i < 500; i++) {
		struct tally_table *t = i % 3 ? a : b;

		add_kind(t, 1, 1, TALLY_KIND_HISTOGRAM, 1.5 * i);
		tally_dds_add(ref, 1.5 * i);
		add_kind(t, 1, 2, TALLY_KIND_DISTINCT, element((uint64_t)i * 31));
		tally_hll_add_u64(&href, (uint64_t)i * 31);
		add_kind(t, 1, 3, TALLY_KIND_GAUGE, i);
	}
	assert_int_equal(tally_table_merge(dst, a), 0);
	assert_int_equal(tally_table_merge(dst, b), 0);
	s = find(dst, 1, 1);
	assert_int_equal(s->count, 500);
	assert_true(sketch_equal(tally_table_sketch(dst, s), ref));
	assert_true(s->sum == 1.5 * 499 * 500 / 2 && s->min == 0 && s->max == 1.5 * 499);
	s = find(dst, 1, 2);
	assert_int_equal(s->count, 500);
	assert_hll_equal(dst, s, &href);
	assert_int_equal(find(dst, 1, 3)->count, 500);
	assert_int_equal(dst->records, 1500);
	assert_int_equal(dst->kind_mismatch, 0);
	test_free(rr);
	test_free(rd);
	test_free(rb);
	test_free(ra);
}

static void
test_kind_mismatch(void **state)
{
	void *ra, *rb;
	struct tally_table *a = test_table_new_side(16, 1 << 20, &ra);
	struct tally_table *b = test_table_new_side(16, 1 << 20, &rb);
	struct tally_slot *s;

	(void)state;
	/* within a table: the series keeps its first kind, the record is stored as that kind */
	add_kind(a, 1, 1, TALLY_KIND_HISTOGRAM, 2.0);
	add_kind(a, 1, 1, TALLY_KIND_GAUGE, 4.0);
	s = find(a, 1, 1);
	assert_int_equal(s->kind, TALLY_KIND_HISTOGRAM);
	assert_int_equal(s->count, 2);
	assert_int_equal(tally_dds_count(tally_table_sketch(a, s)), 2);
	assert_int_equal(a->kind_mismatch, 1);
	add_kind(a, 1, 2, TALLY_KIND_COUNTER, 1.0);
	add_kind(a, 1, 2, TALLY_KIND_GAUGE, 3.0);
	assert_int_equal(find(a, 1, 2)->count, 2);
	assert_int_equal(a->kind_mismatch, 2);
	/* between partials: a sketch takes no distinct partial (left out, counted) */
	add_kind(b, 1, 1, TALLY_KIND_DISTINCT, element(5));
	add_kind(b, 1, 1, TALLY_KIND_DISTINCT, element(6));
	a->kind_mismatch = 0;
	assert_int_equal(tally_table_merge(a, b), 0);
	assert_int_equal(find(a, 1, 1)->count, 2);
	assert_int_equal(a->kind_mismatch, 2);
	test_free(rb);
	test_free(ra);
}

static void
test_fold_bytes(void **state)
{
	void *ra, *rb;
	struct tally_table *a = test_table_new_side(16, 1 << 20, &ra);
	struct tally_table *b = test_table_new_side(16, 1 << 20, &rb);
	static uint8_t buf[60000];
	struct tally_slot from, *s;
	uint32_t series;
	int n, i;

	(void)state;
	for (i = 0; i < 300; i++)
		add_kind(a, 3, 7, TALLY_KIND_HISTOGRAM, 0.25 * i);
	s = find(a, 3, 7);
	n = tally_dds_serialise(tally_table_sketch(a, s), buf, sizeof(buf));
	from = *s;
	from.side = 0;
	/* twice: the second adds every bucket again */
	for (i = 0; i < 2; i++) {
		struct tally_slot *to = tally_table_lookup(b, 3, tally_hash_device(3), 7);

		assert_int_equal(tally_table_fold_bytes(b, to, &from, buf, (size_t)n), 0);
	}
	s = find(b, 3, 7);
	assert_int_equal(s->count, 600);
	assert_int_equal(tally_dds_count(tally_table_sketch(b, s)), 600);
	/* bytes that do not parse: nothing stored, the new series given back */
	series = b->series;
	buf[0] = 'X';
	s = tally_table_lookup(b, 4, tally_hash_device(4), 7);
	assert_int_equal(tally_table_fold_bytes(b, s, &from, buf, (size_t)n), -EINVAL);
	assert_int_equal(b->series, series);
	assert_null(find(b, 4, 7));
	test_free(rb);
	test_free(ra);
}

static void
test_hll_sparse_writer(void **state)
{
	static struct tally_hll h, back;
	uint32_t regs[4] = {0 << 6 | 1, 1 << 6 | 1, 2 << 6 | 1, 16383 << 6 | 32};
	uint8_t buf[TALLY_HLL_SPARSE_SIZE(4)];
	uint32_t i;
	int n;

	(void)state;
	n = tally_hll_write_sparse(regs, 4, buf, sizeof(buf));
	assert_true(n > 0);
	assert_int_equal(tally_hll_parse(&back, buf, (size_t)n), 0);
	tally_hll_init(&h);
	for (i = 0; i < 4; i++)
		tally_hll_update(&h, regs[i] >> 6, regs[i] & 0x3f);
	for (i = 0; i < TALLY_HLL_REGISTERS; i++)
		assert_int_equal(tally_hll_register(&back, i), tally_hll_register(&h, i));
	regs[3] = 16383 << 6 | 33; /* over 32: only the dense form holds it */
	assert_int_equal(tally_hll_write_sparse(regs, 4, buf, sizeof(buf)), -ERANGE);
	assert_int_equal(tally_hll_write_sparse(regs, 4, buf, 10), -ENOSPC);
	assert_int_equal(tally_hll_write_sparse(NULL, 0, buf, sizeof(buf)), 18);
}


static uint8_t
big_kind(const void *ctx, uint32_t id)
{
	(void)ctx;
	return id == 100000 ? TALLY_KIND_DISTINCT : 0;
}

/* A catalog's kinds: records of another kind are counted and stored as the catalog's. */
static void
test_catalog_kinds(void **state)
{
	static uint8_t kinds[TALLY_TABLE_KIND_IDS];
	void *raw;
	struct tally_table *t = test_table_new(64, &raw);
	struct tally_slot *s;

	(void)state;
	kinds[3] = TALLY_KIND_HISTOGRAM;
	kinds[5] = TALLY_KIND_COUNTER;
	tally_table_set_kinds(t, kinds, big_kind, NULL);
	add_kind(t, 1, 3, TALLY_KIND_GAUGE, 2.0);
	add_kind(t, 1, 3, TALLY_KIND_HISTOGRAM, 4.0);
	s = find(t, 1, 3);
	assert_int_equal(s->kind, TALLY_KIND_HISTOGRAM);
	assert_int_equal(tally_dds_count(tally_table_sketch(t, s)), 2);
	assert_int_equal(t->kind_mismatch, 1);
	/* an element's bits that read as NaN make no sum */
	add_kind(t, 1, 5, TALLY_KIND_DISTINCT, element(0x7ff8000000000001ull));
	add_kind(t, 1, 5, TALLY_KIND_COUNTER, 3.0);
	s = find(t, 1, 5);
	assert_int_equal(s->kind, TALLY_KIND_COUNTER);
	assert_true(s->sum == 3.0);
	assert_int_equal(t->kind_mismatch, 2);
	/* ids the dense map does not reach ask kind_of; ids the catalog lacks keep their kind */
	add_kind(t, 1, 100000, TALLY_KIND_GAUGE, 9.0);
	assert_int_equal(find(t, 1, 100000)->kind, TALLY_KIND_DISTINCT);
	add_kind(t, 1, 7, TALLY_KIND_GAUGE, 1.0);
	assert_int_equal(find(t, 1, 7)->kind, TALLY_KIND_GAUGE);
	assert_int_equal(t->kind_mismatch, 3);
	test_free(raw);
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
		cmocka_unit_test(test_histogram_series),
		cmocka_unit_test(test_histogram_cap_folds),
		cmocka_unit_test(test_side_full),
		cmocka_unit_test(test_distinct_series),
		cmocka_unit_test(test_distinct_crowded),
		cmocka_unit_test(test_histogram_hints),
		cmocka_unit_test(test_put_ext),
		cmocka_unit_test(test_side_merge),
		cmocka_unit_test(test_kind_mismatch),
		cmocka_unit_test(test_fold_bytes),
		cmocka_unit_test(test_hll_sparse_writer),
		cmocka_unit_test(test_catalog_kinds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
