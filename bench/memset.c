/*
 * The native baseline for prefault: map SIZE_MIB of KIND (bench/native.h),
 * memset it once in one thread, print seconds and GiB/s as JSON. Also used
 * to warm the host before a measured run.  Usage: memset SIZE_MIB KIND
 */
#include <stdlib.h>

#include "native.h"

int main(int argc, char **argv)
{
	uint64_t size;
	double t0, s;
	void *p;

	if (argc != 3) {
		fprintf(stderr, "usage: memset SIZE_MIB anon|thp|memfd|hugetlb-2m|hugetlb-1g\n");
		return 2;
	}
	size = strtoull(argv[1], NULL, 10) << 20;
	p = native_map(argv[2], size);
	if (!p)
		return 1;
	t0 = native_now();
	memset(p, 1, size);
	s = native_now() - t0;
	printf("{\"seconds\": %.6f, \"gib_per_s\": %.3f}\n", s, (double)size / (1 << 30) / s);
	return 0;
}
