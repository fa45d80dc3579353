/*
 * 8250/16550A UART (ttyS0 on COM1): what the guest writes goes to an fd,
 * what the host feeds with serial_rx() becomes guest input, interrupts on
 * receive and on transmitter-empty as Linux's 8250 driver expects.
 */
#ifndef HUGEVMM_DEVICES_SERIAL_H
#define HUGEVMM_DEVICES_SERIAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "devices/dev.h"

#define SERIAL_COM1_BASE 0x3f8
#define SERIAL_COM1_IRQ  4
#define SERIAL_NREGS     8
#define SERIAL_FIFO      64

#define SERIAL_OUT_RING (16 * 1024)

struct serial {
	struct dev dev;
	pthread_mutex_t lock;
	const struct dev_host *host;
	unsigned irq;
	int irq_level;
	uint64_t tx_bytes, tx_dropped, rx_bytes;

	uint8_t ier, iir, fcr, lcr, mcr, lsr, msr, scr, dll, dlm;
	int thr_pending; /* a transmitter-empty interrupt is owed */
	uint8_t rx[SERIAL_FIFO];
	unsigned rx_head, rx_len;
	/*
	 * Guest output waits here until the host drains it (serial_drain) when
	 * its fd is writable: a vCPU never blocks on a slow console. A full ring
	 * holds THRE clear, so the guest waits as it would for a real UART.
	 */
	uint8_t out[SERIAL_OUT_RING];
	unsigned out_head, out_len;
};

/* Set up @s at reset state. host->tx_ready is called when output starts waiting. */
void serial_init(struct serial *s, const struct dev_host *host, unsigned irq);

/* Feed host input; returns how many of @n bytes fit in the receive FIFO. */
size_t serial_rx(struct serial *s, const uint8_t *buf, size_t n);

/* Free room in the receive FIFO. */
size_t serial_rx_room(struct serial *s);

/* Bytes of guest output waiting. */
size_t serial_tx_pending(struct serial *s);

/*
 * Write up to @max waiting bytes to @fd (call when @fd is writable). Returns
 * the bytes written or -errno. Only one thread may drain.
 */
ssize_t serial_drain(struct serial *s, int fd, size_t max);

#endif
