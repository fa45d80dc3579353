#include "api/config_json.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/json_util.h"
#include "common/log.h"

int cfg_json_boot(const cJSON *o, const char *p, struct vm_config *c, struct vmm_err *e)
{
	static const char *const known[] = {"kernel_image_path", "boot_args", "initrd_path",
					    "boot_protocol", NULL};
	char proto[16];
	int r = jv_check_keys(o, p, known, NULL, e);

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
	static const char *const known[] = {"vcpu_count", "mem_size_mib", "huge_pages", NULL};
	static const char *const ignored[] = {"smt", "track_dirty_pages", "cpu_template", NULL};
	char hp[16];
	uint64_t v;
	int r = jv_check_keys(o, p, known, ignored, e);

	memset(m, 0, sizeof(*m));
	if (r)
		return r;
	r = jv_get_uint(o, p, "vcpu_count", 1, CFG_MAX_VCPUS, &v, e);
	if (r < 0)
		return r;
	m->has_vcpus = r;
	m->vcpus = (unsigned)v;
	r = jv_get_uint(o, p, "mem_size_mib", 1, MEM_MAX_SIZE >> 20, &v, e);
	if (r < 0)
		return r;
	m->has_mem = r;
	m->mem_mib = (unsigned)v;
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

static int parse_machine(const cJSON *o, struct vm_config *c, struct vmm_err *e)
{
	struct vmm_machine m;
	int r = cfg_json_machine(o, "machine-config", &m, e);

	if (r)
		return r;
	if (m.has_vcpus)
		c->vcpus = m.vcpus;
	if (m.has_mem)
		c->mem_size_mib = m.mem_mib;
	if (m.has_huge)
		c->huge_pages = m.huge;
	return 0;
}

int cfg_json_drive(const cJSON *o, const char *p, struct cfg_drive *d, struct vmm_err *e)
{
	static const char *const known[] = {"drive_id", "path_on_host", "is_root_device",
					    "is_read_only", NULL};
	static const char *const ignored[] = {"partuuid", "cache_type", "io_engine", "rate_limiter",
					      NULL};
	int r = jv_check_keys(o, p, known, ignored, e);

	if (r)
		return r;
	r = jv_get_str(o, p, "drive_id", d->id, sizeof(d->id), e);
	if (r == 0)
		return jv_missing(p, "drive_id", "give the drive a name", e);
	if (r < 0)
		return r;
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
	return r < 0 ? r : 0;
}

static bool mac_valid(const char *m)
{
	if (strlen(m) != 17)
		return false;
	for (int i = 0; i < 17; i++) {
		char ch = m[i];

		if (i % 3 == 2 ? ch != ':'
			       : !((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') ||
				   (ch >= 'A' && ch <= 'F')))
			return false;
	}
	return true;
}

int cfg_json_net(const cJSON *o, const char *p, struct cfg_net *n, struct vmm_err *e)
{
	static const char *const known[] = {"iface_id", "host_dev_name", "guest_mac", NULL};
	static const char *const ignored[] = {"rx_rate_limiter", "tx_rate_limiter", NULL};
	int r = jv_check_keys(o, p, known, ignored, e);

	if (r)
		return r;
	r = jv_get_str(o, p, "iface_id", n->id, sizeof(n->id), e);
	if (r == 0)
		return jv_missing(p, "iface_id", "give the interface a name", e);
	if (r < 0)
		return r;
	r = jv_get_str(o, p, "host_dev_name", n->host_dev, sizeof(n->host_dev), e);
	if (r == 0)
		return jv_missing(p, "host_dev_name", "give the host tap device", e);
	if (r < 0)
		return r;
	r = jv_get_str(o, p, "guest_mac", n->mac, sizeof(n->mac), e);
	if (r < 0)
		return r;
	if (r && !mac_valid(n->mac))
		return err_set(e, ERR_CONFIG, -EINVAL,
			       "%s.guest_mac: \"%s\" is not a MAC address; write it as "
			       "\"06:00:ac:10:00:02\"",
			       p, n->mac);
	return 0;
}

int cfg_json_region(const cJSON *o, const char *p, unsigned index, struct mem_region_cfg *r,
		    struct vmm_err *e)
{
	static const char *const known[] = {
		"id",       "size_mib",         "backing",         "page_size",
		"prefault", "policy",           "min_coverage",    "path",
		"device",   "prefault_threads", "host_offset_kib", "dax",
		NULL};
	char id[MEM_ID_MAX + 1] = "", s[32], b[64];
	enum mem_backing backing;
	uint64_t v;
	int rc = jv_check_keys(o, p, known, NULL, e);
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
	return 0;
}

static int parse_memory(const cJSON *o, struct vm_config *c, struct vmm_err *e)
{
	static const char *const known[] = {"regions", NULL};
	const cJSON *regs;
	char p[48];
	int i = 0, rc = jv_check_keys(o, "memory", known, NULL, e);

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
	static const char *const known[] = {"serial_out_path", NULL};
	int r = jv_check_keys(o, "serial", known, NULL, e);

	if (r)
		return r;
	r = jv_get_str(o, "serial", "serial_out_path", c->serial_out, sizeof(c->serial_out), e);
	return r < 0 ? r : 0;
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
	static const char *const known[] = {
		"boot-source", "machine-config", "drives", "network-interfaces",
		"memory",      "serial",         NULL};
	static const char *const ignored[] = {"logger", "metrics", "mmds-config", "balloon",
					      "vsock",  "entropy", "cpu-config",  NULL};
	const cJSON *o;
	cJSON *root;
	int rc;

	vm_config_init(c);
	rc = jv_parse(text, len, "config", &root, e);
	if (rc)
		return rc;
	rc = jv_check_keys(root, "", known, ignored, e);
	if (rc)
		goto out;
	if ((o = cJSON_GetObjectItemCaseSensitive(root, "boot-source")) &&
	    (rc = cfg_json_boot(o, "boot-source", c, e)))
		goto out;
	if ((o = cJSON_GetObjectItemCaseSensitive(root, "machine-config")) &&
	    (rc = parse_machine(o, c, e)))
		goto out;
	if ((o = cJSON_GetObjectItemCaseSensitive(root, "drives")) &&
	    (rc = parse_list(o, "drives", CFG_MAX_DRIVES, &c->ndrives, drive_fn, c->drives,
			     sizeof(c->drives[0]), e)))
		goto out;
	if ((o = cJSON_GetObjectItemCaseSensitive(root, "network-interfaces")) &&
	    (rc = parse_list(o, "network-interfaces", CFG_MAX_NETS, &c->nnets, net_fn, c->nets,
			     sizeof(c->nets[0]), e)))
		goto out;
	if ((o = cJSON_GetObjectItemCaseSensitive(root, "serial")) && (rc = parse_serial(o, c, e)))
		goto out;
	if ((o = cJSON_GetObjectItemCaseSensitive(root, "memory")))
		rc = parse_memory(o, c, e);
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
	for (unsigned i = 0; i < c->ndrives; i++) {
		cJSON *d = cJSON_CreateObject();

		cJSON_AddStringToObject(d, "drive_id", c->drives[i].id);
		cJSON_AddStringToObject(d, "path_on_host", c->drives[i].path);
		cJSON_AddBoolToObject(d, "is_root_device", c->drives[i].root);
		cJSON_AddBoolToObject(d, "is_read_only", c->drives[i].read_only);
		cJSON_AddItemToArray(a, d);
	}
	a = cJSON_AddArrayToObject(o, "network-interfaces");
	for (unsigned i = 0; i < c->nnets; i++) {
		cJSON *n = cJSON_CreateObject();

		cJSON_AddStringToObject(n, "iface_id", c->nets[i].id);
		cJSON_AddStringToObject(n, "host_dev_name", c->nets[i].host_dev);
		if (c->nets[i].mac[0])
			cJSON_AddStringToObject(n, "guest_mac", c->nets[i].mac);
		cJSON_AddItemToArray(a, n);
	}
	if (c->serial_out[0])
		cJSON_AddStringToObject(cJSON_AddObjectToObject(o, "serial"), "serial_out_path",
					c->serial_out);
	if (c->nregions) {
		a = cJSON_AddArrayToObject(cJSON_AddObjectToObject(o, "memory"), "regions");
		for (unsigned i = 0; i < c->nregions; i++)
			cJSON_AddItemToArray(a, render_region(&c->regions[i]));
	}
	return o;
}
