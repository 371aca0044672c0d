#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""README's Self-stats table is `tally -- --counters` verbatim: the counter lists (each
module's tally_*_counters.h, gathered by lib/stats: name, kind, unit, help, Prometheus name)
and the table agree row by row, and every field tally:self can hold is in them. Starts no
tally (only --counters, which exits before EAL)."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BEGIN = '<!-- tally -- --counters -->\n'
END = '<!-- end of tally -- --counters -->\n'


def main():
    tally = sys.argv[sys.argv.index('--tally') + 1]
    out = subprocess.run([tally, '--', '--counters'], stdout=subprocess.PIPE, check=True,
                         timeout=30).stdout.decode()
    rows = [l for l in out.splitlines() if l.startswith('| `')]
    if len(rows) < 100:
        sys.exit('tally --counters printed only %d rows' % len(rows))
    text = open(os.path.join(ROOT, 'README.md')).read()
    if BEGIN not in text or END not in text:
        sys.exit('README.md lacks the %r ... %r block' % (BEGIN.strip(), END.strip()))
    block = text.split(BEGIN, 1)[1].split(END, 1)[0]
    if block != out:
        want, got = out.splitlines(), block.splitlines()
        for i in range(max(len(want), len(got))):
            w = want[i] if i < len(want) else '<none>'
            g = got[i] if i < len(got) else '<none>'
            if w != g:
                print('README line %d of the table differs:\n  tally:  %s\n  README: %s'
                      % (i + 1, w, g))
                break
        sys.exit('README Self-stats table is not `tally -- --counters`: paste its output '
                 'between the markers')
    print('# %d rows, README agrees' % len(rows))


if __name__ == '__main__':
    main()
