/*
 * A program that embeds hugevmm through include/hugevmm.h alone: create a VM
 * from a config, hand its console to a file descriptor, start it, read its
 * coverage, pause (the guest's ticks stop), resume (they go on), stop, wait,
 * destroy; then a second VM whose console goes to a callback. Also: the
 * version, a bad config refused with its field named, the console calls'
 * refusals. Prints "embed: PASS" or fails with the reason.
 *
 *   embed_test GUEST_ELF CONSOLE_FILE   (boots guests: needs /dev/kvm)
 *   embed_test --no-kvm                 (what runs without a hypervisor)
 */
#include <errno.h>
#include <fcntl.h>
#include <hugevmm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int failed(const char *what, struct hugevmm *h)
{
	fprintf(stderr, "embed: FAIL %s: %s\n", what, h ? hugevmm_error(h) : "");
	return 1;
}

static long size_of(const char *path)
{
	struct stat st;

	return stat(path, &st) ? -1 : (long)st.st_size;
}

static void sleep_ms(long ms)
{
	struct timespec t = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};

	nanosleep(&t, NULL);
}

struct seen {
	size_t bytes, calls;
};

static void on_console(void *arg, const char *data, size_t len)
{
	struct seen *s = arg;

	(void)data;
	s->bytes += len;
	s->calls++;
}

static char cfg[8192];

/* The test guest idling with a tick every 20 ms; its console to @serial_out (if given). */
static const char *config(const char *guest, const char *serial_out)
{
	int n = snprintf(
		cfg, sizeof(cfg),
		"{\"boot-source\": {\"kernel_image_path\": \"%s\", \"boot_args\": \"test=idle "
		"tick_ms=20\"}, \"machine-config\": {\"vcpu_count\": 1}, \"memory\": {\"regions\": "
		"[{\"id\": \"ram0\", \"size_mib\": 64, \"backing\": \"thp\", \"policy\": "
		"\"prefer\"}]}%s%s%s}",
		guest, serial_out ? ", \"serial\": {\"serial_out_path\": \"" : "",
		serial_out ? serial_out : "", serial_out ? "\"}" : "");

	if (n < 0 || (size_t)n >= sizeof(cfg)) {
		fprintf(stderr, "embed: paths too long\n");
		exit(2);
	}
	return cfg;
}

/* Everything that needs no hypervisor: version, refusals, the console calls, destroy. */
static int no_kvm(void)
{
	static const char bad[] =
		"{\"memory\": {\"regions\": [{\"backing\": \"thp\", \"size_mib\": 0}]}}";
	char want[32], *err = NULL;
	struct seen seen = {0};
	struct hugevmm *h;

	snprintf(want, sizeof(want), "%d.%d.%d", HUGEVMM_VERSION_MAJOR, HUGEVMM_VERSION_MINOR,
		 HUGEVMM_VERSION_PATCH);
	if (strcmp(hugevmm_version(), HUGEVMM_VERSION) || strcmp(want, HUGEVMM_VERSION)) {
		fprintf(stderr, "embed: FAIL version: library %s, header %s (%s)\n",
			hugevmm_version(), HUGEVMM_VERSION, want);
		return 1;
	}
	h = hugevmm_create(bad, strlen(bad), &err);
	if (h || !err || !strstr(err, "memory.regions[0].size_mib")) {
		fprintf(stderr, "embed: FAIL a bad config was not refused by name: %s\n",
			err ? err : "(accepted)");
		return 1;
	}
	free(err);

	config("/nonexistent/hugevmm-embed-guest.elf", NULL);
	h = hugevmm_create(cfg, strlen(cfg), &err);
	if (!h) {
		fprintf(stderr, "embed: FAIL create: %s\n", err);
		return 1;
	}
	if (hugevmm_set_console_fd(h, 1000) != 2 || !strstr(hugevmm_error(h), "fd 1000"))
		return failed("a closed console fd was not refused", h);
	if (hugevmm_set_console_fd(h, STDERR_FILENO))
		return failed("console fd", h);
	if (hugevmm_set_console_callback(h, on_console, &seen))
		return failed("console callback", h);
	if (hugevmm_stop(h) != 2)
		return failed("stop before start was not refused", h);
	/* The kernel is checked before anything reaches the hypervisor. */
	if (hugevmm_start(h) != 2 || !strstr(hugevmm_error(h), "hugevmm-embed-guest.elf"))
		return failed("a missing kernel was not refused by name", h);
	if (hugevmm_set_console_callback(h, NULL, NULL))
		return failed("console back to the default", h);
	hugevmm_destroy(h);
	if (seen.calls) {
		fprintf(stderr, "embed: FAIL the console callback ran without a guest\n");
		return 1;
	}
	printf("embed: PASS (no KVM)\n");
	return 0;
}

/* A second VM, its console to a callback: output comes, and none after hugevmm_wait. */
static int with_callback(const char *guest)
{
	struct seen seen = {0}, at_wait;
	char *err = NULL;
	struct hugevmm *h;

	config(guest, NULL);
	h = hugevmm_create(cfg, strlen(cfg), &err);
	if (!h) {
		fprintf(stderr, "embed: FAIL create: %s\n", err);
		return 1;
	}
	if (hugevmm_set_console_callback(h, on_console, &seen) || hugevmm_start(h))
		return failed("start with a console callback", h);
	if (hugevmm_set_console_fd(h, STDERR_FILENO) != 2)
		return failed("a console change after start was not refused", h);
	sleep_ms(300);
	if (hugevmm_stop(h) || hugevmm_wait(h) != 0)
		return failed("stop", h);
	at_wait = seen;
	sleep_ms(100);
	hugevmm_destroy(h);
	if (!at_wait.bytes || seen.calls != at_wait.calls) {
		fprintf(stderr,
			"embed: FAIL console callback: %zu bytes by wait, %zu -> %zu calls\n",
			at_wait.bytes, at_wait.calls, seen.calls);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	char unused[2048], *err = NULL, *rep;
	struct hugevmm *h;
	long before, after;
	int fd;

	if (argc == 2 && !strcmp(argv[1], "--no-kvm"))
		return no_kvm();
	if (argc != 3)
		return 2;
	if (no_kvm())
		return 1;

	/* The console fd wins over the config's serial_out_path (never opened then). */
	snprintf(unused, sizeof(unused), "%s.unused", argv[2]);
	config(argv[1], unused);
	h = hugevmm_create(cfg, strlen(cfg), &err);
	if (!h) {
		fprintf(stderr, "embed: FAIL create: %s\n", err);
		return 1;
	}
	fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || hugevmm_set_console_fd(h, fd))
		return failed("console fd", h);
	close(fd); /* hugevmm keeps its own */
	/* Nothing runs yet: stopping is refused, and must not spoil the start (found in review). */
	if (hugevmm_stop(h) != 2)
		return failed("stop before start was not refused", h);
	if (hugevmm_start(h))
		return failed("start", h);
	if (hugevmm_start(h) != 2)
		return failed("a second start was not refused", h);
	sleep_ms(300);
	rep = hugevmm_memory_report(h);
	if (!rep || !strstr(rep, "\"id\":\"ram0\"") || !strstr(rep, "\"coverage\""))
		return failed("memory report", h);
	free(rep);

	if (hugevmm_pause(h))
		return failed("pause", h);
	if (hugevmm_pause(h) != 2 || !strstr(hugevmm_error(h), "already paused"))
		return failed("a second pause was not refused", h);
	before = size_of(argv[2]);
	sleep_ms(400);
	after = size_of(argv[2]);
	if (before < 0 || before != after) {
		fprintf(stderr, "embed: FAIL the console grew while paused (%ld -> %ld)\n", before,
			after);
		return 1;
	}
	if (hugevmm_resume(h))
		return failed("resume", h);
	sleep_ms(400);
	if (size_of(argv[2]) <= after) {
		fprintf(stderr, "embed: FAIL no ticks after resume\n");
		return 1;
	}
	if (hugevmm_stop(h))
		return failed("stop", h);
	if (hugevmm_wait(h) != 0)
		return failed("wait", h);
	hugevmm_destroy(h);
	if (size_of(unused) >= 0 || errno != ENOENT) {
		fprintf(stderr, "embed: FAIL serial_out_path was opened beside the console fd\n");
		return 1;
	}
	if (with_callback(argv[1]))
		return 1;
	printf("embed: PASS\n");
	return 0;
}
