/* The KVM backend of the hypervisor boundary (vmm/hv.h). */
#ifndef HUGEVMM_VMM_KVM_H
#define HUGEVMM_VMM_KVM_H

#include "vmm/hv.h"

#define KVM_DEVICE "/dev/kvm"

/* Probe /dev/kvm without creating a VM (also kvm_hv_ops.probe). Never fails. */
void kvm_probe(struct hv_probe *p);

#endif
