#include "memory/mem_cfg.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"

static const char *const backing_names[MEM_BACKING_COUNT] = {
	[MEM_BACKING_ANON] = "anon",   [MEM_BACKING_THP] = "thp",
	[MEM_BACKING_MEMFD] = "memfd", [MEM_BACKING_HUGETLB] = "hugetlb",
	[MEM_BACKING_FILE] = "file",   [MEM_BACKING_DEVDAX] = "devdax",
};

static const char *const policy_names[MEM_POLICY_COUNT] = {
	[MEM_POLICY_OFF] = "off",
	[MEM_POLICY_PREFER] = "prefer",
	[MEM_POLICY_REQUIRE] = "require",
};

const char *mem_backing_name(enum mem_backing b)
{
	return b < MEM_BACKING_COUNT ? backing_names[b] : "?";
}

const char *mem_policy_name(enum mem_policy p)
{
	return p < MEM_POLICY_COUNT ? policy_names[p] : "?";
}

int mem_backing_parse(const char *s, enum mem_backing *out)
{
	for (unsigned i = 0; i < MEM_BACKING_COUNT; i++) {
		if (!strcmp(s, backing_names[i])) {
			*out = (enum mem_backing)i;
			return 0;
		}
	}
	return -EINVAL;
}

int mem_policy_parse(const char *s, enum mem_policy *out)
{
	for (unsigned i = 0; i < MEM_POLICY_COUNT; i++) {
		if (!strcmp(s, policy_names[i])) {
			*out = (enum mem_policy)i;
			return 0;
		}
	}
	return -EINVAL;
}

static const char *const reclaim_names[] = {
	[MEM_RECLAIM_CFG_DEFAULT] = "default",
	[MEM_RECLAIM_CFG_KEEP] = "keep",
	[MEM_RECLAIM_CFG_RETURN] = "return",
};

const char *mem_reclaim_cfg_name(enum mem_reclaim_cfg r)
{
	return (unsigned)r < ARRAY_SIZE(reclaim_names) ? reclaim_names[r] : "?";
}

int mem_reclaim_cfg_parse(const char *s, enum mem_reclaim_cfg *out)
{
	/* "default" is what an absent field means, not a value to write. */
	if (!strcmp(s, "keep"))
		*out = MEM_RECLAIM_CFG_KEEP;
	else if (!strcmp(s, "return"))
		*out = MEM_RECLAIM_CFG_RETURN;
	else
		return -EINVAL;
	return 0;
}

uint64_t mem_page_size_parse(const char *s)
{
	if (!strcmp(s, "4K"))
		return SZ_4K;
	if (!strcmp(s, "2M"))
		return SZ_2M;
	if (!strcmp(s, "1G"))
		return SZ_1G;
	return 0;
}

bool mem_id_valid(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n > MEM_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = id[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' || ch == '.'))
			return false;
	}
	return true;
}

void mem_cfg_init(struct mem_region_cfg *c, enum mem_backing backing, const char *id,
		  const char *origin)
{
	memset(c, 0, sizeof(*c));
	c->backing = backing;
	c->prefault = true;
	c->min_coverage = 1.0;
	snprintf(c->id, sizeof(c->id), "%s", id);
	snprintf(c->origin, sizeof(c->origin), "%s", origin);
}

const char *mem_cfg_field(const struct mem_region_cfg *c, const char *field, char *buf,
			  unsigned len)
{
	if (c->fc_machine_config) {
		const char *fc = "machine-config";

		if (!strcmp(field, "size_mib"))
			fc = "machine-config.mem_size_mib";
		else if (!strcmp(field, "backing") || !strcmp(field, "page_size"))
			fc = "machine-config.huge_pages";
		snprintf(buf, len, "%s", fc);
	} else {
		snprintf(buf, len, "%s.%s", c->origin, field);
	}
	return buf;
}

/* Which page sizes each backing can give (bit per size) and its default. */
struct backing_rule {
	bool k4, m2, g1;
	uint64_t def;
	bool round_size; /* THP-like: sizes are rounded up, not refused */
	bool takes_path, needs_path, needs_device;
};

static const struct backing_rule rules[MEM_BACKING_COUNT] = {
	[MEM_BACKING_ANON] = {.k4 = true, .def = SZ_4K, .round_size = true},
	[MEM_BACKING_THP] = {.m2 = true, .def = SZ_2M, .round_size = true},
	[MEM_BACKING_MEMFD] = {.k4 = true, .m2 = true, .def = SZ_2M, .round_size = true},
	[MEM_BACKING_HUGETLB] = {.m2 = true, .g1 = true, .def = SZ_2M, .takes_path = true},
	[MEM_BACKING_FILE] = {.k4 = true,
			      .m2 = true,
			      .def = SZ_2M,
			      .round_size = true,
			      .takes_path = true,
			      .needs_path = true},
	[MEM_BACKING_DEVDAX] = {.k4 = true, .m2 = true, .g1 = true, .def = 0, .needs_device = true},
};

static const char *allowed_sizes(const struct backing_rule *r)
{
	if (r->k4 && r->m2 && r->g1)
		return "\"4K\", \"2M\" or \"1G\"";
	if (r->k4 && r->m2)
		return "\"4K\" or \"2M\"";
	if (r->m2 && r->g1)
		return "\"2M\" or \"1G\"";
	if (r->m2)
		return "\"2M\"";
	return "\"4K\"";
}

static bool size_allowed(const struct backing_rule *r, uint64_t ps)
{
	return (ps == SZ_4K && r->k4) || (ps == SZ_2M && r->m2) || (ps == SZ_1G && r->g1);
}

/*
 * "reclaim": memory the guest hands back may be freed where the backing can
 * take it again on the next touch (anon, thp, memfd: "return" by default).
 * hugetlb keeps by default: a page given back to the pool may be gone when
 * the guest wants it. A file's or a DAX device's blocks are never given back.
 */
static int finalize_reclaim(struct mem_region_cfg *c, struct vmm_err *e)
{
	bool keeps = c->backing == MEM_BACKING_HUGETLB || c->backing == MEM_BACKING_FILE ||
		     c->backing == MEM_BACKING_DEVDAX;
	char f[96];

	switch (c->reclaim) {
	case MEM_RECLAIM_CFG_DEFAULT:
		c->reclaim = keeps ? MEM_RECLAIM_CFG_KEEP : MEM_RECLAIM_CFG_RETURN;
		return 0;
	case MEM_RECLAIM_CFG_KEEP:
		return 0;
	case MEM_RECLAIM_CFG_RETURN:
		if (c->backing == MEM_BACKING_FILE)
			return err_set(e, ERR_CONFIG, -EINVAL,
				       "%s: \"return\" is not available with backing \"file\": the "
				       "file keeps its blocks (persistent memory is never given "
				       "back); set \"keep\" or leave \"reclaim\" out",
				       mem_cfg_field(c, "reclaim", f, sizeof(f)));
		if (c->backing == MEM_BACKING_DEVDAX)
			return err_set(e, ERR_CONFIG, -EINVAL,
				       "%s: \"return\" is not available with backing \"devdax\": "
				       "device memory is never given back; set \"keep\" or leave "
				       "\"reclaim\" out",
				       mem_cfg_field(c, "reclaim", f, sizeof(f)));
		return 0;
	}
	return err_set(e, ERR_CONFIG, -EINVAL, "%s: unknown value %d; use \"keep\" or \"return\"",
		       mem_cfg_field(c, "reclaim", f, sizeof(f)), (int)c->reclaim);
}

int mem_cfg_finalize(struct mem_region_cfg *c, struct vmm_err *e)
{
	const struct backing_rule *r;
	const char *bname;
	char f[96];
	int rc;

	if (c->backing >= MEM_BACKING_COUNT)
		return err_set(e, ERR_CONFIG, -EINVAL, "%s: unknown backing",
			       mem_cfg_field(c, "backing", f, sizeof(f)));
	r = &rules[c->backing];
	bname = mem_backing_name(c->backing);

	if (!mem_id_valid(c->id))
		return err_set(e, ERR_CONFIG, -EINVAL,
			       "%s: \"%s\" is not a valid region id; use 1 to %d characters of "
			       "letters, digits, '_', '-' or '.'",
			       mem_cfg_field(c, "id", f, sizeof(f)), c->id, MEM_ID_MAX);

	if (c->size == 0 || c->size > MEM_MAX_SIZE || !is_aligned(c->size, SZ_1M))
		return err_set(
			e, ERR_CONFIG, -EINVAL,
			"%s: %llu is out of range; give a whole number of MiB from 1 to %llu",
			mem_cfg_field(c, "size_mib", f, sizeof(f)),
			(unsigned long long)(c->size / SZ_1M),
			(unsigned long long)(MEM_MAX_SIZE / SZ_1M));

	if (c->page_size == 0)
		c->page_size = r->def;
	if (c->page_size && !size_allowed(r, c->page_size)) {
		const char *hint = "";

		if (c->backing == MEM_BACKING_ANON)
			hint = " (anon is the 4K baseline; use backing \"thp\" for 2M pages)";
		else if (c->backing == MEM_BACKING_THP)
			hint = " (transparent huge pages are PMD-sized on x86-64; use \"hugetlb\" "
			       "or \"devdax\" for 1G)";
		return err_set(e, ERR_CONFIG, -EINVAL,
			       "%s: \"%s\" is not available with backing \"%s\"; use %s%s",
			       mem_cfg_field(c, "page_size", f, sizeof(f)),
			       page_size_name(c->page_size), bname, allowed_sizes(r), hint);
	}

	if (c->page_size && !is_aligned(c->size, c->page_size)) {
		uint64_t up = align_up(c->size, c->page_size);

		if (!r->round_size)
			return err_set(
				e, ERR_CONFIG, -EINVAL,
				"%s: %llu is not a multiple of the %s page size; use %llu or %llu",
				mem_cfg_field(c, "size_mib", f, sizeof(f)),
				(unsigned long long)(c->size / SZ_1M), page_size_name(c->page_size),
				(unsigned long long)(align_down(c->size, c->page_size) / SZ_1M),
				(unsigned long long)(up / SZ_1M));
		log_warn("%s: %llu rounded up to %llu, a multiple of the %s page size",
			 mem_cfg_field(c, "size_mib", f, sizeof(f)),
			 (unsigned long long)(c->size / SZ_1M), (unsigned long long)(up / SZ_1M),
			 page_size_name(c->page_size));
		c->size = up;
	}

	if (r->needs_path && !c->path[0])
		return err_set(e, ERR_CONFIG, -EINVAL,
			       "%s: missing; backing \"%s\" needs the path of its file",
			       mem_cfg_field(c, "path", f, sizeof(f)), bname);
	if (!r->takes_path && c->path[0])
		return err_set(e, ERR_CONFIG, -EINVAL,
			       "%s: \"%s\" is not used by backing \"%s\"; only \"hugetlb\" and "
			       "\"file\" take a path",
			       mem_cfg_field(c, "path", f, sizeof(f)), c->path, bname);
	if (c->require_dax && c->backing != MEM_BACKING_FILE)
		return err_set(e, ERR_CONFIG, -EINVAL,
			       "%s: only backing \"file\" takes \"dax\"; devdax devices are DAX "
			       "by nature",
			       mem_cfg_field(c, "dax", f, sizeof(f)));
	if (r->needs_device && !c->device[0])
		return err_set(e, ERR_CONFIG, -EINVAL,
			       "%s: missing; backing \"devdax\" needs a device such as \"dax0.0\"",
			       mem_cfg_field(c, "device", f, sizeof(f)));
	if (!r->needs_device && c->device[0])
		return err_set(e, ERR_CONFIG, -EINVAL,
			       "%s: \"%s\" is only used by backing \"devdax\"",
			       mem_cfg_field(c, "device", f, sizeof(f)), c->device);

	if (c->host_offset) {
		if (!is_aligned(c->host_offset, SZ_4K) ||
		    (c->page_size && c->host_offset >= c->page_size))
			return err_set(e, ERR_CONFIG, -EINVAL,
				       "%s: %llu must be a multiple of 4 below the page size (%s)",
				       mem_cfg_field(c, "host_offset_kib", f, sizeof(f)),
				       (unsigned long long)(c->host_offset >> 10),
				       page_size_name(c->page_size));
		if (c->backing == MEM_BACKING_HUGETLB || c->backing == MEM_BACKING_DEVDAX)
			return err_set(
				e, ERR_CONFIG, -EINVAL,
				"%s: backing \"%s\" can only be mapped at page-size-aligned "
				"addresses; use \"thp\", \"memfd\" or \"file\" to demonstrate "
				"misalignment",
				mem_cfg_field(c, "host_offset_kib", f, sizeof(f)), bname);
	}

	if (c->min_coverage < 0.0 || c->min_coverage > 1.0 || c->min_coverage != c->min_coverage)
		return err_set(e, ERR_CONFIG, -EINVAL, "%s: %g is out of range; use 0.0 to 1.0",
			       mem_cfg_field(c, "min_coverage", f, sizeof(f)), c->min_coverage);

	if (c->prefault_threads > 64)
		return err_set(e, ERR_CONFIG, -EINVAL, "%s: %u is out of range; use 0 (auto) to 64",
			       mem_cfg_field(c, "prefault_threads", f, sizeof(f)),
			       c->prefault_threads);

	rc = finalize_reclaim(c, e);
	if (rc)
		return rc;

	if (!c->policy_set) {
		if (c->backing == MEM_BACKING_ANON || c->page_size == SZ_4K)
			c->policy = MEM_POLICY_OFF;
		else if (!c->prefault)
			c->policy = MEM_POLICY_PREFER;
		else if (c->backing == MEM_BACKING_THP || c->backing == MEM_BACKING_HUGETLB ||
			 c->backing == MEM_BACKING_DEVDAX)
			c->policy = MEM_POLICY_REQUIRE;
		else
			c->policy = MEM_POLICY_PREFER;
	} else if (c->policy != MEM_POLICY_OFF && c->page_size == SZ_4K) {
		return err_set(e, ERR_CONFIG, -EINVAL,
			       "%s: \"%s\" needs a huge page size; a 4K region has no huge-page "
			       "coverage to verify: set policy \"off\" or page_size \"2M\"",
			       mem_cfg_field(c, "policy", f, sizeof(f)),
			       mem_policy_name(c->policy));
	} else if (c->policy == MEM_POLICY_REQUIRE && !c->prefault) {
		return err_set(
			e, ERR_CONFIG, -EINVAL,
			"%s: \"require\" needs prefault: with prefault false nothing is mapped "
			"before boot to verify; set prefault true or policy \"prefer\"",
			mem_cfg_field(c, "policy", f, sizeof(f)));
	}
	return 0;
}

int mem_cfg_finalize_all(struct mem_region_cfg *c, unsigned n, struct vmm_err *e)
{
	char f[96];

	if (n == 0)
		return err_set(e, ERR_CONFIG, -EINVAL,
			       "memory.regions: empty; give at least one region");
	if (n > MEM_MAX_REGIONS)
		return err_set(e, ERR_CONFIG, -E2BIG, "memory.regions: %u regions; at most %d", n,
			       MEM_MAX_REGIONS);
	for (unsigned i = 0; i < n; i++) {
		int r = mem_cfg_finalize(&c[i], e);

		if (r)
			return r;
		for (unsigned j = 0; j < i; j++)
			if (!strcmp(c[i].id, c[j].id))
				return err_set(
					e, ERR_CONFIG, -EEXIST,
					"%s: \"%s\" is already used by %s; ids must be unique",
					mem_cfg_field(&c[i], "id", f, sizeof(f)), c[i].id,
					c[j].origin);
	}
	return 0;
}
