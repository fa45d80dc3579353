/*
 * The VM's virtio-mmio devices: built from the machine description (the same
 * one the DSDT and the command line come from), put on the MMIO bus, their
 * queue notifications wired to ioeventfds and their interrupts to irqfds,
 * and their work run on the VMM loop. Shared by vmm/vm.c only.
 */
#ifndef HUGEVMM_VMM_VM_VIRTIO_H
#define HUGEVMM_VMM_VM_VIRTIO_H

#include "common/err.h"
#include "vmm/config.h"

struct vm;
struct vm_metrics;

/*
 * Open and lock every drive's image (before the hypervisor or guest memory:
 * an image that cannot be used is bad input, exit 2, nothing left behind).
 */
int vm_virtio_open(struct vm *vm, const struct vm_config *c, struct vmm_err *e) must_check;

/*
 * Create every virtio device of vm->machine (the hypervisor VM exists, guest
 * memory is mapped): the drives' io_uring, with guest RAM registered for the
 * direct ones.
 */
int vm_virtio_init(struct vm *vm, const struct vm_config *c, struct vmm_err *e) must_check;

/* Watch the queues' kick eventfds on vm->loop. */
int vm_virtio_attach(struct vm *vm, struct vmm_err *e) must_check;

/* Stop watching and cancel device timers (on the loop's thread, vCPUs halted). */
void vm_virtio_detach(struct vm *vm);

/* Release the devices. */
void vm_virtio_destroy(struct vm *vm);

/* The devices' counters into @m. */
void vm_virtio_metrics(struct vm *vm, struct vm_metrics *m);

#endif
