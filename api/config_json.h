/*
 * Config files: Firecracker's --config-file schema plus hugevmm's "memory"
 * section, JSON in, struct vm_config out. Every error names the JSON path,
 * the value and the remedy; syntax errors name line and column.
 */
#ifndef HUGEVMM_API_CONFIG_JSON_H
#define HUGEVMM_API_CONFIG_JSON_H

#include <stddef.h>

#include "vmm/config.h"
#include "vmm/vmm.h"

#define CFG_FILE_MAX (1 << 20) /* config files are small; refuse anything over 1 MiB */

/* Parse @len bytes of JSON into @c (initialized here). Not finalized. */
int cfg_json_parse(const char *text, size_t len, struct vm_config *c, struct vmm_err *e) must_check;

/* Read and parse the file at @path. */
int cfg_json_load(const char *path, struct vm_config *c, struct vmm_err *e) must_check;

/*
 * The sections one at a time (config file sections and API request bodies),
 * @path naming the object in messages. Each is ERR_CONFIG on error.
 */
struct cJSON;
int cfg_json_boot(const struct cJSON *o, const char *path, struct vm_config *c,
		  struct vmm_err *e) must_check;
int cfg_json_machine(const struct cJSON *o, const char *path, struct vmm_machine *m,
		     struct vmm_err *e) must_check;
int cfg_json_drive(const struct cJSON *o, const char *path, struct cfg_drive *d,
		   struct vmm_err *e) must_check;
/* PATCH /drives/{id}: Firecracker's PartialDrive (drive_id, path_on_host, rate_limiter). */
int cfg_json_drive_patch(const struct cJSON *o, const char *path, struct vmm_drive_patch *dp,
			 struct vmm_err *e) must_check;
int cfg_json_net(const struct cJSON *o, const char *path, struct cfg_net *n,
		 struct vmm_err *e) must_check;
int cfg_json_logger(const struct cJSON *o, const char *path, struct cfg_logger *l,
		    struct vmm_err *e) must_check;
int cfg_json_metrics(const struct cJSON *o, const char *path, struct cfg_metrics *m,
		     struct vmm_err *e) must_check;
int cfg_json_entropy(const struct cJSON *o, const char *path, struct cfg_entropy *en,
		     struct vmm_err *e) must_check;
int cfg_json_region(const struct cJSON *o, const char *path, unsigned index,
		    struct mem_region_cfg *r, struct vmm_err *e) must_check;

/* The configuration as JSON, in the config file's shape (GET /vm/config). */
struct cJSON *cfg_json_render(const struct vm_config *c);

/* One drive as Firecracker's Drive object, plus hugevmm's "direct". */
struct cJSON *cfg_json_render_drive(const struct cfg_drive *d);

/* Firecracker's RateLimiter object for @rl (NULL when none is set). */
struct cJSON *cfg_json_render_rate_limiter(const struct rl_cfg *rl);

/* machine-config alone (GET /machine-config). */
struct cJSON *cfg_json_render_machine(const struct vm_config *c);

#endif
