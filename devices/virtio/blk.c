/* virtio-blk on io_uring (devices/virtio/blk.h). */
#include "devices/virtio/blk.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <linux/falloc.h>
#include <linux/virtio_blk.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_mmio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/log.h"
#include "common/uring.h"
#include "common/util.h"

#define BLK_FIXED_MAX   (1ull << 30) /* the kernel's limit on one registered buffer */
#define BLK_IOV_INLINE  8
#define BLK_FREE_CACHE  64
#define BLK_ZERO_CHUNK  (64u << 10)
#define BLK_DISCARD_MAX (1u << 22) /* sectors per discard / write-zeroes: 2 GiB */

/* Fallocate modes: discard and write-zeroes, with what to try when refused. */
#define MODE_PUNCH (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)
#define MODE_ZERO  (FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE)

static const uint8_t zeros[BLK_ZERO_CHUNK] __attribute__((aligned(4096)));

enum op_kind { OP_READ, OP_WRITE, OP_FSYNC, OP_FALLOC, OP_ZERO };

/* One submission; a request has one, or one per segment on the fixed path. */
struct blk_op {
	struct blk_req *req;
	uint8_t kind;
	int fd;
	int buf_index; /* >= 0: READ_FIXED/WRITE_FIXED into registered buffer buf_index */
	int mode;      /* OP_FALLOC */
	uint64_t off;  /* file offset */
	uint64_t len;  /* bytes left */
	struct iovec *iov;
	unsigned niov;
};

struct blk_req {
	struct virtio_blk *dev;
	struct blk_backing *b;
	uint32_t gen;
	uint16_t head;
	uint8_t type;
	uint8_t result;   /* VIRTIO_BLK_S_* */
	uint8_t *status;  /* the status byte in guest RAM */
	uint32_t written; /* bytes the device wrote into the chain, status included */
	unsigned pending; /* operations in flight */
	bool discard;     /* OP_FALLOC of a discard: a refusal is not an error */
	struct iovec *iov;
	unsigned niov;
	struct blk_op *ops;
	unsigned nops;
	struct iovec iov_in[BLK_IOV_INLINE];
	struct blk_op op_in[1];
	struct blk_req *next; /* the device's free cache */
};

struct blk_engine {
	struct io_uring ring;
	int efd;
	unsigned entries;
	unsigned inflight; /* operations submitted and not yet completed */
	bool draining;     /* destroy: completions are dropped */
	/* Registered buffers (guest RAM pieces of at most 1 GiB), slot i = bufs[i]. */
	struct iovec *bufs;
	unsigned nbufs;
	bool registered;
	bool restricted; /* the ring takes only the opcodes below (common/uring.h) */
	struct virtio_blk *ready; /* devices to notify or resume after this reap */
};

/* --- the engine ---------------------------------------------------------- */

static const uint8_t ring_ops[] = {
	IORING_OP_READV, IORING_OP_WRITEV, IORING_OP_READ_FIXED, IORING_OP_WRITE_FIXED,
	IORING_OP_FSYNC, IORING_OP_FALLOCATE, IORING_OP_WRITE,
};
static const uint8_t ring_regs[] = {IORING_REGISTER_BUFFERS2, IORING_REGISTER_BUFFERS_UPDATE};

static int register_efd(struct io_uring *ring, void *arg)
{
	struct blk_engine *g = arg;

	return io_uring_register_eventfd(ring, g->efd);
}

int blk_engine_create(struct blk_engine **out, unsigned entries, char *why, size_t whylen)
{
	struct blk_engine *g = calloc(1, sizeof(*g));
	int r;

	*out = NULL;
	if (!g) {
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	g->entries = entries;
	g->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (g->efd < 0) {
		r = -errno;
		snprintf(why, whylen, "eventfd: %s", strerror(-r));
		free(g);
		return r;
	}
	/* What the guest's requests may become, and the fixed buffers' registration. */
	r = uring_init_restricted(&g->ring, entries, ring_ops, ARRAY_SIZE(ring_ops), ring_regs,
				  ARRAY_SIZE(ring_regs), register_efd, g, &g->restricted);
	if (r) {
		snprintf(why, whylen, "io_uring (the drives' ring and its eventfd): %s (is io_uring "
			 "disabled? /proc/sys/kernel/io_uring_disabled)", strerror(-r));
		close(g->efd);
		free(g);
		return r;
	}
	*out = g;
	return 0;
}

int blk_engine_register(struct blk_engine *g, const struct iovec *iov, unsigned n, int *res)
{
	unsigned total = 0, slot = 0;
	int r;

	for (unsigned i = 0; i < n; i++)
		total += (unsigned)((iov[i].iov_len + BLK_FIXED_MAX - 1) / BLK_FIXED_MAX);
	if (g->registered || !total)
		return g->registered ? -EBUSY : 0;
	g->bufs = calloc(total, sizeof(*g->bufs));
	if (!g->bufs)
		return -ENOMEM;
	r = io_uring_register_buffers_sparse(&g->ring, total);
	if (r) {
		free(g->bufs);
		g->bufs = NULL;
		for (unsigned i = 0; i < n; i++)
			res[i] = r;
		return r;
	}
	g->registered = true;
	g->nbufs = total;
	/* One range at a time, so that a range the kernel refuses leaves the others pinned. */
	for (unsigned i = 0; i < n; i++) {
		unsigned first = slot;
		uint64_t done = 0;

		res[i] = 0;
		while (done < iov[i].iov_len) {
			struct iovec piece = {
				.iov_base = (uint8_t *)iov[i].iov_base + done,
				.iov_len = MIN(iov[i].iov_len - done, BLK_FIXED_MAX),
			};
			__u64 tag = 0;

			r = io_uring_register_buffers_update_tag(&g->ring, slot, &piece, &tag, 1);
			if (r < 0) {
				res[i] = r;
				break;
			}
			g->bufs[slot++] = piece;
			done += piece.iov_len;
		}
		if (res[i]) {
			/* Unregister the pieces already in: an empty iovec clears a slot. */
			for (unsigned s = first; s < slot; s++) {
				struct iovec none = {0};
				__u64 tag = 0;

				(void)io_uring_register_buffers_update_tag(&g->ring, s, &none, &tag, 1);
				g->bufs[s] = none;
			}
		}
	}
	return 0;
}

int blk_engine_fd(const struct blk_engine *g)
{
	return g->efd;
}

/* The registered buffer holding [p, p + len), or -1. */
static int fixed_index(const struct blk_engine *g, const void *p, size_t len)
{
	uintptr_t a = (uintptr_t)p;

	for (unsigned i = 0; i < g->nbufs; i++) {
		uintptr_t b = (uintptr_t)g->bufs[i].iov_base;

		if (g->bufs[i].iov_len && a >= b && a - b <= g->bufs[i].iov_len &&
		    len <= g->bufs[i].iov_len - (a - b))
			return (int)i;
	}
	return -1;
}

static struct io_uring_sqe *get_sqe(struct blk_engine *g)
{
	struct io_uring_sqe *s = io_uring_get_sqe(&g->ring);

	if (!s && io_uring_submit(&g->ring) >= 0)
		s = io_uring_get_sqe(&g->ring);
	return s;
}

/* Queue @op's next submission. 0, or -EBUSY when the ring has no room. */
static int submit_op(struct blk_engine *g, struct blk_op *op)
{
	struct io_uring_sqe *s = get_sqe(g);

	if (!s)
		return -EBUSY;
	switch (op->kind) {
	case OP_READ:
		if (op->buf_index >= 0)
			io_uring_prep_read_fixed(s, op->fd, op->iov[0].iov_base,
						 (unsigned)op->len, op->off, op->buf_index);
		else
			io_uring_prep_readv(s, op->fd, op->iov, op->niov, op->off);
		break;
	case OP_WRITE:
		if (op->buf_index >= 0)
			io_uring_prep_write_fixed(s, op->fd, op->iov[0].iov_base,
						  (unsigned)op->len, op->off, op->buf_index);
		else
			io_uring_prep_writev(s, op->fd, op->iov, op->niov, op->off);
		break;
	case OP_FSYNC:
		io_uring_prep_fsync(s, op->fd, 0);
		break;
	case OP_FALLOC:
		io_uring_prep_fallocate(s, op->fd, op->mode, op->off, op->len);
		break;
	case OP_ZERO:
		io_uring_prep_write(s, op->fd, zeros, (unsigned)MIN(op->len, BLK_ZERO_CHUNK),
				    op->off);
		break;
	}
	io_uring_sqe_set_data(s, op);
	g->inflight++;
	return 0;
}

/* --- requests ------------------------------------------------------------ */

static struct virtio_blk *of(struct virtio_mmio *t)
{
	return t->priv;
}

static void backing_put(struct blk_backing *b)
{
	if (b && !--b->refs) {
		blk_file_close(&b->f);
		free(b);
	}
}

static struct blk_req *req_get(struct virtio_blk *d)
{
	struct blk_req *r = d->free_reqs;

	if (r) {
		d->free_reqs = r->next;
		d->nfree--;
	} else {
		r = malloc(sizeof(*r));
		if (!r)
			return NULL;
	}
	memset(r, 0, offsetof(struct blk_req, iov_in));
	r->dev = d;
	r->iov = r->iov_in;
	r->ops = r->op_in;
	return r;
}

static void req_put(struct virtio_blk *d, struct blk_req *r)
{
	if (r->iov != r->iov_in)
		free(r->iov);
	if (r->ops != r->op_in)
		free(r->ops);
	backing_put(r->b);
	if (d->nfree < BLK_FREE_CACHE) {
		r->next = d->free_reqs;
		d->free_reqs = r;
		d->nfree++;
	} else {
		free(r);
	}
}

/* Room for @n iovecs / operations. */
static int req_iov(struct blk_req *r, unsigned n)
{
	if (n > BLK_IOV_INLINE) {
		r->iov = malloc(n * sizeof(*r->iov));
		if (!r->iov) {
			r->iov = r->iov_in;
			return -ENOMEM;
		}
	}
	return 0;
}

static int req_ops(struct blk_req *r, unsigned n)
{
	if (n > 1) {
		r->ops = calloc(n, sizeof(*r->ops));
		if (!r->ops) {
			r->ops = r->op_in;
			return -ENOMEM;
		}
	} else {
		memset(r->op_in, 0, sizeof(r->op_in));
	}
	r->nops = n;
	for (unsigned i = 0; i < n; i++) {
		r->ops[i].req = r;
		r->ops[i].buf_index = -1;
	}
	return 0;
}

/* The engine's list of devices that got completions (or wait for room). */
static void mark_ready(struct blk_engine *g, struct virtio_blk *d)
{
	if (d->next_ready || g->ready == d)
		return;
	d->next_ready = g->ready ? g->ready : d; /* a self-link ends the list */
	g->ready = d;
}

/* Give the chain back to the driver (lock held): status, then the used ring. */
static void complete(struct virtio_blk *d, uint16_t head, uint8_t *status, uint8_t result,
		     uint32_t written)
{
	*status = result;
	vq_push(&d->t.vq[0], head, written);
	d->pending_irq = true;
}

static void req_finish(struct blk_engine *g, struct blk_req *r)
{
	struct virtio_blk *d = r->dev;

	if (!g->draining && r->gen == d->gen && virtio_mmio_live(&d->t)) {
		if (r->result != VIRTIO_BLK_S_OK)
			r->written = 1;
		complete(d, r->head, r->status, r->result, r->written);
		mark_ready(g, d);
	}
	d->inflight--;
	req_put(d, r);
}

/* Drop the first @n bytes of @op's iovecs (a short transfer goes on from there). */
static void advance(struct blk_op *op, uint64_t n)
{
	op->off += n;
	op->len -= n;
	while (n && op->niov) {
		size_t k = MIN(n, op->iov[0].iov_len);

		op->iov[0].iov_base = (uint8_t *)op->iov[0].iov_base + k;
		op->iov[0].iov_len -= k;
		n -= k;
		if (!op->iov[0].iov_len) {
			op->iov++;
			op->niov--;
		}
	}
}

static void zero_iov(struct blk_op *op)
{
	for (unsigned i = 0; i < op->niov; i++)
		memset(op->iov[i].iov_base, 0, op->iov[i].iov_len);
}

static const char *op_name(const struct blk_op *op)
{
	static const char *const names[] = {"read", "write", "fsync", "fallocate", "write zeroes"};

	return names[op->kind];
}

/*
 * One completion of @op (@res as io_uring gives it). Returns true when the
 * operation is over, false when it was submitted again (short transfer,
 * EAGAIN, a fallocate mode refused).
 */
static bool op_done(struct blk_engine *g, struct blk_op *op, int res)
{
	struct blk_req *r = op->req;
	struct virtio_blk *d = r->dev;

	if (g->draining)
		return true;
	if (res == -EAGAIN || res == -EINTR)
		return submit_op(g, op) ? (r->result = VIRTIO_BLK_S_IOERR, true) : false;
	if (op->kind == OP_FALLOC && (res == -EOPNOTSUPP || res == -EINVAL)) {
		if (r->discard) /* a hint the file system cannot take: nothing to do */
			return true;
		/* Write zeroes: ZERO_RANGE, then PUNCH_HOLE (reads as zeros), then writes. */
		if (op->mode == MODE_ZERO) {
			op->mode = MODE_PUNCH;
		} else {
			op->kind = OP_ZERO;
			op->fd = r->b->f.fd_buf >= 0 ? r->b->f.fd_buf : r->b->f.fd;
		}
		return submit_op(g, op) ? (r->result = VIRTIO_BLK_S_IOERR, true) : false;
	}
	if (res < 0) {
		log_warn("%s: %s of %llu bytes at offset %llu failed: %s; the guest gets IOERR",
			 d->t.name, op_name(op), (unsigned long long)op->len,
			 (unsigned long long)op->off, strerror(-res));
		r->result = VIRTIO_BLK_S_IOERR;
		d->st.io_errors++;
		return true;
	}
	if (op->kind == OP_FSYNC || op->kind == OP_FALLOC)
		return true;
	if ((uint64_t)res > op->len)
		res = (int)op->len;
	if (op->kind == OP_ZERO) {
		op->off += (uint64_t)res;
		op->len -= (uint64_t)res;
	} else {
		advance(op, (uint64_t)res);
	}
	if (!op->len)
		return true;
	if (op->kind == OP_READ && (res == 0 || op->off >= r->b->f.size)) {
		/* Past the end of the file (or the device): zeros. */
		zero_iov(op);
		return true;
	}
	if (res == 0) { /* a write that moves nothing would loop */
		log_warn("%s: %s at offset %llu wrote nothing; the guest gets IOERR", d->t.name,
			 op_name(op), (unsigned long long)op->off);
		r->result = VIRTIO_BLK_S_IOERR;
		d->st.io_errors++;
		return true;
	}
	return submit_op(g, op) ? (r->result = VIRTIO_BLK_S_IOERR, true) : false;
}

static void process(struct virtio_mmio *t, unsigned qi);

void blk_engine_reap(struct blk_engine *g)
{
	struct io_uring_cqe *cqe;
	uint64_t v;

	(void)!read(g->efd, &v, sizeof(v));
	for (;;) {
		unsigned head, n = 0;

		io_uring_for_each_cqe(&g->ring, head, cqe)
		{
			struct blk_op *op = io_uring_cqe_get_data(cqe);
			struct blk_req *r = op->req;
			struct virtio_blk *d = r->dev;

			n++;
			g->inflight--;
			pthread_mutex_lock(&d->t.lock);
			if (op_done(g, op, cqe->res) && !--r->pending)
				req_finish(g, r);
			pthread_mutex_unlock(&d->t.lock);
		}
		if (!n)
			break;
		io_uring_cq_advance(&g->ring, n);
	}
	/* Resubmissions, then one interrupt per device (EVENT_IDX may spare it). */
	(void)io_uring_submit(&g->ring);
	while (g->ready) {
		struct virtio_blk *d = g->ready;

		g->ready = d->next_ready == d ? NULL : d->next_ready;
		d->next_ready = NULL;
		pthread_mutex_lock(&d->t.lock);
		if (d->pending_irq && virtio_mmio_live(&d->t) && vq_should_notify(&d->t.vq[0]))
			virtio_mmio_interrupt(&d->t, VIRTIO_MMIO_INT_VRING);
		d->pending_irq = false;
		if (d->starved) {
			d->starved = false;
			if (virtio_mmio_live(&d->t) && d->t.vq[0].ready)
				process(&d->t, 0);
		}
		pthread_mutex_unlock(&d->t.lock);
	}
}

void blk_engine_destroy(struct blk_engine *g)
{
	if (!g)
		return;
	g->draining = true;
	(void)io_uring_submit(&g->ring);
	while (g->inflight) {
		struct io_uring_cqe *cqe;
		struct blk_op *op;
		struct blk_req *r;

		if (io_uring_wait_cqe(&g->ring, &cqe))
			break;
		op = io_uring_cqe_get_data(cqe);
		r = op->req;
		io_uring_cqe_seen(&g->ring, cqe);
		g->inflight--;
		if (!--r->pending)
			req_finish(g, r);
	}
	/* The ring's end releases its buffers: no io_uring_register from a confined thread. */
	io_uring_queue_exit(&g->ring);
	uring_closed(g->restricted);
	close(g->efd);
	free(g->bufs);
	free(g);
}

/* --- parsing a chain ------------------------------------------------------ */

/*
 * Up to @max iovecs for bytes [@skip, @skip + @len) of the chain's readable
 * (@write false) or writable pieces. The count, or -1 when more are needed.
 */
static int span(const struct vq_chain *c, bool write, uint64_t skip, uint64_t len,
		struct iovec *iov, unsigned max)
{
	unsigned n = 0;

	for (unsigned i = 0; i < c->n && len; i++) {
		uint64_t l = c->buf[i].len;

		if (c->buf[i].write != write)
			continue;
		if (skip >= l) {
			skip -= l;
			continue;
		}
		if (n == max)
			return -1;
		iov[n].iov_base = c->buf[i].hva + skip;
		iov[n].iov_len = MIN(l - skip, len);
		len -= iov[n].iov_len;
		skip = 0;
		n++;
	}
	return (int)n;
}

/* Copy @len bytes at @skip of the readable part into @dst (the caller checked the length). */
static void gather(const struct vq_chain *c, uint64_t skip, void *dst, uint32_t len)
{
	struct iovec iov[VQ_MAX_BUFS];
	int n = span(c, false, skip, len, iov, VQ_MAX_BUFS);
	uint8_t *p = dst;

	for (int i = 0; i < n; i++) {
		memcpy(p, iov[i].iov_base, iov[i].iov_len);
		p += iov[i].iov_len;
	}
}

/* The last byte of the writable part: the status. */
static uint8_t *status_byte(const struct vq_chain *c)
{
	for (unsigned i = c->n; i--;)
		if (c->buf[i].write && c->buf[i].len)
			return c->buf[i].hva + c->buf[i].len - 1;
	return NULL;
}

static bool aligned_for_direct(const struct blk_file *f, const struct iovec *iov, unsigned n,
			       uint64_t off)
{
	if (off % f->dio_offset_align)
		return false;
	for (unsigned i = 0; i < n; i++)
		if ((uintptr_t)iov[i].iov_base % f->dio_mem_align ||
		    iov[i].iov_len % f->dio_offset_align)
			return false;
	return true;
}

/*
 * An aligned request on a direct drive: one READ_FIXED/WRITE_FIXED per segment
 * when every segment sits in one registered buffer (0); 1 when one does not
 * (nothing planned), -ENOMEM.
 */
static int plan_fixed(struct virtio_blk *d, struct blk_req *r, uint8_t kind, uint64_t off)
{
	if (req_ops(r, r->niov))
		return -ENOMEM;
	for (unsigned i = 0; i < r->niov; i++) {
		struct blk_op *op = &r->ops[i];

		op->buf_index = fixed_index(d->g, r->iov[i].iov_base, r->iov[i].iov_len);
		if (op->buf_index < 0) {
			if (r->ops != r->op_in)
				free(r->ops);
			r->ops = r->op_in;
			r->nops = 0;
			return 1;
		}
		op->kind = kind;
		op->fd = r->b->f.fd;
		op->iov = &r->iov[i];
		op->niov = 1;
		op->off = off;
		op->len = r->iov[i].iov_len;
		off += op->len;
	}
	d->st.fixed_count++;
	return 0;
}

/*
 * Data request (read or write) of @len bytes at @off: the operations that
 * move it, by the data path of blk.h. 0 or -ENOMEM.
 */
static int plan_rw(struct virtio_blk *d, struct blk_req *r, bool write, uint64_t off)
{
	const struct blk_file *f = &r->b->f;
	uint8_t kind = write ? OP_WRITE : OP_READ;
	bool aligned = f->direct && aligned_for_direct(f, r->iov, r->niov, off);

	if (aligned) {
		int p = plan_fixed(d, r, kind, off);

		if (p <= 0)
			return p;
	} else if (f->direct) {
		d->st.fixed_fallbacks++;
	}
	if (req_ops(r, 1))
		return -ENOMEM;
	r->ops[0].kind = kind;
	r->ops[0].fd = f->direct && !aligned ? f->fd_buf : f->fd;
	r->ops[0].iov = r->iov;
	r->ops[0].niov = r->niov;
	r->ops[0].off = off;
	for (unsigned i = 0; i < r->niov; i++)
		r->ops[0].len += r->iov[i].iov_len;
	return 0;
}

enum verdict { V_QUEUE, V_DONE, V_WAIT, V_BROKEN };

/*
 * Turn chain @c into request @r: its operations, or an immediate status
 * (r->result with pending 0). V_BROKEN when there is no status byte at all.
 */
static enum verdict parse(struct virtio_blk *d, const struct vq_chain *c, struct blk_req *r,
			  char *why)
{
	const struct blk_file *f = &r->b->f;
	uint64_t cap = f->size / BLK_SECTOR;
	struct virtio_blk_outhdr h;
	uint64_t dlen, sector;
	int n;

	r->status = status_byte(c);
	if (!r->status) {
		snprintf(why, VQ_WHY_LEN, "a request without a device-writable status byte");
		return V_BROKEN;
	}
	r->written = 1;
	r->result = VIRTIO_BLK_S_IOERR;
	if (c->in_len < sizeof(h)) {
		d->st.invalid++;
		return V_DONE;
	}
	gather(c, 0, &h, sizeof(h));
	r->type = (uint8_t)MIN(le32toh(h.type), 255u);
	sector = le64toh(h.sector);
	switch (le32toh(h.type)) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT: {
		bool write = le32toh(h.type) == VIRTIO_BLK_T_OUT;

		/* IN: data in the writable part before the status; OUT: readable after the header. */
		if (write) {
			dlen = c->in_len - sizeof(h);
		} else {
			if (c->in_len != sizeof(h)) { /* data in device-readable buffers */
				d->st.invalid++;
				return V_DONE;
			}
			dlen = c->out_len - 1;
		}
		if (dlen % BLK_SECTOR || sector > cap || dlen / BLK_SECTOR > cap - sector) {
			d->st.invalid++;
			return V_DONE;
		}
		if (write && f->read_only) {
			d->st.invalid++;
			return V_DONE;
		}
		if (!dlen) {
			r->result = VIRTIO_BLK_S_OK;
			return V_DONE;
		}
		n = span(c, write ? false : true, write ? sizeof(h) : 0, dlen, r->iov_in,
			 BLK_IOV_INLINE);
		if (n < 0) {
			if (req_iov(r, VQ_MAX_BUFS))
				return V_DONE;
			n = span(c, !write, write ? sizeof(h) : 0, dlen, r->iov, VQ_MAX_BUFS);
		}
		r->niov = (unsigned)n;
		if (plan_rw(d, r, write, sector * BLK_SECTOR))
			return V_DONE;
		if (write) {
			d->st.write_count++;
			d->st.write_bytes += dlen;
		} else {
			d->st.read_count++;
			d->st.read_bytes += dlen;
			r->written = (uint32_t)dlen + 1;
		}
		return V_QUEUE;
	}
	case VIRTIO_BLK_T_FLUSH:
		d->st.flush_count++;
		if (!d->flush) {
			r->result = VIRTIO_BLK_S_UNSUPP;
			return V_DONE;
		}
		if (req_ops(r, 1))
			return V_DONE;
		r->ops[0].kind = OP_FSYNC;
		r->ops[0].fd = f->fd;
		return V_QUEUE;
	case VIRTIO_BLK_T_GET_ID: {
		uint32_t room = c->out_len - 1;

		d->st.get_id_count++;
		r->written = vq_chain_write(c, d->serial, MIN(room, BLK_ID_BYTES)) + 1;
		r->result = VIRTIO_BLK_S_OK;
		return V_DONE;
	}
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES: {
		bool discard = le32toh(h.type) == VIRTIO_BLK_T_DISCARD;
		struct virtio_blk_discard_write_zeroes s;
		uint32_t flags, num;

		if (f->read_only) {
			r->result = VIRTIO_BLK_S_UNSUPP;
			return V_DONE;
		}
		if (discard)
			d->st.discard_count++;
		else
			d->st.write_zeroes_count++;
		/* One segment per request (max_*_seg is 1). */
		if (c->in_len != sizeof(h) + sizeof(s)) {
			d->st.invalid++;
			return V_DONE;
		}
		gather(c, sizeof(h), &s, sizeof(s));
		sector = le64toh(s.sector);
		num = le32toh(s.num_sectors);
		flags = le32toh(s.flags);
		if ((flags & ~VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) ||
		    (discard && (flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP))) {
			r->result = VIRTIO_BLK_S_UNSUPP;
			return V_DONE;
		}
		if (num > BLK_DISCARD_MAX || sector > cap || num > cap - sector) {
			d->st.invalid++;
			return V_DONE;
		}
		if (!num) {
			r->result = VIRTIO_BLK_S_OK;
			return V_DONE;
		}
		if (req_ops(r, 1))
			return V_DONE;
		r->discard = discard;
		r->ops[0].kind = OP_FALLOC;
		r->ops[0].fd = f->fd;
		r->ops[0].mode = discard || (flags & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) ? MODE_PUNCH
											: MODE_ZERO;
		r->ops[0].off = sector * BLK_SECTOR;
		r->ops[0].len = (uint64_t)num * BLK_SECTOR;
		return V_QUEUE;
	}
	}
	r->result = VIRTIO_BLK_S_UNSUPP;
	return V_DONE;
}

/* --- the device ----------------------------------------------------------- */

static void resume(void *arg, int res)
{
	struct virtio_blk *d = arg;

	(void)res;
	pthread_mutex_lock(&d->t.lock);
	d->timer = NULL;
	if (virtio_mmio_live(&d->t) && d->t.vq[0].ready)
		process(&d->t, 0);
	pthread_mutex_unlock(&d->t.lock);
}

/* Bytes a request moves, for the bandwidth bucket (the data, not the header). */
static uint64_t payload(const struct vq_chain *c)
{
	uint32_t in = c->in_len, out = c->out_len;

	return (in > sizeof(struct virtio_blk_outhdr) ? in - sizeof(struct virtio_blk_outhdr) : 0) +
	       (out > 1 ? out - 1 : 0);
}

static void process(struct virtio_mmio *t, unsigned qi)
{
	struct virtio_blk *d = of(t);
	struct vq *q = &t->vq[qi];
	struct vq_chain *c = &d->chain;
	bool queued = false;
	char why[VQ_WHY_LEN];

	if (d->timer || d->starved)
		return; /* throttled or waiting for room: the timer or the next reap resumes */
	for (;;) {
		struct blk_req *r;
		enum verdict v;
		uint64_t wait;
		int got = vq_pop(q, c, why);

		if (got < 0) {
			virtio_mmio_needs_reset(t, why);
			break;
		}
		if (!got)
			break;
		/* Room for the worst case of one request (a fixed op per segment). */
		if (io_uring_sq_space_left(&d->g->ring) < c->n + 1 &&
		    (io_uring_submit(&d->g->ring) < 0 ||
		     io_uring_sq_space_left(&d->g->ring) < c->n + 1)) {
			vq_unpop(q);
			d->starved = true;
			mark_ready(d->g, d);
			break;
		}
		wait = rl_take(&d->rl, payload(c), 1, now_ns());
		if (wait) {
			vq_unpop(q);
			d->st.throttled++;
			d->timer = t->host->timer(t->host->opaque, wait, resume, d);
			if (!d->timer)
				log_warn("%s: cannot arm the rate limiter's timer; the queue waits "
					 "for the next notification", t->name);
			break;
		}
		r = req_get(d);
		if (!r) {
			vq_unpop(q);
			log_warn("%s: out of memory for a request; the queue waits", t->name);
			break;
		}
		r->b = d->b;
		r->b->refs++;
		r->gen = d->gen;
		r->head = c->head;
		v = parse(d, c, r, why);
		if (v == V_BROKEN) {
			req_put(d, r);
			virtio_mmio_needs_reset(t, why);
			break;
		}
		if (v == V_DONE) {
			complete(d, r->head, r->status, r->result, r->written);
			req_put(d, r);
			continue;
		}
		d->inflight++;
		d->st.inflight_max = MAX(d->st.inflight_max, d->inflight);
		r->result = VIRTIO_BLK_S_OK; /* until an operation fails */
		for (unsigned i = 0; i < r->nops; i++) {
			r->pending++;
			if (submit_op(d->g, &r->ops[i])) { /* cannot happen: room was checked */
				r->pending--;
				r->result = VIRTIO_BLK_S_IOERR;
			}
		}
		if (!r->pending) {
			complete(d, r->head, r->status, VIRTIO_BLK_S_IOERR, 1);
			d->inflight--;
			req_put(d, r);
			continue;
		}
		queued = true;
	}
	if (queued)
		(void)io_uring_submit(&d->g->ring);
	if (d->pending_irq && vq_should_notify(q))
		virtio_mmio_interrupt(t, VIRTIO_MMIO_INT_VRING);
	d->pending_irq = false;
}

static void blk_reset(struct virtio_mmio *t)
{
	struct virtio_blk *d = of(t);

	/* Requests in flight finish into the void: their ring is gone. */
	d->gen++;
	d->starved = false;
	d->pending_irq = false;
}

/* The configuration space (virtio 1.2, 5.2.4), little-endian. */
static void config_read(struct virtio_mmio *t, uint32_t off, void *data, unsigned len)
{
	struct virtio_blk *d = of(t);
	const struct blk_file *f = &d->b->f;
	struct virtio_blk_config cfg;
	uint32_t bs = f->direct && f->dio_offset_align > BLK_SECTOR ? f->dio_offset_align
								     : BLK_SECTOR;

	memset(&cfg, 0, sizeof(cfg));
	cfg.capacity = htole64(f->size / BLK_SECTOR);
	cfg.seg_max = htole32(BLK_SEG_MAX);
	cfg.blk_size = htole32(bs);
	cfg.max_discard_sectors = htole32(BLK_DISCARD_MAX);
	cfg.max_discard_seg = htole32(1);
	cfg.discard_sector_alignment = htole32(MAX(bs, 4096u) / BLK_SECTOR);
	cfg.max_write_zeroes_sectors = htole32(BLK_DISCARD_MAX);
	cfg.max_write_zeroes_seg = htole32(1);
	cfg.write_zeroes_may_unmap = 1;
	memcpy(data, (uint8_t *)&cfg + off, len);
}

/* Four feature sets (read-only or not, flush or not), four tables: the transport's are const. */
#define BLK_FEATURES (1ull << VIRTIO_BLK_F_SEG_MAX | 1ull << VIRTIO_BLK_F_BLK_SIZE)
#define BLK_WRITABLE (1ull << VIRTIO_BLK_F_DISCARD | 1ull << VIRTIO_BLK_F_WRITE_ZEROES)
#define BLK_OPS(feat)                                                                   \
	{                                                                               \
		.name = "block", .device_id = VIRTIO_ID_BLOCK, .nqueues = 1,            \
		.queue_max = VQ_MAX_SIZE, .features = BLK_FEATURES | (feat),            \
		.config_len = offsetof(struct virtio_blk_config, unused1),             \
		.config_read = config_read, .notify = process, .reset = blk_reset,     \
	}
static const struct virtio_dev_ops blk_ops[2][2] = {
	{BLK_OPS(BLK_WRITABLE), BLK_OPS(BLK_WRITABLE | 1ull << VIRTIO_BLK_F_FLUSH)},
	{BLK_OPS(1ull << VIRTIO_BLK_F_RO), BLK_OPS(1ull << VIRTIO_BLK_F_RO | 1ull << VIRTIO_BLK_F_FLUSH)},
};

int virtio_blk_init(struct virtio_blk *d, const struct dev_host *host,
		    const struct guest_mem *mem, uint64_t base, unsigned gsi, struct blk_engine *g,
		    struct blk_file *f, const struct virtio_blk_cfg *cfg)
{
	int r;

	memset(d, 0, sizeof(*d));
	d->b = calloc(1, sizeof(*d->b));
	if (!d->b) {
		blk_file_close(f);
		return -ENOMEM;
	}
	d->b->f = *f;
	d->b->refs = 1;
	f->fd = f->fd_buf = -1;
	d->g = g;
	d->flush = cfg->flush;
	/* GET_ID's serial: NUL-padded, and not terminated when it fills all 20 bytes. */
	memcpy(d->serial, cfg->id, strnlen(cfg->id, sizeof(d->serial)));
	rl_init(&d->rl, cfg->rl, now_ns());
	r = virtio_mmio_init(&d->t, &blk_ops[d->b->f.read_only][d->flush], d, host, mem, cfg->id,
			     base, gsi);
	if (r) {
		backing_put(d->b);
		d->b = NULL;
	}
	return r;
}

int virtio_blk_update_path(struct virtio_blk *d, const char *path, char *why, size_t whylen)
{
	struct blk_backing *b;
	uint64_t size;
	int same = blk_file_same(&d->b->f, path, &size);

	if (same < 0) {
		snprintf(why, whylen, "%s: cannot read the image served now: %s", d->b->f.path,
			 strerror(-same));
		return same;
	}
	if (same) {
		if (size < BLK_SECTOR) {
			snprintf(why, whylen, "%s: is %llu bytes, smaller than one %u-byte sector; "
				 "give an image of at least one sector", path,
				 (unsigned long long)size, BLK_SECTOR);
			return -EINVAL;
		}
		pthread_mutex_lock(&d->t.lock);
		d->b->f.size = size;
		snprintf(d->b->f.path, sizeof(d->b->f.path), "%s", path);
		goto changed;
	}
	b = calloc(1, sizeof(*b));
	if (!b) {
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	{
		int r = blk_file_open(&b->f, path, d->b->f.read_only, d->b->f.direct, why, whylen);

		if (r) {
			free(b);
			return r;
		}
	}
	b->refs = 1;
	pthread_mutex_lock(&d->t.lock);
	backing_put(d->b);
	d->b = b;
changed:
	d->st.update_count++;
	virtio_mmio_config_changed(&d->t);
	pthread_mutex_unlock(&d->t.lock);
	return 0;
}

void virtio_blk_set_limits(struct virtio_blk *d, const struct rl_cfg *rl)
{
	pthread_mutex_lock(&d->t.lock);
	rl_init(&d->rl, rl, now_ns());
	pthread_mutex_unlock(&d->t.lock);
}

void virtio_blk_stop(struct virtio_blk *d)
{
	pthread_mutex_lock(&d->t.lock);
	if (d->timer)
		d->t.host->timer_cancel(d->t.host->opaque, d->timer);
	d->timer = NULL;
	pthread_mutex_unlock(&d->t.lock);
}

void virtio_blk_destroy(struct virtio_blk *d)
{
	while (d->free_reqs) {
		struct blk_req *r = d->free_reqs;

		d->free_reqs = r->next;
		free(r);
	}
	d->nfree = 0;
	backing_put(d->b);
	d->b = NULL;
	virtio_mmio_destroy(&d->t);
}

void virtio_blk_stats(struct virtio_blk *d, struct virtio_blk_stats *out)
{
	pthread_mutex_lock(&d->t.lock);
	*out = d->st;
	pthread_mutex_unlock(&d->t.lock);
}

void virtio_blk_backing(struct virtio_blk *d, char *path, size_t len, uint64_t *size)
{
	pthread_mutex_lock(&d->t.lock);
	snprintf(path, len, "%s", d->b->f.path);
	*size = d->b->f.size;
	pthread_mutex_unlock(&d->t.lock);
}
