#include "vmm/vmm.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "common/log.h"
#include "vmm/config_drive.h"
#include "memory/dax.h"
#include "vmm/seccomp.h"

struct vmm {
	struct vmm_opts opts;
	char id[64];
	struct evloop *loop;
	struct vm_config *cfg; /* the pre-boot configuration, as given (not finalized) */
	struct vm *vm;
	enum vmm_state state;
	uint64_t t0;

	/* Submitted commands: any thread pushes, the loop pops. */
	pthread_mutex_t qlock;
	struct vmm_cmd *qhead, *qtail;
	int qfd; /* eventfd: commands are waiting */
	bool closed;

	int sfd; /* signalfd, -1 without signals */
	struct ev_handle *w_queue, *w_signal;
	atomic_bool quit;
	int quit_status;

	uint64_t commands, command_errors, measurements;

	/* vmm_every: one periodic callback (the metrics flush). */
	struct ev_handle *w_every;
	uint64_t every_ms;
	void (*every_fn)(void *arg, int res);
	void *every_arg;
};

static const char *const state_names[] = {
	[VMM_NOT_STARTED] = "Not started",
	[VMM_RUNNING] = "Running",
	[VMM_PAUSED] = "Paused",
	[VMM_STOPPED] = "Stopped",
};

const char *vmm_state_name(enum vmm_state s)
{
	return (unsigned)s < ARRAY_SIZE(state_names) ? state_names[s] : "?";
}

struct vmm_cmd *vmm_cmd_new(enum vmm_op op)
{
	struct vmm_cmd *c = calloc(1, sizeof(*c));

	if (c)
		c->op = op;
	return c;
}

void vmm_cmd_free(struct vmm_cmd *c)
{
	if (!c)
		return;
	free(c->config);
	free(c->memory);
	free(c);
}

/* ---- the loop's own event sources ---- */

static void wake(struct vmm *m)
{
	efd_signal(m->qfd, "vmm");
}

static void on_vm_stop(void *arg)
{
	struct vmm *m = arg;

	atomic_store(&m->quit, true);
}

static void on_signal(void *arg, int res)
{
	struct vmm *m = arg;
	struct signalfd_siginfo si;

	(void)res;
	if (read(m->sfd, &si, sizeof(si)) != (ssize_t)sizeof(si))
		return;
	log_info("signal %u: stopping%s", si.ssi_signo, m->vm ? " the VM" : "");
	if (m->vm)
		vm_stop_signal(m->vm);
	else
		vmm_quit(m, 0);
}

static void on_queue(void *arg, int res);

const struct sc_policy *vmm_seccomp(const struct vmm *m)
{
	return m->opts.seccomp;
}

int vmm_create(struct vmm **out, const struct vmm_opts *o, struct vmm_err *e)
{
	struct vmm *m = calloc(1, sizeof(*m));
	sigset_t set;
	int r;

	if (!m)
		return err_set(e, ERR_RUNTIME, -ENOMEM, "out of memory");
	m->opts = *o;
	m->sfd = -1;
	m->qfd = -1;
	m->t0 = now_ns();
	snprintf(m->id, sizeof(m->id), "%s", o->id ? o->id : "");
	if (!m->id[0])
		snprintf(m->id, sizeof(m->id), "hugevmm-%d", (int)getpid());
	pthread_mutex_init(&m->qlock, NULL);
	m->cfg = calloc(1, sizeof(*m->cfg));
	m->qfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (!m->cfg || m->qfd < 0) {
		r = err_set(e, ERR_RUNTIME, -ENOMEM, "vmm: out of memory or eventfds");
		goto fail;
	}
	vm_config_defaults(m->cfg); /* calloc'ed: already zero */
	r = evloop_create(&m->loop, e);
	if (r)
		goto fail;
	m->w_queue = evloop_watch(m->loop, m->qfd, POLLIN, on_queue, m);
	if (!m->w_queue) {
		r = err_set(e, ERR_RUNTIME, -ENOMEM, "vmm: cannot watch the command queue");
		goto fail;
	}
	if (o->signals) {
		sigemptyset(&set);
		sigaddset(&set, SIGINT);
		sigaddset(&set, SIGTERM);
		/* Block only with a signalfd in hand: blocked signals without it never arrive. */
		m->sfd = signalfd(-1, &set, SFD_CLOEXEC);
		if (m->sfd < 0) {
			r = err_set(e, ERR_RUNTIME, -errno, "signalfd: %s", strerror(errno));
			goto fail;
		}
		pthread_sigmask(SIG_BLOCK, &set, NULL);
		m->w_signal = evloop_watch(m->loop, m->sfd, POLLIN, on_signal, m);
	}
	*out = m;
	return 0;
fail:
	vmm_destroy(m);
	return r;
}

void vmm_configure(struct vmm *m, const struct vm_config *cfg)
{
	vm_config_copy(m->cfg, cfg);
}

/* ---- commands ---- */

static int refuse(struct vmm_cmd *c, const char *fmt, const char *what)
{
	return err_set(&c->err, ERR_CONFIG, -EINVAL, fmt, what);
}

/* Pre-boot only: the configuration can no longer change once the VM runs. */
static int pre_boot(struct vmm *m, struct vmm_cmd *c, const char *what)
{
	if (m->state == VMM_NOT_STARTED)
		return 0;
	return refuse(c, "%s: the VM has started; it can only be set before InstanceStart", what);
}

/*
 * Apply a change to a copy of the configuration and keep it only if the
 * result still validates (every error then names its field at once, not at
 * InstanceStart).
 */
static void apply(struct vmm *m, struct vmm_cmd *c,
		  void (*change)(struct vm_config *, struct vmm_cmd *))
{
	struct vm_config *t = malloc(sizeof(*t));

	if (!t) {
		err_set(&c->err, ERR_RUNTIME, -ENOMEM, "out of memory");
		return;
	}
	vm_config_copy(t, m->cfg);
	change(t, c);
	if (c->err.kind == ERR_NONE) {
		struct vm_config *v = malloc(sizeof(*v));

		if (!v) {
			err_set(&c->err, ERR_RUNTIME, -ENOMEM, "out of memory");
		} else {
			vm_config_copy(v, t);
			/* A trial: its warnings come once, at InstanceStart. */
			log_mute(true);
			if (!vm_config_finalize(v, false, &c->err) &&
			    !vm_config_check_files(v, &c->err))
				vm_config_copy(m->cfg, t);
			log_mute(false);
			free(v);
		}
	}
	free(t);
}

static void change_machine(struct vm_config *t, struct vmm_cmd *c)
{
	const struct vmm_machine *in = &c->in.machine;

	if (c->op == VMM_OP_PUT_MACHINE) {
		/* PUT: what is not given returns to its default (Firecracker's semantics). */
		t->vcpus = 1;
		t->mem_size_mib = 0;
		t->huge_pages = CFG_HUGE_UNSET;
	}
	if (in->has_vcpus)
		t->vcpus = in->vcpus;
	if (in->has_mem)
		t->mem_size_mib = in->mem_mib;
	if (in->has_huge)
		t->huge_pages = in->huge;
	if (in->has_virtio_cmdline)
		t->virtio_cmdline = in->virtio_cmdline;
}

static void change_entropy(struct vm_config *t, struct vmm_cmd *c)
{
	t->entropy = c->in.entropy;
}

static void change_boot(struct vm_config *t, struct vmm_cmd *c)
{
	t->has_boot = true;
	snprintf(t->kernel, sizeof(t->kernel), "%s", c->in.boot.kernel);
	snprintf(t->initrd, sizeof(t->initrd), "%s", c->in.boot.initrd);
	snprintf(t->cmdline, sizeof(t->cmdline), "%s", c->in.boot.cmdline);
}

static void change_drive(struct vm_config *t, struct vmm_cmd *c)
{
	unsigned i = 0;

	while (i < t->ndrives && strcmp(t->drives[i].id, c->in.drive.id))
		i++;
	if (i == CFG_MAX_DRIVES) {
		err_set(&c->err, ERR_CONFIG, -E2BIG,
			"drives: \"%s\" would be drive %d; at most %d (" CFG_DRIVES_WHY ")",
			c->in.drive.id, CFG_MAX_DRIVES + 1, CFG_MAX_DRIVES);
		return;
	}
	t->drives[i] = c->in.drive;
	if (i == t->ndrives)
		t->ndrives++;
}

/* The drive of @id in @cfg, or NULL with @c's error naming the id. */
static struct cfg_drive *drive_of(struct vm_config *cfg, struct vmm_cmd *c, const char *id,
				  bool booted)
{
	for (unsigned i = 0; i < cfg->ndrives; i++)
		if (!strcmp(cfg->drives[i].id, id))
			return &cfg->drives[i];
	err_set(&c->err, ERR_CONFIG, -ENOENT,
		"drives: no drive has drive_id \"%s\"; %s", id,
		booted ? "PATCH changes a drive the VM was started with"
		       : "PUT /drives/{id} adds one before InstanceStart");
	return NULL;
}

/* Firecracker's rate-limiter update: the buckets given replace the old ones, the rest stay. */
static void rl_update(struct rl_cfg *old, const struct rl_cfg *in)
{
	if (in->has_bandwidth)
		old->bandwidth = in->bandwidth;
	if (in->has_ops)
		old->ops = in->ops;
	/* A bucket of size 0 or refill_time 0 limits nothing: it is gone, as in Firecracker. */
	old->has_bandwidth = old->has_bandwidth || in->has_bandwidth;
	old->has_ops = old->has_ops || in->has_ops;
	if (old->has_bandwidth && (!old->bandwidth.size || !old->bandwidth.refill_time_ms)) {
		old->has_bandwidth = false;
		memset(&old->bandwidth, 0, sizeof(old->bandwidth));
	}
	if (old->has_ops && (!old->ops.size || !old->ops.refill_time_ms)) {
		old->has_ops = false;
		memset(&old->ops, 0, sizeof(old->ops));
	}
	old->set = old->has_bandwidth || old->has_ops;
}

static void change_drive_patch(struct vm_config *t, struct vmm_cmd *c)
{
	const struct vmm_drive_patch *in = &c->in.drive_patch;
	struct cfg_drive *d = drive_of(t, c, in->id, false);

	if (!d)
		return;
	if (in->has_path)
		snprintf(d->path, sizeof(d->path), "%s", in->path);
	if (in->has_rate_limiter)
		rl_update(&d->rate_limiter, &in->rate_limiter);
}

/*
 * After boot: the device takes the new file and limits first (it checks and
 * locks the file as at start, and changes nothing on error); only then does
 * the configuration, so GET /vm/config shows what the guest has.
 */
static void patch_running_drive(struct vmm *m, struct vmm_cmd *c)
{
	const struct vmm_drive_patch *in = &c->in.drive_patch;
	struct cfg_drive *d = drive_of(m->cfg, c, in->id, true), nd;
	char field[96];

	if (!d)
		return;
	nd = *d;
	if (in->has_path) {
		snprintf(nd.path, sizeof(nd.path), "%s", in->path);
		snprintf(field, sizeof(field), "drives[%u].path_on_host", (unsigned)(d - m->cfg->drives));
		if (vm_config_check_drive(field, &nd, &c->err))
			return;
	}
	if (in->has_rate_limiter)
		rl_update(&nd.rate_limiter, &in->rate_limiter);
	if (!in->has_path && !in->has_rate_limiter)
		return;
	if (vm_drive_update(m->vm, in->id, in->has_path ? nd.path : NULL,
			    in->has_rate_limiter ? &nd.rate_limiter : NULL, &c->err))
		return;
	*d = nd;
}

/* The interface of @id in @cfg, or NULL with @c's error naming the id. */
static struct cfg_net *net_of(struct vm_config *cfg, struct vmm_cmd *c, const char *id,
			      bool booted)
{
	for (unsigned i = 0; i < cfg->nnets; i++)
		if (!strcmp(cfg->nets[i].id, id))
			return &cfg->nets[i];
	err_set(&c->err, ERR_CONFIG, -ENOENT,
		"network-interfaces: no interface has iface_id \"%s\"; %s", id,
		booted ? "PATCH changes an interface the VM was started with"
		       : "PUT /network-interfaces/{id} adds one before InstanceStart");
	return NULL;
}

static void change_net_patch(struct vm_config *t, struct vmm_cmd *c)
{
	const struct vmm_net_patch *in = &c->in.net_patch;
	struct cfg_net *n = net_of(t, c, in->id, false);

	if (!n)
		return;
	if (in->has_rx)
		rl_update(&n->rx_rate_limiter, &in->rx_rate_limiter);
	if (in->has_tx)
		rl_update(&n->tx_rate_limiter, &in->tx_rate_limiter);
}

/* After boot: the device takes the new limits first, then the configuration (as for drives). */
static void patch_running_net(struct vmm *m, struct vmm_cmd *c)
{
	const struct vmm_net_patch *in = &c->in.net_patch;
	struct cfg_net *n = net_of(m->cfg, c, in->id, true), nn;

	if (!n)
		return;
	nn = *n;
	if (in->has_rx)
		rl_update(&nn.rx_rate_limiter, &in->rx_rate_limiter);
	if (in->has_tx)
		rl_update(&nn.tx_rate_limiter, &in->tx_rate_limiter);
	if (!in->has_rx && !in->has_tx)
		return;
	if (vm_net_update(m->vm, in->id, in->has_rx ? &nn.rx_rate_limiter : NULL,
			  in->has_tx ? &nn.tx_rate_limiter : NULL, &c->err))
		return;
	*n = nn;
}

/*
 * PATCH of a device (Firecracker's Partial*): before boot a change to the configuration,
 * after it (running or paused) to the device and then the configuration.
 */
static void patch_device(struct vmm *m, struct vmm_cmd *c, const char *what,
			 void (*change)(struct vm_config *, struct vmm_cmd *),
			 void (*running)(struct vmm *, struct vmm_cmd *))
{
	if (m->state == VMM_NOT_STARTED)
		apply(m, c, change);
	else if (m->state == VMM_STOPPED || !m->vm)
		refuse(c, "%s: the VM has stopped", what);
	else
		running(m, c);
}

static void change_net(struct vm_config *t, struct vmm_cmd *c)
{
	unsigned i = 0;

	while (i < t->nnets && strcmp(t->nets[i].id, c->in.net.id))
		i++;
	if (i == CFG_MAX_NETS) {
		err_set(&c->err, ERR_CONFIG, -E2BIG, "network-interfaces: at most %d",
			CFG_MAX_NETS);
		return;
	}
	t->nets[i] = c->in.net;
	if (i == t->nnets)
		t->nnets++;
}

static void change_region(struct vm_config *t, struct vmm_cmd *c)
{
	unsigned i = 0;

	if (!t->has_memory)
		t->nregions = 0; /* regions given now replace RAM from machine-config */
	while (i < t->nregions && strcmp(t->regions[i].id, c->in.region.id))
		i++;
	if (i == MEM_MAX_REGIONS) {
		err_set(&c->err, ERR_CONFIG, -E2BIG, "memory.regions: at most %d", MEM_MAX_REGIONS);
		return;
	}
	t->regions[i] = c->in.region;
	snprintf(t->regions[i].origin, sizeof(t->regions[i].origin), "memory.regions[%u]", i);
	if (i == t->nregions)
		t->nregions++;
	t->has_memory = true;
}

static void change_balloon(struct vm_config *t, struct vmm_cmd *c)
{
	t->balloon = c->in.balloon;
}

static void change_vsock(struct vm_config *t, struct vmm_cmd *c)
{
	t->vsock = c->in.vsock;
}

#define NO_BALLOON                                                                            \
	"balloon: no balloon configured; add one with PUT /balloon (or a \"balloon\" section in " \
	"the config file) before InstanceStart"
#define NO_BALLOON_BOOTED                                                                      \
	"balloon: the VM was started without a balloon; one can only be added before "          \
	"InstanceStart (PUT /balloon)"

/* The VM runs (or is paused): the balloon routes that need the device may go on. */
static bool balloon_live(struct vmm *m, struct vmm_cmd *c)
{
	if (m->state == VMM_STOPPED || !m->vm) {
		refuse(c, "%s: the VM has stopped", "balloon");
		return false;
	}
	if (!m->cfg->balloon.set) {
		err_set(&c->err, ERR_CONFIG, -ENOENT, NO_BALLOON_BOOTED);
		return false;
	}
	return true;
}

/* GET /balloon: the configuration before boot; after it the device's target and size too. */
static void get_balloon(struct vmm *m, struct vmm_cmd *c)
{
	if (!m->cfg->balloon.set) {
		err_set(&c->err, ERR_CONFIG, -ENOENT,
			m->state == VMM_NOT_STARTED ? NO_BALLOON : NO_BALLOON_BOOTED);
		return;
	}
	c->balloon.cfg = m->cfg->balloon;
	if (m->state != VMM_RUNNING && m->state != VMM_PAUSED)
		return;
	if (!vm_balloon_info(m->vm, &c->balloon.info, &c->err))
		c->balloon.running = true;
}

/* PATCH /balloon: after boot only, as in Firecracker (before it, PUT sets the target). */
static void patch_balloon(struct vmm *m, struct vmm_cmd *c)
{
	if (m->state == VMM_NOT_STARTED) {
		refuse(c, "%s: PATCH changes the target of a running VM's balloon; before "
			  "InstanceStart, PUT /balloon sets amount_mib",
		       "balloon");
		return;
	}
	/* The device refuses a target above guest RAM. */
	if (balloon_live(m, c) && !vm_balloon_set_target(m->vm, c->in.balloon_mib, &c->err))
		m->cfg->balloon.amount_mib = c->in.balloon_mib; /* GET /vm/config shows it */
}

/* GET /balloon/statistics: the guest's latest, after boot, when they were enabled. */
static void balloon_stats(struct vmm *m, struct vmm_cmd *c)
{
	const struct cfg_balloon *b = &m->cfg->balloon;

	if (m->state == VMM_NOT_STARTED) {
		if (!b->set)
			err_set(&c->err, ERR_CONFIG, -ENOENT, NO_BALLOON);
		else if (!b->stats_polling_interval_s)
			refuse(c,
			       "%s: statistics are not enabled (stats_polling_interval_s is 0); "
			       "PUT /balloon with an interval above 0 before InstanceStart "
			       "enables them",
			       "balloon");
		else
			refuse(c,
			       "%s: the VM has not been started; the guest's driver sends "
			       "statistics once it runs",
			       "balloon/statistics");
		return;
	}
	if (!balloon_live(m, c) || vm_balloon_info(m->vm, &c->balloon.info, &c->err))
		return;
	if (!c->balloon.info.stats_interval_s) {
		refuse(c,
		       "%s: statistics are not enabled (stats_polling_interval_s was 0 at "
		       "InstanceStart); they can only be enabled before boot, with PUT /balloon",
		       "balloon");
		return;
	}
	c->balloon.cfg = *b;
	c->balloon.running = true;
}

/*
 * PATCH /balloon/statistics: after boot, a new interval. Statistics stay on or off as
 * they were at boot (Firecracker's rule: the statistics queue exists from boot or never).
 */
static void patch_balloon_stats(struct vmm *m, struct vmm_cmd *c)
{
	struct cfg_balloon *b = &m->cfg->balloon;
	uint32_t s = c->in.balloon_stats_s;

	if (m->state == VMM_NOT_STARTED) {
		refuse(c, "%s: PATCH changes the polling interval of a running VM's balloon; "
			  "before InstanceStart, PUT /balloon sets stats_polling_interval_s",
		       "balloon/statistics");
		return;
	}
	/* The device refuses turning them on or off. */
	if (balloon_live(m, c) && !vm_balloon_set_stats_interval(m->vm, s, &c->err))
		b->stats_polling_interval_s = s;
}

/*
 * The vCPU threads run (each took its own filter first): now this thread. Not
 * earlier -- a thread created after would inherit this filter as well as its own.
 */
static int confine(struct vmm *m, struct vmm_cmd *c)
{
	char why[256];
	int r;

	if (m->opts.seccomp && m->opts.seccomp->source != SC_SOURCE_OFF)
		dax_forbid_load(); /* GET /host after boot: no library mapped under the filter */
	r = sc_install(m->opts.seccomp, SC_ROLE_VMM, why, sizeof(why));

	if (r)
		return err_set(&c->err, ERR_RUNTIME, r,
			       "%s; the VM is not run unconfined (--no-seccomp runs it without "
			       "filters)",
			       why);
	sc_test_hook(SC_ROLE_VMM);
	return 0;
}

static void do_start(struct vmm *m, struct vmm_cmd *c)
{
	struct vm_opts vo = {.console_input = m->opts.console_input,
			     .console_fd = m->opts.console_fd,
			     .seccomp = m->opts.seccomp};
	struct vm_config *v;

	if (m->state != VMM_NOT_STARTED) {
		refuse(c, "%s: the VM has already been started", "InstanceStart");
		return;
	}
	v = malloc(sizeof(*v));
	if (!v) {
		err_set(&c->err, ERR_RUNTIME, -ENOMEM, "out of memory");
		return;
	}
	vm_config_copy(v, m->cfg);
	if (!vm_config_finalize(v, true, &c->err) && !vm_config_check_files(v, &c->err) &&
	    !vm_create(&m->vm, v, &vo, &c->err)) {
		if (vm_attach(m->vm, m->loop, on_vm_stop, m, &c->err) || vm_start(m->vm, &c->err) ||
		    confine(m, c)) {
			vm_destroy(m->vm);
			m->vm = NULL;
		} else {
			vm_open_gate(m->vm);
			m->state = VMM_RUNNING;
		}
	}
	free(v);
}

/* Measure again; a region whose huge bytes shrank since last time is a drift event. */
static void do_memory(struct vmm *m, struct vmm_cmd *c)
{
	int r;

	if (!m->vm) {
		refuse(c, "%s: nothing is mapped yet; the VM has not been started", "memory");
		return;
	}
	c->memory = malloc(sizeof(*c->memory));
	if (!c->memory) {
		err_set(&c->err, ERR_RUNTIME, -ENOMEM, "out of memory");
		return;
	}
	/* Measured, with reclaim's counts and the pages the guest touched again since. */
	r = vm_memory_snapshot(m->vm, &c->memory->mem);
	if (r) {
		free(c->memory);
		c->memory = NULL;
		err_set(&c->err, ERR_RUNTIME, r, "measuring guest memory: %s", strerror(-r));
		return;
	}
	m->measurements++;
	if (m->state == VMM_STOPPED)
		c->memory->kvm = *vm_final_mmu_stats(m->vm);
	else
		vm_mmu_stats(m->vm, &c->memory->kvm);
}

void vmm_exec(struct vmm *m, struct vmm_cmd *c)
{
	err_clear(&c->err);
	m->commands++;
	switch (c->op) {
	case VMM_OP_INFO:
		break;
	case VMM_OP_GET_CONFIG:
		c->config = malloc(sizeof(*c->config));
		if (!c->config) {
			err_set(&c->err, ERR_RUNTIME, -ENOMEM, "out of memory");
			break;
		}
		/* The effective configuration: what InstanceStart would use, defaults applied. */
		vm_config_copy(c->config, m->cfg);
		log_mute(true);
		if (vm_config_finalize(c->config, false, &c->err)) {
			err_clear(&c->err);
			vm_config_copy(c->config, m->cfg);
		}
		log_mute(false);
		break;
	case VMM_OP_PUT_MACHINE:
	case VMM_OP_PATCH_MACHINE:
		if (!pre_boot(m, c, "machine-config"))
			apply(m, c, change_machine);
		break;
	case VMM_OP_PUT_BOOT:
		if (!pre_boot(m, c, "boot-source"))
			apply(m, c, change_boot);
		break;
	case VMM_OP_PUT_DRIVE:
		if (!pre_boot(m, c, "drives"))
			apply(m, c, change_drive);
		break;
	case VMM_OP_PATCH_DRIVE:
		patch_device(m, c, "drives", change_drive_patch, patch_running_drive);
		break;
	case VMM_OP_PUT_NET:
		if (!pre_boot(m, c, "network-interfaces"))
			apply(m, c, change_net);
		break;
	case VMM_OP_PATCH_NET:
		patch_device(m, c, "network-interfaces", change_net_patch, patch_running_net);
		break;
	case VMM_OP_PUT_REGION:
		if (!pre_boot(m, c, "memory.regions"))
			apply(m, c, change_region);
		break;
	case VMM_OP_PUT_ENTROPY:
		if (!pre_boot(m, c, "entropy"))
			apply(m, c, change_entropy);
		break;
	case VMM_OP_PUT_BALLOON:
		if (!pre_boot(m, c, "balloon"))
			apply(m, c, change_balloon);
		break;
	case VMM_OP_GET_BALLOON:
		get_balloon(m, c);
		break;
	case VMM_OP_PATCH_BALLOON:
		patch_balloon(m, c);
		break;
	case VMM_OP_BALLOON_STATS:
		balloon_stats(m, c);
		break;
	case VMM_OP_PATCH_BALLOON_STATS:
		patch_balloon_stats(m, c);
		break;
	case VMM_OP_PUT_VSOCK:
		if (!pre_boot(m, c, "vsock"))
			apply(m, c, change_vsock);
		break;
	case VMM_OP_START:
		do_start(m, c);
		break;
	case VMM_OP_CALL:
		c->in.call.fn(c->in.call.arg, m->state != VMM_NOT_STARTED, &c->err);
		break;
	case VMM_OP_CTRL_ALT_DEL:
		if (m->state != VMM_RUNNING && m->state != VMM_PAUSED)
			refuse(c, "%s: the VM is not running", "SendCtrlAltDel");
		else
			(void)!vm_ctrl_alt_del(m->vm, &c->err);
		break;
	case VMM_OP_PAUSE:
		if (m->state == VMM_PAUSED)
			refuse(c, "%s: the VM is already paused", "Paused");
		else if (m->state != VMM_RUNNING)
			refuse(c, "%s: the VM is not running", "Paused");
		else if (!vm_pause(m->vm, &c->err))
			m->state = VMM_PAUSED;
		break;
	case VMM_OP_RESUME:
		if (m->state != VMM_PAUSED) {
			refuse(c, "%s: the VM is not paused", "Resumed");
		} else {
			vm_resume(m->vm);
			m->state = VMM_RUNNING;
		}
		break;
	case VMM_OP_STOP:
		if (m->vm)
			vm_stop(m->vm);
		else
			vmm_quit(m, 0);
		break;
	case VMM_OP_MEMORY:
		do_memory(m, c);
		break;
	case VMM_OP_TEST_SPLIT:
		if (!m->vm) {
			refuse(c, "%s: the VM has not been started", "split");
		} else {
			int r = mem_test_split(vm_memory(m->vm), c->in.split.region,
					       c->in.split.offset);

			if (r)
				err_set(&c->err, ERR_CONFIG, r,
					"split: region \"%s\" offset %llu: %s", c->in.split.region,
					(unsigned long long)c->in.split.offset, strerror(-r));
		}
		break;
	case VMM_OP_METRICS:
		memset(&c->metrics, 0, sizeof(c->metrics));
		if (m->vm)
			vm_metrics(m->vm, &c->metrics.vm);
		c->metrics.uptime_ns = now_ns() - m->t0;
		c->metrics.commands = m->commands;
		c->metrics.command_errors = m->command_errors;
		c->metrics.measurements = m->measurements;
		c->metrics.drift_events = m->vm ? mem_drift_events(vm_memory(m->vm)) : 0;
		for (unsigned i = 0; m->vm && i < vm_memory(m->vm)->nregions; i++) {
			const struct mem_region *r = &vm_memory(m->vm)->regions[i];

			c->metrics.ram_bytes += r->size;
			if (r->host.known)
				c->metrics.huge_bytes += r->host.bytes_2m + r->host.bytes_1g;
		}
		break;
	}
	if (c->err.kind != ERR_NONE)
		m->command_errors++;
	c->state = m->state;
	snprintf(c->id, sizeof(c->id), "%s", m->id);
	c->metrics.state = m->state;
}

/* ---- submission ---- */

static struct vmm_cmd *pop_all(struct vmm *m)
{
	struct vmm_cmd *list;

	pthread_mutex_lock(&m->qlock);
	list = m->qhead;
	m->qhead = m->qtail = NULL;
	pthread_mutex_unlock(&m->qlock);
	return list;
}

static void on_queue(void *arg, int res)
{
	struct vmm *m = arg;
	struct vmm_cmd *c;

	(void)res;
	efd_drain(m->qfd, "vmm");
	c = pop_all(m);
	while (c) {
		struct vmm_cmd *next = c->next;

		vmm_exec(m, c);
		c->done(c, c->done_arg);
		c = next;
	}
}

int vmm_submit(struct vmm *m, struct vmm_cmd *c)
{
	pthread_mutex_lock(&m->qlock);
	if (m->closed) {
		pthread_mutex_unlock(&m->qlock);
		return -ESHUTDOWN;
	}
	c->next = NULL;
	if (m->qtail)
		m->qtail->next = c;
	else
		m->qhead = c;
	m->qtail = c;
	pthread_mutex_unlock(&m->qlock);
	wake(m);
	return 0;
}

struct call {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
};

static void call_done(struct vmm_cmd *c, void *arg)
{
	struct call *w = arg;

	(void)c;
	pthread_mutex_lock(&w->lock);
	w->done = true;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

int vmm_call(struct vmm *m, struct vmm_cmd *c)
{
	struct call w = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
	int r;

	c->done = call_done;
	c->done_arg = &w;
	r = vmm_submit(m, c);
	if (r)
		return r;
	pthread_mutex_lock(&w.lock);
	while (!w.done)
		pthread_cond_wait(&w.cond, &w.lock);
	pthread_mutex_unlock(&w.lock);
	return 0;
}

static void on_every(void *arg, int res)
{
	struct vmm *m = arg;

	/* Re-armed first: the callback may take a while, the period stays the period. */
	m->w_every = evloop_after(m->loop, m->every_ms, on_every, m);
	m->every_fn(m->every_arg, res);
}

int vmm_every(struct vmm *m, uint64_t ms, void (*fn)(void *arg, int res), void *arg)
{
	evloop_unwatch(m->loop, m->w_every);
	m->every_ms = ms;
	m->every_fn = fn;
	m->every_arg = arg;
	m->w_every = evloop_after(m->loop, ms, on_every, m);
	return m->w_every ? 0 : -ENOMEM;
}

void vmm_quit(struct vmm *m, int status)
{
	m->quit_status = status;
	atomic_store(&m->quit, true);
	wake(m);
}

int vmm_run(struct vmm *m)
{
	int status;

	while (!atomic_load(&m->quit)) {
		int r = evloop_run_once(m->loop, -1);

		if (r) {
			log_err("event loop: %s; stopping", strerror(-r));
			if (m->vm)
				vm_stop(m->vm);
			m->quit_status = 1;
			break;
		}
	}
	status = m->quit_status;
	if (m->vm) {
		status = vm_finish(m->vm);
		m->state = VMM_STOPPED;
	}
	vmm_shutdown(m);
	return status;
}

void vmm_shutdown(struct vmm *m)
{
	struct vmm_cmd *c;

	/* Whatever is still queued is refused; later submissions fail at once. */
	pthread_mutex_lock(&m->qlock);
	m->closed = true;
	pthread_mutex_unlock(&m->qlock);
	for (c = pop_all(m); c;) {
		struct vmm_cmd *next = c->next;

		err_set(&c->err, ERR_RUNTIME, -ESHUTDOWN, "the VMM is shutting down");
		c->state = m->state;
		c->done(c, c->done_arg);
		c = next;
	}
}

void vmm_destroy(struct vmm *m)
{
	if (!m)
		return;
	vmm_shutdown(m);
	vm_destroy(m->vm);
	if (m->loop) {
		evloop_unwatch(m->loop, m->w_queue);
		evloop_unwatch(m->loop, m->w_signal);
		evloop_unwatch(m->loop, m->w_every);
		evloop_destroy(m->loop);
	}
	if (m->sfd >= 0)
		close(m->sfd);
	if (m->qfd >= 0)
		close(m->qfd);
	pthread_mutex_destroy(&m->qlock);
	free(m->cfg);
	free(m);
}
