#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""tally-query quantile and distinct, on sketches the test writes into a private Redis (no
tally run): 3 devices x 3 windows of a histogram metric (each window key's `<m>:sketch`, made
by tests/unit/dds_tool from lognormal, Pareto and signed values) and of a distinct metric (its
HLL in `tally:{d}:<w>:hll:<m>`, made by PFADD).

quantile: every q within 1% of the exact value (rank floor(q (n - 1)) of the sorted values) per
window (--from/--to, epoch ms and ISO 8601), over the windows of a device and over devices
(--devices, DEVICE '-' or left out); equal to the quantiles of one sketch of all those values
(the merge is exact); count, sum, min, max and the windows merged; --json and --csv say the
same; clamped and folded values are reported. distinct: equal to PFCOUNT of the same keys and
within 2% of the true cardinality. The HLL keys leave totals, range and latest as they were
(totals prints "-" for a distinct metric's sum, min and max). Bad --q lists, a corrupt sketch
or HLL, and nothing found are one line each (exit 2, 1, 1). On a 3-master Redis Cluster every
query answers the same. The C side of the sketches is tests/unit/dds_tool (--dds-tool).
"""

import csv
import datetime
import io
import json
import math
import random
import struct
import subprocess

import rcluster
import tallytest as tt

DEVICES = (11, 12, 13)
WINDOWS = (1796223600000, 1796223610000, 1796223620000)
WINDOW_MS = 10000
HIST = 7      # histogram: count, sum, min, max, sketch
DIST = 9      # distinct: count in the window key, the HLL in a key of its own
COUNTER = 1   # a counter beside them: count, sum, min, max, last
TTL_S = 3600
QS = (0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1)
Q_ARG = ','.join('%g' % q for q in QS)
# Devices of the error cases, apart from the data set.
FOLD_DEVICE = 21     # a sketch of 16 buckets (folded values) and values out of range (clamped)
BAD_DEVICE = 22      # a sketch field that does not parse, an HLL key that is not an HLL


def extra_args(ap):
    ap.add_argument('--dds-tool', required=True, help='tests/unit/dds_tool')


class Tool:
    """tests/unit/dds_tool: values to sketch bytes, and the quantiles of a sketch."""

    def __init__(self, path):
        self.path = path

    def _run(self, args, data):
        p = subprocess.run([self.path] + args, input=data, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        if p.returncode != 0:
            raise tt.Failure('dds_tool %s: exit %d: %s' % (' '.join(args), p.returncode,
                                                           p.stderr.decode().strip()))
        return p.stdout

    def serialise(self, values, cap=None):
        text = ''.join('%r\n' % float(v) for v in values).encode()
        return self._run(['serialise'] + ([str(cap)] if cap else []), text)

    def quantiles(self, sketch, qs=QS):
        """{q: value} and {count, zero, clamped, folded} of a serialised sketch."""
        out = self._run(['quantile'] + ['%r' % q for q in qs], sketch).decode().split('\n')
        head = dict((k, int(v)) for k, v in (line.split() for line in out[:4]))
        return [float(line.split()[1]) for line in out[4:4 + len(qs)]], head


def values_of(rnd, di, n):
    """Device di's values: lognormal, Pareto, or signed lognormal with some zeros."""
    if di == 0:
        return [rnd.lognormvariate(3, 1.5) for _ in range(n)]
    if di == 1:
        return [10 * rnd.paretovariate(1.5) for _ in range(n)]
    out = []
    for _ in range(n):
        u = rnd.random()
        x = rnd.lognormvariate(0, 2)
        out.append(0.0 if u < 0.05 else -x if u < 0.35 else x)
    return out


def hkey(d, w):
    return 'tally:{%d}:%d' % (d, w)


def hllkey(d, w, m=DIST):
    return 'tally:{%d}:%d:hll:%d' % (d, w, m)


def fmt(v):
    return '%.17g' % v


def dataset(tool):
    """(Redis commands, {(device, window): histogram values}, {(device, window): elements})."""
    rnd = random.Random(20261202)
    pool = [rnd.getrandbits(64) for _ in range(80000)]
    cmds, hist, elems = [], {}, {}
    for di, d in enumerate(DEVICES):
        for wi, w in enumerate(WINDOWS):
            vals = values_of(rnd, di, 2000 + 1000 * wi + 500 * di)
            # Windows of a device overlap by 6,000 elements, devices by 10,000.
            el = pool[di * 20000 + wi * 12000:di * 20000 + wi * 12000 + 18000 + 1000 * wi]
            hist[(d, w)], elems[(d, w)] = vals, el
            fields = ['_applied:test:1:1:%016x' % (d * 16 + wi), '1',
                      '%d:count' % HIST, len(vals), '%d:sum' % HIST, fmt(math.fsum(vals)),
                      '%d:min' % HIST, fmt(min(vals)), '%d:max' % HIST, fmt(max(vals)),
                      '%d:sketch' % HIST, tool.serialise(vals),
                      '%d:count' % DIST, len(el),
                      '%d:count' % COUNTER, 10 + wi, '%d:sum' % COUNTER, 100 + d,
                      '%d:min' % COUNTER, 1, '%d:max' % COUNTER, 50 + wi,
                      '%d:last' % COUNTER, 7, '%d:ts' % COUNTER, '%020d' % (w * 1000000)]
            cmds.append(['HSET', hkey(d, w)] + fields)
            cmds += [['PFADD', hllkey(d, w)] + [struct.pack('<Q', e) for e in el[i:i + 1000]]
                     for i in range(0, len(el), 1000)]
            cmds += [['EXPIRE', hkey(d, w), TTL_S], ['EXPIRE', hllkey(d, w), TTL_S]]
        cmds.append(['SET', 'tally:{%d}:latest' % d, WINDOWS[-1]])

    # Folded (a 16-bucket sketch of values over 6 decades) and clamped (beyond 1e12) values.
    wide = [10 ** (rnd.random() * 6) for _ in range(3000)] + [5e12, 1e13, -2e15]
    fold = tool.serialise(wide, cap=16)
    cmds.append(['HSET', hkey(FOLD_DEVICE, WINDOWS[0]), '%d:count' % HIST, len(wide),
                 '%d:sketch' % HIST, fold])
    # A truncated sketch and an HLL key holding something else.
    good = tool.serialise([1.0, 2.0, 3.0])
    cmds.append(['HSET', hkey(BAD_DEVICE, WINDOWS[1]), '%d:count' % HIST, 3,
                 '%d:sketch' % HIST, good[:-1], '%d:count' % DIST, 3])
    cmds.append(['SET', hllkey(BAD_DEVICE, WINDOWS[1]), b'HYLL' + bytes(20)])
    return cmds, hist, elems


def query(ctx, addr, args, ok=(0,)):
    return tt.run_tool([ctx.args.tally_query, '--redis', addr] + [str(a) for a in args], ok=ok)


def exact(values, qs=QS):
    s = sorted(values)
    return [s[math.floor(q * (len(s) - 1))] for q in qs]


def check_close(got, want, what):
    """DDSketch's promise: within 1% of the exact value (0 exactly for 0)."""
    for q, g, x in zip(QS, got, want):
        tt.check(abs(g - x) <= 0.01 * abs(x) * (1 + 1e-12),
                 '%s: q %g is %r, exact %r (%.3f%% off)'
                 % (what, q, g, x, 100 * abs(g - x) / abs(x) if x else math.inf))


def quantile_json(ctx, addr, args):
    _, out, err = query(ctx, addr, ['--json', 'quantile', '--q', Q_ARG] + args)
    tt.check(err == '', 'quantile %s wrote to stderr: %r' % (args, err))
    return json.loads(out)


def check_quantile(ctx, tool, addr, hist, args, keys, what):
    """quantile with args merges exactly the windows `keys`: values, stats, table, CSV."""
    j = quantile_json(ctx, addr, args)
    vals = [v for k in keys for v in hist[k]]
    got = [r['value'] for r in j['quantiles']]
    tt.check_eq([r['q'] for r in j['quantiles']], list(QS), what + ': q in order')
    check_close(got, exact(vals), what)
    # The merge is exact: the quantiles of one sketch of every value, to the last bit (held
    # within the windows' min and max, as tally-query reports them).
    one, head = tool.quantiles(tool.serialise(vals))
    one = [min(max(v, min(vals)), max(vals)) for v in one]
    tt.check_eq(got, one, what + ': quantiles of the sketch of all the values')
    tt.check_eq(head['count'], len(vals), what + ': dds_tool count')
    devices = sorted({d for d, _ in keys})
    tt.check_eq((j['devices'], j['windows'], j['count']), (devices, len(keys), len(vals)),
                what + ': devices, windows, count')
    tt.check_eq((j['min'], j['max']), (min(vals), max(vals)), what + ': min, max')
    # tally-query adds the windows' sums in key order: (device, window).
    tt.check_eq(j['sum'], sum(float(fmt(math.fsum(hist[k]))) for k in sorted(keys)),
                what + ': sum')
    tt.check_eq((j['clamped'], j['folded']), (0, 0), what + ': clamped, folded')

    # The table: one line of what was merged, then q and value; CSV: the same in every row.
    _, out, _ = query(ctx, addr, ['quantile', '--q', Q_ARG] + args)
    lines = out.splitlines()
    label = ('device %d' % devices[0] if len(devices) == 1 else
             'devices %d-%d' % (devices[0], devices[-1]) if devices[-1] - devices[0] ==
             len(devices) - 1 else 'devices ' + ','.join(map(str, devices)))
    tt.check_eq(lines[0], '%s  metric %d  windows %d  count %d  sum %s  min %s  max %s'
                % (label, HIST, len(keys), len(vals), fmt(j['sum']), fmt(j['min']),
                   fmt(j['max'])), what + ': table header')
    tt.check_eq(lines[1].split(), ['q', 'value'], what + ': table columns')
    tt.check_eq([(float(a), float(b)) for a, b in (line.split() for line in lines[2:])],
                list(zip(QS, got)), what + ': table rows')
    _, out, _ = query(ctx, addr, ['--csv', 'quantile', '--q', Q_ARG] + args)
    rows = list(csv.DictReader(io.StringIO(out)))
    tt.check_eq([(float(r['q']), float(r['value'])) for r in rows], list(zip(QS, got)),
                what + ': CSV rows')
    tt.check(all((r['devices'], int(r['windows']), int(r['count']), float(r['sum']),
                  r['clamped'], r['folded']) ==
                 (label.split()[1], len(keys), len(vals), j['sum'], '0', '0') for r in rows),
             what + ': CSV columns: %r' % rows[:1])
    tt.log('%s: %d windows, %d values, p50 %.6g (exact %.6g), p99.9 %.6g (exact %.6g)'
           % (what, len(keys), len(vals), got[5], exact(vals)[5], got[10], exact(vals)[10]))


def iso(ms):
    t = datetime.datetime.fromtimestamp(ms // 1000, datetime.timezone.utc)
    return t.strftime('%Y-%m-%dT%H:%M:%SZ')


def check_quantiles(ctx, tool, addr, hist):
    all_keys = sorted(hist)
    for d in DEVICES:
        for w in WINDOWS:
            check_quantile(ctx, tool, addr, hist, [d, HIST, '--from', w, '--to', w + 1],
                           [(d, w)], 'device %d window %d' % (d, w))
        check_quantile(ctx, tool, addr, hist, [d, HIST], [(d, w) for w in WINDOWS],
                       'device %d, all windows' % d)
    d = DEVICES[1]
    check_quantile(ctx, tool, addr, hist, [d, HIST, '--from', iso(WINDOWS[1])],
                   [(d, w) for w in WINDOWS[1:]], 'device %d from %s' % (d, iso(WINDOWS[1])))
    check_quantile(ctx, tool, addr, hist, [d, HIST, '--to', iso(WINDOWS[2])],
                   [(d, w) for w in WINDOWS[:2]], 'device %d to %s' % (d, iso(WINDOWS[2])))
    check_quantile(ctx, tool, addr, hist, ['--devices', '%d-%d' % (DEVICES[0], DEVICES[-1]),
                                           HIST], all_keys, 'devices 11-13')
    check_quantile(ctx, tool, addr, hist, ['-', HIST, '--devices', '13,11,40-50'],
                   [k for k in all_keys if k[0] != 12], 'devices 11,13')
    check_quantile(ctx, tool, addr, hist, ['--devices', '0-12', HIST, '--from', WINDOWS[1],
                                           '--to', WINDOWS[2]],
                   [(d, WINDOWS[1]) for d in DEVICES[:2]], 'devices 11-12, window 2')
    # Without --q: the median and the tail.
    _, out, _ = query(ctx, addr, ['--json', 'quantile', 11, HIST])
    tt.check_eq([r['q'] for r in json.loads(out)['quantiles']], [0.5, 0.9, 0.99, 0.999],
                'the default quantiles')


def check_folded(ctx, addr):
    """A sketch with folded and clamped values: said in the table, counted in JSON."""
    j = quantile_json(ctx, addr, [FOLD_DEVICE, HIST])
    tt.check_eq((j['clamped'], j['folded'] > 0, j['count']), (3, True, 3003),
                'clamped and folded of device %d' % FOLD_DEVICE)
    tt.check_eq((j['sum'], j['min'], j['max']), (None, None, None), 'absent fields are null')
    _, out, _ = query(ctx, addr, ['quantile', FOLD_DEVICE, HIST])
    want = 'device %d  metric %d  windows 1  count 3003  sum -  min -  max -  clamped 3  ' \
           'folded %d' % (FOLD_DEVICE, HIST, j['folded'])
    tt.check_eq(out.splitlines()[0], want, 'table header with clamped and folded')
    tt.log('folded: %s' % out.splitlines()[0])


def check_distinct(ctx, addr, client, elems, pfcount=True):
    """distinct over windows and devices equals PFCOUNT of the keys, within 2% of the truth."""
    cases = [([d, DIST, '--from', w, '--to', w + 1], [(d, w)]) for d in DEVICES
             for w in WINDOWS]
    cases += [([d, DIST], [(d, w) for w in WINDOWS]) for d in DEVICES]
    cases += [(['--devices', '11-13', DIST], sorted(elems)),
              (['-', DIST, '--devices', '11,13', '--from', WINDOWS[1]],
               [(d, w) for d in (11, 13) for w in WINDOWS[1:]])]
    for args, keys in cases:
        _, out, err = query(ctx, addr, ['--json', 'distinct'] + args)
        tt.check(err == '', 'distinct %s wrote to stderr: %r' % (args, err))
        j = json.loads(out)
        truth = len(set(e for k in keys for e in elems[k]))
        tt.check_eq((j['devices'], j['metric'], j['keys']),
                    (sorted({d for d, _ in keys}), DIST, len(keys)), 'distinct %s' % args)
        if pfcount:
            want = client.call('PFCOUNT', *[hllkey(*k) for k in keys])
            tt.check_eq(j['distinct'], want, 'distinct %s vs PFCOUNT of its %d keys'
                        % (args, len(keys)))
        tt.check(abs(j['distinct'] - truth) <= 0.02 * truth,
                 'distinct %s: %d, true cardinality %d' % (args, j['distinct'], truth))
        _, out, _ = query(ctx, addr, ['distinct'] + args)
        lines = out.splitlines()
        tt.check_eq(lines[1:], ['keys  distinct', '%-4d  %8d' % (len(keys), j['distinct'])],
                    'distinct %s table' % args)
        _, out, _ = query(ctx, addr, ['--csv', 'distinct'] + args)
        row = list(csv.DictReader(io.StringIO(out)))
        tt.check_eq([(int(r['keys']), int(r['distinct'])) for r in row],
                    [(len(keys), j['distinct'])], 'distinct %s CSV' % args)
    tt.log('distinct: %d queries%s within 2%% of the truth; the last: %s'
           % (len(cases), ' equal to PFCOUNT of their keys and' if pfcount else '',
              out.strip().splitlines()[-1]))


def check_others(ctx, addr, hist, elems):
    """The HLL keys change nothing for totals, range and latest (and no warning about them);
    totals prints '-' for what a distinct series lacks."""
    _, out, err = query(ctx, addr, ['totals', 11])
    tt.check(err == '', 'totals wrote to stderr: %r' % err)
    d = 11
    want = ['%d %d %d %s %s %s' % (d, COUNTER, sum(10 + wi for wi in range(3)),
                                   fmt(3 * (100.0 + d)), fmt(1), fmt(52)),
            '%d %d %d %s %s %s' % (d, HIST, sum(len(hist[(d, w)]) for w in WINDOWS),
                                   fmt(sum(float(fmt(math.fsum(hist[(d, w)])))
                                           for w in WINDOWS)),
                                   fmt(min(min(hist[(d, w)]) for w in WINDOWS)),
                                   fmt(max(max(hist[(d, w)]) for w in WINDOWS))),
            '%d %d %d - - -' % (d, DIST, sum(len(elems[(d, w)]) for w in WINDOWS))]
    tt.check_eq(out.splitlines(), want, 'totals 11')
    _, out, _ = query(ctx, addr, ['--csv', 'totals', '11'])
    tt.check_eq(out.splitlines()[-1], want[-1].replace(' - - -', ',,,').replace(' ', ','),
                'totals --csv: empty fields for the distinct series')
    j = json.loads(query(ctx, addr, ['--json', 'totals', '11'])[1])
    tt.check_eq([(r['metric'], r['sum']) for r in j][-1], (DIST, None), 'totals --json')
    for m in (HIST, DIST):
        _, out, err = query(ctx, addr, ['--json', 'range', d, m])
        tt.check(err == '', 'range wrote to stderr: %r' % err)
        tt.check_eq([r['window'] for r in json.loads(out)], list(WINDOWS),
                    'range %d %d: the window keys alone' % (d, m))
    _, out, err = query(ctx, addr, ['--json', 'latest', d])
    tt.check(err == '' and json.loads(out)['window'] == WINDOWS[-1],
             'latest %d: %r %r' % (d, out, err))
    tt.log('totals, range, latest: the HLL keys skipped; totals: %r' % want[-1])


def one_line_error(ctx, addr, args, rc, *words):
    got, out, err = query(ctx, addr, args, ok=None)
    tt.check(got == rc and out == '' and len(err.splitlines()) == 1 and
             err.startswith('tally-query: ') and all(w in err for w in words),
             'tally-query %s: want rc %d and one line with %s; rc %d, stdout %r, stderr %r'
             % (' '.join(map(str, args)), rc, words, got, out, err))
    return err.strip()


def check_errors(ctx, addr):
    for q in ('1.5', '0.5,,0.9', 'abc', '-0.1', '0.5,nan', '0x1p-1', '', '0.5, 0.9'):
        one_line_error(ctx, addr, ['quantile', 11, HIST, '--q', q], 2, '--q', 'not a quantile')
    msgs = [
        one_line_error(ctx, addr, ['quantile', BAD_DEVICE, HIST], 1,
                       hkey(BAD_DEVICE, WINDOWS[1]), '%d:sketch' % HIST, 'DDSketch'),
        one_line_error(ctx, addr, ['quantile', '--devices', '11-30', HIST], 1,
                       hkey(BAD_DEVICE, WINDOWS[1]), 'DDSketch'),
        one_line_error(ctx, addr, ['distinct', BAD_DEVICE, DIST], 1,
                       hllkey(BAD_DEVICE, WINDOWS[1]), 'HyperLogLog'),
        one_line_error(ctx, addr, ['quantile', 99, HIST], 1, 'no data', 'device 99'),
        one_line_error(ctx, addr, ['quantile', 11, DIST], 1, 'no data', 'not a histogram'),
        one_line_error(ctx, addr, ['quantile', 11, HIST, '--from', WINDOWS[-1] + 1], 1,
                       'no data'),
        one_line_error(ctx, addr, ['distinct', 11, HIST], 1, 'no data'),
        one_line_error(ctx, addr, ['distinct', '--devices', '1-5', DIST], 1, 'no data',
                       'devices 1-5'),
        one_line_error(ctx, addr, ['quantile', '-', HIST], 2, '--devices'),
        one_line_error(ctx, addr, ['quantile', 11, HIST, '--devices', '12'], 2, '--devices'),
        one_line_error(ctx, addr, ['quantile', '--devices', '3-1', HIST], 2, "'3-1'"),
        one_line_error(ctx, addr, ['distinct', 11, DIST, '--q', '0.5'], 2, '--q'),
        one_line_error(ctx, addr, ['totals', '--devices', '11'], 2, '--devices'),
        one_line_error(ctx, addr, ['quantile', 11, HIST, '--from', '-15x'], 2, "'-15x'"),
    ]
    tt.log('errors, one line each, e.g.:\n#   ' + '\n#   '.join(msgs[:4]))


# Every query of the cluster comparison: the same answers from a cluster as from one Redis.
CLUSTER_QUERIES = [
    ['quantile', 11, HIST], ['--json', 'quantile', 12, HIST, '--q', Q_ARG],
    ['--csv', 'quantile', '--devices', '11-13', HIST, '--from', WINDOWS[1]],
    ['quantile', '-', HIST, '--devices', '11,13', '--to', WINDOWS[2]],
    ['distinct', 11, DIST], ['--json', 'distinct', '--devices', '11-13', DIST],
    ['--csv', 'distinct', '-', DIST, '--devices', '12-13', '--from', WINDOWS[1]],
    ['totals'], ['--json', 'range', 13, DIST], ['quantile', FOLD_DEVICE, HIST],
    ['quantile', BAD_DEVICE, HIST], ['distinct', BAD_DEVICE, DIST], ['quantile', 99, HIST],
]


def check_cluster(ctx, single, cmds, elems):
    want = [query(ctx, single.addr, q, ok=None) for q in CLUSTER_QUERIES]
    try:
        with rcluster.Cluster(masters=3, ctx=ctx) as cluster:
            owner = {}
            for cmd in cmds:
                slot = cluster.keyslot(cmd[1])
                if slot not in owner:
                    owner[slot] = cluster.slot_owner(slot)
                cluster.client(owner[slot]).call(*cmd)
            masters = {owner[cluster.keyslot(hkey(d, WINDOWS[0]))] for d in DEVICES}
            tt.check(len(masters) >= 2, 'devices 11-13 all on one master: %s' % masters)
            for port in cluster.masters():
                for q, w in zip(CLUSTER_QUERIES, want):
                    got = query(ctx, '127.0.0.1:%d' % port, q, ok=None)
                    tt.check_eq(got, w, 'cluster via %d: tally-query %s' % (port, q))
            check_distinct(ctx, '127.0.0.1:%d' % cluster.masters()[0], None, elems,
                           pfcount=False)
            tt.log('cluster: %d queries answer the same from every master (devices 11-13 on '
                   '%d masters)' % (len(CLUSTER_QUERIES), len(masters)))
    except tt.Skip as e:
        tt.log('cluster part skipped: %s' % e)


def body(ctx):
    tool = Tool(ctx.args.dds_tool)
    cmds, hist, elems = dataset(tool)
    redis = ctx.redis()
    redis.client.pipeline(cmds)
    tt.log('seeded %d window keys with sketches and %d HLL keys'
           % (len(hist), len(elems)))
    check_quantiles(ctx, tool, redis.addr, hist)
    check_folded(ctx, redis.addr)
    check_distinct(ctx, redis.addr, redis.client, elems)
    check_others(ctx, redis.addr, hist, elems)
    check_errors(ctx, redis.addr)
    check_cluster(ctx, redis, cmds, elems)


if __name__ == '__main__':
    tt.main(body, extra_args=extra_args)
