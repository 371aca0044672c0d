/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of the pcapng writer and the dead-letter token bucket. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test.h"
#include "tally_dlq.h"
#include "tally_pcapng.h"

static uint32_t
rd32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static void
test_blocks(void **state)
{
	char path[] = "/tmp/tally_pcapng_XXXXXX";
	struct tally_pcapng p;
	uint8_t frame[61], buf[1024];
	size_t n, off;
	int fd = mkstemp(path);
	FILE *f;

	assert_true(fd >= 0);
	close(fd);
	memset(frame, 0xab, sizeof(frame));
	assert_int_equal(tally_pcapng_open(&p, path, 0), 0);
	assert_int_equal(tally_pcapng_write(&p, frame, sizeof(frame), 1234567890123ULL,
					    "malformed: kind"), 0);
	tally_pcapng_close(&p);
	f = fopen(path, "rb");
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	unlink(path);
	/* SHB */
	assert_int_equal(rd32(buf), 0x0A0D0D0A);
	assert_int_equal(rd32(buf + 8), 0x1A2B3C4D);
	off = rd32(buf + 4);
	assert_int_equal(rd32(buf + off - 4), off);
	/* IDB with if_tsresol = 9 */
	assert_int_equal(rd32(buf + off), 1);
	assert_int_equal(buf[off + 8], 1);
	assert_int_equal(buf[off + 16], 9);
	assert_int_equal(buf[off + 20], 9);
	off += rd32(buf + off + 4);
	/* EPB: 61 bytes padded to 64, comment of 15 padded to 16, end of options */
	assert_int_equal(rd32(buf + off), 6);
	assert_int_equal(rd32(buf + off + 4), 28 + 64 + 4 + 16 + 4 + 4);
	assert_int_equal(rd32(buf + off + 12), (uint32_t)(1234567890123ULL >> 32));
	assert_int_equal(rd32(buf + off + 16), (uint32_t)1234567890123ULL);
	assert_int_equal(rd32(buf + off + 20), 61);
	assert_int_equal(rd32(buf + off + 24), 61);
	assert_memory_equal(buf + off + 28, frame, 61);
	assert_int_equal(rd32(buf + off + 92), 1 | (15u << 16));
	assert_memory_equal(buf + off + 96, "malformed: kind", 15);
	assert_int_equal(rd32(buf + off + 112), 0);
	off += rd32(buf + off + 4);
	assert_int_equal(off, n);
}

static void
test_rotation(void **state)
{
	char path[] = "/tmp/tally_pcapng_XXXXXX", old[64];
	struct tally_pcapng p;
	uint8_t frame[100] = {0};
	int fd = mkstemp(path), i;

	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(tally_pcapng_open(&p, path, 1000), 0);
	for (i = 0; i < 30; i++)
		assert_int_equal(tally_pcapng_write(&p, frame, sizeof(frame), i, "c"), 0);
	assert_true(p.rotations >= 2);
	assert_true(p.bytes <= 1000);
	assert_int_equal(p.packets, 30);
	tally_pcapng_close(&p);
	snprintf(old, sizeof(old), "%s.1", path);
	assert_int_equal(access(old, F_OK), 0);
	unlink(path);
	unlink(old);
}

static void
test_bucket(void **state)
{
	struct tally_dlq_bucket b;
	uint64_t hz = 1000000, t = 5;
	int i, n = 0;

	tally_dlq_bucket_init(&b, 10, 100, hz, t);
	for (i = 0; i < 50; i++)
		n += tally_dlq_bucket_take(&b, t);
	assert_int_equal(n, 10); /* the burst */
	t += hz / 10;            /* 0.1 s later: 10 more */
	for (i = 0, n = 0; i < 50; i++)
		n += tally_dlq_bucket_take(&b, t);
	assert_int_equal(n, 10);
	t += 1000 * hz; /* a long quiet spell refills to the burst, no more */
	for (i = 0, n = 0; i < 50; i++)
		n += tally_dlq_bucket_take(&b, t);
	assert_int_equal(n, 10);
}

/* Write one frame of len bytes (and a wire length) in pieces of seg bytes; read it back. */
static uint8_t *
write_pieces(uint32_t len, uint32_t seg, uint32_t wire, size_t *n)
{
	char path[] = "/tmp/tally_pcapng_XXXXXX";
	struct iovec iov[256];
	struct tally_pcapng p;
	uint8_t *frame = test_malloc(len), *buf = test_malloc(len + 4096);
	unsigned int k = 0;
	uint32_t i;
	int fd = mkstemp(path);
	FILE *f;

	assert_true(fd >= 0);
	close(fd);
	for (i = 0; i < len; i++)
		frame[i] = (uint8_t)(i * 7 + i / 251);
	for (i = 0; i < len; i += seg, k++) {
		assert_true(k < 256);
		iov[k].iov_base = frame + i;
		iov[k].iov_len = len - i < seg ? len - i : seg;
	}
	assert_int_equal(tally_pcapng_open(&p, path, 0), 0);
	assert_int_equal(tally_pcapng_writev(&p, iov, k, wire, 1, "malformed: kind"), 0);
	tally_pcapng_close(&p);
	f = fopen(path, "rb");
	*n = fread(buf, 1, len + 4096, f);
	fclose(f);
	unlink(path);
	/* The packet data, past SHB (28) and IDB (32), against the frame. */
	assert_memory_equal(buf + 28 + 32 + 28, frame, RTE_MIN(rd32(buf + 28 + 32 + 20), len));
	test_free(frame);
	return buf;
}

static void
test_jumbo_pieces(void **state)
{
	const uint32_t epb = 28 + 32;
	uint8_t *buf;
	size_t n;

	/* A 65,546-byte frame in 2 KB segments, as a chain of mbufs: kept whole. */
	buf = write_pieces(65546, 2048, 65546, &n);
	assert_int_equal(rd32(buf + 28 + 12), TALLY_PCAPNG_SNAPLEN);
	assert_int_equal(rd32(buf + epb + 20), 65546);
	assert_int_equal(rd32(buf + epb + 24), 65546);
	assert_int_equal(rd32(buf + epb + 4), 28 + 65548 + 4 + 16 + 4 + 4);
	assert_int_equal(n, epb + rd32(buf + epb + 4));
	test_free(buf);

	/* Past the snapshot length only the wire length is kept. */
	buf = write_pieces(TALLY_PCAPNG_SNAPLEN + 1000, 2000, TALLY_PCAPNG_SNAPLEN + 1000, &n);
	assert_int_equal(rd32(buf + epb + 20), TALLY_PCAPNG_SNAPLEN);
	assert_int_equal(rd32(buf + epb + 24), TALLY_PCAPNG_SNAPLEN + 1000);
	assert_int_equal(n, epb + rd32(buf + epb + 4));
	test_free(buf);

	/* Pieces holding more than the frame (a segment's slack): the frame's length counts. */
	buf = write_pieces(300, 128, 201, &n);
	assert_int_equal(rd32(buf + epb + 20), 201);
	assert_int_equal(rd32(buf + epb + 24), 201);
	assert_int_equal(n, epb + rd32(buf + epb + 4));
	test_free(buf);
}

/* Bytes of a file (at most len), and its length. */
static size_t
slurp(const char *path, uint8_t *buf, size_t len)
{
	FILE *f = fopen(path, "rb");
	size_t n;

	assert_non_null(f);
	n = fread(buf, 1, len, f);
	fclose(f);
	return n;
}

static void
test_never_destroys(void **state)
{
	char dir[64], path[128], other[128], link[128], fifo[128];
	static uint8_t before[4096], after[8192];
	struct tally_pcapng p;
	uint8_t frame[60];
	size_t n1, n2;
	struct stat sb;
	mode_t old;
	FILE *f;

	test_dir_create(dir, "tally_pcapng_");
	snprintf(path, sizeof(path), "%s/dead.pcapng", dir);
	memset(frame, 0x5a, sizeof(frame));
	/* new: 0640 whatever the umask would allow */
	old = umask(0);
	assert_int_equal(tally_pcapng_open(&p, path, 0), 0);
	umask(old);
	assert_int_equal(tally_pcapng_write(&p, frame, sizeof(frame), 1, "malformed: kind"), 0);
	tally_pcapng_close(&p);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0640);
	/* a second run appends a section of its own: the first capture stays byte for byte */
	n1 = slurp(path, before, sizeof(before));
	assert_int_equal(tally_pcapng_open(&p, path, 0), 0);
	assert_int_equal(tally_pcapng_write(&p, frame, sizeof(frame), 2, "malformed: kind"), 0);
	tally_pcapng_close(&p);
	n2 = slurp(path, after, sizeof(after));
	assert_true(n2 > n1);
	assert_memory_equal(after, before, n1);
	assert_int_equal(rd32(after + n1), 0x0A0D0D0Au); /* the new section header */
	/* a file of another format is refused and left alone */
	snprintf(other, sizeof(other), "%s/notes.txt", dir);
	f = fopen(other, "w");
	assert_non_null(f);
	fputs("not a capture\n", f);
	fclose(f);
	assert_int_equal(tally_pcapng_open(&p, other, 0), -ENOTSUP);
	assert_int_equal(slurp(other, before, sizeof(before)), 14);
	/* a symlink is never followed, a FIFO never waited on */
	snprintf(link, sizeof(link), "%s/link.pcapng", dir);
	assert_int_equal(symlink(other, link), 0);
	assert_int_equal(tally_pcapng_open(&p, link, 0), -ELOOP);
	assert_int_equal(slurp(other, before, sizeof(before)), 14);
	snprintf(fifo, sizeof(fifo), "%s/fifo.pcapng", dir);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	assert_int_equal(tally_pcapng_open(&p, fifo, 0), -EINVAL);
	assert_int_equal(tally_pcapng_open(&p, dir, 0), -EISDIR);
	test_dir_remove(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_blocks),
		cmocka_unit_test(test_rotation),
		cmocka_unit_test(test_bucket),
		cmocka_unit_test(test_jumbo_pieces),
		cmocka_unit_test(test_never_destroys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
