/*
 * Measuring how the host maps a range: PAGEMAP_SCAN (Linux 6.7+) walks the
 * page tables; smaps counters are the fallback. Never assumes.
 */
#ifndef HUGEVMM_MEMORY_MEASURE_H
#define HUGEVMM_MEMORY_MEASURE_H

#include <stdbool.h>
#include <stdint.h>

#include "memory/mem.h"

/* smaps totals over the VMAs inside a range. */
struct smaps_totals {
	unsigned vmas;
	uint64_t kernel_page_size; /* largest KernelPageSize seen */
	uint64_t mmu_page_size;
	uint64_t rss, anon_huge, shmem_pmd, file_pmd, hugetlb;
};

/* Sum smaps of process @pid (0 = self) over VMAs intersecting [start, end). */
int measure_smaps(int pid, uintptr_t start, uintptr_t end, struct smaps_totals *t) must_check;

/*
 * Host coverage of region @r into @cov. Method: PAGEMAP_SCAN when the kernel
 * has it, else smaps; HUGEVMM_MEASURE=smaps forces the fallback (tests).
 * When the level cannot be seen (DAX under smaps), cov->known is false and
 * cov->reason says why. Returns 0 or -errno.
 */
int measure_region(const struct mem_region *r, struct mem_cov *cov) must_check;

/* Bytes of [start, end) the page tables map huge (PAGEMAP_SCAN), or -errno. */
int64_t measure_huge_bytes(uintptr_t start, uintptr_t end);

#endif
