/* x86-64 parts of the KVM backend: interrupt controllers, registers, CPUID, MSRs. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vmm/kvm_priv.h"

/* Addresses KVM needs inside the 32-bit MMIO hole (Intel real-mode emulation helpers). */
#define KVM_TSS_ADDR          0xfffbd000u
#define KVM_IDENTITY_MAP_ADDR 0xfffbc000ull

int kvm_x86_create_irqchip(struct hv_vm *vm, struct vmm_err *e)
{
	struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
	uint64_t idmap = KVM_IDENTITY_MAP_ADDR;

	if (ioctl(vm->fd, KVM_SET_TSS_ADDR, (unsigned long)KVM_TSS_ADDR))
		return err_set(e, ERR_RUNTIME, -errno, "KVM_SET_TSS_ADDR: %s", strerror(errno));
	/* Only VMX without unrestricted guest needs it; others may refuse it harmlessly. */
	ioctl(vm->fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap);
	if (ioctl(vm->fd, KVM_CREATE_IRQCHIP, 0))
		return err_set(e, ERR_RUNTIME, -errno, "KVM_CREATE_IRQCHIP: %s", strerror(errno));
	if (ioctl(vm->fd, KVM_CREATE_PIT2, &pit))
		return err_set(e, ERR_RUNTIME, -errno, "KVM_CREATE_PIT2: %s", strerror(errno));
	return 0;
}

int kvm_x86_supported_cpuid(struct hv *hv, struct hv_cpuid *out)
{
	struct kvm_cpuid2 *c;
	size_t sz = sizeof(*c) + HV_CPUID_MAX * sizeof(struct kvm_cpuid_entry2);

	c = calloc(1, sz);
	if (!c)
		return -ENOMEM;
	c->nent = HV_CPUID_MAX;
	if (ioctl(hv->fd, KVM_GET_SUPPORTED_CPUID, c)) {
		int r = -errno;

		free(c);
		return r;
	}
	out->n = c->nent;
	for (unsigned i = 0; i < c->nent; i++) {
		const struct kvm_cpuid_entry2 *k = &c->entries[i];
		struct hv_cpuid_entry *d = &out->e[i];

		d->function = k->function;
		d->index = k->index;
		d->flags = (k->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX)
				   ? HV_CPUID_FLAG_SIGNIFICANT_INDEX
				   : 0;
		d->eax = k->eax;
		d->ebx = k->ebx;
		d->ecx = k->ecx;
		d->edx = k->edx;
	}
	free(c);
	return 0;
}

int kvm_x86_set_cpuid(struct hv_vcpu *v, const struct hv_cpuid *in)
{
	struct kvm_cpuid2 *c;
	int r = 0;

	c = calloc(1, sizeof(*c) + in->n * sizeof(struct kvm_cpuid_entry2));
	if (!c)
		return -ENOMEM;
	c->nent = in->n;
	for (unsigned i = 0; i < in->n; i++) {
		struct kvm_cpuid_entry2 *k = &c->entries[i];
		const struct hv_cpuid_entry *s = &in->e[i];

		k->function = s->function;
		k->index = s->index;
		k->flags = (s->flags & HV_CPUID_FLAG_SIGNIFICANT_INDEX)
				   ? KVM_CPUID_FLAG_SIGNIFCANT_INDEX
				   : 0;
		k->eax = s->eax;
		k->ebx = s->ebx;
		k->ecx = s->ecx;
		k->edx = s->edx;
	}
	if (ioctl(v->fd, KVM_SET_CPUID2, c))
		r = -errno;
	free(c);
	return r;
}

int kvm_x86_get_regs(struct hv_vcpu *v, struct hv_regs *r)
{
	struct kvm_regs k;

	if (ioctl(v->fd, KVM_GET_REGS, &k))
		return -errno;
	*r = (struct hv_regs){
		.rax = k.rax,
		.rbx = k.rbx,
		.rcx = k.rcx,
		.rdx = k.rdx,
		.rsi = k.rsi,
		.rdi = k.rdi,
		.rsp = k.rsp,
		.rbp = k.rbp,
		.r8 = k.r8,
		.r9 = k.r9,
		.r10 = k.r10,
		.r11 = k.r11,
		.r12 = k.r12,
		.r13 = k.r13,
		.r14 = k.r14,
		.r15 = k.r15,
		.rip = k.rip,
		.rflags = k.rflags,
	};
	return 0;
}

int kvm_x86_set_regs(struct hv_vcpu *v, const struct hv_regs *r)
{
	struct kvm_regs k = {
		.rax = r->rax,
		.rbx = r->rbx,
		.rcx = r->rcx,
		.rdx = r->rdx,
		.rsi = r->rsi,
		.rdi = r->rdi,
		.rsp = r->rsp,
		.rbp = r->rbp,
		.r8 = r->r8,
		.r9 = r->r9,
		.r10 = r->r10,
		.r11 = r->r11,
		.r12 = r->r12,
		.r13 = r->r13,
		.r14 = r->r14,
		.r15 = r->r15,
		.rip = r->rip,
		.rflags = r->rflags,
	};

	return ioctl(v->fd, KVM_SET_REGS, &k) ? -errno : 0;
}

static void seg_from(struct hv_segment *d, const struct kvm_segment *s)
{
	*d = (struct hv_segment){
		.base = s->base,
		.limit = s->limit,
		.selector = s->selector,
		.type = s->type,
		.present = s->present,
		.dpl = s->dpl,
		.db = s->db,
		.s = s->s,
		.l = s->l,
		.g = s->g,
		.avl = s->avl,
		.unusable = s->unusable,
	};
}

static void seg_to(struct kvm_segment *d, const struct hv_segment *s)
{
	*d = (struct kvm_segment){
		.base = s->base,
		.limit = s->limit,
		.selector = s->selector,
		.type = s->type,
		.present = s->present,
		.dpl = s->dpl,
		.db = s->db,
		.s = s->s,
		.l = s->l,
		.g = s->g,
		.avl = s->avl,
		.unusable = s->unusable,
	};
}

int kvm_x86_get_sregs(struct hv_vcpu *v, struct hv_sregs *s)
{
	struct kvm_sregs k;

	if (ioctl(v->fd, KVM_GET_SREGS, &k))
		return -errno;
	seg_from(&s->cs, &k.cs);
	seg_from(&s->ds, &k.ds);
	seg_from(&s->es, &k.es);
	seg_from(&s->fs, &k.fs);
	seg_from(&s->gs, &k.gs);
	seg_from(&s->ss, &k.ss);
	seg_from(&s->tr, &k.tr);
	seg_from(&s->ldt, &k.ldt);
	s->gdt = (struct hv_dtable){.base = k.gdt.base, .limit = k.gdt.limit};
	s->idt = (struct hv_dtable){.base = k.idt.base, .limit = k.idt.limit};
	s->cr0 = k.cr0;
	s->cr2 = k.cr2;
	s->cr3 = k.cr3;
	s->cr4 = k.cr4;
	s->cr8 = k.cr8;
	s->efer = k.efer;
	s->apic_base = k.apic_base;
	return 0;
}

int kvm_x86_set_sregs(struct hv_vcpu *v, const struct hv_sregs *s)
{
	struct kvm_sregs k;

	/* Start from the current state: interrupt bitmap and anything not modelled stay. */
	if (ioctl(v->fd, KVM_GET_SREGS, &k))
		return -errno;
	seg_to(&k.cs, &s->cs);
	seg_to(&k.ds, &s->ds);
	seg_to(&k.es, &s->es);
	seg_to(&k.fs, &s->fs);
	seg_to(&k.gs, &s->gs);
	seg_to(&k.ss, &s->ss);
	seg_to(&k.tr, &s->tr);
	seg_to(&k.ldt, &s->ldt);
	k.gdt.base = s->gdt.base;
	k.gdt.limit = s->gdt.limit;
	k.idt.base = s->idt.base;
	k.idt.limit = s->idt.limit;
	k.cr0 = s->cr0;
	k.cr2 = s->cr2;
	k.cr3 = s->cr3;
	k.cr4 = s->cr4;
	k.cr8 = s->cr8;
	k.efer = s->efer;
	k.apic_base = s->apic_base;
	return ioctl(v->fd, KVM_SET_SREGS, &k) ? -errno : 0;
}

int kvm_x86_set_msrs(struct hv_vcpu *v, const struct hv_msr *m, unsigned n)
{
	struct kvm_msrs *k = calloc(1, sizeof(*k) + n * sizeof(struct kvm_msr_entry));
	int r;

	if (!k)
		return -ENOMEM;
	k->nmsrs = n;
	for (unsigned i = 0; i < n; i++) {
		k->entries[i].index = m[i].index;
		k->entries[i].data = m[i].data;
	}
	r = ioctl(v->fd, KVM_SET_MSRS, k);
	free(k);
	if (r < 0)
		return -errno;
	return r == (int)n ? 0 : -EINVAL;
}

int kvm_x86_init_fpu(struct hv_vcpu *v)
{
	struct kvm_fpu f;

	memset(&f, 0, sizeof(f));
	f.fcw = 0x37f;    /* x87: all exceptions masked, 64-bit precision */
	f.mxcsr = 0x1f80; /* SSE: all exceptions masked */
	return ioctl(v->fd, KVM_SET_FPU, &f) ? -errno : 0;
}
