/*
 * The virtio-mmio transport, version 2 (virtio 1.x, modern only): the
 * register file, feature negotiation, status and reset as the spec says,
 * and the queues' plumbing. A device model (entropy, block, net...) plugs in
 * through struct virtio_dev_ops and sees only checked chains (queue.h).
 *
 * Threads: registers are accessed from vCPU threads; queue work runs on the
 * VMM loop (a queue's kick eventfd is signalled by the hypervisor's
 * ioeventfd, or by the register write when there is none). One lock per
 * transport serializes both; device callbacks run with it held.
 */
#ifndef HUGEVMM_DEVICES_VIRTIO_MMIO_H
#define HUGEVMM_DEVICES_VIRTIO_MMIO_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/dev.h"
#include "devices/virtio/queue.h"

#define VIRTIO_MMIO_WINDOW     0x1000
#define VIRTIO_MAX_QUEUES      4
#define VIRTIO_MMIO_VENDOR     0x4d564748 /* "HGVM" */
#define VIRTIO_MMIO_NOTIFY_OFF 0x50       /* QueueNotify: where ioeventfds go */

struct virtio_mmio;

struct virtio_dev_ops {
	const char *name;
	uint32_t device_id;
	unsigned nqueues;
	uint16_t queue_max;
	uint64_t features; /* device-specific features offered (transport ones are added) */
	uint32_t config_len;
	/* Device configuration space (at 0x100), @off + @len <= config_len. */
	void (*config_read)(struct virtio_mmio *t, uint32_t off, void *data, unsigned len);
	void (*config_write)(struct virtio_mmio *t, uint32_t off, const void *data, unsigned len);
	/* Queue @q has work (VMM loop thread). */
	void (*notify)(struct virtio_mmio *t, unsigned q);
	/* The driver set DRIVER_OK; and reset: drop whatever is in flight. */
	void (*activate)(struct virtio_mmio *t);
	void (*reset)(struct virtio_mmio *t);
};

struct virtio_mmio_stats {
	uint64_t notifies;    /* kicks handled */
	uint64_t interrupts;  /* interrupts raised */
	uint64_t needs_reset; /* times the guest broke a rule */
};

struct virtio_mmio {
	struct dev dev;
	const struct virtio_dev_ops *ops;
	void *priv; /* the device model's state */
	const struct dev_host *host;
	const struct guest_mem *mem;
	char name[16];
	uint64_t base;
	unsigned gsi;

	pthread_mutex_t lock;
	uint32_t status, isr, config_gen;
	uint32_t dev_feat_sel, drv_feat_sel, queue_sel;
	uint64_t driver_features;
	struct vq vq[VIRTIO_MAX_QUEUES];
	int kick_fd[VIRTIO_MAX_QUEUES]; /* eventfds: a queue has work */
	int irq_fd;                     /* eventfd the hypervisor turns into an edge on gsi */
	bool irqfd;                     /* irq_fd is wired (else host->irq_line pulses) */
	struct virtio_mmio_stats st;
};

/*
 * Set up @t for the device @ops (its state in @priv) at window @base with
 * interrupt @gsi, over guest memory @mem. 0 or -errno (eventfds).
 */
int virtio_mmio_init(struct virtio_mmio *t, const struct virtio_dev_ops *ops, void *priv,
		     const struct dev_host *host, const struct guest_mem *mem, const char *name,
		     uint64_t base, unsigned gsi) must_check;

/* Close the eventfds. */
void virtio_mmio_destroy(struct virtio_mmio *t);

/* The VMM loop saw kick_fd[@q] readable: drain it and let the device work. */
void virtio_mmio_kick(struct virtio_mmio *t, unsigned q);

/* With the lock held: raise the interrupt for @why (VIRTIO_MMIO_INT_VRING / _CONFIG). */
void virtio_mmio_interrupt(struct virtio_mmio *t, uint32_t why);

/*
 * With the lock held: the guest broke a rule (@why). The device stops using
 * its queues until the driver resets it; DEVICE_NEEDS_RESET is set and the
 * driver gets a configuration interrupt. The VM goes on.
 */
void virtio_mmio_needs_reset(struct virtio_mmio *t, const char *why);

/*
 * With the lock held: the device's configuration changed (a new capacity):
 * the generation moves on and a live driver gets a configuration interrupt.
 */
void virtio_mmio_config_changed(struct virtio_mmio *t);

/* Whether the driver has set DRIVER_OK and the device still works (lock held). */
bool virtio_mmio_live(const struct virtio_mmio *t);

/* Offered features: the device's and the transport's. */
uint64_t virtio_mmio_offered(const struct virtio_mmio *t);

#endif
