#include "vmm/kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/log.h"
#include "common/sysfs.h"
#include "vmm/kvm_priv.h"

/* Which KVM vendor module serves /dev/kvm: the first loaded one wins. */
static void flavour(char *buf, size_t len)
{
	static const char *const mods[] = {"kvm_intel", "kvm_amd", "kvm_pvm", "kvm_arm"};
	char path[64];

	snprintf(buf, len, "unknown");
	for (unsigned i = 0; i < ARRAY_SIZE(mods); i++) {
		snprintf(path, sizeof(path), "/sys/module/%s", mods[i]);
		if (!access(path, F_OK)) {
			snprintf(buf, len, "%s", mods[i]);
			return;
		}
	}
}

static int check_ext(int fd, long cap)
{
	int r = ioctl(fd, KVM_CHECK_EXTENSION, cap);

	return r > 0 ? r : 0;
}

static void kvm_probe_ops(struct hv_probe *p)
{
	int fd;

	memset(p, 0, sizeof(*p));
	snprintf(p->device, sizeof(p->device), KVM_DEVICE);
	fd = open(KVM_DEVICE, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		snprintf(p->error, sizeof(p->error), "cannot open " KVM_DEVICE ": %s",
			 strerror(errno));
		return;
	}
	p->api_version = ioctl(fd, KVM_GET_API_VERSION, 0);
	if (p->api_version != KVM_API_VERSION) {
		snprintf(p->error, sizeof(p->error), "KVM API version %d, hugevmm needs %d",
			 p->api_version, KVM_API_VERSION);
		close(fd);
		return;
	}
	p->present = true;
	flavour(p->flavour, sizeof(p->flavour));
	p->max_memslots = check_ext(fd, KVM_CAP_NR_MEMSLOTS);
	p->max_vcpus = check_ext(fd, KVM_CAP_MAX_VCPUS);
	p->stats_fd = check_ext(fd, KVM_CAP_BINARY_STATS_FD);
	p->user_memory = check_ext(fd, KVM_CAP_USER_MEMORY);
	p->irqchip = check_ext(fd, KVM_CAP_IRQCHIP);
	close(fd);
}

void kvm_probe(struct hv_probe *p)
{
	kvm_probe_ops(p);
}

static int kvm_open(struct hv **out, struct vmm_err *e)
{
	static const struct {
		long cap;
		const char *name;
	} need[] = {
		{KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
		{KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"},
		{KVM_CAP_PIT2, "KVM_CAP_PIT2"},
		{KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR"},
		{KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"},
		{KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"},
		{KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD"},
		{KVM_CAP_IRQFD, "KVM_CAP_IRQFD"},
	};
	char missing[256] = "";
	struct hv *hv;
	int fd, v;

	fd = open(KVM_DEVICE, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return err_set(e, ERR_RUNTIME, -errno,
			       "cannot open " KVM_DEVICE ": %s; load kvm_intel or kvm_amd and "
			       "check its permissions",
			       strerror(errno));
	v = ioctl(fd, KVM_GET_API_VERSION, 0);
	if (v != KVM_API_VERSION) {
		close(fd);
		return err_set(e, ERR_RUNTIME, -ENOTSUP,
			       KVM_DEVICE " speaks API version %d; "
					  "hugevmm needs %d",
			       v, KVM_API_VERSION);
	}
	for (unsigned i = 0; i < ARRAY_SIZE(need); i++) {
		size_t n = strlen(missing);

		if (!check_ext(fd, need[i].cap))
			snprintf(missing + n, sizeof(missing) - n, "%s%s", n ? ", " : "",
				 need[i].name);
	}
	if (missing[0]) {
		close(fd);
		return err_set(e, ERR_RUNTIME, -ENOTSUP, KVM_DEVICE " lacks %s", missing);
	}
	hv = calloc(1, sizeof(*hv));
	if (!hv) {
		close(fd);
		return err_set(e, ERR_RUNTIME, -ENOMEM, "out of memory");
	}
	hv->fd = fd;
	hv->run_size = ioctl(fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	flavour(hv->flavour, sizeof(hv->flavour));
	*out = hv;
	return 0;
}

static void kvm_close(struct hv *hv)
{
	if (!hv)
		return;
	close(hv->fd);
	free(hv);
}

static int kvm_create_vm(struct hv *hv, struct hv_vm **out, struct vmm_err *e)
{
	struct hv_vm *vm = calloc(1, sizeof(*vm));
	int fd;

	if (!vm)
		return err_set(e, ERR_RUNTIME, -ENOMEM, "out of memory");
	do {
		fd = ioctl(hv->fd, KVM_CREATE_VM, 0);
	} while (fd < 0 && errno == EINTR);
	if (fd < 0) {
		free(vm);
		return err_set(e, ERR_RUNTIME, -errno, "KVM_CREATE_VM: %s", strerror(errno));
	}
	vm->hv = hv;
	vm->fd = fd;
	vm->stats_fd =
		check_ext(hv->fd, KVM_CAP_BINARY_STATS_FD) ? ioctl(fd, KVM_GET_STATS_FD, 0) : -1;
	*out = vm;
	return 0;
}

static void kvm_destroy_vm(struct hv_vm *vm)
{
	if (!vm)
		return;
	if (vm->stats_fd >= 0)
		close(vm->stats_fd);
	close(vm->fd);
	free(vm);
}

static int kvm_set_memslot(struct hv_vm *vm, unsigned slot, uint64_t gpa, uint64_t size, void *hva,
			   struct vmm_err *e)
{
	struct kvm_userspace_memory_region r = {
		.slot = slot,
		.guest_phys_addr = gpa,
		.memory_size = size,
		.userspace_addr = (uintptr_t)hva,
	};

	if (ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION, &r))
		return err_set(e, ERR_RUNTIME, -errno,
			       "KVM_SET_USER_MEMORY_REGION slot %u (guest 0x%llx, %llu MiB): %s",
			       slot, (unsigned long long)gpa, (unsigned long long)(size >> 20),
			       strerror(errno));
	return 0;
}

static int kvm_irq_line(struct hv_vm *vm, unsigned gsi, int level)
{
	struct kvm_irq_level l = {.irq = gsi, .level = (uint32_t)level};

	return ioctl(vm->fd, KVM_IRQ_LINE, &l) ? -errno : 0;
}

static int kvm_irqfd(struct hv_vm *vm, int fd, unsigned gsi, bool assign)
{
	struct kvm_irqfd r = {
		.fd = (uint32_t)fd, .gsi = gsi, .flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN};

	return ioctl(vm->fd, KVM_IRQFD, &r) ? -errno : 0;
}

static int kvm_ioeventfd(struct hv_vm *vm, int fd, uint64_t addr, unsigned len, bool pio,
			 const uint64_t *match, bool assign)
{
	struct kvm_ioeventfd r = {
		.datamatch = match ? *match : 0,
		.addr = addr,
		.len = len,
		.fd = fd,
		.flags = (pio ? KVM_IOEVENTFD_FLAG_PIO : 0) |
			 (match ? KVM_IOEVENTFD_FLAG_DATAMATCH : 0) |
			 (assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN),
	};

	return ioctl(vm->fd, KVM_IOEVENTFD, &r) ? -errno : 0;
}

/* Whether this KVM maps guests with a TDP MMU (EPT/NPT), i.e. counts pages_{4k,2m,1g}. */
static bool shadow_paging(const struct hv *hv, char *why, size_t len)
{
	char v[8] = "";

	if (!strcmp(hv->flavour, "kvm_pvm")) {
		snprintf(why, len,
			 "kvm_pvm runs guests on shadow paging; it keeps no secondary-MMU "
			 "page counts (pages_4k/2m/1g stay 0)");
		return true;
	}
	if ((!sysfs_read("/sys/module/kvm_intel/parameters/ept", v, sizeof(v)) && v[0] == 'N') ||
	    (!sysfs_read("/sys/module/kvm_amd/parameters/npt", v, sizeof(v)) &&
	     (v[0] == 'N' || v[0] == '0'))) {
		snprintf(why, len,
			 "%s runs with EPT/NPT off (shadow paging); no secondary-MMU page "
			 "counts",
			 hv->flavour);
		return true;
	}
	return false;
}

static void kvm_mmu_stats(struct hv_vm *vm, struct hv_mmu_stats *out)
{
	static const char *const want[] = {"pages_4k", "pages_2m", "pages_1g"};
	uint64_t *dst[] = {&out->pages_4k, &out->pages_2m, &out->pages_1g};
	struct kvm_stats_header h;
	unsigned found = 0;
	size_t dsz;
	char *descs;

	memset(out, 0, sizeof(*out));
	if (shadow_paging(vm->hv, out->reason, sizeof(out->reason)))
		return;
	if (vm->stats_fd < 0) {
		snprintf(out->reason, sizeof(out->reason), "this KVM has no binary stats fd");
		return;
	}
	if (pread(vm->stats_fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h)) {
		snprintf(out->reason, sizeof(out->reason), "reading the VM stats header: %s",
			 strerror(errno));
		return;
	}
	dsz = sizeof(struct kvm_stats_desc) + h.name_size;
	descs = malloc(dsz * h.num_desc);
	if (!descs || pread(vm->stats_fd, descs, dsz * h.num_desc, h.desc_offset) !=
			      (ssize_t)(dsz * h.num_desc)) {
		free(descs);
		snprintf(out->reason, sizeof(out->reason), "reading the VM stats descriptors");
		return;
	}
	for (unsigned i = 0; i < h.num_desc; i++) {
		const struct kvm_stats_desc *d = (const void *)(descs + i * dsz);

		for (unsigned k = 0; k < ARRAY_SIZE(want); k++) {
			if (strncmp(d->name, want[k], h.name_size) || d->size < 1)
				continue;
			if (pread(vm->stats_fd, dst[k], sizeof(uint64_t),
				  h.data_offset + d->offset) == (ssize_t)sizeof(uint64_t))
				found++;
		}
	}
	free(descs);
	if (found != ARRAY_SIZE(want)) {
		snprintf(out->reason, sizeof(out->reason),
			 "the VM stats lack pages_4k/pages_2m/pages_1g (kernel before 5.14?)");
		return;
	}
	out->available = true;
}

static int kvm_create_vcpu(struct hv_vm *vm, unsigned id, struct hv_vcpu **out, struct vmm_err *e)
{
	struct hv_vcpu *v = calloc(1, sizeof(*v));

	if (!v)
		return err_set(e, ERR_RUNTIME, -ENOMEM, "out of memory");
	v->vm = vm;
	v->id = id;
	v->fd = ioctl(vm->fd, KVM_CREATE_VCPU, (unsigned long)id);
	if (v->fd < 0) {
		int r = -errno;

		free(v);
		return err_set(e, ERR_RUNTIME, r, "KVM_CREATE_VCPU %u: %s", id, strerror(-r));
	}
	v->run = mmap(NULL, (size_t)vm->hv->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (v->run == MAP_FAILED) {
		int r = -errno;

		close(v->fd);
		free(v);
		return err_set(e, ERR_RUNTIME, r, "mmap of vCPU %u run area: %s", id, strerror(-r));
	}
	*out = v;
	return 0;
}

static void kvm_destroy_vcpu(struct hv_vcpu *v)
{
	if (!v)
		return;
	munmap(v->run, (size_t)v->vm->hv->run_size);
	close(v->fd);
	free(v);
}

static void kvm_kick_prepare(struct hv_vcpu *v)
{
	/* KVM_RUN returns -EINTR at once when this is set; a signal covers a vCPU already inside.
	 */
	__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
}

static int kvm_run(struct hv_vcpu *v, struct hv_exit *x)
{
	struct kvm_run *run = v->run;

	memset(x, 0, sizeof(*x));
	if (ioctl(v->fd, KVM_RUN, 0)) {
		if (errno == EINTR || errno == EAGAIN) {
			__atomic_store_n(&run->immediate_exit, 0, __ATOMIC_SEQ_CST);
			x->reason = HV_EXIT_INTR;
			return 0;
		}
		return -errno;
	}
	x->raw = run->exit_reason;
	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		x->reason = HV_EXIT_IO;
		x->io.port = run->io.port;
		x->io.size = run->io.size;
		x->io.write = run->io.direction == KVM_EXIT_IO_OUT;
		x->io.count = run->io.count;
		x->io.data = (uint8_t *)run + run->io.data_offset;
		break;
	case KVM_EXIT_MMIO:
		x->reason = HV_EXIT_MMIO;
		x->mmio.addr = run->mmio.phys_addr;
		x->mmio.len = run->mmio.len;
		x->mmio.write = run->mmio.is_write;
		x->mmio.data = run->mmio.data;
		break;
	case KVM_EXIT_HLT:
		x->reason = HV_EXIT_HLT;
		break;
	case KVM_EXIT_INTR:
		x->reason = HV_EXIT_INTR;
		break;
	case KVM_EXIT_SHUTDOWN:
		x->reason = HV_EXIT_SHUTDOWN;
		break;
	case KVM_EXIT_SYSTEM_EVENT:
		x->reason = run->system_event.type == KVM_SYSTEM_EVENT_RESET ? HV_EXIT_SYSTEM_RESET
									     : HV_EXIT_SYSTEM_OFF;
		break;
	case KVM_EXIT_INTERNAL_ERROR:
		x->reason = HV_EXIT_INTERNAL;
		x->detail = run->internal.suberror;
		break;
	case KVM_EXIT_FAIL_ENTRY:
		x->reason = HV_EXIT_FAIL_ENTRY;
		x->detail = run->fail_entry.hardware_entry_failure_reason;
		break;
	default:
		x->reason = HV_EXIT_OTHER;
		break;
	}
	return 0;
}

static const unsigned long vcpu_ioctls[] = {
	KVM_RUN, KVM_GET_REGS, KVM_GET_SREGS, KVM_IRQ_LINE, KVM_IRQ_LINE_STATUS, KVM_SIGNAL_MSI,
};

static const unsigned long vmm_ioctls[] = {
	KVM_IRQ_LINE,        KVM_IRQ_LINE_STATUS, KVM_SIGNAL_MSI,         KVM_IOEVENTFD,
	KVM_IRQFD,           KVM_GET_API_VERSION, KVM_CHECK_EXTENSION, KVM_GET_VCPU_MMAP_SIZE,
};

size_t kvm_vcpu_ioctls(const unsigned long **out)
{
	*out = vcpu_ioctls;
	return ARRAY_SIZE(vcpu_ioctls);
}

size_t kvm_vmm_ioctls(const unsigned long **out)
{
	*out = vmm_ioctls;
	return ARRAY_SIZE(vmm_ioctls);
}

const struct hv_ops kvm_hv_ops = {
	.name = "kvm",
	.probe = kvm_probe_ops,
	.open = kvm_open,
	.close = kvm_close,
	.create_vm = kvm_create_vm,
	.destroy_vm = kvm_destroy_vm,
	.set_memslot = kvm_set_memslot,
	.create_irqchip = kvm_x86_create_irqchip,
	.irq_line = kvm_irq_line,
	.irqfd = kvm_irqfd,
	.ioeventfd = kvm_ioeventfd,
	.mmu_stats = kvm_mmu_stats,
	.supported_cpuid = kvm_x86_supported_cpuid,
	.create_vcpu = kvm_create_vcpu,
	.destroy_vcpu = kvm_destroy_vcpu,
	.run = kvm_run,
	.kick_prepare = kvm_kick_prepare,
	.get_regs = kvm_x86_get_regs,
	.set_regs = kvm_x86_set_regs,
	.get_sregs = kvm_x86_get_sregs,
	.set_sregs = kvm_x86_set_sregs,
	.set_msrs = kvm_x86_set_msrs,
	.set_cpuid = kvm_x86_set_cpuid,
	.init_fpu = kvm_x86_init_fpu,
};
