#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
"""Redis authentication: a password file, an ACL user, and every refusal as one line at start."""

import os
import subprocess
import time

import tallytest as tt

DATAGRAMS = 5000
RETENTION_S = 600
WINDOW_MS = 1000
# Spaces and shell characters: AUTH must send it as one binary-safe argument.
PASSWORD = 'tally pw #1 $x;'
ACL_USER = 'tally'
ACL_PASSWORD = 'acl-Secret-2'
# What tally and tally-query need, and no more: their keys, reads and writes, the merge
# function (loaded and called), MULTI/EXEC for tally:top, PING; nothing @dangerous.
ACL_RULES = ['on', '>' + ACL_PASSWORD, 'resetkeys', '~tally:*', 'resetchannels', '-@all',
             '+@read', '+@write', '+@scripting', '+@transaction', '+@connection',
             '-@dangerous']


def write_password(ctx, name, text, mode=0o600):
    path = os.path.join(ctx.tmp, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w') as f:
        f.write(text)
    os.chmod(path, mode)
    return path


def query(ctx, redis, auth, args, ok=(0,)):
    """tally-query with the given authentication options; (rc, stdout, stderr)."""
    return tt.run_tool([ctx.args.tally_query, '--redis', redis.addr] + auth + list(args), ok=ok)


def replay(ctx, redis, pcap, auth, what):
    """Replay the capture through tally with auth options until every datagram is counted;
    returns the running tally."""
    redis.flushall()
    tally = ctx.tally(['net_pcap0,rx_pcap=' + pcap],
                      ['--redis', redis.addr, '--stats-ms', '100', '--table-series', '65536',
                       '--retention-s', str(RETENTION_S), '--window-ms', str(WINDOW_MS)] + auth,
                      redis=redis)
    tally.wait_stats(lambda s: s.get('datagrams') == DATAGRAMS, timeout=30,
                     what='%s: datagrams=%d' % (what, DATAGRAMS))
    return tally


def check_exact(ctx, redis, totals, gen, auth, what, lost=0):
    """Exact totals and self-stats; lost: redis_errors of a connection the test killed."""
    st = redis.self_stats()
    tt.log('%s: final tally:self: %s' % (what, tt.fmt_stats(st)))
    tt.check_eq(st['redis_errors'], lost, what + ' redis_errors (commands lost in the kill)')
    tt.check_self(dict(st, redis_errors=0), gen, what + ' tally:self')
    _, out, _ = query(ctx, redis, auth, ['totals'])
    tt.compare_totals(totals, out)
    tt.check_schema(redis, RETENTION_S, WINDOW_MS)
    _, out, _ = query(ctx, redis, auth, ['self'])
    tt.check('datagrams' in out and str(DATAGRAMS) in out,
             '%s: tally-query self printed:\n%s' % (what, out))


def check_reconnect(tally, redis):
    """The sink keeps the password: after its connection is killed it authenticates again.
    Returns the redis_errors of the kill (the stats commands in flight)."""
    tally.wait_stats(lambda s: s.get('windows_flushed', 0) >= 1, timeout=15,
                     what='the window written')
    killed = redis.client.call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes')
    tt.check(killed >= 1, 'CLIENT KILL found no tally connection')
    redis.client.call('DEL', 'tally:self')
    st = tally.wait_stats(lambda s: s.get('redis_failures', 0) >= 1, timeout=15,
                          what='tally:self written again after its connection was killed')
    tt.log('reconnected after CLIENT KILL (%d connection(s)): %s'
           % (killed, tt.fmt_stats({k: st[k] for k in ('redis_failures', 'redis_errors')})))
    return st['redis_errors']


def start_fails(ctx, app_args, want, rc_want=None, secrets=()):
    """tally must exit non-zero within seconds, with exactly one stderr line holding every
    string of want and none of secrets. EAL's informational lines are kept off stderr
    (--log-level *:error), so what remains is what tally itself says."""
    ctx.ntally += 1
    prefix = 'tally_it_%d_%d' % (os.getpid(), ctx.ntally)
    ctx.dpdk_dirs.append(os.path.join(tt.DPDK_RUNTIME, prefix))
    argv = ([ctx.args.tally] + tt.lcores_arg(1) +
            ['--no-huge', '-m', '512', '--file-prefix', prefix, '--no-pci', '--log-level',
             '*:error', '--vdev', 'net_null0', '--'] + list(app_args))
    tt.log('run: ' + ' '.join(argv))
    t = time.monotonic()
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=20)
    except subprocess.TimeoutExpired:
        raise tt.Failure('%s: tally did not exit within 20 s (a hang)' % app_args)
    took = time.monotonic() - t
    err = p.stderr.decode(errors='replace')
    lines = err.splitlines()
    tt.check(p.returncode != 0, '%s: exit status 0' % app_args)
    if rc_want is not None:
        tt.check_eq(p.returncode, rc_want, '%s: exit status' % app_args)
    tt.check(len(lines) == 1, '%s: expected one line on stderr, got %d:\n%s'
             % (app_args, len(lines), err))
    for w in want:
        tt.check(w in lines[0], '%s: the error does not say %r: %r' % (app_args, w, lines[0]))
    for s in secrets:
        tt.check(s not in err, '%s: the error shows the password: %r' % (app_args, lines[0]))
    tt.check(took < 10, '%s: took %.1fs to fail' % (app_args, took))
    tt.log('rc %d after %.2fs: %s' % (p.returncode, took, lines[0]))


def query_fails(ctx, redis, auth, want, secrets=()):
    """tally-query must exit 1 with one stderr line holding every string of want."""
    rc, _, err = query(ctx, redis, auth, ['self'], ok=None)
    lines = err.splitlines()
    tt.check_eq(rc, 1, 'tally-query %s: exit status (stderr %r)' % (auth, err))
    tt.check(len(lines) == 1 and all(w in lines[0] for w in want),
             'tally-query %s: expected one line with %s, got:\n%s' % (auth, want, err))
    tt.check(not any(s in err for s in secrets), 'tally-query shows the password: %r' % err)
    tt.log('tally-query rc %d: %s' % (rc, lines[0]))


def body(ctx):
    pcap, totals, gen = tt.gen_capture(ctx, 'auth', DATAGRAMS, devices=200)
    tt.check_eq(gen['valid_datagrams'], DATAGRAMS, 'tally-gen valid_datagrams')
    redis = tt.Redis(ctx, password=PASSWORD)
    addr = ['--redis', redis.addr]
    pw = write_password(ctx, 'redis.pw', PASSWORD + '\n')

    # (a) --requirepass and a 0600 password file: exact totals, a reconnect, tally-query.
    auth = ['--redis-password-file', pw]
    tally = replay(ctx, redis, pcap, auth, 'requirepass')
    lost = check_reconnect(tally, redis)
    tally.stop()
    tt.check(PASSWORD not in tally.log_text(), 'the password is in tally\'s output')
    check_exact(ctx, redis, totals, gen, auth, 'requirepass', lost)

    # (b) An ACL user with only what tally needs.
    redis.client.call('ACL', 'SETUSER', ACL_USER, *ACL_RULES)
    acl_pw = write_password(ctx, 'acl.pw', ACL_PASSWORD + '\r\n', mode=0o640)
    auth = ['--redis-user', ACL_USER, '--redis-password-file', acl_pw]
    tally = replay(ctx, redis, pcap, auth, 'ACL user')
    tally.stop()
    check_exact(ctx, redis, totals, gen, auth, 'ACL user')

    # (c) A wrong password: one line naming Redis and the refusal, for both kinds of user.
    wrong = write_password(ctx, 'wrong.pw', 'not-the-password\n')
    start_fails(ctx, addr + ['--redis-password-file', wrong],
                ['Redis at %s' % redis.addr, 'refused AUTH', 'default user', 'WRONGPASS'],
                rc_want=1, secrets=['not-the-password'])
    start_fails(ctx, addr + ['--redis-user', ACL_USER, '--redis-password-file', wrong],
                ['Redis at %s' % redis.addr, "refused AUTH for user '%s'" % ACL_USER,
                 'WRONGPASS'], rc_want=1, secrets=['not-the-password'])
    query_fails(ctx, redis, ['--redis-password-file', wrong], ['refused AUTH', 'WRONGPASS'],
                secrets=['not-the-password'])

    # (d) A password file others may read: refused before anything is sent.
    open_pw = write_password(ctx, 'open.pw', PASSWORD + '\n', mode=0o644)
    start_fails(ctx, addr + ['--redis-password-file', open_pw],
                ['--redis-password-file', open_pw, 'readable by others (mode 0644)',
                 'chmod 600'], rc_want=1, secrets=[PASSWORD])
    query_fails(ctx, redis, ['--redis-password-file', open_pw], ['readable by others'])

    # (e) A password on the command line (or in the INI file): refused before EAL starts.
    start_fails(ctx, addr + ['--redis-password', 'hunter2'],
                ['--redis-password', 'command line', '--redis-password-file'], rc_want=2,
                secrets=['hunter2'])
    start_fails(ctx, addr + ['--redis-password=hunter2'], ['--redis-password-file'],
                rc_want=2, secrets=['hunter2'])
    ini = os.path.join(ctx.tmp, 'password.ini')
    with open(ini, 'w') as f:
        f.write('[tally]\nredis-password = hunter2\n')
    start_fails(ctx, addr + ['--config', ini], ['redis-password', 'redis-password-file'],
                rc_want=2, secrets=['hunter2'])
    rc, _, err = query(ctx, redis, [], ['--redis-password', 'hunter2', 'self'], ok=None)
    tt.check(rc == 2 and len(err.splitlines()) == 1 and '--redis-password-file' in err and
             'hunter2' not in err, 'tally-query --redis-password: rc %d, stderr %r' % (rc, err))

    # (f) No password for a Redis that requires one.
    start_fails(ctx, addr, ['Redis at %s' % redis.addr, 'NOAUTH'], rc_want=1)
    query_fails(ctx, redis, [], ['NOAUTH'])


if __name__ == '__main__':
    tt.main(body)
