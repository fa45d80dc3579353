#include "vmm/vm_virtio.h"

#include <errno.h>
#include <linux/virtio_ids.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "devices/virtio/balloon.h"
#include "devices/virtio/blk.h"
#include "devices/virtio/net.h"
#include "devices/virtio/rng.h"
#include "devices/virtio/vsock.h"
#include "vmm/vm_priv.h"

/*
 * Submissions of the drives' ring: one request of the longest chain (a fixed
 * operation per piece, VQ_MAX_BUFS) always fits an empty ring.
 */
#define BLK_RING_ENTRIES 1024

/* One virtio device of the VM: its transport, and the model that owns it. */
struct vm_vdev {
	struct virtio_mmio *t;
	struct virtio_rng *rng; /* when the model is the entropy device */
	struct virtio_blk *blk; /* when it is a drive */
	struct virtio_net *net; /* when it is a network interface */
	struct virtio_balloon *balloon; /* when it is the balloon */
	struct virtio_vsock *vsock; /* when it is the vsock */
	struct blk_file file;   /* a drive's image, opened before the device exists */
	int tap;                /* an interface's tap, opened before the device exists */
	char id[64];            /* a drive's drive_id, an interface's iface_id */
	bool direct;
	struct vm_kick {
		struct virtio_mmio *t;
		unsigned q;
		struct ev_handle *w;
	} kick[VIRTIO_MAX_QUEUES];
};

static void on_kick(void *arg, int res)
{
	struct vm_kick *k = arg;

	(void)res;
	virtio_mmio_kick(k->t, k->q);
}

static void on_blk(void *arg, int res)
{
	(void)res;
	blk_engine_reap(arg);
}

/* Notifications and interrupts without exits: ioeventfd per queue, irqfd per device. */
static void wire(struct vm *vm, struct virtio_mmio *t)
{
	for (unsigned q = 0; q < t->ops->nqueues; q++) {
		uint64_t match = q;
		int r = vm->ops->ioeventfd(vm->hvm, t->kick_fd[q], t->base + VIRTIO_MMIO_NOTIFY_OFF,
					   4, false, &match, true);

		/* Without one the notify write exits and the register handler kicks instead. */
		if (r)
			log_debug("%s: queue %u: no ioeventfd (%s); notifications exit", t->name, q,
				  strerror(-r));
	}
	t->irqfd = !vm->ops->irqfd(vm->hvm, t->irq_fd, t->gsi, true);
	if (!t->irqfd)
		log_debug("%s: no irqfd for GSI %u; interrupts go through the irq line", t->name,
			  t->gsi);
}

int vm_virtio_open(struct vm *vm, const struct vm_config *c, struct vmm_err *e)
{
	vm->vdevs = calloc(vm->machine.nvirtio ? vm->machine.nvirtio : 1, sizeof(*vm->vdevs));
	if (!vm->vdevs)
		return err_set(e, ERR_RUNTIME, -ENOMEM, "out of memory");
	for (unsigned i = 0; i < vm->machine.nvirtio; i++)
		vm->vdevs[i].file.fd = vm->vdevs[i].file.fd_buf = vm->vdevs[i].tap = -1;
	for (unsigned i = 0; i < vm->machine.nvirtio; i++) {
		const struct machine_virtio *mv = &vm->machine.virtio[i];
		const struct cfg_drive *cd = &c->drives[mv->cfg];
		struct vm_vdev *d = &vm->vdevs[i];
		char why[BLK_WHY_LEN];
		int r;

		vm->nvdevs = i + 1;
		if (mv->device_id == VIRTIO_ID_NET) {
			snprintf(d->id, sizeof(d->id), "%s", c->nets[mv->cfg].id);
			d->tap = tap_open(c->nets[mv->cfg].host_dev, why, sizeof(why));
			if (d->tap < 0)
				return err_set(e, ERR_CONFIG, d->tap,
					       "network-interfaces[%u].host_dev_name: %s", mv->cfg,
					       why);
			continue;
		}
		if (mv->device_id != VIRTIO_ID_BLOCK)
			continue;
		snprintf(d->id, sizeof(d->id), "%s", cd->id);
		d->direct = cd->direct;
		r = blk_file_open(&d->file, cd->path, cd->read_only, cd->direct, why, sizeof(why));
		if (r)
			return err_set(e, ERR_CONFIG, r, "drives[%u].path_on_host: %s", mv->cfg, why);
	}
	return 0;
}

/*
 * Guest RAM for zero-copy I/O: registered with the drives' ring when a drive
 * is direct, region by region, and only where it is already populated
 * (prefault): pinning populates, and a lazy region must stay lazy.
 */
static void register_ram(struct vm *vm)
{
	struct iovec iov[MEM_MAX_REGIONS];
	unsigned idx[MEM_MAX_REGIONS], n = 0;
	int res[MEM_MAX_REGIONS];
	bool direct = false;

	for (unsigned i = 0; i < vm->nvdevs; i++)
		direct |= vm->vdevs[i].blk && vm->vdevs[i].direct;
	if (!direct)
		return;
	for (unsigned i = 0; i < vm->mem.nregions; i++) {
		struct mem_region *r = &vm->mem.regions[i];

		r->uring_registered = false;
		if (!r->cfg.prefault) {
			snprintf(r->uring_why, sizeof(r->uring_why),
				 "not prefaulted: registering pins, and pinning would populate "
				 "this lazy region; its disk I/O takes the ordinary path");
			continue;
		}
		iov[n] = (struct iovec){.iov_base = r->hva, .iov_len = r->size};
		idx[n++] = i;
	}
	if (!n)
		return;
	if (blk_engine_register(vm->blk, iov, n, res) && !res[0])
		res[0] = -EIO;
	for (unsigned k = 0; k < n; k++) {
		struct mem_region *r = &vm->mem.regions[idx[k]];

		r->uring_registered = !res[k];
		if (!res[k]) {
			log_debug("%s: registered with the drives' io_uring (%llu bytes pinned)",
				  r->cfg.id, (unsigned long long)r->size);
			continue;
		}
		snprintf(r->uring_why, sizeof(r->uring_why),
			 "io_uring_register_buffers: %s%s; its disk I/O takes the ordinary path",
			 strerror(-res[k]),
			 res[k] == -ENOMEM   ? " (RLIMIT_MEMLOCK too low? see ulimit -l)"
			 : res[k] == -EOPNOTSUPP || res[k] == -EFAULT
				 ? " (this memory cannot be pinned long-term: DAX or special mappings)"
				 : "");
		log_warn("%s: %s", r->cfg.id, r->uring_why);
	}
}

static int init_blk(struct vm *vm, const struct vm_config *c, const struct machine_virtio *mv,
		    struct vm_vdev *d, struct vmm_err *e)
{
	const struct cfg_drive *cd = &c->drives[mv->cfg];
	struct virtio_blk_cfg bc = {
		.id = cd->id,
		.flush = cd->cache == CFG_CACHE_WRITEBACK,
		.rl = &cd->rate_limiter,
	};
	int r;

	if (!vm->blk) {
		char why[BLK_WHY_LEN];

		r = blk_engine_create(&vm->blk, BLK_RING_ENTRIES, why, sizeof(why));
		if (r)
			return err_set(e, ERR_RUNTIME, r, "drives: %s", why);
	}
	d->blk = calloc(1, sizeof(*d->blk));
	if (!d->blk)
		return err_set(e, ERR_RUNTIME, -ENOMEM, "out of memory");
	r = virtio_blk_init(d->blk, &vm->devhost, &vm->mem, mv->base, mv->gsi, vm->blk, &d->file,
			    &bc);
	if (r) {
		free(d->blk);
		d->blk = NULL;
		return err_set(e, ERR_RUNTIME, r, "%s: cannot create the device: %s", mv->name,
			       strerror(-r));
	}
	d->t = &d->blk->t;
	return 0;
}

static int parse_mac(const char *s, uint8_t mac[6])
{
	unsigned v[6];

	if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6)
		return -EINVAL;
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)v[i];
	return 0;
}

static int init_net(struct vm *vm, const struct vm_config *c, const struct machine_virtio *mv,
		    struct vm_vdev *d, struct vmm_err *e)
{
	const struct cfg_net *cn = &c->nets[mv->cfg];
	struct virtio_net_cfg nc = {
		.id = cn->id,
		.mtu = cn->mtu,
		.rx_rl = &cn->rx_rate_limiter,
		.tx_rl = &cn->tx_rate_limiter,
	};
	int r;

	if (parse_mac(cn->mac, nc.mac))
		return err_set(e, ERR_CONFIG, -EINVAL,
			       "network-interfaces[%u].guest_mac: \"%s\" is not a MAC address",
			       mv->cfg, cn->mac);
	d->net = calloc(1, sizeof(*d->net));
	if (!d->net)
		return err_set(e, ERR_RUNTIME, -ENOMEM, "out of memory");
	r = virtio_net_init(d->net, &vm->devhost, &vm->mem, mv->base, mv->gsi, d->tap, &nc);
	d->tap = -1; /* the device's now */
	if (r) {
		free(d->net);
		d->net = NULL;
		return err_set(e, ERR_RUNTIME, r, "%s: cannot create the device: %s", mv->name,
			       strerror(-r));
	}
	d->t = &d->net->t;
	return 0;
}

/* The vsock: its listener on uds_path exists from here until the VM ends. */
static int init_vsock(struct vm *vm, const struct vm_config *c, const struct machine_virtio *mv,
		      struct vm_vdev *d, struct vmm_err *e)
{
	struct virtio_vsock_cfg vc = {.guest_cid = c->vsock.guest_cid,
				      .uds_path = c->vsock.uds_path};
	char why[VSOCK_WHY_LEN];
	int r;

	d->vsock = calloc(1, sizeof(*d->vsock));
	if (!d->vsock)
		return err_set(e, ERR_RUNTIME, -ENOMEM, "out of memory");
	r = virtio_vsock_init(d->vsock, &vm->devhost, &vm->mem, mv->base, mv->gsi, &vc, why,
			      sizeof(why));
	if (r) {
		free(d->vsock);
		d->vsock = NULL;
		return err_set(e, uds_host_error(r) ? ERR_RUNTIME : ERR_CONFIG, r, "%s", why);
	}
	d->t = &d->vsock->t;
	log_info("vsock: guest CID %u, host side on %s (guest connections to port P: %s_P)",
		 c->vsock.guest_cid, c->vsock.uds_path, c->vsock.uds_path);
	return 0;
}

/* The balloon, and the reclaim it hands pages to; each region says what reclaim does there. */
static int init_balloon(struct vm *vm, const struct vm_config *c, const struct machine_virtio *mv,
			struct vm_vdev *d, struct vmm_err *e)
{
	struct virtio_balloon_cfg bc = {
		.amount_mib = c->balloon.amount_mib,
		.deflate_on_oom = c->balloon.deflate_on_oom,
		.stats_interval_s = c->balloon.stats_polling_interval_s,
		.free_page_reporting = c->balloon.free_page_reporting,
	};
	int r = mem_reclaim_init(&vm->reclaim, &vm->mem);

	if (r)
		return err_set(e, ERR_RUNTIME, r, "balloon: %s", strerror(-r));
	/* Said at start: a region that gives nothing back makes the balloon hollow there. */
	for (unsigned i = 0; i < vm->mem.nregions; i++)
		if (vm->mem.regions[i].reclaim == MEM_RECLAIM_KEEP)
			log_warn("balloon: region %s: %s", vm->mem.regions[i].cfg.id,
				 vm->mem.regions[i].reclaim_why);
		else
			log_info("balloon: region %s: %s", vm->mem.regions[i].cfg.id,
				 vm->mem.regions[i].reclaim_why);
	d->balloon = calloc(1, sizeof(*d->balloon));
	if (!d->balloon)
		return err_set(e, ERR_RUNTIME, -ENOMEM, "out of memory");
	r = virtio_balloon_init(d->balloon, &vm->devhost, &vm->mem, &vm->reclaim, mv->base,
				mv->gsi, &bc);
	if (r) {
		free(d->balloon);
		d->balloon = NULL;
		return err_set(e, ERR_RUNTIME, r, "%s: cannot create the device: %s", mv->name,
			       strerror(-r));
	}
	vm->balloon = d->balloon;
	d->t = &d->balloon->t;
	return 0;
}

int vm_virtio_init(struct vm *vm, const struct vm_config *c, struct vmm_err *e)
{
	for (unsigned i = 0; i < vm->machine.nvirtio; i++) {
		const struct machine_virtio *mv = &vm->machine.virtio[i];
		struct vm_vdev *d = &vm->vdevs[i];
		int r = -EINVAL;

		switch (mv->device_id) {
		case VIRTIO_ID_RNG:
			d->rng = calloc(1, sizeof(*d->rng));
			if (!d->rng)
				return err_set(e, ERR_RUNTIME, -ENOMEM, "out of memory");
			r = virtio_rng_init(d->rng, &vm->devhost, &vm->mem, mv->base, mv->gsi,
					    &c->entropy.rate_limiter);
			d->t = r ? NULL : &d->rng->t;
			if (r)
				return err_set(e, ERR_RUNTIME, r, "%s: cannot create the device: %s",
					       mv->name, strerror(-r));
			break;
		case VIRTIO_ID_BLOCK:
			r = init_blk(vm, c, mv, d, e);
			if (r)
				return r;
			break;
		case VIRTIO_ID_NET:
			r = init_net(vm, c, mv, d, e);
			if (r)
				return r;
			break;
		case VIRTIO_ID_BALLOON:
			r = init_balloon(vm, c, mv, d, e);
			if (r)
				return r;
			break;
		case VIRTIO_ID_VSOCK:
			r = init_vsock(vm, c, mv, d, e);
			if (r)
				return r;
			break;
		default:
			return err_set(e, ERR_RUNTIME, -EINVAL, "%s: no model for virtio device %u",
				       mv->name, mv->device_id);
		}
		r = bus_register(&vm->mmio, mv->base, VIRTIO_MMIO_WINDOW, &d->t->dev);
		if (r)
			return err_set(e, ERR_RUNTIME, r, "%s: MMIO window at 0x%llx: %s", mv->name,
				       (unsigned long long)mv->base, strerror(-r));
		wire(vm, d->t);
		log_debug("%s: virtio-mmio at 0x%llx, GSI %u", mv->name,
			  (unsigned long long)mv->base, mv->gsi);
	}
	if (vm->blk)
		register_ram(vm);
	return 0;
}

int vm_virtio_attach(struct vm *vm, struct vmm_err *e)
{
	if (vm->blk) {
		vm->w_blk = evloop_watch(vm->loop, blk_engine_fd(vm->blk), POLLIN, on_blk, vm->blk);
		if (!vm->w_blk)
			return err_set(e, ERR_RUNTIME, -ENOMEM,
				       "drives: cannot watch the io_uring's completions");
	}
	for (unsigned i = 0; i < vm->nvdevs; i++) {
		struct vm_vdev *d = &vm->vdevs[i];

		if (!d->t)
			continue;
		for (unsigned q = 0; q < d->t->ops->nqueues; q++) {
			d->kick[q] = (struct vm_kick){.t = d->t, .q = q};
			d->kick[q].w = evloop_watch(vm->loop, d->t->kick_fd[q], POLLIN, on_kick,
						    &d->kick[q]);
			if (!d->kick[q].w)
				return err_set(e, ERR_RUNTIME, -ENOMEM,
					       "%s: cannot watch queue %u's notifications",
					       d->t->name, q);
		}
		if (d->vsock && virtio_vsock_attach(d->vsock))
			return err_set(e, ERR_RUNTIME, -ENOMEM,
				       "vsock: cannot watch its listening socket");
	}
	return 0;
}

void vm_virtio_detach(struct vm *vm)
{
	if (vm->loop)
		evloop_unwatch(vm->loop, vm->w_blk);
	vm->w_blk = NULL;
	for (unsigned i = 0; i < vm->nvdevs; i++) {
		struct vm_vdev *d = &vm->vdevs[i];

		if (!d->t)
			continue;
		for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++) {
			evloop_unwatch(vm->loop, d->kick[q].w);
			d->kick[q].w = NULL;
		}
		if (d->rng)
			virtio_rng_stop(d->rng);
		if (d->blk)
			virtio_blk_stop(d->blk);
		if (d->net)
			virtio_net_stop(d->net);
		if (d->balloon)
			virtio_balloon_stop(d->balloon);
		if (d->vsock)
			virtio_vsock_stop(d->vsock);
	}
}

void vm_virtio_destroy(struct vm *vm)
{
	/* The ring first: requests in flight finish (dropped) while their devices exist. */
	blk_engine_destroy(vm->blk);
	vm->blk = NULL;
	for (unsigned i = 0; i < vm->nvdevs; i++) {
		struct vm_vdev *d = &vm->vdevs[i];

		if (d->rng) {
			if (d->t)
				virtio_rng_destroy(d->rng);
			free(d->rng);
		}
		if (d->blk) {
			virtio_blk_destroy(d->blk);
			free(d->blk);
		}
		if (d->net) {
			if (d->t)
				virtio_net_destroy(d->net);
			free(d->net);
		}
		if (d->balloon) {
			if (d->t)
				virtio_balloon_destroy(d->balloon);
			free(d->balloon);
		}
		if (d->vsock) {
			if (d->t)
				virtio_vsock_destroy(d->vsock);
			free(d->vsock);
		}
		if (d->tap >= 0)
			close(d->tap);
		blk_file_close(&d->file);
	}
	vm->balloon = NULL;
	mem_reclaim_destroy(&vm->reclaim);
	free(vm->vdevs);
	vm->vdevs = NULL;
	vm->nvdevs = 0;
}

static void drive_metrics(struct vm_vdev *d, struct vm_drive_metrics *m)
{
	struct virtio_blk_stats st;

	virtio_blk_stats(d->blk, &st);
	snprintf(m->id, sizeof(m->id), "%s", d->id);
	m->read_count = st.read_count;
	m->write_count = st.write_count;
	m->read_bytes = st.read_bytes;
	m->write_bytes = st.write_bytes;
	m->flush_count = st.flush_count;
	m->discard_count = st.discard_count;
	m->write_zeroes_count = st.write_zeroes_count;
	m->get_id_count = st.get_id_count;
	m->invalid_reqs_count = st.invalid;
	m->io_errors = st.io_errors;
	m->rate_limiter_throttled_events = st.throttled;
	m->fixed_count = st.fixed_count;
	m->fixed_fallbacks = st.fixed_fallbacks;
	m->update_count = st.update_count;
	m->inflight_max = st.inflight_max;
}

static void net_metrics(struct vm_vdev *d, struct vm_net_metrics *m)
{
	struct virtio_net_stats st;

	virtio_net_stats(d->net, &st);
	snprintf(m->id, sizeof(m->id), "%s", d->id);
	m->rx_packets_count = st.rx_packets_count;
	m->rx_bytes_count = st.rx_bytes_count;
	m->rx_tap_event_count = st.rx_tap_event_count;
	m->rx_queue_event_count = st.rx_queue_event_count;
	m->no_rx_avail_buffer = st.no_rx_avail_buffer;
	m->rx_rate_limiter_throttled = st.rx_rate_limiter_throttled;
	m->rx_dropped_too_big = st.rx_dropped_too_big;
	m->tap_read_fails = st.tap_read_fails;
	m->tx_packets_count = st.tx_packets_count;
	m->tx_bytes_count = st.tx_bytes_count;
	m->tx_queue_event_count = st.tx_queue_event_count;
	m->tx_rate_limiter_throttled = st.tx_rate_limiter_throttled;
	m->tx_malformed_frames = st.tx_malformed_frames;
	m->tx_malformed_header = st.tx_malformed_header;
	m->tx_malformed_size = st.tx_malformed_size;
	m->tx_malformed_offload = st.tx_malformed_offload;
	m->tap_write_fails = st.tap_write_fails;
	m->no_tx_avail_buffer = st.no_tx_avail_buffer;
}

void vm_virtio_metrics(struct vm *vm, struct vm_metrics *m)
{
	for (unsigned i = 0; i < vm->nvdevs; i++) {
		struct vm_vdev *d = &vm->vdevs[i];

		if (d->rng && d->t) {
			struct virtio_rng_stats st;

			virtio_rng_stats(d->rng, &st);
			m->entropy_requests += st.requests;
			m->entropy_bytes += st.bytes;
			m->entropy_throttled += st.throttled;
			m->entropy_errors += st.errors;
		}
		if (d->blk && m->ndrives < CFG_MAX_DRIVES)
			drive_metrics(d, &m->drives[m->ndrives++]);
		if (d->net && d->t && m->nnets < CFG_MAX_NETS)
			net_metrics(d, &m->nets[m->nnets++]);
		if (d->balloon && d->t) {
			m->has_balloon = true;
			virtio_balloon_counters(d->balloon, &m->balloon);
			mem_reclaim_stats(&vm->reclaim, &m->reclaim);
		}
		if (d->vsock && d->t) {
			m->has_vsock = true;
			virtio_vsock_counters(d->vsock, &m->vsock);
		}
		if (!d->t)
			continue;
		pthread_mutex_lock(&d->t->lock);
		m->virtio_notifies += d->t->st.notifies;
		m->virtio_interrupts += d->t->st.interrupts;
		m->virtio_needs_reset += d->t->st.needs_reset;
		pthread_mutex_unlock(&d->t->lock);
	}
}

int vm_drive_update(struct vm *vm, const char *id, const char *path, const struct rl_cfg *rl,
		    struct vmm_err *e)
{
	struct vm_vdev *d = NULL;

	for (unsigned i = 0; i < vm->nvdevs && !d; i++)
		if (vm->vdevs[i].blk && !strcmp(vm->vdevs[i].id, id))
			d = &vm->vdevs[i];
	if (!d)
		return err_set(e, ERR_CONFIG, -ENOENT,
			       "drives: no drive \"%s\" is attached; PATCH changes a drive the VM "
			       "started with",
			       id);
	if (path) {
		char why[BLK_WHY_LEN];
		int r = virtio_blk_update_path(d->blk, path, why, sizeof(why));

		if (r)
			return err_set(e, ERR_CONFIG, r, "drives[\"%s\"].path_on_host: %s", id, why);
		log_info("drive %s: now %s", id, path);
	}
	if (rl)
		virtio_blk_set_limits(d->blk, rl);
	return 0;
}

int vm_net_update(struct vm *vm, const char *id, const struct rl_cfg *rx, const struct rl_cfg *tx,
		  struct vmm_err *e)
{
	for (unsigned i = 0; i < vm->nvdevs; i++)
		if (vm->vdevs[i].net && !strcmp(vm->vdevs[i].id, id)) {
			virtio_net_set_limits(vm->vdevs[i].net, rx, tx);
			return 0;
		}
	return err_set(e, ERR_CONFIG, -ENOENT,
		       "network-interfaces: no interface \"%s\" is attached; PATCH changes an "
		       "interface the VM started with",
		       id);
}

static int no_balloon(struct vmm_err *e)
{
	return err_set(e, ERR_CONFIG, -ENOENT,
		       "balloon: the VM has no balloon device; configure one (the config's "
		       "\"balloon\" section or PUT /balloon) before it starts");
}

int vm_balloon_set_target(struct vm *vm, uint32_t amount_mib, struct vmm_err *e)
{
	uint64_t ram_mib = 0;

	if (!vm->balloon)
		return no_balloon(e);
	for (unsigned i = 0; i < vm->mem.nregions; i++)
		ram_mib += vm->mem.regions[i].size >> 20;
	if (amount_mib > ram_mib)
		return err_set(e, ERR_CONFIG, -EINVAL,
			       "balloon.amount_mib: %u MiB is more than the guest's %llu MiB of "
			       "RAM; give at most %llu",
			       amount_mib, (unsigned long long)ram_mib, (unsigned long long)ram_mib);
	virtio_balloon_set_target(vm->balloon, amount_mib);
	log_info("balloon: target %u MiB", amount_mib);
	return 0;
}

int vm_balloon_set_stats_interval(struct vm *vm, uint32_t s, struct vmm_err *e)
{
	struct balloon_info bi;

	if (!vm->balloon)
		return no_balloon(e);
	if (!virtio_balloon_set_stats_interval(vm->balloon, s))
		return 0;
	virtio_balloon_info(vm->balloon, &bi);
	if (!bi.stats_interval_s)
		return err_set(e, ERR_CONFIG, -EINVAL,
			       "balloon.stats_polling_interval_s: statistics were off when the VM "
			       "started (0); they can be turned on only before boot");
	return err_set(e, ERR_CONFIG, -EINVAL,
		       "balloon.stats_polling_interval_s: 0 would turn statistics off, which "
		       "only a config before boot can do; give an interval of 1 s or more");
}

int vm_balloon_info(struct vm *vm, struct balloon_info *out, struct vmm_err *e)
{
	if (!vm->balloon)
		return no_balloon(e);
	virtio_balloon_info(vm->balloon, out);
	return 0;
}

int vm_memory_snapshot(struct vm *vm, struct guest_mem *out)
{
	int r;

	if (vm->balloon)
		mem_reclaim_refresh(&vm->reclaim);
	r = mem_measure(&vm->mem);
	if (r)
		return r;
	*out = vm->mem;
	if (vm->balloon)
		mem_reclaim_snapshot(&vm->reclaim, out);
	return 0;
}
