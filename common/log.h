/*
 * The one logging sink. Nothing else in hugevmm writes to stderr.
 * Level from log_set_level() (CLI -q/-v) or HUGEVMM_LOG=err|warn|info|debug.
 */
#ifndef HUGEVMM_COMMON_LOG_H
#define HUGEVMM_COMMON_LOG_H

#include <stdbool.h>

enum log_level {
	LOG_ERR,
	LOG_WARN,
	LOG_INFO,
	LOG_DEBUG
};

void log_set_level(enum log_level lvl);
enum log_level log_get_level(void);

/* Redirect messages (tests capture warnings); NULL restores stderr. */
typedef void (*log_sink_fn)(enum log_level lvl, const char *msg, void *opaque);
void log_set_sink(log_sink_fn fn, void *opaque);

void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Mute warnings and below on the calling thread while @on (nests), e.g. while
 * a configuration is validated only to see whether it would be accepted.
 */
void log_mute(bool on);

#define log_err(...)   log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

/*
 * A progress line that rewrites itself on a terminal ("\r"); silent when
 * stderr is not a terminal or the level is below info. log_progress_end()
 * finishes the line.
 */
bool log_progress_enabled(void);
void log_progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_progress_end(void);

#endif
