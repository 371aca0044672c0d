/* SPDX-License-Identifier: BSD-3-Clause */
/* A minimal pcapng writer: one Ethernet interface, packets with a comment, size-capped files. */
#ifndef TALLY_PCAPNG_H
#define TALLY_PCAPNG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/uio.h>

struct tally_pcapng {
	FILE *f;
	char path[1024];
	uint64_t bytes;      /* written to the current file */
	uint64_t max_bytes;  /* rotate when a packet would take the file past this; 0 = never */
	uint64_t packets;    /* written, all files */
	uint64_t rotations;
};

/*
 * Open path (created with mode 0640 when new) and start a section of its own: the section
 * header and interface description. An earlier capture at path is appended to, never
 * truncated. Returns 0 or -errno: -ELOOP for a symlink at path (never followed), -EINVAL
 * for anything but a regular file (a FIFO, a directory), -ENOTSUP for a file that holds
 * something other than pcapng. With max_bytes, a full file is renamed to path.1 (replacing
 * an older one) and a new one started, so at most about twice max_bytes are kept.
 */
int tally_pcapng_open(struct tally_pcapng *p, const char *path, uint64_t max_bytes);

/*
 * The interface's snapshot length: frames are kept whole up to this, so a jumbo frame (an IP
 * packet of 65,535 bytes plus its link header) fits; it is what tcpdump and Wireshark take.
 */
#define TALLY_PCAPNG_SNAPLEN 262144

/* Append one Ethernet frame with its capture time (ns) and a comment. 0 or -errno. */
int tally_pcapng_write(struct tally_pcapng *p, const uint8_t *frame, uint32_t len,
		       uint64_t time_ns, const char *comment);

/*
 * Append one Ethernet frame held in iovcnt pieces (the segments of an mbuf chain), in order;
 * len is its length on the wire. What the pieces hold up to len and TALLY_PCAPNG_SNAPLEN is
 * written. 0 or -errno.
 */
int tally_pcapng_writev(struct tally_pcapng *p, const struct iovec *iov, unsigned int iovcnt,
			uint32_t len, uint64_t time_ns, const char *comment);

/* Flush buffered blocks to the file. */
int tally_pcapng_flush(struct tally_pcapng *p);

void tally_pcapng_close(struct tally_pcapng *p);

#endif /* TALLY_PCAPNG_H */
