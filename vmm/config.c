#include "vmm/config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "vmm/config_drive.h"

#define BALLOON_STATS_MAX 65535 /* Firecracker's stats_polling_interval_s is a u16 */

void vm_config_defaults(struct vm_config *c)
{
	c->vcpus = 1;
}

void vm_config_init(struct vm_config *c)
{
	memset(c, 0, sizeof(*c));
	vm_config_defaults(c);
}

static bool all_zero(const char *p, size_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/*
 * Bytes [from, to) of the struct, as offsets, a page-sized piece at a time: a
 * piece that is zero on both sides is not written, so the untouched pages of
 * a fresh allocation (PATH_MAX strings are mostly zeros) stay out of the RSS.
 * Reading an untouched page maps the shared zero page, which RSS does not count.
 */
static void copy_span(struct vm_config *d, const struct vm_config *s, size_t from, size_t to)
{
	char *dp = (char *)d;
	const char *sp = (const char *)s;

	for (size_t off = from, n; off < to; off += n) {
		n = MIN((size_t)4096 - ((uintptr_t)(dp + off) & 4095), to - off);
		if (!all_zero(sp + off, n) || !all_zero(dp + off, n))
			memcpy(dp + off, sp + off, n);
	}
}

void vm_config_copy(struct vm_config *d, const struct vm_config *s)
{
	copy_span(d, s, 0, offsetof(struct vm_config, regions));
	memcpy(d->regions, s->regions, s->nregions * sizeof(s->regions[0]));
	copy_span(d, s, offsetof(struct vm_config, nregions), offsetof(struct vm_config, drives));
	memcpy(d->drives, s->drives, s->ndrives * sizeof(s->drives[0]));
	copy_span(d, s, offsetof(struct vm_config, ndrives), offsetof(struct vm_config, nets));
	memcpy(d->nets, s->nets, s->nnets * sizeof(s->nets[0]));
	copy_span(d, s, offsetof(struct vm_config, nnets), sizeof(*s));
}

/* Guest RAM from machine-config alone, as Firecracker defines it. */
static int ram_from_machine_config(struct vm_config *c, struct vmm_err *e)
{
	struct mem_region_cfg *r = &c->regions[0];
	unsigned mib = c->mem_size_mib ? c->mem_size_mib : CFG_DEFAULT_MEM_MIB;

	switch (c->huge_pages) {
	case CFG_HUGE_NONE:
		mem_cfg_init(r, MEM_BACKING_ANON, "ram0", "machine-config");
		break;
	case CFG_HUGE_2M:
		mem_cfg_init(r, MEM_BACKING_HUGETLB, "ram0", "machine-config");
		r->page_size = SZ_2M;
		break;
	case CFG_HUGE_TRANSPARENT:
		/* Firecracker refuses what hugevmm's own thp regions would round up. */
		if (mib % 2)
			return err_set(e, ERR_CONFIG, -EINVAL,
				       "machine-config.mem_size_mib: %u is not a multiple of the 2M "
				       "page size that huge_pages \"Transparent\" uses; use %u or %u",
				       mib, mib - 1, mib + 1);
		mem_cfg_init(r, MEM_BACKING_THP, "ram0", "machine-config");
		break;
	case CFG_HUGE_UNSET:
		/* Huge where the host allows, a warning where it does not. */
		mem_cfg_init(r, MEM_BACKING_THP, "ram0", "machine-config");
		r->policy = MEM_POLICY_PREFER;
		r->policy_set = true;
		break;
	}
	r->fc_machine_config = true;
	r->size = (uint64_t)mib * SZ_1M;
	c->nregions = 1;
	return mem_cfg_finalize_all(c->regions, 1, e);
}

/* Drive and interface ids are unique; at most one root drive. */
static int check_devices(const struct vm_config *c, struct vmm_err *e)
{
	int root = -1;

	if (c->ndrives > CFG_MAX_DRIVES)
		return err_set(e, ERR_CONFIG, -E2BIG,
			       "drives: %u drives; at most %d (" CFG_DRIVES_WHY "): give fewer",
			       c->ndrives, CFG_MAX_DRIVES);
	for (unsigned i = 0; i < c->ndrives; i++) {
		for (unsigned j = 0; j < i; j++)
			if (!strcmp(c->drives[i].id, c->drives[j].id))
				return err_set(e, ERR_CONFIG, -EEXIST,
					       "drives[%u].drive_id: \"%s\" is already used by "
					       "drives[%u]; ids must be unique",
					       i, c->drives[i].id, j);
		if (!c->drives[i].root)
			continue;
		if (root >= 0)
			return err_set(e, ERR_CONFIG, -EINVAL,
				       "drives[%u].is_root_device: drives[%d] is already the root "
				       "device; only one drive can be",
				       i, root);
		root = (int)i;
	}
	for (unsigned i = 0; i < c->nnets; i++) {
		const struct cfg_net *n = &c->nets[i];

		for (unsigned j = 0; j < i; j++) {
			const struct cfg_net *o = &c->nets[j];

			if (!strcmp(n->id, o->id))
				return err_set(e, ERR_CONFIG, -EEXIST,
					       "network-interfaces[%u].iface_id: \"%s\" is already "
					       "used by network-interfaces[%u]; ids must be unique",
					       i, n->id, j);
			if (!strcmp(n->host_dev, o->host_dev))
				return err_set(e, ERR_CONFIG, -EEXIST,
					       "network-interfaces[%u].host_dev_name: \"%s\" is already "
					       "the tap of network-interfaces[%u] (iface_id \"%s\"); "
					       "give each interface a tap of its own",
					       i, n->host_dev, j, o->id);
			/* Both MACs are set by now (generated when not given). */
			if (!strcasecmp(n->mac, o->mac))
				return err_set(e, ERR_CONFIG, -EEXIST,
					       "network-interfaces[%u].guest_mac: \"%s\"%s is already "
					       "the MAC of network-interfaces[%u] (iface_id \"%s\", "
					       "\"%s\"%s); MACs compare without case: give each "
					       "interface its own guest_mac",
					       i, n->mac, n->mac_generated ? " (generated)" : "", j,
					       o->id, o->mac, o->mac_generated ? ", generated" : "");
		}
	}
	return 0;
}

/* 64-bit FNV-1a over @len bytes of @p, continuing from @h. */
static uint64_t fnv1a(uint64_t h, const void *p, size_t len)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < len; i++) {
		h ^= b[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

/*
 * A MAC for an interface the config gave none: 02 (locally administered, unicast) and the
 * five high bytes of FNV-1a over host_dev_name, a 0 byte and iface_id. The same VM gets the
 * same MAC at every start (its guest's DHCP lease and neighbours stay valid), and two
 * interfaces on one host differ, since no two share a tap.
 */
static void generate_mac(struct cfg_net *n)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	h = fnv1a(h, n->host_dev, strlen(n->host_dev) + 1);
	h = fnv1a(h, n->id, strlen(n->id));
	snprintf(n->mac, sizeof(n->mac), "02:%02x:%02x:%02x:%02x:%02x", (unsigned)(h >> 56) & 0xff,
		 (unsigned)(h >> 48) & 0xff, (unsigned)(h >> 40) & 0xff, (unsigned)(h >> 32) & 0xff,
		 (unsigned)(h >> 24) & 0xff);
	n->mac_generated = true;
}

/* Regions from a memory section: machine-config's size and huge_pages say nothing then. */
static int finalize_regions(struct vm_config *c, struct vmm_err *e)
{
	if (c->mem_size_mib) {
		uint64_t total = 0;

		for (unsigned i = 0; i < c->nregions; i++)
			total += c->regions[i].size;
		if (total != (uint64_t)c->mem_size_mib * SZ_1M)
			log_warn(
				"machine-config.mem_size_mib: %u is ignored; memory.regions define "
				"guest RAM (%llu MiB in all)",
				c->mem_size_mib, (unsigned long long)(total >> 20));
	}
	if (c->huge_pages != CFG_HUGE_UNSET)
		log_warn("machine-config.huge_pages: ignored; memory.regions set each region's "
			 "backing");
	return mem_cfg_finalize_all(c->regions, c->nregions, e);
}

/* Firecracker's rule: the balloon's target is at most the guest's RAM (equal is allowed). */
static int check_balloon(const struct vm_config *c, struct vmm_err *e)
{
	const struct cfg_balloon *b = &c->balloon;
	unsigned long long ram_mib = (unsigned long long)(vm_config_ram_bytes(c) >> 20);

	if (!b->set)
		return 0;
	if (b->amount_mib > ram_mib)
		return err_set(e, ERR_CONFIG, -EINVAL,
			       "balloon.amount_mib: %u MiB is more than the guest's RAM (%llu "
			       "MiB); the balloon can take at most all of it: give %llu or less, "
			       "or give the guest more RAM",
			       b->amount_mib, ram_mib, ram_mib);
	/* The parser allows no more; a library user's configuration is checked here too. */
	if (b->stats_polling_interval_s > BALLOON_STATS_MAX)
		return err_set(e, ERR_CONFIG, -ERANGE,
			       "balloon.stats_polling_interval_s: %u is out of range; use 0 (no "
			       "statistics) to %d seconds",
			       b->stats_polling_interval_s, BALLOON_STATS_MAX);
	return 0;
}

/*
 * The vsock's CID and path (the parser allows no bad CID or long path; a library user's
 * configuration is checked here too, and an empty path for everyone).
 */
static int check_vsock(const struct vm_config *c, struct vmm_err *e)
{
	const struct cfg_vsock *v = &c->vsock;

	if (!v->set)
		return 0;
	if (v->guest_cid < 3 || v->guest_cid == UINT32_MAX)
		return err_set(e, ERR_CONFIG, -ERANGE,
			       "vsock.guest_cid: %u is out of range; use 3 to %u (CIDs below 3 are "
			       "the hypervisor's, loopback's and the host's; 0xffffffff is "
			       "VMADDR_CID_ANY)",
			       v->guest_cid, UINT32_MAX - 1);
	if (!memchr(v->uds_path, 0, sizeof(v->uds_path)))
		return err_set(e, ERR_CONFIG, -ENAMETOOLONG,
			       "vsock.uds_path: \"%.40s...\" is %zu bytes or more; a Unix socket's "
			       "path has at most %zu (sun_path): give a shorter path",
			       v->uds_path, sizeof(v->uds_path), sizeof(v->uds_path) - 1);
	if (!v->uds_path[0])
		return err_set(e, ERR_CONFIG, -EINVAL,
			       "vsock.uds_path: \"\" is empty; give the path of the Unix socket the "
			       "host side listens on (e.g. \"/tmp/vm.vsock\"; guest connections to "
			       "port P go to \"<uds_path>_P\")");
	return 0;
}

int vm_config_finalize(struct vm_config *c, bool need_boot, struct vmm_err *e)
{
	int rc;

	if (c->vcpus < 1 || c->vcpus > CFG_MAX_VCPUS)
		return err_set(e, ERR_CONFIG, -EINVAL,
			       "machine-config.vcpu_count: %u is out of range; use 1 to %d",
			       c->vcpus, CFG_MAX_VCPUS);
	if (need_boot && !c->has_boot)
		return err_set(e, ERR_CONFIG, -EINVAL,
			       "boot-source: missing; give {\"kernel_image_path\": ...}");
	if (c->has_boot && !c->kernel[0])
		return err_set(e, ERR_CONFIG, -EINVAL,
			       "boot-source.kernel_image_path: missing; give the kernel to boot");

	for (unsigned i = 0; i < c->nnets; i++)
		if (!c->nets[i].mac[0])
			generate_mac(&c->nets[i]);
	rc = check_devices(c, e);
	if (!rc)
		rc = check_vsock(c, e);
	if (rc)
		return rc;
	rc = c->has_memory ? finalize_regions(c, e) : ram_from_machine_config(c, e);
	return rc ? rc : check_balloon(c, e);
}

uint64_t vm_config_ram_bytes(const struct vm_config *c)
{
	uint64_t total = 0;

	for (unsigned i = 0; i < c->nregions; i++)
		total += c->regions[i].size;
	return total;
}

/* A file the config names must be a readable (and, if asked, writable) regular file. */
static int check_file(const char *field, const char *path, bool write, struct vmm_err *e)
{
	struct stat st;
	int fd;

	if (stat(path, &st))
		return err_set(e, ERR_CONFIG, -errno, "%s: \"%s\": %s", field, path,
			       strerror(errno));
	if (S_ISDIR(st.st_mode))
		return err_set(e, ERR_CONFIG, -EISDIR, "%s: \"%s\" is a directory; give a file",
			       field, path);
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		return err_set(e, ERR_CONFIG, -EINVAL, "%s: \"%s\" is not a regular file%s", field,
			       path, write ? " or a block device" : "");
	/* O_NONBLOCK: whatever the path turns out to be, the check never waits on it. */
	fd = open(path, (write ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return err_set(e, ERR_CONFIG, -errno, "%s: cannot open \"%s\" for %s: %s", field,
			       path, write ? "reading and writing" : "reading", strerror(errno));
	close(fd);
	return 0;
}

static const char *file_kind(mode_t m)
{
	if (S_ISDIR(m))
		return "a directory";
	if (S_ISFIFO(m))
		return "a FIFO";
	if (S_ISSOCK(m))
		return "a socket";
	if (S_ISCHR(m))
		return "a character device";
	if (S_ISBLK(m))
		return "a block device";
	if (S_ISREG(m))
		return "a regular file";
	return "not a regular file";
}

/*
 * The vsock's uds_path: hugevmm creates its socket there when the VM is built, so the
 * directory must exist and be writable, and the path be free or a socket (a stale one is
 * replaced then; whether one is live is only known then).
 */
static int check_uds_path(const char *path, struct vmm_err *e)
{
	char dir[sizeof(((struct cfg_vsock *)0)->uds_path)];
	const char *slash = strrchr(path, '/');
	struct stat st;

	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else
		snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 : (int)(slash - path), path);
	if (stat(dir, &st))
		return err_set(e, ERR_CONFIG, -errno,
			       "vsock.uds_path: \"%s\": its directory \"%s\": %s; give a path in an "
			       "existing directory (hugevmm creates the socket there)",
			       path, dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return err_set(e, ERR_CONFIG, -ENOTDIR,
			       "vsock.uds_path: \"%s\": \"%s\" is not a directory; give a path in "
			       "an existing directory (hugevmm creates the socket there)",
			       path, dir);
	if (access(dir, W_OK | X_OK))
		return err_set(e, ERR_CONFIG, -errno,
			       "vsock.uds_path: \"%s\": cannot create a socket in \"%s\": %s; give "
			       "a path in a directory hugevmm may write",
			       path, dir, strerror(errno));
	if (!lstat(path, &st) && !S_ISSOCK(st.st_mode))
		return err_set(e, ERR_CONFIG, -EEXIST,
			       "vsock.uds_path: \"%s\" exists and is %s; give a free path (or one "
			       "holding a socket a VM left behind) for hugevmm to create its socket",
			       path, file_kind(st.st_mode));
	return 0;
}

int vm_config_check_files(const struct vm_config *c, struct vmm_err *e)
{
	char f[96];
	int rc;

	if (c->has_boot) {
		rc = check_file("boot-source.kernel_image_path", c->kernel, false, e);
		if (rc)
			return rc;
		if (c->initrd[0]) {
			rc = check_file("boot-source.initrd_path", c->initrd, false, e);
			if (rc)
				return rc;
		}
	}
	for (unsigned i = 0; i < c->ndrives; i++) {
		snprintf(f, sizeof(f), "drives[%u].path_on_host", i);
		rc = vm_config_check_drive(f, &c->drives[i], e);
		if (rc)
			return rc;
	}
	return c->vsock.set ? check_uds_path(c->vsock.uds_path, e) : 0;
}

int vm_config_check_drive(const char *field, const struct cfg_drive *d, struct vmm_err *e)
{
	const char *path = d->path;
	uint64_t size = 0;
	struct stat st;
	int fd;

	if (!path[0])
		return err_set(e, ERR_CONFIG, -ENOENT,
			       "%s: empty; give the disk image or block device", field);
	if (stat(path, &st))
		return err_set(e, ERR_CONFIG, -errno, "%s: \"%s\": %s; give an existing disk image "
			       "or block device", field, path, strerror(errno));
	/* A FIFO or a character device would be read as a stream, not a disk. */
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		return err_set(e, ERR_CONFIG, S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL,
			       "%s: \"%s\" is %s; a drive is a regular file (a disk image) or a "
			       "block device",
			       field, path, file_kind(st.st_mode));
	/* O_NONBLOCK: the check never waits on whatever the path has become since stat. */
	fd = open(path, (d->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		int err = errno;

		return err_set(e, ERR_CONFIG, -err, "%s: cannot open \"%s\" for %s: %s; %s", field,
			       path, d->read_only ? "reading" : "reading and writing",
			       strerror(err),
			       d->read_only ? "make it readable by hugevmm"
			       : err == EACCES || err == EROFS || err == EPERM
				       ? "make it writable by hugevmm, or set is_read_only true"
				       : "give a disk image or block device hugevmm can open");
	}
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, &size))
			size = 0;
	} else {
		size = (uint64_t)st.st_size;
	}
	close(fd);
	if (size < 512)
		return err_set(e, ERR_CONFIG, -EINVAL,
			       "%s: \"%s\" is %llu bytes, smaller than one 512-byte sector; a disk "
			       "image holds at least one whole sector: check that this is the image",
			       field, path, (unsigned long long)size);
	return 0;
}

/* The words a root device adds: " root=..." and " ro"/" rw" into @out. */
static int root_words(const struct cfg_drive *d, char *out, size_t size)
{
	int n;

	if (d->partuuid[0])
		n = snprintf(out, size, " root=PARTUUID=%s %s", d->partuuid, d->read_only ? "ro" : "rw");
	else
		n = snprintf(out, size, " root=/dev/vda %s", d->read_only ? "ro" : "rw");
	return n < 0 || (size_t)n >= size ? -E2BIG : n;
}

static bool is_space(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n';
}

/* Where the kernel's part of @s ends: at a "--" word (what follows is init's), or at its end. */
static size_t kernel_part(const char *s)
{
	for (const char *p = s; (p = strstr(p, "--")); p += 2)
		if ((p == s || is_space(p[-1])) && (!p[2] || is_space(p[2])))
			return (size_t)(p - s);
	return strlen(s);
}

/* Whether the first @len bytes of @s hold a word that starts with "root=". */
static bool names_root(const char *s, size_t len)
{
	for (size_t i = 0; i + 5 <= len; i++)
		if ((i == 0 || is_space(s[i - 1])) && !strncmp(s + i, "root=", 5))
			return true;
	return false;
}

int vm_config_root_args(const struct vm_config *c, char *cmdline, size_t size)
{
	size_t len = strnlen(cmdline, size), at;
	char words[128];
	int n;

	if (len >= size)
		return -E2BIG;
	for (unsigned i = 0; i < c->ndrives; i++) {
		if (!c->drives[i].root)
			continue;
		at = kernel_part(cmdline);
		if (names_root(cmdline, at))
			return 0;
		/* Before a "--", so the words stay the kernel's: " root=... rw" then " --". */
		while (at > 0 && is_space(cmdline[at - 1]))
			at--;
		n = root_words(&c->drives[i], words, sizeof(words));
		if (n < 0 || len + (size_t)n >= size)
			return -E2BIG;
		memmove(cmdline + at + n, cmdline + at, len - at + 1);
		memcpy(cmdline + at, words, (size_t)n);
		return 0;
	}
	return 0;
}
