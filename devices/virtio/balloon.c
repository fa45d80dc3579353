#include "devices/virtio/balloon.h"

#include <errno.h>
#include <linux/virtio_balloon.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_mmio.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"

#define F(b)           (1ull << (b))
#define PAGES_PER_MIB  256u /* 4K pages */
#define STAT_LEN       10u  /* struct virtio_balloon_stat: le16 tag, le64 val, packed */
#define RETRY_MS       100  /* a deflate waiting for the hugetlb pool asks again */
#define Q_INFLATE      0
#define Q_DEFLATE      1

static struct virtio_balloon *of(struct virtio_mmio *t)
{
	return t->priv;
}

static uint32_t le32_at(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The guest address of host address @hva inside guest RAM (a checked chain's buffer). */
static bool hva_gpa(const struct guest_mem *gm, const uint8_t *hva, uint64_t *gpa)
{
	for (unsigned i = 0; i < gm->nslots; i++) {
		const struct mem_slot *s = &gm->slots[i];

		if (hva >= s->hva && (uint64_t)(hva - s->hva) < s->size) {
			*gpa = s->gpa + (uint64_t)(hva - s->hva);
			return true;
		}
	}
	return false;
}

/* The next chain of @q into @c: 1, 0 when none, -1 when the guest broke a rule (reset). */
static int next_chain(struct virtio_mmio *t, struct vq *q, struct vq_chain *c)
{
	char why[VQ_WHY_LEN];
	int got = vq_pop(q, c, why);

	if (got < 0)
		virtio_mmio_needs_reset(t, why);
	return got;
}

/*
 * Call @fn on every 4K page number of the chain's device-readable buffers (le32
 * each, possibly split across pieces). Stops at the first @fn that fails with
 * -ENOMEM and returns it; page numbers @fn refuses (-EINVAL) are counted.
 */
static int each_pfn(struct virtio_balloon *b, const struct vq_chain *c,
		    int (*fn)(struct mem_reclaim *rc, uint64_t gpa), uint64_t *pages)
{
	uint8_t part[4];
	unsigned have = 0;

	for (unsigned i = 0; i < c->n; i++) {
		if (c->buf[i].write)
			continue;
		for (uint32_t k = 0; k < c->buf[i].len; k++) {
			int r;

			part[have++] = c->buf[i].hva[k]; /* read once */
			if (have < 4)
				continue;
			have = 0;
			r = fn(b->rc, (uint64_t)le32_at(part) << VIRTIO_BALLOON_PFN_SHIFT);
			if (r == -ENOMEM)
				return r;
			(*pages)++;
			if (r)
				b->st.rejected++;
		}
	}
	return 0;
}

static void retry(void *arg, int res);

static bool serve_pfns(struct virtio_mmio *t, unsigned qi)
{
	struct virtio_balloon *b = of(t);
	struct vq *q = &t->vq[qi];
	struct vq_chain *c = &b->chain;
	bool pushed = false;

	if (qi == Q_DEFLATE && b->retry_timer)
		return false; /* waiting for the pool: the timer comes back */
	while (next_chain(t, q, c) > 0) {
		uint64_t pages = 0;
		int r;

		if (qi == Q_INFLATE) {
			r = each_pfn(b, c, mem_reclaim_inflate, &pages);
			b->st.inflate_count++;
			b->st.pages_inflated += pages;
		} else {
			/*
			 * A page the pool cannot back yet stops the request before the guest
			 * is told: the whole chain is served again later (pages already taken
			 * back are no-ops then).
			 */
			r = each_pfn(b, c, mem_reclaim_deflate, &pages);
			if (r == -ENOMEM) {
				vq_unpop(q);
				b->st.deflate_waits++;
				if (!b->waiting)
					log_warn("balloon: the hugetlb pool has no page for a deflate; "
						 "the guest waits until one is free (every %d ms)",
						 RETRY_MS);
				b->waiting = true;
				b->retry_timer = t->host->timer(t->host->opaque, RETRY_MS, retry, b);
				if (!b->retry_timer) {
					b->st.event_fails++;
					log_warn("balloon: cannot arm the deflate's retry timer; it "
						 "waits for the next notification");
				}
				break;
			}
			b->waiting = false;
			b->st.deflate_count++;
			b->st.pages_deflated += pages;
		}
		vq_push(q, c->head, 0);
		pushed = true;
	}
	return pushed;
}

static void retry(void *arg, int res)
{
	struct virtio_balloon *b = arg;

	(void)res;
	pthread_mutex_lock(&b->t.lock);
	b->retry_timer = NULL;
	if (virtio_mmio_live(&b->t) && b->t.vq[Q_DEFLATE].ready &&
	    serve_pfns(&b->t, Q_DEFLATE) && vq_should_notify(&b->t.vq[Q_DEFLATE]))
		virtio_mmio_interrupt(&b->t, VIRTIO_MMIO_INT_VRING);
	pthread_mutex_unlock(&b->t.lock);
}

/*
 * The driver's statistics: (le16 tag, le64 value) entries; unknown tags are skipped.
 * A buffer that is not whole entries, or has device-writable pieces, changes nothing.
 */
static void read_stats(struct virtio_balloon *b, const struct vq_chain *c)
{
	struct balloon_guest_stats gs = b->gs;
	uint8_t e[STAT_LEN];
	unsigned have = 0;
	bool whole = true;

	for (unsigned i = 0; i < c->n && whole; i++) {
		if (c->buf[i].write) {
			whole = false; /* the driver's statistics are device-readable only */
			break;
		}
		for (uint32_t k = 0; k < c->buf[i].len; k++) {
			uint16_t tag;
			uint64_t val = 0;

			e[have++] = c->buf[i].hva[k];
			if (have < STAT_LEN)
				continue;
			have = 0;
			tag = (uint16_t)(e[0] | e[1] << 8);
			for (int j = 9; j >= 2; j--)
				val = val << 8 | e[j];
			if (tag >= BALLOON_STAT_TAGS)
				continue;
			gs.val[tag] = val;
			gs.have |= 1u << tag;
		}
	}
	if (!whole || have) {
		b->st.stats_update_fails++;
		return;
	}
	b->gs = gs;
	b->gs.updates++;
	b->st.stats_updates_count++;
}

static void stats_tick(void *arg, int res);

static void arm_stats(struct virtio_balloon *b)
{
	if (b->stats_timer || !b->cfg.stats_interval_s)
		return;
	b->stats_timer = b->t.host->timer(b->t.host->opaque, b->cfg.stats_interval_s * 1000ull,
					  stats_tick, b);
	if (!b->stats_timer) {
		b->st.event_fails++;
		log_warn("balloon: cannot arm the statistics timer; statistics stop updating");
	}
}

/* Time for new statistics: give the driver its buffer back, it answers with a fresh one. */
static void stats_tick(void *arg, int res)
{
	struct virtio_balloon *b = arg;

	(void)res;
	pthread_mutex_lock(&b->t.lock);
	b->stats_timer = NULL;
	if (virtio_mmio_live(&b->t) && b->q_stats >= 0) {
		struct vq *q = &b->t.vq[b->q_stats];

		if (b->stats_held && q->ready) {
			b->stats_held = false;
			vq_push(q, b->stats_head, 0);
			if (vq_should_notify(q))
				virtio_mmio_interrupt(&b->t, VIRTIO_MMIO_INT_VRING);
		}
		arm_stats(b);
	}
	pthread_mutex_unlock(&b->t.lock);
}

static bool serve_stats(struct virtio_mmio *t, unsigned qi)
{
	struct virtio_balloon *b = of(t);
	struct vq *q = &t->vq[qi];
	struct vq_chain *c = &b->chain;
	bool pushed = false;

	while (next_chain(t, q, c) > 0) {
		/* One buffer is held at a time; an older one goes back (the driver has one). */
		if (b->stats_held) {
			vq_push(q, b->stats_head, 0);
			pushed = true;
		}
		read_stats(b, c);
		b->stats_head = c->head;
		b->stats_held = true;
	}
	return pushed;
}

/* Free page reporting: each buffer is a free block of the guest's, given for the while. */
static bool serve_reports(struct virtio_mmio *t, unsigned qi)
{
	struct virtio_balloon *b = of(t);
	struct vq *q = &t->vq[qi];
	struct vq_chain *c = &b->chain;
	bool pushed = false;

	while (next_chain(t, q, c) > 0) {
		for (unsigned i = 0; i < c->n; i++) {
			const uint8_t *start = c->buf[i].hva;
			uint64_t gpa, len = c->buf[i].len;

			/* A block across two slots comes as two pieces; they join here. */
			while (i + 1 < c->n && c->buf[i + 1].hva == c->buf[i].hva + c->buf[i].len) {
				len += c->buf[i + 1].len;
				i++;
			}
			b->st.reports++;
			b->st.reported_bytes += len;
			if (!hva_gpa(t->mem, start, &gpa) || mem_reclaim_report(b->rc, gpa, len))
				b->st.rejected++;
		}
		vq_push(q, c->head, 0);
		pushed = true;
	}
	return pushed;
}

static void balloon_notify(struct virtio_mmio *t, unsigned qi)
{
	struct virtio_balloon *b = of(t);
	bool pushed = false;

	if (qi == Q_INFLATE || qi == Q_DEFLATE)
		pushed = serve_pfns(t, qi);
	else if ((int)qi == b->q_stats)
		pushed = serve_stats(t, qi);
	else if ((int)qi == b->q_report)
		pushed = serve_reports(t, qi);
	if (pushed && vq_should_notify(&t->vq[qi]))
		virtio_mmio_interrupt(t, VIRTIO_MMIO_INT_VRING);
}

static void balloon_activate(struct virtio_mmio *t)
{
	struct virtio_balloon *b = of(t);
	uint64_t f = t->driver_features;
	int next = 2; /* queues the driver does not negotiate take no index */

	b->q_stats = (f & F(VIRTIO_BALLOON_F_STATS_VQ)) ? next++ : -1;
	b->q_report = (f & F(VIRTIO_BALLOON_F_REPORTING)) ? next++ : -1;
	arm_stats(b);
}

static void balloon_reset(struct virtio_mmio *t)
{
	struct virtio_balloon *b = of(t);

	/*
	 * A vCPU's thread: timers are left to find the device not live and stand down.
	 * The driver that filled the balloon is gone (a reboot, a new kernel): every
	 * page is the guest's again, and the next driver starts from an empty balloon.
	 */
	mem_reclaim_release_all(b->rc);
	b->q_stats = b->q_report = -1;
	b->stats_held = false;
	b->actual = 0;
}

static void balloon_config_read(struct virtio_mmio *t, uint32_t off, void *data, unsigned len)
{
	struct virtio_balloon *b = of(t);
	uint8_t cfg[16] = {0};

	for (int i = 0; i < 4; i++) {
		cfg[i] = (uint8_t)(b->num_pages >> (8 * i));
		cfg[4 + i] = (uint8_t)(b->actual >> (8 * i));
	}
	memcpy(data, cfg + off, len);
}

static void balloon_config_write(struct virtio_mmio *t, uint32_t off, const void *data,
				 unsigned len)
{
	struct virtio_balloon *b = of(t);
	uint8_t v[4];

	/* Only "actual" is the driver's to write; the rest is read-only and ignored. */
	if (off < 4 || off + len > 8)
		return;
	for (int i = 0; i < 4; i++)
		v[i] = (uint8_t)(b->actual >> (8 * i));
	memcpy(v + (off - 4), data, len);
	b->actual = le32_at(v);
}

int virtio_balloon_init(struct virtio_balloon *b, const struct dev_host *host,
			const struct guest_mem *mem, struct mem_reclaim *rc, uint64_t base,
			unsigned gsi, const struct virtio_balloon_cfg *cfg)
{
	memset(b, 0, sizeof(*b));
	b->rc = rc;
	b->cfg = *cfg;
	b->num_pages = cfg->amount_mib * PAGES_PER_MIB;
	b->q_stats = b->q_report = -1;
	b->ops = (struct virtio_dev_ops){
		.name = "balloon",
		.device_id = VIRTIO_ID_BALLOON,
		.nqueues = 4,
		.queue_max = VQ_MAX_SIZE,
		/* MUST_TELL_HOST: a deflated page is the guest's only once we said so. */
		.features = F(VIRTIO_BALLOON_F_MUST_TELL_HOST) |
			    (cfg->stats_interval_s ? F(VIRTIO_BALLOON_F_STATS_VQ) : 0) |
			    (cfg->deflate_on_oom ? F(VIRTIO_BALLOON_F_DEFLATE_ON_OOM) : 0) |
			    (cfg->free_page_reporting ? F(VIRTIO_BALLOON_F_REPORTING) : 0),
		.config_len = 16,
		.config_read = balloon_config_read,
		.config_write = balloon_config_write,
		.notify = balloon_notify,
		.activate = balloon_activate,
		.reset = balloon_reset,
	};
	return virtio_mmio_init(&b->t, &b->ops, b, host, mem, "balloon", base, gsi);
}

void virtio_balloon_set_target(struct virtio_balloon *b, uint32_t amount_mib)
{
	pthread_mutex_lock(&b->t.lock);
	b->cfg.amount_mib = amount_mib;
	b->num_pages = amount_mib * PAGES_PER_MIB;
	virtio_mmio_config_changed(&b->t);
	pthread_mutex_unlock(&b->t.lock);
}

int virtio_balloon_set_stats_interval(struct virtio_balloon *b, uint32_t s)
{
	int r = 0;

	pthread_mutex_lock(&b->t.lock);
	if (!b->cfg.stats_interval_s || !s) {
		r = -EINVAL;
	} else {
		b->cfg.stats_interval_s = s;
		/* The next tick comes at the new pace. */
		if (b->stats_timer)
			b->t.host->timer_cancel(b->t.host->opaque, b->stats_timer);
		b->stats_timer = NULL;
		if (virtio_mmio_live(&b->t) && b->q_stats >= 0)
			arm_stats(b);
	}
	pthread_mutex_unlock(&b->t.lock);
	return r;
}

void virtio_balloon_info(struct virtio_balloon *b, struct balloon_info *out)
{
	pthread_mutex_lock(&b->t.lock);
	*out = (struct balloon_info){
		.target_pages = b->num_pages,
		.actual_pages = b->actual,
		.stats_interval_s = b->cfg.stats_interval_s,
		.deflate_on_oom = b->cfg.deflate_on_oom,
		.free_page_reporting = b->cfg.free_page_reporting,
		.features = virtio_mmio_live(&b->t) ? b->t.driver_features : 0,
		.gs = b->gs,
	};
	pthread_mutex_unlock(&b->t.lock);
}

void virtio_balloon_counters(struct virtio_balloon *b, struct balloon_counters *out)
{
	pthread_mutex_lock(&b->t.lock);
	*out = b->st;
	pthread_mutex_unlock(&b->t.lock);
}

void virtio_balloon_stop(struct virtio_balloon *b)
{
	pthread_mutex_lock(&b->t.lock);
	b->t.host->timer_cancel(b->t.host->opaque, b->stats_timer);
	b->t.host->timer_cancel(b->t.host->opaque, b->retry_timer);
	b->stats_timer = b->retry_timer = NULL;
	pthread_mutex_unlock(&b->t.lock);
}

void virtio_balloon_destroy(struct virtio_balloon *b)
{
	virtio_mmio_destroy(&b->t);
}
