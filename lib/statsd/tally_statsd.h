/* SPDX-License-Identifier: BSD-3-Clause */
/* statsd and DogStatsD text: one line at a time, checked whole before anything is counted. */
#ifndef TALLY_STATSD_H
#define TALLY_STATSD_H

#include <stdint.h>

/*
 * A line: `name:value[:value...]|type[|@rate][|#tag,tag:v][|c:container][|T<unix>]`, the
 * DogStatsD v1.1 form (several values packed in one line; statsd's own lines are the one-value
 * case). Types: c counter, g gauge (a leading + or - is a delta), ms and h timers, d
 * distribution (the three into a histogram), s set (the value is a member: a string).
 * Sections after the type are told apart by their first byte; a section of another letter and
 * ':' (DogStatsD's later fields: `e:`, `card:` ...) is skipped, anything else is refused.
 */
enum tally_statsd_type {
	TALLY_STATSD_COUNTER = 1,
	TALLY_STATSD_GAUGE,
	TALLY_STATSD_TIMER,	   /* ms */
	TALLY_STATSD_HISTOGRAM,	   /* h */
	TALLY_STATSD_DISTRIBUTION, /* d */
	TALLY_STATSD_SET,	   /* s */
};

/*
 * Why a line was refused, declared once: the enum, the stats names (`statsd:<name>`) and the
 * dead-letter comments come from this list. A refused line is refused alone: the other lines
 * of its datagram count.
 */
#define TALLY_FOREACH_STATSD_REASON(_)                                                             \
	_(NO_COLON, "no_colon", "no ':' between a name and a value")                                \
	_(EMPTY_NAME, "empty_name", "nothing before the ':'")                                       \
	_(BAD_NAME, "bad_name", "control bytes, not UTF-8, or digits only")                         \
	_(TOO_LONG, "too_long", "a name, tag or series over its bound")                             \
	_(NO_TYPE, "no_type", "no '|' and type after the value")                                    \
	_(UNKNOWN_TYPE, "unknown_type", "a type other than c g ms h d s")                           \
	_(BAD_VALUE, "bad_value", "not a finite number (or an empty set member)")                   \
	_(BAD_RATE, "bad_rate", "@rate not a number in (0, 1]")                                     \
	_(BAD_TAG, "bad_tag", "an empty tag, a control byte or non-UTF-8")                          \
	_(TOO_MANY_TAGS, "too_many_tags", "more tags than --statsd-max-tags")                       \
	_(TOO_MANY_VALUES, "too_many_values", "more packed values than a line may hold")            \
	_(BAD_TIMESTAMP, "bad_timestamp", "T not followed by whole seconds")                        \
	_(BAD_FIELD, "bad_field", "a section after the type that is none of the above")             \
	_(EVENT, "event", "a DogStatsD event or service check: not a metric")                       \
	_(COLLISION, "collision", "its series' or device's id is another one's")                    \
	_(SERIES_FULL, "series_full", "a new series or device: --statsd-series all taken")

enum tally_statsd_reason {
#define TALLY_STATSD_REASON_ENUM(sym, name, help) TALLY_STATSD_##sym,
	TALLY_FOREACH_STATSD_REASON(TALLY_STATSD_REASON_ENUM)
#undef TALLY_STATSD_REASON_ENUM
		TALLY_STATSD_REASON_MAX
};

/* Stats name of a reason ("no_colon", ...); NULL when out of range. */
const char *tally_statsd_reason_name(unsigned int reason);
/* Its one line of help; NULL when out of range. */
const char *tally_statsd_reason_help(unsigned int reason);

/*
 * Places of an open-addressed set of at most max keys (the decoder's seen-sets, the sink's
 * names): a power of two, at least 16, at most half full.
 */
static inline uint32_t
tally_statsd_places(uint32_t max)
{
	uint32_t places = 16;

	while (places < 2ull * max)
		places *= 2;
	return places;
}

/* Bounds of a line's parts (bytes; tags per line). */
#define TALLY_STATSD_NAME_MAX 250
#define TALLY_STATSD_TAG_MAX 200
#define TALLY_STATSD_TAGS_MAX 64 /* the most --statsd-max-tags allows */
#define TALLY_STATSD_VALUES_MAX 256
#define TALLY_STATSD_SERIES_MAX 1024 /* name and its tags written out */

struct tally_statsd_tag {
	const char *p;
	uint16_t len;
};

/* A line that passed every check. Pointers are into the caller's bytes. */
struct tally_statsd_line {
	const char *name;
	uint16_t name_len;
	uint8_t type;      /* tally_statsd_type */
	uint8_t delta;     /* gauge: the values are deltas (a leading + or -) */
	uint16_t nvalues;  /* values[] (not for a set) */
	uint16_t ntags;
	double rate;       /* @rate, 1 when absent */
	int64_t ts_s;      /* T<unix>, 0 when absent */
	const char *member; /* a set's member */
	uint16_t member_len;
	const char *container; /* c:<id>, NULL when absent */
	uint16_t container_len;
	struct tally_statsd_tag tags[TALLY_STATSD_TAGS_MAX];
	double values[TALLY_STATSD_VALUES_MAX];
};

/*
 * Parse one line (without its newline; a trailing CR is dropped) of len bytes, with at most
 * max_tags tags (<= TALLY_STATSD_TAGS_MAX). 0 and *out filled, or 1 + tally_statsd_reason.
 * An empty line is not a line: the caller skips it. No allocation, no system call.
 */
int tally_statsd_parse_line(const char *p, uint32_t len, unsigned int max_tags,
			    struct tally_statsd_line *out);

/*
 * A decimal number as statsd senders write it ([+-]digits[.digits][e[+-]digits]), the whole
 * of p[0..len): 0 and *v (finite), or -1. Correctly rounded (short ones by exact arithmetic,
 * the rest through strtod).
 */
int tally_statsd_number(const char *p, uint32_t len, double *v);

/* Whether p[0..len) is UTF-8 with no control bytes (below 0x20, or 0x7f). */
int tally_statsd_text_ok(const char *p, uint32_t len);

/* Decoding a datagram ---------------------------------------------------------------------- */

#include <stddef.h>

#include "tally_hll.h"
#include "tally_wire.h"

/*
 * Records a decoder makes that v1 cannot carry: the kind's top bit marks them, and the
 * worker applies them apart (tally_table_put_ext()): a gauge delta, and a histogram value
 * that stands for `weight` values (a sample rate's 1/rate, rounded; reserved[1..2] hold
 * weight - 1, little-endian).
 */
#define TALLY_KIND_EXT 0x80
#define TALLY_STATSD_WEIGHT_MAX 65536

/*
 * A statsd device: its id is 2^63 + the top 63 bits of MurmurHash64A of its name (the value
 * of the device tag, else the sender's address as text), so a v1 device id below 2^63 never
 * meets one. A series: its metric id is the low 32 bits of MurmurHash64A of its text, the
 * name and its other tags sorted: `name` or `name{tag1,tag2:v}`.
 */
#define TALLY_STATSD_DEVICE_BIT (1ull << 63)

/* A statsd device's id from its name, a series' metric id from its text (as above). */
static inline uint64_t
tally_statsd_device_id(const char *name, size_t len)
{
	return TALLY_STATSD_DEVICE_BIT | tally_murmur64a(name, len, TALLY_HLL_SEED) >> 1;
}

static inline uint32_t
tally_statsd_metric_id(const char *text, size_t len)
{
	return (uint32_t)tally_murmur64a(text, len, TALLY_HLL_SEED);
}

/* Which name a decoder reports new (on_name). */
enum { TALLY_STATSD_NAME_SERIES = 1, TALLY_STATSD_NAME_DEVICE = 2 };

/*
 * A set of ids seen, each with a fingerprint of its text (a second 64-bit hash), in memory
 * sized at start: an id seen with another fingerprint is a collision.
 */
struct tally_statsd_seen_entry {
	uint64_t key; /* 0: empty */
	uint64_t fp;  /* beside its key: a probe reads one line */
};

struct tally_statsd_seen {
	struct tally_statsd_seen_entry *e;
	uint32_t mask;	  /* places - 1 (a power of two, twice the most ids) */
	uint32_t used;
	uint32_t max;	  /* the most ids it takes */
};

struct tally_statsd_dec;

/* Batches of records decoded: n v1-layout datagrams (header, records), device by device. */
typedef void (*tally_statsd_emit_fn)(void *ctx, const struct tally_wire_hdr **dg, uint16_t n);
/* A line refused: its reason, and the line's number in its datagram (from 0). */
typedef void (*tally_statsd_bad_fn)(void *ctx, unsigned int reason, uint32_t line);
/*
 * A series or device seen for the first time by this decoder: id and its text. Nonzero when
 * it could not be taken now: the decoder forgets the id, so its next line reports it again.
 */
typedef int (*tally_statsd_name_fn)(void *ctx, int what, uint64_t id, const char *text,
				    uint32_t len);

#define TALLY_STATSD_ARENA (64 * 1024)
#define TALLY_STATSD_BATCHES 64

struct tally_statsd_dec {
	/* set up by tally_statsd_dec_init() */
	char device_tag[64];
	uint16_t device_tag_len;
	uint16_t max_tags;
	struct tally_statsd_seen series, devices;
	tally_statsd_emit_fn emit;
	tally_statsd_bad_fn bad;
	tally_statsd_name_fn on_name;
	void *ctx;
	/* scratch */
	uint32_t nbatch, arena_used;
	const struct tally_wire_hdr *batch[TALLY_STATSD_BATCHES];
	struct tally_statsd_line line;
	char series_text[TALLY_STATSD_SERIES_MAX];
	char device_text[64];
	char src_text[48]; /* the datagram's sender as text (0 long: not written yet) */
	uint16_t src_text_len;
	/* the last line's device, known to the seen-set: a datagram's lines mostly share one */
	uint16_t last_dev_len; /* 0: none */
	char last_dev[64];
	uint64_t last_dev_id;
	uint8_t arena[TALLY_STATSD_ARENA] __attribute__((aligned(64)));
};

/* Bytes of the seen-sets' memory for `max` ids each (two sets). */
size_t tally_statsd_seen_memsize(uint32_t max);

/*
 * Set up d (its own memory, e.g. rte_zmalloc'd) with mem (tally_statsd_seen_memsize(max)
 * bytes, zeroed) for the series and device sets. device_tag: the tag whose value names the
 * device ("host"). 0, or -EINVAL.
 */
int tally_statsd_dec_init(struct tally_statsd_dec *d, const char *device_tag,
			  unsigned int max_tags, uint32_t max, void *mem, tally_statsd_emit_fn emit,
			  tally_statsd_bad_fn bad, tally_statsd_name_fn on_name, void *ctx);

/* Forget the ids seen (their names are reported again). */
void tally_statsd_dec_forget(struct tally_statsd_dec *d);

/*
 * Decode one datagram's lines (newline-separated, the last newline optional; empty lines
 * skipped): each line is checked whole, refused alone (bad()) or turned into records, kept in
 * batches by device in the decoder's arena, in arrival order. They are emitted when the arena
 * is full and at tally_statsd_flush(): the caller flushes once for many datagrams (a burst),
 * so their records are aggregated together, as a burst of v1 datagrams is. src: the sender's
 * address (4 or 16 bytes) for lines without the device tag; now_ns: the time of lines without
 * T<unix> (0: the caller's time at emit). Returns the lines taken.
 */
uint32_t tally_statsd_decode(struct tally_statsd_dec *d, const uint8_t *payload, uint32_t len,
			     const uint8_t *src, uint8_t src_len, uint64_t now_ns);

/* Emit the batches decoded so far (emit()), and start the arena again. */
void tally_statsd_flush(struct tally_statsd_dec *d);

#endif
