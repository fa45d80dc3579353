#include "devices/virtio/mmio.h"

#include <errno.h>
#include <stdio.h>
#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_ring.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/log.h"

#define MAGIC 0x74726976 /* "virt" */

static struct virtio_mmio *of(struct dev *d)
{
	return container_of(d, struct virtio_mmio, dev);
}

uint64_t virtio_mmio_offered(const struct virtio_mmio *t)
{
	return t->ops->features | (1ull << VIRTIO_F_VERSION_1) |
	       (1ull << VIRTIO_RING_F_EVENT_IDX) | (1ull << VIRTIO_RING_F_INDIRECT_DESC);
}

bool virtio_mmio_live(const struct virtio_mmio *t)
{
	return (t->status & VIRTIO_CONFIG_S_DRIVER_OK) && !(t->status & VIRTIO_CONFIG_S_NEEDS_RESET);
}

void virtio_mmio_interrupt(struct virtio_mmio *t, uint32_t why)
{
	uint64_t one = 1;

	t->isr |= why;
	t->st.interrupts++;
	if (t->irqfd) {
		if (write(t->irq_fd, &one, sizeof(one)) != sizeof(one))
			log_debug("%s: interrupt eventfd: %s", t->name, strerror(errno));
		return;
	}
	/* Edge-triggered: a pulse. */
	t->host->irq_line(t->host->opaque, t->gsi, 1);
	t->host->irq_line(t->host->opaque, t->gsi, 0);
}

void virtio_mmio_needs_reset(struct virtio_mmio *t, const char *why)
{
	t->st.needs_reset++;
	if (t->status & VIRTIO_CONFIG_S_NEEDS_RESET)
		return;
	log_warn("%s: the guest broke a virtio rule: %s; the device needs a reset (the VM goes on)",
		 t->name, why);
	t->status |= VIRTIO_CONFIG_S_NEEDS_RESET;
	virtio_mmio_interrupt(t, VIRTIO_MMIO_INT_CONFIG);
}

void virtio_mmio_config_changed(struct virtio_mmio *t)
{
	t->config_gen++;
	if (virtio_mmio_live(t))
		virtio_mmio_interrupt(t, VIRTIO_MMIO_INT_CONFIG);
}

/* Back to the state after power-on (a write of 0 to Status). */
static void reset(struct virtio_mmio *t)
{
	if (t->ops->reset)
		t->ops->reset(t);
	for (unsigned i = 0; i < VIRTIO_MAX_QUEUES; i++)
		vq_reset(&t->vq[i]);
	t->status = 0;
	t->isr = 0;
	t->dev_feat_sel = t->drv_feat_sel = t->queue_sel = 0;
	t->driver_features = 0;
}

static struct vq *selected(struct virtio_mmio *t)
{
	return t->queue_sel < t->ops->nqueues ? &t->vq[t->queue_sel] : NULL;
}

static uint32_t read_reg(struct virtio_mmio *t, uint64_t off)
{
	struct vq *q = selected(t);
	uint64_t f;

	switch (off) {
	case VIRTIO_MMIO_MAGIC_VALUE:
		return MAGIC;
	case VIRTIO_MMIO_VERSION:
		return 2;
	case VIRTIO_MMIO_DEVICE_ID:
		return t->ops->device_id;
	case VIRTIO_MMIO_VENDOR_ID:
		return VIRTIO_MMIO_VENDOR;
	case VIRTIO_MMIO_DEVICE_FEATURES:
		f = virtio_mmio_offered(t);
		return t->dev_feat_sel == 0 ? (uint32_t)f : t->dev_feat_sel == 1 ? (uint32_t)(f >> 32) : 0;
	case VIRTIO_MMIO_QUEUE_NUM_MAX:
		return q ? t->ops->queue_max : 0;
	case VIRTIO_MMIO_QUEUE_READY:
		return q ? q->ready : 0;
	case VIRTIO_MMIO_INTERRUPT_STATUS:
		return t->isr;
	case VIRTIO_MMIO_STATUS:
		return t->status;
	case VIRTIO_MMIO_SHM_LEN_LOW:
	case VIRTIO_MMIO_SHM_LEN_HIGH:
		return 0xffffffff; /* no shared memory regions: length -1 */
	case VIRTIO_MMIO_CONFIG_GENERATION:
		return t->config_gen;
	}
	return 0;
}

/* Queue settings may change only while the queue is not ready. */
static void set_half(uint64_t *v, bool high, uint32_t val)
{
	*v = high ? (*v & 0xffffffffull) | ((uint64_t)val << 32) : (*v & ~0xffffffffull) | val;
}

static void queue_ready(struct virtio_mmio *t, struct vq *q, uint32_t val)
{
	char why[VQ_WHY_LEN];

	if (!val) {
		q->ready = false;
		return;
	}
	q->event_idx = t->driver_features & (1ull << VIRTIO_RING_F_EVENT_IDX);
	q->indirect = t->driver_features & (1ull << VIRTIO_RING_F_INDIRECT_DESC);
	if (vq_activate(q, t->mem, t->ops->queue_max, why)) {
		virtio_mmio_needs_reset(t, why);
		return;
	}
	q->ready = true;
}

static void write_status(struct virtio_mmio *t, uint32_t val)
{
	uint32_t old = t->status;
	uint64_t one = 1;

	if (val == 0) {
		reset(t);
		return;
	}
	/* FEATURES_OK sticks only for a subset of what was offered, with VERSION_1. */
	if ((val & VIRTIO_CONFIG_S_FEATURES_OK) && !(old & VIRTIO_CONFIG_S_FEATURES_OK) &&
	    ((t->driver_features & ~virtio_mmio_offered(t)) ||
	     !(t->driver_features & (1ull << VIRTIO_F_VERSION_1)))) {
		log_debug("%s: features 0x%llx refused (offered 0x%llx)", t->name,
			  (unsigned long long)t->driver_features,
			  (unsigned long long)virtio_mmio_offered(t));
		val &= ~VIRTIO_CONFIG_S_FEATURES_OK;
	}
	/* DRIVER_OK without FEATURES_OK is a driver bug; the device stays off. */
	if ((val & VIRTIO_CONFIG_S_DRIVER_OK) && !(val & VIRTIO_CONFIG_S_FEATURES_OK))
		val &= ~VIRTIO_CONFIG_S_DRIVER_OK;
	t->status = val | (old & VIRTIO_CONFIG_S_NEEDS_RESET);
	if ((t->status & VIRTIO_CONFIG_S_DRIVER_OK) && !(old & VIRTIO_CONFIG_S_DRIVER_OK)) {
		if (t->ops->activate)
			t->ops->activate(t);
		/* Buffers given before DRIVER_OK are work too: for the loop, as any kick. */
		for (unsigned i = 0; i < t->ops->nqueues; i++)
			if (t->vq[i].ready && write(t->kick_fd[i], &one, sizeof(one)) < 0)
				log_debug("%s: kick eventfd: %s", t->name, strerror(errno));
	}
}

static void write_reg(struct virtio_mmio *t, uint64_t off, uint32_t val)
{
	struct vq *q = selected(t);
	bool q_open = q && !q->ready;
	uint64_t one = 1;

	switch (off) {
	case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
		t->dev_feat_sel = val;
		break;
	case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
		t->drv_feat_sel = val;
		break;
	case VIRTIO_MMIO_DRIVER_FEATURES:
		/* Only while negotiating: DRIVER set, FEATURES_OK not yet. */
		if ((t->status & VIRTIO_CONFIG_S_DRIVER) && !(t->status & VIRTIO_CONFIG_S_FEATURES_OK) &&
		    t->drv_feat_sel < 2)
			set_half(&t->driver_features, t->drv_feat_sel == 1, val);
		break;
	case VIRTIO_MMIO_QUEUE_SEL:
		t->queue_sel = val;
		break;
	case VIRTIO_MMIO_QUEUE_NUM:
		if (q_open)
			q->size = (uint16_t)(val > 0xffff ? 0 : val);
		break;
	case VIRTIO_MMIO_QUEUE_READY:
		if (q)
			queue_ready(t, q, val);
		break;
	case VIRTIO_MMIO_QUEUE_NOTIFY:
		/* Without an ioeventfd for it the write lands here; the loop does the work. */
		if (val < t->ops->nqueues && write(t->kick_fd[val], &one, sizeof(one)) < 0)
			log_debug("%s: kick eventfd: %s", t->name, strerror(errno));
		break;
	case VIRTIO_MMIO_INTERRUPT_ACK:
		t->isr &= ~val;
		break;
	case VIRTIO_MMIO_STATUS:
		write_status(t, val);
		break;
	case VIRTIO_MMIO_QUEUE_DESC_LOW:
	case VIRTIO_MMIO_QUEUE_DESC_HIGH:
		if (q_open)
			set_half(&q->desc_gpa, off == VIRTIO_MMIO_QUEUE_DESC_HIGH, val);
		break;
	case VIRTIO_MMIO_QUEUE_AVAIL_LOW:
	case VIRTIO_MMIO_QUEUE_AVAIL_HIGH:
		if (q_open)
			set_half(&q->avail_gpa, off == VIRTIO_MMIO_QUEUE_AVAIL_HIGH, val);
		break;
	case VIRTIO_MMIO_QUEUE_USED_LOW:
	case VIRTIO_MMIO_QUEUE_USED_HIGH:
		if (q_open)
			set_half(&q->used_gpa, off == VIRTIO_MMIO_QUEUE_USED_HIGH, val);
		break;
	default:
		log_debug("%s: write of 0x%x to read-only or unknown register 0x%llx", t->name, val,
			  (unsigned long long)off);
	}
}

static void mmio_read(struct dev *d, uint64_t off, void *data, unsigned len)
{
	struct virtio_mmio *t = of(d);
	uint32_t v;

	memset(data, 0, len);
	pthread_mutex_lock(&t->lock);
	if (off >= VIRTIO_MMIO_CONFIG) {
		uint64_t c = off - VIRTIO_MMIO_CONFIG;

		if (t->ops->config_read && c + len <= t->ops->config_len)
			t->ops->config_read(t, (uint32_t)c, data, len);
	} else if (len == 4 && !(off & 3)) {
		v = read_reg(t, off);
		memcpy(data, &v, 4);
	}
	pthread_mutex_unlock(&t->lock);
}

static void mmio_write(struct dev *d, uint64_t off, const void *data, unsigned len)
{
	struct virtio_mmio *t = of(d);
	uint32_t v;

	pthread_mutex_lock(&t->lock);
	if (off >= VIRTIO_MMIO_CONFIG) {
		uint64_t c = off - VIRTIO_MMIO_CONFIG;

		if (t->ops->config_write && c + len <= t->ops->config_len)
			t->ops->config_write(t, (uint32_t)c, data, len);
	} else if (len == 4 && !(off & 3)) {
		memcpy(&v, data, 4);
		write_reg(t, off, v);
	} else {
		log_debug("%s: %u-byte write to register 0x%llx ignored (registers are 32-bit)",
			  t->name, len, (unsigned long long)off);
	}
	pthread_mutex_unlock(&t->lock);
}

static void mmio_reset(struct dev *d)
{
	struct virtio_mmio *t = of(d);

	pthread_mutex_lock(&t->lock);
	reset(t);
	pthread_mutex_unlock(&t->lock);
}

static const struct dev_ops mmio_ops = {
	.name = "virtio-mmio",
	.read = mmio_read,
	.write = mmio_write,
	.reset = mmio_reset,
};

int virtio_mmio_init(struct virtio_mmio *t, const struct virtio_dev_ops *ops, void *priv,
		     const struct dev_host *host, const struct guest_mem *mem, const char *name,
		     uint64_t base, unsigned gsi)
{
	memset(t, 0, sizeof(*t));
	t->dev.ops = &mmio_ops;
	t->ops = ops;
	t->priv = priv;
	t->host = host;
	t->mem = mem;
	t->base = base;
	t->gsi = gsi;
	snprintf(t->name, sizeof(t->name), "%s", name);
	pthread_mutex_init(&t->lock, NULL);
	t->irq_fd = -1;
	for (unsigned i = 0; i < VIRTIO_MAX_QUEUES; i++)
		t->kick_fd[i] = -1;
	for (unsigned i = 0; i < ops->nqueues; i++) {
		t->kick_fd[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (t->kick_fd[i] < 0)
			goto fail;
	}
	t->irq_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (t->irq_fd < 0)
		goto fail;
	return 0;
fail:
	virtio_mmio_destroy(t);
	return -errno;
}

void virtio_mmio_destroy(struct virtio_mmio *t)
{
	for (unsigned i = 0; i < VIRTIO_MAX_QUEUES; i++)
		if (t->kick_fd[i] >= 0) {
			close(t->kick_fd[i]);
			t->kick_fd[i] = -1;
		}
	if (t->irq_fd >= 0)
		close(t->irq_fd);
	t->irq_fd = -1;
}

void virtio_mmio_kick(struct virtio_mmio *t, unsigned q)
{
	uint64_t v;

	if (q >= t->ops->nqueues)
		return;
	if (read(t->kick_fd[q], &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_debug("%s: kick eventfd: %s", t->name, strerror(errno));
	pthread_mutex_lock(&t->lock);
	t->st.notifies++;
	if (virtio_mmio_live(t) && t->vq[q].ready)
		t->ops->notify(t, q);
	pthread_mutex_unlock(&t->lock);
}
