/*
 * The x86 boot builders and the kernel loader, checked against the layouts
 * the documents define: Linux boot protocol (boot.rst, zero-page.rst: raw byte
 * offsets), Xen PVH start info, Intel MP spec 1.4 (checksums, entry order).
 * Guest memory is real (mem_map on anonymous memory); no hypervisor needed.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "memory/mem.h"
#include "vmm/loader.h"
#include "vmm/x86_boot.h"
#include "vmm/x86_cpu.h"

#include "bytes.h"
#include "tmpdir.h"

static const char *write_file(const char *name, const void *data, size_t len)
{
	static char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
	return path;
}

#define FAKE_PAYLOAD     (64 * 1024)
#define FAKE_SETUP_SECTS 4

/* A minimal bzImage: setup sectors with a 2.15 header, then a marked payload. */
static const char *fake_bzimage_at(uint16_t version, uint16_t xloadflags, uint32_t cmdline_size,
				   uint64_t pref_address)
{
	static uint8_t img[(FAKE_SETUP_SECTS + 1) * 512 + FAKE_PAYLOAD];

	memset(img, 0, sizeof(img));
	img[0x1f1] = FAKE_SETUP_SECTS;
	img[0x1fe] = 0x55;
	img[0x1ff] = 0xaa;
	img[0x200] = 0xeb;
	img[0x201] = 0x6a; /* header runs to 0x26c */
	memcpy(img + 0x202, "HdrS", 4);
	put16(img, 0x206, version);
	img[0x211] = 0x01;             /* LOADED_HIGH */
	put32(img, 0x22c, 0x7fffffff); /* initrd_addr_max */
	put32(img, 0x230, 0x200000);   /* kernel_alignment */
	img[0x234] = 1;                /* relocatable */
	put16(img, 0x236, xloadflags);
	put32(img, 0x238, cmdline_size);
	put32(img, 0x260, 8 << 20); /* init_size: 8 MiB from where it decompresses */
	memcpy(img + 0x258, &pref_address, 8);
	memset(img + (FAKE_SETUP_SECTS + 1) * 512, 0xcc, FAKE_PAYLOAD);
	return write_file("bzImage", img, sizeof(img));
}

static const char *fake_bzimage(uint16_t version, uint16_t xloadflags, uint32_t cmdline_size)
{
	return fake_bzimage_at(version, xloadflags, cmdline_size, 0);
}

static int map_ram(struct guest_mem *gm, uint64_t mib, uint64_t second_mib)
{
	struct mem_region_cfg c[2];
	struct vmm_err e = {0};

	mem_cfg_init(&c[0], MEM_BACKING_ANON, "lo", "memory.regions[0]");
	c[0].size = mib << 20;
	c[0].prefault = false;
	mem_cfg_init(&c[1], MEM_BACKING_ANON, "hi", "memory.regions[1]");
	c[1].size = second_mib << 20;
	c[1].prefault = false;
	if (mem_cfg_finalize_all(c, second_mib ? 2 : 1, &e))
		fail_msg("%s", e.msg);
	return mem_map(gm, c, second_mib ? 2 : 1, &e);
}

static void e820_of_plain_and_hole_layouts(void **state)
{
	struct linux_e820_entry t[16];
	struct guest_mem gm;
	unsigned n;

	(void)state;
	assert_int_equal(map_ram(&gm, 256, 0), 0);
	n = x86_e820(&gm, t, 16);
	assert_int_equal(n, 3);
	assert_true(t[0].addr == 0 && t[0].size == 0x9fc00 && t[0].type == E820_RAM);
	assert_true(t[1].addr == 0x9fc00 && t[1].size == 0x100000 - 0x9fc00 &&
		    t[1].type == E820_RESERVED);
	assert_true(t[2].addr == 0x100000 && t[2].size == (256u << 20) - 0x100000 &&
		    t[2].type == E820_RAM);
	mem_unmap(&gm);

	/* 3.5 GiB then 64 MiB: RAM stops at 3 GiB and resumes at 4 GiB. */
	assert_int_equal(map_ram(&gm, 3584, 64), 0);
	n = x86_e820(&gm, t, 16);
	assert_int_equal(n, 5);
	assert_true(t[2].addr == 0x100000 && t[2].addr + t[2].size == 3ull << 30);
	assert_true(t[3].addr == 4ull << 30 && t[3].size == 512ull << 20 && t[3].type == E820_RAM);
	assert_true(t[4].addr == (4ull << 30) + (512ull << 20) && t[4].size == 64ull << 20);
	mem_unmap(&gm);
}

static uint8_t sum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;

	for (size_t i = 0; i < n; i++)
		s = (uint8_t)(s + p[i]);
	return s;
}

static void mptable_follows_the_spec(void **state)
{
	uint8_t buf[4096];
	size_t len = x86_mptable(buf, 0xf0000, 3, 0x00a20f10, 0x178bfbff);
	const uint8_t *mpc = buf + 16;
	const uint8_t *p;
	unsigned cpus = 0, ioapics = 0, intsrc = 0, lint = 0, bus = 0;

	(void)state;
	assert_int_equal(len, x86_mptable_size(3));
	/* Floating pointer: "_MP_", pointer to the table, 1 paragraph, rev 1.4, sums to 0. */
	assert_memory_equal(buf, "_MP_", 4);
	assert_int_equal(get32(buf, 4), 0xf0000 + 16);
	assert_int_equal(buf[8], 1);
	assert_int_equal(buf[9], 4);
	assert_int_equal(sum(buf, 16), 0);
	/* Config table: "PCMP", length covers all entries, sums to 0, LAPIC at 0xfee00000. */
	assert_memory_equal(mpc, "PCMP", 4);
	assert_int_equal(*(const uint16_t *)(mpc + 4), len - 16);
	assert_int_equal(sum(mpc, len - 16), 0);
	assert_int_equal(get32(mpc, 36), 0xfee00000);
	/* Entries: processors (20 bytes) first, then 8-byte ones. */
	for (p = mpc + 44; p < buf + len;) {
		switch (p[0]) {
		case 0:
			assert_int_equal(p[1], cpus);              /* APIC id */
			assert_int_equal(p[3] & 1, 1);             /* enabled */
			assert_int_equal(!!(p[3] & 2), cpus == 0); /* BSP flag on CPU 0 only */
			assert_int_equal(get32(p, 4), 0x00a20f10); /* signature */
			cpus++;
			p += 20;
			break;
		case 1:
			assert_memory_equal(p + 2, "ISA   ", 6);
			bus++;
			p += 8;
			break;
		case 2:
			assert_int_equal(p[1], 3); /* IOAPIC id after the CPUs */
			assert_int_equal(get32(p, 4), 0xfec00000);
			ioapics++;
			p += 8;
			break;
		case 3:
			assert_int_equal(p[5], intsrc); /* ISA IRQ n */
			assert_int_equal(p[7], intsrc); /* -> IOAPIC pin n */
			intsrc++;
			p += 8;
			break;
		case 4:
			lint++;
			p += 8;
			break;
		default:
			fail_msg("unknown MP entry type %u", p[0]);
		}
	}
	assert_int_equal(cpus, 3);
	assert_int_equal(bus, 1);
	assert_int_equal(ioapics, 1);
	assert_int_equal(intsrc, 16);
	assert_int_equal(lint, 2);
	assert_int_equal(*(const uint16_t *)(mpc + 34), 3 + 1 + 1 + 16 + 2); /* entry count */
}

static void loader_recognizes_bzimage(void **state)
{
	struct kernel_image k;
	struct vmm_err e = {0};

	(void)state;
	assert_int_equal(kernel_open(fake_bzimage(0x020f, 1, 2047), &k, &e), 0);
	assert_int_equal(k.kind, KERNEL_BZIMAGE);
	assert_int_equal(k.entry, 0x100200); /* startup_64: load address + 0x200 */
	assert_int_equal(k.seg[0].paddr, 0x100000);
	assert_int_equal(k.seg[0].offset, (FAKE_SETUP_SECTS + 1) * 512);
	assert_int_equal(k.seg[0].filesz, FAKE_PAYLOAD);
	/* No pref_address: the decompressor runs at the load address rounded up to
	 * kernel_alignment (2 MiB) and needs init_size (8 MiB) from there. */
	assert_int_equal(k.hi, (2 << 20) + (8 << 20));
	assert_int_equal(k.cmdline_max, 2047);
	assert_int_equal(k.hdr_len, 0x26c - 0x1f1);
	kernel_close(&k);

	/* A kernel that prefers 16 MiB (every stock x86-64 kernel) is loaded there. */
	assert_int_equal(kernel_open(fake_bzimage_at(0x020f, 1, 2047, 16 << 20), &k, &e), 0);
	assert_int_equal(k.seg[0].paddr, 16 << 20);
	assert_int_equal(k.entry, (16 << 20) + 0x200);
	assert_int_equal(k.lo, 16 << 20);
	assert_int_equal(k.hi, (16 << 20) + (8 << 20));
	kernel_close(&k);

	/* Protocol 2.11 has no 64-bit entry. */
	memset(&e, 0, sizeof(e));
	assert_int_not_equal(kernel_open(fake_bzimage(0x020b, 0, 2047), &k, &e), 0);
	assert_int_equal(e.kind, ERR_CONFIG);
	assert_non_null(strstr(e.msg, "boot protocol 2.11 without the 64-bit entry"));
}

/* A small ELF64 executable with one PT_LOAD and optionally a PVH note. */
static const char *fake_elf(uint16_t machine, uint16_t type, uint64_t entry, bool pvh,
			    uint64_t memsz)
{
	static uint8_t img[8192];
	Elf64_Ehdr *h = (void *)img;
	Elf64_Phdr *ph = (void *)(img + sizeof(*h));
	uint8_t *note = img + 512;

	memset(img, 0, sizeof(img));
	memcpy(h->e_ident, ELFMAG, SELFMAG);
	h->e_ident[EI_CLASS] = ELFCLASS64;
	h->e_ident[EI_DATA] = ELFDATA2LSB;
	h->e_ident[EI_VERSION] = EV_CURRENT;
	h->e_type = type;
	h->e_machine = machine;
	h->e_version = EV_CURRENT;
	h->e_entry = entry;
	h->e_phoff = sizeof(*h);
	h->e_ehsize = sizeof(*h);
	h->e_phentsize = sizeof(*ph);
	h->e_phnum = pvh ? 2 : 1;
	ph[0] = (Elf64_Phdr){.p_type = PT_LOAD,
			     .p_offset = 4096,
			     .p_vaddr = 0xffffffff81000000ull,
			     .p_paddr = 0x1000000,
			     .p_filesz = 4096,
			     .p_memsz = memsz};
	if (pvh) {
		uint32_t hdr[3] = {4, 8, XEN_ELFNOTE_PHYS32_ENTRY};
		uint64_t ent = 0x1000040;

		memcpy(note, hdr, 12);
		memcpy(note + 12, "Xen", 4);
		memcpy(note + 16, &ent, 8);
		ph[1] = (Elf64_Phdr){.p_type = PT_NOTE, .p_offset = 512, .p_filesz = 24};
	}
	memset(img + 4096, 0x90, 4096);
	return write_file("vmlinux", img, sizeof(img));
}

static void loader_recognizes_elf_kinds(void **state)
{
	static const struct {
		uint16_t machine, type;
		uint64_t entry;
		bool pvh;
		const char *err; /* NULL: accepted */
		enum kernel_kind kind;
		uint64_t want_entry;
	} c[] = {
		/* vmlinux: a virtual e_entry is translated through its segment */
		{EM_X86_64, ET_EXEC, 0xffffffff81000100ull, false, NULL, KERNEL_ELF_LINUX,
		 0x1000100},
		{EM_X86_64, ET_EXEC, 0x1000100, false, NULL, KERNEL_ELF_LINUX, 0x1000100},
		{EM_X86_64, ET_EXEC, 0x1000100, true, NULL, KERNEL_ELF_PVH, 0x1000040},
		{EM_AARCH64, ET_EXEC, 0x1000100, false, "for machine 183, not x86-64", 0, 0},
		{EM_X86_64, ET_DYN, 0x1000100, false, "not an executable (ET_EXEC)", 0, 0},
		{EM_X86_64, ET_EXEC, 0x50, false, "no usable entry point: e_entry 0x50", 0, 0},
		{EM_X86_64, ET_EXEC, 0, false, "no usable entry point", 0, 0},
	};

	(void)state;
	for (unsigned i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		struct kernel_image k;
		struct vmm_err e = {0};
		int r = kernel_open(fake_elf(c[i].machine, c[i].type, c[i].entry, c[i].pvh, 8192),
				    &k, &e);

		if (!c[i].err) {
			if (r)
				fail_msg("case %u: %s", i, e.msg);
			assert_int_equal(k.kind, c[i].kind);
			assert_int_equal(k.entry, c[i].want_entry);
			assert_int_equal(k.lo, 0x1000000);
			assert_int_equal(k.hi, 0x1000000 + 8192);
			kernel_close(&k);
		} else {
			assert_int_not_equal(r, 0);
			assert_int_equal(e.kind, ERR_CONFIG);
			if (!strstr(e.msg, c[i].err))
				fail_msg("case %u: %s", i, e.msg);
			assert_non_null(strstr(e.msg, "boot-source.kernel_image_path"));
		}
	}
}

static void loader_rejects_what_is_not_a_kernel(void **state)
{
	static const char junk[4096] = "#!/bin/sh\necho not a kernel\n";
	struct kernel_image k;
	struct vmm_err e = {0};
	uint8_t elf[8192];
	int fd;

	(void)state;
	/* Program headers "at" 2^64-16: the bounds check must not wrap (found in review). */
	fd = open(fake_elf(EM_X86_64, ET_EXEC, 0x1000100, false, 8192), O_RDONLY);
	assert_int_equal(read(fd, elf, sizeof(elf)), (ssize_t)sizeof(elf));
	close(fd);
	memset(elf + 32, 0xff, 8);
	elf[32] = 0xf0;
	assert_int_not_equal(kernel_open(write_file("wrap", elf, sizeof(elf)), &k, &e), 0);
	assert_non_null(strstr(e.msg, "program headers past the end of the file"));
	memset(&e, 0, sizeof(e));
	assert_int_not_equal(kernel_open(write_file("junk", junk, sizeof(junk)), &k, &e), 0);
	assert_non_null(strstr(e.msg, "is neither a bzImage"));
	memset(&e, 0, sizeof(e));
	assert_int_not_equal(kernel_open(write_file("tiny", "\177ELF", 4), &k, &e), 0);
	assert_non_null(strstr(e.msg, "not a kernel image"));
	memset(&e, 0, sizeof(e));
	assert_int_not_equal(kernel_open("/nonexistent/vmlinux", &k, &e), 0);
	assert_non_null(strstr(e.msg, "cannot open \"/nonexistent/vmlinux\""));
}

static void linux_boot_zero_page_and_cpu_state(void **state)
{
	static const char initrd[3 * 4096 + 17] = "INITRD";
	struct x86_boot_cfg bc = {.cmdline = "console=ttyS0 reboot=k", .vcpus = 2};
	struct x86_boot_info info;
	struct x86_boot_cpu bsp;
	struct kernel_image k;
	struct guest_mem gm;
	struct vmm_err e = {0};
	const uint8_t *zp, *kernel;
	const uint64_t *pml4, *pdpt, *pd;
	char initrd_path[256];

	(void)state;
	snprintf(initrd_path, sizeof(initrd_path), "%s",
		 write_file("initrd", initrd, sizeof(initrd)));
	assert_int_equal(kernel_open(fake_bzimage(0x020f, 1, 2047), &k, &e), 0);
	assert_int_equal(map_ram(&gm, 64, 0), 0);
	bc.kernel = &k;
	bc.initrd_path = initrd_path;
	assert_int_equal(x86_boot_load(&gm, &bc, &bsp, &info, &e), 0);

	zp = mem_gpa_to_hva(&gm, BOOT_ZERO_PAGE_ADDR, 4096);
	/* Raw offsets from zero-page.rst / boot.rst. */
	assert_int_equal(zp[0x1e8], 3);                /* e820_entries */
	assert_int_equal(get64(zp, 0x2d0), 0);         /* e820_table[0].addr */
	assert_int_equal(get64(zp, 0x2d8), 0x9fc00);   /* e820_table[0].size */
	assert_int_equal(get32(zp, 0x2e0), 1);         /* RAM */
	assert_int_equal(get32(zp, 0x2e4 + 16), 2);    /* [1] reserved */
	assert_int_equal(get64(zp, 0x070), BOOT_ACPI_ADDR); /* acpi_rsdp_addr */
	assert_memory_equal(mem_gpa_to_hva(&gm, BOOT_ACPI_ADDR, 8), "RSD PTR ", 8);
	assert_int_equal(zp[0x1f1], FAKE_SETUP_SECTS); /* setup_sects from the image */
	assert_int_equal(*(const uint16_t *)(zp + 0x1fe), 0xaa55);
	assert_memory_equal(zp + 0x202, "HdrS", 4);
	assert_int_equal(*(const uint16_t *)(zp + 0x206), 0x020f);
	assert_int_equal(zp[0x210], 0xff);                     /* type_of_loader */
	assert_int_equal(get32(zp, 0x228), BOOT_CMDLINE_ADDR); /* cmd_line_ptr */
	assert_int_equal(get32(zp, 0x218), info.initrd_gpa);   /* ramdisk_image */
	assert_int_equal(get32(zp, 0x21c), sizeof(initrd));    /* ramdisk_size */
	assert_string_equal(mem_gpa_to_hva(&gm, get32(zp, 0x228), 1), "console=ttyS0 reboot=k");
	/* The initrd: at the top of RAM, page aligned, above the kernel's init_size. */
	assert_int_equal(info.initrd_gpa % 4096, 0);
	assert_true(info.initrd_gpa + sizeof(initrd) <= 64u << 20);
	assert_true((64u << 20) - (info.initrd_gpa + sizeof(initrd)) < 4096);
	assert_true(info.initrd_gpa >= k.hi);
	assert_memory_equal(mem_gpa_to_hva(&gm, info.initrd_gpa, 6), "INITRD", 6);
	/* The protected-mode kernel at 1 MiB. */
	kernel = mem_gpa_to_hva(&gm, 0x100000, FAKE_PAYLOAD);
	assert_int_equal(kernel[0], 0xcc);
	assert_int_equal(kernel[FAKE_PAYLOAD - 1], 0xcc);
	/* Identity page tables: 2M pages over 0-4 GiB. */
	pml4 = mem_gpa_to_hva(&gm, BOOT_PML4_ADDR, 4096);
	pdpt = mem_gpa_to_hva(&gm, BOOT_PDPT_ADDR, 4096);
	pd = mem_gpa_to_hva(&gm, BOOT_PD_ADDR + 3 * 4096, 4096);
	assert_int_equal(pml4[0] & ~0xfffull, BOOT_PDPT_ADDR);
	assert_int_equal(pdpt[3] & ~0xfffull, BOOT_PD_ADDR + 3 * 4096);
	assert_int_equal(pd[511], (4ull << 30) - (2u << 20) + 0x83);
	/* The 64-bit entry state of boot.rst: long mode, %rsi = zero page, flat segments. */
	assert_int_equal(bsp.regs.rip, 0x100200);
	assert_int_equal(bsp.regs.rsi, BOOT_ZERO_PAGE_ADDR);
	assert_int_equal(bsp.sregs.cr3, BOOT_PML4_ADDR);
	assert_true(bsp.sregs.cr0 & (1u << 31) && bsp.sregs.cr0 & 1);
	assert_true(bsp.sregs.cr4 & (1u << 5));
	assert_int_equal(bsp.sregs.efer & 0x500, 0x500);
	assert_int_equal(bsp.sregs.cs.selector, BOOT_CS64);
	assert_int_equal(bsp.sregs.cs.l, 1);
	assert_int_equal(bsp.sregs.ds.selector, BOOT_DS);
	/* The MP table comes once the CPU signature is known, in place for Linux's scan. */
	assert_memory_not_equal(mem_gpa_to_hva(&gm, BOOT_MPTABLE_ADDR, 4), "_MP_", 4);
	assert_int_equal(x86_boot_mptable(&gm, 2, 0x00a20f10, 0x178bfbff, &e), 0);
	assert_memory_equal(mem_gpa_to_hva(&gm, BOOT_MPTABLE_ADDR, 4), "_MP_", 4);
	kernel_close(&k);
	mem_unmap(&gm);
}

static void pvh_start_info_and_cpu_state(void **state)
{
	struct x86_boot_cfg bc = {.cmdline = "test=smp", .vcpus = 1};
	const struct hvm_start_info *si;
	const struct hvm_memmap_entry *mm;
	struct x86_boot_info info;
	struct x86_boot_cpu bsp;
	struct kernel_image k;
	struct guest_mem gm;
	struct vmm_err e = {0};

	(void)state;
	assert_int_equal(kernel_open(fake_elf(EM_X86_64, ET_EXEC, 0x1000100, true, 8192), &k, &e),
			 0);
	assert_int_equal(map_ram(&gm, 64, 0), 0);
	bc.kernel = &k;
	assert_int_equal(x86_boot_load(&gm, &bc, &bsp, &info, &e), 0);
	si = mem_gpa_to_hva(&gm, BOOT_START_INFO_ADDR, sizeof(*si));
	assert_int_equal(si->magic, HVM_START_MAGIC);
	assert_int_equal(si->version, 1);
	assert_int_equal(si->nr_modules, 0);
	assert_int_equal(si->rsdp_paddr, BOOT_ACPI_ADDR);
	assert_memory_equal(mem_gpa_to_hva(&gm, si->rsdp_paddr, 8), "RSD PTR ", 8);
	assert_string_equal(mem_gpa_to_hva(&gm, si->cmdline_paddr, 1), "test=smp");
	assert_int_equal(si->memmap_entries, 3);
	mm = mem_gpa_to_hva(&gm, si->memmap_paddr, 3 * sizeof(*mm));
	assert_true(mm[2].addr == 0x100000 && mm[2].size == (64u << 20) - 0x100000 &&
		    mm[2].type == 1);
	/* PVH entry: 32-bit protected mode, paging off, %ebx = start info. */
	assert_int_equal(bsp.regs.rip, 0x1000040);
	assert_int_equal(bsp.regs.rbx, BOOT_START_INFO_ADDR);
	assert_int_equal(bsp.sregs.cr0 & 0x80000001, 1);
	assert_int_equal(bsp.sregs.efer, 0);
	assert_int_equal(bsp.sregs.cs.db, 1);
	assert_int_equal(bsp.sregs.cs.l, 0);
	/* The loaded segment and its zeroed tail are in RAM. */
	assert_int_equal(*(uint8_t *)mem_gpa_to_hva(&gm, 0x1000000, 1), 0x90);
	kernel_close(&k);
	mem_unmap(&gm);
}

static void inputs_that_do_not_fit_are_config_errors(void **state)
{
	struct x86_boot_cfg bc = {.cmdline = "", .vcpus = 1};
	static char longline[4096];
	struct x86_boot_info info;
	struct x86_boot_cpu bsp;
	struct kernel_image k;
	struct guest_mem gm;
	struct vmm_err e = {0};

	(void)state;
	/* A kernel whose footprint (memsz) is larger than RAM. */
	assert_int_equal(
		kernel_open(fake_elf(EM_X86_64, ET_EXEC, 0x1000100, true, 256u << 20), &k, &e), 0);
	assert_int_equal(map_ram(&gm, 64, 0), 0);
	bc.kernel = &k;
	assert_int_not_equal(x86_boot_load(&gm, &bc, &bsp, &info, &e), 0);
	assert_int_equal(e.kind, ERR_CONFIG);
	assert_non_null(strstr(e.msg, "boot-source.kernel_image_path"));
	assert_non_null(strstr(e.msg, "give the VM more memory"));
	kernel_close(&k);

	/* An initrd larger than RAM. */
	memset(&e, 0, sizeof(e));
	assert_int_equal(kernel_open(fake_bzimage(0x020f, 1, 255), &k, &e), 0);
	{
		char path[256];
		int fd;

		snprintf(path, sizeof(path), "%s/big-initrd", tmpdir);
		fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
		assert_int_equal(ftruncate(fd, 128 << 20), 0); /* sparse */
		close(fd);
		bc.initrd_path = path;
		bc.kernel = &k;
		assert_int_not_equal(x86_boot_load(&gm, &bc, &bsp, &info, &e), 0);
		assert_int_equal(e.kind, ERR_CONFIG);
		assert_non_null(strstr(e.msg, "boot-source.initrd_path"));
		assert_non_null(strstr(e.msg, "is 128 MiB and does not fit"));
		bc.initrd_path = NULL;
	}
	/* A command line over the kernel's cmdline_size (255 here). */
	memset(&e, 0, sizeof(e));
	memset(longline, 'x', 300);
	bc.cmdline = longline;
	assert_int_not_equal(x86_boot_load(&gm, &bc, &bsp, &info, &e), 0);
	assert_int_equal(e.kind, ERR_CONFIG);
	assert_non_null(strstr(e.msg, "boot-source.boot_args: 300 bytes, over the 255"));
	kernel_close(&k);
	mem_unmap(&gm);
}

static void cpuid_names_each_vcpu(void **state)
{
	struct hv_cpuid sup = {.n = 4}, out;

	(void)state;
	sup.e[0] = (struct hv_cpuid_entry){.function = 1, .ebx = 0xff0000ff};
	sup.e[1] = (struct hv_cpuid_entry){
		.function = 0xb, .index = 0, .flags = HV_CPUID_FLAG_SIGNIFICANT_INDEX};
	sup.e[2] = (struct hv_cpuid_entry){
		.function = 0xb, .index = 1, .flags = HV_CPUID_FLAG_SIGNIFICANT_INDEX};
	sup.e[3] = (struct hv_cpuid_entry){.function = 4, .eax = 0xfc000121};
	x86_cpuid_for_vcpu(&sup, 2, 3, &out);
	assert_int_equal(x86_cpuid_find(&out, 1, 0)->ebx >> 24, 2);          /* APIC id */
	assert_int_equal((x86_cpuid_find(&out, 1, 0)->ebx >> 16) & 0xff, 3); /* CPUs */
	assert_int_equal(x86_cpuid_find(&out, 1, 0)->ebx & 0xff, 0xff);      /* rest kept */
	assert_true(x86_cpuid_find(&out, 1, 0)->ecx & (1u << 31));           /* hypervisor */
	assert_int_equal(x86_cpuid_find(&out, 0xb, 0)->edx, 2);              /* x2APIC id */
	assert_int_equal(x86_cpuid_find(&out, 0xb, 1)->ebx, 3);              /* cores */
	assert_int_equal(x86_cpuid_find(&out, 0xb, 1)->eax, 2);              /* id bits */
	assert_int_equal(x86_cpuid_find(&out, 4, 0)->eax >> 26, 2);          /* cores - 1 */
	assert_int_equal(x86_cpuid_find(&out, 4, 0)->eax & 0x3ffffff, 0x121);
}

/* boot_protocol: "linux" takes an ELF's e_entry despite its PVH note; "pvh" needs the note. */
static void boot_protocol_chosen(void **state)
{
	struct kernel_image k;
	struct vmm_err e = {0};

	(void)state;
	assert_int_equal(kernel_open_as(fake_elf(EM_X86_64, ET_EXEC, 0x1000100, true, 8192),
					KERNEL_PROTO_AUTO, &k, &e),
			 0);
	assert_int_equal(k.kind, KERNEL_ELF_PVH);
	kernel_close(&k);
	assert_int_equal(kernel_open_as(fake_elf(EM_X86_64, ET_EXEC, 0x1000100, true, 8192),
					KERNEL_PROTO_LINUX, &k, &e),
			 0);
	assert_int_equal(k.kind, KERNEL_ELF_LINUX);
	assert_int_equal(k.entry, 0x1000100);
	kernel_close(&k);
	assert_int_not_equal(kernel_open_as(fake_elf(EM_X86_64, ET_EXEC, 0x1000100, false, 8192),
					    KERNEL_PROTO_PVH, &k, &e),
			     0);
	assert_int_equal(e.kind, ERR_CONFIG);
	assert_non_null(strstr(e.msg, "boot-source.boot_protocol: \"pvh\""));
	assert_non_null(strstr(e.msg, "has no PVH note"));
	memset(&e, 0, sizeof(e));
	assert_int_not_equal(kernel_open_as(fake_bzimage(0x020f, 1, 2047), KERNEL_PROTO_PVH, &k, &e),
			     0);
	assert_non_null(strstr(e.msg, "is a bzImage"));
	assert_int_equal(kernel_open_as(fake_bzimage(0x020f, 1, 2047), KERNEL_PROTO_LINUX, &k, &e), 0);
	assert_int_equal(k.kind, KERNEL_BZIMAGE);
	kernel_close(&k);
	assert_int_equal(kernel_proto_parse("pvh"), KERNEL_PROTO_PVH);
	assert_int_equal(kernel_proto_parse("PVH"), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(e820_of_plain_and_hole_layouts),
		cmocka_unit_test(mptable_follows_the_spec),
		cmocka_unit_test(loader_recognizes_bzimage),
		cmocka_unit_test(loader_recognizes_elf_kinds),
		cmocka_unit_test(loader_rejects_what_is_not_a_kernel),
		cmocka_unit_test(linux_boot_zero_page_and_cpu_state),
		cmocka_unit_test(pvh_start_info_and_cpu_state),
		cmocka_unit_test(boot_protocol_chosen),
		cmocka_unit_test(inputs_that_do_not_fit_are_config_errors),
		cmocka_unit_test(cpuid_names_each_vcpu),
	};

	return cmocka_run_group_tests_name("x86_boot", tests, setup, teardown);
}
