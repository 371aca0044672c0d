#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Merge-safe writes: a window written in parts (tally restarted mid-window, two instances
seeing the same devices) adds up exactly, and the same partial applied twice counts once."""

import tallytest as tt

WINDOW_MS = 60000


def gen(ctx, name, seed, datagrams=4000):
    return tt.gen_capture(ctx, name, datagrams, seed=seed)


def run_once(ctx, redis, pcap, datagrams, extra=(), name='tally'):
    tally = ctx.tally(['net_pcap0,rx_pcap=' + pcap],
                      ['--redis', redis.addr, '--stats-ms', '100', '--window-ms', str(WINDOW_MS),
                       '--table-series', '65536'] + list(extra), redis=redis, name=name)
    return tally


def wait_counted(tally, datagrams):
    """Wait on this process's own counters (telemetry): tally:self is shared by instances."""
    tally.wait_telemetry(lambda s: s.get('datagrams') == datagrams, timeout=30,
                         what='datagrams=%d' % datagrams)


def expect_totals(ctx, redis, text, what):
    tt.compare_totals_text(text, tt.query_totals(ctx, redis), '%s: totals' % what,
                           'sum of what was sent')


def body(ctx):
    a, ta, _ = gen(ctx, 'a', 1)
    b, tb, _ = gen(ctx, 'b', 2)
    both = tt.combine_totals(ta, tb)
    redis = ctx.redis()

    # 1. Restarted in the middle of a window: the window gets a partial from each run.
    tt.wait_window_margin(WINDOW_MS, 15000)
    for pcap in (a, b):
        t = run_once(ctx, redis, pcap, 4000)
        wait_counted(t, 4000)
        t.stop()
    keys = [k for k in redis.client.scan('tally:{*}:*') if tt.WINDOW_KEY.match(k)]
    tt.check_eq(len({k.split(':')[-1] for k in keys}), 1, 'both runs wrote one window')
    expect_totals(ctx, redis, both, 'restart mid-window')

    # 2. The same partial applied again (a retry after a timeout, a spool replayed twice):
    #    re-run one of tally's own FCALLs with its recorded id; nothing may change.
    key = sorted(keys)[0]
    dev, win = tt.WINDOW_KEY.match(key).groups()
    applied = [f for f in redis.client.hgetall(key) if tt.APPLIED_FIELD.match(f)]
    tt.check_eq(len(applied), 2, 'partials applied to %s' % key)
    tt.check(len(set(applied)) == 2, 'the two runs have different partial ids')
    before = redis.client.hgetall(key)
    rc = redis.client.call('FCALL', 'tally_merge2', '2', key, 'tally:{%s}:latest' % dev,
                           '600', win, applied[0], '0', '12',
                           '1:count', '5', '1:sum', '100', '1:min', '1', '1:max', '50',
                           '1:last', '7', '1:ts', '00000000000000000001')
    tt.check_eq(rc, [0], 'a partial applied twice is refused')
    tt.check_eq(redis.client.hgetall('tally:{%s}:%s' % (dev, win)), before, 'window unchanged')
    expect_totals(ctx, redis, both, 'after a duplicate partial')

    # 3. Two instances at once, both seeing the same devices in the same window.
    redis.flushall()
    tt.wait_window_margin(WINDOW_MS, 15000)
    t1 = run_once(ctx, redis, a, 4000, ['--instance', 'east'], name='east')
    t2 = run_once(ctx, redis, b, 4000, ['--instance', 'west'], name='west')
    for t in (t1, t2):
        wait_counted(t, 4000)
    t1.stop()
    t2.stop()
    expect_totals(ctx, redis, both, 'two instances')

    # 4. The same with plain HSET: the later partial overwrites, so the test above means it.
    redis.flushall()
    tt.wait_window_margin(WINDOW_MS, 15000)
    for pcap in (a, b):
        t = run_once(ctx, redis, pcap, 4000, ['--redis-write', 'hset'])
        wait_counted(t, 4000)
        t.stop()
    got = tt.query_totals(ctx, redis)
    tt.check(got != both, 'with --redis-write hset a restart mid-window loses the first part')
    tt.log('hset after a restart holds %d of %d records' % (
        sum(int(l.split()[2]) for l in got.splitlines()),
        sum(int(l.split()[2]) for l in both.splitlines())))


if __name__ == '__main__':
    tt.main(body)
