/*
 * Reports as JSON (cJSON) and as a human view: the memory coverage report
 * (the contract shared by `hugevmm check` and GET /memory) and the host
 * capability probe (`hugevmm host`, GET /host).
 */
#ifndef HUGEVMM_API_REPORT_JSON_H
#define HUGEVMM_API_REPORT_JSON_H

#include <stdio.h>

#include "memory/host.h"
#include "memory/mem.h"
#include "vmm/hv.h"
#include "vmm/vm.h"

struct cJSON;

/* The coverage report of @gm, with the secondary-MMU section @kvm. */
struct cJSON *report_memory(const struct guest_mem *gm, const struct hv_mmu_stats *kvm);

/* The host probe. */
/*
 * The host probe, with "advice": what root should set for guest memory (for
 * @regions when given, finalized; else for the backings in general) and for
 * /dev/kvm access. hugevmm never sets them itself.
 */
struct cJSON *report_host(const struct host_mem_caps *mc, const struct hv_probe *hv,
			  const struct mem_region_cfg *regions, unsigned n);

/* One bar per region: 1G / 2M / 4K / absent shares, verdict. */
void report_memory_human(FILE *out, const struct guest_mem *gm, const struct hv_mmu_stats *kvm);

/* The same from a coverage report in JSON (what GET /memory returns). */
void report_memory_human_json(FILE *out, const struct cJSON *report);

void report_host_human(FILE *out, const struct host_mem_caps *mc, const struct hv_probe *hv,
		       const struct mem_region_cfg *regions, unsigned n);

/*
 * One drive's counters as an object: Firecracker's BlockDeviceMetrics names
 * where it has them (read_count, write_bytes, flush_count, ...) and
 * hugevmm's own beside them. @fc: the shape of Firecracker's block_<id>
 * group (host I/O failures are its execute_fails); otherwise hugevmm's
 * /metrics entry (drive_id first, host I/O failures as io_errors).
 */
struct cJSON *report_drive_metrics(const struct vm_drive_metrics *d, bool fc);

/* Every drive's counters summed into @sum (inflight_max: the largest), id "". */
void report_drive_metrics_sum(const struct vm_metrics *m, struct vm_drive_metrics *sum);

/*
 * One network interface's counters as an object, each under its vm_net_metrics name (the
 * names of Firecracker's NetDeviceMetrics where it has them). @fc: the shape of
 * Firecracker's net_<iface_id> group; otherwise hugevmm's /metrics entry (iface_id first).
 */
struct cJSON *report_net_metrics(const struct vm_net_metrics *n, bool fc);

/* Every interface's counters summed into @sum (Firecracker's "net" group), id "". */
void report_net_metrics_sum(const struct vm_metrics *m, struct vm_net_metrics *sum);

/*
 * The balloon's counters (Firecracker's BalloonDeviceMetrics names, then hugevmm's) and
 * reclaim's, each under its field's name: the "balloon" and "reclaim" metrics groups.
 */
struct cJSON *report_balloon_metrics(const struct balloon_counters *b);
struct cJSON *report_reclaim_metrics(const struct mem_reclaim_stats *r);

/* Which of the vsock's counters report_vsock_metrics shows. */
enum report_vsock {
	REPORT_VSOCK_ALL, /* every vsock_counters field under its name: /metrics' "vsock" */
	REPORT_VSOCK_FC,  /* Firecracker's VsockDeviceMetrics, all of it, in its order: those
			     hugevmm has no event for are 0 (its metrics line's "vsock") */
	REPORT_VSOCK_OWN, /* hugevmm's counters beyond Firecracker's (the line's hugevmm.vsock) */
};
struct cJSON *report_vsock_metrics(const struct vsock_counters *v, enum report_vsock which);

/* target_pages, actual_pages, target_mib, actual_mib of @b into @o. */
void report_balloon_sizes(struct cJSON *o, const struct balloon_info *b);

/* Firecracker's BalloonStats: the sizes, then each statistic the guest reported. */
struct cJSON *report_balloon_stats(const struct balloon_info *b);

/*
 * Confinement, as GET / and the metrics line's hugevmm group show it: the
 * seccomp policy's "source" (default, file, off) and "path" (a file's), the
 * "threads" of each role that installed their filter, and how many io_uring
 * rings are open "io_uring_restricted" (IORING_REGISTER_RESTRICTIONS) and
 * "io_uring_unrestricted".
 */
struct cJSON *report_seccomp(void);

/* Print @j to @out (pretty), newline-terminated, and free it. */
int report_print(FILE *out, struct cJSON *j);

#endif
