#include "devices/virtio/rng.h"

#include <errno.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_mmio.h>
#include <string.h>
#include <sys/random.h>

#include "common/log.h"
#include "common/util.h"

static struct virtio_rng *of(struct virtio_mmio *t)
{
	return t->priv;
}

static void process(struct virtio_mmio *t, unsigned qi);

static void resume(void *arg, int res)
{
	struct virtio_rng *r = arg;

	(void)res;

	pthread_mutex_lock(&r->t.lock);
	r->timer = NULL;
	if (virtio_mmio_live(&r->t) && r->t.vq[0].ready)
		process(&r->t, 0);
	pthread_mutex_unlock(&r->t.lock);
}

/* Fill every writable piece of @c with random bytes; the bytes written. */
static uint32_t fill(struct virtio_rng *r, const struct vq_chain *c)
{
	uint32_t done = 0;

	for (unsigned i = 0; i < c->n; i++) {
		uint32_t off = 0;

		if (!c->buf[i].write)
			continue;
		while (off < c->buf[i].len) {
			ssize_t n = getrandom(c->buf[i].hva + off, c->buf[i].len - off, 0);

			if (n <= 0) {
				if (n < 0 && errno == EINTR)
					continue;
				r->st.errors++;
				log_warn("entropy: getrandom: %s; the request gets %u bytes",
					 n < 0 ? strerror(errno) : "no bytes", done + off);
				return done + off;
			}
			off += (uint32_t)n;
		}
		done += off;
	}
	return done;
}

static void process(struct virtio_mmio *t, unsigned qi)
{
	struct virtio_rng *r = of(t);
	struct vq *q = &t->vq[qi];
	struct vq_chain *c = &r->chain;
	bool pushed = false;
	char why[VQ_WHY_LEN];

	if (r->timer)
		return; /* throttled: the timer resumes */
	for (;;) {
		int got = vq_pop(q, c, why);
		uint64_t wait;

		if (got < 0) {
			virtio_mmio_needs_reset(t, why);
			break;
		}
		if (!got)
			break;
		wait = rl_take(&r->rl, c->out_len, 1, now_ns());
		if (wait) {
			vq_unpop(q);
			r->st.throttled++;
			r->timer = t->host->timer(t->host->opaque, wait, resume, r);
			if (!r->timer)
				log_warn("entropy: cannot arm the rate limiter's timer; the queue "
					 "waits for the next notification");
			break;
		}
		r->st.requests++;
		r->st.bytes += c->out_len;
		vq_push(q, c->head, fill(r, c));
		pushed = true;
	}
	if (pushed && vq_should_notify(q))
		virtio_mmio_interrupt(t, VIRTIO_MMIO_INT_VRING);
}


static const struct virtio_dev_ops rng_ops = {
	.name = "entropy",
	.device_id = VIRTIO_ID_RNG,
	.nqueues = 1,
	.queue_max = VQ_MAX_SIZE,
	.notify = process,
	/* A reset leaves a pending resume armed: it finds nothing to do, or the new queue. */
};

int virtio_rng_init(struct virtio_rng *r, const struct dev_host *host,
		    const struct guest_mem *mem, uint64_t base, unsigned gsi,
		    const struct rl_cfg *rl)
{
	memset(r, 0, sizeof(*r));
	rl_init(&r->rl, rl, now_ns());
	return virtio_mmio_init(&r->t, &rng_ops, r, host, mem, "entropy", base, gsi);
}

void virtio_rng_stop(struct virtio_rng *r)
{
	pthread_mutex_lock(&r->t.lock);
	if (r->timer)
		r->t.host->timer_cancel(r->t.host->opaque, r->timer);
	r->timer = NULL;
	pthread_mutex_unlock(&r->t.lock);
}

void virtio_rng_destroy(struct virtio_rng *r)
{
	virtio_mmio_destroy(&r->t);
}

void virtio_rng_stats(struct virtio_rng *r, struct virtio_rng_stats *out)
{
	pthread_mutex_lock(&r->t.lock);
	*out = r->st;
	pthread_mutex_unlock(&r->t.lock);
}
