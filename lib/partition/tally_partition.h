/* SPDX-License-Identifier: BSD-3-Clause */
/* Device-keyed partitioning: owner hash, compact forwarded records, heavy-hitter detection. */
#ifndef TALLY_PARTITION_H
#define TALLY_PARTITION_H

#include <stdint.h>
#include <string.h>

#include "tally_wire.h"

/*
 * Owner worker of a device: floor(hi32(hash(device_id)) * nworkers / 2^32), where hash is
 * tally_hash_device() (the murmur3 64-bit finalizer). Stable across versions and instances:
 * the same device always maps to the same worker index for a given worker count. Uses the
 * high hash bits; the table uses the low ones, so an owner's devices still spread over its
 * whole table.
 */
static inline uint32_t
tally_owner(uint64_t dev_hash, uint32_t nworkers)
{
	return (uint32_t)(((dev_hash >> 32) * nworkers) >> 32);
}

/*
 * What travels between workers, in 32-byte ring slots. A datagram's records go to their
 * owner as a chunk: a header slot (device, time, record count), then the v1 records exactly
 * as they were on the wire, two per slot. A marker is a header slot alone: the sender has
 * closed the window starting at device_id (ms) and now sends for the window starting at
 * ts_ns (ms; UINT64_MAX: it has stopped).
 */
#define TALLY_FWD_CHUNK 1
#define TALLY_FWD_MARKER 2
#define TALLY_FWD_SINGLE 3 /* a chunk of one record, all in the header slot */

struct tally_fwd_hdr {
	uint64_t device_id;
	uint32_t nrec;     /* SINGLE: the record's metric_id */
	uint8_t type;
	uint8_t kind;      /* SINGLE: the record's kind */
	uint8_t pad[2];
	uint64_t ts_ns;
	double value;      /* SINGLE: the record's value */
};

union tally_fwd_slot {
	struct tally_fwd_hdr hdr;
	struct tally_wire_rec rec[2];
};

_Static_assert(sizeof(union tally_fwd_slot) == 32, "a forwarding slot is 32 bytes");

/* Slots a chunk of nrec records takes: one alone fits in its header slot. */
static inline uint32_t
tally_fwd_slots(uint32_t nrec)
{
	return nrec <= 1 ? 1 : 1 + (nrec + 1) / 2;
}

/* Slots taken by what starts at slot (a chunk, a single record or a marker). */
static inline uint32_t
tally_fwd_span(const union tally_fwd_slot *slot)
{
	return slot->hdr.type == TALLY_FWD_CHUNK ? tally_fwd_slots(slot->hdr.nrec) : 1;
}

/* Records in what starts at slot. */
static inline uint32_t
tally_fwd_nrec(const union tally_fwd_slot *slot)
{
	return slot->hdr.type == TALLY_FWD_CHUNK ? slot->hdr.nrec
	       : slot->hdr.type == TALLY_FWD_SINGLE ? 1 : 0;
}

/* Write a chunk at dst (tally_fwd_slots(nrec) slots); returns the slots used. */
static inline uint32_t
tally_fwd_put_chunk(union tally_fwd_slot *dst, uint64_t device_id, uint64_t ts_ns,
		    const struct tally_wire_rec *recs, uint32_t nrec)
{
	if (nrec == 1) {
		dst->hdr = (struct tally_fwd_hdr){
			.device_id = device_id, .nrec = recs[0].metric_id,
			.type = TALLY_FWD_SINGLE, .kind = recs[0].kind, .ts_ns = ts_ns,
			.value = recs[0].value};
		return 1;
	}
	dst->hdr = (struct tally_fwd_hdr){
		.device_id = device_id, .nrec = nrec, .type = TALLY_FWD_CHUNK, .ts_ns = ts_ns};
	memcpy(dst + 1, recs, (size_t)nrec * sizeof(*recs));
	return tally_fwd_slots(nrec);
}

/* Record i of what starts at slot (i < tally_fwd_nrec(slot)). */
static inline struct tally_wire_rec
tally_fwd_rec(const union tally_fwd_slot *slot, uint32_t i)
{
	if (slot->hdr.type == TALLY_FWD_SINGLE)
		return (struct tally_wire_rec){.metric_id = slot->hdr.nrec,
					       .kind = slot->hdr.kind,
					       .value = slot->hdr.value};
	/* The records run on over the slots that follow the header, two per slot. */
	return ((const struct tally_wire_rec *)(slot + 1))[i];
}

/* Heavy hitters ------------------------------------------------------------------------- */

#define TALLY_HOT_ROWS 2
#define TALLY_HOT_COLS 4096 /* power of two */
#define TALLY_HOT_SET 64    /* most devices hot at once on one worker (power of two) */
#define TALLY_HOT_MIN_RECORDS 1024

struct tally_hot_entry {
	uint64_t device_id;
	uint64_t records; /* in the current interval */
	uint8_t used;
};

/*
 * Per-worker heavy-hitter detector: a count-min sketch over the current interval finds
 * candidates; a device whose estimate reaches `share` of the worker's records (of the last
 * or the current interval, whichever is larger, and at least TALLY_HOT_MIN_RECORDS) becomes
 * hot and is counted exactly from then on. At each interval end, hot devices whose count
 * fell below the share stop being hot (decay). Memory is fixed (~33 KB); O(1) per datagram.
 * Single-threaded: the worker that owns it.
 */
struct tally_hot {
	uint32_t cms[TALLY_HOT_ROWS][TALLY_HOT_COLS];
	struct tally_hot_entry set[TALLY_HOT_SET];
	double share;            /* 0 disables detection */
	uint64_t interval_records;
	uint64_t prev_records;   /* records of the previous interval */
	uint32_t nhot;
	uint32_t set_full;       /* candidates refused because the set was full */
};

/* Start empty; share in [0, 1], 0 = never hot. */
void tally_hot_init(struct tally_hot *h, double share);

/* Account `records` of a device; returns 1 when the device is hot. */
int tally_hot_observe(struct tally_hot *h, uint64_t device_id, uint64_t dev_hash,
		      uint32_t records);

/* Is this device hot now? */
int tally_hot_is(const struct tally_hot *h, uint64_t device_id, uint64_t dev_hash);

/* End of an interval: drop devices below the share, reset the counts and the sketch. */
void tally_hot_tick(struct tally_hot *h);

#endif /* TALLY_PARTITION_H */
