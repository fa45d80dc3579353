/*
 * Config files: Firecracker's --config-file schema plus hugevmm's "memory"
 * section, JSON in, struct vm_config out. Every error names the JSON path,
 * the value and the remedy; syntax errors name line and column.
 */
#ifndef HUGEVMM_API_CONFIG_JSON_H
#define HUGEVMM_API_CONFIG_JSON_H

#include <stddef.h>

#include "vmm/config.h"

#define CFG_FILE_MAX (1 << 20) /* config files are small; refuse anything over 1 MiB */

/* Parse @len bytes of JSON into @c (initialized here). Not finalized. */
int cfg_json_parse(const char *text, size_t len, struct vm_config *c, struct vmm_err *e) must_check;

/* Read and parse the file at @path. */
int cfg_json_load(const char *path, struct vm_config *c, struct vmm_err *e) must_check;

/* Parse one memory region object (the API's PUT /memory/regions/{id} body). */
struct cJSON;
int cfg_json_region(const struct cJSON *o, const char *path, unsigned index,
		    struct mem_region_cfg *r, struct vmm_err *e) must_check;

#endif
