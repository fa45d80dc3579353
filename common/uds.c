#include "common/uds.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* Whether someone listens on @a: 0 yes, ECONNREFUSED nobody, another errno unknown. */
static int probe(const struct sockaddr_un *a)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int r;

	if (fd < 0)
		return errno;
	r = connect(fd, (const struct sockaddr *)a, sizeof(*a)) ? errno : 0;
	close(fd);
	return r;
}

int uds_listen(struct uds_listener *l, const char *path, int backlog, const char *what,
	       char *why, size_t whylen)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	struct stat st;
	mode_t old;
	int r;

	l->fd = -1;
	l->path[0] = 0;
	if (!path[0]) {
		snprintf(why, whylen, "%s: the path is empty; give the socket's path", what);
		return -EINVAL;
	}
	if (strlen(path) >= sizeof(a.sun_path)) {
		snprintf(why, whylen,
			 "%s: \"%s\" is longer than %zu bytes, the limit of Unix socket paths; "
			 "choose a shorter path",
			 what, path, sizeof(a.sun_path) - 1);
		return -ENAMETOOLONG;
	}
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(why, whylen,
				 "%s: \"%s\" exists and is not a socket; choose another path",
				 what, path);
			return -EEXIST;
		}
		r = probe(&a);
		if (r == 0) {
			snprintf(why, whylen,
				 "%s: \"%s\" is a live socket (another process listens there); "
				 "choose another path",
				 what, path);
			return -EADDRINUSE;
		}
		/* Only a refused connection proves nobody listens; anything else is left alone. */
		if (r != ECONNREFUSED) {
			snprintf(why, whylen,
				 "%s: \"%s\" exists and cannot be probed (%s); remove it if it "
				 "is stale, or choose another path",
				 what, path, strerror(r));
			return -EEXIST;
		}
		unlink(path); /* a leftover of a process that died */
	}
	l->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (l->fd < 0) {
		r = -errno;
		snprintf(why, whylen, "%s: socket: %s", what, strerror(-r));
		return r;
	}
	/* 0600 from the start: no window in which others could connect. */
	old = umask(0177);
	r = bind(l->fd, (struct sockaddr *)&a, sizeof(a)) ? -errno : 0;
	umask(old);
	if (r) {
		snprintf(why, whylen,
			 "%s: cannot create \"%s\": %s; choose a path in a directory this "
			 "process may write",
			 what, path, strerror(-r));
		close(l->fd);
		l->fd = -1;
		return r;
	}
	if (listen(l->fd, backlog) || stat(path, &st)) {
		r = -errno;
		snprintf(why, whylen, "%s: listen on \"%s\": %s", what, path, strerror(-r));
		unlink(path);
		close(l->fd);
		l->fd = -1;
		return r;
	}
	l->dev = st.st_dev;
	l->ino = st.st_ino;
	snprintf(l->path, sizeof(l->path), "%s", path);
	return 0;
}

void uds_close(struct uds_listener *l)
{
	struct stat st;

	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
	if (l->path[0] && !lstat(l->path, &st) && st.st_dev == l->dev && st.st_ino == l->ino)
		unlink(l->path);
	l->path[0] = 0;
}
