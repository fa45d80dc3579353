/*
 * The API's routes: a parsed HTTP request becomes either an answer at once
 * (errors, /version, /host) or a VMM command, whose completion is rendered
 * to JSON here too. Firecracker's paths, bodies, status codes and
 * {"fault_message": ...} errors where the routes share their names.
 */
#ifndef HUGEVMM_API_ROUTES_H
#define HUGEVMM_API_ROUTES_H

#include <stdint.h>

#include "api/http.h"
#include "vmm/vmm.h"

struct api_stats {
	uint64_t requests, responses_2xx, responses_4xx, responses_5xx;
	uint64_t connections, connections_refused, connections_open;
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
};

/* Route @req. Fills @out; out->cmd is owned by the caller afterwards. */
void api_route(const struct http_request *req, struct api_route *out);

/* The response for a completed command. */
void api_render(const struct vmm_cmd *c, api_render_fn render, const struct api_stats *st,
		int *status, char **body);

/* {"fault_message": msg} as a malloc'd string. */
char *api_fault_body(const char *msg);

#endif
