/* SPDX-License-Identifier: BSD-3-Clause */
/* tally: receive UDP telemetry with DPDK, aggregate per window, write it to Redis. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_launch.h>

#include "tally_app.h"

static struct tally_app app;

static void
on_hup(int sig)
{
	(void)sig;
	app.reload = 1;
}

static void
on_signal(int sig)
{
	(void)sig;
	/* A second signal: stop waiting for Redis, spool what it has not taken, exit. */
	app.quit = app.quit ? 2 : 1;
}

/* Index of the "--" that ends the EAL arguments, or argc when there is none. */
static int
app_args_start(int argc, char **argv)
{
	int i;

	for (i = 1; i < argc; i++)
		if (strcmp(argv[i], "--") == 0)
			return i;
	return argc;
}

int
main(int argc, char **argv)
{
	char *no_args[] = {argv[0], NULL};
	char **app_argv = no_args;
	int sep, app_argc = 1, rc;
	uint32_t w;
	char err[512];

	/* Application options first: a bad one fails fast, before EAL takes hugepages. */
	sep = app_args_start(argc, argv);
	if (sep < argc) {
		argv[sep] = argv[0];
		app_argv = argv + sep;
		app_argc = argc - sep;
	}
	tally_config_defaults(&app.cfg);
	rc = tally_config_parse(&app.cfg, app_argc, app_argv, err, sizeof(err));
	if (rc == 1) {
		if (app.cfg.list_counters)
			tally_stats_print_table(stdout);
		return 0;
	}
	if (rc < 0) {
		fprintf(stderr, "tally: %s\n", err);
		return 2;
	}
	for (w = 0; w < app.cfg.nwarnings; w++)
		fprintf(stderr, "tally: warning: %s\n", app.cfg.warnings[w]);
	/* From here a stop request is honoured: whatever has started is drained and written. */
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	/* SIGHUP reads the configuration again (tally_reload()); before the run, it waits. */
	app.app_argc = app_argc;
	app.app_argv = app_argv;
	signal(SIGHUP, on_hup);
	if (rte_eal_init(sep, argv) < 0) {
		fprintf(stderr, "tally: EAL init failed: %s\n", rte_strerror(rte_errno));
		return 1;
	}
	if (app.cfg.check_config) {
		rc = tally_check_config(&app, stdout);
		rte_eal_cleanup();
		return rc;
	}
	if (tally_app_init(&app, err, sizeof(err)) != 0) {
		fprintf(stderr, "tally: %s\n", err);
		rte_eal_cleanup();
		return 1;
	}
	if (tally_app_launch(&app) != 0)
		rte_exit(EXIT_FAILURE, "tally: cannot launch workers\n");
	rc = tally_control_run(&app);
	rte_eal_mp_wait_lcore();
	tally_app_free(&app);
	rte_eal_cleanup();
	return rc == 0 ? 0 : 1;
}
