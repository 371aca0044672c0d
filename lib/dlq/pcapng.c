/* SPDX-License-Identifier: BSD-3-Clause */
/* pcapng blocks (SHB, IDB, EPB with opt_comment) written with stdio, off the data path. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tally_pcapng.h"

#define BT_SHB 0x0A0D0D0Au
#define BT_IDB 0x00000001u
#define BT_EPB 0x00000006u
#define BYTE_ORDER_MAGIC 0x1A2B3C4Du
#define LINKTYPE_ETHERNET 1
#define OPT_ENDOFOPT 0
#define OPT_COMMENT 1
#define IF_TSRESOL 9

static uint32_t
pad4(uint32_t n)
{
	return (n + 3) & ~3u;
}

/* The smaller of a piece's length and what is left to take. */
static uint32_t
clamp(size_t len, uint32_t left)
{
	return len < left ? (uint32_t)len : left;
}

static int
put(struct tally_pcapng *p, const void *buf, size_t len)
{
	if (fwrite(buf, 1, len, p->f) != len)
		return -EIO;
	p->bytes += len;
	return 0;
}

static int
put32(struct tally_pcapng *p, uint32_t v)
{
	return put(p, &v, sizeof(v));
}

static int
put_padded(struct tally_pcapng *p, const void *buf, uint32_t len)
{
	static const uint8_t zero[4];

	if (put(p, buf, len) != 0)
		return -EIO;
	return put(p, zero, pad4(len) - len);
}

static int
write_headers(struct tally_pcapng *p)
{
	/* SHB: no options. */
	uint32_t shb_len = 28;
	uint64_t section_len = UINT64_MAX;
	/* IDB: if_tsresol = 9 (nanoseconds). */
	uint32_t idb_len = 20 + 8 + 4;
	uint8_t tsresol[4] = {9, 0, 0, 0};
	int rc = 0;

	rc |= put32(p, BT_SHB);
	rc |= put32(p, shb_len);
	rc |= put32(p, BYTE_ORDER_MAGIC);
	rc |= put32(p, 1 | (0u << 16)); /* major 1, minor 0 */
	rc |= put(p, &section_len, sizeof(section_len));
	rc |= put32(p, shb_len);

	rc |= put32(p, BT_IDB);
	rc |= put32(p, idb_len);
	rc |= put32(p, LINKTYPE_ETHERNET); /* linktype 16 bits, reserved 16 bits */
	rc |= put32(p, TALLY_PCAPNG_SNAPLEN);
	rc |= put32(p, IF_TSRESOL | (1u << 16));
	rc |= put(p, tsresol, sizeof(tsresol));
	rc |= put32(p, OPT_ENDOFOPT);
	rc |= put32(p, idb_len);
	return rc ? -EIO : 0;
}

/*
 * Open path for appending, never following a symlink there (as root that would write
 * through it to anything) nor blocking on a FIFO; only a regular file will do (-EINVAL),
 * and one that already holds data must be a pcapng capture (-ENOTSUP): it is appended to.
 * mode 0640 whatever the umask adds. excl: the name must be new (after a rotation).
 */
static int
open_capture(struct tally_pcapng *p, int excl)
{
	uint32_t magic = 0;
	struct stat sb;
	int fd, rc;

	fd = open(p->path,
		  O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC |
			  (excl ? O_EXCL : 0),
		  0640);
	if (fd < 0)
		return errno == ENXIO ? -EINVAL : -errno; /* ENXIO: a FIFO nobody reads */
	rc = fstat(fd, &sb) != 0 ? -errno : !S_ISREG(sb.st_mode) ? -EINVAL : 0;
	if (rc == 0 && sb.st_size > 0) {
		int rfd = open(p->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

		if (rfd < 0 || pread(rfd, &magic, sizeof(magic), 0) != (ssize_t)sizeof(magic) ||
		    magic != BT_SHB)
			rc = -ENOTSUP;
		if (rfd >= 0)
			close(rfd);
	}
	if (rc == 0 && (fchmod(fd, sb.st_mode & 0640) != 0 ||
			fcntl(fd, F_SETFL, O_WRONLY | O_APPEND) != 0))
		rc = -errno;
	if (rc == 0 && (p->f = fdopen(fd, "ab")) == NULL)
		rc = -errno;
	if (rc != 0) {
		close(fd);
		return rc;
	}
	p->bytes = (uint64_t)sb.st_size;
	/* A section of its own: what an earlier run captured stays as it was, before it. */
	if (write_headers(p) != 0) {
		fclose(p->f);
		p->f = NULL;
		return -EIO;
	}
	return 0;
}

int
tally_pcapng_open(struct tally_pcapng *p, const char *path, uint64_t max_bytes)
{
	memset(p, 0, sizeof(*p));
	if (strlen(path) >= sizeof(p->path) - 3)
		return -ENAMETOOLONG;
	strcpy(p->path, path);
	p->max_bytes = max_bytes;
	return open_capture(p, 0);
}

static int
rotate(struct tally_pcapng *p)
{
	char old[sizeof(p->path) + 2];

	fclose(p->f);
	p->f = NULL;
	snprintf(old, sizeof(old), "%s.1", p->path);
	if (rename(p->path, old) != 0) {
		int rc = -errno, again;

		/* Keep writing to the same file rather than losing the capture. */
		again = open_capture(p, 0);
		return again != 0 ? again : rc;
	}
	p->rotations++;
	return open_capture(p, 1);
}

int
tally_pcapng_write(struct tally_pcapng *p, const uint8_t *frame, uint32_t len, uint64_t time_ns,
		   const char *comment)
{
	struct iovec iov = {.iov_base = (void *)(uintptr_t)frame, .iov_len = len};

	return tally_pcapng_writev(p, &iov, 1, len, time_ns, comment);
}

int
tally_pcapng_writev(struct tally_pcapng *p, const struct iovec *iov, unsigned int iovcnt,
		    uint32_t len, uint64_t time_ns, const char *comment)
{
	static const uint8_t zero[4];
	uint32_t clen = comment ? (uint32_t)strlen(comment) : 0;
	uint32_t max = len < TALLY_PCAPNG_SNAPLEN ? len : TALLY_PCAPNG_SNAPLEN;
	uint32_t cap = 0, opts, total, n;
	unsigned int i;
	int rc = 0;

	for (i = 0; i < iovcnt && cap < max; i++)
		cap += clamp(iov[i].iov_len, max - cap);
	opts = (clen ? 4 + pad4(clen) : 0) + 4;
	total = 28 + pad4(cap) + opts + 4;
	if (p->f == NULL)
		return -EBADF;
	if (p->max_bytes && p->bytes + total > p->max_bytes && p->packets > 0 &&
	    (rc = rotate(p)) != 0)
		return rc;
	rc |= put32(p, BT_EPB);
	rc |= put32(p, total);
	rc |= put32(p, 0); /* interface 0 */
	rc |= put32(p, (uint32_t)(time_ns >> 32));
	rc |= put32(p, (uint32_t)time_ns);
	rc |= put32(p, cap);
	rc |= put32(p, len);
	for (i = 0, n = cap; i < iovcnt && n > 0; i++) {
		uint32_t k = clamp(iov[i].iov_len, n);

		rc |= put(p, iov[i].iov_base, k);
		n -= k;
	}
	rc |= put(p, zero, pad4(cap) - cap);
	if (clen) {
		rc |= put32(p, OPT_COMMENT | (clen << 16));
		rc |= put_padded(p, comment, clen);
	}
	rc |= put32(p, OPT_ENDOFOPT);
	rc |= put32(p, total);
	if (rc != 0)
		return -EIO;
	p->packets++;
	return 0;
}

int
tally_pcapng_flush(struct tally_pcapng *p)
{
	return p->f != NULL && fflush(p->f) != 0 ? -errno : 0;
}

void
tally_pcapng_close(struct tally_pcapng *p)
{
	if (p->f != NULL)
		fclose(p->f);
	p->f = NULL;
}
