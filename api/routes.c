#include "api/routes.h"

#include <cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/config_json.h"
#include "api/json_util.h"
#include "api/report_json.h"
#include "api/telemetry.h"
#include "memory/host.h"
#include "vmm/kvm.h"

#ifndef HUGEVMM_VERSION
#define HUGEVMM_VERSION "0.0.0"
#endif

#define ID_MAX 63

static const char *const metric_names[API_M_MAX] = {
	[API_M_NONE] = "",
	[API_M_GET_INSTANCE_INFO] = "get_api_requests.instance_info",
	[API_M_GET_MACHINE_CFG] = "get_api_requests.machine_cfg",
	[API_M_GET_VMM_VERSION] = "get_api_requests.vmm_version",
	[API_M_GET_VM_CONFIG] = "get_api_requests.vm_config",
	[API_M_PUT_ACTIONS] = "put_api_requests.actions",
	[API_M_PUT_BOOT_SOURCE] = "put_api_requests.boot_source",
	[API_M_PUT_DRIVE] = "put_api_requests.drive",
	[API_M_PUT_ENTROPY] = "put_api_requests.entropy",
	[API_M_PUT_LOGGER] = "put_api_requests.logger",
	[API_M_PUT_MACHINE_CFG] = "put_api_requests.machine_cfg",
	[API_M_PUT_METRICS] = "put_api_requests.metrics",
	[API_M_PUT_NETWORK] = "put_api_requests.network",
	[API_M_PUT_VSOCK] = "put_api_requests.vsock",
	[API_M_PATCH_DRIVE] = "patch_api_requests.drive",
	[API_M_PATCH_MACHINE_CFG] = "patch_api_requests.machine_cfg",
	[API_M_PATCH_NETWORK] = "patch_api_requests.network",
	[API_M_PATCH_VM] = "patch_api_requests.vm",
};

const char *api_metric_name(enum api_metric m)
{
	return (unsigned)m < API_M_MAX ? metric_names[m] : "";
}

char *api_fault_body(const char *msg)
{
	cJSON *o = cJSON_CreateObject();
	char *s;

	cJSON_AddStringToObject(o, "fault_message", msg);
	s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

static void answer(struct api_route *out, int status, cJSON *body)
{
	out->status = status;
	out->body = body ? cJSON_PrintUnformatted(body) : NULL;
	cJSON_Delete(body);
}

static void fault(struct api_route *out, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void fault(struct api_route *out, int status, const char *fmt, ...)
{
	char msg[600];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	out->status = status;
	out->body = api_fault_body(msg);
}

/* An error from parsing a body or running a command, as the HTTP status it deserves. */
static int err_status(const struct vmm_err *e)
{
	switch (e->kind) {
	case ERR_NONE:
		return 204;
	case ERR_CONFIG:
	case ERR_POLICY:
		return 400;
	case ERR_RUNTIME:
		break;
	}
	return e->code == -ESHUTDOWN ? 503 : 500;
}

/* ---- rendering completions ---- */

static void render_empty(const struct vmm_cmd *c, const struct api_stats *st, int *status,
			 char **body)
{
	(void)c;
	(void)st;
	*status = 204;
	*body = NULL;
}

static void render_info(const struct vmm_cmd *c, const struct api_stats *st, int *status,
			char **body)
{
	cJSON *o = cJSON_CreateObject();

	(void)st;
	cJSON_AddStringToObject(o, "app_name", "hugevmm");
	cJSON_AddStringToObject(o, "id", c->id);
	cJSON_AddStringToObject(o, "state", vmm_state_name(c->state));
	cJSON_AddStringToObject(o, "vmm_version", HUGEVMM_VERSION);
	cJSON_AddItemToObject(o, "seccomp", report_seccomp());
	*status = 200;
	*body = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
}

static void render_config(const struct vmm_cmd *c, const struct api_stats *st, int *status,
			  char **body)
{
	cJSON *o = cfg_json_render(c->config);

	(void)st;
	*status = 200;
	*body = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
}

static void render_machine(const struct vmm_cmd *c, const struct api_stats *st, int *status,
			   char **body)
{
	cJSON *o = cfg_json_render_machine(c->config);

	(void)st;
	*status = 200;
	*body = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
}

static void render_memory(const struct vmm_cmd *c, const struct api_stats *st, int *status,
			  char **body)
{
	cJSON *o = report_memory(&c->memory->mem, &c->memory->kvm);

	(void)st;
	*status = 200;
	*body = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
}

static double ms(uint64_t ns)
{
	return (double)(ns / 1000) / 1000.0;
}

static void render_metrics(const struct vmm_cmd *c, const struct api_stats *st, int *status,
			   char **body)
{
	const struct vmm_metrics *m = &c->metrics;
	cJSON *o = cJSON_CreateObject(), *x;

	cJSON_AddStringToObject(o, "state", vmm_state_name(m->state));
	cJSON_AddNumberToObject(o, "uptime_ms", ms(m->uptime_ns));
	cJSON_AddNumberToObject(o, "vcpus", m->vm.vcpus);
	cJSON_AddNumberToObject(o, "vcpu_run_ms", ms(m->vm.run_ns));
	x = cJSON_AddObjectToObject(o, "exits");
	cJSON_AddNumberToObject(x, "io", (double)m->vm.exits_io);
	cJSON_AddNumberToObject(x, "mmio", (double)m->vm.exits_mmio);
	cJSON_AddNumberToObject(x, "interrupted", (double)m->vm.exits_intr);
	cJSON_AddNumberToObject(x, "other", (double)m->vm.exits_other);
	x = cJSON_AddObjectToObject(o, "serial");
	cJSON_AddNumberToObject(x, "tx_bytes", (double)m->vm.serial_tx_bytes);
	cJSON_AddNumberToObject(x, "rx_bytes", (double)m->vm.serial_rx_bytes);
	cJSON_AddNumberToObject(x, "tx_dropped", (double)m->vm.serial_tx_dropped);
	x = cJSON_AddObjectToObject(o, "virtio");
	cJSON_AddNumberToObject(x, "notifications", (double)m->vm.virtio_notifies);
	cJSON_AddNumberToObject(x, "interrupts", (double)m->vm.virtio_interrupts);
	cJSON_AddNumberToObject(x, "needs_reset", (double)m->vm.virtio_needs_reset);
	x = cJSON_AddObjectToObject(o, "entropy");
	cJSON_AddNumberToObject(x, "requests", (double)m->vm.entropy_requests);
	cJSON_AddNumberToObject(x, "bytes", (double)m->vm.entropy_bytes);
	cJSON_AddNumberToObject(x, "throttled", (double)m->vm.entropy_throttled);
	cJSON_AddNumberToObject(x, "host_rng_fails", (double)m->vm.entropy_errors);
	x = cJSON_AddArrayToObject(o, "drives");
	for (unsigned i = 0; i < m->vm.ndrives && i < CFG_MAX_DRIVES; i++)
		cJSON_AddItemToArray(x, report_drive_metrics(&m->vm.drives[i], false));
	x = cJSON_AddArrayToObject(o, "nets");
	for (unsigned i = 0; i < m->vm.nnets && i < CFG_MAX_NETS; i++)
		cJSON_AddItemToArray(x, report_net_metrics(&m->vm.nets[i], false));
	if (m->vm.has_balloon) {
		cJSON_AddItemToObject(o, "balloon", report_balloon_metrics(&m->vm.balloon));
		cJSON_AddItemToObject(o, "reclaim", report_reclaim_metrics(&m->vm.reclaim));
	}
	if (m->vm.has_vsock)
		cJSON_AddItemToObject(o, "vsock",
				      report_vsock_metrics(&m->vm.vsock, REPORT_VSOCK_ALL));
	x = cJSON_AddObjectToObject(o, "memory");
	cJSON_AddNumberToObject(x, "measurements", (double)m->measurements);
	cJSON_AddNumberToObject(x, "coverage_drift_events", (double)m->drift_events);
	x = cJSON_AddObjectToObject(o, "api");
	cJSON_AddNumberToObject(x, "requests", (double)st->requests);
	cJSON_AddNumberToObject(x, "responses_2xx", (double)st->responses_2xx);
	cJSON_AddNumberToObject(x, "responses_4xx", (double)st->responses_4xx);
	cJSON_AddNumberToObject(x, "responses_5xx", (double)st->responses_5xx);
	cJSON_AddNumberToObject(x, "connections", (double)st->connections);
	cJSON_AddNumberToObject(x, "connections_open", (double)st->connections_open);
	cJSON_AddNumberToObject(x, "connections_refused", (double)st->connections_refused);
	cJSON_AddNumberToObject(x, "vmm_commands", (double)m->commands);
	cJSON_AddNumberToObject(x, "vmm_command_errors", (double)m->command_errors);
	*status = 200;
	*body = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
}

/* GET /balloon: Firecracker's Balloon; once the device runs, its target and size too. */
static void render_balloon(const struct vmm_cmd *c, const struct api_stats *st, int *status,
			   char **body)
{
	const struct vmm_balloon *b = &c->balloon;
	cJSON *o = cfg_json_render_balloon(&b->cfg);

	(void)st;
	if (b->running) {
		const struct balloon_info *in = &b->info;

		/* amount_mib is the current target, as Firecracker reports it after boot. */
		cJSON_ReplaceItemInObjectCaseSensitive(o, "amount_mib",
						       cJSON_CreateNumber(in->target_pages >> 8));
		cJSON_ReplaceItemInObjectCaseSensitive(o, "stats_polling_interval_s",
						       cJSON_CreateNumber(in->stats_interval_s));
		report_balloon_sizes(o, in);
	}
	*status = 200;
	*body = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
}

static void render_balloon_stats(const struct vmm_cmd *c, const struct api_stats *st,
				 int *status, char **body)
{
	cJSON *o = report_balloon_stats(&c->balloon.info);

	(void)st;
	*status = 200;
	*body = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
}

/* FlushMetrics: the line goes to the metrics sink (none configured: nothing to do). */
static void render_flush(const struct vmm_cmd *c, const struct api_stats *st, int *status,
			 char **body)
{
	int r = api_metrics_flush(&c->metrics, st);

	*status = 204;
	*body = NULL;
	if (r == -ENOMEM) {
		*status = 500;
		*body = api_fault_body("FlushMetrics: out of memory");
	}
	/* A sink that cannot take the line (a FIFO nobody reads) is counted, not an error. */
}

void api_render(const struct vmm_cmd *c, api_render_fn render, const struct api_stats *st,
		int *status, char **body)
{
	if (c->err.kind != ERR_NONE) {
		*status = err_status(&c->err);
		*body = api_fault_body(c->err.msg);
		return;
	}
	render(c, st, status, body);
}

/* ---- requests ---- */

/* The request body as a JSON object, or a fault. */
static cJSON *body_object(const struct http_request *r, struct api_route *out)
{
	struct vmm_err e = {0};
	cJSON *root;

	if (!r->body_len) {
		fault(out, 400, "body: missing; this request takes a JSON object");
		return NULL;
	}
	if (jv_parse(r->body, r->body_len, "body", &root, &e)) {
		fault(out, 400, "%s", e.msg);
		return NULL;
	}
	if (!cJSON_IsObject(root)) {
		char b[64];

		fault(out, 400, "body: expected a JSON object, got %s",
		      jv_show(root, b, sizeof(b)));
		cJSON_Delete(root);
		return NULL;
	}
	return root;
}

static struct vmm_cmd *command(struct api_route *out, enum vmm_op op, api_render_fn render)
{
	out->cmd = vmm_cmd_new(op);
	out->render = render;
	if (!out->cmd)
		fault(out, 500, "out of memory");
	return out->cmd;
}

static void put_machine(const struct http_request *r, struct api_route *out, bool patch)
{
	struct vmm_machine m;
	struct vmm_err e = {0};
	cJSON *o = body_object(r, out);

	if (!o)
		return;
	if (cfg_json_machine(o, "machine-config", &m, &e)) {
		fault(out, 400, "%s", e.msg);
	} else if (!patch && (!m.has_vcpus || !m.has_mem)) {
		/* Firecracker's MachineConfiguration requires both. */
		fault(out, 400,
		      "machine-config.%s: missing; PUT needs vcpu_count and mem_size_mib "
		      "(PATCH changes single fields)",
		      m.has_vcpus ? "mem_size_mib" : "vcpu_count");
	} else if (command(out, patch ? VMM_OP_PATCH_MACHINE : VMM_OP_PUT_MACHINE, render_empty)) {
		out->cmd->in.machine = m;
	}
	cJSON_Delete(o);
}

static void put_boot(const struct http_request *r, struct api_route *out)
{
	struct vm_config *t = calloc(1, sizeof(*t));
	struct vmm_err e = {0};
	cJSON *o = t ? body_object(r, out) : NULL;

	if (!t)
		fault(out, 500, "out of memory");
	if (!o) {
		free(t);
		return;
	}
	if (cfg_json_boot(o, "boot-source", t, &e)) {
		fault(out, 400, "%s", e.msg);
	} else if (command(out, VMM_OP_PUT_BOOT, render_empty)) {
		memcpy(out->cmd->in.boot.kernel, t->kernel, sizeof(t->kernel));
		memcpy(out->cmd->in.boot.initrd, t->initrd, sizeof(t->initrd));
		memcpy(out->cmd->in.boot.cmdline, t->cmdline, sizeof(t->cmdline));
	}
	cJSON_Delete(o);
	free(t);
}

/* The body's own id field must agree with the path's, as in Firecracker. */
static bool same_id(struct api_route *out, const char *field, const char *body_id,
		    const char *path_id)
{
	if (!strcmp(body_id, path_id))
		return true;
	fault(out, 400, "%s: \"%s\" does not match the path's \"%s\"; they must be the same", field,
	      body_id, path_id);
	return false;
}

static void put_drive(const struct http_request *r, const char *id, struct api_route *out)
{
	struct cfg_drive d = {0};
	struct vmm_err e = {0};
	cJSON *o = body_object(r, out);

	if (!o)
		return;
	if (cfg_json_drive(o, "drives", &d, &e))
		fault(out, 400, "%s", e.msg);
	else if (same_id(out, "drives.drive_id", d.id, id) &&
		 command(out, VMM_OP_PUT_DRIVE, render_empty))
		out->cmd->in.drive = d;
	cJSON_Delete(o);
}

static void patch_drive(const struct http_request *r, const char *id, struct api_route *out)
{
	struct vmm_drive_patch *d = calloc(1, sizeof(*d));
	struct vmm_err e = {0};
	cJSON *o = d ? body_object(r, out) : NULL;

	if (!d)
		fault(out, 500, "out of memory");
	if (!o) {
		free(d);
		return;
	}
	if (cfg_json_drive_patch(o, "drives", d, &e))
		fault(out, 400, "%s", e.msg);
	else if (same_id(out, "drives.drive_id", d->id, id) &&
		 command(out, VMM_OP_PATCH_DRIVE, render_empty))
		out->cmd->in.drive_patch = *d;
	cJSON_Delete(o);
	free(d);
}

static void put_net(const struct http_request *r, const char *id, struct api_route *out)
{
	struct cfg_net n = {0};
	struct vmm_err e = {0};
	cJSON *o = body_object(r, out);

	if (!o)
		return;
	if (cfg_json_net(o, "network-interfaces", &n, &e))
		fault(out, 400, "%s", e.msg);
	else if (same_id(out, "network-interfaces.iface_id", n.id, id) &&
		 command(out, VMM_OP_PUT_NET, render_empty))
		out->cmd->in.net = n;
	cJSON_Delete(o);
}

static void patch_net(const struct http_request *r, const char *id, struct api_route *out)
{
	struct vmm_net_patch n;
	struct vmm_err e = {0};
	cJSON *o = body_object(r, out);

	if (!o)
		return;
	if (cfg_json_net_patch(o, "network-interfaces", &n, &e))
		fault(out, 400, "%s", e.msg);
	else if (same_id(out, "network-interfaces.iface_id", n.id, id) &&
		 command(out, VMM_OP_PATCH_NET, render_empty))
		out->cmd->in.net_patch = n;
	cJSON_Delete(o);
}

static void put_entropy(const struct http_request *r, struct api_route *out)
{
	struct cfg_entropy en;
	struct vmm_err e = {0};
	cJSON *o = body_object(r, out);

	if (!o)
		return;
	if (cfg_json_entropy(o, "entropy", &en, &e))
		fault(out, 400, "%s", e.msg);
	else if (command(out, VMM_OP_PUT_ENTROPY, render_empty))
		out->cmd->in.entropy = en;
	cJSON_Delete(o);
}

static void put_balloon(const struct http_request *r, struct api_route *out)
{
	struct cfg_balloon b;
	struct vmm_err e = {0};
	cJSON *o = body_object(r, out);

	if (!o)
		return;
	if (cfg_json_balloon(o, "balloon", &b, &e))
		fault(out, 400, "%s", e.msg);
	else if (command(out, VMM_OP_PUT_BALLOON, render_empty))
		out->cmd->in.balloon = b;
	cJSON_Delete(o);
}

static void put_vsock(const struct http_request *r, struct api_route *out)
{
	struct cfg_vsock v;
	struct vmm_err e = {0};
	cJSON *o = body_object(r, out);

	if (!o)
		return;
	if (cfg_json_vsock(o, "vsock", &v, &e))
		fault(out, 400, "%s", e.msg);
	else if (command(out, VMM_OP_PUT_VSOCK, render_empty))
		out->cmd->in.vsock = v;
	cJSON_Delete(o);
}

/* PATCH /balloon (BalloonUpdate) and PATCH /balloon/statistics (BalloonStatsUpdate). */
static void patch_balloon(const struct http_request *r, struct api_route *out, bool stats)
{
	struct vmm_err e = {0};
	cJSON *o = body_object(r, out);
	uint32_t v = 0;

	if (!o)
		return;
	if (stats ? cfg_json_balloon_stats_update(o, "balloon", &v, &e)
		  : cfg_json_balloon_update(o, "balloon", &v, &e))
		fault(out, 400, "%s", e.msg);
	else if (command(out, stats ? VMM_OP_PATCH_BALLOON_STATS : VMM_OP_PATCH_BALLOON,
			 render_empty))
		*(stats ? &out->cmd->in.balloon_stats_s : &out->cmd->in.balloon_mib) = v;
	cJSON_Delete(o);
}

static void put_region(const struct http_request *r, const char *id, struct api_route *out)
{
	struct mem_region_cfg *g = calloc(1, sizeof(*g));
	struct vmm_err e = {0};
	cJSON *o = g ? body_object(r, out) : NULL;
	const cJSON *bid;

	if (!g)
		fault(out, 500, "out of memory");
	if (!o) {
		free(g);
		return;
	}
	bid = cJSON_GetObjectItemCaseSensitive(o, "id");
	if (cfg_json_region(o, "memory.regions", 0, g, &e)) {
		fault(out, 400, "%s", e.msg);
	} else if (!bid) {
		if (!mem_id_valid(id))
			fault(out, 400,
			      "memory.regions: \"%s\" in the path is not a valid region id", id);
		else if (command(out, VMM_OP_PUT_REGION, render_empty))
			memcpy(g->id, id, strlen(id) + 1); /* valid ids fit: at most MEM_ID_MAX */
	} else if (same_id(out, "memory.regions.id", g->id, id)) {
		command(out, VMM_OP_PUT_REGION, render_empty);
	}
	if (out->cmd)
		out->cmd->in.region = *g;
	cJSON_Delete(o);
	free(g);
}

static void put_action(const struct http_request *r, struct api_route *out)
{
	static const char *const known[] = {"action_type", NULL};
	struct vmm_err e = {0};
	cJSON *o = body_object(r, out);
	char type[32];
	int rc;

	if (!o)
		return;
	rc = jv_check_keys(o, "actions", known, &e);
	if (!rc)
		rc = jv_get_str(o, "actions", "action_type", type, sizeof(type), &e);
	if (rc < 0 || e.kind != ERR_NONE)
		fault(out, 400, "%s", e.msg);
	else if (rc == 0)
		fault(out, 400,
		      "actions.action_type: missing; InstanceStart, SendCtrlAltDel or "
		      "FlushMetrics");
	else if (!strcmp(type, "InstanceStart"))
		command(out, VMM_OP_START, render_empty);
	else if (!strcmp(type, "SendCtrlAltDel"))
		command(out, VMM_OP_CTRL_ALT_DEL, render_empty);
	else if (!strcmp(type, "FlushMetrics"))
		command(out, VMM_OP_METRICS, render_flush);
	else
		fault(out, 400,
		      "actions.action_type: \"%s\" is not known; use InstanceStart, "
		      "SendCtrlAltDel or FlushMetrics",
		      type);
	cJSON_Delete(o);
}

static void patch_vm(const struct http_request *r, struct api_route *out)
{
	static const char *const known[] = {"state", NULL};
	struct vmm_err e = {0};
	cJSON *o = body_object(r, out);
	char state[16];
	int rc;

	if (!o)
		return;
	rc = jv_check_keys(o, "vm", known, &e);
	if (!rc)
		rc = jv_get_str(o, "vm", "state", state, sizeof(state), &e);
	if (rc < 0 || e.kind != ERR_NONE)
		fault(out, 400, "%s", e.msg);
	else if (rc == 0)
		fault(out, 400, "vm.state: missing; \"Paused\" or \"Resumed\"");
	else if (!strcmp(state, "Paused"))
		command(out, VMM_OP_PAUSE, render_empty);
	else if (!strcmp(state, "Resumed"))
		command(out, VMM_OP_RESUME, render_empty);
	else
		fault(out, 400, "vm.state: \"%s\" is not known; use \"Paused\" or \"Resumed\"",
		      state);
	cJSON_Delete(o);
}

/*
 * PUT /test/split {"region": id, "offset_mib": N}: splits a huge page of a
 * running guest, so tests can watch coverage drift. Only with
 * HUGEVMM_TEST_HOOKS=1 in hugevmm's environment; otherwise an unknown route.
 */
static bool test_hooks(void)
{
	const char *v = getenv("HUGEVMM_TEST_HOOKS");

	return v && !strcmp(v, "1");
}

static void put_test_split(const struct http_request *r, struct api_route *out)
{
	static const char *const known[] = {"region", "offset_mib", NULL};
	struct vmm_err e = {0};
	cJSON *o = body_object(r, out);
	char region[MEM_ID_MAX + 1];
	uint64_t mib = 0;
	int rc;

	if (!o)
		return;
	rc = jv_check_keys(o, "split", known, &e);
	if (!rc)
		rc = jv_get_str(o, "split", "region", region, sizeof(region), &e);
	if (rc > 0)
		rc = jv_get_uint(o, "split", "offset_mib", 0, MEM_MAX_SIZE >> 20, &mib, &e);
	if (rc <= 0 || e.kind != ERR_NONE)
		fault(out, 400, "%s", e.kind != ERR_NONE ? e.msg : "split: region and offset_mib");
	else if (command(out, VMM_OP_TEST_SPLIT, render_empty)) {
		memcpy(out->cmd->in.split.region, region, sizeof(region));
		out->cmd->in.split.offset = mib << 20;
	}
	cJSON_Delete(o);
}

/*
 * Work the API thread may not do (it is confined from its start: no files, no
 * host probes) runs on the VMM thread as a VMM_OP_CALL. Its argument is one
 * malloc'd block that goes with the command (api_cmd_free); call() takes it,
 * and frees it when there is no command.
 */
static struct vmm_cmd *call(struct api_route *out, void (*fn)(void *, bool, struct vmm_err *),
			    void *arg, api_render_fn render)
{
	if (!arg) {
		fault(out, 500, "out of memory");
		return NULL;
	}
	if (!command(out, VMM_OP_CALL, render)) {
		free(arg);
		return NULL;
	}
	out->cmd->in.call.fn = fn;
	out->cmd->in.call.arg = arg;
	return out->cmd;
}

void api_cmd_free(struct vmm_cmd *c)
{
	if (c && c->op == VMM_OP_CALL)
		free(c->in.call.arg);
	vmm_cmd_free(c);
}

/* As Firecracker refuses its pre-boot-only actions after InstanceStart. */
static int after_start(struct vmm_err *e, const char *route, const char *what)
{
	return err_set(e, ERR_CONFIG, -EBUSY,
		       "%s: The requested operation is not supported after starting the microVM. "
		       "Configure %s before InstanceStart",
		       route, what);
}

/* On the VMM thread: open the log's file (not after boot: the thread is confined then). */
static void call_logger(void *arg, bool booted, struct vmm_err *e)
{
	if (booted)
		after_start(e, "PUT /logger", "the logger");
	else
		(void)!api_logger_apply(arg, "logger.log_path", e); /* its error is in @e */
}

static void call_metrics(void *arg, bool booted, struct vmm_err *e)
{
	if (booted)
		after_start(e, "PUT /metrics", "the metrics");
	else
		(void)!api_metrics_apply(arg, "metrics.metrics_path", e); /* its error is in @e */
}

/* PUT /logger and PUT /metrics: process settings, before boot; nothing of the VM changes. */
static void put_logger(const struct http_request *r, struct api_route *out)
{
	struct cfg_logger *l = calloc(1, sizeof(*l));
	struct vmm_err e = {0};
	cJSON *o = l ? body_object(r, out) : NULL;

	if (!l)
		fault(out, 500, "out of memory");
	if (o && cfg_json_logger(o, "logger", l, &e)) {
		fault(out, 400, "%s", e.msg);
	} else if (o) {
		call(out, call_logger, l, render_empty);
		l = NULL; /* call() took it */
	}
	cJSON_Delete(o);
	free(l);
}

static void put_metrics(const struct http_request *r, struct api_route *out)
{
	struct cfg_metrics *m = calloc(1, sizeof(*m));
	struct vmm_err e = {0};
	cJSON *o = m ? body_object(r, out) : NULL;

	if (!m)
		fault(out, 500, "out of memory");
	if (o && cfg_json_metrics(o, "metrics", m, &e)) {
		fault(out, 400, "%s", e.msg);
	} else if (o) {
		call(out, call_metrics, m, render_empty);
		m = NULL; /* call() took it */
	}
	cJSON_Delete(o);
	free(m);
}

/* GET /host: the probe reads sysfs, /proc and /dev/kvm, which only the VMM thread may. */
struct host_call {
	struct host_mem_caps mc;
	struct hv_probe hv;
};

static void call_host(void *arg, bool booted, struct vmm_err *e)
{
	struct host_call *h = arg;

	(void)booted;
	(void)e;
	host_mem_probe(&h->mc);
	kvm_probe(&h->hv);
}

static void render_host(const struct vmm_cmd *c, const struct api_stats *st, int *status,
			char **body)
{
	const struct host_call *h = c->in.call.arg;
	cJSON *o = report_host(&h->mc, &h->hv, NULL, 0);

	(void)st;
	*status = 200;
	*body = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
}

static void get_host(struct api_route *out)
{
	call(out, call_host, calloc(1, sizeof(struct host_call)), render_host);
}

static void get_version(struct api_route *out)
{
	cJSON *o = cJSON_CreateObject();

	/* Firecracker's FirecrackerVersion shape, for clients that read it. */
	cJSON_AddStringToObject(o, "firecracker_version", HUGEVMM_VERSION);
	cJSON_AddStringToObject(o, "hugevmm_version", HUGEVMM_VERSION);
	answer(out, 200, o);
}

static bool has_prefix(const char *path, const char *prefix)
{
	return !strncmp(path, prefix, strlen(prefix));
}

/* The {id} after @prefix into @id; a fault (and false) when it is empty, too long or nested. */
static bool take_id(const char *path, const char *prefix, char *id, struct api_route *out)
{
	const char *s = path + strlen(prefix);

	if (!*s || strchr(s, '/') || strlen(s) > ID_MAX) {
		fault(out, 400, "%s{id}: the id must be 1 to %d characters without '/'", prefix,
		      ID_MAX);
		return false;
	}
	snprintf(id, ID_MAX + 1, "%s", s);
	return true;
}

/* Firecracker routes hugevmm does not implement: a clear "not here", not a generic 400. */
static const char *const firecracker_only[] = {
	"/cpu-config", "/mmds", "/snapshot", "/pmem", "/hotplug", "/serial",
};

void api_route(const struct http_request *r, struct api_route *out)
{
	char path[HTTP_MAX_URL], id[ID_MAX + 1];
	enum http_method m = r->method;
	const char *q;

	memset(out, 0, sizeof(*out));
	snprintf(path, sizeof(path), "%s", r->url);
	q = strchr(path, '?');
	if (q)
		path[q - path] = '\0';
	/* One trailing slash is forgiven ("/machine-config/"). */
	if (strlen(path) > 1 && path[strlen(path) - 1] == '/')
		path[strlen(path) - 1] = '\0';

	if (!strcmp(path, "/") && m == HTTP_GET) {
		out->metric = API_M_GET_INSTANCE_INFO;
		command(out, VMM_OP_INFO, render_info);
	} else if (!strcmp(path, "/version") && m == HTTP_GET) {
		out->metric = API_M_GET_VMM_VERSION;
		get_version(out);
	} else if (!strcmp(path, "/vm/config") && m == HTTP_GET) {
		out->metric = API_M_GET_VM_CONFIG;
		command(out, VMM_OP_GET_CONFIG, render_config);
	} else if (!strcmp(path, "/machine-config") && m == HTTP_GET) {
		out->metric = API_M_GET_MACHINE_CFG;
		command(out, VMM_OP_GET_CONFIG, render_machine);
	} else if (!strcmp(path, "/machine-config") && (m == HTTP_PUT || m == HTTP_PATCH)) {
		out->metric = m == HTTP_PUT ? API_M_PUT_MACHINE_CFG : API_M_PATCH_MACHINE_CFG;
		put_machine(r, out, m == HTTP_PATCH);
	} else if (!strcmp(path, "/boot-source") && m == HTTP_PUT) {
		out->metric = API_M_PUT_BOOT_SOURCE;
		put_boot(r, out);
	} else if (!strcmp(path, "/logger") && m == HTTP_PUT) {
		out->metric = API_M_PUT_LOGGER;
		put_logger(r, out);
	} else if (!strcmp(path, "/metrics") && m == HTTP_PUT) {
		out->metric = API_M_PUT_METRICS;
		put_metrics(r, out);
	} else if (!strcmp(path, "/entropy") && m == HTTP_PUT) {
		out->metric = API_M_PUT_ENTROPY;
		put_entropy(r, out);
	} else if (!strcmp(path, "/vsock") && m == HTTP_PUT) {
		out->metric = API_M_PUT_VSOCK;
		put_vsock(r, out);
	} else if (m == HTTP_PUT && has_prefix(path, "/drives/")) {
		out->metric = API_M_PUT_DRIVE;
		if (take_id(path, "/drives/", id, out))
			put_drive(r, id, out);
	} else if (m == HTTP_PATCH && has_prefix(path, "/drives/")) {
		out->metric = API_M_PATCH_DRIVE;
		if (take_id(path, "/drives/", id, out))
			patch_drive(r, id, out);
	} else if (m == HTTP_PUT && has_prefix(path, "/network-interfaces/")) {
		out->metric = API_M_PUT_NETWORK;
		if (take_id(path, "/network-interfaces/", id, out))
			put_net(r, id, out);
	} else if (m == HTTP_PATCH && has_prefix(path, "/network-interfaces/")) {
		out->metric = API_M_PATCH_NETWORK;
		if (take_id(path, "/network-interfaces/", id, out))
			patch_net(r, id, out);
	} else if (m == HTTP_PUT && has_prefix(path, "/memory/regions/")) {
		if (take_id(path, "/memory/regions/", id, out))
			put_region(r, id, out);
	} else if (!strcmp(path, "/actions") && m == HTTP_PUT) {
		out->metric = API_M_PUT_ACTIONS;
		put_action(r, out);
	} else if (!strcmp(path, "/vm") && m == HTTP_PATCH) {
		out->metric = API_M_PATCH_VM;
		patch_vm(r, out);
	}
	else if (!strcmp(path, "/memory") && m == HTTP_GET)
		command(out, VMM_OP_MEMORY, render_memory);
	else if (!strcmp(path, "/host") && m == HTTP_GET)
		get_host(out);
	else if (!strcmp(path, "/metrics") && m == HTTP_GET)
		command(out, VMM_OP_METRICS, render_metrics);
	else if (!strcmp(path, "/test/split") && m == HTTP_PUT && test_hooks())
		put_test_split(r, out);
	else if (!strcmp(path, "/balloon") && m == HTTP_GET)
		command(out, VMM_OP_GET_BALLOON, render_balloon);
	else if (!strcmp(path, "/balloon") && m == HTTP_PUT)
		put_balloon(r, out);
	else if (!strcmp(path, "/balloon") && m == HTTP_PATCH)
		patch_balloon(r, out, false);
	else if (!strcmp(path, "/balloon/statistics") && m == HTTP_GET)
		command(out, VMM_OP_BALLOON_STATS, render_balloon_stats);
	else if (!strcmp(path, "/balloon/statistics") && m == HTTP_PATCH)
		patch_balloon(r, out, true);
	else if (!strcmp(path, "/balloon/hinting") || has_prefix(path, "/balloon/hinting/"))
		fault(out, 400,
		      "%s %s: free page hinting is not implemented in hugevmm; free_page_reporting "
		      "(PUT /balloon before InstanceStart) gives free guest memory back instead",
		      http_method_str(m), r->url);
	else {
		for (size_t i = 0; i < sizeof(firecracker_only) / sizeof(firecracker_only[0]);
		     i++) {
			size_t n = strlen(firecracker_only[i]);

			if (!strncmp(path, firecracker_only[i], n) &&
			    (!path[n] || path[n] == '/')) {
				fault(out, 400,
				      "%s %s: hugevmm does not implement this Firecracker route",
				      http_method_str(m), r->url);
				return;
			}
		}
		fault(out, 400, "Invalid request method and/or path: %s %s", http_method_str(m),
		      r->url);
	}
}
