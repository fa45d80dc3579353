#include "vmm/x86_boot.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm/acpi.h"

#define FIELD_KERNEL  "boot-source.kernel_image_path"
#define FIELD_INITRD  "boot-source.initrd_path"
#define FIELD_CMDLINE "boot-source.boot_args"

#define CR0_PE   (1ull << 0)
#define CR0_MP   (1ull << 1)
#define CR0_ET   (1ull << 4)
#define CR0_NE   (1ull << 5)
#define CR0_WP   (1ull << 16)
#define CR0_PG   (1ull << 31)
#define CR4_PAE  (1ull << 5)
#define EFER_LME (1ull << 8)
#define EFER_LMA (1ull << 10)
#define PTE_P    (1ull << 0)
#define PTE_RW   (1ull << 1)
#define PTE_PS   (1ull << 7)

#define MPTABLE_MAX 4096 /* the MP table is built in a buffer this size */

unsigned x86_e820(const struct guest_mem *gm, struct linux_e820_entry *out, unsigned max)
{
	unsigned n = 0;

	for (unsigned i = 0; i < gm->nslots && n + 3 <= max; i++) {
		const struct mem_slot *s = &gm->slots[i];

		if (s->gpa == 0 && s->size > BOOT_HIGH_MEM) {
			/* The PC's low memory: the EBDA and the BIOS area are not RAM to the OS. */
			out[n++] = (struct linux_e820_entry){0, BOOT_EBDA_START, E820_RAM};
			out[n++] = (struct linux_e820_entry){
				BOOT_EBDA_START, BOOT_HIGH_MEM - BOOT_EBDA_START, E820_RESERVED};
			out[n++] = (struct linux_e820_entry){BOOT_HIGH_MEM, s->size - BOOT_HIGH_MEM,
							     E820_RAM};
		} else {
			out[n++] = (struct linux_e820_entry){s->gpa, s->size, E820_RAM};
		}
	}
	return n;
}

static uint8_t checksum(const void *p, size_t n)
{
	uint8_t sum = 0;

	for (size_t i = 0; i < n; i++)
		sum = (uint8_t)(sum + ((const uint8_t *)p)[i]);
	return (uint8_t)-sum;
}

size_t x86_mptable_size(unsigned ncpus)
{
	return sizeof(struct mpf_intel) + sizeof(struct mpc_table) +
	       ncpus * sizeof(struct mpc_cpu) + sizeof(struct mpc_bus) + sizeof(struct mpc_ioapic) +
	       16 * sizeof(struct mpc_intsrc) + 2 * sizeof(struct mpc_lintsrc);
}

size_t x86_mptable(void *dst, uint32_t gpa, unsigned ncpus, uint32_t cpu_sig, uint32_t features)
{
	uint8_t *base = dst, *p;
	struct mpf_intel *mpf = dst;
	struct mpc_table *mpc = (void *)(base + sizeof(*mpf));
	uint8_t ioapic_id = (uint8_t)ncpus; /* right after the CPUs' APIC ids */
	uint16_t count = 0;

	memset(dst, 0, x86_mptable_size(ncpus));
	memcpy(mpf->signature, MPF_SIGNATURE, 4);
	mpf->physptr = gpa + (uint32_t)sizeof(*mpf);
	mpf->length = 1;
	mpf->specification = 4;

	memcpy(mpc->signature, MPC_SIGNATURE, 4);
	mpc->spec = 4;
	memcpy(mpc->oem, "HUGEVMM ", 8);
	memcpy(mpc->productid, "MICROVM     ", 12);
	mpc->lapic = X86_LAPIC_ADDR;
	p = (uint8_t *)(mpc + 1);

	for (unsigned i = 0; i < ncpus; i++, count++) {
		struct mpc_cpu *c = (void *)p;

		c->type = MP_PROCESSOR;
		c->apicid = (uint8_t)i;
		c->apicver = MP_APIC_VERSION;
		c->cpuflag = MP_CPU_ENABLED | (i == 0 ? MP_CPU_BSP : 0);
		c->cpufeature = cpu_sig;
		c->featureflag = features;
		p += sizeof(*c);
	}
	{
		struct mpc_bus *b = (void *)p;

		b->type = MP_BUS;
		b->busid = 0;
		memcpy(b->bustype, "ISA   ", 6);
		p += sizeof(*b);
		count++;
	}
	{
		struct mpc_ioapic *io = (void *)p;

		io->type = MP_IOAPIC;
		io->apicid = ioapic_id;
		io->apicver = MP_IOAPIC_VERSION;
		io->flags = 1;
		io->apicaddr = X86_IOAPIC_ADDR;
		p += sizeof(*io);
		count++;
	}
	/* ISA IRQ n -> IOAPIC pin n: the routing KVM's in-kernel IOAPIC implements. */
	for (unsigned irq = 0; irq < 16; irq++, count++) {
		struct mpc_intsrc *s = (void *)p;

		s->type = MP_INTSRC;
		s->irqtype = MP_INT;
		s->srcbus = 0;
		s->srcbusirq = (uint8_t)irq;
		s->dstapic = ioapic_id;
		s->dstirq = (uint8_t)irq;
		p += sizeof(*s);
	}
	{
		struct mpc_lintsrc *l = (void *)p;

		l->type = MP_LINTSRC;
		l->irqtype = MP_EXTINT;
		l->destapic = 0xff;
		l->destapiclint = 0;
		p += sizeof(*l);
		l = (void *)p;
		l->type = MP_LINTSRC;
		l->irqtype = MP_NMI;
		l->destapic = 0xff;
		l->destapiclint = 1;
		p += sizeof(*l);
		count += 2;
	}
	mpc->oemcount = count;
	mpc->length = (uint16_t)(p - (uint8_t *)mpc);
	mpc->checksum = checksum(mpc, mpc->length);
	mpf->checksum = checksum(mpf, sizeof(*mpf));
	return (size_t)(p - base);
}

void x86_linux_zero_page(struct linux_boot_params *bp, const struct kernel_image *k,
			 uint32_t cmdline_gpa, uint64_t initrd_gpa, uint64_t initrd_size,
			 const struct linux_e820_entry *e820, unsigned n)
{
	memset(bp, 0, sizeof(*bp));
	if (k->kind == KERNEL_BZIMAGE) {
		/* The kernel's own setup header, as the protocol says, then our fields over it. */
		memcpy(&bp->hdr, k->data + 0x1f1, k->hdr_len);
	} else {
		bp->hdr.boot_flag = LINUX_BOOT_FLAG;
		bp->hdr.header = LINUX_HDR_MAGIC;
		bp->hdr.kernel_alignment = 0x1000000;
	}
	bp->hdr.type_of_loader = LINUX_LOADER_UNDEFINED;
	bp->hdr.vid_mode = 0xffff; /* "normal" */
	bp->hdr.cmd_line_ptr = cmdline_gpa;
	bp->hdr.ramdisk_image = (uint32_t)initrd_gpa;
	bp->hdr.ramdisk_size = (uint32_t)initrd_size;
	bp->ext_ramdisk_image = (uint32_t)(initrd_gpa >> 32);
	bp->ext_ramdisk_size = (uint32_t)(initrd_size >> 32);
	bp->e820_entries = (uint8_t)MIN(n, LINUX_E820_MAX);
	memcpy(bp->e820_table, e820, bp->e820_entries * sizeof(*e820));
	bp->acpi_rsdp_addr = BOOT_ACPI_ADDR; /* 2.14+; older kernels scan for the RSDP */
}

/* Identity map 0-4 GiB with 2M pages, enough for every boot structure and the kernel. */
static int page_tables(const struct guest_mem *gm)
{
	uint64_t pml4[512] = {0}, pdpt[512] = {0}, pd[512];
	int r;

	pml4[0] = BOOT_PDPT_ADDR | PTE_P | PTE_RW;
	for (unsigned i = 0; i < 4; i++)
		pdpt[i] = (BOOT_PD_ADDR + i * 0x1000ull) | PTE_P | PTE_RW;
	r = mem_write(gm, BOOT_PML4_ADDR, pml4, sizeof(pml4));
	r = r ? r : mem_write(gm, BOOT_PDPT_ADDR, pdpt, sizeof(pdpt));
	for (unsigned d = 0; d < 4 && !r; d++) {
		for (unsigned i = 0; i < 512; i++)
			pd[i] = ((uint64_t)d << 30) + ((uint64_t)i << 21) +
				(PTE_P | PTE_RW | PTE_PS);
		r = mem_write(gm, BOOT_PD_ADDR + d * 0x1000ull, pd, sizeof(pd));
	}
	return r;
}

static int gdt(const struct guest_mem *gm)
{
	static const uint64_t g[] = {
		0,                     /* null */
		0x00cf9b000000ffffull, /* 0x08: 32-bit code, flat */
		0x00af9b000000ffffull, /* 0x10: 64-bit code */
		0x00cf93000000ffffull, /* 0x18: data, flat */
		0x00008b0000000067ull, /* 0x20: TSS (busy), base 0 */
	};

	return mem_write(gm, BOOT_GDT_ADDR, g, sizeof(g));
}

static struct hv_segment seg(uint16_t sel, uint8_t type, bool code64, bool s)
{
	return (struct hv_segment){
		.base = 0,
		.limit = 0xffffffff,
		.selector = sel,
		.type = type,
		.present = 1,
		.dpl = 0,
		.db = code64 ? 0 : 1,
		.s = s,
		.l = code64,
		.g = 1,
	};
}

static void cpu_state(const struct x86_boot_cfg *c, struct x86_boot_cpu *b)
{
	bool pvh = c->kernel->kind == KERNEL_ELF_PVH;
	struct hv_sregs *s = &b->sregs;

	memset(b, 0, sizeof(*b));
	s->cs = pvh ? seg(BOOT_CS32, 0xb, false, true) : seg(BOOT_CS64, 0xb, true, true);
	s->ds = s->es = s->fs = s->gs = s->ss = seg(BOOT_DS, 0x3, false, true);
	s->tr = seg(BOOT_TSS, 0xb, false, false);
	s->tr.limit = 0x67;
	s->tr.g = 0;
	s->tr.db = 0;
	s->ldt = (struct hv_segment){.type = 0x2, .present = 1, .limit = 0xffff};
	s->gdt = (struct hv_dtable){.base = BOOT_GDT_ADDR, .limit = 5 * 8 - 1};
	s->idt = (struct hv_dtable){.base = BOOT_IDT_ADDR, .limit = 0};
	s->apic_base = X86_LAPIC_ADDR | (1 << 11) | (1 << 8); /* enabled, BSP */
	b->regs.rflags = 2;
	b->regs.rip = c->kernel->entry;
	if (pvh) {
		/* PVH: 32-bit protected mode, paging off, %ebx = start info. */
		s->cr0 = CR0_PE | CR0_ET;
		b->regs.rbx = BOOT_START_INFO_ADDR;
	} else {
		/* Linux 64-bit entry: long mode on identity tables, %rsi = zero page. */
		s->cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
		s->cr3 = BOOT_PML4_ADDR;
		s->cr4 = CR4_PAE;
		s->efer = EFER_LME | EFER_LMA;
		b->regs.rsi = BOOT_ZERO_PAGE_ADDR;
		b->regs.rsp = b->regs.rbp = BOOT_STACK_TOP;
	}
}

/* Highest RAM below 4 GiB ending at or below @limit where @size fits above @floor. */
static int place_high(const struct guest_mem *gm, uint64_t size, uint64_t floor, uint64_t limit,
		      uint64_t *gpa)
{
	for (unsigned i = gm->nslots; i-- > 0;) {
		const struct mem_slot *s = &gm->slots[i];
		uint64_t end = MIN(s->gpa + s->size, limit), at;

		if (s->gpa >= MEM_HOLE_START || end <= s->gpa || end - s->gpa < size)
			continue;
		at = align_down(end - size, SZ_4K);
		if (at < MAX(s->gpa, floor))
			continue;
		*gpa = at;
		return 0;
	}
	return -ENOSPC;
}

static uint64_t low_ram(const struct guest_mem *gm)
{
	uint64_t total = 0;

	for (unsigned i = 0; i < gm->nslots; i++)
		if (gm->slots[i].gpa < MEM_HOLE_START)
			total += gm->slots[i].size;
	return total;
}

static int load_initrd(const struct guest_mem *gm, const struct x86_boot_cfg *c, uint64_t floor,
		       struct x86_boot_info *info, struct vmm_err *e)
{
	uint64_t limit = (uint64_t)MEM_HOLE_START, gpa;
	struct stat st;
	int fd, r;

	if (c->kernel->kind != KERNEL_ELF_PVH && c->kernel->initrd_addr_max)
		limit = MIN(limit, (uint64_t)c->kernel->initrd_addr_max + 1);
	fd = open(c->initrd_path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return err_set(e, ERR_CONFIG, -errno, FIELD_INITRD ": cannot open \"%s\": %s",
			       c->initrd_path, strerror(errno));
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		close(fd);
		return err_set(e, ERR_CONFIG, -EINVAL,
			       FIELD_INITRD ": \"%s\" is not a regular file", c->initrd_path);
	}
	if (place_high(gm, (uint64_t)st.st_size, floor, limit, &gpa)) {
		close(fd);
		return err_set(
			e, ERR_CONFIG, -E2BIG,
			FIELD_INITRD ": \"%s\" is %llu MiB and does not fit in guest RAM below "
				     "%llu MiB above the kernel (%llu MiB of RAM below 4 GiB); "
				     "give the VM more memory or use a smaller initrd",
			c->initrd_path, (unsigned long long)((uint64_t)st.st_size >> 20),
			(unsigned long long)(limit >> 20), (unsigned long long)(low_ram(gm) >> 20));
	}
	r = mem_pread(gm, gpa, fd, 0, (uint64_t)st.st_size);
	close(fd);
	if (r)
		return err_set(e, ERR_RUNTIME, r, FIELD_INITRD ": reading \"%s\": %s",
			       c->initrd_path, strerror(-r));
	info->initrd_gpa = gpa;
	info->initrd_size = (uint64_t)st.st_size;
	return 0;
}

static int load_kernel(const struct guest_mem *gm, const struct kernel_image *k, struct vmm_err *e)
{
	if (k->lo < BOOT_HIGH_MEM)
		return err_set(e, ERR_CONFIG, -EINVAL,
			       FIELD_KERNEL ": \"%s\" loads at 0x%llx, below 1 MiB where the boot "
					    "structures live; link the kernel at 1 MiB or above",
			       k->path, (unsigned long long)k->lo);
	if (!mem_is_ram(gm, k->lo, k->hi - k->lo))
		return err_set(
			e, ERR_CONFIG, -E2BIG,
			FIELD_KERNEL ": \"%s\" (%s) needs guest RAM at 0x%llx-0x%llx (%llu MiB) "
				     "but the VM has %llu MiB below 4 GiB there; give the VM "
				     "more memory",
			k->path, kernel_kind_name(k->kind), (unsigned long long)k->lo,
			(unsigned long long)k->hi, (unsigned long long)((k->hi - k->lo) >> 20),
			(unsigned long long)(low_ram(gm) >> 20));
	for (unsigned i = 0; i < k->nseg; i++) {
		const struct kernel_seg *s = &k->seg[i];
		int r = mem_write(gm, s->paddr, k->data + s->offset, s->filesz);

		if (!r)
			r = mem_zero(gm, s->paddr + s->filesz, s->memsz - s->filesz);
		if (r)
			return err_set(e, ERR_CONFIG, r,
				       FIELD_KERNEL ": segment at 0x%llx is not in RAM",
				       (unsigned long long)s->paddr);
	}
	return 0;
}

static int pvh_start_info(const struct guest_mem *gm, const struct x86_boot_info *info,
			  const struct linux_e820_entry *e820, unsigned n)
{
	struct hvm_start_info si = {
		.magic = HVM_START_MAGIC,
		.version = 1,
		.cmdline_paddr = info->cmdline_gpa,
		.memmap_paddr = BOOT_MEMMAP_ADDR,
		.memmap_entries = n,
		.rsdp_paddr = BOOT_ACPI_ADDR,
	};
	struct hvm_memmap_entry mm[LINUX_E820_MAX];
	int r;

	if (info->initrd_size) {
		struct hvm_modlist_entry mod = {.paddr = info->initrd_gpa,
						.size = info->initrd_size};

		si.nr_modules = 1;
		si.modlist_paddr = BOOT_MODLIST_ADDR;
		r = mem_write(gm, BOOT_MODLIST_ADDR, &mod, sizeof(mod));
		if (r)
			return r;
	}
	for (unsigned i = 0; i < n; i++)
		mm[i] = (struct hvm_memmap_entry){
			.addr = e820[i].addr, .size = e820[i].size, .type = e820[i].type};
	r = mem_write(gm, BOOT_MEMMAP_ADDR, mm, n * sizeof(mm[0]));
	return r ? r : mem_write(gm, BOOT_START_INFO_ADDR, &si, sizeof(si));
}

int x86_boot_mptable(const struct guest_mem *gm, unsigned vcpus, uint32_t cpu_signature,
		     uint32_t cpu_features, struct vmm_err *e)
{
	uint8_t mp[MPTABLE_MAX];
	int r;

	if (x86_mptable_size(vcpus) > sizeof(mp))
		return err_set(e, ERR_CONFIG, -E2BIG,
			       "machine-config.vcpu_count: %u is too many for an MP table", vcpus);
	x86_mptable(mp, BOOT_MPTABLE_ADDR, vcpus, cpu_signature, cpu_features);
	r = mem_write(gm, BOOT_MPTABLE_ADDR, mp, x86_mptable_size(vcpus));
	if (r)
		return err_set(e, ERR_RUNTIME, r, "writing the MP table: %s", strerror(-r));
	return 0;
}

/* The tables of @c->machine (or of @c->vcpus alone), checked against their area. */
static int acpi_tables(const struct x86_boot_cfg *c, struct acpi_tables *t, struct vmm_err *e)
{
	struct machine local;
	const struct machine *m = c->machine;
	int r;

	if (!m) {
		machine_init(&local, c->vcpus);
		m = &local;
	}
	r = acpi_build(m, BOOT_ACPI_ADDR, t);
	if (r == -EINVAL)
		return err_set(e, ERR_CONFIG, r,
			       "machine-config.vcpu_count: %u vCPUs and %u virtio devices cannot "
			       "be described in ACPI tables; use 1 to 255 vCPUs",
			       m->vcpus, m->nvirtio);
	if (r)
		return err_set(e, ERR_RUNTIME, r, "building the ACPI tables: %s", strerror(-r));
	if (t->len > BOOT_ACPI_SIZE) {
		acpi_tables_free(t);
		return err_set(e, ERR_CONFIG, -E2BIG,
			       "machine-config.vcpu_count: the ACPI tables of %u vCPUs and %u "
			       "virtio devices take %zu bytes, over the %u reserved for them; use "
			       "fewer vCPUs or devices",
			       m->vcpus, m->nvirtio, t->len, (unsigned)BOOT_ACPI_SIZE);
	}
	return 0;
}

int x86_boot_load(const struct guest_mem *gm, const struct x86_boot_cfg *c,
		  struct x86_boot_cpu *bsp, struct x86_boot_info *info, struct vmm_err *e)
{
	const struct kernel_image *k = c->kernel;
	struct linux_e820_entry e820[LINUX_E820_MAX];
	size_t cmdlen = strlen(c->cmdline);
	struct acpi_tables acpi;
	unsigned n;
	int r;

	memset(info, 0, sizeof(*info));
	if (!mem_is_ram(gm, 0, BOOT_LOW_NEEDED))
		return err_set(e, ERR_CONFIG, -E2BIG,
			       "memory: guest RAM must start at 0 and cover the first MiB for boot "
			       "structures; make the first region at least 2 MiB");
	if (cmdlen > k->cmdline_max)
		return err_set(e, ERR_CONFIG, -E2BIG,
			       FIELD_CMDLINE
			       ": %zu bytes, over the %u this kernel accepts; shorten "
			       "it",
			       cmdlen, k->cmdline_max);
	if (x86_mptable_size(c->vcpus) > MPTABLE_MAX)
		return err_set(e, ERR_CONFIG, -E2BIG,
			       "machine-config.vcpu_count: %u is too many "
			       "for an MP table",
			       c->vcpus);
	r = acpi_tables(c, &acpi, e);
	if (r)
		return r;

	r = load_kernel(gm, k, e);
	if (!r && c->initrd_path && c->initrd_path[0])
		r = load_initrd(gm, c, k->hi, info, e);
	if (r)
		goto out;
	info->cmdline_gpa = BOOT_CMDLINE_ADDR;
	n = x86_e820(gm, e820, LINUX_E820_MAX);
	info->e820_entries = n;

	r = mem_write(gm, BOOT_CMDLINE_ADDR, c->cmdline, cmdlen + 1);
	r = r ? r : gdt(gm);
	r = r ? r : mem_zero(gm, BOOT_IDT_ADDR, 8);
	/* Both: MP tables for kernels built with MPPARSE, ACPI for those without (Debian's). */
	r = r ? r : mem_write(gm, BOOT_ACPI_ADDR, acpi.buf, acpi.len);
	if (!r && k->kind == KERNEL_ELF_PVH) {
		r = pvh_start_info(gm, info, e820, n);
	} else if (!r) {
		struct linux_boot_params bp;

		x86_linux_zero_page(&bp, k, BOOT_CMDLINE_ADDR, info->initrd_gpa, info->initrd_size,
				    e820, n);
		r = mem_write(gm, BOOT_ZERO_PAGE_ADDR, &bp, sizeof(bp));
		r = r ? r : page_tables(gm);
	}
	if (r) {
		err_set(e, ERR_RUNTIME, r, "writing boot structures: %s", strerror(-r));
		goto out;
	}
	cpu_state(c, bsp);
out:
	acpi_tables_free(&acpi);
	return r;
}
