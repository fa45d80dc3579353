#include "common/util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

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

void efd_signal(int fd, const char *what)
{
	uint64_t one = 1;

	if (write(fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_debug("%s eventfd: %s", what, strerror(errno));
}

void efd_drain(int fd, const char *what)
{
	uint64_t n;

	if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_debug("%s eventfd: %s", what, strerror(errno));
}
