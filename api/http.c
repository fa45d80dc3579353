#include "api/http.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cJSON.h>

#define CONN(p) ((struct http_conn *)(p)->data)

const char *http_status_text(int status)
{
	switch (status) {
	case 100:
		return "Continue";
	case 200:
		return "OK";
	case 204:
		return "No Content";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 413:
		return "Payload Too Large";
	case 414:
		return "URI Too Long";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 503:
		return "Service Unavailable";
	default:
		return "Unknown";
	}
}

/* Remember why the parser is being stopped; the first reason wins. */
static int limit(struct http_conn *c, int status, const char *msg)
{
	if (!c->error_status) {
		c->error_status = status;
		snprintf(c->error_msg, sizeof(c->error_msg), "%s", msg);
	}
	c->over_limit = true;
	return -1;
}

static int on_message_begin(http_parser *p)
{
	struct http_conn *c = CONN(p);

	c->url_len = 0;
	c->req.url[0] = '\0';
	c->req.body_len = 0;
	c->head_bytes = 0;
	c->expect_continue = false;
	c->header_name[0] = '\0';
	return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
	struct http_conn *c = CONN(p);

	if (c->url_len + len >= HTTP_MAX_URL)
		return limit(c, 414, "request target over 1023 bytes");
	memcpy(c->req.url + c->url_len, at, len);
	c->url_len += len;
	c->req.url[c->url_len] = '\0';
	return 0;
}

static int count_head(struct http_conn *c, size_t len)
{
	c->head_bytes += len;
	return c->head_bytes > HTTP_MAX_HEADERS ? limit(c, 431, "headers over 8 KiB") : 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
	struct http_conn *c = CONN(p);
	size_t have = strlen(c->header_name);

	/* A field may arrive in pieces; only short names matter (Expect). */
	if (have + len < sizeof(c->header_name)) {
		memcpy(c->header_name + have, at, len);
		c->header_name[have + len] = '\0';
	}
	return count_head(c, len);
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
	struct http_conn *c = CONN(p);

	if (!strcasecmp(c->header_name, "expect") && len == 12 &&
	    !strncasecmp(at, "100-continue", 12))
		c->expect_continue = true;
	c->header_name[0] = '\0';
	return count_head(c, len);
}

static int on_headers_complete(http_parser *p)
{
	struct http_conn *c = CONN(p);

	if ((p->flags & F_CONTENTLENGTH) && p->content_length > HTTP_MAX_BODY)
		return limit(c, 413, "body over 64 KiB");
	/* curl waits for this before sending a larger body. */
	if (c->expect_continue && p->content_length > 0)
		c->continue_wanted = true;
	return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
	struct http_conn *c = CONN(p);

	if (c->req.body_len + len > HTTP_MAX_BODY)
		return limit(c, 413, "body over 64 KiB");
	if (c->req.body_len + len + 1 > c->body_cap) {
		size_t cap = HTTP_MAX_BODY + 1;
		char *b = realloc(c->req.body, cap);

		if (!b)
			return limit(c, 500, "out of memory");
		c->req.body = b;
		c->body_cap = cap;
	}
	memcpy(c->req.body + c->req.body_len, at, len);
	c->req.body_len += len;
	c->req.body[c->req.body_len] = '\0';
	return 0;
}

static int on_message_complete(http_parser *p)
{
	struct http_conn *c = CONN(p);

	if (!c->req.body) {
		c->req.body = calloc(1, 1);
		c->body_cap = c->req.body ? 1 : 0;
	}
	c->req.method = (enum http_method)p->method;
	c->req.keep_alive = http_should_keep_alive(p);
	c->state = CONN_REQUEST;
	/* One request at a time: pipelined bytes wait until this one is answered. */
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings settings = {
	.on_message_begin = on_message_begin,
	.on_url = on_url,
	.on_header_field = on_header_field,
	.on_header_value = on_header_value,
	.on_headers_complete = on_headers_complete,
	.on_body = on_body,
	.on_message_complete = on_message_complete,
};

void http_conn_init(struct http_conn *c)
{
	memset(c, 0, sizeof(*c));
	http_parser_init(&c->parser, HTTP_REQUEST);
	c->parser.data = c;
	c->state = CONN_READING;
}

void http_conn_free(struct http_conn *c)
{
	free(c->req.body);
	free(c->out);
	c->req.body = NULL;
	c->out = NULL;
}

size_t http_conn_room(const struct http_conn *c)
{
	return c->state == CONN_READING ? sizeof(c->in) - c->in_len : 0;
}

/* Run the parser over what is buffered (or tell it the input ended). */
static void parse(struct http_conn *c, bool eof)
{
	size_t n;
	enum http_errno err;

	if (eof)
		n = http_parser_execute(&c->parser, &settings, NULL, 0);
	else
		n = http_parser_execute(&c->parser, &settings, c->in + c->in_off,
					c->in_len - c->in_off);
	c->in_off += eof ? 0 : n;
	if (c->in_off == c->in_len)
		c->in_off = c->in_len = 0;
	if (c->state == CONN_REQUEST)
		return;
	err = HTTP_PARSER_ERRNO(&c->parser);
	if (c->error_status) {
		c->close_after = true; /* first: the response's Connection header says so */
		http_conn_fault(c, c->error_status, "%s", c->error_msg);
	} else if (err == HPE_HEADER_OVERFLOW) {
		c->close_after = true;
		http_conn_fault(c, 431, "headers over 8 KiB");
	} else if (err != HPE_OK) {
		c->close_after = true;
		http_conn_fault(c, 400, "malformed request: %s (%s)", http_errno_description(err),
				http_errno_name(err));
	} else if (eof) {
		c->state = CONN_CLOSED; /* the peer left between requests */
	} else if (c->in_off) {
		/* Keep unparsed bytes at the front so the buffer's room is all usable. */
		memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
		c->in_len -= c->in_off;
		c->in_off = 0;
	}
}

void http_conn_input(struct http_conn *c, size_t n, bool eof)
{
	if (c->state != CONN_READING)
		return;
	c->in_len += n;
	parse(c, eof);
}

void http_conn_respond(struct http_conn *c, int status, const char *body)
{
	size_t blen = body ? strlen(body) : 0, cap = blen + 256;
	bool close = c->close_after || c->over_limit || !c->req.keep_alive;
	int n;

	free(c->out);
	c->out = malloc(cap);
	if (!c->out) {
		c->state = CONN_CLOSED;
		return;
	}
	if (body)
		n = snprintf(
			c->out, cap,
			"HTTP/1.1 %d %s\r\nServer: hugevmm\r\nContent-Type: application/json\r\n"
			"Content-Length: %zu\r\nConnection: %s\r\n\r\n",
			status, http_status_text(status), blen, close ? "close" : "keep-alive");
	else /* 204 carries no body and says nothing of its length */
		n = snprintf(c->out, cap,
			     "HTTP/1.1 %d %s\r\nServer: hugevmm\r\n%sConnection: %s\r\n\r\n",
			     status, http_status_text(status),
			     status == 204 ? "" : "Content-Length: 0\r\n",
			     close ? "close" : "keep-alive");
	/* A HEAD response says how long the body would be, and sends none. */
	if (c->req.method == HTTP_HEAD && c->state == CONN_REQUEST)
		blen = 0;
	if (body && blen)
		memcpy(c->out + n, body, blen);
	c->out_len = (size_t)n + blen;
	c->status = status;
	c->counted = false;
	c->out_off = 0;
	c->close_after = close;
	c->state = CONN_WRITING;
}

void http_conn_fault(struct http_conn *c, int status, const char *fmt, ...)
{
	char msg[512];
	cJSON *o;
	char *body;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "fault_message", msg);
	body = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	http_conn_respond(c, status, body ? body : "{\"fault_message\":\"out of memory\"}");
	free(body);
}

void http_conn_written(struct http_conn *c, size_t n)
{
	c->out_off += n;
	if (c->out_off < c->out_len)
		return;
	free(c->out);
	c->out = NULL;
	c->out_len = c->out_off = 0;
	if (c->close_after) {
		c->state = CONN_CLOSED;
		return;
	}
	c->state = CONN_READING;
	http_parser_pause(&c->parser, 0);
	if (c->in_len > c->in_off)
		parse(c, false); /* a pipelined request may be waiting already */
}
