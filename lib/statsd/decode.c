/* SPDX-License-Identifier: BSD-3-Clause */
/* statsd datagrams into batches of records: devices, series ids, sample rates. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tally_hll.h"
#include "tally_statsd.h"

#define FP_SEED 0x5f3759dfull /* the fingerprint's: another hash than the id's */

size_t
tally_statsd_seen_memsize(uint32_t max)
{
	/* two sets (series, devices), each a key and a fingerprint a place */
	return 2 * (size_t)tally_statsd_places(max) * 2 * sizeof(uint64_t);
}

/*
 * A set of at most max ids in mem (2 * tally_statsd_places(max) words); returns the words
 * past it.
 */
static uint64_t *
seen_init(struct tally_statsd_seen *s, uint64_t *mem, uint32_t max)
{
	uint32_t places = tally_statsd_places(max);

	s->e = (struct tally_statsd_seen_entry *)mem;
	s->mask = places - 1;
	s->used = 0;
	s->max = max;
	return mem + 2 * (size_t)places;
}

/*
 * Whether id (not 0) with fingerprint fp is known: 1 known, 0 new (now added at *at), -1
 * another text's (a collision), -2 new but the set is full.
 */
static int
seen_check(struct tally_statsd_seen *s, uint64_t id, uint64_t fp, uint32_t *at)
{
	uint32_t i = (uint32_t)(id ^ id >> 29) & s->mask;

	for (;; i = (i + 1) & s->mask) {
		if (s->e[i].key == id)
			return s->e[i].fp == fp ? 1 : -1;
		if (s->e[i].key == 0)
			break;
	}
	if (s->used >= s->max)
		return -2;
	s->e[i].key = id;
	s->e[i].fp = fp;
	s->used++;
	*at = i;
	return 0;
}

/* Forget the id seen_check() just added at place i (the last of its probe run: no hole). */
static void
seen_undo(struct tally_statsd_seen *s, uint32_t i)
{
	s->e[i].key = 0;
	s->e[i].fp = 0;
	s->used--;
}

int
tally_statsd_dec_init(struct tally_statsd_dec *d, const char *device_tag, unsigned int max_tags,
		      uint32_t max, void *mem, tally_statsd_emit_fn emit, tally_statsd_bad_fn bad,
		      tally_statsd_name_fn on_name, void *ctx)
{
	size_t n = strlen(device_tag);

	if (n == 0 || n >= sizeof(d->device_tag) || strpbrk(device_tag, ":,|#@\r\n") != NULL ||
	    max == 0 || max > (1u << 30) || mem == NULL ||
	    max_tags > TALLY_STATSD_TAGS_MAX)
		return -EINVAL;
	memcpy(d->device_tag, device_tag, n + 1);
	d->device_tag_len = (uint16_t)n;
	d->max_tags = (uint16_t)max_tags;
	seen_init(&d->devices, seen_init(&d->series, mem, max), max);
	d->emit = emit;
	d->bad = bad;
	d->on_name = on_name;
	d->ctx = ctx;
	d->nbatch = 0;
	d->arena_used = 0;
	d->last_dev_len = 0;
	return 0;
}

void
tally_statsd_dec_forget(struct tally_statsd_dec *d)
{
	memset(d->series.e, 0, ((size_t)d->series.mask + 1) * sizeof(d->series.e[0]));
	memset(d->devices.e, 0, ((size_t)d->devices.mask + 1) * sizeof(d->devices.e[0]));
	d->series.used = 0;
	d->devices.used = 0;
	d->last_dev_len = 0;
}

void
tally_statsd_flush(struct tally_statsd_dec *d)
{
	if (d->nbatch > 0)
		d->emit(d->ctx, d->batch, (uint16_t)d->nbatch);
	d->nbatch = 0;
	d->arena_used = 0;
}

/* Room for n more records, in the current batch (same device and time) or a new one. */
static struct tally_wire_hdr *
batch_for(struct tally_statsd_dec *d, uint64_t device_id, uint64_t time_ns, uint32_t n)
{
	struct tally_wire_hdr *h = d->nbatch > 0 ? (struct tally_wire_hdr *)(uintptr_t)
							   d->batch[d->nbatch - 1]
						 : NULL;

	if (h != NULL && h->device_id == device_id && h->time_ns == time_ns &&
	    h->count + n <= UINT16_MAX && d->arena_used + n * TALLY_WIRE_REC_LEN <= TALLY_STATSD_ARENA)
		return h;
	if (d->nbatch == TALLY_STATSD_BATCHES ||
	    d->arena_used + TALLY_WIRE_HDR_LEN + n * TALLY_WIRE_REC_LEN > TALLY_STATSD_ARENA)
		tally_statsd_flush(d);
	h = (struct tally_wire_hdr *)(d->arena + d->arena_used);
	tally_wire_put_hdr((uint8_t *)h, 0, device_id, 0, time_ns);
	d->arena_used += TALLY_WIRE_HDR_LEN;
	d->batch[d->nbatch++] = h;
	return h;
}

static void
put_rec(struct tally_statsd_dec *d, struct tally_wire_hdr *h, uint32_t metric_id, uint8_t kind,
	double v, uint32_t weight)
{
	struct tally_wire_rec *r = (struct tally_wire_rec *)(d->arena + d->arena_used);

	r->metric_id = metric_id;
	r->kind = kind;
	r->reserved[0] = 0;
	r->reserved[1] = (uint8_t)(weight - 1);
	r->reserved[2] = (uint8_t)((weight - 1) >> 8);
	r->value = v;
	d->arena_used += TALLY_WIRE_REC_LEN;
	h->count++;
}

static int
tag_cmp(const struct tally_statsd_tag *a, const struct tally_statsd_tag *b)
{
	uint16_t n = a->len < b->len ? a->len : b->len;
	int c = memcmp(a->p, b->p, n);

	return c != 0 ? c : (int)a->len - (int)b->len;
}

/*
 * The line's device (its name into d->device_text) and series text (d->series_text): the
 * device tag's value, or the sender's address; the name, then the other tags sorted.
 * 0, or 1 + reason.
 */
static int
line_ids(struct tally_statsd_dec *d, const uint8_t *src, uint8_t src_len, uint32_t *dev_len,
	 uint32_t *ser_len)
{
	struct tally_statsd_line *l = &d->line;
	const struct tally_statsd_tag *order[TALLY_STATSD_TAGS_MAX];
	uint32_t i, j, n = 0, len;
	int found = 0;

	for (i = 0; i < l->ntags; i++) {
		const struct tally_statsd_tag *t = &l->tags[i];

		if (!found && t->len > d->device_tag_len && t->p[d->device_tag_len] == ':' &&
		    memcmp(t->p, d->device_tag, d->device_tag_len) == 0) {
			len = t->len - d->device_tag_len - 1u;
			if (len == 0 || len >= sizeof(d->device_text))
				return 1 + (len == 0 ? TALLY_STATSD_BAD_TAG : TALLY_STATSD_TOO_LONG);
			memcpy(d->device_text, t->p + d->device_tag_len + 1, len);
			*dev_len = len;
			found = 1;
			continue;
		}
		/* insertion sort: a line has a few tags */
		for (j = n; j > 0 && tag_cmp(order[j - 1], t) > 0; j--)
			order[j] = order[j - 1];
		order[j] = t;
		n++;
	}
	if (!found) {
		/* the sender's address as text: written once a datagram, when a line needs it */
		if (d->src_text_len == 0) {
			if (src_len == 4) {
				len = (uint32_t)snprintf(d->src_text, sizeof(d->src_text),
							 "%u.%u.%u.%u", src[0], src[1], src[2],
							 src[3]);
			} else {
				len = 0;
				for (i = 0; i < 16; i += 2)
					len += (uint32_t)snprintf(d->src_text + len,
								  sizeof(d->src_text) - len, "%s%x",
								  i ? ":" : "",
								  src[i] << 8 | src[i + 1]);
			}
			d->src_text_len = (uint16_t)len;
		}
		memcpy(d->device_text, d->src_text, d->src_text_len);
		*dev_len = d->src_text_len;
	}
	len = l->name_len;
	memcpy(d->series_text, l->name, len);
	for (i = 0; i < n; i++) {
		if (len + order[i]->len + 2 > sizeof(d->series_text))
			return 1 + TALLY_STATSD_TOO_LONG;
		d->series_text[len++] = i == 0 ? '{' : ',';
		memcpy(d->series_text + len, order[i]->p, order[i]->len);
		len += order[i]->len;
	}
	if (n > 0)
		d->series_text[len++] = '}';
	*ser_len = len;
	return 0;
}

/*
 * Check one id against its seen-set: 0 (in the set), -1 (new, reported, but not kept: the
 * report was not taken), or 1 + reason. New ones are reported.
 */
static int
check_id(struct tally_statsd_dec *d, struct tally_statsd_seen *s, int what, uint64_t id,
	 const char *text, uint32_t len)
{
	/* a metric id may be 0: the set's key is never 0 */
	uint32_t at = 0;
	int rc = seen_check(s, what == TALLY_STATSD_NAME_SERIES ? id + 1 : id,
			    tally_murmur64a(text, len, FP_SEED), &at);

	if (rc == 1)
		return 0;
	if (rc == -1)
		return 1 + TALLY_STATSD_COLLISION;
	if (rc == -2)
		return 1 + TALLY_STATSD_SERIES_FULL;
	/* not taken now (the ring to the sink thread is full): told again at the next line */
	if (d->on_name != NULL && d->on_name(d->ctx, what, id, text, len) != 0) {
		seen_undo(s, at);
		return -1;
	}
	return 0;
}

/* One parsed line into records; 0, or 1 + reason. */
static int
take_line(struct tally_statsd_dec *d, const uint8_t *src, uint8_t src_len, uint64_t now_ns)
{
	struct tally_statsd_line *l = &d->line;
	uint32_t dev_len, ser_len, metric_id, i, weight = 1, n;
	uint64_t device_id, time_ns = l->ts_s > 0 ? (uint64_t)l->ts_s * 1000000000ull : now_ns;
	struct tally_wire_hdr *h;
	int rc = line_ids(d, src, src_len, &dev_len, &ser_len);

	if (rc != 0)
		return rc;
	if (dev_len == d->last_dev_len && memcmp(d->device_text, d->last_dev, dev_len) == 0) {
		device_id = d->last_dev_id; /* the last line's: hashed and checked then */
	} else {
		device_id = tally_statsd_device_id(d->device_text, dev_len);
		rc = check_id(d, &d->devices, TALLY_STATSD_NAME_DEVICE, device_id, d->device_text,
			      dev_len);
		if (rc > 0)
			return rc;
		d->last_dev_len = rc == 0 ? (uint16_t)dev_len : 0;
		memcpy(d->last_dev, d->device_text, dev_len);
		d->last_dev_id = device_id;
	}
	metric_id = tally_statsd_metric_id(d->series_text, ser_len);
	rc = check_id(d, &d->series, TALLY_STATSD_NAME_SERIES, metric_id, d->series_text, ser_len);
	if (rc > 0)
		return rc;
	n = l->type == TALLY_STATSD_SET ? 1 : l->nvalues;
	h = batch_for(d, device_id, time_ns, n);
	switch (l->type) {
	case TALLY_STATSD_COUNTER:
		for (i = 0; i < n; i++)
			put_rec(d, h, metric_id, TALLY_KIND_COUNTER, l->values[i] / l->rate, 1);
		break;
	case TALLY_STATSD_GAUGE:
		for (i = 0; i < n; i++)
			put_rec(d, h, metric_id,
				l->delta ? TALLY_KIND_EXT | TALLY_KIND_GAUGE : TALLY_KIND_GAUGE,
				l->values[i], 1);
		break;
	case TALLY_STATSD_SET: {
		uint64_t e = tally_murmur64a(l->member, l->member_len, TALLY_HLL_SEED);
		double v;

		memcpy(&v, &e, sizeof(v));
		put_rec(d, h, metric_id, TALLY_KIND_DISTINCT, v, 1);
		break;
	}
	default: /* ms, h, d: a histogram, each value standing for 1/rate of them */
		if (l->rate < 1) {
			double w = floor(1 / l->rate + 0.5);

			weight = w >= TALLY_STATSD_WEIGHT_MAX ? TALLY_STATSD_WEIGHT_MAX : (uint32_t)w;
		}
		for (i = 0; i < n; i++)
			put_rec(d, h, metric_id,
				weight > 1 ? TALLY_KIND_EXT | TALLY_KIND_HISTOGRAM
					   : TALLY_KIND_HISTOGRAM,
				l->values[i], weight);
		break;
	}
	return 0;
}

uint32_t
tally_statsd_decode(struct tally_statsd_dec *d, const uint8_t *payload, uint32_t len,
		    const uint8_t *src, uint8_t src_len, uint64_t now_ns)
{
	const char *p = (const char *)payload, *end = p + len;
	uint32_t line = 0, taken = 0;

	d->src_text_len = 0;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *e = nl != NULL ? nl : end;
		uint32_t n = (uint32_t)(e - p);
		int rc;

		if (n > 0 && !(n == 1 && *p == '\r')) {
			rc = tally_statsd_parse_line(p, n, d->max_tags, &d->line);
			if (rc == 0)
				rc = take_line(d, src, src_len, now_ns);
			if (rc != 0)
				d->bad(d->ctx, (unsigned int)rc - 1, line);
			else
				taken++;
		}
		line++;
		p = nl != NULL ? nl + 1 : end;
	}
	return taken;
}
