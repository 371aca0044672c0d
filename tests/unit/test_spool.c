/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of the spool: append, read back, torn and damaged records, size cap policies. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tally_ddsketch.h"
#include "tally_hll.h"
#include "test.h"
#include "tally_names.h"
#include "tally_spool.h"
#include "tally_statsd.h"

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

#define SPOOL_CONF(max, pol)                                                                       \
	(struct tally_spool_conf)                                                                  \
	{                                                                                          \
		.dir = dir, .max_bytes = (max), .policy = (pol)                                    \
	}

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

	assert_int_equal(
		tally_spool_open(&s, &SPOOL_CONF(64 << 20, TALLY_SPOOL_DROP_NEW), err, sizeof(err)),
		0);
	assert_int_equal(tally_spool_segments(&s), 0);
	assert_int_equal(tally_spool_read_oldest(&s, collect, &seen), -ENOENT);
	assert_int_equal(tally_spool_append(&s, 60000, "east:1:x", t, NULL), 0);
	assert_int_equal(tally_spool_append(&s, 120000, "east:1:y", t, NULL), 0);
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
	assert_int_equal(tally_spool_append(&s, 180000, "east:1:z", t, NULL), 0);
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

/* Names the records carry, read back into another process' names. */
static int
collect_names(void *ctx, const struct tally_spool_rec *r)
{
	tally_spool_rec_names(r, ctx);
	return 0;
}

/* statsd series travel with their names (the next run writes them under the same ones). */
static void
test_names_travel(void **state)
{
	static uint64_t mem_a[8192], mem_b[8192];
	const uint64_t dev = TALLY_STATSD_DEVICE_BIT | 5;
	struct tally_names a, b;
	struct tally_spool s;
	void *raw;
	struct tally_table *t = test_table_new(64, &raw);
	const char *text;
	uint16_t len;
	char err[128];

	(void)state;
	assert_int_equal(tally_names_init(&a, mem_a, 16, 4096), 0);
	assert_int_equal(tally_names_init(&b, mem_b, 16, 4096), 0);
	tally_table_add(t, 1, tally_hash_device(1), 7, 1, 1, 1); /* v1: no name */
	tally_table_add(t, dev, tally_hash_device(dev), 11, 1, 2, 1);
	tally_table_add(t, dev, tally_hash_device(dev), 12, 1, 3, 1); /* named by none */
	tally_table_add(t, dev, tally_hash_device(dev), 13, 1, 4, 1);
	tally_table_sort(t);
	assert_int_equal(tally_names_add(&a, 11, "req{env:prod}", 13), 1);
	assert_int_equal(tally_names_add(&a, 13, "lat", 3), 1);
	assert_int_equal(
		tally_spool_open(&s, &SPOOL_CONF(64 << 20, TALLY_SPOOL_DROP_NEW), err, sizeof(err)),
		0);
	assert_int_equal(tally_spool_append(&s, 60000, "n:1", t, &a), 0);
	assert_int_equal(tally_spool_read_oldest(&s, collect_names, &b), 1);
	assert_int_equal(b.count, 2);
	text = tally_names_find(&b, 11, SIZE_MAX, &len);
	assert_true(text != NULL && len == 13 && memcmp(text, "req{env:prod}", 13) == 0);
	text = tally_names_find(&b, 13, SIZE_MAX, &len);
	assert_true(text != NULL && len == 3 && memcmp(text, "lat", 3) == 0);
	assert_null(tally_names_find(&b, 12, SIZE_MAX, &len));
	assert_null(tally_names_find(&b, 7, SIZE_MAX, &len));
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

	assert_int_equal(tally_spool_open(&s, &SPOOL_CONF(1 << 20, 0), err, sizeof(err)), 0);
	assert_int_equal(tally_spool_append(&s, 1000, "a:1", t, NULL), 0);
	tally_spool_close(&s);
	assert_int_equal(tally_spool_open(&s, &SPOOL_CONF(1 << 20, 0), err, sizeof(err)), 0);
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

	assert_int_equal(tally_spool_open(&s, &SPOOL_CONF(64 << 20, 0), err, sizeof(err)), 0);
	for (i = 0; i < 4; i++)
		assert_int_equal(tally_spool_append(&s, 1000 * (i + 1), "p:1", t, NULL), 0);
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
	assert_int_equal(tally_spool_open(&s, &SPOOL_CONF(100 << 10, TALLY_SPOOL_DROP_NEW), err,
					  sizeof(err)),
			 0);
	for (i = 0; i < 10; i++)
		ok += tally_spool_append(&s, i, "n:1", t, NULL) == 0;
	assert_int_equal(ok, 5);
	assert_int_equal(s.st.dropped_new, 5);
	assert_true(s.st.bytes <= 100 << 10);
	tally_spool_close(&s);
	teardown(state);
	setup(state);

	/* drop-oldest never deletes the segment being replayed */
	{
		struct tally_spool_iter it;

		assert_int_equal(tally_spool_open(&s,
						  &SPOOL_CONF(100 << 10, TALLY_SPOOL_DROP_OLDEST),
						  err, sizeof(err)),
				 0);
		for (i = 0; i < 5; i++)
			assert_int_equal(tally_spool_append(&s, i, "r:1", t, NULL), 0);
		assert_int_equal(tally_spool_iter_open(&s, &it), 0);
		assert_int_equal(tally_spool_append(&s, 99, "r:1", t, NULL), -ENOSPC);
		assert_int_equal(s.st.dropped_old, 0);
		tally_spool_iter_close(&it);
		tally_spool_close(&s);
	}
	teardown(state);
	setup(state);

	/* drop-oldest: old segments go, the newest windows stay */
	assert_int_equal(tally_spool_open(&s, &SPOOL_CONF(100 << 10, TALLY_SPOOL_DROP_OLDEST), err,
					  sizeof(err)),
			 0);
	for (i = 0; i < 20; i++)
		assert_int_equal(tally_spool_append(&s, i, "o:1", t, NULL), 0);
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

static void
test_one_process_per_directory(void **state)
{
	struct tally_spool a, b;
	char err[256], want[128];

	assert_int_equal(tally_spool_open(&a, &SPOOL_CONF(1 << 20, 0), err, sizeof(err)), 0);
	/* a second open (another process, or this one again) is refused, naming the holder */
	assert_int_equal(tally_spool_open(&b, &SPOOL_CONF(1 << 20, 0), err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "in use by another tally (pid %d)", (int)getpid());
	assert_non_null(strstr(err, want));
	assert_non_null(strstr(err, dir));
	tally_spool_close(&a);
	assert_int_equal(tally_spool_open(&b, &SPOOL_CONF(1 << 20, 0), err, sizeof(err)), 0);
	tally_spool_close(&b);
}

static void
entry(const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", dir, name);
}

static void
test_entries_that_are_not_segments(void **state)
{
	struct tally_spool s;
	struct seen seen = {0};
	void *raw;
	struct tally_table *t = window(10, &raw);
	char err[256], p[256];
	struct stat sb;

	assert_int_equal(tally_spool_open(&s, &SPOOL_CONF(1 << 20, 0), err, sizeof(err)), 0);
	assert_int_equal(tally_spool_append(&s, 1000, "a:1", t, NULL), 0);
	tally_spool_close(&s);
	/* a directory, a FIFO and a symlink with segment names, after the real segment 1 */
	entry("spool-00000000000000000002.tsp", p, sizeof(p));
	assert_int_equal(mkdir(p, 0700), 0);
	entry("spool-00000000000000000003.tsp", p, sizeof(p));
	assert_int_equal(mkfifo(p, 0600), 0);
	entry("spool-00000000000000000004.tsp", p, sizeof(p));
	assert_int_equal(symlink("/etc/passwd", p), 0);
	entry("spool-00000000000000000000.tsp", p, sizeof(p));
	assert_int_equal(mkfifo(p, 0600), 0); /* older than every segment */
	assert_int_equal(tally_spool_open(&s, &SPOOL_CONF(1 << 20, 0), err, sizeof(err)), 0);
	assert_int_equal(s.st.skipped, 4);
	assert_int_equal(tally_spool_segments(&s), 1);
	/* new data never takes one of their names */
	assert_int_equal(tally_spool_append(&s, 2000, "a:2", t, NULL), 0);
	assert_int_equal(s.seq, 5);
	assert_int_equal(tally_spool_segments(&s), 2);
	/* replay reads the segments only (no hang on the FIFOs), and removes them */
	assert_int_equal(tally_spool_read_oldest(&s, collect, &seen), 1);
	assert_int_equal(seen.windows[0], 1000);
	assert_int_equal(tally_spool_remove_oldest(&s), 0);
	assert_int_equal(tally_spool_read_oldest(&s, collect, &seen), 1);
	assert_int_equal(seen.windows[1], 2000);
	assert_int_equal(tally_spool_remove_oldest(&s), 0);
	assert_int_equal(tally_spool_segments(&s), 0);
	assert_int_equal(tally_spool_read_oldest(&s, collect, &seen), -ENOENT);
	/* what is not ours is left as it was: the link's target untouched */
	assert_int_equal(lstat(p, &sb), 0);
	entry("spool-00000000000000000004.tsp", p, sizeof(p));
	assert_int_equal(lstat(p, &sb), 0);
	assert_true(S_ISLNK(sb.st_mode));
	tally_spool_close(&s);
	test_table_free(raw);
}

static void
test_damaged_segments_set_aside(void **state)
{
	struct tally_spool s;
	struct seen seen = {0};
	void *raw;
	struct tally_table *t = window(100, &raw);
	char err[256], path[256], bad[300], junk[4096];
	struct stat sb;
	int fd;

	assert_int_equal(tally_spool_open(&s, &SPOOL_CONF(64 << 20, 0), err, sizeof(err)), 0);
	assert_int_equal(tally_spool_append(&s, 1000, "p:1", t, NULL), 0);
	assert_int_equal(tally_spool_append(&s, 2000, "p:1", t, NULL), 0);
	segment_path(&s, path, sizeof(path));
	damage(path, 0, 0, 100); /* the second record torn */
	assert_int_equal(tally_spool_read_oldest(&s, collect, &seen), 1);
	assert_int_equal(tally_spool_remove_oldest(&s), 0);
	/* kept as .bad for a person to look at, no longer a segment */
	snprintf(bad, sizeof(bad), "%s.bad", path);
	assert_int_equal(stat(bad, &sb), 0);
	assert_int_equal(stat(path, &sb), -1);
	assert_int_equal(s.st.set_aside, 1);
	assert_int_equal(tally_spool_segments(&s), 0);
	/* a file of some other format with a segment's name: nothing replayed, set aside */
	tally_spool_close(&s);
	memset(junk, 'x', sizeof(junk));
	entry("spool-00000000000000000007.tsp", path, sizeof(path));
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, junk, sizeof(junk)), sizeof(junk));
	close(fd);
	assert_int_equal(tally_spool_open(&s, &SPOOL_CONF(64 << 20, 0), err, sizeof(err)), 0);
	memset(&seen, 0, sizeof(seen));
	assert_int_equal(tally_spool_read_oldest(&s, collect, &seen), 0);
	assert_true(s.st.corrupt >= 1);
	assert_int_equal(tally_spool_remove_oldest(&s), 0);
	snprintf(bad, sizeof(bad), "%s.bad", path);
	assert_int_equal(stat(bad, &sb), 0);
	assert_int_equal(sb.st_size, sizeof(junk));
	/* an intact segment is deleted as before */
	assert_int_equal(tally_spool_append(&s, 3000, "p:1", t, NULL), 0);
	segment_path(&s, path, sizeof(path));
	assert_int_equal(tally_spool_read_oldest(&s, collect, &seen), 1);
	assert_int_equal(tally_spool_remove_oldest(&s), 0);
	assert_int_equal(stat(path, &sb), -1);
	snprintf(bad, sizeof(bad), "%s.bad", path);
	assert_int_equal(stat(bad, &sb), -1);
	assert_int_equal(s.st.set_aside, 1);
	tally_spool_close(&s);
	test_table_free(raw);
}


/* Side state: a histogram's sketch and a distinct series' registers travel with the series. */
static int
collect_side(void *ctx, const struct tally_spool_rec *r)
{
	uint64_t *got = ctx;
	const uint8_t *p = r->side;
	uint32_t i;

	assert_true(r->has_side);
	for (i = 0; i < r->nseries; i++) {
		const struct tally_spool_series *x = &r->series[i];

		if (x->kind == TALLY_KIND_HISTOGRAM) {
			/* the bytes are the sketch: every value is in it */
			static uint64_t mem[(32 + 10 * TALLY_DDS_CAP_MAX + 7) / 8];
			struct tally_dds *d = tally_dds_init(mem, TALLY_DDS_CAP_MAX);

			assert_int_equal(tally_dds_parse(d, p, x->last_ns), 0);
			assert_int_equal(tally_dds_count(d), x->count);
			got[0] += x->count;
		} else if (x->kind == TALLY_KIND_DISTINCT) {
			static struct tally_hll h;

			assert_int_equal(tally_hll_parse(&h, p, x->last_ns), 0);
			got[1] += tally_hll_estimate(&h);
		}
		if (tally_kind_side(x->kind))
			p += x->last_ns;
	}
	assert_ptr_equal(p, r->side + r->side_len);
	return 0;
}

static void
test_side_state(void **state)
{
	struct tally_spool s;
	void *raw;
	struct tally_table *t = test_table_new(64, &raw);
	uint64_t got[2] = {0, 0};
	char err[128], path[256];
	uint8_t hdr[32];
	uint32_t crc, i;
	FILE *f;

	for (i = 0; i < 40; i++) {
		uint64_t e = i * 977;
		double v;

		memcpy(&v, &e, sizeof(v));
		tally_table_add(t, 1, tally_hash_device(1), 1, TALLY_KIND_HISTOGRAM, 1.5 * i, 1);
		tally_table_add(t, 1, tally_hash_device(1), 2, TALLY_KIND_DISTINCT, v, 1);
		tally_table_add(t, 1, tally_hash_device(1), 3, TALLY_KIND_GAUGE, i, 1);
	}
	tally_table_sort(t);
	assert_int_equal(tally_spool_open(&s, &SPOOL_CONF(1 << 20, 0), err, sizeof(err)), 0);
	assert_int_equal(tally_spool_append(&s, 1000, "p:1", t, NULL), 0);
	assert_int_equal(tally_spool_read_oldest(&s, collect_side, got), 1);
	assert_int_equal(got[0], 40);
	assert_int_equal(got[1], 40);

	/*
	 * Lengths that add up to the side bytes only by wrapping around 2^64, in a record whose
	 * checksums are right: damaged, never read past.
	 */
	segment_path(&s, path, sizeof(path));
	f = fopen(path, "r+b");
	assert_non_null(f);
	assert_int_equal(fread(hdr, 1, sizeof(hdr), f), sizeof(hdr));
	{
		uint32_t plen, nser;
		uint16_t id_len;
		uint8_t *payload;
		uint64_t side_len, a, b;

		memcpy(&plen, hdr + 4, 4);
		memcpy(&nser, hdr + 16, 4);
		memcpy(&id_len, hdr + 24, 2);
		payload = malloc(plen);
		assert_non_null(payload);
		assert_int_equal(fread(payload, 1, plen, f), plen);
		side_len = plen - id_len - 64ull * nser;
		/* series 0 is the histogram, 1 the distinct (sorted by metric) */
		a = side_len + 4096;
		b = (uint64_t)0 - 4096;
		memcpy(payload + id_len + 56, &a, 8);
		memcpy(payload + id_len + 64 + 56, &b, 8);
		crc = tally_crc32c(0, payload, plen);
		memcpy(hdr + 20, &crc, 4);
		crc = tally_crc32c(0, hdr, 28);
		memcpy(hdr + 28, &crc, 4);
		fseek(f, 0, SEEK_SET);
		assert_int_equal(fwrite(hdr, 1, sizeof(hdr), f), sizeof(hdr));
		assert_int_equal(fwrite(payload, 1, plen, f), plen);
		free(payload);
	}
	fclose(f);
	s.st.corrupt = 0;
	assert_int_equal(tally_spool_read_oldest(&s, collect_side, got), 0);
	assert_int_equal(s.st.corrupt, 1);
	tally_spool_close(&s);
	test_table_free(raw);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc32c),
		cmocka_unit_test_setup_teardown(test_append_and_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_names_travel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen_finds_earlier_segments, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_torn_and_flipped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cap_policies, setup, teardown),
		cmocka_unit_test_setup_teardown(test_one_process_per_directory, setup, teardown),
		cmocka_unit_test_setup_teardown(test_entries_that_are_not_segments, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_damaged_segments_set_aside, setup, teardown),
		cmocka_unit_test_setup_teardown(test_side_state, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
