#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""SIGINT with a window still open: tally drains, flushes it to Redis and exits 0.

With Redis hung (SIGSTOP) and a spool: SIGTERM waits --shutdown-timeout-s plus at most one
--redis-timeout-ms, then spools and exits 0; a second SIGTERM ends the wait at once, still
spooling. The spools replay to exact totals once Redis resumes.
"""

import os
import signal
import time

import tallytest as tt

DATAGRAMS = 3000    # per capture
DEVICES = 100       # per capture, disjoint ranges so the totals files concatenate in order
WINDOW_MS = 60000
RETENTION_S = 300
MARGIN_MS = 8000    # a run must start this far from the end of the open window


def captures(ctx, n):
    """n captures of disjoint devices; returns their paths, the summed summary, the totals."""
    pcaps, totals, gen = [], [], {}
    for i in range(n):
        pcap = os.path.join(ctx.tmp, 'shutdown-%d.pcap' % i)
        tot = os.path.join(ctx.tmp, 'shutdown-%d.totals' % i)
        g = tt.tally_gen(ctx, ['--pcap', pcap, '--datagrams', str(DATAGRAMS), '--records', '8',
                               '--devices', str(DEVICES), '--device-base', str(1 + i * DEVICES),
                               '--malformed', '9', '--seed', str(i + 1), '--totals', tot])
        for k, v in g.items():
            if isinstance(v, int):
                gen[k] = gen.get(k, 0) + v
        pcaps.append(pcap)
        with open(tot) as f:
            totals.append(f.read())
    path = os.path.join(ctx.tmp, 'shutdown-%d.totals' % n)
    with open(path, 'w') as f:
        f.write(''.join(totals))
    return pcaps, gen, path


def sigint_with_open_window(ctx, redis, workers):
    pcaps, gen, totals = captures(ctx, workers)
    total = gen['valid_datagrams']
    redis.flushall()

    # Start early enough in a wall-clock window that no boundary closes it before SIGINT.
    left = WINDOW_MS - int(time.time() * 1000) % WINDOW_MS
    if left < MARGIN_MS:
        tt.log('waiting %d ms for the next %d ms window' % (left + 50, WINDOW_MS))
        time.sleep((left + 50) / 1000)
    window = int(time.time() * 1000) // WINDOW_MS * WINDOW_MS

    vdevs = ['net_pcap%d,rx_pcap=%s' % (i, p) for i, p in enumerate(pcaps)]
    tally = ctx.tally(vdevs, ['--redis', redis.addr, '--stats-ms', '100',
                              '--window-ms', str(WINDOW_MS), '--retention-s', str(RETENTION_S),
                              '--table-series', '16384'],
                      workers=workers, redis=redis)
    st = tally.wait_stats(lambda s: s.get('datagrams') == total, timeout=20,
                          what='datagrams=%d' % total)
    tt.check_eq(int(time.time() * 1000) // WINDOW_MS * WINDOW_MS, window,
                'wall-clock window at SIGINT (the test itself was too slow)')
    tt.check_eq(st['windows_flushed'], 0, 'windows_flushed before SIGINT')
    tt.check_eq(redis.client.scan('tally:{*}:*'), [], 'window keys before SIGINT')
    tally.stop(signal.SIGINT)

    st = redis.self_stats()
    tt.log('final tally:self: ' + tt.fmt_stats(st))
    tt.check_self(st, gen)
    tt.check_eq(st['workers'], workers, 'tally:self workers')
    tt.check_eq(st['windows_flushed'], 1, 'windows_flushed after SIGINT')
    tt.compare_totals(totals, tt.query_totals(ctx, redis))
    windows = tt.check_schema(redis, RETENTION_S, WINDOW_MS)
    tt.check_eq({w for ws in windows.values() for w in ws}, {window}, 'window starts in Redis')
    tt.check_eq(len(windows), workers * DEVICES, 'devices in Redis')


def stop_with_redis_hung(ctx, redis, pcap, spool, second, name):
    """SIGTERM (twice with second) while Redis is stopped; returns seconds to exit."""
    t = ctx.tally(['net_pcap0,rx_pcap=' + pcap],
                  ['--redis', redis.addr, '--stats-ms', '100', '--window-ms', str(WINDOW_MS),
                   '--table-series', '16384', '--spool-dir', spool, '--shutdown-timeout-s',
                   '3', '--redis-timeout-ms', '1000'], redis=redis, name=name)
    t.wait_telemetry(lambda s: s['records'] > 0 and s['datagrams'] == DATAGRAMS, timeout=20,
                     what='the capture counted')
    redis.signal(signal.SIGSTOP)
    t0 = time.monotonic()
    t.proc.send_signal(signal.SIGTERM)
    if second:
        time.sleep(0.3)
        t.proc.send_signal(signal.SIGTERM)
    rc = t.proc.wait(30)
    took = time.monotonic() - t0
    redis.signal(signal.SIGCONT)
    tt.log('%s: exit %d %.2f s after SIGTERM' % (name, rc, took))
    tt.check_eq(rc, 0, '%s: exit status (spooled)' % name)
    tt.check(tt.spool_segments(spool), '%s: the window spooled' % name)
    return took


def bounded_with_redis_hung(ctx, redis):
    """Shutdown takes --shutdown-timeout-s plus one Redis timeout at most, never several."""
    pcaps, gen, totals = captures(ctx, 1)
    redis.flushall()
    tt.wait_window_margin(WINDOW_MS, MARGIN_MS)
    one = os.path.join(ctx.tmp, 'spool-once')
    took = stop_with_redis_hung(ctx, redis, pcaps[0], one, False, 'tally-hung')
    tt.check(2.9 <= took <= 3 + 1 + 0.8, 'one SIGTERM: %.2f s (want 3 s of --shutdown-timeout-s '
             'plus at most one 1 s --redis-timeout-ms)' % took)
    twice = os.path.join(ctx.tmp, 'spool-twice')
    took = stop_with_redis_hung(ctx, redis, pcaps[0], twice, True, 'tally-hung-twice')
    tt.check(took <= 0.3 + 1 + 0.8, 'two SIGTERMs: %.2f s (want the second to end the wait)'
             % took)
    # Each spool holds the capture: replayed, exact (each run's partials once).
    for spool in (one, twice):
        redis.flushall()
        t = ctx.tally(['net_pcap0,rx_pcap=' + tt.gen_capture(ctx, 'empty', 0, devices=1)[0]],
                      ['--redis', redis.addr, '--stats-ms', '100', '--window-ms',
                       str(WINDOW_MS), '--spool-dir', spool], redis=redis, name='tally-replay')
        t.wait_telemetry(lambda s: s['spool_bytes'] == 0 and not tt.spool_segments(spool),
                         timeout=20, what='the spool replayed')
        t.stop()
        tt.compare_totals(totals, tt.query_totals(ctx, redis))


def body(ctx):
    redis = ctx.redis()
    bounded_with_redis_hung(ctx, redis)
    # One worker; then two workers, one capture port each, both holding a partial at SIGINT.
    sigint_with_open_window(ctx, redis, 1)
    sigint_with_open_window(ctx, redis, 2)


if __name__ == '__main__':
    tt.main(body)
