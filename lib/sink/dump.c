/* SPDX-License-Identifier: BSD-3-Clause */
/* Redis DUMP payloads of a hash (see tally_dump.h). */
#include <string.h>

#include "tally_dump.h"

#define RDB_TYPE_HASH 4
#define RDB_TYPE_HASH_LISTPACK 16
#define LP_HDR 6 /* total bytes (u32 le) + elements (u16 le) */
#define LP_END 0xff
#define HDR_MAX (1 + 5 + LP_HDR) /* type, the longest RDB length, the listpack header */

static uint64_t crc_tab[256];

static void __attribute__((constructor)) crc_init(void)
{
	const uint64_t poly = 0x95ac9329ac4bc9b5ULL; /* 0xad93d23594c935a9 reflected */
	unsigned int i, k;

	for (i = 0; i < 256; i++) {
		uint64_t c = i;

		for (k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ poly : c >> 1;
		crc_tab[i] = c;
	}
}

uint64_t
tally_crc64(uint64_t crc, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n--)
		crc = crc_tab[(crc ^ *b++) & 0xff] ^ (crc >> 8);
	return crc;
}

static int
room(struct tally_dump *d, size_t n)
{
	if (d->overflow || d->len + n > d->cap) {
		d->overflow = 1;
		return 0;
	}
	return 1;
}

static void
put_le(uint8_t *at, uint64_t v, unsigned int bytes)
{
	unsigned int i;

	for (i = 0; i < bytes; i++)
		at[i] = (uint8_t)(v >> (8 * i));
}

/* Redis's length encoding (rdbSaveLen): 6, 14 or 32 bits, big-endian. Returns its size. */
static size_t
rdb_len(uint8_t *at, uint64_t n)
{
	if (n < 64) {
		at[0] = (uint8_t)n;
		return 1;
	}
	if (n < 16384) {
		at[0] = (uint8_t)(0x40 | (n >> 8));
		at[1] = (uint8_t)n;
		return 2;
	}
	at[0] = 0x80;
	at[1] = (uint8_t)(n >> 24);
	at[2] = (uint8_t)(n >> 16);
	at[3] = (uint8_t)(n >> 8);
	at[4] = (uint8_t)n;
	return 5;
}

/* A string listpack stores as an integer (lpStringToInt64: canonical decimal, int64). */
static int
lp_int(const char *s, size_t len, int64_t *out)
{
	uint64_t v = 0, lim;
	size_t i = 0;
	int neg = 0;

	if (len == 0 || len > 20)
		return 0;
	if (len == 1 && s[0] == '0') {
		*out = 0;
		return 1;
	}
	if (s[0] == '-') {
		neg = 1;
		i = 1;
		if (len == 1)
			return 0;
	}
	if (s[i] < '1' || s[i] > '9')
		return 0;
	lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 0;
		if (v > (lim - (uint64_t)(s[i] - '0')) / 10)
			return 0;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return 1;
}

/* The back-length of an entry of l bytes (lpEncodeBacklen): 7 bits a byte. */
static size_t
lp_backlen(uint8_t *at, uint64_t l)
{
	size_t n = l <= 127 ? 1 : l < 16383 ? 2 : l < 2097151 ? 3 : l < 268435455 ? 4 : 5, i;

	for (i = 0; i < n; i++) {
		at[i] = (uint8_t)((l >> (7 * (n - 1 - i))) & 127);
		if (i > 0)
			at[i] |= 128;
	}
	return n;
}

static void
lp_entry(struct tally_dump *d, const char *s, size_t len)
{
	uint8_t *at;
	size_t n;
	int64_t v;

	if (!room(d, len + 16))
		return;
	at = d->buf + d->len;
	if (lp_int(s, len, &v)) {
		uint64_t u = (uint64_t)v;

		if (v >= 0 && v <= 127) {
			at[0] = (uint8_t)v;
			n = 1;
		} else if (v >= -4096 && v <= 4095) {
			at[0] = (uint8_t)(0xc0 | ((u >> 8) & 0x1f));
			at[1] = (uint8_t)u;
			n = 2;
		} else if (v >= -32768 && v <= 32767) {
			at[0] = 0xf1;
			put_le(at + 1, u, 2);
			n = 3;
		} else if (v >= -8388608 && v <= 8388607) {
			at[0] = 0xf2;
			put_le(at + 1, u, 3);
			n = 4;
		} else if (v >= INT32_MIN && v <= INT32_MAX) {
			at[0] = 0xf3;
			put_le(at + 1, u, 4);
			n = 5;
		} else {
			at[0] = 0xf4;
			put_le(at + 1, u, 8);
			n = 9;
		}
	} else if (len < 64) {
		at[0] = (uint8_t)(0x80 | len);
		memcpy(at + 1, s, len);
		n = 1 + len;
	} else if (len < 4096) {
		at[0] = (uint8_t)(0xe0 | (len >> 8));
		at[1] = (uint8_t)len;
		memcpy(at + 2, s, len);
		n = 2 + len;
	} else {
		at[0] = 0xf0;
		put_le(at + 1, len, 4);
		memcpy(at + 5, s, len);
		n = 5 + len;
	}
	n += lp_backlen(at + n, n);
	d->len += n;
}

static void
raw_string(struct tally_dump *d, const char *s, size_t len)
{
	if (!room(d, len + 5))
		return;
	d->len += rdb_len(d->buf + d->len, len);
	memcpy(d->buf + d->len, s, len);
	d->len += len;
}

void
tally_dump_begin(struct tally_dump *d, void *buf, size_t cap, uint32_t pairs, int listpack)
{
	d->buf = buf;
	d->cap = cap;
	d->pairs = pairs;
	d->added = 0;
	d->listpack = listpack && tally_dump_small(pairs, 0);
	d->overflow = cap < HDR_MAX + 16;
	if (d->overflow)
		return;
	if (d->listpack) {
		d->len = HDR_MAX; /* the type, length and header are written at the end */
	} else {
		d->buf[0] = RDB_TYPE_HASH;
		d->len = 1 + rdb_len(d->buf + 1, pairs);
	}
}

void
tally_dump_pair(struct tally_dump *d, const char *field, size_t flen, const char *value,
		size_t vlen)
{
	d->added++;
	if (d->listpack) {
		lp_entry(d, field, flen);
		lp_entry(d, value, vlen);
	} else {
		raw_string(d, field, flen);
		raw_string(d, value, vlen);
	}
}

size_t
tally_dump_end(struct tally_dump *d)
{
	uint64_t crc;

	if (d->added != d->pairs || !room(d, 1 + 2 + 8))
		return 0;
	if (d->listpack) {
		size_t lp = d->len - HDR_MAX + LP_HDR + 1, hl;
		uint8_t hdr[HDR_MAX];

		d->buf[d->len++] = LP_END;
		hdr[0] = RDB_TYPE_HASH_LISTPACK;
		hl = 1 + rdb_len(hdr + 1, lp);
		put_le(hdr + hl, lp, 4);
		put_le(hdr + hl + 4, 2 * d->pairs, 2);
		hl += LP_HDR;
		memmove(d->buf + hl, d->buf + HDR_MAX, d->len - HDR_MAX);
		memcpy(d->buf, hdr, hl);
		d->len -= HDR_MAX - hl;
	}
	put_le(d->buf + d->len, TALLY_DUMP_RDB_VERSION, 2);
	d->len += 2;
	crc = tally_crc64(0, d->buf, d->len);
	put_le(d->buf + d->len, crc, 8);
	d->len += 8;
	return d->len;
}
