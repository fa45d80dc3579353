/*
 * The one logging sink. Nothing else in hugevmm writes to stderr.
 * Level from log_set_level() (CLI -q/-v) or HUGEVMM_LOG=err|warn|info|debug.
 */
#ifndef HUGEVMM_COMMON_LOG_H
#define HUGEVMM_COMMON_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum log_level {
	LOG_OFF = -1, /* as a level: nothing at all */
	LOG_ERR,
	LOG_WARN,
	LOG_INFO,
	LOG_DEBUG
};

void log_set_level(enum log_level lvl);

/*
 * A level by Firecracker's names, in any case (Error, Warning or Warn, Info, Debug,
 * Trace, Off; Trace is Debug here): 0 with *@out set, or -EINVAL.
 */
int log_level_from_name(const char *name, enum log_level *out);
enum log_level log_get_level(void);

/* Redirect messages (tests capture warnings); NULL restores stderr. */
typedef void (*log_sink_fn)(enum log_level lvl, const char *msg, void *opaque);
void log_set_sink(log_sink_fn fn, void *opaque);

void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_msg_at(enum log_level lvl, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/*
 * Firecracker's logger: lines go to @fd (a file or FIFO opened non-blocking;
 * the log owns it from now on) in Firecracker's format,
 *   <local time, ns> [<instance id>:<thread>[:<LEVEL>][:<file>:<line>]] <message>
 * instead of stderr; errors still go to stderr too. A line the fd cannot take
 * at once (a FIFO nobody reads) is dropped and counted, never waited for.
 * @fd < 0 returns to stderr.
 */
void log_set_target(int fd, bool show_level, bool show_origin);
/* The instance id in target lines ("anonymous-instance" until set). */
void log_set_instance_id(const char *id);
/* Lines the target could not take, and lines written to it. */
void log_target_counts(uint64_t *written, uint64_t *missed);

/*
 * Mute warnings and below on the calling thread while @on (nests), e.g. while
 * a configuration is validated only to see whether it would be accepted.
 */
void log_mute(bool on);

#define log_err(...)   log_msg_at(LOG_ERR, __FILE__, __LINE__, __VA_ARGS__)
#define log_warn(...)  log_msg_at(LOG_WARN, __FILE__, __LINE__, __VA_ARGS__)
#define log_info(...)  log_msg_at(LOG_INFO, __FILE__, __LINE__, __VA_ARGS__)
#define log_debug(...) log_msg_at(LOG_DEBUG, __FILE__, __LINE__, __VA_ARGS__)

/*
 * A progress line that rewrites itself on a terminal ("\r"); silent when
 * stderr is not a terminal or the level is below info. log_progress_end()
 * finishes the line.
 */
bool log_progress_enabled(void);
void log_progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_progress_end(void);

#endif
