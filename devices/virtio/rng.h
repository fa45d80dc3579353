/*
 * The entropy device (virtio-rng, Firecracker's "entropy"): one queue whose
 * device-writable buffers are filled from getrandom(), under Firecracker's
 * rate limiter (bytes and requests).
 */
#ifndef HUGEVMM_DEVICES_VIRTIO_RNG_H
#define HUGEVMM_DEVICES_VIRTIO_RNG_H

#include "common/ratelimit.h"
#include "devices/virtio/mmio.h"

struct virtio_rng_stats {
	uint64_t requests, bytes, throttled, errors;
};

struct virtio_rng {
	struct virtio_mmio t;
	struct ratelimit rl;
	void *timer; /* pending resume after throttling */
	struct virtio_rng_stats st;
	struct vq_chain chain; /* the request being served (under the transport's lock) */
};

/* The device at @base/@gsi; @rl may be NULL (no limit). 0 or -errno. */
int virtio_rng_init(struct virtio_rng *r, const struct dev_host *host,
		    const struct guest_mem *mem, uint64_t base, unsigned gsi,
		    const struct rl_cfg *rl) must_check;

/* Cancel a pending resume (the loop's thread, or once the loop no longer runs). */
void virtio_rng_stop(struct virtio_rng *r);

/* Release the device's eventfds (after virtio_rng_stop). */
void virtio_rng_destroy(struct virtio_rng *r);

/* A consistent copy of the counters (any thread). */
void virtio_rng_stats(struct virtio_rng *r, struct virtio_rng_stats *out);

#endif
