#include "vmm/machine.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

void machine_init(struct machine *m, unsigned vcpus)
{
	memset(m, 0, sizeof(*m));
	m->vcpus = vcpus;
}

/* The n-th free interrupt line: 5, 6, 7, 9, 10, ... 23 (8 is the RTC's). */
static int gsi_of(unsigned n)
{
	unsigned gsi = 5 + n;

	if (gsi >= MACHINE_RTC_IRQ)
		gsi++;
	return gsi <= 23 ? (int)gsi : -ENOSPC;
}

int machine_add_virtio(struct machine *m, uint32_t device_id, const char *name,
		       unsigned cfg, const struct machine_virtio **out)
{
	struct machine_virtio *v;
	int gsi = gsi_of(m->nvirtio);

	if (m->nvirtio >= MACHINE_VIRTIO_MAX || gsi < 0)
		return -ENOSPC;
	v = &m->virtio[m->nvirtio];
	v->device_id = device_id;
	snprintf(v->name, sizeof(v->name), "%s", name);
	v->base = MACHINE_VIRTIO_BASE + (uint64_t)m->nvirtio * MACHINE_VIRTIO_SIZE;
	v->gsi = (unsigned)gsi;
	v->cfg = cfg;
	m->nvirtio++;
	if (out)
		*out = v;
	return 0;
}

int machine_virtio_cmdline(const struct machine *m, char *cmdline, size_t size)
{
	size_t len = strlen(cmdline);

	for (unsigned i = 0; i < m->nvirtio; i++) {
		int n = snprintf(cmdline + len, size - len, "%svirtio_mmio.device=4K@0x%llx:%u",
				 len ? " " : "", (unsigned long long)m->virtio[i].base,
				 m->virtio[i].gsi);

		if (n < 0 || (size_t)n >= size - len) {
			cmdline[len] = '\0';
			return -E2BIG;
		}
		len += (size_t)n;
	}
	return 0;
}
