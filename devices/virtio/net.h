/*
 * The network device (virtio-net, Firecracker's "network-interfaces"): one
 * receive and one transmit queue on a tap device of the host, all packet I/O
 * on the VMM loop (never a vCPU thread).
 *
 * Transmit: a frame goes from guest memory to the tap with one writev (the
 * header copied and checked first, the frame itself read in place). A chain
 * shorter than the header, a frame over NET_FRAME_MAX, or a header asking
 * for an offload the guest did not negotiate is dropped and counted; the
 * queue goes on.
 *
 * Receive: only while the guest has buffers. A frame is read from the tap
 * into one frame-sized buffer of the device, then copied into as many guest
 * buffers as it needs (MRG_RXBUF) or one. When the guest has no room, the
 * device stops reading: frames wait in the tap's queue (the kernel's bound,
 * txqueuelen), never in the VMM, and none the guest has room for is dropped.
 *
 * The tap's offloads (TUNSETOFFLOAD) follow what the driver acked: it hands
 * us partially checksummed or TSO frames only when the guest takes them.
 *
 * Threads: the transport's lock serializes register access (vCPU threads)
 * with queue work, tap readiness and timers (the VMM loop).
 */
#ifndef HUGEVMM_DEVICES_VIRTIO_NET_H
#define HUGEVMM_DEVICES_VIRTIO_NET_H

#include <stddef.h>
#include <stdint.h>

#include "common/ratelimit.h"
#include "devices/virtio/mmio.h"

#define NET_HDR_LEN   12u            /* struct virtio_net_hdr_v1 (num_buffers included) */
#define NET_FRAME_MAX (65536u + 14u) /* the largest frame either way: 64 KiB + Ethernet header */
#define NET_WHY_LEN   320

/*
 * Open the existing tap device @name for one user: /dev/net/tun with
 * IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, non-blocking, the 12-byte virtio-net
 * header, offloads off. hugevmm never creates a tap: that is the
 * orchestrator's job. The descriptor, or -errno with @why (a sentence
 * naming the device, the problem and the remedy).
 */
int tap_open(const char *name, char *why, size_t whylen);

struct virtio_net_cfg {
	const char *id;  /* iface_id, for messages */
	uint8_t mac[6];
	unsigned mtu;    /* 0: no VIRTIO_NET_F_MTU */
	const struct rl_cfg *rx_rl, *tx_rl; /* may be NULL */
};

struct virtio_net_stats {
	uint64_t rx_packets_count, rx_bytes_count, rx_tap_event_count, rx_queue_event_count;
	uint64_t no_rx_avail_buffer, rx_rate_limiter_throttled, rx_dropped_too_big;
	uint64_t tap_read_fails;
	uint64_t tx_packets_count, tx_bytes_count, tx_queue_event_count;
	uint64_t tx_rate_limiter_throttled, tx_malformed_frames, tx_malformed_header;
	uint64_t tx_malformed_size, tx_malformed_offload, tap_write_fails, no_tx_avail_buffer;
};

struct virtio_net {
	struct virtio_mmio t;
	struct virtio_dev_ops ops; /* features depend on the config (MTU) */
	char id[64];
	uint8_t config[12]; /* mac, status, max_virtqueue_pairs, mtu */
	int tap;
	unsigned offloads; /* TUN_F_* set on the tap */
	uint64_t acked;    /* the driver's features at DRIVER_OK */

	/* Receive. */
	void *w_rx;      /* the loop's watch on the tap (POLLIN), when reading */
	void *t_rx;      /* rate limiter resume */
	uint8_t *frame;  /* a frame read from the tap: header and data */
	uint32_t pend;   /* bytes of a frame in @frame not yet delivered; 0 = none */
	bool rx_dead;    /* the tap failed for good: reading stopped */
	struct ratelimit rx_rl;

	/* Transmit. */
	void *w_tx;      /* the loop's watch on the tap (POLLOUT), when the tap was full */
	void *t_tx;      /* rate limiter (or batch) resume */
	bool tx_paid;    /* the chain at the head paid its tokens, then met a full tap */
	struct ratelimit tx_rl;

	bool rx_unsignalled, tx_unsignalled; /* used entries given back without an interrupt */
	struct virtio_net_stats st;
	struct vq_chain chain, first; /* a chain being served; a frame's first receive chain */
	uint16_t heads[VQ_MAX_SIZE];
	uint32_t lens[VQ_MAX_SIZE];
};

/*
 * The device at @base/@gsi on the tap @tap (from tap_open; the device owns
 * it from now on, even on failure). 0 or -errno.
 */
int virtio_net_init(struct virtio_net *n, const struct dev_host *host,
		    const struct guest_mem *mem, uint64_t base, unsigned gsi, int tap,
		    const struct virtio_net_cfg *cfg) must_check;

/* New rate limiters (NULL: keep that one), from the loop's thread. */
void virtio_net_set_limits(struct virtio_net *n, const struct rl_cfg *rx, const struct rl_cfg *tx);

/* Stop watching the tap and cancel timers (the loop's thread, or once it no longer runs). */
void virtio_net_stop(struct virtio_net *n);

/* Release the device: its eventfds, the tap, the frame buffer (after virtio_net_stop). */
void virtio_net_destroy(struct virtio_net *n);

/* A consistent copy of the counters (any thread). */
void virtio_net_stats(struct virtio_net *n, struct virtio_net_stats *out);

#endif
