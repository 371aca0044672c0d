/* SPDX-License-Identifier: BSD-3-Clause */
/* The aggregate, declared once: the kinds of series, their fields in Redis and merge rules. */
#ifndef TALLY_AGGREGATE_H
#define TALLY_AGGREGATE_H

#include <stdint.h>

/*
 * Kinds of series, as records carry them on the wire (v1 record kind). A series takes the
 * kind of its first record in a window; a later record of another kind is stored as the
 * series' kind and counted in `kind_mismatch`.
 */
#define TALLY_FOREACH_KIND(_)                                                                      \
	_(COUNTER, 1, "counter")                                                                   \
	_(GAUGE, 2, "gauge")                                                                       \
	_(HISTOGRAM, 3, "histogram") /* + a DDSketch (lib/sketch), in the table's side memory */  \
	_(DISTINCT, 4, "distinct")   /* the value's 64 bits are an element; a Redis HLL */

enum tally_kind {
	TALLY_KIND_NONE = 0,
#define TALLY_KIND_ENUM(sym, num, name) TALLY_KIND_##sym = num,
	TALLY_FOREACH_KIND(TALLY_KIND_ENUM)
#undef TALLY_KIND_ENUM
	TALLY_KIND_MAX = TALLY_KIND_DISTINCT
};

/* How two partials of one field of a series become one (in tally, and in Redis). */
enum tally_rule {
	TALLY_RULE_ADD_COUNT, /* integers add */
	TALLY_RULE_ADD,	      /* doubles add */
	TALLY_RULE_MIN,	      /* the smaller stays (its text as it was) */
	TALLY_RULE_MAX,	      /* the larger stays */
	TALLY_RULE_LAST,      /* the one whose time (the TIME field) is newer stays */
	TALLY_RULE_TIME,      /* the time of LAST, 20-digit ns, ordered as text */
	TALLY_RULE_BUCKETS,   /* sketch buckets add, key by key (tally_dds_merge) */
	TALLY_RULE_RATE,      /* the sum per second of the window, from the merged sum */
};

#define TALLY_K(kind) (1u << TALLY_KIND_##kind)
#define TALLY_K_NUMERIC (TALLY_K(COUNTER) | TALLY_K(GAUGE) | TALLY_K(HISTOGRAM))

/*
 * The fields of a series in its window hash, `<metric>:<suffix>`, in the order they are
 * written: suffix, merge rule, the kinds that have it. The encoder, the fold of a window key
 * that exists, the spool and tally-query all follow this list. A distinct series has, besides
 * its count, its registers in a key of their own (`tally:{dev}:<window>:hll:<metric>`, merged
 * by PFMERGE: register-wise max, so writing them twice changes nothing).
 */
#define TALLY_FOREACH_FIELD(_)                                                                     \
	_(COUNT, "count", ADD_COUNT, TALLY_K_NUMERIC | TALLY_K(DISTINCT))                          \
	_(SUM, "sum", ADD, TALLY_K_NUMERIC)                                                        \
	_(MIN, "min", MIN, TALLY_K_NUMERIC)                                                        \
	_(MAX, "max", MAX, TALLY_K_NUMERIC)                                                        \
	_(LAST, "last", LAST, TALLY_K(COUNTER) | TALLY_K(GAUGE))                                   \
	_(TS, "ts", TIME, TALLY_K(COUNTER) | TALLY_K(GAUGE))                                       \
	_(SKETCH, "sketch", BUCKETS, TALLY_K(HISTOGRAM))                                           \
	_(RATE, "rate", RATE, TALLY_K(COUNTER))

enum tally_field {
#define TALLY_FIELD_ENUM(sym, suffix, rule, kinds) TALLY_FIELD_##sym,
	TALLY_FOREACH_FIELD(TALLY_FIELD_ENUM)
#undef TALLY_FIELD_ENUM
	TALLY_FIELDS_N
};

struct tally_field_info {
	const char *suffix;
	uint8_t len;   /* of suffix */
	uint8_t rule;  /* enum tally_rule */
	uint16_t kinds; /* TALLY_K() bits */
};

static const struct tally_field_info tally_fields[TALLY_FIELDS_N] = {
#define TALLY_FIELD_INFO(sym, sfx, r, k)                                                           \
	[TALLY_FIELD_##sym] = {.suffix = sfx, .len = sizeof(sfx) - 1, .rule = TALLY_RULE_##r,      \
			       .kinds = (uint16_t)(k)},
	TALLY_FOREACH_FIELD(TALLY_FIELD_INFO)
#undef TALLY_FIELD_INFO
};

/* The kind a series is written as: an unknown kind (a spool of an older version) is a gauge. */
static inline unsigned int
tally_kind_of(uint8_t kind)
{
	return kind >= TALLY_KIND_COUNTER && kind <= TALLY_KIND_MAX ? kind : TALLY_KIND_GAUGE;
}

/* Whether a series of this kind has field f. */
static inline int
tally_kind_has(uint8_t kind, unsigned int f)
{
	return f < TALLY_FIELDS_N && (tally_fields[f].kinds >> tally_kind_of(kind)) & 1;
}

/* Name of a kind ("counter", ...), or NULL. */
static inline const char *
tally_kind_name(unsigned int kind)
{
	switch (kind) {
#define TALLY_KIND_CASE(sym, num, name)                                                            \
	case num:                                                                                  \
		return name;
		TALLY_FOREACH_KIND(TALLY_KIND_CASE)
#undef TALLY_KIND_CASE
	default:
		return NULL;
	}
}

/* Kinds whose state lives outside the 64-byte slot. */
static inline int
tally_kind_side(uint8_t kind)
{
	return kind == TALLY_KIND_HISTOGRAM || kind == TALLY_KIND_DISTINCT;
}

#endif /* TALLY_AGGREGATE_H */
