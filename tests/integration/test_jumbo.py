#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Datagrams longer than one mbuf: a capture of jumbo frames (1 to 4,093 records, up to the UDP
maximum, IPv4 and 802.1Q IPv6) mixed with small ones, replayed through net_pcap (which hands a
frame over 2 KB on as a chain of mbufs). Redis must hold exactly what tally-gen sent, every
malformed jumbo frame must be counted under its reason, also when the fault sits in the last
segment, and the dead-letter capture must hold each of those frames whole, byte for byte."""

import os
import struct

import tallytest as tt

PORT = 9797
TABLE_SERIES = 65536
FWD_RING = 1 << 19   # more slots than all the records forwarded: device mode never spills
SNAPLEN = 262144
STOP_S = 30
MBUF_DATA = 2048     # data room of tally's mbufs: longer frames arrive as chains

# name, tally-gen arguments: a group of devices of its own per records-per-datagram size. The
# 4,092-record group has as many metrics per device: each such device's window key is written
# whole, one RESTORE (no fold of chunk after chunk).
GROUPS = [
    ('r1', ['--records', 1, '--datagrams', 2000, '--devices', 200, '--device-base', 1]),
    ('r90', ['--records', 90, '--datagrams', 400, '--devices', 100, '--device-base', 1001]),
    ('r200', ['--records', 200, '--datagrams', 200, '--devices', 20, '--device-base', 2001,
              '--metrics', 256]),
    ('r500', ['--records', 500, '--datagrams', 100, '--devices', 10, '--device-base', 3001,
              '--metrics', 300, '--float']),
    ('r4091', ['--records', 4091, '--datagrams', 24, '--devices', 4, '--device-base', 4001,
               '--metrics', 300]),
    # Each payload reason twice; all but short, count and length are 65,546-byte frames.
    ('r4092', ['--records', 4092, '--datagrams', 24, '--devices', 4, '--device-base', 5001,
               '--metrics', 4092, '--malformed', 18]),
    ('r4093v6', ['--records', 4093, '--datagrams', 12, '--devices', 3, '--device-base', 6001,
                 '--metrics', 200, '--ipv6', '--vlan', 100]),
]
IPV4_MAX_RECORDS = 4092
IPV6_MAX_RECORDS = 4093

PEER_MAC = bytes.fromhex('020000000002')
TALLY_MAC = bytes.fromhex('020000000001')
PEER_IP = bytes([198, 18, 0, 2])
TALLY_IP = bytes([198, 18, 0, 1])
PEER_IP6 = bytes.fromhex('20010002' + '00' * 11 + '02')
TALLY_IP6 = bytes.fromhex('20010002' + '00' * 11 + '01')


# ---------------------------------------------------------------------------------------------
# Frames


def payload(device, n, count=None, last=None):
    """A v1 payload of n records (metric i + 1, a counter of value i); last: replaces the
    last record's bytes (a fault that lies in the frame's last mbuf)."""
    recs = [struct.pack('<IB3xd', i + 1, 1, float(i)) for i in range(n)]
    if last is not None:
        recs[-1] = last
    return struct.pack('<2sBBHHQQQ', b'TY', 1, 0, n if count is None else count, 0, device, 1,
                       0) + b''.join(recs)


def udp(p, ulen=None):
    return struct.pack('!HHHH', 40000, PORT, 8 + len(p) if ulen is None else ulen, 0) + p


def ipv4(l4, frag=0x4000):
    h = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(l4), 7, frag, 64, 17, 0, PEER_IP,
                    TALLY_IP)
    return h + l4


def ipv6(l4):
    return struct.pack('!IHBB16s16s', 6 << 28, len(l4), 17, 64, PEER_IP6, TALLY_IP6) + l4


def eth(l3, ethertype):
    return TALLY_MAC + PEER_MAC + struct.pack('!H', ethertype) + l3


def crafted():
    """Malformed jumbo frames tally-gen does not write: [(frame, reason)]."""
    bad_kind = struct.pack('<IB3xd', 1, 9, 1.0)
    nan = struct.pack('<IB3xd', 1, 1, float('nan'))
    bad_reserved = struct.pack('<IB3sd', 1, 1, b'\0\0\1', 1.0)
    full = eth(ipv4(udp(payload(9001, 4000))), 0x0800)
    return [
        (eth(ipv4(udp(payload(9001, IPV4_MAX_RECORDS, last=bad_kind))), 0x0800), 'kind'),
        (eth(ipv6(udp(payload(9002, IPV6_MAX_RECORDS, last=nan))), 0x86dd), 'value'),
        (eth(ipv4(udp(payload(9003, 3000, last=bad_reserved))), 0x0800), 'reserved'),
        # count promises one record more than the datagram holds
        (eth(ipv4(udp(payload(9004, 4091, count=4092))), 0x0800), 'length'),
        # UDP says 16 bytes more than IP carries
        (eth(ipv4(udp(payload(9005, 4000), ulen=8 + 32 + 16 * 4001)), 0x0800), 'truncated'),
        # the frame ends 100 bytes before the IP packet does (cut by the capture)
        (full[:-100], 'truncated'),
        # a first fragment: fragments are not reassembled, whatever their size
        (eth(ipv4(udp(payload(9006, 4000)), frag=0x2000), 0x0800), 'fragment'),
    ]


def classify(f):
    """'ok', or the malformed reason of a telemetry frame of this test (any address)."""
    off, et = 14, struct.unpack_from('!H', f, 12)[0]
    if et == 0x8100:
        off, et = 18, struct.unpack_from('!H', f, 16)[0]
    ip = f[off:]
    if et == 0x0800:
        ihl = (ip[0] & 15) * 4
        tot = struct.unpack_from('!H', ip, 2)[0]
        frag = struct.unpack_from('!H', ip, 6)[0]
        tt.check(frag & 0x1fff == 0, 'no later fragments here')
        if tot > len(ip):
            return 'truncated'
        if frag & 0x2000:
            return 'fragment'
        l4 = ip[ihl:tot]
    else:
        tt.check_eq(et, 0x86dd, 'ethertype')
        plen = struct.unpack_from('!H', ip, 4)[0]
        if plen > len(ip) - 40:
            return 'truncated'
        l4 = ip[40:40 + plen]
    ulen = struct.unpack_from('!H', l4, 4)[0]
    if ulen < 8 or ulen > len(l4):
        return 'truncated'
    return tt.v1_reason(l4[8:ulen]) or 'ok'


# ---------------------------------------------------------------------------------------------
# Captures


def read_pcap(path):
    """[(16-byte record header, frame)] of a classic pcap file; checks it keeps jumbo frames."""
    d = open(path, 'rb').read()
    tt.check_eq(struct.unpack_from('<I', d, 0)[0], 0xa1b2c3d4, 'pcap magic')
    tt.check(struct.unpack_from('<I', d, 16)[0] >= 65535 + 58, '%s: snaplen %d holds a jumbo '
             'frame' % (path, struct.unpack_from('<I', d, 16)[0]))
    off, out = 24, []
    while off < len(d):
        incl, orig = struct.unpack_from('<II', d, off + 8)
        tt.check_eq(incl, orig, '%s: frame kept whole' % path)
        out.append((d[off:off + 16], d[off + 16:off + 16 + incl]))
        off += 16 + incl
    return out


def write_pcap(path, frames):
    with open(path, 'wb') as f:
        f.write(struct.pack('<IHHiIII', 0xa1b2c3d4, 2, 4, 0, 0, SNAPLEN, 1))
        for i, fr in enumerate(frames):
            f.write(struct.pack('<IIII', 1800000000 + i // 1000000, i % 1000000, len(fr),
                                len(fr)))
            f.write(fr)


def build(ctx):
    """The merged capture: every group's frames dealt round-robin, so bursts mix chained and
    one-segment frames, then the crafted ones. Returns (path, frames, summaries, totals)."""
    groups, gens, totals = [], {}, []
    for name, args in GROUPS:
        pcap = os.path.join(ctx.tmp, name + '.pcap')
        tot = os.path.join(ctx.tmp, name + '.totals')
        gens[name] = tt.tally_gen(ctx, ['--pcap', pcap, '--totals', tot, '--seed', '7'] +
                                  [str(a) for a in args])
        groups.append([fr for _, fr in read_pcap(pcap)])
        totals.append(tot)
    frames = []
    for i in range(max(len(g) for g in groups)):
        frames += [g[i] for g in groups if i < len(g)]
    frames += [fr for fr, _ in crafted()]
    path = os.path.join(ctx.tmp, 'jumbo.pcap')
    write_pcap(path, frames)
    return path, frames, gens, totals


# ---------------------------------------------------------------------------------------------
# The test


def check_generator(ctx, gens, frames):
    """tally-gen writes what was asked, up to the UDP maximum, and refuses more in one line."""
    for name, args in GROUPS:
        n = args[args.index('--records') + 1]
        tt.check_eq(gens[name]['records'], n * gens[name]['valid_datagrams'],
                    '%s: records written' % name)
    longest = max(len(f) for f in frames)
    tt.check_eq(longest, 18 + 40 + 8 + 32 + 16 * IPV6_MAX_RECORDS, 'longest frame')
    for extra, limit in (([], IPV4_MAX_RECORDS), (['--ipv6'], IPV6_MAX_RECORDS)):
        _, _, err = tt.run_tool([ctx.args.tally_gen, '--pcap', os.path.join(ctx.tmp, 'x'),
                                 '--records', str(limit + 1)] + extra, ok=(2,))
        tt.check_eq(len(err.splitlines()), 1, 'tally-gen over the UDP maximum: one line')
        tt.check('--records' in err and str(limit) in err, 'names the limit: %r' % err)


def run(ctx, redis, pcap, args, workers, name):
    redis.flushall()
    return ctx.tally(['net_pcap0,rx_pcap=' + pcap],
                     ['--redis', redis.addr, '--stats-ms', '100', '--window-ms', '60000',
                      '--table-series', str(TABLE_SERIES)] + args,
                     workers=workers, redis=redis, name=name)


def body(ctx):
    pcap, frames, gens, totals = build(ctx)
    check_generator(ctx, gens, frames)
    reasons = [classify(f) for f in frames]
    for (_, want), got in zip(crafted(), reasons[-len(crafted()):]):
        tt.check_eq(got, want, 'reference classifier on a crafted frame')
    valid = sum(g['valid_datagrams'] for g in gens.values())
    records = sum(g['records'] for g in gens.values())
    tt.check_eq(reasons.count('ok'), valid, 'valid frames in the capture')
    bad = sorted((f, 'malformed: ' + r) for f, r in zip(frames, reasons) if r != 'ok')
    by_reason = {}
    for r in reasons:
        by_reason[r] = by_reason.get(r, 0) + 1
    chained = sum(1 for f in frames if len(f) > MBUF_DATA)
    tt.log('%d frames (%d longer than one mbuf, longest %d bytes), %d valid with %d records, '
           'malformed %s' % (len(frames), chained, max(len(f) for f in frames), valid, records,
                             {k: v for k, v in by_reason.items() if k != 'ok'}))
    tt.check(sum(1 for f, _ in bad if len(f) > 65535) >= 10, 'malformed jumbo frames')
    expected_totals = tt.combine_totals(*totals)
    redis = ctx.redis()

    # 1. One worker, nic mode, dead-letter capture on.
    dlq = os.path.join(ctx.tmp, 'dead.pcapng')
    tally = run(ctx, redis, pcap, ['--dlq', dlq], 1, 'tally-nic')
    tally.wait_stats(lambda s: s.get('datagrams') == valid and
                     s.get('malformed') == len(bad), timeout=30,
                     what='datagrams=%d malformed=%d' % (valid, len(bad)))
    tally.stop(timeout=STOP_S)
    st = redis.self_stats()
    tt.log('nic mode: ' + tt.fmt_stats({k: v for k, v in st.items() if ':' not in k or
                                        k.startswith('malformed:')}))
    tt.check_eq(st['records'], records, 'tally:self records')
    tt.check_eq(st['rx_packets'], len(frames), 'tally:self rx_packets')
    tt.check_eq(st['other'], 0, 'tally:self other')
    tt.check_eq(st['table_full'], 0, 'tally:self table_full')
    tt.check_eq((st['redis_folds'], st['redis_fold_retries']), (0, 0),
                'one writer of a new window: (redis_folds, redis_fold_retries)')
    for r in tt.MALFORMED_REASONS:
        tt.check_eq(st['malformed:' + r], by_reason.get(r, 0), 'tally:self malformed:' + r)
    tt.compare_totals_text(expected_totals, tt.query_totals(ctx, redis), label='tally-gen')
    got = sorted(tt.read_pcapng(dlq))
    tt.check_eq([len(f) for f, _ in got], [len(f) for f, _ in bad],
                'lengths of the dead-letter frames')
    tt.check(got == bad, 'dead-letter frames and reasons equal the malformed input, byte for byte')
    tt.check_eq(st['dlq_written'], len(bad), 'dlq_written')
    tt.check_eq(st['dlq_dropped'] + st['dlq_ring_full'] + st['dlq_errors'], 0,
                'dead letters lost')

    # 2. Device mode, two workers on one queue: a jumbo datagram of the other worker's device
    # travels as several chunks to its owner, none aggregated where it arrived.
    tally = run(ctx, redis, pcap, ['--partition', 'device', '--hot-share', '0',
                                   '--fwd-ring', str(FWD_RING)], 2, 'tally-device')
    st = tt.wait_all_aggregated(tally, valid, records, 2)
    fwd = tt.per_worker(st, 'forwarded')
    tt.log('device mode: forwarded %s, received %s, ring_full %s'
           % (fwd, tt.per_worker(st, 'received'), tt.per_worker(st, 'ring_full')))
    tt.check_eq(tt.per_worker(st, 'ring_full'), [0, 0], 'w<i>:ring_full')
    tt.check(sum(fwd) > IPV4_MAX_RECORDS, 'jumbo datagrams forwarded: %s' % fwd)
    tally.stop(timeout=STOP_S)
    st = redis.self_stats()
    tt.check_eq(st['records'], records, 'device mode: tally:self records')
    tt.check_eq(st['malformed'], len(bad), 'device mode: tally:self malformed')
    tt.compare_totals_text(expected_totals, tt.query_totals(ctx, redis), label='tally-gen')


if __name__ == '__main__':
    tt.main(body)
