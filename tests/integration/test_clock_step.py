#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Wall-clock steps (an NTP step, an operator's `date -s`) while tally runs.

tally runs under libfaketime with only the wall clock faked (FAKETIME_DONT_FAKE_MONOTONIC),
its offset read from a file the test rewrites: a step for tally alone, not for the host.

- Back one hour while the breaker is open (Redis killed): once Redis is back the breaker's
  probe closes it within its backoff, and tally:self goes on being written (timers on a
  wall clock would wait out the hour).
- Forward one hour after SIGTERM while Redis hangs: shutdown still waits
  --shutdown-timeout-s for Redis and spools what Redis did not take (a deadline on a wall
  clock would pass at once).
- The spool written at that deadline replays: totals exact, in the window of the run's
  start.
Skipped (77) where libfaketime is not installed.
"""
import os
import signal
import time

import tallytest as tt

LIBFAKETIME = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1'
WINDOW_MS = 3600000


def set_offset(path, seconds):
    with open(path + '.tmp', 'w') as f:
        f.write('%+d\n' % seconds)
    os.replace(path + '.tmp', path)
    tt.log('wall clock of tally: %+d s' % seconds)


def body(ctx):
    if not os.path.exists(LIBFAKETIME):
        raise tt.Skip('libfaketime is not installed (apt-get install libfaketime)')
    offset = os.path.join(ctx.tmp, 'faketime')
    set_offset(offset, 0)
    pcap, totals, g = tt.gen_capture(ctx, 'clock', 2000, devices=100, seed=3)
    spool = os.path.join(ctx.tmp, 'spool')
    redis = ctx.redis()
    tt.wait_window_margin(WINDOW_MS, 60000)
    start = int(time.time() * 1000) // WINDOW_MS * WINDOW_MS
    # tally alone under libfaketime: not Redis, not the tools
    os.environ.update({'LD_PRELOAD': LIBFAKETIME, 'FAKETIME_TIMESTAMP_FILE': offset,
                       'FAKETIME_CACHE_DURATION': '1', 'FAKETIME_DONT_FAKE_MONOTONIC': '1'})
    try:
        t = ctx.tally(['net_pcap0,rx_pcap=' + pcap],
                      ['--redis', redis.addr, '--stats-ms', '100', '--window-ms',
                       str(WINDOW_MS), '--breaker-backoff-ms', '100', '--breaker-max-ms',
                       '400', '--spool-dir', spool, '--shutdown-timeout-s', '3',
                       '--redis-timeout-ms', '500'],
                      redis=redis, name='tally-clock')
    finally:
        for k in ('LD_PRELOAD', 'FAKETIME_TIMESTAMP_FILE', 'FAKETIME_CACHE_DURATION',
                  'FAKETIME_DONT_FAKE_MONOTONIC'):
            os.environ.pop(k, None)
    t.wait_stats(lambda s: s.get('datagrams') == g['valid_datagrams'], timeout=20,
                 what='the capture counted')

    # 1. Back one hour with the breaker open.
    redis.signal(signal.SIGKILL)
    t.wait_telemetry(lambda s: s['breaker_state'] != 0, timeout=10, what='the breaker open')
    set_offset(offset, -3600)
    time.sleep(1.5)  # the step is seen (the offset is read at most a second late)
    redis = redis.restart()
    st = t.wait_telemetry(lambda s: s['breaker_state'] == 0, timeout=10,
                          what='the breaker closed after a backward step')
    up = t.wait_stats(lambda s: s.get('uptime_s', 0) >= 0, timeout=10,
                      what='tally:self written after a backward step')['uptime_s']
    t.wait_stats(lambda s: s.get('uptime_s', 0) >= up + 2, timeout=10,
                 what='tally:self still written every --stats-ms')

    # 2. SIGTERM while Redis hangs, then forward two hours: shutdown still waits.
    redis.signal(signal.SIGSTOP)
    t0 = time.monotonic()
    t.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    set_offset(offset, 3600)
    rc = t.proc.wait(20)
    took = time.monotonic() - t0
    tt.log('exit %d %.2f s after SIGTERM' % (rc, took))
    tt.check_eq(rc, 0, 'exit status (the window spooled)')
    tt.check(took >= 2.5, 'shutdown took %.2f s after a forward step: --shutdown-timeout-s 3 '
             'was not waited out' % took)
    tt.check(len(tt.spool_segments(spool)) >= 1, 'the window spooled at the deadline')
    redis.signal(signal.SIGCONT)

    # 3. The spool replays (no clock games now): totals exact, all in one window.
    t = ctx.tally(['net_pcap0,rx_pcap=' + tt.gen_capture(ctx, 'empty', 0, devices=1,
                                                         seed=4)[0]],
                  ['--redis', redis.addr, '--stats-ms', '100', '--window-ms', str(WINDOW_MS),
                   '--spool-dir', spool], redis=redis, name='tally-replay')
    t.wait_telemetry(lambda s: s['spool_bytes'] == 0 and not tt.spool_segments(spool),
                     timeout=20, what='the spool replayed')
    t.stop()
    tt.compare_totals(totals, tt.query_totals(ctx, redis))
    starts = {k.rsplit(':', 1)[1] for k in redis.client.scan('tally:{*}:*')}
    starts.discard('latest')
    tt.check_eq(starts, {str(start)}, 'window starts (the one of the run, not a stepped one)')


if __name__ == '__main__':
    tt.main(body)
