/*
 * One HTTP/1.1 server connection as a state machine over http-parser (the
 * maintained parser from Node, Debian's libhttp-parser): bytes in, at most
 * one complete request out at a time, a response's bytes back. No sockets
 * here, so the socket server and the fuzzer drive the very same code.
 */
#ifndef HUGEVMM_API_HTTP_H
#define HUGEVMM_API_HTTP_H

#include <http_parser.h>
#include <stdbool.h>
#include <stddef.h>

#define HTTP_MAX_URL     1024
#define HTTP_MAX_HEADERS (8 * 1024) /* request line and headers */
#define HTTP_MAX_BODY    (64 * 1024)
#define HTTP_IN_BUF      (16 * 1024)

struct http_request {
	enum http_method method;
	char url[HTTP_MAX_URL];
	char *body; /* NUL-terminated, body_len bytes */
	size_t body_len;
	bool keep_alive;
};

enum http_state {
	CONN_READING, /* more bytes wanted */
	CONN_REQUEST, /* http_conn.req is complete: answer it */
	CONN_WRITING, /* a response is waiting in out */
	CONN_CLOSED,  /* write out what remains, then close */
};

struct http_conn {
	http_parser parser;
	enum http_state state;
	struct http_request req;
	size_t url_len, head_bytes, body_cap;
	bool over_limit; /* a request exceeded a limit: answer it, then close */
	char header_name[16];
	bool expect_continue;
	bool continue_wanted; /* "Expect: 100-continue": the server sends 100 first */
	int error_status;
	char error_msg[200];

	char in[HTTP_IN_BUF];
	size_t in_len, in_off; /* unparsed bytes are in[in_off, in_len) */
	char *out;
	size_t out_len, out_off;
	bool close_after; /* close once out is written */
	int status;       /* of the queued response */
	bool counted;     /* the server has counted it */
};

void http_conn_init(struct http_conn *c);
void http_conn_free(struct http_conn *c);

/* Room left in the input buffer (read at most that much). */
size_t http_conn_room(const struct http_conn *c);

/*
 * Take @n bytes just read into http_conn_room()'s space at in + in_len, or
 * the peer's end of input (@eof). Moves to CONN_REQUEST when a request is
 * complete, or queues an error response (CONN_WRITING, then close) for a
 * request that cannot be parsed.
 */
void http_conn_input(struct http_conn *c, size_t n, bool eof);

/* Queue the response to the current request; @body NULL for none (204). */
void http_conn_respond(struct http_conn *c, int status, const char *body);

/* Queue a {"fault_message": ...} response. */
void http_conn_fault(struct http_conn *c, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * @n bytes of out were written. When all is written, the connection goes
 * back to reading (parsing any pipelined bytes already received), or closes.
 */
void http_conn_written(struct http_conn *c, size_t n);

/* Reason phrase of @status. */
const char *http_status_text(int status);

#endif
