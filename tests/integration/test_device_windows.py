#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""--partition device across many window boundaries: a kernel sender streams telemetry from
16 source ports per device over a veth pair into 2 AF_PACKET queues (2 workers), with 250 ms
windows, so forwarded records and window markers cross between the workers a dozen times
while traffic flows. Every record is aggregated exactly once (Redis totals equal what was
sent), none arrives after its window closed (window_slip), none after its window was written
(merge_late), and everything forwarded is received."""
import os

import tallytest as tt

RATE = 20000        # datagrams per second
SECONDS = 3
WINDOW_MS = 250


def body(ctx):
    if os.geteuid() != 0:
        raise tt.Skip('needs root for network namespaces, veth and AF_PACKET')
    import test_af_packet as afp
    ns, iface, peer, mac = afp.setup_veth(ctx)
    afp.ip('-n', ns, 'neigh', 'replace', afp.TALLY_IP, 'lladdr', mac, 'dev', peer, 'nud',
           'permanent')
    datagrams = RATE * SECONDS
    redis = ctx.redis()
    totals = os.path.join(ctx.tmp, 'sent.totals')
    t = ctx.tally(['net_af_packet0,iface=%s,qpairs=2' % iface],
                  ['--redis', redis.addr, '--ipv4', afp.TALLY_IP, '--partition', 'device',
                   '--stats-ms', '100', '--window-ms', str(WINDOW_MS),
                   '--table-series', '65536'], workers=2, redis=redis)
    t.wait_telemetry(lambda s: s.get('workers') == 2, timeout=15, what='tally running')
    g = tt.tally_gen(ctx, ['--send', '%s:9797' % afp.TALLY_IP, '--datagrams', str(datagrams),
                           '--rate', str(RATE), '--records', '8', '--devices', '2000',
                           '--zipf', '0.9', '--src-ports', '16', '--seed', '5',
                           '--totals', totals], netns=ns, timeout=SECONDS + 30)
    tt.check_eq(g['send_errors'], 0, 'send_errors')

    def all_counted(s):
        if s.get('rx_missed', 0) > 0:
            raise tt.Failure('AF_PACKET dropped %d frames at %d datagrams/s: lower RATE'
                             % (s['rx_missed'], RATE))
        return s.get('datagrams') == datagrams
    t.wait_telemetry(all_counted, timeout=20, what='datagrams=%d' % datagrams)
    t.stop()

    st = redis.self_stats()
    fwd = [st['w%d:forwarded' % w] for w in range(2)]
    rcv = [st['w%d:received' % w] for w in range(2)]
    tt.log('%d datagrams at %d/s, %d ms windows: forwarded %s, received %s, hot_records %s, '
           'ring_full %d, windows_flushed %d, window_slip %d, merge_late %d'
           % (datagrams, RATE, WINDOW_MS, fwd, rcv,
              [st['w%d:hot_records' % w] for w in range(2)], st['ring_full'],
              st['windows_flushed'], st['window_slip'], st['merge_late']))
    tt.check_eq(st['rx_missed'], 0, 'rx_missed')
    tt.check_eq(st['datagrams'], g['valid_datagrams'], 'datagrams')
    tt.check_eq(st['records'], g['records'], 'records')
    tt.check(all(f > 0 for f in fwd), 'both workers forward: %s' % fwd)
    tt.check_eq(sum(rcv), sum(fwd), 'records received by owners (all that was forwarded)')
    tt.check(st['windows_flushed'] >= SECONDS * 1000 // WINDOW_MS - 2,
             'windows_flushed %d: the stream should span about %d windows'
             % (st['windows_flushed'], SECONDS * 1000 // WINDOW_MS))
    tt.check_eq(st['window_slip'], 0, 'window_slip (forwarded records after their window)')
    tt.check_eq(st['merge_late'], 0, 'merge_late (records after their window was written)')
    tt.check_eq(st['table_full'], 0, 'table_full')
    tt.check_eq(st['window_stall'], 0, 'window_stall')
    tt.compare_totals(totals, tt.query_totals(ctx, redis))


if __name__ == '__main__':
    tt.main(body)
