/*
 * Mutation fuzzing of the config parser and validator: seeds from configs/
 * and a few built-in documents, mutated with a fixed-seed PRNG (so a failure
 * reproduces), run through parse + finalize. Every input must end in success
 * or a config error with a message; under ASan/UBSan any memory error aborts.
 *
 *   fuzz_config [iterations] [seed]      (defaults: 20000, 1)
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/config_json.h"
#include "common/log.h"
#include "fuzz.h"

#define MAX_SEEDS 64
#define MAX_DOC   8192

static const char *const builtin[] = {
	"{\"memory\":{\"regions\":[{\"id\":\"a\",\"size_mib\":64,\"backing\":\"thp\","
	"\"page_size\":\"2M\",\"prefault\":true,\"policy\":\"require\",\"min_coverage\":1.0},"
	"{\"size_mib\":1024,\"backing\":\"hugetlb\",\"page_size\":\"1G\",\"path\":\"/dev/"
	"hugepages\"},"
	"{\"size_mib\":64,\"backing\":\"file\",\"path\":\"/tmp/"
	"x\",\"dax\":true,\"host_offset_kib\":4},"
	"{\"size_mib\":64,\"backing\":\"devdax\",\"device\":\"dax0.0\",\"prefault_threads\":2}]}}",
	"{\"boot-source\":{\"kernel_image_path\":\"k\",\"boot_args\":\"console=ttyS0\","
	"\"initrd_path\":\"i\"},\"machine-config\":{\"vcpu_count\":2,\"mem_size_mib\":256,"
	"\"huge_pages\":\"2M\",\"smt\":false},\"drives\":[{\"drive_id\":\"r\",\"path_on_host\":"
	"\"d\","
	"\"is_root_device\":true,\"is_read_only\":false}],\"network-interfaces\":[{\"iface_id\":"
	"\"e\","
	"\"host_dev_name\":\"tap0\",\"guest_mac\":\"06:00:00:00:00:01\"}],\"logger\":{\"level\":"
	"\"x\"}}",
	"{\"machine-config\":{\"vcpu_count\":1,\"mem_size_mib\":128},\"balloon\":{\"amount_mib\":"
	"64,\"deflate_on_oom\":true,\"stats_polling_interval_s\":1,\"free_page_hinting\":false,"
	"\"free_page_reporting\":true},\"memory\":{\"regions\":[{\"size_mib\":64,\"backing\":"
	"\"thp\",\"reclaim\":\"return\"},{\"size_mib\":64,\"backing\":\"hugetlb\",\"reclaim\":"
	"\"keep\"}]}}",
};

static const char *const tokens[] = {
	"{",
	"}",
	"[",
	"]",
	"\"",
	",",
	":",
	"null",
	"true",
	"false",
	"-1",
	"0",
	"1e309",
	"-0",
	"4294967296",
	"0.5",
	"1e-320",
	"\"memory\"",
	"\"regions\"",
	"\"backing\"",
	"\"hugetlb\"",
	"\"size_mib\"",
	"\"page_size\"",
	"\"1G\"",
	"\"\\u0000\"",
	"\"\\ud800\"",
	"\xff\xfe",
	" ",
	"\n",
	"\"machine-config\"",
	"\"drives\"",
	"\"balloon\"",
	"\"amount_mib\"",
	"\"reclaim\"",
	"\"return\"",
	"4294967295",
	"65536",
	"{\"a\":1,\"a\":2}",
	"[[[[[[[[[[",
	"]]]]]]]]]]",
};

static char *seeds[MAX_SEEDS];
static size_t seed_len[MAX_SEEDS];
static unsigned nseeds;
static void add_seed(const char *s, size_t n)
{
	if (nseeds == MAX_SEEDS || n >= MAX_DOC)
		return;
	seeds[nseeds] = malloc(n + 1);
	memcpy(seeds[nseeds], s, n);
	seeds[nseeds][n] = '\0';
	seed_len[nseeds++] = n;
}

static void load_dir(const char *dir)
{
	struct dirent *d;
	DIR *dp = opendir(dir);

	if (!dp)
		return;
	while ((d = readdir(dp))) {
		char path[512], buf[MAX_DOC];
		size_t n;
		FILE *f;

		if (!strstr(d->d_name, ".json"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, d->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		n = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		add_seed(buf, n);
	}
	closedir(dp);
}

/* Apply 1-4 random mutations to @doc of length *@n (capacity MAX_DOC). */
static void mutate(char *doc, size_t *n)
{
	unsigned k = 1 + (unsigned)(next() % 4);

	while (k--) {
		size_t at = *n ? (size_t)(next() % *n) : 0, len;

		switch (next() % 6) {
		case 0: /* flip bits */
			fuzz_flip(doc, *n, at);
			break;
		case 1: /* delete a range */
			*n = fuzz_delete(doc, *n, at, (size_t)(next() % 16));
			break;
		case 2: /* insert a token */
			*n = fuzz_insert(doc, *n, MAX_DOC, at,
					 tokens[next() % (sizeof(tokens) / sizeof(tokens[0]))]);
			break;
		case 3: { /* duplicate a range */
			size_t from = *n ? (size_t)(next() % *n) : 0;

			len = (size_t)(next() % 64);
			if (from + len > *n)
				len = *n - from;
			if (*n + len >= MAX_DOC)
				break;
			memmove(doc + at + len, doc + at, *n - at);
			memmove(doc + at, doc + (from < at ? from : from + len), len);
			*n += len;
			break;
		}
		case 4: /* splice the tail of another seed */
		{
			unsigned s = (unsigned)(next() % nseeds);
			size_t from = seed_len[s] ? (size_t)(next() % seed_len[s]) : 0;

			len = seed_len[s] - from;
			if (at + len >= MAX_DOC)
				len = MAX_DOC - at - 1;
			memcpy(doc + at, seeds[s] + from, len);
			*n = at + len;
			break;
		}
		default: /* replace a digit run with a big or odd number */
			if (*n && doc[at] >= '0' && doc[at] <= '9')
				doc[at] = "9-.e0"[next() % 5];
			break;
		}
	}
}

int main(int argc, char **argv)
{
	unsigned long iters = argc > 1 ? strtoul(argv[1], NULL, 0) : 20000;
	unsigned long accepted = 0, rejected = 0;
	static char doc[MAX_DOC];
	static struct vm_config c;

	fuzz_seed(argc, argv, 2);
	log_set_sink(quiet, NULL);
	load_dir(getenv("HUGEVMM_CONFIGS") ? getenv("HUGEVMM_CONFIGS") : "configs");
	for (unsigned i = 0; i < sizeof(builtin) / sizeof(builtin[0]); i++)
		add_seed(builtin[i], strlen(builtin[i]));

	for (unsigned long i = 0; i < iters; i++) {
		unsigned s = (unsigned)(next() % nseeds);
		size_t n = seed_len[s];
		struct vmm_err e = {0};
		int rc;

		memcpy(doc, seeds[s], n);
		mutate(doc, &n);
		rc = cfg_json_parse(doc, n, &c, &e);
		if (!rc)
			rc = vm_config_finalize(&c, false, &e);
		if (!rc) {
			accepted++;
			continue;
		}
		if (e.kind != ERR_CONFIG || !e.msg[0]) {
			fprintf(stderr,
				"fuzz_config: iteration %lu: error kind %d without a config "
				"message for input:\n%.*s\n",
				i, e.kind, (int)n, doc);
			return 1;
		}
		rejected++;
	}
	printf("fuzz_config: %lu inputs, %lu accepted, %lu rejected with a message\n", iters,
	       accepted, rejected);
	for (unsigned i = 0; i < nseeds; i++)
		free(seeds[i]);
	/* Mutants that still parse reach the validator's deeper paths; none would mean dead seeds.
	 */
	if (accepted * 100 < iters) {
		fprintf(stderr,
			"fuzz_config: only %lu of %lu inputs parsed; the seeds are broken\n",
			accepted, iters);
		return 1;
	}
	return accepted + rejected == iters ? 0 : 1;
}
