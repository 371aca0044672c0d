# SPDX-License-Identifier: BSD-3-Clause
"""Shared helpers of tally's integration tests: Redis, tally runs, tools, cleanup, verdicts.

A test script calls tallytest.main(body): body(ctx) gets a Context that owns every process,
temporary directory and network namespace it creates, and undoes them all in a finally block,
also when the test is interrupted by SIGTERM/SIGINT (meson's timeout) or fails.
Exit status: 0 pass, 1 fail, 77 skip (the code meson and automake read as "skipped").
"""

import argparse
import difflib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback

SKIP = 77
DPDK_RUNTIME = '/var/run/dpdk'

# The integer fields tally:self must always hold (a missing one is a schema break).
SELF_FIELDS = ('datagrams', 'records', 'malformed', 'other', 'table_full', 'rx_missed',
               'windows_flushed', 'redis_commands', 'redis_errors', 'flush_lag_ms',
               'arp_replies', 'icmp_replies', 'rx_packets', 'workers')
# Every reason of malformed:<reason>.
MALFORMED_REASONS = ('short', 'magic', 'version', 'flags', 'reserved', 'count', 'length',
                     'kind', 'value', 'truncated', 'fragment')

WINDOW_KEY = re.compile(r'^tally:\{(\d+)\}:(\d+)$')
LATEST_KEY = re.compile(r'^tally:\{(\d+)\}:latest$')
SERIES_FIELD = re.compile(r'^(\d+):(count|sum|min|max|last|sketch|rate)$')
# A distinct series' registers (Redis HLL string): tally:{device}:<window>:hll:<metric>.
HLL_KEY = re.compile(r'^tally:\{(\d+)\}:(\d+):hll:(\d+)$')
# Schema v2 bookkeeping inside a window key (merge mode): time of `last`, partials applied.
TS_FIELD = re.compile(r'^(\d+):ts$')
APPLIED_FIELD = re.compile(r'^_applied:(.+)$')


class Skip(Exception):
    """The test cannot run here (exit 77)."""


class Failure(Exception):
    """A check failed."""


class Interrupted(BaseException):
    """SIGTERM/SIGINT reached the test: clean up and fail."""


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def check_eq(actual, expected, what):
    if actual != expected:
        raise Failure('%s: expected %r, got %r' % (what, expected, actual))


def log(msg):
    print('# [%7.2fs] %s' % (time.monotonic() - _T0, msg), flush=True)


_T0 = time.monotonic()


# ---------------------------------------------------------------------------------------------
# Redis


class RedisError(Exception):
    pass


class Resp:
    """A minimal RESP2 client: commands, pipelines, the replies tally's schema needs."""

    def __init__(self, host, port, timeout=5.0, password=None):
        """password: AUTH with it on every (re)connect."""
        self.addr = (host, port)
        self.timeout = timeout
        self.password = password
        self.sock = None
        self.rfile = None

    def _connect(self):
        if self.sock is None:
            self.sock = socket.create_connection(self.addr, self.timeout)
            self.rfile = self.sock.makefile('rb')
            if self.password is not None:
                self.sock.sendall(self._encode(['AUTH', self.password]))
                reply = self._read()
                if isinstance(reply, RedisError):
                    self.close()
                    raise reply

    def close(self):
        if self.sock is not None:
            self.rfile.close()
            self.sock.close()
            self.sock = self.rfile = None

    @staticmethod
    def _encode(args):
        out = bytearray(b'*%d\r\n' % len(args))
        for a in args:
            b = a if isinstance(a, bytes) else str(a).encode()
            out += b'$%d\r\n%s\r\n' % (len(b), b)
        return out

    def _read(self):
        line = self.rfile.readline()
        if not line.endswith(b'\r\n'):
            raise ConnectionError('redis closed the connection')
        kind, rest = line[:1], line[1:-2]
        if kind == b'+':
            return rest.decode()
        if kind == b'-':
            return RedisError(rest.decode())
        if kind == b':':
            return int(rest)
        if kind == b'$':
            n = int(rest)
            if n < 0:
                return None
            data = self.rfile.read(n + 2)
            if len(data) != n + 2:
                raise ConnectionError('redis closed the connection')
            return data[:-2].decode('utf-8', 'surrogateescape')
        if kind == b'*':
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise ConnectionError('bad RESP reply %r' % line)

    def pipeline(self, cmds, chunk=1000):
        """Send commands in chunks, one round trip each; raise on the first error reply."""
        replies = []
        try:
            self._connect()
            for i in range(0, len(cmds), chunk):
                part = cmds[i:i + chunk]
                self.sock.sendall(b''.join(self._encode(c) for c in part))
                replies.extend(self._read() for _ in part)
        except (OSError, ConnectionError):
            self.close()
            raise
        for r in replies:
            if isinstance(r, RedisError):
                raise r
        return replies

    def call(self, *args):
        return self.pipeline([args])[0]

    def hgetall(self, key):
        flat = self.call('HGETALL', key)
        return dict(zip(flat[0::2], flat[1::2]))

    def scan(self, pattern='*'):
        keys, cursor = set(), '0'
        while True:
            cursor, part = self.call('SCAN', cursor, 'MATCH', pattern, 'COUNT', 1000)
            keys.update(part)
            if cursor == '0':
                return sorted(keys)


class Redis:
    """A private redis-server on a free loopback port, child of the test (not daemonized)."""

    def __init__(self, ctx, port=None, extra=(), password=None):
        """port: this one (e.g. a restart after an outage; one try), else a free one.
        extra: more redis-server arguments; they win over the defaults (e.g. --appendonly).
        password: started with --requirepass, and the client authenticates."""
        exe = shutil.which('redis-server')
        if exe is None:
            raise Skip('redis-server not found')
        self.ctx = ctx
        self.password = password
        self.extra = list(extra) + (['--requirepass', password] if password else [])
        for attempt in range(5 if port is None else 1):
            self.port = free_port() if port is None else port
            ctx.nredis += 1
            tag = '%d' % self.port if port is None else '%d-%d' % (self.port, ctx.nredis)
            logpath = os.path.join(ctx.tmp, 'redis-%s.log' % tag)
            self.logfile = open(logpath, 'wb')
            self.proc = ctx.spawn([exe, '--port', str(self.port), '--bind', '127.0.0.1',
                                   '--save', '', '--appendonly', 'no', '--dir', ctx.tmp]
                                  + self.extra, stdout=self.logfile, name='redis-server')
            ctx.logs.append(('redis-server :%s' % tag, logpath))
            self.client = Resp('127.0.0.1', self.port, password=password)
            if self._wait_ready():
                self.addr = '127.0.0.1:%d' % self.port
                log('redis-server pid %d on %s' % (self.proc.pid, self.addr))
                return
            ctx.reap(self.proc)  # lost the port race: another process took it
        raise Failure('cannot start redis-server')

    def _wait_ready(self, timeout=10.0):
        """PING answered by *our* server: a foreign one on a raced port must not count."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                info = self.client.call('INFO', 'server')
                m = re.search(r'process_id:(\d+)', info)
                if m and int(m.group(1)) == self.proc.pid:
                    return self.client.call('PING') == 'PONG'
                if m:
                    self.client.close()
                    return False
            except (OSError, ConnectionError, RedisError):
                pass
            time.sleep(0.05)
        return False

    def flushall(self):
        self.client.call('FLUSHALL')

    def signal(self, sig):
        """Send sig (SIGKILL: an outage, SIGSTOP/SIGCONT: a hung server); waits for a kill."""
        log('redis-server pid %d: %s' % (self.proc.pid, signal.Signals(sig).name))
        self.client.close()
        self.proc.send_signal(sig)
        if sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):
            self.proc.wait(10)

    def restart(self, extra=None):
        """A new redis-server on the same port (after signal(SIGKILL)); same extra arguments
        unless given. Returns the new Redis."""
        if self.proc.poll() is None:
            self.signal(signal.SIGKILL)
        return Redis(self.ctx, port=self.port, extra=self.extra if extra is None else extra)

    def self_stats(self):
        """tally:self as {name: int} (empty before the first write)."""
        return {k: int(v) for k, v in self.client.hgetall('tally:self').items()}


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------
# tally


def lcores_arg(workers):
    """EAL lcore list for one control lcore and `workers` workers, over the CPUs we may use.

    With fewer CPUs than lcores the extra workers share CPUs (round robin, the control lcore
    doubles up first since it sleeps when idle); fine for functional tests."""
    cpus = sorted(os.sched_getaffinity(0))
    n = workers + 1
    if len(cpus) >= n:
        return ['-l', ','.join(str(c) for c in cpus[:n])]
    return ['--lcores', ','.join('%d@%d' % (i, cpus[i % len(cpus)]) for i in range(n))]


class Tally:
    """One tally process; stdout+stderr go to a log file shown when the test fails."""

    def __init__(self, ctx, vdevs, app_args, workers=1, redis=None, name='tally'):
        self.ctx = ctx
        self.redis = redis
        ctx.ntally += 1
        self.prefix = 'tally_it_%d_%d' % (os.getpid(), ctx.ntally)
        self.logpath = os.path.join(ctx.tmp, '%s-%d.log' % (name, ctx.ntally))
        argv = [ctx.args.tally] + lcores_arg(workers)
        argv += ['--no-huge', '-m', '512', '--file-prefix', self.prefix, '--no-pci']
        for v in vdevs:
            argv += ['--vdev', v]
        argv += ['--'] + list(app_args)
        self.argv = argv
        self.logfile = open(self.logpath, 'wb')
        log('start: ' + ' '.join(argv))
        self.proc = ctx.spawn(argv, stdout=self.logfile, name=name)
        ctx.logs.append(('%s #%d' % (name, ctx.ntally), self.logpath))
        ctx.dpdk_dirs.append(os.path.join(DPDK_RUNTIME, self.prefix))

    @property
    def runtime_dir(self):
        return os.path.join(DPDK_RUNTIME, self.prefix)

    def log_text(self):
        with open(self.logpath, 'rb') as f:
            return f.read().decode(errors='replace')

    def stats(self):
        return self.redis.self_stats()

    def _wait(self, read, source, pred, timeout, what):
        """Poll read() until pred holds on it; fail early if tally exits."""
        deadline = time.monotonic() + timeout
        st = {}
        while True:
            rc = self.proc.poll()
            if rc is not None:
                raise Failure('tally exited (rc %d) while waiting for %s' % (rc, what))
            st = read() or {}
            if st and pred(st):
                return st
            if time.monotonic() > deadline:
                raise Failure('timed out after %.0fs waiting for %s; last %s: %s'
                              % (timeout, what, source, fmt_stats(st)))
            time.sleep(0.05)

    def wait_stats(self, pred, timeout=20.0, what='tally:self condition'):
        """Poll tally:self until pred(stats) holds; fail early if tally exits."""
        return self._wait(self.stats, 'tally:self', pred, timeout, what)

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Signal tally and require exit status 0 within timeout; returns seconds taken."""
        t = time.monotonic()
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise Failure('tally did not exit within %.0fs of %s' % (timeout, sig.name))
        took = time.monotonic() - t
        log('tally exited rc %d %.2fs after %s' % (rc, took, sig.name))
        check_eq(rc, 0, 'tally exit status after %s' % sig.name)
        return took

    def wait_telemetry(self, pred, timeout=20.0, what='telemetry condition'):
        """Poll this process's own counters (/tally/stats, ':' read as '_') until pred holds;
        they answer while Redis is down. Fails early if tally exits."""
        return self._wait(lambda: self.telemetry('/tally/stats'), 'telemetry', pred, timeout,
                          what)

    def rss_kb(self):
        """VmRSS of the process (kB), None once it has gone."""
        return rss_kb(self.proc.pid)

    def telemetry(self, cmd):
        """One command on DPDK's telemetry socket (dict), or None if unavailable."""
        path = os.path.join(self.runtime_dir, 'dpdk_telemetry.v2')
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
                s.settimeout(2.0)
                s.connect(path)
                s.recv(16384)  # the greeting
                s.send(cmd.encode())
                return json.loads(s.recv(1 << 20).decode()).get(cmd.split(',')[0])
        except (OSError, ValueError):
            return None


def all_aggregated(datagrams, records, workers):
    """Predicate on tally:self: every datagram counted where it arrived, every record
    aggregated by some worker, every forwarded record received by its owner."""
    def done(s):
        return (s.get('datagrams') == datagrams and s.get('workers') == workers and
                sum(per_worker(s, 'records')) == records and
                sum(per_worker(s, 'received')) == sum(per_worker(s, 'forwarded')))
    return done


def wait_all_aggregated(tally, datagrams, records, workers):
    """Wait until all_aggregated() holds, then check that no counter moves any more;
    returns that settled tally:self."""
    done = all_aggregated(datagrams, records, workers)
    tally.wait_stats(done, timeout=20, what='datagrams=%d, %d records aggregated, every '
                     'forwarded record received' % (datagrams, records))
    time.sleep(0.3)  # a few more stats writes: no counter may move any more
    st = tally.stats()
    check(done(st), 'counters moved after all was counted: ' + fmt_stats(st))
    return st


def fmt_stats(st):
    return ' '.join('%s=%s' % kv for kv in sorted(st.items()))


def per_worker(st, field):
    """[w0:field, w1:field, ...] of a tally:self snapshot; fails if one is missing."""
    n = st.get('workers', 0)
    names = ['w%d:%s' % (i, field) for i in range(n)]
    missing = [k for k in names if k not in st]
    check(n > 0 and not missing, 'tally:self lacks per-worker fields %s (workers=%r)'
          % (missing, n))
    return [st[k] for k in names]


def wait_window_margin(window_ms, margin_ms):
    """Sleep into the next wall-clock window if fewer than margin_ms are left of this one;
    returns the start (ms) of the window a run started now will be in."""
    left = window_ms - int(time.time() * 1000) % window_ms
    if left < margin_ms:
        log('waiting %d ms for the next %d ms window' % (left + 50, window_ms))
        time.sleep((left + 50) / 1000)
    return int(time.time() * 1000) // window_ms * window_ms


def rss_kb(pid):
    """VmRSS of a process (kB), or None if it has gone."""
    try:
        with open('/proc/%d/status' % pid) as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def wait_until(pred, timeout, what, interval=0.05):
    """Poll pred() until it returns something true (returned); fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise Failure('timed out after %.0fs waiting for %s' % (timeout, what))
        time.sleep(interval)


def count_lines(path):
    with open(path) as f:
        return sum(1 for _ in f)


# ---------------------------------------------------------------------------------------------
# Tools


def run_tool(argv, timeout=60.0, ok=(0,), netns=None):
    """Run a command to completion; returns (rc, stdout, stderr); fails on an unexpected rc."""
    if netns is not None:
        argv = ['ip', 'netns', 'exec', netns] + list(argv)
    log('run: ' + ' '.join(argv))
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    out, err = p.stdout.decode(errors='replace'), p.stderr.decode(errors='replace')
    if ok is not None and p.returncode not in ok:
        raise Failure('%s exited %d\nstdout:\n%s\nstderr:\n%s'
                      % (argv[0], p.returncode, out, err))
    return p.returncode, out, err


def parse_kv(text):
    """key=value lines (tally-gen's summary) as {key: int or str}."""
    kv = {}
    for line in text.splitlines():
        if '=' in line:
            k, v = line.split('=', 1)
            kv[k.strip()] = int(v) if re.fullmatch(r'-?\d+', v.strip()) else v.strip()
    return kv


def gen_capture(ctx, name, datagrams, devices=300, base=1, seed=1, records=8):
    """A pcap of tally-gen with its totals file: (pcap path, totals path, summary)."""
    pcap = os.path.join(ctx.tmp, name + '.pcap')
    totals = os.path.join(ctx.tmp, name + '.totals')
    g = tally_gen(ctx, ['--pcap', pcap, '--datagrams', str(datagrams), '--records',
                        str(records), '--devices', str(devices), '--device-base', str(base),
                        '--seed', str(seed), '--totals', totals])
    return pcap, totals, g


def tally_gen(ctx, args, netns=None, timeout=60.0):
    """Run tally-gen with args; returns its key=value summary."""
    _, out, _ = run_tool([ctx.args.tally_gen] + list(args), timeout=timeout, netns=netns)
    summary = parse_kv(out)
    check('valid_datagrams' in summary, 'tally-gen printed no summary:\n' + out)
    return summary


def query_totals(ctx, redis):
    _, out, _ = run_tool([ctx.args.tally_query, '--redis', redis.addr, 'totals'])
    return out


def _num(text):
    return None if text == '-' else float(text)


def read_totals(path):
    """tally-gen --totals as {(device, metric): (count, sum, min, max)}; None for '-' (a
    distinct series has a count only)."""
    out = {}
    with open(path) as f:
        for line in f:
            d, m, c, s, mn, mx = line.split()
            out[(int(d), int(m))] = (int(c), _num(s), _num(mn), _num(mx))
    return out


def _fmt(v):
    return '-' if v is None else '%.17g' % v


def format_totals(acc):
    """{(device, metric): (count, sum, min, max)} in tally-gen's --totals format."""
    return ''.join('%d %d %d %s %s %s\n' % (k[0], k[1], v[0], _fmt(v[1]), _fmt(v[2]), _fmt(v[3]))
                   for k, v in sorted(acc.items()))


def fold_series(acc, key, count, total, mn, mx):
    """Add one series' (count, sum, min, max) into acc[key] (counts and sums add; None, a
    field the series' kind does not have, stays None)."""
    if key in acc:
        c0, s0, mn0, mx0 = acc[key]
        acc[key] = (c0 + count, None if s0 is None else s0 + total,
                    None if mn0 is None else min(mn0, mn), None if mx0 is None else max(mx0, mx))
    else:
        acc[key] = (count, total, mn, mx)


def combine_totals(*paths):
    """Per-series totals of several tally-gen runs, in tally-gen's --totals format."""
    acc = {}
    for p in paths:
        for k, v in read_totals(p).items():
            fold_series(acc, k, *v)
    return format_totals(acc)


def compare_totals_text(expected, actual_text, what='totals', label='expected'):
    """tally-query totals must equal the expected text byte for byte."""
    if expected == actual_text:
        return
    exp, act = expected.splitlines(), actual_text.splitlines()
    diff = list(difflib.unified_diff(exp, act, label, 'tally-query totals', lineterm='', n=0))
    raise Failure('%s differ (%d expected lines, %d in Redis):\n%s'
                  % (what, len(exp), len(act), '\n'.join(diff[:40])))


def compare_totals(expected_path, actual_text):
    """tally-query totals must equal tally-gen --totals byte for byte."""
    with open(expected_path) as f:
        compare_totals_text(f.read(), actual_text, label='tally-gen --totals')


def check_self(st, gen, what='tally:self'):
    """tally:self against a tally-gen summary: every datagram, record and reject counted."""
    missing = [f for f in SELF_FIELDS if f not in st]
    check(not missing, '%s lacks fields %s' % (what, missing))
    check_eq(st['datagrams'], gen['valid_datagrams'], what + ' datagrams')
    check_eq(st['records'], gen['records'], what + ' records')
    check_eq(st['malformed'], gen.get('malformed', 0), what + ' malformed')
    for r in MALFORMED_REASONS:
        check_eq(st.get('malformed:' + r), gen.get('malformed:' + r, 0),
                 '%s malformed:%s' % (what, r))
    check_eq(st['table_full'], 0, what + ' table_full')
    check_eq(st['redis_errors'], 0, what + ' redis_errors')


def check_schema(redis, retention_s, window_ms, merge=True):
    """Keys and fields of schema v2; returns {device: [window starts]}."""
    keys = redis.client.scan('tally:*')
    windows, latest, other = {}, set(), []
    for k in keys:
        m = WINDOW_KEY.match(k)
        if m:
            windows.setdefault(int(m.group(1)), []).append(int(m.group(2)))
        elif LATEST_KEY.match(k):
            latest.add(int(LATEST_KEY.match(k).group(1)))
        elif HLL_KEY.match(k):
            pass
        elif k not in ('tally:self', 'tally:top', 'tally:top:window', 'tally:refused',
                       'tally:catalog'):
            other.append(k)
    check(not other, 'keys outside schema v2: %s' % other[:10])
    if 'tally:top' in keys:
        # The heaviest devices of the last window: every member is a device with a window key.
        top = redis.client.call('ZRANGE', 'tally:top', '0', '-1')
        check(all(int(d) in windows for d in top), 'tally:top members are devices')
    check(windows, 'no window keys in Redis')
    check_eq(sorted(latest), sorted(windows), 'devices with a latest key')

    names = sorted('tally:{%d}:%d' % (d, w) for d, ws in windows.items() for w in ws)
    names += sorted('tally:{%d}:latest' % d for d in latest)
    ttls = redis.client.pipeline([('TTL', k) for k in names])
    bad = [(k, t) for k, t in zip(names, ttls) if not 0 < t <= retention_s]
    check(not bad, '%d keys with TTL outside (0, %d], e.g. %s' % (len(bad), retention_s, bad[:5]))

    for d, ws in windows.items():
        for w in ws:
            check(w % window_ms == 0, 'window %d of device %d is not aligned to %d ms'
                  % (w, d, window_ms))
    # latest is a string naming the newest window (no second copy of its fields)
    newest = redis.client.pipeline([('GET', 'tally:{%d}:latest' % d) for d in sorted(latest)])
    for d, v in zip(sorted(latest), newest):
        check_eq(int(v), max(windows[d]), 'tally:{%d}:latest' % d)
    sample = [k for k in sorted(names) if not k.endswith(':latest')][:50]
    for k, flat in zip(sample, redis.client.pipeline([('HGETALL', k) for k in sample])):
        h = dict(zip(flat[0::2], flat[1::2]))
        bad = [f for f in h if not SERIES_FIELD.match(f)
               and not (merge and (TS_FIELD.match(f) or APPLIED_FIELD.match(f)))]
        check(not bad, '%s has unexpected fields %s' % (k, bad[:5]))
        if merge:
            check(any(APPLIED_FIELD.match(f) for f in h), '%s: no partial applied' % k)
            for f in h:
                m = SERIES_FIELD.match(f)
                if m and m.group(2) == 'last':
                    check(re.match(r'^\d{20}$', h.get(m.group(1) + ':ts', '')),
                          '%s: %s without a 20-digit time' % (k, f))
    return windows


# ---------------------------------------------------------------------------------------------
# Spool segments (--spool-dir): records of a 32-byte header, the partial id, 64-byte series


SPOOL_MAGIC = 0x31505354  # 'TSP1'
SPOOL_HDR = struct.Struct('<IIQIIHHI')
SPOOL_SERIES = struct.Struct('<QIB3xQdddd Q'.replace(' ', ''))
_CRC32C = []


def crc32c(data, crc=0):
    """CRC-32C (Castagnoli), as the spool's checksums."""
    if not _CRC32C:
        for n in range(256):
            c = n
            for _ in range(8):
                c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
            _CRC32C.append(c)
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = _CRC32C[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def v1_reason(p):
    """The wire v1 reason a payload fails with, or None (checks in the README's order)."""
    if len(p) < 32:
        return 'short'
    if p[:2] != b'TY':
        return 'magic'
    if p[2] != 1:
        return 'version'
    if p[3] != 0:
        return 'flags'
    count, reserved = struct.unpack_from('<HH', p, 4)
    if reserved:
        return 'reserved'
    if count == 0:
        return 'count'
    if len(p) != 32 + 16 * count:
        return 'length'
    for i in range(count):
        r = p[32 + 16 * i:48 + 16 * i]
        if r[4] < 1 or r[4] > 3:
            return 'kind'
        if r[5:8] != b'\0\0\0':
            return 'reserved'
        if (struct.unpack_from('<Q', r, 8)[0] >> 52) & 0x7ff == 0x7ff:
            return 'value'
    return None


def read_pcapng(path, sections=1):
    """(frame, comment) of every enhanced packet block of a dead-letter capture; checks the
    block structure, one interface per section (each run of tally a section), Ethernet, a
    snapshot length that holds any datagram, and every frame captured whole."""
    d = open(path, 'rb').read()
    check_eq(struct.unpack_from('<I', d, 0)[0], 0x0A0D0D0A, 'pcapng section header')
    check_eq(struct.unpack_from('<I', d, 8)[0], 0x1A2B3C4D, 'pcapng byte-order magic')
    off, out, idb, shb = 0, [], 0, 0
    while off < len(d):
        bt, bl = struct.unpack_from('<II', d, off)
        check(bl % 4 == 0 and off + bl <= len(d), 'pcapng block length %d' % bl)
        check_eq(struct.unpack_from('<I', d, off + bl - 4)[0], bl, 'trailing block length')
        if bt == 0x0A0D0D0A:
            shb += 1
        elif bt == 1:
            idb += 1
            check_eq(struct.unpack_from('<H', d, off + 8)[0], 1, 'linktype Ethernet')
            snap = struct.unpack_from('<I', d, off + 12)[0]
            check(snap == 0 or snap >= 65535 + 58, 'dead-letter snaplen %d' % snap)
        elif bt == 6:
            cap, orig = struct.unpack_from('<II', d, off + 20)
            check_eq(cap, orig, 'dead-letter frame of %d bytes captured whole' % orig)
            frame = d[off + 28:off + 28 + cap]
            o, comment = off + 28 + ((cap + 3) & ~3), None
            while True:
                code, ln = struct.unpack_from('<HH', d, o)
                if code == 0:
                    break
                if code == 1:
                    comment = d[o + 4:o + 4 + ln].decode()
                o += 4 + ((ln + 3) & ~3)
            out.append((frame, comment))
        off += bl
    check_eq((shb, idb), (sections, sections), 'section headers, interface descriptions')
    return out


def spool_segments(spool_dir):
    """Paths of the segment files in a spool directory, oldest first."""
    try:
        names = os.listdir(spool_dir)
    except FileNotFoundError:
        return []
    return [os.path.join(spool_dir, n) for n in sorted(names)
            if re.fullmatch(r'spool-\d+\.tsp', n)]


def read_spool_segment(path):
    """The records of one segment, checking magic, lengths and both CRCs: a list of dicts
    (offset, length, window, id, series: [(device, metric, kind, count, sum, min, max)])."""
    with open(path, 'rb') as f:
        data = f.read()
    off, recs = 0, []
    while off < len(data):
        check(len(data) - off >= SPOOL_HDR.size, '%s: torn header at %d' % (path, off))
        magic, plen, window, nseries, pcrc, id_len, flags, hcrc = \
            SPOOL_HDR.unpack_from(data, off)
        check_eq(magic, SPOOL_MAGIC, '%s @%d: record magic' % (path, off))
        check_eq(hcrc, crc32c(data[off:off + 28]), '%s @%d: header CRC' % (path, off))
        fixed = id_len + nseries * SPOOL_SERIES.size
        check(plen == fixed if not flags & 1 else plen >= fixed, '%s @%d: payload length %d'
              ' for %d series' % (path, off, plen, nseries))
        payload = data[off + SPOOL_HDR.size:off + SPOOL_HDR.size + plen]
        check_eq(len(payload), plen, '%s @%d: payload present' % (path, off))
        check_eq(pcrc, crc32c(payload), '%s @%d: payload CRC' % (path, off))
        series, side, at = [], [], fixed
        for i in range(nseries):
            dev, met, kind, cnt, sm, mn, mx, _last, last_ns = \
                SPOOL_SERIES.unpack_from(payload, id_len + i * SPOOL_SERIES.size)
            if kind == 4:
                sm = mn = mx = None  # a distinct series: a count and its registers
            series.append((dev, met, kind, cnt, sm, mn, mx))
            # a histogram's sketch, a distinct series' HLL follow the series, in order
            blob = b''
            if flags & 1 and kind in (3, 4):
                blob, at = payload[at:at + last_ns], at + last_ns
            side.append(blob)
        check_eq(at, plen, '%s @%d: side state length' % (path, off))
        recs.append({'path': path, 'offset': off, 'length': SPOOL_HDR.size + plen,
                     'window': window, 'id': payload[:id_len].decode(), 'series': series,
                     'side': side, 'series_offset': off + SPOOL_HDR.size + id_len})
        off += SPOOL_HDR.size + plen
    return recs


def read_spool(spool_dir):
    """Every record of every segment of a spool directory, in replay order."""
    return [r for p in spool_segments(spool_dir) for r in read_spool_segment(p)]


def spool_totals(records):
    """What replaying these records adds to Redis, in tally-gen's --totals format."""
    acc = {}
    for r in records:
        for dev, met, _kind, cnt, sm, mn, mx in r['series']:
            fold_series(acc, (dev, met), cnt, sm, mn, mx)
    return format_totals(acc)


# ---------------------------------------------------------------------------------------------
# Context, cleanup and the entry point


class Context:
    def __init__(self, args):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix='tally-it-')
        self.procs = []       # (name, Popen) to kill at cleanup
        self.undo = []        # callables, run last-in first-out at cleanup
        self.logs = []        # (title, path) printed on failure
        self.dpdk_dirs = []   # EAL runtime directories to remove
        self.ntally = 0
        self.nredis = 0
        self.failed = False

    def spawn(self, argv, stdout, name):
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout,
                             stderr=subprocess.STDOUT)
        self.procs.append((name, p))
        return p

    def reap(self, proc, sig=signal.SIGKILL):
        if proc.poll() is None:
            try:
                proc.send_signal(sig)
                proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait()

    def redis(self, port=None, extra=()):
        return Redis(self, port=port, extra=extra)

    def tally(self, *a, **kw):
        return Tally(self, *a, **kw)

    def dump_logs(self):
        for title, path in self.logs:
            try:
                with open(path, 'rb') as f:
                    text = f.read().decode(errors='replace')
            except OSError:
                continue
            lines = text.splitlines()
            if title.startswith('redis'):
                lines = lines[-15:]
            print('----- log of %s (%s) -----' % (title, path))
            print('\n'.join(lines[-200:]))
        sys.stdout.flush()

    def cleanup(self):
        # Processes first: tally holds the interfaces and the runtime directory.
        for name, p in reversed(self.procs):
            if p.poll() is None:
                log('cleanup: killing %s pid %d' % (name, p.pid))
                self.reap(p)
        for fn in reversed(self.undo):
            try:
                fn()
            except Exception as e:  # keep undoing the rest
                print('# cleanup step failed: %s' % e)
        for d in self.dpdk_dirs:
            shutil.rmtree(d, ignore_errors=True)
        if self.failed and os.environ.get('TALLY_IT_KEEP'):
            print('# kept %s' % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def _on_signal(signum, frame):
    raise Interrupted(signal.Signals(signum).name)


def remove_stale_runtime_dirs():
    """EAL runtime dirs of earlier test processes that were killed before cleaning up."""
    try:
        names = os.listdir(DPDK_RUNTIME)
    except OSError:
        return
    for n in names:
        m = re.fullmatch(r'tally_it_(\d+)_\d+', n)
        if m and not os.path.exists('/proc/%s' % m.group(1)):
            shutil.rmtree(os.path.join(DPDK_RUNTIME, n), ignore_errors=True)


def parse_args(extra=None):
    ap = argparse.ArgumentParser()
    ap.add_argument('--tally', default=os.environ.get('TALLY'))
    ap.add_argument('--tally-gen', default=os.environ.get('TALLY_GEN'))
    ap.add_argument('--tally-query', default=os.environ.get('TALLY_QUERY'))
    if extra is not None:
        extra(ap)
    args = ap.parse_args()
    for name in ('tally', 'tally_gen', 'tally_query'):
        path = getattr(args, name)
        if not path or not os.access(path, os.X_OK):
            ap.error('--%s (or $%s): executable not found: %r'
                     % (name.replace('_', '-'), name.upper(), path))
    return args


def main(body, extra_args=None):
    """Run body(ctx) with cleanup on every path; exit 0 / 1 / 77."""
    args = parse_args(extra_args)
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, _on_signal)
    remove_stale_runtime_dirs()
    ctx = Context(args)
    rc = 1
    try:
        body(ctx)
        rc = 0
        log('PASS')
    except Skip as e:
        rc = SKIP
        log('SKIP: %s' % e)
    except Interrupted as e:
        ctx.failed = True
        log('interrupted by %s: cleaning up' % e)
        ctx.dump_logs()
    except Exception:
        ctx.failed = True
        print('FAIL:', file=sys.stdout)
        traceback.print_exc(file=sys.stdout)
        ctx.dump_logs()
    finally:
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        ctx.cleanup()
    sys.exit(rc)
