/* Device DAX discovery through libdaxctl. */
#ifndef HUGEVMM_MEMORY_DAX_H
#define HUGEVMM_MEMORY_DAX_H

#include <stdbool.h>
#include <stdint.h>

struct dax_dev_info {
	char name[32];  /* "dax0.0" */
	uint64_t size;  /* bytes */
	uint64_t align; /* fault granularity: 4K, 2M or 1G */
	bool enabled;
	bool devdax; /* devdax mode (false: system-ram via kmem) */
};

/* Text for a negative errno from dax_list()/dax_find() when libdaxctl itself is the cause. */
const char *dax_lib_error(int err);

/* List up to @max devices into @out. Returns the count or -errno. */
/*
 * From now on libdaxctl is never loaded (a confined thread maps no new code):
 * dax_list()/dax_find() fail with -EPERM unless it was loaded already.
 */
void dax_forbid_load(void);

int dax_list(struct dax_dev_info *out, unsigned max);

/*
 * Find device @name ("dax0.0" or "/dev/dax0.0"). Returns 0, -ENOENT when no
 * such device exists, or another -errno when libdaxctl fails.
 */
int dax_find(const char *name, struct dax_dev_info *out);

#endif
