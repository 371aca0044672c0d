/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * tally --check-config: everything tally would set up, checked without running: the lcores,
 * the memory the options imply, the ports (RX queues, RSS, descriptors, NUMA placement),
 * hugepages, Redis (reachable, the password, a master, the Function), the spool directory,
 * the dead-letter capture's path and the /metrics address. One line per finding; what it
 * would run at the end.
 */
#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>

#include "tally_app.h"
#include "tally_auth.h"
#include "tally_metrics.h"

#define MBUF_CACHE_PER_WORKER 256 /* the pool's per-lcore cache (setup.c MBUF_CACHE) */
#define MBUFS_SPARE 1024          /* exception replies, the DLQ's copies, slack */

struct check {
	FILE *out;
	unsigned int problems;
	unsigned int warnings;
};

static void
say(struct check *k, const char *what, const char *fmt, ...)
{
	va_list ap;

	if (strcmp(what, "problem") == 0)
		k->problems++;
	else if (strcmp(what, "warning") == 0)
		k->warnings++;
	fprintf(k->out, "tally: check: %s: ", what);
	va_start(ap, fmt);
	vfprintf(k->out, fmt, ap);
	va_end(ap);
	fputc('\n', k->out);
}

static void
check_log(void *arg, int warning, const char *line)
{
	say(arg, warning ? "warning" : "ok", "%s", line);
}

static const char *
mib(uint64_t bytes, char *buf, size_t len)
{
	if (bytes >= (UINT64_C(10) << 30))
		snprintf(buf, len, "%.1f GiB", (double)bytes / (1 << 30));
	else
		snprintf(buf, len, "%" PRIu64 " MiB", (bytes + (1u << 20) - 1) >> 20);
	return buf;
}

static void
check_lcores(struct tally_app *app, struct check *k)
{
	unsigned int main_lcore = rte_get_main_lcore();
	char list[256] = "";
	size_t n = 0;
	uint32_t i;

	for (i = 0; i < app->nworkers && n < sizeof(list) - 16; i++)
		n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%u(cpu socket %u)",
				      i ? " " : "", app->lcores[i],
				      rte_lcore_to_socket_id(app->lcores[i]));
	say(k, "ok", "%u worker lcore(s): %s; control on lcore %u", app->nworkers, list,
	    main_lcore);
}

static void
check_memory(struct tally_app *app, struct check *k)
{
	char err[1024], b[3][24];
	uint64_t need = 0, have = 0, want;

	if (tally_app_memory(app, &need, &have, err, sizeof(err)) != 0)
		say(k, "problem", "%s", err);
	else
		say(k, "ok", "memory: the options need %s (%u merged windows of --table-series "
		    "%" PRIu64 " for --sink-queue-mb); %s %s",
		    mib(need, b[0], sizeof(b[0])), app->nmerge, app->cfg.table_series,
		    app->cfg.max_memory_mb > 0 ? "--max-memory-mb" : "free (hugepages + "
								     "MemAvailable):",
		    mib(have, b[1], sizeof(b[1])));
	if (!rte_eal_has_hugepages())
		say(k, "warning", "no hugepages (EAL --no-huge): fine for a test, slower with a "
		    "NIC; reserve them at boot (README: Deploying on bare metal)");
	if (tally_app_sink_queue_short(app, &want))
		say(k, "warning",
		    "--sink-queue-mb %" PRIu64 " holds %u windows of --table-series %" PRIu64
		    "; a Redis answering within --redis-timeout-ms %" PRIu64 " needs %" PRIu64
		    " at --window-ms %" PRIu64 ", or records may be dropped (window_stall)",
		    app->cfg.sink_queue_mb, app->nmerge, app->cfg.table_series,
		    app->cfg.redis_timeout_ms, want, app->cfg.window_ms);
}

/* The ports as tally would set them up: queues, RSS, descriptors, sockets. */
static void
check_ports(struct tally_app *app, struct check *k)
{
	const struct tally_config *c = &app->cfg;
	uint64_t mbufs_need = (uint64_t)app->nworkers * (c->burst + MBUF_CACHE_PER_WORKER) +
			      MBUFS_SPARE;
	uint32_t queues = 0, nports = 0, i;
	uint16_t port;

	RTE_ETH_FOREACH_DEV(port) {
		struct rte_eth_dev_info info;
		char name[RTE_ETH_NAME_MAX_LEN] = "?", where[32];
		int socket = rte_eth_dev_socket_id(port);
		uint16_t rxq, desc = (uint16_t)c->rx_desc;

		nports++;
		rte_eth_dev_get_name_by_port(port, name);
		if (rte_eth_dev_info_get(port, &info) != 0) {
			say(k, "problem", "port %u (%s): cannot read its capabilities", port, name);
			continue;
		}
		rxq = (uint16_t)RTE_MIN((uint32_t)info.max_rx_queues, app->nworkers);
		queues += rxq;
		if (rxq == 0) {
			say(k, "problem", "port %u (%s): no RX queue", port, name);
			continue;
		}
		if (desc > info.rx_desc_lim.nb_max || desc < info.rx_desc_lim.nb_min ||
		    (info.rx_desc_lim.nb_align > 1 && desc % info.rx_desc_lim.nb_align != 0))
			say(k, "warning",
			    "port %u (%s): --rx-desc %" PRIu64 " is outside what it takes (%u to %u, "
			    "a multiple of %u): it will be adjusted",
			    port, name, c->rx_desc, info.rx_desc_lim.nb_min, info.rx_desc_lim.nb_max,
			    info.rx_desc_lim.nb_align);
		mbufs_need += (uint64_t)rxq * RTE_MIN(RTE_MAX(desc, info.rx_desc_lim.nb_min),
						      info.rx_desc_lim.nb_max);
		if (socket >= 0)
			snprintf(where, sizeof(where), "socket %d", socket);
		else
			snprintf(where, sizeof(where), "no NUMA socket");
		say(k, "ok", "port %u (%s, driver %s, %s): %u RX queue(s) for %u worker(s), RSS %s",
		    port, name, info.driver_name, where, rxq, app->nworkers,
		    rxq > 1 ? (info.flow_type_rss_offloads != 0 ? "on" : "not supported")
			    : "not needed");
		if (rxq > 1 && info.flow_type_rss_offloads == 0)
			say(k, "warning",
			    "port %u (%s) has no RSS: its %u queues will not share the traffic", port,
			    name, rxq);
		/* NUMA: a worker off its NIC's socket pays the interconnect for every packet. */
		if (socket >= 0)
			for (i = 0; i < app->nworkers; i++) {
				unsigned int ls = rte_lcore_to_socket_id(app->lcores[i]);

				if (ls != (unsigned int)socket)
					say(k, "warning",
					    "worker lcore %u is on socket %u, port %u (%s) on socket "
					    "%d: choose lcores on the NIC's socket (-l)",
					    app->lcores[i], ls, port, name, socket);
			}
	}
	if (nports == 0) {
		say(k, "problem", "no Ethernet port: give one with -a PCI_ADDR or --vdev");
		return;
	}
	if (nports > TALLY_MAX_PORTS)
		say(k, "problem", "%u ports, at most %d", nports, TALLY_MAX_PORTS);
	if (queues < app->nworkers && c->partition == 0)
		say(k, "warning",
		    "%u RX queue(s) in all for %u workers: %u worker(s) will have nothing to do "
		    "(--partition nic)",
		    queues, app->nworkers, app->nworkers - queues);
	if (c->mbufs < mbufs_need)
		say(k, "warning",
		    "--mbufs %" PRIu64 " is fewer than the RX rings, bursts and caches hold "
		    "(%" PRIu64 "): packets will be dropped as rx_nombuf; give --mbufs %" PRIu64,
		    c->mbufs, mbufs_need, rte_align64pow2(mbufs_need + 1) - 1);
}

/*
 * A single Redis (not a cluster node) that is a replica takes no writes: in hset mode tally
 * would only find out at its first window. 1 (said so), 0 (a master, a cluster node, or it
 * does not answer: the sink's connect says why).
 */
static int
redis_replica(const struct tally_config *c, const char *password, struct check *k)
{
	struct timeval tv = {.tv_sec = 2};
	redisContext *ctx = redisConnectWithTimeout(c->redis_host, c->redis_port, tv);
	redisReply *info = NULL, *role = NULL;
	char err[256];
	int replica = 0;

	if (ctx != NULL && ctx->err == 0 && redisSetTimeout(ctx, tv) == REDIS_OK &&
	    tally_redis_auth(ctx, c->redis_user, password, err, sizeof(err)) == 0) {
		info = redisCommand(ctx, "INFO cluster");
		role = redisCommand(ctx, "ROLE");
	}
	if (info != NULL && info->type == REDIS_REPLY_STRING &&
	    strstr(info->str, "cluster_enabled:1") == NULL && role != NULL &&
	    role->type == REDIS_REPLY_ARRAY && role->elements >= 3 &&
	    role->element[0]->type == REDIS_REPLY_STRING &&
	    strcmp(role->element[0]->str, "slave") == 0 &&
	    role->element[1]->type == REDIS_REPLY_STRING) {
		say(k, "problem", "Redis at %s:%u is a replica (of %s:%lld): give --redis its master",
		    c->redis_host, c->redis_port, role->element[1]->str,
		    role->element[2]->type == REDIS_REPLY_INTEGER ? role->element[2]->integer : 0);
		replica = 1;
	}
	if (info != NULL)
		freeReplyObject(info);
	if (role != NULL)
		freeReplyObject(role);
	if (ctx != NULL)
		redisFree(ctx);
	return replica;
}

/* Redis as the sink would find it: reachable, the password, a master, the Function. */
static void
check_redis(struct tally_app *app, struct check *k)
{
	const struct tally_config *c = &app->cfg;
	char password[TALLY_AUTH_PASSWORD_SIZE] = "", err[512];
	struct tally_sink_conf sc = {
		.host = c->redis_host,
		.port = c->redis_port,
		.flush_batch = c->flush_batch,
		.flush_ms = c->flush_ms,
		.timeout_ms = c->redis_timeout_ms,
		.retention_s = c->retention_s,
		.window_ms = c->window_ms,
		.merge = c->redis_write == 0,
		.cluster = c->redis_cluster,
		.user = c->redis_user,
		.log = check_log,
		.log_arg = k,
	};
	struct tally_sink *s;
	uint32_t masters;

	if (c->redis_password_file[0] != '\0' &&
	    tally_password_file_read(c->redis_password_file, password, sizeof(password), err,
				     sizeof(err)) != 0) {
		say(k, "problem", "%s", err);
		return;
	}
	sc.password = password;
	if (redis_replica(c, password, k)) {
		explicit_bzero(password, sizeof(password));
		return;
	}
	s = tally_sink_create(&sc, err, sizeof(err));
	explicit_bzero(password, sizeof(password));
	if (s == NULL) {
		say(k, "problem", "%s%s", err,
		    c->spool_dir[0] != '\0' ? " (with --spool-dir tally starts anyway and spools "
					      "until it answers, unless it refused the password)"
					    : "");
		return;
	}
	masters = tally_sink_masters(s);
	tally_sink_free(s);
	if (masters > 1)
		say(k, "ok", "Redis Cluster at %s:%u: %u masters answer%s", c->redis_host,
		    c->redis_port, masters, c->redis_write == 0 ? ", tally_merge2 loaded" : "");
	else
		say(k, "ok", "Redis at %s:%u answers%s", c->redis_host, c->redis_port,
		    c->redis_write == 0 ? ", tally_merge2 loaded" : "");
}

static void
check_spool(struct tally_app *app, struct check *k)
{
	const struct tally_config *c = &app->cfg;
	const struct tally_spool_conf spc = {
		.dir = c->spool_dir,
		.max_bytes = c->spool_max_mb << 20,
		.policy = c->spool_policy,
		.log = check_log,
		.log_arg = k,
	};
	struct tally_spool *sp;
	char err[1200];

	if (c->spool_dir[0] == '\0') {
		say(k, "ok", "no --spool-dir: windows Redis cannot take in time are lost (counted)");
		return;
	}
	sp = calloc(1, sizeof(*sp));
	if (sp == NULL) {
		say(k, "problem", "--spool-dir: out of memory");
		return;
	}
	if (tally_spool_open(sp, &spc, err, sizeof(err)) != 0) {
		say(k, "problem", "%s", err);
	} else {
		say(k, "ok", "--spool-dir %s takes writes; %" PRIu64 " segment(s) to replay",
		    c->spool_dir, tally_spool_segments(sp));
		tally_spool_close(sp);
	}
	free(sp);
}

/* The capture's path: a regular file or nothing yet, in a directory that takes writes. */
static void
check_dlq(struct tally_app *app, struct check *k)
{
	const char *path = app->cfg.dlq_path;
	char dir[TALLY_PATH_MAX];
	struct stat st;

	if (path[0] == '\0')
		return;
	if (lstat(path, &st) == 0) {
		if (S_ISLNK(st.st_mode)) {
			say(k, "problem", "--dlq: %s is a symlink (never followed)", path);
			return;
		}
		if (!S_ISREG(st.st_mode)) {
			say(k, "problem", "--dlq: %s is not a regular file", path);
			return;
		}
		if (access(path, W_OK) != 0) {
			say(k, "problem", "--dlq: %s: %s", path, strerror(errno));
			return;
		}
	}
	snprintf(dir, sizeof(dir), "%s", path);
	if (access(dirname(dir), W_OK) != 0)
		say(k, "problem", "--dlq: its directory %s does not take writes: %s", dir,
		    strerror(errno));
	else
		say(k, "ok", "--dlq %s can be written", path);
}

static void
check_metrics(struct tally_app *app, struct check *k)
{
	struct tally_metrics_conf mc = {.body_max = 16};
	struct tally_metrics *m;
	char err[256];

	if (app->cfg.metrics_listen[0] == '\0')
		return;
	m = calloc(1, sizeof(*m));
	if (m == NULL ||
	    tally_metrics_parse_listen(app->cfg.metrics_listen, &mc.addr, err, sizeof(err)) != 0 ||
	    tally_metrics_open(m, &mc, err, sizeof(err)) != 0) {
		say(k, "problem", "%s", m == NULL ? "--metrics-listen: out of memory" : err);
	} else {
		say(k, "ok", "--metrics-listen %s is free", app->cfg.metrics_listen);
		tally_metrics_close(m);
	}
	free(m);
}

int
tally_check_config(struct tally_app *app, FILE *out)
{
	const struct tally_config *c = &app->cfg;
	struct check k = {.out = out};
	char err[512], statsd[48] = "";

	if (tally_app_plan(app, err, sizeof(err)) != 0) {
		say(&k, "problem", "%s", err);
	} else {
		check_lcores(app, &k);
		check_memory(app, &k);
		check_ports(app, &k);
	}
	if (c->catalog_file[0] != '\0')
		say(&k, "ok", "catalog %s read", c->catalog_file);
	check_redis(app, &k);
	check_spool(app, &k);
	check_dlq(app, &k);
	check_metrics(app, &k);
	if (c->statsd_port != 0)
		snprintf(statsd, sizeof(statsd), ", statsd on UDP port %u", c->statsd_port);
	fprintf(out,
		"tally: check: would run %u worker(s), --partition %s, windows of %" PRIu64
		" ms, --table-series %" PRIu64 ", telemetry on UDP port %u%s, writing to Redis "
		"%s:%u (%s)\n",
		app->nworkers, c->partition ? "device" : "nic", c->window_ms, c->table_series,
		c->udp_port, statsd, c->redis_host, c->redis_port,
		c->redis_write ? "hset" : "merge");
	fprintf(out, "tally: check: %u problem(s), %u warning(s)\n", k.problems, k.warnings);
	return k.problems == 0 ? 0 : 1;
}
