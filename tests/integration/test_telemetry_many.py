#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""The telemetry socket with many workers (28, over two net_pcap ports of 14 queues): no field
is dropped without a word. /tally/stats holds every field of tally:self (a DPDK dict holds
256; past that `fields_omitted` counts the per-worker ones left out); /tally/workers, past
what DPDK's 16 KB reply takes whole, gives each worker's balance fields and where the rest is;
/tally/worker,<i> gives every counter of one worker."""

import os

import tallytest as tt

WORKERS = 28
HEADER = bytes.fromhex('d4c3b2a1020004000000000000000000ffff000001000000')


def body(ctx):
    empty = os.path.join(ctx.tmp, 'empty.pcap')
    with open(empty, 'wb') as f:
        f.write(HEADER)
    queues = ','.join(['rx_pcap=' + empty] * (WORKERS // 2))
    redis = ctx.redis()
    tally = ctx.tally(['net_pcap0,' + queues, 'net_pcap1,' + queues],
                      ['--redis', redis.addr, '--stats-ms', '100', '--table-series', '1024'],
                      workers=WORKERS, redis=redis)
    tally.wait_stats(lambda s: s.get('workers') == WORKERS, timeout=30, what='tally running')
    st = redis.self_stats()
    tel = tally.telemetry('/tally/stats')
    tt.check(tel is not None, 'telemetry /tally/stats unavailable')
    want = {k.replace(':', '_') for k in st}
    missing = sorted(want - set(tel))
    tt.check_eq(len(missing), tel.get('fields_omitted', 0),
                '/tally/stats: fields left out, and fields_omitted (%s)' % missing[:8])
    tt.check(all(k.startswith('w') and k[1].isdigit() for k in missing),
             'only per-worker fields may be left out: %s' % missing)
    tt.check_eq(tel['workers'], WORKERS, '/tally/stats workers')
    tt.check(tel.get("fields_omitted", 0) > 0, "28 workers fill the dict: some fields left out")

    workers = tally.telemetry('/tally/workers')
    tt.check_eq(sorted(workers), sorted('w%d' % i for i in range(WORKERS)), '/tally/workers')
    one = tally.telemetry('/tally/worker,0')
    tt.check(one is not None and 'datagrams' in one and 'malformed_short' in one,
             '/tally/worker,0 has every counter: %s' % one)
    for i in range(WORKERS):
        w = workers['w%d' % i]
        if 'detail' in w:
            tt.check_eq(w['detail'], '/tally/worker,%d' % i, 'w%d detail' % i)
            full = tally.telemetry(w['detail'])
            tt.check_eq(set(full), set(one), '/tally/worker,%d fields' % i)
            for k, v in w.items():
                if k != 'detail':
                    tt.check_eq(full[k], v, 'w%d %s' % (i, k))
        else:
            tt.check_eq(set(w), set(one), 'w%d fields' % i)
    tt.check(tally.telemetry('/tally/worker,%d' % WORKERS) is None,
             '/tally/worker past the last worker answers null')
    tally.stop()
    tt.log('%d workers: /tally/stats %d fields (%d left out), /tally/workers %d entries'
           % (WORKERS, len(tel), tel.get('fields_omitted', 0), len(workers)))


if __name__ == '__main__':
    tt.main(body)
