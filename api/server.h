/*
 * The control socket: HTTP/1.1 with JSON over a Unix socket, served by one
 * API thread on its own event loop. The thread parses and routes requests
 * and forwards commands to the VMM loop; it never touches VM state, and a
 * slow or stuck client holds only its own connection.
 */
#ifndef HUGEVMM_API_SERVER_H
#define HUGEVMM_API_SERVER_H

#include "common/err.h"
struct api_stats;
#include "common/util.h"
#include "vmm/vmm.h"

#define API_MAX_CONNS       256
#define API_IDLE_TIMEOUT_MS 30000

struct api_server;

/*
 * Create the socket at @path (mode 0600) and start serving @vmm. A path that
 * is a live socket is refused; a stale one is replaced; anything else that is
 * not a socket is refused. Errors are ERR_CONFIG naming --api-sock.
 */
int api_server_start(struct api_server **out, const char *path, struct vmm *vmm,
		     struct vmm_err *e) must_check;

/* Stop serving, close every connection, remove the socket file. NULL is fine. */
void api_server_stop(struct api_server *s);

/* The server's counters (the API thread writes them; read them relaxed). NULL for NULL. */
const struct api_stats *api_server_stats(const struct api_server *s);

#endif
