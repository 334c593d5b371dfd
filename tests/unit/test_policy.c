/*
 * test_policy.c: rule files (loading, every kind of error with its
 * position, lint), route matching, decisions of the example policy, age
 * conditions, body formats and rebuilding.
 */
/* cmocka.h needs these three before it */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
/* clang-format on */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consentgate/policy.h"

#define EXAMPLE "../../policy/examples/ai-training.json"
#define CSV_HDR "subject,purpose,status,jurisdiction,updated_at,evidence\n"

/* 2026-01-01T00:00:00Z */
#define NOW 1767225600

/* A valid policy around one route and rule list, for error tests. */
#define PURPOSES "\"purposes\": {\"ai\": {\"aipref\": \"train-ai\"}}"
#define ROUTE_OK                                                               \
	"{\"method\": \"POST\", \"path\": \"/in\", \"action\": \"inspect\", "  \
	"\"purpose\": \"ai\", \"formats\": [\"ndjson\"], \"subjects\": "       \
	"[\"/a\"], \"on_deny\": \"drop\"}"
#define RULE_DEFAULT "{\"id\": \"d\", \"then\": \"deny\"}"

static struct policy *
load_str(const char *doc, struct cg_errors *errs)
{
	return policy_load_buf("t.json", doc, strlen(doc), errs);
}

static struct policy *
load_ok(const char *doc)
{
	struct cg_errors errs;
	struct policy *p;

	cg_errors_init(&errs);
	p = load_str(doc, &errs);
	for (unsigned i = 0; i < errs.count; i++)
		print_error("unexpected: %s\n", errs.msgs[i]);
	assert_non_null(p);
	assert_int_equal(errs.count, 0);
	cg_errors_reset(&errs);
	return p;
}

/*
 * The load fails and one of the errors is exactly "t.json:L:C: " rest,
 * where L:C is where needle first occurs in doc (lines and columns from 1).
 */
static void
assert_error(const char *doc, const char *needle, const char *rest)
{
	struct cg_errors errs;
	const char *at = strstr(doc, needle);
	char want[1024];
	int line = 1, col = 1;
	bool found = false;

	assert_non_null(at);
	for (const char *c = doc; c < at; c++) {
		if (*c == '\n') {
			line++;
			col = 1;
		} else {
			col++;
		}
	}
	snprintf(want, sizeof(want), "t.json:%d:%d: %s", line, col, rest);
	cg_errors_init(&errs);
	assert_null(load_str(doc, &errs));
	for (unsigned i = 0; i < errs.count; i++)
		if (strcmp(errs.msgs[i], want) == 0)
			found = true;
	if (!found) {
		print_error("wanted: %s\n", want);
		for (unsigned i = 0; i < errs.count; i++)
			print_error("got:    %s\n", errs.msgs[i]);
	}
	assert_true(found);
	cg_errors_reset(&errs);
}

static struct consent_table *
table(const char *rows)
{
	struct cg_errors errs;
	struct consent_table *t;
	char *csv;

	cg_errors_init(&errs);
	assert_true(asprintf(&csv, "%s%s", CSV_HDR, rows) > 0);
	t = consent_import_csv("t.csv", csv, strlen(csv), &errs);
	for (unsigned i = 0; i < errs.count; i++)
		print_error("consent: %s\n", errs.msgs[i]);
	assert_non_null(t);
	free(csv);
	cg_errors_reset(&errs);
	return t;
}

static const struct policy_route *
route(const struct policy *p, const char *method, const char *path)
{
	return route_match(p, (struct cg_slice){method, strlen(method)},
	                   (struct cg_slice){path, strlen(path)}, NULL);
}

/* ---- loading ---- */

static void
test_example_loads(void **state)
{
	struct cg_errors errs;
	struct policy *p;
	const struct policy_route *r;
	FILE *f;
	char buf[8192];
	size_t n;
	uint64_t h = 0xcbf29ce484222325ull;
	char want[17];

	cg_errors_init(&errs);
	p = policy_load(EXAMPLE, &errs);
	assert_non_null(p);
	assert_int_equal(errs.count, 0);
	assert_string_equal(policy_id(p), "ai-training-example");
	assert_int_equal(route_count(p), 2);
	assert_int_equal(policy_rule_count(p), 5);
	assert_string_equal(policy_rule_id(p, 0), "unknown-person");
	assert_string_equal(policy_rule_id(p, 4), "default-allow");
	assert_int_equal(policy_warnings(p)->count, 0);

	/* the digest is FNV-1a 64 of the file bytes */
	f = fopen(EXAMPLE, "rb");
	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)buf[i];
		h *= 0x100000001b3ull;
	}
	snprintf(want, sizeof(want), "%016llx", (unsigned long long)h);
	assert_string_equal(policy_digest(p), want);

	r = route_at(p, 1);
	assert_string_equal(route_name(r), "ingest");
	assert_int_equal(route_action(r), POLICY_ACTION_INSPECT);
	assert_string_equal(route_purpose(r), "ai-training");
	assert_int_equal(route_formats(r), SCAN_FORMAT_NDJSON |
	                                       SCAN_FORMAT_ARRAY |
	                                       SCAN_FORMAT_OBJECT);
	assert_int_equal(route_scan_spec(r)->nlocators, 1);
	assert_string_equal(route_scan_spec(r)->locators[0].tok[0].name,
	                    "author_id");
	assert_null(route_array_at(r));
	assert_null(route_subject_header(r));
	assert_int_equal(route_on_deny(r), POLICY_ON_DENY_DROP);
	assert_false(route_content_usage(r));

	r = route_at(p, 0);
	assert_string_equal(route_name(r), "GET /status");
	assert_int_equal(route_action(r), POLICY_ACTION_PASS);
	assert_null(route_purpose(r));
	policy_free(p);
	cg_errors_reset(&errs);
}

static void
test_full_route_options(void **state)
{
	struct policy *p = load_ok(
	    "{\"policy\": \"x\", " PURPOSES ", \"routes\": ["
	    "{\"method\": \"*\", \"path_prefix\": \"/b/\", \"action\": "
	    "\"inspect\", \"purpose\": \"ai\", \"formats\": [\"array_at\"], "
	    "\"array_at\": \"/data\", \"subjects\": [\"/a\", "
	    "\"/m/*/id\"], \"on_deny\": \"block\", \"content_usage\": "
	    "true},"
	    "{\"name\": \"one\", \"method\": \"PUT\", \"path\": \"/p\", "
	    "\"action\": \"inspect\", \"purpose\": \"ai\", \"formats\": "
	    "[\"object\"], \"subject_header\": \"X-Subject-Id\", "
	    "\"on_deny\": \"drop\"}], \"rules\": [" RULE_DEFAULT "]}");
	const struct policy_route *r = route_at(p, 0);

	assert_string_equal(route_name(r), "* /b/*");
	assert_non_null(route_array_at(r));
	assert_int_equal(route_array_at(r)->ntokens, 1);
	assert_int_equal(route_scan_spec(r)->nlocators, 2);
	assert_true(route_scan_spec(r)->locators[1].tok[1].wildcard);
	assert_int_equal(route_on_deny(r), POLICY_ON_DENY_BLOCK);
	assert_true(route_content_usage(r));
	r = route_at(p, 1);
	assert_string_equal(route_name(r), "one");
	assert_string_equal(route_subject_header(r), "X-Subject-Id");
	policy_free(p);
}

/* Each kind of error, with its exact position and words. */
static void
test_errors_positions(void **state)
{
	assert_error("{\"policy\": \"x\",\n \"purposes\": {\"ai\": "
	             "{\"aipref\": \"train-ai\"}},\n \"routes\": [\n"
	             "  {\"method\": \"POST\", \"path\": \"/in\", \"action\": "
	             "\"inspect\",\n   \"purpose\": \"ai-trainig\", "
	             "\"formats\": [\"ndjson\"], \"subjects\": [\"/a\"], "
	             "\"on_deny\": \"drop\"}],\n"
	             " \"rules\": [" RULE_DEFAULT "]}",
	             "\"ai-trainig\"",
	             "routes[0].purpose: unknown purpose "
	             "'ai-trainig' (declared: ai)");
	assert_error("{\"policy\": \"x\", " PURPOSES ",\n\"routes\": [" ROUTE_OK
	             "],\n\"rules\": [" RULE_DEFAULT "], \"rulez\": []}",
	             "\"rulez\"",
	             "rulez: unknown key 'rulez' (expected one "
	             "of: policy, purposes, ignored_purposes, jurisdictions, "
	             "routes, rules, shadow)");
	assert_error("{\"policy\": \"x\", \"purposes\": {\"ai\": {\"aipref\": "
	             "\"train-llm\"}}, \"routes\": [" ROUTE_OK "], \"rules\": "
	             "[" RULE_DEFAULT "]}",
	             "\"train-llm\"",
	             "purposes.ai.aipref: unknown AI Preferences "
	             "category 'train-llm' (known: train-ai, train-genai, "
	             "search, ai-use)");
	assert_error("{\"policy\": \"x\", \"purposes\": {\"ai\": {\"aipref\": "
	             "\"train-ai\", \"fideslang\": \"Train AI\"}}, \"routes\": "
	             "[" ROUTE_OK "], \"rules\": [" RULE_DEFAULT "]}",
	             "\"Train AI\"",
	             "purposes.ai.fideslang: a fideslang data "
	             "use is lower-case words joined by '_' and '.', like "
	             "'train_ai_system'");
	assert_error("{\"policy\": \"x\", " PURPOSES ",\n\"jurisdictions\": "
	             "{\"EU\": [\"DE\"], \"EEA\": [\"DE\", \"de\"]},\n"
	             "\"routes\": [" ROUTE_OK "], \"rules\": [" RULE_DEFAULT
	             "]}",
	             "\"EU\"",
	             "jurisdictions.EU: group name 'EU' looks "
	             "like a country code; use a longer name");
	assert_error("{\"policy\": \"x\", " PURPOSES ",\n\"jurisdictions\": "
	             "{\"EEA\": [\"DE\", \"de\"]},\n"
	             "\"routes\": [" ROUTE_OK "], \"rules\": [" RULE_DEFAULT
	             "]}",
	             "\"de\"",
	             "jurisdictions.EEA[1]: must be an ISO "
	             "3166-1 alpha-2 country code (two upper-case letters)");
	/* route errors, one route per line */
	assert_error("{\"policy\": \"x\", " PURPOSES ", \"routes\": [\n"
	             "{\"method\": \"PO ST\", \"path\": \"in\", \"action\": "
	             "\"inspect\", \"purpose\": \"ai\", \"formats\": "
	             "[\"ndjson\"], \"subjects\": [\"a\"], \"on_deny\": "
	             "\"discard\"}], \"rules\": [" RULE_DEFAULT "]}",
	             "\"PO ST\"",
	             "routes[0].method: 'PO ST' is not an HTTP "
	             "method (a token like POST, or \"*\" for any)");
	assert_error("{\"policy\": \"x\", " PURPOSES ", \"routes\": [\n"
	             "{\"method\": \"POST\", \"path\": \"in\", \"action\": "
	             "\"inspect\", \"purpose\": \"ai\", \"formats\": "
	             "[\"ndjson\"], \"subjects\": [\"a\"], \"on_deny\": "
	             "\"discard\"}], \"rules\": [" RULE_DEFAULT "]}",
	             "\"in\"", "routes[0].path: must start with '/'");
	assert_error("{\"policy\": \"x\", " PURPOSES ", \"routes\": [\n"
	             "{\"method\": \"POST\", \"path\": \"/in\", \"action\": "
	             "\"inspect\", \"purpose\": \"ai\", \"formats\": "
	             "[\"ndjson\"], \"subjects\": [\"a\"], \"on_deny\": "
	             "\"discard\"}], \"rules\": [" RULE_DEFAULT "]}",
	             "\"discard\"",
	             "routes[0].on_deny: unknown value "
	             "'discard' (expected drop or block)");
	assert_error(
	    "{\"policy\": \"x\", " PURPOSES ", \"routes\": [\n"
	    "{\"method\": \"POST\", \"path\": \"/in\", \"action\": "
	    "\"inspect\", \"purpose\": \"ai\", \"formats\": "
	    "[\"ndjson\"], \"subjects\": [\"/a\", \"a\"], \"on_deny\": "
	    "\"drop\"}], \"rules\": [" RULE_DEFAULT "]}",
	    "\"a\"]",
	    "routes[0].subjects[1]: bad JSON Pointer "
	    "'a': JSON Pointer must start with '/'");
	assert_error("{\"policy\": \"x\", " PURPOSES ", \"routes\": [\n"
	             "{\"method\": \"POST\", \"path\": \"/in\", \"action\": "
	             "\"inspect\", \"purpose\": \"ai\", \"formats\": "
	             "[\"ndjson\", \"csv\"], \"subject_header\": "
	             "\"Consent-Id\", \"on_deny\": \"drop\"}], \"rules\": "
	             "[" RULE_DEFAULT "]}",
	             "\"csv\"",
	             "routes[0].formats[1]: unknown format "
	             "(expected ndjson, object, array or array_at)");
	assert_error("{\"policy\": \"x\", " PURPOSES ", \"routes\": [\n"
	             "{\"method\": \"POST\", \"path\": \"/in\", \"action\": "
	             "\"inspect\", \"purpose\": \"ai\", \"formats\": "
	             "[\"ndjson\", \"csv\"], \"subject_header\": "
	             "\"Consent-Id\", \"on_deny\": \"drop\"}], \"rules\": "
	             "[" RULE_DEFAULT "]}",
	             "\"Consent-Id\"",
	             "routes[0].subject_header: Consent-* "
	             "headers belong to the proxy and are removed from "
	             "requests; choose another header");
	assert_error("{\"policy\": \"x\", " PURPOSES ", \"routes\": [\n"
	             "{\"method\": \"POST\", \"path\": \"/in\", \"action\": "
	             "\"inspect\", \"purpose\": \"ai\", \"formats\": "
	             "[\"array\"], \"array_at\": \"/d\", \"subjects\": "
	             "[\"/a\"], \"subject_header\": \"X-S\", \"on_deny\": "
	             "\"drop\"}], \"rules\": [" RULE_DEFAULT "]}",
	             "{\"method\"",
	             "routes[0]: give either 'subjects' (JSON "
	             "Pointers into each record) or 'subject_header', not "
	             "both");
	assert_error("{\"policy\": \"x\", " PURPOSES ", \"routes\": [\n"
	             "{\"method\": \"POST\", \"path\": \"/in\", \"action\": "
	             "\"inspect\", \"purpose\": \"ai\", \"formats\": "
	             "[\"array\"], \"array_at\": \"/d\", \"subjects\": "
	             "[\"/a\"], \"on_deny\": \"drop\"}], \"rules\": "
	             "[" RULE_DEFAULT "]}",
	             "\"array_at\"",
	             "routes[0].array_at: 'array_at' needs the "
	             "format 'array_at' in 'formats'");
	assert_error("{\"policy\": \"x\", " PURPOSES ", \"routes\": [\n"
	             "{\"method\": \"POST\", \"path\": \"/in\", \"action\": "
	             "\"inspect\", \"purpose\": \"ai\", \"formats\": "
	             "[\"array_at\", \"object\"], \"subjects\": "
	             "[\"/a\"], \"on_deny\": \"drop\"}], \"rules\": "
	             "[" RULE_DEFAULT "]}",
	             "{\"method\"",
	             "routes[0]: the format 'array_at' needs "
	             "\"array_at\": a JSON Pointer to the array of records, "
	             "like \"/data\"");
	assert_error("{\"policy\": \"x\", " PURPOSES ", \"routes\": [\n"
	             "{\"method\": \"POST\", \"path\": \"/in\", \"action\": "
	             "\"inspect\", \"purpose\": \"ai\", \"formats\": "
	             "[\"array_at\", \"object\"], \"subjects\": "
	             "[\"/a\"], \"on_deny\": \"drop\"}], \"rules\": "
	             "[" RULE_DEFAULT "]}",
	             "[\"array_at\"",
	             "routes[0].formats: 'object' and "
	             "'array_at' cannot both be accepted: a JSON object body "
	             "would be ambiguous");
	assert_error("{\"policy\": \"x\", " PURPOSES ", \"routes\": [\n"
	             "{\"method\": \"GET\", \"path\": \"/s\", \"action\": "
	             "\"pass\", \"purpose\": \"ai\"}, " ROUTE_OK "], "
	             "\"rules\": [" RULE_DEFAULT "]}",
	             "\"purpose\"",
	             "routes[0].purpose: only inspected routes "
	             "take 'purpose' (this route's action is pass)");
	/* rule errors, one rule per line */
	assert_error("{\"policy\": \"x\", " PURPOSES ", \"routes\": [" ROUTE_OK
	             "], \"rules\": [\n"
	             "{\"id\": \"a\", \"if\": {\"jurisdicton\": [\"DE\"]}, "
	             "\"then\": \"deny\"},\n"
	             "{\"id\": \"a\", \"if\": {\"older_than\": \"13 months\", "
	             "\"status\": [\"given\"]}, \"then\": \"maybe\"},\n"
	             "{\"id\": \"b\", \"if\": {\"jurisdiction\": [\"EAA\"]}, "
	             "\"then\": \"deny\"},\n" RULE_DEFAULT "]}",
	             "\"jurisdicton\"",
	             "rules[0].if.jurisdicton: unknown key "
	             "'jurisdicton' (expected one of: known, jurisdiction, "
	             "status, older_than, newer_than)");
	assert_error("{\"policy\": \"x\", " PURPOSES ", \"routes\": [" ROUTE_OK
	             "], \"rules\": [\n"
	             "{\"id\": \"a\", \"if\": {\"jurisdicton\": [\"DE\"]}, "
	             "\"then\": \"deny\"},\n"
	             "{\"id\": \"a\", \"if\": {\"older_than\": \"13 months\", "
	             "\"status\": [\"given\"]}, \"then\": \"maybe\"},\n"
	             "{\"id\": \"b\", \"if\": {\"jurisdiction\": [\"EAA\"]}, "
	             "\"then\": \"deny\"},\n" RULE_DEFAULT "]}",
	             "\"a\", \"if\": {\"older",
	             "rules[1].id: duplicate rule id 'a' (also "
	             "rules[0])");
	assert_error(
	    "{\"policy\": \"x\", " PURPOSES ", \"routes\": [" ROUTE_OK
	    "], \"rules\": [\n"
	    "{\"id\": \"a\", \"if\": {\"older_than\": \"13 months\", "
	    "\"status\": [\"given\"]}, \"then\": \"maybe\"},\n" RULE_DEFAULT
	    "]}",
	    "\"13 months\"",
	    "rules[0].if.older_than: must be a positive "
	    "duration like \"400d\", \"12h\", \"30m\" or \"90s\"");
	assert_error(
	    "{\"policy\": \"x\", " PURPOSES ", \"routes\": [" ROUTE_OK
	    "], \"rules\": [\n"
	    "{\"id\": \"a\", \"if\": {\"older_than\": \"13 months\", "
	    "\"status\": [\"given\"]}, \"then\": \"maybe\"},\n" RULE_DEFAULT
	    "]}",
	    "\"given\"",
	    "rules[0].if.status[0]: unknown status "
	    "(expected granted, denied, withdrawn or none)");
	assert_error(
	    "{\"policy\": \"x\", " PURPOSES ", \"routes\": [" ROUTE_OK
	    "], \"rules\": [\n"
	    "{\"id\": \"a\", \"if\": {\"older_than\": \"13 months\", "
	    "\"status\": [\"given\"]}, \"then\": \"maybe\"},\n" RULE_DEFAULT
	    "]}",
	    "\"maybe\"",
	    "rules[0].then: unknown outcome 'maybe' "
	    "(expected allow or deny)");
	assert_error("{\"policy\": \"x\", " PURPOSES ", \"routes\": [" ROUTE_OK
	             "], \"rules\": [\n"
	             "{\"id\": \"b\", \"if\": {\"jurisdiction\": [\"EAA\"]}, "
	             "\"then\": \"deny\"},\n" RULE_DEFAULT "]}",
	             "\"EAA\"",
	             "rules[0].if.jurisdiction[0]: unknown "
	             "jurisdiction 'EAA': neither a declared group (none) nor "
	             "a two-letter upper-case country code");
	assert_error(
	    "{\"policy\": \"x\", " PURPOSES ", \"routes\": [" ROUTE_OK
	    "], \"rules\": [\n"
	    "{\"id\": \"b\", \"if\": {}, \"then\": \"deny\"},\n" RULE_DEFAULT
	    "]}",
	    "{}",
	    "rules[0].if: no conditions: leave 'if' out "
	    "for a default rule");
	/* whole-file errors */
	assert_error(
	    "{\"policy\": \"x\", " PURPOSES ", \"routes\": [" ROUTE_OK
	    "], \"rules\": [\n"
	    "{\"id\": \"b\", \"if\": {\"known\": false}, \"then\": "
	    "\"deny\"},\n"
	    "{\"id\": \"c\", \"purposes\": [\"other\"], \"then\": "
	    "\"allow\"}]}",
	    "\"ai\", \"formats\"",
	    "routes[0].purpose: no default rule for "
	    "purpose 'ai': add a last rule without 'if' (like "
	    "{\"id\": \"default\", \"then\": \"deny\"}) so every person "
	    "gets a decision");
	assert_error("{" PURPOSES ", \"routes\": [" ROUTE_OK "], \"rules\": "
	             "[" RULE_DEFAULT "]}",
	             "{", "missing \"policy\": the policy's id");
	assert_error("[]", "[",
	             "a rule file is a JSON object with "
	             "\"policy\", \"purposes\", \"routes\" and \"rules\"");
}

static void
test_many_errors_at_once(void **state)
{
	struct cg_errors errs;
	const char *doc =
	    "{\"policy\": \"\", \"purposes\": {\"ai\": {\"aipref\": "
	    "\"x\"}}, \"routes\": [{\"method\": \"POST\", \"path\": "
	    "\"in\", \"action\": \"look\"}], \"rules\": [{\"id\": \"a\", "
	    "\"then\": \"no\"}, {\"id\": \"a\", \"then\": \"deny\"}], "
	    "\"extra\": 1}";

	cg_errors_init(&errs);
	assert_null(load_str(doc, &errs));
	/* policy id, aipref, path, action, formats, subjects, on_deny,
	 * then, duplicate id, unknown key */
	assert_true(errs.count >= 10);
	for (unsigned i = 0; i < errs.count; i++)
		assert_int_equal(strncmp(errs.msgs[i], "t.json:1:", 9), 0);
	cg_errors_reset(&errs);
}

static void
test_syntax_and_duplicates(void **state)
{
	struct cg_errors errs;

	cg_errors_init(&errs);
	assert_null(
	    load_str("{\"policy\": \"x\",\n \"policy\": \"y\"}", &errs));
	assert_int_equal(errs.count, 1);
	assert_non_null(strstr(errs.msgs[0], "duplicate object key"));
	assert_int_equal(strncmp(errs.msgs[0], "t.json:2:", 9), 0);
	cg_errors_reset(&errs);

	assert_null(load_str("{\n  \"policy\": \"x\",\n}", &errs));
	assert_int_equal(errs.count, 1);
	assert_int_equal(strncmp(errs.msgs[0], "t.json:3:1: ", 12), 0);
	cg_errors_reset(&errs);

	/* a NUL inside the buffer is refused, not cut short */
	assert_null(policy_load_buf("t.json", "{}\0{}", 5, &errs));
	assert_true(errs.count >= 1);
	cg_errors_reset(&errs);

	assert_null(policy_load("no/such/file.json", &errs));
	assert_int_equal(
	    strncmp(errs.msgs[0], "no/such/file.json: cannot open", 30), 0);
	cg_errors_reset(&errs);
}

/* Positions stay right after a value nested deeper than they are kept. */
static void
test_deep_nesting_positions(void **state)
{
	size_t depth = 1500, n = 0;
	char *doc = malloc(2 * depth + 512);

	assert_non_null(doc);
	n += (size_t)sprintf(doc,
	                     "{\"policy\": \"x\", \"routes\": [{\"method\": "
	                     "\"GET\", \"path\": \"/s\", \"action\": "
	                     "\"pass\", \"deep\": ");
	for (size_t i = 0; i < depth; i++)
		doc[n++] = '[';
	n += (size_t)sprintf(doc + n, "\"]\\\"[\"");
	for (size_t i = 0; i < depth; i++)
		doc[n++] = ']';
	sprintf(doc + n, "}],\n \"rules\": [{\"id\": \"d\", \"then\": "
	                 "\"bogus\"}]}");
	assert_error(doc, "\"deep\"",
	             "routes[0].deep: unknown key 'deep' (expected one of: "
	             "name, method, path, path_prefix, action, purpose, "
	             "formats, array_at, subjects, subject_header, on_deny, "
	             "content_usage, subject_ids, clients, shadow)");
	assert_error(doc, "\"bogus\"",
	             "rules[0].then: unknown outcome 'bogus' (expected allow "
	             "or deny)");
	free(doc);
}

static void
test_lint_warnings(void **state)
{
	struct policy *p = load_ok(
	    "{\"policy\": \"x\", \"purposes\": {\"ai\": {\"aipref\": "
	    "\"train-ai\"}, \"s\": {\"aipref\": \"search\"}},\n"
	    "\"jurisdictions\": {\"EEA\": [\"DE\", \"FR\"], \"LATAM\": "
	    "[\"BR\"]},\n\"routes\": [" ROUTE_OK "],\n\"rules\": [\n"
	    "{\"id\": \"eea\", \"if\": {\"jurisdiction\": [\"EEA\"]}, "
	    "\"then\": \"allow\"},\n"
	    "{\"id\": \"de\", \"if\": {\"jurisdiction\": [\"DE\"], "
	    "\"status\": [\"granted\"]}, \"then\": \"deny\"},\n"
	    "{\"id\": \"never\", \"if\": {\"known\": false, \"status\": "
	    "[\"none\"]}, \"then\": \"deny\"},\n"
	    "{\"id\": \"d\", \"then\": \"deny\"},\n"
	    "{\"id\": \"late\", \"if\": {\"known\": true}, \"then\": "
	    "\"allow\"}]}");
	const struct cg_errors *w = policy_warnings(p);

	assert_int_equal(w->count, 5);
	assert_string_equal(w->msgs[0],
	                    "t.json:6:1: warning: rule 'de' can never match: "
	                    "rule 'eea' (line 5) before it has the same or "
	                    "wider conditions");
	assert_string_equal(w->msgs[1],
	                    "t.json:7:1: warning: rule 'never' can never "
	                    "match: unknown people (known: false) have no "
	                    "jurisdiction, status or consent age");
	assert_string_equal(w->msgs[2],
	                    "t.json:9:1: warning: rule 'late' can never match: "
	                    "the default rule 'd' (line 8) before it decides "
	                    "every person");
	assert_string_equal(w->msgs[3], "t.json:1:60: warning: purpose 's' is "
	                                "declared but no inspected route "
	                                "uses it");
	assert_string_equal(w->msgs[4],
	                    "t.json:2:40: warning: jurisdiction group 'LATAM' "
	                    "is declared but no rule uses it");
	policy_free(p);
}

/* ---- matching ---- */

static void
test_match(void **state)
{
	struct policy *p =
	    load_ok("{\"policy\": \"m\", " PURPOSES ", \"routes\": ["
	            "{\"method\": \"GET\", \"path\": \"/status\", \"action\": "
	            "\"pass\"},"
	            "{\"name\": \"exact\", \"method\": \"POST\", \"path\": "
	            "\"/in\", \"action\": \"pass\"},"
	            "{\"name\": \"prefix\", \"method\": \"POST\", "
	            "\"path_prefix\": \"/in\", \"action\": \"pass\"},"
	            "{\"name\": \"any\", \"method\": \"*\", \"path_prefix\": "
	            "\"/any/\", \"action\": \"pass\"}],"
	            "\"rules\": [" RULE_DEFAULT "]}");
	const struct policy_route *r;

	assert_string_equal(route_name(route(p, "GET", "/status")),
	                    "GET /status");
	assert_null(route(p, "GET", "/status/x"));
	assert_null(
	    route(p, "get", "/status")); /* methods are case-sensitive */
	assert_null(route(p, "HEAD", "/status"));
	/* first route wins: the exact route precedes the prefix */
	assert_string_equal(route_name(route(p, "POST", "/in")), "exact");
	assert_string_equal(route_name(route(p, "POST", "/in/x")), "prefix");
	assert_string_equal(route_name(route(p, "POST", "/inbox")), "prefix");
	assert_null(route(p, "POST", "/i"));
	assert_string_equal(route_name(route(p, "DELETE", "/any/1")), "any");
	assert_null(route(p, "DELETE", "/any"));
	/* paths an upstream would resolve elsewhere fail closed */
	const char *tricks[] = {
	    "/any/../in",     "/any/./x",     "/any/%2e%2e/in",
	    "/any/%2E%2e/in", "/any/..%2fin", "/any%2F..%2Fin",
	    "/any/..;/in",    "/any/.;x/in",  "/any\\..\\in",
	    "/any/..",        "/any/x%5cy",   "/any/x%00",
	};
	for (unsigned i = 0; i < sizeof(tricks) / sizeof(tricks[0]); i++) {
		if (route(p, "DELETE", tricks[i]) != NULL)
			print_error("matched: %s\n", tricks[i]);
		assert_null(route(p, "DELETE", tricks[i]));
	}
	/* dots inside names and other escapes are fine */
	assert_non_null(route(p, "DELETE", "/any/a.b/..c/.d/x%20y"));
	assert_non_null(route(p, "DELETE", "/any/...;/x"));
	r = route_match(p, (struct cg_slice){"DELETE", 6},
	                (struct cg_slice){"/any/x/..", 7}, NULL);
	assert_non_null(r); /* the slice ends before the ".." */

	/* slices need not be NUL-terminated */
	r = route_match(p, (struct cg_slice){"POSTX", 4},
	                (struct cg_slice){"/in?q", 3}, NULL);
	assert_string_equal(route_name(r), "exact");
	policy_free(p);
}

/* ---- decisions of the example policy ---- */

struct want {
	const char *subject;
	bool allow;
	const char *rule;
};

static void
test_example_matrix(void **state)
{
	struct cg_errors errs;
	struct policy *p;
	struct consent_table *t;
	const struct policy_route *r;
	struct policy_decision d;
	/* subject = jurisdiction-status; "none" = only another purpose */
	const char *jur[] = {"DE", "NO", "GB", "CH", "US", "BR"};
	const char *st[] = {"granted", "denied", "withdrawn", "none"};
	char rows[4096] = "", subj[32];

	for (unsigned j = 0; j < 6; j++)
		for (unsigned s = 0; s < 4; s++) {
			size_t n = strlen(rows);
			snprintf(
			    rows + n, sizeof(rows) - n,
			    "%s-%s,%s,%s,%s,2025-01-01T00:00:00Z,ev-%u%u\n",
			    jur[j], st[s], s == 3 ? "analytics" : "ai-training",
			    s == 3 ? "granted" : st[s], jur[j], j, s);
		}
	cg_errors_init(&errs);
	p = policy_load(EXAMPLE, &errs);
	assert_non_null(p);
	t = table(rows);
	r = route(p, "POST", "/ingest");
	assert_non_null(r);

	for (unsigned j = 0; j < 6; j++)
		for (unsigned s = 0; s < 4; s++) {
			bool strict = j < 4;
			bool allow = strict ? s == 0 : (s == 0 || s == 3);
			const char *rule =
			    strict ? (s == 0 ? "strict-granted"
			                     : "strict-otherwise")
			           : (allow ? "default-allow" : "opted-out");
			snprintf(subj, sizeof(subj), "%s-%s", jur[j], st[s]);
			struct cg_slice sl = {subj, strlen(subj)};
			rule_decide(r, t, &sl, 1, NOW, &d);
			if (d.allow != allow || strcmp(d.rule_id, rule) != 0)
				print_error("%s: got %d %s\n", subj, d.allow,
				            d.rule_id);
			assert_int_equal(d.allow, allow);
			assert_string_equal(d.rule_id, rule);
			assert_true(d.consent.known);
			assert_string_equal(d.consent.jurisdiction, jur[j]);
			assert_int_equal(d.consent.status,
			                 s == 3 ? CONSENT_STATUS_NONE
			                        : (enum consent_status)(s + 1));
		}

	/* unknown person, and a record with no subject */
	struct cg_slice unknown = CG_SLICE_LIT("nobody");
	rule_decide(r, t, &unknown, 1, NOW, &d);
	assert_false(d.allow);
	assert_string_equal(d.rule_id, "unknown-person");
	assert_false(d.consent.known);
	rule_decide(r, t, NULL, 0, NOW, &d);
	assert_false(d.allow);
	assert_string_equal(d.rule_id, "unknown-person");

	/* several subjects: all must be allowed; the first denial decides */
	struct cg_slice many[3] = {CG_SLICE_LIT("DE-granted"),
	                           CG_SLICE_LIT("US-none"),
	                           CG_SLICE_LIT("GB-granted")};
	rule_decide(r, t, many, 3, NOW, &d);
	assert_true(d.allow);
	assert_int_equal(d.subject, 2);
	many[1] = (struct cg_slice)CG_SLICE_LIT("BR-withdrawn");
	many[2] = (struct cg_slice)CG_SLICE_LIT("nobody");
	rule_decide(r, t, many, 3, NOW, &d);
	assert_false(d.allow);
	assert_int_equal(d.subject, 1);
	assert_string_equal(d.rule_id, "opted-out");
	assert_int_equal(d.consent.evidence.len, 5);
	assert_memory_equal(d.consent.evidence.ptr, "ev-52", 5);

	/* pass routes are not decided record by record */
	rule_decide(route(p, "GET", "/status"), t, NULL, 0, NOW, &d);
	assert_true(d.allow);

	consent_free(t);
	policy_free(p);
	cg_errors_reset(&errs);
}

static void
test_age_and_jurisdiction_conditions(void **state)
{
	struct policy *p =
	    load_ok("{\"policy\": \"age\", " PURPOSES ", \"routes\": [" ROUTE_OK
	            "], \"rules\": ["
	            "{\"id\": \"in-us\", \"if\": {\"jurisdiction\": [\"US\"]}, "
	            "\"then\": \"deny\"},"
	            "{\"id\": \"stale\", \"if\": {\"older_than\": \"400d\"}, "
	            "\"then\": \"deny\"},"
	            "{\"id\": \"fresh\", \"if\": {\"newer_than\": \"12h\"}, "
	            "\"then\": \"deny\"},"
	            "{\"id\": \"window\", \"if\": {\"older_than\": \"30m\", "
	            "\"newer_than\": \"90s\"}, \"then\": \"deny\"},"
	            "{\"id\": \"ok\", \"then\": \"allow\"}]}");
	/* NOW - 401d, NOW - 399d, NOW - 1h, NOW - 2d, other purpose */
	char rows[1024];
	struct policy_decision d;
	const struct policy_route *r = route(p, "POST", "/in");
	struct {
		const char *s;
		const char *rule;
	} cases[] = {
	    {"old", "stale"}, {"young", "ok"}, {"fresh", "fresh"},
	    {"mid", "ok"},    {"norow", "ok"}, {"us", "in-us"},
	    {"nobody", "ok"},
	};

	snprintf(rows, sizeof(rows),
	         "old,ai,granted,DE,2024-11-26T00:00:00Z,\n"
	         "young,ai,granted,DE,2024-11-28T00:00:00Z,\n"
	         "fresh,ai,granted,DE,2025-12-31T23:00:00Z,\n"
	         "mid,ai,granted,DE,2025-12-30T00:00:00Z,\n"
	         "norow,other,granted,DE,2020-01-01T00:00:00Z,\n"
	         "us,ai,granted,US,2025-12-30T00:00:00Z,\n");
	struct consent_table *t = table(rows);
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct cg_slice s = {cases[i].s, strlen(cases[i].s)};
		rule_decide(r, t, &s, 1, NOW, &d);
		if (strcmp(d.rule_id, cases[i].rule) != 0)
			print_error("%s: got %s\n", cases[i].s, d.rule_id);
		assert_string_equal(d.rule_id, cases[i].rule);
	}
	consent_free(t);
	/* "window" (older than 30m, newer than 90s) can never match */
	assert_int_equal(policy_warnings(p)->count, 1);
	assert_non_null(strstr(policy_warnings(p)->msgs[0], "'window'"));
	policy_free(p);
}

static void
test_explain(void **state)
{
	struct policy *p = load_ok(
	    "{\"policy\": \"e\", " PURPOSES ", \"jurisdictions\": "
	    "{\"EEA\": [\"DE\"]}, \"routes\": [" ROUTE_OK "], \"rules\": ["
	    "{\"id\": \"g\", \"if\": {\"jurisdiction\": [\"EEA\", \"GB\"], "
	    "\"status\": [\"granted\", \"none\"], \"older_than\": \"1d\"}, "
	    "\"then\": \"allow\"}, " RULE_DEFAULT "]}");
	struct consent_table *t =
	    table("7,ai,granted,DE,2025-12-30T00:00:00Z,ev-7\n");
	const struct policy_route *r = route(p, "POST", "/in");
	struct policy_decision d;
	struct cg_slice s = CG_SLICE_LIT("7");
	char buf[512];

	rule_decide(r, t, &s, 1, NOW, &d);
	assert_true(d.allow);
	rule_explain(r, &d, NOW, buf, sizeof(buf));
	assert_string_equal(buf,
	                    "jurisdiction=DE; rule g: jurisdiction in "
	                    "[EEA,GB] (DE), status in [none,granted] "
	                    "(granted), older_than 1d (2d); evidence=ev-7");
	s = (struct cg_slice)CG_SLICE_LIT("8");
	rule_decide(r, t, &s, 1, NOW, &d);
	rule_explain(r, &d, NOW, buf, sizeof(buf));
	assert_string_equal(buf, "unknown person (no consent row); rule d: "
	                         "default (no conditions)");
	/* truncation keeps a terminated string */
	rule_explain(r, &d, NOW, buf, 8);
	assert_int_equal(strlen(buf), 7);
	consent_free(t);
	policy_free(p);
}

/* ---- body formats ---- */

static void
test_body_format(void **state)
{
	struct policy *p = load_ok(
	    "{\"policy\": \"f\", " PURPOSES ", \"routes\": ["
	    "{\"method\": \"POST\", \"path\": \"/all\", \"action\": "
	    "\"inspect\", \"purpose\": \"ai\", \"formats\": [\"ndjson\", "
	    "\"array\", \"object\"], \"subjects\": [\"/a\"], \"on_deny\": "
	    "\"drop\"},"
	    "{\"method\": \"POST\", \"path\": \"/at\", \"action\": "
	    "\"inspect\", \"purpose\": \"ai\", \"formats\": [\"array\", "
	    "\"array_at\"], \"array_at\": \"/data\", \"subjects\": "
	    "[\"/a\"], \"on_deny\": \"drop\"}], \"rules\": [" RULE_DEFAULT
	    "]}");
	const struct policy_route *all = route(p, "POST", "/all");
	const struct policy_route *at = route(p, "POST", "/at");
	struct cg_slice json = CG_SLICE_LIT("application/json");
	struct cg_slice none = {"", 0};

#define FMT(r, ct, body)                                                       \
	route_body_format(r, (struct cg_slice)CG_SLICE_LIT(ct), body,          \
	                  strlen(body))
	assert_int_equal(route_body_format(all, json, " [1]", 4),
	                 SCAN_FORMAT_ARRAY);
	assert_int_equal(route_body_format(all, json, "\n{}", 3),
	                 SCAN_FORMAT_OBJECT);
	assert_int_equal(route_body_format(all, json, "  ", 2), -1);
	assert_int_equal(route_body_format(all, json, "\"x\"", 3), -1);
	assert_int_equal(route_body_format(all, none, "[1]", 3),
	                 SCAN_FORMAT_NDJSON);
	assert_int_equal(FMT(all, "Application/JSON ; charset=UTF-8", "{}"),
	                 SCAN_FORMAT_OBJECT);
	assert_int_equal(FMT(all, "application/json; charset=\"utf-8\"", "{}"),
	                 SCAN_FORMAT_OBJECT);
	assert_int_equal(FMT(all, "application/json; charset=latin1", "{}"),
	                 -1);
	assert_int_equal(FMT(all, "application/x-ndjson", "{}"),
	                 SCAN_FORMAT_NDJSON);
	assert_int_equal(FMT(all, "application/ndjson", "{}"),
	                 SCAN_FORMAT_NDJSON);
	assert_int_equal(FMT(all, "application/jsonl", "{}"),
	                 SCAN_FORMAT_NDJSON);
	assert_int_equal(FMT(all, "text/plain", "{}"), -1);
	assert_int_equal(FMT(all, "application/jsonx", "{}"), -1);
	assert_int_equal(FMT(at, "application/json", "{\"data\": []}"),
	                 SCAN_FORMAT_ARRAY_AT);
	assert_int_equal(FMT(at, "application/json", "[]"), SCAN_FORMAT_ARRAY);
	assert_int_equal(FMT(at, "application/x-ndjson", "{}"), -1);
	/* no ndjson on this route: an absent type is sniffed as JSON */
	assert_int_equal(route_body_format(at, none, "[]", 2),
	                 SCAN_FORMAT_ARRAY);
	assert_int_equal(FMT(route(p, "POST", "/all"), "", "[]"),
	                 SCAN_FORMAT_NDJSON);
#undef FMT
	policy_free(p);
}

static void
test_body_rebuild(void **state)
{
	char out[256];
	size_t n;
	const char *nd = "{\"a\":1}\r\n{\"a\":2}\n\n{\"a\":3}";
	struct policy_span k13[] = {{0, 7}, {18, 25}};
	const char *arr = "[ {\"a\":1} , {\"a\":2},{\"a\":3} ]";
	struct policy_span a13[] = {{2, 9}, {20, 27}};
	const char *doc =
	    "{\"n\": 1, \"data\": [{\"a\":1}, {\"a\":2}], \"z\": 0}";
	struct policy_span d2[] = {{27, 34}};

	n = route_body_rebuild(SCAN_FORMAT_NDJSON, nd, strlen(nd), 0, 0, k13, 2,
	                       out);
	assert_int_equal(n, 16);
	assert_memory_equal(out, "{\"a\":1}\n{\"a\":3}\n", n);
	n = route_body_rebuild(SCAN_FORMAT_NDJSON, nd, strlen(nd), 0, 0, NULL,
	                       0, out);
	assert_int_equal(n, 0);

	n = route_body_rebuild(SCAN_FORMAT_ARRAY, arr, strlen(arr), 0,
	                       strlen(arr) - 1, a13, 2, out);
	assert_memory_equal(out, "[{\"a\":1},{\"a\":3}]", n);
	assert_int_equal(n, 17);
	n = route_body_rebuild(SCAN_FORMAT_ARRAY, arr, strlen(arr), 0,
	                       strlen(arr) - 1, NULL, 0, out);
	assert_int_equal(n, 2);
	assert_memory_equal(out, "[]", 2);

	n = route_body_rebuild(SCAN_FORMAT_ARRAY_AT, doc, strlen(doc), 17, 34,
	                       d2, 1, out);
	out[n] = '\0';
	assert_string_equal(out, "{\"n\": 1, \"data\": [{\"a\":2}], \"z\": 0}");

	n = route_body_rebuild(SCAN_FORMAT_OBJECT, "  {\"a\":1} ", 10, 0, 0,
	                       (struct policy_span[]){{2, 9}}, 1, out);
	assert_int_equal(n, 7);
	assert_memory_equal(out, "{\"a\":1}", 7);
	n = route_body_rebuild(SCAN_FORMAT_OBJECT, "{}", 2, 0, 0, NULL, 0, out);
	assert_int_equal(n, 0);
}

/*
 * A subject locator without '*' names someone who must be there: a post
 * whose author is missing is an unknown person's, whoever it mentions;
 * {"pointer": ..., "optional": true} lets a locator be absent.
 */
static void
test_required_subjects(void **state)
{
	struct policy *p = load_ok(
	    "{\"policy\": \"x\", " PURPOSES ", \"routes\": ["
	    "{\"method\": \"POST\", \"path\": \"/in\", \"action\": "
	    "\"inspect\", \"purpose\": \"ai\", \"formats\": [\"ndjson\"], "
	    "\"subjects\": [\"/a\", {\"pointer\": \"/r/a\", \"optional\": "
	    "true}, \"/m/*/id\"], \"on_deny\": \"drop\"}], \"rules\": ["
	    "{\"id\": \"unknown\", \"if\": {\"known\": false}, \"then\": "
	    "\"deny\"}, {\"id\": \"ok\", \"then\": \"allow\"}]}");
	struct consent_table *t =
	    table("u1,ai,granted,US,2025-01-01T00:00:00Z,e1\n");
	const struct policy_route *r = route_at(p, 0);
	static struct scan_record rec;
	struct policy_decision d;
	struct cg_errors errs;
	const char *err;
	(void)state;

	assert_int_equal(route_scan_spec(r)->optional, 2u);
#define DECIDE(json)                                                           \
	do {                                                                   \
		assert_int_equal(scan_record(route_scan_spec(r), json,         \
		                             strlen(json), &rec, &err),        \
		                 0);                                           \
		rule_decide_record(r, t, &rec, NOW, &d);                       \
	} while (0)
	DECIDE("{\"a\":\"u1\",\"m\":[{\"id\":\"u1\"}]}");
	assert_true(d.allow);
	DECIDE("{\"a\":\"u1\"}"); /* no reply, no mentions: fine */
	assert_true(d.allow);
	DECIDE("{\"m\":[{\"id\":\"u1\"}]}"); /* no author */
	assert_false(d.allow);
	assert_string_equal(d.rule_id, "unknown");
	assert_int_equal(d.subject, 1);
	DECIDE("{\"r\":{\"a\":\"u1\"}}");
	assert_false(d.allow);
#undef DECIDE
	consent_free(t);
	policy_free(p);

	/* the object form is checked like the rest of a rule file */
	cg_errors_init(&errs);
	assert_null(load_str(
	    "{\"policy\": \"x\", " PURPOSES ", \"routes\": ["
	    "{\"method\": \"POST\", \"path\": \"/in\", \"action\": "
	    "\"inspect\", \"purpose\": \"ai\", \"formats\": [\"ndjson\"], "
	    "\"subjects\": [{\"pointer\": 5}, {\"pointer\": \"/b\", "
	    "\"optional\": \"yes\", \"x\": 1}], \"on_deny\": \"drop\"}], "
	    "\"rules\": [" RULE_DEFAULT "]}",
	    &errs));
	assert_true(errs.count >= 3);
	cg_errors_reset(&errs);
}

/* ---- aliases of inspected routes (issue 8, class 5) ---- */

/* The example's routes, then a catch-all pass route. */
#define CATCH_ALL_POLICY                                                       \
	"{\"policy\": \"x\", " PURPOSES ",\n\"routes\": [\n"                   \
	"{\"method\": \"GET\", \"path\": \"/status\", \"action\": "            \
	"\"pass\"},\n"                                                         \
	"{\"name\": \"ingest\", \"method\": \"POST\", \"path\": \"/ingest\", " \
	"\"action\": \"inspect\", \"purpose\": \"ai\", \"formats\": "          \
	"[\"ndjson\"], \"subjects\": [\"/a\"], \"on_deny\": \"drop\"},\n"      \
	"%s"                                                                   \
	"{\"method\": \"*\", \"path_prefix\": \"/\", \"action\": "             \
	"\"pass\"}],\n"                                                        \
	"\"rules\": [" RULE_DEFAULT "]}"

static struct policy *
catch_all(const char *extra_routes)
{
	char doc[4096];

	snprintf(doc, sizeof(doc), CATCH_ALL_POLICY, extra_routes);
	return load_ok(doc);
}

/* The request is refused with status, naming the inspected route. */
static void
assert_refused(const struct policy *p, const char *method, const char *path,
               int status, const char *want_route)
{
	struct route_refusal why;
	const struct policy_route *r;

	memset(&why, 0, sizeof(why));
	r = route_match(p, (struct cg_slice){method, strlen(method)},
	                (struct cg_slice){path, strlen(path)}, &why);
	if (r != NULL)
		print_error("%s %s: taken by '%s'\n", method, path,
		            route_name(r));
	assert_null(r);
	if (why.status != status)
		print_error("%s %s: %d %s\n", method, path, why.status,
		            why.reason);
	assert_int_equal(why.status, status);
	assert_non_null(why.reason);
	if (want_route == NULL) {
		assert_null(why.route);
	} else {
		assert_non_null(why.route);
		assert_string_equal(route_name(why.route), want_route);
	}
}

static void
test_route_aliases(void **state)
{
	struct policy *p = catch_all("");
	struct route_refusal why;
	char detail[CG_MAX_DETAIL];
	static const char *const aliases[] = {
	    "//ingest",      "/%69ngest",
	    "/%2569ngest",   "/ingest/",
	    "/INGEST",       "/Ingest",
	    "/ingest;x",     "/ingest;jsessionid=1",
	    "/ingest%3bx",   "/ingest.json",
	    "/ingest.json/", "/ingest.",
	    "///ingest//",   "/INGEST.JSON;x",
	};

	/* as written: inspected; other paths: the catch-all */
	assert_string_equal(route_name(route(p, "POST", "/ingest")), "ingest");
	assert_string_equal(route_name(route(p, "GET", "/status")),
	                    "GET /status");
	assert_string_equal(route_name(route(p, "POST", "/ingest/x")), "* /*");
	assert_string_equal(route_name(route(p, "POST", "/ingestx")), "* /*");
	assert_string_equal(route_name(route(p, "GET", "/.ingest")), "* /*");
	assert_string_equal(route_name(route(p, "POST", "/v1/ingest")), "* /*");
	assert_string_equal(route_name(route(p, "GET", "/")), "* /*");

	for (unsigned i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++)
		assert_refused(p, "POST", aliases[i], 404, "ingest");
	/* other methods on the inspected path, in any spelling */
	assert_refused(p, "PUT", "/ingest", 405, "ingest");
	assert_refused(p, "PATCH", "/ingest", 405, "ingest");
	assert_refused(p, "GET", "/INGEST/", 405, "ingest");
	/* lower-case methods, whatever the path */
	assert_refused(p, "post", "/ingest", 400, "ingest");
	assert_refused(p, "Post", "/status", 400, "ingest");
	/* methods that are no inspected route's pass in any case */
	assert_string_equal(route_name(route(p, "get", "/status")), "* /*");
	/* path_is_safe's refusals stay */
	assert_refused(p, "GET", "/x/../ingest", 404, NULL);
	assert_refused(p, "GET", "/%2e%2e/ingest", 404, NULL);

	/* the detail names the route and what to send */
	memset(&why, 0, sizeof(why));
	assert_null(route_match(p, CG_SLICE_LIT("POST"),
	                        CG_SLICE_LIT("//ingest"), &why));
	route_refusal_detail(&why, detail, sizeof(detail));
	assert_non_null(strstr(detail, "another spelling"));
	assert_non_null(strstr(detail, "'ingest' (POST /ingest); send POST "
	                               "/ingest"));
	assert_null(
	    route_match(p, CG_SLICE_LIT("PUT"), CG_SLICE_LIT("/ingest"), &why));
	route_refusal_detail(&why, detail, sizeof(detail));
	assert_non_null(strstr(detail, "'ingest' (POST /ingest)"));
	assert_null(route_match(p, CG_SLICE_LIT("GET"),
	                        CG_SLICE_LIT("/nowhere/%2f"), &why));
	route_refusal_detail(&why, detail, sizeof(detail));
	assert_non_null(strstr(detail, "an upstream could resolve it"));
	policy_free(p);

	/* a route naming exactly another method and path takes it */
	p = catch_all("{\"method\": \"PUT\", \"path\": \"/ingest\", "
	              "\"action\": \"pass\"},\n");
	assert_string_equal(route_name(route(p, "PUT", "/ingest")),
	                    "PUT /ingest");
	assert_refused(p, "PATCH", "/ingest", 405, "ingest");
	policy_free(p);

	/* a path much longer than can be compared: 414 */
	p = catch_all("");
	{
		size_t n = CG_MAX_CANON_PATH + 10;
		char *lp = malloc(n + 1);
		assert_non_null(lp);
		memset(lp, 'a', n);
		lp[0] = '/';
		lp[n] = '\0';
		assert_refused(p, "GET", lp, 414, NULL);
		free(lp);
	}
	policy_free(p);
}

static void
test_route_alias_orders(void **state)
{
	/* the catch-all before the inspected route: it never takes the
	 * inspected route's requests, even written exactly */
	struct policy *p = load_ok(
	    "{\"policy\": \"x\", " PURPOSES ",\n\"routes\": [\n"
	    "{\"method\": \"*\", \"path_prefix\": \"/\", \"action\": "
	    "\"pass\"},\n"
	    "{\"name\": \"ingest\", \"method\": \"POST\", \"path\": "
	    "\"/api/ingest\", \"action\": \"inspect\", \"purpose\": \"ai\", "
	    "\"formats\": [\"ndjson\"], \"subjects\": [\"/a\"], \"on_deny\": "
	    "\"drop\"}],\n\"rules\": [" RULE_DEFAULT "]}");
	assert_refused(p, "POST", "/api/ingest", 404, "ingest");
	assert_refused(p, "POST", "/API//ingest", 404, "ingest");
	assert_string_equal(route_name(route(p, "GET", "/api/other")), "* /*");
	policy_free(p);

	/* an inspected prefix route of another purpose must not take an
	 * alias of the exact one; a prefix inside it is inspected */
	p = load_ok(
	    "{\"policy\": \"x\", \"purposes\": {\"ai\": {\"aipref\": "
	    "\"train-ai\"}, \"s\": {\"aipref\": \"search\"}},\n"
	    "\"routes\": [\n"
	    "{\"name\": \"exact\", \"method\": \"POST\", \"path\": \"/a/in\", "
	    "\"action\": \"inspect\", \"purpose\": \"ai\", \"formats\": "
	    "[\"ndjson\"], \"subjects\": [\"/a\"], \"on_deny\": \"drop\"},\n"
	    "{\"name\": \"deep\", \"method\": \"POST\", \"path_prefix\": "
	    "\"/a/in/deep/\", \"action\": \"inspect\", \"purpose\": \"ai\", "
	    "\"formats\": [\"ndjson\"], \"subjects\": [\"/a\"], \"on_deny\": "
	    "\"drop\"},\n"
	    "{\"name\": \"wide\", \"method\": \"*\", \"path_prefix\": \"/a/\", "
	    "\"action\": \"inspect\", \"purpose\": \"s\", \"formats\": "
	    "[\"ndjson\"], \"subjects\": [\"/a\"], \"on_deny\": \"drop\"}],\n"
	    "\"rules\": [" RULE_DEFAULT "]}");
	assert_string_equal(route_name(route(p, "POST", "/a/in")), "exact");
	assert_string_equal(route_name(route(p, "POST", "/a/other")), "wide");
	assert_string_equal(route_name(route(p, "POST", "/a/in/deep/x")),
	                    "deep");
	assert_refused(p, "POST", "/a/IN", 404, "exact");
	assert_refused(p, "POST", "/a//in/", 404, "exact");
	assert_refused(p, "POST", "/a/IN/deep/x", 404, "deep");
	/* another method on the exact path is the wide route's: inspected */
	assert_string_equal(route_name(route(p, "DELETE", "/a/in")), "wide");
	policy_free(p);

	/* no pass route and one inspected route: nothing to compare, the
	 * aliases are covered by no route */
	p = load_ok("{\"policy\": \"x\", " PURPOSES ", \"routes\": [" ROUTE_OK
	            "], \"rules\": [" RULE_DEFAULT "]}");
	assert_refused(p, "POST", "/IN", 404, NULL);
	/* the path is a route's, the method is not: 405 (RFC 9110) */
	assert_refused(p, "PUT", "/in", 405, "POST /in");
	assert_int_equal(policy_warnings(p)->count, 0);
	policy_free(p);
}

static void
test_route_alias_warnings(void **state)
{
	struct policy *p = catch_all("");
	const struct cg_errors *w = policy_warnings(p);
	struct cg_errors errs;

	assert_int_equal(w->count, 1);
	assert_string_equal(
	    w->msgs[0],
	    "t.json:5:1: warning: routes[2] ('* /*') can take requests that "
	    "mean the inspected route 'ingest' (POST /ingest): other spellings "
	    "of its path (//x, /X, %-escapes, a trailing /, ;params, .json), "
	    "other methods or lower-case ones; consentgate refuses those "
	    "requests (404, 405, 400) instead of passing them");
	policy_free(p);

	/* prefixes that can reach the inspected path warn; others do not */
	p = catch_all("{\"method\": \"GET\", \"path_prefix\": \"/static/\", "
	              "\"action\": \"pass\"},\n"
	              "{\"method\": \"POST\", \"path_prefix\": \"/ingest.\", "
	              "\"action\": \"pass\"},\n"
	              "{\"method\": \"POST\", \"path\": \"/INGEST\", "
	              "\"action\": \"pass\"},\n"
	              "{\"method\": \"PUT\", \"path\": \"/ingest\", "
	              "\"action\": \"pass\"},\n"
	              "{\"method\": \"*\", \"path_prefix\": \"/in%6\", "
	              "\"action\": \"pass\"},\n");
	w = policy_warnings(p);
	assert_int_equal(w->count, 4);
	assert_non_null(strstr(w->msgs[0], "routes[3] ('POST /ingest.*')"));
	assert_non_null(strstr(w->msgs[1], "routes[4] ('POST /INGEST')"));
	assert_non_null(strstr(w->msgs[2], "routes[6] ('* /in%6*')"));
	assert_non_null(strstr(w->msgs[3], "routes[7] ('* /*')"));
	assert_refused(p, "POST", "/ingest.json", 404, "ingest");
	assert_refused(p, "POST", "/INGEST", 404, "ingest");
	assert_refused(p, "POST", "/in%67est", 404, "ingest");
	policy_free(p);

	/* the example policy has no such route */
	cg_errors_init(&errs);
	p = policy_load(EXAMPLE, &errs);
	assert_non_null(p);
	cg_errors_reset(&errs);
	assert_int_equal(policy_warnings(p)->count, 0);
	policy_free(p);
}

/* ---- consent rows the policy cannot see (issue 8, class 7) ---- */

/* "clients": the TLS identities a route takes, matched as the proxy does. */
static void
test_route_clients(void **state)
{
	static const char ids_poster[] = "uri:spiffe://example.org/poster\0"
	                                 "dns:Poster.Internal\0cn:poster\0";
	static const char ids_other[] = "dns:other.internal\0cn:poster2\0";
	const struct policy_route *open_r, *uri_r, *dns_r;
	const char *m = NULL;
	struct policy *p;

	p = load_ok("{\"policy\": \"x\", " PURPOSES ",\n"
	            "\"routes\": [" ROUTE_OK ",\n"
	            "{\"method\": \"GET\", \"path\": \"/u\", \"action\": "
	            "\"pass\", \"clients\": [\"uri:spiffe://example.org/"
	            "poster\", \"cn:admin\"]},\n"
	            "{\"method\": \"GET\", \"path\": \"/d\", \"action\": "
	            "\"pass\", \"clients\": [\"dns:poster.internal\"]}],\n"
	            "\"rules\": [" RULE_DEFAULT "]}");
	open_r = route_at(p, 0);
	uri_r = route_at(p, 1);
	dns_r = route_at(p, 2);
	assert_int_equal(route_client_count(open_r), 0);
	assert_int_equal(route_client_count(uri_r), 2);
	assert_string_equal(route_client_at(uri_r, 1), "cn:admin");
	assert_null(route_client_at(uri_r, 2));
	/* a route naming none takes anyone, with or without a certificate */
	assert_true(route_client_allowed(open_r, NULL, &m));
	assert_null(m);
	assert_true(route_client_allowed(uri_r, ids_poster, &m));
	assert_string_equal(m, "uri:spiffe://example.org/poster");
	assert_false(route_client_allowed(uri_r, ids_other, &m));
	assert_null(m);
	assert_false(route_client_allowed(uri_r, NULL, NULL));
	assert_false(route_client_allowed(uri_r, "", NULL));
	/* DNS names compare without regard to case; URIs and CNs exactly */
	assert_true(route_client_allowed(dns_r, ids_poster, &m));
	assert_string_equal(m, "dns:Poster.Internal");
	assert_false(route_client_allowed(
	    uri_r, "uri:SPIFFE://example.org/poster\0cn:Admin\0", NULL));
	policy_free(p);

	assert_error("{\"policy\": \"x\", " PURPOSES ",\n"
	             "\"routes\": [{\"method\": \"GET\", \"path\": \"/u\", "
	             "\"action\": \"pass\", \"clients\": [\"spiffe://x/y\"]}],"
	             "\n\"rules\": [" RULE_DEFAULT "]}",
	             "\"spiffe://x/y\"",
	             "routes[0].clients[0]: 'spiffe://x/y' is not a client "
	             "identity: write \"uri:spiffe://…\", \"dns:host\" or "
	             "\"cn:name\", in visible ASCII");
	assert_error("{\"policy\": \"x\", " PURPOSES ",\n"
	             "\"routes\": [{\"method\": \"GET\", \"path\": \"/u\", "
	             "\"action\": \"pass\", \"clients\": [\"cn:a b\"]}],"
	             "\n\"rules\": [" RULE_DEFAULT "]}",
	             "\"cn:a b\"",
	             "routes[0].clients[0]: 'cn:a b' is not a client "
	             "identity: write \"uri:spiffe://…\", \"dns:host\" or "
	             "\"cn:name\", in visible ASCII");
	assert_error("{\"policy\": \"x\", " PURPOSES ",\n"
	             "\"routes\": [{\"method\": \"GET\", \"path\": \"/u\", "
	             "\"action\": \"pass\", \"clients\": []}],"
	             "\n\"rules\": [" RULE_DEFAULT "]}",
	             "[]}",
	             "routes[0].clients: must be a non-empty list of client "
	             "identities (\"uri:spiffe://…\", \"dns:host\" or "
	             "\"cn:name\")");
}

static void
test_ignored_purposes(void **state)
{
	struct policy *p;

	p = load_ok("{\"policy\": \"x\", " PURPOSES ",\n"
	            "\"ignored_purposes\": [\"analytics\", \"ads.v2\"],\n"
	            "\"routes\": [" ROUTE_OK "], \"rules\": [" RULE_DEFAULT
	            "]}");
	policy_free(p);
	assert_error("{\"policy\": \"x\", " PURPOSES ",\n"
	             "\"ignored_purposes\": [\"analytics\", \"ai\"],\n"
	             "\"routes\": [" ROUTE_OK "], \"rules\": [" RULE_DEFAULT
	             "]}",
	             "\"ai\"]",
	             "ignored_purposes[1]: 'ai' is declared in \"purposes\": "
	             "a purpose is either decided or ignored, not both");
	assert_error("{\"policy\": \"x\", " PURPOSES ",\n"
	             "\"ignored_purposes\": [\"a\", \"a\"],\n"
	             "\"routes\": [" ROUTE_OK "], \"rules\": [" RULE_DEFAULT
	             "]}",
	             "\"a\"]", "ignored_purposes[1]: 'a' is listed twice");
	assert_error("{\"policy\": \"x\", " PURPOSES ",\n"
	             "\"ignored_purposes\": [\"bad name\"],\n"
	             "\"routes\": [" ROUTE_OK "], \"rules\": [" RULE_DEFAULT
	             "]}",
	             "\"bad name\"",
	             "ignored_purposes[0]: a purpose name is 1-64 letters, "
	             "digits, '-', '_' or '.', starting with a letter or "
	             "digit");
	assert_error("{\"policy\": \"x\", " PURPOSES ",\n"
	             "\"ignored_purposes\": \"analytics\",\n"
	             "\"routes\": [" ROUTE_OK "], \"rules\": [" RULE_DEFAULT
	             "]}",
	             "\"analytics\"",
	             "ignored_purposes: must be a list of purpose names (at "
	             "most 255) that the consent table holds and this policy "
	             "ignores");
	/* a rule cannot decide an ignored purpose */
	assert_error("{\"policy\": \"x\", " PURPOSES ",\n"
	             "\"ignored_purposes\": [\"analytics\"],\n"
	             "\"routes\": [" ROUTE_OK "], \"rules\": [{\"id\": \"a\", "
	             "\"purposes\": [\"analytics\"], \"then\": \"allow\"}, "
	             "" RULE_DEFAULT "]}",
	             "\"analytics\"], \"then\"",
	             "rules[0].purposes[0]: unknown purpose 'analytics' "
	             "(declared: ai)");
}

static void
test_check_consent(void **state)
{
	struct consent_table *t;
	struct cg_errors errs;
	struct policy *p;

	cg_errors_init(&errs);
	p = policy_load(EXAMPLE, &errs);
	assert_non_null(p);
	/* the example ignores analytics: its rows are fine */
	t = table("1001,ai-training,granted,DE,2025-03-01T12:00:00Z,e1\n"
	          "1001,analytics,granted,DE,2025-03-01T12:00:00Z,e2\n");
	cg_errors_init(&errs);
	assert_int_equal(policy_check_consent(p, t, &errs), 0);
	assert_int_equal(errs.count, 0);
	consent_free(t);

	/* a typo: refused at its first line, with a hint; each purpose once */
	t = table("1001,ai-training,granted,DE,2025-03-01T12:00:00Z,e1\n"
	          "1002,ai_training,denied,US,2025-03-01T12:00:00Z,e2\n"
	          "1003,ai_training,denied,US,2025-03-01T12:00:00Z,e3\n"
	          "1004,marketing,denied,US,2025-03-01T12:00:00Z,e4\n");
	assert_int_equal(policy_check_consent(p, t, &errs), -1);
	assert_int_equal(errs.count, 2);
	assert_string_equal(
	    errs.msgs[0],
	    "t.csv:3: purpose 'ai_training' is not declared by policy "
	    "'ai-training-example' (declared: ai-training; ignored_purposes: "
	    "analytics) (did you mean 'ai-training'?): its 2 rows, the first "
	    "on this line, would be silently ignored, so an opt-out there "
	    "would never take effect; correct the rows, or list the purpose "
	    "in \"ignored_purposes\" if the policy is meant not to see them");
	assert_non_null(strstr(errs.msgs[1], "t.csv:5: purpose 'marketing' "
	                                     "is not declared"));
	assert_null(strstr(errs.msgs[1], "did you mean"));
	cg_errors_reset(&errs);
	consent_free(t);
	policy_free(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_example_loads),
	    cmocka_unit_test(test_full_route_options),
	    cmocka_unit_test(test_errors_positions),
	    cmocka_unit_test(test_many_errors_at_once),
	    cmocka_unit_test(test_syntax_and_duplicates),
	    cmocka_unit_test(test_deep_nesting_positions),
	    cmocka_unit_test(test_lint_warnings),
	    cmocka_unit_test(test_match),
	    cmocka_unit_test(test_example_matrix),
	    cmocka_unit_test(test_age_and_jurisdiction_conditions),
	    cmocka_unit_test(test_explain),
	    cmocka_unit_test(test_body_format),
	    cmocka_unit_test(test_body_rebuild),
	    cmocka_unit_test(test_required_subjects),
	    cmocka_unit_test(test_route_aliases),
	    cmocka_unit_test(test_route_alias_orders),
	    cmocka_unit_test(test_route_alias_warnings),
	    cmocka_unit_test(test_ignored_purposes),
	    cmocka_unit_test(test_route_clients),
	    cmocka_unit_test(test_check_consent),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
