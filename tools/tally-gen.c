/* SPDX-License-Identifier: BSD-3-Clause */
/* tally-gen: synthetic v1 telemetry to a pcap file or a UDP socket, with the exact totals sent. */

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tally_statsd.h"
#include "tally_wire.h"

#define GEN_NAME "tally-gen"

#define GEN_IPV4_HDR_LEN 20
#define GEN_IPV6_HDR_LEN 40
#define GEN_UDP_HDR_LEN 8
#define GEN_ETH_HDR_LEN 14
#define GEN_VLAN_LEN 4
#define GEN_PCAP_REC_LEN 16

/* Room in front of the payload for pcap record, Ethernet, 802.1Q, IPv6 and UDP headers. */
#define GEN_HEADROOM 128
#define GEN_MAX_QUEUES 16
/* The largest payload: the most records UDP carries (over IPv6; IPv4 takes one fewer). */
#define GEN_PAYLOAD_MAX (TALLY_WIRE_HDR_LEN + TALLY_WIRE_MAX_RECORDS_IPV6 * TALLY_WIRE_REC_LEN)
#define GEN_BUF_LEN (GEN_HEADROOM + GEN_PAYLOAD_MAX)

/* Snapshot length of the pcap files: a whole jumbo frame, as tcpdump writes by default. */
#define GEN_SNAPLEN 262144

/* devices x metrics bound, so the totals table stays below 512 MiB. */
#define GEN_MAX_SERIES (1ULL << 24)

#define GEN_PCAP_BUF (8u << 20)

/* statsd mode: most tags a line is given, and the bad lines it mixes in, by tally's reason. */
#define GEN_STATSD_TAGS 16
static const struct {
	const char *reason;
	const char *line;
} gen_statsd_bad[] = {
	{"no_colon", "no colon here"}, {"unknown_type", "m1:1|x"},  {"bad_value", "m1:1e309|c"},
	{"bad_rate", "m1:1|c|@2"},     {"bad_tag", "m1:1|c|#a,,b"}, {"empty_name", ":1|c"},
	{"no_type", "m1:1"},	       {"bad_name", "m\x01:1|c"},
};
#define GEN_STATSD_REASONS (sizeof(gen_statsd_bad) / sizeof(gen_statsd_bad[0]))
#define GEN_SOCK_BUF (4 << 20)

/* Pacing granularity of --rate: about one sleep per millisecond of traffic. */
#define GEN_BATCH_PER_SEC 1000
#define GEN_BATCH_MAX 256

/* Sleep between retries when the kernel has no room for a datagram. */
#define GEN_RETRY_NS 20000

/* Entries of --kinds and --quantiles: a cycle of kinds and a handful of q's is all tests need. */
#define GEN_MAX_KINDS 64
#define GEN_MAX_QUANTILES 16

/* First size of the --expect value log, in entries (64 KiB); it doubles from there. */
#define GEN_OBS_INIT 4096

/* Distributions of histogram values (--dist). */
enum gen_dist {
	GEN_DIST_INT,
	GEN_DIST_UNIFORM,
	GEN_DIST_LOGNORMAL,
	GEN_DIST_PARETO,
	GEN_DIST_BIMODAL,
	GEN_DIST_MAX
};

static const char *const gen_dist_names[GEN_DIST_MAX] = {
	[GEN_DIST_INT] = "int",
	[GEN_DIST_UNIFORM] = "uniform",
	[GEN_DIST_LOGNORMAL] = "lognormal",
	[GEN_DIST_PARETO] = "pareto",
	[GEN_DIST_BIMODAL] = "bimodal",
};

struct gen_conf {
	const char *pcap_path;
	const char *send_addr;
	const char *totals_path;
	const char *src_mac;
	const char *dst_mac;
	const char *src_ip;
	const char *dst_ip;
	const char *src_ip6;
	const char *dst_ip6;
	uint64_t vlan;
	bool vlan_set;
	bool ipv6;
	bool float_values;
	bool json;
	uint64_t dst_port;
	uint64_t src_port;
	uint64_t src_ports;
	uint64_t queues;
	uint64_t datagrams;
	uint64_t devices;
	uint64_t device_base;
	uint64_t metrics;
	uint64_t records;
	double zipf;
	uint64_t hot_device;
	double hot_share;
	uint64_t malformed;
	uint64_t seed;
	uint64_t time_ns;
	uint64_t rate;
	const char *kinds_list;
	const char *dist_name;
	uint64_t cardinality;
	const char *expect_path;
	const char *values_path;
	const char *quantiles_list;
	bool statsd;
	bool statsd_plain;
	double statsd_rate;
	uint64_t statsd_tags;
	uint64_t statsd_bad;
	/* Parsed from the strings above by parse_args(). */
	uint8_t kinds[GEN_MAX_KINDS];
	unsigned int nb_kinds;
	enum gen_dist dist;
	double quantiles[GEN_MAX_QUANTILES];
	unsigned int nb_quantiles;
};

enum gen_opt_type {
	GEN_OPT_FLAG,
	GEN_OPT_U64,
	GEN_OPT_DOUBLE,
	GEN_OPT_STR,
	GEN_OPT_HELP,
};

/* One command-line option: the table drives getopt, range checks and --help. */
struct gen_option {
	const char *name;
	enum gen_opt_type type;
	size_t off;
	double min;
	double max;
	const char *arg;
	const char *help;
};

#define GEN_OFF(field) offsetof(struct gen_conf, field)

static const struct gen_option gen_options[] = {
	{"pcap", GEN_OPT_STR, GEN_OFF(pcap_path), 0, 0, "FILE",
	 "write an Ethernet pcap file (one of --pcap/--send is required)"},
	{"send", GEN_OPT_STR, GEN_OFF(send_addr), 0, 0, "HOST:PORT",
	 "send UDP payloads to IPV4:PORT or [IPV6]:PORT"},
	{"rate", GEN_OPT_U64, GEN_OFF(rate), 0, 1e9, "N",
	 "with --send, datagrams per second (0 = as fast as possible)"},
	{"src-mac", GEN_OPT_STR, GEN_OFF(src_mac), 0, 0, "MAC", "pcap source MAC"},
	{"dst-mac", GEN_OPT_STR, GEN_OFF(dst_mac), 0, 0, "MAC", "pcap destination MAC"},
	{"vlan", GEN_OPT_U64, GEN_OFF(vlan), 0, 4094, "ID", "pcap: add an 802.1Q tag"},
	{"ipv6", GEN_OPT_FLAG, GEN_OFF(ipv6), 0, 0, NULL, "pcap: IPv6 instead of IPv4"},
	{"src-ip", GEN_OPT_STR, GEN_OFF(src_ip), 0, 0, "ADDR", "pcap IPv4 source"},
	{"dst-ip", GEN_OPT_STR, GEN_OFF(dst_ip), 0, 0, "ADDR", "pcap IPv4 destination"},
	{"src-ip6", GEN_OPT_STR, GEN_OFF(src_ip6), 0, 0, "ADDR", "pcap IPv6 source"},
	{"dst-ip6", GEN_OPT_STR, GEN_OFF(dst_ip6), 0, 0, "ADDR", "pcap IPv6 destination"},
	{"dst-port", GEN_OPT_U64, GEN_OFF(dst_port), 1, 65535, "N", "pcap UDP destination port"},
	{"src-port", GEN_OPT_U64, GEN_OFF(src_port), 1, 65535, "N", "first UDP source port"},
	{"queues", GEN_OPT_U64, GEN_OFF(queues), 1, GEN_MAX_QUEUES, "N",
	 "pcap: write N files FILE.0 .. FILE.N-1, a datagram to file (source port % N), as RSS "
	 "on ports would spread them over N RX queues"},
	{"src-ports", GEN_OPT_U64, GEN_OFF(src_ports), 1, 65535, "K",
	 "source port is src-port + (seq % K): spreads a device over RSS queues"},
	{"datagrams", GEN_OPT_U64, GEN_OFF(datagrams), 0, 1e12, "N", "valid datagrams"},
	{"devices", GEN_OPT_U64, GEN_OFF(devices), 1, 1e7, "N", "number of devices"},
	{"device-base", GEN_OPT_U64, GEN_OFF(device_base), 0, (double)UINT64_MAX, "ID",
	 "first device id"},
	{"metrics", GEN_OPT_U64, GEN_OFF(metrics), 1, 1e6, "N", "metric ids 1..N per device"},
	{"records", GEN_OPT_U64, GEN_OFF(records), 1, TALLY_WIRE_MAX_RECORDS_IPV6, "N",
	 "records per datagram: at most 4092 over IPv4, 4093 over IPv6 (UDP's maximum); more "
	 "than 90 make frames over 1500 bytes"},
	{"zipf", GEN_OPT_DOUBLE, GEN_OFF(zipf), 0, 10, "S",
	 "Zipf exponent of device popularity (0 = uniform)"},
	{"hot-device", GEN_OPT_U64, GEN_OFF(hot_device), 0, (double)UINT64_MAX, "ID",
	 "device that gets --hot-share of the datagrams (may be outside the range)"},
	{"hot-share", GEN_OPT_DOUBLE, GEN_OFF(hot_share), 0, 1, "F",
	 "fraction of datagrams sent by --hot-device"},
	{"float", GEN_OPT_FLAG, GEN_OFF(float_values), 0, 0, NULL,
	 "arbitrary finite values in [-1e6, 1e6) instead of integers in [0, 1000)"},
	{"kinds", GEN_OPT_STR, GEN_OFF(kinds_list), 0, 0, "LIST",
	 "metric m has kind LIST[(m-1) % length]: 1 counter, 2 gauge, 3 histogram, 4 distinct"},
	{"dist", GEN_OPT_STR, GEN_OFF(dist_name), 0, 0, "NAME",
	 "histogram (kind 3) values: int (as counters and gauges, --float included), "
	 "uniform U[1, 1000), lognormal (mu 3, sigma 1), pareto (xm 1, alpha 1.5), "
	 "bimodal (70% lognormal mu 1 sigma 0.3, 30% lognormal mu 5 sigma 0.3)"},
	{"cardinality", GEN_OPT_U64, GEN_OFF(cardinality), 1, (double)UINT64_MAX, "N",
	 "a distinct (kind 4) record draws j in [0, N); its element is a 64-bit mix of "
	 "(metric, j), the same on every device"},
	{"malformed", GEN_OPT_U64, GEN_OFF(malformed), 0, 1e12, "N",
	 "also mix in N malformed datagrams, cycling through the payload reasons"},
	{"seed", GEN_OPT_U64, GEN_OFF(seed), 0, (double)UINT64_MAX, "N", "PRNG seed"},
	{"time-ns", GEN_OPT_U64, GEN_OFF(time_ns), 0, (double)UINT64_MAX, "NS",
	 "time_ns of every datagram (default: now + 1 us per datagram)"},
	{"totals", GEN_OPT_STR, GEN_OFF(totals_path), 0, 0, "FILE",
	 "write 'device metric count sum min max' per series (kind 4: sum, min, max are '-')"},
	{"expect", GEN_OPT_STR, GEN_OFF(expect_path), 0, 0, "FILE",
	 "write a JSON line per series, then per metric over all devices (device null): "
	 "count, sum, min, max, exact quantiles (kind 3), exact distinct elements (kind 4)"},
	{"quantiles", GEN_OPT_STR, GEN_OFF(quantiles_list), 0, 0, "LIST",
	 "the q's of --expect, each in [0, 1]: the value of rank floor(q * (count - 1))"},
	{"values", GEN_OPT_STR, GEN_OFF(values_path), 0, 0, "FILE",
	 "write 'device metric kind value' per kind-3 and kind-4 record, in the order sent "
	 "(kind 4: the element as an unsigned 64-bit integer)"},
	{"statsd", GEN_OPT_FLAG, GEN_OFF(statsd), 0, 0, NULL,
	 "datagrams of statsd / DogStatsD text instead of v1 (send them to tally's --statsd-port "
	 "with --dst-port): --records lines of one device (tag host:d<ID>), metric m<M> typed by "
	 "its kind (1 c, 2 g, 3 ms, 4 s, the element as member e<N>); --totals then holds "
	 "tally's ids: device 2^63 + hash of d<ID>, metric the hash of its series text"},
	{"statsd-rate", GEN_OPT_DOUBLE, GEN_OFF(statsd_rate), 0, 1, "R",
	 "statsd: counters and timers sampled at R (|@R, R in (0, 1]): tally counts a counter's "
	 "value / R, a timer's value round(1 / R) times (--totals says so)"},
	{"statsd-tags", GEN_OPT_U64, GEN_OFF(statsd_tags), 0, GEN_STATSD_TAGS, "N",
	 "statsd: N tags t<k>:v<k> on every line, written last first (tally sorts them)"},
	{"statsd-plain", GEN_OPT_FLAG, GEN_OFF(statsd_plain), 0, 0, NULL,
	 "statsd: Etsy's plain lines, no tags at all (no host tag: tally's device is the "
	 "sender's address; for daemons that refuse DogStatsD tags); not with --totals, --expect"},
	{"statsd-bad", GEN_OPT_U64, GEN_OFF(statsd_bad), 0, 1e12, "N",
	 "statsd: N lines tally must refuse, spread over the datagrams and cycling through "
	 "reasons (counted in the summary as statsd:<reason>)"},
	{"json", GEN_OPT_FLAG, GEN_OFF(json), 0, 0, NULL, "print the summary as JSON"},
	{"help", GEN_OPT_HELP, 0, 0, 0, NULL, "show this help"},
};

#define GEN_NB_OPTIONS (sizeof(gen_options) / sizeof(gen_options[0]))

static const struct gen_conf gen_defaults = {
	.src_mac = "02:00:00:00:00:02",
	.dst_mac = "02:00:00:00:00:01",
	.src_ip = "198.18.0.2",
	.dst_ip = "198.18.0.1",
	.src_ip6 = "2001:2::2",
	.dst_ip6 = "2001:2::1",
	.dst_port = 9797,
	.src_port = 40000,
	.src_ports = 1,
	.queues = 1,
	.datagrams = 1000,
	.devices = 1000,
	.device_base = 1,
	.metrics = 8,
	.records = 8,
	.seed = 1,
	.kinds_list = "1,2,3",
	.dist_name = "int",
	.cardinality = 1000,
	.quantiles_list = "0.5,0.9,0.99,0.999",
	.statsd_rate = 1,
};

/* Per-device generator state; the slot after the last device is a hot device outside the range. */
struct gen_dev {
	uint64_t seq;
	uint64_t cursor;
};

struct gen_series {
	uint64_t count;
	double sum;
	double min;
	double max;
};

/* Addresses in wire order, resolved from the options. */
struct gen_net {
	uint8_t src_mac[6];
	uint8_t dst_mac[6];
	uint8_t src_ip[4];
	uint8_t dst_ip[4];
	uint8_t src_ip6[16];
	uint8_t dst_ip6[16];
	struct sockaddr_storage dst;
	socklen_t dst_len;
	bool v6;
};

/*
 * A histogram value or distinct element kept for --expect. Sorting by key then bits puts each
 * series' values in order (key: the series' place in the output, rank * metrics + metric - 1),
 * and again each metric's over all devices (key: metric - 1).
 */
struct gen_obs {
	uint64_t key;
	uint64_t bits; /* kind 4: the element; kind 3: the value as double_order() maps it */
};

struct gen_counters {
	uint64_t datagrams;
	uint64_t valid;
	uint64_t records;
	uint64_t malformed;
	uint64_t reason[TALLY_MALFORMED_PAYLOAD_MAX];
	uint64_t bytes;
	uint64_t send_errors;
	uint64_t statsd_lines;
	uint64_t statsd_bad[GEN_STATSD_REASONS];
};

struct gen_state {
	const struct gen_conf *conf;
	struct gen_net net;
	uint64_t rng[4];
	uint64_t mal_rng[4];
	struct gen_dev *devs;
	struct gen_series *series;
	double *zipf_cdf;
	uint64_t nb_slots;
	uint64_t hot_slot;
	bool has_hot;
	bool has_time;
	uint64_t time_base;
	uint64_t pcap_us0;
	uint16_t ip_id;
	uint64_t nb_value_faults;
	bool hot_first;                 /* the hot device sorts before every device of the range */
	FILE *values;                   /* --values, or NULL */
	struct gen_obs *obs;            /* --expect's log of kind-3/4 records, or NULL */
	uint64_t nb_obs;
	uint64_t obs_cap;
	FILE *pcap;                     /* the first of the queue files */
	FILE *pcapq[GEN_MAX_QUEUES];
	int *socks;
	struct gen_counters cnt;
	uint64_t statsd_acc;            /* Bresenham of --statsd-bad over the datagrams */
	uint64_t statsd_nbad;           /* bad lines written so far */
	uint8_t v1[GEN_PAYLOAD_MAX];    /* statsd mode: the records a datagram's text says */
	uint8_t buf[GEN_BUF_LEN];
};

static void __attribute__((noreturn, format(printf, 2, 3)))
opt_fail(const char *opt, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, GEN_NAME ": --%s: ", opt);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static void __attribute__((noreturn, format(printf, 1, 2)))
fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, GEN_NAME ": ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void
usage(FILE *f)
{
	char opt[48];
	size_t i;

	fprintf(f, "Usage: " GEN_NAME " (--pcap FILE | --send HOST:PORT) [OPTION]...\n"
		   "Generate tally v1 telemetry and print what was sent.\n\n");
	for (i = 0; i < GEN_NB_OPTIONS; i++) {
		const struct gen_option *o = &gen_options[i];
		const void *def = (const char *)&gen_defaults + o->off;

		snprintf(opt, sizeof(opt), "--%s%s%s", o->name, o->arg ? " " : "",
			 o->arg ? o->arg : "");
		fprintf(f, "  %-22s %s", opt, o->help);
		if (o->type == GEN_OPT_U64 && *(const uint64_t *)def != 0)
			fprintf(f, " [%" PRIu64 "]", *(const uint64_t *)def);
		else if (o->type == GEN_OPT_STR && *(const char *const *)def != NULL)
			fprintf(f, " [%s]", *(const char *const *)def);
		fputc('\n', f);
	}
}

static void
opt_parse_value(const struct gen_option *o, const char *arg, struct gen_conf *conf)
{
	void *dst = (char *)conf + o->off;
	char *end;

	switch (o->type) {
	case GEN_OPT_FLAG:
		*(bool *)dst = true;
		return;
	case GEN_OPT_STR:
		if (*arg == '\0')
			opt_fail(o->name, "empty argument");
		*(const char **)dst = arg;
		return;
	case GEN_OPT_U64: {
		unsigned long long v;

		errno = 0;
		v = strtoull(arg, &end, 10);
		if (*arg < '0' || *arg > '9' || *end != '\0' || errno == ERANGE)
			opt_fail(o->name, "'%s' is not an unsigned integer", arg);
		if ((double)v < o->min || (o->max < (double)UINT64_MAX && (double)v > o->max))
			opt_fail(o->name, "%llu is out of range [%.0f, %.0f]", v, o->min, o->max);
		*(uint64_t *)dst = v;
		return;
	}
	case GEN_OPT_DOUBLE: {
		double v;

		errno = 0;
		v = strtod(arg, &end);
		if (end == arg || *end != '\0' || errno == ERANGE || !isfinite(v))
			opt_fail(o->name, "'%s' is not a number", arg);
		if (v < o->min || v > o->max)
			opt_fail(o->name, "%g is out of range [%g, %g]", v, o->min, o->max);
		*(double *)dst = v;
		return;
	}
	case GEN_OPT_HELP:
		usage(stdout);
		exit(0);
	}
}

static void
parse_mac(const char *opt, const char *s, uint8_t mac[6])
{
	int n = 0;

	if (strlen(s) != 17 ||
	    sscanf(s, "%2hhx:%2hhx:%2hhx:%2hhx:%2hhx:%2hhx%n", &mac[0], &mac[1], &mac[2],
		   &mac[3], &mac[4], &mac[5], &n) != 6 || n != 17)
		opt_fail(opt, "'%s' is not a MAC address like 02:00:00:00:00:01", s);
}

static void
parse_ip(const char *opt, int af, const char *s, void *out)
{
	if (inet_pton(af, s, out) != 1)
		opt_fail(opt, "'%s' is not an %s address", s, af == AF_INET ? "IPv4" : "IPv6");
}

static void
parse_send_addr(const char *s, struct gen_net *net)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *port_str;
	unsigned long long port;
	char *end;
	size_t hlen;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (close == NULL || close[1] != ':')
			opt_fail("send", "'%s' is not [IPV6]:PORT", s);
		hlen = (size_t)(close - s - 1);
		if (hlen >= sizeof(host))
			opt_fail("send", "'%s' is not [IPV6]:PORT", s);
		memcpy(host, s + 1, hlen);
		port_str = close + 2;
		net->v6 = true;
	} else {
		const char *colon = strrchr(s, ':');

		if (colon == NULL || (size_t)(colon - s) >= sizeof(host))
			opt_fail("send", "'%s' is not IPV4:PORT", s);
		hlen = (size_t)(colon - s);
		memcpy(host, s, hlen);
		port_str = colon + 1;
		net->v6 = false;
	}
	host[hlen] = '\0';

	errno = 0;
	port = strtoull(port_str, &end, 10);
	if (*port_str < '0' || *port_str > '9' || *end != '\0' || errno != 0 || port == 0 ||
	    port > 65535)
		opt_fail("send", "port '%s' is not in [1, 65535]", port_str);

	memset(&net->dst, 0, sizeof(net->dst));
	if (net->v6) {
		struct sockaddr_in6 *sa = (struct sockaddr_in6 *)&net->dst;

		sa->sin6_family = AF_INET6;
		sa->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host, &sa->sin6_addr) != 1)
			opt_fail("send", "'%s' is not an IPv6 address", host);
		net->dst_len = sizeof(*sa);
	} else {
		struct sockaddr_in *sa = (struct sockaddr_in *)&net->dst;

		sa->sin_family = AF_INET;
		sa->sin_port = htons((uint16_t)port);
		if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
			opt_fail("send", "'%s' is not an IPv4 address", host);
		net->dst_len = sizeof(*sa);
	}
}

static bool
opt_seen(const bool *seen, const char *name)
{
	size_t i;

	for (i = 0; i < GEN_NB_OPTIONS; i++)
		if (strcmp(gen_options[i].name, name) == 0)
			return seen[i];
	return false;
}

/*
 * A comma-separated list of numbers in [min, max], at most max_n of them; integer entries are
 * plain digits. Returns how many; anything else is one line naming the option.
 */
static unsigned int
parse_list(const char *opt, const char *s, bool integer, double min, double max, double *out,
	   unsigned int max_n)
{
	const char *p = s;
	unsigned int n = 0;
	char *end;
	double v;

	for (;;) {
		if (n == max_n)
			opt_fail(opt, "'%s' has more than %u entries", s, max_n);
		errno = 0;
		v = strtod(p, &end);
		/* strtod takes blanks, signs, hex, "inf" and "nan": only plain numbers pass. */
		if (end == p || (*end != ',' && *end != '\0') || errno == ERANGE || !isfinite(v) ||
		    strspn(p, integer ? "0123456789" : "0123456789.eE-") != (size_t)(end - p))
			opt_fail(opt, "'%s' is not a comma-separated list of %s", s,
				 integer ? "integers" : "numbers");
		if (v < min || v > max)
			opt_fail(opt, "%g is out of range [%g, %g]", v, min, max);
		out[n++] = v;
		if (*end == '\0')
			return n;
		p = end + 1;
	}
}

/* The lists and names behind --kinds, --dist and --quantiles, parsed into conf. */
static void
parse_generator(struct gen_conf *conf)
{
	double v[GEN_MAX_KINDS > GEN_MAX_QUANTILES ? GEN_MAX_KINDS : GEN_MAX_QUANTILES];
	unsigned int i, j;

	conf->nb_kinds = parse_list("kinds", conf->kinds_list, true, TALLY_KIND_COUNTER,
				    TALLY_KIND_MAX, v, GEN_MAX_KINDS);
	for (i = 0; i < conf->nb_kinds; i++)
		conf->kinds[i] = (uint8_t)v[i];

	for (i = 0; i < GEN_DIST_MAX; i++)
		if (strcmp(conf->dist_name, gen_dist_names[i]) == 0)
			break;
	if (i == GEN_DIST_MAX)
		opt_fail("dist", "'%s' is not one of int, uniform, lognormal, pareto, bimodal",
			 conf->dist_name);
	conf->dist = (enum gen_dist)i;

	conf->nb_quantiles = parse_list("quantiles", conf->quantiles_list, false, 0, 1,
					conf->quantiles, GEN_MAX_QUANTILES);
	/* Each q is a key of one JSON object: a second one would hide the first. */
	for (i = 0; i < conf->nb_quantiles; i++)
		for (j = 0; j < i; j++)
			if (conf->quantiles[i] == conf->quantiles[j])
				opt_fail("quantiles", "%g is given twice", conf->quantiles[i]);
}

/* Parse argv into conf and net; every mistake ends the program with one line and status 2. */
static void
parse_args(int argc, char **argv, struct gen_conf *conf, struct gen_net *net, bool *seen)
{
	struct option longopts[GEN_NB_OPTIONS + 1];
	uint64_t max_records;
	size_t i;
	int idx;
	int c;

	*conf = gen_defaults;
	memset(longopts, 0, sizeof(longopts));
	for (i = 0; i < GEN_NB_OPTIONS; i++) {
		longopts[i].name = gen_options[i].name;
		longopts[i].has_arg = gen_options[i].arg != NULL ? required_argument : no_argument;
		longopts[i].val = 0;
	}

	opterr = 0;
	for (;;) {
		idx = -1;
		c = getopt_long(argc, argv, ":", longopts, &idx);
		if (c == -1)
			break;
		if (c == ':') {
			fprintf(stderr, GEN_NAME ": %s: missing argument\n", argv[optind - 1]);
			exit(2);
		}
		if (c != 0 || idx < 0) {
			fprintf(stderr, GEN_NAME ": %s: unknown option (see --help)\n",
				argv[optind - 1]);
			exit(2);
		}
		seen[idx] = true;
		opt_parse_value(&gen_options[idx], optarg, conf);
	}
	if (optind < argc) {
		fprintf(stderr, GEN_NAME ": %s: unexpected argument (see --help)\n", argv[optind]);
		exit(2);
	}

	if ((conf->pcap_path == NULL) == (conf->send_addr == NULL))
		opt_fail(conf->pcap_path ? "send" : "pcap",
			 "exactly one of --pcap and --send is required");
	if (conf->rate != 0 && conf->send_addr == NULL)
		opt_fail("rate", "only applies to --send");

	parse_mac("src-mac", conf->src_mac, net->src_mac);
	parse_mac("dst-mac", conf->dst_mac, net->dst_mac);
	parse_ip("src-ip", AF_INET, conf->src_ip, net->src_ip);
	parse_ip("dst-ip", AF_INET, conf->dst_ip, net->dst_ip);
	parse_ip("src-ip6", AF_INET6, conf->src_ip6, net->src_ip6);
	parse_ip("dst-ip6", AF_INET6, conf->dst_ip6, net->dst_ip6);
	if (conf->send_addr != NULL)
		parse_send_addr(conf->send_addr, net);
	else
		net->v6 = conf->ipv6;

	max_records = net->v6 ? TALLY_WIRE_MAX_RECORDS_IPV6 : TALLY_WIRE_MAX_RECORDS_IPV4;
	if (conf->records > max_records)
		opt_fail("records",
			 "%" PRIu64 " records do not fit a UDP datagram over %s "
			 "(at most %" PRIu64 ")",
			 conf->records, net->v6 ? "IPv6" : "IPv4", max_records);
	if (conf->src_port + conf->src_ports - 1 > 65535)
		opt_fail("src-ports", "src-port + src-ports - 1 must be at most 65535");
	if (conf->devices - 1 > UINT64_MAX - conf->device_base)
		opt_fail("device-base", "device-base + devices - 1 overflows 64 bits");
	if ((conf->devices + 1) * conf->metrics > GEN_MAX_SERIES)
		opt_fail("metrics", "devices x metrics must be at most %llu", GEN_MAX_SERIES);
	if (opt_seen(seen, "hot-share") && !opt_seen(seen, "hot-device"))
		opt_fail("hot-share", "needs --hot-device");
	if (opt_seen(seen, "hot-device") && !opt_seen(seen, "hot-share"))
		opt_fail("hot-device", "needs --hot-share");
	if (conf->statsd && conf->malformed > 0)
		opt_fail("malformed", "v1 faults: not with --statsd (see --statsd-bad)");
	if (!conf->statsd && (opt_seen(seen, "statsd-rate") || opt_seen(seen, "statsd-tags") ||
			      opt_seen(seen, "statsd-bad") || conf->statsd_plain))
		opt_fail("statsd-rate", "--statsd-rate, --statsd-tags, --statsd-plain and --statsd-bad "
			 "need --statsd");
	if (conf->statsd_plain && (conf->statsd_tags > 0 || conf->totals_path != NULL ||
				   conf->expect_path != NULL))
		opt_fail("statsd-plain", "no tags, so the device is the sender's address: not with "
			 "--statsd-tags, --totals or --expect");
	if (!(conf->statsd_rate > 0))
		opt_fail("statsd-rate", "must be in (0, 1]");
	parse_generator(conf);
}

/* splitmix64's finaliser: a bijection of 64-bit words that scatters every input bit. */
static inline uint64_t
mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* xoshiro256** seeded through splitmix64: fast, and one seed always gives one stream. */
static uint64_t
splitmix64(uint64_t *x)
{
	return mix64(*x += 0x9e3779b97f4a7c15ULL);
}

static void
rng_seed(uint64_t s[4], uint64_t seed)
{
	int i;

	for (i = 0; i < 4; i++)
		s[i] = splitmix64(&seed);
}

static inline uint64_t
rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static inline uint64_t
rng_next(uint64_t s[4])
{
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

/* Uniform in [0, 1). */
static inline double
rng_unit(uint64_t s[4])
{
	return (double)(rng_next(s) >> 11) * 0x1.0p-53;
}

/* Uniform in [0, n), by multiply-shift: no division and no modulo bias worth the name. */
static inline uint64_t
rng_below(uint64_t s[4], uint64_t n)
{
	return (uint64_t)(((unsigned __int128)rng_next(s) * n) >> 64);
}

static inline double
gen_value(uint64_t s[4], bool float_values)
{
	if (float_values)
		return rng_unit(s) * 2e6 - 1e6;
	return (double)rng_below(s, 1000);
}

/* Standard normal by Box-Muller; the second variate is dropped so that a draw is stateless. */
static inline double
rng_normal(uint64_t s[4])
{
	double u1 = 1.0 - rng_unit(s); /* in (0, 1]: the log stays finite */
	double u2 = rng_unit(s);

	return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

static inline double
rng_lognormal(uint64_t s[4], double mu, double sigma)
{
	return exp(mu + sigma * rng_normal(s));
}

/* A histogram value of --dist; int keeps the counters' values, so old runs stay the same. */
static inline double
hist_value(uint64_t s[4], enum gen_dist dist, bool float_values)
{
	switch (dist) {
	case GEN_DIST_UNIFORM:
		return 1.0 + rng_unit(s) * 999.0;
	case GEN_DIST_LOGNORMAL:
		return rng_lognormal(s, 3.0, 1.0);
	case GEN_DIST_PARETO:
		/* Inverse CDF, xm * U^(-1/alpha) with U in (0, 1]: at most 2^(53/1.5), finite. */
		return pow(1.0 - rng_unit(s), -1.0 / 1.5);
	case GEN_DIST_BIMODAL:
		if (rng_unit(s) < 0.7)
			return rng_lognormal(s, 1.0, 0.3);
		return rng_lognormal(s, 5.0, 0.3);
	case GEN_DIST_INT:
	case GEN_DIST_MAX:
		break;
	}
	return gen_value(s, float_values);
}

/*
 * Element j of a metric's distinct series. It depends on nothing else, so devices that draw
 * the same j send the same element and a merge of their series is the union of their j's; the
 * outer mix is a bijection, so distinct j's are distinct elements and the exact count is known.
 */
static inline uint64_t
distinct_element(uint32_t metric, uint64_t j)
{
	return mix64(mix64(metric) + j);
}

static inline uint8_t
metric_kind(const struct gen_conf *conf, uint32_t metric)
{
	return conf->kinds[(metric - 1) % conf->nb_kinds];
}

/* CDF of Zipf(s) over ranks 1..n; rank r is device index r - 1. */
static double *
zipf_cdf_create(uint64_t n, double s)
{
	double *cdf = malloc(n * sizeof(*cdf));
	double acc = 0;
	uint64_t i;

	if (cdf == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		acc += pow((double)(i + 1), -s);
		cdf[i] = acc;
	}
	for (i = 0; i < n; i++)
		cdf[i] /= acc;
	cdf[n - 1] = 1.0;
	return cdf;
}

static uint64_t
zipf_pick(const double *cdf, uint64_t n, double u)
{
	uint64_t lo = 0;
	uint64_t hi = n - 1;

	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;

		if (cdf[mid] > u)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

static uint64_t
pick_slot(struct gen_state *st)
{
	const struct gen_conf *conf = st->conf;

	if (st->has_hot && rng_unit(st->rng) < conf->hot_share)
		return st->hot_slot;
	if (st->zipf_cdf != NULL)
		return zipf_pick(st->zipf_cdf, conf->devices, rng_unit(st->rng));
	return rng_below(st->rng, conf->devices);
}

static uint64_t
slot_device(const struct gen_state *st, uint64_t slot)
{
	if (slot == st->conf->devices)
		return st->conf->hot_device;
	return st->conf->device_base + slot;
}

/* A valid payload of nrec records, metrics taken round-robin from cursor. Returns its length. */
static uint32_t
build_payload(struct gen_state *st, uint8_t *p, uint64_t device, uint64_t seq,
	      uint64_t time_ns, uint64_t cursor, uint16_t nrec, uint64_t rng[4])
{
	const struct gen_conf *conf = st->conf;
	uint64_t metrics = conf->metrics;
	uint32_t m = (uint32_t)(cursor % metrics) + 1;
	uint8_t kind;
	uint64_t e;
	uint16_t r;

	tally_wire_put_hdr(p, nrec, device, seq, time_ns);
	for (r = 0; r < nrec; r++) {
		kind = metric_kind(conf, m);
		if (kind == TALLY_KIND_DISTINCT) {
			e = distinct_element(m, rng_below(rng, conf->cardinality));
			tally_wire_put_rec(p, r, m, kind, 0);
			/* Copied as bits: an element may be a NaN a double need not keep. */
			memcpy(p + TALLY_WIRE_HDR_LEN + (uint32_t)r * TALLY_WIRE_REC_LEN +
				       offsetof(struct tally_wire_rec, value),
			       &e, sizeof(e));
		} else if (kind == TALLY_KIND_HISTOGRAM) {
			tally_wire_put_rec(p, r, m, kind,
					   hist_value(rng, conf->dist, conf->float_values));
		} else {
			tally_wire_put_rec(p, r, m, kind, gen_value(rng, conf->float_values));
		}
		m = m == metrics ? 1 : m + 1;
	}
	return TALLY_WIRE_HDR_LEN + (uint32_t)nrec * TALLY_WIRE_REC_LEN;
}

/* Sum of 16-bit words in native order (RFC 1071: the result stores back byte-order neutral). */
static uint64_t
csum_add(uint64_t sum, const uint8_t *p, size_t len)
{
	uint32_t w32;
	uint16_t w16 = 0;

	while (len >= 4) {
		memcpy(&w32, p, 4);
		sum += w32;
		p += 4;
		len -= 4;
	}
	if (len >= 2) {
		memcpy(&w16, p, 2);
		sum += w16;
		p += 2;
		len -= 2;
	}
	if (len == 1) {
		w16 = 0;
		memcpy(&w16, p, 1);
		sum += w16;
	}
	return sum;
}

static uint16_t
csum_fold(uint64_t sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static inline void
put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void
put_be32(uint8_t *p, uint32_t v)
{
	put_be16(p, (uint16_t)(v >> 16));
	put_be16(p + 2, (uint16_t)v);
}

/*
 * Wrap the payload already at buf + GEN_HEADROOM into pcap record + Ethernet [+ 802.1Q] + IP +
 * UDP headers, placed right in front of it. Returns where the pcap record starts.
 */
static uint8_t *
build_frame(struct gen_state *st, uint32_t plen, uint16_t sport, uint64_t index, uint32_t *len)
{
	const struct gen_conf *conf = st->conf;
	const struct gen_net *net = &st->net;
	uint32_t ip_len = net->v6 ? GEN_IPV6_HDR_LEN : GEN_IPV4_HDR_LEN;
	uint32_t udp_len = GEN_UDP_HDR_LEN + plen;
	uint8_t *udp = st->buf + GEN_HEADROOM - GEN_UDP_HDR_LEN;
	uint8_t *ip = udp - ip_len;
	uint8_t *l2 = ip - GEN_ETH_HDR_LEN - (conf->vlan_set ? GEN_VLAN_LEN : 0);
	uint8_t *rec = l2 - GEN_PCAP_REC_LEN;
	uint32_t frame_len = (uint32_t)(st->buf + GEN_HEADROOM + plen - l2);
	uint8_t pseudo[40];
	uint64_t us = st->pcap_us0 + index;
	uint32_t hdr[4];
	uint16_t csum;
	uint64_t sum;

	hdr[0] = (uint32_t)(us / 1000000);
	hdr[1] = (uint32_t)(us % 1000000);
	hdr[2] = frame_len;
	hdr[3] = frame_len;
	memcpy(rec, hdr, sizeof(hdr));

	memcpy(l2, net->dst_mac, 6);
	memcpy(l2 + 6, net->src_mac, 6);
	if (conf->vlan_set) {
		put_be16(l2 + 12, 0x8100);
		put_be16(l2 + 14, (uint16_t)conf->vlan);
		put_be16(l2 + 16, net->v6 ? 0x86dd : 0x0800);
	} else {
		put_be16(l2 + 12, net->v6 ? 0x86dd : 0x0800);
	}

	if (net->v6) {
		put_be32(ip, 0x60000000);
		put_be16(ip + 4, (uint16_t)udp_len);
		ip[6] = IPPROTO_UDP;
		ip[7] = 64;
		memcpy(ip + 8, net->src_ip6, 16);
		memcpy(ip + 24, net->dst_ip6, 16);
		memcpy(pseudo, net->src_ip6, 16);
		memcpy(pseudo + 16, net->dst_ip6, 16);
		put_be32(pseudo + 32, udp_len);
		put_be32(pseudo + 36, IPPROTO_UDP);
		sum = csum_add(0, pseudo, 40);
	} else {
		ip[0] = 0x45;
		ip[1] = 0;
		put_be16(ip + 2, (uint16_t)(ip_len + udp_len));
		put_be16(ip + 4, st->ip_id++);
		put_be16(ip + 6, 0x4000);
		ip[8] = 64;
		ip[9] = IPPROTO_UDP;
		ip[10] = 0;
		ip[11] = 0;
		memcpy(ip + 12, net->src_ip, 4);
		memcpy(ip + 16, net->dst_ip, 4);
		csum = csum_fold(csum_add(0, ip, GEN_IPV4_HDR_LEN));
		memcpy(ip + 10, &csum, 2);
		memcpy(pseudo, net->src_ip, 4);
		memcpy(pseudo + 4, net->dst_ip, 4);
		pseudo[8] = 0;
		pseudo[9] = IPPROTO_UDP;
		put_be16(pseudo + 10, (uint16_t)udp_len);
		sum = csum_add(0, pseudo, 12);
	}

	put_be16(udp, sport);
	put_be16(udp + 2, (uint16_t)conf->dst_port);
	put_be16(udp + 4, (uint16_t)udp_len);
	udp[6] = 0;
	udp[7] = 0;
	csum = csum_fold(csum_add(sum, udp, udp_len));
	/* 0 means "no checksum" in UDP over IPv4 and is forbidden over IPv6. */
	if (csum == 0)
		csum = 0xffff;
	memcpy(udp + 6, &csum, 2);

	*len = GEN_PCAP_REC_LEN + frame_len;
	return rec;
}

static int
send_payload(struct gen_state *st, const uint8_t *p, uint32_t len, uint64_t seq)
{
	static const struct timespec retry = {.tv_sec = 0, .tv_nsec = GEN_RETRY_NS};
	int fd = st->socks[seq % st->conf->src_ports];
	ssize_t n;

	for (;;) {
		n = sendto(fd, p, len, 0, (const struct sockaddr *)&st->net.dst, st->net.dst_len);
		if (n == (ssize_t)len)
			return 0;
		/* A full queue is back-pressure, not loss: wait, then send the same datagram. */
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS ||
			      errno == EINTR)) {
			nanosleep(&retry, NULL);
			continue;
		}
		if (st->cnt.send_errors++ == 0)
			fprintf(stderr, GEN_NAME ": send to %s: %s\n", st->conf->send_addr,
				n < 0 ? strerror(errno) : "short send");
		return -1;
	}
}

/* Put out the payload at buf + GEN_HEADROOM; returns 0 when it went out. */
static int
emit(struct gen_state *st, uint32_t plen, uint64_t seq, uint64_t index)
{
	const struct gen_conf *conf = st->conf;
	uint16_t sport = (uint16_t)(conf->src_port + seq % conf->src_ports);
	uint8_t *rec;
	uint32_t len;

	if (st->pcap == NULL)
		return send_payload(st, st->buf + GEN_HEADROOM, plen, seq);
	rec = build_frame(st, plen, sport, index, &len);
	if (fwrite(rec, len, 1, st->pcapq[sport % conf->queues]) != 1)
		fail("cannot write %s: %s", conf->pcap_path, strerror(errno));
	return 0;
}

/* Doubles mapped to integers of the same order (negatives below positives, -0 below +0). */
static inline uint64_t
double_order(double v)
{
	uint64_t u;

	memcpy(&u, &v, sizeof(u));
	return (u >> 63) ? ~u : u | (1ULL << 63);
}

static inline double
order_double(uint64_t u)
{
	double v;

	u = (u >> 63) ? u & ~(1ULL << 63) : ~u;
	memcpy(&v, &u, sizeof(v));
	return v;
}

/* Where a slot's series go in --totals and --expect: sorted by device id. */
static inline uint64_t
slot_rank(const struct gen_state *st, uint64_t slot)
{
	if (!st->hot_first)
		return slot;
	return slot == st->conf->devices ? 0 : slot + 1;
}

/* A kind-3 or kind-4 record that went out: to --values, and to --expect's log. */
static void
keep_sample(struct gen_state *st, uint64_t slot, uint32_t metric, uint8_t kind, uint64_t bits)
{
	struct gen_obs *obs;
	double v;

	memcpy(&v, &bits, sizeof(v));
	if (st->values != NULL) {
		if (kind == TALLY_KIND_DISTINCT)
			fprintf(st->values, "%" PRIu64 " %" PRIu32 " %u %" PRIu64 "\n",
				slot_device(st, slot), metric, kind, bits);
		else
			fprintf(st->values, "%" PRIu64 " %" PRIu32 " %u %.17g\n",
				slot_device(st, slot), metric, kind, v);
	}
	if (st->obs == NULL)
		return;
	if (st->nb_obs == st->obs_cap) {
		if (st->obs_cap > UINT64_MAX / 2 / sizeof(*obs))
			fail("out of memory for --expect's %" PRIu64 " values", st->nb_obs);
		obs = realloc(st->obs, st->obs_cap * 2 * sizeof(*obs));
		if (obs == NULL)
			fail("out of memory for --expect's %" PRIu64 " values", st->nb_obs);
		st->obs = obs;
		st->obs_cap *= 2;
	}
	obs = &st->obs[st->nb_obs++];
	obs->key = slot_rank(st, slot) * st->conf->metrics + metric - 1;
	obs->bits = kind == TALLY_KIND_DISTINCT ? bits : double_order(v);
}

/* statsd mode -------------------------------------------------------------------------- */

/*
 * What tally makes of a record's value sent as statsd text: a counter's value / rate, a
 * gauge's magnitude (a leading '-' would be a delta), a timer's value weighted round(1/rate)
 * times (*weight).
 */
static double
statsd_value(const struct gen_conf *conf, uint8_t kind, double v, uint64_t *weight)
{
	*weight = 1;
	if (kind == TALLY_KIND_COUNTER && conf->statsd_rate < 1)
		return v / conf->statsd_rate;
	if (kind == TALLY_KIND_GAUGE)
		return fabs(v);
	if (kind == TALLY_KIND_HISTOGRAM && conf->statsd_rate < 1) {
		double w = floor(1 / conf->statsd_rate + 0.5);

		*weight = w >= 65536 ? 65536 : (uint64_t)w;
	}
	return v;
}

/* The tags of every line after the device's, as written: t<N-1>:v<N-1> first. */
static int
statsd_tags(const struct gen_conf *conf, char *p, size_t len)
{
	int n = 0;

	for (uint64_t k = conf->statsd_tags; k-- > 0;)
		n += snprintf(p + n, len - (size_t)n, ",t%" PRIu64 ":v%" PRIu64, k, k);
	return n;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A series' text as tally makes it: m<M>, then its other tags sorted, in braces. */
static size_t
statsd_series(const struct gen_conf *conf, uint32_t metric, char *buf, size_t len)
{
	char tags[GEN_STATSD_TAGS][32];
	const char *order[GEN_STATSD_TAGS];
	size_t n = (size_t)snprintf(buf, len, "m%" PRIu32, metric);
	uint64_t k;

	for (k = 0; k < conf->statsd_tags; k++) {
		snprintf(tags[k], sizeof(tags[k]), "t%" PRIu64 ":v%" PRIu64, k, k);
		order[k] = tags[k];
	}
	qsort(order, conf->statsd_tags, sizeof(order[0]), cmp_str);
	for (k = 0; k < conf->statsd_tags; k++)
		n += (size_t)snprintf(buf + n, len - n, "%s%s", k ? "," : "{", order[k]);
	if (conf->statsd_tags > 0)
		n += (size_t)snprintf(buf + n, len - n, "}");
	return n;
}

/* tally's id of a statsd device named d<device>, and of a series (metric id). */
static uint64_t
statsd_device_id(uint64_t device)
{
	char name[32];
	int n = snprintf(name, sizeof(name), "d%" PRIu64, device);

	return tally_statsd_device_id(name, (size_t)n);
}

static uint32_t
statsd_metric_id(const struct gen_conf *conf, uint32_t metric)
{
	char text[1024];
	size_t n = statsd_series(conf, metric, text, sizeof(text));

	return tally_statsd_metric_id(text, n);
}

/*
 * The statsd text of the v1 records in st->v1 (a line each), with the bad lines this
 * datagram gets, into p: its length.
 */
static uint32_t
statsd_payload(struct gen_state *st, uint8_t *p, uint64_t device, uint16_t nrec)
{
	const struct gen_conf *conf = st->conf;
	char *out = (char *)p, tags[GEN_STATSD_TAGS * 24 + 48], rate[40] = "";
	/* UDP's largest payload over the IP version in use */
	size_t n = 0, cap = st->net.v6 ? 65535 - GEN_UDP_HDR_LEN
				       : 65535 - GEN_IPV4_HDR_LEN - GEN_UDP_HDR_LEN;
	int tl = conf->statsd_plain ? 0 : snprintf(tags, sizeof(tags), "|#host:d%" PRIu64, device);
	uint16_t r;

	tags[tl] = '\0';
	tl += statsd_tags(conf, tags + tl, sizeof(tags) - (size_t)tl);
	if (conf->statsd_rate < 1)
		snprintf(rate, sizeof(rate), "|@%.17g", conf->statsd_rate);
	for (r = 0; r < nrec; r++) {
		struct tally_wire_rec rec;
		uint64_t bits;

		memcpy(&rec, st->v1 + TALLY_WIRE_HDR_LEN + (uint32_t)r * TALLY_WIRE_REC_LEN,
		       sizeof(rec));
		memcpy(&bits, &rec.value, sizeof(bits));
		switch (rec.kind) {
		case TALLY_KIND_COUNTER:
			n += (size_t)snprintf(out + n, cap - n, "m%" PRIu32 ":%.17g|c%s%s\n",
					      rec.metric_id, rec.value, rate, tags);
			break;
		case TALLY_KIND_GAUGE:
			n += (size_t)snprintf(out + n, cap - n, "m%" PRIu32 ":%.17g|g%s\n",
					      rec.metric_id, fabs(rec.value), tags);
			break;
		case TALLY_KIND_HISTOGRAM:
			n += (size_t)snprintf(out + n, cap - n, "m%" PRIu32 ":%.17g|ms%s%s\n",
					      rec.metric_id, rec.value, rate, tags);
			break;
		default:
			n += (size_t)snprintf(out + n, cap - n, "m%" PRIu32 ":e%" PRIu64 "|s%s\n",
					      rec.metric_id, bits, tags);
			break;
		}
		if (n >= cap)
			fail("--statsd: %u lines of text do not fit a UDP datagram: fewer --records",
			     nrec);
	}
	st->cnt.statsd_lines += nrec;
	/* Bresenham: exactly --statsd-bad lines over the datagrams */
	for (st->statsd_acc += conf->statsd_bad; st->statsd_acc >= conf->datagrams;
	     st->statsd_acc -= conf->datagrams) {
		uint64_t k = st->statsd_nbad++ % GEN_STATSD_REASONS;

		n += (size_t)snprintf(out + n, cap - n, "%s\n", gen_statsd_bad[k].line);
		if (n >= cap)
			fail("--statsd: the bad lines do not fit a UDP datagram: fewer --records");
		st->cnt.statsd_bad[k]++;
	}
	return (uint32_t)n;
}

static void
account_valid(struct gen_state *st, uint64_t slot, const uint8_t *p, uint16_t nrec)
{
	struct gen_series *row = &st->series[slot * st->conf->metrics];
	const uint8_t *recs = p + TALLY_WIRE_HDR_LEN;
	bool keep = st->values != NULL || st->obs != NULL;
	struct tally_wire_rec rec;
	struct gen_series *s;
	uint64_t bits;
	uint16_t r;

	for (r = 0; r < nrec; r++) {
		uint64_t weight = 1;

		memcpy(&rec, recs + (uint32_t)r * TALLY_WIRE_REC_LEN, sizeof(rec));
		s = &row[rec.metric_id - 1];
		memcpy(&bits, &rec.value, sizeof(bits));
		if (keep && rec.kind >= TALLY_KIND_HISTOGRAM)
			keep_sample(st, slot, rec.metric_id, rec.kind, bits);
		/* tally keeps a distinct series' count and HLL only: an element is no sum. */
		if (rec.kind == TALLY_KIND_DISTINCT) {
			s->count++;
			continue;
		}
		if (st->conf->statsd)
			rec.value = statsd_value(st->conf, rec.kind, rec.value, &weight);
		if (s->count == 0) {
			s->min = rec.value;
			s->max = rec.value;
		} else {
			if (rec.value < s->min)
				s->min = rec.value;
			if (rec.value > s->max)
				s->max = rec.value;
		}
		s->count += weight;
		s->sum += rec.value * (double)weight;
	}
}

static void
gen_valid(struct gen_state *st, uint64_t index, uint64_t time_ns)
{
	uint16_t nrec = (uint16_t)st->conf->records;
	uint8_t *p = st->buf + GEN_HEADROOM;
	uint64_t slot = pick_slot(st);
	struct gen_dev *d = &st->devs[slot];
	uint64_t seq = ++d->seq;
	uint32_t len;

	if (st->conf->statsd) {
		/* the records first, as v1 would carry them, then their text */
		build_payload(st, st->v1, slot_device(st, slot), seq, time_ns, d->cursor, nrec,
			      st->rng);
		len = statsd_payload(st, p, slot_device(st, slot), nrec);
	} else {
		len = build_payload(st, p, slot_device(st, slot), seq, time_ns, d->cursor, nrec,
				    st->rng);
	}
	d->cursor += nrec;
	if (emit(st, len, seq, index) != 0)
		return;
	account_valid(st, slot, st->conf->statsd ? st->v1 : p, nrec);
	st->cnt.datagrams++;
	st->cnt.valid++;
	st->cnt.records += nrec;
	st->cnt.bytes += len;
}

/*
 * A datagram that breaks exactly one rule, so that a receiver checking in enum order counts it
 * under that reason. It borrows a device's next seq and metrics without consuming them, and
 * draws values from its own PRNG, so the valid traffic is the same with or without faults.
 */
static void
gen_malformed(struct gen_state *st, uint64_t mal_index, uint64_t index, uint64_t time_ns)
{
	unsigned int reason = (unsigned int)(mal_index % TALLY_MALFORMED_PAYLOAD_MAX);
	uint64_t slot = mal_index % st->conf->devices;
	struct gen_dev *d = &st->devs[slot];
	uint64_t seq = d->seq + 1;
	uint8_t *p = st->buf + GEN_HEADROOM;
	uint16_t nrec = (uint16_t)st->conf->records;
	uint32_t len;
	double v;

	if (reason == TALLY_MALFORMED_LENGTH)
		nrec = 2;
	len = build_payload(st, p, slot_device(st, slot), seq, time_ns, d->cursor, nrec,
			    st->mal_rng);
	switch (reason) {
	case TALLY_MALFORMED_SHORT:
		len = 20;
		break;
	case TALLY_MALFORMED_MAGIC:
		p[0] = 'X';
		break;
	case TALLY_MALFORMED_VERSION:
		p[2] = TALLY_WIRE_VERSION + 1;
		break;
	case TALLY_MALFORMED_FLAGS:
		p[3] = 0x01;
		break;
	case TALLY_MALFORMED_RESERVED:
		p[6] = 1;
		break;
	case TALLY_MALFORMED_COUNT:
		p[4] = 0;
		p[5] = 0;
		len = TALLY_WIRE_HDR_LEN;
		break;
	case TALLY_MALFORMED_LENGTH:
		p[4] = 3;
		p[5] = 0;
		break;
	case TALLY_MALFORMED_KIND:
		p[TALLY_WIRE_HDR_LEN + 4] = 7;
		break;
	case TALLY_MALFORMED_VALUE:
		/* Any 64 bits are a distinct element: a NaN is a fault only in a numeric kind. */
		if (p[TALLY_WIRE_HDR_LEN + 4] == TALLY_KIND_DISTINCT)
			p[TALLY_WIRE_HDR_LEN + 4] = TALLY_KIND_GAUGE;
		v = (st->nb_value_faults++ & 1) ? INFINITY : NAN;
		memcpy(p + TALLY_WIRE_HDR_LEN + 8, &v, sizeof(v));
		break;
	default:
		fail("no fault for reason %u", reason);
	}
	if (emit(st, len, seq, index) != 0)
		return;
	st->cnt.datagrams++;
	st->cnt.malformed++;
	st->cnt.reason[reason]++;
	st->cnt.bytes += len;
}

static void
pace(uint64_t sent, uint64_t rate, const struct timespec *t0)
{
	uint64_t ns = (sent / rate) * 1000000000ULL + (sent % rate) * 1000000000ULL / rate;
	struct timespec t;

	t.tv_sec = t0->tv_sec + (time_t)(ns / 1000000000ULL);
	t.tv_nsec = t0->tv_nsec + (long)(ns % 1000000000ULL);
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL) == EINTR)
		;
}

static void
gen_run(struct gen_state *st)
{
	const struct gen_conf *conf = st->conf;
	uint64_t total = conf->datagrams + conf->malformed;
	uint64_t batch = conf->rate / GEN_BATCH_PER_SEC;
	uint64_t mal_index = 0;
	uint64_t acc = 0;
	struct timespec t0;
	uint64_t time_ns;
	uint64_t i;

	if (batch == 0)
		batch = 1;
	if (batch > GEN_BATCH_MAX)
		batch = GEN_BATCH_MAX;
	clock_gettime(CLOCK_MONOTONIC, &t0);

	for (i = 0; i < total; i++) {
		time_ns = st->has_time ? conf->time_ns : st->time_base + i * 1000;
		/* Bresenham: exactly conf->malformed faults, evenly spread over the run. */
		acc += conf->malformed;
		if (acc >= total) {
			acc -= total;
			gen_malformed(st, mal_index++, i, time_ns);
		} else {
			gen_valid(st, i, time_ns);
		}
		if (conf->rate != 0 && (i + 1) % batch == 0)
			pace(i + 1, conf->rate, &t0);
	}
}

static void
open_sockets(struct gen_state *st)
{
	const struct gen_conf *conf = st->conf;
	int af = st->net.v6 ? AF_INET6 : AF_INET;
	int sndbuf = GEN_SOCK_BUF;
	uint64_t k;
	int fd;

	st->socks = calloc(conf->src_ports, sizeof(*st->socks));
	if (st->socks == NULL)
		fail("out of memory");
	for (k = 0; k < conf->src_ports; k++) {
		struct sockaddr_storage ss;
		socklen_t sl;
		uint16_t port = (uint16_t)(conf->src_port + k);

		memset(&ss, 0, sizeof(ss));
		if (af == AF_INET6) {
			struct sockaddr_in6 *sa = (struct sockaddr_in6 *)&ss;

			sa->sin6_family = AF_INET6;
			sa->sin6_addr = in6addr_any;
			sa->sin6_port = htons(port);
			sl = sizeof(*sa);
		} else {
			struct sockaddr_in *sa = (struct sockaddr_in *)&ss;

			sa->sin_family = AF_INET;
			sa->sin_addr.s_addr = htonl(INADDR_ANY);
			sa->sin_port = htons(port);
			sl = sizeof(*sa);
		}
		fd = socket(af, SOCK_DGRAM, 0);
		if (fd < 0)
			fail("cannot open UDP socket %" PRIu64 " of --src-ports: %s", k + 1,
			     strerror(errno));
		/* Best effort: a bigger queue means fewer ENOBUFS retries at high rates. */
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
		if (bind(fd, (struct sockaddr *)&ss, sl) != 0)
			fail("cannot bind UDP source port %u: %s", port, strerror(errno));
		st->socks[k] = fd;
	}
}

static void
close_sockets(struct gen_state *st)
{
	uint64_t k;

	if (st->socks == NULL)
		return;
	for (k = 0; k < st->conf->src_ports; k++)
		close(st->socks[k]);
	free(st->socks);
	st->socks = NULL;
}

static void
open_pcap(struct gen_state *st)
{
	char path[4096];
	uint64_t q;
	struct {
		uint32_t magic;
		uint16_t major;
		uint16_t minor;
		int32_t thiszone;
		uint32_t sigfigs;
		uint32_t snaplen;
		uint32_t linktype;
	} hdr = {0xa1b2c3d4, 2, 4, 0, 0, GEN_SNAPLEN, 1};

	for (q = 0; q < st->conf->queues; q++) {
		FILE *f;

		if (st->conf->queues == 1)
			snprintf(path, sizeof(path), "%s", st->conf->pcap_path);
		else
			snprintf(path, sizeof(path), "%s.%" PRIu64, st->conf->pcap_path, q);
		f = fopen(path, "wb");
		if (f == NULL)
			fail("cannot create %s: %s", path, strerror(errno));
		setvbuf(f, NULL, _IOFBF, GEN_PCAP_BUF);
		if (fwrite(&hdr, sizeof(hdr), 1, f) != 1)
			fail("cannot write %s: %s", path, strerror(errno));
		st->pcapq[q] = f;
	}
	st->pcap = st->pcapq[0];
}

static void
gen_init(struct gen_state *st, const struct gen_conf *conf, const bool *seen)
{
	struct timespec now;

	st->conf = conf;
	rng_seed(st->rng, conf->seed);
	/* Faults draw from their own stream so valid traffic does not depend on --malformed. */
	rng_seed(st->mal_rng, conf->seed ^ 0x6d616c666f726d64ULL);

	st->nb_slots = conf->devices + 1;
	st->devs = calloc(st->nb_slots, sizeof(*st->devs));
	st->series = calloc(st->nb_slots * conf->metrics, sizeof(*st->series));
	if (st->devs == NULL || st->series == NULL)
		fail("out of memory for %" PRIu64 " devices x %" PRIu64 " metrics",
		     conf->devices, conf->metrics);

	st->has_hot = opt_seen(seen, "hot-device");
	if (st->has_hot && conf->hot_device >= conf->device_base &&
	    conf->hot_device - conf->device_base < conf->devices)
		st->hot_slot = conf->hot_device - conf->device_base;
	else
		st->hot_slot = conf->devices;
	st->hot_first = st->has_hot && st->hot_slot == conf->devices &&
			conf->hot_device < conf->device_base;

	if (conf->expect_path != NULL) {
		st->obs_cap = GEN_OBS_INIT;
		st->obs = malloc(st->obs_cap * sizeof(*st->obs));
		if (st->obs == NULL)
			fail("out of memory for --expect");
	}

	if (conf->zipf > 0) {
		st->zipf_cdf = zipf_cdf_create(conf->devices, conf->zipf);
		if (st->zipf_cdf == NULL)
			fail("out of memory for the Zipf table");
	}

	clock_gettime(CLOCK_REALTIME, &now);
	st->time_base = (uint64_t)now.tv_sec * 1000000000ULL + (uint64_t)now.tv_nsec;
	st->pcap_us0 = st->time_base / 1000;
	st->has_time = opt_seen(seen, "time-ns");
	st->ip_id = 1;

	if (conf->pcap_path != NULL)
		open_pcap(st);
	else
		open_sockets(st);
}

static void
write_slot(FILE *f, const struct gen_state *st, uint64_t slot)
{
	const struct gen_series *row = &st->series[slot * st->conf->metrics];
	uint64_t device = slot_device(st, slot);
	uint64_t m;

	for (m = 0; m < st->conf->metrics; m++) {
		if (row[m].count == 0)
			continue;
		if (metric_kind(st->conf, (uint32_t)(m + 1)) == TALLY_KIND_DISTINCT) {
			fprintf(f, "%" PRIu64 " %" PRIu64 " %" PRIu64 " - - -\n", device, m + 1,
				row[m].count);
			continue;
		}
		fprintf(f, "%" PRIu64 " %" PRIu64 " %" PRIu64 " %.17g %.17g %.17g\n", device, m + 1,
			row[m].count, row[m].sum, row[m].min, row[m].max);
	}
}

/* One line per series, sorted by device then metric: the format tally-query totals prints. */
static uint64_t count_series(const struct gen_state *st);

/* One statsd series of --totals: tally's ids and the generator's row. */
struct gen_statsd_row {
	uint64_t device_id;
	uint32_t metric_id;
	const struct gen_series *s;
	bool distinct;
};

static int
cmp_statsd_row(const void *a, const void *b)
{
	const struct gen_statsd_row *x = a, *y = b;

	if (x->device_id != y->device_id)
		return x->device_id < y->device_id ? -1 : 1;
	return (x->metric_id > y->metric_id) - (x->metric_id < y->metric_id);
}

/* --totals of a statsd run: by tally's device and metric ids, in their order. */
static void
write_statsd_totals(const struct gen_state *st, FILE *f)
{
	const struct gen_conf *conf = st->conf;
	uint64_t n = 0, slot, m, i;
	struct gen_statsd_row *rows = malloc(count_series(st) * sizeof(*rows) + 1);
	uint32_t *ids = malloc(conf->metrics * sizeof(*ids));

	if (rows == NULL || ids == NULL)
		fail("out of memory for --totals");
	for (m = 0; m < conf->metrics; m++)
		ids[m] = statsd_metric_id(conf, (uint32_t)(m + 1));
	for (slot = 0; slot < st->nb_slots; slot++) {
		const struct gen_series *row = &st->series[slot * conf->metrics];
		uint64_t dev = 0;

		for (m = 0; m < conf->metrics; m++) {
			if (row[m].count == 0)
				continue;
			if (dev == 0)
				dev = statsd_device_id(slot_device(st, slot));
			rows[n++] = (struct gen_statsd_row){
				.device_id = dev, .metric_id = ids[m], .s = &row[m],
				.distinct = metric_kind(conf, (uint32_t)(m + 1)) ==
					    TALLY_KIND_DISTINCT};
		}
	}
	qsort(rows, n, sizeof(*rows), cmp_statsd_row);
	for (i = 0; i < n; i++) {
		if (rows[i].distinct)
			fprintf(f, "%" PRIu64 " %" PRIu32 " %" PRIu64 " - - -\n", rows[i].device_id,
				rows[i].metric_id, rows[i].s->count);
		else
			fprintf(f, "%" PRIu64 " %" PRIu32 " %" PRIu64 " %.17g %.17g %.17g\n",
				rows[i].device_id, rows[i].metric_id, rows[i].s->count,
				rows[i].s->sum, rows[i].s->min, rows[i].s->max);
	}
	free(ids);
	free(rows);
}

static void
write_totals(const struct gen_state *st, FILE *f)
{
	const struct gen_conf *conf = st->conf;
	bool hot_apart = st->has_hot && st->hot_slot == conf->devices;
	uint64_t slot;

	if (conf->statsd) {
		write_statsd_totals(st, f);
		return;
	}
	if (hot_apart && conf->hot_device < conf->device_base)
		write_slot(f, st, conf->devices);
	for (slot = 0; slot < conf->devices; slot++)
		write_slot(f, st, slot);
	if (hot_apart && conf->hot_device >= conf->device_base)
		write_slot(f, st, conf->devices);
}

static int
obs_cmp(const void *a, const void *b)
{
	const struct gen_obs *x = a;
	const struct gen_obs *y = b;

	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	if (x->bits != y->bits)
		return x->bits < y->bits ? -1 : 1;
	return 0;
}

/* q as a JSON key: the shortest form that reads back as q ("0.99", not 0.98999999999999999). */
static void
print_q(FILE *f, double q)
{
	char s[32];
	int prec;

	for (prec = 1; prec <= 17; prec++) {
		snprintf(s, sizeof(s), "%.*g", prec, q);
		if (strtod(s, NULL) == q)
			break;
	}
	fprintf(f, "\"%s\"", s);
}

/*
 * One --expect line. device is NULL for a metric over all devices; run holds the series'
 * sorted kind-3/4 values (n of them, n == s->count).
 */
static void
write_expect_line(FILE *f, const struct gen_conf *conf, const uint64_t *device, uint32_t metric,
		  const struct gen_series *s, const struct gen_obs *run, uint64_t n)
{
	uint8_t kind = metric_kind(conf, metric);
	uint64_t distinct;
	uint64_t i;
	unsigned int k;

	if (device != NULL)
		fprintf(f, "{\"device\":%" PRIu64, *device);
	else
		fprintf(f, "{\"device\":null");
	fprintf(f, ",\"metric\":%" PRIu32 ",\"kind\":%u,\"count\":%" PRIu64, metric, kind,
		s->count);
	if (kind == TALLY_KIND_DISTINCT) {
		distinct = n != 0;
		for (i = 1; i < n; i++)
			distinct += run[i].bits != run[i - 1].bits;
		fprintf(f, ",\"distinct\":%" PRIu64 "}\n", distinct);
		return;
	}
	fprintf(f, ",\"sum\":%.17g,\"min\":%.17g,\"max\":%.17g", s->sum, s->min, s->max);
	if (kind == TALLY_KIND_HISTOGRAM && n != 0) {
		fprintf(f, ",\"quantiles\":{");
		for (k = 0; k < conf->nb_quantiles; k++) {
			i = (uint64_t)floor(conf->quantiles[k] * (double)(n - 1));
			fputs(k == 0 ? "" : ",", f);
			print_q(f, conf->quantiles[k]);
			fprintf(f, ":%.17g", order_double(run[i].bits));
		}
		fputc('}', f);
	}
	fputs("}\n", f);
}

/* The run of log entries with this key, from *pos on; moves *pos past it. */
static const struct gen_obs *
obs_run(const struct gen_state *st, uint64_t key, uint64_t *pos, uint64_t *n)
{
	uint64_t start = *pos;

	while (*pos < st->nb_obs && st->obs[*pos].key == key)
		(*pos)++;
	*n = *pos - start;
	return st->obs + start;
}

/*
 * --expect: each series in --totals' order, then each metric merged over all devices (sums
 * added in device order, quantiles and distinct counts of the union). Sorts the log twice.
 */
static void
write_expect(struct gen_state *st, FILE *f)
{
	const struct gen_conf *conf = st->conf;
	uint64_t metrics = conf->metrics;
	const struct gen_series *s;
	const struct gen_obs *run;
	struct gen_series all;
	uint64_t rank, slot, device, pos, n, i;
	uint32_t m;

	qsort(st->obs, st->nb_obs, sizeof(*st->obs), obs_cmp);
	pos = 0;
	for (rank = 0; rank < st->nb_slots; rank++) {
		if (st->hot_first)
			slot = rank == 0 ? conf->devices : rank - 1;
		else
			slot = rank;
		device = slot_device(st, slot);
		for (m = 1; m <= metrics; m++) {
			s = &st->series[slot * metrics + m - 1];
			if (s->count == 0)
				continue;
			run = obs_run(st, rank * metrics + m - 1, &pos, &n);
			write_expect_line(f, conf, &device, m, s, run, n);
		}
	}

	for (i = 0; i < st->nb_obs; i++)
		st->obs[i].key %= metrics;
	qsort(st->obs, st->nb_obs, sizeof(*st->obs), obs_cmp);
	pos = 0;
	for (m = 1; m <= metrics; m++) {
		memset(&all, 0, sizeof(all));
		for (rank = 0; rank < st->nb_slots; rank++) {
			slot = st->hot_first ? (rank == 0 ? conf->devices : rank - 1) : rank;
			s = &st->series[slot * metrics + m - 1];
			if (s->count == 0)
				continue;
			if (all.count == 0 || s->min < all.min)
				all.min = s->min;
			if (all.count == 0 || s->max > all.max)
				all.max = s->max;
			all.count += s->count;
			all.sum += s->sum;
		}
		if (all.count == 0)
			continue;
		run = obs_run(st, m - 1, &pos, &n);
		write_expect_line(f, conf, NULL, m, &all, run, n);
	}
}

static uint64_t
count_series(const struct gen_state *st)
{
	uint64_t n = st->nb_slots * st->conf->metrics;
	uint64_t series = 0;
	uint64_t i;

	for (i = 0; i < n; i++)
		series += st->series[i].count != 0;
	return series;
}

static void
print_summary(const struct gen_state *st, bool json)
{
	const struct gen_counters *c = &st->cnt;
	const char *sep = json ? "{" : "";
	char key[64];
	unsigned int r;

#define GEN_KV(k, v)                                                                               \
	do {                                                                                       \
		if (json)                                                                          \
			printf("%s\"%s\":%" PRIu64, sep, (k), (uint64_t)(v));                      \
		else                                                                               \
			printf("%s=%" PRIu64 "\n", (k), (uint64_t)(v));                            \
		sep = ",";                                                                         \
	} while (0)

	GEN_KV("datagrams", c->datagrams);
	GEN_KV("valid_datagrams", c->valid);
	GEN_KV("records", c->records);
	GEN_KV("malformed", c->malformed);
	for (r = 0; r < TALLY_MALFORMED_PAYLOAD_MAX; r++) {
		snprintf(key, sizeof(key), "malformed:%s", tally_malformed_name(r));
		GEN_KV(key, c->reason[r]);
	}
	if (st->conf->statsd) {
		uint64_t bad = 0;

		for (r = 0; r < GEN_STATSD_REASONS; r++)
			bad += c->statsd_bad[r];
		GEN_KV("statsd_lines", c->statsd_lines);
		GEN_KV("statsd_refused", bad);
		for (r = 0; r < GEN_STATSD_REASONS; r++) {
			snprintf(key, sizeof(key), "statsd:%s", gen_statsd_bad[r].reason);
			GEN_KV(key, c->statsd_bad[r]);
		}
	}
	GEN_KV("series", count_series(st));
	GEN_KV("bytes", c->bytes);
	GEN_KV("send_errors", c->send_errors);
	if (json)
		printf("}\n");
#undef GEN_KV
}

int
main(int argc, char **argv)
{
	static struct gen_state st;
	bool seen[GEN_NB_OPTIONS] = {false};
	struct gen_conf conf;
	FILE *totals = NULL;
	FILE *expect = NULL;
	uint64_t i;

	parse_args(argc, argv, &conf, &st.net, seen);
	conf.vlan_set = opt_seen(seen, "vlan");

	if (conf.totals_path != NULL) {
		totals = fopen(conf.totals_path, "w");
		if (totals == NULL)
			fail("cannot create %s: %s", conf.totals_path, strerror(errno));
		setvbuf(totals, NULL, _IOFBF, GEN_PCAP_BUF);
	}
	if (conf.expect_path != NULL) {
		expect = fopen(conf.expect_path, "w");
		if (expect == NULL)
			fail("cannot create %s: %s", conf.expect_path, strerror(errno));
		setvbuf(expect, NULL, _IOFBF, GEN_PCAP_BUF);
	}
	if (conf.values_path != NULL) {
		st.values = fopen(conf.values_path, "w");
		if (st.values == NULL)
			fail("cannot create %s: %s", conf.values_path, strerror(errno));
		setvbuf(st.values, NULL, _IOFBF, GEN_PCAP_BUF);
	}
	gen_init(&st, &conf, seen);
	gen_run(&st);

	for (i = 0; st.pcap != NULL && i < conf.queues; i++)
		if (fclose(st.pcapq[i]) != 0)
			fail("cannot write %s: %s", conf.pcap_path, strerror(errno));
	close_sockets(&st);
	if (totals != NULL) {
		write_totals(&st, totals);
		if (fclose(totals) != 0)
			fail("cannot write %s: %s", conf.totals_path, strerror(errno));
	}
	if (st.values != NULL && fclose(st.values) != 0)
		fail("cannot write %s: %s", conf.values_path, strerror(errno));
	if (expect != NULL) {
		write_expect(&st, expect);
		if (fclose(expect) != 0)
			fail("cannot write %s: %s", conf.expect_path, strerror(errno));
	}
	print_summary(&st, conf.json);
	free(st.obs);
	free(st.zipf_cdf);
	free(st.series);
	free(st.devs);
	return 0;
}
