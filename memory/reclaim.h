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
 *   host_offset (tests) a thp/memfd mapping off the page-size grid keeps: a
 *                       "whole" host page there would straddle two huge pages
 *
 * A host page is discarded when it is whole: all of its 4K pages in the
 * balloon, or inside one free page report (never reports on hugetlb). What
 * is discarded and not back is "gone": counted in the region's
 * reclaimed_bytes until a deflate returns it or mem_reclaim_refresh finds it
 * mapped again. balloon_bytes counts 4K pages in the balloon whose host page
 * is not gone. mem.c's drift check compares huge + reclaimed bytes, so pages
 * given back are not taken for a coverage drift; a deflated page, absent
 * until the guest touches it, leaves the region's drift baseline (huge_last)
 * at the deflate. mem_measure reads reclaimed_bytes without the lock: measure
 * from the thread that drives reclaim, after mem_reclaim_refresh.
 *
 * memory/ knows nothing about the balloon device: it is told pages and ranges
 * by guest physical address. All calls are thread-safe (one lock).
 */
#ifndef HUGEVMM_MEMORY_RECLAIM_H
#define HUGEVMM_MEMORY_RECLAIM_H

#include <pthread.h>
#include <stdint.h>

#include "memory/mem.h"

/*
 * avoided_4k counts free page reporting only: reported 4K pages that were not
 * discarded -- those of host pages the range covers partly, and every page of
 * a report on a region that never discards reports (hugetlb, "keep", file,
 * devdax). Balloon pages waiting for their host page to be whole are not
 * counted there: they are the region's balloon_bytes.
 */
struct mem_reclaim_stats {
	uint64_t discards_dontneed; /* MADV_DONTNEED calls (each on whole host pages) */
	uint64_t discards_punch;    /* fallocate(PUNCH_HOLE) calls (each on whole host pages) */
	uint64_t huge_reclaimed;    /* host pages that became gone, cumulative (4K ones on anon) */
	uint64_t returned;          /* reclaimed host pages the guest took back (deflate) */
	uint64_t avoided_4k;        /* reported 4K pages not discarded (above) */
	uint64_t refaults;          /* reclaimed host pages found mapped again (mem_reclaim_refresh) */
	uint64_t rejected;          /* pages or ranges refused: not RAM, unaligned, across regions */
	uint64_t repopulated;       /* hugetlb "return": pages taken from the pool again */
	uint64_t repopulate_fails;  /* ... that the pool could not give (the deflate waits) */
	uint64_t discard_errors;    /* madvise/fallocate failed (the page stays, counted once) */
};

/* Per region (index as in guest_mem.regions); allocated for every region, keeping ones too. */
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
 * a sentence into .reclaim_why ("thp: whole 2M pages go back (MADV_DONTNEED)",
 * "devdax: no reclaim (device memory)"...), which the caller logs at start;
 * the region's reclaimed_bytes and balloon_bytes start at 0. Every region gets
 * the balloon's bitmaps (about size/32K bytes), keeping ones too. 0 or -ENOMEM
 * (nothing left allocated).
 */
int mem_reclaim_init(struct mem_reclaim *rc, struct guest_mem *gm) must_check;

/* Free the bitmaps; safe on a zeroed or destroyed one. */
void mem_reclaim_destroy(struct mem_reclaim *rc);

/*
 * The guest put the 4K page at @gpa in its balloon. When that makes its host
 * page whole (every 4K page in the balloon) the host page is discarded, even
 * when a report already had it gone (the guest may have used it since).
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
 * The driver is gone (a device reset): every page is the guest's again -- out
 * of the balloon, and every host page given back counts as back (hugetlb
 * "return": taken from the pool first; one the pool cannot give stays given
 * back, with a warning). A new driver starts from an empty balloon.
 */
void mem_reclaim_release_all(struct mem_reclaim *rc);

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
 * since is mapped again -- a refault -- and no longer reclaimed. For shared
 * backings (memfd, hugetlb) mincore reports the file's page cache, which a
 * punched page has left.
 */
void mem_reclaim_refresh(struct mem_reclaim *rc);

/* A consistent copy of the counters. */
void mem_reclaim_stats(struct mem_reclaim *rc, struct mem_reclaim_stats *out);

/*
 * Copy every region's reclaimed_bytes and balloon_bytes (and its reclaim kind
 * and sentence) from @rc's memory into @dst (a snapshot of the same guest
 * memory), under the lock.
 */
void mem_reclaim_snapshot(struct mem_reclaim *rc, struct guest_mem *dst);

#endif
