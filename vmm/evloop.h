/*
 * A small event loop on io_uring: fd readiness (level-triggered, re-armed
 * after each callback) and one-shot timers. One thread runs a loop; handles
 * are owned by the loop, so a watch may be removed from inside any callback,
 * its own included. The VMM loop and the API thread each run one.
 */
#ifndef HUGEVMM_VMM_EVLOOP_H
#define HUGEVMM_VMM_EVLOOP_H

#include <stdint.h>

#include "common/err.h"
#include "common/util.h"

struct evloop;
struct ev_handle;

/* @res: poll revents (> 0), or -errno; timers get 0. */
typedef void (*ev_fn)(void *arg, int res);

int evloop_create(struct evloop **out, struct vmm_err *e) must_check;
void evloop_destroy(struct evloop *l);

/* Call @fn whenever @fd has @events; until evloop_unwatch. NULL on failure. */
struct ev_handle *evloop_watch(struct evloop *l, int fd, short events, ev_fn fn, void *arg);

/* Call @fn once after @ms milliseconds; the handle is gone once @fn ran. NULL on failure. */
struct ev_handle *evloop_after(struct evloop *l, uint64_t ms, ev_fn fn, void *arg);

/*
 * Stop a watch or a pending timer: its callback will not run again. NULL is
 * fine. Live watches must be unwatched before evloop_destroy (or they leak).
 */
void evloop_unwatch(struct evloop *l, struct ev_handle *h);

/* Wait up to @timeout_ms (-1: forever) and run what is ready. Returns 0 or -errno. */
int evloop_run_once(struct evloop *l, int timeout_ms);

#endif
