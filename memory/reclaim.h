/*
 * Giving guest memory back to the host without breaking huge pages. What the
 * guest hands over -- 4K pages put in its balloon, free blocks it reports --
 * is collected per host page of the region (the region's page_size: 2M for
 * thp, memfd and hugetlb 2M, 1G for hugetlb 1G, 4K for anon) and discarded
 * only as whole, aligned host pages: never a 4K hole in a huge mapping.
 *
 *   thp / anon          MADV_DONTNEED; the guest's next touch brings a fresh
 *                       page (a THP again: the range is aligned and advised)
 *   memfd               fallocate(PUNCH_HOLE) (DONTNEED alone frees no shmem)
 *   hugetlb             "keep" (the default): nothing is given back, the pool
 *                       keeps the region's pages and no touch can SIGBUS;
 *                       "return": PUNCH_HOLE gives pages back to the pool and a
 *                       deflate takes them from it again (fallocate) *before*
 *                       the guest is told it may use them
 *   file, devdax        nothing is given back (persistent memory is not
 *                       reclaimed); said at start
 *
 * memory/ knows nothing about the balloon device: it is told pages and ranges
 * by guest physical address. All calls are thread-safe (one lock).
 */
#ifndef HUGEVMM_MEMORY_RECLAIM_H
#define HUGEVMM_MEMORY_RECLAIM_H

#include <pthread.h>
#include <stdint.h>

#include "memory/mem.h"

struct mem_reclaim_stats {
	uint64_t discards_dontneed; /* MADV_DONTNEED calls (each on whole host pages) */
	uint64_t discards_punch;    /* fallocate(PUNCH_HOLE) calls (each on whole host pages) */
	uint64_t huge_reclaimed;    /* host pages given back to the host, cumulative */
	uint64_t returned;          /* reclaimed host pages the guest took back (deflate) */
	uint64_t avoided_4k;        /* 4K pages handed over but not discarded (host page not whole) */
	uint64_t refaults;          /* reclaimed host pages found mapped again (mem_reclaim_refresh) */
	uint64_t rejected;          /* pages or ranges refused: not RAM, unaligned, across regions */
	uint64_t repopulated;       /* hugetlb "return": pages taken from the pool again */
	uint64_t repopulate_fails;  /* ... that the pool could not give (the deflate waits) */
	uint64_t discard_errors;    /* madvise/fallocate failed (the page stays, counted once) */
};

/* Per region (index as in guest_mem.regions); all NULL/0 where nothing is given back. */
struct mem_reclaim_region {
	uint64_t *inflated; /* one bit per 4K page: in the balloon */
	uint64_t *gone;     /* one bit per host page: discarded and not back */
	uint32_t *count;    /* per host page: how many of its 4K pages are in the balloon */
	uint64_t npages;    /* host pages in the region */
};

struct mem_reclaim {
	struct guest_mem *gm;
	pthread_mutex_t lock;
	struct mem_reclaim_region r[MEM_MAX_REGIONS];
	struct mem_reclaim_stats st;
};

/*
 * Prepare reclaim over mapped memory @gm: per region its kind (from the
 * region's finalized cfg.reclaim and backing) into gm->regions[i].reclaim and
 * a sentence into .reclaim_why ("thp: whole 2M pages, MADV_DONTNEED", "devdax:
 * no reclaim (persistent memory)"...), which the caller logs at start. 0 or
 * -ENOMEM (nothing left allocated).
 */
int mem_reclaim_init(struct mem_reclaim *rc, struct guest_mem *gm) must_check;

/* Free the bitmaps; safe on a zeroed or destroyed one. */
void mem_reclaim_destroy(struct mem_reclaim *rc);

/*
 * The guest put the 4K page at @gpa in its balloon. When that makes its host
 * page whole (every 4K page in the balloon) the host page is discarded.
 * 0; -EINVAL when @gpa is not 4K-aligned guest RAM (counted in rejected);
 * a page already in the balloon is fine (0, nothing changes).
 */
int mem_reclaim_inflate(struct mem_reclaim *rc, uint64_t gpa);

/*
 * The guest takes the 4K page at @gpa back. A discarded host page it belongs
 * to is no longer reclaimed (the guest's touch brings it back). 0; -EINVAL as
 * for inflate (a page not in the balloon is fine); -ENOMEM when a hugetlb
 * "return" region cannot take the host page from the pool again: nothing
 * changed, the caller must not tell the guest yet and tries again later.
 */
int mem_reclaim_deflate(struct mem_reclaim *rc, uint64_t gpa);

/*
 * Free page reporting: [@gpa, @gpa + @len) is free in the guest (until the
 * report is acknowledged, then the guest may reuse it: mem_reclaim_refresh
 * sees that). Every whole host page inside is discarded; the 4K pages of
 * partial host pages are counted in avoided_4k; hugetlb regions keep their
 * pages whatever "reclaim" says (a reported page is the guest's again as soon
 * as the report is acknowledged). 0; -EINVAL (counted in rejected, nothing
 * discarded) when the range is empty, not 4K-aligned, not guest RAM, or
 * spans two regions.
 */
int mem_reclaim_report(struct mem_reclaim *rc, uint64_t gpa, uint64_t len);

/*
 * Look again at every reclaimed host page (mincore): one the guest touched
 * since is mapped again -- a refault -- and no longer reclaimed.
 */
void mem_reclaim_refresh(struct mem_reclaim *rc);

/* A consistent copy of the counters. */
void mem_reclaim_stats(struct mem_reclaim *rc, struct mem_reclaim_stats *out);

/*
 * Copy every region's reclaimed_bytes and balloon_bytes from @rc's memory into
 * @dst (a snapshot of the same guest memory), under the lock.
 */
void mem_reclaim_snapshot(struct mem_reclaim *rc, struct guest_mem *dst);

#endif
