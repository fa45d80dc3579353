/*
 * memory/ on real mappings (no hypervisor): placement congruence, guards,
 * measurement by both methods, MADV_COLLAPSE repair, policy verdicts, and
 * that failures leave no mapping, fd or file behind.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/log.h"
#include "common/sysfs.h"
#include "memory/host.h"
#include "memory/measure.h"
#include "memory/mem.h"
#include "memory/prefault.h"

static void quiet(enum log_level lvl, const char *msg, void *opaque)
{
	(void)lvl;
	(void)msg;
	(void)opaque;
}

static struct mem_region_cfg cfg(enum mem_backing b, const char *id, uint64_t mib)
{
	struct mem_region_cfg c;

	mem_cfg_init(&c, b, id, "memory.regions[0]");
	c.size = mib * SZ_1M;
	return c;
}

static void finalize(struct mem_region_cfg *c, unsigned n)
{
	struct vmm_err e = {0};

	if (mem_cfg_finalize_all(c, n, &e))
		fail_msg("finalize: %s", e.msg);
}

static bool thp_usable(void)
{
	char en[16] = "";

	sysfs_read_choice(HOST_THP_DIR "/enabled", en, sizeof(en));
	if (!strcmp(en, "always") || !strcmp(en, "madvise"))
		return true;
	print_message("skip: THP is \"%s\" on this host (needs madvise or always)\n", en);
	return false;
}

static unsigned count_fds(void)
{
	struct dirent *d;
	unsigned n = 0;
	DIR *dp = opendir("/proc/self/fd");

	assert_non_null(dp);
	while ((d = readdir(dp)))
		n++;
	closedir(dp);
	return n;
}

/* Protection string of the mapping containing @addr ("rw-p", "---p"), from /proc/self/maps. */
static void prot_at(uintptr_t addr, char out[5])
{
	char line[512];
	FILE *f = fopen("/proc/self/maps", "r");

	strcpy(out, "none");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		unsigned long long lo, hi;
		char perms[5];

		if (sscanf(line, "%llx-%llx %4s", &lo, &hi, perms) == 3 && addr >= lo &&
		    addr < hi) {
			memcpy(out, perms, 5);
			break;
		}
	}
	fclose(f);
}

static void congruent_placement_with_guards(void **state)
{
	struct mem_region_cfg c[3] = {
		cfg(MEM_BACKING_ANON, "a", 6),
		cfg(MEM_BACKING_THP, "b", 8),
		cfg(MEM_BACKING_MEMFD, "c", 4),
	};
	struct guest_mem gm;
	struct vmm_err e = {0};
	char prot[5];

	(void)state;
	for (unsigned i = 0; i < 3; i++)
		c[i].prefault = false, c[i].policy = MEM_POLICY_OFF, c[i].policy_set = true;
	finalize(c, 3);
	assert_int_equal(mem_map(&gm, c, 3, &e), 0);
	assert_int_equal(gm.nslots, 3);
	for (unsigned i = 0; i < gm.nslots; i++) {
		const struct mem_slot *s = &gm.slots[i];
		uint64_t ps = gm.regions[s->region].page_size;

		assert_true(s->aligned);
		assert_true(is_aligned((uintptr_t)s->hva ^ s->gpa, ps));
		prot_at((uintptr_t)s->hva, prot);
		assert_string_equal(prot, gm.regions[s->region].fd >= 0 ? "rw-s" : "rw-p");
		/* One PROT_NONE guard page on each side. */
		prot_at((uintptr_t)s->hva - 1, prot);
		assert_string_equal(prot, "---p");
		prot_at((uintptr_t)s->hva + s->size, prot);
		assert_string_equal(prot, "---p");
	}
	assert_int_equal(gm.slots[1].gpa, 6 * SZ_1M);
	assert_int_equal(gm.slots[2].gpa, 14 * SZ_1M);
	mem_unmap(&gm);
}

static void hole_crossing_region_is_one_mapping_two_slots(void **state)
{
	struct mem_region_cfg c = cfg(MEM_BACKING_THP, "big", 3584);
	struct guest_mem gm;
	struct vmm_err e = {0};

	(void)state;
	c.prefault = false;
	finalize(&c, 1);
	assert_int_equal(mem_map(&gm, &c, 1, &e), 0);
	assert_int_equal(gm.nslots, 2);
	assert_int_equal(gm.slots[0].gpa, 0);
	assert_int_equal(gm.slots[0].size, 3 * SZ_1G);
	assert_int_equal(gm.slots[1].gpa, 4 * SZ_1G);
	assert_int_equal(gm.slots[1].size, 512 * SZ_1M);
	assert_ptr_equal(gm.slots[1].hva, gm.slots[0].hva + 3 * SZ_1G);
	assert_true(gm.slots[0].aligned && gm.slots[1].aligned);
	assert_int_equal(gm.top, 4 * SZ_1G + 512 * SZ_1M);
	mem_unmap(&gm);
}

static void gpa_to_hva_checks_bounds(void **state)
{
	struct mem_region_cfg c = cfg(MEM_BACKING_THP, "big", 3584);
	struct guest_mem gm;
	struct vmm_err e = {0};

	(void)state;
	c.prefault = false;
	finalize(&c, 1);
	assert_int_equal(mem_map(&gm, &c, 1, &e), 0);
	assert_ptr_equal(mem_gpa_to_hva(&gm, 0x1000, 8), gm.slots[0].hva + 0x1000);
	assert_ptr_equal(mem_gpa_to_hva(&gm, 4 * SZ_1G + 16, 16), gm.slots[1].hva + 16);
	assert_null(mem_gpa_to_hva(&gm, 3 * SZ_1G - 8, 16));   /* runs into the hole */
	assert_null(mem_gpa_to_hva(&gm, 3 * SZ_1G + 4096, 1)); /* inside the hole */
	assert_null(mem_gpa_to_hva(&gm, gm.top, 1));           /* above RAM */
	assert_null(mem_gpa_to_hva(&gm, 16, UINT64_MAX));      /* length wraps */
	assert_ptr_equal(mem_gpa_to_hva(&gm, gm.top - 1, 1), gm.slots[1].hva + 512 * SZ_1M - 1);
	mem_unmap(&gm);
}

static void thp_measured_both_ways(void **state)
{
	struct mem_region_cfg c = cfg(MEM_BACKING_THP, "t", 64);
	struct guest_mem gm;
	struct vmm_err e = {0};
	struct mem_cov viasmaps;
	struct smaps_totals sm;

	(void)state;
	if (!thp_usable())
		skip();
	c.policy = MEM_POLICY_OFF;
	c.policy_set = true;
	finalize(&c, 1);
	assert_int_equal(mem_map(&gm, &c, 1, &e), 0);
	assert_int_equal(mem_verify(&gm, &e), 0);
	assert_true(gm.regions[0].host.known);
	assert_string_equal(gm.regions[0].host.method,
			    host_has_pagemap_scan() ? "pagemap_scan" : "smaps");
	assert_int_equal(gm.regions[0].host.bytes_4k + gm.regions[0].host.bytes_2m +
				 gm.regions[0].host.bytes_1g + gm.regions[0].host.bytes_absent,
			 64 * SZ_1M);
	/* The kernel's own accounting agrees. */
	assert_int_equal(measure_smaps(0, (uintptr_t)gm.regions[0].hva,
				       (uintptr_t)gm.regions[0].hva + 64 * SZ_1M, &sm),
			 0);
	assert_int_equal(sm.vmas, 1);
	assert_int_equal(gm.regions[0].host.bytes_2m, sm.anon_huge);
	assert_int_equal(gm.regions[0].host.bytes_2m + gm.regions[0].host.bytes_4k, sm.rss);
	/* The fallback method sees the same. */
	setenv("HUGEVMM_MEASURE", "smaps", 1);
	assert_int_equal(measure_region(&gm.regions[0], &viasmaps), 0);
	unsetenv("HUGEVMM_MEASURE");
	assert_string_equal(viasmaps.method, "smaps");
	assert_int_equal(viasmaps.bytes_2m, gm.regions[0].host.bytes_2m);
	assert_int_equal(viasmaps.bytes_4k, gm.regions[0].host.bytes_4k);
	assert_int_equal(viasmaps.bytes_absent, gm.regions[0].host.bytes_absent);
	mem_unmap(&gm);
}

static void collapse_repairs_a_split(void **state)
{
	struct mem_region_cfg c = cfg(MEM_BACKING_THP, "t", 16);
	struct guest_mem gm;
	struct vmm_err e = {0};
	struct mem_region *r;

	(void)state;
	if (!thp_usable())
		skip();
	if (!host_has_pagemap_scan()) {
		print_message("skip: needs PAGEMAP_SCAN to see one split PMD\n");
		skip();
	}
	finalize(&c, 1);
	assert_int_equal(mem_map(&gm, &c, 1, &e), 0);
	r = &gm.regions[0];
	if (measure_huge_bytes((uintptr_t)r->hva, (uintptr_t)r->hva + r->size) !=
	    (int64_t)r->size) {
		mem_unmap(&gm);
		print_message("skip: the host gave no full THP coverage to start from\n");
		skip();
	}
	/* Zapping one 4K page splits its PMD: 2M of the region drops to 4K. */
	assert_int_equal(madvise(r->hva + SZ_2M + 4096, 4096, MADV_DONTNEED), 0);
	assert_int_equal(measure_huge_bytes((uintptr_t)r->hva, (uintptr_t)r->hva + r->size),
			 r->size - SZ_2M);
	/* mem_verify repairs it once with MADV_COLLAPSE and measures again. */
	assert_int_equal(mem_verify(&gm, &e), 0);
	assert_true(r->collapse_tried);
	assert_int_equal(r->collapse_gained, SZ_2M);
	assert_int_equal(r->host.bytes_2m, r->size);
	assert_int_equal(r->verdict, MEM_VERDICT_PASS);
	mem_unmap(&gm);
}

static void misaligned_slot_fails_require(void **state)
{
	struct mem_region_cfg c = cfg(MEM_BACKING_THP, "mis", 8);
	struct guest_mem gm;
	struct vmm_err e = {0};

	(void)state;
	c.host_offset = 4096;
	finalize(&c, 1);
	assert_int_equal(mem_map(&gm, &c, 1, &e), 0);
	assert_false(gm.slots[0].aligned);
	assert_int_equal(((uintptr_t)gm.slots[0].hva ^ gm.slots[0].gpa) & (SZ_2M - 1), 4096);
	assert_int_equal(mem_verify(&gm, &e), -EPERM);
	assert_int_equal(e.kind, ERR_POLICY);
	assert_int_equal(gm.regions[0].verdict, MEM_VERDICT_FAIL);
	assert_non_null(strstr(gm.regions[0].verdict_msg, "slot 0 is misaligned"));
	assert_non_null(strstr(e.msg, "misaligned"));
	mem_unmap(&gm);
}

static void anon_and_memfd_4k_stay_4k(void **state)
{
	struct mem_region_cfg c[2] = {cfg(MEM_BACKING_ANON, "a", 8),
				      cfg(MEM_BACKING_MEMFD, "m", 8)};
	struct guest_mem gm;
	struct vmm_err e = {0};

	(void)state;
	c[1].page_size = SZ_4K;
	finalize(c, 2);
	assert_int_equal(mem_map(&gm, c, 2, &e), 0);
	assert_int_equal(mem_verify(&gm, &e), 0);
	for (unsigned i = 0; i < 2; i++) {
		assert_int_equal(gm.regions[i].host.bytes_4k, 8 * SZ_1M);
		assert_int_equal(gm.regions[i].host.bytes_2m, 0);
		assert_int_equal(gm.regions[i].verdict, MEM_VERDICT_OFF);
	}
	mem_unmap(&gm);
}

static void file_backing_created_then_gone(void **state)
{
	char dir[] = "/tmp/hugevmm-test-XXXXXX", path[128];
	struct mem_region_cfg c = cfg(MEM_BACKING_FILE, "f", 8);
	struct guest_mem gm;
	struct vmm_err e = {0};

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/vm.img", dir);
	snprintf(c.path, sizeof(c.path), "%s", path);
	c.policy = MEM_POLICY_PREFER;
	c.policy_set = true;
	finalize(&c, 1);
	assert_int_equal(mem_map(&gm, &c, 1, &e), 0);
	/* Created by hugevmm, so unlinked at once: nothing is left even after a crash. */
	assert_int_equal(access(path, F_OK), -1);
	assert_false(gm.regions[0].on_dax);
	/*
	 * Not DAX, so the page cache backs it: whether it is PMD-mapped depends on
	 * the filesystem's large folios. The verdict must follow the measurement.
	 */
	assert_int_equal(mem_verify(&gm, &e), 0);
	if (mem_cov_ratio(&gm.regions[0]) >= 1.0) {
		assert_int_equal(gm.regions[0].verdict, MEM_VERDICT_PASS);
	} else {
		assert_int_equal(gm.regions[0].verdict, MEM_VERDICT_WARN);
		assert_non_null(strstr(gm.regions[0].verdict_msg, "is not on a DAX filesystem"));
	}
	mem_unmap(&gm);

	/* "dax": true refuses a path that is not on DAX, and leaves no file. */
	c.require_dax = true;
	memset(&e, 0, sizeof(e));
	assert_int_not_equal(mem_map(&gm, &c, 1, &e), 0);
	assert_int_equal(e.kind, ERR_CONFIG);
	assert_non_null(strstr(e.msg, "is not on a DAX filesystem"));
	assert_int_equal(access(path, F_OK), -1);
	c.require_dax = false;

	/* An existing file too small for the region is a config error and is left as it was. */
	{
		int fd = open(path, O_CREAT | O_RDWR, 0600);

		assert_true(fd >= 0);
		assert_int_equal(ftruncate(fd, 4 * SZ_1M), 0);
		close(fd);
	}
	memset(&e, 0, sizeof(e));
	assert_int_not_equal(mem_map(&gm, &c, 1, &e), 0);
	assert_int_equal(e.kind, ERR_CONFIG);
	assert_non_null(strstr(e.msg, "memory.regions[0].path"));
	assert_non_null(strstr(e.msg, "is 4 MiB but the region needs 8 MiB"));
	assert_int_equal(access(path, F_OK), 0);
	unlink(path);
	rmdir(dir);
}

/* The mappings of this process, one "start-end perms name" string each. */
static unsigned snapshot_maps(char maps[][512], unsigned max)
{
	char line[512];
	unsigned n = 0;
	FILE *f = fopen("/proc/self/maps", "r");

	assert_non_null(f);
	while (fgets(line, sizeof(line), f) && n < max) {
		snprintf(maps[n], 512, "%s", line);
		n++;
	}
	fclose(f);
	return n;
}

static bool in_snapshot(const char *line, char maps[][512], unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (!strcmp(line, maps[i]))
			return true;
	return false;
}

/*
 * A failure at any region unwinds every earlier one: no mapping, fd or file
 * remains. The good regions have distinctive sizes (6 and 10 MiB) so that,
 * even under ASan (whose allocator maps memory of its own), a leaked region
 * or guard page is recognized among the mappings that appeared.
 */
static void failures_leave_nothing_behind(void **state)
{
	static const struct {
		enum mem_backing b;
		const char *field, *value;
		enum err_kind kind;
		const char *want;
	} bad[] = {
		{MEM_BACKING_DEVDAX, "device", "dax97.3", ERR_CONFIG, "\"dax97.3\" does not exist"},
		{MEM_BACKING_FILE, "path", "/nonexistent-dir/vm.img", ERR_CONFIG, "cannot create"},
		{MEM_BACKING_FILE, "path", "/proc/self/exe", ERR_CONFIG,
		 "cannot open"}, /* ETXTBSY */
		{MEM_BACKING_FILE, "path", "/dev/null", ERR_CONFIG, "is not a regular file"},
		{MEM_BACKING_HUGETLB, "path", "/tmp", ERR_CONFIG, "is not on hugetlbfs"},
		{MEM_BACKING_HUGETLB, NULL, NULL, ERR_POLICY, "hugetlb pool too small"},
	};
	static char before[4096][512];
	unsigned nbefore, fds0;

	(void)state;
	log_set_sink(quiet, NULL);
	nbefore = snapshot_maps(before, 4096);
	fds0 = count_fds();
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct mem_region_cfg c[3] = {
			cfg(MEM_BACKING_THP, "ok1", 6),
			cfg(MEM_BACKING_MEMFD, "ok2", 10),
			cfg(bad[i].b, "bad", 2048),
		};
		static char after[4096][512];
		struct guest_mem gm;
		struct vmm_err e = {0};
		unsigned nafter;

		snprintf(c[2].origin, sizeof(c[2].origin), "memory.regions[2]");
		if (bad[i].field && !strcmp(bad[i].field, "device"))
			snprintf(c[2].device, sizeof(c[2].device), "%s", bad[i].value);
		else if (bad[i].field)
			snprintf(c[2].path, sizeof(c[2].path), "%s", bad[i].value);
		if (bad[i].b == MEM_BACKING_HUGETLB)
			c[2].size = 1024 * SZ_1G; /* more than any pool here */
		finalize(c, 3);
		assert_int_not_equal(mem_map(&gm, c, 3, &e), 0);
		if (e.kind != bad[i].kind || !strstr(e.msg, bad[i].want))
			fail_msg("case %u: kind %d, message: %s", i, e.kind, e.msg);
		assert_non_null(strstr(e.msg, "memory.regions[2]"));
		assert_int_equal(gm.nregions, 0);
		assert_int_equal(count_fds(), fds0);
		nafter = snapshot_maps(after, 4096);
		for (unsigned k = 0; k < nafter; k++) {
			unsigned long long lo, hi;
			char perms[5];

			if (in_snapshot(after[k], before, nbefore))
				continue;
			assert_int_equal(sscanf(after[k], "%llx-%llx %4s", &lo, &hi, perms), 3);
			if (hi - lo == 6 * SZ_1M || hi - lo == 10 * SZ_1M ||
			    strstr(after[k], "memfd:") ||
			    (hi - lo == SZ_4K && !strcmp(perms, "---p")))
				fail_msg("case %u: left behind: %s", i, after[k]);
		}
	}
	log_set_sink(NULL, NULL);
}

static void prefault_splits_across_threads(void **state)
{
	uint64_t len = 64 * SZ_1M;
	uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	static unsigned char vec[64 * SZ_1M / SZ_4K];
	uint64_t resident = 0;
	unsigned used = 0;

	(void)state;
	assert_true(p != MAP_FAILED);
	assert_int_equal(prefault_range(p, len, SZ_2M, 4, "t", &used), 0);
	assert_int_equal(used, 4);
	/* mincore, not smaps: an unguarded test mapping may merge with its neighbours. */
	assert_int_equal(mincore(p, len, vec), 0);
	for (uint64_t i = 0; i < len / SZ_4K; i++)
		resident += vec[i] & 1;
	assert_int_equal(resident, len / SZ_4K);
	munmap(p, len);
	/* Automatic: one thread per 256 MiB, at least one, at most the CPUs. */
	assert_int_equal(prefault_auto_threads(SZ_1M), 1);
	assert_true(prefault_auto_threads(64 * SZ_1G) >= 1);
	assert_true(prefault_auto_threads(64 * SZ_1G) <= 16);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(congruent_placement_with_guards),
		cmocka_unit_test(hole_crossing_region_is_one_mapping_two_slots),
		cmocka_unit_test(gpa_to_hva_checks_bounds),
		cmocka_unit_test(thp_measured_both_ways),
		cmocka_unit_test(collapse_repairs_a_split),
		cmocka_unit_test(misaligned_slot_fails_require),
		cmocka_unit_test(anon_and_memfd_4k_stay_4k),
		cmocka_unit_test(file_backing_created_then_gone),
		cmocka_unit_test(failures_leave_nothing_behind),
		cmocka_unit_test(prefault_splits_across_threads),
	};

	return cmocka_run_group_tests_name("memory", tests, NULL, NULL);
}
