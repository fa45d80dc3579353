/* Benchmark tooling, not product code: what KVM's interrupt controller choice costs when
 * a VM goes away.
 *
 *     irqclose [ROUNDS]      (default 20)
 *
 * Each round, for each mode in turn (interleaved, so drift hits them alike; each round
 * starts at the next mode, so no mode always follows the same one): create an empty VM
 * (KVM_SET_TSS_ADDR as hugevmm does, no memory), set up its interrupt controller, create
 * one vCPU, then time close(vcpu fd) + close(VM fd) -- the last reference, so KVM tears
 * the VM down inside the second close -- and let 50 ms pass before the next VM, so work
 * the kernel defers from one teardown does not land in the next one's. Modes:
 *
 *     none      no irqchip (LAPIC in userspace too: no VMM runs so)
 *     split     KVM_CAP_SPLIT_IRQCHIP, 24 IOAPIC pins (LAPIC in KVM; PIC, IOAPIC, PIT in
 *               the VMM: Cloud Hypervisor, QEMU microvm's default)
 *     irqchip   KVM_CREATE_IRQCHIP (PIC, IOAPIC, LAPIC in KVM)
 *     irqchip+pit  and KVM_CREATE_PIT2 (hugevmm and Firecracker today)
 *
 * Prints one line per mode, times in microseconds:
 *     mode=M create_median=N close_mean=N close_median=N close_min=N close_max=N samples=N,...
 * Used inside the L1 harness (tests/l1/init.sh, run_irqclose); needs /dev/kvm. */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

enum { NONE, SPLIT, IRQCHIP, IRQCHIP_PIT, MODES };
static const char *const names[MODES] = {"none", "split", "irqchip", "irqchip+pit"};

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void die(const char *what, int mode)
{
	fprintf(stderr, "irqclose: %s: %s: %s\n", names[mode], what, strerror(errno));
	exit(1);
}

/* One VM of @mode: its creation time, and its close time in @close_us. */
static double one(int kvm, int mode, double *close_us)
{
	double t0 = now_us(), t1, t2;
	int vm, vcpu;

	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		die("KVM_CREATE_VM", mode);
	if (ioctl(vm, KVM_SET_TSS_ADDR, 0xfffbd000ul))
		die("KVM_SET_TSS_ADDR", mode);
	if (mode == SPLIT) {
		struct kvm_enable_cap cap = {.cap = KVM_CAP_SPLIT_IRQCHIP, .args = {24}};

		if (ioctl(vm, KVM_ENABLE_CAP, &cap))
			die("KVM_ENABLE_CAP(KVM_CAP_SPLIT_IRQCHIP)", mode);
	}
	if (mode == IRQCHIP || mode == IRQCHIP_PIT)
		if (ioctl(vm, KVM_CREATE_IRQCHIP, 0))
			die("KVM_CREATE_IRQCHIP", mode);
	if (mode == IRQCHIP_PIT) {
		struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};

		if (ioctl(vm, KVM_CREATE_PIT2, &pit))
			die("KVM_CREATE_PIT2", mode);
	}
	vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0)
		die("KVM_CREATE_VCPU", mode);
	t1 = now_us();
	close(vcpu);
	close(vm);
	t2 = now_us();
	*close_us = t2 - t1;
	return t1 - t0;
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 20;
	double *create, *cl, dummy;
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	if (kvm < 0) {
		perror("irqclose: /dev/kvm");
		return 1;
	}
	if (rounds < 1)
		rounds = 1;
	create = calloc((size_t)(MODES * rounds), sizeof(*create));
	cl = calloc((size_t)(MODES * rounds), sizeof(*cl));
	if (!create || !cl)
		return 1;
	for (int m = 0; m < MODES; m++) { /* one unmeasured VM each: first-use costs out */
		one(kvm, m, &dummy);
		usleep(50000);
	}
	for (int r = 0; r < rounds; r++)
		for (int i = 0; i < MODES; i++) {
			int m = (r + i) % MODES;

			create[m * rounds + r] = one(kvm, m, &cl[m * rounds + r]);
			usleep(50000);
		}
	for (int m = 0; m < MODES; m++) {
		double *c = cl + m * rounds, sum = 0, med;

		for (int r = 0; r < rounds; r++)
			sum += c[r];
		printf("mode=%s create_median=%.0f close_mean=%.0f", names[m],
		       median(create + m * rounds, rounds), sum / rounds);
		med = median(c, rounds); /* sorts: min and max after it */
		printf(" close_median=%.0f close_min=%.0f close_max=%.0f samples=", med, c[0],
		       c[rounds - 1]);
		for (int r = 0; r < rounds; r++)
			printf("%s%.0f", r ? "," : "", c[r]);
		printf("\n");
	}
	return 0;
}
