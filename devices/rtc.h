/*
 * The PC's MC146818 CMOS real-time clock at ports 0x70 (index) and 0x71
 * (data): the host's UTC clock as the guest's wall clock, in BCD or binary and
 * 24- or 12-hour form as register B asks, never "update in progress" (a guest
 * that finds the clock absent or always updating spins on it at boot), and
 * 114 bytes of NVRAM. A guest that sets the time moves only its own view: the
 * difference to the host clock is kept as an offset. No alarm or periodic
 * interrupts (IRQ 8 is never raised); Linux's rtc-cmos works without them.
 */
#ifndef HUGEVMM_DEVICES_RTC_H
#define HUGEVMM_DEVICES_RTC_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "devices/dev.h"

#define RTC_PORT 0x70
#define RTC_LEN  2
#define RTC_NREG 128

struct rtc {
	struct dev dev;
	pthread_mutex_t lock;
	uint8_t index;
	uint8_t reg[RTC_NREG]; /* control registers and NVRAM; time registers are computed */
	int64_t offset;        /* guest time - host time, seconds */
	time_t (*now)(void);   /* the host clock (replaceable in tests) */
};

void rtc_init(struct rtc *r);

#endif
