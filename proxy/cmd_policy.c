/*
 * cmd_policy.c: the policy author's commands: check, test, eval.
 *
 * check POLICY             validate, warn, "POLICY: OK (N routes, N rules)"
 * test POLICY CASES...     run table-driven cases, report rule coverage
 * eval --policy P ...      decide every record of a body, offline
 *
 * The case file format (consentgate test):
 *
 * {
 *   "now": "2026-01-01T00:00:00Z",          default clock for every case
 *   "consent": [[subject, purpose, status, jurisdiction, updated_at,
 *                evidence], ...]            default consent rows
 *   "consent_file": "table.csv",            or a CSV/snapshot file
 *   "cases": [ {
 *     "name": "eea-granted-kept",           required, unique
 *     "route": "POST /ingest",              required: method and path
 *     "now", "consent", "consent_file":     override the defaults
 *     "content_type": "application/json",   default: NDJSON if accepted
 *     "headers": {"X-Subject-Id": "1001"},  request headers
 *     "body": "..." | "body_file": "x.ndjson" | "records": [values]
 *                                           records are sent as NDJSON
 *     "expect": {                           every key optional
 *       "status": 200,       200 forwarded, 403 blocked, 404 no route,
 *                            415 unsupported body, 400 malformed body
 *       "kept": [0, 2],      indexes of the forwarded records
 *       "kept_records": [...], the forwarded records, compared as JSON
 *       "dropped": 1, "blocked": false,
 *       "decisions": ["allow", "deny"], "rules": ["strict-granted", ...]
 *     } } ]
 * }
 * Relative file names resolve against the case file's directory.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

#include "cmd_internal.h"
#include "consentgate/policy.h"

/* Messages cut long file names on purpose. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

#define BODY_MAX (256u << 20) /* bytes of a body or case file read */

/* ---- helpers ---- */

static void
print_errors(const struct cg_errors *e)
{
	for (unsigned i = 0; i < e->count; i++)
		fprintf(stderr, "%s\n", e->msgs[i]);
	if (e->dropped > 0)
		fprintf(stderr, "(%u more not shown)\n", e->dropped);
}

static char *
read_all(FILE *f, size_t *len)
{
	char *buf = NULL, *nb;
	size_t cap = 0, n = 0, got;

	for (;;) {
		if (n == cap) {
			cap = cap ? cap * 2 : 65536;
			if (cap > BODY_MAX + 1 ||
			    (nb = realloc(buf, cap)) == NULL)
				goto fail;
			buf = nb;
		}
		got = fread(buf + n, 1, cap - n, f);
		if (got == 0)
			break;
		n += got;
	}
	if (ferror(f))
		goto fail;
	*len = n;
	return buf;
fail:
	free(buf);
	return NULL;
}

static char *
read_file(const char *path, size_t *len)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	char *buf;

	if (f == NULL)
		return NULL;
	buf = read_all(f, len);
	if (f != stdin)
		fclose(f);
	return buf;
}

/* RFC 3339 date-time to unix seconds; -1 when malformed. */
static int
parse_rfc3339(const char *s, int64_t *out)
{
	struct tm tm;
	int y, mo, d, h, mi, sec, n = 0;
	int64_t off = 0;
	const char *c;

	memset(&tm, 0, sizeof(tm));
	if (sscanf(s, "%4d-%2d-%2d%*[Tt ]%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi,
	           &sec, &n) != 6 ||
	    n == 0)
		return -1;
	c = s + n;
	if (*c == '.')
		for (c++; isdigit((unsigned char)*c); c++)
			;
	if (*c == 'Z' || *c == 'z') {
		c++;
	} else if (*c == '+' || *c == '-') {
		int oh, om, m = 0;
		if (sscanf(c + 1, "%2d:%2d%n", &oh, &om, &m) != 2 || m != 5)
			return -1;
		off = (int64_t)(oh * 3600 + om * 60) * (*c == '+' ? 1 : -1);
		c += 6;
	} else {
		return -1;
	}
	if (*c != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 ||
	    mi > 59 || sec > 60)
		return -1;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	*out = (int64_t)timegm(&tm) - off;
	return 0;
}

static bool
is_help(const char *a)
{
	return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0;
}

/* ---- the decision of one request, shared by test and eval ---- */

struct rec_out {
	size_t start, end;
	char *subjects; /* joined by ',' */
	struct policy_decision d;
};

struct run_result {
	int status;      /* 200, 403, 404, 415, 400 */
	char error[256]; /* why, when status is not 200 or 403 */
	const struct policy_route *route;
	int format;
	struct rec_out *recs;
	unsigned nrecs;
	unsigned kept, dropped;
	bool blocked;
	char *out; /* the body to forward */
	size_t out_len;
};

static void
run_result_reset(struct run_result *r)
{
	for (unsigned i = 0; i < r->nrecs; i++)
		free(r->recs[i].subjects);
	free(r->recs);
	free(r->out);
	memset(r, 0, sizeof(*r));
}

static char *
join_subjects(const struct cg_slice *s, unsigned n)
{
	size_t len = 1;
	char *buf, *p;

	for (unsigned i = 0; i < n; i++)
		len += s[i].len + 1;
	if ((buf = malloc(len)) == NULL)
		return NULL;
	p = buf;
	for (unsigned i = 0; i < n; i++) {
		if (i > 0)
			*p++ = ',';
		memcpy(p, s[i].ptr, s[i].len);
		p += s[i].len;
	}
	*p = '\0';
	return buf;
}

static int
add_rec(struct run_result *res, size_t start, size_t end,
        const struct cg_slice *subj, unsigned nsubj,
        const struct policy_decision *d)
{
	struct rec_out *nr;

	if ((res->nrecs & (res->nrecs - 1)) == 0) {
		size_t cap = res->nrecs ? res->nrecs * 2 : 16;
		nr = realloc(res->recs, cap * sizeof(*nr));
		if (nr == NULL)
			return -1;
		res->recs = nr;
	}
	nr = &res->recs[res->nrecs];
	nr->start = start;
	nr->end = end;
	nr->d = *d;
	nr->subjects = join_subjects(subj, nsubj);
	if (nr->subjects == NULL)
		return -1;
	res->nrecs++;
	if (d->allow)
		res->kept++;
	else
		res->dropped++;
	return 0;
}

/*
 * Decide a request as the proxy would. header(name) gives a request header
 * value or NULL. Returns 0 (result in res, whatever the status) or -1 on
 * allocation failure.
 */
static int
run_request(const struct policy *p, const struct consent_table *t,
            const char *method, const char *path, const char *ctype,
            const char *(*header)(void *, const char *), void *hctx,
            const char *body, size_t len, int64_t now, struct run_result *res)
{
	struct scan_record *rec = NULL;
	struct policy_span *spans = NULL;
	struct scan_iter it;
	struct policy_decision d;
	struct policy_refusal why;
	const struct policy_route *r;
	const char *q = strchr(path, '?');
	int rc = -1, n;

	memset(res, 0, sizeof(*res));
	r = policy_match(
	    p, (struct cg_slice){method, strlen(method)},
	    (struct cg_slice){path, q ? (size_t)(q - path) : strlen(path)},
	    &why);
	res->route = r;
	if (r == NULL) {
		/* the proxy's status, and its detail after the request */
		char detail[CG_MAX_DETAIL];

		res->status = why.status;
		policy_refusal_detail(&why, detail, sizeof(detail));
		if (why.route == NULL && why.status == 404)
			snprintf(res->error, sizeof(res->error),
			         "no route covers %s %s", method, path);
		else
			snprintf(res->error, sizeof(res->error),
			         "%s %s refused (HTTP %d): %s", method, path,
			         why.status, detail);
		return 0;
	}
	res->status = 200;
	if (policy_route_action(r) == POLICY_ACTION_PASS) {
		if ((res->out = malloc(len + 1)) == NULL)
			return -1;
		memcpy(res->out, body, len);
		res->out_len = len;
		return 0;
	}
	if (policy_route_subject_header(r) != NULL) {
		/* decided without reading the body, as the proxy does */
		const char *v = header(hctx, policy_route_subject_header(r));
		struct cg_slice s = {v, v ? strlen(v) : 0};
		unsigned ns = s.len > 0 ? 1 : 0;
		policy_decide(r, t, &s, ns, now, &d);
		if (add_rec(res, 0, len, &s, ns, &d) != 0)
			return -1;
		if ((res->out = malloc(len + 1)) == NULL)
			return -1;
		if (d.allow) {
			memcpy(res->out, body, len);
			res->out_len = len;
		}
		goto blocked;
	}
	res->format = policy_body_format(
	    r, (struct cg_slice){ctype ? ctype : "", ctype ? strlen(ctype) : 0},
	    body, len);
	if (res->format < 0) {
		res->status = 415;
		snprintf(res->error, sizeof(res->error),
		         "route '%s' does not accept this body (content type "
		         "'%s')",
		         policy_route_name(r), ctype ? ctype : "");
		return 0;
	}
	if ((rec = malloc(sizeof(*rec))) == NULL)
		goto done;
	scan_iter_init(&it, policy_route_scan_spec(r), res->format,
	               policy_route_array_at(r), body, len);
	while ((n = scan_iter_next(&it, rec)) == 1) {
		policy_decide_record(r, t, rec, now, &d);
		if (add_rec(res, rec->start, rec->end, rec->subjects,
		            rec->nsubjects, &d) != 0)
			goto done;
	}
	if (n < 0) {
		res->status = 400;
		snprintf(res->error, sizeof(res->error),
		         "record %u: %s (byte %zu)", it.index,
		         it.error ? it.error : "malformed", it.offset);
		rc = 0;
		goto done;
	}
	if ((spans = calloc(res->nrecs + 1, sizeof(*spans))) == NULL ||
	    (res->out = malloc(len + 1)) == NULL)
		goto done;
	unsigned k = 0;
	for (unsigned i = 0; i < res->nrecs; i++)
		if (res->recs[i].d.allow) {
			spans[k].start = res->recs[i].start;
			spans[k].end = res->recs[i].end;
			k++;
		}
	res->out_len =
	    policy_body_rebuild(res->format, body, len, it.array_open,
	                        it.array_close, spans, k, res->out);
blocked:
	if (res->dropped > 0 &&
	    policy_route_on_deny(r) == POLICY_ON_DENY_BLOCK) {
		res->blocked = true;
		res->status = 403;
		res->out_len = 0;
	}
	rc = 0;
done:
	free(rec);
	free(spans);
	return rc;
}

static const char *
status_word(const struct policy_decision *d)
{
	if (!d->consent.known)
		return "unknown";
	return consent_status_name(d->consent.status);
}

/* ---- check ---- */

int
cmd_check(int argc, char **argv)
{
	struct cg_errors errs;
	struct policy *p;
	int rc;

	if (argc == 2 && is_help(argv[1])) {
		printf(
		    "usage: consentgate check POLICY\n\n"
		    "Validate a rule file. Prints every error and warning as "
		    "file:line:col: message,\nthen \"POLICY: OK (N routes, "
		    "N rules)\".\nExit 0 when valid (warnings allowed), 1 on "
		    "errors, 2 on bad usage.\n");
		return 0;
	}
	if (argc != 2 || argv[1][0] == '-') {
		fprintf(stderr, "consentgate check: expected one POLICY file "
		                "(see --help)\n");
		return 2;
	}
	cg_errors_init(&errs);
	p = policy_load(argv[1], &errs);
	if (p == NULL) {
		print_errors(&errs);
		fprintf(stderr, "%s: %u error%s\n", argv[1],
		        errs.count + errs.dropped,
		        errs.count + errs.dropped == 1 ? "" : "s");
		rc = 1;
		goto done;
	}
	print_errors(policy_warnings(p));
	printf("%s: OK (%u route%s, %u rule%s)\n", argv[1],
	       policy_route_count(p), policy_route_count(p) == 1 ? "" : "s",
	       policy_rule_count(p), policy_rule_count(p) == 1 ? "" : "s");
	rc = 0;
done:
	policy_free(p);
	cg_errors_reset(&errs);
	return rc;
}

/* ---- eval ---- */

static const char *
no_header(void *ctx, const char *name)
{
	struct cg_slice *hs = ctx;

	for (unsigned i = 0; hs != NULL && hs[i].ptr != NULL; i++) {
		const char *colon = memchr(hs[i].ptr, ':', hs[i].len);
		size_t nl = colon ? (size_t)(colon - hs[i].ptr) : 0;
		if (colon && nl == strlen(name) &&
		    strncasecmp(hs[i].ptr, name, nl) == 0) {
			const char *v = colon + 1;
			while (*v == ' ' || *v == '\t')
				v++;
			return v;
		}
	}
	return NULL;
}

static void
eval_usage(FILE *out)
{
	fprintf(out,
	        "usage: consentgate eval --policy P --consent C --route "
	        "'METHOD /path'\n"
	        "                        [--content-type T] [--now RFC3339] "
	        "[--header 'Name: value']\n"
	        "                        [--explain] [--output table|kept] "
	        "[FILE|-]\n\n"
	        "Decide every record of a request body (FILE, or stdin) as "
	        "the proxy would.\n"
	        "--output table (default) prints one line per record: index, "
	        "subject(s),\n  decision, rule id, consent status; --explain "
	        "adds why.\n"
	        "--output kept prints exactly the body that would be "
	        "forwarded.\n"
	        "Exit 0, 1 when the body cannot be decided (malformed, "
	        "unsupported), 2 on bad usage.\n");
}

int
cmd_eval(int argc, char **argv)
{
	const char *ppath = NULL, *cpath = NULL, *route = NULL, *ctype = NULL;
	const char *nowtext = NULL, *output = "table", *file = "-";
	struct cg_slice headers[17];
	unsigned nheaders = 0;
	bool explain = false, have_file = false;
	struct cg_errors errs;
	struct policy *p = NULL;
	struct consent_table *t = NULL;
	struct run_result res;
	char *body = NULL, method[32];
	const char *path;
	size_t len = 0;
	int64_t now = (int64_t)time(NULL);
	int rc = 2;

	memset(&res, 0, sizeof(res));
	memset(headers, 0, sizeof(headers));
	cg_errors_init(&errs);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char **slot = NULL;
		if (is_help(a)) {
			eval_usage(stdout);
			rc = 0;
			goto done;
		}
		if (strcmp(a, "--explain") == 0) {
			explain = true;
			continue;
		}
		if (strcmp(a, "--policy") == 0)
			slot = &ppath;
		else if (strcmp(a, "--consent") == 0)
			slot = &cpath;
		else if (strcmp(a, "--route") == 0)
			slot = &route;
		else if (strcmp(a, "--content-type") == 0)
			slot = &ctype;
		else if (strcmp(a, "--now") == 0)
			slot = &nowtext;
		else if (strcmp(a, "--output") == 0)
			slot = &output;
		if (slot != NULL || strcmp(a, "--header") == 0) {
			if (i + 1 >= argc) {
				fprintf(stderr,
				        "consentgate eval: %s needs a value\n",
				        a);
				goto done;
			}
			if (slot != NULL) {
				*slot = argv[++i];
				continue;
			}
			if (nheaders == 16 ||
			    strchr(argv[i + 1], ':') == NULL) {
				fprintf(stderr,
				        "consentgate eval: --header takes "
				        "'Name: value' (at most 16)\n");
				goto done;
			}
			headers[nheaders].ptr = argv[++i];
			headers[nheaders++].len = strlen(argv[i]);
			continue;
		}
		if (a[0] == '-' && a[1] != '\0') {
			fprintf(stderr,
			        "consentgate eval: unknown option '%s' (see "
			        "--help)\n",
			        a);
			goto done;
		}
		if (have_file) {
			fprintf(stderr, "consentgate eval: one body FILE only "
			                "(see --help)\n");
			goto done;
		}
		file = a;
		have_file = true;
	}
	if (ppath == NULL || cpath == NULL || route == NULL) {
		fprintf(stderr,
		        "consentgate eval: %s is required (see "
		        "--help)\n",
		        ppath == NULL   ? "--policy"
		        : cpath == NULL ? "--consent"
		                        : "--route");
		goto done;
	}
	if (strcmp(output, "table") != 0 && strcmp(output, "kept") != 0) {
		fprintf(stderr,
		        "consentgate eval: --output must be table or kept, "
		        "not '%s'\n",
		        output);
		goto done;
	}
	path = strchr(route, ' ');
	if (path == NULL || (size_t)(path - route) >= sizeof(method) ||
	    path[1] != '/') {
		fprintf(stderr,
		        "consentgate eval: --route must be 'METHOD /path', "
		        "not '%s'\n",
		        route);
		goto done;
	}
	memcpy(method, route, (size_t)(path - route));
	method[path - route] = '\0';
	path++;
	if (nowtext != NULL && parse_rfc3339(nowtext, &now) != 0) {
		fprintf(stderr,
		        "consentgate eval: --now must be an RFC 3339 time like "
		        "2026-01-01T00:00:00Z, not '%s'\n",
		        nowtext);
		goto done;
	}
	if ((p = policy_load(ppath, &errs)) == NULL ||
	    (t = consent_open(cpath, &errs)) == NULL ||
	    policy_check_consent(p, t, &errs) != 0) {
		print_errors(&errs);
		goto done;
	}
	if ((body = read_file(file, &len)) == NULL) {
		fprintf(stderr, "consentgate eval: cannot read %s: %s\n",
		        strcmp(file, "-") == 0 ? "stdin" : file,
		        strerror(errno));
		goto done;
	}
	if (run_request(p, t, method, path, ctype, no_header, headers, body,
	                len, now, &res) != 0) {
		fprintf(stderr, "consentgate eval: out of memory\n");
		goto done;
	}
	if (res.route == NULL) {
		fprintf(stderr, "consentgate eval: --route: %s\n", res.error);
		goto done;
	}
	if (res.status == 415 || res.status == 400) {
		fprintf(stderr, "consentgate eval: %s (HTTP %d)\n", res.error,
		        res.status);
		rc = 1;
		goto done;
	}
	if (strcmp(output, "kept") == 0) {
		fwrite(res.out, 1, res.out_len, stdout);
		if (res.blocked)
			fprintf(stderr,
			        "consentgate eval: request blocked (403): %u "
			        "record%s denied\n",
			        res.dropped, res.dropped == 1 ? "" : "s");
		rc = 0;
		goto done;
	}
	if (policy_route_action(res.route) == POLICY_ACTION_PASS) {
		printf("route '%s' passes requests without inspection\n",
		       policy_route_name(res.route));
		rc = 0;
		goto done;
	}
	printf("index\tsubject\tdecision\trule\tstatus%s\n",
	       explain ? "\twhy" : "");
	for (unsigned i = 0; i < res.nrecs; i++) {
		struct rec_out *ro = &res.recs[i];
		printf("%u\t%s\t%s\t%s\t%s", i,
		       ro->subjects[0] ? ro->subjects : "-",
		       ro->d.allow ? "allow" : "deny", ro->d.rule_id,
		       status_word(&ro->d));
		if (explain) {
			char why[512];
			policy_explain(res.route, &ro->d, now, why,
			               sizeof(why));
			printf("\t%s", why);
		}
		printf("\n");
	}
	if (res.blocked)
		printf("# request blocked (403): on_deny is block\n");
	rc = 0;
done:
	run_result_reset(&res);
	free(body);
	consent_free(t);
	policy_free(p);
	cg_errors_reset(&errs);
	return rc;
}

/* ---- test ---- */

struct case_ctx {
	const char *file; /* the case file */
	char dir[4096];   /* its directory, with a trailing '/' or "" */
	const struct policy *p;
	unsigned *hits; /* per rule */
	unsigned passed, failed;
};

static void
resolve(const struct case_ctx *cc, const char *name, char *buf, size_t cap)
{
	if (name[0] == '/')
		snprintf(buf, cap, "%s", name);
	else
		snprintf(buf, cap, "%s%s", cc->dir, name);
}

static void
csv_field(char **buf, size_t *len, size_t *cap, const char *s, bool last)
{
	bool quote = strpbrk(s, ",\"\r\n") != NULL;
	size_t need = strlen(s) * 2 + 4;

	if (*len + need >= *cap) {
		size_t ncap = (*cap + need) * 2;
		char *nb = realloc(*buf, ncap);
		if (nb == NULL)
			return;
		*buf = nb;
		*cap = ncap;
	}
	if (quote)
		(*buf)[(*len)++] = '"';
	for (; *s; s++) {
		if (*s == '"' && quote)
			(*buf)[(*len)++] = '"';
		(*buf)[(*len)++] = *s;
	}
	if (quote)
		(*buf)[(*len)++] = '"';
	(*buf)[(*len)++] = last ? '\n' : ',';
	(*buf)[*len] = '\0';
}

/* Build a table from rows [[subject, purpose, status, jurisdiction,
 * updated_at, evidence?], ...] through consent_import_csv. */
static struct consent_table *
table_from_rows(const char *name, json_t *rows, char *err, size_t errcap)
{
	struct consent_table *t = NULL;
	struct cg_errors errs;
	char *csv = NULL;
	size_t len = 0, cap = 0;
	size_t i, k;
	json_t *row, *f;

	cg_errors_init(&errs);
	csv_field(&csv, &len, &cap, "subject", false);
	csv_field(&csv, &len, &cap, "purpose", false);
	csv_field(&csv, &len, &cap, "status", false);
	csv_field(&csv, &len, &cap, "jurisdiction", false);
	csv_field(&csv, &len, &cap, "updated_at", false);
	csv_field(&csv, &len, &cap, "evidence", true);
	if (!json_is_array(rows)) {
		snprintf(err, errcap, "'consent' must be a list of rows");
		goto done;
	}
	json_array_foreach(rows, i, row)
	{
		size_t n = json_array_size(row);
		if (!json_is_array(row) || n < 5 || n > 6) {
			snprintf(err, errcap,
			         "consent[%zu]: a row is [subject, purpose, "
			         "status, jurisdiction, updated_at, evidence?]",
			         i);
			goto done;
		}
		for (k = 0; k < 6; k++) {
			f = json_array_get(row, k);
			if (k < n && !json_is_string(f)) {
				snprintf(err, errcap,
				         "consent[%zu][%zu]: must be a string",
				         i, k);
				goto done;
			}
			csv_field(&csv, &len, &cap,
			          k < n ? json_string_value(f) : "", k == 5);
		}
	}
	if (csv == NULL) {
		snprintf(err, errcap, "out of memory");
		goto done;
	}
	t = consent_import_csv(name, csv, len, &errs);
	if (t == NULL)
		snprintf(err, errcap, "%s",
		         errs.count ? errs.msgs[0] : "bad consent rows");
done:
	free(csv);
	cg_errors_reset(&errs);
	return t;
}

static const char *
json_header(void *ctx, const char *name)
{
	json_t *h = ctx;
	const char *key;
	json_t *v;

	if (h == NULL)
		return NULL;
	json_object_foreach(h, key, v)
	{
		if (strcasecmp(key, name) == 0)
			return json_string_value(v);
	}
	return NULL;
}

static void
dump_json(const char *label, json_t *v, FILE *out)
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

	fprintf(out, "%s%s\n", label, s ? s : "?");
	free(s);
}

/* Compare one expectation; print the difference when it fails. */
static bool
expect_eq(const char *case_name, bool *header, const char *key, json_t *want,
          json_t *got)
{
	if (json_equal(want, got))
		return true;
	if (!*header) {
		printf("FAIL %s\n", case_name);
		*header = true;
	}
	if (json_is_array(want) && json_is_array(got)) {
		size_t n = json_array_size(want) > json_array_size(got)
		               ? json_array_size(want)
		               : json_array_size(got);
		bool elementwise =
		    strcmp(key, "rules") == 0 || strcmp(key, "decisions") == 0;
		if (elementwise) {
			printf("    %s:\n", key);
			for (size_t i = 0; i < n; i++) {
				json_t *w = json_array_get(want, i);
				json_t *g = json_array_get(got, i);
				if (json_equal(w, g))
					continue;
				char lw[64], lg[64];
				snprintf(lw, sizeof(lw), "      - [%zu] ", i);
				snprintf(lg, sizeof(lg), "      + [%zu] ", i);
				dump_json(lw, w ? w : json_null(), stdout);
				dump_json(lg, g ? g : json_null(), stdout);
			}
			return false;
		}
	}
	char l1[80], l2[80];
	snprintf(l1, sizeof(l1), "    %s: - expected ", key);
	snprintf(l2, sizeof(l2), "    %*s  + actual   ", (int)strlen(key), "");
	dump_json(l1, want, stdout);
	dump_json(l2, got, stdout);
	return false;
}

static json_t *
kept_records_json(const struct run_result *res, const char *body)
{
	json_t *a = json_array();

	for (unsigned i = 0; i < res->nrecs; i++) {
		if (!res->recs[i].d.allow)
			continue;
		json_t *v = json_loadb(body + res->recs[i].start,
		                       res->recs[i].end - res->recs[i].start,
		                       JSON_DECODE_ANY, NULL);
		json_array_append_new(a, v ? v : json_null());
	}
	return a;
}

/* Run one case. 0 ran (pass or fail counted), -1 bad input (message). */
static int
run_case(struct case_ctx *cc, json_t *file_root, json_t *c, size_t idx)
{
	static const char *const keys[] = {
	    "name",         "route",        "now",     "consent",
	    "consent_file", "content_type", "headers", "body",
	    "body_file",    "records",      "expect",  NULL,
	};
	static const char *const ekeys[] = {
	    "status",  "kept",      "kept_records", "dropped",
	    "blocked", "decisions", "rules",        NULL,
	};
	struct consent_table *t = NULL;
	struct cg_errors errs;
	struct run_result res;
	const char *name, *route, *rpath, *s, *key;
	char method[32], err[512], fpath[4096];
	char *body = NULL;
	size_t len = 0;
	int64_t now = (int64_t)time(NULL);
	json_t *v, *expect, *headers, *consent, *tmp;
	bool failed = false;
	int rc = -1;

	memset(&res, 0, sizeof(res));
	cg_errors_init(&errs);
	err[0] = '\0';
	if (!json_is_object(c)) {
		snprintf(err, sizeof(err), "cases[%zu]: must be an object",
		         idx);
		goto done;
	}
	json_object_foreach(c, key, v)
	{
		bool ok = false;
		for (unsigned k = 0; keys[k]; k++)
			ok |= strcmp(key, keys[k]) == 0;
		if (!ok) {
			snprintf(err, sizeof(err),
			         "cases[%zu]: unknown key '%s'", idx, key);
			goto done;
		}
	}
	name = json_string_value(json_object_get(c, "name"));
	route = json_string_value(json_object_get(c, "route"));
	if (name == NULL || route == NULL) {
		snprintf(err, sizeof(err),
		         "cases[%zu]: 'name' and 'route' are required strings",
		         idx);
		goto done;
	}
	s = strchr(route, ' ');
	if (s == NULL || (size_t)(s - route) >= sizeof(method) || s[1] != '/') {
		snprintf(err, sizeof(err),
		         "case '%s': route must be 'METHOD /path'", name);
		goto done;
	}
	memcpy(method, route, (size_t)(s - route));
	method[s - route] = '\0';
	rpath = s + 1;

	v = json_object_get(c, "now");
	if (v == NULL)
		v = json_object_get(file_root, "now");
	if (v != NULL && (!json_is_string(v) ||
	                  parse_rfc3339(json_string_value(v), &now) != 0)) {
		snprintf(err, sizeof(err),
		         "case '%s': 'now' must be an RFC 3339 time", name);
		goto done;
	}

	/* consent: the case's rows or file, else the file's defaults */
	json_t *holder = c;
	if (!json_object_get(c, "consent") &&
	    !json_object_get(c, "consent_file"))
		holder = file_root;
	consent = json_object_get(holder, "consent");
	tmp = json_object_get(holder, "consent_file");
	if (tmp != NULL) {
		if (!json_is_string(tmp)) {
			snprintf(err, sizeof(err),
			         "case '%s': 'consent_file' must be a string",
			         name);
			goto done;
		}
		resolve(cc, json_string_value(tmp), fpath, sizeof(fpath));
		t = consent_open(fpath, &errs);
		if (t == NULL) {
			snprintf(err, sizeof(err), "case '%s': %s", name,
			         errs.count ? errs.msgs[0]
			                    : "bad consent file");
			goto done;
		}
	} else {
		json_t *none = json_array();
		char e2[400];
		t = table_from_rows(cc->file, consent ? consent : none, e2,
		                    sizeof(e2));
		json_decref(none);
		if (t == NULL) {
			snprintf(err, sizeof(err), "case '%s': %s", name, e2);
			goto done;
		}
	}
	/* rows the policy cannot see: refused as the proxy refuses them */
	if (policy_check_consent(cc->p, t, &errs) != 0) {
		snprintf(err, sizeof(err), "case '%s': %s", name, errs.msgs[0]);
		goto done;
	}

	/* body */
	if ((v = json_object_get(c, "body")) != NULL) {
		if (!json_is_string(v)) {
			snprintf(err, sizeof(err),
			         "case '%s': 'body' must be a string", name);
			goto done;
		}
		len = json_string_length(v);
		if ((body = malloc(len + 1)) == NULL)
			goto done;
		memcpy(body, json_string_value(v), len);
	} else if ((v = json_object_get(c, "body_file")) != NULL) {
		if (!json_is_string(v)) {
			snprintf(err, sizeof(err),
			         "case '%s': 'body_file' must be a string",
			         name);
			goto done;
		}
		resolve(cc, json_string_value(v), fpath, sizeof(fpath));
		if ((body = read_file(fpath, &len)) == NULL) {
			snprintf(err, sizeof(err), "case '%s': cannot read %s",
			         name, fpath);
			goto done;
		}
	} else if ((v = json_object_get(c, "records")) != NULL) {
		size_t i, cap = 0;
		json_t *r;
		if (!json_is_array(v)) {
			snprintf(err, sizeof(err),
			         "case '%s': 'records' must be a list", name);
			goto done;
		}
		json_array_foreach(v, i, r)
		{
			char *line =
			    json_dumps(r, JSON_COMPACT | JSON_ENCODE_ANY);
			size_t n = line ? strlen(line) : 0;
			if (line == NULL || len + n + 2 > cap) {
				cap = (len + n + 2) * 2;
				char *nb = line ? realloc(body, cap) : NULL;
				if (nb == NULL) {
					free(line);
					goto done;
				}
				body = nb;
			}
			memcpy(body + len, line, n);
			len += n;
			body[len++] = '\n';
			free(line);
		}
	}
	if (body == NULL && (body = malloc(1)) == NULL)
		goto done;

	headers = json_object_get(c, "headers");
	if (headers != NULL && !json_is_object(headers)) {
		snprintf(err, sizeof(err),
		         "case '%s': 'headers' must be an object", name);
		goto done;
	}
	s = json_string_value(json_object_get(c, "content_type"));
	if (run_request(cc->p, t, method, rpath, s, json_header, headers, body,
	                len, now, &res) != 0)
		goto done;

	for (unsigned i = 0; i < res.nrecs; i++)
		for (unsigned k = 0; k < policy_rule_count(cc->p); k++)
			if (strcmp(policy_rule_id(cc->p, k),
			           res.recs[i].d.rule_id) == 0)
				cc->hits[k]++;

	/* a case that expects nothing would pass whatever happens */
	expect = json_object_get(c, "expect");
	if (!json_is_object(expect) || json_object_size(expect) == 0) {
		snprintf(err, sizeof(err),
		         "case '%s': 'expect' must be a non-empty object",
		         name);
		goto done;
	}
	json_object_foreach(expect, key, v)
	{
		json_t *got = NULL;
		if (strcmp(key, "status") == 0) {
			got = json_integer(res.status);
		} else if (strcmp(key, "kept") == 0) {
			got = json_array();
			for (unsigned i = 0; i < res.nrecs; i++)
				if (res.recs[i].d.allow && !res.blocked)
					json_array_append_new(got,
					                      json_integer(i));
		} else if (strcmp(key, "kept_records") == 0) {
			got = res.blocked ? json_array()
			                  : kept_records_json(&res, body);
		} else if (strcmp(key, "dropped") == 0) {
			got = json_integer(res.dropped);
		} else if (strcmp(key, "blocked") == 0) {
			got = json_boolean(res.blocked);
		} else if (strcmp(key, "decisions") == 0) {
			got = json_array();
			for (unsigned i = 0; i < res.nrecs; i++)
				json_array_append_new(
				    got,
				    json_string(res.recs[i].d.allow ? "allow"
				                                    : "deny"));
		} else if (strcmp(key, "rules") == 0) {
			got = json_array();
			for (unsigned i = 0; i < res.nrecs; i++)
				json_array_append_new(
				    got, json_string(res.recs[i].d.rule_id));
		} else {
			(void)ekeys;
			snprintf(err, sizeof(err),
			         "case '%s': unknown expectation '%s' "
			         "(expected status, kept, kept_records, "
			         "dropped, blocked, decisions, rules)",
			         name, key);
			goto done;
		}
		if (!expect_eq(name, &failed, key, v, got))
			failed = true;
		json_decref(got);
	}
	if (failed) {
		if (res.error[0])
			printf("    (%s)\n", res.error);
		cc->failed++;
	} else {
		printf("ok   %s\n", name);
		cc->passed++;
	}
	rc = 0;
done:
	if (rc != 0)
		fprintf(stderr, "%s: %s\n", cc->file,
		        err[0] ? err : "out of memory");
	run_result_reset(&res);
	free(body);
	consent_free(t);
	cg_errors_reset(&errs);
	return rc;
}

static int
run_case_file(struct case_ctx *cc, const char *path)
{
	static const char *const keys[] = {
	    "now", "consent", "consent_file", "cases", NULL,
	};
	json_error_t jerr;
	json_t *root, *cases, *c, *v;
	const char *key, *slash;
	size_t i;
	int rc = -1;

	cc->file = path;
	slash = strrchr(path, '/');
	snprintf(cc->dir, sizeof(cc->dir), "%.*s",
	         slash ? (int)(slash - path + 1) : 0, path);
	root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		fprintf(stderr, "%s:%d:%d: %s\n", path, jerr.line, jerr.column,
		        jerr.text);
		return -1;
	}
	if (!json_is_object(root)) {
		fprintf(stderr, "%s: a case file is an object with \"cases\"\n",
		        path);
		goto done;
	}
	json_object_foreach(root, key, v)
	{
		bool ok = false;
		for (unsigned k = 0; keys[k]; k++)
			ok |= strcmp(key, keys[k]) == 0;
		if (!ok) {
			fprintf(stderr,
			        "%s: unknown key '%s' (expected one of: "
			        "now, consent, consent_file, cases)\n",
			        path, key);
			goto done;
		}
	}
	cases = json_object_get(root, "cases");
	if (!json_is_array(cases) || json_array_size(cases) == 0) {
		fprintf(stderr, "%s: \"cases\" must be a non-empty list\n",
		        path);
		goto done;
	}
	json_array_foreach(cases, i, c)
	{
		if (run_case(cc, root, c, i) != 0)
			goto done;
	}
	rc = 0;
done:
	json_decref(root);
	return rc;
}

int
cmd_test(int argc, char **argv)
{
	struct cg_errors errs;
	struct case_ctx cc;
	struct policy *p = NULL;
	const char *files[64];
	unsigned nfiles = 0, reached = 0, nrules;
	double min = -1;
	int rc = 2;

	memset(&cc, 0, sizeof(cc));
	cg_errors_init(&errs);
	for (int i = 1; i < argc; i++) {
		if (is_help(argv[i])) {
			printf("usage: consentgate test [--coverage-min PCT] "
			       "POLICY CASES...\n\n"
			       "Run table-driven cases (JSON) against a rule "
			       "file. Prints \"ok   NAME\" or\n\"FAIL NAME\" "
			       "with expected (-) and actual (+) values, the "
			       "rules no case\nreached, and \"N passed, N "
			       "failed\".\n"
			       "--coverage-min PCT fails when fewer than PCT "
			       "percent of the rules are reached.\n"
			       "Exit 0, 1 on a failing case or low coverage, 2 "
			       "on bad input.\n"
			       "The case format is described in "
			       "policy/README.md.\n");
			rc = 0;
			goto done;
		}
		if (strcmp(argv[i], "--coverage-min") == 0) {
			char *end;
			if (i + 1 >= argc) {
				fprintf(stderr, "consentgate test: "
				                "--coverage-min needs a "
				                "percentage\n");
				goto done;
			}
			errno = 0;
			min = strtod(argv[++i], &end);
			if (*end != '\0' || end == argv[i] || errno != 0 ||
			    min < 0 || min > 100) {
				fprintf(stderr,
				        "consentgate test: --coverage-min "
				        "must be a number from 0 to 100, not "
				        "'%s'\n",
				        argv[i]);
				goto done;
			}
			continue;
		}
		if (argv[i][0] == '-' && argv[i][1] != '\0') {
			fprintf(stderr,
			        "consentgate test: unknown option '%s' (see "
			        "--help)\n",
			        argv[i]);
			goto done;
		}
		if (nfiles == sizeof(files) / sizeof(files[0])) {
			fprintf(stderr, "consentgate test: too many files\n");
			goto done;
		}
		files[nfiles++] = argv[i];
	}
	if (nfiles < 2) {
		fprintf(stderr, "consentgate test: expected POLICY and at "
		                "least one CASES file (see --help)\n");
		goto done;
	}
	if ((p = policy_load(files[0], &errs)) == NULL) {
		print_errors(&errs);
		goto done;
	}
	nrules = policy_rule_count(p);
	cc.p = p;
	if ((cc.hits = calloc(nrules + 1, sizeof(*cc.hits))) == NULL)
		goto done;
	for (unsigned f = 1; f < nfiles; f++)
		if (run_case_file(&cc, files[f]) != 0)
			goto done;
	for (unsigned k = 0; k < nrules; k++)
		reached += cc.hits[k] > 0;
	double pct = nrules ? 100.0 * reached / nrules : 100.0;
	printf("coverage: %u/%u rules reached (%.0f%%)\n", reached, nrules,
	       pct);
	if (reached < nrules) {
		printf("not reached:");
		for (unsigned k = 0; k < nrules; k++)
			if (cc.hits[k] == 0)
				printf(" %s", policy_rule_id(p, k));
		printf("\n");
	}
	bool low = min >= 0 && pct + 1e-9 < min;
	if (low)
		printf("coverage %.0f%% is below --coverage-min %g\n", pct,
		       min);
	printf("%u passed, %u failed\n", cc.passed, cc.failed);
	rc = cc.failed > 0 || low ? 1 : 0;
done:
	free(cc.hits);
	policy_free(p);
	cg_errors_reset(&errs);
	return rc;
}
