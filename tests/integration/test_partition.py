#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""--partition device: every device sends from 16 source ports, so RSS (tally-gen --queues 2)
puts each device on both RX queues; in device mode each series must still live in exactly one
worker table (its owner's), in nic mode the devices are split over both tables. Both modes
must write exactly what tally-gen sent. A one-device capture checks the owner rule itself."""

import os
import time

import tallytest as tt

DATAGRAMS = 20000
DEVICES = 2000
RECORDS = 8
QUEUES = 2
SRC_PORTS = 16
WORKERS = 2
WINDOW_MS = 60000    # everything lands in one window...
MARGIN_MS = 10000    # ...when a run starts this far from its end
RETENTION_S = 300
ONE_DATAGRAMS = 400  # the one-device capture
# net_pcap replays as fast as a worker reads, so a receiver that loses its CPU for a moment
# (2 CPUs here, 3 lcores) lets the default 16384-record ring fill; the sender then aggregates
# the rest itself (ring_full) and a series can end up in two tables. A ring larger than all
# one worker receives from its queue (~84k records) cannot fill: the one-table checks hold.
FWD_RING = 131072
SMALL_RING = 64      # a ring that does fill: the totals must stay exact all the same

M64 = (1 << 64) - 1


def fmix64(h):
    """murmur3's 64-bit finalizer, tally_hash_device()."""
    h ^= h >> 33
    h = (h * 0xff51afd7ed558ccd) & M64
    h ^= h >> 33
    h = (h * 0xc4ceb9fe1a85ec53) & M64
    h ^= h >> 33
    return h


def owner(device, nworkers):
    """floor(hi32(fmix64(device)) * nworkers / 2^32)."""
    return ((fmix64(device) >> 32) * nworkers) >> 32


def capture(ctx, name, args):
    """A --queues 2 --src-ports 16 capture; returns (queue files, summary, totals path)."""
    pcap = os.path.join(ctx.tmp, name + '.pcap')
    totals = os.path.join(ctx.tmp, name + '.totals')
    gen = tt.tally_gen(ctx, ['--pcap', pcap, '--queues', str(QUEUES),
                             '--src-ports', str(SRC_PORTS), '--records', str(RECORDS),
                             '--totals', totals] + [str(a) for a in args])
    files = ['%s.%d' % (pcap, q) for q in range(QUEUES)]
    for f in files:
        # A queue file holds more than the 24-byte pcap header: both queues carry traffic.
        tt.check(os.path.exists(f) and os.path.getsize(f) > 24, 'queue file %s is empty' % f)
    tt.check(not os.path.exists(pcap), 'tally-gen --queues also wrote %s' % pcap)
    return files, gen, totals


def run(ctx, redis, files, gen, mode, extra=()):
    """Start tally with 2 workers on the queue files (one port, one RX queue each), wait until
    every record is aggregated by its final worker; returns (tally, tally:self snapshot)."""
    redis.flushall()
    window = tt.wait_window_margin(WINDOW_MS, MARGIN_MS)
    vdev = 'net_pcap0,' + ','.join('rx_pcap=' + f for f in files)
    tally = ctx.tally([vdev], ['--redis', redis.addr, '--partition', mode,
                               '--stats-ms', '100', '--window-ms', str(WINDOW_MS),
                               '--retention-s', str(RETENTION_S), '--table-series', '65536']
                      + [str(a) for a in extra], workers=WORKERS, redis=redis, name='tally-' + mode)
    total, records = gen['valid_datagrams'], gen['records']

    # Datagrams are counted where they arrive; forwarded records a moment later.
    st = tt.wait_all_aggregated(tally, total, records, WORKERS)
    tt.log('%s mode, before SIGTERM: %s' % (mode, tt.fmt_stats(
        {k: v for k, v in st.items() if k.startswith('w') or k in (
            'series', 'forwarded', 'received', 'hot_keys', 'hot_records', 'ring_full',
            'window_slip', 'windows_flushed')})))
    tt.check_eq(int(time.time() * 1000) // WINDOW_MS * WINDOW_MS, window,
                'wall-clock window before SIGTERM (the test itself was too slow)')
    tt.check_eq(st['windows_flushed'], 0, 'windows_flushed before SIGTERM')
    tt.check_eq(st['window_slip'], 0, 'window_slip')
    tt.check_eq(st['table_full'], 0, 'table_full')
    # The totals are the sums of the per-worker fields.
    for f in ('series', 'forwarded', 'received', 'hot_records', 'ring_full'):
        tt.check_eq(st[f], sum(tt.per_worker(st, f)), 'tally:self %s vs sum of w<i>:%s' % (f, f))
    return tally, st


def finish(ctx, redis, tally, gen, totals):
    """SIGTERM: exit 0, every counter right, Redis totals == tally-gen totals."""
    tally.stop()
    st = redis.self_stats()
    tt.check_self(st, gen)
    tt.check_eq(st['workers'], WORKERS, 'tally:self workers')
    tt.check_eq(st['windows_flushed'], 1, 'windows_flushed after SIGTERM')
    tt.compare_totals(totals, tt.query_totals(ctx, redis))
    tt.check_schema(redis, RETENTION_S, WINDOW_MS)
    return st


def check_telemetry(tally, st):
    """/tally/workers serves the same per-worker counters as tally:self."""
    tel = tally.telemetry('/tally/workers')
    if tel is None:
        raise tt.Failure('telemetry /tally/workers unavailable')
    tt.check_eq(len(tel), WORKERS, 'workers in /tally/workers')
    rows = [tel[k] for k in sorted(tel, key=lambda k: int(''.join(c for c in k if c.isdigit())
                                                           or 0))]
    for f in ('forwarded', 'received', 'ring_full'):
        if all(f in r for r in rows):
            tt.check_eq([r[f] for r in rows], tt.per_worker(st, f), '/tally/workers ' + f)
        else:
            raise tt.Failure('/tally/workers lacks %s: %s' % (f, tel))
    tt.check_eq(sum(r['datagrams'] for r in rows), st['datagrams'], '/tally/workers datagrams')


def body(ctx):
    files, gen, totals = capture(ctx, 'spread', ['--datagrams', DATAGRAMS, '--devices', DEVICES])
    tt.check_eq(gen['valid_datagrams'], DATAGRAMS, 'tally-gen valid_datagrams')
    distinct = tt.count_lines(totals)
    tt.check_eq(gen['series'], distinct, 'tally-gen series vs lines of its totals')
    redis = ctx.redis()

    # Device mode: each device's records meet on its owner, one table per series.
    tally, st = run(ctx, redis, files, gen, 'device', ['--fwd-ring', FWD_RING])
    series = tt.per_worker(st, 'series')
    fwd, rcv = tt.per_worker(st, 'forwarded'), tt.per_worker(st, 'received')
    recs = tt.per_worker(st, 'records')
    tt.log('device mode: series %s (sum %d, distinct %d), forwarded %s, received %s, '
           'records %s' % (series, sum(series), distinct, fwd, rcv, recs))
    tt.check_eq(tt.per_worker(st, 'ring_full'), [0] * WORKERS, 'w<i>:ring_full')
    tt.check_eq(sum(series), distinct, 'sum of w<i>:series in device mode (distinct series)')
    tt.check(all(s > 0 for s in series), 'a worker owns no series: %s' % series)
    tt.check(sum(fwd) > 0, 'nothing forwarded in device mode: %s' % fwd)
    tt.check(all(f > 0 for f in fwd), 'a worker forwarded nothing: %s' % fwd)
    tt.check_eq(sum(rcv), sum(fwd), 'records received vs forwarded')
    tt.check(all(r > 0 for r in recs), 'a worker aggregated nothing: %s' % recs)
    tt.check_eq(st['hot_records'], 0, 'hot_records (no device is hot in a uniform capture)')
    check_telemetry(tally, st)
    finish(ctx, redis, tally, gen, totals)

    # A tiny ring: what does not fit is aggregated by the sender, merged exactly at the end.
    tally, st = run(ctx, redis, files, gen, 'device', ['--fwd-ring', SMALL_RING])
    series = tt.per_worker(st, 'series')
    tt.log('device mode, --fwd-ring %d: ring_full %s, forwarded %s, series %s (sum %d)'
           % (SMALL_RING, tt.per_worker(st, 'ring_full'), tt.per_worker(st, 'forwarded'),
              series, sum(series)))
    tt.check(st['ring_full'] > 0, 'a %d-record ring never filled' % SMALL_RING)
    tt.check(sum(series) >= distinct, 'sum of w<i>:series %d below the %d distinct series'
             % (sum(series), distinct))
    finish(ctx, redis, tally, gen, totals)

    # Nic mode: records stay where RSS put them, so devices straddle both tables.
    tally, st = run(ctx, redis, files, gen, 'nic')
    series = tt.per_worker(st, 'series')
    tt.log('nic mode: series %s (sum %d, distinct %d), records %s'
           % (series, sum(series), distinct, tt.per_worker(st, 'records')))
    tt.check_eq(st['forwarded'], 0, 'forwarded in nic mode')
    tt.check_eq(st['received'], 0, 'received in nic mode')
    tt.check_eq(st['ring_full'], 0, 'ring_full in nic mode')
    tt.check(sum(series) > distinct, 'nic mode: sum of w<i>:series %d is not above the %d '
             'distinct series' % (sum(series), distinct))
    finish(ctx, redis, tally, gen, totals)

    # The owner rule on one device, from both queues; a non-default owner (worker 1) is
    # picked so that "everything on worker 0" cannot pass. Hot handling is off: a lone device
    # is 100% of each worker's records and would be pre-aggregated where it arrives.
    dev = next(d for d in range(1000000, 1001000) if owner(d, WORKERS) == 1)
    files, gen, totals = capture(ctx, 'one', ['--datagrams', ONE_DATAGRAMS, '--devices', 1,
                                              '--device-base', dev])
    tally, st = run(ctx, redis, files, gen, 'device', ['--hot-share', 0, '--fwd-ring', FWD_RING])
    series = tt.per_worker(st, 'series')
    recs = tt.per_worker(st, 'records')
    tt.log('device %d (fmix64 %#018x, owner %d): series %s, records %s, forwarded %s'
           % (dev, fmix64(dev), owner(dev, WORKERS), series, recs,
              tt.per_worker(st, 'forwarded')))
    nonzero = [i for i, s in enumerate(series) if s > 0]
    tt.check_eq(nonzero, [owner(dev, WORKERS)], 'workers with series of device %d' % dev)
    tt.check_eq(series[owner(dev, WORKERS)], tt.count_lines(totals), 'series of the owner')
    tt.check_eq(recs[owner(dev, WORKERS)], gen['records'], 'records aggregated by the owner')
    tt.check(st['forwarded'] > 0, 'the non-owner forwarded nothing')
    finish(ctx, redis, tally, gen, totals)


if __name__ == '__main__':
    tt.main(body)
