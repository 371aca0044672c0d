/* SPDX-License-Identifier: BSD-3-Clause */
/* tally's options: one table drives --help, command-line parsing, the INI file and checks. */
#ifndef TALLY_CONFIG_H
#define TALLY_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define TALLY_HOST_MAX 256
#define TALLY_LISTEN_MAX 80
#define TALLY_PATH_MAX 1024
#define TALLY_INSTANCE_MAX 64
#define TALLY_REDIS_USER_MAX 64

#define TALLY_CONFIG_MAX_OPTS 64
#define TALLY_CONFIG_MAX_WARNINGS 8

struct tally_config {
	char config_file[TALLY_PATH_MAX];
	/*
	 * The metric catalog: the [metrics] section of this file (--catalog, else the --config
	 * file when it has one); empty: no catalog. tally_config_parse() has checked it.
	 */
	char catalog_file[TALLY_PATH_MAX];
	uint8_t config_has_metrics; /* the --config file has a [metrics] section */
	char redis_host[TALLY_HOST_MAX];
	uint16_t redis_port;
	char redis_user[TALLY_REDIS_USER_MAX + 1]; /* empty: the default user */
	char redis_password_file[TALLY_PATH_MAX];  /* empty: no AUTH */
	uint16_t udp_port;
	uint16_t statsd_port; /* 0: off */
	char statsd_device_tag[64];
	uint64_t statsd_max_tags;
	uint64_t statsd_series;
	uint8_t has_ipv4;
	uint8_t has_ipv6;
	uint32_t ipv4;          /* network byte order */
	uint8_t ipv6[16];
	uint64_t window_ms;
	uint64_t mbufs;
	uint64_t flush_batch;
	uint64_t flush_ms;
	uint64_t retention_s;
	uint64_t stats_ms;
	uint64_t log_ms;
	uint64_t table_series;
	uint64_t histogram_series; /* side memory of a table: TALLY_SIDE_PER_SERIES each */
	uint64_t distinct_series;
	uint64_t burst;
	uint64_t rx_desc;
	uint64_t redis_timeout_ms;
	uint64_t redis_wait_replicas; /* WAIT for this many replicas after each batch (0: no) */
	uint8_t partition;        /* 0 nic, 1 device (enum tally_partition_mode) */
	uint8_t rss_fields;       /* enum tally_rss_fields */
	uint8_t rss_key_len;      /* 0: the port's default key */
	uint8_t rss_key[64];
	double hot_share;         /* 0 disables hot-key handling */
	uint64_t hot_flush_ms;    /* hand pre-aggregated partials over this often (0: at close) */
	uint64_t fwd_ring;        /* records per worker-pair ring (device mode) */
	char dlq_path[TALLY_PATH_MAX]; /* empty: no dead-letter capture */
	uint8_t redis_write;      /* 0 merge (FCALL, exactly once), 1 hset */
	uint8_t redis_cluster;	  /* 0 auto (INFO cluster), 1 yes, 2 no */
	char spool_dir[TALLY_PATH_MAX]; /* empty: no spool */
	uint64_t spool_max_mb;
	uint8_t spool_policy;     /* enum tally_spool_policy */
	uint64_t sink_queue_mb;
	uint64_t max_memory_mb;   /* 0: the host's free hugepages and MemAvailable */
	uint64_t shutdown_timeout_s;
	uint64_t breaker_failures;
	uint64_t breaker_backoff_ms;
	uint64_t breaker_max_ms;
	char instance[TALLY_HOST_MAX]; /* empty: the host name */
	uint64_t dlq_max_mb;
	uint64_t dlq_burst;
	uint64_t dlq_rate;
	uint64_t exception_rate; /* ARP / ICMP / ND replies a second (and at once); 0: none */
	char metrics_listen[TALLY_LISTEN_MAX]; /* ADDR:PORT of /metrics; empty: off */
	uint8_t list_counters; /* --counters: print the counter list (parse returned 1) */
	uint8_t check_config;  /* --check-config: check the setup, run nothing */
	/* Filled by the parser: options given (command line or INI), by option table index. */
	uint8_t given[TALLY_CONFIG_MAX_OPTS];
	/* Options given that have no effect with the others: for the caller to print. */
	char warnings[TALLY_CONFIG_MAX_WARNINGS][200];
	uint32_t nwarnings;
};

enum tally_rss_fields {
	TALLY_RSS_L3_L4 = 0, /* IP addresses and UDP ports (default) */
	TALLY_RSS_L3,        /* IP addresses */
	TALLY_RSS_L3_SRC,    /* source IP address only: one address per device keeps affinity */
};

/* Fill c with every option's default. */
void tally_config_defaults(struct tally_config *c);

/*
 * Parse the application arguments (what follows EAL's "--"). A `--config FILE` among them is
 * read first, so the command line wins over the file. The metric catalog (catalog_file) is
 * loaded once to check it, so a bad one fails here too. Returns 0, 1 when --help was printed
 * (or --counters asked for: list_counters set, for the caller to print),
 * or -1 with a one-line message naming the option (or the file and line) and the problem in
 * err.
 */
int tally_config_parse(struct tally_config *c, int argc, char **argv, char *err, size_t errlen);

/*
 * Apply the [tally] section of an INI file, which may also hold a [metrics] section (the
 * catalog: noted in config_has_metrics, read by tally_catalog_load()); no other section. Same
 * return as tally_config_parse().
 */
int tally_config_load_file(struct tally_config *c, const char *path, char *err, size_t errlen);

/*
 * Every option whose value differs between a and b (SIGHUP's reload): fn gets its name and
 * both values as text ("unset" for none), in the option table's order.
 */
void tally_config_diff(const struct tally_config *a, const struct tally_config *b,
		       void (*fn)(void *ctx, const char *name, const char *was, const char *now),
		       void *ctx);

/* Copy option name's value (every field it sets) from src to dst; 0, or -1 when unknown. */
int tally_config_copy(struct tally_config *dst, const struct tally_config *src, const char *name);

/* Set one option from its text value ("window-ms", "500"); 0 or -1 with err. */
int tally_config_set(struct tally_config *c, const char *name, const char *value, char *err,
		     size_t errlen);

/* Print the option table as --help does. */
void tally_config_usage(FILE *f, const char *prog);

#endif /* TALLY_CONFIG_H */
