/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tally's counters in the Prometheus text exposition format (0.0.4) or OpenMetrics 1.0 text:
 * `# HELP` and `# TYPE` from the counter lists, `_total` on counters, a `worker` label on the
 * worker lcores' counters (a `reason` label on the reasons), a `port` label on the NIC
 * counters, units in base units (flush_lag_ms is tally_flush_lag_seconds), and the window
 * write lag as a histogram (tally_window_write_lag_seconds). Pure: no EAL, no allocation.
 */
#ifndef TALLY_PROM_H
#define TALLY_PROM_H

#include <stddef.h>
#include <stdint.h>

#include "tally_stats.h"

/* One port's NIC counters, sampled for the exposition. */
struct tally_port_sample {
	const char *name; /* the label value: the port's device name */
	int ok;           /* 0: could not be read, left out */
	uint64_t v[TALLY_PC_MAX];
};

/* The most bytes tally_prom_render() writes for this many workers and ports. */
size_t tally_prom_size(uint32_t workers, uint32_t ports);

/*
 * Render every field into buf (cap bytes, at least tally_prom_size()); om: OpenMetrics 1.0
 * (families of counters named without _total, `# UNIT`, `# EOF` at the end), else the
 * Prometheus text format 0.0.4. Returns the length, or 0 when cap was too small.
 */
size_t tally_prom_render(char *buf, size_t cap, const struct tally_stats_totals *t,
			 const struct tally_port_sample *ports, uint32_t nports, int om);

/* The samples' name of a counter in the exposition ("tally_" pre name, base units, _total). */
void tally_prom_sample_name(const struct tally_stat_info *i, const char *pre, char *name,
			    size_t len);

/* The content types of the two formats. */
#define TALLY_PROM_CTYPE "text/plain; version=0.0.4; charset=utf-8"
#define TALLY_OM_CTYPE "application/openmetrics-text; version=1.0.0; charset=utf-8"

#endif /* TALLY_PROM_H */
