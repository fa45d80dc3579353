#include "vmm/x86_cpu.h"

#include <string.h>

#define CPUID_HYPERVISOR (1u << 31) /* leaf 1 ECX */
#define CPUID_HTT        (1u << 28) /* leaf 1 EDX */

/* Bits needed to number @n things (0 for 1). */
static unsigned order(unsigned n)
{
	unsigned b = 0;

	while ((1u << b) < n)
		b++;
	return b;
}

const struct hv_cpuid_entry *x86_cpuid_find(const struct hv_cpuid *c, uint32_t fn, uint32_t index)
{
	for (unsigned i = 0; i < c->n; i++) {
		const struct hv_cpuid_entry *e = &c->e[i];

		if (e->function == fn &&
		    (!(e->flags & HV_CPUID_FLAG_SIGNIFICANT_INDEX) || e->index == index))
			return e;
	}
	return NULL;
}

void x86_cpuid_for_vcpu(const struct hv_cpuid *sup, unsigned id, unsigned ncpus,
			struct hv_cpuid *out)
{
	unsigned shift = order(ncpus);

	*out = *sup;
	for (unsigned i = 0; i < out->n; i++) {
		struct hv_cpuid_entry *e = &out->e[i];

		switch (e->function) {
		case 1:
			/* EBX: APIC id [31:24], logical processors per package [23:16]. */
			e->ebx = (e->ebx & 0x0000ffffu) | (id << 24) | ((ncpus & 0xffu) << 16);
			e->ecx |= CPUID_HYPERVISOR;
			if (ncpus > 1)
				e->edx |= CPUID_HTT;
			else
				e->edx &= ~CPUID_HTT;
			break;
		case 4:
			/* EAX[31:26]: cores per package - 1 (one thread per core). */
			e->eax = (e->eax & 0x03ffffffu) | ((ncpus - 1) << 26);
			break;
		case 0xb:
		case 0x1f:
			/* x2APIC topology: level 0 SMT (1 thread), level 1 core (ncpus). */
			e->edx = id;
			if (e->index == 0) {
				e->eax = 0;
				e->ebx = 1;
				e->ecx = (1u << 8) | 0;
			} else if (e->index == 1) {
				e->eax = shift;
				e->ebx = ncpus;
				e->ecx = (2u << 8) | 1;
			} else {
				e->eax = e->ebx = 0;
				e->ecx = e->index;
			}
			break;
		case 0x80000008:
			/* AMD: ECX[7:0] cores - 1, ECX[15:12] APIC id size. */
			e->ecx = (e->ecx & ~0xf0ffu) | (ncpus - 1) | (shift << 12);
			break;
		case 0x8000001e:
			/* AMD: extended APIC id; one thread per core, core id = vCPU. */
			e->eax = id;
			e->ebx = (e->ebx & ~0xffu) | (id & 0xffu);
			break;
		default:
			break;
		}
	}
}

unsigned x86_boot_msrs(struct hv_msr *out, unsigned max)
{
	static const struct hv_msr msrs[] = {
		{0x174, 0},      /* IA32_SYSENTER_CS */
		{0x175, 0},      /* IA32_SYSENTER_ESP */
		{0x176, 0},      /* IA32_SYSENTER_EIP */
		{0xc0000081, 0}, /* STAR */
		{0xc0000082, 0}, /* LSTAR */
		{0xc0000083, 0}, /* CSTAR */
		{0xc0000084, 0}, /* SYSCALL_MASK */
		{0xc0000102, 0}, /* KERNEL_GS_BASE */
		{0x1a0, 1},      /* IA32_MISC_ENABLE: fast strings */
		{0x2ff, 0x806},  /* MTRRdefType: MTRRs on, default write-back */
	};
	unsigned n = (unsigned)MIN(max, ARRAY_SIZE(msrs));

	memcpy(out, msrs, n * sizeof(*out));
	return n;
}
