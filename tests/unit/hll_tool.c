/* SPDX-License-Identifier: BSD-3-Clause */
/* Test helper: lib/sketch's HLL over stdin (elements or a Redis string), to compare with Redis. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tally_hll.h"

#define HEX_MAX (2 * 65536)

static void
usage(void)
{
	fprintf(stderr,
		"usage: hll_tool add|add-cached|parse\n"
		"  add         decimal u64 elements, one a line, hashed as 8 little-endian\n"
		"              bytes; prints the dense string in hex and the estimate\n"
		"  add-cached  the same, with the estimate cached in the header\n"
		"  parse       one Redis HLL string in hex (dense or sparse); prints it as\n"
		"              dense hex, the estimate, and what PFCOUNT answers\n");
	exit(2);
}

static void
print_hex(const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		printf("%02x", p[i]);
	printf("\n");
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int
cmd_add(struct tally_hll *h, int cached)
{
	char line[64];

	while (fgets(line, sizeof(line), stdin) != NULL) {
		char *end;
		uint64_t v;

		errno = 0;
		v = strtoull(line, &end, 10);
		if (errno != 0 || end == line || (*end != '\n' && *end != '\0')) {
			fprintf(stderr, "hll_tool: bad element: %s", line);
			return 1;
		}
		tally_hll_add_u64(h, v);
	}
	if (cached)
		tally_hll_count(h);
	print_hex(h->raw, sizeof(h->raw));
	printf("%" PRIu64 "\n", tally_hll_estimate(h));
	return 0;
}

static int
cmd_parse(struct tally_hll *h)
{
	static char hex[HEX_MAX + 2];
	static uint8_t raw[HEX_MAX / 2];
	size_t n, i;

	if (fgets(hex, sizeof(hex), stdin) == NULL)
		return 1;
	n = strcspn(hex, "\r\n");
	if (n % 2 != 0)
		return 1;
	for (i = 0; i < n / 2; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return 1;
		raw[i] = (uint8_t)(hi << 4 | lo);
	}
	if (tally_hll_parse(h, raw, n / 2) != 0) {
		fprintf(stderr, "hll_tool: not a valid Redis HLL string\n");
		return 1;
	}
	print_hex(h->raw, sizeof(h->raw));
	printf("%" PRIu64 "\n", tally_hll_estimate(h));
	printf("%" PRIu64 "\n", tally_hll_count(h));
	return 0;
}

int
main(int argc, char **argv)
{
	static struct tally_hll h;

	if (argc != 2)
		usage();
	tally_hll_init(&h);
	if (strcmp(argv[1], "add") == 0)
		return cmd_add(&h, 0);
	if (strcmp(argv[1], "add-cached") == 0)
		return cmd_add(&h, 1);
	if (strcmp(argv[1], "parse") == 0)
		return cmd_parse(&h);
	usage();
	return 2;
}
