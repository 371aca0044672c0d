/* SPDX-License-Identifier: BSD-3-Clause */
/* Exception path replies: ARP, ICMP echo, IPv6 neighbor advertisement and ICMPv6 echo. */
#ifndef TALLY_REPLY_H
#define TALLY_REPLY_H

#include <stdint.h>

#include "tally_wire.h"

/*
 * Why a frame gets no reply; tally_reply_build() returns minus one of these. Each refusal is
 * of a request a host stack would not answer either. Once a request is known to be for our
 * address, its checksums are checked first (a damaged frame counts as damaged, whatever else
 * it seems to be; an IPv4 fragment before its ICMP checksum, which it does not hold whole),
 * then the rest; a frame counts once, under the first check it fails.
 */
enum tally_reply_refusal {
	TALLY_REPLY_IGNORED = 1,   /* not a request for our address, or one we cannot answer */
	TALLY_REPLY_BAD_CHECKSUM,  /* IPv4 header, ICMP or ICMPv6 checksum */
	TALLY_REPLY_BAD_SOURCE,	   /* broadcast/multicast source MAC; multicast, broadcast,
				    * loopback or unspecified source address */
	TALLY_REPLY_FRAGMENT,	   /* an IPv4 fragment: a host answers only the whole datagram */
	TALLY_REPLY_BAD_HOP_LIMIT, /* neighbor solicitation with a hop limit other than 255 */
	TALLY_REPLY_BAD_NS,	   /* neighbor solicitation failing RFC 4861 7.1.1 otherwise */
	TALLY_REPLY_REFUSAL_MAX
};

/*
 * Turn a request frame (classified ARP, ICMP or ICMP6 by tally_wire_parse()) into its reply,
 * in place, from our MAC. Returns the reply length (never more than len), or
 * -enum tally_reply_refusal. Pure: no EAL, no allocation.
 */
int tally_reply_build(uint8_t *frame, uint32_t len, int frame_type, const struct tally_frame *fr,
		      const uint8_t mac[6], const struct tally_wire_filter *f);

/* Internet checksum of buf folded into sum (host order result). */
uint16_t tally_inet_csum(const void *buf, uint32_t len, uint32_t sum);

/*
 * Token bucket of the exception path: `rate` replies a second, and at most one second's
 * worth at once. Time is a cycle counter of `hz` cycles a second, passed in (the TSC in
 * tally, made-up values in tests); credit is kept in units of 1/hz tokens, so refilling is
 * exact and needs no division. One user, no lock: the exception thread owns it.
 */
struct tally_reply_bucket {
	uint64_t credit; /* tokens x hz */
	uint64_t cap;	 /* burst (= rate) x hz */
	uint64_t rate;	 /* tokens a second; 0: never a token */
	uint64_t hz;
	uint64_t last; /* cycle count of the last take */
};

/* Largest rate the bucket takes (rate x hz must not overflow for any TSC). */
#define TALLY_REPLY_RATE_MAX 1000000u

/* A full bucket at cycle now; rate is clamped to TALLY_REPLY_RATE_MAX. */
void tally_reply_bucket_init(struct tally_reply_bucket *b, uint64_t rate, uint64_t hz,
			     uint64_t now);

/* Take a token at cycle now (not before the last take): 1 when a reply may go, else 0. */
int tally_reply_bucket_take(struct tally_reply_bucket *b, uint64_t now);

#endif /* TALLY_REPLY_H */
