#include "vmm/kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "common/util.h"

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

void kvm_probe(struct hv_probe *p)
{
	int fd, r;

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
	r = ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_MEMSLOTS);
	p->max_memslots = r > 0 ? r : 0;
	p->stats_fd = ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_BINARY_STATS_FD) > 0;
	p->user_memory = ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY) > 0;
	p->irqchip = ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_IRQCHIP) > 0;
	close(fd);
}
