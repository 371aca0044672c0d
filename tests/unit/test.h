/* SPDX-License-Identifier: BSD-3-Clause */
/* Shared helpers of the unit tests: cmocka, and memory routed through its leak checker. */
#ifndef TALLY_TEST_H
#define TALLY_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tally_table.h"

/* A table with side_bytes of side memory on 64-byte aligned test_malloc memory. */
static inline struct tally_table *
test_table_new_side(uint32_t max_series, uint64_t side_bytes, void **raw)
{
	size_t len = tally_table_memsize(max_series, side_bytes);
	uint8_t *p;

	*raw = test_malloc(len + 64);
	assert_non_null(*raw);
	p = (uint8_t *)(((uintptr_t)*raw + 63) & ~(uintptr_t)63);
	return tally_table_init(p, max_series, side_bytes);
}

/* A table on 64-byte aligned test_malloc memory (1 MiB of side memory); free the raw. */
static inline struct tally_table *
test_table_new(uint32_t max_series, void **raw)
{
	return test_table_new_side(max_series, 1u << 20, raw);
}

static inline void
test_table_free(void *raw)
{
	test_free(raw);
}

/* A fresh directory /tmp/<prefix>XXXXXX in dir (64 bytes), for one test. */
static inline void
test_dir_create(char *dir, const char *prefix)
{
	snprintf(dir, 64, "/tmp/%sXXXXXX", prefix);
	assert_non_null(mkdtemp(dir));
}

/* Remove it with everything in it. */
static inline void
test_dir_remove(const char *dir)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

#endif /* TALLY_TEST_H */
