/*
 * The machine a configuration describes: the one place that turns a
 * struct vm_config into a struct machine, for vm_create and for
 * `hugevmm acpi` alike, so both see the same devices in the same order.
 */
#ifndef HUGEVMM_VMM_MACHINE_CFG_H
#define HUGEVMM_VMM_MACHINE_CFG_H

#include "common/err.h"
#include "vmm/config.h"
#include "vmm/machine.h"

/*
 * Fill @m from @c (finalized): its vCPUs, then its virtio devices in a
 * stable order. ERR_CONFIG when the devices do not fit the machine.
 */
int machine_from_config(const struct vm_config *c, struct machine *m, struct vmm_err *e) must_check;

#endif
