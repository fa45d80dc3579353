/*
 * The ACPI tables of a machine, checked two ways: raw bytes at the offsets
 * the ACPI 6.x specification defines (checksums, FADT fields, MADT entries),
 * and the DSDT decompiled by iasl (Debian's acpica-tools) and compiled back:
 * its devices, ids and resources must match the machine, and iasl must turn
 * its own text back into our very bytes. Also the AML encoder's corners and
 * the sleep register device.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "devices/acpi_pm.h"
#include "vmm/acpi.h"
#include "vmm/aml.h"
#include "vmm/config.h"
#include "vmm/machine.h"
#include "vmm/x86_boot.h"

#include "bytes.h"
#include "tmpdir.h"

static uint8_t sum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;

	while (n--)
		s = (uint8_t)(s + *p++);
	return s;
}

/* A machine of @vcpus with @nvirtio devices: from the allocator while it has lines, then made up.
 */
static void machine(struct machine *m, unsigned vcpus, unsigned nvirtio)
{
	machine_init(m, vcpus);
	for (unsigned i = 0; i < nvirtio; i++) {
		if (machine_add_virtio(m, 4, "dev", 0, NULL) == 0)
			continue;
		/* Past the allocator's GSIs: the encoder must still say what it is given. */
		m->virtio[i] = (struct machine_virtio){
			.device_id = 2,
			.base = MACHINE_VIRTIO_BASE + (uint64_t)i * MACHINE_VIRTIO_SIZE,
			.gsi = 100 + i,
		};
		m->nvirtio = i + 1;
	}
}

/* The table at guest address @gpa, inside the built area. */
static const uint8_t *at(const struct acpi_tables *t, uint64_t gpa)
{
	assert_true(gpa >= t->gpa && gpa < t->gpa + t->len);
	return t->buf + (gpa - t->gpa);
}

static void build(const struct machine *m, struct acpi_tables *t)
{
	assert_int_equal(acpi_build(m, BOOT_ACPI_ADDR, t), 0);
	assert_non_null(t->buf);
}

/* RSDP -> XSDT -> {FADT -> DSDT, MADT}: signatures, lengths, checksums, alignment. */
static void tables_link_and_sum(void **state)
{
	static const unsigned shapes[][2] = {{1, 0}, {3, 2}, {CFG_MAX_VCPUS, MACHINE_VIRTIO_MAX}};

	(void)state;
	for (unsigned s = 0; s < ARRAY_SIZE(shapes); s++) {
		struct acpi_tables t;
		struct machine m;
		const uint8_t *rsdp, *xsdt, *fadt, *madt, *dsdt;

		machine(&m, shapes[s][0], shapes[s][1]);
		build(&m, &t);
		rsdp = t.buf;
		assert_memory_equal(rsdp, "RSD PTR ", 8);
		assert_int_equal(rsdp[15], 2);      /* revision: XSDT present */
		assert_int_equal(sum(rsdp, 20), 0); /* ACPI 1.0 checksum */
		assert_int_equal(get32(rsdp, 20), 36);
		assert_int_equal(sum(rsdp, 36), 0);   /* extended checksum */
		assert_int_equal(get32(rsdp, 16), 0); /* no RSDT */

		xsdt = at(&t, get64(rsdp, 24));
		assert_memory_equal(xsdt, "XSDT", 4);
		assert_int_equal(get32(xsdt, 4), 36 + 2 * 8);
		assert_int_equal(sum(xsdt, get32(xsdt, 4)), 0);
		fadt = at(&t, get64(xsdt, 36));
		madt = at(&t, get64(xsdt, 44));
		assert_memory_equal(fadt, "FACP", 4);
		assert_memory_equal(madt, "APIC", 4);
		dsdt = at(&t, get64(fadt, 140));
		assert_memory_equal(dsdt, "DSDT", 4);
		assert_int_equal(dsdt[8], 2); /* 64-bit integers */
		for (unsigned i = 0; i < 4; i++) {
			const uint8_t *p = (const uint8_t *[]){xsdt, fadt, madt, dsdt}[i];

			assert_int_equal(sum(p, get32(p, 4)), 0);
			assert_int_equal((p - t.buf) % 16, 0);
			assert_true(p - t.buf + get32(p, 4) <= (ptrdiff_t)t.len);
			assert_memory_equal(p + 10, ACPI_OEM_ID, 6);
		}
		/* The table list agrees with the pointers, and each file name is acpidump's. */
		assert_ptr_equal(t.buf + t.t[ACPI_FADT].off, fadt);
		assert_ptr_equal(t.buf + t.t[ACPI_MADT].off, madt);
		assert_ptr_equal(t.buf + t.t[ACPI_DSDT].off, dsdt);
		assert_int_equal(t.t[ACPI_DSDT].len, get32(dsdt, 4));
		assert_string_equal(t.t[ACPI_FADT].file, "facp.dat");
		assert_string_equal(t.t[ACPI_MADT].file, "apic.dat");
		assert_string_equal(t.t[ACPI_DSDT].file, "dsdt.dat");
		assert_string_equal(t.t[ACPI_XSDT].file, "xsdt.dat");
		assert_string_equal(t.t[ACPI_RSDP].file, "rsdp.dat");
		/* The largest machine a config can ask for fits the reserved area below the MP
		 * table. */
		assert_true(t.len <= BOOT_ACPI_SIZE);
		acpi_tables_free(&t);
	}
}

static void fadt_is_hardware_reduced(void **state)
{
	struct acpi_tables t;
	struct machine m;
	const uint8_t *f;

	(void)state;
	machine(&m, 2, 1);
	build(&m, &t);
	f = t.buf + t.t[ACPI_FADT].off;
	assert_int_equal(get32(f, 4), 276); /* revision 6 length, with the hypervisor id */
	assert_int_equal(f[8], 6);
	assert_int_equal(f[131], 0);                                 /* minor version: ACPI 6.0 */
	assert_true(get32(f, 112) & (1u << 20));                     /* HW_REDUCED_ACPI */
	assert_true(get32(f, 112) & (1u << 4));                      /* no fixed power button */
	assert_int_equal(get16(f, 109) & 3, 3);                      /* legacy devices, 8042 */
	assert_int_equal(get16(f, 109) & (1u << 5), 0);              /* the CMOS RTC is present */
	assert_int_equal(get32(f, 36), 0);                           /* no FACS */
	assert_int_equal(get64(f, 132), 0);                          /* no X_FACS */
	assert_int_equal(get32(f, 40), 0);                           /* 32-bit DSDT unused */
	assert_int_equal(get64(f, 140), t.gpa + t.t[ACPI_DSDT].off); /* X_DSDT */
	assert_int_equal(get16(f, 46), 0);                           /* no SCI */
	assert_int_equal(get32(f, 48), 0);       /* no SMI_CMD: nothing to enable */
	assert_int_equal(get32(f, 76), 0);       /* no PM timer */
	for (size_t off = 148; off < 244; off++) /* no X_ PM1/PM2/timer/GPE blocks */
		assert_int_equal(f[off], 0);
	/* SLEEP_CONTROL_REG, SLEEP_STATUS_REG: SystemIO, 8 bits at bit 0, byte access. */
	assert_int_equal(f[244], 1);
	assert_int_equal(f[245], 8);
	assert_int_equal(f[246], 0);
	assert_int_equal(f[247], 1);
	assert_int_equal(get64(f, 248), MACHINE_SLEEP_CONTROL_PORT);
	assert_int_equal(f[256], 1);
	assert_int_equal(f[257], 8);
	assert_int_equal(f[258], 0);
	assert_int_equal(f[259], 1);
	assert_int_equal(get64(f, 260), MACHINE_SLEEP_STATUS_PORT);
	assert_memory_equal(f + 268, "HUGEVMM ", 8);
	acpi_tables_free(&t);
}

/* A local APIC per vCPU (ACPI id = APIC id = index), the IOAPIC after them, LINT1 as NMI. */
static void madt_lists_every_vcpu(void **state)
{
	static const unsigned counts[] = {1, 3, CFG_MAX_VCPUS};

	(void)state;
	for (unsigned c = 0; c < ARRAY_SIZE(counts); c++) {
		unsigned n = counts[c], lapics = 0, ioapics = 0, nmis = 0;
		struct acpi_tables t;
		struct machine m;
		const uint8_t *madt, *p;

		machine(&m, n, 0);
		build(&m, &t);
		madt = t.buf + t.t[ACPI_MADT].off;
		assert_int_equal(get32(madt, 36), 0xfee00000); /* local APIC address */
		assert_int_equal(get32(madt, 40) & 1, 1);      /* PC-AT compatible 8259s */
		assert_int_equal(get32(madt, 4), 44 + 8 * n + 12 + 6);
		for (p = madt + 44; p < madt + get32(madt, 4); p += p[1]) {
			assert_true(p[1] > 0);
			switch (p[0]) {
			case 0:
				assert_int_equal(p[1], 8);
				assert_int_equal(p[2], lapics);
				assert_int_equal(p[3], lapics);
				assert_int_equal(get32(p, 4) & 1, 1);
				lapics++;
				break;
			case 1:
				assert_int_equal(p[1], 12);
				assert_int_equal(p[2], n);
				assert_int_equal(get32(p, 4), 0xfec00000);
				assert_int_equal(get32(p, 8), 0);
				ioapics++;
				break;
			case 4:
				assert_int_equal(p[1], 6);
				assert_int_equal(p[2], 0xff);
				assert_int_equal(p[5], 1);
				nmis++;
				break;
			default:
				fail_msg("unexpected MADT entry type %u", p[0]);
			}
		}
		assert_ptr_equal(p, madt + get32(madt, 4));
		assert_int_equal(lapics, n);
		assert_int_equal(ioapics, 1);
		assert_int_equal(nmis, 1);
		acpi_tables_free(&t);
	}
}

static void same_machine_same_bytes(void **state)
{
	struct acpi_tables a, b;
	struct machine m;

	(void)state;
	machine(&m, 4, 5);
	build(&m, &a);
	build(&m, &b);
	assert_int_equal(a.len, b.len);
	assert_memory_equal(a.buf, b.buf, a.len);
	acpi_tables_free(&a);
	acpi_tables_free(&b);
}

static void unbuildable_machines_are_refused(void **state)
{
	struct acpi_tables t;
	struct machine m;

	(void)state;
	machine(&m, 0, 0);
	assert_int_equal(acpi_build(&m, BOOT_ACPI_ADDR, &t), -EINVAL);
	machine(&m, 256, 0);
	assert_int_equal(acpi_build(&m, BOOT_ACPI_ADDR, &t), -EINVAL);
	machine(&m, 1, 1);
	m.virtio[0].base = 0x100000000ull; /* Memory32Fixed cannot say it */
	assert_int_equal(acpi_build(&m, BOOT_ACPI_ADDR, &t), -EINVAL);
	assert_null(t.buf);
}

/* ---- iasl ---- */

static void need_iasl(void)
{
	if (system("command -v iasl >/dev/null 2>&1"))
		fail_msg("iasl is missing: install Debian's acpica-tools (scripts/deps.sh test "
			 "does)");
}

static void write_file(const char *path, const void *p, size_t n)
{
	int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, p, n), (ssize_t)n);
	close(fd);
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *s;
	long n;

	if (!f)
		fail_msg("%s: %s", path, strerror(errno));
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	s = malloc((size_t)n + 1);
	assert_non_null(s);
	assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
	s[n] = '\0';
	fclose(f);
	if (len)
		*len = (size_t)n;
	return s;
}

/*
 * Decompile @aml (a whole table) with iasl -d and return the .dsl text;
 * then compile that text back (no optimizations) and check iasl makes the
 * same AML body from it as we did.
 */
static char *iasl_roundtrip(const char *name, const uint8_t *table, size_t len)
{
	char dat[256], dsl[256], cmd[1024], re[256];
	char *text, *aml;
	size_t n;

	need_iasl();
	snprintf(dat, sizeof(dat), "%s/%s.dat", tmpdir, name);
	snprintf(dsl, sizeof(dsl), "%s/%s.dsl", tmpdir, name);
	snprintf(re, sizeof(re), "%s/%s-re", tmpdir, name);
	write_file(dat, table, len);
	snprintf(cmd, sizeof(cmd), "cd %s && iasl -d %s.dat >%s.log 2>&1", tmpdir, name, name);
	if (system(cmd))
		fail_msg("iasl -d %s failed (log: %s/%s.log)", dat, tmpdir, name);
	text = read_file(dsl, NULL);
	snprintf(cmd, sizeof(cmd), "iasl -oa -p %s %s >%s/%s-re.log 2>&1", re, dsl, tmpdir, name);
	if (system(cmd))
		fail_msg("iasl could not compile its own decompilation %s", dsl);
	strcat(re, ".aml");
	aml = read_file(re, &n);
	assert_int_equal(n, len);
	assert_memory_equal(aml + 36, table + 36, len - 36); /* headers differ: creator, sum */
	free(aml);
	return text;
}

static unsigned count(const char *text, const char *needle)
{
	unsigned n = 0;

	for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

/* The text of Device (@name) up to the next Device or the end. */
static char *device_block(const char *text, const char *name)
{
	char head[32];
	const char *p, *end;
	char *s;

	snprintf(head, sizeof(head), "Device (%s)", name);
	p = strstr(text, head);
	if (!p)
		fail_msg("no %s in the decompiled DSDT", head);
	end = strstr(p + strlen(head), "Device (");
	if (!end)
		end = p + strlen(p);
	s = strndup(p, (size_t)(end - p));
	assert_non_null(s);
	return s;
}

/* The number in the first line after @key in @block ("0xD0000000," "Zero" "One" "0x05"). */
static unsigned long long value_after(const char *block, const char *key)
{
	const char *p = strstr(block, key);

	if (!p)
		fail_msg("\"%s\" missing in:\n%s", key, block);
	p += strlen(key);
	while (*p == ' ' || *p == '\n' || *p == ',' || *p == '(' || *p == '{')
		p++;
	if (!strncmp(p, "Zero", 4))
		return 0;
	if (!strncmp(p, "One", 3))
		return 1;
	return strtoull(p, NULL, 0);
}

static void dsdt_decompiles_to_the_machine(unsigned nvirtio)
{
	struct acpi_tables t;
	struct machine m;
	char name[32], *text, *b;

	machine(&m, 2, nvirtio);
	build(&m, &t);
	snprintf(name, sizeof(name), "dsdt%u", nvirtio);
	text = iasl_roundtrip(name, t.buf + t.t[ACPI_DSDT].off, t.t[ACPI_DSDT].len);

	assert_int_equal(count(text, "Device ("), 3 + nvirtio);
	assert_int_equal(count(text, "\"LNRO0005\""), nvirtio);
	assert_non_null(strstr(text, "Scope (\\_SB)"));
	assert_non_null(strstr(text, "Name (\\_S5, Package (0x04)"));

	b = device_block(text, "COM1");
	assert_non_null(strstr(b, "EisaId (\"PNP0501\")"));
	assert_int_equal(value_after(b, "Name (_UID,"), 0);
	assert_int_equal(value_after(b, "IO (Decode16,"), 0x3f8);
	assert_non_null(strstr(b, "0x08,               // Length"));
	assert_int_equal(value_after(b, "IRQNoFlags ()"), 4);
	free(b);
	b = device_block(text, "PS2K");
	assert_non_null(strstr(b, "EisaId (\"PNP0303\")"));
	assert_int_equal(count(b, "IO (Decode16"), 2);
	assert_non_null(strstr(b, "0x0064,             // Range Minimum"));
	assert_int_equal(value_after(b, "IRQNoFlags ()"), 1);
	free(b);
	b = device_block(text, "RTC");
	assert_non_null(strstr(b, "EisaId (\"PNP0B00\")"));
	assert_int_equal(value_after(b, "IO (Decode16,"), 0x70);
	assert_int_equal(value_after(b, "IRQNoFlags ()"), 8);
	free(b);

	for (unsigned i = 0; i < nvirtio; i++) {
		char dev[8];

		snprintf(dev, sizeof(dev), "V%03u", i);
		b = device_block(text, dev);
		assert_non_null(strstr(b, "Name (_HID, \"LNRO0005\")"));
		assert_int_equal(value_after(b, "Name (_UID,"), i);
		assert_int_equal(value_after(b, "Memory32Fixed (ReadWrite,"), m.virtio[i].base);
		assert_int_equal(value_after(b, "// Address Base"), MACHINE_VIRTIO_SIZE);
		assert_non_null(
			strstr(b, "Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive"));
		assert_int_equal(value_after(strstr(b, "Interrupt ("), "\n"), m.virtio[i].gsi);
		free(b);
	}
	free(text);
	acpi_tables_free(&t);
}

static void dsdt_no_virtio(void **state)
{
	(void)state;
	dsdt_decompiles_to_the_machine(0);
}

static void dsdt_two_virtio(void **state)
{
	(void)state;
	dsdt_decompiles_to_the_machine(2);
}

static void dsdt_most_virtio(void **state)
{
	(void)state;
	dsdt_decompiles_to_the_machine(MACHINE_VIRTIO_MAX);
}

/* Every other table decompiles too (iasl -d knows FACP, APIC and XSDT). */
static void other_tables_decompile(void **state)
{
	static const enum acpi_table_id ids[] = {ACPI_FADT, ACPI_MADT, ACPI_XSDT};
	struct acpi_tables t;
	struct machine m;

	(void)state;
	need_iasl();
	machine(&m, 2, 1);
	build(&m, &t);
	for (unsigned i = 0; i < ARRAY_SIZE(ids); i++) {
		char path[256], cmd[512], *text;

		snprintf(path, sizeof(path), "%s/%s", tmpdir, t.t[ids[i]].file);
		write_file(path, t.buf + t.t[ids[i]].off, t.t[ids[i]].len);
		snprintf(cmd, sizeof(cmd), "cd %s && iasl -d %s >/dev/null 2>&1", tmpdir,
			 t.t[ids[i]].file);
		assert_int_equal(system(cmd), 0);
		path[strlen(path) - 3] = '\0';
		strcat(path, "dsl");
		text = read_file(path, NULL);
		assert_null(strstr(text, "Error"));
		if (ids[i] == ACPI_FADT) {
			assert_non_null(strstr(text, "Hardware Reduced (V5) : 1"));
			assert_non_null(strstr(text, "Address : 00000000000003C0"));
			assert_non_null(strstr(text, "Address : 00000000000003C1"));
		}
		free(text);
	}
	acpi_tables_free(&t);
}

/* ---- the AML encoder ---- */

static void pkglen_boundaries(void **state)
{
	static const struct {
		size_t body;
		unsigned n;
		uint8_t b[4];
	} cases[] = {
		{0, 1, {0x01}},
		{62, 1, {0x3f}},                        /* the largest one-byte length: 63 */
		{63, 2, {0x41, 0x04}},                  /* 63 + 2 = 65 */
		{4093, 2, {0x4f, 0xff}},                /* 4095: the largest two-byte length */
		{4094, 3, {0x81, 0x00, 0x01}},          /* 4097 */
		{0xffffc, 3, {0x8f, 0xff, 0xff}},       /* 0xfffff: the largest three-byte length */
		{0xffffd, 4, {0xc1, 0x00, 0x00, 0x01}}, /* 0x100001 */
		{0x0ffffffb, 4, {0xcf, 0xff, 0xff, 0xff}}, /* 0x0fffffff: the largest */
	};
	uint8_t out[4];

	(void)state;
	for (unsigned i = 0; i < ARRAY_SIZE(cases); i++) {
		memset(out, 0xaa, sizeof(out));
		assert_int_equal(aml_pkglen(cases[i].body, out), cases[i].n);
		assert_memory_equal(out, cases[i].b, cases[i].n);
	}
	assert_int_equal(aml_pkglen(0x0ffffffc, out), 0);
}

/* The same corners through real scopes, decompiled by iasl: the lengths must hold. */
static void pkglen_through_iasl(void **state)
{
	static const size_t sizes[] = {50, 60, 61, 62, 63, 64, 4090, 4091, 4092, 4093, 4094, 70000};
	struct aml a;
	uint8_t *table, fill[70000];
	char *text;

	(void)state;
	memset(fill, 0x5a, sizeof(fill));
	aml_init(&a);
	aml_scope(&a, "\\_SB_");
	for (unsigned i = 0; i < ARRAY_SIZE(sizes); i++) {
		char nm[8];

		snprintf(nm, sizeof(nm), "B%03u", i);
		aml_name_decl(&a, nm);
		aml_buffer(&a);
		aml_bytes(&a, fill, sizes[i]);
		aml_end(&a);
	}
	aml_name_decl(&a, "PKG");
	aml_package(&a, 40);
	for (unsigned i = 0; i < 40; i++)
		aml_integer(&a, 0x100 + i); /* 3 bytes each: the package crosses 63 */
	aml_end(&a);
	aml_end(&a);
	assert_int_equal(aml_finish(&a), 0);

	table = calloc(1, 36 + a.len);
	assert_non_null(table);
	memcpy(table, "DSDT", 4);
	*(uint32_t *)(table + 4) = (uint32_t)(36 + a.len);
	table[8] = 2;
	memcpy(table + 36, a.buf, a.len);
	table[9] = (uint8_t)-sum(table, 36 + a.len);
	text = iasl_roundtrip("pkglen", table, 36 + a.len);
	for (unsigned i = 0; i < ARRAY_SIZE(sizes); i++) {
		char want[64];

		/* iasl prints the size as wide as its encoding: Byte, Word, DWord. */
		snprintf(want, sizeof(want), "Name (B%03u, Buffer (0x%0*zX)", i,
			 sizes[i] <= 0xff     ? 2
			 : sizes[i] <= 0xffff ? 4
					      : 8,
			 sizes[i]);
		if (!strstr(text, want))
			fail_msg("\"%s\" not in the decompiled text:\n%.1500s", want, text);
	}
	assert_non_null(strstr(text, "Name (PKG, Package (0x28)"));
	assert_non_null(strstr(text, "0x0127"));
	free(text);
	free(table);
	aml_free(&a);
}

static void names_and_integers(void **state)
{
	static const struct {
		const char *path;
		const char *bytes;
		size_t n;
	} names[] = {
		{"\\_SB_", "\\_SB_", 5},
		{"_S5", "_S5_", 4},
		{"\\_SB_.COM1", "\\\x2e_SB_COM1", 10},
		{"^^AB.CD.EF",
		 "^^\x2f\x03"
		 "AB__CD__EF__",
		 16},
		{"", "\0", 1},
	};
	static const char *bad[] = {"1ABC", "ABCDE", "a", "AB..CD", "AB.", "\\A-B"};
	static const struct {
		uint64_t v;
		const char *bytes;
		size_t n;
	} ints[] = {
		{0, "\x00", 1},
		{1, "\x01", 1},
		{2, "\x0a\x02", 2},
		{0xff, "\x0a\xff", 2},
		{0x100, "\x0b\x00\x01", 3},
		{0x10000, "\x0c\x00\x00\x01\x00", 5},
		{0x100000000ull, "\x0e\x00\x00\x00\x00\x01\x00\x00\x00", 9},
	};
	struct aml a;

	(void)state;
	for (unsigned i = 0; i < ARRAY_SIZE(names); i++) {
		aml_init(&a);
		aml_name(&a, names[i].path);
		assert_int_equal(aml_finish(&a), 0);
		assert_int_equal(a.len, names[i].n);
		assert_memory_equal(a.buf, names[i].bytes, names[i].n);
		aml_free(&a);
	}
	for (unsigned i = 0; i < ARRAY_SIZE(bad); i++) {
		aml_init(&a);
		aml_name(&a, bad[i]);
		assert_int_equal(aml_finish(&a), -EINVAL);
		aml_free(&a);
	}
	for (unsigned i = 0; i < ARRAY_SIZE(ints); i++) {
		aml_init(&a);
		aml_integer(&a, ints[i].v);
		assert_int_equal(aml_finish(&a), 0);
		assert_int_equal(a.len, ints[i].n);
		assert_memory_equal(a.buf, ints[i].bytes, ints[i].n);
		aml_free(&a);
	}
	aml_init(&a);
	aml_eisaid(&a, "PNP0501");
	assert_int_equal(aml_finish(&a), 0);
	assert_memory_equal(a.buf, "\x0c\x41\xd0\x05\x01", 5);
	aml_free(&a);
	aml_init(&a);
	aml_eisaid(&a, "pnp0501");
	assert_int_equal(aml_finish(&a), -EINVAL);
	aml_free(&a);
	/* Unbalanced scopes are an error, not a silently short table. */
	aml_init(&a);
	aml_device(&a, "DEV0");
	assert_int_equal(aml_finish(&a), -EINVAL);
	aml_free(&a);
	aml_init(&a);
	aml_end(&a);
	assert_int_equal(aml_finish(&a), -EINVAL);
	aml_free(&a);
}

/* ---- files ---- */

static void tables_written_as_acpidump_names_them(void **state)
{
	struct acpi_tables t;
	struct vmm_err e = {0};
	struct machine m;
	char dir[256], path[300], cmd[400];

	(void)state;
	machine(&m, 2, 3);
	build(&m, &t);
	snprintf(dir, sizeof(dir), "%s/out", tmpdir);
	assert_int_equal(acpi_write_dir(&t, dir, &e), 0); /* created: its parent exists */
	for (unsigned i = 0; i < ACPI_NTABLES; i++) {
		size_t n;
		char *s;

		snprintf(path, sizeof(path), "%s/%s", dir, t.t[i].file);
		s = read_file(path, &n);
		assert_int_equal(n, t.t[i].len);
		assert_memory_equal(s, t.buf + t.t[i].off, n);
		free(s);
	}
	/* Again into the same directory: replaced, and no temporary file left. */
	assert_int_equal(acpi_write_dir(&t, dir, &e), 0);
	snprintf(cmd, sizeof(cmd), "test $(ls -A %s | wc -l) -eq %d", dir, ACPI_NTABLES);
	assert_int_equal(system(cmd), 0);

	/* A file, and a directory whose parent is missing: bad input, nothing created. */
	assert_int_equal(acpi_write_dir(&t, path, &e), -ENOTDIR);
	assert_int_equal(e.kind, ERR_CONFIG);
	err_clear(&e);
	snprintf(dir, sizeof(dir), "%s/missing/out", tmpdir);
	assert_int_equal(acpi_write_dir(&t, dir, &e), -ENOENT);
	assert_int_equal(e.kind, ERR_CONFIG);
	assert_non_null(strstr(e.msg, "--out"));
	snprintf(path, sizeof(path), "%s/missing", tmpdir);
	assert_int_equal(access(path, F_OK), -1);
	acpi_tables_free(&t);
}

/* ---- the sleep registers ---- */

static int stops, stop_why;

static void fake_stop(void *opaque, enum dev_stop why, int status)
{
	(void)opaque;
	(void)status;
	stops++;
	stop_why = (int)why;
}

static void sleep_register_powers_off_on_s5(void **state)
{
	struct dev_host host = {.request_stop = fake_stop};
	struct acpi_pm pm;
	uint8_t v;
	uint32_t wide;

	(void)state;
	acpi_pm_init(&pm, &host, MACHINE_S5_TYPE);
	stops = 0;
	/* Another sleep type, S5 without SLP_EN, anything to the status register: nothing. */
	v = (uint8_t)(3 << MACHINE_SLP_TYP_SHIFT | MACHINE_SLP_EN);
	pm.dev.ops->write(&pm.dev, ACPI_PM_CONTROL, &v, 1);
	pm.dev.ops->write(&pm.dev, ACPI_PM_CONTROL, &v, 1);
	v = MACHINE_S5_TYPE << MACHINE_SLP_TYP_SHIFT;
	pm.dev.ops->write(&pm.dev, ACPI_PM_CONTROL, &v, 1);
	v = 0xff;
	pm.dev.ops->write(&pm.dev, ACPI_PM_STATUS, &v, 1);
	assert_int_equal(stops, 0);
	/* The status register never says "woken": ACPICA polls it after SLP_EN. */
	pm.dev.ops->read(&pm.dev, ACPI_PM_STATUS, &v, 1);
	assert_int_equal(v, 0);
	wide = 0xffffffff;
	pm.dev.ops->read(&pm.dev, ACPI_PM_CONTROL, &wide, 4);
	assert_int_equal(wide, 0);
	/* What Linux writes for \_S5: SLP_TYPa << 2 | SLP_EN. */
	v = (uint8_t)(MACHINE_S5_TYPE << MACHINE_SLP_TYP_SHIFT | MACHINE_SLP_EN);
	assert_int_equal(v, 0x34);
	pm.dev.ops->write(&pm.dev, ACPI_PM_CONTROL, &v, 1);
	assert_int_equal(stops, 1);
	assert_int_equal(stop_why, DEV_STOP_POWER_OFF);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(tables_link_and_sum),
		cmocka_unit_test(fadt_is_hardware_reduced),
		cmocka_unit_test(madt_lists_every_vcpu),
		cmocka_unit_test(same_machine_same_bytes),
		cmocka_unit_test(unbuildable_machines_are_refused),
		cmocka_unit_test(dsdt_no_virtio),
		cmocka_unit_test(dsdt_two_virtio),
		cmocka_unit_test(dsdt_most_virtio),
		cmocka_unit_test(other_tables_decompile),
		cmocka_unit_test(pkglen_boundaries),
		cmocka_unit_test(pkglen_through_iasl),
		cmocka_unit_test(names_and_integers),
		cmocka_unit_test(tables_written_as_acpidump_names_them),
		cmocka_unit_test(sleep_register_powers_off_on_s5),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
