#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""--redis-wait-replicas: a batch counts as written only once a replica has it (WAIT), so
what a master acknowledged but could not replicate stays in tally's spool and is replayed:
after a failover to that replica nothing is missing, and nothing is counted twice.

A master and its replica; capture A written with the replica up (WAIT satisfied); capture B
with the replica hung (SIGSTOP): the master applies B but WAIT says 0 replicas, so tally
spools B and exits 0; the replica resumes and tally restarts: B is replayed (the master
already holds it: applied once), and the replica ends with exactly A + B.
"""
import os
import signal
import time

import tallytest as tt

WINDOW_MS = 60000


def replayer(ctx, redis, pcap, spool, name):
    redis.client.call('DEL', 'tally:self')  # the last run's counts must not satisfy a wait
    return ctx.tally(['net_pcap0,rx_pcap=' + pcap],
                     ['--redis', redis.addr, '--stats-ms', '100', '--window-ms', str(WINDOW_MS),
                      '--table-series', '16384', '--spool-dir', spool, '--instance', 'repl',
                      '--redis-wait-replicas', '1', '--redis-timeout-ms', '1000',
                      '--shutdown-timeout-s', '4'],
                     redis=redis, name=name)


def body(ctx):
    a, ta, ga = tt.gen_capture(ctx, 'a', 3000, devices=200, seed=1)
    b, tb, gb = tt.gen_capture(ctx, 'b', 3000, devices=200, seed=2)
    empty, _, _ = tt.gen_capture(ctx, 'empty', 0, seed=3)
    spool = os.path.join(ctx.tmp, 'spool')
    master = ctx.redis()
    replica = ctx.redis(extra=['--replicaof', '127.0.0.1', str(master.port)])
    tt.wait_until(lambda: 'master_link_status:up' in replica.client.call('INFO', 'replication'),
                  10, 'the replica in sync')
    tt.wait_window_margin(WINDOW_MS, 15000)

    # 1. Replica up: written, and every batch on the replica before it counts.
    t = replayer(ctx, master, a, spool, 'tally-a')
    t.wait_stats(lambda s: s.get('datagrams') == ga['valid_datagrams'], timeout=30,
                 what='capture A counted')
    t.stop(timeout=15)
    st = master.self_stats()
    tt.check_eq(st['redis_wait_short'], 0, 'redis_wait_short with the replica up')
    tt.check_eq(st['spool_windows'], 0, 'spool_windows with the replica up')
    tt.compare_totals(ta, tt.query_totals(ctx, master))
    tt.wait_until(lambda: replica.client.call('DBSIZE') == master.client.call('DBSIZE'), 10,
                  'the replica caught up')
    tt.compare_totals(ta, tt.query_totals(ctx, replica))

    # 2. Replica hung: the master takes B, but no replica has it, so B is kept in the spool.
    replica.signal(signal.SIGSTOP)
    try:
        t = replayer(ctx, master, b, spool, 'tally-b')
        t.wait_stats(lambda s: s.get('datagrams') == gb['valid_datagrams'], timeout=30,
                     what='capture B counted')
        took = t.stop(timeout=30)
        tt.log('SIGTERM with the replica hung: exit after %.1fs' % took)
        st = master.self_stats()
        tt.log('tally:self: ' + tt.fmt_stats({k: v for k, v in st.items()
                                              if k.startswith(('redis', 'spool', 'breaker'))}))
        tt.check(st['redis_wait_short'] >= 1, 'redis_wait_short: %d' % st['redis_wait_short'])
        tt.check(tt.spool_segments(spool), 'B is in the spool')
        tt.compare_totals_text(tt.combine_totals(tb), tt.spool_totals(tt.read_spool(spool)),
                               'spooled aggregates', label='capture B')
        tt.check('replicas acknowledged a batch' in t.log_text(), 'the log says why')
    finally:
        replica.signal(signal.SIGCONT)

    # 3. Replica back: the spool is replayed; the master applied B already (once), and the
    #    replica, which is what a failover would promote, has exactly A + B.
    tt.wait_until(lambda: 'master_link_status:up' in replica.client.call('INFO', 'replication'),
                  15, 'the replica in sync again')
    t = replayer(ctx, master, empty, spool, 'tally-replay')
    t.wait_stats(lambda s: s.get('spool_bytes') == 0 and s.get('spool_replayed', 0) > 0,
                 timeout=30, what='the spool replayed')
    t.stop(timeout=15)
    both = tt.combine_totals(ta, tb)
    tt.compare_totals_text(both, tt.query_totals(ctx, master), 'master totals',
                           label='A + B')
    time.sleep(0.5)
    tt.compare_totals_text(both, tt.query_totals(ctx, replica), 'replica totals',
                           label='A + B')


if __name__ == '__main__':
    tt.main(body)
