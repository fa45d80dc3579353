#include "memory/backing.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "common/compat.h"
#include "common/log.h"
#include "memory/dax.h"
#include "memory/host.h"

static const char *field(const struct mem_region *r, const char *name)
{
	static __thread char buf[96];

	return mem_cfg_field(&r->cfg, name, buf, sizeof(buf));
}

static bool file_is_dax(int fd)
{
	struct statx stx;

	if (statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &stx))
		return false;
	return (stx.stx_attributes_mask & STATX_ATTR_DAX) && (stx.stx_attributes & STATX_ATTR_DAX);
}

/* Split @path into its directory, into @dir. */
static void parent_dir(const char *path, char *dir, size_t len)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		snprintf(dir, len, ".");
	else if (slash == path)
		snprintf(dir, len, "/");
	else
		snprintf(dir, len, "%.*s", (int)(slash - path), path);
}

/*
 * Create an anonymous file in directory @dir: O_TMPFILE where the filesystem
 * has it, else a named file unlinked at once. Either way nothing is left
 * behind, even if hugevmm is killed.
 */
static int create_unlinked(const char *dir, const char *id)
{
	char tmpl[PATH_MAX];
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

	if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
		return fd >= 0 ? fd : -errno;
	if ((size_t)snprintf(tmpl, sizeof(tmpl), "%s/hugevmm-%s-XXXXXX", dir, id) >= sizeof(tmpl))
		return -ENAMETOOLONG;
	fd = mkostemp(tmpl, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	unlink(tmpl);
	return fd;
}

/* Create @path exclusively and unlink it: hugevmm owns its blocks only while running. */
static int create_path_unlinked(const char *path)
{
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	if (fd < 0)
		return -errno;
	unlink(path);
	return fd;
}

uint64_t backing_hugetlb_shortfall(uint64_t page_size, uint64_t need, uint64_t *nr_now)
{
	struct host_pool p;
	uint64_t pages = need / page_size, avail;

	if (host_pool_read(page_size, &p)) {
		*nr_now = 0;
		return pages;
	}
	*nr_now = p.nr;
	avail = p.free > p.resv ? p.free - p.resv : 0;
	return pages > avail ? pages - avail : 0;
}

static int hugetlb_short_err(struct mem_region *r, uint64_t short_pages, uint64_t nr_now,
			     struct vmm_err *e)
{
	char dir[128];

	host_pool_dir(r->page_size, dir, sizeof(dir));
	return err_set(e, ERR_POLICY, -ENOMEM,
		       "%s: hugetlb pool too small: region \"%s\" needs %llu free %s pages and "
		       "the pool is %llu short; raise it: echo %llu > %s/nr_hugepages",
		       r->cfg.origin, r->cfg.id, (unsigned long long)(r->size / r->page_size),
		       page_size_name(r->page_size), (unsigned long long)short_pages,
		       (unsigned long long)(nr_now + short_pages), dir);
}

static int open_hugetlb(struct mem_region *r, struct vmm_err *e)
{
	const char *path = r->cfg.path;
	char dir[PATH_MAX];
	struct statfs sfs;
	struct stat st;
	int fd;

	if (!path[0]) {
		unsigned flags = MFD_CLOEXEC | MFD_HUGETLB |
				 (r->page_size == SZ_1G ? MFD_HUGE_1GB : MFD_HUGE_2MB);
		char poold[128];

		fd = memfd_create(r->cfg.id, flags);
		if (fd < 0 && (errno == EINVAL || errno == ENOENT))
			return err_set(e, ERR_POLICY, -errno,
				       "%s: this kernel has no %s hugetlb pages (%s missing); use "
				       "page_size \"2M\" or boot with hugepagesz=%s",
				       field(r, "page_size"), page_size_name(r->page_size),
				       host_pool_dir(r->page_size, poold, sizeof(poold)),
				       page_size_name(r->page_size));
		if (fd < 0)
			return err_set(e, ERR_RUNTIME, -errno, "%s: memfd_create(MFD_HUGETLB): %s",
				       r->cfg.origin, strerror(errno));
		r->fd = fd;
		return 0;
	}

	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		snprintf(dir, sizeof(dir), "%s", path);
	else
		parent_dir(path, dir, sizeof(dir));
	if (statfs(dir, &sfs))
		return err_set(e, ERR_CONFIG, -errno,
			       "%s: \"%s\": %s; give a directory on a "
			       "hugetlbfs mount",
			       field(r, "path"), path, strerror(errno));
	if ((unsigned long)sfs.f_type != HUGETLBFS_MAGIC)
		return err_set(e, ERR_CONFIG, -EINVAL,
			       "%s: \"%s\" is not on hugetlbfs; mount one: mount -t hugetlbfs -o "
			       "pagesize=%s none %s",
			       field(r, "path"), path, page_size_name(r->page_size), dir);
	if ((uint64_t)sfs.f_bsize != r->page_size)
		return err_set(
			e, ERR_CONFIG, -EINVAL,
			"%s: \"%s\" is a hugetlbfs mount with %s pages but page_size is \"%s\"; "
			"set page_size \"%s\" or use a mount with pagesize=%s",
			field(r, "path"), path, page_size_name((uint64_t)sfs.f_bsize),
			page_size_name(r->page_size), page_size_name((uint64_t)sfs.f_bsize),
			page_size_name(r->page_size));

	if (!strcmp(dir, path))
		fd = create_unlinked(dir, r->cfg.id);
	else if (access(path, F_OK) == 0) {
		fd = open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK);
		if (fd < 0)
			fd = -errno;
	} else
		fd = create_path_unlinked(path);
	if (fd < 0)
		return err_set(e, ERR_CONFIG, fd, "%s: cannot open \"%s\": %s", field(r, "path"),
			       path, strerror(-fd));
	r->fd = fd;
	return 0;
}

static int open_file(struct mem_region *r, struct vmm_err *e)
{
	const char *path = r->cfg.path;
	char dir[PATH_MAX], have[32], need[32];
	struct stat st;
	int fd, rc;

	if (stat(path, &st) == 0) {
		if (!S_ISREG(st.st_mode))
			return err_set(e, ERR_CONFIG, -EINVAL, "%s: \"%s\" is not a regular file%s",
				       field(r, "path"), path,
				       S_ISCHR(st.st_mode)
					       ? "; for a /dev/daxX.Y device use backing "
						 "\"devdax\" with \"device\""
					       : "");
		fd = open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK);
		if (fd < 0)
			return err_set(e, ERR_CONFIG, -errno,
				       "%s: cannot open \"%s\" read-write: %s", field(r, "path"),
				       path, strerror(errno));
		if ((uint64_t)st.st_size < r->size) {
			close(fd);
			return err_set(
				e, ERR_CONFIG, -EINVAL,
				"%s: \"%s\" is %s but the region needs %s; grow it (fallocate "
				"-l %lluM %s) or lower size_mib",
				field(r, "path"), path,
				fmt_bytes(have, sizeof(have), (uint64_t)st.st_size),
				fmt_bytes(need, sizeof(need), r->size),
				(unsigned long long)(r->size >> 20), path);
		}
	} else {
		parent_dir(path, dir, sizeof(dir));
		fd = create_path_unlinked(path);
		if (fd < 0)
			return err_set(e, ERR_CONFIG, fd, "%s: cannot create \"%s\": %s",
				       field(r, "path"), path, strerror(-fd));
		/* Allocate now: a full filesystem fails here, not as SIGBUS in the guest. */
		rc = fallocate(fd, 0, 0, (off_t)r->size);
		if (rc && (errno == EOPNOTSUPP || errno == ENOSYS))
			rc = ftruncate(fd, (off_t)r->size);
		if (rc) {
			rc = -errno;
			close(fd);
			return err_set(e, ERR_CONFIG, rc, "%s: cannot allocate %s in \"%s\": %s",
				       field(r, "path"), fmt_bytes(need, sizeof(need), r->size),
				       dir, strerror(-rc));
		}
	}
	r->on_dax = file_is_dax(fd);
	if (r->cfg.require_dax && !r->on_dax) {
		close(fd);
		return err_set(
			e, ERR_CONFIG, -EINVAL,
			"%s: \"%s\" is not on a DAX filesystem (statx shows no DAX "
			"attribute), but \"dax\" is true; put it on a filesystem mounted with "
			"-o dax on an fsdax namespace, or drop \"dax\"",
			field(r, "path"), path);
	}
	r->fd = fd;
	return 0;
}

static int open_devdax(struct mem_region *r, struct vmm_err *e)
{
	struct dax_dev_info d;
	char path[96], have[32], need[32];
	int rc = dax_find(r->cfg.device, &d), fd;

	if (rc == -ENOENT)
		return err_set(e, ERR_CONFIG, rc,
			       "%s: \"%s\" does not exist; `daxctl list` shows the devices, `ndctl "
			       "create-namespace -m devdax -a 2M` makes one",
			       field(r, "device"), r->cfg.device);
	if (rc)
		return err_set(e, ERR_RUNTIME, rc, "%s: libdaxctl cannot list devices: %s",
			       field(r, "device"), dax_lib_error(rc));
	if (!d.enabled)
		return err_set(e, ERR_CONFIG, -ENODEV,
			       "%s: \"%s\" is disabled; enable it: daxctl enable-device %s",
			       field(r, "device"), d.name, d.name);
	if (!d.devdax)
		return err_set(e, ERR_CONFIG, -EINVAL,
			       "%s: \"%s\" is in system-ram mode; switch it: daxctl "
			       "reconfigure-device -m devdax -f %s",
			       field(r, "device"), d.name, d.name);
	if (r->cfg.page_size && r->cfg.page_size != d.align)
		return err_set(
			e, ERR_CONFIG, -EINVAL,
			"%s: \"%s\" but %s is aligned to %s; set page_size \"%s\" or recreate "
			"the namespace with ndctl create-namespace -m devdax -a %s",
			field(r, "page_size"), page_size_name(r->cfg.page_size), d.name,
			page_size_name(d.align), page_size_name(d.align),
			page_size_name(r->cfg.page_size));
	if (d.align != SZ_4K && d.align != SZ_2M && d.align != SZ_1G)
		return err_set(e, ERR_CONFIG, -EINVAL, "%s: %s has unsupported alignment %llu",
			       field(r, "device"), d.name, (unsigned long long)d.align);
	r->page_size = d.align;
	if (!is_aligned(r->size, d.align))
		return err_set(e, ERR_CONFIG, -EINVAL,
			       "%s: %llu is not a multiple of the %s alignment of %s",
			       field(r, "size_mib"), (unsigned long long)(r->size >> 20),
			       page_size_name(d.align), d.name);
	if (d.size < r->size)
		return err_set(e, ERR_CONFIG, -ENOSPC, "%s: %s is %s but the region needs %s",
			       field(r, "size_mib"), d.name, fmt_bytes(have, sizeof(have), d.size),
			       fmt_bytes(need, sizeof(need), r->size));
	snprintf(path, sizeof(path), "/dev/%s", d.name);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return err_set(e, ERR_CONFIG, -errno, "%s: cannot open %s: %s", field(r, "device"),
			       path, strerror(errno));
	r->fd = fd;
	return 0;
}

int backing_open(struct mem_region *r, struct vmm_err *e)
{
	int fd;

	r->fd = -1;
	switch (r->cfg.backing) {
	case MEM_BACKING_ANON:
	case MEM_BACKING_THP:
		return 0;
	case MEM_BACKING_MEMFD:
		fd = memfd_create(r->cfg.id, MFD_CLOEXEC);
		if (fd < 0)
			return err_set(e, ERR_RUNTIME, -errno, "%s: memfd_create: %s",
				       r->cfg.origin, strerror(errno));
		r->fd = fd;
		return 0;
	case MEM_BACKING_HUGETLB:
		return open_hugetlb(r, e);
	case MEM_BACKING_FILE:
		return open_file(r, e);
	case MEM_BACKING_DEVDAX:
		return open_devdax(r, e);
	case MEM_BACKING_COUNT:
		break;
	}
	return err_set(e, ERR_CONFIG, -EINVAL, "%s: unknown backing", r->cfg.origin);
}

/* mmap flags for the backing; MAP_FIXED is added by the caller. */
static int map_flags(const struct mem_region *r)
{
	switch (r->cfg.backing) {
	case MEM_BACKING_ANON:
	case MEM_BACKING_THP:
		/*
		 * A lazy region is not committed up front (as in Firecracker): a guest may be
		 * larger than what the host could back at once. A prefaulted one is, so a host
		 * that cannot hold it says so here rather than by the OOM killer later.
		 */
		return MAP_PRIVATE | MAP_ANONYMOUS | (r->cfg.prefault ? 0 : MAP_NORESERVE);
	case MEM_BACKING_FILE:
		/* MAP_SYNC: page faults on fsdax make metadata durable, as pmem users expect. */
		return r->on_dax ? MAP_SHARED_VALIDATE | MAP_SYNC : MAP_SHARED;
	default:
		return MAP_SHARED;
	}
}

static int size_file(struct mem_region *r, struct vmm_err *e)
{
	struct stat st;

	if (r->cfg.backing != MEM_BACKING_MEMFD && r->cfg.backing != MEM_BACKING_HUGETLB)
		return 0;
	if (fstat(r->fd, &st))
		return err_set(e, ERR_RUNTIME, -errno, "%s: fstat: %s", r->cfg.origin,
			       strerror(errno));
	if ((uint64_t)st.st_size >= r->size)
		return 0;
	if (ftruncate(r->fd, (off_t)r->size))
		return err_set(e, ERR_RUNTIME, -errno, "%s: ftruncate to %llu bytes: %s",
			       r->cfg.origin, (unsigned long long)r->size, strerror(errno));
	return 0;
}

int backing_map(struct mem_region *r, struct vmm_err *e)
{
	uint64_t align = MAX(r->page_size, SZ_4K);
	uint64_t want = (r->gpa + r->cfg.host_offset) & (align - 1);
	size_t resv_len = r->size + align + 2 * BACKING_GUARD;
	uintptr_t base, hva, end, resv_end;
	void *resv, *p;
	int rc;

	if (r->cfg.backing == MEM_BACKING_HUGETLB) {
		uint64_t nr_now,
			short_pages = backing_hugetlb_shortfall(r->page_size, r->size, &nr_now);
		if (short_pages)
			return hugetlb_short_err(r, short_pages, nr_now, e);
	}
	rc = size_file(r, e);
	if (rc)
		return rc;

	resv = mmap(NULL, resv_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (resv == MAP_FAILED)
		return err_set(e, ERR_RUNTIME, -errno,
			       "%s: cannot reserve %llu MiB of address space: %s", r->cfg.origin,
			       (unsigned long long)(resv_len >> 20), strerror(errno));
	base = (uintptr_t)resv + BACKING_GUARD;
	hva = base + ((want - base) & (align - 1));
	/*
	 * No MAP_NORESERVE: a hugetlb mapping reserves its pages here, so a pool
	 * that shrank since the check fails now rather than as SIGBUS later.
	 */
	p = mmap((void *)hva, r->size, PROT_READ | PROT_WRITE, map_flags(r) | MAP_FIXED, r->fd, 0);
	if (p == MAP_FAILED && r->on_dax && errno == EOPNOTSUPP) {
		log_warn("%s: MAP_SYNC refused on \"%s\"; mapping without it", r->cfg.origin,
			 r->cfg.path);
		r->on_dax = false;
		p = mmap((void *)hva, r->size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
			 r->fd, 0);
	}
	if (p == MAP_FAILED) {
		rc = -errno;
		munmap(resv, resv_len);
		if (rc == -ENOMEM && r->cfg.backing == MEM_BACKING_HUGETLB) {
			uint64_t nr_now, short_pages = backing_hugetlb_shortfall(r->page_size,
										 r->size, &nr_now);

			if (short_pages)
				return hugetlb_short_err(r, short_pages, nr_now, e);
			/* The pool has the pages, yet the reservation failed: not the pool's size.
			 */
			return err_set(
				e, ERR_POLICY, rc,
				"%s: the hugetlb reservation of %llu %s pages failed although "
				"the pool has them free: a hugetlb cgroup limit "
				"(hugetlb.%s.max) or another process reserving at the same time",
				r->cfg.origin, (unsigned long long)(r->size / r->page_size),
				page_size_name(r->page_size),
				r->page_size == SZ_1G ? "1GB" : "2MB");
		}
		if (rc == -ENOMEM && !(map_flags(r) & MAP_NORESERVE) &&
		    (r->cfg.backing == MEM_BACKING_ANON || r->cfg.backing == MEM_BACKING_THP))
			return err_set(e, ERR_RUNTIME, rc,
				       "%s: the host cannot commit %llu MiB of memory (%s): "
				       "use a smaller size_mib, or \"prefault\": false to map it "
				       "lazily without committing it (overcommit)",
				       r->cfg.origin, (unsigned long long)(r->size >> 20),
				       strerror(-rc));
		return err_set(e, ERR_RUNTIME, rc, "%s: mmap of %llu MiB (%s): %s", r->cfg.origin,
			       (unsigned long long)(r->size >> 20),
			       mem_backing_name(r->cfg.backing), strerror(-rc));
	}

	/* Trim the slack, keep one PROT_NONE guard page on each side. */
	end = hva + r->size;
	resv_end = (uintptr_t)resv + resv_len;
	if (hva - BACKING_GUARD > (uintptr_t)resv)
		munmap(resv, hva - BACKING_GUARD - (uintptr_t)resv);
	if (end + BACKING_GUARD < resv_end)
		munmap((void *)(end + BACKING_GUARD), resv_end - end - BACKING_GUARD);
	r->hva = (uint8_t *)hva;
	r->map_len = r->size;

	/*
	 * Guest RAM never follows a fork (QEMU does the same), and is never in a core dump:
	 * a crash of the VMM must not write the guest's memory to the host's disk.
	 */
	if (madvise(r->hva, r->size, MADV_DONTFORK))
		log_warn("%s: madvise(MADV_DONTFORK): %s", r->cfg.origin, strerror(errno));
	if (madvise(r->hva, r->size, MADV_DONTDUMP))
		log_warn("%s: madvise(MADV_DONTDUMP): %s; a core dump would hold guest memory",
			 r->cfg.origin, strerror(errno));
	/* THP advice goes before any page is touched, so the first faults are huge. */
	if (r->cfg.backing == MEM_BACKING_THP ||
	    ((r->cfg.backing == MEM_BACKING_MEMFD || r->cfg.backing == MEM_BACKING_FILE) &&
	     r->page_size >= SZ_2M)) {
		if (madvise(r->hva, r->size, MADV_HUGEPAGE) && r->cfg.backing == MEM_BACKING_THP)
			log_warn("%s: madvise(MADV_HUGEPAGE): %s (kernel without THP?)",
				 r->cfg.origin, strerror(errno));
	} else if (r->cfg.backing == MEM_BACKING_ANON ||
		   (r->cfg.backing == MEM_BACKING_MEMFD && r->page_size == SZ_4K)) {
		/* The 4K baseline stays 4K even when THP is "always". */
		madvise(r->hva, r->size, MADV_NOHUGEPAGE);
	}
	return 0;
}

void backing_release(struct mem_region *r)
{
	if (r->hva) {
		munmap(r->hva - BACKING_GUARD, r->map_len + 2 * BACKING_GUARD);
		r->hva = NULL;
		r->map_len = 0;
	}
	if (r->fd >= 0) {
		close(r->fd);
		r->fd = -1;
	}
}
