/*
 * The TSC's rate, for the workloads that time themselves (blk.c, net.c):
 * against the PIT, channel 0 counting down from 65536 (mode 2, rate
 * generator) while its latched count is read back until 50 ms of PIT ticks
 * went by. Channel 0 because its gate is always open: channel 2's gate sits
 * behind port 0x61, which QEMU microvm does not have. Then channel 0 is left
 * in mode 1, waiting for a gate edge that never comes: no more IRQ 0. With
 * no PIT counting, CPUID leaf 0x15/0x16, else 2 GHz (said so).
 */
#include <stdint.h>

#include "chase.h"
#include "guest.h"

#define PIT_HZ 1193182u

static void cpuid(uint32_t leaf, uint32_t r[4])
{
	__asm__ volatile("cpuid"
			 : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3])
			 : "a"(leaf), "c"(0));
}

static uint16_t pit0_count(void)
{
	uint8_t lo, hi;

	outb(0x43, 0x00); /* latch channel 0 */
	lo = inb(0x40);
	hi = inb(0x40);
	return (uint16_t)(lo | hi << 8);
}

uint64_t tsc_rate(const char *who)
{
	const uint64_t want = PIT_HZ / 20;
	uint64_t t0, t1, ticks = 0, hz = 0;
	uint16_t prev, cur;
	uint32_t r[4];

	outb(0x43, 0x34); /* channel 0, lo/hi byte, mode 2 */
	outb(0x40, 0);
	outb(0x40, 0);
	prev = pit0_count();
	t0 = chase_rdtsc();
	t1 = t0;
	while (ticks < want && t1 - t0 < 20000000000ull) {
		cur = pit0_count();
		t1 = chase_rdtsc();
		ticks += (uint16_t)(prev - cur);
		prev = cur;
	}
	outb(0x43, 0x32); /* channel 0, mode 1: idle until a gate edge */
	outb(0x40, 0);
	outb(0x40, 0);
	if (ticks >= want) {
		hz = (t1 - t0) * PIT_HZ / ticks;
		puts_(who);
		puts_(" tsc_mhz=");
		putu(hz / 1000000);
		puts_(" (PIT)\n");
	} else {
		cpuid(0, r);
		if (r[0] >= 0x15) {
			uint32_t c[4];

			cpuid(0x15, c);
			if (c[0] && c[1] && c[2])
				hz = (uint64_t)c[2] * c[1] / c[0];
			if (!hz && r[0] >= 0x16) {
				cpuid(0x16, c);
				hz = (uint64_t)(c[0] & 0xffff) * 1000000;
			}
		}
		puts_(who);
		puts_(": the PIT's channel 0 did not count; ");
		if (!hz) {
			hz = 2000000000ull;
			puts_("assuming a 2000 MHz TSC\n");
		} else {
			puts_("TSC from CPUID: tsc_mhz=");
			putu(hz / 1000000);
			puts_("\n");
		}
	}
	if (hz < 100000000ull) {
		puts_(who);
		puts_(": the TSC measured below 100 MHz; assuming 2000 MHz\n");
		hz = 2000000000ull;
	}
	return hz;
}
