#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""A device whose keys Redis refuses (a key of the wrong type, a field that is not a number)
is isolated: its device-window is counted, logged and kept whole in tally:refused, every
other device's totals are exact, and nothing is sent again (no resend storm)."""

import json
import os
import signal
import time

import tallytest as tt

DATAGRAMS = 6000
DEVICES = 300
WINDOW_MS = 600000


def fcalls(redis):
    """Calls of FCALL Redis has served (INFO commandstats)."""
    for line in redis.client.call('INFO', 'commandstats').splitlines():
        if line.startswith('cmdstat_fcall:'):
            return int(dict(kv.split('=') for kv in line.split(':', 1)[1].split(','))['calls'])
    return 0


def window_series(redis, dev, w):
    """{(dev, metric): (count, sum, min, max)} of the metrics whose four fields are numbers."""
    h = redis.client.hgetall('tally:{%d}:%d' % (dev, w))
    out = {}
    for f, v in h.items():
        m = tt.SERIES_FIELD.match(f)
        if m and m.group(2) == 'count':
            k = m.group(1)
            try:
                out[(dev, int(k))] = (int(v), float(h[k + ':sum']), float(h[k + ':min']),
                                      float(h[k + ':max']))
            except (KeyError, ValueError):
                pass
    return out


def many_metrics(ctx, redis):
    """Devices of 300 metrics (five chunks of 64) are refused chunk by chunk: a field that is
    not a number refuses its chunk alone, the device's other chunks are folded into the key;
    a window key of the wrong type refuses all five, each kept as a line of its own."""
    pcap = os.path.join(ctx.tmp, 'many.pcap')
    totals = os.path.join(ctx.tmp, 'many.totals')
    tt.tally_gen(ctx, ['--pcap', pcap, '--datagrams', '15', '--records', '300', '--metrics',
                       '300', '--devices', '3', '--device-base', '1001', '--seed', '3',
                       '--totals', totals])
    expected = tt.read_totals(totals)
    redis.flushall()
    tt.wait_window_margin(WINDOW_MS, 20000)
    w = int(time.time() * 1000) // WINDOW_MS * WINDOW_MS
    redis.client.call('HSET', 'tally:{1001}:%d' % w, '150:count', 'x')  # chunk 2: 129-192
    redis.client.call('SADD', 'tally:{1002}:%d' % w, 'a set')
    tally = ctx.tally(['net_pcap0,rx_pcap=' + pcap],
                      ['--redis', redis.addr, '--window-ms', str(WINDOW_MS), '--stats-ms', '100'],
                      redis=redis, name='tally-many')
    tally.wait_stats(lambda s: s.get('datagrams') == 15, timeout=30, what='datagrams=15')
    tally.stop()
    st = redis.self_stats()

    def refused(k):
        return k[0] == 1002 or (k[0] == 1001 and 129 <= k[1] <= 192)

    tt.check_eq((st['redis_refused'], st['redis_refused_lost']), (1 + 5, 0),
                'many metrics: (redis_refused, redis_refused_lost) chunks')
    tt.check_eq(st['redis_refused_records'],
                sum(v[0] for k, v in expected.items() if refused(k)),
                'many metrics: redis_refused_records')
    tt.check_eq((st['redis_folds'], st['redis_fold_retries'], st['window_retries']), (1, 0, 0),
                'many metrics: (redis_folds, redis_fold_retries, window_retries)')
    kept, chunks = {}, set()
    for line in redis.client.call('LRANGE', 'tally:refused', '0', '-1'):
        e = json.loads(line)
        chunks.add((e['device'], e['chunk']))
        tt.check_eq(len(e['series']), 64 if e['chunk'] < 4 else 44, 'series of a refused chunk')
        for x in e['series']:
            tt.check_eq((x['metric'] - 1) // 64, e['chunk'], 'metric %d in chunk %d'
                        % (x['metric'], e['chunk']))
            tt.fold_series(kept, (e['device'], x['metric']), x['count'], x['sum'], x['min'],
                           x['max'])
    tt.check_eq(sorted(chunks), [(1001, 2)] + [(1002, k) for k in range(5)],
                'many metrics: (device, chunk) in tally:refused')
    tt.check_eq(kept, {k: v for k, v in expected.items() if refused(k)},
                'many metrics: refused aggregates')
    got = {}
    for dev in (1001, 1003):
        got.update(window_series(redis, dev, w))
    tt.check_eq(got, {k: v for k, v in expected.items() if not refused(k)},
                'many metrics: what Redis holds of devices 1001 and 1003')
    tt.check_eq(redis.client.call('HGET', 'tally:{1001}:%d' % w, '150:count'), 'x',
                'the foreign field is untouched')
    tt.check_eq(redis.client.call('SMEMBERS', 'tally:{1002}:%d' % w), ['a set'],
                'foreign set kept')


def body(ctx):
    pcap, totals, gen = tt.gen_capture(ctx, 'refused', DATAGRAMS, devices=DEVICES)
    expected = tt.read_totals(totals)
    redis = ctx.redis()
    tt.wait_window_margin(WINDOW_MS, 20000)
    w = int(time.time() * 1000) // WINDOW_MS * WINDOW_MS
    # Someone else's keys where tally writes: each a different way to be refused.
    redis.client.call('RPUSH', 'tally:{5}:latest', 'a list')           # latest: WRONGTYPE
    redis.client.call('SADD', 'tally:{6}:%d' % w, 'a set')             # window: WRONGTYPE
    redis.client.call('HSET', 'tally:{7}:%d' % w, '1:count', 'many')   # not a number
    refused = {5, 6, 7}
    for d in refused:
        tt.check(any(k[0] == d for k in expected), 'device %d is in the capture' % d)

    tally = ctx.tally(['net_pcap0,rx_pcap=' + pcap],
                      ['--redis', redis.addr, '--window-ms', str(WINDOW_MS), '--stats-ms', '100',
                       '--flush-ms', '10'], redis=redis)
    tally.wait_stats(lambda s: s.get('datagrams') == DATAGRAMS, timeout=30,
                     what='datagrams=%d' % DATAGRAMS)
    tally.stop()
    st = redis.self_stats()
    tt.log('final tally:self: ' + tt.fmt_stats(st))

    # Counted: three device-windows and exactly their records; the window itself is written.
    want_records = sum(v[0] for k, v in expected.items() if k[0] in refused)
    tt.check_eq(st['redis_refused'], 3, 'redis_refused')
    tt.check_eq(st['redis_refused_records'], want_records, 'redis_refused_records')
    tt.check_eq(st['redis_refused_lost'], 0, 'redis_refused_lost')
    tt.check_eq(st['windows_flushed'], 1, 'windows_flushed')
    # No resend storm: the breaker never opened, nothing was written twice.
    tt.check_eq((st['breaker_opens'], st['window_retries']), (0, 0),
                '(breaker_opens, window_retries)')
    calls = fcalls(redis)
    tt.check(calls <= (DEVICES + 15) // 16 + 1, '%d FCALLs for %d devices' % (calls, DEVICES))

    # Logged, with the key and Redis's reason.
    log = tally.log_text()
    tt.check('Redis refused tally:{' in log and 'kept in tally:refused' in log,
             'no log line names a refused key:\n' + log[-2000:])
    tt.check('WRONGTYPE' in log, 'the log line carries Redis\'s error')

    # Kept whole: each refused device-window is a JSON line with its aggregates.
    kept = {}
    for line in redis.client.call('LRANGE', 'tally:refused', '0', '-1'):
        e = json.loads(line)
        tt.check_eq(e['window'], w, 'refused entry window')
        tt.check(e['error'], 'refused entry has its error')
        for x in e['series']:
            tt.fold_series(kept, (e['device'], x['metric']), x['count'], x['sum'], x['min'],
                           x['max'])
    tt.check_eq(sorted({k[0] for k in kept}), sorted(refused), 'devices in tally:refused')
    tt.compare_totals_text(tt.format_totals({k: v for k, v in expected.items()
                                             if k[0] in refused}),
                           tt.format_totals(kept), 'refused aggregates',
                           label='tally-gen --totals of devices 5, 6, 7')

    # Everything else is exact, and the foreign keys are untouched.
    others = {k: v for k, v in expected.items() if k[0] not in refused}
    got = tt.query_totals(ctx, redis)
    tt.compare_totals_text(tt.format_totals(others),
                           ''.join(l + '\n' for l in got.splitlines()
                                   if int(l.split()[0]) not in refused))
    tt.check_eq(redis.client.call('LRANGE', 'tally:{5}:latest', '0', '-1'), ['a list'],
                'foreign list kept')
    tt.check_eq(redis.client.call('SMEMBERS', 'tally:{6}:%d' % w), ['a set'], 'foreign set kept')
    tt.check_eq(redis.client.hgetall('tally:{7}:%d' % w), {'1:count': 'many'},
                'the window key with a foreign field is untouched')

    # The same window sent again and again (here: WAIT for a replica there is not, so every
    # pass fails after its replies are read): each refusal is kept and counted once. Devices
    # 5 and 6 are refused in tally_put2's reply; device 7's window key is a hash, refused
    # only when the sink has read it to fold into it, which follows an acknowledged batch,
    # so never here.
    redis.client.call('DEL', 'tally:refused', 'tally:self')
    tally = ctx.tally(['net_pcap0,rx_pcap=' + pcap],
                      ['--redis', redis.addr, '--window-ms', str(WINDOW_MS), '--stats-ms', '100',
                       '--flush-ms', '10', '--redis-wait-replicas', '1', '--redis-timeout-ms',
                       '200', '--breaker-failures', '1000', '--shutdown-timeout-s', '3'],
                      redis=redis, name='tally-retries')
    tally.wait_stats(lambda s: s.get('datagrams') == DATAGRAMS, timeout=30,
                     what='datagrams=%d' % DATAGRAMS)
    time.sleep(1.0)
    tally.proc.send_signal(signal.SIGTERM)
    rc = tally.proc.wait(20)
    tt.check_eq(rc, 1, 'exit status with the window never acknowledged (no spool)')
    st = redis.self_stats()
    tt.log('retries: window_retries=%d redis_wait_short=%d redis_refused=%d'
           % (st['window_retries'], st['redis_wait_short'], st['redis_refused']))
    tt.check(st['window_retries'] >= 2, 'the window was sent again (%d)' % st['window_retries'])
    tt.check_eq(st['redis_refused'], 2, 'redis_refused over %d passes' % st['window_retries'])
    tt.check_eq(st['redis_refused_records'],
                sum(v[0] for k, v in expected.items() if k[0] in (5, 6)),
                'redis_refused_records')
    tt.check_eq(redis.client.call('LLEN', 'tally:refused'), 2, 'entries in tally:refused')

    many_metrics(ctx, redis)


if __name__ == '__main__':
    tt.main(body)
