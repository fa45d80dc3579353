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

/* Which entry to use: by default what the file offers (PVH when an ELF has the note). */
enum kernel_proto {
	KERNEL_PROTO_AUTO,
	KERNEL_PROTO_LINUX, /* Linux boot protocol, 64-bit entry (bzImage, or an ELF's e_entry) */
	KERNEL_PROTO_PVH,   /* PVH 32-bit entry (an ELF with XEN_ELFNOTE_PHYS32_ENTRY) */
	KERNEL_PROTO_COUNT
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
/* The same, entered through @proto; a file that does not offer it is an error naming
 * boot-source.boot_protocol. */
int kernel_open_as(const char *path, enum kernel_proto proto, struct kernel_image *k,
		   struct vmm_err *e) must_check;
void kernel_close(struct kernel_image *k);

const char *kernel_kind_name(enum kernel_kind k);
/* "auto", "linux", "pvh"; kernel_proto_parse returns -1 for anything else. */
const char *kernel_proto_name(enum kernel_proto p);
int kernel_proto_parse(const char *s);

#endif
