/* SPDX-License-Identifier: BSD-3-Clause */
/* Redis authentication for tally and tally-query: a private password file, then AUTH. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "tally_auth.h"

#define PW_OPT "--redis-password-file"

static int
fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

/* Why st is not a file a password may be kept in, or NULL when it may. */
static const char *
not_regular(const struct stat *st)
{
	if (S_ISREG(st->st_mode))
		return NULL;
	if (S_ISDIR(st->st_mode))
		return "is a directory";
	if (S_ISFIFO(st->st_mode))
		return "is a FIFO";
	if (S_ISLNK(st->st_mode))
		return "is a symbolic link";
	return "is a device or socket";
}

/* What others may do with a file of this mode, for the refusal. */
static const char *
others_may(mode_t mode)
{
	if (mode & S_IROTH)
		return "readable";
	if (mode & S_IWOTH)
		return "writable";
	return "executable";
}

/* Read up to len bytes; a short count means end of file. */
static ssize_t
read_full(int fd, char *buf, size_t len)
{
	size_t got = 0;
	ssize_t n;

	while (got < len) {
		n = read(fd, buf + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* The checks on what was read; 0, or -1 with err. */
static int
password_check(const char *path, char *buf, size_t *n, size_t len, int more, char *err,
	       size_t errlen)
{
	if (more)
		return fail(err, errlen, PW_OPT ": %s is larger than %zu bytes", path, len - 1);
	if (*n > 0 && buf[*n - 1] == '\n')
		(*n)--;
	if (*n > 0 && buf[*n - 1] == '\r')
		(*n)--;
	if (*n == 0)
		return fail(err, errlen, PW_OPT ": %s is empty", path);
	if (memchr(buf, '\0', *n) != NULL)
		return fail(err, errlen, PW_OPT ": %s holds a NUL byte", path);
	if (memchr(buf, '\n', *n) != NULL || memchr(buf, '\r', *n) != NULL)
		return fail(err, errlen, PW_OPT ": %s holds more than one line", path);
	return 0;
}

int
tally_password_file_read(const char *path, char *buf, size_t len, char *err, size_t errlen)
{
	const char *why;
	struct stat st;
	char extra;
	ssize_t got;
	size_t n;
	int fd, rc;

	if (path == NULL || *path == '\0' || buf == NULL || len < 2)
		return fail(err, errlen, PW_OPT ": no file or no room for a password");
	explicit_bzero(buf, len);
	/* O_NONBLOCK: a FIFO must be refused, not waited on for a writer. */
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0 && errno == ELOOP)
		return fail(err, errlen, PW_OPT ": %s is a symbolic link; give the file itself",
			    path);
	if (fd < 0)
		return fail(err, errlen, PW_OPT ": cannot open %s: %s", path, strerror(errno));
	if (fstat(fd, &st) != 0) {
		rc = fail(err, errlen, PW_OPT ": cannot stat %s: %s", path, strerror(errno));
		goto out;
	}
	why = not_regular(&st);
	if (why != NULL) {
		rc = fail(err, errlen, PW_OPT ": %s %s, not a regular file", path, why);
		goto out;
	}
	if (st.st_mode & 007) {
		rc = fail(err, errlen, PW_OPT ": %s is %s by others (mode %04o); chmod 600 it",
			  path, others_may(st.st_mode), (unsigned int)(st.st_mode & 07777));
		goto out;
	}
	got = read_full(fd, buf, len - 1);
	if (got < 0) {
		rc = fail(err, errlen, PW_OPT ": cannot read %s: %s", path, strerror(errno));
		goto out;
	}
	n = (size_t)got;
	rc = password_check(path, buf, &n, len, n == len - 1 && read_full(fd, &extra, 1) == 1, err,
			    errlen);
	if (rc == 0)
		buf[n] = '\0';
	explicit_bzero(&extra, sizeof(extra));
out:
	if (rc != 0)
		explicit_bzero(buf, len);
	close(fd);
	return rc;
}

int
tally_redis_auth(redisContext *c, const char *user, const char *password, char *err, size_t errlen)
{
	int has_user = user != NULL && *user != '\0';
	const char *argv[3] = {"AUTH"};
	size_t argvlen[3] = {4};
	int argc = 1, rc = 0;
	const char *host;
	redisReply *r;

	if (password == NULL || *password == '\0') {
		if (!has_user)
			return 0;
		return fail(err, errlen,
			    "--redis-user %s needs a password: give --redis-password-file", user);
	}
	if (has_user) {
		argv[argc] = user;
		argvlen[argc++] = strlen(user);
	}
	argv[argc] = password;
	argvlen[argc++] = strlen(password);
	r = redisCommandArgv(c, argc, argv, argvlen);
	host = c->tcp.host != NULL ? c->tcp.host : "?";
	if (r == NULL)
		rc = fail(err, errlen, "Redis at %s:%d: AUTH failed: %s", host, c->tcp.port,
			  c->err ? c->errstr : "no reply");
	else if (r->type == REDIS_REPLY_ERROR)
		rc = fail(err, errlen, "Redis at %s:%d refused AUTH for %s%s%s: %s", host,
			  c->tcp.port, has_user ? "user '" : "the default user",
			  has_user ? user : "", has_user ? "'" : "", r->str);
	else if (r->type != REDIS_REPLY_STATUS)
		rc = fail(err, errlen, "Redis at %s:%d: unexpected reply to AUTH", host,
			  c->tcp.port);
	if (r != NULL)
		freeReplyObject(r);
	return rc;
}
