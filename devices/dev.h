/*
 * Devices: a generic struct dev embedded in each device and recovered with
 * container_of, one ops table per device. Devices never see the hypervisor:
 * they reach the VMM through the callbacks of struct dev_host.
 */
#ifndef HUGEVMM_DEVICES_DEV_H
#define HUGEVMM_DEVICES_DEV_H

#include <stdbool.h>
#include <stdint.h>

struct dev;

struct dev_ops {
	const char *name;
	/* Guest access at byte @off of the device's region; @len is 1, 2, 4 or 8. */
	void (*read)(struct dev *d, uint64_t off, void *data, unsigned len);
	void (*write)(struct dev *d, uint64_t off, const void *data, unsigned len);
	void (*reset)(struct dev *d);
	void (*exit)(struct dev *d);
};

struct dev {
	const struct dev_ops *ops;
};

/* Why a device asks the VMM to stop the VM. */
enum dev_stop {
	DEV_STOP_RESET,     /* guest reboot (i8042 reset line): exit 0 */
	DEV_STOP_EXIT_CODE, /* debug-exit port: exit with the written status */
	DEV_STOP_POWER_OFF, /* ACPI S5 (the sleep control register): exit 0 */
};

/* What a device may ask of the VMM. */
struct dev_host {
	void *opaque;
	/* Drive interrupt line @gsi to @level (edge devices pulse it). */
	void (*irq_line)(void *opaque, unsigned gsi, int level);
	/* Stop the VM; @status is the process exit status for DEV_STOP_EXIT_CODE. */
	void (*request_stop)(void *opaque, enum dev_stop why, int status);
	/* Output is waiting to be drained (called from a vCPU thread, may be often). */
	void (*tx_ready)(void *opaque);
	/*
	 * Call @fn(@arg, 0) once on the VMM loop after @ms milliseconds (a throttled device
	 * resumes). A handle for timer_cancel, NULL on failure. From the loop's thread,
	 * or (timer_cancel) once the loop no longer runs.
	 */
	void *(*timer)(void *opaque, uint64_t ms, void (*fn)(void *arg, int res), void *arg);
	void (*timer_cancel)(void *opaque, void *timer);
	/*
	 * Call @fn(@arg, revents) on the VMM loop whenever @fd has @events (level-triggered:
	 * a device that cannot consume must unwatch), until unwatch. A handle, NULL on
	 * failure. Both from the loop's thread, or (unwatch) once the loop no longer runs.
	 */
	void *(*watch)(void *opaque, int fd, short events, void (*fn)(void *arg, int res),
		       void *arg);
	void (*unwatch)(void *opaque, void *watch);
};

#endif
