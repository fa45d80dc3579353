#include "vmm/acpi.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm/aml.h"
#include "vmm/x86_abi.h"
#include "vmm/x86_boot.h"

/* Generic Address Structure (ACPI 6.x, 5.2.3.2). */
struct acpi_gas {
	uint8_t space_id; /* 1: SystemIO */
	uint8_t bit_width, bit_offset;
	uint8_t access_size; /* 1: byte access */
	uint64_t address;
} __attribute__((packed));

#define ACPI_GAS_SYSTEM_IO 1
#define ACPI_GAS_BYTE      1

/* FADT revision 6 (ACPI 6.x, 5.2.9); the fields before X_DSDT stay zero but these. */
struct acpi_fadt {
	struct acpi_header h; /* "FACP" */
	uint32_t firmware_ctrl, dsdt;
	uint8_t reserved0[109 - 44];
	uint16_t iapc_boot_arch;
	uint8_t reserved1;
	uint32_t flags;
	uint8_t reset_reg[12];
	uint8_t reset_value;
	uint16_t arm_boot_arch;
	uint8_t minor_version;
	uint64_t x_firmware_ctrl;
	uint64_t x_dsdt;
	uint8_t x_blocks[8 * 12]; /* X_PM1a_EVT_BLK ... X_GPE1_BLK: none */
	struct acpi_gas sleep_control, sleep_status;
	char hypervisor_id[8];
} __attribute__((packed));

static_assert(sizeof(struct acpi_gas) == 12, "gas");
static_assert(offsetof(struct acpi_fadt, iapc_boot_arch) == 109, "fadt");
static_assert(offsetof(struct acpi_fadt, flags) == 112, "fadt");
static_assert(offsetof(struct acpi_fadt, minor_version) == 131, "fadt");
static_assert(offsetof(struct acpi_fadt, x_dsdt) == 140, "fadt");
static_assert(offsetof(struct acpi_fadt, sleep_control) == 244, "fadt");
static_assert(offsetof(struct acpi_fadt, sleep_status) == 256, "fadt");
static_assert(sizeof(struct acpi_fadt) == ACPI_FADT_LEN, "fadt");
static_assert(sizeof(struct acpi_rsdp) == ACPI_RSDP_LEN, "rsdp");

#define ALIGN16(x) (((x) + 15) & ~(size_t)15)

static const char *const files[ACPI_NTABLES] = {
	[ACPI_RSDP] = "rsdp.dat", [ACPI_XSDT] = "xsdt.dat", [ACPI_FADT] = "facp.dat",
	[ACPI_MADT] = "apic.dat", [ACPI_DSDT] = "dsdt.dat",
};

static uint8_t checksum(const void *p, size_t n)
{
	uint8_t sum = 0;

	for (size_t i = 0; i < n; i++)
		sum = (uint8_t)(sum + ((const uint8_t *)p)[i]);
	return (uint8_t)-sum;
}

/* Fill a table's header once its body is in place: the checksum covers both. */
static void header(void *table, const char *sig, size_t len, uint8_t rev)
{
	struct acpi_header *h = table;

	memcpy(h->signature, sig, 4);
	h->length = (uint32_t)len;
	h->revision = rev;
	memcpy(h->oem_id, ACPI_OEM_ID, 6);
	memcpy(h->oem_table_id, ACPI_OEM_TABLE_ID, 8);
	h->oem_revision = 1;
	memcpy(h->creator_id, ACPI_CREATOR_ID, 4);
	h->creator_revision = 1;
	h->checksum = 0;
	h->checksum = checksum(h, len);
}

static void named_int(struct aml *a, const char *name, uint64_t v)
{
	aml_name_decl(a, name);
	aml_integer(a, v);
}

static void named_eisaid(struct aml *a, const char *name, const char *id)
{
	aml_name_decl(a, name);
	aml_eisaid(a, id);
}

/* The DSDT's AML (after its header). */
static int dsdt_aml(const struct machine *m, struct aml *a)
{
	aml_init(a);
	aml_scope(a, "\\_SB_");

	aml_device(a, "COM1");
	named_eisaid(a, "_HID", "PNP0501");
	named_int(a, "_UID", 0);
	aml_name_decl(a, "_CRS");
	aml_buffer(a);
	aml_res_io(a, MACHINE_COM1_PORT, 8);
	aml_res_irq(a, MACHINE_COM1_IRQ);
	aml_res_end(a);
	aml_end(a);
	aml_end(a);

	aml_device(a, "PS2K");
	named_eisaid(a, "_HID", "PNP0303");
	aml_name_decl(a, "_CRS");
	aml_buffer(a);
	aml_res_io(a, MACHINE_I8042_PORT, 1);
	aml_res_io(a, MACHINE_I8042_PORT + 4, 1);
	aml_res_irq(a, MACHINE_I8042_IRQ);
	aml_res_end(a);
	aml_end(a);
	aml_end(a);

	aml_device(a, "RTC_");
	named_eisaid(a, "_HID", "PNP0B00");
	aml_name_decl(a, "_CRS");
	aml_buffer(a);
	aml_res_io(a, MACHINE_RTC_PORT, 2);
	aml_res_irq(a, MACHINE_RTC_IRQ);
	aml_res_end(a);
	aml_end(a);
	aml_end(a);

	for (unsigned i = 0; i < m->nvirtio; i++) {
		const struct machine_virtio *v = &m->virtio[i];
		char name[8];

		if (v->base > UINT32_MAX - MACHINE_VIRTIO_SIZE + 1 || i > 999)
			return -EINVAL;
		snprintf(name, sizeof(name), "V%03u", i);
		aml_device(a, name);
		aml_name_decl(a, "_HID");
		aml_string(a, "LNRO0005"); /* Linux's virtio_mmio ACPI id */
		named_int(a, "_UID", i);
		aml_name_decl(a, "_CRS");
		aml_buffer(a);
		aml_res_mem32(a, 1, (uint32_t)v->base, MACHINE_VIRTIO_SIZE);
		aml_res_interrupt(a, AML_IRQ_CONSUMER | AML_IRQ_EDGE, v->gsi);
		aml_res_end(a);
		aml_end(a);
		aml_end(a);
	}
	aml_end(a); /* \_SB_ */

	/*
	 * SLP_TYPa, SLP_TYPb and two reserved: Linux writes SLP_TYPa with SLP_EN to
	 * the FADT's sleep control register. Four elements suit every ACPICA version
	 * (older ones wanted at least two).
	 */
	aml_name_decl(a, "\\_S5_");
	aml_package(a, 4);
	aml_integer(a, MACHINE_S5_TYPE);
	aml_integer(a, MACHINE_S5_TYPE);
	aml_integer(a, 0);
	aml_integer(a, 0);
	aml_end(a);
	return aml_finish(a);
}

static size_t madt_len(unsigned ncpus)
{
	return sizeof(struct acpi_madt) + ncpus * sizeof(struct acpi_madt_lapic) +
	       sizeof(struct acpi_madt_ioapic) + sizeof(struct acpi_madt_lapic_nmi);
}

static void madt(uint8_t *dst, unsigned ncpus)
{
	struct acpi_madt *t = (void *)dst;
	uint8_t *p = dst + sizeof(*t);

	t->lapic_address = X86_LAPIC_ADDR;
	t->flags = ACPI_MADT_PCAT_COMPAT; /* the in-kernel irqchip has the two 8259s */
	for (unsigned i = 0; i < ncpus; i++) {
		struct acpi_madt_lapic *l = (void *)p;

		l->type = ACPI_MADT_LAPIC;
		l->length = sizeof(*l);
		l->processor_id = (uint8_t)i;
		l->apic_id = (uint8_t)i;
		l->flags = ACPI_MADT_LAPIC_ENABLED;
		p += sizeof(*l);
	}
	{
		struct acpi_madt_ioapic *io = (void *)p;

		/* ISA IRQs map to GSIs 1:1 (no overrides): KVM's default routing, as in the MP
		 * table. */
		io->type = ACPI_MADT_IOAPIC;
		io->length = sizeof(*io);
		io->id = (uint8_t)ncpus;
		io->address = X86_IOAPIC_ADDR;
		io->gsi_base = 0;
		p += sizeof(*io);
	}
	{
		struct acpi_madt_lapic_nmi *n = (void *)p;

		n->type = ACPI_MADT_LAPIC_NMI;
		n->length = sizeof(*n);
		n->processor_id = 0xff;
		n->lint = 1;
		p += sizeof(*n);
	}
	header(t, "APIC", (size_t)(p - dst), 4);
}

static struct acpi_gas sleep_reg(uint16_t port)
{
	return (struct acpi_gas){
		.space_id = ACPI_GAS_SYSTEM_IO,
		.bit_width = 8,
		.bit_offset = 0,
		.access_size = ACPI_GAS_BYTE,
		.address = port,
	};
}

static void fadt(uint8_t *dst, uint64_t dsdt_gpa)
{
	struct acpi_fadt *f = (void *)dst;

	/*
	 * Hardware-reduced: no PM1/GPE blocks, no SCI, no FACS, no PM timer; Linux
	 * enables ACPI without touching SMI_CMD and powers off through the sleep
	 * control register. The legacy devices are described in the DSDT.
	 */
	f->flags = ACPI_FADT_HW_REDUCED | ACPI_FADT_PWR_BUTTON | ACPI_FADT_SLP_BUTTON;
	f->iapc_boot_arch = ACPI_IAPC_LEGACY_DEVS | ACPI_IAPC_8042 | ACPI_IAPC_NO_VGA;
	f->minor_version = 0;
	f->x_dsdt = dsdt_gpa; /* the 32-bit DSDT stays 0: X_DSDT is the one to use */
	f->sleep_control = sleep_reg(MACHINE_SLEEP_CONTROL_PORT);
	f->sleep_status = sleep_reg(MACHINE_SLEEP_STATUS_PORT);
	memcpy(f->hypervisor_id, ACPI_HYPERVISOR_ID, 8);
	header(f, "FACP", sizeof(*f), 6);
}

int acpi_build(const struct machine *m, uint64_t gpa, struct acpi_tables *out)
{
	struct acpi_rsdp *rsdp;
	struct aml a;
	size_t off;
	uint8_t *b;
	uint64_t x[2];
	int r;

	memset(out, 0, sizeof(*out));
	if (m->vcpus == 0 || m->vcpus > 255 || m->nvirtio > MACHINE_VIRTIO_MAX)
		return -EINVAL;
	r = dsdt_aml(m, &a);
	if (r) {
		aml_free(&a);
		return r;
	}

	/* RSDP first (Linux scans 16-byte boundaries for it), then each table aligned. */
	off = 0;
	out->t[ACPI_RSDP] = (struct acpi_table){files[ACPI_RSDP], off, ACPI_RSDP_LEN};
	off = ALIGN16(off + ACPI_RSDP_LEN);
	out->t[ACPI_XSDT] =
		(struct acpi_table){files[ACPI_XSDT], off, sizeof(struct acpi_header) + sizeof(x)};
	off = ALIGN16(off + out->t[ACPI_XSDT].len);
	out->t[ACPI_FADT] = (struct acpi_table){files[ACPI_FADT], off, ACPI_FADT_LEN};
	off = ALIGN16(off + ACPI_FADT_LEN);
	out->t[ACPI_MADT] = (struct acpi_table){files[ACPI_MADT], off, madt_len(m->vcpus)};
	off = ALIGN16(off + out->t[ACPI_MADT].len);
	out->t[ACPI_DSDT] =
		(struct acpi_table){files[ACPI_DSDT], off, sizeof(struct acpi_header) + a.len};
	out->len = off + out->t[ACPI_DSDT].len;
	out->gpa = gpa;

	b = out->buf = calloc(1, out->len);
	if (!b) {
		aml_free(&a);
		return -ENOMEM;
	}
	memcpy(b + out->t[ACPI_DSDT].off + sizeof(struct acpi_header), a.buf, a.len);
	aml_free(&a);
	header(b + out->t[ACPI_DSDT].off, "DSDT", out->t[ACPI_DSDT].len, 2);
	madt(b + out->t[ACPI_MADT].off, m->vcpus);
	fadt(b + out->t[ACPI_FADT].off, gpa + out->t[ACPI_DSDT].off);

	x[0] = gpa + out->t[ACPI_FADT].off;
	x[1] = gpa + out->t[ACPI_MADT].off;
	memcpy(b + out->t[ACPI_XSDT].off + sizeof(struct acpi_header), x, sizeof(x));
	header(b + out->t[ACPI_XSDT].off, "XSDT", out->t[ACPI_XSDT].len, 1);

	rsdp = (void *)b;
	memcpy(rsdp->signature, "RSD PTR ", 8);
	memcpy(rsdp->oem_id, ACPI_OEM_ID, 6);
	rsdp->revision = 2;
	rsdp->length = ACPI_RSDP_LEN;
	rsdp->xsdt_address = gpa + out->t[ACPI_XSDT].off;
	rsdp->checksum = checksum(rsdp, 20);
	rsdp->ext_checksum = checksum(rsdp, ACPI_RSDP_LEN);
	return 0;
}

void acpi_tables_free(struct acpi_tables *t)
{
	free(t->buf);
	t->buf = NULL;
	t->len = 0;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int acpi_write_dir(const struct acpi_tables *t, const char *dir, struct vmm_err *e)
{
	char tmp[ACPI_NTABLES][4096], path[4096];
	unsigned made = 0, i;
	bool created = false;
	struct stat st;
	int r = 0;

	if (stat(dir, &st) == 0 && !S_ISDIR(st.st_mode))
		return err_set(e, ERR_CONFIG, -ENOTDIR,
			       "--out: \"%s\" is not a directory; give a "
			       "directory (it is created when only its parent exists)",
			       dir);
	if (stat(dir, &st)) {
		if (errno != ENOENT || mkdir(dir, 0755))
			return err_set(e, ERR_CONFIG, -errno,
				       "--out: cannot use \"%s\": %s; give a "
				       "directory (it is created when only its parent exists)",
				       dir, strerror(errno));
		created = true;
	}
	/* Temporary files first, renamed once all are written: all tables or none. */
	for (i = 0; i < ACPI_NTABLES && !r; i++) {
		int fd, n = snprintf(tmp[i], sizeof(tmp[i]), "%s/.%s.XXXXXX", dir, t->t[i].file);

		if (n < 0 || (size_t)n >= sizeof(tmp[i])) {
			r = err_set(e, ERR_CONFIG, -ENAMETOOLONG, "--out: \"%s\" is too long", dir);
			break;
		}
		fd = mkstemp(tmp[i]);
		if (fd < 0) {
			r = err_set(e, errno == ENOSPC || errno == EIO ? ERR_RUNTIME : ERR_CONFIG,
				    -errno, "--out: cannot create a file in \"%s\": %s", dir,
				    strerror(errno));
			break;
		}
		made = i + 1;
		r = fchmod(fd, 0644) ? -errno : 0;
		r = r ? r : write_all(fd, t->buf + t->t[i].off, t->t[i].len);
		if (close(fd) && !r)
			r = -errno;
		if (r)
			err_set(e, ERR_RUNTIME, r, "writing \"%s\": %s", tmp[i], strerror(-r));
	}
	for (i = 0; i < made && !r; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, t->t[i].file);
		if (rename(tmp[i], path))
			r = err_set(e, ERR_RUNTIME, -errno, "renaming \"%s\" to \"%s\": %s", tmp[i],
				    path, strerror(errno));
	}
	if (r) {
		/* Renamed ones are gone from tmp[]: unlink fails harmlessly for them. */
		for (unsigned j = 0; j < made; j++)
			unlink(tmp[j]);
		if (created)
			rmdir(dir);
	}
	return r;
}
