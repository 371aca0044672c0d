/* SPDX-License-Identifier: BSD-3-Clause */
/* Spool segments: records of [header | partial id | series], each with its own CRC-32C. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "tally_ddsketch.h"
#include "tally_hll.h"
#include "tally_names.h"
#include "tally_spool.h"
#include "tally_statsd.h"

#define SPOOL_MAGIC 0x31505354u /* "TSP1" */
#define SPOOL_LOCK "tally.lock"

/* Record header (32 bytes); hdr_crc covers the 28 bytes before it. */
struct spool_hdr {
	uint32_t magic;
	uint32_t payload_len;
	uint64_t window_start;
	uint32_t nseries;
	uint32_t payload_crc;
	uint16_t id_len;
	uint16_t flags; /* SPOOL_F_SIDE, SPOOL_F_NAMES: what follows the series */
	uint32_t hdr_crc;
};

/*
 * The side state of histogram and distinct series (a serialised sketch, a Redis HLL string)
 * follows the series, in their order, each as long as its series' `last_ns` says. Versions
 * before it write flags 0 and no such bytes.
 */
#define SPOOL_F_SIDE 1
/*
 * The names of the record's statsd series (a device id of 2^63 and up) follow the side state,
 * in their order: per series a u16 length (0: the sink had none) and the text. A record
 * without statsd series does not set it, and versions before it do not know it.
 */
#define SPOOL_F_NAMES 2
#define SIDE_BLOB_MAX (TALLY_HLL_DENSE_SIZE > 44 + 12 * TALLY_DDS_CAP_MAX                          \
			       ? TALLY_HLL_DENSE_SIZE                                              \
			       : 44 + 12 * TALLY_DDS_CAP_MAX)

_Static_assert(sizeof(struct spool_hdr) == 32, "spool record header");

static uint32_t crc_table[256];

uint32_t
tally_crc32c(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	size_t i;

	if (crc_table[1] == 0) {
		uint32_t n, k, c;

		for (n = 0; n < 256; n++) {
			for (c = n, k = 0; k < 8; k++)
				c = (c & 1) ? 0x82f63b78u ^ (c >> 1) : c >> 1;
			crc_table[n] = c;
		}
	}
	crc = ~crc;
	for (i = 0; i < len; i++)
		crc = crc_table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
	return ~crc;
}

static void
seg_path(const struct tally_spool *s, uint64_t seq, char *buf, size_t len)
{
	snprintf(buf, len, "%s/spool-%020" PRIu64 ".tsp", s->dir, seq);
}

static void spool_log(struct tally_spool *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
spool_log(struct tally_spool *s, const char *fmt, ...)
{
	char line[2304];
	va_list ap;

	if (s->log == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	s->log(s->log_arg, 1, line);
}

static int
parse_seq(const char *name, uint64_t *seq)
{
	char *end;

	if (strncmp(name, "spool-", 6) != 0)
		return -1;
	*seq = strtoull(name + 6, &end, 10);
	return strcmp(end, ".tsp") == 0 ? 0 : -1;
}

/*
 * Take stock of the segments on disk: oldest, newest, total bytes. Only regular files are
 * segments; anything else with a segment's name (a directory, a FIFO, a symlink: opening
 * one could hang or follow it) is skipped, and counted and logged when log_skipped is set.
 * Its number still counts for *last, so a new segment never takes its name.
 */
static int
scan(struct tally_spool *s, uint64_t *last, int log_skipped)
{
	DIR *d = opendir(s->dir);
	struct dirent *e;
	int found = 0;

	if (d == NULL)
		return -errno;
	s->st.bytes = 0;
	s->first_seq = UINT64_MAX;
	s->nsegs = 0;
	*last = 0;
	while ((e = readdir(d)) != NULL) {
		struct stat sb;
		uint64_t seq;

		if (parse_seq(e->d_name, &seq) != 0 ||
		    fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0)
			continue;
		if (seq > *last)
			*last = seq;
		found = 1;
		if (!S_ISREG(sb.st_mode)) {
			if (log_skipped) {
				s->st.skipped++;
				spool_log(s, "spool %s: %s is not a regular file: skipped", s->dir,
					  e->d_name);
			}
			continue;
		}
		s->st.bytes += (uint64_t)sb.st_size;
		s->nsegs++;
		if (seq < s->first_seq)
			s->first_seq = seq;
	}
	closedir(d);
	return found;
}

/*
 * Own the directory: an exclusive flock on tally.lock, held until close, with our pid in it
 * for the next process's error line. A lock, unlike a pid file, goes with the process.
 */
static int
lock_dir(struct tally_spool *s, char *err, size_t errlen)
{
	char path[1100], pid[32] = "";
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/" SPOOL_LOCK, s->dir);
	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0640);
	if (fd < 0) {
		snprintf(err, errlen, "--spool-dir: cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		int e = errno;

		n = pread(fd, pid, sizeof(pid) - 1, 0);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		close(fd);
		if (e == EWOULDBLOCK)
			snprintf(err, errlen,
				 "--spool-dir: %s is in use by another tally (pid %s): give each "
				 "instance its own directory",
				 s->dir, pid[0] != '\0' ? pid : "unknown");
		else
			snprintf(err, errlen, "--spool-dir: cannot lock %s: %s", path, strerror(e));
		return -1;
	}
	/* The pid only names us in another process's error: a full disk is no reason to stop. */
	n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n)
		spool_log(s, "spool %s: cannot write our pid to %s: %s", s->dir, path,
			  strerror(errno));
	s->lock_fd = fd;
	return 0;
}

/*
 * Found at start rather than at the first outage: a directory that takes no writes (read
 * only, no permission) is an error; less free room than the cap, a warning.
 */
static int
check_room(struct tally_spool *s, char *err, size_t errlen)
{
	char path[1100];
	struct statvfs vfs;
	int fd;

	snprintf(path, sizeof(path), "%s/.probe-%d", s->dir, (int)getpid());
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
	if (fd < 0) {
		snprintf(err, errlen, "--spool-dir: %s does not take writes: %s", s->dir,
			 strerror(errno));
		return -1;
	}
	close(fd);
	unlink(path);
	if (statvfs(s->dir, &vfs) == 0) {
		uint64_t room = (uint64_t)vfs.f_bavail * vfs.f_frsize + s->st.bytes;

		if (room < s->max_bytes)
			spool_log(s,
				  "spool %s: --spool-max-mb is %" PRIu64 " MiB but the file system "
				  "has room for %" PRIu64 " MiB: spooling will fail before the cap",
				  s->dir, s->max_bytes >> 20, room >> 20);
	}
	return 0;
}

int
tally_spool_open(struct tally_spool *s, const struct tally_spool_conf *conf, char *err,
		 size_t errlen)
{
	uint64_t last = 0;
	int rc;

	memset(s, 0, sizeof(*s));
	s->fd = -1;
	s->lock_fd = -1;
	s->reading_seq = UINT64_MAX;
	s->damaged_seq = UINT64_MAX;
	if (strlen(conf->dir) >= sizeof(s->dir) - 40) {
		snprintf(err, errlen, "--spool-dir: path too long");
		return -1;
	}
	strcpy(s->dir, conf->dir);
	s->max_bytes = conf->max_bytes;
	s->seg_max = conf->max_bytes / TALLY_SPOOL_SEGMENTS;
	s->policy = conf->policy;
	s->log = conf->log;
	s->log_arg = conf->log_arg;
	if (mkdir(s->dir, 0750) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "--spool-dir: cannot create %s: %s", s->dir, strerror(errno));
		return -1;
	}
	if (lock_dir(s, err, errlen) != 0)
		return -1;
	rc = scan(s, &last, 1);
	if (rc < 0) {
		snprintf(err, errlen, "--spool-dir: cannot read %s: %s", s->dir, strerror(-rc));
		goto fail;
	}
	if (check_room(s, err, errlen) != 0)
		goto fail;
	/* New data goes to a new segment: what an earlier run left stays as it was. */
	s->seq = rc ? last + 1 : 1;
	return 0;
fail:
	tally_spool_close(s);
	return -1;
}

uint64_t
tally_spool_segments(const struct tally_spool *s)
{
	return s->nsegs;
}

static int
seg_start(struct tally_spool *s)
{
	char path[2048];

	int dfd;

	seg_path(s, s->seq, path, sizeof(path));
	/* A new name (seq is past every entry scanned): never someone else's file or link. */
	s->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0640);
	if (s->fd < 0) {
		s->st.last_errno = errno;
		if (errno == EEXIST)
			s->seq++; /* appeared since the scan: the next try takes the next name */
		return -EIO;
	}
	/* The new name must survive a power loss too, not only the data written to it. */
	dfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	s->seg_bytes = 0;
	s->nsegs++;
	if (s->first_seq == UINT64_MAX)
		s->first_seq = s->seq;
	return 0;
}

static void
seg_finish(struct tally_spool *s)
{
	if (s->fd < 0)
		return;
	close(s->fd);
	s->fd = -1;
	s->seq++;
}

static int
write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The side state of series sl of t as bytes into buf (SIDE_BLOB_MAX): its length, 0: none. */
static size_t
side_blob(const struct tally_table *t, const struct tally_slot *sl, uint8_t *buf)
{
	const struct tally_dds *d;
	int n;

	if (sl->kind == TALLY_KIND_HISTOGRAM) {
		d = tally_table_sketch(t, sl);
		n = d != NULL ? tally_dds_serialise(d, buf, SIDE_BLOB_MAX) : 0;
	} else {
		n = tally_table_hll(t, sl, buf, SIDE_BLOB_MAX);
	}
	return n > 0 ? (size_t)n : 0;
}

/* Bytes of side state the series [first, end) of t carry. */
static uint64_t
side_bytes(const struct tally_table *t, uint32_t first, uint32_t end, uint8_t *scratch)
{
	const struct tally_dds *d;
	uint64_t n = 0;
	uint32_t i;

	for (i = first; i < end; i++) {
		const struct tally_slot *sl = tally_table_at(t, i);

		if (!tally_kind_side(sl->kind))
			continue;
		d = sl->kind == TALLY_KIND_HISTOGRAM ? tally_table_sketch(t, sl) : NULL;
		/* a sketch's size is known without writing it; an HLL's form is not */
		n += d != NULL ? tally_dds_serial_size(d) : side_blob(t, sl, scratch);
	}
	return n;
}

/* Bytes the names of the statsd series [first, end) of t take (0: none of them statsd's). */
static uint64_t
names_bytes(const struct tally_table *t, uint32_t first, uint32_t end,
	    const struct tally_names *names)
{
	uint64_t n = 0;
	uint32_t i;

	for (i = first; i < end; i++) {
		const struct tally_slot *sl = tally_table_at(t, i);
		uint16_t len = 0;

		if (!(sl->device_id & TALLY_STATSD_DEVICE_BIT))
			continue;
		if (names == NULL || tally_names_find(names, sl->metric_id, SIZE_MAX, &len) == NULL)
			len = 0;
		n += sizeof(uint16_t) + len;
	}
	return n;
}

/* Write those names at p; past them. */
static uint8_t *
names_put(uint8_t *p, const struct tally_table *t, uint32_t first, uint32_t end,
	  const struct tally_names *names)
{
	uint32_t i;

	for (i = first; i < end; i++) {
		const struct tally_slot *sl = tally_table_at(t, i);
		const char *text = NULL;
		uint16_t len = 0;

		if (!(sl->device_id & TALLY_STATSD_DEVICE_BIT))
			continue;
		if (names != NULL)
			text = tally_names_find(names, sl->metric_id, SIZE_MAX, &len);
		if (text == NULL)
			len = 0;
		memcpy(p, &len, sizeof(len));
		if (len > 0)
			memcpy(p + sizeof(len), text, len);
		p += sizeof(len) + len;
	}
	return p;
}

/* Bytes the records of series [first, end) take: headers, ids, series, side state. */
static uint64_t
rec_bytes(uint32_t nseries, size_t id_len, uint64_t side)
{
	return sizeof(struct spool_hdr) + id_len +
	       (uint64_t)nseries * sizeof(struct tally_spool_series) + side;
}

/* End of a record starting at first: about 1024 series, never splitting a device. */
static uint32_t
rec_end(const struct tally_table *t, uint32_t first)
{
	uint32_t end = first + TALLY_SPOOL_SERIES_PER_REC;

	if (end >= t->series)
		return t->series;
	while (end < t->series &&
	       tally_table_at(t, end)->device_id == tally_table_at(t, end - 1)->device_id)
		end++;
	return end;
}

static int
make_room(struct tally_spool *s, uint64_t need)
{
	if (need > s->max_bytes)
		return -ENOSPC; /* never fits: delete nothing for it */
	while (s->st.bytes + need > s->max_bytes) {
		/* Never the segment being appended, nor the one being replayed. */
		if (s->policy != TALLY_SPOOL_DROP_OLDEST || s->first_seq == UINT64_MAX ||
		    (s->fd >= 0 && s->first_seq == s->seq) || s->first_seq == s->reading_seq)
			return -ENOSPC;
		if (tally_spool_remove_oldest(s) != 0)
			return -EIO;
		s->st.dropped_old++;
	}
	return 0;
}

int
tally_spool_append(struct tally_spool *s, uint64_t window_start, const char *partial_id,
		   const struct tally_table *t, const struct tally_names *names)
{
	size_t id_len = strlen(partial_id);
	uint64_t total = 0, start_off;
	uint32_t first, end;
	uint8_t *blob;
	int rc;

	if (id_len >= sizeof(((struct tally_spool_rec *)0)->partial_id))
		return -EINVAL;
	blob = malloc(SIDE_BLOB_MAX);
	if (blob == NULL) {
		s->st.last_errno = ENOMEM;
		s->st.write_errors++;
		return -EIO;
	}
	/* The table is sorted by device (the sink sorts before writing), so parts are whole. */
	for (first = 0; first < t->series; first = end) {
		end = rec_end(t, first);
		total += rec_bytes(end - first, id_len,
				   side_bytes(t, first, end, blob) +
					   names_bytes(t, first, end, names));
	}
	if (make_room(s, total) != 0) {
		free(blob);
		s->st.dropped_new++;
		return -ENOSPC;
	}
	if (s->fd >= 0 && s->seg_bytes > 0 && s->seg_bytes + total > s->seg_max)
		seg_finish(s);
	if (s->fd < 0 && (rc = seg_start(s)) != 0) {
		free(blob);
		s->st.write_errors++;
		return rc;
	}
	start_off = s->seg_bytes;
	for (first = 0; first < t->series; first = end) {
		struct tally_spool_series *ser;
		struct spool_hdr *h;
		uint64_t len, side = 0, nb;
		uint8_t *rec, *sides;
		uint32_t i;
		int wr;

		end = rec_end(t, first);
		side = side_bytes(t, first, end, blob);
		nb = names_bytes(t, first, end, names);
		len = rec_bytes(end - first, id_len, side + nb);
		rec = calloc(1, len);
		if (rec == NULL) {
			s->st.last_errno = ENOMEM;
			goto fail;
		}
		h = (struct spool_hdr *)rec;
		h->magic = SPOOL_MAGIC;
		h->window_start = window_start;
		h->nseries = end - first;
		h->id_len = (uint16_t)id_len;
		h->flags = SPOOL_F_SIDE | (nb > 0 ? SPOOL_F_NAMES : 0);
		h->payload_len = (uint32_t)(len - sizeof(*h));
		memcpy(rec + sizeof(*h), partial_id, id_len);
		ser = (struct tally_spool_series *)(rec + sizeof(*h) + id_len);
		sides = (uint8_t *)(ser + (end - first));
		for (i = first; i < end; i++) {
			const struct tally_slot *sl = tally_table_at(t, i);
			struct tally_spool_series x = {.device_id = sl->device_id,
						       .metric_id = sl->metric_id,
						       .kind = sl->kind,
						       .count = sl->count,
						       .sum = sl->sum,
						       .min = sl->min,
						       .max = sl->max,
						       .last = sl->last,
						       .last_ns = sl->last_ns};

			if (tally_kind_side(sl->kind)) {
				/* last_ns: the length of its side state, which follows the series */
				size_t n = side_blob(t, sl, blob);

				x.last = 0;
				x.last_ns = n;
				memcpy(sides, blob, n);
				sides += n;
			}
			memcpy(&ser[i - first], &x, sizeof(x));
		}
		if (nb > 0)
			names_put(sides, t, first, end, names);
		h->payload_crc = tally_crc32c(0, rec + sizeof(*h), h->payload_len);
		h->hdr_crc = tally_crc32c(0, h, offsetof(struct spool_hdr, hdr_crc));
		wr = write_all(s->fd, rec, len);
		free(rec);
		if (wr != 0) {
			s->st.last_errno = -wr;
			goto fail;
		}
		s->st.records++;
	}
	free(blob);
	blob = NULL;
	/* Durable before the window is let go: a power loss keeps what was acknowledged. */
	if (fdatasync(s->fd) != 0) {
		s->st.last_errno = errno;
		goto fail;
	}
	s->seg_bytes += total;
	s->st.bytes += total;
	s->st.windows++;
	return 0;
fail:
	free(blob);
	/* No torn record in the middle of a segment: cut the failed append off again. */
	if (ftruncate(s->fd, (off_t)start_off) != 0)
		seg_finish(s);
	s->st.write_errors++;
	return -EIO;
}

/* Next offset at or after off where a header with a valid CRC starts, or len. */
static size_t
resync(const uint8_t *p, size_t off, size_t len)
{
	for (; off + sizeof(struct spool_hdr) <= len; off++) {
		struct spool_hdr h;

		memcpy(&h, p + off, sizeof(h));
		if (h.magic == SPOOL_MAGIC &&
		    h.hdr_crc == tally_crc32c(0, &h, offsetof(struct spool_hdr, hdr_crc)))
			return off;
	}
	return len;
}

/* Rename the segment seq to <name>.bad: kept for a person to look at, out of the spool. */
static int
set_aside(struct tally_spool *s, uint64_t seq, const char *why)
{
	char path[2048], bad[2060];

	seg_path(s, seq, path, sizeof(path));
	snprintf(bad, sizeof(bad), "%s.bad", path);
	if (rename(path, bad) != 0 && errno != ENOENT)
		return -errno;
	s->st.set_aside++;
	spool_log(s, "spool segment %s %s: set aside as %s", path, why, bad);
	return 0;
}

/* Take stock again after a segment went away: what remains is the next oldest. */
static int
rescan(struct tally_spool *s)
{
	uint64_t last = 0;
	int rc = scan(s, &last, 0);

	return rc < 0 ? rc : 0;
}

int
tally_spool_iter_open(struct tally_spool *s, struct tally_spool_iter *it)
{
	char path[2048];
	struct stat sb;
	int fd, rc;

	memset(it, 0, sizeof(*it));
	for (;;) {
		if (s->first_seq == UINT64_MAX)
			return -ENOENT;
		if (s->fd >= 0 && s->first_seq == s->seq)
			seg_finish(s); /* appends go to the next segment from now on */
		seg_path(s, s->first_seq, path, sizeof(path));
		/* Never follow a link, nor wait on a FIFO put in a segment's place. */
		fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
		if (fd >= 0 && fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode))
			break;
		if (fd < 0 && errno != ELOOP && errno != ENOENT && errno != ENXIO)
			return -errno;
		if (fd >= 0)
			close(fd);
		if (fd >= 0 || errno != ENOENT) {
			s->st.skipped++;
			rc = set_aside(s, s->first_seq, "is not a regular file");
			if (rc != 0)
				return rc;
		}
		rc = rescan(s);
		if (rc != 0)
			return rc;
	}
	it->spool = s;
	it->len = (size_t)sb.st_size;
	s->reading_seq = s->first_seq;
	if (it->len > 0) {
		it->map = mmap(NULL, it->len, PROT_READ, MAP_PRIVATE, fd, 0);
		if (it->map == MAP_FAILED) {
			it->map = NULL;
			close(fd);
			return -errno;
		}
	}
	close(fd);
	return 0;
}

/* A damaged record: counted, and its segment is set aside rather than deleted. */
static void
damaged(struct tally_spool *s, struct tally_spool_iter *it)
{
	s->st.corrupt++;
	it->corrupt++;
	s->damaged_seq = s->reading_seq;
}

/*
 * The side state lengths of a record's series add up to the bytes behind them (exactly, or
 * with names: the names' lengths, one per statsd series, make up the rest). Sets the record's
 * side_len, names and names_len.
 */
static int
spool_side_check(struct tally_spool_rec *rec, int with_names)
{
	uint64_t n = 0, left;
	const uint8_t *p;
	uint32_t i;

	for (i = 0; i < rec->nseries; i++) {
		uint64_t len = rec->series[i].last_ns;

		if (!tally_kind_side(rec->series[i].kind))
			continue;
		/* each length within what is left, so no sum of them can wrap around */
		if (len > rec->side_len - n)
			return -EINVAL;
		n += len;
	}
	rec->names = NULL;
	rec->names_len = 0;
	if (!with_names)
		return n == rec->side_len ? 0 : -EINVAL;
	rec->names = rec->side + n;
	rec->names_len = rec->side_len - n;
	rec->side_len = n;
	for (p = rec->names, left = rec->names_len, i = 0; i < rec->nseries; i++) {
		uint16_t len;

		if (!(rec->series[i].device_id & TALLY_STATSD_DEVICE_BIT))
			continue;
		if (left < sizeof(len))
			return -EINVAL;
		memcpy(&len, p, sizeof(len));
		if (len > left - sizeof(len))
			return -EINVAL;
		p += sizeof(len) + len;
		left -= sizeof(len) + len;
	}
	return left == 0 ? 0 : -EINVAL;
}

void
tally_spool_rec_names(const struct tally_spool_rec *rec, struct tally_names *names)
{
	const uint8_t *p = rec->names;
	uint32_t i;

	if (p == NULL || names == NULL)
		return;
	for (i = 0; i < rec->nseries; i++) {
		uint16_t len;

		if (!(rec->series[i].device_id & TALLY_STATSD_DEVICE_BIT))
			continue;
		memcpy(&len, p, sizeof(len));
		if (len > 0)
			tally_names_add(names, rec->series[i].metric_id, (const char *)p + 2, len);
		p += sizeof(len) + len;
	}
}

int
tally_spool_iter_next(struct tally_spool *s, struct tally_spool_iter *it,
		      struct tally_spool_rec *rec)
{
	const uint8_t *p = it->map;
	uint64_t fixed;

	while (it->off < it->len) {
		struct spool_hdr h;
		size_t off = it->off;

		if (it->len - off < sizeof(h)) { /* torn header at the end */
			damaged(s, it);
			it->off = it->len;
			break;
		}
		memcpy(&h, p + off, sizeof(h));
		if (h.magic != SPOOL_MAGIC ||
		    h.hdr_crc != tally_crc32c(0, &h, offsetof(struct spool_hdr, hdr_crc))) {
			/* A damaged header: skip to the next record that checks out. */
			damaged(s, it);
			it->off = resync(p, off + 1, it->len);
			continue;
		}
		if (h.payload_len > it->len - off - sizeof(h)) { /* torn record at the end */
			damaged(s, it);
			it->off = it->len;
			break;
		}
		it->off = off + sizeof(h) + h.payload_len;
		fixed = h.id_len + (uint64_t)h.nseries * sizeof(*rec->series);
		if (h.payload_len < fixed || (h.flags == 0 && h.payload_len != fixed) ||
		    (h.flags & ~(SPOOL_F_SIDE | SPOOL_F_NAMES)) != 0 ||
		    ((h.flags & SPOOL_F_NAMES) && !(h.flags & SPOOL_F_SIDE)) ||
		    h.id_len >= sizeof(rec->partial_id) ||
		    tally_crc32c(0, p + off + sizeof(h), h.payload_len) != h.payload_crc) {
			damaged(s, it);
			continue;
		}
		rec->window_start = h.window_start;
		memcpy(rec->partial_id, p + off + sizeof(h), h.id_len);
		rec->partial_id[h.id_len] = '\0';
		rec->nseries = h.nseries;
		/* The series follow an id of any length: copy them to aligned memory. */
		free(it->aligned);
		it->aligned = malloc((size_t)h.payload_len - h.id_len + 1);
		if (it->aligned == NULL)
			return -ENOMEM;
		memcpy(it->aligned, p + off + sizeof(h) + h.id_len, (size_t)h.payload_len - h.id_len);
		rec->series = it->aligned;
		rec->side = (const uint8_t *)(rec->series + h.nseries);
		rec->side_len = h.payload_len - fixed;
		rec->has_side = (h.flags & SPOOL_F_SIDE) != 0;
		rec->names = NULL;
		rec->names_len = 0;
		if (rec->has_side && spool_side_check(rec, (h.flags & SPOOL_F_NAMES) != 0) != 0) {
			damaged(s, it);
			continue;
		}
		s->st.replayed++;
		return 1;
	}
	return 0;
}

void
tally_spool_iter_close(struct tally_spool_iter *it)
{
	if (it->spool != NULL)
		it->spool->reading_seq = UINT64_MAX;
	if (it->map != NULL)
		munmap(it->map, it->len);
	free(it->aligned);
	memset(it, 0, sizeof(*it));
}

int
tally_spool_read_oldest(struct tally_spool *s,
			int (*fn)(void *ctx, const struct tally_spool_rec *rec), void *ctx)
{
	struct tally_spool_iter it;
	struct tally_spool_rec rec;
	int n = 0, rc;

	rc = tally_spool_iter_open(s, &it);
	if (rc != 0)
		return rc;
	while ((rc = tally_spool_iter_next(s, &it, &rec)) == 1) {
		if (fn(ctx, &rec) < 0) {
			rc = -EAGAIN;
			break;
		}
		n++;
	}
	tally_spool_iter_close(&it);
	return rc < 0 ? rc : n;
}

int
tally_spool_remove_oldest(struct tally_spool *s)
{
	char path[2048];
	int rc;

	if (s->first_seq == UINT64_MAX)
		return -ENOENT;
	if (s->fd >= 0 && s->first_seq == s->seq)
		seg_finish(s);
	if (s->first_seq == s->damaged_seq) {
		s->damaged_seq = UINT64_MAX;
		rc = set_aside(s, s->first_seq, "held damaged records (counted in spool_corrupt)");
		if (rc != 0)
			return rc;
	} else {
		seg_path(s, s->first_seq, path, sizeof(path));
		if (unlink(path) != 0 && errno != ENOENT)
			return -errno;
	}
	return rescan(s);
}

void
tally_spool_close(struct tally_spool *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	if (s->lock_fd >= 0)
		close(s->lock_fd); /* the lock goes with it */
	s->lock_fd = -1;
}
