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
    # Devices of b that a has written before: b's run folds into each one's window key.
    shared = len({k[0] for k in tt.read_totals(ta)} & {k[0] for k in tt.read_totals(tb)})
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
    # The first run RESTOREd new keys (tally_put2); the second folded into the shared ones.
    st = redis.self_stats()
    tt.check(shared > 0, 'the captures share devices')
    tt.check_eq((st['redis_folds'], st['redis_fold_retries']), (shared, 0),
                '(redis_folds, redis_fold_retries) of the second run')

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
    # The fast path's Functions: put2 finds the key (2: fold), swap2 finds the mark (0).
    rc = redis.client.call('FCALL', 'tally_put2', '2', key, 'tally:{%s}:latest' % dev, '600',
                           win, b'not a payload')
    tt.check_eq(rc, [2], 'tally_put2 on a key that exists')
    rc = redis.client.call('FCALL', 'tally_swap2', '2', key, 'tally:{%s}:latest' % dev, '600',
                           win, applied[0], str(len(before)), b'not a payload')
    tt.check_eq(rc, 0, 'tally_swap2 of a partial applied already')
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

    # 4. A Redis that will not RESTORE (an ACL without it): tally says so once and writes
    #    with tally_merge2 instead; a restart mid-window still adds up.
    redis.flushall()
    redis.client.call('ACL', 'SETUSER', 'default', '-restore')
    tt.wait_window_margin(WINDOW_MS, 15000)
    for pcap in (a, b):
        t = run_once(ctx, redis, pcap, 4000)
        wait_counted(t, 4000)
        t.stop()
        log = t.log_text()
        tt.check(log.count('Redis refused RESTORE') == 1 and 'tally_merge2' in log,
                 'one line says RESTORE is refused:\n' + log[-1500:])
    expect_totals(ctx, redis, both, 'restart mid-window without RESTORE')
    tt.check_eq(redis.self_stats()['redis_folds'], 0, 'redis_folds without RESTORE')
    redis.client.call('ACL', 'SETUSER', 'default', '+restore')

    # 5. The same with plain HSET: the later partial overwrites, so the test above means it.
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
