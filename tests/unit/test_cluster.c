/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of the Redis Cluster helpers: key slots, slot maps, redirect parsing. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <hiredis/hiredis.h>

#include "test.h"
#include "tally_cluster.h"

/*
 * The replies below are what redis-server 7.0.15 sent to CLUSTER SHARDS and CLUSTER SLOTS in
 * a cluster of 3 masters with a replica each (tests/integration/rcluster.py): after creation,
 * after SIGKILL of master B and the promotion of its replica, and after slot 1716 moved from
 * B's new master to A. The macros only spell out what repeats; the bytes are Redis's.
 */
/* A line per shard, node or range reads better than what clang-format would make of it. */
/* clang-format off */
#define ID_A "0f313a133bc67187f66a3ca52937123539420cd5"  /* :38877, slots 10923-16383 */
#define ID_A2 "1822d9b738b5e98669d72e36f09555ef3111c6f2" /* :53177, replica of A */
#define ID_B "6ca42a9cae2373e26c019f6634dafadeaa5a1ac3"  /* :51225, slots 0-5460, killed */
#define ID_B2 "3a659cc820a6aff804ffd2c192465758c82391d2" /* :51363, replica of B, promoted */
#define ID_C "d8a5b654f5fe2a497e26d68b8d8e652d052fd341"  /* :52609, slots 5461-10922 */
#define ID_C2 "ad0d0427e9cf42469947f3cd98acabda62338a1a" /* :43635, replica of C */

#define MASTER "$6\r\nmaster\r\n"
#define REPLICA "$7\r\nreplica\r\n"
#define ONLINE "$6\r\nonline\r\n"
#define LOADING "$7\r\nloading\r\n" /* a replica whose replication offset is still 0 */
#define FAIL "$4\r\nfail\r\n"

/* A CLUSTER SHARDS node: 7.0 sends 7 fields when there is no TLS port and no hostname. */
#define SHARD_NODE(id, port, role, offset, health) \
	"*14\r\n$2\r\nid\r\n$40\r\n" id "\r\n$4\r\nport\r\n:" port "\r\n" \
	"$2\r\nip\r\n$9\r\n127.0.0.1\r\n$8\r\nendpoint\r\n$9\r\n127.0.0.1\r\n" \
	"$4\r\nrole\r\n" role "$18\r\nreplication-offset\r\n:" offset "\r\n" \
	"$6\r\nhealth\r\n" health
/* A shard: nslots integers (start, end pairs), then nnodes SHARD_NODEs. */
#define SHARD(nslots, slots, nnodes) \
	"*4\r\n$5\r\nslots\r\n*" nslots "\r\n" slots "$5\r\nnodes\r\n*" nnodes "\r\n"
#define RANGE(start, end) ":" start "\r\n:" end "\r\n"
/* A CLUSTER SLOTS node: endpoint, port, id and the (empty) metadata map of 7.0. */
#define SLOTS_NODE(port, id) "*4\r\n$9\r\n127.0.0.1\r\n:" port "\r\n$40\r\n" id "\r\n*0\r\n"

static const char shards_created[] =
	"*3\r\n"
	SHARD("2", RANGE("10923", "16383"), "2")
	SHARD_NODE(ID_A, "38877", MASTER, "0", ONLINE)
	SHARD_NODE(ID_A2, "53177", REPLICA, "0", LOADING)
	SHARD("2", RANGE("0", "5460"), "2")
	SHARD_NODE(ID_B, "51225", MASTER, "0", ONLINE)
	SHARD_NODE(ID_B2, "51363", REPLICA, "0", LOADING)
	SHARD("2", RANGE("5461", "10922"), "2")
	SHARD_NODE(ID_C, "52609", MASTER, "0", ONLINE)
	SHARD_NODE(ID_C2, "43635", REPLICA, "0", LOADING);

/* 7.0 puts the failed old master in a shard of its own, with no slots. */
static const char shards_failed_over[] =
	"*4\r\n"
	SHARD("2", RANGE("10923", "16383"), "2")
	SHARD_NODE(ID_A, "38877", MASTER, "230", ONLINE)
	SHARD_NODE(ID_A2, "53177", REPLICA, "230", ONLINE)
	SHARD("2", RANGE("0", "5460"), "1")
	SHARD_NODE(ID_B2, "51363", MASTER, "411", ONLINE)
	SHARD("2", RANGE("5461", "10922"), "2")
	SHARD_NODE(ID_C, "52609", MASTER, "318", ONLINE)
	SHARD_NODE(ID_C2, "43635", REPLICA, "318", ONLINE)
	SHARD("0", "", "1")
	SHARD_NODE(ID_B, "51225", MASTER, "0", FAIL);

static const char shards_migrated[] =
	"*4\r\n"
	SHARD("4", RANGE("1716", "1716") RANGE("10923", "16383"), "2")
	SHARD_NODE(ID_A, "38877", MASTER, "291", ONLINE)
	SHARD_NODE(ID_A2, "53177", REPLICA, "230", ONLINE)
	SHARD("4", RANGE("0", "1715") RANGE("1717", "5460"), "1")
	SHARD_NODE(ID_B2, "51363", MASTER, "411", ONLINE)
	SHARD("2", RANGE("5461", "10922"), "2")
	SHARD_NODE(ID_C, "52609", MASTER, "318", ONLINE)
	SHARD_NODE(ID_C2, "43635", REPLICA, "318", ONLINE)
	SHARD("0", "", "1")
	SHARD_NODE(ID_B, "51225", MASTER, "0", FAIL);

/* Not from 7.0: shards grouped by shard id (7.2) keep the failed master with its successor. */
static const char shards_grouped[] =
	"*2\r\n"
	SHARD("2", RANGE("0", "5460"), "2")
	SHARD_NODE(ID_B, "51225", MASTER, "0", FAIL)
	SHARD_NODE(ID_B2, "51363", MASTER, "411", ONLINE)
	SHARD("2", RANGE("5461", "16383"), "1")
	SHARD_NODE(ID_C, "52609", MASTER, "318", ONLINE);

/* Between failure and promotion: B's slots have no master that can take writes. */
static const char shards_unpromoted[] =
	"*2\r\n"
	SHARD("2", RANGE("0", "5460"), "2")
	SHARD_NODE(ID_B, "51225", MASTER, "0", FAIL)
	SHARD_NODE(ID_B2, "51363", REPLICA, "411", ONLINE)
	SHARD("2", RANGE("5461", "16383"), "1")
	SHARD_NODE(ID_C, "52609", MASTER, "318", ONLINE);

/*
 * What other servers may send: an unknown "shard-id", slots and ports as strings, a TLS port
 * only, an unset hostname endpoint ("?") next to an ip, a hostname endpoint, no health.
 */
static const char shards_lenient[] =
	"*2\r\n"
	"*6\r\n$8\r\nshard-id\r\n$3\r\nabc\r\n"
	"$5\r\nslots\r\n*4\r\n$1\r\n0\r\n$3\r\n100\r\n:200\r\n$3\r\n300\r\n"
	"$5\r\nnodes\r\n*1\r\n"
	"*12\r\n$2\r\nid\r\n$1\r\nx\r\n$8\r\ntls-port\r\n$4\r\n6380\r\n"
	"$2\r\nip\r\n$8\r\n10.0.0.7\r\n$8\r\nendpoint\r\n$1\r\n?\r\n"
	"$8\r\nhostname\r\n$0\r\n\r\n$4\r\nrole\r\n$6\r\nmaster\r\n"
	"*4\r\n$5\r\nslots\r\n*2\r\n:301\r\n:16383\r\n$5\r\nnodes\r\n*1\r\n"
	"*8\r\n$4\r\nport\r\n$4\r\n7001\r\n$2\r\nip\r\n$8\r\n10.0.0.8\r\n"
	"$8\r\nendpoint\r\n$15\r\nredis-1.example\r\n$4\r\nrole\r\n$6\r\nmaster\r\n";

static const char slots_created[] =
	"*3\r\n"
	"*3\r\n" RANGE("0", "5460") SLOTS_NODE("51225", ID_B)
	"*3\r\n" RANGE("5461", "10922") SLOTS_NODE("52609", ID_C)
	"*3\r\n" RANGE("10923", "16383") SLOTS_NODE("38877", ID_A);

/* B's new master owns two ranges; replicas follow their masters. */
static const char slots_migrated[] =
	"*5\r\n"
	"*3\r\n" RANGE("0", "1715") SLOTS_NODE("51363", ID_B2)
	"*4\r\n" RANGE("1716", "1716") SLOTS_NODE("38877", ID_A) SLOTS_NODE("53177", ID_A2)
	"*3\r\n" RANGE("1717", "5460") SLOTS_NODE("51363", ID_B2)
	"*4\r\n" RANGE("5461", "10922") SLOTS_NODE("52609", ID_C) SLOTS_NODE("43635", ID_C2)
	"*4\r\n" RANGE("10923", "16383") SLOTS_NODE("38877", ID_A) SLOTS_NODE("53177", ID_A2);

/* Endpoints a node may not know: nil and "" (ask the node that answered), "?" (use the ip). */
static const char slots_endpoints[] =
	"*3\r\n"
	"*3\r\n" RANGE("0", "99") "*3\r\n$-1\r\n:7000\r\n$1\r\na\r\n"
	"*3\r\n" RANGE("100", "199") "*3\r\n$0\r\n\r\n:7001\r\n$1\r\nb\r\n"
	"*3\r\n" RANGE("200", "299")
	"*4\r\n$1\r\n?\r\n:7002\r\n$1\r\nc\r\n*2\r\n$2\r\nip\r\n$8\r\n10.1.2.3\r\n";
/* clang-format on */

/* One reply from RESP text, as hiredis's reader builds it; free with freeReplyObject(). */
static redisReply *
resp(const char *text)
{
	redisReader *rd = redisReaderCreate();
	void *reply = NULL;
	void *more = NULL;

	assert_non_null(rd);
	assert_int_equal(redisReaderFeed(rd, text, strlen(text)), REDIS_OK);
	assert_int_equal(redisReaderGetReply(rd, &reply), REDIS_OK);
	assert_non_null(reply);
	assert_int_equal(redisReaderGetReply(rd, &more), REDIS_OK);
	assert_null(more);
	redisReaderFree(rd);
	return reply;
}

typedef int (*map_parser)(struct tally_slot_map *, const redisReply *, char *, size_t);

/* Parse text with fn into m; returns what fn returned, err holds its reason. */
static int
parse(map_parser fn, struct tally_slot_map *m, const char *text, char *err, size_t errlen)
{
	redisReply *r = resp(text);
	int rc = fn(m, r, err, errlen);

	freeReplyObject(r);
	return rc;
}

static struct tally_slot_map *
map_new(void)
{
	struct tally_slot_map *m = test_malloc(sizeof(*m));

	memset(m, 0x5a, sizeof(*m));
	return m;
}

/* The master index of port on 127.0.0.1, which must exist. */
static int
master(const struct tally_slot_map *m, uint16_t port)
{
	int i = tally_slot_map_find(m, "127.0.0.1", port);

	assert_true(i >= 0);
	return i;
}

/* Every slot of start..end belongs to master index idx. */
static void
assert_owned(const struct tally_slot_map *m, unsigned int start, unsigned int end, uint16_t idx)
{
	unsigned int s;

	for (s = start; s <= end; s++)
		if (m->owner[s] != idx)
			fail_msg("slot %u: owner %u, expected %u", s, m->owner[s], idx);
}

static void
assert_empty(const struct tally_slot_map *m)
{
	assert_int_equal(m->nmasters, 0);
	assert_owned(m, 0, TALLY_CLUSTER_SLOTS - 1, TALLY_SLOT_NONE);
}

static void
test_crc16_vector(void **state)
{
	assert_int_equal(tally_crc16("123456789", 9), 0x31c3);
	assert_int_equal(tally_crc16("", 0), 0);
	assert_int_equal(tally_key_slot("123456789", 9), 0x31c3 & 16383);
	assert_int_equal(tally_key_slot("123456789", 9), 12739);
}

static uint16_t
slot(const char *key)
{
	return tally_key_slot(key, strlen(key));
}

/* Expected values are what CLUSTER KEYSLOT answered on redis-server 7.0.15. */
static void
test_key_slots(void **state)
{
	assert_int_equal(slot("foo"), 12182);
	assert_int_equal(slot("bar"), 5061);
	assert_int_equal(slot(""), 0);
	assert_int_equal(slot("{user1000}.following"), 3443);
	assert_int_equal(slot("{user1000}.followers"), 3443);
	assert_int_equal(slot("user1000"), 3443);
	/* an empty tag hashes the whole key, even when a later tag is not empty */
	assert_int_equal(slot("{}"), 15257);
	assert_int_equal(slot("foo{}{bar}"), 8363);
	assert_int_equal(slot("foo{}{bar}"), tally_crc16("foo{}{bar}", 10) & 16383);
	/* the tag ends at the first '}' after the first '{' */
	assert_int_equal(slot("foo{{bar}}"), 4015);
	assert_int_equal(slot("foo{{bar}}"), slot("{bar"));
	assert_int_equal(slot("foo{bar}{zap}"), slot("bar"));
	assert_int_equal(slot("tally:{42}:1000"), 8000);
	assert_int_equal(slot("tally:{42}:1000"), slot("42"));
	/* unclosed or reversed braces: no tag */
	assert_int_equal(slot("{"), 4092);
	assert_int_equal(slot("a{b"), 13340);
	assert_int_equal(slot("}{"), 12793);
	/* the length bounds the key: a '}' past it does not close the tag */
	assert_int_equal(tally_key_slot("foo{bar}", 3), 12182);
	assert_int_equal(tally_key_slot("a{b}", 3), 13340);
}

static void
test_shards_created(void **state)
{
	struct tally_slot_map *m = map_new();
	char err[128] = "";

	assert_int_equal(parse(tally_slot_map_from_shards, m, shards_created, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_int_equal(m->nmasters, 3);
	/* replicas, "loading" here only because nothing was written yet, are not masters */
	assert_int_equal(tally_slot_map_find(m, "127.0.0.1", 53177), -1);
	assert_int_equal(tally_slot_map_find(m, "127.0.0.1", 51363), -1);
	assert_int_equal(tally_slot_map_find(m, "127.0.0.1", 43635), -1);
	assert_owned(m, 0, 5460, master(m, 51225));
	assert_owned(m, 5461, 10922, master(m, 52609));
	assert_owned(m, 10923, 16383, master(m, 38877));
	assert_int_equal(master(m, 38877), 0); /* in reply order */
	assert_string_equal(m->master[0].host, "127.0.0.1");
	assert_int_equal(m->master[0].port, 38877);
	test_free(m);
}

static void
test_shards_failover(void **state)
{
	struct tally_slot_map *m = map_new();
	char err[128];

	/* the failed master's own empty shard is skipped; its replica took its slots */
	assert_int_equal(parse(tally_slot_map_from_shards, m, shards_failed_over, err, sizeof(err)),
			 0);
	assert_int_equal(m->nmasters, 3);
	assert_int_equal(tally_slot_map_find(m, "127.0.0.1", 51225), -1);
	assert_owned(m, 0, 5460, master(m, 51363));
	assert_owned(m, 5461, 10922, master(m, 52609));
	assert_owned(m, 10923, 16383, master(m, 38877));

	/* a master listed several times in a shard's slots: single slots, split ranges */
	assert_int_equal(parse(tally_slot_map_from_shards, m, shards_migrated, err, sizeof(err)),
			 0);
	assert_int_equal(m->nmasters, 3);
	assert_owned(m, 0, 1715, master(m, 51363));
	assert_owned(m, 1716, 1716, master(m, 38877));
	assert_owned(m, 1717, 5460, master(m, 51363));
	assert_owned(m, 10923, 16383, master(m, 38877));

	/* the failed master first in its shard, the promoted one after it */
	assert_int_equal(parse(tally_slot_map_from_shards, m, shards_grouped, err, sizeof(err)), 0);
	assert_int_equal(m->nmasters, 2);
	assert_owned(m, 0, 5460, master(m, 51363));
	assert_owned(m, 5461, 16383, master(m, 52609));
	assert_int_equal(tally_slot_map_find(m, "127.0.0.1", 51225), -1);

	/* not promoted yet: those slots have no owner, the rest of the map is usable */
	assert_int_equal(parse(tally_slot_map_from_shards, m, shards_unpromoted, err, sizeof(err)),
			 0);
	assert_int_equal(m->nmasters, 1);
	assert_owned(m, 0, 5460, TALLY_SLOT_NONE);
	assert_owned(m, 5461, 16383, master(m, 52609));
	test_free(m);
}

static void
test_shards_lenient(void **state)
{
	struct tally_slot_map *m = map_new();
	char err[128];
	int a, b;

	assert_int_equal(parse(tally_slot_map_from_shards, m, shards_lenient, err, sizeof(err)), 0);
	assert_int_equal(m->nmasters, 2);
	a = tally_slot_map_find(m, "10.0.0.7", 6380);
	b = tally_slot_map_find(m, "redis-1.example", 7001);
	assert_int_equal(a, 0);
	assert_int_equal(b, 1);
	assert_int_equal(tally_slot_map_find(m, "10.0.0.8", 7001), -1);
	assert_owned(m, 0, 100, 0);
	assert_owned(m, 101, 199, TALLY_SLOT_NONE);
	assert_owned(m, 200, 300, 0);
	assert_owned(m, 301, 16383, 1);
	test_free(m);
}

static void
test_slots(void **state)
{
	struct tally_slot_map *m = map_new();
	char err[128];

	assert_int_equal(parse(tally_slot_map_from_slots, m, slots_created, err, sizeof(err)), 0);
	assert_int_equal(m->nmasters, 3);
	assert_owned(m, 0, 5460, master(m, 51225));
	assert_owned(m, 5461, 10922, master(m, 52609));
	assert_owned(m, 10923, 16383, master(m, 38877));

	/* the same master for two ranges is one master */
	assert_int_equal(parse(tally_slot_map_from_slots, m, slots_migrated, err, sizeof(err)), 0);
	assert_int_equal(m->nmasters, 3);
	assert_owned(m, 0, 1715, master(m, 51363));
	assert_owned(m, 1716, 1716, master(m, 38877));
	assert_owned(m, 1717, 5460, master(m, 51363));
	assert_owned(m, 5461, 10922, master(m, 52609));
	assert_owned(m, 10923, 16383, master(m, 38877));
	assert_int_equal(tally_slot_map_find(m, "127.0.0.1", 53177), -1);
	assert_int_equal(tally_slot_map_find(m, "127.0.0.1", 43635), -1);
	assert_int_equal(tally_slot_map_find(m, "127.0.0.2", 38877), -1);

	assert_int_equal(parse(tally_slot_map_from_slots, m, slots_endpoints, err, sizeof(err)), 0);
	assert_int_equal(m->nmasters, 3);
	assert_int_equal(tally_slot_map_find(m, "", 7000), 0);
	assert_int_equal(tally_slot_map_find(m, "", 7001), 1);
	assert_int_equal(tally_slot_map_find(m, "10.1.2.3", 7002), 2);
	assert_owned(m, 0, 99, 0);
	assert_owned(m, 100, 199, 1);
	assert_owned(m, 200, 299, 2);
	assert_owned(m, 300, 16383, TALLY_SLOT_NONE);
	test_free(m);
}

/* A CLUSTER SLOTS reply with n one-slot ranges on ports 10000.., hosts of hlen bytes. */
static char *
slots_text(unsigned int n, size_t hlen)
{
	size_t cap = 64 + n * (hlen + 64);
	char *text = test_malloc(cap);
	char host[300];
	size_t len;
	unsigned int i;

	assert_true(hlen < sizeof(host));
	memset(host, 'h', hlen);
	host[hlen] = '\0';
	len = (size_t)snprintf(text, cap, "*%u\r\n", n);
	for (i = 0; i < n; i++)
		len += (size_t)snprintf(text + len, cap - len,
					"*3\r\n:%u\r\n:%u\r\n*2\r\n$%zu\r\n%s\r\n:%u\r\n", i, i,
					hlen, host, 10000 + i);
	assert_true(len < cap);
	return text;
}

static void
test_map_limits(void **state)
{
	struct tally_slot_map *m = map_new();
	char err[128];
	char *text;

	text = slots_text(TALLY_CLUSTER_MAX_MASTERS, TALLY_CLUSTER_HOST_LEN - 1);
	assert_int_equal(parse(tally_slot_map_from_slots, m, text, err, sizeof(err)), 0);
	assert_int_equal(m->nmasters, TALLY_CLUSTER_MAX_MASTERS);
	assert_int_equal(strlen(m->master[63].host), TALLY_CLUSTER_HOST_LEN - 1);
	assert_int_equal(m->master[63].port, 10063);
	assert_int_equal(m->owner[63], 63);
	test_free(text);

	text = slots_text(TALLY_CLUSTER_MAX_MASTERS + 1, 9);
	assert_int_equal(parse(tally_slot_map_from_slots, m, text, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "CLUSTER SLOTS: range 64: more than 64 masters");
	assert_empty(m);
	test_free(text);

	text = slots_text(1, TALLY_CLUSTER_HOST_LEN);
	assert_int_equal(parse(tally_slot_map_from_slots, m, text, err, sizeof(err)), -EINVAL);
	assert_empty(m);
	test_free(text);
	test_free(m);
}

/* Replies each parser must refuse. */
static const char *const bad_shards[] = {
	"+OK\r\n",
	":1\r\n",
	"*1\r\n:1\r\n",
	/* a shard with an odd number of fields */
	"*1\r\n*1\r\n$5\r\nslots\r\n",
	/* no slots, slots not an array, an odd count */
	"*1\r\n*2\r\n$5\r\nnodes\r\n*0\r\n",
	"*1\r\n*2\r\n$5\r\nslots\r\n:0\r\n",
	"*1\r\n*4\r\n$5\r\nslots\r\n*1\r\n:0\r\n$5\r\nnodes\r\n*0\r\n",
	/* slots without nodes, nodes not an array, a node not a key/value array */
	"*1\r\n*2\r\n$5\r\nslots\r\n*2\r\n:0\r\n:1\r\n",
	"*1\r\n*4\r\n$5\r\nslots\r\n*2\r\n:0\r\n:1\r\n$5\r\nnodes\r\n:1\r\n",
	"*1\r\n*4\r\n$5\r\nslots\r\n*2\r\n:0\r\n:1\r\n$5\r\nnodes\r\n*1\r\n*1\r\n:1\r\n",
	/* end past 16383, end before start, a negative start, a slot as text with a sign */
	"*1\r\n" SHARD("2", RANGE("0", "16384"), "1") SHARD_NODE(ID_A, "1", MASTER, "0", ONLINE),
	"*1\r\n" SHARD("2", RANGE("10", "9"), "1") SHARD_NODE(ID_A, "1", MASTER, "0", ONLINE),
	"*1\r\n" SHARD("2", RANGE("-1", "9"), "1") SHARD_NODE(ID_A, "1", MASTER, "0", ONLINE),
	"*1\r\n" SHARD("2", "$2\r\n+1\r\n:9\r\n", "1") SHARD_NODE(ID_A, "1", MASTER, "0", ONLINE),
	/* port 0, past 65535, not a number */
	"*1\r\n" SHARD("2", RANGE("0", "9"), "1") SHARD_NODE(ID_A, "0", MASTER, "0", ONLINE),
	"*1\r\n" SHARD("2", RANGE("0", "9"), "1") SHARD_NODE(ID_A, "65536", MASTER, "0", ONLINE),
	"*1\r\n*4\r\n$5\r\nslots\r\n*2\r\n:0\r\n:9\r\n$5\r\nnodes\r\n*1\r\n"
	"*6\r\n$4\r\nport\r\n$2\r\nxy\r\n$2\r\nip\r\n$1\r\nh\r\n$4\r\nrole\r\n$6\r\nmaster\r\n",
	/* a master with no port, one with no address */
	"*1\r\n*4\r\n$5\r\nslots\r\n*2\r\n:0\r\n:9\r\n$5\r\nnodes\r\n*1\r\n"
	"*4\r\n$2\r\nip\r\n$1\r\nh\r\n$4\r\nrole\r\n$6\r\nmaster\r\n",
	"*1\r\n*4\r\n$5\r\nslots\r\n*2\r\n:0\r\n:9\r\n$5\r\nnodes\r\n*1\r\n"
	"*4\r\n$4\r\nport\r\n:1\r\n$4\r\nrole\r\n$6\r\nmaster\r\n",
	/* two shards claiming slot 5 */
	"*2\r\n" SHARD("2", RANGE("0", "5"), "1") SHARD_NODE(ID_A, "1", MASTER, "0", ONLINE)
		SHARD("2", RANGE("5", "9"), "1") SHARD_NODE(ID_C, "2", MASTER, "0", ONLINE),
};

static const char *const bad_slots[] = {
	"+OK\r\n",
	"$-1\r\n",
	"*1\r\n:1\r\n",
	"*1\r\n*2\r\n:0\r\n:1\r\n",
	"*1\r\n*3\r\n:0\r\n:1\r\n:2\r\n",
	"*1\r\n*3\r\n:0\r\n:1\r\n*1\r\n$1\r\nh\r\n",
	"*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n:1\r\n:7000\r\n",
	"*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\nh\r\n:0\r\n",
	"*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\nh\r\n:65536\r\n",
	"*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$1\r\nh\r\n:7000\r\n",
	"*1\r\n*3\r\n$1\r\nx\r\n:1\r\n*2\r\n$1\r\nh\r\n:7000\r\n",
	"*2\r\n*3\r\n:0\r\n:10\r\n*2\r\n$1\r\nh\r\n:7000\r\n"
	"*3\r\n:10\r\n:20\r\n*2\r\n$1\r\nh\r\n:7001\r\n",
	/* the same master claiming a slot twice is still a broken reply */
	"*2\r\n*3\r\n:0\r\n:10\r\n*2\r\n$1\r\nh\r\n:7000\r\n"
	"*3\r\n:10\r\n:20\r\n*2\r\n$1\r\nh\r\n:7000\r\n",
};

static void
check_bad(map_parser fn, const char *good, const char *const *bad, size_t nbad)
{
	struct tally_slot_map *m = map_new();
	char err[128];
	size_t i;

	for (i = 0; i < nbad; i++) {
		assert_int_equal(parse(fn, m, good, err, sizeof(err)), 0);
		err[0] = '\0';
		if (parse(fn, m, bad[i], err, sizeof(err)) != -EINVAL)
			fail_msg("bad reply %zu accepted", i);
		if (err[0] == '\0' || strchr(err, '\n') != NULL)
			fail_msg("bad reply %zu: no one-line reason: '%s'", i, err);
		assert_empty(m);
		/* err is optional */
		assert_int_equal(parse(fn, m, bad[i], NULL, 0), -EINVAL);
	}
	assert_int_equal(fn(m, NULL, err, sizeof(err)), -EINVAL);
	test_free(m);
}

static void
test_malformed(void **state)
{
	struct tally_slot_map *m = map_new();
	char err[128];

	check_bad(tally_slot_map_from_shards, shards_created, bad_shards,
		  sizeof(bad_shards) / sizeof(bad_shards[0]));
	check_bad(tally_slot_map_from_slots, slots_created, bad_slots,
		  sizeof(bad_slots) / sizeof(bad_slots[0]));

	assert_int_equal(parse(tally_slot_map_from_shards, m, bad_shards[6], err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err,
			    "CLUSTER SHARDS: shard 0: slots are not an array of start, end pairs");
	assert_int_equal(parse(tally_slot_map_from_shards, m, bad_shards[19], err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "CLUSTER SHARDS: shard 1: slot 5 claimed twice");
	assert_int_equal(parse(tally_slot_map_from_slots, m, bad_slots[0], err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "CLUSTER SLOTS: reply is not an array");
	/* a short buffer truncates the reason */
	assert_int_equal(parse(tally_slot_map_from_slots, m, bad_slots[0], err, 8), -EINVAL);
	assert_string_equal(err, "CLUSTER");
	test_free(m);
}

static int
redirect(const char *s, int *ask, uint16_t *slot, struct tally_cluster_node *to)
{
	return tally_parse_redirect(s, strlen(s), ask, slot, to);
}

static void
test_redirect(void **state)
{
	struct tally_cluster_node to;
	uint16_t slot;
	int ask;

	assert_int_equal(redirect("MOVED 3999 127.0.0.1:6381", &ask, &slot, &to), 0);
	assert_int_equal(ask, 0);
	assert_int_equal(slot, 3999);
	assert_string_equal(to.host, "127.0.0.1");
	assert_int_equal(to.port, 6381);

	assert_int_equal(redirect("ASK 3999 127.0.0.1:6381", &ask, &slot, &to), 0);
	assert_int_equal(ask, 1);
	assert_int_equal(slot, 3999);
	assert_string_equal(to.host, "127.0.0.1");
	assert_int_equal(to.port, 6381);

	/* IPv6: the port follows the last colon */
	assert_int_equal(redirect("MOVED 3999 ::1:6381", &ask, &slot, &to), 0);
	assert_string_equal(to.host, "::1");
	assert_int_equal(to.port, 6381);
	assert_int_equal(redirect("ASK 0 2001:db8::7:65535", &ask, &slot, &to), 0);
	assert_int_equal(ask, 1);
	assert_int_equal(slot, 0);
	assert_string_equal(to.host, "2001:db8::7");
	assert_int_equal(to.port, 65535);

	/* unknown endpoint: the same host as the node that answered */
	assert_int_equal(redirect("MOVED 16383 :6381", &ask, &slot, &to), 0);
	assert_int_equal(slot, 16383);
	assert_string_equal(to.host, "");
	assert_int_equal(to.port, 6381);

	assert_int_equal(redirect("MOVED 12182 redis-2.example:7000", &ask, &slot, &to), 0);
	assert_string_equal(to.host, "redis-2.example");

	/* len bounds the text */
	assert_int_equal(tally_parse_redirect("MOVED 1 h:6381999", 14, &ask, &slot, &to), 0);
	assert_int_equal(to.port, 6381);
}

static void
test_redirect_garbage(void **state)
{
	static const char *const bad[] = {
		"",
		"ERR unknown command",
		"MOVED",
		"MOVED ",
		"MOVED 3999",
		"MOVED 3999 ",
		"MOVED 3999 host",
		"MOVED 3999 host:",
		"MOVED 3999 host:0",
		"MOVED 3999 host:65536",
		"MOVED 3999 host:63a1",
		"MOVED 3999 host:-1",
		"MOVED 3999 host :6381",
		"MOVED 3999 a b:6381",
		"MOVED 16384 host:6381",
		"MOVED -1 host:6381",
		"MOVED x host:6381",
		"MOVED  3999 host:6381",
		"MOVED 3999  host:6381",
		"moved 3999 host:6381",
		"ASKING 3999 host:6381",
		"TRYAGAIN Multiple keys request during rehashing of slot",
		"CLUSTERDOWN The cluster is down",
	};
	struct tally_cluster_node to = {"untouched", 1};
	char longer[400];
	uint16_t slot = 7;
	int ask = 7;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (redirect(bad[i], &ask, &slot, &to) != -EINVAL)
			fail_msg("'%s' read as a redirect", bad[i]);
	assert_int_equal(ask, 7);
	assert_int_equal(slot, 7);
	assert_string_equal(to.host, "untouched");
	assert_int_equal(to.port, 1);

	/* a host that does not fit, and one that just does */
	snprintf(longer, sizeof(longer), "MOVED 1 %0*d:6381", TALLY_CLUSTER_HOST_LEN, 0);
	assert_int_equal(redirect(longer, &ask, &slot, &to), -EINVAL);
	snprintf(longer, sizeof(longer), "MOVED 1 %0*d:6381", TALLY_CLUSTER_HOST_LEN - 1, 0);
	assert_int_equal(redirect(longer, &ask, &slot, &to), 0);
	assert_int_equal(strlen(to.host), TALLY_CLUSTER_HOST_LEN - 1);

	/* a NUL inside the counted text */
	assert_int_equal(tally_parse_redirect("MOVED 1 a\0b:6381", 16, &ask, &slot, &to), -EINVAL);
	/* cut before the port */
	assert_int_equal(tally_parse_redirect("MOVED 1 h:6381", 10, &ask, &slot, &to), -EINVAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc16_vector),   cmocka_unit_test(test_key_slots),
		cmocka_unit_test(test_shards_created), cmocka_unit_test(test_shards_failover),
		cmocka_unit_test(test_shards_lenient), cmocka_unit_test(test_slots),
		cmocka_unit_test(test_map_limits),     cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_redirect),       cmocka_unit_test(test_redirect_garbage),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
