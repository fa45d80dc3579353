/*
 * A fake guest for device tests: 1 MiB of "guest RAM" in two slots at
 * separate host addresses, one split virtqueue the test fills as a driver
 * would (descriptors, available ring), a fake dev_host that counts interrupt
 * pulses and holds one timer, and the driver's side of the transport's
 * registers. Header-only, one per test binary, included after cmocka.h.
 */
#ifndef HUGEVMM_TESTS_UNIT_VIRTIO_FAKE_H
#define HUGEVMM_TESTS_UNIT_VIRTIO_FAKE_H

#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "devices/virtio/mmio.h"
#include "memory/mem.h"

#define RAM    (1u << 20) /* two slots of 512 KiB, at separate host addresses */
#define SLOT   (RAM / 2)
#define DESC   0x1000
#define AVAIL  0x2000
#define USED   0x3000
#define QSIZE  8

static uint8_t *slot_mem[2];
static struct guest_mem gm;

static int fake_mem_setup(void)
{
	memset(&gm, 0, sizeof(gm));
	for (unsigned i = 0; i < 2; i++) {
		slot_mem[i] = aligned_alloc(4096, SLOT);
		memset(slot_mem[i], 0, SLOT);
		gm.slots[i] = (struct mem_slot){
			.id = i, .gpa = (uint64_t)i * SLOT, .size = SLOT, .hva = slot_mem[i]};
	}
	gm.nslots = 2;
	return 0;
}

static int fake_mem_teardown(void)
{
	free(slot_mem[0]);
	free(slot_mem[1]);
	return 0;
}

static void *g(uint64_t gpa)
{
	return mem_gpa_to_hva(&gm, gpa, 1);
}

static inline void set_desc(unsigned i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	uint8_t *d = g(DESC + 16 * i);

	memcpy(d, &addr, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	memcpy(d + 14, &next, 2);
}

/* The driver offers chain @head as its @n-th available entry. */
static inline void offer(uint16_t n, uint16_t head)
{
	uint16_t idx = (uint16_t)(n + 1);

	memcpy(g(AVAIL + 4 + 2 * (n % QSIZE)), &head, 2);
	memcpy(g(AVAIL + 2), &idx, 2);
}

static inline uint16_t used_idx(void)
{
	uint16_t v;

	memcpy(&v, g(USED + 2), 2);
	return v;
}

static unsigned irq_pulses;
static void *timer_arg;
static void (*timer_fn)(void *, int);
static uint64_t timer_ms;

static void fake_irq(void *o, unsigned gsi, int level)
{
	(void)o;
	assert_int_equal(gsi, 5);
	irq_pulses += level == 1;
}

static void *fake_timer(void *o, uint64_t ms, void (*fn)(void *, int), void *arg)
{
	(void)o;
	timer_ms = ms;
	timer_fn = fn;
	timer_arg = arg;
	return &timer_ms;
}

static void fake_cancel(void *o, void *t)
{
	(void)o;
	(void)t;
	timer_fn = NULL;
}

static const struct dev_host host = {
	.irq_line = fake_irq, .timer = fake_timer, .timer_cancel = fake_cancel};

static uint32_t rd(struct virtio_mmio *t, uint64_t off)
{
	uint32_t v;

	t->dev.ops->read(&t->dev, off, &v, 4);
	return v;
}

static void wr(struct virtio_mmio *t, uint64_t off, uint32_t v)
{
	t->dev.ops->write(&t->dev, off, &v, 4);
}

/* The driver's side of the spec's initialization, up to the queues. */
static void negotiate(struct virtio_mmio *t, uint64_t features)
{
	wr(t, VIRTIO_MMIO_STATUS, 0);
	wr(t, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	wr(t, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	wr(t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	wr(t, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)features);
	wr(t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	wr(t, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(features >> 32));
	wr(t, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
				      VIRTIO_CONFIG_S_FEATURES_OK);
}

static inline void setup_queue(struct virtio_mmio *t, unsigned qi, uint64_t desc)
{
	wr(t, VIRTIO_MMIO_QUEUE_SEL, qi);
	wr(t, VIRTIO_MMIO_QUEUE_NUM, QSIZE);
	wr(t, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)desc);
	wr(t, VIRTIO_MMIO_QUEUE_DESC_HIGH, (uint32_t)(desc >> 32));
	wr(t, VIRTIO_MMIO_QUEUE_AVAIL_LOW, AVAIL);
	wr(t, VIRTIO_MMIO_QUEUE_AVAIL_HIGH, 0);
	wr(t, VIRTIO_MMIO_QUEUE_USED_LOW, USED);
	wr(t, VIRTIO_MMIO_QUEUE_USED_HIGH, 0);
	wr(t, VIRTIO_MMIO_QUEUE_READY, 1);
}

#endif
