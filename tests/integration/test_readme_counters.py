#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""README's Self-stats table and the counter lists agree: every counter tally counts
(lib/stats/tally_stats.h: the worker and control lists; the reasons of wire and statsd as
`malformed:<reason>` and `statsd:<reason>`) has a row, and every name a row gives is one tally
writes. Reads the sources only (no tally is started); the tool arguments are ignored."""

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXTRA = {'rx_missed', 'rx_nombuf', 'workers', 'uptime_s'}  # tally_stats_foreach()'s own
PER_WORKER = {'records', 'series', 'forwarded', 'received', 'hot_records', 'ring_full'}


def macro_names(text, macro):
    body = re.search(r'#define %s\(_\)(.*?)\n\n' % macro, text, re.S)
    if body is None:
        sys.exit('%s not found in tally_stats.h' % macro)
    return re.findall(r'\b_\((\w+)\)', body.group(1))


def readme_names():
    text = open(os.path.join(ROOT, 'README.md')).read()
    part = text.split('\n## Self-stats\n', 1)[1].split('\n## ', 1)[0]
    names = set()
    for line in part.splitlines():
        if line.startswith('| `'):
            names.update(re.findall(r'`([^`]+)`', line.split(' | ')[0]))
    return names


def main():
    stats = open(os.path.join(ROOT, 'lib', 'stats', 'tally_stats.h')).read()
    counters = (macro_names(stats, 'TALLY_FOREACH_WORKER_COUNTER') +
                macro_names(stats, 'TALLY_FOREACH_CONTROL_COUNTER'))
    if len(counters) < 50:
        sys.exit('only %d counters parsed: the lists moved?' % len(counters))
    want = set(counters) | EXTRA | {'malformed:<reason>', 'statsd:<reason>'}
    want |= {'w<i>:' + f for f in PER_WORKER}
    got = readme_names()
    missing = sorted(want - got)
    unknown = sorted(got - want)
    failed = False
    if missing:
        print('README Self-stats lacks: %s' % ', '.join(missing))
        failed = True
    if unknown:
        print('README Self-stats names what tally does not write: %s' % ', '.join(unknown))
        failed = True
    if failed:
        sys.exit(1)
    print('# %d counters, README agrees' % len(want))


if __name__ == '__main__':
    main()
