#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Histograms and distinct counts end to end: tally-gen sends values from named distributions
and elements of known cardinality; every quantile tally stores is within 1% of the exact one
(per series, merged over windows, over devices, and over two instances that split the stream),
every distinct count within 2% and equal to PFCOUNT, and a replayed spool (twice) counts
once."""

import json
import math
import os
import shutil
import signal

import tallytest as tt

WINDOW_MS = 60000
DEVICES = 30
DATAGRAMS = 3000
KINDS = '1,2,3,4'       # metrics 3, 7 histograms; 4, 8 distinct
COUNTERS = (1, 5)
HIST = (3, 7)
DIST = (4, 8)
QS = (0.0, 0.5, 0.9, 0.99, 0.999, 1.0)
CARDINALITY = 3000
GAMMA = 101.0 / 99.0


def gen(ctx, name, seed, dist, datagrams=DATAGRAMS):
    """A capture with its totals and every histogram value / distinct element sent."""
    pcap = os.path.join(ctx.tmp, name + '.pcap')
    totals = os.path.join(ctx.tmp, name + '.totals')
    values = os.path.join(ctx.tmp, name + '.values')
    g = tt.tally_gen(ctx, ['--pcap', pcap, '--datagrams', str(datagrams), '--records', '8',
                           '--devices', str(DEVICES), '--seed', str(seed), '--kinds', KINDS,
                           '--dist', dist, '--cardinality', str(CARDINALITY), '--totals',
                           totals, '--values', values])
    return pcap, totals, values, g


def read_values(*paths):
    """--values files as {(device, metric): [values]} (histograms) and {..: set(elements)}."""
    hist, dist = {}, {}
    for p in paths:
        with open(p) as f:
            for line in f:
                d, m, k, v = line.split()
                key = (int(d), int(m))
                if k == '3':
                    hist.setdefault(key, []).append(float(v))
                else:
                    dist.setdefault(key, set()).add(int(v))
    return hist, dist


def uvarint(b, p):
    v = shift = 0
    while True:
        x = b[p]
        p += 1
        v |= (x & 0x7f) << shift
        shift += 7
        if x < 0x80:
            return v, p


def sketch_decode(b):
    """A serialised sketch (lib/sketch, version 1) as (zero, clamped, folded, {key: count})."""
    tt.check(b[:4] == b'DS\x01\x00', 'sketch header %r' % b[:4])
    p, head = 4, []
    for _ in range(4):
        v, p = uvarint(b, p)
        head.append(v)
    zero, clamped, folded, nb = head
    buckets, k = {}, 0
    for i in range(nb):
        v, p = uvarint(b, p)
        k = ((v >> 1) ^ -(v & 1)) if i == 0 else k + v + 1
        c, p = uvarint(b, p)
        buckets[k] = buckets.get(k, 0) + c + 1
    tt.check_eq(p, len(b), 'sketch length')
    return zero, clamped, folded, buckets


def key_value(k):
    """The value a bucket reports: (1 - 1%) * gamma^i, i = |key| - 1037, with key's sign."""
    if k == 0:
        return 0.0
    v = 0.99 * GAMMA ** (abs(k) - 1037)
    return v if k > 0 else -v


def sketch_quantile(zero, buckets, q):
    n = zero + sum(buckets.values())
    rank = math.floor(q * (n - 1))
    acc = 0
    for k in sorted(list(buckets) + ([0] if zero else [])):
        acc += zero if k == 0 else buckets[k]
        if acc > rank:
            return key_value(k)
    raise tt.Failure('rank %d beyond %d values' % (rank, n))


def exact_quantile(values, q):
    s = sorted(values)
    return s[math.floor(q * (len(s) - 1))]


def stored_sketch(redis, keys, metric):
    """The merged sketch of one metric over window keys: (zero, clamped, folded, buckets)."""
    zero = clamped = folded = 0
    buckets = {}
    for k in keys:
        raw = redis.client.call('HGET', k, '%d:sketch' % metric)
        if raw is None:
            continue
        z, c, f, b = sketch_decode(raw.encode('utf-8', 'surrogateescape'))
        zero, clamped, folded = zero + z, clamped + c, folded + f
        for key, n in b.items():
            buckets[key] = buckets.get(key, 0) + n
    return zero, clamped, folded, buckets


def window_keys(redis):
    """{device: [window keys]} and {(device, metric): [hll keys]}."""
    wins, hlls = {}, {}
    for k in redis.client.scan('tally:{*'):
        m = tt.WINDOW_KEY.match(k)
        if m:
            wins.setdefault(int(m.group(1)), []).append(k)
        m = tt.HLL_KEY.match(k)
        if m:
            hlls.setdefault((int(m.group(1)), int(m.group(3))), []).append(k)
    return wins, hlls


def check_quantiles(what, values, zero, buckets, clamped, folded):
    tt.check_eq(zero + sum(buckets.values()), len(values), '%s: values in the sketch' % what)
    tt.check_eq((clamped, folded), (0, 0), '%s: clamped, folded' % what)
    for q in QS:
        est, ex = sketch_quantile(zero, buckets, q), exact_quantile(values, q)
        tt.check(abs(est - ex) <= 0.01 * abs(ex) * (1 + 1e-9),
                 '%s: q%g is %.17g, exact %.17g (%.3f%% off)'
                 % (what, q, est, ex, 100 * abs(est - ex) / abs(ex)))


def check_stored(ctx, redis, totals_text, hist, dist, what):
    """Redis against what was sent: totals, every histogram series' quantiles (merged over its
    windows), every distinct series' PFCOUNT, and the same over all devices."""
    tt.compare_totals_text(totals_text, tt.query_totals(ctx, redis), '%s: totals' % what)
    wins, hlls = window_keys(redis)
    # a counter's rate is its window's sum per second (after folds too)
    for d in sorted(wins)[:5]:
        for k in wins[d]:
            h = redis.client.hgetall(k)
            for m in COUNTERS:
                if '%d:sum' % m in h:
                    want = float(h['%d:sum' % m]) / (WINDOW_MS / 1000)
                    got = float(h['%d:rate' % m])
                    tt.check(abs(got - want) <= 1e-9 * abs(want),
                             '%s: %s %d:rate %r, sum / window %r' % (what, k, m, got, want))
    for (d, m), vals in sorted(hist.items()):
        z, c, f, b = stored_sketch(redis, wins.get(d, []), m)
        check_quantiles('%s: device %d metric %d' % (what, d, m), vals, z, b, c, f)
    for m in HIST:
        z = c = f = 0
        b = {}
        for d in wins:
            z1, c1, f1, b1 = stored_sketch(redis, wins[d], m)
            z, c, f = z + z1, c + c1, f + f1
            for k, n in b1.items():
                b[k] = b.get(k, 0) + n
        allv = [v for (d, mm), vs in hist.items() if mm == m for v in vs]
        check_quantiles('%s: metric %d over %d devices' % (what, m, len(wins)), allv, z, b, c, f)
        # tally-query merges the same windows and devices
        out = query(ctx, redis, ['quantile', '--devices', '1-%d' % DEVICES, '-', str(m), '--q',
                                 ','.join('%g' % q for q in QS)])
        tt.check_eq(out['count'], len(allv), '%s: tally-query quantile count' % what)
        for x in out['quantiles']:
            ex = exact_quantile(allv, x['q'])
            tt.check(abs(x['value'] - ex) <= 0.01 * abs(ex) * (1 + 1e-9),
                     '%s: tally-query q%g of metric %d is %.17g, exact %.17g'
                     % (what, x['q'], m, x['value'], ex))
    worst = 0.0
    for (d, m), elems in sorted(dist.items()):
        keys = hlls.get((d, m), [])
        tt.check(keys, '%s: device %d metric %d has no HLL key' % (what, d, m))
        est = redis.client.call('PFCOUNT', *keys)
        err = abs(est - len(elems)) / len(elems)
        worst = max(worst, err)
        # ~100 elements a series: two of them sharing a register (a 2% chance each) is
        # already 2%; the 2% bound is for the unions below (thousands)
        tt.check(abs(est - len(elems)) <= max(0.02 * len(elems), 3),
                 '%s: device %d metric %d: PFCOUNT %d, exact %d' % (what, d, m, est, len(elems)))
    for m in DIST:
        keys = [k for (d, mm), ks in hlls.items() if mm == m for k in ks]
        union = set().union(*[e for (d, mm), e in dist.items() if mm == m])
        est = redis.client.call('PFCOUNT', *keys)
        tt.check(abs(est - len(union)) <= 0.02 * len(union),
                 '%s: metric %d over all devices: PFCOUNT %d, exact %d'
                 % (what, m, est, len(union)))
        out = query(ctx, redis, ['distinct', '--devices', '1-%d' % DEVICES, '-', str(m)])
        tt.check_eq(out['distinct'], est, '%s: tally-query distinct of metric %d vs PFCOUNT'
                    % (what, m))
    tt.log('%s: %d histogram and %d distinct series match (worst distinct error %.2f%%)'
           % (what, len(hist), len(dist), 100 * worst))


def query(ctx, redis, args):
    _, out, _ = tt.run_tool([ctx.args.tally_query, '--redis', redis.addr, '--json'] + args)
    return json.loads(out)


def run(ctx, redis, pcap, name, extra=()):
    return ctx.tally(['net_pcap0,rx_pcap=' + pcap],
                     ['--redis', redis.addr, '--stats-ms', '100', '--window-ms', str(WINDOW_MS),
                      '--table-series', '16384', '--instance', name] + list(extra),
                     redis=redis, name=name)


def counted(t, g):
    return t.wait_telemetry(lambda s: s.get('datagrams') == g['valid_datagrams'], timeout=30,
                            what='datagrams=%s' % g['valid_datagrams'])


def two_instances(ctx):
    """Two instances split the stream (values from two seeds, the same devices) into the same
    windows: the second folds its buckets and registers into the first's keys."""
    a, ta, va, ga = gen(ctx, 'a', 1, 'lognormal')
    b, tb, vb, gb = gen(ctx, 'b', 2, 'bimodal')
    redis = ctx.redis()
    tt.wait_window_margin(WINDOW_MS, 25000)
    t = run(ctx, redis, a, 'one')
    counted(t, ga)
    t.stop()
    st = redis.self_stats()
    for f in ('side_full', 'kind_mismatch', 'sketch_folded'):
        tt.check_eq(st.get(f), 0, 'tally:self ' + f)
    hist, dist = read_values(va)
    with open(ta) as f:
        check_stored(ctx, redis, f.read(), hist, dist, 'one instance')

    t = run(ctx, redis, b, 'two')
    counted(t, gb)
    t.stop()
    hist, dist = read_values(va, vb)
    check_stored(ctx, redis, tt.combine_totals(ta, tb), hist, dist, 'two instances')
    st = redis.self_stats()
    tt.check(st.get('redis_folds', 0) > 0, 'the second instance folded into existing keys '
             '(redis_folds %s)' % st.get('redis_folds'))


def no_restore(ctx):
    """A Redis that refuses RESTORE: windows go through tally_merge2, whose Lua adds the
    second instance's buckets into the first's sketch field by field."""
    a, ta, va, ga = gen(ctx, 'na', 4, 'uniform')
    b, tb, vb, gb = gen(ctx, 'nb', 5, 'lognormal')
    redis = ctx.redis()
    redis.client.call('ACL', 'SETUSER', 'default', '-restore')
    tt.wait_window_margin(WINDOW_MS, 15000)
    for pcap, g, name in ((a, ga, 'lua-one'), (b, gb, 'lua-two')):
        t = run(ctx, redis, pcap, name)
        counted(t, g)
        t.stop()
    hist, dist = read_values(va, vb)
    check_stored(ctx, redis, tt.combine_totals(ta, tb), hist, dist, 'without RESTORE')
    calls = {}
    for line in redis.client.call('INFO', 'commandstats').splitlines():
        if line.startswith('cmdstat_'):
            name, rest = line[len('cmdstat_'):].split(':', 1)
            calls[name] = int(rest.split(',')[0].split('=')[1])
    tt.check(calls.get('hmget', 0) > 0, 'tally_merge2 folded into existing keys (HMGET calls '
             '%s)' % calls.get('hmget'))


def hset_mode(ctx):
    """--redis-write hset: the same fields and keys, written plainly (registers by a scratch
    key in a MULTI)."""
    a, ta, va, ga = gen(ctx, 'ha', 6, 'bimodal')
    redis = ctx.redis()
    t = run(ctx, redis, a, 'plain', ['--redis-write', 'hset'])
    counted(t, ga)
    t.stop()
    hist, dist = read_values(va)
    with open(ta) as f:
        check_stored(ctx, redis, f.read(), hist, dist, 'hset mode')
    tt.check(not any(k.endswith(':hll:tmp') for k in redis.client.scan('tally:*')),
             'no scratch key left behind')


def spool_twice(ctx):
    """Windows spooled while Redis is down carry their sketches and HLLs; replayed, and the
    same segments replayed again, they count once."""
    c, tc, vc, gc = gen(ctx, 'c', 3, 'pareto')
    empty, _, _ = tt.gen_capture(ctx, 'empty', 0)
    spool = os.path.join(ctx.tmp, 'spool')
    aside = os.path.join(ctx.tmp, 'spool-copy')
    redis = ctx.redis()
    redis.signal(signal.SIGKILL)
    t = run(ctx, redis, c, 'spooler', ['--spool-dir', spool])
    counted(t, gc)
    t.stop(timeout=15)
    recs = tt.read_spool(spool)
    kinds = {}
    for r in recs:
        for (dev, met, kind, cnt, *_), blob in zip(r['series'], r['side']):
            kinds[kind] = kinds.get(kind, 0) + 1
            if kind in (3, 4):
                tt.check(len(blob) > 0, 'spooled series %d/%d of kind %d has its state'
                         % (dev, met, kind))
    tt.log('spooled %d record(s), series by kind %s' % (len(recs), kinds))
    tt.check(kinds.get(3) and kinds.get(4), 'histograms and distincts spooled: %s' % kinds)
    shutil.copytree(spool, aside)
    redis = redis.restart()
    hist, dist = read_values(vc)
    with open(tc) as f:
        expect = f.read()
    for attempt in ('replay', 'second replay'):
        if attempt != 'replay':
            for p in tt.spool_segments(aside):
                shutil.copy(p, spool)
        t = run(ctx, redis, empty, 'spooler', ['--spool-dir', spool])
        t.wait_telemetry(lambda s: s['spool_bytes'] == 0 and s['breaker_state'] == 0 and
                         s['spool_replayed'] >= len(recs) and not tt.spool_segments(spool),
                         timeout=30, what='the spool replayed')
        t.stop()
        check_stored(ctx, redis, expect, hist, dist, attempt)


def body(ctx):
    two_instances(ctx)
    no_restore(ctx)
    hset_mode(ctx)
    spool_twice(ctx)


if __name__ == '__main__':
    tt.main(body)
