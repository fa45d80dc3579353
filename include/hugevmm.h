/*
 * hugevmm in-process: the operations of the control API as C calls, for
 * programs that embed a VM instead of driving the hugevmm process. Link with
 * libhugevmm.a (and its libraries: -lcjson -luring -lhttp_parser -ldl
 * -lpthread -lm). Not thread-safe per handle: call one function at a time.
 *
 * Return values: 0 on success, otherwise hugevmm's exit code for the failure
 * (1 runtime, 2 bad input, 3 memory policy), with hugevmm_error() saying why.
 */
#ifndef HUGEVMM_H
#define HUGEVMM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

struct hugevmm;

/*
 * A VM configured by @config_json (the --config-file schema, @len bytes).
 * Nothing runs yet. NULL on failure, with *@err a malloc'd message (free it).
 */
struct hugevmm *hugevmm_create(const char *config_json, size_t len, char **err);

/* Map and verify memory, boot the guest; the VM then runs on hugevmm's own threads. */
int hugevmm_start(struct hugevmm *h);

/* Stop the vCPUs (they have left the guest when this returns), or let them go on. */
int hugevmm_pause(struct hugevmm *h);
int hugevmm_resume(struct hugevmm *h);

/* Ask the VM to stop; hugevmm_wait() then returns. */
int hugevmm_stop(struct hugevmm *h);

/*
 * Wait until the VM has stopped (the guest exited or reset, or hugevmm_stop)
 * and return the exit status hugevmm would: the guest's debug-exit code, 0
 * for a reset or a stop, 1 for a fatal vCPU exit.
 */
int hugevmm_wait(struct hugevmm *h);

/*
 * The memory coverage report, measured now, as JSON (the shape of GET
 * /memory). malloc'd: free() it. NULL on failure (see hugevmm_error).
 */
char *hugevmm_memory_report(struct hugevmm *h);

/* Why the last call failed. */
const char *hugevmm_error(const struct hugevmm *h);

/* Stop the VM if it runs, wait for it, release everything. NULL is fine. */
void hugevmm_destroy(struct hugevmm *h);

#ifdef __cplusplus
}
#endif

#endif
