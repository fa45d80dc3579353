/*
 * Small platform ports: the debug-exit port (a write of N ends hugevmm with
 * status N; QEMU's isa-debug-exit at the same port exits 2N+1) and an i8042
 * controller with just enough keyboard to deliver Ctrl-Alt-Del (the API's
 * SendCtrlAltDel) and to take the guest's reset command (guest `reboot` ->
 * hugevmm exits 0).
 */
#ifndef HUGEVMM_DEVICES_SYSCTL_PORTS_H
#define HUGEVMM_DEVICES_SYSCTL_PORTS_H

#include <pthread.h>
#include <stdint.h>

#include "devices/dev.h"

#define DEBUG_EXIT_PORT 0xf4
#define I8042_DATA_PORT 0x60
#define I8042_CMD_PORT  0x64
#define I8042_LEN       (I8042_CMD_PORT - I8042_DATA_PORT + 1)
#define I8042_IRQ       1
#define I8042_BUF       16

struct debug_exit {
	struct dev dev;
	const struct dev_host *host;
};

struct i8042 {
	struct dev dev;
	const struct dev_host *host;
	pthread_mutex_t lock;
	uint8_t status, control, outp, cmd;
	uint8_t buf[I8042_BUF];
	unsigned head, len;
};

void debug_exit_init(struct debug_exit *d, const struct dev_host *host);
void i8042_init(struct i8042 *k, const struct dev_host *host);

/* Queue Ctrl, Alt, Del (scan code set 2 make codes) and raise IRQ 1. -ENOSPC when full. */
int i8042_ctrl_alt_del(struct i8042 *k);

#endif
