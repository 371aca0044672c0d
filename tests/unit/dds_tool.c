/* SPDX-License-Identifier: BSD-3-Clause */
/* Test helper: lib/sketch's DDSketch over stdin, to seed Redis with sketches and read them. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tally_ddsketch.h"

/* A serialised sketch of CAP_MAX buckets is at most this long (tally_dds_serial_size). */
#define SERIAL_MAX (44 + 12 * TALLY_DDS_CAP_MAX)

static void
usage(void)
{
	fprintf(stderr,
		"usage: dds_tool serialise [CAP] | quantile Q...\n"
		"  serialise   doubles, one a line, into a sketch of CAP buckets [%d];\n"
		"              writes its bytes (tally_dds_serialise) to stdout\n"
		"  quantile    a serialised sketch on stdin; prints 'count N', 'zero N',\n"
		"              'clamped N', 'folded N', then 'Q VALUE' (%%.17g) per Q\n",
		TALLY_DDS_CAP_MAX);
	exit(2);
}

static struct tally_dds *
sketch_new(unsigned int cap)
{
	void *mem = aligned_alloc(8, (tally_dds_memsize(cap) + 7) & ~(size_t)7);
	struct tally_dds *s = tally_dds_init(mem, cap);

	if (s == NULL) {
		fprintf(stderr, "dds_tool: cannot make a sketch of %u buckets\n", cap);
		exit(1);
	}
	return s;
}

static int
cmd_serialise(unsigned int cap)
{
	static uint8_t buf[SERIAL_MAX];
	struct tally_dds *s = sketch_new(cap);
	char line[128];
	int len;

	while (fgets(line, sizeof(line), stdin) != NULL) {
		char *end;
		double v;

		errno = 0;
		v = strtod(line, &end);
		if (errno == ERANGE || end == line || (*end != '\n' && *end != '\0') ||
		    tally_dds_add(s, v) != 0) {
			fprintf(stderr, "dds_tool: bad value: %s", line);
			return 1;
		}
	}
	len = tally_dds_serialise(s, buf, sizeof(buf));
	if (len < 0 || fwrite(buf, 1, (size_t)len, stdout) != (size_t)len) {
		fprintf(stderr, "dds_tool: cannot write the sketch\n");
		return 1;
	}
	free(s);
	return 0;
}

static int
cmd_quantile(int nq, char **qs)
{
	static uint8_t buf[SERIAL_MAX + 1];
	struct tally_dds *s = sketch_new(TALLY_DDS_CAP_MAX);
	size_t len = fread(buf, 1, sizeof(buf), stdin);
	int i;

	if (len > SERIAL_MAX || tally_dds_parse(s, buf, len) != 0) {
		fprintf(stderr, "dds_tool: stdin is not a serialised sketch\n");
		return 1;
	}
	printf("count %" PRIu64 "\nzero %" PRIu64 "\nclamped %" PRIu64 "\nfolded %" PRIu64 "\n",
	       tally_dds_count(s), s->zero, s->clamped, s->folded);
	for (i = 0; i < nq; i++) {
		char *end;
		double q = strtod(qs[i], &end);
		double v;

		if (*end != '\0' || tally_dds_quantile(s, q, &v) != 0) {
			fprintf(stderr, "dds_tool: no quantile %s of this sketch\n", qs[i]);
			return 1;
		}
		printf("%s %.17g\n", qs[i], v);
	}
	free(s);
	return 0;
}

int
main(int argc, char **argv)
{
	unsigned long cap = TALLY_DDS_CAP_MAX;
	char *end;

	if (argc >= 2 && strcmp(argv[1], "serialise") == 0 && argc <= 3) {
		if (argc == 3) {
			cap = strtoul(argv[2], &end, 10);
			if (*end != '\0' || cap == 0 || cap > TALLY_DDS_CAP_MAX)
				usage();
		}
		return cmd_serialise((unsigned int)cap);
	}
	if (argc >= 3 && strcmp(argv[1], "quantile") == 0)
		return cmd_quantile(argc - 2, argv + 2);
	usage();
	return 2;
}
