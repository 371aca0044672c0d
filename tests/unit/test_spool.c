/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of the spool: append, read back, torn and damaged records, size cap policies. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test.h"
#include "tally_spool.h"

struct seen {
	uint64_t records;
	uint64_t series;
	uint64_t count_sum;
	uint64_t windows[16];
	char ids[16][256];
};

static int
collect(void *ctx, const struct tally_spool_rec *r)
{
	struct seen *s = ctx;
	uint32_t i;

	if (s->records < 16) {
		s->windows[s->records] = r->window_start;
		snprintf(s->ids[s->records], sizeof(s->ids[0]), "%s", r->partial_id);
	}
	s->records++;
	s->series += r->nseries;
	for (i = 0; i < r->nseries; i++)
		s->count_sum += r->series[i].count;
	return 0;
}

static char dir[64];

static int
setup(void **state)
{
	test_dir_create(dir, "tally_spool_");
	return 0;
}

static int
teardown(void **state)
{
	test_dir_remove(dir);
	return 0;
}

/* A sorted table of ndev devices x 3 metrics, count 2 each. */
static struct tally_table *
window(uint32_t ndev, void **raw)
{
	struct tally_table *t = test_table_new(ndev * 3 + 16, raw);
	uint64_t d;
	uint32_t m;

	for (d = 1; d <= ndev; d++)
		for (m = 1; m <= 3; m++) {
			tally_table_add(t, d, tally_hash_device(d), m, 1, 1.5, 7);
			tally_table_add(t, d, tally_hash_device(d), m, 1, 2.5, 9);
		}
	tally_table_sort(t);
	return t;
}

static char *
segment_path(const struct tally_spool *s, char *buf, size_t len)
{
	snprintf(buf, len, "%s/spool-%020llu.tsp", dir, (unsigned long long)s->first_seq);
	return buf;
}

static void
test_append_and_read(void **state)
{
	struct tally_spool s;
	struct seen seen = {0};
	void *raw;
	struct tally_table *t = window(500, &raw); /* 1500 series: two records */
	char err[128];

	assert_int_equal(tally_spool_open(&s, dir, 64 << 20, TALLY_SPOOL_DROP_NEW, err,
					  sizeof(err)), 0);
	assert_int_equal(tally_spool_segments(&s), 0);
	assert_int_equal(tally_spool_read_oldest(&s, collect, &seen), -ENOENT);
	assert_int_equal(tally_spool_append(&s, 60000, "east:1:x", t), 0);
	assert_int_equal(tally_spool_append(&s, 120000, "east:1:y", t), 0);
	assert_int_equal(s.st.windows, 2);
	assert_int_equal(s.st.records, 4);
	assert_int_equal(tally_spool_segments(&s), 1);
	assert_int_equal(tally_spool_read_oldest(&s, collect, &seen), 4);
	assert_int_equal(seen.series, 3000);
	assert_int_equal(seen.count_sum, 6000);
	assert_int_equal(seen.windows[0], 60000);
	assert_int_equal(seen.windows[3], 120000);
	assert_string_equal(seen.ids[0], "east:1:x");
	assert_string_equal(seen.ids[2], "east:1:y");
	/* Read twice (a crash before removal): the same records, the same ids. */
	memset(&seen, 0, sizeof(seen));
	assert_int_equal(tally_spool_read_oldest(&s, collect, &seen), 4);
	assert_string_equal(seen.ids[3], "east:1:y");
	/* New appends go to a new segment; removal leaves it. */
	assert_int_equal(tally_spool_append(&s, 180000, "east:1:z", t), 0);
	assert_int_equal(tally_spool_segments(&s), 2);
	assert_int_equal(tally_spool_remove_oldest(&s), 0);
	assert_int_equal(tally_spool_segments(&s), 1);
	memset(&seen, 0, sizeof(seen));
	assert_int_equal(tally_spool_read_oldest(&s, collect, &seen), 2);
	assert_int_equal(seen.windows[0], 180000);
	assert_int_equal(tally_spool_remove_oldest(&s), 0);
	assert_int_equal(tally_spool_segments(&s), 0);
	assert_int_equal(s.st.bytes, 0);
	tally_spool_close(&s);
	test_table_free(raw);
}

static void
test_reopen_finds_earlier_segments(void **state)
{
	struct tally_spool s;
	struct seen seen = {0};
	void *raw;
	struct tally_table *t = window(10, &raw);
	char err[128];

	assert_int_equal(tally_spool_open(&s, dir, 1 << 20, 0, err, sizeof(err)), 0);
	assert_int_equal(tally_spool_append(&s, 1000, "a:1", t), 0);
	tally_spool_close(&s);
	assert_int_equal(tally_spool_open(&s, dir, 1 << 20, 0, err, sizeof(err)), 0);
	assert_int_equal(tally_spool_segments(&s), 1);
	assert_true(s.st.bytes > 0);
	assert_int_equal(tally_spool_read_oldest(&s, collect, &seen), 1);
	assert_int_equal(seen.series, 30);
	tally_spool_close(&s);
	test_table_free(raw);
}

static void
damage(const char *path, long off, int whence, int truncate_by)
{
	int fd = open(path, O_RDWR);
	struct stat sb;
	uint8_t b;

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &sb), 0);
	if (truncate_by) {
		assert_int_equal(ftruncate(fd, sb.st_size - truncate_by), 0);
	} else {
		off_t at = whence == SEEK_END ? sb.st_size + off : off;

		assert_int_equal(pread(fd, &b, 1, at), 1);
		b ^= 0x10;
		assert_int_equal(pwrite(fd, &b, 1, at), 1);
	}
	close(fd);
}

static void
test_torn_and_flipped(void **state)
{
	struct tally_spool s;
	struct seen seen = {0};
	void *raw;
	struct tally_table *t = window(100, &raw); /* 300 series: one record per window */
	char err[128], path[256];
	int i;

	assert_int_equal(tally_spool_open(&s, dir, 64 << 20, 0, err, sizeof(err)), 0);
	for (i = 0; i < 4; i++)
		assert_int_equal(tally_spool_append(&s, 1000 * (i + 1), "p:1", t), 0);
	segment_path(&s, path, sizeof(path));

	/* Torn last record (power loss mid-write): the first three are replayed. */
	damage(path, 0, 0, 100);
	assert_int_equal(tally_spool_read_oldest(&s, collect, &seen), 3);
	assert_int_equal(s.st.corrupt, 1);
	assert_int_equal(seen.windows[2], 3000);

	/* A flipped byte in the second record's series: exactly that record is skipped. */
	memset(&seen, 0, sizeof(seen));
	s.st.corrupt = 0;
	damage(path, 32 + 3 + 300 * 64 + 32 + 3 + 1000, SEEK_SET, 0);
	assert_int_equal(tally_spool_read_oldest(&s, collect, &seen), 2);
	assert_int_equal(s.st.corrupt, 2); /* the flipped one and the torn tail */
	assert_int_equal(seen.windows[0], 1000);
	assert_int_equal(seen.windows[1], 3000);

	/* A flipped byte in the first record's header: resync finds the third. */
	memset(&seen, 0, sizeof(seen));
	s.st.corrupt = 0;
	damage(path, 5, SEEK_SET, 0);
	assert_int_equal(tally_spool_read_oldest(&s, collect, &seen), 1);
	assert_int_equal(seen.windows[0], 3000);
	tally_spool_close(&s);
	test_table_free(raw);
}

static void
test_cap_policies(void **state)
{
	struct tally_spool s;
	void *raw;
	struct tally_table *t = window(100, &raw); /* ~19 KB per window */
	char err[128];
	int i, ok = 0;

	/* drop-new: appends beyond the cap are refused and counted */
	assert_int_equal(tally_spool_open(&s, dir, 100 << 10, TALLY_SPOOL_DROP_NEW, err,
					  sizeof(err)), 0);
	for (i = 0; i < 10; i++)
		ok += tally_spool_append(&s, i, "n:1", t) == 0;
	assert_int_equal(ok, 5);
	assert_int_equal(s.st.dropped_new, 5);
	assert_true(s.st.bytes <= 100 << 10);
	tally_spool_close(&s);
	teardown(state);
	setup(state);

	/* drop-oldest never deletes the segment being replayed */
	{
		struct tally_spool_iter it;

		assert_int_equal(tally_spool_open(&s, dir, 100 << 10, TALLY_SPOOL_DROP_OLDEST, err,
						  sizeof(err)), 0);
		for (i = 0; i < 5; i++)
			assert_int_equal(tally_spool_append(&s, i, "r:1", t), 0);
		assert_int_equal(tally_spool_iter_open(&s, &it), 0);
		assert_int_equal(tally_spool_append(&s, 99, "r:1", t), -ENOSPC);
		assert_int_equal(s.st.dropped_old, 0);
		tally_spool_iter_close(&it);
		tally_spool_close(&s);
	}
	teardown(state);
	setup(state);

	/* drop-oldest: old segments go, the newest windows stay */
	assert_int_equal(tally_spool_open(&s, dir, 100 << 10, TALLY_SPOOL_DROP_OLDEST, err,
					  sizeof(err)), 0);
	for (i = 0; i < 20; i++)
		assert_int_equal(tally_spool_append(&s, i, "o:1", t), 0);
	assert_true(s.st.dropped_old > 0);
	assert_true(s.st.bytes <= 100 << 10);
	tally_spool_close(&s);
	test_table_free(raw);
}

static void
test_crc32c(void **state)
{
	/* The standard check value of CRC-32C. */
	assert_int_equal(tally_crc32c(0, "123456789", 9), 0xe3069283);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc32c),
		cmocka_unit_test_setup_teardown(test_append_and_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen_finds_earlier_segments, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_and_flipped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cap_policies, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
