/*
 * The virtio-vsock workload of the test guest, on the first socket device
 * (DeviceID 19) of the command line's virtio_mmio.device= entries, written from
 * the virtio 1.2 specification (5.10 Socket Device) for hugevmm's Firecracker-style
 * hybrid vsock (devices/virtio/vsock.h): stream connections only, one at a time.
 *
 *   test=vsock [port=52] [peer_port=1024] [bad_port=peer_port+1] [bytes=300000]
 *              [wait=60] [refused=1] [bad=KIND[,KIND...]] [flood_port=bad_port+1]
 *              [irq=0|1]      (KIND: credit, hdr, flood; run in that order)
 *
 * Definitions the host side computes too:
 *   checksum  FNV-1a 32 over the received bytes in order: h = 0x811c9dc5; for each
 *             byte b: h = (h ^ b) * 0x01000193 mod 2^32 (of no bytes: 811c9dc5)
 *   pattern   the guest->host stream's byte i (from 0) is (i * 7 + 3) & 0xff
 *
 * What the guest does, and prints (each line ends "\n"; "..." stands for the fields
 * after the fixed prefix, listed where they matter):
 *  1. Sets the device up (device features: none, i.e. VERSION_1 and stream only; the
 *     ring's EVENT_IDX/INDIRECT_DESC as event_idx=/indirect= say, by default if
 *     offered), reads guest_cid from config space:
 *       "vsock cid=N ..."   (... event_idx=0|1 indirect=0|1 irq=0|1 rx_bufs=N ev_bufs=N)
 *     Keeps every rx buffer posted (a 44-byte header and 4096 bytes of payload each:
 *     even ones one descriptor, odd ones two -- 44 and 4096) and 8 event buffers (4
 *     bytes; a used one prints "vsock event id=N" and is posted again).
 *  2. host->guest (skipped with port=0): listens on `port` and says so:
 *       "vsock listening port=52"
 *     A REQUEST for any other port (or a second one while busy) is answered RST:
 *       "vsock request port=P refused"
 *     The REQUEST for `port` is answered RESPONSE (buf_alloc 65536, fwd_cnt 0):
 *       "vsock accepted port=52 peer_port=N"
 *     RW payload is consumed as it comes (checksummed and counted); a CREDIT_UPDATE
 *     goes out whenever 32 KiB were consumed since the last fwd_cnt sent, and in
 *     answer to each CREDIT_REQUEST; the device sending beyond that credit is a FAIL.
 *     At the host's SHUTDOWN(SEND) (end of stream) the guest sends one RW packet
 *     holding exactly "sum=%08x bytes=%u\n" (lowercase hex), then SHUTDOWN(RCV|SEND),
 *     waits for the device's RST, then prints:
 *       "vsock rx bytes=N sum=xxxxxxxx ..."   (... packets=P credit_updates=U)
 *     No REQUEST within wait= s (default 60) of the listening line is a FAIL. Only
 *     one connection is served: a later REQUEST, for any port, is refused.
 *  3. bad= (each kind on its own connection to CID 2 `bad_port` -- flood: `flood_port`
 *     -- which needs a listener; local ports 49153..49156; refused: "vsock connect
 *     port=P refused" then FAIL):
 *     credit  after RESPONSE, one RW packet whose len is the device's buf_alloc +
 *             4096 (header and payload in one descriptor; the payload is also beyond
 *             any device's 64 KiB packet limit, so a device may count it as either);
 *             an RST must come within 3 s, else FAIL:
 *               "vsock bad=credit len=N buf_alloc=M rst=1 needs_reset=0"
 *     hdr     an RW packet of type 3 (not stream, 16 bytes of payload), then on
 *             another connection an RW packet whose len (4096) is beyond its chain
 *             (44 + 100 bytes, one descriptor); each may be reset or dropped (2 s):
 *               "vsock bad=hdr type=3 rst=0|1 needs_reset=0"
 *               "vsock bad=hdr len=4096 payload=100 rst=0|1 needs_reset=0"
 *             a connection not reset is then closed with the guest's own RST.
 *     flood   ignores the credit: RW packets of 64 KiB back to back (each within
 *             the device's packet limit) to `flood_port`, whose host listener never
 *             reads, one in flight (each waited for), until RST (a device that keeps
 *             a host socket's overflow within the credit it gave must reset:
 *             hugevmm's rst_credit; sent= is what it took, about the host socket's
 *             buffer + 256 KiB); no RST within 64 MiB sent (+3 s) is a FAIL:
 *               "vsock bad=flood sent=N buf_alloc=M rst=1 needs_reset=0"
 *     DEVICE_NEEDS_RESET after any of them is a FAIL (these break no ring rule).
 *  4. guest->host (skipped with peer_port=0): REQUEST from local port 49152 to CID 2
 *     `peer_port`. RST instead of RESPONSE (no listener at <uds_path>_<peer_port>):
 *       "vsock connect port=P refused"
 *     then on to step 5 with refused=1, else FAIL. With refused=1 a RESPONSE is a
 *     FAIL. On RESPONSE:
 *       "vsock connected port=P buf_alloc=M"
 *     then `bytes` bytes of the pattern in RW packets of 1..4096 bytes (sizes cycle),
 *     never beyond the device's credit (buf_alloc - (sent - fwd_cnt), from the
 *     latest header of each packet it sent); out of credit it sends CREDIT_REQUEST
 *     (at most one per 50 ms) and waits; then SHUTDOWN(RCV|SEND), waits for RST:
 *       "vsock tx bytes=N ..."   (... packets=P credit_requests=R)
 *  5. Every transmit chain must have come back; with irq=1 an interrupt must have
 *     come. Then "testguest: PASS".
 * Waits are bounded: 10 s without any packet from the device while waiting for one
 * (the first REQUEST: wait= s; an RST after our SHUTDOWN: 5 s) is a FAIL naming what
 * was awaited. Packets are checked: header whole, payload within the buffer written,
 * src_cid 2, dst_cid ours, type stream (an RST may carry another), payload only on RW
 * -- else FAIL.
 *
 * The host side (the L1 case), for `test=vsock bytes=B` and the device configured
 * with uds_path U (guest_cid any >= 3):
 *  a. Before boot: listen (AF_UNIX, SOCK_STREAM) on "U_1024" (peer_port); with bad=
 *     credit or hdr also on "U_1025" (bad_port), accepting connections as they come;
 *     with bad=flood also on "U_1026" (flood_port), never reading from it (accepting
 *     is optional: the device's connect completes from the backlog).
 *  b. Wait for the console line "vsock listening port=52".
 *  c. (optional, before d) connect to U, write "CONNECT 53\n": the socket is closed
 *     without an "OK" line; the guest prints "vsock request port=53 refused".
 *  d. Connect to U, write "CONNECT 52\n", read the line "OK <n>\n". Write M bytes of
 *     anything (the guest gives 64 KiB of credit and keeps consuming), then
 *     shutdown(SHUT_WR) -- not close(). Read to EOF: exactly "sum=%08x bytes=%u\n"
 *     with the FNV-1a 32 of the M bytes and M; the guest prints
 *     "vsock rx bytes=M sum=%08x ...".
 *  e. With bad=: on U_1025 accept each connection (1 for credit, 2 for hdr) and read
 *     until EOF or ECONNRESET, ignoring what comes (nothing is expected); the lines
 *     of step 3 appear. hugevmm counts credit and hdr as rst_malformed (credit's
 *     packet is over its 64 KiB VSOCK_MAX_PKT too), flood as rst_credit.
 *  f. On U_1024 accept the guest's connection and read until EOF, promptly (the
 *     guest fails after 10 s without credit): exactly B bytes, byte i = (i*7+3)&0xff.
 *     The guest prints "vsock tx bytes=B ..." and "testguest: PASS" and exits with
 *     status 0 (debug-exit port 0xf4).
 *  Without a listener on U_1024 (and refused=1): "vsock connect port=1024 refused",
 *  then PASS.
 *
 * Driver options as for the other virtio workloads: irq=0|1 (wait by polling the used
 * rings, or halt until an interrupt or the ~10 ms wake-up), event_idx=, indirect=
 * (indirect=1: every chain through an indirect table), qsize=N.
 */
#include "chase.h"
#include "guest.h"
#include "virtio.h"

#define HOST_CID  2u
#define HDR       44u
#define RX_PAY    4096u
#define RX_STRIDE 4160u
#define RX_SLOTS  32
#define TX_PAY    4096u
#define TX_STRIDE 4160u
#define TX_SLOTS  16
#define EV_SLOTS  8
#define NO_SLOT   0xff
#define BUF_ALLOC (64u * 1024u)   /* our receive buffer per connection, as told */
#define UPDATE_AT (BUF_ALLOC / 2) /* consumed since the last fwd_cnt sent: tell */
#define STEP_MS   10000u          /* at most this long without a packet while waiting */
#define ALL_MS    600000u         /* and at most this long in all, for any one wait */
#define LPORT_TX  49152u
#define LPORT_BAD 49153u
#define BAD_LEN   4096u /* bad=hdr: the len claimed */
#define BAD_CHAIN 100u  /* bad=hdr: the payload the chain holds */
#define BAD_MAX   (4u << 20)
#define FLOOD_PKT (64u * 1024u) /* bad=flood: each packet's payload (Linux's largest) */
#define FLOOD_MAX (64ull << 20) /* bad=flood: no RST after this much is a FAIL */

#define TYPE_STREAM 1u
#define SHUT_RCV    1u
#define SHUT_SEND   2u

enum {
	OP_INVALID,
	OP_REQUEST,
	OP_RESPONSE,
	OP_RST,
	OP_SHUTDOWN,
	OP_RW,
	OP_CREDIT_UPDATE,
	OP_CREDIT_REQUEST,
};

/* struct virtio_vsock_hdr: little-endian, as x86 stores it. */
struct hdr {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port, len;
	uint16_t type, op;
	uint32_t flags, buf_alloc, fwd_cnt;
} __attribute__((packed));
_Static_assert(sizeof(struct hdr) == HDR, "the vsock header is 44 bytes");

/* The one connection. Counters wrap as the spec's do (32 bits). */
struct conn {
	bool used;       /* a connection (or a REQUEST of ours) is being tracked */
	bool requested;  /* the device's REQUEST for our listening port came */
	bool connecting; /* our REQUEST is out */
	bool established, reset, peer_eof, peer_norcv, shut_sent, need_update;
	uint32_t lport, pport; /* ours, the device's */
	uint32_t peer_buf_alloc, peer_fwd_cnt, tx_cnt;
	uint32_t fwd_cnt, fwd_told; /* consumed; the last fwd_cnt we sent */
	uint64_t rx_bytes, rx_pkts, tx_bytes, tx_pkts, updates_sent, requests_sent;
	uint32_t sum;
};

static struct virtio_dev *dev;
static struct virtq *rxq, *txq, *evq;
static bool ind;
static uint64_t hz, cid;
static uint8_t *rx_mem, *tx_mem;
static uint8_t rx_slot_of[VIRTQ_MAX_SIZE], tx_slot_of[VIRTQ_MAX_SIZE], ev_slot_of[VIRTQ_MAX_SIZE];
static uint8_t tx_free[TX_SLOTS];
static unsigned ntx_free, nrx_posted;
static uint32_t ev_bufs[EV_SLOTS];
static uint32_t listen_port; /* 0: not listening */
static struct conn c;
static struct {
	uint32_t sport, dport;
} pending_rst[16];
static unsigned npending;
static uint64_t packets_seen, split_tx;

static void put_kv(const char *key, uint64_t v)
{
	putc_(' ');
	puts_(key);
	putc_('=');
	putu(v);
}

/* @v as 8 lowercase hex digits at @out; returns 8. */
static unsigned fmt_hex8(char *out, uint32_t v)
{
	static const char hex[] = "0123456789abcdef";

	for (int i = 0; i < 8; i++)
		out[i] = hex[(v >> (28 - 4 * i)) & 0xf];
	return 8;
}

/* @v in decimal at @out; returns the digits written. */
static unsigned fmt_u(char *out, uint64_t v)
{
	char d[20];
	unsigned n = 0, k = 0;

	do {
		d[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		out[k++] = d[--n];
	return k;
}

static unsigned fmt_s(char *out, const char *s)
{
	unsigned n = (unsigned)slen(s);

	memcpy(out, s, n);
	return n;
}

static uint64_t ms_cycles(uint64_t ms)
{
	return hz / 1000 * ms;
}

static void put_status(void)
{
	puts_(" (status ");
	putx(vio_read(dev, VIO_STATUS));
	puts_(")\n");
}

/* ---- rings ---- */

static void rx_post(uint8_t slot)
{
	uint64_t a = (uint64_t)(uintptr_t)(rx_mem + (uint64_t)slot * RX_STRIDE);
	struct vbuf b[2] = {{a, HDR + RX_PAY, true}, {a + HDR, RX_PAY, true}};
	int head;

	if (slot & 1)
		b[0].len = HDR; /* header and payload in descriptors of their own */
	head = virtq_add(rxq, b, (slot & 1) ? 2 : 1, ind);
	if (head < 0)
		fail("vsock: the rx ring has no room for a buffer it held before");
	rx_slot_of[head] = slot;
}

static void ev_post(unsigned slot)
{
	struct vbuf b = {(uint64_t)(uintptr_t)&ev_bufs[slot], 4, true};
	int head = virtq_add(evq, &b, 1, ind);

	if (head < 0)
		fail("vsock: the event ring has no room for a buffer it held before");
	ev_slot_of[head] = (uint8_t)slot;
}

static bool tx_reclaim(void)
{
	uint32_t id, len;
	bool any = false;

	while (virtq_pop(txq, &id, &len)) {
		if (tx_slot_of[id] != NO_SLOT)
			tx_free[ntx_free++] = tx_slot_of[id];
		any = true;
	}
	return any;
}

/* The checks of a packet the device wrote: anything off is the device's bug. */
static void check_rx(const struct hdr *h, uint32_t used_len)
{
	const char *why = NULL;

	if (used_len < HDR)
		why = "a used rx buffer shorter than the 44-byte header";
	else if (h->len > RX_PAY || HDR + h->len > used_len)
		why = "a packet whose len is beyond what the device wrote";
	else if (h->src_cid != HOST_CID)
		why = "a packet whose src_cid is not 2 (the host)";
	else if (h->dst_cid != cid)
		why = "a packet whose dst_cid is not ours";
	else if (h->type != TYPE_STREAM && h->op != OP_RST)
		why = "a packet whose type is not stream (1)"; /* an RST may echo a bad type */
	else if (h->len && h->op != OP_RW)
		why = "payload on a packet that is not RW";
	if (!why)
		return;
	puts_("vsock: bad packet op=");
	putu(h->op);
	put_kv("type", h->type);
	put_kv("len", h->len);
	put_kv("used_len", used_len);
	put_kv("src_cid", h->src_cid);
	put_kv("dst_cid", h->dst_cid);
	puts_("\n");
	fail(why);
}

static void queue_rst(uint32_t sport, uint32_t dport)
{
	if (npending < sizeof(pending_rst) / sizeof(pending_rst[0]))
		pending_rst[npending++] = (typeof(pending_rst[0])){sport, dport};
}

/* FNV-1a 32. */
static uint32_t fnv1a(uint32_t h, const uint8_t *p, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x01000193u;
	return h;
}

/* A packet from the device: only state changes here; replies go out from flush(). */
static void rx_packet(const struct hdr *h, const uint8_t *pay)
{
	packets_seen++;
	if (c.used && h->dst_port == c.lport && h->src_port == c.pport && !c.reset) {
		if (h->op != OP_RST && h->op != OP_REQUEST) {
			c.peer_buf_alloc = h->buf_alloc;
			c.peer_fwd_cnt = h->fwd_cnt;
			if ((int32_t)(c.tx_cnt - c.peer_fwd_cnt) < 0)
				fail("vsock: the device's fwd_cnt counts more bytes than we sent");
		}
		switch (h->op) {
		case OP_RESPONSE:
			if (!c.connecting || c.established)
				fail("vsock: a RESPONSE on a connection that asked for none");
			c.established = true;
			return;
		case OP_RST:
			c.reset = true;
			return;
		case OP_SHUTDOWN:
			if (!c.established)
				fail("vsock: a SHUTDOWN before the connection was set up");
			c.peer_eof |= (h->flags & SHUT_SEND) != 0;
			c.peer_norcv |= (h->flags & SHUT_RCV) != 0;
			return;
		case OP_RW:
			if (!c.established)
				fail("vsock: RW before the connection was set up");
			if (c.peer_eof)
				fail("vsock: RW after the device's SHUTDOWN(SEND)");
			c.fwd_cnt += h->len; /* consumed at once */
			if (c.fwd_cnt - c.fwd_told > BUF_ALLOC) {
				puts_("vsock: received ");
				putu(c.fwd_cnt - c.fwd_told);
				puts_(" bytes since fwd_cnt was last sent, with buf_alloc ");
				putu(BUF_ALLOC);
				puts_("\n");
				fail("vsock: the device sent beyond the credit we gave");
			}
			c.sum = fnv1a(c.sum, pay, h->len);
			c.rx_bytes += h->len;
			c.rx_pkts++;
			return;
		case OP_CREDIT_UPDATE:
			return;
		case OP_CREDIT_REQUEST:
			c.need_update = true;
			return;
		case OP_REQUEST:
			fail("vsock: a second REQUEST on an open connection");
		default:
			puts_("vsock: op ");
			putu(h->op);
			puts_("\n");
			fail("vsock: a packet of an unknown op");
		}
	}
	if (h->op == OP_REQUEST && listen_port && h->dst_port == listen_port && !c.used) {
		c = (struct conn){.used = true,
				  .requested = true,
				  .lport = h->dst_port,
				  .pport = h->src_port,
				  .peer_buf_alloc = h->buf_alloc,
				  .peer_fwd_cnt = h->fwd_cnt,
				  .sum = 0x811c9dc5u};
		return;
	}
	if (h->op == OP_REQUEST) {
		puts_("vsock request port=");
		putu(h->dst_port);
		puts_(" refused\n");
	}
	/* Nothing here for it: RST (never to an RST). */
	if (h->op != OP_RST)
		queue_rst(h->dst_port, h->src_port);
}

/* Take what the device gave back on all three queues; true when anything was there. */
static bool drain(void)
{
	bool any = false, posted = false;
	uint32_t id, len;

	while (virtq_pop(rxq, &id, &len)) {
		uint8_t slot = rx_slot_of[id];
		const uint8_t *buf = rx_mem + (uint64_t)slot * RX_STRIDE;
		struct hdr h;

		memcpy(&h, buf, HDR);
		check_rx(&h, len);
		rx_packet(&h, buf + HDR);
		rx_post(slot);
		posted = any = true;
	}
	if (posted)
		virtq_kick(rxq);
	posted = false;
	while (virtq_pop(evq, &id, &len)) {
		puts_("vsock event id=");
		putu(ev_bufs[ev_slot_of[id]]);
		puts_("\n");
		ev_post(ev_slot_of[id]);
		posted = any = true;
	}
	if (posted)
		virtq_kick(evq);
	tx_reclaim();
	return any;
}

/* Until something is used (an interrupt or the ~10 ms wake-up), or a moment when polling. */
static void idle(void)
{
	if (!dev->use_irq) {
		__asm__ volatile("pause");
		return;
	}
	__asm__ volatile("cli" : : : "memory");
	if (virtq_has_used(rxq) || virtq_has_used(txq) || virtq_has_used(evq))
		__asm__ volatile("sti" : : : "memory");
	else
		__asm__ volatile("sti; hlt" : : : "memory");
}

/* ---- sending ---- */

/* A free transmit slot and room in the ring, waiting for chains to come back (the
 * device needs no rx buffer for that). */
static uint8_t tx_get(void)
{
	uint64_t t0 = chase_rdtsc();

	for (;;) {
		tx_reclaim();
		if (ntx_free && txq->nfree)
			return tx_free[--ntx_free];
		drain();
		if (chase_rdtsc() - t0 > ms_cycles(STEP_MS)) {
			puts_("vsock: no transmit buffer came back in 10 s");
			put_status();
			fail("vsock: the device does not give transmit buffers back");
		}
		idle();
	}
}

/* Post slot @s holding @h and @h->len bytes of payload after it: one descriptor, or
 * every other packet with payload two (header, payload) when the ring has the room. */
static void tx_post(uint8_t s, const struct hdr *h)
{
	uint8_t *p = tx_mem + (uint64_t)s * TX_STRIDE;
	uint64_t a = (uint64_t)(uintptr_t)p;
	struct vbuf b[2] = {{a, HDR + h->len, false}, {a + HDR, h->len, false}};
	bool split = h->len && (split_tx++ & 1) && (ind || txq->nfree >= 2);
	int head;

	memcpy(p, h, HDR);
	if (split)
		b[0].len = HDR;
	head = virtq_add(txq, b, split ? 2 : 1, ind);
	if (head < 0)
		fail("vsock: the tx ring is full with a transmit slot free");
	tx_slot_of[head] = s;
	virtq_kick(txq);
}

static struct hdr conn_hdr(uint16_t op, uint32_t flags, uint32_t len)
{
	c.fwd_told = c.fwd_cnt;
	return (struct hdr){.src_cid = cid,
			    .dst_cid = HOST_CID,
			    .src_port = c.lport,
			    .dst_port = c.pport,
			    .len = len,
			    .type = TYPE_STREAM,
			    .op = op,
			    .flags = flags,
			    .buf_alloc = BUF_ALLOC,
			    .fwd_cnt = c.fwd_cnt};
}

/* A packet without payload on the connection. */
static void send_ctl(uint16_t op, uint32_t flags)
{
	uint8_t s = tx_get();
	struct hdr h = conn_hdr(op, flags, 0);

	tx_post(s, &h);
	if (op == OP_CREDIT_UPDATE)
		c.updates_sent++;
	if (op == OP_CREDIT_REQUEST)
		c.requests_sent++;
	if (op == OP_SHUTDOWN)
		c.shut_sent = true;
}

/* What drain() found to answer: RSTs to strays, CREDIT_UPDATEs. */
static void flush(void)
{
	while (npending) {
		uint8_t s = tx_get();
		struct hdr h = {.src_cid = cid,
				.dst_cid = HOST_CID,
				.src_port = pending_rst[npending - 1].sport,
				.dst_port = pending_rst[npending - 1].dport,
				.type = TYPE_STREAM,
				.op = OP_RST};

		npending--;
		tx_post(s, &h);
	}
	if (!c.used || !c.established || c.reset || c.shut_sent)
		return;
	if (c.need_update || (!c.peer_eof && c.fwd_cnt - c.fwd_told >= UPDATE_AT)) {
		c.need_update = false;
		send_ctl(OP_CREDIT_UPDATE, 0);
	}
}

/*
 * Serve the device until @cond holds: false when @step_ms went by without a packet
 * (or ALL_MS in all).
 */
static bool wait_for(bool (*cond)(void), uint64_t step_ms)
{
	uint64_t t0 = chase_rdtsc(), last = t0, seen = packets_seen;

	for (;;) {
		uint64_t now;

		drain();
		flush();
		if (cond())
			return true;
		now = chase_rdtsc();
		if (packets_seen != seen) {
			seen = packets_seen;
			last = now;
		}
		if (now - last > ms_cycles(step_ms) ||
		    now - t0 > ms_cycles(step_ms > ALL_MS ? step_ms : ALL_MS))
			return false;
		idle();
	}
}

static void wait_or_fail(bool (*cond)(void), uint64_t step_ms, const char *what)
{
	if (wait_for(cond, step_ms))
		return;
	puts_("vsock: timed out waiting for ");
	puts_(what);
	put_status();
	fail("vsock: the device did not answer in time (the line above says what was awaited)");
}

static bool c_requested(void)
{
	return c.requested;
}

static bool c_answered(void)
{
	return c.established || c.reset;
}

static bool c_reset(void)
{
	return c.reset;
}

static bool c_eof(void)
{
	return c.peer_eof || c.reset;
}

static bool tx_all_back(void)
{
	return txq->nfree == txq->size;
}

static bool tx_back_or_reset(void)
{
	return tx_all_back() || c.reset;
}

static uint32_t peer_free(void)
{
	uint32_t inflight = c.tx_cnt - c.peer_fwd_cnt;

	return inflight >= c.peer_buf_alloc ? 0 : c.peer_buf_alloc - inflight;
}

/* Send @total bytes (of @src, or of the pattern when NULL) within the device's credit. */
static void send_data(const uint8_t *src, uint64_t total)
{
	static const uint32_t sizes[] = {4096, 1, 1000, 4096, 3000, 4096, 17, 4096, 2048, 4095};
	uint64_t off = 0, last = chase_rdtsc(), asked = 0;
	unsigned k = 0;

	while (off < total) {
		uint32_t credit, n;
		uint64_t now;
		uint8_t s, *p;
		struct hdr h;

		drain();
		flush();
		if (c.reset) {
			puts_("vsock: reset after ");
			putu(off);
			puts_(" of ");
			putu(total);
			puts_(" bytes\n");
			fail("vsock: the device reset the connection while we were sending");
		}
		if (c.peer_norcv)
			fail("vsock: the device said SHUTDOWN(RCV) while we were sending");
		credit = peer_free();
		now = chase_rdtsc();
		if (!credit) {
			if (now - last > ms_cycles(STEP_MS)) {
				puts_("vsock: no credit for 10 s: sent ");
				putu(c.tx_cnt);
				puts_(", the device's fwd_cnt ");
				putu(c.peer_fwd_cnt);
				puts_(" buf_alloc ");
				putu(c.peer_buf_alloc);
				put_status();
				fail("vsock: the device gave no credit back (is the host "
				     "reading?)");
			}
			if (now - asked > ms_cycles(50)) {
				asked = now;
				send_ctl(OP_CREDIT_REQUEST, 0);
			}
			idle();
			continue;
		}
		n = sizes[k++ % (sizeof(sizes) / sizeof(sizes[0]))];
		if (n > credit)
			n = credit;
		if (n > total - off)
			n = (uint32_t)(total - off);
		s = tx_get();
		p = tx_mem + (uint64_t)s * TX_STRIDE + HDR;
		if (src)
			memcpy(p, src + off, n);
		else
			for (uint32_t i = 0; i < n; i++)
				p[i] = (uint8_t)((off + i) * 7 + 3);
		h = conn_hdr(OP_RW, 0, n);
		tx_post(s, &h);
		c.tx_cnt += n;
		c.tx_bytes += n;
		c.tx_pkts++;
		off += n;
		last = now;
	}
}

/* Close our side: SHUTDOWN(both), then the device's RST. */
static void close_conn(const char *what)
{
	send_ctl(OP_SHUTDOWN, SHUT_RCV | SHUT_SEND);
	wait_or_fail(c_reset, 5000, what);
	c.used = false;
}

/* REQUEST to CID 2 @port from @lport; true on RESPONSE, false on RST. */
static bool connect_to(uint32_t lport, uint32_t port)
{
	c = (struct conn){.used = true,
			  .connecting = true,
			  .lport = lport,
			  .pport = port,
			  .sum = 0x811c9dc5u};
	send_ctl(OP_REQUEST, 0);
	wait_or_fail(c_answered, STEP_MS, "a RESPONSE or RST to our REQUEST");
	if (c.reset) {
		c.used = false;
		puts_("vsock connect port=");
		putu(port);
		puts_(" refused\n");
		return false;
	}
	return true;
}

/* ---- the three parts ---- */

static void serve(uint32_t port, uint64_t wait_s)
{
	char line[48], hex[9];
	unsigned n = 0;

	listen_port = port;
	puts_("vsock listening port=");
	putu(port);
	puts_("\n");
	if (!wait_for(c_requested, wait_s * 1000)) {
		puts_("vsock: no REQUEST for port ");
		putu(port);
		puts_(" within wait= s");
		put_status();
		fail("vsock: nobody connected (the host connects to uds_path and writes "
		     "\"CONNECT <port>\\n\")");
	}
	listen_port = 0; /* one connection: later REQUESTs are refused */
	c.established = true;
	send_ctl(OP_RESPONSE, 0);
	puts_("vsock accepted port=");
	putu(port);
	put_kv("peer_port", c.pport);
	puts_("\n");
	wait_or_fail(c_eof, STEP_MS, "RW data or the host's SHUTDOWN(SEND)");
	if (c.reset) {
		puts_("vsock: reset after ");
		putu(c.rx_bytes);
		puts_(" bytes\n");
		fail("vsock: the device reset the connection before the end of the stream");
	}
	if (c.peer_norcv)
		fail("vsock: the host stopped receiving (SHUTDOWN RCV): it must shutdown(SHUT_WR), "
		     "not close, to read the sum");
	/* "sum=%08x bytes=%u\n" */
	hex[fmt_hex8(hex, c.sum)] = 0;
	n += fmt_s(line + n, "sum=");
	n += fmt_s(line + n, hex);
	n += fmt_s(line + n, " bytes=");
	n += fmt_u(line + n, c.rx_bytes);
	line[n++] = '\n';
	send_data((const uint8_t *)line, n);
	close_conn("the device's RST after our SHUTDOWN (host->guest)");
	puts_("vsock rx bytes=");
	putu(c.rx_bytes);
	puts_(" sum=");
	puts_(hex);
	put_kv("packets", c.rx_pkts);
	put_kv("credit_updates", c.updates_sent);
	puts_("\n");
}

static void bad_end(void)
{
	bool nr = (vio_read(dev, VIO_STATUS) & VIRTIO_S_NEEDS_RESET) != 0;

	puts_(" rst=");
	putu(c.reset);
	put_kv("needs_reset", nr);
	puts_("\n");
	if (nr)
		fail("vsock: bad=: the device needs a reset (no ring rule was broken)");
	if (!c.reset) {
		uint8_t s = tx_get();
		struct hdr h = conn_hdr(OP_RST, 0, 0);

		tx_post(s, &h); /* close it ourselves */
	}
	c.used = false;
}

/* Post a chain of @nb buffers that holds no transmit slot. */
static void tx_raw(const struct vbuf *b, unsigned nb)
{
	uint64_t t0 = chase_rdtsc();
	int head;

	while ((head = virtq_add(txq, b, nb, ind)) < 0) {
		drain();
		if (chase_rdtsc() - t0 > ms_cycles(STEP_MS))
			fail("vsock: bad=: no room in the tx ring for 10 s");
		idle();
	}
	tx_slot_of[head] = NO_SLOT;
	virtq_kick(txq);
}

static void bad_open(uint32_t lport, uint32_t port)
{
	if (!connect_to(lport, port))
		fail("vsock: bad=: the connection was refused (the host must listen on "
		     "<uds_path>_<bad_port>)");
}

static void bad_credit(uint32_t port)
{
	static uint8_t *big;
	uint32_t n;
	struct vbuf b;
	struct hdr h;
	bool reset;

	bad_open(LPORT_BAD, port);
	if (c.peer_buf_alloc > BAD_MAX - 4096)
		fail("vsock: bad=credit: the device's buf_alloc is over 4 MiB");
	n = c.peer_buf_alloc + 4096;
	if (!big)
		big = ram_alloc(HDR + BAD_MAX, 4096, "vsock");
	h = conn_hdr(OP_RW, 0, n);
	memcpy(big, &h, HDR);
	for (uint32_t i = 0; i < n; i++)
		big[HDR + i] = (uint8_t)(i * 7 + 3);
	b = (struct vbuf){(uint64_t)(uintptr_t)big, HDR + n, false};
	tx_raw(&b, 1);
	c.tx_cnt += n;
	wait_for(c_reset, 3000);
	puts_("vsock bad=credit");
	put_kv("len", n);
	put_kv("buf_alloc", c.peer_buf_alloc);
	reset = c.reset;
	bad_end();
	if (!reset)
		fail("vsock: bad=credit: no RST for a packet beyond the credit given");
}

static void bad_hdr(uint32_t port)
{
	static uint8_t pkt_type[HDR + 16], pkt_len[HDR + BAD_CHAIN];
	struct hdr h;
	struct vbuf b;

	bad_open(LPORT_BAD + 1, port);
	h = conn_hdr(OP_RW, 0, 16);
	h.type = 3;
	memcpy(pkt_type, &h, HDR);
	memset(pkt_type + HDR, 0x5a, 16);
	b = (struct vbuf){(uint64_t)(uintptr_t)pkt_type, sizeof(pkt_type), false};
	tx_raw(&b, 1);
	wait_for(c_reset, 2000);
	puts_("vsock bad=hdr type=3");
	bad_end();

	bad_open(LPORT_BAD + 2, port);
	h = conn_hdr(OP_RW, 0, BAD_LEN);
	memcpy(pkt_len, &h, HDR);
	memset(pkt_len + HDR, 0xa5, BAD_CHAIN);
	b = (struct vbuf){(uint64_t)(uintptr_t)pkt_len, sizeof(pkt_len), false};
	tx_raw(&b, 1);
	wait_for(c_reset, 2000);
	puts_("vsock bad=hdr");
	put_kv("len", BAD_LEN);
	put_kv("payload", BAD_CHAIN);
	bad_end();
}

/* Ignore the credit: 64 KiB packets back to back to a host that never reads, until RST. */
static void bad_flood(uint32_t port)
{
	static uint8_t *pkt;
	uint64_t sent = 0;
	struct vbuf b;
	struct hdr h;
	bool reset;

	bad_open(LPORT_BAD + 3, port);
	if (!pkt)
		pkt = ram_alloc(HDR + FLOOD_PKT, 4096, "vsock");
	h = conn_hdr(OP_RW, 0, FLOOD_PKT);
	memcpy(pkt, &h, HDR);
	for (uint32_t i = 0; i < FLOOD_PKT; i++)
		pkt[HDR + i] = (uint8_t)(i * 7 + 3);
	b = (struct vbuf){(uint64_t)(uintptr_t)pkt, HDR + FLOOD_PKT, false};
	/* The same packet each time (fwd_cnt in it stays 0), one in flight: @sent is then
	 * what the device took before its RST. */
	while (!c.reset && sent < FLOOD_MAX) {
		tx_raw(&b, 1);
		c.tx_cnt += FLOOD_PKT; /* sent, as the device's fwd_cnt will count it */
		sent += FLOOD_PKT;
		if (!wait_for(tx_back_or_reset, STEP_MS))
			fail("vsock: bad=flood: a packet was not given back within 10 s");
	}
	wait_for(c_reset, 3000);
	puts_("vsock bad=flood");
	put_kv("sent", sent);
	put_kv("buf_alloc", c.peer_buf_alloc);
	reset = c.reset;
	bad_end();
	if (!reset)
		fail("vsock: bad=flood: no RST for a guest sending far beyond its credit");
}

/* Is @kind among the comma-separated @kinds? */
static bool has_kind(const char *kinds, const char *kind)
{
	size_t kl = slen(kind);

	for (const char *p = kinds; *p;) {
		size_t l = 0;

		while (p[l] && p[l] != ',')
			l++;
		if (l == kl && mem_eq(p, kind, kl))
			return true;
		p += l + (p[l] == ',');
	}
	return false;
}

static void send_stream(uint32_t port, uint64_t bytes, bool refused_ok)
{
	if (!connect_to(LPORT_TX, port)) {
		if (refused_ok)
			return;
		fail("vsock: the connection was refused: nobody listens on <uds_path>_<peer_port>");
	}
	if (refused_ok)
		fail("vsock: refused=1 but the connection was accepted");
	puts_("vsock connected port=");
	putu(port);
	put_kv("buf_alloc", c.peer_buf_alloc);
	puts_("\n");
	send_data(NULL, bytes);
	close_conn("the device's RST after our SHUTDOWN (guest->host)");
	puts_("vsock tx bytes=");
	putu(c.tx_bytes);
	put_kv("packets", c.tx_pkts);
	put_kv("credit_requests", c.requests_sent);
	puts_("\n");
}

void do_vsock(void)
{
	struct virtio_opts o;
	uint64_t port = arg_u64("port", 52), peer_port = arg_u64("peer_port", 1024),
		 bad_port = arg_u64("bad_port", peer_port + 1), bytes = arg_u64("bytes", 300000),
		 flood_port = arg_u64("flood_port", bad_port + 1), wait_s = arg_u64("wait", 60);
	bool refused_ok = arg_u64("refused", 0) != 0;
	char bad[32] = "";
	unsigned ev;

	if (arg("bad", bad, sizeof(bad)) && !has_kind(bad, "credit") && !has_kind(bad, "hdr") &&
	    !has_kind(bad, "flood"))
		fail("vsock: bad= is one or more of credit, hdr, flood (comma-separated)");
	if (port > 0xffffffffu || peer_port > 0xffffffffu || bad_port > 0xffffffffu ||
	    flood_port > 0xffffffffu)
		fail("vsock: ports are 32-bit");
	hz = tsc_rate("vsock");
	virtio_opts_from_cmdline(&o);
	virtio_probe();
	dev = virtio_find(VIRTIO_ID_VSOCK);
	if (!dev)
		fail("vsock: no socket device (DeviceID 19, transport version 2) among the "
		     "virtio_mmio.device= entries");
	if (!virtio_start(dev, 3, &o))
		fail("vsock: the socket device did not initialize (the line above says why)");
	rxq = dev->vq[0];
	txq = dev->vq[1];
	evq = dev->vq[2];
	ind = o.indirect == 1;
	cid = vio_cfg64(dev, 0);
	if (cid < 3 || cid > 0xffffffffu) {
		puts_("vsock: guest_cid ");
		putu(cid);
		puts_("\n");
		fail("vsock: guest_cid is not 3..2^32-1");
	}
	rx_mem = ram_alloc((uint64_t)RX_SLOTS * RX_STRIDE, 4096, "vsock");
	tx_mem = ram_alloc((uint64_t)TX_SLOTS * TX_STRIDE, 4096, "vsock");
	memset(tx_slot_of, NO_SLOT, sizeof(tx_slot_of));
	/* As many rx buffers as the ring takes (an odd one needs two descriptors). */
	for (nrx_posted = 0; nrx_posted < RX_SLOTS; nrx_posted++) {
		if (rxq->nfree < (ind || !(nrx_posted & 1) ? 1 : 2))
			break;
		rx_post((uint8_t)nrx_posted);
	}
	if (!nrx_posted)
		fail("vsock: no rx buffer fits the rx ring");
	virtq_kick(rxq);
	for (ev = 0; ev < EV_SLOTS && evq->nfree; ev++)
		ev_post(ev);
	virtq_kick(evq);
	for (unsigned s = 0; s < TX_SLOTS; s++)
		tx_free[ntx_free++] = (uint8_t)s;
	puts_("vsock cid=");
	putu(cid);
	put_kv("event_idx", virtio_has(dev, VIRTIO_F_EVENT_IDX));
	put_kv("indirect", virtio_has(dev, VIRTIO_F_INDIRECT_DESC));
	put_kv("irq", dev->use_irq);
	put_kv("rx_bufs", nrx_posted);
	put_kv("ev_bufs", ev);
	puts_("\n");

	if (port)
		serve((uint32_t)port, wait_s);
	if (has_kind(bad, "credit"))
		bad_credit((uint32_t)bad_port);
	if (has_kind(bad, "hdr"))
		bad_hdr((uint32_t)bad_port);
	if (has_kind(bad, "flood"))
		bad_flood((uint32_t)flood_port);
	if (peer_port)
		send_stream((uint32_t)peer_port, bytes, refused_ok);
	if (!wait_for(tx_all_back, 5000))
		fail("vsock: transmit chains the device never gave back");
	if (dev->use_irq && !dev->irqs)
		fail("vsock: irq=1 but no interrupt came");
	pass(0);
}
