/*
 * cmd_eval.c: consentgate eval: decide one request body offline, exactly
 * as the proxy would (cli_run), and print the records' decisions, the body
 * forwarded, the HTTP status or the Consent-* headers.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cli_internal.h"
#include "cmd_internal.h"

static void
eval_usage(FILE *out)
{
	fprintf(out,
	        "usage: consentgate eval --policy P --consent C --route "
	        "'METHOD /path'\n"
	        "                        [--content-type T] [--now RFC3339] "
	        "[--header 'Name: value']\n"
	        "                        [--client uri:...|dns:...|cn:...] "
	        "[--explain]\n"
	        "                        [--output table|kept|status|headers] "
	        "[FILE|-]\n\n"
	        "Decide a request body (FILE, or stdin) as the proxy would: "
	        "the same route match,\nthe same verdict. Without "
	        "--content-type (or a Content-Type --header) an inspected\n"
	        "route answers 415, as the proxy does. --client is the "
	        "identity in the client's\nTLS certificate, for routes that "
	        "name their clients (repeat it for several).\n"
	        "--output table (default) prints one line per record decided: "
	        "index, subject(s),\n  decision, rule id, consent status, "
	        "evidence id of every subject; then\n  \"# STATUS ...\". "
	        "--explain adds why.\n"
	        "--output kept prints exactly the body that would be "
	        "forwarded.\n"
	        "--output status prints the HTTP status the proxy would "
	        "answer (200 forwarded,\n  204 every record dropped, 403, "
	        "404, 405, 400, 413, 414, 415, 422).\n"
	        "--output headers prints the Consent-* headers of the "
	        "forwarded request (204:\n  the Consent-Result the client "
	        "gets).\n"
	        "Exit 0; 1 when the body cannot be decided (415, 422, 400, "
	        "413) with table or\nkept; 2 on bad usage and, with table or "
	        "kept, a --route the proxy refuses.\nWith status and headers "
	        "every decided request exits 0.\n");
}

static const char *
status_word(const struct cli_record *ro)
{
	if (!ro->consent.known)
		return "unknown";
	return consent_status_name(ro->consent.status);
}

static void
print_table(const struct cli_result *res, bool explain, int64_t now)
{
	const struct verdict *v = &res->v;

	printf("index\tsubject\tdecision\trule\tstatus\tevidence%s\n",
	       explain ? "\twhy" : "");
	for (unsigned i = 0; i < res->nrecs; i++) {
		const struct cli_record *ro = &res->recs[i];

		printf("%u\t%s\t%s\t%s\t%s\t%s", i,
		       ro->subjects[0] ? ro->subjects : "-",
		       ro->allow ? "allow" : "deny", ro->rule_id,
		       status_word(ro), ro->evidence[0] ? ro->evidence : "-");
		if (explain) {
			struct policy_decision d;
			char why[512];

			memset(&d, 0, sizeof(d));
			d.allow = ro->allow;
			d.rule_id = ro->rule_id;
			d.consent = ro->consent;
			rule_explain(res->route, &d, now, why, sizeof(why));
			printf("\t%s", why);
		}
		printf("\n");
	}
	if (res->status == 403)
		printf("# 403 blocked: %s\n", res->error);
	else if (res->status == 204)
		printf("# 204 every record dropped: kept=0, dropped=%u\n",
		       v->dropped);
	else
		printf("# 200 forwarded: kept=%u, dropped=%u\n", v->kept,
		       v->dropped);
}

static void
print_headers(const struct cli_result *res)
{
	const struct verdict *v = &res->v;
	char result[64];

	if (res->route == NULL ||
	    route_action(res->route) != POLICY_ACTION_INSPECT ||
	    (res->status != 200 && res->status != 204))
		return;
	verdict_consent_result(v, result, sizeof(result));
	if (res->status == 200) {
		printf("Consent-Purpose: %s\n", v->consent_purpose);
		printf("Consent-Policy: %s\n", v->consent_policy);
		printf("Consent-Snapshot: %s\n", v->consent_snapshot);
		if (v->content_usage != NULL)
			printf("Content-Usage: %s\n", v->content_usage);
	}
	printf("Consent-Result: %s\n", result);
}

/* "Name: value" into a header view; -1 when it has no name. */
static int
parse_header(const char *arg, struct verdict_header *h)
{
	const char *colon = strchr(arg, ':'), *v;
	size_t vn;

	if (colon == NULL || colon == arg)
		return -1;
	v = colon + 1;
	while (*v == ' ' || *v == '\t')
		v++;
	vn = strlen(v);
	while (vn > 0 && (v[vn - 1] == ' ' || v[vn - 1] == '\t'))
		vn--;
	h->name = (struct cg_slice){arg, (size_t)(colon - arg)};
	h->value = (struct cg_slice){v, vn};
	return 0;
}

int
cmd_eval(int argc, char **argv)
{
	const char *ppath = NULL, *cpath = NULL, *route = NULL, *ctype = NULL;
	const char *nowtext = NULL, *output = "table", *file = "-";
	char client_ids[1024]; /* "kind:value\0" each, then "\0" */
	size_t client_len = 0;
	struct verdict_header headers[CG_MAX_EVAL_HEADER_OPTIONS + 1];
	unsigned nheaders = 0;
	bool explain = false, have_file = false;
	struct cg_errors errs;
	struct policy *p = NULL;
	struct consent_table *t = NULL;
	struct cli_result res;
	struct cli_request req;
	char *body = NULL, method[32];
	const char *path;
	size_t len = 0;
	int64_t now = (int64_t)time(NULL);
	int rc = 2;

	memset(&res, 0, sizeof(res));
	verdict_init(&res.v);
	cg_errors_init(&errs);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char **slot = NULL;

		if (cli_is_help(a)) {
			eval_usage(stdout);
			rc = 0;
			goto done;
		}
		if (strcmp(a, "--explain") == 0) {
			explain = true;
			continue;
		}
		if (strcmp(a, "--client") == 0) {
			size_t n = i + 1 < argc ? strlen(argv[i + 1]) : 0;

			if (n == 0 || client_len + n + 2 > sizeof(client_ids)) {
				fprintf(stderr,
				        "consentgate eval: --client takes "
				        "an identity such as "
				        "uri:spiffe://example.org/poster\n");
				goto done;
			}
			memcpy(client_ids + client_len, argv[++i], n + 1);
			client_len += n + 1;
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
			if (nheaders == CG_MAX_EVAL_HEADER_OPTIONS ||
			    parse_header(argv[i + 1], &headers[nheaders]) !=
			        0) {
				fprintf(stderr,
				        "consentgate eval: --header takes "
				        "'Name: value' (at most %d)\n",
				        CG_MAX_EVAL_HEADER_OPTIONS);
				goto done;
			}
			nheaders++;
			i++;
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
	if (strcmp(output, "table") != 0 && strcmp(output, "kept") != 0 &&
	    strcmp(output, "status") != 0 && strcmp(output, "headers") != 0) {
		fprintf(stderr,
		        "consentgate eval: --output must be table, kept, "
		        "status or headers, not '%s'\n",
		        output);
		goto done;
	}
	if (cli_split_route(route, method, sizeof(method), &path) != 0) {
		fprintf(stderr,
		        "consentgate eval: --route must be 'METHOD /path', "
		        "not '%s'\n",
		        route);
		goto done;
	}
	if (ctype != NULL) {
		/* a second Content-Type is refused by the proxy's framing */
		for (unsigned i = 0; i < nheaders; i++)
			if (headers[i].name.len == 12 &&
			    strncasecmp(headers[i].name.ptr, "Content-Type",
			                12) == 0) {
				fprintf(stderr,
				        "consentgate eval: --content-type and "
				        "a Content-Type --header: give one\n");
				goto done;
			}
		headers[nheaders].name = CG_SLICE_LIT("Content-Type");
		headers[nheaders].value =
		    (struct cg_slice){ctype, strlen(ctype)};
		nheaders++;
	}
	if (nowtext != NULL && cli_parse_now(nowtext, &now) != 0) {
		fprintf(stderr,
		        "consentgate eval: --now must be an RFC 3339 time like "
		        "2026-01-01T00:00:00Z, not '%s'\n",
		        nowtext);
		goto done;
	}
	if ((p = policy_load(ppath, &errs)) == NULL ||
	    (t = consent_open(cpath, &errs)) == NULL ||
	    policy_check_consent(p, t, &errs) != 0) {
		cli_print_errors(&errs);
		goto done;
	}
	if ((body = cli_read_file(file, &len)) == NULL) {
		fprintf(stderr, "consentgate eval: cannot read %s: %s\n",
		        strcmp(file, "-") == 0 ? "stdin" : file,
		        strerror(errno));
		goto done;
	}
	client_ids[client_len] = '\0';
	req = (struct cli_request){
	    method, path, headers, nheaders,
	    body,   len,  now,     client_len ? client_ids : NULL};
	if (cli_run(p, t, &req, &res) != 0) {
		fprintf(stderr, "consentgate eval: out of memory\n");
		goto done;
	}
	if (strcmp(output, "status") == 0) {
		printf("%d\n", res.status);
		rc = 0;
		goto done;
	}
	if (strcmp(output, "headers") == 0) {
		print_headers(&res);
		rc = 0;
		goto done;
	}
	if (res.route == NULL) {
		fprintf(stderr, "consentgate eval: --route: %s (HTTP %d)\n",
		        res.error, res.status);
		goto done;
	}
	if (res.status != 200 && res.status != 204 && res.status != 403) {
		fprintf(stderr, "consentgate eval: %s (HTTP %d)\n", res.error,
		        res.status);
		rc = 1;
		goto done;
	}
	rc = 0;
	if (strcmp(output, "kept") == 0) {
		fwrite(res.out, 1, res.out_len, stdout);
		if (res.status == 403)
			fprintf(stderr,
			        "consentgate eval: request blocked (403): %s\n",
			        res.error);
		goto done;
	}
	if (route_action(res.route) == POLICY_ACTION_PASS) {
		printf("route '%s' passes requests without inspection\n",
		       route_name(res.route));
		goto done;
	}
	print_table(&res, explain, now);
done:
	cli_result_reset(&res);
	free(body);
	consent_free(t);
	policy_free(p);
	cg_errors_reset(&errs);
	return rc;
}
