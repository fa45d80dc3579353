/*
 * Kernel images: what a file is (bzImage, ELF with a PVH note, plain ELF
 * vmlinux) and where its pieces go. Parsing only; x86_boot.c places them.
 */
#ifndef HUGEVMM_VMM_LOADER_H
#define HUGEVMM_VMM_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/util.h"

enum kernel_kind {
	KERNEL_BZIMAGE,   /* Linux boot protocol, 64-bit entry */
	KERNEL_ELF_LINUX, /* ELF vmlinux, Linux boot protocol 64-bit entry at e_entry */
	KERNEL_ELF_PVH,   /* ELF with XEN_ELFNOTE_PHYS32_ENTRY: PVH 32-bit entry */
};

#define KERNEL_MAX_SEGS   16
#define BZIMAGE_LOAD_ADDR 0x100000 /* protected-mode kernel goes to 1 MiB */

struct kernel_seg {
	uint64_t paddr, filesz, memsz, offset;
};

struct kernel_image {
	enum kernel_kind kind;
	const char *path;
	const uint8_t *data; /* the file, mapped read-only */
	size_t size;
	uint64_t entry;  /* guest-physical entry point */
	uint64_t lo, hi; /* guest-physical footprint [lo, hi) including bss/decompression room */
	struct kernel_seg seg[KERNEL_MAX_SEGS];
	unsigned nseg;
	/* bzImage only */
	size_t hdr_len;       /* bytes of setup header present in the file, from 0x1f1 */
	uint16_t version;     /* boot protocol version, 0x20c = 2.12 */
	uint32_t cmdline_max; /* longest command line the kernel accepts, without NUL */
	uint32_t initrd_addr_max;
};

/* Map and parse @path. Errors (ERR_CONFIG) name boot-source.kernel_image_path. */
int kernel_open(const char *path, struct kernel_image *k, struct vmm_err *e) must_check;
void kernel_close(struct kernel_image *k);

const char *kernel_kind_name(enum kernel_kind k);

#endif
