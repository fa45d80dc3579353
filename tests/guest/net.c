/*
 * The virtio-net workload of the test guest, on the first network device
 * (DeviceID 1) of the command line's virtio_mmio.device= entries (nic=N: the
 * N-th, from 0, for every mode below), written from the virtio 1.2 specification
 * (5.1 Network Device).
 *
 *   test=net ip=A.B.C.D/N [count=N] [bad=N [bad_kinds=short,big,gso]]
 *       prints "net up mac=xx:xx:xx:xx:xx:xx ip=A.B.C.D/N ...", then answers ARP
 *       requests for its address and ICMP echo requests to it; runs until the VMM stops
 *       it, or with count=N exits PASS after answering N echo requests, printing
 *       "net echoed=N arp=A ...". With bad=N it first transmits N malformed frames of
 *       each kind -- "short": a chain of 8 bytes, shorter than the 12-byte header; "big":
 *       70000 bytes of frame behind the header in 5 descriptors (over 64 KiB + 14);
 *       "gso": a header asking for TCPv4 segmentation, which this driver never
 *       negotiates (HOST_TSO4) -- waits for the device to give them back and prints
 *       "net bad sent=3N returned=R needs_reset=0|1" (DEVICE_NEEDS_RESET in the status
 *       afterwards), then answers as above. A device should drop and count them and go on.
 *   test=netbench mode=tx size=N secs=N [ip=A.B.C.D/N]
 *       keeps the transmit ring full of N-byte frames (60..16372; a UDP datagram to
 *       255.255.255.255 port 9 in a broadcast frame, no FCS) for secs s (the TSC against
 *       the PIT); prints "netbench mode=tx size=N pps=X mbps=Y frames=F ms=T ..." (MB/s
 *       of frame bytes, 10^6). Frames received meanwhile are dropped.
 *   test=netbench mode=rx secs=N [wait=N]
 *       counts the frames of EtherType 0x88b5 (what bench/netblast.c sends: a 64-bit
 *       big-endian sequence number after the Ethernet header) for secs s from the first
 *       one (or until none came for 2 s: "ended=idle"), and prints "netbench mode=rx
 *       size=S pps=X mbps=Y frames=F ms=T lost=L ..." -- S the first frame's size
 *       (other_size= counts frames of another), L the sequence numbers skipped (frames
 *       the sender numbered that never arrived). Fails when no such frame came within
 *       wait= s (60). Other frames are counted as ignored.
 *   test=netbench mode=echo size=N secs=N ip=A.B.C.D/N peer=A.B.C.D
 *       resolves the peer's MAC by ARP, then sends it ICMP echo requests in N-byte frames
 *       (60..16372), one at a time, for secs s, each round trip timed with the TSC from
 *       before the request is queued to when its reply is taken from the receive ring (a
 *       request unanswered for 1 s is counted lost and the next one goes); prints
 *       "netbench mode=echo size=S rtt_us_median=X rtt_us_p99=Y n=N lost=L ..." (the
 *       lower median; the nearest-rank 99th percentile; up to 2^20 round trips).
 *
 * The driver: negotiates VERSION_1, MAC, MRG_RXBUF and EVENT_IDX as offered (no
 * checksum or segmentation offloads: every frame is whole and checksummed), receive
 * queue 0 and transmit queue 1 (no multiqueue, no control queue). Every frame on either
 * queue starts with the 12-byte struct virtio_net_hdr (num_buffers included with
 * VERSION_1); the receive ring holds page-sized device-writable buffers, one descriptor
 * each, so with MRG_RXBUF a frame may span num_buffers of them (gathered here). A frame
 * to send is the header and the frame in one descriptor (VERSION_1 allows any layout).
 * Used rings are polled, or with irq=1 waited on by interrupt; event_idx=, qsize= as for
 * the other virtio workloads. Polling loops never read InterruptStatus: the device is
 * asked for no interrupts then (virtio.c), and each read would be an exit to the VMM.
 */
#include "chase.h"
#include "guest.h"
#include "virtio.h"

#define NET_F_MAC       5
#define NET_F_MRG_RXBUF 15
#define NET_F_STATUS    16
#define NET_CFG_MAC     0
#define NET_HDR         12 /* struct virtio_net_hdr with num_buffers (VERSION_1) */
#define GSO_TCPV4       1  /* virtio_net_hdr.gso_type */
#define PAGE            4096u
#define TX_SLOTS        32
#define TX_BUF          16384 /* header and frame: echo replies up to ~16 KiB (MTU 9000) */
#define FRAME_MAX       65536
#define HEAD_COPY       64 /* mode=rx: the bytes of a frame looked at (the rest is not copied) */
#define WAIT_CYCLES     20000000000ull
#define NO_SLOT         0xff /* tx_slot_of[] of a chain that holds no transmit buffer */
#define ECHO_MAX        (1u << 20)
#define BAD_BIG         70000u /* frame bytes of a "big" bad frame */
#define BAD_BIG_DESCS   5
#define BAD_GSO_FRAME   (14 + 20 + 20 + 2 * 1448)

#define ETH_ARP   0x0806
#define ETH_IPV4  0x0800
#define ETH_BENCH 0x88b5 /* IEEE 802 Local Experimental EtherType 1: netblast's frames */

enum mode { SERVE, BENCH_TX, BENCH_RX, BENCH_ECHO };

/* Buffers in guest RAM above the image (1.6 MiB: .bss would grow the image past 4 MiB). */
static uint8_t (*rx_bufs)[PAGE];
static uint8_t (*tx_bufs)[TX_BUF];
static uint8_t *frame; /* a received frame gathered from merged buffers */

static struct net {
	struct virtio_dev *d;
	struct virtq *rx, *tx;
	uint8_t mac[6], ip[4];
	unsigned prefix;
	bool mrg;
	enum mode mode;
	uint16_t rx_buf_of[VIRTQ_MAX_SIZE]; /* rx head -> buffer index */
	uint8_t tx_slot_of[VIRTQ_MAX_SIZE]; /* tx head -> slot, or NO_SLOT */
	uint8_t tx_free[TX_SLOTS];
	unsigned ntx_free;
	uint64_t rx_frames, tx_frames, merged, arp, echoed, dropped, bad_csum, ignored;
	uint64_t bad_back; /* malformed chains the device gave back */
	/* mode=echo */
	uint8_t peer_ip[4], peer_mac[6];
	bool peer_known, echo_got;
	uint16_t echo_id, echo_seq;
	uint32_t echo_len; /* the IPv4 datagram's length */
	uint64_t echo_t, echo_late, echo_bad;
	/* mode=rx: frames counted in [t_first, rx_end = t_first + window) */
	uint64_t window, t_first, t_last, rx_end, counted, bytes, size, other_size, next_seq, lost,
		reordered, late;
} n;

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint64_t be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* The Internet checksum (RFC 1071): the ones' complement of the ones' complement sum. */
static uint16_t csum(const uint8_t *p, size_t len)
{
	uint32_t s = 0;

	for (size_t i = 0; i + 1 < len; i += 2)
		s += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		s += (uint32_t)p[len - 1] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

static void put_hex2(uint8_t v)
{
	static const char h[] = "0123456789abcdef";

	putc_(h[v >> 4]);
	putc_(h[v & 15]);
}

static void put_ip(const uint8_t *ip)
{
	for (int i = 0; i < 4; i++) {
		if (i)
			putc_('.');
		putu(ip[i]);
	}
}

static void put_tenths(uint64_t t)
{
	putu(t / 10);
	putc_('.');
	putu(t % 10);
}

/* " key=value" */
static void put_kv(const char *key, uint64_t v)
{
	putc_(' ');
	puts_(key);
	putc_('=');
	putu(v);
}

static bool parse_ip(const char *s, uint8_t *ip, unsigned *prefix)
{
	for (int i = 0; i < 4; i++) {
		unsigned v = 0, digits = 0;

		for (; *s >= '0' && *s <= '9' && digits < 4; s++, digits++)
			v = v * 10 + (unsigned)(*s - '0');
		if (!digits || v > 255)
			return false;
		ip[i] = (uint8_t)v;
		if (i < 3 && *s++ != '.')
			return false;
	}
	*prefix = 32;
	if (*s == '/') {
		unsigned v = 0, digits = 0;

		for (s++; *s >= '0' && *s <= '9' && digits < 3; s++, digits++)
			v = v * 10 + (unsigned)(*s - '0');
		if (!digits || v > 32)
			return false;
		*prefix = v;
	}
	return *s == 0;
}

/* ---- the queues ---- */

static void rx_post(uint16_t buf)
{
	struct vbuf b = {(uint64_t)(uintptr_t)rx_bufs[buf], PAGE, true};
	int head = virtq_add(n.rx, &b, 1, false);

	if (head < 0)
		fail("net: the receive ring is full");
	n.rx_buf_of[head] = buf;
}

static void tx_reclaim(void)
{
	uint32_t id, len;

	while (virtq_pop(n.tx, &id, &len)) {
		if (n.tx_slot_of[id] == NO_SLOT)
			n.bad_back++;
		else
			n.tx_free[n.ntx_free++] = n.tx_slot_of[id];
	}
}

/* A transmit buffer's frame area (after the header): wait for one when all are out. */
static uint8_t tx_slot(void)
{
	tx_reclaim();
	while (!n.ntx_free) {
		if (!virtq_wait(n.tx, WAIT_CYCLES))
			fail("net: no transmit buffer came back within the time limit");
		tx_reclaim();
	}
	return n.tx_free[--n.ntx_free];
}

static void tx_send(uint8_t slot, uint32_t len)
{
	struct vbuf b;
	int head;

	if (len < 60) { /* Ethernet's minimum frame (without the FCS) */
		memset(tx_bufs[slot] + NET_HDR + len, 0, 60 - len);
		len = 60;
	}
	memset(tx_bufs[slot], 0, NET_HDR); /* no checksum or GSO asked; num_buffers 0 on TX */
	b = (struct vbuf){(uint64_t)(uintptr_t)tx_bufs[slot], NET_HDR + len, false};
	head = virtq_add(n.tx, &b, 1, false);
	if (head < 0)
		fail("net: the transmit ring is full with a free buffer");
	n.tx_slot_of[head] = slot;
	virtq_kick(n.tx);
	n.tx_frames++;
}

/* ---- ARP and ICMP ---- */

static void eth_header(uint8_t *o, const uint8_t *to, uint16_t type)
{
	memcpy(o, to, 6);
	memcpy(o + 6, n.mac, 6);
	put_be16(o + 12, type);
}

/* An ARP packet (@op 1 request, 2 reply) after an Ethernet header to @eth_to. */
static void send_arp(const uint8_t *eth_to, uint16_t op, const uint8_t *tha, const uint8_t *tpa)
{
	uint8_t slot = tx_slot(), *o = tx_bufs[slot] + NET_HDR;

	eth_header(o, eth_to, ETH_ARP);
	put_be16(o + 14, 1);
	put_be16(o + 16, ETH_IPV4);
	o[18] = 6;
	o[19] = 4;
	put_be16(o + 20, op);
	memcpy(o + 22, n.mac, 6);
	memcpy(o + 28, n.ip, 4);
	memcpy(o + 32, tha, 6);
	memcpy(o + 38, tpa, 4);
	tx_send(slot, 42);
}

static void handle_arp(const uint8_t *f, uint32_t len)
{
	const uint8_t *a = f + 14;
	uint16_t op;

	if (len < 14 + 28 || be16(a) != 1 || be16(a + 2) != ETH_IPV4 || a[4] != 6 || a[5] != 4 ||
	    !mem_eq(a + 24, n.ip, 4)) {
		n.ignored++;
		return;
	}
	op = be16(a + 6);
	/* The peer's address from its request or its reply, as any ARP cache would. */
	if (n.mode == BENCH_ECHO && mem_eq(a + 14, n.peer_ip, 4)) {
		memcpy(n.peer_mac, a + 8, 6);
		n.peer_known = true;
	}
	if (op != 1) {
		n.ignored += op != 2;
		return;
	}
	send_arp(a + 8, 2, a + 8, a + 14); /* to the asker: its MAC and IP */
	n.arp++;
}

/* mode=echo: an echo reply; the one we wait for when its identifier, sequence number,
 * length and data are ours. */
static void echo_reply(const uint8_t *ip, unsigned ihl, unsigned total)
{
	const uint8_t *icmp = ip + ihl;

	if (!mem_eq(ip + 12, n.peer_ip, 4) || be16(icmp + 4) != n.echo_id) {
		n.ignored++;
		return;
	}
	if (be16(icmp + 6) != n.echo_seq || n.echo_got) {
		n.echo_late++; /* an answer to a request already given up */
		return;
	}
	for (unsigned i = 8; i < total - ihl; i++)
		if (icmp[i] != (uint8_t)(i + n.echo_seq)) {
			n.echo_bad++;
			return;
		}
	if (total != n.echo_len) {
		n.echo_bad++;
		return;
	}
	n.echo_t = chase_rdtsc();
	n.echo_got = true;
}

static void handle_ipv4(const uint8_t *f, uint32_t len)
{
	const uint8_t *ip = f + 14;
	unsigned ihl, total;
	uint8_t slot, *o, *oip, *icmp;

	if (len < 14 + 20 || (ip[0] >> 4) != 4) {
		n.ignored++;
		return;
	}
	ihl = (ip[0] & 15) * 4u;
	total = be16(ip + 2);
	if (ihl < 20 || total < ihl + 8 || 14 + total > len || NET_HDR + 14 + total > TX_BUF) {
		n.ignored++;
		return;
	}
	if (ip[9] != 1 || !mem_eq(ip + 16, n.ip, 4) || (be16(ip + 6) & 0x3fff)) {
		n.ignored++; /* not ICMP, not ours, or a fragment */
		return;
	}
	if (csum(ip, ihl) != 0 || csum(ip + ihl, total - ihl) != 0) {
		n.bad_csum++;
		return;
	}
	if (n.mode == BENCH_ECHO && ip[ihl] == 0 && ip[ihl + 1] == 0) {
		echo_reply(ip, ihl, total);
		return;
	}
	if (ip[ihl] != 8 || ip[ihl + 1] != 0) {
		n.ignored++; /* not an echo request */
		return;
	}
	slot = tx_slot();
	o = tx_bufs[slot] + NET_HDR;
	eth_header(o, f + 6, ETH_IPV4); /* back to the sender's MAC */
	oip = o + 14;
	memcpy(oip, ip, total);
	oip[8] = 64;                  /* TTL */
	memcpy(oip + 12, n.ip, 4);    /* from us */
	memcpy(oip + 16, ip + 12, 4); /* to the sender */
	put_be16(oip + 10, 0);
	put_be16(oip + 10, csum(oip, ihl));
	icmp = oip + ihl;
	icmp[0] = 0; /* echo reply; identifier, sequence and data stay */
	put_be16(icmp + 2, 0);
	put_be16(icmp + 2, csum(icmp, total - ihl));
	tx_send(slot, 14 + total);
	n.echoed++;
}

/* mode=rx: count netblast's frames that arrive before the window closes. */
static void bench_rx_frame(const uint8_t *f, uint32_t len)
{
	uint64_t now, seq;

	if (len < 22 || be16(f + 12) != ETH_BENCH) {
		n.ignored++;
		return;
	}
	now = chase_rdtsc();
	seq = be64(f + 14);
	if (!n.counted) {
		n.t_first = now;
		n.rx_end = now + n.window;
		n.size = len;
		n.next_seq = seq;
	} else if (now >= n.rx_end) {
		n.late++;
		return;
	}
	if (seq > n.next_seq)
		n.lost += seq - n.next_seq;
	else if (seq < n.next_seq)
		n.reordered++;
	if (seq >= n.next_seq)
		n.next_seq = seq + 1;
	n.counted++;
	n.bytes += len;
	n.other_size += len != n.size;
	n.t_last = now;
}

static void handle_frame(const uint8_t *f, uint32_t len)
{
	static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

	n.rx_frames++;
	if (n.mode == BENCH_RX) {
		bench_rx_frame(f, len);
		return;
	}
	if (n.mode == BENCH_TX || len < 14 || (!mem_eq(f, n.mac, 6) && !mem_eq(f, bcast, 6))) {
		n.ignored++;
		return;
	}
	switch (be16(f + 12)) {
	case ETH_ARP:
		handle_arp(f, len);
		break;
	case ETH_IPV4:
		handle_ipv4(f, len);
		break;
	default:
		n.ignored++;
	}
}

/* Take one received frame (all of its merged buffers); false when none is there. In
 * mode=rx only the first HEAD_COPY bytes are gathered: the frame is counted, not read. */
static bool rx_one(void)
{
	uint32_t id, len, got, nbufs = 1, cap = n.mode == BENCH_RX ? HEAD_COPY : FRAME_MAX;
	uint16_t buf;
	const uint8_t *p;

	if (!virtq_pop(n.rx, &id, &len))
		return false;
	buf = n.rx_buf_of[id];
	p = rx_bufs[buf];
	if (len < NET_HDR || len > PAGE)
		fail("net: a used receive buffer shorter than the header or longer than posted");
	if (n.mrg)
		nbufs = (uint32_t)(p[10] | p[11] << 8); /* le16 num_buffers */
	if (!nbufs)
		fail("net: num_buffers is 0");
	got = len - NET_HDR;
	memcpy(frame, p + NET_HDR, got < cap ? got : cap);
	n.merged += nbufs > 1;
	rx_post(buf);
	for (uint32_t k = 1; k < nbufs; k++) {
		uint64_t t0 = chase_rdtsc();

		while (!virtq_pop(n.rx, &id, &len)) {
			if (chase_rdtsc() - t0 > WAIT_CYCLES)
				fail("net: a merged frame's next buffer never came");
			__asm__ volatile("pause");
		}
		buf = n.rx_buf_of[id];
		if (len > PAGE)
			fail("net: a used receive buffer longer than posted");
		if (got < cap)
			memcpy(frame + got, rx_bufs[buf], len < cap - got ? len : cap - got);
		got += len;
		rx_post(buf);
	}
	if (got > FRAME_MAX) {
		n.dropped++;
		return true;
	}
	handle_frame(frame, got);
	return true;
}

/* Take every received frame there is, give the buffers back; true when there was one. */
static bool rx_all(void)
{
	bool any = false;

	while (rx_one())
		any = true;
	if (any)
		virtq_kick(n.rx);
	return any;
}

/* Find, negotiate and start the device, fill the receive ring, print "net up ...". */
static void net_start(void)
{
	struct virtio_opts o;

	virtio_opts_from_cmdline(&o);
	virtio_probe();
	rx_bufs = ram_alloc((uint64_t)VIRTQ_MAX_SIZE * PAGE, PAGE, "net");
	tx_bufs = ram_alloc((uint64_t)TX_SLOTS * TX_BUF, PAGE, "net");
	frame = ram_alloc(FRAME_MAX, PAGE, "net");
	n.d = virtio_find_nth(VIRTIO_ID_NET, (unsigned)arg_u64("nic", 0));
	if (!n.d)
		fail("net: no such network device (DeviceID 1, transport version 2; nic= counts "
		     "from 0) among the virtio_mmio.device= entries");
	o.dev_features = 1u << NET_F_MAC | 1u << NET_F_MRG_RXBUF;
	if (!virtio_start(n.d, 2, &o))
		fail("net: the network device did not initialize (the line above says why)");
	n.rx = n.d->vq[0];
	n.tx = n.d->vq[1];
	n.mrg = virtio_has(n.d, NET_F_MRG_RXBUF);
	if (virtio_has(n.d, NET_F_MAC)) {
		for (unsigned i = 0; i < 6; i++)
			n.mac[i] = vio_cfg8(n.d, NET_CFG_MAC + i);
	} else {
		static const uint8_t def[6] = {0x06, 0x00, 0x00, 0x00, 0x00, 0x01};

		memcpy(n.mac, def, 6); /* locally administered, unicast */
		puts_("net: the device offers no MAC; using 06:00:00:00:00:01\n");
	}
	for (uint16_t i = 0; i < n.rx->size; i++)
		rx_post(i);
	virtq_kick(n.rx);
	for (unsigned i = 0; i < TX_SLOTS; i++)
		n.tx_free[n.ntx_free++] = (uint8_t)i;
	puts_("net up mac=");
	for (unsigned i = 0; i < 6; i++) {
		if (i)
			putc_(':');
		put_hex2(n.mac[i]);
	}
	puts_(" ip=");
	put_ip(n.ip);
	putc_('/');
	putu(n.prefix);
	put_kv("mrg_rxbuf", n.mrg);
	put_kv("event_idx", virtio_has(n.d, VIRTIO_F_EVENT_IDX));
	put_kv("irq", n.d->use_irq);
	put_kv("rxq", n.rx->size);
	put_kv("txq", n.tx->size);
	puts_("\n");
}

static void parse_ip_arg(const char *who)
{
	char ipstr[32];

	if (!arg("ip", ipstr, sizeof(ipstr)) || !parse_ip(ipstr, n.ip, &n.prefix)) {
		puts_(who);
		fail(": ip=A.B.C.D/N is required");
	}
}

/* ---- test=net bad=N: malformed frames the device must drop ---- */

/* Is @kind among bad_kinds= (comma-separated; all three when absent)? */
static bool bad_kind(const char *kinds, const char *kind)
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

/* Post a chain that holds no transmit buffer; waits for room in the ring. */
static void tx_chain(const struct vbuf *b, unsigned nb)
{
	int head;

	for (;;) {
		tx_reclaim();
		head = virtq_add(n.tx, b, nb, false);
		if (head >= 0)
			break;
		if (!virtq_wait(n.tx, WAIT_CYCLES))
			fail("net: bad=: no transmit chain came back within the time limit");
	}
	n.tx_slot_of[head] = NO_SLOT;
	virtq_kick(n.tx);
}

static void send_bad(uint64_t count)
{
	static const uint8_t nobody[6] = {0x06, 0x00, 0x00, 0x00, 0x00, 0xfe};
	char kinds[64] = "short,big,gso";
	uint8_t *hdr, *big, *gso, *ip, *tcp;
	uint64_t sent = 0, t0;
	struct vbuf b[1 + BAD_BIG_DESCS];
	bool k_short, k_big, k_gso;

	arg("bad_kinds", kinds, sizeof(kinds));
	k_short = bad_kind(kinds, "short");
	k_big = bad_kind(kinds, "big");
	k_gso = bad_kind(kinds, "gso");
	if (!k_short && !k_big && !k_gso)
		fail("net: bad_kinds= names none of short, big, gso");
	hdr = ram_alloc(PAGE, PAGE, "net");
	big = ram_alloc(BAD_BIG, PAGE, "net");
	gso = ram_alloc(NET_HDR + BAD_GSO_FRAME, PAGE, "net");
	memset(hdr, 0, NET_HDR);
	/* big: to a MAC nobody has (the host drops it, should it get there), zeros behind. */
	memset(big, 0, BAD_BIG);
	eth_header(big, nobody, ETH_BENCH);
	/* gso: a TCPv4 segment of 2 x 1448 bytes for the device to cut -- never negotiated. */
	memset(gso, 0, NET_HDR + BAD_GSO_FRAME);
	gso[1] = GSO_TCPV4;
	gso[2] = 14 + 20 + 20; /* le16 hdr_len */
	gso[4] = (uint8_t)1448; /* le16 gso_size */
	gso[5] = 1448 >> 8;
	eth_header(gso + NET_HDR, nobody, ETH_IPV4);
	ip = gso + NET_HDR + 14;
	ip[0] = 0x45;
	put_be16(ip + 2, BAD_GSO_FRAME - 14);
	put_be16(ip + 6, 0x4000);
	ip[8] = 64;
	ip[9] = 6;
	memcpy(ip + 12, n.ip, 4);
	ip[16] = 169; /* 169.254.255.254: link-local, nobody */
	ip[17] = 254;
	ip[18] = 255;
	ip[19] = 254;
	put_be16(ip + 10, csum(ip, 20));
	tcp = ip + 20;
	put_be16(tcp, 9);
	put_be16(tcp + 2, 9);
	tcp[12] = 5 << 4;
	tcp[13] = 0x18; /* PSH, ACK */
	put_be16(tcp + 14, 65535);
	for (uint64_t i = 0; i < count; i++) {
		if (k_short) { /* 8 bytes: shorter than the header */
			b[0] = (struct vbuf){(uint64_t)(uintptr_t)hdr, 8, false};
			tx_chain(b, 1);
			sent++;
		}
		if (k_big) {
			b[0] = (struct vbuf){(uint64_t)(uintptr_t)hdr, NET_HDR, false};
			for (unsigned k = 0; k < BAD_BIG_DESCS; k++)
				b[1 + k] = (struct vbuf){(uint64_t)(uintptr_t)big +
								 k * (BAD_BIG / BAD_BIG_DESCS),
							 BAD_BIG / BAD_BIG_DESCS, false};
			tx_chain(b, 1 + BAD_BIG_DESCS);
			sent++;
		}
		if (k_gso) {
			b[0] = (struct vbuf){(uint64_t)(uintptr_t)gso, NET_HDR + BAD_GSO_FRAME, false};
			tx_chain(b, 1);
			sent++;
		}
	}
	/* Until every chain is back, or the device stopped (DEVICE_NEEDS_RESET: QEMU's takes
	 * a short header as fatal), or 10^10 TSC cycles (3-5 s) went by. */
	for (t0 = chase_rdtsc(); n.bad_back < sent && chase_rdtsc() - t0 < WAIT_CYCLES / 2;) {
		tx_reclaim();
		if (vio_read(n.d, VIO_STATUS) & VIRTIO_S_NEEDS_RESET)
			break;
	}
	puts_("net bad sent=");
	putu(sent);
	put_kv("returned", n.bad_back);
	put_kv("needs_reset", !!(vio_read(n.d, VIO_STATUS) & VIRTIO_S_NEEDS_RESET));
	puts_(" kinds=");
	puts_(kinds);
	puts_("\n");
}

void do_net(void)
{
	uint64_t count = arg_u64("count", 0), bad = arg_u64("bad", 0);

	parse_ip_arg("net");
	net_start();
	if (bad)
		send_bad(bad);
	for (;;) {
		bool any = rx_all();

		tx_reclaim();
		if (count && n.echoed >= count)
			break;
		if (!any && n.d->use_irq)
			virtq_wait(n.rx, WAIT_CYCLES); /* hlt until a frame (or the wake timer) */
		else if (!any)
			__asm__ volatile("pause");
	}
	/* Let the last replies leave before the VM ends. */
	for (uint64_t t0 = chase_rdtsc(); n.ntx_free < TX_SLOTS;) {
		tx_reclaim();
		if (chase_rdtsc() - t0 > WAIT_CYCLES)
			fail("net: transmit buffers never came back");
		__asm__ volatile("pause");
	}
	puts_("net echoed=");
	putu(n.echoed);
	put_kv("arp", n.arp);
	put_kv("rx_frames", n.rx_frames);
	put_kv("tx_frames", n.tx_frames);
	put_kv("merged", n.merged);
	put_kv("ignored", n.ignored);
	put_kv("bad_csum", n.bad_csum);
	put_kv("dropped", n.dropped);
	put_kv("rx_notifies", n.rx->notifies);
	put_kv("tx_notifies", n.tx->notifies);
	put_kv("irqs", n.d->irqs);
	puts_("\n");
	pass(0);
}

/* ---- test=netbench ---- */

/* A UDP datagram to 255.255.255.255 port 9 (discard) in a broadcast frame of @size
 * bytes (without the FCS), from our MAC and address. */
static void bench_frame(uint8_t *f, uint32_t size)
{
	static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	uint8_t *ip = f + 14, *udp = ip + 20;
	uint32_t total = size - 14;

	memset(f, 0, size);
	eth_header(f, bcast, ETH_IPV4);
	ip[0] = 0x45;
	put_be16(ip + 2, (uint16_t)total);
	put_be16(ip + 6, 0x4000); /* don't fragment */
	ip[8] = 64;
	ip[9] = 17;
	memcpy(ip + 12, n.ip, 4);
	memset(ip + 16, 0xff, 4);
	put_be16(ip + 10, csum(ip, 20));
	put_be16(udp, 9);
	put_be16(udp + 2, 9);
	put_be16(udp + 4, (uint16_t)(total - 20));
	/* UDP checksum 0: none (IPv4) */
	for (uint32_t i = 8; i < total - 20; i++)
		udp[i] = (uint8_t)i;
}

static uint64_t elapsed_ms(uint64_t cycles, uint64_t hz)
{
	uint64_t ms = cycles / (hz / 1000);

	return ms ? ms : 1;
}

/* " pps=X mbps=Y frames=F ms=T" */
static void put_rate(uint64_t frames, uint64_t bytes, uint64_t ms)
{
	put_kv("pps", frames * 1000 / ms);
	/* MB/s of frame bytes (10^6) in tenths: bytes * 10 / 10^6 / (ms / 10^3) */
	puts_(" mbps=");
	put_tenths(bytes / (ms * 100));
	put_kv("frames", frames);
	put_kv("ms", ms);
}

static void bench_tx(uint64_t size, uint64_t secs, uint64_t hz)
{
	uint64_t done = 0, t0, end, now, ms;

	for (unsigned i = 0; i < TX_SLOTS; i++) {
		memset(tx_bufs[i], 0, NET_HDR);
		bench_frame(tx_bufs[i] + NET_HDR, (uint32_t)size);
	}
	t0 = chase_rdtsc();
	end = t0 + secs * hz;
	for (now = t0; now < end; now = chase_rdtsc()) {
		bool posted = false;
		uint32_t id, len;

		while (n.ntx_free) {
			uint8_t slot = n.tx_free[--n.ntx_free];
			struct vbuf b = {(uint64_t)(uintptr_t)tx_bufs[slot],
					 (uint32_t)(NET_HDR + size), false};
			int head = virtq_add(n.tx, &b, 1, false);

			if (head < 0) {
				n.tx_free[n.ntx_free++] = slot;
				break;
			}
			n.tx_slot_of[head] = slot;
			posted = true;
		}
		if (posted)
			virtq_kick(n.tx);
		while (virtq_pop(n.tx, &id, &len)) {
			n.tx_free[n.ntx_free++] = n.tx_slot_of[id];
			done++;
		}
		rx_all(); /* whatever comes in: dropped (BENCH_TX) */
		if (n.d->use_irq && !n.ntx_free)
			virtq_wait(n.tx, hz);
	}
	ms = elapsed_ms(chase_rdtsc() - t0, hz);
	for (uint64_t w = chase_rdtsc(); n.ntx_free < TX_SLOTS;) {
		uint32_t id, len;

		while (virtq_pop(n.tx, &id, &len)) {
			n.tx_free[n.ntx_free++] = n.tx_slot_of[id];
			done++;
		}
		if (chase_rdtsc() - w > 10 * hz)
			fail("netbench: transmit buffers never came back");
	}
	puts_("netbench mode=tx size=");
	putu(size);
	put_rate(done, done * size, ms);
	put_kv("tsc_mhz", hz / 1000000);
	put_kv("tx_notifies", n.tx->notifies);
	put_kv("irqs", n.d->irqs);
	puts_("\n");
}

static void bench_rx(uint64_t secs, uint64_t hz)
{
	uint64_t wait = arg_u64("wait", 60), t0 = chase_rdtsc(), now, ms;
	const char *ended = "time";

	n.window = secs * hz;
	for (;;) {
		bool any = rx_all();

		now = chase_rdtsc();
		if (!n.counted) {
			if (now - t0 > wait * hz)
				fail("netbench: no frame of EtherType 0x88b5 (bench/netblast) came "
				     "within wait= s");
		} else if (now >= n.rx_end) {
			break;
		} else if (now - n.t_last > 2 * hz) {
			ended = "idle"; /* the sender stopped */
			break;
		}
		if (!any && n.d->use_irq)
			virtq_wait(n.rx, hz / 10);
		else if (!any)
			__asm__ volatile("pause");
	}
	/* The window: to its end, or to the last frame when the sender stopped before it. */
	ms = elapsed_ms((ended[0] == 't' ? n.rx_end : n.t_last) - n.t_first, hz);
	puts_("netbench mode=rx size=");
	putu(n.size);
	put_rate(n.counted, n.bytes, ms);
	put_kv("lost", n.lost);
	put_kv("reordered", n.reordered);
	put_kv("other_size", n.other_size);
	put_kv("late", n.late);
	put_kv("ignored", n.ignored);
	put_kv("merged", n.merged);
	puts_(" ended=");
	puts_(ended);
	put_kv("tsc_mhz", hz / 1000000);
	put_kv("rx_notifies", n.rx->notifies);
	put_kv("irqs", n.d->irqs);
	puts_("\n");
}

/* Resolve the peer's MAC: a broadcast ARP request every second, 10 at most. */
static void arp_peer(uint64_t hz)
{
	static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	static const uint8_t zero[6] = {0};

	for (unsigned tries = 0; !n.peer_known; tries++) {
		uint64_t t0 = chase_rdtsc();

		if (tries == 10)
			fail("netbench: no ARP reply from peer= in 10 s");
		send_arp(bcast, 1, zero, n.peer_ip);
		while (!n.peer_known && chase_rdtsc() - t0 < hz) {
			if (!rx_all() && n.d->use_irq)
				virtq_wait(n.rx, hz / 10);
			tx_reclaim();
		}
	}
}

/* The @k-th smallest of @a[0..@len) (0-based); reorders @a (Hoare's quickselect). */
static uint32_t kth(uint32_t *a, long len, long k)
{
	long lo = 0, hi = len - 1;

	while (lo < hi) {
		uint32_t pivot = a[lo + (hi - lo) / 2], t;
		long i = lo, j = hi;

		while (i <= j) {
			while (a[i] < pivot)
				i++;
			while (a[j] > pivot)
				j--;
			if (i <= j) {
				t = a[i];
				a[i++] = a[j];
				a[j--] = t;
			}
		}
		/* [lo, j] <= pivot <= [i, hi]; what lies between equals the pivot */
		if (k <= j)
			hi = j;
		else if (k >= i)
			lo = i;
		else
			break;
	}
	return a[k];
}

/* Cycles as microseconds in tenths. */
static void put_us(const char *key, uint64_t cycles, uint64_t hz)
{
	putc_(' ');
	puts_(key);
	putc_('=');
	put_tenths(cycles * 10000000 / hz);
}

static void bench_echo(uint64_t size, uint64_t secs, uint64_t hz)
{
	uint32_t *rtt = ram_alloc((uint64_t)ECHO_MAX * sizeof(*rtt), PAGE, "netbench");
	uint64_t nrtt = 0, lost = 0, t0, end, min = ~0ull, max = 0, sum = 0;
	uint32_t total = (uint32_t)size - 14;
	char ipstr[32];
	unsigned prefix;

	if (!arg("peer", ipstr, sizeof(ipstr)) || !parse_ip(ipstr, n.peer_ip, &prefix) ||
	    prefix != 32)
		fail("netbench: mode=echo needs peer=A.B.C.D");
	arp_peer(hz);
	n.echo_id = 0x4856; /* "HV" */
	n.echo_len = total;
	t0 = chase_rdtsc();
	end = t0 + secs * hz;
	while (chase_rdtsc() < end && nrtt < ECHO_MAX) {
		uint8_t slot = tx_slot(), *o = tx_bufs[slot] + NET_HDR, *ip = o + 14, *icmp = ip + 20;
		uint64_t t, now;

		n.echo_seq++;
		n.echo_got = false;
		eth_header(o, n.peer_mac, ETH_IPV4);
		memset(ip, 0, 20);
		ip[0] = 0x45;
		put_be16(ip + 2, (uint16_t)total);
		put_be16(ip + 4, n.echo_seq);
		put_be16(ip + 6, 0x4000); /* don't fragment */
		ip[8] = 64;
		ip[9] = 1;
		memcpy(ip + 12, n.ip, 4);
		memcpy(ip + 16, n.peer_ip, 4);
		put_be16(ip + 10, csum(ip, 20));
		icmp[0] = 8;
		icmp[1] = 0;
		put_be16(icmp + 2, 0);
		put_be16(icmp + 4, n.echo_id);
		put_be16(icmp + 6, n.echo_seq);
		for (uint32_t i = 8; i < total - 20; i++)
			icmp[i] = (uint8_t)(i + n.echo_seq);
		put_be16(icmp + 2, csum(icmp, total - 20));
		t = chase_rdtsc();
		tx_send(slot, (uint32_t)size);
		for (;;) {
			bool any = rx_all();

			if (n.echo_got)
				break;
			now = chase_rdtsc();
			if (now - t > hz) {
				lost++;
				break;
			}
			if (!any && n.d->use_irq)
				virtq_wait(n.rx, t + hz - now);
			else if (!any)
				__asm__ volatile("pause");
		}
		if (n.echo_got) {
			uint64_t c = n.echo_t - t;

			rtt[nrtt++] = (uint32_t)c;
			sum += c;
			min = c < min ? c : min;
			max = c > max ? c : max;
		}
		tx_reclaim();
	}
	puts_("netbench mode=echo size=");
	putu(size);
	if (nrtt) {
		uint32_t med = kth(rtt, (long)nrtt, (long)(nrtt - 1) / 2);
		uint32_t p99 = kth(rtt, (long)nrtt, (long)((nrtt * 99 + 99) / 100) - 1);

		put_us("rtt_us_median", med, hz);
		put_us("rtt_us_p99", p99, hz);
		put_us("rtt_us_min", min, hz);
		put_us("rtt_us_max", max, hz);
		put_us("rtt_us_mean", sum / nrtt, hz);
	}
	put_kv("n", nrtt);
	put_kv("lost", lost);
	put_kv("late", n.echo_late);
	put_kv("bad", n.echo_bad);
	put_kv("ms", elapsed_ms(chase_rdtsc() - t0, hz));
	put_kv("tsc_mhz", hz / 1000000);
	put_kv("irqs", n.d->irqs);
	puts_("\n");
	if (!nrtt)
		fail("netbench: no echo request was answered");
}

void do_netbench(void)
{
	char mode[8] = "tx", ipstr[32];
	uint64_t size = arg_u64("size", 64), secs = arg_u64("secs", 5), hz;

	arg("mode", mode, sizeof(mode));
	if (size < 60 || size > TX_BUF - NET_HDR)
		fail("netbench: size must be 60..16372 (an Ethernet frame without the FCS)");
	if (!secs || secs > 3600)
		fail("netbench: secs must be 1..3600");
	if (str_eq(mode, "tx")) {
		n.mode = BENCH_TX;
		if (arg("ip", ipstr, sizeof(ipstr)) && !parse_ip(ipstr, n.ip, &n.prefix))
			fail("netbench: ip=A.B.C.D/N does not parse");
	} else if (str_eq(mode, "rx")) {
		n.mode = BENCH_RX;
	} else if (str_eq(mode, "echo")) {
		n.mode = BENCH_ECHO;
		parse_ip_arg("netbench");
	} else {
		fail("netbench: mode= is tx, rx or echo");
	}
	/* The TSC first: "net up" then means ready (mode=rx counts from the first frame). */
	hz = tsc_rate("netbench");
	net_start();
	if (n.mode == BENCH_TX)
		bench_tx(size, secs, hz);
	else if (n.mode == BENCH_RX)
		bench_rx(secs, hz);
	else
		bench_echo(size, secs, hz);
	pass(0);
}
