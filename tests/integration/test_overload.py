#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Overload: Redis slowed on purpose, never down, while a kernel sender streams telemetry over a
veth into tally on AF_PACKET (1 s windows, a spool). First writes stall for 8 s (CLIENT PAUSE
WRITE renewed every second: reads are still served), then Redis freezes half a second at a time
for 5 s (DEBUG SLEEP 0.5 back to back). After Redis recovers and the spool is replayed, no
record may have been dropped at a window boundary or anywhere else, and the totals in Redis
must equal what was sent. The peaks of the sink's counters during the run are logged.
Needs root and network namespaces (exit 77 otherwise).
"""
import os
import threading
import time

import stream
import tallytest as tt

RATE = 3000         # datagrams/s; lower it (never the checks) if AF_PACKET drops frames here
SEND_S = 20
DATAGRAMS = RATE * SEND_S
DEVICES = 300
PAUSE_AT, PAUSE_S = 3.0, 8.0    # s after the sender starts: writes stall
SLEEP_AT, SLEEP_S = 12.0, 5.0   # then Redis freezes 0.5 s at a time
INSTANCE = 'overload'

# Each of these counts records (or windows) lost somewhere on the way to Redis.
MUST_BE_ZERO = ('window_stall', 'table_full', 'merge_full', 'spool_lost_records',
                'spool_dropped', 'rx_missed')
# Sampled while the stream runs; their peaks are logged.
PEAKS = ('flush_lag_ms', 'sink_queue', 'spool_windows', 'breaker_opens', 'window_retries')


class Slower(threading.Thread):
    """Slows Redis from connections of its own, on the sender's clock t0."""

    def __init__(self, redis, t0):
        super().__init__(name='slower', daemon=True)
        self.redis, self.t0 = redis, t0
        self.stop = threading.Event()
        self.error = None
        self.pauses = self.sleeps = 0
        self.slept_s = 0.0

    def _until(self, at):
        self.stop.wait(max(0.0, self.t0 + at - time.monotonic()))
        return not self.stop.is_set()

    def run(self):
        pause = tt.Resp('127.0.0.1', self.redis.port)
        sleep = tt.Resp('127.0.0.1', self.redis.port)
        try:
            if not self._until(PAUSE_AT):
                return
            tt.log('CLIENT PAUSE 3000 WRITE, renewed every second for %.0f s' % PAUSE_S)
            while time.monotonic() < self.t0 + PAUSE_AT + PAUSE_S and not self.stop.is_set():
                tt.check_eq(pause.call('CLIENT', 'PAUSE', 3000, 'WRITE'), 'OK', 'CLIENT PAUSE')
                self.pauses += 1
                self.stop.wait(1.0)
            tt.check_eq(pause.call('CLIENT', 'UNPAUSE'), 'OK', 'CLIENT UNPAUSE')
            tt.log('CLIENT UNPAUSE after %d pauses' % self.pauses)
            if not self._until(SLEEP_AT):
                return
            tt.log('DEBUG SLEEP 0.5 back to back for %.0f s' % SLEEP_S)
            t = time.monotonic()
            while time.monotonic() < self.t0 + SLEEP_AT + SLEEP_S and not self.stop.is_set():
                tt.check_eq(sleep.call('DEBUG', 'SLEEP', '0.5'), 'OK', 'DEBUG SLEEP')
                self.sleeps += 1
            self.slept_s = time.monotonic() - t
            tt.log('DEBUG SLEEP done: %d sleeps in %.1f s' % (self.sleeps, self.slept_s))
        except Exception as e:  # reported by the test's thread
            self.error = e
        finally:
            pause.close()
            sleep.close()


def sample(t, reader, peaks, timeline, stalls, t0):
    """One sample of the live counters (telemetry) and of tally:self, read from a connection
    the slowing never pauses (CLIENT PAUSE WRITE still serves reads)."""
    now = round(time.monotonic() - t0, 1)
    live = t.telemetry('/tally/stats') or {}
    try:
        flat = reader.call('HGETALL', 'tally:self')
        stored = {k: int(v) for k, v in zip(flat[0::2], flat[1::2])}
    except (OSError, ConnectionError, tt.RedisError):
        stored = {}
    for src, st in (('telemetry', live), ('tally:self', stored)):
        for k in PEAKS:
            if k in st and st[k] > peaks[src].get(k, (-1, 0))[0]:
                peaks[src][k] = (st[k], now)
    if live:
        stream.no_drops(live, RATE)
        timeline.append((now, live['datagrams'], live['breaker_state'], live['sink_queue'],
                         live['spool_windows'], live['flush_lag_ms'], live['window_stall']))
        if live['window_stall'] != (stalls[-1][1] if stalls else 0):
            stalls.append((now, live['window_stall']))


def body(ctx):
    afp, ns, iface = stream.veth(ctx)
    redis = ctx.redis(extra=['--enable-debug-command', 'yes'])
    spool = os.path.join(ctx.tmp, 'spool')
    totals = os.path.join(ctx.tmp, 'sent.totals')
    t = ctx.tally(['net_af_packet0,iface=%s,qpairs=1' % iface],
                  ['--redis', redis.addr, '--ipv4', afp.TALLY_IP, '--stats-ms', '100',
                   '--window-ms', '1000', '--table-series', '16384', '--spool-dir', spool,
                   '--instance', INSTANCE], workers=1, redis=redis)
    t.wait_telemetry(lambda s: s.get('workers') == 1, timeout=15, what='tally running')

    t0 = time.monotonic()
    sender = stream.start_sender(ctx, afp, ns, totals, RATE, SEND_S, devices=DEVICES, seed=11)
    slower = Slower(redis, t0)
    slower.start()
    reader = tt.Resp('127.0.0.1', redis.port)
    peaks = {'telemetry': {}, 'tally:self': {}}
    timeline, stalls = [], []
    try:
        while sender.poll() is None and time.monotonic() - t0 < SEND_S + 15:
            sample(t, reader, peaks, timeline, stalls, t0)
            time.sleep(0.2)
    finally:
        slower.stop.set()
        slower.join(10)
        reader.close()
    tt.check(slower.error is None, 'slowing Redis failed: %r' % slower.error)
    tt.check(slower.pauses >= PAUSE_S - 1, 'CLIENT PAUSE issued %d times' % slower.pauses)
    tt.check(slower.sleeps >= SLEEP_S / 0.5 - 2, 'DEBUG SLEEP issued %d times' % slower.sleeps)
    tt.log('timeline (s, datagrams, breaker_state, sink_queue, spool_windows, flush_lag_ms, '
           'window_stall): %s' % timeline[::5])
    for src in ('telemetry', 'tally:self'):
        tt.log('peaks from %s (value, at s): %s' % (src, ', '.join(
            '%s=%s' % (k, peaks[src].get(k)) for k in PEAKS)))
    tt.log('window_stall rose at (s, value): %s (pause %.0f-%.0f s, sleeps %.0f-%.0f s)'
           % (stalls, PAUSE_AT, PAUSE_AT + PAUSE_S, SLEEP_AT, SLEEP_AT + SLEEP_S))

    g = stream.finish_sender(sender)
    # At least: one more than was sent is a failure the checks below name.
    t.wait_telemetry(lambda s: stream.no_drops(s, RATE) and s['datagrams'] >= DATAGRAMS, timeout=15,
                     what='datagrams=%d' % DATAGRAMS)
    t.wait_stats(lambda s: (s.get('datagrams', 0) >= DATAGRAMS and s['spool_bytes'] == 0 and
                            s['sink_queue'] == 0 and s['breaker_state'] == 0),
                 timeout=30, what='the spool replayed and the sink queue empty')
    tt.check_eq(tt.spool_segments(spool), [], 'spool segments after the replay')
    tt.log('recovered %.1f s after the sender started' % (time.monotonic() - t0))
    t.stop(timeout=15)

    st = redis.self_stats()
    tt.log('final tally:self: ' + tt.fmt_stats({k: v for k, v in st.items() if ':' not in k}))
    tt.check_eq(st['datagrams'], g['valid_datagrams'], 'tally:self datagrams')
    tt.check_eq(st['records'], g['records'], 'tally:self records')
    lost = ['%s=%d' % (k, st[k]) for k in MUST_BE_ZERO if st[k] != 0]
    try:
        tt.compare_totals(totals, tt.query_totals(ctx, redis))
        wrong = None
    except tt.Failure as e:
        wrong = str(e)
    tt.check(not lost and wrong is None, 'records lost under a slow Redis: %s%s'
             % (' '.join(lost) or 'no counter', '' if wrong is None else '; ' + wrong))
    tt.check(st['redis_failures'] >= 1, 'the slowing never reached tally: redis_failures %d'
             % st['redis_failures'])
    tt.check_schema(redis, 86400, 1000)


if __name__ == '__main__':
    tt.main(body)
