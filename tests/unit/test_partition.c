/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of device partitioning: owner hash, heavy hitters, ring hand-off and merge. */
#include <stdlib.h>

#include <rte_ring.h>
#include <rte_ring_elem.h>

#include "test.h"
#include "tally_partition.h"
#include "tally_window.h"

static void
test_owner_is_stable(void **state)
{
	/* Documented values: changing them would move every device to another worker. */
	assert_int_equal(tally_owner(tally_hash_device(1), 2), 1);
	assert_int_equal(tally_owner(tally_hash_device(1), 4), 2);
	assert_int_equal(tally_owner(tally_hash_device(42), 4),
			 tally_owner(tally_hash_device(42), 4));
	assert_int_equal(tally_owner(0, 7), 0);
	assert_int_equal(tally_owner(UINT64_MAX, 7), 6);
	assert_int_equal(tally_owner(tally_hash_device(12345), 1), 0);
}

static void
test_owner_spreads_evenly(void **state)
{
	uint32_t count[4] = {0};
	uint64_t d;
	int i;

	for (d = 1; d <= 100000; d++)
		count[tally_owner(tally_hash_device(d), 4)]++;
	for (i = 0; i < 4; i++) {
		assert_true(count[i] > 24000);
		assert_true(count[i] < 26000);
	}
}

static void
test_hot_planted_device_is_found(void **state)
{
	static struct tally_hot hot_state; /* cache-line aligned sketch */
	struct tally_hot *h = &hot_state;
	uint64_t d, hot = 777777, i;
	int found = 0;

	tally_hot_init(h, 0.02);
	/* 10% of datagrams from one device, the rest over 5,000 devices, 8 records each. */
	for (i = 0; i < 100000; i++) {
		d = (i % 10 == 0) ? hot : 1 + (i * 7919) % 5000;
		if (tally_hot_observe(h, d, tally_hash_device(d), 8) && d == hot)
			found = 1;
		else if (d != hot)
			assert_false(tally_hot_is(h, d, tally_hash_device(d)));
	}
	assert_true(found);
	assert_int_equal(h->nhot, 1);
	assert_true(tally_hot_is(h, hot, tally_hash_device(hot)));
	/* Still heavy over the next interval: stays hot. */
	tally_hot_tick(h);
	assert_true(tally_hot_is(h, hot, tally_hash_device(hot)));
	/* Silent for an interval: decays. */
	for (i = 0; i < 100000; i++) {
		d = 1 + (i * 7919) % 5000;
		tally_hot_observe(h, d, tally_hash_device(d), 8);
	}
	tally_hot_tick(h);
	assert_false(tally_hot_is(h, hot, tally_hash_device(hot)));
	assert_int_equal(h->nhot, 0);
}

static void
test_hot_uniform_stream_has_none(void **state)
{
	static struct tally_hot hot_state;
	struct tally_hot *h = &hot_state;
	uint64_t i, d;
	int k;

	tally_hot_init(h, 0.02);
	for (k = 0; k < 3; k++) {
		for (i = 0; i < 200000; i++) {
			d = 1 + (i * 104729) % 20000;
			assert_false(tally_hot_observe(h, d, tally_hash_device(d), 8));
		}
		tally_hot_tick(h);
	}
	assert_int_equal(h->nhot, 0);
	/* share 0 turns detection off entirely */
	tally_hot_init(h, 0);
	for (i = 0; i < 10000; i++)
		assert_false(tally_hot_observe(h, 5, tally_hash_device(5), 100));
}

static void
test_chunk_layout(void **state)
{
	union tally_fwd_slot slots[4];
	struct tally_wire_rec recs[3] = {
		{.metric_id = 1, .kind = 1, .value = 1.5},
		{.metric_id = 2, .kind = 2, .value = -2.0},
		{.metric_id = 3, .kind = 3, .value = 7.0},
	};

	assert_int_equal(tally_fwd_slots(1), 1); /* one record fits in the header slot */
	assert_int_equal(tally_fwd_slots(2), 2);
	assert_int_equal(tally_fwd_slots(3), 3);
	assert_int_equal(tally_fwd_slots(90), 46);
	assert_int_equal(tally_fwd_put_chunk(slots, 42, 1000, recs, 3), 3);
	assert_int_equal(slots[0].hdr.type, TALLY_FWD_CHUNK);
	assert_int_equal(slots[0].hdr.device_id, 42);
	assert_int_equal(slots[0].hdr.nrec, 3);
	assert_int_equal(slots[0].hdr.ts_ns, 1000);
	assert_int_equal(tally_fwd_span(slots), 3);
	assert_int_equal(tally_fwd_nrec(slots), 3);
	/* the records are the wire records, unchanged */
	assert_memory_equal(&slots[1], recs, sizeof(recs));
	assert_true(tally_fwd_rec(slots, 2).value == 7.0);

	/* a single record travels in one slot */
	assert_int_equal(tally_fwd_put_chunk(slots, 43, 2000, &recs[1], 1), 1);
	assert_int_equal(slots[0].hdr.type, TALLY_FWD_SINGLE);
	assert_int_equal(tally_fwd_span(slots), 1);
	assert_int_equal(tally_fwd_nrec(slots), 1);
	assert_int_equal(tally_fwd_rec(slots, 0).metric_id, 2);
	assert_int_equal(tally_fwd_rec(slots, 0).kind, 2);
	assert_true(tally_fwd_rec(slots, 0).value == -2.0);
	assert_int_equal(slots[0].hdr.ts_ns, 2000);
}

/*
 * The device-mode path without EAL: a sender forwards chunks to the owner through an SP/SC
 * ring of 32-byte slots and pre-aggregates a hot device itself; the owner aggregates what
 * it receives; the final stage merges both partials. Totals are exact.
 */
static void
test_ring_hand_off_and_merge(void **state)
{
	unsigned int cap = 1024;
	ssize_t sz = rte_ring_get_memsize_elem(sizeof(union tally_fwd_slot), cap);
	struct rte_ring *r;
	void *rraw, *raw_s, *raw_o, *raw_m;
	struct tally_table *sender = test_table_new(64, &raw_s);
	struct tally_table *owner = test_table_new(64, &raw_o);
	struct tally_table *merged = test_table_new(64, &raw_m);
	struct tally_table *pool[1] = {merged};
	union tally_fwd_slot out[64], in[64];
	struct tally_wire_rec recs[8];
	struct tally_merger m;
	struct tally_table *done;
	const struct tally_slot *s;
	uint64_t start;
	unsigned int n, i, k, used;

	assert_true(sz > 0);
	rraw = test_malloc((size_t)sz + 64);
	r = (struct rte_ring *)(((uintptr_t)rraw + 63) & ~(uintptr_t)63);
	assert_int_equal(rte_ring_init(r, "t", cap, RING_F_SP_ENQ | RING_F_SC_DEQ), 0);

	/* 4 rounds: each of devices 10..13 sends 8 records of metric 1, values 0..7 */
	for (k = 0; k < 4; k++) {
		used = 0;
		for (i = 0; i < 8; i++)
			recs[i] = (struct tally_wire_rec){.metric_id = 1, .kind = 1, .value = i};
		for (i = 0; i < 4; i++)
			used += tally_fwd_put_chunk(&out[used], 10 + i, k, recs, 8);
		assert_int_equal(rte_ring_sp_enqueue_bulk_elem(r, out, sizeof(out[0]), used, NULL),
				 used);
	}
	/* the hot device 99 stays with the sender, and so does one late record of device 10 */
	for (i = 0; i < 50; i++)
		tally_table_add(sender, 99, tally_hash_device(99), 1, 2, 1.0, i);
	tally_table_add(sender, 10, tally_hash_device(10), 1, 1, 1000.0, 9);

	while ((n = rte_ring_sc_dequeue_burst_elem(r, in, sizeof(in[0]), 5 * 4, NULL)) > 0) {
		for (i = 0; i < n; i += tally_fwd_span(&in[i])) {
			assert_int_equal(in[i].hdr.type, TALLY_FWD_CHUNK);
			for (k = 0; k < tally_fwd_nrec(&in[i]); k++) {
				struct tally_wire_rec rec = tally_fwd_rec(&in[i], k);

				tally_table_add(owner, in[i].hdr.device_id,
						tally_hash_device(in[i].hdr.device_id),
						rec.metric_id, rec.kind, rec.value,
						in[i].hdr.ts_ns);
			}
		}
	}
	assert_int_equal(owner->records, 128);

	assert_int_equal(tally_merger_init(&m, 2, 1000, pool, 1), 0);
	assert_int_equal(tally_merger_add(&m, 5000, owner), 0);
	assert_int_equal(tally_merger_add(&m, 5000, sender), 0);
	tally_merger_close(&m, 0, 6000);
	tally_merger_close(&m, 1, 6000);
	done = tally_merger_next(&m, 0, &start);
	assert_non_null(done);
	assert_int_equal(done->series, 5);
	tally_table_sort(done);
	s = tally_table_at(done, 0); /* device 10 */
	assert_int_equal(s->device_id, 10);
	assert_int_equal(s->count, 33);
	assert_true(s->sum == 4 * (0 + 1 + 2 + 3 + 4 + 5 + 6 + 7) + 1000.0);
	assert_true(s->last == 1000.0); /* newest time wins, whichever partial had it */
	assert_true(s->max == 1000.0);
	s = tally_table_at(done, 4);
	assert_int_equal(s->device_id, 99);
	assert_int_equal(s->count, 50);
	test_free(rraw);
	test_table_free(raw_s);
	test_table_free(raw_o);
	test_table_free(raw_m);
}

/* What the reading side of the zero-copy test has seen so far. */
struct zc_reader {
	uint64_t expect_dev; /* chunks arrive in device order */
	uint64_t got, sum;
	unsigned int wraps; /* chunks read across the ring's wrap */
	union tally_fwd_slot tmp[64];
};

/*
 * Take up to `burst` slots of r in place, as the owner does: whole chunks only (one cut by the
 * burst stays for the next call), each checked record by record. Returns the slots taken.
 */
static unsigned int
zc_read(struct rte_ring *r, unsigned int burst, struct zc_reader *rd)
{
	struct rte_ring_zc_data zcd = {0};
	struct tally_fwd_area z;
	unsigned int n, i, k;

	n = rte_ring_dequeue_zc_burst_elem_start(r, sizeof(union tally_fwd_slot), burst, &zcd,
						 NULL);
	if (n == 0)
		return 0;
	z = (struct tally_fwd_area){.a = zcd.ptr1, .b = zcd.ptr2, .na = zcd.n1, .n = n};
	for (i = 0; i < n;) {
		const union tally_fwd_slot *c;
		uint32_t span = tally_fwd_span(tally_fwd_at(&z, i));

		if (i + span > n)
			break;
		rd->wraps += tally_fwd_area_split(&z, i, span);
		c = tally_fwd_area_chunk(&z, i, rd->tmp);
		assert_int_equal(c->hdr.device_id, rd->expect_dev);
		for (k = 0; k < tally_fwd_nrec(c); k++) {
			struct tally_wire_rec rec = tally_fwd_rec(c, k);

			assert_int_equal(rec.metric_id, k + 1);
			assert_true(rec.value == (double)(rd->expect_dev * 10 + k));
			rd->sum += (uint64_t)rec.value;
			rd->got++;
		}
		rd->expect_dev++;
		i += span;
	}
	rte_ring_dequeue_zc_elem_finish(r, i);
	return i;
}

/*
 * Zero-copy hand-off as the workers do it: chunks written straight into reserved ring slots
 * and read where they lie. A small ring makes chunks run over its wrap on both sides; every
 * record arrives once, unchanged, and a burst that cuts a chunk leaves it for the next one.
 */
static void
test_ring_zero_copy_wrap(void **state)
{
	unsigned int cap = 64;
	ssize_t sz = rte_ring_get_memsize_elem(sizeof(union tally_fwd_slot), cap);
	struct zc_reader rd = {.expect_dev = 1};
	struct tally_wire_rec recs[8];
	uint64_t sent = 0, sum_sent = 0, next_dev = 1;
	unsigned int wraps_w = 0, left;
	struct rte_ring *r;
	void *rraw;
	unsigned int round, k;

	rraw = test_malloc((size_t)sz + 64);
	r = (struct rte_ring *)(((uintptr_t)rraw + 63) & ~(uintptr_t)63);
	assert_int_equal(rte_ring_init(r, "z", cap, RING_F_SP_ENQ | RING_F_SC_DEQ), 0);
	for (round = 0; round < 200; round++) {
		struct rte_ring_zc_data zcd = {0};
		struct tally_fwd_area z;
		unsigned int n;

		/* Write chunks of 1..8 records while they fit in what the reservation gave. */
		n = rte_ring_enqueue_zc_burst_elem_start(r, sizeof(union tally_fwd_slot), 40, &zcd,
							 NULL);
		z = (struct tally_fwd_area){.a = zcd.ptr1, .b = zcd.ptr2, .na = zcd.n1, .n = n};
		for (;;) {
			uint32_t nrec = 1 + (uint32_t)(next_dev * 5 % 8);

			if (z.used + tally_fwd_slots(nrec) > z.n)
				break;
			wraps_w += tally_fwd_area_split(&z, z.used, tally_fwd_slots(nrec));
			for (k = 0; k < nrec; k++) {
				recs[k] = (struct tally_wire_rec){
					.metric_id = k + 1,
					.kind = 1,
					.value = (double)(next_dev * 10 + k)};
				sum_sent += next_dev * 10 + k;
			}
			tally_fwd_area_put(&z, next_dev++, round, recs, nrec);
			sent += nrec;
		}
		if (n > 0)
			rte_ring_enqueue_zc_elem_finish(r, z.used);

		/* Read at most 7 slots at a time: bursts cut chunks, which wait for the next. */
		while (zc_read(r, 7, &rd) > 0)
			;
	}
	assert_true(sent > 1000);
	assert_true(wraps_w > 0 && rd.wraps > 0); /* chunks did run over the wrap */
	/* Anything still in the ring was cut by the 7-slot bursts; it all comes in one go. */
	left = rte_ring_count(r);
	assert_int_equal(zc_read(r, cap, &rd), left);
	assert_int_equal(rd.got, sent);
	assert_int_equal(rd.sum, sum_sent);
	assert_int_equal(rd.expect_dev, next_dev);
	test_free(rraw);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_owner_is_stable),
		cmocka_unit_test(test_owner_spreads_evenly),
		cmocka_unit_test(test_hot_planted_device_is_found),
		cmocka_unit_test(test_hot_uniform_stream_has_none),
		cmocka_unit_test(test_chunk_layout),
		cmocka_unit_test(test_ring_hand_off_and_merge),
		cmocka_unit_test(test_ring_zero_copy_wrap),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
