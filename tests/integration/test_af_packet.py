#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""tally on a veth through net_af_packet: it answers ARP, ping and ping6, and counts what the
kernel of another network namespace sends to it, spread over two workers."""

import os
import re
import shutil

import tallytest as tt

TALLY_IP = '198.18.0.1'
PEER_IP = '198.18.0.2'
TALLY_IP6 = '2001:2::1'
PEER_IP6 = '2001:2::2'
DATAGRAMS = 20000
RATE = 20000  # datagrams/s; lower it (never the checks) if AF_PACKET drops frames here


def ip(*args, ok=(0,)):
    return tt.run_tool(['ip'] + list(args), timeout=20, ok=ok)


def write_sysctl(path, value, netns=None):
    """Best effort: a knob missing on this kernel is not a test failure."""
    tt.run_tool(['sh', '-c', 'test -w %s && echo %s > %s || true' % (path, value, path)],
                netns=netns)


def remove_stale():
    """Namespaces and links of earlier runs killed before they could clean up."""
    _, out, _ = ip('netns', 'list', ok=None)
    for m in re.finditer(r'^tly(\d+)\b', out, re.M):
        if not os.path.exists('/proc/' + m.group(1)):
            ip('netns', 'del', 'tly' + m.group(1), ok=None)
    _, out, _ = ip('-o', 'link', 'show', ok=None)
    for m in re.finditer(r'^\d+: tlya(\d+)[@:]', out, re.M):
        if not os.path.exists('/proc/' + m.group(1)):
            ip('link', 'del', 'tlya' + m.group(1), ok=None)


def setup_veth(ctx):
    """Root side tlya<pid> for tally (no address), tlyb<pid> in netns tly<pid> at PEER_IP."""
    pid = os.getpid()
    ns, a, b = 'tly%d' % pid, 'tlya%d' % pid, 'tlyb%d' % pid
    remove_stale()
    rc, _, err = ip('netns', 'add', ns, ok=None)
    if rc != 0:
        raise tt.Skip('cannot create a network namespace: ' + err.strip())
    ctx.undo.append(lambda: ip('netns', 'del', ns, ok=None))
    ip('link', 'add', a, 'type', 'veth', 'peer', 'name', b)
    ctx.undo.append(lambda: ip('link', 'del', a, ok=None))
    # Keep the kernel of the root side quiet: no IPv6 autoconfiguration, no forwarding.
    write_sysctl('/proc/sys/net/ipv6/conf/%s/disable_ipv6' % a, 1)
    write_sysctl('/proc/sys/net/ipv4/conf/%s/forwarding' % a, 0)
    ip('link', 'set', b, 'netns', ns)
    ip('-n', ns, 'addr', 'add', PEER_IP + '/24', 'dev', b)
    ip('-n', ns, 'addr', 'add', PEER_IP6 + '/64', 'dev', b, 'nodad')
    ip('-n', ns, 'link', 'set', 'lo', 'up')
    ip('-n', ns, 'link', 'set', b, 'up')
    ip('link', 'set', a, 'up')
    with open('/sys/class/net/%s/address' % a) as f:
        mac = f.read().strip()
    return ns, a, b, mac


def body(ctx):
    if os.geteuid() != 0:
        raise tt.Skip('needs root for network namespaces, veth and AF_PACKET')
    for tool in ('ip', 'ping', 'sh'):
        if shutil.which(tool) is None:
            raise tt.Skip(tool + ' not found')
    ns, iface, peer, mac = setup_veth(ctx)
    tt.log('veth %s (%s) <-> %s in netns %s' % (iface, mac, peer, ns))

    redis = ctx.redis()
    tally = ctx.tally(['net_af_packet0,iface=%s,qpairs=2' % iface],
                      ['--redis', redis.addr, '--ipv4', TALLY_IP, '--ipv6', TALLY_IP6,
                       '--stats-ms', '100', '--table-series', '65536'],
                      workers=2, redis=redis)
    tally.wait_stats(lambda s: s.get('workers') == 2, timeout=15, what='tally running')

    # No static neighbour: the kernel must resolve TALLY_IP through tally's ARP replies.
    _, out, _ = tt.run_tool(['ping', '-c', '3', '-i', '0.2', '-W', '1', TALLY_IP], netns=ns)
    tt.check(re.search(r'\b3 packets transmitted, 3 received', out),
             'ping did not get 3 replies:\n' + out)
    _, neigh, _ = ip('-n', ns, 'neigh', 'show', TALLY_IP)
    tt.check(mac in neigh.lower(), 'neighbour entry %r does not hold %s' % (neigh.strip(), mac))
    st = tally.wait_stats(lambda s: s['arp_replies'] >= 1 and s['icmp_replies'] >= 3,
                          timeout=5, what='arp_replies >= 1 and icmp_replies >= 3')
    tt.log('after ping: arp_replies=%d icmp_replies=%d exception_tx_drops=%d'
           % (st['arp_replies'], st['icmp_replies'], st['exception_tx_drops']))

    # The same over IPv6: neighbour solicitation, then echo.
    before = st['icmp_replies']
    _, out, _ = tt.run_tool(['ping', '-6', '-c', '3', '-i', '0.2', '-W', '1', TALLY_IP6],
                            netns=ns)
    tt.check(re.search(r'\b3 packets transmitted, 3 received', out),
             'ping -6 did not get 3 replies:\n' + out)
    _, neigh, _ = ip('-n', ns, '-6', 'neigh', 'show', TALLY_IP6)
    tt.check(mac in neigh.lower(), 'neighbour entry %r does not hold %s' % (neigh.strip(), mac))
    st = tally.wait_stats(lambda s: s['icmp_replies'] >= before + 4, timeout=5,
                          what='icmp_replies >= %d (3 echo + 1 advertisement)' % (before + 4))
    tt.log('after ping -6: icmp_replies=%d' % st['icmp_replies'])
    tt.check_eq(st['datagrams'], 0, 'datagrams before sending')

    totals = os.path.join(ctx.tmp, 'sent.totals')
    gen = tt.tally_gen(ctx, ['--send', '%s:9797' % TALLY_IP, '--datagrams', str(DATAGRAMS),
                             '--records', '8', '--devices', '300', '--src-ports', '16',
                             '--rate', str(RATE), '--totals', totals], netns=ns)
    tt.check_eq(gen.get('send_errors', 0), 0, 'tally-gen send_errors')
    tt.check_eq(gen['valid_datagrams'], DATAGRAMS, 'tally-gen valid_datagrams')

    def all_counted(s):
        if s.get('rx_missed', 0) > 0:
            raise tt.Failure('AF_PACKET dropped %d frames at %d datagrams/s: lower RATE'
                             % (s['rx_missed'], RATE))
        return s.get('datagrams') == DATAGRAMS
    st = tally.wait_stats(all_counted, timeout=20, what='datagrams=%d' % DATAGRAMS)

    workers = tally.telemetry('/tally/workers') or {}
    spread = {w: c.get('datagrams') for w, c in sorted(workers.items())}
    tt.log('datagrams per worker: %s' % (spread or 'telemetry unavailable'))
    ports = tally.telemetry('/tally/ports') or {}
    for name, p in ports.items():
        tt.log('port %s: %s' % (name, tt.fmt_stats(p)))
    tally.stop()

    st = redis.self_stats()
    tt.log('final tally:self: ' + tt.fmt_stats(st))
    tt.check_self(st, gen)
    tt.check_eq(st['rx_missed'], 0, 'tally:self rx_missed')
    tt.check_eq(st['workers'], 2, 'tally:self workers')
    tt.compare_totals(totals, tt.query_totals(ctx, redis))
    tt.check_schema(redis, 86400, 1000)


if __name__ == '__main__':
    tt.main(body)
