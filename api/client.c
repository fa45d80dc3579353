#include "api/client.h"

#include <errno.h>
#include <http_parser.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define CLIENT_MAX_BODY (16 << 20)

struct reply {
	char *body;
	size_t len;
	bool done, too_big;
};

static int on_body(http_parser *p, const char *at, size_t len)
{
	struct reply *r = p->data;
	char *b;

	if (r->len + len > CLIENT_MAX_BODY) {
		r->too_big = true;
		return -1;
	}
	b = realloc(r->body, r->len + len + 1);
	if (!b)
		return -1;
	memcpy(b + r->len, at, len);
	r->body = b;
	r->len += len;
	r->body[r->len] = '\0';
	return 0;
}

static int on_complete(http_parser *p)
{
	((struct reply *)p->data)->done = true;
	return 0;
}

static int send_all(int fd, const char *s, size_t n)
{
	while (n) {
		ssize_t w = send(fd, s, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

int api_client_request(const char *sock, const char *method, const char *path, const char *body,
		       char **out, struct vmm_err *e)
{
	static const http_parser_settings settings = {
		.on_body = on_body,
		.on_message_complete = on_complete,
	};
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	struct reply r = {0};
	http_parser p;
	char head[512], buf[4096];
	int fd, n, rc;

	*out = NULL;
	if (strlen(sock) >= sizeof(a.sun_path))
		return err_set(e, ERR_CONFIG, -ENAMETOOLONG, "--api-sock: \"%s\" is too long",
			       sock);
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", sock);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err_set(e, ERR_RUNTIME, -errno, "socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		rc = -errno;
		close(fd);
		return err_set(e, ERR_CONFIG, rc,
			       "--api-sock: cannot connect to \"%s\": %s; is hugevmm running with "
			       "--api-sock there?",
			       sock, strerror(-rc));
	}
	if (body)
		n = snprintf(head, sizeof(head),
			     "%s %s HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n"
			     "Connection: close\r\nContent-Type: application/json\r\n"
			     "Content-Length: %zu\r\n\r\n",
			     method, path, strlen(body));
	else
		n = snprintf(head, sizeof(head),
			     "%s %s HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n"
			     "Connection: close\r\n\r\n",
			     method, path);
	rc = send_all(fd, head, (size_t)n);
	if (!rc && body)
		rc = send_all(fd, body, strlen(body));
	if (rc) {
		close(fd);
		return err_set(e, ERR_RUNTIME, rc, "sending to \"%s\": %s", sock, strerror(-rc));
	}
	http_parser_init(&p, HTTP_RESPONSE);
	p.data = &r;
	while (!r.done) {
		ssize_t got = recv(fd, buf, sizeof(buf), 0);

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			break;
		if ((size_t)http_parser_execute(&p, &settings, buf, (size_t)got) != (size_t)got ||
		    got == 0)
			break;
	}
	close(fd);
	if (!r.done) {
		free(r.body);
		return err_set(e, ERR_RUNTIME, -EPROTO, "\"%s\" sent an incomplete or malformed %s",
			       sock, r.too_big ? "response (over 16 MiB)" : "response");
	}
	*out = r.body ? r.body : calloc(1, 1);
	return (int)p.status_code;
}
