/* SPDX-License-Identifier: BSD-3-Clause */
/* Redis sink: schema v2 command encoding; pipelined micro-batches to one Redis or a Cluster. */
#ifndef TALLY_SINK_H
#define TALLY_SINK_H

#include <stddef.h>
#include <stdint.h>

#include "tally_auth.h"
#include "tally_ddsketch.h"
#include "tally_hll.h"
#include "tally_sink_counters.h"
#include "tally_table.h"

struct tally_names;

/*
 * Metrics per chunk: a device with more is written in chunks of this many, each with an
 * applied mark of its own (`_applied:<partial id>[:<chunk>]`), so whichever write carries a
 * chunk (tally_merge2 one chunk per entry, tally_put2 and tally_swap2 a part), it counts once.
 */
#define TALLY_ENC_METRICS_PER_CMD 64
#define TALLY_ENC_FIELDS_V2 TALLY_FIELDS_N /* tally_aggregate.h: the fields a series may have */
#define TALLY_ENC_ENTRIES_PER_CALL 16 /* device chunks per FCALL tally_merge2, parts per put2 */
#define TALLY_ENC_MAX_ARGS 2048
/*
 * Room for one formatted argument: the longest is a distinct series' key with the largest
 * ids, `tally:{<20 digits>}:<20 digits>:hll:<10 digits>` (64 bytes; a statsd device id has 19
 * or 20 digits). Keys longer than the room would be cut, and two of them could meet.
 */
#define TALLY_ENC_ARG_LEN 80
_Static_assert(TALLY_ENC_ARG_LEN > sizeof("tally:{18446744073709551615}:18446744073709551615:hll:"
					  "4294967295"),
	       "the longest key fits an argument");
/* The longest field name: a statsd series' text (TALLY_STATSD_SERIES_MAX) and `:sketch`. */
#define TALLY_ENC_FIELD_MAX (1024 + 8)
#define TALLY_ENC_ID_LEN 192 /* `_applied:<instance (<= 64)>:<run start ms>:<pid>:<random>` */
/*
 * The DUMP payloads of one FCALL (put2's together, swap2's one): below 1 MiB, the least that
 * Redis's proto-max-bulk-len and client-query-buffer-limit can be set to, so no Redis refuses
 * a command for its size.
 */
#define TALLY_ENC_PAYLOAD_MAX (1024 * 1024 - 16 * 1024)
/*
 * Chunks per part: the fast path writes a device's chunks together, as one payload that holds
 * every chunk's fields and applied mark (one RESTORE, or one read and one swap for a key that
 * exists). A device with more metrics, or whose chunks would not surely fit
 * TALLY_ENC_PAYLOAD_MAX, is written in several parts, each part's chunks still marked one by
 * one.
 */
#define TALLY_ENC_PART_CHUNKS 64
#define TALLY_ENC_PART_METRICS (TALLY_ENC_PART_CHUNKS * TALLY_ENC_METRICS_PER_CMD)
/* Fields of a window key the sink folds into: two writers of a whole part, with room to spare. */
#define TALLY_ENC_FOLD_PAIRS 32768

/*
 * The window data a command carries: `entries` entries of the sorted window table (device
 * chunks, or device parts for tally_put2 and tally_swap2), starting at series `first`
 * (tally_enc_entry() and tally_enc_part() walk them), `chunks` device chunks in all (what the
 * sink counts toward --flush-batch). NULL for other commands.
 */
struct tally_enc_ref {
	uint32_t first;
	uint32_t entries;
	uint32_t chunks;
};

/* Device chunks: up to TALLY_ENC_METRICS_PER_CMD series of one device, or a part of them. */
struct tally_enc_entry {
	uint64_t device_id;
	uint32_t first;	 /* its first series in the sorted table */
	uint32_t n;	 /* series */
	uint32_t chunk;	 /* its first chunk of the device (0 for devices of <= 64 metrics) */
	uint32_t chunks; /* chunks: 1 for a chunk, up to TALLY_ENC_PART_CHUNKS for a part */
	uint32_t bytes;	 /* parts: the most their payload can take */
};

/* Receives one encoded command; argv is valid only during the call. */
typedef void (*tally_emit_fn)(void *ctx, int argc, const char **argv, const size_t *argvlen,
			      const struct tally_enc_ref *ref);

/* What the sink's fold keeps per series of a part and per field read (tally_encode_swap()). */
struct tally_enc_fold {
	/* per series of the part: where each of its fields is in old (-1: not there) */
	int32_t at[TALLY_ENC_PART_METRICS][TALLY_ENC_FIELDS_V2];
	/* per series of the part: the folded count and sum, the fields whose stored text stays */
	uint64_t count[TALLY_ENC_PART_METRICS];
	double sum[TALLY_ENC_PART_METRICS];
	uint8_t keep[TALLY_ENC_PART_METRICS];
	/* per field of old: the part's series and field it holds (series * 8 + field), or -1 */
	int32_t of[TALLY_ENC_FOLD_PAIRS];
	/* per series of the part: its folded sketch, at sk[sk_off] (histograms) */
	uint32_t sk_off[TALLY_ENC_PART_METRICS];
	uint32_t sk_len[TALLY_ENC_PART_METRICS];
	uint8_t sk[TALLY_ENC_PAYLOAD_MAX];
	/* the sketch being folded: any bucket of the range fits */
	uint64_t dds[(32 + 10 * TALLY_DDS_CAP_MAX + 7) / 8];
	double window_s; /* tally_enc_window(): a counter's rate is sum / window_s; 0: none */
};

/* The most bytes one serialised sketch of a window table takes (TALLY_SKETCH_CAP buckets). */
#define TALLY_ENC_SKETCH_MAX (44 + 12 * TALLY_SKETCH_CAP)

/* Scratch space for one command; lives with the caller so no allocation is needed. */
struct tally_encoder {
	int argc;
	const char *argv[TALLY_ENC_MAX_ARGS];
	size_t argvlen[TALLY_ENC_MAX_ARGS];
	char buf[TALLY_ENC_MAX_ARGS][TALLY_ENC_ARG_LEN];
	char id[TALLY_ENC_ID_LEN];
	char mark[TALLY_ENC_ID_LEN + 16];
	uint8_t payload[TALLY_ENC_PAYLOAD_MAX];
	uint32_t blob_used; /* plain writes: the sketches and HLLs of a command, in payload */
	double window_s;    /* tally_enc_window() */
	/* statsd series' names (their fields are named by their text); NULL: ids only */
	const struct tally_names *names;
	size_t names_upto; /* of the window being written: the names it sees (tally_names_find) */
	/* field names too long for an argument's room (statsd series' texts) of one command */
	char long_fields[TALLY_ENC_METRICS_PER_CMD * TALLY_ENC_FIELDS_V2 * TALLY_ENC_FIELD_MAX];
	uint32_t long_used;
	uint8_t blob[TALLY_HLL_DENSE_SIZE > TALLY_ENC_SKETCH_MAX ? TALLY_HLL_DENSE_SIZE
								: TALLY_ENC_SKETCH_MAX];
	struct tally_enc_fold fold;
};

/*
 * Encode the series of one device of a closed window as plain writes (--redis-write hset):
 * the sorted table's series from index *pos on that share its device. Emits HSET + EXPIRE
 * of `tally:{dev}:<start_ms>` and SET `tally:{dev}:latest` <start_ms> EX retention, advances
 * *pos past the device, returns the number of commands emitted. The table must have been
 * sorted with tally_table_sort().
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
 * heaviest devices in one MULTI/EXEC, then set `tally:top:window` to its start (another
 * slot in a cluster, so not in the transaction). Returns the number of commands emitted.
 */
unsigned int tally_encode_top(struct tally_encoder *e, const struct tally_top *top,
			      uint64_t start_ms, tally_emit_fn emit, void *ctx);

/*
 * The same as exactly-once merges: one `FCALL tally_merge2` for up to
 * TALLY_ENC_ENTRIES_PER_CALL device chunks from *pos on (only one device's with one_device,
 * as a cluster needs: keys of one call share a slot). The Function adds each chunk to what
 * its window key holds (count, sum add; min, max fold; last by time) and marks it
 * `_applied:<partial_id>[:<chunk>]` in the same key, so a partial applied twice counts
 * once; each device's reply is its own (1, 0 already applied, or an error). partial_id must
 * be unique per process run. Advances *pos, returns the entries encoded (0 at the end).
 */
unsigned int tally_encode_merge(struct tally_encoder *e, const struct tally_table *t, uint32_t *pos,
				uint64_t start_ms, uint64_t retention_s, const char *partial_id,
				int one_device, tally_emit_fn emit, void *ctx);

/*
 * The fast path of the same merges: one `FCALL tally_put2` for up to
 * TALLY_ENC_ENTRIES_PER_CALL device parts from *pos on (tally_enc_part(): a device's chunks
 * together), each carried as the DUMP payload of its whole window key (the fields and the
 * applied mark of every chunk of the part), which the Function RESTOREs when the key does not
 * exist yet; a key that exists is answered 2, and the sink folds into it
 * (tally_encode_swap()). The same arguments as tally_encode_merge() otherwise, one reply per
 * part; returns the parts encoded (0 at the end).
 */
unsigned int tally_encode_put(struct tally_encoder *e, const struct tally_table *t, uint32_t *pos,
			      uint64_t start_ms, uint64_t retention_s, const char *partial_id,
			      int one_device, tally_emit_fn emit, void *ctx);

/* The fields of a window key as HGETALL returned them (pointers into the reply). */
struct tally_hash_view {
	uint32_t n; /* pairs */
	const char *const *field;
	const size_t *field_len;
	const char *const *value;
	const size_t *value_len;
};

enum {
	TALLY_FOLD_TOO_BIG = 0, /* the folded key does not fit a payload: tally_merge2 the part */
	TALLY_FOLD_SENT = 1,	/* `FCALL tally_swap2` emitted */
	TALLY_FOLD_NONE = 2,	/* nothing to fold: each chunk is applied already, or refused */
};

/* A device chunk (at series pos) the fold refused, and why; why is valid during the call. */
typedef void (*tally_refuse_fn)(void *ctx, uint32_t pos, const char *why, size_t whylen);

/*
 * Fold the device part at series pos (tally_enc_part()) into what its window key holds (old,
 * read by HGETALL): chunks whose applied mark old holds are left out, and so is a chunk with
 * a field in old that is not a number (given to refuse, with the key and the field); for the
 * others count and sum add, min and max fold, last by time, their applied marks are added,
 * and every other field stays as it is. Emits `FCALL tally_swap2` with the applied mark of
 * the first chunk folded, which replaces the key with the result only if it still has old->n
 * fields (1), or answers 2 (read it again) or 0 (that chunk is there now: read it again).
 */
int tally_encode_swap(struct tally_encoder *e, const struct tally_table *t, uint32_t pos,
		      uint64_t start_ms, uint64_t retention_s, const char *partial_id,
		      const struct tally_hash_view *old, tally_refuse_fn refuse, tally_emit_fn emit,
		      void *ctx);

/*
 * The registers of the distinct series of one device from series *pos on (up to the device's
 * end or stop), merged into their own keys `tally:{dev}:<start>:hll:<metric>` (PFMERGE: register-wise
 * max, so sending them twice changes nothing): with merge, `FCALL tally_pf2` (one reply per
 * key: 1, or an error for that key alone); else a plain SET ... EX of the registers, which
 * replace the key's as --redis-write hset's HSET replaces fields.
 * Advances *pos to the next series not written (the device's end when all are); returns the
 * commands emitted, 0 when the device has no distinct series left.
 */
unsigned int tally_encode_hll(struct tally_encoder *e, const struct tally_table *t, uint32_t *pos,
			      uint32_t stop, uint64_t start_ms, uint64_t retention_s, int merge,
			      tally_emit_fn emit, void *ctx);

/*
 * The windows' length: counters get a `<metric>:rate` field, their sum per second of the
 * window (recomputed from the merged sum whenever a window key is folded). Without it (0, as
 * a zeroed encoder is) no rate is written.
 */
void tally_enc_window(struct tally_encoder *e, uint64_t window_ms);

/* One past the last series of the device whose series include pos (a sorted table). */
uint32_t tally_enc_device_end(const struct tally_table *t, uint32_t pos);

/* The device chunk that starts at series pos of a sorted table (pos at a chunk start). */
void tally_enc_entry(const struct tally_table *t, uint32_t pos, struct tally_enc_entry *out);

/*
 * The device part that starts at series pos (a chunk start): the device's chunks from there,
 * up to TALLY_ENC_PART_CHUNKS, as many as surely fit one payload (at least one), by the length
 * of their texts. The same table gives the same parts: replies are put down to them by their
 * first series.
 */
void tally_enc_part(const struct tally_encoder *e, const struct tally_table *t, uint32_t pos,
		    struct tally_enc_entry *out);

/* The Redis Function library (Lua) that tally_encode_merge() calls. */
extern const char tally_merge_lua[];

/* The decimal digits of v at buf (room for 20, no NUL), without printf. Returns their count. */
int tally_fmt_u64(char *buf, uint64_t v);

/* Format a double so that it reads back bit-exact (%.17g). Returns its length. */
int tally_fmt_double(char *buf, size_t len, double v);

struct tally_sink;

struct tally_sink_conf {
	const char *host;
	/* the names of statsd series, kept by the sink thread (tally_names.h), or NULL */
	const struct tally_names *names;
	uint16_t port;
	uint64_t flush_batch;  /* device chunks (or other commands) per pipelined flush */
	uint64_t flush_ms;     /* longest wait of a partial batch */
	uint64_t timeout_ms;   /* connect and reply timeout */
	uint32_t wait_replicas; /* WAIT for this many replicas after each batch (0: do not) */
	uint32_t max_series;	/* series a window table holds (sizes the refused-chunk marks) */
	/* tally_table_sort_fast()'s scratch for the windows' tables, or NULL (a slower sort) */
	struct tally_sort_key *sort_scratch;
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
	int cluster;		 /* TALLY_SINK_CLUSTER_AUTO (INFO cluster), _YES or _NO */
	/* Where the sink logs (a refused write, a refusal it could not keep); NULL: nowhere. */
	void (*log)(void *arg, int warning, const char *line);
	void *log_arg;
	/*
	 * The clock of window starts (wall-clock ms), for flush_lag_ms; NULL: CLOCK_REALTIME.
	 * Every other time the sink is given (the now_ms of poll and sync) is monotonic.
	 */
	uint64_t (*wall_ms)(void *arg);
};

enum {
	TALLY_SINK_CLUSTER_AUTO = 0,
	TALLY_SINK_CLUSTER_YES,
	TALLY_SINK_CLUSTER_NO,
};

/* Where refused device-windows are kept: a Redis list of JSON lines, newest first. */
#define TALLY_REFUSED_KEY "tally:refused"
#define TALLY_REFUSED_MAX 10000 /* LTRIM bound of that list */

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
	uint64_t lag_buckets[TALLY_LAG_BUCKETS]; /* windows_flushed by their flush_lag_ms */
	uint64_t lag_sum_ms;
	uint64_t breaker_state;   /* enum tally_breaker */
	uint64_t breaker_opens;
	uint64_t failures;        /* failed flushes and connects */
	uint64_t window_retries;  /* windows started again after a failure */
	uint64_t refused;	  /* device chunks Redis refused for a data reason (WRONGTYPE...) */
	uint64_t refused_records; /* their records: kept in tally:refused, not in the window */
	uint64_t refused_lost;	  /* refused chunks whose copy tally:refused did not take either */
	uint64_t redirects;	  /* cluster: MOVED, ASK and TRYAGAIN replies followed */
	uint64_t wait_short; /* batches fewer replicas than --redis-wait-replicas had in time */
	uint64_t folds;	     /* device parts folded into a window key that existed (read, swap) */
	uint64_t fold_retries; /* folds read again: the key changed between the read and swap */
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
 * Do a slice of work, never waiting on Redis: send what the sockets take, read the replies
 * that have arrived, encode up to one batch of the current window, flush a full batch or
 * one older than flush_ms. Returns the table of a window whose commands Redis has all
 * acknowledged (the caller may reuse it), else NULL.
 */
struct tally_table *tally_sink_poll(struct tally_sink *s, uint64_t now_ms);

/* Append any command (e.g. the self-stats HSET) to the current batch. */
void tally_sink_command(struct tally_sink *s, int argc, const char **argv,
			const size_t *argvlen);

/*
 * The same, sent where key lives in a cluster whatever the command's arguments: the MULTI and
 * EXEC of a transaction on key (without a key they go where tally:top lives).
 */
void tally_sink_command_on(struct tally_sink *s, const char *key, int argc, const char **argv,
			   const size_t *argvlen);

/* Flush everything pending and wait for the acknowledgements; 0 or -EIO. */
int tally_sink_sync(struct tally_sink *s, uint64_t now_ms);

/*
 * Sleep up to max_us, or until a connection with replies due is readable (or one with
 * unsent bytes writable): the sink thread's idle wait. poll()'s result.
 */
int tally_sink_wait(struct tally_sink *s, uint32_t max_us);

/* True while a window is being written: the next one must wait. */
int tally_sink_writing(const struct tally_sink *s);

const struct tally_sink_stats *tally_sink_stats(const struct tally_sink *s);

/* What SIGHUP may change in the sink without a restart. */
struct tally_sink_reload {
	char host[256];
	uint16_t port;
	char user[TALLY_AUTH_USER_MAX + 1];
	char password[TALLY_AUTH_PASSWORD_SIZE];
	uint64_t flush_batch;
	uint64_t flush_ms;
};

/*
 * Apply r (the sink thread's call). Another Redis or other credentials: the connections
 * close, the next poll connects to the new one (breaker closed, backoff reset) and the window
 * being written starts over there. While connected, a change of server or --flush-batch waits
 * for the window being written and the batch in flight, so each window goes whole to one
 * Redis: returns 0 (call again), 1 when applied, 2 when applied and the server or the
 * credentials changed (what tally writes once, names and catalog, is to be written again).
 */
int tally_sink_reload(struct tally_sink *s, const struct tally_sink_reload *r);

/* Masters written to: 1 for a single Redis, the masters of the slot map in a cluster. */
uint32_t tally_sink_masters(const struct tally_sink *s);

#endif /* TALLY_SINK_H */
