/*
 * The hypervisor boundary: what hugevmm needs from a hypervisor, as data
 * types and (from the boot issue on) an ops table. vmm/kvm*.c implements it
 * with raw KVM ioctls; nothing else includes <linux/kvm.h>.
 */
#ifndef HUGEVMM_VMM_HV_H
#define HUGEVMM_VMM_HV_H

#include <stdbool.h>
#include <stdint.h>

/* What the host hypervisor device offers; filled by a backend's probe. */
struct hv_probe {
	bool present;     /* the device exists and answers */
	char device[32];  /* "/dev/kvm" */
	char error[160];  /* why not present */
	int api_version;  /* KVM_GET_API_VERSION */
	char flavour[32]; /* loaded module: kvm_intel, kvm_amd, kvm_pvm... */
	int max_memslots; /* KVM_CAP_NR_MEMSLOTS */
	bool stats_fd;    /* KVM_CAP_BINARY_STATS_FD */
	bool user_memory; /* KVM_CAP_USER_MEMORY */
	bool irqchip;     /* KVM_CAP_IRQCHIP */
};

/* The secondary MMU's (EPT/NPT) own page counts for a VM. */
struct hv_mmu_stats {
	bool available; /* false: see reason; never read as zero coverage */
	char reason[192];
	uint64_t pages_4k, pages_2m, pages_1g;
};

#endif
