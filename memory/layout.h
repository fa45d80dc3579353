/*
 * Guest-physical layout of RAM regions: pure arithmetic, no mappings.
 * Regions are placed in order from GPA 0, each base aligned to its page
 * size (at least 2M), never inside the 32-bit MMIO hole; a region that
 * crosses the hole's start becomes two memslots.
 */
#ifndef HUGEVMM_MEMORY_LAYOUT_H
#define HUGEVMM_MEMORY_LAYOUT_H

#include <stdint.h>

#include "memory/mem_cfg.h"

#define MEM_HOLE_START (3 * SZ_1G) /* 32-bit MMIO hole [3 GiB, 4 GiB) */
#define MEM_HOLE_END   (4 * SZ_1G)
#define MEM_MAX_SLOTS  (2 * MEM_MAX_REGIONS)
#define MEM_GPA_LIMIT  (UINT64_C(1) << 46) /* 64 TiB of guest-physical space */

struct mem_slot_plan {
	unsigned region;
	uint64_t gpa;
	uint64_t size;
	uint64_t offset; /* byte offset of the slot inside its region */
};

struct mem_layout {
	struct mem_slot_plan slots[MEM_MAX_SLOTS];
	unsigned nslots;
	uint64_t top; /* first GPA above all RAM */
};

/* Place finalized regions @c[0..n). Errors (ERR_CONFIG) when RAM runs past MEM_GPA_LIMIT. */
int mem_layout_plan(const struct mem_region_cfg *c, unsigned n, struct mem_layout *out,
		    struct vmm_err *e) must_check;

#endif
