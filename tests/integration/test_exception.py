#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""The exception path on a veth (net_af_packet): requests a host stack would refuse get no
reply and are counted by cause; an ARP storm gets exactly what --exception-rate's token bucket
allows, the rest counted as exception_rate_limited; and everything handed over adds up."""

import json
import os
import re
import socket
import struct
import subprocess
import sys
import time

import tallytest as tt

RATE = 1          # --exception-rate: a bucket of 1, refilled once a second
STORM = 2000      # ARP requests per storm
PACE = 10         # frames per ms, so AF_PACKET keeps up (a storm takes about 0.2 s)

# Sends the frames of a file (one hex line each) on an interface, PACE a ms, then listens
# for LISTEN_S: prints what came back from tally's MAC, by ethertype, as JSON.
SENDER = r'''
import binascii, json, socket, sys, time
iface, path, tally_mac, pace, listen_s = sys.argv[1:6]
pace, listen_s = int(pace), float(listen_s)
frames = [binascii.unhexlify(l.strip()) for l in open(path) if l.strip()]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))  # ETH_P_ALL
s.bind((iface, 0))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
t0 = time.monotonic()
for i, f in enumerate(frames):
    s.send(f)
    if (i + 1) % pace == 0:
        time.sleep(0.001)
send_s = time.monotonic() - t0
mac = binascii.unhexlify(tally_mac.replace(':', ''))
got = {}
s.settimeout(0.05)
end = time.monotonic() + listen_s
while time.monotonic() < end:
    try:
        f = s.recv(65536)
    except socket.timeout:
        continue
    if f[6:12] == mac:
        t = '%04x' % (f[12] << 8 | f[13])
        got[t] = got.get(t, 0) + 1
print(json.dumps({'sent': len(frames), 'send_s': send_s, 'replies': got}))
'''

REFUSALS = ('exception_refused_checksum', 'exception_refused_fragment',
            'exception_refused_source', 'exception_refused_hop_limit', 'exception_refused_nd')
OUTCOMES = ('arp_replies', 'icmp_replies', 'exception_tx_drops', 'exception_rate_limited',
            'exception_ignored') + REFUSALS


def mac_bytes(mac):
    return bytes(int(x, 16) for x in mac.split(':'))


def csum(data, start=0):
    if len(data) % 2:
        data += b'\0'
    s = start + sum(struct.unpack('!%dH' % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff


def arp_request(src_mac, sha, spa, tpa):
    return (b'\xff' * 6 + src_mac + b'\x08\x06' + struct.pack('!HHBBH', 1, 0x0800, 6, 4, 1) +
            sha + socket.inet_aton(spa) + b'\0' * 6 + socket.inet_aton(tpa) + b'\0' * 18)


def echo_request(src_mac, dst_mac, src, dst, bad_ip_csum=False, bad_icmp_csum=False):
    icmp = bytearray(struct.pack('!BBHHH', 8, 0, 0, 0x77, 1) + b'tally exception test')
    struct.pack_into('!H', icmp, 2, csum(bytes(icmp)) ^ (1 if bad_icmp_csum else 0))
    ip = bytearray(struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(icmp), 1, 0x4000, 64, 1, 0,
                               socket.inet_aton(src), socket.inet_aton(dst)))
    struct.pack_into('!H', ip, 10, csum(bytes(ip)) ^ (1 if bad_ip_csum else 0))
    return dst_mac + src_mac + b'\x08\x00' + bytes(ip) + bytes(icmp)


def ns_request(src_mac, src6, target6, hop=255, code=0, bad_csum=False):
    src = socket.inet_pton(socket.AF_INET6, src6)
    target = socket.inet_pton(socket.AF_INET6, target6)
    dst = socket.inet_pton(socket.AF_INET6, 'ff02::1:ff00:0')[:13] + target[13:]
    icmp = bytearray(struct.pack('!BBHI', 135, code, 0, 0) + target + b'\x01\x01' + src_mac)
    pseudo = src + dst + struct.pack('!IxxxB', len(icmp), 58)
    struct.pack_into('!H', icmp, 2, csum(pseudo + bytes(icmp)) ^ (1 if bad_csum else 0))
    ip = struct.pack('!IHBB', 6 << 28, len(icmp), 58, hop) + src + dst
    return b'\x33\x33' + dst[12:] + src_mac + b'\x86\xdd' + ip + bytes(icmp)


def start_send(ctx, ns, peer, tally_mac, frames, name, listen_s):
    """The sender in the namespace, running: finish_send() collects what it saw."""
    path = os.path.join(ctx.tmp, name + '.hex')
    with open(path, 'w') as f:
        f.writelines(fr.hex() + '\n' for fr in frames)
    argv = ['ip', 'netns', 'exec', ns, sys.executable, '-c', SENDER, peer, path, tally_mac,
            str(PACE), str(listen_s)]
    out = open(os.path.join(ctx.tmp, name + '.out'), 'w+b')
    p = ctx.spawn(argv, stdout=out, name='sender ' + name)
    p.out, p.what = out, name
    return p


def finish_send(p):
    tt.check_eq(p.wait(60), 0, '%s: sender exit status' % p.what)
    p.out.seek(0)
    text = p.out.read().decode(errors='replace')
    try:
        res = json.loads(text.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise tt.Failure('%s: sender printed no result:\n%s' % (p.what, text))
    tt.log('%s: sent %d in %.3fs, came back from tally: %s'
           % (p.what, res['sent'], res['send_s'], res['replies']))
    return res


def settled(sent):
    """Predicate: every frame sent reached the exception thread (or its full ring), and the
    thread has counted each one under exactly one outcome."""
    def done(s):
        if s.get('rx_missed', 0) > 0:
            raise tt.Failure('AF_PACKET dropped %d frames: lower PACE' % s['rx_missed'])
        handled = s['exceptions'] - s['exception_drops']
        return s['exceptions'] >= sent and sum(s[k] for k in OUTCOMES) == handled
    return done


def check_bad_rate(ctx):
    """--exception-rate out of range: exit 2, one line naming the option, before EAL."""
    for bad in ('1000001', '-1', 'fast'):
        p = subprocess.run([ctx.args.tally, '--', '--exception-rate', bad],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=20)
        lines = p.stderr.decode(errors='replace').splitlines()
        tt.check_eq(p.returncode, 2, '--exception-rate %s: exit status' % bad)
        tt.check(len(lines) == 1 and '--exception-rate' in lines[0],
                 '--exception-rate %s: want one line naming the option, got %r' % (bad, lines))
        tt.log('--exception-rate %s: %s' % (bad, lines[0]))


def storm(ctx, tally, ns, peer, peer_mac, tally_mac, afp, name):
    """STORM ARP requests for tally: exactly the bucket's allowance answered, the rest
    counted as rate limited. Returns the counters' increments."""
    before = tally.wait_telemetry(lambda s: True, what='stats')
    frames = [arp_request(peer_mac, peer_mac, afp.PEER_IP, afp.TALLY_IP)] * STORM
    t0 = time.monotonic()
    sender = start_send(ctx, ns, peer, tally_mac, frames, name, 0.5)
    st = tally.wait_telemetry(settled(before['exceptions'] + STORM), timeout=20,
                              what='%s: every request counted once' % name)
    # An upper bound of the time the exception thread saw the storm: from before the
    # sender started to the moment every request was counted.
    elapsed = time.monotonic() - t0
    res = finish_send(sender)
    d = {k: st[k] - before[k] for k in OUTCOMES + ('exceptions', 'exception_drops')}
    tt.log('%s within %.2fs: %s' % (name, elapsed, tt.fmt_stats(d)))
    # Anything else the namespace's kernel sent would be ignored, never answered or limited.
    tt.check_eq(d['exceptions'] - d['exception_ignored'], STORM,
                '%s: requests handed to the exception path' % name)
    tt.check_eq(d['arp_replies'] + d['exception_rate_limited'] + d['exception_drops'], STORM,
                '%s: arp_replies + exception_rate_limited + exception_drops' % name)
    # The bucket holds RATE tokens and gains RATE a second: exact while a storm lasts < 1/RATE s.
    allowance = RATE + int(elapsed * RATE)
    tt.check(RATE <= d['arp_replies'] <= allowance, '%s: %d replies, the bucket allows %d'
             % (name, d['arp_replies'], allowance))
    tt.check_eq(res['replies'].get('0806', 0), d['arp_replies'],
                '%s: ARP replies on the wire' % name)
    for k in ('icmp_replies', 'exception_tx_drops') + REFUSALS:
        tt.check_eq(d[k], 0, '%s: %s' % (name, k))
    return d


def body(ctx):
    check_bad_rate(ctx)
    import stream
    afp, ns, iface = stream.veth(ctx)
    peer = 'tlyb%d' % os.getpid()
    # Frames come from a packet socket: the namespace's kernel need not speak IPv6, and
    # quiet it does not add router solicitations or MLD reports to the counts.
    afp.write_sysctl('/proc/sys/net/ipv6/conf/%s/disable_ipv6' % peer, 1, netns=ns)
    _, out, _ = afp.ip('-n', ns, '-br', 'link', 'show', peer)
    peer_mac = mac_bytes(re.search(r'([0-9a-f]{2}(?::[0-9a-f]{2}){5})', out).group(1))
    with open('/sys/class/net/%s/address' % iface) as f:
        tally_mac = f.read().strip()

    redis = ctx.redis()
    tally = ctx.tally(['net_af_packet0,iface=%s,qpairs=1' % iface],
                      ['--redis', redis.addr, '--ipv4', afp.TALLY_IP, '--ipv6', afp.TALLY_IP6,
                       '--stats-ms', '100', '--exception-rate', str(RATE)],
                      workers=1, redis=redis)
    tally.wait_stats(lambda s: s.get('workers') == 1, timeout=15, what='tally running')

    # Requests a host stack would not answer: one of each, none answered, each counted.
    # Not a fragment: net_af_packet's fanout has the kernel reassemble IPv4 before tally
    # sees it (PACKET_FANOUT_FLAG_DEFRAG), so a lone fragment never arrives (unit-tested).
    tmac = mac_bytes(tally_mac)
    bcast, mcast = b'\xff' * 6, b'\x01\x00\x5e\x00\x00\x05'
    refused = [
        (arp_request(bcast, peer_mac, afp.PEER_IP, afp.TALLY_IP), 'exception_refused_source'),
        (arp_request(peer_mac, mcast, afp.PEER_IP, afp.TALLY_IP), 'exception_refused_source'),
        (echo_request(peer_mac, tmac, '224.0.0.5', afp.TALLY_IP), 'exception_refused_source'),
        (echo_request(peer_mac, tmac, afp.PEER_IP, afp.TALLY_IP, bad_icmp_csum=True),
         'exception_refused_checksum'),
        (echo_request(peer_mac, tmac, afp.PEER_IP, afp.TALLY_IP, bad_ip_csum=True),
         'exception_refused_checksum'),
        (ns_request(peer_mac, afp.PEER_IP6, afp.TALLY_IP6, hop=64), 'exception_refused_hop_limit'),
        (ns_request(peer_mac, afp.PEER_IP6, afp.TALLY_IP6, code=1), 'exception_refused_nd'),
        (ns_request(peer_mac, afp.PEER_IP6, afp.TALLY_IP6, bad_csum=True),
         'exception_refused_checksum'),
    ]
    want = {k: 0 for k in REFUSALS}
    for _, k in refused:
        want[k] += 1
    sender = start_send(ctx, ns, peer, tally_mac, [fr for fr, _ in refused], 'refused', 0.5)
    tally.wait_telemetry(lambda s: all(s[k] >= want[k] for k in REFUSALS), timeout=10,
                         what='refusals counted: %s' % want)
    st = tally.wait_telemetry(settled(len(refused)), timeout=10, what='refusals settled')
    res = finish_send(sender)
    for k in REFUSALS:
        tt.check_eq(st[k], want[k], k)
    for k in ('arp_replies', 'icmp_replies', 'exception_rate_limited'):
        tt.check_eq(st[k], 0, '%s after the refused requests' % k)
    tt.check_eq(res['replies'], {}, 'replies on the wire to the refused requests')

    # A valid request answered: the refusals took no token. Then storms over the bucket.
    first = storm(ctx, tally, ns, peer, peer_mac, tally_mac, afp, 'storm 1')
    time.sleep(1.2 / RATE)
    second = storm(ctx, tally, ns, peer, peer_mac, tally_mac, afp, 'storm 2')
    tt.log('storm 1: %d replies, storm 2: %d (the bucket refills to %d, not more)'
           % (first['arp_replies'], second['arp_replies'], RATE))

    tally.stop()
    st = redis.self_stats()
    tt.log('final tally:self: ' + tt.fmt_stats({k: st[k] for k in OUTCOMES}))
    tt.check_eq(st['arp_replies'] + st['exception_rate_limited'] +
                st['exception_drops'], 2 * STORM, 'tally:self: storms add up')
    for k in REFUSALS:
        tt.check_eq(st[k], want[k], 'tally:self %s' % k)


if __name__ == '__main__':
    tt.main(body)
