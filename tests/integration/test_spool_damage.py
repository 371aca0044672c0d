#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""A damaged spool: a torn last record, a flipped byte in a record's series, a damaged record
header. Each damaged record is skipped and counted (spool_corrupt == 1); every other record
replays, so Redis holds exactly the series of the intact records.

The spool is made by three runs with Redis down, one capture of disjoint devices each, so
that each run leaves one segment: 1 record, 3 records (2400 series, split at 1024 without
splitting a device), 1 record.
"""
import os
import shutil
import signal

import tallytest as tt

WINDOW_MS = 3600000  # every run in one window: one window per segment
INSTANCE = 'damage'
# (devices, first device) of the three runs; 8 metrics per device
RUNS = ((60, 1), (300, 1001), (60, 2001))


def gen(ctx, name, datagrams, devices, base, seed):
    return tt.gen_capture(ctx, name, datagrams, devices=devices, base=base, seed=seed)


def run_tally(ctx, redis, pcap, spool, name):
    return ctx.tally(['net_pcap0,rx_pcap=' + pcap],
                     ['--redis', redis.addr, '--stats-ms', '100', '--window-ms', str(WINDOW_MS),
                      '--table-series', '16384', '--spool-dir', spool, '--instance', INSTANCE,
                      '--breaker-max-ms', '500'],
                     redis=redis, name=name)


def make_spool(ctx, redis, spool):
    """Three runs with Redis down; returns the records and all the captures' totals."""
    totals, series = [], []
    tt.wait_window_margin(WINDOW_MS, 20000)
    for i, (devices, base) in enumerate(RUNS):
        pcap, tot, g = gen(ctx, 'run%d' % i, 3000, devices, base, i + 1)
        totals.append(tot)
        series.append(g['series'])
        t = run_tally(ctx, redis, pcap, spool, 'tally-spool%d' % i)
        st = t.wait_telemetry(lambda s: s['datagrams'] == g['valid_datagrams'], timeout=20,
                              what='run %d counted' % i)
        tt.check(st['breaker_state'] in (1, 2), 'breaker_state %d with Redis down (want open '
                 'or half-open)' % st['breaker_state'])
        tt.check_eq(st['spool_replayed'], 0, 'spool_replayed with Redis down')
        t.stop()
        tt.check_eq(len(tt.spool_segments(spool)), i + 1, 'segments after run %d' % i)
    recs = tt.read_spool(spool)
    tt.check_eq([len(tt.read_spool_segment(p)) for p in tt.spool_segments(spool)], [1, 3, 1],
                'records per segment')
    tt.check_eq(len({r['window'] for r in recs}), 1, 'windows in the spool')
    devs = [{s[0] for s in r['series']} for r in recs]
    for i in range(len(devs)):
        for j in range(i):
            tt.check(not devs[i] & devs[j], 'records %d and %d share devices' % (j, i))
    sizes = [len(r['series']) for r in recs]
    tt.log('series per record: %s' % sizes)
    tt.check_eq([sizes[0], sum(sizes[1:4]), sizes[4]], series, 'series per segment')
    tt.check(all(n <= 1024 + 8 for n in sizes), 'records of about 1024 series at most')
    everything = tt.combine_totals(*totals)
    tt.compare_totals_text(everything, tt.spool_totals(recs), 'spooled series vs the captures')
    sent = {}
    for p in totals:
        for k, v in tt.read_totals(p).items():
            tt.fold_series(sent, k, *v)
    return recs, sent


def replay_damaged(ctx, redis, empty, spool, recs, sent, bad, what):
    """Replay a spool whose record `bad` is damaged; Redis must hold exactly the others."""
    redis.flushall()
    good = [r for i, r in enumerate(recs) if i != bad]
    t = run_tally(ctx, redis, empty, spool, 'tally-' + what.split()[0])
    st = t.wait_telemetry(lambda s: s['spool_bytes'] == 0 and not tt.spool_segments(spool),
                          timeout=20, what='%s: spool replayed' % what)
    tt.log('%s: spool_replayed=%d spool_corrupt=%d' % (what, st['spool_replayed'],
                                                      st['spool_corrupt']))
    tt.check_eq(st['spool_corrupt'], 1, '%s: spool_corrupt' % what)
    tt.check_eq(st['spool_replayed'], len(good), '%s: spool_replayed' % what)
    tt.check_eq(st['spool_lost_records'], 0, '%s: spool_lost_records' % what)
    t.stop()
    got = tt.query_totals(ctx, redis)
    # The intact records, as the spool holds them ...
    tt.compare_totals_text(tt.spool_totals(good), got, '%s: totals vs intact records' % what)
    # ... and as the captures say: all but the damaged record's devices.
    lost = {s[0] for s in recs[bad]['series']}
    tt.compare_totals_text(tt.format_totals({k: v for k, v in sent.items() if k[0] not in lost}),
                           got, '%s: totals vs captures without devices %d..%d'
                           % (what, min(lost), max(lost)))
    st = redis.self_stats()
    tt.check_eq(st.get('spool_corrupt'), 1, '%s: tally:self spool_corrupt' % what)


def flip(path, offset):
    with open(path, 'r+b') as f:
        f.seek(offset)
        b = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([b ^ 0x40]))


def body(ctx):
    spool = os.path.join(ctx.tmp, 'spool')
    empty, _, _ = gen(ctx, 'empty', 0, 1, 1, 9)
    redis = ctx.redis()
    redis.signal(signal.SIGKILL)  # down from the start: tally starts with the breaker open
    recs, sent = make_spool(ctx, redis, spool)
    redis = redis.restart()

    def copy(name):
        d = os.path.join(ctx.tmp, name)
        shutil.copytree(spool, d)
        return d, tt.spool_segments(d)

    # a. The last record torn (a crash in the middle of an append): 50 bytes short.
    d, segs = copy('spool-torn')
    os.truncate(segs[-1], os.path.getsize(segs[-1]) - 50)
    replay_damaged(ctx, redis, empty, d, recs, sent, 4, 'torn last record')

    # b. One byte of a series in the middle record of the middle segment: its payload CRC
    #    fails; the records before and after it in the same segment replay.
    d, segs = copy('spool-flip')
    flip(segs[1], recs[2]['series_offset'] + 10 * 64 + 16)  # a count of the 11th series
    replay_damaged(ctx, redis, empty, d, recs, sent, 2, 'flipped series byte')

    # c. One byte of a record header (its window start): the header CRC fails, the reader
    #    finds the next header and goes on.
    d, segs = copy('spool-header')
    flip(segs[1], recs[1]['offset'] + 9)
    replay_damaged(ctx, redis, empty, d, recs, sent, 1, 'damaged header')
    tt.check_schema(redis, 86400, WINDOW_MS)


if __name__ == '__main__':
    tt.main(body)
