#include "common/uring.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/util.h"

static atomic_uint n_restricted, n_plain;

void uring_counts(unsigned *restricted, unsigned *plain)
{
	*restricted = atomic_load(&n_restricted);
	*plain = atomic_load(&n_plain);
}

void uring_closed(bool restricted)
{
	atomic_fetch_sub(restricted ? &n_restricted : &n_plain, 1);
}

int uring_init_restricted(struct io_uring *ring, unsigned entries, const uint8_t *ops,
			  unsigned nops, const uint8_t *regs, unsigned nregs,
			  int (*setup)(struct io_uring *ring, void *arg), void *arg,
			  bool *restricted)
{
	struct io_uring_restriction res[64];
	struct io_uring_params p;
	unsigned n = 0;
	int r;

	*restricted = false;
	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_R_DISABLED;
	r = io_uring_queue_init_params(entries, ring, &p);
	if (r == -EINVAL) {
		/* Before Linux 5.10: no disabled rings, so no restrictions either. */
		r = io_uring_queue_init(entries, ring, 0);
		if (!r && setup)
			r = setup(ring, arg);
		if (r)
			io_uring_queue_exit(ring);
		else
			atomic_fetch_add(&n_plain, 1);
		return r;
	}
	if (r)
		return r;
	r = setup ? setup(ring, arg) : 0;
	if (r)
		goto fail;
	memset(res, 0, sizeof(res));
	for (unsigned i = 0; i < nops && n < ARRAY_SIZE(res); i++) {
		res[n].opcode = IORING_RESTRICTION_SQE_OP;
		res[n++].sqe_op = ops[i];
	}
	for (unsigned i = 0; i < nregs && n < ARRAY_SIZE(res); i++) {
		res[n].opcode = IORING_RESTRICTION_REGISTER_OP;
		res[n++].register_op = regs[i];
	}
	/* The system call itself: Debian 12's liburing 2.3 declares these two but lacks them. */
	if (syscall(__NR_io_uring_register, ring->ring_fd, IORING_REGISTER_RESTRICTIONS, res, n) ||
	    syscall(__NR_io_uring_register, ring->ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0)) {
		r = -errno;
		goto fail;
	}
	*restricted = true;
	atomic_fetch_add(&n_restricted, 1);
	return 0;
fail:
	io_uring_queue_exit(ring);
	return r;
}
