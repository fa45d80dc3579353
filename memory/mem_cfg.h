/*
 * Guest RAM configuration: plain data, filled by a config parser (api/) or a
 * library user, validated and completed by mem_cfg_finalize().
 */
#ifndef HUGEVMM_MEMORY_MEM_CFG_H
#define HUGEVMM_MEMORY_MEM_CFG_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "common/util.h"

#define MEM_ID_MAX      32
#define MEM_MAX_REGIONS 16
#define MEM_MAX_SIZE    (UINT64_C(1) << 42) /* 4 TiB per region */

enum mem_backing {
	MEM_BACKING_ANON,    /* private anonymous, 4K pages (THP explicitly off) */
	MEM_BACKING_THP,     /* private anonymous + MADV_HUGEPAGE */
	MEM_BACKING_MEMFD,   /* shmem memfd, THP where shmem_enabled allows */
	MEM_BACKING_HUGETLB, /* memfd MFD_HUGETLB or a file on hugetlbfs */
	MEM_BACKING_FILE,    /* regular or fsdax file, MAP_SHARED */
	MEM_BACKING_DEVDAX,  /* /dev/daxX.Y in devdax mode */
	MEM_BACKING_COUNT
};

enum mem_policy {
	MEM_POLICY_OFF,     /* measure and report only */
	MEM_POLICY_PREFER,  /* warn below min_coverage */
	MEM_POLICY_REQUIRE, /* refuse to start below min_coverage */
	MEM_POLICY_COUNT
};

/* "reclaim": may memory the guest gives back (balloon, free page reporting) be freed? */
enum mem_reclaim_cfg {
	MEM_RECLAIM_CFG_DEFAULT, /* not given: "return" for anon/thp/memfd, "keep" otherwise */
	MEM_RECLAIM_CFG_KEEP,    /* "keep": the region keeps every page */
	MEM_RECLAIM_CFG_RETURN,  /* "return": whole host pages go back (refused on file, devdax) */
};

struct mem_region_cfg {
	char id[MEM_ID_MAX + 1];
	/* JSON path of this region for messages ("memory.regions[1]"). When the
	 * region comes from Firecracker's machine-config, fc_machine_config is
	 * set and fields are named after machine-config's keys instead. */
	char origin[48];
	bool fc_machine_config;

	enum mem_backing backing;
	uint64_t size;      /* bytes */
	uint64_t page_size; /* bytes; 0 until finalized (devdax: the device's align) */
	bool prefault;
	enum mem_policy policy;
	bool policy_set;
	double min_coverage;
	bool min_coverage_set;
	unsigned prefault_threads; /* 0 = automatic */
	uint64_t host_offset;      /* testing: shift the host mapping off congruence */
	char path[PATH_MAX];       /* hugetlb: hugetlbfs dir or file; file: the file */
	bool require_dax;          /* file: refuse a path that is not on a DAX filesystem */
	char device[64];           /* devdax: "dax0.0" or "/dev/dax0.0" */
	enum mem_reclaim_cfg reclaim; /* finalized: never DEFAULT */
};

/* Defaults for a region of @backing with @id; the caller then sets fields. */
void mem_cfg_init(struct mem_region_cfg *c, enum mem_backing backing, const char *id,
		  const char *origin);

/*
 * Validate one region and fill in defaults: page size, policy, min_coverage;
 * sizes of THP-like backings are rounded up to the page size (with a warning),
 * of hugetlb and DAX must be multiples (an ERR_CONFIG otherwise).
 */
int mem_cfg_finalize(struct mem_region_cfg *c, struct vmm_err *e) must_check;

/* Check a set of regions together (unique ids, count). Calls mem_cfg_finalize. */
int mem_cfg_finalize_all(struct mem_region_cfg *c, unsigned n, struct vmm_err *e) must_check;

/* The JSON path of @field ("size_mib", "page_size", ...) of region @c, into @buf. */
const char *mem_cfg_field(const struct mem_region_cfg *c, const char *field, char *buf,
			  unsigned len);

/* Names used in config and reports: "thp", "require", ... and back. */
const char *mem_backing_name(enum mem_backing b);
const char *mem_policy_name(enum mem_policy p);
int mem_backing_parse(const char *s, enum mem_backing *out);
int mem_policy_parse(const char *s, enum mem_policy *out);
const char *mem_reclaim_cfg_name(enum mem_reclaim_cfg r); /* "keep", "return" ("default") */
int mem_reclaim_cfg_parse(const char *s, enum mem_reclaim_cfg *out); /* 0 or -EINVAL */
/* "4K" | "2M" | "1G" -> bytes; 0 on anything else. */
uint64_t mem_page_size_parse(const char *s);
/* True when @id is 1..MEM_ID_MAX chars of [A-Za-z0-9_.-]. */
bool mem_id_valid(const char *id);

#endif
