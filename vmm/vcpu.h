/* vCPU threads: run the guest, dispatch its I/O to the buses, report what is fatal. */
#ifndef HUGEVMM_VMM_VCPU_H
#define HUGEVMM_VMM_VCPU_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/hv.h"

struct vm;

struct vcpu {
	struct vm *vm;
	unsigned id;
	struct hv_vcpu *hv;
	pthread_t thread;
	/* Set (release) once @thread is valid; read by any thread that kicks. */
	atomic_bool started;
	/* Written by the vCPU thread, read by metrics: relaxed atomics. */
	_Atomic uint64_t exits_io, exits_mmio, exits_intr, exits_other, run_ns;
};

/* The signal that kicks a vCPU thread out of the guest. */
#define VCPU_KICK_SIGNAL SIGUSR1

/* Install the (empty) kick handler once per process. */
void vcpu_signals_init(void);

int vcpu_start(struct vcpu *v) must_check;

/* Whether @v's thread runs (or ran and is not yet joined). */
bool vcpu_started(struct vcpu *v);

/* After pthread_join: the thread is gone. */
void vcpu_mark_joined(struct vcpu *v);

/* Make @v leave the guest soon. */
void vcpu_kick(struct vcpu *v);

#endif
