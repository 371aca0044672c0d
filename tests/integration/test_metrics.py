#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""--metrics-listen: tally's counters in the Prometheus text format and OpenMetrics, scraped by
a real Prometheus (Debian's) and read back through its HTTP API.

Two workers read two tally-gen captures (valid and malformed datagrams) from net_pcap. Then:
every row of `tally -- --counters` is a family of /metrics with its HELP and TYPE, promtool
finds nothing to lint, the values equal tally-gen's (records, datagrams, each malformed reason,
the port's packets) and tally:self's per-worker fields; OpenMetrics when asked for (families,
UNIT, # EOF); the bounds answer as documented (404, 405, 400, 431, 408, 503, HEAD) and are
counted; a Prometheus scraping every second answers sum(tally_records_total) and the others
with the same numbers. A bad --metrics-listen and a port in use: one line, non-zero exit."""

import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request

import tallytest as tt

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse(text):
    """Exposition text: ({family: (type, help)}, [(name, {labels}, value)])."""
    meta, samples = {}, []
    for line in text.splitlines():
        if line.startswith('# HELP '):
            name, _, help_ = line[7:].partition(' ')
            meta.setdefault(name, {})['help'] = help_
        elif line.startswith('# TYPE '):
            name, _, typ = line[7:].partition(' ')
            meta.setdefault(name, {})['type'] = typ
        elif line.startswith('# UNIT '):
            name, _, unit = line[7:].partition(' ')
            meta.setdefault(name, {})['unit'] = unit
        elif line.startswith('#') or not line:
            continue
        else:
            m = SAMPLE.match(line)
            tt.check(m is not None, 'not a sample line: %r' % line)
            labels = dict(LABEL.findall(m.group(2) or ''))
            samples.append((m.group(1), labels, float(m.group(3))))
    return meta, samples


def total(samples, name, **want):
    """Sum of the samples of name whose labels include want."""
    return sum(v for n, lab, v in samples
               if n == name and all(lab.get(k) == x for k, x in want.items()))


def get(port, path='/metrics', method='GET', headers=None):
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
    c.request(method, path, headers=headers or {})
    r = c.getresponse()
    body = r.read().decode()
    c.close()
    return r.status, r.getheader('Content-Type'), r.getheader('Content-Length'), body


def raw(port, data, wait_close=10.0):
    """Send data on a new connection; the whole reply until the server closes."""
    s = socket.create_connection(('127.0.0.1', port), timeout=wait_close)
    if data:
        s.sendall(data)
    out = b''
    while True:
        b = s.recv(65536)
        if not b:
            break
        out += b
    s.close()
    return out.decode(errors='replace')


def counter_rows(ctx):
    """`tally -- --counters`: {prometheus family base: (kind, help)} for the plain rows."""
    _, out, _ = tt.run_tool([ctx.args.tally, '--', '--counters'])
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip('|').split(' | ')]
        if len(cells) != 5 or not cells[3].startswith('`tally_'):
            continue
        prom = cells[3].strip('`')
        if 'reason=' in prom or 'worker="i"' in prom:
            continue  # per reason, per worker: the families are checked by name below
        rows[prom.split('{')[0]] = (cells[1], cells[4])
    tt.check(len(rows) > 80, 'tally --counters gave %d rows' % len(rows))
    return rows


def check_errors(port):
    """Each bound of the endpoint answers its status; returns how many error replies."""
    st, _, _, _ = get(port, '/nope')
    tt.check_eq(st, 404, 'GET /nope')
    st, _, _, _ = get(port, '/metrics', method='POST')
    tt.check_eq(st, 405, 'POST /metrics')
    reply = raw(port, b'nonsense\r\n\r\n')
    tt.check(reply.startswith('HTTP/1.1 400 '), '400 for a bad request line: %r' % reply[:40])
    reply = raw(port, b'GET /metrics HTTP/1.1\r\nX-Big: ' + b'a' * 5000)
    tt.check(reply.startswith('HTTP/1.1 431 '), '431 for 5 KB of headers: %r' % reply[:40])
    # A request that never ends: 408 once the 5 s timeout has passed.
    t0 = time.monotonic()
    reply = raw(port, b'GET /metrics HTTP/1.1\r\nHost: x\r\n', wait_close=15)
    took = time.monotonic() - t0
    tt.check(reply.startswith('HTTP/1.1 408 '), '408 for a slow request: %r' % reply[:40])
    tt.check(4.0 <= took <= 10.0, '408 after the 5 s timeout (%.1f s)' % took)
    # Four idle connections take every slot; a fifth is answered 503 and closed.
    idle = [socket.create_connection(('127.0.0.1', port), timeout=10) for _ in range(4)]
    try:
        time.sleep(0.5)
        reply = raw(port, b'')
        tt.check(reply.startswith('HTTP/1.1 503 '), '503 over the connection limit: %r'
                 % reply[:40])
    finally:
        for s in idle:
            s.close()
    # HEAD: the headers of GET, no body.
    reply = raw(port, b'HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n')
    head, _, body = reply.partition('\r\n\r\n')
    tt.check(head.startswith('HTTP/1.1 200 ') and 'Content-Length: ' in head and body == '',
             'HEAD /metrics: %r' % reply[:200])
    return 5  # 404, 405, 400, 431, 408


def prom_query(port, q):
    url = 'http://127.0.0.1:%d/api/v1/query?query=%s' % (port, urllib.parse.quote(q))
    with urllib.request.urlopen(url, timeout=5) as r:
        doc = json.loads(r.read().decode())
    tt.check_eq(doc.get('status'), 'success', 'query %s' % q)
    return doc['data']['result']


def prom_value(port, q):
    """The one value of an instant query, or None while there is none."""
    res = prom_query(port, q)
    return float(res[0]['value'][1]) if len(res) == 1 else None


def run_prometheus(ctx, target_port):
    """A Prometheus scraping tally every second; returns its HTTP port."""
    exe = shutil.which('prometheus')
    if exe is None:
        raise tt.Skip('no prometheus binary (Debian package prometheus; tools/setup-host '
                      'installs it)')
    port = tt.free_port()
    conf = os.path.join(ctx.tmp, 'prometheus.yml')
    with open(conf, 'w') as f:
        f.write('global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n'
                'scrape_configs:\n  - job_name: tally\n    static_configs:\n'
                "      - targets: ['127.0.0.1:%d']\n" % target_port)
    logpath = os.path.join(ctx.tmp, 'prometheus.log')
    logf = open(logpath, 'wb')
    ctx.logs.append(('prometheus', logpath))
    ctx.spawn([exe, '--config.file', conf, '--storage.tsdb.path',
               os.path.join(ctx.tmp, 'tsdb'), '--web.listen-address', '127.0.0.1:%d' % port],
              stdout=logf, name='prometheus')
    return port


def body(ctx):
    a_pcap = os.path.join(ctx.tmp, 'a.pcap')
    b_pcap = os.path.join(ctx.tmp, 'b.pcap')
    ga = tt.tally_gen(ctx, ['--pcap', a_pcap, '--datagrams', '3000', '--devices', '200',
                            '--records', '8', '--malformed', '40', '--seed', '3'])
    gb = tt.tally_gen(ctx, ['--pcap', b_pcap, '--datagrams', '2000', '--devices', '100',
                            '--device-base', '1000', '--records', '4', '--malformed', '25',
                            '--seed', '4'])
    records = ga['records'] + gb['records']
    valid = ga['valid_datagrams'] + gb['valid_datagrams']
    frames = ga['datagrams'] + gb['datagrams']
    reasons = {r: ga.get('malformed:' + r, 0) + gb.get('malformed:' + r, 0)
               for r in tt.MALFORMED_REASONS}

    # Bad values: one line naming the key, exit 2, before EAL starts.
    for bad in ('127.0.0.1', '1.2.3:80', '127.0.0.1:99999', 'localhost:9100', '::1:9100'):
        rc, out, err = tt.run_tool([ctx.args.tally, '--', '--metrics-listen', bad], ok=None)
        tt.check_eq(rc, 2, '--metrics-listen %s: exit status' % bad)
        lines = err.strip().splitlines()
        tt.check(len(lines) == 1 and lines[0].startswith('tally: --metrics-listen: '),
                 '--metrics-listen %s: one line naming the key: %r' % (bad, err))

    rows = counter_rows(ctx)
    redis = ctx.redis()
    port = tt.free_port()
    tally = ctx.tally(['net_pcap0,rx_pcap=%s,rx_pcap=%s' % (a_pcap, b_pcap)],
                      ['--redis', redis.addr, '--stats-ms', '100',
                       '--metrics-listen', '127.0.0.1:%d' % port],
                      workers=2, redis=redis)
    st = tt.wait_all_aggregated(tally, valid, records, 2)

    # A second tally on the same address: one line, exit 1, nothing else started.
    other = ctx.tally(['net_null0'], ['--redis', redis.addr, '--metrics-listen',
                                      '127.0.0.1:%d' % port], name='tally-busy')
    rc = other.proc.wait(30)
    tt.check_eq(rc, 1, 'a second tally on a port in use: exit status')
    text = other.log_text()
    tt.check(re.search(r'^tally: --metrics-listen: cannot listen on 127\.0\.0\.1 port %d: '
                       r'Address already in use$' % port, text, re.M) is not None,
             'port in use: one line saying so:\n%s' % text[-600:])

    status, ctype, _, text = get(port)
    tt.check_eq(status, 200, 'GET /metrics')
    tt.check_eq(ctype, 'text/plain; version=0.0.4; charset=utf-8', 'content type')
    lint = subprocess.run(['promtool', 'check', 'metrics'], input=text.encode(),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    tt.check(lint.returncode == 0 and not lint.stdout.strip(),
             'promtool check metrics: rc %d\n%s' % (lint.returncode, lint.stdout.decode()))
    meta, samples = parse(text)
    for base, (kind, help_) in rows.items():
        name = base
        tt.check(name in meta, '/metrics lacks the family %s' % name)
        tt.check_eq(meta[name].get('type'), kind, '%s TYPE' % name)
        tt.check_eq(meta[name].get('help'), help_, '%s HELP' % name)
        tt.check(any(n == name for n, _, _ in samples), '%s has no sample' % name)
    for fam in ('tally_malformed_reason_total', 'tally_statsd_refused_reason_total'):
        tt.check_eq(meta.get(fam, {}).get('type'), 'counter', fam + ' TYPE')
    tt.check_eq(meta.get('tally_window_write_lag_seconds', {}).get('type'), 'histogram',
                'window write lag histogram TYPE')

    tt.check_eq(total(samples, 'tally_records_total'), records, 'sum(tally_records_total)')
    tt.check_eq(total(samples, 'tally_datagrams_total'), valid, 'sum(tally_datagrams_total)')
    tt.check_eq(total(samples, 'tally_rx_packets_total'), frames, 'sum(tally_rx_packets_total)')
    tt.check_eq(total(samples, 'tally_port_ipackets_total', port='net_pcap0'), frames,
                'tally_port_ipackets_total{port="net_pcap0"}')
    for r, n in reasons.items():
        tt.check_eq(total(samples, 'tally_malformed_reason_total', reason=r), n,
                    'malformed reason %s' % r)
    for w in range(2):
        tt.check_eq(total(samples, 'tally_aggregated_total', worker=str(w)),
                    st['w%d:records' % w], 'worker %d aggregated = tally:self w%d:records'
                    % (w, w))
    tt.check(total(samples, 'tally_aggregated_total', worker='0') > 0 and
             total(samples, 'tally_aggregated_total', worker='1') > 0, 'both workers worked')
    tt.check_eq(total(samples, 'tally_workers'), 2, 'tally_workers')
    lag_count = total(samples, 'tally_window_write_lag_seconds_count')
    tt.check_eq(total(samples, 'tally_window_write_lag_seconds_bucket', le='+Inf'), lag_count,
                'lag histogram: +Inf bucket = count')
    tt.check_eq(lag_count, total(samples, 'tally_windows_flushed_total'),
                'lag histogram count = windows_flushed')

    # OpenMetrics when the scraper asks for it.
    status, ctype, _, om = get(port, headers={
        'Accept': 'application/openmetrics-text;version=1.0.0,text/plain;q=0.5'})
    tt.check_eq(ctype, 'application/openmetrics-text; version=1.0.0; charset=utf-8',
                'OpenMetrics content type')
    tt.check(om.endswith('\n# EOF\n'), 'OpenMetrics ends with # EOF')
    ometa, osamples = parse(om)
    tt.check_eq(ometa.get('tally_records', {}).get('type'), 'counter',
                'OpenMetrics counter family without _total')
    tt.check_eq(ometa.get('tally_spool_bytes', {}).get('unit'), 'bytes', 'OpenMetrics UNIT')
    tt.check_eq(total(osamples, 'tally_records_total'), records, 'OpenMetrics records')

    errors = check_errors(port)
    _, _, _, text = get(port)
    _, samples = parse(text)
    tt.check_eq(total(samples, 'tally_metrics_errors_total'), errors, 'metrics_errors')
    tt.check_eq(total(samples, 'tally_metrics_refused_total'), 1, 'metrics_refused')
    tt.check(total(samples, 'tally_metrics_scrapes_total') >= 3, 'metrics_scrapes counted')

    # A real Prometheus: scrape, then read tally's numbers back through its query API.
    pport = run_prometheus(ctx, port)

    def scraped():
        try:
            return prom_value(pport, 'up{job="tally"}') == 1 and \
                prom_value(pport, 'sum(tally_records_total)') is not None
        except OSError:
            return False
    tt.wait_until(scraped, 60, 'Prometheus scraping tally')
    tt.check_eq(prom_value(pport, 'sum(tally_records_total)'), records,
                'Prometheus: sum(tally_records_total)')
    tt.check_eq(prom_value(pport, 'sum(tally_datagrams_total)'), valid,
                'Prometheus: sum(tally_datagrams_total)')
    tt.check_eq(prom_value(pport, 'sum(tally_malformed_reason_total{reason="magic"})'),
                reasons['magic'], 'Prometheus: malformed magic')
    tt.check_eq(prom_value(pport, 'tally_port_ipackets_total{port="net_pcap0"}'), frames,
                'Prometheus: port packets')
    tt.check_eq(prom_value(pport, 'count(tally_records_total)'), 2,
                'Prometheus: one series per worker')
    tt.check_eq(prom_value(pport, 'tally_window_write_lag_seconds_count - '
                                  'tally_windows_flushed_total'), 0,
                'Prometheus: the lag histogram counts every flushed window')
    q = prom_value(pport, 'histogram_quantile(0.5, tally_window_write_lag_seconds_bucket)')
    tt.check(q is not None and 0 <= q <= 60, 'Prometheus: median window write lag %s' % q)
    tally.stop()
    tt.log('/metrics: %d families, %d samples; Prometheus read sum(tally_records_total) = %d'
           % (len(meta), len(samples), records))


if __name__ == '__main__':
    tt.main(body)
