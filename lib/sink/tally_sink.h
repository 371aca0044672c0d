/* SPDX-License-Identifier: BSD-3-Clause */
/* Redis sink: schema v1 command encoding, and pipelined micro-batches over one connection. */
#ifndef TALLY_SINK_H
#define TALLY_SINK_H

#include <stddef.h>
#include <stdint.h>

#include "tally_table.h"

/* Metrics per HSET command; a device with more gets several commands. */
#define TALLY_ENC_METRICS_PER_CMD 64
#define TALLY_ENC_FIELDS_PER_METRIC 5
#define TALLY_ENC_MERGE_ARGS_PER_METRIC 7
#define TALLY_ENC_MAX_ARGS (9 + 2 * TALLY_ENC_FIELDS_PER_METRIC * TALLY_ENC_METRICS_PER_CMD)
#define TALLY_ENC_ARG_LEN 48
#define TALLY_ENC_ID_LEN 160 /* a partial id: <instance (<= 64)>:<run start ms>:<chunk> */

/* Receives one encoded command; argv is valid only during the call. */
typedef void (*tally_emit_fn)(void *ctx, int argc, const char **argv, const size_t *argvlen);

/* Scratch space for one command; lives with the caller so no allocation is needed. */
struct tally_encoder {
	int argc;
	const char *argv[TALLY_ENC_MAX_ARGS];
	size_t argvlen[TALLY_ENC_MAX_ARGS];
	char buf[TALLY_ENC_MAX_ARGS][TALLY_ENC_ARG_LEN];
	char id[TALLY_ENC_ID_LEN];
};

/*
 * Encode the series of one device of a closed window: the sorted table's series from index
 * *pos on that share its device. Emits HSET + EXPIRE of `tally:{dev}:<start_ms>` and of
 * `tally:{dev}:latest` (with `window`), advances *pos past the device, returns the number
 * of commands emitted. The table must have been sorted with tally_table_sort().
 */
unsigned int tally_encode_device(struct tally_encoder *e, const struct tally_table *t,
				 uint32_t *pos, uint64_t start_ms, uint64_t retention_s,
				 tally_emit_fn emit, void *ctx);

/* The heaviest devices of a window, by records. */
#define TALLY_TOP_N 100

struct tally_top_entry {
	uint64_t device_id;
	uint64_t records;
};

struct tally_top {
	uint32_t n;
	struct tally_top_entry e[TALLY_TOP_N]; /* a min-heap on records */
};

void tally_top_reset(struct tally_top *top);

/* Offer a device; the TALLY_TOP_N heaviest stay. */
void tally_top_add(struct tally_top *top, uint64_t device_id, uint64_t records);

/*
 * Replace `tally:top` (a sorted set: member device id, score records) with the window's
 * heaviest devices and set `tally:top:window` to its start, in one MULTI/EXEC. Returns the
 * number of commands emitted.
 */
unsigned int tally_encode_top(struct tally_encoder *e, const struct tally_top *top,
			      uint64_t start_ms, tally_emit_fn emit, void *ctx);

/*
 * The same, as merge-safe writes: one `FCALL tally_merge` per device (per 64 metrics), which
 * adds the partial to what the window key holds (count, sum add; min, max fold; last by time)
 * and records `applied:<partial_id>:<k>` in `tally:{dev}:<start>:meta`, so the same partial
 * applied twice counts once. partial_id must be unique per process run (instance:epoch).
 */
unsigned int tally_encode_device_merge(struct tally_encoder *e, const struct tally_table *t,
				       uint32_t *pos, uint64_t start_ms, uint64_t retention_s,
				       const char *partial_id, tally_emit_fn emit, void *ctx);

/* The Redis Function library (Lua) that tally_encode_device_merge() calls. */
extern const char tally_merge_lua[];

/* Format a double so that it reads back bit-exact (%.17g). Returns its length. */
int tally_fmt_double(char *buf, size_t len, double v);

struct tally_sink;

struct tally_sink_conf {
	const char *host;
	uint16_t port;
	uint64_t flush_batch;  /* commands per pipelined flush */
	uint64_t flush_ms;     /* longest wait of a partial batch */
	uint64_t timeout_ms;   /* connect and reply timeout */
	uint64_t retention_s;
	uint64_t window_ms;
	int merge;               /* merge-safe FCALL writes (else plain HSET) */
	const char *partial_id;  /* merge: unique per process run */
	int start_open;          /* a Redis that is down at start opens the breaker, no error */
	uint32_t breaker_failures; /* consecutive failures that open the breaker */
	uint64_t backoff_ms;     /* first wait of an open breaker; doubles, with jitter ... */
	uint64_t backoff_max_ms; /* ... up to this */
	const char *user;        /* Redis ACL user, or NULL/empty: the default user */
	const char *password;    /* AUTH at every connect, or NULL/empty: none; copied */
};

/* Circuit breaker states (tally:self breaker_state). */
enum tally_breaker {
	TALLY_BREAKER_CLOSED = 0, /* writing */
	TALLY_BREAKER_OPEN,       /* no attempts until the backoff ends */
	TALLY_BREAKER_HALF_OPEN,  /* one probe: connect, PING, load the function */
};

/* What the sink has done; plain counters, read by the control lcore only. */
struct tally_sink_stats {
	uint64_t commands;       /* acknowledged */
	uint64_t errors;         /* error replies and commands lost with a connection */
	uint64_t batches;
	uint64_t windows_flushed;
	uint64_t flush_lag_ms;
	uint64_t breaker_state;   /* enum tally_breaker */
	uint64_t breaker_opens;
	uint64_t failures;        /* failed flushes and connects */
	uint64_t window_retries;  /* windows started again after a failure */
};

/*
 * Connect to Redis (with a timeout) and check it answers PING. Returns the sink, or NULL
 * with a one-line reason in err.
 */
struct tally_sink *tally_sink_create(const struct tally_sink_conf *conf, char *err,
				     size_t errlen);
void tally_sink_free(struct tally_sink *s);

/*
 * Queue a whole window for writing under partial_id (NULL: this run's); 0, or -EBUSY while
 * another one is being written. The table is sorted by device here.
 */
int tally_sink_write_window(struct tally_sink *s, struct tally_table *t, uint64_t start_ms,
			    const char *partial_id);

/* True when the breaker is closed: windows may be given to the sink. */
int tally_sink_available(const struct tally_sink *s);

/*
 * Take back the window being written (to spool it while the breaker is open); its writes
 * so far are idempotent merges, so writing it again later is safe. Returns the table and its
 * start, or NULL.
 */
struct tally_table *tally_sink_take_back(struct tally_sink *s, uint64_t *start_ms);

/*
 * Do a slice of work: encode up to one batch of the current window, flush a full batch or
 * one older than flush_ms. Returns the table of a window whose commands Redis has all
 * acknowledged (the caller may reuse it), else NULL.
 */
struct tally_table *tally_sink_poll(struct tally_sink *s, uint64_t now_ms);

/* Append any command (e.g. the self-stats HSET) to the current batch. */
void tally_sink_command(struct tally_sink *s, int argc, const char **argv,
			const size_t *argvlen);

/* Flush everything pending and wait for the acknowledgements; 0 or -EIO. */
int tally_sink_sync(struct tally_sink *s, uint64_t now_ms);

/* True while a window is being written: the next one must wait. */
int tally_sink_writing(const struct tally_sink *s);

const struct tally_sink_stats *tally_sink_stats(const struct tally_sink *s);

#endif /* TALLY_SINK_H */
