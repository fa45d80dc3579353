/*
 * Listening Unix sockets a hugevmm owns on a path it was given (the API
 * socket, the vsock's uds_path): created 0600, a stale socket of a dead
 * process replaced, a live one or a non-socket refused; removed at the end
 * only while the path is still the one created.
 */
#ifndef HUGEVMM_COMMON_UDS_H
#define HUGEVMM_COMMON_UDS_H

#include <stddef.h>
#include <sys/types.h>

#include "common/util.h"

struct uds_listener {
	int fd;        /* listening, non-blocking, close-on-exec; -1 when none */
	dev_t dev;     /* what was created, so that a replaced path is left alone */
	ino_t ino;
	char path[108];
};

/*
 * Listen on @path (backlog @backlog). 0, or -errno with @why (a sentence
 * naming the path, the problem and the remedy; @what names the setting in
 * it, e.g. "--api-sock"). uds_host_error(r) tells the host's failures (out of
 * descriptors or memory) from the caller's input (everything else).
 */
int uds_listen(struct uds_listener *l, const char *path, int backlog, const char *what,
	       char *why, size_t whylen) must_check;

static inline int uds_host_error(int r)
{
	return r == -12 /* ENOMEM */ || r == -24 /* EMFILE */ || r == -23 /* ENFILE */ ||
	       r == -105 /* ENOBUFS */;
}

/* Close the socket and remove the path if it is still ours. */
void uds_close(struct uds_listener *l);

#endif
