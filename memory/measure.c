#include "memory/measure.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "common/compat.h"
#include "memory/host.h"

/* Parse "Name:   123 kB" into bytes when the line starts with @name. */
static bool kb_field(const char *line, const char *name, uint64_t *acc)
{
	size_t n = strlen(name);
	unsigned long long kb;

	if (strncmp(line, name, n) || line[n] != ':')
		return false;
	if (sscanf(line + n + 1, "%llu", &kb) == 1)
		*acc += kb << 10;
	return true;
}

int measure_smaps(int pid, uintptr_t start, uintptr_t end, struct smaps_totals *t)
{
	char path[64], line[512];
	bool in = false;
	FILE *f;

	memset(t, 0, sizeof(*t));
	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/smaps", pid);
	else
		snprintf(path, sizeof(path), "/proc/self/smaps");
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long lo, hi;
		uint64_t kps = 0, mps = 0;

		if (sscanf(line, "%llx-%llx ", &lo, &hi) == 2 &&
		    strchr(line, '-') < strchr(line, ' ')) {
			in = lo < end && hi > start;
			t->vmas += in;
			continue;
		}
		if (!in)
			continue;
		if (kb_field(line, "KernelPageSize", &kps)) {
			t->kernel_page_size = MAX(t->kernel_page_size, kps);
			continue;
		}
		if (kb_field(line, "MMUPageSize", &mps)) {
			t->mmu_page_size = MAX(t->mmu_page_size, mps);
			continue;
		}
		if (kb_field(line, "Rss", &t->rss) ||
		    kb_field(line, "AnonHugePages", &t->anon_huge) ||
		    kb_field(line, "ShmemPmdMapped", &t->shmem_pmd) ||
		    kb_field(line, "FilePmdMapped", &t->file_pmd) ||
		    kb_field(line, "Shared_Hugetlb", &t->hugetlb) ||
		    kb_field(line, "Private_Hugetlb", &t->hugetlb))
			continue;
	}
	fclose(f);
	return 0;
}

struct scan_totals {
	uint64_t present, huge;
};

static int pagemap_scan(uintptr_t start, uintptr_t end, struct scan_totals *t)
{
	struct page_region vec[256];
	struct pm_scan_arg a;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	memset(t, 0, sizeof(*t));
	if (fd < 0)
		return -errno;
	while (start < end) {
		long n;

		memset(&a, 0, sizeof(a));
		a.size = sizeof(a);
		a.start = start;
		a.end = end;
		a.vec = (uintptr_t)vec;
		a.vec_len = ARRAY_SIZE(vec);
		a.return_mask = PAGE_IS_PRESENT | PAGE_IS_HUGE;
		n = ioctl(fd, PAGEMAP_SCAN, &a);
		if (n < 0) {
			int err = -errno;

			close(fd);
			return err;
		}
		for (long i = 0; i < n; i++) {
			uint64_t len = vec[i].end - vec[i].start;

			if (!(vec[i].categories & PAGE_IS_PRESENT))
				continue;
			t->present += len;
			if (vec[i].categories & PAGE_IS_HUGE)
				t->huge += len;
		}
		/* walk_end says how far the kernel got; it stops early when vec is full. */
		if (a.walk_end <= start)
			break;
		start = a.walk_end;
	}
	close(fd);
	return 0;
}

int64_t measure_huge_bytes(uintptr_t start, uintptr_t end)
{
	struct scan_totals t;
	int r = pagemap_scan(start, end, &t);

	return r ? r : (int64_t)t.huge;
}

static bool force_smaps(void)
{
	const char *m = getenv("HUGEVMM_MEASURE");

	return m && !strcmp(m, "smaps");
}

static bool backing_is_dax(const struct mem_region *r)
{
	return r->cfg.backing == MEM_BACKING_DEVDAX || r->on_dax;
}

/* Split @huge bytes between 2M and 1G by the VMA's kernel page size. */
static void put_huge(struct mem_cov *cov, uint64_t huge, uint64_t kps)
{
	if (kps >= SZ_1G)
		cov->bytes_1g = huge;
	else
		cov->bytes_2m = huge;
}

int measure_region(const struct mem_region *r, struct mem_cov *cov)
{
	uintptr_t start = (uintptr_t)r->hva, end = start + r->size;
	struct smaps_totals sm;
	int rc;

	memset(cov, 0, sizeof(*cov));
	if (!r->hva)
		return -EINVAL;
	/* smaps always: it alone tells a PMD (2M) from a PUD (1G) mapping. */
	rc = measure_smaps(0, start, end, &sm);
	if (rc)
		return rc;

	if (host_has_pagemap_scan() && !force_smaps()) {
		struct scan_totals t;

		rc = pagemap_scan(start, end, &t);
		if (rc)
			return rc;
		cov->method = "pagemap_scan";
		cov->known = true;
		put_huge(cov, t.huge, sm.kernel_page_size);
		cov->bytes_4k = t.present - t.huge;
		cov->bytes_absent = r->size - t.present;
		return 0;
	}

	cov->method = "smaps";
	if (backing_is_dax(r)) {
		snprintf(
			cov->reason, sizeof(cov->reason),
			"smaps cannot see DAX PMD mappings (fsdax shows 4 kB pages even when "
			"mapped "
			"2M) and this kernel has no PAGEMAP_SCAN (Linux 6.7+); KVM's stats decide");
		return 0;
	}
	cov->known = true;
	if (r->cfg.backing == MEM_BACKING_HUGETLB) {
		uint64_t huge = MIN(sm.hugetlb, r->size);

		put_huge(cov, huge, sm.kernel_page_size);
		cov->bytes_absent = r->size - huge;
	} else {
		uint64_t rss = MIN(sm.rss, r->size);
		uint64_t huge = MIN(sm.anon_huge + sm.shmem_pmd + sm.file_pmd, rss);

		put_huge(cov, huge, SZ_2M);
		cov->bytes_4k = rss - huge;
		cov->bytes_absent = r->size - rss;
	}
	return 0;
}
