#include "devices/sysctl_ports.h"

#include <string.h>

#include "common/util.h"

#define I8042_CMD_RESET 0xfe

static void debug_exit_write(struct dev *d, uint64_t off, const void *data, unsigned len)
{
	struct debug_exit *x = container_of(d, struct debug_exit, dev);

	(void)off;
	(void)len;
	/* Process exit statuses are 8 bits: the low byte of whatever was written. */
	x->host->request_stop(x->host->opaque, DEV_STOP_EXIT_CODE, *(const uint8_t *)data);
}

static const struct dev_ops debug_exit_ops = {
	.name = "debug-exit",
	.write = debug_exit_write,
};

void debug_exit_init(struct debug_exit *d, const struct dev_host *host)
{
	d->dev.ops = &debug_exit_ops;
	d->host = host;
}

/*
 * One region spans 0x60-0x64: the data port at offset 0, the command/status
 * port at offset 4 (0x61 in between is the PIT speaker port, served inside
 * the hypervisor). Only the reset command 0xfe to 0x64 does anything.
 */
static void i8042_read(struct dev *d, uint64_t off, void *data, unsigned len)
{
	(void)d;
	(void)off;
	/* Status: output buffer empty, input buffer empty; data: nothing. */
	memset(data, 0, len);
}

static void i8042_write(struct dev *d, uint64_t off, const void *data, unsigned len)
{
	struct i8042 *k = container_of(d, struct i8042, dev);

	(void)len;
	if (off == I8042_CMD_PORT - I8042_DATA_PORT && *(const uint8_t *)data == I8042_CMD_RESET)
		k->host->request_stop(k->host->opaque, DEV_STOP_RESET, 0);
}

static const struct dev_ops i8042_ops = {
	.name = "i8042",
	.read = i8042_read,
	.write = i8042_write,
};

void i8042_init(struct i8042 *k, const struct dev_host *host)
{
	k->dev.ops = &i8042_ops;
	k->host = host;
}
