/*
 * A program that embeds hugevmm through include/hugevmm.h alone: create a VM
 * from a config, start it, read its coverage, pause (the guest's ticks stop),
 * resume (they go on), stop, wait, destroy. Also: a bad config is refused
 * with its field named. Prints "embed: PASS" or fails with the reason.
 *
 *   embed_test GUEST_ELF CONSOLE_FILE
 */
#include <hugevmm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

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

int main(int argc, char **argv)
{
	static const char bad[] =
		"{\"memory\": {\"regions\": [{\"backing\": \"thp\", \"size_mib\": 0}]}}";
	char cfg[2048], *err = NULL, *rep;
	struct hugevmm *h;
	long before, after;

	if (argc != 3)
		return 2;
	h = hugevmm_create(bad, strlen(bad), &err);
	if (h || !err || !strstr(err, "memory.regions[0].size_mib")) {
		fprintf(stderr, "embed: FAIL a bad config was not refused by name: %s\n",
			err ? err : "(accepted)");
		return 1;
	}
	free(err);

	snprintf(
		cfg, sizeof(cfg),
		"{\"boot-source\": {\"kernel_image_path\": \"%s\", \"boot_args\": \"test=idle "
		"tick_ms=20\"}, \"machine-config\": {\"vcpu_count\": 1}, \"memory\": {\"regions\": "
		"[{\"id\": \"ram0\", \"size_mib\": 64, \"backing\": \"thp\", \"policy\": "
		"\"prefer\"}]},"
		" \"serial\": {\"serial_out_path\": \"%s\"}}",
		argv[1], argv[2]);
	h = hugevmm_create(cfg, strlen(cfg), &err);
	if (!h) {
		fprintf(stderr, "embed: FAIL create: %s\n", err);
		return 1;
	}
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
	printf("embed: PASS\n");
	return 0;
}
