/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of window delivery (sink, spool, replay) against a fake sink. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "test.h"
#include "tally_delivery.h"

/* A sink that takes what it is given and acknowledges it when told to. */
struct fake {
	int up;			 /* the breaker is closed */
	int ack;		 /* poll() acknowledges the window being written */
	struct tally_table *cur; /* being written */
	uint64_t cur_start;
	char cur_id[256];
	uint32_t writes, probes;
	uint64_t written[32]; /* starts of acknowledged windows, in order */
	char written_id[32][256];
	uint32_t nwritten;
};

static int
f_available(const void *s)
{
	return ((const struct fake *)s)->up;
}

static int
f_write(void *s, struct tally_table *t, uint64_t start_ms, const char *id)
{
	struct fake *f = s;

	if (f->cur != NULL)
		return -1;
	f->cur = t;
	f->cur_start = start_ms;
	snprintf(f->cur_id, sizeof(f->cur_id), "%s", id ? id : "run");
	f->writes++;
	return 0;
}

static struct tally_table *
f_take_back(void *s, uint64_t *start_ms)
{
	struct fake *f = s;
	struct tally_table *t = f->cur;

	if (t != NULL)
		*start_ms = f->cur_start;
	f->cur = NULL;
	return t;
}

static struct tally_table *
f_poll(void *s, uint64_t now_ms)
{
	struct fake *f = s;
	struct tally_table *t = f->cur;

	if (!f->up) {
		f->probes++;
		return NULL;
	}
	if (t == NULL || !f->ack)
		return NULL;
	f->written[f->nwritten] = f->cur_start;
	snprintf(f->written_id[f->nwritten], sizeof(f->written_id[0]), "%s", f->cur_id);
	f->nwritten++;
	f->cur = NULL;
	return t;
}

static int
f_writing(const void *s)
{
	return ((const struct fake *)s)->cur != NULL;
}

static const struct tally_sink_ops fake_ops = {
	.available = f_available,
	.write_window = f_write,
	.take_back = f_take_back,
	.poll = f_poll,
	.writing = f_writing,
};

static char dir[64];

#define SPOOL_CONF(max, pol)                                                                       \
	(struct tally_spool_conf)                                                                  \
	{                                                                                          \
		.dir = dir, .max_bytes = (max), .policy = (pol)                                    \
	}

static int
setup(void **state)
{
	test_dir_create(dir, "tally_delivery_");
	return 0;
}

static int
teardown(void **state)
{
	test_dir_remove(dir);
	return 0;
}

#define NWIN 6

struct rig {
	struct fake f;
	struct tally_spool spool;
	struct tally_delivery d;
	void *raw[NWIN + 1];
	struct tally_table *w[NWIN];
	struct tally_table *replay;
	unsigned int got; /* windows released, a bit each */
};

/* Window i: device i+1 with one metric of count i+1. */
static void
rig_init(struct rig *r, int with_spool, uint32_t queue_max)
{
	struct tally_delivery_conf c = {
		.ops = &fake_ops, .sink = &r->f, .partial_id = "run:1", .queue_max = queue_max};
	char err[256];
	int i, k;

	memset(r, 0, sizeof(*r));
	r->f.up = 1;
	for (i = 0; i < NWIN; i++) {
		r->w[i] = test_table_new(64, &r->raw[i]);
		for (k = 0; k <= i; k++)
			tally_table_add(r->w[i], (uint64_t)i + 1,
					tally_hash_device((uint64_t)i + 1), 1, 1, 2.0, 5);
	}
	r->replay = test_table_new(64, &r->raw[NWIN]);
	if (with_spool) {
		assert_int_equal(
			tally_spool_open(&r->spool, &SPOOL_CONF(64 << 20, 0), err, sizeof(err)), 0);
		c.spool = &r->spool;
		c.replay = r->replay;
	}
	assert_int_equal(tally_delivery_init(&r->d, &c), 0);
}

static void
rig_fini(struct rig *r, int with_spool)
{
	int i;

	tally_delivery_fini(&r->d);
	if (with_spool)
		tally_spool_close(&r->spool);
	for (i = 0; i <= NWIN; i++)
		test_table_free(r->raw[i]);
}

/* Tables released so far, as a bit set of window indices. */
static unsigned int
released(struct rig *r)
{
	struct tally_table *t;
	int i;

	while ((t = tally_delivery_release(&r->d)) != NULL)
		for (i = 0; i < NWIN; i++)
			if (t == r->w[i])
				r->got |= 1u << i;
	return r->got;
}

static void
steps_at(struct rig *r, int n, int quitting, uint64_t now_ms)
{
	while (n-- > 0)
		tally_delivery_step(&r->d, now_ms, quitting);
}

static void
steps(struct rig *r, int n, int quitting)
{
	steps_at(r, n, quitting, 1000);
}

static void
test_written_in_order(void **state)
{
	struct rig r;
	int i;

	rig_init(&r, 0, 4);
	(void)released(&r);
	for (i = 0; i < 3; i++)
		assert_int_equal(tally_delivery_add(&r.d, r.w[i], 1000u * (i + 1)), 0);
	steps(&r, 2, 0);
	/* the oldest is with the sink, nothing acknowledged yet */
	assert_int_equal(r.f.writes, 1);
	assert_int_equal(r.f.cur_start, 1000);
	assert_int_equal(tally_delivery_held(&r.d), 3);
	r.f.ack = 1;
	steps(&r, 8, 0);
	assert_int_equal(r.f.nwritten, 3);
	assert_int_equal(r.f.written[0], 1000);
	assert_int_equal(r.f.written[2], 3000);
	assert_string_equal(r.f.written_id[0], "run"); /* NULL: the sink's own run id */
	assert_true(tally_delivery_idle(&r.d) || r.d.nout > 0);
	assert_int_equal(released(&r) & 7u, 7u);
	assert_true(tally_delivery_idle(&r.d));
	rig_fini(&r, 0);
}

static void
test_breaker_open_spools_then_replays(void **state)
{
	struct rig r;
	int i;

	rig_init(&r, 1, 4);
	r.f.ack = 0;
	assert_int_equal(tally_delivery_add(&r.d, r.w[0], 1000), 0);
	steps(&r, 1, 0);
	assert_int_equal(r.f.writes, 1);
	/* the breaker opens mid-write: that window and the next ones go to disk */
	r.f.up = 0;
	for (i = 1; i < 3; i++)
		assert_int_equal(tally_delivery_add(&r.d, r.w[i], 1000u * (i + 1)), 0);
	steps(&r, 3, 0);
	assert_int_equal(tally_delivery_held(&r.d), 0);
	assert_true(r.f.probes > 0);
	assert_int_equal(r.spool.st.windows, 3);
	assert_int_equal(released(&r) & 7u, 7u);
	/* back: the spool is replayed oldest first, under the run's partial id */
	r.f.up = 1;
	r.f.ack = 1;
	steps(&r, 12, 0);
	assert_int_equal(r.f.nwritten, 3);
	assert_int_equal(r.f.written[0], 1000);
	assert_int_equal(r.f.written[2], 3000);
	assert_string_equal(r.f.written_id[1], "run:1");
	assert_int_equal(r.spool.st.replayed, 3);
	assert_int_equal(tally_spool_segments(&r.spool), 0);
	assert_int_equal(r.d.st.spool_lost, 0);
	rig_fini(&r, 1);
}

static void
test_full_queue_spools_oldest_waiting(void **state)
{
	struct rig r;
	int i;

	rig_init(&r, 1, 1);
	r.f.ack = 0; /* a slow Redis: the first window never finishes */
	(void)released(&r);
	for (i = 0; i < 4; i++) {
		assert_int_equal(tally_delivery_add(&r.d, r.w[i], 1000u * (i + 1)), 0);
		steps(&r, 1, 0);
	}
	/* one being written and one waiting stay in memory; the older waiting ones spooled */
	assert_int_equal(tally_delivery_held(&r.d), 2);
	assert_int_equal(r.f.cur_start, 1000);
	assert_int_equal(r.spool.st.windows, 2);
	assert_int_equal(released(&r) & 0xfu, (1u << 1) | (1u << 2));
	/* no replay while quitting; the rest is written */
	r.f.ack = 1;
	steps(&r, 6, 1);
	assert_int_equal(r.f.nwritten, 2);
	assert_int_equal(r.f.written[1], 4000);
	assert_int_equal(r.spool.st.replayed, 0);
	assert_true(tally_delivery_idle(&r.d) || r.d.nout > 0);
	rig_fini(&r, 1);
}

static void
test_deadline_without_spool_gives_up_counted(void **state)
{
	struct rig r;

	rig_init(&r, 0, 4);
	r.f.up = 0;
	assert_int_equal(tally_delivery_add(&r.d, r.w[1], 2000), 0);
	assert_int_equal(tally_delivery_add(&r.d, r.w[2], 3000), 0);
	/* no spool: an open breaker keeps them in memory */
	steps(&r, 3, 1);
	assert_int_equal(tally_delivery_held(&r.d), 2);
	tally_delivery_flush_to_spool(&r.d);
	assert_int_equal(tally_delivery_held(&r.d), 0);
	assert_int_equal(r.d.st.unwritten, 2);
	assert_int_equal(r.d.st.unwritten_records, 2 + 3);
	rig_fini(&r, 0);
}

/* The spool's next segment cannot be created (its name taken): the next append fails. */
static void
block_segment(uint64_t seq)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/spool-%020" PRIu64 ".tsp", dir, seq);
	assert_int_equal(mkdir(path, 0700), 0);
}

static void
test_spool_failing_keeps_windows(void **state)
{
	struct rig r;

	rig_init(&r, 1, 1); /* memory holds queue_max + 1 = 2 windows */
	r.f.up = 0;
	block_segment(1);
	block_segment(2);
	block_segment(3);
	assert_int_equal(tally_delivery_add(&r.d, r.w[0], 1000), 0);
	steps_at(&r, 1, 0, 1000);
	/* the write failed: the window waits in memory, nothing lost */
	assert_int_equal(tally_delivery_held(&r.d), 1);
	assert_int_equal(r.spool.st.write_errors, 1);
	assert_int_equal(r.d.st.spool_lost, 0);
	assert_int_equal(tally_delivery_add(&r.d, r.w[1], 2000), 0);
	steps_at(&r, 3, 0, 1500); /* not tried again before a second has passed */
	assert_int_equal(r.spool.st.write_errors, 1);
	assert_int_equal(tally_delivery_held(&r.d), 2);
	/* a third window: no room in memory, the oldest is tried, fails, and is lost, counted */
	assert_int_equal(tally_delivery_add(&r.d, r.w[2], 3000), 0);
	steps_at(&r, 1, 0, 1600);
	assert_int_equal(r.spool.st.write_errors, 2);
	assert_int_equal(r.d.st.spool_lost, 1);
	assert_int_equal(tally_delivery_held(&r.d), 2);
	assert_int_equal(released(&r) & 7u, 1u);
	steps_at(&r, 1, 0, 2700);
	assert_int_equal(r.spool.st.write_errors, 3);
	assert_int_equal(tally_delivery_held(&r.d), 2);
	/* the disk takes writes again: both are spooled, then replayed once Redis is back */
	steps_at(&r, 1, 0, 3800);
	assert_int_equal(tally_delivery_held(&r.d), 0);
	assert_int_equal(r.spool.st.windows, 2);
	assert_int_equal(released(&r) & 7u, 7u);
	r.f.up = 1;
	r.f.ack = 1;
	steps_at(&r, 12, 0, 3900);
	assert_int_equal(r.f.nwritten, 2);
	assert_int_equal(r.f.written[0], 2000);
	assert_int_equal(r.f.written[1], 3000);
	assert_int_equal(r.d.st.spool_lost, 1);
	rig_fini(&r, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_written_in_order),
		cmocka_unit_test_setup_teardown(test_breaker_open_spools_then_replays, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_full_queue_spools_oldest_waiting, setup,
						teardown),
		cmocka_unit_test(test_deadline_without_spool_gives_up_counted),
		cmocka_unit_test_setup_teardown(test_spool_failing_keeps_windows, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
