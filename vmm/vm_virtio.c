#include "vmm/vm_virtio.h"

#include <errno.h>
#include <linux/virtio_ids.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "devices/virtio/rng.h"
#include "vmm/vm_priv.h"

/* One virtio device of the VM: its transport, and the model that owns it. */
struct vm_vdev {
	struct virtio_mmio *t;
	struct virtio_rng *rng; /* when the model is the entropy device */
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

int vm_virtio_init(struct vm *vm, const struct vm_config *c, struct vmm_err *e)
{
	vm->vdevs = calloc(vm->machine.nvirtio ? vm->machine.nvirtio : 1, sizeof(*vm->vdevs));
	if (!vm->vdevs)
		return err_set(e, ERR_RUNTIME, -ENOMEM, "out of memory");
	for (unsigned i = 0; i < vm->machine.nvirtio; i++) {
		const struct machine_virtio *mv = &vm->machine.virtio[i];
		struct vm_vdev *d = &vm->vdevs[i];
		int r = -EINVAL;

		/* Counted first: vm_virtio_destroy frees what a failure leaves half made. */
		vm->nvdevs = i + 1;
		switch (mv->device_id) {
		case VIRTIO_ID_RNG:
			d->rng = calloc(1, sizeof(*d->rng));
			if (!d->rng)
				return err_set(e, ERR_RUNTIME, -ENOMEM, "out of memory");
			r = virtio_rng_init(d->rng, &vm->devhost, &vm->mem, mv->base, mv->gsi,
					    &c->entropy.rate_limiter);
			d->t = r ? NULL : &d->rng->t;
			break;
		}
		if (r)
			return err_set(e, ERR_RUNTIME, r, "%s: cannot create the device: %s",
				       mv->name, strerror(-r));
		r = bus_register(&vm->mmio, mv->base, VIRTIO_MMIO_WINDOW, &d->t->dev);
		if (r)
			return err_set(e, ERR_RUNTIME, r, "%s: MMIO window at 0x%llx: %s", mv->name,
				       (unsigned long long)mv->base, strerror(-r));
		wire(vm, d->t);
		log_debug("%s: virtio-mmio at 0x%llx, GSI %u", mv->name,
			  (unsigned long long)mv->base, mv->gsi);
	}
	return 0;
}

int vm_virtio_attach(struct vm *vm, struct vmm_err *e)
{
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
	}
	return 0;
}

void vm_virtio_detach(struct vm *vm)
{
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
	}
}

void vm_virtio_destroy(struct vm *vm)
{
	for (unsigned i = 0; i < vm->nvdevs; i++) {
		struct vm_vdev *d = &vm->vdevs[i];

		if (d->rng) {
			if (d->t)
				virtio_rng_destroy(d->rng);
			free(d->rng);
		}
	}
	free(vm->vdevs);
	vm->vdevs = NULL;
	vm->nvdevs = 0;
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
		if (!d->t)
			continue;
		pthread_mutex_lock(&d->t->lock);
		m->virtio_notifies += d->t->st.notifies;
		m->virtio_interrupts += d->t->st.interrupts;
		m->virtio_needs_reset += d->t->st.needs_reset;
		pthread_mutex_unlock(&d->t->lock);
	}
}
