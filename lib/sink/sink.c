/* SPDX-License-Identifier: BSD-3-Clause */
/* The Redis sink: one hiredis connection, pipelined micro-batches, off the poll-mode path. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "tally_auth.h"
#include "tally_sink.h"


struct tally_sink {
	struct tally_sink_conf conf;
	char host[256];
	char user[TALLY_AUTH_USER_MAX + 1];
	char password[TALLY_AUTH_PASSWORD_SIZE]; /* AUTH again at every reconnect; zeroed at free */
	char partial_id[128];
	redisContext *ctx;
	struct tally_sink_stats st;
	uint64_t pending;          /* commands appended whose replies are not read yet */
	uint64_t first_pending_ms; /* when the oldest of them was appended */
	uint64_t now_ms;           /* time of the current poll, for emit() */
	uint64_t retry_at_ms;      /* open breaker: when the next probe may go */
	uint64_t backoff_ms;       /* the next open period, before jitter */
	uint32_t failures;         /* consecutive */
	uint64_t rng;
	struct tally_table *win;   /* window being written, or NULL */
	char win_id[128];          /* its partial id */
	uint64_t win_start;
	uint32_t win_pos;          /* next series to encode */
	struct tally_top top;      /* heaviest devices of the window being written */
	uint64_t top_window;       /* the window tally:top describes */
	struct tally_encoder enc;
};

static redisContext *
sink_connect(const struct tally_sink_conf *c, char *err, size_t errlen)
{
	struct timeval tv = {
		.tv_sec = (time_t)(c->timeout_ms / 1000),
		.tv_usec = (suseconds_t)(c->timeout_ms % 1000) * 1000,
	};
	redisContext *ctx;
	redisReply *r;

	ctx = redisConnectWithTimeout(c->host, c->port, tv);
	if (ctx == NULL || ctx->err) {
		snprintf(err, errlen, "cannot connect to Redis at %s:%u: %s", c->host, c->port,
			 ctx ? ctx->errstr : "out of memory");
		goto fail;
	}
	if (redisSetTimeout(ctx, tv) != REDIS_OK) {
		snprintf(err, errlen, "cannot set Redis timeout: %s", ctx->errstr);
		goto fail;
	}
	if (tally_redis_auth(ctx, c->user, c->password, err, errlen) != 0)
		goto fail;
	r = redisCommand(ctx, "PING");
	if (r == NULL || r->type == REDIS_REPLY_ERROR) {
		snprintf(err, errlen, "Redis at %s:%u does not answer PING: %s", c->host, c->port,
			 r ? r->str : ctx->errstr);
		if (r != NULL)
			freeReplyObject(r);
		goto fail;
	}
	freeReplyObject(r);
	if (c->merge) {
		/* Loaded at every connect: a restarted Redis may have lost it. */
		r = redisCommand(ctx, "FUNCTION LOAD REPLACE %s", tally_merge_lua);
		if (r == NULL || r->type == REDIS_REPLY_ERROR) {
			snprintf(err, errlen,
				 "Redis at %s:%u cannot load the tally_merge function (Redis 7 "
				 "needed, or --redis-write hset): %s",
				 c->host, c->port, r ? r->str : ctx->errstr);
			if (r != NULL)
				freeReplyObject(r);
			goto fail;
		}
		freeReplyObject(r);
	}
	return ctx;
fail:
	if (ctx != NULL)
		redisFree(ctx);
	return NULL;
}

struct tally_sink *
tally_sink_create(const struct tally_sink_conf *conf, char *err, size_t errlen)
{
	struct tally_sink *s;

	if (conf == NULL || conf->host == NULL || conf->flush_batch == 0 || conf->window_ms == 0) {
		snprintf(err, errlen, "invalid sink configuration");
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->conf = *conf;
	snprintf(s->host, sizeof(s->host), "%s", conf->host);
	s->conf.host = s->host;
	if ((conf->user && strlen(conf->user) >= sizeof(s->user)) ||
	    (conf->password && strlen(conf->password) >= sizeof(s->password))) {
		snprintf(err, errlen, "Redis user or password too long");
		free(s);
		return NULL;
	}
	snprintf(s->user, sizeof(s->user), "%s", conf->user ? conf->user : "");
	snprintf(s->password, sizeof(s->password), "%s", conf->password ? conf->password : "");
	s->conf.user = s->user;
	s->conf.password = s->password;
	snprintf(s->partial_id, sizeof(s->partial_id), "%s",
		 conf->partial_id ? conf->partial_id : "tally");
	s->conf.partial_id = s->partial_id;
	s->backoff_ms = s->conf.backoff_ms ? s->conf.backoff_ms : 100;
	s->rng = 0x9e3779b97f4a7c15ULL ^ (uint64_t)(uintptr_t)s;
	s->ctx = sink_connect(&s->conf, err, errlen);
	if (s->ctx == NULL) {
		if (!s->conf.start_open) {
			explicit_bzero(s->password, sizeof(s->password));
			free(s);
			return NULL;
		}
		/* Start with the breaker open: the first probe goes after one backoff. */
		s->st.breaker_state = TALLY_BREAKER_OPEN;
		s->st.breaker_opens++;
	}
	return s;
}

void
tally_sink_free(struct tally_sink *s)
{
	if (s == NULL)
		return;
	if (s->ctx != NULL)
		redisFree(s->ctx);
	explicit_bzero(s->password, sizeof(s->password));
	free(s);
}

/* Next open period: the backoff with +-50% jitter, then double it up to the cap. */
static uint64_t
next_backoff(struct tally_sink *s)
{
	uint64_t b = s->backoff_ms, j;

	s->rng ^= s->rng << 13;
	s->rng ^= s->rng >> 7;
	s->rng ^= s->rng << 17;
	j = b / 2 + s->rng % (b + 1);
	s->backoff_ms = b * 2 > s->conf.backoff_max_ms ? s->conf.backoff_max_ms : b * 2;
	if (s->backoff_ms == 0)
		s->backoff_ms = 1;
	return j;
}

static void
breaker_open(struct tally_sink *s)
{
	if (s->st.breaker_state != TALLY_BREAKER_OPEN)
		s->st.breaker_opens++;
	s->st.breaker_state = TALLY_BREAKER_OPEN;
	s->retry_at_ms = s->now_ms + next_backoff(s);
}

/*
 * A flush or connect failed: drop the connection, count the commands lost with it, and
 * start the window being written over (its merges are idempotent) once Redis is back.
 */
static void
sink_fail(struct tally_sink *s)
{
	s->st.errors += s->pending;
	s->st.failures++;
	s->pending = 0;
	if (s->ctx != NULL)
		redisFree(s->ctx);
	s->ctx = NULL;
	if (s->win != NULL && s->win_pos > 0) {
		s->win_pos = 0;
		tally_top_reset(&s->top);
		s->st.window_retries++;
	}
	if (++s->failures >= s->conf.breaker_failures ||
	    s->st.breaker_state == TALLY_BREAKER_HALF_OPEN)
		breaker_open(s);
}

static void
emit(void *arg, int argc, const char **argv, const size_t *argvlen)
{
	struct tally_sink *s = arg;

	if (s->ctx == NULL || s->st.breaker_state != TALLY_BREAKER_CLOSED ||
	    redisAppendCommandArgv(s->ctx, argc, argv, argvlen) != REDIS_OK) {
		s->st.errors++;
		return;
	}
	if (s->pending++ == 0)
		s->first_pending_ms = s->now_ms;
}

void
tally_sink_command(struct tally_sink *s, int argc, const char **argv, const size_t *argvlen)
{
	emit(s, argc, argv, argvlen);
}

/* Read the reply of every pending command: one round trip for the whole batch. */
static int
sink_flush(struct tally_sink *s)
{
	uint64_t refused = 0;

	if (s->pending == 0 || s->ctx == NULL)
		return 0;
	s->st.batches++;
	while (s->pending > 0) {
		redisReply *r = NULL;

		if (redisGetReply(s->ctx, (void **)&r) != REDIS_OK || r == NULL) {
			sink_fail(s);
			return -EIO;
		}
		s->pending--;
		if (r->type == REDIS_REPLY_ERROR)
			refused++;
		else
			s->st.commands++;
		freeReplyObject(r);
	}
	if (refused > 0) {
		/*
		 * Redis refused commands (-OOM, -READONLY, ...): the window is not written. It is
		 * kept and written again (merges are idempotent) once the breaker lets it, or
		 * spooled meanwhile.
		 */
		s->st.errors += refused;
		sink_fail(s);
		return -EIO;
	}
	s->failures = 0;
	return 0;
}

int
tally_sink_write_window(struct tally_sink *s, struct tally_table *t, uint64_t start_ms,
			const char *partial_id)
{
	if (s->win != NULL)
		return -EBUSY;
	tally_table_sort(t);
	s->win = t;
	s->win_start = start_ms;
	s->win_pos = 0;
	snprintf(s->win_id, sizeof(s->win_id), "%s", partial_id ? partial_id : s->partial_id);
	tally_top_reset(&s->top);
	return 0;
}

struct tally_table *
tally_sink_take_back(struct tally_sink *s, uint64_t *start_ms)
{
	struct tally_table *t = s->win;

	if (t == NULL)
		return NULL;
	*start_ms = s->win_start;
	s->win = NULL;
	s->win_pos = 0;
	return t;
}

int
tally_sink_available(const struct tally_sink *s)
{
	return s->st.breaker_state == TALLY_BREAKER_CLOSED;
}

/* Closed: reconnect at once after a failure. Open: probe once the backoff is over. */
static void
sink_reconnect(struct tally_sink *s)
{
	char err[256];

	if (s->ctx != NULL)
		return;
	if (s->st.breaker_state == TALLY_BREAKER_OPEN) {
		if (s->now_ms < s->retry_at_ms)
			return;
		s->st.breaker_state = TALLY_BREAKER_HALF_OPEN;
	}
	s->ctx = sink_connect(&s->conf, err, sizeof(err));
	if (s->ctx == NULL) {
		s->st.failures++;
		if (++s->failures >= s->conf.breaker_failures ||
		    s->st.breaker_state == TALLY_BREAKER_HALF_OPEN)
			breaker_open(s);
		return;
	}
	s->st.breaker_state = TALLY_BREAKER_CLOSED;
	s->failures = 0;
	s->backoff_ms = s->conf.backoff_ms ? s->conf.backoff_ms : 100;
}

struct tally_table *
tally_sink_poll(struct tally_sink *s, uint64_t now_ms)
{
	struct tally_table *done;

	s->now_ms = now_ms;
	sink_reconnect(s);
	if (s->ctx == NULL || s->st.breaker_state != TALLY_BREAKER_CLOSED)
		return NULL;
	while (s->win != NULL && s->win_pos < s->win->series && s->pending < s->conf.flush_batch) {
		uint32_t first = s->win_pos, i;
		uint64_t records = 0;

		if (s->conf.merge)
			tally_encode_device_merge(&s->enc, s->win, &s->win_pos, s->win_start,
						  s->conf.retention_s, s->win_id, emit, s);
		else
			tally_encode_device(&s->enc, s->win, &s->win_pos, s->win_start,
					    s->conf.retention_s, emit, s);
		for (i = first; i < s->win_pos; i++)
			records += tally_table_at(s->win, i)->count;
		tally_top_add(&s->top, tally_table_at(s->win, first)->device_id, records);
		/* A replayed older window must not replace the newest window's top. */
		if (s->win_pos == s->win->series && s->win_start >= s->top_window) {
			tally_encode_top(&s->enc, &s->top, s->win_start, emit, s);
			s->top_window = s->win_start;
		}
	}
	if (s->pending >= s->conf.flush_batch ||
	    (s->pending > 0 && now_ms - s->first_pending_ms >= s->conf.flush_ms))
		sink_flush(s);
	if (s->win == NULL || s->win_pos < s->win->series || s->pending > 0)
		return NULL;
	done = s->win;
	s->win = NULL;
	s->st.windows_flushed++;
	s->st.flush_lag_ms = now_ms - (s->win_start + s->conf.window_ms);
	if (now_ms < s->win_start + s->conf.window_ms)
		s->st.flush_lag_ms = 0;
	return done;
}

int
tally_sink_sync(struct tally_sink *s, uint64_t now_ms)
{
	s->now_ms = now_ms;
	if (s->ctx == NULL)
		return -EIO;
	return sink_flush(s);
}

int
tally_sink_writing(const struct tally_sink *s)
{
	return s->win != NULL;
}

const struct tally_sink_stats *
tally_sink_stats(const struct tally_sink *s)
{
	return &s->st;
}
