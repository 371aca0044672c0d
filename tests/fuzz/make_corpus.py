#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Writes the seed corpus of the packet fuzzer (run once; the files are committed)."""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'corpus')
ETH = bytes.fromhex('020000000001' '020000000002')


def payload(n=2, dev=42, kind=1, value=1.5, flags=0, version=1, magic=b'TY'):
    hdr = magic + struct.pack('<BBHHQQQ', version, flags, n, 0, dev, 7, 1000)
    return hdr + b''.join(struct.pack('<IB3xd', i + 1, kind, value) for i in range(n))


def csum(b):
    if len(b) % 2:
        b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff


def ipv4(l4, proto=17, opts=b'', frag=0, dst=bytes([198, 18, 0, 1])):
    ihl = 5 + len(opts) // 4
    h = struct.pack('!BBHHHBBH4s4s', 0x40 | ihl, 0, ihl * 4 + len(l4), 1, frag, 64, proto, 0,
                    bytes([198, 18, 0, 2]), dst) + opts
    h = h[:10] + struct.pack('!H', csum(h)) + h[12:]
    return h + l4


def udp(p, dport=9797):
    return struct.pack('!HHHH', 40000, dport, 8 + len(p), 0) + p


def ipv6(l4, nxt=17):
    return struct.pack('!IHBB', 0x60000000, len(l4), nxt, 64) + \
        bytes.fromhex('20010002' + '00' * 11 + '02') + bytes.fromhex('20010002' + '00' * 11 + '01') + l4


seeds = {
    'ipv4': ETH + b'\x08\x00' + ipv4(udp(payload())),
    'ipv4_opts': ETH + b'\x08\x00' + ipv4(udp(payload(1)), opts=b'\x01\x01\x01\x00'),
    'vlan_ipv4': ETH + b'\x81\x00\x00\x0a\x08\x00' + ipv4(udp(payload(3))),
    'qinq': ETH + b'\x88\xa8\x00\x0a\x81\x00\x00\x0b\x08\x00' + ipv4(udp(payload())),
    'ipv6': ETH + b'\x86\xdd' + ipv6(udp(payload(2))),
    'ipv6_ext': ETH + b'\x86\xdd' + ipv6(b'\x11\x00' + b'\0' * 6 + udp(payload(1)), nxt=0),
    'frag_first': ETH + b'\x08\x00' + ipv4(udp(payload()), frag=0x2000),
    'frag_later': ETH + b'\x08\x00' + ipv4(udp(payload()), frag=0x0010),
    'bad_kind': ETH + b'\x08\x00' + ipv4(udp(payload(kind=9))),
    'nan': ETH + b'\x08\x00' + ipv4(udp(payload(value=float('nan')))),
    'short': ETH + b'\x08\x00' + ipv4(udp(b'TY\x01\x00')),
    'arp': ETH[:6] + b'\xff' * 0 + ETH[6:] + b'\x08\x06' + bytes.fromhex(
        '0001080006040001' '020000000002' 'c6120002' '000000000000' 'c6120001'),
    'icmp': ETH + b'\x08\x00' + ipv4(bytes.fromhex('0800f7ff00000000') + b'ping', proto=1),
    'ns': ETH + b'\x86\xdd' + ipv6(bytes([135, 0, 0, 0, 0, 0, 0, 0]) +
                                  bytes.fromhex('20010002' + '00' * 11 + '01') +
                                  bytes.fromhex('0101020000000002'), nxt=58),
    'jumbo': ETH + b'\x08\x00' + ipv4(udp(payload(500))),
    # the table's side memory: histogram values (a sketch each) and distinct elements (an HLL)
    'histogram': ETH + b'\x08\x00' + ipv4(udp(payload(8, kind=3, value=123.25))),
    'distinct': ETH + b'\x08\x00' + ipv4(udp(payload(8, kind=4, value=float('nan')))),
}
os.makedirs(OUT, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(OUT, name), 'wb') as f:
        f.write(data)
