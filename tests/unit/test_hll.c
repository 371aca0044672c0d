/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of the Redis-format HyperLogLog: hash, registers, layout, sparse input, estimate. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>

#include "test.h"
#include "tally_hll.h"

static struct tally_hll *
hll_new(void)
{
	struct tally_hll *h = test_malloc(sizeof(*h));

	assert_non_null(h);
	tally_hll_init(h);
	return h;
}

/* MurmurHash64A vectors of the reference C implementation (as Apache commons-codec's
 * MurmurHash2Test lists them): lengths 16 down to 0 cover every tail case. */
static const uint8_t mm_in[][16] = {
	{0xed, 0x53, 0xc4, 0xa5, 0x3b, 0x1b, 0xbd, 0xc2, 0x52, 0x7d, 0xc3, 0xef, 0x53, 0x5f, 0xae,
	 0x3b},
	{0x21, 0x65, 0x59, 0x4e, 0xd8, 0x12, 0xf9, 0x05, 0x80, 0xe9, 0x1e, 0xed, 0xe4, 0x56, 0xbb},
	{0x2b, 0x02, 0xb1, 0xd0, 0x3d, 0xce, 0x31, 0x3d, 0x97, 0xc4, 0x91, 0x0d, 0xf7, 0x17},
	{0x8e, 0xa7, 0x9a, 0x02, 0xe8, 0xb9, 0x6a, 0xda, 0x92, 0xad, 0xe9, 0x2d, 0x21},
	{0xa9, 0x6d, 0xea, 0x77, 0x06, 0xce, 0x1b, 0x85, 0x48, 0x27, 0x4c, 0xfe},
	{0xec, 0x93, 0xa0, 0x12, 0x60, 0xee, 0xc8, 0x0a, 0xc5, 0x90, 0x62},
	{0x55, 0x6d, 0x93, 0x66, 0x14, 0x6d, 0xdf, 0x00, 0x58, 0x99},
	{0x3c, 0x72, 0x20, 0x1f, 0xd2, 0x59, 0x19, 0xdb, 0xa1},
	{0x23, 0xa8, 0xb1, 0x87, 0x55, 0xf7, 0x8a, 0x4b},
	{0xe2, 0x42, 0x1c, 0x2d, 0xc1, 0xe4, 0x3e},
	{0x66, 0xa6, 0xb5, 0x5a, 0x74, 0xd9},
	{0xe8, 0x76, 0xa8, 0x90, 0x76},
	{0xeb, 0x25, 0x3f, 0x87},
	{0x37, 0xa0, 0xa9},
	{0x5b, 0x5d},
	{0x7e},
	{0},
};
static const uint64_t mm_default_seed[] = {
	0x4987cb15118a83d9ull, 0x28e2a79e3f0394d9ull, 0x8f4600d786fc5c05ull, 0xa09b27fea4b54af3ull,
	0x25f34447525bfd1eull, 0x32fad4c21379c7bfull, 0x4b30b99a9d931921ull, 0x4e5dab004f936cdbull,
	0x06825c27bc96cf40ull, 0xff4bf2f8a4823905ull, 0x7f7e950c064e6367ull, 0x821ade90caaa5889ull,
	0x6d28c915d791686aull, 0x9c32649372163ba2ull, 0xd66ae956c14d5212ull, 0x38ed30ee5161200full,
	0x9bfae0a4e613fc3cull,
};
static const uint64_t mm_test_seed[] = {
	0x0822b1481a92e97bull, 0xf8a9223fef0822ddull, 0x4b49e56affae3a89ull, 0xc970296e32e1d1c1ull,
	0xe2f9f88789f1b08full, 0x2b0459d9b4c10c61ull, 0x377e97ea9197ee89ull, 0xd2ccad460751e0e7ull,
	0xff162ca8d6da8c47ull, 0xf12e051405769857ull, 0xdabba41293d5b035ull, 0xacf326b0bb690d0eull,
	0x0617f431bc1a8e04ull, 0x15b81f28d576e1b2ull, 0x28c1fe59e4f8e5baull, 0x694dd315c9354ca9ull,
	0xa97052a8f088ae6cull,
};

static void
test_murmur_vectors(void **state)
{
	size_t i;

	for (i = 0; i < sizeof(mm_in) / sizeof(mm_in[0]); i++) {
		size_t len = 16 - i;

		assert_true(tally_murmur64a(mm_in[i], len, 0xe17a1465) == mm_default_seed[i]);
		assert_true(tally_murmur64a(mm_in[i], len, 0x344d1f5c) == mm_test_seed[i]);
	}
	/* Empty input, seed 0: every step multiplies zero. */
	assert_true(tally_murmur64a("", 0, 0) == 0);
}

/* The inline 8-byte hash of a record's element is the general one of its 8 bytes. */
static void
test_pattern_u64(void **state)
{
	uint64_t v = 0x9e3779b97f4a7c15ull;
	int i, b;

	for (i = 0; i < 100000; i++) {
		uint8_t le[8];
		uint32_t idx1, idx2;
		unsigned int p1, p2;

		v = v * 6364136223846793005ull + 1442695040888963407ull;
		for (b = 0; b < 8; b++)
			le[b] = (uint8_t)(v >> (8 * b));
		p1 = tally_hll_pattern_u64(i < 4 ? (uint64_t)i : v, &idx1);
		if (i < 4)
			for (b = 0; b < 8; b++)
				le[b] = (uint8_t)((uint64_t)i >> (8 * b));
		p2 = tally_hll_pattern(tally_murmur64a(le, 8, TALLY_HLL_SEED), &idx2);
		assert_int_equal(p1, p2);
		assert_int_equal(idx1, idx2);
		assert_true(p1 >= 1 && p1 <= TALLY_HLL_Q + 1);
	}
}

/* Redis's HLL_DENSE_SET_REGISTER, on a buffer with the spare byte its sds strings have. */
static void
redis_dense_set(uint8_t *p, unsigned long regnum, unsigned long val)
{
	unsigned long byte = regnum * 6 / 8, fb = regnum * 6 & 7, fb8 = 8 - fb;

	p[byte] &= ~(63 << fb);
	p[byte] |= val << fb;
	p[byte + 1] &= ~(63 >> fb8);
	p[byte + 1] |= val >> fb8;
}

static void
test_dense_layout(void **state)
{
	struct tally_hll *h = hll_new();
	static uint8_t ref[TALLY_HLL_DENSE_SIZE - TALLY_HLL_HDR_SIZE + 1];
	uint64_t st = 1;
	uint32_t i;

	assert_int_equal(sizeof(*h), 12304);
	assert_memory_equal(h->raw, "HYLL\0\0\0\0\0\0\0\0\0\0\0\0", 16);
	for (i = TALLY_HLL_HDR_SIZE; i < TALLY_HLL_DENSE_SIZE; i++)
		assert_int_equal(h->raw[i], 0);

	/* Register 0 is the low 6 bits of byte 0; 1 straddles bytes 0-1; the last is the top
	 * 6 bits of the last byte. */
	assert_int_equal(tally_hll_update(h, 0, 63), 1);
	assert_int_equal(h->raw[16], 0x3f);
	assert_int_equal(tally_hll_update(h, 1, 63), 1);
	assert_int_equal(h->raw[16], 0xff);
	assert_int_equal(h->raw[17], 0x0f);
	assert_int_equal(tally_hll_update(h, TALLY_HLL_REGISTERS - 1, 0x2a), 1);
	assert_int_equal(h->raw[TALLY_HLL_DENSE_SIZE - 1], 0x2a << 2);
	/* A change marks the cached cardinality stale: top bit of its last byte. */
	assert_int_equal(h->raw[15], 0x80);
	assert_int_equal(tally_hll_update(h, 1, 5), 0);
	assert_int_equal(tally_hll_register(h, 1), 63);

	/* Random registers, set the way Redis sets them, give the same bytes. */
	tally_hll_init(h);
	memset(ref, 0, sizeof(ref));
	for (i = 0; i < 200000; i++) {
		uint64_t r = st = st * 6364136223846793005ull + 1442695040888963407ull;
		uint32_t idx = (uint32_t)(r >> 20) & (TALLY_HLL_REGISTERS - 1);
		unsigned int val = (unsigned int)(r >> 40) & 63;

		if (tally_hll_update(h, idx, val))
			redis_dense_set(ref, idx, val);
	}
	assert_memory_equal(h->raw + TALLY_HLL_HDR_SIZE, ref, sizeof(ref) - 1);
	for (i = 0; i < TALLY_HLL_REGISTERS; i++) {
		unsigned long byte = i * 6 / 8, fb = i * 6 & 7;
		unsigned int want = ((ref[byte] >> fb) | (ref[byte + 1] << (8 - fb))) & 63;

		assert_int_equal(tally_hll_register(h, i), want);
	}
	test_free(h);
}

/*
 * Registers redis-server 7.0.15 set for single elements (PFADD of the 8 little-endian bytes
 * of v into an empty key, then PFDEBUG GETREG): ties the hash, seed, index and run length.
 */
static const struct {
	uint64_t v;
	uint32_t idx;
	unsigned int val;
} redis_regs[] = {
	{0x0ull, 849, 1},
	{0x1ull, 6338, 1},
	{0x2aull, 7126, 1},
	{0x8000000000000000ull, 360, 4},
	{0xffffffffffffffffull, 13333, 2},
	{0x2a3ull, 14306, 9},
	{0x50eull, 14585, 11},
	{0x691ull, 5293, 12},
	{0xa61ull, 14271, 15},
	{0xc3dull, 11188, 13},
};

static void
test_registers_like_redis(void **state)
{
	struct tally_hll *h = hll_new();
	size_t i;

	for (i = 0; i < sizeof(redis_regs) / sizeof(redis_regs[0]); i++) {
		uint32_t r;

		tally_hll_init(h);
		assert_int_equal(tally_hll_add_u64(h, redis_regs[i].v), 1);
		assert_int_equal(tally_hll_add_u64(h, redis_regs[i].v), 0);
		for (r = 0; r < TALLY_HLL_REGISTERS; r++)
			assert_int_equal(tally_hll_register(h, r),
					 r == redis_regs[i].idx ? redis_regs[i].val : 0);
		assert_int_equal(tally_hll_estimate(h), 1);
	}
	/* add_u64 hashes the little-endian bytes: the same as add() on them. */
	for (i = 0; i < 1000; i++) {
		struct tally_hll *g = hll_new();
		uint64_t v = i * 0x9e3779b97f4a7c15ull;
		uint8_t le[8];
		int b;

		for (b = 0; b < 8; b++)
			le[b] = (uint8_t)(v >> (8 * b));
		tally_hll_init(h);
		tally_hll_add_u64(h, v);
		tally_hll_add(g, le, sizeof(le));
		assert_memory_equal(h->raw, g->raw, sizeof(h->raw));
		test_free(g);
	}
	test_free(h);
}

/* 1, 100, 10,000 and 1,000,000 distinct elements: estimates within 2%. */
static void
test_estimates(void **state)
{
	struct tally_hll *h = hll_new();
	static const uint64_t sizes[] = {1, 100, 10000, 1000000};
	uint64_t n = 0;
	size_t s;

	assert_int_equal(tally_hll_estimate(h), 0);
	for (s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		uint64_t est;
		double err;

		for (; n < sizes[s]; n++)
			tally_hll_add_u64(h, n * 0x9e3779b97f4a7c15ull + 12345);
		est = tally_hll_estimate(h);
		err = fabs((double)est - (double)n) / (double)n;
		print_message("%7" PRIu64 " distinct: estimate %7" PRIu64 " (%.3f%%)\n", n, est,
			      100 * err);
		assert_true(err <= 0.02);
		/* Adding them again changes nothing. */
		assert_int_equal(tally_hll_add_u64(h, 12345), 0);
	}
	test_free(h);
}

/* PFCOUNT's cache: stale after a change, then filled; a valid cache is answered as is. */
static void
test_count_cache(void **state)
{
	struct tally_hll *h = hll_new();
	int i;

	assert_int_equal(tally_hll_count(h), 0);
	for (i = 0; i < 1000; i++)
		tally_hll_add_u64(h, (uint64_t)i);
	assert_true(h->raw[15] & 0x80);
	assert_int_equal(tally_hll_count(h), tally_hll_estimate(h));
	assert_false(h->raw[15] & 0x80);
	assert_int_equal(h->raw[8] | h->raw[9] << 8, tally_hll_estimate(h));
	/* A (forged) valid cache is what PFCOUNT answers. */
	h->raw[8] = 7;
	h->raw[9] = 0;
	assert_int_equal(tally_hll_count(h), 7);
	test_free(h);
}

static void
test_merge(void **state)
{
	struct tally_hll *a = hll_new(), *b = hll_new(), *u = hll_new(), *m = hll_new();
	int i;

	for (i = 0; i < 30000; i++) {
		uint64_t v = (uint64_t)i * 2654435761u;

		tally_hll_add_u64(i < 20000 ? a : b, v);
		if (i >= 10000 && i < 20000)
			tally_hll_add_u64(b, v);
		tally_hll_add_u64(u, v);
	}
	/* Register-wise max: a + b has the registers of the union, in either order. */
	memcpy(m, a, sizeof(*m));
	tally_hll_merge(m, b);
	assert_memory_equal(m->raw + 16, u->raw + 16, TALLY_HLL_DENSE_SIZE - 16);
	assert_true(m->raw[15] & 0x80);
	memcpy(m, b, sizeof(*m));
	tally_hll_merge(m, a);
	assert_memory_equal(m->raw + 16, u->raw + 16, TALLY_HLL_DENSE_SIZE - 16);
	/* Idempotent. */
	tally_hll_merge(m, a);
	assert_memory_equal(m->raw + 16, u->raw + 16, TALLY_HLL_DENSE_SIZE - 16);
	/* merge_raw of a's bytes equals merge of a. */
	memcpy(m, b, sizeof(*m));
	assert_int_equal(tally_hll_merge_raw(m, a->raw, sizeof(a->raw)), 0);
	assert_memory_equal(m->raw + 16, u->raw + 16, TALLY_HLL_DENSE_SIZE - 16);
	test_free(a);
	test_free(b);
	test_free(u);
	test_free(m);
}

/* Sparse strings built by hand. */
struct sparse {
	uint8_t b[40000];
	size_t n;
};

static void
sp_start(struct sparse *s)
{
	memcpy(s->b, "HYLL\x01\0\0\0\0\0\0\0\0\0\0\x80", 16);
	s->n = 16;
}

static void
sp_zero(struct sparse *s, unsigned int len) /* 1..64 */
{
	s->b[s->n++] = (uint8_t)(len - 1);
}

static void
sp_xzero(struct sparse *s, unsigned int len) /* 1..16384 */
{
	s->b[s->n++] = (uint8_t)(0x40 | (len - 1) >> 8);
	s->b[s->n++] = (uint8_t)((len - 1) & 0xff);
}

static void
sp_val(struct sparse *s, unsigned int val, unsigned int len) /* 1..32, 1..4 */
{
	s->b[s->n++] = (uint8_t)(0x80 | (val - 1) << 2 | (len - 1));
}

static void
expect_regs(const struct tally_hll *h, const uint32_t *idx, const unsigned int *val, int n)
{
	uint32_t r;
	int i;

	for (r = 0; r < TALLY_HLL_REGISTERS; r++) {
		unsigned int want = 0;

		for (i = 0; i < n; i++)
			if (idx[i] == r)
				want = val[i];
		assert_int_equal(tally_hll_register(h, r), want);
	}
}

static void
test_sparse_parse(void **state)
{
	struct tally_hll *h = hll_new();
	static struct sparse s;
	unsigned int i;

	/* The empty HLL Redis creates: XZERO:16384. */
	sp_start(&s);
	sp_xzero(&s, 16384);
	assert_int_equal(tally_hll_parse(h, s.b, s.n), 0);
	assert_int_equal(h->raw[4], TALLY_HLL_DENSE);
	assert_int_equal(h->raw[15], 0x80); /* the header is kept, as Redis does */
	expect_regs(h, NULL, NULL, 0);
	assert_int_equal(tally_hll_estimate(h), 0);

	/* hyperloglog.c's example: XZERO:1000 VAL:2,1 ZERO:19 VAL:3,2 XZERO:15362. */
	sp_start(&s);
	sp_xzero(&s, 1000);
	sp_val(&s, 2, 1);
	sp_zero(&s, 19);
	sp_val(&s, 3, 2);
	sp_xzero(&s, 15362);
	assert_int_equal(tally_hll_parse(h, s.b, s.n), 0);
	expect_regs(h, (uint32_t[]){1000, 1020, 1021}, (unsigned int[]){2, 3, 3}, 3);

	/* Every opcode at its limits: ZERO:64, VAL:32,4, VAL:1,1, and all ZERO/VAL otherwise. */
	sp_start(&s);
	sp_zero(&s, 64);
	sp_val(&s, 32, 4);
	sp_val(&s, 1, 1);
	for (i = 0; i < (16384 - 69) / 64; i++)
		sp_zero(&s, 64);
	sp_zero(&s, (16384 - 69) % 64);
	assert_int_equal(tally_hll_parse(h, s.b, s.n), 0);
	expect_regs(h, (uint32_t[]){64, 65, 66, 67, 68}, (unsigned int[]){32, 32, 32, 32, 1}, 5);

	/* merge_raw of a sparse string raises registers only. */
	tally_hll_init(h);
	tally_hll_update(h, 64, 40);
	tally_hll_update(h, 100, 3);
	assert_int_equal(tally_hll_merge_raw(h, s.b, s.n), 0);
	expect_regs(h, (uint32_t[]){64, 65, 66, 67, 68, 100},
		    (unsigned int[]){40, 32, 32, 32, 1, 3}, 6);

	/* A parsed sparse string and the dense one with the same registers agree. */
	sp_start(&s);
	for (i = 0; i < 16384 / 4; i++)
		sp_val(&s, 1 + i % 32, 4);
	assert_int_equal(tally_hll_parse(h, s.b, s.n), 0);
	for (i = 0; i < 16384; i++)
		assert_int_equal(tally_hll_register(h, i), 1 + (i / 4) % 32);
	test_free(h);
}

static void
expect_invalid(const uint8_t *b, size_t n)
{
	struct tally_hll *h = hll_new(), *before = hll_new();
	int i;

	for (i = 0; i < 100; i++)
		tally_hll_add_u64(h, (uint64_t)i);
	memcpy(before, h, sizeof(*h));
	assert_int_equal(tally_hll_merge_raw(h, b, n), -EINVAL);
	assert_memory_equal(h->raw, before->raw, sizeof(h->raw));
	assert_int_equal(tally_hll_parse(h, b, n), -EINVAL);
	assert_int_equal(tally_hll_estimate(h), 0);
	test_free(h);
	test_free(before);
}

static void
test_invalid(void **state)
{
	static struct sparse s;
	struct tally_hll *h = hll_new();
	static uint8_t dense[TALLY_HLL_DENSE_SIZE + 1];

	/* Runs short of 16,384, and past it. */
	sp_start(&s);
	sp_xzero(&s, 16383);
	expect_invalid(s.b, s.n);
	sp_zero(&s, 2);
	expect_invalid(s.b, s.n);
	sp_start(&s);
	sp_xzero(&s, 16382);
	sp_val(&s, 5, 3);
	expect_invalid(s.b, s.n);
	/* A VAL that would run past the end, then more. */
	sp_start(&s);
	sp_xzero(&s, 16383);
	sp_val(&s, 5, 4);
	expect_invalid(s.b, s.n);
	/* XZERO cut after its first byte. */
	sp_start(&s);
	sp_xzero(&s, 16384);
	expect_invalid(s.b, s.n - 1);
	/* Header only: no registers at all. */
	sp_start(&s);
	expect_invalid(s.b, s.n);
	expect_invalid(s.b, 15);
	expect_invalid(NULL, 0);
	/* Magic and encoding. */
	sp_start(&s);
	sp_xzero(&s, 16384);
	s.b[0] = 'h';
	expect_invalid(s.b, s.n);
	s.b[0] = 'H';
	s.b[4] = 2;
	expect_invalid(s.b, s.n);
	s.b[4] = 255; /* HLL_RAW is internal to Redis */
	expect_invalid(s.b, s.n);
	/* Dense strings of the wrong length. */
	memcpy(dense, h->raw, sizeof(h->raw));
	expect_invalid(dense, TALLY_HLL_DENSE_SIZE - 1);
	expect_invalid(dense, TALLY_HLL_DENSE_SIZE + 1);
	assert_int_equal(tally_hll_parse(h, dense, TALLY_HLL_DENSE_SIZE), 0);
	test_free(h);
}

int
main(void)
{
	/* clang-format off */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_murmur_vectors),
		cmocka_unit_test(test_pattern_u64),
		cmocka_unit_test(test_dense_layout),
		cmocka_unit_test(test_registers_like_redis),
		cmocka_unit_test(test_estimates),
		cmocka_unit_test(test_count_cache),
		cmocka_unit_test(test_merge),
		cmocka_unit_test(test_sparse_parse),
		cmocka_unit_test(test_invalid),
	};
	/* clang-format on */

	return cmocka_run_group_tests(tests, NULL, NULL);
}
