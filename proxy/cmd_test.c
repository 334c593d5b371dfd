/*
 * cmd_test.c: consentgate test POLICY CASES...: table-driven cases against
 * a rule file (casefile.c reads and checks them, all before any runs),
 * each decided as the proxy decides it (cli_run), and the rules no case
 * reached.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "casefile_internal.h"
#include "cmd_internal.h"

/* Messages cut long file names on purpose. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

/* What the run counts. */
struct tally {
	unsigned *hits; /* per rule */
	unsigned passed, failed;
};

/* ---- running ---- */

static void
dump_json(const char *label, json_t *v, FILE *out)
{
	char *str = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

	fprintf(out, "%s%s\n", label, str ? str : "?");
	free(str);
}

/* Compare one expectation; print the difference when it fails. */
static bool
expect_eq(const char *case_name, bool *header, const char *key, json_t *want,
          json_t *got)
{
	char l1[80], l2[80];

	if (json_equal(want, got))
		return true;
	if (!*header) {
		printf("FAIL %s\n", case_name);
		*header = true;
	}
	if (json_is_array(want) && json_is_array(got) &&
	    (strcmp(key, "rules") == 0 || strcmp(key, "decisions") == 0)) {
		size_t n = json_array_size(want) > json_array_size(got)
		               ? json_array_size(want)
		               : json_array_size(got);

		printf("    %s:\n", key);
		for (size_t i = 0; i < n; i++) {
			json_t *w = json_array_get(want, i);
			json_t *g = json_array_get(got, i);
			char lw[64], lg[64];

			if (json_equal(w, g))
				continue;
			snprintf(lw, sizeof(lw), "      - [%zu] ", i);
			snprintf(lg, sizeof(lg), "      + [%zu] ", i);
			dump_json(lw, w ? w : json_null(), stdout);
			dump_json(lg, g ? g : json_null(), stdout);
		}
		return false;
	}
	snprintf(l1, sizeof(l1), "    %s: - expected ", key);
	snprintf(l2, sizeof(l2), "    %*s  + actual   ", (int)strlen(key), "");
	dump_json(l1, want, stdout);
	dump_json(l2, got, stdout);
	return false;
}

/* What the case's run gives for one expectation key. */
static json_t *
actual(const struct cli_result *res, const char *key)
{
	bool forwarded = res->status == 200;
	json_t *got;

	if (strcmp(key, "status") == 0)
		return json_integer(res->status);
	if (strcmp(key, "dropped") == 0)
		return json_integer(res->v.dropped);
	if (strcmp(key, "blocked") == 0)
		return json_boolean(res->status == 403);
	got = json_array();
	for (unsigned i = 0; i < res->nrecs; i++) {
		const struct cli_record *r = &res->recs[i];

		if (strcmp(key, "kept") == 0 && r->allow && forwarded)
			json_array_append_new(got, json_integer(i));
		else if (strcmp(key, "kept_records") == 0 && r->allow &&
		         forwarded) {
			json_t *v =
			    json_loadb(res->body + r->start, r->end - r->start,
			               JSON_DECODE_ANY, NULL);
			json_array_append_new(got, v ? v : json_null());
		} else if (strcmp(key, "decisions") == 0)
			json_array_append_new(
			    got, json_string(r->allow ? "allow" : "deny"));
		else if (strcmp(key, "rules") == 0)
			json_array_append_new(got, json_string(r->rule_id));
	}
	return got;
}

/* Run one checked case. 0, or -1 when out of memory. */
static int
run_case(const struct casefile_set *s, const struct casefile_case *tc,
         struct tally *t)
{
	struct cli_request req = {
	    tc->method,  tc->target,
	    tc->headers, tc->nheaders,
	    tc->body,    tc->len,
	    tc->now,     tc->has_client ? tc->client_ids : NULL};
	struct cli_result res;
	const char *key;
	bool failed = false;
	json_t *v;

	if (cli_run(s->p, tc->table, &req, &res) != 0) {
		cli_result_reset(&res);
		return -1;
	}
	for (unsigned i = 0; i < res.nrecs; i++)
		for (unsigned k = 0; k < policy_rule_count(s->p); k++)
			if (strcmp(policy_rule_id(s->p, k),
			           res.recs[i].rule_id) == 0)
				t->hits[k]++;
	json_object_foreach(tc->expect, key, v)
	{
		json_t *got = actual(&res, key);

		if (!expect_eq(tc->name, &failed, key, v, got))
			failed = true;
		json_decref(got);
	}
	if (failed) {
		if (res.error[0])
			printf("    (HTTP %d: %s)\n", res.status, res.error);
		t->failed++;
	} else {
		printf("ok   %s\n", tc->name);
		t->passed++;
	}
	cli_result_reset(&res);
	return 0;
}

static void
test_usage(void)
{
	printf("usage: consentgate test [--coverage-min PCT] POLICY "
	       "CASES...\n\n"
	       "Run table-driven cases (JSON) against a rule file, each "
	       "decided as the proxy\ndecides it. Every case file is "
	       "checked first: every error is reported as\n"
	       "file:line:col: path: message before any case runs. Then "
	       "prints \"ok   NAME\" or\n\"FAIL NAME\" with expected (-) and "
	       "actual (+) values, the rules no case\nreached, and \"N "
	       "passed, N failed\".\n"
	       "--coverage-min PCT fails when fewer than PCT percent of the "
	       "rules are reached.\n"
	       "Exit 0, 1 on a failing case or low coverage, 2 on bad "
	       "input.\n"
	       "The case format is described in policy/README.md.\n");
}

int
cmd_test(int argc, char **argv)
{
	struct cg_errors perrs;
	struct casefile_set s;
	struct tally t;
	struct policy *p = NULL;
	const char *files[CG_MAX_CASE_FILES + 1];
	unsigned nfiles = 0, reached = 0, nrules;
	double min = -1, pct;
	bool low;
	int rc = 2;

	casefile_set_init(&s, NULL);
	memset(&t, 0, sizeof(t));
	cg_errors_init(&perrs);
	for (int i = 1; i < argc; i++) {
		if (cli_is_help(argv[i])) {
			test_usage();
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
		if (nfiles == CG_MAX_CASE_FILES + 1) {
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
	if ((p = policy_load(files[0], &perrs)) == NULL) {
		cli_print_errors(&perrs);
		goto done;
	}
	s.p = p; /* the set checks rule ids against it */
	nrules = policy_rule_count(p);
	if ((t.hits = calloc(nrules + 1, sizeof(*t.hits))) == NULL)
		goto done;
	/* every case file checked, every error reported, before any runs */
	for (unsigned f = 1; f < nfiles; f++)
		casefile_load(&s, files[f]);
	if (s.errs.count + s.errs.dropped > 0) {
		cli_print_errors(&s.errs);
		fprintf(stderr, "%u error%s in case files; no case was run\n",
		        s.errs.count + s.errs.dropped,
		        s.errs.count + s.errs.dropped == 1 ? "" : "s");
		goto done;
	}
	for (unsigned i = 0; i < s.ncases; i++)
		if (run_case(&s, &s.cases[i], &t) != 0) {
			fprintf(stderr, "consentgate test: out of memory\n");
			goto done;
		}
	for (unsigned k = 0; k < nrules; k++)
		reached += t.hits[k] > 0;
	pct = nrules ? 100.0 * reached / nrules : 100.0;
	printf("coverage: %u/%u rules reached (%.0f%%)\n", reached, nrules,
	       pct);
	if (reached < nrules) {
		printf("not reached:");
		for (unsigned k = 0; k < nrules; k++)
			if (t.hits[k] == 0)
				printf(" %s", policy_rule_id(p, k));
		printf("\n");
	}
	low = min >= 0 && pct + 1e-9 < min;
	if (low)
		printf("coverage %.0f%% is below --coverage-min %g\n", pct,
		       min);
	printf("%u passed, %u failed\n", t.passed, t.failed);
	rc = t.failed > 0 || low ? 1 : 0;
done:
	casefile_set_reset(&s);
	free(t.hits);
	policy_free(p);
	cg_errors_reset(&perrs);
	return rc;
}
