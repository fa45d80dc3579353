/*
 * Small platform ports: the debug-exit port (a write of N ends hugevmm with
 * status N; QEMU's isa-debug-exit at the same port exits 2N+1) and the i8042
 * controller's reset line (guest `reboot` -> hugevmm exits 0), plus benign
 * answers for the ports Linux probes early.
 */
#ifndef HUGEVMM_DEVICES_SYSCTL_PORTS_H
#define HUGEVMM_DEVICES_SYSCTL_PORTS_H

#include "devices/dev.h"

#define DEBUG_EXIT_PORT 0xf4
#define I8042_DATA_PORT 0x60
#define I8042_CMD_PORT  0x64
#define I8042_LEN       (I8042_CMD_PORT - I8042_DATA_PORT + 1)

struct debug_exit {
	struct dev dev;
	const struct dev_host *host;
};

struct i8042 {
	struct dev dev;
	const struct dev_host *host;
};

void debug_exit_init(struct debug_exit *d, const struct dev_host *host);
void i8042_init(struct i8042 *k, const struct dev_host *host);

#endif
