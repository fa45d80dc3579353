#include "memory/reclaim.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "common/log.h"

static bool bit_get(const uint64_t *map, uint64_t i)
{
	return map[i / 64] >> (i % 64) & 1;
}

static void bit_set(uint64_t *map, uint64_t i)
{
	map[i / 64] |= UINT64_C(1) << (i % 64);
}

static void bit_clear(uint64_t *map, uint64_t i)
{
	map[i / 64] &= ~(UINT64_C(1) << (i % 64));
}

static uint64_t words(uint64_t bits)
{
	return (bits + 63) / 64;
}

/* What reclaim does on @r, and the sentence that says so. */
static enum mem_reclaim_kind region_kind(const struct mem_region *r, char *why, size_t len)
{
	const char *b = mem_backing_name(r->cfg.backing), *ps = page_size_name(r->page_size);
	bool keep = r->cfg.reclaim == MEM_RECLAIM_CFG_KEEP;
	bool whole = r->page_size > SZ_4K;

	switch (r->cfg.backing) {
	case MEM_BACKING_ANON:
	case MEM_BACKING_THP:
	case MEM_BACKING_MEMFD:
		if (keep) {
			snprintf(why, len, "%s: keeps its pages (\"reclaim\": \"keep\")", b);
			return MEM_RECLAIM_KEEP;
		}
		/*
		 * host_offset (tests only) puts the mapping off the page-size grid: a
		 * region-aligned "host page" would straddle two real huge pages, and
		 * discarding it would break both.
		 */
		if (!is_aligned((uintptr_t)r->hva, r->page_size)) {
			snprintf(why, len,
				 "%s: keeps its pages (host_offset_kib puts the mapping off the "
				 "%s grid: no whole host page to give back)",
				 b, ps);
			return MEM_RECLAIM_KEEP;
		}
		if (r->cfg.backing == MEM_BACKING_MEMFD) {
			snprintf(why, len, "memfd: %s%s pages go back (fallocate punch hole)",
				 whole ? "whole " : "", ps);
			return MEM_RECLAIM_PUNCH;
		}
		snprintf(why, len, "%s: %s%s pages go back (MADV_DONTNEED)", b,
			 whole ? "whole " : "", ps);
		return MEM_RECLAIM_DONTNEED;
	case MEM_BACKING_HUGETLB:
		if (keep) {
			snprintf(why, len,
				 "hugetlb: keeps its pages (set \"reclaim\": \"return\" to give "
				 "whole %s pages back to the pool)",
				 ps);
			return MEM_RECLAIM_KEEP;
		}
		snprintf(why, len,
			 "hugetlb: whole %s pages go back to the pool; a deflate takes them back "
			 "first (it waits while the pool is empty)",
			 ps);
		return MEM_RECLAIM_PUNCH;
	case MEM_BACKING_FILE:
		snprintf(why, len, "file: no reclaim (the file keeps its blocks)");
		return MEM_RECLAIM_KEEP;
	case MEM_BACKING_DEVDAX:
		snprintf(why, len, "devdax: no reclaim (device memory)");
		return MEM_RECLAIM_KEEP;
	case MEM_BACKING_COUNT:
		break;
	}
	snprintf(why, len, "%s: no reclaim", b);
	return MEM_RECLAIM_KEEP;
}

void mem_reclaim_destroy(struct mem_reclaim *rc)
{
	for (unsigned i = 0; i < MEM_MAX_REGIONS; i++) {
		free(rc->r[i].inflated);
		free(rc->r[i].gone);
		free(rc->r[i].count);
		memset(&rc->r[i], 0, sizeof(rc->r[i]));
	}
	if (rc->gm)
		pthread_mutex_destroy(&rc->lock);
	rc->gm = NULL;
}

int mem_reclaim_init(struct mem_reclaim *rc, struct guest_mem *gm)
{
	memset(rc, 0, sizeof(*rc));
	for (unsigned i = 0; i < gm->nregions; i++) {
		struct mem_region *r = &gm->regions[i];
		struct mem_reclaim_region *rr = &rc->r[i];
		uint64_t ps = MAX(r->page_size, SZ_4K);

		r->reclaim = region_kind(r, r->reclaim_why, sizeof(r->reclaim_why));
		r->reclaimed_bytes = r->balloon_bytes = 0;
		/*
		 * Every region gets the balloon's bookkeeping, "keep" ones too: what is
		 * in the balloon is counted (balloon_bytes) and deflates are checked the
		 * same way; only the discard differs.
		 */
		rr->npages = r->size / ps;
		rr->inflated = calloc(words(r->size / SZ_4K), sizeof(uint64_t));
		rr->gone = calloc(words(rr->npages), sizeof(uint64_t));
		rr->count = calloc(rr->npages ? rr->npages : 1, sizeof(uint32_t));
		if (!rr->inflated || !rr->gone || !rr->count) {
			mem_reclaim_destroy(rc);
			return -ENOMEM;
		}
	}
	pthread_mutex_init(&rc->lock, NULL);
	rc->gm = gm;
	return 0;
}

/*
 * Where [gpa, gpa + len) is: its region and the byte offset inside it. The
 * range must be guest RAM of one region, contiguous in that region (a range
 * across the MMIO hole or into the next region is refused). -EINVAL otherwise.
 */
static int locate(const struct guest_mem *gm, uint64_t gpa, uint64_t len, unsigned *region,
		  uint64_t *off)
{
	uint64_t done = 0, first = 0;
	unsigned ri = 0;

	if (!len || !is_aligned(gpa, SZ_4K) || !is_aligned(len, SZ_4K) || gpa + len < gpa)
		return -EINVAL;
	while (done < len) {
		const struct mem_slot *s = NULL;
		uint64_t at = gpa + done, o;

		for (unsigned i = 0; i < gm->nslots; i++)
			if (at >= gm->slots[i].gpa && at - gm->slots[i].gpa < gm->slots[i].size) {
				s = &gm->slots[i];
				break;
			}
		if (!s)
			return -EINVAL;
		o = (uint64_t)(s->hva - gm->regions[s->region].hva) + (at - s->gpa);
		if (!done) {
			ri = s->region;
			first = o;
		} else if (s->region != ri || o != first + done) {
			return -EINVAL;
		}
		done += MIN(len - done, s->size - (at - s->gpa));
	}
	*region = ri;
	*off = first;
	return 0;
}

/*
 * Discard host pages [hp, hp + n) of region @ri, which are whole and aligned.
 * True when they are gone; a failing call is counted and the pages stay.
 */
static bool discard(struct mem_reclaim *rc, unsigned ri, uint64_t hp, uint64_t n)
{
	struct mem_region *r = &rc->gm->regions[ri];
	uint64_t off = hp * r->page_size, len = n * r->page_size;
	int err = 0;

	switch (r->reclaim) {
	case MEM_RECLAIM_KEEP:
		return false;
	case MEM_RECLAIM_DONTNEED:
		rc->st.discards_dontneed++;
		if (madvise(r->hva + off, len, MADV_DONTNEED))
			err = errno;
		break;
	case MEM_RECLAIM_PUNCH:
		/* The backing maps its file from offset 0 (backing_map): offsets agree. */
		rc->st.discards_punch++;
		if (fallocate(r->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
			      (off_t)len))
			err = errno;
		break;
	}
	if (err) {
		rc->st.discard_errors++;
		log_debug("%s (\"%s\"): discarding %llu bytes at %#llx: %s", r->cfg.origin,
			  r->cfg.id, (unsigned long long)len, (unsigned long long)off,
			  strerror(err));
		return false;
	}
	return true;
}

/* Host page @hp of region @ri was discarded: it is gone (again, or for the first time). */
static void mark_gone(struct mem_reclaim *rc, unsigned ri, uint64_t hp)
{
	struct mem_reclaim_region *rr = &rc->r[ri];
	struct mem_region *r = &rc->gm->regions[ri];

	if (bit_get(rr->gone, hp))
		return;
	bit_set(rr->gone, hp);
	rc->st.huge_reclaimed++;
	r->reclaimed_bytes += r->page_size;
	r->balloon_bytes -= (uint64_t)rr->count[hp] * SZ_4K;
}

/* Host page @hp of region @ri is the guest's again (deflated, or found mapped). */
static void mark_back(struct mem_reclaim *rc, unsigned ri, uint64_t hp)
{
	struct mem_reclaim_region *rr = &rc->r[ri];
	struct mem_region *r = &rc->gm->regions[ri];

	bit_clear(rr->gone, hp);
	r->reclaimed_bytes -= r->page_size;
	r->balloon_bytes += (uint64_t)rr->count[hp] * SZ_4K;
}

/* With the lock: the 4K page at @gpa -- its region, page and host page -- or -EINVAL (counted). */
static int page_at(struct mem_reclaim *rc, uint64_t gpa, unsigned *ri, uint64_t *pg, uint64_t *hp)
{
	uint64_t off;

	if (locate(rc->gm, gpa, SZ_4K, ri, &off)) {
		rc->st.rejected++;
		return -EINVAL;
	}
	*pg = off / SZ_4K;
	*hp = off / rc->gm->regions[*ri].page_size;
	return 0;
}

/*
 * With the lock: host page @hp of region @ri, given back, is the guest's again.
 * hugetlb: the pool may have lent the page to someone else; a guest touching an
 * unbacked hugetlb page gets SIGBUS (the VM stops). So the page is taken from the
 * pool first; false when it cannot be (nothing changed).
 */
static bool take_back(struct mem_reclaim *rc, unsigned ri, uint64_t hp)
{
	struct mem_region *r = &rc->gm->regions[ri];

	if (r->reclaim == MEM_RECLAIM_PUNCH && r->cfg.backing == MEM_BACKING_HUGETLB) {
		if (fallocate(r->fd, 0, (off_t)(hp * r->page_size), (off_t)r->page_size)) {
			rc->st.repopulate_fails++;
			log_debug("%s (\"%s\"): taking a %s page back from the pool: %s",
				  r->cfg.origin, r->cfg.id, page_size_name(r->page_size),
				  strerror(errno));
			return false;
		}
		rc->st.repopulated++;
	}
	mark_back(rc, ri, hp);
	rc->st.returned++;
	/*
	 * The page stays absent until the guest touches it: it leaves the drift
	 * baseline (mem.c compares huge + reclaimed bytes) with it, or the next
	 * measurement would take a deliberate return for a drift.
	 */
	if (r->baseline)
		r->huge_last -= MIN(r->huge_last, r->page_size);
	return true;
}

int mem_reclaim_inflate(struct mem_reclaim *rc, uint64_t gpa)
{
	struct mem_reclaim_region *rr;
	struct mem_region *r;
	uint64_t pg, hp;
	unsigned ri;

	pthread_mutex_lock(&rc->lock);
	if (page_at(rc, gpa, &ri, &pg, &hp)) {
		pthread_mutex_unlock(&rc->lock);
		return -EINVAL;
	}
	rr = &rc->r[ri];
	r = &rc->gm->regions[ri];
	if (bit_get(rr->inflated, pg)) {
		pthread_mutex_unlock(&rc->lock);
		return 0;
	}
	bit_set(rr->inflated, pg);
	rr->count[hp]++;
	if (!bit_get(rr->gone, hp))
		r->balloon_bytes += SZ_4K;
	/*
	 * Discarded again even when already gone (by a report): the guest may
	 * have used the page since, and refresh has not seen it yet.
	 */
	if (rr->count[hp] == r->page_size / SZ_4K && discard(rc, ri, hp, 1))
		mark_gone(rc, ri, hp);
	pthread_mutex_unlock(&rc->lock);
	return 0;
}

int mem_reclaim_deflate(struct mem_reclaim *rc, uint64_t gpa)
{
	struct mem_reclaim_region *rr;
	struct mem_region *r;
	uint64_t pg, hp;
	unsigned ri;

	pthread_mutex_lock(&rc->lock);
	if (page_at(rc, gpa, &ri, &pg, &hp)) {
		pthread_mutex_unlock(&rc->lock);
		return -EINVAL;
	}
	rr = &rc->r[ri];
	r = &rc->gm->regions[ri];
	if (!bit_get(rr->inflated, pg)) {
		pthread_mutex_unlock(&rc->lock);
		return 0;
	}
	if (bit_get(rr->gone, hp) && !take_back(rc, ri, hp)) {
		pthread_mutex_unlock(&rc->lock);
		return -ENOMEM; /* the deflate waits */
	}
	bit_clear(rr->inflated, pg);
	rr->count[hp]--;
	if (!bit_get(rr->gone, hp))
		r->balloon_bytes -= SZ_4K;
	pthread_mutex_unlock(&rc->lock);
	return 0;
}

void mem_reclaim_release_all(struct mem_reclaim *rc)
{
	uint64_t unbacked = 0;

	pthread_mutex_lock(&rc->lock);
	for (unsigned ri = 0; ri < rc->gm->nregions; ri++) {
		struct mem_reclaim_region *rr = &rc->r[ri];
		struct mem_region *r = &rc->gm->regions[ri];

		if (!rr->inflated)
			continue;
		for (uint64_t hp = 0; hp < rr->npages; hp++) {
			if (!(hp % 64) && !rr->gone[hp / 64]) {
				hp += 63; /* a word of pages none of which is gone */
				continue;
			}
			if (!bit_get(rr->gone, hp))
				continue;
			rr->count[hp] = 0;
			if (!take_back(rc, ri, hp))
				unbacked++; /* stays gone: a touch finds no page */
		}
		memset(rr->inflated, 0, words(r->size / SZ_4K) * sizeof(uint64_t));
		memset(rr->count, 0, rr->npages * sizeof(*rr->count));
		r->balloon_bytes = 0;
	}
	pthread_mutex_unlock(&rc->lock);
	if (unbacked)
		log_warn("balloon reset: %llu hugetlb pages could not be taken back from the pool; "
			 "a guest touching them stops the VM",
			 (unsigned long long)unbacked);
}

int mem_reclaim_report(struct mem_reclaim *rc, uint64_t gpa, uint64_t len)
{
	struct mem_region *r;
	uint64_t off, hp0, hp1;
	unsigned ri;

	pthread_mutex_lock(&rc->lock);
	if (locate(rc->gm, gpa, len, &ri, &off)) {
		rc->st.rejected++;
		pthread_mutex_unlock(&rc->lock);
		return -EINVAL;
	}
	r = &rc->gm->regions[ri];
	hp0 = (off + r->page_size - 1) / r->page_size;
	hp1 = (off + len) / r->page_size;
	/*
	 * hugetlb never discards a report: the guest may use the range again as
	 * soon as the report is acknowledged, with no deflate to take the page
	 * from the pool first.
	 */
	if (hp1 <= hp0 || r->reclaim == MEM_RECLAIM_KEEP || r->cfg.backing == MEM_BACKING_HUGETLB) {
		rc->st.avoided_4k += len / SZ_4K;
	} else {
		rc->st.avoided_4k += (len - (hp1 - hp0) * r->page_size) / SZ_4K;
		if (discard(rc, ri, hp0, hp1 - hp0))
			for (uint64_t hp = hp0; hp < hp1; hp++)
				mark_gone(rc, ri, hp);
	}
	pthread_mutex_unlock(&rc->lock);
	return 0;
}

void mem_reclaim_refresh(struct mem_reclaim *rc)
{
	unsigned char vec[512];

	pthread_mutex_lock(&rc->lock);
	for (unsigned ri = 0; ri < rc->gm->nregions; ri++) {
		struct mem_reclaim_region *rr = &rc->r[ri];
		struct mem_region *r = &rc->gm->regions[ri];

		for (uint64_t w = 0; w < words(rr->npages); w++) {
			if (!rr->gone[w])
				continue;
			for (uint64_t hp = w * 64; hp < MIN(rr->npages, w * 64 + 64); hp++) {
				bool mapped = false;

				if (!bit_get(rr->gone, hp))
					continue;
				/*
				 * mincore: anonymous memory counts mapped pages; a shared
				 * mapping (memfd, hugetlb) counts the file's pages in the
				 * page cache, which a punched page is not.
				 */
				for (uint64_t o = 0; o < r->page_size && !mapped;
				     o += sizeof(vec) * SZ_4K) {
					uint64_t n = MIN(sizeof(vec) * SZ_4K, r->page_size - o);

					if (mincore(r->hva + hp * r->page_size + o, n, vec))
						break;
					for (uint64_t k = 0; k < n / SZ_4K; k++)
						mapped |= vec[k] & 1;
				}
				if (mapped) {
					rc->st.refaults++;
					mark_back(rc, ri, hp);
				}
			}
		}
	}
	pthread_mutex_unlock(&rc->lock);
}

void mem_reclaim_stats(struct mem_reclaim *rc, struct mem_reclaim_stats *out)
{
	pthread_mutex_lock(&rc->lock);
	*out = rc->st;
	pthread_mutex_unlock(&rc->lock);
}

void mem_reclaim_snapshot(struct mem_reclaim *rc, struct guest_mem *dst)
{
	pthread_mutex_lock(&rc->lock);
	for (unsigned i = 0; i < rc->gm->nregions && i < dst->nregions; i++) {
		const struct mem_region *r = &rc->gm->regions[i];

		dst->regions[i].reclaim = r->reclaim;
		memcpy(dst->regions[i].reclaim_why, r->reclaim_why, sizeof(r->reclaim_why));
		dst->regions[i].reclaimed_bytes = r->reclaimed_bytes;
		dst->regions[i].balloon_bytes = r->balloon_bytes;
	}
	pthread_mutex_unlock(&rc->lock);
}
