/* SPDX-License-Identifier: BSD-3-Clause */
/* Unit tests of option parsing: defaults, bounds, one-line errors, INI file, precedence. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test.h"
#include "tally_config.h"

static char err[256];

static int
parse(struct tally_config *c, int argc, char **argv)
{
	tally_config_defaults(c);
	err[0] = '\0';
	return tally_config_parse(c, argc, argv, err, sizeof(err));
}

static void
test_defaults(void **state)
{
	struct tally_config c;

	tally_config_defaults(&c);
	assert_string_equal(c.redis_host, "127.0.0.1");
	assert_int_equal(c.redis_port, 6379);
	assert_int_equal(c.udp_port, 9797);
	assert_int_equal(c.window_ms, 1000);
	assert_int_equal(c.flush_batch, 5000);
	assert_int_equal(c.flush_ms, 50);
	assert_int_equal(c.retention_s, 86400);
	assert_int_equal(c.stats_ms, 1000);
	assert_int_equal(c.has_ipv4, 0);
	assert_int_equal(c.has_ipv6, 0);
}

static void
test_values(void **state)
{
	struct tally_config c;
	char *argv[] = {"tally", "--redis", "10.0.0.5:7000", "--udp-port", "5000", "--ipv4",
			"198.18.0.1", "--ipv6", "2001:2::1", "--window-ms=250", "--flush-batch",
			"100", NULL};
	uint32_t want;

	assert_int_equal(parse(&c, 12, argv), 0);
	assert_string_equal(c.redis_host, "10.0.0.5");
	assert_int_equal(c.redis_port, 7000);
	assert_int_equal(c.udp_port, 5000);
	assert_int_equal(c.has_ipv4, 1);
	inet_pton(AF_INET, "198.18.0.1", &want);
	assert_int_equal(c.ipv4, want);
	assert_int_equal(c.has_ipv6, 1);
	assert_int_equal(c.ipv6[0], 0x20);
	assert_int_equal(c.ipv6[15], 1);
	assert_int_equal(c.window_ms, 250);
	assert_int_equal(c.flush_batch, 100);
}

static void
test_partition_options(void **state)
{
	struct tally_config c;
	char *argv[] = {"tally", "--partition", "device", "--rss-fields", "l3-src", "--hot-share",
			"0.05", "--rss-key", "6d:5a:56:da", "--fwd-ring", "4096", NULL};
	char *bad_mode[] = {"tally", "--partition", "rss", NULL};
	char *bad_share[] = {"tally", "--hot-share", "1.5", NULL};
	char *bad_key[] = {"tally", "--rss-key", "6d5", NULL};

	tally_config_defaults(&c);
	assert_int_equal(c.partition, 0);
	assert_int_equal(c.rss_fields, TALLY_RSS_L3_L4);
	assert_true(c.hot_share == 0.02);
	assert_int_equal(parse(&c, 11, argv), 0);
	assert_int_equal(c.partition, 1);
	assert_int_equal(c.rss_fields, TALLY_RSS_L3_SRC);
	assert_true(c.hot_share == 0.05);
	assert_int_equal(c.rss_key_len, 4);
	assert_int_equal(c.rss_key[0], 0x6d);
	assert_int_equal(c.rss_key[3], 0xda);
	assert_int_equal(c.fwd_ring, 4096);
	assert_int_equal(parse(&c, 3, bad_mode), -1);
	assert_non_null(strstr(err, "--partition"));
	assert_non_null(strstr(err, "nic, device"));
	assert_int_equal(parse(&c, 3, bad_share), -1);
	assert_non_null(strstr(err, "--hot-share"));
	assert_int_equal(parse(&c, 3, bad_key), -1);
	assert_non_null(strstr(err, "--rss-key"));
	{
		char *long_instance[] = {"tally", "--instance",
					 "a-name-that-is-much-longer-than-sixty-four-characters-"
					 "for-sure-0123456789", NULL};

		assert_int_equal(parse(&c, 3, long_instance), -1);
		assert_non_null(strstr(err, "--instance"));
	}
}

static void
test_ipv6_redis(void **state)
{
	struct tally_config c;
	char *argv[] = {"tally", "--redis", "[::1]:6380", NULL};

	assert_int_equal(parse(&c, 3, argv), 0);
	assert_string_equal(c.redis_host, "::1");
	assert_int_equal(c.redis_port, 6380);
}

/* Every bad value fails with one line that names the option. */
struct diffs {
	char text[1024];
	size_t len;
};

static void
on_diff(void *ctx, const char *name, const char *was, const char *now)
{
	struct diffs *d = ctx;

	d->len += (size_t)snprintf(d->text + d->len, sizeof(d->text) - d->len, "%s %s>%s;", name,
				   was, now);
}

/* SIGHUP's comparison: every option that differs, as text, in table order; copy by name. */
static void
test_diff_copy(void **state)
{
	char *a_argv[] = {"tally", "--redis", "10.0.0.1:6379", "--flush-ms", "50", NULL};
	char *b_argv[] = {"tally", "--redis", "[::1]:7000",	 "--flush-ms", "20",
			  "--ipv4", "198.18.0.1", "--hot-share", "0.25", "--partition",
			  "device", "--metrics-listen", ":9469", NULL};
	struct tally_config a, b;
	struct diffs d = {.len = 0};

	(void)state;
	assert_int_equal(parse(&a, 5, a_argv), 0);
	assert_int_equal(parse(&b, 13, b_argv), 0);
	tally_config_diff(&a, &a, on_diff, &d);
	assert_int_equal(d.len, 0);
	tally_config_diff(&a, &b, on_diff, &d);
	assert_string_equal(d.text, "redis 10.0.0.1:6379>[::1]:7000;ipv4 unset>198.18.0.1;"
				    "flush-ms 50>20;partition nic>device;hot-share 0.02>0.25;"
				    "metrics-listen unset>:9469;");
	assert_int_equal(tally_config_copy(&a, &b, "redis"), 0);
	assert_int_equal(tally_config_copy(&a, &b, "ipv4"), 0);
	assert_int_equal(tally_config_copy(&a, &b, "flush-ms"), 0);
	assert_int_equal(tally_config_copy(&a, &b, "nonsense"), -1);
	assert_string_equal(a.redis_host, "::1");
	assert_int_equal(a.redis_port, 7000);
	assert_int_equal(a.has_ipv4, 1);
	assert_int_equal(a.flush_ms, 20);
	d.len = 0;
	d.text[0] = '\0';
	tally_config_diff(&a, &b, on_diff, &d);
	assert_string_equal(d.text, "partition nic>device;hot-share 0.02>0.25;"
				    "metrics-listen unset>:9469;");
}

/* A FIFO, a directory or a device where the INI file or the catalog goes: refused at once. */
static void
test_not_regular_files(void **state)
{
	char dir[] = "/tmp/tally-cfg-XXXXXX", fifo[64], want[160];
	char *cfg[] = {"tally", "--config", fifo, NULL};
	char *cat[] = {"tally", "--catalog", fifo, NULL};
	char *tmp[] = {"tally", "--config", dir, NULL};
	char *dev[] = {"tally", "--catalog", "/dev/zero", NULL};
	struct tally_config c;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(fifo, sizeof(fifo), "%s/fifo.ini", dir);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	assert_int_equal(parse(&c, 3, cfg), -1);
	snprintf(want, sizeof(want), "--config: %s is not a regular file (a FIFO)", fifo);
	assert_string_equal(err, want);
	assert_int_equal(parse(&c, 3, cat), -1);
	snprintf(want, sizeof(want), "--catalog: %s is not a regular file (a FIFO)", fifo);
	assert_non_null(strstr(err, want));
	assert_int_equal(parse(&c, 3, tmp), -1);
	snprintf(want, sizeof(want), "--config: %s is not a regular file (a directory)", dir);
	assert_string_equal(err, want);
	assert_int_equal(parse(&c, 3, dev), -1);
	assert_non_null(strstr(err, "/dev/zero is not a regular file (a device)"));
	unlink(fifo);
	rmdir(dir);
}

/* --metrics-listen, --check-config and --counters. */
static void
test_operations_options(void **state)
{
	char *ok[] = {"tally", "--metrics-listen", "[::1]:9469", "--check-config", NULL};
	char *counters[] = {"tally", "--counters", "--window-ms", "abc", NULL};
	struct tally_config c;

	(void)state;
	assert_int_equal(parse(&c, 4, ok), 0);
	assert_string_equal(c.metrics_listen, "[::1]:9469");
	assert_int_equal(c.check_config, 1);
	assert_int_equal(c.list_counters, 0);
	tally_config_defaults(&c);
	assert_string_equal(c.metrics_listen, "");
	assert_int_equal(c.check_config, 0);
	/* --counters prints and exits before anything else is read */
	assert_int_equal(parse(&c, 4, counters), 1);
	assert_int_equal(c.list_counters, 1);
}

static void
test_bad_values(void **state)
{
	static const char *const bad[][2] = {
		{"--window-ms", "abc"}, {"--window-ms", "0"},	     {"--window-ms", "-5"},
		{"--window-ms", "10x"}, {"--window-ms", ""},	     {"--udp-port", "70000"},
		{"--udp-port", "0"},    {"--redis", "nohost"},	     {"--redis", "h:0"},
		{"--redis", ":6379"},   {"--redis", "h:99999"},	     {"--ipv4", "1.2.3"},
		{"--ipv6", "zz::1"},    {"--flush-batch", "0"},	     {"--mbufs", "18446744073709551616"},
		{"--stats-ms", "+5"},   {"--retention-s", "99999999999"},
		{"--metrics-listen", "9469"}, {"--metrics-listen", "localhost:9469"},
		{"--metrics-listen", "::1:9469"}, {"--metrics-listen", "127.0.0.1:70000"},
	};
	struct tally_config c;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *argv[] = {"tally", (char *)bad[i][0], (char *)bad[i][1], NULL};

		assert_int_equal(parse(&c, 3, argv), -1);
		assert_non_null(strstr(err, bad[i][0]));
		assert_null(strchr(err, '\n'));
	}
}

static void
test_unknown_and_missing(void **state)
{
	struct tally_config c;
	char *unknown[] = {"tally", "--bogus", "1", NULL};
	char *missing[] = {"tally", "--window-ms", NULL};
	char *extra[] = {"tally", "stray", NULL};

	assert_int_equal(parse(&c, 3, unknown), -1);
	assert_non_null(strstr(err, "--bogus"));
	assert_int_equal(parse(&c, 2, missing), -1);
	assert_non_null(strstr(err, "--window-ms"));
	assert_int_equal(parse(&c, 2, extra), -1);
	assert_non_null(strstr(err, "stray"));
}

static char *
write_ini(const char *text)
{
	char *path = test_malloc(64);
	FILE *f;
	int fd;

	strcpy(path, "/tmp/tally_test_XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	fputs(text, f);
	fclose(f);
	return path;
}

static void
test_ini_and_precedence(void **state)
{
	struct tally_config c;
	char *path = write_ini("; sample\n[tally]\nwindow-ms = 500\nudp-port = 1234\n"
			       "redis = 127.0.0.2:7777\n");
	char *argv[] = {"tally", "--udp-port", "4321", "--config", path, NULL};

	assert_int_equal(parse(&c, 5, argv), 0);
	assert_int_equal(c.window_ms, 500);
	assert_int_equal(c.udp_port, 4321); /* command line wins, even before --config */
	assert_string_equal(c.redis_host, "127.0.0.2");
	assert_int_equal(c.redis_port, 7777);
	assert_string_equal(c.config_file, path);
	unlink(path);
	test_free(path);
}

static void
test_ini_errors(void **state)
{
	struct tally_config c;
	char *bad_key = write_ini("[tally]\nwindow-size = 5\n");
	char *bad_val = write_ini("[tally]\nflush-ms = soon\n");
	char *bad_sec = write_ini("[other]\nflush-ms = 5\n");
	char *argv[] = {"tally", "--config", NULL, NULL};
	char *missing[] = {"tally", "--config", "/nonexistent/tally.ini", NULL};

	argv[2] = bad_key;
	assert_int_equal(parse(&c, 3, argv), -1);
	assert_non_null(strstr(err, "window-size"));
	argv[2] = bad_val;
	assert_int_equal(parse(&c, 3, argv), -1);
	assert_non_null(strstr(err, "flush-ms"));
	argv[2] = bad_sec;
	assert_int_equal(parse(&c, 3, argv), -1);
	assert_non_null(strstr(err, "[tally]"));
	assert_int_equal(parse(&c, 3, missing), -1);
	assert_non_null(strstr(err, "--config"));
	unlink(bad_key);
	unlink(bad_val);
	unlink(bad_sec);
	test_free(bad_key);
	test_free(bad_val);
	test_free(bad_sec);
}

static void
test_redis_auth_options(void **state)
{
	struct tally_config c;
	char user64[TALLY_REDIS_USER_MAX + 1];
	char user65[TALLY_REDIS_USER_MAX + 2];
	char *argv[] = {"tally", "--redis-user", "tally", "--redis-password-file", "/etc/tally/pw",
			NULL};
	char *abbrev[] = {"tally", "--redis-password-f=/etc/tally/pw", NULL};
	char *long_user[] = {"tally", "--redis-user", user65, "--redis-password-file", "/pw", NULL};
	char *max_user[] = {"tally", "--redis-user", user64, "--redis-password-file", "/pw", NULL};
	char *empty_user[] = {"tally", "--redis-user", "", NULL};
	char *no_password[] = {"tally", "--redis-user", "tally", NULL};
	char *ini = write_ini("[tally]\nredis-user = ops\nredis-password-file = /run/pw\n");
	char *ini_argv[] = {"tally", "--config", ini, "--redis-user", "tally", NULL};

	tally_config_defaults(&c);
	assert_string_equal(c.redis_user, "");
	assert_string_equal(c.redis_password_file, "");
	assert_int_equal(parse(&c, 5, argv), 0);
	assert_string_equal(c.redis_user, "tally");
	assert_string_equal(c.redis_password_file, "/etc/tally/pw");
	/* An abbreviation that goes past "redis-password" can only mean the file. */
	assert_int_equal(parse(&c, 2, abbrev), 0);
	assert_string_equal(c.redis_password_file, "/etc/tally/pw");

	memset(user64, 'u', sizeof(user64) - 1);
	user64[sizeof(user64) - 1] = '\0';
	memset(user65, 'u', sizeof(user65) - 1);
	user65[sizeof(user65) - 1] = '\0';
	assert_int_equal(parse(&c, 5, max_user), 0);
	assert_string_equal(c.redis_user, user64);
	assert_int_equal(parse(&c, 5, long_user), -1);
	assert_non_null(strstr(err, "--redis-user"));
	assert_int_equal(parse(&c, 3, empty_user), -1);
	assert_non_null(strstr(err, "--redis-user"));
	/* A user needs a password: AUTH user would be refused at every connect. */
	assert_int_equal(parse(&c, 3, no_password), -1);
	assert_non_null(strstr(err, "--redis-password-file"));

	/* Both are INI keys too; the command line wins. */
	assert_int_equal(parse(&c, 5, ini_argv), 0);
	assert_string_equal(c.redis_user, "tally");
	assert_string_equal(c.redis_password_file, "/run/pw");
	unlink(ini);
	test_free(ini);
}

/* A password itself, on the command line or in the INI file, is refused in one line. */
static void
test_password_refused(void **state)
{
	static const char *const bad[][2] = {
		{"--redis-password", "hunter2"}, {"--redis-password=hunter2", NULL},
		{"--password", "hunter2"},	 {"--password=hunter2", NULL},
		{"--redis-pass", "hunter2"},	 {"--redis-p=hunter2", NULL},
	};
	static const char *const keys[] = {"redis-password", "password"};
	struct tally_config c;
	char text[128];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *argv[] = {"tally", "--udp-port", "9000", NULL, NULL, NULL};

		argv[3] = (char *)bad[i][0];
		argv[4] = (char *)bad[i][1];
		assert_int_equal(parse(&c, bad[i][1] ? 5 : 4, argv), -1);
		assert_non_null(strstr(err, "--redis-password-file"));
		assert_non_null(strstr(err, "command line"));
		assert_null(strstr(err, "hunter2"));
		assert_null(strchr(err, '\n'));
	}
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		char *path;
		char *argv[] = {"tally", "--config", NULL, NULL};

		snprintf(text, sizeof(text), "[tally]\nstats-ms = 100\n%s = hunter2\n", keys[i]);
		path = write_ini(text);
		argv[2] = path;
		assert_int_equal(parse(&c, 3, argv), -1);
		assert_non_null(strstr(err, keys[i]));
		assert_non_null(strstr(err, "redis-password-file"));
		assert_null(strstr(err, "hunter2"));
		assert_null(strchr(err, '\n'));
		unlink(path);
		test_free(path);
	}
}

/*
 * The --config file may hold a [metrics] section beside [tally]: the catalog, unless
 * --catalog names another file. Its lines are the catalog's to check; [tally]'s checks stay.
 */
static void
test_metrics_section(void **state)
{
	struct tally_config c;
	char *both = write_ini("[tally]\nwindow-ms = 500\n\n[metrics]\n1 = requests count counter\n"
			       "2 = cpu.temp celsius gauge\n# a comment\n"
			       "3 = latency.ms ms histogram\n");
	char *metrics_first = write_ini("[metrics]\n7 = a gauge\n[tally]\nudp-port = 1234\n");
	char *other = write_ini("[metrics]\n9 = other.cat gauge\n");
	char *bad_kind = write_ini("[tally]\nstats-ms = 100\n[metrics]\n1 = a gauge\n2 = b gaug\n");
	char *dup_id = write_ini("[tally]\n[metrics]\n5 = a gauge\n5 = b gauge\n");
	char *twice = write_ini("[tally]\n[metrics]\n[tally]\n");
	char *only = write_ini("[metrics]\n1 = a gauge\n");
	char *tally_key_twice = write_ini("[tally]\nstats-ms = 100\n[metrics]\n1 = a gauge\n"
					  "[tally]\n");
	char *argv[] = {"tally", "--config", NULL, NULL, NULL, NULL};
	char *cat_argv[] = {"tally", "--catalog", other, NULL};
	char *no_file[] = {"tally", "--catalog", "/nonexistent/metrics.ini", NULL};
	char want[128];

	argv[2] = both;
	assert_int_equal(parse(&c, 3, argv), 0);
	assert_int_equal(c.window_ms, 500);
	assert_int_equal(c.config_has_metrics, 1);
	assert_string_equal(c.catalog_file, both);
	assert_int_equal(c.nwarnings, 0);
	argv[2] = metrics_first;
	assert_int_equal(parse(&c, 3, argv), 0);
	assert_int_equal(c.udp_port, 1234);
	assert_string_equal(c.catalog_file, metrics_first);

	/* --catalog wins over the [metrics] section, which is then said not to be read */
	argv[2] = both;
	argv[3] = "--catalog";
	argv[4] = other;
	assert_int_equal(parse(&c, 5, argv), 0);
	assert_string_equal(c.catalog_file, other);
	assert_int_equal(c.nwarnings, 1);
	assert_non_null(strstr(c.warnings[0], "[metrics]"));
	assert_int_equal(parse(&c, 3, cat_argv), 0);
	assert_string_equal(c.catalog_file, other);
	assert_int_equal(c.config_has_metrics, 0);

	/* no catalog: none */
	argv[2] = metrics_first;
	assert_int_equal(parse(&c, 1, argv), 0);
	assert_string_equal(c.catalog_file, "");

	/* the catalog's errors, by file and line */
	argv[2] = bad_kind;
	assert_int_equal(parse(&c, 3, argv), -1);
	snprintf(want, sizeof(want), "%s:5: id 2: unknown kind 'gaug'", bad_kind);
	assert_non_null(strstr(err, want));
	assert_null(strchr(err, '\n'));
	argv[2] = dup_id;
	assert_int_equal(parse(&c, 3, argv), -1);
	snprintf(want, sizeof(want), "%s:4: id 5 is already given on line 3", dup_id);
	assert_non_null(strstr(err, want));
	assert_int_equal(parse(&c, 3, no_file), -1);
	assert_non_null(strstr(err, "--catalog: cannot read /nonexistent/metrics.ini"));

	/* sections: each once, [tally] needed */
	argv[2] = twice;
	assert_int_equal(parse(&c, 3, argv), -1);
	snprintf(want, sizeof(want), "%s:3: section [tally] again (first on line 1)", twice);
	assert_non_null(strstr(err, want));
	argv[2] = tally_key_twice;
	assert_int_equal(parse(&c, 3, argv), -1);
	assert_non_null(strstr(err, ":5: section [tally] again"));
	argv[2] = only;
	assert_int_equal(parse(&c, 3, argv), -1);
	assert_non_null(strstr(err, "no [tally] section"));

	unlink(both);
	unlink(metrics_first);
	unlink(other);
	unlink(bad_kind);
	unlink(dup_id);
	unlink(twice);
	unlink(only);
	unlink(tally_key_twice);
	test_free(both);
	test_free(metrics_first);
	test_free(other);
	test_free(bad_kind);
	test_free(dup_id);
	test_free(twice);
	test_free(only);
	test_free(tally_key_twice);
}

static void
test_shipped_sample_parses(void **state)
{
	struct tally_config c;
	char *argv[] = {"tally", "--config", TALLY_SAMPLE_INI, NULL};

	assert_int_equal(parse(&c, 3, argv), 0);
	assert_int_equal(c.udp_port, 9797);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_ipv6_redis),
		cmocka_unit_test(test_partition_options),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_operations_options),
		cmocka_unit_test(test_diff_copy),
		cmocka_unit_test(test_not_regular_files),
		cmocka_unit_test(test_unknown_and_missing),
		cmocka_unit_test(test_ini_and_precedence),
		cmocka_unit_test(test_ini_errors),
		cmocka_unit_test(test_redis_auth_options),
		cmocka_unit_test(test_password_refused),
		cmocka_unit_test(test_metrics_section),
		cmocka_unit_test(test_shipped_sample_parses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
