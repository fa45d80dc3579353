/*
 * hugevmm's test guest: a freestanding x86-64 program booted through PVH by
 * hugevmm and by QEMU alike. Ring 0 only sets up (on some hosts it is
 * emulated instruction by instruction); the hot loops run in ring 3. It
 * prints to COM1, ends with "testguest: PASS" or "testguest: FAIL <reason>",
 * and leaves through the debug-exit port 0xf4.
 *
 * Workloads (kernel command line):
 *   test=memcheck [then=idle]         pattern over every RAM byte of the memory map; then=idle
 *                                     stays up afterwards (all RAM touched) instead of exiting
 *   test=randread size_mib=N iters=N  dependent random reads, TSC cycles per read
 *   test=smp                          every CPU of the MP table / ACPI MADT checks in
 *   test=idle [tick_ms=N]             halt until the VMM stops the VM; Ctrl-Alt-Del on the
 *                                     keyboard resets; tick_ms prints "tick K" every N ms
 *   test=exit code=N                  exit with status N
 *   test=crash                        triple fault (the VMM must report it, not hang)
 *   test=spam                         print numbered lines until stopped (console backpressure)
 *   test=rtc                          read the CMOS clock (ports 0x70/0x71) and its NVRAM
 *   test=rng [bytes=N]                read N bytes from the virtio entropy device (rng.c)
 *   test=virtio-rt [n=N]              N one-byte round trips on the entropy queue, TSC cycles
 *   test=virtio-bad [bad=KIND]        give the entropy device a bad descriptor, report
 *                                     DEVICE_NEEDS_RESET, then idle as test=idle does
 *   test=blk seed=S [disk=N|all] [ro=1] [expect_sectors=N] [wait_change=1]
 *                                     check the sector pattern of seed S on a virtio-blk disk,
 *                                     write seed S+1, flush, read back (blk.c: the pattern)
 *   test=blkbench mode=M bs=B qd=N secs=N [disk=N]
 *                                     qd requests in flight for secs s; iops and MB/s
 *   test=blk-bad bad=KIND [disk=N]    a bad request (range, status, nostatus, rodesc): IOERR
 *                                     or DEVICE_NEEDS_RESET, then idle as test=idle does
 *   test=net ip=A.B.C.D/N [count=N] [bad=N]
 *                                     virtio-net: answer ARP and ICMP echo for the address
 *                                     until stopped, or exit PASS after N echoes (net.c);
 *                                     bad=N: N malformed frames of each kind first
 *   test=netbench mode=tx size=N secs=N
 *                                     broadcast UDP frames of N bytes for secs s; pps, MB/s
 *   test=netbench mode=rx secs=N      count bench/netblast's frames for secs s; pps, MB/s
 *   test=netbench mode=echo size=N secs=N ip=A.B.C.D/N peer=A.B.C.D
 *                                     ICMP echo round trips to peer, one at a time; RTTs
 *   test=balloon [touch_mib=N] [report_mib=N [retouch=1]] [bad=KIND] [exit_mib=N]
 *                                     virtio-balloon: follow the device's target from a pool
 *                                     of free RAM, printing "balloon actual_mib=N" at each;
 *                                     statistics, free page reporting (balloon.c)
 *   test=vsock [port=52] [peer_port=1024] [bytes=N] [bad=credit,hdr] [refused=1]
 *                                     virtio-vsock: serve one host connection on port (a
 *                                     checksum back), then send N bytes to the host's
 *                                     peer_port; the host side's steps are in vsock.c
 *   The virtio workloads find devices from virtio_mmio.device= entries (virtio.c) and take
 *   event_idx=0|1 indirect=0|1 irq=0|1 qsize=N too (see rng.c and blk.c).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chase.h"
#include "guest.h"
#include "virtio.h"

#define COM1          0x3f8
#define EXIT_PORT     0xf4
#define AP_TRAMPOLINE 0x9000ul
#define MAX_CPUS      64
#define GIB           (1ul << 30)
#define MAP_LIMIT     (64 * GIB) /* RAM is identity mapped up to here */

struct hvm_start_info {
	uint32_t magic, version, flags, nr_modules;
	uint64_t modlist_paddr, cmdline_paddr, rsdp_paddr, memmap_paddr;
	uint32_t memmap_entries, reserved;
};

struct hvm_memmap_entry {
	uint64_t addr, size;
	uint32_t type, reserved;
};

extern uint64_t boot_pml4[], boot_pdpt[], gdt[];
extern char ap_tramp_start[], ap_tramp_end[], ap_stacks[];
extern struct {
	uint16_t limit;
	uint64_t base;
} __attribute__((packed)) gdt_ptr;
extern void bp_entry(void), exc_other(void), irq_timer(void), irq_keyboard(void);
void irq_timer_c(void);
void irq_keyboard_c(void);
extern void exc0(void), exc1(void), exc2(void), exc4(void), exc5(void), exc6(void), exc7(void),
	exc8(void), exc9(void), exc10(void), exc11(void), exc12(void), exc13(void), exc14(void),
	exc15(void), exc16(void), exc17(void), exc18(void), exc19(void), exc20(void);
long run_user(long (*fn)(long), long arg);
void guest_main(uint32_t start_info);
void ap_main(uint32_t index);
void exception(uint64_t *frame);

/* ---- ring 0 basics ---- */

/* Guest RAM above this image, handed out once, for buffers too big for .bss. */
void *ram_alloc(uint64_t bytes, uint64_t align, const char *who)
{
	static uint64_t heap;

	if (!heap)
		heap = (uint64_t)(uintptr_t)_image_end;
	for (unsigned i = 0; i < nram; i++) {
		uint64_t s = heap > ram[i].start ? heap : ram[i].start;

		s = (s + align - 1) & ~(align - 1);
		if (ram[i].end > heap && s + bytes <= ram[i].end) {
			heap = s + bytes;
			return (void *)(uintptr_t)s;
		}
	}
	puts_(who);
	puts_(": ");
	fail("not enough guest RAM above the image for its buffers");
}

void *memset(void *d, int c, size_t n)
{
	__asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
	return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
	void *r = d;

	__asm__ volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(n) : : "memory");
	return r;
}

size_t slen(const char *s)
{
	size_t n = 0;

	while (s[n])
		n++;
	return n;
}

bool mem_eq(const void *a, const void *b, size_t n)
{
	const uint8_t *x = a, *y = b;

	for (size_t i = 0; i < n; i++)
		if (x[i] != y[i])
			return false;
	return true;
}

bool str_eq(const char *a, const char *b)
{
	return slen(a) == slen(b) && mem_eq(a, b, slen(a));
}

void putc_(char c)
{
	/* Wait for the transmitter (QEMU and hugevmm report it empty at once). */
	for (int i = 0; i < 100000 && !(inb(COM1 + 5) & 0x20); i++)
		;
	outb(COM1, (uint8_t)c);
}

void puts_(const char *s)
{
	while (*s) {
		if (*s == '\n')
			putc_('\r');
		putc_(*s++);
	}
}

void putu(uint64_t v)
{
	char b[24];
	int i = 23;

	b[i] = 0;
	do {
		b[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	puts_(b + i);
}

void putx(uint64_t v)
{
	static const char hex[] = "0123456789abcdef";
	char b[19];

	b[0] = '0';
	b[1] = 'x';
	for (int i = 0; i < 16; i++)
		b[2 + i] = hex[(v >> (60 - 4 * i)) & 0xf];
	b[18] = 0;
	puts_(b);
}

__attribute__((noreturn)) void guest_exit(uint8_t code)
{
	outb(EXIT_PORT, code);
	for (;;)
		__asm__ volatile("cli; hlt");
}

__attribute__((noreturn)) void fail(const char *why)
{
	puts_("testguest: FAIL ");
	puts_(why);
	puts_("\n");
	guest_exit(1);
}

__attribute__((noreturn)) void pass(uint8_t code)
{
	puts_("testguest: PASS\n");
	guest_exit(code);
}

/* ---- command line ---- */

char cmdline[4096];

/* Value of key=... on the command line into @out; false when absent. */
bool arg(const char *key, char *out, size_t len)
{
	size_t kl = slen(key);

	for (const char *p = cmdline; *p;) {
		while (*p == ' ')
			p++;
		if (!*p)
			break;
		if (mem_eq(p, key, kl) && p[kl] == '=') {
			size_t n = 0;

			p += kl + 1;
			while (*p && *p != ' ' && n + 1 < len)
				out[n++] = *p++;
			out[n] = 0;
			return true;
		}
		while (*p && *p != ' ')
			p++;
	}
	return false;
}

uint64_t arg_u64(const char *key, uint64_t def)
{
	char v[32];
	uint64_t n = 0;

	if (!arg(key, v, sizeof(v)))
		return def;
	for (const char *p = v; *p; p++) {
		if (*p < '0' || *p > '9')
			fail("a numeric argument is not a number");
		n = n * 10 + (uint64_t)(*p - '0');
	}
	return n;
}

/* ---- memory map and page tables ---- */

struct range ram[MAX_RANGES];
unsigned nram;
uint64_t ram_top;
uint64_t rsdp_paddr;
static uint64_t extra_pd[60][512] __attribute__((aligned(4096)));

static void read_memmap(const struct hvm_start_info *si)
{
	const struct hvm_memmap_entry *m = (const void *)(uintptr_t)si->memmap_paddr;

	if (si->version < 1 || !si->memmap_paddr || !si->memmap_entries)
		fail("no memory map in the PVH start info");
	for (uint32_t i = 0; i < si->memmap_entries && nram < MAX_RANGES; i++) {
		if (m[i].type != 1 || !m[i].size)
			continue;
		ram[nram].start = m[i].addr;
		ram[nram].end = m[i].addr + m[i].size;
		if (ram[nram].end > ram_top)
			ram_top = ram[nram].end;
		nram++;
	}
	if (!nram)
		fail("the memory map has no RAM");
}

/* Map RAM above 4 GiB with 2M pages (the static tables cover 0-4 GiB). */
static void map_high_ram(void)
{
	if (ram_top > MAP_LIMIT)
		fail("RAM above 64 GiB; the test guest maps 64 GiB");
	for (uint64_t g = 4; g * GIB < ram_top; g++) {
		uint64_t *pd = extra_pd[g - 4];

		for (unsigned i = 0; i < 512; i++)
			pd[i] = (g * GIB + ((uint64_t)i << 21)) | 0x87;
		boot_pdpt[g] = (uint64_t)(uintptr_t)pd | 0x07;
	}
	__asm__ volatile("mov %%cr3, %%rax; mov %%rax, %%cr3" : : : "rax", "memory");
}

/* ---- exceptions, TSS, IDT ---- */

struct idt_gate {
	uint16_t off0, sel;
	uint8_t ist, type;
	uint16_t off1;
	uint32_t off2, zero;
} __attribute__((packed));

static struct idt_gate idt[256] __attribute__((aligned(16)));
static uint32_t tss[26] __attribute__((aligned(16)));
static uint8_t exc_stack[16384] __attribute__((aligned(16)));
static uint8_t user_stack[65536] __attribute__((aligned(16)));
uint64_t user_stack_top;

void gate(unsigned v, void (*fn)(void), unsigned dpl)
{
	uint64_t a = (uint64_t)(uintptr_t)fn;

	idt[v] = (struct idt_gate){.off0 = (uint16_t)a,
				   .sel = 0x08,
				   .type = (uint8_t)(0x8e | (dpl << 5)),
				   .off1 = (uint16_t)(a >> 16),
				   .off2 = (uint32_t)(a >> 32)};
}

static void setup_cpu_tables(void)
{
	static void (*const handlers[])(void) = {exc0,  exc1,  exc2,  NULL,  exc4,  exc5,  exc6,
						 exc7,  exc8,  exc9,  exc10, exc11, exc12, exc13,
						 exc14, exc15, exc16, exc17, exc18, exc19, exc20};
	uint64_t tss_base = (uint64_t)(uintptr_t)tss,
		 rsp0 = (uint64_t)(uintptr_t)(exc_stack + sizeof(exc_stack));
	struct {
		uint16_t limit;
		uint64_t base;
	} __attribute__((packed)) idtr = {sizeof(idt) - 1, (uint64_t)(uintptr_t)idt};

	for (unsigned v = 0; v < 256; v++)
		gate(v, exc_other, 0);
	for (unsigned v = 0; v < sizeof(handlers) / sizeof(handlers[0]); v++)
		if (handlers[v])
			gate(v, handlers[v], 0);
	gate(3, bp_entry, 3); /* int3 from ring 3 is how user code returns */

	tss[1] = (uint32_t)rsp0; /* RSP0 */
	tss[2] = (uint32_t)(rsp0 >> 32);
	tss[25] = sizeof(tss) << 16; /* no I/O bitmap */
	gdt[5] = (sizeof(tss) - 1) | ((tss_base & 0xffffff) << 16) | (0x89ull << 40) |
		 (((tss_base >> 24) & 0xff) << 56);
	gdt[6] = tss_base >> 32;
	__asm__ volatile("lidt %0" : : "m"(idtr));
	__asm__ volatile("ltr %w0" : : "r"(0x28));
	user_stack_top = (uint64_t)(uintptr_t)(user_stack + sizeof(user_stack));
}

void exception(uint64_t *f)
{
	puts_("testguest: FAIL exception ");
	putu(f[0]);
	puts_(" error ");
	putx(f[1]);
	puts_(" rip ");
	putx(f[2]);
	puts_(" cs ");
	putx(f[3]);
	if (f[0] == 14) {
		uint64_t cr2;

		__asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
		puts_(" cr2 ");
		putx(cr2);
	}
	puts_("\n");
	guest_exit(1);
}

/* ---- memcheck (ring 3) ---- */

static struct range test_ranges[MAX_RANGES];
static unsigned ntest;

/* RAM minus this image, 8-byte aligned. */
static void testable_ranges(void)
{
	uint64_t is = (uint64_t)(uintptr_t)_image_start, ie = (uint64_t)(uintptr_t)_image_end;

	for (unsigned i = 0; i < nram && ntest + 2 <= MAX_RANGES; i++) {
		uint64_t s = (ram[i].start + 7) & ~7ul, e = ram[i].end & ~7ul;

		if (e <= s)
			continue;
		if (ie <= s || is >= e) {
			test_ranges[ntest++] = (struct range){s, e};
			continue;
		}
		if (s < is)
			test_ranges[ntest++] = (struct range){s, is};
		if (ie < e)
			test_ranges[ntest++] = (struct range){ie, e};
	}
}

static inline uint64_t pattern(uint64_t a, uint64_t salt)
{
	return (a * 0x9e3779b97f4a7c15ull) ^ salt;
}

static long user_memcheck(long salt)
{
	uint64_t bad = 0;

	for (unsigned r = 0; r < ntest; r++)
		for (uint64_t a = test_ranges[r].start; a < test_ranges[r].end; a += 8)
			*(volatile uint64_t *)(uintptr_t)a = pattern(a, (uint64_t)salt);
	for (unsigned r = 0; r < ntest; r++)
		for (uint64_t a = test_ranges[r].start; a < test_ranges[r].end; a += 8)
			if (*(volatile uint64_t *)(uintptr_t)a != pattern(a, (uint64_t)salt)) {
				bad = a;
				goto out;
			}
out:
	return (long)bad;
}

static void do_memcheck(void)
{
	uint64_t bytes = 0;
	char then[8];
	long bad;

	testable_ranges();
	for (unsigned r = 0; r < ntest; r++)
		bytes += test_ranges[r].end - test_ranges[r].start;
	/* Two passes with different patterns: a stale or aliased page cannot pass both. */
	bad = run_user(user_memcheck, 0x5a5a5a5a5a5a5a5al);
	if (!bad)
		bad = run_user(user_memcheck, (long)0xa5a5a5a5a5a5a5a5ul);
	if (bad) {
		puts_("memcheck mismatch at ");
		putx((uint64_t)bad);
		puts_("\n");
		fail("memcheck: guest RAM did not hold its pattern");
	}
	puts_("memcheck bytes=");
	putu(bytes);
	puts_(" ranges=");
	putu(ntest);
	puts_("\n");
	/* then=idle: stay up with all RAM touched, for whoever inspects the VM's mappings. */
	if (arg("then", then, sizeof(then)) && str_eq(then, "idle"))
		do_idle();
	pass(0);
}

/* ---- randread (ring 3) ---- */

static uint64_t rr_base, rr_lines, rr_iters, rr_cycles;

static long user_randread(long unused)
{
	uint64_t *base = (uint64_t *)(uintptr_t)rr_base, end;

	(void)unused;
	chase_build(base, rr_lines);
	rr_cycles = chase_run(base, rr_iters, &end);
	return (long)end;
}

static void do_randread(void)
{
	uint64_t mib = arg_u64("size_mib", 64), need = mib << 20, hundredths;

	rr_iters = arg_u64("iters", 1000000);
	if (!mib || !rr_iters)
		fail("randread: size_mib and iters must be positive");
	/* The buffer: the first 2M-aligned stretch of RAM above the image that holds it. */
	testable_ranges();
	for (unsigned r = 0; r < ntest && !rr_base; r++) {
		uint64_t s = (test_ranges[r].start + (2ul << 20) - 1) & ~((2ul << 20) - 1);

		if (s >= (uint64_t)(uintptr_t)_image_end && s + need <= test_ranges[r].end)
			rr_base = s;
	}
	if (!rr_base)
		fail("randread: no contiguous RAM of size_mib above the guest image");
	rr_lines = need / 64;
	run_user(user_randread, 0);
	hundredths = rr_cycles * 100 / rr_iters;
	puts_("randread size_mib=");
	putu(mib);
	puts_(" iters=");
	putu(rr_iters);
	puts_(" cycles_per_read=");
	putu(hundredths / 100);
	puts_(".");
	putu((hundredths % 100) / 10);
	putu(hundredths % 10);
	puts_("\n");
	pass(0);
}

/* ---- smp ---- */

static volatile uint32_t checked_in;
static uint8_t apic_ids[MAX_CPUS];
static unsigned ncpus;

static bool sum_ok(const uint8_t *p, size_t n)
{
	uint8_t s = 0;

	for (size_t i = 0; i < n; i++)
		s = (uint8_t)(s + p[i]);
	return s == 0;
}

/* The Intel MP configuration table (PCMP) in the BIOS area; NULL when there is none. */
const uint8_t *mp_table(void)
{
	for (uintptr_t a = 0xf0000; a < 0x100000; a += 16) {
		const uint8_t *p = (const uint8_t *)a;
		uint32_t table;

		if (!mem_eq(p, "_MP_", 4) || !sum_ok(p, 16))
			continue;
		memcpy(&table, p + 4, 4);
		if (!table || !mem_eq((const void *)(uintptr_t)table, "PCMP", 4))
			return NULL;
		return (const uint8_t *)(uintptr_t)table;
	}
	return NULL;
}

/* CPUs from an Intel MP table in the BIOS area. */
static bool cpus_from_mptable(void)
{
	const uint8_t *t = mp_table(), *e;

	if (!t)
		return false;
	e = t + *(const uint16_t *)(t + 4);
	for (const uint8_t *q = t + 44; q < e;) {
		if (*q == 0) {
			if ((q[3] & 1) && ncpus < MAX_CPUS)
				apic_ids[ncpus++] = q[1];
			q += 20;
		} else {
			q += 8;
		}
	}
	return ncpus > 0;
}

/* Count enabled local APICs in one MADT. */
static bool madt_cpus(const uint8_t *t)
{
	const uint8_t *e = t + *(const uint32_t *)(t + 4);

	for (const uint8_t *q = t + 44; q + 2 <= e && q[1]; q += q[1])
		if (q[0] == 0 && (q[4] & 1) && ncpus < MAX_CPUS)
			apic_ids[ncpus++] = q[3];
	return ncpus > 0;
}

/* An ACPI table by signature (as QEMU gives them), through the XSDT or the RSDT. */
const uint8_t *acpi_table(const char *sig)
{
	const uint8_t *rsdp = NULL, *sdt;
	unsigned width;
	uint64_t root = 0;
	uint32_t len;

	if (rsdp_paddr)
		rsdp = (const uint8_t *)(uintptr_t)rsdp_paddr;
	for (uintptr_t a = 0xe0000; !rsdp && a < 0x100000; a += 16)
		if (mem_eq((const void *)a, "RSD PTR ", 8) && sum_ok((const void *)a, 20))
			rsdp = (const uint8_t *)a;
	if (!rsdp)
		return NULL;
	if (rsdp[15] >= 2)
		memcpy(&root, rsdp + 24, 8); /* XSDT */
	width = root ? 8 : 4;
	if (!root)
		memcpy(&root, rsdp + 16, 4); /* RSDT */
	sdt = (const uint8_t *)(uintptr_t)root;
	if (!root || !(mem_eq(sdt, "XSDT", 4) || mem_eq(sdt, "RSDT", 4)))
		return NULL;
	memcpy(&len, sdt + 4, 4);
	for (uint32_t off = 36; off + width <= len; off += width) {
		uint64_t ta = 0;

		memcpy(&ta, sdt + off, width);
		if (ta && mem_eq((const void *)(uintptr_t)ta, sig, 4))
			return (const uint8_t *)(uintptr_t)ta;
	}
	return NULL;
}

/* CPUs from the ACPI MADT. */
static bool cpus_from_acpi(void)
{
	const uint8_t *madt = acpi_table("APIC");

	return madt && madt_cpus(madt);
}

void wait_cycles(uint64_t c)
{
	uint64_t t = chase_rdtsc();

	while (chase_rdtsc() - t < c)
		__asm__ volatile("pause");
}

void ap_main(uint32_t index)
{
	(void)index;
	__atomic_add_fetch(&checked_in, 1, __ATOMIC_SEQ_CST);
}

static void do_smp(void)
{
	uint32_t self;
	uint64_t t0;

	if (!cpus_from_mptable() && !cpus_from_acpi())
		fail("smp: no MP table and no ACPI MADT lists the CPUs");
	memcpy((void *)AP_TRAMPOLINE, ap_tramp_start, (size_t)(ap_tramp_end - ap_tramp_start));
	lapic_write(0xf0, 0x1ff); /* software-enable the local APIC */
	self = lapic_read(0x20) >> 24;
	checked_in = 1; /* this CPU */
	for (unsigned i = 0; i < ncpus; i++) {
		if (apic_ids[i] == self)
			continue;
		lapic_write(0x310, (uint32_t)apic_ids[i] << 24);
		lapic_write(0x300, 0x4500); /* INIT */
		wait_cycles(10000000);
		for (int k = 0; k < 2; k++) {
			lapic_write(0x310, (uint32_t)apic_ids[i] << 24);
			lapic_write(0x300, 0x4600 | (AP_TRAMPOLINE >> 12)); /* STARTUP */
			wait_cycles(1000000);
		}
	}
	/* Up to ~20 s at 1 GHz: ring 0 may be emulated and APs start in real mode. */
	t0 = chase_rdtsc();
	while (__atomic_load_n(&checked_in, __ATOMIC_SEQ_CST) < ncpus &&
	       chase_rdtsc() - t0 < 20000000000ull)
		__asm__ volatile("pause");
	puts_("smp cpus=");
	putu(__atomic_load_n(&checked_in, __ATOMIC_SEQ_CST));
	puts_(" of ");
	putu(ncpus);
	puts_("\n");
	if (checked_in != ncpus)
		fail("smp: not every CPU checked in");
	pass(0);
}

/* ---- idle: interrupts through the legacy PIC ---- */

#define PIC1    0x20
#define PIC2    0xa0
#define PIT_HZ  1193182
#define TICK_HZ 100

static unsigned tick_every, tick_count, ticks_printed;
static uint8_t keys[4];

void irq_timer_c(void)
{
	if (tick_every && ++tick_count % tick_every == 0) {
		puts_("tick ");
		putu(++ticks_printed);
		puts_("\n");
	}
	outb(PIC1, 0x20); /* end of interrupt */
}

/* Scan code set 2 make codes: Ctrl 14, Alt 11, Del E0 71 (what VMMs send for Ctrl-Alt-Del). */
void irq_keyboard_c(void)
{
	static const uint8_t cad[4] = {0x14, 0x11, 0xe0, 0x71};

	while (inb(0x64) & 1) {
		memcpy(keys, keys + 1, 3);
		keys[3] = inb(0x60);
		if (mem_eq(keys, cad, 4)) {
			puts_("ctrl-alt-del: rebooting\n");
			outb(0x64, 0xfe); /* pulse the reset line */
		}
	}
	outb(PIC1, 0x20);
}

void do_idle(void)
{
	uint64_t tick_ms = arg_u64("tick_ms", 0);

	/* The 8259s: vectors 0x20-0x2f, only the timer (if asked) and the keyboard unmasked. */
	outb(PIC1, 0x11);
	outb(PIC2, 0x11);
	outb(PIC1 + 1, 0x20);
	outb(PIC2 + 1, 0x28);
	outb(PIC1 + 1, 4);
	outb(PIC2 + 1, 2);
	outb(PIC1 + 1, 1);
	outb(PIC2 + 1, 1);
	outb(PIC1 + 1, tick_ms ? 0xfc : 0xfd);
	outb(PIC2 + 1, 0xff);
	gate(0x20, irq_timer, 0);
	gate(0x21, irq_keyboard, 0);
	/* The local APIC passes the PIC's interrupts through LINT0 (ExtINT). */
	lapic_write(0xf0, 0x1ff);
	lapic_write(0x350, 0x700);
	if (tick_ms) {
		uint16_t div = PIT_HZ / TICK_HZ;

		tick_every = (unsigned)(tick_ms * TICK_HZ / 1000);
		if (!tick_every)
			tick_every = 1;
		outb(0x43, 0x34); /* channel 0, rate generator */
		outb(0x40, (uint8_t)div);
		outb(0x40, (uint8_t)(div >> 8));
	}
	puts_("idle\n");
	for (;;)
		__asm__ volatile("sti; hlt");
}

/* ---- main ---- */

static uint8_t cmos(uint8_t idx)
{
	outb(0x70, idx);
	return inb(0x71);
}

static unsigned bcd(uint8_t v)
{
	return (unsigned)(v >> 4) * 10 + (v & 0x0f);
}

static void put2(unsigned v)
{
	putu(v / 10);
	putu(v % 10);
}

/* The date as a guest's firmware-less kernel reads it: wait out UIP, read BCD fields. */
static void do_rtc(void)
{
	unsigned spins = 0;

	while (cmos(0x0a) & 0x80)
		if (++spins == 1000000)
			fail("rtc: update in progress for ever");
	if (!(cmos(0x0d) & 0x80))
		fail("rtc: register D says the time is not valid");
	if (cmos(0x0b) & 0x04)
		fail("rtc: binary mode at reset (want BCD)");
	/* century, year, month, day, hours, minutes, seconds: "2026-11-22 07:35:37" */
	static const uint8_t reg[] = {0x32, 0x09, 0x08, 0x07, 0x04, 0x02, 0x00};
	static const char *const after[] = {"", "-", "-", " ", ":", ":", "\n"};

	puts_("rtc: ");
	for (unsigned i = 0; i < sizeof(reg); i++) {
		put2(bcd(cmos(reg[i])));
		puts_(after[i]);
	}
	outb(0x70, 0x40);
	outb(0x71, 0xa5);
	if (cmos(0x40) != 0xa5)
		fail("rtc: NVRAM byte 0x40 did not keep 0xa5");
	pass(0);
}

void guest_main(uint32_t start_info)
{
	const struct hvm_start_info *si = (const void *)(uintptr_t)start_info;
	char test[32];

	/* The loader zeroed .bss (PT_LOAD memsz > filesz); this stack lives there too. */
	if (si->magic != 0x336ec578)
		fail("not started through PVH (bad start info magic)");
	if (si->cmdline_paddr) {
		const char *c = (const char *)(uintptr_t)si->cmdline_paddr;
		size_t n = 0;

		while (c[n] && n + 1 < sizeof(cmdline))
			n++;
		memcpy(cmdline, c, n);
		cmdline[n] = 0;
	}
	read_memmap(si);
	rsdp_paddr = si->rsdp_paddr;
	map_high_ram();
	setup_cpu_tables();
	puts_("testguest: booted, ");
	putu(nram);
	puts_(" RAM ranges, top ");
	putx(ram_top);
	puts_("\n");

	if (!arg("test", test, sizeof(test)))
		fail("no test= on the command line");
	if (str_eq(test, "memcheck"))
		do_memcheck();
	if (str_eq(test, "randread"))
		do_randread();
	if (str_eq(test, "smp"))
		do_smp();
	if (str_eq(test, "exit"))
		pass((uint8_t)arg_u64("code", 0));
	if (str_eq(test, "spam")) {
		for (uint64_t n = 0;; n++) {
			puts_("spam line ");
			putu(n);
			puts_(" ..................................................\n");
		}
	}
	if (str_eq(test, "crash")) {
		/* No IDT: int3 cannot be delivered, nor the #GP, nor the #DF: a triple fault. */
		struct {
			uint16_t limit;
			uint64_t base;
		} __attribute__((packed)) none = {0, 0};

		puts_("crashing\n");
		__asm__ volatile("lidt %0; int3" : : "m"(none));
		fail("still running after a triple fault");
	}
	if (str_eq(test, "idle"))
		do_idle();
	if (str_eq(test, "rtc"))
		do_rtc();
	if (str_eq(test, "rng"))
		do_rng();
	if (str_eq(test, "virtio-rt"))
		do_virtio_rt();
	if (str_eq(test, "virtio-bad"))
		do_virtio_bad();
	if (str_eq(test, "blk"))
		do_blk();
	if (str_eq(test, "blkbench"))
		do_blkbench();
	if (str_eq(test, "blk-bad"))
		do_blk_bad();
	if (str_eq(test, "net"))
		do_net();
	if (str_eq(test, "netbench"))
		do_netbench();
	if (str_eq(test, "balloon"))
		do_balloon();
	if (str_eq(test, "vsock"))
		do_vsock();
	fail("unknown test= (memcheck, randread, smp, idle, exit, crash, spam, rtc, rng, "
	     "virtio-rt, virtio-bad, blk, blkbench, blk-bad, net, netbench, balloon, vsock)");
}
