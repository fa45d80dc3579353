/*
 * Fuzzing of the block device (devices/virtio/blk.c) through its transport
 * and a real io_uring on a scratch image: random request chains (types,
 * sectors, flags, lengths, any layout of header, data and status, buffers
 * across the slots' seam or outside RAM), resets with requests in flight,
 * and image swaps. Whatever the guest asks, the device must answer every
 * request it took with a defined status (or ask for a reset), never write
 * outside the image's capacity, and never touch memory outside the fake RAM
 * (ASan/UBSan abort on that).
 *
 *   fuzz_blk [iterations] [seed]      (defaults: 10000, 1)
 */
#include <fcntl.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_ring.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "devices/virtio/blk.h"
#include "fuzz.h"

#define SLOT    (256u << 10)
#define QSIZE   16
#define DESC    0x1000
#define AVAIL   0x2000
#define USED    0x3000
#define SECTORS 64 /* 32 KiB images */

static uint8_t *mem[2];
static struct guest_mem gm;
static unsigned pulses;

static void irq(void *o, unsigned gsi, int level)
{
	(void)o;
	(void)gsi;
	pulses += level == 1;
}

static void *timer(void *o, uint64_t ms, void (*fn)(void *, int), void *arg)
{
	(void)o;
	(void)ms;
	(void)fn;
	(void)arg;
	return NULL; /* no timers: a throttled queue waits for the next kick */
}

static void cancel(void *o, void *t)
{
	(void)o;
	(void)t;
}

static const struct dev_host host = {.irq_line = irq, .timer = timer, .timer_cancel = cancel};

static void put(uint64_t gpa, const void *src, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		uint8_t *h;

		if (mem_gpa_piece(&gm, gpa + i, 1, &h))
			*h = ((const uint8_t *)src)[i];
	}
}

static void wr(struct virtio_mmio *t, uint64_t off, uint32_t v)
{
	t->dev.ops->write(&t->dev, off, &v, 4);
}

static uint32_t rd(struct virtio_mmio *t, uint64_t off)
{
	uint32_t v;

	t->dev.ops->read(&t->dev, off, &v, 4);
	return v;
}

/* The driver's initialization, with a random choice of the offered features. */
static void bring_up(struct virtio_blk *d)
{
	uint64_t f = virtio_mmio_offered(&d->t) & (next() | 1ull << VIRTIO_F_VERSION_1);

	wr(&d->t, VIRTIO_MMIO_STATUS, 0);
	wr(&d->t, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	wr(&d->t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	wr(&d->t, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)f);
	wr(&d->t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	wr(&d->t, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(f >> 32));
	wr(&d->t, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
					      VIRTIO_CONFIG_S_FEATURES_OK);
	wr(&d->t, VIRTIO_MMIO_QUEUE_SEL, 0);
	wr(&d->t, VIRTIO_MMIO_QUEUE_NUM, QSIZE);
	wr(&d->t, VIRTIO_MMIO_QUEUE_DESC_LOW, DESC);
	wr(&d->t, VIRTIO_MMIO_QUEUE_AVAIL_LOW, AVAIL);
	wr(&d->t, VIRTIO_MMIO_QUEUE_USED_LOW, USED);
	wr(&d->t, VIRTIO_MMIO_QUEUE_READY, 1);
	wr(&d->t, VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
					      VIRTIO_CONFIG_S_FEATURES_OK |
					      VIRTIO_CONFIG_S_DRIVER_OK);
}

static uint64_t addr(void)
{
	switch (next() % 10) {
	case 0:
		return next();
	case 1:
		return SLOT - (next() % 700); /* across the seam */
	default:
		return 0x8000 + next() % (2 * SLOT - 0x10000);
	}
}

static void desc(unsigned i, uint64_t a, uint32_t len, uint16_t flags, uint16_t nx)
{
	uint8_t b[16];

	fuzz_desc(b, a, len, flags, nx);
	put(DESC + 16ull * i, b, 16);
}

/* A request chain at descriptors [first, first + n): mostly well formed. */
static unsigned request(unsigned first)
{
	static const uint32_t types[] = {VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_FLUSH,
					 VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_DISCARD,
					 VIRTIO_BLK_T_WRITE_ZEROES};
	uint32_t type = next() % 16 ? types[next() % 6] : (uint32_t)next();
	uint64_t sector = next() % 8 ? next() % (SECTORS + 2) : next();
	struct virtio_blk_outhdr h = {.type = type, .sector = sector};
	unsigned n = 2 + (unsigned)(next() % 4);
	uint64_t hdr = addr();

	put(hdr, &h, sizeof(h));
	if (type == VIRTIO_BLK_T_DISCARD || type == VIRTIO_BLK_T_WRITE_ZEROES) {
		struct virtio_blk_discard_write_zeroes s = {
			.sector = next() % (SECTORS + 2),
			.num_sectors = (uint32_t)(next() % 8),
			.flags = (uint32_t)(next() % 3)};

		put(hdr + sizeof(h), &s, sizeof(s));
	}
	for (unsigned i = 0; i < n; i++) {
		bool last = i + 1 == n;
		/* Readable first (header, OUT data), then writable (IN data, status). */
		bool w = (i >= n / 2) != (next() % 32 == 0);
		uint32_t len = i == 0 ? (next() % 4 ? 16 + (next() % 2) * 16 : (uint32_t)(next() % 40))
				      : last ? (uint32_t)(next() % 4 ? 1 : next() % 3)
					     : (uint32_t)(512 * (next() % 9) + (next() % 8 ? 0 : next() % 512));

		desc(first + i, i == 0 ? hdr : addr(), len,
		     (uint16_t)((w ? VRING_DESC_F_WRITE : 0) | (last ? 0 : VRING_DESC_F_NEXT)),
		     (uint16_t)((first + i + 1) % QSIZE));
	}
	return n;
}

static void reap(struct blk_engine *e, struct virtio_blk *d)
{
	for (int i = 0; i < 100 && d->inflight; i++) {
		struct pollfd p = {.fd = blk_engine_fd(e), .events = POLLIN};

		(void)poll(&p, 1, 10);
		blk_engine_reap(e);
	}
}

int main(int argc, char **argv)
{
	unsigned long iters = argc > 1 ? strtoul(argv[1], NULL, 0) : 10000;
	unsigned long taken = 0, answered = 0, resets = 0, swaps = 0;
	char dir[] = "/tmp/hugevmm-fuzz-blk-XXXXXX", img[2][96], why[BLK_WHY_LEN];
	struct blk_engine *e;
	struct virtio_blk d;
	struct blk_file f;
	uint16_t avail = 0;

	fuzz_seed(argc, argv, 2);
	log_set_sink(quiet, NULL);
	if (!mkdtemp(dir))
		return 1;
	for (unsigned i = 0; i < 2; i++) {
		int fd;

		snprintf(img[i], sizeof(img[i]), "%s/%u.img", dir, i);
		fd = open(img[i], O_CREAT | O_RDWR, 0600);
		if (fd < 0 || ftruncate(fd, (off_t)(SECTORS + i) * BLK_SECTOR))
			return 1;
		close(fd);
		mem[i] = aligned_alloc(4096, SLOT);
		memset(mem[i], 0, SLOT);
		gm.slots[i] = (struct mem_slot){.id = i, .gpa = i * SLOT, .size = SLOT, .hva = mem[i]};
	}
	gm.nslots = 2;
	if (blk_engine_create(&e, 64, why, sizeof(why)) ||
	    blk_file_open(&f, img[0], false, next() % 2, why, sizeof(why))) {
		fprintf(stderr, "fuzz_blk: %s\n", why);
		return 1;
	}
	{
		struct virtio_blk_cfg cfg = {.id = "fuzz", .flush = true};
		struct iovec ram[2] = {{mem[0], SLOT}, {mem[1], SLOT}};
		int res[2];

		if (virtio_blk_init(&d, &host, &gm, 0xd0000000, 5, e, &f, &cfg) ||
		    blk_engine_register(e, ram, 2, res))
			return 1;
	}
	bring_up(&d);
	for (unsigned long it = 0; it < iters; it++) {
		unsigned first = (unsigned)(next() % QSIZE), k = 1 + (unsigned)(next() % 4);
		uint16_t before, after;

		memcpy(&before, mem[0] + USED + 2, 2);
		for (unsigned j = 0; j < k; j++) {
			uint16_t head = (uint16_t)first;

			first = (first + request(first)) % QSIZE;
			put(AVAIL + 4 + 2ull * (avail % QSIZE), &head, 2);
			avail++;
		}
		put(AVAIL + 2, &avail, 2);
		virtio_mmio_kick(&d.t, 0);
		if (next() % 16 == 0) { /* a reset while requests are in flight */
			bring_up(&d);
			avail = 0;
			memset(mem[0] + USED, 0, 4);
			memset(mem[0] + AVAIL, 0, 4);
			resets++;
		}
		if (next() % 64 == 0) {
			swaps++;
			if (virtio_blk_update_path(&d, img[next() % 2], why, sizeof(why)))
				swaps--;
		}
		reap(e, &d);
		if (d.inflight) {
			fprintf(stderr, "iteration %lu: %u requests never completed\n", it, d.inflight);
			return 1;
		}
		memcpy(&after, mem[0] + USED + 2, 2);
		taken += k;
		answered += (uint16_t)(after - before) <= k ? (uint16_t)(after - before) : 0;
		if (rd(&d.t, VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET) {
			bring_up(&d);
			avail = 0;
			memset(mem[0] + USED, 0, 4);
			memset(mem[0] + AVAIL, 0, 4);
			resets++;
		}
	}
	for (unsigned i = 0; i < 2; i++) {
		struct stat st;

		/* Writes stay inside the capacity: the images never grow. */
		if (stat(img[i], &st) || st.st_size != (off_t)(SECTORS + i) * BLK_SECTOR) {
			fprintf(stderr, "fuzz_blk: %s changed size to %lld\n", img[i],
				(long long)st.st_size);
			return 1;
		}
	}
	printf("fuzz_blk: %lu iterations, %lu requests offered, %lu answered, %lu resets, "
	       "%lu swaps, %u interrupts\n",
	       iters, taken, answered, resets, swaps, pulses);
	blk_engine_destroy(e);
	virtio_blk_destroy(&d);
	for (unsigned i = 0; i < 2; i++) {
		unlink(img[i]);
		free(mem[i]);
	}
	rmdir(dir);
	/* A fuzzer whose requests were never answered tested nothing. */
	return answered && resets ? 0 : 1;
}
