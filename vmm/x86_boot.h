/*
 * x86-64 direct boot, no firmware: where boot structures live in guest
 * memory, the builders for them (e820, MP table, Linux zero page, PVH start
 * info, identity page tables, GDT), and the CPU state each protocol starts in.
 */
#ifndef HUGEVMM_VMM_X86_BOOT_H
#define HUGEVMM_VMM_X86_BOOT_H

#include <stdint.h>

#include "memory/mem.h"
#include "vmm/hv.h"
#include "vmm/loader.h"
#include "vmm/machine.h"
#include "vmm/x86_abi.h"

/* Guest-physical layout of the boot structures (all in the first RAM slot). */
#define BOOT_GDT_ADDR        0x500
#define BOOT_IDT_ADDR        0x540
#define BOOT_PML4_ADDR       0x1000
#define BOOT_PDPT_ADDR       0x2000
#define BOOT_PD_ADDR         0x3000 /* four page directories: 0-4 GiB with 2M pages */
#define BOOT_ZERO_PAGE_ADDR  0x7000
#define BOOT_START_INFO_ADDR 0x8000
#define BOOT_MODLIST_ADDR    0x8040
#define BOOT_MEMMAP_ADDR     0x8100
#define BOOT_STACK_TOP       0x9ff0
#define BOOT_CMDLINE_ADDR    0x20000
#define BOOT_EBDA_START      0x9fc00 /* [EBDA, 1 MiB) is reserved, as on a PC */
#define BOOT_ACPI_ADDR       0xe0000 /* RSDP first: Linux scans [0xe0000, 1 MiB) */
#define BOOT_MPTABLE_ADDR    0xf0000
#define BOOT_ACPI_SIZE       (BOOT_MPTABLE_ADDR - BOOT_ACPI_ADDR) /* 64 KiB, e820-reserved */
#define BOOT_HIGH_MEM        0x100000
#define BOOT_LOW_NEEDED      0x100000 /* RAM must cover [0, 1 MiB) */

#define X86_IOAPIC_ADDR 0xfec00000u
#define X86_LAPIC_ADDR  0xfee00000u

/* GDT selectors. */
#define BOOT_CS32 0x08
#define BOOT_CS64 0x10
#define BOOT_DS   0x18
#define BOOT_TSS  0x20

struct x86_boot_cfg {
	const struct kernel_image *kernel;
	const char *cmdline;
	const char *initrd_path; /* NULL or "" for none */
	unsigned vcpus;
	/* What the ACPI tables describe; NULL: @vcpus and no virtio devices. */
	const struct machine *machine;
};

/* The boot vCPU's starting state. */
struct x86_boot_cpu {
	struct hv_regs regs;
	struct hv_sregs sregs;
};

/* Where things went, for messages and tests. */
struct x86_boot_info {
	uint64_t initrd_gpa, initrd_size;
	uint64_t cmdline_gpa;
	unsigned e820_entries;
};

/*
 * Load the kernel, initrd and command line into @gm, build every boot
 * structure the kernel's protocol needs but the MP table (x86_boot_mptable,
 * once the hypervisor's CPUID is known), the ACPI tables of @c->machine
 * (vmm/acpi.h) at BOOT_ACPI_ADDR among them, and fill @bsp. It needs no
 * hypervisor, so bad inputs fail before one is opened. Errors are
 * ERR_CONFIG when the inputs do not fit (kernel or initrd larger than RAM,
 * command line over the kernel's limit), naming the config field.
 */
int x86_boot_load(const struct guest_mem *gm, const struct x86_boot_cfg *c,
		  struct x86_boot_cpu *bsp, struct x86_boot_info *info,
		  struct vmm_err *e) must_check;

/*
 * The MP table at its fixed address, with the CPU signature (CPUID.1:EAX) and
 * features (CPUID.1:EDX) the vCPUs will report.
 */
int x86_boot_mptable(const struct guest_mem *gm, unsigned vcpus, uint32_t cpu_signature,
		     uint32_t cpu_features, struct vmm_err *e) must_check;

/* RAM map: [0, EBDA) RAM, [EBDA, 1 MiB) reserved, then each slot. Returns the count. */
unsigned x86_e820(const struct guest_mem *gm, struct linux_e820_entry *out, unsigned max);

/* Write an MP table for @ncpus (APIC ids 0..n-1) at @dst, which sits at guest @gpa. Returns its
 * size. */
size_t x86_mptable(void *dst, uint32_t gpa, unsigned ncpus, uint32_t cpu_sig, uint32_t features);

/* The MP table's size for @ncpus. */
size_t x86_mptable_size(unsigned ncpus);

/* Fill the Linux zero page. */
void x86_linux_zero_page(struct linux_boot_params *bp, const struct kernel_image *k,
			 uint32_t cmdline_gpa, uint64_t initrd_gpa, uint64_t initrd_size,
			 const struct linux_e820_entry *e820, unsigned n);

#endif
