#include "common/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static enum log_level level = LOG_INFO;
static bool level_from_env_done;
static log_sink_fn sink;
static void *sink_opaque;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static bool progress_open;
static int target_fd = -1;
static bool target_level, target_origin;
static char instance_id[64] = "anonymous-instance";
static uint64_t target_written, target_missed;
static __thread int muted;

void log_mute(bool on)
{
	muted += on ? 1 : -1;
}

static const char *const prefix[] = {
	[LOG_ERR] = "error",
	[LOG_WARN] = "warning",
	[LOG_INFO] = "info",
	[LOG_DEBUG] = "debug",
};

static void level_from_env(void)
{
	const char *e;

	if (level_from_env_done)
		return;
	level_from_env_done = true;
	e = getenv("HUGEVMM_LOG");
	if (!e)
		return;
	for (unsigned i = 0; i <= LOG_DEBUG; i++)
		if (!strcmp(e, prefix[i]) || (i == LOG_ERR && !strcmp(e, "err")))
			level = (enum log_level)i;
}

int log_level_from_name(const char *name, enum log_level *out)
{
	static const struct {
		const char *name;
		enum log_level level;
	} names[] = {
		{"error", LOG_ERR}, {"warning", LOG_WARN}, {"warn", LOG_WARN}, {"info", LOG_INFO},
		{"debug", LOG_DEBUG}, {"trace", LOG_DEBUG}, {"off", LOG_OFF},
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcasecmp(name, names[i].name)) {
			*out = names[i].level;
			return 0;
		}
	return -EINVAL;
}

void log_set_level(enum log_level lvl)
{
	level_from_env_done = true;
	level = lvl;
}

enum log_level log_get_level(void)
{
	level_from_env();
	return level;
}

void log_set_sink(log_sink_fn fn, void *opaque)
{
	pthread_mutex_lock(&lock);
	sink = fn;
	sink_opaque = opaque;
	pthread_mutex_unlock(&lock);
}

void log_set_target(int fd, bool show_level, bool show_origin)
{
	pthread_mutex_lock(&lock);
	if (target_fd >= 0 && target_fd != fd)
		close(target_fd);
	target_fd = fd;
	target_level = show_level;
	target_origin = show_origin;
	pthread_mutex_unlock(&lock);
}

void log_set_instance_id(const char *id)
{
	pthread_mutex_lock(&lock);
	snprintf(instance_id, sizeof(instance_id), "%s", id);
	pthread_mutex_unlock(&lock);
}

void log_target_counts(uint64_t *written, uint64_t *missed)
{
	pthread_mutex_lock(&lock);
	*written = target_written;
	*missed = target_missed;
	pthread_mutex_unlock(&lock);
}

static const char *const fc_level[] = {
	[LOG_ERR] = "ERROR",
	[LOG_WARN] = "WARN",
	[LOG_INFO] = "INFO",
	[LOG_DEBUG] = "DEBUG",
};

/* One line in Firecracker's format to the target; the lock is held. */
static void target_line(enum log_level lvl, const char *file, int line, const char *msg)
{
	char out[1400], thread[16] = "-", origin[128] = "";
	struct timespec ts;
	struct tm tm;
	int n;

	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	if (pthread_getname_np(pthread_self(), thread, sizeof(thread)))
		snprintf(thread, sizeof(thread), "-");
	if (target_origin)
		snprintf(origin, sizeof(origin), ":%s:%d", file ? file : "?", line);
	n = snprintf(out, sizeof(out), "%04d-%02d-%02dT%02d:%02d:%02d.%09ld [%s:%s%s%s%s] %s\n",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
		     tm.tm_sec, ts.tv_nsec, instance_id, thread, target_level ? ":" : "",
		     target_level ? fc_level[lvl] : "", origin, msg);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(out)) {
		n = sizeof(out) - 1;
		out[n - 1] = '\n';
	}
	/* Non-blocking: a FIFO without a reader, or a full one, loses the line, counted. */
	if (write(target_fd, out, (size_t)n) == n)
		target_written++;
	else
		target_missed++;
}

static void vlog(enum log_level lvl, const char *file, int line, const char *fmt, va_list ap)
{
	char buf[1024];

	if ((lvl > log_get_level() && !sink) || (muted > 0 && lvl >= LOG_WARN))
		return;
	vsnprintf(buf, sizeof(buf), fmt, ap);

	pthread_mutex_lock(&lock);
	if (sink) {
		sink(lvl, buf, sink_opaque);
	} else if (lvl <= level) {
		if (target_fd >= 0)
			target_line(lvl, file, line, buf);
		if (target_fd < 0 || lvl == LOG_ERR) {
			if (progress_open) {
				fputc('\n', stderr);
				progress_open = false;
			}
			fprintf(stderr, "hugevmm: %s: %s\n", prefix[lvl], buf);
		}
	}
	pthread_mutex_unlock(&lock);
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(lvl, NULL, 0, fmt, ap);
	va_end(ap);
}

void log_msg_at(enum log_level lvl, const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(lvl, file, line, fmt, ap);
	va_end(ap);
}

bool log_progress_enabled(void)
{
	return !sink && log_get_level() >= LOG_INFO && isatty(STDERR_FILENO);
}

void log_progress(const char *fmt, ...)
{
	char buf[256];
	va_list ap;

	if (!log_progress_enabled())
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&lock);
	fprintf(stderr, "\rhugevmm: %s\033[K", buf);
	progress_open = true;
	pthread_mutex_unlock(&lock);
}

void log_progress_end(void)
{
	pthread_mutex_lock(&lock);
	if (progress_open) {
		fputc('\n', stderr);
		progress_open = false;
	}
	pthread_mutex_unlock(&lock);
}
