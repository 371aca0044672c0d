# SPDX-License-Identifier: BSD-3-Clause
"""A kernel UDP sender (tally-gen --send) in a network namespace of the test, streaming over a
veth pair to tally on net_af_packet: the setup the streaming tests share (outage, overload,
cluster). Needs root and network namespaces (tt.Skip otherwise)."""
import os
import shutil
import subprocess
import time

import tallytest as tt


def veth(ctx):
    """The veth pair and namespace (cleaned up by ctx): (test_af_packet module, ns, iface)."""
    if os.geteuid() != 0:
        raise tt.Skip('needs root for network namespaces, veth and AF_PACKET')
    for tool in ('ip', 'sh'):
        if shutil.which(tool) is None:
            raise tt.Skip(tool + ' not found')
    import test_af_packet as afp
    ns, iface, peer, mac = afp.setup_veth(ctx)
    # A permanent neighbour keeps the sender independent of ARP (that tally answers ARP and
    # ping while Redis hangs is checked by the outage test itself).
    afp.ip('-n', ns, 'neigh', 'replace', afp.TALLY_IP, 'lladdr', mac, 'dev', peer,
           'nud', 'permanent')
    tt.log('veth %s (%s) <-> %s in netns %s' % (iface, mac, peer, ns))
    return afp, ns, iface


def start_sender(ctx, afp, ns, totals, rate, seconds, devices=300, seed=7):
    """rate datagrams/s x 8 records for seconds from the namespace; totals: its --totals."""
    datagrams = rate * seconds
    argv = ['ip', 'netns', 'exec', ns, ctx.args.tally_gen, '--send', '%s:9797' % afp.TALLY_IP,
            '--datagrams', str(datagrams), '--rate', str(rate), '--records', '8',
            '--devices', str(devices), '--src-ports', '16', '--seed', str(seed),
            '--totals', totals]
    out = open(os.path.join(ctx.tmp, 'sender.out'), 'wb')
    tt.log('start: ' + ' '.join(argv))
    p = ctx.spawn(argv, stdout=out, name='tally-gen --send')
    p.outpath = out.name
    p.datagrams, p.rate, p.seconds, p.t0 = datagrams, rate, seconds, time.monotonic()
    return p


def finish_sender(sender, slack=15.0):
    """The sender's summary once it is done (within its time plus slack), checked whole."""
    left = sender.seconds + slack - (time.monotonic() - sender.t0)
    try:
        rc = sender.wait(max(left, 1.0))
    except subprocess.TimeoutExpired:
        raise tt.Failure('tally-gen --send still running after %.0fs' % (sender.seconds + slack))
    text = open(sender.outpath).read()
    tt.check_eq(rc, 0, 'tally-gen --send exit status (output: %s)' % text.strip())
    g = tt.parse_kv(text)
    tt.check_eq(g.get('send_errors'), 0, 'tally-gen send_errors')
    tt.check_eq(g.get('valid_datagrams'), sender.datagrams, 'tally-gen valid_datagrams')
    return g


def no_drops(s, rate):
    """A telemetry predicate's guard: AF_PACKET must not have dropped frames."""
    if s.get('rx_missed', 0) > 0:
        raise tt.Failure('AF_PACKET dropped %d frames at %d datagrams/s: lower RATE'
                         % (s['rx_missed'], rate))
    return True
