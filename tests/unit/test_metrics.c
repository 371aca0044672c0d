/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Unit tests of the counter lists, the Prometheus / OpenMetrics rendering (lib/stats/prom.c)
 * and the /metrics HTTP endpoint (lib/metrics) on a loopback socket.
 */
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test.h"
#include "tally_metrics.h"
#include "tally_prom.h"
#include "tally_stats.h"

#define TEST_PORTS 32 /* TALLY_MAX_PORTS (lib/worker) */

/* Every name is unique, and kinds, units and help are filled in. */
static void
test_lists(void **state)
{
	const struct tally_stat_info *lists[] = {tally_worker_counter_info,
						 tally_control_counter_info, tally_own_field_info};
	const unsigned int sizes[] = {TALLY_WC_MAX, TALLY_CC_MAX, TALLY_OWN_MAX};
	const char *seen[TALLY_WC_MAX + TALLY_CC_MAX + TALLY_OWN_MAX];
	unsigned int n = 0, l, i, k;

	(void)state;
	for (l = 0; l < 3; l++)
		for (i = 0; i < sizes[l]; i++) {
			const struct tally_stat_info *c = &lists[l][i];

			assert_non_null(c->name);
			assert_true(c->unit[0] != '\0');
			assert_true(strlen(c->help) > 8);
			assert_true(c->kind == TALLY_STAT_COUNTER || c->kind == TALLY_STAT_GAUGE);
			for (k = 0; k < n; k++)
				assert_string_not_equal(seen[k], c->name);
			seen[n++] = c->name;
		}
	for (i = 0; i < TALLY_MALFORMED_MAX; i++)
		assert_non_null(tally_malformed_help(i));
	for (i = 0; i < TALLY_STATSD_REASON_MAX; i++)
		assert_non_null(tally_statsd_reason_help(i));
	assert_null(tally_malformed_help(TALLY_MALFORMED_MAX));
	assert_null(tally_statsd_reason_help(TALLY_STATSD_REASON_MAX));
}

static void
test_lag_buckets(void **state)
{
	(void)state;
	assert_int_equal(tally_lag_bucket(0), 0);
	assert_int_equal(tally_lag_bucket(10), 0);
	assert_int_equal(tally_lag_bucket(11), 1);
	assert_int_equal(tally_lag_bucket(1000), 6);
	assert_int_equal(tally_lag_bucket(60000), TALLY_LAG_BUCKETS - 2);
	assert_int_equal(tally_lag_bucket(60001), TALLY_LAG_BUCKETS - 1);
	assert_int_equal(tally_lag_bucket(UINT64_MAX), TALLY_LAG_BUCKETS - 1);
}

struct fixture {
	struct tally_worker_stats w[TALLY_STATS_MAX_WORKERS];
	struct tally_stats_totals t;
	struct tally_port_sample ports[TEST_PORTS];
};

static struct fixture *
fixture(uint32_t workers, uint64_t fill)
{
	struct fixture *f = NULL;
	uint32_t i;
	unsigned int k;

	/* the worker stats are cache-line aligned: not test_calloc's memory */
	assert_int_equal(posix_memalign((void **)&f, 64, sizeof(*f)), 0);
	memset(f, 0, sizeof(*f));
	f->t.workers = workers;
	for (i = 0; i < workers; i++) {
		for (k = 0; k < TALLY_WC_MAX; k++)
			f->w[i].c[k] = fill ? fill : 1000u * i + k;
		for (k = 0; k < TALLY_MALFORMED_MAX; k++)
			f->w[i].malformed[k] = fill ? fill : k;
		for (k = 0; k < TALLY_STATSD_REASON_MAX; k++)
			f->w[i].statsd[k] = fill;
		f->t.per_worker[i] = &f->w[i];
	}
	for (k = 0; k < TALLY_CC_MAX; k++)
		f->t.ctl.c[k] = fill;
	for (k = 0; k < TALLY_OWN_MAX; k++)
		f->t.own[k] = fill;
	for (k = 0; k < TALLY_LAG_BUCKETS; k++)
		f->t.lag_buckets[k] = fill ? fill / TALLY_LAG_BUCKETS : k;
	return f;
}

static void
test_render(void **state)
{
	struct fixture *f = fixture(2, 0);
	size_t cap = tally_prom_size(2, 1), len;
	char *buf = test_malloc(cap);

	(void)state;
	f->t.ctl.c[TALLY_CC_flush_lag_ms] = 1234;
	f->t.own[TALLY_OWN_uptime_s] = 77;
	f->t.lag_sum_ms = 2500;
	f->ports[0] = (struct tally_port_sample){.name = "net_pcap0", .ok = 1};
	f->ports[0].v[TALLY_PC_ipackets] = 99;
	len = tally_prom_render(buf, cap, &f->t, f->ports, 1, 0);
	assert_true(len > 0 && len < cap);
	assert_int_equal(strlen(buf), len);
	assert_non_null(strstr(buf, "# HELP tally_records_total records in valid datagrams\n"
				    "# TYPE tally_records_total counter\n"
				    "tally_records_total{worker=\"0\"} 2\n"
				    "tally_records_total{worker=\"1\"} 1002\n"));
	assert_non_null(strstr(buf, "# TYPE tally_series gauge\n"));
	assert_non_null(strstr(buf, "tally_malformed_reason_total{worker=\"1\",reason=\"magic\"} 1\n"));
	assert_non_null(strstr(buf, "# TYPE tally_flush_lag_seconds gauge\n"
				    "tally_flush_lag_seconds 1.234\n"));
	assert_non_null(strstr(buf, "tally_uptime_seconds 77\n"));
	assert_non_null(strstr(buf, "tally_port_ipackets_total{port=\"net_pcap0\"} 99\n"));
	/* Buckets 0..12 hold 0..12 windows: cumulative counts, canonical le in seconds. */
	assert_non_null(strstr(buf, "tally_window_write_lag_seconds_bucket{le=\"0.01\"} 0\n"
				    "tally_window_write_lag_seconds_bucket{le=\"0.025\"} 1\n"));
	assert_non_null(strstr(buf, "tally_window_write_lag_seconds_bucket{le=\"1.0\"} 21\n"));
	assert_non_null(strstr(buf, "tally_window_write_lag_seconds_bucket{le=\"+Inf\"} 78\n"
				    "tally_window_write_lag_seconds_sum 2.500\n"
				    "tally_window_write_lag_seconds_count 78\n"));
	assert_null(strstr(buf, "# EOF"));
	assert_null(strstr(buf, "# UNIT"));
	/* OpenMetrics: counter families without _total, units, the end marker. */
	len = tally_prom_render(buf, cap, &f->t, f->ports, 1, 1);
	assert_true(len > 0);
	assert_non_null(strstr(buf, "# HELP tally_records records in valid datagrams\n"
				    "# TYPE tally_records counter\n"
				    "tally_records_total{worker=\"0\"} 2\n"));
	assert_non_null(strstr(buf, "# UNIT tally_flush_lag_seconds seconds\n"));
	assert_non_null(strstr(buf, "# UNIT tally_spool_bytes bytes\n"));
	assert_true(len > 6 && strcmp(buf + len - 6, "# EOF\n") == 0);
	/* Too small: nothing half written is returned. */
	assert_int_equal(tally_prom_render(buf, 100, &f->t, f->ports, 1, 0), 0);
	assert_int_equal(tally_prom_render(buf, 0, &f->t, f->ports, 1, 0), 0);
	test_free(buf);
	free(f);
}

/* The size bound holds at the most workers and ports, the largest values, long port names. */
static void
test_render_bound(void **state)
{
	struct fixture *f = fixture(TALLY_STATS_MAX_WORKERS, UINT64_MAX);
	size_t cap = tally_prom_size(TALLY_STATS_MAX_WORKERS, TEST_PORTS), len;
	char *buf = test_malloc(cap);
	char name[64];
	unsigned int p, k;

	(void)state;
	memset(name, '"', sizeof(name) - 1); /* escaped: twice as long */
	name[sizeof(name) - 1] = '\0';
	for (p = 0; p < TEST_PORTS; p++) {
		f->ports[p] = (struct tally_port_sample){.name = name, .ok = 1};
		for (k = 0; k < TALLY_PC_MAX; k++)
			f->ports[p].v[k] = UINT64_MAX;
	}
	f->t.lag_sum_ms = UINT64_MAX;
	len = tally_prom_render(buf, cap, &f->t, f->ports, TEST_PORTS, 1);
	assert_true(len > 0 && len < cap);
	assert_non_null(strstr(buf, "{port=\"\\\"\\\"\\\""));
	test_free(buf);
	free(f);
}

static void
test_parse_listen(void **state)
{
	struct sockaddr_storage sa;
	char err[200];

	(void)state;
	assert_int_equal(tally_metrics_parse_listen("127.0.0.1:9469", &sa, err, sizeof(err)), 0);
	assert_int_equal(sa.ss_family, AF_INET);
	assert_int_equal(ntohs(((struct sockaddr_in *)&sa)->sin_port), 9469);
	assert_int_equal(tally_metrics_parse_listen(":80", &sa, err, sizeof(err)), 0);
	assert_int_equal(((struct sockaddr_in *)&sa)->sin_addr.s_addr, htonl(INADDR_ANY));
	assert_int_equal(tally_metrics_parse_listen("[::1]:9469", &sa, err, sizeof(err)), 0);
	assert_int_equal(sa.ss_family, AF_INET6);
	assert_int_equal(tally_metrics_parse_listen("0.0.0.0:0", &sa, err, sizeof(err)), 0);
	static const char *const bad[] = {"",	       "127.0.0.1",    "127.0.0.1:",
					  ":",	       "1.2.3:80",     "localhost:80",
					  "::1:80",    "[::1]80",      "[::1",
					  "1.2.3.4:-1", "1.2.3.4:65536", "1.2.3.4:+80",
					  "1.2.3.4:8 0", "[1.2.3.4]:80"};
	for (unsigned int i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(tally_metrics_parse_listen(bad[i], &sa, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "is not ADDR:PORT"));
	}
}

/* A render callback: a fixed text, or failure. */
static size_t
fake_render(void *ctx, char *buf, size_t cap, int om)
{
	const char *text = om ? "om_total 1\n# EOF\n" : "x_total 1\n";

	if (ctx != NULL)
		return 0;
	snprintf(buf, cap, "%s", text);
	return strlen(text);
}

static int
connect_to(uint16_t port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	return fd;
}

/* Send req (len bytes) and read the reply until the server closes. */
static void
exchange(uint16_t port, const char *req, size_t len, char *out, size_t cap)
{
	int fd = connect_to(port);
	size_t n = 0;
	ssize_t r;

	if (len > 0)
		assert_int_equal(send(fd, req, len, MSG_NOSIGNAL), (ssize_t)len);
	while (n < cap - 1 && (r = recv(fd, out + n, cap - 1 - n, 0)) > 0)
		n += (size_t)r;
	out[n] = '\0';
	close(fd);
}

static void
test_server(void **state)
{
	struct tally_metrics_conf conf = {.body_max = 4096, .timeout_ms = 300,
					  .render = fake_render};
	struct tally_metrics *m = test_calloc(1, sizeof(*m));
	char out[8192], big[6000], err[200];
	int idle[TALLY_METRICS_CONNS];
	pthread_t tid;
	unsigned int i;

	(void)state;
	assert_int_equal(tally_metrics_parse_listen("127.0.0.1:0", &conf.addr, err, sizeof(err)),
			 0);
	assert_int_equal(tally_metrics_open(m, &conf, err, sizeof(err)), 0);
	assert_true(m->port != 0);
	assert_int_equal(pthread_create(&tid, NULL, tally_metrics_main, m), 0);

	exchange(m->port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 34, out, sizeof(out));
	assert_non_null(strstr(out, "HTTP/1.1 200 OK\r\n"));
	assert_non_null(strstr(out, "Content-Type: " TALLY_PROM_CTYPE "\r\n"));
	assert_non_null(strstr(out, "Content-Length: 10\r\n"));
	assert_non_null(strstr(out, "\r\n\r\nx_total 1\n"));
	/* Accept's value names OpenMetrics; a query string is ignored; bare \n line ends. */
	exchange(m->port, "GET /metrics?x=1 HTTP/1.0\nAccept: application/openmetrics-text\n\n",
		 65, out, sizeof(out));
	assert_non_null(strstr(out, "Content-Type: " TALLY_OM_CTYPE "\r\n"));
	assert_non_null(strstr(out, "om_total 1\n# EOF\n"));
	exchange(m->port, "HEAD /metrics HTTP/1.1\r\n\r\n", 26, out, sizeof(out));
	assert_non_null(strstr(out, "Content-Length: 10\r\n"));
	assert_null(strstr(out, "x_total"));
	exchange(m->port, "GET / HTTP/1.1\r\n\r\n", 18, out, sizeof(out));
	assert_non_null(strstr(out, "200 OK"));
	assert_int_equal(m->scrapes, 3);

	exchange(m->port, "GET /other HTTP/1.1\r\n\r\n", 23, out, sizeof(out));
	assert_non_null(strstr(out, "HTTP/1.1 404 Not Found\r\n"));
	exchange(m->port, "DELETE /metrics HTTP/1.1\r\n\r\n", 28, out, sizeof(out));
	assert_non_null(strstr(out, "HTTP/1.1 405 Method Not Allowed\r\n"));
	assert_non_null(strstr(out, "Allow: GET, HEAD\r\n"));
	exchange(m->port, "GET metrics\r\n\r\n", 15, out, sizeof(out));
	assert_non_null(strstr(out, "HTTP/1.1 400 Bad Request\r\n"));
	memset(big, 'a', sizeof(big));
	memcpy(big, "GET /metrics HTTP/1.1\r\nX: ", 26);
	exchange(m->port, big, sizeof(big), out, sizeof(out));
	assert_non_null(strstr(out, "HTTP/1.1 431 "));
	/* A request that never ends: 408 after the timeout. */
	exchange(m->port, "GET /metrics HTTP/1.1\r\n", 23, out, sizeof(out));
	assert_non_null(strstr(out, "HTTP/1.1 408 Request Timeout\r\n"));
	/* A NUL byte in the request: it never ends either. */
	exchange(m->port, "GET /\0 HTTP/1.1\r\n\r\n", 19, out, sizeof(out));
	assert_non_null(strstr(out, "HTTP/1.1 408 "));
	assert_int_equal(m->errors, 6);

	/* Every slot taken: the next connection gets 503. */
	for (i = 0; i < TALLY_METRICS_CONNS; i++)
		idle[i] = connect_to(m->port);
	usleep(200 * 1000);
	exchange(m->port, "", 0, out, sizeof(out));
	assert_non_null(strstr(out, "HTTP/1.1 503 Service Unavailable\r\n"));
	assert_int_equal(m->refused, 1);
	for (i = 0; i < TALLY_METRICS_CONNS; i++)
		close(idle[i]);
	/* Slots free again once the clients went away. */
	usleep(200 * 1000);
	exchange(m->port, "GET /metrics HTTP/1.1\r\n\r\n", 25, out, sizeof(out));
	assert_non_null(strstr(out, "200 OK"));

	/* A render that fails: 500. */
	m->conf.ctx = m;
	exchange(m->port, "GET /metrics HTTP/1.1\r\n\r\n", 25, out, sizeof(out));
	assert_non_null(strstr(out, "HTTP/1.1 500 "));

	m->stop = 1;
	pthread_join(tid, NULL);
	tally_metrics_close(m);
	test_free(m);
}

/* Connections silent for a second give their places to new ones (answered 408). */
static void
test_idle_evicted(void **state)
{
	struct tally_metrics_conf conf = {.body_max = 4096, .timeout_ms = 4000,
					  .render = fake_render};
	struct tally_metrics *m = test_calloc(1, sizeof(*m));
	int idle[TALLY_METRICS_CONNS];
	char out[4096], err[200];
	pthread_t tid;
	unsigned int i, answered = 0;

	(void)state;
	assert_int_equal(tally_metrics_parse_listen("127.0.0.1:0", &conf.addr, err, sizeof(err)),
			 0);
	assert_int_equal(tally_metrics_open(m, &conf, err, sizeof(err)), 0);
	assert_int_equal(pthread_create(&tid, NULL, tally_metrics_main, m), 0);
	for (i = 0; i < TALLY_METRICS_CONNS; i++)
		idle[i] = connect_to(m->port);
	usleep(1200 * 1000);
	exchange(m->port, "GET /metrics HTTP/1.1\r\n\r\n", 25, out, sizeof(out));
	assert_non_null(strstr(out, "200 OK"));
	assert_int_equal(m->refused, 0);
	assert_int_equal(m->errors, 1);
	for (i = 0; i < TALLY_METRICS_CONNS; i++) {
		struct pollfd pf = {.fd = idle[i], .events = POLLIN};

		if (poll(&pf, 1, 0) == 1) {
			ssize_t r = recv(idle[i], out, sizeof(out) - 1, 0);

			assert_true(r > 0);
			out[r] = '\0';
			assert_non_null(strstr(out, "HTTP/1.1 408 "));
			answered++;
		}
		close(idle[i]);
	}
	assert_int_equal(answered, 1);
	m->stop = 1;
	pthread_join(tid, NULL);
	tally_metrics_close(m);
	test_free(m);
}

/* A port in use: a one-line reason. */
static void
test_port_in_use(void **state)
{
	struct tally_metrics_conf conf = {.body_max = 64, .render = fake_render};
	struct tally_metrics *a = test_calloc(1, sizeof(*a)), *b = test_calloc(1, sizeof(*b));
	char err[200];

	(void)state;
	assert_int_equal(tally_metrics_parse_listen("127.0.0.1:0", &conf.addr, err, sizeof(err)),
			 0);
	assert_int_equal(tally_metrics_open(a, &conf, err, sizeof(err)), 0);
	((struct sockaddr_in *)&conf.addr)->sin_port = htons(a->port);
	assert_int_equal(tally_metrics_open(b, &conf, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "--metrics-listen: cannot listen on 127.0.0.1 port"));
	assert_non_null(strstr(err, "Address already in use"));
	assert_null(strchr(err, '\n'));
	tally_metrics_close(a);
	test_free(a);
	test_free(b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lists),	      cmocka_unit_test(test_lag_buckets),
		cmocka_unit_test(test_render),	      cmocka_unit_test(test_render_bound),
		cmocka_unit_test(test_parse_listen), cmocka_unit_test(test_server),
		cmocka_unit_test(test_port_in_use), cmocka_unit_test(test_idle_evicted),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
