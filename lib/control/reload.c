/* SPDX-License-Identifier: BSD-3-Clause */
/* SIGHUP: the configuration read again; what needs no restart is applied, the rest logged. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <rte_log.h>
#include <rte_ring.h>

#include "tally_app.h"
#include "tally_auth.h"

#define RELOAD_LOG(app, lvl, fmt, ...)                                                            \
	rte_log(RTE_LOG_##lvl, (app)->logtype, "TALLY: SIGHUP: " fmt "\n", ##__VA_ARGS__)

/* Who takes a key that applies without a restart. */
enum live {
	LIVE_SINK,    /* the sink thread (tally_sink_reload) */
	LIVE_WORKERS, /* the workers, at their next window boundary */
	LIVE_CONTROL, /* read where it is used (periods) */
};

static const struct {
	const char *name;
	enum live who;
} live_keys[] = {
	{"redis", LIVE_SINK},	     {"redis-user", LIVE_SINK}, {"redis-password-file", LIVE_SINK},
	{"flush-batch", LIVE_SINK},  {"flush-ms", LIVE_SINK},   {"dlq-burst", LIVE_WORKERS},
	{"dlq-rate", LIVE_WORKERS},  {"hot-share", LIVE_WORKERS}, {"log-ms", LIVE_CONTROL},
	{"stats-ms", LIVE_CONTROL},
};

struct reload {
	struct tally_app *app;
	const struct tally_config *next;
	int redis_ok; /* the password file (if any) could be read */
	unsigned int changed, restart;
	int workers;
};

static void
on_change(void *arg, const char *name, const char *was, const char *now)
{
	struct reload *r = arg;
	unsigned int i;

	for (i = 0; i < RTE_DIM(live_keys) && strcmp(live_keys[i].name, name) != 0; i++)
		;
	if (i == RTE_DIM(live_keys)) {
		RELOAD_LOG(r->app, WARNING, "--%s %s -> %s needs a restart: still %s", name, was,
			   now, was);
		r->restart++;
		return;
	}
	if (live_keys[i].who == LIVE_SINK && !r->redis_ok) {
		RELOAD_LOG(r->app, WARNING, "--%s %s -> %s not applied: the password file cannot "
			   "be read", name, was, now);
		return;
	}
	tally_config_copy(&r->app->cfg, r->next, name);
	RELOAD_LOG(r->app, INFO, "--%s %s -> %s", name, was, now);
	r->changed++;
	if (live_keys[i].who == LIVE_WORKERS)
		r->workers = 1;
}

/*
 * Hand the sink thread the Redis settings of app->cfg, with the password file read now;
 * 1 done, 0 when it has not taken the last ones yet (tried again from the control loop).
 */
static int
push_sink(struct tally_app *app)
{
	struct tally_sink_reload *s = &app->sink_next;
	char err[600];

	if (__atomic_load_n(&app->sink_reload_seen, __ATOMIC_ACQUIRE) != app->sink_reload_gen)
		return 0;
	snprintf(s->host, sizeof(s->host), "%s", app->cfg.redis_host);
	s->port = app->cfg.redis_port;
	snprintf(s->user, sizeof(s->user), "%s", app->cfg.redis_user);
	s->password[0] = '\0';
	if (app->cfg.redis_password_file[0] != '\0' &&
	    tally_password_file_read(app->cfg.redis_password_file, s->password,
				     sizeof(s->password), err, sizeof(err)) != 0) {
		/* it was read a moment ago: it changed in between; the sink keeps what it has */
		RELOAD_LOG(app, WARNING, "%s: the Redis settings stay as they are", err);
		return 1;
	}
	s->flush_batch = app->cfg.flush_batch;
	s->flush_ms = app->cfg.flush_ms;
	__atomic_store_n(&app->sink_reload_gen, app->sink_reload_gen + 1, __ATOMIC_RELEASE);
	return 1;
}

void
tally_reload_push(struct tally_app *app)
{
	uint32_t i, left = 0;

	if (app->sink_reload_pending && push_sink(app))
		app->sink_reload_pending = 0;
	if (!app->worker_reload_pending)
		return;
	for (i = 0; i < app->nworkers; i++) {
		struct tally_worker *w = &app->workers[i];

		/* the worker has taken what it was given: hand it the newest */
		if (__atomic_load_n(&w->reload_seen, __ATOMIC_ACQUIRE) != w->reload_gen) {
			left++;
			continue;
		}
		if (memcmp(&w->reload, &app->worker_next, sizeof(w->reload)) == 0)
			continue;
		w->reload = app->worker_next;
		__atomic_store_n(&w->reload_gen, w->reload_gen + 1, __ATOMIC_RELEASE);
		left++;
	}
	app->worker_reload_pending = left > 0;
}

void
tally_reload(struct tally_app *app)
{
	struct tally_config *next = calloc(1, sizeof(*next));
	char password[TALLY_AUTH_PASSWORD_SIZE] = "", err[600];
	struct reload r = {.app = app, .redis_ok = 1};
	uint64_t n = app->nworkers;
	int rc;

	if (next == NULL) {
		RELOAD_LOG(app, WARNING, "out of memory: nothing changed");
		return;
	}
	tally_config_defaults(next);
	rc = tally_config_parse(next, app->app_argc, app->app_argv, err, sizeof(err));
	if (rc != 0) {
		RELOAD_LOG(app, WARNING, "%s: nothing changed", rc < 0 ? err : "nothing to read");
		free(next);
		return;
	}
	tally_app_default_instance(next);
	if (next->redis_password_file[0] != '\0' &&
	    tally_password_file_read(next->redis_password_file, password, sizeof(password), err,
				     sizeof(err)) != 0) {
		RELOAD_LOG(app, WARNING, "%s: the Redis settings stay as they are", err);
		r.redis_ok = 0;
	}
	r.next = next;
	tally_config_diff(&app->cfg, next, on_change, &r);
	/*
	 * The sink is always handed the Redis settings: a password file whose content changed
	 * is a change no option shows. It compares, and reconnects only if something differs;
	 * while it has not taken the last ones, these wait (tally_reload_push()).
	 */
	if (r.redis_ok) {
		app->sink_reload_pending = 1;
		tally_reload_push(app);
	}
	explicit_bzero(password, sizeof(password));
	if (r.workers) {
		uint64_t burst = (app->cfg.dlq_burst + n - 1) / n;
		/* the capture rings were sized at start for a whole burst: no larger one now */
		uint64_t room = app->workers[0].dlq != NULL
					? rte_ring_get_capacity(app->workers[0].dlq)
					: burst;

		if (burst > room) {
			RELOAD_LOG(app, WARNING,
				   "--dlq-burst %" PRIu64 " is more than the capture rings sized at "
				   "start hold (%" PRIu64 " a worker): %" PRIu64 " until a restart",
				   app->cfg.dlq_burst, room, room * n);
			burst = room;
		}
		app->worker_next = (struct tally_worker_reload){
			.dlq_burst = burst,
			.dlq_rate = (app->cfg.dlq_rate + n - 1) / n,
			.hot_share = app->cfg.hot_share,
		};
		app->worker_reload_pending = 1;
		tally_reload_push(app);
	}
	if (r.changed == 0 && r.restart == 0)
		RELOAD_LOG(app, INFO, "configuration read again: nothing changed");
	free(next);
}
