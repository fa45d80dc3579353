/*
 * memory/reclaim.c on real mappings of this host (no hypervisor): what the
 * guest hands over is given back only as whole host pages, measured by the
 * host's own accounting (PAGEMAP_SCAN, smaps, the memfd's blocks, the hugetlb
 * pool); the rest stays huge. Host settings a case needs (THP, shmem THP, the
 * hugetlb pool) are set by the case and put back by its teardown, failed or not.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/log.h"
#include "common/sysfs.h"
#include "memory/host.h"
#include "memory/measure.h"
#include "memory/mem.h"
#include "memory/reclaim.h"

#define POOL_2M HOST_HUGEPAGES_DIR "/hugepages-2048kB"

/* What a case maps and starts; its teardown releases all of it. */
static struct guest_mem gm;
static struct mem_reclaim rc;
static pid_t child = -1;

/* sysfs values a case changed, restored in reverse order by its teardown. */
static struct {
	char path[128], old[32];
} saved[8];
static unsigned nsaved;

static void quiet(enum log_level lvl, const char *msg, void *opaque)
{
	(void)lvl;
	(void)msg;
	(void)opaque;
}

/* Set @path to @val, remembering the old value; false (and why, printed) if it cannot be. */
static bool sysfs_set(const char *path, const char *val)
{
	char old[32];
	int r = strstr(path, "transparent_hugepage") ? sysfs_read_choice(path, old, sizeof(old))
						     : sysfs_read(path, old, sizeof(old));

	if (r < 0) {
		print_message("skip: cannot read %s: %s\n", path, strerror(-r));
		return false;
	}
	if (!strcmp(old, val))
		return true;
	assert_true(nsaved < ARRAY_SIZE(saved));
	r = sysfs_write(path, val);
	if (r) {
		print_message("skip: cannot set %s to %s: %s\n", path, val, strerror(-r));
		return false;
	}
	snprintf(saved[nsaved].path, sizeof(saved[nsaved].path), "%s", path);
	snprintf(saved[nsaved].old, sizeof(saved[nsaved].old), "%s", old);
	nsaved++;
	return true;
}

static int cleanup(void **state)
{
	(void)state;
	if (child > 0) {
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
		child = -1;
	}
	mem_reclaim_destroy(&rc);
	mem_unmap(&gm);
	while (nsaved) {
		nsaved--;
		if (sysfs_write(saved[nsaved].path, saved[nsaved].old))
			print_message("warning: could not restore %s to %s\n", saved[nsaved].path,
				      saved[nsaved].old);
	}
	unsetenv("HUGEVMM_MEASURE");
	log_set_sink(NULL, NULL);
	return 0;
}

static struct mem_region_cfg cfg(enum mem_backing b, const char *id, uint64_t mib)
{
	struct mem_region_cfg c;

	mem_cfg_init(&c, b, id, "memory.regions[0]");
	c.size = mib * SZ_1M;
	c.policy = MEM_POLICY_OFF;
	c.policy_set = true;
	return c;
}

static void map(struct mem_region_cfg *c, unsigned n)
{
	struct vmm_err e = {0};

	for (unsigned i = 0; i < n; i++)
		snprintf(c[i].origin, sizeof(c[i].origin), "memory.regions[%u]", i);
	if (mem_cfg_finalize_all(c, n, &e))
		fail_msg("finalize: %s", e.msg);
	if (mem_map(&gm, c, n, &e))
		fail_msg("mem_map: %s", e.msg);
	if (mem_verify(&gm, &e))
		fail_msg("mem_verify: %s", e.msg);
	assert_int_equal(mem_reclaim_init(&rc, &gm), 0);
}

/* THP on request for advised ranges, with direct compaction for them. */
static bool want_thp(void)
{
	char en[16] = "";

	sysfs_read_choice(HOST_THP_DIR "/enabled", en, sizeof(en));
	if (!en[0]) {
		print_message("skip: this kernel has no transparent huge pages\n");
		return false;
	}
	if (strcmp(en, "always") && !sysfs_set(HOST_THP_DIR "/enabled", "madvise"))
		return false;
	return sysfs_set(HOST_THP_DIR "/defrag", "madvise");
}

/* Huge pages for advised shmem (memfd), the PMD size following the global knob. */
static bool want_shmem_thp(void)
{
	if (!want_thp() || !sysfs_set(HOST_THP_DIR "/shmem_enabled", "advise"))
		return false;
	if (access(HOST_THP_DIR "/hugepages-2048kB/shmem_enabled", F_OK) == 0 &&
	    !sysfs_set(HOST_THP_DIR "/hugepages-2048kB/shmem_enabled", "inherit"))
		return false;
	return true;
}

static struct mem_region *region(unsigned i)
{
	return &gm.regions[i];
}

static int64_t huge_bytes(const struct mem_region *r)
{
	return measure_huge_bytes((uintptr_t)r->hva, (uintptr_t)r->hva + r->size);
}

static uint64_t rss(const struct mem_region *r)
{
	struct smaps_totals t;

	assert_int_equal(measure_smaps(0, (uintptr_t)r->hva, (uintptr_t)r->hva + r->size, &t), 0);
	return t.rss;
}

static struct mem_reclaim_stats stats(void)
{
	struct mem_reclaim_stats s;

	mem_reclaim_stats(&rc, &s);
	return s;
}

/* Every region starts fully huge, or the case cannot show anything: skip. */
static bool all_huge(void)
{
	if (!host_has_pagemap_scan()) {
		print_message("skip: needs PAGEMAP_SCAN (Linux 6.7+) to see huge pages\n");
		return false;
	}
	for (unsigned i = 0; i < gm.nregions; i++)
		if (huge_bytes(region(i)) != (int64_t)region(i)->size) {
			print_message("skip: the host gave \"%s\" %lld of %llu bytes huge (memory "
				      "fragmented?)\n",
				      region(i)->cfg.id, (long long)huge_bytes(region(i)),
				      (unsigned long long)region(i)->size);
			return false;
		}
	return true;
}

static void write_all(uint8_t *p, uint64_t len, uint8_t v)
{
	memset(p, v, len);
}

/*
 * Coverage by both methods: bytes absent are what reclaim gave back (nothing
 * else is absent in a prefaulted region), the rest stays mapped huge.
 */
static void coverage_is(const struct mem_region *r, uint64_t huge, uint64_t absent)
{
	struct mem_cov cov;

	assert_int_equal(measure_region(r, &cov), 0);
	assert_string_equal(cov.method, "pagemap_scan");
	assert_int_equal(cov.bytes_2m, huge);
	assert_int_equal(cov.bytes_absent, absent);
	assert_int_equal(cov.bytes_4k, r->size - huge - absent);
	setenv("HUGEVMM_MEASURE", "smaps", 1);
	assert_int_equal(measure_region(r, &cov), 0);
	unsetenv("HUGEVMM_MEASURE");
	assert_string_equal(cov.method, "smaps");
	assert_int_equal(cov.bytes_2m, huge);
	assert_int_equal(cov.bytes_absent, absent);
}

/*
 * The balloon on a region of 2M host pages: 8 whole host pages (4..11) and
 * 100 4K pages of a ninth (12). Shared by thp and memfd.
 */
static void balloon_eight_and_a_bit(struct mem_region *r, const char *how)
{
	uint64_t rss0 = rss(r), blocks0 = 0, gpa;
	struct mem_reclaim_stats s;
	struct stat st;

	if (r->fd >= 0) {
		assert_int_equal(fstat(r->fd, &st), 0);
		blocks0 = (uint64_t)st.st_blocks * 512;
		assert_int_equal(blocks0, r->size);
	}
	assert_int_equal(mem_measure(&gm), 0);
	write_all(r->hva + 12 * SZ_2M, SZ_2M, 0x5a);
	for (gpa = 4 * SZ_2M; gpa < 12 * SZ_2M; gpa += SZ_4K)
		assert_int_equal(mem_reclaim_inflate(&rc, r->gpa + gpa), 0);
	for (unsigned i = 0; i < 100; i++)
		assert_int_equal(mem_reclaim_inflate(&rc, r->gpa + 12 * SZ_2M + i * SZ_4K), 0);
	/* Inflating a page twice changes nothing. */
	assert_int_equal(mem_reclaim_inflate(&rc, r->gpa + 12 * SZ_2M), 0);

	s = stats();
	assert_int_equal(s.huge_reclaimed, 8);
	assert_int_equal(!strcmp(how, "punch") ? s.discards_punch : s.discards_dontneed, 8);
	assert_int_equal(s.discard_errors + s.rejected + s.avoided_4k, 0);
	assert_int_equal(r->reclaimed_bytes, 16 * SZ_1M);
	assert_int_equal(r->balloon_bytes, 100 * SZ_4K);
	/* The host got exactly the 8 whole pages back; the ninth was not touched. */
	assert_int_equal(rss0 - rss(r), 16 * SZ_1M);
	assert_int_equal(huge_bytes(r), r->size - 16 * SZ_1M);
	coverage_is(r, r->size - 16 * SZ_1M, 16 * SZ_1M);
	for (uint64_t i = 0; i < SZ_2M; i++)
		if (r->hva[12 * SZ_2M + i] != 0x5a)
			fail_msg("byte %llu of the partly ballooned host page changed",
				 (unsigned long long)i);
	if (r->fd >= 0) {
		assert_int_equal(fstat(r->fd, &st), 0);
		assert_int_equal(blocks0 - (uint64_t)st.st_blocks * 512, 16 * SZ_1M);
	}
	print_message("%s: 8 whole 2M pages + 100 4K pages in the balloon: RSS %llu -> %llu "
		      "MiB, huge %lld MiB, reclaimed %llu MiB, in the balloon %llu KiB\n",
		      how, (unsigned long long)(rss0 >> 20), (unsigned long long)(rss(r) >> 20),
		      (long long)(huge_bytes(r) >> 20),
		      (unsigned long long)(r->reclaimed_bytes >> 20),
		      (unsigned long long)(r->balloon_bytes >> 10));
	/* A measurement now is no drift: the pages left on purpose. */
	assert_int_equal(mem_measure(&gm), 0);
	assert_int_equal(r->drift_events, 0);
	mem_reclaim_refresh(&rc);
	assert_int_equal(stats().refaults, 0);

	for (gpa = 4 * SZ_2M; gpa < 12 * SZ_2M + 100 * SZ_4K; gpa += SZ_4K)
		assert_int_equal(mem_reclaim_deflate(&rc, r->gpa + gpa), 0);
	/* A page not in the balloon deflates to nothing. */
	assert_int_equal(mem_reclaim_deflate(&rc, r->gpa + 20 * SZ_2M), 0);
	s = stats();
	assert_int_equal(s.returned, 8);
	assert_int_equal(r->reclaimed_bytes, 0);
	assert_int_equal(r->balloon_bytes, 0);
	/* Returned but not touched yet: absent, and still no drift. */
	assert_int_equal(mem_measure(&gm), 0);
	assert_int_equal(r->host.bytes_absent, 16 * SZ_1M);
	assert_int_equal(r->drift_events, 0);

	/* The guest's touch brings them back, as huge pages. */
	write_all(r->hva + 4 * SZ_2M, 16 * SZ_1M, 0xa5);
	assert_int_equal(huge_bytes(r), r->size);
	assert_int_equal(rss(r), rss0);
	mem_reclaim_refresh(&rc);
	assert_int_equal(stats().refaults, 0);
	assert_int_equal(mem_measure(&gm), 0);
	assert_int_equal(r->drift_events, 0);
	print_message("%s: deflated and touched: huge %lld MiB again, RSS %llu MiB\n", how,
		      (long long)(huge_bytes(r) >> 20), (unsigned long long)(rss(r) >> 20));
}

static void thp_balloon_gives_back_whole_pages(void **state)
{
	struct mem_region_cfg c = cfg(MEM_BACKING_THP, "t", 64);

	(void)state;
	if (!want_thp())
		skip();
	map(&c, 1);
	if (!all_huge())
		skip();
	assert_int_equal(region(0)->reclaim, MEM_RECLAIM_DONTNEED);
	assert_string_equal(region(0)->reclaim_why, "thp: whole 2M pages go back (MADV_DONTNEED)");
	balloon_eight_and_a_bit(region(0), "thp");
}

static void memfd_balloon_punches_whole_pages(void **state)
{
	struct mem_region_cfg c = cfg(MEM_BACKING_MEMFD, "m", 64);
	struct mem_region *r;

	(void)state;
	if (!want_shmem_thp())
		skip();
	map(&c, 1);
	if (!all_huge())
		skip();
	r = region(0);
	assert_int_equal(r->reclaim, MEM_RECLAIM_PUNCH);
	assert_string_equal(r->reclaim_why, "memfd: whole 2M pages go back (fallocate punch hole)");
	balloon_eight_and_a_bit(r, "punch");

	/*
	 * MAP_SHARED: mincore tells whether the memfd holds the page (page cache),
	 * not whether this mapping maps it. A punched page is not held; a guest
	 * that touches a page still in its balloon brings it back: a refault.
	 */
	for (uint64_t gpa = 0; gpa < SZ_2M; gpa += SZ_4K)
		assert_int_equal(mem_reclaim_inflate(&rc, r->gpa + 30 * SZ_2M + gpa), 0);
	mem_reclaim_refresh(&rc);
	assert_int_equal(stats().refaults, 0);
	assert_int_equal(r->reclaimed_bytes, SZ_2M);
	r->hva[30 * SZ_2M + 8 * SZ_4K] = 1;
	mem_reclaim_refresh(&rc);
	assert_int_equal(stats().refaults, 1);
	assert_int_equal(r->reclaimed_bytes, 0);
	assert_int_equal(r->balloon_bytes, SZ_2M); /* still in the balloon, but back */
}

static void report_discards_whole_pages_only(void **state)
{
	struct mem_region_cfg c = cfg(MEM_BACKING_THP, "t", 64);
	struct mem_reclaim_stats s;
	struct mem_region *r;
	uint64_t rss0;

	(void)state;
	if (!want_thp())
		skip();
	map(&c, 1);
	if (!all_huge())
		skip();
	r = region(0);
	rss0 = rss(r);
	/* 4 MiB from a 2M boundary: two whole host pages, in one call. */
	assert_int_equal(mem_reclaim_report(&rc, r->gpa + 10 * SZ_1M, 4 * SZ_1M), 0);
	s = stats();
	assert_int_equal(s.huge_reclaimed, 2);
	assert_int_equal(s.discards_dontneed, 1);
	assert_int_equal(s.avoided_4k, 0);
	assert_int_equal(r->reclaimed_bytes, 4 * SZ_1M);
	assert_int_equal(r->balloon_bytes, 0);
	assert_int_equal(rss0 - rss(r), 4 * SZ_1M);

	/* 2M + 4K from 4K into a host page: no whole page inside; all of it avoided. */
	assert_int_equal(mem_reclaim_report(&rc, r->gpa + 20 * SZ_1M + SZ_4K, SZ_2M + SZ_4K), 0);
	s = stats();
	assert_int_equal(s.huge_reclaimed, 2);
	assert_int_equal(s.discards_dontneed, 1);
	assert_int_equal(s.avoided_4k, 513);
	assert_int_equal(rss0 - rss(r), 4 * SZ_1M);
	/* 4M + 8K from 4K before a boundary: the two whole pages go, 2 x 4K avoided. */
	assert_int_equal(
		mem_reclaim_report(&rc, r->gpa + 32 * SZ_1M - SZ_4K, 4 * SZ_1M + 2 * SZ_4K), 0);
	s = stats();
	assert_int_equal(s.huge_reclaimed, 4);
	assert_int_equal(s.discards_dontneed, 2);
	assert_int_equal(s.avoided_4k, 515);
	assert_int_equal(r->reclaimed_bytes, 8 * SZ_1M);
	coverage_is(r, r->size - 8 * SZ_1M, 8 * SZ_1M);

	/* The guest uses a reported page again: refresh sees that host page back. */
	r->hva[10 * SZ_1M + 5 * SZ_4K] = 7;
	mem_reclaim_refresh(&rc);
	s = stats();
	assert_int_equal(s.refaults, 1);
	assert_int_equal(r->reclaimed_bytes, 6 * SZ_1M);
	assert_int_equal(huge_bytes(r), r->size - 6 * SZ_1M);
	assert_int_equal(mem_measure(&gm), 0);
	assert_int_equal(r->drift_events, 0);
	/* Reported again while partly in the balloon: its balloon bytes leave the count. */
	assert_int_equal(mem_reclaim_inflate(&rc, r->gpa + 10 * SZ_1M), 0);
	assert_int_equal(r->balloon_bytes, SZ_4K);
	assert_int_equal(mem_reclaim_report(&rc, r->gpa + 10 * SZ_1M, SZ_2M), 0);
	assert_int_equal(r->balloon_bytes, 0);
	assert_int_equal(r->reclaimed_bytes, 8 * SZ_1M);
	print_message("report: reclaimed %llu MiB, avoided %llu 4K pages, refaults %llu\n",
		      (unsigned long long)(r->reclaimed_bytes >> 20),
		      (unsigned long long)stats().avoided_4k, (unsigned long long)stats().refaults);
}

static void bad_addresses_are_refused(void **state)
{
	/* a: [0, 3M); a hole [3M, 4M) (the next region is 2M-aligned); t: [4M, 12M); m: to 20M */
	struct mem_region_cfg c[3] = {cfg(MEM_BACKING_ANON, "a", 3), cfg(MEM_BACKING_THP, "t", 8),
				      cfg(MEM_BACKING_MEMFD, "m", 8)};
	uint64_t rss0[3];
	struct mem_reclaim_stats s;
	unsigned rejected = 0;

	(void)state;
	map(c, 3);
	assert_int_equal(gm.slots[1].gpa, 4 * SZ_1M);
	assert_int_equal(gm.slots[2].gpa, 12 * SZ_1M);
	assert_int_equal(gm.top, 20 * SZ_1M);
	for (unsigned i = 0; i < 3; i++)
		rss0[i] = rss(region(i));

	assert_int_equal(mem_reclaim_inflate(&rc, 4 * SZ_1M + 1), -EINVAL), rejected++;
	assert_int_equal(mem_reclaim_inflate(&rc, 4 * SZ_1M + 2048), -EINVAL), rejected++;
	assert_int_equal(mem_reclaim_inflate(&rc, 3 * SZ_1M), -EINVAL), rejected++;
	assert_int_equal(mem_reclaim_inflate(&rc, 4 * SZ_1M - SZ_4K), -EINVAL), rejected++;
	assert_int_equal(mem_reclaim_inflate(&rc, gm.top), -EINVAL), rejected++;
	assert_int_equal(mem_reclaim_inflate(&rc, UINT64_MAX & ~(SZ_4K - 1)), -EINVAL), rejected++;
	assert_int_equal(mem_reclaim_deflate(&rc, 3 * SZ_1M + SZ_4K), -EINVAL), rejected++;
	assert_int_equal(mem_reclaim_deflate(&rc, 5 * SZ_1M + 8), -EINVAL), rejected++;
	assert_int_equal(mem_reclaim_report(&rc, 4 * SZ_1M, 0), -EINVAL), rejected++;
	assert_int_equal(mem_reclaim_report(&rc, 4 * SZ_1M, SZ_2M + 1), -EINVAL), rejected++;
	assert_int_equal(mem_reclaim_report(&rc, 4 * SZ_1M + 512, SZ_2M), -EINVAL), rejected++;
	/* t's last 2M and m's first 2M: both RAM, whole pages, but two regions. */
	assert_int_equal(mem_reclaim_report(&rc, 10 * SZ_1M, 4 * SZ_1M), -EINVAL), rejected++;
	/* a's end into the hole, and from t to past the top. */
	assert_int_equal(mem_reclaim_report(&rc, 2 * SZ_1M, 2 * SZ_1M), -EINVAL), rejected++;
	assert_int_equal(mem_reclaim_report(&rc, 18 * SZ_1M, 4 * SZ_1M), -EINVAL), rejected++;
	assert_int_equal(mem_reclaim_report(&rc, gm.top, SZ_2M), -EINVAL), rejected++;
	/* A range whose end wraps around. */
	assert_int_equal(mem_reclaim_report(&rc, 4 * SZ_1M, UINT64_MAX - SZ_4K + 1), -EINVAL),
		rejected++;

	s = stats();
	assert_int_equal(s.rejected, rejected);
	assert_int_equal(s.discards_dontneed + s.discards_punch + s.huge_reclaimed + s.avoided_4k,
			 0);
	for (unsigned i = 0; i < 3; i++) {
		assert_int_equal(rss(region(i)), rss0[i]);
		assert_int_equal(region(i)->reclaimed_bytes + region(i)->balloon_bytes, 0);
	}
	/* The same addresses, well formed, are taken. */
	assert_int_equal(mem_reclaim_report(&rc, 10 * SZ_1M, SZ_2M), 0);
	assert_int_equal(mem_reclaim_report(&rc, 12 * SZ_1M, SZ_2M), 0);
	assert_int_equal(mem_reclaim_report(&rc, 2 * SZ_1M, SZ_1M), 0);
	s = stats();
	assert_int_equal(s.rejected, rejected);
	assert_int_equal(s.discards_dontneed, 2); /* t's page, a's 256 4K pages in one call */
	assert_int_equal(s.discards_punch, 1);
	assert_int_equal(region(0)->reclaimed_bytes, SZ_1M);
	assert_int_equal(region(1)->reclaimed_bytes, SZ_2M);
	assert_int_equal(region(2)->reclaimed_bytes, SZ_2M);
	print_message("rejected %u malformed pages and ranges, nothing discarded by them\n",
		      rejected);
}

/* A guest read of a page hugetlb could not back (SIGBUS) fails the case instead of the run. */
static sigjmp_buf bus_jmp;

static void on_sigbus(int sig)
{
	(void)sig;
	siglongjmp(bus_jmp, 1);
}

static bool read_survives(const volatile uint8_t *p, uint64_t len, uint8_t want)
{
	struct sigaction sa = {.sa_handler = on_sigbus}, old;
	volatile uint64_t bad = 0;
	volatile bool ok = true;

	sigaction(SIGBUS, &sa, &old);
	if (sigsetjmp(bus_jmp, 1) == 0) {
		for (uint64_t i = 0; i < len; i += 512)
			bad += p[i] != want;
	} else {
		ok = false;
	}
	sigaction(SIGBUS, &old, NULL);
	if (!ok)
		print_message("SIGBUS reading the page\n");
	assert_int_equal(bad, 0);
	return ok;
}

static uint64_t pool_free(void)
{
	struct host_pool p;

	assert_int_equal(host_pool_read(SZ_2M, &p), 0);
	return p.free;
}

/* Free pages nobody has reserved: what a new mapping or a fallocate can take. */
static uint64_t pool_avail(void)
{
	struct host_pool p;

	assert_int_equal(host_pool_read(SZ_2M, &p), 0);
	return p.free > p.resv ? p.free - p.resv : 0;
}

/* A pool with at least @pages free and unreserved 2M pages and no surplus pages to lend. */
static bool want_pool(uint64_t pages)
{
	struct host_pool p;
	char v[32];

	if (host_pool_read(SZ_2M, &p)) {
		print_message("skip: this kernel has no 2M hugetlb pool\n");
		return false;
	}
	if (!sysfs_set(POOL_2M "/nr_overcommit_hugepages", "0"))
		return false;
	if (p.free - p.resv >= pages)
		return true;
	snprintf(v, sizeof(v), "%llu", (unsigned long long)(p.nr + pages - (p.free - p.resv)));
	if (!sysfs_set(POOL_2M "/nr_hugepages", v))
		return false;
	assert_int_equal(host_pool_read(SZ_2M, &p), 0);
	if (p.free - p.resv < pages) {
		print_message("skip: the host found only %llu free 2M hugetlb pages of %llu\n",
			      (unsigned long long)(p.free - p.resv), (unsigned long long)pages);
		return false;
	}
	return true;
}

/*
 * A child that takes every free 2M page of the pool (MAP_HUGETLB, touched) and
 * holds them until @release is closed; how many it took comes back on @took.
 */
static pid_t drain_pool(int *release)
{
	int took[2], rel[2];
	uint64_t n = 0;
	pid_t pid;

	assert_int_equal(pipe(took), 0);
	assert_int_equal(pipe(rel), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct host_pool p;
		char c;
		void *m = MAP_FAILED;

		close(took[0]);
		close(rel[1]);
		if (host_pool_read(SZ_2M, &p) == 0 && p.free > p.resv) {
			n = p.free - p.resv;
			m = mmap(NULL, n * SZ_2M, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
			if (m == MAP_FAILED)
				n = 0;
			else
				memset(m, 1, n * SZ_2M);
		}
		if (write(took[1], &n, sizeof(n)) != sizeof(n))
			_exit(1);
		while (read(rel[0], &c, 1) > 0)
			;
		_exit(0);
	}
	close(took[1]);
	close(rel[0]);
	assert_int_equal(read(took[0], &n, sizeof(n)), sizeof(n));
	close(took[0]);
	print_message("hugetlb: a child took the pool's %llu free pages\n", (unsigned long long)n);
	*release = rel[1];
	return pid;
}

static void hugetlb_keeps_or_returns_through_the_pool(void **state)
{
	struct mem_region_cfg c = cfg(MEM_BACKING_HUGETLB, "h", 8);
	struct mem_region *r;
	uint64_t free0, free1;
	struct mem_reclaim_stats s;
	int release;

	(void)state;
	if (!want_pool(4 + 1))
		skip();

	/* Default "keep": a whole page in the balloon is not given back. */
	map(&c, 1);
	r = region(0);
	assert_int_equal(r->cfg.reclaim, MEM_RECLAIM_CFG_KEEP);
	assert_int_equal(r->reclaim, MEM_RECLAIM_KEEP);
	assert_non_null(strstr(r->reclaim_why, "hugetlb: keeps its pages"));
	write_all(r->hva + SZ_2M, SZ_2M, 0x33);
	free0 = pool_free();
	for (uint64_t o = 0; o < SZ_2M; o += SZ_4K)
		assert_int_equal(mem_reclaim_inflate(&rc, r->gpa + SZ_2M + o), 0);
	assert_int_equal(mem_reclaim_report(&rc, r->gpa + 2 * SZ_2M, 2 * SZ_2M), 0);
	s = stats();
	assert_int_equal(s.discards_punch + s.huge_reclaimed, 0);
	assert_int_equal(s.avoided_4k, 1024);
	assert_int_equal(pool_free(), free0);
	assert_int_equal(r->reclaimed_bytes, 0);
	assert_int_equal(r->balloon_bytes, SZ_2M);
	assert_true(read_survives(r->hva + SZ_2M, SZ_2M, 0x33));
	mem_reclaim_destroy(&rc);
	mem_unmap(&gm);

	/* "return": the whole page goes back to the pool. */
	c = cfg(MEM_BACKING_HUGETLB, "h", 8);
	c.reclaim = MEM_RECLAIM_CFG_RETURN;
	map(&c, 1);
	r = region(0);
	assert_int_equal(r->reclaim, MEM_RECLAIM_PUNCH);
	assert_string_equal(r->reclaim_why,
			    "hugetlb: whole 2M pages go back to the pool; a deflate takes them "
			    "back first (it waits while the pool is empty)");
	write_all(r->hva + SZ_2M, SZ_2M, 0x33);
	free0 = pool_free();
	for (uint64_t o = 0; o < SZ_2M; o += SZ_4K)
		assert_int_equal(mem_reclaim_inflate(&rc, r->gpa + SZ_2M + o), 0);
	free1 = pool_free();
	assert_int_equal(free1, free0 + 1);
	assert_int_equal(stats().discards_punch, 1);
	assert_int_equal(r->reclaimed_bytes, SZ_2M);
	coverage_is(r, r->size - SZ_2M, SZ_2M);
	/* Reports never give hugetlb pages back, "return" or not. */
	assert_int_equal(mem_reclaim_report(&rc, r->gpa + 2 * SZ_2M, SZ_2M), 0);
	assert_int_equal(stats().discards_punch, 1);
	assert_int_equal(pool_free(), free1);

	/* Someone else takes the pool: the deflate waits and nothing changes. */
	child = drain_pool(&release);
	assert_int_equal(pool_avail(), 0);
	assert_int_equal(mem_reclaim_deflate(&rc, r->gpa + SZ_2M), -ENOMEM);
	assert_int_equal(mem_reclaim_deflate(&rc, r->gpa + SZ_2M + 7 * SZ_4K), -ENOMEM);
	s = stats();
	assert_int_equal(s.repopulate_fails, 2);
	assert_int_equal(s.repopulated + s.returned, 0);
	assert_int_equal(r->reclaimed_bytes, SZ_2M);
	assert_int_equal(r->balloon_bytes, 0);
	/* Still all in the balloon: deflating it twice more would still wait. */
	assert_int_equal(mem_reclaim_deflate(&rc, r->gpa + SZ_2M), -ENOMEM);

	/* The pool is given back: now the deflate takes the page first, then says yes. */
	close(release);
	assert_int_equal(waitpid(child, NULL, 0), child);
	child = -1;
	assert_int_equal(pool_free(), free1);
	assert_int_equal(mem_reclaim_deflate(&rc, r->gpa + SZ_2M), 0);
	s = stats();
	assert_int_equal(s.repopulated, 1);
	assert_int_equal(s.returned, 1);
	assert_int_equal(pool_free(), free0);
	assert_int_equal(r->reclaimed_bytes, 0);
	assert_int_equal(r->balloon_bytes, SZ_2M - SZ_4K);
	for (uint64_t o = SZ_4K; o < SZ_2M; o += SZ_4K)
		assert_int_equal(mem_reclaim_deflate(&rc, r->gpa + SZ_2M + o), 0);
	assert_int_equal(stats().repopulated, 1);
	assert_int_equal(r->balloon_bytes, 0);
	/* Backed before the guest was told: it reads (zeros) and the pool does not move. */
	assert_true(read_survives(r->hva + SZ_2M, SZ_2M, 0));
	assert_int_equal(pool_free(), free0);
	assert_int_equal(huge_bytes(r), r->size);
	mem_reclaim_refresh(&rc);
	assert_int_equal(stats().refaults, 0);
	print_message("hugetlb return: pool free %llu -> %llu (inflate) -> 0 (drained: deflate "
		      "waits, %llu fails) -> %llu (deflated)\n",
		      (unsigned long long)free0, (unsigned long long)free1,
		      (unsigned long long)stats().repopulate_fails,
		      (unsigned long long)pool_free());
}

static void anon_4k_pages_go_at_once(void **state)
{
	struct mem_region_cfg c = cfg(MEM_BACKING_ANON, "a", 8);
	struct mem_region *r;
	struct mem_reclaim_stats s;
	uint64_t rss0;

	(void)state;
	map(&c, 1);
	r = region(0);
	assert_int_equal(r->page_size, SZ_4K);
	assert_int_equal(r->reclaim, MEM_RECLAIM_DONTNEED);
	assert_string_equal(r->reclaim_why, "anon: 4K pages go back (MADV_DONTNEED)");
	rss0 = rss(r);
	for (unsigned i = 0; i < 10; i++) {
		assert_int_equal(mem_reclaim_inflate(&rc, r->gpa + SZ_1M + i * 2 * SZ_4K), 0);
		assert_int_equal(stats().discards_dontneed, i + 1);
		assert_int_equal(rss0 - rss(r), (i + 1) * SZ_4K);
	}
	assert_int_equal(r->reclaimed_bytes, 10 * SZ_4K);
	assert_int_equal(r->balloon_bytes, 0);
	assert_int_equal(mem_reclaim_report(&rc, r->gpa + 4 * SZ_1M, 4 * SZ_4K), 0);
	s = stats();
	assert_int_equal(s.discards_dontneed, 11);
	assert_int_equal(s.huge_reclaimed, 14);
	assert_int_equal(s.avoided_4k, 0);
	assert_int_equal(rss0 - rss(r), 14 * SZ_4K);
	for (unsigned i = 0; i < 10; i++)
		assert_int_equal(mem_reclaim_deflate(&rc, r->gpa + SZ_1M + i * 2 * SZ_4K), 0);
	assert_int_equal(stats().returned, 10);
	assert_int_equal(r->reclaimed_bytes, 4 * SZ_4K);
	memset(r->hva + SZ_1M, 1, 20 * SZ_4K);
	assert_int_equal(rss0 - rss(r), 4 * SZ_4K);
}

/* Regions that keep: a file keeps its blocks; its balloon bytes are still counted. */
static void file_keeps_but_counts(void **state)
{
	char dir[] = "/tmp/hugevmm-reclaim-XXXXXX";
	struct mem_region_cfg c = cfg(MEM_BACKING_FILE, "f", 4);
	static struct guest_mem copy;
	struct mem_region *r;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(c.path, sizeof(c.path), "%s/vm.img", dir);
	map(&c, 1);
	rmdir(dir);
	r = region(0);
	assert_int_equal(r->reclaim, MEM_RECLAIM_KEEP);
	assert_string_equal(r->reclaim_why, "file: no reclaim (the file keeps its blocks)");
	for (uint64_t o = 0; o < SZ_2M; o += SZ_4K)
		assert_int_equal(mem_reclaim_inflate(&rc, r->gpa + o), 0);
	assert_int_equal(mem_reclaim_report(&rc, r->gpa + SZ_2M, SZ_2M), 0);
	assert_int_equal(stats().discards_punch + stats().discards_dontneed, 0);
	assert_int_equal(stats().avoided_4k, 512);
	assert_int_equal(r->balloon_bytes, SZ_2M);
	assert_int_equal(r->reclaimed_bytes, 0);
	/* The snapshot carries the counts into a copy. */
	memset(&copy, 0, sizeof(copy));
	copy.nregions = 1;
	mem_reclaim_snapshot(&rc, &copy);
	assert_int_equal(copy.regions[0].balloon_bytes, SZ_2M);
	assert_int_equal(copy.regions[0].reclaim, MEM_RECLAIM_KEEP);
	assert_string_equal(copy.regions[0].reclaim_why, r->reclaim_why);
	assert_int_equal(mem_reclaim_deflate(&rc, r->gpa), 0);
	assert_int_equal(r->balloon_bytes, SZ_2M - SZ_4K);
	assert_int_equal(stats().returned, 0);
}

static void reclaim_config(void **state)
{
	static const struct {
		enum mem_backing b;
		enum mem_reclaim_cfg def;
	} defaults[] = {
		{MEM_BACKING_ANON, MEM_RECLAIM_CFG_RETURN},
		{MEM_BACKING_THP, MEM_RECLAIM_CFG_RETURN},
		{MEM_BACKING_MEMFD, MEM_RECLAIM_CFG_RETURN},
		{MEM_BACKING_HUGETLB, MEM_RECLAIM_CFG_KEEP},
		{MEM_BACKING_FILE, MEM_RECLAIM_CFG_KEEP},
		{MEM_BACKING_DEVDAX, MEM_RECLAIM_CFG_KEEP},
	};
	enum mem_reclaim_cfg v = MEM_RECLAIM_CFG_DEFAULT;
	struct vmm_err e;

	(void)state;
	assert_int_equal(mem_reclaim_cfg_parse("keep", &v), 0);
	assert_int_equal(v, MEM_RECLAIM_CFG_KEEP);
	assert_int_equal(mem_reclaim_cfg_parse("return", &v), 0);
	assert_int_equal(v, MEM_RECLAIM_CFG_RETURN);
	assert_int_equal(mem_reclaim_cfg_parse("default", &v), -EINVAL);
	assert_int_equal(mem_reclaim_cfg_parse("Return", &v), -EINVAL);
	assert_int_equal(mem_reclaim_cfg_parse("", &v), -EINVAL);
	assert_int_equal(v, MEM_RECLAIM_CFG_RETURN);
	assert_string_equal(mem_reclaim_cfg_name(MEM_RECLAIM_CFG_KEEP), "keep");
	assert_string_equal(mem_reclaim_cfg_name(MEM_RECLAIM_CFG_RETURN), "return");
	assert_string_equal(mem_reclaim_cfg_name(MEM_RECLAIM_CFG_DEFAULT), "default");
	assert_string_equal(mem_reclaim_cfg_name((enum mem_reclaim_cfg)9), "?");

	for (unsigned i = 0; i < ARRAY_SIZE(defaults); i++) {
		for (int want = 0; want < 3; want++) {
			struct mem_region_cfg c = cfg(defaults[i].b, "r", 64);
			int r;

			snprintf(c.origin, sizeof(c.origin), "memory.regions[3]");
			if (defaults[i].b == MEM_BACKING_FILE)
				snprintf(c.path, sizeof(c.path), "/tmp/vm.img");
			if (defaults[i].b == MEM_BACKING_DEVDAX)
				snprintf(c.device, sizeof(c.device), "dax0.0");
			c.reclaim = (enum mem_reclaim_cfg)want;
			memset(&e, 0, sizeof(e));
			r = mem_cfg_finalize(&c, &e);
			if (want == MEM_RECLAIM_CFG_RETURN &&
			    (defaults[i].b == MEM_BACKING_FILE ||
			     defaults[i].b == MEM_BACKING_DEVDAX)) {
				assert_int_equal(r, -EINVAL);
				assert_int_equal(e.kind, ERR_CONFIG);
				assert_non_null(strstr(e.msg, "memory.regions[3].reclaim: "
							      "\"return\" is not available with "
							      "backing"));
				assert_non_null(strstr(e.msg, "set \"keep\""));
				continue;
			}
			if (r)
				fail_msg("%s, reclaim %d: %s", mem_backing_name(defaults[i].b),
					 want, e.msg);
			assert_int_equal(c.reclaim,
					 want ? (enum mem_reclaim_cfg)want : defaults[i].def);
			/* Finalizing again keeps the value. */
			assert_int_equal(mem_cfg_finalize(&c, &e), 0);
			assert_int_equal(c.reclaim,
					 want ? (enum mem_reclaim_cfg)want : defaults[i].def);
		}
	}
	{
		struct mem_region_cfg c = cfg(MEM_BACKING_THP, "r", 64);

		c.reclaim = (enum mem_reclaim_cfg)7;
		memset(&e, 0, sizeof(e));
		assert_int_equal(mem_cfg_finalize(&c, &e), -EINVAL);
		assert_non_null(strstr(e.msg, "memory.regions[0].reclaim: unknown value 7"));
	}
}

/* host_offset puts a thp mapping off the 2M grid: it keeps, rather than break two huge pages. */
static void misaligned_region_keeps(void **state)
{
	struct mem_region_cfg c = cfg(MEM_BACKING_THP, "mis", 8);
	struct mem_region *r;

	(void)state;
	c.host_offset = SZ_4K;
	log_set_sink(quiet, NULL);
	map(&c, 1);
	r = region(0);
	assert_int_equal(r->reclaim, MEM_RECLAIM_KEEP);
	assert_non_null(strstr(r->reclaim_why, "off the 2M grid"));
	for (uint64_t o = 0; o < SZ_2M; o += SZ_4K)
		assert_int_equal(mem_reclaim_inflate(&rc, r->gpa + o), 0);
	assert_int_equal(stats().discards_dontneed, 0);
	assert_int_equal(r->balloon_bytes, SZ_2M);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(thp_balloon_gives_back_whole_pages, cleanup),
		cmocka_unit_test_teardown(memfd_balloon_punches_whole_pages, cleanup),
		cmocka_unit_test_teardown(report_discards_whole_pages_only, cleanup),
		cmocka_unit_test_teardown(bad_addresses_are_refused, cleanup),
		cmocka_unit_test_teardown(hugetlb_keeps_or_returns_through_the_pool, cleanup),
		cmocka_unit_test_teardown(anon_4k_pages_go_at_once, cleanup),
		cmocka_unit_test_teardown(file_keeps_but_counts, cleanup),
		cmocka_unit_test_teardown(reclaim_config, cleanup),
		cmocka_unit_test_teardown(misaligned_region_keeps, cleanup),
	};

	return cmocka_run_group_tests_name("reclaim", tests, NULL, NULL);
}
