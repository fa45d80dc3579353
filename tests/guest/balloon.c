/*
 * The virtio-balloon workload of the test guest, on the first balloon device
 * (DeviceID 5) of the command line's virtio_mmio.device= entries, written from
 * the virtio 1.2 specification (5.5 Traditional Memory Balloon Device) and
 * Linux's virtio_balloon / page_reporting for what the spec leaves open.
 *
 *   test=balloon [touch_mib=N] [report_mib=N [retouch=1]] [bad=KIND[,KIND]] [exit_mib=N]
 *
 * Negotiates VERSION_1 and, as offered, MUST_TELL_HOST, STATS_VQ, DEFLATE_ON_OOM and
 * REPORTING; queues as Linux numbers them: inflate 0, deflate 1, then stats (STATS_VQ),
 * then reporting (REPORTING). Prints "balloon features=0x... offered=0x... queues=N" and
 * "balloon ram_bytes=N pool_mib=P pool_start=0x...".
 *
 * The pool: the largest stretch of RAM left above what ram_alloc handed out, from a 2M
 * boundary to one. The balloon holds its bottom `actual` 4K pages: inflating appends in
 * ascending order (whole 2M host pages fill up), deflating gives back from the top.
 *
 *   touch_mib=N    first write every 4K page of the pool's first N MiB: "balloon touched_mib=N"
 *   report_mib=N   (REPORTING) report the pool's top N MiB (rounded down to 2 MiB) as
 *                  2M-aligned 2M blocks, one device-writable descriptor each, up to 32 per
 *                  buffer (Linux's page_reporting capacity): "balloon reported_mib=N";
 *                  retouch=1 then writes them again: "balloon retouched_mib=N"
 *   bad=KIND       pfn-outside (an inflate buffer of the one pfn at the end of RAM),
 *                  report-unaligned (2 MiB from 4K into a free 2M block), report-outside
 *                  (2 MiB at the 2M boundary at or above the end of RAM); each is a buffer of
 *                  its own: "balloon bad=KIND sent", then at most 2 s for the device to give
 *                  it back: "balloon bad=KIND used=0|1 needs_reset=0|1"; then goes on
 *   exit_mib=N     exit PASS when the target is reached with actual at N MiB (else run until
 *                  the VMM stops the VM)
 *
 * Then, every ~10 ms (or at each interrupt with irq=1), num_pages (the target, 4K pages)
 * is read; the balloon moves towards it in buffers of up to 256 pfns, each waited for;
 * `actual` is written after each; on reaching the target (the pool's size at most):
 * "balloon actual_mib=N" (actual / 256). Deflated pages are written (the guest uses them
 * again) only after the device took the deflate buffer, with or without MUST_TELL_HOST.
 * The stats queue holds one buffer of 8 statistics (total = the memory map's RAM, free and
 * available = the pool not in the balloon, the rest 0); each time the device gives it back
 * it is filled again and re-posted; "balloon stats_updates=N" at most once a second.
 *
 * Driver options as for the other virtio workloads: irq=0|1 (irq=1: waits halt until an
 * interrupt, the config change's too, or the ~10 ms wake-up), event_idx=0|1, qsize=N;
 * buffers always go direct (indirect= only decides the negotiation).
 */
#include "chase.h"
#include "guest.h"
#include "virtio.h"

#define F_MUST_TELL_HOST 0
#define F_STATS_VQ       1
#define F_DEFLATE_ON_OOM 2
#define F_REPORTING      5
#define CFG_NUM_PAGES    0
#define CFG_ACTUAL       4
#define PAGE             4096ul
#define BLOCK            (2ul << 20) /* Linux's pageblock on x86: what reporting hands over */
#define PAGES_PER_MIB    256
#define PFNS_MAX         256 /* pfns per inflate/deflate buffer, as Linux */
#define REPORT_MAX       32  /* blocks per reporting buffer (Linux's PAGE_REPORTING_CAPACITY) */
#define WAIT_CYCLES      20000000000ull

enum {
	S_SWAP_IN,
	S_SWAP_OUT,
	S_MAJFLT,
	S_MINFLT,
	S_MEMFREE,
	S_MEMTOT,
	S_AVAIL,
	S_CACHES,
	NSTATS
};

struct bstat {
	uint16_t tag;
	uint64_t val;
} __attribute__((packed));

static struct virtio_dev *dev;
static struct virtq *inflate_q, *deflate_q, *stats_q, *report_q;
static uint64_t hz, ram_bytes, pool, pool_pages;
static uint32_t actual; /* pages in the balloon: the pool's first ones */
static uint32_t pfns[PFNS_MAX] __attribute__((aligned(64)));
static struct bstat stats[NSTATS] __attribute__((aligned(16)));
static uint64_t stats_updates;
/* A bad buffer the device had not given back after 2 s: its later return is expected. */
static struct virtq *stray_q;
static int stray_head = -1;

static void put_mib_line(const char *what, uint64_t mib)
{
	puts_("balloon ");
	puts_(what);
	puts_("=");
	putu(mib);
	puts_("\n");
}

/* Write every 4K page of [@start, @start + @pages * 4K): the host must back them. */
static void touch(uint64_t start, uint64_t pages)
{
	for (uint64_t a = start; a < start + pages * PAGE; a += PAGE)
		*(volatile uint64_t *)(uintptr_t)a = a;
}

/* Post @n buffers as one chain, notify, wait until the device gives that chain back. */
static void post_wait(struct virtq *q, const struct vbuf *b, unsigned n, const char *what)
{
	int head = virtq_add(q, b, n, false);
	uint32_t id, len;

	if (head < 0)
		fail("balloon: a queue is full with one buffer in flight");
	virtq_kick(q);
	for (;;) {
		if (!virtq_wait(q, WAIT_CYCLES)) {
			puts_("balloon: no used buffer on queue ");
			putu(q->index);
			puts_(" within the time limit, status ");
			putx(vio_read(dev, VIO_STATUS));
			puts_("\n");
			fail(what);
		}
		if (!virtq_pop(q, &id, &len))
			continue;
		if (id == (uint32_t)head)
			return;
		if (q == stray_q && id == (uint32_t)stray_head) {
			stray_head = -1; /* the late bad buffer */
			continue;
		}
		fail("balloon: the device gave back a buffer that was not in flight");
	}
}

/* One inflate or deflate buffer: @n pfns from @first, ascending. */
static void give_pfns(struct virtq *q, uint64_t first, unsigned n, const char *what)
{
	struct vbuf b = {(uint64_t)(uintptr_t)pfns, n * 4u, false};

	for (unsigned k = 0; k < n; k++)
		pfns[k] = (uint32_t)(first + k);
	post_wait(q, &b, 1, what);
}

/* ---- the pool ---- */

static void pool_pick(void)
{
	/* Nothing allocated yet reaches past here: ram_alloc's mark. */
	uint64_t mark = (uint64_t)(uintptr_t)ram_alloc(0, 1, "balloon"), bs = 0, be = 0;

	for (unsigned i = 0; i < nram; i++) {
		uint64_t s = ram[i].start > mark ? ram[i].start : mark;
		uint64_t e = ram[i].end & ~(BLOCK - 1);

		s = (s + BLOCK - 1) & ~(BLOCK - 1);
		ram_bytes += ram[i].end - ram[i].start;
		if (e > s && e - s > be - bs) {
			bs = s;
			be = e;
		}
	}
	if (be <= bs)
		fail("balloon: no whole 2 MiB block of RAM left above the guest's allocations");
	pool = (uint64_t)(uintptr_t)ram_alloc(be - bs, BLOCK, "balloon");
	pool_pages = (be - bs) / PAGE;
	if (pool_pages >> 32)
		fail("balloon: a pool over 16 TiB (pfns are 32-bit)");
	puts_("balloon ram_bytes=");
	putu(ram_bytes);
	puts_(" pool_mib=");
	putu(pool_pages / PAGES_PER_MIB);
	puts_(" pool_start=");
	putx(pool);
	puts_("\n");
}

/* ---- statistics ---- */

static void stats_post(void)
{
	uint64_t free = (pool_pages - actual) * PAGE;
	struct vbuf b = {(uint64_t)(uintptr_t)stats, sizeof(stats), false};

	for (unsigned t = 0; t < NSTATS; t++)
		stats[t] = (struct bstat){(uint16_t)t, 0};
	stats[S_MEMFREE].val = free;
	stats[S_MEMTOT].val = ram_bytes;
	stats[S_AVAIL].val = free;
	if (virtq_add(stats_q, &b, 1, false) < 0)
		fail("balloon: the stats queue is full with one buffer");
	virtq_kick(stats_q);
}

static void stats_service(void)
{
	static uint64_t printed, printed_at;
	uint32_t id, len;
	uint64_t now;

	if (!stats_q)
		return;
	while (virtq_pop(stats_q, &id, &len)) {
		stats_updates++;
		stats_post();
	}
	now = chase_rdtsc();
	if (stats_updates != printed && (!printed_at || now - printed_at >= hz)) {
		printed = stats_updates;
		printed_at = now;
		put_mib_line("stats_updates", stats_updates);
	}
}

/* ---- free page reporting ---- */

static uint64_t rep_first, rep_blocks; /* the pool's blocks reported (indexes) */

static void report(uint64_t mib)
{
	uint64_t nblocks = pool_pages / (BLOCK / PAGE),
		 inflated = (actual + BLOCK / PAGE - 1) / (BLOCK / PAGE), want = mib / 2;
	unsigned per = report_q->size < REPORT_MAX ? report_q->size : REPORT_MAX;
	struct vbuf b[REPORT_MAX];

	if (want > nblocks - inflated)
		want = nblocks - inflated;
	rep_first = nblocks - want;
	rep_blocks = want;
	for (uint64_t i = 0; i < want;) {
		unsigned n = 0;

		for (; n < per && i < want; n++, i++)
			b[n] = (struct vbuf){pool + (rep_first + i) * BLOCK, (uint32_t)BLOCK, true};
		post_wait(report_q, b, n, "balloon: a free page report was never given back");
	}
	put_mib_line("reported_mib", rep_blocks * 2);
	if (arg_u64("retouch", 0)) {
		touch(pool + rep_first * BLOCK, rep_blocks * (BLOCK / PAGE));
		put_mib_line("retouched_mib", rep_blocks * 2);
	}
}

/* ---- bad= ---- */

static void bad_one(const char *kind)
{
	uint64_t end = (ram_top + PAGE - 1) & ~(PAGE - 1), nblocks = pool_pages / (BLOCK / PAGE);
	struct virtq *q = report_q;
	struct vbuf b = {0, (uint32_t)BLOCK, true};
	uint64_t t0;
	uint32_t id, len, st;
	bool used = false;
	int head;

	if (str_eq(kind, "pfn-outside")) {
		q = inflate_q;
		pfns[0] = (uint32_t)(end / PAGE);
		b = (struct vbuf){(uint64_t)(uintptr_t)pfns, 4, false};
	} else if (str_eq(kind, "report-unaligned") || str_eq(kind, "report-outside")) {
		if (!report_q)
			fail("balloon: bad=report-* needs VIRTIO_BALLOON_F_REPORTING");
		if (str_eq(kind, "report-outside"))
			b.addr = (end + BLOCK - 1) & ~(BLOCK - 1);
		else if (nblocks < 2 || actual > (nblocks - 2) * (BLOCK / PAGE))
			fail("balloon: bad=report-unaligned needs the pool's top two blocks free");
		else /* the next-to-top block, so that 2 MiB from 4K in stays in the pool */
			b.addr = pool + (nblocks - 2) * BLOCK + PAGE;
	} else {
		fail("balloon: bad= is pfn-outside, report-unaligned or report-outside");
	}
	head = virtq_add(q, &b, 1, false);
	if (head < 0)
		fail("balloon: a queue is full with one buffer in flight");
	virtq_kick(q);
	puts_("balloon bad=");
	puts_(kind);
	puts_(" sent\n");
	t0 = chase_rdtsc();
	while (!used && chase_rdtsc() - t0 < 2 * hz) {
		if (virtq_pop(q, &id, &len)) {
			if (id != (uint32_t)head)
				fail("balloon: the device gave back a buffer not in flight");
			used = true;
		}
		__asm__ volatile("pause");
	}
	if (!used) {
		stray_q = q;
		stray_head = head;
	}
	st = vio_read(dev, VIO_STATUS);
	puts_("balloon bad=");
	puts_(kind);
	puts_(" used=");
	putu(used);
	puts_(" needs_reset=");
	putu((st & VIRTIO_S_NEEDS_RESET) != 0);
	puts_("\n");
}

static void bad_all(const char *list)
{
	char kind[24];

	while (*list) {
		size_t n = 0;

		while (*list && *list != ',' && n + 1 < sizeof(kind))
			kind[n++] = *list++;
		kind[n] = 0;
		if (*list == ',')
			list++;
		bad_one(kind);
	}
}

/* ---- the target loop ---- */

static void wait_a_little(void)
{
	/* Until a device interrupt or the ~10 ms wake-up (virtio.c), or for ~10 ms. */
	if (dev->use_irq)
		__asm__ volatile("sti; hlt" : : : "memory");
	else
		wait_cycles(hz / 100);
}

void do_balloon(void)
{
	struct virtio_opts o;
	uint64_t exit_mib = arg_u64("exit_mib", 0), touch_mib, report_mib, base_pfn;
	uint32_t target, last_target = 0;
	bool announced = false, first = true, warned = false, have_exit;
	char v[64];

	have_exit = arg("exit_mib", v, sizeof(v));
	hz = tsc_rate("balloon");
	virtio_opts_from_cmdline(&o);
	o.dev_features = 1u << F_MUST_TELL_HOST | 1u << F_STATS_VQ | 1u << F_DEFLATE_ON_OOM |
			 1u << F_REPORTING;
	o.feature_queues = 1u << F_STATS_VQ | 1u << F_REPORTING;
	virtio_probe();
	dev = virtio_find(VIRTIO_ID_BALLOON);
	if (!dev)
		fail("balloon: no balloon device (DeviceID 5, transport version 2) among the "
		     "virtio_mmio.device= entries");
	if (!virtio_start(dev, 2, &o))
		fail("balloon: the device did not initialize (the line above says why)");
	inflate_q = dev->vq[0];
	deflate_q = dev->vq[1];
	if (virtio_has(dev, F_STATS_VQ))
		stats_q = dev->vq[2];
	if (virtio_has(dev, F_REPORTING))
		report_q = dev->vq[dev->nvq - 1];
	puts_("balloon features=");
	putx(dev->features);
	puts_(" offered=");
	putx(dev->offered);
	puts_(" queues=");
	putu(dev->nvq);
	puts_("\n");
	pool_pick();
	base_pfn = pool / PAGE;
	if (stats_q)
		stats_post(); /* the device holds it until it wants new numbers */

	touch_mib = arg_u64("touch_mib", 0);
	if (touch_mib) {
		if (touch_mib * PAGES_PER_MIB > pool_pages)
			touch_mib = pool_pages / PAGES_PER_MIB;
		touch(pool, touch_mib * PAGES_PER_MIB);
		put_mib_line("touched_mib", touch_mib);
	}
	report_mib = arg_u64("report_mib", 0);
	if (report_mib) {
		if (!report_q)
			fail("balloon: report_mib= but the device did not offer "
			     "VIRTIO_BALLOON_F_REPORTING");
		report(report_mib);
	}
	if (arg("bad", v, sizeof(v)))
		bad_all(v);

	for (;;) {
		uint32_t want;

		stats_service();
		target = vio_cfg32(dev, CFG_NUM_PAGES);
		if (first || target != last_target) {
			first = false;
			last_target = target;
			announced = false;
			warned = false;
		}
		want = target < pool_pages ? target : (uint32_t)pool_pages;
		if (target > want && !warned) {
			puts_("balloon target_pages=");
			putu(target);
			puts_(" beyond the pool: inflating its ");
			putu(pool_pages);
			puts_(" pages\n");
			warned = true;
		}
		if (actual < want) {
			unsigned n = want - actual < PFNS_MAX ? want - actual : PFNS_MAX;

			give_pfns(inflate_q, base_pfn + actual, n,
				  "balloon: an inflate buffer was never given back");
			actual += n;
			vio_cfg_write32(dev, CFG_ACTUAL, actual);
		} else if (actual > want) {
			unsigned n = actual - want < PFNS_MAX ? actual - want : PFNS_MAX;
			uint64_t first_pfn = base_pfn + actual - n;

			/* Told before used, as MUST_TELL_HOST requires (and harmless without). */
			give_pfns(deflate_q, first_pfn, n,
				  "balloon: a deflate buffer was never given back");
			touch(first_pfn * PAGE, n);
			actual -= n;
			vio_cfg_write32(dev, CFG_ACTUAL, actual);
		} else if (!announced) {
			announced = true;
			put_mib_line("actual_mib", actual / PAGES_PER_MIB);
			if (have_exit && actual / PAGES_PER_MIB == exit_mib) {
				put_mib_line("stats_updates", stats_updates);
				pass(0);
			}
		} else {
			wait_a_little();
		}
	}
}
