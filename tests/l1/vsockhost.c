/*
 * vsockhost: the host's side of hugevmm's hybrid vsock, inside L1 (busybox, no
 * Python). Built on the host by tests/l1/build.py, static, into the image.
 *
 *   vsockhost connect [split_ms=MS] UDS PORT FILE...
 *       One connection to the VMM's uds_path UDS per FILE, all at once: each
 *       writes "CONNECT PORT\n" (with split_ms, "CONN", then MS milliseconds later
 *       the rest) and waits for the answer line; after "OK <n>\n"
 *       it sends FILE's bytes, half-closes (shutdown SHUT_WR) and reads the
 *       guest's reply to its end, reading all along (an echo cannot deadlock).
 *       One line per connection, in FILE order:
 *         conn I file=FILE ok=N sent=B fnv=H replied=R reply=LINE connect_ms=C ms=T
 *         conn I file=FILE refused=eof|reset|line:TEXT|timeout sent=0 ms=T
 *         conn I file=FILE ok=N broken=reset|early-eof|timeout sent=B ...
 *       (H: the FNV-1a 32 of the bytes sent, as the test guest sums them; LINE: the
 *       reply's first line with its blanks as _, "-" when empty; C: until the OK
 *       line, T: until the reply's end), then
 *         total conns=N ok=K refused=R sent=B replied=R ms=T
 *       Exit 0 when every connection got its OK and its reply's end.
 *
 *   vsockhost listen PATH N OUT [stall_at=BYTES stall_ms=MS [release=FILE]] [timeout_s=S]
 *       Listen on the Unix socket PATH (replaced if there; removed at the end),
 *       take N connections as they come and keep each one's bytes in OUT.K (K:
 *       the order of acceptance, from 1) until its end:
 *         conn K bytes=B ms=T end_at=E   (T: from accept to the end)
 *       With stall_at, the first connection is not read for MS milliseconds (or
 *       until FILE exists) once BYTES came (the guest's writer has to wait), said as
 *         stall begin bytes=B at=A / stall end bytes=B at=E ms=T
 *       each line flushed as it happens (A, E: CLOCK_MONOTONIC in ms). Then
 *         total conns=N bytes=B ms=T
 *       Exit 0 when N connections ended, 1 on an error or after S seconds
 *       (default 120).
 *
 *   vsockhost hold PATH N SECONDS
 *       Listen on PATH and accept N connections, never reading one, until each was
 *       closed by its peer (at most SECONDS):
 *         conn K accepted (never read) / conn K closed unread=BYTES ms=T
 *       (BYTES: what sat unread in the socket); exit 0 when all N were closed.
 *
 *   vsockhost gen BYTES SEED
 *       BYTES of a pseudo-random stream (xorshift64* from SEED) on stdout.
 *
 *   vsockhost pattern BYTES
 *       The test guest's guest->host stream (tests/guest/vsock.c) on stdout: byte i
 *       is (i * 7 + 3) & 0xff.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAXC   256u
#define BUF    (64u * 1024u)
#define LINE   64u

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int unix_addr(struct sockaddr_un *a, const char *path)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(a->sun_path)) {
		fprintf(stderr, "vsockhost: %s: path too long\n", path);
		return -1;
	}
	strcpy(a->sun_path, path);
	return 0;
}

enum cstate { C_LINE, C_DATA, C_DONE };

struct conn {
	int fd, file;
	enum cstate st;
	const char *why;          /* refused: eof, reset, line, timeout */
	char line[LINE];
	unsigned line_len;
	unsigned long okport;
	bool got_ok;
	bool file_eof, shut;
	uint8_t out[BUF];
	size_t out_off, out_len;
	uint64_t sent, replied;
	uint32_t fnv; /* FNV-1a 32 of what was sent */
	char reply[LINE];
	unsigned reply_len;
	uint64_t t0, t_ok, t_end;
};

static void conn_end(struct conn *c, const char *why)
{
	if (c->st == C_DONE)
		return;
	c->why = why;
	c->st = C_DONE;
	c->t_end = now_ms();
	close(c->fd);
	c->fd = -1;
}

/* The answer line, one byte at a time: nothing of the data behind it is taken. */
static void conn_read_line(struct conn *c)
{
	char ch;
	ssize_t n = read(c->fd, &ch, 1);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		conn_end(c, n == 0 ? "eof" : "reset");
		return;
	}
	if (ch != '\n') {
		if (c->line_len < LINE - 1)
			c->line[c->line_len++] = ch;
		return;
	}
	c->line[c->line_len] = 0;
	if (sscanf(c->line, "OK %lu", &c->okport) != 1) {
		conn_end(c, "line");
		return;
	}
	c->got_ok = true;
	c->st = C_DATA;
	c->t_ok = now_ms();
}

static void conn_read_reply(struct conn *c)
{
	uint8_t buf[BUF];
	ssize_t n = read(c->fd, buf, sizeof(buf));

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n < 0) {
		conn_end(c, "reset");
		return;
	}
	if (n == 0) {
		conn_end(c, c->shut ? NULL : "early-eof");
		return;
	}
	for (ssize_t i = 0; i < n && c->reply_len < LINE - 1; i++)
		c->reply[c->reply_len++] = (char)buf[i];
	c->replied += (uint64_t)n;
}

static void conn_write(struct conn *c)
{
	if (!c->out_len && !c->file_eof) {
		ssize_t n = read(c->file, c->out, sizeof(c->out));

		if (n <= 0)
			c->file_eof = true;
		else
			c->out_off = 0, c->out_len = (size_t)n;
	}
	if (c->out_len) {
		ssize_t n = write(c->fd, c->out + c->out_off, c->out_len);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n < 0) {
			conn_end(c, "reset");
			return;
		}
		for (ssize_t i = 0; i < n; i++)
			c->fnv = (c->fnv ^ c->out[c->out_off + (size_t)i]) * 0x01000193u;
		c->out_off += (size_t)n;
		c->out_len -= (size_t)n;
		c->sent += (uint64_t)n;
	}
	if (!c->out_len && c->file_eof && !c->shut) {
		shutdown(c->fd, SHUT_WR);
		c->shut = true;
	}
}

/* The reply's first line, spaces and tabs as '_'; "-" when empty. */
static void reply_token(const struct conn *c, char *tok, size_t len)
{
	size_t i = 0;

	while (i < c->reply_len && i + 1 < len && c->reply[i] != '\n')
		tok[i] = c->reply[i] == ' ' || c->reply[i] == '\t' ? '_' : c->reply[i], i++;
	tok[i] = 0;
	if (!i)
		snprintf(tok, len, "-");
}

static int do_connect(const char *uds, unsigned long port, int nfiles, char **files,
		      uint64_t split_ms)
{
	static struct conn cs[MAXC];
	struct sockaddr_un a;
	struct pollfd pf[MAXC];
	uint64_t t0 = now_ms(), sent = 0, replied = 0;
	unsigned ok = 0, refused = 0;
	char hello[LINE];
	int n = nfiles, left;

	if (n > (int)MAXC || unix_addr(&a, uds))
		return 2;
	snprintf(hello, sizeof(hello), "CONNECT %lu\n", port);
	for (int i = 0; i < n; i++) {
		struct conn *c = &cs[i];

		c->file = open(files[i], O_RDONLY);
		if (c->file < 0) {
			fprintf(stderr, "vsockhost: %s: %s\n", files[i], strerror(errno));
			return 2;
		}
		c->t0 = now_ms();
		c->fnv = 0x811c9dc5u;
		c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&a, sizeof(a))) {
			fprintf(stderr, "vsockhost: connect %s: %s\n", uds, strerror(errno));
			return 2;
		}
		if (split_ms) { /* "CONN", a pause, then the rest: a line that comes in pieces */
			if (write(c->fd, hello, 4) != 4) {
				fprintf(stderr, "vsockhost: write %s: %s\n", uds, strerror(errno));
				return 2;
			}
			usleep((useconds_t)(split_ms * 1000u));
			if (write(c->fd, hello + 4, strlen(hello) - 4) != (ssize_t)strlen(hello) - 4) {
				fprintf(stderr, "vsockhost: write %s: %s\n", uds, strerror(errno));
				return 2;
			}
		} else if (write(c->fd, hello, strlen(hello)) != (ssize_t)strlen(hello)) {
			fprintf(stderr, "vsockhost: write %s: %s\n", uds, strerror(errno));
			return 2;
		}
		fcntl(c->fd, F_SETFL, O_NONBLOCK);
	}
	for (left = n; left;) {
		int k = 0;

		for (int i = 0; i < n; i++) {
			struct conn *c = &cs[i];

			if (c->st == C_DONE)
				continue;
			pf[i].fd = c->fd;
			pf[i].events = POLLIN;
			if (c->st == C_DATA && !c->shut)
				pf[i].events |= POLLOUT;
			k++;
		}
		if (!k)
			break;
		for (int i = 0; i < n; i++)
			if (cs[i].st == C_DONE)
				pf[i].fd = -1;
		if (poll(pf, (nfds_t)n, 1000) < 0 && errno != EINTR)
			return 2;
		for (int i = 0; i < n; i++) {
			struct conn *c = &cs[i];

			if (c->st == C_DONE)
				continue;
			if (now_ms() - c->t0 > 300000) {
				conn_end(c, "timeout");
				continue;
			}
			if (!pf[i].revents)
				continue;
			if (c->st == C_LINE) {
				conn_read_line(c);
				continue;
			}
			if (pf[i].revents & (POLLIN | POLLHUP | POLLERR))
				conn_read_reply(c);
			if (c->st == C_DATA && (pf[i].revents & POLLOUT))
				conn_write(c);
		}
		left = 0;
		for (int i = 0; i < n; i++)
			left += cs[i].st != C_DONE;
	}
	for (int i = 0; i < n; i++) {
		struct conn *c = &cs[i];
		char tok[LINE];

		reply_token(c, tok, sizeof(tok));
		if (c->got_ok && !c->why) {
			ok++;
			printf("conn %d file=%s ok=%lu sent=%" PRIu64 " fnv=%08x replied=%" PRIu64
			       " reply=%s connect_ms=%" PRIu64 " ms=%" PRIu64 "\n", i + 1, files[i],
			       c->okport, c->sent, c->fnv, c->replied, tok, c->t_ok - c->t0,
			       c->t_end - c->t0);
		} else if (c->got_ok) {
			refused++;
			printf("conn %d file=%s ok=%lu broken=%s sent=%" PRIu64 " replied=%" PRIu64
			       " reply=%s ms=%" PRIu64 "\n", i + 1, files[i], c->okport, c->why, c->sent,
			       c->replied, tok, c->t_end - c->t0);
		} else {
			refused++;
			bool line = !strcmp(c->why, "line");

			printf("conn %d file=%s refused=%s%s%s sent=0 ms=%" PRIu64 "\n", i + 1, files[i],
			       c->why, line ? ":" : "", line ? c->line : "", c->t_end - c->t0);
		}
		sent += c->sent;
		replied += c->replied;
	}
	printf("total conns=%d ok=%u refused=%u sent=%" PRIu64 " replied=%" PRIu64 " ms=%" PRIu64
	       "\n", n, ok, refused, sent, replied, now_ms() - t0);
	return ok == (unsigned)n ? 0 : 1;
}

struct lconn {
	int fd, out;
	uint64_t bytes, t0;
};

static int do_listen(const char *path, unsigned n, const char *prefix, uint64_t stall_at,
		     uint64_t stall_ms, const char *release, uint64_t timeout_s)
{
	static struct lconn ls[MAXC];
	struct sockaddr_un a;
	struct pollfd pf[MAXC + 1];
	unsigned accepted = 0, ended = 0;
	uint64_t t0 = now_ms(), total = 0, stall_until = 0, stall_from = 0;
	bool stalled = false, stall_done = !stall_at;
	static uint8_t buf[BUF];
	int lfd;

	if (n > MAXC || !n || unix_addr(&a, path))
		return 2;
	unlink(path);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 128)) {
		fprintf(stderr, "vsockhost: listen %s: %s\n", path, strerror(errno));
		return 2;
	}
	printf("listening %s\n", path);
	fflush(stdout);
	while (ended < n) {
		uint64_t now = now_ms();
		nfds_t k = 0;

		if (now - t0 > timeout_s * 1000u) {
			printf("timeout accepted=%u ended=%u\n", accepted, ended);
			unlink(path);
			return 1;
		}
		if (stalled && (now >= stall_until || (release && !access(release, F_OK)))) {
			stalled = false;
			stall_done = true;
			printf("stall end bytes=%" PRIu64 " at=%" PRIu64 " ms=%" PRIu64 "\n",
			       ls[0].bytes, now, now - stall_from);
			fflush(stdout);
		}
		pf[k].fd = accepted < n ? lfd : -1;
		pf[k++].events = POLLIN;
		for (unsigned i = 0; i < accepted; i++) {
			pf[k].fd = ls[i].fd >= 0 && !(stalled && i == 0) ? ls[i].fd : -1;
			pf[k++].events = POLLIN;
		}
		if (poll(pf, k, stalled ? 50 : 1000) < 0 && errno != EINTR)
			return 2;
		if (pf[0].revents & POLLIN) {
			int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
			char name[4096];

			if (fd >= 0) {
				struct lconn *c = &ls[accepted++];

				snprintf(name, sizeof(name), "%s.%u", prefix, accepted);
				c->fd = fd;
				c->t0 = now_ms();
				c->out = open(name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
				if (c->out < 0) {
					fprintf(stderr, "vsockhost: %s: %s\n", name, strerror(errno));
					return 2;
				}
			}
		}
		for (unsigned i = 0; i < accepted; i++) {
			struct lconn *c = &ls[i];
			ssize_t got;

			if (c->fd < 0 || !(pf[i + 1].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			got = read(c->fd, buf, sizeof(buf));
			if (got < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (got > 0) {
				if (write(c->out, buf, (size_t)got) != got) {
					fprintf(stderr, "vsockhost: write: %s\n", strerror(errno));
					return 2;
				}
				c->bytes += (uint64_t)got;
				total += (uint64_t)got;
				if (i == 0 && !stall_done && !stalled && c->bytes >= stall_at) {
					stalled = true;
					stall_from = now_ms();
					stall_until = stall_from + stall_ms;
					printf("stall begin bytes=%" PRIu64 " at=%" PRIu64 "\n", c->bytes,
					       stall_from);
					fflush(stdout);
				}
				continue;
			}
			if (got < 0)
				printf("conn %u error=%s\n", i + 1, strerror(errno));
			printf("conn %u bytes=%" PRIu64 " ms=%" PRIu64 " end_at=%" PRIu64 "\n", i + 1,
			       c->bytes, now_ms() - c->t0, now_ms());
			fflush(stdout);
			close(c->fd);
			close(c->out);
			c->fd = -1;
			ended++;
		}
	}
	printf("total conns=%u bytes=%" PRIu64 " ms=%" PRIu64 "\n", n, total, now_ms() - t0);
	close(lfd);
	unlink(path);
	return 0;
}

/*
 * Accept connections on PATH and never read them: until @n were accepted and each was
 * closed by its peer (POLLRDHUP), or for @secs seconds.
 */
static int do_hold(const char *path, unsigned n, uint64_t secs)
{
	struct sockaddr_un a;
	struct pollfd pf[MAXC + 1];
	uint64_t t0 = now_ms(), t_acc[MAXC];
	unsigned accepted = 0, closed = 0;
	int lfd;

	if (n > MAXC || unix_addr(&a, path))
		return 2;
	unlink(path);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 128)) {
		fprintf(stderr, "vsockhost: listen %s: %s\n", path, strerror(errno));
		return 2;
	}
	printf("listening %s\n", path);
	pf[0] = (struct pollfd){.fd = lfd, .events = POLLIN};
	while (closed < n && now_ms() - t0 < secs * 1000u) {
		if (poll(pf, accepted + 1, 100) <= 0)
			continue;
		if ((pf[0].revents & POLLIN) && accepted < n) {
			int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

			if (fd >= 0) {
				t_acc[accepted] = now_ms();
				pf[++accepted] = (struct pollfd){.fd = fd, .events = POLLRDHUP};
				printf("conn %u accepted (never read)\n", accepted);
				if (accepted == n)
					pf[0].fd = -1;
			}
		}
		for (unsigned i = 1; i <= accepted; i++) {
			int unread = -1;

			if (pf[i].fd < 0 || !(pf[i].revents & (POLLRDHUP | POLLHUP | POLLERR)))
				continue;
			ioctl(pf[i].fd, FIONREAD, &unread);
			printf("conn %u closed unread=%d ms=%" PRIu64 "\n", i, unread,
			       now_ms() - t_acc[i - 1]);
			close(pf[i].fd);
			pf[i].fd = -1;
			closed++;
		}
	}
	printf("total conns=%u closed=%u ms=%" PRIu64 "\n", accepted, closed, now_ms() - t0);
	unlink(path);
	return closed == n ? 0 : 1;
}

/* The test guest's guest->host stream: byte i is (i * 7 + 3) & 0xff. */
static int do_pattern(uint64_t bytes)
{
	static uint8_t buf[BUF];

	for (uint64_t i = 0; i < bytes;) {
		size_t k = bytes - i < sizeof(buf) ? (size_t)(bytes - i) : sizeof(buf);

		for (size_t j = 0; j < k; j++)
			buf[j] = (uint8_t)((i + j) * 7 + 3);
		if (fwrite(buf, 1, k, stdout) != k)
			return 1;
		i += k;
	}
	return fflush(stdout) ? 1 : 0;
}

static const char *sopt(int argc, char **argv, int from, const char *name)
{
	size_t len = strlen(name);

	for (int i = from; i < argc; i++)
		if (!strncmp(argv[i], name, len) && argv[i][len] == '=')
			return argv[i] + len + 1;
	return NULL;
}

static uint64_t opt(int argc, char **argv, int from, const char *name, uint64_t dflt)
{
	const char *v = sopt(argc, argv, from, name);

	return v ? strtoull(v, NULL, 0) : dflt;
}

/* BYTES of xorshift64* from SEED on stdout: random enough, and cheap under emulation. */
static int do_gen(uint64_t bytes, uint64_t seed)
{
	static uint64_t buf[BUF / 8];
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;

	for (uint64_t i = 0; i < bytes;) {
		size_t k = bytes - i < sizeof(buf) ? (size_t)(bytes - i) : sizeof(buf);

		for (size_t j = 0; j < (k + 7) / 8; j++) {
			x ^= x >> 12;
			x ^= x << 25;
			x ^= x >> 27;
			buf[j] = x * 0x2545f4914f6cdd1dull;
		}
		if (fwrite(buf, 1, k, stdout) != k)
			return 1;
		i += k;
	}
	return fflush(stdout) ? 1 : 0;
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 6 && !strcmp(argv[1], "connect") && !strncmp(argv[2], "split_ms=", 9))
		return do_connect(argv[3], strtoul(argv[4], NULL, 0), argc - 5, argv + 5,
				  strtoull(argv[2] + 9, NULL, 0));
	if (argc >= 5 && !strcmp(argv[1], "connect"))
		return do_connect(argv[2], strtoul(argv[3], NULL, 0), argc - 4, argv + 4, 0);
	if (argc >= 5 && !strcmp(argv[1], "listen"))
		return do_listen(argv[2], (unsigned)strtoul(argv[3], NULL, 0), argv[4],
				 opt(argc, argv, 5, "stall_at", 0), opt(argc, argv, 5, "stall_ms", 0),
				 sopt(argc, argv, 5, "release"), opt(argc, argv, 5, "timeout_s", 120));
	if (argc == 5 && !strcmp(argv[1], "hold"))
		return do_hold(argv[2], (unsigned)strtoul(argv[3], NULL, 0),
			       strtoull(argv[4], NULL, 0));
	if (argc == 4 && !strcmp(argv[1], "gen"))
		return do_gen(strtoull(argv[2], NULL, 0), strtoull(argv[3], NULL, 0));
	if (argc == 3 && !strcmp(argv[1], "pattern"))
		return do_pattern(strtoull(argv[2], NULL, 0));
	fprintf(stderr, "usage: vsockhost connect [split_ms=MS] UDS PORT FILE... | "
			"vsockhost listen PATH N OUT [stall_at=B stall_ms=MS [release=FILE]] "
			"[timeout_s=S] | vsockhost gen BYTES SEED | "
			"vsockhost hold PATH N SECONDS | vsockhost pattern BYTES\n");
	return 2;
}
