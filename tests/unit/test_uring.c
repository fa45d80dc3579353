/*
 * Restricted io_uring rings (common/uring.h): a ring takes only the
 * submission and register opcodes it was made for, the kernel refuses the
 * rest with -EACCES; the setup callback runs while the ring is still open to
 * anything; a failed setup leaves nothing behind; the event loop's and the
 * drives' rings are restricted ones. On a kernel without disabled rings
 * (IORING_SETUP_R_DISABLED, Linux 5.10) every case says why it skips.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/uring.h"
#include "devices/virtio/blk.h"
#include "vmm/evloop.h"

static const uint8_t nop_only[] = {IORING_OP_NOP};
static const uint8_t eventfd_reg[] = {IORING_REGISTER_EVENTFD};

/* Whether this kernel makes restricted rings; says why not each time it is asked. */
static bool can_restrict(void)
{
	static int known = -1;
	static char why[160];

	if (known < 0) {
		struct io_uring ring;
		bool restricted = false;
		int r = uring_init_restricted(&ring, 4, nop_only, 1, NULL, 0, NULL, NULL,
					      &restricted);

		if (r) {
			snprintf(why, sizeof(why), "io_uring is unavailable here: %s",
				 strerror(-r));
		} else {
			io_uring_queue_exit(&ring);
			uring_closed(restricted);
			if (!restricted)
				snprintf(
					why, sizeof(why),
					"the kernel refuses IORING_SETUP_R_DISABLED (before 5.10): "
					"no restricted rings");
		}
		known = !r && restricted;
	}
	if (!known)
		print_message("skip: %s\n", why);
	return known;
}

#define NEED_RESTRICTIONS()                                                                        \
	do {                                                                                       \
		if (!can_restrict()) {                                                             \
			skip();                                                                    \
			return;                                                                    \
		}                                                                                  \
	} while (0)

static unsigned count_fds(void)
{
	struct dirent *d;
	unsigned n = 0;
	DIR *dp = opendir("/proc/self/fd");

	assert_non_null(dp);
	while ((d = readdir(dp)))
		n++;
	closedir(dp);
	return n;
}

/* Mappings of io_uring rings in this process (their SQ, CQ and SQE arrays). */
static unsigned count_ring_maps(void)
{
	char line[512];
	unsigned n = 0;
	FILE *f = fopen("/proc/self/maps", "re");

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "io_uring"))
			n++;
	fclose(f);
	return n;
}

/* Submit what is queued and return the one completion's result. */
static int one_completion(struct io_uring *ring)
{
	struct io_uring_cqe *cqe;
	int res;

	/* A refused opcode is consumed by the submission and completes with the error. */
	assert_int_equal(io_uring_submit(ring), 1);
	assert_int_equal(io_uring_wait_cqe(ring, &cqe), 0);
	res = cqe->res;
	io_uring_cqe_seen(ring, cqe);
	return res;
}

static int try_openat(struct io_uring *ring)
{
	struct io_uring_sqe *s = io_uring_get_sqe(ring);

	assert_non_null(s);
	io_uring_prep_openat(s, AT_FDCWD, "/nonexistent-hugevmm-uring", O_RDONLY | O_CLOEXEC, 0);
	return one_completion(ring);
}

static void restricted_ring_takes_only_its_opcodes(void **state)
{
	struct io_uring ring, plain;
	struct io_uring_probe *probe;
	struct io_uring_sqe *s;
	bool restricted = false;
	unsigned r0, p0, r1, p1;
	int p[2], efd;
	char buf[8];

	(void)state;
	NEED_RESTRICTIONS();
	uring_counts(&r0, &p0);
	assert_int_equal(uring_init_restricted(&ring, 8, nop_only, 1, eventfd_reg, 1, NULL, NULL,
					       &restricted),
			 0);
	assert_true(restricted);
	uring_counts(&r1, &p1);
	assert_int_equal(r1, r0 + 1);
	assert_int_equal(p1, p0);

	/* Its one opcode. */
	s = io_uring_get_sqe(&ring);
	assert_non_null(s);
	io_uring_prep_nop(s);
	assert_int_equal(one_completion(&ring), 0);
	/* Anything else: -EACCES in the completion (the submission itself succeeds). */
	assert_int_equal(try_openat(&ring), -EACCES);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	assert_int_equal(write(p[1], "abc", 3), 3);
	s = io_uring_get_sqe(&ring);
	assert_non_null(s);
	io_uring_prep_read(s, p[0], buf, sizeof(buf), 0);
	assert_int_equal(one_completion(&ring), -EACCES);
	assert_int_equal(read(p[0], buf, sizeof(buf)), 3); /* still there: nothing was read */
	/* And the ring goes on working. */
	s = io_uring_get_sqe(&ring);
	assert_non_null(s);
	io_uring_prep_nop(s);
	assert_int_equal(one_completion(&ring), 0);

	/* A register opcode it was not given: -EACCES; the one it was given works. */
	probe = calloc(1, sizeof(*probe) + 256 * sizeof(struct io_uring_probe_op));
	assert_non_null(probe);
	assert_int_equal(io_uring_register_probe(&ring, probe, 256), -EACCES);
	assert_int_equal(io_uring_register_files(&ring, &p[0], 1), -EACCES);
	efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	assert_true(efd >= 0);
	assert_int_equal(io_uring_register_eventfd(&ring, efd), 0);
	io_uring_queue_exit(&ring);
	uring_closed(true);
	uring_counts(&r1, &p1);
	assert_int_equal(r1, r0);
	assert_int_equal(p1, p0);

	/* The same operations on an ordinary ring: the -EACCES above was the restriction's. */
	assert_int_equal(io_uring_queue_init(8, &plain, 0), 0);
	assert_int_equal(try_openat(&plain), -ENOENT);
	assert_int_equal(io_uring_register_probe(&plain, probe, 256), 0);
	io_uring_queue_exit(&plain);
	free(probe);
	close(efd);
	close(p[0]);
	close(p[1]);
}

struct setup_arg {
	int efd;
	int ret; /* what setup returns */
	int calls;
};

static int register_efd(struct io_uring *ring, void *arg)
{
	struct setup_arg *a = arg;
	int r;

	a->calls++;
	r = io_uring_register_eventfd(ring, a->efd);
	return r ? r : a->ret;
}

static void setup_runs_before_the_ring_is_enabled(void **state)
{
	struct setup_arg a = {.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};
	struct io_uring ring;
	struct io_uring_sqe *s;
	bool restricted = false;
	eventfd_t v = 0;
	int efd2;

	(void)state;
	NEED_RESTRICTIONS();
	assert_true(a.efd >= 0);
	/* No register opcode allowed at all: only setup, before the restrictions, can register. */
	assert_int_equal(uring_init_restricted(&ring, 8, nop_only, 1, NULL, 0, register_efd, &a,
					       &restricted),
			 0);
	assert_true(restricted);
	assert_int_equal(a.calls, 1);
	efd2 = eventfd(0, EFD_CLOEXEC);
	assert_true(efd2 >= 0);
	assert_int_equal(io_uring_register_eventfd(&ring, efd2), -EACCES);
	close(efd2);
	/* The eventfd setup registered fires on a completion. */
	assert_int_equal(eventfd_read(a.efd, &v), -1); /* nothing yet */
	s = io_uring_get_sqe(&ring);
	assert_non_null(s);
	io_uring_prep_nop(s);
	assert_int_equal(one_completion(&ring), 0);
	assert_int_equal(eventfd_read(a.efd, &v), 0);
	assert_true(v >= 1);
	io_uring_queue_exit(&ring);
	uring_closed(restricted);
	close(a.efd);
}

static void failures_return_their_error_and_leave_nothing(void **state)
{
	static const uint8_t bad_op[] = {IORING_OP_NOP, 255};
	struct setup_arg a = {.efd = eventfd(0, EFD_CLOEXEC), .ret = -ENOTTY};
	unsigned fds, maps, r0, p0, r1, p1;
	struct io_uring ring;
	bool restricted = true;

	(void)state;
	NEED_RESTRICTIONS();
	assert_true(a.efd >= 0);
	fds = count_fds();
	maps = count_ring_maps();
	uring_counts(&r0, &p0);
	for (int i = 0; i < 20; i++) {
		/* setup's error comes back as is. */
		assert_int_equal(uring_init_restricted(&ring, 8, nop_only, 1, NULL, 0, register_efd,
						       &a, &restricted),
				 -ENOTTY);
		assert_false(restricted);
		/* The kernel refusing the restrictions (an opcode past IORING_OP_LAST). */
		restricted = true;
		assert_int_equal(uring_init_restricted(&ring, 8, bad_op, 2, NULL, 0, NULL, NULL,
						       &restricted),
				 -EINVAL);
		assert_false(restricted);
	}
	assert_int_equal(a.calls, 20);
	assert_int_equal(count_fds(), fds);
	assert_int_equal(count_ring_maps(), maps);
	uring_counts(&r1, &p1);
	assert_int_equal(r1, r0);
	assert_int_equal(p1, p0);
	close(a.efd);
}

static void counts_follow_rings(void **state)
{
	struct io_uring ring[3];
	unsigned maps, r0, p0, r1, p1;
	bool restricted;

	(void)state;
	NEED_RESTRICTIONS();
	maps = count_ring_maps();
	uring_counts(&r0, &p0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(uring_init_restricted(&ring[i], 4, nop_only, 1, NULL, 0, NULL,
						       NULL, &restricted),
				 0);
		assert_true(restricted);
		uring_counts(&r1, &p1);
		assert_int_equal(r1, r0 + (unsigned)i + 1);
		assert_int_equal(p1, p0);
	}
	assert_true(count_ring_maps() > maps);
	for (int i = 2; i >= 0; i--) {
		io_uring_queue_exit(&ring[i]);
		uring_closed(true);
		uring_counts(&r1, &p1);
		assert_int_equal(r1, r0 + (unsigned)i);
	}
	assert_int_equal(count_ring_maps(), maps);
}

static void on_timer(void *arg, int res)
{
	assert_int_equal(res, 0);
	(*(int *)arg)++;
}

struct watched {
	int fd, hits;
};

static void on_ready(void *arg, int res)
{
	struct watched *w = arg;
	eventfd_t v;

	assert_true(res & POLLIN);
	assert_int_equal(eventfd_read(w->fd, &v), 0);
	w->hits++;
}

static void event_loop_ring_is_restricted(void **state)
{
	struct vmm_err e = {0};
	unsigned r0, p0, r1, p1;
	struct watched w = {.fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)};
	struct ev_handle *h;
	struct evloop *l;
	int fired = 0;

	(void)state;
	NEED_RESTRICTIONS();
	uring_counts(&r0, &p0);
	assert_int_equal(evloop_create(&l, &e), 0);
	uring_counts(&r1, &p1);
	assert_int_equal(r1, r0 + 1);
	assert_int_equal(p1, p0);
	/* A watch and a timer still work through it. */
	assert_true(w.fd >= 0);
	h = evloop_watch(l, w.fd, POLLIN, on_ready, &w);
	assert_non_null(h);
	assert_non_null(evloop_after(l, 5, on_timer, &fired));
	assert_int_equal(eventfd_write(w.fd, 1), 0);
	for (int i = 0; i < 20 && (!fired || !w.hits); i++)
		assert_int_equal(evloop_run_once(l, 20), 0);
	assert_int_equal(fired, 1);
	assert_int_equal(w.hits, 1);
	evloop_unwatch(l, h);
	evloop_destroy(l);
	close(w.fd);
	uring_counts(&r1, &p1);
	assert_int_equal(r1, r0);
	assert_int_equal(p1, p0);
}

static void drives_ring_is_restricted(void **state)
{
	struct blk_engine *g = NULL;
	unsigned fds, r0, p0, r1, p1;
	char why[256] = "";

	(void)state;
	NEED_RESTRICTIONS();
	fds = count_fds();
	uring_counts(&r0, &p0);
	if (blk_engine_create(&g, 16, why, sizeof(why)))
		fail_msg("blk_engine_create: %s", why);
	uring_counts(&r1, &p1);
	assert_int_equal(r1, r0 + 1);
	assert_int_equal(p1, p0);
	assert_true(blk_engine_fd(g) >= 0);
	blk_engine_destroy(g);
	uring_counts(&r1, &p1);
	assert_int_equal(r1, r0);
	assert_int_equal(p1, p0);
	assert_int_equal(count_fds(), fds);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(restricted_ring_takes_only_its_opcodes),
		cmocka_unit_test(setup_runs_before_the_ring_is_enabled),
		cmocka_unit_test(failures_return_their_error_and_leave_nothing),
		cmocka_unit_test(counts_follow_rings),
		cmocka_unit_test(event_loop_ring_is_restricted),
		cmocka_unit_test(drives_ring_is_restricted),
	};

	return cmocka_run_group_tests_name("uring", tests, NULL, NULL);
}
