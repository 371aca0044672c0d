#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Replay a tally-gen capture through net_pcap; Redis must hold exactly what tally-gen sent."""

import os

import tallytest as tt

DATAGRAMS = 20000
MALFORMED = 99      # 11 of each of the 9 payload reasons tally-gen cycles through
RETENTION_S = 600
WINDOW_MS = 1000


def extra_args(ap):
    ap.add_argument('--ipv6-vlan', action='store_true',
                    help='an 802.1Q-tagged IPv6 capture instead of untagged IPv4')


def body(ctx):
    pcap = os.path.join(ctx.tmp, 'replay.pcap')
    totals = os.path.join(ctx.tmp, 'gen.totals')
    gen_args = ['--pcap', pcap, '--datagrams', DATAGRAMS, '--records', 8, '--devices', 500,
                '--zipf', 0.9, '--malformed', MALFORMED, '--totals', totals]
    if ctx.args.ipv6_vlan:
        gen_args += ['--ipv6', '--vlan', 100]
    gen = tt.tally_gen(ctx, [str(a) for a in gen_args])
    tt.check_eq(gen['valid_datagrams'], DATAGRAMS, 'tally-gen valid_datagrams')
    tt.check_eq(gen['malformed'], MALFORMED, 'tally-gen malformed')

    redis = ctx.redis()
    # The second variant writes stats as often as it flushes (--flush-ms 50): a stats write
    # pending in every batch once kept windows from ever reaching the sink.
    stats_ms = '50' if ctx.args.ipv6_vlan else '100'
    tally = ctx.tally(['net_pcap0,rx_pcap=' + pcap],
                      ['--redis', redis.addr, '--stats-ms', stats_ms, '--table-series', '65536',
                       '--retention-s', str(RETENTION_S), '--window-ms', str(WINDOW_MS)],
                      redis=redis)
    st = tally.wait_stats(lambda s: s.get('datagrams') == DATAGRAMS and
                          s.get('malformed') == MALFORMED, timeout=30,
                          what='datagrams=%d malformed=%d' % (DATAGRAMS, MALFORMED))
    tt.log('counted: ' + tt.fmt_stats(st))
    # The telemetry socket serves the same counters (':' becomes '_' in telemetry names).
    tel = tally.telemetry('/tally/stats')
    if tel is None:
        raise tt.Failure('telemetry /tally/stats unavailable')
    tt.check_eq(tel['datagrams'], DATAGRAMS, 'telemetry datagrams')
    tt.check_eq(tel['malformed'], MALFORMED, 'telemetry malformed')
    for reason in ('short', 'magic', 'version', 'flags', 'reserved', 'count', 'length', 'kind',
                   'value'):
        tt.check_eq(tel['malformed_' + reason], gen['malformed:' + reason],
                    'telemetry malformed_' + reason)
    workers = tally.telemetry('/tally/workers') or {}
    tt.check_eq(sum(w['datagrams'] for w in workers.values()), DATAGRAMS,
                'telemetry datagrams summed over workers')
    tally.stop()

    st = redis.self_stats()
    tt.log('final tally:self: ' + tt.fmt_stats(st))
    tt.check_self(st, gen)
    tt.check_eq(st['rx_packets'], gen['datagrams'], 'tally:self rx_packets')
    tt.check_eq(st['other'], 0, 'tally:self other')
    tt.check_eq(st['workers'], 1, 'tally:self workers')
    tt.check(st['windows_flushed'] >= 1, 'windows_flushed is %d' % st['windows_flushed'])

    tt.compare_totals(totals, tt.query_totals(ctx, redis))
    windows = tt.check_schema(redis, RETENTION_S, WINDOW_MS)
    starts = {w for ws in windows.values() for w in ws}
    tt.check_eq(len(starts), st['windows_flushed'], 'distinct window starts in Redis')
    tt.log('%d devices, windows %s' % (len(windows), sorted(starts)))


if __name__ == '__main__':
    tt.main(body, extra_args)
