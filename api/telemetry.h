/*
 * Firecracker's logger and metrics for a hugevmm process: the logger sends
 * hugevmm's own log lines to a file or FIFO in Firecracker's line format; the
 * metrics sink gets one JSON object per line, on FlushMetrics and every 60 s,
 * with Firecracker's top-level groups where they apply and hugevmm's own
 * ("hugevmm": memory coverage, drift) beside them. Files and FIFOs are opened
 * non-blocking: a FIFO nobody reads loses lines (counted), never the VMM's time.
 */
#ifndef HUGEVMM_API_TELEMETRY_H
#define HUGEVMM_API_TELEMETRY_H

#include "api/routes.h"
#include "vmm/config.h"
#include "vmm/vmm.h"

#define API_METRICS_PERIOD_MS 60000

/*
 * Open @l->path (created 0600 when missing) and make it the log's target; set
 * the level. @field names the path's source in errors ("logger.log_path").
 */
int api_logger_apply(const struct cfg_logger *l, const char *field, struct vmm_err *e) must_check;

/* Open @mc->path as the metrics sink (replacing an earlier one). */
int api_metrics_apply(const struct cfg_metrics *mc, const char *field,
		      struct vmm_err *e) must_check;

/* Whether a metrics sink is open. */
bool api_metrics_enabled(void);

/* The instance id for metrics lines with emit_id. */
void api_metrics_set_id(const char *id);

/*
 * Arm the periodic flush on @m's loop (before vmm_run). @api_stats, when not
 * NULL, is read (relaxed) for the API groups: the server's own counters.
 */
void api_metrics_attach(struct vmm *m, const struct api_stats *api_stats);

/* Write one metrics line now from @vm's and the API's counters. 0, or -errno. */
int api_metrics_flush(const struct vmm_metrics *vm, const struct api_stats *st);

/* Close the sinks (process end). */
void api_telemetry_close(void);

#endif
