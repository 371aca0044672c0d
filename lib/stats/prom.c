/* SPDX-License-Identifier: BSD-3-Clause */
/* The Prometheus / OpenMetrics text exposition of tally's counters (tally_prom.h). */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "tally_prom.h"

#define PREFIX "tally_"
#define LINE_MAX_ 512    /* a HELP line, a TYPE line, a UNIT line: bounded by the lists */
#define SAMPLE_MAX 192   /* a sample: name, labels (a port name up to 64 bytes escaped), value */

struct out {
	char *p;
	size_t len;
	size_t cap;
	int over;
	int om;
};

static void
put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->over)
		return;
	va_start(ap, fmt);
	n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= o->cap - o->len) {
		o->over = 1;
		return;
	}
	o->len += (size_t)n;
}

/* Text with \, newline (and " in a label or OpenMetrics help) escaped. */
static void
put_escaped(struct out *o, const char *s, int quote)
{
	char buf[256];
	size_t n = 0;

	for (; *s != '\0' && n < sizeof(buf) - 3; s++) {
		if (*s == '\\' || (*s == '"' && quote)) {
			buf[n++] = '\\';
			buf[n++] = *s;
		} else if (*s == '\n') {
			buf[n++] = '\\';
			buf[n++] = 'n';
		} else {
			buf[n++] = *s;
		}
	}
	buf[n] = '\0';
	put(o, "%s", buf);
}

/*
 * A family's name in base units: flush_lag_ms (unit ms) is flush_lag_seconds, uptime_s (unit
 * seconds) uptime_seconds. *scale_ms: the value is in ms and is printed as seconds.
 */
static void
family_name(const struct tally_stat_info *i, const char *pre, char *name, size_t len,
	    int *scale_ms)
{
	size_t n = strlen(i->name);

	*scale_ms = 0;
	if (strcmp(i->unit, "ms") == 0 && n > 3 && strcmp(i->name + n - 3, "_ms") == 0) {
		snprintf(name, len, PREFIX "%s%.*s_seconds", pre, (int)(n - 3), i->name);
		*scale_ms = 1;
	} else if (strcmp(i->unit, "seconds") == 0 && n > 2 &&
		   strcmp(i->name + n - 2, "_s") == 0) {
		snprintf(name, len, PREFIX "%s%.*s_seconds", pre, (int)(n - 2), i->name);
	} else {
		snprintf(name, len, PREFIX "%s%s", pre, i->name);
	}
}

void
tally_prom_sample_name(const struct tally_stat_info *i, const char *pre, char *name, size_t len)
{
	char family[128];
	int scale;

	family_name(i, pre, family, sizeof(family), &scale);
	snprintf(name, len, "%s%s", family, i->kind == TALLY_STAT_COUNTER ? "_total" : "");
}

/* # HELP / # TYPE (/ # UNIT) of a family; *sample gets the samples' name. */
static void
header(struct out *o, const char *family, const struct tally_stat_info *i, const char *help,
       const char *type, char *sample, size_t len)
{
	const int counter = strcmp(type, "counter") == 0;
	const char *fam = family;
	char omfam[128];
	size_t n = strlen(family);

	snprintf(sample, len, "%s%s", family, counter ? "_total" : "");
	/* OpenMetrics names a counter's family without _total, Prometheus 0.0.4 with it. */
	if (!o->om && counter)
		fam = sample;
	if (o->om) {
		snprintf(omfam, sizeof(omfam), "%s", family);
		fam = omfam;
	}
	put(o, "# HELP %s ", fam);
	put_escaped(o, help, o->om);
	put(o, "\n# TYPE %s %s\n", fam, type);
	/* A unit line only where the name ends in it, as OpenMetrics requires. */
	if (o->om && i != NULL) {
		const char *u = strcmp(i->unit, "ms") == 0 ? "seconds" : i->unit;
		size_t ul = strlen(u);

		if ((strcmp(u, "seconds") == 0 || strcmp(u, "bytes") == 0) && n > ul + 1 &&
		    family[n - ul - 1] == '_' && strcmp(family + n - ul, u) == 0)
			put(o, "# UNIT %s %s\n", fam, u);
	}
}

static void
value(struct out *o, uint64_t v, int scale_ms)
{
	if (scale_ms)
		put(o, " %" PRIu64 ".%03u\n", v / 1000u, (unsigned int)(v % 1000u));
	else
		put(o, " %" PRIu64 "\n", v);
}

/* One family of unlabelled sample. */
static void
plain(struct out *o, const struct tally_stat_info *i, uint64_t v)
{
	char family[128], sample[136];
	int scale;

	family_name(i, "", family, sizeof(family), &scale);
	header(o, family, i, i->help, i->kind == TALLY_STAT_COUNTER ? "counter" : "gauge", sample,
	       sizeof(sample));
	put(o, "%s", sample);
	value(o, v, scale);
}

/* A reason family of the workers: name{worker="i",reason="r"}. */
static void
reasons(struct out *o, const struct tally_stats_totals *t, const char *family_base,
	const char *help, unsigned int nreasons, const char *(*name)(unsigned int),
	const uint64_t *(*counts)(const struct tally_worker_stats *))
{
	char family[128], sample[136];
	uint32_t w;
	unsigned int r;

	snprintf(family, sizeof(family), PREFIX "%s", family_base);
	header(o, family, NULL, help, "counter", sample, sizeof(sample));
	for (w = 0; w < t->workers && w < TALLY_STATS_MAX_WORKERS; w++) {
		if (t->per_worker[w] == NULL)
			continue;
		for (r = 0; r < nreasons; r++)
			put(o, "%s{worker=\"%" PRIu32 "\",reason=\"%s\"} %" PRIu64 "\n", sample, w,
			    name(r), counts(t->per_worker[w])[r]);
	}
}

static const uint64_t *
malformed_of(const struct tally_worker_stats *s)
{
	return s->malformed;
}

static const uint64_t *
statsd_of(const struct tally_worker_stats *s)
{
	return s->statsd;
}

size_t
tally_prom_size(uint32_t workers, uint32_t ports)
{
	const size_t families = TALLY_WC_MAX + TALLY_CC_MAX + TALLY_OWN_MAX + TALLY_PC_MAX + 3;
	const size_t samples = (size_t)workers *
				       (TALLY_WC_MAX + TALLY_MALFORMED_MAX + TALLY_STATSD_REASON_MAX) +
			       TALLY_CC_MAX + TALLY_OWN_MAX + (size_t)ports * TALLY_PC_MAX +
			       TALLY_LAG_BUCKETS + 2;

	return families * 3 * LINE_MAX_ + samples * SAMPLE_MAX + 16;
}

size_t
tally_prom_render(char *buf, size_t cap, const struct tally_stats_totals *t,
		  const struct tally_port_sample *ports, uint32_t nports, int om)
{
	static const uint64_t bound[TALLY_LAG_BUCKETS - 1] = TALLY_LAG_BOUNDS_MS;
	struct out o = {.p = buf, .cap = cap, .om = om};
	char family[128], sample[136];
	uint64_t cum = 0;
	unsigned int i;
	uint32_t w, p;
	int scale;

	if (cap == 0)
		return 0;
	buf[0] = '\0';
	/* The worker lcores' counters, one sample per worker. */
	for (i = 0; i < TALLY_WC_MAX; i++) {
		const struct tally_stat_info *c = &tally_worker_counter_info[i];

		family_name(c, "", family, sizeof(family), &scale);
		header(&o, family, c, c->help, c->kind == TALLY_STAT_COUNTER ? "counter" : "gauge",
		       sample, sizeof(sample));
		for (w = 0; w < t->workers && w < TALLY_STATS_MAX_WORKERS; w++) {
			if (t->per_worker[w] == NULL)
				continue;
			put(&o, "%s{worker=\"%" PRIu32 "\"}", sample, w);
			value(&o, t->per_worker[w]->c[i], scale);
		}
	}
	reasons(&o, t, "malformed_reason", "datagrams rejected, by worker and reason",
		TALLY_MALFORMED_MAX, tally_malformed_name, malformed_of);
	reasons(&o, t, "statsd_refused_reason", "statsd lines refused, by worker and reason",
		TALLY_STATSD_REASON_MAX, tally_statsd_reason_name, statsd_of);
	for (i = 0; i < TALLY_CC_MAX; i++)
		plain(&o, &tally_control_counter_info[i], t->ctl.c[i]);
	for (i = 0; i < TALLY_OWN_MAX; i++)
		plain(&o, &tally_own_field_info[i], t->own[i]);
	/* The NIC counters, one sample per port. */
	for (i = 0; i < TALLY_PC_MAX; i++) {
		const struct tally_stat_info *c = &tally_port_counter_info[i];

		family_name(c, "port_", family, sizeof(family), &scale);
		header(&o, family, c, c->help, "counter", sample, sizeof(sample));
		for (p = 0; p < nports; p++) {
			if (!ports[p].ok)
				continue;
			put(&o, "%s{port=\"", sample);
			put_escaped(&o, ports[p].name, 1);
			put(&o, "\"} %" PRIu64 "\n", ports[p].v[i]);
		}
	}
	/* Window write lag: cumulative buckets in seconds, sum, count. */
	snprintf(family, sizeof(family), PREFIX "window_write_lag_seconds");
	header(&o, family, NULL, "a window's end to its last Redis acknowledgement, per window",
	       "histogram", sample, sizeof(sample));
	if (om)
		put(&o, "# UNIT %s seconds\n", family);
	for (i = 0; i < TALLY_LAG_BUCKETS; i++) {
		cum += t->lag_buckets[i];
		if (i < TALLY_LAG_BUCKETS - 1) {
			/* le in seconds, canonical: 0.01, 0.025, 1.0, 60.0 */
			char frac[8];
			int n = snprintf(frac, sizeof(frac), "%03u", (unsigned int)(bound[i] % 1000u));

			while (n > 1 && frac[n - 1] == '0')
				frac[--n] = '\0';
			put(&o, "%s_bucket{le=\"%" PRIu64 ".%s\"} %" PRIu64 "\n", family,
			    bound[i] / 1000u, frac, cum);
		} else
			put(&o, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", family, cum);
	}
	put(&o, "%s_sum", family);
	value(&o, t->lag_sum_ms, 1);
	put(&o, "%s_count %" PRIu64 "\n", family, cum);
	if (om)
		put(&o, "# EOF\n");
	return o.over ? 0 : o.len;
}
