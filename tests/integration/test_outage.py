#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Redis outages with a spool (--spool-dir): nothing counted is lost or counted twice.

--case shutdown  Redis dies before SIGTERM: tally exits 0 with the window in the spool; the next
                 run (Redis back, empty) replays it next to new traffic, then removes it; the
                 same segments put back (a crash between acknowledgement and removal) replay
                 again without doubling anything; Redis hung (SIGSTOP) at SIGTERM: the window
                 spools while some of its merges wait in dead connections, and the replay
                 adds exactly the rest.
--case pause     Redis hangs (SIGSTOP) for 10 s while a kernel sender streams to tally on a
                 veth: the breaker opens, windows spool, and after SIGCONT everything drains.
--case kill      Redis is killed while the sender streams and comes back 5 s later from its
                 append-only file on the same port: datagrams keep being counted during the
                 outage, RSS stays flat, and the totals are exact.
The last two need root and network namespaces (exit 77 otherwise).
"""
import os
import shutil
import signal
import time

import stream
import tallytest as tt

WINDOW_MS = 60000
INSTANCE = 'outage'


def gen_pcap(ctx, name, datagrams, seed, devices=300, base=1):
    return tt.gen_capture(ctx, name, datagrams, devices=devices, base=base, seed=seed)


def pcap_tally(ctx, redis, pcap, spool, name):
    return ctx.tally(['net_pcap0,rx_pcap=' + pcap],
                     ['--redis', redis.addr, '--stats-ms', '100', '--window-ms', str(WINDOW_MS),
                      '--table-series', '16384', '--spool-dir', spool, '--instance', INSTANCE],
                     redis=redis, name=name)


def wait_drained(tally, spool, timeout=20.0, extra=None, what='the spool drained'):
    """Every segment replayed, acknowledged and removed (telemetry and the directory)."""
    def drained(s):
        return (s['spool_bytes'] == 0 and s['breaker_state'] == 0 and
                not tt.spool_segments(spool) and (extra is None or extra(s)))
    st = tally.wait_telemetry(drained, timeout=timeout, what=what)
    tt.log('drained: ' + tt.fmt_stats({k: v for k, v in st.items()
                                       if k.startswith(('spool', 'breaker', 'redis', 'window',
                                                        'datagrams', 'records', 'sink'))}))
    return st


def case_shutdown(ctx):
    a, ta, ga = gen_pcap(ctx, 'a', 4000, 1)
    b, tb, gb = gen_pcap(ctx, 'b', 4000, 2)
    empty, _, _ = gen_pcap(ctx, 'empty', 0, 3)
    both = tt.combine_totals(ta, tb)
    spool = os.path.join(ctx.tmp, 'spool')
    aside = os.path.join(ctx.tmp, 'spool-copy')
    redis = ctx.redis()

    # 1. Capture A counted, then Redis dies before anything of the open window was written.
    tt.wait_window_margin(WINDOW_MS, 3000)
    t = pcap_tally(ctx, redis, a, spool, 'tally-a')
    st = t.wait_telemetry(lambda s: s['datagrams'] == ga['valid_datagrams'], timeout=30,
                          what='capture A counted')
    tt.check_eq(st['records'], ga['records'], 'records of capture A')
    tt.check_eq(st['breaker_state'], 0, 'breaker with Redis up')
    redis.signal(signal.SIGKILL)
    took = t.stop(timeout=15)
    tt.check(took < 5, 'SIGTERM with Redis down took %.1fs (want < 5s)' % took)
    segs = tt.spool_segments(spool)
    tt.check(len(segs) >= 1, 'spool segments after SIGTERM with Redis down: %s'
             % os.listdir(spool))
    recs = tt.read_spool(spool)
    tt.log('spool: %d segment(s), %d record(s), %d bytes' % (
        len(segs), len(recs), sum(os.path.getsize(p) for p in segs)))
    tt.check(all(r['id'].startswith(INSTANCE + ':') for r in recs), 'partial ids %s'
             % sorted({r['id'] for r in recs}))
    tt.compare_totals_text(tt.combine_totals(ta), tt.spool_totals(recs),
                           'spooled series vs capture A')
    shutil.copytree(spool, aside)

    # 2. Redis back, empty, on the same port: the next run replays A next to capture B.
    redis = redis.restart()
    t = pcap_tally(ctx, redis, b, spool, 'tally-b')
    t.wait_telemetry(lambda s: s['datagrams'] == gb['valid_datagrams'], timeout=30,
                     what='capture B counted')
    st = wait_drained(t, spool)
    tt.check_eq(st['spool_replayed'], len(recs), 'spool_replayed (records) after restart')
    tt.check_eq(st['spool_corrupt'], 0, 'spool_corrupt')
    tt.check_eq(st['spool_lost_records'], 0, 'spool_lost_records')
    t.stop()
    tt.compare_totals_text(both, tt.query_totals(ctx, redis), 'totals after replay (A+B)')
    tt.check_eq(os.listdir(spool), ['tally.lock'], 'spool directory after replay')
    st = redis.self_stats()
    tt.check_eq(st.get('spool_replayed'), len(recs), 'tally:self spool_replayed')

    # 3. The same segments again, as if tally had crashed after Redis acknowledged them but
    #    before it removed them: replayed, refused as duplicates, removed; nothing doubles.
    for p in tt.spool_segments(aside):
        shutil.copy(p, spool)
    t = pcap_tally(ctx, redis, empty, spool, 'tally-again')
    st = wait_drained(t, spool, extra=lambda s: s['spool_replayed'] == len(recs),
                      what='the restored segments replayed')
    tt.check_eq(st['spool_corrupt'], 0, 'spool_corrupt on the second replay')
    tt.check_eq(st['datagrams'], 0, 'datagrams of the empty capture')
    t.stop()
    tt.compare_totals_text(both, tt.query_totals(ctx, redis), 'totals after a second replay')
    tt.check_eq(os.listdir(spool), ['tally.lock'], 'spool directory after the second replay')

    # 4. Redis hangs (SIGSTOP) at shutdown: the window's merges sit unanswered in dead
    #    connections, tally gives up after --redis-timeout-ms and spools the window. When
    #    Redis resumes it may apply some or all of those merges; the replay must add exactly
    #    the rest.
    c, tc, gc = gen_pcap(ctx, 'c', 4000, 4)
    tt.wait_window_margin(WINDOW_MS, 3000)
    t = ctx.tally(['net_pcap0,rx_pcap=' + c],
                  ['--redis', redis.addr, '--stats-ms', '100', '--window-ms', str(WINDOW_MS),
                   '--table-series', '16384', '--spool-dir', spool, '--instance', INSTANCE,
                   '--redis-timeout-ms', '300'], redis=redis, name='tally-c')
    t.wait_telemetry(lambda s: s['datagrams'] == gc['valid_datagrams'], timeout=30,
                     what='capture C counted')
    redis.signal(signal.SIGSTOP)
    took = t.stop(timeout=15)
    tt.check(took < 5, 'SIGTERM with Redis hung took %.1fs (want < 5s)' % took)
    recs = tt.read_spool(spool)
    tt.check(len(recs) >= 1, 'no spool records after SIGTERM with Redis hung')
    tt.compare_totals_text(tt.combine_totals(tc), tt.spool_totals(recs),
                           'spooled series vs capture C')
    redis.signal(signal.SIGCONT)
    time.sleep(0.3)  # what Redis makes of the merges left in the dead connections (logged)
    ab = sum(int(l.split()[2]) for l in tt.combine_totals(ta, tb).splitlines())
    now = sum(int(l.split()[2]) for l in tt.query_totals(ctx, redis).splitlines())
    tt.log('the hung Redis applied %d of %d records of capture C on resuming'
           % (now - ab, gc['records']))
    t = pcap_tally(ctx, redis, empty, spool, 'tally-after-hang')
    st = wait_drained(t, spool)
    tt.check_eq(st['spool_replayed'], len(recs), 'spool_replayed after the hang')
    t.stop()
    tt.compare_totals_text(tt.combine_totals(ta, tb, tc), tt.query_totals(ctx, redis),
                           'totals after a hang at shutdown (A+B+C)')
    tt.check_schema(redis, 86400, WINDOW_MS)


# ---------------------------------------------------------------------------------------------
# A kernel sender on a veth (root)

RATE = 2000         # datagrams/s; lower it (never the checks) if AF_PACKET drops frames here
SEND_S = 20
DATAGRAMS = RATE * SEND_S


def stream_tally(ctx, redis, iface, afp, spool, extra):
    t = ctx.tally(['net_af_packet0,iface=%s,qpairs=1' % iface],
                  ['--redis', redis.addr, '--ipv4', afp.TALLY_IP, '--stats-ms', '100',
                   '--window-ms', '1000', '--table-series', '16384', '--spool-dir', spool,
                   '--instance', INSTANCE] + extra, workers=1, redis=redis)
    t.wait_telemetry(lambda s: s.get('workers') == 1, timeout=15, what='tally running')
    return t


def finish_stream(ctx, t, redis, sender, spool, gen_totals, t0):
    g = stream.finish_sender(sender)
    t.wait_telemetry(lambda s: stream.no_drops(s, RATE) and s['datagrams'] == DATAGRAMS,
                     timeout=15,
                     what='datagrams=%d' % DATAGRAMS)
    st = wait_drained(t, spool, timeout=20)
    tt.check_eq(st['spool_corrupt'], 0, 'spool_corrupt')
    tt.check_eq(st['spool_lost_records'], 0, 'spool_lost_records')
    tt.check_eq(st['spool_dropped'], 0, 'spool_dropped')
    tt.check_eq(st['table_full'], 0, 'table_full')
    t.stop()
    st = redis.self_stats()
    tt.log('final tally:self: ' + tt.fmt_stats({k: v for k, v in st.items() if ':' not in k}))
    tt.check_eq(st['datagrams'], g['valid_datagrams'], 'tally:self datagrams')
    tt.check_eq(st['records'], g['records'], 'tally:self records')
    tt.check_eq(st['rx_missed'], 0, 'tally:self rx_missed')
    tt.compare_totals(gen_totals, tt.query_totals(ctx, redis))
    tt.check_schema(redis, 86400, 1000)
    return st


def case_pause(ctx):
    afp, ns, iface = stream.veth(ctx)
    redis = ctx.redis()
    spool = os.path.join(ctx.tmp, 'spool')
    totals = os.path.join(ctx.tmp, 'sent.totals')
    t = stream_tally(ctx, redis, iface, afp, spool,
                     ['--redis-timeout-ms', '300', '--breaker-max-ms', '1000'])
    t0 = time.monotonic()
    sender = stream.start_sender(ctx, afp, ns, totals, RATE, SEND_S)

    time.sleep(4)
    redis.signal(signal.SIGSTOP)
    paused_at = time.monotonic()
    seen_open, samples, pinged = False, [], False
    while time.monotonic() - paused_at < 10:
        if not pinged and time.monotonic() - paused_at > 3:
            # The exception path has its own thread: a hung Redis does not stall replies.
            rc, out, _ = tt.run_tool(['ping', '-c', '3', '-i', '0.2', '-W', '1',
                                      afp.TALLY_IP], netns=ns, ok=None, timeout=10)
            tt.check_eq(rc, 0, 'ping tally while Redis hangs (%s)' % out.strip()[-80:])
            pinged = True
        st = t.telemetry('/tally/stats') or {}
        if st:
            seen_open |= st['breaker_state'] == 1
            samples.append((round(time.monotonic() - paused_at, 1), st['datagrams'],
                            st['breaker_state'], st['spool_windows'], st['sink_queue']))
        time.sleep(0.25)
    redis.signal(signal.SIGCONT)
    tt.log('while paused (s, datagrams, breaker_state, spool_windows, sink_queue): %s'
           % samples[::4])
    tt.check(seen_open, 'breaker_state never 1 (open) during a 10 s hang of Redis')
    st = t.telemetry('/tally/stats')
    tt.check(st['breaker_opens'] >= 1, 'breaker_opens %d' % st['breaker_opens'])
    tt.check(st['spool_windows'] >= 1, 'no window spooled during the hang')
    tt.check(samples[-1][1] > samples[0][1], 'datagrams kept rising during the hang')

    st = finish_stream(ctx, t, redis, sender, spool, totals, t0)
    tt.check(st['spool_replayed'] >= 1, 'spool_replayed %d' % st['spool_replayed'])
    tt.check(st['redis_failures'] >= 1, 'redis_failures %d' % st['redis_failures'])


def case_kill(ctx):
    afp, ns, iface = stream.veth(ctx)
    aof = os.path.join(ctx.tmp, 'aof')
    os.mkdir(aof)
    persist = ['--appendonly', 'yes', '--appendfsync', 'always', '--dir', aof]
    redis = ctx.redis(extra=persist)
    spool = os.path.join(ctx.tmp, 'spool')
    totals = os.path.join(ctx.tmp, 'sent.totals')
    t = stream_tally(ctx, redis, iface, afp, spool, ['--redis-timeout-ms', '500'])
    t0 = time.monotonic()
    sender = stream.start_sender(ctx, afp, ns, totals, RATE, SEND_S)
    rss, during, killed_at, restarted = [], [], None, False

    while sender.poll() is None and time.monotonic() - t0 < SEND_S + 15:
        now = time.monotonic() - t0
        if killed_at is None and now >= 5:
            redis.signal(signal.SIGKILL)
            killed_at = now
        if killed_at is not None and not restarted and now >= killed_at + 4.5:
            redis = redis.restart()
            restarted = True
        st = t.telemetry('/tally/stats') or {}
        if killed_at is not None and not restarted and st:
            during.append((round(now, 1), st['datagrams'], st['breaker_state'],
                           st['spool_windows']))
        rss.append((round(now, 1), t.rss_kb()))
        time.sleep(1.0 - (time.monotonic() - t0) % 1.0)
    tt.check(restarted, 'the sender ended before Redis was restarted')
    tt.log('RSS samples (s, kB): %s' % rss)
    tt.log('during the outage (s, datagrams, breaker_state, spool_windows): %s' % during)
    tt.check(len(during) >= 3, 'telemetry answered %d times during the outage' % len(during))
    tt.check(all(x[1] < y[1] for x, y in zip(during, during[1:])),
             'datagrams rose at every sample during the outage')
    tt.check(any(x[2] == 1 for x in during), 'breaker open during the outage')
    tt.check(during[-1][3] >= 1, 'windows spooled during the outage')
    warm = [kb for s, kb in rss if s >= 2 and kb is not None]
    tt.check(len(warm) >= 10, 'RSS samples after warm-up: %d' % len(warm))
    grew = max(warm) - warm[0]
    tt.log('RSS after warm-up: first %d kB, max %d kB, growth %d kB' % (warm[0], max(warm), grew))
    tt.check(grew <= 64 * 1024, 'RSS grew by %d kB during the run (limit 64 MB)' % grew)

    st = finish_stream(ctx, t, redis, sender, spool, totals, t0)
    tt.check(st['spool_replayed'] >= 1, 'spool_replayed %d' % st['spool_replayed'])
    tt.check(st['breaker_opens'] >= 1, 'breaker_opens %d' % st['breaker_opens'])


CASES = {'shutdown': case_shutdown, 'pause': case_pause, 'kill': case_kill}


def body(ctx):
    CASES[ctx.args.case](ctx)


if __name__ == '__main__':
    tt.main(body, lambda ap: ap.add_argument('--case', choices=sorted(CASES), required=True))
