#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""The metric catalog end to end: tally writes --catalog (or the [metrics] section of --config)
to tally:catalog; tally-query prints names and units and takes a name for a METRIC; a record
of another kind than the catalog's counts as kind_mismatch and is aggregated as the catalog's
kind; a bad catalog is one line naming its file and line."""

import csv
import io
import json
import os
import subprocess

import tallytest as tt

WINDOW_MS = 60000
DEVICES = 20
DATAGRAMS = 600
# metric 3 is sent as a gauge (kind 2) though the catalog says histogram
KINDS = '1,2,2,4'
CATALOG = ('; the test\'s metrics\n'
           '[metrics]\n'
           '1 = requests count counter\n'
           '2 = cpu.temp celsius gauge   ; a comment after an entry\n'
           '3 = latency.ms ms histogram\n'
           '4 = users - distinct\n')
WANT = {'1': 'requests count counter', '2': 'cpu.temp celsius gauge',
        '3': 'latency.ms ms histogram', '4': 'users - distinct'}
NAMES = {1: ('requests', 'count', 'counter'), 2: ('cpu.temp', 'celsius', 'gauge'),
         3: ('latency.ms', 'ms', 'histogram'), 4: ('users', None, 'distinct')}
# the [metrics] section of a --config file: ids at the ends of the range too
CONFIG_METRICS = ('[metrics]\n'
                  '0 = zero - counter\n'
                  '7 = disk.used bytes gauge\n'
                  '65536 = above.dense s histogram\n'
                  '4294967295 = last.id - distinct\n')
CONFIG_WANT = {'0': 'zero - counter', '7': 'disk.used bytes gauge',
               '65536': 'above.dense s histogram', '4294967295': 'last.id - distinct'}
WIRING = ('(this check needs the catalog\'s kind on the data path: tally_catalog_kind() in '
          'the worker/table)')


def write(ctx, name, text):
    path = os.path.join(ctx.tmp, name)
    with open(path, 'w') as f:
        f.write(text)
    return path


def query(ctx, redis, args, ok=(0,)):
    return tt.run_tool([ctx.args.tally_query, '--redis', redis.addr] + [str(a) for a in args],
                       ok=ok)


def query_json(ctx, redis, args):
    return json.loads(query(ctx, redis, ['--json'] + list(args))[1])


def query_csv(ctx, redis, args):
    return list(csv.DictReader(io.StringIO(query(ctx, redis, ['--csv'] + list(args))[1])))


def run_tally(ctx, redis, pcap, args):
    return ctx.tally(['net_pcap0,rx_pcap=' + pcap],
                     ['--redis', redis.addr, '--stats-ms', '100', '--window-ms', str(WINDOW_MS),
                      '--table-series', '16384'] + list(args), redis=redis)


def check_catalog_key(redis, want, what):
    got = redis.client.hgetall('tally:catalog')
    tt.check_eq(got, want, '%s: tally:catalog' % what)


def check_queries(ctx, redis, totals, dev):
    """Names and units in latest, range, distinct and the catalog command; names as METRIC."""
    j = query_json(ctx, redis, ['latest', dev])
    got = {m['metric']: (m['name'], m['unit']) for m in j['metrics']}
    tt.check_eq(got, {m: NAMES[m][:2] for m in got}, 'latest --json name and unit')
    tt.check_eq(sorted(got), [1, 2, 3, 4], 'latest --json metrics')
    rows = query_csv(ctx, redis, ['latest', dev])
    tt.check_eq([(int(r['metric']), r['name'], r['unit']) for r in rows],
                [(m, n, u or '') for m, (n, u, _) in sorted(NAMES.items())],
                'latest --csv name and unit (empty: none)')
    out = query(ctx, redis, ['latest', dev])[1].splitlines()
    tt.check_eq(out[1].split()[:4], ['metric', 'name', 'unit', 'count'], 'latest table header')
    tt.check_eq(out[3].split()[:3], ['2', 'cpu.temp', 'celsius'], 'latest table row of metric 2')
    tt.check_eq(out[5].split()[:3], ['4', 'users', '-'], 'latest table row of metric 4')

    by_name = query_json(ctx, redis, ['range', dev, 'cpu.temp'])
    tt.check_eq(by_name, query_json(ctx, redis, ['range', dev, '2']), 'range by name and by id')
    tt.check(by_name and all((r['name'], r['unit']) == ('cpu.temp', 'celsius') for r in by_name),
             'range --json rows carry the name and unit: %s' % by_name[:1])
    tt.check_eq(sum(r['count'] for r in by_name), totals[(dev, 2)][0], 'range count of metric 2')
    out = query(ctx, redis, ['range', dev, 'cpu.temp'])[1].splitlines()
    tt.check_eq(out[0], 'device %d  metric 2  name cpu.temp  unit celsius' % dev,
                'range header line')
    rows = query_csv(ctx, redis, ['range', dev, 'cpu.temp'])
    tt.check(rows and all((r['name'], r['unit']) == ('cpu.temp', 'celsius') for r in rows),
             'range --csv name and unit')

    j = query_json(ctx, redis, ['distinct', dev, 'users'])
    tt.check_eq((j['metric'], j['name'], j['unit']), (4, 'users', None), 'distinct by name')
    out = query(ctx, redis, ['distinct', dev, 'users'])[1].splitlines()
    tt.check_eq(out[0], 'device %d  metric 4  name users  unit -' % dev, 'distinct header')

    j = query_json(ctx, redis, ['catalog'])
    tt.check_eq([(e['metric'], e['name'], e['unit'], e['kind']) for e in j],
                [(m,) + NAMES[m] for m in sorted(NAMES)], 'catalog --json')
    rows = query_csv(ctx, redis, ['catalog'])
    tt.check_eq([(r['metric'], r['name'], r['unit'], r['kind']) for r in rows],
                [(str(m), n, u or '', k) for m, (n, u, k) in sorted(NAMES.items())],
                'catalog --csv')
    out = query(ctx, redis, ['catalog'])[1].splitlines()
    tt.check_eq([ln.split() for ln in out],
                [['metric', 'name', 'unit', 'kind']] +
                [[str(m), n, u or '-', k] for m, (n, u, k) in sorted(NAMES.items())],
                'catalog table')

    for args in (['range', dev, 'no.such.metric'], ['quantile', dev, 'cpu.temps'],
                 ['distinct', '--devices', '1-3', '-', 'nope']):
        rc, so, se = query(ctx, redis, args, ok=None)
        tt.check(rc == 2 and len(se.splitlines()) == 1 and repr(args[-1]) in se,
                 '%s: want exit 2 and one line naming %r, got %d: %r' % (args, args[-1], rc, se))
    rc, so, se = query(ctx, redis, ['range', dev, 'a!b'], ok=None)
    tt.check(rc == 2 and len(se.splitlines()) == 1, 'a METRIC that is no name: %d %r' % (rc, se))
    tt.log('latest, range, distinct and catalog print names and units; names resolve')


def check_data_path(ctx, redis, totals, dev):
    """The catalog's kind wins over the record's: metric 3 (sent as gauges) is a histogram."""
    st = redis.self_stats()
    sent3 = sum(v[0] for (d, m), v in totals.items() if m == 3)
    tt.check_eq(st.get('kind_mismatch'), sent3,
                'tally:self kind_mismatch = the records of metric 3 ' + WIRING)
    keys = [k for k in redis.client.scan('tally:{*') if tt.WINDOW_KEY.match(k)]
    fields = set()
    for k in keys:
        fields.update(redis.client.hgetall(k))
    tt.check('3:sketch' in fields, 'metric 3 has a 3:sketch field ' + WIRING)
    tt.check('3:last' not in fields, 'metric 3 (a histogram) has no 3:last field ' + WIRING)
    j = query_json(ctx, redis, ['quantile', dev, 'latency.ms'])
    tt.check_eq((j['metric'], j['name'], j['unit'], j['count']),
                (3, 'latency.ms', 'ms', totals[(dev, 3)][0]), 'quantile by name ' + WIRING)
    tt.check_eq(j, query_json(ctx, redis, ['quantile', dev, '3']), 'quantile by name and by id')
    out = query(ctx, redis, ['quantile', dev, 'latency.ms'])[1].splitlines()
    tt.check(out[0].startswith('device %d  metric 3  name latency.ms  unit ms  windows ' % dev),
             'quantile header line: %r' % out[0])
    tt.log('kind_mismatch %d = metric 3\'s records; metric 3 stored as a histogram' % sent3)


def catalog_run(ctx):
    cat = write(ctx, 'metrics.ini', CATALOG)
    pcap = os.path.join(ctx.tmp, 'cat.pcap')
    totals_path = os.path.join(ctx.tmp, 'cat.totals')
    g = tt.tally_gen(ctx, ['--pcap', pcap, '--datagrams', str(DATAGRAMS), '--records', '8',
                           '--devices', str(DEVICES), '--metrics', '4', '--kinds', KINDS,
                           '--totals', totals_path])
    totals = tt.read_totals(totals_path)
    # the device with the most records of metric 3
    dev = max((v[0], d) for (d, m), v in totals.items() if m == 3)[1]
    tt.check(all((dev, m) in totals for m in (1, 2, 3, 4)), 'device %d has every metric' % dev)
    redis = ctx.redis()
    tt.wait_window_margin(WINDOW_MS, 15000)
    t = run_tally(ctx, redis, pcap, ['--catalog', cat])
    t.wait_telemetry(lambda s: s.get('datagrams') == g['valid_datagrams'], timeout=30,
                     what='datagrams=%s' % g['valid_datagrams'])
    tt.wait_until(lambda: redis.client.call('EXISTS', 'tally:catalog'), 10,
                  'tally:catalog written')
    t.stop()
    tt.check('TALLY: catalog %s: 4 metrics' % cat in t.log_text(), 'the catalog log line')
    check_catalog_key(redis, WANT, '--catalog')
    # totals stay as they were, byte for byte
    tt.compare_totals(totals_path, tt.query_totals(ctx, redis))
    check_queries(ctx, redis, totals, dev)
    return redis, totals, dev


def config_metrics(ctx):
    """A --config file with [tally] and [metrics]: the section is the catalog."""
    redis = ctx.redis()
    cfg = write(ctx, 'tally.ini', '[tally]\nredis = %s\nstats-ms = 100\n\n%s'
                % (redis.addr, CONFIG_METRICS))
    empty, _, _ = tt.gen_capture(ctx, 'empty', 0)
    t = ctx.tally(['net_pcap0,rx_pcap=' + empty], ['--config', cfg], redis=redis)
    tt.wait_until(lambda: redis.client.call('EXISTS', 'tally:catalog'), 10,
                  'tally:catalog written')
    t.stop()
    tt.check('TALLY: catalog %s: 4 metrics' % cfg in t.log_text(), 'the catalog log line')
    check_catalog_key(redis, CONFIG_WANT, '[metrics] of --config')
    j = query_json(ctx, redis, ['catalog'])
    tt.check_eq([e['metric'] for e in j], [0, 7, 65536, 4294967295], 'catalog ids in order')
    tt.log('--config with [tally] and [metrics]: tally:catalog holds the section')


def bad_catalogs(ctx):
    """A bad catalog: exit 2 before EAL starts, one line naming the file and line."""
    cases = (
        ('bad_kind.ini', '[metrics]\n1 = a gauge\n2 = b gaugee\n', '--catalog',
         "bad_kind.ini:3: id 2: unknown kind 'gaugee'"),
        ('dup_id.ini', '[metrics]\n1 = a gauge\n\n1 = b counter\n', '--catalog',
         'dup_id.ini:4: id 1 is already given on line 2'),
        ('dup_name.ini', '[metrics]\n1 = a gauge\n2 = a counter\n', '--catalog',
         "dup_name.ini:3: name 'a' is already given on line 2"),
        ('cfg_bad.ini', '[tally]\nstats-ms = 100\n[metrics]\nx = a gauge\n', '--config',
         "cfg_bad.ini:4: bad id 'x'"),
        ('cfg_other.ini', '[tally]\n[metrics]\n1 = a gauge\n[stuff]\n', '--config',
         'cfg_other.ini:4: section [stuff] is neither [tally] nor [metrics]'),
    )
    for name, text, opt, want in cases:
        path = write(ctx, name, text)
        ctx.ntally += 1
        prefix = 'tally_it_%d_%d' % (os.getpid(), ctx.ntally)
        ctx.dpdk_dirs.append(os.path.join(tt.DPDK_RUNTIME, prefix))
        argv = ([ctx.args.tally] + tt.lcores_arg(1) +
                ['--no-huge', '-m', '512', '--file-prefix', prefix, '--no-pci', '--', opt, path])
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=20)
        err = p.stderr.decode(errors='replace')
        lines = err.splitlines()
        tt.check(p.returncode == 2 and len(lines) == 1 and want in lines[0],
                 '%s: want exit 2 and one line with %r, got %d:\n%s'
                 % (name, want, p.returncode, err))
        tt.log('%s: %s' % (name, lines[0]))


def body(ctx):
    bad_catalogs(ctx)
    config_metrics(ctx)
    redis, totals, dev = catalog_run(ctx)
    check_data_path(ctx, redis, totals, dev)


if __name__ == '__main__':
    tt.main(body)
