/*
 * The virtio-net workload of the test guest, on the first network device
 * (DeviceID 1) of the command line's virtio_mmio.device= entries, written from
 * the virtio 1.2 specification (5.1 Network Device).
 *
 *   test=net ip=A.B.C.D/N [count=N]
 *       prints "net up mac=xx:xx:xx:xx:xx:xx ip=A.B.C.D/N ...", then answers ARP
 *       requests for its address and ICMP echo requests to it; runs until the VMM stops
 *       it, or with count=N exits PASS after answering N echo requests, printing
 *       "net echoed=N arp=A ...".
 *   test=netbench mode=tx size=N secs=N [ip=A.B.C.D/N]
 *       keeps the transmit ring full of N-byte frames (60..16372; a UDP datagram to
 *       255.255.255.255 port 9 in a broadcast frame, no FCS) for secs s (the TSC against
 *       the PIT); prints "netbench mode=tx size=N pps=X mbps=Y frames=F ms=T ..." (MB/s
 *       of frame bytes, 10^6). Frames received meanwhile are dropped. mode=rx and echo:
 *       not yet.
 *
 * The driver: negotiates VERSION_1, MAC, MRG_RXBUF and EVENT_IDX as offered (no
 * checksum or segmentation offloads: every frame is whole and checksummed), receive
 * queue 0 and transmit queue 1 (no multiqueue, no control queue). Every frame on either
 * queue starts with the 12-byte struct virtio_net_hdr (num_buffers included with
 * VERSION_1); the receive ring holds page-sized device-writable buffers, one descriptor
 * each, so with MRG_RXBUF a frame may span num_buffers of them (gathered here). A frame
 * to send is the header and the frame in one descriptor (VERSION_1 allows any layout).
 * Used rings are polled, or with irq=1 waited on by interrupt; event_idx=, qsize= as for
 * the other virtio workloads.
 */
#include "chase.h"
#include "guest.h"
#include "virtio.h"

#define NET_F_MAC       5
#define NET_F_MRG_RXBUF 15
#define NET_F_STATUS    16
#define NET_CFG_MAC     0
#define NET_HDR         12 /* struct virtio_net_hdr with num_buffers (VERSION_1) */
#define PAGE            4096u
#define TX_SLOTS        32
#define TX_BUF          16384 /* header and frame: echo replies up to ~16 KiB (MTU 9000) */
#define FRAME_MAX       65536
#define WAIT_CYCLES     20000000000ull

#define ETH_ARP  0x0806
#define ETH_IPV4 0x0800

/* Buffers in guest RAM above the image (1.6 MiB: .bss would grow the image past 4 MiB). */
static uint8_t (*rx_bufs)[PAGE];
static uint8_t (*tx_bufs)[TX_BUF];
static uint8_t *frame; /* a received frame gathered from merged buffers */

static struct net {
	struct virtio_dev *d;
	struct virtq *rx, *tx;
	uint8_t mac[6], ip[4];
	unsigned prefix;
	bool mrg, bench;                    /* bench: received frames are counted and dropped */
	uint16_t rx_buf_of[VIRTQ_MAX_SIZE]; /* rx head -> buffer index */
	uint8_t tx_slot_of[VIRTQ_MAX_SIZE]; /* tx head -> slot */
	uint8_t tx_free[TX_SLOTS];
	unsigned ntx_free;
	uint64_t rx_frames, tx_frames, merged, arp, echoed, dropped, bad_csum, ignored;
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

	while (virtq_pop(n.tx, &id, &len))
		n.tx_free[n.ntx_free++] = n.tx_slot_of[id];
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

static void handle_arp(const uint8_t *f, uint32_t len)
{
	const uint8_t *a = f + 14;
	uint8_t slot, *o;

	if (len < 14 + 28 || be16(a) != 1 || be16(a + 2) != ETH_IPV4 || a[4] != 6 || a[5] != 4 ||
	    be16(a + 6) != 1 || !mem_eq(a + 24, n.ip, 4)) {
		n.ignored++;
		return;
	}
	slot = tx_slot();
	o = tx_bufs[slot] + NET_HDR;
	memcpy(o, a + 8, 6); /* to the asker */
	memcpy(o + 6, n.mac, 6);
	put_be16(o + 12, ETH_ARP);
	put_be16(o + 14, 1);
	put_be16(o + 16, ETH_IPV4);
	o[18] = 6;
	o[19] = 4;
	put_be16(o + 20, 2); /* reply */
	memcpy(o + 22, n.mac, 6);
	memcpy(o + 28, n.ip, 4);
	memcpy(o + 32, a + 8, 10); /* the asker's MAC and IP */
	tx_send(slot, 42);
	n.arp++;
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
	if (ip[ihl] != 8 || ip[ihl + 1] != 0) {
		n.ignored++; /* not an echo request */
		return;
	}
	slot = tx_slot();
	o = tx_bufs[slot] + NET_HDR;
	memcpy(o, f + 6, 6); /* back to the sender's MAC */
	memcpy(o + 6, n.mac, 6);
	put_be16(o + 12, ETH_IPV4);
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

static void handle_frame(const uint8_t *f, uint32_t len)
{
	static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

	n.rx_frames++;
	if (n.bench || len < 14 || (!mem_eq(f, n.mac, 6) && !mem_eq(f, bcast, 6))) {
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

/* Take one received frame (all of its merged buffers); false when none is there. */
static bool rx_one(void)
{
	uint32_t id, len, got, nbufs = 1;
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
	memcpy(frame, p + NET_HDR, got);
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
		if (got + len <= FRAME_MAX)
			memcpy(frame + got, rx_bufs[buf], len);
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

/* Find, negotiate and start the device, fill the receive ring, print "net up ...". */
static void net_start(void)
{
	struct virtio_opts o;

	virtio_opts_from_cmdline(&o);
	virtio_probe();
	rx_bufs = ram_alloc((uint64_t)VIRTQ_MAX_SIZE * PAGE, PAGE, "net");
	tx_bufs = ram_alloc((uint64_t)TX_SLOTS * TX_BUF, PAGE, "net");
	frame = ram_alloc(FRAME_MAX, PAGE, "net");
	n.d = virtio_find(VIRTIO_ID_NET);
	if (!n.d)
		fail("net: no network device (DeviceID 1, transport version 2) among the "
		     "virtio_mmio.device= entries");
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
	puts_(" mrg_rxbuf=");
	putu(n.mrg);
	puts_(" event_idx=");
	putu(virtio_has(n.d, VIRTIO_F_EVENT_IDX));
	puts_(" irq=");
	putu(n.d->use_irq);
	puts_(" rxq=");
	putu(n.rx->size);
	puts_(" txq=");
	putu(n.tx->size);
	puts_("\n");
}

static void parse_ip_arg(void)
{
	char ipstr[32];

	if (!arg("ip", ipstr, sizeof(ipstr)) || !parse_ip(ipstr, n.ip, &n.prefix))
		fail("net: ip=A.B.C.D/N is required");
}

void do_net(void)
{
	uint64_t count = arg_u64("count", 0);

	parse_ip_arg();
	net_start();
	for (;;) {
		bool any = false;

		while (rx_one())
			any = true;
		if (any)
			virtq_kick(n.rx); /* the buffers given back */
		tx_reclaim();
		if (!n.d->use_irq)
			virtio_ack(n.d);
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
	puts_(" arp=");
	putu(n.arp);
	puts_(" rx_frames=");
	putu(n.rx_frames);
	puts_(" tx_frames=");
	putu(n.tx_frames);
	puts_(" merged=");
	putu(n.merged);
	puts_(" ignored=");
	putu(n.ignored);
	puts_(" bad_csum=");
	putu(n.bad_csum);
	puts_(" dropped=");
	putu(n.dropped);
	puts_(" rx_notifies=");
	putu(n.rx->notifies);
	puts_(" tx_notifies=");
	putu(n.tx->notifies);
	puts_(" irqs=");
	putu(n.d->irqs);
	puts_("\n");
	pass(0);
}

/* ---- test=netbench mode=tx ---- */

/* A UDP datagram to 255.255.255.255 port 9 (discard) in a broadcast frame of @size
 * bytes (without the FCS), from our MAC and address. */
static void bench_frame(uint8_t *f, uint32_t size)
{
	uint8_t *ip = f + 14, *udp = ip + 20;
	uint32_t total = size - 14;

	memset(f, 0, size);
	memset(f, 0xff, 6);
	memcpy(f + 6, n.mac, 6);
	put_be16(f + 12, ETH_IPV4);
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

static void put_tenths(uint64_t t)
{
	putu(t / 10);
	putc_('.');
	putu(t % 10);
}

void do_netbench(void)
{
	char mode[8] = "tx";
	uint64_t size = arg_u64("size", 64), secs = arg_u64("secs", 5), hz, t0, end, now;
	uint64_t sent = 0, done = 0, cycles, ms;
	char ipstr[32];

	arg("mode", mode, sizeof(mode));
	if (!str_eq(mode, "tx"))
		fail("netbench: only mode=tx is implemented");
	if (size < 60 || size > TX_BUF - NET_HDR || size > 65535)
		fail("netbench: size must be 60..16372 (an Ethernet frame without the FCS)");
	if (!secs || secs > 3600)
		fail("netbench: secs must be 1..3600");
	if (arg("ip", ipstr, sizeof(ipstr)) && !parse_ip(ipstr, n.ip, &n.prefix))
		fail("netbench: ip=A.B.C.D/N does not parse");
	net_start();
	n.bench = true;
	hz = tsc_rate("netbench");
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
			sent++;
			posted = true;
		}
		if (posted)
			virtq_kick(n.tx);
		while (virtq_pop(n.tx, &id, &len)) {
			n.tx_free[n.ntx_free++] = n.tx_slot_of[id];
			done++;
		}
		while (rx_one()) /* whatever comes in: dropped (n.bench) */
			;
		if (!n.d->use_irq)
			virtio_ack(n.d);
		else if (!n.ntx_free)
			virtq_wait(n.tx, hz);
	}
	cycles = chase_rdtsc() - t0;
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
	ms = cycles / (hz / 1000);
	if (!ms)
		ms = 1;
	puts_(" pps=");
	putu(done * 1000 / ms);
	/* MB/s of frame bytes (10^6) in tenths: bytes * 10 / 10^6 / (ms / 10^3) */
	puts_(" mbps=");
	put_tenths(done * size / (ms * 100));
	puts_(" frames=");
	putu(done);
	puts_(" ms=");
	putu(ms);
	puts_(" tsc_mhz=");
	putu(hz / 1000000);
	puts_(" tx_notifies=");
	putu(n.tx->notifies);
	puts_(" irqs=");
	putu(n.d->irqs);
	puts_("\n");
	pass(0);
}
