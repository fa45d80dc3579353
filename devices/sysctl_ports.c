#include "devices/sysctl_ports.h"

#include <errno.h>
#include <string.h>

#include "common/util.h"

/* Controller commands (to port 0x64). */
#define CMD_READ_CTR   0x20
#define CMD_WRITE_CTR  0x60
#define CMD_READ_OUTP  0xd0
#define CMD_WRITE_OUTP 0xd1
#define CMD_RESET      0xfe
/* Status register. */
#define ST_OBF      0x01 /* output buffer full: data at 0x60 */
#define ST_CMD_DATA 0x08 /* the next 0x60 write is a command's parameter */
#define ST_KBD_ON   0x10
/* Control ("command byte") register. */
#define CTR_KBD_INT 0x01
#define CTR_POST_OK 0x04
/* Keyboard: acknowledge, and the keys of Ctrl-Alt-Del in scan code set 2. */
#define KBD_ACK 0xfa

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

static void flush(struct i8042 *k)
{
	k->head = k->len = 0;
	k->status &= (uint8_t)~ST_OBF;
}

static int push(struct i8042 *k, uint8_t b)
{
	if (k->len == I8042_BUF)
		return -ENOSPC;
	k->buf[(k->head + k->len++) % I8042_BUF] = b;
	k->status |= ST_OBF;
	return 0;
}

/* An edge on IRQ 1 when the guest lets the keyboard interrupt. */
static void kbd_irq(struct i8042 *k)
{
	if (!(k->control & CTR_KBD_INT))
		return;
	k->host->irq_line(k->host->opaque, I8042_IRQ, 1);
	k->host->irq_line(k->host->opaque, I8042_IRQ, 0);
}

/*
 * One region spans 0x60-0x64: the data port at offset 0, the command/status
 * port at offset 4 (0x61 in between is the PIT speaker port, served inside
 * the hypervisor).
 */
static void i8042_read(struct dev *d, uint64_t off, void *data, unsigned len)
{
	struct i8042 *k = container_of(d, struct i8042, dev);
	uint8_t v = 0;

	memset(data, 0, len);
	pthread_mutex_lock(&k->lock);
	if (off == I8042_CMD_PORT - I8042_DATA_PORT) {
		v = k->status;
	} else if (off == 0 && k->len) {
		v = k->buf[k->head];
		k->head = (k->head + 1) % I8042_BUF;
		if (--k->len)
			kbd_irq(k); /* more bytes: another interrupt */
		else
			k->status &= (uint8_t)~ST_OBF;
	}
	pthread_mutex_unlock(&k->lock);
	*(uint8_t *)data = v;
}

static void i8042_write(struct dev *d, uint64_t off, const void *data, unsigned len)
{
	struct i8042 *k = container_of(d, struct i8042, dev);
	uint8_t v = *(const uint8_t *)data;
	bool reset = false;

	(void)len;
	pthread_mutex_lock(&k->lock);
	if (off == I8042_CMD_PORT - I8042_DATA_PORT) {
		switch (v) {
		case CMD_RESET:
			reset = true;
			break;
		case CMD_READ_CTR:
			flush(k);
			push(k, k->control);
			break;
		case CMD_READ_OUTP:
			flush(k);
			push(k, k->outp);
			break;
		case CMD_WRITE_CTR:
		case CMD_WRITE_OUTP:
			flush(k);
			k->status |= ST_CMD_DATA;
			k->cmd = v;
			break;
		default:
			break;
		}
	} else if (off == 0) {
		if (k->status & ST_CMD_DATA) {
			if (k->cmd == CMD_WRITE_CTR)
				k->control = v;
			else if (k->cmd == CMD_WRITE_OUTP)
				k->outp = v;
			k->status &= (uint8_t)~ST_CMD_DATA;
		} else {
			/* A command for the keyboard itself: this keyboard agrees to everything. */
			flush(k);
			push(k, KBD_ACK);
			kbd_irq(k);
		}
	}
	pthread_mutex_unlock(&k->lock);
	if (reset)
		k->host->request_stop(k->host->opaque, DEV_STOP_RESET, 0);
}

static void i8042_exit(struct dev *d)
{
	struct i8042 *k = container_of(d, struct i8042, dev);

	pthread_mutex_destroy(&k->lock);
}

static const struct dev_ops i8042_ops = {
	.name = "i8042",
	.read = i8042_read,
	.write = i8042_write,
	.exit = i8042_exit,
};

void i8042_init(struct i8042 *k, const struct dev_host *host)
{
	memset(k, 0, sizeof(*k));
	k->dev.ops = &i8042_ops;
	k->host = host;
	k->control = CTR_POST_OK | CTR_KBD_INT;
	k->status = ST_KBD_ON;
	pthread_mutex_init(&k->lock, NULL);
}

int i8042_ctrl_alt_del(struct i8042 *k)
{
	static const uint8_t keys[] = {0x14, 0x11, 0xe0, 0x71}; /* Ctrl, Alt, Del (E0 71) */
	int r = 0;

	pthread_mutex_lock(&k->lock);
	if (I8042_BUF - k->len < sizeof(keys))
		r = -ENOSPC;
	for (unsigned i = 0; !r && i < sizeof(keys); i++)
		r = push(k, keys[i]);
	if (!r)
		kbd_irq(k);
	pthread_mutex_unlock(&k->lock);
	return r;
}
