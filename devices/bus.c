#include "devices/bus.h"

#include <errno.h>
#include <string.h>

int bus_register(struct bus *b, uint64_t base, uint64_t len, struct dev *d)
{
	if (len == 0 || base + len < base)
		return -EINVAL;
	if (b->n == BUS_MAX_REGIONS)
		return -ENOSPC;
	for (unsigned i = 0; i < b->n; i++) {
		const struct bus_region *r = &b->r[i];

		if (base < r->base + r->len && r->base < base + len)
			return -EBUSY;
	}
	b->r[b->n++] = (struct bus_region){.base = base, .len = len, .dev = d};
	return 0;
}

bool bus_access(struct bus *b, uint64_t addr, void *data, unsigned len, bool write)
{
	if (len == 0 || addr + len < addr)
		return false;
	for (unsigned i = 0; i < b->n; i++) {
		const struct bus_region *r = &b->r[i];

		if (addr < r->base || addr - r->base >= r->len)
			continue;
		/* The whole access must fit: a straddling access is nobody's. */
		if (len > r->len - (addr - r->base))
			return false;
		if (write) {
			if (r->dev->ops->write)
				r->dev->ops->write(r->dev, addr - r->base, data, len);
		} else if (r->dev->ops->read) {
			r->dev->ops->read(r->dev, addr - r->base, data, len);
		} else {
			memset(data, 0xff, len);
		}
		return true;
	}
	return false;
}

void bus_reset(struct bus *b)
{
	for (unsigned i = 0; i < b->n; i++)
		if (b->r[i].dev->ops->reset)
			b->r[i].dev->ops->reset(b->r[i].dev);
}

void bus_exit(struct bus *b)
{
	for (unsigned i = 0; i < b->n; i++) {
		struct dev *d = b->r[i].dev;
		bool seen = false;

		/* A device with several regions is exited once. */
		for (unsigned j = 0; j < i; j++)
			seen |= b->r[j].dev == d;
		if (!seen && d->ops->exit)
			d->ops->exit(d);
	}
	b->n = 0;
}
