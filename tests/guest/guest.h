/*
 * What the test guest's parts share: console output, the command line, the
 * exit path, the memory map, the IDT and the local APIC. guest.c defines
 * them; virtio.c (the virtio-mmio driver core) and rng.c (its workloads)
 * use them. Freestanding: no libc.
 */
#ifndef HUGEVMM_TESTGUEST_H
#define HUGEVMM_TESTGUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LAPIC      0xfee00000ul
#define MAX_RANGES 128

struct range {
	uint64_t start, end;
};

/* RAM from the PVH memory map; the ACPI RSDP the start info names (0: none). */
extern struct range ram[MAX_RANGES];
extern unsigned nram;
extern uint64_t ram_top, rsdp_paddr;
extern char _image_start[], _image_end[];
extern uint64_t boot_pd[]; /* 2048 2M entries identity-mapping 0-4 GiB */

/* Port I/O. */
static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
	uint8_t v;

	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

/* @bytes of guest RAM above the image, @align-aligned, never freed; fails naming @who. */
void *ram_alloc(uint64_t bytes, uint64_t align, const char *who);

/* TSC cycles per second, measured against the PIT (tsc.c); @who prefixes what it prints. */
uint64_t tsc_rate(const char *who);

void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
size_t slen(const char *s);
bool mem_eq(const void *a, const void *b, size_t n);
bool str_eq(const char *a, const char *b);

void putc_(char c);
void puts_(const char *s);
void putu(uint64_t v);
void putx(uint64_t v);

__attribute__((noreturn)) void guest_exit(uint8_t code);
__attribute__((noreturn)) void fail(const char *why);
__attribute__((noreturn)) void pass(uint8_t code);

extern char cmdline[4096];
/* Value of key=... on the command line into @out; false when absent. */
bool arg(const char *key, char *out, size_t len);
uint64_t arg_u64(const char *key, uint64_t def);

/* An ACPI table by signature ("APIC"...) and the MP table (PCMP); NULL when absent. */
const uint8_t *acpi_table(const char *sig);
const uint8_t *mp_table(void);

/* An interrupt gate for vector @v (ring-0 handler, callable from ring @dpl). */
void gate(unsigned v, void (*fn)(void), unsigned dpl);
void wait_cycles(uint64_t c);
__attribute__((noreturn)) void do_idle(void);

static inline void lapic_write(unsigned reg, uint32_t v)
{
	*(volatile uint32_t *)(LAPIC + reg) = v;
}

static inline uint32_t lapic_read(unsigned reg)
{
	return *(volatile uint32_t *)(LAPIC + reg);
}

/* rng.c: the virtio workloads. */
__attribute__((noreturn)) void do_rng(void);
__attribute__((noreturn)) void do_virtio_rt(void);
__attribute__((noreturn)) void do_virtio_bad(void);

#endif
