#include "memory/dax.h"

#include <daxctl/libdaxctl.h>
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

/*
 * libdaxctl is opened on first use, not linked: it pulls in libkmod and with
 * it libcrypto, zstd and lzma (about 2 MiB resident), which every VM without
 * DAX memory would otherwise carry.
 */
#define DAXCTL_SONAME "libdaxctl.so.1"

static struct {
	__typeof__(daxctl_new) *new_;
	__typeof__(daxctl_unref) *unref;
	__typeof__(daxctl_set_log_priority) *set_log_priority;
	__typeof__(daxctl_region_get_first) *region_first;
	__typeof__(daxctl_region_get_next) *region_next;
	__typeof__(daxctl_dev_get_first) *dev_first;
	__typeof__(daxctl_dev_get_next) *dev_next;
	__typeof__(daxctl_dev_get_devname) *devname;
	__typeof__(daxctl_dev_get_size) *size;
	__typeof__(daxctl_dev_get_align) *align;
	__typeof__(daxctl_dev_is_enabled) *is_enabled;
	__typeof__(daxctl_dev_get_memory) *memory;
} lib;
static int lib_err;

static void lib_load(void)
{
	void *h = dlopen(DAXCTL_SONAME, RTLD_NOW | RTLD_LOCAL);
	void **slot = (void **)&lib;
	static const char *const names[] = {
		"daxctl_new",
		"daxctl_unref",
		"daxctl_set_log_priority",
		"daxctl_region_get_first",
		"daxctl_region_get_next",
		"daxctl_dev_get_first",
		"daxctl_dev_get_next",
		"daxctl_dev_get_devname",
		"daxctl_dev_get_size",
		"daxctl_dev_get_align",
		"daxctl_dev_is_enabled",
		"daxctl_dev_get_memory",
	};

	_Static_assert(sizeof(lib) == sizeof(names) / sizeof(names[0]) * sizeof(void *),
		       "one name per libdaxctl entry point");
	if (!h) {
		lib_err = -ENOENT;
		return;
	}
	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		slot[i] = dlsym(h, names[i]);
		if (!slot[i]) {
			lib_err = -ENOSYS;
			return;
		}
	}
}

static atomic_bool no_load;

void dax_forbid_load(void)
{
	atomic_store(&no_load, true);
}

static void lib_load_if_allowed(void)
{
	if (atomic_load(&no_load))
		lib_err = -EPERM;
	else
		lib_load();
}

static int lib_ready(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, lib_load_if_allowed);
	return lib_err;
}

const char *dax_lib_error(int err)
{
	if (err == -ENOENT)
		return DAXCTL_SONAME " is not installed (Debian package libdaxctl1)";
	if (err == -EPERM)
		return DAXCTL_SONAME " was not loaded before the VMM thread was confined (it loads "
		       "no library after that); GET /host before InstanceStart lists DAX devices";
	if (err == -ENOSYS)
		return DAXCTL_SONAME " lacks a function hugevmm needs";
	return strerror(-err);
}

static void fill(struct daxctl_dev *dev, struct dax_dev_info *d)
{
	memset(d, 0, sizeof(*d));
	snprintf(d->name, sizeof(d->name), "%s", lib.devname(dev));
	d->size = lib.size(dev);
	d->align = lib.align(dev);
	d->enabled = lib.is_enabled(dev);
	/* A device bound to kmem (system-ram mode) carries a memory object. */
	d->devdax = d->enabled && !lib.memory(dev);
}

/* Walk every device; @cb returns nonzero to stop, which walk() returns. */
static int walk(int (*cb)(struct daxctl_dev *dev, void *arg), void *arg)
{
	struct daxctl_region *region;
	struct daxctl_dev *dev;
	struct daxctl_ctx *ctx;
	int r = lib_ready();

	if (r)
		return r;
	r = lib.new_(&ctx);
	if (r < 0)
		return r;
	/* libdaxctl logs to stderr by default; hugevmm reports errors itself. */
	lib.set_log_priority(ctx, 0);
	r = 0;
	for (region = lib.region_first(ctx); region && !r; region = lib.region_next(region))
		for (dev = lib.dev_first(region); dev && !r; dev = lib.dev_next(dev))
			r = cb(dev, arg);
	lib.unref(ctx);
	return r;
}

struct list_arg {
	struct dax_dev_info *out;
	unsigned max, n;
};

static int list_cb(struct daxctl_dev *dev, void *arg)
{
	struct list_arg *a = arg;

	if (a->n < a->max)
		fill(dev, &a->out[a->n++]);
	return 0;
}

int dax_list(struct dax_dev_info *out, unsigned max)
{
	struct list_arg a = {.out = out, .max = max};
	int r = walk(list_cb, &a);

	return r < 0 ? r : (int)a.n;
}

struct find_arg {
	const char *name;
	struct dax_dev_info *out;
};

static int find_cb(struct daxctl_dev *dev, void *arg)
{
	struct find_arg *a = arg;

	if (strcmp(lib.devname(dev), a->name))
		return 0;
	fill(dev, a->out);
	return 1;
}

int dax_find(const char *name, struct dax_dev_info *out)
{
	struct find_arg a = {.name = name, .out = out};
	int r;

	if (!strncmp(name, "/dev/", 5))
		a.name = name + 5;
	r = walk(find_cb, &a);
	if (r < 0)
		return r;
	return r == 1 ? 0 : -ENOENT;
}
