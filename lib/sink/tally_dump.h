/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Redis DUMP payloads of a hash, built by the sink so a whole window key is written with one
 * RESTORE instead of an HSET of every field through Lua. The format is Redis's own (rdb.c,
 * listpack.c): an object type byte, the object, the RDB version (2 bytes, little-endian) and
 * the CRC-64/Jones of all of it (8 bytes, little-endian). A small hash is a listpack (type
 * 16, Redis >= 7.0), byte for byte what DUMP of the same HSET returns with rdbcompression
 * off; a larger one the plain field/value list (type 4), which Redis stores by its own
 * hash-max-listpack-* settings.
 */
#ifndef TALLY_DUMP_H
#define TALLY_DUMP_H

#include <stddef.h>
#include <stdint.h>

#define TALLY_DUMP_RDB_VERSION 10	/* Redis 7.0's; later versions read it */
#define TALLY_DUMP_LISTPACK_ENTRIES 128 /* Redis's default hash-max-listpack-entries (pairs) */
#define TALLY_DUMP_LISTPACK_VALUE 64	/* ... and hash-max-listpack-value */

/* CRC-64/Jones as Redis computes it (reflected, init 0): crc64(0, "123456789") 0xe9c6d914c4b8d9ca.
 */
uint64_t tally_crc64(uint64_t crc, const void *p, size_t n);

struct tally_dump {
	uint8_t *buf;
	size_t cap, len;
	uint32_t pairs; /* announced at begin */
	uint32_t added;
	int listpack;
	int overflow; /* buf was too small: tally_dump_end() returns 0 */
};

/* Whether a hash of pairs field/value pairs, no string longer than longest, is a listpack. */
static inline int
tally_dump_small(uint32_t pairs, size_t longest)
{
	return pairs <= TALLY_DUMP_LISTPACK_ENTRIES &&
	       longest <= TALLY_DUMP_LISTPACK_VALUE;
}

/* Start the payload of a hash of exactly `pairs` pairs in buf (listpack or plain list). */
void tally_dump_begin(struct tally_dump *d, void *buf, size_t cap, uint32_t pairs, int listpack);

/* One field and its value (no field twice: Redis does not check a RESTORE for duplicates). */
void tally_dump_pair(struct tally_dump *d, const char *field, size_t flen, const char *value,
		     size_t vlen);

/* Finish: the payload's length, or 0 when it did not fit or pairs were not as announced. */
size_t tally_dump_end(struct tally_dump *d);

#endif /* TALLY_DUMP_H */
