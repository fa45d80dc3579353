/*
 * The socket device (devices/virtio/vsock.c) against its contract,
 * devices/virtio/vsock.h: a fake driver over real guest memory (two 8 MiB
 * slots at separate host addresses, the receive buffers across their seam;
 * hand-built rx, tx and event queues; headers split anywhere) and a fake
 * dev_host whose watches are dispatched with poll() and whose timers run on a
 * virtual clock, with real Unix sockets in a scratch directory on the host
 * side (one test runs on the VMM's own io_uring loop instead).
 *
 * What is asserted: the header's wire layout; vsock_peer_free with the 32-bit
 * counters wrapping; host -> guest connections ("CONNECT <port>\n", REQUEST
 * from CID 2 and a local port of VSOCK_PORT_FIRST or above, "OK <port>\n"
 * only after the guest's RESPONSE, a guest RST closing the client, bad lines
 * and silent clients closed and counted); guest -> host connections (RESPONSE
 * with a listener at <uds_path>_<P>, RST without); bytes both ways with
 * correct headers (ports, CIDs, buf_alloc, fwd_cnt advancing only with what
 * the host socket took); SHUTDOWN and RST in both directions; credit both
 * ways (a guest beyond its credit reset, the buffer never above
 * VSOCK_BUF_ALLOC, the guest's credit and rx room respected by the device);
 * CREDIT_REQUEST; packets for no connection and malformed ones; the 32-bit
 * counters wrapping over a 4 GiB transfer each way; resets; and after every
 * test: the counters are what the guest and the host saw, every interrupt
 * was raised, no watch or timer outlives virtio_vsock_stop, no descriptor is
 * leaked, the socket's path is removed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_ring.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/log.h"
#include "devices/virtio/vsock.h"
#include "vmm/evloop.h"
#include "tmpdir.h"

#define MIB       (1u << 20)
#define SLOT      (8 * MIB) /* two slots at separate host addresses */
#define GCID      42u
#define GSI       5u
#define QWANT     64u /* queue size asked for (QueueNumMax permitting) */
#define RXQ       0
#define TXQ       1
#define EVQ       2
#define NSLOT     32u /* receive and transmit buffers: two descriptors each */
#define RING(q)   (0x1000ull + 0x4000ull * (q)) /* descriptors; avail +0x1000; used +0x2000 */
#define EVBUF     0xd000ull                     /* the event queue's buffers */
#define STRIDE    0x11000ull                    /* a header and 64 KiB, and room */
#define TXB       0x10000ull
#define RXB       0x7c0000ull /* receive buffers 4..: across the seam at 8 MiB */
#define SPLIT_OFF 0x100u      /* split layouts: the second piece starts here */
#define MAXIN     8192u
#define PKTMAX    (VSOCK_HDR_LEN + 0x10000u)

/* ---- guest memory, the header, the fake loop (fhost), the driver's registers ---- */

static uint8_t *slot_mem[2];

#define VG_FAIL(...) fail_msg(__VA_ARGS__)
#include "vsock_guest.h"

static unsigned long watches_made, timers_made;

static bool vg_refuse_watch(void)
{
	watches_made++;
	return false;
}

static bool vg_refuse_timer(void)
{
	timers_made++;
	return false;
}

static void put16(uint64_t gpa, uint16_t v)
{
	gput(gpa, &v, 2);
}

/* ---- the VMM's real loop, for one test ---- */

static struct evloop *loop; /* set: the device runs on it instead */

/* Every watch the device makes on the real loop, to count its callbacks. */
struct tramp {
	void (*fn)(void *, int);
	void *arg;
	struct tramp *next;
};
static struct tramp *tramps;
static unsigned long e_calls;

static void e_tramp(void *arg, int res)
{
	struct tramp *t = arg;

	e_calls++;
	t->fn(t->arg, res);
}

static void *e_watch(void *o, int fd, short ev, void (*fn)(void *, int), void *arg)
{
	struct tramp *t = calloc(1, sizeof(*t));

	(void)o;
	if (dev_stopped)
		fail_msg("watch(fd %d) after virtio_vsock_stop", fd);
	assert_non_null(t);
	*t = (struct tramp){.fn = fn, .arg = arg, .next = tramps};
	tramps = t;
	return evloop_watch(loop, fd, ev, e_tramp, t);
}

static void *e_timer(void *o, uint64_t ms, void (*fn)(void *, int), void *arg)
{
	(void)o;
	if (dev_stopped)
		fail_msg("timer after virtio_vsock_stop");
	return evloop_after(loop, ms, fn, arg);
}

static void e_unwatch(void *o, void *h)
{
	(void)o;
	evloop_unwatch(loop, h);
}

static const struct dev_host ehost = {.irq_line = f_irq,
				      .timer = e_timer,
				      .timer_cancel = e_unwatch,
				      .watch = e_watch,
				      .unwatch = e_unwatch};

static struct kick {
	unsigned q;
	struct ev_handle *h;
} kicks[3];

static void on_kick(void *arg, int res)
{
	(void)res;
	virtio_mmio_kick(&dev.t, ((struct kick *)arg)->q);
}

/* ---- running what is ready ---- */

/* One turn: kicks, ready watches, due timers. Whether anything ran. */
static bool run_ready(void)
{
	if (loop) {
		assert_int_equal(evloop_run_once(loop, 5), 0);
		return false; /* the caller decides by what the guest and host see */
	}
	return fh_run_ready();
}

/* Until nothing is ready: a device that never settles spins the real loop too. */
static void settle(void)
{
	if (loop) {
		for (int i = 0; i < 4; i++)
			run_ready();
		return;
	}
	fh_settle();
}

/* ---- the driver ---- */

static uint16_t av[3], seen[3];
static bool rx_busy[NSLOT], tx_busy[NSLOT];
static unsigned rx_want = NSLOT; /* receive buffers the driver keeps posted */
static uint32_t rx_len = VSOCK_HDR_LEN + 4096;
static bool rx_split; /* the header and the payload in two descriptors */
static unsigned tx_layout_next;

struct pkt {
	struct vsock_hdr h;
	uint8_t *data;
};

static struct pkt inbox[MAXIN];
static unsigned nin, inpos;
static void (*rx_sink)(const struct vsock_hdr *h, const uint8_t *data); /* instead of the inbox */

/* What the guest and the host saw, for the counters. */
static uint64_t g_rx_pkts, g_rx_bytes, g_tx_sent, g_tx_bad, g_tx_rw_bytes, h_read_bytes;

static void offer(unsigned q, uint16_t head)
{
	put16(RING(q) + 0x1000 + 4 + 2 * (av[q] % qn), head);
	av[q]++;
	put16(RING(q) + 0x1000 + 2, av[q]);
}

static uint64_t rxbuf(unsigned s)
{
	return RXB + s * STRIDE;
}

static void post_rx(void)
{
	unsigned posted = 0;
	bool any = false;

	for (unsigned s = 0; s < NSLOT; s++)
		posted += rx_busy[s];
	for (unsigned s = 0; s < NSLOT && posted < rx_want; s++) {
		if (rx_busy[s])
			continue;
		if (rx_split) {
			desc(RXQ, 2 * s, rxbuf(s), VSOCK_HDR_LEN, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT,
			     (uint16_t)(2 * s + 1));
			desc(RXQ, 2 * s + 1, rxbuf(s) + SPLIT_OFF, rx_len - VSOCK_HDR_LEN,
			     VRING_DESC_F_WRITE, 0);
		} else {
			desc(RXQ, 2 * s, rxbuf(s), rx_len, VRING_DESC_F_WRITE, 0);
		}
		rx_busy[s] = true;
		offer(RXQ, (uint16_t)(2 * s));
		posted++;
		any = true;
	}
	if (any)
		notify(RXQ);
}

static void used_elem(unsigned q, uint16_t n, uint32_t *id, uint32_t *len)
{
	*id = g32(RING(q) + 0x2000 + 4 + 8 * (n % qn));
	*len = g32(RING(q) + 0x2000 + 8 + 8 * (n % qn));
}

static void take_rx(uint32_t id, uint32_t len)
{
	static uint8_t b[PKTMAX];
	unsigned s = id / 2;
	struct vsock_hdr h;

	if (id % 2 || s >= NSLOT || !rx_busy[s])
		fail_msg("a used receive entry names chain %u, which is not the device's", id);
	if (len < VSOCK_HDR_LEN || len > rx_len)
		fail_msg("a used receive entry of %u bytes (buffers of %u)", len, rx_len);
	if (rx_split) {
		gget(rxbuf(s), b, VSOCK_HDR_LEN);
		gget(rxbuf(s) + SPLIT_OFF, b + VSOCK_HDR_LEN, len - VSOCK_HDR_LEN);
	} else {
		gget(rxbuf(s), b, len);
	}
	rx_busy[s] = false;
	wire_get(&h, b);
	if (h.len != len - VSOCK_HDR_LEN)
		fail_msg("a packet's header says len %u, its used entry %u bytes", h.len, len);
	g_rx_pkts++;
	g_rx_bytes += h.len;
	if (rx_sink) {
		rx_sink(&h, b + VSOCK_HDR_LEN);
		return;
	}
	if (nin == MAXIN)
		fail_msg("more than %u packets to the guest in one test", MAXIN);
	inbox[nin].h = h;
	inbox[nin].data = h.len ? malloc(h.len) : NULL;
	if (h.len)
		memcpy(inbox[nin].data, b + VSOCK_HDR_LEN, h.len);
	nin++;
}

/* Take what the device used; receive buffers are posted again. Whether anything was new. */
static bool harvest(void)
{
	uint16_t u = g16(RING(RXQ) + 0x2000 + 2);
	bool any = false;
	uint32_t id, len;

	while (seen[RXQ] != u) {
		used_elem(RXQ, seen[RXQ], &id, &len);
		take_rx(id, len);
		seen[RXQ]++;
		any = true;
	}
	u = g16(RING(TXQ) + 0x2000 + 2);
	while (seen[TXQ] != u) {
		used_elem(TXQ, seen[TXQ], &id, &len);
		if (id % 2 || id / 2 >= NSLOT || !tx_busy[id / 2])
			fail_msg("a used transmit entry names chain %u, which is not the device's", id);
		tx_busy[id / 2] = false;
		seen[TXQ]++;
		any = true;
	}
	if (g16(RING(EVQ) + 0x2000 + 2) != seen[EVQ])
		fail_msg("the device used an event buffer (no transport reset was asked for)");
	if (any) {
		if (irq_pulses == irq_seen)
			fail_msg("used entries without an interrupt: the guest would never see them");
		irq_seen = irq_pulses;
		post_rx();
	}
	return any;
}

/* Run device, guest and timers due within 10 ms until all is quiet. */
static void sync_all(void)
{
	for (unsigned i = 0; i < 200000; i++) {
		struct fh *t;

		settle();
		if (harvest())
			continue;
		if (loop)
			return;
		fh_compact();
		t = next_timer();
		if (t && t->due <= now_ms + 10) {
			now_ms = t->due;
			continue;
		}
		return;
	}
	fail_msg("the device and the guest never settle");
}

/* The clock moves on by @ms; timers due fire, each after what the previous one caused. */
static void advance(uint64_t ms)
{
	uint64_t end = now_ms + ms;

	for (;;) {
		struct fh *t;

		sync_all();
		fh_compact();
		t = next_timer();
		if (!t || t->due > end)
			break;
		now_ms = t->due > now_ms ? t->due : now_ms;
	}
	now_ms = end;
	sync_all();
}

static int tx_slot(void)
{
	for (int pass = 0; pass < 2; pass++) {
		for (unsigned s = 0; s < NSLOT; s++)
			if (!tx_busy[s])
				return (int)s;
		sync_all();
	}
	fail_msg("the device holds every transmit chain");
	return -1;
}

/* The guest puts @n raw bytes on the transmit queue, in layout @layout (0 one piece, 1 the
 * header then the payload, 2 and 3 two pieces cut inside the header), and notifies. */
static void gsend_bytes(const uint8_t *b, uint32_t n, unsigned layout)
{
	unsigned s = (unsigned)tx_slot();
	uint64_t base = TXB + s * STRIDE;
	uint32_t cut = layout == 1 ? VSOCK_HDR_LEN : layout == 2 ? 20 : layout == 3 ? 7 : n;

	if (cut > n)
		cut = n;
	assert_true(n - cut <= STRIDE - SPLIT_OFF - 64);
	if (cut == n) {
		gput(base, b, n);
		desc(TXQ, 2 * s, base, n, 0, 0);
	} else {
		gput(base, b, cut);
		gput(base + SPLIT_OFF, b + cut, n - cut);
		desc(TXQ, 2 * s, base, cut, VRING_DESC_F_NEXT, (uint16_t)(2 * s + 1));
		desc(TXQ, 2 * s + 1, base + SPLIT_OFF, n - cut, 0, 0);
	}
	tx_busy[s] = true;
	offer(TXQ, (uint16_t)(2 * s));
	notify(TXQ);
	g_tx_sent++;
}

static void gsend(const struct vsock_hdr *h, const void *payload, uint32_t len)
{
	static uint8_t b[VSOCK_HDR_LEN + 70000];

	assert_true(len <= 70000);
	wire_put(b, h);
	if (len)
		memcpy(b + VSOCK_HDR_LEN, payload, len);
	gsend_bytes(b, VSOCK_HDR_LEN + len, tx_layout_next++ % 4);
}

/* The guest's side of one connection. */
struct gconn {
	uint32_t gport, hport;
	uint32_t buf_alloc, fwd_cnt; /* what the guest offers and has consumed */
	uint32_t tx_cnt;             /* payload the guest sent */
	uint32_t dev_fwd_cnt;        /* the device's, as last heard */
};

static struct vsock_hdr ghdr(const struct gconn *c, uint16_t op, uint32_t flags, uint32_t len)
{
	return (struct vsock_hdr){.src_cid = GCID,
				  .dst_cid = VSOCK_HOST_CID,
				  .src_port = c->gport,
				  .dst_port = c->hport,
				  .len = len,
				  .type = VSOCK_TYPE_STREAM,
				  .op = op,
				  .flags = flags,
				  .buf_alloc = c->buf_alloc,
				  .fwd_cnt = c->fwd_cnt};
}

static void gop(struct gconn *c, uint16_t op, uint32_t flags)
{
	struct vsock_hdr h = ghdr(c, op, flags, 0);

	gsend(&h, NULL, 0);
}

static void gwrite(struct gconn *c, const void *data, uint32_t len)
{
	struct vsock_hdr h = ghdr(c, VSOCK_OP_RW, 0, len);

	gsend(&h, data, len);
	c->tx_cnt += len;
	g_tx_rw_bytes += len;
}

static struct pkt *next_pkt(void)
{
	return inpos < nin ? &inbox[inpos++] : NULL;
}

static void no_pkt(void)
{
	struct pkt *p;

	sync_all();
	p = next_pkt();
	if (p)
		fail_msg("an unexpected packet: op %u flags %u ports %u -> %u len %u", p->h.op,
			 p->h.flags, p->h.src_port, p->h.dst_port, p->h.len);
}

/* The next packet: @op, from the host's CID to the guest's, a stream. */
static struct pkt *expect(uint16_t op)
{
	struct pkt *p = next_pkt();

	if (!p) {
		sync_all();
		p = next_pkt();
	}
	if (!p)
		fail_msg("no packet; expected op %u", op);
	if (p->h.op != op)
		fail_msg("op %u (flags %u, ports %u -> %u, len %u); expected op %u", p->h.op,
			 p->h.flags, p->h.src_port, p->h.dst_port, p->h.len, op);
	assert_int_equal(p->h.src_cid, VSOCK_HOST_CID);
	assert_int_equal(p->h.dst_cid, GCID);
	assert_int_equal(p->h.type, VSOCK_TYPE_STREAM);
	if (op != VSOCK_OP_RW)
		assert_int_equal(p->h.len, 0);
	return p;
}

/* The next packet for @c: @op, its ports, and the device's credit (learned). */
static struct pkt *expect_on(struct gconn *c, uint16_t op)
{
	struct pkt *p = expect(op);

	assert_int_equal(p->h.src_port, c->hport);
	assert_int_equal(p->h.dst_port, c->gport);
	if (op != VSOCK_OP_RST) {
		assert_int_equal(p->h.buf_alloc, VSOCK_BUF_ALLOC);
		/* fwd_cnt never runs ahead of what the guest sent, nor goes back. */
		if ((uint32_t)(c->tx_cnt - p->h.fwd_cnt) > (uint32_t)(c->tx_cnt - c->dev_fwd_cnt))
			fail_msg("fwd_cnt %u: went back from %u (sent %u)", p->h.fwd_cnt,
				 c->dev_fwd_cnt, c->tx_cnt);
		c->dev_fwd_cnt = p->h.fwd_cnt;
	}
	return p;
}

/* Payload for @c from the device (RW packets, CREDIT_UPDATEs skipped): exactly @len bytes. */
static void expect_data(struct gconn *c, const uint8_t *want, uint32_t len)
{
	uint32_t got = 0;

	while (got < len) {
		struct pkt *p = next_pkt();

		if (!p) {
			sync_all();
			p = next_pkt();
		}
		if (!p)
			fail_msg("only %u of %u bytes reached the guest", got, len);
		inpos--;
		if (p->h.op == VSOCK_OP_CREDIT_UPDATE || p->h.op == VSOCK_OP_CREDIT_REQUEST) {
			expect_on(c, p->h.op);
			continue;
		}
		expect_on(c, VSOCK_OP_RW);
		assert_int_equal(p->h.flags, 0);
		if (p->h.len == 0 || p->h.len > len - got)
			fail_msg("an RW of %u bytes, %u wanted", p->h.len, len - got);
		assert_memory_equal(p->data, want + got, p->h.len);
		got += p->h.len;
	}
	c->fwd_cnt += len; /* the guest's reader took it */
}

/* Nothing for the guest but credit talk on @c (the device may update or ask at any time). */
static void only_credit(struct gconn *c)
{
	struct pkt *p;

	sync_all();
	while ((p = next_pkt())) {
		inpos--;
		if (p->h.op != VSOCK_OP_CREDIT_UPDATE && p->h.op != VSOCK_OP_CREDIT_REQUEST)
			fail_msg("an unexpected packet: op %u flags %u ports %u -> %u len %u", p->h.op,
				 p->h.flags, p->h.src_port, p->h.dst_port, p->h.len);
		expect_on(c, p->h.op);
	}
}

/* ---- the host's side ---- */

static char uds[108];
static int mine[64];
static unsigned nmine;

static int track(int fd)
{
	assert_true(fd >= 0);
	assert_true(nmine < 64);
	mine[nmine++] = fd;
	return fd;
}

static void untrack_close(int fd)
{
	for (unsigned i = 0; i < nmine; i++)
		if (mine[i] == fd) {
			mine[i] = mine[--nmine];
			break;
		}
	close(fd);
}

static int client(void)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	snprintf(a.sun_path, sizeof(a.sun_path), "%s", uds);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	return track(fd);
}

static void listen_path(char *p, size_t n, uint32_t port)
{
	assert_true((size_t)snprintf(p, n, "%s_%u", uds, port) < n);
}

static int listen_at(uint32_t port)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	listen_path(a.sun_path, sizeof(a.sun_path), port);
	unlink(a.sun_path);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 2048), 0);
	return track(fd);
}

static void cwrite(int fd, const void *p, size_t n)
{
	assert_int_equal(write(fd, p, n), (ssize_t)n);
}

static void cwrite_str(int fd, const char *s)
{
	cwrite(fd, s, strlen(s));
}

/* Read what is there (up to @max): the count; *@end: 0 open, 1 EOF, -errno. */
static size_t cread(int fd, void *buf, size_t max, int *end)
{
	size_t got = 0;

	*end = 0;
	while (got < max) {
		ssize_t r = read(fd, (uint8_t *)buf + got, max - got);

		if (r > 0) {
			got += (size_t)r;
			continue;
		}
		if (r == 0)
			*end = 1;
		else if (errno != EAGAIN)
			*end = -errno;
		break;
	}
	h_read_bytes += got;
	return got;
}

/* The host reads exactly @want (after the device had its turns), then finds it open. */
static void cexpect(int fd, const uint8_t *want, size_t len)
{
	static uint8_t b[1 << 20];
	size_t got = 0;
	int end = 0;

	assert_true(len <= sizeof(b));
	for (int i = 0; i < 10000 && got < len && !end; i++) {
		sync_all();
		got += cread(fd, b + got, len - got, &end);
	}
	if (got != len)
		fail_msg("the host read %zu of %zu bytes (end %d)", got, len, end);
	assert_memory_equal(b, want, len);
}

/* The device closed the host's socket: nothing more to read, then EOF or a reset. */
static void cclosed(int fd)
{
	uint8_t b[256];
	int end;
	size_t n;

	sync_all();
	n = cread(fd, b, sizeof(b), &end);
	if (n)
		fail_msg("the host read %zu bytes more (\"%.*s\") where it expected the end", n,
			 (int)n, (const char *)b);
	if (end == 0)
		fail_msg("the host's socket is still open");
	assert_true(end == 1 || end == -ECONNRESET);
}

static void copen(int fd)
{
	uint8_t b;
	int end;

	sync_all();
	assert_int_equal(cread(fd, &b, 1, &end), 0);
	assert_int_equal(end, 0);
}

/* Bytes waiting in the host socket's receive queue. */
static unsigned inq(int fd)
{
	int n;

	assert_int_equal(ioctl(fd, FIONREAD, &n), 0);
	return (unsigned)n;
}

static void pattern(uint8_t *p, size_t len, uint32_t seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(seed * 131 + i * 7 + (i >> 8));
}

/* ---- the device's life ---- */

static unsigned fds_before, test_no;
static bool dev_live; /* initialized and not yet destroyed (a failed test leaves it) */

static void driver_up(void)
{
	uint64_t f;
	uint32_t gen;
	uint8_t cfg[8];

	memset(av, 0, sizeof(av));
	memset(seen, 0, sizeof(seen));
	memset(rx_busy, 0, sizeof(rx_busy));
	memset(tx_busy, 0, sizeof(tx_busy));
	for (unsigned q = 0; q < 3; q++)
		for (unsigned off = 0; off < 0x3000; off += 8)
			gput(RING(q) + off, "\0\0\0\0\0\0\0\0", 8);
	assert_int_equal(rd(VIRTIO_MMIO_MAGIC_VALUE), 0x74726976);
	assert_int_equal(rd(VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_VSOCK);
	wr(VIRTIO_MMIO_STATUS, 0);
	wr(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	wr(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	wr(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	f = (uint64_t)rd(VIRTIO_MMIO_DEVICE_FEATURES) << 32;
	assert_true(f & (1ull << VIRTIO_F_VERSION_1));
	wr(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	wr(VIRTIO_MMIO_DRIVER_FEATURES, 0);
	wr(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	wr(VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)((1ull << VIRTIO_F_VERSION_1) >> 32));
	wr(VIRTIO_MMIO_STATUS,
	   VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
	assert_true(rd(VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK);
	/* The config space: the guest's CID, a little-endian u64. */
	gen = rd(VIRTIO_MMIO_CONFIG_GENERATION);
	for (unsigned i = 0; i < 8; i++)
		dev.t.dev.ops->read(&dev.t.dev, 0x100 + i, &cfg[i], 1);
	assert_int_equal(ld(cfg, 8), GCID);
	assert_int_equal(rd(VIRTIO_MMIO_CONFIG + 4), 0);
	assert_int_equal(rd(VIRTIO_MMIO_CONFIG), GCID);
	assert_int_equal(rd(VIRTIO_MMIO_CONFIG_GENERATION), gen);
	for (unsigned q = 0; q < 3; q++) {
		uint32_t max;

		wr(VIRTIO_MMIO_QUEUE_SEL, q);
		max = rd(VIRTIO_MMIO_QUEUE_NUM_MAX);
		assert_true(max >= 8);
		qn = max < QWANT ? max : QWANT;
		queue_ready(q);
	}
	assert_true(qn >= 2 * NSLOT); /* two descriptors for each buffer */
	/* Event buffers (virtio_vsock_event: a le32 id), never used unless a reset is asked. */
	for (unsigned i = 0; i < 4; i++) {
		desc(EVQ, i, EVBUF + 16 * i, 8, VRING_DESC_F_WRITE, 0);
		offer(EVQ, (uint16_t)i);
	}
	post_rx();
	wr(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
				       VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
	assert_true(rd(VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_DRIVER_OK);
	sync_all();
}

static void start_with(const struct dev_host *h)
{
	struct virtio_vsock_cfg c = {.guest_cid = GCID, .uds_path = uds};
	char why[VSOCK_WHY_LEN] = "";
	struct stat st;
	int r;

	/* After a failed test: its device and sockets go, its handles are forgotten. */
	if (dev_live) {
		while (nmine)
			untrack_close(mine[0]);
		dev_stopped = false;
		virtio_vsock_stop(&dev);
		virtio_vsock_destroy(&dev);
		dev_live = false;
	}
	for (unsigned i = 0; i < nin; i++)
		free(inbox[i].data);
	fh_free_all();
	memset(slot_mem[0], 0, SLOT);
	memset(slot_mem[1], 0, SLOT);
	memset(&dev, 0, sizeof(dev));
	nin = inpos = 0;
	nmine = 0;
	rx_sink = NULL;
	irq_pulses = irq_seen = 0;
	dev_stopped = false;
	now_ms = 1000000;
	g_rx_pkts = g_rx_bytes = g_tx_sent = g_tx_bad = g_tx_rw_bytes = h_read_bytes = 0;
	snprintf(uds, sizeof(uds), "%s/v%u.sock", tmpdir, ++test_no);
	fds_before = count_fds();
	r = virtio_vsock_init(&dev, h, &gm, 0xd0000000, GSI, &c, why, sizeof(why));
	if (r)
		fail_msg("virtio_vsock_init: %d: %s", r, why);
	dev_live = true;
	/* The listener: a socket, 0600 from the start. */
	assert_int_equal(lstat(uds, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
	/* The loop's watches start from vm_virtio_attach's call. */
	assert_int_equal(virtio_vsock_attach(&dev), 0);
	driver_up();
}

static void start(void)
{
	start_with(&fhost);
}

/* The counters are what the guest and the host saw. */
static void check_counters(void)
{
	struct vsock_counters c = cnt();

	sync_all();
	c = cnt();
	assert_int_equal(c.rx_packets_count, g_rx_pkts);
	assert_int_equal(c.rx_bytes_count, g_rx_bytes);
	assert_true(c.tx_packets_count <= g_tx_sent);
	assert_true(c.tx_packets_count >= g_tx_sent - g_tx_bad);
	assert_true(c.tx_bytes_count >= h_read_bytes);
	assert_true(c.tx_bytes_count <= g_tx_rw_bytes);
	assert_true(c.buffered_bytes <= c.buffered_max);
	assert_true(c.conns_open <= c.conns_host + c.conns_guest);
	assert_int_equal(dev.t.st.needs_reset, 0);
}

static void stop(void)
{
	struct stat st;

	check_counters();
	while (nmine)
		untrack_close(mine[0]);
	virtio_vsock_stop(&dev);
	dev_stopped = true;
	if (!loop && fh_count_live())
		fail_msg("%u watches or timers still live after virtio_vsock_stop", fh_nlive);
	virtio_vsock_destroy(&dev);
	dev_live = false;
	if (lstat(uds, &st) == 0)
		fail_msg("%s is still there after virtio_vsock_destroy", uds);
	if (!loop && count_fds() != fds_before)
		fail_msg("%u descriptors before the device, %u after it", fds_before, count_fds());
	for (unsigned i = 0; i < nin; i++)
		free(inbox[i].data);
	nin = inpos = 0;
	fh_free_all();
	rx_want = NSLOT;
	rx_len = VSOCK_HDR_LEN + 4096;
	rx_split = false;
}

/* A host client connects to guest port @port and the guest accepts: the client's socket. */
static int host_connect(struct gconn *c, uint32_t port, uint32_t guest_buf)
{
	char line[64];
	struct pkt *p;
	int fd = client();

	snprintf(line, sizeof(line), "CONNECT %u\n", port);
	cwrite_str(fd, line);
	sync_all();
	p = expect(VSOCK_OP_REQUEST);
	assert_int_equal(p->h.dst_port, port);
	assert_true(p->h.src_port >= VSOCK_PORT_FIRST);
	assert_int_equal(p->h.buf_alloc, VSOCK_BUF_ALLOC);
	assert_int_equal(p->h.fwd_cnt, 0);
	assert_int_equal(p->h.flags, 0);
	/* Nothing for the client before the guest answers. */
	copen(fd);
	*c = (struct gconn){.gport = port, .hport = p->h.src_port, .buf_alloc = guest_buf};
	gop(c, VSOCK_OP_RESPONSE, 0);
	snprintf(line, sizeof(line), "OK %u\n", c->hport);
	cexpect(fd, (const uint8_t *)line, strlen(line));
	h_read_bytes -= strlen(line); /* not payload */
	copen(fd);
	return fd;
}

/* The guest connects from @gport to host port @hport, where @lfd listens: the host's socket. */
static int guest_connect(struct gconn *c, uint32_t gport, uint32_t hport, int lfd, uint32_t buf)
{
	struct pkt *p;
	int fd;

	*c = (struct gconn){.gport = gport, .hport = hport, .buf_alloc = buf};
	gop(c, VSOCK_OP_REQUEST, 0);
	sync_all();
	p = expect_on(c, VSOCK_OP_RESPONSE);
	assert_int_equal(p->h.fwd_cnt, 0);
	fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		fail_msg("RESPONSE, but nothing to accept at port %u: %s", hport, strerror(errno));
	return track(fd);
}

/* ---- the tests ---- */

static void hdr_equal(const struct vsock_hdr *a, const struct vsock_hdr *b)
{
	assert_int_equal(a->src_cid, b->src_cid);
	assert_int_equal(a->dst_cid, b->dst_cid);
	assert_int_equal(a->src_port, b->src_port);
	assert_int_equal(a->dst_port, b->dst_port);
	assert_int_equal(a->len, b->len);
	assert_int_equal(a->type, b->type);
	assert_int_equal(a->op, b->op);
	assert_int_equal(a->flags, b->flags);
	assert_int_equal(a->buf_alloc, b->buf_alloc);
	assert_int_equal(a->fwd_cnt, b->fwd_cnt);
}

static void header_round_trip(void **state)
{
	struct vsock_hdr h = {.src_cid = 0x0102030405060708ull,
			      .dst_cid = 0x1112131415161718ull,
			      .src_port = 0x21222324,
			      .dst_port = 0x31323334,
			      .len = 0x41424344,
			      .type = 0x5152,
			      .op = 0x6162,
			      .flags = 0x71727374,
			      .buf_alloc = 0x81828384,
			      .fwd_cnt = 0x91929394},
			 back;
	uint8_t w[VSOCK_HDR_LEN + 4], mine_w[VSOCK_HDR_LEN], r[VSOCK_HDR_LEN];

	(void)state;
	memset(w, 0xee, sizeof(w));
	vsock_hdr_encode(&h, w);
	wire_put(mine_w, &h);
	/* The spec's layout, little-endian, 44 bytes and not one more. */
	assert_memory_equal(w, mine_w, VSOCK_HDR_LEN);
	assert_int_equal(w[0], 0x08);
	assert_int_equal(w[7], 0x01);
	assert_int_equal(w[16], 0x24);
	assert_int_equal(w[28], 0x52);
	assert_int_equal(w[30], 0x62);
	assert_int_equal(w[43], 0x91);
	for (unsigned i = VSOCK_HDR_LEN; i < sizeof(w); i++)
		assert_int_equal(w[i], 0xee);
	memset(&back, 0, sizeof(back));
	vsock_hdr_decode(&back, w);
	hdr_equal(&back, &h);
	/* Any 44 bytes decode and encode back to themselves. */
	srand(7);
	for (unsigned k = 0; k < 1000; k++) {
		for (unsigned i = 0; i < VSOCK_HDR_LEN; i++)
			r[i] = (uint8_t)rand();
		vsock_hdr_decode(&back, r);
		vsock_hdr_encode(&back, w);
		assert_memory_equal(w, r, VSOCK_HDR_LEN);
		wire_get(&h, r);
		hdr_equal(&back, &h);
	}
}

static void peer_free_wraps(void **state)
{
	const uint32_t B = VSOCK_BUF_ALLOC;

	(void)state;
	assert_int_equal(vsock_peer_free(B, 0, 0), B);
	assert_int_equal(vsock_peer_free(B, 0, B), 0);
	assert_int_equal(vsock_peer_free(B, 0, B - 1), 1);
	assert_int_equal(vsock_peer_free(B, 100, 200), B - 100);
	/* Both counters past 2^32: only their difference counts. */
	assert_int_equal(vsock_peer_free(B, 0xffffff00u, 0x100u), B - 0x200);
	assert_int_equal(vsock_peer_free(B, 0xfffffff0u, 0xfffffff0u + B), 0);
	assert_int_equal(vsock_peer_free(B, 0xfffffff0u, 0xfffffff0u + B - 5), 5);
	assert_int_equal(vsock_peer_free(B, 0xffffffffu, 0), B - 1);
	assert_int_equal(vsock_peer_free(B, 0x7fffffffu, 0x80000000u), B - 1);
	/* The peer shrank its buffer below what is in flight. */
	assert_int_equal(vsock_peer_free(100, 0, 200), 0);
	assert_int_equal(vsock_peer_free(0, 5, 5), 0);
	assert_int_equal(vsock_peer_free(0xffffffffu, 0, 0), 0xffffffffu);
	/* A peer that claims to have consumed more than was sent: in flight wraps, no credit. */
	assert_int_equal(vsock_peer_free(B, 10, 5), 0);
}

static void host_connect_and_data_both_ways(void **state)
{
	static uint8_t up[10001], down[5000];
	struct gconn c, c2;
	struct vsock_counters k;
	int fd, fd2;

	(void)state;
	rx_split = true;
	start();
	fd = host_connect(&c, 52, 65536);
	k = cnt();
	assert_int_equal(k.conns_host, 1);
	assert_int_equal(k.conns_guest, 0);
	assert_int_equal(k.conns_open, 1);
	assert_true(k.conns_added >= 1);
	no_pkt();
	/* Host -> guest: 10000 bytes in RW packets of at most a receive buffer. */
	pattern(up, sizeof(up), 1);
	cwrite(fd, up, 10000);
	sync_all();
	expect_data(&c, up, 10000);
	assert_int_equal(c.dev_fwd_cnt, 0);
	/* Guest -> host: 5000 bytes, the guest's header telling what it consumed. */
	pattern(down, sizeof(down), 2);
	gwrite(&c, down, 5000);
	cexpect(fd, down, 5000);
	copen(fd);
	/* The device's next header says the host socket took the 5000. */
	cwrite(fd, up + 10000, 1);
	sync_all();
	expect_data(&c, up + 10000, 1);
	assert_int_equal(c.dev_fwd_cnt, 5000);
	/* A second client gets another local port; both go on. */
	fd2 = host_connect(&c2, 52, 4096);
	assert_true(c2.hport != c.hport);
	assert_int_equal(cnt().conns_open, 2);
	gwrite(&c2, down, 100);
	gwrite(&c, down + 100, 200);
	cexpect(fd2, down, 100);
	cexpect(fd, down + 100, 200);
	k = cnt();
	assert_int_equal(k.rx_bytes_count, 10001);
	assert_int_equal(k.tx_bytes_count, 5300);
	assert_int_equal(k.conns_host, 2);
	assert_int_equal(k.buffered_bytes, 0);
	no_pkt();
	stop();
}

static void guest_rst_refuses_a_host_connect(void **state)
{
	struct gconn c;
	struct pkt *p;
	int fd;

	(void)state;
	start();
	fd = client();
	cwrite_str(fd, "CONNECT 53\n");
	sync_all();
	p = expect(VSOCK_OP_REQUEST);
	assert_int_equal(p->h.dst_port, 53);
	c = (struct gconn){.gport = 53, .hport = p->h.src_port};
	gop(&c, VSOCK_OP_RST, 0);
	cclosed(fd); /* no "OK", the end */
	no_pkt();    /* an RST is never answered */
	assert_int_equal(cnt().refused_by_guest, 1);
	assert_int_equal(cnt().conns_open, 0);
	assert_int_equal(cnt().conns_host, 0);
	/* The listener goes on. */
	untrack_close(fd);
	fd = host_connect(&c, 54, 4096);
	assert_int_equal(cnt().conns_open, 1);
	stop();
}

static void bad_connect_lines_close_the_client(void **state)
{
	static const char *bad[] = {
		"CONNECT abc\n", "HELLO 52\n",   "CONNECT\n",  "CONNECT 4294967296\n",
		"CONNECT -1\n",  "CONNECT 5x\n", "\n",         "CONNECT 99999999999999999999\n",
		"CONNECT 12345678901234567890123456789012345678901234567890", /* no newline, too long */
	};
	const unsigned nbad = sizeof(bad) / sizeof(bad[0]);
	struct gconn c;
	struct pkt *p;
	int fd;

	(void)state;
	start();
	for (unsigned i = 0; i < nbad; i++) {
		fd = client();
		cwrite_str(fd, bad[i]);
		cclosed(fd);
		untrack_close(fd);
		no_pkt();
		if (cnt().bad_connect_lines != i + 1)
			fail_msg("\"%s\": bad_connect_lines %llu", bad[i],
				 (unsigned long long)cnt().bad_connect_lines);
	}
	/* The largest port is a port. */
	fd = client();
	cwrite_str(fd, "CONNECT 4294967295\n");
	sync_all();
	p = expect(VSOCK_OP_REQUEST);
	assert_int_equal(p->h.dst_port, 4294967295u);
	c = (struct gconn){.gport = 4294967295u, .hport = p->h.src_port};
	gop(&c, VSOCK_OP_RST, 0);
	cclosed(fd);
	untrack_close(fd);
	assert_int_equal(cnt().bad_connect_lines, nbad);
	assert_int_equal(cnt().refused_by_guest, 1);
	assert_int_equal(cnt().connect_timeouts, 0);
	/* A guest that never answers: the client closed after VSOCK_CONNECT_MS, and a late
	 * RESPONSE does not revive it (the guest hears RST, now or in answer). */
	fd = client();
	cwrite_str(fd, "CONNECT 8\n");
	sync_all();
	p = expect(VSOCK_OP_REQUEST);
	c = (struct gconn){.gport = 8, .hport = p->h.src_port, .buf_alloc = 4096};
	advance(VSOCK_CONNECT_MS + 50);
	cclosed(fd);
	untrack_close(fd);
	assert_int_equal(cnt().connect_timeouts, 1);
	gop(&c, VSOCK_OP_RESPONSE, 0);
	sync_all();
	expect_on(&c, VSOCK_OP_RST);
	p = next_pkt(); /* one when it gave up, maybe one more in answer to the RESPONSE */
	if (p) {
		inpos--;
		expect_on(&c, VSOCK_OP_RST);
	}
	no_pkt();
	assert_int_equal(cnt().conns_open, 0);
	assert_int_equal(cnt().conns_host, 0);
	stop();
}

/* A NUL inside the line is not "CONNECT <port>\n" either: closed, counted, no REQUEST. */
static void connect_line_with_a_nul_is_bad(void **state)
{
	struct pkt *p;
	int fd;

	(void)state;
	start();
	fd = client();
	cwrite(fd, "CONNECT 52\0junk\n", 16);
	sync_all();
	p = next_pkt();
	if (p)
		fail_msg("\"CONNECT 52\\0junk\\n\" was taken: op %u to guest port %u", p->h.op,
			 p->h.dst_port);
	cclosed(fd);
	assert_int_equal(cnt().bad_connect_lines, 1);
	stop();
}

/* A line that comes in pieces: one line, and the device waits for the rest without spinning
 * (a level-triggered watch on a socket whose bytes it leaves there fires forever). */
static void connect_line_in_pieces(void **state)
{
	struct gconn c;
	struct pkt *p;
	int fd;

	(void)state;
	start();
	fd = client();
	cwrite_str(fd, "CON");
	sync_all();
	cwrite_str(fd, "NECT 6");
	sync_all();
	no_pkt();
	copen(fd);
	cwrite_str(fd, "0\n");
	sync_all();
	p = expect(VSOCK_OP_REQUEST);
	assert_int_equal(p->h.dst_port, 60);
	c = (struct gconn){.gport = 60, .hport = p->h.src_port};
	gop(&c, VSOCK_OP_RST, 0);
	cclosed(fd);
	untrack_close(fd);
	/* A client that never finishes its line: closed after VSOCK_CONNECT_MS, counted. */
	fd = client();
	cwrite_str(fd, "CONNECT 7");
	advance(VSOCK_CONNECT_MS / 2);
	copen(fd);
	advance(VSOCK_CONNECT_MS / 2 + 50);
	cclosed(fd);
	untrack_close(fd);
	assert_int_equal(cnt().connect_timeouts, 1);
	assert_int_equal(cnt().bad_connect_lines, 0);
	no_pkt();
	stop();
}

static void guest_connect_with_and_without_listener(void **state)
{
	static uint8_t down[3000], up[2000];
	char path[120];
	struct gconn c, n;
	struct pkt *p;
	int lfd, afd, s;

	(void)state;
	start();
	lfd = listen_at(1234);
	afd = guest_connect(&c, 5555, 1234, lfd, 65536);
	assert_int_equal(cnt().conns_guest, 1);
	assert_int_equal(cnt().conns_open, 1);
	assert_int_equal(cnt().conns_host, 0);
	pattern(down, sizeof(down), 3);
	gwrite(&c, down, 3000);
	cexpect(afd, down, 3000);
	pattern(up, sizeof(up), 4);
	cwrite(afd, up, 2000);
	sync_all();
	expect_data(&c, up, 2000);
	assert_int_equal(c.dev_fwd_cnt, 3000);
	/* Nobody at <uds>_1235: RST. */
	n = (struct gconn){.gport = 5556, .hport = 1235, .buf_alloc = 4096};
	gop(&n, VSOCK_OP_REQUEST, 0);
	sync_all();
	p = expect_on(&n, VSOCK_OP_RST);
	(void)p;
	assert_int_equal(cnt().refused_no_listener, 1);
	/* A socket bound there but not listening: RST. */
	s = track(socket(AF_UNIX, SOCK_STREAM, 0));
	{
		struct sockaddr_un a = {.sun_family = AF_UNIX};

		listen_path(a.sun_path, sizeof(a.sun_path), 1236);
		assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	}
	n.hport = 1236;
	gop(&n, VSOCK_OP_REQUEST, 0);
	sync_all();
	expect_on(&n, VSOCK_OP_RST);
	assert_int_equal(cnt().refused_no_listener, 2);
	/* A regular file there: RST. */
	listen_path(path, sizeof(path), 1237);
	fclose(fopen(path, "w"));
	n.hport = 1237;
	gop(&n, VSOCK_OP_REQUEST, 0);
	sync_all();
	expect_on(&n, VSOCK_OP_RST);
	assert_int_equal(cnt().refused_no_listener, 3);
	unlink(path);
	/* The first connection is untouched. */
	assert_int_equal(cnt().conns_open, 1);
	gwrite(&c, down, 10);
	cexpect(afd, down, 10);
	no_pkt();
	stop();
}

static void guest_shutdown_both_flushes_then_resets(void **state)
{
	static uint8_t d[1000];
	struct gconn c;
	int fd;

	(void)state;
	start();
	fd = host_connect(&c, 70, 65536);
	pattern(d, sizeof(d), 5);
	gwrite(&c, d, 1000);
	gop(&c, VSOCK_OP_SHUTDOWN, VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND);
	sync_all();
	/* What waited is written, then the host socket closed; the guest hears RST. */
	cexpect(fd, d, 1000);
	cclosed(fd);
	expect_on(&c, VSOCK_OP_RST);
	no_pkt();
	assert_int_equal(cnt().conns_open, 0);
	assert_int_equal(cnt().rst_by_guest, 0);
	assert_int_equal(cnt().rst_host_gone, 0);
	stop();
}

/* The guest sends what its credit allows, asking for updates, until the device says none is
 * left; the host never reads. What the guest sent. */
static uint32_t fill_credit(struct gconn *c, int afd, uint8_t *stream, uint32_t cap)
{
	for (unsigned i = 0; i < 100; i++) {
		struct pkt *p;
		uint32_t credit, n;
		struct vsock_counters k;

		gop(c, VSOCK_OP_CREDIT_REQUEST, 0);
		sync_all();
		p = expect_on(c, VSOCK_OP_CREDIT_UPDATE);
		credit = vsock_peer_free(p->h.buf_alloc, p->h.fwd_cnt, c->tx_cnt);
		if (!credit)
			return c->tx_cnt;
		n = credit < VSOCK_MAX_PKT ? credit : VSOCK_MAX_PKT;
		assert_true(c->tx_cnt + n <= cap);
		gwrite(c, stream + c->tx_cnt, n);
		sync_all();
		k = cnt();
		if (k.buffered_bytes > VSOCK_BUF_ALLOC)
			fail_msg("%llu bytes buffered for one connection",
				 (unsigned long long)k.buffered_bytes);
		/* Exactly what the host socket did not take. */
		assert_int_equal(k.buffered_bytes, c->tx_cnt - inq(afd));
	}
	fail_msg("the credit never ran out");
	return 0;
}

static void credit_bounds_what_the_guest_sends(void **state)
{
	static uint8_t stream[4 * MIB], b[4 * MIB];
	struct vsock_counters k;
	struct gconn c;
	uint32_t sent, got = 0, credit = 0;
	int lfd, afd, end = 0;

	(void)state;
	start();
	pattern(stream, sizeof(stream), 6);
	lfd = listen_at(2000);
	afd = guest_connect(&c, 6000, 2000, lfd, 65536);
	sent = fill_credit(&c, afd, stream, sizeof(stream));
	k = cnt();
	/* The socket is full and the buffer holds exactly the credit given: VSOCK_BUF_ALLOC. */
	assert_int_equal(k.buffered_bytes, VSOCK_BUF_ALLOC);
	assert_int_equal(k.buffered_max, VSOCK_BUF_ALLOC);
	assert_true(k.host_full >= 1);
	assert_int_equal(sent, VSOCK_BUF_ALLOC + inq(afd));
	assert_int_equal(k.rst_credit, 0);
	assert_int_equal(k.conns_open, 1);
	only_credit(&c);
	/* One byte beyond: RST, counted; the buffer is gone with the connection. */
	gwrite(&c, stream + sent, 1);
	sync_all();
	expect_on(&c, VSOCK_OP_RST);
	k = cnt();
	assert_int_equal(k.rst_credit, 1);
	assert_int_equal(k.conns_open, 0);
	assert_int_equal(k.buffered_bytes, 0);
	assert_int_equal(k.buffered_max, VSOCK_BUF_ALLOC);
	/* The host reads a prefix of the stream, then the end. */
	got = (uint32_t)cread(afd, b, sizeof(b), &end);
	assert_true(got <= sent);
	assert_memory_equal(b, stream, got);
	assert_true(end != 0);
	untrack_close(afd);
	no_pkt();

	/* Again; now the host drains it all: the guest hears its credit back (no stall). */
	afd = guest_connect(&c, 6001, 2000, lfd, 65536);
	sent = fill_credit(&c, afd, stream, sizeof(stream));
	got = 0;
	for (unsigned i = 0; i < 1000 && got < sent; i++) {
		got += (uint32_t)cread(afd, b + got, sizeof(b) - got, &end);
		sync_all();
	}
	assert_int_equal(got, sent);
	assert_memory_equal(b, stream, got);
	assert_int_equal(cnt().buffered_bytes, 0);
	/* Whatever the device sent meanwhile (CREDIT_UPDATE), the guest must learn credit. */
	only_credit(&c);
	credit = vsock_peer_free(VSOCK_BUF_ALLOC, c.dev_fwd_cnt, c.tx_cnt);
	if (!credit)
		fail_msg("the host read everything but the guest still has no credit (fwd_cnt %u of "
			 "%u): its writer would wait forever",
			 c.dev_fwd_cnt, c.tx_cnt);
	/* And it goes on within the credit, no RST. */
	gwrite(&c, stream + sent, credit < 5000 ? credit : 5000);
	cexpect(afd, stream + sent, credit < 5000 ? credit : 5000);
	k = cnt();
	assert_int_equal(k.rst_credit, 1);
	assert_int_equal(k.conns_open, 1);
	assert_true(k.buffered_max <= VSOCK_BUF_ALLOC);
	stop();
}

static void guest_shutdown_waits_for_a_slow_host(void **state)
{
	static uint8_t stream[4 * MIB], b[4 * MIB];
	struct gconn c;
	uint32_t sent, got = 0;
	int lfd, afd, end = 0;
	bool rst = false;

	(void)state;
	start();
	pattern(stream, sizeof(stream), 7);
	lfd = listen_at(2100);
	afd = guest_connect(&c, 6100, 2100, lfd, 65536);
	sent = fill_credit(&c, afd, stream, sizeof(stream));
	gop(&c, VSOCK_OP_SHUTDOWN, VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND);
	sync_all();
	/* Then the host reads: every byte the guest sent, then the end. */
	for (unsigned i = 0; i < 1000 && !end; i++) {
		got += (uint32_t)cread(afd, b + got, sizeof(b) - got, &end);
		sync_all();
	}
	if (got != sent)
		fail_msg("the guest sent %u bytes and shut down; the host read %u (end %d)", sent,
			 got, end);
	assert_memory_equal(b, stream, got);
	assert_int_equal(end, 1);
	for (struct pkt *p; (p = next_pkt());) {
		inpos--;
		expect_on(&c, p->h.op);
		rst |= p->h.op == VSOCK_OP_RST;
	}
	assert_true(rst);
	assert_int_equal(cnt().conns_open, 0);
	assert_int_equal(cnt().buffered_bytes, 0);
	stop();
}

static void host_eof_is_shutdown_send(void **state)
{
	static uint8_t d[777];
	struct gconn c;
	struct pkt *p;
	int fd;

	(void)state;
	start();
	fd = host_connect(&c, 80, 65536);
	assert_int_equal(shutdown(fd, SHUT_WR), 0);
	sync_all();
	p = expect_on(&c, VSOCK_OP_SHUTDOWN);
	assert_int_equal(p->h.flags, VSOCK_SHUTDOWN_SEND);
	no_pkt();
	/* A half close: the guest still sends, the host still reads. */
	pattern(d, sizeof(d), 8);
	gwrite(&c, d, 777);
	cexpect(fd, d, 777);
	assert_int_equal(cnt().conns_open, 1);
	/* The guest closes too: RST, the host's socket ends. */
	gop(&c, VSOCK_OP_SHUTDOWN, VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND);
	sync_all();
	expect_on(&c, VSOCK_OP_RST);
	cclosed(fd);
	assert_int_equal(cnt().conns_open, 0);
	stop();
}

static void host_gone_resets(void **state)
{
	static uint8_t d[100];
	struct vsock_counters k;
	struct gconn c;
	struct pkt *p;
	int fd;

	(void)state;
	start();
	/* The host closes: EOF first (SHUTDOWN(SEND)); the guest's next write fails: RST. */
	fd = host_connect(&c, 90, 65536);
	untrack_close(fd);
	sync_all();
	p = expect_on(&c, VSOCK_OP_SHUTDOWN);
	assert_int_equal(p->h.flags, VSOCK_SHUTDOWN_SEND);
	pattern(d, sizeof(d), 9);
	gwrite(&c, d, 100);
	sync_all();
	expect_on(&c, VSOCK_OP_RST);
	no_pkt();
	k = cnt();
	assert_int_equal(k.rst_host_gone, 1);
	assert_true(k.tx_write_fails >= 1);
	assert_int_equal(k.conns_open, 0);
	/* The host closes with bytes unread: its peer is reset (ECONNRESET): RST. */
	fd = host_connect(&c, 91, 65536);
	gwrite(&c, d, 100);
	sync_all();
	untrack_close(fd);
	sync_all();
	p = next_pkt();
	if (p && p->h.op == VSOCK_OP_SHUTDOWN) {
		inpos--;
		expect_on(&c, VSOCK_OP_SHUTDOWN);
		gwrite(&c, d, 10); /* the guest writes on: the write fails */
		sync_all();
	} else if (p) {
		inpos--;
	}
	expect_on(&c, VSOCK_OP_RST);
	no_pkt();
	k = cnt();
	assert_int_equal(k.rst_host_gone, 2);
	assert_int_equal(k.conns_open, 0);
	stop();
}

static void device_respects_guest_credit_and_room(void **state)
{
	static uint8_t up[40000 + 300];
	struct gconn c;
	int fd;

	(void)state;
	rx_want = 1; /* one receive buffer at a time, all along */
	start();
	fd = host_connect(&c, 100, 16384);
	pattern(up, sizeof(up), 10);
	cwrite(fd, up, 40000);
	sync_all();
	/* The guest's credit: 16384 bytes, no more. */
	expect_data(&c, up, 16384);
	only_credit(&c);
	/* It consumed them: 16384 more. */
	gop(&c, VSOCK_OP_CREDIT_UPDATE, 0);
	sync_all();
	expect_data(&c, up + 16384, 16384);
	only_credit(&c);
	gop(&c, VSOCK_OP_CREDIT_UPDATE, 0);
	sync_all();
	expect_data(&c, up + 32768, 40000 - 32768);
	/* The last buffer used, none posted again: nothing is lost and the device does not spin
	 * (settle fails on a watch that fires forever). */
	rx_want = 0;
	cwrite(fd, up + 40000, 100);
	sync_all();
	for (unsigned s = 0; s < NSLOT; s++)
		assert_false(rx_busy[s]);
	cwrite(fd, up + 40100, 100);
	sync_all();
	rx_want = NSLOT;
	post_rx();
	sync_all();
	expect_data(&c, up + 40000, 200);
	/* A guest that shrinks its buffer to nothing gets nothing, then all once it grows. */
	c.buf_alloc = 0;
	gop(&c, VSOCK_OP_CREDIT_UPDATE, 0);
	sync_all();
	cwrite(fd, up + 40200, 100);
	sync_all();
	only_credit(&c);
	c.buf_alloc = 65536;
	gop(&c, VSOCK_OP_CREDIT_UPDATE, 0);
	sync_all();
	expect_data(&c, up + 40200, 100);
	assert_int_equal(cnt().rx_bytes_count, 40300);
	stop();
}

static void credit_request_gets_an_update(void **state)
{
	static uint8_t d[3000];
	struct vsock_counters k;
	struct gconn c;
	struct pkt *p;
	int fd;

	(void)state;
	start();
	fd = host_connect(&c, 110, 65536);
	pattern(d, sizeof(d), 11);
	gwrite(&c, d, 3000);
	cexpect(fd, d, 3000);
	for (struct pkt *q; (q = next_pkt());) { /* updates the device chose to send */
		inpos--;
		expect_on(&c, VSOCK_OP_CREDIT_UPDATE);
	}
	k = cnt();
	gop(&c, VSOCK_OP_CREDIT_REQUEST, 0);
	sync_all();
	p = expect_on(&c, VSOCK_OP_CREDIT_UPDATE);
	assert_int_equal(p->h.fwd_cnt, 3000);
	assert_int_equal(p->h.buf_alloc, VSOCK_BUF_ALLOC);
	no_pkt();
	assert_int_equal(cnt().credit_requests_seen, k.credit_requests_seen + 1);
	assert_int_equal(cnt().credit_updates_sent, k.credit_updates_sent + 1);
	stop();
}

static void packets_for_no_connection_get_rst(void **state)
{
	static const uint16_t ops[] = {VSOCK_OP_RW, VSOCK_OP_SHUTDOWN, VSOCK_OP_CREDIT_REQUEST,
				       VSOCK_OP_CREDIT_UPDATE, VSOCK_OP_RESPONSE};
	struct gconn c, x;
	uint8_t d[10] = "0123456789";
	int fd;

	(void)state;
	start();
	fd = host_connect(&c, 120, 65536);
	unsigned unknown = 0, late = 0;

	for (unsigned i = 0; i < 5; i++) {
		x = (struct gconn){.gport = 7777 + i, .hport = 8888, .buf_alloc = 4096};
		if (ops[i] == VSOCK_OP_RW)
			gwrite(&x, d, 10);
		else
			gop(&x, ops[i], ops[i] == VSOCK_OP_SHUTDOWN ? 3 : 0);
		sync_all();
		expect_on(&x, VSOCK_OP_RST);
		no_pkt();
		/* Bytes or an answer count as unknown; a SHUTDOWN or credit news as late. */
		if (ops[i] == VSOCK_OP_RW || ops[i] == VSOCK_OP_RESPONSE)
			unknown++;
		else
			late++;
		assert_int_equal(cnt().rst_unknown, unknown);
		assert_int_equal(cnt().late_packets, late);
	}
	/* An RST is never answered. */
	x = (struct gconn){.gport = 7777, .hport = 8888};
	gop(&x, VSOCK_OP_RST, 0);
	no_pkt();
	/* The open connection's local port with another guest port: not that connection. */
	x = (struct gconn){.gport = 121, .hport = c.hport, .buf_alloc = 4096};
	gwrite(&x, d, 10);
	sync_all();
	expect_on(&x, VSOCK_OP_RST);
	no_pkt();
	assert_int_equal(cnt().rst_unknown, unknown + 1);
	assert_int_equal(cnt().late_packets, late);
	gwrite(&c, d, 10);
	cexpect(fd, d, 10);
	assert_int_equal(cnt().conns_open, 1);
	assert_int_equal(cnt().tx_bytes_count, 10);
	stop();
}

static void malformed_packets_are_dropped_or_reset(void **state)
{
	static uint8_t raw[VSOCK_HDR_LEN + 70000];
	struct vsock_counters k0, k;
	struct vsock_hdr h;
	struct gconn c;
	uint8_t d[10] = "abcdefghij";
	int fd, lfd;

	(void)state;
	start();
	fd = host_connect(&c, 130, 65536);
	k0 = cnt();
	/* A header cut short: dropped, counted, unanswered. */
	h = ghdr(&c, VSOCK_OP_RW, 0, 0);
	wire_put(raw, &h);
	gsend_bytes(raw, 20, 0);
	g_tx_bad++;
	sync_all();
	no_pkt();
	assert_int_equal(cnt().malformed_dropped, k0.malformed_dropped + 1);
	/* Wrong source CID, wrong destination CID: dropped. */
	h = ghdr(&c, VSOCK_OP_RW, 0, 10);
	h.src_cid = 7;
	gsend(&h, d, 10);
	g_tx_bad++;
	h = ghdr(&c, VSOCK_OP_RW, 0, 10);
	h.dst_cid = 99;
	gsend(&h, d, 10);
	g_tx_bad++;
	h = ghdr(&c, VSOCK_OP_REQUEST, 0, 0);
	h.dst_cid = GCID;
	h.dst_port = 999;
	gsend(&h, NULL, 0);
	g_tx_bad++;
	sync_all();
	no_pkt();
	k = cnt();
	assert_int_equal(k.malformed_dropped, k0.malformed_dropped + 4);
	copen(fd);
	assert_int_equal(k.conns_open, 1);
	assert_int_equal(dev.t.st.needs_reset, 0);
	/* The connection still works. */
	gwrite(&c, d, 10);
	cexpect(fd, d, 10);

	/* A length beyond the chain, beyond VSOCK_MAX_PKT, a bad type, a bad op: each dropped or
	 * its connection reset, counted once; the host never gets those bytes. */
	for (unsigned i = 0; i < 5; i++) {
		uint32_t n = 0;

		k0 = cnt();
		h = ghdr(&c, VSOCK_OP_RW, 0, 0);
		switch (i) {
		case 0:
			h.len = 1000; /* the chain holds 10 */
			n = 10;
			break;
		case 1:
			h.len = VSOCK_MAX_PKT + 1;
			n = VSOCK_MAX_PKT + 1;
			break;
		case 2:
			h.type = 2; /* SEQPACKET */
			h.len = 10;
			n = 10;
			break;
		case 3:
			h.op = VSOCK_OP_INVALID;
			break;
		case 4:
			h.op = 99;
			break;
		}
		wire_put(raw, &h);
		memset(raw + VSOCK_HDR_LEN, 'X', n);
		gsend_bytes(raw, VSOCK_HDR_LEN + n, i % 4);
		g_tx_bad++;
		sync_all();
		k = cnt();
		if (k.malformed_dropped + k.rst_malformed != k0.malformed_dropped + k0.rst_malformed + 1)
			fail_msg("malformed packet %u: malformed_dropped %llu -> %llu, rst_malformed "
				 "%llu -> %llu",
				 i, (unsigned long long)k0.malformed_dropped,
				 (unsigned long long)k.malformed_dropped,
				 (unsigned long long)k0.rst_malformed, (unsigned long long)k.rst_malformed);
		if (k.rst_malformed > k0.rst_malformed) {
			/* Reset: the guest hears RST, the host's socket ends without those bytes. */
			expect_on(&c, VSOCK_OP_RST);
			cclosed(fd);
			untrack_close(fd);
			assert_int_equal(k.conns_open, 0);
			fd = host_connect(&c, 130, 65536);
		} else {
			copen(fd);
		}
		no_pkt();
	}
	/* A REQUEST of another type makes no connection. */
	lfd = listen_at(3000);
	k0 = cnt();
	c = (struct gconn){.gport = 131, .hport = 3000, .buf_alloc = 4096};
	h = ghdr(&c, VSOCK_OP_REQUEST, 0, 0);
	h.type = 2;
	gsend(&h, NULL, 0);
	g_tx_bad++;
	sync_all();
	assert_int_equal(accept(lfd, NULL, NULL), -1);
	assert_int_equal(cnt().conns_guest, k0.conns_guest);
	for (struct pkt *p; (p = next_pkt());) {
		inpos--;
		expect_on(&c, VSOCK_OP_RST);
	}
	/* The VM goes on: a new connection works, no reset was needed. */
	(void)guest_connect(&c, 132, 3000, lfd, 4096);
	assert_int_equal(dev.t.st.needs_reset, 0);
	assert_true(rd(VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_DRIVER_OK);
	assert_false(rd(VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_NEEDS_RESET);
	stop();
}

static void device_reset_drops_every_connection(void **state)
{
	struct gconn c1, c2;
	int fd1, fd2, lfd;
	uint8_t d[5] = "hello";

	(void)state;
	start();
	fd1 = host_connect(&c1, 140, 65536);
	lfd = listen_at(4000);
	fd2 = guest_connect(&c2, 141, 4000, lfd, 65536);
	assert_int_equal(cnt().conns_open, 2);
	/* The guest reboots: the device is reset. Nothing may stay open for a driver that is
	 * gone: both host sockets end. */
	wr(VIRTIO_MMIO_STATUS, 0);
	sync_all();
	cclosed(fd1);
	cclosed(fd2);
	assert_int_equal(cnt().conns_open, 0);
	assert_int_equal(cnt().buffered_bytes, 0);
	/* A new driver: the listener still works. */
	driver_up();
	fd1 = host_connect(&c1, 142, 65536);
	gwrite(&c1, d, 5);
	cexpect(fd1, d, 5);
	assert_int_equal(cnt().conns_open, 1);
	stop();
}

/* The guest shuts its sending side: the host reads EOF and still writes to the guest; data
 * the guest sends after that is refused (RST) and never reaches the host. */
static void guest_half_close(void **state)
{
	static uint8_t up[500], late[10] = "late bytes";
	struct gconn c;
	uint8_t b[16];
	int fd, end;

	(void)state;
	start();
	fd = host_connect(&c, 75, 65536);
	gop(&c, VSOCK_OP_SHUTDOWN, VSOCK_SHUTDOWN_SEND);
	sync_all();
	assert_int_equal(cread(fd, b, sizeof(b), &end), 0);
	assert_int_equal(end, 1); /* EOF for the host's reader */
	pattern(up, sizeof(up), 15);
	cwrite(fd, up, sizeof(up)); /* its writer goes on */
	sync_all();
	expect_data(&c, up, sizeof(up));
	assert_int_equal(cnt().conns_open, 1);
	gwrite(&c, late, sizeof(late));
	sync_all();
	expect_on(&c, VSOCK_OP_RST);
	assert_int_equal(cread(fd, b, sizeof(b), &end), 0);
	assert_int_equal(cnt().conns_open, 0);
	assert_int_equal(cnt().tx_bytes_count, 0);
	h_read_bytes = 0;
	stop();
}

/* Both sides said they send no more (the host's SHUT_WR: SHUTDOWN(SEND) to the guest; then the
 * guest's SHUTDOWN(SEND)), nothing waits: the connection ends at once -- RST to the guest, the
 * host's socket closed -- without a timer and without the guest's RST. */
static void both_halves_closed_end_the_connection(void **state)
{
	struct gconn c;
	struct pkt *p;
	int fd;

	(void)state;
	start();
	fd = host_connect(&c, 150, 65536);
	assert_int_equal(shutdown(fd, SHUT_WR), 0);
	sync_all();
	p = expect_on(&c, VSOCK_OP_SHUTDOWN);
	assert_int_equal(p->h.flags, VSOCK_SHUTDOWN_SEND);
	gop(&c, VSOCK_OP_SHUTDOWN, VSOCK_SHUTDOWN_SEND);
	sync_all();
	expect_on(&c, VSOCK_OP_RST);
	no_pkt();
	cclosed(fd);
	assert_int_equal(cnt().conns_open, 0);
	assert_int_equal(cnt().rst_by_guest, 0);
	assert_int_equal(cnt().rst_host_gone, 0);
	/* The same with bytes waiting for a host that reads only later: they are written first. */
	{
		static uint8_t d[3000];

		fd = host_connect(&c, 151, 65536);
		pattern(d, sizeof(d), 16);
		assert_int_equal(shutdown(fd, SHUT_WR), 0);
		sync_all();
		expect_on(&c, VSOCK_OP_SHUTDOWN);
		gwrite(&c, d, sizeof(d));
		gop(&c, VSOCK_OP_SHUTDOWN, VSOCK_SHUTDOWN_SEND);
		sync_all();
		expect_on(&c, VSOCK_OP_RST);
		cexpect(fd, d, sizeof(d));
		cclosed(fd);
	}
	assert_int_equal(cnt().conns_open, 0);
	stop();
}

static void too_many_connections(void **state)
{
	struct gconn c;
	struct rlimit rl;
	int lfd, fd;
	unsigned ok = 0, rst = 0;

	(void)state;
	/* Two descriptors a connection (the device's and the accepted one). */
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur < 2 * VSOCK_MAX_CONNS + 100) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur < 2 * VSOCK_MAX_CONNS + 100) {
		print_message("skip: too_many_connections needs %u descriptors, RLIMIT_NOFILE "
			      "allows %llu\n",
			      2 * VSOCK_MAX_CONNS + 100, (unsigned long long)rl.rlim_cur);
		skip();
	}
	start();
	lfd = listen_at(5000);
	for (unsigned i = 0; i <= VSOCK_MAX_CONNS; i++) {
		c = (struct gconn){.gport = 10000 + i, .hport = 5000, .buf_alloc = 4096};
		gop(&c, VSOCK_OP_REQUEST, 0);
		if (i % 16 == 15 || i == VSOCK_MAX_CONNS) {
			sync_all();
			for (struct pkt *p; (p = next_pkt());) {
				assert_int_equal(p->h.src_port, 5000);
				if (p->h.op == VSOCK_OP_RESPONSE)
					ok++;
				else if (p->h.op == VSOCK_OP_RST)
					rst++;
				else
					fail_msg("op %u to a REQUEST", p->h.op);
			}
			nin = inpos = 0;
		}
	}
	assert_int_equal(ok, VSOCK_MAX_CONNS);
	assert_int_equal(rst, 1);
	assert_int_equal(cnt().conns_open, VSOCK_MAX_CONNS);
	assert_int_equal(cnt().rst_too_many, 1);
	/* A host client beyond the limit is closed without a REQUEST. */
	fd = client();
	cwrite_str(fd, "CONNECT 1\n");
	sync_all();
	for (struct pkt *p; (p = next_pkt());)
		if (p->h.op == VSOCK_OP_REQUEST)
			fail_msg("a REQUEST past VSOCK_MAX_CONNS");
	cclosed(fd);
	/* The accepted sockets (closed by stop): the device's all end at destroy. */
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		int a = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		assert_true(a >= 0);
		close(a);
	}
	sync_all();
	nin = inpos = 0;
	stop();
}

/* ---- 4 GiB each way: the 32-bit counters wrap ---- */

#define CHUNK   0x10000u
#define LONG_N  ((1ull << 32) + 3 * MIB + 12345)

static uint8_t fixed[CHUNK];
static uint64_t long_rx;   /* host -> guest bytes the guest took */
static uint32_t long_fwd;  /* what the guest consumed, told in its headers */
static uint32_t long_told; /* the guest's fwd_cnt as last told */
static uint32_t long_hport, long_gport, long_dev_fwd;
static bool long_wrapped;

static uint8_t stream_byte(uint64_t off)
{
	uint64_t chunk = off / CHUNK;
	unsigned in = (unsigned)(off % CHUNK);

	return in < 8 ? (uint8_t)(chunk >> (8 * in)) : fixed[in];
}

/* @n bytes at stream offset @off: the first, the last and every chunk's sequence number. */
static void check_stream(const uint8_t *d, uint64_t off, uint64_t n, const char *dir)
{
	if (d[0] != stream_byte(off) || d[n - 1] != stream_byte(off + n - 1))
		fail_msg("%s: a byte near %llu is wrong", dir, (unsigned long long)off);
	for (uint64_t cs = off / CHUNK * CHUNK; cs < off + n; cs += CHUNK)
		for (uint64_t o = cs; o < cs + 8; o++)
			if (o >= off && o < off + n && d[o - off] != stream_byte(o))
				fail_msg("%s: byte %llu (a sequence number) is wrong", dir,
					 (unsigned long long)o);
}

static void long_sink(const struct vsock_hdr *h, const uint8_t *data)
{
	if (h->src_port != long_hport || h->dst_port != long_gport)
		fail_msg("a packet for ports %u -> %u", h->src_port, h->dst_port);
	if (h->op == VSOCK_OP_RW) {
		if (!h->len)
			fail_msg("an empty RW");
		check_stream(data, long_rx, h->len, "host -> guest");
		long_rx += h->len;
		long_fwd += h->len;
	} else if (h->op != VSOCK_OP_CREDIT_UPDATE) {
		fail_msg("op %u during the transfer", h->op);
	}
	if (h->fwd_cnt < long_dev_fwd)
		long_wrapped = true;
	long_dev_fwd = h->fwd_cnt;
}

static void counters_wrap_over_4gib_each_way(void **state)
{
	static uint8_t b[1 << 20];
	struct gconn c;
	uint64_t h_wrote = 0, g_sent = 0, h_got = 0;
	int fd, end = 0;
	struct timespec t0, t1;

	(void)state;
	rx_len = VSOCK_HDR_LEN + CHUNK;
	start();
	pattern(fixed, sizeof(fixed), 12);
	fd = host_connect(&c, 160, VSOCK_BUF_ALLOC);
	long_hport = c.hport;
	long_gport = c.gport;
	long_rx = 0;
	long_fwd = long_told = 0;
	long_dev_fwd = 0;
	long_wrapped = false;
	rx_sink = long_sink;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (long_rx < LONG_N || h_got < LONG_N) {
		bool moved = false;

		/* Host -> guest: the host writes what its socket takes. */
		while (h_wrote < LONG_N) {
			uint64_t n = LONG_N - h_wrote;
			unsigned in = (unsigned)(h_wrote % CHUNK);
			ssize_t r;

			if (n > CHUNK - in)
				n = CHUNK - in;
			if (in < 8) {
				uint8_t tmp[8];

				for (unsigned i = 0; i < 8; i++)
					tmp[i] = stream_byte(h_wrote - in + i);
				memcpy(b, tmp, 8);
				memcpy(b + 8, fixed + 8, CHUNK - 8);
				r = write(fd, b + in, n);
			} else {
				r = write(fd, fixed + in, n);
			}
			if (r <= 0)
				break;
			h_wrote += (uint64_t)r;
			moved = true;
		}
		/* Guest -> host: within the credit it heard. */
		for (int k = 0; k < 8 && g_sent < LONG_N; k++) {
			uint32_t credit = vsock_peer_free(VSOCK_BUF_ALLOC, long_dev_fwd, (uint32_t)g_sent);
			uint32_t n = credit < CHUNK ? credit : CHUNK;
			uint8_t *p = b + (1 << 19);

			if (g_sent % CHUNK)
				n = n < CHUNK - g_sent % CHUNK ? n : CHUNK - (uint32_t)(g_sent % CHUNK);
			if (n > LONG_N - g_sent)
				n = (uint32_t)(LONG_N - g_sent);
			if (!n)
				break;
			memcpy(p, fixed + g_sent % CHUNK, n);
			for (uint32_t i = 0; i < n && (g_sent + i) % CHUNK < 8; i++)
				p[i] = stream_byte(g_sent + i);
			c.fwd_cnt = long_fwd;
			c.tx_cnt = (uint32_t)g_sent;
			{
				struct vsock_hdr h = ghdr(&c, VSOCK_OP_RW, 0, n);
				uint8_t *w = b + (1 << 19) - VSOCK_HDR_LEN;

				wire_put(w, &h);
				gsend_bytes(w, VSOCK_HDR_LEN + n, 0);
			}
			long_told = long_fwd;
			g_sent += n;
			g_tx_rw_bytes += n;
			moved = true;
		}
		/* The guest tells what it consumed once half its buffer is. */
		if ((uint32_t)(long_fwd - long_told) >= VSOCK_BUF_ALLOC / 2) {
			c.fwd_cnt = long_fwd;
			c.tx_cnt = (uint32_t)g_sent;
			gop(&c, VSOCK_OP_CREDIT_UPDATE, 0);
			long_told = long_fwd;
			moved = true;
		}
		settle();
		moved |= harvest();
		/* The host reads, checking every chunk's sequence number and a byte in each read. */
		for (;;) {
			size_t n = cread(fd, b, 1 << 18, &end);

			if (!n)
				break;
			check_stream(b, h_got, n, "guest -> host");
			h_got += n;
			moved = true;
		}
		if (end)
			fail_msg("the host's socket ended after %llu bytes", (unsigned long long)h_got);
		if (!moved) {
			sync_all();
			if (!harvest() && !inq(fd)) {
				clock_gettime(CLOCK_MONOTONIC, &t1);
				fail_msg("stalled: host -> guest %llu of %llu (guest fwd_cnt %u told %u), "
					 "guest -> host %llu sent, %llu read (device fwd_cnt %u)",
					 (unsigned long long)long_rx, (unsigned long long)LONG_N,
					 long_fwd, long_told, (unsigned long long)g_sent,
					 (unsigned long long)h_got, long_dev_fwd);
			}
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	print_message("4 GiB each way in %.1f s\n",
		      (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	assert_true(long_wrapped);
	assert_int_equal(long_dev_fwd, (uint32_t)LONG_N);
	h_read_bytes = 0; /* counted in 64 bits: tx_bytes_count holds 4 GiB and more */
	rx_sink = NULL;
	assert_int_equal(cnt().rx_bytes_count, LONG_N);
	assert_int_equal(cnt().tx_bytes_count, LONG_N);
	assert_true(cnt().buffered_max <= VSOCK_BUF_ALLOC);
	assert_int_equal(cnt().rst_credit, 0);
	stop();
}

/* ---- the VMM's own loop ---- */

static void runs_on_the_vmm_loop(void **state)
{
	struct vmm_err e = {0};
	static uint8_t up[3000], down[3000];
	struct gconn c;
	char line[64];
	struct pkt *p = NULL;
	int fd;
	size_t got = 0;
	uint8_t b[64];
	int end = 0;
	unsigned before = count_fds();

	(void)state;
	assert_int_equal(evloop_create(&loop, &e), 0);
	memset(&dev, 0, sizeof(dev));
	/* The kicks go through the loop as in vm_virtio. */
	start_with(&ehost);
	for (unsigned q = 0; q < 3; q++) {
		kicks[q] = (struct kick){.q = q};
		kicks[q].h = evloop_watch(loop, dev.t.kick_fd[q], POLLIN, on_kick, &kicks[q]);
		assert_non_null(kicks[q].h);
	}
	fd = client();
	cwrite_str(fd, "CONNECT 170\n");
	for (int i = 0; i < 400 && !(p = next_pkt()); i++)
		sync_all();
	assert_non_null(p);
	inpos--;
	p = expect(VSOCK_OP_REQUEST);
	c = (struct gconn){.gport = 170, .hport = p->h.src_port, .buf_alloc = 65536};
	gop(&c, VSOCK_OP_RESPONSE, 0);
	snprintf(line, sizeof(line), "OK %u\n", c.hport);
	for (int i = 0; i < 400 && got < strlen(line); i++) {
		sync_all();
		got += cread(fd, b + got, strlen(line) - got, &end);
	}
	h_read_bytes -= got;
	assert_int_equal(got, strlen(line));
	assert_memory_equal(b, line, got);
	pattern(up, sizeof(up), 13);
	cwrite(fd, up, sizeof(up));
	for (int i = 0; i < 400 && g_rx_bytes < sizeof(up); i++)
		sync_all();
	expect_data(&c, up, sizeof(up));
	pattern(down, sizeof(down), 14);
	gwrite(&c, down, sizeof(down));
	cexpect(fd, down, sizeof(down));
	untrack_close(fd);
	for (int i = 0; i < 400 && inpos == nin; i++)
		sync_all();
	p = expect_on(&c, VSOCK_OP_SHUTDOWN);
	gop(&c, VSOCK_OP_RST, 0);
	for (int i = 0; i < 100 && cnt().conns_open; i++)
		sync_all();
	assert_int_equal(cnt().conns_open, 0);
	/* A client that sent part of its line: the loop waits for the rest; it does not run
	 * the device's callbacks over and over (a busy VMM thread) for VSOCK_CONNECT_MS. */
	fd = client();
	cwrite_str(fd, "CONN");
	for (int i = 0; i < 10; i++)
		sync_all();
	e_calls = 0;
	{
		struct timespec t0, t1;
		double ms = 0;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		while (ms < 50) {
			assert_int_equal(evloop_run_once(loop, 10), 0);
			clock_gettime(CLOCK_MONOTONIC, &t1);
			ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
			     (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
		}
	}
	if (e_calls > 20)
		fail_msg("the device's watches ran %lu times in 50 ms of the VMM loop while a client's "
			 "line was incomplete: the VMM thread spins",
			 e_calls);
	cwrite_str(fd, "ECT 171\n");
	for (int i = 0; i < 400 && !(p = next_pkt()); i++)
		sync_all();
	assert_non_null(p);
	inpos--;
	p = expect(VSOCK_OP_REQUEST);
	assert_int_equal(p->h.dst_port, 171);
	c = (struct gconn){.gport = 171, .hport = p->h.src_port};
	gop(&c, VSOCK_OP_RST, 0);
	for (int i = 0; i < 100 && cnt().refused_by_guest < 1; i++)
		sync_all();
	stop();
	for (unsigned q = 0; q < 3; q++)
		evloop_unwatch(loop, kicks[q].h);
	evloop_destroy(loop);
	loop = NULL;
	while (tramps) {
		struct tramp *t = tramps;

		tramps = t->next;
		free(t);
	}
	assert_int_equal(count_fds(), before);
}

/* Before each test: the driver's defaults (a failed test leaves its own). */
static int knobs(void **state)
{
	(void)state;
	rx_want = NSLOT;
	rx_len = VSOCK_HDR_LEN + 4096;
	rx_split = false;
	rx_sink = NULL;
	loop = NULL;
	return 0;
}

static int group_setup(void **state)
{
	for (unsigned i = 0; i < 2; i++) {
		slot_mem[i] = aligned_alloc(4096, SLOT);
		if (!slot_mem[i])
			return -1;
		gm.slots[i] = (struct mem_slot){
			.id = i, .gpa = (uint64_t)i * SLOT, .size = SLOT, .hva = slot_mem[i]};
	}
	gm.nslots = 2;
	return setup(state);
}

static int group_teardown(void **state)
{
	free(slot_mem[0]);
	free(slot_mem[1]);
	free(fh_live);
	return teardown(state);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(header_round_trip, knobs),
		cmocka_unit_test_setup(peer_free_wraps, knobs),
		cmocka_unit_test_setup(host_connect_and_data_both_ways, knobs),
		cmocka_unit_test_setup(guest_rst_refuses_a_host_connect, knobs),
		cmocka_unit_test_setup(bad_connect_lines_close_the_client, knobs),
		cmocka_unit_test_setup(connect_line_in_pieces, knobs),
		cmocka_unit_test_setup(connect_line_with_a_nul_is_bad, knobs),
		cmocka_unit_test_setup(guest_connect_with_and_without_listener, knobs),
		cmocka_unit_test_setup(guest_shutdown_both_flushes_then_resets, knobs),
		cmocka_unit_test_setup(credit_bounds_what_the_guest_sends, knobs),
		cmocka_unit_test_setup(guest_shutdown_waits_for_a_slow_host, knobs),
		cmocka_unit_test_setup(host_eof_is_shutdown_send, knobs),
		cmocka_unit_test_setup(host_gone_resets, knobs),
		cmocka_unit_test_setup(device_respects_guest_credit_and_room, knobs),
		cmocka_unit_test_setup(credit_request_gets_an_update, knobs),
		cmocka_unit_test_setup(packets_for_no_connection_get_rst, knobs),
		cmocka_unit_test_setup(malformed_packets_are_dropped_or_reset, knobs),
		cmocka_unit_test_setup(device_reset_drops_every_connection, knobs),
		cmocka_unit_test_setup(guest_half_close, knobs),
		cmocka_unit_test_setup(both_halves_closed_end_the_connection, knobs),
		cmocka_unit_test_setup(too_many_connections, knobs),
		cmocka_unit_test_setup(counters_wrap_over_4gib_each_way, knobs),
		cmocka_unit_test_setup(runs_on_the_vmm_loop, knobs),
	};

	log_set_level(LOG_ERR); /* the guest's broken rules are expected here */
	signal(SIGPIPE, SIG_IGN); /* a write to a socket the device closed fails, as it should */
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
