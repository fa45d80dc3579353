#include "vmm/loader.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm/x86_abi.h"

#define FIELD                 "boot-source.kernel_image_path"
#define LINUX_CMDLINE_DEFAULT 2047 /* COMMAND_LINE_SIZE 2048 on x86-64, for ELF vmlinux */
#define PVH_CMDLINE_MAX       4095

const char *kernel_kind_name(enum kernel_kind k)
{
	switch (k) {
	case KERNEL_BZIMAGE:
		return "bzImage (Linux boot protocol, 64-bit entry)";
	case KERNEL_ELF_LINUX:
		return "ELF vmlinux (Linux boot protocol, 64-bit entry)";
	case KERNEL_ELF_PVH:
		return "ELF with PVH entry";
	}
	return "?";
}

static int bad(struct kernel_image *k, struct vmm_err *e, const char *what)
{
	return err_set(e, ERR_CONFIG, -ENOEXEC, FIELD ": \"%s\" %s", k->path, what);
}

static const char *const proto_names[KERNEL_PROTO_COUNT] = {"auto", "linux", "pvh"};

const char *kernel_proto_name(enum kernel_proto p)
{
	return p < KERNEL_PROTO_COUNT ? proto_names[p] : "?";
}

int kernel_proto_parse(const char *s)
{
	for (int i = 0; i < KERNEL_PROTO_COUNT; i++)
		if (!strcmp(s, proto_names[i]))
			return i;
	return -1;
}

static int not_offered(struct kernel_image *k, struct vmm_err *e, const char *why)
{
	return err_set(e, ERR_CONFIG, -ENOEXEC,
		       "boot-source.boot_protocol: \"pvh\" but \"%s\" %s; use \"auto\" or "
		       "\"linux\", or give an ELF with a PVH note",
		       k->path, why);
}

static int parse_bzimage(struct kernel_image *k, enum kernel_proto proto, struct vmm_err *e)
{
	struct linux_setup_header h;
	uint64_t load, align, run;
	size_t setup, end;
	char msg[160];

	if (proto == KERNEL_PROTO_PVH)
		return not_offered(k, e,
				   "is a bzImage (Linux boot protocol only); its vmlinux may "
				   "carry the note");
	memset(&h, 0, sizeof(h));
	/* The header's length is in the jump at 0x200: it ends at 0x202 + byte[0x201]. */
	end = 0x202 + (size_t)k->data[0x201];
	k->hdr_len = MIN(end, k->size) - 0x1f1;
	k->hdr_len = MIN(k->hdr_len, sizeof(h));
	memcpy(&h, k->data + 0x1f1, k->hdr_len);
	k->version = h.version;
	if (h.version < 0x20c || !(h.xloadflags & LINUX_XLF_KERNEL_64)) {
		snprintf(msg, sizeof(msg),
			 "is a bzImage of boot protocol %u.%02u without the 64-bit entry "
			 "(needs 2.12+ with XLF_KERNEL_64)",
			 h.version >> 8, h.version & 0xff);
		return bad(k, e, msg);
	}
	setup = ((size_t)(h.setup_sects ? h.setup_sects : 4) + 1) * 512;
	if (setup >= k->size)
		return bad(k, e, "is a truncated bzImage (no protected-mode kernel)");
	k->kind = KERNEL_BZIMAGE;
	/*
	 * Load where the kernel prefers (pref_address, protocol 2.10+; 16 MiB for
	 * stock kernels): its 64-bit decompressor runs at max(load address rounded
	 * to kernel_alignment, pref_address) and needs init_size bytes from there,
	 * so loading low would only make it move itself up over whatever lies there.
	 */
	load = h.version >= 0x20a && h.pref_address ? h.pref_address : BZIMAGE_LOAD_ADDR;
	align = is_pow2(h.kernel_alignment) ? h.kernel_alignment : SZ_2M;
	run = MAX(align_up(load, align), h.version >= 0x20a ? h.pref_address : 0);
	if (load >= (UINT64_C(1) << 32) || run >= (UINT64_C(1) << 32))
		return bad(k, e, "asks to be loaded above 4 GiB (pref_address)");
	k->seg[0] = (struct kernel_seg){.paddr = load,
					.filesz = k->size - setup,
					.memsz = k->size - setup,
					.offset = setup};
	k->nseg = 1;
	k->entry = load + 0x200; /* startup_64 */
	k->lo = load;
	k->hi = MAX(load + k->seg[0].memsz, run + (uint64_t)h.init_size);
	k->cmdline_max = h.cmdline_size ? h.cmdline_size : 255;
	k->initrd_addr_max = h.initrd_addr_max ? h.initrd_addr_max : 0x37ffffff;
	return 0;
}

/* Find the PVH entry note in [p, p+len): 0 when found. */
static int pvh_note(const uint8_t *p, size_t len, uint64_t *entry)
{
	size_t off = 0;

	while (off + 12 <= len) {
		uint32_t namesz, descsz, type;

		memcpy(&namesz, p + off, 4);
		memcpy(&descsz, p + off + 4, 4);
		memcpy(&type, p + off + 8, 4);
		off += 12;
		if (namesz > len || descsz > len)
			return -ENOENT;
		{
			size_t name_off = off, desc_off = off + align_up(namesz, 4);

			off = desc_off + align_up(descsz, 4);
			if (off > len)
				return -ENOENT;
			if (type == XEN_ELFNOTE_PHYS32_ENTRY && namesz == 4 &&
			    !memcmp(p + name_off, "Xen", 4) && (descsz == 4 || descsz == 8)) {
				uint64_t v = 0;

				memcpy(&v, p + desc_off, descsz);
				*entry = v;
				return 0;
			}
		}
	}
	return -ENOENT;
}

/* Program headers of either ELF class, normalized. */
struct phdr {
	uint32_t type;
	uint64_t offset, vaddr, paddr, filesz, memsz;
};

static int get_phdr(const struct kernel_image *k, bool is64, uint64_t phoff, unsigned i,
		    unsigned phentsize, struct phdr *p)
{
	size_t need = is64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr);
	uint64_t at;

	/* In that order, so that no sum can wrap: e_phoff comes from the file. */
	if (phoff > k->size || (uint64_t)i * phentsize > k->size - phoff)
		return -EINVAL;
	at = phoff + (uint64_t)i * phentsize;
	if (need > k->size - at)
		return -EINVAL;
	if (is64) {
		Elf64_Phdr h;

		memcpy(&h, k->data + at, sizeof(h));
		*p = (struct phdr){h.p_type,  h.p_offset, h.p_vaddr,
				   h.p_paddr, h.p_filesz, h.p_memsz};
	} else {
		Elf32_Phdr h;

		memcpy(&h, k->data + at, sizeof(h));
		*p = (struct phdr){h.p_type,  h.p_offset, h.p_vaddr,
				   h.p_paddr, h.p_filesz, h.p_memsz};
	}
	return 0;
}

static int parse_elf(struct kernel_image *k, enum kernel_proto proto, struct vmm_err *e)
{
	bool is64 = k->data[EI_CLASS] == ELFCLASS64;
	uint64_t phoff, entry, pvh_entry = 0;
	unsigned phnum, phentsize, machine, type;
	bool pvh = false, entry_inside = false;
	char msg[200];

	if (k->data[EI_CLASS] != ELFCLASS64 && k->data[EI_CLASS] != ELFCLASS32)
		return bad(k, e, "is an ELF file of unknown class");
	if (k->data[EI_DATA] != ELFDATA2LSB)
		return bad(k, e, "is a big-endian ELF file; an x86 kernel is little-endian");
	if (is64) {
		Elf64_Ehdr h;

		if (k->size < sizeof(h))
			return bad(k, e, "is a truncated ELF file");
		memcpy(&h, k->data, sizeof(h));
		phoff = h.e_phoff, phnum = h.e_phnum, phentsize = h.e_phentsize;
		machine = h.e_machine, type = h.e_type, entry = h.e_entry;
	} else {
		Elf32_Ehdr h;

		if (k->size < sizeof(h))
			return bad(k, e, "is a truncated ELF file");
		memcpy(&h, k->data, sizeof(h));
		phoff = h.e_phoff, phnum = h.e_phnum, phentsize = h.e_phentsize;
		machine = h.e_machine, type = h.e_type, entry = h.e_entry;
	}
	if (machine != (is64 ? EM_X86_64 : EM_386)) {
		snprintf(msg, sizeof(msg), "is an ELF file for machine %u, not x86%s", machine,
			 is64 ? "-64" : "");
		return bad(k, e, msg);
	}
	if (type != ET_EXEC)
		return bad(k, e, "is an ELF file but not an executable (ET_EXEC) kernel");
	if (phentsize < (is64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr)) || phnum == 0)
		return bad(k, e, "is an ELF file without program headers");

	k->lo = UINT64_MAX;
	k->hi = 0;
	for (unsigned i = 0; i < phnum; i++) {
		struct phdr p;

		if (get_phdr(k, is64, phoff, i, phentsize, &p))
			return bad(k, e, "has program headers past the end of the file");
		if (p.type == PT_NOTE && p.offset < k->size && p.filesz <= k->size - p.offset &&
		    !pvh_note(k->data + p.offset, p.filesz, &pvh_entry))
			pvh = true;
		if (p.type != PT_LOAD || p.memsz == 0)
			continue;
		if (p.offset > k->size || p.filesz > k->size - p.offset || p.filesz > p.memsz ||
		    p.paddr + p.memsz < p.paddr)
			return bad(k, e, "has a PT_LOAD segment outside the file");
		if (k->nseg == KERNEL_MAX_SEGS)
			return bad(k, e, "has too many PT_LOAD segments");
		k->seg[k->nseg++] = (struct kernel_seg){
			.paddr = p.paddr, .filesz = p.filesz, .memsz = p.memsz, .offset = p.offset};
		k->lo = MIN(k->lo, p.paddr);
		k->hi = MAX(k->hi, p.paddr + p.memsz);
		/* vmlinux's e_entry may be virtual: translate it through its segment. */
		if (entry >= p.vaddr && entry - p.vaddr < p.memsz) {
			entry = entry - p.vaddr + p.paddr;
			entry_inside = true;
		} else if (entry >= p.paddr && entry - p.paddr < p.memsz) {
			entry_inside = true;
		}
	}
	if (k->nseg == 0)
		return bad(k, e, "is an ELF file with nothing to load (no PT_LOAD segment)");
	if (!pvh && proto == KERNEL_PROTO_PVH)
		return not_offered(k, e, "has no PVH note (XEN_ELFNOTE_PHYS32_ENTRY)");
	if (pvh && proto != KERNEL_PROTO_LINUX) {
		bool inside = false;

		for (unsigned i = 0; i < k->nseg; i++)
			inside |= pvh_entry >= k->seg[i].paddr &&
				  pvh_entry - k->seg[i].paddr < k->seg[i].memsz;
		if (!inside || pvh_entry >= (UINT64_C(1) << 32)) {
			snprintf(msg, sizeof(msg),
				 "has a PVH entry 0x%llx outside its loaded segments (or above 4 "
				 "GiB)",
				 (unsigned long long)pvh_entry);
			return bad(k, e, msg);
		}
		k->kind = KERNEL_ELF_PVH;
		k->entry = pvh_entry;
		k->cmdline_max = PVH_CMDLINE_MAX;
		return 0;
	}
	if (!is64)
		return bad(k, e,
			   "is a 32-bit ELF without a PVH note; hugevmm boots 32-bit ELF "
			   "kernels only through PVH");
	if (!entry_inside || entry == 0) {
		snprintf(msg, sizeof(msg),
			 "has no usable entry point: e_entry 0x%llx is not inside any loaded "
			 "segment",
			 (unsigned long long)entry);
		return bad(k, e, msg);
	}
	k->kind = KERNEL_ELF_LINUX;
	k->entry = entry;
	k->cmdline_max = LINUX_CMDLINE_DEFAULT;
	k->initrd_addr_max = 0x7fffffff;
	return 0;
}

int kernel_open(const char *path, struct kernel_image *k, struct vmm_err *e)
{
	return kernel_open_as(path, KERNEL_PROTO_AUTO, k, e);
}

int kernel_open_as(const char *path, enum kernel_proto proto, struct kernel_image *k,
		   struct vmm_err *e)
{
	struct stat st;
	void *p;
	int fd, rc;

	memset(k, 0, sizeof(*k));
	k->path = path;
	/* O_NONBLOCK: a FIFO in its place must not hang the VMM; it fails the S_ISREG test. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return err_set(e, ERR_CONFIG, -errno, FIELD ": cannot open \"%s\": %s", path,
			       strerror(errno));
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size < 64) {
		close(fd);
		return err_set(e, ERR_CONFIG, -EINVAL,
			       FIELD
			       ": \"%s\" is not a kernel image (not a regular file of 64 bytes "
			       "or more)",
			       path);
	}
	p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return err_set(e, ERR_RUNTIME, -errno, FIELD ": cannot map \"%s\": %s", path,
			       strerror(errno));
	k->data = p;
	k->size = (size_t)st.st_size;

	if (!memcmp(k->data, ELFMAG, SELFMAG))
		rc = parse_elf(k, proto, e);
	else if (k->size > 0x206 && !memcmp(k->data + 0x202, "HdrS", 4) && k->data[0x1fe] == 0x55 &&
		 k->data[0x1ff] == 0xaa)
		rc = parse_bzimage(k, proto, e);
	else
		rc = bad(k, e,
			 "is neither a bzImage (no \"HdrS\" boot header) nor an ELF file; "
			 "give a Linux bzImage, a vmlinux, or an ELF with a PVH note");
	if (rc)
		kernel_close(k);
	return rc;
}

void kernel_close(struct kernel_image *k)
{
	if (k->data)
		munmap((void *)k->data, k->size);
	k->data = NULL;
}
