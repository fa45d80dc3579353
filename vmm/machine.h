/*
 * The machine a guest sees, as data: vCPUs, the fixed legacy devices and
 * every virtio-mmio device with its register window and interrupt. One
 * allocator hands out the windows and GSIs; the ACPI tables (DSDT), the
 * kernel command line (virtio_mmio.device=) and the device models are all
 * built from this one description, so they cannot disagree.
 */
#ifndef HUGEVMM_VMM_MACHINE_H
#define HUGEVMM_VMM_MACHINE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/util.h"

/*
 * virtio-mmio windows: 4 KiB each from 0xd0000000, inside the 32-bit MMIO hole
 * [3 GiB, 4 GiB) where no RAM is, far below the IOAPIC (0xfec00000) and the
 * LAPIC (0xfee00000).
 */
#define MACHINE_VIRTIO_BASE 0xd0000000ull
#define MACHINE_VIRTIO_SIZE 0x1000u
#define MACHINE_VIRTIO_MAX  32
#define MACHINE_VIRTIO_GSIS 18 /* interrupt lines for them: GSIs 5..23 without the RTC's 8 */

/* Legacy devices at their PC addresses (ports) and ISA IRQs. */
#define MACHINE_COM1_PORT  0x3f8
#define MACHINE_COM1_IRQ   4
#define MACHINE_I8042_PORT 0x60 /* data; command/status at 0x64 */
#define MACHINE_I8042_IRQ  1
#define MACHINE_RTC_PORT   0x70
#define MACHINE_RTC_IRQ    8

/*
 * ACPI hardware-reduced sleep registers (FADT SLEEP_CONTROL_REG and
 * SLEEP_STATUS_REG, one byte each in I/O space). A write of SLP_EN with
 * SLP_TYP = MACHINE_S5_TYPE to the control register powers the machine off.
 */
#define MACHINE_SLEEP_CONTROL_PORT 0x3c0
#define MACHINE_SLEEP_STATUS_PORT  0x3c1
#define MACHINE_S5_TYPE            5
#define MACHINE_SLP_EN             0x20 /* bit 5 of the control register */
#define MACHINE_SLP_TYP_SHIFT      2    /* bits 4:2 */

/* What a virtio-mmio device is, for names and the DSDT. */
struct machine_virtio {
	uint32_t device_id; /* virtio device type: 4 entropy, 2 block, 1 net... */
	char name[16];      /* hugevmm's id for it ("entropy", "rootfs", "eth0") */
	uint64_t base;      /* register window [base, base + MACHINE_VIRTIO_SIZE) */
	unsigned gsi;       /* IOAPIC input, edge-triggered, active high */
	unsigned cfg;       /* index in the config's list of its kind (drives[cfg]...) */
};

struct machine {
	unsigned vcpus;
	struct machine_virtio virtio[MACHINE_VIRTIO_MAX];
	unsigned nvirtio;
};

/* An empty machine of @vcpus. */
void machine_init(struct machine *m, unsigned vcpus);

/*
 * The next virtio-mmio device: its window and GSI, in a stable order (the
 * order of the calls). -ENOSPC when windows or interrupt lines run out.
 * GSIs are 5..23 without 8 (the RTC): no legacy device shares one.
 */
int machine_add_virtio(struct machine *m, uint32_t device_id, const char *name,
		       unsigned cfg, const struct machine_virtio **out) must_check;

/*
 * Append " virtio_mmio.device=4K@0x<base>:<gsi>" for every virtio device to
 * @cmdline (of @size bytes). -E2BIG when it does not fit.
 */
int machine_virtio_cmdline(const struct machine *m, char *cmdline, size_t size) must_check;

#endif
