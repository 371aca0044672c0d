/* SPDX-License-Identifier: BSD-3-Clause */
/* Names of statsd series and devices: an open-addressed index over an append-only arena. */
#include <errno.h>
#include <string.h>

#include "tally_names.h"
#include "tally_statsd.h"

#define ENTRY_HDR 10 /* u64 key, u16 length, then the text */

size_t
tally_names_memsize(uint32_t max, size_t arena)
{
	return (size_t)tally_statsd_places(max) * sizeof(uint32_t) + ((arena + 7) & ~(size_t)7);
}

int
tally_names_init(struct tally_names *n, void *mem, uint32_t max, size_t arena)
{
	uint32_t places;

	/* offsets are kept / 8 in 32 bits */
	if (mem == NULL || max == 0 || max > (1u << 28) || arena > (1ull << 34))
		return -EINVAL;
	places = tally_statsd_places(max);
	memset(n, 0, sizeof(*n));
	n->place = mem;
	n->mask = places - 1;
	n->arena = (uint8_t *)mem + (size_t)places * sizeof(uint32_t);
	n->arena_cap = arena & ~(size_t)7;
	n->max = max;
	tally_names_clear(n);
	return 0;
}

void
tally_names_clear(struct tally_names *n)
{
	memset(n->place, 0, ((size_t)n->mask + 1) * sizeof(uint32_t));
	n->arena_used = 0;
	n->count = 0;
	n->written = 0;
}

static inline uint32_t
home(const struct tally_names *n, uint64_t key)
{
	key *= 0x9e3779b97f4a7c15ull;
	return (uint32_t)(key >> 32) & n->mask;
}

static inline uint64_t
entry_key(const uint8_t *e)
{
	uint64_t k;

	memcpy(&k, e, sizeof(k));
	return k;
}

static inline uint16_t
entry_len(const uint8_t *e)
{
	uint16_t l;

	memcpy(&l, e + 8, sizeof(l));
	return l;
}

static inline size_t
entry_size(uint16_t len)
{
	return (ENTRY_HDR + (size_t)len + 7) & ~(size_t)7;
}

/* The place of key, or of the empty place where it would go. */
static uint32_t
probe(const struct tally_names *n, uint64_t key)
{
	uint32_t i = home(n, key);

	while (n->place[i] != 0 && entry_key(n->arena + ((size_t)n->place[i] - 1) * 8) != key)
		i = (i + 1) & n->mask;
	return i;
}

int
tally_names_add(struct tally_names *n, uint64_t key, const char *text, uint16_t len)
{
	uint32_t i = probe(n, key);
	uint8_t *e;

	if (n->place[i] != 0) {
		e = n->arena + ((size_t)n->place[i] - 1) * 8;
		if (entry_len(e) == len && memcmp(e + ENTRY_HDR, text, len) == 0)
			return 0;
		n->other++;
		return -1;
	}
	if (n->count >= n->max || n->arena_used + entry_size(len) > n->arena_cap) {
		n->full++;
		return -2;
	}
	e = n->arena + n->arena_used;
	memcpy(e, &key, sizeof(key));
	memcpy(e + 8, &len, sizeof(len));
	memcpy(e + ENTRY_HDR, text, len);
	n->place[i] = (uint32_t)(n->arena_used / 8) + 1;
	n->arena_used += entry_size(len);
	n->count++;
	return 1;
}

const char *
tally_names_find(const struct tally_names *n, uint64_t key, size_t upto, uint16_t *len)
{
	uint32_t i = probe(n, key);
	const uint8_t *e;

	if (n->place[i] == 0 || ((size_t)n->place[i] - 1) * 8 >= upto)
		return NULL;
	e = n->arena + ((size_t)n->place[i] - 1) * 8;
	*len = entry_len(e);
	return (const char *)e + ENTRY_HDR;
}

int
tally_names_next(const struct tally_names *n, uint64_t *key, const char **text, uint16_t *len)
{
	const uint8_t *e;

	if (n->written >= n->arena_used)
		return 0;
	e = n->arena + n->written;
	*key = entry_key(e);
	*len = entry_len(e);
	*text = (const char *)e + ENTRY_HDR;
	return 1;
}

void
tally_names_written(struct tally_names *n)
{
	if (n->written < n->arena_used)
		n->written += entry_size(entry_len(n->arena + n->written));
}

void
tally_names_rewrite(struct tally_names *n)
{
	n->written = 0;
}
