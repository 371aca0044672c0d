#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""The spool directory as a hostile or careless operator leaves it.

- Two tally processes given one --spool-dir: the second fails at start with one line naming
  the directory and the first one's pid; the first goes on undisturbed.
- A FIFO, a directory and a symlink with segment names: skipped and counted (spool_skipped),
  logged, never opened; SIGTERM ends tally at once; the link's target is untouched.
- A read-only spool file system: tally fails at start with one line (not at the first
  outage).
- A full spool file system while Redis is down: the closed window waits in memory
  (spool_write_errors counted, the errno logged, nothing lost); once there is room it is
  spooled, and once Redis is back it is replayed: totals exact. The free-space warning at
  start says the cap does not fit.
The last two mount a small tmpfs (root only; skipped otherwise).
"""
import os
import signal
import subprocess

import tallytest as tt

WINDOW_MS = 1000


def tally_args(redis, spool, extra=()):
    return ['--redis', redis.addr, '--stats-ms', '100', '--window-ms', str(WINDOW_MS),
            '--table-series', '16384', '--spool-dir', spool, '--instance', 'hostile',
            '--breaker-max-ms', '300'] + list(extra)


def start_fails(ctx, vdev, args, what):
    """tally exits non-zero at start with one 'tally:' line on stderr; returns it."""
    ctx.ntally += 1
    prefix = 'tally_it_%d_%d' % (os.getpid(), ctx.ntally)
    ctx.dpdk_dirs.append(os.path.join(tt.DPDK_RUNTIME, prefix))
    argv = ([ctx.args.tally] + tt.lcores_arg(1) +
            ['--no-huge', '-m', '512', '--file-prefix', prefix, '--no-pci', '--vdev', vdev,
             '--'] + args)
    tt.log('run: ' + ' '.join(argv))
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    err = p.stderr.decode(errors='replace')
    lines = [ln for ln in err.splitlines() if ln.startswith('tally:')]
    tt.check(p.returncode != 0, '%s: tally exited 0' % what)
    tt.check_eq(len(lines), 1, '%s: tally: lines on stderr (%r)' % (what, err))
    tt.log('%s: rc %d: %s' % (what, p.returncode, lines[0]))
    return lines[0]


def mount_tmpfs(ctx, path, size):
    os.makedirs(path)
    subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=%s,mode=0750' % size, 'tmpfs', path],
                   check=True)
    ctx.undo.append(lambda: subprocess.run(['umount', '-l', path], check=False))


def case_two_processes(ctx, redis, empty):
    spool = os.path.join(ctx.tmp, 'spool-shared')
    first = ctx.tally(['net_pcap0,rx_pcap=' + empty], tally_args(redis, spool), redis=redis,
                      name='tally-first')
    first.wait_telemetry(lambda s: s['uptime_s'] >= 0, what='the first tally up')
    line = start_fails(ctx, 'net_pcap0,rx_pcap=' + empty, tally_args(redis, spool),
                       'a second tally on the same --spool-dir')
    tt.check('--spool-dir' in line and spool in line, 'names the directory: %r' % line)
    tt.check('pid %d' % first.proc.pid in line, 'names the holder pid %d: %r'
             % (first.proc.pid, line))
    tt.check(first.proc.poll() is None, 'the first tally still runs')
    first.stop()
    # Once the first has gone the directory is free again.
    again = ctx.tally(['net_pcap0,rx_pcap=' + empty], tally_args(redis, spool), redis=redis,
                      name='tally-again')
    again.wait_telemetry(lambda s: s['uptime_s'] >= 0, what='a tally after the first exited')
    again.stop()


def case_not_segments(ctx, redis, empty):
    spool = os.path.join(ctx.tmp, 'spool-odd')
    os.makedirs(spool)
    os.mkfifo(os.path.join(spool, 'spool-00000000000000000001.tsp'))
    os.mkdir(os.path.join(spool, 'spool-00000000000000000002.tsp'))
    target = os.path.join(ctx.tmp, 'precious')
    with open(target, 'w') as f:
        f.write('not tally data\n')
    os.symlink(target, os.path.join(spool, 'spool-00000000000000000003.tsp'))
    t = ctx.tally(['net_pcap0,rx_pcap=' + empty], tally_args(redis, spool), redis=redis,
                  name='tally-odd')
    st = t.wait_telemetry(lambda s: s['spool_skipped'] == 3, what='3 entries skipped')
    tt.check_eq(st['spool_bytes'], 0, 'spool_bytes')
    took = t.stop(timeout=10)
    tt.check(took < 5, 'SIGTERM took %.1fs' % took)
    text = t.log_text()
    tt.check_eq(text.count('is not a regular file: skipped'), 3, 'log lines of skipped entries')
    with open(target) as f:
        tt.check_eq(f.read(), 'not tally data\n', "the symlink's target")
    tt.check(os.path.islink(os.path.join(spool, 'spool-00000000000000000003.tsp')),
             'the symlink is left in place')


def case_read_only(ctx, redis, empty):
    spool = os.path.join(ctx.tmp, 'spool-ro')
    mount_tmpfs(ctx, spool, '1m')
    subprocess.run(['mount', '-o', 'remount,ro', spool], check=True)
    line = start_fails(ctx, 'net_pcap0,rx_pcap=' + empty, tally_args(redis, spool),
                       'a read-only --spool-dir')
    tt.check('--spool-dir' in line and 'Read-only file system' in line,
             'names the option and the cause: %r' % line)


def case_full(ctx, redis):
    spool = os.path.join(ctx.tmp, 'spool-full')
    mount_tmpfs(ctx, spool, '256k')
    filler = os.path.join(spool, 'filler')
    with open(filler, 'wb') as f:
        try:
            f.write(b'\0' * (256 << 10))
        except OSError:
            pass
    pcap, totals, g = tt.gen_capture(ctx, 'full', 2000, devices=200, base=1, seed=7)
    redis.signal(signal.SIGKILL)  # down from the start: the window must go to the spool
    tt.wait_window_margin(WINDOW_MS, 300)
    t = ctx.tally(['net_pcap0,rx_pcap=' + pcap], tally_args(redis, spool), redis=redis,
                  name='tally-full')
    st = t.wait_telemetry(lambda s: s['spool_write_errors'] >= 1 and s['sink_queue'] >= 1,
                          timeout=20, what='a spool write failed, the window held')
    tt.check_eq(st['datagrams'], g['valid_datagrams'], 'datagrams counted')
    tt.check_eq(st['spool_lost_records'], 0, 'spool_lost_records while memory holds it')
    tt.check_eq(st['spool_windows'], 0, 'spool_windows on a full disk')
    text = t.log_text()
    tt.check('--spool-max-mb is' in text and 'spooling will fail before the cap' in text,
             'the free-space warning at start')
    tt.check('No space left on device' in text, 'the errno of the failed write in the log')
    # Room again: the held window is spooled within a second or so.
    os.unlink(filler)
    st = t.wait_telemetry(lambda s: s['spool_windows'] >= 1 and s['sink_queue'] == 0,
                          timeout=10, what='the window spooled once there is room')
    tt.check_eq(st['spool_lost_records'], 0, 'spool_lost_records')
    redis = redis.restart()
    st = t.wait_telemetry(lambda s: s['spool_bytes'] == 0 and s['breaker_state'] == 0 and
                          not tt.spool_segments(spool), timeout=20, what='the spool replayed')
    t.stop()
    tt.compare_totals(totals, tt.query_totals(ctx, redis))
    st = redis.self_stats()
    tt.check_eq(st.get('spool_lost_records'), 0, 'tally:self spool_lost_records')
    tt.check(st.get('spool_write_errors', 0) >= 1, 'tally:self spool_write_errors')


def body(ctx):
    empty, _, _ = tt.gen_capture(ctx, 'empty', 0, devices=1, base=1, seed=9)
    redis = ctx.redis()
    case_two_processes(ctx, redis, empty)
    case_not_segments(ctx, redis, empty)
    if os.geteuid() != 0:
        raise tt.Skip('the read-only and full file system cases mount a tmpfs: need root')
    case_read_only(ctx, redis, empty)
    case_full(ctx, redis)


if __name__ == '__main__':
    tt.main(body)
