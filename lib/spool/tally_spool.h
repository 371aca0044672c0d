/* SPDX-License-Identifier: BSD-3-Clause */
/* The spool: window aggregates Redis could not take yet, in checksummed append-only files. */
#ifndef TALLY_SPOOL_H
#define TALLY_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "tally_table.h"

struct tally_names;

#define TALLY_SPOOL_SEGMENTS 8 /* the size cap is shared by this many segment files */
#define TALLY_SPOOL_SERIES_PER_REC 1024

/* What to do when the spool reaches its size cap. */
enum tally_spool_policy {
	TALLY_SPOOL_DROP_NEW = 0, /* stop spooling: new windows are counted and dropped */
	TALLY_SPOOL_DROP_OLDEST,  /* delete the oldest segment to make room */
};

/*
 * One series as spooled (64 bytes, little-endian, as in memory). A histogram or distinct
 * series has last = 0 and last_ns = the length of its side state (tally_dds_serialise()
 * bytes, or a Redis HLL string), which follows the record's series in their order.
 */
struct tally_spool_series {
	uint64_t device_id;
	uint32_t metric_id;
	uint8_t kind;
	uint8_t pad[3];
	uint64_t count;
	double sum;
	double min;
	double max;
	double last;
	uint64_t last_ns;
} __attribute__((packed));

_Static_assert(sizeof(struct tally_spool_series) == 64, "spooled series layout");

struct tally_spool_stats {
	uint64_t windows;     /* windows (or parts) appended */
	uint64_t records;     /* records (chunks of up to 1024 series) appended */
	uint64_t bytes;	      /* bytes in the spool now */
	uint64_t dropped_new; /* windows not spooled: cap reached, policy drop-new */
	uint64_t dropped_old; /* segments deleted: cap reached, policy drop-oldest */
	uint64_t replayed;    /* records read back and handed on */
	uint64_t corrupt;     /* records skipped: torn or failing their checksum */
	uint64_t write_errors;
	uint64_t skipped;   /* entries with a segment's name that are not regular files */
	uint64_t set_aside; /* damaged or unknown segments renamed to .bad, not deleted */
	int last_errno;	    /* of the last failed write, for the log */
};

/* How a spool is opened. */
struct tally_spool_conf {
	const char *dir;
	uint64_t max_bytes;
	int policy; /* enum tally_spool_policy */
	/* warnings (free space, entries skipped or set aside); may be NULL */
	void (*log)(void *arg, int warning, const char *line);
	void *log_arg;
};

/*
 * The spool directory: segment files spool-<seq>.tsp, appended in order, and tally.lock,
 * flock()ed by the process that owns the directory. Single-threaded (the sink thread).
 */
struct tally_spool {
	char dir[1024];
	int lock_fd; /* tally.lock, held (LOCK_EX) while open */
	uint64_t max_bytes;
	uint64_t seg_max; /* max_bytes / TALLY_SPOOL_SEGMENTS */
	int policy;
	int fd;	      /* the segment being appended, or -1 */
	uint64_t seq; /* its sequence number */
	uint64_t seg_bytes;
	uint64_t first_seq;   /* oldest segment present */
	uint64_t reading_seq; /* segment open for replay (never deleted to make room) */
	uint64_t damaged_seq; /* a segment in which a read met damage: set aside, not deleted */
	uint64_t nsegs;	      /* segment files present */
	void (*log)(void *arg, int warning, const char *line);
	void *log_arg;
	struct tally_spool_stats st;
};

/*
 * Open (create) the spool directory, lock it against other processes (a second tally given
 * the same directory is refused, naming the holder's pid), check that it takes writes, warn
 * when the file system has less room than max_bytes, and take stock of the segments an
 * earlier run left. Entries with a segment's name that are not regular files are skipped,
 * counted and logged. Returns 0 or -1 with a one-line reason in err.
 */
int tally_spool_open(struct tally_spool *s, const struct tally_spool_conf *conf, char *err,
		     size_t errlen);

/* Segments present (left by an earlier run or written by this one). */
uint64_t tally_spool_segments(const struct tally_spool *s);

/*
 * Append a window's aggregates (written to disk before this returns: fdatasync), tagged
 * with the id its Redis merge will use, with the names its statsd series have in names (may
 * be NULL), so a replay after a restart writes them under the same names. Returns 0, -ENOSPC when the cap refused it (counted),
 * or -EIO when the file system failed it (st.last_errno says why; nothing of it is kept).
 */
int tally_spool_append(struct tally_spool *s, uint64_t window_start, const char *partial_id,
		       const struct tally_table *t, const struct tally_names *names);

/* One record read back: a window part with its partial id and series. */
struct tally_spool_rec {
	uint64_t window_start;
	char partial_id[256];
	uint32_t nseries;
	const struct tally_spool_series *series; /* valid during the callback */
	const uint8_t *side; /* the side state of its histogram and distinct series, in order */
	uint64_t side_len;
	int has_side; /* 0: written by a version before side state (kinds 3, 4 are gauges) */
	const uint8_t *names; /* its statsd series' names (tally_spool_rec_names()), or NULL */
	uint64_t names_len;
};

/* Keep the names a record's statsd series carry in names (what the sink writes them with). */
void tally_spool_rec_names(const struct tally_spool_rec *rec, struct tally_names *names);

/*
 * Read the oldest closed segment (the one being appended is closed first) and call fn for
 * every intact record, in order; damaged ones are skipped and counted. fn returns 0 to go
 * on, <0 to stop (the segment is kept). Returns the records handed on, or -errno; -ENOENT
 * when the spool is empty. tally_spool_remove_oldest() deletes the segment once its records
 * are safely elsewhere.
 */
int tally_spool_read_oldest(struct tally_spool *s,
			    int (*fn)(void *ctx, const struct tally_spool_rec *rec), void *ctx);

/* Reading the oldest segment one record at a time (the control loop's replay). */
struct tally_spool_iter {
	struct tally_spool *spool;
	uint64_t corrupt; /* damaged records met in this segment */
	uint8_t *map;
	size_t len;
	size_t off;
	void *aligned;
};

/* Open the oldest segment for reading; 0, -ENOENT when the spool is empty, or -errno. */
int tally_spool_iter_open(struct tally_spool *s, struct tally_spool_iter *it);

/*
 * The next intact record (damaged ones are skipped and counted): 1, 0 at the end, -errno.
 * A segment that held a damaged record (or none of tally's) is set aside by
 * tally_spool_remove_oldest() instead of deleted.
 */
int tally_spool_iter_next(struct tally_spool *s, struct tally_spool_iter *it,
			  struct tally_spool_rec *rec);

void tally_spool_iter_close(struct tally_spool_iter *it);

/*
 * Delete the oldest segment (after its records have been acknowledged); one in which the
 * last read met damage is renamed to <name>.bad instead (logged), for a person to look at.
 */
int tally_spool_remove_oldest(struct tally_spool *s);

/* Close the segment being appended and release the directory's lock. */
void tally_spool_close(struct tally_spool *s);

/* CRC-32C (Castagnoli) of buf, continuing from crc (start with 0). */
uint32_t tally_crc32c(uint32_t crc, const void *buf, size_t len);

#endif /* TALLY_SPOOL_H */
