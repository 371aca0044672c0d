/* SPDX-License-Identifier: BSD-3-Clause */
/* Redis schema v2: the commands that write the devices of one closed window. */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tally_dump.h"
#include "tally_sink.h"

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
}

/* Append one argument formatted with fmt; arguments are short by construction. */
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

static void
enc_double(struct tally_encoder *e, double v)
{
	int n = tally_fmt_double(e->buf[e->argc], TALLY_ENC_ARG_LEN, v);

	e->argv[e->argc] = e->buf[e->argc];
	e->argvlen[e->argc] = (size_t)n;
	e->argc++;
}

/* An unsigned integer argument, without printf (the per-series path). */
static void
enc_u64(struct tally_encoder *e, uint64_t v)
{
	e->argvlen[e->argc] = (size_t)tally_fmt_u64(e->buf[e->argc], v);
	e->argv[e->argc] = e->buf[e->argc];
	e->argc++;
}

/* A field name `<metric>:<suffix>`. */
static void
enc_field(struct tally_encoder *e, uint32_t metric, const char *suffix, size_t slen)
{
	char *b = e->buf[e->argc];
	int n = tally_fmt_u64(b, metric);

	b[n++] = ':';
	memcpy(b + n, suffix, slen);
	e->argv[e->argc] = b;
	e->argvlen[e->argc] = (size_t)n + slen;
	e->argc++;
}

static void
enc_series(struct tally_encoder *e, const struct tally_slot *s)
{
	enc_field(e, s->metric_id, "count", 5);
	enc_u64(e, s->count);
	enc_field(e, s->metric_id, "sum", 3);
	enc_double(e, s->sum);
	enc_field(e, s->metric_id, "min", 3);
	enc_double(e, s->min);
	enc_field(e, s->metric_id, "max", 3);
	enc_double(e, s->max);
	enc_field(e, s->metric_id, "last", 4);
	enc_double(e, s->last);
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
		struct tally_enc_ref ref = {.first = i, .entries = 1};

		enc_reset(e);
		enc_arg(e, "HSET");
		enc_arg(e, "tally:{%" PRIu64 "}:%" PRIu64, dev, start_ms);
		for (; i < stop; i++)
			enc_series(e, tally_table_at(t, i));
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
}

/* The per-metric field/value pairs of schema v2 (count, sum, min, max, last, ts). */
static void
enc_series_v2(struct tally_encoder *e, const struct tally_slot *s)
{
	char *b;
	int n, k;

	enc_series(e, s);
	enc_field(e, s->metric_id, "ts", 2);
	/* zero-padded to 20 digits: the Function orders times as strings */
	b = e->buf[e->argc];
	n = tally_fmt_u64(b, s->last_ns);
	memmove(b + 20 - n, b, (size_t)n);
	for (k = 0; k < 20 - n; k++)
		b[k] = '0';
	e->argv[e->argc] = b;
	e->argvlen[e->argc] = 20;
	e->argc++;
}

unsigned int
tally_encode_merge(struct tally_encoder *e, const struct tally_table *t, uint32_t *pos,
		   uint64_t start_ms, uint64_t retention_s, const char *partial_id, int one_device,
		   tally_emit_fn emit, void *ctx)
{
	struct tally_enc_entry ent[TALLY_ENC_ENTRIES_PER_CALL];
	struct tally_enc_ref ref = {.first = *pos};
	uint32_t n = 0, at = *pos, i, k;
	int args = 6;

	/* Which entries fit one call: by count, by arguments, and one device in a cluster. */
	while (at < t->series && n < TALLY_ENC_ENTRIES_PER_CALL) {
		tally_enc_entry(t, at, &ent[n]);
		if (n > 0 && ((one_device && ent[n].device_id != ent[0].device_id) ||
			      args + 4 + 12 * (int)ent[n].n > TALLY_ENC_MAX_ARGS))
			break;
		args += 4 + 12 * (int)ent[n].n;
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
		enc_arg(e, "%" PRIu32, 12 * ent[i].n);
		for (k = 0; k < ent[i].n; k++)
			enc_series_v2(e, tally_table_at(t, ent[i].first + k));
	}
	ref.entries = n;
	emit(ctx, e->argc, e->argv, e->argvlen, &ref);
	*pos = at;
	return n;
}

/* The suffixes of a metric's fields in schema v2, in the order they are written. */
enum { F_COUNT, F_SUM, F_MIN, F_MAX, F_LAST, F_TS, F_N };
static const char *const suffix[F_N] = {"count", "sum", "min", "max", "last", "ts"};
static const size_t suffix_len[F_N] = {5, 3, 3, 3, 4, 2};
#define TEXT_MAX 32 /* a field or value of a series: `<u32>:count`, %.17g, 20 digits */

/* Field j of a series, `<metric>:<suffix>`, at b; its length. */
static size_t
field_text(char *b, uint32_t metric, int j)
{
	int n = tally_fmt_u64(b, metric);

	b[n++] = ':';
	memcpy(b + n, suffix[j], suffix_len[j]);
	return (size_t)n + suffix_len[j];
}

/* Value j of a series as schema v2 writes it (the same text as tally_encode_merge()'s). */
static size_t
value_text(char *b, const struct tally_slot *s, int j)
{
	int n, k;

	switch (j) {
	case F_COUNT:
		return (size_t)tally_fmt_u64(b, s->count);
	case F_SUM:
		return (size_t)tally_fmt_double(b, TEXT_MAX, s->sum);
	case F_MIN:
		return (size_t)tally_fmt_double(b, TEXT_MAX, s->min);
	case F_MAX:
		return (size_t)tally_fmt_double(b, TEXT_MAX, s->max);
	case F_LAST:
		return (size_t)tally_fmt_double(b, TEXT_MAX, s->last);
	default:
		/* zero-padded to 20 digits: times order as strings */
		n = tally_fmt_u64(b, s->last_ns);
		memmove(b + 20 - n, b, (size_t)n);
		for (k = 0; k < 20 - n; k++)
			b[k] = '0';
		return 20;
	}
}

/* The applied mark of a chunk, `_applied:<partial id>[:<chunk>]` (as tally_merge2 makes it). */
static size_t
applied_text(char *b, size_t cap, const char *partial_id, uint32_t chunk)
{
	int n = chunk ? snprintf(b, cap, "_applied:%s:%u", partial_id, chunk)
		      : snprintf(b, cap, "_applied:%s", partial_id);

	return n < 0 ? 0 : (size_t)n >= cap ? cap - 1 : (size_t)n;
}

/* The most a chunk of n series takes as a payload. */
static size_t
put_worst(uint32_t n)
{
	return (size_t)n * F_N * 2 * (TEXT_MAX + 8) + TALLY_ENC_ID_LEN + 64;
}

/* The payload of a new window key holding one chunk at buf; its length, 0 when it does not fit. */
static size_t
put_payload(uint8_t *buf, size_t cap, const struct tally_table *t, const struct tally_enc_entry *en,
	    const char *partial_id)
{
	char mark[TALLY_ENC_ID_LEN + 16], f[TEXT_MAX], v[TEXT_MAX];
	size_t marklen = applied_text(mark, sizeof(mark), partial_id, en->chunk);
	uint32_t pairs = en->n * F_N + 1, i;
	struct tally_dump d;
	int j;

	tally_dump_begin(&d, buf, cap, pairs, tally_dump_small(pairs, marklen > 24 ? marklen : 24));
	for (i = 0; i < en->n; i++) {
		const struct tally_slot *s = tally_table_at(t, en->first + i);

		for (j = 0; j < F_N; j++) {
			size_t fl = field_text(f, s->metric_id, j);
			size_t vl = value_text(v, s, j);

			tally_dump_pair(&d, f, fl, v, vl);
		}
	}
	tally_dump_pair(&d, mark, marklen, "1", 1);
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
		tally_enc_entry(t, at, &ent[n]);
		if (n > 0 && ((one_device && ent[n].device_id != ent[0].device_id) ||
			      used + put_worst(ent[n].n) > sizeof(e->payload)))
			break;
		off[n] = used;
		len[n] = put_payload(e->payload + used, sizeof(e->payload) - used, t, &ent[n],
				     partial_id);
		if (len[n] == 0)
			return 0; /* cannot happen: sizeof(payload) > put_worst(64 series) */
		used += len[n];
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

/* The series of the chunk with this metric id (they are sorted by it), or -1. */
static int
chunk_find(const struct tally_table *t, const struct tally_enc_entry *en, uint32_t metric)
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

/* Field `<metric>:<suffix>`: which metric and suffix, or 0 for another field. */
static int
field_parse(const char *f, size_t len, uint32_t *metric, int *j)
{
	uint64_t m = 0;
	size_t i = 0;
	int k;

	while (i < len && i < 11 && f[i] >= '0' && f[i] <= '9')
		m = m * 10 + (uint64_t)(f[i++] - '0');
	if (i == 0 || i >= len || f[i] != ':' || m > UINT32_MAX || (f[0] == '0' && i > 1))
		return 0;
	i++;
	for (k = 0; k < F_N; k++)
		if (len - i == suffix_len[k] && memcmp(f + i, suffix[k], suffix_len[k]) == 0) {
			*metric = (uint32_t)m;
			*j = k;
			return 1;
		}
	return 0;
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

int
tally_encode_swap(struct tally_encoder *e, const struct tally_table *t, uint32_t pos,
		  uint64_t start_ms, uint64_t retention_s, const char *partial_id,
		  const struct tally_hash_view *old, char *err, size_t errlen, tally_emit_fn emit,
		  void *ctx)
{
	/* where each field of the chunk's metrics is in old (-1: not there), and its new text */
	int32_t at[TALLY_ENC_METRICS_PER_CMD][F_N];
	char mark[TALLY_ENC_ID_LEN + 16], key[TALLY_ENC_ARG_LEN];
	struct tally_enc_ref ref = {.first = pos, .entries = 1};
	struct tally_enc_entry en;
	struct tally_dump d;
	size_t marklen, longest, len;
	uint32_t i, pairs;
	int j;

	tally_enc_entry(t, pos, &en);
	marklen = applied_text(mark, sizeof(mark), partial_id, en.chunk);
	longest = marklen > 24 ? marklen : 24;
	memset(at, 0xff, sizeof(at));
	for (i = 0; i < old->n; i++) {
		uint32_t metric;
		int k;

		if (old->field_len[i] == marklen && memcmp(old->field[i], mark, marklen) == 0)
			return TALLY_FOLD_APPLIED;
		if (old->field_len[i] > longest)
			longest = old->field_len[i];
		if (old->value_len[i] > longest)
			longest = old->value_len[i];
		if (field_parse(old->field[i], old->field_len[i], &metric, &j) &&
		    (k = chunk_find(t, &en, metric)) >= 0)
			at[k][j] = (int32_t)i;
	}
	/* The new text of every field of the chunk's metrics: e->buf past the command's args. */
	pairs = old->n + 1;
	for (i = 0; i < en.n; i++) {
		const struct tally_slot *s = tally_table_at(t, en.first + i);
		char(*v)[TALLY_ENC_ARG_LEN] = &e->buf[16 + i * F_N];
		size_t *vl = &e->argvlen[16 + i * F_N];
		double o;
		uint64_t c;
		int keep[F_N] = {0};

		for (j = 0; j < F_N; j++)
			vl[j] = value_text(v[j], s, j);
		if (at[i][F_COUNT] >= 0) {
			const int32_t *a = at[i];

			if (!parse_u64(old->value[a[F_COUNT]], old->value_len[a[F_COUNT]], &c))
				goto nan_count;
			vl[F_COUNT] = (size_t)tally_fmt_u64(v[F_COUNT], c + s->count);
			if (a[F_SUM] >= 0) {
				if (!parse_double(old->value[a[F_SUM]], old->value_len[a[F_SUM]],
						  &o))
					goto nan_sum;
				vl[F_SUM] = (size_t)tally_fmt_double(v[F_SUM],
								     TEXT_MAX, o + s->sum);
			}
			/* min and max keep one of the two texts as it is */
			if (a[F_MIN] >= 0) {
				if (!parse_double(old->value[a[F_MIN]], old->value_len[a[F_MIN]],
						  &o))
					goto nan_min;
				keep[F_MIN] = !(s->min < o);
			}
			if (a[F_MAX] >= 0) {
				if (!parse_double(old->value[a[F_MAX]], old->value_len[a[F_MAX]],
						  &o))
					goto nan_max;
				keep[F_MAX] = !(s->max > o);
			}
			/* last by time: the stored one when it is newer (times order as strings) */
			if (a[F_TS] >= 0) {
				size_t ol = old->value_len[a[F_TS]], nl = vl[F_TS];
				int cmp = memcmp(v[F_TS], old->value[a[F_TS]],
						 ol < nl ? ol : nl);

				if (cmp < 0 || (cmp == 0 && nl < ol))
					keep[F_LAST] = keep[F_TS] = 1;
			}
		}
		for (j = 0; j < F_N; j++) {
			if (keep[j])
				vl[j] = (size_t)-1; /* the stored text stays */
			if (at[i][j] < 0 && !keep[j])
				pairs++;
		}
	}
	if (!tally_dump_small(pairs, longest) && pairs > TALLY_ENC_FOLD_PAIRS)
		return TALLY_FOLD_TOO_BIG;
	tally_dump_begin(&d, e->payload, sizeof(e->payload), pairs,
			 tally_dump_small(pairs, longest));
	for (i = 0; i < old->n; i++) {
		uint32_t metric;
		int k;

		if (field_parse(old->field[i], old->field_len[i], &metric, &j) &&
		    (k = chunk_find(t, &en, metric)) >= 0 && at[k][j] == (int32_t)i &&
		    e->argvlen[16 + k * F_N + j] != (size_t)-1)
			tally_dump_pair(&d, old->field[i], old->field_len[i],
					e->buf[16 + k * F_N + j],
					e->argvlen[16 + k * F_N + j]);
		else
			tally_dump_pair(&d, old->field[i], old->field_len[i], old->value[i],
					old->value_len[i]);
	}
	for (i = 0; i < en.n; i++) {
		const struct tally_slot *s = tally_table_at(t, en.first + i);

		for (j = 0; j < F_N; j++) {
			char f[TEXT_MAX];
			size_t fl;

			if (at[i][j] >= 0 || e->argvlen[16 + i * F_N + j] == (size_t)-1)
				continue;
			fl = field_text(f, s->metric_id, j);
			tally_dump_pair(&d, f, fl, e->buf[16 + i * F_N + j],
					e->argvlen[16 + i * F_N + j]);
		}
	}
	tally_dump_pair(&d, mark, marklen, "1", 1);
	len = tally_dump_end(&d);
	if (len == 0)
		return TALLY_FOLD_TOO_BIG;
	enc_reset(e);
	enc_arg(e, "FCALL");
	enc_arg(e, "tally_swap2");
	enc_arg(e, "2");
	enc_arg(e, "tally:{%" PRIu64 "}:%" PRIu64, en.device_id, start_ms);
	enc_arg(e, "tally:{%" PRIu64 "}:latest", en.device_id);
	enc_arg(e, "%" PRIu64, retention_s);
	enc_arg(e, "%" PRIu64, start_ms);
	e->argv[e->argc] = mark;
	e->argvlen[e->argc++] = marklen;
	enc_arg(e, "%" PRIu32, old->n);
	e->argv[e->argc] = (const char *)e->payload;
	e->argvlen[e->argc++] = len;
	emit(ctx, e->argc, e->argv, e->argvlen, &ref);
	return TALLY_FOLD_SENT;

nan_count:
	j = F_COUNT;
	goto nan;
nan_sum:
	j = F_SUM;
	goto nan;
nan_min:
	j = F_MIN;
	goto nan;
nan_max:
	j = F_MAX;
nan:
	snprintf(key, sizeof(key), "tally:{%" PRIu64 "}:%" PRIu64, en.device_id, start_ms);
	{
		const int32_t k = at[i][j];

		snprintf(err, errlen, "tally: %s field %.*s is not a number: %.*s", key,
			 (int)old->field_len[k], old->field[k],
			 (int)(old->value_len[k] > 64 ? 64 : old->value_len[k]), old->value[k]);
	}
	return TALLY_FOLD_REFUSED;
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
