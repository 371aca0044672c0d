#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""statsd / DogStatsD text through net_pcap. First tally-gen's statsd capture with bad lines
mixed in: totals byte for byte, every reason counted, each such datagram in the dead-letter
capture. Then hand-written lines next to v1, in --partition device mode with two workers:
every counter (scaled by its sample rate), gauge (deltas applied in order), timer (weighted
by 1/rate) and set series equal what was sent, device by device (the host tag, else the
sender's address); every bad line is refused alone, counted under its reason, and its
datagram is in the dead-letter capture with that reason; v1's totals are exact beside it;
tally:names and tally:devices name the series and devices."""

import os
import struct

import tallytest as tt

PORT = 8125
SRC = bytes([198, 18, 0, 7])
DST = bytes([198, 18, 0, 1])
M = 0xc6a4a7935bd1e995
MASK = (1 << 64) - 1
SEED = 0xadc83b19


def murmur64a(data, seed=SEED):
    """Redis's MurmurHash64A (tally's ids of statsd devices and series)."""
    h = (seed ^ (len(data) * M)) & MASK
    n = len(data) // 8
    for i in range(n):
        k = struct.unpack_from('<Q', data, 8 * i)[0]
        k = (k * M) & MASK
        k ^= k >> 47
        k = (k * M) & MASK
        h ^= k
        h = (h * M) & MASK
    tail = data[8 * n:]
    if tail:
        for i in reversed(range(len(tail))):
            h ^= tail[i] << (8 * i)
        h = (h * M) & MASK
    h ^= h >> 47
    h = (h * M) & MASK
    h ^= h >> 47
    return h


def device_id(name):
    return (1 << 63) | (murmur64a(name.encode()) >> 1)


def metric_id(series):
    return murmur64a(series.encode()) & 0xffffffff


def frame(payload, sport):
    """Ethernet / IPv4 / UDP to the statsd port (checksums are not looked at)."""
    udp = struct.pack('>HHHH', sport, PORT, 8 + len(payload), 0) + payload
    ip = struct.pack('>BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, SRC, DST)
    return b'\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x08\x00' + ip + udp


def read_pcap(path):
    d = open(path, 'rb').read()
    out, off = [], 24
    while off < len(d):
        _, _, cap, _ = struct.unpack_from('<IIII', d, off)
        out.append(d[off + 16:off + 16 + cap])
        off += 16 + cap
    return d[:24], out


def write_pcap(path, header, frames):
    with open(path, 'wb') as f:
        f.write(header)
        for i, fr in enumerate(frames):
            f.write(struct.pack('<IIII', 1700000000, i, len(fr), len(fr)) + fr)


class Expect:
    """What tally must hold per series: (count, sum, min, max) as tally-gen's totals."""

    def __init__(self):
        self.acc = {}
        self.gauge_last = {}
        self.names = {}
        self.devices = {}

    def key(self, dev, series):
        self.names[metric_id(series)] = series
        self.devices[device_id(dev)] = dev
        return (device_id(dev), metric_id(series))

    def add(self, dev, series, value, weight=1, distinct=False):
        k = self.key(dev, series)
        if distinct:
            tt.fold_series(self.acc, k, 1, None, None, None)
        else:
            tt.fold_series(self.acc, k, weight, value * weight, value, value)

    def gauge(self, dev, series, v, delta):
        k = self.key(dev, series)
        if delta:
            v = self.gauge_last.get(k, 0.0) + v
        self.gauge_last[k] = v
        tt.fold_series(self.acc, k, 1, v, v, v)


def statsd_datagrams():
    """(datagrams, expect, bad lines {reason: n}, datagrams with a bad line {index: reason})."""
    e = Expect()
    dgs, bad, bad_dg = [], {}, {}
    ip = '198.18.0.7'
    for i in range(200):
        host = 'web%d' % (i % 5)
        lines = []
        # a counter sampled at 1/4: each 2 counts as 8
        lines.append('req:2|c|@0.25|#host:%s,route:/a,env:prod' % host)
        e.add(host, 'req{env:prod,route:/a}', 8.0)
        # the same series with its tags in another order
        lines.append('req:1|c|#env:prod,host:%s,route:/a' % host)
        e.add(host, 'req{env:prod,route:/a}', 1.0)
        # a gauge, then deltas on it
        lines.append('temp:%d|g|#host:%s' % (20 + i % 7, host))
        e.gauge(host, 'temp', float(20 + i % 7), False)
        lines.append('temp:+1.5|g|#host:%s' % host)
        e.gauge(host, 'temp', 1.5, True)
        lines.append('temp:-0.25|g|#host:%s' % host)
        e.gauge(host, 'temp', -0.25, True)
        # timers: packed values at a rate of 0.5 (each stands for 2), from the sender
        lines.append('lat:%d:%d.5|ms|@0.5' % (i % 13, i % 11))
        e.add(ip, 'lat', float(i % 13), 2)
        e.add(ip, 'lat', i % 11 + 0.5, 2)
        # a distribution and a set
        lines.append('size:%d|d|#host:%s' % (100 + i, host))
        e.add(host, 'size', float(100 + i))
        lines.append('users:u%d|s|#host:%s' % (i % 17, host))
        e.add(host, 'users', 0, distinct=True)
        if i % 10 == 3:
            lines.insert(2, 'temp:abc|g|#host:%s' % host)
            bad['bad_value'] = bad.get('bad_value', 0) + 1
            bad_dg[len(dgs)] = ('bad_value', 2)
        if i % 25 == 7:
            lines.insert(0, 'no colon here')
            lines.append('x:1|zz')
            bad['no_colon'] = bad.get('no_colon', 0) + 1
            bad['unknown_type'] = bad.get('unknown_type', 0) + 1
            bad_dg[len(dgs)] = ('no_colon', 0)
        text = '\n'.join(lines) + ('\n' if i % 2 else '')
        if i % 3 == 0:
            text = text.replace('\n', '\r\n')
        dgs.append(text.encode())
    return dgs, e, bad, bad_dg


def gen_capture(ctx):
    """tally-gen's statsd capture with refused lines mixed in, through net_pcap: every series
    equals tally-gen's totals byte for byte (sample rates and sorted tags as tally-gen says),
    every bad line counted under its reason, each of their datagrams in the capture."""
    redis = ctx.redis()
    pcap = os.path.join(ctx.tmp, 'gen.pcap')
    totals = os.path.join(ctx.tmp, 'gen.totals')
    dlq = os.path.join(ctx.tmp, 'gen-dlq.pcapng')
    records = 8
    g = tt.tally_gen(ctx, ['--statsd', '--pcap', pcap, '--dst-port', str(PORT),
                           '--datagrams', '500', '--records', str(records), '--devices', '40',
                           '--kinds', '1,2,3,4', '--statsd-rate', '0.25', '--statsd-tags', '3',
                           '--statsd-bad', '64', '--float', '--totals', totals])
    tally = ctx.tally(['net_pcap0,rx_pcap=' + pcap],
                      ['--redis', redis.addr, '--stats-ms', '100', '--window-ms', '600000',
                       '--statsd-port', str(PORT), '--dlq', dlq,
                       '--histogram-series', '512', '--distinct-series', '512'],
                      redis=redis)
    tally.wait_stats(lambda s: s.get('statsd_lines', 0) + s.get('statsd_refused', 0) >=
                     g['statsd_lines'] + g['statsd_refused'],
                     what='every statsd line of the capture counted')
    tally.stop()
    st = redis.self_stats()
    tt.check_eq(st['statsd_datagrams'], g['valid_datagrams'], 'gen: statsd_datagrams')
    tt.check_eq(st['statsd_lines'], g['statsd_lines'], 'gen: statsd_lines')
    tt.check_eq(st['statsd_refused'], g['statsd_refused'], 'gen: statsd_refused')
    want = {}
    for k, v in g.items():
        if k.startswith('statsd:'):
            tt.check_eq(st[k], v, 'gen: ' + k)
            want[k[len('statsd:'):]] = v
    tt.compare_totals(totals, tt.query_totals(ctx, redis))
    # one bad line a datagram here, after its records: line `records`
    got = {}
    for _, comment in tt.read_pcapng(dlq):
        got[comment] = got.get(comment, 0) + 1
    tt.check_eq(got, {'statsd: %s (line %d)' % (r, records): n for r, n in want.items() if n},
                'gen: dead-letter comments')
    tt.log('tally-gen capture: %d lines, %d refused, %s series exact'
           % (g['statsd_lines'], g['statsd_refused'], g['series']))


def body(ctx):
    gen_capture(ctx)
    redis = ctx.redis()
    v1_pcap, v1_totals, g = tt.gen_capture(ctx, 'v1', 400, devices=50, seed=7)
    header, v1_frames = read_pcap(v1_pcap)
    dgs, e, bad, bad_dg = statsd_datagrams()
    # two files, two RX queues, two workers; a host's datagrams all on one (its gauge deltas
    # apply in the order sent: one worker receives them, in order)
    queues = [v1_frames[0::2], v1_frames[1::2]]
    for i, d in enumerate(dgs):
        queues[(i % 5) % 2].append(frame(d, 40000 + i))
    paths = [os.path.join(ctx.tmp, 'mixed%d.pcap' % q) for q in (0, 1)]
    for q in (0, 1):
        write_pcap(paths[q], header, queues[q])
    dlq = os.path.join(ctx.tmp, 'dlq.pcapng')
    lines = sum(len([ln for ln in d.replace(b'\r', b'').split(b'\n') if ln]) for d in dgs)
    nbad = sum(bad.values())
    tally = ctx.tally(['net_pcap0,' + ','.join('rx_pcap=' + p for p in paths)],
                      ['--redis', redis.addr, '--stats-ms', '100', '--window-ms', '600000',
                       '--partition', 'device', '--statsd-port', str(PORT), '--dlq', dlq,
                       '--histogram-series', '256', '--distinct-series', '64'],
                      workers=2, redis=redis)
    tally.wait_stats(lambda s: s.get('statsd_lines', 0) + s.get('statsd_refused', 0) >= lines and
                     s.get('datagrams', 0) >= g['valid_datagrams'],
                     what='every statsd line and v1 datagram counted')
    tally.stop()
    st = redis.self_stats()
    tt.check_eq(st['statsd_datagrams'], len(dgs), 'statsd_datagrams')
    tt.check_eq(st['statsd_lines'], lines - nbad, 'statsd_lines')
    tt.check_eq(st['statsd_refused'], nbad, 'statsd_refused')
    for r in ('bad_value', 'no_colon', 'unknown_type', 'bad_tag', 'collision', 'series_full'):
        tt.check_eq(st['statsd:' + r], bad.get(r, 0), 'statsd:' + r)
    tt.check_eq(st['datagrams'], g['valid_datagrams'], 'v1 datagrams')
    tt.check_eq(st['table_full'] + st['side_full'] + st['window_stall'], 0, 'nothing lost')
    tt.check_eq(st['statsd_names_dropped'], 0, 'statsd_names_dropped')
    # every series exact, v1's and statsd's side by side
    acc = tt.read_totals(v1_totals)
    for k, v in e.acc.items():
        tt.check(k not in acc, 'a statsd series met a v1 one: %s' % (k,))
        acc[k] = v
    tt.compare_totals_text(tt.format_totals(acc), tt.query_totals(ctx, redis))
    tt.log('%d statsd series of %d devices exact beside %d v1 series'
           % (len(e.acc), len(e.devices), len(acc) - len(e.acc)))
    # names in Redis
    names = {int(k): v for k, v in redis.client.hgetall('tally:names').items()}
    tt.check_eq(names, e.names, 'tally:names')
    devices = {int(k): v for k, v in redis.client.hgetall('tally:devices').items()}
    tt.check_eq(devices, e.devices, 'tally:devices')
    # each datagram with a bad line is in the dead-letter capture with its first one's reason
    got = {}
    for fr, comment in tt.read_pcapng(dlq):
        payload = fr[42:]
        got[dgs.index(payload)] = comment
    tt.check_eq(got, {i: 'statsd: %s (line %d)' % r for i, r in bad_dg.items()},
                'dead-letter capture')


if __name__ == '__main__':
    tt.main(body)
