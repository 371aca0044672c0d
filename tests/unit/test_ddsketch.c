/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of the DDSketch: exact bucket edges, range, accuracy, merges, byte format. */
#include <errno.h>
#include <float.h>
#include <math.h>

#include "test.h"
#include "tally_ddsketch.h"

#define N_VALUES 100000
#define REL_TOL (TALLY_DDS_ALPHA * (1 + 1e-12)) /* 1%, plus the rounding of the result */

/* A sketch on test_malloc memory (leaks fail the test); free with dds_free(). */
static struct tally_dds *
dds_new(unsigned int cap)
{
	size_t len = tally_dds_memsize(cap);
	void *mem;

	assert_true(len > 0);
	mem = test_malloc(len);
	assert_non_null(mem);
	assert_ptr_equal(tally_dds_init(mem, cap), mem);
	return mem;
}

static void
dds_free(struct tally_dds *s)
{
	test_free(s);
}

/* ---- A small deterministic PRNG (splitmix64) and the data sets ---- */

static uint64_t
rnd_next(uint64_t *st)
{
	uint64_t z = (*st += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Uniform in (0, 1), never 0. */
static double
rnd_unit(uint64_t *st)
{
	return ((double)(rnd_next(st) >> 11) + 0.5) * 0x1p-53;
}

static double
rnd_normal(uint64_t *st)
{
	double u1 = rnd_unit(st), u2 = rnd_unit(st);

	return sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
}

enum dist { UNIFORM, LOGNORMAL, PARETO, BIMODAL, SIGNED, N_DIST };
static const char *const dist_name[N_DIST] = {"uniform", "lognormal", "pareto", "bimodal",
					      "signed"};

static double *
make_data(enum dist d, uint64_t seed)
{
	double *v = test_malloc(N_VALUES * sizeof(*v));
	uint64_t st = seed;
	int i;

	assert_non_null(v);
	for (i = 0; i < N_VALUES; i++) {
		switch (d) {
		case UNIFORM:
			v[i] = 1000 * rnd_unit(&st);
			break;
		case LOGNORMAL:
			v[i] = exp(log(20) + rnd_normal(&st));
			break;
		case PARETO:
			v[i] = 1 / pow(rnd_unit(&st), 1 / 1.5);
			break;
		case BIMODAL:
			v[i] = rnd_unit(&st) < 0.7 ? 5 + 0.5 * rnd_normal(&st)
						   : 200 + 20 * rnd_normal(&st);
			break;
		default:
			/* Both signs and exact zeros: the mirror buckets and the zero count. */
			v[i] = rnd_unit(&st) < 0.05 ? 0 : 100 * rnd_normal(&st);
			break;
		}
	}
	return v;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Every q = k/1000 within 1% of the exact element of rank floor(q (n - 1)). */
static void
check_quantiles(const struct tally_dds *s, const double *sorted, int n, const char *what)
{
	double worst = 0;
	int k;

	assert_int_equal(tally_dds_count(s), n);
	for (k = 0; k <= 1000; k++) {
		double q = k / 1000.0, est, exact, err;

		assert_int_equal(tally_dds_quantile(s, q, &est), 0);
		exact = sorted[(int)floor(q * (n - 1))];
		err = exact == 0 ? fabs(est) : fabs(est - exact) / fabs(exact);
		if (err > worst)
			worst = err;
		if (err > REL_TOL)
			fail_msg("%s: q=%.3f exact %.17g estimate %.17g (error %.6f%%)", what, q,
				 exact, est, 100 * err);
	}
	print_message("%-10s %4d buckets (%5zu bytes serialised), worst error %.4f%%\n", what,
		      s->used, tally_dds_serial_size(s), 100 * worst);
}

static int
serialise(const struct tally_dds *s, uint8_t *buf, size_t len)
{
	int n = tally_dds_serialise(s, buf, len);

	assert_true(n > 0);
	assert_int_equal((size_t)n, tally_dds_serial_size(s));
	return n;
}

static void
assert_same_sketch(const struct tally_dds *a, const struct tally_dds *b)
{
	static uint8_t ba[65536], bb[65536];
	int na = serialise(a, ba, sizeof(ba)), nb = serialise(b, bb, sizeof(bb));

	assert_int_equal(na, nb);
	assert_memory_equal(ba, bb, na);
}

/* ---- Exact edges: a tiny bignum checks every table entry against 101^i / 99^i ---- */

#define BN_LIMBS 320 /* 10,240 bits: 101^1382 * 2^53 needs about 9,220 */

struct bn {
	uint32_t l[BN_LIMBS];
};

static void
bn_set(struct bn *a, uint64_t v)
{
	memset(a, 0, sizeof(*a));
	a->l[0] = (uint32_t)v;
	a->l[1] = (uint32_t)(v >> 32);
}

static void
bn_mul(struct bn *a, uint64_t m)
{
	unsigned __int128 carry = 0;
	int i;

	for (i = 0; i < BN_LIMBS; i++) {
		unsigned __int128 cur = (unsigned __int128)a->l[i] * m + carry;

		a->l[i] = (uint32_t)cur;
		carry = cur >> 32;
	}
	assert_true(carry == 0);
}

static void
bn_shl(struct bn *a, int bits)
{
	int words = bits / 32, sh = bits % 32, i;

	assert_true(a->l[BN_LIMBS - 1 - words - 1] == 0);
	for (i = BN_LIMBS - 1; i >= 0; i--) {
		uint64_t hi = i - words >= 0 ? a->l[i - words] : 0;
		uint64_t lo = i - words - 1 >= 0 ? a->l[i - words - 1] : 0;

		a->l[i] = (uint32_t)(((hi << 32 | lo) << sh) >> 32);
	}
}

static int
bn_cmp(const struct bn *a, const struct bn *b)
{
	int i;

	for (i = BN_LIMBS - 1; i >= 0; i--)
		if (a->l[i] != b->l[i])
			return a->l[i] < b->l[i] ? -1 : 1;
	return 0;
}

/* bound == largest double <= num/den: bound <= num/den < next double up. */
static void
check_round_down(double bound, const struct bn *num, const struct bn *den, int idx)
{
	static struct bn lo, hi, r;
	int e;
	uint64_t m = (uint64_t)ldexp(frexp(bound, &e), 53);

	e -= 53;
	lo = *den;
	bn_mul(&lo, m);
	hi = *den;
	bn_mul(&hi, m + 1);
	r = *num;
	if (e >= 0) {
		bn_shl(&lo, e);
		bn_shl(&hi, e);
	} else {
		bn_shl(&r, -e);
	}
	if (!(bn_cmp(&lo, &r) <= 0 && bn_cmp(&r, &hi) < 0))
		fail_msg("bucket edge of index %d (%a) is not gamma^%d rounded down", idx, bound,
			 idx);
}

static void
test_edges_exact(void **state)
{
	static struct bn p101, p99;
	double lo, hi;
	int i, k;

	/* Upwards from gamma^0 = 1, then downwards. */
	bn_set(&p101, 1);
	bn_set(&p99, 1);
	for (i = 0; i <= TALLY_DDS_INDEX_MAX; i++) {
		k = i - TALLY_DDS_INDEX_MIN + 1;
		assert_int_equal(tally_dds_key_bounds(k, &lo, &hi), 0);
		check_round_down(hi, &p101, &p99, i);
		bn_mul(&p101, 101);
		bn_mul(&p99, 99);
	}
	bn_set(&p101, 101);
	bn_set(&p99, 99);
	for (i = -1; i >= TALLY_DDS_INDEX_MIN - 1; i--) {
		k = i - TALLY_DDS_INDEX_MIN + 1;
		assert_int_equal(tally_dds_key_bounds(k == 0 ? 1 : k, &lo, &hi), 0);
		check_round_down(k == 0 ? lo : hi, &p99, &p101, i);
		bn_mul(&p101, 101);
		bn_mul(&p99, 99);
	}
	/* gamma^0 is exactly 1: the edge of index 0 is 1.0 itself. */
	assert_int_equal(tally_dds_key_bounds(-TALLY_DDS_INDEX_MIN + 1, &lo, &hi), 0);
	assert_true(hi == 1.0);
}

static int
key_of(double x, int expect_rc)
{
	int key = 12345;

	assert_int_equal(tally_dds_key(x, &key), expect_rc);
	return key;
}

static void
test_key_at_edges(void **state)
{
	double lo, hi, prev_hi = 0;
	int k;

	for (k = 1; k <= TALLY_DDS_KEYS; k++) {
		assert_int_equal(tally_dds_key_bounds(k, &lo, &hi), 0);
		if (k > 1)
			assert_true(lo == prev_hi);
		prev_hi = hi;
		/* The edge itself belongs to the bucket below it: (gamma^(i-1), gamma^i]. */
		assert_int_equal(key_of(hi, 0), k);
		assert_int_equal(key_of(-hi, 0), -k);
		assert_int_equal(key_of(nextafter(hi, 0), 0), k);
		assert_int_equal(key_of(nextafter(lo, INFINITY), 0), k);
		assert_int_equal(key_of(-nextafter(lo, INFINITY), 0), -k);
		if (k < TALLY_DDS_KEYS) {
			assert_int_equal(key_of(nextafter(hi, INFINITY), 0), k + 1);
			assert_int_equal(key_of(-nextafter(hi, INFINITY), 0), -(k + 1));
		} else {
			assert_int_equal(key_of(nextafter(hi, INFINITY), TALLY_DDS_CLAMPED), k);
			assert_int_equal(key_of(-nextafter(hi, INFINITY), TALLY_DDS_CLAMPED), -k);
		}
		/* The bucket's value is within 1% of both ends. */
		assert_true(fabs(tally_dds_key_value(k) - hi) <= REL_TOL * hi);
		assert_true(fabs(tally_dds_key_value(k) - lo) <= REL_TOL * lo);
		assert_true(tally_dds_key_value(-k) == -tally_dds_key_value(k));
	}
	/* The lower range edge is outside: clamped into key 1. */
	assert_int_equal(tally_dds_key_bounds(1, &lo, &hi), 0);
	assert_int_equal(key_of(lo, TALLY_DDS_CLAMPED), 1);
	assert_int_equal(key_of(-lo, TALLY_DDS_CLAMPED), -1);
	assert_int_equal(tally_dds_key_bounds(TALLY_DDS_KEYS + 1, &lo, &hi), -EINVAL);
	assert_int_equal(tally_dds_key_bounds(-TALLY_DDS_KEYS - 1, &lo, &hi), -EINVAL);
	assert_int_equal(tally_dds_key_bounds(-5, &lo, &hi), 0);
	assert_true(lo < hi && hi < 0);
}

/* Away from the edges, the table agrees with ceil(log(x) / log(gamma)). */
static void
test_key_vs_log(void **state)
{
	const long double lg = logl(101.0L / 99.0L);
	uint64_t st = 7;
	int n, checked = 0;

	for (n = 0; n < 200000; n++) {
		double x = exp(log(1e-9) + rnd_unit(&st) * (log(1e12) - log(1e-9)));
		long double l = logl(x) / lg;
		int idx = (int)ceill(l);

		if (fabsl(l - roundl(l)) < 1e-9L)
			continue;
		assert_int_equal(key_of(x, 0), idx - TALLY_DDS_INDEX_MIN + 1);
		checked++;
	}
	assert_true(checked > 199000);
}

static void
test_key_special(void **state)
{
	int key;

	assert_int_equal(key_of(0.0, 0), 0);
	assert_int_equal(key_of(-0.0, 0), 0);
	/* Subnormals and tiny normals: below the range. */
	assert_int_equal(key_of(DBL_TRUE_MIN, TALLY_DDS_CLAMPED), 1);
	assert_int_equal(key_of(-DBL_TRUE_MIN, TALLY_DDS_CLAMPED), -1);
	assert_int_equal(key_of(1e-310, TALLY_DDS_CLAMPED), 1);
	assert_int_equal(key_of(DBL_MIN, TALLY_DDS_CLAMPED), 1);
	assert_int_equal(key_of(9.8e-10, TALLY_DDS_CLAMPED), 1);
	/* The documented range ends are inside. */
	assert_int_equal(key_of(1e-9, 0), 1);
	assert_int_equal(key_of(-1e-9, 0), -1);
	assert_int_equal(key_of(1e12, 0), TALLY_DDS_KEYS);
	assert_int_equal(key_of(1.0, 0), -TALLY_DDS_INDEX_MIN + 1);
	/* Above the range, infinities included. */
	assert_int_equal(key_of(1.01e12, TALLY_DDS_CLAMPED), TALLY_DDS_KEYS);
	assert_int_equal(key_of(DBL_MAX, TALLY_DDS_CLAMPED), TALLY_DDS_KEYS);
	assert_int_equal(key_of(INFINITY, TALLY_DDS_CLAMPED), TALLY_DDS_KEYS);
	assert_int_equal(key_of(-INFINITY, TALLY_DDS_CLAMPED), -TALLY_DDS_KEYS);
	assert_int_equal(tally_dds_key(NAN, &key), -EINVAL);
	assert_int_equal(tally_dds_key(-NAN, &key), -EINVAL);
}

static void
test_add_clamped_zero_nan(void **state)
{
	struct tally_dds *s = dds_new(16);
	int key;
	uint64_t count;
	double v;

	assert_int_equal(tally_dds_add(s, 1e-300), 0);
	assert_int_equal(tally_dds_add(s, -1e300), 0);
	assert_int_equal(tally_dds_add(s, 1e15), 0);
	assert_int_equal(tally_dds_add(s, INFINITY), 0);
	assert_int_equal(tally_dds_add(s, 0.0), 0);
	assert_int_equal(tally_dds_add(s, -0.0), 0);
	assert_int_equal(tally_dds_add(s, 5e-324), 0);
	assert_int_equal(tally_dds_add(s, NAN), -EINVAL);
	assert_int_equal(tally_dds_count(s), 7);
	assert_int_equal(s->clamped, 5);
	assert_int_equal(s->zero, 2);
	assert_int_equal(s->folded, 0);
	assert_int_equal(s->used, 3);
	assert_int_equal(tally_dds_bucket(s, 0, &key, &count), 0);
	assert_int_equal(key, -TALLY_DDS_KEYS);
	assert_int_equal(count, 1);
	assert_int_equal(tally_dds_bucket(s, 1, &key, &count), 0);
	assert_int_equal(key, 1);
	assert_int_equal(count, 2);
	assert_int_equal(tally_dds_bucket(s, 2, &key, &count), 0);
	assert_int_equal(key, TALLY_DDS_KEYS);
	assert_int_equal(count, 2);
	assert_int_equal(tally_dds_bucket(s, 3, &key, &count), -ERANGE);
	/* Rank order: -1e300, 0, 0, tiny, tiny, big, big. */
	assert_int_equal(tally_dds_quantile(s, 0, &v), 0);
	assert_true(v == tally_dds_key_value(-TALLY_DDS_KEYS));
	assert_int_equal(tally_dds_quantile(s, 0.25, &v), 0);
	assert_true(v == 0);
	assert_int_equal(tally_dds_quantile(s, 0.5, &v), 0);
	assert_true(v == tally_dds_key_value(1));
	assert_int_equal(tally_dds_quantile(s, 1, &v), 0);
	assert_true(v == tally_dds_key_value(TALLY_DDS_KEYS));
	assert_int_equal(tally_dds_quantile(s, 1.5, &v), -EINVAL);
	assert_int_equal(tally_dds_quantile(s, -0.1, &v), -EINVAL);
	assert_int_equal(tally_dds_quantile(s, NAN, &v), -EINVAL);
	tally_dds_reset(s);
	assert_int_equal(tally_dds_count(s), 0);
	assert_int_equal(s->clamped, 0);
	assert_int_equal(tally_dds_quantile(s, 0.5, &v), -ENOENT);
	dds_free(s);
}

static void
test_init_args(void **state)
{
	uint64_t mem[16];

	assert_int_equal(tally_dds_memsize(0), 0);
	assert_int_equal(tally_dds_memsize(TALLY_DDS_CAP_MAX + 1), 0);
	assert_int_equal(tally_dds_memsize(1), 48);
	assert_int_equal(tally_dds_memsize(64), 672);
	assert_int_equal(tally_dds_memsize(TALLY_DDS_CAP_MAX),
			 (32 + 10 * TALLY_DDS_CAP_MAX + 7) & ~7);
	assert_null(tally_dds_init(NULL, 1));
	assert_null(tally_dds_init((uint8_t *)mem + 4, 1));
	assert_null(tally_dds_init(mem, 0));
	assert_non_null(tally_dds_init(mem, 1));
	assert_int_equal(tally_dds_add_key((struct tally_dds *)mem, TALLY_DDS_KEYS + 1, 1),
			 -EINVAL);
}

/* A full store folds into the nearest bucket present, counted; nothing is lost. */
static void
test_fold_policy(void **state)
{
	struct tally_dds *s = dds_new(4);
	static const int keys[] = {10, 20, 30, 40};
	static const struct {
		int key, into;
	} folds[] = {{24, 20}, {25, 20}, {26, 30}, {5, 10}, {50, 40}, {-3, 10}, {2000, 40}};
	uint64_t count;
	unsigned int i;
	int key;

	for (i = 0; i < 4; i++)
		assert_int_equal(tally_dds_add(s, tally_dds_key_value(keys[i])), 0);
	for (i = 0; i < sizeof(folds) / sizeof(folds[0]); i++) {
		uint64_t before[4];
		unsigned int j;

		for (j = 0; j < 4; j++)
			tally_dds_bucket(s, j, &key, &before[j]);
		assert_int_equal(tally_dds_add(s, tally_dds_key_value(folds[i].key)), 0);
		for (j = 0; j < 4; j++) {
			tally_dds_bucket(s, j, &key, &count);
			assert_int_equal(key, keys[j]);
			assert_int_equal(count, before[j] + (key == folds[i].into));
		}
	}
	assert_int_equal(s->folded, 7);
	assert_int_equal(s->used, 4);
	assert_int_equal(tally_dds_count(s), 11);
	/* Zero never takes a store entry. */
	assert_int_equal(tally_dds_add(s, 0), 0);
	assert_int_equal(s->zero, 1);
	assert_int_equal(s->folded, 7);
	dds_free(s);
}

static void
test_quantiles(void **state)
{
	int d;

	for (d = 0; d < N_DIST; d++) {
		double *v = make_data(d, 1000 + d);
		struct tally_dds *s = dds_new(TALLY_DDS_CAP_MAX);
		int i;

		for (i = 0; i < N_VALUES; i++)
			assert_int_equal(tally_dds_add(s, v[i]), 0);
		assert_int_equal(s->clamped, 0);
		assert_int_equal(s->folded, 0);
		qsort(v, N_VALUES, sizeof(*v), cmp_double);
		check_quantiles(s, v, N_VALUES, dist_name[d]);
		dds_free(s);
		test_free(v);
	}
}

static void
shuffle(int *a, int n, uint64_t *st)
{
	int i;

	for (i = n - 1; i > 0; i--) {
		int j = (int)(rnd_next(st) % (uint64_t)(i + 1)), t = a[i];

		a[i] = a[j];
		a[j] = t;
	}
}

/* Sketches of random splits, merged in random orders, equal the whole one byte for byte. */
static void
test_merge_splits(void **state)
{
	uint64_t st = 99;
	int d;

	for (d = 0; d < N_DIST; d++) {
		double *v = make_data(d, 2000 + d);
		struct tally_dds *whole = dds_new(TALLY_DDS_CAP_MAX);
		int trial, i;

		for (i = 0; i < N_VALUES; i++)
			tally_dds_add(whole, v[i]);
		for (trial = 0; trial < 3; trial++) {
			int parts = 2 + (int)(rnd_next(&st) % 7), order[8], p;
			struct tally_dds *part[8], *merged = dds_new(TALLY_DDS_CAP_MAX);

			for (p = 0; p < parts; p++) {
				part[p] = dds_new(TALLY_DDS_CAP_MAX);
				order[p] = p;
			}
			for (i = 0; i < N_VALUES; i++)
				tally_dds_add(part[rnd_next(&st) % (uint64_t)parts], v[i]);
			shuffle(order, parts, &st);
			for (p = 0; p < parts; p++)
				tally_dds_merge(merged, part[order[p]]);
			assert_same_sketch(merged, whole);
			for (p = 0; p < parts; p++)
				dds_free(part[p]);
			dds_free(merged);
		}
		qsort(v, N_VALUES, sizeof(*v), cmp_double);
		check_quantiles(whole, v, N_VALUES, dist_name[d]);
		dds_free(whole);
		test_free(v);
	}
}

/* (a + b) + c == a + (b + c), a + b == b + a, and merging serialised forms agrees. */
static void
test_merge_laws(void **state)
{
	double *v = make_data(SIGNED, 77);
	struct tally_dds *a = dds_new(TALLY_DDS_CAP_MAX), *b = dds_new(TALLY_DDS_CAP_MAX);
	struct tally_dds *c = dds_new(TALLY_DDS_CAP_MAX), *x = dds_new(TALLY_DDS_CAP_MAX);
	struct tally_dds *y = dds_new(TALLY_DDS_CAP_MAX), *t = dds_new(TALLY_DDS_CAP_MAX);
	static uint8_t buf[65536];
	int i, n;

	for (i = 0; i < N_VALUES; i++)
		tally_dds_add(i % 3 == 0 ? a : i % 3 == 1 ? b : c, v[i] * (i % 7 == 0 ? 1e6 : 1));
	tally_dds_add(a, 1e300);
	tally_dds_add(b, -1e-300);

	/* x = (a + b) + c */
	tally_dds_merge(x, a);
	tally_dds_merge(x, b);
	tally_dds_merge(x, c);
	/* y = a + (b + c) */
	tally_dds_merge(t, b);
	tally_dds_merge(t, c);
	tally_dds_merge(y, a);
	tally_dds_merge(y, t);
	assert_same_sketch(x, y);
	assert_int_equal(x->clamped, 2);

	/* b + a == a + b */
	tally_dds_reset(t);
	tally_dds_merge(t, b);
	tally_dds_merge(t, a);
	tally_dds_reset(y);
	tally_dds_merge(y, a);
	tally_dds_merge(y, b);
	assert_same_sketch(t, y);

	/* Merging bytes equals merging sketches. */
	tally_dds_reset(y);
	n = serialise(a, buf, sizeof(buf));
	assert_int_equal(tally_dds_merge_bytes(y, buf, n), 0);
	n = serialise(b, buf, sizeof(buf));
	assert_int_equal(tally_dds_merge_bytes(y, buf, n), 0);
	assert_same_sketch(t, y);

	/* A sketch merged into itself doubles. */
	tally_dds_reset(t);
	tally_dds_merge(t, a);
	tally_dds_merge(t, a);
	tally_dds_merge(a, a);
	assert_same_sketch(t, a);

	dds_free(a);
	dds_free(b);
	dds_free(c);
	dds_free(x);
	dds_free(y);
	dds_free(t);
	test_free(v);
}

/* A destination too small for the union folds the rest, counted; the total stays exact. */
static void
test_merge_small_dst(void **state)
{
	struct tally_dds *a = dds_new(64), *b = dds_new(64), *d = dds_new(8);
	int i;

	for (i = 0; i < 40; i++) {
		tally_dds_add(a, 1.0 + i);
		tally_dds_add(b, 1000.0 + i * 10);
	}
	assert_int_equal(a->folded + b->folded, 0);
	tally_dds_merge(d, a);
	tally_dds_merge(d, b);
	assert_int_equal(tally_dds_buckets(d), 8);
	assert_int_equal(tally_dds_count(d), 80);
	assert_true(d->folded > 0);
	assert_true(d->folded <= 80 - 8);
	dds_free(a);
	dds_free(b);
	dds_free(d);
}

static struct tally_dds *
sample_sketch(void)
{
	struct tally_dds *s = dds_new(TALLY_DDS_CAP_MAX);
	double *v = make_data(SIGNED, 5);
	int i;

	for (i = 0; i < 2000; i++)
		tally_dds_add(s, v[i]);
	tally_dds_add(s, 1e20);
	for (i = 0; i < 300; i++)
		tally_dds_add(s, 42.0);
	test_free(v);
	return s;
}

static void
test_roundtrip(void **state)
{
	struct tally_dds *s = sample_sketch(), *r = dds_new(TALLY_DDS_CAP_MAX);
	static uint8_t buf[65536], buf2[65536];
	int n, n2;

	n = serialise(s, buf, sizeof(buf));
	assert_int_equal(tally_dds_serialise(s, buf2, n - 1), -ENOSPC);
	assert_true((size_t)n <= 44 + 12 * (size_t)s->used);
	assert_int_equal(tally_dds_parse(r, buf, n), 0);
	n2 = serialise(r, buf2, sizeof(buf2));
	assert_int_equal(n, n2);
	assert_memory_equal(buf, buf2, n);
	assert_int_equal(r->clamped, 1);
	assert_int_equal(tally_dds_count(r), tally_dds_count(s));

	/* The empty sketch is 8 bytes. */
	tally_dds_reset(r);
	n = serialise(r, buf, sizeof(buf));
	assert_int_equal(n, 8);
	assert_memory_equal(buf, ((uint8_t[]){'D', 'S', 1, 0, 0, 0, 0, 0}), 8);
	dds_free(s);
	dds_free(r);
}

/* A failed merge_bytes leaves the destination as it was. */
static void
expect_reject(struct tally_dds *dst, const uint8_t *buf, size_t len)
{
	static uint8_t before[65536], after[65536];
	int nb = serialise(dst, before, sizeof(before)), na;

	assert_int_equal(tally_dds_merge_bytes(dst, buf, len), -EINVAL);
	na = serialise(dst, after, sizeof(after));
	assert_int_equal(na, nb);
	assert_memory_equal(before, after, na);
}

static void
test_parse_rejects(void **state)
{
	struct tally_dds *s = sample_sketch(), *d = dds_new(32);
	static uint8_t buf[65536], bad[65536];
	int n, i;

	tally_dds_add(d, 3.0);
	n = serialise(s, buf, sizeof(buf));
	/* Every truncation. */
	for (i = 0; i < n; i++)
		expect_reject(d, buf, i);
	expect_reject(d, NULL, 0);
	/* Trailing bytes. */
	memcpy(bad, buf, n);
	bad[n] = 0;
	expect_reject(d, bad, n + 1);
	/* Header fields. */
	for (i = 0; i < TALLY_DDS_HDR_LEN; i++) {
		memcpy(bad, buf, n);
		bad[i] ^= 0x01;
		expect_reject(d, bad, n);
	}
#define BYTES(...) ((const uint8_t[]){__VA_ARGS__}), sizeof((const uint8_t[]){__VA_ARGS__})
	/* A valid one-bucket sketch, then each field broken. */
	assert_int_equal(tally_dds_merge_bytes(d, BYTES('D', 'S', 1, 0, 0, 0, 0, 1, 2, 0)), 0);
	/* key 0 */
	expect_reject(d, BYTES('D', 'S', 1, 0, 0, 0, 0, 1, 0, 0));
	/* key 2420 (zigzag 4840 = 0xe8 0x25) and -2420 (4839) */
	expect_reject(d, BYTES('D', 'S', 1, 0, 0, 0, 0, 1, 0xe8, 0x25, 0));
	expect_reject(d, BYTES('D', 'S', 1, 0, 0, 0, 0, 1, 0xe7, 0x25, 0));
	/* the second key past the top: 2419, then +1 */
	expect_reject(d, BYTES('D', 'S', 1, 0, 0, 0, 0, 2, 0xe6, 0x25, 0, 0, 0));
	/* a second key landing on 0: -1 then +1 */
	expect_reject(d, BYTES('D', 'S', 1, 0, 0, 0, 0, 2, 1, 0, 0, 0));
	/* overlong varints: 0 spelled in two bytes, and ten bytes past 64 bits */
	expect_reject(d, BYTES('D', 'S', 1, 0, 0x80, 0x00, 0, 0, 0));
	expect_reject(d, BYTES('D', 'S', 1, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
			       0x02, 0, 0, 0));
	/* a count of 2^64 (count - 1 = UINT64_MAX) */
	expect_reject(d, BYTES('D', 'S', 1, 0, 0, 0, 0, 1, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
			       0xff, 0xff, 0xff, 0x01));
	/* a total over UINT64_MAX: zero = 2^63, a bucket of 2^63 */
	expect_reject(d, BYTES('D', 'S', 1, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
			       0x01, 0, 0, 1, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
			       0x7f));
	/* more buckets than keys exist */
	expect_reject(d, BYTES('D', 'S', 1, 0, 0, 0, 0, 0xe7, 0x25));
	/* bucket count says 2, one present */
	expect_reject(d, BYTES('D', 'S', 1, 0, 0, 0, 0, 2, 2, 0));
	/* The largest total is fine. */
	tally_dds_reset(d);
	assert_int_equal(
		tally_dds_merge_bytes(d, BYTES('D', 'S', 1, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
					       0x80, 0x80, 0x80, 0x01, 0, 0, 1, 2, 0xfe, 0xff, 0xff,
					       0xff, 0xff, 0xff, 0xff, 0xff, 0x7f)),
		0);
	assert_true(tally_dds_count(d) == UINT64_MAX);
#undef BYTES
	/* parse() of bad bytes leaves an empty sketch. */
	assert_int_equal(tally_dds_parse(d, buf, n - 1), -EINVAL);
	assert_int_equal(tally_dds_count(d), 0);
	dds_free(s);
	dds_free(d);
}

/* Any byte changed: rejected, or accepted and then written back the same (canonical). */
static void
test_parse_mutations(void **state)
{
	struct tally_dds *s = sample_sketch(), *r = dds_new(TALLY_DDS_CAP_MAX);
	static uint8_t buf[65536], bad[65536], out[65536];
	static const uint8_t xors[] = {0x01, 0x80, 0x7f, 0xff, 0x40};
	int n, i, accepted = 0, rejected = 0;
	unsigned int x;

	n = serialise(s, buf, sizeof(buf));
	for (i = 0; i < n; i++) {
		for (x = 0; x < sizeof(xors); x++) {
			memcpy(bad, buf, n);
			bad[i] ^= xors[x];
			if (tally_dds_parse(r, bad, n) == 0) {
				assert_int_equal(serialise(r, out, sizeof(out)), n);
				assert_memory_equal(out, bad, n);
				accepted++;
			} else {
				rejected++;
			}
		}
	}
	print_message("mutations: %d accepted (canonical), %d rejected\n", accepted, rejected);
	dds_free(s);
	dds_free(r);
}

/* Buckets in value order, their bounds contain their values, counts add up. */
static void
test_bucket_iteration(void **state)
{
	struct tally_dds *s = sample_sketch();
	uint64_t total = s->zero, count;
	int key, prev = -TALLY_DDS_KEYS - 1;
	unsigned int n;

	for (n = 0; tally_dds_bucket(s, n, &key, &count) == 0; n++) {
		double lo, hi, v = tally_dds_key_value(key);

		assert_true(key > prev);
		assert_true(key != 0);
		assert_true(count > 0);
		prev = key;
		assert_int_equal(tally_dds_key_bounds(key, &lo, &hi), 0);
		assert_true(lo < v && v < hi);
		total += count;
	}
	assert_int_equal(n, s->used);
	assert_int_equal(total, tally_dds_count(s));
	dds_free(s);
}


/* A dense store holds the same sketch as a sparse one: equal bytes, quantiles, merges. */
static void
test_dense_store(void **state)
{
	struct tally_dds *sp = dds_new(TALLY_DDS_CAP_MAX), *sp2 = dds_new(TALLY_DDS_CAP_MAX);
	size_t dlen = tally_dds_dense_memsize(TALLY_DDS_DENSE_MAX);
	void *dm = test_malloc(dlen), *dm2 = test_malloc(tally_dds_dense_memsize(8));
	struct tally_dds *de = tally_dds_init_dense(dm, TALLY_DDS_DENSE_MAX, -TALLY_DDS_KEYS), *sm;
	static uint8_t a[60000], b[60000];
	uint64_t st = 7;
	double qa, qb;
	int i, na, nb, lo, hi;

	(void)state;
	assert_non_null(de);
	assert_null(tally_dds_init_dense(dm, 8, TALLY_DDS_KEYS - 6)); /* past the last key */
	assert_int_equal(tally_dds_dense_memsize(0), 0);
	assert_int_equal(tally_dds_dense_memsize(TALLY_DDS_DENSE_MAX + 1), 0);
	for (i = 0; i < 20000; i++) {
		double v = exp(rnd_normal(&st) * 2) * (i % 5 == 0 ? -1 : 1) * (i % 97 == 0 ? 0 : 1);
		int key;

		tally_dds_add(sp, v);
		tally_dds_key(v, &key);
		if (key == 0)
			tally_dds_add_key(de, 0, 1);
		else
			tally_dds_dense_add(de, key, 1);
	}
	assert_int_equal(tally_dds_buckets(de), sp->used);
	na = tally_dds_serialise(sp, a, sizeof(a));
	nb = tally_dds_serialise(de, b, sizeof(b));
	assert_true(na > 0);
	assert_int_equal(na, nb);
	assert_memory_equal(a, b, (size_t)na);
	assert_int_equal(tally_dds_serial_size(de), (size_t)na);
	assert_int_equal(tally_dds_count(de), tally_dds_count(sp));
	for (i = 0; i <= 1000; i++) {
		assert_int_equal(tally_dds_quantile(sp, i / 1000.0, &qa), 0);
		assert_int_equal(tally_dds_quantile(de, i / 1000.0, &qb), 0);
		assert_true(qa == qb);
	}
	assert_int_equal(tally_dds_key_range(sp, &lo, &hi), 0);
	assert_int_equal(tally_dds_key_range(de, &na, &nb), 0);
	assert_int_equal(lo, na);
	assert_int_equal(hi, nb);
	/* merges either way round give the sparse merge's bytes */
	tally_dds_merge(sp2, de);
	na = tally_dds_serialise(sp2, b, sizeof(b));
	assert_int_equal(tally_dds_serial_size(sp), (size_t)na);
	assert_memory_equal(a, b, (size_t)na);
	/* a small dense store folds what falls outside it into its nearer end, counted */
	sm = tally_dds_init_dense(dm2, 8, 100);
	assert_non_null(sm);
	tally_dds_add_key(sm, 50, 3);
	tally_dds_add_key(sm, 104, 1);
	tally_dds_add_key(sm, 900, 2);
	assert_int_equal(sm->folded, 5);
	assert_int_equal(sm->counts[0], 3);
	assert_int_equal(sm->counts[7], 2);
	assert_int_equal(tally_dds_count(sm), 6);
	assert_int_equal(tally_dds_buckets(sm), 3);
	tally_dds_reset(sm);
	assert_int_equal(tally_dds_count(sm), 0);
	assert_int_equal(tally_dds_key_range(sm, &lo, &hi), -ENOENT);
	test_free(dm2);
	test_free(dm);
	dds_free(sp2);
	dds_free(sp);
}

int
main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_edges_exact),
		cmocka_unit_test(test_key_at_edges),
		cmocka_unit_test(test_key_vs_log),
		cmocka_unit_test(test_key_special),
		cmocka_unit_test(test_add_clamped_zero_nan),
		cmocka_unit_test(test_init_args),
		cmocka_unit_test(test_fold_policy),
		cmocka_unit_test(test_quantiles),
		cmocka_unit_test(test_merge_splits),
		cmocka_unit_test(test_merge_laws),
		cmocka_unit_test(test_merge_small_dst),
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_parse_rejects),
		cmocka_unit_test(test_parse_mutations),
		cmocka_unit_test(test_bucket_iteration),
		cmocka_unit_test(test_dense_store),
	};
	/* clang-format on */

	return cmocka_run_group_tests(tests, NULL, NULL);
}
