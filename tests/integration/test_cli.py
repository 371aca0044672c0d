#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""tally's command line and INI file: --help, one-line errors, precedence, Redis unreachable."""

import os
import re
import signal
import subprocess
import time

import tallytest as tt

OPTIONS = ('config', 'redis', 'udp-port', 'ipv4', 'ipv6', 'window-ms', 'mbufs', 'flush-batch',
           'flush-ms', 'retention-s', 'stats-ms', 'table-series', 'help')
DATAGRAMS = 500
SAMPLE_INI = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'config',
                          'tally.ini')


def eal_args(ctx):
    """EAL arguments of a run that must fail before or right after EAL init."""
    ctx.ntally += 1
    prefix = 'tally_it_%d_%d' % (os.getpid(), ctx.ntally)
    ctx.dpdk_dirs.append(os.path.join(tt.DPDK_RUNTIME, prefix))
    return tt.lcores_arg(1) + ['--no-huge', '-m', '512', '--file-prefix', prefix, '--no-pci']


def run_tally(ctx, args, timeout=20.0):
    argv = [ctx.args.tally] + list(args)
    tt.log('run: ' + ' '.join(argv))
    t = time.monotonic()
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    return (p.returncode, p.stdout.decode(errors='replace'), p.stderr.decode(errors='replace'),
            time.monotonic() - t)


def check_help(ctx):
    rc, out, err, _ = run_tally(ctx, ['--', '--help'])
    tt.check_eq(rc, 0, 'tally -- --help exit status')
    listed = set(re.findall(r'^\s+--([a-z0-9-]+)', out, re.M))
    missing = [o for o in OPTIONS if o not in listed]
    tt.check(not missing, '--help does not list %s:\n%s' % (missing, out))
    return out


def check_bad(ctx, app_args, name, with_eal=True):
    """A bad value: non-zero exit, exactly one stderr line, naming the option or key."""
    args = (eal_args(ctx) if with_eal else []) + ['--'] + app_args
    rc, out, err, took = run_tally(ctx, args)
    lines = err.splitlines()
    tt.check_eq(rc, 2, '%s: exit status (stderr %r)' % (app_args, err))
    tt.check(len(lines) == 1, '%s: expected one line on stderr, got %d:\n%s'
             % (app_args, len(lines), err))
    tt.check(name in lines[0], '%s: the error does not name %r: %r' % (app_args, name, lines[0]))
    tt.check(took < 5, '%s: took %.1fs to fail' % (app_args, took))
    tt.log('rc %d: %s' % (rc, lines[0]))


def write(ctx, name, text):
    path = os.path.join(ctx.tmp, name)
    with open(path, 'w') as f:
        f.write(text)
    return path


def defaults_ini(ctx, help_text, redis):
    """An INI file with every option of --help at its documented default."""
    lines = ['; every key of --help at its default', '[tally]']
    for m in re.finditer(r'^\s+--([a-z0-9-]+) \S+\s.*\(default ([^)]+)\)$', help_text, re.M):
        key, val = m.group(1), m.group(2)
        lines.append('%s = %s' % (key, redis.addr if key == 'redis' else val))
    tt.check(len(lines) > 10, 'too few defaults found in --help')
    return write(ctx, 'defaults.ini', '\n'.join(lines) + '\n')


def replay_counts(ctx, redis, pcap, app_args):
    """Run tally on the capture until every frame is counted; returns final tally:self."""
    redis.flushall()
    tally = ctx.tally(['net_pcap0,rx_pcap=' + pcap], app_args, redis=redis)
    tally.wait_stats(lambda s: s.get('datagrams', 0) + s.get('other', 0) >= DATAGRAMS,
                     timeout=20, what='%d frames counted' % DATAGRAMS)
    tally.stop()
    return redis.self_stats()


def body(ctx):
    help_text = check_help(ctx)

    bad_ini_key = write(ctx, 'badkey.ini', '[tally]\nstats-ms = 100\nno-such-key = 1\n')
    bad_ini_val = write(ctx, 'badval.ini', '[tally]\nwindow-ms = abc\n')
    no_equals = write(ctx, 'noeq.ini', '[tally]\n; a comment\nwindow-ms 1000\n')
    twice = write(ctx, 'twice.ini', '[tally]\nstats-ms = 100\nwindow-ms = 500\nstats-ms = 200\n')
    for app_args, name in ((['--window-ms', 'abc'], 'window-ms'),
                           (['--window-ms', '0'], 'window-ms'),
                           (['--udp-port', '70000'], 'udp-port'),
                           (['--redis', 'nohost'], 'redis'),
                           (['--ipv4', '1.2.3'], 'ipv4'),
                           (['--bogus', '1'], 'bogus'),
                           (['--config', bad_ini_key], 'no-such-key'),
                           (['--config', bad_ini_val], 'window-ms'),
                           (['--config', os.path.join(ctx.tmp, 'missing.ini')],
                            'missing.ini: No such file or directory'),
                           (['--config', no_equals], 'noeq.ini:3:'),
                           (['--config', twice], 'twice.ini:4: key \'stats-ms\' is already set '
                            'on line 2'),
                           (['--config', bad_ini_val], 'badval.ini:2: --window-ms'),
                           (['--window-ms', ' 1000'], '--window-ms'),
                           (['--window-ms', '1000 '], '--window-ms'),
                           (['--instance', '-h'], '--instance'),
                           (['--spool-dir', '--stats-ms', '100'], '--spool-dir'),
                           (['--breaker-backoff-ms', '6000'], '--breaker-max-ms'),
                           (['--breaker-backoff-ms', '200', '--breaker-max-ms', '100'],
                            '--breaker-backoff-ms')):
        check_bad(ctx, app_args, name)
    check_bad(ctx, ['--stats-ms', '5'], 'stats-ms', with_eal=False)

    # Options that have no effect with the others: a warning each, and the run goes on (here
    # to the missing port: no --vdev).
    for app_args, warning in ((['--hot-share', '0.1'], '--hot-share has no effect without '
                               '--partition device'),
                              (['--spool-policy', 'drop-oldest'], '--spool-policy has no '
                               'effect without --spool-dir'),
                              (['--dlq-rate', '5'], '--dlq-rate has no effect without --dlq')):
        rc, out, err, _ = run_tally(ctx, eal_args(ctx) + ['--'] + app_args)
        tt.check('tally: warning: ' + warning in err, '%s: no warning %r in:\n%s'
                 % (app_args, warning, err))
        tt.check('no Ethernet port' in err, '%s: the run did not go on: %s' % (app_args, err))

    # Options that imply more memory than there is: one line at once, nothing allocated.
    for app_args, names in ((['--table-series', '134217728'], ('--table-series', 'MemAvailable')),
                            (['--table-series', '1048576', '--max-memory-mb', '100'],
                             ('--table-series', '--max-memory-mb'))):
        rc, out, err, took = run_tally(ctx, eal_args(ctx) + ['--vdev', 'net_null0', '--'] +
                                       app_args)
        lines = [ln for ln in err.splitlines() if ln.startswith('tally:')]
        tt.check(rc != 0 and len(lines) == 1 and all(n in lines[0] for n in names),
                 '%s: want one line naming %s, got rc %d:\n%s' % (app_args, names, rc, err))
        tt.check(took < 5, '%s: took %.1fs to fail' % (app_args, took))
        tt.log('rc %d in %.2fs: %s' % (rc, took, lines[0]))

    # SIGTERM while large tables are being cleared: start-up stops between two of them.
    argv = [ctx.args.tally] + eal_args(ctx) + ['--vdev', 'net_null0', '--', '--table-series',
                                               '4194304', '--sink-queue-mb', '1']
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    ctx.procs.append(('tally-init', p))
    time.sleep(0.8)
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    took = time.monotonic() - t0
    err = err.decode(errors='replace')
    tt.log('SIGTERM during start-up: rc %d %.2fs later: %s' % (p.returncode, took,
                                                             err.strip().splitlines()[-1]))
    tt.check(p.returncode != 0 and 'start-up stopped by a signal' in err,
             'SIGTERM during start-up: rc %d, stderr:\n%s' % (p.returncode, err))
    tt.check(took < 3, 'SIGTERM during start-up: %.1fs to stop' % took)

    # Redis unreachable: a port nobody listens on.
    port = tt.free_port()
    rc, out, err, took = run_tally(ctx, eal_args(ctx) +
                                   ['--vdev', 'net_null0', '--', '--redis',
                                    '127.0.0.1:%d' % port])
    tt.check(rc != 0, 'Redis unreachable: exit status 0')
    tt.check(took < 10, 'Redis unreachable: took %.1fs to exit' % took)
    about = [l for l in (out + err).splitlines() if 'redis' in l.lower()]
    tt.check(len(about) == 1 and str(port) in about[0],
             'Redis unreachable: expected one line naming Redis and port %d, got:\n%s%s'
             % (port, out, err))
    tt.log('Redis unreachable: rc %d after %.2fs: %s' % (rc, took, about[0].strip()))

    # INI accepted, command line wins: the capture goes to port 9797, the INI says 9000.
    redis = ctx.redis()
    pcap = os.path.join(ctx.tmp, 'cli.pcap')
    totals = os.path.join(ctx.tmp, 'cli.totals')
    gen = tt.tally_gen(ctx, ['--pcap', pcap, '--datagrams', str(DATAGRAMS), '--devices', '20',
                             '--dst-port', '9797', '--totals', totals])
    ini = write(ctx, 'tally.ini', '; written by test_cli.py\n[tally]\nredis = %s\n'
                'udp-port = 9000\nstats-ms = 100\nwindow-ms = 500\nretention-s = 120\n'
                % redis.addr)

    st = replay_counts(ctx, redis, pcap, ['--config', ini])
    tt.check_eq((st['datagrams'], st['other']), (0, DATAGRAMS),
                'INI udp-port 9000: (datagrams, other)')

    st = replay_counts(ctx, redis, pcap, ['--udp-port', '9797', '--config', ini])
    tt.check_eq((st['datagrams'], st['other']), (DATAGRAMS, 0),
                'INI udp-port 9000, command line 9797: (datagrams, other)')
    tt.check_self(st, gen)
    tt.compare_totals(totals, tt.query_totals(ctx, redis))
    tt.check_schema(redis, 120, 500)

    # Every documented default, written as an INI file, is accepted as is.
    st = replay_counts(ctx, redis, pcap, ['--config', defaults_ini(ctx, help_text, redis),
                                          '--stats-ms', '100'])
    tt.check_eq(st['datagrams'], DATAGRAMS, 'defaults INI: datagrams')
    tt.check_schema(redis, 86400, 1000)

    # The shipped sample documents every option and is accepted as shipped.
    if os.path.exists(SAMPLE_INI):
        with open(SAMPLE_INI) as f:
            sample = set(re.findall(r'^;?\s*([a-z0-9-]+)\s*=', f.read(), re.M))
        options = set(re.findall(r'^\s+--([a-z0-9-]+)', help_text, re.M)) - {'config', 'help', 'counters', 'check-config'}
        tt.check(options <= sample, '%s lacks keys %s' % (SAMPLE_INI, sorted(options - sample)))
        st = replay_counts(ctx, redis, pcap, ['--config', SAMPLE_INI, '--redis', redis.addr,
                                              '--stats-ms', '100'])
        tt.check_eq(st['datagrams'], DATAGRAMS, 'sample INI: datagrams')


if __name__ == '__main__':
    tt.main(body)
