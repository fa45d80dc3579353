#include "memory/dax.h"

#include <daxctl/libdaxctl.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

static void fill(struct daxctl_dev *dev, struct dax_dev_info *d)
{
	memset(d, 0, sizeof(*d));
	snprintf(d->name, sizeof(d->name), "%s", daxctl_dev_get_devname(dev));
	d->size = daxctl_dev_get_size(dev);
	d->align = daxctl_dev_get_align(dev);
	d->enabled = daxctl_dev_is_enabled(dev);
	/* A device bound to kmem (system-ram mode) carries a memory object. */
	d->devdax = d->enabled && !daxctl_dev_get_memory(dev);
}

/* Walk every device; @cb returns nonzero to stop, which walk() returns. */
static int walk(int (*cb)(struct daxctl_dev *dev, void *arg), void *arg)
{
	struct daxctl_region *region;
	struct daxctl_dev *dev;
	struct daxctl_ctx *ctx;
	int r = daxctl_new(&ctx);

	if (r < 0)
		return r;
	/* libdaxctl logs to stderr by default; hugevmm reports errors itself. */
	daxctl_set_log_priority(ctx, 0);
	r = 0;
	daxctl_region_foreach(ctx, region)
	{
		daxctl_dev_foreach(region, dev)
		{
			r = cb(dev, arg);
			if (r)
				goto out;
		}
	}
out:
	daxctl_unref(ctx);
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

	if (strcmp(daxctl_dev_get_devname(dev), a->name))
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
