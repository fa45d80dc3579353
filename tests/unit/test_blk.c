/*
 * The block device against a fake guest and real files through io_uring:
 * every request type, any layout of header, data and status, the data paths
 * of a direct drive (fixed buffers, fallback), the rate limiter, a new image
 * after boot, the image checks and the lock, and every bad request a guest
 * can send (IOERR or DEVICE_NEEDS_RESET, never a crash).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_ring.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/log.h"
#include "devices/virtio/blk.h"
#include "tmpdir.h"
#include "virtio_fake.h"

#define HDR    0x10000 /* request header */
#define DATA   0x20000 /* data buffers, 4 KiB aligned */
#define STATUS 0x18000 /* status bytes, one per descriptor slot */
#define IMG_SECTORS 128 /* 64 KiB images */

static struct blk_engine *eng;
static struct virtio_blk dev;
static unsigned next_avail;

static int group_setup(void **state)
{
	return setup(state) ?: fake_mem_setup();
}

static int group_teardown(void **state)
{
	fake_mem_teardown();
	return teardown(state);
}

/* An image of @sectors where each sector holds its number in every byte. */
static void make_image(const char *name, unsigned sectors, char *path, size_t len)
{
	uint8_t s[BLK_SECTOR];
	int fd;

	snprintf(path, len, "%s/%s", tmpdir, name);
	unlink(path);
	fd = open(path, O_CREAT | O_RDWR, 0600);
	assert_true(fd >= 0);
	for (unsigned i = 0; i < sectors; i++) {
		memset(s, (int)(i & 0xff), sizeof(s));
		assert_int_equal(pwrite(fd, s, sizeof(s), (off_t)i * BLK_SECTOR), BLK_SECTOR);
	}
	close(fd);
}

static void start(const char *path, bool ro, bool direct, bool flush, const struct rl_cfg *rl)
{
	struct virtio_blk_cfg cfg = {.id = "rootfs", .flush = flush, .rl = rl};
	struct blk_file f;
	char why[BLK_WHY_LEN];

	assert_int_equal(blk_engine_create(&eng, 64, why, sizeof(why)), 0);
	if (blk_file_open(&f, path, ro, direct, why, sizeof(why)))
		fail_msg("%s", why);
	assert_int_equal(virtio_blk_init(&dev, &host, &gm, 0xd0000000, 5, eng, &f, &cfg), 0);
	negotiate(&dev.t, virtio_mmio_offered(&dev.t) & ~(1ull << VIRTIO_RING_F_EVENT_IDX));
	memset(g(DESC), 0, 0x3000);
	setup_queue(&dev.t, 0, DESC);
	wr(&dev.t, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
					       VIRTIO_CONFIG_S_FEATURES_OK |
					       VIRTIO_CONFIG_S_DRIVER_OK);
	next_avail = 0;
	irq_pulses = 0;
}

static void stop(void)
{
	virtio_blk_stop(&dev);
	blk_engine_destroy(eng);
	virtio_blk_destroy(&dev);
	eng = NULL;
}

/* Kick, then reap until nothing is in flight (2 s at most). */
static void run(void)
{
	virtio_mmio_kick(&dev.t, 0);
	for (int i = 0; i < 200 && dev.inflight; i++) {
		struct pollfd p = {.fd = blk_engine_fd(eng), .events = POLLIN};

		(void)poll(&p, 1, 10);
		blk_engine_reap(eng);
	}
	assert_int_equal(dev.inflight, 0);
}

static void header(uint64_t gpa, uint32_t type, uint64_t sector)
{
	struct virtio_blk_outhdr h = {.type = type, .sector = sector};

	memcpy(g(gpa), &h, sizeof(h));
}

/* The used entry of the @n-th completion: its length. */
static uint32_t used_len(unsigned n)
{
	uint32_t len;

	memcpy(&len, g(USED + 4 + 8 * (n % QSIZE) + 4), 4);
	return len;
}

/* A chain of @n (addr, len, writable) pieces at descriptor 0, offered; returns the status gpa. */
struct piece {
	uint64_t gpa;
	uint32_t len;
	bool w;
};

static void submit(const struct piece *p, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		set_desc(i, p[i].gpa, p[i].len,
			 (uint16_t)((p[i].w ? VRING_DESC_F_WRITE : 0) |
				    (i + 1 < n ? VRING_DESC_F_NEXT : 0)),
			 (uint16_t)(i + 1));
	offer((uint16_t)next_avail++, 0);
}

/* A one-piece-each request: header, data (@len bytes at DATA, @w), status. */
static uint8_t request(uint32_t type, uint64_t sector, uint32_t len, bool w)
{
	struct piece p[3] = {{HDR, 16, false}, {DATA, len, w}, {STATUS, 1, true}};

	header(HDR, type, sector);
	*(uint8_t *)g(STATUS) = 0xee;
	if (len)
		submit(p, 3);
	else
		submit((struct piece[]){p[0], p[2]}, 2);
	run();
	return *(uint8_t *)g(STATUS);
}

static void file_bytes(const char *path, uint64_t off, void *out, size_t len)
{
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, out, len, (off_t)off), (ssize_t)len);
	close(fd);
}

static void reads_and_writes_in_any_layout(void **state)
{
	char path[256];
	uint8_t buf[8192], *d = g(DATA);

	(void)state;
	make_image("rw.img", IMG_SECTORS, path, sizeof(path));
	start(path, false, false, false, NULL);
	assert_int_equal(rd(&dev.t, VIRTIO_MMIO_CONFIG), IMG_SECTORS); /* capacity */
	assert_int_equal(rd(&dev.t, VIRTIO_MMIO_CONFIG + 20), BLK_SECTOR); /* blk_size */
	assert_int_equal(rd(&dev.t, VIRTIO_MMIO_CONFIG + 12), BLK_SEG_MAX);

	/* OUT, three data segments of 512 + 4096 + 3584, the first sharing the header's buffer. */
	header(HDR, VIRTIO_BLK_T_OUT, 2);
	memset(g(HDR + 16), 0xa1, 512);
	memset(g(DATA), 0xb2, 4096);
	memset(g(DATA + 0x2000), 0xc3, 3584);
	submit((struct piece[]){{HDR, 16 + 512, false},
				{DATA, 4096, false},
				{DATA + 0x2000, 3584, false},
				{STATUS, 1, true}},
	       4);
	*(uint8_t *)g(STATUS) = 0xee;
	run();
	assert_int_equal(*(uint8_t *)g(STATUS), VIRTIO_BLK_S_OK);
	assert_int_equal(used_len(0), 1);
	file_bytes(path, 2 * BLK_SECTOR, buf, sizeof(buf));
	assert_int_equal(buf[0], 0xa1);
	assert_int_equal(buf[511], 0xa1);
	assert_int_equal(buf[512], 0xb2);
	assert_int_equal(buf[4607], 0xb2);
	assert_int_equal(buf[4608], 0xc3);
	assert_int_equal(buf[8191], 0xc3);

	/* IN into one buffer whose last byte is the status; the header split in two. */
	header(HDR, VIRTIO_BLK_T_IN, 1);
	memset(d, 0, 8192 + 512 + 1);
	submit((struct piece[]){{HDR, 5, false}, {HDR + 5, 11, false}, {DATA, 9 * 512 + 1, true}},
	       3);
	d[9 * 512] = 0xee;
	run();
	assert_int_equal(d[9 * 512], VIRTIO_BLK_S_OK);
	assert_int_equal(used_len(1), 9 * 512 + 1);
	assert_int_equal(d[0], 1);      /* sector 1, untouched */
	assert_int_equal(d[512], 0xa1); /* sector 2 */
	assert_int_equal(d[1024], 0xb2);
	assert_int_equal(dev.st.read_count, 1);
	assert_int_equal(dev.st.write_count, 1);
	assert_int_equal(dev.st.read_bytes, 9 * 512);
	assert_int_equal(dev.st.write_bytes, 8192);
	assert_true(irq_pulses >= 2);
	stop();
}

static void flush_and_get_id(void **state)
{
	char path[256];

	(void)state;
	make_image("flush.img", IMG_SECTORS, path, sizeof(path));
	start(path, false, false, true, NULL);
	assert_true(virtio_mmio_offered(&dev.t) & (1ull << VIRTIO_BLK_F_FLUSH));
	assert_int_equal(request(VIRTIO_BLK_T_FLUSH, 0, 0, false), VIRTIO_BLK_S_OK);
	assert_int_equal(dev.st.flush_count, 1);
	memset(g(DATA), 0xff, 32);
	assert_int_equal(request(VIRTIO_BLK_T_GET_ID, 0, 32, true), VIRTIO_BLK_S_OK);
	assert_string_equal((char *)g(DATA), "rootfs");
	assert_int_equal(*(uint8_t *)g(DATA + 6), 0); /* NUL-padded to 20 bytes */
	assert_int_equal(used_len(1), BLK_ID_BYTES + 1);
	stop();
	/* Unsafe: no flush feature, and a flush anyway is unsupported. */
	start(path, false, false, false, NULL);
	assert_false(virtio_mmio_offered(&dev.t) & (1ull << VIRTIO_BLK_F_FLUSH));
	assert_int_equal(request(VIRTIO_BLK_T_FLUSH, 0, 0, false), VIRTIO_BLK_S_UNSUPP);
	stop();
}

static void discard_and_write_zeroes(void **state)
{
	struct virtio_blk_discard_write_zeroes s = {.sector = 4, .num_sectors = 8};
	char path[256];
	uint8_t buf[8 * BLK_SECTOR], zero[sizeof(buf)] = {0};

	(void)state;
	make_image("zero.img", IMG_SECTORS, path, sizeof(path));
	start(path, false, false, false, NULL);
	assert_true(virtio_mmio_offered(&dev.t) & (1ull << VIRTIO_BLK_F_WRITE_ZEROES));
	memcpy(g(DATA), &s, sizeof(s));
	assert_int_equal(request(VIRTIO_BLK_T_WRITE_ZEROES, 0, sizeof(s), false),
			 VIRTIO_BLK_S_OK);
	file_bytes(path, 4 * BLK_SECTOR, buf, sizeof(buf));
	assert_memory_equal(buf, zero, sizeof(buf));
	file_bytes(path, 12 * BLK_SECTOR, buf, 1);
	assert_int_equal(buf[0], 12); /* the next sector is untouched */
	/* With unmap: a hole, still zeros. */
	s.sector = 20;
	s.flags = VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;
	memcpy(g(DATA), &s, sizeof(s));
	assert_int_equal(request(VIRTIO_BLK_T_WRITE_ZEROES, 0, sizeof(s), false),
			 VIRTIO_BLK_S_OK);
	file_bytes(path, 20 * BLK_SECTOR, buf, sizeof(buf));
	assert_memory_equal(buf, zero, sizeof(buf));
	/* Discard: fine; discard with unmap or an unknown flag: unsupported. */
	s.flags = 0;
	memcpy(g(DATA), &s, sizeof(s));
	assert_int_equal(request(VIRTIO_BLK_T_DISCARD, 0, sizeof(s), false), VIRTIO_BLK_S_OK);
	s.flags = VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;
	memcpy(g(DATA), &s, sizeof(s));
	assert_int_equal(request(VIRTIO_BLK_T_DISCARD, 0, sizeof(s), false), VIRTIO_BLK_S_UNSUPP);
	/* Past the end. */
	s = (struct virtio_blk_discard_write_zeroes){.sector = IMG_SECTORS - 1, .num_sectors = 2};
	memcpy(g(DATA), &s, sizeof(s));
	assert_int_equal(request(VIRTIO_BLK_T_WRITE_ZEROES, 0, sizeof(s), false),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(dev.st.discard_count, 2);
	assert_int_equal(dev.st.write_zeroes_count, 3);
	stop();
}

static void read_only_drives_refuse_writes(void **state)
{
	char path[256];
	uint8_t b;

	(void)state;
	make_image("ro.img", IMG_SECTORS, path, sizeof(path));
	chmod(path, 0400);
	start(path, true, false, false, NULL);
	assert_true(virtio_mmio_offered(&dev.t) & (1ull << VIRTIO_BLK_F_RO));
	assert_false(virtio_mmio_offered(&dev.t) & (1ull << VIRTIO_BLK_F_DISCARD));
	memset(g(DATA), 0x77, 512);
	assert_int_equal(request(VIRTIO_BLK_T_OUT, 0, 512, false), VIRTIO_BLK_S_IOERR);
	file_bytes(path, 0, &b, 1);
	assert_int_equal(b, 0);
	assert_int_equal(request(VIRTIO_BLK_T_IN, 3, 512, true), VIRTIO_BLK_S_OK);
	assert_int_equal(*(uint8_t *)g(DATA), 3);
	stop();
	chmod(path, 0600);
}

static void bad_requests_get_errors_not_crashes(void **state)
{
	char path[256];

	(void)state;
	make_image("bad.img", IMG_SECTORS, path, sizeof(path));
	start(path, false, false, false, NULL);
	/* Sector ranges past the capacity, and one that wraps around. */
	assert_int_equal(request(VIRTIO_BLK_T_IN, IMG_SECTORS, 512, true), VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(VIRTIO_BLK_T_IN, IMG_SECTORS - 1, 1024, true),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(request(VIRTIO_BLK_T_OUT, UINT64_MAX, 512, false), VIRTIO_BLK_S_IOERR);
	/* Not a whole number of sectors. */
	assert_int_equal(request(VIRTIO_BLK_T_IN, 0, 100, true), VIRTIO_BLK_S_IOERR);
	/* An IN whose data buffer the device may not write. */
	assert_int_equal(request(VIRTIO_BLK_T_IN, 0, 512, false), VIRTIO_BLK_S_IOERR);
	/* An unknown type. */
	assert_int_equal(request(99, 0, 0, false), VIRTIO_BLK_S_UNSUPP);
	/* A header too short. */
	*(uint8_t *)g(STATUS) = 0xee;
	submit((struct piece[]){{HDR, 8, false}, {STATUS, 1, true}}, 2);
	run();
	assert_int_equal(*(uint8_t *)g(STATUS), VIRTIO_BLK_S_IOERR);
	assert_int_equal(dev.st.invalid, 6);
	assert_int_equal(dev.st.io_errors, 0); /* the guest's mistakes, not the host's */
	assert_false(rd(&dev.t, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET);
	/* No status byte at all: nothing to answer in, the device needs a reset. */
	header(HDR, VIRTIO_BLK_T_IN, 0);
	submit((struct piece[]){{HDR, 16, false}, {DATA, 512, false}}, 2);
	run();
	assert_true(rd(&dev.t, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET);
	stop();
}

static void host_errors_become_ioerr(void **state)
{
	char path[256];
	int ro;

	(void)state;
	make_image("eio.img", IMG_SECTORS, path, sizeof(path));
	start(path, false, false, false, NULL);
	/* The host refuses the write (the descriptor under the device is now read-only). */
	ro = open(path, O_RDONLY);
	assert_true(ro >= 0);
	assert_int_equal(dup2(ro, dev.b->f.fd), dev.b->f.fd);
	close(ro);
	memset(g(DATA), 0x11, 512);
	assert_int_equal(request(VIRTIO_BLK_T_OUT, 0, 512, false), VIRTIO_BLK_S_IOERR);
	assert_int_equal(dev.st.io_errors, 1);
	assert_int_equal(dev.st.invalid, 0);
	/* The device goes on. */
	assert_int_equal(request(VIRTIO_BLK_T_IN, 5, 512, true), VIRTIO_BLK_S_OK);
	assert_int_equal(*(uint8_t *)g(DATA), 5);
	assert_false(rd(&dev.t, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET);
	stop();
}

static void reads_past_the_end_of_the_file_are_zeros(void **state)
{
	char path[256];
	uint8_t *d = g(DATA);

	(void)state;
	make_image("short.img", 16, path, sizeof(path));
	start(path, false, false, false, NULL);
	/* The file shrinks under the VM: the capacity says 16 sectors, the file has 1000 bytes. */
	assert_int_equal(truncate(path, 1000), 0);
	memset(d, 0xee, 4096);
	assert_int_equal(request(VIRTIO_BLK_T_IN, 0, 4096, true), VIRTIO_BLK_S_OK);
	assert_int_equal(d[0], 0);
	assert_int_equal(d[512], 1);
	assert_int_equal(d[999], 1);
	assert_int_equal(d[1000], 0);
	assert_int_equal(d[4095], 0);
	stop();
}

static void direct_drives_use_fixed_buffers(void **state)
{
	struct iovec ram[2] = {{slot_mem[0], SLOT}, {slot_mem[1], SLOT}};
	int res[2];
	char path[256];
	uint8_t *d = g(DATA);

	(void)state;
	make_image("direct.img", IMG_SECTORS, path, sizeof(path));
	start(path, false, true, false, NULL);
	assert_true(dev.b != NULL);
	assert_int_equal(blk_engine_register(eng, ram, 2, res), 0);
	assert_int_equal(res[0], 0);
	assert_int_equal(res[1], 0);
	assert_int_equal(request(VIRTIO_BLK_T_IN, 8, 4096, true), VIRTIO_BLK_S_OK);
	assert_int_equal(d[0], 8);
	assert_int_equal(d[4095], 15);
	assert_int_equal(dev.st.fixed_count, 1);
	memset(d, 0x5a, 4096);
	assert_int_equal(request(VIRTIO_BLK_T_OUT, 8, 4096, false), VIRTIO_BLK_S_OK);
	assert_int_equal(dev.st.fixed_count, 2);
	/* A buffer that misses the O_DIRECT memory rule: the buffered descriptor serves it. */
	stop();
	start(path, false, true, false, NULL);
	assert_int_equal(blk_engine_register(eng, ram, 2, res), 0);
	/* This test's rule: 4 KiB (the file system's may be looser). */
	dev.b->f.dio_mem_align = 4096;
	set_desc(0, HDR, 16, VRING_DESC_F_NEXT, 1);
	header(HDR, VIRTIO_BLK_T_IN, 8);
	set_desc(1, DATA + 512, 512, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 2);
	set_desc(2, STATUS, 1, VRING_DESC_F_WRITE, 0);
	offer((uint16_t)next_avail++, 0);
	run();
	assert_int_equal(*(uint8_t *)g(STATUS), VIRTIO_BLK_S_OK);
	assert_int_equal(d[512], 0x5a);
	assert_int_equal(dev.st.fixed_fallbacks, 1);
	assert_int_equal(dev.st.fixed_count, 0);
	stop();
}

static void many_requests_in_flight(void **state)
{
	char path[256];

	(void)state;
	make_image("qd.img", IMG_SECTORS, path, sizeof(path));
	start(path, false, false, false, NULL);
	for (unsigned i = 0; i < QSIZE; i++) {
		header(HDR + 32 * i, VIRTIO_BLK_T_IN, i);
		set_desc(3 * i, HDR + 32 * i, 16, VRING_DESC_F_NEXT, (uint16_t)(3 * i + 1));
		set_desc(3 * i + 1, DATA + 4096 * i, 512, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT,
			 (uint16_t)(3 * i + 2));
		set_desc(3 * i + 2, STATUS + i, 1, VRING_DESC_F_WRITE, 0);
	}
	/* QSIZE chains need 3 * QSIZE descriptors: a 32-entry table via a bigger queue. */
	wr(&dev.t, VIRTIO_MMIO_STATUS, 0);
	negotiate(&dev.t, 1ull << VIRTIO_F_VERSION_1);
	wr(&dev.t, VIRTIO_MMIO_QUEUE_SEL, 0);
	wr(&dev.t, VIRTIO_MMIO_QUEUE_NUM, 32);
	wr(&dev.t, VIRTIO_MMIO_QUEUE_DESC_LOW, DESC);
	wr(&dev.t, VIRTIO_MMIO_QUEUE_AVAIL_LOW, AVAIL);
	wr(&dev.t, VIRTIO_MMIO_QUEUE_USED_LOW, USED + 0x1000);
	wr(&dev.t, VIRTIO_MMIO_QUEUE_READY, 1);
	wr(&dev.t, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
					       VIRTIO_CONFIG_S_FEATURES_OK |
					       VIRTIO_CONFIG_S_DRIVER_OK);
	for (uint16_t i = 0; i < QSIZE; i++) {
		uint16_t head = (uint16_t)(3 * i), idx = (uint16_t)(i + 1);

		memcpy(g(AVAIL + 4 + 2 * i), &head, 2);
		memcpy(g(AVAIL + 2), &idx, 2);
	}
	run();
	{
		uint16_t used;

		memcpy(&used, g(USED + 0x1000 + 2), 2);
		assert_int_equal(used, QSIZE);
	}
	for (unsigned i = 0; i < QSIZE; i++) {
		assert_int_equal(*(uint8_t *)g(STATUS + i), VIRTIO_BLK_S_OK);
		assert_int_equal(*(uint8_t *)g(DATA + 4096 * i), i);
	}
	assert_int_equal(dev.st.inflight_max, QSIZE);
	stop();
}

static void a_reset_drops_requests_in_flight(void **state)
{
	char path[256];

	(void)state;
	make_image("reset.img", IMG_SECTORS, path, sizeof(path));
	start(path, false, false, false, NULL);
	header(HDR, VIRTIO_BLK_T_IN, 0);
	submit((struct piece[]){{HDR, 16, false}, {DATA, 4096, true}, {STATUS, 1, true}}, 3);
	virtio_mmio_kick(&dev.t, 0);
	assert_int_equal(dev.inflight, 1);
	wr(&dev.t, VIRTIO_MMIO_STATUS, 0); /* the driver resets the device */
	run();
	assert_int_equal(used_idx(), 0); /* nothing was pushed into the old ring */
	stop();
}

static void the_rate_limiter_delays_requests(void **state)
{
	const struct rl_cfg rl = {
		.set = true, .has_ops = true, .ops = {.size = 1, .refill_time_ms = 20}};
	char path[256];

	(void)state;
	make_image("rl.img", IMG_SECTORS, path, sizeof(path));
	start(path, false, false, false, &rl);
	timer_fn = NULL;
	assert_int_equal(request(VIRTIO_BLK_T_IN, 0, 512, true), VIRTIO_BLK_S_OK);
	*(uint8_t *)g(STATUS) = 0xee;
	submit((struct piece[]){{HDR, 16, false}, {DATA, 512, true}, {STATUS, 1, true}}, 3);
	run();
	assert_int_equal(used_idx(), 1); /* the second waits */
	assert_non_null(timer_fn);
	assert_int_equal(dev.st.throttled, 1);
	usleep(25 * 1000);
	timer_fn(timer_arg, 0);
	run();
	assert_int_equal(used_idx(), 2);
	/* Limits lifted after boot. */
	virtio_blk_set_limits(&dev, NULL);
	for (int i = 0; i < 3; i++)
		assert_int_equal(request(VIRTIO_BLK_T_IN, 0, 512, true), VIRTIO_BLK_S_OK);
	assert_int_equal(dev.st.throttled, 1);
	stop();
}

static void a_new_image_after_boot(void **state)
{
	char a[256], b[256], why[BLK_WHY_LEN];
	uint32_t gen;

	(void)state;
	make_image("a.img", IMG_SECTORS, a, sizeof(a));
	make_image("b.img", 2 * IMG_SECTORS, b, sizeof(b));
	start(a, false, false, false, NULL);
	gen = rd(&dev.t, VIRTIO_MMIO_CONFIG_GENERATION);
	irq_pulses = 0;
	assert_int_equal(virtio_blk_update_path(&dev, b, why, sizeof(why)), 0);
	assert_int_equal(rd(&dev.t, VIRTIO_MMIO_CONFIG), 2 * IMG_SECTORS);
	assert_int_not_equal(rd(&dev.t, VIRTIO_MMIO_CONFIG_GENERATION), gen);
	assert_true(rd(&dev.t, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_MMIO_INT_CONFIG);
	assert_int_equal(irq_pulses, 1);
	assert_int_equal(request(VIRTIO_BLK_T_IN, 200, 512, true), VIRTIO_BLK_S_OK);
	assert_int_equal(*(uint8_t *)g(DATA), 200);
	/* The old image is closed and unlocked: another writer may have it now. */
	{
		struct blk_file f;

		assert_int_equal(blk_file_open(&f, a, false, false, why, sizeof(why)), 0);
		blk_file_close(&f);
	}
	/* The same image grown: its new size, without a second lock on it. */
	assert_int_equal(truncate(b, 4 * IMG_SECTORS * BLK_SECTOR), 0);
	assert_int_equal(virtio_blk_update_path(&dev, b, why, sizeof(why)), 0);
	assert_int_equal(rd(&dev.t, VIRTIO_MMIO_CONFIG), 4 * IMG_SECTORS);
	/* A bad one changes nothing. */
	assert_int_equal(virtio_blk_update_path(&dev, tmpdir, why, sizeof(why)), -EISDIR);
	assert_non_null(strstr(why, "is a directory"));
	assert_int_equal(rd(&dev.t, VIRTIO_MMIO_CONFIG), 4 * IMG_SECTORS);
	assert_int_equal(dev.st.update_count, 2);
	stop();
}

static void expect_open_error(const char *path, bool ro, int err, const char *words)
{
	struct blk_file f;
	char why[BLK_WHY_LEN] = "";

	assert_int_equal(blk_file_open(&f, path, ro, false, why, sizeof(why)), err);
	if (!strstr(why, words))
		fail_msg("\"%s\" lacks \"%s\"", why, words);
	assert_int_equal(f.fd, -1);
}

static void images_are_checked_and_locked(void **state)
{
	char path[256], fifo[256], small[256];
	struct blk_file a, b;
	char why[BLK_WHY_LEN];
	int fd;

	(void)state;
	make_image("lock.img", IMG_SECTORS, path, sizeof(path));
	snprintf(fifo, sizeof(fifo), "%s/fifo", tmpdir);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	snprintf(small, sizeof(small), "%s/small.img", tmpdir);
	fd = open(small, O_CREAT | O_WRONLY, 0600);
	assert_int_equal(write(fd, "x", 1), 1);
	close(fd);
	expect_open_error("/nonexistent/disk.img", false, -ENOENT, "no such file");
	expect_open_error(tmpdir, true, -EISDIR, "is a directory");
	expect_open_error(fifo, true, -EINVAL, "is a FIFO");
	expect_open_error("/dev/null", true, -EINVAL, "is a character device");
	expect_open_error(small, false, -EINVAL, "smaller than one 512-byte sector");
	/* A writer excludes everyone; readers share. */
	assert_int_equal(blk_file_open(&a, path, false, false, why, sizeof(why)), 0);
	expect_open_error(path, false, -EBUSY, "locked by another process");
	expect_open_error(path, true, -EBUSY, "description write lock");
	blk_file_close(&a);
	assert_int_equal(blk_file_open(&a, path, true, false, why, sizeof(why)), 0);
	assert_int_equal(blk_file_open(&b, path, true, false, why, sizeof(why)), 0);
	expect_open_error(path, false, -EBUSY, "read lock");
	blk_file_close(&a);
	blk_file_close(&b);
	unlink(fifo);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(reads_and_writes_in_any_layout),
		cmocka_unit_test(flush_and_get_id),
		cmocka_unit_test(discard_and_write_zeroes),
		cmocka_unit_test(read_only_drives_refuse_writes),
		cmocka_unit_test(bad_requests_get_errors_not_crashes),
		cmocka_unit_test(host_errors_become_ioerr),
		cmocka_unit_test(reads_past_the_end_of_the_file_are_zeros),
		cmocka_unit_test(direct_drives_use_fixed_buffers),
		cmocka_unit_test(many_requests_in_flight),
		cmocka_unit_test(a_reset_drops_requests_in_flight),
		cmocka_unit_test(the_rate_limiter_delays_requests),
		cmocka_unit_test(a_new_image_after_boot),
		cmocka_unit_test(images_are_checked_and_locked),
	};

	log_set_level(LOG_ERR);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
