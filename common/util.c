#include "common/util.h"

#include <stdio.h>
#include <time.h>

const char *page_size_name(uint64_t ps)
{
	static __thread char buf[24];

	if (ps == SZ_4K)
		return "4K";
	if (ps == SZ_2M)
		return "2M";
	if (ps == SZ_1G)
		return "1G";
	snprintf(buf, sizeof(buf), "%lluK", (unsigned long long)(ps >> 10));
	return buf;
}

const char *fmt_bytes(char *buf, size_t len, uint64_t b)
{
	static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	unsigned u = 0;
	uint64_t whole = b;

	while (whole >= 1024 && u + 1 < ARRAY_SIZE(unit)) {
		whole >>= 10;
		u++;
	}
	if (u == 0 || (b & ((UINT64_C(1) << (10 * u)) - 1)) == 0)
		snprintf(buf, len, "%llu %s", (unsigned long long)whole, unit[u]);
	else
		snprintf(buf, len, "%.2f %s", (double)b / (double)(UINT64_C(1) << (10 * u)),
			 unit[u]);
	return buf;
}

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
