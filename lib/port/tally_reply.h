/* SPDX-License-Identifier: BSD-3-Clause */
/* Exception path replies: ARP, ICMP echo, IPv6 neighbor advertisement and ICMPv6 echo. */
#ifndef TALLY_REPLY_H
#define TALLY_REPLY_H

#include <stdint.h>

#include "tally_wire.h"

/*
 * Turn a request frame (classified ARP, ICMP or ICMP6 by tally_wire_parse()) into its reply,
 * in place, from our MAC. Returns the reply length, or -1 when the frame needs no reply
 * (not a request, not for our address, malformed). Pure: no EAL, no allocation.
 */
int tally_reply_build(uint8_t *frame, uint32_t len, int frame_type, const struct tally_frame *fr,
		      const uint8_t mac[6], const struct tally_wire_filter *f);

/* Internet checksum of buf folded into sum (host order result). */
uint16_t tally_inet_csum(const void *buf, uint32_t len, uint32_t sum);

#endif /* TALLY_REPLY_H */
