#include "api/config_json.h"

#include <cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/json_util.h"
#include "common/log.h"
#include "vmm/config_drive.h"


/*
 * Firecracker's configuration schema (its API definition, v1.17.0-dev), as
 * tables: what it requires, the types and enums it accepts, null for its
 * optional fields. Sections hugevmm implements are parsed further below;
 * the rest are checked as Firecracker would and then ignored, with one
 * warning naming the roadmap item that covers them.
 */
#define U64 .min = 0, .max = INT64_MAX
#define FC_MAX_VCPUS 32 /* Firecracker's limit; hugevmm itself could run CFG_MAX_VCPUS */
#define IFNAME_MAX (IFNAMSIZ - 1) /* an interface name's characters, without the NUL */
_Static_assert(sizeof(((struct cfg_net *)0)->host_dev) == IFNAMSIZ, "cfg_net.host_dev: IFNAMSIZ");
static const struct jv_field fc_token_bucket[] = {
	{.name = "size", .kind = JV_INT, .required = true, U64, .hint = "the bucket's capacity in tokens"},
	{.name = "one_time_burst", .kind = JV_INT, U64},
	{.name = "refill_time", .kind = JV_INT, .required = true, U64, .hint = "milliseconds to refill the bucket"},
	{0},
};
static const struct jv_field fc_rate_limiter[] = {
	{.name = "bandwidth", .kind = JV_OBJ, .sub = fc_token_bucket},
	{.name = "ops", .kind = JV_OBJ, .sub = fc_token_bucket},
	{0},
};
static const char *const fc_huge[] = {"None", "Transparent", "2M", NULL};
static const char *const fc_virtio_cmdline[] = {"auto", "never", NULL};
static const char *const fc_cpu_template[] = {"C3", "T2", "T2S", "T2CL", "T2A", "V1N1", "None",
					      NULL};
static const struct jv_field fc_boot[] = {
	{.name = "kernel_image_path", .kind = JV_STR, .required = true, .hint = "give the kernel to boot"},
	{.name = "boot_args", .kind = JV_STR},
	{.name = "initrd_path", .kind = JV_STR},
	{.name = "boot_protocol", .kind = JV_STR}, /* hugevmm's: cfg_json_boot checks it */
	{0},
};
static const struct jv_field fc_machine[] = {
	{.name = "vcpu_count", .kind = JV_INT, .min = 1, .max = FC_MAX_VCPUS, .no_null = true},
	{.name = "mem_size_mib", .kind = JV_INT, .min = 1, .max = MEM_MAX_SIZE >> 20, .no_null = true},
	{.name = "smt", .kind = JV_BOOL, .no_null = true},
	{.name = "track_dirty_pages", .kind = JV_BOOL, .no_null = true},
	{.name = "huge_pages", .kind = JV_STR, .enums = fc_huge, .no_null = true},
	{.name = "cpu_template", .kind = JV_STR, .enums = fc_cpu_template},
	{.name = "virtio_cmdline", .kind = JV_STR, .enums = fc_virtio_cmdline}, /* hugevmm's */
	{0},
};
static const char *const fc_cache[] = {"Unsafe", "Writeback", NULL};
static const char *const fc_engine[] = {"Sync", "Async", NULL};
static const struct jv_field fc_drive[] = {
	{.name = "drive_id", .kind = JV_STR, .required = true, .hint = "give the drive a name"},
	{.name = "partuuid", .kind = JV_STR},
	{.name = "is_root_device", .kind = JV_BOOL, .required = true, .hint = "say true or false"},
	{.name = "cache_type", .kind = JV_STR, .enums = fc_cache, .no_null = true},
	{.name = "is_read_only", .kind = JV_BOOL},
	{.name = "path_on_host", .kind = JV_STR},
	{.name = "rate_limiter", .kind = JV_OBJ, .sub = fc_rate_limiter},
	{.name = "io_engine", .kind = JV_STR, .enums = fc_engine},
	{.name = "socket", .kind = JV_STR},
	{.name = "direct", .kind = JV_BOOL, .no_null = true}, /* hugevmm's */
	{0},
};
/* PATCH /drives/{id}: Firecracker's PartialDrive. */
static const struct jv_field fc_partial_drive[] = {
	{.name = "drive_id", .kind = JV_STR, .required = true, .hint = "name the drive to change"},
	{.name = "path_on_host", .kind = JV_STR},
	{.name = "rate_limiter", .kind = JV_OBJ, .sub = fc_rate_limiter},
	{0},
};
static const struct jv_field fc_net[] = {
	{.name = "iface_id", .kind = JV_STR, .required = true, .hint = "give the interface a name"},
	{.name = "host_dev_name", .kind = JV_STR, .required = true, .hint = "give the host tap device"},
	{.name = "guest_mac", .kind = JV_STR},
	{.name = "mtu", .kind = JV_INT, .min = 68, .max = 65535},
	{.name = "rx_rate_limiter", .kind = JV_OBJ, .sub = fc_rate_limiter},
	{.name = "tx_rate_limiter", .kind = JV_OBJ, .sub = fc_rate_limiter},
	{0},
};
/* PATCH /network-interfaces/{id}: Firecracker's PartialNetworkInterface. */
static const struct jv_field fc_partial_net[] = {
	{.name = "iface_id", .kind = JV_STR, .required = true, .hint = "name the interface to change"},
	{.name = "rx_rate_limiter", .kind = JV_OBJ, .sub = fc_rate_limiter},
	{.name = "tx_rate_limiter", .kind = JV_OBJ, .sub = fc_rate_limiter},
	{0},
};
static const char *const fc_levels[] = {"Error", "Warning", "Warn", "Info", "Debug", "Trace", "Off",
					NULL};
static const struct jv_field fc_logger[] = {
	{.name = "log_path", .kind = JV_STR},
	{.name = "level", .kind = JV_STR, .enums = fc_levels, .nocase = true},
	{.name = "show_level", .kind = JV_BOOL},
	{.name = "show_log_origin", .kind = JV_BOOL},
	{.name = "module", .kind = JV_STR},
	{0},
};
static const struct jv_field fc_metrics[] = {
	{.name = "metrics_path", .kind = JV_STR, .required = true, .hint = "give the file or FIFO the metrics go to"},
	{.name = "emit_id", .kind = JV_BOOL, .no_null = true},
	{.name = "properties", .kind = JV_MAP},
	{0},
};
/* Firecracker's types: amount_mib a u32, stats_polling_interval_s a u16. */
#define FC_BALLOON_STATS_MAX 65535
static const struct jv_field fc_balloon[] = {
	{.name = "amount_mib", .kind = JV_INT, .required = true, .min = 0, .max = UINT32_MAX,
	 .hint = "give the balloon's target size in MiB (0: it starts empty)"},
	{.name = "deflate_on_oom", .kind = JV_BOOL, .required = true, .hint = "say true or false"},
	{.name = "stats_polling_interval_s", .kind = JV_INT, .min = 0, .max = FC_BALLOON_STATS_MAX,
	 .no_null = true},
	{.name = "free_page_hinting", .kind = JV_BOOL, .no_null = true},
	{.name = "free_page_reporting", .kind = JV_BOOL, .no_null = true},
	{0},
};
/* PATCH /balloon: Firecracker's BalloonUpdate. */
static const struct jv_field fc_balloon_update[] = {
	{.name = "amount_mib", .kind = JV_INT, .required = true, .min = 0, .max = UINT32_MAX,
	 .hint = "give the balloon's new target size in MiB"},
	{0},
};
/* PATCH /balloon/statistics: Firecracker's BalloonStatsUpdate. */
static const struct jv_field fc_balloon_stats_update[] = {
	{.name = "stats_polling_interval_s", .kind = JV_INT, .required = true, .min = 0,
	 .max = FC_BALLOON_STATS_MAX, .hint = "give the new interval in seconds"},
	{0},
};
/*
 * Firecracker's Vsock: guest_cid a u32 of at least 3 (0-2 are the hypervisor, loopback
 * and the host); u32's top value is VMADDR_CID_ANY (-1U), no guest's address either.
 */
#define VSOCK_CID_WHY                                                                  \
	"CIDs below 3 are the hypervisor's, loopback's and the host's; 0xffffffff is " \
	"VMADDR_CID_ANY"
static const struct jv_field fc_vsock[] = {
	{.name = "guest_cid", .kind = JV_INT, .required = true, .min = 3, .max = UINT32_MAX - 1,
	 .range_why = VSOCK_CID_WHY, .hint = "give the guest's context ID (3 or more)"},
	{.name = "uds_path", .kind = JV_STR, .required = true,
	 .hint = "give the path of the Unix socket the host side listens on"},
	{.name = "vsock_id", .kind = JV_STR},
	{0},
};
static const struct jv_field fc_entropy[] = {
	{.name = "rate_limiter", .kind = JV_OBJ, .sub = fc_rate_limiter},
	{0},
};
static const char *const fc_mmds_versions[] = {"V1", "V2", NULL};
static const struct jv_field fc_mmds[] = {
	{.name = "version", .kind = JV_STR, .enums = fc_mmds_versions, .no_null = true},
	{.name = "network_interfaces", .kind = JV_ARR, .required = true},
	{.name = "ipv4_address", .kind = JV_STR},
	{.name = "imds_compat", .kind = JV_BOOL, .no_null = true},
	{0},
};
static const struct jv_field fc_pmem[] = {
	{.name = "id", .kind = JV_STR, .required = true},
	{.name = "path_on_host", .kind = JV_STR, .required = true},
	{.name = "root_device", .kind = JV_BOOL, .no_null = true},
	{.name = "read_only", .kind = JV_BOOL, .no_null = true},
	{.name = "rate_limiter", .kind = JV_OBJ, .sub = fc_rate_limiter},
	{0},
};
static const struct jv_field fc_hotplug[] = {
	{.name = "total_size_mib", .kind = JV_INT, .min = 0, .max = UINT32_MAX},
	{.name = "slot_size_mib", .kind = JV_INT, .min = 128, .max = UINT32_MAX},
	{.name = "block_size_mib", .kind = JV_INT, .min = 2, .max = UINT32_MAX},
	{0},
};
static const char *const fc_registers[] = {"eax", "ebx", "ecx", "edx", NULL};
static const struct jv_field fc_cpuid_reg[] = {
	{.name = "register", .kind = JV_STR, .required = true, .enums = fc_registers},
	{.name = "bitmap", .kind = JV_STR, .required = true},
	{0},
};
static const struct jv_field fc_cpuid_leaf[] = {
	{.name = "leaf", .kind = JV_STR, .required = true},
	{.name = "subleaf", .kind = JV_STR, .required = true},
	{.name = "flags", .kind = JV_INT, .required = true, .min = INT32_MIN, .max = INT32_MAX},
	{.name = "modifiers", .kind = JV_ARR, .required = true, .sub = fc_cpuid_reg},
	{0},
};
static const struct jv_field fc_addr_bitmap[] = {
	{.name = "addr", .kind = JV_STR, .required = true},
	{.name = "bitmap", .kind = JV_STR, .required = true},
	{0},
};
static const struct jv_field fc_vcpu_features[] = {
	{.name = "index", .kind = JV_INT, .required = true, .min = INT32_MIN, .max = INT32_MAX},
	{.name = "bitmap", .kind = JV_STR, .required = true},
	{0},
};
static const struct jv_field fc_cpu_config[] = {
	{.name = "kvm_capabilities", .kind = JV_ARR},
	{.name = "cpuid_modifiers", .kind = JV_ARR, .sub = fc_cpuid_leaf},
	{.name = "msr_modifiers", .kind = JV_ARR, .sub = fc_addr_bitmap},
	{.name = "reg_modifiers", .kind = JV_ARR, .sub = fc_addr_bitmap},
	{.name = "vcpu_features", .kind = JV_ARR, .sub = fc_vcpu_features},
	{0},
};
static const struct jv_field fc_serial[] = {
	{.name = "serial_out_path", .kind = JV_STR},
	{.name = "rate_limiter", .kind = JV_OBJ, .sub = fc_token_bucket},
	{0},
};
/* The config file: Firecracker's FullVmConfiguration, and hugevmm's "memory". */
static const struct jv_field fc_config[] = {
	{.name = "boot-source", .kind = JV_OBJ, .sub = fc_boot},
	{.name = "machine-config", .kind = JV_OBJ, .sub = fc_machine},
	{.name = "drives", .kind = JV_ARR, .sub = fc_drive, .no_null = true},
	{.name = "network-interfaces", .kind = JV_ARR, .sub = fc_net, .no_null = true},
	{.name = "logger", .kind = JV_OBJ, .sub = fc_logger},
	{.name = "metrics", .kind = JV_OBJ, .sub = fc_metrics},
	{.name = "balloon", .kind = JV_OBJ, .sub = fc_balloon},
	{.name = "vsock", .kind = JV_OBJ, .sub = fc_vsock},
	{.name = "entropy", .kind = JV_OBJ, .sub = fc_entropy},
	{.name = "mmds-config", .kind = JV_OBJ, .sub = fc_mmds},
	{.name = "pmem", .kind = JV_ARR, .sub = fc_pmem, .no_null = true},
	{.name = "memory-hotplug", .kind = JV_OBJ, .sub = fc_hotplug},
	{.name = "cpu-config", .kind = JV_OBJ, .sub = fc_cpu_config},
	{.name = "serial", .kind = JV_OBJ, .sub = fc_serial},
	{.name = "memory", .kind = JV_OBJ}, /* hugevmm's: checked by parse_memory */
	{0},
};

/* What hugevmm lacks, and where the roadmap (README) takes it up. */
struct fc_missing {
	const char *path; /* a top-level section, or "section.field" */
	const char *why;
};
static const struct fc_missing fc_missing[] = {
	{"mmds-config", "not on the roadmap (no MMDS)"},
	{"pmem", "not on the roadmap; a memory region with backing \"file\" maps a file as RAM"},
	{"memory-hotplug", "not on the roadmap (no virtio-mem)"},
	{"cpu-config", "not on the roadmap; the guest gets KVM's supported CPUID"},
	{"machine-config.smt", "not on the roadmap; every vCPU is a core of its own"},
	{"machine-config.track_dirty_pages", "not on the roadmap (no snapshots)"},
	{"machine-config.cpu_template", "not on the roadmap; the guest gets KVM's supported CPUID"},
	{"logger.module", "hugevmm's log lines have no module path to filter on"},
	{"serial.rate_limiter", "not implemented; console output is not rate-limited"},
	{NULL, NULL},
};

/* One warning per Firecracker section or field that asks for what hugevmm lacks. */
static void warn_missing(const cJSON *root)
{
	for (const struct fc_missing *m = fc_missing; m->path; m++) {
		char top[32];
		const char *dot = strchr(m->path, '.');
		const cJSON *v;

		snprintf(top, sizeof(top), "%.*s", dot ? (int)(dot - m->path) : (int)strlen(m->path),
			 m->path);
		v = cJSON_GetObjectItemCaseSensitive(root, top);
		if (dot && cJSON_IsObject(v))
			v = cJSON_GetObjectItemCaseSensitive(v, dot + 1);
		else if (dot)
			v = NULL;
		if (!jv_inert(v))
			log_warn("%s: ignored: %s", m->path, m->why);
	}
}

int cfg_json_boot(const cJSON *o, const char *p, struct vm_config *c, struct vmm_err *e)
{
	char proto[16];
	int r = jv_validate(o, p, fc_boot, e);

	if (r)
		return r;
	c->has_boot = true;
	r = jv_get_str(o, p, "kernel_image_path", c->kernel, sizeof(c->kernel), e);
	if (r == 0)
		return jv_missing(p, "kernel_image_path", "give the kernel to boot", e);
	if (r < 0)
		return r;
	r = jv_get_str(o, p, "boot_args", c->cmdline, sizeof(c->cmdline), e);
	if (r < 0)
		return r;
	r = jv_get_str(o, p, "initrd_path", c->initrd, sizeof(c->initrd), e);
	if (r < 0)
		return r;
	r = jv_get_str(o, p, "boot_protocol", proto, sizeof(proto), e);
	if (r <= 0)
		return r;
	r = kernel_proto_parse(proto);
	if (r < 0)
		return err_set(e, ERR_CONFIG, -EINVAL,
			       "%s.boot_protocol: \"%s\" is not a boot protocol; give \"auto\" "
			       "(what the file offers), \"linux\" or \"pvh\"",
			       p, proto);
	c->boot_protocol = (enum kernel_proto)r;
	return 0;
}

int cfg_json_machine(const cJSON *o, const char *p, struct vmm_machine *m, struct vmm_err *e)
{
	char hp[16];
	uint64_t v;
	int r = jv_validate(o, p, fc_machine, e);

	memset(m, 0, sizeof(*m));
	if (r)
		return r;
	r = jv_get_uint(o, p, "vcpu_count", 1, CFG_MAX_VCPUS, &v, e);
	if (r < 0)
		return r;
	m->has_vcpus = r;
	m->vcpus = (unsigned)v;
	{
		bool smt = false;

		r = jv_get_bool(o, p, "smt", &smt, e);
		if (r < 0)
			return r;
		/* Firecracker's rule: with SMT, 1 vCPU or an even number (two threads a core). */
		if (smt && m->has_vcpus && m->vcpus > 1 && m->vcpus % 2)
			return err_set(e, ERR_CONFIG, -EINVAL,
				       "%s.vcpu_count: %u with smt true; Firecracker needs 1 or an "
				       "even number of vCPUs with SMT: use %u or %u, or smt false",
				       p, m->vcpus, m->vcpus - 1, m->vcpus + 1);
	}
	r = jv_get_uint(o, p, "mem_size_mib", 1, MEM_MAX_SIZE >> 20, &v, e);
	if (r < 0)
		return r;
	m->has_mem = r;
	m->mem_mib = (unsigned)v;
	r = jv_get_str(o, p, "virtio_cmdline", hp, sizeof(hp), e);
	if (r < 0)
		return r;
	m->has_virtio_cmdline = r;
	m->virtio_cmdline = r && !strcmp(hp, "never") ? CFG_VIRTIO_CMDLINE_NEVER
						       : CFG_VIRTIO_CMDLINE_AUTO;
	r = jv_get_str(o, p, "huge_pages", hp, sizeof(hp), e);
	if (r < 0)
		return r;
	m->has_huge = r;
	if (r) {
		if (!strcmp(hp, "None"))
			m->huge = CFG_HUGE_NONE;
		else if (!strcmp(hp, "2M"))
			m->huge = CFG_HUGE_2M;
		else if (!strcmp(hp, "Transparent"))
			m->huge = CFG_HUGE_TRANSPARENT;
		else
			return err_set(
				e, ERR_CONFIG, -EINVAL,
				"%s.huge_pages: \"%s\" is not known; use \"None\", \"2M\" or "
				"\"Transparent\"",
				p, hp);
	}
	return 0;
}

static int parse_machine(const cJSON *o, struct vm_config *c, struct vmm_machine *m,
			 struct vmm_err *e)
{
	int r = cfg_json_machine(o, "machine-config", m, e);

	if (r)
		return r;
	if (m->has_vcpus)
		c->vcpus = m->vcpus;
	if (m->has_mem)
		c->mem_size_mib = m->mem_mib;
	if (m->has_huge)
		c->huge_pages = m->huge;
	if (m->has_virtio_cmdline)
		c->virtio_cmdline = m->virtio_cmdline;
	return 0;
}

/* A top-level section; null is an absent one, as in Firecracker's Option<>s. */
static const cJSON *section(const cJSON *root, const char *name)
{
	const cJSON *o = cJSON_GetObjectItemCaseSensitive(root, name);

	return cJSON_IsNull(o) ? NULL : o;
}

static void rate_limiter(const cJSON *o, struct rl_cfg *rl);

/*
 * A partition UUID goes onto the kernel command line (root=PARTUUID=...):
 * what blkid prints (hex digits and dashes), with Linux's optional
 * "/PARTNROFF=<n>" suffix; nothing that could end the word or add another.
 */
static bool partuuid_valid(const char *s)
{
	const char *off = strstr(s, "/PARTNROFF=");
	size_t n = off ? (size_t)(off - s) : strlen(s);

	if (!n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isxdigit((unsigned char)s[i]) && s[i] != '-')
			return false;
	if (!off)
		return true;
	off += strlen("/PARTNROFF=");
	if (*off == '-')
		off++;
	if (!*off)
		return false;
	for (; *off; off++)
		if (!isdigit((unsigned char)*off))
			return false;
	return true;
}

int cfg_json_drive(const cJSON *o, const char *p, struct cfg_drive *d, struct vmm_err *e)
{
	char s[16];
	int r = jv_validate(o, p, fc_drive, e);

	if (r)
		return r;
	memset(d, 0, sizeof(*d));
	r = jv_get_str(o, p, "drive_id", d->id, sizeof(d->id), e);
	if (r == 0)
		return jv_missing(p, "drive_id", "give the drive a name", e);
	if (r < 0)
		return r;
	/* Firecracker's vhost-user-block: a backend process hugevmm cannot talk to. */
	if (!jv_inert(cJSON_GetObjectItemCaseSensitive(o, "socket")))
		return err_set(e, ERR_CONFIG, -EOPNOTSUPP,
			       "%s.socket: hugevmm has no vhost-user block devices; give "
			       "path_on_host (a disk image or block device) instead",
			       p);
	r = jv_get_str(o, p, "path_on_host", d->path, sizeof(d->path), e);
	if (r == 0)
		return jv_missing(p, "path_on_host", "give the disk image or block device", e);
	if (r < 0)
		return r;
	r = jv_get_bool(o, p, "is_root_device", &d->root, e);
	if (r == 0)
		return jv_missing(p, "is_root_device", "say true or false", e);
	if (r < 0)
		return r;
	r = jv_get_bool(o, p, "is_read_only", &d->read_only, e);
	if (r < 0)
		return r;
	r = jv_get_str(o, p, "partuuid", d->partuuid, sizeof(d->partuuid), e);
	if (r < 0)
		return r;
	if (r && !partuuid_valid(d->partuuid))
		return err_set(e, ERR_CONFIG, -EINVAL,
			       "%s.partuuid: \"%s\" is not a partition UUID; give it as blkid "
			       "shows it (hex digits and dashes, e.g. \"0eaa91a0-01\"), "
			       "optionally followed by /PARTNROFF=<n>",
			       p, d->partuuid);
	if (r && !d->root)
		log_warn("%s.partuuid: ignored; only the root device's partuuid is used "
			 "(is_root_device is false)",
			 p);
	/* The enums were checked by the table. */
	r = jv_get_str(o, p, "cache_type", s, sizeof(s), e);
	if (r < 0)
		return r;
	d->cache = r && !strcmp(s, "Writeback") ? CFG_CACHE_WRITEBACK : CFG_CACHE_UNSAFE;
	r = jv_get_str(o, p, "io_engine", s, sizeof(s), e);
	if (r < 0)
		return r;
	d->io_engine = r && !strcmp(s, "Async") ? CFG_IO_ASYNC : CFG_IO_SYNC;
	rate_limiter(cJSON_GetObjectItemCaseSensitive(o, "rate_limiter"), &d->rate_limiter);
	r = jv_get_bool(o, p, "direct", &d->direct, e);
	return r < 0 ? r : 0;
}

int cfg_json_drive_patch(const cJSON *o, const char *p, struct vmm_drive_patch *dp,
			 struct vmm_err *e)
{
	const cJSON *rl;
	int r = jv_validate(o, p, fc_partial_drive, e);

	if (r)
		return r;
	memset(dp, 0, sizeof(*dp));
	r = jv_get_str(o, p, "drive_id", dp->id, sizeof(dp->id), e);
	if (r == 0)
		return jv_missing(p, "drive_id", "name the drive to change", e);
	if (r < 0)
		return r;
	r = jv_get_str(o, p, "path_on_host", dp->path, sizeof(dp->path), e);
	if (r < 0)
		return r;
	dp->has_path = r;
	rl = cJSON_GetObjectItemCaseSensitive(o, "rate_limiter");
	dp->has_rate_limiter = cJSON_IsObject(rl);
	rate_limiter(rl, &dp->rate_limiter);
	return 0;
}

static bool mac_valid(const char *m)
{
	if (strlen(m) != 17)
		return false;
	for (int i = 0; i < 17; i++) {
		char ch = m[i];

		if (i % 3 == 2 ? ch != ':' : !isxdigit((unsigned char)ch))
			return false;
	}
	return true;
}

/*
 * Linux's rule for an interface name (dev_valid_name): 1 to IFNAMSIZ-1 bytes, not "." or
 * "..", no '/', ':' or white space. A name the kernel could never have given a tap is
 * refused here, with the field, rather than as ENODEV when the tap is opened.
 */
static int check_ifname(const char *p, const char *name, struct vmm_err *e)
{
	size_t n = strlen(name);

	if (n > IFNAME_MAX)
		return err_set(e, ERR_CONFIG, -ENAMETOOLONG,
			       "%s.host_dev_name: \"%s\" is %zu characters; a Linux interface name "
			       "has at most %d (IFNAMSIZ-1): name the tap with %d or fewer "
			       "(ip tuntap add dev <name> mode tap)",
			       p, name, n, IFNAME_MAX, IFNAME_MAX);
	if (!n || !strcmp(name, ".") || !strcmp(name, ".."))
		return err_set(e, ERR_CONFIG, -EINVAL,
			       "%s.host_dev_name: \"%s\" cannot name an interface; give the tap's "
			       "name, e.g. \"tap0\"",
			       p, name);
	for (const char *c = name; *c; c++)
		if (*c == '/' || *c == ':' || isspace((unsigned char)*c))
			return err_set(e, ERR_CONFIG, -EINVAL,
				       "%s.host_dev_name: \"%s\" holds '%c', which no Linux interface "
				       "name has; give the tap's name, e.g. \"tap0\"",
				       p, name, isspace((unsigned char)*c) ? ' ' : *c);
	return 0;
}

int cfg_json_net(const cJSON *o, const char *p, struct cfg_net *n, struct vmm_err *e)
{
	const cJSON *dev;
	unsigned long first;
	uint64_t mtu = 0;
	int r = jv_validate(o, p, fc_net, e);

	if (r)
		return r;
	memset(n, 0, sizeof(*n));
	r = jv_get_str(o, p, "iface_id", n->id, sizeof(n->id), e);
	if (r == 0)
		return jv_missing(p, "iface_id", "give the interface a name", e);
	if (r < 0)
		return r;
	/* The table made it a string; its length is checked here, to say why it must be short. */
	dev = cJSON_GetObjectItemCaseSensitive(o, "host_dev_name");
	if (!cJSON_IsString(dev))
		return jv_missing(p, "host_dev_name", "give the host tap device", e);
	r = check_ifname(p, dev->valuestring, e);
	if (r)
		return r;
	memcpy(n->host_dev, dev->valuestring, strlen(dev->valuestring) + 1);
	r = jv_get_str(o, p, "guest_mac", n->mac, sizeof(n->mac), e);
	if (r == -ENAMETOOLONG || (r > 0 && !mac_valid(n->mac)))
		return err_set(e, ERR_CONFIG, -EINVAL,
			       "%s.guest_mac: \"%s\" is not a MAC address; write it as six "
			       "colon-separated hex bytes, e.g. \"06:00:ac:10:00:02\"",
			       p, cJSON_GetObjectItemCaseSensitive(o, "guest_mac")->valuestring);
	if (r < 0)
		return r;
	if (r) {
		first = strtoul(n->mac, NULL, 16);
		/* The guest's driver would refuse it (is_valid_ether_addr) and make up its own. */
		if (first & 1)
			return err_set(e, ERR_CONFIG, -EINVAL,
				       "%s.guest_mac: \"%s\" is a multicast address (the first byte "
				       "is odd); give a unicast one, e.g. \"%02lx%s\"",
				       p, n->mac, first & ~1UL, n->mac + 2);
		if (!strcmp(n->mac, "00:00:00:00:00:00"))
			return err_set(e, ERR_CONFIG, -EINVAL,
				       "%s.guest_mac: \"%s\" is no address; give one, e.g. "
				       "\"06:00:ac:10:00:02\", or leave guest_mac out to have one "
				       "generated",
				       p, n->mac);
	}
	r = jv_get_uint(o, p, "mtu", 68, 65535, &mtu, e);
	if (r < 0)
		return r;
	n->mtu = (unsigned)mtu;
	rate_limiter(cJSON_GetObjectItemCaseSensitive(o, "rx_rate_limiter"), &n->rx_rate_limiter);
	rate_limiter(cJSON_GetObjectItemCaseSensitive(o, "tx_rate_limiter"), &n->tx_rate_limiter);
	return 0;
}

/* Fields of NetworkInterface that PATCH cannot change (the device keeps them until it goes). */
static const char *const net_fixed[] = {"host_dev_name", "guest_mac", "mtu", NULL};

int cfg_json_net_patch(const cJSON *o, const char *p, struct vmm_net_patch *np,
		       struct vmm_err *e)
{
	const cJSON *rl;
	int r;

	for (const char *const *f = net_fixed; *f; f++)
		if (cJSON_GetObjectItemCaseSensitive(o, *f))
			return err_set(e, ERR_CONFIG, -EINVAL,
				       "%s.%s: PATCH changes only rx_rate_limiter and "
				       "tx_rate_limiter; set %s with PUT /network-interfaces/{id} "
				       "before InstanceStart",
				       p, *f, *f);
	r = jv_validate(o, p, fc_partial_net, e);
	if (r)
		return r;
	memset(np, 0, sizeof(*np));
	r = jv_get_str(o, p, "iface_id", np->id, sizeof(np->id), e);
	if (r == 0)
		return jv_missing(p, "iface_id", "name the interface to change", e);
	if (r < 0)
		return r;
	rl = cJSON_GetObjectItemCaseSensitive(o, "rx_rate_limiter");
	np->has_rx = cJSON_IsObject(rl);
	rate_limiter(rl, &np->rx_rate_limiter);
	rl = cJSON_GetObjectItemCaseSensitive(o, "tx_rate_limiter");
	np->has_tx = cJSON_IsObject(rl);
	rate_limiter(rl, &np->tx_rate_limiter);
	return 0;
}

int cfg_json_region(const cJSON *o, const char *p, unsigned index, struct mem_region_cfg *r,
		    struct vmm_err *e)
{
	static const char *const known[] = {
		"id",       "size_mib",         "backing",         "page_size",
		"prefault", "policy",           "min_coverage",    "path",
		"device",   "prefault_threads", "host_offset_kib", "dax",
		"reclaim",  NULL};
	char id[MEM_ID_MAX + 1] = "", s[32], b[64];
	enum mem_backing backing;
	uint64_t v;
	int rc = jv_check_keys(o, p, known, e);
	const cJSON *mc;

	if (rc)
		return rc;
	rc = jv_get_str(o, p, "backing", s, sizeof(s), e);
	if (rc == 0)
		return jv_missing(p, "backing", "one of anon, thp, memfd, hugetlb, file, devdax",
				  e);
	if (rc < 0)
		return rc;
	if (mem_backing_parse(s, &backing))
		return err_set(
			e, ERR_CONFIG, -EINVAL,
			"%s.backing: \"%s\" is not known; use anon, thp, memfd, hugetlb, file "
			"or devdax",
			p, s);
	rc = jv_get_str(o, p, "id", id, sizeof(id), e);
	if (rc < 0)
		return rc;
	if (rc == 0)
		snprintf(id, sizeof(id), "ram%u", index);
	mem_cfg_init(r, backing, id, p);

	rc = jv_get_uint(o, p, "size_mib", 1, MEM_MAX_SIZE >> 20, &v, e);
	if (rc == 0)
		return jv_missing(p, "size_mib", "give the region's size in MiB", e);
	if (rc < 0)
		return rc;
	r->size = v << 20;

	rc = jv_get_str(o, p, "page_size", s, sizeof(s), e);
	if (rc < 0)
		return rc;
	if (rc) {
		r->page_size = mem_page_size_parse(s);
		if (!r->page_size)
			return err_set(
				e, ERR_CONFIG, -EINVAL,
				"%s.page_size: \"%s\" is not known; use \"4K\", \"2M\" or \"1G\"",
				p, s);
	}
	rc = jv_get_bool(o, p, "prefault", &r->prefault, e);
	if (rc < 0)
		return rc;
	rc = jv_get_str(o, p, "policy", s, sizeof(s), e);
	if (rc < 0)
		return rc;
	if (rc) {
		if (mem_policy_parse(s, &r->policy))
			return err_set(
				e, ERR_CONFIG, -EINVAL,
				"%s.policy: \"%s\" is not known; use \"require\", \"prefer\" or "
				"\"off\"",
				p, s);
		r->policy_set = true;
	}
	mc = cJSON_GetObjectItemCaseSensitive(o, "min_coverage");
	if (mc) {
		if (!cJSON_IsNumber(mc))
			return jv_type_err(p, "min_coverage", mc, "a number from 0.0 to 1.0", e);
		if (mc->valuedouble < 0.0 || mc->valuedouble > 1.0)
			return err_set(e, ERR_CONFIG, -ERANGE,
				       "%s.min_coverage: %s is out of range; use 0.0 to 1.0", p,
				       jv_show(mc, b, sizeof(b)));
		r->min_coverage = mc->valuedouble;
		r->min_coverage_set = true;
	}
	rc = jv_get_str(o, p, "path", r->path, sizeof(r->path), e);
	if (rc < 0)
		return rc;
	rc = jv_get_bool(o, p, "dax", &r->require_dax, e);
	if (rc < 0)
		return rc;
	rc = jv_get_str(o, p, "device", r->device, sizeof(r->device), e);
	if (rc < 0)
		return rc;
	rc = jv_get_uint(o, p, "prefault_threads", 0, 64, &v, e);
	if (rc < 0)
		return rc;
	if (rc)
		r->prefault_threads = (unsigned)v;
	rc = jv_get_uint(o, p, "host_offset_kib", 0, SZ_1G >> 10, &v, e);
	if (rc < 0)
		return rc;
	if (rc)
		r->host_offset = v << 10;
	rc = jv_get_str(o, p, "reclaim", s, sizeof(s), e);
	if (rc < 0)
		return rc;
	if (rc && mem_reclaim_cfg_parse(s, &r->reclaim))
		return err_set(e, ERR_CONFIG, -EINVAL,
			       "%s.reclaim: \"%s\" is not known; use \"keep\" (the region keeps "
			       "every page) or \"return\" (whole host pages the guest gives back "
			       "go back to the host)",
			       p, s);
	return 0;
}

static int parse_memory(const cJSON *o, struct vm_config *c, struct vmm_err *e)
{
	static const char *const known[] = {"regions", NULL};
	const cJSON *regs;
	char p[48];
	int i = 0, rc = jv_check_keys(o, "memory", known, e);

	if (rc)
		return rc;
	regs = cJSON_GetObjectItemCaseSensitive(o, "regions");
	if (!regs)
		return jv_missing("memory", "regions", "give a list of regions", e);
	if (!cJSON_IsArray(regs))
		return jv_type_err("memory", "regions", regs, "an array", e);
	if (cJSON_GetArraySize(regs) > MEM_MAX_REGIONS)
		return err_set(e, ERR_CONFIG, -E2BIG, "memory.regions: %d regions; at most %d",
			       cJSON_GetArraySize(regs), MEM_MAX_REGIONS);
	c->has_memory = true;
	for (const cJSON *r = regs->child; r; r = r->next, i++) {
		snprintf(p, sizeof(p), "memory.regions[%d]", i);
		rc = cfg_json_region(r, p, (unsigned)i, &c->regions[i], e);
		if (rc)
			return rc;
	}
	c->nregions = (unsigned)i;
	return 0;
}

static int parse_serial(const cJSON *o, struct vm_config *c, struct vmm_err *e)
{
	int r = jv_validate(o, "serial", fc_serial, e);

	if (r)
		return r;
	r = jv_get_str(o, "serial", "serial_out_path", c->serial_out, sizeof(c->serial_out), e);
	return r < 0 ? r : 0;
}

/* Firecracker's RateLimiter into @rl (already checked against fc_rate_limiter). */
static void rate_limiter(const cJSON *o, struct rl_cfg *rl)
{
	static const char *const names[] = {"bandwidth", "ops"};

	memset(rl, 0, sizeof(*rl));
	if (!cJSON_IsObject(o))
		return;
	rl->set = true;
	for (unsigned i = 0; i < 2; i++) {
		const cJSON *b = cJSON_GetObjectItemCaseSensitive(o, names[i]);
		struct rl_bucket_cfg *bc = i ? &rl->ops : &rl->bandwidth;
		const cJSON *v;

		if (!cJSON_IsObject(b))
			continue;
		*(i ? &rl->has_ops : &rl->has_bandwidth) = true;
		if ((v = cJSON_GetObjectItemCaseSensitive(b, "size")) && cJSON_IsNumber(v))
			bc->size = (uint64_t)v->valuedouble;
		if ((v = cJSON_GetObjectItemCaseSensitive(b, "one_time_burst")) && cJSON_IsNumber(v))
			bc->one_time_burst = (uint64_t)v->valuedouble;
		if ((v = cJSON_GetObjectItemCaseSensitive(b, "refill_time")) && cJSON_IsNumber(v))
			bc->refill_time_ms = (uint64_t)v->valuedouble;
	}
}

int cfg_json_entropy(const cJSON *o, const char *p, struct cfg_entropy *en, struct vmm_err *e)
{
	int r = jv_validate(o, p, fc_entropy, e);

	if (r)
		return r;
	memset(en, 0, sizeof(*en));
	en->set = true;
	rate_limiter(cJSON_GetObjectItemCaseSensitive(o, "rate_limiter"), &en->rate_limiter);
	return 0;
}

int cfg_json_balloon(const cJSON *o, const char *p, struct cfg_balloon *b, struct vmm_err *e)
{
	bool hinting = false;
	uint64_t v;
	int r = jv_validate(o, p, fc_balloon, e);

	if (r)
		return r;
	memset(b, 0, sizeof(*b));
	r = jv_get_bool(o, p, "free_page_hinting", &hinting, e);
	if (r < 0)
		return r;
	if (hinting)
		return err_set(e, ERR_CONFIG, -EOPNOTSUPP,
			       "%s.free_page_hinting: true is not implemented in hugevmm (free "
			       "page hinting is a developer preview in Firecracker); "
			       "free_page_reporting is the supported way to give free guest "
			       "memory back: set \"free_page_reporting\": true and leave "
			       "free_page_hinting false",
			       p);
	/* The table checked presence, types and ranges. */
	r = jv_get_uint(o, p, "amount_mib", 0, UINT32_MAX, &v, e);
	if (r < 0)
		return r;
	b->amount_mib = (unsigned)v;
	r = jv_get_bool(o, p, "deflate_on_oom", &b->deflate_on_oom, e);
	if (r < 0)
		return r;
	v = 0;
	r = jv_get_uint(o, p, "stats_polling_interval_s", 0, FC_BALLOON_STATS_MAX, &v, e);
	if (r < 0)
		return r;
	b->stats_polling_interval_s = (unsigned)v;
	r = jv_get_bool(o, p, "free_page_reporting", &b->free_page_reporting, e);
	if (r < 0)
		return r;
	b->set = true;
	return 0;
}

int cfg_json_vsock(const cJSON *o, const char *p, struct cfg_vsock *v, struct vmm_err *e)
{
	const cJSON *path, *id;
	uint64_t cid = 0;
	char b[64];
	int r = jv_validate(o, p, fc_vsock, e);

	if (r)
		return r;
	memset(v, 0, sizeof(*v));
	/* The table checked presence, types and the CID's range. */
	r = jv_get_uint(o, p, "guest_cid", 3, UINT32_MAX - 1, &cid, e);
	if (r < 0)
		return r;
	v->guest_cid = (uint32_t)cid;
	/* Its length here, to say why it must be short; empty: vm_config_finalize. */
	path = cJSON_GetObjectItemCaseSensitive(o, "uds_path");
	if (strlen(path->valuestring) >= sizeof(v->uds_path))
		return err_set(e, ERR_CONFIG, -ENAMETOOLONG,
			       "%s.uds_path: %s is %zu bytes; a Unix socket's path has at most "
			       "%zu (sun_path): give a shorter path",
			       p, jv_show(path, b, sizeof(b)), strlen(path->valuestring),
			       sizeof(v->uds_path) - 1);
	memcpy(v->uds_path, path->valuestring, strlen(path->valuestring) + 1);
	id = cJSON_GetObjectItemCaseSensitive(o, "vsock_id");
	if (cJSON_IsString(id) && strlen(id->valuestring) >= sizeof(v->id))
		return err_set(e, ERR_CONFIG, -ENAMETOOLONG,
			       "%s.vsock_id: %s is %zu characters; hugevmm keeps at most %zu (the "
			       "id is only reported back): give a shorter one or leave it out",
			       p, jv_show(id, b, sizeof(b)), strlen(id->valuestring),
			       sizeof(v->id) - 1);
	if (cJSON_IsString(id))
		memcpy(v->id, id->valuestring, strlen(id->valuestring) + 1);
	v->set = true;
	return 0;
}

cJSON *cfg_json_render_vsock(const struct cfg_vsock *v)
{
	cJSON *o = cJSON_CreateObject();

	/* Firecracker's Vsock, in its order; vsock_id only when one was given. */
	cJSON_AddNumberToObject(o, "guest_cid", v->guest_cid);
	cJSON_AddStringToObject(o, "uds_path", v->uds_path);
	if (v->id[0])
		cJSON_AddStringToObject(o, "vsock_id", v->id);
	return o;
}

/* Balloon fields PATCH /balloon cannot change, and what does. */
static const struct {
	const char *field, *remedy;
} balloon_fixed[] = {
	{"deflate_on_oom", "set it with PUT /balloon before InstanceStart"},
	{"free_page_reporting", "set it with PUT /balloon before InstanceStart"},
	{"free_page_hinting", "free page hinting is not implemented"},
	{"stats_polling_interval_s", "PATCH /balloon/statistics changes it"},
};

int cfg_json_balloon_update(const cJSON *o, const char *p, uint32_t *amount_mib,
			    struct vmm_err *e)
{
	uint64_t v = 0;
	int r;

	for (size_t i = 0; i < ARRAY_SIZE(balloon_fixed); i++)
		if (cJSON_GetObjectItemCaseSensitive(o, balloon_fixed[i].field))
			return err_set(e, ERR_CONFIG, -EINVAL,
				       "%s.%s: PATCH /balloon changes only amount_mib; %s", p,
				       balloon_fixed[i].field, balloon_fixed[i].remedy);
	r = jv_validate(o, p, fc_balloon_update, e);
	if (r)
		return r;
	r = jv_get_uint(o, p, "amount_mib", 0, UINT32_MAX, &v, e);
	if (r < 0)
		return r;
	*amount_mib = (uint32_t)v;
	return 0;
}

int cfg_json_balloon_stats_update(const cJSON *o, const char *p, uint32_t *interval_s,
				  struct vmm_err *e)
{
	uint64_t v = 0;
	int r = jv_validate(o, p, fc_balloon_stats_update, e);

	if (r)
		return r;
	r = jv_get_uint(o, p, "stats_polling_interval_s", 0, FC_BALLOON_STATS_MAX, &v, e);
	if (r < 0)
		return r;
	*interval_s = (uint32_t)v;
	return 0;
}

cJSON *cfg_json_render_balloon(const struct cfg_balloon *b)
{
	cJSON *o = cJSON_CreateObject();

	/* Firecracker's Balloon, every field, in its order. */
	cJSON_AddNumberToObject(o, "amount_mib", b->amount_mib);
	cJSON_AddBoolToObject(o, "deflate_on_oom", b->deflate_on_oom);
	cJSON_AddNumberToObject(o, "stats_polling_interval_s", b->stats_polling_interval_s);
	cJSON_AddBoolToObject(o, "free_page_hinting", false);
	cJSON_AddBoolToObject(o, "free_page_reporting", b->free_page_reporting);
	return o;
}

cJSON *cfg_json_render_rate_limiter(const struct rl_cfg *rl)
{
	cJSON *o;

	if (!rl->set)
		return NULL;
	o = cJSON_CreateObject();
	for (unsigned i = 0; i < 2; i++) {
		const struct rl_bucket_cfg *bc = i ? &rl->ops : &rl->bandwidth;
		cJSON *b;

		if (!(i ? rl->has_ops : rl->has_bandwidth))
			continue;
		b = cJSON_AddObjectToObject(o, i ? "ops" : "bandwidth");
		cJSON_AddNumberToObject(b, "size", (double)bc->size);
		if (bc->one_time_burst)
			cJSON_AddNumberToObject(b, "one_time_burst", (double)bc->one_time_burst);
		cJSON_AddNumberToObject(b, "refill_time", (double)bc->refill_time_ms);
	}
	return o;
}

int cfg_json_logger(const cJSON *o, const char *p, struct cfg_logger *l, struct vmm_err *e)
{
	enum log_level level = LOG_INFO;
	char lv[16];
	int r = jv_validate(o, p, fc_logger, e);

	if (r)
		return r;
	memset(l, 0, sizeof(*l));
	l->set = true;
	r = jv_get_str(o, p, "log_path", l->path, sizeof(l->path), e);
	r = r < 0 ? r : jv_get_bool(o, p, "show_level", &l->show_level, e);
	r = r < 0 ? r : jv_get_bool(o, p, "show_log_origin", &l->show_origin, e);
	r = r < 0 ? r : jv_get_str(o, p, "level", lv, sizeof(lv), e);
	if (r <= 0)
		return r;
	/* Firecracker's names, any case; Trace is Debug here (hugevmm has no finer level). */
	if (!strcasecmp(lv, "Trace"))
		log_warn("%s.level: \"%s\" is Debug here; hugevmm has no finer level", p, lv);
	l->has_level = !log_level_from_name(lv, &level); /* the table checked the name */
	l->level = (int)level;
	return 0;
}

int cfg_json_metrics(const cJSON *o, const char *p, struct cfg_metrics *m, struct vmm_err *e)
{
	const cJSON *props;
	int r = jv_validate(o, p, fc_metrics, e);

	if (r)
		return r;
	memset(m, 0, sizeof(*m));
	m->set = true;
	r = jv_get_str(o, p, "metrics_path", m->path, sizeof(m->path), e);
	r = r < 0 ? r : jv_get_bool(o, p, "emit_id", &m->emit_id, e);
	if (r < 0)
		return r;
	props = cJSON_GetObjectItemCaseSensitive(o, "properties");
	if (cJSON_IsObject(props) && props->child) {
		char *t = cJSON_PrintUnformatted(props);

		if (!t || strlen(t) >= sizeof(m->properties)) {
			free(t);
			return err_set(e, ERR_CONFIG, -E2BIG,
				       "%s.properties: over %zu bytes of JSON; give fewer or shorter "
				       "properties",
				       p, sizeof(m->properties) - 1);
		}
		memcpy(m->properties, t, strlen(t) + 1);
		free(t);
	}
	return 0;
}

/* An array section of objects, each parsed by @fn into consecutive slots of @base. */
static int parse_list(const cJSON *a, const char *name, unsigned max, unsigned *count,
		      int (*fn)(const cJSON *, const char *, void *, struct vmm_err *), void *base,
		      size_t elem, struct vmm_err *e)
{
	char p[48];
	unsigned i = 0;

	if (!cJSON_IsArray(a))
		return jv_type_err(name, NULL, a, "an array", e);
	if ((unsigned)cJSON_GetArraySize(a) > max)
		return err_set(e, ERR_CONFIG, -E2BIG, "%s: %d entries; at most %u", name,
			       cJSON_GetArraySize(a), max);
	for (const cJSON *o = a->child; o; o = o->next, i++) {
		int rc;

		snprintf(p, sizeof(p), "%s[%u]", name, i);
		rc = fn(o, p, (char *)base + i * elem, e);
		if (rc)
			return rc;
	}
	*count = i;
	return 0;
}

static int drive_fn(const cJSON *o, const char *p, void *d, struct vmm_err *e)
{
	return cfg_json_drive(o, p, d, e);
}

static int net_fn(const cJSON *o, const char *p, void *n, struct vmm_err *e)
{
	return cfg_json_net(o, p, n, e);
}

/* 1-based line and column of @at inside @text. */
int cfg_json_parse(const char *text, size_t len, struct vm_config *c, struct vmm_err *e)
{
	struct vmm_machine m = {0};
	const cJSON *o;
	cJSON *root;
	int rc;

	vm_config_init(c);
	rc = jv_parse(text, len, "config", &root, e);
	if (rc)
		return rc;
	/* The whole file against Firecracker's schema first: every error names its path. */
	rc = jv_validate(root, "", fc_config, e);
	if (rc)
		goto out;
	if ((o = section(root, "boot-source")) && (rc = cfg_json_boot(o, "boot-source", c, e)))
		goto out;
	if ((o = section(root, "machine-config")) &&
	    (rc = parse_machine(o, c, &m, e)))
		goto out;
	if ((o = section(root, "logger")) && (rc = cfg_json_logger(o, "logger", &c->logger, e)))
		goto out;
	if ((o = section(root, "metrics")) && (rc = cfg_json_metrics(o, "metrics", &c->metrics, e)))
		goto out;
	if ((o = section(root, "entropy")) && (rc = cfg_json_entropy(o, "entropy", &c->entropy, e)))
		goto out;
	if ((o = section(root, "balloon")) && (rc = cfg_json_balloon(o, "balloon", &c->balloon, e)))
		goto out;
	if ((o = section(root, "vsock")) && (rc = cfg_json_vsock(o, "vsock", &c->vsock, e)))
		goto out;
	if ((o = section(root, "drives")) && cJSON_IsArray(o) &&
	    cJSON_GetArraySize(o) > CFG_MAX_DRIVES) {
		rc = err_set(e, ERR_CONFIG, -E2BIG,
			     "drives: %d drives; at most %d (" CFG_DRIVES_WHY "): give fewer",
			     cJSON_GetArraySize(o), CFG_MAX_DRIVES);
		goto out;
	}
	if ((o = section(root, "drives")) &&
	    (rc = parse_list(o, "drives", CFG_MAX_DRIVES, &c->ndrives, drive_fn, c->drives,
			     sizeof(c->drives[0]), e)))
		goto out;
	if ((o = section(root, "network-interfaces")) &&
	    (rc = parse_list(o, "network-interfaces", CFG_MAX_NETS, &c->nnets, net_fn, c->nets,
			     sizeof(c->nets[0]), e)))
		goto out;
	if ((o = section(root, "serial")) && (rc = parse_serial(o, c, e)))
		goto out;
	if ((o = section(root, "memory")) && (rc = parse_memory(o, c, e)))
		goto out;
	/* Firecracker requires both; with a memory section, RAM is defined there. */
	if (section(root, "machine-config") && !c->has_memory && (!m.has_vcpus || !m.has_mem)) {
		rc = err_set(e, ERR_CONFIG, -EINVAL,
			     "machine-config.%s: missing; Firecracker requires vcpu_count and "
			     "mem_size_mib in machine-config (or define RAM in a \"memory\" "
			     "section)",
			     m.has_vcpus ? "mem_size_mib" : "vcpu_count");
		goto out;
	}
	warn_missing(root);
out:
	cJSON_Delete(root);
	return rc;
}

int cfg_json_load(const char *path, struct vm_config *c, struct vmm_err *e)
{
	struct stat st;
	char *buf;
	ssize_t n = 0;
	size_t got = 0;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_set(e, ERR_CONFIG, -errno, "--config-file: cannot open \"%s\": %s", path,
			       strerror(errno));
	if (fstat(fd, &st) || S_ISDIR(st.st_mode)) {
		int err = S_ISDIR(st.st_mode) ? EISDIR : errno;

		close(fd);
		return err_set(e, ERR_CONFIG, -err, "--config-file: \"%s\": %s", path,
			       err == EISDIR ? "is a directory" : strerror(err));
	}
	/* Pipes and /dev/stdin work too: read to EOF, at most CFG_FILE_MAX bytes. */
	buf = malloc(CFG_FILE_MAX + 1);
	if (!buf) {
		close(fd);
		return err_set(e, ERR_RUNTIME, -ENOMEM, "out of memory reading \"%s\"", path);
	}
	while (got <= CFG_FILE_MAX && (n = read(fd, buf + got, CFG_FILE_MAX + 1 - got)) > 0)
		got += (size_t)n;
	close(fd);
	if (n < 0 || got > CFG_FILE_MAX) {
		free(buf);
		return err_set(e, ERR_CONFIG, n < 0 ? -errno : -EFBIG, "--config-file: \"%s\" %s",
			       path, n < 0 ? "cannot be read" : "is over 1 MiB; configs are small");
	}
	buf[got] = '\0';
	rc = cfg_json_parse(buf, got, c, e);
	free(buf);
	if (rc && e->kind == ERR_CONFIG && !strncmp(e->msg, "config:", 7)) {
		char tmp[sizeof(e->msg)];

		snprintf(tmp, sizeof(tmp), "%s: %s", path, e->msg + 8);
		snprintf(e->msg, sizeof(e->msg), "%s", tmp);
	}
	return rc;
}

static const char *huge_name(enum cfg_huge_pages h)
{
	switch (h) {
	case CFG_HUGE_NONE:
		return "None";
	case CFG_HUGE_TRANSPARENT:
		return "Transparent";
	case CFG_HUGE_2M:
		return "2M";
	case CFG_HUGE_UNSET:
		break;
	}
	return NULL;
}

cJSON *cfg_json_render_machine(const struct vm_config *c)
{
	cJSON *m = cJSON_CreateObject();
	const char *hp = huge_name(c->huge_pages);

	cJSON_AddNumberToObject(m, "vcpu_count", c->vcpus);
	/* The RAM the guest gets: the regions' total once a memory section defines it. */
	cJSON_AddNumberToObject(
		m, "mem_size_mib",
		c->nregions ? (double)(vm_config_ram_bytes(c) >> 20)
			    : (double)(c->mem_size_mib ? c->mem_size_mib : CFG_DEFAULT_MEM_MIB));
	cJSON_AddBoolToObject(m, "smt", false);
	cJSON_AddBoolToObject(m, "track_dirty_pages", false);
	if (hp)
		cJSON_AddStringToObject(m, "huge_pages", hp);
	if (c->virtio_cmdline == CFG_VIRTIO_CMDLINE_NEVER)
		cJSON_AddStringToObject(m, "virtio_cmdline", "never");
	return m;
}

static cJSON *render_region(const struct mem_region_cfg *r)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "id", r->id);
	cJSON_AddNumberToObject(o, "size_mib", (double)(r->size >> 20));
	cJSON_AddStringToObject(o, "backing", mem_backing_name(r->backing));
	if (r->page_size)
		cJSON_AddStringToObject(o, "page_size", page_size_name(r->page_size));
	cJSON_AddBoolToObject(o, "prefault", r->prefault);
	if (r->policy_set || r->page_size)
		cJSON_AddStringToObject(o, "policy", mem_policy_name(r->policy));
	cJSON_AddNumberToObject(o, "min_coverage", r->min_coverage);
	if (r->path[0])
		cJSON_AddStringToObject(o, "path", r->path);
	if (r->require_dax)
		cJSON_AddBoolToObject(o, "dax", true);
	if (r->device[0])
		cJSON_AddStringToObject(o, "device", r->device);
	if (r->prefault_threads)
		cJSON_AddNumberToObject(o, "prefault_threads", r->prefault_threads);
	if (r->host_offset)
		cJSON_AddNumberToObject(o, "host_offset_kib", (double)(r->host_offset >> 10));
	/* Absent when not given and not finalized (GET /vm/config of an invalid configuration). */
	if (r->reclaim != MEM_RECLAIM_CFG_DEFAULT)
		cJSON_AddStringToObject(o, "reclaim", mem_reclaim_cfg_name(r->reclaim));
	return o;
}

cJSON *cfg_json_render_drive(const struct cfg_drive *dr)
{
	cJSON *d = cJSON_CreateObject(), *rl = cfg_json_render_rate_limiter(&dr->rate_limiter);

	/* Firecracker's Drive, every field, in its order; then hugevmm's "direct". */
	cJSON_AddStringToObject(d, "drive_id", dr->id);
	if (dr->partuuid[0])
		cJSON_AddStringToObject(d, "partuuid", dr->partuuid);
	else
		cJSON_AddNullToObject(d, "partuuid");
	cJSON_AddBoolToObject(d, "is_root_device", dr->root);
	cJSON_AddStringToObject(d, "cache_type",
				dr->cache == CFG_CACHE_WRITEBACK ? "Writeback" : "Unsafe");
	cJSON_AddBoolToObject(d, "is_read_only", dr->read_only);
	cJSON_AddStringToObject(d, "path_on_host", dr->path);
	if (rl)
		cJSON_AddItemToObject(d, "rate_limiter", rl);
	cJSON_AddStringToObject(d, "io_engine", dr->io_engine == CFG_IO_ASYNC ? "Async" : "Sync");
	cJSON_AddBoolToObject(d, "direct", dr->direct);
	return d;
}

cJSON *cfg_json_render_net(const struct cfg_net *n)
{
	cJSON *o = cJSON_CreateObject(), *rl;

	/* Firecracker's NetworkInterface, in its order; the MAC too when it was generated. */
	cJSON_AddStringToObject(o, "iface_id", n->id);
	cJSON_AddStringToObject(o, "host_dev_name", n->host_dev);
	if (n->mac[0])
		cJSON_AddStringToObject(o, "guest_mac", n->mac);
	if (n->mtu)
		cJSON_AddNumberToObject(o, "mtu", n->mtu);
	if ((rl = cfg_json_render_rate_limiter(&n->rx_rate_limiter)))
		cJSON_AddItemToObject(o, "rx_rate_limiter", rl);
	if ((rl = cfg_json_render_rate_limiter(&n->tx_rate_limiter)))
		cJSON_AddItemToObject(o, "tx_rate_limiter", rl);
	return o;
}

cJSON *cfg_json_render(const struct vm_config *c)
{
	cJSON *o = cJSON_CreateObject(), *a;

	if (c->has_boot) {
		cJSON *b = cJSON_AddObjectToObject(o, "boot-source");

		cJSON_AddStringToObject(b, "kernel_image_path", c->kernel);
		cJSON_AddStringToObject(b, "boot_args", c->cmdline);
		if (c->initrd[0])
			cJSON_AddStringToObject(b, "initrd_path", c->initrd);
		if (c->boot_protocol != KERNEL_PROTO_AUTO)
			cJSON_AddStringToObject(b, "boot_protocol",
						kernel_proto_name(c->boot_protocol));
	}
	cJSON_AddItemToObject(o, "machine-config", cfg_json_render_machine(c));
	a = cJSON_AddArrayToObject(o, "drives");
	for (unsigned i = 0; i < c->ndrives; i++)
		cJSON_AddItemToArray(a, cfg_json_render_drive(&c->drives[i]));
	a = cJSON_AddArrayToObject(o, "network-interfaces");
	for (unsigned i = 0; i < c->nnets; i++)
		cJSON_AddItemToArray(a, cfg_json_render_net(&c->nets[i]));
	if (c->balloon.set)
		cJSON_AddItemToObject(o, "balloon", cfg_json_render_balloon(&c->balloon));
	if (c->vsock.set)
		cJSON_AddItemToObject(o, "vsock", cfg_json_render_vsock(&c->vsock));
	if (c->serial_out[0])
		cJSON_AddStringToObject(cJSON_AddObjectToObject(o, "serial"), "serial_out_path",
					c->serial_out);
	if (c->entropy.set) {
		cJSON *en = cJSON_AddObjectToObject(o, "entropy");
		cJSON *rl = cfg_json_render_rate_limiter(&c->entropy.rate_limiter);

		if (rl)
			cJSON_AddItemToObject(en, "rate_limiter", rl);
	}
	if (c->nregions) {
		a = cJSON_AddArrayToObject(cJSON_AddObjectToObject(o, "memory"), "regions");
		for (unsigned i = 0; i < c->nregions; i++)
			cJSON_AddItemToArray(a, render_region(&c->regions[i]));
	}
	return o;
}
