/*
 * io_uring rings that can only do what their owner asked for.
 *
 * seccomp does not see what an io_uring does: an operation submitted to a ring
 * runs in the kernel without a system call of its own. A ring made here is
 * created disabled, told which submission opcodes (and which register opcodes)
 * it will ever take (IORING_REGISTER_RESTRICTIONS, Linux 5.10), then enabled;
 * anything else is refused by the kernel with -EACCES, whoever submits it.
 */
#ifndef HUGEVMM_COMMON_URING_H
#define HUGEVMM_COMMON_URING_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>

/*
 * io_uring_queue_init(@entries) restricted to @ops (IORING_OP_*) and
 * @regs (IORING_REGISTER_*). Before enabling, @setup (may be NULL) runs on the
 * still unrestricted ring (registering an eventfd, say); its error is returned.
 * A kernel without restrictions gets a plain ring and *@restricted false.
 * 0 or -errno (from io_uring_queue_init or @setup).
 */
int uring_init_restricted(struct io_uring *ring, unsigned entries, const uint8_t *ops,
			  unsigned nops, const uint8_t *regs, unsigned nregs,
			  int (*setup)(struct io_uring *ring, void *arg), void *arg,
			  bool *restricted);

/* Rings made by uring_init_restricted and still open, restricted and not (for /metrics). */
void uring_counts(unsigned *restricted, unsigned *plain);
/* A ring made by uring_init_restricted is gone (after io_uring_queue_exit). */
void uring_closed(bool restricted);

#endif
