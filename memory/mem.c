#include "memory/mem.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/compat.h"
#include "common/log.h"
#include "memory/backing.h"
#include "memory/measure.h"
#include "memory/policy.h"
#include "memory/prefault.h"

static const char *const verdict_names[] = {
	[MEM_VERDICT_PASS] = "pass",         [MEM_VERDICT_WARN] = "warn",
	[MEM_VERDICT_FAIL] = "fail",         [MEM_VERDICT_OFF] = "off",
	[MEM_VERDICT_DEFERRED] = "deferred",
};

const char *mem_verdict_name(enum mem_verdict v)
{
	return (unsigned)v < ARRAY_SIZE(verdict_names) ? verdict_names[v] : "?";
}

double mem_cov_ratio(const struct mem_region *r)
{
	if (!r->size || !r->host.known)
		return 0.0;
	return (double)(r->host.bytes_2m + r->host.bytes_1g) / (double)r->size;
}

double mem_host_coverage(const struct guest_mem *gm)
{
	uint64_t huge = 0, size = 0;

	for (unsigned i = 0; i < gm->nregions; i++) {
		const struct mem_region *r = &gm->regions[i];

		if (!r->host.known)
			continue;
		huge += r->host.bytes_2m + r->host.bytes_1g;
		size += r->size;
	}
	return size ? (double)huge / (double)size : -1.0;
}

/*
 * Zero what @n regions use. Not the whole struct: its arrays are sized for
 * MEM_MAX_REGIONS (~90 KiB) and pages of a fresh allocation that are never
 * written stay out of the VMM's RSS. Entries past nregions/nslots are unused.
 */
static void gm_clear(struct guest_mem *gm, unsigned n)
{
	memset(gm->regions, 0, MIN(n, MEM_MAX_REGIONS) * sizeof(gm->regions[0]));
	memset(gm->slots, 0, sizeof(gm->slots));
	gm->nregions = gm->nslots = 0;
	gm->top = 0;
}

void mem_unmap(struct guest_mem *gm)
{
	for (unsigned i = 0; i < gm->nregions; i++)
		backing_release(&gm->regions[i]);
	gm_clear(gm, gm->nregions);
}

static void fill_slots(struct guest_mem *gm, const struct mem_layout *lay)
{
	gm->nslots = lay->nslots;
	gm->top = lay->top;
	for (unsigned i = 0; i < lay->nslots; i++) {
		const struct mem_slot_plan *p = &lay->slots[i];
		struct mem_region *r = &gm->regions[p->region];
		struct mem_slot *s = &gm->slots[i];

		s->id = i;
		s->region = p->region;
		s->gpa = p->gpa;
		s->size = p->size;
		if (r->nslots++ == 0) {
			r->first_slot = i;
			r->gpa = p->gpa;
		}
	}
}

/* Host addresses of the slots, known once the regions are mapped. */
static void place_slots(struct guest_mem *gm, const struct mem_layout *lay)
{
	for (unsigned i = 0; i < gm->nslots; i++) {
		struct mem_slot *s = &gm->slots[i];
		const struct mem_region *r = &gm->regions[s->region];
		uint64_t ps = MAX(r->page_size, SZ_4K);

		s->hva = r->hva + lay->slots[i].offset;
		s->aligned = is_aligned((uintptr_t)s->hva ^ s->gpa, ps) && is_aligned(s->gpa, ps) &&
			     is_aligned(s->size, ps);
	}
}

int mem_map(struct guest_mem *gm, const struct mem_region_cfg *cfg, unsigned n, struct vmm_err *e)
{
	struct mem_region_cfg placed[MEM_MAX_REGIONS];
	struct mem_layout lay;
	int rc;

	gm_clear(gm, n);
	if (n == 0 || n > MEM_MAX_REGIONS)
		return err_set(e, ERR_CONFIG, -EINVAL, "memory.regions: %u regions; give 1 to %d",
			       n, MEM_MAX_REGIONS);
	gm->nregions = n;
	for (unsigned i = 0; i < n; i++) {
		struct mem_region *r = &gm->regions[i];

		r->cfg = cfg[i];
		r->fd = -1;
		r->size = cfg[i].size;
		r->page_size = cfg[i].page_size;
	}
	/* Open first: a devdax device decides its region's page size, hence its placement. */
	for (unsigned i = 0; i < n; i++) {
		rc = backing_open(&gm->regions[i], e);
		if (rc)
			goto fail;
		placed[i] = cfg[i];
		placed[i].page_size = gm->regions[i].page_size;
		gm->regions[i].cfg.page_size = gm->regions[i].page_size;
	}
	rc = mem_layout_plan(placed, n, &lay, e);
	if (rc)
		goto fail;
	fill_slots(gm, &lay);

	for (unsigned i = 0; i < n; i++) {
		rc = backing_map(&gm->regions[i], e);
		if (rc)
			goto fail;
	}
	place_slots(gm, &lay);

	for (unsigned i = 0; i < n; i++) {
		struct mem_region *r = &gm->regions[i];
		uint64_t t0 = now_ns();

		if (!r->cfg.prefault)
			continue;
		rc = prefault_range(r->hva, r->size, r->page_size, r->cfg.prefault_threads,
				    r->cfg.id, &r->prefault_threads_used);
		r->prefault_ns = now_ns() - t0;
		if (rc) {
			char sz[32];
			const char *why = "the host is out of memory for it";

			if (r->cfg.backing == MEM_BACKING_FILE)
				why = "the file could not be populated (filesystem full, or the "
				      "file "
				      "truncated meanwhile?)";
			else if (r->cfg.backing == MEM_BACKING_HUGETLB)
				why = "hugetlb pages went missing after the reservation";
			err_set(e, ERR_RUNTIME, rc, "%s: prefaulting %s of \"%s\" failed (%s): %s",
				r->cfg.origin, fmt_bytes(sz, sizeof(sz), r->size), r->cfg.id,
				strerror(-rc), why);
			goto fail;
		}
	}
	return 0;
fail:
	mem_unmap(gm);
	return rc;
}

/*
 * After a measurement of @r: start its baseline, or count a drift when huge
 * bytes shrank. Pages reclaim gave back (memory/reclaim.c) left on purpose, so
 * the comparison is of huge + reclaimed bytes; reclaimed bytes are counted no
 * higher than the bytes found absent, so a reclaimed page the guest touched
 * again before mem_reclaim_refresh noticed it is not counted twice. huge_last
 * holds that sum; a deflate lowers it by the page it returns, which stays
 * absent until the guest touches it (mem_reclaim_deflate).
 */
static void track_drift(struct mem_region *r)
{
	uint64_t huge = r->host.bytes_2m + r->host.bytes_1g;
	uint64_t kept = huge + MIN(r->reclaimed_bytes, r->host.bytes_absent);

	if (!r->host.known)
		return;
	if (!r->baseline) {
		r->baseline = true;
		r->huge_at_start = huge;
	} else if (kept < r->huge_last) {
		r->drift_events++;
		log_warn("%s (\"%s\"): coverage drift: %llu MiB mapped huge%s, down from %llu MiB",
			 r->cfg.origin, r->cfg.id, (unsigned long long)(kept >> 20),
			 kept > huge ? " or reclaimed" : "",
			 (unsigned long long)(r->huge_last >> 20));
	}
	r->huge_last = kept;
}

unsigned mem_drift_events(const struct guest_mem *gm)
{
	unsigned n = 0;

	for (unsigned i = 0; i < gm->nregions; i++)
		n += gm->regions[i].drift_events;
	return n;
}

int mem_measure(struct guest_mem *gm)
{
	for (unsigned i = 0; i < gm->nregions; i++) {
		struct mem_region *r = &gm->regions[i];
		uint64_t t0 = now_ns();
		int rc = measure_region(r, &r->host);

		r->measure_ns = now_ns() - t0;
		if (rc)
			return rc;
		track_drift(r);
	}
	return 0;
}

/* One MADV_COLLAPSE pass over a THP region that fell short, then measure again. */
static int repair(struct mem_region *r)
{
	uint64_t before = r->host.bytes_2m + r->host.bytes_1g;
	int rc;

	r->collapse_tried = true;
	if (madvise(r->hva, r->size, MADV_COLLAPSE) && errno != EAGAIN && errno != ENOMEM)
		log_debug("%s: MADV_COLLAPSE: %s", r->cfg.origin, strerror(errno));
	rc = measure_region(r, &r->host);
	if (rc)
		return rc;
	r->collapse_gained = (int64_t)(r->host.bytes_2m + r->host.bytes_1g) - (int64_t)before;
	return 0;
}

int mem_verify(struct guest_mem *gm, struct vmm_err *e)
{
	unsigned failed = 0;
	int rc;

	for (unsigned i = 0; i < gm->nregions; i++) {
		struct mem_region *r = &gm->regions[i];
		uint64_t t0 = now_ns();

		rc = measure_region(r, &r->host);
		if (!rc && r->host.known && mem_cov_ratio(r) + 1e-9 < r->cfg.min_coverage &&
		    policy_may_collapse(r))
			rc = repair(r);
		r->measure_ns = now_ns() - t0;
		if (rc)
			return err_set(e, ERR_RUNTIME, rc, "%s: measuring host page sizes: %s",
				       r->cfg.origin, strerror(-rc));
		track_drift(r);
		policy_judge(r, gm->slots);
		switch (r->verdict) {
		case MEM_VERDICT_FAIL:
			if (!failed++)
				err_set(e, ERR_POLICY, -EPERM,
					"%s (\"%s\", %s, policy require): %s", r->cfg.origin,
					r->cfg.id, mem_backing_name(r->cfg.backing),
					r->verdict_msg);
			else
				err_append(e, "also %s (\"%s\")", r->cfg.origin, r->cfg.id);
			break;
		case MEM_VERDICT_WARN:
			log_warn("%s (\"%s\", policy prefer): %s", r->cfg.origin, r->cfg.id,
				 r->verdict_msg);
			break;
		case MEM_VERDICT_DEFERRED:
			log_warn("%s (\"%s\"): not verified before boot: %s", r->cfg.origin,
				 r->cfg.id, r->verdict_msg);
			break;
		case MEM_VERDICT_PASS:
		case MEM_VERDICT_OFF:
			break;
		}
	}
	return failed ? -EPERM : 0;
}

void *mem_gpa_to_hva(const struct guest_mem *gm, uint64_t gpa, uint64_t len)
{
	for (unsigned i = 0; i < gm->nslots; i++) {
		const struct mem_slot *s = &gm->slots[i];

		if (gpa >= s->gpa && gpa - s->gpa < s->size) {
			if (len > s->size - (gpa - s->gpa))
				return NULL;
			return s->hva + (gpa - s->gpa);
		}
	}
	return NULL;
}

/* The slot holding @gpa, or NULL. */
static const struct mem_slot *slot_of(const struct guest_mem *gm, uint64_t gpa)
{
	for (unsigned i = 0; i < gm->nslots; i++)
		if (gpa >= gm->slots[i].gpa && gpa - gm->slots[i].gpa < gm->slots[i].size)
			return &gm->slots[i];
	return NULL;
}

uint64_t mem_gpa_piece(const struct guest_mem *gm, uint64_t gpa, uint64_t len, uint8_t **hva)
{
	const struct mem_slot *s = slot_of(gm, gpa);
	uint64_t left;

	if (!s)
		return 0;
	left = s->size - (gpa - s->gpa);
	*hva = s->hva + (gpa - s->gpa);
	return len < left ? len : left;
}

bool mem_is_ram(const struct guest_mem *gm, uint64_t gpa, uint64_t len)
{
	if (gpa + len < gpa)
		return false;
	while (len) {
		const struct mem_slot *s = slot_of(gm, gpa);
		uint64_t n;

		if (!s)
			return false;
		n = MIN(len, s->size - (gpa - s->gpa));
		gpa += n;
		len -= n;
	}
	return true;
}

/* Apply @fn to each slot-contained piece of [gpa, gpa+len) after checking it is all RAM. */
static int each_piece(const struct guest_mem *gm, uint64_t gpa, uint64_t len,
		      int (*fn)(uint8_t *hva, uint64_t n, uint64_t done, void *arg), void *arg)
{
	uint64_t done = 0;

	if (!mem_is_ram(gm, gpa, len))
		return -EFAULT;
	while (done < len) {
		const struct mem_slot *s = slot_of(gm, gpa + done);
		uint64_t n = MIN(len - done, s->size - (gpa + done - s->gpa));
		int r = fn(s->hva + (gpa + done - s->gpa), n, done, arg);

		if (r)
			return r;
		done += n;
	}
	return 0;
}

static int copy_piece(uint8_t *hva, uint64_t n, uint64_t done, void *arg)
{
	memcpy(hva, (const uint8_t *)arg + done, n);
	return 0;
}

static int zero_piece(uint8_t *hva, uint64_t n, uint64_t done, void *arg)
{
	(void)done;
	(void)arg;
	memset(hva, 0, n);
	return 0;
}

struct pread_arg {
	int fd;
	uint64_t off;
};

static int pread_piece(uint8_t *hva, uint64_t n, uint64_t done, void *arg)
{
	const struct pread_arg *a = arg;

	while (n) {
		ssize_t r = pread(a->fd, hva, n, (off_t)(a->off + done));

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -EIO; /* the file shrank */
		hva += r;
		done += (uint64_t)r;
		n -= (uint64_t)r;
	}
	return 0;
}

int mem_write(const struct guest_mem *gm, uint64_t gpa, const void *src, uint64_t len)
{
	return each_piece(gm, gpa, len, copy_piece, (void *)src);
}

int mem_zero(const struct guest_mem *gm, uint64_t gpa, uint64_t len)
{
	return each_piece(gm, gpa, len, zero_piece, NULL);
}

int mem_pread(const struct guest_mem *gm, uint64_t gpa, int fd, uint64_t off, uint64_t len)
{
	struct pread_arg a = {.fd = fd, .off = off};

	return each_piece(gm, gpa, len, pread_piece, &a);
}

int mem_test_split(struct guest_mem *gm, const char *id, uint64_t offset)
{
	for (unsigned i = 0; i < gm->nregions; i++) {
		struct mem_region *r = &gm->regions[i];

		if (strcmp(r->cfg.id, id))
			continue;
		if (offset >= r->size)
			return -ERANGE;
		return madvise(r->hva + align_down(offset, SZ_4K), SZ_4K, MADV_DONTNEED) ? -errno
											 : 0;
	}
	return -ENOENT;
}
