/* Per-vCPU x86 CPU identity: CPUID as each vCPU sees it, and boot MSRs. */
#ifndef HUGEVMM_VMM_X86_CPU_H
#define HUGEVMM_VMM_X86_CPU_H

#include "vmm/hv.h"

/*
 * From the hypervisor's supported CPUID, the leaves vCPU @id of @ncpus sees:
 * its APIC id (leaves 1, 0xb, 0x1f, 0x8000001e), the package's core count
 * (leaves 1, 4, 0x80000008), and the hypervisor bit. APIC id == vCPU index.
 */
void x86_cpuid_for_vcpu(const struct hv_cpuid *supported, unsigned id, unsigned ncpus,
			struct hv_cpuid *out);

/* The CPUID leaf @fn/@index in @c, or NULL. */
const struct hv_cpuid_entry *x86_cpuid_find(const struct hv_cpuid *c, uint32_t fn, uint32_t index);

/* MSRs every vCPU starts with (SYSCALL/SYSENTER cleared, fast strings, write-back MTRR default). */
unsigned x86_boot_msrs(struct hv_msr *out, unsigned max);

#endif
