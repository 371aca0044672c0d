/* SPDX-License-Identifier: BSD-3-Clause */
/* Redis Cluster routing without I/O: key slots, slot maps from CLUSTER replies, redirects. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "tally_cluster.h"

/* CRC16/XMODEM by byte: crc16_table[i] is the CRC of the byte i shifted into the top. */
static const uint16_t crc16_table[256] = {
	0x0000, 0x1021, 0x2042, 0x3063, 0x4084, 0x50a5, 0x60c6, 0x70e7, 0x8108, 0x9129, 0xa14a,
	0xb16b, 0xc18c, 0xd1ad, 0xe1ce, 0xf1ef, 0x1231, 0x0210, 0x3273, 0x2252, 0x52b5, 0x4294,
	0x72f7, 0x62d6, 0x9339, 0x8318, 0xb37b, 0xa35a, 0xd3bd, 0xc39c, 0xf3ff, 0xe3de, 0x2462,
	0x3443, 0x0420, 0x1401, 0x64e6, 0x74c7, 0x44a4, 0x5485, 0xa56a, 0xb54b, 0x8528, 0x9509,
	0xe5ee, 0xf5cf, 0xc5ac, 0xd58d, 0x3653, 0x2672, 0x1611, 0x0630, 0x76d7, 0x66f6, 0x5695,
	0x46b4, 0xb75b, 0xa77a, 0x9719, 0x8738, 0xf7df, 0xe7fe, 0xd79d, 0xc7bc, 0x48c4, 0x58e5,
	0x6886, 0x78a7, 0x0840, 0x1861, 0x2802, 0x3823, 0xc9cc, 0xd9ed, 0xe98e, 0xf9af, 0x8948,
	0x9969, 0xa90a, 0xb92b, 0x5af5, 0x4ad4, 0x7ab7, 0x6a96, 0x1a71, 0x0a50, 0x3a33, 0x2a12,
	0xdbfd, 0xcbdc, 0xfbbf, 0xeb9e, 0x9b79, 0x8b58, 0xbb3b, 0xab1a, 0x6ca6, 0x7c87, 0x4ce4,
	0x5cc5, 0x2c22, 0x3c03, 0x0c60, 0x1c41, 0xedae, 0xfd8f, 0xcdec, 0xddcd, 0xad2a, 0xbd0b,
	0x8d68, 0x9d49, 0x7e97, 0x6eb6, 0x5ed5, 0x4ef4, 0x3e13, 0x2e32, 0x1e51, 0x0e70, 0xff9f,
	0xefbe, 0xdfdd, 0xcffc, 0xbf1b, 0xaf3a, 0x9f59, 0x8f78, 0x9188, 0x81a9, 0xb1ca, 0xa1eb,
	0xd10c, 0xc12d, 0xf14e, 0xe16f, 0x1080, 0x00a1, 0x30c2, 0x20e3, 0x5004, 0x4025, 0x7046,
	0x6067, 0x83b9, 0x9398, 0xa3fb, 0xb3da, 0xc33d, 0xd31c, 0xe37f, 0xf35e, 0x02b1, 0x1290,
	0x22f3, 0x32d2, 0x4235, 0x5214, 0x6277, 0x7256, 0xb5ea, 0xa5cb, 0x95a8, 0x8589, 0xf56e,
	0xe54f, 0xd52c, 0xc50d, 0x34e2, 0x24c3, 0x14a0, 0x0481, 0x7466, 0x6447, 0x5424, 0x4405,
	0xa7db, 0xb7fa, 0x8799, 0x97b8, 0xe75f, 0xf77e, 0xc71d, 0xd73c, 0x26d3, 0x36f2, 0x0691,
	0x16b0, 0x6657, 0x7676, 0x4615, 0x5634, 0xd94c, 0xc96d, 0xf90e, 0xe92f, 0x99c8, 0x89e9,
	0xb98a, 0xa9ab, 0x5844, 0x4865, 0x7806, 0x6827, 0x18c0, 0x08e1, 0x3882, 0x28a3, 0xcb7d,
	0xdb5c, 0xeb3f, 0xfb1e, 0x8bf9, 0x9bd8, 0xabbb, 0xbb9a, 0x4a75, 0x5a54, 0x6a37, 0x7a16,
	0x0af1, 0x1ad0, 0x2ab3, 0x3a92, 0xfd2e, 0xed0f, 0xdd6c, 0xcd4d, 0xbdaa, 0xad8b, 0x9de8,
	0x8dc9, 0x7c26, 0x6c07, 0x5c64, 0x4c45, 0x3ca2, 0x2c83, 0x1ce0, 0x0cc1, 0xef1f, 0xff3e,
	0xcf5d, 0xdf7c, 0xaf9b, 0xbfba, 0x8fd9, 0x9ff8, 0x6e17, 0x7e36, 0x4e55, 0x5e74, 0x2e93,
	0x3eb2, 0x0ed1, 0x1ef0,
};

uint16_t
tally_crc16(const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint16_t crc = 0;
	size_t i;

	for (i = 0; i < len; i++)
		crc = (uint16_t)(crc << 8) ^ crc16_table[((crc >> 8) ^ p[i]) & 0xff];
	return crc;
}

uint16_t
tally_key_slot(const char *key, size_t len)
{
	const char *open = memchr(key, '{', len);
	const char *close;

	if (open != NULL) {
		close = memchr(open + 1, '}', (size_t)(key + len - (open + 1)));
		if (close != NULL && close > open + 1)
			return tally_crc16(open + 1, (size_t)(close - open - 1)) &
			       (TALLY_CLUSTER_SLOTS - 1);
	}
	return tally_crc16(key, len) & (TALLY_CLUSTER_SLOTS - 1);
}

/* Decimal digits only (no sign, no spaces), at most max. */
static int
parse_dec(const char *s, size_t len, unsigned long max, unsigned long *v)
{
	unsigned long x = 0;
	size_t i;

	if (len == 0)
		return -EINVAL;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		x = x * 10 + (unsigned long)(s[i] - '0');
		if (x > max)
			return -EINVAL;
	}
	*v = x;
	return 0;
}

/* An integer reply, or a string reply holding a decimal number: both occur in the wild. */
static int
reply_uint(const redisReply *r, unsigned long max, unsigned long *v)
{
	if (r == NULL)
		return -EINVAL;
	if (r->type == REDIS_REPLY_INTEGER) {
		if (r->integer < 0 || (unsigned long long)r->integer > max)
			return -EINVAL;
		*v = (unsigned long)r->integer;
		return 0;
	}
	if (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_STATUS)
		return -EINVAL;
	return parse_dec(r->str, r->len, max, v);
}

/* The text of a string reply; nil reads as empty. */
static int
reply_text(const redisReply *r, const char **s, size_t *len)
{
	if (r != NULL && r->type == REDIS_REPLY_NIL) {
		*s = "";
		*len = 0;
		return 0;
	}
	if (r == NULL || (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_STATUS))
		return -EINVAL;
	*s = r->str;
	*len = r->len;
	return 0;
}

static int
text_is(const redisReply *r, const char *want)
{
	const char *s;
	size_t len;

	return reply_text(r, &s, &len) == 0 && len == strlen(want) && memcmp(s, want, len) == 0;
}

/* RESP2 renders a map as a flat array: key, value, key, value... */
static int
is_kv(const redisReply *r)
{
	return r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements % 2 == 0;
}

/* The value of key in a flat key/value array, or NULL. */
static const redisReply *
kv_get(const redisReply *kv, const char *key)
{
	size_t i;

	for (i = 0; i + 1 < kv->elements; i += 2)
		if (text_is(kv->element[i], key))
			return kv->element[i + 1];
	return NULL;
}

/* One parse of a CLUSTER reply into a map. */
struct map_parse {
	struct tally_slot_map *m;
	char *err;
	size_t errlen;
	const char *what; /* the command, to start the error message */
	const char *unit; /* what the reply lists: "shard", "range" */
};

static void
map_reset(struct tally_slot_map *m)
{
	m->nmasters = 0;
	memset(m->master, 0, sizeof(m->master));
	memset(m->owner, 0xff, sizeof(m->owner));
}

static int map_fail(struct map_parse *p, size_t at, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Empties the map so that no half-built one is ever seen, and says why. */
static int
map_fail(struct map_parse *p, size_t at, const char *fmt, ...)
{
	char why[160];
	va_list ap;

	map_reset(p->m);
	if (p->err == NULL || p->errlen == 0)
		return -EINVAL;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (at == SIZE_MAX)
		snprintf(p->err, p->errlen, "%s: %s", p->what, why);
	else
		snprintf(p->err, p->errlen, "%s: %s %zu: %s", p->what, p->unit, at, why);
	return -EINVAL;
}

/* Index of host:port in the map, added when new; -EINVAL when it cannot be. */
static int
map_master(struct map_parse *p, size_t at, const char *host, size_t hlen, unsigned long port)
{
	struct tally_slot_map *m = p->m;
	struct tally_cluster_node *n;
	uint32_t i;

	if (hlen >= TALLY_CLUSTER_HOST_LEN || memchr(host, '\0', hlen) != NULL)
		return map_fail(p, at, "master host is not a name of at most %d bytes",
				TALLY_CLUSTER_HOST_LEN - 1);
	for (i = 0; i < m->nmasters; i++) {
		n = &m->master[i];
		if (n->port == port && strlen(n->host) == hlen && memcmp(n->host, host, hlen) == 0)
			return (int)i;
	}
	if (m->nmasters == TALLY_CLUSTER_MAX_MASTERS)
		return map_fail(p, at, "more than %d masters", TALLY_CLUSTER_MAX_MASTERS);
	n = &m->master[m->nmasters];
	memcpy(n->host, host, hlen);
	n->host[hlen] = '\0';
	n->port = (uint16_t)port;
	return (int)m->nmasters++;
}

/* Give slots start..end to master idx; idx -1 only checks the range. */
static int
map_claim(struct map_parse *p, size_t at, const redisReply *start, const redisReply *end, int idx)
{
	unsigned long s, e, slot;

	if (reply_uint(start, TALLY_CLUSTER_SLOTS - 1, &s) < 0 ||
	    reply_uint(end, TALLY_CLUSTER_SLOTS - 1, &e) < 0 || s > e)
		return map_fail(p, at, "slot range is not start <= end < %d", TALLY_CLUSTER_SLOTS);
	if (idx < 0)
		return 0;
	for (slot = s; slot <= e; slot++) {
		if (p->m->owner[slot] != TALLY_SLOT_NONE)
			return map_fail(p, at, "slot %lu claimed twice", slot);
		p->m->owner[slot] = (uint16_t)idx;
	}
	return 0;
}

/* The first online master among a shard's nodes, added to the map; *idx -1 if none. */
static int
shard_master(struct map_parse *p, size_t at, const redisReply *nodes, int *idx)
{
	const redisReply *node, *health, *port;
	const char *host;
	unsigned long pnum;
	size_t i, hlen;

	*idx = -1;
	for (i = 0; i < nodes->elements; i++) {
		node = nodes->element[i];
		if (!is_kv(node))
			return map_fail(p, at, "node %zu is not a key/value array", i);
		if (!text_is(kv_get(node, "role"), "master"))
			continue;
		/* A reply that does not report health cannot say the master failed. */
		health = kv_get(node, "health");
		if (health != NULL && !text_is(health, "online"))
			continue;
		if (reply_text(kv_get(node, "endpoint"), &host, &hlen) < 0 || hlen == 0 ||
		    (hlen == 1 && host[0] == '?')) {
			if (reply_text(kv_get(node, "ip"), &host, &hlen) < 0)
				return map_fail(p, at, "master has neither endpoint nor ip");
		}
		port = kv_get(node, "port");
		if (port == NULL)
			port = kv_get(node, "tls-port");
		if (reply_uint(port, UINT16_MAX, &pnum) < 0 || pnum == 0)
			return map_fail(p, at, "master has no port in 1..65535");
		*idx = map_master(p, at, host, hlen, pnum);
		return *idx < 0 ? *idx : 0;
	}
	return 0;
}

int
tally_slot_map_from_shards(struct tally_slot_map *m, const redisReply *r, char *err, size_t errlen)
{
	struct map_parse p = {m, err, errlen, "CLUSTER SHARDS", "shard"};
	const redisReply *shard, *slots, *nodes;
	size_t i, k;
	int idx, rc;

	map_reset(m);
	if (r == NULL || r->type != REDIS_REPLY_ARRAY)
		return map_fail(&p, SIZE_MAX, "reply is not an array");
	for (i = 0; i < r->elements; i++) {
		shard = r->element[i];
		if (!is_kv(shard))
			return map_fail(&p, i, "not a key/value array");
		slots = kv_get(shard, "slots");
		if (slots == NULL || slots->type != REDIS_REPLY_ARRAY || slots->elements % 2 != 0)
			return map_fail(&p, i, "slots are not an array of start, end pairs");
		/* Replicas not yet attached and failed masters replaced show up as empty shards. */
		if (slots->elements == 0)
			continue;
		nodes = kv_get(shard, "nodes");
		if (nodes == NULL || nodes->type != REDIS_REPLY_ARRAY)
			return map_fail(&p, i, "nodes are not an array");
		rc = shard_master(&p, i, nodes, &idx);
		if (rc < 0)
			return rc;
		for (k = 0; k < slots->elements; k += 2) {
			rc = map_claim(&p, i, slots->element[k], slots->element[k + 1], idx);
			if (rc < 0)
				return rc;
		}
	}
	return 0;
}

/* A CLUSTER SLOTS node: [endpoint, port, id, metadata (7.0+, a key/value array)]. */
static int
slots_master(struct map_parse *p, size_t at, const redisReply *node, int *idx)
{
	const redisReply *meta;
	const char *host;
	unsigned long port;
	size_t hlen;

	*idx = -1;
	if (node->type != REDIS_REPLY_ARRAY || node->elements < 2)
		return map_fail(p, at, "master is not [endpoint, port, ...]");
	if (reply_text(node->element[0], &host, &hlen) < 0)
		return map_fail(p, at, "master endpoint is not a string");
	/* "?": the preferred endpoint (a hostname) is unset; the metadata may hold the ip. */
	if (hlen == 1 && host[0] == '?') {
		meta = node->elements >= 4 ? node->element[3] : NULL;
		if (!is_kv(meta) || reply_text(kv_get(meta, "ip"), &host, &hlen) < 0)
			hlen = 0;
	}
	if (reply_uint(node->element[1], UINT16_MAX, &port) < 0 || port == 0)
		return map_fail(p, at, "master has no port in 1..65535");
	*idx = map_master(p, at, host, hlen, port);
	return *idx < 0 ? *idx : 0;
}

int
tally_slot_map_from_slots(struct tally_slot_map *m, const redisReply *r, char *err, size_t errlen)
{
	struct map_parse p = {m, err, errlen, "CLUSTER SLOTS", "range"};
	const redisReply *range;
	size_t i;
	int idx, rc;

	map_reset(m);
	if (r == NULL || r->type != REDIS_REPLY_ARRAY)
		return map_fail(&p, SIZE_MAX, "reply is not an array");
	for (i = 0; i < r->elements; i++) {
		range = r->element[i];
		if (range->type != REDIS_REPLY_ARRAY || range->elements < 3)
			return map_fail(&p, i, "not [start, end, master, ...]");
		rc = slots_master(&p, i, range->element[2], &idx);
		if (rc < 0)
			return rc;
		rc = map_claim(&p, i, range->element[0], range->element[1], idx);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int
tally_slot_map_find(const struct tally_slot_map *m, const char *host, uint16_t port)
{
	uint32_t i;

	for (i = 0; i < m->nmasters; i++)
		if (m->master[i].port == port && strcmp(m->master[i].host, host) == 0)
			return (int)i;
	return -1;
}

int
tally_parse_redirect(const char *str, size_t len, int *ask, uint16_t *slot,
		     struct tally_cluster_node *to)
{
	const char *p, *sp, *colon, *end = str + len;
	unsigned long s, port;
	size_t hlen;
	int is_ask;

	if (len > 6 && memcmp(str, "MOVED ", 6) == 0) {
		is_ask = 0;
		p = str + 6;
	} else if (len > 4 && memcmp(str, "ASK ", 4) == 0) {
		is_ask = 1;
		p = str + 4;
	} else {
		return -EINVAL;
	}
	sp = memchr(p, ' ', (size_t)(end - p));
	if (sp == NULL || parse_dec(p, (size_t)(sp - p), TALLY_CLUSTER_SLOTS - 1, &s) < 0)
		return -EINVAL;
	p = sp + 1;
	/* The last colon: an IPv6 address has more of them. */
	for (colon = end; colon > p && colon[-1] != ':'; colon--)
		;
	if (colon == p)
		return -EINVAL;
	if (parse_dec(colon, (size_t)(end - colon), UINT16_MAX, &port) < 0 || port == 0)
		return -EINVAL;
	hlen = (size_t)(colon - 1 - p);
	if (hlen >= TALLY_CLUSTER_HOST_LEN || memchr(p, ' ', hlen) != NULL ||
	    memchr(p, '\0', hlen) != NULL)
		return -EINVAL;
	*ask = is_ask;
	*slot = (uint16_t)s;
	memcpy(to->host, p, hlen);
	to->host[hlen] = '\0';
	to->port = (uint16_t)port;
	return 0;
}
