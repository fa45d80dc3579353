/* A blocking HTTP/1.1 client over a Unix socket, for `hugevmm status`. */
#ifndef HUGEVMM_API_CLIENT_H
#define HUGEVMM_API_CLIENT_H

#include <stddef.h>

#include "common/err.h"
#include "common/util.h"

/*
 * Send @method @path (with @body, may be NULL) to the API socket at @sock and
 * read the response. Returns the HTTP status, with the body in *@out (malloc'd,
 * NUL-terminated); or a negative errno with @e set (ERR_CONFIG when nothing
 * listens at @sock).
 */
int api_client_request(const char *sock, const char *method, const char *path, const char *body,
		       char **out, struct vmm_err *e) must_check;

#endif
