/*
 * The native baseline for guest memory latency: the test guest's randread
 * chase (tests/guest/chase.h, the same code) over SIZE_MIB of KIND
 * (bench/native.h), in a plain process. Prints TSC cycles per read as JSON.
 *   Usage: randread SIZE_MIB ITERS KIND
 */
#include <stdlib.h>

#include "../tests/guest/chase.h"
#include "native.h"

int main(int argc, char **argv)
{
	uint64_t size, iters, cycles, end;
	void *p;

	if (argc != 4) {
		fprintf(stderr, "usage: randread SIZE_MIB ITERS anon|thp|memfd|hugetlb-2m|hugetlb-1g\n");
		return 2;
	}
	size = strtoull(argv[1], NULL, 10) << 20;
	iters = strtoull(argv[2], NULL, 10);
	if (!size || !iters)
		return 2;
	p = native_map(argv[3], size);
	if (!p)
		return 1;
	chase_build(p, size / 64);
	cycles = chase_run(p, iters, &end);
	printf("{\"cycles_per_read\": %.2f, \"end\": %llu}\n", (double)cycles / (double)iters,
	       (unsigned long long)(end & 1));
	return 0;
}
