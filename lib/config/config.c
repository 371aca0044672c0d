/* SPDX-License-Identifier: BSD-3-Clause */
/* The option table and its parsers: command line, INI file (rte_cfgfile), defaults, --help. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_cfgfile.h>
#include <rte_common.h>

#include "tally_catalog.h"
#include "tally_config.h"
#include "tally_metrics.h"

#define INI_SECTION "tally"

enum opt_type {
	OPT_U64,
	OPT_U16,
	OPT_HOSTPORT,
	OPT_IPV4,
	OPT_IPV6,
	OPT_PATH,
	OPT_ENUM,   /* one of choices[], stored as its index in a uint8_t */
	OPT_SHARE,  /* a double in [0, 1] */
	OPT_HEX,    /* hex bytes into rss_key / rss_key_len */
	OPT_STR,    /* text of 1 to max characters */
	OPT_LISTEN, /* ADDR:PORT to listen on (tally_metrics_parse_listen()) */
};

struct opt {
	const char *name;
	enum opt_type type;
	size_t off;
	const char *def;   /* NULL: unset by default */
	uint64_t min;
	uint64_t max;
	const char *help;
	const char *const *choices; /* OPT_ENUM: NULL-terminated */
};

static const char *const partition_choices[] = {"nic", "device", NULL};
static const char *const rss_choices[] = {"l3-l4", "l3", "l3-src", NULL};
static const char *const write_choices[] = {"merge", "hset", NULL};
static const char *const spool_choices[] = {"drop-new", "drop-oldest", NULL};
static const char *const cluster_choices[] = {"auto", "yes", "no", NULL};

#define OFF(f) offsetof(struct tally_config, f)

static const struct opt opts[] = {
	{"config", OPT_PATH, OFF(config_file), NULL, 0, 0,
	 "INI file with these keys in a [tally] section; the command line wins. A [metrics] "
	 "section beside it is the metric catalog when --catalog is not given"},
	{"catalog", OPT_PATH, OFF(catalog_file), NULL, 0, 0,
	 "metric catalog: an INI file whose [metrics] section has lines ID = NAME [UNIT] KIND "
	 "(KIND counter, gauge, histogram or distinct; UNIT '-' or left out for none)"},
	{"redis", OPT_HOSTPORT, 0, "127.0.0.1:6379", 0, 0, "Redis server HOST:PORT"},
	{"redis-user", OPT_STR, OFF(redis_user), NULL, 0, TALLY_REDIS_USER_MAX,
	 "Redis ACL user to authenticate as; unset: the default user"},
	{"redis-password-file", OPT_PATH, OFF(redis_password_file), NULL, 0, 0,
	 "file holding the Redis password on one line, not readable by others (never the "
	 "password itself on the command line or here)"},
	{"redis-cluster", OPT_ENUM, OFF(redis_cluster), "auto", 0, 0,
	 "auto: a Redis Cluster when --redis says so in INFO cluster; yes: must be one; no: "
	 "a single node even if it is a cluster node",
	 cluster_choices},
	{"udp-port", OPT_U16, OFF(udp_port), "9797", 1, 65535, "UDP port of telemetry"},
	{"statsd-port", OPT_U16, OFF(statsd_port), "0", 0, 65535,
	 "UDP port of statsd / DogStatsD text on the same ports and workers (0 = off; 8125 is "
	 "customary)"},
	{"statsd-device-tag", OPT_STR, OFF(statsd_device_tag), "host", 0, 63,
	 "statsd: the tag whose value names a line's device; without it, the sender's address"},
	{"statsd-max-tags", OPT_U64, OFF(statsd_max_tags), "16", 0, 64,
	 "statsd: most tags a line may have (more: refused, statsd:too_many_tags)"},
	{"statsd-series", OPT_U64, OFF(statsd_series), "65536", 1, 1u << 24,
	 "statsd: series (and devices) each worker knows the names of, checked for id "
	 "collisions (64 bytes each); a new one beyond it is refused, statsd:series_full"},
	{"ipv4", OPT_IPV4, OFF(ipv4), NULL, 0, 0,
	 "own IPv4 address: answers ARP and ping, other destinations count as `other`"},
	{"ipv6", OPT_IPV6, OFF(ipv6), NULL, 0, 0,
	 "own IPv6 address: answers neighbor solicitation and ping6"},
	{"window-ms", OPT_U64, OFF(window_ms), "1000", 10, 86400000,
	 "tumbling window length, aligned to wall-clock multiples"},
	{"mbufs", OPT_U64, OFF(mbufs), "16383", 1023, 1u << 24, "mbuf pool size"},
	{"flush-batch", OPT_U64, OFF(flush_batch), "5000", 1, 1000000,
	 "Redis micro-batch: most device chunks (or other commands) per pipelined flush"},
	{"flush-ms", OPT_U64, OFF(flush_ms), "50", 1, 60000,
	 "Redis micro-batch: longest wait before a partial batch is flushed"},
	{"retention-s", OPT_U64, OFF(retention_s), "86400", 1, 1u << 31,
	 "TTL of window keys and of the latest key"},
	{"stats-ms", OPT_U64, OFF(stats_ms), "1000", 10, 3600000, "period of the tally:self write"},
	{"log-ms", OPT_U64, OFF(log_ms), "5000", 100, 3600000, "period of the one-line log"},
	{"table-series", OPT_U64, OFF(table_series), "262144", 16, 1u << 28,
	 "series one worker table (and one merged window) holds; more are counted as table_full"},
	{"histogram-series", OPT_U64, OFF(histogram_series), "4096", 0, 1u << 26,
	 "histogram series one table holds the sketches of: 4 KiB of side memory each (a "
	 "sketch of b buckets takes 32 + 10 b bytes); beyond it, counted as side_full"},
	{"distinct-series", OPT_U64, OFF(distinct_series), "1024", 0, 1u << 26,
	 "distinct series one table holds the HLLs of: 4 KiB of side memory each (4 bytes a "
	 "register set, 12,304 bytes past 1,024); beyond it, counted as side_full"},
	{"burst", OPT_U64, OFF(burst), "64", 1, 512, "rx_burst size"},
	{"rx-desc", OPT_U64, OFF(rx_desc), "1024", 64, 32768, "RX descriptors per queue"},
	{"redis-wait-replicas", OPT_U64, OFF(redis_wait_replicas), "0", 0, 16,
	 "a batch counts as written once this many replicas of its master have it (WAIT); "
	 "fewer in half of --redis-timeout-ms: written again later, or spooled"},
	{"redis-timeout-ms", OPT_U64, OFF(redis_timeout_ms), "2000", 10, 600000,
	 "connect and command timeout toward Redis"},
	{"partition", OPT_ENUM, OFF(partition), "nic", 0, 0,
	 "nic: aggregate where RSS delivers; device: each device on its owner worker",
	 partition_choices},
	{"rss-fields", OPT_ENUM, OFF(rss_fields), "l3-l4", 0, 0,
	 "RSS hash input: l3-l4 (addresses + UDP ports), l3, l3-src (source address)", rss_choices},
	{"rss-key", OPT_HEX, OFF(rss_key), NULL, 0, 0,
	 "RSS key in hex (the port's key size, usually 40 bytes); default: the port's"},
	{"hot-share", OPT_SHARE, OFF(hot_share), "0.02", 0, 0,
	 "device mode: a device above this share of a worker's records is hot and "
	 "pre-aggregated where it arrives (0 = off)"},
	{"hot-flush-ms", OPT_U64, OFF(hot_flush_ms), "0", 0, 86400000,
	 "device mode: hand hot devices' partials to the final stage this often, not only at "
	 "window close (0 = at close)"},
	{"fwd-ring", OPT_U64, OFF(fwd_ring), "16384", 64, 1u << 22,
	 "device mode: records each worker-to-worker ring holds"},
	{"redis-write", OPT_ENUM, OFF(redis_write), "merge", 0, 0,
	 "merge: exactly-once merge into what Redis holds (a Redis 7 Function); "
	 "hset: plain overwrite, faster, not restart- or multi-instance-safe",
	 write_choices},
	{"instance", OPT_PATH, OFF(instance), NULL, 0, 0,
	 "this instance's name in merge ids (default: the host name)"},
	{"spool-dir", OPT_PATH, OFF(spool_dir), NULL, 0, 0,
	 "spool windows Redis cannot take (outage, full queue, shutdown) to this directory; "
	 "replayed on recovery and at the next start. Also lets tally start with Redis down"},
	{"spool-max-mb", OPT_U64, OFF(spool_max_mb), "1024", 1, 1u << 24, "spool size cap"},
	{"spool-policy", OPT_ENUM, OFF(spool_policy), "drop-new", 0, 0,
	 "at the cap: drop-new (keep what is spooled, count new windows) or drop-oldest",
	 spool_choices},
	{"sink-queue-mb", OPT_U64, OFF(sink_queue_mb), "256", 1, 1u << 20,
	 "memory for closed windows waiting for Redis (merged tables); beyond it they spool"},
	{"max-memory-mb", OPT_U64, OFF(max_memory_mb), "0", 0, 1u << 30,
	 "refuse to start when the options imply more memory than this (tables, queue, mbufs, "
	 "rings); 0: what the host has free (hugepages and MemAvailable)"},
	{"shutdown-timeout-s", OPT_U64, OFF(shutdown_timeout_s), "30", 1, 3600,
	 "at SIGTERM, how long to keep writing to Redis before spooling the rest"},
	{"breaker-failures", OPT_U64, OFF(breaker_failures), "3", 1, 1000,
	 "consecutive Redis failures that open the circuit breaker"},
	{"breaker-backoff-ms", OPT_U64, OFF(breaker_backoff_ms), "100", 1, 600000,
	 "first open period of the breaker; doubles (with jitter) up to --breaker-max-ms"},
	{"breaker-max-ms", OPT_U64, OFF(breaker_max_ms), "5000", 1, 3600000,
	 "longest open period of the breaker"},
	{"dlq", OPT_PATH, OFF(dlq_path), NULL, 0, 0,
	 "dead-letter capture: malformed datagrams to this pcapng file, reason as comment"},
	{"dlq-max-mb", OPT_U64, OFF(dlq_max_mb), "64", 1, 1u << 20,
	 "rotate the capture (FILE -> FILE.1) at this size"},
	{"dlq-burst", OPT_U64, OFF(dlq_burst), "1000", 1, 1u << 24,
	 "capture at most this many malformed datagrams at once ..."},
	{"dlq-rate", OPT_U64, OFF(dlq_rate), "1000", 1, 1u << 24,
	 "... then this many a second; the rest are counted only"},
	{"metrics-listen", OPT_LISTEN, OFF(metrics_listen), NULL, 0, 0,
	 "serve Prometheus / OpenMetrics text at http://ADDR:PORT/metrics on a thread of its own "
	 "(127.0.0.1:9469, [::1]:9469, :9469 for every IPv4 address); unset: off"},
	{"exception-rate", OPT_U64, OFF(exception_rate), "1000", 0, 1000000,
	 "ARP, ping and neighbor solicitation replies a second, as many at once; requests over "
	 "it get none and count as exception_rate_limited (0 = never reply)"},
};

#define NOPTS (sizeof(opts) / sizeof(opts[0]))

_Static_assert(NOPTS <= TALLY_CONFIG_MAX_OPTS, "TALLY_CONFIG_MAX_OPTS is too small");

static int
fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

static const struct opt *
find_opt(const char *name)
{
	size_t i;

	for (i = 0; i < NOPTS; i++)
		if (strcmp(opts[i].name, name) == 0)
			return &opts[i];
	return NULL;
}

/*
 * True for an option or key that would carry a password itself: `password`, `redis-password`
 * and its abbreviations (which getopt_long would otherwise take for --redis-password-file).
 * A password on the command line shows in ps and shell history; in the INI file it lies
 * next to settings that are shared and copied around.
 */
static int
is_password_opt(const char *name)
{
	static const char full[] = "redis-password";
	size_t len = strcspn(name, "=");

	if (len == strlen("password") && strncmp(name, "password", len) == 0)
		return 1;
	return len > strlen("redis-") && len < sizeof(full) && strncmp(name, full, len) == 0;
}

static int
parse_u64(const char *s, uint64_t *v)
{
	char *end;

	if (*s == '\0' || *s == '-' || *s == '+')
		return -1;
	errno = 0;
	*v = strtoull(s, &end, 10);
	return (errno != 0 || *end != '\0') ? -1 : 0;
}

static int
parse_hostport(struct tally_config *c, const char *s)
{
	const char *colon = strrchr(s, ':');
	size_t hlen;
	uint64_t port;

	if (colon == NULL)
		return -1;
	hlen = (size_t)(colon - s);
	if (s[0] == '[' && hlen >= 2 && s[hlen - 1] == ']') { /* [v6]:port */
		s++;
		hlen -= 2;
	}
	if (hlen == 0 || hlen >= sizeof(c->redis_host))
		return -1;
	if (parse_u64(colon + 1, &port) != 0 || port == 0 || port > 65535)
		return -1;
	memcpy(c->redis_host, s, hlen);
	c->redis_host[hlen] = '\0';
	c->redis_port = (uint16_t)port;
	return 0;
}

static int
parse_share(const char *s, double *v)
{
	char *end;

	if (*s == '\0')
		return -1;
	errno = 0;
	*v = strtod(s, &end);
	return (errno != 0 || *end != '\0' || !(*v >= 0.0 && *v <= 1.0)) ? -1 : 0;
}

static int
hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* "6d5a56da255b..." or with ':' separators, into rss_key. */
static int
parse_hex(struct tally_config *c, const char *s)
{
	uint8_t key[sizeof(c->rss_key)];
	size_t n = 0;

	while (*s != '\0') {
		int hi, lo;

		if (*s == ':') {
			s++;
			continue;
		}
		hi = hexval(s[0]);
		lo = hi < 0 ? -1 : hexval(s[1]);
		if (lo < 0 || n >= sizeof(key))
			return -1;
		key[n++] = (uint8_t)(hi << 4 | lo);
		s += 2;
	}
	if (n == 0)
		return -1;
	memcpy(c->rss_key, key, n);
	c->rss_key_len = (uint8_t)n;
	return 0;
}

/* "a, b, c" for an error message. */
static const char *
join_choices(const char *const *choices)
{
	static char buf[128];
	size_t len = 0, i;

	buf[0] = '\0';
	for (i = 0; choices[i] != NULL; i++)
		len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%s", i ? ", " : "",
					choices[i]);
	return buf;
}

static int
set_opt(struct tally_config *c, const struct opt *o, const char *val, char *err, size_t errlen)
{
	uint8_t *field = (uint8_t *)c + o->off;
	size_t len = strlen(val);
	uint64_t v;

	/* ' 1000' or 'x ' is a quoting mistake more often than a wish: say so, never guess. */
	if (len > 0 && (isspace((unsigned char)val[0]) || isspace((unsigned char)val[len - 1])))
		return fail(err, errlen, "--%s: '%s' has leading or trailing spaces", o->name, val);
	/* "--instance -h": the value is missing and the next option was taken for it. */
	if ((o->type == OPT_PATH || o->type == OPT_STR) && val[0] == '-')
		return fail(err, errlen,
			    "--%s: '%s' looks like an option, not a value (a value is missing?)",
			    o->name, val);
	c->given[o - opts] = 1;
	switch (o->type) {
	case OPT_U64:
	case OPT_U16:
		if (parse_u64(val, &v) != 0 || v < o->min || v > o->max)
			return fail(err, errlen, "--%s: '%s' is not an integer in [%" PRIu64
				    ", %" PRIu64 "]", o->name, val, o->min, o->max);
		if (o->type == OPT_U16)
			*(uint16_t *)field = (uint16_t)v;
		else
			*(uint64_t *)field = v;
		return 0;
	case OPT_HOSTPORT:
		if (parse_hostport(c, val) != 0)
			return fail(err, errlen, "--%s: '%s' is not HOST:PORT", o->name, val);
		return 0;
	case OPT_IPV4:
		if (inet_pton(AF_INET, val, field) != 1)
			return fail(err, errlen, "--%s: '%s' is not an IPv4 address", o->name, val);
		c->has_ipv4 = 1;
		return 0;
	case OPT_IPV6:
		if (inet_pton(AF_INET6, val, field) != 1)
			return fail(err, errlen, "--%s: '%s' is not an IPv6 address", o->name, val);
		c->has_ipv6 = 1;
		return 0;
	case OPT_LISTEN: {
		struct sockaddr_storage sa;
		char why[256];

		if (strlen(val) >= TALLY_LISTEN_MAX ||
		    tally_metrics_parse_listen(val, &sa, why, sizeof(why)) != 0)
			return fail(err, errlen, "--%s: %s", o->name,
				    strlen(val) >= TALLY_LISTEN_MAX ? "too long" : why);
		strcpy((char *)field, val);
		return 0;
	}
	case OPT_PATH:
		if (*val == '\0' || strlen(val) >= TALLY_PATH_MAX)
			return fail(err, errlen, "--%s: path is empty or too long", o->name);
		strcpy((char *)field, val);
		return 0;
	case OPT_ENUM:
		for (v = 0; o->choices[v] != NULL; v++) {
			if (strcmp(o->choices[v], val) == 0) {
				*field = (uint8_t)v;
				return 0;
			}
		}
		return fail(err, errlen, "--%s: '%s' is not one of %s", o->name, val,
			    join_choices(o->choices));
	case OPT_SHARE:
		return parse_share(val, (double *)field) == 0
			       ? 0
			       : fail(err, errlen, "--%s: '%s' is not a number in [0, 1]", o->name,
				      val);
	case OPT_HEX:
		return parse_hex(c, val) == 0
			       ? 0
			       : fail(err, errlen, "--%s: '%s' is not 1 to 64 hex bytes", o->name,
				      val);
	case OPT_STR:
		if (*val == '\0' || strlen(val) > o->max)
			return fail(err, errlen,
				    "--%s: '%s' is empty or longer than %" PRIu64 " characters",
				    o->name, val, o->max);
		strcpy((char *)field, val);
		return 0;
	}
	return fail(err, errlen, "--%s: unsupported option type", o->name);
}

/* An option's value as text (for the reload log): "unset" when it has none. */
static void
format_opt(const struct tally_config *c, const struct opt *o, char *buf, size_t len)
{
	const uint8_t *field = (const uint8_t *)c + o->off;
	size_t n = 0;
	unsigned int i;

	switch (o->type) {
	case OPT_U64:
		snprintf(buf, len, "%" PRIu64, *(const uint64_t *)field);
		return;
	case OPT_U16:
		snprintf(buf, len, "%u", *(const uint16_t *)field);
		return;
	case OPT_HOSTPORT:
		snprintf(buf, len, strchr(c->redis_host, ':') ? "[%s]:%u" : "%s:%u", c->redis_host,
			 c->redis_port);
		return;
	case OPT_IPV4:
	case OPT_IPV6:
		if (!(o->type == OPT_IPV4 ? c->has_ipv4 : c->has_ipv6) ||
		    inet_ntop(o->type == OPT_IPV4 ? AF_INET : AF_INET6, field, buf,
			      (socklen_t)len) == NULL)
			snprintf(buf, len, "unset");
		return;
	case OPT_PATH:
	case OPT_STR:
	case OPT_LISTEN:
		snprintf(buf, len, "%s", *(const char *)field ? (const char *)field : "unset");
		return;
	case OPT_ENUM:
		snprintf(buf, len, "%s", o->choices[*field]);
		return;
	case OPT_SHARE:
		snprintf(buf, len, "%g", *(const double *)field);
		return;
	case OPT_HEX:
		if (c->rss_key_len == 0)
			snprintf(buf, len, "unset");
		for (i = 0; i < c->rss_key_len && n + 3 < len; i++)
			n += (size_t)snprintf(buf + n, len - n, "%02x", c->rss_key[i]);
		return;
	}
	snprintf(buf, len, "?");
}

void
tally_config_diff(const struct tally_config *a, const struct tally_config *b,
		  void (*fn)(void *ctx, const char *name, const char *was, const char *now),
		  void *ctx)
{
	char was[256], now[256];
	size_t i;

	for (i = 0; i < NOPTS; i++) {
		format_opt(a, &opts[i], was, sizeof(was));
		format_opt(b, &opts[i], now, sizeof(now));
		if (strcmp(was, now) != 0)
			fn(ctx, opts[i].name, was, now);
	}
}

int
tally_config_copy(struct tally_config *dst, const struct tally_config *src, const char *name)
{
	const struct opt *o = find_opt(name);
	uint8_t *d;
	const uint8_t *s;

	if (o == NULL)
		return -1;
	d = (uint8_t *)dst + o->off;
	s = (const uint8_t *)src + o->off;
	switch (o->type) {
	case OPT_U64:
		memcpy(d, s, sizeof(uint64_t));
		break;
	case OPT_U16:
		memcpy(d, s, sizeof(uint16_t));
		break;
	case OPT_HOSTPORT:
		memcpy(dst->redis_host, src->redis_host, sizeof(dst->redis_host));
		dst->redis_port = src->redis_port;
		break;
	case OPT_IPV4:
		memcpy(d, s, sizeof(uint32_t));
		dst->has_ipv4 = src->has_ipv4;
		break;
	case OPT_IPV6:
		memcpy(d, s, 16);
		dst->has_ipv6 = src->has_ipv6;
		break;
	case OPT_PATH:
	case OPT_STR:
	case OPT_LISTEN:
		strcpy((char *)d, (const char *)s);
		break;
	case OPT_ENUM:
		*d = *s;
		break;
	case OPT_SHARE:
		memcpy(d, s, sizeof(double));
		break;
	case OPT_HEX:
		memcpy(dst->rss_key, src->rss_key, sizeof(dst->rss_key));
		dst->rss_key_len = src->rss_key_len;
		break;
	}
	return 0;
}

int
tally_config_set(struct tally_config *c, const char *name, const char *value, char *err,
		 size_t errlen)
{
	const struct opt *o = find_opt(name);

	if (o == NULL)
		return fail(err, errlen, "unknown option '%s'", name);
	return set_opt(c, o, value, err, errlen);
}

void
tally_config_defaults(struct tally_config *c)
{
	char err[128];
	size_t i;

	memset(c, 0, sizeof(*c));
	for (i = 0; i < NOPTS; i++)
		if (opts[i].def != NULL)
			set_opt(c, &opts[i], opts[i].def, err, sizeof(err));
	memset(c->given, 0, sizeof(c->given)); /* defaults are not given */
}

/* Lines of the INI file's keys, for errors that name them (0: not found). */
struct ini_lines {
	char key[TALLY_CONFIG_MAX_OPTS + 32][CFG_NAME_LEN];
	int line[TALLY_CONFIG_MAX_OPTS + 32];
	int n;
};

/*
 * A section line of the --config file: [tally] (once) or [metrics] (once: the catalog, whose
 * lines tally_catalog_load() checks). in_metrics tells which one the lines below are in.
 */
static int
ini_section(const char *path, int lineno, const char *s, int *tally_line, int *metrics_line,
	    int *in_metrics, char *err, size_t errlen)
{
	const char *end = strchr(s, ']');
	char name[CFG_NAME_LEN];
	int *first;
	size_t len;

	if (end == NULL)
		return fail(err, errlen, "%s:%d: '%.60s' is not a [section]", path, lineno, s);
	for (s++; isspace((unsigned char)*s); s++)
		;
	while (end > s && isspace((unsigned char)end[-1]))
		end--;
	len = (size_t)(end - s);
	snprintf(name, sizeof(name), "%.*s", (int)len, s);
	if (len == strlen(INI_SECTION) && strncmp(s, INI_SECTION, len) == 0)
		first = tally_line;
	else if (len == strlen(TALLY_CATALOG_SECTION) &&
		 strncmp(s, TALLY_CATALOG_SECTION, len) == 0)
		first = metrics_line;
	else
		return fail(err, errlen, "%s:%d: section [%s] is neither [%s] nor [%s]", path,
			    lineno, name, INI_SECTION, TALLY_CATALOG_SECTION);
	if (*first != 0)
		return fail(err, errlen, "%s:%d: section [%s] again (first on line %d)", path,
			    lineno, name, *first);
	*first = lineno;
	*in_metrics = first == metrics_line;
	return 0;
}

/*
 * What rte_cfgfile passes over in silence: a line that is not a section, a comment or
 * KEY = VALUE (rte_cfgfile skips it), a key given twice (the last would win), and a section
 * other than [tally] and [metrics]. Also records each key's line for the errors of its value,
 * and whether the file has a [metrics] section.
 */
static int
ini_check(struct tally_config *c, const char *path, struct ini_lines *k, char *err,
	  size_t errlen)
{
	char buf[1024], why[600];
	int lineno = 0, rc = 0, i, tally_line = 0, metrics_line = 0, in_metrics = 0;
	FILE *f = tally_fopen_regular(path, why, sizeof(why));

	if (f == NULL)
		return fail(err, errlen, "--config: %s", why);
	k->n = 0;
	while (rc == 0 && fgets(buf, sizeof(buf), f) != NULL) {
		char *s = buf, *eq, *end;

		lineno++;
		while (isspace((unsigned char)*s))
			s++;
		end = s + strlen(s);
		while (end > s && isspace((unsigned char)end[-1]))
			*--end = '\0';
		if (*s == '\0' || *s == ';' || *s == '#')
			continue;
		if (*s == '[') {
			rc = ini_section(path, lineno, s, &tally_line, &metrics_line, &in_metrics,
					 err, errlen);
			continue;
		}
		if (in_metrics)
			continue;
		eq = strchr(s, '=');
		if (eq == NULL) {
			rc = fail(err, errlen, "%s:%d: '%.60s' is not KEY = VALUE", path, lineno, s);
			break;
		}
		for (end = eq; end > s && isspace((unsigned char)end[-1]); end--)
			;
		*end = '\0';
		for (i = 0; i < k->n; i++)
			if (strcmp(k->key[i], s) == 0)
				rc = fail(err, errlen, "%s:%d: key '%s' is already set on line %d", path,
					  lineno, s, k->line[i]);
		if (rc == 0 && k->n < (int)RTE_DIM(k->key) && strlen(s) < sizeof(k->key[0])) {
			strcpy(k->key[k->n], s);
			k->line[k->n++] = lineno;
		}
	}
	if (rc == 0 && ferror(f))
		rc = fail(err, errlen, "--config: cannot read %s: %s", path, strerror(errno));
	if (rc == 0 && tally_line == 0)
		rc = fail(err, errlen, "--config: %s has no [%s] section", path, INI_SECTION);
	fclose(f);
	c->config_has_metrics = metrics_line != 0;
	return rc;
}

static int
ini_line(const struct ini_lines *k, const char *key)
{
	int i;

	for (i = 0; i < k->n; i++)
		if (strcmp(k->key[i], key) == 0)
			return k->line[i];
	return 0;
}

int
tally_config_load_file(struct tally_config *c, const char *path, char *err, size_t errlen)
{
	struct rte_cfgfile *cfg;
	struct rte_cfgfile_entry *entries = NULL;
	struct ini_lines lines;
	int n, i, rc = 0;

	/* Its sections are [tally] and maybe [metrics], each once: ini_check() saw to it. */
	if (ini_check(c, path, &lines, err, errlen) != 0)
		return -1;
	cfg = rte_cfgfile_load(path, 0);
	if (cfg == NULL)
		return fail(err, errlen, "--config: %s is not an INI file rte_cfgfile can read",
			    path);
	n = rte_cfgfile_section_num_entries(cfg, INI_SECTION);
	entries = n > 0 ? calloc((size_t)n, sizeof(*entries)) : NULL;
	if (n > 0 && entries == NULL) {
		rc = fail(err, errlen, "--config: out of memory");
		goto out;
	}
	if (n > 0 && rte_cfgfile_section_entries(cfg, INI_SECTION, entries, n) != n) {
		rc = fail(err, errlen, "--config: cannot read [%s] of %s", INI_SECTION, path);
		goto out;
	}
	for (i = 0; i < n && rc == 0; i++) {
		const struct opt *o = find_opt(entries[i].name);
		int line = ini_line(&lines, entries[i].name);
		char why[256];

		if (is_password_opt(entries[i].name))
			rc = fail(err, errlen, "%s:%d: key '%s': %s", path, line, entries[i].name,
				  "a password is never kept in the INI file; put it in a file of "
				  "its own (chmod 600) and set redis-password-file");
		else if (o == NULL || o == find_opt("config"))
			rc = fail(err, errlen, "%s:%d: unknown key '%s'", path, line,
				  entries[i].name);
		else if (set_opt(c, o, entries[i].value, why, sizeof(why)) != 0)
			rc = fail(err, errlen, "%s:%d: %s", path, line, why);
	}
out:
	free(entries);
	rte_cfgfile_close(cfg);
	return rc;
}

void
tally_config_usage(FILE *f, const char *prog)
{
	static const char *const arg_names[] = {
		[OPT_U64] = "N",     [OPT_U16] = "N",	   [OPT_HOSTPORT] = "HOST:PORT",
		[OPT_IPV4] = "ADDR", [OPT_IPV6] = "ADDR",  [OPT_PATH] = "FILE",
		[OPT_ENUM] = "MODE", [OPT_SHARE] = "F",	   [OPT_HEX] = "HEX",
		[OPT_STR] = "NAME",  [OPT_LISTEN] = "ADDR:PORT",
	};
	size_t i;

	fprintf(f, "usage: %s [EAL options] -- [options]\n\noptions (also keys of the INI file):\n",
		prog);
	for (i = 0; i < NOPTS; i++) {
		const struct opt *o = &opts[i];
		char name[48];

		snprintf(name, sizeof(name), "--%s %s", o->name, arg_names[o->type]);
		fprintf(f, "  %-28s %s", name, o->help);
		if (o->def != NULL)
			fprintf(f, " (default %s)", o->def);
		fputc('\n', f);
	}
	fprintf(f, "  %-28s %s\n", "--check-config",
		"check the options, ports, memory, Redis, spool and paths; say what would run; "
		"exit 0 (no problem) or 1");
	fprintf(f, "  %-28s %s\n", "--counters", "print every counter (kind, unit, help) and exit");
	fprintf(f, "  %-28s %s\n", "--help", "print this help and exit");
}

static int
given(const struct tally_config *c, const char *name)
{
	const struct opt *o = find_opt(name);

	return o != NULL && c->given[o - opts];
}

/* Options given that the others make pointless: a warning each (the run goes on). */
static void
warn_no_effect(struct tally_config *c)
{
	static const struct {
		const char *opt, *needs, *value; /* value: NULL when --needs given is enough */
	} deps[] = {
		{"hot-share", "partition", "device"}, {"hot-flush-ms", "partition", "device"},
		{"fwd-ring", "partition", "device"},  {"spool-max-mb", "spool-dir", NULL},
		{"spool-policy", "spool-dir", NULL},  {"dlq-max-mb", "dlq", NULL},
		{"dlq-burst", "dlq", NULL},	      {"dlq-rate", "dlq", NULL},
	};
	size_t i;

	for (i = 0; i < RTE_DIM(deps) && c->nwarnings < TALLY_CONFIG_MAX_WARNINGS; i++) {
		int met = deps[i].value != NULL
				  ? strcmp(partition_choices[c->partition], deps[i].value) == 0
				  : given(c, deps[i].needs);

		if (given(c, deps[i].opt) && !met)
			snprintf(c->warnings[c->nwarnings++], sizeof(c->warnings[0]),
				 "--%s has no effect without --%s%s%s", deps[i].opt, deps[i].needs,
				 deps[i].value != NULL ? " " : "",
				 deps[i].value != NULL ? deps[i].value : "");
	}
}

/*
 * Which file the catalog comes from: --catalog, else the [metrics] section of the --config
 * file. Loaded once here, so a bad catalog is one line before anything starts.
 */
static int
catalog_check(struct tally_config *c, char *err, size_t errlen)
{
	struct tally_catalog *cat;
	char warning[sizeof(c->warnings[0])];
	char why[512];

	if (c->catalog_file[0] == '\0' && c->config_has_metrics)
		strcpy(c->catalog_file, c->config_file);
	else if (c->config_has_metrics && strcmp(c->catalog_file, c->config_file) != 0 &&
		 c->nwarnings < TALLY_CONFIG_MAX_WARNINGS) {
		snprintf(warning, sizeof(warning),
			 "the [metrics] section of %.60s is not read: --catalog %.60s is",
			 c->config_file, c->catalog_file);
		memcpy(c->warnings[c->nwarnings++], warning, sizeof(warning));
	}
	if (c->catalog_file[0] == '\0')
		return 0;
	cat = tally_catalog_load(c->catalog_file, why, sizeof(why));
	if (cat == NULL && given(c, "catalog"))
		return fail(err, errlen, "--catalog: %s", why);
	if (cat == NULL)
		return fail(err, errlen, "%s", why);
	tally_catalog_free(cat);
	return 0;
}

int
tally_config_parse(struct tally_config *c, int argc, char **argv, char *err, size_t errlen)
{
	struct option lopts[NOPTS + 3];
	size_t i;
	int opt, idx;

	for (i = 0; i < NOPTS; i++)
		lopts[i] = (struct option){opts[i].name, required_argument, NULL, (int)i};
	lopts[NOPTS] = (struct option){"help", no_argument, NULL, 'h' + 1000};
	lopts[NOPTS + 1] = (struct option){"check-config", no_argument, NULL, 'c' + 1000};
	lopts[NOPTS + 2] = (struct option){NULL, 0, NULL, 0};

	/* The file first, so that the command line overrides it whatever the order. */
	for (idx = 1; idx < argc; idx++) {
		const char *a = argv[idx];

		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			tally_config_usage(stdout, argv[0]);
			return 1;
		}
		if (strcmp(a, "--counters") == 0) {
			c->list_counters = 1;
			return 1;
		}
		if (strncmp(a, "--", 2) == 0 && is_password_opt(a + 2))
			return fail(err, errlen, "--%.*s: %s", (int)strcspn(a + 2, "="), a + 2,
				    "a password is never given on the command line; put it in a "
				    "file (chmod 600) and give --redis-password-file FILE");
		if (strncmp(a, "--config=", 9) == 0 || (strcmp(a, "--config") == 0 && idx + 1 < argc)) {
			const char *path = a[8] == '=' ? a + 9 : argv[idx + 1];

			if (tally_config_set(c, "config", path, err, errlen) != 0 ||
			    tally_config_load_file(c, path, err, errlen) != 0)
				return -1;
		}
		/* "--name VALUE": VALUE is not read as an option here ("--instance -h") */
		if (strncmp(a, "--", 2) == 0 && strchr(a, '=') == NULL && find_opt(a + 2) != NULL)
			idx++;
	}

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":", lopts, &idx)) != -1) {
		if (opt == '?')
			return fail(err, errlen, "unknown option '%s' (see --help)", argv[optind - 1]);
		if (opt == ':')
			return fail(err, errlen, "option '%s' needs a value", argv[optind - 1]);
		if (opt == 'c' + 1000) {
			c->check_config = 1;
			continue;
		}
		/* --config was read first, above */
		if (opt >= 0 && (size_t)opt < NOPTS && strcmp(opts[opt].name, "config") != 0 &&
		    set_opt(c, &opts[opt], optarg, err, errlen) != 0)
			return -1;
	}
	if (optind < argc)
		return fail(err, errlen, "unexpected argument '%s' (see --help)", argv[optind]);
	if (strlen(c->instance) > TALLY_INSTANCE_MAX)
		return fail(err, errlen, "--instance: '%s' is longer than %d characters",
			    c->instance, TALLY_INSTANCE_MAX);
	if (c->redis_user[0] != '\0' && c->redis_password_file[0] == '\0')
		return fail(err, errlen,
			    "--redis-user %s needs a password: give --redis-password-file",
			    c->redis_user);
	if (c->breaker_backoff_ms > c->breaker_max_ms)
		return fail(err, errlen,
			    "--breaker-backoff-ms: %" PRIu64 " is above --breaker-max-ms %" PRIu64,
			    c->breaker_backoff_ms, c->breaker_max_ms);
	warn_no_effect(c);
	return catalog_check(c, err, errlen);
}
