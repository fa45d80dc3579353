#include "vmm/evloop.h"

#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/uring.h"
#include "common/util.h"

#define RING_DEPTH 256

struct ev_handle {
	ev_fn fn;
	void *arg;
	int fd;
	short events;
	bool timer, dead, in_flight, dispatching;
	struct __kernel_timespec ts;
	struct ev_handle *next; /* on the graveyard or the re-arm list */
};

struct evloop {
	struct io_uring ring;
	bool restricted;
	struct ev_handle *graveyard; /* unwatched, waiting for their last completion */
	struct ev_handle *rearm;     /* live watches whose re-arm found the queue full */
};

static const uint8_t loop_ops[] = {
	IORING_OP_POLL_ADD, IORING_OP_POLL_REMOVE, IORING_OP_TIMEOUT, IORING_OP_TIMEOUT_REMOVE,
};

int evloop_create(struct evloop **out, struct vmm_err *e)
{
	struct evloop *l = calloc(1, sizeof(*l));
	int r;

	if (!l)
		return err_set(e, ERR_RUNTIME, -ENOMEM, "out of memory");
	/* Watches and timers only: nothing else can go through this ring (common/uring.h). */
	r = uring_init_restricted(&l->ring, RING_DEPTH, loop_ops, ARRAY_SIZE(loop_ops), NULL, 0,
				  NULL, NULL, &l->restricted);
	if (r) {
		free(l);
		return err_set(e, ERR_RUNTIME, r,
			       "io_uring_queue_init: %s (is io_uring disabled? "
			       "/proc/sys/kernel/io_uring_disabled)",
			       strerror(-r));
	}
	*out = l;
	return 0;
}

static struct io_uring_sqe *sqe(struct evloop *l)
{
	struct io_uring_sqe *s = io_uring_get_sqe(&l->ring);

	/* A full submission queue is drained to the kernel and retried once. */
	if (!s && io_uring_submit(&l->ring) >= 0)
		s = io_uring_get_sqe(&l->ring);
	return s;
}

static int arm(struct evloop *l, struct ev_handle *h)
{
	struct io_uring_sqe *s = sqe(l);

	if (!s)
		return -EBUSY;
	if (h->timer)
		io_uring_prep_timeout(s, &h->ts, 0, 0);
	else
		io_uring_prep_poll_add(s, h->fd, (unsigned)h->events);
	io_uring_sqe_set_data(s, h);
	h->in_flight = true;
	return 0;
}

struct ev_handle *evloop_watch(struct evloop *l, int fd, short events, ev_fn fn, void *arg)
{
	struct ev_handle *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	*h = (struct ev_handle){.fn = fn, .arg = arg, .fd = fd, .events = events};
	if (arm(l, h)) {
		free(h);
		return NULL;
	}
	return h;
}

struct ev_handle *evloop_after(struct evloop *l, uint64_t ms, ev_fn fn, void *arg)
{
	struct ev_handle *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	*h = (struct ev_handle){.fn = fn,
				.arg = arg,
				.fd = -1,
				.timer = true,
				.ts = {.tv_sec = (long long)(ms / 1000),
				       .tv_nsec = (long long)(ms % 1000) * 1000000}};
	if (arm(l, h)) {
		free(h);
		return NULL;
	}
	return h;
}

void evloop_unwatch(struct evloop *l, struct ev_handle *h)
{
	struct io_uring_sqe *s;

	if (!h || h->dead)
		return;
	h->dead = true;
	if (h->dispatching)
		return; /* freed by the dispatcher once the callback returns */
	if (!h->in_flight) {
		for (struct ev_handle **p = &l->rearm; *p; p = &(*p)->next) {
			if (*p == h) {
				*p = h->next;
				break;
			}
		}
		free(h);
		return;
	}
	/* The handle lives until the kernel hands back its last completion. */
	s = sqe(l);
	if (s) {
		if (h->timer)
			io_uring_prep_timeout_remove(s, (uint64_t)(uintptr_t)h, 0);
		else
			io_uring_prep_poll_remove(s, (uint64_t)(uintptr_t)h);
		io_uring_sqe_set_data(s, NULL);
	}
	h->next = l->graveyard;
	l->graveyard = h;
}

static void bury(struct evloop *l, struct ev_handle *h)
{
	for (struct ev_handle **p = &l->graveyard; *p; p = &(*p)->next) {
		if (*p == h) {
			*p = h->next;
			break;
		}
	}
	free(h);
}

int evloop_run_once(struct evloop *l, int timeout_ms)
{
	struct __kernel_timespec ts = {.tv_sec = timeout_ms / 1000,
				       .tv_nsec = (long long)(timeout_ms % 1000) * 1000000};
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;
	int r;

	/* Watches that could not be re-armed last time go first. */
	while (l->rearm) {
		struct ev_handle *h = l->rearm;

		if (arm(l, h))
			break;
		l->rearm = h->next;
	}
	r = io_uring_submit_and_wait_timeout(&l->ring, &cqe, 1, timeout_ms < 0 ? NULL : &ts, NULL);
	if (r < 0 && r != -ETIME && r != -EINTR)
		return r;
	/* Collect first, then dispatch: callbacks may submit and unwatch freely. */
	struct {
		struct ev_handle *h;
		int res;
	} done[RING_DEPTH];

	io_uring_for_each_cqe(&l->ring, head, cqe)
	{
		if (n == RING_DEPTH)
			break;
		done[n].h = io_uring_cqe_get_data(cqe);
		done[n].res = cqe->res;
		n++;
	}
	io_uring_cq_advance(&l->ring, n);
	for (unsigned i = 0; i < n; i++) {
		struct ev_handle *h = done[i].h;
		int res = done[i].res;

		if (!h) /* a removal's own completion */
			continue;
		h->in_flight = false;
		if (h->dead) {
			bury(l, h);
			continue;
		}
		h->dispatching = true;
		h->fn(h->arg, h->timer && res == -ETIME ? 0 : res);
		h->dispatching = false;
		/* A timer fires once; a watch is re-armed unless its callback removed it. */
		if (h->timer || h->dead) {
			free(h);
			continue;
		}
		if (arm(l, h)) {
			h->next = l->rearm;
			l->rearm = h;
		}
	}
	return 0;
}

void evloop_destroy(struct evloop *l)
{
	if (!l)
		return;
	io_uring_queue_exit(&l->ring);
	uring_closed(l->restricted);
	/* Live handles belong to their owners' teardown; the loop frees what it holds. */
	while (l->graveyard) {
		struct ev_handle *h = l->graveyard;

		l->graveyard = h->next;
		free(h);
	}
	while (l->rearm) {
		struct ev_handle *h = l->rearm;

		l->rearm = h->next;
		free(h);
	}
	free(l);
}
