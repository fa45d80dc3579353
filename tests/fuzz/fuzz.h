/*
 * What the fuzzers share: the fixed-seed PRNG (a failure reproduces from its
 * seed), the byte-level mutations, a descriptor's bytes, and a silent log sink.
 * Header-only: each fuzzer is one translation unit.
 */
#ifndef HUGEVMM_TESTS_FUZZ_H
#define HUGEVMM_TESTS_FUZZ_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

static unsigned long long rng;

/* Seed from argv[@i] (default 1; 0 is not a xorshift state). */
static void fuzz_seed(int argc, char **argv, int i)
{
	rng = argc > i ? strtoull(argv[i], NULL, 0) : 1;
	if (!rng)
		rng = 1;
}

static unsigned long long next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Flip one random bit of byte @at. */
static __attribute__((unused)) void fuzz_flip(char *d, size_t n, size_t at)
{
	if (n)
		d[at] ^= (char)(1u << (next() % 8));
}

/* Delete @len bytes at @at (fewer at the end); the new length. */
static __attribute__((unused)) size_t fuzz_delete(char *d, size_t n, size_t at, size_t len)
{
	if (at + len > n)
		len = n - at;
	memmove(d + at, d + at + len, n - at - len);
	return n - len;
}

/* Insert @t at @at unless the result would not fit in @cap; the new length. */
static __attribute__((unused)) size_t fuzz_insert(char *d, size_t n, size_t cap, size_t at, const char *t)
{
	size_t len = strlen(t);

	if (n + len >= cap)
		return n;
	memmove(d + at + len, d + at, n - at);
	memcpy(d + at, t, len);
	return n + len;
}

/* The 16 bytes of a split-ring descriptor as a guest lays them out (little-endian host). */
static __attribute__((unused)) void fuzz_desc(uint8_t d[16], uint64_t addr, uint32_t len,
					      uint16_t flags, uint16_t next_idx)
{
	memcpy(d, &addr, 8);
	memcpy(d + 8, &len, 4);
	memcpy(d + 12, &flags, 2);
	memcpy(d + 14, &next_idx, 2);
}

static void quiet(enum log_level lvl, const char *msg, void *opaque)
{
	(void)lvl;
	(void)msg;
	(void)opaque;
}

#endif
