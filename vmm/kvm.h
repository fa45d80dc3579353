/* The KVM backend of the hypervisor boundary (vmm/hv.h). */
#ifndef HUGEVMM_VMM_KVM_H
#define HUGEVMM_VMM_KVM_H

#include "vmm/hv.h"

#define KVM_DEVICE "/dev/kvm"

/* Probe /dev/kvm without creating a VM (also kvm_hv_ops.probe). Never fails. */
void kvm_probe(struct hv_probe *p);

/*
 * The KVM ioctls a running VM's threads issue, for their seccomp allow-lists
 * (vmm/seccomp.c): on a vCPU thread (KVM_RUN, the register reads of a fatal
 * exit's dump, interrupt lines a device raises from an exit), and on the VMM
 * thread (interrupts, ioeventfd/irqfd teardown, the probe of GET /host).
 * The number of entries; *@out points at a static table.
 */
size_t kvm_vcpu_ioctls(const unsigned long **out);
size_t kvm_vmm_ioctls(const unsigned long **out);

#endif
