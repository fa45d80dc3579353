#include "devices/serial.h"

#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <time.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"

/* Register offsets. */
enum {
	RBR_THR = 0,
	IER = 1,
	IIR_FCR = 2,
	LCR = 3,
	MCR = 4,
	LSR = 5,
	MSR = 6,
	SCR = 7
};

#define IER_RDI         0x01
#define IER_THRI        0x02
#define IER_RLSI        0x04
#define IIR_NO_INT      0x01
#define IIR_THRI        0x02
#define IIR_RDI         0x04
#define IIR_FIFO        0xc0
#define FCR_FIFO_ENABLE 0x01
#define FCR_CLEAR_RX    0x02
#define LCR_DLAB        0x80
#define MCR_DTR         0x01
#define MCR_RTS         0x02
#define MCR_OUT1        0x04
#define MCR_OUT2        0x08
#define MCR_LOOP        0x10
#define LSR_DR          0x01
#define LSR_THRE        0x20
#define LSR_TEMT        0x40
#define MSR_CTS         0x10
#define MSR_DSR         0x20
#define MSR_RI          0x40
#define MSR_DCD         0x80

static void reset_locked(struct serial *s)
{
	s->ier = 0;
	s->iir = IIR_NO_INT;
	s->fcr = 0;
	s->lcr = 0x03; /* 8n1 */
	s->mcr = MCR_OUT2;
	s->lsr = LSR_THRE | LSR_TEMT;
	s->msr = MSR_DCD | MSR_DSR | MSR_CTS;
	s->scr = 0;
	s->dll = 0x0c; /* 9600 baud */
	s->dlm = 0;
	s->thr_pending = 0;
	s->rx_head = s->rx_len = 0;
	if (s->out_len == SERIAL_OUT_RING)
		s->lsr &= (uint8_t) ~(LSR_THRE | LSR_TEMT);
}

/* Recompute IIR from the sources, by priority, and drive the line when it changes. */
static void update_irq(struct serial *s)
{
	uint8_t iir = IIR_NO_INT;
	int level;

	if ((s->ier & IER_RDI) && (s->lsr & LSR_DR))
		iir = IIR_RDI;
	else if ((s->ier & IER_THRI) && s->thr_pending)
		iir = IIR_THRI;
	s->iir = iir | ((s->fcr & FCR_FIFO_ENABLE) ? IIR_FIFO : 0);
	level = iir != IIR_NO_INT;
	if (level != s->irq_level) {
		s->irq_level = level;
		s->host->irq_line(s->host->opaque, s->irq, level);
	}
}

static void transmit(struct serial *s, uint8_t ch)
{
	if (s->mcr & MCR_LOOP) {
		if (s->rx_len < SERIAL_FIFO) {
			s->rx[(s->rx_head + s->rx_len++) % SERIAL_FIFO] = ch;
			s->lsr |= LSR_DR;
		}
		s->thr_pending = 1;
		return;
	}
	if (s->out_len == SERIAL_OUT_RING) {
		/* The guest wrote THR while THRE was clear: the byte is lost, as on hardware. */
		s->tx_dropped++;
		return;
	}
	s->out[(s->out_head + s->out_len++) % SERIAL_OUT_RING] = ch;
	s->tx_bytes++;
	if (s->out_len == 1)
		s->host->tx_ready(s->host->opaque);
	if (s->out_len == SERIAL_OUT_RING) {
		s->lsr &= (uint8_t) ~(LSR_THRE | LSR_TEMT);
		s->thr_pending = 0;
	} else {
		/* The byte is taken at once: the transmitter is empty again and says so. */
		s->thr_pending = 1;
	}
}

/*
 * write() that returns EPIPE instead of raising SIGPIPE when the reader is
 * gone, without touching the process's signal dispositions (hugevmm may be
 * embedded): SIGPIPE is blocked on this thread and a pending one consumed.
 */
static ssize_t write_nosigpipe(int fd, const void *buf, size_t n)
{
	sigset_t pipe, old;
	ssize_t w;
	int err;

	sigemptyset(&pipe);
	sigaddset(&pipe, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe, &old);
	w = write(fd, buf, n);
	err = errno;
	if (w < 0 && err == EPIPE && !sigismember(&old, SIGPIPE)) {
		struct timespec zero = {0, 0};

		sigtimedwait(&pipe, NULL, &zero);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	errno = err;
	return w;
}

size_t serial_tx_pending(struct serial *s)
{
	size_t n;

	pthread_mutex_lock(&s->lock);
	n = s->out_len;
	pthread_mutex_unlock(&s->lock);
	return n;
}

ssize_t serial_drain(struct serial *s, int fd, size_t max)
{
	uint8_t buf[4096];
	size_t n;
	ssize_t w;

	/* Copy under the lock, write without it: a vCPU is never held up by the fd. */
	pthread_mutex_lock(&s->lock);
	n = MIN(MIN(max, sizeof(buf)), (size_t)s->out_len);
	for (size_t i = 0; i < n; i++)
		buf[i] = s->out[(s->out_head + i) % SERIAL_OUT_RING];
	pthread_mutex_unlock(&s->lock);
	if (!n)
		return 0;
	w = write_nosigpipe(fd, buf, n);
	if (w <= 0)
		return w < 0 ? -errno : 0;

	pthread_mutex_lock(&s->lock);
	s->out_head = (s->out_head + (unsigned)w) % SERIAL_OUT_RING;
	s->out_len -= (unsigned)w;
	if (!(s->lsr & LSR_THRE)) {
		s->lsr |= LSR_THRE | LSR_TEMT;
		s->thr_pending = 1;
		update_irq(s);
	}
	pthread_mutex_unlock(&s->lock);
	return w;
}

static uint8_t loop_msr(uint8_t mcr)
{
	return (uint8_t)(((mcr & MCR_RTS) ? MSR_CTS : 0) | ((mcr & MCR_DTR) ? MSR_DSR : 0) |
			 ((mcr & MCR_OUT1) ? MSR_RI : 0) | ((mcr & MCR_OUT2) ? MSR_DCD : 0));
}

static void serial_read(struct dev *d, uint64_t off, void *data, unsigned len)
{
	struct serial *s = container_of(d, struct serial, dev);
	uint8_t v = 0xff;

	if (off >= SERIAL_NREGS) {
		memset(data, 0xff, len);
		return;
	}
	pthread_mutex_lock(&s->lock);
	switch (off) {
	case RBR_THR:
		if (s->lcr & LCR_DLAB) {
			v = s->dll;
			break;
		}
		v = 0;
		if (s->rx_len) {
			v = s->rx[s->rx_head];
			s->rx_head = (s->rx_head + 1) % SERIAL_FIFO;
			s->rx_len--;
		}
		if (!s->rx_len)
			s->lsr &= (uint8_t)~LSR_DR;
		break;
	case IER:
		v = (s->lcr & LCR_DLAB) ? s->dlm : s->ier;
		break;
	case IIR_FCR:
		v = s->iir;
		/* Reading IIR acknowledges a transmitter-empty interrupt. */
		if ((v & 0x0f) == IIR_THRI)
			s->thr_pending = 0;
		break;
	case LCR:
		v = s->lcr;
		break;
	case MCR:
		v = s->mcr;
		break;
	case LSR:
		v = s->lsr;
		break;
	case MSR:
		v = (s->mcr & MCR_LOOP) ? loop_msr(s->mcr) : s->msr;
		break;
	case SCR:
		v = s->scr;
		break;
	}
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
	memset(data, 0, len);
	*(uint8_t *)data = v;
}

static void serial_write(struct dev *d, uint64_t off, const void *data, unsigned len)
{
	struct serial *s = container_of(d, struct serial, dev);
	uint8_t v = *(const uint8_t *)data;

	(void)len;
	if (off >= SERIAL_NREGS)
		return;
	pthread_mutex_lock(&s->lock);
	switch (off) {
	case RBR_THR:
		if (s->lcr & LCR_DLAB)
			s->dll = v;
		else
			transmit(s, v);
		break;
	case IER:
		if (s->lcr & LCR_DLAB) {
			s->dlm = v;
			break;
		}
		/* Enabling THRI with an empty transmitter raises it at once (16550 behaviour). */
		if (!(s->ier & IER_THRI) && (v & IER_THRI))
			s->thr_pending = 1;
		s->ier = v & 0x0f;
		break;
	case IIR_FCR:
		s->fcr = v & 0xc9;
		if (v & FCR_CLEAR_RX) {
			s->rx_head = s->rx_len = 0;
			s->lsr &= (uint8_t)~LSR_DR;
		}
		break;
	case LCR:
		s->lcr = v;
		break;
	case MCR:
		s->mcr = v & 0x1f;
		break;
	case SCR:
		s->scr = v;
		break;
	default: /* LSR and MSR are read-only */
		break;
	}
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
}

static void serial_reset(struct dev *d)
{
	struct serial *s = container_of(d, struct serial, dev);

	pthread_mutex_lock(&s->lock);
	reset_locked(s);
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
}

static void serial_exit(struct dev *d)
{
	struct serial *s = container_of(d, struct serial, dev);

	pthread_mutex_destroy(&s->lock);
}

static const struct dev_ops serial_ops = {
	.name = "serial8250",
	.read = serial_read,
	.write = serial_write,
	.reset = serial_reset,
	.exit = serial_exit,
};

void serial_init(struct serial *s, const struct dev_host *host, unsigned irq)
{
	/* All but the output ring's bytes, which are only read after they are written:
	 * left untouched, its 16 KiB stay out of the VMM's RSS until the guest prints. */
	memset(s, 0, offsetof(struct serial, out));
	s->out_head = s->out_len = 0;
	s->dev.ops = &serial_ops;
	s->host = host;
	s->irq = irq;
	pthread_mutex_init(&s->lock, NULL);
	reset_locked(s);
}

size_t serial_rx_room(struct serial *s)
{
	size_t room;

	pthread_mutex_lock(&s->lock);
	room = SERIAL_FIFO - s->rx_len;
	pthread_mutex_unlock(&s->lock);
	return room;
}

size_t serial_rx(struct serial *s, const uint8_t *buf, size_t n)
{
	size_t done = 0;

	pthread_mutex_lock(&s->lock);
	while (done < n && s->rx_len < SERIAL_FIFO) {
		s->rx[(s->rx_head + s->rx_len++) % SERIAL_FIFO] = buf[done++];
		s->lsr |= LSR_DR;
	}
	s->rx_bytes += done;
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
	return done;
}
