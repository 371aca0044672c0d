/* SPDX-License-Identifier: BSD-3-Clause */
/* Redis schema v2: the commands that write the devices of one closed window. */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

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
