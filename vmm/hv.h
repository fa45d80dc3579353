/*
 * The hypervisor boundary: what hugevmm needs from a hypervisor, as data
 * types and an ops table. vmm/kvm*.c implements it with raw KVM ioctls and
 * is the only code that includes <linux/kvm.h>; a second backend (MSHV, a
 * recorder for tests) plugs in here without touching memory/, devices/ or
 * api/. x86-64 register state is spelled out in hugevmm's own types.
 */
#ifndef HUGEVMM_VMM_HV_H
#define HUGEVMM_VMM_HV_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "common/util.h"

/* What the host hypervisor device offers; filled by a backend's probe. */
struct hv_probe {
	bool present;     /* the device exists and answers */
	char device[32];  /* "/dev/kvm" */
	char error[160];  /* why not present */
	int api_version;  /* KVM_GET_API_VERSION */
	char flavour[32]; /* loaded module: kvm_intel, kvm_amd, kvm_pvm... */
	int max_memslots; /* KVM_CAP_NR_MEMSLOTS */
	int max_vcpus;    /* KVM_CAP_MAX_VCPUS */
	bool stats_fd;    /* KVM_CAP_BINARY_STATS_FD */
	bool user_memory; /* KVM_CAP_USER_MEMORY */
	bool irqchip;     /* KVM_CAP_IRQCHIP */
};

/* The secondary MMU's (EPT/NPT) own page counts for a VM. */
struct hv_mmu_stats {
	bool available; /* false: see reason; never read as zero coverage */
	char reason[192];
	uint64_t pages_4k, pages_2m, pages_1g;
};

/* x86-64 register state. */
struct hv_regs {
	uint64_t rax, rbx, rcx, rdx, rsi, rdi, rsp, rbp;
	uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
	uint64_t rip, rflags;
};

struct hv_segment {
	uint64_t base;
	uint32_t limit;
	uint16_t selector;
	uint8_t type, present, dpl, db, s, l, g, avl;
	uint8_t unusable;
};

struct hv_dtable {
	uint64_t base;
	uint16_t limit;
};

struct hv_sregs {
	struct hv_segment cs, ds, es, fs, gs, ss, tr, ldt;
	struct hv_dtable gdt, idt;
	uint64_t cr0, cr2, cr3, cr4, cr8, efer, apic_base;
};

struct hv_msr {
	uint32_t index;
	uint64_t data;
};

/* One CPUID leaf as the guest will see it. */
struct hv_cpuid_entry {
	uint32_t function, index, flags;
	uint32_t eax, ebx, ecx, edx;
};

#define HV_CPUID_FLAG_SIGNIFICANT_INDEX 1

#define HV_CPUID_MAX 256
struct hv_cpuid {
	unsigned n;
	struct hv_cpuid_entry e[HV_CPUID_MAX];
};

/* Why KVM_RUN returned. */
enum hv_exit_reason {
	HV_EXIT_IO,           /* port I/O: io.* */
	HV_EXIT_MMIO,         /* MMIO: mmio.* */
	HV_EXIT_HLT,          /* the vCPU halted with no in-kernel irqchip to wait in */
	HV_EXIT_INTR,         /* interrupted by a signal (a kick) */
	HV_EXIT_SHUTDOWN,     /* triple fault */
	HV_EXIT_SYSTEM_RESET, /* the guest asked for a reset (PSCI/ACPI-style system event) */
	HV_EXIT_SYSTEM_OFF,   /* the guest asked to power off */
	HV_EXIT_INTERNAL,     /* the hypervisor could not go on (emulation failure...) */
	HV_EXIT_FAIL_ENTRY,   /* the hardware refused to enter the guest */
	HV_EXIT_OTHER,        /* anything else; raw holds the backend's code */
};

struct hv_exit {
	enum hv_exit_reason reason;
	uint32_t raw;    /* the backend's own exit code */
	uint64_t detail; /* internal-error suberror / hardware entry failure reason */
	union {
		struct {
			uint16_t port;
			uint8_t size; /* 1, 2, 4 */
			bool write;
			uint32_t count;
			uint8_t *data; /* count * size bytes, in the backend's run area */
		} io;
		struct {
			uint64_t addr;
			uint32_t len;
			bool write;
			uint8_t *data; /* len bytes, in the backend's run area */
		} mmio;
	};
};

struct hv;      /* an open hypervisor device */
struct hv_vm;   /* a VM */
struct hv_vcpu; /* a vCPU */

struct hv_ops {
	const char *name;
	void (*probe)(struct hv_probe *p);
	/* Open the device and check the capabilities hugevmm relies on; the error names any
	 * missing. */
	int (*open)(struct hv **out, struct vmm_err *e);
	void (*close)(struct hv *hv);

	int (*create_vm)(struct hv *hv, struct hv_vm **out, struct vmm_err *e);
	void (*destroy_vm)(struct hv_vm *vm);
	/* Register guest RAM [gpa, gpa+size) at host address @hva as slot @slot. */
	int (*set_memslot)(struct hv_vm *vm, unsigned slot, uint64_t gpa, uint64_t size, void *hva,
			   struct vmm_err *e);
	/* In-kernel interrupt controllers and timer (x86: PIC, IOAPIC, LAPICs, PIT). */
	int (*create_irqchip)(struct hv_vm *vm, struct vmm_err *e);
	int (*irq_line)(struct hv_vm *vm, unsigned gsi, int level);
	/* Signal-free notification: writes to @fd raise @gsi (an edge); writes by the guest to
	 * [addr, addr+len) (PIO when @pio), of the value *@match when @match is not NULL,
	 * signal @fd without an exit to userspace. */
	int (*irqfd)(struct hv_vm *vm, int fd, unsigned gsi, bool assign);
	int (*ioeventfd)(struct hv_vm *vm, int fd, uint64_t addr, unsigned len, bool pio,
			 const uint64_t *match, bool assign);
	/* Secondary-MMU page counts from the VM's stats. */
	void (*mmu_stats)(struct hv_vm *vm, struct hv_mmu_stats *out);
	/* CPUID leaves the hypervisor can expose. */
	int (*supported_cpuid)(struct hv *hv, struct hv_cpuid *out);

	int (*create_vcpu)(struct hv_vm *vm, unsigned id, struct hv_vcpu **out, struct vmm_err *e);
	void (*destroy_vcpu)(struct hv_vcpu *vcpu);
	/* Enter the guest until an exit that userspace handles. Returns 0 with @exit filled. */
	int (*run)(struct hv_vcpu *vcpu, struct hv_exit *exit);
	/* Make a running or about-to-run vCPU return (with HV_EXIT_INTR) soon; any thread. */
	void (*kick_prepare)(struct hv_vcpu *vcpu);
	int (*get_regs)(struct hv_vcpu *vcpu, struct hv_regs *r);
	int (*set_regs)(struct hv_vcpu *vcpu, const struct hv_regs *r);
	int (*get_sregs)(struct hv_vcpu *vcpu, struct hv_sregs *s);
	int (*set_sregs)(struct hv_vcpu *vcpu, const struct hv_sregs *s);
	int (*set_msrs)(struct hv_vcpu *vcpu, const struct hv_msr *m, unsigned n);
	int (*set_cpuid)(struct hv_vcpu *vcpu, const struct hv_cpuid *c);
	/* Default FPU/SSE state (x87 control word, MXCSR). */
	int (*init_fpu)(struct hv_vcpu *vcpu);
};

/* The KVM backend. */
extern const struct hv_ops kvm_hv_ops;

#endif
