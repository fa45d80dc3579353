/*
 * A scratch directory for a unit test binary: made by the group setup, removed
 * with everything in it by the group teardown. Header-only, one per binary.
 */
#ifndef HUGEVMM_TESTS_UNIT_TMPDIR_H
#define HUGEVMM_TESTS_UNIT_TMPDIR_H

#include <stdio.h>
#include <stdlib.h>

static char tmpdir[] = "/tmp/hugevmm-unit-XXXXXX";

static int setup(void **state)
{
	(void)state;
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[64];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd);
}

#endif
