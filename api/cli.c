/*
 * The hugevmm command line: option parsing, and the mapping from errors to
 * exit codes (0 ok, 1 runtime failure, 2 bad input, 3 memory policy not met).
 */
#include <cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/client.h"
#include "api/config_json.h"
#include "api/report_json.h"
#include "api/seccomp_json.h"
#include "api/server.h"
#include "api/telemetry.h"
#include "common/log.h"
#include "memory/host.h"
#include "memory/mem.h"
#include "vmm/acpi.h"
#include "vmm/config.h"
#include "vmm/kvm.h"
#include "vmm/machine_cfg.h"
#include "vmm/seccomp.h"
#include "vmm/vm.h"
#include "vmm/vmm.h"
#include "vmm/x86_boot.h"

#ifndef HUGEVMM_VERSION
#define HUGEVMM_VERSION "0.0.0"
#endif

enum {
	EXIT_RUNTIME = 1,
	EXIT_USAGE = 2
};

static const char usage_main[] =
	"usage: hugevmm [--config-file FILE] [--api-sock PATH] [--report json|human] [-q|-v]\n"
	"       hugevmm COMMAND [OPTIONS]\n"
	"\n"
	"A microVM monitor whose guest memory is placed on huge pages, measured, and reported.\n"
	"\n"
	"Without a command, runs one VM until the guest powers off, resets or exits, or hugevmm\n"
	"gets SIGINT/SIGTERM. The guest's serial console is stdout (and stdin, when it is a\n"
	"terminal; Ctrl-A x quits).\n"
	"  --config-file FILE   Firecracker-style JSON config; the VM boots at once\n"
	"  --api-sock PATH      serve the HTTP/JSON control API on a Unix socket; without a\n"
	"                       config file the VM is configured there and booted by\n"
	"                       PUT /actions {\"action_type\": \"InstanceStart\"}\n"
	"  --report json|human  print the memory coverage report when the VM stops\n"
	"\n"
	"Firecracker's flags, so hugevmm can stand where an orchestrator runs firecracker:\n"
	"  --id ID              instance id (GET /, log lines, metrics); [A-Za-z0-9-], 1-64\n"
	"  --no-api             no control socket (needs --config-file; hugevmm's default too)\n"
	"  --log-path PATH      log lines to a file or FIFO, in Firecracker's format\n"
	"  --level LEVEL        Error, Warning, Info, Debug, Trace (= Debug) or Off\n"
	"  --show-level, --show-log-origin   add the level / file:line to each log line\n"
	"  --metrics-path PATH  metrics as JSON lines: on FlushMetrics, every 60 s, at exit\n"
	"  --no-seccomp         no seccomp filters (a warning says so)\n"
	"  --seccomp-filter FILE  seccomp filters from FILE instead of the built-in ones, in the\n"
	"                       JSON Firecracker's seccompiler-bin reads (not its BPF output;\n"
	"                       `hugevmm seccomp` prints the built-in ones in it)\n"
	"  --boot-timer, --module M, --metadata F, --enable-pci,\n"
	"  --http-api-max-payload-size N, --mmds-size-limit N, --start-time-us N,\n"
	"  --start-time-cpu-us N, --parent-cpu-time-us N\n"
	"                       accepted; a warning says what hugevmm does instead\n"
	"\n"
	"commands:\n"
	"  check --config-file FILE   map, prefault and verify the config's guest memory, print\n"
	"                             the coverage report; no VM is created\n"
	"  status --api-sock PATH     the coverage of a running VM, one bar per region\n"
	"  host                       print what this host offers guest memory\n"
	"  seccomp [--role ROLE]      print the built-in seccomp filters, in the JSON format\n"
	"                             --seccomp-filter takes\n"
	"  acpi --config-file FILE --out DIR\n"
	"                             write the ACPI tables the config's guest gets, one\n"
	"                             file each, as acpidump -b names them\n"
	"\n"
	"options for every command:\n"
	"  -q, --quiet                errors only\n"
	"  -v, --verbose              debug messages\n"
	"  -h, --help                 this text; COMMAND --help for the command's\n"
	"  -V, --version              print the version\n"
	"\n"
	"exit codes: 0 ok (guest powered off or rebooted, or a signal), 1 runtime failure\n"
	"            (including a fatal guest exit), 2 bad input (usage, config, files it\n"
	"            names, the API socket path), 3 a memory policy does not hold; a guest that\n"
	"            writes N to the debug-exit port 0xf4 makes hugevmm exit with N\n";

static const char usage_status[] =
	"usage: hugevmm status --api-sock PATH [--json]\n"
	"\n"
	"Asks a running hugevmm (GET /memory on its control socket) for the coverage of its\n"
	"guest memory, measured now, and shows one bar per region: the shares mapped with 1G,\n"
	"2M and 4K pages and not present, the policy, and KVM's own counts where it has them.\n"
	"  --json    the report as JSON instead\n";

static const char usage_check[] =
	"usage: hugevmm check --config-file FILE [--human] [--hold]\n"
	"\n"
	"Does to memory everything a launch does (map each region aligned, prefault, measure\n"
	"the host page tables, apply policies) without creating a VM, then prints the coverage\n"
	"report as JSON on stdout. Only the memory part of the config is needed; files the\n"
	"config names (kernel, initrd, drives) are checked for existence and access.\n"
	"\n"
	"  --config-file FILE   Firecracker-style JSON config with an optional \"memory\" section\n"
	"  --human              one bar per region instead of JSON\n"
	"  --hold               keep the memory mapped after the report until stdin closes or\n"
	"                       SIGINT/SIGTERM arrives (lets other tools inspect it)\n"
	"\n"
	"exit codes: 0 every policy holds, 2 config error, 3 a policy does not hold, 1 other\n";

static const char usage_host[] =
	"usage: hugevmm host [--config-file FILE] [--human]\n"
	"\n"
	"Prints, as JSON, what this host offers guest memory: kernel, THP and shmem THP\n"
	"settings, hugetlb pools per size, PAGEMAP_SCAN and madvise support, DAX devices, and\n"
	"/dev/kvm (API version, module, memslots, stats fd); and \"advice\": what root should\n"
	"set (THP, shmem THP, hugetlb pool sizes, /dev/kvm access) -- for FILE's memory\n"
	"regions when given. hugevmm never changes a host setting itself.\n";

static const char usage_seccomp[] =
	"usage: hugevmm seccomp [--role ROLE] [--seccomp-filter FILE]\n"
	"\n"
	"Prints hugevmm's built-in seccomp filters, one per thread role, in the JSON format of\n"
	"Firecracker's seccompiler-bin input, which --seccomp-filter takes: a custom filter\n"
	"file starts from it (`hugevmm seccomp > f.json`, edit, `hugevmm --seccomp-filter\n"
	"f.json ...`). System calls are named; ioctl requests and other values are numbers.\n"
	"\n"
	"  --role ROLE            only that role's filter: vmm, api, vcpu or prefault\n"
	"  --seccomp-filter FILE  check FILE as a run would (exit 2 naming what is wrong) and\n"
	"                         print what hugevmm reads from it\n"
	"\n"
	"exit codes: 0 printed, 2 a bad option or filter file, 1 other\n";

static const char usage_acpi[] =
	"usage: hugevmm acpi --config-file FILE --out DIR\n"
	"\n"
	"Writes the ACPI tables a guest of this config gets (RSDP, XSDT, FADT, MADT, DSDT) into\n"
	"DIR, one file each, named as `acpidump -b` names them: rsdp.dat, xsdt.dat, facp.dat,\n"
	"apic.dat, dsdt.dat. `iasl -d dsdt.dat` decompiles one. No VM is created and no memory\n"
	"is mapped. DIR is created when only its parent exists; existing files are replaced.\n"
	"\n"
	"  --config-file FILE   Firecracker-style JSON config\n"
	"  --out DIR            where the files go\n"
	"\n"
	"exit codes: 0 written, 2 config error or unusable DIR (nothing is written), 1 other\n";

static int fail(const struct vmm_err *e)
{
	log_err("%s", e->msg);
	return err_exit_code(e);
}

static int usage_error(const char *usage, const char *fmt, const char *a, const char *b)
{
	char msg[256];

	const char *end = strstr(usage, "\n\n");

	snprintf(msg, sizeof(msg), fmt, a, b);
	log_err("%s", msg);
	/* The synopsis only; --help has the rest. */
	fprintf(stderr, "%.*s\n(--help explains every option)\n",
		(int)(end ? end - usage : (ptrdiff_t)strlen(usage)), usage);
	return EXIT_USAGE;
}

/* Block until stdin reaches EOF or SIGINT/SIGTERM arrives. */
static void hold(void)
{
	struct pollfd pfd[2];
	sigset_t set;
	char buf[256];

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	/* Block only once the fd exists: blocked signals without it would never arrive. */
	pfd[0].fd = signalfd(-1, &set, SFD_CLOEXEC);
	if (pfd[0].fd < 0)
		log_warn("--hold: signalfd: %s; SIGINT/SIGTERM end hugevmm at once",
			 strerror(errno));
	else
		sigprocmask(SIG_BLOCK, &set, NULL);
	pfd[0].events = POLLIN;
	pfd[1].fd = STDIN_FILENO;
	pfd[1].events = POLLIN;
	for (;;) {
		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			break;
		if (pfd[0].revents)
			break;
		if (pfd[1].revents && read(STDIN_FILENO, buf, sizeof(buf)) <= 0)
			break;
	}
	if (pfd[0].fd >= 0)
		close(pfd[0].fd);
}

enum {
	OPT_CONFIG = 1 << 0, /* --config-file FILE (then required) */
	OPT_REPORT = 1 << 1, /* --report json|human */
	OPT_HUMAN = 1 << 2,  /* --human */
	OPT_HOLD = 1 << 3,   /* --hold */
	OPT_API = 1 << 4,    /* --api-sock PATH */
	OPT_JSON = 1 << 5,   /* --json */
	OPT_CONFIG_OPTIONAL = 1 << 6,
	OPT_FC = 1 << 7, /* Firecracker's flags */
	OPT_OUT = 1 << 8, /* --out DIR */
	OPT_ROLE = 1 << 9,          /* --role ROLE */
	OPT_SECCOMP_FILE = 1 << 10, /* --seccomp-filter FILE */
};

struct cli_opts {
	const char *config, *report, *api_sock, *out, *role;
	int human, hold, json;
	/* Firecracker's */
	const char *id, *log_path, *level, *metrics_path, *seccomp_filter;
	int no_api, show_level, show_origin, no_seccomp;
};

/* Firecracker's flags hugevmm takes but does not act on: what it does instead. */
static const struct {
	const char *flag;
	bool arg;
	const char *instead; /* NULL: accepted silently (hugevmm already behaves so) */
} fc_flags[] = {
	{"boot-timer", false, "no boot-timer device; bench/ measures launch to first guest line"},
	{"module", true, "hugevmm's log lines have no module path to filter on"},
	{"metadata", true, "no MMDS (not on the roadmap)"},
	{"mmds-size-limit", true, "no MMDS (not on the roadmap)"},
	{"enable-pci", false, "hugevmm's devices are on the ISA bus and virtio-mmio, not PCI"},
	{"http-api-max-payload-size", true,
	 "request bodies are limited to 64 KiB (413 above), whatever the flag says"},
	{"start-time-us", true, NULL},
	{"start-time-cpu-us", true, NULL},
	{"parent-cpu-time-us", true, NULL},
};
#define FC_FLAG_BASE 1000

/* Firecracker's instance ids: alphanumerics and '-', 1 to 64 characters. */
static bool id_valid(const char *id)
{
	size_t n = strlen(id);

	if (n < 1 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= 'A' && id[i] <= 'Z') ||
		      (id[i] >= '0' && id[i] <= '9') || id[i] == '-'))
			return false;
	return true;
}


/*
 * One parser for every command: the options in @allowed plus -q, -v, -h.
 * Returns -1 to go on, else the exit status (help printed, or a usage error).
 */
static int parse_opts(int argc, char **argv, unsigned allowed, const char *cmd, const char *usage,
		      struct cli_opts *o)
{
	static struct option opts[64] = {
		{"config-file", required_argument, NULL, 'c'},
		{"report", required_argument, NULL, 'r'},
		{"human", no_argument, NULL, 'H'},
		{"hold", no_argument, NULL, 'o'},
		{"api-sock", required_argument, NULL, 'a'},
		{"json", no_argument, NULL, 'j'},
		{"quiet", no_argument, NULL, 'q'},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{"id", required_argument, NULL, 'i'},
		{"no-api", no_argument, NULL, 'N'},
		{"log-path", required_argument, NULL, 'L'},
		{"level", required_argument, NULL, 'l'},
		{"show-level", no_argument, NULL, 'S'},
		{"show-log-origin", no_argument, NULL, 'O'},
		{"metrics-path", required_argument, NULL, 'M'},
		{"version", no_argument, NULL, 'V'},
		{"snapshot-version", no_argument, NULL, 'X'},
		{"describe-snapshot", required_argument, NULL, 'X'},
		{"out", required_argument, NULL, 'u'},
		{"no-seccomp", no_argument, NULL, 'Z'},
		{"seccomp-filter", required_argument, NULL, 'F'},
		{"role", required_argument, NULL, 'R'},
	};
	static size_t nopts;
	int quiet = 0, verbose = 0, c;
	enum log_level lvl;

	if (!nopts) {
		while (opts[nopts].name)
			nopts++;
		for (size_t i = 0; i < ARRAY_SIZE(fc_flags); i++)
			opts[nopts++] = (struct option){fc_flags[i].flag,
							fc_flags[i].arg ? required_argument
									: no_argument,
							NULL, FC_FLAG_BASE + (int)i};
		opts[nopts] = (struct option){0};
	}
	memset(o, 0, sizeof(*o));
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:qvh", opts, NULL)) != -1) {
		unsigned need = c == 'c'   ? OPT_CONFIG
				: c == 'r' ? OPT_REPORT
				: c == 'H' ? OPT_HUMAN
				: c == 'o' ? OPT_HOLD
				: c == 'a' ? OPT_API
				: c == 'j' ? OPT_JSON
				: c == 'u' ? OPT_OUT
				: c == 'R' ? OPT_ROLE
				: c == 'F' ? OPT_SECCOMP_FILE
				: strchr("iNLlSOMXZ", c) || c >= FC_FLAG_BASE ? OPT_FC
									     : 0;

		if (need && !(allowed & need))
			c = '?';
		switch (c) {
		case 'c':
			o->config = optarg;
			break;
		case 'r':
			o->report = optarg;
			break;
		case 'H':
			o->human = 1;
			break;
		case 'o':
			o->hold = 1;
			break;
		case 'a':
			o->api_sock = optarg;
			break;
		case 'j':
			o->json = 1;
			break;
		case 'u':
			o->out = optarg;
			break;
		case 'R':
			o->role = optarg;
			break;
		case 'F':
			o->seccomp_filter = optarg;
			break;
		case 'Z':
			o->no_seccomp = 1;
			break;
		case 'q':
			quiet = 1;
			break;
		case 'v':
			verbose = 1;
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		case 'V':
			printf("hugevmm %s\n", HUGEVMM_VERSION);
			return 0;
		case 'i':
			if (!id_valid(optarg))
				return usage_error(usage, "%s--id: \"%s\" is not an instance id; use 1 to 64 "
						   "letters, digits and '-'", cmd, optarg);
			o->id = optarg;
			break;
		case 'N':
			o->no_api = 1;
			break;
		case 'L':
			o->log_path = optarg;
			break;
		case 'l':
			if (log_level_from_name(optarg, &lvl))
				return usage_error(usage, "%s--level: \"%s\" is not a level; use Error, "
						   "Warning, Info, Debug, Trace or Off", cmd, optarg);
			o->level = optarg;
			break;
		case 'S':
			o->show_level = 1;
			break;
		case 'O':
			o->show_origin = 1;
			break;
		case 'M':
			o->metrics_path = optarg;
			break;
		case 'X':
			return usage_error(usage, "%s%s: hugevmm has no snapshots", cmd,
					   argv[optind - 1]);
		default:
			if (c >= FC_FLAG_BASE && c < FC_FLAG_BASE + (int)ARRAY_SIZE(fc_flags)) {
				const char *instead = fc_flags[c - FC_FLAG_BASE].instead;

				if (instead)
					log_warn("--%s: accepted and ignored: %s",
						 fc_flags[c - FC_FLAG_BASE].flag, instead);
				break;
			}
			return usage_error(usage, "%sunknown option \"%s\"", cmd, argv[optind - 1]);
		}
	}
	if (quiet)
		log_set_level(LOG_ERR);
	else if (verbose)
		log_set_level(LOG_DEBUG);
	if (optind < argc)
		return usage_error(usage, "%sunexpected argument \"%s\"", cmd, argv[optind]);
	if ((allowed & OPT_CONFIG) && !(allowed & OPT_CONFIG_OPTIONAL) && !o->config)
		return usage_error(usage, "%s--config-file FILE is required", cmd, "");
	if (o->report && strcmp(o->report, "json") && strcmp(o->report, "human"))
		return usage_error(usage, "%s--report: \"%s\" is not json or human", cmd,
				   o->report);
	return -1;
}

static int cmd_check(int argc, char **argv)
{
	struct hv_mmu_stats kvm = {.available = false};
	struct vmm_err e = {0};
	struct vm_config *cfg;
	struct guest_mem *gm;
	struct cli_opts o;
	int rc, vrc;

	rc = parse_opts(argc, argv, OPT_CONFIG | OPT_HUMAN | OPT_HOLD, "check: ", usage_check, &o);
	if (rc >= 0)
		return rc;

	cfg = calloc(1, sizeof(*cfg));
	gm = calloc(1, sizeof(*gm));
	if (!cfg || !gm) {
		free(cfg);
		free(gm);
		log_err("out of memory");
		return EXIT_RUNTIME;
	}
	rc = cfg_json_load(o.config, cfg, &e);
	if (!rc)
		rc = vm_config_finalize(cfg, false, &e);
	if (!rc)
		rc = vm_config_check_files(cfg, &e);
	if (!rc)
		rc = mem_map(gm, cfg->regions, cfg->nregions, &e);
	if (rc)
		goto out;

	snprintf(kvm.reason, sizeof(kvm.reason), "no VM: `hugevmm check` creates none");
	/* Registration with the drives' io_uring happens when a VM starts: say so, not "none". */
	for (unsigned i = 0; i < cfg->ndrives; i++)
		for (unsigned k = 0; cfg->drives[i].direct && k < gm->nregions; k++)
			snprintf(gm->regions[k].uring_why, sizeof(gm->regions[k].uring_why), "%s",
				 "no VM: `hugevmm check` registers nothing with io_uring");
	vrc = mem_verify(gm, &e);
	if (o.human)
		report_memory_human(stdout, gm, &kvm);
	else
		report_print(stdout, report_memory(gm, &kvm));
	fflush(stdout);
	if (o.hold)
		hold();
	mem_unmap(gm);
	rc = vrc;
out:
	free(cfg);
	free(gm);
	return rc ? fail(&e) : 0;
}

/* The tables a guest of the config gets, as files: for tests and for debugging discovery. */
static int cmd_acpi(int argc, char **argv)
{
	struct acpi_tables t = {0};
	struct vmm_err e = {0};
	struct vm_config *cfg;
	struct machine m;
	struct cli_opts o;
	int rc;

	rc = parse_opts(argc, argv, OPT_CONFIG | OPT_OUT, "acpi: ", usage_acpi, &o);
	if (rc >= 0)
		return rc;
	if (!o.out || !o.out[0])
		return usage_error(usage_acpi, "%s%s", "acpi: --out DIR is required", "");
	cfg = calloc(1, sizeof(*cfg));
	if (!cfg) {
		log_err("out of memory");
		return EXIT_RUNTIME;
	}
	rc = cfg_json_load(o.config, cfg, &e);
	rc = rc ? rc : vm_config_finalize(cfg, false, &e);
	rc = rc ? rc : machine_from_config(cfg, &m, &e);
	if (!rc) {
		/* At the address a guest gets them, so the pointers between them are the same. */
		rc = acpi_build(&m, BOOT_ACPI_ADDR, &t);
		if (rc)
			err_set(&e, rc == -EINVAL ? ERR_CONFIG : ERR_RUNTIME, rc,
				"building the ACPI tables of %u vCPUs and %u virtio devices: %s",
				m.vcpus, m.nvirtio, strerror(-rc));
	}
	rc = rc ? rc : acpi_write_dir(&t, o.out, &e);
	acpi_tables_free(&t);
	free(cfg);
	return rc ? fail(&e) : 0;
}

static int cmd_host(int argc, char **argv)
{
	struct host_mem_caps mc;
	struct hv_probe hv;
	struct cli_opts o;
	struct vmm_err e = {0};
	struct vm_config *cfg = NULL;
	int rc = parse_opts(argc, argv, OPT_CONFIG | OPT_CONFIG_OPTIONAL | OPT_HUMAN, "host: ",
			    usage_host, &o);

	if (rc >= 0)
		return rc;
	/* With a config: the advice counts what its regions need (nothing is mapped). */
	if (o.config) {
		cfg = calloc(1, sizeof(*cfg));
		if (!cfg) {
			log_err("out of memory");
			return EXIT_RUNTIME;
		}
		rc = cfg_json_load(o.config, cfg, &e);
		rc = rc ? rc : vm_config_finalize(cfg, false, &e);
		if (rc) {
			free(cfg);
			return fail(&e);
		}
	}
	host_mem_probe(&mc);
	kvm_probe(&hv);
	rc = 0;
	if (o.human)
		report_host_human(stdout, &mc, &hv, cfg ? cfg->regions : NULL, cfg ? cfg->nregions : 0);
	else
		rc = report_print(stdout, report_host(&mc, &hv, cfg ? cfg->regions : NULL,
						      cfg ? cfg->nregions : 0))
			     ? EXIT_RUNTIME
			     : 0;
	free(cfg);
	return rc;
}

/* Print the coverage report of the stopped VM, measured once more. */
static void final_report(struct vmm *m, const char *how)
{
	struct vmm_cmd *c = vmm_cmd_new(VMM_OP_MEMORY);

	if (!c)
		return;
	vmm_exec(m, c);
	if (c->err.kind != ERR_NONE)
		log_warn("no coverage report: %s", c->err.msg);
	else if (!strcmp(how, "human"))
		report_memory_human(stdout, &c->memory->mem, &c->memory->kvm);
	else
		report_print(stdout, report_memory(&c->memory->mem, &c->memory->kvm));
	vmm_cmd_free(c);
}

/* --log-path, --level, --show-*, --metrics-path: Firecracker's logger and metrics. */
static int telemetry_from_flags(const struct cli_opts *o, struct vmm_err *e)
{
	struct cfg_logger l = {.set = true};
	struct cfg_metrics mc = {.set = true};
	int r = 0;

	if (o->level) {
		l.has_level = true;
		enum log_level lvl = LOG_INFO;

		(void)log_level_from_name(o->level, &lvl); /* parse_opts checked the name */
		l.level = (int)lvl;
	}
	l.show_level = o->show_level;
	l.show_origin = o->show_origin;
	if (o->log_path)
		snprintf(l.path, sizeof(l.path), "%s", o->log_path);
	if (o->log_path || o->level)
		r = api_logger_apply(&l, "--log-path", e);
	if (!r && o->metrics_path) {
		snprintf(mc.path, sizeof(mc.path), "%s", o->metrics_path);
		r = api_metrics_apply(&mc, "--metrics-path", e);
	}
	return r;
}

/* The last metrics line, as the VM stops (Firecracker writes one at exit too). */
static void final_metrics(struct vmm *m, const struct api_stats *st)
{
	struct vmm_cmd *c;

	if (!api_metrics_enabled() || !(c = vmm_cmd_new(VMM_OP_METRICS)))
		return;
	vmm_exec(m, c);
	(void)api_metrics_flush(&c->metrics, st);
	vmm_cmd_free(c);
}

/* The process's seccomp policy: the threads read it for the whole run. */
static struct sc_policy seccomp_policy;

/*
 * The policy of the flags: the built-in filters unless --no-seccomp (off, with
 * a warning) or --seccomp-filter FILE (seccompiler's JSON; a file libseccomp
 * cannot compile is refused now, exit 2, not when a thread installs it).
 */
static int seccomp_from_flags(const struct cli_opts *o, struct sc_policy *p, struct vmm_err *e)
{
	char why[512];
	int r;

	memset(p, 0, sizeof(*p));
	p->source = SC_SOURCE_OFF;
	if (o->no_seccomp && o->seccomp_filter)
		return err_set(e, ERR_CONFIG, -EINVAL,
			       "--no-seccomp and --seccomp-filter FILE exclude each other; give "
			       "one");
	if (o->no_seccomp) {
		log_warn("seccomp filters are off (--no-seccomp): a compromised thread can make any "
			 "system call");
	} else if (o->seccomp_filter) {
		r = sc_json_load(o->seccomp_filter, p, e);
		if (r)
			return r;
	} else {
		r = sc_policy_default(p);
		if (r)
			return err_set(e, ERR_RUNTIME, r, "seccomp: out of memory");
	}
	/*
	 * A file's filters are compiled now, so a bad one is refused before anything runs;
	 * the built-in ones (test_seccomp compiles them) by each role's first thread, so a VM
	 * pays only for the roles it has.
	 */
	r = p->source == SC_SOURCE_FILE ? sc_policy_compile(p, why, sizeof(why)) : 0;
	if (r) {
		if (p->source == SC_SOURCE_FILE)
			err_set(e, ERR_CONFIG, r,
				"--seccomp-filter %s: libseccomp refuses it: %s (rule N is the "
				"role's filter[N]); change or remove that rule",
				o->seccomp_filter, why);
		else
			err_set(e, ERR_RUNTIME, r, "%s", why);
		sc_policy_free(p);
		return r;
	}
	sc_status_set_policy(p);
	return 0;
}

static int cmd_run(int argc, char **argv)
{
	struct vmm_opts vo = {.console_input = true, .signals = true};
	struct vmm_err e = {0};
	struct api_server *api = NULL;
	struct vm_config *cfg = NULL;
	struct vmm *m = NULL;
	struct cli_opts o;
	char default_id[32];
	int rc, status;

	rc = parse_opts(argc, argv,
			OPT_CONFIG | OPT_CONFIG_OPTIONAL | OPT_REPORT | OPT_API | OPT_FC |
				OPT_SECCOMP_FILE,
			"", usage_main, &o);
	if (rc >= 0)
		return rc;
	if (o.no_api && !o.config)
		return usage_error(usage_main, "%s%s", "--no-api needs --config-file FILE", "");
	if (o.no_api && o.api_sock)
		return usage_error(usage_main, "%s%s", "--no-api and --api-sock PATH exclude each other",
				   "");
	if (!o.config && !o.api_sock)
		return usage_error(usage_main, "%s%s",
				   "--config-file FILE or --api-sock PATH is required", "");
	/* One instance id for GET /, log lines and metrics (Firecracker's --id). */
	if (!o.id) {
		snprintf(default_id, sizeof(default_id), "hugevmm-%d", (int)getpid());
		o.id = default_id;
	}
	vo.id = o.id;
	log_set_instance_id(o.id);
	api_metrics_set_id(o.id);
	/* Files hugevmm creates (sockets, logs, serial output) are the user's alone. */
	umask(077);
	/* Nothing hugevmm runs (it runs nothing) may gain privileges: before any thread starts. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		log_warn("PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
	/* Local time's rules read now: a log line's timestamp must not open a file later. */
	tzset();
	rc = telemetry_from_flags(&o, &e);
	rc = rc ? rc : seccomp_from_flags(&o, &seccomp_policy, &e);
	if (rc)
		return fail(&e);
	vo.seccomp = seccomp_policy.source == SC_SOURCE_OFF ? NULL : &seccomp_policy;

	cfg = calloc(1, sizeof(*cfg));
	if (!cfg) {
		log_err("out of memory");
		return EXIT_RUNTIME;
	}
	rc = o.config ? cfg_json_load(o.config, cfg, &e) : 0;
	/* The config's logger and metrics sections, after (and over) the flags. */
	if (!rc && cfg->logger.set)
		rc = api_logger_apply(&cfg->logger, "logger.log_path", &e);
	if (!rc && cfg->metrics.set)
		rc = api_metrics_apply(&cfg->metrics, "metrics.metrics_path", &e);
	rc = rc ? rc : vmm_create(&m, &vo, &e);
	if (!rc && o.config)
		vmm_configure(m, cfg);
	free(cfg);
	/* The socket before the boot: an orchestrator may query a VM that is starting. */
	rc = rc || !o.api_sock ? rc : api_server_start(&api, o.api_sock, m, &e);
	if (!rc && o.config) {
		/* With a config file the VM boots at once; without, InstanceStart boots it. */
		struct vmm_cmd *start = vmm_cmd_new(VMM_OP_START);

		if (!start) {
			rc = err_set(&e, ERR_RUNTIME, -ENOMEM, "out of memory");
		} else {
			vmm_exec(m, start);
			if (start->err.kind != ERR_NONE) {
				e = start->err;
				rc = -1;
			}
			vmm_cmd_free(start);
		}
	}
	if (rc) {
		/* Requests that came in meanwhile are answered (503) before the socket goes. */
		if (m)
			vmm_shutdown(m);
		api_server_stop(api);
		vmm_destroy(m);
		api_telemetry_close();
		sc_policy_free(&seccomp_policy);
		return fail(&e);
	}
	api_metrics_attach(m, api_server_stats(api));
	/* What building the VM allocated and freed goes back to the kernel now. */
	malloc_trim(0);
	status = vmm_run(m);
	final_metrics(m, api_server_stats(api));
	api_server_stop(api);
	if (o.report)
		final_report(m, o.report);
	vmm_destroy(m);
	api_telemetry_close();
	sc_policy_free(&seccomp_policy);
	return status;
}

/* The built-in filters (or those of --seccomp-filter FILE) as a filter file. */
static int cmd_seccomp(int argc, char **argv)
{
	unsigned roles = (1u << SC_NROLES) - 1;
	struct vmm_err e = {0};
	struct sc_policy *p;
	struct cli_opts o;
	int rc = parse_opts(argc, argv, OPT_ROLE | OPT_SECCOMP_FILE, "seccomp: ", usage_seccomp,
			    &o);

	if (rc >= 0)
		return rc;
	if (o.role) {
		int r = sc_role_of(o.role);

		if (r < 0)
			return usage_error(usage_seccomp,
					   "seccomp: --role: \"%s\" is not a thread role; use vmm, "
					   "api, vcpu or prefault%s",
					   o.role, "");
		roles = 1u << r;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		log_err("out of memory");
		return EXIT_RUNTIME;
	}
	rc = seccomp_from_flags(&o, p, &e);
	if (!rc && sc_json_print(stdout, sc_json_render(p, roles)))
		rc = err_set(&e, ERR_RUNTIME, -EIO, "seccomp: cannot print the filters");
	sc_policy_free(p);
	free(p);
	return rc ? fail(&e) : 0;
}

static unsigned num_of(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsNumber(v) ? (unsigned)v->valuedouble : 0;
}

/* One line under the bars: GET /'s seccomp object (nothing when it is not there). */
static void status_seccomp(const char *sock)
{
	struct vmm_err e = {0};
	const cJSON *s, *src, *path, *t;
	char *body = NULL;
	cJSON *info;

	if (api_client_request(sock, "GET", "/", NULL, &body, &e) != 200) {
		free(body);
		return;
	}
	info = cJSON_Parse(body);
	free(body);
	s = cJSON_GetObjectItemCaseSensitive(info, "seccomp");
	src = cJSON_GetObjectItemCaseSensitive(s, "source");
	path = cJSON_GetObjectItemCaseSensitive(s, "path");
	t = cJSON_GetObjectItemCaseSensitive(s, "threads");
	if (cJSON_IsString(src) && cJSON_IsObject(t))
		printf("seccomp: %s%s%s%s, threads confined: vmm %u, api %u, vcpu %u, prefault %u; "
		       "io_uring rings restricted %u, unrestricted %u\n",
		       src->valuestring, cJSON_IsString(path) ? " (" : "",
		       cJSON_IsString(path) ? path->valuestring : "",
		       cJSON_IsString(path) ? ")" : "", num_of(t, "vmm"), num_of(t, "api"),
		       num_of(t, "vcpu"), num_of(t, "prefault"), num_of(s, "io_uring_restricted"),
		       num_of(s, "io_uring_unrestricted"));
	cJSON_Delete(info);
}

static int cmd_status(int argc, char **argv)
{
	struct vmm_err e = {0};
	struct cli_opts o;
	char *body = NULL;
	cJSON *rep;
	int rc = parse_opts(argc, argv, OPT_API | OPT_JSON, "status: ", usage_status, &o);

	if (rc >= 0)
		return rc;
	if (!o.api_sock)
		return usage_error(usage_status, "status: %s%s", "--api-sock PATH is required", "");
	rc = api_client_request(o.api_sock, "GET", "/memory", NULL, &body, &e);
	if (rc < 0)
		return fail(&e);
	rep = cJSON_Parse(body);
	if (rc != 200 || !rep) {
		const cJSON *f = cJSON_GetObjectItemCaseSensitive(rep, "fault_message");

		log_err("GET /memory: %d %s", rc, cJSON_IsString(f) ? f->valuestring : body);
		cJSON_Delete(rep);
		free(body);
		return EXIT_RUNTIME;
	}
	if (o.json)
		report_print(stdout, rep);
	else {
		report_memory_human_json(stdout, rep);
		cJSON_Delete(rep);
		status_seccomp(o.api_sock);
	}
	free(body);
	return 0;
}

int main(int argc, char **argv)
{
	/*
	 * Configs are large fixed structs (~120 KiB: PATH_MAX per path) copied while a VM is
	 * built; from the heap, the freed copies would stay resident for the VM's life. Served by
	 * mmap they go back to the kernel when freed (the VMM's RSS without guest RAM drops by
	 * about a quarter). The library leaves malloc alone; this is the binary's choice.
	 */
	mallopt(M_MMAP_THRESHOLD, 64 * 1024);
	/*
	 * One arena for every thread: a thread arena's heap, the first time it shrinks, makes
	 * glibc open /proc/sys/vm/overcommit_memory -- inside free(), on a confined thread
	 * whose filter forbids the open. hugevmm's threads allocate little; one lock is cheap.
	 */
	mallopt(M_ARENA_MAX, 1);
	if (argc < 2) {
		fputs(usage_main, stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		fputs(usage_main, stdout);
		return 0;
	}
	if (!strcmp(argv[1], "-V") || !strcmp(argv[1], "--version")) {
		printf("hugevmm %s\n", HUGEVMM_VERSION);
		return 0;
	}
	if (!strcmp(argv[1], "check"))
		return cmd_check(argc - 1, argv + 1);
	if (!strcmp(argv[1], "host"))
		return cmd_host(argc - 1, argv + 1);
	if (!strcmp(argv[1], "acpi"))
		return cmd_acpi(argc - 1, argv + 1);
	if (!strcmp(argv[1], "seccomp"))
		return cmd_seccomp(argc - 1, argv + 1);
	if (!strcmp(argv[1], "status"))
		return cmd_status(argc - 1, argv + 1);
	if (argv[1][0] == '-')
		return cmd_run(argc, argv);
	return usage_error(usage_main, "unknown command \"%s\"%s", argv[1], "");
}
