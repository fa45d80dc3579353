/*
 * The network device against a fake guest, with a SOCK_SEQPACKET socket pair
 * standing in for the tap (one message per frame, as a tap reads and writes
 * them, virtio-net header included): transmit in any layout, receive into
 * merged and single buffers, the guest without room (frames wait, nothing is
 * dropped), the rate limiters, every malformed transmit frame (dropped,
 * counted, the queue goes on), the config space, and tap_open's refusals.
 */
#include <errno.h>
#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_net.h>
#include <linux/virtio_ring.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/log.h"
#include "devices/virtio/net.h"
#include "virtio_fake.h"

#define NQ      16
#define RXBUF   0x20000 /* receive buffers, 4 KiB apart */
#define TXBUF   0x40000 /* transmit frames */
#define BIG     0x60000 /* a transmit frame over the limit */
#define MAC     {0x06, 0x00, 0xac, 0x10, 0x00, 0x02}

static const uint64_t qbase[2] = {0x4000, 0x8000}; /* desc; avail +0x1000; used +0x2000 */
static struct virtio_net dev;
static int peer = -1; /* the host's end of the "tap" */
static uint16_t navail[2];
static void (*watch_fn)(void *, int);
static void *watch_arg;
static short watch_events;

static void *fake_watch(void *o, int fd, short ev, void (*fn)(void *, int), void *arg)
{
	(void)o;
	(void)fd;
	watch_fn = fn;
	watch_arg = arg;
	watch_events = ev;
	return &watch_fn;
}

static void fake_unwatch(void *o, void *w)
{
	(void)o;
	if (w)
		watch_fn = NULL;
}

static const struct dev_host nhost = {.irq_line = fake_irq,
				      .timer = fake_timer,
				      .timer_cancel = fake_cancel,
				      .watch = fake_watch,
				      .unwatch = fake_unwatch};

static void qdesc(unsigned q, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
		  uint16_t next)
{
	uint8_t *d = g(qbase[q] + 16 * i);

	memcpy(d, &addr, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	memcpy(d + 14, &next, 2);
}

static void qoffer(unsigned q, uint16_t head)
{
	uint16_t idx = (uint16_t)(navail[q] + 1);

	memcpy(g(qbase[q] + 0x1000 + 4 + 2 * (navail[q] % NQ)), &head, 2);
	memcpy(g(qbase[q] + 0x1000 + 2), &idx, 2);
	navail[q]++;
}

static uint16_t qused(unsigned q)
{
	uint16_t v;

	memcpy(&v, g(qbase[q] + 0x2000 + 2), 2);
	return v;
}

static void qused_elem(unsigned q, unsigned n, uint32_t *id, uint32_t *len)
{
	memcpy(id, g(qbase[q] + 0x2000 + 4 + 8 * (n % NQ)), 4);
	memcpy(len, g(qbase[q] + 0x2000 + 8 + 8 * (n % NQ)), 4);
}

static void start(uint64_t features, const struct rl_cfg *rx, const struct rl_cfg *tx,
		  unsigned mtu)
{
	struct virtio_net_cfg nc = {.id = "eth0", .mac = MAC, .mtu = mtu, .rx_rl = rx, .tx_rl = tx};
	int sv[2];

	memset(slot_mem[0], 0, SLOT);
	memset(slot_mem[1], 0, SLOT);
	navail[0] = navail[1] = 0;
	watch_fn = NULL;
	timer_fn = NULL;
	irq_pulses = 0;
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK, 0, sv), 0);
	peer = sv[1];
	assert_int_equal(virtio_net_init(&dev, &nhost, &gm, 0xd0000000, 5, sv[0], &nc), 0);
	negotiate(&dev.t, features);
	assert_true(rd(&dev.t, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK);
	for (unsigned q = 0; q < 2; q++) {
		wr(&dev.t, VIRTIO_MMIO_QUEUE_SEL, q);
		wr(&dev.t, VIRTIO_MMIO_QUEUE_NUM, NQ);
		wr(&dev.t, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)qbase[q]);
		wr(&dev.t, VIRTIO_MMIO_QUEUE_DESC_HIGH, 0);
		wr(&dev.t, VIRTIO_MMIO_QUEUE_AVAIL_LOW, (uint32_t)qbase[q] + 0x1000);
		wr(&dev.t, VIRTIO_MMIO_QUEUE_AVAIL_HIGH, 0);
		wr(&dev.t, VIRTIO_MMIO_QUEUE_USED_LOW, (uint32_t)qbase[q] + 0x2000);
		wr(&dev.t, VIRTIO_MMIO_QUEUE_USED_HIGH, 0);
		wr(&dev.t, VIRTIO_MMIO_QUEUE_READY, 1);
	}
	wr(&dev.t, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
					       VIRTIO_CONFIG_S_FEATURES_OK |
					       VIRTIO_CONFIG_S_DRIVER_OK);
}

static void stop(void)
{
	virtio_net_stop(&dev);
	virtio_net_destroy(&dev);
	close(peer);
	peer = -1;
}

static uint64_t base_features(void)
{
	return (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_NET_F_MAC);
}

static struct virtio_net_stats stats(void)
{
	struct virtio_net_stats st;

	virtio_net_stats(&dev, &st);
	return st;
}

/* A frame of @len bytes (Ethernet header included) with a recognisable pattern. */
static void pattern(uint8_t *p, uint32_t len, uint8_t seed)
{
	for (uint32_t i = 0; i < len; i++)
		p[i] = (uint8_t)(seed + i * 7);
}

/* Header and frame at @gpa, byte by byte: the range may cross from one slot to the other. */
static void fill_tx(uint64_t gpa, uint32_t frame, uint8_t seed, uint8_t flags, uint8_t gso)
{
	static uint8_t p[NET_HDR_LEN + 70000];

	memset(p, 0, NET_HDR_LEN);
	p[0] = flags;
	p[1] = gso;
	p[10] = 0x55; /* num_buffers: the device clears it */
	pattern(p + NET_HDR_LEN, frame, seed);
	for (uint32_t i = 0; i < NET_HDR_LEN + frame; i++)
		*(uint8_t *)g(gpa + i) = p[i];
}

static void expect_frame(uint32_t frame, uint8_t seed)
{
	static uint8_t buf[NET_HDR_LEN + NET_FRAME_MAX + 64], want[NET_FRAME_MAX];
	ssize_t n = recv(peer, buf, sizeof(buf), 0);

	assert_int_equal(n, NET_HDR_LEN + frame);
	assert_int_equal(buf[10], 0);
	pattern(want, frame, seed);
	assert_memory_equal(buf + NET_HDR_LEN, want, frame);
}

static void transmit_in_any_layout(void **state)
{
	(void)state;
	start(base_features(), NULL, NULL, 0);
	/* Header and frame in one buffer. */
	fill_tx(TXBUF, 1500, 1, 0, 0);
	qdesc(1, 0, TXBUF, NET_HDR_LEN + 1500, 0, 0);
	qoffer(1, 0);
	/* Header split over two buffers, frame over three (one of them crossing a slot). */
	fill_tx(0x7fc00, 3000, 9, 0, 0); /* 0x7fc00 + 3012 crosses 0x80000 */
	qdesc(1, 1, 0x7fc00, 5, VRING_DESC_F_NEXT, 2);
	qdesc(1, 2, 0x7fc05, 7, VRING_DESC_F_NEXT, 3);
	qdesc(1, 3, 0x7fc0c, 100, VRING_DESC_F_NEXT, 4);
	qdesc(1, 4, 0x7fc70, 3000 - 100, 0, 0);
	qoffer(1, 1);
	virtio_mmio_kick(&dev.t, 1);
	assert_int_equal(qused(1), 2);
	expect_frame(1500, 1);
	expect_frame(3000, 9);
	assert_int_equal(stats().tx_packets_count, 2);
	assert_int_equal(stats().tx_bytes_count, 4500);
	assert_true(irq_pulses >= 1);
	stop();
}

static void malformed_transmit_frames_are_dropped_and_counted(void **state)
{
	uint32_t id, len;

	(void)state;
	start(base_features(), NULL, NULL, 0);
	qdesc(1, 0, TXBUF, 8, 0, 0); /* shorter than the header */
	qoffer(1, 0);
	fill_tx(BIG, 70000, 3, 0, 0); /* over 64 KiB + 14 */
	qdesc(1, 1, BIG, NET_HDR_LEN + 40000, VRING_DESC_F_NEXT, 2);
	qdesc(1, 2, BIG + NET_HDR_LEN + 40000, 30000, 0, 0);
	qoffer(1, 1);
	fill_tx(TXBUF + 0x1000, 1000, 4, 0, VIRTIO_NET_HDR_GSO_TCPV4); /* TSO4 not acked */
	qdesc(1, 3, TXBUF + 0x1000, NET_HDR_LEN + 1000, 0, 0);
	qoffer(1, 3);
	fill_tx(TXBUF + 0x2000, 1000, 5, VIRTIO_NET_HDR_F_NEEDS_CSUM, 0); /* CSUM not acked */
	qdesc(1, 4, TXBUF + 0x2000, NET_HDR_LEN + 1000, 0, 0);
	qoffer(1, 4);
	fill_tx(TXBUF + 0x3000, 60, 6, 0, 0); /* and a good one goes through */
	qdesc(1, 5, TXBUF + 0x3000, NET_HDR_LEN + 60, 0, 0);
	qoffer(1, 5);
	virtio_mmio_kick(&dev.t, 1);
	assert_int_equal(qused(1), 5);
	qused_elem(1, 0, &id, &len);
	assert_int_equal(id, 0);
	expect_frame(60, 6);
	assert_int_equal(recv(peer, &id, 4, 0), -1); /* nothing else reached the tap */
	assert_int_equal(stats().tx_malformed_header, 1);
	assert_int_equal(stats().tx_malformed_size, 1);
	assert_int_equal(stats().tx_malformed_offload, 2);
	assert_int_equal(stats().tx_malformed_frames, 4);
	assert_int_equal(stats().tx_packets_count, 1);
	assert_int_equal(dev.t.st.needs_reset, 0);
	stop();
}

static void offloads_pass_when_negotiated(void **state)
{
	(void)state;
	start(base_features() | (1ull << VIRTIO_NET_F_CSUM) | (1ull << VIRTIO_NET_F_HOST_TSO4),
	      NULL, NULL, 0);
	fill_tx(TXBUF, 9000, 2, VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4);
	qdesc(1, 0, TXBUF, NET_HDR_LEN + 9000, 0, 0);
	qoffer(1, 0);
	fill_tx(TXBUF + 0x4000, 9000, 2, 0, VIRTIO_NET_HDR_GSO_TCPV6); /* TSO6 not acked */
	qdesc(1, 1, TXBUF + 0x4000, NET_HDR_LEN + 9000, 0, 0);
	qoffer(1, 1);
	virtio_mmio_kick(&dev.t, 1);
	assert_int_equal(qused(1), 2);
	expect_frame(9000, 2);
	assert_int_equal(stats().tx_malformed_offload, 1);
	stop();
}

/* The host sends a frame of @len bytes with pattern @seed (header all zero). */
static void host_send(uint32_t len, uint8_t seed)
{
	static uint8_t buf[NET_HDR_LEN + NET_FRAME_MAX];

	memset(buf, 0, NET_HDR_LEN);
	pattern(buf + NET_HDR_LEN, len, seed);
	assert_int_equal(send(peer, buf, NET_HDR_LEN + len, 0), NET_HDR_LEN + len);
}

/* The driver posts @n receive buffers of @len bytes from slot @first. */
static void post_rx(unsigned first, unsigned n, uint32_t len)
{
	for (unsigned i = first; i < first + n; i++) {
		qdesc(0, i % NQ, RXBUF + 0x1000 * (i % NQ), len, VRING_DESC_F_WRITE, 0);
		qoffer(0, (uint16_t)(i % NQ));
	}
}

static void tap_readable(void)
{
	assert_non_null(watch_fn);
	watch_fn(watch_arg, POLLIN);
}

static void receive_merges_buffers(void **state)
{
	uint8_t want[3000];
	uint32_t id, len, off = 0;
	uint16_t nb;

	(void)state;
	start(base_features() | (1ull << VIRTIO_NET_F_MRG_RXBUF), NULL, NULL, 0);
	post_rx(0, 4, 1024);
	virtio_mmio_kick(&dev.t, 0); /* buffers: the device starts reading the tap */
	assert_non_null(watch_fn);
	assert_int_equal(watch_events, POLLIN);
	host_send(3000, 7);
	host_send(100, 8);
	tap_readable();
	assert_int_equal(qused(0), 4); /* 3012 bytes in three buffers, then one */
	memcpy(&nb, g(RXBUF + 10), 2);
	assert_int_equal(nb, 3);
	pattern(want, 3000, 7);
	for (unsigned i = 0; i < 3; i++) {
		uint8_t *b = g(RXBUF + 0x1000 * i);
		uint32_t skip = i ? 0 : NET_HDR_LEN;

		qused_elem(0, i, &id, &len);
		assert_int_equal(id, i);
		assert_int_equal(len, i < 2 ? 1024 : 3012 - 2048);
		assert_memory_equal(b + skip, want + off, len - skip);
		off += len - skip;
	}
	qused_elem(0, 3, &id, &len);
	assert_int_equal(len, 112);
	memcpy(&nb, g(RXBUF + 0x3000 + 10), 2);
	assert_int_equal(nb, 1);
	assert_int_equal(stats().rx_packets_count, 2);
	assert_int_equal(stats().rx_bytes_count, 3100);
	stop();
}

static void receive_waits_for_room_and_drops_nothing(void **state)
{
	uint32_t id, len;

	(void)state;
	start(base_features() | (1ull << VIRTIO_NET_F_MRG_RXBUF), NULL, NULL, 0);
	post_rx(0, 1, 2048);
	virtio_mmio_kick(&dev.t, 0);
	host_send(1500, 1);
	host_send(3000, 2); /* needs two buffers: only... */
	host_send(200, 3);
	tap_readable();
	/* The first fits; the second waits (one frame read, the rest still in the tap). */
	assert_int_equal(qused(0), 1);
	assert_null(watch_fn); /* no room: the device stopped reading */
	assert_true(stats().no_rx_avail_buffer >= 1);
	post_rx(1, 1, 2048);
	virtio_mmio_kick(&dev.t, 0);
	assert_int_equal(qused(0), 1); /* one buffer is not enough for 3012 bytes */
	post_rx(2, 2, 2048);
	virtio_mmio_kick(&dev.t, 0);
	assert_int_equal(qused(0), 4); /* the 3000 (two buffers), then the 200 */
	qused_elem(0, 3, &id, &len);
	assert_int_equal(id, 3);
	assert_int_equal(len, 212);
	assert_int_equal(stats().rx_packets_count, 3);
	assert_int_equal(stats().rx_dropped_too_big, 0);
	stop();
}

static void receive_without_merging_needs_one_buffer(void **state)
{
	uint32_t id, len;

	(void)state;
	start(base_features(), NULL, NULL, 0);
	post_rx(0, 2, 1600);
	virtio_mmio_kick(&dev.t, 0);
	host_send(2000, 1); /* larger than any buffer: dropped, counted */
	host_send(1514, 2);
	tap_readable();
	assert_int_equal(qused(0), 1);
	qused_elem(0, 0, &id, &len);
	assert_int_equal(id, 0); /* the buffer the big one could not use is reused */
	assert_int_equal(len, NET_HDR_LEN + 1514);
	assert_int_equal(stats().rx_dropped_too_big, 1);
	stop();
}

static void rate_limiters_delay_frames(void **state)
{
	struct rl_cfg rl = {.set = true,
			    .has_bandwidth = true,
			    .bandwidth = {.size = 2000, .refill_time_ms = 100}};

	(void)state;
	start(base_features() | (1ull << VIRTIO_NET_F_MRG_RXBUF), &rl, &rl, 0);
	/* Transmit: 1500 bytes go, the next 1500 wait for the bucket. */
	for (unsigned i = 0; i < 2; i++) {
		fill_tx(TXBUF + 0x1000 * i, 1500, (uint8_t)i, 0, 0);
		qdesc(1, i, TXBUF + 0x1000 * i, NET_HDR_LEN + 1500, 0, 0);
		qoffer(1, (uint16_t)i);
	}
	virtio_mmio_kick(&dev.t, 1);
	assert_int_equal(qused(1), 1);
	assert_non_null(timer_fn);
	assert_int_equal(stats().tx_rate_limiter_throttled, 1);
	usleep(100 * 1000);
	timer_fn(timer_arg, 0);
	assert_int_equal(qused(1), 2);
	expect_frame(1500, 0);
	expect_frame(1500, 1);
	/* Receive: the same. */
	timer_fn = NULL;
	post_rx(0, 4, 4096);
	virtio_mmio_kick(&dev.t, 0);
	host_send(1500, 1);
	host_send(1500, 2);
	tap_readable();
	assert_int_equal(qused(0), 1);
	assert_non_null(timer_fn);
	assert_null(watch_fn); /* throttled: not reading */
	usleep(100 * 1000);
	timer_fn(timer_arg, 0);
	assert_int_equal(qused(0), 2);
	assert_int_equal(stats().rx_rate_limiter_throttled, 1);
	stop();
}

static void config_space_and_features(void **state)
{
	uint8_t mac[6] = MAC, cfg[12];

	(void)state;
	start(base_features(), NULL, NULL, 9000);
	for (unsigned i = 0; i < sizeof(cfg); i++)
		dev.t.dev.ops->read(&dev.t.dev, 0x100 + i, &cfg[i], 1);
	assert_memory_equal(cfg, mac, 6);
	assert_int_equal(cfg[10] | cfg[11] << 8, 9000);
	assert_true(virtio_mmio_offered(&dev.t) & (1ull << VIRTIO_NET_F_MTU));
	assert_true(virtio_mmio_offered(&dev.t) & (1ull << VIRTIO_NET_F_GUEST_TSO4));
	stop();
	start(base_features(), NULL, NULL, 0);
	assert_false(virtio_mmio_offered(&dev.t) & (1ull << VIRTIO_NET_F_MTU));
	stop();
}

static void short_receive_buffer_needs_reset(void **state)
{
	(void)state;
	start(base_features() | (1ull << VIRTIO_NET_F_MRG_RXBUF), NULL, NULL, 0);
	qdesc(0, 0, RXBUF, 8, VRING_DESC_F_WRITE, 0);
	qoffer(0, 0);
	virtio_mmio_kick(&dev.t, 0);
	host_send(100, 1);
	tap_readable();
	assert_int_equal(qused(0), 0);
	assert_int_equal(dev.t.st.needs_reset, 1);
	stop();
}

static void tap_open_refuses(void **state)
{
	char why[NET_WHY_LEN];

	(void)state;
	assert_int_equal(tap_open("hugevmm-none0", why, sizeof(why)), -ENODEV);
	assert_non_null(strstr(why, "ip tuntap add dev hugevmm-none0 mode tap"));
	assert_int_equal(tap_open("lo", why, sizeof(why)), -ENODEV);
	assert_non_null(strstr(why, "not a tap"));
	assert_int_equal(tap_open("a-name-much-too-long", why, sizeof(why)), -EINVAL);
	assert_int_equal(tap_open("", why, sizeof(why)), -EINVAL);
}

static int group_setup(void **state)
{
	(void)state;
	return fake_mem_setup();
}

static int group_teardown(void **state)
{
	(void)state;
	return fake_mem_teardown();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(transmit_in_any_layout),
		cmocka_unit_test(malformed_transmit_frames_are_dropped_and_counted),
		cmocka_unit_test(offloads_pass_when_negotiated),
		cmocka_unit_test(receive_merges_buffers),
		cmocka_unit_test(receive_waits_for_room_and_drops_nothing),
		cmocka_unit_test(receive_without_merging_needs_one_buffer),
		cmocka_unit_test(rate_limiters_delay_frames),
		cmocka_unit_test(config_space_and_features),
		cmocka_unit_test(short_receive_buffer_needs_reset),
		cmocka_unit_test(tap_open_refuses),
	};

	log_set_level(LOG_ERR); /* the guest's broken rules are expected here */
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
