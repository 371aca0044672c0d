/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * libFuzzer over lib/statsd: any bytes as a statsd datagram. The decoder must never read
 * past the input, every record it emits must be well formed (a known kind, a finite value
 * except a set's element, a weight within bounds), and the lines taken plus those refused
 * must be the lines there are.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tally_statsd.h"

static struct tally_statsd_dec dec;
static uint64_t seen[1 << 12];
static uint32_t refused;

static void
emit(void *ctx, const struct tally_wire_hdr **dg, uint16_t n)
{
	(void)ctx;
	for (uint16_t i = 0; i < n; i++) {
		const struct tally_wire_rec *r = (const struct tally_wire_rec *)(dg[i] + 1);

		if (dg[i]->count == 0 || !(dg[i]->device_id & TALLY_STATSD_DEVICE_BIT))
			abort();
		for (uint16_t k = 0; k < dg[i]->count; k++) {
			uint8_t kind = r[k].kind & (uint8_t)~TALLY_KIND_EXT;
			uint32_t w = 1u + (r[k].reserved[1] | (uint32_t)r[k].reserved[2] << 8);

			if (kind < TALLY_KIND_COUNTER || kind > TALLY_KIND_DISTINCT || w < 1 ||
			    w > TALLY_STATSD_WEIGHT_MAX)
				abort();
			if (kind != TALLY_KIND_DISTINCT && !isfinite(r[k].value))
				abort();
		}
	}
}

static void
bad(void *ctx, unsigned int reason, uint32_t line)
{
	(void)ctx;
	(void)line;
	if (reason >= TALLY_STATSD_REASON_MAX)
		abort();
	refused++;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t src[4] = {198, 18, 0, 7};
	uint8_t *copy;
	uint32_t lines = 0, taken;
	size_t i, start = 0;

	if (size > 65507)
		return 0;
	if (dec.emit == NULL &&
	    tally_statsd_dec_init(&dec, "host", 8, 64, seen, emit, bad, NULL, NULL) != 0)
		abort();
	if (tally_statsd_seen_memsize(64) > sizeof(seen))
		abort();
	/* a copy of exactly size bytes: ASan sees any read past it */
	copy = malloc(size ? size : 1);
	memcpy(copy, data, size);
	for (i = 0; i <= size; i++) {
		if (i == size || copy[i] == '\n') {
			size_t n = i - start;

			lines += n > 0 && !(n == 1 && copy[start] == '\r');
			start = i + 1;
		}
	}
	refused = 0;
	taken = tally_statsd_decode(&dec, copy, (uint32_t)size, src, 4, 0);
	tally_statsd_flush(&dec);
	if (taken + refused != lines)
		abort();
	free(copy);
	return 0;
}
