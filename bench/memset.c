/*
 * The native baseline for prefault benchmarks: map SIZE bytes of anonymous
 * memory (4K or THP), memset it once in one thread, print seconds and GiB/s
 * as JSON. Usage: memset SIZE_MIB thp|4k
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

int main(int argc, char **argv)
{
	struct timespec a, b;
	uint64_t size;
	uint8_t *p, *raw;
	double s;

	if (argc != 3)
		return 2;
	size = strtoull(argv[1], NULL, 10) << 20;
	raw = mmap(NULL, size + (2u << 20), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		   0);
	if (raw == MAP_FAILED)
		return 1;
	/* 2M-aligned start so THP can cover the whole range. */
	p = (uint8_t *)(((uintptr_t)raw + (2u << 20) - 1) & ~(uintptr_t)((2u << 20) - 1));
	madvise(p, size, strcmp(argv[2], "thp") ? MADV_NOHUGEPAGE : MADV_HUGEPAGE);
	clock_gettime(CLOCK_MONOTONIC, &a);
	memset(p, 1, size);
	clock_gettime(CLOCK_MONOTONIC, &b);
	s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
	printf("{\"seconds\": %.6f, \"gib_per_s\": %.3f}\n", s, (double)size / (1 << 30) / s);
	return 0;
}
