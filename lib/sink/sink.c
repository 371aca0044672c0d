/* SPDX-License-Identifier: BSD-3-Clause */
/* The Redis sink: one hiredis connection, pipelined micro-batches, off the poll-mode path. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "tally_auth.h"
#include "tally_sink.h"

/* What a pipelined command was, so its reply can be put down to what it carried. */
enum pend_kind {
	PEND_OTHER, /* stats, top, expiry, latest: an error is counted and logged */
	PEND_DATA,  /* window data: device chunks (ref) */
	PEND_COPY,  /* a refused chunk's copy to tally:refused */
};

struct pend {
	uint8_t kind;
	uint8_t entries;
	uint32_t first;
};

/* How a reply is handled. */
enum reply_class {
	REPLY_OK,
	REPLY_NOT_NOW, /* Redis cannot take it now (OOM, LOADING, ...): the breaker's business */
	REPLY_DATA,    /* refused for what it carries (WRONGTYPE, a script error): isolate it */
};

#define REFUSED_LOG_MS 5000 /* at most one line per this long about refused writes */
#define REFUSED_JSON_MAX 16384

struct tally_sink {
	struct tally_sink_conf conf;
	char host[256];
	char user[TALLY_AUTH_USER_MAX + 1];
	char password[TALLY_AUTH_PASSWORD_SIZE]; /* AUTH again at every reconnect; zeroed at free */
	char partial_id[TALLY_ENC_ID_LEN];
	redisContext *ctx;
	struct tally_sink_stats st;
	uint64_t pending;          /* commands appended whose replies are not read yet */
	uint64_t pending_cost;	   /* the device chunks (1 for other commands) they carry */
	struct pend *pend;	   /* a ring of what each pending command is */
	uint64_t pend_cap, pend_head;
	uint64_t first_pending_ms; /* when the oldest of them was appended */
	uint64_t now_ms;           /* time of the current poll, for emit() */
	uint64_t retry_at_ms;      /* open breaker: when the next probe may go */
	uint64_t backoff_ms;       /* the next open period, before jitter */
	uint32_t failures;         /* consecutive */
	uint64_t rng;
	struct tally_table *win;   /* window being written, or NULL */
	char win_id[TALLY_ENC_ID_LEN]; /* its partial id */
	uint64_t win_start;
	uint32_t win_pos;          /* next series to encode */
	struct tally_top top;      /* heaviest devices of the window being written */
	uint64_t top_window;       /* the window tally:top describes */
	uint64_t top_dev;	   /* device whose records are being summed for the top */
	uint64_t top_records;
	uint64_t refused_log_ms;   /* when refusals were last logged */
	uint64_t refused_unlogged; /* refusals since */
	char refused_json[REFUSED_JSON_MAX];
	struct tally_encoder enc;
};

/*
 * Connect, authenticate, PING, load the Function. NULL on failure, with a one-line reason in
 * err, and *refused set when Redis answered but will not let tally in (a wrong password, no
 * permission, no Functions): a configuration error rather than an outage.
 */
static redisContext *
sink_connect(const struct tally_sink_conf *c, char *err, size_t errlen, int *refused)
{
	struct timeval tv = {
		.tv_sec = (time_t)(c->timeout_ms / 1000),
		.tv_usec = (suseconds_t)(c->timeout_ms % 1000) * 1000,
	};
	redisContext *ctx;
	redisReply *r;

	*refused = 0;
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
	if (tally_redis_auth(ctx, c->user, c->password, err, errlen) != 0) {
		*refused = ctx->err == 0;
		goto fail;
	}
	r = redisCommand(ctx, "PING");
	if (r == NULL || r->type == REDIS_REPLY_ERROR) {
		int noauth = r != NULL && strncmp(r->str, "NOAUTH", 6) == 0;

		snprintf(err, errlen, "Redis at %s:%u does not answer PING: %s%s", c->host, c->port,
			 r ? r->str : ctx->errstr,
			 noauth ? " (give the password with --redis-password-file)" : "");
		*refused = noauth || (r != NULL && strncmp(r->str, "NOPERM", 6) == 0);
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
				 "Redis at %s:%u cannot load the tally_merge2 function (Redis 7 "
				 "needed, or --redis-write hset): %s",
				 c->host, c->port, r ? r->str : ctx->errstr);
			/* LOADING or BUSY pass; an old Redis or an ACL that forbids it does not */
			*refused = r != NULL && strncmp(r->str, "LOADING", 7) != 0 &&
				   strncmp(r->str, "BUSY", 4) != 0;
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
	int refused;

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
	/*
	 * Room for a full batch, and for the two commands that keep a copy of each refused
	 * chunk, which are appended while the batch's replies are read.
	 */
	s->pend_cap = (s->conf.flush_batch + 64) * (1 + 2 * TALLY_ENC_ENTRIES_PER_CALL);
	s->pend = calloc(s->pend_cap, sizeof(*s->pend));
	if (s->pend == NULL) {
		snprintf(err, errlen, "out of memory");
		free(s);
		return NULL;
	}
	s->ctx = sink_connect(&s->conf, err, errlen, &refused);
	if (s->ctx == NULL) {
		/* Down at start is survivable with a spool; refused (a wrong password) is not. */
		if (!s->conf.start_open || refused) {
			explicit_bzero(s->password, sizeof(s->password));
			free(s->pend);
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
	free(s->pend);
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
	s->pending_cost = 0;
	if (s->ctx != NULL)
		redisFree(s->ctx);
	s->ctx = NULL;
	if (s->win != NULL && s->win_pos > 0) {
		s->win_pos = 0;
		tally_top_reset(&s->top);
		s->top_records = 0;
		s->st.window_retries++;
	}
	if (++s->failures >= s->conf.breaker_failures ||
	    s->st.breaker_state == TALLY_BREAKER_HALF_OPEN)
		breaker_open(s);
}

static void
emit(void *arg, int argc, const char **argv, const size_t *argvlen, const struct tally_enc_ref *ref)
{
	struct tally_sink *s = arg;
	struct pend *p;

	if (s->ctx == NULL || s->st.breaker_state != TALLY_BREAKER_CLOSED ||
	    s->pending >= s->pend_cap ||
	    redisAppendCommandArgv(s->ctx, argc, argv, argvlen) != REDIS_OK) {
		s->st.errors++;
		return;
	}
	p = &s->pend[(s->pend_head + s->pending) % s->pend_cap];
	p->kind = ref != NULL ? PEND_DATA : PEND_OTHER;
	p->entries = ref != NULL ? (uint8_t)ref->entries : 0;
	p->first = ref != NULL ? ref->first : 0;
	s->pending_cost += ref != NULL ? ref->entries : 1;
	if (s->pending++ == 0)
		s->first_pending_ms = s->now_ms;
}

void
tally_sink_command(struct tally_sink *s, int argc, const char **argv, const size_t *argvlen)
{
	emit(s, argc, argv, argvlen, NULL);
}

static int
has_prefix(const char *str, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);

	return len >= n && memcmp(str, prefix, n) == 0 && (len == n || str[n] == ' ');
}

/*
 * An error that means "not now" (memory, loading, a failover, a lost function, a cluster
 * that moves): the command is right and is sent again later, after the breaker allows.
 * Anything else is a refusal of what the command carries.
 */
static enum reply_class
classify(const redisReply *r)
{
	static const char *const not_now[] = {
		"OOM",	      "LOADING",  "BUSY",	 "READONLY",   "NOAUTH",
		"MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "NOREPLICAS", "MISCONF",
		"NOSCRIPT",   "MOVED",	  "ASK",	 "UNBLOCKED",
	};
	unsigned int i;

	if (r->type != REDIS_REPLY_ERROR)
		return REPLY_OK;
	for (i = 0; i < sizeof(not_now) / sizeof(not_now[0]); i++)
		if (has_prefix(r->str, r->len, not_now[i]))
			return REPLY_NOT_NOW;
	/* FUNCTION FLUSH, or a Redis restarted without it: loaded again at the reconnect. */
	if (strstr(r->str, "Function not found") != NULL)
		return REPLY_NOT_NOW;
	return REPLY_DATA;
}

static void sink_log(struct tally_sink *s, int warning, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
sink_log(struct tally_sink *s, int warning, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	if (s->conf.log == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	s->conf.log(s->conf.log_arg, warning, line);
}

/* Append s to the JSON buffer as a string literal; returns the new length. */
static size_t
json_str(char *buf, size_t at, size_t cap, const char *str, size_t len)
{
	size_t i;

	if (at < cap)
		buf[at] = '"';
	at++;
	for (i = 0; i < len && at + 8 < cap; i++) {
		unsigned char ch = (unsigned char)str[i];

		if (ch == '"' || ch == '\\')
			at += (size_t)snprintf(buf + at, cap - at, "\\%c", ch);
		else if (ch < 0x20 || ch >= 0x7f)
			at += (size_t)snprintf(buf + at, cap - at, "\\u%04x", ch);
		else
			buf[at++] = (char)ch;
	}
	if (at < cap)
		buf[at] = '"';
	return at + 1;
}

/*
 * Redis refused one device chunk of the window for what it carries (a key of the wrong
 * type, a field that is not a number): that chunk alone is set aside, whole, in
 * tally:refused (a JSON line with the aggregates), counted, and logged now and then; the
 * rest of the window goes on.
 */
static void
refuse_entry(struct tally_sink *s, uint32_t pos, const char *why, size_t whylen)
{
	struct tally_enc_entry e;
	char *b = s->refused_json;
	const size_t cap = sizeof(s->refused_json);
	size_t at;
	struct pend *p;
	char key[TALLY_ENC_ARG_LEN];
	uint32_t i;

	if (s->win == NULL || pos >= s->win->series)
		return;
	tally_enc_entry(s->win, pos, &e);
	s->st.refused++;
	for (i = 0; i < e.n; i++)
		s->st.refused_records += tally_table_at(s->win, e.first + i)->count;
	snprintf(key, sizeof(key), "tally:{%" PRIu64 "}:%" PRIu64, e.device_id, s->win_start);
	if (s->now_ms >= s->refused_log_ms + REFUSED_LOG_MS) {
		sink_log(s, 1,
			 "Redis refused %s (device %" PRIu64
			 ", chunk %u, %u series): %.*s; kept in " TALLY_REFUSED_KEY "; %" PRIu64
			 " more refused since the last line",
			 key, e.device_id, e.chunk, e.n, (int)(whylen > 200 ? 200 : whylen), why,
			 s->refused_unlogged);
		s->refused_log_ms = s->now_ms;
		s->refused_unlogged = 0;
	} else {
		s->refused_unlogged++;
	}
	at = (size_t)snprintf(b, cap,
			      "{\"key\":\"%s\",\"device\":%" PRIu64 ",\"window\":%" PRIu64
			      ",\"chunk\":%u,\"partial\":",
			      key, e.device_id, s->win_start, e.chunk);
	at = json_str(b, at, cap, s->win_id, strlen(s->win_id));
	at += (size_t)snprintf(b + at, at < cap ? cap - at : 0, ",\"error\":");
	at = json_str(b, at, cap, why, whylen);
	at += (size_t)snprintf(b + at, at < cap ? cap - at : 0, ",\"series\":[");
	for (i = 0; i < e.n && at < cap; i++) {
		const struct tally_slot *x = tally_table_at(s->win, e.first + i);

		at += (size_t)snprintf(b + at, cap - at,
				       "%s{\"metric\":%u,\"count\":%" PRIu64 ",\"sum\":%.17g,"
				       "\"min\":%.17g,\"max\":%.17g,\"last\":%.17g,\"ts\":%" PRIu64
				       "}",
				       i ? "," : "", x->metric_id, x->count, x->sum, x->min, x->max,
				       x->last, x->last_ns);
	}
	at += (size_t)snprintf(b + at, at < cap ? cap - at : 0, "]}");
	if (at >= cap || s->pending + 2 > s->pend_cap ||
	    redisAppendCommand(s->ctx, "LPUSH %s %b", TALLY_REFUSED_KEY, b, at) != REDIS_OK) {
		s->st.refused_lost++;
		return;
	}
	p = &s->pend[(s->pend_head + s->pending++) % s->pend_cap];
	*p = (struct pend){.kind = PEND_COPY};
	snprintf(key, sizeof(key), "%d", TALLY_REFUSED_MAX - 1);
	if (redisAppendCommand(s->ctx, "LTRIM %s 0 %s", TALLY_REFUSED_KEY, key) == REDIS_OK) {
		p = &s->pend[(s->pend_head + s->pending++) % s->pend_cap];
		*p = (struct pend){.kind = PEND_OTHER};
	}
	s->pending_cost += 2;
}

/* The reply of one pending command; returns its class for the batch. */
static enum reply_class
take_reply(struct tally_sink *s, const struct pend *p, const redisReply *r)
{
	enum reply_class c = classify(r);
	uint32_t pos = p->first, i;

	if (c == REPLY_NOT_NOW)
		return c;
	if (p->kind == PEND_DATA && r->type == REDIS_REPLY_ARRAY) {
		/* tally_merge2: one reply per device chunk, in order */
		for (i = 0; i < p->entries && s->win != NULL && pos < s->win->series; i++) {
			struct tally_enc_entry e;
			const redisReply *x = i < r->elements ? r->element[i] : NULL;

			tally_enc_entry(s->win, pos, &e);
			if (x != NULL && x->type == REDIS_REPLY_ERROR) {
				if (classify(x) == REPLY_NOT_NOW)
					return REPLY_NOT_NOW;
				refuse_entry(s, pos, x->str, x->len);
			}
			pos = e.first + e.n;
		}
		return REPLY_OK;
	}
	if (c == REPLY_OK)
		return c;
	if (p->kind == PEND_DATA) {
		for (i = 0; i < p->entries && s->win != NULL && pos < s->win->series; i++) {
			struct tally_enc_entry e;

			tally_enc_entry(s->win, pos, &e);
			refuse_entry(s, pos, r->str, r->len);
			pos = e.first + e.n;
		}
		return REPLY_DATA;
	}
	if (p->kind == PEND_COPY)
		s->st.refused_lost++;
	if (s->now_ms >= s->refused_log_ms + REFUSED_LOG_MS) {
		sink_log(s, 1, "Redis refused a command: %.*s", (int)(r->len > 200 ? 200 : r->len),
			 r->str);
		s->refused_log_ms = s->now_ms;
	}
	return REPLY_DATA;
}

/* Read the reply of every pending command: one round trip for the whole batch. */
static int
sink_flush(struct tally_sink *s)
{
	uint64_t not_now = 0, todo = s->pending;

	if (s->pending == 0 || s->ctx == NULL)
		return 0;
	s->st.batches++;
	/* Copies of refused chunks are appended meanwhile: they go with the next batch. */
	while (todo > 0) {
		redisReply *r = NULL;
		struct pend p;

		if (redisGetReply(s->ctx, (void **)&r) != REDIS_OK || r == NULL) {
			sink_fail(s);
			return -EIO;
		}
		p = s->pend[s->pend_head];
		s->pend_head = (s->pend_head + 1) % s->pend_cap;
		s->pending--;
		todo--;
		s->pending_cost -= p.kind == PEND_DATA ? p.entries : 1;
		switch (take_reply(s, &p, r)) {
		case REPLY_NOT_NOW:
			not_now++;
			break;
		case REPLY_DATA:
			s->st.errors++;
			break;
		default:
			s->st.commands++;
		}
		freeReplyObject(r);
	}
	if (not_now > 0) {
		/*
		 * Redis cannot take commands now (-OOM, -READONLY, ...): the window is not written.
		 * It is kept and written again (merges are idempotent) once the breaker lets it,
		 * or spooled meanwhile. Only a batch that goes through closes the breaker for good.
		 */
		s->st.errors += not_now;
		sink_fail(s);
		return -EIO;
	}
	s->failures = 0;
	s->backoff_ms = s->conf.backoff_ms ? s->conf.backoff_ms : 100;
	if (s->pending > 0)
		s->first_pending_ms = s->now_ms;
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
	s->top_records = 0;
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
	int refused;

	if (s->ctx != NULL)
		return;
	if (s->st.breaker_state == TALLY_BREAKER_OPEN) {
		if (s->now_ms < s->retry_at_ms)
			return;
		s->st.breaker_state = TALLY_BREAKER_HALF_OPEN;
	}
	s->ctx = sink_connect(&s->conf, err, sizeof(err), &refused);
	if (s->ctx == NULL) {
		/* Each attempt waits out the breaker's backoff: a line each is not a flood. */
		if (refused || s->st.breaker_state == TALLY_BREAKER_HALF_OPEN)
			sink_log(s, 1, "%s", err);
		s->st.failures++;
		if (++s->failures >= s->conf.breaker_failures ||
		    s->st.breaker_state == TALLY_BREAKER_HALF_OPEN)
			breaker_open(s);
		return;
	}
	/*
	 * Connected, so the breaker lets writes through; but only a batch that Redis takes
	 * resets the failure count and the backoff (sink_flush): a Redis that accepts
	 * connections and refuses every write still opens the breaker.
	 */
	if (s->st.breaker_state == TALLY_BREAKER_HALF_OPEN)
		sink_log(s, 0, "Redis at %s:%u answers again", s->conf.host, s->conf.port);
	s->st.breaker_state = TALLY_BREAKER_CLOSED;
}

/* Sum the records of each device written in [first, end) for the window's top devices. */
static void
top_account(struct tally_sink *s, uint32_t first, uint32_t end)
{
	uint32_t i;

	for (i = first; i < end; i++) {
		const struct tally_slot *x = tally_table_at(s->win, i);

		if (i == 0 || x->device_id != s->top_dev) {
			if (i > 0)
				tally_top_add(&s->top, s->top_dev, s->top_records);
			s->top_dev = x->device_id;
			s->top_records = 0;
		}
		s->top_records += x->count;
	}
	if (end == s->win->series && end > 0)
		tally_top_add(&s->top, s->top_dev, s->top_records);
}

struct tally_table *
tally_sink_poll(struct tally_sink *s, uint64_t now_ms)
{
	struct tally_table *done;

	s->now_ms = now_ms;
	sink_reconnect(s);
	if (s->ctx == NULL || s->st.breaker_state != TALLY_BREAKER_CLOSED)
		return NULL;
	while (s->win != NULL && s->win_pos < s->win->series &&
	       s->pending_cost < s->conf.flush_batch) {
		uint32_t first = s->win_pos;

		if (s->conf.merge)
			tally_encode_merge(&s->enc, s->win, &s->win_pos, s->win_start,
					   s->conf.retention_s, s->win_id, 0, emit, s);
		else
			tally_encode_device(&s->enc, s->win, &s->win_pos, s->win_start,
					    s->conf.retention_s, emit, s);
		top_account(s, first, s->win_pos);
		/* A replayed older window must not replace the newest window's top. */
		if (s->win_pos == s->win->series && s->win_start >= s->top_window) {
			tally_encode_top(&s->enc, &s->top, s->win_start, emit, s);
			s->top_window = s->win_start;
		}
	}
	if (s->pending_cost >= s->conf.flush_batch ||
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
