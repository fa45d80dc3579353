/*
 * What this host offers guest memory: kernel, THP and shmem THP settings,
 * hugetlb pools, page-table measurement support, DAX devices. Read from
 * sysfs/procfs and probed with harmless calls; never changed.
 */
#ifndef HUGEVMM_MEMORY_HOST_H
#define HUGEVMM_MEMORY_HOST_H

#include <stdbool.h>
#include <stdint.h>

#include "memory/dax.h"

#define HOST_THP_DIR       "/sys/kernel/mm/transparent_hugepage"
#define HOST_HUGEPAGES_DIR "/sys/kernel/mm/hugepages"

struct host_pool {
	uint64_t page_size;
	bool present; /* the kernel supports this size */
	uint64_t nr, free, resv, surplus;
};

struct host_mem_caps {
	char kernel[65];
	unsigned kver_major, kver_minor;
	char thp_enabled[16]; /* always | madvise | never, "" when THP is absent */
	char thp_defrag[24];
	char shmem_enabled[16];     /* always | within_size | advise | never | deny | force */
	char shmem_pmd_enabled[16]; /* per-size hugepages-2048kB/shmem_enabled (6.11+), "" if absent
				     */
	struct host_pool pools[2];  /* 2M, 1G */
	bool pagemap_scan;
	bool madv_populate_write;
	bool madv_collapse;
	unsigned ndax;
	struct dax_dev_info dax[8];
	int dax_error; /* negative errno when libdaxctl could not list devices */
};

/* A host setting root should change so guest memory gets what it asks for. */
struct host_advice {
	char setting[96]; /* the sysfs file */
	char now[24];     /* its value now */
	char want[24];    /* the value to set */
	char why[192];
	char command[224]; /* what root runs */
};

struct mem_region_cfg;

/*
 * What to set, as root, for @regions (finalized; NULL/0: for the backings in
 * general -- THP off, no hugetlb pool at all). hugevmm never changes these
 * itself. Returns the number of entries written to @out (at most @max).
 */
unsigned host_advise(const struct host_mem_caps *mc, const struct mem_region_cfg *regions,
		     unsigned n, struct host_advice *out, unsigned max);

/* Fill @caps. Never fails: what cannot be read is reported absent. */
void host_mem_probe(struct host_mem_caps *caps);

/* The pool for @page_size (2M or 1G) re-read now, or NULL for other sizes. */
int host_pool_read(uint64_t page_size, struct host_pool *p);

/* sysfs directory of the hugetlb pool of @page_size, into @buf. */
const char *host_pool_dir(uint64_t page_size, char *buf, unsigned len);

/* Kernel version of the running host, as major*1000+minor (6.18 -> 6018). */
unsigned host_kernel_version(void);

/* PAGEMAP_SCAN works on /proc/self/pagemap (probed once, cached). */
bool host_has_pagemap_scan(void);

#endif
