#include "vmm/machine_cfg.h"

#include <errno.h>
#include <linux/virtio_ids.h>
#include <stdio.h>

static int no_room(const char *what, struct vmm_err *e)
{
	return err_set(e, ERR_CONFIG, -ENOSPC,
		       "%s: no virtio-mmio window or interrupt line is left (the machine has %d "
		       "lines for virtio devices); give the VM fewer devices",
		       what, MACHINE_VIRTIO_GSIS);
}

int machine_from_config(const struct vm_config *c, struct machine *m, struct vmm_err *e)
{
	machine_init(m, c->vcpus);
	/*
	 * virtio devices in a stable order: entropy, then the root drive, then the
	 * other drives as the config lists them (so the root device is /dev/vda:
	 * Linux names disks in the order it probes them), then the network
	 * interfaces as listed (eth0 first), then the balloon, then the vsock.
	 */
	if (c->entropy.set && machine_add_virtio(m, VIRTIO_ID_RNG, "entropy", 0, NULL))
		return no_room("entropy", e);
	for (int pass = 0; pass < 2; pass++)
		for (unsigned i = 0; i < c->ndrives; i++) {
			char what[96];

			if (c->drives[i].root != !pass)
				continue;
			if (!machine_add_virtio(m, VIRTIO_ID_BLOCK, c->drives[i].id, i, NULL))
				continue;
			snprintf(what, sizeof(what), "drives[%u] (\"%s\")", i, c->drives[i].id);
			return no_room(what, e);
		}
	for (unsigned i = 0; i < c->nnets; i++) {
		char what[112];

		if (!machine_add_virtio(m, VIRTIO_ID_NET, c->nets[i].id, i, NULL))
			continue;
		snprintf(what, sizeof(what), "network-interfaces[%u] (\"%s\")", i, c->nets[i].id);
		return no_room(what, e);
	}
	if (c->balloon.set && machine_add_virtio(m, VIRTIO_ID_BALLOON, "balloon", 0, NULL))
		return no_room("balloon", e);
	if (c->vsock.set && machine_add_virtio(m, VIRTIO_ID_VSOCK, "vsock", 0, NULL))
		return no_room("vsock", e);
	return 0;
}
