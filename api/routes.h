/*
 * The API's routes: a parsed HTTP request becomes either an answer at once
 * (errors, /version) or a VMM command, whose completion is rendered
 * to JSON here too. Firecracker's paths, bodies, status codes and
 * {"fault_message": ...} errors where the routes share their names.
 */
#ifndef HUGEVMM_API_ROUTES_H
#define HUGEVMM_API_ROUTES_H

#include <stdint.h>

#include "api/http.h"
#include "vmm/vmm.h"

/* Firecracker's per-route metrics: "<group>.<name>", counted with _count and _fails. */
enum api_metric {
	API_M_NONE,
	API_M_GET_INSTANCE_INFO,
	API_M_GET_MACHINE_CFG,
	API_M_GET_VMM_VERSION,
	API_M_GET_VM_CONFIG,
	API_M_PUT_ACTIONS,
	API_M_PUT_BOOT_SOURCE,
	API_M_PUT_DRIVE,
	API_M_PUT_ENTROPY,
	API_M_PUT_LOGGER,
	API_M_PUT_MACHINE_CFG,
	API_M_PUT_METRICS,
	API_M_PUT_NETWORK,
	API_M_PUT_VSOCK,
	API_M_PATCH_DRIVE,
	API_M_PATCH_MACHINE_CFG,
	API_M_PATCH_NETWORK,
	API_M_PATCH_VM,
	API_M_MAX
};

/* "get_api_requests.instance_info" and so on. */
const char *api_metric_name(enum api_metric m);

struct api_stats {
	uint64_t requests, responses_2xx, responses_4xx, responses_5xx;
	uint64_t connections, connections_refused, connections_open;
	uint64_t route_count[API_M_MAX], route_fails[API_M_MAX];
};

typedef void (*api_render_fn)(const struct vmm_cmd *c, const struct api_stats *st, int *status,
			      char **body);

struct api_route {
	/* Either an answer now ... */
	int status;
	char *body; /* malloc'd JSON, or NULL */
	/* ... or a command to run, and how to render its completion. */
	struct vmm_cmd *cmd;
	api_render_fn render;
	enum api_metric metric; /* the route, for Firecracker's request metrics */
};

/* Route @req. Fills @out; out->cmd is owned by the caller afterwards (api_cmd_free). */
void api_route(const struct http_request *req, struct api_route *out);

/* The response for a completed command. */
void api_render(const struct vmm_cmd *c, api_render_fn render, const struct api_stats *st,
		int *status, char **body);

/*
 * Free a command api_route made (vmm_cmd_free, and a VMM_OP_CALL's argument,
 * which the command owns).
 */
void api_cmd_free(struct vmm_cmd *c);

/* {"fault_message": msg} as a malloc'd string. */
char *api_fault_body(const char *msg);

#endif
