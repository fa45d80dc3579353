/*
 * Firecracker's rate limiter: two token buckets, bytes ("bandwidth") and
 * operations ("ops"). A bucket holds up to size tokens, refills from empty
 * to full in refill_time milliseconds, and starts with one_time_burst extra
 * tokens that are spent first and never come back. A bucket of size 0 or
 * refill_time 0 does not limit. A request larger than a bucket is allowed
 * once the bucket is full and leaves it in debt, so it is delayed, not stuck.
 */
#ifndef HUGEVMM_COMMON_RATELIMIT_H
#define HUGEVMM_COMMON_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

struct rl_bucket_cfg {
	uint64_t size, one_time_burst, refill_time_ms;
};

struct rl_cfg {
	bool set;
	bool has_bandwidth, has_ops;
	struct rl_bucket_cfg bandwidth, ops;
};

struct rl_bucket {
	bool on;
	double size, rate_per_ns; /* tokens, and tokens refilled per nanosecond */
	double tokens, burst;
	uint64_t last_ns;
};

struct ratelimit {
	struct rl_bucket bw, ops;
	uint64_t throttled; /* requests that had to wait */
};

/* Buckets full (plus their bursts) at @now_ns. */
void rl_init(struct ratelimit *rl, const struct rl_cfg *c, uint64_t now_ns);

/* Whether either bucket limits anything. */
bool rl_active(const struct ratelimit *rl);

/*
 * Take @bytes and @ops tokens at @now_ns: 0 when the request may go now
 * (taken), else how many milliseconds (at least 1) to wait before asking
 * again (nothing taken).
 */
uint64_t rl_take(struct ratelimit *rl, uint64_t bytes, uint64_t ops, uint64_t now_ns);

#endif
