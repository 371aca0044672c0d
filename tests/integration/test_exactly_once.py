#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Merge-safe writes: a window written in parts (tally restarted mid-window, two instances
seeing the same devices) adds up exactly, and the same partial applied twice counts once; also
for devices of hundreds of metrics, each written whole (one RESTORE, or one read and one swap
for a key that exists) and not chunk by chunk."""

import os
import signal

import tallytest as tt

WINDOW_MS = 60000
MANY_DEVICES = 6
MANY_METRICS = 300  # five chunks of 64 a device


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


def gen_metrics(ctx, name, seed, devices, metrics, datagrams, base=1, extra=()):
    """A capture of devices with `metrics` metrics each, every one in each datagram (tally-gen
    takes a device's metrics round robin); returns (pcap, totals path)."""
    pcap = os.path.join(ctx.tmp, name + '.pcap')
    totals = os.path.join(ctx.tmp, name + '.totals')
    tt.tally_gen(ctx, ['--pcap', pcap, '--datagrams', str(datagrams), '--records',
                       str(min(metrics, 4092)), '--metrics', str(metrics), '--devices',
                       str(devices), '--device-base', str(base), '--seed', str(seed),
                       '--totals', totals] + list(extra))
    got = {k[0] for k in tt.read_totals(totals)}
    tt.check_eq(len(got), devices, '%s: devices in the capture' % name)
    return pcap, totals


def command_calls(redis):
    """INFO commandstats as {command: calls}; the Function's own calls count too."""
    out = {}
    for line in redis.client.call('INFO', 'commandstats').splitlines():
        if line.startswith('cmdstat_'):
            name, rest = line[len('cmdstat_'):].split(':', 1)
            out[name] = int(rest.split(',')[0].split('=')[1])
    return out


def stop_both(t1, t2):
    """SIGTERM to both at once, so their windows are written at the same time."""
    t1.proc.send_signal(signal.SIGTERM)
    t2.stop(timeout=30)
    tt.check_eq(t1.proc.wait(30), 0, 'exit status of the first instance')


def many_metrics(ctx, redis):
    """Devices of 300 metrics: a new window key is one RESTORE of the device's whole partial
    (every chunk's fields and marks), a key that exists one read and one swap."""
    a, ta = gen_metrics(ctx, 'ma', 11, MANY_DEVICES, MANY_METRICS, 30)
    b, tb = gen_metrics(ctx, 'mb', 12, MANY_DEVICES, MANY_METRICS, 30)
    both = tt.combine_totals(ta, tb)
    n = MANY_DEVICES

    def run(pcap, extra=(), name='tally'):
        t = run_once(ctx, redis, pcap, 30, list(extra), name=name)
        wait_counted(t, 30)
        return t

    def calls_and_stats(what, restore, hgetall, folds):
        """Before the totals are read: tally-query reads the keys with HGETALL."""
        c, st = command_calls(redis), redis.self_stats()
        tt.check_eq((c.get('restore', 0), c.get('hgetall', 0)), (restore, hgetall),
                    '%s: (RESTORE, HGETALL) Redis ran' % what)
        if folds is not None:
            tt.check_eq((st['redis_folds'], st['redis_fold_retries']), (folds, 0),
                        '%s: (redis_folds, redis_fold_retries)' % what)

    # 1. One writer, a new window: one RESTORE per device, no read, no fold.
    redis.flushall()
    tt.wait_window_margin(WINDOW_MS, 20000)
    t = run(a)
    redis.client.call('CONFIG', 'RESETSTAT')
    t.stop(timeout=30)
    calls_and_stats('many metrics, one writer', n, 0, 0)
    expect_totals(ctx, redis, tt.combine_totals(ta), 'many metrics, one writer')
    key = sorted(k for k in redis.client.scan('tally:{*}:*') if tt.WINDOW_KEY.match(k))[0]
    dev, win = tt.WINDOW_KEY.match(key).groups()
    h = redis.client.hgetall(key)
    marks = sorted(f for f in h if tt.APPLIED_FIELD.match(f))
    # counters have 7 fields (count sum min max last ts rate), gauges 6, histograms 5 (count
    # sum min max sketch); tally-gen gives metric m the kind (m - 1) % 3 + 1
    fields = sum((7, 6, 5)[(m - 1) % 3] for m in range(1, MANY_METRICS + 1))
    tt.check_eq(len(h), fields + 5, 'fields of %s' % key)
    tt.check_eq(marks, sorted([marks[0]] + ['%s:%d' % (marks[0], k) for k in range(1, 5)]),
                'the applied mark of each of the five chunks in %s' % key)
    # tally_merge2 reads the marks put2 wrote: chunk 3 of this partial is applied already.
    rc = redis.client.call('FCALL', 'tally_merge2', '2', key, 'tally:{%s}:latest' % dev,
                           '600', win, marks[0], '3', '12',
                           '200:count', '5', '200:sum', '100', '200:min', '1', '200:max', '50',
                           '200:last', '7', '200:ts', '00000000000000000001')
    tt.check_eq(rc, [0], 'tally_merge2 of a chunk put2 wrote')

    # 2. Restarted mid-window: the second run reads each device's key once and swaps it once.
    redis.client.call('CONFIG', 'RESETSTAT')
    t = run(b)
    t.stop(timeout=30)
    calls_and_stats('many metrics, restart mid-window', n, n, n)
    expect_totals(ctx, redis, both, 'many metrics, restart mid-window')

    # 3. Two instances at once, written at the same time: one RESTOREs, the other folds.
    redis.flushall()
    tt.wait_window_margin(WINDOW_MS, 20000)
    t1 = run(a, ['--instance', 'east'], 'east')
    t2 = run(b, ['--instance', 'west'], 'west')
    redis.client.call('CONFIG', 'RESETSTAT')
    stop_both(t1, t2)
    calls_and_stats('many metrics, two instances', 2 * n, n, None)
    expect_totals(ctx, redis, both, 'many metrics, two instances')

    # 4. A window tally_merge2 wrote chunk by chunk (a Redis without RESTORE then), then a
    #    run with RESTORE: each device folded once, every chunk's mark read.
    redis.flushall()
    redis.client.call('ACL', 'SETUSER', 'default', '-restore')
    tt.wait_window_margin(WINDOW_MS, 20000)
    run(a).stop(timeout=30)
    redis.client.call('ACL', 'SETUSER', 'default', '+restore')
    redis.client.call('CONFIG', 'RESETSTAT')
    run(b).stop(timeout=30)
    calls_and_stats('many metrics, merge2 then put2', n, n, n)
    expect_totals(ctx, redis, both, 'many metrics, merge2 then put2')

    # 5. A device of 4,100 metrics: two parts (4,096 metrics, then 4), the second folded into
    #    the first's key; a second writer folds both. Values of 17 digits make a payload of
    #    about 640 kB, taken by a Redis whose size limits are the least they can be (1 MiB).
    c1, tc1 = gen_metrics(ctx, 'big1', 13, 1, 4100, 3, base=500, extra=['--float'])
    c2, tc2 = gen_metrics(ctx, 'big2', 14, 1, 4100, 3, base=500, extra=['--float'])
    redis.flushall()
    for limit in ('proto-max-bulk-len', 'client-query-buffer-limit'):
        redis.client.call('CONFIG', 'SET', limit, str(1 << 20))
    tt.wait_window_margin(WINDOW_MS, 20000)
    for pcap, what, calls in ((c1, 'one writer', (2, 1, 1)), (c2, 'a second one', (2, 2, 2))):
        t = run_once(ctx, redis, pcap, 3)
        wait_counted(t, 3)
        redis.client.call('CONFIG', 'RESETSTAT')
        t.stop(timeout=30)
        calls_and_stats('a device of 4,100 metrics, ' + what, *calls)
    expect_totals(ctx, redis, tt.combine_totals(tc1, tc2), 'a device of 4,100 metrics')


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

    # 6. Devices of hundreds of metrics.
    many_metrics(ctx, redis)


if __name__ == '__main__':
    tt.main(body)
