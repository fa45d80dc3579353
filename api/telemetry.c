#include "api/telemetry.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "api/report_json.h"
#include "common/log.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int metrics_fd = -1;
static struct cfg_metrics metrics_cfg;
static char instance_id[64] = "anonymous-instance";
static uint64_t metrics_written, metrics_missed;
static struct vmm *timer_vmm;
static const struct api_stats *timer_stats;

/* Firecracker opens its log and metrics paths the same way: create, read-write, non-blocking. */
static int open_sink(const char *path, const char *field, struct vmm_err *e)
{
	/* O_RDWR: a FIFO opens at once even without a reader (write-only would fail or block). */
	int fd = open(path, O_RDWR | O_NONBLOCK | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

	if (fd < 0)
		return err_set(e, ERR_CONFIG, -errno,
			       "%s: cannot open \"%s\": %s; give a file or FIFO in a directory that "
			       "exists and that hugevmm may write",
			       field, path, strerror(errno));
	return fd;
}

int api_logger_apply(const struct cfg_logger *l, const char *field, struct vmm_err *e)
{
	int fd = -1;

	if (l->path[0]) {
		fd = open_sink(l->path, field, e);
		if (fd < 0)
			return fd;
	}
	if (l->has_level)
		log_set_level((enum log_level)l->level);
	if (fd >= 0)
		log_set_target(fd, l->show_level, l->show_origin);
	return 0;
}

int api_metrics_apply(const struct cfg_metrics *mc, const char *field, struct vmm_err *e)
{
	int fd = open_sink(mc->path, field, e);

	if (fd < 0)
		return fd;
	pthread_mutex_lock(&lock);
	if (metrics_fd >= 0)
		close(metrics_fd);
	metrics_fd = fd;
	metrics_cfg = *mc;
	pthread_mutex_unlock(&lock);
	return 0;
}

bool api_metrics_enabled(void)
{
	bool on;

	pthread_mutex_lock(&lock);
	on = metrics_fd >= 0;
	pthread_mutex_unlock(&lock);
	return on;
}

void api_metrics_set_id(const char *id)
{
	pthread_mutex_lock(&lock);
	snprintf(instance_id, sizeof(instance_id), "%s", id);
	pthread_mutex_unlock(&lock);
}

static uint64_t rd(const uint64_t *v)
{
	/* The API thread writes these; a relaxed read is enough for a counter. */
	return __atomic_load_n(v, __ATOMIC_RELAXED);
}

static void add(cJSON *o, const char *k, uint64_t v)
{
	cJSON_AddNumberToObject(o, k, (double)v);
}

/* The request groups: get_api_requests.instance_info_count and so on. */
static void api_groups(cJSON *o, const struct api_stats *st)
{
	for (unsigned i = API_M_NONE + 1; i < API_M_MAX; i++) {
		const char *name = api_metric_name((enum api_metric)i), *dot = strchr(name, '.');
		char group[32], key[48];
		cJSON *g;

		snprintf(group, sizeof(group), "%.*s", (int)(dot - name), name);
		g = cJSON_GetObjectItemCaseSensitive(o, group);
		if (!g)
			g = cJSON_AddObjectToObject(o, group);
		snprintf(key, sizeof(key), "%s_count", dot + 1);
		add(g, key, st ? rd(&st->route_count[i]) : 0);
		if (strncmp(name, "get_", 4)) {
			snprintf(key, sizeof(key), "%s_fails", dot + 1);
			add(g, key, st ? rd(&st->route_fails[i]) : 0);
		}
	}
}

static char *metrics_line(const struct vmm_metrics *m, const struct api_stats *st)
{
	cJSON *o = cJSON_CreateObject(), *g, *h;
	uint64_t lw, lm;
	struct timeval tv;
	char *s;

	gettimeofday(&tv, NULL);
	add(o, "utc_timestamp_ms", (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000);
	if (metrics_cfg.emit_id)
		cJSON_AddStringToObject(o, "id", instance_id);
	if (metrics_cfg.properties[0])
		cJSON_AddItemToObject(o, "properties", cJSON_Parse(metrics_cfg.properties));
	api_groups(o, st);
	log_target_counts(&lw, &lm);
	g = cJSON_AddObjectToObject(o, "logger");
	add(g, "missed_log_count", lm);
	add(g, "log_count", lw);
	add(g, "missed_metrics_count", metrics_missed);
	add(g, "metrics_count", metrics_written);
	g = cJSON_AddObjectToObject(o, "vcpu");
	add(g, "exit_io", m->vm.exits_io);
	add(g, "exit_mmio", m->vm.exits_mmio);
	add(g, "exit_interrupted", m->vm.exits_intr);
	add(g, "exit_other", m->vm.exits_other);
	add(g, "run_us", m->vm.run_ns / 1000);
	g = cJSON_AddObjectToObject(o, "uart");
	add(g, "write_count", m->vm.serial_tx_bytes);
	add(g, "read_count", m->vm.serial_rx_bytes);
	add(g, "missed_write_count", m->vm.serial_tx_dropped);
	g = cJSON_AddObjectToObject(o, "entropy");
	add(g, "entropy_event_count", m->vm.entropy_requests);
	add(g, "entropy_bytes", m->vm.entropy_bytes);
	add(g, "entropy_rate_limiter_throttled", m->vm.entropy_throttled);
	add(g, "host_rng_fails", m->vm.entropy_errors);
	/* Firecracker's block groups: one per drive ("block_<drive_id>"), then their sum. */
	for (unsigned i = 0; i < m->vm.ndrives && i < CFG_MAX_DRIVES; i++) {
		char key[80];

		snprintf(key, sizeof(key), "block_%s", m->vm.drives[i].id);
		cJSON_AddItemToObject(o, key, report_drive_metrics(&m->vm.drives[i], true));
	}
	{
		struct vm_drive_metrics sum;

		/* Always there, zero without drives, as Firecracker writes it. */
		report_drive_metrics_sum(&m->vm, &sum);
		cJSON_AddItemToObject(o, "block", report_drive_metrics(&sum, true));
	}
	/* Firecracker's net groups: one per interface ("net_<iface_id>"), then their sum. */
	for (unsigned i = 0; i < m->vm.nnets && i < CFG_MAX_NETS; i++) {
		char key[80];

		snprintf(key, sizeof(key), "net_%s", m->vm.nets[i].id);
		cJSON_AddItemToObject(o, key, report_net_metrics(&m->vm.nets[i], true));
	}
	{
		struct vm_net_metrics sum;

		/* Always there, zero without interfaces, as the block group is. */
		report_net_metrics_sum(&m->vm, &sum);
		cJSON_AddItemToObject(o, "net", report_net_metrics(&sum, true));
	}
	/* Firecracker's balloon group (its names, then hugevmm's), when the VM has a balloon. */
	if (m->vm.has_balloon)
		cJSON_AddItemToObject(o, "balloon", report_balloon_metrics(&m->vm.balloon));
	/* Firecracker's vsock group (every one of its names), when the VM has a vsock. */
	if (m->vm.has_vsock)
		cJSON_AddItemToObject(o, "vsock",
				      report_vsock_metrics(&m->vm.vsock, REPORT_VSOCK_FC));
	/* hugevmm's own: what Firecracker has no word for. */
	h = cJSON_AddObjectToObject(o, "hugevmm");
	if (m->vm.has_balloon)
		cJSON_AddItemToObject(h, "reclaim", report_reclaim_metrics(&m->vm.reclaim));
	if (m->vm.has_vsock)
		cJSON_AddItemToObject(h, "vsock",
				      report_vsock_metrics(&m->vm.vsock, REPORT_VSOCK_OWN));
	cJSON_AddStringToObject(h, "state", vmm_state_name(m->state));
	add(h, "uptime_ms", m->uptime_ns / 1000000);
	cJSON_AddItemToObject(h, "seccomp", report_seccomp());
	g = cJSON_AddObjectToObject(h, "memory");
	add(g, "measurements", m->measurements);
	add(g, "coverage_drift_events", m->drift_events);
	add(g, "huge_bytes", m->huge_bytes);
	add(g, "ram_bytes", m->ram_bytes);
	g = cJSON_AddObjectToObject(h, "virtio");
	add(g, "notifications", m->vm.virtio_notifies);
	add(g, "interrupts", m->vm.virtio_interrupts);
	add(g, "needs_reset", m->vm.virtio_needs_reset);
	g = cJSON_AddObjectToObject(h, "vmm");
	add(g, "commands", m->commands);
	add(g, "command_errors", m->command_errors);
	if (st) {
		g = cJSON_AddObjectToObject(h, "api");
		add(g, "requests", rd(&st->requests));
		add(g, "responses_2xx", rd(&st->responses_2xx));
		add(g, "responses_4xx", rd(&st->responses_4xx));
		add(g, "responses_5xx", rd(&st->responses_5xx));
		add(g, "connections", rd(&st->connections));
	}
	s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

int api_metrics_flush(const struct vmm_metrics *vm, const struct api_stats *st)
{
	char *line;
	size_t n;
	int r = 0;

	pthread_mutex_lock(&lock);
	if (metrics_fd < 0)
		goto out;
	line = metrics_line(vm, st);
	if (!line) {
		r = -ENOMEM;
		goto out;
	}
	n = strlen(line);
	line[n] = '\n'; /* over the NUL: written by length */
	if (write(metrics_fd, line, n + 1) == (ssize_t)(n + 1)) {
		metrics_written++;
	} else {
		/* A FIFO nobody reads (or a full one): the line is lost, counted, not waited for. */
		r = -EAGAIN;
		metrics_missed++;
	}
	free(line);
out:
	pthread_mutex_unlock(&lock);
	return r;
}

/* On the VMM loop, every API_METRICS_PERIOD_MS. */
static void tick(void *arg, int res)
{
	struct vmm_cmd *c;

	(void)arg;
	(void)res;
	if (!api_metrics_enabled())
		return;
	c = vmm_cmd_new(VMM_OP_METRICS);
	if (!c)
		return;
	vmm_exec(timer_vmm, c);
	(void)api_metrics_flush(&c->metrics, timer_stats);
	vmm_cmd_free(c);
}

void api_metrics_attach(struct vmm *m, const struct api_stats *api_stats)
{
	const char *hooks = getenv("HUGEVMM_TEST_HOOKS"), *ms = getenv("HUGEVMM_METRICS_PERIOD_MS");
	uint64_t period = API_METRICS_PERIOD_MS;

	/* Tests cannot wait a minute: with the test hooks on, the period may be shortened. */
	if (hooks && !strcmp(hooks, "1") && ms && atoi(ms) > 0)
		period = (uint64_t)atoi(ms);
	timer_vmm = m;
	timer_stats = api_stats;
	if (vmm_every(m, period, tick, NULL))
		log_warn("metrics: cannot arm the %d s flush; FlushMetrics still writes",
			 API_METRICS_PERIOD_MS / 1000);
}

void api_telemetry_close(void)
{
	pthread_mutex_lock(&lock);
	if (metrics_fd >= 0)
		close(metrics_fd);
	metrics_fd = -1;
	pthread_mutex_unlock(&lock);
	log_set_target(-1, false, false);
}
