#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Hand-made frames tally-gen never writes (options, padding, fragments, bad lengths, QinQ,
foreign MACs, last-by-time): each must land in the counter the README's wire format names."""

import math
import os
import struct
import time

import tallytest as tt

TALLY_MAC = bytes.fromhex('020000000001')
PEER_MAC = bytes.fromhex('020000000002')
TALLY_IP = bytes([198, 18, 0, 1])
PEER_IP = bytes([198, 18, 0, 2])
PORT = 9797


def payload(device, recs, time_ns=0, magic=b'TY', version=1, flags=0, count=None, reserved=0,
            rec_reserved=b'\0\0\0'):
    """A v1 payload; recs are (metric, kind, value)."""
    hdr = struct.pack('<2sBBHHQQQ', magic, version, flags, len(recs) if count is None else count,
                      reserved, device, 0, time_ns)
    return hdr + b''.join(struct.pack('<IB3sd', m, k, rec_reserved, v) for m, k, v in recs)


def csum(data):
    if len(data) % 2:
        data += b'\0'
    s = sum(struct.unpack('!%dH' % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff


def udp(data, dport=PORT, ulen=None):
    return struct.pack('!HHHH', 40000, dport, 8 + len(data) if ulen is None else ulen, 0) + data


def ipv4(l4, proto=17, dst=TALLY_IP, options=b'', frag=0, tot=None):
    ihl = 5 + len(options) // 4
    tot = 4 * ihl + len(l4) if tot is None else tot
    hdr = struct.pack('!BBHHHBBH4s4s', 0x40 | ihl, 0, tot, 1, frag, 64, proto, 0, PEER_IP,
                      dst) + options
    hdr = hdr[:10] + struct.pack('!H', csum(hdr)) + hdr[12:]
    return hdr + l4


def ipv6_hbh(l4):
    """IPv6 with a hop-by-hop extension header before UDP: not followed in v1."""
    hbh = struct.pack('!BB6s', 17, 0, b'\x01\x04\0\0\0\0')
    return struct.pack('!IHBB16s16s', 6 << 28, len(hbh) + len(l4), 0, 64,
                       b'\x20\x01\0\x02' + b'\0' * 11 + b'\x02',
                       b'\x20\x01\0\x02' + b'\0' * 11 + b'\x01') + hbh + l4


def eth(l3, ethertype=0x0800, dst=TALLY_MAC, vlans=()):
    tags = b''.join(struct.pack('!HH', 0x8100, v) for v in vlans)
    frame = dst + PEER_MAC + tags + struct.pack('!H', ethertype) + l3
    return frame + b'\0' * max(0, 60 - len(frame))  # Ethernet minimum: padding


def write_pcap(path, frames):
    with open(path, 'wb') as f:
        f.write(struct.pack('<IHHiIII', 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
        t = time.time()
        for i, fr in enumerate(frames):
            us = int(t * 1e6) + i
            f.write(struct.pack('<IIII', us // 1000000, us % 1000000, len(fr), len(fr)) + fr)


def cases(now_ns):
    """(frame, verdict, records) with verdict 'telemetry', 'other' or a malformed reason."""
    ok = [(1, 1, 5.0), (2, 2, 7.0)]
    c = []

    def tel(device, frame_fn, recs=ok, **kw):
        c.append((frame_fn(payload(device, recs, **kw)), 'telemetry', (device, recs)))

    tel(1, lambda p: eth(ipv4(udp(p))))
    tel(2, lambda p: eth(ipv4(udp(p)), dst=bytes.fromhex('02000000aa99')))  # foreign MAC
    tel(3, lambda p: eth(ipv4(udp(p), options=b'\x01\x01\x01\x01')))        # IHL 6
    tel(4, lambda p: eth(ipv4(udp(p)), vlans=(7,)))
    tel(5, lambda p: eth(ipv4(udp(p))) + b'\0' * 6)                         # trailer
    tel(6, lambda p: eth(ipv4(udp(p))), recs=[(1, 1, 0.5), (1, 2, -2.25), (2, 3, 1e6)],
        time_ns=now_ns)
    # last = value with the newest time_ns, whatever the arrival order; ties: later record.
    tel(7, lambda p: eth(ipv4(udp(p))), recs=[(1, 2, 10.0)], time_ns=now_ns + 1000)
    tel(7, lambda p: eth(ipv4(udp(p))), recs=[(1, 2, 30.0), (1, 2, 31.0)], time_ns=now_ns + 3000)
    tel(7, lambda p: eth(ipv4(udp(p))), recs=[(1, 2, 20.0)], time_ns=now_ns + 2000)

    def bad(reason, frame):
        c.append((frame, reason, None))

    bad('short', eth(ipv4(udp(b'TY\x01\x00'))))
    bad('magic', eth(ipv4(udp(payload(9, ok, magic=b'XY')))))
    bad('version', eth(ipv4(udp(payload(9, ok, version=2)))))
    bad('flags', eth(ipv4(udp(payload(9, ok, flags=1)))))
    bad('reserved', eth(ipv4(udp(payload(9, ok, reserved=1)))))
    bad('reserved', eth(ipv4(udp(payload(9, ok, rec_reserved=b'\0\x01\0')))))
    bad('count', eth(ipv4(udp(payload(9, [])))))
    bad('length', eth(ipv4(udp(payload(9, ok, count=3)))))
    bad('kind', eth(ipv4(udp(payload(9, [(1, 5, 1.0)])))))
    bad('value', eth(ipv4(udp(payload(9, [(1, 1, math.nan)])))))
    bad('value', eth(ipv4(udp(payload(9, [(1, 2, -math.inf)])))))
    p = udp(payload(9, ok))
    bad('truncated', eth(ipv4(p, tot=20 + len(p) + 16)))        # IP length beyond the frame
    bad('truncated', eth(ipv4(udp(payload(9, ok), ulen=8 + 64 + 16))))  # UDP length too
    bad('fragment', eth(ipv4(p, frag=0x2000)))                  # first of several fragments

    def other(frame):
        c.append((frame, 'other', None))

    other(eth(ipv4(p[8:], frag=0x2000 | 100)))                  # a later fragment
    other(eth(ipv4(udp(payload(9, ok), dport=PORT + 1))))
    other(eth(ipv4(udp(payload(9, ok)), dst=bytes([198, 18, 0, 9]))))  # not --ipv4
    other(eth(ipv4(udp(payload(9, ok)), proto=6)))              # TCP
    other(eth(ipv4(udp(payload(9, ok), dport=53), tot=200)))    # truncated, not ours
    other(eth(b'\0' * 46, ethertype=0x88cc))                    # LLDP
    other(eth(ipv4(udp(payload(9, ok))), vlans=(7, 8)))         # QinQ: one tag at most
    other(eth(ipv6_hbh(udp(payload(9, ok))), ethertype=0x86dd))
    return c


def expected_totals(tel):
    series = {}
    for device, recs in tel:
        for m, _, v in recs:
            s = series.setdefault((device, m), [0, 0.0, math.inf, -math.inf])
            s[0] += 1
            s[1] += v
            s[2] = min(s[2], v)
            s[3] = max(s[3], v)
    return ''.join('%d %d %d %.17g %.17g %.17g\n' % (d, m, s[0], s[1], s[2], s[3])
                   for (d, m), s in sorted(series.items()))


def body(ctx):
    frames = cases(time.time_ns())
    pcap = os.path.join(ctx.tmp, 'edges.pcap')
    write_pcap(pcap, [f for f, _, _ in frames])
    totals = os.path.join(ctx.tmp, 'edges.totals')
    tel = [r for _, v, r in frames if v == 'telemetry']
    with open(totals, 'w') as f:
        f.write(expected_totals(tel))
    want = {'datagrams': len(tel), 'records': sum(len(r) for _, r in tel),
            'other': sum(v == 'other' for _, v, _ in frames), 'rx_packets': len(frames)}
    for _, v, _ in frames:
        if v not in ('telemetry', 'other'):
            want['malformed'] = want.get('malformed', 0) + 1
            want['malformed:' + v] = want.get('malformed:' + v, 0) + 1
    for r in tt.MALFORMED_REASONS:
        want.setdefault('malformed:' + r, 0)

    redis = ctx.redis()
    tally = ctx.tally(['net_pcap0,rx_pcap=' + pcap],
                      ['--redis', redis.addr, '--ipv4', '198.18.0.1', '--stats-ms', '100'],
                      redis=redis)
    tally.wait_stats(lambda s: s.get('rx_packets') == len(frames), timeout=20,
                     what='rx_packets=%d' % len(frames))
    tally.stop()
    st = redis.self_stats()
    got = {k: st.get(k) for k in want}
    tt.check(got == want, 'counters differ:\n  want %s\n  got  %s'
             % (tt.fmt_stats(want), tt.fmt_stats(got)))
    tt.compare_totals(totals, tt.query_totals(ctx, redis))
    newest = redis.client.call('GET', 'tally:{7}:latest')
    tt.check_eq(redis.client.call('HGET', 'tally:{7}:%s' % newest, '1:last'), '31',
                'device 7 newest window 1:last (newest time_ns, later record on a tie)')
    tt.check_schema(redis, 86400, 1000)


if __name__ == '__main__':
    tt.main(body)
