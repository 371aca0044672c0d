#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""tally and tally-query on a Redis Cluster (rcluster.Cluster: real redis-server nodes).

--case cluster_query     tally-query alone: a data set the test writes into a 3-master cluster
                         and into a single Redis reads back the same (every command, tables and
                         JSON), from any node, with a slot half-migrated (ASK) and with a stale
                         slot map (MOVED); --redis-cluster yes/no/auto and their errors.
--case cluster_replay    a net_pcap replay (20,000 datagrams, 2,000 devices) into 3 masters,
                         tally given one node that does not own tally:self: totals exact, every
                         master holds window keys, each key on its slot's master, no errors;
                         the --catalog in tally:catalog, its transaction on that key's master.
--case cluster_two       two instances (east, west; overlapping devices) in one window: totals
                         are the sum of both captures, shared windows carry both partials; the
                         same with devices of 300 metrics: one RESTORE per device and writer,
                         one HGETALL per shared device.
--case cluster_reshard   slots holding tally's keys migrate while a kernel sender streams (one
                         left half-migrated for 3 s: ASK, TRYAGAIN): totals exact, none lost.
--case cluster_failover  3 masters + 3 replicas, a master SIGKILLed mid-stream and replaced by
                         its replica: totals exact, or a loss measured and limited to writes the
                         dead master acknowledged but its replica had not received.
--case cluster_auth      requirepass on every node: totals exact with --redis-password-file; a
                         wrong password is one line and a non-zero exit, for tally and
                         tally-query.
The streaming cases need root and network namespaces (exit 77 otherwise).
"""

import json
import os
import time

import rcluster
import stream
import tallytest as tt

RETENTION_S = 600
# The metric catalog of the replay (the kinds tally-gen sends by default), and tally:catalog.
CATALOG = ('[metrics]\n1 = requests count counter\n2 = cpu.temp celsius gauge\n'
           '3 = latency.ms ms histogram\n')
CATALOG_HASH = {'1': 'requests count counter', '2': 'cpu.temp celsius gauge',
                '3': 'latency.ms ms histogram'}


# ---------------------------------------------------------------------------------------------
# Cluster plumbing: slots, a client that routes by key, tally-query on a node


def crc16(data):
    """CRC16/XMODEM, the hash of Redis Cluster."""
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021 if crc & 0x8000 else crc << 1) & 0xFFFF
    return crc


def key_slot(key):
    """The slot of a key: its hash tag ({...}, when not empty) or else the whole key."""
    b = key.encode()
    i = b.find(b'{')
    if i >= 0:
        j = b.find(b'}', i + 1)
        if j > i + 1:
            b = b[i + 1:j]
    return crc16(b) % 16384


def device_slot(device):
    return key_slot('tally:{%d}:latest' % device)


class RoutedResp:
    """The tests' client on a cluster: each command goes to the master of its key (args[1]),
    SCAN covers every master. A MOVED (or a node gone) reloads the slot map and retries."""

    def __init__(self, cluster):
        self.c = cluster
        self.ranges = []

    def _load(self):
        self.ranges = self.c._slot_ranges(self.c.live()[0])

    def port_of(self, key):
        if not self.ranges:
            self._load()
        slot = key_slot(key)
        for start, end, port in self.ranges:
            if start <= slot <= end:
                return port
        raise tt.Failure('no master serves slot %d (key %s)' % (slot, key))

    def pipeline(self, cmds, chunk=1000):
        for attempt in range(3):
            try:
                groups = {}
                for i, cmd in enumerate(cmds):
                    groups.setdefault(self.port_of(cmd[1]), []).append(i)
                replies = [None] * len(cmds)
                for port, idx in groups.items():
                    for i, r in zip(idx, self.c.client(port).pipeline([cmds[i] for i in idx],
                                                                       chunk)):
                        replies[i] = r
                return replies
            except tt.RedisError as e:
                if not str(e).startswith(('MOVED', 'ASK', 'TRYAGAIN', 'CLUSTERDOWN')) or \
                        attempt == 2:
                    raise
            except (OSError, ConnectionError):
                if attempt == 2:
                    raise
            time.sleep(0.1)
            self._load()

    def call(self, *args):
        return self.pipeline([args])[0]

    def hgetall(self, key):
        flat = self.call('HGETALL', key)
        return dict(zip(flat[0::2], flat[1::2]))

    def scan(self, pattern='*'):
        return self.c.keys(pattern)


class ClusterRedis:
    """What tallytest expects of a tt.Redis (client, self_stats), over a whole cluster."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.client = RoutedResp(cluster)

    def self_stats(self):
        """tally:self wherever its slot lives; {} while the cluster cannot answer (failover)."""
        try:
            return {k: int(v) for k, v in self.client.hgetall('tally:self').items()}
        except (OSError, ConnectionError, tt.RedisError, tt.Failure):
            self.client.ranges = []
            return {}


def node_addr(port):
    return '127.0.0.1:%d' % port


def query(ctx, port, args, auth=(), ok=(0,)):
    """tally-query --redis on one node; (rc, stdout, stderr)."""
    return tt.run_tool([ctx.args.tally_query, '--redis', node_addr(port)] + list(auth)
                       + list(args), ok=ok)


def cluster_totals(ctx, port, auth=()):
    """tally-query totals in cluster mode (asked for: no fallback to one node can hide)."""
    _, out, err = query(ctx, port, ['--redis-cluster', 'yes', 'totals'], auth)
    tt.check(err == '', 'tally-query totals wrote to stderr: %r' % err)
    return out


def errorstats(cluster, port):
    """errorstat_<CODE> counts of one node: {'MOVED': n, 'ASK': n, ...}."""
    out = {}
    for line in cluster.client(port).call('INFO', 'errorstats').splitlines():
        if line.startswith('errorstat_'):
            name, rest = line[len('errorstat_'):].split(':', 1)
            out[name] = int(rest.split('=', 1)[1])
    return out


def commandstats(cluster, port):
    """cmdstat_<command> calls of one node: {'multi': n, 'hset': n, ...}."""
    out = {}
    for line in cluster.client(port).call('INFO', 'commandstats').splitlines():
        if line.startswith('cmdstat_'):
            name, rest = line[len('cmdstat_'):].split(':', 1)
            out[name] = int(rest.split(',')[0].split('=')[1])
    return out


def repl_offset(cluster, port):
    info = cluster.client(port).call('INFO', 'replication')
    for line in info.splitlines():
        if line.startswith(('master_repl_offset:', 'slave_repl_offset:')):
            return int(line.split(':', 1)[1])
    return None


def master_keys(cluster):
    """{master port: [keys]} of every live master."""
    return {p: cluster.client(p).scan('*') for p in cluster.masters()}


def check_keys_home(cluster):
    """Every key lies on the master that owns its slot; returns {port: window keys}."""
    ranges = cluster._slot_ranges(cluster.live()[0])
    home = {}
    for port, keys in master_keys(cluster).items():
        for k in keys:
            s = key_slot(k)
            owner = [p for a, b, p in ranges if a <= s <= b]
            tt.check_eq(owner, [port], 'master of %s (slot %d)' % (k, s))
        home[port] = [k for k in keys if tt.WINDOW_KEY.match(k)]
    return home


def pick_seed(cluster, avoid_key='tally:self'):
    """A master that does not own avoid_key's slot: tally must find the others itself."""
    owner = cluster.slot_owner(key_slot(avoid_key))
    return [p for p in cluster.masters() if p != owner][0]


def cluster_tally(ctx, cluster, seed, vdevs, extra, workers=1, name='tally'):
    return ctx.tally(vdevs, ['--redis', node_addr(seed), '--stats-ms', '100',
                             '--table-series', '65536', '--retention-s', str(RETENTION_S)]
                     + list(extra), workers=workers, redis=ClusterRedis(cluster), name=name)


def log_self(st, what='final tally:self'):
    keep = ('datagrams', 'records', 'windows_flushed', 'redis_commands', 'redis_errors',
            'redis_failures', 'redis_refused', 'redis_redirects', 'redis_masters',
            'window_retries', 'breaker_opens', 'spool_windows', 'spool_replayed',
            'spool_lost_records', 'table_full', 'rx_missed')
    tt.log('%s: %s' % (what, tt.fmt_stats({k: st[k] for k in keep if k in st})))


# ---------------------------------------------------------------------------------------------
# cluster_query: tally-query against data the test writes itself


def dataset(devices=240, windows=(1796223600000, 1796223601000, 1796223602000), metrics=4):
    """Commands writing a schema v2 data set like tally's (merge mode), and its totals in
    tally-gen's --totals format. Integer values keep every sum exact."""
    cmds, acc = [], {}
    for d in range(1, devices + 1):
        for wi, w in enumerate(windows):
            if (d + wi) % 5 == 0:
                continue  # not every device in every window
            fields = ['_applied:test:1:1:%016x' % (d * 7 + wi), '1']
            for m in range(1, metrics + 1):
                count = 1 + (d * 31 + m * 7 + wi) % 50
                mn = (d + m) % 13
                mx = mn + (d * m + wi) % 900
                total = count * mn + (mx - mn)
                last = mn + wi
                fields += ['%d:count' % m, count, '%d:sum' % m, total, '%d:min' % m, mn,
                           '%d:max' % m, mx, '%d:last' % m, last,
                           '%d:ts' % m, '%020d' % (w * 1000000 + d)]
                tt.fold_series(acc, (d, m), count, float(total), float(mn), float(mx))
            cmds.append(['HSET', 'tally:{%d}:%d' % (d, w)] + fields)
            cmds.append(['SET', 'tally:{%d}:latest' % d, w])
    cmds.append(['HSET', 'tally:self', 'datagrams', 20000, 'records', 160000, 'redis_errors',
                 0, 'workers', 1, 'uptime_s', 12])
    cmds.append(['ZADD', 'tally:top'] + [x for d in (3, 17, 42, 99, 120)
                                         for x in (1000 - d, d)])
    cmds.append(['SET', 'tally:top:window', windows[-1]])
    cmds.append(['HSET', 'tally:catalog'] + [x for kv in sorted(CATALOG_HASH.items()) for x in kv])
    # A foreign key with a window key's name: skipped with a warning, in both modes.
    cmds.append(['SET', 'tally:{%d}:%d' % (devices + 1, windows[0]), 'not a hash'])
    cmds.append(['SET', 'unrelated', 'x'])
    return cmds, tt.format_totals(acc)


QUERIES = [
    ['totals'], ['totals', '7'], ['--json', 'totals'], ['--json', 'totals', '12'],
    ['latest', '5'], ['--json', 'latest', '5'], ['latest', '240'],
    ['range', '9', '2'], ['--json', 'range', '9', '3'],
    ['range', '11', '1', '1796223601000'], ['range', '11', '1', '0', '1796223602000'],
    ['self'], ['--json', 'self'], ['top'], ['top', '3'], ['--top', '2', '--json'],
    ['--csv', 'latest', '5'], ['--csv', 'range', '9', '2'], ['--csv', 'top'], ['--csv', 'self'],
    ['--sparkline', 'range', '11', '1', '--from', '2026-12-02T15:00:01Z', '--to', '1796223603000'],
    ['catalog'], ['--json', 'catalog'], ['range', '9', 'cpu.temp'], ['--csv', 'range', '9', '2'],
    ['--json', 'distinct', '--devices', '1-3', '-', 'requests'], ['range', '9', 'nosuch'],
    ['latest', '999999'], ['range', '241', '1'],
]


def run_queries(ctx, port, extra=(), queries=QUERIES):
    """(args, rc, stdout, stderr) of every query."""
    out = []
    for q in queries:
        rc, so, se = query(ctx, port, list(extra) + q, ok=None)
        out.append((q, rc, so, se))
    return out


def compare_runs(want, got, what):
    for (q, rc0, so0, se0), (_, rc1, so1, se1) in zip(want, got):
        tt.check_eq((rc1, so1, se1), (rc0, so0, se0), '%s: tally-query %s' % (what, ' '.join(q)))


def case_query(ctx):
    cmds, totals = dataset()
    single = ctx.redis()
    single.client.pipeline(cmds)
    with rcluster.Cluster(masters=3, ctx=ctx) as c:
        routed = RoutedResp(c)
        routed.pipeline(cmds)
        want = run_queries(ctx, single.port)
        tt.compare_totals_text(totals, want[0][2], 'single-node totals')
        tt.check(all(rc == 0 for q, rc, _, _ in want[:-4]), 'single-node queries: %s'
                 % [(q, rc, se) for q, rc, _, se in want if rc != 0])
        # no HLL of metric 1 (exit 1); a name the catalog does not have (exit 2)
        tt.check_eq([rc for _, rc, _, _ in want[-4:-2]], [1, 2], 'rc of distinct, nosuch')
        tt.check_eq([rc for _, rc, _, _ in want[-2:]], [1, 0], 'rc of a missing device')
        tt.check('skipping tally:{241}:1796223600000: WRONGTYPE' in want[0][3],
                 'the foreign key skipped with a warning: %r' % want[0][3])
        keys = master_keys(c)
        tt.check(all(len(k) > 50 for k in keys.values()), 'keys per master: %s'
                 % {p: len(k) for p, k in keys.items()})

        # 1. The same answers from every node, auto-detected and asked for.
        for port in c.masters():
            compare_runs(want, run_queries(ctx, port), 'cluster via %d (auto)' % port)
        compare_runs(want, run_queries(ctx, c.masters()[0], ['--redis-cluster', 'yes']),
                     'cluster (yes)')

        # 2. A slot half-migrated: the keys already moved are answered with ASK.
        slot = device_slot(9)
        devs = [d for d in range(1, 241) if device_slot(d) == slot]
        src = c.slot_owner(slot)
        dst = [p for p in c.masters() if p != src][0]
        nkeys = c.client(src).call('CLUSTER', 'COUNTKEYSINSLOT', slot)
        ask0 = errorstats(c, src).get('ASK', 0)
        moved = c.begin_migration(slot, dst, keys=nkeys // 2)
        tt.log('slot %d (devices %s): %d of %d keys moved to %d, the rest still on %d'
               % (slot, devs, len(moved), nkeys, dst, src))
        compare_runs(want, run_queries(ctx, c.masters()[1]), 'slot %d half-migrated' % slot)
        asks = errorstats(c, src).get('ASK', 0) - ask0
        tt.check(asks >= 1, 'no ASK from %d while slot %d was half-migrated' % (src, slot))
        tt.log('half-migrated slot: %d ASK redirects followed' % asks)
        c.finish_migration(slot)
        compare_runs(want, run_queries(ctx, c.masters()[2]), 'after the migration')

        # 3. A stale slot map: the node tally-query asks still names the old owner, which
        #    answers MOVED; tally-query reloads the map and goes to the new owner. Gossip may
        #    correct the stale view before tally-query reads it: a few tries.
        slot = device_slot(5)
        for attempt in range(5):
            src = c.slot_owner(slot)
            dst = [p for p in c.masters() if p != src][0]
            third = [p for p in c.masters() if p not in (src, dst)][0]
            c.migrate_slot(slot, dst)
            c.client(third).call('CLUSTER', 'SETSLOT', slot, 'NODE', c.node_id(src))
            moved0 = errorstats(c, src).get('MOVED', 0)
            got = run_queries(ctx, third, queries=[['latest', '5'], ['totals']])
            compare_runs([want[4], want[0]], got, 'stale map (try %d)' % (attempt + 1))
            moved = errorstats(c, src).get('MOVED', 0) - moved0
            c.wait_ok()
            if moved:
                tt.log('stale map: %d MOVED redirects followed (try %d)' % (moved, attempt + 1))
                break
        tt.check(moved >= 1, 'never got a stale map to follow a MOVED from')

        # 4. --redis-cluster no on a cluster node: the single-node path, MOVED is an error.
        #    tally:catalog lives on a node of its own: without it, names are left out.
        routed.call('DEL', 'tally:catalog')
        port = c.slot_owner(device_slot(1))
        other = [p for p in c.masters() if p != port][0]
        rc, so, se = query(ctx, other, ['--redis-cluster', 'no', 'latest', '1'], ok=None)
        tt.check(rc == 1 and len(se.splitlines()) == 1 and 'MOVED' in se,
                 '--redis-cluster no on a cluster node: rc %d, stderr %r' % (rc, se))
        _, so, _ = query(ctx, port, ['--redis-cluster', 'no', 'latest', '1'])
        tt.check_eq(so, query(ctx, other, ['latest', '1'])[1],
                    '--redis-cluster no on the owner of device 1')

    # 5. --redis-cluster yes on a single Redis, and a bad value: one line each.
    rc, _, se = query(ctx, single.port, ['--redis-cluster', 'yes', 'totals'], ok=None)
    tt.check(rc == 1 and len(se.splitlines()) == 1 and 'cluster support disabled' in se,
             '--redis-cluster yes on a single Redis: rc %d, stderr %r' % (rc, se))
    rc, _, se = query(ctx, single.port, ['--redis-cluster', 'maybe', 'totals'], ok=None)
    tt.check(rc == 2 and se.strip() == "tally-query: --redis-cluster: 'maybe' is not auto, "
             "yes or no", '--redis-cluster maybe: rc %d, stderr %r' % (rc, se))
    compare_runs(want, run_queries(ctx, single.port, ['--redis-cluster', 'no']),
                 'single node with --redis-cluster no')


# ---------------------------------------------------------------------------------------------
# tally into a cluster


def case_replay(ctx):
    datagrams, devices = 20000, 2000
    pcap, totals, gen = tt.gen_capture(ctx, 'replay', datagrams, devices=devices)
    with rcluster.Cluster(masters=3, ctx=ctx) as c:
        seed = pick_seed(c)
        tt.log('tally:self lives on %d; tally is given %d'
               % (c.slot_owner(key_slot('tally:self')), seed))
        cat = os.path.join(ctx.tmp, 'metrics.ini')
        with open(cat, 'w') as f:
            f.write(CATALOG)
        t = cluster_tally(ctx, c, seed, ['net_pcap0,rx_pcap=' + pcap],
                          ['--window-ms', '1000', '--catalog', cat])
        t.wait_telemetry(lambda s: s.get('datagrams') == datagrams, timeout=30,
                         what='datagrams=%d' % datagrams)
        t.stop()
        rd = ClusterRedis(c)
        st = rd.self_stats()
        log_self(st)
        tt.check_self(st, gen)
        tt.compare_totals(totals, cluster_totals(ctx, seed))
        home = check_keys_home(c)
        tt.log('window keys per master: %s' % {p: len(k) for p, k in home.items()})
        for p in c.masters():
            tt.check(c.client(p).call('DBSIZE') > 0, 'DBSIZE of master %d is 0' % p)
            tt.check(home[p], 'master %d holds no window key' % p)
        tt.check_schema(rd, RETENTION_S, 1000)
        _, out, _ = query(ctx, seed, ['--json', 'self'])
        tt.check_eq(json.loads(out).get('datagrams'), datagrams, 'tally-query self datagrams')
        # tally:catalog: on its slot's master, replaced in a transaction there (MULTI and EXEC
        # do not follow tally:top's slot, on another master)
        tt.check_eq(rd.client.hgetall('tally:catalog'), CATALOG_HASH, 'tally:catalog')
        owner = c.slot_owner(key_slot('tally:catalog'))
        tt.check(owner != c.slot_owner(key_slot('tally:top')), 'tally:top on another master')
        tt.check(commandstats(c, owner).get('multi', 0) >= 1,
                 'no MULTI on %d, the master of tally:catalog' % owner)
        _, out, _ = query(ctx, seed, ['--json', 'catalog'])
        tt.check_eq({str(e['metric']): '%s %s %s' % (e['name'], e['unit'] or '-', e['kind'])
                     for e in json.loads(out)}, CATALOG_HASH, 'tally-query catalog')


def case_two(ctx):
    window_ms = 60000
    east, te, ge = tt.gen_capture(ctx, 'east', 6000, devices=1000, base=1, seed=1)
    west, tw, gw = tt.gen_capture(ctx, 'west', 6000, devices=1000, base=501, seed=2)
    with rcluster.Cluster(masters=3, ctx=ctx) as c:
        seeds = c.masters()
        tt.wait_window_margin(window_ms, 15000)
        ts = [cluster_tally(ctx, c, seed, ['net_pcap0,rx_pcap=' + pcap],
                            ['--window-ms', str(window_ms), '--instance', name], name=name)
              for seed, pcap, name in ((seeds[0], east, 'east'), (seeds[1], west, 'west'))]
        for t, g in zip(ts, (ge, gw)):
            t.wait_telemetry(lambda s, n=g['valid_datagrams']: s.get('datagrams') == n,
                             timeout=30, what='datagrams=%d' % g['valid_datagrams'])
        for t in ts:
            t.stop()
        st = ClusterRedis(c).self_stats()
        log_self(st, 'tally:self (the last instance to write it)')
        tt.check_eq(st.get('redis_errors'), 0, 'tally:self redis_errors')
        tt.compare_totals_text(tt.combine_totals(te, tw), cluster_totals(ctx, seeds[2]),
                               'two instances', 'east + west')
        home = check_keys_home(c)
        tt.check_eq(len({k.rsplit(':', 1)[1] for ks in home.values() for k in ks}), 1,
                    'both instances wrote one window')
        shared = [k for ks in home.values() for k in ks
                  if 501 <= int(tt.WINDOW_KEY.match(k).group(1)) <= 1000]
        rd = RoutedResp(c)
        both = 0
        for k, flat in zip(shared, rd.pipeline([('HGETALL', k) for k in shared])):
            ids = {f.split(':')[1] for f in flat[0::2] if tt.APPLIED_FIELD.match(f)}
            both += ids == {'east', 'west'}
        tt.log('%d of %d windows of shared devices hold both partials' % (both, len(shared)))
        tt.check(both > 0, 'no window of a shared device holds both partials')
        two_many_metrics(ctx, c, seeds)


def two_many_metrics(ctx, c, seeds):
    """Two instances, devices of 300 metrics (five chunks), 10 of 20 devices shared: each
    writer's part of a device is one payload, RESTOREd new or read once and folded."""
    window_ms = 60000
    caps = []
    for name, base, seed in (('east-many', 1, 3), ('west-many', 11, 4)):
        pcap = os.path.join(ctx.tmp, name + '.pcap')
        tot = os.path.join(ctx.tmp, name + '.totals')
        tt.tally_gen(ctx, ['--pcap', pcap, '--datagrams', '200', '--records', '300',
                           '--metrics', '300', '--devices', '20', '--device-base', str(base),
                           '--seed', str(seed), '--totals', tot])
        tt.check_eq(len({k[0] for k in tt.read_totals(tot)}), 20, name + ': devices')
        caps.append((name, pcap, tot))
    for p in c.masters():
        c.client(p).call('FLUSHALL')
    tt.wait_window_margin(window_ms, 15000)
    ts = [cluster_tally(ctx, c, seed, ['net_pcap0,rx_pcap=' + pcap],
                        ['--window-ms', str(window_ms), '--instance', name], name=name)
          for seed, (name, pcap, _) in zip(seeds, caps)]
    for t in ts:
        t.wait_telemetry(lambda s: s.get('datagrams') == 200, timeout=30,
                         what='datagrams=200')
    for p in c.masters():
        c.client(p).call('CONFIG', 'RESETSTAT')
    for t in ts:
        t.stop()
    calls = {'restore': 0, 'hgetall': 0}
    for p in c.masters():
        for line in c.client(p).call('INFO', 'commandstats').splitlines():
            name = line.split(':', 1)[0][len('cmdstat_'):]
            if name in calls:
                calls[name] += int(line.split('calls=')[1].split(',')[0])
    tt.check_eq((calls['restore'], calls['hgetall']), (40, 10),
                'devices of 300 metrics: (RESTORE, HGETALL) over the masters')
    tt.compare_totals_text(tt.combine_totals(caps[0][2], caps[1][2]),
                           cluster_totals(ctx, seeds[2]), 'two instances, 300 metrics',
                           'east + west')


# ---------------------------------------------------------------------------------------------
# A kernel sender streaming into tally on a veth (root), as in test_outage.py

RATE = 2000       # datagrams/s; lower it (never the checks) if AF_PACKET drops frames here
STREAM_DEVICES = 300


def stream_tally(ctx, c, afp, iface, spool, extra=()):
    t = cluster_tally(ctx, c, pick_seed(c), ['net_af_packet0,iface=%s,qpairs=1' % iface],
                      ['--ipv4', afp.TALLY_IP, '--window-ms', '1000', '--spool-dir', spool,
                       '--instance', 'cluster'] + list(extra))
    t.wait_telemetry(lambda s: s.get('workers') == 1, timeout=15, what='tally running')
    return t


def finish_stream(ctx, t, c, sender, spool):
    """Sender done, every datagram counted, the spool drained, tally stopped; returns the
    final tally:self and tally-gen's summary."""
    g = stream.finish_sender(sender)
    t.wait_telemetry(lambda s: stream.no_drops(s, RATE) and s['datagrams'] == sender.datagrams, timeout=15,
                     what='datagrams=%d' % sender.datagrams)

    def drained(s):
        return (s['spool_bytes'] == 0 and s['breaker_state'] == 0 and s['sink_queue'] == 0
                and not tt.spool_segments(spool))
    st = t.wait_telemetry(drained, timeout=30, what='the spool and the sink queue drained')
    tt.check_eq(st['table_full'], 0, 'table_full')
    t.stop()
    st = ClusterRedis(c).self_stats()
    log_self(st)
    tt.check_eq(st.get('datagrams'), g['valid_datagrams'], 'tally:self datagrams')
    tt.check_eq(st.get('records'), g['records'], 'tally:self records')
    tt.check_eq(st.get('rx_missed'), 0, 'tally:self rx_missed')
    for f in ('spool_lost_records', 'spool_corrupt', 'spool_dropped', 'redis_refused',
              'redis_refused_lost'):
        tt.check_eq(st.get(f), 0, 'tally:self ' + f)
    return st, g


def tally_slots(c, src):
    """Slots of the streamed devices that master src owns, busiest first (most devices)."""
    by_slot = {}
    for d in range(1, STREAM_DEVICES + 1):
        by_slot.setdefault(device_slot(d), []).append(d)
    mine = [s for s in by_slot if c.slot_owner(s) == src]
    return sorted(mine, key=lambda s: (-len(by_slot[s]), s))


def case_reshard(ctx):
    afp, ns, iface = stream.veth(ctx)
    seconds = 16
    spool = os.path.join(ctx.tmp, 'spool')
    totals = os.path.join(ctx.tmp, 'sent.totals')
    with rcluster.Cluster(masters=3, ctx=ctx) as c:
        t = stream_tally(ctx, c, afp, iface, spool, ['--redis-timeout-ms', '500'])
        sender = stream.start_sender(ctx, afp, ns, totals, RATE, seconds, devices=STREAM_DEVICES)
        a, b, d = c.masters()
        time.sleep(3)
        # Whole slots A -> B, while tally writes to them.
        moved = tally_slots(c, a)[:4]
        for s in moved:
            n = c.client(a).call('CLUSTER', 'COUNTKEYSINSLOT', s)
            c.migrate_slot(s, b)
            tt.log('slot %d (%d keys) now on %d' % (s, n, b))
        time.sleep(2)
        # One slot half-migrated B -> D for 3 s: moved keys answer ASK, mixed ones TRYAGAIN.
        half = tally_slots(c, b)[0]
        n = c.client(b).call('CLUSTER', 'COUNTKEYSINSLOT', half)
        keys = c.begin_migration(half, d, keys=n // 2)
        tt.log('slot %d half-migrated: %d of %d keys on %d' % (half, len(keys), n, d))
        time.sleep(3)
        c.finish_migration(half)
        # And back: two of the first slots B -> A.
        time.sleep(1)
        for s in moved[:2]:
            c.migrate_slot(s, a)
        tt.check(sender.poll() is None, 'the sender ended before the reshard was over')
        st, g = finish_stream(ctx, t, c, sender, spool)
        tt.log('reshard: redis_errors %d, redirects %s, window_retries %d'
               % (st.get('redis_errors', 0), st.get('redis_redirects'),
                  st.get('window_retries', 0)))
        tt.compare_totals(totals, cluster_totals(ctx, c.masters()[0]))
        check_keys_home(c)
        tt.check_schema(ClusterRedis(c), 86400, 1000)


def diff_series(expected_text, actual_text):
    """{(device, metric): (expected, actual)} of the series that differ (None: absent)."""
    def parse(text):
        out = {}
        for line in text.splitlines():
            d, m, cnt, s, mn, mx = line.split()
            out[(int(d), int(m))] = (int(cnt), float(s), float(mn), float(mx))
        return out
    e, a = parse(expected_text), parse(actual_text)
    return {k: (e.get(k), a.get(k)) for k in set(e) | set(a) if e.get(k) != a.get(k)}


def records_per_window(c):
    """{window start: records} over every window key of the cluster (HGETALL of each)."""
    keys = [k for k in c.keys('tally:{*}:*') if tt.WINDOW_KEY.match(k)]
    per = {}
    for k, flat in zip(keys, RoutedResp(c).pipeline([('HGETALL', k) for k in keys])):
        n = sum(int(v) for f, v in zip(flat[0::2], flat[1::2]) if f.endswith(':count'))
        w = int(tt.WINDOW_KEY.match(k).group(2))
        per[w] = per.get(w, 0) + n
    return per


def case_failover(ctx):
    afp, ns, iface = stream.veth(ctx)
    seconds = 20
    spool = os.path.join(ctx.tmp, 'spool')
    totals = os.path.join(ctx.tmp, 'sent.totals')
    with rcluster.Cluster(masters=3, replicas=1, ctx=ctx) as c:
        t = stream_tally(ctx, c, afp, iface, spool, ['--redis-timeout-ms', '500'])
        sender = stream.start_sender(ctx, afp, ns, totals, RATE, seconds, devices=STREAM_DEVICES)
        time.sleep(5)
        # Not tally:self's master, so it stays readable; pick_seed() chose the same node, so
        # tally also loses the node it was given.
        victim = pick_seed(c)
        victim_id = c.node_id(victim)
        replica = [n['port'] for n in c.node_table() if n['master'] == victim_id][0]
        dead_slots = {s for a, b, p in c._slot_ranges(victim) if p == victim
                      for s in range(a, b + 1)}
        lag = repl_offset(c, victim) - repl_offset(c, replica)
        c.kill(victim)
        killed_at = int(time.time() * 1000)
        tt.log('killed master %d (replica %d, %d bytes behind just before)'
               % (victim, replica, lag))
        c.wait_ok(timeout=30)
        tt.log('failover done in %.1f s: masters %s'
               % (time.time() - killed_at / 1000, c.masters()))
        tt.check(replica in c.masters(), 'replica %d promoted' % replica)
        tt.check(sender.poll() is None, 'the sender ended before the failover was over')
        st, g = finish_stream(ctx, t, c, sender, spool)
        got = cluster_totals(ctx, replica)
        with open(totals) as f:
            expected = f.read()
        diff = diff_series(expected, got)
        if not diff:
            tt.log('failover: totals exact, nothing lost')
        else:
            # The documented exception: writes the dead master acknowledged that never reached
            # its replica. Anything else (a surplus, a series of another master) fails.
            lost = sum(e[0] - (a[0] if a else 0) for e, a in diff.values() if e)
            foreign = [k for k in diff if device_slot(k[0]) not in dead_slots]
            surplus = [k for k, (e, a) in diff.items() if e is None or (a and a[0] > e[0])]
            tt.log('FAILOVER LOSS: %d records in %d series (devices %s...); %d series of '
                   "other masters; the dead master's replica was %d bytes behind just before "
                   'the kill at %d' % (lost, len(diff), sorted({k[0] for k in diff})[:10],
                                       len(foreign), lag, killed_at))
            tt.log('records per window in the cluster (%d/s x 8 sent): %s'
                   % (RATE, sorted(records_per_window(c).items())))
            tt.check(not foreign and not surplus, 'totals differ beyond the dead master: '
                     'foreign %s, surplus %s' % (foreign[:5], surplus[:5]))
        check_keys_home(c)


def case_auth(ctx):
    import test_auth
    password = 'cluster pw #1 $x;'
    datagrams = 5000
    pcap, totals, gen = tt.gen_capture(ctx, 'auth', datagrams, devices=500)
    pw = test_auth.write_password(ctx, 'redis.pw', password + '\n')
    wrong = test_auth.write_password(ctx, 'wrong.pw', 'not-the-password\n')
    with rcluster.Cluster(masters=3, ctx=ctx, password=password) as c:
        seed = pick_seed(c)
        auth = ['--redis-password-file', pw]
        t = cluster_tally(ctx, c, seed, ['net_pcap0,rx_pcap=' + pcap],
                          ['--window-ms', '1000'] + auth)
        t.wait_telemetry(lambda s: s.get('datagrams') == datagrams, timeout=30,
                         what='datagrams=%d' % datagrams)
        t.stop()
        tt.check(password not in t.log_text(), "the password is in tally's output")
        st = ClusterRedis(c).self_stats()
        log_self(st)
        tt.check_self(st, gen)
        tt.compare_totals(totals, cluster_totals(ctx, seed, auth))
        home = check_keys_home(c)
        tt.check(all(home.values()), 'window keys per master: %s'
                 % {p: len(k) for p, k in home.items()})

        # A wrong password: one line at start naming the node and the refusal.
        test_auth.start_fails(ctx, ['--redis', node_addr(seed), '--redis-password-file', wrong],
                              ['Redis at %s' % node_addr(seed), 'refused AUTH', 'WRONGPASS'],
                              secrets=['not-the-password'])
        for bad, want in ((['--redis-password-file', wrong], ['refused AUTH', 'WRONGPASS']),
                          ([], ['NOAUTH'])):
            rc, _, err = query(ctx, seed, ['totals'], bad, ok=None)
            tt.check(rc == 1 and len(err.splitlines()) == 1 and all(w in err for w in want)
                     and 'not-the-password' not in err,
                     'tally-query %s: rc %d, stderr %r' % (bad, rc, err))


CASES = {
    'cluster_query': case_query,
    'cluster_replay': case_replay,
    'cluster_two': case_two,
    'cluster_reshard': case_reshard,
    'cluster_failover': case_failover,
    'cluster_auth': case_auth,
}


def body(ctx):
    CASES[ctx.args.case](ctx)


if __name__ == '__main__':
    tt.main(body, lambda ap: ap.add_argument('--case', choices=sorted(CASES), required=True))
