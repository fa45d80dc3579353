#include "devices/virtio/net.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/ethtool.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_mmio.h>
#include <linux/virtio_net.h>
#include <net/if.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

#define RXQ 0
#define TXQ 1
/* Frames handled per wake-up before the loop's other work gets a turn. */
#define NET_BATCH 256
/* The frame buffer: larger than any frame, so a read that fills it was truncated. */
#define FRAME_BUF (NET_HDR_LEN + NET_FRAME_MAX + 4096u)

#define F(b) (1ull << (b))

/* Whether interface @name of this network namespace is driven by tun (a tun or a tap). */
static bool is_tun(const char *name)
{
	struct ethtool_drvinfo info = {.cmd = ETHTOOL_GDRVINFO};
	struct ifreq ifr = {.ifr_data = (void *)&info};
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	bool tun;

	if (s < 0)
		return true; /* cannot tell: TUNSETIFF will */
	memcpy(ifr.ifr_name, name, strlen(name) + 1);
	tun = ioctl(s, SIOCETHTOOL, &ifr) ? errno != EOPNOTSUPP : !strcmp(info.driver, "tun");
	close(s);
	return tun;
}

int tap_open(const char *name, char *why, size_t whylen)
{
	struct ifreq ifr = {.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR};
	int hdr = NET_HDR_LEN, fd, e;

	if (!name[0] || strlen(name) >= IFNAMSIZ || strchr(name, '/')) {
		snprintf(why, whylen, "\"%s\" is not an interface name (1 to %d characters, no '/')",
			 name, IFNAMSIZ - 1);
		return -EINVAL;
	}
	/* TUNSETIFF would create a missing tap (with CAP_NET_ADMIN): hugevmm never does. */
	if (!if_nametoindex(name)) {
		snprintf(why, whylen,
			 "no network interface \"%s\" exists; create the tap first (ip tuntap add "
			 "dev %s mode tap user $USER; ip link set %s up)",
			 name, name, name);
		return -ENODEV;
	}
	/*
	 * Whether it is a tun/tap at all, asked of this network namespace (not /sys, which
	 * shows the namespace it was mounted in: a VMM moved by setns, as Firecracker's
	 * jailer does, would read another namespace's interfaces there).
	 */
	if (!is_tun(name)) {
		snprintf(why, whylen,
			 "\"%s\" is not a tap device (it exists, but not as a tun/tap interface); "
			 "name a tap made with ip tuntap add dev NAME mode tap",
			 name);
		return -ENODEV;
	}
	fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		e = errno;
		snprintf(why, whylen, "\"%s\": cannot open /dev/net/tun: %s%s", name, strerror(e),
			 e == EACCES ? " (give this user access to /dev/net/tun)" : "");
		return -e;
	}
	memcpy(ifr.ifr_name, name, strlen(name) + 1);
	if (ioctl(fd, TUNSETIFF, &ifr)) {
		e = errno;
		snprintf(why, whylen, "\"%s\": cannot attach to the tap: %s; %s", name, strerror(e),
			 e == EBUSY	? "another process has it (a tap without multi_queue has one "
					  "user at a time)"
			 : e == EPERM	? "this user may not use it (make it with ip tuntap add ... "
					  "user $USER, or run with CAP_NET_ADMIN)"
			 : e == EINVAL ? "it is a TUN device or was made with other flags "
					  "(multi_queue?); make it with ip tuntap add dev NAME mode tap"
					: "check the device");
		close(fd);
		return -e;
	}
	if (ioctl(fd, TUNSETVNETHDRSZ, &hdr) || ioctl(fd, TUNSETOFFLOAD, 0)) {
		e = errno;
		snprintf(why, whylen, "\"%s\": cannot set the tap's virtio-net header: %s", name,
			 strerror(e));
		close(fd);
		return -e;
	}
	return fd;
}

static struct virtio_net *of(struct virtio_mmio *t)
{
	return t->priv;
}

static bool acked(const struct virtio_net *n, unsigned bit)
{
	return n->acked & F(bit);
}

/* ---- receive ---- */

static void rx_process(struct virtio_net *n);

static void on_tap_in(void *arg, int res)
{
	struct virtio_net *n = arg;

	pthread_mutex_lock(&n->t.lock);
	if (res < 0 || !virtio_mmio_live(&n->t) || !n->t.vq[RXQ].ready) {
		/* A reset (or the loop's error): stop reading until the driver is back. */
		n->t.host->unwatch(n->t.host->opaque, n->w_rx);
		n->w_rx = NULL;
	} else {
		n->st.rx_tap_event_count++;
		rx_process(n);
	}
	pthread_mutex_unlock(&n->t.lock);
}

/* Read the tap (from the loop's thread) or not: level-triggered, so only with room. */
static void rx_watch(struct virtio_net *n, bool on)
{
	if (on == !!n->w_rx)
		return;
	if (!on) {
		n->t.host->unwatch(n->t.host->opaque, n->w_rx);
		n->w_rx = NULL;
		return;
	}
	n->w_rx = n->t.host->watch(n->t.host->opaque, n->tap, POLLIN, on_tap_in, n);
	if (!n->w_rx)
		log_warn("net %s: cannot watch the tap; receiving waits for the next buffers", n->id);
}

static void rx_resume(void *arg, int res)
{
	struct virtio_net *n = arg;

	(void)res;
	pthread_mutex_lock(&n->t.lock);
	n->t_rx = NULL;
	if (virtio_mmio_live(&n->t) && n->t.vq[RXQ].ready)
		rx_process(n);
	pthread_mutex_unlock(&n->t.lock);
}

/*
 * Read one frame into n->frame: 1, 0 when the tap is empty (or gave only frames
 * it could not use, NET_BATCH of them: the loop comes back), -1 when it failed for
 * good (reading stops).
 */
static int rx_read(struct virtio_net *n)
{
	for (unsigned tries = 0; tries < NET_BATCH; tries++) {
		ssize_t r = read(n->tap, n->frame, FRAME_BUF);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			n->st.tap_read_fails++;
			log_warn("net %s: reading the tap: %s; receiving stops", n->id,
				 strerror(errno));
			return -1;
		}
		if ((size_t)r < NET_HDR_LEN + 14) {
			n->st.tap_read_fails++; /* no room for an Ethernet header */
			continue;
		}
		if ((size_t)r > NET_HDR_LEN + NET_FRAME_MAX) {
			n->st.rx_dropped_too_big++; /* over the limit, or truncated by the read */
			continue;
		}
		n->pend = (uint32_t)r;
		return 1;
	}
	return 0;
}

/*
 * Copy the pending frame into receive chains: 1 when delivered (or dropped:
 * it can never fit), 0 when the guest has too little room now (nothing taken),
 * -1 when the guest broke a rule.
 */
static int rx_deliver(struct virtio_net *n)
{
	struct vq *q = &n->t.vq[RXQ];
	struct vq_chain *c = &n->chain;
	volatile uint8_t *nb[2] = {NULL, NULL}; /* where num_buffers lives in the first chain */
	uint64_t room = 0; /* a chain may hold up to 4 GiB: a 32-bit sum could wrap */
	uint32_t off = 0;
	unsigned k = 0;
	char why[VQ_WHY_LEN];
	uint64_t wait;

	/* Take chains until the frame fits (one without MRG_RXBUF). */
	while (room < n->pend) {
		int got;

		if (k == q->size || (k == 1 && !acked(n, VIRTIO_NET_F_MRG_RXBUF))) {
			/* Every buffer the guest can give is too small: it never fits. */
			while (k--)
				vq_unpop(q);
			n->st.rx_dropped_too_big++;
			return 1;
		}
		got = vq_pop(q, c, why);
		if (got < 0) {
			while (k--)
				vq_unpop(q);
			virtio_mmio_needs_reset(&n->t, why);
			return -1;
		}
		if (!got) {
			while (k--)
				vq_unpop(q);
			n->st.no_rx_avail_buffer++;
			return 0;
		}
		n->heads[k] = c->head;
		n->lens[k] = (uint32_t)MIN(c->out_len, n->pend - room);
		room += c->out_len;
		if (k == 0) {
			/* The header's num_buffers (bytes 10 and 11) in the first chain. */
			uint32_t at = 0;

			for (unsigned i = 0; i < c->n && (!nb[0] || !nb[1]); i++) {
				if (!c->buf[i].write)
					continue;
				for (unsigned b = 0; b < 2; b++)
					if (!nb[b] && at + c->buf[i].len > 10 + b)
						nb[b] = c->buf[i].hva + (10 + b - at);
				at += c->buf[i].len;
			}
			if (!nb[1]) { /* a first buffer under 12 bytes cannot take the header */
				k++;
				while (k--)
					vq_unpop(q);
				virtio_mmio_needs_reset(&n->t, "receive buffer shorter than the "
							       "virtio-net header");
				return -1;
			}
		}
		off += vq_chain_write(c, n->frame + off, n->lens[k]);
		k++;
	}
	wait = rl_take(&n->rx_rl, n->pend - NET_HDR_LEN, 1, now_ns());
	if (wait) {
		/* Copied, but not given: the chains go back and are filled again later. */
		while (k--)
			vq_unpop(q);
		n->st.rx_rate_limiter_throttled++;
		n->t_rx = n->t.host->timer(n->t.host->opaque, wait, rx_resume, n);
		if (!n->t_rx)
			log_warn("net %s: cannot arm the rx rate limiter's timer", n->id);
		return 0;
	}
	*nb[0] = (uint8_t)k;
	*nb[1] = (uint8_t)(k >> 8);
	for (unsigned i = 0; i < k; i++)
		vq_push(q, n->heads[i], n->lens[i]);
	n->st.rx_packets_count++;
	n->st.rx_bytes_count += n->pend - NET_HDR_LEN;
	return 1;
}

/*
 * One interrupt for what both queues gave back since the last, if the driver wants
 * one (EVENT_IDX or NO_INTERRUPT, per queue): the device has one interrupt line.
 */
static void signal_used(struct virtio_net *n)
{
	bool want = false;

	if (n->tx_unsignalled)
		want |= vq_should_notify(&n->t.vq[TXQ]);
	if (n->rx_unsignalled)
		want |= vq_should_notify(&n->t.vq[RXQ]);
	n->tx_unsignalled = n->rx_unsignalled = false;
	if (want)
		virtio_mmio_interrupt(&n->t, VIRTIO_MMIO_INT_VRING);
}

static void rx_process(struct virtio_net *n)
{
	struct vq *q = &n->t.vq[RXQ];
	bool room = true;

	if (n->t_rx || n->rx_dead)
		return; /* throttled: the timer resumes */
	for (unsigned i = 0; i < NET_BATCH; i++) {
		uint16_t before = q->used_idx;
		int r;

		if (!n->pend) {
			r = rx_read(n);
			if (r < 0)
				n->rx_dead = true;
			if (r <= 0)
				break;
		}
		r = rx_deliver(n);
		if (r < 0)
			return;
		if (q->used_idx != before) {
			n->rx_unsignalled = true;
			/*
			 * The first frame of a wake-up is signalled at once, not after the read
			 * that finds the tap empty: a lone answer reaches the guest a system
			 * call sooner; a burst still gets one more interrupt at its end at most.
			 */
			if (!i)
				signal_used(n);
		}
		if (!r) {
			room = false; /* no room (the guest's next buffers kick us) or throttled */
			break;
		}
		n->pend = 0;
	}
	rx_watch(n, room && !n->t_rx && !n->rx_dead);
	signal_used(n);
}

/* ---- transmit ---- */

static void tx_process(struct virtio_net *n);

static void tx_resume(void *arg, int res)
{
	struct virtio_net *n = arg;

	(void)res;
	pthread_mutex_lock(&n->t.lock);
	n->t_tx = NULL;
	if (virtio_mmio_live(&n->t) && n->t.vq[TXQ].ready)
		tx_process(n);
	pthread_mutex_unlock(&n->t.lock);
}

static void on_tap_out(void *arg, int res)
{
	struct virtio_net *n = arg;

	pthread_mutex_lock(&n->t.lock);
	n->t.host->unwatch(n->t.host->opaque, n->w_tx);
	n->w_tx = NULL;
	if (res > 0 && virtio_mmio_live(&n->t) && n->t.vq[TXQ].ready)
		tx_process(n);
	pthread_mutex_unlock(&n->t.lock);
}

/* Why the header in @h cannot go to the tap, or NULL. */
static const char *tx_header_bad(const struct virtio_net *n, const struct virtio_net_hdr_v1 *h)
{
	uint8_t gso = h->gso_type & ~VIRTIO_NET_HDR_GSO_ECN;

	if ((h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) && !acked(n, VIRTIO_NET_F_CSUM))
		return "checksum offload without VIRTIO_NET_F_CSUM";
	if (gso == VIRTIO_NET_HDR_GSO_NONE)
		return (h->gso_type & VIRTIO_NET_HDR_GSO_ECN) ? "ECN without GSO" : NULL;
	if (h->gso_type & VIRTIO_NET_HDR_GSO_ECN)
		return "GSO with ECN (VIRTIO_NET_F_HOST_ECN is not offered)";
	if (gso == VIRTIO_NET_HDR_GSO_TCPV4 && acked(n, VIRTIO_NET_F_HOST_TSO4))
		return NULL;
	if (gso == VIRTIO_NET_HDR_GSO_TCPV6 && acked(n, VIRTIO_NET_F_HOST_TSO6))
		return NULL;
	return "a GSO type that was not negotiated";
}

/*
 * Send one chain's frame: 1 when the chain is done with (sent or dropped),
 * 0 when it must wait (tap full, throttled; the chain went back).
 */
static int tx_one(struct virtio_net *n, const struct vq_chain *c)
{
	struct iovec iov[VQ_MAX_BUFS + 1];
	struct virtio_net_hdr_v1 h;
	uint32_t got = 0, frame;
	unsigned niov = 1;
	uint64_t wait;
	const char *bad;
	ssize_t w;

	if (c->in_len < NET_HDR_LEN) {
		n->st.tx_malformed_header++;
		goto malformed;
	}
	frame = c->in_len - NET_HDR_LEN;
	if (frame > NET_FRAME_MAX || frame < 14) {
		n->st.tx_malformed_size++;
		goto malformed;
	}
	/* The header is copied (the guest may change its memory under us), then the frame. */
	for (unsigned i = 0; i < c->n; i++) {
		const struct vq_buf *b = &c->buf[i];
		uint32_t take;

		if (b->write)
			break; /* device-writable pieces of a transmit chain are ignored */
		take = got < NET_HDR_LEN ? MIN(b->len, NET_HDR_LEN - got) : 0;
		memcpy((uint8_t *)&h + got, b->hva, take);
		got += take;
		if (take < b->len)
			iov[niov++] = (struct iovec){.iov_base = b->hva + take, .iov_len = b->len - take};
	}
	bad = tx_header_bad(n, &h);
	if (bad) {
		n->st.tx_malformed_offload++;
		log_debug("net %s: transmit frame dropped: %s", n->id, bad);
		goto malformed;
	}
	wait = n->tx_paid ? 0 : rl_take(&n->tx_rl, frame, 1, now_ns());
	if (wait) {
		n->st.tx_rate_limiter_throttled++;
		n->t_tx = n->t.host->timer(n->t.host->opaque, wait, tx_resume, n);
		if (!n->t_tx)
			log_warn("net %s: cannot arm the tx rate limiter's timer", n->id);
		return 0;
	}
	h.num_buffers = 0;
	iov[0] = (struct iovec){.iov_base = &h, .iov_len = NET_HDR_LEN};
	do
		w = writev(n->tap, iov, (int)niov);
	while (w < 0 && errno == EINTR);
	if (w < 0 && errno == EAGAIN) {
		/* The tokens were taken (not again); the frame goes once the tap has room. */
		n->tx_paid = true;
		n->st.no_tx_avail_buffer++;
		n->w_tx = n->t.host->watch(n->t.host->opaque, n->tap, POLLOUT, on_tap_out, n);
		if (!n->w_tx) {
			log_warn("net %s: cannot watch the tap; a transmit frame is dropped", n->id);
			n->st.tap_write_fails++;
			return 1;
		}
		return 0;
	}
	n->tx_paid = false;
	if (w < 0) {
		n->st.tap_write_fails++;
		log_debug("net %s: tap write: %s; frame dropped", n->id, strerror(errno));
		return 1;
	}
	n->st.tx_packets_count++;
	n->st.tx_bytes_count += frame;
	return 1;

malformed:
	n->st.tx_malformed_frames++;
	return 1;
}

static void tx_process(struct virtio_net *n)
{
	struct vq *q = &n->t.vq[TXQ];
	struct vq_chain *c = &n->chain;
	bool pushed = false;
	char why[VQ_WHY_LEN];
	unsigned i;

	if (n->t_tx || n->w_tx)
		return; /* waiting for the rate limiter or the tap */
	for (i = 0; i < NET_BATCH; i++) {
		int got = vq_pop(q, c, why);

		if (got < 0) {
			virtio_mmio_needs_reset(&n->t, why);
			return;
		}
		if (!got)
			break;
		if (!tx_one(n, c)) {
			vq_unpop(q);
			break;
		}
		vq_push(q, c->head, 0);
		pushed = n->tx_unsignalled = true;
	}
	if (i == NET_BATCH && !n->t_tx) {
		/* More may wait: let the loop breathe, then go on. */
		n->t_tx = n->t.host->timer(n->t.host->opaque, 0, tx_resume, n);
	}
	/*
	 * A frame written to a tap is handled by the host's stack before writev returns
	 * (softirq on the way out), so an answer (ARP, ICMP, a TCP ACK) may be in the tap
	 * already: deliver it now rather than after another trip round the loop, under the
	 * same interrupt as the transmitted chains.
	 */
	if (pushed && n->t.vq[RXQ].ready && n->w_rx)
		rx_process(n);
	signal_used(n);
}

/* ---- the transport's callbacks ---- */

static void net_notify(struct virtio_mmio *t, unsigned qi)
{
	struct virtio_net *n = of(t);

	if (qi == TXQ) {
		n->st.tx_queue_event_count++;
		tx_process(n);
	} else if (qi == RXQ) {
		n->st.rx_queue_event_count++;
		rx_process(n); /* a waiting frame first; then reading resumes */
	}
}

static void set_offloads(struct virtio_net *n, unsigned off)
{
	if (off == n->offloads)
		return;
	if (ioctl(n->tap, TUNSETOFFLOAD, (unsigned long)off)) {
		log_warn("net %s: TUNSETOFFLOAD 0x%x: %s; the tap keeps 0x%x", n->id, off,
			 strerror(errno), n->offloads);
		return;
	}
	n->offloads = off;
}

static void net_activate(struct virtio_mmio *t)
{
	struct virtio_net *n = of(t);
	unsigned off = 0;

	n->acked = t->driver_features;
	/* What the tap may hand us is what the guest takes (the spec ties TSO to CSUM). */
	if (acked(n, VIRTIO_NET_F_GUEST_CSUM)) {
		off |= TUN_F_CSUM;
		if (acked(n, VIRTIO_NET_F_GUEST_TSO4))
			off |= TUN_F_TSO4;
		if (acked(n, VIRTIO_NET_F_GUEST_TSO6))
			off |= TUN_F_TSO6;
	}
	set_offloads(n, off);
	/* Reading starts on the loop, when the driver's first receive buffers kick us. */
}

static void net_reset(struct virtio_mmio *t)
{
	struct virtio_net *n = of(t);

	/*
	 * A vCPU's thread: the loop's watches and timers are left to find the device not
	 * live and stand down. A frame read but not delivered is dropped with the queues.
	 */
	n->acked = 0;
	n->pend = 0;
	n->tx_paid = false;
	n->rx_unsignalled = n->tx_unsignalled = false;
	set_offloads(n, 0);
}

static void net_config_read(struct virtio_mmio *t, uint32_t off, void *data, unsigned len)
{
	memcpy(data, of(t)->config + off, len);
}

int virtio_net_init(struct virtio_net *n, const struct dev_host *host,
		    const struct guest_mem *mem, uint64_t base, unsigned gsi, int tap,
		    const struct virtio_net_cfg *cfg)
{
	memset(n, 0, sizeof(*n));
	n->tap = tap;
	snprintf(n->id, sizeof(n->id), "%s", cfg->id);
	n->frame = malloc(FRAME_BUF);
	if (!n->frame) {
		close(tap);
		n->tap = -1;
		return -ENOMEM;
	}
	memcpy(n->config, cfg->mac, 6);
	n->config[8] = 1; /* max_virtqueue_pairs (read only with MQ, which is not offered) */
	n->config[10] = (uint8_t)cfg->mtu;
	n->config[11] = (uint8_t)(cfg->mtu >> 8);
	n->ops = (struct virtio_dev_ops){
		.name = "net",
		.device_id = VIRTIO_ID_NET,
		.nqueues = 2,
		.queue_max = VQ_MAX_SIZE,
		.features = F(VIRTIO_NET_F_MAC) | F(VIRTIO_NET_F_CSUM) | F(VIRTIO_NET_F_GUEST_CSUM) |
			    F(VIRTIO_NET_F_HOST_TSO4) | F(VIRTIO_NET_F_HOST_TSO6) |
			    F(VIRTIO_NET_F_GUEST_TSO4) | F(VIRTIO_NET_F_GUEST_TSO6) |
			    F(VIRTIO_NET_F_MRG_RXBUF) | (cfg->mtu ? F(VIRTIO_NET_F_MTU) : 0),
		.config_len = sizeof(n->config),
		.config_read = net_config_read,
		.notify = net_notify,
		.activate = net_activate,
		.reset = net_reset,
	};
	rl_init(&n->rx_rl, cfg->rx_rl, now_ns());
	rl_init(&n->tx_rl, cfg->tx_rl, now_ns());
	return virtio_mmio_init(&n->t, &n->ops, n, host, mem, "net", base, gsi);
}

void virtio_net_set_limits(struct virtio_net *n, const struct rl_cfg *rx, const struct rl_cfg *tx)
{
	pthread_mutex_lock(&n->t.lock);
	if (rx)
		rl_init(&n->rx_rl, rx, now_ns());
	if (tx)
		rl_init(&n->tx_rl, tx, now_ns());
	/* A throttled queue waits for its timer, which now asks the new buckets. */
	pthread_mutex_unlock(&n->t.lock);
}

void virtio_net_stop(struct virtio_net *n)
{
	pthread_mutex_lock(&n->t.lock);
	n->t.host->unwatch(n->t.host->opaque, n->w_rx);
	n->t.host->unwatch(n->t.host->opaque, n->w_tx);
	n->t.host->timer_cancel(n->t.host->opaque, n->t_rx);
	n->t.host->timer_cancel(n->t.host->opaque, n->t_tx);
	n->w_rx = n->w_tx = n->t_rx = n->t_tx = NULL;
	pthread_mutex_unlock(&n->t.lock);
}

void virtio_net_destroy(struct virtio_net *n)
{
	virtio_mmio_destroy(&n->t);
	if (n->tap >= 0)
		close(n->tap);
	n->tap = -1;
	free(n->frame);
	n->frame = NULL;
}

void virtio_net_stats(struct virtio_net *n, struct virtio_net_stats *out)
{
	pthread_mutex_lock(&n->t.lock);
	*out = n->st;
	pthread_mutex_unlock(&n->t.lock);
}
