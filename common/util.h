/* Small helpers shared by every layer: sizes, alignment, container_of. */
#ifndef HUGEVMM_COMMON_UTIL_H
#define HUGEVMM_COMMON_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SZ_4K (UINT64_C(1) << 12)
#define SZ_1M (UINT64_C(1) << 20)
#define SZ_2M (UINT64_C(1) << 21)
#define SZ_1G (UINT64_C(1) << 30)

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b)     ((a) < (b) ? (a) : (b))
#define MAX(a, b)     ((a) > (b) ? (a) : (b))

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#define must_check __attribute__((warn_unused_result))

/* Alignment helpers; @a must be a power of two. */
static inline uint64_t align_up(uint64_t x, uint64_t a)
{
	return (x + a - 1) & ~(a - 1);
}

static inline uint64_t align_down(uint64_t x, uint64_t a)
{
	return x & ~(a - 1);
}

static inline bool is_aligned(uint64_t x, uint64_t a)
{
	return (x & (a - 1)) == 0;
}

static inline bool is_pow2(uint64_t x)
{
	return x && !(x & (x - 1));
}

/* "4K", "2M", "1G" (or "%lluK" for other sizes) for page sizes in messages. */
const char *page_size_name(uint64_t page_size);

/* Human size: "1.50 GiB", "64 MiB", "4 KiB" into @buf. */
const char *fmt_bytes(char *buf, size_t len, uint64_t bytes);

/* Monotonic clock in nanoseconds. */
uint64_t now_ns(void);

/*
 * Eventfds as wake-ups: add one to @fd's count, or take the whole count. A
 * full (or, nonblocking, an empty) counter is not an error; anything else is
 * logged at debug level as "@what eventfd: <error>" -- a lost wake-up is
 * retried by its sender, never fatal.
 */
void efd_signal(int fd, const char *what);
void efd_drain(int fd, const char *what);

#endif
