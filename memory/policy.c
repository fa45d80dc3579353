#include "memory/policy.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/sysfs.h"
#include "memory/host.h"

struct text {
	char *buf;
	size_t len, used;
};

static void add(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void add(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (t->used + 1 >= t->len)
		return;
	va_start(ap, fmt);
	n = vsnprintf(t->buf + t->used, t->len - t->used, fmt, ap);
	va_end(ap);
	if (n > 0)
		t->used = MIN(t->used + (size_t)n, t->len - 1);
}

static bool thp_never(const char *v)
{
	return !strcmp(v, "never") || !strcmp(v, "deny");
}

bool policy_may_collapse(const struct mem_region *r)
{
	char en[16] = "";

	if (r->cfg.backing != MEM_BACKING_THP && r->cfg.backing != MEM_BACKING_MEMFD)
		return false;
	if (r->page_size != SZ_2M || !r->cfg.prefault || r->cfg.policy == MEM_POLICY_OFF)
		return false;
	/* MADV_COLLAPSE ignores the sysfs setting; an administrator's "never" is respected. */
	sysfs_read_choice(HOST_THP_DIR "/enabled", en, sizeof(en));
	if (!en[0] || thp_never(en))
		return false;
	if (r->cfg.backing == MEM_BACKING_MEMFD) {
		sysfs_read_choice(HOST_THP_DIR "/shmem_enabled", en, sizeof(en));
		if (thp_never(en))
			return false;
	}
	return true;
}

/* Likely causes of a short fall, with remedies, appended to @t. */
static void causes(const struct mem_region *r, struct text *t)
{
	char en[16] = "", df[24] = "", sh[16] = "", shp[16] = "";

	sysfs_read_choice(HOST_THP_DIR "/enabled", en, sizeof(en));
	sysfs_read_choice(HOST_THP_DIR "/defrag", df, sizeof(df));
	sysfs_read_choice(HOST_THP_DIR "/shmem_enabled", sh, sizeof(sh));
	sysfs_read_choice(HOST_THP_DIR "/hugepages-2048kB/shmem_enabled", shp, sizeof(shp));

	switch (r->cfg.backing) {
	case MEM_BACKING_THP:
		if (!en[0])
			add(t,
			    "; this kernel has no transparent huge pages: use backing \"hugetlb\"");
		else if (thp_never(en))
			add(t, "; THP is \"never\" in " HOST_THP_DIR
			       "/enabled: echo madvise > " HOST_THP_DIR "/enabled");
		else if (!strcmp(df, "never"))
			add(t,
			    "; THP defrag is \"never\", so the kernel will not compact memory for "
			    "2M pages: echo madvise > " HOST_THP_DIR "/defrag");
		else
			add(t,
			    "; the kernel found too few free 2M blocks (memory low or "
			    "fragmented)%s: "
			    "free memory, echo 1 > /proc/sys/vm/compact_memory, or use backing "
			    "\"hugetlb\" with a reserved pool",
			    r->collapse_tried ? " and MADV_COLLAPSE could not make up the rest"
					      : "");
		break;
	case MEM_BACKING_MEMFD:
		if (thp_never(sh) && (!shp[0] || !strcmp(shp, "inherit")))
			add(t,
			    "; shmem THP is \"%s\" in " HOST_THP_DIR
			    "/shmem_enabled: echo advise > " HOST_THP_DIR "/shmem_enabled",
			    sh);
		else if (thp_never(shp))
			add(t,
			    "; 2M shmem THP is \"%s\" in " HOST_THP_DIR
			    "/hugepages-2048kB/shmem_enabled: echo inherit > that file",
			    shp);
		else if (!en[0])
			add(t,
			    "; this kernel has no transparent huge pages: use backing \"hugetlb\"");
		else
			add(t, "; the kernel found too few free 2M blocks for shmem (memory low or "
			       "fragmented): free memory or use backing \"hugetlb\"");
		break;
	case MEM_BACKING_FILE:
		if (!r->on_dax)
			add(t,
			    "; \"%s\" is not on a DAX filesystem (statx shows no DAX attribute), "
			    "so "
			    "the page cache maps it with small pages: put it on a filesystem "
			    "mounted with -o dax on pmem (an fsdax namespace)",
			    r->cfg.path);
		else
			add(t, "; the file's blocks are not 2M-aligned on the device: make the "
			       "filesystem with mkfs.ext4 -E stride=512,stripe_width=512 (or "
			       "mkfs.xfs -d su=2m,sw=1) and fallocate the file");
		break;
	case MEM_BACKING_HUGETLB:
		add(t, "; hugetlb pages went missing after reservation (pool shrunk?)");
		break;
	case MEM_BACKING_DEVDAX:
		add(t,
		    "; the device faults at its %s alignment; no PMD/PUD support in this kernel?",
		    page_size_name(r->page_size));
		break;
	case MEM_BACKING_ANON:
	case MEM_BACKING_COUNT:
		break;
	}
}

void policy_judge(struct mem_region *r, const struct mem_slot *slots)
{
	struct text t = {.buf = r->verdict_msg, .len = sizeof(r->verdict_msg)};
	double cov = mem_cov_ratio(r);
	bool below, misaligned = false;

	r->verdict_msg[0] = '\0';
	for (unsigned i = 0; i < r->nslots; i++) {
		const struct mem_slot *s = &slots[r->first_slot + i];

		if (s->aligned)
			continue;
		if (!misaligned)
			add(&t,
			    "slot %u is misaligned: host address %p and guest address 0x%llx "
			    "differ modulo %s (host_offset_kib=%llu), so KVM can map it only with "
			    "4K pages",
			    s->id, (void *)s->hva, (unsigned long long)s->gpa,
			    page_size_name(r->page_size),
			    (unsigned long long)(r->cfg.host_offset >> 10));
		misaligned = true;
	}

	if (r->cfg.policy == MEM_POLICY_OFF) {
		r->verdict = MEM_VERDICT_OFF;
		return;
	}
	if (!r->cfg.prefault) {
		r->verdict = MEM_VERDICT_DEFERRED;
		add(&t,
		    "%sprefault is off: nothing is mapped before boot; the coverage report "
		    "measures again on request",
		    t.used ? "; " : "");
		return;
	}
	if (!r->host.known) {
		r->verdict = MEM_VERDICT_DEFERRED;
		add(&t, "%shost mapping level unknown: %s", t.used ? "; " : "", r->host.reason);
		return;
	}

	below = cov + 1e-9 < r->cfg.min_coverage;
	if (!below && !misaligned) {
		r->verdict = MEM_VERDICT_PASS;
		return;
	}
	r->verdict = r->cfg.policy == MEM_POLICY_REQUIRE ? MEM_VERDICT_FAIL : MEM_VERDICT_WARN;
	if (below) {
		char tmp[sizeof(r->verdict_msg)];

		/* The coverage sentence leads; misalignment, if any, follows it. */
		snprintf(tmp, sizeof(tmp), "%s", r->verdict_msg);
		t.used = 0;
		r->verdict_msg[0] = '\0';
		add(&t, "%s coverage %.4f is below min_coverage %.4f", page_size_name(r->page_size),
		    cov, r->cfg.min_coverage);
		if (r->host.bytes_absent)
			add(&t, " (%llu MiB not present)",
			    (unsigned long long)(r->host.bytes_absent >> 20));
		if (tmp[0])
			add(&t, "; %s", tmp);
		/* A misaligned slot explains a short fall itself: its ends straddle 2M blocks. */
		if (!misaligned)
			causes(r, &t);
	}
}
