/*
 * The randread pointer chase, shared word for word by the test guest
 * (test=randread) and the native baseline (bench/randread.c), so that guest
 * and native cycles per read come from the same loop.
 *
 * One 64-byte line per element. Sattolo's shuffle makes a random permutation
 * with a single cycle; each line then holds the address of its successor, so
 * every read depends on the one before and the chase visits every line.
 * Freestanding: no libc.
 */
#ifndef HUGEVMM_CHASE_H
#define HUGEVMM_CHASE_H

#include <stdint.h>

static inline uint64_t chase_rdtsc(void)
{
	uint32_t lo, hi;

	__asm__ volatile("lfence; rdtsc" : "=a"(lo), "=d"(hi));
	return ((uint64_t)hi << 32) | lo;
}

static inline uint64_t chase_xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Link @lines 64-byte lines at @base into one random cycle (touches every line). */
static inline void chase_build(uint64_t *base, uint64_t lines)
{
	uint64_t seed = 0x2545f4914f6cdd1dull;

	for (uint64_t i = 0; i < lines; i++)
		base[i * 8] = i;
	for (uint64_t i = lines - 1; i > 0; i--) {
		uint64_t j = chase_xorshift(&seed) % i, t = base[i * 8];

		base[i * 8] = base[j * 8];
		base[j * 8] = t;
	}
	for (uint64_t i = 0; i < lines; i++)
		base[i * 8] = (uint64_t)(uintptr_t)&base[base[i * 8] * 8];
}

/* A short warm-up, then @iters dependent reads; returns the TSC cycles they took. */
static inline uint64_t chase_run(uint64_t *base, uint64_t iters, uint64_t *end)
{
	volatile uint64_t *p = (volatile uint64_t *)base;
	uint64_t t0, t1;

	for (uint64_t i = 0; i < iters / 10; i++)
		p = (volatile uint64_t *)(uintptr_t)*p;
	t0 = chase_rdtsc();
	for (uint64_t i = 0; i < iters; i++)
		p = (volatile uint64_t *)(uintptr_t)*p;
	t1 = chase_rdtsc();
	*end = (uint64_t)(uintptr_t)p;
	return t1 - t0;
}

#endif
