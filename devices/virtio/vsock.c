#include "devices/virtio/vsock.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_mmio.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

#define RXQ 0
#define TXQ 1
#define EVQ 2
/* Packets handled per wake-up before the loop's other work gets a turn. */
#define VSOCK_BATCH 256
/* Pending RSTs for packets that match no connection (more are dropped: the guest times out). */
#define STRAY_MAX 64
#define HASH_SIZE 256

/* Control packets a connection owes the guest, sent in this order. */
enum {
	P_RESPONSE = 1u << 0,
	P_REQUEST = 1u << 1,
	P_CREDIT_UPDATE = 1u << 2,
	P_CREDIT_REQUEST = 1u << 3,
	P_SHUTDOWN = 1u << 4,
	P_RST = 1u << 5,
};

enum conn_state {
	C_HANDSHAKE, /* a host client: waiting for its "CONNECT <port>\n" */
	C_REQUESTED, /* REQUEST sent to the guest: waiting for RESPONSE or RST */
	C_OPEN,      /* bytes flow */
	C_DEAD,      /* owes the guest its last packets (RST), then freed */
};

struct link {
	struct link *prev, *next;
};

struct conn {
	struct vsock_state *s;
	struct conn *hnext; /* hash chain */
	struct link ctl;    /* in s->ctl: owes the guest control packets */
	struct link rd;     /* in s->rd: the host socket may have bytes for the guest */
	enum conn_state state;
	uint64_t epoch; /* the driver it belongs to (a reset drops older ones) */
	int fd;
	void *w_in, *w_out, *t_kill;
	uint32_t local_port; /* our port (CID 2) */
	uint32_t peer_port;  /* the guest's */
	bool host_initiated, counted_open;
	char line[VSOCK_LINE_MAX];
	unsigned line_len;
	unsigned pend;         /* P_*: owed to the guest */
	uint32_t shut_flags;   /* the SHUTDOWN owed: VSOCK_SHUTDOWN_* */

	/* Guest -> host. */
	uint32_t rx_cnt;   /* bytes taken from the guest */
	uint32_t fwd_cnt;  /* of those, written to the host socket */
	uint32_t fwd_told; /* fwd_cnt the guest last heard */
	uint8_t *buf;      /* what the host socket did not take: rx_cnt - fwd_cnt bytes */
	uint32_t buf_head; /* ring offset of the oldest byte */
	bool guest_no_send, guest_no_recv; /* the guest's SHUTDOWN flags */
	bool host_wr_shut;                 /* shutdown(SHUT_WR) done */

	/* Host -> guest. */
	uint32_t tx_cnt; /* bytes given to the guest */
	uint32_t peer_buf_alloc, peer_fwd_cnt;
	bool credit_wait, credit_asked; /* no credit: waiting for the guest's update */
	bool host_eof;                  /* the host socket said EOF */
};

struct stray {
	uint32_t src_port, dst_port; /* as the RST goes out: ours, the guest's */
};

struct vsock_state {
	struct conn *hash[HASH_SIZE];
	struct link ctl, rd; /* FIFOs of connections */
	unsigned nconns;
	uint32_t next_port;
	uint64_t epoch, swept; /* driver generations: current, connections dropped up to */
	int reset_fd;          /* a reset on a vCPU thread wakes the loop to drop connections */
	void *w_reset, *t_rx, *t_tx;
	struct stray stray[STRAY_MAX];
	unsigned nstray;
	bool rx_unsignalled, tx_unsignalled;
	char uds[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct virtio_mmio *owner;
	struct vq_chain chain;
};

static struct virtio_vsock *of(struct virtio_mmio *t)
{
	return t->priv;
}

static struct virtio_vsock *dev_of(struct conn *c);

/* ---- little helpers ---- */

static void link_init(struct link *l)
{
	l->prev = l->next = l;
}

static bool linked(const struct link *l)
{
	return l->next != l;
}

static void link_del(struct link *l)
{
	l->prev->next = l->next;
	l->next->prev = l->prev;
	link_init(l);
}

static void link_tail(struct link *head, struct link *l)
{
	if (linked(l))
		return;
	l->prev = head->prev;
	l->next = head;
	head->prev->next = l;
	head->prev = l;
}

static uint64_t ld(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void st(uint8_t *p, uint64_t v, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

void vsock_hdr_decode(struct vsock_hdr *h, const uint8_t *w)
{
	h->src_cid = ld(w, 8);
	h->dst_cid = ld(w + 8, 8);
	h->src_port = (uint32_t)ld(w + 16, 4);
	h->dst_port = (uint32_t)ld(w + 20, 4);
	h->len = (uint32_t)ld(w + 24, 4);
	h->type = (uint16_t)ld(w + 28, 2);
	h->op = (uint16_t)ld(w + 30, 2);
	h->flags = (uint32_t)ld(w + 32, 4);
	h->buf_alloc = (uint32_t)ld(w + 36, 4);
	h->fwd_cnt = (uint32_t)ld(w + 40, 4);
}

void vsock_hdr_encode(const struct vsock_hdr *h, uint8_t *w)
{
	st(w, h->src_cid, 8);
	st(w + 8, h->dst_cid, 8);
	st(w + 16, h->src_port, 4);
	st(w + 20, h->dst_port, 4);
	st(w + 24, h->len, 4);
	st(w + 28, h->type, 2);
	st(w + 30, h->op, 2);
	st(w + 32, h->flags, 4);
	st(w + 36, h->buf_alloc, 4);
	st(w + 40, h->fwd_cnt, 4);
}

/* Copy @len bytes from offset @off of the chain's readable buffers; bytes copied. */
static uint32_t chain_read(const struct vq_chain *c, uint32_t off, void *dst, uint32_t len)
{
	uint8_t *d = dst;
	uint32_t done = 0;

	for (unsigned i = 0; i < c->n && done < len; i++) {
		uint32_t n;

		if (c->buf[i].write)
			continue;
		if (off >= c->buf[i].len) {
			off -= c->buf[i].len;
			continue;
		}
		n = MIN(c->buf[i].len - off, len - done);
		memcpy(d + done, c->buf[i].hva + off, n);
		done += n;
		off = 0;
	}
	return done;
}

/* The pieces of the chain's @dir buffers from offset @off, at most @len bytes, into @iov. */
static unsigned chain_iov(const struct vq_chain *c, bool dir, uint32_t off, uint32_t len,
			  struct iovec *iov, unsigned max)
{
	unsigned n = 0;

	for (unsigned i = 0; i < c->n && len && n < max; i++) {
		uint32_t k;

		if (c->buf[i].write != dir)
			continue;
		if (off >= c->buf[i].len) {
			off -= c->buf[i].len;
			continue;
		}
		k = MIN(c->buf[i].len - off, len);
		iov[n++] = (struct iovec){.iov_base = c->buf[i].hva + off, .iov_len = k};
		len -= k;
		off = 0;
	}
	return n;
}

/* writev to a socket without SIGPIPE (a peer that went is an error, not a signal). */
static ssize_t sendv(int fd, struct iovec *iov, unsigned n)
{
	struct msghdr m = {.msg_iov = iov, .msg_iovlen = n};
	ssize_t w;

	do
		w = sendmsg(fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (w < 0 && errno == EINTR);
	return w;
}

/* ---- connections ---- */

static unsigned hkey(uint32_t local, uint32_t peer)
{
	return (local * 2654435761u ^ peer * 40503u) % HASH_SIZE;
}

static struct conn *find(struct vsock_state *s, uint32_t local, uint32_t peer)
{
	for (struct conn *c = s->hash[hkey(local, peer)]; c; c = c->hnext)
		if (c->local_port == local && c->peer_port == peer && c->state != C_HANDSHAKE)
			return c;
	return NULL;
}

static bool local_port_used(struct vsock_state *s, uint32_t port)
{
	for (unsigned i = 0; i < HASH_SIZE; i++)
		for (struct conn *c = s->hash[i]; c; c = c->hnext)
			if (c->local_port == port)
				return true;
	return false;
}

static void hash_add(struct vsock_state *s, struct conn *c)
{
	unsigned k = hkey(c->local_port, c->peer_port);

	c->hnext = s->hash[k];
	s->hash[k] = c;
}

static void hash_del(struct vsock_state *s, struct conn *c)
{
	for (struct conn **p = &s->hash[hkey(c->local_port, c->peer_port)]; *p; p = &(*p)->hnext)
		if (*p == c) {
			*p = c->hnext;
			return;
		}
}

static struct conn *conn_new(struct virtio_vsock *v, int fd, uint32_t local, uint32_t peer,
			     enum conn_state state)
{
	struct vsock_state *s = v->s;
	struct conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->s = s;
	c->fd = fd;
	c->local_port = local;
	c->peer_port = peer;
	c->state = state;
	c->epoch = s->epoch;
	link_init(&c->ctl);
	link_init(&c->rd);
	hash_add(s, c);
	s->nconns++;
	v->st.conns_added++;
	return c;
}

static void unwatch(struct virtio_vsock *v, void **w)
{
	if (*w)
		v->t.host->unwatch(v->t.host->opaque, *w);
	*w = NULL;
}

static void cancel(struct virtio_vsock *v, void **t)
{
	if (*t)
		v->t.host->timer_cancel(v->t.host->opaque, *t);
	*t = NULL;
}

static void buffered_add(struct virtio_vsock *v, int64_t d)
{
	v->st.buffered_bytes += (uint64_t)d;
	if (v->st.buffered_bytes > v->st.buffered_max)
		v->st.buffered_max = v->st.buffered_bytes;
}

/* The host side of @c goes: its watches, timer and socket; what waited for it is dropped. */
static void drop_host(struct virtio_vsock *v, struct conn *c)
{
	unwatch(v, &c->w_in);
	unwatch(v, &c->w_out);
	cancel(v, &c->t_kill);
	link_del(&c->rd);
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	buffered_add(v, -(int64_t)(uint32_t)(c->rx_cnt - c->fwd_cnt));
	c->fwd_cnt = c->rx_cnt;
}

/* Forget the connection: its host side and its memory. */
static void conn_free(struct virtio_vsock *v, struct conn *c)
{
	struct vsock_state *s = v->s;

	drop_host(v, c);
	link_del(&c->ctl);
	hash_del(s, c);
	if (c->counted_open)
		v->st.conns_open--;
	free(c->buf);
	s->nconns--;
	v->st.conns_removed++;
	free(c);
}

/* The host side goes; the guest is owed an RST (then the connection is freed). */
static void conn_end(struct virtio_vsock *v, struct conn *c)
{
	drop_host(v, c);
	if (c->state == C_HANDSHAKE || (c->pend & P_REQUEST)) {
		conn_free(v, c); /* the guest never heard of it */
		return;
	}
	c->state = C_DEAD;
	/* A SHUTDOWN owed still goes first (the guest's end of stream), then the RST. */
	c->pend = (c->pend & P_SHUTDOWN) | P_RST;
	link_tail(&v->s->ctl, &c->ctl);
}

/* The same, because something went wrong: counted under @why (and as killed). */
static void conn_kill(struct virtio_vsock *v, struct conn *c, uint64_t *why)
{
	if (why)
		(*why)++;
	v->st.conns_killed++;
	conn_end(v, c);
}

static void owe(struct virtio_vsock *v, struct conn *c, unsigned p)
{
	c->pend |= p;
	link_tail(&v->s->ctl, &c->ctl);
}

static void stray_rst(struct virtio_vsock *v, uint32_t src_port, uint32_t dst_port)
{
	struct vsock_state *s = v->s;

	if (s->nstray < STRAY_MAX)
		s->stray[s->nstray++] = (struct stray){src_port, dst_port};
}

static void on_in(void *arg, int res);
static void on_out(void *arg, int res);
static void rx_process(struct virtio_vsock *v);

/* Wait until the host socket has bytes (or says EOF). */
static void want_read(struct virtio_vsock *v, struct conn *c)
{
	if (!c->w_in && c->fd >= 0)
		c->w_in = v->t.host->watch(v->t.host->opaque, c->fd, POLLIN, on_in, c);
	if (!c->w_in && c->fd >= 0)
		conn_kill(v, c, &v->st.rx_read_fails); /* cannot watch: give up cleanly */
}

/* Whether bytes may go host -> guest on @c now. */
static bool can_send(const struct conn *c)
{
	return c->state == C_OPEN && !c->host_eof && !c->guest_no_recv;
}

/* Start (or go on) moving host bytes to the guest. */
static void start_reading(struct virtio_vsock *v, struct conn *c)
{
	if (can_send(c) && !c->credit_wait && !linked(&c->rd))
		want_read(v, c);
}

/* After fwd_cnt moved: tell the guest when its view of our room runs low. */
static void maybe_credit(struct virtio_vsock *v, struct conn *c)
{
	uint32_t unseen = c->fwd_cnt - c->fwd_told;
	uint32_t room_seen = VSOCK_BUF_ALLOC - (uint32_t)(c->rx_cnt - c->fwd_told);

	if (unseen && (unseen >= VSOCK_BUF_ALLOC / 4 || room_seen < VSOCK_MAX_PKT))
		owe(v, c, P_CREDIT_UPDATE);
}

/* The guest said it sends no more and everything it sent is written: pass the EOF on. */
static void finish_guest_send(struct virtio_vsock *v, struct conn *c)
{
	if (!c->guest_no_send || c->rx_cnt != c->fwd_cnt)
		return;
	if (c->guest_no_recv || c->host_eof) {
		/* Both ways done: close the host socket, RST the guest (what Linux waits for). */
		conn_end(v, c);
		return;
	}
	if (!c->host_wr_shut && c->fd >= 0) {
		shutdown(c->fd, SHUT_WR);
		c->host_wr_shut = true;
	}
}

/* Write what waits in the buffer to the host socket. 0, or -errno (the socket failed). */
static int drain(struct virtio_vsock *v, struct conn *c)
{
	while (c->rx_cnt != c->fwd_cnt) {
		uint32_t len = c->rx_cnt - c->fwd_cnt;
		uint32_t first = MIN(len, VSOCK_BUF_ALLOC - c->buf_head);
		struct iovec iov[2] = {{c->buf + c->buf_head, first}, {c->buf, len - first}};
		ssize_t w = sendv(c->fd, iov, len > first ? 2 : 1);

		if (w < 0 && errno == EAGAIN)
			break;
		if (w <= 0)
			return w < 0 ? -errno : -EPIPE;
		c->fwd_cnt += (uint32_t)w;
		c->buf_head = (uint32_t)((c->buf_head + (uint32_t)w) % VSOCK_BUF_ALLOC);
		v->st.tx_bytes_count += (uint64_t)w;
		buffered_add(v, -w);
	}
	return 0;
}

/* After a drain or a direct write: POLLOUT while bytes wait, credit, the guest's EOF. */
static void after_write(struct virtio_vsock *v, struct conn *c)
{
	if (c->rx_cnt != c->fwd_cnt) {
		if (!c->w_out)
			c->w_out = v->t.host->watch(v->t.host->opaque, c->fd, POLLOUT, on_out, c);
		if (!c->w_out) {
			conn_kill(v, c, &v->st.tx_write_fails);
			return;
		}
	} else {
		unwatch(v, &c->w_out);
	}
	maybe_credit(v, c);
	finish_guest_send(v, c);
}

/* ---- the host side's events ---- */

/* Drop the connections of drivers gone by a reset (the loop's thread). */
static void sweep(struct virtio_vsock *v)
{
	struct vsock_state *s = v->s;

	if (s->swept == s->epoch)
		return;
	for (unsigned i = 0; i < HASH_SIZE; i++)
		for (struct conn *c = s->hash[i], *n; c; c = n) {
			n = c->hnext;
			if (c->epoch != s->epoch)
				conn_free(v, c);
		}
	s->nstray = 0;
	s->swept = s->epoch;
}

static void on_reset_fd(void *arg, int res)
{
	struct virtio_vsock *v = arg;
	uint64_t n;

	(void)res;
	if (read(v->s->reset_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_debug("vsock: reset eventfd: %s", strerror(errno));
	pthread_mutex_lock(&v->t.lock);
	sweep(v);
	pthread_mutex_unlock(&v->t.lock);
}

/*
 * A callback of @c's: false when a reset made @c an old driver's (then it and
 * the others like it are gone, and the callback must not touch @c again).
 */
static bool current(struct virtio_vsock *v, struct conn *c)
{
	if (c->epoch == v->s->epoch)
		return true;
	sweep(v);
	return false;
}

/* After host-side work: deliver what is owed, interrupt if the driver wants it. */
static void signal_used(struct virtio_vsock *v)
{
	struct vsock_state *s = v->s;
	bool want = false;

	if (s->tx_unsignalled)
		want |= vq_should_notify(&v->t.vq[TXQ]);
	if (s->rx_unsignalled)
		want |= vq_should_notify(&v->t.vq[RXQ]);
	s->tx_unsignalled = s->rx_unsignalled = false;
	if (want)
		virtio_mmio_interrupt(&v->t, VIRTIO_MMIO_INT_VRING);
}

static bool driver_ok(struct virtio_vsock *v)
{
	return virtio_mmio_live(&v->t) && v->t.vq[RXQ].ready && v->t.vq[TXQ].ready;
}

static void kick_rx(struct virtio_vsock *v)
{
	if (driver_ok(v))
		rx_process(v);
	signal_used(v);
}

static void on_kill_timer(void *arg, int res)
{
	struct conn *c = arg;
	struct virtio_vsock *v = dev_of(c);

	(void)res;
	pthread_mutex_lock(&v->t.lock);
	c->t_kill = NULL; /* the loop forgets a timer once it ran */
	if (current(v, c)) {
		sweep(v);
		v->st.connect_timeouts++;
		if (c->state == C_HANDSHAKE || c->state == C_REQUESTED)
			conn_kill(v, c, NULL);
		kick_rx(v);
	}
	pthread_mutex_unlock(&v->t.lock);
}

static void arm_kill(struct virtio_vsock *v, struct conn *c, uint64_t ms)
{
	cancel(v, &c->t_kill);
	c->t_kill = v->t.host->timer(v->t.host->opaque, ms, on_kill_timer, c);
}

/*
 * A host client's first line: "CONNECT <port>\n", as it comes (in pieces, maybe). What
 * arrived is taken into c->line (a level-triggered watch must not see it again), but never
 * a byte past the newline: those are the stream's. 1 done, 0 wait, -1 bad.
 */
static int read_line(struct conn *c, uint32_t *port)
{
	unsigned room = VSOCK_LINE_MAX - 1 - c->line_len;
	ssize_t n = recv(c->fd, c->line + c->line_len, room, MSG_PEEK);
	char *nl, *end;
	unsigned long p;

	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	if (n == 0)
		return -1;
	nl = memchr(c->line + c->line_len, '\n', (size_t)n);
	if (nl)
		n = nl - (c->line + c->line_len) + 1;
	if (recv(c->fd, c->line + c->line_len, (size_t)n, 0) != n)
		return -1;
	c->line_len += (unsigned)n;
	if (!nl)
		return c->line_len >= VSOCK_LINE_MAX - 1 ? -1 : 0;
	if (nl > c->line && nl[-1] == '\r')
		nl--;
	*nl = 0;
	if (strncmp(c->line, "CONNECT ", 8) || c->line[8] < '0' || c->line[8] > '9')
		return -1;
	errno = 0;
	p = strtoul(c->line + 8, &end, 10);
	/* The number must end the line: a NUL inside would hide what follows it. */
	if (errno || end != nl || p > UINT32_MAX)
		return -1;
	*port = (uint32_t)p;
	return 1;
}

static uint32_t new_local_port(struct vsock_state *s)
{
	for (;;) {
		uint32_t p = s->next_port++;

		if (s->next_port < VSOCK_PORT_FIRST)
			s->next_port = VSOCK_PORT_FIRST;
		if (!local_port_used(s, p))
			return p;
	}
}

static void handshake(struct virtio_vsock *v, struct conn *c)
{
	uint32_t port;
	int r = read_line(c, &port);

	if (!r)
		return;
	unwatch(v, &c->w_in);
	if (r < 0) {
		v->st.bad_connect_lines++;
		conn_kill(v, c, NULL);
		return;
	}
	hash_del(v->s, c);
	c->local_port = new_local_port(v->s);
	c->peer_port = port;
	hash_add(v->s, c);
	c->state = C_REQUESTED;
	owe(v, c, P_REQUEST);
	arm_kill(v, c, VSOCK_CONNECT_MS);
}

static void on_in(void *arg, int res)
{
	struct conn *c = arg;
	struct virtio_vsock *v = dev_of(c);

	pthread_mutex_lock(&v->t.lock);
	if (!current(v, c))
		goto out;
	sweep(v);
	if (res < 0) {
		conn_kill(v, c, &v->st.rx_read_fails);
	} else if (c->state == C_HANDSHAKE) {
		handshake(v, c);
	} else {
		/* Level-triggered: watched again only when reading would wait. */
		unwatch(v, &c->w_in);
		if (can_send(c))
			link_tail(&v->s->rd, &c->rd);
	}
	kick_rx(v);
out:
	pthread_mutex_unlock(&v->t.lock);
}

static void on_out(void *arg, int res)
{
	struct conn *c = arg;
	struct virtio_vsock *v = dev_of(c);
	int r;

	pthread_mutex_lock(&v->t.lock);
	if (!current(v, c))
		goto out;
	sweep(v);
	r = res < 0 ? res : drain(v, c);
	if (r) {
		v->st.tx_write_fails++;
		conn_kill(v, c, &v->st.rst_host_gone);
	} else {
		after_write(v, c);
	}
	kick_rx(v);
out:
	pthread_mutex_unlock(&v->t.lock);
}

static void on_accept(void *arg, int res)
{
	struct virtio_vsock *v = arg;

	(void)res;
	pthread_mutex_lock(&v->t.lock);
	sweep(v);
	for (unsigned i = 0; i < 64; i++) {
		int fd = accept4(v->l.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct conn *c;

		if (fd < 0)
			break;
		if (v->s->nconns >= VSOCK_MAX_CONNS) {
			v->st.rst_too_many++;
			close(fd);
			continue;
		}
		c = conn_new(v, fd, 0, 0, C_HANDSHAKE);
		if (!c) {
			close(fd);
			continue;
		}
		c->host_initiated = true;
		c->w_in = v->t.host->watch(v->t.host->opaque, fd, POLLIN, on_in, c);
		if (!c->w_in) {
			conn_free(v, c);
			continue;
		}
		arm_kill(v, c, VSOCK_CONNECT_MS);
		/* A client that wrote its line right after connect(): no trip round the loop. */
		handshake(v, c);
	}
	kick_rx(v);
	pthread_mutex_unlock(&v->t.lock);
}

/* ---- to the guest (rx) ---- */

static void fill_hdr(struct virtio_vsock *v, const struct conn *c, struct vsock_hdr *h,
		     uint16_t op)
{
	*h = (struct vsock_hdr){.src_cid = VSOCK_HOST_CID,
				.dst_cid = v->guest_cid,
				.src_port = c->local_port,
				.dst_port = c->peer_port,
				.type = VSOCK_TYPE_STREAM,
				.op = op,
				.buf_alloc = VSOCK_BUF_ALLOC,
				.fwd_cnt = c->fwd_cnt};
}

/* The chain is fit for a packet: writable room for a header (else dropped). */
static bool rx_chain_ok(struct virtio_vsock *v, const struct vq_chain *ch)
{
	if (ch->out_len >= VSOCK_HDR_LEN)
		return true;
	v->st.malformed_dropped++;
	return false;
}

/* One control packet @c owes into @ch; the connection leaves the list when it owes no more. */
static uint32_t put_ctl(struct virtio_vsock *v, struct conn *c, const struct vq_chain *ch)
{
	static const struct {
		unsigned p;
		uint16_t op;
	} order[] = {{P_RESPONSE, VSOCK_OP_RESPONSE},
		     {P_REQUEST, VSOCK_OP_REQUEST},
		     {P_CREDIT_UPDATE, VSOCK_OP_CREDIT_UPDATE},
		     {P_CREDIT_REQUEST, VSOCK_OP_CREDIT_REQUEST},
		     {P_SHUTDOWN, VSOCK_OP_SHUTDOWN},
		     {P_RST, VSOCK_OP_RST}};
	uint8_t wire[VSOCK_HDR_LEN];
	struct vsock_hdr h;
	unsigned i = 0;

	while (!(c->pend & order[i].p))
		i++;
	c->pend &= ~order[i].p;
	fill_hdr(v, c, &h, order[i].op);
	if (order[i].p == P_SHUTDOWN)
		h.flags = c->shut_flags;
	if (order[i].p == P_CREDIT_UPDATE)
		v->st.credit_updates_sent++;
	c->fwd_told = c->fwd_cnt;
	vsock_hdr_encode(&h, wire);
	vq_chain_write(ch, wire, sizeof(wire));
	v->st.rx_packets_count++;
	if (!c->pend)
		link_del(&c->ctl);
	if (c->state == C_DEAD && !c->pend)
		conn_free(v, c);
	return VSOCK_HDR_LEN;
}

static uint32_t put_stray(struct virtio_vsock *v, const struct vq_chain *ch)
{
	struct vsock_state *s = v->s;
	struct vsock_hdr h = {.src_cid = VSOCK_HOST_CID,
			      .dst_cid = v->guest_cid,
			      .src_port = s->stray[0].src_port,
			      .dst_port = s->stray[0].dst_port,
			      .type = VSOCK_TYPE_STREAM,
			      .op = VSOCK_OP_RST};
	uint8_t wire[VSOCK_HDR_LEN];

	memmove(s->stray, s->stray + 1, --s->nstray * sizeof(s->stray[0]));
	vsock_hdr_encode(&h, wire);
	vq_chain_write(ch, wire, sizeof(wire));
	v->st.rx_packets_count++;
	return VSOCK_HDR_LEN;
}

/*
 * Host bytes of @c into @ch: at most the guest's credit, the chain's room and
 * VSOCK_MAX_PKT. The length pushed, 0 when the chain goes back unused.
 */
static uint32_t put_data(struct virtio_vsock *v, struct conn *c, const struct vq_chain *ch,
			 bool *again)
{
	uint32_t credit = vsock_peer_free(c->peer_buf_alloc, c->peer_fwd_cnt, c->tx_cnt);
	uint32_t room = MIN(MIN(credit, ch->out_len - VSOCK_HDR_LEN), VSOCK_MAX_PKT);
	struct iovec iov[VQ_MAX_BUFS];
	uint8_t wire[VSOCK_HDR_LEN];
	struct vsock_hdr h;
	unsigned n;
	ssize_t r;

	*again = false;
	link_del(&c->rd);
	if (!can_send(c))
		return 0;
	if (!credit) {
		/* The guest's buffer is full: wait for its credit update; ask once. */
		c->credit_wait = true;
		if (!c->credit_asked) {
			c->credit_asked = true;
			owe(v, c, P_CREDIT_REQUEST);
		}
		return 0;
	}
	n = chain_iov(ch, true, VSOCK_HDR_LEN, room, iov, VQ_MAX_BUFS);
	do
		r = readv(c->fd, iov, (int)n);
	while (r < 0 && errno == EINTR);
	if (r < 0 && errno == EAGAIN) {
		want_read(v, c);
		return 0;
	}
	if (r < 0) {
		conn_kill(v, c, &v->st.rst_host_gone);
		v->st.rx_read_fails++;
		return 0;
	}
	if (r == 0) {
		/* EOF: the host sends no more; the guest hears SHUTDOWN(SEND). */
		c->host_eof = true;
		c->shut_flags |= VSOCK_SHUTDOWN_SEND;
		owe(v, c, P_SHUTDOWN);
		if (c->guest_no_send && c->rx_cnt == c->fwd_cnt)
			finish_guest_send(v, c);
		return 0;
	}
	fill_hdr(v, c, &h, VSOCK_OP_RW);
	h.len = (uint32_t)r;
	c->fwd_told = c->fwd_cnt;
	vsock_hdr_encode(&h, wire);
	vq_chain_write(ch, wire, sizeof(wire));
	c->tx_cnt += (uint32_t)r;
	v->st.rx_bytes_count += (uint64_t)r;
	v->st.rx_packets_count++;
	*again = true; /* more may wait: back in the line behind the others */
	return VSOCK_HDR_LEN + (uint32_t)r;
}

static void rx_resume(void *arg, int res)
{
	struct virtio_vsock *v = arg;

	(void)res;
	pthread_mutex_lock(&v->t.lock);
	v->s->t_rx = NULL;
	sweep(v);
	kick_rx(v);
	pthread_mutex_unlock(&v->t.lock);
}

static void rx_process(struct virtio_vsock *v)
{
	struct vsock_state *s = v->s;
	struct vq *q = &v->t.vq[RXQ];
	struct vq_chain *ch = &s->chain;
	char why[VQ_WHY_LEN];
	unsigned i;

	if (s->t_rx)
		return;
	for (i = 0; i < VSOCK_BATCH; i++) {
		bool again = false;
		uint32_t len;
		int got;

		if (!linked(&s->ctl) && !s->nstray && !linked(&s->rd))
			break;
		got = vq_pop(q, ch, why);
		if (got < 0) {
			virtio_mmio_needs_reset(&v->t, why);
			return;
		}
		if (!got)
			break;
		if (!rx_chain_ok(v, ch)) {
			vq_push(q, ch->head, 0);
			s->rx_unsignalled = true;
			continue;
		}
		if (linked(&s->ctl)) {
			len = put_ctl(v, container_of(s->ctl.next, struct conn, ctl), ch);
		} else if (s->nstray) {
			len = put_stray(v, ch);
		} else {
			struct conn *c = container_of(s->rd.next, struct conn, rd);

			len = put_data(v, c, ch, &again);
			if (again)
				link_tail(&s->rd, &c->rd);
		}
		if (!len) {
			vq_unpop(q);
			continue;
		}
		vq_push(q, ch->head, len);
		s->rx_unsignalled = true;
	}
	if (i == VSOCK_BATCH)
		s->t_rx = v->t.host->timer(v->t.host->opaque, 0, rx_resume, v);
}

/* ---- from the guest (tx) ---- */

/* A guest REQUEST to the host: connect to <uds_path>_<port>. */
static void guest_connect(struct virtio_vsock *v, const struct vsock_hdr *h)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	struct conn *c;
	int fd, n;

	if (v->s->nconns >= VSOCK_MAX_CONNS) {
		v->st.rst_too_many++;
		stray_rst(v, h->dst_port, h->src_port);
		return;
	}
	n = snprintf(a.sun_path, sizeof(a.sun_path), "%s_%u", v->s->uds, h->dst_port);
	fd = (size_t)n < sizeof(a.sun_path)
		     ? socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)
		     : -1;
	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		log_debug("vsock: guest port %u -> %s: %s", h->src_port, a.sun_path,
			  strerror(errno));
		close(fd);
		fd = -1;
	}
	c = fd >= 0 ? conn_new(v, fd, h->dst_port, h->src_port, C_OPEN) : NULL;
	if (!c) {
		if (fd >= 0)
			close(fd);
		v->st.refused_no_listener++;
		stray_rst(v, h->dst_port, h->src_port);
		return;
	}
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	c->counted_open = true;
	v->st.conns_open++;
	v->st.conns_guest++;
	owe(v, c, P_RESPONSE);
	start_reading(v, c);
}

/* The guest's answer to our REQUEST: tell the host client, start the stream. */
static void guest_accepted(struct virtio_vsock *v, struct conn *c)
{
	char ok[32];
	int n = snprintf(ok, sizeof(ok), "OK %u\n", c->local_port);

	cancel(v, &c->t_kill);
	if (send(c->fd, ok, (size_t)n, MSG_NOSIGNAL) != n) {
		conn_kill(v, c, &v->st.rst_host_gone);
		return;
	}
	c->state = C_OPEN;
	c->counted_open = true;
	v->st.conns_open++;
	v->st.conns_host++;
	start_reading(v, c);
}

/* Guest bytes for the host. */
static void guest_data(struct virtio_vsock *v, struct conn *c, const struct vq_chain *ch,
		       uint32_t len)
{
	struct iovec iov[VQ_MAX_BUFS];
	uint32_t done = 0;
	unsigned n;

	if (c->guest_no_send || (uint32_t)(c->rx_cnt - c->fwd_cnt) + len > VSOCK_BUF_ALLOC) {
		/* Beyond the credit it was given (or after saying it sends no more). */
		conn_kill(v, c, &v->st.rst_credit);
		return;
	}
	if (!len)
		return;
	n = chain_iov(ch, false, VSOCK_HDR_LEN, len, iov, VQ_MAX_BUFS);
	c->rx_cnt += len;
	buffered_add(v, len);
	if (c->rx_cnt - len == c->fwd_cnt) {
		/* Nothing waits: straight from guest memory to the socket. */
		ssize_t w = sendv(c->fd, iov, n);

		if (w < 0 && errno != EAGAIN) {
			v->st.tx_write_fails++;
			conn_kill(v, c, &v->st.rst_host_gone);
			return;
		}
		if (w > 0) {
			done = (uint32_t)w;
			c->fwd_cnt += done;
			v->st.tx_bytes_count += done;
			buffered_add(v, -(int64_t)done);
		}
	}
	if (done < len) {
		/* The socket is full: the rest waits in the ring, within the credit given. */
		uint32_t skip = done, tail;

		if (!c->buf) {
			c->buf = malloc(VSOCK_BUF_ALLOC);
			if (!c->buf) {
				conn_kill(v, c, &v->st.tx_write_fails);
				return;
			}
			c->buf_head = 0;
		}
		v->st.host_full++;
		tail = (uint32_t)((c->buf_head + (uint32_t)(c->rx_cnt - c->fwd_cnt) - (len - done)) %
				  VSOCK_BUF_ALLOC);
		for (unsigned i = 0; i < n; i++) {
			uint8_t *p = iov[i].iov_base;
			uint32_t k = (uint32_t)iov[i].iov_len;

			if (skip >= k) {
				skip -= k;
				continue;
			}
			p += skip;
			k -= skip;
			skip = 0;
			while (k) {
				uint32_t m = MIN(k, VSOCK_BUF_ALLOC - tail);

				memcpy(c->buf + tail, p, m);
				tail = (tail + m) % VSOCK_BUF_ALLOC;
				p += m;
				k -= m;
			}
		}
	}
	after_write(v, c);
}

static void guest_shutdown(struct virtio_vsock *v, struct conn *c, uint32_t flags)
{
	if (flags & VSOCK_SHUTDOWN_RCV) {
		c->guest_no_recv = true;
		unwatch(v, &c->w_in);
		link_del(&c->rd);
	}
	if (flags & VSOCK_SHUTDOWN_SEND)
		c->guest_no_send = true;
	finish_guest_send(v, c);
}

/* The guest changed its credit (every header carries it): resume a stream that waited. */
static void guest_credit(struct virtio_vsock *v, struct conn *c, const struct vsock_hdr *h)
{
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	if (c->credit_wait && vsock_peer_free(c->peer_buf_alloc, c->peer_fwd_cnt, c->tx_cnt)) {
		c->credit_wait = c->credit_asked = false;
		start_reading(v, c);
	}
}

/* One packet of the guest's. */
static void tx_one(struct virtio_vsock *v, const struct vq_chain *ch)
{
	uint8_t wire[VSOCK_HDR_LEN];
	struct vsock_hdr h;
	struct conn *c;

	if (chain_read(ch, 0, wire, sizeof(wire)) < sizeof(wire)) {
		v->st.malformed_dropped++;
		return;
	}
	vsock_hdr_decode(&h, wire);
	v->st.tx_packets_count++;
	if (h.src_cid != v->guest_cid || h.dst_cid != VSOCK_HOST_CID) {
		/* Not from this guest, or not for the host: nobody to answer. */
		v->st.malformed_dropped++;
		return;
	}
	c = find(v->s, h.dst_port, h.src_port);
	if (h.op == VSOCK_OP_RST) {
		/* Never answered: an RST for nothing is dropped. */
		if (!c)
			return;
		if (c->state == C_REQUESTED)
			v->st.refused_by_guest++;
		else if (c->state == C_OPEN && !(c->guest_no_send && c->guest_no_recv) &&
			 !c->host_eof)
			v->st.rst_by_guest++;
		conn_free(v, c);
		return;
	}
	if (h.type != VSOCK_TYPE_STREAM || h.len > VSOCK_MAX_PKT ||
	    h.len > ch->in_len - VSOCK_HDR_LEN || h.op == VSOCK_OP_INVALID ||
	    h.op > VSOCK_OP_CREDIT_REQUEST) {
		if (c)
			conn_kill(v, c, &v->st.rst_malformed);
		else {
			v->st.rst_malformed++;
			stray_rst(v, h.dst_port, h.src_port);
		}
		return;
	}
	if (h.op == VSOCK_OP_REQUEST) {
		if (c) /* a second REQUEST on a live connection: it is the guest's confusion */
			conn_kill(v, c, &v->st.rst_malformed);
		else
			guest_connect(v, &h);
		return;
	}
	if (!c || c->state == C_DEAD) {
		/*
		 * Anything but an RST for no connection is answered with one (as Linux does).
		 * Counted apart: bytes or an answer (rst_unknown), and a SHUTDOWN or credit
		 * news, which is what a connection that just ended still sends (socat shuts
		 * down twice; the first ended it).
		 */
		if (!c) {
			if (h.op == VSOCK_OP_RW || h.op == VSOCK_OP_RESPONSE)
				v->st.rst_unknown++;
			else
				v->st.late_packets++;
			stray_rst(v, h.dst_port, h.src_port);
		}
		return;
	}
	guest_credit(v, c, &h);
	switch (h.op) {
	case VSOCK_OP_RESPONSE:
		if (c->state == C_REQUESTED)
			guest_accepted(v, c);
		else
			conn_kill(v, c, &v->st.rst_malformed);
		break;
	case VSOCK_OP_SHUTDOWN:
		if (c->state == C_OPEN)
			guest_shutdown(v, c, h.flags);
		break;
	case VSOCK_OP_RW:
		if (c->state == C_OPEN)
			guest_data(v, c, ch, h.len);
		else
			conn_kill(v, c, &v->st.rst_malformed);
		break;
	case VSOCK_OP_CREDIT_REQUEST:
		v->st.credit_requests_seen++;
		owe(v, c, P_CREDIT_UPDATE);
		break;
	default: /* CREDIT_UPDATE: taken above */
		break;
	}
}

static void tx_resume(void *arg, int res);

static void tx_process(struct virtio_vsock *v)
{
	struct vsock_state *s = v->s;
	struct vq *q = &v->t.vq[TXQ];
	struct vq_chain *ch = &s->chain;
	char why[VQ_WHY_LEN];
	unsigned i;

	if (s->t_tx)
		return;
	for (i = 0; i < VSOCK_BATCH; i++) {
		int got = vq_pop(q, ch, why);

		if (got < 0) {
			virtio_mmio_needs_reset(&v->t, why);
			return;
		}
		if (!got)
			break;
		tx_one(v, ch);
		vq_push(q, ch->head, 0);
		s->tx_unsignalled = true;
	}
	if (i == VSOCK_BATCH)
		s->t_tx = v->t.host->timer(v->t.host->opaque, 0, tx_resume, v);
}

static void tx_resume(void *arg, int res)
{
	struct virtio_vsock *v = arg;

	(void)res;
	pthread_mutex_lock(&v->t.lock);
	v->s->t_tx = NULL;
	sweep(v);
	if (driver_ok(v))
		tx_process(v);
	kick_rx(v);
	pthread_mutex_unlock(&v->t.lock);
}

/* ---- the transport's callbacks ---- */

static void vsock_notify(struct virtio_mmio *t, unsigned qi)
{
	struct virtio_vsock *v = of(t);

	sweep(v);
	if (qi == TXQ) {
		v->st.tx_queue_event_count++;
		tx_process(v);
	} else if (qi == RXQ) {
		v->st.rx_queue_event_count++;
	}
	/* The event queue's buffers are kept: no event is ever sent (no migration here). */
	kick_rx(v);
}

static void vsock_reset(struct virtio_mmio *t)
{
	struct virtio_vsock *v = of(t);

	/*
	 * A vCPU's thread: the connections belong to the driver that went; the loop
	 * drops them (their sockets close, host clients see EOF) on its next turn.
	 */
	v->s->epoch++;
	v->s->nstray = 0;
	v->s->rx_unsignalled = v->s->tx_unsignalled = false;
	efd_signal(v->s->reset_fd, "vsock reset");
}

static void vsock_config_read(struct virtio_mmio *t, uint32_t off, void *data, unsigned len)
{
	memcpy(data, of(t)->config + off, len);
}

static const struct virtio_dev_ops vsock_ops = {
	.name = "vsock",
	.device_id = VIRTIO_ID_VSOCK,
	.nqueues = 3,
	.queue_max = VQ_MAX_SIZE,
	.features = 0, /* VIRTIO_VSOCK_F_STREAM (bit 0) is implied when nothing is offered */
	.config_len = 8,
	.config_read = vsock_config_read,
	.notify = vsock_notify,
	.reset = vsock_reset,
};

static struct virtio_vsock *dev_of(struct conn *c)
{
	return container_of(c->s->owner, struct virtio_vsock, t);
}

int virtio_vsock_init(struct virtio_vsock *v, const struct dev_host *host,
		      const struct guest_mem *mem, uint64_t base, unsigned gsi,
		      const struct virtio_vsock_cfg *cfg, char *why, size_t whylen)
{
	struct vsock_state *s;
	int r;

	memset(v, 0, sizeof(*v));
	v->l.fd = -1;
	if (cfg->guest_cid < 3 || cfg->guest_cid == UINT32_MAX) {
		snprintf(why, whylen,
			 "vsock.guest_cid: %u is reserved (0-2 are the hypervisor's and the "
			 "host's, 4294967295 is any); give 3 or more",
			 cfg->guest_cid);
		return -EINVAL;
	}
	/*
	 * Guest connections go to <uds_path>_<port>, which must fit a socket address too.
	 * Firecracker takes any path that fits itself; so does hugevmm, and says which
	 * ports cannot be reached (their connections get RST, counted as no listener).
	 */
	if (strlen(cfg->uds_path) + 11 >= sizeof(((struct sockaddr_un *)0)->sun_path))
		log_warn("vsock.uds_path: \"%s\" is %zu bytes: guest connections to ports whose "
			 "\"<uds_path>_<port>\" exceeds %zu bytes will be refused; a path of at "
			 "most %zu bytes reaches every port",
			 cfg->uds_path, strlen(cfg->uds_path),
			 sizeof(((struct sockaddr_un *)0)->sun_path) - 1,
			 sizeof(((struct sockaddr_un *)0)->sun_path) - 12);
	s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(why, whylen, "vsock: out of memory");
		return -ENOMEM;
	}
	v->s = s;
	s->owner = &v->t;
	link_init(&s->ctl);
	link_init(&s->rd);
	s->next_port = VSOCK_PORT_FIRST;
	snprintf(s->uds, sizeof(s->uds), "%s", cfg->uds_path);
	v->guest_cid = cfg->guest_cid;
	st(v->config, v->guest_cid, 8);
	s->reset_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (s->reset_fd < 0) {
		r = -errno;
		snprintf(why, whylen, "vsock: eventfd: %s", strerror(-r));
		goto fail;
	}
	r = uds_listen(&v->l, cfg->uds_path, 128, "vsock.uds_path", why, whylen);
	if (r)
		goto fail;
	r = virtio_mmio_init(&v->t, &vsock_ops, v, host, mem, "vsock", base, gsi);
	if (r) {
		snprintf(why, whylen, "vsock: cannot create the device: %s", strerror(-r));
		goto fail;
	}
	return 0;
fail:
	uds_close(&v->l);
	if (s->reset_fd >= 0)
		close(s->reset_fd);
	free(s);
	v->s = NULL;
	return r;
}

int virtio_vsock_attach(struct virtio_vsock *v)
{
	const struct dev_host *host = v->t.host;

	v->w_listen = host->watch(host->opaque, v->l.fd, POLLIN, on_accept, v);
	v->s->w_reset = host->watch(host->opaque, v->s->reset_fd, POLLIN, on_reset_fd, v);
	return v->w_listen && v->s->w_reset ? 0 : -ENOMEM;
}

void virtio_vsock_stop(struct virtio_vsock *v)
{
	struct vsock_state *s = v->s;

	if (!s)
		return;
	pthread_mutex_lock(&v->t.lock);
	unwatch(v, &v->w_listen);
	unwatch(v, &s->w_reset);
	cancel(v, &s->t_rx);
	cancel(v, &s->t_tx);
	for (unsigned i = 0; i < HASH_SIZE; i++)
		for (struct conn *c = s->hash[i]; c; c = c->hnext) {
			unwatch(v, &c->w_in);
			unwatch(v, &c->w_out);
			cancel(v, &c->t_kill);
		}
	pthread_mutex_unlock(&v->t.lock);
}

void virtio_vsock_destroy(struct virtio_vsock *v)
{
	struct vsock_state *s = v->s;

	if (!s)
		return;
	for (unsigned i = 0; i < HASH_SIZE; i++)
		while (s->hash[i])
			conn_free(v, s->hash[i]);
	virtio_mmio_destroy(&v->t);
	uds_close(&v->l);
	close(s->reset_fd);
	free(s);
	v->s = NULL;
}

void virtio_vsock_counters(struct virtio_vsock *v, struct vsock_counters *out)
{
	pthread_mutex_lock(&v->t.lock);
	*out = v->st;
	pthread_mutex_unlock(&v->t.lock);
}
