/* Benchmark tooling, not product code: time one VMM run from spawn to exit.
 *
 *     vmtime RESULT TIMEOUT_S CMD [ARG...]
 *
 * Runs CMD with its stdout through a pipe (copied to ours as it comes), and writes one
 * line to RESULT:
 *
 *     wall_us=N first_us=N done_us=N user_us=N sys_us=N rc=N
 *
 * wall: spawn -> the child reaped; first: spawn -> the first "testguest:" on its
 * stdout; done: spawn -> "testguest: PASS" or "testguest: FAIL" (the guest's last
 * word: what follows is the VMM's exit and teardown); user/sys: the child's CPU time
 * (all its threads, wait4's rusage); rc: its exit status, or 128+signal. -1 where a
 * mark never came. A child outliving TIMEOUT_S gets SIGKILL. Used inside the L1
 * harness (tests/l1/init.sh, run_vbench) where the VMMs run on a real KVM. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static pid_t child;

static void on_alarm(int sig)
{
	(void)sig;
	kill(child, SIGKILL);
}

static long long now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

static long long tv_us(struct timeval tv)
{
	return tv.tv_sec * 1000000LL + tv.tv_usec;
}

int main(int argc, char **argv)
{
	static char buf[1 << 20];
	size_t len = 0;
	long long t0, first = -1, done = -1, end;
	struct rusage ru;
	int fds[2], status, rc;
	FILE *out;

	if (argc < 4) {
		fprintf(stderr, "usage: vmtime RESULT TIMEOUT_S CMD [ARG...]\n");
		return 2;
	}
	if (pipe(fds)) {
		perror("pipe");
		return 2;
	}
	t0 = now_us();
	child = fork();
	if (child < 0) {
		perror("fork");
		return 2;
	}
	if (child == 0) {
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		execvp(argv[3], argv + 3);
		perror(argv[3]);
		_exit(127);
	}
	close(fds[1]);
	signal(SIGALRM, on_alarm);
	alarm((unsigned)atoi(argv[2]));
	for (;;) {
		ssize_t n = read(fds[0], buf + len, sizeof(buf) - 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (write(1, buf + len, (size_t)n) < 0)
			(void)0;
		len += (size_t)n;
		buf[len] = 0;
		if (first < 0 && strstr(buf, "testguest:"))
			first = now_us() - t0;
		if (done < 0 && (strstr(buf, "testguest: PASS") || strstr(buf, "testguest: FAIL")))
			done = now_us() - t0;
		if (len > sizeof(buf) / 2) { /* keep the tail: the marks are found already or later */
			memmove(buf, buf + len - 4096, 4096);
			len = 4096;
		}
	}
	while (wait4(child, &status, 0, &ru) < 0)
		if (errno != EINTR) {
			perror("wait4");
			return 2;
		}
	end = now_us() - t0;
	rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	out = fopen(argv[1], "w");
	if (!out) {
		perror(argv[1]);
		return 2;
	}
	fprintf(out, "wall_us=%lld first_us=%lld done_us=%lld user_us=%lld sys_us=%lld rc=%d\n", end,
		first, done, tv_us(ru.ru_utime), tv_us(ru.ru_stime), rc);
	return fclose(out) ? 2 : 0;
}
