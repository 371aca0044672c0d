/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The /metrics endpoint: a small HTTP/1.1 server on its own thread, off the poll-mode path.
 * Bounded in every way: at most TALLY_METRICS_CONNS connections at once (one more takes the
 * place of one that has sent nothing for a second, answered 408; else it is answered 503 and
 * closed), requests of at most TALLY_METRICS_REQ_MAX bytes (431), a request or reply that
 * takes longer than the timeout is answered 408 or closed; GET and HEAD of /metrics
 * (200), / (200, a pointer), any other path 404, any other method 405, anything unparsable
 * 400. Every reply closes its connection. Pure POSIX: no EAL (the app starts the thread).
 */
#ifndef TALLY_METRICS_H
#define TALLY_METRICS_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#define TALLY_METRICS_CONNS 4
#define TALLY_METRICS_REQ_MAX 4096
#define TALLY_METRICS_TIMEOUT_MS 5000

/*
 * Render the exposition into buf (cap bytes); om: OpenMetrics was asked for (Accept). Returns
 * the length, 0 on failure (answered 500). Called on the metrics thread.
 */
typedef size_t (*tally_metrics_render_fn)(void *ctx, char *buf, size_t cap, int om);

struct tally_metrics_conf {
	struct sockaddr_storage addr; /* where to listen */
	size_t body_max;              /* the largest exposition render may write */
	uint32_t timeout_ms;          /* 0: TALLY_METRICS_TIMEOUT_MS */
	tally_metrics_render_fn render;
	void *ctx;
};

struct tally_metrics_conn {
	int fd;                 /* -1: free */
	int writing;            /* the reply is being sent */
	uint64_t deadline_ms;
	size_t req_len;
	size_t out_len, out_off;
	char req[TALLY_METRICS_REQ_MAX + 1];
	char head[512];         /* status line and headers */
	size_t head_len;
	char *body;             /* body_max bytes, this connection's */
	size_t body_len;
};

struct tally_metrics {
	struct tally_metrics_conf conf;
	int lfd;
	uint16_t port;          /* bound (the one asked for, or the kernel's for port 0) */
	volatile int stop;
	struct tally_metrics_conn conns[TALLY_METRICS_CONNS];
	/* Counters (this thread is their only writer). */
	uint64_t scrapes;
	uint64_t errors;
	uint64_t refused;
};

/*
 * Parse "ADDR:PORT" ("127.0.0.1:9100", "[::1]:9100", ":9100" for every IPv4 address) into
 * addr. 0, or -1 with a reason in err.
 */
int tally_metrics_parse_listen(const char *text, struct sockaddr_storage *addr, char *err,
			       size_t errlen);

/* Bind and listen, allocate the buffers. 0, or -1 with a one-line reason in err. */
int tally_metrics_open(struct tally_metrics *m, const struct tally_metrics_conf *conf, char *err,
		       size_t errlen);

/* The thread: serves until m->stop is set (it looks every 100 ms). Returns NULL. */
void *tally_metrics_main(void *m);

/* Close the sockets and free the buffers (after the thread has stopped). */
void tally_metrics_close(struct tally_metrics *m);

#endif /* TALLY_METRICS_H */
