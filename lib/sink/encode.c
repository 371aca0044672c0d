/* SPDX-License-Identifier: BSD-3-Clause */
/* Redis schema v2: the commands that write the devices of one closed window. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tally_dump.h"
#include "tally_names.h"
#include "tally_sink.h"
#include "tally_statsd.h"

#define TEXT_MAX 32 /* a field or value of a numeric field: `<u32>:count`, %.17g, 20 digits */
#define SUFFIX_MAX 8 /* `:sketch` */
#define FIELD_MAX TALLY_ENC_FIELD_MAX
_Static_assert(FIELD_MAX >= TALLY_STATSD_SERIES_MAX + SUFFIX_MAX, "a series' field fits");

int
tally_fmt_u64(char *buf, uint64_t v)
{
	char tmp[20];
	int n = 0, i;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	for (i = 0; i < n; i++)
		buf[i] = tmp[n - 1 - i];
	return n;
}

int
tally_fmt_double(char *buf, size_t len, double v)
{
	/*
	 * Integral values below 2^53 (counters, most gauges) print as %.17g prints them, without
	 * the cost of printf's floating-point path; everything else goes through it.
	 */
	if (len >= 24 && v == v && fabs(v) < 9007199254740992.0 && v == (double)(int64_t)v &&
	    !(v == 0 && signbit(v))) {
		int n = 0;

		if (v < 0) {
			buf[n++] = '-';
			n += tally_fmt_u64(buf + n, (uint64_t)(-(int64_t)v));
		} else {
			n += tally_fmt_u64(buf + n, (uint64_t)v);
		}
		buf[n] = '\0';
		return n;
	}
	return snprintf(buf, len, "%.17g", v);
}

static void
enc_reset(struct tally_encoder *e)
{
	e->argc = 0;
	e->blob_used = 0;
	e->long_used = 0;
}

/* Append one argument formatted with fmt; they fit TALLY_ENC_ARG_LEN by construction. */
static void __attribute__((format(printf, 2, 3)))
enc_arg(struct tally_encoder *e, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(e->buf[e->argc], TALLY_ENC_ARG_LEN, fmt, ap);
	va_end(ap);
	/* Arguments are short by construction; never send bytes past the slot. */
	if (n < 0 || n >= TALLY_ENC_ARG_LEN)
		n = n < 0 ? 0 : TALLY_ENC_ARG_LEN - 1;
	e->argv[e->argc] = e->buf[e->argc];
	e->argvlen[e->argc] = (size_t)n;
	e->argc++;
}

/*
 * The name series s has in its fields: a statsd series' text (a device id of 2^63 and up,
 * with names), else the decimal metric id (also a statsd series whose text the sink does not
 * have; no statsd name is all digits). At *p (tmp, TEXT_MAX, holds the number); its length.
 */
static size_t
series_name(const struct tally_encoder *e, const struct tally_slot *s, char *tmp, const char **p)
{
	if (e->names != NULL && (s->device_id & TALLY_STATSD_DEVICE_BIT)) {
		uint16_t len;
		const char *text = tally_names_find(e->names, s->metric_id, e->names_upto, &len);

		if (text != NULL) {
			*p = text;
			return len;
		}
	}
	*p = tmp;
	return (size_t)tally_fmt_u64(tmp, s->metric_id);
}

/* Field j of series s, `<name>:<suffix>`, at b (FIELD_MAX); its length. */
static size_t
field_text(const struct tally_encoder *e, char *b, const struct tally_slot *s, int j)
{
	const char *p;
	char tmp[TEXT_MAX];
	size_t n = series_name(e, s, tmp, &p);

	memcpy(b, p, n);
	b[n++] = ':';
	memcpy(b + n, tally_fields[j].suffix, tally_fields[j].len);
	return n + tally_fields[j].len;
}

/*
 * Bytes of e->long_fields the field names of series s take as arguments (a name too long for
 * an argument's room); a command of TALLY_ENC_METRICS_PER_CMD series always fits.
 */
static size_t
long_names(const struct tally_encoder *e, const struct tally_slot *s)
{
	char tmp[TEXT_MAX];
	const char *p;
	size_t n = series_name(e, s, tmp, &p) + SUFFIX_MAX;

	return n > TALLY_ENC_ARG_LEN ? n * TALLY_ENC_FIELDS_V2 : 0;
}

/* Field j of series s as the next argument. */
static void
enc_field(struct tally_encoder *e, const struct tally_slot *s, int j)
{
	char tmp[TEXT_MAX];
	const char *p;
	size_t n = series_name(e, s, tmp, &p), len = n + 1 + tally_fields[j].len;
	char *b = e->buf[e->argc];

	if (len > TALLY_ENC_ARG_LEN) {
		b = e->long_fields + e->long_used;
		e->long_used += (uint32_t)len;
	}
	memcpy(b, p, n);
	b[n] = ':';
	memcpy(b + n + 1, tally_fields[j].suffix, tally_fields[j].len);
	e->argv[e->argc] = b;
	e->argvlen[e->argc] = len;
	e->argc++;
}

/* A histogram series with no side memory left for it has an empty sketch. */
static const uint8_t empty_sketch[] = {TALLY_DDS_MAGIC0, TALLY_DDS_MAGIC1, TALLY_DDS_VERSION, 0,
				       0, 0, 0, 0};

/* The serialised sketch of histogram series s at buf (cap bytes); its length, 0 if short. */
static size_t
sketch_bytes(const struct tally_table *t, const struct tally_slot *s, uint8_t *buf, size_t cap)
{
	const struct tally_dds *d = tally_table_sketch(t, s);
	int n;

	if (d == NULL) {
		if (cap < sizeof(empty_sketch))
			return 0;
		memcpy(buf, empty_sketch, sizeof(empty_sketch));
		return sizeof(empty_sketch);
	}
	n = tally_dds_serialise(d, buf, cap);
	return n > 0 ? (size_t)n : 0;
}

/* Bytes sketch_bytes() takes for s. */
static size_t
sketch_size(const struct tally_table *t, const struct tally_slot *s)
{
	const struct tally_dds *d = tally_table_sketch(t, s);

	return d != NULL ? tally_dds_serial_size(d) : sizeof(empty_sketch);
}

/* Bytes the sketches of series [first, first + n) take (0 without histograms). */
static size_t
sketches_size(const struct tally_table *t, uint32_t first, uint32_t n)
{
	size_t bytes = 0;
	uint32_t i;

	if (t->side_used == 0)
		return 0;
	for (i = first; i < first + n; i++)
		if (tally_table_at(t, i)->kind == TALLY_KIND_HISTOGRAM)
			bytes += sketch_size(t, tally_table_at(t, i));
	return bytes;
}

/* Bytes the long field names of series [first, first + n) take (long_names()). */
static size_t
long_names_size(const struct tally_encoder *e, const struct tally_table *t, uint32_t first,
		uint32_t n)
{
	size_t bytes = 0;
	uint32_t i;

	if (e->names == NULL)
		return 0;
	for (i = first; i < first + n; i++)
		bytes += long_names(e, tally_table_at(t, i));
	return bytes;
}

#define F_N TALLY_FIELDS_N

/*
 * The most a payload takes, whatever the data: per series its fields and values (a metric id
 * of 10 digits and the suffixes, a count of 20 digits, doubles of 24 characters, a time of
 * 20) with 2 bytes of framing each; per chunk its applied mark; then the type, the header,
 * the version and the CRC. A counter has the most numeric fields: count, sum, min, max, last,
 * ts and rate.
 */
#define NUMERIC_FIELDS 7
#define SERIES_WORST (NUMERIC_FIELDS * 11 + 20 + 20 + 5 * 24 + 20 + 2 * NUMERIC_FIELDS * 2)
#define MARK_WORST (TALLY_ENC_ID_LEN + 16 + 4)
#define PAYLOAD_WORST(n, chunks) ((size_t)(n)*SERIES_WORST + (size_t)(chunks)*MARK_WORST + 32)
/* a sketch's field name, and a long string's length bytes in a listpack or a plain hash */
#define SKETCH_FRAMING (11 + 16)

_Static_assert(PAYLOAD_WORST(TALLY_ENC_METRICS_PER_CMD, 1) +
			       TALLY_ENC_METRICS_PER_CMD * (TALLY_ENC_SKETCH_MAX + SKETCH_FRAMING) <=
		       TALLY_ENC_PAYLOAD_MAX,
	       "a chunk of histograms fits one payload");
_Static_assert(TALLY_ENC_PART_CHUNKS <= 64 && F_N <= 8,
	       "a part's chunks are bits of a u64; a series' fields are bits of a byte");

static size_t value_text(char *b, const struct tally_slot *s, int j);

/*
 * The most bytes series s takes in a payload: each field of its kind, its name and value as
 * written (a rate counted at its longest), with their framing.
 */
static size_t
series_bytes(const struct tally_encoder *e, const struct tally_table *t,
	     const struct tally_slot *s)
{
	char b[TEXT_MAX], tmp[TEXT_MAX];
	const char *p;
	size_t n = 0, idlen = series_name(e, s, tmp, &p);
	unsigned int j;

	for (j = 0; j < TALLY_FIELDS_N; j++) {
		if (!tally_kind_has(s->kind, j))
			continue;
		n += idlen + 1 + tally_fields[j].len + 2 * 2;
		n += j == TALLY_FIELD_SKETCH ? sketch_size(t, s) + SKETCH_FRAMING
		     : j == TALLY_FIELD_RATE ? 24
					     : value_text(b, s, (int)j);
	}
	return n;
}

/* The longest sketch of series [first, first + n): what decides a payload's encoding. */
static size_t
longest_sketch(const struct tally_table *t, uint32_t first, uint32_t n)
{
	size_t longest = 0, len;
	uint32_t i;

	if (t->side_used == 0)
		return 0;
	for (i = first; i < first + n; i++) {
		if (tally_table_at(t, i)->kind != TALLY_KIND_HISTOGRAM)
			continue;
		len = sketch_size(t, tally_table_at(t, i));
		longest = len > longest ? len : longest;
	}
	return longest;
}

/* A time as schema v2 writes it: 20 digits, zero-padded, so that times order as text. */
static size_t
time_text(char *b, uint64_t ns)
{
	int n = tally_fmt_u64(b, ns), k;

	memmove(b + 20 - n, b, (size_t)n);
	for (k = 0; k < 20 - n; k++)
		b[k] = '0';
	return 20;
}

/* Value j of a numeric field of s as schema v2 writes it, at b (TEXT_MAX); its length. */
static size_t
value_text(char *b, const struct tally_slot *s, int j)
{
	switch (j) {
	case TALLY_FIELD_COUNT:
		return (size_t)tally_fmt_u64(b, s->count);
	case TALLY_FIELD_SUM:
		return (size_t)tally_fmt_double(b, TEXT_MAX, s->sum);
	case TALLY_FIELD_MIN:
		return (size_t)tally_fmt_double(b, TEXT_MAX, s->min);
	case TALLY_FIELD_MAX:
		return (size_t)tally_fmt_double(b, TEXT_MAX, s->max);
	case TALLY_FIELD_LAST:
		return (size_t)tally_fmt_double(b, TEXT_MAX, s->last);
	default:
		return time_text(b, s->last_ns);
	}
}

void
tally_enc_window(struct tally_encoder *e, uint64_t window_ms)
{
	e->window_s = (double)window_ms / 1000;
	e->fold.window_s = e->window_s;
}

/* Whether a series of this kind gets field j from this encoder (a rate only with a window). */
static inline int
enc_has(double window_s, uint8_t kind, unsigned int j)
{
	return tally_kind_has(kind, j) && (j != TALLY_FIELD_RATE || window_s > 0);
}

/* Fields and values of one series as arguments: the fields of its kind (v2: with `ts`). */
static void
enc_series(struct tally_encoder *e, const struct tally_table *t, const struct tally_slot *s,
	   int v2)
{
	unsigned int j;

	for (j = 0; j < TALLY_FIELDS_N; j++) {
		if (!enc_has(e->window_s, s->kind, j) || (j == TALLY_FIELD_TS && !v2))
			continue;
		enc_field(e, s, (int)j);
		if (j == TALLY_FIELD_RATE) {
			e->argvlen[e->argc] = (size_t)tally_fmt_double(e->buf[e->argc],
								       TALLY_ENC_ARG_LEN,
								       s->sum / e->window_s);
			e->argv[e->argc] = e->buf[e->argc];
			e->argc++;
			continue;
		}
		if (j == TALLY_FIELD_SKETCH) {
			/* binary: the bytes wait in the payload buffer until the command is sent */
			uint8_t *b = e->payload + e->blob_used;
			size_t n = sketch_bytes(t, s, b, sizeof(e->payload) - e->blob_used);

			e->blob_used += (uint32_t)n;
			e->argv[e->argc] = (const char *)b;
			e->argvlen[e->argc++] = n;
			continue;
		}
		e->argvlen[e->argc] = value_text(e->buf[e->argc], s, (int)j);
		e->argv[e->argc] = e->buf[e->argc];
		e->argc++;
	}
}

/* Arguments enc_series() gives a series. */
static int
series_args(const struct tally_encoder *e, const struct tally_slot *s, int v2)
{
	unsigned int j;
	int n = 0;

	for (j = 0; j < TALLY_FIELDS_N; j++)
		n += enc_has(e->window_s, s->kind, j) && (j != TALLY_FIELD_TS || v2);
	return 2 * n;
}

/* HSET `tally:{dev}:<start>` <series first..end>, in chunks of TALLY_ENC_METRICS_PER_CMD. */
static unsigned int
enc_hset(struct tally_encoder *e, const struct tally_table *t, uint32_t first, uint32_t end,
	 uint64_t dev, uint64_t start_ms, tally_emit_fn emit, void *ctx)
{
	unsigned int ncmd = 0;
	uint32_t i = first;

	while (i < end) {
		uint32_t stop = end - i > TALLY_ENC_METRICS_PER_CMD ? i + TALLY_ENC_METRICS_PER_CMD
								     : end;
		struct tally_enc_ref ref = {.first = i, .entries = 1, .chunks = 1};

		enc_reset(e);
		enc_arg(e, "HSET");
		enc_arg(e, "tally:{%" PRIu64 "}:%" PRIu64, dev, start_ms);
		for (; i < stop; i++)
			enc_series(e, t, tally_table_at(t, i), 0);
		emit(ctx, e->argc, e->argv, e->argvlen, &ref);
		ncmd++;
	}
	return ncmd;
}

static unsigned int
enc_expire(struct tally_encoder *e, const char *key, uint64_t retention_s, tally_emit_fn emit,
	   void *ctx)
{
	enc_reset(e);
	enc_arg(e, "EXPIRE");
	enc_arg(e, "%s", key);
	enc_arg(e, "%" PRIu64, retention_s);
	emit(ctx, e->argc, e->argv, e->argvlen, NULL);
	return 1;
}

/* One past the last series of the device whose series start at or before i. */
static uint32_t
device_end(const struct tally_table *t, uint32_t i)
{
	return tally_enc_device_end(t, i);
}

uint32_t
tally_enc_device_end(const struct tally_table *t, uint32_t i)
{
	uint64_t dev = tally_table_at(t, i)->device_id;

	while (i < t->series && tally_table_at(t, i)->device_id == dev)
		i++;
	return i;
}

unsigned int
tally_encode_device(struct tally_encoder *e, const struct tally_table *t, uint32_t *pos,
		    uint64_t start_ms, uint64_t retention_s, tally_emit_fn emit, void *ctx)
{
	uint32_t first = *pos, end;
	uint64_t dev;
	char key[TALLY_ENC_ARG_LEN];
	unsigned int n = 0;

	if (first >= t->series)
		return 0;
	dev = tally_table_at(t, first)->device_id;
	end = device_end(t, first);
	n += enc_hset(e, t, first, end, dev, start_ms, emit, ctx);
	snprintf(key, sizeof(key), "tally:{%" PRIu64 "}:%" PRIu64, dev, start_ms);
	n += enc_expire(e, key, retention_s, emit, ctx);
	/* latest names the window (schema v2: no second copy of the fields) */
	enc_reset(e);
	enc_arg(e, "SET");
	enc_arg(e, "tally:{%" PRIu64 "}:latest", dev);
	enc_arg(e, "%" PRIu64, start_ms);
	enc_arg(e, "EX");
	enc_arg(e, "%" PRIu64, retention_s);
	emit(ctx, e->argc, e->argv, e->argvlen, NULL);
	n++;
	*pos = end;
	return n;
}

void
tally_enc_entry(const struct tally_table *t, uint32_t pos, struct tally_enc_entry *out)
{
	uint64_t dev = tally_table_at(t, pos)->device_id;
	uint32_t start = pos, end = device_end(t, pos);

	/* Entries start at a chunk boundary of their device: its chunk index from the start. */
	while (start > 0 && tally_table_at(t, start - 1)->device_id == dev)
		start--;
	out->device_id = dev;
	out->first = pos;
	out->chunk = (pos - start) / TALLY_ENC_METRICS_PER_CMD;
	out->n = end - pos > TALLY_ENC_METRICS_PER_CMD ? TALLY_ENC_METRICS_PER_CMD : end - pos;
	out->chunks = 1;
}

void
tally_enc_part(const struct tally_encoder *e, const struct tally_table *t, uint32_t pos,
	       struct tally_enc_entry *out)
{
	uint32_t end = device_end(t, pos), n, c, i;
	size_t bytes = 32;

	tally_enc_entry(t, pos, out);
	n = end - pos > TALLY_ENC_PART_METRICS ? TALLY_ENC_PART_METRICS : end - pos;
	out->n = n;
	out->chunks = (n + TALLY_ENC_METRICS_PER_CMD - 1) / TALLY_ENC_METRICS_PER_CMD;
	out->bytes = (uint32_t)PAYLOAD_WORST(n, out->chunks);
	if (out->chunks == 1 && t->side_used == 0 && !(out->device_id & TALLY_STATSD_DEVICE_BIT))
		return; /* a chunk of counters and gauges: its worst (the assertions above) */
	/* as many whole chunks as their texts surely fit one payload, at least one */
	for (c = 0; c < out->chunks; c++) {
		uint32_t from = c * TALLY_ENC_METRICS_PER_CMD;
		uint32_t to = from + TALLY_ENC_METRICS_PER_CMD < n ? from + TALLY_ENC_METRICS_PER_CMD
								   : n;
		size_t cb = MARK_WORST;

		for (i = from; i < to; i++)
			cb += series_bytes(e, t, tally_table_at(t, pos + i));
		if (c > 0 && bytes + cb > TALLY_ENC_PAYLOAD_MAX)
			break;
		bytes += cb;
	}
	out->chunks = c;
	out->n = c * TALLY_ENC_METRICS_PER_CMD < n ? c * TALLY_ENC_METRICS_PER_CMD : n;
	out->bytes = (uint32_t)bytes;
}

unsigned int
tally_encode_merge(struct tally_encoder *e, const struct tally_table *t, uint32_t *pos,
		   uint64_t start_ms, uint64_t retention_s, const char *partial_id, int one_device,
		   tally_emit_fn emit, void *ctx)
{
	struct tally_enc_entry ent[TALLY_ENC_ENTRIES_PER_CALL];
	struct tally_enc_ref ref = {.first = *pos};
	uint32_t n = 0, at = *pos, i, k;
	int args = 6, eargs[TALLY_ENC_ENTRIES_PER_CALL];
	size_t blobs = 0, eb, longs = 0, el;

	/*
	 * Which entries fit one call: by count, by arguments, by the bytes of their sketches
	 * (they wait in the payload buffer), and one device in a cluster.
	 */
	while (at < t->series && n < TALLY_ENC_ENTRIES_PER_CALL) {
		tally_enc_entry(t, at, &ent[n]);
		eargs[n] = 0;
		for (k = 0; k < ent[n].n; k++)
			eargs[n] += series_args(e, tally_table_at(t, ent[n].first + k), 1);
		eb = sketches_size(t, ent[n].first, ent[n].n);
		el = long_names_size(e, t, ent[n].first, ent[n].n);
		if (n > 0 && ((one_device && ent[n].device_id != ent[0].device_id) ||
			      args + 4 + eargs[n] > TALLY_ENC_MAX_ARGS ||
			      blobs + eb > sizeof(e->payload) ||
			      longs + el > sizeof(e->long_fields)))
			break;
		args += 4 + eargs[n];
		blobs += eb;
		longs += el;
		at = ent[n].first + ent[n].n;
		n++;
	}
	if (n == 0)
		return 0;
	enc_reset(e);
	enc_arg(e, "FCALL");
	enc_arg(e, "tally_merge2");
	enc_arg(e, "%" PRIu32, 2 * n);
	for (i = 0; i < n; i++) {
		enc_arg(e, "tally:{%" PRIu64 "}:%" PRIu64, ent[i].device_id, start_ms);
		enc_arg(e, "tally:{%" PRIu64 "}:latest", ent[i].device_id);
	}
	enc_arg(e, "%" PRIu64, retention_s);
	enc_arg(e, "%" PRIu64, start_ms);
	/* The id is long (instance, run, pid, random part): it has a buffer of its own. */
	e->argvlen[e->argc] = (size_t)snprintf(e->id, sizeof(e->id), "_applied:%s", partial_id);
	if (e->argvlen[e->argc] >= sizeof(e->id))
		e->argvlen[e->argc] = sizeof(e->id) - 1;
	e->argv[e->argc++] = e->id;
	for (i = 0; i < n; i++) {
		enc_arg(e, "%" PRIu32, ent[i].chunk);
		enc_arg(e, "%d", eargs[i]);
		for (k = 0; k < ent[i].n; k++)
			enc_series(e, t, tally_table_at(t, ent[i].first + k), 1);
	}
	ref.entries = n;
	ref.chunks = n;
	emit(ctx, e->argc, e->argv, e->argvlen, &ref);
	*pos = at;
	return n;
}

/* The applied mark of a chunk, `_applied:<partial id>[:<chunk>]` (as tally_merge2 makes it). */
static size_t
applied_text(char *b, size_t cap, const char *partial_id, uint32_t chunk)
{
	int n = chunk ? snprintf(b, cap, "_applied:%s:%u", partial_id, chunk)
		      : snprintf(b, cap, "_applied:%s", partial_id);

	return n < 0 ? 0 : (size_t)n >= cap ? cap - 1 : (size_t)n;
}

/* The payload of a new window key holding a part at buf; its length, 0 when it does not fit. */
static size_t
put_payload(struct tally_encoder *e, uint8_t *buf, size_t cap, const struct tally_table *t,
	    const struct tally_enc_entry *en, const char *partial_id)
{
	char mark[TALLY_ENC_ID_LEN + 16], f[FIELD_MAX], v[TEXT_MAX];
	/* the last chunk's mark is the longest (the most digits) */
	size_t marklen = applied_text(mark, sizeof(mark), partial_id, en->chunk + en->chunks - 1);
	size_t longest = longest_sketch(t, en->first, en->n), nl;
	uint32_t pairs = en->chunks, i;
	struct tally_dump d;
	int j;

	for (i = 0; i < en->n; i++) {
		const struct tally_slot *s = tally_table_at(t, en->first + i);

		pairs += (uint32_t)series_args(e, s, 1) / 2;
		/* a statsd series' field names may be long: `:sketch` is the longest suffix */
		if ((s->device_id & TALLY_STATSD_DEVICE_BIT) &&
		    (nl = field_text(e, f, s, TALLY_FIELD_SKETCH)) > longest)
			longest = nl;
	}
	if (marklen > longest)
		longest = marklen;
	tally_dump_begin(&d, buf, cap, pairs, tally_dump_small(pairs, longest > 24 ? longest : 24));
	for (i = 0; i < en->n; i++) {
		const struct tally_slot *s = tally_table_at(t, en->first + i);

		for (j = 0; j < F_N; j++) {
			size_t fl, vl;

			if (!enc_has(e->window_s, s->kind, (unsigned int)j))
				continue;
			fl = field_text(e, f, s, j);
			if (j == TALLY_FIELD_RATE) {
				vl = (size_t)tally_fmt_double(v, TEXT_MAX, s->sum / e->window_s);
				tally_dump_pair(&d, f, fl, v, vl);
				continue;
			}
			if (j == TALLY_FIELD_SKETCH) {
				vl = sketch_bytes(t, s, e->blob, sizeof(e->blob));
				tally_dump_pair(&d, f, fl, (const char *)e->blob, vl);
				continue;
			}
			vl = value_text(v, s, j);
			tally_dump_pair(&d, f, fl, v, vl);
		}
	}
	for (i = 0; i < en->chunks; i++) {
		marklen = applied_text(mark, sizeof(mark), partial_id, en->chunk + i);
		tally_dump_pair(&d, mark, marklen, "1", 1);
	}
	return tally_dump_end(&d);
}

unsigned int
tally_encode_put(struct tally_encoder *e, const struct tally_table *t, uint32_t *pos,
		 uint64_t start_ms, uint64_t retention_s, const char *partial_id, int one_device,
		 tally_emit_fn emit, void *ctx)
{
	struct tally_enc_entry ent[TALLY_ENC_ENTRIES_PER_CALL];
	size_t off[TALLY_ENC_ENTRIES_PER_CALL], len[TALLY_ENC_ENTRIES_PER_CALL], used = 0;
	struct tally_enc_ref ref = {.first = *pos};
	uint32_t n = 0, at = *pos, i;

	while (at < t->series && n < TALLY_ENC_ENTRIES_PER_CALL) {
		tally_enc_part(e, t, at, &ent[n]);
		if (n > 0 && ((one_device && ent[n].device_id != ent[0].device_id) ||
			      used + ent[n].bytes > sizeof(e->payload)))
			break;
		off[n] = used;
		len[n] = put_payload(e, e->payload + used, sizeof(e->payload) - used, t, &ent[n],
				     partial_id);
		if (len[n] == 0)
			return 0; /* cannot happen: a part fits an empty payload (PAYLOAD_WORST) */
		used += len[n];
		ref.chunks += ent[n].chunks;
		at = ent[n].first + ent[n].n;
		n++;
	}
	if (n == 0)
		return 0;
	enc_reset(e);
	enc_arg(e, "FCALL");
	enc_arg(e, "tally_put2");
	enc_arg(e, "%" PRIu32, 2 * n);
	for (i = 0; i < n; i++) {
		enc_arg(e, "tally:{%" PRIu64 "}:%" PRIu64, ent[i].device_id, start_ms);
		enc_arg(e, "tally:{%" PRIu64 "}:latest", ent[i].device_id);
	}
	enc_arg(e, "%" PRIu64, retention_s);
	enc_arg(e, "%" PRIu64, start_ms);
	for (i = 0; i < n; i++) {
		e->argv[e->argc] = (const char *)e->payload + off[i];
		e->argvlen[e->argc++] = len[i];
	}
	ref.entries = n;
	emit(ctx, e->argc, e->argv, e->argvlen, &ref);
	*pos = at;
	return n;
}

/* The series of the part with this metric id (they are sorted by it), or -1. */
static int
part_find(const struct tally_table *t, const struct tally_enc_entry *en, uint32_t metric)
{
	uint32_t lo = 0, hi = en->n;

	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2, m = tally_table_at(t, en->first + mid)->metric_id;

		if (m == metric)
			return (int)mid;
		if (m < metric)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/*
 * Field `<name>:<suffix>` of a series of device dev: which metric and suffix, or 0 for
 * another field. A series' name is its decimal metric id, or a statsd series' text (its
 * metric id the text's hash); only the name this encoder gives the series is its own (a
 * field another writer named otherwise stays as it is, never folded twice).
 */
static int
field_parse(const struct tally_encoder *e, uint64_t dev, const char *f, size_t len,
	    uint32_t *metric, int *j)
{
	const int named = e->names != NULL && (dev & TALLY_STATSD_DEVICE_BIT);
	struct tally_slot s = {.device_id = dev};
	const char *mine;
	char tmp[TEXT_MAX];
	size_t i = 0, pl = 0;
	uint64_t m = 0;
	int k;

	while (pl < len && f[len - 1 - pl] != ':')
		pl++;
	if (pl == len || pl == len - 1)
		return 0;
	for (k = 0; k < F_N; k++)
		if (pl == tally_fields[k].len && memcmp(f + len - pl, tally_fields[k].suffix, pl) == 0)
			break;
	if (k == F_N)
		return 0;
	len -= pl + 1; /* the name */
	while (i < len && i < 11 && f[i] >= '0' && f[i] <= '9')
		m = m * 10 + (uint64_t)(f[i++] - '0');
	if (i == 0 || i != len || m > UINT32_MAX || (f[0] == '0' && i > 1)) {
		if (!named)
			return 0;
		m = tally_statsd_metric_id(f, len);
	}
	s.metric_id = (uint32_t)m;
	if (named && (series_name(e, &s, tmp, &mine) != len || memcmp(mine, f, len) != 0))
		return 0;
	*metric = (uint32_t)m;
	*j = k;
	return 1;
}

/*
 * The part's chunk an applied mark of this partial names (prefix: its chunk 0 mark), as a bit
 * of the part; 0 for any other field. Chunk k > 0 is `<prefix>:<k>`, k as "%u" prints it.
 */
static uint64_t
mark_bit(const char *f, size_t len, const char *prefix, size_t plen,
	 const struct tally_enc_entry *en)
{
	uint64_t c = 0;
	size_t i;

	if (len < plen || memcmp(f, prefix, plen) != 0)
		return 0;
	if (len > plen) {
		if (f[plen] != ':' || len == plen + 1 || len > plen + 11 || f[plen + 1] == '0')
			return 0;
		for (i = plen + 1; i < len; i++) {
			if (f[i] < '0' || f[i] > '9')
				return 0;
			c = c * 10 + (uint64_t)(f[i] - '0');
		}
	}
	if (c < en->chunk || c >= (uint64_t)en->chunk + en->chunks)
		return 0;
	return 1ULL << (c - en->chunk);
}

/* A stored number, whole (no trailing bytes), or 0 when it is not one. */
static int
parse_double(const char *str, size_t len, double *out)
{
	char b[64], *end;

	if (len == 0 || len >= sizeof(b))
		return 0;
	memcpy(b, str, len);
	b[len] = '\0';
	*out = strtod(b, &end);
	return end == b + len;
}

static int
parse_u64(const char *str, size_t len, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (len == 0 || len > 20)
		return 0;
	for (i = 0; i < len; i++) {
		if (str[i] < '0' || str[i] > '9' ||
		    v > (UINT64_MAX - (uint64_t)(str[i] - '0')) / 10)
			return 0;
		v = v * 10 + (uint64_t)(str[i] - '0');
	}
	*out = v;
	return 1;
}

/*
 * Fold series k of the part (s) with what old holds of it into fo, by each field's rule: the
 * count and sum, the folded sketch (into fo->sk at *sk_used), and which stored texts stay
 * (fields of other kinds stay as they are). -1 with *bad the field that is not a number or
 * not a sketch (nothing is written), -2 when fo->sk is full (the part goes by fields).
 */
static int
fold_series(struct tally_enc_fold *fo, uint32_t k, const struct tally_table *t,
	    const struct tally_slot *s, const struct tally_hash_view *old, int *bad,
	    uint32_t *sk_used)
{
	const int32_t *a = fo->at[k];
	uint8_t keep = 0;
	uint64_t c;
	double o;
	int j;

	fo->count[k] = s->count;
	fo->sum[k] = s->sum;
	for (j = 0; j < F_N; j++)
		if (!enc_has(fo->window_s, s->kind, (unsigned int)j))
			keep |= (uint8_t)(1u << j);
	fo->keep[k] = keep;
	if (s->kind == TALLY_KIND_HISTOGRAM) {
		/* buckets add: the stored sketch, parsed, plus the part's */
		struct tally_dds *d = tally_dds_init(fo->dds, TALLY_DDS_CAP_MAX);
		const struct tally_dds *mine = tally_table_sketch(t, s);
		const int32_t at = a[TALLY_FIELD_SKETCH];
		int n;

		*bad = TALLY_FIELD_SKETCH;
		if (at >= 0 && tally_dds_parse(d, (const uint8_t *)old->value[at],
					       old->value_len[at]) != 0)
			return -1;
		if (mine != NULL)
			tally_dds_merge(d, mine);
		n = tally_dds_serialise(d, fo->sk + *sk_used, sizeof(fo->sk) - *sk_used);
		if (n < 0)
			return -2;
		fo->sk_off[k] = *sk_used;
		fo->sk_len[k] = (uint32_t)n;
		*sk_used += (uint32_t)n;
	}
	if (a[TALLY_FIELD_COUNT] < 0)
		return 0; /* the metric is new to the key: all ours */
	*bad = TALLY_FIELD_COUNT;
	if (!parse_u64(old->value[a[TALLY_FIELD_COUNT]], old->value_len[a[TALLY_FIELD_COUNT]], &c))
		return -1;
	fo->count[k] = c + s->count;
	*bad = TALLY_FIELD_SUM;
	if (a[TALLY_FIELD_SUM] >= 0 && !(keep & (1u << TALLY_FIELD_SUM))) {
		if (!parse_double(old->value[a[TALLY_FIELD_SUM]], old->value_len[a[TALLY_FIELD_SUM]],
				  &o))
			return -1;
		fo->sum[k] = o + s->sum;
	}
	/* min and max keep one of the two texts as it is */
	*bad = TALLY_FIELD_MIN;
	if (a[TALLY_FIELD_MIN] >= 0 && !(keep & (1u << TALLY_FIELD_MIN))) {
		if (!parse_double(old->value[a[TALLY_FIELD_MIN]], old->value_len[a[TALLY_FIELD_MIN]],
				  &o))
			return -1;
		if (!(s->min < o))
			keep |= 1u << TALLY_FIELD_MIN;
	}
	*bad = TALLY_FIELD_MAX;
	if (a[TALLY_FIELD_MAX] >= 0 && !(keep & (1u << TALLY_FIELD_MAX))) {
		if (!parse_double(old->value[a[TALLY_FIELD_MAX]], old->value_len[a[TALLY_FIELD_MAX]],
				  &o))
			return -1;
		if (!(s->max > o))
			keep |= 1u << TALLY_FIELD_MAX;
	}
	/* last by time: the stored one when it is newer (times order as strings) */
	if (a[TALLY_FIELD_TS] >= 0 && !(keep & (1u << TALLY_FIELD_TS))) {
		char ts[TEXT_MAX];
		size_t nl = value_text(ts, s, TALLY_FIELD_TS), ol = old->value_len[a[TALLY_FIELD_TS]];
		int cmp = memcmp(ts, old->value[a[TALLY_FIELD_TS]], ol < nl ? ol : nl);

		if (cmp < 0 || (cmp == 0 && nl < ol))
			keep |= 1u << TALLY_FIELD_LAST | 1u << TALLY_FIELD_TS;
	}
	fo->keep[k] = keep;
	return 0;
}

/* The folded value of field j of series k of the part (s): at b (numbers) or in fo->sk. */
static size_t
folded_value(char *b, const struct tally_enc_fold *fo, uint32_t k, const struct tally_slot *s,
	     int j, const char **out)
{
	*out = b;
	if (j == TALLY_FIELD_COUNT)
		return (size_t)tally_fmt_u64(b, fo->count[k]);
	if (j == TALLY_FIELD_SUM)
		return (size_t)tally_fmt_double(b, TEXT_MAX, fo->sum[k]);
	if (j == TALLY_FIELD_SKETCH) {
		*out = (const char *)fo->sk + fo->sk_off[k];
		return fo->sk_len[k];
	}
	if (j == TALLY_FIELD_RATE) /* the folded sum's */
		return (size_t)tally_fmt_double(b, TEXT_MAX, fo->sum[k] / fo->window_s);
	return value_text(b, s, j);
}

/* Whether series k of the part is in a chunk being folded (not applied, not refused). */
static inline int
folding(uint64_t skip, uint32_t k)
{
	return !(skip & (1ULL << (k / TALLY_ENC_METRICS_PER_CMD)));
}

int
tally_encode_swap(struct tally_encoder *e, const struct tally_table *t, uint32_t pos,
		  uint64_t start_ms, uint64_t retention_s, const char *partial_id,
		  const struct tally_hash_view *old, tally_refuse_fn refuse, tally_emit_fn emit,
		  void *ctx)
{
	struct tally_enc_fold *fo = &e->fold;
	char prefix[TALLY_ENC_ID_LEN + 16], f[FIELD_MAX], v[TEXT_MAX];
	struct tally_enc_ref ref = {.first = pos, .entries = 1};
	struct tally_enc_entry en;
	struct tally_dump d;
	uint64_t skip = 0, all;
	size_t plen, marklen, longest, len;
	uint32_t i, c, pairs, lead = UINT32_MAX, sk_used = 0;
	const char *val;
	int j, k, rc = 0;

	tally_enc_part(e, t, pos, &en);
	ref.chunks = en.chunks;
	if (old->n > TALLY_ENC_FOLD_PAIRS)
		return TALLY_FOLD_TOO_BIG;
	plen = applied_text(prefix, sizeof(prefix), partial_id, 0);
	longest = applied_text(e->mark, sizeof(e->mark), partial_id, en.chunk + en.chunks - 1);
	if (longest < 24)
		longest = 24;
	/* Where each field of the part's metrics is in old, and the chunks already applied. */
	memset(fo->at, 0xff, sizeof(fo->at[0]) * en.n);
	for (i = 0; i < old->n; i++) {
		uint32_t metric;

		fo->of[i] = -1;
		if (old->field_len[i] > longest)
			longest = old->field_len[i];
		if (old->value_len[i] > longest)
			longest = old->value_len[i];
		if (field_parse(e, en.device_id, old->field[i], old->field_len[i], &metric, &j)) {
			if ((k = part_find(t, &en, metric)) >= 0) {
				fo->at[k][j] = (int32_t)i;
				fo->of[i] = k * 8 + j;
			}
		} else {
			skip |= mark_bit(old->field[i], old->field_len[i], prefix, plen, &en);
		}
	}
	/*
	 * Every check comes before the write: a chunk with a stored field that is not a number
	 * is refused alone (it is that chunk's problem), the part's other chunks fold.
	 */
	all = en.chunks == 64 ? ~0ULL : (1ULL << en.chunks) - 1;
	for (c = 0; c < en.chunks; c++) {
		uint32_t from = c * TALLY_ENC_METRICS_PER_CMD;
		uint32_t to = from + TALLY_ENC_METRICS_PER_CMD;

		if (skip & (1ULL << c))
			continue;
		j = TALLY_FIELD_COUNT;
		rc = 0;
		for (i = from; i < to && i < en.n; i++)
			if ((rc = fold_series(fo, i, t, tally_table_at(t, en.first + i), old, &j,
					      &sk_used)) != 0)
				break;
		if (rc == -2)
			return TALLY_FOLD_TOO_BIG;
		if (i < to && i < en.n) {
			char why[256], key[TALLY_ENC_ARG_LEN];
			const int32_t at = fo->at[i][j];
			int binary = j == TALLY_FIELD_SKETCH;

			snprintf(key, sizeof(key), "tally:{%" PRIu64 "}:%" PRIu64, en.device_id,
				 start_ms);
			snprintf(why, sizeof(why), "tally: %s field %.*s is not a %s: %.*s", key,
				 (int)old->field_len[at], old->field[at],
				 binary ? "sketch" : "number",
				 binary ? 0 : (int)(old->value_len[at] > 64 ? 64 : old->value_len[at]),
				 old->value[at]);
			refuse(ctx, en.first + from, why, strlen(why));
			skip |= 1ULL << c;
			continue;
		}
		if (lead == UINT32_MAX)
			lead = c;
	}
	if (skip == all)
		return TALLY_FOLD_NONE;
	/* The folded key: old's fields in their order, the part's new fields, its new marks. */
	for (i = 0; i < en.n; i++) {
		const struct tally_slot *s = tally_table_at(t, en.first + i);

		if (!folding(skip, i))
			continue;
		if (s->kind == TALLY_KIND_HISTOGRAM && fo->sk_len[i] > longest)
			longest = fo->sk_len[i];
		/* a statsd series' new fields: its name may be long (`:sketch` the longest) */
		if ((s->device_id & TALLY_STATSD_DEVICE_BIT) &&
		    (len = field_text(e, f, s, TALLY_FIELD_SKETCH)) > longest)
			longest = len;
	}
	pairs = old->n;
	for (i = 0; i < en.n; i++)
		for (j = 0; j < F_N && folding(skip, i); j++)
			pairs += fo->at[i][j] < 0 && !(fo->keep[i] & (1u << j));
	for (c = 0; c < en.chunks; c++)
		pairs += !(skip & (1ULL << c));
	tally_dump_begin(&d, e->payload, sizeof(e->payload), pairs,
			 tally_dump_small(pairs, longest));
	for (i = 0; i < old->n; i++) {
		int32_t o = fo->of[i];
		uint32_t x = (uint32_t)o / 8;

		j = o & 7;
		if (o >= 0 && folding(skip, x) && !(fo->keep[x] & (1u << j))) {
			len = folded_value(v, fo, x, tally_table_at(t, en.first + x), j, &val);
			tally_dump_pair(&d, old->field[i], old->field_len[i], val, len);
		} else {
			tally_dump_pair(&d, old->field[i], old->field_len[i], old->value[i],
					old->value_len[i]);
		}
	}
	for (i = 0; i < en.n; i++) {
		const struct tally_slot *s = tally_table_at(t, en.first + i);

		for (j = 0; j < F_N && folding(skip, i); j++) {
			if (fo->at[i][j] >= 0 || (fo->keep[i] & (1u << j)))
				continue;
			len = field_text(e, f, s, j);
			marklen = folded_value(v, fo, i, s, j, &val);
			tally_dump_pair(&d, f, len, val, marklen);
		}
	}
	for (c = 0; c < en.chunks; c++) {
		if (skip & (1ULL << c))
			continue;
		marklen = applied_text(e->mark, sizeof(e->mark), partial_id, en.chunk + c);
		tally_dump_pair(&d, e->mark, marklen, "1", 1);
	}
	len = tally_dump_end(&d);
	if (len == 0)
		return TALLY_FOLD_TOO_BIG;
	/* swap2 checks the first chunk folded: its mark written since the read answers 0 */
	marklen = applied_text(e->mark, sizeof(e->mark), partial_id, en.chunk + lead);
	enc_reset(e);
	enc_arg(e, "FCALL");
	enc_arg(e, "tally_swap2");
	enc_arg(e, "2");
	enc_arg(e, "tally:{%" PRIu64 "}:%" PRIu64, en.device_id, start_ms);
	enc_arg(e, "tally:{%" PRIu64 "}:latest", en.device_id);
	enc_arg(e, "%" PRIu64, retention_s);
	enc_arg(e, "%" PRIu64, start_ms);
	e->argv[e->argc] = e->mark;
	e->argvlen[e->argc++] = marklen;
	enc_arg(e, "%" PRIu32, old->n);
	e->argv[e->argc] = (const char *)e->payload;
	e->argvlen[e->argc++] = len;
	emit(ctx, e->argc, e->argv, e->argvlen, &ref);
	return TALLY_FOLD_SENT;
}

#define HLL_KEYS_PER_CALL 64

unsigned int
tally_encode_hll(struct tally_encoder *e, const struct tally_table *t, uint32_t *pos,
		 uint32_t stop, uint64_t start_ms, uint64_t retention_s, int merge,
		 tally_emit_fn emit, void *ctx)
{
	uint32_t i = *pos, end, sel[HLL_KEYS_PER_CALL], n = 0, k;
	size_t off[HLL_KEYS_PER_CALL], len[HLL_KEYS_PER_CALL], used = 0;
	struct tally_enc_ref ref = {.chunks = 1};
	uint64_t dev;
	int rc;

	if (i >= t->series || t->side_used == 0) {
		*pos = t->series;
		return 0;
	}
	end = device_end(t, i);
	end = stop < end ? stop : end;
	dev = tally_table_at(t, i)->device_id;
	/* the registers of one device's distinct series, as many as one payload holds */
	for (; i < end && n < HLL_KEYS_PER_CALL; i++) {
		if (tally_table_at(t, i)->kind != TALLY_KIND_DISTINCT)
			continue;
		rc = tally_table_hll(t, tally_table_at(t, i), e->payload + used,
				     sizeof(e->payload) - used);
		if (rc == -ENOSPC)
			break;
		if (rc <= 0)
			continue; /* no side memory was left for it: no registers */
		sel[n] = i;
		off[n] = used;
		len[n++] = (size_t)rc;
		used += (size_t)rc;
		if (!merge)
			break; /* plain commands: one key at a time */
	}
	*pos = n > 0 ? sel[n - 1] + 1 : end;
	if (n == 0)
		return 0;
	if (!merge) {
		/* plain writes: the registers replace the key's, as HSET replaces the fields */
		char key[TALLY_ENC_ARG_LEN];

		snprintf(key, sizeof(key), "tally:{%" PRIu64 "}:%" PRIu64 ":hll:%" PRIu32, dev,
			 start_ms, tally_table_at(t, sel[0])->metric_id);
		enc_reset(e);
		enc_arg(e, "SET");
		enc_arg(e, "%s", key);
		e->argv[e->argc] = (const char *)e->payload + off[0];
		e->argvlen[e->argc++] = len[0];
		enc_arg(e, "EX");
		enc_arg(e, "%" PRIu64, retention_s);
		emit(ctx, e->argc, e->argv, e->argvlen, NULL);
		return 1;
	}
	enc_reset(e);
	enc_arg(e, "FCALL");
	enc_arg(e, "tally_pf2");
	enc_arg(e, "%" PRIu32, n + 1);
	enc_arg(e, "tally:{%" PRIu64 "}:%" PRIu64 ":hll:tmp", dev, start_ms);
	for (k = 0; k < n; k++)
		enc_arg(e, "tally:{%" PRIu64 "}:%" PRIu64 ":hll:%" PRIu32, dev, start_ms,
			tally_table_at(t, sel[k])->metric_id);
	enc_arg(e, "%" PRIu64, retention_s);
	for (k = 0; k < n; k++) {
		e->argv[e->argc] = (const char *)e->payload + off[k];
		e->argvlen[e->argc++] = len[k];
	}
	/* its replies are put down to the series from sel[0]; sent again from the device start */
	ref.first = sel[0];
	ref.entries = n;
	emit(ctx, e->argc, e->argv, e->argvlen, &ref);
	return 1;
}

void
tally_top_reset(struct tally_top *top)
{
	top->n = 0;
}

static void
top_swap(struct tally_top *top, uint32_t a, uint32_t b)
{
	struct tally_top_entry x = top->e[a];

	top->e[a] = top->e[b];
	top->e[b] = x;
}

static void
top_sift_down(struct tally_top *top, uint32_t i)
{
	for (;;) {
		uint32_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < top->n && top->e[l].records < top->e[m].records)
			m = l;
		if (r < top->n && top->e[r].records < top->e[m].records)
			m = r;
		if (m == i)
			return;
		top_swap(top, i, m);
		i = m;
	}
}

void
tally_top_add(struct tally_top *top, uint64_t device_id, uint64_t records)
{
	uint32_t i;

	if (top->n < TALLY_TOP_N) {
		i = top->n++;
		top->e[i] = (struct tally_top_entry){device_id, records};
		while (i > 0 && top->e[(i - 1) / 2].records > top->e[i].records) {
			top_swap(top, i, (i - 1) / 2);
			i = (i - 1) / 2;
		}
		return;
	}
	if (records <= top->e[0].records)
		return;
	top->e[0] = (struct tally_top_entry){device_id, records};
	top_sift_down(top, 0);
}

static unsigned int
enc_simple(struct tally_encoder *e, tally_emit_fn emit, void *ctx, const char *a0,
	   const char *a1, const char *a2)
{
	enc_reset(e);
	enc_arg(e, "%s", a0);
	if (a1 != NULL)
		enc_arg(e, "%s", a1);
	if (a2 != NULL)
		enc_arg(e, "%s", a2);
	emit(ctx, e->argc, e->argv, e->argvlen, NULL);
	return 1;
}

unsigned int
tally_encode_top(struct tally_encoder *e, const struct tally_top *top, uint64_t start_ms,
		 tally_emit_fn emit, void *ctx)
{
	char win[24];
	unsigned int n = 0;
	uint32_t i;

	snprintf(win, sizeof(win), "%" PRIu64, start_ms);
	/* One key per transaction: in a cluster the two keys live on different slots. */
	n += enc_simple(e, emit, ctx, "MULTI", NULL, NULL);
	n += enc_simple(e, emit, ctx, "DEL", "tally:top", NULL);
	if (top->n > 0) {
		enc_reset(e);
		enc_arg(e, "ZADD");
		enc_arg(e, "tally:top");
		for (i = 0; i < top->n; i++) {
			enc_arg(e, "%" PRIu64, top->e[i].records);
			enc_arg(e, "%" PRIu64, top->e[i].device_id);
		}
		emit(ctx, e->argc, e->argv, e->argvlen, NULL);
		n++;
	}
	n += enc_simple(e, emit, ctx, "EXEC", NULL, NULL);
	n += enc_simple(e, emit, ctx, "SET", "tally:top:window", win);
	return n;
}
