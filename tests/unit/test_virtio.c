/*
 * The virtio-mmio transport, the split-virtqueue walker and the entropy
 * device against a fake guest memory: well-formed rings work, and every
 * broken rule (loops, addresses outside RAM, chains longer than the queue,
 * indirect tables inside indirect tables, zero-length rings...) is refused
 * with a reason, never followed. Also Firecracker's token buckets.
 */
#include <errno.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_ring.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/log.h"
#include "common/ratelimit.h"
#include "devices/virtio/mmio.h"
#include "devices/virtio/queue.h"
#include "devices/virtio/rng.h"
#include "virtio_fake.h"

static int setup(void **state)
{
	(void)state;
	return fake_mem_setup();
}

static int teardown(void **state)
{
	(void)state;
	return fake_mem_teardown();
}

static void queue(struct vq *q, bool event_idx, bool indirect)
{
	char why[VQ_WHY_LEN];

	vq_reset(q);
	q->size = QSIZE;
	q->desc_gpa = DESC;
	q->avail_gpa = AVAIL;
	q->used_gpa = USED;
	q->event_idx = event_idx;
	q->indirect = indirect;
	memset(g(DESC), 0, 0x3000);
	assert_int_equal(vq_activate(q, &gm, VQ_MAX_SIZE, why), 0);
	q->ready = true;
}

static void expect_broken(struct vq *q, const char *reason)
{
	static struct vq_chain c;
	char why[VQ_WHY_LEN] = "";

	assert_int_equal(vq_pop(q, &c, why), -EINVAL);
	if (!strstr(why, reason))
		fail_msg("reason \"%s\" lacks \"%s\"", why, reason);
}

static void a_chain_in_and_out(void **state)
{
	static struct vq_chain c;
	char why[VQ_WHY_LEN];
	struct vq q;
	uint32_t id, len;

	(void)state;
	queue(&q, false, false);
	set_desc(0, 0x10000, 16, VRING_DESC_F_NEXT, 3);
	set_desc(3, 0x20000, 100, VRING_DESC_F_WRITE, 0);
	offer(0, 0);
	assert_int_equal(vq_pop(&q, &c, why), 1);
	assert_int_equal(c.head, 0);
	assert_int_equal(c.n, 2);
	assert_int_equal(c.in_len, 16);
	assert_int_equal(c.out_len, 100);
	assert_ptr_equal(c.buf[0].hva, g(0x10000));
	assert_false(c.buf[0].write);
	assert_true(c.buf[1].write);
	assert_int_equal(vq_chain_write(&c, "hello", 5), 5);
	assert_memory_equal(g(0x20000), "hello", 5);
	assert_int_equal(vq_pop(&q, &c, why), 0); /* empty now */
	vq_push(&q, c.head, 5);
	assert_int_equal(used_idx(), 1);
	memcpy(&id, g(USED + 4), 4);
	memcpy(&len, g(USED + 8), 4);
	assert_int_equal(id, 0);
	assert_int_equal(len, 5);
	/* Without EVENT_IDX the driver's NO_INTERRUPT flag decides. */
	assert_true(vq_should_notify(&q));
	*(uint16_t *)g(AVAIL) = VRING_AVAIL_F_NO_INTERRUPT;
	vq_push(&q, 0, 0);
	assert_false(vq_should_notify(&q));
}

static void a_buffer_across_two_slots_is_two_pieces(void **state)
{
	static struct vq_chain c;
	char why[VQ_WHY_LEN];
	struct vq q;

	(void)state;
	queue(&q, false, false);
	set_desc(0, SLOT - 10, 30, VRING_DESC_F_WRITE, 0);
	offer(0, 0);
	assert_int_equal(vq_pop(&q, &c, why), 1);
	assert_int_equal(c.n, 2);
	assert_int_equal(c.buf[0].len, 10);
	assert_ptr_equal(c.buf[0].hva, slot_mem[0] + SLOT - 10);
	assert_int_equal(c.buf[1].len, 20);
	assert_ptr_equal(c.buf[1].hva, slot_mem[1]);
	assert_int_equal(c.out_len, 30);
}

static void indirect_tables(void **state)
{
	static struct vq_chain c;
	char why[VQ_WHY_LEN];
	uint8_t *t = g(0x8000);
	struct vq q;
	uint64_t a = 0x30000;
	uint32_t l = 64;
	uint16_t f = VRING_DESC_F_WRITE, n = 0;

	(void)state;
	queue(&q, false, true);
	memset(t, 0, 64);
	memcpy(t, &a, 8);
	memcpy(t + 8, &l, 4);
	memcpy(t + 12, &f, 2);
	memcpy(t + 14, &n, 2);
	set_desc(2, 0x8000, 16, VRING_DESC_F_INDIRECT, 0);
	offer(0, 2);
	assert_int_equal(vq_pop(&q, &c, why), 1);
	assert_int_equal(c.n, 1);
	assert_int_equal(c.out_len, 64);
	assert_ptr_equal(c.buf[0].hva, g(0x30000));
}

static void event_idx_asks_when_to_notify(void **state)
{
	static struct vq_chain c;
	char why[VQ_WHY_LEN];
	struct vq q;
	uint16_t ev, avail_event;

	(void)state;
	queue(&q, true, false);
	set_desc(0, 0x10000, 8, VRING_DESC_F_WRITE, 0);
	/* Empty: the device asks to be notified at the next entry (avail_event). */
	assert_int_equal(vq_pop(&q, &c, why), 0);
	offer(0, 0);
	assert_int_equal(vq_pop(&q, &c, why), 1);
	memcpy(&avail_event, g(USED + 4 + 8 * QSIZE), 2);
	assert_int_equal(avail_event, 1);
	/* used_event 0: the driver wants an interrupt once entry 0 is used. */
	ev = 0;
	memcpy(g(AVAIL + 4 + 2 * QSIZE), &ev, 2);
	vq_push(&q, 0, 8);
	assert_true(vq_should_notify(&q));
	/* used_event 5: not before the sixth; the next push stays quiet. */
	ev = 5;
	memcpy(g(AVAIL + 4 + 2 * QSIZE), &ev, 2);
	offer(1, 0);
	assert_int_equal(vq_pop(&q, &c, why), 1);
	vq_push(&q, 0, 8);
	assert_false(vq_should_notify(&q));
	/* vq_unpop gives the entry back. */
	offer(2, 0);
	assert_int_equal(vq_pop(&q, &c, why), 1);
	vq_unpop(&q);
	assert_true(vq_has_avail(&q));
	assert_int_equal(vq_pop(&q, &c, why), 1);
}

static void broken_rings_are_refused(void **state)
{
	static const struct {
		uint64_t desc, avail, used;
		uint16_t size;
		const char *why;
	} bad[] = {
		{DESC, AVAIL, USED, 0, "queue size 0"},
		{DESC, AVAIL, USED, 6, "queue size 6"},
		{DESC, AVAIL, USED, 512, "queue size 512"},
		{DESC + 8, AVAIL, USED, QSIZE, "descriptor table at 0x1008 is not 16-byte aligned"},
		{0x7fff0000ull, AVAIL, USED, QSIZE, "descriptor table [0x7fff0000"},
		{DESC, AVAIL + 1, USED, QSIZE, "available ring at 0x2001 is not 2-byte aligned"},
		{DESC, AVAIL, USED + 2, QSIZE, "used ring at 0x3002 is not 4-byte aligned"},
		{DESC, AVAIL, RAM - 8, QSIZE, "used ring [0xffff8"},
		/* A ring across the slots' boundary: not one host range. */
		{SLOT - 64, AVAIL, USED, QSIZE, "descriptor table [0x7ffc0"},
	};

	(void)state;
	for (unsigned i = 0; i < ARRAY_SIZE(bad); i++) {
		char why[VQ_WHY_LEN] = "";
		struct vq q;

		vq_reset(&q);
		q.size = bad[i].size;
		q.desc_gpa = bad[i].desc;
		q.avail_gpa = bad[i].avail;
		q.used_gpa = bad[i].used;
		assert_int_equal(vq_activate(&q, &gm, VQ_MAX_SIZE, why), -EINVAL);
		if (!strstr(why, bad[i].why))
			fail_msg("case %u: \"%s\" lacks \"%s\"", i, why, bad[i].why);
	}
}

static void broken_chains_are_refused(void **state)
{
	struct vq q;
	uint8_t *t = g(0x8000);
	uint16_t idx = 40;

	(void)state;
	/* A loop: 0 -> 1 -> 0. */
	queue(&q, false, false);
	set_desc(0, 0x10000, 8, VRING_DESC_F_NEXT, 1);
	set_desc(1, 0x10000, 8, VRING_DESC_F_NEXT, 0);
	offer(0, 0);
	expect_broken(&q, "a loop");
	/* next outside the table. */
	queue(&q, false, false);
	set_desc(0, 0x10000, 8, VRING_DESC_F_NEXT, QSIZE);
	offer(0, 0);
	expect_broken(&q, "next descriptor 8 is outside its table of 8");
	/* a head outside the table. */
	queue(&q, false, false);
	offer(0, QSIZE + 3);
	expect_broken(&q, "names descriptor 11 of 8");
	/* a buffer outside guest RAM, and one that wraps. */
	queue(&q, false, false);
	set_desc(0, 0xfff00000000ull, 8, VRING_DESC_F_WRITE, 0);
	offer(0, 0);
	expect_broken(&q, "is not in guest RAM");
	queue(&q, false, false);
	set_desc(0, UINT64_MAX - 4, 8, VRING_DESC_F_WRITE, 0);
	offer(0, 0);
	expect_broken(&q, "wraps around");
	/* a buffer that starts in RAM and runs past its end. */
	queue(&q, false, false);
	set_desc(0, RAM - 4, 8, VRING_DESC_F_WRITE, 0);
	offer(0, 0);
	expect_broken(&q, "is not in guest RAM");
	/* readable after writable. */
	queue(&q, false, false);
	set_desc(0, 0x10000, 8, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	set_desc(1, 0x10000, 8, 0, 0);
	offer(0, 0);
	expect_broken(&q, "device-readable descriptor 1 after a device-writable one");
	/* the available index jumps by more than the queue. */
	queue(&q, false, false);
	memcpy(g(AVAIL + 2), &idx, 2);
	expect_broken(&q, "more than the queue size");
	/* indirect without the feature; INDIRECT with NEXT; odd and empty tables. */
	queue(&q, false, false);
	set_desc(0, 0x8000, 16, VRING_DESC_F_INDIRECT, 0);
	offer(0, 0);
	expect_broken(&q, "without VIRTIO_RING_F_INDIRECT_DESC");
	queue(&q, false, true);
	set_desc(0, 0x8000, 16, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 1);
	offer(0, 0);
	expect_broken(&q, "INDIRECT and NEXT at once");
	queue(&q, false, true);
	set_desc(0, 0x8000, 20, VRING_DESC_F_INDIRECT, 0);
	offer(0, 0);
	expect_broken(&q, "indirect table of 20 bytes");
	queue(&q, false, true);
	set_desc(0, 0x8000, 0, VRING_DESC_F_INDIRECT, 0);
	offer(0, 0);
	expect_broken(&q, "indirect table of 0 bytes");
	queue(&q, false, true);
	set_desc(0, 0x8000, 16 * (VQ_MAX_INDIRECT + 1), VRING_DESC_F_INDIRECT, 0);
	offer(0, 0);
	expect_broken(&q, "at most 256 entries");
	/* indirect in indirect. */
	queue(&q, false, true);
	memset(t, 0, 32);
	{
		uint64_t a = 0x8100;
		uint32_t l = 16;
		uint16_t f = VRING_DESC_F_INDIRECT;

		memcpy(t, &a, 8);
		memcpy(t + 8, &l, 4);
		memcpy(t + 12, &f, 2);
	}
	set_desc(0, 0x8000, 16, VRING_DESC_F_INDIRECT, 0);
	offer(0, 0);
	expect_broken(&q, "indirect descriptor inside an indirect table");
	/* a loop inside an indirect table. */
	queue(&q, false, true);
	memset(t, 0, 32);
	{
		uint64_t a = 0x10000;
		uint32_t l = 8;
		uint16_t f = VRING_DESC_F_NEXT, n1 = 1, n0 = 0;

		memcpy(t, &a, 8);
		memcpy(t + 8, &l, 4);
		memcpy(t + 12, &f, 2);
		memcpy(t + 14, &n1, 2);
		memcpy(t + 16, &a, 8);
		memcpy(t + 24, &l, 4);
		memcpy(t + 28, &f, 2);
		memcpy(t + 30, &n0, 2);
	}
	set_desc(0, 0x8000, 32, VRING_DESC_F_INDIRECT, 0);
	offer(0, 0);
	expect_broken(&q, "a loop");
	/* an indirect table outside RAM. */
	queue(&q, false, true);
	set_desc(0, 0x7ff000000ull, 32, VRING_DESC_F_INDIRECT, 0);
	offer(0, 0);
	expect_broken(&q, "indirect table at 0x7ff000000 is not in guest RAM");
}

/* ---- the transport, with a device that records what it is asked ---- */

static unsigned notified;

static void dev_notify(struct virtio_mmio *t, unsigned qi)
{
	(void)t;
	(void)qi;
	notified++;
}

static const struct virtio_dev_ops test_ops = {
	.name = "test", .device_id = 42, .nqueues = 2, .queue_max = 16,
	.features = 1ull << 5, .notify = dev_notify};

static void transport_registers_and_negotiation(void **state)
{
	struct virtio_mmio t;
	uint64_t v1 = 1ull << VIRTIO_F_VERSION_1;
	uint32_t s;
	uint16_t w = 0xffff;

	(void)state;
	assert_int_equal(virtio_mmio_init(&t, &test_ops, NULL, &host, &gm, "test", 0xd0000000, 5),
			 0);
	assert_int_equal(rd(&t, VIRTIO_MMIO_MAGIC_VALUE), 0x74726976);
	assert_int_equal(rd(&t, VIRTIO_MMIO_VERSION), 2);
	assert_int_equal(rd(&t, VIRTIO_MMIO_DEVICE_ID), 42);
	wr(&t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	assert_int_equal(rd(&t, VIRTIO_MMIO_DEVICE_FEATURES), 1); /* VERSION_1 is bit 32 */
	wr(&t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	assert_int_equal(rd(&t, VIRTIO_MMIO_DEVICE_FEATURES),
			 (1u << 5) | (1u << VIRTIO_RING_F_EVENT_IDX) |
				 (1u << VIRTIO_RING_F_INDIRECT_DESC));
	/* Without VERSION_1, or with a feature not offered, FEATURES_OK does not stick. */
	negotiate(&t, 1u << 5);
	assert_false(rd(&t, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK);
	negotiate(&t, v1 | (1u << 7));
	assert_false(rd(&t, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK);
	negotiate(&t, v1 | (1u << VIRTIO_RING_F_EVENT_IDX));
	assert_true(rd(&t, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK);
	/* Features are fixed once FEATURES_OK is set. */
	wr(&t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	wr(&t, VIRTIO_MMIO_DRIVER_FEATURES, 0);
	assert_int_equal(t.driver_features, v1 | (1u << VIRTIO_RING_F_EVENT_IDX));
	/* Queues: their maximum, one that does not exist, registers only 32-bit wide. */
	wr(&t, VIRTIO_MMIO_QUEUE_SEL, 1);
	assert_int_equal(rd(&t, VIRTIO_MMIO_QUEUE_NUM_MAX), 16);
	wr(&t, VIRTIO_MMIO_QUEUE_SEL, 2);
	assert_int_equal(rd(&t, VIRTIO_MMIO_QUEUE_NUM_MAX), 0);
	t.dev.ops->write(&t.dev, VIRTIO_MMIO_STATUS, &w, 2);
	assert_true(rd(&t, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK);
	memset(g(DESC), 0, 0x3000);
	setup_queue(&t, 0, DESC);
	assert_int_equal(rd(&t, VIRTIO_MMIO_QUEUE_READY), 1);
	assert_true(t.vq[0].event_idx);
	assert_false(t.vq[0].indirect);
	/* A ready queue's settings cannot change. */
	wr(&t, VIRTIO_MMIO_QUEUE_DESC_LOW, 0x4000);
	assert_int_equal(t.vq[0].desc_gpa, DESC);
	s = VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK |
	    VIRTIO_CONFIG_S_DRIVER_OK;
	wr(&t, VIRTIO_MMIO_STATUS, s);
	assert_int_equal(rd(&t, VIRTIO_MMIO_STATUS), s);
	/* A notification written to QueueNotify reaches the device through its eventfd. */
	notified = 0;
	wr(&t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	virtio_mmio_kick(&t, 0);
	assert_int_equal(notified, 1);
	/* Reset: everything back. */
	wr(&t, VIRTIO_MMIO_STATUS, 0);
	assert_int_equal(rd(&t, VIRTIO_MMIO_STATUS), 0);
	assert_int_equal(t.driver_features, 0);
	wr(&t, VIRTIO_MMIO_QUEUE_SEL, 0);
	assert_int_equal(rd(&t, VIRTIO_MMIO_QUEUE_READY), 0);
	virtio_mmio_kick(&t, 0);
	assert_int_equal(notified, 1); /* a reset device does no work */
	virtio_mmio_destroy(&t);
}

static void a_bad_ring_needs_reset_and_the_device_stops(void **state)
{
	struct virtio_mmio t;

	(void)state;
	log_set_level(LOG_ERR);
	assert_int_equal(virtio_mmio_init(&t, &test_ops, NULL, &host, &gm, "test", 0xd0000000, 5),
			 0);
	negotiate(&t, 1ull << VIRTIO_F_VERSION_1);
	irq_pulses = 0;
	setup_queue(&t, 0, 0x7fff0000ull); /* the descriptor table outside RAM */
	assert_true(rd(&t, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_int_equal(rd(&t, VIRTIO_MMIO_QUEUE_READY), 0);
	/* The driver hears of it: a configuration interrupt. */
	assert_int_equal(irq_pulses, 1);
	assert_int_equal(rd(&t, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_CONFIG);
	wr(&t, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_CONFIG);
	assert_int_equal(rd(&t, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	/* NEEDS_RESET stays whatever the driver writes, until a reset. */
	wr(&t, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	assert_true(rd(&t, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET);
	wr(&t, VIRTIO_MMIO_STATUS, 0);
	assert_int_equal(rd(&t, VIRTIO_MMIO_STATUS), 0);
	assert_int_equal(t.st.needs_reset, 1);
	virtio_mmio_destroy(&t);
	log_set_level(LOG_INFO);
}

/* ---- the entropy device ---- */

static void start_rng(struct virtio_rng *r, const struct rl_cfg *rl)
{
	assert_int_equal(virtio_rng_init(r, &host, &gm, 0xd0000000, 5, rl), 0);
	negotiate(&r->t, 1ull << VIRTIO_F_VERSION_1);
	memset(g(DESC), 0, 0x3000);
	setup_queue(&r->t, 0, DESC);
	wr(&r->t, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
					      VIRTIO_CONFIG_S_FEATURES_OK |
					      VIRTIO_CONFIG_S_DRIVER_OK);
}

static void entropy_fills_buffers(void **state)
{
	static struct virtio_rng r;
	uint8_t *out = g(0x40000);
	uint32_t len;
	unsigned zeros = 0;

	(void)state;
	start_rng(&r, NULL);
	memset(out, 0, 4096);
	set_desc(0, 0x40000, 4096, VRING_DESC_F_WRITE, 0);
	offer(0, 0);
	irq_pulses = 0;
	virtio_mmio_kick(&r.t, 0);
	assert_int_equal(used_idx(), 1);
	memcpy(&len, g(USED + 8), 4);
	assert_int_equal(len, 4096);
	for (unsigned i = 0; i < 4096; i++)
		zeros += !out[i];
	assert_true(zeros < 64); /* about 16 expected */
	assert_int_equal(irq_pulses, 1);
	assert_int_equal(rd(&r.t, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_VRING);
	/* A request with only device-readable buffers gets nothing. */
	set_desc(1, 0x40000, 16, 0, 0);
	offer(1, 1);
	virtio_mmio_kick(&r.t, 0);
	memcpy(&len, g(USED + 16), 4);
	assert_int_equal(len, 0);
	virtio_rng_stop(&r);
	virtio_rng_destroy(&r);
}

static void entropy_rate_limited(void **state)
{
	static struct virtio_rng r;
	const struct rl_cfg rl = {.set = true,
				  .has_bandwidth = true,
				  .bandwidth = {.size = 100, .refill_time_ms = 20}};

	(void)state;
	start_rng(&r, &rl);
	set_desc(0, 0x40000, 64, VRING_DESC_F_WRITE, 0);
	set_desc(1, 0x41000, 64, VRING_DESC_F_WRITE, 0);
	offer(0, 0);
	offer(1, 1);
	timer_fn = NULL;
	virtio_mmio_kick(&r.t, 0);
	/* 64 of 100 tokens: the second request waits for the timer, not consumed. */
	assert_int_equal(used_idx(), 1);
	assert_non_null(timer_fn);
	assert_true(timer_ms >= 1 && timer_ms <= 20);
	assert_int_equal(r.st.throttled, 1);
	usleep(25 * 1000);
	timer_fn(timer_arg, 0);
	assert_int_equal(used_idx(), 2);
	virtio_rng_stop(&r);
	virtio_rng_destroy(&r);
}

/* ---- Firecracker's token buckets ---- */

static void token_buckets(void **state)
{
	struct ratelimit rl;
	const struct rl_cfg c = {.set = true,
				 .has_bandwidth = true,
				 .bandwidth = {.size = 1000, .one_time_burst = 500, .refill_time_ms = 100},
				 .has_ops = true,
				 .ops = {.size = 10, .refill_time_ms = 1000}};
	const uint64_t ms = 1000000;

	(void)state;
	rl_init(&rl, NULL, 0);
	assert_false(rl_active(&rl));
	assert_int_equal(rl_take(&rl, 1ull << 40, 1000000, 0), 0);
	rl_init(&rl, &c, 0);
	assert_true(rl_active(&rl));
	/* The burst first, then the bucket: 1500 bytes at once. */
	assert_int_equal(rl_take(&rl, 1500, 1, 0), 0);
	/* Empty now: 100 bytes take 10 ms to refill. */
	assert_int_equal(rl_take(&rl, 100, 1, 0), 10);
	assert_int_equal(rl_take(&rl, 100, 1, 10 * ms), 0);
	/* More than the bucket holds: allowed from a full bucket, which then owes it. */
	assert_int_equal(rl_take(&rl, 5000, 1, 200 * ms), 0);
	assert_true(rl_take(&rl, 1, 1, 200 * ms) >= 400);
	/* The ops bucket limits too: 10 operations a second. */
	rl_init(&rl, &c, 0);
	for (int i = 0; i < 10; i++)
		assert_int_equal(rl_take(&rl, 1, 1, 0), 0);
	assert_int_equal(rl_take(&rl, 1, 1, 0), 100);
	assert_int_equal(rl.throttled, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_chain_in_and_out),
		cmocka_unit_test(a_buffer_across_two_slots_is_two_pieces),
		cmocka_unit_test(indirect_tables),
		cmocka_unit_test(event_idx_asks_when_to_notify),
		cmocka_unit_test(broken_rings_are_refused),
		cmocka_unit_test(broken_chains_are_refused),
		cmocka_unit_test(transport_registers_and_negotiation),
		cmocka_unit_test(a_bad_ring_needs_reset_and_the_device_stops),
		cmocka_unit_test(entropy_fills_buffers),
		cmocka_unit_test(entropy_rate_limited),
		cmocka_unit_test(token_buckets),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
