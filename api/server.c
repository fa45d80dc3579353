#include "api/server.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "api/http.h"
#include "api/routes.h"
#include "common/log.h"
#include "common/uds.h"
#include "vmm/evloop.h"
#include "vmm/seccomp.h"

struct conn {
	struct api_server *s;
	unsigned slot;
	uint32_t gen;
	int fd;
	struct http_conn http;
	struct ev_handle *w;
	short events;  /* what w watches for */
	bool busy;     /* a command for this connection is with the VMM */
	uint64_t last; /* last activity, for the idle timeout */
};

/* A command in flight, and how to find its connection when it comes back. */
struct pending {
	struct api_server *s;
	unsigned slot;
	uint32_t gen;
	api_render_fn render;
	enum api_metric metric;
	struct vmm_cmd *cmd;
	struct pending *next;
};

struct api_server {
	struct vmm *vmm;
	struct uds_listener l; /* the API socket */
	int stop_fd, done_fd;
	struct evloop *loop;
	pthread_t thread;
	bool running, stopping;
	struct ev_handle *w_listen, *w_stop, *w_done, *t_sweep, *t_accept;
	struct conn *conns[API_MAX_CONNS];
	uint32_t next_gen;
	struct api_stats stats;

	/* Completed commands: the VMM thread pushes, the API thread pops. */
	pthread_mutex_t dlock;
	struct pending *done;
};

static void conn_close(struct conn *c)
{
	struct api_server *s = c->s;

	evloop_unwatch(s->loop, c->w);
	close(c->fd);
	http_conn_free(&c->http);
	s->conns[c->slot] = NULL;
	s->stats.connections_open--;
	free(c);
}

static void on_conn(void *arg, int res);

/*
 * Watch the connection for @events (0: not at all). False when the event loop
 * cannot take the watch: the caller closes the connection rather than leave it
 * in its slot, unwatched, until the idle sweep.
 */
static bool conn_watch(struct conn *c, short events)
{
	if (c->events == events && (c->w || !events))
		return true;
	evloop_unwatch(c->s->loop, c->w);
	c->w = events ? evloop_watch(c->s->loop, c->fd, events, on_conn, c) : NULL;
	c->events = events;
	if (events && !c->w) {
		log_warn("api: cannot watch a connection (event queue full); closing it");
		return false;
	}
	return true;
}

static void count_status(struct api_server *s, int status)
{
	if (status < 300)
		s->stats.responses_2xx++;
	else if (status < 500)
		s->stats.responses_4xx++;
	else
		s->stats.responses_5xx++;
}

/* Firecracker's request metrics: a count per route, and its failures. */
static void count_route(struct api_server *s, enum api_metric m, int status)
{
	if (m == API_M_NONE)
		return;
	__atomic_add_fetch(&s->stats.route_count[m], 1, __ATOMIC_RELAXED);
	if (status >= 400)
		__atomic_add_fetch(&s->stats.route_fails[m], 1, __ATOMIC_RELAXED);
}

static void respond(struct conn *c, int status, char *body)
{
	http_conn_respond(&c->http, status, body);
	free(body);
}

static void done_cb(struct vmm_cmd *cmd, void *arg)
{
	struct pending *p = arg;
	struct api_server *s = p->s;

	/* On the VMM thread: hand the result back to the API thread. */
	(void)cmd;
	pthread_mutex_lock(&s->dlock);
	p->next = s->done;
	s->done = p;
	pthread_mutex_unlock(&s->dlock);
	efd_signal(s->done_fd, "api");
}

/* Answer the current request: at once, or by handing a command to the VMM. */
static void dispatch(struct conn *c)
{
	struct api_server *s = c->s;
	struct api_route r;
	struct pending *p;

	api_route(&c->http.req, &r);
	if (!r.cmd) {
		count_route(s, r.metric, r.status);
		respond(c, r.status, r.body);
		return;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		api_cmd_free(r.cmd);
		respond(c, 500, api_fault_body("out of memory"));
		return;
	}
	*p = (struct pending){
		.s = s,
		.slot = c->slot,
		.gen = c->gen,
		.render = r.render,
		.metric = r.metric,
		.cmd = r.cmd};
	r.cmd->done = done_cb;
	r.cmd->done_arg = p;
	if (vmm_submit(s->vmm, r.cmd)) {
		api_cmd_free(r.cmd);
		free(p);
		respond(c, 503, api_fault_body("the VMM is shutting down"));
		return;
	}
	c->busy = true;
}

/* Move the connection along as far as it goes without waiting. */
static void service(struct conn *c)
{
	for (;;) {
		switch (c->http.state) {
		case CONN_REQUEST:
			if (c->busy) {
				conn_watch(c, 0);
				return;
			}
			dispatch(c);
			if (c->busy) {
				conn_watch(c, 0);
				return;
			}
			break;
		case CONN_WRITING: {
			ssize_t n;

			/* Every response is counted once, parse faults included. */
			if (!c->http.counted) {
				c->http.counted = true;
				c->s->stats.requests++;
				count_status(c->s, c->http.status);
			}
			n = send(c->fd, c->http.out + c->http.out_off,
				 c->http.out_len - c->http.out_off, MSG_NOSIGNAL | MSG_DONTWAIT);

			if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
				if (!conn_watch(c, POLLOUT))
					conn_close(c);
				return;
			}
			if (n < 0) {
				conn_close(c);
				return;
			}
			http_conn_written(&c->http, (size_t)n);
			break;
		}
		case CONN_READING:
			if (!conn_watch(c, POLLIN))
				conn_close(c);
			return;
		case CONN_CLOSED:
			conn_close(c);
			return;
		}
	}
}

static void on_conn(void *arg, int res)
{
	struct conn *c = arg;

	c->last = now_ns();
	if (res < 0 || (res & (POLLERR | POLLNVAL))) {
		log_warn("api: dropping a connection: %s",
			 res < 0 ? strerror(-res) : "error on the socket");
		conn_close(c);
		return;
	}
	if (c->http.state == CONN_READING && (res & (POLLIN | POLLHUP))) {
		size_t room = http_conn_room(&c->http);
		ssize_t n = room ? recv(c->fd, c->http.in + c->http.in_len, room, MSG_DONTWAIT) : 0;

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n < 0) {
			conn_close(c);
			return;
		}
		http_conn_input(&c->http, (size_t)n, n == 0);
		if (c->http.continue_wanted) {
			static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";

			/* Best effort: a client that misses it sends the body after a pause anyway.
			 */
			c->http.continue_wanted = false;
			if (send(c->fd, cont, sizeof(cont) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
				log_debug("api: 100 Continue: %s", strerror(errno));
		}
	}
	service(c);
}

static void on_accept(void *arg, int res);

static void on_resume_accept(void *arg, int res)
{
	struct api_server *s = arg;

	(void)res;
	s->t_accept = NULL;
	s->w_listen = evloop_watch(s->loop, s->l.fd, POLLIN, on_accept, s);
}

/*
 * Out of fds: the listening socket stays readable, so stop watching it for a
 * moment instead of spinning; pending clients wait in the backlog.
 */
static void backoff(struct api_server *s)
{
	log_warn("api: cannot accept connections (%s); retrying in 100 ms", strerror(errno));
	evloop_unwatch(s->loop, s->w_listen);
	s->w_listen = NULL;
	if (!s->t_accept)
		s->t_accept = evloop_after(s->loop, 100, on_resume_accept, s);
}

static void on_accept(void *arg, int res)
{
	struct api_server *s = arg;

	(void)res;
	for (;;) {
		int fd = accept4(s->l.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct conn *c;
		unsigned slot = 0;

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM)
				backoff(s);
			return;
		}
		while (slot < API_MAX_CONNS && s->conns[slot])
			slot++;
		c = slot < API_MAX_CONNS ? calloc(1, sizeof(*c)) : NULL;
		if (!c) {
			static const char msg[] =
				"{\"fault_message\":\"too many API connections at once\"}";
			char busy[256];
			int n = snprintf(busy, sizeof(busy),
					 "HTTP/1.1 503 Service Unavailable\r\nServer: hugevmm\r\n"
					 "Content-Type: application/json\r\nContent-Length: %zu\r\n"
					 "Connection: close\r\n\r\n%s",
					 sizeof(msg) - 1, msg);

			s->stats.connections_refused++;
			if (send(fd, busy, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
				log_debug("api: refusing a connection: %s", strerror(errno));
			close(fd);
			continue;
		}
		*c = (struct conn){
			.s = s, .slot = slot, .gen = ++s->next_gen, .fd = fd, .last = now_ns()};
		http_conn_init(&c->http);
		s->conns[slot] = c;
		s->stats.connections++;
		s->stats.connections_open++;
		service(c);
	}
}

/* Results from the VMM: render them for connections that are still there. */
static void on_done(void *arg, int res)
{
	struct api_server *s = arg;
	struct pending *list;

	(void)res;
	efd_drain(s->done_fd, "api");
	pthread_mutex_lock(&s->dlock);
	list = s->done;
	s->done = NULL;
	pthread_mutex_unlock(&s->dlock);
	while (list) {
		struct pending *p = list;
		struct conn *c = s->conns[p->slot];
		int status;
		char *body;

		list = p->next;
		if (c && c->gen == p->gen && c->busy) {
			api_render(p->cmd, p->render, &s->stats, &status, &body);
			count_route(s, p->metric, status);
			c->busy = false;
			c->last = now_ns(); /* a long command is activity, not idleness */
			respond(c, status, body);
			service(c);
		}
		api_cmd_free(p->cmd);
		free(p);
	}
}

/* Connections idle past the timeout (not waiting on the VMM) are closed. */
static void on_sweep(void *arg, int res)
{
	struct api_server *s = arg;
	uint64_t now = now_ns();

	(void)res;
	s->t_sweep = evloop_after(s->loop, 1000, on_sweep, s);
	for (unsigned i = 0; i < API_MAX_CONNS; i++) {
		struct conn *c = s->conns[i];

		if (c && !c->busy && now - c->last > (uint64_t)API_IDLE_TIMEOUT_MS * 1000000)
			conn_close(c);
	}
}

static void on_stop(void *arg, int res)
{
	struct api_server *s = arg;

	(void)res;
	s->stopping = true;
}

static void *server_main(void *arg)
{
	struct api_server *s = arg;
	char why[256];

	pthread_setname_np(pthread_self(), "api");
	/* Confined before its first request: from here it parses, answers and queues. */
	if (sc_install(vmm_seccomp(s->vmm), SC_ROLE_API, why, sizeof(why))) {
		log_err("api: %s; hugevmm stops (--no-seccomp runs it without filters)", why);
		close(s->l.fd);
		s->l.fd = -1;
		vmm_quit(s->vmm, 1);
		s->stopping = true;
	} else {
		sc_test_hook(SC_ROLE_API);
	}
	while (!s->stopping) {
		int r = evloop_run_once(s->loop, -1);

		if (r < 0) {
			/* Clients should see a refused connection, not a socket nobody serves. */
			log_err("api: event loop: %s; the control socket closes", strerror(-r));
			close(s->l.fd);
			s->l.fd = -1;
			break;
		}
	}
	/* Answers that came back meanwhile still go out (best effort), then everything closes. */
	on_done(s, 0);
	for (unsigned i = 0; i < API_MAX_CONNS; i++)
		if (s->conns[i])
			conn_close(s->conns[i]);
	return NULL;
}

/* Bind @path: refuse a live socket or a non-socket, replace a stale socket. */
static int bind_path(struct api_server *s, const char *path, struct vmm_err *e)
{
	char why[512];
	int r = uds_listen(&s->l, path, 64, "--api-sock", why, sizeof(why));

	if (r)
		return err_set(e, uds_host_error(r) ? ERR_RUNTIME : ERR_CONFIG, r, "%s", why);
	return 0;
}

int api_server_start(struct api_server **out, const char *path, struct vmm *vmm, struct vmm_err *e)
{
	struct api_server *s = calloc(1, sizeof(*s));
	int r;

	if (!s)
		return err_set(e, ERR_RUNTIME, -ENOMEM, "out of memory");
	s->vmm = vmm;
	s->l.fd = s->stop_fd = s->done_fd = -1;
	pthread_mutex_init(&s->dlock, NULL);
	r = bind_path(s, path, e);
	if (r)
		goto fail;
	s->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	s->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->stop_fd < 0 || s->done_fd < 0) {
		r = err_set(e, ERR_RUNTIME, -errno, "api: eventfd: %s", strerror(errno));
		goto fail;
	}
	r = evloop_create(&s->loop, e);
	if (r)
		goto fail;
	s->w_listen = evloop_watch(s->loop, s->l.fd, POLLIN, on_accept, s);
	s->w_stop = evloop_watch(s->loop, s->stop_fd, POLLIN, on_stop, s);
	s->w_done = evloop_watch(s->loop, s->done_fd, POLLIN, on_done, s);
	s->t_sweep = evloop_after(s->loop, 1000, on_sweep, s);
	if (!s->w_listen || !s->w_stop || !s->w_done || !s->t_sweep) {
		r = err_set(e, ERR_RUNTIME, -ENOMEM, "api: cannot watch the socket");
		goto fail;
	}
	r = -pthread_create(&s->thread, NULL, server_main, s);
	if (r) {
		err_set(e, ERR_RUNTIME, r, "api: thread: %s", strerror(-r));
		goto fail;
	}
	s->running = true;
	*out = s;
	return 0;
fail:
	api_server_stop(s);
	return r;
}

const struct api_stats *api_server_stats(const struct api_server *s)
{
	return s ? &s->stats : NULL;
}

void api_server_stop(struct api_server *s)
{
	if (!s)
		return;
	if (s->running) {
		efd_signal(s->stop_fd, "api");
		pthread_join(s->thread, NULL);
	}
	/* Results that came back too late: nobody waits for them any more. */
	while (s->done) {
		struct pending *p = s->done;

		s->done = p->next;
		api_cmd_free(p->cmd);
		free(p);
	}
	if (s->loop) {
		evloop_unwatch(s->loop, s->w_listen);
		evloop_unwatch(s->loop, s->w_stop);
		evloop_unwatch(s->loop, s->w_done);
		evloop_unwatch(s->loop, s->t_sweep);
		evloop_unwatch(s->loop, s->t_accept);
		evloop_destroy(s->loop);
	}
	uds_close(&s->l); /* the path goes only if it is still ours (not replaced meanwhile) */
	if (s->stop_fd >= 0)
		close(s->stop_fd);
	if (s->done_fd >= 0)
		close(s->done_fd);
	pthread_mutex_destroy(&s->dlock);
	free(s);
}
