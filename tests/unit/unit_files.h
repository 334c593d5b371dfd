/*
 * unit_files.h: a temporary directory for a test binary and files written
 * into it, and the errors loading them gave (after cmocka.h). Use
 * unit_files_setup/unit_files_teardown as the group's setup and teardown;
 * each test unlinks the files it wrote.
 */
#ifndef CONSENTGATE_UNIT_FILES_H
#define CONSENTGATE_UNIT_FILES_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "consentgate/common.h"

static char unit_dir[64]; /* the directory, while the group runs */

/* Write text to unit_dir/name; the path, which the caller frees. */
static inline char *
unit_write_file(const char *name, const char *text)
{
	char *path;
	FILE *f;

	assert_true(asprintf(&path, "%s/%s", unit_dir, name) > 0);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

/* True when one of the errors in e contains needle. */
static inline bool
unit_has_error(const struct cg_errors *e, const char *needle)
{
	for (unsigned i = 0; i < e->count; i++)
		if (strstr(e->msgs[i], needle) != NULL)
			return true;
	return false;
}

static inline int
unit_files_setup(void **state)
{
	(void)state;
	snprintf(unit_dir, sizeof(unit_dir), "/tmp/cg-unit.XXXXXX");
	return mkdtemp(unit_dir) ? 0 : -1;
}

static inline int
unit_files_teardown(void **state)
{
	(void)state;
	return rmdir(unit_dir); /* fails, and so the group, if one is left */
}

#endif
