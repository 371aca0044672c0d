/* SPDX-License-Identifier: BSD-3-Clause */
/* libFuzzer harness of the packet path: frame parse, v1 validation, aggregation, replies. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tally_reply.h"
#include "tally_ddsketch.h"
#include "tally_table.h"
#include "tally_wire.h"

static struct tally_table *table;

static void
check_frame(const uint8_t *data, uint32_t len, const struct tally_wire_filter *f)
{
	static const uint8_t mac[6] = {2, 0, 0, 0, 0, 1};
	struct tally_frame fr;
	uint8_t copy[65536];
	int type;

	memset(&fr, 0, sizeof(fr));
	type = tally_wire_parse(data, len, f, &fr);
	switch (type) {
	case TALLY_FRAME_TELEMETRY: {
		const struct tally_wire_hdr *h = (const struct tally_wire_hdr *)fr.payload;
		const struct tally_wire_rec *rec = (const struct tally_wire_rec *)(h + 1);
		uint16_t i;

		/* The payload lies inside the frame and holds exactly count records. */
		if (fr.payload < data || fr.payload + fr.payload_len > data + len ||
		    fr.payload_len != TALLY_WIRE_HDR_LEN + (uint32_t)h->count * TALLY_WIRE_REC_LEN)
			abort();
		for (i = 0; i < h->count; i++)
			tally_table_add(table, h->device_id, tally_hash_device(h->device_id),
					rec[i].metric_id, rec[i].kind, rec[i].value, h->time_ns);
		/* a histogram's sketch holds every value its series counted, folded or not */
		for (uint32_t k = 0; k < table->series; k++) {
			const struct tally_slot *s = tally_table_at(table, k);
			const struct tally_dds *d = tally_table_sketch(table, s);

			if (s->count == 0 || (d != NULL && tally_dds_count(d) != s->count))
				abort();
		}
		if (table->series > table->max_series / 2 || table->side_used > table->side_size / 2)
			tally_table_reset(table);
		break;
	}
	case TALLY_FRAME_MALFORMED:
		if (fr.reason >= TALLY_MALFORMED_MAX || tally_malformed_name(fr.reason) == NULL)
			abort();
		break;
	case TALLY_FRAME_ARP:
	case TALLY_FRAME_ICMP:
	case TALLY_FRAME_ICMP6:
		if (len <= sizeof(copy)) {
			int n;

			memcpy(copy, data, len);
			n = tally_reply_build(copy, len, type, &fr, mac, f);
			if (n > (int)len)
				abort();
		}
		break;
	case TALLY_FRAME_OTHER:
	case TALLY_FRAME_OTHER_ADDR:
		break;
	default:
		abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tally_wire_filter any = {.udp_port = 9797};
	struct tally_wire_filter own = {.udp_port = 9797, .has_ipv4 = 1, .has_ipv6 = 1,
					.ipv4 = 0x010012c6, /* 198.18.0.1 */
					.ipv6 = {0x20, 0x01, 0, 0x02, [15] = 1}};
	uint8_t *frame;

	if (table == NULL) {
		size_t len = tally_table_memsize(1024, 1u << 20);

		table = tally_table_init(aligned_alloc(64, (len + 63) & ~(size_t)63), 1024, 1u << 20);
	}
	/* The worker hands the parser at most this much of a frame, chained or not. */
	if (size > TALLY_WIRE_FRAME_MAX)
		return 0;
	/* An exact-size copy, so any read past the frame is caught by ASan. */
	frame = malloc(size ? size : 1);
	memcpy(frame, data, size);
	check_frame(frame, (uint32_t)size, &any);
	check_frame(frame, (uint32_t)size, &own);
	if (size >= 32)
		(void)tally_wire_validate(frame, (uint32_t)size);
	free(frame);
	return 0;
}
