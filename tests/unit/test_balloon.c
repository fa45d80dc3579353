/*
 * The balloon device against a fake driver over real guest memory (a thp
 * region mapped by memory/, so reclaim really discards): the config space and
 * target changes, inflate and deflate in any buffer layout with page numbers
 * outside RAM refused and counted, the statistics queue (held, given back on
 * the timer, malformed buffers counted), free page reporting (whole huge pages
 * discarded, partial ones kept, unaligned ranges refused), and the queue
 * numbering that follows the negotiated features.
 */
#include <errno.h>
#include <linux/virtio_balloon.h>
#include <linux/virtio_config.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_ring.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/log.h"
#include "devices/virtio/balloon.h"
#include "memory/measure.h"

#define MIB    (1ull << 20)
#define RAM    (16 * MIB) /* one thp region */
#define NQ     16
#define PFNBUF 0x40000 /* page-number arrays */
#define STATB  0x50000 /* the statistics buffer */

static struct guest_mem gm;
static struct mem_reclaim rc;
static struct virtio_balloon dev;
static uint16_t navail[4];
static unsigned irq_pulses;
static void *timer_arg;
static void (*timer_fn)(void *, int);
static uint64_t timer_ms;

static const uint64_t qbase[4] = {0x4000, 0x8000, 0xc000, 0x10000};

static void quiet(enum log_level lvl, const char *msg, void *opaque)
{
	(void)lvl;
	(void)msg;
	(void)opaque;
}

static void fake_irq(void *o, unsigned gsi, int level)
{
	(void)o;
	(void)gsi;
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
	if (t)
		timer_fn = NULL;
}

static const struct dev_host host = {
	.irq_line = fake_irq, .timer = fake_timer, .timer_cancel = fake_cancel};

static void *g(uint64_t gpa)
{
	return mem_gpa_to_hva(&gm, gpa, 1);
}

static uint32_t rd(uint64_t off)
{
	uint32_t v;

	dev.t.dev.ops->read(&dev.t.dev, off, &v, 4);
	return v;
}

static void wr(uint64_t off, uint32_t v)
{
	dev.t.dev.ops->write(&dev.t.dev, off, &v, 4);
}

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

static void kick(unsigned q)
{
	virtio_mmio_kick(&dev.t, q);
}

static bool map_ram(void)
{
	struct mem_region_cfg c;
	struct vmm_err e = {0};

	mem_cfg_init(&c, MEM_BACKING_THP, "ram", "memory.regions[0]");
	c.size = RAM;
	if (mem_cfg_finalize_all(&c, 1, &e) || mem_map(&gm, &c, 1, &e)) {
		fail_msg("mapping guest RAM: %s", e.msg);
		return false;
	}
	return true;
}

/* The driver's initialization, up to DRIVER_OK, with queues 0..@nq-1 fresh. */
static void bring_up(uint64_t features, unsigned nq)
{
	memset(navail, 0, sizeof(navail));
	for (unsigned q = 0; q < nq; q++)
		memset(g(qbase[q]), 0, 0x3000);
	wr(VIRTIO_MMIO_STATUS, 0);
	wr(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	wr(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	wr(VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)features);
	wr(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	wr(VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(features >> 32));
	wr(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
				       VIRTIO_CONFIG_S_FEATURES_OK);
	assert_true(rd(VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK);
	for (unsigned q = 0; q < nq; q++) {
		wr(VIRTIO_MMIO_QUEUE_SEL, q);
		wr(VIRTIO_MMIO_QUEUE_NUM, NQ);
		wr(VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)qbase[q]);
		wr(VIRTIO_MMIO_QUEUE_DESC_HIGH, 0);
		wr(VIRTIO_MMIO_QUEUE_AVAIL_LOW, (uint32_t)qbase[q] + 0x1000);
		wr(VIRTIO_MMIO_QUEUE_AVAIL_HIGH, 0);
		wr(VIRTIO_MMIO_QUEUE_USED_LOW, (uint32_t)qbase[q] + 0x2000);
		wr(VIRTIO_MMIO_QUEUE_USED_HIGH, 0);
		wr(VIRTIO_MMIO_QUEUE_READY, 1);
	}
	wr(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
				       VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
	assert_false(rd(VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET);
}

static void start(const struct virtio_balloon_cfg *cfg, uint64_t features, unsigned nq)
{
	assert_true(map_ram());
	assert_int_equal(mem_reclaim_init(&rc, &gm), 0);
	timer_fn = NULL;
	irq_pulses = 0;
	assert_int_equal(virtio_balloon_init(&dev, &host, &gm, &rc, 0xd0000000, 5, cfg), 0);
	bring_up(features, nq);
}

static void stop(void)
{
	virtio_balloon_stop(&dev);
	virtio_balloon_destroy(&dev);
	mem_reclaim_destroy(&rc);
	mem_unmap(&gm);
}

static uint64_t v1(void)
{
	return 1ull << VIRTIO_F_VERSION_1;
}

static struct balloon_counters counters(void)
{
	struct balloon_counters c;

	virtio_balloon_counters(&dev, &c);
	return c;
}

/* Page numbers [first, first + n) as le32 at @gpa. */
static void pfns(uint64_t gpa, uint64_t first_gpa, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		uint32_t pfn = (uint32_t)((first_gpa >> 12) + i);

		memcpy((uint8_t *)g(gpa) + 4 * i, &pfn, 4);
	}
}

static void config_space_and_target(void **state)
{
	struct virtio_balloon_cfg cfg = {.amount_mib = 3, .deflate_on_oom = true};
	uint64_t feat;

	(void)state;
	start(&cfg, v1() | (1ull << VIRTIO_BALLOON_F_DEFLATE_ON_OOM), 2);
	wr(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	feat = rd(VIRTIO_MMIO_DEVICE_FEATURES);
	assert_true(feat & (1u << VIRTIO_BALLOON_F_MUST_TELL_HOST));
	assert_true(feat & (1u << VIRTIO_BALLOON_F_DEFLATE_ON_OOM));
	assert_false(feat & (1u << VIRTIO_BALLOON_F_STATS_VQ));
	assert_false(feat & (1u << VIRTIO_BALLOON_F_REPORTING));
	assert_false(feat & (1u << VIRTIO_BALLOON_F_FREE_PAGE_HINT));
	assert_int_equal(rd(0x100), 3 * 256);
	assert_int_equal(rd(0x104), 0);
	irq_pulses = 0;
	virtio_balloon_set_target(&dev, 5);
	assert_int_equal(rd(0x100), 5 * 256);
	assert_int_equal(irq_pulses, 1); /* a configuration change interrupt */
	assert_true(rd(VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_MMIO_INT_CONFIG);
	wr(0x104, 1280);
	wr(0x100, 7); /* num_pages is the device's: ignored */
	assert_int_equal(rd(0x104), 1280);
	assert_int_equal(rd(0x100), 5 * 256);
	{
		struct balloon_info bi;

		virtio_balloon_info(&dev, &bi);
		assert_int_equal(bi.target_pages, 1280);
		assert_int_equal(bi.actual_pages, 1280);
		assert_true(bi.deflate_on_oom);
	}
	/* Statistics were off at start: the interval cannot change. */
	assert_int_equal(virtio_balloon_set_stats_interval(&dev, 5), -EINVAL);
	stop();
}

static void inflate_deflate_whole_huge_pages(void **state)
{
	struct virtio_balloon_cfg cfg = {.amount_mib = 2};
	struct smaps_totals before, after;
	uint32_t bad = (uint32_t)((RAM + 64 * MIB) >> 12);

	(void)state;
	start(&cfg, v1(), 2);
	memset(g(2 * MIB), 0x5a, 4 * MIB); /* the guest used these pages */
	assert_int_equal(measure_smaps(0, (uintptr_t)gm.regions[0].hva,
				       (uintptr_t)gm.regions[0].hva + RAM, &before),
			 0);
	/*
	 * The 2M page at 2 MiB: 512 page numbers in two chains, the first split
	 * across three descriptors (one number cut in half), and 10 of the next page.
	 */
	pfns(PFNBUF, 2 * MIB, 256);
	pfns(PFNBUF + 0x400, 2 * MIB + 256 * 4096, 256);
	pfns(PFNBUF + 0x800, 4 * MIB, 10);
	memcpy((uint8_t *)g(PFNBUF + 0x800) + 40, &bad, 4);
	qdesc(0, 0, PFNBUF, 502, VRING_DESC_F_NEXT, 1);
	qdesc(0, 1, PFNBUF + 502, 400, VRING_DESC_F_NEXT, 2);
	qdesc(0, 2, PFNBUF + 902, 122, 0, 0);
	qdesc(0, 3, PFNBUF + 0x400, 1024, 0, 0);
	qdesc(0, 4, PFNBUF + 0x800, 44, 0, 0);
	qoffer(0, 0);
	qoffer(0, 3);
	qoffer(0, 4);
	kick(0);
	assert_int_equal(qused(0), 3);
	assert_int_equal(counters().inflate_count, 3);
	assert_int_equal(counters().pages_inflated, 523);
	assert_int_equal(counters().rejected, 1);
	assert_int_equal(gm.regions[0].reclaimed_bytes, 2 * MIB);
	assert_int_equal(gm.regions[0].balloon_bytes, 10 * 4096);
	assert_int_equal(measure_smaps(0, (uintptr_t)gm.regions[0].hva,
				       (uintptr_t)gm.regions[0].hva + RAM, &after),
			 0);
	assert_int_equal(before.rss - after.rss, 2 * MIB);

	/* Deflate the whole page: no longer reclaimed; the guest's touch brings it back. */
	pfns(PFNBUF + 0xc00, 2 * MIB, 256);
	pfns(PFNBUF + 0x1000, 2 * MIB + 256 * 4096, 256);
	qdesc(1, 0, PFNBUF + 0xc00, 1024, VRING_DESC_F_NEXT, 1);
	qdesc(1, 1, PFNBUF + 0x1000, 1024, 0, 0);
	qoffer(1, 0);
	kick(1);
	assert_int_equal(qused(1), 1);
	assert_int_equal(counters().deflate_count, 1);
	assert_int_equal(counters().pages_deflated, 512);
	assert_int_equal(gm.regions[0].reclaimed_bytes, 0);
	assert_int_equal(gm.regions[0].balloon_bytes, 10 * 4096);
	stop();
}

static void stats_held_and_given_back(void **state)
{
	struct virtio_balloon_cfg cfg = {.stats_interval_s = 2};
	uint8_t st[3 * 10] = {0};
	uint64_t memtot = 16 * MIB, memfree = 9 * MIB;
	struct balloon_info bi;

	(void)state;
	start(&cfg, v1() | (1ull << VIRTIO_BALLOON_F_STATS_VQ), 3);
	assert_non_null(timer_fn);
	assert_int_equal(timer_ms, 2000);
	st[0] = VIRTIO_BALLOON_S_MEMTOT;
	memcpy(st + 2, &memtot, 8);
	st[10] = VIRTIO_BALLOON_S_MEMFREE;
	memcpy(st + 12, &memfree, 8);
	st[20] = 40; /* a tag this device does not know: skipped */
	memcpy(g(STATB), st, sizeof(st));
	qdesc(2, 0, STATB, 30, 0, 0);
	qoffer(2, 0);
	kick(2);
	assert_int_equal(qused(2), 0); /* held until the device wants new numbers */
	virtio_balloon_info(&dev, &bi);
	assert_int_equal(bi.gs.updates, 1);
	assert_true(bi.gs.have & (1u << VIRTIO_BALLOON_S_MEMTOT));
	assert_int_equal(bi.gs.val[VIRTIO_BALLOON_S_MEMTOT], memtot);
	assert_int_equal(bi.gs.val[VIRTIO_BALLOON_S_MEMFREE], memfree);
	assert_false(bi.gs.have & (1u << VIRTIO_BALLOON_S_SWAP_IN));

	irq_pulses = 0;
	timer_fn(timer_arg, 0);
	assert_int_equal(qused(2), 1); /* given back: the driver answers with a fresh one */
	assert_int_equal(irq_pulses, 1);
	assert_non_null(timer_fn); /* and the next tick is armed */

	/* A buffer that is not whole entries: counted, the old numbers stay -- all of them. */
	memtot = 99;
	memcpy((uint8_t *)g(STATB) + 2, &memtot, 8);
	memtot = 16 * MIB;
	qdesc(2, 1, STATB, 17, 0, 0);
	qoffer(2, 1);
	kick(2);
	assert_int_equal(counters().stats_update_fails, 1);
	assert_int_equal(counters().stats_updates_count, 1);
	virtio_balloon_info(&dev, &bi);
	assert_int_equal(bi.gs.val[VIRTIO_BALLOON_S_MEMFREE], memfree);
	assert_int_equal(bi.gs.val[VIRTIO_BALLOON_S_MEMTOT], memtot);

	assert_int_equal(virtio_balloon_set_stats_interval(&dev, 0), -EINVAL);
	assert_int_equal(virtio_balloon_set_stats_interval(&dev, 7), 0);
	assert_int_equal(timer_ms, 7000);
	stop();
}

static void reporting_whole_pages_only(void **state)
{
	struct virtio_balloon_cfg cfg = {.free_page_reporting = true};
	uint64_t feat = v1() | (1ull << VIRTIO_BALLOON_F_REPORTING);

	(void)state;
	/* No statistics negotiated: the reporting queue is the third (index 2). */
	start(&cfg, feat, 3);
	assert_int_equal(dev.q_report, 2);
	assert_int_equal(dev.q_stats, -1);
	memset(g(4 * MIB), 1, 8 * MIB);
	/* 4 MiB at 4 MiB: two whole pages. 2 MiB at 8 MiB + 4K: none whole. */
	qdesc(2, 0, 4 * MIB, 4 * MIB, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
	qdesc(2, 1, 8 * MIB + 4096, 2 * MIB, VRING_DESC_F_WRITE, 0);
	qoffer(2, 0);
	/* 1 byte off a page boundary: refused. */
	qdesc(2, 2, 10 * MIB + 1, 2 * MIB, VRING_DESC_F_WRITE, 0);
	qoffer(2, 2);
	kick(2);
	assert_int_equal(qused(2), 2);
	assert_int_equal(counters().reports, 3);
	assert_int_equal(counters().rejected, 1);
	assert_int_equal(gm.regions[0].reclaimed_bytes, 4 * MIB);
	assert_int_equal(gm.regions[0].balloon_bytes, 0);
	assert_false(rd(VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET);
	stop();
}

/* A reset (a rebooted guest): every page is the guest's again, nothing it uses is lost. */
static void reset_empties_the_balloon(void **state)
{
	struct virtio_balloon_cfg cfg = {.amount_mib = 2};

	(void)state;
	start(&cfg, v1(), 2);
	/* One whole 2M page at 2 MiB given back, 511 pages of the next one in the balloon. */
	pfns(PFNBUF, 2 * MIB, 256);
	pfns(PFNBUF + 0x400, 2 * MIB + 256 * 4096, 256);
	pfns(PFNBUF + 0x800, 4 * MIB, 256);
	pfns(PFNBUF + 0xc00, 4 * MIB + 256 * 4096, 255);
	for (unsigned i = 0; i < 4; i++)
		qdesc(0, i, PFNBUF + 0x400 * i, i == 3 ? 1020 : 1024, 0, 0);
	for (uint16_t i = 0; i < 4; i++)
		qoffer(0, i);
	kick(0);
	assert_int_equal(gm.regions[0].reclaimed_bytes, 2 * MIB);
	assert_int_equal(gm.regions[0].balloon_bytes, 511 * 4096);

	wr(VIRTIO_MMIO_STATUS, 0);
	assert_int_equal(gm.regions[0].reclaimed_bytes, 0);
	assert_int_equal(gm.regions[0].balloon_bytes, 0);
	/*
	 * The rebooted guest uses a page the old driver had in its balloon; its new driver
	 * inflates the one page the old one had not: that does not make the host page whole.
	 */
	bring_up(v1(), 2);
	memset(g(4 * MIB), 0x22, 4096);
	pfns(PFNBUF, 6 * MIB - 4096, 1);
	qdesc(0, 0, PFNBUF, 4, 0, 0);
	qoffer(0, 0);
	kick(0);
	assert_int_equal(qused(0), 1);
	assert_int_equal(gm.regions[0].reclaimed_bytes, 0);
	assert_int_equal(gm.regions[0].balloon_bytes, 4096);
	assert_int_equal(*(uint8_t *)g(4 * MIB), 0x22);
	stop();
}

static void queue_numbers_follow_features(void **state)
{
	struct virtio_balloon_cfg cfg = {.stats_interval_s = 1, .free_page_reporting = true};
	uint64_t feat = v1() | (1ull << VIRTIO_BALLOON_F_STATS_VQ) |
			(1ull << VIRTIO_BALLOON_F_REPORTING);

	(void)state;
	start(&cfg, feat, 4);
	assert_int_equal(dev.q_stats, 2);
	assert_int_equal(dev.q_report, 3);
	/* A reset forgets them. */
	wr(VIRTIO_MMIO_STATUS, 0);
	assert_int_equal(dev.q_stats, -1);
	assert_int_equal(dev.q_report, -1);
	stop();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(config_space_and_target),
		cmocka_unit_test(inflate_deflate_whole_huge_pages),
		cmocka_unit_test(stats_held_and_given_back),
		cmocka_unit_test(reporting_whole_pages_only),
		cmocka_unit_test(reset_empties_the_balloon),
		cmocka_unit_test(queue_numbers_follow_features),
	};

	log_set_sink(quiet, NULL);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
