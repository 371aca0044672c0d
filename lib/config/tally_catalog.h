/* SPDX-License-Identifier: BSD-3-Clause */
/* The metric catalog: names, units and expected kinds of metric ids, from an INI [metrics]. */
#ifndef TALLY_CATALOG_H
#define TALLY_CATALOG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "tally_aggregate.h"

#define TALLY_CATALOG_SECTION "metrics"
#define TALLY_CATALOG_MAX 65536	      /* entries one catalog holds */
#define TALLY_CATALOG_DENSE_IDS 65536 /* ids below this: a kind array indexed by id */
#define TALLY_CATALOG_NAME_MAX 64
#define TALLY_CATALOG_UNIT_MAX 16
/* "NAME UNIT KIND" (UNIT "-" when none), as tally:catalog holds it, with its NUL. */
#define TALLY_CATALOG_VALUE_MAX (TALLY_CATALOG_NAME_MAX + 1 + TALLY_CATALOG_UNIT_MAX + 1 + 9 + 1)

/* One metric of the catalog. */
struct tally_catalog_entry {
	uint32_t id;
	uint8_t kind; /* enum tally_kind: TALLY_KIND_COUNTER .. TALLY_KIND_MAX */
	char name[TALLY_CATALOG_NAME_MAX + 1];
	char unit[TALLY_CATALOG_UNIT_MAX + 1]; /* "" when none */
};

/*
 * A loaded catalog. Read-only once loaded, so any lcore may read it without locks; the
 * fields are public only for tally_catalog_kind(): use the functions.
 */
struct tally_catalog {
	uint8_t *dense;	      /* TALLY_CATALOG_DENSE_IDS kinds by id, 0: not in the catalog */
	uint32_t *sparse_id;  /* ids from TALLY_CATALOG_DENSE_IDS on, ascending */
	uint8_t *sparse_kind; /* their kinds */
	uint32_t nsparse;
	uint32_t n;
	struct tally_catalog_entry *entry; /* n, by ascending id */
	uint32_t *by_name;		   /* open addressing: entry index + 1, 0 empty */
	uint32_t name_mask;		   /* slots of by_name - 1 (a power of two) */
};

/*
 * Load the [metrics] section of the INI file at path: lines `ID = NAME [UNIT] KIND`, ID decimal
 * in [0, 4294967295], NAME 1 to TALLY_CATALOG_NAME_MAX characters of A-Z a-z 0-9 _ . : / -
 * (not all digits, which would read as an id, and not starting with '-'), UNIT 1 to
 * TALLY_CATALOG_UNIT_MAX of the same ("-" for none), KIND counter, gauge, histogram or
 * distinct; at most TALLY_CATALOG_MAX entries, each id and each name once. Comments (';' or
 * '#', also after an entry) and blank lines are allowed; other sections are not read. All
 * memory is allocated here. Returns the catalog (free with tally_catalog_free()), or NULL
 * with a one-line reason in err: "PATH:LINE: ..." for a bad line, "PATH: no [metrics]
 * section", "cannot read PATH: ...".
 */
struct tally_catalog *tally_catalog_load(const char *path, char *err, size_t errlen);

/*
 * Open path for reading if it is a regular file (symlinks followed), never blocking on a
 * FIFO: the configuration is read again at SIGHUP by the control lcore. NULL with a one-line
 * reason in err ("cannot read P: errno" or "P is not a regular file (a FIFO)").
 */
FILE *tally_fopen_regular(const char *path, char *err, size_t errlen);

/* Free a catalog (NULL is fine). Nothing may read it after. */
void tally_catalog_free(struct tally_catalog *c);

/* Entries (0 for NULL). */
uint32_t tally_catalog_count(const struct tally_catalog *c);

/* The i-th entry in ascending id order (i < tally_catalog_count()); valid until freed. */
const struct tally_catalog_entry *tally_catalog_at(const struct tally_catalog *c, uint32_t i);

/* The entry of metric id, or NULL (also for a NULL catalog); valid until freed. */
const struct tally_catalog_entry *tally_catalog_find(const struct tally_catalog *c, uint32_t id);

/* The entry named name, or NULL (also for a NULL catalog); valid until freed. */
const struct tally_catalog_entry *tally_catalog_find_name(const struct tally_catalog *c,
							  const char *name);

/*
 * The kind the catalog gives metric id, or 0 (TALLY_KIND_NONE) when it gives none or c is
 * NULL: an array read for ids below TALLY_CATALOG_DENSE_IDS, a binary search above. Safe on
 * the packet path.
 */
static inline uint8_t
tally_catalog_kind(const struct tally_catalog *c, uint32_t id)
{
	uint32_t lo = 0, hi;

	if (c == NULL)
		return TALLY_KIND_NONE;
	if (id < TALLY_CATALOG_DENSE_IDS)
		return c->dense[id];
	hi = c->nsparse;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (c->sparse_id[mid] < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < c->nsparse && c->sparse_id[lo] == id ? c->sparse_kind[lo] : TALLY_KIND_NONE;
}

/*
 * Fill kinds[id] for every id < n with the catalog's kind (0 where it gives none), for a
 * caller that keeps a map of its own (a worker's uint8_t kinds[TALLY_CATALOG_DENSE_IDS]).
 */
void tally_catalog_kinds(const struct tally_catalog *c, uint8_t *kinds, uint32_t n);

/*
 * Parse `NAME [UNIT] KIND` (what follows `ID =` in the file, and a tally:catalog value, whose
 * UNIT is always there, "-" for none) into e's name, unit and kind (not its id). Words are
 * separated by blanks; len bytes of text, no NUL needed. Returns 0, or -1 with the problem in
 * why (one line, without the file and line).
 */
int tally_catalog_parse_entry(const char *text, size_t len, struct tally_catalog_entry *e,
			      char *why, size_t whylen);

/*
 * e as tally:catalog's value: "NAME UNIT KIND", UNIT "-" when none, into buf (at least
 * TALLY_CATALOG_VALUE_MAX bytes). Returns the length.
 */
int tally_catalog_value(const struct tally_catalog_entry *e, char *buf, size_t len);

#endif /* TALLY_CATALOG_H */
