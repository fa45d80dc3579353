/*
 * Native baselines for the benchmarks: memory of the same kind a guest region
 * gets, mapped by a plain process. Kinds: anon (4K pages), thp, memfd (shmem,
 * THP where shmem_enabled allows), hugetlb-2m, hugetlb-1g.
 */
#ifndef HUGEVMM_BENCH_NATIVE_H
#define HUGEVMM_BENCH_NATIVE_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define NATIVE_HUGE_SHIFT 26 /* MFD_HUGE_SHIFT / MAP_HUGE_SHIFT */

static inline double native_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* @size bytes of @kind, aligned to 1 GiB for hugetlb-1g and 2 MiB otherwise; NULL on error. */
static inline void *native_map(const char *kind, uint64_t size)
{
	uint64_t align = strcmp(kind, "hugetlb-1g") ? UINT64_C(2) << 20 : UINT64_C(1) << 30;
	unsigned mfd_flags = 0;
	int fd = -1, shared = 0;
	uint8_t *raw, *p;

	if (!strcmp(kind, "memfd")) {
		shared = 1;
	} else if (!strcmp(kind, "hugetlb-2m")) {
		shared = 1;
		mfd_flags = MFD_HUGETLB | (21u << NATIVE_HUGE_SHIFT);
	} else if (!strcmp(kind, "hugetlb-1g")) {
		shared = 1;
		mfd_flags = MFD_HUGETLB | (30u << NATIVE_HUGE_SHIFT);
	} else if (strcmp(kind, "anon") && strcmp(kind, "thp")) {
		fprintf(stderr, "unknown kind \"%s\": anon, thp, memfd, hugetlb-2m or hugetlb-1g\n",
			kind);
		return NULL;
	}
	if (shared) {
		fd = memfd_create("bench", mfd_flags);
		if (fd < 0 || ftruncate(fd, (off_t)size)) {
			perror("memfd");
			return NULL;
		}
	}
	/* Reserve with slack, then put the mapping at the aligned spot inside it. */
	raw = mmap(NULL, size + align, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1,
		   0);
	if (raw == MAP_FAILED) {
		perror("mmap");
		return NULL;
	}
	p = (uint8_t *)(((uintptr_t)raw + align - 1) & ~(uintptr_t)(align - 1));
	p = mmap(p, size, PROT_READ | PROT_WRITE,
		 MAP_FIXED | (shared ? MAP_SHARED : MAP_PRIVATE | MAP_ANONYMOUS), fd, 0);
	if (fd >= 0)
		close(fd);
	if (p == MAP_FAILED) {
		perror("mmap");
		return NULL;
	}
	if (!mfd_flags)
		madvise(p, size, strcmp(kind, "anon") ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
	return p;
}

#endif
