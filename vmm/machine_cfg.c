#include "vmm/machine_cfg.h"

#include <errno.h>
#include <linux/virtio_ids.h>

int machine_from_config(const struct vm_config *c, struct machine *m, struct vmm_err *e)
{
	machine_init(m, c->vcpus);
	/* virtio devices in a stable order: entropy, then (later) drives and interfaces. */
	if (c->entropy.set && machine_add_virtio(m, VIRTIO_ID_RNG, "entropy", NULL))
		return err_set(e, ERR_CONFIG, -ENOSPC,
			       "entropy: no virtio-mmio window or interrupt line is left; give the "
			       "VM fewer devices");
	return 0;
}
