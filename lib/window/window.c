/* SPDX-License-Identifier: BSD-3-Clause */
/* The final stage: merges the workers' partials per window and hands complete windows out. */
#include <errno.h>
#include <string.h>

#include "tally_window.h"

enum { SLOT_FREE, SLOT_MERGING, SLOT_OUT };

int
tally_merger_init(struct tally_merger *m, uint32_t nworkers, uint64_t window_ms,
		  struct tally_table **tables, uint32_t ntables)
{
	uint32_t i;

	if (m == NULL || nworkers == 0 || nworkers > TALLY_MERGER_MAX_WORKERS || window_ms == 0 ||
	    tables == NULL || ntables == 0 || ntables > TALLY_MERGER_MAX_TABLES)
		return -EINVAL;
	memset(m, 0, sizeof(*m));
	m->nworkers = nworkers;
	m->ntables = ntables;
	m->window_ms = window_ms;
	for (i = 0; i < ntables; i++) {
		if (tables[i] == NULL)
			return -EINVAL;
		m->pool[i] = tables[i];
		tally_table_reset(tables[i]);
	}
	return 0;
}

static int
find_window(const struct tally_merger *m, uint64_t start_ms, int state)
{
	uint32_t i;

	for (i = 0; i < m->ntables; i++)
		if (m->state[i] == state && m->start[i] == start_ms)
			return (int)i;
	return -1;
}

static int
find_free(const struct tally_merger *m)
{
	uint32_t i;

	for (i = 0; i < m->ntables; i++)
		if (m->state[i] == SLOT_FREE)
			return (int)i;
	return -1;
}

/* What a worker's table counted (side memory spent, kinds, folds), taken once. */
static void
count_part(struct tally_merger *m, const struct tally_table *part)
{
	m->side_full += part->side_full;
	m->kind_mismatch += part->kind_mismatch;
	m->folded += part->folded;
}

int
tally_merger_add(struct tally_merger *m, uint64_t start_ms, const struct tally_table *part)
{
	int i;

	if (part == NULL)
		return 0;
	if (part->series == 0) {
		count_part(m, part);
		return 0;
	}
	i = find_window(m, start_ms, SLOT_MERGING);
	if (i < 0) {
		/* Already handed out: the caller counts these records as late. */
		if (find_window(m, start_ms, SLOT_OUT) >= 0 || start_ms + m->window_ms <= m->done) {
			count_part(m, part);
			return -EINVAL;
		}
		i = find_free(m);
		if (i < 0)
			return -ENOSPC; /* given again later: counted then */
		m->state[i] = SLOT_MERGING;
		m->start[i] = start_ms;
		tally_table_reset(m->pool[i]);
	}
	count_part(m, part);
	m->lost_series += tally_table_merge(m->pool[i], part);
	m->lost_records += m->pool[i]->full;
	m->pool[i]->full = 0;
	/* what the merge into this one did */
	count_part(m, m->pool[i]);
	m->pool[i]->side_full = 0;
	m->pool[i]->kind_mismatch = 0;
	m->pool[i]->folded = 0;
	return 0;
}

void
tally_merger_close(struct tally_merger *m, uint32_t worker, uint64_t end_ms)
{
	if (worker < m->nworkers && end_ms > m->closed[worker])
		m->closed[worker] = end_ms;
}

struct tally_table *
tally_merger_next(struct tally_merger *m, int force, uint64_t *start_ms)
{
	uint64_t closed = UINT64_MAX; /* every worker has closed the windows ending by then */
	int best = -1;
	uint32_t i;

	for (i = 0; i < m->nworkers; i++)
		if (m->closed[i] < closed)
			closed = m->closed[i];
	for (i = 0; i < m->ntables; i++) {
		if (m->state[i] != SLOT_MERGING)
			continue;
		if (!force && m->start[i] + m->window_ms > closed)
			continue;
		if (best < 0 || m->start[i] < m->start[best])
			best = (int)i;
	}
	if (best < 0)
		return NULL;
	if (m->start[best] + m->window_ms > m->done)
		m->done = m->start[best] + m->window_ms;
	m->state[best] = SLOT_OUT;
	*start_ms = m->start[best];
	return m->pool[best];
}

void
tally_merger_release(struct tally_merger *m, struct tally_table *t)
{
	uint32_t i;

	for (i = 0; i < m->ntables; i++) {
		if (m->pool[i] == t && m->state[i] == SLOT_OUT) {
			m->state[i] = SLOT_FREE;
			tally_table_reset(t);
			return;
		}
	}
}

uint32_t
tally_merger_busy(const struct tally_merger *m)
{
	uint32_t i, n = 0;

	for (i = 0; i < m->ntables; i++)
		n += m->state[i] != SLOT_FREE;
	return n;
}

uint32_t
tally_merger_merging(const struct tally_merger *m)
{
	uint32_t i, n = 0;

	for (i = 0; i < m->ntables; i++)
		n += m->state[i] == SLOT_MERGING;
	return n;
}
