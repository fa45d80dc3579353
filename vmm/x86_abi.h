/*
 * x86 boot ABI structures, laid out as the documents define them:
 * the Linux boot protocol (Documentation/arch/x86/boot.rst, zero-page.rst),
 * the Xen PVH start info (xen/include/public/arch-x86/hvm/start_info.h),
 * and the Intel MultiProcessor Specification 1.4 tables.
 */
#ifndef HUGEVMM_VMM_X86_ABI_H
#define HUGEVMM_VMM_X86_ABI_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

/* ---- Linux boot protocol ---- */

#define LINUX_HDR_MAGIC        0x53726448 /* "HdrS" */
#define LINUX_BOOT_FLAG        0xaa55
#define LINUX_LOADER_UNDEFINED 0xff
#define LINUX_XLF_KERNEL_64    (1 << 0)
#define LINUX_LOADED_HIGH      (1 << 0)
#define LINUX_E820_MAX         128
#define E820_RAM               1
#define E820_RESERVED          2

struct linux_setup_header {
	uint8_t setup_sects;
	uint16_t root_flags;
	uint32_t syssize;
	uint16_t ram_size;
	uint16_t vid_mode;
	uint16_t root_dev;
	uint16_t boot_flag;
	uint16_t jump;
	uint32_t header;
	uint16_t version;
	uint32_t realmode_swtch;
	uint16_t start_sys_seg;
	uint16_t kernel_version;
	uint8_t type_of_loader;
	uint8_t loadflags;
	uint16_t setup_move_size;
	uint32_t code32_start;
	uint32_t ramdisk_image;
	uint32_t ramdisk_size;
	uint32_t bootsect_kludge;
	uint16_t heap_end_ptr;
	uint8_t ext_loader_ver;
	uint8_t ext_loader_type;
	uint32_t cmd_line_ptr;
	uint32_t initrd_addr_max;
	uint32_t kernel_alignment;
	uint8_t relocatable_kernel;
	uint8_t min_alignment;
	uint16_t xloadflags;
	uint32_t cmdline_size;
	uint32_t hardware_subarch;
	uint64_t hardware_subarch_data;
	uint32_t payload_offset;
	uint32_t payload_length;
	uint64_t setup_data;
	uint64_t pref_address;
	uint32_t init_size;
	uint32_t handover_offset;
	uint32_t kernel_info_offset;
} __attribute__((packed));

struct linux_e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
} __attribute__((packed));

/* The "zero page": only the fields hugevmm fills are named. */
struct linux_boot_params {
	uint8_t screen_info[0x40];
	uint8_t apm_bios_info[0x14];
	uint8_t pad2[4];
	uint64_t tboot_addr;
	uint8_t ist_info[0x10];
	uint64_t acpi_rsdp_addr;
	uint8_t pad3[8];
	uint8_t hd0_info[16];
	uint8_t hd1_info[16];
	uint8_t sys_desc_table[0x10];
	uint8_t olpc_ofw_header[0x10];
	uint32_t ext_ramdisk_image;
	uint32_t ext_ramdisk_size;
	uint32_t ext_cmd_line_ptr;
	uint8_t pad4[112];
	uint32_t cc_blob_address;
	uint8_t edid_info[0x80];
	uint8_t efi_info[0x20];
	uint32_t alt_mem_k;
	uint32_t scratch;
	uint8_t e820_entries;
	uint8_t eddbuf_entries;
	uint8_t edd_mbr_sig_buf_entries;
	uint8_t kbd_status;
	uint8_t secure_boot;
	uint8_t pad5[2];
	uint8_t sentinel;
	uint8_t pad6[1];
	struct linux_setup_header hdr;
	uint8_t pad7[0x290 - 0x1f1 - sizeof(struct linux_setup_header)];
	uint32_t edd_mbr_sig_buffer[16];
	struct linux_e820_entry e820_table[LINUX_E820_MAX];
	uint8_t pad8[48];
	uint8_t eddbuf[0x1ec];
	uint8_t pad9[276];
} __attribute__((packed));

static_assert(offsetof(struct linux_boot_params, acpi_rsdp_addr) == 0x070, "zero page");
static_assert(offsetof(struct linux_boot_params, ext_ramdisk_image) == 0x0c0, "zero page");
static_assert(offsetof(struct linux_boot_params, e820_entries) == 0x1e8, "zero page");
static_assert(offsetof(struct linux_boot_params, sentinel) == 0x1ef, "zero page");
static_assert(offsetof(struct linux_boot_params, hdr) == 0x1f1, "zero page");
static_assert(offsetof(struct linux_boot_params, hdr.header) == 0x202, "zero page");
static_assert(offsetof(struct linux_boot_params, hdr.type_of_loader) == 0x210, "zero page");
static_assert(offsetof(struct linux_boot_params, hdr.cmd_line_ptr) == 0x228, "zero page");
static_assert(offsetof(struct linux_boot_params, hdr.xloadflags) == 0x236, "zero page");
static_assert(offsetof(struct linux_boot_params, hdr.init_size) == 0x260, "zero page");
static_assert(offsetof(struct linux_boot_params, e820_table) == 0x2d0, "zero page");
static_assert(offsetof(struct linux_boot_params, eddbuf) == 0xd00, "zero page");
static_assert(sizeof(struct linux_boot_params) == 4096, "zero page");

/* ---- PVH ---- */

#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define HVM_START_MAGIC          0x336ec578
#define HVM_MEMMAP_RAM           1
#define HVM_MEMMAP_RESERVED      2

struct hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	uint64_t memmap_paddr;
	uint32_t memmap_entries;
	uint32_t reserved;
};

struct hvm_modlist_entry {
	uint64_t paddr;
	uint64_t size;
	uint64_t cmdline_paddr;
	uint64_t reserved;
};

struct hvm_memmap_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
	uint32_t reserved;
};

static_assert(sizeof(struct hvm_start_info) == 56, "start info");
static_assert(sizeof(struct hvm_memmap_entry) == 24, "memmap");

/* ---- MP specification 1.4 ---- */

#define MPF_SIGNATURE     "_MP_"
#define MPC_SIGNATURE     "PCMP"
#define MP_PROCESSOR      0
#define MP_BUS            1
#define MP_IOAPIC         2
#define MP_INTSRC         3
#define MP_LINTSRC        4
#define MP_INT            0
#define MP_NMI            1
#define MP_EXTINT         3
#define MP_APIC_VERSION   0x14
#define MP_IOAPIC_VERSION 0x11
#define MP_CPU_ENABLED    1
#define MP_CPU_BSP        2

struct mpf_intel {
	char signature[4];
	uint32_t physptr;
	uint8_t length; /* in 16-byte units */
	uint8_t specification;
	uint8_t checksum;
	uint8_t feature1;
	uint8_t feature2;
	uint8_t feature3;
	uint8_t feature4;
	uint8_t feature5;
} __attribute__((packed));

struct mpc_table {
	char signature[4];
	uint16_t length;
	uint8_t spec;
	uint8_t checksum;
	char oem[8];
	char productid[12];
	uint32_t oemptr;
	uint16_t oemsize;
	uint16_t oemcount;
	uint32_t lapic;
	uint16_t ext_length;
	uint8_t ext_checksum;
	uint8_t reserved;
} __attribute__((packed));

struct mpc_cpu {
	uint8_t type;
	uint8_t apicid;
	uint8_t apicver;
	uint8_t cpuflag;
	uint32_t cpufeature;
	uint32_t featureflag;
	uint32_t reserved[2];
} __attribute__((packed));

struct mpc_bus {
	uint8_t type;
	uint8_t busid;
	char bustype[6];
} __attribute__((packed));

struct mpc_ioapic {
	uint8_t type;
	uint8_t apicid;
	uint8_t apicver;
	uint8_t flags;
	uint32_t apicaddr;
} __attribute__((packed));

struct mpc_intsrc {
	uint8_t type;
	uint8_t irqtype;
	uint16_t irqflag;
	uint8_t srcbus;
	uint8_t srcbusirq;
	uint8_t dstapic;
	uint8_t dstirq;
} __attribute__((packed));

struct mpc_lintsrc {
	uint8_t type;
	uint8_t irqtype;
	uint16_t irqflag;
	uint8_t srcbusid;
	uint8_t srcbusirq;
	uint8_t destapic;
	uint8_t destapiclint;
} __attribute__((packed));

/* ACPI (6.x): what a stock Linux needs to find every CPU and the IOAPIC without MP tables
 * (Debian's cloud kernels are built without CONFIG_X86_MPPARSE). */
struct acpi_rsdp {
	char signature[8]; /* "RSD PTR " */
	uint8_t checksum;  /* first 20 bytes */
	char oem_id[6];
	uint8_t revision; /* 2: XSDT */
	uint32_t rsdt_address;
	uint32_t length;
	uint64_t xsdt_address;
	uint8_t ext_checksum; /* all 36 bytes */
	uint8_t reserved[3];
} __attribute__((packed));

struct acpi_header {
	char signature[4];
	uint32_t length;
	uint8_t revision;
	uint8_t checksum;
	char oem_id[6];
	char oem_table_id[8];
	uint32_t oem_revision;
	char creator_id[4];
	uint32_t creator_revision;
} __attribute__((packed));

struct acpi_madt {
	struct acpi_header h; /* "APIC" */
	uint32_t lapic_address;
	uint32_t flags; /* PCAT_COMPAT: dual 8259s present */
} __attribute__((packed));

#define ACPI_MADT_PCAT_COMPAT   1
#define ACPI_MADT_LAPIC         0
#define ACPI_MADT_IOAPIC        1
#define ACPI_MADT_LAPIC_NMI     4
#define ACPI_MADT_LAPIC_ENABLED 1

struct acpi_madt_lapic {
	uint8_t type, length, processor_id, apic_id;
	uint32_t flags;
} __attribute__((packed));

struct acpi_madt_ioapic {
	uint8_t type, length, id, reserved;
	uint32_t address;
	uint32_t gsi_base;
} __attribute__((packed));

struct acpi_madt_lapic_nmi {
	uint8_t type, length, processor_id; /* 0xff: every processor */
	uint16_t flags;
	uint8_t lint;
} __attribute__((packed));

static_assert(sizeof(struct acpi_rsdp) == 36, "rsdp");
static_assert(sizeof(struct acpi_header) == 36, "sdt header");
static_assert(sizeof(struct acpi_madt_lapic_nmi) == 6, "madt nmi");

static_assert(sizeof(struct mpf_intel) == 16, "mpf");
static_assert(sizeof(struct mpc_table) == 44, "mpc");
static_assert(sizeof(struct mpc_cpu) == 20, "mpc cpu");

#endif
