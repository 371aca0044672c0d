/* SPDX-License-Identifier: BSD-3-Clause */
/* Delivery of closed windows: the sink first, the spool when it cannot take them, replay. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "tally_delivery.h"
#include "tally_sink.h"

static void dlv_log(struct tally_delivery *d, int warning, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
dlv_log(struct tally_delivery *d, int warning, const char *fmt, ...)
{
	char line[256];
	va_list ap;

	if (d->conf.log == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	d->conf.log(d->conf.log_arg, warning, line);
}

int
tally_delivery_init(struct tally_delivery *d, const struct tally_delivery_conf *conf)
{
	if (d == NULL || conf == NULL || conf->ops == NULL ||
	    (conf->spool != NULL && conf->replay == NULL) ||
	    conf->queue_max >= TALLY_DELIVERY_MAX_QUEUE)
		return -EINVAL;
	memset(d, 0, sizeof(*d));
	d->conf = *conf;
	return 0;
}

void
tally_delivery_fini(struct tally_delivery *d)
{
	if (d->replaying)
		tally_spool_iter_close(&d->it);
	d->replaying = 0;
}

int
tally_delivery_add(struct tally_delivery *d, struct tally_table *t, uint64_t start_ms)
{
	if (d->qn >= TALLY_DELIVERY_MAX_QUEUE)
		return -ENOSPC;
	d->q[d->qn].t = t;
	d->q[d->qn].start = start_ms;
	d->qn++;
	return 0;
}

struct tally_table *
tally_delivery_release(struct tally_delivery *d)
{
	return d->nout > 0 ? d->out[--d->nout] : NULL;
}

static void
give_out(struct tally_delivery *d, uint32_t i)
{
	d->out[d->nout++] = d->q[i].t;
	memmove(&d->q[i], &d->q[i + 1], sizeof(d->q[0]) * (d->qn - i - 1));
	d->qn--;
	if (i == 0)
		d->q0_writing = 0;
}

/*
 * Put a held window in the spool (or, without one, give it up) and release its table: 1.
 * A spool that fails (a full or read-only disk) is no reason to lose a window while memory
 * holds it: with may_keep it stays queued (0), and the spool is tried again a second later.
 */
static int
spool_held(struct tally_delivery *d, uint32_t i, int may_keep)
{
	struct tally_spool *sp = d->conf.spool;
	struct tally_table *t = d->q[i].t;
	int rc;

	if (sp == NULL) {
		d->st.unwritten++;
		d->st.unwritten_records += t->records;
		dlv_log(d, 1, "window %" PRIu64 ": %u series given up unwritten", d->q[i].start,
			t->series);
		give_out(d, i);
		return 1;
	}
	if (d->spool_failing && may_keep && d->now_ms < d->spool_retry_ms)
		return 0;
	if (d->conf.sort_scratch != NULL)
		tally_table_sort_fast(t, d->conf.sort_scratch);
	else
		tally_table_sort(t);
	rc = tally_spool_append(sp, d->q[i].start, d->conf.partial_id, t, d->conf.names);
	if (rc == -EIO) {
		if (!d->spool_failing)
			dlv_log(d, 1, "spool %s: a write failed: %s; windows wait in memory", sp->dir,
				strerror(sp->st.last_errno));
		d->spool_failing = 1;
		d->spool_retry_ms = d->now_ms + 1000;
		if (may_keep)
			return 0;
		d->st.spool_lost += t->records;
		dlv_log(d, 1,
			"window %" PRIu64 ": %" PRIu64 " records lost: the spool failed (%s) and "
			"the sink queue is full",
			d->q[i].start, t->records, strerror(sp->st.last_errno));
	} else if (rc != 0) {
		d->st.spool_lost += t->records;
		dlv_log(d, 1,
			"window %" PRIu64 ": %" PRIu64 " records not spooled: the spool is at "
			"--spool-max-mb",
			d->q[i].start, t->records);
	} else if (d->spool_failing) {
		d->spool_failing = 0;
		dlv_log(d, 0, "spool %s takes writes again", sp->dir);
	}
	give_out(d, i);
	return 1;
}

/* The sink gave the replay table back unwritten: that record is replayed again later. */
static void
replay_back(struct tally_delivery *d)
{
	tally_table_reset(d->conf.replay);
	d->replay_writing = 0;
	if (d->replaying) {
		/* From the start of the segment next time: merges are idempotent. */
		tally_spool_iter_close(&d->it);
		d->replaying = 0;
	}
}

/* Next spooled record to the sink, when it has nothing newer to write. */
static unsigned int
replay_step(struct tally_delivery *d)
{
	struct tally_spool *sp = d->conf.spool;
	struct tally_table *rt = d->conf.replay;
	struct tally_spool_rec rec;
	const uint8_t *side;
	uint32_t i;
	int rc;

	if (!d->replaying) {
		if (tally_spool_iter_open(sp, &d->it) != 0)
			return 0;
		d->replaying = 1;
	}
	rc = tally_spool_iter_next(sp, &d->it, &rec);
	if (rc != 1) {
		/* Every record of the segment is acknowledged (or was damaged): remove it. */
		tally_spool_iter_close(&d->it);
		d->replaying = 0;
		if (rc == 0)
			tally_spool_remove_oldest(sp);
		return 1;
	}
	tally_table_reset(rt);
	/* names first: the sink writes the record's statsd series under them */
	tally_spool_rec_names(&rec, d->conf.names);
	side = rec.side;
	for (i = 0; i < rec.nseries; i++) {
		const struct tally_spool_series *x = &rec.series[i];
		struct tally_slot from = {.device_id = x->device_id, .metric_id = x->metric_id,
					  .kind = x->kind, .used = 1, .count = x->count,
					  .sum = x->sum, .min = x->min, .max = x->max,
					  .last = x->last, .last_ns = x->last_ns};
		struct tally_slot *to = tally_table_lookup(rt, x->device_id,
							   tally_hash_device(x->device_id),
							   x->metric_id);
		const uint8_t *blob = NULL;
		size_t len = 0;

		if (tally_kind_side(x->kind) && rec.has_side) {
			/* the lengths were checked against the record's bytes when it was read */
			blob = side;
			len = (size_t)x->last_ns;
			if (len > (size_t)(rec.side + rec.side_len - side))
				len = 0;
			side += len;
			from.side = 0;
			from.last_ns = 0; /* the side length it carried: the state is in blob */
		} else if (!tally_kind_side(x->kind) || !rec.has_side) {
			from.kind = (uint8_t)tally_kind_of(x->kind);
			if (tally_kind_side(from.kind))
				from.kind = TALLY_KIND_GAUGE; /* an older version's: a gauge then */
		}
		if (to == NULL) {
			d->st.spool_lost += x->count;
			continue;
		}
		if (tally_table_fold_bytes(rt, to, &from, len > 0 ? blob : NULL, len) != 0)
			d->st.spool_lost += x->count;
	}
	d->conf.ops->write_window(d->conf.sink, rt, rec.window_start, rec.partial_id);
	d->replay_writing = 1;
	return 1;
}

/* The sink handed a table back (written, or taken back): put it where it belongs. */
static void
sink_done(struct tally_delivery *d, struct tally_table *t, int written)
{
	if (t == d->conf.replay) {
		if (written) {
			tally_table_reset(t);
			d->replay_writing = 0;
		} else {
			replay_back(d);
		}
		return;
	}
	if (d->qn > 0 && d->q[0].t == t) {
		if (written)
			give_out(d, 0);
		else
			d->q0_writing = 0;
	}
}

unsigned int
tally_delivery_step(struct tally_delivery *d, uint64_t now_ms, int quitting)
{
	const struct tally_sink_ops *ops = d->conf.ops;
	struct tally_table *t;
	uint64_t start;
	unsigned int work = 0;

	d->now_ms = now_ms;
	if (!ops->available(d->conf.sink)) {
		if (d->conf.spool != NULL) {
			/* The breaker is open: what waits goes to disk, so memory stays flat. */
			t = ops->take_back(d->conf.sink, &start);
			if (t != NULL) {
				sink_done(d, t, 0);
				work++;
			}
			/* What memory can hold waits there while the spool fails. */
			while (d->qn > 0 && spool_held(d, 0, d->qn <= d->conf.queue_max + 1))
				work++;
		}
	} else {
		if (!ops->writing(d->conf.sink)) {
			if (d->qn > 0) {
				ops->write_window(d->conf.sink, d->q[0].t, d->q[0].start, NULL);
				d->q0_writing = 1;
				work++;
			} else if (d->conf.spool != NULL && !quitting) {
				work += replay_step(d);
			}
		}
		/* The queue is full: the oldest window not being written waits on disk instead. */
		while (d->conf.spool != NULL &&
		       d->qn > d->conf.queue_max + (uint32_t)d->q0_writing) {
			spool_held(d, d->q0_writing ? 1 : 0, 0);
			work++;
		}
	}
	/* With the breaker open this is its probe; a window may complete in it all the same. */
	t = ops->poll(d->conf.sink, now_ms);
	if (t != NULL) {
		sink_done(d, t, 1);
		work++;
	}
	return work;
}

void
tally_delivery_flush_to_spool(struct tally_delivery *d)
{
	struct tally_table *t;
	uint64_t start;

	t = d->conf.ops->take_back(d->conf.sink, &start);
	if (t != NULL)
		sink_done(d, t, 0);
	while (d->qn > 0)
		spool_held(d, 0, 0);
}

int
tally_delivery_idle(const struct tally_delivery *d)
{
	return d->qn == 0 && !d->replay_writing && d->nout == 0;
}

uint32_t
tally_delivery_held(const struct tally_delivery *d)
{
	return d->qn;
}

/* The Redis sink behind the ops table. */
static int
redis_available(const void *s)
{
	return tally_sink_available(s);
}

static int
redis_write_window(void *s, struct tally_table *t, uint64_t start_ms, const char *partial_id)
{
	return tally_sink_write_window(s, t, start_ms, partial_id);
}

static struct tally_table *
redis_take_back(void *s, uint64_t *start_ms)
{
	return tally_sink_take_back(s, start_ms);
}

static struct tally_table *
redis_poll(void *s, uint64_t now_ms)
{
	return tally_sink_poll(s, now_ms);
}

static int
redis_writing(const void *s)
{
	return tally_sink_writing(s);
}

const struct tally_sink_ops tally_redis_sink_ops = {
	.available = redis_available,
	.write_window = redis_write_window,
	.take_back = redis_take_back,
	.poll = redis_poll,
	.writing = redis_writing,
};
