/* The io_uring event loop: level-triggered watches, removal from inside callbacks, timers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <cmocka.h>

#include "vmm/evloop.h"

struct counter {
	struct evloop *l;
	struct ev_handle *h;
	int fd, hits, stop_at;
};

static void on_ready(void *arg, int res)
{
	struct counter *c = arg;

	assert_true(res & POLLIN);
	c->hits++;
	if (c->hits == c->stop_at) {
		evloop_unwatch(c->l, c->h); /* removing itself, from its own callback */
		c->h = NULL;
	}
}

static void poke(int fd)
{
	uint64_t one = 1;

	assert_int_equal(write(fd, &one, sizeof(one)), sizeof(one));
}

static void watches_are_level_triggered_and_removable_inside(void **state)
{
	struct vmm_err e = {0};
	struct counter c = {0};

	(void)state;
	assert_int_equal(evloop_create(&c.l, &e), 0);
	c.fd = eventfd(0, EFD_NONBLOCK);
	c.stop_at = 3;
	c.h = evloop_watch(c.l, c.fd, POLLIN, on_ready, &c);
	assert_non_null(c.h);
	/* Never read: the fd stays readable, so the watch fires on every turn (re-armed). */
	poke(c.fd);
	for (int i = 0; i < 5; i++)
		assert_int_equal(evloop_run_once(c.l, 100), 0);
	assert_int_equal(c.hits, 3); /* and not once after it removed itself */
	assert_null(c.h);
	close(c.fd);
	evloop_destroy(c.l);
}

static void on_timer(void *arg, int res)
{
	assert_int_equal(res, 0);
	(*(int *)arg)++;
}

static void timers_fire_once_and_can_be_cancelled(void **state)
{
	struct vmm_err e = {0};
	struct evloop *l;
	struct ev_handle *cancel;
	int fired = 0, cancelled = 0;

	(void)state;
	assert_int_equal(evloop_create(&l, &e), 0);
	assert_non_null(evloop_after(l, 10, on_timer, &fired));
	cancel = evloop_after(l, 20, on_timer, &cancelled);
	assert_non_null(cancel);
	evloop_unwatch(l, cancel);
	for (int i = 0; i < 4; i++)
		assert_int_equal(evloop_run_once(l, 50), 0);
	assert_int_equal(fired, 1);
	assert_int_equal(cancelled, 0);
	evloop_destroy(l);
}

static void many_watches(void **state)
{
	struct vmm_err e = {0};
	struct counter c[100];
	struct evloop *l;
	int total = 0;

	(void)state;
	assert_int_equal(evloop_create(&l, &e), 0);
	for (int i = 0; i < 100; i++) {
		c[i] = (struct counter){.l = l, .fd = eventfd(0, EFD_NONBLOCK), .stop_at = 1};
		c[i].h = evloop_watch(l, c[i].fd, POLLIN, on_ready, &c[i]);
		assert_non_null(c[i].h);
		poke(c[i].fd);
	}
	for (int i = 0; i < 10; i++)
		assert_int_equal(evloop_run_once(l, 20), 0);
	for (int i = 0; i < 100; i++) {
		total += c[i].hits;
		close(c[i].fd);
	}
	assert_int_equal(total, 100);
	evloop_destroy(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(watches_are_level_triggered_and_removable_inside),
		cmocka_unit_test(timers_fire_once_and_can_be_cancelled),
		cmocka_unit_test(many_watches),
	};

	return cmocka_run_group_tests_name("evloop", tests, NULL, NULL);
}
