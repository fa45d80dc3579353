#include "api/report_json.h"

#include <cJSON.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "common/uring.h"
#include "vmm/seccomp.h"

static void add_u64(cJSON *o, const char *k, uint64_t v)
{
	cJSON_AddNumberToObject(o, k, (double)v);
}

/* Coverage ratios are rounded to 6 decimals so reports read cleanly. */
static void add_ratio(cJSON *o, const char *k, double v)
{
	cJSON_AddNumberToObject(o, k, (double)(int64_t)(v * 1e6 + 0.5) / 1e6);
}

static double ms(uint64_t ns)
{
	return (double)(ns / 1000) / 1000.0;
}

static cJSON *host_cov(const struct mem_region *r)
{
	const struct mem_cov *c = &r->host;
	cJSON *h = cJSON_CreateObject();

	cJSON_AddStringToObject(h, "method", c->method ? c->method : "none");
	cJSON_AddBoolToObject(h, "known", c->known);
	if (!c->known) {
		static const char *const keys[] = {"bytes_4k", "bytes_2m", "bytes_1g",
						   "bytes_not_present", "coverage"};

		/* Unknown is null with a reason, never a zero that reads as "no huge pages". */
		for (unsigned i = 0; i < ARRAY_SIZE(keys); i++)
			cJSON_AddNullToObject(h, keys[i]);
		cJSON_AddStringToObject(h, "reason", c->reason);
		return h;
	}
	add_u64(h, "bytes_4k", c->bytes_4k);
	add_u64(h, "bytes_2m", c->bytes_2m);
	add_u64(h, "bytes_1g", c->bytes_1g);
	add_u64(h, "bytes_not_present", c->bytes_absent);
	add_ratio(h, "coverage", mem_cov_ratio(r));
	return h;
}

#define NO_DIRECT_DRIVE "no drive is direct"
#define NO_BALLOON      "no balloon: nothing is given back"

/* Whether the region is pinned as io_uring fixed buffers for the drives, and why not. */
static cJSON *uring_section(const struct mem_region *r)
{
	cJSON *u = cJSON_CreateObject();

	cJSON_AddBoolToObject(u, "registered", r->uring_registered);
	if (!r->uring_registered)
		cJSON_AddStringToObject(u, "reason", r->uring_why[0] ? r->uring_why : NO_DIRECT_DRIVE);
	return u;
}

static cJSON *region(const struct guest_mem *gm, const struct mem_region *r)
{
	cJSON *o = cJSON_CreateObject(), *slots = cJSON_CreateArray(), *pf, *col;

	cJSON_AddStringToObject(o, "id", r->cfg.id);
	cJSON_AddStringToObject(o, "backing", mem_backing_name(r->cfg.backing));
	cJSON_AddStringToObject(o, "page_size", page_size_name(r->page_size));
	add_u64(o, "size_bytes", r->size);
	if (r->cfg.path[0])
		cJSON_AddStringToObject(o, "path", r->cfg.path);
	if (r->cfg.device[0])
		cJSON_AddStringToObject(o, "device", r->cfg.device);
	if (r->cfg.backing == MEM_BACKING_FILE)
		cJSON_AddBoolToObject(o, "dax", r->on_dax);
	for (unsigned i = 0; i < r->nslots; i++) {
		const struct mem_slot *s = &gm->slots[r->first_slot + i];
		cJSON *so = cJSON_CreateObject();

		add_u64(so, "slot", s->id);
		add_u64(so, "guest_phys_addr", s->gpa);
		add_u64(so, "size_bytes", s->size);
		add_u64(so, "host_virt_addr", (uintptr_t)s->hva);
		cJSON_AddBoolToObject(so, "aligned", s->aligned);
		cJSON_AddItemToArray(slots, so);
	}
	cJSON_AddItemToObject(o, "slots", slots);
	cJSON_AddItemToObject(o, "host", host_cov(r));
	if (r->baseline) {
		cJSON *d = cJSON_AddObjectToObject(o, "drift");

		add_u64(d, "events", r->drift_events);
		add_u64(d, "huge_bytes_at_start", r->huge_at_start);
	}
	cJSON_AddStringToObject(o, "policy", mem_policy_name(r->cfg.policy));
	add_ratio(o, "min_coverage", r->cfg.min_coverage);
	cJSON_AddBoolToObject(o, "ok", r->verdict != MEM_VERDICT_FAIL);
	cJSON_AddStringToObject(o, "verdict", mem_verdict_name(r->verdict));
	if (r->verdict_msg[0])
		cJSON_AddStringToObject(o, "message", r->verdict_msg);

	pf = cJSON_AddObjectToObject(o, "prefault");
	cJSON_AddBoolToObject(pf, "enabled", r->cfg.prefault);
	add_u64(pf, "threads", r->prefault_threads_used);
	cJSON_AddNumberToObject(pf, "ms", ms(r->prefault_ns));
	if (r->collapse_tried) {
		col = cJSON_AddObjectToObject(o, "collapse");
		cJSON_AddNumberToObject(col, "gained_bytes", (double)r->collapse_gained);
	}
	cJSON_AddNumberToObject(o, "measure_ms", ms(r->measure_ns));
	cJSON_AddItemToObject(o, "io_uring", uring_section(r));
	/* What memory the guest gives back does here (memory/reclaim.h), and how much it is. */
	cJSON_AddStringToObject(o, "reclaim", mem_reclaim_cfg_name(r->cfg.reclaim));
	cJSON_AddStringToObject(o, "reclaim_why", r->reclaim_why[0] ? r->reclaim_why : NO_BALLOON);
	add_u64(o, "reclaimed_bytes", r->reclaimed_bytes);
	add_u64(o, "balloon_bytes", r->balloon_bytes);
	return o;
}

static cJSON *kvm_section(const struct hv_mmu_stats *kvm)
{
	cJSON *k = cJSON_CreateObject();

	cJSON_AddBoolToObject(k, "available", kvm && kvm->available);
	if (!kvm || !kvm->available) {
		cJSON_AddStringToObject(k, "reason", kvm ? kvm->reason : "no VM");
		return k;
	}
	add_u64(k, "pages_4k", kvm->pages_4k);
	add_u64(k, "pages_2m", kvm->pages_2m);
	add_u64(k, "pages_1g", kvm->pages_1g);
	return k;
}

cJSON *report_memory(const struct guest_mem *gm, const struct hv_mmu_stats *kvm)
{
	cJSON *o = cJSON_CreateObject(), *regs = cJSON_AddArrayToObject(o, "regions");
	double hc = mem_host_coverage(gm);

	for (unsigned i = 0; i < gm->nregions; i++)
		cJSON_AddItemToArray(regs, region(gm, &gm->regions[i]));
	if (hc < 0)
		cJSON_AddNullToObject(o, "host_coverage");
	else
		add_ratio(o, "host_coverage", hc);
	cJSON_AddItemToObject(o, "kvm", kvm_section(kvm));
	return o;
}

#define MAX_ADVICE 8

/* Memory advice (memory/host.c) and, when /dev/kvm is there but refused, its access. */
static unsigned host_advice_all(const struct host_mem_caps *mc, const struct hv_probe *hv,
				const struct mem_region_cfg *regions, unsigned n,
				struct host_advice *a)
{
	unsigned k = host_advise(mc, regions, n, a, MAX_ADVICE - 1);

	/* From the probe's own words (this may run on the confined API thread: no new calls). */
	if (!hv->present && strstr(hv->error, "Permission denied")) {
		memset(&a[k], 0, sizeof(a[k]));
		snprintf(a[k].setting, sizeof(a[k].setting), "/dev/kvm");
		snprintf(a[k].now, sizeof(a[k].now), "no access");
		snprintf(a[k].want, sizeof(a[k].want), "group kvm, 0660");
		snprintf(a[k].why, sizeof(a[k].why),
			 "hugevmm needs no root, only read-write access to /dev/kvm");
		snprintf(a[k].command, sizeof(a[k].command), "usermod -aG kvm %s",
			 getenv("USER") ? getenv("USER") : "$(id -un)");
		k++;
	}
	return k;
}

cJSON *report_host(const struct host_mem_caps *mc, const struct hv_probe *hv,
		   const struct mem_region_cfg *regions, unsigned n)
{
	struct host_advice adv[MAX_ADVICE];
	unsigned nadv = host_advice_all(mc, hv, regions, n, adv);
	cJSON *advice;
	cJSON *o = cJSON_CreateObject(), *thp, *pools, *dax, *k, *feat;

	cJSON_AddStringToObject(o, "kernel", mc->kernel);
	thp = cJSON_AddObjectToObject(o, "thp");
	cJSON_AddStringToObject(thp, "enabled", mc->thp_enabled);
	cJSON_AddStringToObject(thp, "defrag", mc->thp_defrag);
	cJSON_AddStringToObject(thp, "shmem_enabled", mc->shmem_enabled);
	if (mc->shmem_pmd_enabled[0])
		cJSON_AddStringToObject(thp, "shmem_enabled_2m", mc->shmem_pmd_enabled);

	pools = cJSON_AddArrayToObject(o, "hugetlb_pools");
	for (unsigned i = 0; i < ARRAY_SIZE(mc->pools); i++) {
		const struct host_pool *p = &mc->pools[i];
		cJSON *po;

		if (!p->present)
			continue;
		po = cJSON_CreateObject();
		cJSON_AddStringToObject(po, "page_size", page_size_name(p->page_size));
		add_u64(po, "total", p->nr);
		add_u64(po, "free", p->free);
		add_u64(po, "reserved", p->resv);
		add_u64(po, "surplus", p->surplus);
		cJSON_AddItemToArray(pools, po);
	}

	feat = cJSON_AddObjectToObject(o, "features");
	cJSON_AddBoolToObject(feat, "pagemap_scan", mc->pagemap_scan);
	cJSON_AddBoolToObject(feat, "madv_populate_write", mc->madv_populate_write);
	cJSON_AddBoolToObject(feat, "madv_collapse", mc->madv_collapse);

	dax = cJSON_AddArrayToObject(o, "dax_devices");
	for (unsigned i = 0; i < mc->ndax; i++) {
		cJSON *d = cJSON_CreateObject();

		cJSON_AddStringToObject(d, "name", mc->dax[i].name);
		add_u64(d, "size_bytes", mc->dax[i].size);
		cJSON_AddStringToObject(d, "align", page_size_name(mc->dax[i].align));
		cJSON_AddStringToObject(d, "mode",
					!mc->dax[i].enabled ? "disabled"
					: mc->dax[i].devdax ? "devdax"
							    : "system-ram");
		cJSON_AddItemToArray(dax, d);
	}
	if (mc->dax_error)
		cJSON_AddStringToObject(o, "dax_error", dax_lib_error(mc->dax_error));

	/* What root should set; hugevmm itself never changes a host setting. */
	advice = cJSON_AddArrayToObject(o, "advice");
	for (unsigned i = 0; i < nadv; i++) {
		cJSON *a = cJSON_CreateObject();

		cJSON_AddStringToObject(a, "setting", adv[i].setting);
		cJSON_AddStringToObject(a, "now", adv[i].now);
		cJSON_AddStringToObject(a, "set", adv[i].want);
		cJSON_AddStringToObject(a, "why", adv[i].why);
		cJSON_AddStringToObject(a, "command", adv[i].command);
		cJSON_AddItemToArray(advice, a);
	}

	k = cJSON_AddObjectToObject(o, "kvm");
	cJSON_AddStringToObject(k, "device", hv->device);
	cJSON_AddBoolToObject(k, "present", hv->present);
	if (!hv->present) {
		cJSON_AddStringToObject(k, "reason", hv->error);
		return o;
	}
	cJSON_AddNumberToObject(k, "api_version", hv->api_version);
	cJSON_AddStringToObject(k, "module", hv->flavour);
	cJSON_AddNumberToObject(k, "max_memslots", hv->max_memslots);
	cJSON_AddBoolToObject(k, "stats_fd", hv->stats_fd);
	cJSON_AddBoolToObject(k, "irqchip", hv->irqchip);
	return o;
}

cJSON *report_drive_metrics(const struct vm_drive_metrics *d, bool fc)
{
	cJSON *o = cJSON_CreateObject();

	if (!fc)
		cJSON_AddStringToObject(o, "drive_id", d->id);
	/* Firecracker's names */
	add_u64(o, "read_count", d->read_count);
	add_u64(o, "write_count", d->write_count);
	add_u64(o, "read_bytes", d->read_bytes);
	add_u64(o, "write_bytes", d->write_bytes);
	add_u64(o, "flush_count", d->flush_count);
	add_u64(o, "invalid_reqs_count", d->invalid_reqs_count);
	add_u64(o, fc ? "execute_fails" : "io_errors", d->io_errors);
	add_u64(o, "rate_limiter_throttled_events", d->rate_limiter_throttled_events);
	add_u64(o, "update_count", d->update_count);
	/* hugevmm's */
	add_u64(o, "discard_count", d->discard_count);
	add_u64(o, "write_zeroes_count", d->write_zeroes_count);
	add_u64(o, "get_id_count", d->get_id_count);
	add_u64(o, "fixed_count", d->fixed_count);
	add_u64(o, "fixed_fallbacks", d->fixed_fallbacks);
	add_u64(o, "inflight_max", d->inflight_max);
	return o;
}

void report_drive_metrics_sum(const struct vm_metrics *m, struct vm_drive_metrics *s)
{
	memset(s, 0, sizeof(*s));
	for (unsigned i = 0; i < m->ndrives && i < ARRAY_SIZE(m->drives); i++) {
		const struct vm_drive_metrics *d = &m->drives[i];

		s->read_count += d->read_count;
		s->write_count += d->write_count;
		s->read_bytes += d->read_bytes;
		s->write_bytes += d->write_bytes;
		s->flush_count += d->flush_count;
		s->discard_count += d->discard_count;
		s->write_zeroes_count += d->write_zeroes_count;
		s->get_id_count += d->get_id_count;
		s->invalid_reqs_count += d->invalid_reqs_count;
		s->io_errors += d->io_errors;
		s->rate_limiter_throttled_events += d->rate_limiter_throttled_events;
		s->fixed_count += d->fixed_count;
		s->fixed_fallbacks += d->fixed_fallbacks;
		s->update_count += d->update_count;
		s->inflight_max = MAX(s->inflight_max, d->inflight_max);
	}
}

/*
 * Counter structs that are only uint64_t counters (after an id, for vm_net_metrics): one
 * table of names and offsets per struct serves showing and summing, and a static assert
 * per table catches a counter added to the struct and not to the table.
 */
struct counter {
	const char *name;
	size_t off;
};
#define COUNTER(type, f) {#f, offsetof(struct type, f)}
#define COUNTERS_COVER(type, first, table)                                               \
	_Static_assert(sizeof(struct type) ==                                             \
			       offsetof(struct type, first) +                              \
				       ARRAY_SIZE(table) * sizeof(uint64_t),               \
		       #type " has a counter " #table "[] does not name")

static uint64_t counter_at(const void *base, const struct counter *c)
{
	return *(const uint64_t *)((const char *)base + c->off);
}

/* Each counter of @base under its name, into @o. */
static cJSON *add_counters(cJSON *o, const void *base, const struct counter *t, size_t n)
{
	for (size_t i = 0; i < n; i++)
		add_u64(o, t[i].name, counter_at(base, &t[i]));
	return o;
}

#define NET_COUNTER(f) COUNTER(vm_net_metrics, f)
static const struct counter net_counters[] = {
	NET_COUNTER(rx_packets_count),
	NET_COUNTER(rx_bytes_count),
	NET_COUNTER(rx_tap_event_count),
	NET_COUNTER(rx_queue_event_count),
	NET_COUNTER(no_rx_avail_buffer),
	NET_COUNTER(rx_rate_limiter_throttled),
	NET_COUNTER(rx_dropped_too_big),
	NET_COUNTER(tap_read_fails),
	NET_COUNTER(tx_packets_count),
	NET_COUNTER(tx_bytes_count),
	NET_COUNTER(tx_queue_event_count),
	NET_COUNTER(tx_rate_limiter_throttled),
	NET_COUNTER(tx_malformed_frames),
	NET_COUNTER(tx_malformed_header),
	NET_COUNTER(tx_malformed_size),
	NET_COUNTER(tx_malformed_offload),
	NET_COUNTER(tap_write_fails),
	NET_COUNTER(no_tx_avail_buffer),
};
COUNTERS_COVER(vm_net_metrics, rx_packets_count, net_counters);

cJSON *report_net_metrics(const struct vm_net_metrics *n, bool fc)
{
	cJSON *o = cJSON_CreateObject();

	if (!fc)
		cJSON_AddStringToObject(o, "iface_id", n->id);
	return add_counters(o, n, net_counters, ARRAY_SIZE(net_counters));
}

void report_net_metrics_sum(const struct vm_metrics *m, struct vm_net_metrics *s)
{
	memset(s, 0, sizeof(*s));
	for (unsigned k = 0; k < m->nnets && k < ARRAY_SIZE(m->nets); k++)
		for (unsigned i = 0; i < ARRAY_SIZE(net_counters); i++)
			*(uint64_t *)((char *)s + net_counters[i].off) +=
				counter_at(&m->nets[k], &net_counters[i]);
}

/* Firecracker's BalloonDeviceMetrics names first, then hugevmm's. */
#define BALLOON_COUNTER(f) COUNTER(balloon_counters, f)
static const struct counter balloon_dev_counters[] = {
	BALLOON_COUNTER(activate_fails),
	BALLOON_COUNTER(inflate_count),
	BALLOON_COUNTER(stats_updates_count),
	BALLOON_COUNTER(stats_update_fails),
	BALLOON_COUNTER(deflate_count),
	BALLOON_COUNTER(event_fails),
	BALLOON_COUNTER(pages_inflated),
	BALLOON_COUNTER(pages_deflated),
	BALLOON_COUNTER(reports),
	BALLOON_COUNTER(reported_bytes),
	BALLOON_COUNTER(rejected),
	BALLOON_COUNTER(deflate_waits),
};
COUNTERS_COVER(balloon_counters, activate_fails, balloon_dev_counters);

#define RECLAIM_COUNTER(f) COUNTER(mem_reclaim_stats, f)
static const struct counter reclaim_counters[] = {
	RECLAIM_COUNTER(discards_dontneed),
	RECLAIM_COUNTER(discards_punch),
	RECLAIM_COUNTER(huge_reclaimed),
	RECLAIM_COUNTER(returned),
	RECLAIM_COUNTER(avoided_4k),
	RECLAIM_COUNTER(refaults),
	RECLAIM_COUNTER(rejected),
	RECLAIM_COUNTER(repopulated),
	RECLAIM_COUNTER(repopulate_fails),
	RECLAIM_COUNTER(discard_errors),
};
COUNTERS_COVER(mem_reclaim_stats, discards_dontneed, reclaim_counters);

cJSON *report_balloon_metrics(const struct balloon_counters *b)
{
	return add_counters(cJSON_CreateObject(), b, balloon_dev_counters,
			    ARRAY_SIZE(balloon_dev_counters));
}

cJSON *report_reclaim_metrics(const struct mem_reclaim_stats *r)
{
	return add_counters(cJSON_CreateObject(), r, reclaim_counters,
			    ARRAY_SIZE(reclaim_counters));
}

#define VSOCK_COUNTER(f) COUNTER(vsock_counters, f)
static const struct counter vsock_all_counters[] = {
	/* Firecracker's names (vsock_fc_counters shows them, with its others)... */
	VSOCK_COUNTER(rx_queue_event_count),
	VSOCK_COUNTER(tx_queue_event_count),
	VSOCK_COUNTER(rx_bytes_count),
	VSOCK_COUNTER(tx_bytes_count),
	VSOCK_COUNTER(rx_packets_count),
	VSOCK_COUNTER(tx_packets_count),
	VSOCK_COUNTER(conns_added),
	VSOCK_COUNTER(conns_killed),
	VSOCK_COUNTER(conns_removed),
	VSOCK_COUNTER(rx_read_fails),
	VSOCK_COUNTER(tx_write_fails),
	/* ... then hugevmm's, from VSOCK_OWN_FIRST on. */
	VSOCK_COUNTER(conns_open),
	VSOCK_COUNTER(conns_host),
	VSOCK_COUNTER(conns_guest),
	VSOCK_COUNTER(refused_by_guest),
	VSOCK_COUNTER(refused_no_listener),
	VSOCK_COUNTER(bad_connect_lines),
	VSOCK_COUNTER(connect_timeouts),
	VSOCK_COUNTER(rst_by_guest),
	VSOCK_COUNTER(rst_host_gone),
	VSOCK_COUNTER(rst_credit),
	VSOCK_COUNTER(rst_malformed),
	VSOCK_COUNTER(rst_too_many),
	VSOCK_COUNTER(rst_unknown),
	VSOCK_COUNTER(late_packets),
	VSOCK_COUNTER(malformed_dropped),
	VSOCK_COUNTER(credit_updates_sent),
	VSOCK_COUNTER(credit_requests_seen),
	VSOCK_COUNTER(host_full),
	VSOCK_COUNTER(buffered_bytes),
	VSOCK_COUNTER(buffered_max),
};
COUNTERS_COVER(vsock_counters, rx_queue_event_count, vsock_all_counters);
#define VSOCK_OWN_FIRST 11 /* vsock_all_counters[] from conns_open on */
_Static_assert(offsetof(struct vsock_counters, conns_open) == VSOCK_OWN_FIRST * sizeof(uint64_t),
	       "vsock_counters: Firecracker's counters come first, then hugevmm's");

/*
 * Firecracker's VsockDeviceMetrics, every field in its order: a name struct
 * vsock_counters has no counter for (an event of Firecracker's device that hugevmm's does
 * not count) shows 0, as the balloon's activate_fails does.
 */
#define NO_COUNTER SIZE_MAX
static const struct counter vsock_fc_counters[] = {
	{"activate_fails", NO_COUNTER},
	{"cfg_fails", NO_COUNTER},
	{"rx_queue_event_fails", NO_COUNTER},
	{"tx_queue_event_fails", NO_COUNTER},
	{"ev_queue_event_fails", NO_COUNTER},
	{"muxer_event_fails", NO_COUNTER},
	{"conn_event_fails", NO_COUNTER},
	VSOCK_COUNTER(rx_queue_event_count),
	VSOCK_COUNTER(tx_queue_event_count),
	VSOCK_COUNTER(rx_bytes_count),
	VSOCK_COUNTER(tx_bytes_count),
	VSOCK_COUNTER(rx_packets_count),
	VSOCK_COUNTER(tx_packets_count),
	VSOCK_COUNTER(conns_added),
	VSOCK_COUNTER(conns_killed),
	VSOCK_COUNTER(conns_removed),
	{"killq_resync", NO_COUNTER},
	{"tx_flush_fails", NO_COUNTER},
	VSOCK_COUNTER(tx_write_fails),
	VSOCK_COUNTER(rx_read_fails),
};

cJSON *report_vsock_metrics(const struct vsock_counters *v, enum report_vsock which)
{
	cJSON *o = cJSON_CreateObject();

	if (which == REPORT_VSOCK_FC) {
		for (size_t i = 0; i < ARRAY_SIZE(vsock_fc_counters); i++)
			add_u64(o, vsock_fc_counters[i].name,
				vsock_fc_counters[i].off == NO_COUNTER
					? 0
					: counter_at(v, &vsock_fc_counters[i]));
		return o;
	}
	if (which == REPORT_VSOCK_OWN)
		return add_counters(o, v, vsock_all_counters + VSOCK_OWN_FIRST,
				    ARRAY_SIZE(vsock_all_counters) - VSOCK_OWN_FIRST);
	return add_counters(o, v, vsock_all_counters, ARRAY_SIZE(vsock_all_counters));
}

/* Firecracker's BalloonStats names, by the tag the guest reports each under. */
static const char *const balloon_stat_names[BALLOON_STAT_TAGS] = {
	"swap_in",             /* VIRTIO_BALLOON_S_SWAP_IN (0) */
	"swap_out",            /* S_SWAP_OUT */
	"major_faults",        /* S_MAJFLT */
	"minor_faults",        /* S_MINFLT */
	"free_memory",         /* S_MEMFREE */
	"total_memory",        /* S_MEMTOT */
	"available_memory",    /* S_AVAIL */
	"disk_caches",         /* S_CACHES */
	"hugetlb_allocations", /* S_HTLB_PGALLOC */
	"hugetlb_failures",    /* S_HTLB_PGFAIL (9) */
	"oom_kill",            /* S_OOM_KILL (10, Linux 6.12) */
	"alloc_stall",         /* S_ALLOC_STALL */
	"async_scan",          /* S_ASYNC_SCAN */
	"direct_scan",         /* S_DIRECT_SCAN */
	"async_reclaim",       /* S_ASYNC_RECLAIM */
	"direct_reclaim",      /* S_DIRECT_RECLAIM (15) */
};

void report_balloon_sizes(cJSON *o, const struct balloon_info *b)
{
	/* 4K pages; 256 of them make a MiB (Firecracker rounds down too). */
	add_u64(o, "target_pages", b->target_pages);
	add_u64(o, "actual_pages", b->actual_pages);
	add_u64(o, "target_mib", b->target_pages >> 8);
	add_u64(o, "actual_mib", b->actual_pages >> 8);
}

cJSON *report_balloon_stats(const struct balloon_info *b)
{
	cJSON *o = cJSON_CreateObject();

	report_balloon_sizes(o, b);
	/* A statistic the guest never reported is left out, as Firecracker does. */
	for (unsigned t = 0; t < BALLOON_STAT_TAGS; t++)
		if (b->gs.have & (1u << t))
			add_u64(o, balloon_stat_names[t], b->gs.val[t]);
	return o;
}

cJSON *report_seccomp(void)
{
	static const char *const sources[] = {
		[SC_SOURCE_DEFAULT] = "default", [SC_SOURCE_FILE] = "file", [SC_SOURCE_OFF] = "off"};
	cJSON *o = cJSON_CreateObject(), *t;
	unsigned restricted, plain;
	struct sc_status st;

	sc_status(&st);
	uring_counts(&restricted, &plain);
	cJSON_AddStringToObject(o, "source", sources[st.source]);
	if (st.source == SC_SOURCE_FILE && st.path)
		cJSON_AddStringToObject(o, "path", st.path);
	t = cJSON_AddObjectToObject(o, "threads");
	for (int i = 0; i < SC_NROLES; i++)
		add_u64(t, sc_role_name((enum sc_role)i), st.installed[i]);
	add_u64(o, "io_uring_restricted", restricted);
	add_u64(o, "io_uring_unrestricted", plain);
	return o;
}

int report_print(FILE *out, cJSON *j)
{
	char *s = j ? cJSON_Print(j) : NULL;
	int r = -1;

	if (s) {
		r = fprintf(out, "%s\n", s) < 0 ? -1 : 0;
		free(s);
	}
	cJSON_Delete(j);
	fflush(out);
	return r;
}

static double num(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsNumber(v) ? v->valuedouble : 0.0;
}

static const char *str(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsString(v) ? v->valuestring : "";
}

/* A bar of @width cells from a region's "host" object: 'G' 1G, 'M' 2M, 'k' 4K, '.' absent. */
static void bar(FILE *out, const cJSON *host, double size, unsigned width)
{
	static const char *const keys[] = {"bytes_1g", "bytes_2m", "bytes_4k", "bytes_not_present"};
	const char marks[] = {'G', 'M', 'k', '.'};
	unsigned cells[4], used = 0, biggest = 0;

	if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(host, "known"))) {
		fprintf(out, "[%-*s]", width, "  level unknown (see message)");
		return;
	}
	for (unsigned i = 0; i < 4; i++) {
		double part = num(host, keys[i]);

		cells[i] = size > 0 ? (unsigned)(part / size * width + 0.5) : 0;
		/* Any share at all gets at least one cell: a sliver must stay visible. */
		if (part > 0 && !cells[i])
			cells[i] = 1;
		used += cells[i];
		if (cells[i] > cells[biggest])
			biggest = i;
	}
	if (used != width)
		cells[biggest] = cells[biggest] + width - used;
	fputc('[', out);
	for (unsigned i = 0; i < 4; i++)
		for (unsigned n = 0; n < cells[i]; n++)
			fputc(marks[i], out);
	fputc(']', out);
}

/* The drives' io_uring registration, when a direct drive asked for it. */
static void uring_line(FILE *out, const cJSON *u)
{
	const char *why = str(u, "reason");

	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(u, "registered")))
		fprintf(out, "           io_uring: registered (pinned) for the direct drives\n");
	else if (why[0] && strcmp(why, NO_DIRECT_DRIVE))
		fprintf(out, "           io_uring: not registered: %s\n", why);
}

/* What the guest gave back through its balloon, when it gave anything. */
static void reclaim_line(FILE *out, const cJSON *r)
{
	uint64_t back = (uint64_t)num(r, "reclaimed_bytes");
	uint64_t kept = (uint64_t)num(r, "balloon_bytes");
	char a[32], b[32];

	if (!back && !kept)
		return;
	fmt_bytes(a, sizeof(a), back);
	fmt_bytes(b, sizeof(b), kept);
	fprintf(out,
		"           reclaim (%s): %s given back to the host, %s in the balloon not given "
		"back\n",
		str(r, "reclaim"), a, b);
}

void report_memory_human_json(FILE *out, const cJSON *rep)
{
	const cJSON *regs = cJSON_GetObjectItemCaseSensitive(rep, "regions"), *r;
	const cJSON *hc = cJSON_GetObjectItemCaseSensitive(rep, "host_coverage");
	const cJSON *kvm = cJSON_GetObjectItemCaseSensitive(rep, "kvm");

	fprintf(out, "%-10s %-8s %-4s %10s  %-42s %8s  %s\n", "REGION", "BACKING", "PAGE", "SIZE",
		"HOST MAPPING (G=1G M=2M k=4K .=absent)", "HUGE", "POLICY");
	cJSON_ArrayForEach(r, regs)
	{
		const cJSON *host = cJSON_GetObjectItemCaseSensitive(r, "host"), *sl;
		double size = num(r, "size_bytes");
		char sz[32], cov[16];

		fmt_bytes(sz, sizeof(sz), (uint64_t)size);
		if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(host, "known")))
			snprintf(cov, sizeof(cov), "%.1f%%", num(host, "coverage") * 100.0);
		else
			snprintf(cov, sizeof(cov), "unknown");
		fprintf(out, "%-10s %-8s %-4s %10s  ", str(r, "id"), str(r, "backing"),
			str(r, "page_size"), sz);
		bar(out, host, size, 40);
		fprintf(out, " %8s  %s>=%.2f %s\n", cov, str(r, "policy"), num(r, "min_coverage"),
			str(r, "verdict"));
		cJSON_ArrayForEach(sl, cJSON_GetObjectItemCaseSensitive(r, "slots"))
		{
			uint64_t gpa = (uint64_t)num(sl, "guest_phys_addr");

			fprintf(out, "           slot %u: guest 0x%llx-0x%llx  host 0x%llx  %s\n",
				(unsigned)num(sl, "slot"), (unsigned long long)gpa,
				(unsigned long long)(gpa + (uint64_t)num(sl, "size_bytes") - 1),
				(unsigned long long)num(sl, "host_virt_addr"),
				cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(sl, "aligned"))
					? "aligned"
					: "MISALIGNED");
		}
		if (str(r, "message")[0])
			fprintf(out, "           %s\n", str(r, "message"));
		uring_line(out, cJSON_GetObjectItemCaseSensitive(r, "io_uring"));
		reclaim_line(out, r);
	}
	if (cJSON_IsNumber(hc))
		fprintf(out, "host coverage: %.1f%%\n", hc->valuedouble * 100.0);
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(kvm, "available")))
		fprintf(out, "kvm: pages_4k=%.0f pages_2m=%.0f pages_1g=%.0f\n",
			num(kvm, "pages_4k"), num(kvm, "pages_2m"), num(kvm, "pages_1g"));
	else
		fprintf(out, "kvm: unavailable (%s)\n", str(kvm, "reason"));
}

void report_memory_human(FILE *out, const struct guest_mem *gm, const struct hv_mmu_stats *kvm)
{
	/* One renderer: through the JSON report, as `hugevmm status` sees it. */
	cJSON *rep = report_memory(gm, kvm);

	report_memory_human_json(out, rep);
	cJSON_Delete(rep);
}

void report_host_human(FILE *out, const struct host_mem_caps *mc, const struct hv_probe *hv,
		       const struct mem_region_cfg *regions, unsigned n)
{
	struct host_advice adv[MAX_ADVICE];
	unsigned nadv = host_advice_all(mc, hv, regions, n, adv);

	fprintf(out, "kernel          %s\n", mc->kernel);
	fprintf(out, "thp             enabled=%s defrag=%s shmem_enabled=%s%s%s\n",
		mc->thp_enabled[0] ? mc->thp_enabled : "(absent)", mc->thp_defrag,
		mc->shmem_enabled, mc->shmem_pmd_enabled[0] ? " shmem_enabled_2m=" : "",
		mc->shmem_pmd_enabled);
	for (unsigned i = 0; i < ARRAY_SIZE(mc->pools); i++) {
		const struct host_pool *p = &mc->pools[i];

		if (p->present)
			fprintf(out,
				"hugetlb %-7s total=%llu free=%llu reserved=%llu surplus=%llu\n",
				page_size_name(p->page_size), (unsigned long long)p->nr,
				(unsigned long long)p->free, (unsigned long long)p->resv,
				(unsigned long long)p->surplus);
	}
	fprintf(out, "features        pagemap_scan=%s madv_populate_write=%s madv_collapse=%s\n",
		mc->pagemap_scan ? "yes" : "no", mc->madv_populate_write ? "yes" : "no",
		mc->madv_collapse ? "yes" : "no");
	if (!mc->ndax)
		fprintf(out, "dax             none\n");
	for (unsigned i = 0; i < mc->ndax; i++)
		fprintf(out, "dax             %s size=%llu align=%s %s\n", mc->dax[i].name,
			(unsigned long long)mc->dax[i].size, page_size_name(mc->dax[i].align),
			mc->dax[i].devdax ? "devdax" : "not-devdax");
	if (hv->present)
		fprintf(out, "kvm             %s api=%d module=%s memslots=%d stats_fd=%s\n",
			hv->device, hv->api_version, hv->flavour, hv->max_memslots,
			hv->stats_fd ? "yes" : "no");
	else
		fprintf(out, "kvm             absent: %s\n", hv->error);
	for (unsigned i = 0; i < nadv; i++)
		fprintf(out, "to set (root)   %s  # %s is %s: %s\n", adv[i].command, adv[i].setting,
			adv[i].now, adv[i].why);
}
