/*
 * Backings: the object behind a region (nothing, a memfd, a file, a DAX
 * device) and its placement in the address space.
 */
#ifndef HUGEVMM_MEMORY_BACKING_H
#define HUGEVMM_MEMORY_BACKING_H

#include "memory/mem.h"

#define BACKING_GUARD SZ_4K /* PROT_NONE page kept on each side of a mapping */

/*
 * Open what backs @r and check the host can serve it (file type and size,
 * hugetlbfs page size, DAX device mode and alignment). Sets r->fd, r->on_dax
 * and, for devdax without a page_size, r->page_size.
 */
int backing_open(struct mem_region *r, struct vmm_err *e) must_check;

/*
 * Reserve address space with slack, map the backing with MAP_FIXED at an
 * address congruent with r->gpa (+ host_offset) modulo the page size, keep a
 * guard page each side, and advise THP on or off as the backing asks.
 */
int backing_map(struct mem_region *r, struct vmm_err *e) must_check;

/* Unmap (with guards) and close; leaves @r reusable. */
void backing_release(struct mem_region *r);

/* Free hugetlb pages short for @need bytes of @page_size pages, 0 when enough. */
uint64_t backing_hugetlb_shortfall(uint64_t page_size, uint64_t need, uint64_t *nr_now);

#endif
