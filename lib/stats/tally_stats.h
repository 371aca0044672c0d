/* SPDX-License-Identifier: BSD-3-Clause */
/* Counters: declared once, kept per lcore with one writer, summed off the data path. */
#ifndef TALLY_STATS_H
#define TALLY_STATS_H

#include <stdint.h>

#include "tally_statsd.h"
#include "tally_wire.h"

/* Counters of a worker lcore; the worker is their only writer. */
#define TALLY_FOREACH_WORKER_COUNTER(_)                                                            \
	_(rx_packets)      /* frames received */                                                 \
	_(datagrams)       /* valid telemetry datagrams */                                       \
	_(records)         /* records in valid datagrams */                                      \
	_(malformed)       /* datagrams rejected, all reasons */                                 \
	_(other)           /* frames that are not telemetry for us */                            \
	_(exceptions)      /* ARP / ICMP frames handed to the control lcore */                   \
	_(exception_drops) /* ... that found the exception ring full */                          \
	_(table_full)      /* records that found no room in the worker table */                  \
	_(window_stall)    /* records dropped because no free table was ready at a boundary */ \
	_(windows_closed)  /* windows handed to the final stage */                               \
	_(busy_polls)      /* rx_burst calls that returned packets */                            \
	_(idle_polls)      /* rx_burst calls that returned nothing */                            \
	_(aggregated)      /* records aggregated in this worker's tables */                     \
	_(series)          /* gauge: live series in the current table */                         \
	_(forwarded)       /* device mode: records sent to their owner worker */                 \
	_(received)        /* device mode: records received from other workers */               \
	_(hot_records)     /* records of hot devices pre-aggregated here instead of forwarded */\
	_(ring_full)       /* records pre-aggregated here because the owner's ring was full */ \
	_(window_slip)     /* forwarded records that arrived after their window had closed */   \
	_(hot_keys)        /* gauge: devices hot on this worker now */                          \
	_(dlq_queued)      /* malformed frames handed to the dead-letter writer */              \
	_(dlq_dropped)     /* malformed frames over the capture rate, counted only */          \
	_(dlq_ring_full)   /* malformed frames dropped because the writer's ring was full */ \
	_(statsd_datagrams) /* datagrams to the statsd port */                                   \
	_(statsd_lines)     /* statsd lines taken (each a record, or one per packed value) */    \
	_(statsd_refused)   /* statsd lines refused, all reasons (statsd:<reason>) */            \
	_(statsd_names)     /* new statsd series and device names sent to be written to Redis */ \
	_(statsd_names_dropped) /* ... not sent yet: the names ring was full (sent again later) */

/* Counters of the control lcore (final stage, sink, exception path). */
#define TALLY_FOREACH_CONTROL_COUNTER(_)                                                           \
	_(windows_flushed) /* windows whose every command Redis acknowledged */                    \
	_(redis_commands)  /* commands acknowledged by Redis */                                    \
	_(redis_errors)	   /* commands answered with an error or lost with the connection */       \
	_(redis_batches)   /* pipelined flushes */                                                 \
	_(flush_lag_ms)	   /* last window end -> its last Redis ack */                             \
	_(merge_full)	   /* records lost because a merged window table was full */               \
	_(merge_late)	   /* records of a window already written (should stay 0) */               \
	_(side_full)	   /* histogram/distinct records without side memory, not stored */        \
	_(kind_mismatch)   /* records of another kind than their series' (stored as its kind) */   \
	_(sketch_folded)   /* histogram values put in a neighbouring bucket: sketch memory spent */\
	_(breaker_state)   /* 0 closed, 1 open, 2 half-open */                                     \
	_(breaker_opens)                                                                           \
	_(redis_failures) /* failed flushes and connects */                                        \
	_(window_retries) /* windows written again after a failure (merges are idempotent) */      \
	_(redis_refused)  /* device chunks Redis refused for a data reason, kept in tally:refused  \
			   */                                                                      \
	_(redis_refused_records)  /* their records */                                              \
	_(redis_refused_lost)	  /* refused chunks that tally:refused did not take either */      \
	_(redis_redirects)	  /* cluster: MOVED, ASK, TRYAGAIN replies followed */             \
	_(redis_masters)	  /* gauge: masters written to (1 without a cluster) */            \
	_(redis_wait_short)	  /* batches fewer replicas had than --redis-wait-replicas */      \
	_(redis_folds)		  /* device parts folded into a window key that existed */         \
	_(redis_fold_retries)	  /* folds read again: the key changed after it was read */        \
	_(sink_queue)		  /* gauge: merged windows held in memory */                       \
	_(spool_windows)	  /* windows (or parts) written to the spool */                    \
	_(spool_bytes)		  /* gauge: bytes in the spool */                                  \
	_(spool_replayed)	  /* spool records written back to Redis */                        \
	_(spool_corrupt)	  /* spool records skipped: torn or failing their checksum */      \
	_(spool_dropped)	  /* windows not spooled because of the cap (drop-new) */          \
	_(spool_dropped_segments) /* segments deleted because of the cap (drop-oldest) */          \
	_(spool_lost_records)	  /* records lost: the spool refused or failed */                  \
	_(spool_write_errors)	  /* spool appends the file system failed (full, read-only) */     \
	_(spool_skipped)	  /* entries named like segments that are not regular files */     \
	_(spool_set_aside)	  /* damaged or unknown segments renamed to .bad, not deleted */   \
	_(unwritten_records) /* records of windows given up at the shutdown deadline (no spool) */ \
	_(statsd_names_kept) /* gauge: statsd series and device names the sink thread keeps */     \
	_(statsd_names_full) /* names not kept: 2 x --statsd-series or their bytes reached */      \
	_(statsd_names_other) /* a name for an id another text already named (the first kept) */  \
	_(dlq_written)	     /* frames in the dead-letter capture */                               \
	_(dlq_errors)	     /* frames that could not be written to it */                          \
	_(dlq_rotations)     /* capture files rotated at --dlq-max-mb */                           \
	_(arp_replies)                                                                             \
	_(icmp_replies)                                                                            \
	_(exception_tx_drops)                                                                      \
	_(exception_rate_limited)      /* valid requests not answered: over --exception-rate */    \
	_(exception_refused_checksum)  /* requests with a bad IPv4, ICMP or ICMPv6 checksum */     \
	_(exception_refused_fragment)  /* ICMP echo requests in IPv4 fragments */                  \
	_(exception_refused_source)    /* requests from a group MAC or a non-host address */       \
	_(exception_refused_hop_limit) /* neighbor solicitations whose hop limit is not 255 */     \
	_(exception_refused_nd)	       /* neighbor solicitations invalid per RFC 4861 7.1.1 */     \
	_(exception_ignored)	       /* exception frames that are no request for us */

enum tally_worker_counter {
#define TALLY_WC_ENUM(n) TALLY_WC_##n,
	TALLY_FOREACH_WORKER_COUNTER(TALLY_WC_ENUM)
#undef TALLY_WC_ENUM
	TALLY_WC_MAX
};

enum tally_control_counter {
#define TALLY_CC_ENUM(n) TALLY_CC_##n,
	TALLY_FOREACH_CONTROL_COUNTER(TALLY_CC_ENUM)
#undef TALLY_CC_ENUM
	TALLY_CC_MAX
};

struct tally_worker_stats {
	uint64_t c[TALLY_WC_MAX];
	uint64_t malformed[TALLY_MALFORMED_MAX];
	uint64_t statsd[TALLY_STATSD_REASON_MAX];
} __attribute__((aligned(64)));

struct tally_control_stats {
	uint64_t c[TALLY_CC_MAX];
} __attribute__((aligned(64)));

extern const char *const tally_worker_counter_names[TALLY_WC_MAX];
extern const char *const tally_control_counter_names[TALLY_CC_MAX];

/* dst += src, counter by counter (for totals over workers). */
void tally_worker_stats_add(struct tally_worker_stats *dst, const struct tally_worker_stats *src);

#define TALLY_STATS_MAX_WORKERS 64

/* A snapshot of everything tally:self reports. */
struct tally_stats_totals {
	struct tally_worker_stats w;       /* sum over workers */
	const struct tally_worker_stats *per_worker[TALLY_STATS_MAX_WORKERS];
	struct tally_control_stats ctl;
	uint64_t rx_missed;   /* NIC imissed, all ports */
	uint64_t rx_nombuf;
	uint64_t uptime_s;
	uint32_t workers;
};

/*
 * Visit every tally:self field in order: name and integer value. Used for the Redis hash,
 * the telemetry dictionary and the log alike, so the three never disagree.
 */
void tally_stats_foreach(const struct tally_stats_totals *t,
			 void (*fn)(void *ctx, const char *name, uint64_t value), void *ctx);

#endif /* TALLY_STATS_H */
