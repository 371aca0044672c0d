#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""A private Redis Cluster on loopback ports for tests of the cluster sink.

    with rcluster.Cluster(masters=3, replicas=1) as c:
        c.client(c.slot_owner(slot)).call('HGETALL', key)

password= starts every node with requirepass (and masterauth, for the replicas); the nodes'
clients then authenticate on every connect.

Every node is a tallytest.Redis (a child redis-server, not daemonized) with its own directory
under one temporary directory; leaving the with block kills every node and removes that
directory, also when the block raises. Pass ctx= (a tallytest.Context) to have an integration
test's own cleanup and failure log dump cover the nodes too.
Running this file checks the helper itself: exit 0 pass, 1 fail, 77 skip.
"""

import os
import shutil
import signal
import socket
import struct
import sys
import tempfile
import threading
import traceback

import tallytest as tt


class _PortGuard:
    """Holds a killed node's port: every connection is reset at once, as a dead node's would
    be refused, and no other process (another test's redis-server on a "free" port) can take
    the port and be written to as if it were the node."""

    def __init__(self, port):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(('127.0.0.1', port))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
            conn.close()

    def close(self):
        self.stop.set()
        self.thread.join(2)
        self.sock.close()


class Cluster:
    """masters x (1 + replicas) redis-server nodes joined by redis-cli --cluster create."""

    def __init__(self, masters=3, replicas=0, tmpdir=None, ctx=None, node_timeout_ms=2000,
                 timeout=30.0, password=None):
        """tmpdir: where the cluster's directory goes (default: ctx.tmp, else the system's);
        timeout: seconds to wait for cluster_state:ok after creation; password: requirepass
        of every node (None: none)."""
        if masters < 3:
            raise ValueError('redis-cli --cluster create needs at least 3 masters')
        self.want_masters = masters
        self.want_replicas = replicas
        self.tmpdir = tmpdir
        self.node_timeout_ms = node_timeout_ms
        self.timeout = timeout
        self.password = password
        self.migrating = {}   # slot -> (source port, target port) between begin and finish
        self.own_ctx = ctx is None
        self.ctx = ctx
        self.dir = None
        self.nodes = []       # ports, in start order (killed ones stay listed)
        self.redis = {}       # port -> tallytest.Redis
        self.killed = set()
        self.guards = []      # _PortGuard of each killed node

    # -- lifetime --------------------------------------------------------------------------

    def __enter__(self):
        try:
            self._start()
        except BaseException:
            self.close(failed=True)
            raise
        return self

    def __exit__(self, kind, value, tb):
        self.close(failed=kind is not None)
        return False

    def _start(self):
        if shutil.which('redis-server') is None or shutil.which('redis-cli') is None:
            raise tt.Skip('redis-server or redis-cli not found')
        parent = self.tmpdir
        if parent is None and not self.own_ctx:
            parent = self.ctx.tmp
        self.dir = tempfile.mkdtemp(prefix='tally-cluster-', dir=parent)
        if self.own_ctx:
            # A Context of our own, whose cleanup kills the nodes and removes self.dir.
            self.ctx = tt.Context(None)
            os.rmdir(self.ctx.tmp)
            self.ctx.tmp = self.dir
        for _ in range(self.want_masters * (1 + self.want_replicas)):
            self._start_node()
        auth = [] if self.password is None else ['-a', self.password, '--no-auth-warning']
        tt.run_tool(['redis-cli', '--cluster', 'create']
                    + ['127.0.0.1:%d' % p for p in self.nodes]
                    + ['--cluster-replicas', str(self.want_replicas), '--cluster-yes'] + auth)
        # cluster_state:ok comes before every node has learnt which nodes are replicas, and a
        # replica that has never synced refuses to fail over.
        tt.wait_until(self._created, self.timeout, 'a settled cluster with synced replicas',
                      interval=0.1)
        tt.log('cluster of %d masters, %d replicas each: ports %s'
               % (self.want_masters, self.want_replicas, ' '.join(map(str, self.nodes))))

    def _start_node(self):
        """One node on a free port; a few tries since another process may take the port."""
        for _ in range(5):
            port = tt.free_port()
            d = os.path.join(self.dir, str(port))
            os.makedirs(d, exist_ok=True)
            extra = ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes-%d.conf' % port,
                     '--cluster-node-timeout', str(self.node_timeout_ms), '--dir', d,
                     '--repl-diskless-sync-delay', '0']
            try:
                if self.password is not None:
                    extra += ['--masterauth', self.password]
                r = tt.Redis(self.ctx, port=port, extra=extra, password=self.password)
            except tt.Failure:
                shutil.rmtree(d, ignore_errors=True)
                continue
            self.nodes.append(port)
            self.redis[port] = r
            return port
        raise tt.Failure('cannot start a cluster node')

    def close(self, failed=False):
        """Kill every node and remove the cluster's directory (idempotent)."""
        for g in self.guards:
            g.close()
        self.guards = []
        if self.own_ctx:
            if self.ctx is not None:
                if failed:
                    self.ctx.failed = True
                    self.ctx.dump_logs()
                self.ctx.cleanup()
                self.ctx = None
            elif self.dir is not None:
                shutil.rmtree(self.dir, ignore_errors=True)
        else:
            for r in self.redis.values():
                r.client.close()
                self.ctx.reap(r.proc)
            if self.dir is not None and not (failed and os.environ.get('TALLY_IT_KEEP')):
                shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None

    # -- queries ---------------------------------------------------------------------------

    def live(self):
        """Ports of the nodes not killed, in start order."""
        return [p for p in self.nodes if p not in self.killed]

    def client(self, port):
        """The tallytest.Resp of a node (owned by the cluster: do not close it)."""
        return self.redis[port].client

    def _any(self):
        live = self.live()
        if not live:
            raise tt.Failure('no live cluster node')
        return self.client(live[0])

    def node_table(self, port=None):
        """CLUSTER NODES as [{'id', 'port', 'flags': set, 'master', 'slots': [str]}]."""
        c = self.client(port) if port is not None else self._any()
        rows = []
        for line in c.call('CLUSTER', 'NODES').splitlines():
            f = line.split()
            addr = f[1].split('@')[0]
            rows.append({'id': f[0], 'port': int(addr.rsplit(':', 1)[1]),
                         'flags': set(f[2].split(',')), 'master': f[3], 'slots': f[8:]})
        return rows

    def masters(self):
        """Ports of the current masters, as a live node sees them (failed ones left out)."""
        return sorted(n['port'] for n in self.node_table()
                      if 'master' in n['flags'] and not n['flags'] & {'fail', 'fail?', 'noaddr'})

    def _created(self):
        if not self._settled():
            return False
        replicas = [n['port'] for n in self.node_table() if 'slave' in n['flags']]
        return (len(replicas) == self.want_masters * self.want_replicas
                and all('master_link_status:up' in self.client(p).call('INFO', 'replication')
                        for p in replicas))

    def node_id(self, port):
        return self.client(port).call('CLUSTER', 'MYID')

    def _slot_ranges(self, port):
        """CLUSTER SLOTS of one node as a sorted list of (start, end, master port)."""
        return sorted((r[0], r[1], r[2][1]) for r in self.client(port).call('CLUSTER', 'SLOTS'))

    def slot_owner(self, slot):
        """Port of the master that owns slot, as a live node sees it; None if unassigned."""
        for start, end, port in self._slot_ranges(self.live()[0]):
            if start <= slot <= end:
                return port
        return None

    def keyslot(self, key):
        return self._any().call('CLUSTER', 'KEYSLOT', key)

    def keys(self, pattern='*'):
        """Every key of the cluster: a SCAN of each live master, merged and sorted."""
        keys = set()
        for p in self.masters():
            keys.update(self.client(p).scan(pattern))
        return sorted(keys)

    # -- changes ---------------------------------------------------------------------------

    def _view(self, port):
        """What one node believes: every node's id, role, master, failure and slots."""
        return sorted((n['id'], n['port'], 'master' in n['flags'], n['master'],
                       'fail' in n['flags'], tuple(n['slots'])) for n in self.node_table(port))

    def _settled(self):
        """Every live node says cluster_state:ok, flags the killed ones as failed (not just
        suspected), and all of them agree on roles and slot owners."""
        views = []
        for p in self.live():
            try:
                if 'cluster_state:ok' not in self.client(p).call('CLUSTER', 'INFO'):
                    return False
                views.append(self._view(p))
            except (OSError, ConnectionError, tt.RedisError):
                return False
        if any(v != views[0] for v in views):
            return False
        return all(failed for _, port, _, _, failed, _ in views[0] if port in self.killed)

    def wait_ok(self, timeout=30.0):
        """Wait until the cluster has settled (see _settled): after kill() of a master this
        covers failure detection and the promotion of a replica."""
        tt.wait_until(self._settled, timeout, 'a settled cluster (cluster_state:ok, one view)',
                      interval=0.1)

    def kill(self, port):
        """SIGKILL one node (an outage); it stays in .nodes, out of .live(). Its port stays
        held (connections reset) until close(), so that nothing else answers there."""
        self.redis[port].signal(signal.SIGKILL)
        self.killed.add(port)
        self.guards.append(_PortGuard(port))

    def migrate_slot(self, slot, dst_port, batch=100):
        """Move slot and its keys to master dst_port the way redis-cli --cluster reshard does:
        IMPORTING on the target, MIGRATING on the source, keys moved in batches with MIGRATE,
        then SETSLOT NODE on the target, the source and every other master."""
        if self.begin_migration(slot, dst_port, keys=0, batch=batch) is not None:
            self.finish_migration(slot, batch=batch)

    def begin_migration(self, slot, dst_port, keys=0, batch=100):
        """The first half of migrate_slot: IMPORTING on the target, MIGRATING on the source,
        then `keys` of the slot's keys moved (None: all of them). Until finish_migration the
        slot is half-migrated: the source answers ASK for the keys it no longer has.
        Returns the keys moved, or None when dst_port already owns the slot."""
        src_port = self.slot_owner(slot)
        if src_port is None:
            raise tt.Failure('slot %d has no owner' % slot)
        if src_port == dst_port:
            return None
        src, dst = self.client(src_port), self.client(dst_port)
        tt.log('migrate slot %d: %d -> %d' % (slot, src_port, dst_port))
        dst.call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', self.node_id(src_port))
        src.call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', self.node_id(dst_port))
        self.migrating[slot] = (src_port, dst_port)
        return self._move_keys(slot, keys, batch)

    def _move_keys(self, slot, limit, batch):
        """MIGRATE up to limit keys (None: all) of a slot being migrated; returns them."""
        src_port, dst_port = self.migrating[slot]
        src = self.client(src_port)
        auth = [] if self.password is None else ['AUTH', self.password]
        moved = []
        while limit is None or len(moved) < limit:
            n = batch if limit is None else min(batch, limit - len(moved))
            keys = src.call('CLUSTER', 'GETKEYSINSLOT', slot, n)
            if not keys:
                break
            src.call('MIGRATE', '127.0.0.1', dst_port, '', 0, 5000, *auth, 'KEYS', *keys)
            moved += keys
        return moved

    def finish_migration(self, slot, batch=100):
        """The second half: the keys left moved, then SETSLOT NODE on the target, the source
        and every other master; waits until every node agrees."""
        src_port, dst_port = self.migrating[slot]
        self._move_keys(slot, None, batch)
        dst_id = self.node_id(dst_port)
        others = [p for p in self.masters() if p not in (src_port, dst_port)]
        for p in [dst_port, src_port] + others:
            self.client(p).call('CLUSTER', 'SETSLOT', slot, 'NODE', dst_id)
        del self.migrating[slot]
        self.wait_ok()


# -----------------------------------------------------------------------------------------
# Self-check


def _on_signal(signum, frame):
    raise tt.Interrupted(signal.Signals(signum).name)


def _check_moved(client, key, slot, owner):
    try:
        client.call('HGET', key, '1:count')
    except tt.RedisError as e:
        tt.check_eq(str(e), 'MOVED %d 127.0.0.1:%d' % (slot, owner), 'redirect')
        return
    raise tt.Failure('a node other than %d answered for slot %d' % (owner, slot))


def _self_check():
    with Cluster(masters=3) as c:
        tt.check_eq(len(c.masters()), 3, 'masters')
        key = 'tally:{42}:1000'
        slot = c.keyslot(key)
        src = c.slot_owner(slot)
        c.client(src).call('HSET', key, '1:count', 7)
        dst = [p for p in c.masters() if p != src][-1]
        _check_moved(c.client(dst), key, slot, src)
        c.migrate_slot(slot, dst)
        tt.check_eq(c.slot_owner(slot), dst, 'owner of slot %d after migration' % slot)
        tt.check_eq(c.client(dst).call('HGET', key, '1:count'), '7', 'migrated value')
        tt.check_eq(c.client(src).call('CLUSTER', 'COUNTKEYSINSLOT', slot), 0,
                    'keys left at the source')
        _check_moved(c.client(src), key, slot, dst)
        tt.check_eq(c.keys(), [key], 'keys of the cluster')
        d = c.dir
    tt.check(not os.path.exists(d), 'cluster directory removed')


def main():
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, _on_signal)
    rc = 1
    try:
        _self_check()
        rc = 0
        tt.log('PASS')
    except tt.Skip as e:
        rc = tt.SKIP
        tt.log('SKIP: %s' % e)
    except BaseException:
        print('FAIL:')
        traceback.print_exc(file=sys.stdout)
    sys.exit(rc)


if __name__ == '__main__':
    main()
