/*
 * hugevmm in-process: the operations of the control API as C calls, for
 * programs that embed a VM instead of driving the hugevmm process. Build with
 * `pkg-config --cflags --libs hugevmm` (libhugevmm.so; README's "Embedding"
 * shows the static link). Only the hugevmm_* names below are exported. Not
 * thread-safe per handle: call one function at a time.
 *
 * Return values: 0 on success, otherwise hugevmm's exit code for the failure
 * (1 runtime, 2 bad input, 3 memory policy), with hugevmm_error() saying why.
 */
#ifndef HUGEVMM_H
#define HUGEVMM_H

#include <stddef.h>

/* The version of this header; hugevmm_version() is the library's. */
#define HUGEVMM_VERSION_MAJOR 0
#define HUGEVMM_VERSION_MINOR 1
#define HUGEVMM_VERSION_PATCH 0
/* Spelled out, not built from the numbers: the Makefile passes the same -DHUGEVMM_VERSION. */
#define HUGEVMM_VERSION "0.1.0"

/* The exported API (the library is built with -fvisibility=hidden). */
#if defined(__GNUC__)
#define HUGEVMM_API __attribute__((visibility("default")))
#else
#define HUGEVMM_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

struct hugevmm;

/* The library's version, "MAJOR.MINOR.PATCH" (HUGEVMM_VERSION when it was built). */
HUGEVMM_API const char *hugevmm_version(void);

/*
 * A VM configured by @config_json (the --config-file schema, @len bytes).
 * Nothing runs yet. NULL on failure, with *@err a malloc'd message (free it).
 */
HUGEVMM_API struct hugevmm *hugevmm_create(const char *config_json, size_t len, char **err);

/*
 * Send the guest's console output (the UART, ttyS0) to @fd instead of stdout
 * or the config's serial.serial_out_path. hugevmm writes to its own duplicate
 * of @fd, closed when hugevmm_wait() returns: the caller may close @fd after
 * this call. Call before hugevmm_start; a later call (of this or the next
 * function) replaces an earlier one; -1 goes back to the default.
 */
HUGEVMM_API int hugevmm_set_console_fd(struct hugevmm *h, int fd);

/*
 * Or hand the console output to @cb instead: it is called on a thread of
 * hugevmm's with each chunk of output as it comes (not NUL-terminated), the
 * last time before hugevmm_wait() returns. Call before hugevmm_start; NULL
 * goes back to the default.
 */
typedef void (*hugevmm_console_cb)(void *arg, const char *data, size_t len);
HUGEVMM_API int hugevmm_set_console_callback(struct hugevmm *h, hugevmm_console_cb cb, void *arg);

/* Map and verify memory, boot the guest; the VM then runs on hugevmm's own threads. */
HUGEVMM_API int hugevmm_start(struct hugevmm *h);

/* Stop the vCPUs (they have left the guest when this returns), or let them go on. */
HUGEVMM_API int hugevmm_pause(struct hugevmm *h);
HUGEVMM_API int hugevmm_resume(struct hugevmm *h);

/* Ask the VM to stop; hugevmm_wait() then returns. */
HUGEVMM_API int hugevmm_stop(struct hugevmm *h);

/*
 * Wait until the VM has stopped (the guest exited or reset, or hugevmm_stop)
 * and return the exit status hugevmm would: the guest's debug-exit code, 0
 * for a reset or a stop, 1 for a fatal vCPU exit.
 */
HUGEVMM_API int hugevmm_wait(struct hugevmm *h);

/*
 * The memory coverage report, measured now, as JSON (the shape of GET
 * /memory). malloc'd: free() it. NULL on failure (see hugevmm_error).
 */
HUGEVMM_API char *hugevmm_memory_report(struct hugevmm *h);

/* Why the last call failed. */
HUGEVMM_API const char *hugevmm_error(const struct hugevmm *h);

/* Stop the VM if it runs, wait for it, release everything. NULL is fine. */
HUGEVMM_API void hugevmm_destroy(struct hugevmm *h);

#ifdef __cplusplus
}
#endif

#endif
