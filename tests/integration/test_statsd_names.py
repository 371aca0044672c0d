#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""A statsd series' fields in Redis are named by its text on every write path: a new window
key (RESTORE), a second instance folding into it (HGETALL, swap), Redis refusing RESTORE
(tally_merge2 through Lua), --redis-write hset, and a spool written while Redis was down and
replayed by the next run (a new process: the names travel in the spool). The series include
texts longer than a command argument's room and Redis's listpack value (over 80 and 64
bytes, up to ~900), and one device of 70 series (two chunks of 64). Values exact, no field
named by an id, no field twice."""

import os
import signal

import tallytest as tt
from test_statsd import PORT, device_id, frame, metric_id, write_pcap

PCAP_HEADER = bytes.fromhex('d4c3b2a1020004000000000000000000ffff000001000000')
WINDOW_MS = 3600000


def long_tags(n, width):
    return ','.join('t%02d:%s' % (i, chr(ord('a') + i) * width) for i in range(n))


def capture(path):
    """Datagrams of two devices; (device, series) -> (kind, count, sum) of what they carry."""
    lines, want = [], {}

    def add(dev, name, tags, kind, values):
        series = name + ('{%s}' % ','.join(sorted(tags)) if tags else '')
        t = '|#' + ','.join(['host:' + dev] + tags)
        for v in values:
            lines.append('%s:%s|%s%s' % (name, v, kind, t))
        c, s = want.get((dev, series), (kind, 0, 0.0))[1:]
        want[(dev, series)] = (kind, c + len(values),
                               s + (0.0 if kind == 's' else sum(float(v) for v in values)))

    add('web1', 'req', ['env:prod'], 'c', [1, 2, 3, 4])
    add('web1', 'temp', [], 'g', [20, 21.5])
    add('web1', 'lat', ['route:/a/b'], 'ms', [1, 2, 3, 10, 100])
    add('web1', 'users', [], 's', ['a', 'b', 'c', 'a'])
    # texts over an argument's room (80) and a listpack value (64), one near the bound
    add('web1', 'long.counter', long_tags(2, 60).split(','), 'c', [5, 6])
    add('web1', 'long.timer', long_tags(8, 100).split(','), 'ms', [7, 8, 9])
    add('web1', 'long.gauge', long_tags(4, 40).split(','), 'g', [3])
    # a device of 70 series: two chunks
    for i in range(70):
        add('db1', 'q%02d' % i, ['shard:%d' % (i % 3)], 'c', [i, 1])
    frames, dg = [], ''
    for ln in lines:
        if dg and len(dg) + len(ln) + 1 > 1400:
            frames.append(frame(dg.encode(), 40000 + len(frames)))
            dg = ''
        dg += ln + '\n'
    frames.append(frame(dg.encode(), 40000 + len(frames)))
    write_pcap(path, PCAP_HEADER, frames)
    return want, len(lines)


def check_fields(redis, want, times, what):
    """Each device's window key holds every series by its text, count and sum `times` what
    the capture carries; no field named by an id."""
    for dev in sorted({d for d, _ in want}):
        win = redis.client.call('GET', 'tally:{%d}:latest' % device_id(dev))
        tt.check(win is not None, '%s: no latest key for %s' % (what, dev))
        f = redis.client.hgetall('tally:{%d}:%s' % (device_id(dev), win))
        raw = redis.client.call('HGETALL', 'tally:{%d}:%s' % (device_id(dev), win))
        tt.check_eq(len(raw[0::2]), len(set(raw[0::2])), '%s: %s fields unique' % (what, dev))
        for k in f:
            name = k.rsplit(':', 1)[0]
            tt.check(k.startswith('_applied:') or not name.isdigit(),
                     '%s: field %s of %s is named by an id' % (what, k, dev))
        for (d, series), (kind, count, total) in want.items():
            if d != dev:
                continue
            tt.check_eq(f.get(series + ':count'), str(count * times),
                        '%s: %s %s:count' % (what, dev, series[:40]))
            if kind != 's':
                tt.check_eq(float(f.get(series + ':sum', 'nan')), total * times,
                            '%s: %s %s:sum' % (what, dev, series[:40]))
            if kind == 'ms':
                tt.check(series + ':sketch' in f, '%s: %s has no sketch' % (what, series[:40]))
    tt.log('%s: %d series named by their text' % (what, len(want)))


def run(ctx, redis, pcap, lines, extra=(), name='tally', wait=True):
    t = ctx.tally(['net_pcap0,rx_pcap=' + pcap],
                  ['--redis', redis.addr, '--stats-ms', '100', '--window-ms', str(WINDOW_MS),
                   '--statsd-port', str(PORT), '--histogram-series', '256',
                   '--distinct-series', '64'] + list(extra),
                  redis=redis, name=name)
    if wait:
        t.wait_telemetry(lambda s: s['statsd_lines'] == lines, timeout=30,
                         what='%s: every statsd line counted' % name)
    return t


def body(ctx):
    pcap = os.path.join(ctx.tmp, 'named.pcap')
    want, lines = capture(pcap)
    tt.wait_window_margin(WINDOW_MS, 5000)

    # new keys (RESTORE), then a second instance folding into them (HGETALL, swap2)
    redis = ctx.redis()
    run(ctx, redis, pcap, lines, name='tally-put').stop()
    check_fields(redis, want, 1, 'put')
    run(ctx, redis, pcap, lines, name='tally-fold').stop()
    check_fields(redis, want, 2, 'fold')
    tt.check(redis.self_stats()['redis_folds'] > 0, 'the second run folded')
    names = redis.client.hgetall('tally:names')
    for (_, series) in want:
        tt.check_eq(names.get(str(metric_id(series))), series, 'tally:names')

    # Redis refuses RESTORE: tally_merge2's fields through Lua, new and folded
    redis = ctx.redis()
    redis.client.call('ACL', 'SETUSER', 'default', '-restore')
    run(ctx, redis, pcap, lines, name='tally-merge2').stop()
    run(ctx, redis, pcap, lines, name='tally-merge2b').stop()
    check_fields(redis, want, 2, 'merge2')

    # --redis-write hset
    redis = ctx.redis()
    run(ctx, redis, pcap, lines, ['--redis-write', 'hset'], name='tally-hset').stop()
    check_fields(redis, want, 1, 'hset')

    # Redis down: spooled with the names; the next run (a new process) replays them
    spool = os.path.join(ctx.tmp, 'spool')
    redis = ctx.redis()
    redis.signal(signal.SIGKILL)
    t = run(ctx, redis, pcap, lines, ['--spool-dir', spool], name='tally-spool')
    t.stop(timeout=15)
    tt.check(tt.spool_segments(spool), 'nothing spooled with Redis down')
    redis = redis.restart()
    empty = os.path.join(ctx.tmp, 'empty.pcap')
    write_pcap(empty, PCAP_HEADER, [])
    t = run(ctx, redis, empty, 0, ['--spool-dir', spool], name='tally-replay', wait=False)
    t.wait_telemetry(lambda s: s['spool_bytes'] == 0 and s['spool_replayed'] > 0 and
                     not tt.spool_segments(spool), timeout=30, what='the spool replayed')
    t.stop()
    check_fields(redis, want, 1, 'spool replay')


if __name__ == '__main__':
    tt.main(body)
