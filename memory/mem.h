/*
 * Guest memory: every region placed on its backing so that host virtual
 * address and guest physical address are congruent modulo the page size,
 * prefaulted, then *measured* (the host page tables, not assumptions) and
 * judged by its policy. memory/ knows nothing about any hypervisor: the VMM
 * takes mem_slot entries and registers them.
 *
 *   mem_map()     layout + backings + mappings + prefault   (all or nothing)
 *   mem_verify()  measure, repair THP short falls once, apply policies
 *   mem_measure() re-measure on request (coverage drifts)
 *   mem_unmap()   release everything
 */
#ifndef HUGEVMM_MEMORY_MEM_H
#define HUGEVMM_MEMORY_MEM_H

#include <stdbool.h>
#include <stdint.h>

#include "memory/layout.h"
#include "memory/mem_cfg.h"

/* Host-side coverage of one region, in bytes by host mapping level. */
struct mem_cov {
	bool known;         /* false: the level cannot be seen here; see reason */
	const char *method; /* "pagemap_scan" or "smaps" */
	char reason[224];
	uint64_t bytes_4k, bytes_2m, bytes_1g, bytes_absent;
};

enum mem_verdict {
	MEM_VERDICT_PASS,     /* coverage >= min_coverage */
	MEM_VERDICT_WARN,     /* below, policy prefer */
	MEM_VERDICT_FAIL,     /* below, policy require */
	MEM_VERDICT_OFF,      /* policy off: reported, not judged */
	MEM_VERDICT_DEFERRED, /* cannot be judged before boot (unknown level, no prefault) */
};

/* What giving memory back does on a region (memory/reclaim.h). */
enum mem_reclaim_kind {
	MEM_RECLAIM_KEEP,     /* nothing is given back */
	MEM_RECLAIM_DONTNEED, /* private anonymous: MADV_DONTNEED on whole host pages */
	MEM_RECLAIM_PUNCH,    /* shared (memfd, hugetlb "return"): fallocate(PUNCH_HOLE) */
};

struct mem_slot {
	unsigned id;     /* memslot number, dense from 0 */
	unsigned region; /* index into guest_mem.regions */
	uint64_t gpa, size;
	uint8_t *hva;
	bool aligned; /* (hva ^ gpa) and gpa, size all aligned to the page size */
};

struct mem_region {
	struct mem_region_cfg cfg; /* finalized copy */
	uint64_t size, page_size;
	uint64_t gpa; /* base of the first slot */
	uint8_t *hva; /* the mapping: [hva, hva + size) */
	size_t map_len;
	int fd;      /* -1 for anonymous memory */
	bool on_dax; /* file backing on a DAX filesystem: mapped MAP_SYNC */
	unsigned first_slot, nslots;

	struct mem_cov host;
	enum mem_verdict verdict;
	char verdict_msg[640];
	bool collapse_tried;
	int64_t collapse_gained; /* bytes moved to huge by MADV_COLLAPSE */
	uint64_t prefault_ns, measure_ns;
	unsigned prefault_threads_used;

	/* Drift: huge bytes shrinking between measurements (THP split, migration...). */
	bool baseline;          /* a known measurement was taken */
	uint64_t huge_at_start; /* huge bytes at the first known measurement (the check at map) */
	uint64_t huge_last;     /* at the latest one */
	unsigned drift_events;  /* measurements that found fewer huge bytes than the one before */

	/*
	 * Registered (pinned) as fixed buffers with the disks' io_uring, for
	 * zero-copy I/O: set by the VM, which decides; memory/ only carries it.
	 */
	bool uring_registered;
	char uring_why[192]; /* why not, when not; "" before any drive asked */

	/*
	 * Reclaim (memory/reclaim.c, when the VM has a balloon): the kind, a
	 * sentence saying what it does here, and the bytes now given back
	 * (whole host pages discarded, not yet back) and in the balloon but not
	 * given back (their host page is not whole, or the region keeps).
	 */
	enum mem_reclaim_kind reclaim;
	char reclaim_why[160];
	uint64_t reclaimed_bytes, balloon_bytes;
};

/* Drift events of every region, summed. */
struct guest_mem;
unsigned mem_drift_events(const struct guest_mem *gm);

struct guest_mem {
	struct mem_region regions[MEM_MAX_REGIONS];
	unsigned nregions;
	struct mem_slot slots[MEM_MAX_SLOTS];
	unsigned nslots;
	uint64_t top; /* first GPA above RAM */
};

/*
 * Map regions @cfg[0..n) (finalized with mem_cfg_finalize_all). On error
 * nothing stays mapped or open and no file is left created. Errors:
 * ERR_CONFIG for what the config names wrongly (missing device or file),
 * ERR_POLICY for a host that cannot give what is asked (short hugetlb pool),
 * ERR_RUNTIME otherwise.
 */
int mem_map(struct guest_mem *gm, const struct mem_region_cfg *cfg, unsigned n,
	    struct vmm_err *e) must_check;

/*
 * Measure every region, repair a THP short fall once with MADV_COLLAPSE,
 * then apply each policy. Returns -EPERM with an ERR_POLICY message naming
 * the likely causes when a "require" region falls short; warns for "prefer".
 */
int mem_verify(struct guest_mem *gm, struct vmm_err *e) must_check;

/* Re-measure every region's host coverage (does not re-judge policies). */
int mem_measure(struct guest_mem *gm) must_check;

/*
 * Testing only: drop the 4K page at byte @offset of region @id
 * (MADV_DONTNEED), which splits the huge page around it, as memory pressure
 * or migration would. The guest reads zeros there afterwards.
 */
int mem_test_split(struct guest_mem *gm, const char *id, uint64_t offset) must_check;

/* Unmap and close everything; safe on a zeroed or partly mapped guest_mem. */
void mem_unmap(struct guest_mem *gm);

/* Coverage ratio of a measured region: (2M + 1G bytes) / size. */
double mem_cov_ratio(const struct mem_region *r);

/* Whole-guest host coverage over regions whose level is known; -1 when none is. */
double mem_host_coverage(const struct guest_mem *gm);

/* Host address of [gpa, gpa+len) when it lies inside one slot, else NULL. */
void *mem_gpa_to_hva(const struct guest_mem *gm, uint64_t gpa, uint64_t len);

/*
 * The start of [gpa, gpa+len) that lies in one slot: its host address in
 * *@hva and its length (at most @len), or 0 when @gpa is not guest RAM.
 */
uint64_t mem_gpa_piece(const struct guest_mem *gm, uint64_t gpa, uint64_t len, uint8_t **hva);

/* True when every byte of [gpa, gpa+len) is guest RAM (it may span slots). */
bool mem_is_ram(const struct guest_mem *gm, uint64_t gpa, uint64_t len);

/* Copy into guest RAM across slots; -EFAULT (nothing written) when not all is RAM. */
int mem_write(const struct guest_mem *gm, uint64_t gpa, const void *src, uint64_t len) must_check;

/* Zero guest RAM across slots; -EFAULT (nothing written) when not all is RAM. */
int mem_zero(const struct guest_mem *gm, uint64_t gpa, uint64_t len) must_check;

/* Read @len bytes of @fd at @off into guest RAM at @gpa (across slots). */
int mem_pread(const struct guest_mem *gm, uint64_t gpa, int fd, uint64_t off,
	      uint64_t len) must_check;

const char *mem_verdict_name(enum mem_verdict v);

#endif
