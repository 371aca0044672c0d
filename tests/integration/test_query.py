#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""tally-query for people, on a data set the test writes into a private Redis (no tally run).

Window starts printed as UTC next to the epoch ms (tables, --json "time", --csv); --from/--to
and range's FROM/TO as epoch ms, ISO 8601 and times before now selecting the same windows; a
bad time is one line and exit 2; --csv parses into the values --json gives; --sparkline (and a
terminal) gives one line per field, a block per window; totals unchanged, byte for byte.
"""

import csv
import datetime
import io
import json
import os
import pty
import subprocess
import time

import tallytest as tt

DEVICE = 7
METRIC = 3
MINUTE = 60000
BLOCKS = '▁▂▃▄▅▆▇█'
FIELDS = ('count', 'sum', 'min', 'max', 'last')


def windows_of(t0):
    """Eight window starts, the i-th (i = 1..8) i minutes and 30 s before t0, oldest first:
    '-Nm' (N = 1..8) then falls 30 s from any window, whatever the test's own delay."""
    return [t0 - i * MINUTE - 30000 for i in range(8, 0, -1)]


def dataset(t0):
    """Commands writing a schema v2 data set, and its totals in tally-gen's --totals format."""
    cmds, acc = [], {}
    windows = windows_of(t0)
    for d in (DEVICE, DEVICE + 1):
        for wi, w in enumerate(windows):
            fields = ['_applied:test:1:1:%016x' % (d * 16 + wi), '1']
            for m in (1, METRIC):
                count = 1 + (d * 31 + m * 7 + wi * wi) % 50
                mn = (d + m + wi) % 13
                mx = mn + (d * m * (wi + 3)) % 900
                total = count * mn + (mx - mn)
                fields += ['%d:count' % m, count, '%d:sum' % m, total, '%d:min' % m, mn,
                           '%d:max' % m, mx, '%d:ts' % m, '%020d' % (w * 1000000 + d)]
                if wi != 5:  # one window without `last`: "-" in tables, null and empty
                    fields += ['%d:last' % m, '%.17g' % (0.1 * wi + 0.2)]
                tt.fold_series(acc, (d, m), count, float(total), float(mn), float(mx))
            cmds.append(['HSET', 'tally:{%d}:%d' % (d, w)] + fields)
        cmds.append(['SET', 'tally:{%d}:latest' % d, windows[-1]])
    cmds.append(['HSET', 'tally:self', 'datagrams', 20000, 'records', 160000, 'workers', 1,
                 'note', 'a,"quoted" value'])
    cmds.append(['ZADD', 'tally:top', 900, DEVICE, 400, DEVICE + 1])
    cmds.append(['SET', 'tally:top:window', windows[-1]])
    return cmds, tt.format_totals(acc)


def query(ctx, redis, args, ok=(0,)):
    return tt.run_tool([ctx.args.tally_query, '--redis', redis.addr] + [str(a) for a in args],
                       ok=ok)


def iso(ms):
    """What tally-query prints for an epoch ms."""
    t = datetime.datetime.fromtimestamp(ms // 1000, datetime.timezone.utc)
    return t.strftime('%Y-%m-%dT%H:%M:%S') + '.%03dZ' % (ms % 1000)


def iso_ms(text):
    """Epoch ms of an ISO 8601 UTC time as tally-query prints it."""
    t = datetime.datetime.strptime(text, '%Y-%m-%dT%H:%M:%S.%fZ')
    return int(t.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000)


def range_json(ctx, redis, args):
    _, out, _ = query(ctx, redis, ['--json', 'range', DEVICE, METRIC] + list(args))
    return json.loads(out)


def check_times(ctx, redis, windows):
    """The UTC time next to every window start is that start, in every output."""
    rows = range_json(ctx, redis, [])
    tt.check_eq([r['window'] for r in rows], windows, 'range --json windows')
    for r in rows:
        tt.check_eq(iso_ms(r['time']), r['window'], 'range --json time of %d' % r['window'])
        tt.check_eq(r['time'], iso(r['window']), 'range --json time text')
    _, out, _ = query(ctx, redis, ['range', DEVICE, METRIC])
    lines = out.splitlines()
    tt.check_eq(lines[0].split()[:3], ['window', 'time', 'count'], 'range table header')
    for line, w in zip(lines[1:], windows):
        tt.check_eq(iso_ms(line.split()[1]), int(line.split()[0]), 'range table row %r' % line)
        tt.check_eq(int(line.split()[0]), w, 'range table window')
    tt.check_eq(len(lines), 1 + len(windows), 'range table lines (no sparkline on a pipe)')
    _, out, _ = query(ctx, redis, ['latest', DEVICE])
    tt.check_eq(out.splitlines()[0], 'device %d  window %d  %s' % (DEVICE, windows[-1],
                                                                   iso(windows[-1])),
                'latest table header')
    j = json.loads(query(ctx, redis, ['--json', 'latest', DEVICE])[1])
    tt.check_eq((j['window'], iso_ms(j['time'])), (windows[-1], windows[-1]), 'latest --json')
    _, out, _ = query(ctx, redis, ['top'])
    tt.check_eq(out.splitlines()[0], 'heaviest devices of window %d  %s' % (windows[-1],
                                                                           iso(windows[-1])),
                'top table header')
    j = json.loads(query(ctx, redis, ['--json', 'top'])[1])
    tt.check_eq((j['window'], iso_ms(j['time'])), (windows[-1], windows[-1]), 'top --json')
    tt.log('times: %s = %d (and %d more windows)' % (rows[0]['time'], rows[0]['window'],
                                                      len(rows) - 1))


def check_time_forms(ctx, redis, windows):
    """Epoch ms, ISO 8601 (Z, fraction, +00:00, an offset) and times before now agree."""
    # 4.5 and 1.5 minutes back: '-5m' to '-2m' select the same, windows[4:7].
    frm, to = windows[4], windows[7]
    want = range_json(ctx, redis, ['--from', frm, '--to', to])
    tt.check_eq([r['window'] for r in want], windows[4:7], 'windows in [from, to)')
    z = lambda ms: iso(ms)[:-5] + 'Z'
    plus = lambda ms: iso(ms)[:-1] + '+00:00'

    def east(ms):  # the same instant at UTC+02:00
        t = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)
        return (t + datetime.timedelta(hours=2)).strftime('%Y-%m-%dT%H:%M:%S') + '+02:00'

    forms = [
        ['--from', frm, '--to', to], [frm, to], ['--from', z(frm), '--to', z(to)],
        ['--from', iso(frm), '--to', iso(to)], ['--from', plus(frm), '--to', plus(to)],
        [z(frm), '--to', iso(to)], ['--from', east(frm), '--to', east(to)],
        ['--from', iso(frm)[:-1] + '123456Z', '--to', iso(to - 1)[:-1] + '9Z'],
        ['--from', '-5m', '--to', '-2m'], ['-5m', '-2m'], ['--', '-300s', '-120s'],
        ['--from', '-300s', '--to', '-2m'],
    ]
    t0 = time.time()
    for f in forms:
        tt.check_eq(range_json(ctx, redis, f), want, 'range %s' % ' '.join(map(str, f)))
    tt.check(time.time() - t0 < 25, 'the relative forms ran within 25 s of each other')
    every = range_json(ctx, redis, [])
    for f in (['--from', '-1d'], ['--from', '-1h'], ['0'], ['--from', '-1d', '--to', '-0s'],
              ['--from', '1970-01-01T00:00:00Z']):
        tt.check_eq(range_json(ctx, redis, f), every, 'range %s' % ' '.join(f))
    tt.check_eq(range_json(ctx, redis, ['--from', '-1m']), [], 'range --from -1m')
    tt.log('%d forms of [%s, %s) gave windows %s' % (len(forms), iso(frm), iso(to),
                                                     [r['time'] for r in want]))


def check_bad_times(ctx, redis):
    """A bad time: exit 2, one stderr line naming the option (or argument) and the value."""
    bad = ['-15x', '15m', '-m', '2026-13-01T00:00:00Z', '2026-02-30T00:00:00Z',
           '2026-12-04T01:23:45', '2026-12-04 01:23:45Z', '2026-12-04T24:00:00Z',
           '2026-12-04T01:23:45.Z', '2026-12-04T01:23:45+0000', '1969-12-31T23:59:59Z',
           'yesterday', '', '-99999999999d', '18446744073709551616']
    sample = None
    cases = [(['--from', b], '--from', b) for b in bad] + \
            [(['--to', b], '--to', b) for b in bad[:4]] + \
            [(['--', b], 'FROM', b) for b in bad[:4]] + [(['0', '--', b], 'TO', b) for b in bad[:3]]
    for args, what, value in cases:
        rc, out, err = query(ctx, redis, ['range', DEVICE, METRIC] + args, ok=None)
        lines = err.splitlines()
        sample = sample if args[0] != '--from' or value != '-15x' else err.strip()
        tt.check(rc == 2 and out == '' and len(lines) == 1 and
                 lines[0].startswith('tally-query: %s: ' % what) and ("'%s'" % value) in lines[0],
                 'range %s: rc %d, stdout %r, stderr %r' % (args, rc, out, err))
    for args in (['--from', '-1h', 'latest', DEVICE], ['--to', '0', 'totals'],
                 ['range', DEVICE, METRIC, '0', '--from', '0'], ['--json', '--csv', 'self']):
        rc, out, err = query(ctx, redis, args, ok=None)
        tt.check(rc == 2 and out == '' and len(err.splitlines()) == 1,
                 '%s: rc %d, stderr %r' % (args, rc, err))
    tt.log('%d bad times refused, e.g. %s' % (len(cases), sample))


def same_value(c, j):
    """A CSV field against the JSON value of the same cell."""
    if j is None:
        return c == ''
    if isinstance(j, str):
        return c == j
    return float(c) == float(j) and (not isinstance(j, int) or c == str(j))


def check_csv(ctx, redis):
    """--csv: a header, then rows that Python's csv module reads into --json's values."""
    def both(args):
        _, c, _ = query(ctx, redis, ['--csv'] + args)
        _, j, _ = query(ctx, redis, ['--json'] + args)
        tt.check(c.splitlines()[0].count(',') >= 1, '%s --csv header: %r' % (args, c))
        tt.check('  ' not in c, '%s --csv: no alignment padding' % args)
        return list(csv.DictReader(io.StringIO(c, newline=''))), json.loads(j)

    def compare(args, rows, objs):
        tt.check_eq(len(rows), len(objs), '%s: CSV rows' % args)
        tt.check(len(rows) > 0, '%s: no rows' % args)
        for r, o in zip(rows, objs):
            tt.check_eq(sorted(r), sorted(o), '%s: CSV columns' % args)
            bad = [k for k in r if not same_value(r[k], o[k])]
            tt.check(not bad, '%s: CSV %r and JSON %r differ in %s' % (args, r, o, bad))

    for args in (['range', DEVICE, METRIC], ['range', DEVICE + 1, 1, '-4m'], ['totals'],
                 ['totals', DEVICE]):
        compare(args, *both(args))
    rows, j = both(['latest', DEVICE])
    compare('latest', rows, [dict(m, device=j['device'], window=j['window'], time=j['time'])
                             for m in j['metrics']])
    rows, j = both(['top'])
    compare('top', rows, [dict(d, rank=i + 1, window=j['window'], time=j['time'])
                          for i, d in enumerate(j['devices'])])
    rows, j = both(['self'])
    compare('self', rows, [{'name': k, 'value': v} for k, v in sorted(j.items())])
    tt.check_eq(j['note'], 'a,"quoted" value', 'self note (a value that needs quoting)')
    _, c, _ = query(ctx, redis, ['--csv', 'range', DEVICE, METRIC])
    tt.check(c.split('\n')[6].endswith(','), 'an absent last is an empty CSV field: %r' % c)
    tt.log('--csv: range, latest, top, self, totals equal to --json; e.g. %r'
           % c.splitlines()[1])


def sparkline_lines(out, nwin):
    """The sparkline lines after range's table of nwin rows: {field: (blocks, rest)}."""
    lines = out.split('\n')
    tt.check_eq(lines[-1], '', 'output ends with a newline')
    spark = lines[1 + nwin:-1]
    tt.check_eq([s[:7] for s in spark], [f.ljust(7) for f in FIELDS], 'sparkline names')
    return {f: (s[7:7 + nwin], s[7 + nwin:]) for f, s in zip(FIELDS, spark)}


def expected_blocks(rows, field):
    vals = [r[field] for r in rows]
    present = [v for v in vals if v is not None]
    lo, hi = min(present), max(present)
    span = hi / 2 - lo / 2
    return ''.join(' ' if v is None else
                   BLOCKS[min(7, int((v / 2 - lo / 2) / span * 7 + 0.5)) if span > 0 else 0]
                   for v in vals), lo, hi


def check_sparkline(ctx, redis, windows):
    """--sparkline (or a terminal): one line per field, one block per window, scaled."""
    rows = range_json(ctx, redis, [])
    _, out, _ = query(ctx, redis, ['--sparkline', 'range', DEVICE, METRIC])
    got = sparkline_lines(out, len(windows))
    for f in FIELDS:
        blocks, lo, hi = expected_blocks(rows, f)
        tt.check_eq(got[f][0], blocks, '%s sparkline' % f)
        tt.check_eq(len(got[f][0]), len(windows), '%s sparkline length' % f)
        tt.check_eq(got[f][1], '  %.17g .. %.17g' % (lo, hi), '%s sparkline range' % f)
    tt.check(' ' in got['last'][0] and '█' in got['count'][0] and '▁' in got['count'][0],
             'sparklines %r' % got)

    # No sparkline in JSON or CSV, even when asked for; one on a terminal without asking.
    for fmt in ('--json', '--csv'):
        _, a, _ = query(ctx, redis, [fmt, '--sparkline', 'range', DEVICE, METRIC])
        _, b, _ = query(ctx, redis, [fmt, 'range', DEVICE, METRIC])
        tt.check_eq(a, b, '%s with --sparkline' % fmt)
    master, slave = pty.openpty()
    try:
        p = subprocess.run([ctx.args.tally_query, '--redis', redis.addr, 'range', str(DEVICE),
                            str(METRIC)], stdout=slave, stderr=subprocess.PIPE, timeout=30)
        os.close(slave)
        slave = None
        data = b''
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the terminal's other side is closed and drained
                break
            if not chunk:
                break
            data += chunk
    finally:
        os.close(master)
        if slave is not None:
            os.close(slave)
    tt.check_eq(p.returncode, 0, 'range on a terminal: exit status (stderr %r)' % p.stderr)
    tty = data.decode().replace('\r\n', '\n')
    tt.check_eq(sparkline_lines(tty, len(windows)), got, 'sparkline on a terminal')
    tt.log('sparklines:\n' + '\n'.join(out.splitlines()[1 + len(windows):]))


def body(ctx):
    redis = ctx.redis()
    t0 = int(time.time()) * 1000
    windows = windows_of(t0)
    cmds, totals = dataset(t0)
    redis.client.pipeline(cmds)

    # totals: the format tally-gen --totals writes, byte for byte, unchanged.
    _, out, err = query(ctx, redis, ['totals'])
    tt.compare_totals_text(totals, out, 'totals')
    tt.check_eq(err, '', 'totals stderr')

    check_time_forms(ctx, redis, windows)  # first: the relative forms need t0 to be recent
    check_times(ctx, redis, windows)
    check_bad_times(ctx, redis)
    check_csv(ctx, redis)
    check_sparkline(ctx, redis, windows)


if __name__ == '__main__':
    tt.main(body)
