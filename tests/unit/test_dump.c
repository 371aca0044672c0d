/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Unit tests of the fast write path: Redis DUMP payloads of a hash (checked against bytes
 * Redis 7.0.15 produced), FCALL tally_put2, and the sink's own fold (FCALL tally_swap2).
 */
#include <stdio.h>
#include <stdlib.h>

#include "test.h"
#include "tally_dump.h"
#include "tally_sink.h"

static int
unhex(const char *hex, uint8_t *out)
{
	int n = 0;

	for (; hex[0] && hex[1]; hex += 2)
		out[n++] = (uint8_t)strtoul((char[3]){hex[0], hex[1], 0}, NULL, 16);
	return n;
}

static void
test_crc64(void **state)
{
	(void)state;
	assert_true(tally_crc64(0, "123456789", 9) == 0xe9c6d914c4b8d9caULL);
	assert_true(tally_crc64(0, "", 0) == 0);
}

/* DUMP of this HSET by Redis 7.0.15 with rdbcompression no (a listpack, ints of every size). */
static const char *const pairs15[][2] = {
	{"3:count", "12345"},
	{"3:sum", "1.5"},
	{"3:min", "-7"},
	{"3:max", "100000"},
	{"3:last", "-100000000000"},
	{"3:ts", "00000001733000000123"},
	{"_applied:h:1:2:abc", "1"},
	{"x", "4095"},
	{"y", "-4096"},
	{"z", "9223372036854775807"},
	{"w", "-9223372036854775808"},
	{"v", "-0"},
	{"u", "007"},
	{"t", "8388607"},
	{"s", "-2147483648"},
};
static const char redis_dump15[] =
	"1040c0c00000001e0087333a636f756e7408f139300385333a73756d0683312e350485333a6d696e06dff9028"
	"5333a6d617806f2a086010486333a6c61737407f4001889b7e8ffffff0984333a747305943030303030303031"
	"37333330303030303031323315925f6170706c6965643a683a313a323a616263130101817802cfff02817902d"
	"00002817a02f4ffffffffffffff7f09817702f4000000000000008009817602822d3003817502833030370481"
	"7402f2ffff7f04817302f30000008005ff0a00f36d252212229e99";

static void
test_listpack_is_redis_dump(void **state)
{
	uint8_t buf[1024], want[1024];
	struct tally_dump d;
	size_t i, len;
	int n = unhex(redis_dump15, want);

	(void)state;
	tally_dump_begin(&d, buf, sizeof(buf), 15, 1);
	assert_true(d.listpack);
	for (i = 0; i < 15; i++)
		tally_dump_pair(&d, pairs15[i][0], strlen(pairs15[i][0]), pairs15[i][1],
				strlen(pairs15[i][1]));
	len = tally_dump_end(&d);
	assert_int_equal(len, n);
	assert_memory_equal(buf, want, len);

	/* announced pairs must match; a buffer too small gives 0, not a cut payload */
	tally_dump_begin(&d, buf, sizeof(buf), 2, 1);
	tally_dump_pair(&d, "a", 1, "1", 1);
	assert_int_equal(tally_dump_end(&d), 0);
	tally_dump_begin(&d, buf, 40, 15, 1);
	for (i = 0; i < 15; i++)
		tally_dump_pair(&d, pairs15[i][0], strlen(pairs15[i][0]), pairs15[i][1],
				strlen(pairs15[i][1]));
	assert_int_equal(tally_dump_end(&d), 0);
}

static void
test_plain_hash(void **state)
{
	/* type 4 (what RESTORE stores by hash-max-listpack-*), read back by Redis 7.0.15 */
	static const char want_hex[] =
		"040207333a636f756e7405313233343505333a73756d03312e350a008caff1034f2869ad";
	uint8_t buf[256], want[256];
	struct tally_dump d;
	int n = unhex(want_hex, want);

	(void)state;
	assert_false(tally_dump_small(129, 10));
	assert_false(tally_dump_small(3, 65));
	assert_true(tally_dump_small(128, 64));
	tally_dump_begin(&d, buf, sizeof(buf), 2, 0);
	tally_dump_pair(&d, "3:count", 7, "12345", 5);
	tally_dump_pair(&d, "3:sum", 5, "1.5", 3);
	assert_int_equal(tally_dump_end(&d), n);
	assert_memory_equal(buf, want, n);
}

/* A listpack or plain-hash payload read back into pairs (an independent reader). */
#define HASH_MAX 32768
struct hash {
	int n;
	const char *f[HASH_MAX], *v[HASH_MAX];
	char text[4 << 20];
	size_t used;
};

static size_t
rdb_len(const uint8_t *p, uint64_t *len)
{
	if ((p[0] >> 6) == 0) {
		*len = p[0] & 63;
		return 1;
	}
	if ((p[0] >> 6) == 1) {
		*len = ((uint64_t)(p[0] & 63) << 8) | p[1];
		return 2;
	}
	assert_int_equal(p[0], 0x80);
	*len = ((uint64_t)p[1] << 24) | ((uint64_t)p[2] << 16) | ((uint64_t)p[3] << 8) | p[4];
	return 5;
}

/* A string of the payload, NUL-terminated, into the hash's text. */
static const char *
hash_text(struct hash *h, const void *p, size_t len)
{
	char *out = h->text + h->used;

	assert_true(h->used + len + 1 <= sizeof(h->text));
	memcpy(out, p, len);
	out[len] = 0;
	h->used += len + 1;
	return out;
}

static size_t
lp_read(struct hash *h, const uint8_t *p, const char **out)
{
	char num[24];
	size_t n;
	int64_t v;

	if (p[0] < 0x80) {
		v = p[0];
		n = 1;
	} else if ((p[0] & 0xc0) == 0x80) {
		*out = hash_text(h, p + 1, p[0] & 63);
		n = 1 + (p[0] & 63);
		goto back;
	} else if ((p[0] & 0xe0) == 0xc0) {
		v = ((p[0] & 0x1f) << 8) | p[1];
		if (v >= 4096)
			v -= 8192;
		n = 2;
	} else if ((p[0] & 0xf0) == 0xe0) {
		size_t l = ((size_t)(p[0] & 15) << 8) | p[1];

		*out = hash_text(h, p + 2, l);
		n = 2 + l;
		goto back;
	} else {
		int bytes = p[0] == 0xf1 ? 2 : p[0] == 0xf2 ? 3 : p[0] == 0xf3 ? 4 : 8, i;
		uint64_t u = 0;

		assert_true(p[0] >= 0xf1 && p[0] <= 0xf4);
		for (i = 0; i < bytes; i++)
			u |= (uint64_t)p[1 + i] << (8 * i);
		if (bytes < 8 && (u >> (8 * bytes - 1)))
			u |= ~0ULL << (8 * bytes);
		v = (int64_t)u;
		n = 1 + (size_t)bytes;
	}
	snprintf(num, sizeof(num), "%lld", (long long)v);
	*out = hash_text(h, num, strlen(num));
back:
	return n + (n <= 127 ? 1 : 2);
}

static void
read_payload(const uint8_t *p, size_t len, struct hash *h)
{
	uint64_t l, pairs, i;
	size_t at = 1;

	assert_true(len > 11);
	assert_true(tally_crc64(0, p, len - 8) ==
		    ((uint64_t)p[len - 8] | (uint64_t)p[len - 7] << 8 | (uint64_t)p[len - 6] << 16 |
		     (uint64_t)p[len - 5] << 24 | (uint64_t)p[len - 4] << 32 |
		     (uint64_t)p[len - 3] << 40 | (uint64_t)p[len - 2] << 48 |
		     (uint64_t)p[len - 1] << 56));
	assert_int_equal(p[len - 10], TALLY_DUMP_RDB_VERSION);
	h->n = 0;
	h->used = 0;
	if (p[0] == 4) {
		at += rdb_len(p + at, &pairs);
		assert_true(pairs <= HASH_MAX);
		for (i = 0; i < pairs; i++, h->n++) {
			at += rdb_len(p + at, &l);
			h->f[h->n] = hash_text(h, p + at, l);
			at += l;
			at += rdb_len(p + at, &l);
			h->v[h->n] = hash_text(h, p + at, l);
			at += l;
		}
	} else {
		assert_int_equal(p[0], 16);
		at += rdb_len(p + at, &l);
		assert_int_equal(p[at] | p[at + 1] << 8, l);
		pairs = (p[at + 4] | p[at + 5] << 8) / 2;
		at += 6;
		for (i = 0; i < pairs; i++, h->n++) {
			at += lp_read(h, p + at, &h->f[h->n]);
			at += lp_read(h, p + at, &h->v[h->n]);
		}
		assert_int_equal(p[at++], 0xff);
	}
	assert_int_equal(at + 10, len);
}

static const char *
hget(const struct hash *h, const char *f)
{
	int i;

	for (i = 0; i < h->n; i++)
		if (strcmp(h->f[i], f) == 0)
			return h->v[i];
	return NULL;
}

struct call {
	int n, argc;
	char argv[40][64];
	const uint8_t *payload[TALLY_ENC_ENTRIES_PER_CALL];
	size_t plen[TALLY_ENC_ENTRIES_PER_CALL], size; /* size: every argument */
	uint8_t data[TALLY_ENC_PAYLOAD_MAX + 4096];
	struct tally_enc_ref ref;
	/* refused chunks (tally_encode_swap()): where, and why the last one was */
	int refused;
	uint32_t refused_pos[64];
	char why[256];
};

/* Keeps the last command: its short arguments as text, payloads (binary) apart. */
static void
keep(void *ctx, int argc, const char **argv, const size_t *argvlen, const struct tally_enc_ref *ref)
{
	struct call *c = ctx;
	size_t used = 0;
	int i, np = 0;

	c->n++;
	c->argc = argc;
	c->ref = ref ? *ref : (struct tally_enc_ref){0};
	c->size = 0;
	for (i = 0; i < argc; i++) {
		c->size += argvlen[i];
		if (argvlen[i] < 64 && memchr(argv[i], 0, argvlen[i]) == NULL && i < 40) {
			memcpy(c->argv[i], argv[i], argvlen[i]);
			c->argv[i][argvlen[i]] = 0;
		} else {
			assert_true(np < TALLY_ENC_ENTRIES_PER_CALL &&
				    used + argvlen[i] <= sizeof(c->data));
			memcpy(c->data + used, argv[i], argvlen[i]);
			c->payload[np] = c->data + used;
			c->plen[np++] = argvlen[i];
			used += argvlen[i];
			if (i < 40)
				strcpy(c->argv[i], "<payload>");
		}
	}
}

static void
refused(void *ctx, uint32_t pos, const char *why, size_t whylen)
{
	struct call *c = ctx;

	assert_true(c->refused < 64 && whylen < sizeof(c->why));
	c->refused_pos[c->refused++] = pos;
	memcpy(c->why, why, whylen);
	c->why[whylen] = 0;
}

static void
test_put(void **state)
{
	static struct tally_encoder e;
	static struct call c;
	static struct hash h;
	void *raw;
	struct tally_table *t = test_table_new(256, &raw);
	uint32_t pos = 0;

	(void)state;
	tally_table_add(t, 7, tally_hash_device(7), 3, 1, 0.1, 42);
	tally_table_add(t, 7, tally_hash_device(7), 3, 1, 2.5, 41);
	tally_table_add(t, 7, tally_hash_device(7), 9, 1, -4, 7);
	tally_table_add(t, 8, tally_hash_device(8), 1, 1, 4, 9);
	tally_table_sort(t);
	assert_int_equal(tally_encode_put(&e, t, &pos, 60000, 3600, "east:1700", 0, keep, &c), 2);
	assert_int_equal(pos, t->series);
	assert_int_equal(c.n, 1);
	assert_int_equal(c.argc, 3 + 4 + 2 + 2);
	assert_string_equal(c.argv[0], "FCALL");
	assert_string_equal(c.argv[1], "tally_put2");
	assert_string_equal(c.argv[2], "4");
	assert_string_equal(c.argv[3], "tally:{7}:60000");
	assert_string_equal(c.argv[4], "tally:{7}:latest");
	assert_string_equal(c.argv[5], "tally:{8}:60000");
	assert_string_equal(c.argv[7], "3600");
	assert_string_equal(c.argv[8], "60000");
	assert_int_equal(c.ref.first, 0);
	assert_int_equal(c.ref.entries, 2);
	assert_int_equal(c.ref.chunks, 2);

	/* device 7: both metrics and the applied mark, as tally_merge2 would have written them */
	read_payload(c.payload[0], c.plen[0], &h);
	assert_int_equal(h.n, 13);
	assert_string_equal(h.f[0], "3:count");
	assert_string_equal(h.v[0], "2");
	assert_string_equal(hget(&h, "3:sum"), "2.6000000000000001");
	assert_string_equal(hget(&h, "3:min"), "0.10000000000000001");
	assert_string_equal(hget(&h, "3:max"), "2.5");
	assert_string_equal(hget(&h, "3:last"), "0.10000000000000001"); /* the newer one (42) */
	assert_string_equal(hget(&h, "3:ts"), "00000000000000000042");
	assert_string_equal(hget(&h, "9:min"), "-4");
	assert_string_equal(h.f[12], "_applied:east:1700");
	assert_string_equal(h.v[12], "1");
	read_payload(c.payload[1], c.plen[1], &h);
	assert_int_equal(h.n, 7);
	assert_string_equal(hget(&h, "1:last"), "4");

	/* one device per call in a cluster */
	pos = 0;
	c.n = 0;
	assert_int_equal(tally_encode_put(&e, t, &pos, 60000, 3600, "east:1700", 1, keep, &c), 1);
	assert_int_equal(pos, 2);
	test_table_free(raw);
}

/* A device of n metrics (ids from m0 on, step), each one value at time ts. */
static void
add_device(struct tally_table *t, uint64_t dev, uint32_t n, uint32_t m0, uint32_t step, int floats)
{
	uint32_t m;

	for (m = 0; m < n; m++) {
		/* floats: 24 characters each, the longest %.17g prints */
		double v = floats ? -1.2345678901234567e-300 * (m + 1) : (double)m;

		tally_table_add(t, dev, tally_hash_device(dev), m0 + m * step, 1, v, 1000 + m);
	}
}

/* The fields of series i of a payload that holds a device's series in order, as written. */
static void
check_series(const struct hash *h, int i, uint32_t metric, double v, uint64_t ts)
{
	char want[6][32], f[32];
	static const char *const sfx[6] = {"count", "sum", "min", "max", "last", "ts"};
	int j;

	snprintf(want[0], 32, "1");
	for (j = 1; j < 5; j++)
		tally_fmt_double(want[j], 32, v);
	snprintf(want[5], 32, "%020llu", (unsigned long long)ts);
	for (j = 0; j < 6; j++) {
		snprintf(f, sizeof(f), "%u:%s", metric, sfx[j]);
		assert_string_equal(h->f[6 * i + j], f);
		assert_string_equal(h->v[6 * i + j], want[j]);
	}
}

static void
test_put_chunks(void **state)
{
	static struct tally_encoder e;
	static struct call c;
	static struct hash h;
	void *raw;
	struct tally_table *t = test_table_new(1024, &raw);
	uint32_t pos = 0, m;
	char mark[32];

	(void)state;
	/* 300 metrics: five chunks, one payload, every chunk's mark; then a device of 70 */
	add_device(t, 5, 300, 1, 1, 0);
	add_device(t, 6, 70, 1, 1, 0);
	tally_table_sort(t);
	assert_int_equal(tally_encode_put(&e, t, &pos, 0, 60, "p", 0, keep, &c), 2);
	assert_int_equal(pos, 370);
	assert_int_equal(c.n, 1);
	assert_string_equal(c.argv[2], "4");
	assert_string_equal(c.argv[3], "tally:{5}:0");
	assert_string_equal(c.argv[5], "tally:{6}:0");
	assert_int_equal(c.ref.entries, 2);
	assert_int_equal(c.ref.chunks, 5 + 2);
	assert_int_equal(c.payload[0][0], 4); /* a plain hash: too many pairs for a listpack */
	read_payload(c.payload[0], c.plen[0], &h);
	assert_int_equal(h.n, 300 * 6 + 5);
	for (m = 0; m < 300; m++)
		check_series(&h, (int)m, m + 1, m, 1000 + m);
	/* the marks tally_merge2 would have left chunk by chunk: 0 has no suffix */
	assert_string_equal(h.f[1800], "_applied:p");
	for (m = 1; m < 5; m++) {
		snprintf(mark, sizeof(mark), "_applied:p:%u", m);
		assert_string_equal(h.f[1800 + m], mark);
		assert_string_equal(h.v[1800 + m], "1");
	}
	read_payload(c.payload[1], c.plen[1], &h);
	assert_int_equal(h.n, 70 * 6 + 2);
	assert_string_equal(h.f[420], "_applied:p");
	assert_string_equal(h.f[421], "_applied:p:1");
	assert_string_equal(hget(&h, "70:count"), "1");

	/* one device per call (a cluster) */
	pos = 0;
	c.n = 0;
	assert_int_equal(tally_encode_put(&e, t, &pos, 0, 60, "p", 1, keep, &c), 1);
	assert_int_equal(pos, 300);
	assert_int_equal(c.ref.chunks, 5);
	test_table_free(raw);
}

static void
test_put_big_device(void **state)
{
	static struct tally_encoder e;
	static struct call c;
	static struct hash h;
	void *raw;
	struct tally_table *t = test_table_new(16384, &raw);
	uint32_t pos = 0, m;
	char mark[32];

	(void)state;
	/* 4,092 metrics (a jumbo datagram's worth): 64 chunks, still one payload */
	add_device(t, 9, 4092, 1, 1, 0);
	tally_table_sort(t);
	assert_int_equal(tally_encode_put(&e, t, &pos, 0, 60, "p", 0, keep, &c), 1);
	assert_int_equal(pos, 4092);
	assert_int_equal(c.ref.entries, 1);
	assert_int_equal(c.ref.chunks, 64);
	assert_true(c.size <= TALLY_ENC_PAYLOAD_MAX);
	read_payload(c.payload[0], c.plen[0], &h);
	assert_int_equal(h.n, 4092 * 6 + 64);
	for (m = 0; m < 4092; m++)
		check_series(&h, (int)m, m + 1, m, 1000 + m);
	for (m = 0; m < 64; m++) {
		snprintf(mark, sizeof(mark), m ? "_applied:p:%u" : "_applied:p", m);
		assert_string_equal(h.f[4092 * 6 + m], mark);
	}

	/*
	 * The worst texts (4,097 counters of 10-digit ids, doubles that print 24 characters, a
	 * rate, the longest partial id): parts of whole chunks, each within one payload, as many
	 * chunks as fit, every chunk once and in order.
	 */
	tally_table_reset(t);
	add_device(t, 10, 4097, 4000000000u, 60000, 1);
	tally_table_sort(t);
	pos = 0;
	tally_enc_window(&e, 1000);
	{
		char id[TALLY_ENC_ID_LEN];
		uint32_t chunks = 0, calls = 0, first;

		memset(id, 'x', sizeof(id) - 1);
		id[sizeof(id) - 1] = 0;
		while (pos < 4097) {
			first = pos;
			assert_int_equal(tally_encode_put(&e, t, &pos, 0, 60, id, 0, keep, &c), 1);
			assert_true(c.plen[0] <= TALLY_ENC_PAYLOAD_MAX);
			assert_int_equal(c.ref.first, first);
			read_payload(c.payload[0], c.plen[0], &h);
			/* 7 fields a counter (with its rate), a mark a chunk */
			assert_int_equal(h.n, (pos - first) * 7 + c.ref.chunks);
			assert_int_equal((pos - first + 63) / 64, c.ref.chunks);
			chunks += c.ref.chunks;
			calls++;
		}
		assert_int_equal(pos, 4097);
		assert_int_equal(chunks, 65);
		assert_true(calls >= 2);
		/* the last part ends with the mark of chunk 64 */
		assert_string_equal(h.f[h.n - 1] + strlen(h.f[h.n - 1]) - 3, ":64");
	}
	tally_enc_window(&e, 0);
	test_table_free(raw);
}

/* Fold the part at pos into a view of these pairs. */
static int
fold_at(struct tally_encoder *e, struct tally_table *t, uint32_t pos, const char *const *old,
	uint32_t n, struct call *c)
{
	static const char *f[HASH_MAX], *v[HASH_MAX];
	static size_t fl[HASH_MAX], vl[HASH_MAX];
	struct tally_hash_view view = {n, f, fl, v, vl};
	uint32_t i;

	for (i = 0; i < n; i++) {
		f[i] = old[2 * i];
		v[i] = old[2 * i + 1];
		fl[i] = strlen(f[i]);
		vl[i] = strlen(v[i]);
	}
	c->n = 0;
	c->refused = 0;
	return tally_encode_swap(e, t, pos, 60000, 3600, "b", &view, refused, keep, c);
}

static int
fold(struct tally_encoder *e, struct tally_table *t, const char *const (*old)[2], uint32_t n,
     struct call *c)
{
	return fold_at(e, t, 0, &old[0][0], n, c);
}

static void
test_swap(void **state)
{
	static struct tally_encoder e;
	static struct call c;
	static struct hash h;
	static const char *const old[][2] = {
		{"3:count", "5"},    {"3:sum", "1.5"}, {"3:min", "-1"},
		{"3:max", "1"},	     {"3:last", "9"},  {"3:ts", "00000000000000000050"},
		{"4:count", "1"},    {"4:sum", "1"},   {"other", "kept"},
		{"_applied:a", "1"},
	};
	static const char *const applied[][2] = {{"3:count", "5"}, {"_applied:b", "1"}};
	static const char *const nan[][2] = {{"3:count", "many"}, {"3:sum", "1"}};
	static const char *const nan_min[][2] = {{"3:count", "1"}, {"3:min", "x"}};
	void *raw;
	struct tally_table *t = test_table_new(64, &raw);

	(void)state;
	tally_table_add(t, 7, tally_hash_device(7), 3, 2, 0.25, 40); /* kind 2; older than 50 */
	tally_table_add(t, 7, tally_hash_device(7), 3, 1, 7, 30);
	tally_table_add(t, 7, tally_hash_device(7), 9, 1, -4, 7); /* not in the key yet */
	tally_table_sort(t);
	assert_int_equal(fold(&e, t, old, 10, &c), TALLY_FOLD_SENT);
	assert_int_equal(c.n, 1);
	assert_string_equal(c.argv[1], "tally_swap2");
	assert_string_equal(c.argv[2], "2");
	assert_string_equal(c.argv[3], "tally:{7}:60000");
	assert_string_equal(c.argv[4], "tally:{7}:latest");
	assert_string_equal(c.argv[5], "3600");
	assert_string_equal(c.argv[6], "60000");
	assert_string_equal(c.argv[7], "_applied:b");
	assert_string_equal(c.argv[8], "10"); /* the fields it had when read */
	assert_int_equal(c.ref.entries, 1);
	assert_int_equal(c.ref.chunks, 1);
	read_payload(c.payload[0], c.plen[0], &h);
	assert_int_equal(h.n, 10 + 6 + 1);
	/* what was there stays in place, folded */
	assert_string_equal(h.f[0], "3:count");
	assert_string_equal(h.v[0], "7");    /* 5 + 2 records */
	assert_string_equal(h.v[1], "8.75"); /* 1.5 + 0.25 + 7 */
	assert_string_equal(h.v[2], "-1");   /* min kept */
	assert_string_equal(h.v[3], "7");    /* max: ours */
	assert_string_equal(h.v[4], "9");    /* last: the stored one is newer */
	assert_string_equal(h.v[5], "00000000000000000050");
	assert_string_equal(h.f[6], "4:count"); /* another metric untouched */
	assert_string_equal(h.v[6], "1");
	assert_string_equal(h.f[8], "other");
	assert_string_equal(h.v[8], "kept");
	assert_string_equal(h.f[9], "_applied:a");
	/* the new metric, then the mark */
	assert_string_equal(h.f[10], "9:count");
	assert_string_equal(hget(&h, "9:last"), "-4");
	assert_string_equal(hget(&h, "9:ts"), "00000000000000000007");
	assert_string_equal(h.f[16], "_applied:b");

	assert_int_equal(fold(&e, t, applied, 2, &c), TALLY_FOLD_NONE);
	assert_int_equal(c.n, 0);
	assert_int_equal(c.refused, 0);
	assert_int_equal(fold(&e, t, nan, 2, &c), TALLY_FOLD_NONE);
	assert_int_equal(c.n, 0);
	assert_int_equal(c.refused, 1);
	assert_int_equal(c.refused_pos[0], 0);
	assert_string_equal(c.why, "tally: tally:{7}:60000 field 3:count is not a number: many");
	assert_int_equal(fold(&e, t, nan_min, 2, &c), TALLY_FOLD_NONE);
	assert_string_equal(c.why, "tally: tally:{7}:60000 field 3:min is not a number: x");
	test_table_free(raw);
}

/* Fold the part at pos into a key read back from a payload. */
static int
fold_hash(struct tally_encoder *e, struct tally_table *t, uint32_t pos, const struct hash *old,
	  struct call *c)
{
	static const char *pairs[2 * HASH_MAX];
	int i;

	for (i = 0; i < old->n; i++) {
		pairs[2 * i] = old->f[i];
		pairs[2 * i + 1] = old->v[i];
	}
	return fold_at(e, t, pos, pairs, (uint32_t)old->n, c);
}

static void
test_swap_part(void **state)
{
	static struct tally_encoder e;
	static struct call c;
	static struct hash h, old;
	static const char *const all[] = {
		"_applied:b",	"1", "_applied:b:1", "1", "_applied:b:2", "1",
		"_applied:b:3", "1", "_applied:b:4", "1",
	};
	void *raw;
	struct tally_table *t = test_table_new(1024, &raw);
	uint32_t m, n0;
	char f[32];

	(void)state;
	/* 300 metrics, ids 1..300: chunks 0 (1-64), 1 (65-128), 2, 3 (193-256), 4 (257-300) */
	add_device(t, 7, 300, 1, 1, 0);
	tally_table_sort(t);
	/*
	 * A key a previous run of this partial left half written (chunks 0 and 2 marked, as the
	 * previous version wrote them chunk by chunk), another writer's metric 65, and a value
	 * that is not a number in chunk 3.
	 */
	old.n = 0;
	old.used = 0;
	for (m = 1; m <= 64; m++) {
		snprintf(f, sizeof(f), "%u:count", m);
		old.f[old.n] = hash_text(&old, f, strlen(f));
		old.v[old.n++] = "1";
	}
	{
		static const char *const rest[][2] = {
			{"_applied:b", "1"},
			{"130:count", "1"},
			{"_applied:b:2", "1"},
			{"65:count", "10"},
			{"65:sum", "100"},
			{"65:min", "-5"},
			{"65:max", "1e9"},
			{"65:last", "7"},
			{"65:ts", "99999999999999999999"},
			{"200:count", "bad"},
			{"_applied:bb:1", "1"},
			{"_applied:b:01", "1"},
			{"other", "kept"},
		};

		for (m = 0; m < sizeof(rest) / sizeof(rest[0]); m++) {
			old.f[old.n] = rest[m][0];
			old.v[old.n++] = rest[m][1];
		}
	}
	n0 = (uint32_t)old.n;
	assert_int_equal(fold_hash(&e, t, 0, &old, &c), TALLY_FOLD_SENT);
	/* chunk 3 is refused alone, with the key and the field */
	assert_int_equal(c.refused, 1);
	assert_int_equal(c.refused_pos[0], 192);
	assert_string_equal(c.why, "tally: tally:{7}:60000 field 200:count is not a number: bad");
	/* one swap for the part, checking the first chunk it folds, and the fields it read */
	assert_int_equal(c.n, 1);
	assert_string_equal(c.argv[1], "tally_swap2");
	assert_string_equal(c.argv[7], "_applied:b:1");
	snprintf(f, sizeof(f), "%u", n0);
	assert_string_equal(c.argv[8], f);
	assert_int_equal(c.ref.first, 0);
	assert_int_equal(c.ref.entries, 1);
	assert_int_equal(c.ref.chunks, 5);
	read_payload(c.payload[0], c.plen[0], &h);
	/* old's fields, chunk 1's 63 new metrics and chunk 4's 44, the marks of chunks 1 and 4 */
	assert_int_equal(h.n, (int)n0 + (63 + 44) * 6 + 2);
	for (m = 0; m < n0; m++)
		assert_string_equal(h.f[m], old.f[m]);
	assert_string_equal(h.v[0], "1");		 /* chunk 0: applied, as it was */
	assert_string_equal(hget(&h, "130:count"), "1"); /* chunk 2: the same */
	assert_null(hget(&h, "130:sum"));
	assert_string_equal(hget(&h, "65:count"), "11");   /* 10 + 1 */
	assert_string_equal(hget(&h, "65:sum"), "164");	   /* 100 + 64 */
	assert_string_equal(hget(&h, "65:min"), "-5");	   /* kept */
	assert_string_equal(hget(&h, "65:max"), "1e9");	   /* kept as the text it was */
	assert_string_equal(hget(&h, "65:last"), "7");	   /* the stored one is newer */
	assert_string_equal(hget(&h, "200:count"), "bad"); /* chunk 3 untouched */
	assert_null(hget(&h, "201:count"));
	assert_string_equal(hget(&h, "66:sum"), "65");
	assert_string_equal(hget(&h, "300:ts"), "00000000000000001299");
	assert_string_equal(hget(&h, "other"), "kept");
	assert_string_equal(h.f[h.n - 2], "_applied:b:1");
	assert_string_equal(h.f[h.n - 1], "_applied:b:4");
	assert_null(hget(&h, "_applied:b:3"));

	/* every chunk applied: nothing to send */
	assert_int_equal(fold_at(&e, t, 0, all, 5, &c), TALLY_FOLD_NONE);
	assert_int_equal(c.n, 0);
	assert_int_equal(c.refused, 0);
	/* a part of chunks 1..4 only (a fold starting there) reads chunk 0's mark as not its own */
	assert_int_equal(fold_at(&e, t, 64, all, 1, &c), TALLY_FOLD_SENT);
	assert_string_equal(c.argv[7], "_applied:b:1");
	assert_int_equal(c.ref.chunks, 4);
	test_table_free(raw);
}

static void
test_swap_big_device(void **state)
{
	static struct tally_encoder e;
	static struct call c;
	static struct hash h, old;
	void *raw;
	struct tally_table *t = test_table_new(8192, &raw);
	uint32_t pos = 0, m;
	char f[32];

	(void)state;
	/* a second instance folds its 4,092 metrics into the first one's: one read, one swap */
	add_device(t, 9, 4092, 1, 1, 0);
	tally_table_sort(t);
	assert_int_equal(tally_encode_put(&e, t, &pos, 60000, 3600, "a", 0, keep, &c), 1);
	read_payload(c.payload[0], c.plen[0], &old);
	assert_int_equal(fold_hash(&e, t, 0, &old, &c), TALLY_FOLD_SENT);
	assert_int_equal(c.n, 1);
	assert_int_equal(c.ref.chunks, 64);
	assert_string_equal(c.argv[7], "_applied:b");
	assert_true(c.plen[0] <= TALLY_ENC_PAYLOAD_MAX);
	read_payload(c.payload[0], c.plen[0], &h);
	assert_int_equal(h.n, old.n + 64);
	for (m = 0; m < 4092; m++) {
		snprintf(f, sizeof(f), "%u", 2 * m);
		assert_string_equal(h.v[6 * m], "2");
		assert_string_equal(h.v[6 * m + 1], f);
	}
	assert_string_equal(h.f[old.n], "_applied:b");
	assert_string_equal(h.f[old.n + 63], "_applied:b:63");
	/* the folded key read back: every chunk applied */
	assert_int_equal(fold_hash(&e, t, 0, &h, &c), TALLY_FOLD_NONE);
	assert_int_equal(c.n, 0);
	test_table_free(raw);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc64),
		cmocka_unit_test(test_listpack_is_redis_dump),
		cmocka_unit_test(test_plain_hash),
		cmocka_unit_test(test_put),
		cmocka_unit_test(test_put_chunks),
		cmocka_unit_test(test_put_big_device),
		cmocka_unit_test(test_swap),
		cmocka_unit_test(test_swap_part),
		cmocka_unit_test(test_swap_big_device),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
