#include "common/ratelimit.h"

#include <math.h>
#include <string.h>

static void bucket_init(struct rl_bucket *b, const struct rl_bucket_cfg *c, uint64_t now)
{
	memset(b, 0, sizeof(*b));
	if (!c->size || !c->refill_time_ms)
		return;
	b->on = true;
	b->size = (double)c->size;
	b->rate_per_ns = (double)c->size / ((double)c->refill_time_ms * 1e6);
	b->tokens = b->size;
	b->burst = (double)c->one_time_burst;
	b->last_ns = now;
}

void rl_init(struct ratelimit *rl, const struct rl_cfg *c, uint64_t now_ns)
{
	static const struct rl_bucket_cfg none;

	memset(rl, 0, sizeof(*rl));
	bucket_init(&rl->bw, c && c->has_bandwidth ? &c->bandwidth : &none, now_ns);
	bucket_init(&rl->ops, c && c->has_ops ? &c->ops : &none, now_ns);
}

bool rl_active(const struct ratelimit *rl)
{
	return rl->bw.on || rl->ops.on;
}

static void refill(struct rl_bucket *b, uint64_t now)
{
	if (now > b->last_ns) {
		b->tokens = fmin(b->size, b->tokens + (double)(now - b->last_ns) * b->rate_per_ns);
		b->last_ns = now;
	}
}

/* Nanoseconds until @n tokens could be taken (0: now). */
static double wait_ns(const struct rl_bucket *b, double n)
{
	double need;

	if (!b->on || n <= b->burst)
		return 0;
	/* Over the bucket's size: allowed from a full bucket, which then owes the rest. */
	need = fmin(n - b->burst, b->size);
	return b->tokens >= need ? 0 : (need - b->tokens) / b->rate_per_ns;
}

static void take(struct rl_bucket *b, double n)
{
	double from_burst;

	if (!b->on)
		return;
	from_burst = fmin(b->burst, n);
	b->burst -= from_burst;
	b->tokens -= n - from_burst;
}

uint64_t rl_take(struct ratelimit *rl, uint64_t bytes, uint64_t ops, uint64_t now_ns)
{
	double w;

	refill(&rl->bw, now_ns);
	refill(&rl->ops, now_ns);
	w = fmax(wait_ns(&rl->bw, (double)bytes), wait_ns(&rl->ops, (double)ops));
	if (w > 0) {
		rl->throttled++;
		return (uint64_t)ceil(w / 1e6) ? (uint64_t)ceil(w / 1e6) : 1;
	}
	take(&rl->bw, (double)bytes);
	take(&rl->ops, (double)ops);
	return 0;
}
