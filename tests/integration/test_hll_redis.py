#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""lib/sketch's HyperLogLog against a real redis-server, both ways.

Redis -> tally: PFADD sets of elements (8-byte little-endian strings, as tally hashes a
record's value) and compare Redis's string (sparse or dense) with what lib/sketch computes
for the same elements: equal registers, PFCOUNT equal to tally's estimate, Redis's own
sparse-to-dense conversion equal byte for byte to tally's, and with hll-sparse-max-bytes 0
Redis's dense string equal byte for byte to tally's.
tally -> Redis: SET a key to tally's dense string; PFCOUNT answers tally's estimate (and
caches exactly the bytes tally would), PFMERGE and PFADD with Redis-made keys work on it.
The C side is tests/unit/hll_tool (--hll-tool).
"""

import random
import struct
import subprocess

import tallytest as tt

REGISTERS = 16384
DENSE_SIZE = 16 + REGISTERS * 6 // 8


def extra_args(ap):
    ap.add_argument('--hll-tool', required=True, help='tests/unit/hll_tool')


def elements(seed, n):
    rnd = random.Random(seed)
    vals = [rnd.getrandbits(64) for _ in range(n)]
    if n >= 3:
        vals[:2] = [0, (1 << 64) - 1]
    return vals


def decode(raw):
    """Registers of a Redis HLL string, dense or sparse (a second implementation)."""
    tt.check(raw[:4] == b'HYLL', 'not an HLL string: %r' % raw[:16])
    if raw[4] == 0:
        tt.check_eq(len(raw), DENSE_SIZE, 'dense length')
        bits = int.from_bytes(raw[16:], 'little')
        return [(bits >> (6 * i)) & 63 for i in range(REGISTERS)]
    tt.check_eq(raw[4], 1, 'encoding')
    regs, p = [], 16
    while p < len(raw):
        b = raw[p]
        if b & 0xc0 == 0:
            regs += [0] * ((b & 0x3f) + 1)
            p += 1
        elif b & 0xc0 == 0x40:
            regs += [0] * ((((b & 0x3f) << 8) | raw[p + 1]) + 1)
            p += 2
        else:
            regs += [((b >> 2) & 0x1f) + 1] * ((b & 3) + 1)
            p += 1
    tt.check_eq(len(regs), REGISTERS, 'sparse register count')
    return regs


class Tool:
    def __init__(self, path):
        self.path = path

    def _run(self, mode, text):
        p = subprocess.run([self.path, mode], input=text.encode(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        if p.returncode != 0:
            raise tt.Failure('hll_tool %s: exit %d: %s' % (mode, p.returncode,
                                                            p.stderr.decode().strip()))
        return p.stdout.decode().split()

    def add(self, vals, cached=False):
        """(tally's dense string, its estimate) for these elements."""
        out = self._run('add-cached' if cached else 'add', ''.join('%d\n' % v for v in vals))
        return bytes.fromhex(out[0]), int(out[1])

    def parse(self, raw):
        """(tally's dense string read from raw, estimate, what PFCOUNT answers)."""
        out = self._run('parse', raw.hex() + '\n')
        return bytes.fromhex(out[0]), int(out[1]), int(out[2])

    def rejects(self, raw):
        p = subprocess.run([self.path, 'parse'], input=(raw.hex() + '\n').encode(),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        return p.returncode != 0


def get(c, key):
    return c.call('GET', key).encode('utf-8', 'surrogateescape')


def pfadd(c, key, vals):
    c.pipeline([['PFADD', key] + [struct.pack('<Q', v) for v in vals[i:i + 1000]]
                for i in range(0, len(vals), 1000)] or [['PFADD', key]])


def redis_to_tally(c, tool):
    """Redis's default encoding (sparse while small): same registers, same count."""
    for n in (1, 2, 10, 100, 1000, 3000, 20000, 200000):
        vals = elements(n, n)
        key = 'redis:%d' % n
        pfadd(c, key, vals)
        raw = get(c, key)
        mine, est = tool.add(vals)
        tt.check(decode(mine) == decode(raw), '%d elements: registers differ from Redis' % n)
        tt.check_eq(est, c.call('PFCOUNT', key), '%d elements: PFCOUNT vs tally estimate' % n)
        # Read back by tally: the registers, and after PFCOUNT cached it, the cached count.
        parsed, pest, pcount = tool.parse(raw)
        tt.check(decode(parsed) == decode(raw), '%d elements: parsed registers' % n)
        tt.check_eq((pest, pcount), (est, est), '%d elements: estimate of the parsed key' % n)
        raw2 = get(c, key)
        parsed2, _, pcount2 = tool.parse(raw2)
        tt.check_eq(pcount2, est, '%d elements: cached count read back' % n)
        # tally converts sparse to dense exactly as Redis does, header included.
        enc = 'sparse' if raw2[4] == 1 else 'dense'
        c.call('PFDEBUG', 'TODENSE', key)
        tt.check(get(c, key) == parsed2, '%d elements (%s): Redis dense != tally parse' % (n, enc))
        tt.log('%6d elements: %s %5d bytes in Redis, registers equal, PFCOUNT %d = tally'
               % (n, enc, len(raw), est))


def dense_byte_for_byte(c, tool):
    """With hll-sparse-max-bytes 0 Redis writes dense at once: the very bytes tally writes."""
    c.call('CONFIG', 'SET', 'hll-sparse-max-bytes', '0')
    try:
        for n in (1, 1000, 50000):
            vals = elements(1000 + n, n)
            key = 'dense:%d' % n
            pfadd(c, key, vals)
            raw = get(c, key)
            tt.check_eq(raw[4], 0, 'encoding with hll-sparse-max-bytes 0')
            mine, est = tool.add(vals)
            tt.check(raw == mine, '%d elements: Redis dense string != tally string' % n)
            tt.check_eq(c.call('PFCOUNT', key), est, '%d elements: PFCOUNT' % n)
            tt.log('%6d elements: Redis dense string == tally string (%d bytes)' % (n, len(raw)))
    finally:
        c.call('CONFIG', 'SET', 'hll-sparse-max-bytes', '3000')


def tally_to_redis(c, tool):
    a = elements(7, 5000)
    b = a[:200] + elements(8, 800)  # small enough for Redis to keep it sparse
    union = sorted(set(a) | set(b))
    mine_a, est_a = tool.add(a)
    # PFCOUNT recomputes from tally's registers (cache marked stale) and gets tally's number.
    c.call('SET', 'tally:a', mine_a)
    tt.check_eq(c.call('PFCOUNT', 'tally:a'), est_a, 'PFCOUNT of tally string')
    cached_a, _ = tool.add(a, cached=True)
    tt.check(get(c, 'tally:a') == cached_a, 'Redis cached a different count or header')
    # A string with tally's cached count is answered as is.
    c.call('SET', 'tally:a2', cached_a)
    tt.check_eq(c.call('PFCOUNT', 'tally:a2'), est_a, 'PFCOUNT of cached tally string')

    # PFMERGE of tally's key with a Redis-made (sparse) one, and the multi-key PFCOUNT.
    pfadd(c, 'redis:b', b)
    tt.check_eq(get(c, 'redis:b')[4], 1, 'Redis key encoding (sparse expected)')
    c.call('PFMERGE', 'merged', 'tally:a', 'redis:b')
    mine_u, est_u = tool.add(union)
    tt.check(decode(get(c, 'merged')) == decode(mine_u), 'PFMERGE registers != tally union')
    tt.check_eq(c.call('PFCOUNT', 'merged'), est_u, 'PFCOUNT of PFMERGE result')
    tt.check_eq(c.call('PFCOUNT', 'tally:a', 'redis:b'), est_u, 'PFCOUNT of two keys')
    # The other way: tally reads the merged key; tally's key takes PFADDs.
    parsed, pest, _ = tool.parse(get(c, 'merged'))
    tt.check_eq(pest, est_u, 'tally estimate of the PFMERGE result')
    pfadd(c, 'tally:a', b)
    tt.check(get(c, 'tally:a')[16:] == mine_u[16:], 'PFADD into tally string: registers')
    tt.check_eq(c.call('PFCOUNT', 'tally:a'), est_u, 'PFCOUNT after PFADD into tally string')
    tt.log('tally string: PFCOUNT %d, PFMERGE with a sparse Redis key: %d (union %d)'
           % (est_a, est_u, len(union)))

    # What Redis refuses, tally refuses too.
    c.call('SET', 'bad', mine_a[:-1])
    try:
        c.call('PFCOUNT', 'bad')
        raise tt.Failure('Redis accepted a short dense string')
    except tt.RedisError:
        pass
    tt.check(tool.rejects(mine_a[:-1]), 'hll_tool accepted a short dense string')
    sparse = get(c, 'redis:b')
    tt.check(tool.rejects(sparse[:-1] + bytes([sparse[-1] ^ 0x3f])),
             'hll_tool accepted a sparse string that does not cover 16384 registers')


def body(ctx):
    tool = Tool(ctx.args.hll_tool)
    redis = ctx.redis()
    c = redis.client
    redis_to_tally(c, tool)
    dense_byte_for_byte(c, tool)
    tally_to_redis(c, tool)


if __name__ == '__main__':
    tt.main(body, extra_args=extra_args)
