#include "memory/prefault.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/compat.h"
#include "common/log.h"

#define PREFAULT_STEP         (64 * SZ_1M) /* progress granularity */
#define PREFAULT_PER_THREAD   (256 * SZ_1M)
#define PREFAULT_MAX_THREADS  16
#define PREFAULT_PROGRESS_MIN SZ_1G

struct job {
	uint8_t *p;
	uint64_t len;
	int err;
};

struct shared {
	uint64_t step, total;
	_Atomic uint64_t done;
	const char *label;
	bool progress;
};

struct worker {
	struct job job;
	struct shared *sh;
	pthread_t tid;
	bool started;
};

/* Touch each page where MADV_POPULATE_WRITE is missing (Linux < 5.14). */
static void touch(uint8_t *p, uint64_t len)
{
	long pg = sysconf(_SC_PAGESIZE);

	for (uint64_t off = 0; off < len; off += (uint64_t)pg) {
		volatile uint8_t *b = p + off;

		*b = *b;
	}
}

static int populate(uint8_t *p, uint64_t len)
{
	static _Atomic int unsupported;

	if (!atomic_load(&unsupported)) {
		if (!madvise(p, len, MADV_POPULATE_WRITE))
			return 0;
		if (errno != EINVAL)
			return -errno;
		atomic_store(&unsupported, 1);
	}
	touch(p, len);
	return 0;
}

static void run_job(struct worker *w, bool report)
{
	struct shared *sh = w->sh;

	for (uint64_t off = 0; off < w->job.len; off += sh->step) {
		uint64_t n = MIN(sh->step, w->job.len - off);
		uint64_t done;

		w->job.err = populate(w->job.p + off, n);
		if (w->job.err)
			return;
		done = atomic_fetch_add(&sh->done, n) + n;
		if (report && sh->progress)
			log_progress("prefault %s: %3u%% (%llu/%llu MiB)", sh->label,
				     (unsigned)(done * 100 / sh->total),
				     (unsigned long long)(done >> 20),
				     (unsigned long long)(sh->total >> 20));
	}
}

static void (*thread_init)(void *arg);
static void *thread_init_arg;

void prefault_set_thread_init(void (*fn)(void *arg), void *arg)
{
	thread_init = fn;
	thread_init_arg = arg;
}

static void *thread_main(void *arg)
{
	if (thread_init)
		thread_init(thread_init_arg);
	run_job(arg, false);
	return NULL;
}

unsigned prefault_auto_threads(uint64_t len)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	uint64_t by_size = MAX(len / PREFAULT_PER_THREAD, 1);

	if (cpus < 1)
		cpus = 1;
	return (unsigned)MIN(MIN(by_size, (uint64_t)cpus), PREFAULT_MAX_THREADS);
}

int prefault_range(uint8_t *p, uint64_t len, uint64_t granule, unsigned threads, const char *label,
		   unsigned *used)
{
	struct worker w[64];
	struct shared sh = {.total = len, .label = label};
	uint64_t per, off = 0;
	unsigned n;
	int err = 0;

	if (len == 0)
		return 0;
	granule = MAX(granule, SZ_2M);
	n = threads ? threads : prefault_auto_threads(len);
	n = (unsigned)MIN((uint64_t)n, MAX(len / granule, 1));
	n = MIN(n, (unsigned)ARRAY_SIZE(w));
	per = align_up(len / n, granule);
	sh.step = MAX(PREFAULT_STEP, granule);
	sh.progress = len >= PREFAULT_PROGRESS_MIN && log_progress_enabled();

	memset(w, 0, sizeof(w));
	for (unsigned i = 0; i < n; i++) {
		w[i].sh = &sh;
		w[i].job.p = p + off;
		w[i].job.len = off < len ? MIN(per, len - off) : 0;
		off += w[i].job.len;
	}
	/* Worker 0 is this thread, so a one-thread prefault costs no thread start. */
	for (unsigned i = 1; i < n; i++) {
		if (!w[i].job.len)
			continue;
		if (pthread_create(&w[i].tid, NULL, thread_main, &w[i]) == 0)
			w[i].started = true;
		else
			run_job(&w[i], false);
	}
	run_job(&w[0], true);
	for (unsigned i = 1; i < n; i++)
		if (w[i].started)
			pthread_join(w[i].tid, NULL);
	if (sh.progress)
		log_progress_end();
	if (used)
		*used = 0;
	for (unsigned i = 0; i < n; i++) {
		if (!err)
			err = w[i].job.err;
		if (used && w[i].job.len)
			(*used)++;
	}
	return err;
}
