/* include/hugevmm.h: the embedding API over the VMM loop (vmm/vmm.h). */
#include "hugevmm.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/config_json.h"
#include "api/report_json.h"
#include "vmm/vmm.h"

struct hugevmm {
	struct vmm *m;
	pthread_t loop;
	bool running, waited;
	int status;
	/*
	 * The console's output fd, ours (a duplicate of the embedder's, or the write
	 * end of the callback's pipe); -1: the default. The VMM reads it at start.
	 */
	int console_fd;
	hugevmm_console_cb cb;
	void *cb_arg;
	int cb_rfd;
	pthread_t cb_thread;
	char err[512];
};

const char *hugevmm_version(void)
{
	return HUGEVMM_VERSION;
}

static int fail(struct hugevmm *h, const struct vmm_err *e)
{
	snprintf(h->err, sizeof(h->err), "%s", e->msg);
	return err_exit_code(e) ? err_exit_code(e) : 1;
}

struct hugevmm *hugevmm_create(const char *json, size_t len, char **err)
{
	struct hugevmm *h = calloc(1, sizeof(*h));
	struct vm_config *cfg = calloc(1, sizeof(*cfg));
	struct vmm_opts o = {.console_input = false, .signals = false};
	struct vmm_err e = {0};

	*err = NULL;
	if (!h || !cfg) {
		free(h);
		free(cfg);
		*err = strdup("out of memory");
		return NULL;
	}
	h->console_fd = -1;
	h->cb_rfd = -1;
	o.console_fd = &h->console_fd;
	if (cfg_json_parse(json, len, cfg, &e) || vmm_create(&h->m, &o, &e)) {
		*err = strdup(e.msg);
		free(cfg);
		free(h);
		return NULL;
	}
	vmm_configure(h->m, cfg);
	free(cfg);
	return h;
}

static void *loop_main(void *arg)
{
	struct hugevmm *h = arg;

	h->status = vmm_run(h->m);
	return NULL;
}

/* Run @op on the VMM loop and wait for it; 0 or the failure's exit code. */
static int call(struct hugevmm *h, enum vmm_op op, struct vmm_cmd **keep)
{
	struct vmm_cmd *c = vmm_cmd_new(op);
	struct vmm_err e = {0};
	int r = 0;

	if (!c) {
		snprintf(h->err, sizeof(h->err), "out of memory");
		return 1;
	}
	if (!h->running) {
		/* Before start or after wait the loop is not running: run it here. */
		vmm_exec(h->m, c);
	} else if (vmm_call(h->m, c)) {
		err_set(&c->err, ERR_RUNTIME, -1, "the VM has stopped");
	}
	if (c->err.kind != ERR_NONE) {
		e = c->err;
		r = fail(h, &e);
	}
	if (keep && !r)
		*keep = c;
	else
		vmm_cmd_free(c);
	return r;
}

/* Back to the default console: our fd closed, the callback's reader (EOF now) joined. */
static void console_release(struct hugevmm *h)
{
	if (h->console_fd >= 0)
		close(h->console_fd);
	h->console_fd = -1;
	if (h->cb_rfd >= 0) {
		pthread_join(h->cb_thread, NULL);
		close(h->cb_rfd);
		h->cb_rfd = -1;
	}
}

static int console_settable(struct hugevmm *h)
{
	if (h->running || h->waited) {
		snprintf(h->err, sizeof(h->err), "console: the VM has already been started");
		return 2;
	}
	return 0;
}

int hugevmm_set_console_fd(struct hugevmm *h, int fd)
{
	int r = console_settable(h), own;

	if (r)
		return r;
	if (fd < 0) {
		console_release(h);
		return 0;
	}
	/* Above 2: never mistaken for stdio, and the caller may close theirs. */
	own = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (own < 0) {
		snprintf(h->err, sizeof(h->err), "console: fd %d: %s", fd, strerror(errno));
		return errno == EBADF ? 2 : 1;
	}
	console_release(h);
	h->console_fd = own;
	return 0;
}

static void *console_main(void *arg)
{
	struct hugevmm *h = arg;
	char buf[4096];
	ssize_t n;

	while ((n = read(h->cb_rfd, buf, sizeof(buf))) != 0) {
		if (n > 0)
			h->cb(h->cb_arg, buf, (size_t)n);
		else if (errno != EINTR)
			break;
	}
	return NULL;
}

int hugevmm_set_console_callback(struct hugevmm *h, hugevmm_console_cb cb, void *arg)
{
	int r = console_settable(h), p[2];

	if (r)
		return r;
	console_release(h);
	if (!cb)
		return 0;
	if (pipe2(p, O_CLOEXEC)) {
		snprintf(h->err, sizeof(h->err), "console: pipe: %s", strerror(errno));
		return 1;
	}
	h->cb = cb;
	h->cb_arg = arg;
	h->cb_rfd = p[0];
	r = pthread_create(&h->cb_thread, NULL, console_main, h);
	if (r) {
		close(p[0]);
		close(p[1]);
		h->cb_rfd = -1;
		snprintf(h->err, sizeof(h->err), "console: cannot start its thread: %s",
			 strerror(r));
		return 1;
	}
	h->console_fd = p[1];
	return 0;
}

int hugevmm_start(struct hugevmm *h)
{
	int r;

	if (h->running || h->waited) {
		snprintf(h->err, sizeof(h->err), "InstanceStart: the VM has already been started");
		return 2;
	}
	r = call(h, VMM_OP_START, NULL);
	if (r)
		return r;
	if (pthread_create(&h->loop, NULL, loop_main, h)) {
		snprintf(h->err, sizeof(h->err), "cannot start the VMM thread");
		return 1;
	}
	h->running = true;
	return 0;
}

int hugevmm_pause(struct hugevmm *h)
{
	return call(h, VMM_OP_PAUSE, NULL);
}

int hugevmm_resume(struct hugevmm *h)
{
	return call(h, VMM_OP_RESUME, NULL);
}

int hugevmm_stop(struct hugevmm *h)
{
	/* Only a running VM stops; before start there is nothing to stop (and nothing may latch).
	 */
	if (!h->running) {
		snprintf(h->err, sizeof(h->err), "stop: the VM is not running");
		return 2;
	}
	return call(h, VMM_OP_STOP, NULL);
}

int hugevmm_wait(struct hugevmm *h)
{
	if (h->running) {
		pthread_join(h->loop, NULL);
		h->running = false;
		h->waited = true;
		/* Console flushed, vCPUs gone: the callback has its last call now. */
		console_release(h);
	}
	return h->status;
}

char *hugevmm_memory_report(struct hugevmm *h)
{
	struct vmm_cmd *c = NULL;
	cJSON *j;
	char *s;

	if (call(h, VMM_OP_MEMORY, &c))
		return NULL;
	j = report_memory(&c->memory->mem, &c->memory->kvm);
	s = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	vmm_cmd_free(c);
	return s;
}

const char *hugevmm_error(const struct hugevmm *h)
{
	return h->err;
}

void hugevmm_destroy(struct hugevmm *h)
{
	if (!h)
		return;
	if (h->running) {
		(void)hugevmm_stop(h);
		hugevmm_wait(h);
	}
	vmm_destroy(h->m);
	console_release(h);
	free(h);
}
