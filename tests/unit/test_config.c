/*
 * Config parsing and validation: every error path names its JSON path, the
 * value and a remedy, and is an ERR_CONFIG (exit 2); Firecracker's schema is
 * accepted; every file in configs/ parses and validates.
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>

#include <cJSON.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "api/config_json.h"
#include "api/report_json.h"
#include "api/telemetry.h"
#include "common/log.h"
#include "vmm/config_drive.h"

static char warnings[4096];

static void capture(enum log_level lvl, const char *msg, void *opaque)
{
	size_t n = strlen(warnings);

	(void)opaque;
	if (lvl <= LOG_WARN)
		snprintf(warnings + n, sizeof(warnings) - n, "%s\n", msg);
}

static int setup(void **state)
{
	(void)state;
	warnings[0] = '\0';
	log_set_sink(capture, NULL);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	log_set_sink(NULL, NULL);
	return 0;
}

/* Parse and finalize @json as `hugevmm check` does. */
static int load(const char *json, struct vm_config *c, struct vmm_err *e)
{
	int rc;

	memset(e, 0, sizeof(*e));
	rc = cfg_json_parse(json, strlen(json), c, e);
	if (!rc)
		rc = vm_config_finalize(c, false, e);
	return rc;
}

struct bad {
	const char *json;
	const char *want[3]; /* substrings the message must contain */
};

#define R(x) "{\"memory\":{\"regions\":[" x "]}}"
#define BAL(x) "{\"balloon\": {\"amount_mib\": 16, \"deflate_on_oom\": true" x "}}"
#define DRV(n) "{\"drive_id\": \"d" #n "\", \"path_on_host\": \"/x\", \"is_root_device\": false}"
#define D17                                                                                     \
	DRV(0) "," DRV(1) "," DRV(2) "," DRV(3) "," DRV(4) "," DRV(5) "," DRV(6) "," DRV(7) "," \
	DRV(8) "," DRV(9) "," DRV(10) "," DRV(11) "," DRV(12) "," DRV(13) "," DRV(14) ","      \
	DRV(15) "," DRV(16)

static const struct bad bad_cases[] = {
	/* JSON syntax: line and column */
	{"{\n  \"machine-config\": {\n    \"vcpu_count\": 2,,\n  }\n}",
	 {"invalid JSON at line 3, column 22 (end of line)"}},
	{"{\"memory\": {", {"invalid JSON at line 1, column 12"}},
	{"[1, 2]", {"config: expected an object", "an array"}},
	{"{} {}", {"unexpected text after the JSON object at line 1, column 4"}},
	{"", {"invalid JSON at line 1, column 1"}},
	/* top level */
	{"{\"memroy\": {}}", {"memroy: unknown field", "memory"}},
	{"{\"memory\": {}, \"memory\": {}}", {"memory: duplicate key"}},
	/* boot-source */
	{"{\"boot-source\": {}}", {"boot-source.kernel_image_path: missing"}},
	{"{\"boot-source\": {\"kernel_image_path\": 5}}",
	 {"boot-source.kernel_image_path: expected a string, got a number 5"}},
	{"{\"boot-source\": {\"kernel_image_path\": \"k\", \"bootargs\": \"x\"}}",
	 {"boot-source.bootargs: unknown field", "boot_args"}},
	{"{\"boot-source\": []}", {"boot-source: expected an object, got an array"}},
	{"{\"boot-source\": {\"kernel_image_path\": \"k\", \"boot_protocol\": \"efi\"}}",
	 {"boot-source.boot_protocol: \"efi\" is not a boot protocol", "\"linux\" or \"pvh\""}},
	/* machine-config */
	{"{\"machine-config\": {\"vcpu_count\": 0}}",
	 {"machine-config.vcpu_count: 0 is out of range; use 1 to 32"}},
	{"{\"machine-config\": {\"vcpu_count\": 1.5}}",
	 {"machine-config.vcpu_count: expected an integer, got a number 1.5"}},
	{"{\"machine-config\": {\"vcpu_count\": \"2\"}}",
	 {"machine-config.vcpu_count: expected an integer, got a string \"2\""}},
	{"{\"machine-config\": {\"mem_size_mib\": 0}}",
	 {"machine-config.mem_size_mib: 0 is out of range"}},
	{"{\"machine-config\": {\"huge_pages\": \"1G\"}}",
	 {"machine-config.huge_pages: \"1G\" is not known", "\"None\", \"Transparent\", \"2M\""}},
	{"{\"machine-config\": {\"vcpu_count\": 1, \"huge_pages\": \"2M\", \"mem_size_mib\": 129}}",
	 {"machine-config.mem_size_mib: 129 is not a multiple of the 2M page size", "128 or 130"}},
	/* drives and network-interfaces */
	{"{\"drives\": {}}", {"drives: expected an array"}},
	{"{\"drives\": [{\"drive_id\": \"a\", \"is_root_device\": true}]}",
	 {"drives[0].path_on_host: missing"}},
	{"{\"drives\": [{\"drive_id\": \"a\", \"path_on_host\": \"/x\"}]}",
	 {"drives[0].is_root_device: missing"}},
	{"{\"drives\": [{\"drive_id\": \"a\", \"path_on_host\": \"/x\", \"is_root_device\": "
	 "\"yes\"}]}",
	 {"drives[0].is_root_device: expected true or false"}},
	{"{\"drives\": [{\"drive_id\": \"a\", \"path_on_host\": \"/x\", \"is_root_device\": true},"
	 "{\"drive_id\": \"a\", \"path_on_host\": \"/y\", \"is_root_device\": false}]}",
	 {"drives[1].drive_id: \"a\" is already used by drives[0]"}},
	{"{\"drives\": [{\"drive_id\": \"a\", \"path_on_host\": \"/x\", \"is_root_device\": true},"
	 "{\"drive_id\": \"b\", \"path_on_host\": \"/y\", \"is_root_device\": true}]}",
	 {"drives[1].is_root_device: drives[0] is already the root device"}},
	{"{\"drives\": [{\"drive_id\": \"a\", \"is_root_device\": true, \"socket\": \"/s\"}]}",
	 {"drives[0].socket: hugevmm has no vhost-user block devices", "give path_on_host"}},
	{"{\"drives\": [{\"drive_id\": \"a\", \"is_root_device\": true, \"path_on_host\": \"/x\", "
	 "\"socket\": \"/s\"}]}",
	 {"drives[0].socket: hugevmm has no vhost-user"}},
	{"{\"drives\": [{\"drive_id\": \"a\", \"is_root_device\": true}]}",
	 {"drives[0].path_on_host: missing", "disk image or block device"}},
	{"{\"drives\": [{\"drive_id\": \"a\", \"is_root_device\": true, \"cache_type\": \"Safe\"}]}",
	 {"drives[0].cache_type: \"Safe\" is not known", "\"Unsafe\", \"Writeback\""}},
	{"{\"drives\": [{\"drive_id\": \"a\", \"path_on_host\": \"/x\", \"is_root_device\": true, "
	 "\"cache_type\": null}]}",
	 {"drives[0].cache_type: expected a string, got null"}},
	{"{\"drives\": [{\"drive_id\": \"a\", \"path_on_host\": \"/x\", \"is_root_device\": true, "
	 "\"io_engine\": \"Uring\"}]}",
	 {"drives[0].io_engine: \"Uring\" is not known", "\"Sync\", \"Async\""}},
	{"{\"drives\": [{\"drive_id\": \"a\", \"path_on_host\": \"/x\", \"is_root_device\": true, "
	 "\"direct\": \"yes\"}]}",
	 {"drives[0].direct: expected true or false"}},
	{"{\"drives\": [{\"drive_id\": \"a\", \"path_on_host\": \"/x\", \"is_root_device\": true, "
	 "\"partuuid\": \"0eaa91a0-01 init=/bin/sh\"}]}",
	 {"drives[0].partuuid: \"0eaa91a0-01 init=/bin/sh\" is not a partition UUID", "blkid"}},
	{"{\"drives\": [{\"drive_id\": \"a\", \"path_on_host\": \"/x\", \"is_root_device\": true, "
	 "\"partuuid\": \"\"}]}",
	 {"drives[0].partuuid: \"\" is not a partition UUID"}},
	{"{\"drives\": [{\"drive_id\": \"a\", \"path_on_host\": \"/x\", \"is_root_device\": true, "
	 "\"rate_limiter\": {\"ops\": {\"size\": 100}}}]}",
	 {"drives[0].rate_limiter.ops.refill_time: missing"}},
	{"{\"drives\": [{\"drive_id\": \"a\", \"path_on_host\": \"/x\", \"is_root_device\": true, "
	 "\"rate_limiter\": {\"iops\": {}}}]}",
	 {"drives[0].rate_limiter.iops: unknown field"}},
	{"{\"drives\": [" D17 "]}",
	 {"drives: 17 drives; at most 16", "18 interrupt lines", "give fewer"}},
	/* Firecracker's rules: required fields, types shown once, its other sections checked */
	{"{\"machine-config\": {\"vcpu_count\": 2}}",
	 {"machine-config.mem_size_mib: missing", "Firecracker requires"}},
	{"{\"machine-config\": {\"mem_size_mib\": 256}}", {"machine-config.vcpu_count: missing"}},
	{"{\"boot-source\": {\"kernel_image_path\": \"k\", \"initrd_path\": 7}}",
	 {"boot-source.initrd_path: expected a string, got a number 7"}},
	{"{\"boot-source\": {\"kernel_image_path\": null}}", {"boot-source.kernel_image_path: expected a string, got null"}},
	{"{\"balloon\": {\"amount_mib\": 64}}", {"balloon.deflate_on_oom: missing"}},
	/* balloon: Firecracker's types (amount_mib a u32, the interval a u16), hinting refused */
	{"{\"balloon\": {\"deflate_on_oom\": false}}",
	 {"balloon.amount_mib: missing", "target size in MiB"}},
	{"{\"balloon\": {\"amount_mib\": -1, \"deflate_on_oom\": true}}",
	 {"balloon.amount_mib: -1 is out of range; use 0 to 4294967295"}},
	{"{\"balloon\": {\"amount_mib\": 4294967296, \"deflate_on_oom\": true}}",
	 {"balloon.amount_mib: 4294967296 is out of range"}},
	{"{\"balloon\": {\"amount_mib\": 2.5, \"deflate_on_oom\": true}}",
	 {"balloon.amount_mib: expected an integer, got a number 2.5"}},
	{"{\"balloon\": {\"amount_mib\": 129, \"deflate_on_oom\": true}}",
	 {"balloon.amount_mib: 129 MiB is more than the guest's RAM (128 MiB)",
	  "give 128 or less"}},
	{"{\"memory\": {\"regions\": [{\"backing\": \"thp\", \"size_mib\": 64}]}, \"balloon\": "
	 "{\"amount_mib\": 65, \"deflate_on_oom\": true}}",
	 {"balloon.amount_mib: 65 MiB is more than the guest's RAM (64 MiB)"}},
	{BAL(", \"stats_polling_interval_s\": 65536"),
	 {"balloon.stats_polling_interval_s: 65536 is out of range; use 0 to 65535"}},
	{BAL(", \"stats_polling_interval_s\": null"),
	 {"balloon.stats_polling_interval_s: expected an integer, got null"}},
	{BAL(", \"free_page_hinting\": true"),
	 {"balloon.free_page_hinting: true is not implemented",
	  "free_page_reporting is the supported way"}},
	{BAL(", \"free_page_reporting\": 1"),
	 {"balloon.free_page_reporting: expected true or false"}},
	{BAL(", \"amount\": 1"), {"balloon.amount: unknown field", "known fields: amount_mib"}},
	{"{\"vsock\": {\"guest_cid\": 2, \"uds_path\": \"/v\"}}",
	 {"vsock.guest_cid: 2 is out of range; use 3 to"}},
	{"{\"entropy\": {\"rate_limiter\": {\"bandwidth\": {\"size\": 1}}}}",
	 {"entropy.rate_limiter.bandwidth.refill_time: missing"}},
	{"{\"logger\": {\"level\": \"Loud\"}}", {"logger.level: \"Loud\" is not known", "any case"}},
	{"{\"metrics\": {\"emit_id\": true}}", {"metrics.metrics_path: missing"}},
	{"{\"metrics\": {\"metrics_path\": \"/m\", \"properties\": {\"a\": 1}}}",
	 {"metrics.properties.a: expected a string, got a number 1"}},
	{"{\"pmem\": [{\"id\": \"p\"}]}", {"pmem[0].path_on_host: missing"}},
	{"{\"mmds-config\": {\"network_interfaces\": [1]}}",
	 {"mmds-config.network_interfaces[0]: expected a string, got a number 1"}},
	{"{\"machine-config\": {\"vcpu_count\": 1, \"mem_size_mib\": 128, \"cpu_template\": \"X9\"}}",
	 {"machine-config.cpu_template: \"X9\" is not known"}},
	{"{\"machine-config\": {\"vcpu_count\": null, \"mem_size_mib\": 128, \"smt\": null}}",
	 {"machine-config.vcpu_count: expected an integer, got null"}},
	{"{\"drives\": null}", {"drives: expected an array, got null"}},
	{"{\"machine-config\": {\"vcpu_count\": 33, \"mem_size_mib\": 128}}",
	 {"machine-config.vcpu_count: 33 is out of range; use 1 to 32"}},
	{"{\"machine-config\": {\"vcpu_count\": 3, \"mem_size_mib\": 128, \"smt\": true}}",
	 {"machine-config.vcpu_count: 3 with smt true", "use 2 or 4"}},
	{"{\"machine-config\": {\"vcpu_count\": 1, \"mem_size_mib\": 129, \"huge_pages\": "
	 "\"Transparent\"}}",
	 {"machine-config.mem_size_mib: 129 is not a multiple of the 2M", "use 128 or 130"}},
	{"{\"network-interfaces\": [{\"iface_id\": \"n\", \"host_dev_name\": \"tap0\", "
	 "\"guest_mac\": \"zz:00:00:00:00:00\"}]}",
	 {"network-interfaces[0].guest_mac: \"zz:00:00:00:00:00\" is not a MAC address"}},
	{"{\"network-interfaces\": [{\"iface_id\": \"n\"}]}",
	 {"network-interfaces[0].host_dev_name: missing"}},
	{"{\"network-interfaces\": [{\"iface_id\": \"n\", \"host_dev_name\": "
	 "\"tap0123456789abcdef\"}]}",
	 {"network-interfaces[0].host_dev_name: \"tap0123456789abcdef\" is 19 characters",
	  "at most 15 (IFNAMSIZ-1)"}},
	{"{\"network-interfaces\": [{\"iface_id\": \"n\", \"host_dev_name\": \"tap/0\"}]}",
	 {"network-interfaces[0].host_dev_name: \"tap/0\" holds '/'"}},
	{"{\"network-interfaces\": [{\"iface_id\": \"n\", \"host_dev_name\": \"tap0\", "
	 "\"guest_mac\": \"01:00:5e:00:00:01\"}]}",
	 {"network-interfaces[0].guest_mac: \"01:00:5e:00:00:01\" is a multicast address"}},
	{"{\"network-interfaces\": [{\"iface_id\": \"n\", \"host_dev_name\": \"tap0\", "
	 "\"mtu\": 67}]}",
	 {"network-interfaces[0].mtu: 67 is out of range; use 68 to 65535"}},
	{"{\"network-interfaces\": [{\"iface_id\": \"a\", \"host_dev_name\": \"tap0\", "
	 "\"guest_mac\": \"06:00:ac:10:00:0A\"}, {\"iface_id\": \"b\", \"host_dev_name\": "
	 "\"tap1\", \"guest_mac\": \"06:00:AC:10:00:0a\"}]}",
	 {"network-interfaces[1].guest_mac: \"06:00:AC:10:00:0a\" is already the MAC of "
	  "network-interfaces[0] (iface_id \"a\"", "give each interface its own"}},
	{"{\"network-interfaces\": [{\"iface_id\": \"a\", \"host_dev_name\": \"tap0\"}, "
	 "{\"iface_id\": \"b\", \"host_dev_name\": \"tap1\", \"guest_mac\": \"02:7b:d7:6c:30:38\"},"
	 "{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\"}]}",
	 {"network-interfaces[2].host_dev_name: \"tap0\" is already the tap of "
	  "network-interfaces[0] (iface_id \"a\")"}},
	{"{\"network-interfaces\": [{\"iface_id\": \"b\", \"host_dev_name\": \"tap1\", "
	 "\"guest_mac\": \"02:7B:D7:6C:30:38\"}, {\"iface_id\": \"eth0\", \"host_dev_name\": "
	 "\"tap0\"}]}",
	 {"network-interfaces[1].guest_mac: \"02:7b:d7:6c:30:38\" (generated) is already the MAC"}},
	/* memory section */
	{"{\"memory\": {}}", {"memory.regions: missing"}},
	{"{\"memory\": {\"regions\": {}}}", {"memory.regions: expected an array"}},
	{R(""), {"memory.regions: empty"}},
	{"{\"memory\": {\"regions\": [], \"x\": 1}}", {"memory.x: unknown field", "regions"}},
	{R("5"), {"memory.regions[0]: expected an object, got a number 5"}},
	{R("{\"size_mib\": 64}"), {"memory.regions[0].backing: missing", "anon, thp"}},
	{R("{\"backing\": \"thp\"}"), {"memory.regions[0].size_mib: missing"}},
	{R("{\"backing\": \"huge\", \"size_mib\": 64}"),
	 {"memory.regions[0].backing: \"huge\" is not known"}},
	{R("{\"backing\": \"thp\", \"size_mib\": 64, \"sise\": 1}"),
	 {"memory.regions[0].sise: unknown field", "size_mib"}},
	{R("{\"backing\": \"thp\", \"size_mib\": -1}"),
	 {"memory.regions[0].size_mib: -1 is out of range"}},
	{R("{\"backing\": \"thp\", \"size_mib\": 64.5}"),
	 {"memory.regions[0].size_mib: expected an integer"}},
	{R("{\"backing\": \"thp\", \"size_mib\": 64, \"page_size\": \"2MB\"}"),
	 {"memory.regions[0].page_size: \"2MB\" is not known", "\"4K\", \"2M\" or \"1G\""}},
	{R("{\"backing\": \"thp\", \"size_mib\": 1024, \"page_size\": \"1G\"}"),
	 {"memory.regions[0].page_size: \"1G\" is not available with backing \"thp\"", "hugetlb"}},
	{R("{\"backing\": \"anon\", \"size_mib\": 64, \"page_size\": \"2M\"}"),
	 {"memory.regions[0].page_size: \"2M\" is not available with backing \"anon\"",
	  "use backing \"thp\""}},
	{R("{\"backing\": \"hugetlb\", \"size_mib\": 64, \"page_size\": \"4K\"}"),
	 {"\"4K\" is not available with backing \"hugetlb\"", "\"2M\" or \"1G\""}},
	{R("{\"backing\": \"hugetlb\", \"size_mib\": 1000, \"page_size\": \"1G\"}"),
	 {"memory.regions[0].size_mib: 1000 is not a multiple of the 1G page size",
	  "use 0 or 1024"}},
	{R("{\"backing\": \"hugetlb\", \"size_mib\": 63}"),
	 {"memory.regions[0].size_mib: 63 is not a multiple of the 2M page size", "62 or 64"}},
	{R("{\"backing\": \"thp\", \"size_mib\": 64, \"policy\": \"must\"}"),
	 {"memory.regions[0].policy: \"must\" is not known", "\"require\", \"prefer\" or \"off\""}},
	{R("{\"backing\": \"thp\", \"size_mib\": 64, \"min_coverage\": 1.5}"),
	 {"memory.regions[0].min_coverage: 1.5 is out of range; use 0.0 to 1.0"}},
	{R("{\"backing\": \"thp\", \"size_mib\": 64, \"min_coverage\": \"all\"}"),
	 {"memory.regions[0].min_coverage: expected a number"}},
	{R("{\"backing\": \"thp\", \"size_mib\": 64, \"prefault\": \"yes\"}"),
	 {"memory.regions[0].prefault: expected true or false"}},
	{R("{\"backing\": \"thp\", \"size_mib\": 64, \"prefault\": false, \"policy\": "
	   "\"require\"}"),
	 {"memory.regions[0].policy: \"require\" needs prefault", "policy \"prefer\""}},
	{R("{\"backing\": \"anon\", \"size_mib\": 64, \"policy\": \"require\"}"),
	 {"memory.regions[0].policy: \"require\" needs a huge page size"}},
	{R("{\"backing\": \"file\", \"size_mib\": 64}"),
	 {"memory.regions[0].path: missing; backing \"file\" needs the path"}},
	{R("{\"backing\": \"thp\", \"size_mib\": 64, \"path\": \"/x\"}"),
	 {"memory.regions[0].path: \"/x\" is not used by backing \"thp\""}},
	{R("{\"backing\": \"thp\", \"size_mib\": 64, \"dax\": true}"),
	 {"memory.regions[0].dax: only backing \"file\" takes \"dax\""}},
	{R("{\"backing\": \"file\", \"size_mib\": 64, \"path\": \"/x\", \"dax\": 1}"),
	 {"memory.regions[0].dax: expected true or false"}},
	{R("{\"backing\": \"devdax\", \"size_mib\": 64}"),
	 {"memory.regions[0].device: missing", "dax0.0"}},
	{R("{\"backing\": \"thp\", \"size_mib\": 64, \"device\": \"dax0.0\"}"),
	 {"memory.regions[0].device: \"dax0.0\" is only used by backing \"devdax\""}},
	{R("{\"backing\": \"thp\", \"size_mib\": 64, \"prefault_threads\": 65}"),
	 {"memory.regions[0].prefault_threads: 65 is out of range; use 0 to 64"}},
	{R("{\"backing\": \"thp\", \"size_mib\": 64, \"host_offset_kib\": 6}"),
	 {"memory.regions[0].host_offset_kib: 6 must be a multiple of 4"}},
	{R("{\"backing\": \"thp\", \"size_mib\": 64, \"host_offset_kib\": 2048}"),
	 {"memory.regions[0].host_offset_kib: 2048 must be a multiple of 4 below the page size"}},
	{R("{\"backing\": \"hugetlb\", \"size_mib\": 64, \"host_offset_kib\": 4}"),
	 {"memory.regions[0].host_offset_kib: backing \"hugetlb\" can only be mapped at"}},
	{R("{\"backing\": \"thp\", \"size_mib\": 64, \"reclaim\": \"maybe\"}"),
	 {"memory.regions[0].reclaim: \"maybe\" is not known", "\"keep\"", "\"return\""}},
	{R("{\"backing\": \"thp\", \"size_mib\": 64, \"reclaim\": false}"),
	 {"memory.regions[0].reclaim: expected a string"}},
	{R("{\"backing\": \"thp\", \"size_mib\": 64, \"id\": \"a b\"}"),
	 {"memory.regions[0].id: \"a b\" is not a valid region id"}},
	{R("{\"backing\": \"thp\", \"size_mib\": 64, \"id\": "
	   "\"0123456789012345678901234567890123\"}"),
	 {"memory.regions[0].id: longer than 32 characters"}},
	{R("{\"backing\": \"thp\", \"size_mib\": 64, \"id\": \"a\"}, "
	   "{\"backing\": \"anon\", \"size_mib\": 64, \"id\": \"a\"}"),
	 {"memory.regions[1].id: \"a\" is already used by memory.regions[0]"}},
	{R("{\"backing\": \"thp\", \"size_mib\": 64}, {\"backing\": \"thp\", \"size_mib\": 64}, "
	   "{\"backing\": \"thp\", \"size_mib\": 64}, {\"backing\": \"thp\", \"size_mib\": 64}, "
	   "{\"backing\": \"thp\", \"size_mib\": 64}, {\"backing\": \"thp\", \"size_mib\": 64}, "
	   "{\"backing\": \"thp\", \"size_mib\": 64}, {\"backing\": \"thp\", \"size_mib\": 64}, "
	   "{\"backing\": \"thp\", \"size_mib\": 64}, {\"backing\": \"thp\", \"size_mib\": 64}, "
	   "{\"backing\": \"thp\", \"size_mib\": 64}, {\"backing\": \"thp\", \"size_mib\": 64}, "
	   "{\"backing\": \"thp\", \"size_mib\": 64}, {\"backing\": \"thp\", \"size_mib\": 64}, "
	   "{\"backing\": \"thp\", \"size_mib\": 64}, {\"backing\": \"thp\", \"size_mib\": 64}, "
	   "{\"backing\": \"thp\", \"size_mib\": 64}"),
	 {"memory.regions: 17 regions; at most 16"}},
};

static void every_error_names_path_value_remedy(void **state)
{
	(void)state;
	for (unsigned i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		struct vm_config c;
		struct vmm_err e;
		int rc = load(bad_cases[i].json, &c, &e);

		if (rc == 0 || e.kind != ERR_CONFIG)
			fail_msg("case %u accepted or wrong kind (%d): %s", i, e.kind,
				 bad_cases[i].json);
		for (unsigned k = 0; k < 3 && bad_cases[i].want[k]; k++)
			if (!strstr(e.msg, bad_cases[i].want[k]))
				fail_msg("case %u: message\n  %s\nlacks\n  %s", i, e.msg,
					 bad_cases[i].want[k]);
		assert_int_equal(err_exit_code(&e), 2);
	}
}

static void firecracker_schema_accepted(void **state)
{
	static const char fc[] =
		"{\"boot-source\": {\"kernel_image_path\": \"vmlinux\", \"boot_args\": "
		"\"console=ttyS0 reboot=k panic=1\", \"initrd_path\": \"initrd.img\"},"
		" \"drives\": [{\"drive_id\": \"rootfs\", \"path_on_host\": \"rootfs.ext4\", "
		"\"is_root_device\": true, \"is_read_only\": false, \"cache_type\": \"Unsafe\", "
		"\"io_engine\": \"Sync\", \"rate_limiter\": null}],"
		" \"network-interfaces\": [{\"iface_id\": \"eth0\", \"guest_mac\": "
		"\"06:00:AC:10:00:02\", \"host_dev_name\": \"tap0\"}],"
		" \"machine-config\": {\"vcpu_count\": 2, \"mem_size_mib\": 1024, \"smt\": false, "
		"\"track_dirty_pages\": true, \"huge_pages\": \"2M\"},"
		" \"logger\": {\"log_path\": \"/tmp/fc.log\", \"level\": \"Info\"},"
		" \"metrics\": null, \"vsock\": null, \"balloon\": null, \"entropy\": null}";
	struct vm_config c;
	struct vmm_err e;

	(void)state;
	assert_int_equal(load(fc, &c, &e), 0);
	assert_string_equal(c.kernel, "vmlinux");
	assert_string_equal(c.cmdline, "console=ttyS0 reboot=k panic=1");
	assert_string_equal(c.initrd, "initrd.img");
	assert_int_equal(c.vcpus, 2);
	assert_int_equal(c.ndrives, 1);
	assert_true(c.drives[0].root);
	assert_int_equal(c.nnets, 1);
	assert_string_equal(c.nets[0].host_dev, "tap0");
	/* huge_pages "2M" is one hugetlb region of mem_size_mib. */
	assert_int_equal(c.nregions, 1);
	assert_int_equal(c.regions[0].backing, MEM_BACKING_HUGETLB);
	assert_int_equal(c.regions[0].page_size, SZ_2M);
	assert_int_equal(c.regions[0].size, 1024 * SZ_1M);
	assert_int_equal(c.regions[0].policy, MEM_POLICY_REQUIRE);
	/* Ignored Firecracker fields that ask for something are named in a warning;
	 * inert ones (false, null) are not. */
	assert_non_null(strstr(warnings, "machine-config.track_dirty_pages: ignored: not on the "
					 "roadmap"));
	/* Drives are attached (issue 11): parsed, not warned about. */
	assert_null(strstr(warnings, "drives"));
	assert_int_equal(c.drives[0].cache, CFG_CACHE_UNSAFE);
	assert_int_equal(c.drives[0].io_engine, CFG_IO_SYNC);
	assert_false(c.drives[0].rate_limiter.set);
	/* Network interfaces are attached (issue 12): parsed, not warned about. */
	assert_null(strstr(warnings, "network-interfaces"));
	assert_string_equal(c.nets[0].mac, "06:00:AC:10:00:02");
	assert_int_equal(c.nets[0].mtu, 0);
	assert_false(c.nets[0].rx_rate_limiter.set);
	/* The logger is implemented: parsed, not warned about. */
	assert_null(strstr(warnings, "logger"));
	assert_true(c.logger.set);
	assert_string_equal(c.logger.path, "/tmp/fc.log");
	assert_int_equal(c.logger.level, LOG_INFO);
	assert_null(strstr(warnings, "cache_type"));
	assert_null(strstr(warnings, "smt"));
	assert_null(strstr(warnings, "metrics"));
}

static void huge_pages_mapping(void **state)
{
	static const struct {
		const char *hp;
		enum mem_backing b;
		enum mem_policy p;
	} m[] = {
		{"\"None\"", MEM_BACKING_ANON, MEM_POLICY_OFF},
		{"\"Transparent\"", MEM_BACKING_THP, MEM_POLICY_REQUIRE},
		{"\"2M\"", MEM_BACKING_HUGETLB, MEM_POLICY_REQUIRE},
		{NULL, MEM_BACKING_THP, MEM_POLICY_PREFER},
	};
	char json[256];

	(void)state;
	for (unsigned i = 0; i < 4; i++) {
		struct vm_config c;
		struct vmm_err e;

		if (m[i].hp)
			snprintf(json, sizeof(json),
				 "{\"machine-config\": {\"vcpu_count\": 1, \"mem_size_mib\": %d, "
				 "\"huge_pages\": %s}}",
				 CFG_DEFAULT_MEM_MIB, m[i].hp);
		else
			snprintf(json, sizeof(json), "{}");
		assert_int_equal(load(json, &c, &e), 0);
		assert_int_equal(c.nregions, 1);
		assert_int_equal(c.regions[0].backing, m[i].b);
		assert_int_equal(c.regions[0].policy, m[i].p);
		assert_int_equal(c.regions[0].size, CFG_DEFAULT_MEM_MIB * SZ_1M);
		assert_string_equal(c.regions[0].id, "ram0");
	}
}

static void memory_section_defaults(void **state)
{
	static const char json[] = R(
		"{\"backing\": \"thp\", \"size_mib\": 63},"
		"{\"backing\": \"anon\", \"size_mib\": 64},"
		"{\"backing\": \"memfd\", \"size_mib\": 64},"
		"{\"backing\": \"memfd\", \"size_mib\": 64, \"page_size\": \"4K\"},"
		"{\"backing\": \"hugetlb\", \"size_mib\": 1024, \"page_size\": \"1G\"},"
		"{\"backing\": \"file\", \"size_mib\": 64, \"path\": \"/tmp/x\"},"
		"{\"backing\": \"devdax\", \"size_mib\": 64, \"device\": \"dax0.0\"},"
		"{\"backing\": \"thp\", \"size_mib\": 64, \"prefault\": false, \"id\": \"lazy\"}");
	struct vm_config c;
	struct vmm_err e;

	(void)state;
	assert_int_equal(load(json, &c, &e), 0);
	assert_int_equal(c.nregions, 8);
	/* ids default to ram<index> */
	assert_string_equal(c.regions[0].id, "ram0");
	assert_string_equal(c.regions[6].id, "ram6");
	assert_string_equal(c.regions[7].id, "lazy");
	/* thp: 2M pages, require 1.0; its odd size is rounded up with a warning */
	assert_int_equal(c.regions[0].page_size, SZ_2M);
	assert_int_equal(c.regions[0].policy, MEM_POLICY_REQUIRE);
	assert_true(c.regions[0].min_coverage == 1.0);
	assert_int_equal(c.regions[0].size, 64 * SZ_1M);
	assert_non_null(strstr(warnings, "memory.regions[0].size_mib: 63 rounded up to 64"));
	assert_true(c.regions[0].prefault);
	/* anon: 4K, off */
	assert_int_equal(c.regions[1].page_size, SZ_4K);
	assert_int_equal(c.regions[1].policy, MEM_POLICY_OFF);
	/* memfd: 2M prefer; 4K memfd off */
	assert_int_equal(c.regions[2].page_size, SZ_2M);
	assert_int_equal(c.regions[2].policy, MEM_POLICY_PREFER);
	assert_int_equal(c.regions[3].policy, MEM_POLICY_OFF);
	/* hugetlb, devdax: require; devdax page size comes from the device */
	assert_int_equal(c.regions[4].policy, MEM_POLICY_REQUIRE);
	assert_int_equal(c.regions[5].policy, MEM_POLICY_PREFER);
	assert_int_equal(c.regions[6].policy, MEM_POLICY_REQUIRE);
	assert_int_equal(c.regions[6].page_size, 0);
	/* no prefault: prefer (nothing can be verified before boot) */
	assert_int_equal(c.regions[7].policy, MEM_POLICY_PREFER);
}

static void memory_overrides_machine_config(void **state)
{
	static const char json[] =
		"{\"machine-config\": {\"mem_size_mib\": 128, \"huge_pages\": \"2M\"}, "
		"\"memory\": {\"regions\": [{\"backing\": \"thp\", \"size_mib\": 256}]}}";
	struct vm_config c;
	struct vmm_err e;

	(void)state;
	assert_int_equal(load(json, &c, &e), 0);
	assert_int_equal(c.nregions, 1);
	assert_int_equal(c.regions[0].size, 256 * SZ_1M);
	assert_non_null(strstr(warnings, "machine-config.mem_size_mib: 128 is ignored"));
	assert_non_null(strstr(warnings, "machine-config.huge_pages: ignored"));
}

static void boot_source_required_to_run(void **state)
{
	struct vm_config c;
	struct vmm_err e = {0};

	(void)state;
	assert_int_equal(cfg_json_parse("{}", 2, &c, &e), 0);
	assert_int_not_equal(vm_config_finalize(&c, true, &e), 0);
	assert_non_null(strstr(e.msg, "boot-source: missing"));
}

static void load_reports_file_errors(void **state)
{
	struct vm_config c;
	struct vmm_err e = {0};
	char path[] = "/tmp/hugevmm-cfg-XXXXXX";
	int fd;

	(void)state;
	assert_int_not_equal(cfg_json_load("/nonexistent/x.json", &c, &e), 0);
	assert_int_equal(e.kind, ERR_CONFIG);
	assert_non_null(strstr(e.msg, "--config-file: cannot open \"/nonexistent/x.json\""));

	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "{\n\"memory\": x}", 14), 14);
	close(fd);
	memset(&e, 0, sizeof(e));
	assert_int_not_equal(cfg_json_load(path, &c, &e), 0);
	unlink(path);
	/* A syntax error names the file, line and column. */
	assert_non_null(strstr(e.msg, path));
	assert_non_null(strstr(e.msg, "invalid JSON at line 2, column 11"));
}

static void check_files_names_the_field(void **state)
{
	struct vm_config c;
	struct vmm_err e;

	(void)state;
	assert_int_equal(
		load("{\"boot-source\": {\"kernel_image_path\": \"/nonexistent/vmlinux\"}}", &c,
		     &e),
		0);
	assert_int_not_equal(vm_config_check_files(&c, &e), 0);
	assert_non_null(strstr(e.msg, "boot-source.kernel_image_path: \"/nonexistent/vmlinux\": "
				      "No such file or directory"));
	assert_int_equal(load("{\"boot-source\": {\"kernel_image_path\": \"/\"}}", &c, &e), 0);
	assert_int_not_equal(vm_config_check_files(&c, &e), 0);
	assert_non_null(strstr(e.msg, "is a directory"));
}

/*
 * vm_config_copy copies the scalars, strings and the used array elements
 * (those after the arrays too), and leaves the unused elements alone.
 */
static void copy_takes_what_is_used(void **state)
{
	static struct vm_config src, dst;
	struct vmm_err e = {0};

	(void)state;
	assert_int_equal(load("{\"boot-source\": {\"kernel_image_path\": \"k\", \"boot_args\": \"a=1\"},"
			      " \"machine-config\": {\"vcpu_count\": 3},"
			      " \"drives\": [{\"drive_id\": \"d0\", \"path_on_host\": \"x.img\","
			      " \"is_root_device\": true, \"is_read_only\": true}],"
			      " \"network-interfaces\": [{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\"}],"
			      " \"serial\": {\"serial_out_path\": \"out.log\"},"
			      " \"memory\": {\"regions\": [{\"id\": \"a\", \"size_mib\": 64, \"backing\": \"thp\"},"
			      " {\"id\": \"b\", \"size_mib\": 128, \"backing\": \"anon\"}]}}",
			      &src, &e),
			 0);
	memset(&dst, 0xa5, sizeof(dst));
	vm_config_copy(&dst, &src);
	assert_string_equal(dst.kernel, "k");
	assert_string_equal(dst.cmdline, "a=1");
	assert_int_equal(dst.vcpus, 3);
	assert_int_equal(dst.nregions, 2);
	assert_string_equal(dst.regions[0].id, "a");
	assert_string_equal(dst.regions[1].id, "b");
	assert_int_equal(dst.regions[1].size, 128u << 20);
	assert_int_equal(dst.ndrives, 1);
	assert_string_equal(dst.drives[0].path, "x.img");
	assert_true(dst.drives[0].read_only);
	assert_int_equal(dst.nnets, 1);
	assert_string_equal(dst.nets[0].host_dev, "tap0");
	assert_string_equal(dst.serial_out, "out.log");
	/* Unused elements are not written. */
	assert_int_equal(((unsigned char *)&dst.regions[2])[0], 0xa5);
	assert_int_equal(((unsigned char *)&dst.drives[1])[0], 0xa5);
	/* The copy validates as the original does. */
	assert_int_equal(vm_config_finalize(&dst, true, &e), 0);
}

/* Rss of the mapping that starts at @addr, in bytes, from /proc/self/smaps. */
static long rss_of(const void *addr)
{
	char line[256], want[32];
	FILE *f = fopen("/proc/self/smaps", "r");
	bool in = false;
	long kb = -1;

	snprintf(want, sizeof(want), "%lx-", (unsigned long)(uintptr_t)addr);
	while (f && fgets(line, sizeof(line), f)) {
		if (strchr(line, '-') && strchr(line, '-') < strchr(line, ' '))
			in = strncmp(line, want, strlen(want)) == 0;
		else if (in && sscanf(line, "Rss: %ld kB", &kb) == 1)
			break;
	}
	if (f)
		fclose(f);
	return kb * 1024;
}

/* Whether reading untouched anonymous memory maps the shared zero page (no RSS). */
static bool reads_map_zero_page(void)
{
	const size_t n = 16 * 4096;
	char *p = mmap(NULL, n + 2 * 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	const volatile char *q = (const volatile char *)(p + 4096);
	long rss;
	char sum = 0;

	assert_true(p != MAP_FAILED);
	assert_int_equal(mprotect(p + 4096, n, PROT_READ | PROT_WRITE), 0);
	for (size_t i = 0; i < n; i += 4096)
		sum = (char)(sum + q[i]);
	rss = rss_of(p + 4096);
	munmap(p, n + 2 * 4096);
	return sum == 0 && rss >= 0 && rss < (long)n / 2;
}

/*
 * Into a fresh allocation, the copy writes only the pages that carry something:
 * a configuration is ~120 KiB of mostly empty PATH_MAX strings and arrays, and
 * the VMM keeps one for its whole life.
 */
static void copy_leaves_empty_pages_untouched(void **state)
{
	static struct vm_config src;
	struct vmm_err e = {0};
	size_t len = (sizeof(src) + 4095) & ~(size_t)4095;
	/* Between two PROT_NONE pages: a mapping of its own, merged with no neighbour. */
	char *area = mmap(NULL, len + 2 * 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct vm_config *dst = (void *)(area + 4096);
	long rss;

	(void)state;
	assert_true(area != MAP_FAILED);
	assert_int_equal(mprotect(dst, len, PROT_READ | PROT_WRITE), 0);
	if (!reads_map_zero_page()) {
		/* Seen on a 6.18 kernel built for Firecracker guests: every read fault allocates. */
		printf("skip: copy_leaves_empty_pages_untouched: on this kernel a read of untouched "
		       "anonymous memory allocates a page (no shared zero page), so reading a "
		       "fresh copy target counts in RSS whatever the copy does\n");
		munmap(area, len + 2 * 4096);
		skip();
	}
	assert_int_equal(load("{\"boot-source\": {\"kernel_image_path\": \"k\", \"boot_args\": \"a=1\"},"
			      " \"memory\": {\"regions\": [{\"id\": \"a\", \"size_mib\": 64, "
			      "\"backing\": \"thp\"}]}}",
			      &src, &e),
			 0);
	vm_config_copy(dst, &src);
	assert_string_equal(dst->kernel, "k");
	assert_string_equal(dst->cmdline, "a=1");
	assert_string_equal(dst->regions[0].id, "a");
	assert_int_equal(memcmp(dst, &src, offsetof(struct vm_config, drives)), 0);
	rss = rss_of(dst);
	/* kernel, cmdline, the scalars and regions[0] with its neighbours: a handful of
	 * pages, not all of them. */
	assert_true(rss >= 0);
	assert_true(rss <= 8 * 4096);
	assert_true((size_t)rss < len / 2);
	munmap(area, len + 2 * 4096);
}

/* Every field of Firecracker's Drive, and hugevmm's "direct"; the defaults when absent. */
static void drive_fields_parsed(void **state)
{
	static const char json[] =
		"{\"drives\": ["
		"{\"drive_id\": \"rootfs\", \"path_on_host\": \"/img/root.ext4\", "
		"\"is_root_device\": true, \"is_read_only\": true, \"partuuid\": \"0eaa91a0-01\", "
		"\"cache_type\": \"Writeback\", \"io_engine\": \"Async\", \"direct\": true, "
		"\"rate_limiter\": {\"bandwidth\": {\"size\": 1048576, \"one_time_burst\": 4096, "
		"\"refill_time\": 100}, \"ops\": {\"size\": 1000, \"refill_time\": 1000}}},"
		"{\"drive_id\": \"data\", \"path_on_host\": \"data.img\", \"is_root_device\": false},"
		"{\"drive_id\": \"nulls\", \"path_on_host\": \"n.img\", \"is_root_device\": false, "
		"\"partuuid\": null, \"is_read_only\": null, \"rate_limiter\": null, "
		"\"io_engine\": null, \"socket\": null}]}";
	struct vm_config c;
	struct vmm_err e;
	const struct cfg_drive *d;

	(void)state;
	assert_int_equal(load(json, &c, &e), 0);
	assert_int_equal(c.ndrives, 3);
	d = &c.drives[0];
	assert_string_equal(d->id, "rootfs");
	assert_string_equal(d->path, "/img/root.ext4");
	assert_true(d->root);
	assert_true(d->read_only);
	assert_string_equal(d->partuuid, "0eaa91a0-01");
	assert_int_equal(d->cache, CFG_CACHE_WRITEBACK);
	assert_int_equal(d->io_engine, CFG_IO_ASYNC);
	assert_true(d->direct);
	assert_true(d->rate_limiter.set);
	assert_true(d->rate_limiter.has_bandwidth);
	assert_int_equal(d->rate_limiter.bandwidth.size, 1048576);
	assert_int_equal(d->rate_limiter.bandwidth.one_time_burst, 4096);
	assert_int_equal(d->rate_limiter.bandwidth.refill_time_ms, 100);
	assert_true(d->rate_limiter.has_ops);
	assert_int_equal(d->rate_limiter.ops.size, 1000);
	assert_int_equal(d->rate_limiter.ops.refill_time_ms, 1000);
	/* Firecracker's defaults: Unsafe, Sync, writable, no partuuid, no limiter; not direct. */
	for (unsigned i = 1; i < 3; i++) {
		d = &c.drives[i];
		assert_false(d->root);
		assert_false(d->read_only);
		assert_string_equal(d->partuuid, "");
		assert_int_equal(d->cache, CFG_CACHE_UNSAFE);
		assert_int_equal(d->io_engine, CFG_IO_SYNC);
		assert_false(d->rate_limiter.set);
		assert_false(d->direct);
	}
	assert_string_equal(warnings, "");
	/* A partuuid on a drive that is not the root device is said to be unused. */
	assert_int_equal(load("{\"drives\": [{\"drive_id\": \"a\", \"path_on_host\": \"/x\", "
			      "\"is_root_device\": false, \"partuuid\": \"0eaa91a0-01\"}]}",
			      &c, &e),
			 0);
	assert_non_null(strstr(warnings, "drives[0].partuuid: ignored"));
	/* Linux's partition offset form is a partuuid too. */
	assert_int_equal(load("{\"drives\": [{\"drive_id\": \"a\", \"path_on_host\": \"/x\", "
			      "\"is_root_device\": true, \"partuuid\": "
			      "\"00112233-4455-6677-8899-AABBCCDDEEFF/PARTNROFF=1\"}]}",
			      &c, &e),
			 0);
	/* 16 drives are the most. */
	assert_int_equal(load("{\"drives\": [" DRV(0) "," DRV(1) "," DRV(2) "," DRV(3) "," DRV(4)
			      "," DRV(5) "," DRV(6) "," DRV(7) "," DRV(8) "," DRV(9) "," DRV(10)
			      "," DRV(11) "," DRV(12) "," DRV(13) "," DRV(14) "," DRV(15) "]}",
			      &c, &e),
			 0);
	assert_int_equal(c.ndrives, 16);
}

/* GET /vm/config shows every drive field; what it shows parses back to the same drive. */
static void drive_render_round_trip(void **state)
{
	static const char json[] =
		"{\"drives\": [{\"drive_id\": \"rootfs\", \"path_on_host\": \"/r.img\", "
		"\"is_root_device\": true, \"partuuid\": \"0eaa91a0-01\", \"cache_type\": \"Writeback\", "
		"\"io_engine\": \"Async\", \"direct\": true, \"is_read_only\": true, "
		"\"rate_limiter\": {\"ops\": {\"size\": 10, \"refill_time\": 1000}}},"
		"{\"drive_id\": \"plain\", \"path_on_host\": \"/p.img\", \"is_root_device\": false}]}";
	static struct vm_config c, back;
	struct vmm_err e;
	cJSON *o, *d;
	char *text;

	(void)state;
	assert_int_equal(load(json, &c, &e), 0);
	o = cfg_json_render(&c);
	d = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "drives"), 0);
	assert_string_equal(cJSON_GetObjectItem(d, "drive_id")->valuestring, "rootfs");
	assert_string_equal(cJSON_GetObjectItem(d, "partuuid")->valuestring, "0eaa91a0-01");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(d, "is_root_device")));
	assert_string_equal(cJSON_GetObjectItem(d, "cache_type")->valuestring, "Writeback");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(d, "is_read_only")));
	assert_string_equal(cJSON_GetObjectItem(d, "path_on_host")->valuestring, "/r.img");
	assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(d, "rate_limiter"),
								   "ops"),
					     "size")
				 ->valuedouble,
			 10);
	assert_string_equal(cJSON_GetObjectItem(d, "io_engine")->valuestring, "Async");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(d, "direct")));
	d = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "drives"), 1);
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(d, "partuuid")));
	assert_string_equal(cJSON_GetObjectItem(d, "cache_type")->valuestring, "Unsafe");
	assert_string_equal(cJSON_GetObjectItem(d, "io_engine")->valuestring, "Sync");
	assert_false(cJSON_IsTrue(cJSON_GetObjectItem(d, "direct")));
	assert_null(cJSON_GetObjectItem(d, "rate_limiter"));
	/* The rendering is a config file that parses to the same drives. */
	text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	assert_int_equal(load(text, &back, &e), 0);
	free(text);
	assert_int_equal(back.ndrives, 2);
	assert_memory_equal(&back.drives[0], &c.drives[0], sizeof(c.drives[0]));
	assert_memory_equal(&back.drives[1], &c.drives[1], sizeof(c.drives[1]));
}

/* PATCH /drives/{id}: Firecracker's PartialDrive, nothing more. */
static void drive_patch_parsed(void **state)
{
	struct vmm_drive_patch dp;
	struct vmm_err e = {0};
	cJSON *o;

	(void)state;
	o = cJSON_Parse("{\"drive_id\": \"a\", \"path_on_host\": \"/new.img\", "
			"\"rate_limiter\": {\"bandwidth\": {\"size\": 0, \"refill_time\": 0}}}");
	assert_int_equal(cfg_json_drive_patch(o, "drives", &dp, &e), 0);
	cJSON_Delete(o);
	assert_string_equal(dp.id, "a");
	assert_true(dp.has_path);
	assert_string_equal(dp.path, "/new.img");
	assert_true(dp.has_rate_limiter);
	assert_true(dp.rate_limiter.has_bandwidth);
	assert_false(dp.rate_limiter.has_ops);

	o = cJSON_Parse("{\"drive_id\": \"a\", \"path_on_host\": null, \"rate_limiter\": null}");
	assert_int_equal(cfg_json_drive_patch(o, "drives", &dp, &e), 0);
	cJSON_Delete(o);
	assert_false(dp.has_path);
	assert_false(dp.has_rate_limiter);

	o = cJSON_Parse("{\"drive_id\": \"a\", \"is_read_only\": true}");
	assert_int_not_equal(cfg_json_drive_patch(o, "drives", &dp, &e), 0);
	cJSON_Delete(o);
	assert_non_null(strstr(e.msg, "drives.is_read_only: unknown field"));
	assert_int_equal(e.kind, ERR_CONFIG);

	memset(&e, 0, sizeof(e));
	o = cJSON_Parse("{\"path_on_host\": \"/x\"}");
	assert_int_not_equal(cfg_json_drive_patch(o, "drives", &dp, &e), 0);
	cJSON_Delete(o);
	assert_non_null(strstr(e.msg, "drives.drive_id: missing"));
}

/* Every NetworkInterface field parsed; GET /vm/config shows them and they parse back. */
static void net_render_round_trip(void **state)
{
	static const char json[] =
		"{\"network-interfaces\": [{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\", "
		"\"guest_mac\": \"06:00:ac:10:00:02\", \"mtu\": 9000, "
		"\"rx_rate_limiter\": {\"bandwidth\": {\"size\": 1000000, \"refill_time\": 100}}, "
		"\"tx_rate_limiter\": {\"ops\": {\"size\": 10, \"one_time_burst\": 5, "
		"\"refill_time\": 1000}}},"
		"{\"iface_id\": \"eth1\", \"host_dev_name\": \"tap1\", \"guest_mac\": null, "
		"\"mtu\": null, \"rx_rate_limiter\": null}]}";
	static struct vm_config c, back;
	struct vmm_err e;
	cJSON *o, *n;
	char *text;

	(void)state;
	assert_int_equal(load(json, &c, &e), 0);
	assert_int_equal(c.nnets, 2);
	assert_int_equal(c.nets[0].mtu, 9000);
	assert_true(c.nets[0].rx_rate_limiter.has_bandwidth);
	assert_int_equal(c.nets[0].rx_rate_limiter.bandwidth.size, 1000000);
	assert_true(c.nets[0].tx_rate_limiter.has_ops);
	assert_int_equal(c.nets[0].tx_rate_limiter.ops.one_time_burst, 5);
	assert_false(c.nets[0].mac_generated);
	/* None given: 02 and FNV-1a of "tap1\0eth1" (the README's rule), the same every time. */
	assert_true(c.nets[1].mac_generated);
	assert_string_equal(c.nets[1].mac, "02:59:8f:37:93:49");
	assert_int_equal(c.nets[1].mtu, 0);
	assert_false(c.nets[1].rx_rate_limiter.set);
	o = cfg_json_render(&c);
	n = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "network-interfaces"), 0);
	assert_int_equal(cJSON_GetObjectItem(n, "mtu")->valuedouble, 9000);
	assert_non_null(cJSON_GetObjectItem(n, "rx_rate_limiter"));
	assert_non_null(cJSON_GetObjectItem(n, "tx_rate_limiter"));
	n = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "network-interfaces"), 1);
	assert_null(cJSON_GetObjectItem(n, "mtu"));
	assert_null(cJSON_GetObjectItem(n, "rx_rate_limiter"));
	text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	assert_int_equal(load(text, &back, &e), 0);
	free(text);
	assert_int_equal(back.nnets, 2);
	assert_memory_equal(&back.nets[0], &c.nets[0], sizeof(c.nets[0]));
	/* Shown, the generated MAC comes back as a given one. */
	assert_false(back.nets[1].mac_generated);
	back.nets[1].mac_generated = true;
	assert_memory_equal(&back.nets[1], &c.nets[1], sizeof(c.nets[1]));
}

/* PATCH /network-interfaces/{id}: Firecracker's PartialNetworkInterface, nothing more. */
static void net_patch_parsed(void **state)
{
	struct vmm_net_patch np;
	struct vmm_err e = {0};
	cJSON *o;

	(void)state;
	o = cJSON_Parse("{\"iface_id\": \"eth0\", \"tx_rate_limiter\": {\"ops\": {\"size\": 5, "
			"\"refill_time\": 10}}, \"rx_rate_limiter\": null}");
	assert_int_equal(cfg_json_net_patch(o, "network-interfaces", &np, &e), 0);
	cJSON_Delete(o);
	assert_string_equal(np.id, "eth0");
	assert_false(np.has_rx);
	assert_true(np.has_tx);
	assert_true(np.tx_rate_limiter.has_ops);
	assert_int_equal(np.tx_rate_limiter.ops.size, 5);

	o = cJSON_Parse("{\"iface_id\": \"eth0\", \"mtu\": 1500}");
	assert_int_not_equal(cfg_json_net_patch(o, "network-interfaces", &np, &e), 0);
	cJSON_Delete(o);
	assert_non_null(strstr(e.msg, "network-interfaces.mtu: PATCH changes only rx_rate_limiter "
				      "and tx_rate_limiter"));
	assert_non_null(strstr(e.msg, "PUT /network-interfaces/{id} before InstanceStart"));

	memset(&e, 0, sizeof(e));
	o = cJSON_Parse("{\"iface_id\": \"eth0\", \"speed\": 10}");
	assert_int_not_equal(cfg_json_net_patch(o, "network-interfaces", &np, &e), 0);
	cJSON_Delete(o);
	assert_non_null(strstr(e.msg, "network-interfaces.speed: unknown field"));

	memset(&e, 0, sizeof(e));
	o = cJSON_Parse("{\"rx_rate_limiter\": {}}");
	assert_int_not_equal(cfg_json_net_patch(o, "network-interfaces", &np, &e), 0);
	cJSON_Delete(o);
	assert_non_null(strstr(e.msg, "network-interfaces.iface_id: missing"));
}

/* A drive's image: the messages name the field, the path, and what to do. */
static void drive_files_checked(void **state)
{
	char dir[] = "/tmp/hugevmm-drives-XXXXXX", path[128], json[512];
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	static const struct {
		const char *name; /* in dir; "" = the dir itself, NULL: path as is */
		const char *as_is;
		bool read_only;
		const char *want[2];
	} cases[] = {
		{"missing.img", NULL, false, {"No such file or directory", "give an existing disk image"}},
		{"", NULL, false, {"is a directory", "a drive is a regular file (a disk image) or a block"}},
		{"fifo", NULL, false, {"is a FIFO", "a drive is a regular file"}},
		{"sock", NULL, true, {"is a socket", "a drive is a regular file"}},
		{NULL, "/dev/null", false, {"is a character device", "block device"}},
		{"empty.img", NULL, false, {"is 0 bytes, smaller than one 512-byte sector", "check that this is the image"}},
		{"small.img", NULL, true, {"is 511 bytes, smaller than one 512-byte sector"}},
	};
	struct vm_config c;
	struct vmm_err e;
	int fd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/fifo", dir);
	assert_int_equal(mkfifo(path, 0600), 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/sock", dir);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	snprintf(path, sizeof(path), "%s/empty.img", dir);
	close(open(path, O_CREAT | O_WRONLY, 0600));
	snprintf(path, sizeof(path), "%s/small.img", dir);
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	assert_int_equal(ftruncate(fd, 511), 0);
	close(fd);
	snprintf(path, sizeof(path), "%s/ok.img", dir);
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	assert_int_equal(ftruncate(fd, 512), 0);
	close(fd);

	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (cases[i].as_is)
			snprintf(path, sizeof(path), "%s", cases[i].as_is);
		else
			snprintf(path, sizeof(path), "%s%s%s", dir, cases[i].name[0] ? "/" : "",
				 cases[i].name);
		snprintf(json, sizeof(json),
			 "{\"drives\": [{\"drive_id\": \"ok\", \"path_on_host\": \"%s/ok.img\", "
			 "\"is_root_device\": true}, {\"drive_id\": \"d\", \"path_on_host\": \"%s\", "
			 "\"is_root_device\": false, \"is_read_only\": %s}]}",
			 dir, path, cases[i].read_only ? "true" : "false");
		assert_int_equal(load(json, &c, &e), 0);
		assert_int_not_equal(vm_config_check_files(&c, &e), 0);
		assert_int_equal(e.kind, ERR_CONFIG);
		if (!strstr(e.msg, "drives[1].path_on_host: ") || !strstr(e.msg, path))
			fail_msg("case %u: %s does not name the field and %s", i, e.msg, path);
		for (unsigned k = 0; k < 2 && cases[i].want[k]; k++)
			if (!strstr(e.msg, cases[i].want[k]))
				fail_msg("case %u: message\n  %s\nlacks\n  %s", i, e.msg,
					 cases[i].want[k]);
	}
	/* One whole sector is an image. */
	snprintf(json, sizeof(json),
		 "{\"drives\": [{\"drive_id\": \"ok\", \"path_on_host\": \"%s/ok.img\", "
		 "\"is_root_device\": true}]}",
		 dir);
	assert_int_equal(load(json, &c, &e), 0);
	assert_int_equal(vm_config_check_files(&c, &e), 0);
	/* Not writable, and not read-only: say how to fix it (root opens anything). */
	snprintf(path, sizeof(path), "%s/ok.img", dir);
	assert_int_equal(chmod(path, 0400), 0);
	if (geteuid() == 0) {
		printf("skip: drive_files_checked: an unwritable image cannot be shown to root "
		       "(CAP_DAC_OVERRIDE opens it); the message is checked as non-root\n");
	} else {
		assert_int_not_equal(vm_config_check_files(&c, &e), 0);
		assert_non_null(strstr(e.msg, "cannot open"));
		assert_non_null(strstr(e.msg, "or set is_read_only true"));
	}
	snprintf(json, sizeof(json), "rm -rf %s", dir);
	assert_int_equal(system(json), 0);
}

/* The root device's words on the kernel command line. */
static void root_args(void **state)
{
	static const struct {
		const char *drives, *cmdline, *want;
	} cases[] = {
		/* no root device: nothing */
		{"{\"drive_id\": \"a\", \"path_on_host\": \"/x\", \"is_root_device\": false}",
		 "console=ttyS0", "console=ttyS0"},
		{"{\"drive_id\": \"a\", \"path_on_host\": \"/x\", \"is_root_device\": true}",
		 "console=ttyS0", "console=ttyS0 root=/dev/vda rw"},
		{"{\"drive_id\": \"a\", \"path_on_host\": \"/x\", \"is_root_device\": true, "
		 "\"is_read_only\": true}",
		 "", " root=/dev/vda ro"},
		{"{\"drive_id\": \"d\", \"path_on_host\": \"/y\", \"is_root_device\": false}, "
		 "{\"drive_id\": \"a\", \"path_on_host\": \"/x\", \"is_root_device\": true, "
		 "\"partuuid\": \"0eaa91a0-01\"}",
		 "console=ttyS0 reboot=k", "console=ttyS0 reboot=k root=PARTUUID=0eaa91a0-01 rw"},
		/* the command line names a root already: left alone */
		{"{\"drive_id\": \"a\", \"path_on_host\": \"/x\", \"is_root_device\": true}",
		 "root=/dev/sda1 console=ttyS0", "root=/dev/sda1 console=ttyS0"},
		{"{\"drive_id\": \"a\", \"path_on_host\": \"/x\", \"is_root_device\": true}",
		 "console=ttyS0 root=PARTUUID=1-2", "console=ttyS0 root=PARTUUID=1-2"},
		/* rootfstype= and nfsroot= are other words */
		{"{\"drive_id\": \"a\", \"path_on_host\": \"/x\", \"is_root_device\": true}",
		 "rootfstype=ext4 nfsroot=x", "rootfstype=ext4 nfsroot=x root=/dev/vda rw"},
		/* after "--" the words are init's: the kernel's root= goes before it */
		{"{\"drive_id\": \"a\", \"path_on_host\": \"/x\", \"is_root_device\": true}",
		 "console=ttyS0 -- root=mine", "console=ttyS0 root=/dev/vda rw -- root=mine"},
		{"{\"drive_id\": \"a\", \"path_on_host\": \"/x\", \"is_root_device\": true}",
		 "quiet --verbose", "quiet --verbose root=/dev/vda rw"},
	};
	char json[512], cmd[CFG_CMDLINE_MAX];
	struct vm_config c;
	struct vmm_err e;

	(void)state;
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(json, sizeof(json), "{\"drives\": [%s]}", cases[i].drives);
		assert_int_equal(load(json, &c, &e), 0);
		snprintf(cmd, sizeof(cmd), "%s", cases[i].cmdline);
		assert_int_equal(vm_config_root_args(&c, cmd, sizeof(cmd)), 0);
		if (strcmp(cmd, cases[i].want))
			fail_msg("case %u: \"%s\", want \"%s\"", i, cmd, cases[i].want);
	}
	/* Too long: -E2BIG, the command line unchanged. */
	assert_int_equal(load("{\"drives\": [{\"drive_id\": \"a\", \"path_on_host\": \"/x\", "
			      "\"is_root_device\": true}]}",
			      &c, &e),
			 0);
	snprintf(cmd, sizeof(cmd), "console=ttyS0");
	assert_int_equal(vm_config_root_args(&c, cmd, strlen(cmd) + 17), -E2BIG);
	assert_string_equal(cmd, "console=ttyS0");
	assert_int_equal(vm_config_root_args(&c, cmd, strlen(cmd) + 18), 0);
	assert_string_equal(cmd, "console=ttyS0 root=/dev/vda rw");
}

/* @m flushed to a metrics file as FlushMetrics writes it: the line written, parsed. */
static cJSON *flushed_metrics(const struct vmm_metrics *m)
{
	static char line[32768];
	char path[] = "/tmp/hugevmm-metrics-XXXXXX";
	struct cfg_metrics mc = {.set = true};
	struct vmm_err e = {0};
	cJSON *o;
	FILE *f;
	int fd;

	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	snprintf(mc.path, sizeof(mc.path), "%s", path);
	assert_int_equal(api_metrics_apply(&mc, "metrics.metrics_path", &e), 0);
	assert_int_equal(api_metrics_flush(m, NULL), 0);
	api_telemetry_close();
	f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(line, sizeof(line), f));
	fclose(f);
	unlink(path);
	o = cJSON_Parse(line);
	assert_non_null(o);
	return o;
}

/* Per-drive counters as Firecracker writes them (block_<id>, block) and in GET /metrics. */
static void drive_metrics_shape(void **state)
{
	static struct vmm_metrics m;
	cJSON *o, *g;

	(void)state;
	m.vm.ndrives = 2;
	snprintf(m.vm.drives[0].id, sizeof(m.vm.drives[0].id), "rootfs");
	m.vm.drives[0].read_count = 3;
	m.vm.drives[0].read_bytes = 12288;
	m.vm.drives[0].io_errors = 1;
	m.vm.drives[0].inflight_max = 7;
	m.vm.drives[0].fixed_fallbacks = 2;
	snprintf(m.vm.drives[1].id, sizeof(m.vm.drives[1].id), "data");
	m.vm.drives[1].read_count = 5;
	m.vm.drives[1].write_count = 2;
	m.vm.drives[1].flush_count = 1;
	m.vm.drives[1].inflight_max = 4;
	m.vm.drives[1].update_count = 1;

	o = flushed_metrics(&m);
	g = cJSON_GetObjectItem(o, "block_rootfs");
	assert_int_equal(cJSON_GetObjectItem(g, "read_count")->valuedouble, 3);
	assert_int_equal(cJSON_GetObjectItem(g, "read_bytes")->valuedouble, 12288);
	assert_int_equal(cJSON_GetObjectItem(g, "execute_fails")->valuedouble, 1);
	assert_int_equal(cJSON_GetObjectItem(g, "fixed_fallbacks")->valuedouble, 2);
	assert_null(cJSON_GetObjectItem(g, "drive_id"));
	g = cJSON_GetObjectItem(o, "block_data");
	assert_int_equal(cJSON_GetObjectItem(g, "update_count")->valuedouble, 1);
	/* The aggregate: sums, and the largest inflight_max. */
	g = cJSON_GetObjectItem(o, "block");
	assert_int_equal(cJSON_GetObjectItem(g, "read_count")->valuedouble, 8);
	assert_int_equal(cJSON_GetObjectItem(g, "write_count")->valuedouble, 2);
	assert_int_equal(cJSON_GetObjectItem(g, "flush_count")->valuedouble, 1);
	assert_int_equal(cJSON_GetObjectItem(g, "execute_fails")->valuedouble, 1);
	assert_int_equal(cJSON_GetObjectItem(g, "inflight_max")->valuedouble, 7);
	cJSON_Delete(o);
	/* hugevmm's own /metrics entry names the drive and says io_errors. */
	o = report_drive_metrics(&m.vm.drives[0], false);
	assert_string_equal(cJSON_GetObjectItem(o, "drive_id")->valuestring, "rootfs");
	assert_int_equal(cJSON_GetObjectItem(o, "io_errors")->valuedouble, 1);
	assert_null(cJSON_GetObjectItem(o, "execute_fails"));
	cJSON_Delete(o);
}

/* Firecracker's net_<iface_id> groups and their sum "net"; hugevmm's /metrics entry. */
static void net_metrics_shape(void **state)
{
	static struct vmm_metrics m;
	cJSON *o, *g;

	(void)state;
	m.vm.nnets = 2;
	snprintf(m.vm.nets[0].id, sizeof(m.vm.nets[0].id), "eth0");
	m.vm.nets[0].rx_packets_count = 3;
	m.vm.nets[0].tx_malformed_frames = 1;
	m.vm.nets[0].no_tx_avail_buffer = 9;
	snprintf(m.vm.nets[1].id, sizeof(m.vm.nets[1].id), "eth1");
	m.vm.nets[1].rx_packets_count = 4;
	m.vm.nets[1].tx_bytes_count = 1500;

	o = flushed_metrics(&m);
	g = cJSON_GetObjectItem(o, "net_eth0");
	assert_int_equal(cJSON_GetObjectItem(g, "rx_packets_count")->valuedouble, 3);
	assert_int_equal(cJSON_GetObjectItem(g, "no_tx_avail_buffer")->valuedouble, 9);
	assert_null(cJSON_GetObjectItem(g, "iface_id"));
	/* Every counter of struct vm_net_metrics, by its name. */
	assert_int_equal(cJSON_GetArraySize(g), 18);
	g = cJSON_GetObjectItem(o, "net");
	assert_int_equal(cJSON_GetObjectItem(g, "rx_packets_count")->valuedouble, 7);
	assert_int_equal(cJSON_GetObjectItem(g, "tx_bytes_count")->valuedouble, 1500);
	assert_int_equal(cJSON_GetObjectItem(g, "tx_malformed_frames")->valuedouble, 1);
	assert_non_null(cJSON_GetObjectItem(o, "net_eth1"));
	cJSON_Delete(o);
	o = report_net_metrics(&m.vm.nets[1], false);
	assert_string_equal(cJSON_GetObjectItem(o, "iface_id")->valuestring, "eth1");
	assert_int_equal(cJSON_GetObjectItem(o, "tx_bytes_count")->valuedouble, 1500);
	cJSON_Delete(o);
}

/* The balloon and a region's reclaim: parsed, rendered (GET /vm/config), parsed back. */
static void balloon_render_round_trip(void **state)
{
	static const char json[] =
		"{\"balloon\": {\"amount_mib\": 96, \"deflate_on_oom\": true, "
		"\"stats_polling_interval_s\": 65535, \"free_page_hinting\": false, "
		"\"free_page_reporting\": true}, \"memory\": {\"regions\": [{\"backing\": "
		"\"thp\", \"size_mib\": 64, \"reclaim\": \"keep\"}, {\"backing\": \"memfd\", "
		"\"size_mib\": 32, \"reclaim\": \"return\"}]}}";
	static struct vm_config c, back;
	struct vmm_err e;
	cJSON *o, *b, *regs;
	char *text;

	(void)state;
	assert_int_equal(load(json, &c, &e), 0);
	assert_true(c.balloon.set);
	assert_int_equal(c.balloon.amount_mib, 96); /* all of RAM is allowed */
	assert_true(c.balloon.deflate_on_oom);
	assert_int_equal(c.balloon.stats_polling_interval_s, 65535);
	assert_true(c.balloon.free_page_reporting);
	assert_int_equal(c.regions[0].reclaim, MEM_RECLAIM_CFG_KEEP);
	assert_int_equal(c.regions[1].reclaim, MEM_RECLAIM_CFG_RETURN);
	/* Implemented: no warning names it. */
	assert_null(strstr(warnings, "balloon"));
	o = cfg_json_render(&c);
	b = cJSON_GetObjectItem(o, "balloon");
	assert_int_equal(cJSON_GetArraySize(b), 5); /* every field of Firecracker's Balloon */
	assert_true(cJSON_IsFalse(cJSON_GetObjectItem(b, "free_page_hinting")));
	regs = cJSON_GetObjectItem(cJSON_GetObjectItem(o, "memory"), "regions");
	assert_string_equal(
		cJSON_GetObjectItem(cJSON_GetArrayItem(regs, 1), "reclaim")->valuestring, "return");
	text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	assert_int_equal(load(text, &back, &e), 0);
	free(text);
	assert_memory_equal(&back.balloon, &c.balloon, sizeof(c.balloon));
	assert_int_equal(back.regions[0].reclaim, MEM_RECLAIM_CFG_KEEP);
	assert_int_equal(back.regions[1].reclaim, MEM_RECLAIM_CFG_RETURN);

	/* Defaults; null is an absent balloon, as Firecracker's Option. */
	assert_int_equal(load("{\"balloon\": {\"amount_mib\": 0, \"deflate_on_oom\": false}}", &c,
			      &e),
			 0);
	assert_true(c.balloon.set);
	assert_int_equal(c.balloon.stats_polling_interval_s, 0);
	assert_false(c.balloon.free_page_reporting);
	assert_int_equal(load("{\"balloon\": null}", &c, &e), 0);
	assert_false(c.balloon.set);
	o = cfg_json_render(&c);
	assert_null(cJSON_GetObjectItem(o, "balloon"));
	cJSON_Delete(o);
}

/* PATCH /balloon and PATCH /balloon/statistics bodies. */
static void balloon_patch_parsed(void **state)
{
	static const struct {
		const char *json;
		bool stats;
		const char *want; /* NULL: accepted */
	} cases[] = {
		{"{\"amount_mib\": 4294967295}", false, NULL},
		{"{\"amount_mib\": 0}", false, NULL},
		{"{}", false, "balloon.amount_mib: missing"},
		{"{\"amount_mib\": 1, \"deflate_on_oom\": true}", false,
		 "balloon.deflate_on_oom: PATCH /balloon changes only amount_mib"},
		{"{\"amount_mib\": 1, \"stats_polling_interval_s\": 1}", false,
		 "PATCH /balloon/statistics changes it"},
		{"{\"stats_polling_interval_s\": 65535}", true, NULL},
		{"{\"stats_polling_interval_s\": 0}", true, NULL},
		{"{\"stats_polling_interval_s\": -1}", true, "-1 is out of range; use 0 to 65535"},
		{"{\"amount_mib\": 1}", true, "balloon.amount_mib: unknown field"},
	};

	(void)state;
	for (unsigned i = 0; i < ARRAY_SIZE(cases); i++) {
		cJSON *o = cJSON_Parse(cases[i].json);
		struct vmm_err e = {0};
		uint32_t v = 7;
		int r = cases[i].stats ? cfg_json_balloon_stats_update(o, "balloon", &v, &e)
				       : cfg_json_balloon_update(o, "balloon", &v, &e);

		cJSON_Delete(o);
		if (!cases[i].want) {
			if (r)
				fail_msg("case %u refused: %s", i, e.msg);
			assert_int_equal(v, (uint32_t)strtoull(strchr(cases[i].json, ':') + 1,
								  NULL, 10));
		} else if (!r || !strstr(e.msg, cases[i].want)) {
			fail_msg("case %u: %s, message\n  %s\nlacks\n  %s", i,
				 r ? "refused" : "accepted", e.msg, cases[i].want);
		}
	}
}

/* The balloon's groups: Firecracker's "balloon" (its names, then hugevmm's) and "reclaim". */
static void balloon_metrics_shape(void **state)
{
	static struct vmm_metrics m;
	static const char *const fc[] = {"activate_fails", "inflate_count", "stats_updates_count",
					 "stats_update_fails", "deflate_count", "event_fails"};
	cJSON *o, *g;

	(void)state;
	/* No balloon: no groups. */
	o = flushed_metrics(&m);
	assert_null(cJSON_GetObjectItem(o, "balloon"));
	assert_null(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "hugevmm"), "reclaim"));
	cJSON_Delete(o);

	m.vm.has_balloon = true;
	m.vm.balloon.inflate_count = 3;
	m.vm.balloon.deflate_waits = 2;
	m.vm.reclaim.huge_reclaimed = 5;
	m.vm.reclaim.discard_errors = 1;
	o = flushed_metrics(&m);
	g = cJSON_GetObjectItem(o, "balloon");
	assert_int_equal(cJSON_GetArraySize(g), 12); /* every counter of balloon_counters */
	for (unsigned i = 0; i < ARRAY_SIZE(fc); i++)
		assert_string_equal(cJSON_GetArrayItem(g, (int)i)->string, fc[i]);
	assert_int_equal(cJSON_GetObjectItem(g, "inflate_count")->valuedouble, 3);
	assert_int_equal(cJSON_GetObjectItem(g, "deflate_waits")->valuedouble, 2);
	g = cJSON_GetObjectItem(cJSON_GetObjectItem(o, "hugevmm"), "reclaim");
	assert_int_equal(cJSON_GetArraySize(g), 10); /* every counter of mem_reclaim_stats */
	assert_int_equal(cJSON_GetObjectItem(g, "huge_reclaimed")->valuedouble, 5);
	assert_int_equal(cJSON_GetObjectItem(g, "discard_errors")->valuedouble, 1);
	cJSON_Delete(o);
}

/* GET /balloon/statistics: Firecracker's BalloonStats names by tag; unreported ones absent. */
static void balloon_stats_shape(void **state)
{
	struct balloon_info b = {.target_pages = 512, .actual_pages = 300};
	cJSON *o;

	(void)state;
	b.gs.have = 1u << 0 | 1u << 4 | 1u << 9 | 1u << 10 | 1u << 15;
	b.gs.val[0] = 11;
	b.gs.val[4] = 4096;
	b.gs.val[5] = 99; /* not reported: not shown */
	b.gs.val[9] = 2;
	b.gs.val[10] = 1;
	b.gs.val[15] = 7;
	o = report_balloon_stats(&b);
	assert_int_equal(cJSON_GetObjectItem(o, "target_pages")->valuedouble, 512);
	assert_int_equal(cJSON_GetObjectItem(o, "actual_pages")->valuedouble, 300);
	assert_int_equal(cJSON_GetObjectItem(o, "target_mib")->valuedouble, 2);
	assert_int_equal(cJSON_GetObjectItem(o, "actual_mib")->valuedouble, 1);
	assert_int_equal(cJSON_GetObjectItem(o, "swap_in")->valuedouble, 11);
	assert_int_equal(cJSON_GetObjectItem(o, "free_memory")->valuedouble, 4096);
	assert_int_equal(cJSON_GetObjectItem(o, "hugetlb_failures")->valuedouble, 2);
	assert_int_equal(cJSON_GetObjectItem(o, "oom_kill")->valuedouble, 1);
	assert_int_equal(cJSON_GetObjectItem(o, "direct_reclaim")->valuedouble, 7);
	assert_null(cJSON_GetObjectItem(o, "total_memory"));
	assert_int_equal(cJSON_GetArraySize(o), 4 + 5);
	cJSON_Delete(o);
}

/* GET /memory's region: reclaim, its sentence and counts; the human view when nonzero. */
static void memory_report_has_reclaim(void **state)
{
	static struct guest_mem gm;
	struct mem_region *r = &gm.regions[0];
	cJSON *o, *reg;
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	(void)state;
	gm.nregions = 1;
	mem_cfg_init(&r->cfg, MEM_BACKING_THP, "ram0", "memory.regions[0]");
	r->cfg.reclaim = MEM_RECLAIM_CFG_RETURN;
	r->size = 64 * SZ_1M;
	r->page_size = SZ_2M;
	o = report_memory(&gm, NULL);
	reg = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "regions"), 0);
	assert_string_equal(cJSON_GetObjectItem(reg, "reclaim")->valuestring, "return");
	/* No balloon: a sentence still, and zeros. */
	assert_string_equal(cJSON_GetObjectItem(reg, "reclaim_why")->valuestring,
			    "no balloon: nothing is given back");
	assert_int_equal(cJSON_GetObjectItem(reg, "reclaimed_bytes")->valuedouble, 0);
	assert_int_equal(cJSON_GetObjectItem(reg, "balloon_bytes")->valuedouble, 0);
	f = open_memstream(&text, &len);
	report_memory_human_json(f, o);
	fclose(f);
	assert_null(strstr(text, "reclaim"));
	free(text);
	cJSON_Delete(o);

	snprintf(r->reclaim_why, sizeof(r->reclaim_why), "thp: whole 2M pages, MADV_DONTNEED");
	r->reclaimed_bytes = 4 * SZ_1M;
	r->balloon_bytes = 12 * 4096;
	o = report_memory(&gm, NULL);
	reg = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "regions"), 0);
	assert_string_equal(cJSON_GetObjectItem(reg, "reclaim_why")->valuestring,
			    "thp: whole 2M pages, MADV_DONTNEED");
	assert_int_equal(cJSON_GetObjectItem(reg, "reclaimed_bytes")->valuedouble, 4 * SZ_1M);
	assert_int_equal(cJSON_GetObjectItem(reg, "balloon_bytes")->valuedouble, 12 * 4096);
	f = open_memstream(&text, &len);
	report_memory_human_json(f, o);
	fclose(f);
	assert_non_null(strstr(text, "reclaim (return): 4 MiB given back to the host, 48 KiB in "
				     "the balloon not given back"));
	free(text);
	cJSON_Delete(o);
}

/* Every file in configs/ parses and validates: the examples stay true. */
static void every_bundled_config_parses(void **state)
{
	const char *dir = getenv("HUGEVMM_CONFIGS") ? getenv("HUGEVMM_CONFIGS") : "configs";
	struct dirent *d;
	unsigned n = 0;
	DIR *dp = opendir(dir);

	(void)state;
	assert_non_null(dp);
	while ((d = readdir(dp))) {
		char path[512];
		struct vm_config c;
		struct vmm_err e = {0};
		size_t len = strlen(d->d_name);

		if (len < 5 || strcmp(d->d_name + len - 5, ".json"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, d->d_name);
		if (cfg_json_load(path, &c, &e) || vm_config_finalize(&c, false, &e))
			fail_msg("%s: %s", path, e.msg);
		n++;
	}
	closedir(dp);
	assert_true(n >= 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(every_error_names_path_value_remedy, setup,
						teardown),
		cmocka_unit_test_setup_teardown(firecracker_schema_accepted, setup, teardown),
		cmocka_unit_test_setup_teardown(huge_pages_mapping, setup, teardown),
		cmocka_unit_test_setup_teardown(memory_section_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(memory_overrides_machine_config, setup, teardown),
		cmocka_unit_test_setup_teardown(boot_source_required_to_run, setup, teardown),
		cmocka_unit_test_setup_teardown(load_reports_file_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(check_files_names_the_field, setup, teardown),
		cmocka_unit_test_setup_teardown(every_bundled_config_parses, setup, teardown),
		cmocka_unit_test_setup_teardown(copy_takes_what_is_used, setup, teardown),
		cmocka_unit_test_setup_teardown(copy_leaves_empty_pages_untouched, setup, teardown),
		cmocka_unit_test_setup_teardown(drive_fields_parsed, setup, teardown),
		cmocka_unit_test_setup_teardown(drive_render_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(drive_patch_parsed, setup, teardown),
		cmocka_unit_test_setup_teardown(net_render_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(net_patch_parsed, setup, teardown),
		cmocka_unit_test_setup_teardown(drive_files_checked, setup, teardown),
		cmocka_unit_test_setup_teardown(root_args, setup, teardown),
		cmocka_unit_test_setup_teardown(drive_metrics_shape, setup, teardown),
		cmocka_unit_test_setup_teardown(net_metrics_shape, setup, teardown),
		cmocka_unit_test_setup_teardown(balloon_render_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(balloon_patch_parsed, setup, teardown),
		cmocka_unit_test_setup_teardown(balloon_metrics_shape, setup, teardown),
		cmocka_unit_test_setup_teardown(balloon_stats_shape, setup, teardown),
		cmocka_unit_test_setup_teardown(memory_report_has_reclaim, setup, teardown),
	};

	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
