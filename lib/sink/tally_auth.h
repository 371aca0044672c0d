/* SPDX-License-Identifier: BSD-3-Clause */
/* Redis authentication: the password file (checked like ssh checks a key) and AUTH. */
#ifndef TALLY_AUTH_H
#define TALLY_AUTH_H

#include <stddef.h>

#include <hiredis/hiredis.h>

#define TALLY_AUTH_USER_MAX 64	      /* characters of an ACL user name */
#define TALLY_AUTH_PASSWORD_SIZE 1024 /* buffer of a password: at most 1023 bytes */

/*
 * Read a Redis password from path into buf (NUL-terminated, at most len - 1 bytes). The file
 * must be a regular file (not a symbolic link, FIFO or directory), neither readable nor
 * writable by others, not empty, and hold one line: one trailing "\n" or "\r\n" is removed,
 * any other NUL or line break is refused. Never blocks. Returns 0, or -1 with a one-line
 * message naming --redis-password-file and the path in err (never the password); buf is
 * zeroed then. The caller owns buf and zeroes it (explicit_bzero) once the password is used.
 */
int tally_password_file_read(const char *path, char *buf, size_t len, char *err, size_t errlen);

/*
 * Authenticate a new connection: `AUTH password`, or `AUTH user password` for an ACL user.
 * Nothing is sent when neither is given; a user without a password is an error. Returns 0,
 * or -1 with a one-line message in err that keeps Redis's reply (WRONGPASS ...) and never
 * shows the password. user and password are only read during the call.
 */
int tally_redis_auth(redisContext *c, const char *user, const char *password, char *err,
		     size_t errlen);

#endif /* TALLY_AUTH_H */
