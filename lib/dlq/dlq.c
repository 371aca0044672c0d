/* SPDX-License-Identifier: BSD-3-Clause */
/* The dead-letter writer thread: rings of malformed frames in, a pcapng capture out. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <rte_lcore.h>
#include <rte_mbuf.h>

#include "tally_dlq.h"
#include "tally_statsd.h"
#include "tally_wire.h"

#define DLQ_BURST 32
#define DLQ_IDLE_US 1000
#define DLQ_MAX_SEGS 256 /* of 2 KiB, more than TALLY_PCAPNG_SNAPLEN */

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * Write one frame whole, every segment of its chain: a jumbo frame takes a chain of mbufs.
 * A chain longer than DLQ_MAX_SEGS (a PMD with tiny buffers) keeps its first segments, with
 * the frame's whole length on record.
 */
static int
dlq_write(struct tally_dlq *d, const struct rte_mbuf *m, const char *comment)
{
	struct iovec iov[DLQ_MAX_SEGS];
	const struct rte_mbuf *s;
	unsigned int n = 0;

	for (s = m; s != NULL && n < DLQ_MAX_SEGS; s = s->next, n++) {
		iov[n].iov_base = rte_pktmbuf_mtod(s, void *);
		iov[n].iov_len = rte_pktmbuf_data_len(s);
	}
	return tally_pcapng_writev(&d->pcap, iov, n, rte_pktmbuf_pkt_len(m), now_ns(), comment);
}

/* Write one burst from every ring; returns the frames taken. */
static unsigned int
dlq_drain(struct tally_dlq *d)
{
	struct rte_mbuf *m[DLQ_BURST];
	unsigned int total = 0, n, i;
	uint32_t r;

	for (r = 0; r < d->nrings; r++) {
		n = rte_ring_sc_dequeue_burst(d->rings[r], (void **)m, DLQ_BURST, NULL);
		for (i = 0; i < n; i++) {
			uint32_t usr = m[i]->hash.usr;
			const char *reason;
			char comment[96];

			if (usr & TALLY_DLQ_STATSD) {
				/* a statsd datagram: its first refused line, the others counted */
				reason = tally_statsd_reason_name(usr & 0xff);
				snprintf(comment, sizeof(comment), "statsd: %s (line %u)",
					 reason ? reason : "unknown", (usr >> 8) & 0xffff);
			} else {
				reason = tally_malformed_name(usr);
				snprintf(comment, sizeof(comment), "malformed: %s",
					 reason ? reason : "unknown");
			}
			if (dlq_write(d, m[i], comment) == 0)
				d->written++;
			else
				d->errors++;
		}
		rte_pktmbuf_free_bulk(m, n);
		total += n;
	}
	return total;
}

static void *
dlq_main(void *arg)
{
	struct tally_dlq *d = arg;
	int dirty = 0;

	for (;;) {
		if (dlq_drain(d) > 0) {
			dirty = 1;
			continue;
		}
		/* Quiet: make what was written visible to readers of the file. */
		if (dirty) {
			tally_pcapng_flush(&d->pcap);
			dirty = 0;
		}
		if (d->stop)
			break;
		usleep(DLQ_IDLE_US);
	}
	while (dlq_drain(d) > 0)
		;
	tally_pcapng_flush(&d->pcap);
	return NULL;
}

int
tally_dlq_start(struct tally_dlq *d, const char *path, uint64_t max_bytes,
		struct rte_ring **rings, uint32_t nrings, char *err, size_t errlen)
{
	int rc;

	memset(d, 0, sizeof(*d));
	if (nrings > TALLY_DLQ_MAX_RINGS) {
		snprintf(err, errlen, "--dlq: more than %d workers", TALLY_DLQ_MAX_RINGS);
		return -1;
	}
	memcpy(d->rings, rings, nrings * sizeof(*rings));
	d->nrings = nrings;
	rc = tally_pcapng_open(&d->pcap, path, max_bytes);
	if (rc != 0) {
		snprintf(err, errlen, "--dlq: cannot open %s: %s", path,
			 rc == -ELOOP	 ? "it is a symbolic link (not followed)"
			 : rc == -EINVAL ? "not a regular file"
			 : rc == -ENOTSUP
				 ? "it holds something other than a pcapng capture (not appended to)"
				 : strerror(-rc));
		return -1;
	}
	rc = rte_ctrl_thread_create(&d->tid, "tally-dlq", NULL, dlq_main, d);
	if (rc != 0) {
		tally_pcapng_close(&d->pcap);
		snprintf(err, errlen, "--dlq: cannot start the writer thread: %s", strerror(-rc));
		return -1;
	}
	d->running = 1;
	return 0;
}

void
tally_dlq_stop(struct tally_dlq *d)
{
	if (!d->running)
		return;
	d->stop = 1;
	pthread_join(d->tid, NULL);
	d->running = 0;
	tally_pcapng_close(&d->pcap);
}
