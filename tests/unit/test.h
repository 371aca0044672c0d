/* SPDX-License-Identifier: BSD-3-Clause */
/* Shared helpers of the unit tests: cmocka, and memory routed through its leak checker. */
#ifndef TALLY_TEST_H
#define TALLY_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tally_table.h"

/* A table on 64-byte aligned test_malloc memory; free with test_table_free(). */
static inline struct tally_table *
test_table_new(uint32_t max_series, void **raw)
{
	size_t len = tally_table_memsize(max_series);
	uint8_t *p;

	*raw = test_malloc(len + 64);
	assert_non_null(*raw);
	p = (uint8_t *)(((uintptr_t)*raw + 63) & ~(uintptr_t)63);
	return tally_table_init(p, max_series);
}

static inline void
test_table_free(void *raw)
{
	test_free(raw);
}

#endif /* TALLY_TEST_H */
