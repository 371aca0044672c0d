#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Soak: a kernel sender streams telemetry with malformed datagrams mixed in for --seconds
(CI: 10 s; tools/soak: 60 s) at --rate over a veth pair, with the spool and the dead-letter
capture on. No crash, flat memory (RSS), exact totals, exact malformed counts."""
import os
import time

import tallytest as tt

MALFORMED_EVERY = 20  # one malformed datagram per 20 valid ones


def extra_args(ap):
    ap.add_argument('--seconds', type=int, default=10)
    ap.add_argument('--rate', type=int, default=20000, help='valid datagrams per second')


def body(ctx):
    if os.geteuid() != 0:
        raise tt.Skip('needs root for network namespaces, veth and AF_PACKET')
    import test_af_packet as afp
    ns, iface, peer, mac = afp.setup_veth(ctx)
    afp.ip('-n', ns, 'neigh', 'replace', afp.TALLY_IP, 'lladdr', mac, 'dev', peer, 'nud',
           'permanent')
    seconds, rate = ctx.args.seconds, ctx.args.rate
    datagrams = seconds * rate
    malformed = datagrams // MALFORMED_EVERY
    redis = ctx.redis()
    spool = os.path.join(ctx.tmp, 'spool')
    dlq = os.path.join(ctx.tmp, 'dead.pcapng')
    totals = os.path.join(ctx.tmp, 'sent.totals')
    t = ctx.tally(['net_af_packet0,iface=%s,qpairs=1' % iface],
                  ['--redis', redis.addr, '--ipv4', afp.TALLY_IP, '--stats-ms', '200',
                   '--window-ms', '1000', '--table-series', '65536', '--spool-dir', spool,
                   '--dlq', dlq, '--dlq-burst', str(malformed + 1)], redis=redis)
    t.wait_telemetry(lambda s: s.get('workers') == 1, timeout=15, what='tally running')
    argv = ['ip', 'netns', 'exec', ns, ctx.args.tally_gen, '--send', '%s:9797' % afp.TALLY_IP,
            '--datagrams', str(datagrams), '--rate', str(rate), '--records', '8',
            '--devices', '5000', '--zipf', '0.9', '--malformed', str(malformed),
            '--seed', '11', '--totals', totals]
    out = open(os.path.join(ctx.tmp, 'sender.out'), 'wb')
    tt.log('start: ' + ' '.join(argv))
    sender = ctx.spawn(argv, stdout=out, name='tally-gen --send')
    t0, rss = time.monotonic(), []
    while sender.poll() is None and time.monotonic() - t0 < seconds + 30:
        rss.append(t.rss_kb())
        st = t.telemetry('/tally/stats') or {}
        if st.get('rx_missed', 0) > 0:
            raise tt.Failure('AF_PACKET dropped %d frames at %d datagrams/s: lower --rate'
                             % (st['rx_missed'], rate))
        time.sleep(1.0)
    tt.check_eq(sender.wait(5), 0, 'tally-gen --send exit status')
    g = tt.parse_kv(open(out.name).read())
    tt.check_eq(g['send_errors'], 0, 'send_errors')
    t.wait_telemetry(lambda s: s['datagrams'] == datagrams and s['malformed'] == malformed,
                     timeout=20, what='datagrams=%d malformed=%d' % (datagrams, malformed))
    t.stop()
    st = redis.self_stats()
    tt.log('%d s at %d datagrams/s: %s' % (seconds, rate, tt.fmt_stats(
        {k: v for k, v in st.items() if ':' not in k})))
    warm = [kb for kb in rss[2:] if kb]
    tt.log('RSS kB (1/s): %s' % rss)
    if warm:
        tt.check(max(warm) - warm[0] <= 32 * 1024, 'RSS grew by %d kB' % (max(warm) - warm[0]))
    tt.check_eq(st['rx_missed'], 0, 'rx_missed')
    tt.check_eq(st['datagrams'], g['valid_datagrams'], 'datagrams')
    tt.check_eq(st['records'], g['records'], 'records')
    tt.check_eq(st['malformed'], g['malformed'], 'malformed')
    for k, v in g.items():
        if k.startswith('malformed:'):
            tt.check_eq(st[k], v, k)
    tt.check_eq(st['dlq_written'], g['malformed'], 'dlq_written')
    tt.check_eq(st['table_full'], 0, 'table_full')
    tt.check_eq(st['spool_lost_records'], 0, 'spool_lost_records')
    tt.compare_totals(totals, tt.query_totals(ctx, redis))


if __name__ == '__main__':
    tt.main(body, extra_args)
