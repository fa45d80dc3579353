/* State shared by the KVM backend's files (vmm/kvm*.c) and nobody else. */
#ifndef HUGEVMM_VMM_KVM_PRIV_H
#define HUGEVMM_VMM_KVM_PRIV_H

#include <linux/kvm.h>

#include "vmm/hv.h"

struct hv {
	int fd;
	int run_size; /* KVM_GET_VCPU_MMAP_SIZE */
	char flavour[32];
};

struct hv_vm {
	struct hv *hv;
	int fd;
	int stats_fd;
};

struct hv_vcpu {
	struct hv_vm *vm;
	unsigned id;
	int fd;
	struct kvm_run *run;
};

/* x86 parts (vmm/kvm_x86.c). */
int kvm_x86_create_irqchip(struct hv_vm *vm, struct vmm_err *e);
int kvm_x86_supported_cpuid(struct hv *hv, struct hv_cpuid *out);
int kvm_x86_get_regs(struct hv_vcpu *v, struct hv_regs *r);
int kvm_x86_set_regs(struct hv_vcpu *v, const struct hv_regs *r);
int kvm_x86_get_sregs(struct hv_vcpu *v, struct hv_sregs *s);
int kvm_x86_set_sregs(struct hv_vcpu *v, const struct hv_sregs *s);
int kvm_x86_set_msrs(struct hv_vcpu *v, const struct hv_msr *m, unsigned n);
int kvm_x86_set_cpuid(struct hv_vcpu *v, const struct hv_cpuid *c);
int kvm_x86_init_fpu(struct hv_vcpu *v);

#endif
