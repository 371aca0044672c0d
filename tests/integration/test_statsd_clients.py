#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Real statsd clients, unchanged, sending through a kernel socket in a network namespace to
tally on net_af_packet: npm's hot-shots in DogStatsD mode (global host tag, tags, sample
rates, gauge deltas) and in plain statsd mode (no tags: the device is the sender's address),
and Debian's python3-statsd (rates, deltas, sets, a pipeline of lines in one datagram). Every
counter, gauge, timer count/sum/min/max and set count in Redis equals what the clients sent;
timer quantiles are within the sketch's 1%; a set's distinct count is its members'; tags
become the series' text, which names its fields in Redis (HGETALL reads `hs.req{az:a,env:prod}:count`)
and tally:names; tally-query takes device names and series texts. Each client's sampling is made to send every sampled
call (Math.random / random.random return 0), so what was sent is known.

Skipped (77) where the clients are not installed (tools/setup-host installs them: the
python3-statsd package and hot-shots under /var/cache/tally/node_modules)."""

import json
import os
import shutil

import tallytest as tt
from test_af_packet import TALLY_IP, setup_veth
from test_statsd import device_id, metric_id

PORT = 8125
PEER = '198.18.0.2'
NODE_MODULES = os.environ.get('TALLY_NODE_MODULES', '/var/cache/tally/node_modules')
SYS_PYTHON = '/usr/bin/python3'  # Debian's, where python3-statsd lives

HOT_SHOTS = r'''
const StatsD = require('hot-shots');
Math.random = () => 0; // every sampled call is sent (with its @rate)
const mode = process.argv[2], p = process.argv[3];
const dog = mode === 'dogstatsd';
const c = new StatsD({host: '%(ip)s', port: %(port)d, maxBufferSize: 1000,
  bufferFlushInterval: 20, globalTags: dog ? {host: 'node1'} : [],
  errorHandler: e => { console.error(e); process.exit(1); }});
const tags = dog ? ['env:prod', 'az:a'] : undefined;
for (let i = 0; i < 100; i++) {
  c.increment(p + '.req', 2, tags);
  c.increment(p + '.req', 1, 0.25, tags);
  c.timing(p + '.lat', i + 1, tags);
  c.unique(p + '.users', 'u' + (i %% 10), tags);
}
c.gauge(p + '.temp', 20, tags);
c.gaugeDelta(p + '.temp', 5, tags);
c.gaugeDelta(p + '.temp', -2.5, tags);
c.close(err => process.exit(err ? 1 : 0));
''' % {'ip': TALLY_IP, 'port': PORT}

PY_STATSD = r'''
import random
import statsd
random.random = lambda: 0.0  # every sampled call is sent (with its @rate)
c = statsd.StatsClient('%(ip)s', %(port)d)
for i in range(50):
    c.incr('py.req')
    c.incr('py.req', 3, rate=0.5)
    c.timing('py.lat', i + 0.5)
    c.set('py.users', 'p%%d' %% (i %% 7))
c.gauge('py.temp', 10)
c.gauge('py.temp', 4, delta=True)
c.gauge('py.temp', -1, delta=True)
with c.pipeline() as pipe:
    for i in range(20):
        pipe.incr('py.piped', 2)
''' % {'ip': TALLY_IP, 'port': PORT}


def hot_shots_expect(dev, p, tags):
    """(device, series) -> (count, sum, min, max) of hot-shots' calls above; set members."""
    t = '{az:a,env:prod}' if tags else ''
    return {
        (dev, p + '.req' + t): (200, 600.0, 2.0, 4.0),  # 2, and 1 at @0.25 = 4
        (dev, p + '.lat' + t): (100, 5050.0, 1.0, 100.0),
        (dev, p + '.users' + t): (100, None, None, None),
        (dev, p + '.temp' + t): (3, 67.5, 20.0, 25.0),  # 20, +5, -2.5
    }, {(dev, p + '.users' + t): 10}


def py_expect(dev):
    return {
        (dev, 'py.req'): (100, 350.0, 1.0, 6.0),  # 1, and 3 at @0.5 = 6
        (dev, 'py.lat'): (50, 1250.0, 0.5, 49.5),
        (dev, 'py.users'): (50, None, None, None),
        (dev, 'py.temp'): (3, 37.0, 10.0, 14.0),  # 10, +4, -1
        (dev, 'py.piped'): (20, 40.0, 2.0, 2.0),
    }, {(dev, 'py.users'): 7}


def query(ctx, redis, args):
    return tt.run_tool([ctx.args.tally_query, '--redis', redis.addr] + [str(a) for a in args])[1]


def body(ctx):
    if os.geteuid() != 0:
        raise tt.Skip('needs root for network namespaces, veth and AF_PACKET')
    missing = [w for w, ok in (('node', shutil.which('node')),
                               ('hot-shots', os.path.isdir(os.path.join(NODE_MODULES,
                                                                         'hot-shots'))),
                               ('python3-statsd', os.path.exists(
                                   '/usr/lib/python3/dist-packages/statsd/__init__.py')))
               if not ok]
    if missing:
        raise tt.Skip('%s not installed (tools/setup-host installs them)' % ', '.join(missing))
    ns, iface, _, _ = setup_veth(ctx)
    redis = ctx.redis()
    tally = ctx.tally(['net_af_packet0,iface=%s' % iface],
                      ['--redis', redis.addr, '--ipv4', TALLY_IP, '--stats-ms', '100',
                       '--window-ms', '600000', '--statsd-port', str(PORT),
                       '--histogram-series', '64', '--distinct-series', '64'],
                      redis=redis)
    tally.wait_stats(lambda s: s.get('workers') == 1, timeout=15, what='tally running')

    js = os.path.join(ctx.tmp, 'hot-shots.js')
    py = os.path.join(ctx.tmp, 'py-statsd.py')
    with open(js, 'w') as f:
        f.write(HOT_SHOTS)
    with open(py, 'w') as f:
        f.write(PY_STATSD)
    env = 'NODE_PATH=' + NODE_MODULES
    # the kernel of the namespace resolves tally's address through tally's ARP replies
    tt.run_tool(['env', env, 'node', js, 'dogstatsd', 'hs'], netns=ns, timeout=60)
    tt.run_tool(['env', env, 'node', js, 'statsd', 'hp'], netns=ns, timeout=60)
    tt.run_tool([SYS_PYTHON, py], netns=ns, timeout=60)

    expect, members = {}, {}
    for e, m in (hot_shots_expect('node1', 'hs', True), hot_shots_expect(PEER, 'hp', False),
                 py_expect(PEER)):
        expect.update(e)
        members.update(m)
    # lines: hot-shots 4 x 100 + 3 per mode, python 4 x 50 + 3 + 20
    lines = 2 * 403 + 223
    tally.wait_stats(lambda s: s.get('statsd_lines', 0) >= lines,
                     what='every line the clients sent counted (%d)' % lines)
    tally.stop()
    st = redis.self_stats()
    tt.check_eq(st['statsd_lines'], lines, 'statsd_lines')
    tt.check_eq(st['statsd_refused'], 0, 'statsd_refused')
    tt.check_eq(st['rx_missed'], 0, 'rx_missed')

    want = {(device_id(d), metric_id(s)): v for (d, s), v in expect.items()}
    tt.compare_totals_text(tt.format_totals(want), tt.query_totals(ctx, redis))
    tt.log('%d series of 3 clients exact' % len(want))
    names = redis.client.hgetall('tally:names')
    for (_, s) in expect:
        tt.check_eq(names.get(str(metric_id(s))), s, 'tally:names of ' + s)
    # the window's fields are named by the series' text: HGETALL reads naturally
    fields = {}
    for dev in ('node1', PEER):
        win = redis.client.call('GET', 'tally:{%d}:latest' % device_id(dev))
        fields[dev] = redis.client.hgetall('tally:{%d}:%s' % (device_id(dev), win))
    for (dev, series), (count, total, lo, hi) in expect.items():
        f = fields[dev]
        tt.check_eq(f.get(series + ':count'), str(count), '%s %s:count' % (dev, series))
        if total is not None:
            tt.check_eq(float(f[series + ':sum']), total, '%s %s:sum' % (dev, series))
            tt.check_eq(float(f[series + ':max']), hi, '%s %s:max' % (dev, series))
    tt.check_eq(fields['node1'].get('hs.req{az:a,env:prod}:rate'), '%.17g' % (600 / 600),
                'a counter\'s rate')
    tt.check(not any(k.split(':')[0].isdigit() for k in fields['node1']),
             'no field of a statsd device named by an id: %s' % sorted(fields['node1']))

    # timers: quantiles within 1% of the exact ones (rank floor(q (n - 1)))
    for dev, series, values in (('node1', 'hs.lat{az:a,env:prod}', range(1, 101)),
                                (PEER, 'hp.lat', range(1, 101)),
                                (PEER, 'py.lat', [i + 0.5 for i in range(50)])):
        # by ids, and by the device's name and the series' text
        j = json.loads(query(ctx, redis, ['--json', 'quantile', '--q', '0.5,0.9,0.99',
                                          device_id(dev), metric_id(series)]))
        tt.check_eq(j.get('series'), series, 'quantile by ids names the series')
        tt.check_eq(json.loads(query(ctx, redis, ['--json', 'quantile', '--q',
                                                  '0.5,0.9,0.99', dev, series])), j,
                    'quantile by names')
        got = {float(q['q']): q['value'] for q in j['quantiles']}
        for q, v in got.items():
            exact = sorted(values)[int(q * (len(values) - 1))]
            tt.check(abs(v - exact) <= 0.01 * exact,
                     '%s p%g: %s, exact %s (more than 1%% off)' % (series, q * 100, v, exact))
    # sets: the distinct count of their members
    for (dev, series), n in members.items():
        j = json.loads(query(ctx, redis, ['--json', 'distinct', dev, series]))
        tt.check_eq(j['distinct'], n, 'distinct members of %s' % series)


if __name__ == '__main__':
    tt.main(body)
