#include "vmm/machine_cfg.h"

int machine_from_config(const struct vm_config *c, struct machine *m, struct vmm_err *e)
{
	(void)e; /* virtio devices (entropy, drives, nets) will be added here, in this order */
	machine_init(m, c->vcpus);
	return 0;
}
