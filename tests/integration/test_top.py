#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""tally-top under tmux: the live view of a running tally (two workers on net_pcap) shows what
tally-gen sent (records, datagrams, malformed in all; both workers; the port's packets; the
breaker), refreshes, and quits on `q`; the same from tally:self with --redis; rates while a
capture is replayed without end (net_pcap infinite_rx); one line and exit 1 without a tally."""

import os
import re
import shutil
import subprocess
import time

import tallytest as tt


def commas(n):
    return '{:,}'.format(n)


class Tmux:
    """A private tmux server (its own socket) running one command in a 200x50 window."""

    def __init__(self, ctx, name, argv):
        self.sock = os.path.join(ctx.tmp, 'tmux-%s' % name)
        self.name = name
        ctx.undo.append(self.kill)
        cmd = ' '.join("'%s'" % a for a in argv)
        self.tmux('new-session', '-d', '-s', name, '-x', '200', '-y', '50', cmd)

    def tmux(self, *args, ok=(0,)):
        p = subprocess.run(['tmux', '-S', self.sock] + list(args), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        if ok is not None and p.returncode not in ok:
            raise tt.Failure('tmux %s: rc %d %s' % (args[0], p.returncode,
                                                    p.stderr.decode(errors='replace')))
        return p.returncode, p.stdout.decode(errors='replace')

    def screen(self):
        return self.tmux('capture-pane', '-p', '-t', self.name)[1]

    def alive(self):
        return self.tmux('has-session', '-t', self.name, ok=None)[0] == 0

    def kill(self):
        subprocess.run(['tmux', '-S', self.sock, 'kill-server'], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=10)


def wait_screen(tm, pred, what, timeout=30):
    last = ['']

    def ok():
        last[0] = tm.screen()
        return pred(last[0])
    try:
        tt.wait_until(ok, timeout, what, interval=0.2)
    except tt.Failure:
        raise tt.Failure('%s; the screen:\n%s' % (what, last[0]))
    return last[0]


def quits_on_q(tm):
    tm.tmux('send-keys', '-t', tm.name, 'q')
    tt.wait_until(lambda: not tm.alive(), 5, 'tally-top gone after q')


def body(ctx):
    if shutil.which('tmux') is None:
        raise tt.Skip('tmux not found (tools/setup-host installs it)')
    top = os.path.join(os.path.dirname(ctx.args.tally_query), 'tally-top')
    a_pcap, _, ga = tt.gen_capture(ctx, 'a', 3000, devices=200, seed=5)
    b_pcap = os.path.join(ctx.tmp, 'b.pcap')
    gb = tt.tally_gen(ctx, ['--pcap', b_pcap, '--datagrams', '2000', '--devices', '100',
                            '--device-base', '1000', '--malformed', '37', '--seed', '6'])
    records = ga['records'] + gb['records']
    valid = ga['valid_datagrams'] + gb['valid_datagrams']
    frames = ga['datagrams'] + gb['datagrams']
    malformed = gb['malformed']

    # No tally there: one line, exit 1.
    rc, out, err = tt.run_tool([top, '--file-prefix', 'tally_none_%d' % os.getpid(), '--once'],
                               ok=None)
    tt.check_eq(rc, 1, 'tally-top without a tally: exit status')
    tt.check(len(err.strip().splitlines()) == 1 and 'cannot connect to' in err,
             'one line saying so: %r' % err)

    redis = ctx.redis()
    tally = ctx.tally(['net_pcap0,rx_pcap=%s,rx_pcap=%s' % (a_pcap, b_pcap)],
                      ['--redis', redis.addr, '--stats-ms', '100'], workers=2, redis=redis)
    tt.wait_all_aggregated(tally, valid, records, 2)
    tally.wait_stats(lambda s: s['malformed'] == malformed, what='malformed counted')

    tm = Tmux(ctx, 'tel', [top, '--file-prefix', tally.prefix])
    screen = wait_screen(tm, lambda s: 'records %s ' % commas(records) in s and
                         re.search(r'^w1 ', s, re.M), 'tally-top shows the totals')
    for want in ('datagrams %s ' % commas(valid), 'malformed %s ' % commas(malformed),
                 'breaker closed', '(q quits)', 'drops:  none'):
        tt.check(want in screen, 'the screen lacks %r:\n%s' % (want, screen))
    port = re.search(r'^net_pcap0\s+(\S+)\s+(\S+)\s+(\S+)', screen, re.M)
    tt.check(port is not None and port.group(3) == commas(frames),
             'the port row shows %s packets:\n%s' % (commas(frames), screen))
    for w in ('w0', 'w1'):
        tt.check(re.search(r'^%s\s+\d+\s' % w, screen, re.M), 'row %s with its lcore' % w)
    # It refreshes: uptime moves on.
    up = int(re.search(r'uptime (\d+)s', screen).group(1))
    wait_screen(tm, lambda s: int(re.search(r'uptime (\d+)s', s).group(1)) > up,
                'a refresh (uptime past %d s)' % up)
    quits_on_q(tm)

    # The same numbers from tally:self.
    tm = Tmux(ctx, 'redis', [top, '--redis', redis.addr])
    screen = wait_screen(tm, lambda s: 'records %s ' % commas(records) in s,
                         'tally-top --redis shows the totals')
    tt.check('ports: per port only from the telemetry socket' in screen,
             'says where the ports are:\n' + screen)
    tt.check(re.search(r'^w1 ', screen, re.M), 'worker rows from tally:self:\n' + screen)
    quits_on_q(tm)
    tally.stop()

    # Rates: a capture replayed without end.
    busy = ctx.tally(['net_pcap0,rx_pcap=%s,infinite_rx=1' % a_pcap],
                     ['--redis', redis.addr, '--stats-ms', '100'], workers=1, redis=redis,
                     name='tally-busy')
    busy.wait_telemetry(lambda s: s.get('records', 0) > 0, timeout=15, what='replaying')
    _, out, _ = tt.run_tool([top, '--file-prefix', busy.prefix, '--once', '--interval', '0.5'])
    total = re.search(r'^records/s ([\d,]+) ', out, re.M)
    w0 = re.search(r'^w0\s+\d+\s+([\d,]+)\s', out, re.M)
    tt.check(total and w0 and int(total.group(1).replace(',', '')) > 0 and
             int(w0.group(1).replace(',', '')) > 0, 'records/s above 0:\n' + out)
    busy.stop()
    tt.log('tally-top: %s records shown; replay at %s records/s' % (commas(records),
                                                                   total.group(1)))


if __name__ == '__main__':
    tt.main(body)
