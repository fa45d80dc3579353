/*
 * Fuzzing of the socket device (devices/virtio/vsock.c) through its transport,
 * over two 8 MiB slots of fake guest RAM, with real Unix sockets on the host
 * side (host clients on uds_path, listeners on <uds_path>_<P>) and a fake VMM
 * loop: watches dispatched with poll(), timers on a virtual clock, and in some
 * runs watches and timers that fail now and then.
 *
 * A guest driver model posts random receive chains (1-3 pieces, 0..16 KiB,
 * some under the header, some across the slots' seam) and sends random
 * packets in chains of 1-4 pieces split anywhere (the header included):
 * REQUESTs to listened and unlistened ports, RESPONSE or RST or silence to
 * the device's REQUESTs, RW of 0..64 KiB within the credit it heard (and now
 * and then beyond it), CREDIT_UPDATEs with buffers that grow and shrink,
 * CREDIT_REQUESTs, SHUTDOWNs of any flags, RSTs, packets for no connection,
 * short headers, wrong CIDs, bad types, ops and lengths; in "chaos" runs also
 * packets that break the protocol (answers to REQUESTs it never saw, guessed
 * ports, data after its own SHUTDOWN). Host peers connect with good, bad,
 * silent and (unless FUZZ_VSOCK_KNOWN=1) partial CONNECT lines, read, stall,
 * write, half-close, close with bytes unread, accept late; listeners come and
 * go; the clock jumps past VSOCK_CONNECT_MS; the driver resets the device.
 * A third of the runs have slow hosts (they seldom read, a little at a time)
 * and a guest that writes big and, now and then, just beyond its credit; in
 * half of them the guest never asks for credit (as Linux): it waits to be told.
 *
 * What must hold (checked after every step, once all is quiet):
 *  - no crash, no ASan/UBSan report; the loop settles (a watch that fires
 *    forever is a busy VMM thread); no watch doubled, removed twice or left
 *    on a closed fd; no timer cancelled after it fired; nothing watched or
 *    armed after virtio_vsock_stop;
 *  - every used entry names an offered chain, once; a receive entry holds one
 *    whole packet (len = 44 + hdr.len), or nothing for a chain under 44
 *    bytes; every used entry is followed by an interrupt;
 *  - every packet comes from CID 2 to the guest's CID, a stream; REQUESTs
 *    only for a client's complete "CONNECT <port>\n" (local port >=
 *    VSOCK_PORT_FIRST, not in use), RESPONSE only to the guest's REQUEST;
 *    buf_alloc is VSOCK_BUF_ALLOC; fwd_cnt never goes back nor past what the
 *    guest sent; RW only on an open connection, never after SHUTDOWN(SEND) or
 *    the guest's SHUTDOWN(RCV), never beyond the credit the guest gave, and
 *    its bytes are the host socket's, in order;
 *  - the host reads "OK <local port>\n" and then exactly the guest's bytes,
 *    in order; a client whose line was bad is closed;
 *  - per connection the bytes held in the VMM (what the guest sent minus
 *    what the host socket took, FIONREAD) never exceed VSOCK_BUF_ALLOC, and
 *    buffered_bytes is their sum; a guest that sent beyond what the device
 *    could hold was reset (rst_credit), one within the credit it heard never;
 *  - conns_open is the number of connections the guest has open, and the
 *    host side agrees: an open connection's socket is not hung up, a closed
 *    one's is; after a reset every host socket is;
 *  - the counters are what the guest and the host saw (packets and bytes to
 *    the guest, packets from it, malformed ones, bad lines, resets by cause);
 *  - at the end of each run nothing stalls (the host reads everything the
 *    guest sent, the guest gets everything the host wrote), and
 *    virtio_vsock_stop/destroy leave no watch, timer, descriptor or path.
 *
 *   fuzz_vsock [steps] [seed]      (defaults: 8000, 1)
 *
 * Runs of 2000 steps; run 0 is seeded with the seed, run k > 0 with a mix of
 * both. A failure prints the run's seed and step and how to replay it;
 * FUZZ_VSOCK_TRACE=1 prints every packet and host action on the way.
 * FUZZ_VSOCK_KNOWN=1 leaves out partial CONNECT lines (they made the loop spin
 * before 28b8656), should such a known bug need to be stepped around again.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_ring.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "devices/virtio/vsock.h"
#include "fuzz.h"

#define SLOT     (8u << 20)
#define GSI      5u
#define RUNLEN   2000ul
#define RXQ      0
#define TXQ      1
#define EVQ      2
#define QMAX     64u
#define RING(q)  (0x1000ull + 0x4000ull * (q)) /* descriptors; avail +0x1000; used +0x2000 */
#define EVBUF    0xf000ull
#define RXREG(h) (0x7a0000ull + (uint64_t)(h)*0x6000ull) /* some across the seam at 8 MiB */
#define RXREG_SZ 0x6000u
#define TXREG(h) (0x900000ull + (uint64_t)(h)*0x12000ull)
#define TXREG_SZ 0x12000u
#define MAXGC    512u /* guest connections in a run */
#define MAXHS    256u /* host sockets in a run */
#define LIVEHS   24u  /* host sockets open at once */
#define NLIS     4u
#define LPORT0   7000u
#define GPORT0   2000u   /* the guest's own ports, one per connection it makes */
#define CPORT0   100000u /* ports host clients ask for, one per client */
#define BUF      VSOCK_BUF_ALLOC

/* ---- the run ---- */

static unsigned long long seed0, run_seed;
static unsigned long run_no, step_now;
static uint8_t *mem[2];
static char dir[64], uds[96];
static uint32_t gcid;
static bool chaos, inject, slow_host, linux_like, known_only, tracing;

#define T(...)                                                                                     \
	do {                                                                                       \
		if (tracing) {                                                                     \
			fprintf(stderr, "%5lu: ", step_now);                                        \
			fprintf(stderr, __VA_ARGS__);                                              \
			fputc('\n', stderr);                                                       \
		}                                                                                  \
	} while (0)
static unsigned fds_base;

/* Totals for the summary. */
static unsigned long t_runs, t_chaos, t_inject, t_pkts_in, t_pkts_out, t_conns, t_resets;
static unsigned long t_exceed, t_rst_credit, t_bad_lines, t_timeouts, t_stalls_checked;
static uint64_t t_bytes_in, t_bytes_out, t_buf_max;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "fuzz_vsock: run %lu (seed %llu; replay: fuzz_vsock %lu %llu), step %lu: ",
		run_no, run_seed, RUNLEN, run_seed, step_now);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

void __asan_on_error(void);
void __asan_on_error(void)
{
	fprintf(stderr, "fuzz_vsock: run %lu (seed %llu), step %lu: ASan reports:\n", run_no,
		run_seed, step_now);
}

static uint64_t below(uint64_t n)
{
	return n ? next() % n : 0;
}

static bool one_in(uint64_t n)
{
	return below(n) == 0;
}

/* ---- guest memory, the header, the fake loop, the driver's registers ---- */

#define VG_FAIL(...) fail(__VA_ARGS__)
#include "tests/unit/vsock_guest.h"

/* Byte @k of stream @id: every stream's bytes are known from their offset. */
static uint8_t sbyte(uint32_t id, uint64_t k)
{
	return (uint8_t)(k * 131u + (k >> 9) * 7u + id * 29u + (k >> 17));
}

static void sfill(uint8_t *p, uint32_t id, uint64_t off, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = sbyte(id, off + i);
}

static void scheck(const uint8_t *p, uint32_t id, uint64_t off, size_t n, const char *what)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != sbyte(id, off + i))
			fail("%s: byte %llu of stream %u is 0x%02x, not 0x%02x", what,
			     (unsigned long long)(off + i), id, p[i], sbyte(id, off + i));
}

/* ---- the fake loop (vsock_guest.h): in some runs watches and timers fail now and then ---- */

static bool in_attach;

static bool vg_refuse_watch(void)
{
	return inject && !in_attach && one_in(40);
}

static bool vg_refuse_timer(void)
{
	return inject && one_in(40);
}

/* ---- the driver: queues and chains ---- */

struct piece {
	uint64_t gpa;
	uint32_t len;
};

struct chain {
	bool out;
	unsigned np;
	struct piece p[4];
	uint16_t d[4];
	uint32_t wlen; /* rx: writable bytes */
};

struct queue {
	uint16_t avail, seen;
	unsigned nfree;
	uint16_t freed[QMAX];
	struct chain c[QMAX]; /* by head */
};

static struct queue Q[3];
static bool live; /* DRIVER_OK set and not reset */

static bool take_descs(unsigned q, unsigned n, uint16_t *d)
{
	if (Q[q].nfree < n)
		return false;
	for (unsigned i = 0; i < n; i++)
		d[i] = Q[q].freed[--Q[q].nfree];
	return true;
}

static void give_descs(unsigned q, const struct chain *c)
{
	for (unsigned i = 0; i < c->np; i++)
		Q[q].freed[Q[q].nfree++] = c->d[i];
}

static void offer(unsigned q, uint16_t head)
{
	uint16_t v = head;

	gput(RING(q) + 0x1000 + 4 + 2 * (Q[q].avail % qn), &v, 2);
	Q[q].avail++;
	v = Q[q].avail;
	gput(RING(q) + 0x1000 + 2, &v, 2);
}

/* Chains the device holds (offered, not used). */
static unsigned outstanding(unsigned q)
{
	unsigned n = 0;

	for (unsigned h = 0; h < qn; h++)
		n += Q[q].c[h].out;
	return n;
}

/* A receive chain of @total writable bytes in 1-3 pieces, in head's region. */
static bool post_rx_one(uint32_t total)
{
	unsigned np = 1 + (unsigned)below(3);
	uint16_t d[4];
	struct chain *c;
	uint64_t at;

	if (total > RXREG_SZ - 3 * 64)
		total = RXREG_SZ - 3 * 64;
	if (np > total)
		np = 1;
	if (!take_descs(RXQ, np, d))
		return false;
	c = &Q[RXQ].c[d[0]];
	*c = (struct chain){.out = true, .np = np, .wlen = total};
	at = RXREG(d[0]);
	for (unsigned i = 0; i < np; i++) {
		uint32_t len = i == np - 1 ? total : (uint32_t)below(total + 1);

		total -= len;
		c->p[i] = (struct piece){at, len};
		c->d[i] = d[i];
		at += len + below(64);
	}
	for (unsigned i = 0; i < np; i++)
		desc(RXQ, d[i], c->p[i].gpa, c->p[i].len,
		     VRING_DESC_F_WRITE | (i < np - 1 ? VRING_DESC_F_NEXT : 0),
		     i < np - 1 ? d[i + 1] : 0);
	offer(RXQ, d[0]);
	return true;
}

/* A transmit chain of @n bytes in 1-4 pieces cut anywhere. */
static bool send_tx(const uint8_t *b, uint32_t n)
{
	unsigned np = 1 + (unsigned)below(4);
	uint16_t d[4];
	struct chain *c;
	uint64_t at;
	uint32_t left = n, off = 0;

	if (!take_descs(TXQ, np, d))
		return false;
	c = &Q[TXQ].c[d[0]];
	*c = (struct chain){.out = true, .np = np};
	at = TXREG(d[0]);
	for (unsigned i = 0; i < np; i++) {
		uint32_t len = i == np - 1 ? left : (uint32_t)below(left + 1);

		if (one_in(3) && i < np - 1 && left >= VSOCK_HDR_LEN && off == 0)
			len = VSOCK_HDR_LEN; /* the header alone, as Linux does */
		gput(at, b + off, len);
		c->p[i] = (struct piece){at, len};
		c->d[i] = d[i];
		off += len;
		left -= len;
		at += len + below(64);
	}
	if (at > TXREG(d[0]) + TXREG_SZ)
		fail("a transmit chain overflows its region");
	for (unsigned i = 0; i < np; i++)
		desc(TXQ, d[i], c->p[i].gpa, c->p[i].len, i < np - 1 ? VRING_DESC_F_NEXT : 0,
		     i < np - 1 ? d[i + 1] : 0);
	offer(TXQ, d[0]);
	notify(TXQ);
	return true;
}

static void driver_up(void)
{
	uint8_t cfg[8];

	memset(Q, 0, sizeof(Q));
	for (unsigned q = 0; q < 3; q++) {
		static const uint8_t zero[0x3000];

		gput(RING(q), zero, sizeof(zero));
	}
	qn = 1u << (2 + below(5)); /* 4..64 */
	for (unsigned q = 0; q < 3; q++) {
		Q[q].nfree = 0;
		for (unsigned i = qn; i-- > 0;)
			Q[q].freed[Q[q].nfree++] = (uint16_t)i;
	}
	wr(VIRTIO_MMIO_STATUS, 0);
	wr(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	wr(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	wr(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	wr(VIRTIO_MMIO_DRIVER_FEATURES, 0);
	wr(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	wr(VIRTIO_MMIO_DRIVER_FEATURES, 1); /* VERSION_1 */
	wr(VIRTIO_MMIO_STATUS,
	   VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK);
	if (!(rd(VIRTIO_MMIO_STATUS) & VIRTIO_CONFIG_S_FEATURES_OK))
		fail("VERSION_1 alone refused");
	for (unsigned i = 0; i < 8; i++)
		dev.t.dev.ops->read(&dev.t.dev, 0x100 + i, &cfg[i], 1);
	if (ld(cfg, 8) != gcid)
		fail("config space says CID %llu, not %u", (unsigned long long)ld(cfg, 8), gcid);
	for (unsigned q = 0; q < 3; q++) {
		wr(VIRTIO_MMIO_QUEUE_SEL, q);
		queue_ready(q);
	}
	for (unsigned i = 0; i < 2 && Q[EVQ].nfree; i++) {
		uint16_t d = Q[EVQ].freed[--Q[EVQ].nfree];

		desc(EVQ, d, EVBUF + 16 * d, 8, VRING_DESC_F_WRITE, 0);
		offer(EVQ, d);
	}
	for (unsigned i = 0; i < 1 + below(8); i++)
		post_rx_one(VSOCK_HDR_LEN + 4096);
	wr(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
				       VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
	live = true;
}

/* ---- the model ---- */

enum { G_FREE, G_CONNECTING, G_REQUESTED, G_OPEN, G_CLOSED };

struct gconn {
	int st;
	bool host_init;
	uint32_t gport, hport, id;
	int hs; /* the host socket, -1 none (yet) */
	uint64_t tx, rx;
	uint32_t buf;
	uint64_t told_fwd, bound; /* what the guest told; the most it ever allowed */
	uint32_t dev_fwd;
	bool dev_shut, shut_send, shut_rcv, asked, chaotic, answered, got_response;
	bool exceed, must_rst, may_rst;
	unsigned long quiet_from; /* step from which no RW may come (our SHUTDOWN(RCV), RST) */
	int lis;                  /* guest's connect: the listener asked (-1 none) */
};

enum { H_FREE, H_LIVE, H_GONE };

struct hsock {
	int st, fd;
	bool client, shut_wr, ok, bad;
	bool loose; /* which connection it is, or what it carries, cannot be known: not checked */
	int line; /* client: 0 nothing, 1 partial, 2 complete */
	char text[64];
	unsigned text_len, sent;
	char okline[24];
	unsigned oklen;
	uint32_t id, port;
	int gc;
	uint64_t wr, rd;
};

struct lis {
	int fd;
	bool ambiguous; /* a connection may sit in its queue that the model cannot place */
	int q[MAXGC]; /* guest connections REQUESTed while it listened, in order */
	unsigned qh, qt;
};

static struct gconn G[MAXGC];
static unsigned ngc;
static struct hsock H[MAXHS];
static unsigned nhs;
static struct lis L[NLIS];
static uint32_t next_id;

/* Expectations for the counters. */
static uint64_t m_rx_pkts, m_rx_bytes, m_tx_pkts, m_malformed, m_bad_lines, m_bad_lines_max;
static uint64_t m_must_rst_credit, m_may_rst_credit, m_unknown_min, m_late_min, m_nolistener_min;
static uint64_t m_conns_guest, m_guest_requests, m_stray_sent, m_stray_rst;

static unsigned live_hs(void)
{
	unsigned n = 0;

	for (unsigned i = 0; i < nhs; i++)
		n += H[i].st == H_LIVE;
	return n;
}

static struct gconn *find_gc(uint32_t gport, uint32_t hport)
{
	for (unsigned i = ngc; i-- > 0;)
		if (G[i].st != G_FREE && G[i].gport == gport && G[i].hport == hport)
			return &G[i];
	return NULL;
}

static struct hsock *hs_of(const struct gconn *c)
{
	return c->hs >= 0 ? &H[c->hs] : NULL;
}

static void close_gc(struct gconn *c)
{
	c->st = G_CLOSED;
	c->quiet_from = step_now + 1;
}

/* The guest sends header @h with @len payload bytes @p. Whether it went. */
static bool gsend(const struct vsock_hdr *h, const uint8_t *p, uint32_t len, uint32_t cut)
{
	static uint8_t b[VSOCK_HDR_LEN + 70000];
	uint32_t n = cut ? cut : VSOCK_HDR_LEN + len;

	wire_put(b, h);
	if (len)
		memcpy(b + VSOCK_HDR_LEN, p, len);
	if (!send_tx(b, n))
		return false;
	T("guest: op %u ports %u -> %u len %u flags %u buf %u fwd %u (%u bytes)", h->op,
	  h->src_port, h->dst_port, h->len, h->flags, h->buf_alloc, h->fwd_cnt, n);
	t_pkts_out++;
	if (n >= VSOCK_HDR_LEN)
		m_tx_pkts++;
	return true;
}

static struct vsock_hdr ghdr(const struct gconn *c, uint16_t op)
{
	return (struct vsock_hdr){.src_cid = gcid,
				  .dst_cid = VSOCK_HOST_CID,
				  .src_port = c->gport,
				  .dst_port = c->hport,
				  .type = VSOCK_TYPE_STREAM,
				  .op = op,
				  .buf_alloc = c->buf,
				  .fwd_cnt = (uint32_t)c->rx};
}

/* Every header tells the device the guest's credit: it consumed all it received. */
static void told(struct gconn *c)
{
	c->told_fwd = c->rx;
	if (c->told_fwd + c->buf > c->bound)
		c->bound = c->told_fwd + c->buf;
}

static bool gop(struct gconn *c, uint16_t op, uint32_t flags)
{
	struct vsock_hdr h = ghdr(c, op);

	h.flags = flags;
	if (!gsend(&h, NULL, 0, 0))
		return false;
	told(c);
	return true;
}

/* ---- the device's packets ---- */

static void on_packet(const struct vsock_hdr *h, const uint8_t *data)
{
	struct gconn *c;

	t_pkts_in++;
	T("device: op %u ports %u -> %u len %u flags %u fwd %u", h->op, h->src_port, h->dst_port,
	  h->len, h->flags, h->fwd_cnt);
	if (h->src_cid != VSOCK_HOST_CID || h->dst_cid != gcid || h->type != VSOCK_TYPE_STREAM)
		fail("a packet from CID %llu to %llu, type %u", (unsigned long long)h->src_cid,
		     (unsigned long long)h->dst_cid, h->type);
	if (h->op < VSOCK_OP_REQUEST || h->op > VSOCK_OP_CREDIT_REQUEST)
		fail("a packet of op %u", h->op);
	if (h->op != VSOCK_OP_RW && h->len)
		fail("op %u with %u bytes", h->op, h->len);
	if (h->op == VSOCK_OP_REQUEST) {
		struct hsock *s = NULL;

		for (unsigned i = 0; i < nhs; i++)
			if (H[i].client && H[i].port == h->dst_port && H[i].line == 2 && !H[i].bad)
				s = &H[i];
		if (!s || s->gc >= 0) {
			if (chaos)
				return;
			fail("a REQUEST to guest port %u, which no client asked for (or twice)",
			     h->dst_port);
		}
		if (h->src_port < VSOCK_PORT_FIRST)
			fail("a REQUEST from local port %u, below VSOCK_PORT_FIRST", h->src_port);
		for (unsigned i = 0; i < ngc; i++)
			if ((G[i].st == G_OPEN || G[i].st == G_REQUESTED) && G[i].host_init &&
			    G[i].hport == h->src_port && !chaos)
				fail("local port %u given twice", h->src_port);
		if (h->buf_alloc != BUF || h->fwd_cnt)
			fail("a REQUEST with buf_alloc %u fwd_cnt %u", h->buf_alloc, h->fwd_cnt);
		if (ngc == MAXGC)
			fail("the model ran out of connections");
		c = &G[ngc++];
		*c = (struct gconn){.st = G_REQUESTED,
				    .host_init = true,
				    .gport = h->dst_port,
				    .hport = h->src_port,
				    .id = next_id++,
				    .hs = (int)(s - H),
				    .buf = (uint32_t)(4096 + below(BUF)),
				    .lis = -1};
		s->gc = (int)(c - G);
		return;
	}
	if (h->dst_port >= 50000 && h->dst_port < 51000 && h->src_port >= 60000 &&
	    h->src_port < 61000) {
		if (h->op != VSOCK_OP_RST)
			fail("op %u to a stray packet", h->op);
		m_stray_rst++;
		return;
	}
	c = find_gc(h->dst_port, h->src_port);
	if (!c || c->st == G_CLOSED) {
		/* For nothing the guest has open: only RST (strays, and ends it already saw). */
		if (h->op != VSOCK_OP_RST && !(c && (c->chaotic || step_now < c->quiet_from)) && !chaos)
			fail("op %u for ports %u -> %u, which the guest has no connection on", h->op,
			     h->src_port, h->dst_port);
		return;
	}
	if (h->op != VSOCK_OP_RST) {
		if (h->buf_alloc != BUF)
			fail("buf_alloc %u", h->buf_alloc);
		/* fwd_cnt: never back, never past what the guest sent. */
		if (!c->chaotic &&
		    (uint32_t)((uint32_t)c->tx - h->fwd_cnt) > (uint32_t)((uint32_t)c->tx - c->dev_fwd))
			fail("fwd_cnt %u after %u (the guest sent %llu)", h->fwd_cnt, c->dev_fwd,
			     (unsigned long long)c->tx);
		c->dev_fwd = h->fwd_cnt;
	}
	switch (h->op) {
	case VSOCK_OP_RESPONSE:
		if (c->st != G_CONNECTING && !c->chaotic && !chaos)
			fail("a RESPONSE on ports %u -> %u, which the guest did not ask for",
			     h->src_port, h->dst_port);
		if (c->st == G_CONNECTING) {
			c->st = G_OPEN;
			c->got_response = true;
			m_conns_guest++;
			t_conns++;
		}
		break;
	case VSOCK_OP_RST:
		if (c->exceed)
			t_rst_credit++;
		close_gc(c);
		break;
	case VSOCK_OP_SHUTDOWN:
		if (!(h->flags & VSOCK_SHUTDOWN_SEND) || (h->flags & ~3u))
			fail("SHUTDOWN flags %u", h->flags);
		if (c->st != G_OPEN && !c->chaotic && !chaos)
			fail("SHUTDOWN on a connection not open");
		c->dev_shut = true;
		break;
	case VSOCK_OP_RW: {
		struct hsock *s = hs_of(c);

		if (c->st != G_OPEN && !chaos)
			fail("RW on a connection not open (state %d)", c->st);
		if (!h->len)
			fail("an empty RW");
		if (c->dev_shut)
			fail("RW after the device's SHUTDOWN(SEND)");
		if (c->shut_rcv && step_now >= c->quiet_from)
			fail("RW after the guest's SHUTDOWN(RCV)");
		if (c->rx + h->len > c->bound)
			fail("RW beyond the guest's credit: %llu + %u bytes, it allowed %llu",
			     (unsigned long long)c->rx, h->len, (unsigned long long)c->bound);
		if (!chaos && !c->chaotic && (!s || !s->loose)) {
			if (!s || c->rx + h->len > s->wr)
				fail("RW of %u bytes at %llu; the host wrote %llu", h->len,
				     (unsigned long long)c->rx, (unsigned long long)(s ? s->wr : 0));
			scheck(data, s->id, c->rx, h->len, "host -> guest");
		}
		c->rx += h->len;
		m_rx_bytes += h->len;
		t_bytes_in += h->len;
		break;
	}
	case VSOCK_OP_CREDIT_REQUEST:
		c->asked = true;
		break;
	case VSOCK_OP_CREDIT_UPDATE:
		break;
	case VSOCK_OP_REQUEST:
		break;
	}
}

/* Take what the device used. Whether anything was new. */
static bool harvest(void)
{
	static uint8_t b[RXREG_SZ];
	bool any = false;
	uint16_t u;

	if (!live)
		return false;
	u = g16(RING(RXQ) + 0x2000 + 2);
	if ((uint16_t)(u - Q[RXQ].seen) > qn)
		fail("rx used index %u, %u seen, queue of %u", u, Q[RXQ].seen, qn);
	while (Q[RXQ].seen != u) {
		uint32_t id = g32(RING(RXQ) + 0x2000 + 4 + 8 * (Q[RXQ].seen % qn));
		uint32_t len = g32(RING(RXQ) + 0x2000 + 8 + 8 * (Q[RXQ].seen % qn));
		struct chain *c;
		struct vsock_hdr h;
		uint32_t got = 0;

		if (id >= qn || !Q[RXQ].c[id].out)
			fail("a used receive entry names chain %u, not the device's", id);
		c = &Q[RXQ].c[id];
		if (len > c->wlen)
			fail("a used receive entry of %u bytes in a chain of %u", len, c->wlen);
		if (c->wlen < VSOCK_HDR_LEN) {
			if (len)
				fail("%u bytes in a chain under the header", len);
			m_malformed++;
		} else {
			if (len < VSOCK_HDR_LEN)
				fail("a used receive entry of %u bytes", len);
			for (unsigned i = 0; i < c->np && got < len; i++) {
				uint32_t n = c->p[i].len < len - got ? c->p[i].len : len - got;

				gget(c->p[i].gpa, b + got, n);
				got += n;
			}
			wire_get(&h, b);
			if (h.len != len - VSOCK_HDR_LEN)
				fail("a header of len %u in a used entry of %u bytes", h.len, len);
			m_rx_pkts++;
			on_packet(&h, b + VSOCK_HDR_LEN);
		}
		c->out = false;
		give_descs(RXQ, c);
		Q[RXQ].seen++;
		any = true;
	}
	u = g16(RING(TXQ) + 0x2000 + 2);
	if ((uint16_t)(u - Q[TXQ].seen) > qn)
		fail("tx used index %u, %u seen, queue of %u", u, Q[TXQ].seen, qn);
	while (Q[TXQ].seen != u) {
		uint32_t id = g32(RING(TXQ) + 0x2000 + 4 + 8 * (Q[TXQ].seen % qn));

		if (id >= qn || !Q[TXQ].c[id].out)
			fail("a used transmit entry names chain %u, not the device's", id);
		Q[TXQ].c[id].out = false;
		give_descs(TXQ, &Q[TXQ].c[id]);
		Q[TXQ].seen++;
		any = true;
	}
	if (g16(RING(EVQ) + 0x2000 + 2))
		fail("an event buffer was used");
	if (any) {
		if (irq_pulses == irq_seen)
			fail("used entries without an interrupt");
		irq_seen = irq_pulses;
	}
	return any;
}

static void sync_dev(void)
{
	for (unsigned i = 0; i < 1000; i++) {
		fh_settle();
		if (!harvest())
			return;
	}
	fail("the device and the guest never settle");
}

/* ---- the host's side ---- */

static int hs_new(int fd, bool client)
{
	struct hsock *s;

	if (nhs == MAXHS) {
		close(fd);
		return -1;
	}
	s = &H[nhs];
	*s = (struct hsock){.st = H_LIVE, .fd = fd, .client = client, .id = next_id++, .gc = -1,
			    .loose = chaos};
	return (int)nhs++;
}

static void lis_path(char *p, size_t n, unsigned i)
{
	if ((size_t)snprintf(p, n, "%.80s_%u", uds, LPORT0 + i) >= n)
		fail("a listener's path is too long");
}

static void lis_open(unsigned i)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	lis_path(a.sun_path, sizeof(a.sun_path), i);
	unlink(a.sun_path);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 64))
		fail("listener %u: %s", i, strerror(errno));
	L[i].fd = fd;
	L[i].qh = L[i].qt = 0;
	L[i].ambiguous = false;
}

static void lis_close(unsigned i)
{
	char p[108];

	close(L[i].fd);
	L[i].fd = -1;
	lis_path(p, sizeof(p), i);
	unlink(p);
	/* What waited to be accepted is gone with it: those connections' host ends vanish. */
	for (; L[i].qh != L[i].qt; L[i].qh++)
		G[L[i].q[L[i].qh % MAXGC]].lis = -2;
}

static void hs_close(struct hsock *s)
{
	close(s->fd);
	s->st = H_GONE;
	s->fd = -1;
}

/* The host reads what is there from @s (up to @max): checks it; whether the socket ended. */
static bool hs_read(struct hsock *s, size_t max)
{
	static uint8_t b[1 << 17];
	struct gconn *c = s->gc >= 0 ? &G[s->gc] : NULL;

	while (max) {
		ssize_t r;

		if (s->loose) {
			r = read(s->fd, b, sizeof(b));
			T("host: socket %u read %zd (not checked)", (unsigned)(s - H), r);
			if (r == 0 || (r < 0 && errno != EAGAIN))
				return true;
			if (r < 0)
				return false;
			continue;
		}
		if (s->client && !s->ok) {
			char ch;

			r = read(s->fd, &ch, 1);
			if (r <= 0)
				break;
			if (s->oklen >= sizeof(s->okline) - 1)
				fail("a line of more than 22 bytes before the stream");
			s->okline[s->oklen++] = ch;
			if (ch == '\n') {
				char want[24];

				s->okline[s->oklen] = 0;
				if (!c)
					fail("\"%.*s\" before the guest heard of the connection",
					     (int)s->oklen - 1, s->okline);
				snprintf(want, sizeof(want), "OK %u\n", c->hport);
				if (strcmp(s->okline, want))
					fail("the client read \"%s\", not \"%s\"", s->okline, want);
				if (!c->answered)
					fail("\"OK\" before the guest's RESPONSE");
				s->ok = true;
			}
			continue;
		}
		r = read(s->fd, b, max < sizeof(b) ? max : sizeof(b));
		if (r < 0 && errno == EAGAIN)
			return false;
		if (r < 0 && errno == ECONNRESET)
			return true;
		if (r < 0)
			fail("read: %s", strerror(errno));
		if (r == 0)
			return true;
		if (!c)
			fail("the host read %zd bytes from a socket no guest connection owns", r);
		if (s->rd + (uint64_t)r > c->tx)
			fail("the host read %llu bytes; the guest sent %llu",
			     (unsigned long long)(s->rd + (uint64_t)r), (unsigned long long)c->tx);
		scheck(b, c->id, s->rd, (size_t)r, "guest -> host");
		T("host: socket %u read %zd (conn %d, now %llu)", (unsigned)(s - H), r, s->gc,
		  (unsigned long long)(s->rd + (uint64_t)r));
		s->rd += (uint64_t)r;
		t_bytes_out += (uint64_t)r;
		max -= (size_t)r;
	}
	return false;
}

static unsigned inq(int fd)
{
	int n = 0;

	if (ioctl(fd, FIONREAD, &n))
		fail("FIONREAD: %s", strerror(errno));
	return (unsigned)n;
}

static bool hung_up(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	if (poll(&p, 1, 0) < 0)
		fail("poll: %s", strerror(errno));
	return p.revents & POLLHUP;
}

static int pick_hs(bool (*ok)(const struct hsock *))
{
	unsigned n = 0, pick;

	for (unsigned i = 0; i < nhs; i++)
		n += H[i].st == H_LIVE && ok(&H[i]);
	if (!n)
		return -1;
	pick = (unsigned)below(n);
	for (unsigned i = 0; i < nhs; i++)
		if (H[i].st == H_LIVE && ok(&H[i]) && !pick--)
			return (int)i;
	return -1;
}

static bool any_hs(const struct hsock *s)
{
	(void)s;
	return true;
}

static bool writable_hs(const struct hsock *s)
{
	return !s->shut_wr && (s->client ? s->line == 2 && !s->bad : s->gc >= 0);
}

static bool partial_hs(const struct hsock *s)
{
	return s->client && s->line == 1;
}

static int pick_gc(bool (*ok)(const struct gconn *))
{
	unsigned n = 0, pick;

	for (unsigned i = 0; i < ngc; i++)
		n += ok(&G[i]);
	if (!n)
		return -1;
	pick = (unsigned)below(n);
	for (unsigned i = 0; i < ngc; i++)
		if (ok(&G[i]) && !pick--)
			return (int)i;
	return -1;
}

static bool open_gc(const struct gconn *c)
{
	return c->st == G_OPEN;
}

static bool requested_gc(const struct gconn *c)
{
	return c->st == G_REQUESTED && !c->answered;
}

static bool sendable_gc(const struct gconn *c)
{
	return c->st == G_OPEN && !c->shut_send && !c->exceed;
}

/* What the device holds for @c, when it can be known: what the guest sent minus what the
 * host socket took. -1 when unknown. */
static int64_t held(const struct gconn *c)
{
	const struct hsock *s = hs_of(c);

	if (!s || s->st != H_LIVE || s->loose || (s->client && !s->ok))
		return -1;
	return (int64_t)(c->tx - s->rd - inq(s->fd));
}

/* ---- steps ---- */

static void a_post_rx(void)
{
	unsigned n = 1 + (unsigned)below(6);
	bool any = false;

	for (unsigned i = 0; i < n; i++) {
		uint32_t len;

		switch (below(10)) {
		case 0:
			len = (uint32_t)below(VSOCK_HDR_LEN); /* under the header: dropped */
			break;
		case 1:
			len = VSOCK_HDR_LEN + (uint32_t)below(8);
			break;
		case 2:
		case 3:
			len = VSOCK_HDR_LEN + (uint32_t)below(RXREG_SZ);
			break;
		default:
			len = VSOCK_HDR_LEN + 4096;
		}
		any |= post_rx_one(len);
	}
	if (any)
		notify(RXQ);
}

static void a_guest_connect(void)
{
	struct gconn *c;
	unsigned li = (unsigned)below(NLIS + 1);
	uint32_t hport = li < NLIS ? LPORT0 + li : LPORT0 + NLIS + (uint32_t)below(3);

	if (ngc == MAXGC)
		return;
	c = &G[ngc];
	*c = (struct gconn){.st = G_CONNECTING,
			    .gport = GPORT0 + ngc,
			    .hport = hport,
			    .id = next_id++,
			    .hs = -1,
			    .buf = one_in(8) ? (uint32_t)below(64) : (uint32_t)(1024 + below(BUF)),
			    .lis = -1};
	if (!gop(c, VSOCK_OP_REQUEST, 0))
		return;
	ngc++;
	m_guest_requests++;
	if (li < NLIS && L[li].fd >= 0) {
		c->lis = (int)li;
		L[li].q[L[li].qt++ % MAXGC] = (int)(c - G);
	} else {
		m_nolistener_min++;
	}
}

static void a_answer(void)
{
	int i = pick_gc(requested_gc);
	struct gconn *c;
	unsigned r = (unsigned)below(10);

	if (i < 0)
		return;
	c = &G[i];
	if (r < 7) {
		if (!gop(c, VSOCK_OP_RESPONSE, 0))
			return;
		c->answered = true;
		c->st = G_OPEN;
		t_conns++;
	} else if (r < 9) {
		if (!gop(c, VSOCK_OP_RST, 0))
			return;
		c->answered = true;
		close_gc(c);
	} else {
		c->answered = true; /* silence: the device gives up after VSOCK_CONNECT_MS */
		c->chaotic = true;
	}
}

static void a_rw(void)
{
	static uint8_t p[70000];
	int i = pick_gc(sendable_gc);
	struct gconn *c;
	uint32_t credit, n;
	int64_t h;
	struct vsock_hdr hd;

	if (i < 0)
		return;
	c = &G[i];
	credit = vsock_peer_free(BUF, c->dev_fwd, (uint32_t)c->tx);
	switch (slow_host ? below(2) : below(8)) {
	case 0:
		n = (uint32_t)below(VSOCK_MAX_PKT + 1);
		break;
	case 1:
	case 2:
		n = (uint32_t)below(16384);
		break;
	default:
		n = (uint32_t)below(2048);
	}
	h = held(c);
	if (slow_host && credit < VSOCK_MAX_PKT && h >= 0 && one_in(4))
		n = credit + 1 + (uint32_t)below(one_in(2) ? 64 : 16384); /* just beyond */
	if (n > VSOCK_MAX_PKT)
		n = VSOCK_MAX_PKT;
	if (n > credit) {
		/* Beyond the credit it heard: now and then, and only where the model can judge. */
		if (!one_in(3) || h < 0 || c->chaotic)
			n = credit;
		else
			c->exceed = true;
	}
	if (c->exceed) {
		/* The device must reset it if even its true room was short. */
		c->must_rst = (uint64_t)h + n > BUF;
		t_exceed++;
	}
	sfill(p, c->id, c->tx, n);
	hd = ghdr(c, VSOCK_OP_RW);
	hd.len = n;
	if (!gsend(&hd, p, n, 0)) {
		c->exceed = c->must_rst = false;
		return;
	}
	told(c);
	c->tx += n;
	if (c->exceed) {
		m_may_rst_credit++;
		m_must_rst_credit += c->must_rst;
	}
}

static void a_credit_update(void)
{
	int i = pick_gc(open_gc);
	struct gconn *c;

	if (i < 0)
		return;
	c = &G[i];
	if (one_in(4))
		c->buf = one_in(4) ? (uint32_t)below(256) : (uint32_t)(1024 + below(2 * BUF));
	if (gop(c, VSOCK_OP_CREDIT_UPDATE, 0))
		c->asked = false;
}

static void a_credit_request(void)
{
	int i = pick_gc(open_gc);

	if (i >= 0 && !linux_like)
		gop(&G[i], VSOCK_OP_CREDIT_REQUEST, 0);
}

static void a_shutdown(void)
{
	int i = pick_gc(open_gc);
	struct gconn *c;
	uint32_t f = 1 + (uint32_t)below(3);

	if (i < 0)
		return;
	c = &G[i];
	if (!gop(c, VSOCK_OP_SHUTDOWN, f))
		return;
	if (f & VSOCK_SHUTDOWN_RCV) {
		c->shut_rcv = true;
		c->quiet_from = step_now + 1;
	}
	if (f & VSOCK_SHUTDOWN_SEND)
		c->shut_send = true;
}

static void a_rst(void)
{
	int i = pick_gc(open_gc);

	if (i >= 0 && gop(&G[i], VSOCK_OP_RST, 0))
		close_gc(&G[i]);
}

/* Packets the device must drop or answer with RST, on ports nobody uses. */
static void a_stray(void)
{
	struct gconn x = {.gport = 50000 + (uint32_t)below(1000),
			  .hport = 60000 + (uint32_t)below(1000),
			  .buf = 4096};
	struct vsock_hdr h = ghdr(&x, (uint16_t)(1 + below(7)));
	uint8_t p[64] = {0};
	unsigned k = (unsigned)below(8);

	if (h.op == VSOCK_OP_REQUEST)
		h.op = VSOCK_OP_RW;
	switch (k) {
	case 0: /* a short header */
		if (gsend(&h, NULL, 0, 1 + (uint32_t)below(VSOCK_HDR_LEN - 1)))
			m_malformed++;
		return;
	case 1:
		h.src_cid = gcid + 1 + below(5);
		break;
	case 2:
		h.dst_cid = one_in(2) ? gcid : 7;
		break;
	case 3:
		h.type = (uint16_t)(2 + below(3));
		break;
	case 4:
		h.op = one_in(2) ? 0 : (uint16_t)(8 + below(100));
		break;
	case 5:
		h.op = VSOCK_OP_RW;
		h.len = 100; /* the chain holds 10 */
		if (gsend(&h, p, 10, 0))
			m_stray_sent++;
		return;
	default:
		h.len = h.op == VSOCK_OP_RW ? 64 : 0;
	}
	if (!gsend(&h, p, h.len, 0))
		return;
	if (k == 1 || k == 2)
		m_malformed++;
	else if (h.op != VSOCK_OP_RST)
		m_stray_sent++; /* answered with RST: for no connection, or malformed (an RST never) */
	if (k >= 6 && (h.op == VSOCK_OP_RW || h.op == VSOCK_OP_RESPONSE))
		m_unknown_min++;
	else if (k >= 6 && h.op != VSOCK_OP_RST)
		m_late_min++;
}

/* Chaos runs: packets that break the protocol on ports that may be in use. */
static void a_rule_breaker(void)
{
	static uint8_t p[VSOCK_MAX_PKT + 200];
	struct gconn x = {.buf = (uint32_t)below(2 * BUF)};
	struct vsock_hdr h;
	int i = ngc ? (int)below(ngc) : -1;

	if (i >= 0 && one_in(2)) {
		x.gport = G[i].gport;
		x.hport = one_in(2) ? G[i].hport : VSOCK_PORT_FIRST + (uint32_t)below(8);
		G[i].chaotic = true;
	} else {
		x.gport = one_in(2) ? CPORT0 + (uint32_t)below(next_id + 1) : (uint32_t)below(4);
		x.hport = one_in(2) ? VSOCK_PORT_FIRST + (uint32_t)below(8) : (uint32_t)below(4);
		for (unsigned k = 0; k < ngc; k++)
			if (G[k].gport == x.gport)
				G[k].chaotic = true;
	}
	h = ghdr(&x, (uint16_t)below(9));
	h.flags = (uint32_t)below(8);
	h.fwd_cnt = (uint32_t)next();
	switch (below(4)) {
	case 0:
		h.len = VSOCK_MAX_PKT + (uint32_t)below(100);
		gsend(&h, p, h.len, 0);
		return;
	case 1:
		h.len = (uint32_t)below(5000);
		gsend(&h, p, h.len, one_in(2) ? VSOCK_HDR_LEN + (uint32_t)below(h.len + 1) : 0);
		return;
	default:
		h.len = 0;
		gsend(&h, NULL, 0, 0);
	}
}

static void a_new_client(void)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	struct hsock *s;
	int fd, i;
	unsigned k = (unsigned)below(20);

	if (live_hs() >= LIVEHS)
		return;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", uds);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		if (fd >= 0)
			close(fd);
		return; /* the device's backlog is full: it accepts on its next turn */
	}
	i = hs_new(fd, true);
	if (i < 0)
		return;
	s = &H[i];
	s->port = CPORT0 + s->id;
	snprintf(s->text, sizeof(s->text), "CONNECT %u\n", s->port);
	if (k < 2) {
		static const char *bad[] = {"CONNECT x\n", "HELLO 5\n", "CONNECT\n",
					    "CONNECT 99999999999\n", "CONNECT 5 6\n", "\n",
					    "connect 5\n", "CONNECT 123456789012345678901234567890"};
		snprintf(s->text, sizeof(s->text), "%s", bad[below(8)]);
		s->bad = true;
		m_bad_lines++;
		m_bad_lines_max++;
		t_bad_lines++;
	} else if (k == 2) {
		s->text_len = 0; /* silent */
		return;
	} else if (k == 3) {
		hs_close(s); /* connects and goes: the device may count it as a bad line */
		m_bad_lines_max++;
		return;
	}
	s->text_len = (unsigned)strlen(s->text);
	if (k == 4 && !known_only && !s->bad) {
		s->sent = 1 + (unsigned)below(s->text_len - 1);
		s->line = 1;
	} else {
		s->sent = s->text_len;
		s->line = 2;
	}
	if (write(fd, s->text, s->sent) != (ssize_t)s->sent)
		fail("client write: %s", strerror(errno)); /* just connected: room for a line */
	T("host: client socket %d writes \"%.*s\"", i, (int)s->sent, s->text);
	/* Now and then bytes right behind the line: the stream's first. */
	if (s->line == 2 && !s->bad && one_in(4)) {
		uint8_t b[100];
		unsigned n = 1 + (unsigned)below(sizeof(b));

		sfill(b, s->id, 0, n);
		if (write(fd, b, n) == (ssize_t)n)
			s->wr = n;
	}
}

static void a_finish_line(void)
{
	int i = pick_hs(partial_hs);
	struct hsock *s;

	if (i < 0)
		return;
	s = &H[i];
	/* The device may have closed it (VSOCK_CONNECT_MS, a reset): EPIPE is fine. */
	if (write(s->fd, s->text + s->sent, s->text_len - s->sent) !=
		    (ssize_t)(s->text_len - s->sent) &&
	    errno != EPIPE && errno != ECONNRESET)
		fail("client write: %s", strerror(errno));
	s->sent = s->text_len;
	s->line = 2;
}

static void a_read(void)
{
	int i = pick_hs(any_hs);

	if (i >= 0)
		hs_read(&H[i], one_in(3) ? 1 + below(100) : 1 << 20);
}

/* A slow host: a little from one socket. */
static void a_read_some(void)
{
	int i = pick_hs(any_hs);

	if (i >= 0)
		hs_read(&H[i], 1 + below(8192));
}

static void a_write(void)
{
	static uint8_t b[1 << 17];
	int i = pick_hs(writable_hs);
	struct hsock *s;
	size_t n = one_in(4) ? below(sizeof(b)) : below(3000);
	ssize_t r;

	if (i < 0)
		return;
	s = &H[i];
	sfill(b, s->id, s->wr, n);
	r = send(s->fd, b, n, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (r > 0)
		s->wr += (uint64_t)r;
	T("host: socket %d writes %zd of %zu", i, r, n);
}

static void a_shut_wr(void)
{
	int i = pick_hs(writable_hs);

	if (i >= 0) {
		T("host: socket %d SHUT_WR", i);
		shutdown(H[i].fd, SHUT_WR);
		H[i].shut_wr = true;
	}
}

static void a_close(void)
{
	int i = pick_hs(any_hs);

	if (i >= 0) {
		T("host: socket %d closed (%s, line %d, conn %d)", i, H[i].client ? "client" : "accepted",
		  H[i].line, H[i].gc);
		if (H[i].client && H[i].line < 2)
			m_bad_lines_max++; /* gone before its line ended: the device may call it bad */
		hs_close(&H[i]);
	}
}

static void accept_from(unsigned li)
{
	struct lis *l = &L[li];
	struct gconn *c;
	int fd, i;

	if (l->fd < 0 || l->qh == l->qt || live_hs() >= LIVEHS)
		return;
	c = &G[l->q[l->qh % MAXGC]];
	if (c->st == G_CONNECTING)
		return; /* its outcome is not known yet */
	l->qh++;
	if (!c->got_response) {
		/* Refused: nothing in the queue for it -- unless the device connected and the
		 * connection died before the guest heard RESPONSE (a failed watch, chaos). */
		if (inject || chaos || c->chaotic)
			l->ambiguous = true;
		return;
	}
	fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0 && !l->ambiguous)
		fail("port %u: the guest got a RESPONSE but there is nothing to accept (%s)",
		     LPORT0 + li, strerror(errno));
	if (fd < 0)
		return;
	i = hs_new(fd, false);
	if (i < 0)
		return;
	H[i].gc = (int)(c - G);
	c->hs = i;
	T("host: port %u accepts socket %d for conn %d (ports %u -> %u)", LPORT0 + li, i,
	  (int)(c - G), c->gport, c->hport);
	if (l->ambiguous) {
		H[i].loose = true;
		c->chaotic = true;
	}
}

static void a_accept(void)
{
	accept_from((unsigned)below(NLIS));
}

static void a_listener(void)
{
	unsigned li = (unsigned)below(NLIS);

	T("host: listener %u %s", LPORT0 + li, L[li].fd >= 0 ? "closed" : "opened");
	if (L[li].fd >= 0)
		lis_close(li);
	else
		lis_open(li);
}

static void a_reset(void)
{
	sync_dev(); /* what the device used before goes to the model first */
	if (m_stray_rst > m_stray_sent)
		fail("%llu stray RSTs for %llu packets", (unsigned long long)m_stray_rst,
		     (unsigned long long)m_stray_sent);
	m_stray_sent = m_stray_rst; /* those still owed go with the old driver */
	wr(VIRTIO_MMIO_STATUS, 0);
	live = false;
	sync_dev();
	/* Every connection is gone, every host socket of the device's closed. */
	for (unsigned i = 0; i < ngc; i++)
		if (G[i].st != G_FREE && G[i].st != G_CLOSED) {
			G[i].st = G_CLOSED;
			G[i].quiet_from = (unsigned long)-1;
			G[i].chaotic = true;
		}
	/* (A client still in its handshake had no connection with the guest: it may stay.) */
	for (unsigned i = 0; i < nhs; i++)
		if (H[i].st == H_LIVE && H[i].gc >= 0 && !hung_up(H[i].fd))
			fail("a host socket (%s, line %d) is still open after the device's reset",
			     H[i].client ? "client" : "accepted", H[i].line);
	/* The old driver's connections still queued at the listeners: accepted, all ended. */
	for (unsigned i = 0; i < NLIS; i++) {
		int fd;

		for (; L[i].qh != L[i].qt; L[i].qh++)
			G[L[i].q[L[i].qh % MAXGC]].lis = -2;
		while (L[i].fd >= 0 && (fd = accept4(L[i].fd, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
			if (!hung_up(fd))
				fail("a connection queued at port %u is still open after the reset",
				     LPORT0 + i);
			close(fd);
		}
	}
	t_resets++;
	driver_up();
}

/* ---- what must hold ---- */

static bool all_delivered(void)
{
	/* A receive chain left over: the device owes the guest nothing it could send. */
	return live && outstanding(RXQ) > 0;
}

static void check(void)
{
	struct vsock_counters k = cnt();
	uint64_t open = 0, held_sum = 0, unknown = 0;

	if (k.buffered_bytes > k.buffered_max)
		fail("buffered_bytes %llu above buffered_max %llu",
		     (unsigned long long)k.buffered_bytes, (unsigned long long)k.buffered_max);
	if (k.buffered_max > t_buf_max)
		t_buf_max = k.buffered_max;
	if (k.conns_open > VSOCK_MAX_CONNS)
		fail("conns_open %llu", (unsigned long long)k.conns_open);
	if (dev.t.st.needs_reset && !chaos)
		fail("the device needs a reset though no ring rule was broken");
	if (k.rx_packets_count != m_rx_pkts)
		fail("rx_packets_count %llu, the guest got %llu", (unsigned long long)k.rx_packets_count,
		     (unsigned long long)m_rx_pkts);
	if (k.rx_bytes_count != m_rx_bytes)
		fail("rx_bytes_count %llu, the guest got %llu", (unsigned long long)k.rx_bytes_count,
		     (unsigned long long)m_rx_bytes);
	if (!all_delivered())
		return;
	/* The device owes the guest nothing: its RSTs arrived, the views can be compared. */
	for (unsigned i = 0; i < ngc; i++) {
		struct gconn *c = &G[i];
		int64_t h;

		if (c->st != G_OPEN)
			continue;
		open++;
		h = held(c);
		if (h > (int64_t)BUF && !c->exceed)
			fail("%lld bytes held for one connection (ports %u -> %u)", (long long)h,
			     c->gport, c->hport);
		if (h < 0 || c->exceed || c->chaotic)
			unknown++;
		else
			held_sum += (uint64_t)h;
		if (tracing && h >= 0)
			T("check: conn %u (ports %u -> %u) sent %llu, socket %d read %llu inq %u",
			  i, c->gport, c->hport, (unsigned long long)c->tx, c->hs,
			  (unsigned long long)H[c->hs].rd, inq(H[c->hs].fd));
	}
	if (k.buffered_bytes < held_sum ||
	    k.buffered_bytes > held_sum + unknown * BUF + (chaos || inject ? k.buffered_bytes : 0))
		fail("buffered_bytes %llu; the connections hold %llu and %llu more are unknown "
		     "(tx_bytes_count %llu, tx_packets_count %llu, malformed_dropped %llu, "
		     "rst_malformed %llu, host_full %llu)",
		     (unsigned long long)k.buffered_bytes, (unsigned long long)held_sum,
		     (unsigned long long)unknown, (unsigned long long)k.tx_bytes_count,
		     (unsigned long long)k.tx_packets_count, (unsigned long long)k.malformed_dropped,
		     (unsigned long long)k.rst_malformed, (unsigned long long)k.host_full);
	/* The tx queue is done too. */
	if (outstanding(TXQ) && !chaos)
		fail("%u transmit chains held with receive room to spare", outstanding(TXQ));
	if (outstanding(TXQ))
		return;
	if (k.tx_packets_count != m_tx_pkts && !chaos)
		fail("tx_packets_count %llu, the guest sent %llu", (unsigned long long)k.tx_packets_count,
		     (unsigned long long)m_tx_pkts);
	if (chaos || inject)
		return;
	if (k.malformed_dropped != m_malformed)
		fail("malformed_dropped %llu, expected %llu", (unsigned long long)k.malformed_dropped,
		     (unsigned long long)m_malformed);
	if (k.conns_open != open)
		fail("conns_open %llu, the guest has %llu open", (unsigned long long)k.conns_open,
		     (unsigned long long)open);
	if (k.conns_guest < m_conns_guest || k.conns_guest > m_guest_requests)
		fail("conns_guest %llu; the guest got %llu RESPONSEs for %llu REQUESTs",
		     (unsigned long long)k.conns_guest, (unsigned long long)m_conns_guest,
		     (unsigned long long)m_guest_requests);
	if (k.bad_connect_lines < m_bad_lines || k.bad_connect_lines > m_bad_lines_max)
		fail("bad_connect_lines %llu, %llu bad lines written (and %llu clients gone)",
		     (unsigned long long)k.bad_connect_lines, (unsigned long long)m_bad_lines,
		     (unsigned long long)(m_bad_lines_max - m_bad_lines));
	if (k.rst_credit < m_must_rst_credit || k.rst_credit > m_may_rst_credit)
		fail("rst_credit %llu; the guest went beyond its credit %llu times, %llu of them "
		     "beyond what the device could hold",
		     (unsigned long long)k.rst_credit, (unsigned long long)m_may_rst_credit,
		     (unsigned long long)m_must_rst_credit);
	if (k.rst_unknown < m_unknown_min)
		fail("rst_unknown %llu, at least %llu RW or RESPONSE packets were for no connection",
		     (unsigned long long)k.rst_unknown, (unsigned long long)m_unknown_min);
	if (k.late_packets < m_late_min)
		fail("late_packets %llu, at least %llu SHUTDOWN or credit packets were for no "
		     "connection",
		     (unsigned long long)k.late_packets, (unsigned long long)m_late_min);
	if (m_stray_rst != m_stray_sent)
		fail("%llu packets for no connection were answered with %llu RSTs",
		     (unsigned long long)m_stray_sent, (unsigned long long)m_stray_rst);
	if (k.refused_no_listener < m_nolistener_min)
		fail("refused_no_listener %llu, at least %llu REQUESTs found nobody",
		     (unsigned long long)k.refused_no_listener, (unsigned long long)m_nolistener_min);
	for (unsigned i = 0; i < ngc; i++) {
		struct gconn *c = &G[i];
		struct hsock *s = hs_of(c);

		if (c->exceed) {
			if (c->st == G_OPEN && c->must_rst)
				fail("ports %u -> %u: the guest sent beyond what the device can hold "
				     "and was not reset",
				     c->gport, c->hport);
			if (c->st == G_OPEN)
				c->exceed = false; /* taken: the credit was there */
		}
		if (!s || s->st != H_LIVE || c->chaotic)
			continue;
		if (c->st == G_OPEN && !s->shut_wr && hung_up(s->fd))
			fail("ports %u -> %u: open for the guest, but the host socket is hung up",
			     c->gport, c->hport);
		if (c->st == G_CLOSED && !hung_up(s->fd))
			fail("ports %u -> %u: closed for the guest, but the host socket is open",
			     c->gport, c->hport);
	}
	for (unsigned i = 0; i < nhs; i++) {
		struct hsock *s = &H[i];

		/* A bad line, or a client left without a connection, is closed. */
		if (s->st == H_LIVE && s->client && s->bad && !hung_up(s->fd))
			fail("a client that wrote \"%.*s\" is still open", (int)s->text_len - 1,
			     s->text);
	}
}

/* ---- the run ---- */

static void start_run(void)
{
	struct virtio_vsock_cfg cfg;
	char why[VSOCK_WHY_LEN] = "";
	int r;

	memset(mem[0], 0, SLOT);
	memset(mem[1], 0, SLOT);
	memset(G, 0, sizeof(G));
	memset(H, 0, sizeof(H));
	ngc = nhs = 0;
	next_id = 1;
	m_rx_pkts = m_rx_bytes = m_tx_pkts = m_malformed = m_bad_lines = m_bad_lines_max = 0;
	m_must_rst_credit = m_may_rst_credit = m_unknown_min = m_late_min = m_nolistener_min = 0;
	m_conns_guest = m_guest_requests = m_stray_sent = m_stray_rst = 0;
	irq_pulses = irq_seen = 0;
	dev_stopped = false;
	now_ms = 1000000;
	chaos = one_in(5);
	inject = one_in(6);
	slow_host = one_in(3);
	linux_like = one_in(2); /* its writer never asks for credit: it waits to be told */
	t_chaos += chaos;
	t_inject += inject;
	gcid = 3 + (uint32_t)below(100);
	snprintf(uds, sizeof(uds), "%s/v%lu.sock", dir, run_no);
	fds_base = count_fds();
	cfg = (struct virtio_vsock_cfg){.guest_cid = gcid, .uds_path = uds};
	r = virtio_vsock_init(&dev, &fhost, &gm, 0xd0000000, GSI, &cfg, why, sizeof(why));
	if (r)
		fail("virtio_vsock_init: %s", why);
	in_attach = true;
	if (virtio_vsock_attach(&dev))
		fail("virtio_vsock_attach failed");
	in_attach = false;
	for (unsigned i = 0; i < NLIS; i++) {
		L[i].fd = -1;
		if (!one_in(4))
			lis_open(i);
	}
	driver_up();
	T("run %lu: chaos %d, failing watches %d, slow host %d, linux-like %d, queues of %u, CID %u",
	  run_no, chaos, inject, slow_host, linux_like, qn, gcid);
	sync_dev();
}

/* Nothing stalls: with room and credit everywhere, every byte gets through. */
static void drain(void)
{
	for (unsigned round = 0; round < 2000; round++) {
		uint64_t pkts = m_rx_pkts;
		bool moved = false;

		if (!live)
			break;
		while (outstanding(RXQ) < qn / 2 && post_rx_one(VSOCK_HDR_LEN + 4096))
			;
		notify(RXQ);
		for (unsigned i = 0; i < ngc; i++) {
			struct gconn *c = &G[i];

			if (c->st == G_OPEN && !c->chaotic &&
			    (c->asked || c->rx - c->told_fwd > c->buf / 2 || c->buf < 4096)) {
				if (c->buf < 4096)
					c->buf = 65536;
				if (!gop(c, VSOCK_OP_CREDIT_UPDATE, 0))
					break;
				c->asked = false;
				moved = true;
			}
		}
		sync_dev();
		for (unsigned i = 0; i < nhs; i++) {
			uint64_t before = H[i].rd;

			if (H[i].st == H_LIVE)
				hs_read(&H[i], 1 << 20);
			moved |= H[i].rd != before;
		}
		for (unsigned i = 0; i < NLIS; i++)
			accept_from(i);
		sync_dev();
		moved |= m_rx_pkts != pkts;
		if (!moved && round > 4)
			break;
	}
	if (chaos || inject || !live)
		return;
	/* Whatever could flow has. */
	for (unsigned i = 0; i < ngc; i++) {
		struct gconn *c = &G[i];
		struct hsock *s = hs_of(c);

		if (c->st != G_OPEN || c->chaotic || !s || s->st != H_LIVE || (s->client && !s->ok))
			continue;
		t_stalls_checked++;
		if (s->rd != c->tx)
			fail("stalled: ports %u -> %u, the guest sent %llu bytes, the host read %llu "
			     "(device fwd_cnt %u)",
			     c->gport, c->hport, (unsigned long long)c->tx, (unsigned long long)s->rd,
			     c->dev_fwd);
		if (!c->shut_rcv && !c->dev_shut && c->rx != s->wr)
			fail("stalled: ports %u -> %u, the host wrote %llu bytes, the guest got %llu",
			     c->gport, c->hport, (unsigned long long)s->wr, (unsigned long long)c->rx);
		/* The host took everything: a writer waiting for credit must have been told. */
		if (!c->shut_send && !vsock_peer_free(BUF, c->dev_fwd, (uint32_t)c->tx))
			fail("stalled: ports %u -> %u, the host read all %llu bytes but the guest heard "
			     "fwd_cnt %u: no credit, its writer waits forever",
			     c->gport, c->hport, (unsigned long long)c->tx, c->dev_fwd);
	}
}

static void end_run(void)
{
	struct stat st;

	drain();
	check();
	virtio_vsock_stop(&dev);
	dev_stopped = true;
	fh_compact();
	if (fh_nlive)
		fail("%u watches or timers live after virtio_vsock_stop", fh_nlive);
	virtio_vsock_destroy(&dev);
	if (lstat(uds, &st) == 0)
		fail("%s is still there after virtio_vsock_destroy", uds);
	for (unsigned i = 0; i < nhs; i++)
		if (H[i].st == H_LIVE)
			hs_close(&H[i]);
	for (unsigned i = 0; i < NLIS; i++)
		if (L[i].fd >= 0)
			lis_close(i);
	if (count_fds() != fds_base)
		fail("%u descriptors before the device, %u after it", fds_base, count_fds());
	fh_free_all();
	t_runs++;
}

static void step(void)
{
	unsigned r = (unsigned)below(1000);

	if (r < 120)
		a_post_rx();
	else if (r < 170)
		a_guest_connect();
	else if (r < 240)
		a_answer();
	else if (r < 420)
		a_rw();
	else if (r < 470)
		a_credit_update();
	else if (r < 485)
		a_credit_request();
	else if (r < 500)
		a_shutdown();
	else if (r < 508)
		a_rst();
	else if (r < 530)
		a_stray();
	else if (r < 545) {
		if (chaos)
			a_rule_breaker();
	} else if (r < 590)
		a_new_client();
	else if (r < 610)
		a_finish_line();
	else if (r < 760) {
		if (!slow_host)
			a_read();
		else if (one_in(30))
			a_read_some();
	}
	else if (r < 860)
		a_write();
	else if (r < 868)
		a_shut_wr();
	else if (r < 885)
		a_close();
	else if (r < 945)
		a_accept();
	else if (r < 952)
		a_listener();
	else if (r < 990) {
		now_ms += 1 + below(100);
	} else if (r < 998) {
		now_ms += VSOCK_CONNECT_MS + below(1000);
		t_timeouts++;
		T("clock: +%u ms", VSOCK_CONNECT_MS);
	} else if (one_in(3)) {
		T("guest: device reset");
		a_reset();
	}
	sync_dev();
	check();
}

int main(int argc, char **argv)
{
	unsigned long steps = argc > 1 ? strtoul(argv[1], NULL, 0) : 4 * RUNLEN, done = 0;
	const char *kn = getenv("FUZZ_VSOCK_KNOWN");

	fuzz_seed(argc, argv, 2);
	seed0 = rng;
	signal(SIGPIPE, SIG_IGN); /* a write to a socket the device closed: EPIPE, not death */
	known_only = kn && *kn == '1';
	tracing = getenv("FUZZ_VSOCK_TRACE") != NULL;
	log_set_sink(quiet, NULL);
	snprintf(dir, sizeof(dir), "/tmp/fuzz-vsock-XXXXXX");
	if (!mkdtemp(dir))
		fail("mkdtemp: %s", strerror(errno));
	for (unsigned i = 0; i < 2; i++) {
		mem[i] = aligned_alloc(4096, SLOT);
		if (!mem[i])
			fail("out of memory");
		gm.slots[i] = (struct mem_slot){.id = i, .gpa = (uint64_t)i * SLOT, .size = SLOT,
						.hva = mem[i]};
	}
	gm.nslots = 2;
	for (run_no = 0; done < steps; run_no++) {
		unsigned long len = steps - done < RUNLEN ? steps - done : RUNLEN;

		run_seed = seed0;
		if (run_no) {
			uint64_t z = seed0 + run_no * 0x9e3779b97f4a7c15ull;

			z = (z ^ z >> 30) * 0xbf58476d1ce4e5b9ull;
			z = (z ^ z >> 27) * 0x94d049bb133111ebull;
			run_seed = z ^ z >> 31;
		}
		rng = run_seed ? run_seed : 1;
		step_now = 0;
		start_run();
		for (step_now = 0; step_now < len; step_now++)
			step();
		end_run();
		done += len;
	}
	printf("fuzz_vsock: %lu steps in %lu runs (seed %llu; %lu chaos, %lu with failing "
	       "watches): %lu packets to the guest, %lu from it; %llu bytes host -> guest, %llu "
	       "guest -> host; %lu connections, %lu resets, %lu beyond credit (%lu reset), %lu bad "
	       "lines, %lu clock jumps, buffered at most %llu; %lu streams checked for stalls\n",
	       done, t_runs, seed0, t_chaos, t_inject, t_pkts_in, t_pkts_out,
	       (unsigned long long)t_bytes_in, (unsigned long long)t_bytes_out, t_conns, t_resets,
	       t_exceed, t_rst_credit, t_bad_lines, t_timeouts, (unsigned long long)t_buf_max,
	       t_stalls_checked);
	free(mem[0]);
	free(mem[1]);
	free(fh_live);
	rmdir(dir);
	return 0;
}
