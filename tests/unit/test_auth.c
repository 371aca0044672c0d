/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of the Redis password file: what is read, and every file that is refused. */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test.h"
#include "tally_auth.h"

static char dir[64];
static char path[PATH_MAX];
static char err[512];
static char pw[TALLY_AUTH_PASSWORD_SIZE];

static int
setup(void **state)
{
	test_dir_create(dir, "tally_auth_");
	snprintf(path, sizeof(path), "%s/pw", dir);
	return 0;
}

static int
teardown(void **state)
{
	test_dir_remove(dir);
	return 0;
}

/* Write len bytes of text to path with the given mode (set after umask, explicitly). */
static void
write_file(const char *text, size_t len, mode_t mode)
{
	int fd;

	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static int
read_pw(const char *p)
{
	err[0] = '\0';
	memset(pw, 'x', sizeof(pw));
	return tally_password_file_read(p, pw, sizeof(pw), err, sizeof(err));
}

/* A refusal: -1, one line naming the option and the path, the buffer zeroed. */
static void
assert_refused(const char *p, const char *why)
{
	size_t i;

	assert_int_equal(read_pw(p), -1);
	assert_non_null(strstr(err, "--redis-password-file"));
	assert_non_null(strstr(err, p));
	assert_non_null(strstr(err, why));
	assert_null(strchr(err, '\n'));
	for (i = 0; i < sizeof(pw); i++)
		assert_int_equal(pw[i], 0);
}

static void
test_good_file(void **state)
{
	write_file("s3cret pass", 11, 0600);
	assert_int_equal(read_pw(path), 0);
	assert_string_equal(pw, "s3cret pass");
	write_file("s3cret", 6, 0640); /* the group may read it: only others are refused */
	assert_int_equal(read_pw(path), 0);
	assert_string_equal(pw, "s3cret");
	write_file("s3cret", 6, 0400);
	assert_int_equal(read_pw(path), 0);
	assert_string_equal(pw, "s3cret");
}

static void
test_trailing_newline(void **state)
{
	write_file("s3cret\n", 7, 0600);
	assert_int_equal(read_pw(path), 0);
	assert_string_equal(pw, "s3cret");
	write_file("s3cret\r\n", 8, 0600);
	assert_int_equal(read_pw(path), 0);
	assert_string_equal(pw, "s3cret");
	/* Only one newline goes: a second means a second line. */
	write_file("s3cret\n\n", 8, 0600);
	assert_refused(path, "more than one line");
	write_file("s3cret\nmore\n", 12, 0600);
	assert_refused(path, "more than one line");
}

static void
test_mode_refused(void **state)
{
	write_file("s3cret\n", 7, 0644);
	assert_refused(path, "is readable by others (mode 0644); chmod 600 it");
	write_file("s3cret\n", 7, 0602);
	assert_refused(path, "is writable by others (mode 0602)");
	write_file("s3cret\n", 7, 0604);
	assert_refused(path, "readable by others");
	write_file("s3cret\n", 7, 0601);
	assert_refused(path, "executable by others (mode 0601)");
}

static void
test_symlink_refused(void **state)
{
	char link[PATH_MAX];

	write_file("s3cret\n", 7, 0600);
	snprintf(link, sizeof(link), "%s/link", dir);
	assert_int_equal(symlink(path, link), 0);
	assert_refused(link, "symbolic link");
}

static void
test_fifo_refused(void **state)
{
	char fifo[PATH_MAX];

	/* Nobody writes to it: an open or read that waits would hang the test (its timeout). */
	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	assert_refused(fifo, "is a FIFO, not a regular file");
}

static void
test_directory_refused(void **state)
{
	char sub[PATH_MAX];

	snprintf(sub, sizeof(sub), "%s/sub", dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	assert_refused(sub, "is a directory, not a regular file");
}

static void
test_empty_refused(void **state)
{
	write_file("", 0, 0600);
	assert_refused(path, "is empty");
	write_file("\n", 1, 0600);
	assert_refused(path, "is empty");
	write_file("\r\n", 2, 0600);
	assert_refused(path, "is empty");
}

static void
test_too_long_refused(void **state)
{
	static char big[TALLY_AUTH_PASSWORD_SIZE + 1];
	char small[8];

	memset(big, 'a', sizeof(big));
	write_file(big, sizeof(pw) - 1, 0600); /* exactly what fits */
	assert_int_equal(read_pw(path), 0);
	assert_int_equal(strlen(pw), sizeof(pw) - 1);
	write_file(big, sizeof(pw), 0600);
	assert_refused(path, "is larger than 1023 bytes");
	/* A small buffer: "1234567\n" does not fit in 8 bytes even though the newline goes. */
	write_file("1234567\n", 8, 0600);
	assert_int_equal(tally_password_file_read(path, small, sizeof(small), err, sizeof(err)),
			 -1);
	assert_non_null(strstr(err, "larger than 7 bytes"));
	write_file("1234567", 7, 0600);
	assert_int_equal(tally_password_file_read(path, small, sizeof(small), err, sizeof(err)), 0);
	assert_string_equal(small, "1234567");
}

static void
test_nul_and_missing(void **state)
{
	char missing[PATH_MAX];

	write_file("s3c\0ret", 7, 0600);
	assert_refused(path, "NUL");
	snprintf(missing, sizeof(missing), "%s/none", dir);
	assert_refused(missing, "cannot open");
}

/* The cases that send nothing: no credentials, or a user without a password. */
static void
test_auth_without_password(void **state)
{
	redisContext c;

	memset(&c, 0, sizeof(c));
	assert_int_equal(tally_redis_auth(&c, NULL, NULL, err, sizeof(err)), 0);
	assert_int_equal(tally_redis_auth(&c, "", "", err, sizeof(err)), 0);
	err[0] = '\0';
	assert_int_equal(tally_redis_auth(&c, "tally", NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "--redis-user tally"));
	assert_non_null(strstr(err, "--redis-password-file"));
	assert_int_equal(tally_redis_auth(&c, "tally", "", err, sizeof(err)), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_good_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_trailing_newline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mode_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_symlink_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fifo_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_directory_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_too_long_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nul_and_missing, setup, teardown),
		cmocka_unit_test(test_auth_without_password),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
