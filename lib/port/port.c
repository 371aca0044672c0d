/* SPDX-License-Identifier: BSD-3-Clause */
/* Ethernet port setup for tally: queues, RSS (fields, key, redirection table), start. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <rte_ethdev.h>

#include "tally_config.h"
#include "tally_port.h"

#define TX_DESC 512

static int
fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return rc;
}

static uint64_t
rss_hash_fields(uint8_t fields)
{
	switch (fields) {
	case TALLY_RSS_L3:
		return RTE_ETH_RSS_IP;
	case TALLY_RSS_L3_SRC:
		return RTE_ETH_RSS_IP | RTE_ETH_RSS_L3_SRC_ONLY;
	default:
		return RTE_ETH_RSS_IP | RTE_ETH_RSS_UDP;
	}
}

/*
 * The MTU that lets the port deliver the largest datagram tally takes (an IP packet of 65,535
 * bytes) or as close as the port goes; 0 to leave the port's default. ethdev checks the MTU
 * plus the port's L2 overhead against max_rx_pktlen, so both limits count.
 */
static uint32_t
jumbo_mtu(const struct rte_eth_dev_info *dev)
{
	uint32_t overhead = RTE_ETHER_HDR_LEN + RTE_ETHER_CRC_LEN;
	uint32_t mtu = dev->max_mtu;

	if (dev->max_mtu != UINT16_MAX && dev->max_rx_pktlen > dev->max_mtu)
		overhead = dev->max_rx_pktlen - dev->max_mtu;
	if (dev->max_rx_pktlen <= overhead)
		return 0;
	mtu = RTE_MIN(mtu, dev->max_rx_pktlen - overhead);
	return mtu > RTE_ETHER_MTU ? mtu : 0;
}

/* Entry i of the redirection table sends to queue i % nb_rxq: an even spread. */
static int
reta_spread(uint16_t port_id, uint16_t reta_size, uint16_t nb_rxq)
{
	struct rte_eth_rss_reta_entry64 reta[RTE_ETH_RSS_RETA_SIZE_512 / RTE_ETH_RETA_GROUP_SIZE];
	uint16_t i;

	if (reta_size == 0 || reta_size > RTE_ETH_RSS_RETA_SIZE_512)
		return -ENOTSUP;
	memset(reta, 0, sizeof(reta));
	for (i = 0; i < reta_size; i++) {
		reta[i / RTE_ETH_RETA_GROUP_SIZE].mask |= 1ULL << (i % RTE_ETH_RETA_GROUP_SIZE);
		reta[i / RTE_ETH_RETA_GROUP_SIZE].reta[i % RTE_ETH_RETA_GROUP_SIZE] = i % nb_rxq;
	}
	return rte_eth_dev_rss_reta_update(port_id, reta, reta_size);
}

int
tally_port_init(uint16_t port_id, uint16_t want_rxq, uint16_t rx_desc, struct rte_mempool *mp,
		const struct tally_port_rss *rss, struct tally_port_info *info, char *err,
		size_t errlen)
{
	struct rte_eth_conf conf;
	struct rte_eth_dev_info dev;
	struct rte_ether_addr mac;
	uint16_t nb_rxd = rx_desc, nb_txd = TX_DESC, q;
	uint64_t want;
	int rc;

	if (!rte_eth_dev_is_valid_port(port_id) || want_rxq == 0 || mp == NULL || info == NULL ||
	    rss == NULL)
		return fail(err, errlen, -EINVAL, "port %u: invalid arguments", port_id);
	rc = rte_eth_dev_info_get(port_id, &dev);
	if (rc != 0)
		return fail(err, errlen, rc, "port %u: no device info", port_id);
	memset(&conf, 0, sizeof(conf));
	memset(info, 0, sizeof(*info));
	info->port_id = port_id;
	if (rte_eth_dev_get_name_by_port(port_id, info->name) != 0)
		snprintf(info->name, sizeof(info->name), "port%u", port_id);
	info->nb_rxq = RTE_MIN(want_rxq, dev.max_rx_queues);
	if (info->nb_rxq == 0)
		return fail(err, errlen, -ENOTSUP, "port %u (%s): no RX queue", port_id, info->name);
	want = rss_hash_fields(rss->fields);
	if (info->nb_rxq > 1 && (dev.flow_type_rss_offloads & RTE_ETH_RSS_IP) != 0) {
		if ((want & RTE_ETH_RSS_L3_SRC_ONLY) &&
		    !(dev.flow_type_rss_offloads & RTE_ETH_RSS_L3_SRC_ONLY))
			return fail(err, errlen, -ENOTSUP,
				    "--rss-fields: port %u (%s) cannot hash on l3-src only", port_id,
				    info->name);
		if (rss->key_len != 0 && rss->key_len != dev.hash_key_size)
			return fail(err, errlen, -EINVAL,
				    "--rss-key: port %u (%s) needs a %u-byte key, got %u", port_id,
				    info->name, dev.hash_key_size, rss->key_len);
		conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
		conf.rx_adv_conf.rss_conf.rss_hf =
			(want & dev.flow_type_rss_offloads) | (want & RTE_ETH_RSS_L3_SRC_ONLY);
		conf.rx_adv_conf.rss_conf.rss_key = rss->key_len ? (uint8_t *)rss->key : NULL;
		conf.rx_adv_conf.rss_conf.rss_key_len = rss->key_len;
		info->rss = 1;
		info->rss_hf = conf.rx_adv_conf.rss_conf.rss_hf;
	}
	/*
	 * A datagram longer than one mbuf arrives as a chain of them, which the workers take
	 * whole: with scatter the port receives such frames, up to a jumbo MTU. Without it
	 * (net_pcap chains big frames anyway; net_af_packet cuts them at its frame size) the
	 * port keeps its defaults.
	 */
	if (dev.rx_offload_capa & RTE_ETH_RX_OFFLOAD_SCATTER) {
		conf.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_SCATTER;
		conf.rxmode.mtu = jumbo_mtu(&dev);
	}
	rc = rte_eth_dev_configure(port_id, info->nb_rxq, 1, &conf);
	if (rc != 0 && conf.rxmode.mtu != 0) {
		/* A port that lists a larger MTU than it takes: jumbo frames stay out. */
		conf.rxmode.mtu = 0;
		rc = rte_eth_dev_configure(port_id, info->nb_rxq, 1, &conf);
	}
	if (rc != 0)
		return fail(err, errlen, rc, "port %u (%s): configure failed: %s", port_id,
			    info->name, strerror(-rc));
	rc = rte_eth_dev_adjust_nb_rx_tx_desc(port_id, &nb_rxd, &nb_txd);
	if (rc != 0)
		return fail(err, errlen, rc, "port %u (%s): descriptors: %s", port_id, info->name,
			    strerror(-rc));
	for (q = 0; q < info->nb_rxq; q++) {
		rc = rte_eth_rx_queue_setup(port_id, q, nb_rxd, rte_eth_dev_socket_id(port_id),
					    NULL, mp);
		if (rc != 0)
			return fail(err, errlen, rc, "port %u (%s): RX queue %u: %s", port_id,
				    info->name, q, strerror(-rc));
	}
	rc = rte_eth_tx_queue_setup(port_id, 0, nb_txd, rte_eth_dev_socket_id(port_id), NULL);
	if (rc != 0)
		return fail(err, errlen, rc, "port %u (%s): TX queue: %s", port_id, info->name,
			    strerror(-rc));
	rc = rte_eth_dev_start(port_id);
	if (rc != 0)
		return fail(err, errlen, rc, "port %u (%s): start failed: %s", port_id, info->name,
			    strerror(-rc));
	/* Ports differ in their default table; make the spread over our queues explicit. */
	if (info->rss && reta_spread(port_id, dev.reta_size, info->nb_rxq) == 0)
		info->reta_size = dev.reta_size;
	if (rte_eth_macaddr_get(port_id, &mac) == 0)
		memcpy(info->mac, mac.addr_bytes, sizeof(info->mac));
	return 0;
}

void
tally_port_close(uint16_t port_id)
{
	rte_eth_dev_stop(port_id);
	rte_eth_dev_close(port_id);
}
