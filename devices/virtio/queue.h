/*
 * The split virtqueue, device side: the one place that reads what the guest
 * wrote into descriptor tables and rings. Every ring and buffer address is
 * checked against guest RAM (the memory plan), every chain is bounded, and
 * guest-writable fields are read once into host variables before they are
 * used as bounds. Devices see only checked buffers (struct vq_chain).
 *
 * Not thread-safe: the transport serializes access to a queue.
 */
#ifndef HUGEVMM_DEVICES_VIRTIO_QUEUE_H
#define HUGEVMM_DEVICES_VIRTIO_QUEUE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/util.h"
#include "memory/mem.h"

#define VQ_MAX_SIZE     256  /* the largest queue a device offers (QueueNumMax) */
#define VQ_MAX_INDIRECT 256  /* entries of one indirect table */
#define VQ_MAX_BUFS     512  /* host pieces of one chain (a buffer may span two slots) */
#define VQ_WHY_LEN      160  /* room for the reason a rule was broken */

/* One checked piece of a chain: host memory the guest gave for this request. */
struct vq_buf {
	uint8_t *hva;
	uint32_t len;
	bool write; /* device-writable (the device's output); else device-readable input */
};

struct vq_chain {
	uint16_t head; /* the id to give back in the used ring */
	unsigned n;
	uint32_t in_len;  /* bytes of device-readable buffers */
	uint32_t out_len; /* bytes of device-writable buffers */
	struct vq_buf buf[VQ_MAX_BUFS];
};

struct vq {
	/* The driver's settings, through the transport's registers. */
	uint16_t size;
	uint64_t desc_gpa, avail_gpa, used_gpa;
	bool ready;
	/* Negotiated features that change the ring format or the walk. */
	bool event_idx, indirect;

	/* Device state. */
	uint16_t last_avail; /* next avail entry to take */
	uint16_t used_idx;   /* next used entry to fill */
	uint16_t signalled;  /* used_idx at the last interrupt */
	bool signalled_valid;
	/* Checked host views of the rings, set by vq_activate. */
	volatile uint8_t *desc, *avail, *used;
	const struct guest_mem *mem;
};

/* Back to the reset state (the driver's settings too). */
void vq_reset(struct vq *q);

/*
 * Check the driver's settings (size a power of 2 up to @max, rings aligned
 * and inside guest RAM) and map the rings. 0, or -EINVAL with @why (of
 * VQ_WHY_LEN bytes) saying what is wrong.
 */
int vq_activate(struct vq *q, const struct guest_mem *gm, uint16_t max, char *why);

/*
 * Take the next available chain into @c. 1 when one was taken, 0 when the
 * ring is empty, -EINVAL when the guest broke a rule (@why says which): the
 * device must then stop using the queue (DEVICE_NEEDS_RESET).
 */
int vq_pop(struct vq *q, struct vq_chain *c, char *why) must_check;

/* Give the last popped chain back unused (a device that must wait, e.g. throttled). */
void vq_unpop(struct vq *q);

/* Return chain @head to the driver with @len bytes written into its writable buffers. */
void vq_push(struct vq *q, uint16_t head, uint32_t len);

/*
 * After pushes: whether the driver wants an interrupt now (EVENT_IDX's
 * used_event, or the NO_INTERRUPT flag without it). Remembers the answer.
 */
bool vq_should_notify(struct vq *q);

/* Whether chains are waiting (the guest added more since the last pop). */
bool vq_has_avail(const struct vq *q);

/* Copy up to @len bytes into the chain's writable buffers from offset 0; bytes copied. */
uint32_t vq_chain_write(const struct vq_chain *c, const void *src, uint32_t len);

#endif
