#include "common/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static enum log_level level = LOG_INFO;
static bool level_from_env_done;
static log_sink_fn sink;
static void *sink_opaque;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static bool progress_open;
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

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	if ((lvl > log_get_level() && !sink) || (muted > 0 && lvl >= LOG_WARN))
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);

	pthread_mutex_lock(&lock);
	if (sink) {
		sink(lvl, buf, sink_opaque);
	} else if (lvl <= level) {
		if (progress_open) {
			fputc('\n', stderr);
			progress_open = false;
		}
		fprintf(stderr, "hugevmm: %s: %s\n", prefix[lvl], buf);
	}
	pthread_mutex_unlock(&lock);
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
