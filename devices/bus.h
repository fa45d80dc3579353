/*
 * One bus type for port I/O and MMIO, keyed by (base, len). Regions are
 * registered before vCPUs start and never change after, so lookups take no
 * lock; devices guard their own state.
 */
#ifndef HUGEVMM_DEVICES_BUS_H
#define HUGEVMM_DEVICES_BUS_H

#include <stdbool.h>
#include <stdint.h>

#include "common/util.h"
#include "devices/dev.h"

#define BUS_MAX_REGIONS 64

struct bus_region {
	uint64_t base, len;
	struct dev *dev;
};

struct bus {
	const char *name; /* "pio" or "mmio", for messages */
	struct bus_region r[BUS_MAX_REGIONS];
	unsigned n;
};

/* Claim [base, base+len) for @d. -EINVAL for zero length or wrap, -EBUSY on overlap, -ENOSPC when
 * full. */
int bus_register(struct bus *b, uint64_t base, uint64_t len, struct dev *d) must_check;

/*
 * Dispatch a guest access. The device gets the offset into its region.
 * Returns false when nothing claims the whole access [addr, addr+len).
 */
bool bus_access(struct bus *b, uint64_t addr, void *data, unsigned len, bool write);

/* Call every device's reset (if any). */
void bus_reset(struct bus *b);

/* Call every device's exit (if any), once per device, and empty the bus. */
void bus_exit(struct bus *b);

#endif
