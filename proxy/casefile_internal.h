/*
 * casefile_internal.h: the case files of `consentgate test`, read and
 * checked as strictly as rule files before any case runs (casefile.c).
 */
#ifndef CONSENTGATE_CASEFILE_INTERNAL_H
#define CONSENTGATE_CASEFILE_INTERNAL_H

#include <jansson.h>

#include "cli_internal.h"
#include "consentgate/jsonpos.h"

#define CASEFILE_PATH_LEN 4096 /* bytes of a resolved file name */

/* One case file, parsed and checked. */
struct casefile {
	const char *path;
	/* its directory, with a trailing '/', or "" */
	char dir[CASEFILE_PATH_LEN];
	char *text;
	size_t len;
	json_t *root;
	struct jsonpos *pos;
	int64_t now;
	struct consent_table *table; /* the default rows or file */
};

/* One case, ready to run. */
struct casefile_case {
	struct casefile *f;
	const char *name;
	char path[CG_MAX_JSON_PATH]; /* "cases[3]" */
	char method[32];
	const char *target;
	int64_t now;
	const struct consent_table *table;
	struct consent_table *own; /* the case's own rows or file */
	char *body;
	size_t len;
	struct verdict_header headers[CG_MAX_CLI_HEADERS];
	unsigned nheaders;
	/* "client": the identities of its TLS certificate, as the proxy
	   lists them (cli_request.client_ids); has_client false: none */
	char client_ids[512];
	bool has_client;
	json_t *expect;
};

struct casefile_set {
	const struct policy *p;
	struct casefile files[CG_MAX_CASE_FILES];
	unsigned nfiles;
	struct casefile_case *cases;
	unsigned ncases, cap;
	struct cg_errors errs;
};

/* Start a set of case files for policy p (borrowed). */
void casefile_set_init(struct casefile_set *s, const struct policy *p);
/*
 * Read and check one case file into s: its cases are appended to
 * s->cases, ready to run, and every error goes to s->errs as
 * file:line:col: path: message. Returns 0, or -1 when s holds
 * CG_MAX_CASE_FILES files already. A set with errors must not run.
 */
int casefile_load(struct casefile_set *s, const char *path);
/*
 * casefile_load for a file already read (the fuzz driver's seam): text is
 * malloc'ed, NUL-terminated at [len], and the set's from now on, even on
 * -1. path still names it and resolves its relative file names.
 */
int casefile_load_text(struct casefile_set *s, const char *path, char *text,
                       size_t len);
/* Free everything the set holds. */
void casefile_set_reset(struct casefile_set *s);

#endif
