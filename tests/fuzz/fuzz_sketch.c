/* SPDX-License-Identifier: BSD-3-Clause */
/* libFuzzer harness of lib/sketch: DDSketch and Redis HLL parsers, merges and their laws. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tally_ddsketch.h"
#include "tally_hll.h"

/*
 * Every input is tried whole as a serialised DDSketch and as a Redis HLL string. An input
 * 'M', len (2 bytes LE), A (len bytes), B is also tried as a pair: both parsed, then merged
 * both ways and through the byte-level merges, which must all agree.
 */
#define SMALL_CAP 4

static struct tally_dds *da, *db, *dm1, *dm2, *dsmall;
static struct tally_hll ha, hb, hm1, hm2;
static uint8_t out1[65536], out2[65536];

static struct tally_dds *
dds_alloc(unsigned int cap)
{
	void *mem = aligned_alloc(8, (tally_dds_memsize(cap) + 7) & ~(size_t)7);

	if (mem == NULL)
		abort();
	return tally_dds_init(mem, cap);
}

static void
setup(void)
{
	if (da != NULL)
		return;
	da = dds_alloc(TALLY_DDS_CAP_MAX);
	db = dds_alloc(TALLY_DDS_CAP_MAX);
	dm1 = dds_alloc(TALLY_DDS_CAP_MAX);
	dm2 = dds_alloc(TALLY_DDS_CAP_MAX);
	dsmall = dds_alloc(SMALL_CAP);
}

static int
serialise(const struct tally_dds *s, uint8_t *buf)
{
	int n = tally_dds_serialise(s, buf, sizeof(out1));

	if (n <= 0 || (size_t)n != tally_dds_serial_size(s))
		abort();
	return n;
}

static void
same_dds(const struct tally_dds *x, const struct tally_dds *y)
{
	int n1 = serialise(x, out1), n2 = serialise(y, out2);

	if (n1 != n2 || memcmp(out1, out2, n1) != 0)
		abort();
}

static void
dds_one(const uint8_t *d, size_t n)
{
	int rc = tally_dds_parse(da, d, n);
	uint64_t count;
	double prev = -1e308, v;
	int k, len;

	/* Whether bytes are valid does not depend on the store they go into. */
	if (tally_dds_parse(dsmall, d, n) != rc)
		abort();
	if (rc != 0) {
		if (tally_dds_count(da) != 0)
			abort();
		return;
	}
	/* Canonical: what was accepted is written back byte for byte. */
	len = serialise(da, out1);
	if ((size_t)len != n || memcmp(out1, d, n) != 0)
		abort();
	/* Folding into a small store loses no value. */
	count = tally_dds_count(da);
	if (tally_dds_count(dsmall) != count || dsmall->used > SMALL_CAP)
		abort();
	for (k = 0; k <= 8; k++) {
		rc = tally_dds_quantile(da, k / 8.0, &v);
		if (count == 0) {
			if (rc != -ENOENT)
				abort();
			continue;
		}
		if (rc != 0 || v < prev)
			abort();
		prev = v;
	}
}

static void
dds_pair(const uint8_t *a, size_t na, const uint8_t *b, size_t nb)
{
	uint64_t ca, cb, sum;

	if (tally_dds_parse(da, a, na) != 0 || tally_dds_parse(db, b, nb) != 0)
		return;
	tally_dds_reset(dm1);
	tally_dds_merge(dm1, da);
	tally_dds_merge(dm1, db);
	tally_dds_reset(dm2);
	tally_dds_merge(dm2, db);
	tally_dds_merge(dm2, da);
	same_dds(dm1, dm2);
	if (tally_dds_parse(dm2, a, na) != 0 || tally_dds_merge_bytes(dm2, b, nb) != 0)
		abort();
	same_dds(dm1, dm2);
	ca = tally_dds_count(da);
	cb = tally_dds_count(db);
	if (!__builtin_add_overflow(ca, cb, &sum)) {
		if (tally_dds_count(dm1) != sum)
			abort();
		tally_dds_parse(dsmall, a, na);
		tally_dds_merge(dsmall, db);
		if (tally_dds_count(dsmall) != sum)
			abort();
	}
}

static void
hll_one(const uint8_t *d, size_t n)
{
	int rc = tally_hll_parse(&ha, d, n);

	tally_hll_init(&hb);
	if (tally_hll_merge_raw(&hb, d, n) != rc)
		abort();
	if (rc != 0)
		return;
	/* Parsing and merging into an empty HLL give the same registers. */
	if (memcmp(ha.raw + TALLY_HLL_HDR_SIZE, hb.raw + TALLY_HLL_HDR_SIZE,
		   TALLY_HLL_DENSE_SIZE - TALLY_HLL_HDR_SIZE) != 0)
		abort();
	/* What tally writes, tally reads back unchanged. */
	memcpy(&hm1, &ha, sizeof(ha));
	if (tally_hll_parse(&hm2, hm1.raw, sizeof(hm1.raw)) != 0 || memcmp(&hm1, &hm2, sizeof(hm1)))
		abort();
	if (tally_hll_estimate(&ha) != tally_hll_estimate(&hb))
		abort();
	tally_hll_count(&ha);
}

static void
hll_pair(const uint8_t *a, size_t na, const uint8_t *b, size_t nb)
{
	if (tally_hll_parse(&ha, a, na) != 0 || tally_hll_parse(&hb, b, nb) != 0)
		return;
	memcpy(&hm1, &ha, sizeof(ha));
	tally_hll_merge(&hm1, &hb);
	memcpy(&hm2, &hb, sizeof(hb));
	tally_hll_merge(&hm2, &ha);
	/* Registers commute; the header stays the destination's. */
	if (memcmp(hm1.raw + TALLY_HLL_HDR_SIZE, hm2.raw + TALLY_HLL_HDR_SIZE,
		   TALLY_HLL_DENSE_SIZE - TALLY_HLL_HDR_SIZE) != 0)
		abort();
	memcpy(&hm2, &ha, sizeof(ha));
	if (tally_hll_merge_raw(&hm2, b, nb) != 0 || memcmp(&hm1, &hm2, sizeof(hm1)) != 0)
		abort();
	/* Idempotent. */
	tally_hll_merge(&hm2, &hb);
	if (memcmp(&hm1, &hm2, sizeof(hm1)) != 0)
		abort();
	tally_hll_estimate(&hm1);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	setup();
	dds_one(data, size);
	hll_one(data, size);
	if (size >= 3 && data[0] == 'M') {
		size_t na = (size_t)data[1] | (size_t)data[2] << 8;

		if (na <= size - 3) {
			dds_pair(data + 3, na, data + 3 + na, size - 3 - na);
			hll_pair(data + 3, na, data + 3 + na, size - 3 - na);
		}
	}
	return 0;
}
