#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""SIGHUP reads the configuration again mid-stream. A kernel sender streams over a veth to
tally on net_af_packet, writing to Redis A; a FIFO where the INI file goes is not waited on
and an INI file with a bad value is refused whole (logged, nothing changed); then the INI names Redis B (with a password), other flush bounds
and log period, and keys that need a restart. After SIGHUP: each change is logged, the
restart keys are logged as such and keep their values, and the windows go to B. Every window
is written whole to one Redis (no window key in both), and A's and B's totals together equal
the sender's exactly."""

import os
import re
import signal
import stat
import time

import stream
import tallytest as tt

RATE = 2000  # datagrams/s; lower it (never the checks) if AF_PACKET drops frames here
SEND_S = 8
DATAGRAMS = RATE * SEND_S
WINDOW = re.compile(r'^tally:\{\d+\}:\d+$')


def write_ini(path, lines):
    with open(path, 'w') as f:
        f.write('[tally]\n' + ''.join(l + '\n' for l in lines))


def wait_log(t, pattern, what, timeout=15):
    tt.wait_until(lambda: re.search(pattern, t.log_text(), re.M) is not None, timeout,
                  'log: ' + what)


def totals_of(ctx, redis, password_file=None):
    """tally-query totals as {(device, metric): (count, sum, min, max)}."""
    argv = [ctx.args.tally_query, '--redis', redis.addr]
    if password_file:
        argv += ['--redis-password-file', password_file]
    _, out, _ = tt.run_tool(argv + ['totals'])
    acc = {}
    for line in out.splitlines():
        d, m, c, s, mn, mx = line.split()
        tt.fold_series(acc, (int(d), int(m)), int(c), float(s), float(mn), float(mx))
    return acc


def case_switch(ctx):
    afp, ns, iface = stream.veth(ctx)
    a = ctx.redis()
    b = tt.Redis(ctx, password='b-secret')
    pw = os.path.join(ctx.tmp, 'b.password')
    with open(pw, 'w') as f:
        f.write('b-secret\n')
    os.chmod(pw, stat.S_IRUSR | stat.S_IWUSR)
    ini = os.path.join(ctx.tmp, 'tally.ini')
    write_ini(ini, ['redis = ' + a.addr, 'flush-ms = 50', 'window-ms = 500'])
    t = ctx.tally(['net_af_packet0,iface=%s,qpairs=1' % iface],
                  ['--config', ini, '--ipv4', afp.TALLY_IP, '--stats-ms', '100',
                   '--table-series', '16384', '--instance', 'reload'], redis=a)
    t.wait_telemetry(lambda s: s.get('workers') == 1, timeout=15, what='tally running')
    totals = os.path.join(ctx.tmp, 'sent.totals')
    sender = stream.start_sender(ctx, afp, ns, totals, RATE, SEND_S)
    t.wait_telemetry(lambda s: stream.no_drops(s, RATE) and s['datagrams'] >= RATE * 2,
                     timeout=15, what='2 s of the stream')

    # A FIFO where the INI file was: never waited on (the control lcore goes on), nothing changes.
    os.rename(ini, ini + '.real')
    os.mkfifo(ini)
    t.proc.send_signal(signal.SIGHUP)
    wait_log(t, r'^TALLY: SIGHUP: --config: .* is not a regular file \(a FIFO\): nothing changed$',
             'a FIFO refused')
    os.remove(ini)
    os.rename(ini + '.real', ini)

    # A bad value: refused whole, nothing changes.
    write_ini(ini, ['redis = ' + b.addr, 'flush-ms = abc'])
    t.proc.send_signal(signal.SIGHUP)
    wait_log(t, r"^TALLY: SIGHUP: .*--flush-ms: 'abc' is not an integer.*: nothing changed$",
             'a bad INI refused')
    tt.check('writing to' not in t.log_text(), 'a refused INI changed the Redis address')

    # Redis B with its password, new flush bounds and log period; two keys need a restart.
    write_ini(ini, ['redis = ' + b.addr, 'redis-password-file = ' + pw, 'flush-ms = 20',
                    'flush-batch = 100', 'log-ms = 700', 'window-ms = 250', 'udp-port = 9798'])
    t.proc.send_signal(signal.SIGHUP)
    wait_log(t, r'^TALLY: SIGHUP: Redis: writing to %s now \(was %s\)$'
             % (re.escape(b.addr), re.escape(a.addr)), 'the switch to B')
    log = t.log_text()
    for line in ('--redis %s -> %s' % (a.addr, b.addr),
                 '--redis-password-file unset -> %s' % pw,
                 '--flush-ms 50 -> 20', '--flush-batch 5000 -> 100', '--log-ms 5000 -> 700',
                 '--window-ms 500 -> 250 needs a restart: still 500',
                 '--udp-port 9797 -> 9798 needs a restart: still 9797'):
        tt.check(('TALLY: SIGHUP: ' + line + '\n') in log, 'log lacks %r' % line)
    tt.wait_until(lambda: b.self_stats().get('datagrams', 0) > 0, 15, 'tally:self in B')

    g = stream.finish_sender(sender)
    t.wait_telemetry(lambda s: stream.no_drops(s, RATE) and s['datagrams'] == DATAGRAMS,
                     timeout=20, what='datagrams=%d' % DATAGRAMS)
    t.stop()
    st = b.self_stats()
    tt.check_eq(st['datagrams'], g['valid_datagrams'], 'tally:self in B: datagrams')
    tt.check_eq(st['records'], g['records'], 'tally:self in B: records')
    tt.check_eq(st['table_full'] + st['window_stall'], 0, 'nothing dropped')

    # Each window went whole to one Redis, and A + B hold exactly what was sent.
    in_a = {k for k in a.client.scan('tally:*') if WINDOW.match(k)}
    in_b = {k for k in b.client.scan('tally:*') if WINDOW.match(k)}
    tt.check(in_a and in_b, 'windows in both Redis: A %d keys, B %d' % (len(in_a), len(in_b)))
    both = sorted(in_a & in_b)
    tt.check(not both, '%d window keys in both A and B, e.g. %s' % (len(both), both[:3]))
    acc = totals_of(ctx, a)
    for k, v in totals_of(ctx, b, pw).items():
        tt.fold_series(acc, k, *v)
    with open(totals) as f:
        tt.compare_totals_text(f.read(), tt.format_totals(acc), 'totals of A and B together')
    tt.log('windows: %d device keys in A, %d in B; totals exact' % (len(in_a), len(in_b)))


def case_down(ctx):
    """Redis A dies mid-stream (windows go to the spool); SIGHUP names Redis B: the sink takes
    it at once (it is not connected), the spool replays into B, nothing is dropped, and no
    series in B counts more than was sent."""
    afp, ns, iface = stream.veth(ctx)
    a = ctx.redis()
    b = ctx.redis()
    spool = os.path.join(ctx.tmp, 'spool')
    ini = os.path.join(ctx.tmp, 'tally.ini')
    write_ini(ini, ['redis = ' + a.addr, 'window-ms = 500'])
    t = ctx.tally(['net_af_packet0,iface=%s,qpairs=1' % iface],
                  ['--config', ini, '--ipv4', afp.TALLY_IP, '--stats-ms', '100',
                   '--table-series', '16384', '--spool-dir', spool, '--breaker-failures', '1',
                   '--redis-timeout-ms', '500'], redis=a)
    t.wait_telemetry(lambda s: s.get('workers') == 1, timeout=15, what='tally running')
    totals = os.path.join(ctx.tmp, 'sent.totals')
    sender = stream.start_sender(ctx, afp, ns, totals, RATE, SEND_S)
    t.wait_telemetry(lambda s: stream.no_drops(s, RATE) and s['datagrams'] >= RATE * 2,
                     timeout=15, what='2 s of the stream')
    a.signal(signal.SIGKILL)
    t.wait_telemetry(lambda s: s['breaker_state'] != 0 and s['spool_windows'] > 0, timeout=15,
                     what='the breaker open and windows spooled')
    write_ini(ini, ['redis = ' + b.addr, 'window-ms = 500'])
    t.proc.send_signal(signal.SIGHUP)
    wait_log(t, r'^TALLY: SIGHUP: Redis: writing to %s now \(was %s\)$'
             % (re.escape(b.addr), re.escape(a.addr)), 'the switch to B while A is down')
    g = stream.finish_sender(sender)
    st = t.wait_telemetry(lambda s: s['datagrams'] == DATAGRAMS and s['spool_bytes'] == 0 and
                          s['sink_queue'] == 0 and s['breaker_state'] == 0, timeout=30,
                          what='everything in B, the spool empty')
    tt.check(st['spool_replayed'] > 0, 'the spool replayed into B')
    t.stop()
    st = b.self_stats()
    tt.check_eq(st['datagrams'], g['valid_datagrams'], 'tally:self in B: datagrams')
    for k in ('table_full', 'window_stall', 'spool_lost_records', 'unwritten_records',
              'spool_dropped'):
        tt.check_eq(st[k], 0, 'tally:self in B: ' + k)
    sent = tt.read_totals(totals)
    got = totals_of(ctx, b)
    over = [k for k, v in got.items() if k not in sent or v[0] > sent[k][0]]
    tt.check(not over, '%d series in B count more than was sent, e.g. %s' % (len(over),
             over[:3]))
    share = sum(v[0] for v in got.values()) / float(g['records'])
    tt.check(share > 0.5, 'B holds most of the stream (%.0f%%)' % (share * 100))
    tt.log('after A died: %.0f%% of the records in B, %d spool records replayed there'
           % (share * 100, st['spool_replayed']))


CASES = {'switch': case_switch, 'down': case_down}


def body(ctx):
    CASES[ctx.args.case](ctx)


if __name__ == '__main__':
    tt.main(body, lambda ap: ap.add_argument('--case', choices=sorted(CASES), required=True))
