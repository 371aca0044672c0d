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
	uint8_t pad[2];    /* SINGLE: the record's reserved[1..2] (a statsd weight) */
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
			.pad = {recs[0].reserved[1], recs[0].reserved[2]}, .value = recs[0].value};
		return 1;
	}
	dst->hdr = (struct tally_fwd_hdr){
		.device_id = device_id, .nrec = nrec, .type = TALLY_FWD_CHUNK, .ts_ns = ts_ns};
	memcpy(dst + 1, recs, (size_t)nrec * sizeof(*recs));
	return tally_fwd_slots(nrec);
}

/*
 * A stretch of ring slots taken for a zero-copy enqueue or dequeue (from rte_ring_zc_data):
 * slot i is a[i], or past the ring's wrap, b[i - na]. Chunks are written straight into the
 * ring and read where they lie, so a forwarded record is copied once, into the ring.
 */
struct tally_fwd_area {
	union tally_fwd_slot *a, *b;
	uint32_t na;   /* slots before the wrap */
	uint32_t n;    /* slots taken */
	uint32_t used; /* slots written so far (enqueue) */
	uint32_t recs; /* records in them */
};

static inline union tally_fwd_slot *
tally_fwd_at(const struct tally_fwd_area *z, uint32_t i)
{
	return i < z->na ? z->a + i : z->b + (i - z->na);
}

/* Does the chunk of `span` slots at slot i run over the wrap? */
static inline int
tally_fwd_area_split(const struct tally_fwd_area *z, uint32_t i, uint32_t span)
{
	return i < z->na && i + span > z->na;
}

/* Append a chunk to z (the caller checked the room): used and recs move on. */
static inline void
tally_fwd_area_put(struct tally_fwd_area *z, uint64_t device_id, uint64_t ts_ns,
		   const struct tally_wire_rec *recs, uint32_t nrec)
{
	uint32_t need = tally_fwd_slots(nrec), k;

	if (__builtin_expect(!tally_fwd_area_split(z, z->used, need), 1)) {
		tally_fwd_put_chunk(tally_fwd_at(z, z->used), device_id, ts_ns, recs, nrec);
	} else {
		/* The ring wraps inside this chunk: header, then two records per slot. */
		tally_fwd_at(z, z->used)->hdr = (struct tally_fwd_hdr){
			.device_id = device_id, .nrec = nrec, .type = TALLY_FWD_CHUNK,
			.ts_ns = ts_ns};
		for (k = 0; 2 * k < nrec; k++)
			memcpy(tally_fwd_at(z, z->used + 1 + k), &recs[2 * k],
			       (nrec - 2 * k >= 2 ? 2 : 1) * sizeof(*recs));
	}
	z->used += need;
	z->recs += nrec;
}

/*
 * The chunk at slot i of z as one contiguous run: in place, or copied to tmp (room for the
 * largest chunk) when the ring wraps inside it.
 */
static inline const union tally_fwd_slot *
tally_fwd_area_chunk(const struct tally_fwd_area *z, uint32_t i, union tally_fwd_slot *tmp)
{
	const union tally_fwd_slot *c = tally_fwd_at(z, i);
	uint32_t span = tally_fwd_span(c), k;

	if (__builtin_expect(!tally_fwd_area_split(z, i, span), 1))
		return c;
	for (k = 0; k < span; k++)
		tmp[k] = *tally_fwd_at(z, i + k);
	return tmp;
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

#define TALLY_HOT_LINES 128 /* sketch cache lines of 16 counters (power of two) */
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
 * fell below the share stop being hot (decay). Memory is fixed (~10 KB); O(1) per datagram.
 * Single-threaded: the worker that owns it.
 */
struct tally_hot {
	uint32_t cms[TALLY_HOT_LINES][16] __attribute__((aligned(64)));
	struct tally_hot_entry set[TALLY_HOT_SET];
	uint64_t share_q32;      /* share x 2^32; 0 disables detection */
	uint64_t interval_records;
	uint64_t prev_records;   /* records of the previous interval */
	uint64_t filter;         /* bit (hash >> 26) % 64 of every hot device: most lookups end here */
	uint32_t nhot;
	uint32_t set_full;       /* candidates refused because the set was full */
};

/* Start empty; share in [0, 1], 0 = never hot. */
void tally_hot_init(struct tally_hot *h, double share);

/* Another share (SIGHUP), the devices known kept: 0 turns detection off. */
void tally_hot_set_share(struct tally_hot *h, double share);

/* Records a device needs to be hot when the interval's base is `base` records. */
static inline uint64_t
tally_hot_threshold(const struct tally_hot *h, uint64_t base)
{
	uint64_t t = (uint64_t)(((__uint128_t)base * h->share_q32) >> 32);

	return t < TALLY_HOT_MIN_RECORDS ? TALLY_HOT_MIN_RECORDS : t;
}

static inline uint64_t
tally_hot_bit(uint64_t dev_hash)
{
	return (uint64_t)1 << ((dev_hash >> 26) & 63);
}

/* Home slot of a device in the hot set (linear probing from there). */
static inline uint32_t
tally_hot_home(uint64_t dev_hash)
{
	return (uint32_t)(dev_hash >> 20) & (TALLY_HOT_SET - 1);
}

static inline struct tally_hot_entry *
tally_hot_find(struct tally_hot *h, uint64_t dev, uint64_t dev_hash)
{
	uint32_t i = tally_hot_home(dev_hash), n;

	if (!(h->filter & tally_hot_bit(dev_hash)))
		return NULL;

	for (n = 0; n < TALLY_HOT_SET; n++, i = (i + 1) & (TALLY_HOT_SET - 1)) {
		if (!h->set[i].used)
			return NULL;
		if (h->set[i].device_id == dev)
			return &h->set[i];
	}
	return NULL;
}

/* A candidate reached the threshold: make it hot; returns 1, or 0 when the set is full. */
int tally_hot_promote(struct tally_hot *h, uint64_t dev, uint64_t dev_hash, uint32_t est);

/*
 * Start a burst of `records` records: they count in the interval at once, and the burst's
 * devices are measured against one threshold, returned here (0: detection is off).
 */
static inline uint64_t
tally_hot_begin(struct tally_hot *h, uint64_t records)
{
	uint64_t base;

	if (h->share_q32 == 0)
		return 0;
	h->interval_records += records;
	base = h->prev_records > h->interval_records ? h->prev_records : h->interval_records;
	return tally_hot_threshold(h, base);
}

/*
 * Account `records` of a device of the burst begun with threshold `thr`; returns 1 when the
 * device is hot.
 */
static inline int
tally_hot_account(struct tally_hot *h, uint64_t thr, uint64_t dev, uint64_t dev_hash,
		  uint32_t records)
{
	struct tally_hot_entry *e;
	uint32_t c0, c1, est, *line;

	if (thr == 0)
		return 0;
	e = tally_hot_find(h, dev, dev_hash);
	if (e != NULL) {
		e->records += records;
		return 1;
	}
	/*
	 * Blocked count-min: both counters of a device lie in one cache line (chosen by the
	 * low hash bits), at two different offsets taken from higher bits, so an update costs
	 * one line, not one per row.
	 */
	line = h->cms[dev_hash & (TALLY_HOT_LINES - 1)];
	c0 = (uint32_t)(dev_hash >> 40) & 15;
	c1 = (c0 + 1 + ((uint32_t)(dev_hash >> 44) & 7)) & 15;
	line[c0] += records;
	line[c1] += records;
	est = line[c0] < line[c1] ? line[c0] : line[c1];
	if (__builtin_expect(est < thr, 1))
		return 0;
	return tally_hot_promote(h, dev, dev_hash, est);
}

/* Account `records` of one device (a burst of one); returns 1 when the device is hot. */
static inline int
tally_hot_observe(struct tally_hot *h, uint64_t dev, uint64_t dev_hash, uint32_t records)
{
	return tally_hot_account(h, tally_hot_begin(h, records), dev, dev_hash, records);
}

/* Is this device hot now? */
static inline int
tally_hot_is(struct tally_hot *h, uint64_t device_id, uint64_t dev_hash)
{
	return tally_hot_find(h, device_id, dev_hash) != NULL;
}

/* End of an interval: drop devices below the share, reset the counts and the sketch. */
void tally_hot_tick(struct tally_hot *h);

#endif /* TALLY_PARTITION_H */
