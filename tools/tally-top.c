/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tally-top: a live view of a running tally, refreshed every second, `q` quits. Reads DPDK's
 * telemetry socket of the tally process (its --file-prefix) or, with --redis, tally:self.
 * Shows records/s and datagrams/s in all, per worker and per port, drops by cause, the rings,
 * hot devices, the sink's backlog, breaker state and flush lag.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "tally_auth.h"

#define KEYS_MAX 8192
#define KEY_LEN 96
#define REPLY_MAX (1 << 20)

/* A snapshot: every counter read, by a flat name ("datagrams", "w0.aggregated", ...). */
struct snap {
	char key[KEYS_MAX][KEY_LEN];
	uint64_t val[KEYS_MAX];
	uint32_t n;
	double t; /* monotonic seconds */
};

struct source {
	const char *socket_path; /* telemetry */
	const char *redis_host;
	uint16_t redis_port;
	const char *user;
	const char *password_file;
	char label[300];
};

static void
put(struct snap *s, const char *key, uint64_t v)
{
	if (s->n >= KEYS_MAX)
		return;
	snprintf(s->key[s->n], KEY_LEN, "%s", key);
	s->val[s->n++] = v;
}

/* The value of key, and whether it is there. */
static int
get(const struct snap *s, const char *key, uint64_t *v)
{
	uint32_t i;

	for (i = 0; i < s->n; i++)
		if (strcmp(s->key[i], key) == 0) {
			*v = s->val[i];
			return 1;
		}
	return 0;
}

static uint64_t
val(const struct snap *s, const char *key)
{
	uint64_t v = 0;

	get(s, key, &v);
	return v;
}

/* Per second between two snapshots (0 when the counter went back: tally restarted). */
static double
rate(const struct snap *now, const struct snap *before, const char *key)
{
	uint64_t a = val(now, key), b = val(before, key);
	double dt = now->t - before->t;

	return dt > 0 && a >= b ? (double)(a - b) / dt : 0;
}

/* ---------------------------------------------------------------------------------------- */
/* A small JSON reader: objects of numbers, strings and objects, flattened as a.b = number. */

struct json {
	const char *p, *end;
	struct snap *s;
};

static void
ws(struct json *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t'))
		j->p++;
}

static int
string(struct json *j, char *out, size_t len)
{
	size_t n = 0;

	if (j->p >= j->end || *j->p != '"')
		return -1;
	j->p++;
	while (j->p < j->end && *j->p != '"') {
		char c = *j->p++;

		if (c == '\\' && j->p < j->end)
			c = *j->p++;
		if (n + 1 < len)
			out[n++] = c;
	}
	if (j->p >= j->end)
		return -1;
	j->p++;
	out[n] = '\0';
	return 0;
}

static int value(struct json *j, const char *path, int depth);

static int
object(struct json *j, const char *path, int depth)
{
	char name[KEY_LEN], sub[KEY_LEN * 2];

	j->p++; /* { */
	ws(j);
	if (j->p < j->end && *j->p == '}') {
		j->p++;
		return 0;
	}
	for (;;) {
		ws(j);
		if (string(j, name, sizeof(name)) != 0)
			return -1;
		ws(j);
		if (j->p >= j->end || *j->p++ != ':')
			return -1;
		ws(j);
		snprintf(sub, sizeof(sub), "%s%s%s", path, path[0] ? "." : "", name);
		if (value(j, sub, depth + 1) != 0)
			return -1;
		ws(j);
		if (j->p < j->end && *j->p == ',') {
			j->p++;
			continue;
		}
		if (j->p < j->end && *j->p == '}') {
			j->p++;
			return 0;
		}
		return -1;
	}
}

static int
value(struct json *j, const char *path, int depth)
{
	char text[KEY_LEN];

	if (depth > 8 || j->p >= j->end)
		return -1;
	if (*j->p == '{')
		return object(j, path, depth);
	if (*j->p == '"')
		return string(j, text, sizeof(text));
	if (*j->p == '[') { /* not used by tally's commands: skipped, nested brackets counted */
		int level = 0;

		do {
			if (*j->p == '[')
				level++;
			else if (*j->p == ']')
				level--;
			j->p++;
		} while (j->p < j->end && level > 0);
		return 0;
	}
	if ((*j->p >= '0' && *j->p <= '9') || *j->p == '-') {
		char *e;
		unsigned long long v = strtoull(j->p, &e, 10);

		if (*j->p != '-')
			put(j->s, path, v);
		j->p = e;
		while (j->p < j->end && strchr("0123456789.eE+-", *j->p) != NULL)
			j->p++;
		return 0;
	}
	while (j->p < j->end && strchr(",}]", *j->p) == NULL) /* true, false, null */
		j->p++;
	return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Reading tally */

/* One telemetry command; its reply's object flattened into s under prefix. */
static int
tel_command(int fd, const char *cmd, const char *prefix, struct snap *s, char *buf)
{
	char key[KEY_LEN];
	struct json j;
	ssize_t n;

	if (send(fd, cmd, strlen(cmd), 0) < 0)
		return -1;
	n = recv(fd, buf, REPLY_MAX - 1, 0);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* {"<cmd>": {...}} */
	j = (struct json){.p = buf, .end = buf + n, .s = s};
	ws(&j);
	if (j.p >= j.end || *j.p != '{')
		return -1;
	j.p++;
	ws(&j);
	if (string(&j, key, sizeof(key)) != 0)
		return -1;
	ws(&j);
	if (j.p >= j.end || *j.p++ != ':')
		return -1;
	ws(&j);
	if (j.p >= j.end || *j.p != '{')
		return -1; /* null: tally's commands are not there (not a tally process) */
	return value(&j, prefix, 0);
}

static int
read_telemetry(const struct source *src, struct snap *s, char *err, size_t errlen)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	static char buf[REPLY_MAX];
	int fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	ssize_t n;

	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", src->socket_path);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		snprintf(err, errlen, "cannot connect to %s: %s (is tally running with that "
			 "--file-prefix?)", src->socket_path, strerror(errno));
		close(fd);
		return -1;
	}
	n = recv(fd, buf, sizeof(buf) - 1, 0); /* the greeting */
	if (n <= 0 || tel_command(fd, "/tally/stats", "", s, buf) != 0 ||
	    tel_command(fd, "/tally/workers", "", s, buf) != 0 ||
	    tel_command(fd, "/tally/ports", "port", s, buf) != 0) {
		snprintf(err, errlen, "%s does not answer tally's telemetry commands",
			 src->socket_path);
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/* tally:self's names as the telemetry's: w0:records -> w0.aggregated, a:b -> a_b. */
static void
put_self(struct snap *s, const char *field, uint64_t v)
{
	char key[KEY_LEN];
	unsigned int w;
	int off = 0;

	if (sscanf(field, "w%u:%n", &w, &off) == 1 && off > 0) {
		snprintf(key, sizeof(key), "w%u.%s", w,
			 strcmp(field + off, "records") == 0 ? "aggregated" : field + off);
	} else {
		size_t i;

		snprintf(key, sizeof(key), "%s", field);
		for (i = 0; key[i] != '\0'; i++)
			if (key[i] == ':')
				key[i] = '_';
	}
	put(s, key, v);
}

static int
read_redis(const struct source *src, struct snap *s, char *err, size_t errlen)
{
	static char password[TALLY_AUTH_PASSWORD_SIZE];
	static int have_password;
	struct timeval tv = {.tv_sec = 2};
	redisContext *c;
	redisReply *r;
	size_t i;

	if (src->password_file != NULL && !have_password) {
		if (tally_password_file_read(src->password_file, password, sizeof(password), err,
					     errlen) != 0)
			return -1;
		have_password = 1;
	}
	c = redisConnectWithTimeout(src->redis_host, src->redis_port, tv);
	if (c == NULL || c->err) {
		snprintf(err, errlen, "cannot connect to Redis at %s:%u: %s", src->redis_host,
			 src->redis_port, c ? c->errstr : "out of memory");
		redisFree(c);
		return -1;
	}
	redisSetTimeout(c, tv);
	if (tally_redis_auth(c, src->user, have_password ? password : "", err, errlen) != 0) {
		redisFree(c);
		return -1;
	}
	r = redisCommand(c, "HGETALL tally:self");
	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
		snprintf(err, errlen, "Redis at %s:%u: %s", src->redis_host, src->redis_port,
			 r == NULL ? c->errstr
			 : r->type == REDIS_REPLY_ERROR ? r->str
							 : "no tally:self (is tally writing here?)");
		if (r != NULL)
			freeReplyObject(r);
		redisFree(c);
		return -1;
	}
	for (i = 0; i + 1 < r->elements; i += 2)
		if (r->element[i]->type == REDIS_REPLY_STRING &&
		    r->element[i + 1]->type == REDIS_REPLY_STRING)
			put_self(s, r->element[i]->str, strtoull(r->element[i + 1]->str, NULL, 10));
	freeReplyObject(r);
	redisFree(c);
	return 0;
}

static double
mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
take(const struct source *src, struct snap *s, char *err, size_t errlen)
{
	s->n = 0;
	s->t = mono();
	return src->socket_path != NULL ? read_telemetry(src, s, err, errlen)
					: read_redis(src, s, err, errlen);
}

/* ---------------------------------------------------------------------------------------- */
/* The screen */

/* 1234567 as "1,234,567" (k, M above a width). */
static const char *
num(double v, char *buf, size_t len)
{
	char digits[32];
	int n, i;
	size_t o = 0;

	if (v >= 1e12) {
		snprintf(buf, len, "%.1fT", v / 1e12);
		return buf;
	}
	n = snprintf(digits, sizeof(digits), "%.0f", v);
	for (i = 0; i < n && o + 2 < len; i++) {
		if (i > 0 && (n - i) % 3 == 0)
			buf[o++] = ',';
		buf[o++] = digits[i];
	}
	buf[o] = '\0';
	return buf;
}

static const char *const breaker_names[] = {"closed", "OPEN", "half-open"};

/* The drops by cause: tally:self's name, and what it means in a word. */
static const struct {
	const char *key;
	const char *what;
} drops[] = {
	{"table_full", "table full"},
	{"window_stall", "window stall"},
	{"rx_missed", "NIC missed"},
	{"rx_nombuf", "no mbuf"},
	{"ring_full", "fwd ring full"},
	{"exception_drops", "exception ring"},
	{"dlq_ring_full", "DLQ ring"},
	{"side_full", "side memory"},
	{"spool_lost_records", "spool lost"},
	{"unwritten_records", "unwritten"},
	{"redis_refused_records", "Redis refused"},
};

static void
render(FILE *f, const struct source *src, const struct snap *now, const struct snap *before,
       int tty)
{
	char a[40], b[40], c[40], d[40], e[40], g[40], h[40], l[40];
	uint64_t workers = val(now, "workers"), uptime = val(now, "uptime_s"), bs;
	unsigned int i, shown = 0;
	const char *eol = tty ? "\033[K\n" : "\n";

	if (tty)
		fputs("\033[H", f);
	fprintf(f, "tally-top  %s  uptime %" PRIu64 "s  workers %" PRIu64 "%s%s", src->label,
		uptime, workers, tty ? "  (q quits)" : "", eol);
	fprintf(f, "%s", eol);
	fprintf(f, "records/s %s  datagrams/s %s  malformed/s %s  statsd lines/s %s%s",
		num(rate(now, before, "records"), a, sizeof(a)),
		num(rate(now, before, "datagrams"), b, sizeof(b)),
		num(rate(now, before, "malformed"), c, sizeof(c)),
		num(rate(now, before, "statsd_lines"), d, sizeof(d)), eol);
	fprintf(f, "records %s  datagrams %s  malformed %s  statsd lines %s%s",
		num((double)val(now, "records"), a, sizeof(a)),
		num((double)val(now, "datagrams"), b, sizeof(b)),
		num((double)val(now, "malformed"), c, sizeof(c)),
		num((double)val(now, "statsd_lines"), d, sizeof(d)), eol);
	bs = val(now, "breaker_state");
	fprintf(f, "sink: queue %" PRIu64 " windows  breaker %s  flush lag %" PRIu64
		" ms  windows flushed %s  redis errors %s  spool %s bytes%s",
		val(now, "sink_queue"), bs < 3 ? breaker_names[bs] : "?", val(now, "flush_lag_ms"),
		num((double)val(now, "windows_flushed"), a, sizeof(a)),
		num((double)val(now, "redis_errors"), b, sizeof(b)),
		num((double)val(now, "spool_bytes"), c, sizeof(c)), eol);
	fprintf(f, "hot devices %" PRIu64 "  hot records/s %s  forwarded/s %s%s",
		val(now, "hot_keys"), num(rate(now, before, "hot_records"), a, sizeof(a)),
		num(rate(now, before, "forwarded"), b, sizeof(b)), eol);
	/* the rings between the lcores and threads: what found them full */
	fprintf(f, "rings full: forwarding %s  dead-letter %s  exception %s  statsd names %s%s",
		num((double)val(now, "ring_full"), a, sizeof(a)),
		num((double)val(now, "dlq_ring_full"), b, sizeof(b)),
		num((double)val(now, "exception_drops"), c, sizeof(c)),
		num((double)val(now, "statsd_names_dropped"), d, sizeof(d)), eol);
	fprintf(f, "drops:");
	for (i = 0; i < sizeof(drops) / sizeof(drops[0]); i++) {
		uint64_t v = val(now, drops[i].key);

		if (v == 0)
			continue;
		fprintf(f, "  %s %s (%s/s)", drops[i].what, num((double)v, a, sizeof(a)),
			num(rate(now, before, drops[i].key), b, sizeof(b)));
		shown++;
	}
	fprintf(f, "%s%s", shown ? "" : "  none", eol);
	fprintf(f, "%s", eol);

	fprintf(f, "%-7s %5s %13s %13s %10s %12s %12s %10s %10s%s", "worker", "lcore", "records/s",
		"datagrams/s", "series", "forwarded/s", "received/s", "hot/s", "ring_full", eol);
	for (i = 0; i < workers && i < 1024; i++) {
		char k[7][48];
		uint64_t lcore;
		int has_lcore;

		snprintf(k[0], sizeof(k[0]), "w%u.aggregated", i);
		snprintf(k[1], sizeof(k[1]), "w%u.datagrams", i);
		snprintf(k[2], sizeof(k[2]), "w%u.series", i);
		snprintf(k[3], sizeof(k[3]), "w%u.forwarded", i);
		snprintf(k[4], sizeof(k[4]), "w%u.received", i);
		snprintf(k[5], sizeof(k[5]), "w%u.hot_records", i);
		snprintf(k[6], sizeof(k[6]), "w%u.lcore", i);
		has_lcore = get(now, k[6], &lcore);
		snprintf(k[6], sizeof(k[6]), "w%u.ring_full", i);
		fprintf(f, "w%-6u %5s %13s %13s %10s %12s %12s %10s %10s%s", i,
			has_lcore ? num((double)lcore, l, sizeof(l)) : "-",
			num(rate(now, before, k[0]), a, sizeof(a)),
			src->socket_path ? num(rate(now, before, k[1]), b, sizeof(b)) : "-",
			num((double)val(now, k[2]), c, sizeof(c)),
			num(rate(now, before, k[3]), d, sizeof(d)),
			num(rate(now, before, k[4]), e, sizeof(e)),
			num(rate(now, before, k[5]), g, sizeof(g)),
			num((double)val(now, k[6]), h, sizeof(h)), eol);
	}
	fprintf(f, "%s", eol);
	if (src->socket_path == NULL) {
		fprintf(f, "ports: per port only from the telemetry socket (--file-prefix)%s", eol);
	} else {
		fprintf(f, "%-24s %13s %12s %13s %10s %10s %10s%s", "port", "rx packets/s", "rx Mbit/s",
			"rx packets", "missed/s", "nombuf/s", "errors/s", eol);
		for (i = 0; i < now->n; i++) {
			const char *k = now->key[i];
			const char *dot = strrchr(k, '.');
			char base[KEY_LEN], key[KEY_LEN * 2];

			if (strncmp(k, "port.", 5) != 0 || dot == NULL || strcmp(dot, ".ipackets") != 0)
				continue;
			snprintf(base, sizeof(base), "%.*s", (int)(dot - k), k);
			snprintf(key, sizeof(key), "%s.ibytes", base);
			fprintf(f, "%-24s %13s %12.1f %13s", base + 5,
				num(rate(now, before, k), a, sizeof(a)),
				rate(now, before, key) * 8 / 1e6, num((double)now->val[i], b, sizeof(b)));
			snprintf(key, sizeof(key), "%s.rx_missed", base);
			fprintf(f, " %10s", num(rate(now, before, key), c, sizeof(c)));
			snprintf(key, sizeof(key), "%s.rx_nombuf", base);
			fprintf(f, " %10s", num(rate(now, before, key), d, sizeof(d)));
			snprintf(key, sizeof(key), "%s.ierrors", base);
			fprintf(f, " %10s%s", num(rate(now, before, key), e, sizeof(e)), eol);
		}
	}
	if (tty)
		fputs("\033[J", f);
	fflush(f);
}

/* ---------------------------------------------------------------------------------------- */

static struct termios saved_tio;
static int raw_on;
static volatile sig_atomic_t stop;

static void
raw_off(void)
{
	if (raw_on)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved_tio);
	raw_on = 0;
	fputs("\033[?25h", stdout); /* the cursor back */
	fflush(stdout);
}

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: tally-top [--file-prefix P | --socket PATH | --redis HOST:PORT\n"
		"                 [--redis-user NAME] [--redis-password-file FILE]]\n"
		"                 [--interval S] [--once]\n"
		"  --file-prefix P   the tally's EAL --file-prefix (default rte): its telemetry "
		"socket\n"
		"  --socket PATH     the telemetry socket itself (dpdk_telemetry.v2)\n"
		"  --redis HOST:PORT read tally:self instead (no per-port counters)\n"
		"  --interval S      seconds between refreshes (default 1)\n"
		"  --once            print one view (rates over one interval) and exit\n"
		"keys: q quits\n");
}

/* DPDK's runtime directory of a file prefix, as EAL makes it. */
static void
socket_of(const char *prefix, char *path, size_t len)
{
	const char *base = getuid() == 0 ? "/var/run" : getenv("XDG_RUNTIME_DIR");

	snprintf(path, len, "%s/dpdk/%s/dpdk_telemetry.v2", base != NULL ? base : "/tmp", prefix);
}

int
main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{"file-prefix", required_argument, NULL, 'f'},
		{"socket", required_argument, NULL, 's'},
		{"redis", required_argument, NULL, 'r'},
		{"redis-user", required_argument, NULL, 'u'},
		{"redis-password-file", required_argument, NULL, 'p'},
		{"interval", required_argument, NULL, 'i'},
		{"once", no_argument, NULL, 'o'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	static struct snap snaps[2];
	struct source src = {0};
	static char sock[300], host[256];
	const char *prefix = "rte";
	double interval = 1.0;
	int once = 0, opt, cur = 0, tty;
	char err[600];

	while ((opt = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		switch (opt) {
		case 'f':
			prefix = optarg;
			break;
		case 's':
			src.socket_path = optarg;
			break;
		case 'r': {
			const char *colon = strrchr(optarg, ':');
			char *end;
			unsigned long port;

			if (colon == NULL || colon == optarg ||
			    (size_t)(colon - optarg) >= sizeof(host)) {
				fprintf(stderr, "tally-top: --redis: '%s' is not HOST:PORT\n", optarg);
				return 2;
			}
			port = strtoul(colon + 1, &end, 10);
			if (*end != '\0' || port == 0 || port > 65535) {
				fprintf(stderr, "tally-top: --redis: '%s' is not HOST:PORT\n", optarg);
				return 2;
			}
			snprintf(host, sizeof(host), "%.*s", (int)(colon - optarg), optarg);
			src.redis_host = host;
			src.redis_port = (uint16_t)port;
			break;
		}
		case 'u':
			src.user = optarg;
			break;
		case 'p':
			src.password_file = optarg;
			break;
		case 'i': {
			char *end;

			interval = strtod(optarg, &end);
			if (*end != '\0' || !(interval >= 0.1 && interval <= 3600)) {
				fprintf(stderr, "tally-top: --interval: '%s' is not seconds in [0.1, "
					"3600]\n", optarg);
				return 2;
			}
			break;
		}
		case 'o':
			once = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "tally-top: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (src.redis_host != NULL && src.socket_path != NULL) {
		fprintf(stderr, "tally-top: --redis and --socket: give one\n");
		return 2;
	}
	if (src.redis_host == NULL) {
		if (src.socket_path == NULL) {
			socket_of(prefix, sock, sizeof(sock));
			src.socket_path = sock;
		}
		snprintf(src.label, sizeof(src.label), "%s", src.socket_path);
	} else {
		snprintf(src.label, sizeof(src.label), "redis %s:%u tally:self", src.redis_host,
			 src.redis_port);
	}
	if (take(&src, &snaps[cur], err, sizeof(err)) != 0) {
		fprintf(stderr, "tally-top: %s\n", err);
		return 1;
	}
	tty = !once && isatty(STDOUT_FILENO);
	if (tty && isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved_tio) == 0) {
		struct termios tio = saved_tio;

		tio.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
		tio.c_cc[VMIN] = 0;
		tio.c_cc[VTIME] = 0;
		if (tcsetattr(STDIN_FILENO, TCSANOW, &tio) == 0)
			raw_on = 1;
		atexit(raw_off);
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	if (tty)
		fputs("\033[?25l\033[H\033[2J", stdout); /* no cursor, a clear screen */
	while (!stop) {
		struct pollfd pf = {.fd = STDIN_FILENO, .events = POLLIN};
		double until = snaps[cur].t + interval;
		int next = cur ^ 1;

		/* Wait out the interval; q (or the end of input) quits at once. */
		while (!stop) {
			double left = until - mono();
			char ch;

			if (left <= 0)
				break;
			if (!once && poll(&pf, 1, (int)(left * 1000) + 1) > 0) {
				ssize_t n = read(STDIN_FILENO, &ch, 1);

				if (n == 1 && (ch == 'q' || ch == 'Q'))
					stop = 1;
				if (n == 0 && !raw_on) /* no input: no keys either, go on */
					pf.fd = -1;
			} else if (once) {
				usleep((useconds_t)(left * 1e6));
			}
		}
		if (stop)
			break;
		if (take(&src, &snaps[next], err, sizeof(err)) != 0) {
			if (tty)
				raw_off();
			fprintf(stderr, "tally-top: %s\n", err);
			return 1;
		}
		render(stdout, &src, &snaps[next], &snaps[cur], tty);
		cur = next;
		if (once)
			break;
	}
	if (tty) {
		raw_off();
		fputs("\n", stdout);
	}
	return 0;
}
