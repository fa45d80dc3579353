#include "memory/host.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "common/compat.h"
#include "common/sysfs.h"
#include "common/util.h"
#include "memory/mem_cfg.h"

const char *host_pool_dir(uint64_t page_size, char *buf, unsigned len)
{
	snprintf(buf, len, HOST_HUGEPAGES_DIR "/hugepages-%llukB",
		 (unsigned long long)(page_size >> 10));
	return buf;
}

int host_pool_read(uint64_t page_size, struct host_pool *p)
{
	static const char *const names[] = {"nr_hugepages", "free_hugepages", "resv_hugepages",
					    "surplus_hugepages"};
	uint64_t *vals[] = {&p->nr, &p->free, &p->resv, &p->surplus};
	char dir[128], path[192];
	int r;

	memset(p, 0, sizeof(*p));
	p->page_size = page_size;
	host_pool_dir(page_size, dir, sizeof(dir));
	if (access(dir, F_OK))
		return -ENOENT;
	for (unsigned i = 0; i < ARRAY_SIZE(names); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		r = sysfs_read_u64(path, vals[i]);
		if (r)
			return r;
	}
	p->present = true;
	return 0;
}

unsigned host_kernel_version(void)
{
	struct utsname u;
	unsigned maj = 0, min = 0;

	if (uname(&u) || sscanf(u.release, "%u.%u", &maj, &min) != 2)
		return 0;
	return maj * 1000 + min;
}

static bool pagemap_scan_ok;

static void probe_pagemap_scan(void)
{
	struct page_region vec[1];
	struct pm_scan_arg a;
	void *p = mmap(NULL, SZ_4K, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int fd;

	if (p == MAP_FAILED)
		return;
	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		memset(&a, 0, sizeof(a));
		a.size = sizeof(a);
		a.start = (uintptr_t)p;
		a.end = (uintptr_t)p + SZ_4K;
		a.vec = (uintptr_t)vec;
		a.vec_len = 1;
		a.return_mask = PAGE_IS_PRESENT | PAGE_IS_HUGE;
		pagemap_scan_ok = ioctl(fd, PAGEMAP_SCAN, &a) >= 0;
		close(fd);
	}
	munmap(p, SZ_4K);
}

bool host_has_pagemap_scan(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, probe_pagemap_scan);
	return pagemap_scan_ok;
}

static bool probe_madvise(int advice)
{
	void *p = mmap(NULL, SZ_4K, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	bool ok;

	if (p == MAP_FAILED)
		return false;
	ok = madvise(p, SZ_4K, advice) == 0 || errno != EINVAL;
	munmap(p, SZ_4K);
	return ok;
}

static bool shmem_huge_off(const struct host_mem_caps *mc)
{
	const char *v = mc->shmem_pmd_enabled[0] && strcmp(mc->shmem_pmd_enabled, "inherit")
				? mc->shmem_pmd_enabled
				: mc->shmem_enabled;

	return !v[0] || !strcmp(v, "never") || !strcmp(v, "deny");
}

static unsigned advise(struct host_advice *out, unsigned i, unsigned max, const char *setting,
		       const char *now, const char *want, const char *why)
{
	if (i >= max)
		return i;
	memset(&out[i], 0, sizeof(out[i]));
	snprintf(out[i].setting, sizeof(out[i].setting), "%s", setting);
	snprintf(out[i].now, sizeof(out[i].now), "%s", now);
	snprintf(out[i].want, sizeof(out[i].want), "%s", want);
	snprintf(out[i].why, sizeof(out[i].why), "%s", why);
	snprintf(out[i].command, sizeof(out[i].command), "echo %s > %s", want, setting);
	return i + 1;
}

unsigned host_advise(const struct host_mem_caps *mc, const struct mem_region_cfg *regions,
		     unsigned n, struct host_advice *out, unsigned max)
{
	bool thp = !regions, memfd = false;
	uint64_t need[ARRAY_SIZE(mc->pools)] = {0};
	unsigned k = 0;
	char dir[128], path[160], why[192], want[24], now[24];

	for (unsigned i = 0; i < n; i++) {
		const struct mem_region_cfg *r = &regions[i];

		thp |= r->backing == MEM_BACKING_THP;
		memfd |= r->backing == MEM_BACKING_MEMFD && r->page_size >= SZ_2M;
		for (unsigned p = 0; p < ARRAY_SIZE(mc->pools); p++)
			if (r->backing == MEM_BACKING_HUGETLB && !r->path[0] &&
			    r->page_size == mc->pools[p].page_size)
				need[p] += r->size / r->page_size;
	}
	if (thp && mc->thp_enabled[0] && !strcmp(mc->thp_enabled, "never"))
		k = advise(out, k, max, "/sys/kernel/mm/transparent_hugepage/enabled",
			   mc->thp_enabled, "madvise",
			   "\"thp\" regions ask for huge pages with MADV_HUGEPAGE; \"never\" "
			   "refuses them all");
	if (memfd && shmem_huge_off(mc))
		k = advise(out, k, max, "/sys/kernel/mm/transparent_hugepage/shmem_enabled",
			   mc->shmem_enabled, "advise",
			   "\"memfd\" regions with 2M pages need shmem THP; with it off they are "
			   "all 4K");
	for (unsigned p = 0; p < ARRAY_SIZE(mc->pools); p++) {
		const struct host_pool *pool = &mc->pools[p];

		if (!pool->present || !host_pool_dir(pool->page_size, dir, sizeof(dir)))
			continue;
		snprintf(path, sizeof(path), "%s/nr_hugepages", dir);
		snprintf(now, sizeof(now), "%llu", (unsigned long long)pool->nr);
		if (regions && need[p] > pool->free) {
			snprintf(want, sizeof(want), "%llu",
				 (unsigned long long)(pool->nr + need[p] - pool->free));
			snprintf(why, sizeof(why),
				 "the config's hugetlb regions need %llu pages of %llu KiB; %llu "
				 "are free",
				 (unsigned long long)need[p],
				 (unsigned long long)(pool->page_size >> 10),
				 (unsigned long long)pool->free);
			k = advise(out, k, max, path, now, want, why);
		} else if (!regions && !pool->nr && pool->page_size == SZ_2M) {
			snprintf(why, sizeof(why),
				 "the pool is empty: \"hugetlb\" regions need one page per %llu "
				 "KiB (512 for 1 GiB; `hugevmm host --config-file F` counts them)",
				 (unsigned long long)(pool->page_size >> 10));
			k = advise(out, k, max, path, now, "512", why);
		}
	}
	return k;
}

void host_mem_probe(struct host_mem_caps *c)
{
	struct utsname u;
	unsigned v;
	int n;

	memset(c, 0, sizeof(*c));
	if (!uname(&u))
		snprintf(c->kernel, sizeof(c->kernel), "%s", u.release);
	v = host_kernel_version();
	c->kver_major = v / 1000;
	c->kver_minor = v % 1000;
	sysfs_read_choice(HOST_THP_DIR "/enabled", c->thp_enabled, sizeof(c->thp_enabled));
	sysfs_read_choice(HOST_THP_DIR "/defrag", c->thp_defrag, sizeof(c->thp_defrag));
	sysfs_read_choice(HOST_THP_DIR "/shmem_enabled", c->shmem_enabled,
			  sizeof(c->shmem_enabled));
	sysfs_read_choice(HOST_THP_DIR "/hugepages-2048kB/shmem_enabled", c->shmem_pmd_enabled,
			  sizeof(c->shmem_pmd_enabled));
	host_pool_read(SZ_2M, &c->pools[0]);
	host_pool_read(SZ_1G, &c->pools[1]);
	c->pagemap_scan = host_has_pagemap_scan();
	c->madv_populate_write = probe_madvise(MADV_POPULATE_WRITE);
	/*
	 * MADV_COLLAPSE answers EINVAL both when unknown and for a range without a
	 * whole 2M block, so a cheap probe cannot tell; it exists from 6.1 with THP.
	 */
	c->madv_collapse = c->thp_enabled[0] && v >= 6001;
	n = dax_list(c->dax, ARRAY_SIZE(c->dax));
	if (n < 0)
		c->dax_error = n;
	else
		c->ndax = (unsigned)n;
}
