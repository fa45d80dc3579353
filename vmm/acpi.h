/*
 * The ACPI tables of a machine (vmm/machine.h), built as a guest gets them:
 * RSDP (revision 2) -> XSDT -> FADT (hardware-reduced, X_DSDT, the sleep
 * control/status registers) and MADT (a local APIC per vCPU, the IOAPIC,
 * LINT1 as NMI); the FADT's DSDT describes COM1, the i8042, the RTC, one
 * LNRO0005 node per virtio-mmio device (the machine's order) and \_S5.
 * The same machine gives the same bytes.
 */
#ifndef HUGEVMM_VMM_ACPI_H
#define HUGEVMM_VMM_ACPI_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/util.h"
#include "vmm/machine.h"

enum acpi_table_id {
	ACPI_RSDP,
	ACPI_XSDT,
	ACPI_FADT,
	ACPI_MADT,
	ACPI_DSDT,
	ACPI_NTABLES
};

/* The header fields hugevmm writes in every table (and the RSDP's OEM id). */
#define ACPI_OEM_ID        "HUGVMM"
#define ACPI_OEM_TABLE_ID  "HUGEVMM "
#define ACPI_CREATOR_ID    "HVMM"
#define ACPI_HYPERVISOR_ID "HUGEVMM " /* the FADT's Hypervisor Vendor Identity */

/* FADT flags and IA-PC boot architecture flags hugevmm sets. */
#define ACPI_FADT_PWR_BUTTON  (1u << 4)  /* no fixed power button */
#define ACPI_FADT_SLP_BUTTON  (1u << 5)  /* no fixed sleep button */
#define ACPI_FADT_HW_REDUCED  (1u << 20) /* HW_REDUCED_ACPI */
#define ACPI_IAPC_LEGACY_DEVS (1u << 0)  /* ISA devices (COM1, RTC) */
#define ACPI_IAPC_8042        (1u << 1)  /* an i8042 at 0x60/0x64 */
#define ACPI_IAPC_NO_VGA      (1u << 2)  /* do not probe VGA (0x3c0 is the sleep register) */

/* Sizes (bytes) of the fixed tables. */
#define ACPI_RSDP_LEN 36
#define ACPI_FADT_LEN 276 /* revision 6: up to the Hypervisor Vendor Identity */

struct acpi_table {
	const char *file; /* as `acpidump -b` names it: "rsdp.dat", "facp.dat"... */
	size_t off, len;  /* its bytes in acpi_tables.buf */
};

struct acpi_tables {
	uint8_t *buf; /* every table, laid out as at guest address gpa */
	size_t len;
	uint64_t gpa;
	struct acpi_table t[ACPI_NTABLES];
};

/*
 * Build the tables of @m to sit at guest-physical @gpa (the RSDP first, each
 * table 16-byte aligned after it; every pointer between them is absolute).
 * -EINVAL when the machine cannot be described (a window above 4 GiB, 0 or
 * more than 255 vCPUs), -ENOMEM. Free with acpi_tables_free.
 */
int acpi_build(const struct machine *m, uint64_t gpa, struct acpi_tables *out) must_check;

void acpi_tables_free(struct acpi_tables *t);

/*
 * Write each table into directory @dir (created when missing, if its parent
 * exists) as one file named as acpidump -b names it. All files or none: on
 * failure nothing new is left behind. A @dir that cannot be used is
 * ERR_CONFIG (exit 2), a failed write ERR_RUNTIME.
 */
int acpi_write_dir(const struct acpi_tables *t, const char *dir, struct vmm_err *e) must_check;

#endif
