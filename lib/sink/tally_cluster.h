/* SPDX-License-Identifier: BSD-3-Clause */
/* Redis Cluster routing without I/O: key slots, slot maps from CLUSTER replies, redirects. */
#ifndef TALLY_CLUSTER_H
#define TALLY_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#define TALLY_CLUSTER_SLOTS 16384
#define TALLY_CLUSTER_MAX_MASTERS 64
#define TALLY_CLUSTER_HOST_LEN 256 /* with the NUL */
#define TALLY_SLOT_NONE 0xffff

/* Where a node listens. An empty host means "the host of the node that gave the address". */
struct tally_cluster_node {
	char host[TALLY_CLUSTER_HOST_LEN]; /* NUL-terminated IP address or hostname */
	uint16_t port;
};

/*
 * Which master serves each slot, as one node saw it. Owned by the caller (about 50 kB: keep
 * it static or on the heap, not on a worker's stack); the parsers below fill it in place.
 */
struct tally_slot_map {
	uint32_t nmasters;
	struct tally_cluster_node master[TALLY_CLUSTER_MAX_MASTERS]; /* unique host:port */
	uint16_t owner[TALLY_CLUSTER_SLOTS]; /* index into master, TALLY_SLOT_NONE if unassigned */
};

/* CRC16/XMODEM (polynomial 0x1021, initial value 0), the checksum Redis Cluster hashes with. */
uint16_t tally_crc16(const void *buf, size_t len);

/*
 * The cluster slot of a key: CRC16 of its hash tag (what lies between the first '{' and the
 * first '}' after it, when that is not empty) or else of the whole key, modulo 16384.
 * key need not be NUL-terminated.
 */
uint16_t tally_key_slot(const char *key, size_t len);

/*
 * Build *m from the RESP2 reply to CLUSTER SHARDS (Redis 7.0+). Each shard's slots go to its
 * master whose health is "online" (at its "endpoint", or its "ip" when the endpoint is empty
 * or "?"; at its "port", or "tls-port" without one); the slots of a shard with no such master
 * stay TALLY_SLOT_NONE, as do slots no shard claims. Unknown keys are ignored; integers may
 * come as integer or string replies. The reply stays the caller's and is not kept.
 * Returns 0, or -EINVAL with a one-line reason in err (when err is not NULL) and *m emptied:
 * parse into a spare map if the current one must survive a bad reply.
 */
int tally_slot_map_from_shards(struct tally_slot_map *m, const redisReply *r, char *err,
			       size_t errlen);

/*
 * Build *m from the RESP2 reply to CLUSTER SLOTS: ranges [start, end, master, replicas...],
 * each node [endpoint, port, id, ...]. A nil or empty endpoint leaves the host empty (the
 * node that answered), "?" takes the "ip" of the node's metadata when it has one. Same
 * ownership and errors as tally_slot_map_from_shards().
 */
int tally_slot_map_from_slots(struct tally_slot_map *m, const redisReply *r, char *err,
			      size_t errlen);

/* Index in m->master of host:port (host NUL-terminated), or -1. */
int tally_slot_map_find(const struct tally_slot_map *m, const char *host, uint16_t port);

/*
 * Parse the text of an error reply that redirects a command: "MOVED <slot> <host>:<port>" or
 * "ASK <slot> <host>:<port>". The port follows the last ':', so an IPv6 host needs no
 * brackets; an empty host (":6381") is left empty, meaning the host of the node that
 * answered. str need not be NUL-terminated. On success sets *ask (1 for ASK, 0 for MOVED),
 * *slot and *to and returns 0; returns -EINVAL, touching nothing, if str is no redirect.
 */
int tally_parse_redirect(const char *str, size_t len, int *ask, uint16_t *slot,
			 struct tally_cluster_node *to);

#endif /* TALLY_CLUSTER_H */
