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
