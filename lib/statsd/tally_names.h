/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The names of statsd series and devices, kept by the sink thread: a series' fields in Redis
 * are named by its text (`api.latency{env:prod}:count`), a device's name goes to
 * tally:devices. Sized at start (a bound on names and on their bytes); single-threaded.
 */
#ifndef TALLY_NAMES_H
#define TALLY_NAMES_H

#include <stddef.h>
#include <stdint.h>

/*
 * Keys: a series by its metric id (below 2^32), a device by its id (2^63 and up, see
 * TALLY_STATSD_DEVICE_BIT): the two never meet.
 */
struct tally_names {
	uint32_t *place; /* open addressing: an entry's arena offset / 8 + 1, 0 empty */
	uint32_t mask;
	uint8_t *arena;	 /* entries in the order they came: key, length, text, 8-aligned */
	size_t arena_cap;
	size_t arena_used;
	uint32_t count;
	uint32_t max;
	size_t written; /* arena offset of the first entry not yet handed to Redis */
	uint64_t full;	/* names not kept: max or the arena reached */
	uint64_t other; /* a key already named by another text (kept the first) */
};

/* Memory for at most max names of arena bytes in all (text and 16 bytes each). */
size_t tally_names_memsize(uint32_t max, size_t arena);

/* Set up n over mem (tally_names_memsize() bytes, zeroed or not). 0, or -EINVAL. */
int tally_names_init(struct tally_names *n, void *mem, uint32_t max, size_t arena);

/* Forget every name (the memory stays). */
void tally_names_clear(struct tally_names *n);

/*
 * Keep key's name: 1 new, 0 known with this text, -1 known with another text (counted in
 * other, the first kept), -2 no room (counted in full).
 */
int tally_names_add(struct tally_names *n, uint64_t key, const char *text, uint16_t len);

/*
 * key's name and its length, or NULL; only a name kept while arena_used was below upto
 * (SIZE_MAX: any), so a window being written sees the names it started with, whatever
 * comes meanwhile.
 */
const char *tally_names_find(const struct tally_names *n, uint64_t key, size_t upto,
			     uint16_t *len);

/*
 * The next name not yet handed to Redis (in the order they came): 1 and *key, *text, *len,
 * or 0 when all were. tally_names_written() marks it handed.
 */
int tally_names_next(const struct tally_names *n, uint64_t *key, const char **text,
		     uint16_t *len);
void tally_names_written(struct tally_names *n);

/* Hand every name to Redis again (a Redis that restarted empty, say). */
void tally_names_rewrite(struct tally_names *n);

#endif /* TALLY_NAMES_H */
