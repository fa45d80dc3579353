/* The HTTP connection state machine: pieces, pipelining, limits, chunked bodies, faults. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "api/http.h"

static void feed(struct http_conn *c, const char *s, size_t n)
{
	assert_true(http_conn_room(c) >= n);
	memcpy(c->in + c->in_len, s, n);
	http_conn_input(c, n, false);
}

static void one_byte_at_a_time(void **state)
{
	static const char r[] = "PUT /drives/x HTTP/1.1\r\nContent-Length: 4\r\n\r\n{\"a\"";
	struct http_conn c;

	(void)state;
	http_conn_init(&c);
	for (size_t i = 0; i < sizeof(r) - 1; i++) {
		assert_int_equal(c.state, CONN_READING);
		feed(&c, r + i, 1);
	}
	assert_int_equal(c.state, CONN_REQUEST);
	assert_int_equal(c.req.method, HTTP_PUT);
	assert_string_equal(c.req.url, "/drives/x");
	assert_int_equal(c.req.body_len, 4);
	assert_string_equal(c.req.body, "{\"a\"");
	assert_true(c.req.keep_alive);
	http_conn_free(&c);
}

static void pipelined_requests_one_at_a_time(void **state)
{
	static const char r[] = "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
	struct http_conn c;

	(void)state;
	http_conn_init(&c);
	feed(&c, r, sizeof(r) - 1);
	assert_int_equal(c.state, CONN_REQUEST);
	assert_string_equal(c.req.url, "/a");
	http_conn_respond(&c, 204, NULL);
	assert_int_equal(c.state, CONN_WRITING);
	assert_non_null(strstr(c.out, "HTTP/1.1 204 No Content\r\n"));
	assert_null(strstr(c.out, "Content-Length"));
	http_conn_written(&c, c.out_len);
	/* The second request was already buffered: it comes up at once. */
	assert_int_equal(c.state, CONN_REQUEST);
	assert_string_equal(c.req.url, "/b");
	http_conn_respond(&c, 200, "{}");
	assert_non_null(strstr(c.out, "Content-Length: 2\r\nConnection: keep-alive\r\n\r\n{}"));
	http_conn_written(&c, c.out_len);
	assert_int_equal(c.state, CONN_READING);
	http_conn_free(&c);
}

static void limits_and_faults(void **state)
{
	static const struct {
		const char *req;
		const char *status_line, *text;
	} cases[] = {
		{"PUT / HTTP/1.1\r\nContent-Length: 70000\r\n\r\n", "HTTP/1.1 413",
		 "body over 64 KiB"},
		{"NOTAMETHOD / HTTP/1.1\r\n\r\n", "HTTP/1.1 400", "malformed request"},
		{"GET / HTTP/1.1\r\nbad header\r\n\r\n", "HTTP/1.1 400", "malformed request"},
	};

	(void)state;
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct http_conn c;

		http_conn_init(&c);
		feed(&c, cases[i].req, strlen(cases[i].req));
		assert_int_equal(c.state, CONN_WRITING);
		assert_true(!strncmp(c.out, cases[i].status_line, strlen(cases[i].status_line)));
		assert_non_null(strstr(c.out, cases[i].text));
		assert_non_null(strstr(c.out, "Connection: close"));
		http_conn_written(&c, c.out_len);
		assert_int_equal(c.state, CONN_CLOSED);
		http_conn_free(&c);
	}
}

static void chunked_body_and_http10(void **state)
{
	static const char r[] = "PUT /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"
				"3\r\n{\"a\r\n3\r\n\":1\r\n1\r\n}\r\n0\r\n\r\n";
	struct http_conn c;

	(void)state;
	http_conn_init(&c);
	feed(&c, r, sizeof(r) - 1);
	assert_int_equal(c.state, CONN_REQUEST);
	assert_string_equal(c.req.body, "{\"a\":1}");
	assert_false(c.req.keep_alive); /* HTTP/1.0 without keep-alive */
	http_conn_respond(&c, 200, "{}");
	assert_non_null(strstr(c.out, "Connection: close"));
	http_conn_free(&c);
}

static void truncated_and_expect_continue(void **state)
{
	static const char r[] =
		"PUT /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 9\r\n\r\n{";
	struct http_conn c;

	(void)state;
	http_conn_init(&c);
	feed(&c, r, sizeof(r) - 1);
	assert_true(c.continue_wanted);
	assert_int_equal(c.state, CONN_READING);
	http_conn_input(&c, 0, true); /* the peer gives up mid-body */
	assert_int_equal(c.state, CONN_WRITING);
	assert_non_null(strstr(c.out, "HTTP/1.1 400"));
	http_conn_free(&c);
	/* Between requests, an end of input is just a goodbye. */
	http_conn_init(&c);
	http_conn_input(&c, 0, true);
	assert_int_equal(c.state, CONN_CLOSED);
	http_conn_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(one_byte_at_a_time),
		cmocka_unit_test(pipelined_requests_one_at_a_time),
		cmocka_unit_test(limits_and_faults),
		cmocka_unit_test(chunked_body_and_http10),
		cmocka_unit_test(truncated_and_expect_continue),
	};

	return cmocka_run_group_tests_name("http", tests, NULL, NULL);
}
