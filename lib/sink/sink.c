/* SPDX-License-Identifier: BSD-3-Clause */
/* The Redis sink: pipelined micro-batches to one Redis, or to every master of a Cluster. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "tally_auth.h"
#include "tally_cluster.h"
#include "tally_names.h"
#include "tally_sink.h"

/* What a pipelined command was, so its reply can be put down to what it carried. */
enum pend_kind {
	PEND_OTHER,  /* stats, top, expiry, latest: an error is counted and logged */
	PEND_DATA,   /* window data: device chunks (ref), FCALL tally_merge2 (or hset's HSET) */
	PEND_PUT,    /* the same as device parts, FCALL tally_put2 (a payload per part) */
	PEND_READ,   /* HGETALL of a window key that exists: one part to fold into it */
	PEND_SWAP,   /* FCALL tally_swap2: one part folded by the sink */
	PEND_COPY,   /* a refused chunk's copy to tally:refused */
	PEND_ASKING, /* the ASKING before a command sent after an ASK redirect */
	PEND_WAIT,   /* WAIT after a batch (--redis-wait-replicas) */
	PEND_HLL,    /* FCALL tally_pf2: distinct series' registers, from series `first` */
};

struct pend {
	uint8_t kind;
	uint8_t entries; /* device chunks (PEND_DATA) or parts (put, read, swap) from first on */
	uint16_t cost;	 /* the device chunks they hold: their share of --flush-batch */
	uint32_t first;
};

/* Kinds that carry device chunks of the window. */
static inline int
pend_data(uint8_t kind)
{
	return kind == PEND_DATA || kind == PEND_PUT || kind == PEND_READ || kind == PEND_SWAP;
}

/* The entry of the window at pos that a command of this kind carries: a chunk, or a part. */
static void
pend_entry(const struct tally_encoder *enc, const struct tally_table *t, uint8_t kind,
	   uint32_t pos, struct tally_enc_entry *e)
{
	if (kind == PEND_DATA)
		tally_enc_entry(t, pos, e);
	else
		tally_enc_part(enc, t, pos, e);
}

/* How a reply is handled. */
enum reply_class {
	REPLY_OK,
	REPLY_NOT_NOW,	/* Redis cannot take it now (OOM, LOADING, ...): the breaker's business */
	REPLY_DATA,	/* refused for what it carries (WRONGTYPE, a script error): isolate it */
	REPLY_REDIRECT, /* cluster: MOVED, ASK, TRYAGAIN: send it again, elsewhere or later */
};

#define REFUSED_LOG_MS 5000 /* at most one line per this long about refused writes */
/* a command: its arguments, its payloads, its long field names (statsd series' texts) */
#define RESP_MAX                                                                                   \
	(TALLY_ENC_MAX_ARGS * (TALLY_ENC_ARG_LEN + 16) + TALLY_ENC_PAYLOAD_MAX +                   \
	 sizeof(((struct tally_encoder *)0)->long_fields) + 64)
#define REFUSED_JSON_MAX 16384
#define TRYAGAIN_MS 20 /* a write to a slot being migrated waits this long before it retries */
/* Device chunks the last command of a batch may add past --flush-batch (16 parts of 64). */
#define BATCH_OVER (TALLY_ENC_ENTRIES_PER_CALL * TALLY_ENC_PART_CHUNKS)

/* One connection: the single Redis, or one master of a cluster. */
struct sink_node {
	char host[TALLY_CLUSTER_HOST_LEN];
	uint16_t port;
	redisContext *ctx;
	struct pend *pend; /* a ring of what each pending command is */
	uint64_t head, n;
	uint64_t sent; /* of the n, those sent by an earlier flush (the batch in flight) */
};

/* A data command to send again: after MOVED (by the new map), ASK (to node) or TRYAGAIN. */
struct redo {
	uint32_t first, end; /* the series: device chunks from first, up to end */
	int8_t node;	     /* ASK: the node to send it to, with ASKING; -1: by the slot map */
	uint8_t fields;	     /* with tally_merge2 (its fields), not as a payload */
};

struct tally_sink {
	struct tally_sink_conf conf;
	char host[256];
	char user[TALLY_AUTH_USER_MAX + 1];
	char password[TALLY_AUTH_PASSWORD_SIZE]; /* AUTH again at every reconnect; zeroed at free */
	char partial_id[TALLY_ENC_ID_LEN];
	int cluster;	 /* -1 not known yet (Redis down at start), 0 single, 1 cluster */
	uint32_t nnodes; /* 1 single; the masters of the slot map in a cluster */
	struct sink_node node[TALLY_CLUSTER_MAX_MASTERS];
	struct tally_slot_map map;   /* cluster: node[i] is map.master[i] */
	struct tally_slot_map spare; /* the next map, parsed before it replaces map */
	int map_stale;		     /* a MOVED or a lost master: read the map again */
	int force_node;		     /* emit(): -1, or the node an ASK named */
	const char *route_key;	     /* emit(): the key to route by, or NULL: the command's */
	int lost_cmd;		     /* a command of the batch could not be appended: redo it all */
	int restart;		     /* send the whole window again (hset mode after a redirect) */
	int no_restore;		     /* Redis refused RESTORE: merges go through tally_merge2 */
	uint8_t emit_kind;	     /* emit(): what the window data being encoded is */
	struct redo *redo;
	uint64_t nredo;
	uint64_t redo_at_ms; /* TRYAGAIN: not before then (a slot half migrated) */
	uint64_t pend_cap; /* per node */
	struct tally_sink_stats st;
	uint64_t pending;	   /* commands appended whose replies are not read yet, all nodes */
	uint64_t pending_cost;	   /* the device chunks (1 for other commands) they carry */
	uint64_t unsent_cost;	   /* of which not sent yet: the batch being filled */
	uint64_t first_pending_ms; /* when the oldest of them was appended */
	int inflight;		   /* a batch's replies are being read (sink_progress) */
	uint64_t todo[TALLY_CLUSTER_MAX_MASTERS]; /* per node, replies the batch still waits for */
	uint64_t deadline_ms;	   /* monotonic: by then the batch is answered, or it failed */
	uint64_t not_now;	   /* replies of the batch that said "not now" */
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
	uint64_t *refused_bits;	   /* chunk starts of this window already refused (one bit each) */
	uint64_t *hll_refused_bits; /* distinct series of this window whose registers were */
	uint32_t fold_next;	   /* the part after the last one put2 found existing, or -1 */
	uint64_t refused_log_ms;   /* when refusals were last logged */
	uint64_t refused_unlogged; /* refusals since */
	char refused_json[REFUSED_JSON_MAX];
	struct tally_encoder enc;
	/* a window key read to fold into (HGETALL), as tally_encode_swap() takes it */
	const char *fold_field[TALLY_ENC_FOLD_PAIRS], *fold_value[TALLY_ENC_FOLD_PAIRS];
	size_t fold_field_len[TALLY_ENC_FOLD_PAIRS], fold_value_len[TALLY_ENC_FOLD_PAIRS];
	char resp[RESP_MAX]; /* one command in RESP, formatted here rather than by hiredis */
};

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

/*
 * Connect to host:port, authenticate, PING, and (load_fn) load the Function. NULL on
 * failure, with a one-line reason in err, and *refused set when Redis answered but will not
 * let tally in (a wrong password, no permission, no Functions): a configuration error rather
 * than an outage.
 */
static redisContext *
sink_connect(const struct tally_sink_conf *c, const char *host, uint16_t port, int load_fn,
	     char *err, size_t errlen, int *refused)
{
	struct timeval tv = {
		.tv_sec = (time_t)(c->timeout_ms / 1000),
		.tv_usec = (suseconds_t)(c->timeout_ms % 1000) * 1000,
	};
	redisContext *ctx;
	redisReply *r;

	*refused = 0;
	ctx = redisConnectWithTimeout(host, port, tv);
	if (ctx == NULL || ctx->err) {
		snprintf(err, errlen, "cannot connect to Redis at %s:%u: %s", host, port,
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

		snprintf(err, errlen, "Redis at %s:%u does not answer PING: %s%s", host, port,
			 r ? r->str : ctx->errstr,
			 noauth ? " (give the password with --redis-password-file)" : "");
		*refused = noauth || (r != NULL && strncmp(r->str, "NOPERM", 6) == 0);
		if (r != NULL)
			freeReplyObject(r);
		goto fail;
	}
	freeReplyObject(r);
	if (load_fn && c->merge) {
		/* Loaded at every connect: a restarted Redis, a new master may lack it. */
		r = redisCommand(ctx, "FUNCTION LOAD REPLACE %s", tally_merge_lua);
		if (r == NULL || r->type == REDIS_REPLY_ERROR) {
			snprintf(err, errlen,
				 "Redis at %s:%u cannot load the tally_merge2 function (Redis 7 "
				 "needed, or --redis-write hset): %s",
				 host, port, r ? r->str : ctx->errstr);
			/* LOADING, BUSY or a replica pass; an old Redis or an ACL that forbids it
			 * not */
			*refused = r != NULL && strncmp(r->str, "LOADING", 7) != 0 &&
				   strncmp(r->str, "BUSY", 4) != 0 &&
				   strncmp(r->str, "READONLY", 8) != 0;
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

/*
 * What a node says of itself in INFO cluster: 1 cluster_enabled:1, 0 cluster_enabled:0,
 * -1 no answer, -2 an error reply (an ACL that refuses INFO), whose text goes to why.
 */
static int
info_cluster(redisContext *ctx, char *why, size_t whylen)
{
	redisReply *r = redisCommand(ctx, "INFO cluster");
	int on = -1;

	if (r != NULL && r->type == REDIS_REPLY_ERROR) {
		snprintf(why, whylen, "%s", r->str);
		on = -2;
	} else if (r != NULL && r->type == REDIS_REPLY_STRING) {
		on = strstr(r->str, "cluster_enabled:1") != NULL;
	}
	if (r != NULL)
		freeReplyObject(r);
	return on;
}

/*
 * Whether --redis-cluster auto finds a cluster: 1 yes, 0 no (also when an ACL keeps INFO
 * from tally's user: a single Redis is assumed, --redis-cluster yes says otherwise), -1 when
 * the node does not answer.
 */
static int
cluster_enabled(struct tally_sink *s, redisContext *ctx)
{
	char why[256];
	int on = info_cluster(ctx, why, sizeof(why));

	if (on == -2) {
		sink_log(s, 1,
			 "Redis refused INFO cluster (%s): taken for a single Redis; "
			 "--redis-cluster yes if it is a cluster",
			 why);
		return 0;
	}
	return on;
}

/* The node answers INFO and says it is not in cluster mode (an ACL refusal tells nothing). */
static int
not_a_cluster_node(redisContext *ctx)
{
	char why[256];

	return info_cluster(ctx, why, sizeof(why)) == 0;
}

static void
node_close(struct sink_node *n)
{
	if (n->ctx != NULL)
		redisFree(n->ctx);
	n->ctx = NULL;
	n->n = 0;
	n->head = 0;
	n->sent = 0;
}

static void
nodes_close(struct tally_sink *s)
{
	uint32_t i;

	for (i = 0; i < s->nnodes; i++)
		node_close(&s->node[i]);
	s->inflight = 0; /* replies due died with the connections */
}

static int
node_ring(struct tally_sink *s, struct sink_node *n, char *err, size_t errlen)
{
	if (n->pend == NULL)
		n->pend = calloc(s->pend_cap, sizeof(*n->pend));
	if (n->pend == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

/*
 * Read the slot map from a node that answers (the configured one first, then the masters
 * known), into s->spare; a shard with no live master is an error (a failover under way).
 */
static int
map_read(struct tally_sink *s, char *err, size_t errlen, int *refused)
{
	uint32_t i, k, tried = 0;

	for (i = 0; i <= s->nnodes; i++) {
		const char *host = i == 0 ? s->conf.host : s->node[i - 1].host;
		uint16_t port = i == 0 ? s->conf.port : s->node[i - 1].port;
		redisContext *ctx;
		redisReply *r;
		int rc;

		if (i > 0 && port == s->conf.port && strcmp(host, s->conf.host) == 0)
			continue;
		tried++;
		ctx = sink_connect(&s->conf, host, port, 0, err, errlen, refused);
		if (ctx == NULL) {
			if (*refused)
				return -1;
			continue;
		}
		r = redisCommand(ctx, "CLUSTER SHARDS");
		if (r != NULL && r->type == REDIS_REPLY_ERROR) {
			/* Redis before 7.0 */
			freeReplyObject(r);
			r = redisCommand(ctx, "CLUSTER SLOTS");
			rc = r != NULL && r->type == REDIS_REPLY_ARRAY
				     ? tally_slot_map_from_slots(&s->spare, r, err, errlen)
				     : -1;
		} else {
			rc = r != NULL && r->type == REDIS_REPLY_ARRAY
				     ? tally_slot_map_from_shards(&s->spare, r, err, errlen)
				     : -1;
		}
		if (rc != 0 && r != NULL && r->type == REDIS_REPLY_ERROR)
			snprintf(err, errlen, "Redis at %s:%u: CLUSTER SHARDS: %s", host, port,
				 r->str);
		if (r != NULL)
			freeReplyObject(r);
		if (rc == 0) {
			for (k = 0; k < TALLY_CLUSTER_SLOTS; k++)
				if (s->spare.owner[k] == TALLY_SLOT_NONE)
					break;
			if (k < TALLY_CLUSTER_SLOTS) {
				snprintf(err, errlen,
					 "Redis Cluster at %s:%u: slot %u has no master "
					 "(a failover under way?)",
					 host, port, k);
				rc = -1;
			}
			/* A node that gave no address for itself: the host it was reached at. */
			for (k = 0; rc == 0 && k < s->spare.nmasters; k++)
				if (s->spare.master[k].host[0] == '\0')
					snprintf(s->spare.master[k].host,
						 sizeof(s->spare.master[k].host), "%s", host);
		}
		redisFree(ctx);
		if (rc == 0)
			return 0;
	}
	if (tried == 0)
		snprintf(err, errlen, "no Redis Cluster node to ask for the slot map");
	return -1;
}

/*
 * Connect to every master of a fresh slot map; connections to masters that stay masters are
 * kept (they have nothing pending: this runs between batches).
 */
static int
cluster_connect(struct tally_sink *s, char *err, size_t errlen, int *refused)
{
	struct sink_node old[TALLY_CLUSTER_MAX_MASTERS];
	uint32_t nold = s->nnodes, i, k;

	if (map_read(s, err, errlen, refused) != 0)
		return -1;
	memcpy(old, s->node, sizeof(old[0]) * nold);
	memset(s->node, 0, sizeof(s->node[0]) * TALLY_CLUSTER_MAX_MASTERS);
	s->map = s->spare;
	s->nnodes = s->map.nmasters;
	for (i = 0; i < s->nnodes; i++) {
		struct sink_node *n = &s->node[i];

		snprintf(n->host, sizeof(n->host), "%s", s->map.master[i].host);
		n->port = s->map.master[i].port;
		for (k = 0; k < nold; k++) {
			if (old[k].port == n->port && strcmp(old[k].host, n->host) == 0) {
				n->ctx = old[k].ctx;
				n->pend = old[k].pend;
				old[k].ctx = NULL;
				old[k].pend = NULL;
				break;
			}
		}
	}
	for (k = 0; k < nold; k++) {
		node_close(&old[k]);
		free(old[k].pend);
	}
	s->map_stale = 0;
	for (i = 0; i < s->nnodes; i++) {
		struct sink_node *n = &s->node[i];

		if (node_ring(s, n, err, errlen) != 0)
			return -1;
		if (n->ctx != NULL)
			continue;
		n->ctx = sink_connect(&s->conf, n->host, n->port, 1, err, errlen, refused);
		if (n->ctx == NULL)
			return -1;
		/* A dead master's address taken by some other Redis must not get its writes. */
		if (not_a_cluster_node(n->ctx)) {
			snprintf(err, errlen,
				 "Redis at %s:%u, a master of the slot map, is not a "
				 "cluster node",
				 n->host, n->port);
			node_close(n);
			return -1;
		}
	}
	return 0;
}

/* Connect what is not connected; 0, or -1 with err (and *refused for a refusal). */
static int
sink_connect_all(struct tally_sink *s, char *err, size_t errlen, int *refused)
{
	struct sink_node *n = &s->node[0];
	int on;

	*refused = 0;
	if (s->cluster == 1)
		return cluster_connect(s, err, errlen, refused);
	if (node_ring(s, n, err, errlen) != 0)
		return -1;
	n->ctx = sink_connect(&s->conf, s->conf.host, s->conf.port, s->cluster == 0, err, errlen,
			      refused);
	if (n->ctx == NULL || s->cluster == 0)
		return n->ctx != NULL ? 0 : -1;
	/* The first answer tells whether this is a cluster (--redis-cluster auto). */
	on = s->conf.cluster == TALLY_SINK_CLUSTER_YES ? 1 : cluster_enabled(s, n->ctx);
	if (on < 0 || (on == 0 && s->conf.cluster == TALLY_SINK_CLUSTER_YES)) {
		snprintf(err, errlen, "Redis at %s:%u %s", s->conf.host, s->conf.port,
			 on < 0 ? "does not answer INFO cluster"
				: "is not a cluster node (--redis-cluster yes)");
		*refused = on == 0;
		node_close(n);
		return -1;
	}
	if (on == 0) {
		s->cluster = 0;
		node_close(n);
		return sink_connect_all(s, err, errlen, refused);
	}
	s->cluster = 1;
	node_close(n);
	/* the masters of the map take the nodes' places, rings included */
	free(n->pend);
	n->pend = NULL;
	s->nnodes = 0;
	sink_log(s, 0, "Redis at %s:%u is a cluster node: writing to every master", s->conf.host,
		 s->conf.port);
	return cluster_connect(s, err, errlen, refused);
}

static int
sink_connected(const struct tally_sink *s)
{
	uint32_t i;

	if (s->nnodes == 0)
		return 0;
	for (i = 0; i < s->nnodes; i++)
		if (s->node[i].ctx == NULL)
			return 0;
	return 1;
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
	tally_enc_window(&s->enc, conf->window_ms);
	s->enc.names = conf->names;
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
	s->cluster = s->conf.cluster == TALLY_SINK_CLUSTER_NO ? 0 : -1;
	s->force_node = -1;
	s->nnodes = 1;
	snprintf(s->node[0].host, sizeof(s->node[0].host), "%s", s->host);
	s->node[0].port = s->conf.port;
	/*
	 * Room per node for a full batch, the commands sent again after redirects, and those
	 * appended while the batch's replies are read: the two that keep a copy of each refused
	 * chunk, the read and the swap of each part folded into a key that exists.
	 */
	s->pend_cap = 5 * (s->conf.flush_batch + BATCH_OVER);
	s->redo = calloc(s->conf.flush_batch + BATCH_OVER, sizeof(*s->redo));
	if (s->conf.max_series > 0) {
		s->refused_bits = calloc(2 * ((s->conf.max_series + 63) / 64), sizeof(uint64_t));
		if (s->refused_bits != NULL)
			s->hll_refused_bits = s->refused_bits + (s->conf.max_series + 63) / 64;
	}
	if (s->redo == NULL || (s->conf.max_series > 0 && s->refused_bits == NULL)) {
		snprintf(err, errlen, "out of memory");
		free(s->redo);
		free(s->refused_bits);
		free(s);
		return NULL;
	}
	if (sink_connect_all(s, err, errlen, &refused) != 0) {
		/* Down at start is survivable with a spool; refused (a wrong password) is not. */
		if (!s->conf.start_open || refused) {
			tally_sink_free(s);
			return NULL;
		}
		nodes_close(s);
		/* Start with the breaker open: the first probe goes after one backoff. */
		s->st.breaker_state = TALLY_BREAKER_OPEN;
		s->st.breaker_opens++;
	}
	return s;
}

void
tally_sink_free(struct tally_sink *s)
{
	uint32_t i;

	if (s == NULL)
		return;
	for (i = 0; i < TALLY_CLUSTER_MAX_MASTERS; i++) {
		node_close(&s->node[i]);
		free(s->node[i].pend);
	}
	explicit_bzero(s->password, sizeof(s->password));
	free(s->redo);
	free(s->refused_bits);
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

/* Start the window being written over (its merges are idempotent). */
static void
window_restart(struct tally_sink *s)
{
	if (s->win != NULL && s->win_pos > 0) {
		s->win_pos = 0;
		tally_top_reset(&s->top);
		s->top_records = 0;
		s->st.window_retries++;
	}
	s->nredo = 0;
	s->restart = 0;
	s->fold_next = UINT32_MAX;
}

/*
 * A flush or connect failed: drop the connections, count the commands lost with them, and
 * start the window being written over once Redis is back.
 */
static void
sink_fail(struct tally_sink *s)
{
	s->st.errors += s->pending;
	s->st.failures++;
	s->pending = 0;
	s->pending_cost = 0;
	s->unsent_cost = 0;
	nodes_close(s);
	if (s->cluster == 1)
		s->map_stale = 1;
	window_restart(s);
	if (++s->failures >= s->conf.breaker_failures ||
	    s->st.breaker_state == TALLY_BREAKER_HALF_OPEN)
		breaker_open(s);
}

/* The node a command goes to: by the slot of its key in a cluster; -1 when none serves it. */
static int
route(const struct tally_sink *s, int argc, const char **argv, const size_t *argvlen)
{
	const char *key = "tally:top";
	size_t len = 9;
	uint16_t owner;

	if (s->cluster != 1)
		return 0;
	if (s->force_node >= 0)
		return s->force_node;
	if (s->route_key != NULL) {
		key = s->route_key;
		len = strlen(key);
	} else if (argc >= 4 && argvlen[0] == 5 && strncasecmp(argv[0], "FCALL", 5) == 0) {
		key = argv[3];
		len = argvlen[3];
	} else if (argc >= 2) {
		key = argv[1];
		len = argvlen[1];
	}
	/* else MULTI / EXEC: they belong to the tally:top transaction, on tally:top's slot */
	owner = s->map.owner[tally_key_slot(key, len)];
	return owner == TALLY_SLOT_NONE || owner >= s->nnodes ? -1 : owner;
}

/*
 * The command in RESP (*argc, then $len and the bytes of each argument), or 0 when it does
 * not fit: hiredis's own formatting costs a generic format call per argument, this a copy.
 */
static size_t
resp_format(char *b, size_t cap, int argc, const char **argv, const size_t *argvlen)
{
	size_t at = 0;
	int i;

	if (cap < 24)
		return 0;
	b[at++] = '*';
	at += (size_t)tally_fmt_u64(b + at, (uint64_t)argc);
	b[at++] = '\r';
	b[at++] = '\n';
	for (i = 0; i < argc; i++) {
		if (at + argvlen[i] + 28 > cap)
			return 0;
		b[at++] = '$';
		at += (size_t)tally_fmt_u64(b + at, argvlen[i]);
		b[at++] = '\r';
		b[at++] = '\n';
		memcpy(b + at, argv[i], argvlen[i]);
		at += argvlen[i];
		b[at++] = '\r';
		b[at++] = '\n';
	}
	return at;
}

/* Append a command to its node's pipeline; 0, or -1 when it cannot go (counted). */
static int
append(struct tally_sink *s, uint8_t kind, int argc, const char **argv, const size_t *argvlen,
       const struct tally_enc_ref *ref)
{
	int i = route(s, argc, argv, argvlen);
	struct sink_node *n;
	struct pend *p;
	size_t len;

	if (i < 0) {
		s->lost_cmd = 1;
		s->st.errors++;
		return -1;
	}
	n = &s->node[i];
	if (n->ctx == NULL || s->st.breaker_state != TALLY_BREAKER_CLOSED) {
		s->st.errors++;
		return -1;
	}
	len = n->n < s->pend_cap ? resp_format(s->resp, sizeof(s->resp), argc, argv, argvlen) : 0;
	if (n->n >= s->pend_cap ||
	    (len > 0 ? redisAppendFormattedCommand(n->ctx, s->resp, len)
		     : redisAppendCommandArgv(n->ctx, argc, argv, argvlen)) != REDIS_OK) {
		/*
		 * A connection that took part of a batch (a MULTI without its EXEC, a window with a
		 * chunk missing) cannot be trusted: the batch fails and the window is sent again.
		 */
		s->lost_cmd = 1;
		s->st.errors++;
		return -1;
	}
	p = &n->pend[(n->head + n->n++) % s->pend_cap];
	p->kind = kind;
	p->entries = ref != NULL ? (uint8_t)ref->entries : 0;
	p->cost = ref != NULL ? (uint16_t)ref->chunks : 1;
	p->first = ref != NULL ? ref->first : 0;
	s->pending_cost += p->cost;
	if (s->unsent_cost == 0)
		s->first_pending_ms = s->now_ms;
	s->unsent_cost += p->cost;
	s->pending++;
	return 0;
}

static void
emit(void *arg, int argc, const char **argv, const size_t *argvlen, const struct tally_enc_ref *ref)
{
	struct tally_sink *s = arg;

	if (s->force_node >= 0) {
		/* ASK: this one command goes to the importing node, after ASKING */
		const char *asking = "ASKING";
		size_t asking_len = 6;

		append(s, PEND_ASKING, 1, &asking, &asking_len, NULL);
	}
	append(s, ref != NULL ? s->emit_kind : PEND_OTHER, argc, argv, argvlen, ref);
}

void
tally_sink_command(struct tally_sink *s, int argc, const char **argv, const size_t *argvlen)
{
	emit(s, argc, argv, argvlen, NULL);
}

void
tally_sink_command_on(struct tally_sink *s, const char *key, int argc, const char **argv,
		      const size_t *argvlen)
{
	s->route_key = key;
	emit(s, argc, argv, argvlen, NULL);
	s->route_key = NULL;
}

static int
has_prefix(const char *str, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);

	return len >= n && memcmp(str, prefix, n) == 0 && (len == n || str[n] == ' ');
}

/*
 * An error that means "not now" (memory, loading, a failover, a lost function, a cluster
 * that is down, no permission): the command is right and is sent again later, after the
 * breaker allows. A redirect goes elsewhere at once. Anything else is a refusal of what the
 * command carries.
 */
static enum reply_class
classify(const redisReply *r)
{
	static const char *const not_now[] = {
		"OOM",	       "LOADING",    "BUSY",	"READONLY", "NOAUTH",	 "MASTERDOWN",
		"CLUSTERDOWN", "NOREPLICAS", "MISCONF", "NOSCRIPT", "UNBLOCKED", "NOPERM",
	};
	unsigned int i;

	if (r->type != REDIS_REPLY_ERROR)
		return REPLY_OK;
	if (has_prefix(r->str, r->len, "MOVED") || has_prefix(r->str, r->len, "ASK") ||
	    has_prefix(r->str, r->len, "TRYAGAIN"))
		return REPLY_REDIRECT;
	for (i = 0; i < sizeof(not_now) / sizeof(not_now[0]); i++)
		if (has_prefix(r->str, r->len, not_now[i]))
			return REPLY_NOT_NOW;
	/* FUNCTION FLUSH, or a Redis restarted without it: loaded again at the reconnect. */
	if (strstr(r->str, "Function not found") != NULL)
		return REPLY_NOT_NOW;
	return REPLY_DATA;
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
	const char *argv[4];
	size_t argvlen[4], at;
	char key[TALLY_ENC_ARG_LEN], trim[24];
	uint32_t i;

	if (s->win == NULL || pos >= s->win->series)
		return;
	/* A window sent again (after a failure) meets its refusals again: keep each once. */
	if (s->refused_bits != NULL && pos < s->conf.max_series) {
		if (s->refused_bits[pos / 64] & (1ULL << (pos % 64)))
			return;
		s->refused_bits[pos / 64] |= 1ULL << (pos % 64);
	}
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
	at = json_str(b, at, cap, why, whylen > 200 ? 200 : whylen);
	at += (size_t)snprintf(b + at, at < cap ? cap - at : 0, ",\"series\":[");
	for (i = 0; i < e.n && at < cap; i++) {
		const struct tally_slot *x = tally_table_at(s->win, e.first + i);

		at += (size_t)snprintf(b + at, cap - at,
				       "%s{\"metric\":%u,\"kind\":\"%s\",\"count\":%" PRIu64,
				       i ? "," : "", x->metric_id, tally_kind_name(tally_kind_of(x->kind)),
				       x->count);
		if (at < cap && x->kind != TALLY_KIND_DISTINCT)
			at += (size_t)snprintf(b + at, cap - at,
					       ",\"sum\":%.17g,\"min\":%.17g,\"max\":%.17g", x->sum,
					       x->min, x->max);
		if (at < cap && !tally_kind_side(x->kind))
			at += (size_t)snprintf(b + at, cap - at, ",\"last\":%.17g,\"ts\":%" PRIu64,
					       x->last, x->last_ns);
		if (at < cap)
			at += (size_t)snprintf(b + at, cap - at, "}");
	}
	at += (size_t)snprintf(b + at, at < cap ? cap - at : 0, "]}");
	argv[0] = "LPUSH";
	argv[1] = TALLY_REFUSED_KEY;
	argv[2] = b;
	argvlen[0] = 5;
	argvlen[1] = strlen(TALLY_REFUSED_KEY);
	argvlen[2] = at;
	if (at >= cap || append(s, PEND_COPY, 3, argv, argvlen, NULL) != 0) {
		s->st.refused_lost++;
		return;
	}
	snprintf(trim, sizeof(trim), "%d", TALLY_REFUSED_MAX - 1);
	argv[0] = "LTRIM";
	argv[2] = "0";
	argv[3] = trim;
	argvlen[0] = 5;
	argvlen[2] = 1;
	argvlen[3] = strlen(trim);
	append(s, PEND_OTHER, 4, argv, argvlen, NULL);
}

/* Every chunk of a part (or the one chunk of an entry) refused, each kept on its own. */
static void
refuse_span(struct tally_sink *s, const struct tally_enc_entry *e, const char *why, size_t whylen)
{
	uint32_t c;

	for (c = 0; c < e->chunks; c++)
		refuse_entry(s, e->first + c * TALLY_ENC_METRICS_PER_CMD, why, whylen);
}

/* tally_encode_swap() refused a chunk of the part it folds. */
static void
fold_refuse(void *arg, uint32_t pos, const char *why, size_t whylen)
{
	refuse_entry(arg, pos, why, whylen);
}

/* Remember device chunks (or parts) to send again once the batch is read. */
static void
redo_at(struct tally_sink *s, uint32_t first, uint32_t end, int node, int fields)
{
	if (s->nredo >= s->conf.flush_batch + BATCH_OVER) {
		s->restart = 1; /* no room to remember it: the whole window again */
		return;
	}
	s->redo[s->nredo++] = (struct redo){
		.first = first, .end = end, .node = (int8_t)node, .fields = (uint8_t)fields};
}

/* What a redirected command carried, the same way: chunks with fields, parts as payloads. */
static void
redo_add(struct tally_sink *s, const struct pend *p, int node)
{
	struct tally_enc_entry e = {.first = p->first};
	uint32_t i;

	for (i = 0; i < p->entries && s->win != NULL && e.first < s->win->series; i++) {
		pend_entry(&s->enc, s->win, p->kind, e.first, &e);
		e.first += e.n;
	}
	redo_at(s, p->first, e.first, node, p->kind == PEND_DATA);
}

/*
 * Encode window data from *pos on: as payloads (the fast path), with tally_merge2's fields
 * (fields, or when Redis refuses RESTORE), or as plain HSETs (--redis-write hset). Returns
 * the entries encoded.
 */
static unsigned int
encode_rows(struct tally_sink *s, uint32_t *pos, int one_device, int fields)
{
	unsigned int n;

	if (!s->conf.merge) {
		s->emit_kind = PEND_DATA;
		return tally_encode_device(&s->enc, s->win, pos, s->win_start, s->conf.retention_s,
					   emit, s);
	}
	if (fields || s->no_restore) {
		s->emit_kind = PEND_DATA;
		return tally_encode_merge(&s->enc, s->win, pos, s->win_start, s->conf.retention_s,
					  s->win_id, one_device, emit, s);
	}
	s->emit_kind = PEND_PUT;
	n = tally_encode_put(&s->enc, s->win, pos, s->win_start, s->conf.retention_s, s->win_id,
			     one_device, emit, s);
	if (n == 0 && *pos < s->win->series) {
		/* a part whose payload does not fit (long statsd names and full sketches) */
		s->emit_kind = PEND_DATA;
		return tally_encode_merge(&s->enc, s->win, pos, s->win_start, s->conf.retention_s,
					  s->win_id, one_device, emit, s);
	}
	return n;
}

/*
 * The registers of the distinct series among [first, end): into their own keys, after the
 * window key's data (PFMERGE is idempotent: sending them again with the data is harmless).
 */
static void
encode_hll(struct tally_sink *s, uint32_t first, uint32_t end)
{
	uint32_t pos = first;

	if (s->win->side_used == 0)
		return;
	s->emit_kind = PEND_HLL;
	while (pos < end) {
		uint32_t at = pos;

		tally_encode_hll(&s->enc, s->win, &pos, end, s->win_start, s->conf.retention_s,
				 s->conf.merge, emit, s);
		if (pos <= at)
			break;
	}
}

static unsigned int
encode_data(struct tally_sink *s, uint32_t *pos, int one_device, int fields)
{
	uint32_t first = *pos;
	unsigned int n = encode_rows(s, pos, one_device, fields);

	encode_hll(s, first, *pos);
	return n;
}

/* The part at pos goes to a window key that exists: read it (HGETALL) to fold into it. */
static void
fold_read(struct tally_sink *s, uint32_t pos)
{
	struct tally_enc_ref ref = {.first = pos, .entries = 1};
	struct tally_enc_entry e;
	char key[TALLY_ENC_ARG_LEN];
	const char *argv[2] = {"HGETALL", key};
	size_t argvlen[2] = {7, 0};

	tally_enc_part(&s->enc, s->win, pos, &e);
	ref.chunks = e.chunks;
	argvlen[1] = (size_t)snprintf(key, sizeof(key), "tally:{%" PRIu64 "}:%" PRIu64, e.device_id,
				      s->win_start);
	s->emit_kind = PEND_READ;
	emit(s, 2, argv, argvlen, &ref);
}

/*
 * The part at pos goes through tally_merge2 instead, chunk by chunk (each checks its own
 * mark, so chunks of it written meanwhile count once).
 */
static void
part_by_fields(struct tally_sink *s, uint32_t pos)
{
	struct tally_enc_entry e;

	tally_enc_part(&s->enc, s->win, pos, &e);
	redo_at(s, pos, pos + e.n, -1, 1);
}

/*
 * put2 found the window key of the part e: read it to fold into it. A device of several
 * parts folds them one after the other: a part whose previous part is being folded would
 * read the key before that part's swap (and read it again after), so it is put again after
 * this batch, behind that swap, and read then.
 */
static void
fold_after(struct tally_sink *s, const struct tally_enc_entry *e)
{
	struct redo *last = s->nredo > 0 ? &s->redo[s->nredo - 1] : NULL;

	if (e->first != s->fold_next || e->chunk == 0)
		fold_read(s, e->first);
	else if (last != NULL && last->end == e->first && !last->fields && last->node < 0)
		last->end = e->first + e->n; /* the device's next parts wait with it */
	else
		redo_at(s, e->first, e->first + e->n, -1, 0);
	s->fold_next = e->first + e->n;
}

/* Redis would not RESTORE (an ACL without it, a payload it cannot read): the slower path. */
static void
restore_off(struct tally_sink *s, uint32_t pos, const char *why, size_t whylen)
{
	if (!s->no_restore)
		sink_log(s, 1,
			 "Redis refused RESTORE (%.*s): window keys are written with FCALL "
			 "tally_merge2 from now on (slower; see README, Exactly-once writes)",
			 (int)(whylen > 200 ? 200 : whylen), why);
	s->no_restore = 1;
	part_by_fields(s, pos);
}

/* The HGETALL of a window key to fold the part at pos into. */
static void
fold_reply(struct tally_sink *s, uint32_t pos, const redisReply *r)
{
	struct tally_hash_view v = {.field = s->fold_field,
				    .field_len = s->fold_field_len,
				    .value = s->fold_value,
				    .value_len = s->fold_value_len};
	size_t i;

	if (r->elements / 2 > TALLY_ENC_FOLD_PAIRS) {
		part_by_fields(s, pos);
		return;
	}
	for (i = 0; i + 1 < r->elements; i += 2) {
		const redisReply *f = r->element[i], *x = r->element[i + 1];

		if (f->type != REDIS_REPLY_STRING || x->type != REDIS_REPLY_STRING)
			continue;
		s->fold_field[v.n] = f->str;
		s->fold_field_len[v.n] = f->len;
		s->fold_value[v.n] = x->str;
		s->fold_value_len[v.n] = x->len;
		v.n++;
	}
	s->emit_kind = PEND_SWAP;
	if (tally_encode_swap(&s->enc, s->win, pos, s->win_start, s->conf.retention_s, s->win_id,
			      &v, fold_refuse, emit, s) == TALLY_FOLD_TOO_BIG)
		part_by_fields(s, pos);
	/* else sent, or nothing left to fold (the chunks applied already, or refused) */
}

/*
 * A redirect: MOVED (the map is stale; send it again by the new map), ASK (send it to the
 * named node after ASKING, once) or TRYAGAIN (a slot half migrated: again after this batch).
 */
static void
redirect(struct tally_sink *s, const struct pend *p, const redisReply *r)
{
	struct tally_cluster_node to;
	uint16_t slot;
	int ask = 0, node = -1;

	if (tally_parse_redirect(r->str, r->len, &ask, &slot, &to) == 0) {
		node = tally_slot_map_find(&s->map, to.host[0] ? to.host : s->conf.host, to.port);
		if (node < 0 && ask)
			/* importing into a master the map does not list yet (it has no slots): the
			 * slot's owner asks until the migration is done; again in a while */
			s->redo_at_ms = s->now_ms + TRYAGAIN_MS;
		else if (node < 0)
			s->map_stale = 1; /* a master we do not know: read the map again */
		else if (!ask)
			s->map.owner[slot] = (uint16_t)node; /* MOVED: the slot lives there now */
		if (!ask)
			node = -1;
	}
	if (has_prefix(r->str, r->len, "TRYAGAIN"))
		s->redo_at_ms = s->now_ms + TRYAGAIN_MS;
	s->st.redirects++;
	/*
	 * Data of the merge mode is sent again chunk by chunk; the stats and the top are written
	 * again soon anyway. In hset mode (EXPIRE, SET of latest go with the data) the window.
	 */
	if (p->kind == PEND_HLL && s->win != NULL && p->first < s->win->series) {
		/* the device again from its start: its data (idempotent) and its registers */
		uint32_t first = p->first;

		while (first > 0 && tally_table_at(s->win, first - 1)->device_id ==
					    tally_table_at(s->win, p->first)->device_id)
			first--;
		redo_at(s, first, tally_enc_device_end(s->win, p->first), node, 0);
	} else if (pend_data(p->kind) && s->conf.merge)
		redo_add(s, p, node);
	else if (!s->conf.merge && p->kind != PEND_ASKING)
		s->restart = 1;
}

/*
 * Redis refused the registers of distinct series pos for what they are (its key holds
 * another type): counted with its records, logged now and then; the series' count in the
 * window key is written all the same, and the rest of the window goes on.
 */
static void
hll_refused(struct tally_sink *s, uint32_t pos, const char *why, size_t whylen)
{
	const struct tally_slot *x;

	if (s->win == NULL || pos >= s->win->series)
		return;
	if (s->hll_refused_bits != NULL && pos < s->conf.max_series) {
		if (s->hll_refused_bits[pos / 64] & (1ULL << (pos % 64)))
			return;
		s->hll_refused_bits[pos / 64] |= 1ULL << (pos % 64);
	}
	x = tally_table_at(s->win, pos);
	s->st.refused++;
	s->st.refused_records += x->count;
	if (s->now_ms >= s->refused_log_ms + REFUSED_LOG_MS) {
		sink_log(s, 1,
			 "Redis refused tally:{%" PRIu64 "}:%" PRIu64 ":hll:%" PRIu32
			 " (the distinct count of %" PRIu64 " records): %.*s; %" PRIu64
			 " more refused since the last line",
			 x->device_id, s->win_start, x->metric_id, x->count,
			 (int)(whylen > 200 ? 200 : whylen), why, s->refused_unlogged);
		s->refused_log_ms = s->now_ms;
		s->refused_unlogged = 0;
	} else {
		s->refused_unlogged++;
	}
}

/* The reply of one pending command; returns its class for the batch. */
static enum reply_class
take_reply(struct tally_sink *s, const struct pend *p, const redisReply *r)
{
	enum reply_class c = classify(r);
	uint32_t pos = p->first, i;

	if (p->kind == PEND_WAIT && c == REPLY_OK) {
		/* fewer replicas have the batch than asked: not written yet (a failover could lose
		 * it) */
		if (r->type == REDIS_REPLY_INTEGER &&
		    r->integer >= (long long)s->conf.wait_replicas)
			return REPLY_OK;
		if (s->now_ms >= s->refused_log_ms + REFUSED_LOG_MS) {
			sink_log(s, 1,
				 "Redis: %lld of %u replicas acknowledged a batch in %" PRIu64
				 " ms (--redis-wait-replicas): written again later",
				 r->type == REDIS_REPLY_INTEGER ? r->integer : -1LL,
				 s->conf.wait_replicas, s->conf.timeout_ms / 2);
			s->refused_log_ms = s->now_ms;
		}
		s->st.wait_short++;
		return REPLY_NOT_NOW;
	}
	if (c == REPLY_NOT_NOW)
		return c;
	if (c == REPLY_REDIRECT) {
		redirect(s, p, r);
		return c;
	}
	if ((p->kind == PEND_DATA || p->kind == PEND_PUT) && r->type == REDIS_REPLY_ARRAY) {
		/* tally_merge2, tally_put2: one reply per device chunk (part), in order */
		for (i = 0; i < p->entries && s->win != NULL && pos < s->win->series; i++) {
			struct tally_enc_entry e;
			const redisReply *x = i < r->elements ? r->element[i] : NULL;

			pend_entry(&s->enc, s->win, p->kind, pos, &e);
			if (p->kind == PEND_PUT && x != NULL && x->type == REDIS_REPLY_INTEGER &&
			    x->integer == 2) {
				fold_after(s, &e); /* the key exists: fold into it */
				pos = e.first + e.n;
				continue;
			}
			s->fold_next = UINT32_MAX;
			if (x != NULL && x->type == REDIS_REPLY_ERROR) {
				if (has_prefix(x->str, x->len, "NORESTORE"))
					restore_off(s, pos, x->str, x->len);
				else if (classify(x) != REPLY_DATA)
					return REPLY_NOT_NOW;
				else
					refuse_span(s, &e, x->str, x->len);
			}
			pos = e.first + e.n;
		}
		return REPLY_OK;
	}
	if (p->kind == PEND_HLL && r->type == REDIS_REPLY_ARRAY) {
		/* tally_pf2: one reply per key, in the order of the distinct series from first */
		for (i = 0; i < r->elements && i < p->entries && s->win != NULL; i++) {
			const redisReply *x = r->element[i];

			/* the encoder's order: distinct series that have registers */
			while (pos < s->win->series &&
			       (tally_table_at(s->win, pos)->kind != TALLY_KIND_DISTINCT ||
				tally_table_at(s->win, pos)->side == 0))
				pos++;
			if (x->type == REDIS_REPLY_ERROR) {
				if (classify(x) != REPLY_DATA)
					return REPLY_NOT_NOW;
				hll_refused(s, pos, x->str, x->len);
			}
			pos++;
		}
		return REPLY_OK;
	}
	if (p->kind == PEND_READ && r->type == REDIS_REPLY_ARRAY && s->win != NULL &&
	    pos < s->win->series) {
		fold_reply(s, pos, r);
		return REPLY_OK;
	}
	if (p->kind == PEND_SWAP && s->win != NULL && pos < s->win->series) {
		struct tally_enc_entry e;

		tally_enc_part(&s->enc, s->win, pos, &e);
		/*
		 * 2: the key changed since it was read; 0 with a part of several chunks: the first
		 * chunk folded is there now, the others may not be. Read it again either way.
		 */
		if (r->type == REDIS_REPLY_INTEGER &&
		    (r->integer == 2 || (r->integer == 0 && e.chunks > 1))) {
			s->st.fold_retries++;
			fold_read(s, pos);
			return REPLY_OK;
		}
		if (r->type == REDIS_REPLY_INTEGER && r->integer == 1)
			s->st.folds++;
		if (c == REPLY_DATA && has_prefix(r->str, r->len, "NORESTORE")) {
			restore_off(s, pos, r->str, r->len);
			return REPLY_OK;
		}
	}
	if (c == REPLY_OK)
		return c;
	if (pend_data(p->kind)) {
		for (i = 0; i < p->entries && s->win != NULL && pos < s->win->series; i++) {
			struct tally_enc_entry e;

			pend_entry(&s->enc, s->win, p->kind, pos, &e);
			refuse_span(s, &e, r->str, r->len);
			pos = e.first + e.n;
		}
		return REPLY_DATA;
	}
	if (p->kind == PEND_COPY)
		s->st.refused_lost++;
	if (p->kind == PEND_HLL)
		s->st.refused += p->entries; /* the registers of every key of the call */
	if (s->now_ms >= s->refused_log_ms + REFUSED_LOG_MS) {
		sink_log(s, 1, "Redis refused a command: %.*s", (int)(r->len > 200 ? 200 : r->len),
			 r->str);
		s->refused_log_ms = s->now_ms;
	}
	return REPLY_DATA;
}

/*
 * Send what each node's output buffer holds, as far as its socket takes it now. The sink never
 * waits in a write: a Redis that reads slowly leaves the rest for the next poll.
 */
static int
nodes_write(struct tally_sink *s)
{
	uint32_t i;

	for (i = 0; i < s->nnodes; i++) {
		redisContext *c = s->node[i].ctx;

		while (c != NULL && sdslen(c->obuf) > 0) {
			ssize_t w = send(c->fd, c->obuf, sdslen(c->obuf), MSG_DONTWAIT | MSG_NOSIGNAL);

			if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				break;
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				sink_log(s, 1, "Redis at %s:%u: write failed: %s", s->node[i].host,
					 s->node[i].port, w < 0 ? strerror(errno) : "closed");
				return -1;
			}
			sdsrange(c->obuf, w, -1);
		}
	}
	return 0;
}

static uint64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* One reply taken off a node's pipeline: put it down to the command it answers. */
static void
node_take(struct tally_sink *s, struct sink_node *n, redisReply *r)
{
	struct pend p = n->pend[n->head];

	n->head = (n->head + 1) % s->pend_cap;
	n->n--;
	if (n->sent > 0)
		n->sent--;
	s->pending--;
	s->pending_cost -= p.cost;
	switch (take_reply(s, &p, r)) {
	case REPLY_NOT_NOW:
		s->not_now++;
		break;
	case REPLY_DATA:
		s->st.errors++;
		break;
	case REPLY_REDIRECT:
		break;
	default:
		s->st.commands++;
	}
	freeReplyObject(r);
}

/*
 * Take the replies of node i that have arrived, up to what the batch in flight waits for,
 * without waiting: what the socket holds now is read into hiredis's reader. 0, or -1 when
 * the connection failed.
 */
static int
node_read(struct tally_sink *s, uint32_t i)
{
	struct sink_node *n = &s->node[i];
	char buf[65536];
	int fed = 0;

	while (s->todo[i] > 0) {
		redisReply *r = NULL;
		ssize_t got;

		if (redisGetReplyFromReader(n->ctx, (void **)&r) != REDIS_OK) {
			sink_log(s, 1, "Redis at %s:%u: %s", n->host, n->port, n->ctx->errstr);
			return -1;
		}
		if (r != NULL) {
			s->todo[i]--;
			node_take(s, n, r);
			continue;
		}
		if (fed > 16)
			break; /* plenty for one poll: the rest at the next */
		got = recv(n->ctx->fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0) {
			sink_log(s, 1, "Redis at %s:%u: read failed: %s", n->host, n->port,
				 got < 0 ? strerror(errno) : "connection closed");
			return -1;
		}
		if (redisReaderFeed(n->ctx->reader, buf, (size_t)got) != REDIS_OK)
			return -1;
		fed++;
	}
	return 0;
}

/* Send again what was redirected: by the new map, or to the node an ASK named. */
static void
redo_send(struct tally_sink *s)
{
	uint64_t i, n = s->nredo;

	s->nredo = 0;
	for (i = 0; i < n && s->win != NULL; i++) {
		uint32_t pos = s->redo[i].first;

		s->force_node = s->redo[i].node;
		/*
		 * One device per call, as in a cluster (the keys of a call share a slot); a call
		 * may take more of the device than was redirected: merges are idempotent.
		 */
		while (pos < s->redo[i].end && pos < s->win->series)
			if (encode_data(s, &pos, 1, s->redo[i].fields) == 0)
				break;
		s->force_node = -1;
	}
}

/* WAIT on every node with a batch to send: its reply says how many replicas have it. */
static void
wait_append(struct tally_sink *s)
{
	char n[16], ms[24];
	const char *argv[3] = {"WAIT", n, ms};
	size_t argvlen[3] = {4, 0, 0};
	uint32_t i;

	argvlen[1] = (size_t)snprintf(n, sizeof(n), "%u", s->conf.wait_replicas);
	argvlen[2] = (size_t)snprintf(ms, sizeof(ms), "%" PRIu64,
				      s->conf.timeout_ms / 2 ? s->conf.timeout_ms / 2 : 1);
	for (i = 0; i < s->nnodes; i++) {
		if (s->node[i].n <= s->node[i].sent)
			continue;
		s->force_node = (int)i;
		append(s, PEND_WAIT, 3, argv, argvlen, NULL);
		s->force_node = -1;
	}
}

/*
 * Read the map again when it is stale, between batches (nothing pending on the old
 * connections); 0, or -1 when it cannot be read.
 */
static int
map_refresh(struct tally_sink *s)
{
	char err[256];
	uint64_t i;
	int refused;

	if (s->map_stale && s->cluster != 1)
		s->map_stale = 0; /* a single Redis (--redis-cluster no) has no map to read */
	if (!s->map_stale || s->pending != 0)
		return 0;
	if (cluster_connect(s, err, sizeof(err), &refused) != 0) {
		sink_log(s, 1, "%s", err);
		return -1;
	}
	/* node numbers changed with the map: what an ASK named is routed by the map */
	for (i = 0; i < s->nredo; i++)
		s->redo[i].node = -1;
	return 0;
}

/* What redirects left to send again, once the map is current and TRYAGAIN's wait is over. */
static void
redo_flush(struct tally_sink *s)
{
	if (s->nredo > 0 && !s->map_stale && s->now_ms >= s->redo_at_ms)
		redo_send(s);
}

/* What ends a batch whose replies are all read: the breaker's and the map's business. */
static int
batch_done(struct tally_sink *s)
{
	s->inflight = 0;
	if (s->not_now > 0) {
		/*
		 * Redis cannot take commands now (-OOM, -READONLY, ...): the window is not written.
		 * It is kept and written again (merges are idempotent) once the breaker lets it,
		 * or spooled meanwhile. Only a batch that goes through closes the breaker for good.
		 */
		s->st.errors += s->not_now;
		return -1;
	}
	if (s->lost_cmd) {
		s->lost_cmd = 0;
		if (s->cluster == 1)
			s->map_stale = 1;
		return -1;
	}
	if (map_refresh(s) != 0)
		return -1;
	if (s->restart)
		window_restart(s);
	else
		redo_flush(s);
	s->failures = 0;
	s->backoff_ms = s->conf.backoff_ms ? s->conf.backoff_ms : 100;
	if (s->pending > 0)
		s->first_pending_ms = s->now_ms;
	return 0;
}

/*
 * Move the batch in flight on: send what is unsent, take the replies there are. 1 while
 * replies are due, 0 when the batch is done, -EIO when it failed (connections dropped, the
 * window to be written again). The whole batch must be answered within --redis-timeout-ms:
 * a Redis that answers a reply every half second must not hold a window for minutes.
 */
static int
sink_progress(struct tally_sink *s)
{
	uint32_t i;
	int due = 0;

	if (nodes_write(s) != 0)
		goto fail;
	if (!s->inflight)
		return 0;
	for (i = 0; i < s->nnodes; i++) {
		if (s->todo[i] > 0 && node_read(s, i) != 0)
			goto fail;
		due |= s->todo[i] > 0;
	}
	if (due) {
		if (mono_ms() <= s->deadline_ms)
			return 1;
		sink_log(s, 1, "Redis at %s:%u: a batch not answered within %" PRIu64 " ms",
			 s->conf.host, s->conf.port, s->conf.timeout_ms);
		goto fail;
	}
	if (batch_done(s) == 0)
		return 0;
fail:
	sink_fail(s);
	return -EIO;
}

/*
 * Send the batch being filled to every node and start reading the replies of the batch sent
 * before it (all: of everything), so Redis works on one batch while the sink reads the last
 * one and fills the next. One round trip per node and batch; no wait here (sink_progress).
 */
static int
sink_flush(struct tally_sink *s, int all)
{
	uint32_t i;

	if (s->lost_cmd && sink_connected(s)) {
		s->lost_cmd = 0;
		sink_fail(s);
		return -EIO;
	}
	if (s->inflight || s->pending == 0 || !sink_connected(s))
		return 0;
	s->st.batches++;
	if (s->conf.wait_replicas > 0)
		wait_append(s);
	for (i = 0; i < s->nnodes; i++) {
		s->todo[i] = all ? s->node[i].n : s->node[i].sent;
		s->node[i].sent = s->node[i].n;
	}
	/* Copies of refused chunks, fold reads, are appended meanwhile: the next batch's. */
	s->unsent_cost = 0;
	s->not_now = 0;
	s->inflight = 1;
	s->deadline_ms = mono_ms() + s->conf.timeout_ms;
	return sink_progress(s) < 0 ? -EIO : 0;
}

int
tally_sink_wait(struct tally_sink *s, uint32_t max_us)
{
	struct pollfd fds[TALLY_CLUSTER_MAX_MASTERS];
	uint32_t i, nfds = 0;

	for (i = 0; i < s->nnodes; i++) {
		redisContext *c = s->node[i].ctx;

		if (c == NULL)
			continue;
		fds[nfds].fd = c->fd;
		fds[nfds].events = (short)((s->inflight && s->todo[i] > 0 ? POLLIN : 0) |
					   (sdslen(c->obuf) > 0 ? POLLOUT : 0));
		fds[nfds].revents = 0;
		if (fds[nfds].events != 0)
			nfds++;
	}
	if (nfds == 0) {
		usleep(max_us);
		return 0;
	}
	return poll(fds, nfds, (int)((max_us + 999) / 1000));
}

int
tally_sink_write_window(struct tally_sink *s, struct tally_table *t, uint64_t start_ms,
			const char *partial_id)
{
	if (s->win != NULL)
		return -EBUSY;
	if (s->conf.sort_scratch != NULL)
		tally_table_sort_fast(t, s->conf.sort_scratch);
	else
		tally_table_sort(t);
	s->win = t;
	s->win_start = start_ms;
	s->win_pos = 0;
	/* the names the window is written with: those kept before it started, to its end */
	s->enc.names_upto = s->conf.names != NULL ? s->conf.names->arena_used : 0;
	s->nredo = 0;
	s->restart = 0;
	s->fold_next = UINT32_MAX;
	if (s->refused_bits != NULL)
	{
		size_t words = ((t->series < s->conf.max_series ? t->series : s->conf.max_series) +
				63) / 64;

		memset(s->refused_bits, 0, words * sizeof(uint64_t));
		memset(s->hll_refused_bits, 0, words * sizeof(uint64_t));
	}
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
	if (s->pending > 0) {
		/*
		 * Replies still due would be put down to the next window: drop them with their
		 * connections (the window's merges so far are idempotent; it is written again).
		 */
		s->st.errors += s->pending;
		s->pending = s->pending_cost = s->unsent_cost = 0;
		nodes_close(s);
		if (s->cluster == 1)
			s->map_stale = 1;
	}
	*start_ms = s->win_start;
	s->win = NULL;
	s->win_pos = 0;
	s->nredo = 0;
	s->restart = 0;
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

	if (sink_connected(s))
		return;
	if (s->st.breaker_state == TALLY_BREAKER_OPEN) {
		if (s->now_ms < s->retry_at_ms)
			return;
		s->st.breaker_state = TALLY_BREAKER_HALF_OPEN;
	}
	if (sink_connect_all(s, err, sizeof(err), &refused) != 0) {
		nodes_close(s);
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

/* Now on the clock of window starts (intervals are on now_ms, a monotonic clock). */
static uint64_t
sink_wall_ms(const struct tally_sink *s)
{
	struct timespec ts;

	if (s->conf.wall_ms != NULL)
		return s->conf.wall_ms(s->conf.log_arg);
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

struct tally_table *
tally_sink_poll(struct tally_sink *s, uint64_t now_ms)
{
	struct tally_table *done;
	uint64_t wall;
	int encoding;

	s->now_ms = now_ms;
	sink_reconnect(s);
	if (!sink_connected(s) || s->st.breaker_state != TALLY_BREAKER_CLOSED)
		return NULL;
	/* The batch in flight moves on; the next is encoded meanwhile, up to --flush-batch. */
	if (sink_progress(s) < 0)
		return NULL;
	/* A stale map: send nothing more by it; the next flush reads all and reads the map. */
	while (s->win != NULL && s->win_pos < s->win->series && !s->map_stale &&
	       s->unsent_cost < s->conf.flush_batch) {
		uint32_t first = s->win_pos;

		encode_data(s, &s->win_pos, s->cluster == 1, 0);
		top_account(s, first, s->win_pos);
		/* A replayed older window must not replace the newest window's top. */
		if (s->win_pos == s->win->series && s->win_start >= s->top_window) {
			tally_encode_top(&s->enc, &s->top, s->win_start, emit, s);
			s->top_window = s->win_start;
		}
	}
	/* While the window is being encoded one batch stays in flight; at its end, none. */
	encoding = s->win != NULL && s->win_pos < s->win->series && !s->map_stale;
	if (s->unsent_cost >= s->conf.flush_batch ||
	    (s->pending > 0 && (!encoding || now_ms - s->first_pending_ms >= s->conf.flush_ms)))
		sink_flush(s, !encoding);
	if (s->win == NULL || s->win_pos < s->win->series || s->pending > 0 || s->inflight)
		return NULL;
	if (s->lost_cmd || s->map_stale || s->nredo > 0) {
		if (s->lost_cmd || map_refresh(s) != 0) {
			s->lost_cmd = 0;
			sink_fail(s);
		} else if (s->restart) {
			window_restart(s);
		} else {
			redo_flush(s);
		}
		return NULL;
	}
	done = s->win;
	s->win = NULL;
	s->st.windows_flushed++;
	wall = sink_wall_ms(s);
	s->st.flush_lag_ms = wall > s->win_start + s->conf.window_ms
				     ? wall - (s->win_start + s->conf.window_ms)
				     : 0;
	s->st.lag_buckets[tally_lag_bucket(s->st.flush_lag_ms)]++;
	s->st.lag_sum_ms += s->st.flush_lag_ms;
	return done;
}

int
tally_sink_sync(struct tally_sink *s, uint64_t now_ms)
{
	int rc;

	s->now_ms = now_ms;
	if (!sink_connected(s))
		return -EIO;
	/* The batch in flight first, then all the rest; waiting here (the end of the run). */
	while ((rc = sink_progress(s)) == 1)
		tally_sink_wait(s, 10000);
	if (rc != 0 || sink_flush(s, 1) != 0)
		return -EIO;
	while ((rc = sink_progress(s)) == 1)
		tally_sink_wait(s, 10000);
	return rc;
}

int
tally_sink_writing(const struct tally_sink *s)
{
	return s->win != NULL;
}

int
tally_sink_reload(struct tally_sink *s, const struct tally_sink_reload *r)
{
	const int moved = strcmp(r->host, s->host) != 0 || r->port != s->conf.port ||
			  strcmp(r->user, s->user) != 0 || strcmp(r->password, s->password) != 0;
	const int resize = r->flush_batch != s->conf.flush_batch;
	char was[300], now[300];
	uint32_t i;

	/*
	 * Connected: wait for the window being written and the batch in flight, so that each
	 * window goes whole to one Redis and no pending command refers to the old buffers. Not
	 * connected (Redis down, breaker open): now; the window starts over on the new one.
	 */
	if ((moved || resize) && sink_connected(s) &&
	    (s->win != NULL || s->pending > 0 || s->inflight || s->nredo > 0))
		return 0;
	if (resize) {
		struct redo *redo = calloc(r->flush_batch + BATCH_OVER, sizeof(*redo));

		if (redo == NULL) {
			sink_log(s, 1, "SIGHUP: no memory for --flush-batch %" PRIu64 ": kept %" PRIu64,
				 r->flush_batch, s->conf.flush_batch);
		} else {
			/* Every node's ring is empty (nothing pending): sized again at connect. */
			nodes_close(s);
			for (i = 0; i < TALLY_CLUSTER_MAX_MASTERS; i++) {
				free(s->node[i].pend);
				s->node[i].pend = NULL;
			}
			free(s->redo);
			s->redo = redo;
			s->nredo = 0;
			s->conf.flush_batch = r->flush_batch;
			s->pend_cap = 5 * (s->conf.flush_batch + BATCH_OVER);
			if (s->cluster == 1)
				s->map_stale = 1;
			window_restart(s);
		}
	}
	s->conf.flush_ms = r->flush_ms;
	if (!moved)
		return 1;
	snprintf(was, sizeof(was), "%s:%u", s->host, s->conf.port);
	snprintf(now, sizeof(now), "%s:%u", r->host, r->port);
	nodes_close(s);
	for (i = 0; i < TALLY_CLUSTER_MAX_MASTERS; i++) {
		free(s->node[i].pend);
		s->node[i].pend = NULL;
	}
	snprintf(s->host, sizeof(s->host), "%s", r->host);
	snprintf(s->user, sizeof(s->user), "%s", r->user);
	explicit_bzero(s->password, sizeof(s->password));
	snprintf(s->password, sizeof(s->password), "%s", r->password);
	s->conf.port = r->port;
	s->cluster = s->conf.cluster == TALLY_SINK_CLUSTER_NO ? 0 : -1;
	s->nnodes = 1;
	snprintf(s->node[0].host, sizeof(s->node[0].host), "%s", s->host);
	s->node[0].port = s->conf.port;
	s->map_stale = 0;
	s->force_node = -1;
	s->no_restore = 0;
	s->lost_cmd = 0;
	window_restart(s);
	/* A new server: try it at once, whatever the breaker thought of the old one. */
	s->st.breaker_state = TALLY_BREAKER_CLOSED;
	s->failures = 0;
	s->backoff_ms = s->conf.backoff_ms ? s->conf.backoff_ms : 100;
	if (strcmp(was, now) == 0)
		sink_log(s, 0, "SIGHUP: Redis at %s: new credentials, connecting again", now);
	else
		sink_log(s, 0, "SIGHUP: Redis: writing to %s now (was %s)", now, was);
	return 2;
}

const struct tally_sink_stats *
tally_sink_stats(const struct tally_sink *s)
{
	return &s->st;
}

uint32_t
tally_sink_masters(const struct tally_sink *s)
{
	return s->cluster == 1 ? s->nnodes : 1;
}
