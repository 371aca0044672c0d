/* SPDX-License-Identifier: BSD-3-Clause */
/* Spool segments: records of [header | partial id | series], each with its own CRC-32C. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tally_spool.h"

#define SPOOL_MAGIC 0x31505354u /* "TSP1" */

/* Record header (32 bytes); hdr_crc covers the 28 bytes before it. */
struct spool_hdr {
	uint32_t magic;
	uint32_t payload_len;
	uint64_t window_start;
	uint32_t nseries;
	uint32_t payload_crc;
	uint16_t id_len;
	uint16_t reserved;
	uint32_t hdr_crc;
};

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

static int
parse_seq(const char *name, uint64_t *seq)
{
	char *end;

	if (strncmp(name, "spool-", 6) != 0)
		return -1;
	*seq = strtoull(name + 6, &end, 10);
	return strcmp(end, ".tsp") == 0 ? 0 : -1;
}

/* Take stock of the segments on disk: oldest, newest, total bytes. */
static int
scan(struct tally_spool *s, uint64_t *last)
{
	DIR *d = opendir(s->dir);
	struct dirent *e;
	int found = 0;

	if (d == NULL)
		return -errno;
	s->st.bytes = 0;
	s->first_seq = UINT64_MAX;
	*last = 0;
	while ((e = readdir(d)) != NULL) {
		char path[2048];
		struct stat sb;
		uint64_t seq;

		if (parse_seq(e->d_name, &seq) != 0)
			continue;
		seg_path(s, seq, path, sizeof(path));
		if (stat(path, &sb) != 0)
			continue;
		s->st.bytes += (uint64_t)sb.st_size;
		if (seq < s->first_seq)
			s->first_seq = seq;
		if (seq > *last)
			*last = seq;
		found = 1;
	}
	closedir(d);
	if (!found)
		s->first_seq = UINT64_MAX;
	return found;
}

int
tally_spool_open(struct tally_spool *s, const char *dir, uint64_t max_bytes, int policy,
		 char *err, size_t errlen)
{
	uint64_t last;
	int rc;

	memset(s, 0, sizeof(*s));
	s->fd = -1;
	s->reading_seq = UINT64_MAX;
	if (strlen(dir) >= sizeof(s->dir) - 40) {
		snprintf(err, errlen, "--spool-dir: path too long");
		return -1;
	}
	strcpy(s->dir, dir);
	s->max_bytes = max_bytes;
	s->seg_max = max_bytes / TALLY_SPOOL_SEGMENTS;
	s->policy = policy;
	if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "--spool-dir: cannot create %s: %s", dir, strerror(errno));
		return -1;
	}
	rc = scan(s, &last);
	if (rc < 0) {
		snprintf(err, errlen, "--spool-dir: cannot read %s: %s", dir, strerror(-rc));
		return -1;
	}
	/* New data goes to a new segment: what an earlier run left stays as it was. */
	s->seq = rc ? last + 1 : 1;
	return 0;
}

uint64_t
tally_spool_segments(const struct tally_spool *s)
{
	if (s->first_seq == UINT64_MAX)
		return 0;
	/* Closed segments are first_seq .. seq - 1; an open one is seq. */
	return s->seq - s->first_seq + (s->fd >= 0 ? 1 : 0);
}

static int
seg_start(struct tally_spool *s)
{
	char path[2048];

	int dfd;

	seg_path(s, s->seq, path, sizeof(path));
	s->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (s->fd < 0)
		return -errno;
	/* The new name must survive a power loss too, not only the data written to it. */
	dfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	s->seg_bytes = 0;
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
			return -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Bytes the records of series [first, end) take: headers, ids, series. */
static uint64_t
rec_bytes(uint32_t nseries, size_t id_len)
{
	return sizeof(struct spool_hdr) + id_len + (uint64_t)nseries * sizeof(struct tally_spool_series);
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
		   const struct tally_table *t)
{
	size_t id_len = strlen(partial_id);
	uint64_t total = 0, start_off;
	uint32_t first, end;
	int rc;

	if (id_len >= sizeof(((struct tally_spool_rec *)0)->partial_id))
		return -EINVAL;
	/* The table is sorted by device (the sink sorts before writing), so parts are whole. */
	for (first = 0; first < t->series; first = end) {
		end = rec_end(t, first);
		total += rec_bytes(end - first, id_len);
	}
	if (make_room(s, total) != 0) {
		s->st.dropped_new++;
		return -ENOSPC;
	}
	if (s->fd >= 0 && s->seg_bytes > 0 && s->seg_bytes + total > s->seg_max)
		seg_finish(s);
	if (s->fd < 0 && (rc = seg_start(s)) != 0) {
		s->st.write_errors++;
		return rc;
	}
	start_off = s->seg_bytes;
	for (first = 0; first < t->series; first = end) {
		struct tally_spool_series *ser;
		struct spool_hdr *h;
		uint64_t len;
		uint8_t *rec;
		uint32_t i;
		int wr;

		end = rec_end(t, first);
		len = rec_bytes(end - first, id_len);
		rec = calloc(1, len);
		if (rec == NULL)
			goto fail;
		h = (struct spool_hdr *)rec;
		h->magic = SPOOL_MAGIC;
		h->window_start = window_start;
		h->nseries = end - first;
		h->id_len = (uint16_t)id_len;
		h->payload_len = (uint32_t)(len - sizeof(*h));
		memcpy(rec + sizeof(*h), partial_id, id_len);
		ser = (struct tally_spool_series *)(rec + sizeof(*h) + id_len);
		for (i = first; i < end; i++) {
			const struct tally_slot *sl = tally_table_at(t, i);
			struct tally_spool_series x = {
				.device_id = sl->device_id, .metric_id = sl->metric_id,
				.kind = sl->kind, .count = sl->count, .sum = sl->sum, .min = sl->min,
				.max = sl->max, .last = sl->last, .last_ns = sl->last_ns};

			memcpy(&ser[i - first], &x, sizeof(x));
		}
		h->payload_crc = tally_crc32c(0, rec + sizeof(*h), h->payload_len);
		h->hdr_crc = tally_crc32c(0, h, offsetof(struct spool_hdr, hdr_crc));
		wr = write_all(s->fd, rec, len);
		free(rec);
		if (wr != 0)
			goto fail;
		s->st.records++;
	}
	/* Durable before the window is let go: a power loss keeps what was acknowledged. */
	if (fdatasync(s->fd) != 0)
		goto fail;
	s->seg_bytes += total;
	s->st.bytes += total;
	s->st.windows++;
	return 0;
fail:
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

int
tally_spool_iter_open(struct tally_spool *s, struct tally_spool_iter *it)
{
	char path[2048];
	struct stat sb;
	int fd;

	memset(it, 0, sizeof(*it));
	if (s->first_seq == UINT64_MAX)
		return -ENOENT;
	it->spool = s;
	if (s->fd >= 0 && s->first_seq == s->seq)
		seg_finish(s); /* appends go to the next segment from now on */
	seg_path(s, s->first_seq, path, sizeof(path));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &sb) != 0) {
		close(fd);
		return -errno;
	}
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

int
tally_spool_iter_next(struct tally_spool *s, struct tally_spool_iter *it,
		      struct tally_spool_rec *rec)
{
	const uint8_t *p = it->map;

	while (it->off < it->len) {
		struct spool_hdr h;
		size_t off = it->off;

		if (it->len - off < sizeof(h)) { /* torn header at the end */
			s->st.corrupt++;
			it->off = it->len;
			break;
		}
		memcpy(&h, p + off, sizeof(h));
		if (h.magic != SPOOL_MAGIC ||
		    h.hdr_crc != tally_crc32c(0, &h, offsetof(struct spool_hdr, hdr_crc))) {
			/* A damaged header: skip to the next record that checks out. */
			s->st.corrupt++;
			it->off = resync(p, off + 1, it->len);
			continue;
		}
		if (h.payload_len > it->len - off - sizeof(h)) { /* torn record at the end */
			s->st.corrupt++;
			it->off = it->len;
			break;
		}
		it->off = off + sizeof(h) + h.payload_len;
		if (h.payload_len != h.id_len + (uint64_t)h.nseries * sizeof(*rec->series) ||
		    h.id_len >= sizeof(rec->partial_id) ||
		    tally_crc32c(0, p + off + sizeof(h), h.payload_len) != h.payload_crc) {
			s->st.corrupt++;
			continue;
		}
		rec->window_start = h.window_start;
		memcpy(rec->partial_id, p + off + sizeof(h), h.id_len);
		rec->partial_id[h.id_len] = '\0';
		rec->nseries = h.nseries;
		/* The series follow an id of any length: copy them to aligned memory. */
		free(it->aligned);
		it->aligned = malloc((size_t)h.nseries * sizeof(*rec->series) + 1);
		if (it->aligned == NULL)
			return -ENOMEM;
		memcpy(it->aligned, p + off + sizeof(h) + h.id_len,
		       (size_t)h.nseries * sizeof(*rec->series));
		rec->series = it->aligned;
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

	if (s->first_seq == UINT64_MAX)
		return -ENOENT;
	if (s->fd >= 0 && s->first_seq == s->seq)
		seg_finish(s);
	seg_path(s, s->first_seq, path, sizeof(path));
	if (unlink(path) != 0 && errno != ENOENT)
		return -errno;
	/* Take stock again: what remains is the next oldest. */
	{
		uint64_t last;
		int rc = scan(s, &last);

		return rc < 0 ? rc : 0;
	}
}

void
tally_spool_close(struct tally_spool *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}
