/* SPDX-License-Identifier: BSD-3-Clause */
/* Ethernet port setup: RX queues per worker with RSS where the port has it, one TX queue. */
#ifndef TALLY_PORT_H
#define TALLY_PORT_H

#include <stddef.h>
#include <stdint.h>

#include <rte_mempool.h>

struct tally_port_info {
	uint16_t port_id;
	uint16_t nb_rxq;   /* RX queues configured (at most one per worker) */
	uint8_t rss;       /* RSS is on */
	uint64_t rss_hf;   /* the hash functions in use */
	uint16_t reta_size;
	uint8_t mac[6];
	char name[64];
};

/* How RSS spreads flows over the RX queues. */
struct tally_port_rss {
	uint8_t fields;       /* enum tally_rss_fields */
	uint8_t key_len;      /* 0: the port's default key */
	const uint8_t *key;
};

/*
 * Configure and start one port with up to want_rxq RX queues (fewer when the port has
 * fewer), RSS on IP addresses and UDP ports when it supports that, and one TX queue for
 * the exception path, and a redirection table spreading the hash evenly over the queues.
 * Returns 0 or -errno with a one-line reason in err; on failure the port is left stopped.
 */
int tally_port_init(uint16_t port_id, uint16_t want_rxq, uint16_t rx_desc,
		    struct rte_mempool *mp, const struct tally_port_rss *rss,
		    struct tally_port_info *info, char *err, size_t errlen);

/* Stop and close a port started by tally_port_init(). */
void tally_port_close(uint16_t port_id);

#endif /* TALLY_PORT_H */
