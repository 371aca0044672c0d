#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""tally --check-config on good and broken setups: one line per finding ("tally: check:
ok|warning|problem: ..."), what it would run, exit 0 without problems and 1 with; it starts
nothing (no window is written, the spool lock is let go, the capture is not created). The
broken setups: Redis down, a replica, a wrong password, the spool directory a file or in use
by a running tally, the capture a FIFO or a symlink, the /metrics port taken, too little
memory, no port, too few mbufs and queues. And config/tally.service passes
`systemd-analyze verify`."""

import os
import re
import shutil
import socket
import stat
import subprocess

import tallytest as tt

LINE = re.compile(r'^tally: check: (ok|warning|problem): ')


def check(ctx, vdevs, args, workers=1, want_rc=None):
    """Run --check-config; returns (rc, {'ok': [...], 'warning': [...], 'problem': [...]})."""
    ctx.ntally += 1
    prefix = 'tally_ck_%d_%d' % (os.getpid(), ctx.ntally)
    argv = [ctx.args.tally] + tt.lcores_arg(workers)
    argv += ['--no-huge', '-m', '512', '--file-prefix', prefix, '--no-pci']
    for v in vdevs:
        argv += ['--vdev', v]
    argv += ['--', '--check-config'] + list(args)
    ctx.dpdk_dirs.append(os.path.join(tt.DPDK_RUNTIME, prefix))
    rc, out, err = tt.run_tool(argv, timeout=60, ok=None)
    found = {'ok': [], 'warning': [], 'problem': []}
    lines = out.strip().splitlines()
    for line in lines:
        m = LINE.match(line)
        if m:
            found[m.group(1)].append(line[m.end():])
        else:
            tt.check(line.startswith('tally: check: '), 'a line not of the check: %r' % line)
    tt.check(lines and lines[-1] == 'tally: check: %d problem(s), %d warning(s)'
             % (len(found['problem']), len(found['warning'])),
             'the last line counts the findings:\n' + out)
    tt.check(any(l.startswith('tally: check: would run ') for l in lines),
             'says what it would run:\n' + out)
    tt.check_eq(rc, 1 if found['problem'] else 0, 'exit status (%s)' % found['problem'])
    if want_rc is not None:
        tt.check_eq(rc, want_rc, 'exit status:\n' + out)
    tt.log('check: %d ok, %d warning(s), %d problem(s)' % (len(found['ok']),
           len(found['warning']), len(found['problem'])))
    return rc, found


def has(lines, pattern, what):
    tt.check(any(re.search(pattern, l) for l in lines), '%s: no line like %r in %s'
             % (what, pattern, lines))


def body(ctx):
    redis = ctx.redis()
    spool = os.path.join(ctx.tmp, 'spool')
    dlq = os.path.join(ctx.tmp, 'dead.pcapng')
    mport = tt.free_port()
    good = ['--redis', redis.addr, '--spool-dir', spool, '--dlq', dlq,
            '--metrics-listen', '127.0.0.1:%d' % mport]

    # A good setup: no problem, and nothing started or written.
    _, f = check(ctx, ['net_null0'], good, want_rc=0)
    has(f['ok'], r'^Redis at 127\.0\.0\.1:\d+ answers, tally_merge2 loaded$', 'Redis')
    has(f['ok'], r'^port 0 \(net_null0, driver net_null, .*\): 1 RX queue\(s\)', 'port')
    has(f['ok'], r'^--spool-dir .* takes writes; 0 segment\(s\) to replay$', 'spool')
    has(f['ok'], r'^--metrics-listen 127\.0\.0\.1:%d is free$' % mport, 'metrics')
    has(f['ok'], r'^memory: the options need \d+ MiB', 'memory')
    tt.check(not os.path.exists(dlq), 'the check created the capture')
    tt.check_eq(redis.client.call('EXISTS', 'tally:self'), 0, 'the check wrote tally:self')
    tt.check(not [k for k in redis.client.scan('tally:*')], 'the check wrote keys')

    # Warnings alone: exit 0. Two workers on one queue, too few mbufs.
    _, f = check(ctx, ['net_null0,size=64'], ['--redis', redis.addr, '--mbufs', '1023'],
                 workers=2, want_rc=0)
    has(f['warning'], r'^--mbufs 1023 is fewer than .*; give --mbufs \d+$', 'mbufs')

    # Everything broken at once: one line each.
    down = tt.free_port()
    not_dir = os.path.join(ctx.tmp, 'a-file')
    open(not_dir, 'w').close()
    fifo = os.path.join(ctx.tmp, 'fifo')
    os.mkfifo(fifo)
    taken = socket.socket()
    taken.bind(('127.0.0.1', 0))
    taken.listen(1)
    try:
        _, f = check(ctx, ['net_null0'], [
            '--redis', '127.0.0.1:%d' % down, '--spool-dir', not_dir, '--dlq', fifo,
            '--metrics-listen', '127.0.0.1:%d' % taken.getsockname()[1],
            '--max-memory-mb', '1'], want_rc=1)
    finally:
        taken.close()
    tt.check_eq(len(f['problem']), 5, 'five problems, one line each: %s' % f['problem'])
    has(f['problem'], r'^cannot connect to Redis at 127\.0\.0\.1:%d: Connection refused' % down,
        'Redis down')
    has(f['problem'], r'^--spool-dir: cannot open .*a-file/tally\.lock: Not a directory$',
        'spool a file')
    has(f['problem'], r'^--dlq: .*fifo is not a regular file$', 'dlq a FIFO')
    has(f['problem'], r'^--metrics-listen: cannot listen on 127\.0\.0\.1 port \d+: Address '
        r'already in use$', 'metrics port taken')
    has(f['problem'], r'^memory: the options need .* more than --max-memory-mb 1 MiB',
        'memory')

    # A symlink where the capture goes; no port at all.
    link = os.path.join(ctx.tmp, 'link.pcapng')
    os.symlink('/etc/hostname', link)
    _, f = check(ctx, [], ['--redis', redis.addr, '--dlq', link], want_rc=1)
    has(f['problem'], r'^--dlq: .*link\.pcapng is a symlink', 'dlq symlink')
    has(f['problem'], r'^no Ethernet port: give one with -a PCI_ADDR or --vdev$', 'no port')
    tt.check_eq(len(f['problem']), 2, 'two problems: %s' % f['problem'])

    # A replica given for the master, in both write modes.
    replica = ctx.redis(extra=['--replicaof', '127.0.0.1', str(redis.port)])
    for mode in ('merge', 'hset'):
        _, f = check(ctx, ['net_null0'], ['--redis', replica.addr, '--redis-write', mode],
                     want_rc=1)
        has(f['problem'], r'^Redis at 127\.0\.0\.1:%d is a replica \(of 127\.0\.0\.1:%d\): '
            r'give --redis its master$' % (replica.port, redis.port), 'replica ' + mode)

    # A wrong password.
    secured = tt.Redis(ctx, password='right-one')
    pw = os.path.join(ctx.tmp, 'password')
    with open(pw, 'w') as fh:
        fh.write('wrong-one\n')
    os.chmod(pw, stat.S_IRUSR | stat.S_IWUSR)
    _, f = check(ctx, ['net_null0'], ['--redis', secured.addr, '--redis-password-file', pw],
                 want_rc=1)
    has(f['problem'], r'refused AUTH', 'wrong password')

    # The spool directory of a running tally: named with its pid.
    running = ctx.tally(['net_null0'], ['--redis', redis.addr, '--spool-dir', spool,
                                        '--stats-ms', '100'], redis=redis)
    running.wait_stats(lambda s: 'workers' in s, timeout=30, what='tally running')
    _, f = check(ctx, ['net_null0'], ['--redis', redis.addr, '--spool-dir', spool], want_rc=1)
    has(f['problem'], r'^--spool-dir: .*spool is in use by another tally \(pid %d\)'
        % running.proc.pid, 'spool in use')
    running.stop()
    _, f = check(ctx, ['net_null0'], ['--redis', redis.addr, '--spool-dir', spool], want_rc=0)

    # The systemd unit as shipped parses cleanly.
    sa = shutil.which('systemd-analyze')
    if sa is None:
        tt.log('no systemd-analyze: the unit is not verified')
        return
    unit = os.path.join(ctx.tmp, 'tally.service')
    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'config',
                       'tally.service')
    with open(src) as fh, open(unit, 'w') as out:
        out.write(fh.read().replace('/usr/local/bin/tally', os.path.abspath(ctx.args.tally)))
    p = subprocess.run([sa, 'verify', unit], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=60)
    text = p.stdout.decode(errors='replace')
    tt.check(p.returncode == 0 and unit not in text,
             'systemd-analyze verify config/tally.service: rc %d\n%s' % (p.returncode, text))


if __name__ == '__main__':
    tt.main(body)
