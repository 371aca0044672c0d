/* SPDX-License-Identifier: BSD-3-Clause */
/* Ethernet port setup for tally: queues, RSS, start. */
#include <errno.h>
#include <string.h>

#include <rte_ethdev.h>

#include "tally_port.h"

#define TX_DESC 512

int
tally_port_init(uint16_t port_id, uint16_t want_rxq, uint16_t rx_desc, struct rte_mempool *mp,
		struct tally_port_info *info)
{
	struct rte_eth_conf conf;
	struct rte_eth_dev_info dev;
	struct rte_ether_addr mac;
	uint16_t nb_rxd = rx_desc, nb_txd = TX_DESC, q;
	uint64_t rss;
	int rc;

	if (!rte_eth_dev_is_valid_port(port_id) || want_rxq == 0 || mp == NULL || info == NULL)
		return -EINVAL;
	rc = rte_eth_dev_info_get(port_id, &dev);
	if (rc != 0)
		return rc;
	memset(&conf, 0, sizeof(conf));
	memset(info, 0, sizeof(*info));
	info->port_id = port_id;
	info->nb_rxq = RTE_MIN(want_rxq, dev.max_rx_queues);
	if (info->nb_rxq == 0)
		return -ENOTSUP;
	rss = dev.flow_type_rss_offloads & (RTE_ETH_RSS_IP | RTE_ETH_RSS_UDP);
	if (info->nb_rxq > 1 && rss != 0) {
		conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
		conf.rx_adv_conf.rss_conf.rss_hf = rss;
		info->rss = 1;
	}
	rc = rte_eth_dev_configure(port_id, info->nb_rxq, 1, &conf);
	if (rc != 0)
		return rc;
	rc = rte_eth_dev_adjust_nb_rx_tx_desc(port_id, &nb_rxd, &nb_txd);
	if (rc != 0)
		return rc;
	for (q = 0; q < info->nb_rxq; q++) {
		rc = rte_eth_rx_queue_setup(port_id, q, nb_rxd, rte_eth_dev_socket_id(port_id),
					    NULL, mp);
		if (rc != 0)
			return rc;
	}
	rc = rte_eth_tx_queue_setup(port_id, 0, nb_txd, rte_eth_dev_socket_id(port_id), NULL);
	if (rc != 0)
		return rc;
	rc = rte_eth_dev_start(port_id);
	if (rc != 0)
		return rc;
	if (rte_eth_macaddr_get(port_id, &mac) == 0)
		memcpy(info->mac, mac.addr_bytes, sizeof(info->mac));
	if (rte_eth_dev_get_name_by_port(port_id, info->name) != 0)
		snprintf(info->name, sizeof(info->name), "port%u", port_id);
	return 0;
}

void
tally_port_close(uint16_t port_id)
{
	rte_eth_dev_stop(port_id);
	rte_eth_dev_close(port_id);
}
