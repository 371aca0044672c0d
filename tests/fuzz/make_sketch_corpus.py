#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Writes the seed corpus of the sketch fuzzer (run once; the files are committed).

Serialised DDSketches (tally_ddsketch.h, version 1), Redis HLL strings (dense and sparse),
and 'M' pairs: 'M', len(A) as 2 bytes little-endian, A, B.
"""
import os
import random
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'corpus_sketch')
KEYS = 2419


def varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7f) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def dds(buckets, zero=0, clamped=0, folded=0):
    """buckets: {key: count}, keys in -KEYS..KEYS without 0."""
    keys = sorted(buckets)
    out = b'DS\x01\x00' + varint(zero) + varint(clamped) + varint(folded) + varint(len(keys))
    for i, k in enumerate(keys):
        out += varint(2 * k if k >= 0 else -2 * k - 1) if i == 0 else varint(k - keys[i - 1] - 1)
        out += varint(buckets[k] - 1)
    return out


def hll_header(encoding, card=0, stale=True):
    card_bytes = bytearray(struct.pack('<Q', card))
    if stale:
        card_bytes[7] |= 0x80
    return b'HYLL' + bytes([encoding, 0, 0, 0]) + bytes(card_bytes)


def hll_dense(regs):
    bits = 0
    for i, r in enumerate(regs):
        bits |= r << (6 * i)
    return hll_header(0) + bits.to_bytes(12288, 'little')


def hll_sparse(regs):
    """Redis's opcodes for a register list (runs of zeros, VALs of up to 4)."""
    out, i = bytearray(hll_header(1)), 0
    while i < len(regs):
        j = i
        while j < len(regs) and regs[j] == regs[i]:
            j += 1
        run, v = j - i, regs[i]
        while run:
            if v == 0 and run > 64:
                n = min(run, 16384)
                out += bytes([0x40 | (n - 1) >> 8, (n - 1) & 0xff])
            elif v == 0:
                n = run
                out.append(n - 1)
            else:
                n = min(run, 4)
                out.append(0x80 | (v - 1) << 2 | (n - 1))
            run -= n
        i = j
    return bytes(out)


def pair(a, b):
    return b'M' + struct.pack('<H', len(a)) + a + b


def main():
    rnd = random.Random(1)
    few = dds({-KEYS: 1, -40: 3, 1: 2, 1037: 10, KEYS: 1}, zero=4, clamped=2)
    wide = dds({k: rnd.randint(1, 1 << 40) for k in rnd.sample(
        [k for k in range(-KEYS, KEYS + 1) if k], 300)}, folded=17)
    sparse_regs = [0] * 16384
    for i in rnd.sample(range(16384), 200):
        sparse_regs[i] = rnd.randint(1, 32)
    dense_regs = [min(51, 1 + int(rnd.expovariate(0.9))) for _ in range(16384)]
    example = [0] * 16384
    example[1000], example[1020], example[1021] = 2, 3, 3
    seeds = {
        'dds_empty': dds({}),
        'dds_few': few,
        'dds_wide': wide,
        'dds_pair': pair(few, wide),
        'hll_sparse_empty': hll_sparse([0] * 16384),
        'hll_sparse_example': hll_sparse(example),
        'hll_sparse': hll_sparse(sparse_regs),
        'hll_dense': hll_dense(dense_regs),
        'hll_pair_sparse': pair(hll_sparse(example), hll_sparse(sparse_regs)),
        'hll_pair_dense_sparse': pair(hll_dense(dense_regs), hll_sparse(sparse_regs)),
    }
    os.makedirs(OUT, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(OUT, name), 'wb') as f:
            f.write(data)


if __name__ == '__main__':
    main()
