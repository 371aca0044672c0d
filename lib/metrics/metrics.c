/* SPDX-License-Identifier: BSD-3-Clause */
/* The /metrics endpoint (tally_metrics.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tally_metrics.h"
#include "tally_prom.h"

#define POLL_MS 100
#define IDLE_EVICT_MS 1000 /* a connection silent this long gives its place to a new one */
#define RTE_MIN_(a, b) ((a) < (b) ? (a) : (b))

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int
tally_metrics_parse_listen(const char *text, struct sockaddr_storage *addr, char *err,
			   size_t errlen)
{
	char host[64];
	const char *colon, *h, *port_s;
	size_t hl;
	unsigned long port;
	char *end;

	memset(addr, 0, sizeof(*addr));
	if (text[0] == '[') {
		const char *close = strchr(text, ']');

		if (close == NULL || close[1] != ':')
			goto bad;
		h = text + 1;
		hl = (size_t)(close - h);
		port_s = close + 2;
	} else {
		colon = strrchr(text, ':');
		if (colon == NULL)
			goto bad;
		h = text;
		hl = (size_t)(colon - text);
		port_s = colon + 1;
		if (memchr(h, ':', hl) != NULL) /* an IPv6 address wants [ ] */
			goto bad;
	}
	if (hl >= sizeof(host) || *port_s == '\0')
		goto bad;
	errno = 0;
	port = strtoul(port_s, &end, 10);
	if (*end != '\0' || errno != 0 || port > 65535 || *port_s == '-' || *port_s == '+')
		goto bad;
	memcpy(host, h, hl);
	host[hl] = '\0';
	if (text[0] == '[') {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)addr;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
			goto bad;
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)addr;

		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		if (hl == 0)
			s4->sin_addr.s_addr = htonl(INADDR_ANY);
		else if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
			goto bad;
	}
	return 0;
bad:
	snprintf(err, errlen,
		 "'%s' is not ADDR:PORT (a numeric IPv4 address, [IPv6], or :PORT for every IPv4 "
		 "address; port 0-65535)",
		 text);
	return -1;
}

int
tally_metrics_open(struct tally_metrics *m, const struct tally_metrics_conf *conf, char *err,
		   size_t errlen)
{
	const socklen_t alen = conf->addr.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
								: sizeof(struct sockaddr_in);
	struct sockaddr_storage bound;
	socklen_t blen = sizeof(bound);
	char where[80];
	int one = 1, fd;
	unsigned int i;

	memset(m, 0, sizeof(*m));
	m->conf = *conf;
	if (m->conf.timeout_ms == 0)
		m->conf.timeout_ms = TALLY_METRICS_TIMEOUT_MS;
	m->lfd = -1;
	for (i = 0; i < TALLY_METRICS_CONNS; i++)
		m->conns[i].fd = -1;
	if (conf->addr.ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)&conf->addr)->sin6_addr, where,
			  sizeof(where));
	else
		inet_ntop(AF_INET, &((const struct sockaddr_in *)&conf->addr)->sin_addr, where,
			  sizeof(where));
	fd = socket(conf->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "--metrics-listen: socket: %s", strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&conf->addr, alen) != 0 || listen(fd, 16) != 0) {
		snprintf(err, errlen, "--metrics-listen: cannot listen on %s port %u: %s", where,
			 ntohs(((const struct sockaddr_in *)&conf->addr)->sin_port),
			 strerror(errno));
		close(fd);
		return -1;
	}
	if (getsockname(fd, (struct sockaddr *)&bound, &blen) == 0)
		m->port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
	m->lfd = fd;
	for (i = 0; i < TALLY_METRICS_CONNS; i++) {
		m->conns[i].body = malloc(conf->body_max);
		if (m->conns[i].body == NULL) {
			snprintf(err, errlen, "--metrics-listen: no memory for %zu-byte replies",
				 conf->body_max);
			tally_metrics_close(m);
			return -1;
		}
	}
	return 0;
}

void
tally_metrics_close(struct tally_metrics *m)
{
	unsigned int i;

	for (i = 0; i < TALLY_METRICS_CONNS; i++) {
		if (m->conns[i].fd >= 0)
			close(m->conns[i].fd);
		m->conns[i].fd = -1;
		free(m->conns[i].body);
		m->conns[i].body = NULL;
	}
	if (m->lfd >= 0)
		close(m->lfd);
	m->lfd = -1;
}

/* Start sending status (and body, unless head_only) on c. */
static void
reply(struct tally_metrics *m, struct tally_metrics_conn *c, int status, const char *ctype,
      size_t body_len, int head_only)
{
	static const struct {
		int status;
		const char *text;
	} reasons[] = {
		{200, "OK"},
		{400, "Bad Request"},
		{404, "Not Found"},
		{405, "Method Not Allowed"},
		{408, "Request Timeout"},
		{431, "Request Header Fields Too Large"},
		{500, "Internal Server Error"},
		{503, "Service Unavailable"},
	};
	const char *why = "Error";
	unsigned int i;
	int n;

	for (i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
		if (reasons[i].status == status)
			why = reasons[i].text;
	if (status >= 400) {
		/* The error's own small body, in the connection's body buffer. */
		n = snprintf(c->body, m->conf.body_max, "%d %s\n", status, why);
		body_len = n > 0 ? RTE_MIN_((size_t)n, m->conf.body_max - 1) : 0;
		ctype = "text/plain; charset=utf-8";
		m->errors++;
	}
	n = snprintf(c->head, sizeof(c->head),
		     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
		     "Connection: close\r\n\r\n",
		     status, why, ctype, body_len,
		     status == 405 ? "Allow: GET, HEAD\r\n" : "");
	c->head_len = n > 0 && (size_t)n < sizeof(c->head) ? (size_t)n : 0;
	c->body_len = head_only ? 0 : body_len;
	c->out_len = c->head_len + c->body_len;
	c->out_off = 0;
	c->writing = 1;
	c->deadline_ms = now_ms() + m->conf.timeout_ms;
}

/* Does the header block (after the request line) ask for OpenMetrics? */
static int
wants_openmetrics(const char *headers)
{
	const char *p = headers;

	while ((p = strchr(p, '\n')) != NULL) {
		p++;
		if (strncasecmp(p, "accept:", 7) == 0) {
			const char *eol = strchr(p, '\n');
			const char *om = strstr(p, "application/openmetrics-text");

			return om != NULL && (eol == NULL || om < eol);
		}
	}
	return 0;
}

/* A whole request is in c->req: answer it. */
static void
serve(struct tally_metrics *m, struct tally_metrics_conn *c)
{
	char method[16], target[256], version[16];
	int head_only;
	size_t len;

	c->req[c->req_len] = '\0';
	if (sscanf(c->req, "%15s %255s %15s", method, target, version) != 3 ||
	    strncmp(version, "HTTP/1.", 7) != 0 || target[0] != '/') {
		reply(m, c, 400, NULL, 0, 0);
		return;
	}
	head_only = strcmp(method, "HEAD") == 0;
	if (!head_only && strcmp(method, "GET") != 0) {
		reply(m, c, 405, NULL, 0, 0);
		return;
	}
	target[strcspn(target, "?")] = '\0';
	if (strcmp(target, "/metrics") == 0) {
		const int om = wants_openmetrics(c->req);

		len = m->conf.render(m->conf.ctx, c->body, m->conf.body_max, om);
		if (len == 0) {
			reply(m, c, 500, NULL, 0, head_only);
			return;
		}
		m->scrapes++;
		reply(m, c, 200, om ? TALLY_OM_CTYPE : TALLY_PROM_CTYPE, len, head_only);
		return;
	}
	if (strcmp(target, "/") == 0) {
		int n = snprintf(c->body, m->conf.body_max,
				 "tally: the metrics are at /metrics (Prometheus text format, "
				 "or OpenMetrics when asked for)\n");

		reply(m, c, 200, "text/plain; charset=utf-8", n > 0 ? (size_t)n : 0, head_only);
		return;
	}
	reply(m, c, 404, NULL, 0, head_only);
}

static void
drop(struct tally_metrics_conn *c)
{
	close(c->fd);
	c->fd = -1;
	c->writing = 0;
	c->req_len = 0;
}

/* Read what arrived; serve once the header block is whole. */
static void
on_read(struct tally_metrics *m, struct tally_metrics_conn *c)
{
	ssize_t n = recv(c->fd, c->req + c->req_len, TALLY_METRICS_REQ_MAX - c->req_len, 0);

	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		drop(c); /* the client went away before asking */
		return;
	}
	if (n < 0)
		return;
	c->req_len += (size_t)n;
	c->req[c->req_len] = '\0';
	if (strstr(c->req, "\r\n\r\n") != NULL || strstr(c->req, "\n\n") != NULL)
		serve(m, c);
	else if (c->req_len >= TALLY_METRICS_REQ_MAX)
		reply(m, c, 431, NULL, 0, 0);
}

static void
on_write(struct tally_metrics_conn *c)
{
	while (c->out_off < c->out_len) {
		const char *p;
		size_t left;
		ssize_t n;

		if (c->out_off < c->head_len) {
			p = c->head + c->out_off;
			left = c->head_len - c->out_off;
		} else {
			p = c->body + (c->out_off - c->head_len);
			left = c->out_len - c->out_off;
		}
		n = send(c->fd, p, left, MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			drop(c);
			return;
		}
		c->out_off += (size_t)n;
	}
	/* All sent: close our side (the client reads to the end). */
	shutdown(c->fd, SHUT_WR);
	drop(c);
}

/* A connection over the limit: a short 503, as far as the socket takes it at once. */
static void
refuse(struct tally_metrics *m, int fd)
{
	static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; "
				   "charset=utf-8\r\nContent-Length: 24\r\nRetry-After: 1\r\n"
				   "Connection: close\r\n\r\n503 Service Unavailable\n";

	m->refused++;
	if (send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
		/* nothing more to do: it is closed either way */
	}
	close(fd);
}

/*
 * Every place taken: the connection that has been silent longest (nothing of a request for
 * IDLE_EVICT_MS) is answered 408 and gives its place, so idle connections cannot keep every
 * scrape out; UINT32_MAX when none has been silent that long.
 */
static unsigned int
evict_idle(struct tally_metrics *m, uint64_t now)
{
	unsigned int i, oldest = UINT32_MAX;
	uint64_t since = UINT64_MAX;

	for (i = 0; i < TALLY_METRICS_CONNS; i++) {
		struct tally_metrics_conn *c = &m->conns[i];
		uint64_t opened = c->deadline_ms - m->conf.timeout_ms;

		if (c->writing || c->req_len > 0 || now < opened + IDLE_EVICT_MS)
			continue;
		if (opened < since) {
			since = opened;
			oldest = i;
		}
	}
	if (oldest != UINT32_MAX) {
		struct tally_metrics_conn *c = &m->conns[oldest];

		reply(m, c, 408, NULL, 0, 0);
		on_write(c);
		if (c->fd >= 0)
			drop(c);
	}
	return oldest;
}

/* Take the connections waiting; -1 when accept() failed for want of resources (fds). */
static int
accept_all(struct tally_metrics *m)
{
	for (;;) {
		int fd = accept4(m->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		unsigned int i;

		if (fd < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
					       errno == ECONNABORTED
				       ? 0
				       : -1;
		for (i = 0; i < TALLY_METRICS_CONNS && m->conns[i].fd >= 0; i++)
			;
		if (i == TALLY_METRICS_CONNS)
			i = evict_idle(m, now_ms());
		if (i == UINT32_MAX) {
			refuse(m, fd);
			continue;
		}
		m->conns[i].fd = fd;
		m->conns[i].writing = 0;
		m->conns[i].req_len = 0;
		m->conns[i].deadline_ms = now_ms() + m->conf.timeout_ms;
	}
}

void *
tally_metrics_main(void *arg)
{
	struct tally_metrics *m = arg;

	uint64_t accept_after = 0; /* out of fds: the listener rests until then */

	while (!m->stop) {
		struct pollfd pf[TALLY_METRICS_CONNS + 1];
		unsigned int idx[TALLY_METRICS_CONNS + 1];
		unsigned int n = 0, i;
		uint64_t now = now_ms();
		int rc;

		pf[n].fd = now >= accept_after ? m->lfd : -1;
		pf[n].events = POLLIN;
		pf[n].revents = 0;
		idx[n++] = 0;
		for (i = 0; i < TALLY_METRICS_CONNS; i++) {
			if (m->conns[i].fd < 0)
				continue;
			pf[n].fd = m->conns[i].fd;
			pf[n].events = m->conns[i].writing ? POLLOUT : POLLIN;
			idx[n++] = i;
		}
		rc = poll(pf, n, POLL_MS);
		if (rc < 0) {
			/* EINTR, or no memory for a moment: never a reason to stop serving */
			if (errno != EINTR)
				usleep(POLL_MS * 1000);
			continue;
		}
		for (i = 1; i < n; i++) {
			struct tally_metrics_conn *c = &m->conns[idx[i]];

			if (pf[i].revents == 0 || c->fd != pf[i].fd)
				continue;
			if (c->writing)
				on_write(c);
			else
				on_read(m, c);
			/* A reply is ready: send at once what the socket takes. */
			if (c->fd >= 0 && c->writing)
				on_write(c);
		}
		/* EMFILE and the like: the listener stays readable; rest it, do not spin */
		if ((pf[0].revents & POLLIN) && accept_all(m) != 0)
			accept_after = now_ms() + POLL_MS;
		/* Too slow: a request not whole in time is answered 408; a reply not taken, cut. */
		now = now_ms();
		for (i = 0; i < TALLY_METRICS_CONNS; i++) {
			struct tally_metrics_conn *c = &m->conns[i];

			if (c->fd < 0 || now < c->deadline_ms)
				continue;
			if (c->writing) {
				drop(c);
				continue;
			}
			reply(m, c, 408, NULL, 0, 0);
			on_write(c);
			if (c->fd >= 0) /* whatever the socket did not take: the client is gone */
				drop(c);
		}
	}
	return NULL;
}
