/*
 * cli_internal.h: what the policy author's commands (cmd_check.c,
 * cmd_test.c, cmd_eval.c) share: reading files, printing errors, and
 * deciding one request offline exactly as the proxy does, through the same
 * verdict (policy/verdict.c) and the same gzip inflater (inspect.c).
 */
#ifndef CONSENTGATE_CLI_INTERNAL_H
#define CONSENTGATE_CLI_INTERNAL_H

#include <stdio.h>

#include "consentgate/policy.h"
#include "consentgate/verdict.h"

/* Print every message of e to stderr, one a line. */
void cli_print_errors(const struct cg_errors *e);
/* --help or -h */
bool cli_is_help(const char *arg);
/* The whole file (or stdin for "-"), malloc'ed, NUL-terminated at
 * [*len]. NULL with errno set on failure. */
char *cli_read_file(const char *path, size_t *len);
/* An RFC 3339 time (the importer's parser) to unix seconds. 0 or -1. */
int cli_parse_now(const char *text, int64_t *now);
/*
 * Split "METHOD /path?query" into method (NUL-terminated into a buffer
 * of cap bytes) and *path (the rest, query included). 0 or -1.
 */
int cli_split_route(const char *route, char *method, size_t cap,
                    const char **path);

/* One request, as a client would send it. */
struct cli_request {
	const char *method;
	const char *path; /* may carry "?query" */
	const struct verdict_header *headers;
	unsigned nheaders;
	const char *body;
	size_t len;
	int64_t now;
	/* the client's certificate identities as the proxy reads them
	   ("kind:value" strings, each NUL-ended, then an empty one); NULL
	   for a client without one */
	const char *client_ids;
};

/* One decided record, compactly (a body may hold millions). */
struct cli_record {
	size_t start, end; /* in cli_result.body */
	char *subjects;    /* ids joined by ',', "" when none */
	char *evidence;    /* every subject's evidence id, joined by ',' */
	bool allow;
	const char *rule_id;
	struct consent_lookup_result consent; /* the deciding row */
};

struct cli_result {
	/* what the proxy answers: 200 forwarded, 204 all dropped, or the
	 * refusal (400, 403, 404, 405, 413, 414, 415, 422, 500) */
	int status;
	char error[CG_MAX_DETAIL + 128];  /* the problem detail, for people */
	const struct policy_route *route; /* NULL when no route took it */
	struct verdict v;                 /* Consent-* values, counts, format */
	struct cli_record *recs;          /* every record decided, in order */
	unsigned nrecs, cap;
	const char *body; /* the body decided (inflated if gzip) */
	size_t len;
	char *inflated; /* owned: body after gzip */
	char *out;      /* the body forwarded upstream (200) */
	size_t out_len;
};

/*
 * Decide req against policy p and table t as the proxy would: route,
 * verdict (streamed line by line when the proxy would stream it), the
 * body forwarded. Returns 0 with res filled whatever the status, -1 when
 * out of memory. cli_result_reset frees it.
 */
int cli_run(const struct policy *p, const struct consent_table *t,
            const struct cli_request *req, struct cli_result *res);
void cli_result_reset(struct cli_result *res);

#endif
