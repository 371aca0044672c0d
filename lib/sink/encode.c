/* SPDX-License-Identifier: BSD-3-Clause */
/* Redis schema v1: the commands that write one device of one closed window. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

#include "tally_sink.h"

int
tally_fmt_double(char *buf, size_t len, double v)
{
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

static void
enc_series(struct tally_encoder *e, const struct tally_slot *s)
{
	enc_arg(e, "%" PRIu32 ":count", s->metric_id);
	enc_arg(e, "%" PRIu64, s->count);
	enc_arg(e, "%" PRIu32 ":sum", s->metric_id);
	enc_double(e, s->sum);
	enc_arg(e, "%" PRIu32 ":min", s->metric_id);
	enc_double(e, s->min);
	enc_arg(e, "%" PRIu32 ":max", s->metric_id);
	enc_double(e, s->max);
	enc_arg(e, "%" PRIu32 ":last", s->metric_id);
	enc_double(e, s->last);
}

/* HSET key [window W] <series first..end>, in chunks; returns commands emitted. */
static unsigned int
enc_hset(struct tally_encoder *e, const struct tally_table *t, uint32_t first, uint32_t end,
	 uint64_t dev, const char *suffix, const uint64_t *window, tally_emit_fn emit, void *ctx)
{
	unsigned int ncmd = 0;
	uint32_t i = first;

	while (i < end) {
		uint32_t stop = end - i > TALLY_ENC_METRICS_PER_CMD ? i + TALLY_ENC_METRICS_PER_CMD
								     : end;

		enc_reset(e);
		enc_arg(e, "HSET");
		enc_arg(e, "tally:{%" PRIu64 "}:%s", dev, suffix);
		if (window != NULL && i == first) {
			enc_arg(e, "window");
			enc_arg(e, "%" PRIu64, *window);
		}
		for (; i < stop; i++)
			enc_series(e, tally_table_at(t, i));
		emit(ctx, e->argc, e->argv, e->argvlen);
		ncmd++;
	}
	return ncmd;
}

static unsigned int
enc_expire(struct tally_encoder *e, uint64_t dev, const char *suffix, uint64_t retention_s,
	   tally_emit_fn emit, void *ctx)
{
	enc_reset(e);
	enc_arg(e, "EXPIRE");
	enc_arg(e, "tally:{%" PRIu64 "}:%s", dev, suffix);
	enc_arg(e, "%" PRIu64, retention_s);
	emit(ctx, e->argc, e->argv, e->argvlen);
	return 1;
}

unsigned int
tally_encode_device(struct tally_encoder *e, const struct tally_table *t, uint32_t *pos,
		    uint64_t start_ms, uint64_t retention_s, tally_emit_fn emit, void *ctx)
{
	uint32_t first = *pos, end = first;
	uint64_t dev;
	char win[24];
	unsigned int n = 0;

	if (first >= t->series)
		return 0;
	dev = tally_table_at(t, first)->device_id;
	while (end < t->series && tally_table_at(t, end)->device_id == dev)
		end++;
	snprintf(win, sizeof(win), "%" PRIu64, start_ms);
	n += enc_hset(e, t, first, end, dev, win, NULL, emit, ctx);
	n += enc_expire(e, dev, win, retention_s, emit, ctx);
	n += enc_hset(e, t, first, end, dev, "latest", &start_ms, emit, ctx);
	n += enc_expire(e, dev, "latest", retention_s, emit, ctx);
	*pos = end;
	return n;
}

unsigned int
tally_encode_device_merge(struct tally_encoder *e, const struct tally_table *t, uint32_t *pos,
			  uint64_t start_ms, uint64_t retention_s, const char *partial_id,
			  tally_emit_fn emit, void *ctx)
{
	uint32_t first = *pos, end = first, i, k = 0;
	unsigned int n = 0;
	uint64_t dev;

	if (first >= t->series)
		return 0;
	dev = tally_table_at(t, first)->device_id;
	while (end < t->series && tally_table_at(t, end)->device_id == dev)
		end++;
	for (i = first; i < end; k++) {
		uint32_t stop = end - i > TALLY_ENC_METRICS_PER_CMD ? i + TALLY_ENC_METRICS_PER_CMD
								     : end;

		enc_reset(e);
		enc_arg(e, "FCALL");
		enc_arg(e, "tally_merge");
		enc_arg(e, "3");
		enc_arg(e, "tally:{%" PRIu64 "}:%" PRIu64, dev, start_ms);
		enc_arg(e, "tally:{%" PRIu64 "}:%" PRIu64 ":meta", dev, start_ms);
		enc_arg(e, "tally:{%" PRIu64 "}:latest", dev);
		/* The id is long (instance, run, chunk): it has a buffer of its own. */
		e->argvlen[e->argc] = (size_t)snprintf(e->id, sizeof(e->id), "%s:%" PRIu32,
							partial_id, k);
		if (e->argvlen[e->argc] >= sizeof(e->id))
			e->argvlen[e->argc] = sizeof(e->id) - 1;
		e->argv[e->argc++] = e->id;
		enc_arg(e, "%" PRIu64, retention_s);
		enc_arg(e, "%" PRIu64, start_ms);
		for (; i < stop; i++) {
			const struct tally_slot *s = tally_table_at(t, i);

			enc_arg(e, "%" PRIu32, s->metric_id);
			enc_arg(e, "%" PRIu64, s->count);
			enc_double(e, s->sum);
			enc_double(e, s->min);
			enc_double(e, s->max);
			enc_double(e, s->last);
			/* zero-padded: the Lua side orders times as strings */
			enc_arg(e, "%020" PRIu64, s->last_ns);
		}
		emit(ctx, e->argc, e->argv, e->argvlen);
		n++;
	}
	*pos = end;
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
	emit(ctx, e->argc, e->argv, e->argvlen);
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
		emit(ctx, e->argc, e->argv, e->argvlen);
		n++;
	}
	n += enc_simple(e, emit, ctx, "SET", "tally:top:window", win);
	n += enc_simple(e, emit, ctx, "EXEC", NULL, NULL);
	return n;
}
