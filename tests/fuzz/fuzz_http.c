/*
 * Mutation fuzzing of the API's request path: HTTP parsing (api/http.c),
 * routing and body validation (api/routes.c) and the VMM loop's command
 * handling (vmm/vmm.c, before boot), exactly as the socket server drives
 * them, with the input cut into random pieces. Every input must end in
 * well-formed responses (a status line, JSON bodies that parse, no 5xx) or a
 * closed connection; under ASan/UBSan any memory error aborts.
 *
 *   fuzz_http [iterations] [seed]      (defaults: 20000, 1)
 */
#include <cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/http.h"
#include "api/routes.h"
#include "common/log.h"
#include "fuzz.h"
#include "vmm/vmm.h"

#define MAX_REQ 4096

static const char *const seeds[] = {
	"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
	"GET /version HTTP/1.1\r\n\r\n",
	"GET /vm/config HTTP/1.1\r\n\r\nGET /machine-config HTTP/1.1\r\n\r\n",
	"PUT /machine-config HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: "
	"48\r\n\r\n{\"vcpu_count\": 2, \"mem_size_mib\": 256, \"smt\": 0}",
	"PATCH /machine-config HTTP/1.1\r\nContent-Length: 23\r\n\r\n{\"huge_pages\": \"2M\"}   ",
	"PUT /boot-source HTTP/1.1\r\nContent-Length: 72\r\n\r\n{\"kernel_image_path\": "
	"\"/nonexistent/vmlinux\", \"boot_args\": \"console=ttyS0\"}",
	"PUT /drives/rootfs HTTP/1.1\r\nContent-Length: 92\r\n\r\n{\"drive_id\": \"rootfs\", "
	"\"path_on_host\": \"/nonexistent/disk\", \"is_root_device\": true, \"is_read_only\": 1}",
	"PATCH /drives/rootfs HTTP/1.1\r\nContent-Length: 118\r\n\r\n{\"drive_id\": \"rootfs\", "
	"\"path_on_host\": \"/nonexistent/new\", \"rate_limiter\": {\"ops\": {\"size\": 100, "
	"\"refill_time\": 100}}}",
	"PUT /network-interfaces/eth0 HTTP/1.1\r\nContent-Length: 83\r\n\r\n{\"iface_id\": "
	"\"eth0\", "
	"\"host_dev_name\": \"tap0\", \"guest_mac\": \"06:00:ac:10:00:02\"}",
	"PUT /network-interfaces/eth1 HTTP/1.1\r\nContent-Length: 119\r\n\r\n{\"iface_id\": "
	"\"eth1\", \"host_dev_name\": \"tap1\", \"mtu\": 9000, \"tx_rate_limiter\": {\"ops\": "
	"{\"size\": 10, \"refill_time\": 10}}}",
	"PATCH /network-interfaces/eth0 HTTP/1.1\r\nContent-Length: 115\r\n\r\n{\"iface_id\": "
	"\"eth0\", \"rx_rate_limiter\": {\"bandwidth\": {\"size\": 1000, \"refill_time\": 100}}, "
	"\"tx_rate_limiter\": null}",
	"PUT /memory/regions/ram0 HTTP/1.1\r\nContent-Length: 64\r\n\r\n{\"backing\": \"thp\", "
	"\"size_mib\": 128, \"page_size\": \"2M\", \"prefault\": false}",
	"PUT /actions HTTP/1.1\r\nContent-Length: 33\r\n\r\n{\"action_type\": \"InstanceStart\"}",
	"PUT /logger HTTP/1.1\r\nContent-Length: 60\r\n\r\n{\"level\": \"Debug\", \"show_level\": true, "
	"\"show_log_origin\": null}",
	"PUT /metrics HTTP/1.1\r\nContent-Length: 73\r\n\r\n{\"metrics_path\": \"/nonexistent/m\", "
	"\"emit_id\": true, \"properties\": {\"a\": \"b\"}}",
	"PUT /entropy HTTP/1.1\r\nContent-Length: 70\r\n\r\n{\"rate_limiter\": {\"bandwidth\": "
	"{\"size\": 1000, \"refill_time\": 100}}}",
	"PUT /actions HTTP/1.1\r\nContent-Length: 32\r\n\r\n{\"action_type\": \"FlushMetrics\"}",
	"PUT /actions HTTP/1.1\r\nContent-Length: 34\r\n\r\n{\"action_type\": \"SendCtrlAltDel\"}",
	"PATCH /vm HTTP/1.1\r\nContent-Length: 19\r\n\r\n{\"state\": \"Paused\"}",
	"GET /memory HTTP/1.1\r\n\r\nGET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n",
	"PUT /balloon HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
	"POST /drives/x HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n{}",
};

static const char *const tokens[] = {
	"\r\n",
	"\r\n\r\n",
	" ",
	"/",
	"?",
	"%00",
	"HTTP/1.1",
	"Content-Length: 999999999\r\n",
	"Content-Length: -1\r\n",
	"Transfer-Encoding: chunked\r\n",
	"{",
	"}",
	"\"",
	":",
	",",
	"null",
	"1e309",
	"\"\\ud800\"",
	"ffffffff\r\n",
	"Connection: close\r\n",
	"\xff",
	"PUT",
	"PATCH",
	"GET",
	"DELETE",
	"/memory/regions/",
	"/drives/",
	"[[[[[[[[",
};

static size_t mutate(char *d, size_t n)
{
	for (unsigned k = 1 + (unsigned)(next() % 4); k--;) {
		size_t at = n ? (size_t)(next() % n) : 0;

		switch (next() % 5) {
		case 0:
			fuzz_flip(d, n, at);
			break;
		case 1:
			n = fuzz_delete(d, n, at, (size_t)(next() % 12));
			break;
		case 2:
			n = fuzz_insert(d, n, MAX_REQ, at,
					tokens[next() % (sizeof(tokens) / sizeof(tokens[0]))]);
			break;
		case 3: /* truncate */
			n = at;
			break;
		default: /* a digit changes */
			if (n && d[at] >= '0' && d[at] <= '9')
				d[at] = "0123456789"[next() % 10];
			break;
		}
	}
	return n;
}

static void *loop_main(void *arg)
{
	vmm_run(arg);
	return NULL;
}

static int check_response(const struct http_conn *c)
{
	const char *body = strstr(c->out, "\r\n\r\n");
	int status;

	if (strncmp(c->out, "HTTP/1.1 ", 9) || sscanf(c->out + 9, "%d", &status) != 1 || !body) {
		fprintf(stderr, "fuzz_http: malformed response: %.80s\n", c->out);
		return -1;
	}
	if (status >= 500 && status != 503) {
		fprintf(stderr, "fuzz_http: %d for a request before boot: %.300s\n", status,
			c->out);
		return -1;
	}
	body += 4;
	if ((size_t)(body - c->out) < c->out_len) {
		cJSON *j = cJSON_ParseWithLength(body, c->out_len - (size_t)(body - c->out));

		if (!j) {
			fprintf(stderr, "fuzz_http: a body that is not JSON: %.200s\n", body);
			return -1;
		}
		cJSON_Delete(j);
	}
	return 0;
}

/* Drive one connection until it wants more input, answering every request. */
static int pump(struct vmm *m, struct http_conn *c, unsigned long *responses)
{
	for (;;) {

		if (c->state == CONN_REQUEST) {
			struct api_route r;
			struct api_stats st = {0};

			api_route(&c->req, &r);
			if (r.cmd) {
				int status;
				char *body;

				if (vmm_call(m, r.cmd))
					return -1;
				api_render(r.cmd, r.render, &st, &status, &body);
				api_cmd_free(r.cmd);
				http_conn_respond(c, status, body);
				free(body);
			} else {
				http_conn_respond(c, r.status, r.body);
				free(r.body);
			}
		}
		if (c->state == CONN_WRITING) {
			(*responses)++;
			if (check_response(c))
				return -1;
			http_conn_written(c, c->out_len - c->out_off);
			continue;
		}
		return 0;
	}
}

int main(int argc, char **argv)
{
	unsigned long iters = argc > 1 ? strtoul(argv[1], NULL, 0) : 20000, responses = 0;
	struct vmm_opts o = {0};
	struct vmm_err e = {0};
	static char doc[MAX_REQ];
	struct vmm *m;
	pthread_t t;

	fuzz_seed(argc, argv, 2);
	log_set_sink(quiet, NULL);
	if (vmm_create(&m, &o, &e)) {
		fprintf(stderr, "fuzz_http: %s\n", e.msg);
		return 1;
	}
	pthread_create(&t, NULL, loop_main, m);
	for (unsigned long i = 0; i < iters; i++) {
		const char *s = seeds[next() % (sizeof(seeds) / sizeof(seeds[0]))];
		size_t n = strlen(s), off = 0;
		struct http_conn *c = malloc(sizeof(*c));

		memcpy(doc, s, n);
		if (i % 8)
			n = mutate(doc, n);
		http_conn_init(c);
		/* Feed in random pieces: the parser must not care where reads end. */
		while (off < n && c->state == CONN_READING) {
			size_t piece = 1 + (size_t)(next() % 64), room = http_conn_room(c);

			piece = piece < n - off ? piece : n - off;
			piece = piece < room ? piece : room;
			memcpy(c->in + c->in_len, doc + off, piece);
			off += piece;
			http_conn_input(c, piece, false);
			if (pump(m, c, &responses)) {
				fprintf(stderr, "fuzz_http: iteration %lu, input:\n%.*s\n", i,
					(int)n, doc);
				return 1;
			}
		}
		if (c->state == CONN_READING) {
			http_conn_input(c, 0, true);
			if (pump(m, c, &responses))
				return 1;
		}
		http_conn_free(c);
		free(c);
	}
	vmm_quit(m, 0);
	pthread_join(t, NULL);
	vmm_destroy(m);
	printf("fuzz_http: %lu requests, %lu responses, all well-formed\n", iters, responses);
	return responses >= iters / 4 ? 0 : 1;
}
