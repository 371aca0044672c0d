/* SPDX-License-Identifier: BSD-3-Clause */
/* tally-query: read back what tally wrote to Redis (schema v2), one node or a cluster. */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "tally_auth.h"
#include "tally_catalog.h"
#include "tally_cluster.h"
#include "tally_ddsketch.h"
#include "tally_hll.h"
#include "tally_statsd.h"

#define Q_NAME "tally-query"
#define Q_DEFAULT_REDIS "127.0.0.1:6379"
#define Q_DEFAULT_TIMEOUT_MS 5000
#define Q_SCAN_COUNT "1000"
/* Commands in flight per pipelined round trip. */
#define Q_PIPELINE 1000
/* Redirects (MOVED, ASK) one command may follow; more: a cluster that has not settled. */
#define Q_REDIRECTS 5
/* Nodes talked to: the --redis one, the masters, and nodes named by ASK or MOVED. */
#define Q_MAX_NODES (2 * TALLY_CLUSTER_MAX_MASTERS)

#define Q_EXIT_ERROR 1
#define Q_EXIT_USAGE 2

/* Where tally writes the metric catalog: field the decimal id, value "NAME UNIT KIND". */
#define Q_CATALOG_KEY "tally:catalog"
#define Q_NAMES_KEY "tally:names" /* statsd series: metric id -> text */

/* quantile's --q when not given, and the most quantiles one --q may ask for. */
#define Q_DEFAULT_QUANTILES "0.5,0.9,0.99,0.999"
#define Q_MAX_QUANTILES 64

enum q_cluster_mode {
	Q_CLUSTER_AUTO, /* a cluster when INFO cluster says cluster_enabled:1 */
	Q_CLUSTER_YES,
	Q_CLUSTER_NO,
};

struct q_conf {
	const char *redis;
	char host[256];
	int port;
	uint64_t timeout_ms;
	bool json;
	bool csv;		   /* RFC 4180 rows instead of aligned tables */
	bool sparkline;		   /* range: a sparkline per field after the table */
	const char *user;	   /* NULL: the default user */
	const char *password_file; /* NULL: no AUTH */
	enum q_cluster_mode cluster;
};

/* A Redis node: the --redis one, a master of the slot map, or a node a redirect named. */
struct q_node {
	char host[TALLY_CLUSTER_HOST_LEN];
	uint16_t port;
	char name[TALLY_CLUSTER_HOST_LEN + 32]; /* in messages: as given, or host:port */
	redisContext *c;			/* NULL until first used */
};

/*
 * Where commands go: the --redis node (node[0]), or in cluster mode the master that owns the
 * slot of each command's key, as the slot map says.
 */
struct q_redis {
	const struct q_conf *conf;
	bool cluster;
	struct tally_slot_map *map;			       /* cluster mode only */
	struct q_node *master_node[TALLY_CLUSTER_MAX_MASTERS]; /* the node of each map master */
	struct q_node node[Q_MAX_NODES];
	uint32_t nnodes;
};

/* A command formatted once (RESP), so that a redirect can send it again elsewhere. */
struct q_cmd {
	char *buf;
	int len;
	uint16_t slot; /* of its key */
};

/* The five per-metric fields of a window hash, in output order. */
enum q_field {
	Q_COUNT,
	Q_SUM,
	Q_MIN,
	Q_MAX,
	Q_LAST,
	Q_NB_FIELDS,
};

static const char *const q_field_names[Q_NB_FIELDS] = {"count", "sum", "min", "max", "last"};

/* One metric's fields; `have` has bit (1 << q_field) for each field present. */
struct q_stats {
	uint64_t count;
	double val[Q_NB_FIELDS]; /* Q_SUM .. Q_LAST; val[Q_COUNT] unused */
	unsigned int have;
};

struct q_metric {
	uint32_t metric;
	char *series; /* a statsd series: its text (the field names), else NULL */
	struct q_stats st;
};

/* A window key `tally:{device}:window_ms`, as found by SCAN. */
struct q_key {
	char *name;
	size_t len;
	uint64_t device;
	uint64_t window;
};

struct q_keys {
	struct q_key *v;
	size_t n;
	size_t cap;
};

/* Totals of one (device, metric) series, in an open-addressing hash map. */
struct q_series {
	uint64_t device;
	uint32_t metric;
	bool used;
	struct q_stats st;
};

struct q_series_map {
	struct q_series *slots;
	size_t cap;
	size_t n;
};

/* Aligned text table, or CSV; cells are owned by the table, NULL for an absent value. */
struct q_table {
	unsigned int ncols;
	unsigned int left; /* bit j: column j is text, left-aligned (column 0 always is) */
	bool csv;
	const char *const *head;
	char **cells;
	size_t rows;
	size_t cap;
};

/* Devices lo..hi, both included: one item of --devices. */
struct q_span {
	uint64_t lo;
	uint64_t hi;
};

/* tally:catalog as read: entries by ascending id; present is false when Redis has none. */
struct q_catalog {
	bool present;
	struct tally_catalog_entry *e;
	size_t n;
	char *error; /* Redis's answer when it would not give the key, or NULL */
};

/* Arguments and options of a command, parsed before connecting. */
struct q_args {
	bool has_device;
	uint64_t device;
	uint32_t metric;
	const char *metric_name; /* METRIC given as a name: resolved through the catalog */
	char *series;		 /* a statsd series: its text, which names its fields; or NULL */
	struct q_catalog cat;	 /* commands that take Q_NAMES: read after connecting */
	uint64_t from;
	bool has_to;
	uint64_t to;
	struct q_span *devices; /* --devices: sorted, disjoint, apart; NULL: DEVICE (or all) */
	size_t ndevices;
	double *q; /* quantile's --q, in the order given */
	size_t nq;
};

/* What a command takes besides its positional arguments. */
#define Q_TAKES_TIME (1u << 0)	  /* --from, --to */
#define Q_TAKES_DEVICES (1u << 1) /* --devices instead of DEVICE */
#define Q_TAKES_Q (1u << 2)	  /* --q */
#define Q_NAMES (1u << 3)	  /* names and units of tally:catalog; METRIC may be a name */

struct q_command {
	const char *name;
	const char *args;
	const char *alt_args; /* a second form for --help, or NULL */
	int min_args;
	int max_args;
	unsigned int takes;
	int (*run)(struct q_redis *q, const struct q_conf *conf, const struct q_args *a);
};

/* Parses one key name SCAN returned: 0 and its device and window, or -EINVAL to skip it. */
typedef int (*q_key_parse_fn)(const char *s, size_t len, const struct q_args *a,
			      uint64_t *device, uint64_t *window);

static void __attribute__((noreturn, format(printf, 2, 3)))
q_exit(int status, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, Q_NAME ": ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(status);
}

static void *
q_realloc(void *p, size_t n, size_t size)
{
	p = reallocarray(p, n, size);
	if (p == NULL)
		q_exit(Q_EXIT_ERROR, "out of memory");
	return p;
}

static char *
q_strndup(const char *s, size_t len)
{
	char *d = strndup(s, len);

	if (d == NULL)
		q_exit(Q_EXIT_ERROR, "out of memory");
	return d;
}

static char * __attribute__((format(printf, 1, 2)))
q_asprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int rc;

	va_start(ap, fmt);
	rc = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (rc < 0)
		q_exit(Q_EXIT_ERROR, "out of memory");
	return s;
}

/* Strict decimal: digits only, no sign or blanks, within [0, max]. */
static int
parse_u64(const char *s, size_t len, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char buf[24];
	char *end;

	if (len == 0 || len >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (buf[0] < '0' || buf[0] > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(buf, &end, 10);
	if (*end != '\0' || errno != 0 || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

static uint64_t
parse_arg_u64(const char *what, const char *s, uint64_t max)
{
	uint64_t v;

	if (parse_u64(s, strlen(s), max, &v) != 0)
		q_exit(Q_EXIT_USAGE, "%s: '%s' is not an integer in [0, %" PRIu64 "]", what, s,
		       max);
	return v;
}

/* The value of the n digits at s, or -1 when one of them is not a digit. */
static int
parse_digits(const char *s, unsigned int n)
{
	int v = 0;

	for (; n > 0; n--, s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (*s - '0');
	}
	return v;
}

/*
 * ISO 8601 with seconds: 2026-12-04T01:23:45[.fraction](Z|+HH:MM|-HH:MM), to epoch ms (the
 * fraction truncated to ms). Dates are checked whole: Feb 30 is an error, not Mar 2.
 */
static int
parse_iso_time(const char *s, uint64_t *ms)
{
	struct tm tm = {0};
	int64_t frac = 0;
	int64_t offset_s = 0;
	int64_t t;
	int scale;
	time_t secs;
	const char *p;

	if (strlen(s) < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
	    s[16] != ':')
		return -EINVAL;
	tm.tm_year = parse_digits(s, 4) - 1900;
	tm.tm_mon = parse_digits(s + 5, 2) - 1;
	tm.tm_mday = parse_digits(s + 8, 2);
	tm.tm_hour = parse_digits(s + 11, 2);
	tm.tm_min = parse_digits(s + 14, 2);
	tm.tm_sec = parse_digits(s + 17, 2);
	if (tm.tm_year < 70 || tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 ||
	    tm.tm_hour < 0 || tm.tm_hour > 23 || tm.tm_min < 0 || tm.tm_min > 59 || tm.tm_sec < 0 ||
	    tm.tm_sec > 59)
		return -EINVAL;
	p = s + 19;
	if (*p == '.') {
		for (p++, scale = 100; *p >= '0' && *p <= '9'; p++, scale /= 10)
			frac += scale * (*p - '0');
		if (scale == 100)
			return -EINVAL;
	}
	if ((p[0] == '+' || p[0] == '-') && strlen(p) == 6 && p[3] == ':') {
		int hh = parse_digits(p + 1, 2);
		int mm = parse_digits(p + 4, 2);

		if (hh < 0 || hh > 23 || mm < 0 || mm > 59)
			return -EINVAL;
		offset_s = (p[0] == '-' ? -1 : 1) * (int64_t)(hh * 3600 + mm * 60);
	} else if (strcmp(p, "Z") != 0) {
		return -EINVAL;
	}
	secs = timegm(&tm);
	/* timegm normalises an impossible date (Feb 30) into the next month: refuse it. */
	if (secs == (time_t)-1 || tm.tm_mday != parse_digits(s + 8, 2))
		return -EINVAL;
	t = (int64_t)secs - offset_s;
	if (t < 0)
		return -ERANGE;
	*ms = (uint64_t)t * 1000 + (uint64_t)frac;
	return 0;
}

/*
 * A time given to range: epoch ms (digits only), ISO 8601 (see parse_iso_time), or a time
 * before now_ms: -N followed by s, m, h or d. Exits with a usage error naming what.
 */
static uint64_t
parse_arg_time(const char *what, const char *s, uint64_t now_ms)
{
	static const char units[] = "smhd";
	static const uint64_t unit_ms[] = {1000, 60 * 1000, 3600 * 1000, 24 * 3600 * 1000};
	const char *u;
	size_t len = strlen(s);
	uint64_t v;

	if (parse_u64(s, len, UINT64_MAX, &v) == 0)
		return v;
	if (len >= 3 && s[0] == '-' && (u = strchr(units, s[len - 1])) != NULL &&
	    parse_u64(s + 1, len - 2, UINT64_MAX / unit_ms[u - units], &v) == 0 &&
	    v * unit_ms[u - units] <= now_ms)
		return now_ms - v * unit_ms[u - units];
	if (parse_iso_time(s, &v) == 0)
		return v;
	q_exit(Q_EXIT_USAGE,
	       "%s: '%s' is not a time: epoch ms, ISO 8601 (2026-12-04T01:23:45Z) or before now "
	       "(-30s, -15m, -2h, -1d)",
	       what, s);
}

/* ISO 8601 UTC with ms of an epoch ms, "2026-12-04T01:23:45.000Z", into buf. */
static const char *
fmt_time(uint64_t ms, char *buf, size_t size)
{
	time_t secs = (time_t)(ms / 1000);
	struct tm tm;

	if (ms / 1000 > (uint64_t)INT64_MAX || gmtime_r(&secs, &tm) == NULL)
		snprintf(buf, size, "-");
	else
		snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900,
			 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
			 (unsigned int)(ms % 1000));
	return buf;
}

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
parse_redis_addr(struct q_conf *conf)
{
	const char *s = conf->redis;
	const char *host = s;
	const char *colon;
	size_t hlen;
	uint64_t port;

	if (s[0] == '[') {
		colon = strstr(s, "]:");
		host = s + 1;
		if (colon != NULL)
			colon++;
	} else {
		colon = strrchr(s, ':');
	}
	if (colon == NULL)
		q_exit(Q_EXIT_USAGE, "--redis: '%s' is not HOST:PORT", s);
	hlen = (size_t)(colon - host) - (s[0] == '[' ? 1 : 0);
	if (hlen == 0 || hlen >= sizeof(conf->host))
		q_exit(Q_EXIT_USAGE, "--redis: '%s' is not HOST:PORT", s);
	if (parse_u64(colon + 1, strlen(colon + 1), 65535, &port) != 0 || port == 0)
		q_exit(Q_EXIT_USAGE, "--redis: port of '%s' is not in [1, 65535]", s);
	memcpy(conf->host, host, hlen);
	conf->host[hlen] = '\0';
	conf->port = (int)port;
}

/* A node's address as host:port, an IPv6 host in brackets. */
static void
q_node_init(struct q_node *n, const char *host, uint16_t port)
{
	snprintf(n->host, sizeof(n->host), "%s", host);
	n->port = port;
	snprintf(n->name, sizeof(n->name), strchr(host, ':') != NULL ? "[%s]:%u" : "%s:%u", host,
		 port);
	n->c = NULL;
}

/* Connect and authenticate: a new context for each node, all with the same password file. */
static redisContext *
q_connect(const struct q_conf *conf, const struct q_node *n)
{
	struct timeval tv = {
		.tv_sec = (time_t)(conf->timeout_ms / 1000),
		.tv_usec = (suseconds_t)(conf->timeout_ms % 1000) * 1000,
	};
	char password[TALLY_AUTH_PASSWORD_SIZE] = "";
	redisContext *c;
	char err[512];
	int rc = -1;

	/* The file first: an unsafe one is refused before anything is sent. */
	if (conf->password_file != NULL &&
	    tally_password_file_read(conf->password_file, password, sizeof(password), err,
				     sizeof(err)) != 0)
		q_exit(Q_EXIT_ERROR, "%s", err);
	c = redisConnectWithTimeout(n->host, n->port, tv);
	if (c == NULL)
		snprintf(err, sizeof(err), "cannot connect to %s: out of memory", n->name);
	else if (c->err != 0)
		snprintf(err, sizeof(err), "cannot connect to %s: %s", n->name, c->errstr);
	else if (redisSetTimeout(c, tv) != REDIS_OK)
		snprintf(err, sizeof(err), "cannot set timeout on %s: %s", n->name, c->errstr);
	else
		rc = tally_redis_auth(c, conf->user, password, err, sizeof(err));
	explicit_bzero(password, sizeof(password));
	if (rc != 0)
		q_exit(Q_EXIT_ERROR, "%s", err);
	return c;
}

/* The node's connection, opened at first use. */
static redisContext *
q_node_ctx(struct q_redis *q, struct q_node *n)
{
	if (n->c == NULL)
		n->c = q_connect(q->conf, n);
	return n->c;
}

/* The node at host:port, added (not yet connected) when new. */
static struct q_node *
q_node_get(struct q_redis *q, const char *host, uint16_t port)
{
	uint32_t i;

	for (i = 0; i < q->nnodes; i++)
		if (q->node[i].port == port && strcmp(q->node[i].host, host) == 0)
			return &q->node[i];
	if (q->nnodes == Q_MAX_NODES)
		q_exit(Q_EXIT_ERROR, "more than %d Redis nodes to talk to", Q_MAX_NODES);
	q_node_init(&q->node[q->nnodes], host, port);
	return &q->node[q->nnodes++];
}

/* Dies on an error reply; a reply of another type is the caller's check. */
static redisReply *
q_check(redisReply *r, const char *what)
{
	if (r->type == REDIS_REPLY_ERROR)
		q_exit(Q_EXIT_ERROR, "redis %s: %s", what, r->str);
	return r;
}

/* The next reply on n's connection; dies on a transport error. */
static redisReply *
q_read(const struct q_redis *q, struct q_node *n, const char *what)
{
	void *r = NULL;

	if (redisGetReply(n->c, &r) != REDIS_OK || r == NULL) {
		if (q->cluster)
			q_exit(Q_EXIT_ERROR, "redis %s at %s: %s", what, n->name,
			       n->c->err ? n->c->errstr : "no reply");
		q_exit(Q_EXIT_ERROR, "redis %s: %s", what, n->c->err ? n->c->errstr : "no reply");
	}
	return r;
}

/* Queue a formatted command on n's connection (sent with the first read). */
static void
q_append(struct q_redis *q, struct q_node *n, const char *what, const char *buf, size_t len)
{
	redisContext *c = q_node_ctx(q, n);

	if (redisAppendFormattedCommand(c, buf, len) != REDIS_OK)
		q_exit(Q_EXIT_ERROR, "redis %s: %s", what, c->errstr);
}

/*
 * One command to one node, whatever the slots (INFO, CLUSTER, SCAN); never redirected. fmt is
 * hiredis's: printf conversions, and %b for a binary string with its length.
 */
static redisReply *
q_node_command(struct q_redis *q, struct q_node *n, const char *what, const char *fmt, ...)
{
	va_list ap;
	char *buf;
	int len;

	va_start(ap, fmt);
	len = redisvFormatCommand(&buf, fmt, ap);
	va_end(ap);
	if (len < 0)
		q_exit(Q_EXIT_ERROR, "out of memory");
	q_append(q, n, what, buf, (size_t)len);
	redisFreeCommand(buf);
	return q_read(q, n, what);
}

/*
 * Load the slot map from node n: CLUSTER SHARDS, or CLUSTER SLOTS from a Redis older than 7.0
 * that does not know SHARDS. The masters' connections are opened as commands need them.
 */
static void
q_map_load(struct q_redis *q, struct q_node *from)
{
	struct tally_slot_map *m = q->map;
	const char *what = "CLUSTER SHARDS";
	char err[256];
	redisReply *r;
	uint32_t i;
	int rc;

	r = q_node_command(q, from, what, "CLUSTER SHARDS");
	if (r->type == REDIS_REPLY_ERROR && strcasestr(r->str, "unknown subcommand") != NULL) {
		freeReplyObject(r);
		what = "CLUSTER SLOTS";
		r = q_node_command(q, from, what, "CLUSTER SLOTS");
	}
	q_check(r, what);
	if (strcmp(what, "CLUSTER SHARDS") == 0)
		rc = tally_slot_map_from_shards(m, r, err, sizeof(err));
	else
		rc = tally_slot_map_from_slots(m, r, err, sizeof(err));
	freeReplyObject(r);
	if (rc != 0)
		q_exit(Q_EXIT_ERROR, "%s (from %s)", err, from->name);
	if (m->nmasters == 0)
		q_exit(Q_EXIT_ERROR, "%s: no master serves any slot (from %s)", what, from->name);
	for (i = 0; i < m->nmasters; i++) {
		/* An empty host is the host of the node that answered. */
		if (m->master[i].host[0] == '\0')
			snprintf(m->master[i].host, sizeof(m->master[i].host), "%s", from->host);
		q->master_node[i] = q_node_get(q, m->master[i].host, m->master[i].port);
	}
}

/* Open the --redis node; in cluster mode (asked for, or auto and INFO says so) load the map. */
static void
q_open(struct q_redis *q, const struct q_conf *conf)
{
	struct q_node *seed;
	redisReply *r;

	memset(q, 0, sizeof(*q));
	q->conf = conf;
	seed = q_node_get(q, conf->host, (uint16_t)conf->port);
	/* Messages about this node name it as it was given. */
	snprintf(seed->name, sizeof(seed->name), "%s", conf->redis);
	q_node_ctx(q, seed);
	if (conf->cluster == Q_CLUSTER_AUTO) {
		/* A refusal (an ACL without INFO, NOAUTH) leaves it to the commands to say. */
		r = q_node_command(q, seed, "INFO", "INFO cluster");
		q->cluster = r->type == REDIS_REPLY_STRING &&
			     strstr(r->str, "cluster_enabled:1") != NULL;
		freeReplyObject(r);
	} else {
		q->cluster = conf->cluster == Q_CLUSTER_YES;
	}
	if (!q->cluster)
		return;
	q->map = malloc(sizeof(*q->map));
	if (q->map == NULL)
		q_exit(Q_EXIT_ERROR, "out of memory");
	q_map_load(q, seed);
}

static void
q_close(struct q_redis *q)
{
	uint32_t i;

	for (i = 0; i < q->nnodes; i++)
		if (q->node[i].c != NULL)
			redisFree(q->node[i].c);
	free(q->map);
}

/* The node a command on this slot goes to: the seed, or the master owning the slot. */
static struct q_node *
q_slot_node(struct q_redis *q, uint16_t slot)
{
	if (!q->cluster)
		return &q->node[0];
	if (q->map->owner[slot] == TALLY_SLOT_NONE)
		q_map_load(q, &q->node[0]);
	if (q->map->owner[slot] == TALLY_SLOT_NONE)
		q_exit(Q_EXIT_ERROR, "no master serves slot %u in the cluster map of %s", slot,
		       q->node[0].name);
	return q->master_node[q->map->owner[slot]];
}

/* The node of master i of the slot map, connected. */
static struct q_node *
q_master(struct q_redis *q, uint32_t i)
{
	struct q_node *n = q->master_node[i];

	q_node_ctx(q, n);
	return n;
}

/* A command on key, formatted as q_node_command() formats. */
static void
q_cmd_format(struct q_cmd *cmd, const char *key, size_t keylen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cmd->len = redisvFormatCommand(&cmd->buf, fmt, ap);
	va_end(ap);
	if (cmd->len < 0)
		q_exit(Q_EXIT_ERROR, "out of memory");
	cmd->slot = tally_key_slot(key, keylen);
}

/* A command whose key is argv[1]. */
static void
q_cmd_argv(struct q_cmd *cmd, int argc, const char **argv)
{
	cmd->len = redisFormatCommandArgv(&cmd->buf, argc, argv, NULL);
	if (cmd->len < 0)
		q_exit(Q_EXIT_ERROR, "out of memory");
	cmd->slot = tally_key_slot(argv[1], strlen(argv[1]));
}

static void
q_cmd_free(struct q_cmd *cmd)
{
	redisFreeCommand(cmd->buf);
	cmd->buf = NULL;
}

/*
 * Follow the redirects of a cluster reply r that node `from` gave to cmd: MOVED refreshes the
 * map from the new owner and sends cmd there; ASK sends ASKING and cmd to the node named, for
 * this command only. Returns the first reply that is not a redirect. Never called with
 * replies pending on any connection.
 */
static redisReply *
q_follow(struct q_redis *q, const char *what, const struct q_cmd *cmd, struct q_node *from,
	 redisReply *r)
{
	static const char asking[] = "*1\r\n$6\r\nASKING\r\n";
	struct tally_cluster_node to;
	struct q_node *n;
	redisReply *ok;
	uint16_t slot;
	int hops;
	int ask;

	for (hops = 0; r->type == REDIS_REPLY_ERROR &&
		       tally_parse_redirect(r->str, r->len, &ask, &slot, &to) == 0;
	     hops++) {
		if (hops == Q_REDIRECTS)
			q_exit(Q_EXIT_ERROR, "redis %s: %s (still redirected after %d hops)", what,
			       r->str, Q_REDIRECTS);
		freeReplyObject(r);
		n = q_node_get(q, to.host[0] != '\0' ? to.host : from->host, to.port);
		if (!ask)
			q_map_load(q, n);
		else
			q_append(q, n, "ASKING", asking, sizeof(asking) - 1);
		q_append(q, n, what, cmd->buf, (size_t)cmd->len);
		if (ask) {
			ok = q_check(q_read(q, n, "ASKING"), "ASKING");
			freeReplyObject(ok);
		}
		r = q_read(q, n, what);
		from = n;
	}
	return r;
}

/*
 * Send n commands, each to the node serving its key, pipelined (every command is written
 * before any reply is read), and store their replies in order in out (the caller frees them).
 * Error replies are left to the caller, redirects are followed; dies on a transport error.
 */
static void
q_run_many(struct q_redis *q, const char *what, const struct q_cmd *cmds, size_t n,
	   redisReply **out)
{
	struct q_node **to = q_realloc(NULL, n ? n : 1, sizeof(*to));
	size_t i;

	/* Route everything first: a map reload must not interleave with queued commands. */
	for (i = 0; i < n; i++) {
		to[i] = q_slot_node(q, cmds[i].slot);
		q_node_ctx(q, to[i]);
	}
	for (i = 0; i < n; i++)
		q_append(q, to[i], what, cmds[i].buf, (size_t)cmds[i].len);
	for (i = 0; i < n; i++)
		out[i] = q_read(q, to[i], what);
	for (i = 0; q->cluster && i < n; i++)
		out[i] = q_follow(q, what, &cmds[i], to[i], out[i]);
	free(to);
}

/* One command routed by its key; dies on an error reply. The command is freed. */
static redisReply *
q_run(struct q_redis *q, const char *what, struct q_cmd *cmd)
{
	redisReply *r;

	q_run_many(q, what, cmd, 1, &r);
	q_cmd_free(cmd);
	return q_check(r, what);
}

/*
 * The reply to a read of one window key, or NULL when that key is not a hash (someone else's
 * key with a window key's name): skipped with a warning, the rest is still read.
 */
static redisReply *
q_key_reply(redisReply *r, const char *what, const char *key, size_t keylen)
{
	if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "WRONGTYPE", 9) == 0) {
		fprintf(stderr, Q_NAME ": skipping %.*s: %s\n", (int)keylen, key, r->str);
		freeReplyObject(r);
		return NULL;
	}
	return q_check(r, what);
}

static bool
reply_is_pairs(const redisReply *r)
{
	size_t i;

	if (r->type != REDIS_REPLY_ARRAY || r->elements % 2 != 0)
		return false;
	for (i = 0; i < r->elements; i++)
		if (r->element[i]->type != REDIS_REPLY_STRING)
			return false;
	return true;
}

/*
 * Parse a hash field name "<metric>:<stat>": the metric's decimal id, or a statsd series'
 * text (`api.latency{env:prod}:count`: the stat follows the last ':'; the metric id is the
 * text's hash, and *series points at the text, else NULL). -EINVAL for other fields such as
 * "window" or an applied mark.
 */
static int
parse_metric_field(const char *s, size_t len, uint32_t *metric, enum q_field *which,
		   const char **series, size_t *series_len)
{
	const char *colon = s + len;
	size_t slen, nlen;
	uint64_t m;
	int f;

	while (colon > s && colon[-1] != ':')
		colon--;
	if (colon == s)
		return -EINVAL;
	colon--;
	nlen = (size_t)(colon - s);
	*series = NULL;
	if (parse_u64(s, nlen, UINT32_MAX, &m) != 0) {
		if (nlen == 0)
			return -EINVAL;
		m = tally_statsd_metric_id(s, nlen);
		*series = s;
		*series_len = nlen;
	}
	slen = len - (size_t)(colon + 1 - s);
	for (f = 0; f < Q_NB_FIELDS; f++) {
		if (strlen(q_field_names[f]) == slen &&
		    memcmp(colon + 1, q_field_names[f], slen) == 0) {
			*metric = (uint32_t)m;
			*which = (enum q_field)f;
			return 0;
		}
	}
	return -EINVAL;
}

/* Store the value of field f into st: an integer count or a double; -EINVAL if neither. */
static int
parse_stat_value(enum q_field f, const char *s, size_t len, struct q_stats *st)
{
	char buf[64];
	char *end;
	double d;

	if (f == Q_COUNT)
		return parse_u64(s, len, UINT64_MAX, &st->count);
	if (len == 0 || len >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, len);
	buf[len] = '\0';
	errno = 0;
	d = strtod(buf, &end);
	if (*end != '\0' || errno == ERANGE)
		return -EINVAL;
	st->val[f] = d;
	return 0;
}

/* Parse one field/value pair of a window hash into st; -EINVAL when it is not a metric stat. */
static int
parse_metric_pair(const redisReply *field, const redisReply *value, uint32_t *metric,
		  enum q_field *which, struct q_stats *st, const char **series, size_t *series_len)
{
	if (parse_metric_field(field->str, field->len, metric, which, series, series_len) != 0)
		return -EINVAL;
	return parse_stat_value(*which, value->str, value->len, st);
}

/* The longest field name: a statsd series' text (1,024 bytes at most) and `:sketch`. */
#define Q_FIELD_MAX (TALLY_STATSD_SERIES_MAX + 16)

/* The window hash field of the metric asked for: `<id>:<stat>`, or `<series text>:<stat>`. */
static void
metric_field(const struct q_args *a, const char *stat, char *buf, size_t size)
{
	if (a->series != NULL)
		snprintf(buf, size, "%s:%s", a->series, stat);
	else
		snprintf(buf, size, "%" PRIu32 ":%s", a->metric, stat);
}

/* Fold one window's fields into a running total: counts and sums add, min/max fold. */
static void
stats_fold(struct q_stats *acc, const struct q_stats *w, enum q_field f)
{
	bool first = !(acc->have & (1u << f));

	switch (f) {
	case Q_COUNT:
		acc->count += w->count;
		break;
	case Q_SUM:
		acc->val[f] = first ? w->val[f] : acc->val[f] + w->val[f];
		break;
	case Q_MIN:
		acc->val[f] = first || w->val[f] < acc->val[f] ? w->val[f] : acc->val[f];
		break;
	case Q_MAX:
		acc->val[f] = first || w->val[f] > acc->val[f] ? w->val[f] : acc->val[f];
		break;
	case Q_LAST:
	case Q_NB_FIELDS:
		acc->val[Q_LAST] = w->val[Q_LAST];
		break;
	}
	acc->have |= 1u << f;
}

static struct q_metric *
metric_find_or_add(struct q_metric **v, size_t *n, uint32_t metric)
{
	size_t i;

	for (i = 0; i < *n; i++)
		if ((*v)[i].metric == metric)
			return &(*v)[i];
	*v = q_realloc(*v, *n + 1, sizeof(**v));
	memset(&(*v)[*n], 0, sizeof(**v));
	(*v)[*n].metric = metric;
	return &(*v)[(*n)++];
}

static int
metric_cmp(const void *a, const void *b)
{
	const struct q_metric *x = a;
	const struct q_metric *y = b;

	return (x->metric > y->metric) - (x->metric < y->metric);
}

/* Cell text of one stats field: integers and %.17g doubles, NULL when absent. */
static char *
stats_cell(const struct q_stats *st, enum q_field f)
{
	if (!(st->have & (1u << f)))
		return NULL;
	if (f == Q_COUNT)
		return q_asprintf("%" PRIu64, st->count);
	return q_asprintf("%.17g", st->val[f]);
}

static void
json_double(double d)
{
	if (isfinite(d))
		printf("%.17g", d);
	else
		printf("null");
}

static void
json_string(const char *s, size_t len)
{
	size_t i;

	putchar('"');
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

static void
json_stats(const struct q_stats *st, unsigned int fields)
{
	int f;

	for (f = 0; f < Q_NB_FIELDS; f++) {
		if (!(fields & (1u << f)))
			continue;
		printf(",\"%s\":", q_field_names[f]);
		if (!(st->have & (1u << f)))
			printf("null");
		else if (f == Q_COUNT)
			printf("%" PRIu64, st->count);
		else
			json_double(st->val[f]);
	}
}

static void
table_init(struct q_table *t, const struct q_conf *conf, const char *const *head,
	   unsigned int ncols)
{
	memset(t, 0, sizeof(*t));
	t->head = head;
	t->ncols = ncols;
	t->left = 1;
	t->csv = conf->csv;
}

/* Append a row; takes ownership of the ncols cell strings. */
static void
table_add(struct q_table *t, char **cells)
{
	if (t->rows == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 64;
		t->cells = q_realloc(t->cells, t->cap * t->ncols, sizeof(*t->cells));
	}
	memcpy(&t->cells[t->rows * t->ncols], cells, t->ncols * sizeof(*cells));
	t->rows++;
}

/* A CSV field, quoted as RFC 4180 says when it holds a comma, a quote or a line break. */
static void
csv_field(const char *s)
{
	if (strpbrk(s, ",\"\r\n") == NULL) {
		fputs(s, stdout);
		return;
	}
	putchar('"');
	for (; *s != '\0'; s++) {
		if (*s == '"')
			putchar('"');
		putchar(*s);
	}
	putchar('"');
}

/*
 * A table: the first column and the text columns of t->left left-aligned (the last one not
 * padded), the others (numbers) right-aligned, two spaces apart, "-" for an absent value; or
 * CSV: a header line, then the rows, absent values empty.
 */
static void
table_print(struct q_table *t)
{
	size_t width[16] = {0};
	unsigned int j;
	size_t i;

	for (j = 0; j < t->ncols; j++)
		width[j] = strlen(t->head[j]);
	for (i = 0; i < t->rows * t->ncols; i++) {
		const char *s = t->cells[i];

		if (s != NULL && strlen(s) > width[i % t->ncols])
			width[i % t->ncols] = strlen(s);
	}
	for (i = 0; i <= t->rows; i++) {
		for (j = 0; j < t->ncols; j++) {
			const char *s = i == 0 ? t->head[j] : t->cells[(i - 1) * t->ncols + j];

			if (t->csv) {
				if (j > 0)
					putchar(',');
				csv_field(s != NULL ? s : "");
			} else if (j == 0) {
				printf("%-*s", (int)width[j], s != NULL ? s : "-");
			} else if (t->left & (1u << j)) {
				printf("  %-*s", j + 1 < t->ncols ? (int)width[j] : 0,
				       s != NULL ? s : "-");
			} else {
				printf("  %*s", (int)width[j], s != NULL ? s : "-");
			}
		}
		putchar('\n');
	}
	for (i = 0; i < t->rows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
}

static int
catalog_entry_cmp(const void *a, const void *b)
{
	const struct tally_catalog_entry *x = a;
	const struct tally_catalog_entry *y = b;

	return (x->id > y->id) - (x->id < y->id);
}

/*
 * Read tally:catalog (one key: on a cluster, from the master of its slot). A field that is not
 * tally's ("<id>" = "NAME UNIT KIND") is skipped with a warning, and so is the key when it is
 * not a hash. Names are an extra: an error reply (a node that does not hold the key under
 * --redis-cluster no, an ACL that keeps the user from it) leaves them out, kept in error for
 * a METRIC given as a name.
 */
static void
catalog_read(struct q_redis *q, struct q_catalog *cat)
{
	struct tally_catalog_entry *e;
	struct q_cmd cmd;
	redisReply *r;
	char why[256];
	uint64_t id;
	size_t i;

	memset(cat, 0, sizeof(*cat));
	q_cmd_format(&cmd, Q_CATALOG_KEY, strlen(Q_CATALOG_KEY), "HGETALL %s", Q_CATALOG_KEY);
	q_run_many(q, "HGETALL", &cmd, 1, &r);
	q_cmd_free(&cmd);
	if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "WRONGTYPE", 9) != 0) {
		cat->error = q_strndup(r->str, r->len);
		freeReplyObject(r);
		return;
	}
	r = q_key_reply(r, "HGETALL", Q_CATALOG_KEY, strlen(Q_CATALOG_KEY));
	if (r == NULL)
		return;
	if (!reply_is_pairs(r))
		q_exit(Q_EXIT_ERROR, "redis HGETALL: unexpected reply");
	cat->e = q_realloc(NULL, r->elements / 2 + 1, sizeof(*cat->e));
	for (i = 0; i < r->elements; i += 2) {
		const redisReply *f = r->element[i];
		const redisReply *v = r->element[i + 1];

		e = &cat->e[cat->n];
		if (parse_u64(f->str, f->len, UINT32_MAX, &id) != 0) {
			snprintf(why, sizeof(why), "not a metric id");
		} else if (tally_catalog_parse_entry(v->str, v->len, e, why, sizeof(why)) == 0) {
			e->id = (uint32_t)id;
			cat->n++;
			continue;
		}
		fprintf(stderr, Q_NAME ": skipping field '%.*s' of " Q_CATALOG_KEY ": %s\n",
			(int)(f->len > 64 ? 64 : f->len), f->str, why);
	}
	cat->present = cat->n > 0;
	qsort(cat->e, cat->n, sizeof(*cat->e), catalog_entry_cmp);
	freeReplyObject(r);
}

/* The catalog's entry of metric, or NULL. */
static const struct tally_catalog_entry *
catalog_find(const struct q_catalog *cat, uint32_t metric)
{
	const struct tally_catalog_entry key = {.id = metric};

	if (cat->n == 0)
		return NULL;
	return bsearch(&key, cat->e, cat->n, sizeof(*cat->e), catalog_entry_cmp);
}

/* A metric's name and unit as cells (NULL when the catalog gives none). */
static void
catalog_cells(const struct q_catalog *cat, uint32_t metric, char **name, char **unit)
{
	const struct tally_catalog_entry *e = catalog_find(cat, metric);

	*name = e != NULL ? q_strndup(e->name, strlen(e->name)) : NULL;
	*unit = e != NULL && e->unit[0] != '\0' ? q_strndup(e->unit, strlen(e->unit)) : NULL;
}

/* ,"name":...,"unit":... of a metric (null when the catalog gives none). */
static void
catalog_json(const struct q_catalog *cat, uint32_t metric)
{
	const struct tally_catalog_entry *e = catalog_find(cat, metric);

	printf(",\"name\":");
	if (e != NULL)
		json_string(e->name, strlen(e->name));
	else
		printf("null");
	printf(",\"unit\":");
	if (e != NULL && e->unit[0] != '\0')
		json_string(e->unit, strlen(e->unit));
	else
		printf("null");
}

/* "  series TEXT" after "metric M" in a header line, for a statsd series. */
static void
series_header(const struct q_args *a)
{
	if (a->series != NULL)
		printf("  series %s", a->series);
}

/* ,"series":"TEXT" for a statsd series. */
static void
series_json(const struct q_args *a)
{
	if (a->series != NULL) {
		printf(",\"series\":");
		json_string(a->series, strlen(a->series));
	}
}

/* "  name N  unit U" after "metric M" in a header line ("-" when the catalog gives none). */
static void
catalog_header(const struct q_catalog *cat, uint32_t metric)
{
	const struct tally_catalog_entry *e = catalog_find(cat, metric);

	printf("  name %s  unit %s", e != NULL ? e->name : "-",
	       e != NULL && e->unit[0] != '\0' ? e->unit : "-");
}

/*
 * Window keys are `tally:{<digits>}:<digits>`; `:latest`, a distinct metric's
 * `tally:{<digits>}:<digits>:hll:<metric>` and anything else are skipped.
 */
static int
parse_window_key(const char *s, size_t len, uint64_t *device, uint64_t *window)
{
	static const char prefix[] = "tally:{";
	const char *close;
	size_t plen = sizeof(prefix) - 1;

	if (len <= plen || memcmp(s, prefix, plen) != 0)
		return -EINVAL;
	close = memchr(s + plen, '}', len - plen);
	if (close == NULL || (size_t)(close - s) + 2 > len || close[1] != ':')
		return -EINVAL;
	if (parse_u64(s + plen, (size_t)(close - s) - plen, UINT64_MAX, device) != 0)
		return -EINVAL;
	return parse_u64(close + 2, len - (size_t)(close + 2 - s), UINT64_MAX, window);
}

/* True when device is one of those a names: DEVICE, the --devices list, or any. */
static bool
args_device(const struct q_args *a, uint64_t device)
{
	size_t lo = 0;
	size_t hi = a->ndevices;

	if (a->devices == NULL)
		return !a->has_device || device == a->device;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (device < a->devices[mid].lo)
			hi = mid;
		else if (device > a->devices[mid].hi)
			lo = mid + 1;
		else
			return true;
	}
	return false;
}

/* The one device a names, if it names exactly one: SCAN can then match its keys alone. */
static bool
args_one_device(const struct q_args *a, uint64_t *device)
{
	if (a->devices != NULL && a->ndevices == 1 && a->devices[0].lo == a->devices[0].hi) {
		*device = a->devices[0].lo;
		return true;
	}
	*device = a->device;
	return a->devices == NULL && a->has_device;
}

static int
scan_parse_window(const char *s, size_t len, const struct q_args *a, uint64_t *device,
		  uint64_t *window)
{
	(void)a;
	return parse_window_key(s, len, device, window);
}

/* A distinct metric's HLL, `tally:{<device>}:<window>:hll:<metric>`, of the metric asked for. */
static int
scan_parse_hll(const char *s, size_t len, const struct q_args *a, uint64_t *device,
	       uint64_t *window)
{
	char suffix[32];
	size_t slen = (size_t)snprintf(suffix, sizeof(suffix), ":hll:%" PRIu32, a->metric);

	if (len <= slen || memcmp(s + len - slen, suffix, slen) != 0)
		return -EINVAL;
	return parse_window_key(s, len - slen, device, window);
}

static int
key_cmp(const void *a, const void *b)
{
	const struct q_key *x = a;
	const struct q_key *y = b;

	if (x->device != y->device)
		return x->device < y->device ? -1 : 1;
	if (x->window != y->window)
		return x->window < y->window ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* Add the keys one node holds that match pattern and parse, of the devices a names. */
static void
scan_node(struct q_redis *q, struct q_node *node, const char *pattern, q_key_parse_fn parse,
	  const struct q_args *a, struct q_keys *keys)
{
	char *cursor = q_strndup("0", 1);
	size_t i;

	do {
		redisReply *r = q_check(q_node_command(q, node, "SCAN",
						       "SCAN %s MATCH %s COUNT " Q_SCAN_COUNT,
						       cursor, pattern),
					"SCAN");
		redisReply *list;

		if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
		    r->element[0]->type != REDIS_REPLY_STRING ||
		    r->element[1]->type != REDIS_REPLY_ARRAY)
			q_exit(Q_EXIT_ERROR, "redis SCAN: unexpected reply");
		free(cursor);
		cursor = q_strndup(r->element[0]->str, r->element[0]->len);
		list = r->element[1];
		for (i = 0; i < list->elements; i++) {
			const redisReply *k = list->element[i];
			struct q_key key;

			if (k->type != REDIS_REPLY_STRING ||
			    parse(k->str, k->len, a, &key.device, &key.window) != 0 ||
			    !args_device(a, key.device))
				continue;
			if (keys->n == keys->cap) {
				keys->cap = keys->cap ? keys->cap * 2 : 1024;
				keys->v = q_realloc(keys->v, keys->cap, sizeof(*keys->v));
			}
			key.name = q_strndup(k->str, k->len);
			key.len = k->len;
			keys->v[keys->n++] = key;
		}
		freeReplyObject(r);
	} while (strcmp(cursor, "0") != 0);
	free(cursor);
}

/*
 * SCAN the keys matching `tally:{<device>}:*<suffix>` that parse, of the devices a names,
 * sorted, duplicates removed. A cluster is scanned master by master: each holds the keys of
 * its own slots.
 */
static void
scan_keys(struct q_redis *q, const struct q_args *a, const char *suffix, q_key_parse_fn parse,
	  struct q_keys *keys)
{
	uint64_t device;
	char pattern[96];
	uint32_t m;
	size_t i;
	size_t n;

	if (args_one_device(a, &device))
		snprintf(pattern, sizeof(pattern), "tally:{%" PRIu64 "}:*%s", device, suffix);
	else
		snprintf(pattern, sizeof(pattern), "tally:{*}:*%s", suffix);
	memset(keys, 0, sizeof(*keys));
	if (!q->cluster)
		scan_node(q, &q->node[0], pattern, parse, a, keys);
	for (m = 0; q->cluster && m < q->map->nmasters; m++)
		scan_node(q, q_master(q, m), pattern, parse, a, keys);

	/* SCAN may return a key twice while Redis rehashes, or a slot migrates. */
	if (keys->n > 1)
		qsort(keys->v, keys->n, sizeof(*keys->v), key_cmp);
	for (i = 0, n = 0; i < keys->n; i++) {
		if (n > 0 && strcmp(keys->v[n - 1].name, keys->v[i].name) == 0) {
			free(keys->v[i].name);
			continue;
		}
		keys->v[n++] = keys->v[i];
	}
	keys->n = n;
}

/* SCAN all window keys of the devices a names (all devices if none), sorted. */
static void
scan_window_keys(struct q_redis *q, const struct q_args *a, struct q_keys *keys)
{
	scan_keys(q, a, "", scan_parse_window, keys);
}

/* Keep the keys of windows that start in [a->from, a->to); they stay sorted. */
static void
keys_in_range(struct q_keys *keys, const struct q_args *a)
{
	size_t i;
	size_t n;

	for (i = 0, n = 0; i < keys->n; i++) {
		if (keys->v[i].window < a->from || (a->has_to && keys->v[i].window >= a->to)) {
			free(keys->v[i].name);
			continue;
		}
		keys->v[n++] = keys->v[i];
	}
	keys->n = n;
}

static void
keys_free(struct q_keys *keys)
{
	size_t i;

	for (i = 0; i < keys->n; i++)
		free(keys->v[i].name);
	free(keys->v);
}

/* Fold every <metric>:<field> pair of an HGETALL reply into metrics; other fields are skipped. */
static void
fold_metric_pairs(const redisReply *r, struct q_metric **metrics, size_t *nb)
{
	size_t i;

	for (i = 0; i < r->elements; i += 2) {
		struct q_stats st = {0};
		enum q_field f;
		uint32_t metric;
		struct q_metric *m;
		const char *series;
		size_t slen = 0;

		if (parse_metric_pair(r->element[i], r->element[i + 1], &metric, &f, &st, &series,
				      &slen) != 0)
			continue;
		m = metric_find_or_add(metrics, nb, metric);
		if (series != NULL && m->series == NULL)
			m->series = q_strndup(series, slen);
		stats_fold(&m->st, &st, f);
	}
}

static int
cmd_latest(struct q_redis *q, const struct q_conf *conf, const struct q_args *a)
{
	/*
	 * CSV rows carry the device and window; the table says them once, above. The name and
	 * unit columns are there when Redis has a catalog.
	 */
	static const char *const head[] = {"device", "window", "time", "metric", "count",
					   "sum",    "min",    "max",  "last"};
	static const char *const head_names[] = {"device", "window", "time", "metric", "name",
						 "unit",   "count",  "sum",  "min",	"max",
						 "last"};
	const bool names = a->cat.present;
	unsigned int skip = conf->csv ? 0 : 3;
	struct q_metric *metrics = NULL;
	char wtime[64] = "-";
	bool has_w = false;
	const char *window = NULL;
	redisReply *wr = NULL;
	size_t window_len = 0;
	struct q_cmd cmd;
	uint64_t wstart = 0;
	char latest[80];
	char key[80];
	redisReply *r;
	size_t nb = 0;
	struct q_table t;
	size_t i;
	int v2;

	/* Every key of a device has the hash tag {device}: one slot, one node. */
	snprintf(latest, sizeof(latest), "tally:{%" PRIu64 "}:latest", a->device);
	q_cmd_format(&cmd, latest, strlen(latest), "TYPE %s", latest);
	r = q_run(q, "TYPE", &cmd);
	if (r->type != REDIS_REPLY_STATUS)
		q_exit(Q_EXIT_ERROR, "redis TYPE: unexpected reply");
	if (strcmp(r->str, "none") == 0)
		q_exit(Q_EXIT_ERROR, "no data for device %" PRIu64, a->device);
	/* Schema v2: a string naming the newest window; v1: a hash with `window` and the fields. */
	v2 = strcmp(r->str, "string") == 0;
	freeReplyObject(r);
	if (v2)
		q_cmd_format(&cmd, latest, strlen(latest), "GET %s", latest);
	else
		q_cmd_format(&cmd, latest, strlen(latest), "HGETALL %s", latest);
	r = q_run(q, v2 ? "GET" : "HGETALL", &cmd);
	if (r->type == REDIS_REPLY_STRING) {
		window = r->str;
		window_len = r->len;
	} else if (reply_is_pairs(r)) {
		for (i = 0; i < r->elements; i += 2) {
			const redisReply *field = r->element[i];

			if (field->len == 6 && memcmp(field->str, "window", 6) == 0) {
				window = r->element[i + 1]->str;
				window_len = r->element[i + 1]->len;
			}
		}
		fold_metric_pairs(r, &metrics, &nb);
	} else {
		q_exit(Q_EXIT_ERROR, "tally:{%" PRIu64 "}:latest is not tally's", a->device);
	}
	if (window != NULL && parse_u64(window, window_len, UINT64_MAX, &wstart) == 0) {
		has_w = true;
		fmt_time(wstart, wtime, sizeof(wtime));
	}
	if (nb == 0 && has_w) {
		snprintf(key, sizeof(key), "tally:{%" PRIu64 "}:%" PRIu64, a->device, wstart);
		q_cmd_format(&cmd, key, strlen(key), "HGETALL %s", key);
		wr = q_run(q, "HGETALL", &cmd);
		if (!reply_is_pairs(wr))
			q_exit(Q_EXIT_ERROR, "redis HGETALL: unexpected reply");
	}
	if (nb == 0 && wr != NULL)
		fold_metric_pairs(wr, &metrics, &nb);
	if (nb > 1)
		qsort(metrics, nb, sizeof(*metrics), metric_cmp);

	if (conf->json) {
		printf("{\"device\":%" PRIu64 ",\"window\":", a->device);
		if (has_w)
			printf("%" PRIu64 ",\"time\":\"%s\"", wstart, wtime);
		else
			printf("null,\"time\":null");
		printf(",\"metrics\":[");
		for (i = 0; i < nb; i++) {
			printf("%s{\"metric\":%" PRIu32, i ? "," : "", metrics[i].metric);
			if (metrics[i].series != NULL) {
				printf(",\"series\":");
				json_string(metrics[i].series, strlen(metrics[i].series));
			}
			if (names)
				catalog_json(&a->cat, metrics[i].metric);
			json_stats(&metrics[i].st, (1u << Q_NB_FIELDS) - 1);
			putchar('}');
		}
		printf("]}\n");
	} else {
		if (!conf->csv && has_w)
			printf("device %" PRIu64 "  window %" PRIu64 "  %s\n", a->device, wstart,
			       wtime);
		else if (!conf->csv)
			printf("device %" PRIu64 "  window %.*s\n", a->device,
			       window ? (int)window_len : 1, window ? window : "-");
		if (names) {
			table_init(&t, conf, head_names + skip, 11 - skip);
			t.left |= 3u << (4 - skip); /* name, unit */
		} else {
			table_init(&t, conf, head + skip, 9 - skip);
		}
		for (i = 0; i < nb; i++) {
			char *cells[11];
			char **c = cells;
			int f;

			if (conf->csv) {
				*c++ = q_asprintf("%" PRIu64, a->device);
				*c++ = has_w ? q_asprintf("%" PRIu64, wstart) : NULL;
				*c++ = has_w ? q_strndup(wtime, strlen(wtime)) : NULL;
			}
			/* a statsd series by its text, as its fields are named */
			*c++ = metrics[i].series != NULL ? q_strndup(metrics[i].series,
								     strlen(metrics[i].series))
							 : q_asprintf("%" PRIu32, metrics[i].metric);
			if (names) {
				catalog_cells(&a->cat, metrics[i].metric, &c[0], &c[1]);
				c += 2;
			}
			for (f = 0; f < Q_NB_FIELDS; f++)
				*c++ = stats_cell(&metrics[i].st, (enum q_field)f);
			table_add(&t, cells);
		}
		table_print(&t);
	}
	for (i = 0; i < nb; i++)
		free(metrics[i].series);
	free(metrics);
	if (wr != NULL)
		freeReplyObject(wr);
	freeReplyObject(r);
	return 0;
}

/* One row of range: a window's fields of the metric asked for. */
struct q_window {
	uint64_t window;
	struct q_stats st;
};

static bool
window_value(const struct q_window *w, enum q_field f, double *v)
{
	if (!(w->st.have & (1u << f)))
		return false;
	*v = f == Q_COUNT ? (double)w->st.count : w->st.val[f];
	return isfinite(*v);
}

/*
 * One line per field: its name, a block per window (▁ at the field's min over the range, █ at
 * its max, a blank where the window lacks the field), then the min and max.
 */
static void
range_sparklines(const struct q_window *w, size_t n)
{
	static const char *const blocks[] = {"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
	int f;

	for (f = 0; f < Q_NB_FIELDS; f++) {
		double lo = INFINITY;
		double hi = -INFINITY;
		double v;
		size_t i;

		for (i = 0; i < n; i++) {
			if (window_value(&w[i], (enum q_field)f, &v)) {
				lo = v < lo ? v : lo;
				hi = v > hi ? v : hi;
			}
		}
		printf("%-5s  ", q_field_names[f]);
		for (i = 0; i < n; i++) {
			/* Halves keep hi - lo finite for any two finite doubles. */
			double span = hi / 2 - lo / 2;
			int level = 0;

			if (!window_value(&w[i], (enum q_field)f, &v)) {
				putchar(' ');
				continue;
			}
			if (span > 0)
				level = (int)((v / 2 - lo / 2) / span * 7 + 0.5);
			level = level > 7 ? 7 : level;
			fputs(blocks[level], stdout);
		}
		if (lo <= hi)
			printf("  %.17g .. %.17g\n", lo, hi);
		else
			printf("  -\n");
	}
}

/*
 * With a catalog in Redis, the metric's name and unit: a line above the table, the last
 * two fields of each JSON row and CSV row.
 */
static void
range_print(const struct q_conf *conf, const struct q_args *a, const struct q_window *w,
	    size_t n)
{
	static const char *const head[] = {"window", "time", "count", "sum", "min",
					   "max",    "last", "name",  "unit"};
	const bool names = a->cat.present;
	struct q_table t;
	char wtime[64];
	size_t i;
	int f;

	if (conf->json) {
		putchar('[');
		for (i = 0; i < n; i++) {
			printf("%s{\"window\":%" PRIu64 ",\"time\":\"%s\"", i ? "," : "",
			       w[i].window, fmt_time(w[i].window, wtime, sizeof(wtime)));
			json_stats(&w[i].st, (1u << Q_NB_FIELDS) - 1);
			if (names)
				catalog_json(&a->cat, a->metric);
			putchar('}');
		}
		printf("]\n");
		return;
	}
	if ((names || a->series != NULL) && !conf->csv) {
		printf("device %" PRIu64 "  metric %" PRIu32, a->device, a->metric);
		series_header(a);
		if (names)
			catalog_header(&a->cat, a->metric);
		putchar('\n');
	}
	table_init(&t, conf, head, names && conf->csv ? 9 : 7);
	for (i = 0; i < n; i++) {
		char *cells[9];

		cells[0] = q_asprintf("%" PRIu64, w[i].window);
		fmt_time(w[i].window, wtime, sizeof(wtime));
		cells[1] = q_strndup(wtime, strlen(wtime));
		for (f = 0; f < Q_NB_FIELDS; f++)
			cells[2 + f] = stats_cell(&w[i].st, (enum q_field)f);
		if (names && conf->csv)
			catalog_cells(&a->cat, a->metric, &cells[7], &cells[8]);
		table_add(&t, cells);
	}
	table_print(&t);
	if (conf->sparkline && !conf->csv && n > 0)
		range_sparklines(w, n);
}

static int
cmd_range(struct q_redis *q, const struct q_conf *conf, const struct q_args *a)
{
	struct q_cmd *cmds = q_realloc(NULL, Q_PIPELINE, sizeof(*cmds));
	redisReply **replies = q_realloc(NULL, Q_PIPELINE, sizeof(*replies));
	struct q_window *rows;
	struct q_keys keys;
	size_t nrows = 0;
	size_t start;
	size_t i;

	scan_window_keys(q, a, &keys);
	keys_in_range(&keys, a);
	rows = q_realloc(NULL, keys.n ? keys.n : 1, sizeof(*rows));

	for (start = 0; start < keys.n; start += Q_PIPELINE) {
		size_t end = start + Q_PIPELINE < keys.n ? start + Q_PIPELINE : keys.n;

		for (i = start; i < end; i++) {
			const char *argv[2 + Q_NB_FIELDS] = {"HMGET", keys.v[i].name};
			char fields[Q_NB_FIELDS][Q_FIELD_MAX];
			int f;

			for (f = 0; f < Q_NB_FIELDS; f++) {
				metric_field(a, q_field_names[f], fields[f], sizeof(fields[f]));
				argv[2 + f] = fields[f];
			}
			q_cmd_argv(&cmds[i - start], 2 + Q_NB_FIELDS, argv);
		}
		q_run_many(q, "HMGET", cmds, end - start, replies);
		for (i = start; i < end; i++) {
			redisReply *r = q_key_reply(replies[i - start], "HMGET", keys.v[i].name,
						    keys.v[i].len);
			struct q_stats st = {0};
			int f;

			q_cmd_free(&cmds[i - start]);
			if (r == NULL)
				continue;
			if (r->type != REDIS_REPLY_ARRAY || r->elements != Q_NB_FIELDS)
				q_exit(Q_EXIT_ERROR, "redis HMGET: unexpected reply");
			for (f = 0; f < Q_NB_FIELDS; f++) {
				const redisReply *v = r->element[f];
				struct q_stats one = {0};

				if (v->type == REDIS_REPLY_STRING &&
				    parse_stat_value((enum q_field)f, v->str, v->len, &one) == 0)
					stats_fold(&st, &one, (enum q_field)f);
			}
			freeReplyObject(r);
			if (st.have == 0)
				continue;
			rows[nrows].window = keys.v[i].window;
			rows[nrows++].st = st;
		}
	}
	range_print(conf, a, rows, nrows);
	free(rows);
	keys_free(&keys);
	free(replies);
	free(cmds);
	return 0;
}

static int
field_cmp(const void *a, const void *b)
{
	const redisReply *const *x = a;
	const redisReply *const *y = b;
	size_t n = (*x)->len < (*y)->len ? (*x)->len : (*y)->len;
	int c = memcmp((*x)->str, (*y)->str, n);

	if (c != 0)
		return c;
	return ((*x)->len > (*y)->len) - ((*x)->len < (*y)->len);
}

static size_t
skip_digits(const char *s, size_t i, size_t len)
{
	while (i < len && s[i] >= '0' && s[i] <= '9')
		i++;
	return i;
}

/* True when s is a JSON number as it stands: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool
is_json_number(const char *s, size_t len)
{
	size_t i = 0;
	size_t j;

	if (i < len && s[i] == '-')
		i++;
	if (i < len && s[i] == '0')
		i++;
	else if ((j = skip_digits(s, i, len)) > i)
		i = j;
	else
		return false;
	if (i < len && s[i] == '.') {
		j = skip_digits(s, i + 1, len);
		if (j == i + 1)
			return false;
		i = j;
	}
	if (i < len && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < len && (s[i] == '+' || s[i] == '-'))
			i++;
		j = skip_digits(s, i, len);
		if (j == i)
			return false;
		i = j;
	}
	return i == len;
}

static int
cmd_self(struct q_redis *q, const struct q_conf *conf, const struct q_args *a)
{
	static const char *const head[] = {"name", "value"};
	const redisReply **pairs;
	struct q_table t;
	struct q_cmd cmd;
	redisReply *r;
	size_t n;
	size_t i;

	(void)a;
	q_cmd_format(&cmd, "tally:self", strlen("tally:self"), "HGETALL tally:self");
	r = q_run(q, "HGETALL", &cmd);
	if (!reply_is_pairs(r))
		q_exit(Q_EXIT_ERROR, "redis HGETALL: unexpected reply");
	if (r->elements == 0)
		q_exit(Q_EXIT_ERROR, "tally:self is empty or missing (is tally running?)");
	n = r->elements / 2;
	/* Sort pairs by field name: the reply array holds field, value, field, value, ... */
	pairs = q_realloc(NULL, n, 2 * sizeof(*pairs));
	memcpy(pairs, r->element, r->elements * sizeof(*pairs));
	qsort(pairs, n, 2 * sizeof(*pairs), field_cmp);

	if (conf->json) {
		putchar('{');
		for (i = 0; i < n; i++) {
			const redisReply *v = pairs[2 * i + 1];

			if (i > 0)
				putchar(',');
			json_string(pairs[2 * i]->str, pairs[2 * i]->len);
			putchar(':');
			if (is_json_number(v->str, v->len))
				fwrite(v->str, 1, v->len, stdout);
			else
				json_string(v->str, v->len);
		}
		printf("}\n");
	} else {
		table_init(&t, conf, head, 2);
		for (i = 0; i < n; i++) {
			char *cells[2] = {
				q_strndup(pairs[2 * i]->str, pairs[2 * i]->len),
				q_strndup(pairs[2 * i + 1]->str, pairs[2 * i + 1]->len),
			};

			table_add(&t, cells);
		}
		table_print(&t);
	}
	free(pairs);
	freeReplyObject(r);
	return 0;
}

static uint64_t
series_hash(uint64_t device, uint32_t metric)
{
	uint64_t h = device * 0x9e3779b97f4a7c15ULL ^ ((uint64_t)metric * 0xc2b2ae3d27d4eb4fULL);

	return h ^ (h >> 29);
}

static struct q_series *
series_find_or_add(struct q_series_map *map, uint64_t device, uint32_t metric)
{
	struct q_series *s;
	size_t i;

	/* Grow at half full so probe runs stay short. */
	if (2 * (map->n + 1) > map->cap) {
		struct q_series_map big = {.cap = map->cap ? map->cap * 2 : 4096};

		big.slots = calloc(big.cap, sizeof(*big.slots));
		if (big.slots == NULL)
			q_exit(Q_EXIT_ERROR, "out of memory");
		for (i = 0; i < map->cap; i++) {
			if (!map->slots[i].used)
				continue;
			s = series_find_or_add(&big, map->slots[i].device, map->slots[i].metric);
			*s = map->slots[i];
		}
		free(map->slots);
		*map = big;
	}
	for (i = series_hash(device, metric) & (map->cap - 1);; i = (i + 1) & (map->cap - 1)) {
		s = &map->slots[i];
		if (!s->used) {
			s->used = true;
			s->device = device;
			s->metric = metric;
			map->n++;
			return s;
		}
		if (s->device == device && s->metric == metric)
			return s;
	}
}

static int
series_cmp(const void *a, const void *b)
{
	const struct q_series *x = a;
	const struct q_series *y = b;

	if (x->device != y->device)
		return x->device < y->device ? -1 : 1;
	return (x->metric > y->metric) - (x->metric < y->metric);
}

static void
totals_add_window(struct q_series_map *map, uint64_t device, const redisReply *r)
{
	size_t i;

	for (i = 0; i + 1 < r->elements; i += 2) {
		struct q_stats st = {0};
		struct q_series *s;
		enum q_field f;
		uint32_t metric;
		const char *series;
		size_t slen;

		if (parse_metric_pair(r->element[i], r->element[i + 1], &metric, &f, &st, &series,
				      &slen) != 0 ||
		    f == Q_LAST)
			continue;
		s = series_find_or_add(map, device, metric);
		stats_fold(&s->st, &st, f);
	}
}

static int
cmd_totals(struct q_redis *q, const struct q_conf *conf, const struct q_args *a)
{
	struct q_cmd *cmds = q_realloc(NULL, Q_PIPELINE, sizeof(*cmds));
	redisReply **replies = q_realloc(NULL, Q_PIPELINE, sizeof(*replies));
	struct q_series_map map = {0};
	struct q_keys keys;
	size_t start;
	size_t i;
	size_t n;

	scan_window_keys(q, a, &keys);
	for (start = 0; start < keys.n; start += Q_PIPELINE) {
		size_t end = start + Q_PIPELINE < keys.n ? start + Q_PIPELINE : keys.n;

		for (i = start; i < end; i++)
			q_cmd_format(&cmds[i - start], keys.v[i].name, keys.v[i].len, "HGETALL %b",
				     keys.v[i].name, keys.v[i].len);
		q_run_many(q, "HGETALL", cmds, end - start, replies);
		for (i = start; i < end; i++) {
			redisReply *r = q_key_reply(replies[i - start], "HGETALL", keys.v[i].name,
						    keys.v[i].len);

			q_cmd_free(&cmds[i - start]);
			if (r == NULL)
				continue;
			if (!reply_is_pairs(r))
				q_exit(Q_EXIT_ERROR, "redis HGETALL: unexpected reply");
			totals_add_window(&map, keys.v[i].device, r);
			freeReplyObject(r);
		}
	}
	keys_free(&keys);

	/* Compact the used slots to the front, then sort: the tally-gen --totals order. */
	for (i = 0, n = 0; i < map.cap; i++)
		if (map.slots[i].used && (map.slots[i].st.have & (1u << Q_COUNT)))
			map.slots[n++] = map.slots[i];
	if (n > 1)
		qsort(map.slots, n, sizeof(*map.slots), series_cmp);

	if (conf->json)
		putchar('[');
	else if (conf->csv)
		printf("device,metric,count,sum,min,max\n");
	for (i = 0; i < n; i++) {
		const struct q_series *s = &map.slots[i];

		if (conf->json) {
			printf("%s{\"device\":%" PRIu64 ",\"metric\":%" PRIu32, i ? "," : "",
			       s->device, s->metric);
			json_stats(&s->st, (1u << Q_LAST) - 1);
			putchar('}');
		} else {
			/*
			 * tally-gen --totals's format, byte for byte; CSV: commas between. A field
			 * the series has in no window (a distinct metric has its count alone) is
			 * "-", empty in CSV.
			 */
			char sep = conf->csv ? ',' : ' ';
			int f;

			printf("%" PRIu64 "%c%" PRIu32 "%c%" PRIu64, s->device, sep, s->metric, sep,
			       s->st.count);
			for (f = Q_SUM; f <= Q_MAX; f++) {
				if (s->st.have & (1u << f))
					printf("%c%.17g", sep, s->st.val[f]);
				else
					printf("%c%s", sep, conf->csv ? "" : "-");
			}
			putchar('\n');
		}
	}
	if (conf->json)
		printf("]\n");
	free(map.slots);
	free(replies);
	free(cmds);
	return 0;
}

/* The heaviest devices of the last window written, from the `tally:top` sorted set. */
static int
cmd_top(struct q_redis *q, const struct q_conf *conf, const struct q_args *a)
{
	/* CSV rows carry the window; the table says it once, above. */
	static const char *const head[] = {"window", "time", "rank", "device", "records"};
	unsigned int skip = conf->csv ? 0 : 2;
	uint64_t n = a->has_device ? a->device : 10;
	char wtime[64] = "-";
	bool has_w = false;
	redisReply *w, *r;
	uint64_t wstart;
	struct q_table t;
	struct q_cmd cmd;
	size_t i;

	if (n == 0)
		q_exit(Q_EXIT_USAGE, "top: N must be at least 1");
	/* Two keys, two slots: each command goes to its own key's node. */
	q_cmd_format(&cmd, "tally:top:window", strlen("tally:top:window"), "GET tally:top:window");
	w = q_run(q, "GET", &cmd);
	q_cmd_format(&cmd, "tally:top", strlen("tally:top"),
		     "ZREVRANGE tally:top 0 %" PRIu64 " WITHSCORES", n - 1);
	r = q_run(q, "ZREVRANGE", &cmd);
	if (w->type != REDIS_REPLY_STRING || r->type != REDIS_REPLY_ARRAY)
		q_exit(Q_EXIT_ERROR, "no tally:top yet (has tally written a window?)");
	if (parse_u64(w->str, w->len, UINT64_MAX, &wstart) == 0) {
		has_w = true;
		fmt_time(wstart, wtime, sizeof(wtime));
	}
	if (conf->json) {
		printf("{\"window\":%.*s,\"time\":", (int)w->len, w->str);
		if (has_w)
			printf("\"%s\"", wtime);
		else
			printf("null");
		printf(",\"devices\":[");
		for (i = 0; i + 1 < r->elements; i += 2)
			printf("%s{\"device\":%.*s,\"records\":%.*s}", i ? "," : "",
			       (int)r->element[i]->len, r->element[i]->str,
			       (int)r->element[i + 1]->len, r->element[i + 1]->str);
		printf("]}\n");
	} else {
		if (!conf->csv)
			printf("heaviest devices of window %.*s%s%s\n", (int)w->len, w->str,
			       has_w ? "  " : "", has_w ? wtime : "");
		table_init(&t, conf, head + skip, 5 - skip);
		for (i = 0; i + 1 < r->elements; i += 2) {
			char *cells[5];
			char **c = cells;

			if (conf->csv) {
				*c++ = q_strndup(w->str, w->len);
				*c++ = has_w ? q_strndup(wtime, strlen(wtime)) : NULL;
			}
			*c++ = q_asprintf("%zu", i / 2 + 1);
			*c++ = q_strndup(r->element[i]->str, r->element[i]->len);
			*c++ = q_strndup(r->element[i + 1]->str, r->element[i + 1]->len);
			table_add(&t, cells);
		}
		table_print(&t);
	}
	freeReplyObject(w);
	freeReplyObject(r);
	return 0;
}

/* The devices whose keys a command merged, as ascending runs (keys come sorted by device). */
struct q_merged {
	struct q_span *run;
	size_t nruns;
	size_t cap;
	size_t keys;
};

static void
merged_add(struct q_merged *m, uint64_t device)
{
	struct q_span *last = m->nruns > 0 ? &m->run[m->nruns - 1] : NULL;

	m->keys++;
	if (last != NULL && (device == last->hi || device == last->hi + 1)) {
		last->hi = device;
		return;
	}
	if (m->nruns == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 16;
		m->run = q_realloc(m->run, m->cap, sizeof(*m->run));
	}
	m->run[m->nruns++] = (struct q_span){.lo = device, .hi = device};
}

/* Spans as "1-3,7", after "device " or "devices "; the caller frees it. */
static char *
spans_text(const struct q_span *v, size_t n, bool label)
{
	char *buf = NULL;
	size_t size = 0;
	size_t i;
	FILE *f;

	f = open_memstream(&buf, &size);
	if (f == NULL)
		q_exit(Q_EXIT_ERROR, "out of memory");
	if (label)
		fprintf(f, "device%s ", n > 1 || (n == 1 && v[0].lo != v[0].hi) ? "s" : "");
	for (i = 0; i < n; i++) {
		fprintf(f, "%s%" PRIu64, i ? "," : "", v[i].lo);
		if (v[i].hi != v[i].lo)
			fprintf(f, "-%" PRIu64, v[i].hi);
	}
	if (fclose(f) != 0)
		q_exit(Q_EXIT_ERROR, "out of memory");
	return buf;
}

/* Opens a JSON object with the merged devices, one by one: {"devices":[1,2,3] */
static void
json_devices(const struct q_merged *m)
{
	const char *sep = "";
	uint64_t d;
	size_t i;

	printf("{\"devices\":[");
	for (i = 0; i < m->nruns; i++) {
		for (d = m->run[i].lo;; d++) {
			printf("%s%" PRIu64, sep, d);
			sep = ",";
			if (d == m->run[i].hi)
				break;
		}
	}
	putchar(']');
}

/*
 * What quantile or distinct found nothing of, for its "no data" line: "device 7" or
 * "devices 1-3,7", then the time asked for ("in [from, to)", "from F on"). The caller frees it.
 */
static char *
args_scope(const struct q_args *a)
{
	char *who, *s;

	if (a->devices != NULL)
		who = spans_text(a->devices, a->ndevices, true);
	else
		who = q_asprintf("device %" PRIu64, a->device);
	if (a->has_to)
		s = q_asprintf("%s in [%" PRIu64 ", %" PRIu64 ")", who, a->from, a->to);
	else if (a->from > 0)
		s = q_asprintf("%s from %" PRIu64 " on", who, a->from);
	else
		s = q_asprintf("%s", who);
	free(who);
	return s;
}

/* The shortest text that reads back as d: "0.999", not "0.99899999999999999". */
static char *
fmt_short(double d)
{
	char buf[32];
	int prec;

	for (prec = 1; prec < 17; prec++) {
		snprintf(buf, sizeof(buf), "%.*g", prec, d);
		if (strtod(buf, NULL) == d)
			break;
	}
	return q_asprintf("%.*g", prec, d);
}

/* A sketch of every bucket the range has: merges into it never fold. */
static struct tally_dds *
dds_new_full(void)
{
	void *mem = malloc(tally_dds_memsize(TALLY_DDS_CAP_MAX));
	struct tally_dds *s = tally_dds_init(mem, TALLY_DDS_CAP_MAX);

	if (s == NULL)
		q_exit(Q_EXIT_ERROR, "out of memory");
	return s;
}

static void
quantile_print(const struct q_conf *conf, const struct q_args *a, const struct q_merged *m,
	       const struct q_stats *st, const struct tally_dds *dds, const double *value)
{
	/* CSV rows carry what the table says once, above (the name and unit with a catalog). */
	static const char *const head[] = {"devices", "metric", "name",   "unit",
					   "windows", "count",	"sum",	  "min",
					   "max",     "clamped", "folded", "q",
					   "value"};
	const bool names = a->cat.present;
	unsigned int skip = conf->csv ? 0 : 11;
	struct q_table t;
	char *label;
	size_t i;
	int f;

	if (conf->json) {
		json_devices(m);
		printf(",\"metric\":%" PRIu32, a->metric);
		series_json(a);
		if (names)
			catalog_json(&a->cat, a->metric);
		printf(",\"windows\":%zu", m->keys);
		json_stats(st, (1u << Q_LAST) - 1);
		printf(",\"clamped\":%" PRIu64 ",\"folded\":%" PRIu64 ",\"quantiles\":[",
		       dds->clamped, dds->folded);
		for (i = 0; i < a->nq; i++) {
			char *q = fmt_short(a->q[i]);

			printf("%s{\"q\":%s,\"value\":", i ? "," : "", q);
			json_double(value[i]);
			putchar('}');
			free(q);
		}
		printf("]}\n");
		return;
	}
	if (!conf->csv) {
		label = spans_text(m->run, m->nruns, true);
		printf("%s  metric %" PRIu32, label, a->metric);
		series_header(a);
		if (names)
			catalog_header(&a->cat, a->metric);
		printf("  windows %zu", m->keys);
		free(label);
		for (f = Q_COUNT; f <= Q_MAX; f++) {
			char *c = stats_cell(st, (enum q_field)f);

			printf("  %s %s", q_field_names[f], c != NULL ? c : "-");
			free(c);
		}
		/* Values held in an edge or a neighbour bucket: said when there are some. */
		if (dds->clamped > 0)
			printf("  clamped %" PRIu64, dds->clamped);
		if (dds->folded > 0)
			printf("  folded %" PRIu64, dds->folded);
		putchar('\n');
	}
	if (conf->csv && !names) {
		/* the same columns without name and unit */
		static const char *const plain[] = {"devices", "metric", "windows", "count",
						    "sum",     "min",	 "max",	    "clamped",
						    "folded",  "q",	 "value"};

		table_init(&t, conf, plain, 11);
	} else {
		table_init(&t, conf, head + skip, 13 - skip);
	}
	for (i = 0; i < a->nq; i++) {
		char *cells[13];
		char **c = cells;

		if (conf->csv) {
			*c++ = spans_text(m->run, m->nruns, false);
			*c++ = q_asprintf("%" PRIu32, a->metric);
			if (names) {
				catalog_cells(&a->cat, a->metric, &c[0], &c[1]);
				c += 2;
			}
			*c++ = q_asprintf("%zu", m->keys);
			for (f = Q_COUNT; f <= Q_MAX; f++)
				*c++ = stats_cell(st, (enum q_field)f);
			*c++ = q_asprintf("%" PRIu64, dds->clamped);
			*c++ = q_asprintf("%" PRIu64, dds->folded);
		}
		*c++ = fmt_short(a->q[i]);
		*c++ = q_asprintf("%.17g", value[i]);
		table_add(&t, cells);
	}
	table_print(&t);
}

/*
 * Quantiles of a histogram metric over the windows of one device or several, from the
 * DDSketch each window key holds in `<metric>:sketch`. Every bucket edge is the same for all
 * writers, so adding the buckets up is exact: the result is the sketch of all those values.
 */
static int
cmd_quantile(struct q_redis *q, const struct q_conf *conf, const struct q_args *a)
{
	struct q_cmd *cmds = q_realloc(NULL, Q_PIPELINE, sizeof(*cmds));
	redisReply **replies = q_realloc(NULL, Q_PIPELINE, sizeof(*replies));
	double *value = q_realloc(NULL, a->nq, sizeof(*value));
	struct tally_dds *dds = dds_new_full();
	struct q_merged merged = {0};
	struct q_stats st = {0};
	size_t unsketched = 0;
	struct q_keys keys;
	char *scope;
	size_t start;
	size_t i;
	int f;

	scan_window_keys(q, a, &keys);
	keys_in_range(&keys, a);
	for (start = 0; start < keys.n; start += Q_PIPELINE) {
		size_t end = start + Q_PIPELINE < keys.n ? start + Q_PIPELINE : keys.n;

		for (i = start; i < end; i++) {
			/* The sketch first, then the fields Q_COUNT .. Q_MAX. */
			const char *argv[3 + Q_MAX + 1] = {"HMGET", keys.v[i].name};
			char fields[Q_MAX + 2][Q_FIELD_MAX];

			metric_field(a, "sketch", fields[0], sizeof(fields[0]));
			for (f = Q_COUNT; f <= Q_MAX; f++)
				metric_field(a, q_field_names[f], fields[1 + f], sizeof(fields[1 + f]));
			for (f = 0; f < Q_MAX + 2; f++)
				argv[2 + f] = fields[f];
			q_cmd_argv(&cmds[i - start], 3 + Q_MAX + 1, argv);
		}
		q_run_many(q, "HMGET", cmds, end - start, replies);
		for (i = start; i < end; i++) {
			redisReply *r = q_key_reply(replies[i - start], "HMGET", keys.v[i].name,
						    keys.v[i].len);
			const redisReply *sk;

			q_cmd_free(&cmds[i - start]);
			if (r == NULL)
				continue;
			if (r->type != REDIS_REPLY_ARRAY || r->elements != Q_MAX + 2)
				q_exit(Q_EXIT_ERROR, "redis HMGET: unexpected reply");
			sk = r->element[0];
			if (sk->type != REDIS_REPLY_STRING) {
				/* The metric without a sketch: not a histogram. */
				unsketched += r->element[1]->type == REDIS_REPLY_STRING;
				freeReplyObject(r);
				continue;
			}
			if (tally_dds_merge_bytes(dds, (const uint8_t *)sk->str, sk->len) != 0)
				q_exit(Q_EXIT_ERROR,
				       "%s: field %" PRIu32 ":sketch is not a DDSketch "
				       "(version %d): %zu bytes that do not parse",
				       keys.v[i].name, a->metric, TALLY_DDS_VERSION, sk->len);
			for (f = Q_COUNT; f <= Q_MAX; f++) {
				const redisReply *v = r->element[1 + f];
				struct q_stats one = {0};

				if (v->type == REDIS_REPLY_STRING &&
				    parse_stat_value((enum q_field)f, v->str, v->len, &one) == 0)
					stats_fold(&st, &one, (enum q_field)f);
			}
			merged_add(&merged, keys.v[i].device);
			freeReplyObject(r);
		}
	}
	scope = args_scope(a);
	if (merged.keys == 0 && unsketched > 0)
		q_exit(Q_EXIT_ERROR,
		       "no data: no window of %s has a sketch of metric %" PRIu32 " (%zu have the "
		       "metric without one: not a histogram?)",
		       scope, a->metric, unsketched);
	if (merged.keys == 0)
		q_exit(Q_EXIT_ERROR, "no data: no window of %s has a sketch of metric %" PRIu32,
		       scope, a->metric);
	if (tally_dds_count(dds) == 0)
		q_exit(Q_EXIT_ERROR, "no data: the %zu sketches of metric %" PRIu32 " of %s are "
		       "empty", merged.keys, a->metric, scope);
	for (i = 0; i < a->nq; i++) {
		tally_dds_quantile(dds, a->q[i], &value[i]);
		/*
		 * A bucket reports a value within 1% of its own; the true quantile lies between the
		 * min and max the windows hold, so clamping to them only moves toward it (no p99.9
		 * above the max).
		 */
		if ((st.have & (1u << Q_MIN)) && value[i] < st.val[Q_MIN])
			value[i] = st.val[Q_MIN];
		if ((st.have & (1u << Q_MAX)) && value[i] > st.val[Q_MAX])
			value[i] = st.val[Q_MAX];
	}
	quantile_print(conf, a, &merged, &st, dds, value);
	free(scope);
	free(merged.run);
	free(value);
	free(dds);
	keys_free(&keys);
	free(replies);
	free(cmds);
	return 0;
}

static void
distinct_print(const struct q_conf *conf, const struct q_args *a, const struct q_merged *m,
	       uint64_t estimate)
{
	/* CSV rows carry what the table says once, above (the name and unit with a catalog). */
	static const char *const head[] = {"devices", "metric", "keys", "distinct"};
	static const char *const head_names[] = {"devices", "metric", "name",
						 "unit",    "keys",   "distinct"};
	const bool names = a->cat.present;
	unsigned int skip = conf->csv ? 0 : 2;
	char *cells[6];
	char **c = cells;
	struct q_table t;
	char *label;

	if (conf->json) {
		json_devices(m);
		printf(",\"metric\":%" PRIu32, a->metric);
		series_json(a);
		if (names)
			catalog_json(&a->cat, a->metric);
		printf(",\"keys\":%zu,\"distinct\":%" PRIu64 "}\n", m->keys, estimate);
		return;
	}
	if (!conf->csv) {
		label = spans_text(m->run, m->nruns, true);
		printf("%s  metric %" PRIu32, label, a->metric);
		series_header(a);
		if (names)
			catalog_header(&a->cat, a->metric);
		putchar('\n');
		free(label);
	}
	if (conf->csv && names)
		table_init(&t, conf, head_names, 6);
	else
		table_init(&t, conf, head + skip, 4 - skip);
	if (conf->csv) {
		*c++ = spans_text(m->run, m->nruns, false);
		*c++ = q_asprintf("%" PRIu32, a->metric);
		if (names) {
			catalog_cells(&a->cat, a->metric, &c[0], &c[1]);
			c += 2;
		}
	}
	*c++ = q_asprintf("%zu", m->keys);
	*c++ = q_asprintf("%" PRIu64, estimate);
	table_add(&t, cells);
	table_print(&t);
}

/*
 * Distinct values of a metric over the windows of one device or several: the union of the
 * HyperLogLogs in `tally:{<device>}:<window>:hll:<metric>`, merged here register by register.
 * A cluster keeps each device on its own slot, where a PFCOUNT of several keys would be
 * refused (CROSSSLOT); the merge gives what that PFCOUNT would.
 */
static int
cmd_distinct(struct q_redis *q, const struct q_conf *conf, const struct q_args *a)
{
	struct q_cmd *cmds = q_realloc(NULL, Q_PIPELINE, sizeof(*cmds));
	redisReply **replies = q_realloc(NULL, Q_PIPELINE, sizeof(*replies));
	struct tally_hll *hll = q_realloc(NULL, 1, sizeof(*hll));
	struct q_merged merged = {0};
	struct q_keys keys;
	char suffix[32];
	char *scope;
	size_t start;
	size_t i;

	tally_hll_init(hll);
	snprintf(suffix, sizeof(suffix), ":hll:%" PRIu32, a->metric);
	scan_keys(q, a, suffix, scan_parse_hll, &keys);
	keys_in_range(&keys, a);
	for (start = 0; start < keys.n; start += Q_PIPELINE) {
		size_t end = start + Q_PIPELINE < keys.n ? start + Q_PIPELINE : keys.n;

		for (i = start; i < end; i++)
			q_cmd_format(&cmds[i - start], keys.v[i].name, keys.v[i].len, "GET %b",
				     keys.v[i].name, keys.v[i].len);
		q_run_many(q, "GET", cmds, end - start, replies);
		for (i = start; i < end; i++) {
			redisReply *r = q_key_reply(replies[i - start], "GET", keys.v[i].name,
						    keys.v[i].len);

			q_cmd_free(&cmds[i - start]);
			if (r == NULL)
				continue;
			/* Expired since the SCAN: as if it had not been found. */
			if (r->type == REDIS_REPLY_NIL) {
				freeReplyObject(r);
				continue;
			}
			if (r->type != REDIS_REPLY_STRING)
				q_exit(Q_EXIT_ERROR, "redis GET: unexpected reply");
			if (tally_hll_merge_raw(hll, r->str, r->len) != 0)
				q_exit(Q_EXIT_ERROR,
				       "%s: not a Redis HyperLogLog (HYLL, dense or sparse): %zu "
				       "bytes that do not parse",
				       keys.v[i].name, r->len);
			merged_add(&merged, keys.v[i].device);
			freeReplyObject(r);
		}
	}
	scope = args_scope(a);
	if (merged.keys == 0)
		q_exit(Q_EXIT_ERROR,
		       "no data: no window of %s has an HLL of metric %" PRIu32
		       " (tally:{<device>}:<window>%s)",
		       scope, a->metric, suffix);
	distinct_print(conf, a, &merged, tally_hll_estimate(hll));
	free(scope);
	free(merged.run);
	free(hll);
	keys_free(&keys);
	free(replies);
	free(cmds);
	return 0;
}

/* The metric catalog tally wrote: each metric id with its name, unit and kind. */
static int
cmd_catalog(struct q_redis *q, const struct q_conf *conf, const struct q_args *a)
{
	static const char *const head[] = {"metric", "name", "unit", "kind"};
	const struct q_catalog *cat = &a->cat;
	struct q_table t;
	size_t i;

	(void)q;
	if (cat->error != NULL)
		q_exit(Q_EXIT_ERROR, "redis HGETALL " Q_CATALOG_KEY ": %s", cat->error);
	if (!cat->present)
		q_exit(Q_EXIT_ERROR, "no data: Redis has no " Q_CATALOG_KEY " (tally writes it "
		       "when given --catalog or a [metrics] section)");
	if (conf->json) {
		putchar('[');
		for (i = 0; i < cat->n; i++) {
			printf("%s{\"metric\":%" PRIu32, i ? "," : "", cat->e[i].id);
			catalog_json(cat, cat->e[i].id);
			printf(",\"kind\":\"%s\"}", tally_kind_name(cat->e[i].kind));
		}
		printf("]\n");
		return 0;
	}
	table_init(&t, conf, head, 4);
	t.left = 0xf;
	for (i = 0; i < cat->n; i++) {
		char *cells[4];

		cells[0] = q_asprintf("%" PRIu32, cat->e[i].id);
		catalog_cells(cat, cat->e[i].id, &cells[1], &cells[2]);
		cells[3] = q_asprintf("%s", tally_kind_name(cat->e[i].kind));
		table_add(&t, cells);
	}
	table_print(&t);
	return 0;
}

static const struct q_command q_commands[] = {
	{"latest", "DEVICE", NULL, 1, 1, Q_NAMES, cmd_latest},
	{"range", "DEVICE METRIC [FROM [TO]]", NULL, 2, 4, Q_TAKES_TIME | Q_NAMES, cmd_range},
	{"self", "", NULL, 0, 0, 0, cmd_self},
	{"totals", "[DEVICE]", NULL, 0, 1, 0, cmd_totals},
	{"quantile", "DEVICE METRIC [--q LIST] [--from T] [--to T]",
	 "--devices LIST [-] METRIC [--q LIST] [--from T] [--to T]", 2, 2,
	 Q_TAKES_TIME | Q_TAKES_DEVICES | Q_TAKES_Q | Q_NAMES, cmd_quantile},
	{"distinct", "DEVICE METRIC [--from T] [--to T]",
	 "--devices LIST [-] METRIC [--from T] [--to T]", 2, 2,
	 Q_TAKES_TIME | Q_TAKES_DEVICES | Q_NAMES, cmd_distinct},
	{"top", "[N]", NULL, 0, 1, 0, cmd_top},
	{"catalog", "", NULL, 0, 0, Q_NAMES, cmd_catalog},
};

#define Q_NB_COMMANDS (sizeof(q_commands) / sizeof(q_commands[0]))

static const struct q_command *
find_command(const char *name)
{
	size_t i;

	for (i = 0; i < Q_NB_COMMANDS; i++)
		if (strcmp(name, q_commands[i].name) == 0)
			return &q_commands[i];
	return NULL;
}

static void
usage(FILE *f)
{
	size_t i;

	fprintf(f, "Usage: " Q_NAME " [OPTION]... COMMAND [ARG]...\n"
		   "Read what tally wrote to Redis.\n\n"
		   "Options:\n"
		   "  --redis HOST:PORT   Redis to read [" Q_DEFAULT_REDIS "]\n"
		   "  --redis-user NAME   Redis ACL user to authenticate as [the default user]\n"
		   "  --redis-password-file FILE\n"
		   "                      file holding the Redis password on one line, not\n"
		   "                      readable by others (never the password itself)\n"
		   "  --redis-cluster auto|yes|no\n"
		   "                      read a Redis Cluster: every master, keys where their\n"
		   "                      slots are; auto: when INFO cluster says cluster_enabled:1\n"
		   "                      [auto]\n"
		   "  --timeout-ms N      connect and reply timeout [%d]\n"
		   "  --json              print JSON instead of tables (window starts as epoch\n"
		   "                      ms in \"window\", as UTC in \"time\")\n"
		   "  --csv               print CSV instead of tables: a header line, then rows\n"
		   "  --from T, --to T    range, quantile, distinct: only windows starting in\n"
		   "                      [from, to) (range: = FROM, TO) [all windows]\n"
		   "  --devices LIST      quantile, distinct: merge the windows of these devices,\n"
		   "                      ids and ranges A-B, comma-separated (1,5,10-20);\n"
		   "                      DEVICE is then '-' or left out\n"
		   "  --q LIST            quantile: the quantiles, comma-separated, each in\n"
		   "                      [0, 1] [" Q_DEFAULT_QUANTILES "]\n"
		   "  --sparkline         range: a sparkline per field after the table (the\n"
		   "                      default when stdout is a terminal; never with --json\n"
		   "                      or --csv)\n"
		   "  --top N             the N heaviest devices of the last window (= top N)\n"
		   "  --help              show this help\n\n"
		   "Commands:\n", Q_DEFAULT_TIMEOUT_MS);
	for (i = 0; i < Q_NB_COMMANDS; i++) {
		fprintf(f, "  %s%s%s\n", q_commands[i].name, q_commands[i].args[0] ? " " : "",
			q_commands[i].args);
		if (q_commands[i].alt_args != NULL)
			fprintf(f, "  %s %s\n", q_commands[i].name, q_commands[i].alt_args);
	}
	fprintf(f, "\nA time T (FROM, TO) is epoch ms (1796347425000), ISO 8601 UTC\n"
		   "(2026-12-04T01:23:45Z, 2026-12-04T01:23:45.250+00:00) or before now (-30s,\n"
		   "-15m, -2h, -1d). Tables print window starts as epoch ms and UTC time.\n"
		   "'totals' prints 'device metric count sum min max' lines, as "
		   "tally-gen --totals does\n"
		   "('-' for a field no window of the series has: a distinct metric's sum).\n"
		   "'quantile' merges the DDSketch (<METRIC>:sketch) of every window found,\n"
		   "exactly, and prints each q with its value (within 1%% of the value of rank\n"
		   "floor(q (count - 1)) of all the values), with the windows merged and their\n"
		   "count, sum, min and max. 'distinct' merges the HyperLogLogs\n"
		   "tally:{DEVICE}:<window>:hll:<METRIC> and prints the estimate (what PFCOUNT of\n"
		   "those keys answers) and the keys merged. Nothing found is one line and\n"
		   "exit 1.\n"
		   "METRIC is a metric id, or a name from the catalog tally writes to\n"
		   "tally:catalog ('catalog' lists it: id, name, unit, kind). With a catalog,\n"
		   "latest, range, quantile and distinct print each metric's name and unit too.\n");
}

/*
 * True for an option that would carry a password itself (`--password`, `--redis-password` or
 * one of its abbreviations, which getopt_long would take for --redis-password-file): a
 * password on the command line shows in ps and shell history.
 */
static bool
is_password_opt(const char *arg)
{
	static const char full[] = "redis-password";
	size_t len;

	if (strncmp(arg, "--", 2) != 0)
		return false;
	arg += 2;
	len = strcspn(arg, "=");
	if (len == strlen("password") && strncmp(arg, "password", len) == 0)
		return true;
	return len > strlen("redis-") && len < sizeof(full) && strncmp(arg, full, len) == 0;
}

/* Exits naming the bad item of a comma-separated list, and the list when it has more. */
static void __attribute__((noreturn))
bad_item(const char *opt, const char *list, const char *item, size_t len, const char *what)
{
	if (item == list && item[len] == '\0')
		q_exit(Q_EXIT_USAGE, "%s: '%s' is not %s", opt, list, what);
	q_exit(Q_EXIT_USAGE, "%s: '%.*s' (in '%s') is not %s", opt, (int)len, item, list, what);
}

/*
 * quantile's --q: numbers in [0, 1], comma-separated, kept in the order given. Exits with a
 * usage error naming the item.
 */
static void
parse_arg_quantiles(const char *list, struct q_args *a)
{
	const char *p = list;
	char buf[64];
	size_t len;
	char *end;
	double v;

	a->q = q_realloc(NULL, Q_MAX_QUANTILES, sizeof(*a->q));
	for (a->nq = 0;; a->nq++, p += len + 1) {
		len = strcspn(p, ",");
		if (a->nq == Q_MAX_QUANTILES)
			q_exit(Q_EXIT_USAGE, "--q: '%s' has more than %d quantiles", list,
			       Q_MAX_QUANTILES);
		/* Plain decimals only: strtod would also take blanks, hex, "nan" and "inf". */
		if (len == 0 || len >= sizeof(buf) || strspn(p, "0123456789.eE+-") < len ||
		    p[0] == '-' || p[0] == '+')
			break;
		memcpy(buf, p, len);
		buf[len] = '\0';
		errno = 0;
		v = strtod(buf, &end);
		if (*end != '\0' || errno != 0 || !(v >= 0 && v <= 1))
			break;
		a->q[a->nq] = v;
		if (p[len] == '\0') {
			a->nq++;
			return;
		}
	}
	bad_item("--q", list, p, len, "a quantile in [0, 1]");
}

static int
span_cmp(const void *a, const void *b)
{
	const struct q_span *x = a;
	const struct q_span *y = b;

	return (x->lo > y->lo) - (x->lo < y->lo);
}

/* A statsd device's name: the value of a tag (at most 200 bytes) or an address. */
#define Q_DEVICE_NAME_MAX 200

/*
 * DEVICE: an id (digits), or a statsd device's name (`web1`, `198.18.0.7`: its id is 2^63 +
 * the top 63 bits of its MurmurHash64A, as tally gives it).
 */
static uint64_t
parse_arg_device(const char *s)
{
	size_t len = strlen(s);

	if (len > 0 && strspn(s, "0123456789") == len)
		return parse_arg_u64("DEVICE", s, UINT64_MAX);
	if (len == 0 || len > Q_DEVICE_NAME_MAX)
		q_exit(Q_EXIT_USAGE, "DEVICE: '%s' is neither a device id nor a statsd device's "
		       "name (1 to %d bytes)", s, Q_DEVICE_NAME_MAX);
	return tally_statsd_device_id(s, len);
}

/*
 * --devices: device ids and ranges A-B (A <= B), or statsd device names, comma-separated,
 * kept as sorted spans that neither overlap nor touch. Exits with a usage error naming the
 * item.
 */
static void
parse_arg_devices(const char *list, struct q_args *a)
{
	const char *p = list;
	const char *dash;
	struct q_span *s;
	size_t n = 1;
	size_t len;
	size_t i;

	for (i = 0; list[i] != '\0'; i++)
		n += list[i] == ',';
	a->devices = q_realloc(NULL, n, sizeof(*a->devices));
	for (i = 0; i < n; i++, p += len + 1) {
		s = &a->devices[i];
		len = strcspn(p, ",");
		dash = memchr(p, '-', len);
		if (dash == NULL && parse_u64(p, len, UINT64_MAX, &s->lo) == 0)
			s->hi = s->lo;
		else if (len > 0 && strspn(p, "0123456789-") < len && len <= Q_DEVICE_NAME_MAX)
			/* a statsd device by its name (a name with a '-' and a digit-only side too) */
			s->lo = s->hi = tally_statsd_device_id(p, len);
		else if (dash == NULL || parse_u64(p, (size_t)(dash - p), UINT64_MAX, &s->lo) ||
			 parse_u64(dash + 1, (size_t)(p + len - dash - 1), UINT64_MAX, &s->hi) ||
			 s->lo > s->hi)
			bad_item("--devices", list, p, len, "a device or a range A-B, A <= B");
	}
	qsort(a->devices, n, sizeof(*a->devices), span_cmp);
	for (i = 0, a->ndevices = 0; i < n; i++) {
		s = a->ndevices > 0 ? &a->devices[a->ndevices - 1] : NULL;
		if (s != NULL && (s->hi == UINT64_MAX || a->devices[i].lo <= s->hi + 1)) {
			s->hi = a->devices[i].hi > s->hi ? a->devices[i].hi : s->hi;
			continue;
		}
		a->devices[a->ndevices++] = a->devices[i];
	}
}

/*
 * METRIC: an id (digits), or a name to look up once connected: in tally:catalog, else a
 * statsd series' text in tally:names (`api.latency` or `api.latency{env:prod,region:eu}`).
 */
static void
parse_arg_metric(const char *s, struct q_args *a)
{
	size_t len = strlen(s);

	if (len > 0 && strspn(s, "0123456789") == len) {
		a->metric = (uint32_t)parse_arg_u64("METRIC", s, UINT32_MAX);
		return;
	}
	if (len == 0 || len > TALLY_STATSD_SERIES_MAX)
		q_exit(Q_EXIT_USAGE, "METRIC: '%s' is neither a metric id in [0, %" PRIu32 "] nor "
		       "a name (a catalog name, or a statsd series of 1 to %d bytes)", s,
		       UINT32_MAX, TALLY_STATSD_SERIES_MAX);
	a->metric_name = s;
}

/* The text tally:names gives a statsd series' metric id, or NULL (to be freed). */
static char *
statsd_series_text(struct q_redis *q, uint32_t metric)
{
	char id[16];
	struct q_cmd cmd;
	redisReply *r;
	char *text = NULL;

	snprintf(id, sizeof(id), "%" PRIu32, metric);
	q_cmd_format(&cmd, Q_NAMES_KEY, strlen(Q_NAMES_KEY), "HGET %s %s", Q_NAMES_KEY, id);
	r = q_run(q, "HGET", &cmd);
	if (r->type == REDIS_REPLY_STRING)
		text = q_strndup(r->str, r->len);
	else if (r->type != REDIS_REPLY_NIL)
		q_exit(Q_EXIT_ERROR, Q_NAMES_KEY " is not tally's (HGET: not a string)");
	freeReplyObject(r);
	return text;
}

/* Whether the device asked for (DEVICE or one of --devices) is a statsd device. */
static bool
args_statsd_device(const struct q_args *a)
{
	size_t i;

	if (a->has_device && (a->device & TALLY_STATSD_DEVICE_BIT))
		return true;
	for (i = 0; i < a->ndevices; i++)
		if (a->devices[i].hi & TALLY_STATSD_DEVICE_BIT)
			return true;
	return false;
}

/*
 * A METRIC given as a name becomes the id tally:catalog gives it, or a statsd series' (its
 * text's hash, as tally:names has it). A metric id of a statsd device is named by its text
 * in the window's fields, when tally:names has one.
 */
static void
resolve_metric(struct q_redis *q, struct q_args *a)
{
	size_t i;

	if (a->metric_name == NULL) {
		if (args_statsd_device(a))
			a->series = statsd_series_text(q, a->metric);
		return;
	}
	for (i = 0; a->cat.present && i < a->cat.n; i++) {
		if (strcmp(a->cat.e[i].name, a->metric_name) == 0) {
			a->metric = a->cat.e[i].id;
			return;
		}
	}
	a->metric = tally_statsd_metric_id(a->metric_name, strlen(a->metric_name));
	a->series = statsd_series_text(q, a->metric);
	if (a->series != NULL && strcmp(a->series, a->metric_name) == 0)
		return;
	free(a->series);
	a->series = NULL;
	if (a->cat.error != NULL)
		q_exit(Q_EXIT_ERROR, "METRIC: '%s' is not a metric id nor a statsd series in "
		       Q_NAMES_KEY ", and " Q_CATALOG_KEY " cannot be read: %s", a->metric_name,
		       a->cat.error);
	if (!a->cat.present)
		q_exit(Q_EXIT_USAGE, "METRIC: '%s' is not a metric id nor a statsd series in "
		       Q_NAMES_KEY ", and Redis has no " Q_CATALOG_KEY " to find the name in",
		       a->metric_name);
	q_exit(Q_EXIT_USAGE, "METRIC: '%s' is not a name in " Q_CATALOG_KEY " (%zu metrics; "
	       "see tally-query catalog) nor a statsd series in " Q_NAMES_KEY, a->metric_name,
	       a->cat.n);
}

/* Options given as text, checked against the command that takes them. */
struct q_opts {
	const char *from;
	const char *to;
	const char *q;
	const char *devices;
};

static void
parse_command_args(const struct q_command *cmd, char **argv, int argc, const struct q_opts *o,
		   struct q_args *a, uint64_t now)
{
	bool devices = (cmd->takes & Q_TAKES_DEVICES) && o->devices != NULL;

	memset(a, 0, sizeof(*a));
	if (devices) {
		/* --devices names the devices: DEVICE is '-' or left out. */
		if (argc == cmd->max_args && strcmp(argv[0], "-") != 0)
			q_exit(Q_EXIT_USAGE,
			       "%s: DEVICE %s and --devices: give one (with --devices, DEVICE "
			       "is '-' or left out)",
			       cmd->name, argv[0]);
		if (argc == cmd->max_args) {
			argv++;
			argc--;
		}
		if (argc != 1)
			q_exit(Q_EXIT_USAGE, "%s: expects %s (see --help)", cmd->name,
			       cmd->alt_args);
		parse_arg_metric(argv[0], a);
		return;
	}
	if (argc < cmd->min_args || argc > cmd->max_args)
		q_exit(Q_EXIT_USAGE, "%s: expects %s%s", cmd->name,
		       cmd->args[0] ? cmd->args : "no arguments",
		       cmd->args[0] ? " (see --help)" : "");
	if (argc >= 1 && (cmd->takes & Q_TAKES_DEVICES) && strcmp(argv[0], "-") == 0)
		q_exit(Q_EXIT_USAGE, "%s: DEVICE '-' needs --devices LIST", cmd->name);
	if (argc >= 1) {
		/* top's only argument is a count; it shares the slot of DEVICE. */
		a->has_device = true;
		a->device = cmd->run == cmd_top ? parse_arg_u64("N", argv[0], UINT64_MAX)
						: parse_arg_device(argv[0]);
	}
	if (argc >= 2)
		parse_arg_metric(argv[1], a);
	if (argc >= 3)
		a->from = parse_arg_time("FROM", argv[2], now);
	if (argc >= 4) {
		a->has_to = true;
		a->to = parse_arg_time("TO", argv[3], now);
	}
}

/*
 * --from and --to (range's FROM and TO, given once either way), --q, --devices: each only to
 * a command that takes it.
 */
static void
apply_opts(const struct q_command *cmd, int argc, const struct q_opts *o, struct q_args *a,
	   uint64_t now)
{
	if ((o->from != NULL || o->to != NULL) && !(cmd->takes & Q_TAKES_TIME))
		q_exit(Q_EXIT_USAGE, "%s: only range, quantile and distinct take a time",
		       o->from ? "--from" : "--to");
	if (o->devices != NULL && !(cmd->takes & Q_TAKES_DEVICES))
		q_exit(Q_EXIT_USAGE, "--devices: only quantile and distinct take a device list");
	if (o->q != NULL && !(cmd->takes & Q_TAKES_Q))
		q_exit(Q_EXIT_USAGE, "--q: only quantile takes quantiles");
	if (o->from != NULL && argc >= 3)
		q_exit(Q_EXIT_USAGE, "--from: FROM is given as an argument too");
	if (o->to != NULL && argc >= 4)
		q_exit(Q_EXIT_USAGE, "--to: TO is given as an argument too");
	if (o->from != NULL)
		a->from = parse_arg_time("--from", o->from, now);
	if (o->to != NULL) {
		a->has_to = true;
		a->to = parse_arg_time("--to", o->to, now);
	}
	if (o->devices != NULL)
		parse_arg_devices(o->devices, a);
	if (cmd->takes & Q_TAKES_Q)
		parse_arg_quantiles(o->q != NULL ? o->q : Q_DEFAULT_QUANTILES, a);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"redis", required_argument, NULL, 'r'},
		{"redis-user", required_argument, NULL, 'u'},
		{"redis-password-file", required_argument, NULL, 'p'},
		{"redis-cluster", required_argument, NULL, 'c'},
		{"timeout-ms", required_argument, NULL, 't'},
		{"json", no_argument, NULL, 'j'},
		{"csv", no_argument, NULL, 'C'},
		{"from", required_argument, NULL, 'F'},
		{"to", required_argument, NULL, 'O'},
		{"sparkline", no_argument, NULL, 'S'},
		{"top", required_argument, NULL, 'T'},
		{"q", required_argument, NULL, 'q'},
		{"devices", required_argument, NULL, 'D'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct q_conf conf = {.redis = Q_DEFAULT_REDIS, .timeout_ms = Q_DEFAULT_TIMEOUT_MS};
	const struct q_command *cmd = NULL;
	uint64_t now = now_ms();
	struct q_opts opts = {0};
	char *top_n = NULL;
	struct q_args args;
	char **pos;
	int npos = 0;
	int at;
	struct q_redis *q;
	size_t i;
	int rc;
	int o;

	for (i = 1; i < (size_t)argc; i++)
		if (is_password_opt(argv[i]))
			q_exit(Q_EXIT_USAGE, "%.*s: %s", (int)strcspn(argv[i], "="), argv[i],
			       "a password is never given on the command line; put it in a file "
			       "(chmod 600) and give --redis-password-file FILE");
	opterr = 0;
	/*
	 * Options may go anywhere, as with getopt's permutation, but the arguments are taken here
	 * in order, so that a relative time (-15m; no option starts with a digit) is FROM or TO.
	 */
	pos = q_realloc(NULL, (size_t)argc, sizeof(*pos));
	while (optind < argc) {
		at = optind;
		if (argv[at][0] == '-' && argv[at][1] >= '0' && argv[at][1] <= '9') {
			pos[npos++] = argv[optind++];
			continue;
		}
		o = getopt_long(argc, argv, "+:", longopts, NULL);
		if (o == -1 && optind > at) { /* "--": the rest are arguments */
			while (optind < argc)
				pos[npos++] = argv[optind++];
			break;
		}
		if (o == -1) {
			pos[npos++] = argv[optind++];
			continue;
		}
		switch (o) {
		case 'r':
			conf.redis = optarg;
			break;
		case 'u':
			if (*optarg == '\0' || strlen(optarg) > TALLY_AUTH_USER_MAX)
				q_exit(Q_EXIT_USAGE,
				       "--redis-user: '%s' is empty or longer than %d characters",
				       optarg, TALLY_AUTH_USER_MAX);
			conf.user = optarg;
			break;
		case 'p':
			conf.password_file = optarg;
			break;
		case 'c':
			if (strcmp(optarg, "auto") == 0)
				conf.cluster = Q_CLUSTER_AUTO;
			else if (strcmp(optarg, "yes") == 0)
				conf.cluster = Q_CLUSTER_YES;
			else if (strcmp(optarg, "no") == 0)
				conf.cluster = Q_CLUSTER_NO;
			else
				q_exit(Q_EXIT_USAGE, "--redis-cluster: '%s' is not auto, yes or no",
				       optarg);
			break;
		case 't':
			conf.timeout_ms = parse_arg_u64("--timeout-ms", optarg, 3600000);
			if (conf.timeout_ms == 0)
				q_exit(Q_EXIT_USAGE, "--timeout-ms: must be at least 1");
			break;
		case 'j':
			conf.json = true;
			break;
		case 'C':
			conf.csv = true;
			break;
		case 'F':
			opts.from = optarg;
			break;
		case 'O':
			opts.to = optarg;
			break;
		case 'q':
			opts.q = optarg;
			break;
		case 'D':
			opts.devices = optarg;
			break;
		case 'S':
			conf.sparkline = true;
			break;
		case 'T':
			top_n = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case ':':
			q_exit(Q_EXIT_USAGE, "%s: missing argument", argv[at]);
		default:
			q_exit(Q_EXIT_USAGE, "%s: unknown option (see --help)", argv[at]);
		}
	}
	parse_redis_addr(&conf);
	if (conf.json && conf.csv)
		q_exit(Q_EXIT_USAGE, "--csv: not with --json (pick one)");
	if (!conf.json && !conf.csv && isatty(STDOUT_FILENO))
		conf.sparkline = true;
	if (conf.user != NULL && conf.password_file == NULL)
		q_exit(Q_EXIT_USAGE, "--redis-user %s needs a password: give --redis-password-file",
		       conf.user);
	if (top_n != NULL) { /* --top N is the top command */
		if (npos > 0)
			q_exit(Q_EXIT_USAGE, "--top takes no COMMAND");
		cmd = find_command("top");
		parse_command_args(cmd, &top_n, 1, &opts, &args, now);
		apply_opts(cmd, 1, &opts, &args, now);
		goto run;
	}
	if (npos == 0)
		q_exit(Q_EXIT_USAGE, "missing COMMAND (latest, range, self, totals, quantile, "
		       "distinct, top or catalog; see --help)");
	cmd = find_command(pos[0]);
	if (cmd == NULL)
		q_exit(Q_EXIT_USAGE, "%s: unknown command (see --help)", pos[0]);
	parse_command_args(cmd, pos + 1, npos - 1, &opts, &args, now);
	apply_opts(cmd, npos - 1, &opts, &args, now);
run:
	free(pos);
	q = q_realloc(NULL, 1, sizeof(*q));
	q_open(q, &conf);
	if (cmd->takes & Q_NAMES) {
		catalog_read(q, &args.cat);
		resolve_metric(q, &args);
	}
	rc = cmd->run(q, &conf, &args);
	q_close(q);
	free(q);
	free(args.devices);
	free(args.q);
	free(args.cat.e);
	free(args.cat.error);
	free(args.series);
	if (fflush(stdout) != 0)
		q_exit(Q_EXIT_ERROR, "cannot write output: %s", strerror(errno));
	return rc;
}
