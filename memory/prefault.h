/* Populating guest memory before boot, across threads. */
#ifndef HUGEVMM_MEMORY_PREFAULT_H
#define HUGEVMM_MEMORY_PREFAULT_H

#include <stdint.h>

#include "common/err.h"
#include "common/util.h"

/*
 * Populate [p, p+len) for writing with MADV_POPULATE_WRITE (touching each
 * page where the kernel lacks it). Work is split into @threads pieces
 * aligned to @granule (0 = automatic: one thread per 256 MiB up to the
 * online CPUs, at most 16). A progress line is shown on a terminal for
 * large ranges. Sets *@used to the thread count. Returns 0 or -errno.
 */
/*
 * Call @fn(@arg) first thing on each worker thread prefault_range() starts (the
 * VMM confines them with it); NULL: nothing. Process-wide.
 */
void prefault_set_thread_init(void (*fn)(void *arg), void *arg);

int prefault_range(uint8_t *p, uint64_t len, uint64_t granule, unsigned threads, const char *label,
		   unsigned *used) must_check;

/* The thread count prefault_range() picks for @len with @threads == 0. */
unsigned prefault_auto_threads(uint64_t len);

#endif
