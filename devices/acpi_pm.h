/*
 * The ACPI hardware-reduced sleep registers (ACPI 6.x, 4.8.3.7): a control
 * register (SLP_TYPx in bits 4:2, SLP_EN in bit 5) and a status register
 * (WAK_STS in bit 7), one byte each, in two consecutive I/O ports. A write
 * of SLP_EN with the S5 sleep type powers the machine off; other sleep
 * states are not offered and are ignored. The status register reads 0:
 * the machine never wakes, so a guest waiting for WAK_STS waits until the
 * VM is stopped.
 */
#ifndef HUGEVMM_DEVICES_ACPI_PM_H
#define HUGEVMM_DEVICES_ACPI_PM_H

#include <stdatomic.h>

#include "devices/dev.h"

#define ACPI_PM_CONTROL       0 /* offsets in the device's region */
#define ACPI_PM_STATUS        1
#define ACPI_PM_LEN           2
#define ACPI_PM_SLP_EN        0x20
#define ACPI_PM_SLP_TYP_SHIFT 2
#define ACPI_PM_SLP_TYP_MASK  0x1c

struct acpi_pm {
	struct dev dev;
	const struct dev_host *host;
	unsigned s5_type;   /* the SLP_TYP value of \_S5 in the DSDT */
	atomic_bool warned; /* another sleep type was asked for (logged once) */
};

/* A device whose control register powers off on SLP_EN with SLP_TYP = @s5_type. */
void acpi_pm_init(struct acpi_pm *pm, const struct dev_host *host, unsigned s5_type);

#endif
