#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Dead-letter capture: the pcapng file holds exactly the malformed datagrams of a capture,
each with its reason as the packet comment; the rate cap counts the rest; files rotate; a
second run appends a section (the first run's capture kept), files are 0640 whatever the
umask, and a symlink, a FIFO or a file of another format at the path is refused at start."""
import os
import struct
import subprocess

import tallytest as tt

REASONS = ('short', 'magic', 'version', 'flags', 'reserved', 'count', 'length', 'kind', 'value')


def read_pcap(path):
    """Frames of a classic pcap file."""
    d = open(path, 'rb').read()
    tt.check_eq(struct.unpack_from('<I', d, 0)[0], 0xa1b2c3d4, 'pcap magic')
    off, frames = 24, []
    while off < len(d):
        incl = struct.unpack_from('<I', d, off + 8)[0]
        frames.append(d[off + 16:off + 16 + incl])
        off += 16 + incl
    return frames


def reason_of(frame):
    """The wire v1 reason a frame of tally-gen fails with (IPv4, no VLAN), or None."""
    return tt.v1_reason(frame[14 + 20 + 8:])


def run(ctx, pcap, dlq, extra, expect_datagrams, expect_malformed):
    redis = ctx.redis()
    tally = ctx.tally(['net_pcap0,rx_pcap=' + pcap],
                      ['--redis', redis.addr, '--stats-ms', '100', '--table-series', '65536',
                       '--dlq', dlq] + extra, redis=redis)
    tally.wait_stats(lambda s: s.get('datagrams') == expect_datagrams and
                     s.get('malformed') == expect_malformed, timeout=30, what='all counted')
    tally.stop()
    st = redis.self_stats()
    tt.log('dlq stats: ' + ' '.join('%s=%s' % (k, v) for k, v in sorted(st.items())
                                      if k.startswith('dlq')))
    return st


def start_fails(ctx, pcap, dlq):
    """tally with --dlq refused at start: the one 'tally:' line of stderr, in under 10 s."""
    ctx.ntally += 1
    prefix = 'tally_it_%d_%d' % (os.getpid(), ctx.ntally)
    ctx.dpdk_dirs.append(os.path.join(tt.DPDK_RUNTIME, prefix))
    argv = ([ctx.args.tally] + tt.lcores_arg(1) +
            ['--no-huge', '-m', '512', '--file-prefix', prefix, '--no-pci', '--vdev',
             'net_pcap0,rx_pcap=' + pcap, '--', '--redis', '127.0.0.1:1', '--dlq', dlq])
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=10)
    lines = [ln for ln in p.stderr.decode(errors='replace').splitlines()
             if ln.startswith('tally:')]
    tt.check(p.returncode != 0 and len(lines) == 1, '--dlq %s: rc %d, %r'
             % (dlq, p.returncode, lines))
    tt.log('--dlq %s: %s' % (dlq, lines[0]))
    return lines[0]


def body(ctx):
    pcap = os.path.join(ctx.tmp, 'in.pcap')
    gen = tt.tally_gen(ctx, ['--pcap', pcap, '--datagrams', '5000', '--records', '4',
                             '--devices', '100', '--malformed', '99'])
    frames = read_pcap(pcap)
    bad = sorted((f, 'malformed: ' + r) for f in frames for r in [reason_of(f)] if r)
    tt.check_eq(len(bad), 99, 'malformed frames in the capture')

    # 1. Everything under the cap: the capture holds exactly the malformed frames and reasons.
    dlq = os.path.join(ctx.tmp, 'dead.pcapng')
    st = run(ctx, pcap, dlq, [], 5000, 99)
    got = sorted(tt.read_pcapng(dlq))
    tt.check_eq(len(got), 99, 'packets in the dead-letter capture')
    tt.check(got == bad, 'dead-letter frames and comments equal the malformed input')
    for r in REASONS:
        tt.check_eq(sum(1 for _, c in got if c == 'malformed: ' + r), gen['malformed:' + r],
                    'captured with reason ' + r)
    tt.check_eq(st['dlq_written'], 99, 'dlq_written')
    tt.check_eq(st['dlq_dropped'], 0, 'dlq_dropped')
    tt.check_eq(st['dlq_errors'], 0, 'dlq_errors')

    # 2. Over the rate cap the rest is counted only.
    dlq2 = os.path.join(ctx.tmp, 'capped.pcapng')
    st = run(ctx, pcap, dlq2, ['--dlq-burst', '10', '--dlq-rate', '1'], 5000, 99)
    got = tt.read_pcapng(dlq2)
    tt.check_eq(len(got), st['dlq_written'], 'capture holds what dlq_written says')
    tt.check(10 <= st['dlq_written'] <= 15, 'burst of 10 plus ~1/s: %d' % st['dlq_written'])
    tt.check_eq(st['dlq_written'] + st['dlq_dropped'], 99, 'written + dropped')
    tt.check_eq(st['malformed'], 99, 'all malformed still counted')

    # 3. Rotation at --dlq-max-mb: FILE.1 holds the older packets, nothing is lost across both.
    pcap3 = os.path.join(ctx.tmp, 'many.pcap')
    tt.tally_gen(ctx, ['--pcap', pcap3, '--datagrams', '1000', '--records', '1',
                       '--devices', '10', '--malformed', '18000'])
    dlq3 = os.path.join(ctx.tmp, 'rot.pcapng')
    # The writer's ring holds a whole burst (here 32768 frames): give the pool room for it.
    st = run(ctx, pcap3, dlq3, ['--dlq-max-mb', '1', '--dlq-burst', '20000',
                                '--mbufs', '65535'], 1000, 18000)
    tt.check(st['dlq_rotations'] >= 1, 'rotated %d times' % st['dlq_rotations'])
    tt.check(os.path.exists(dlq3 + '.1'), 'older capture kept as FILE.1')
    n = len(tt.read_pcapng(dlq3)) + len(tt.read_pcapng(dlq3 + '.1'))
    tt.check(os.path.getsize(dlq3) <= 1 << 20, 'capture within --dlq-max-mb')
    if st['dlq_rotations'] == 1:
        tt.check_eq(n, 18000, 'packets in FILE and FILE.1 after one rotation')
    tt.check_eq(st['dlq_written'], 18000, 'dlq_written')

    # 4. A second run with the same --dlq: the first run's capture is kept (a section of its
    #    own each), and the file is 0640 even under umask 000.
    old = os.umask(0)
    try:
        fresh = os.path.join(ctx.tmp, 'fresh.pcapng')
        run(ctx, pcap, fresh, [], 5000, 99)
        tt.check_eq(os.stat(fresh).st_mode & 0o777, 0o640, 'mode of a new capture, umask 000')
    finally:
        os.umask(old)
    run(ctx, pcap, dlq, [], 5000, 99)
    got = tt.read_pcapng(dlq, sections=2)
    tt.check_eq(len(got), 198, 'packets after a second run on the same file')
    tt.check(sorted(got[:99]) == bad and sorted(got[99:]) == bad, 'both runs kept whole')

    # 5. What is not a capture at the path: refused at start with one line, left as it was.
    target = os.path.join(ctx.tmp, 'precious')
    with open(target, 'w') as f:
        f.write('not a capture\n')
    link = os.path.join(ctx.tmp, 'link.pcapng')
    os.symlink(target, link)
    fifo = os.path.join(ctx.tmp, 'fifo.pcapng')
    os.mkfifo(fifo)
    for path, why in ((link, 'symbolic link'), (fifo, 'not a regular file'),
                      (target, 'something other than a pcapng capture')):
        line = start_fails(ctx, pcap, path)
        tt.check('--dlq' in line and why in line, '--dlq %s: %r' % (path, line))
    with open(target) as f:
        tt.check_eq(f.read(), 'not a capture\n', "the link's target")


if __name__ == '__main__':
    tt.main(body)
