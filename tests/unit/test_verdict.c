/*
 * test_verdict.c: the one decision of an inspected request (verdict.c):
 * formats from Content-Type (a missing one is 415), streamed lines and
 * whole bodies, 422 with index and offset, the first deny of a block route
 * (403 with rule and index, nothing decided after it), 204 when every
 * record is dropped, subject headers (repeated in any spelling, lists),
 * Content-Encoding, staleness, the evidence of every subject, the
 * Consent-* values and the problem members.
 */
/* cmocka.h needs these three before it */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
/* clang-format on */

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "consentgate/verdict.h"

/* 2026-01-01T00:00:00Z */
#define NOW 1767225600

static const char policy_doc[] =
    "{\"policy\": \"t\",\n"
    " \"purposes\": {\"ai\": {\"aipref\": \"train-ai\"}},\n"
    " \"routes\": [\n"
    "  {\"method\": \"POST\", \"path\": \"/in\", \"action\": \"inspect\",\n"
    "   \"purpose\": \"ai\", \"formats\": [\"ndjson\", \"array\", "
    "\"object\"],\n"
    "   \"subjects\": [\"/a\", \"/m/*\"], \"on_deny\": \"drop\",\n"
    "   \"content_usage\": true},\n"
    "  {\"method\": \"POST\", \"path\": \"/block\", \"action\": "
    "\"inspect\",\n"
    "   \"purpose\": \"ai\", \"formats\": [\"ndjson\", \"array\"],\n"
    "   \"subjects\": [\"/a\"], \"on_deny\": \"block\"},\n"
    "  {\"method\": \"PUT\", \"path\": \"/h\", \"action\": \"inspect\",\n"
    "   \"purpose\": \"ai\", \"formats\": [\"object\"],\n"
    "   \"subject_header\": \"X-Subject-Id\", \"on_deny\": \"drop\"},\n"
    "  {\"method\": \"PUT\", \"path\": \"/hb\", \"action\": \"inspect\",\n"
    "   \"purpose\": \"ai\", \"formats\": [\"object\"],\n"
    "   \"subject_header\": \"X-Subject-Id\", \"on_deny\": \"block\"}\n"
    " ],\n"
    " \"rules\": [\n"
    "  {\"id\": \"unknown\", \"if\": {\"known\": false}, \"then\": "
    "\"deny\"},\n"
    "  {\"id\": \"granted\", \"if\": {\"status\": [\"granted\"]}, \"then\": "
    "\"allow\"},\n"
    "  {\"id\": \"default\", \"then\": \"deny\"}\n"
    " ]}\n";

static const char csv[] =
    "subject,purpose,status,jurisdiction,updated_at,evidence\n"
    "1,ai,granted,DE,2025-01-01T00:00:00Z,ev-1\n"
    "2,ai,denied,DE,2025-01-01T00:00:00Z,ev-2\n"
    "3,ai,granted,US,2025-01-01T00:00:00Z,ev-3\n";

struct fixture {
	struct policy *p;
	struct consent_table *t;
	struct verdict v;
};

static int
setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	struct cg_errors errs;

	cg_errors_init(&errs);
	fx->p =
	    policy_load_buf("t.json", policy_doc, strlen(policy_doc), &errs);
	for (unsigned i = 0; i < errs.count; i++)
		print_error("%s\n", errs.msgs[i]);
	assert_non_null(fx->p);
	fx->t = consent_import_csv("t.csv", csv, strlen(csv), &errs);
	assert_non_null(fx->t);
	cg_errors_reset(&errs);
	verdict_init(&fx->v);
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;

	verdict_reset(&fx->v);
	consent_free(fx->t);
	policy_free(fx->p);
	free(fx);
	return 0;
}

static const struct policy_route *
route(struct fixture *fx, const char *method, const char *path)
{
	const struct policy_route *r =
	    route_match(fx->p, (struct cg_slice){method, strlen(method)},
	                (struct cg_slice){path, strlen(path)}, NULL);

	assert_non_null(r);
	return r;
}

/* Begin with headers "Name", "value", ..., NULL. */
static int
begin(struct fixture *fx, const char *method, const char *path, ...)
{
	struct verdict_header h[8];
	struct verdict_request req = {h, 0, NOW, 0};
	const char *name;
	va_list ap;

	va_start(ap, path);
	while ((name = va_arg(ap, const char *)) != NULL) {
		const char *value = va_arg(ap, const char *);

		h[req.nheaders].name = (struct cg_slice){name, strlen(name)};
		h[req.nheaders].value = (struct cg_slice){value, strlen(value)};
		req.nheaders++;
	}
	va_end(ap);
	return verdict_begin(&fx->v, route(fx, method, path), fx->t, &req);
}

/* Feed body line by line; the kept records joined by "\n" into out. */
static int
feed(struct fixture *fx, const char *body, char *out)
{
	const struct verdict_record *rec;
	size_t o = 0;

	for (const char *line = body; *line != '\0';) {
		const char *nl = strchr(line, '\n');
		size_t n = nl ? (size_t)(nl - line) : strlen(line);

		if (verdict_feed_line(&fx->v, line, n, &rec) != 0)
			return -1;
		if (rec != NULL && rec->d.allow) {
			memcpy(out + o, line + rec->start,
			       rec->end - rec->start);
			o += rec->end - rec->start;
			out[o++] = '\n';
		}
		line += n + (nl != NULL);
	}
	out[o] = '\0';
	return verdict_end(&fx->v);
}

static void
test_ndjson_streamed(void **state)
{
	struct fixture *fx = *state;
	char out[256], result[64];

	assert_int_equal(begin(fx, "POST", "/in", "Content-Type",
	                       "application/x-ndjson", NULL),
	                 0);
	assert_true(fx->v.streamable);
	assert_false(fx->v.gzip);
	assert_int_equal(fx->v.format, SCAN_FORMAT_NDJSON);
	assert_int_equal(feed(fx,
	                      "{\"a\":\"1\"}\n{\"a\":\"2\"}\n  \n{\"a\":9}\n"
	                      " {\"a\":3} \r\n{\"x\":1}",
	                      out),
	                 0);
	assert_string_equal(out, "{\"a\":\"1\"}\n{\"a\":3}\n");
	assert_int_equal(fx->v.status, 200);
	assert_int_equal(fx->v.records, 5);
	assert_int_equal(fx->v.kept, 2);
	assert_int_equal(fx->v.dropped, 3);
	/* the record without "/a" names nobody: an unknown person */
	assert_string_equal(fx->v.rec.d.rule_id, "unknown");
	verdict_consent_result(&fx->v, result, sizeof(result));
	assert_string_equal(result, "kept=2, dropped=3");
	assert_string_equal(fx->v.consent_purpose, "ai");
	assert_non_null(strstr(fx->v.consent_policy, "id=\"t\", digest=\""));
	assert_non_null(strstr(fx->v.consent_snapshot, "version="));
	assert_string_equal(fx->v.content_usage, "train-ai=n");
}

static void
test_missing_content_type_415(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(begin(fx, "POST", "/in", NULL), 0);
	assert_false(fx->v.streamable);
	assert_int_equal(verdict_body(&fx->v, "{\"a\":\"1\"}\n", 10), -1);
	assert_int_equal(fx->v.status, 415);
	/* an empty one is no better */
	assert_int_equal(begin(fx, "POST", "/in", "content-type", "", NULL), 0);
	assert_int_equal(verdict_body(&fx->v, "[]", 2), -1);
	assert_int_equal(fx->v.status, 415);
	/* a type the route does not take */
	assert_int_equal(
	    begin(fx, "POST", "/in", "Content-Type", "text/csv", NULL), 0);
	assert_int_equal(verdict_body(&fx->v, "a\n1\n", 4), -1);
	assert_int_equal(fx->v.status, 415);
}

static void
test_array_rebuilt(void **state)
{
	struct fixture *fx = *state;
	const struct verdict_record *rec;
	const char body[] =
	    "[ {\"a\":\"1\",\"n\":0.1}, {\"a\":\"2\"} ,{\"a\":3} ]";
	char out[sizeof(body) + 1];
	int rc;

	assert_int_equal(begin(fx, "POST", "/in", "Content-Type",
	                       "application/json; charset=utf-8", NULL),
	                 0);
	assert_false(fx->v.streamable);
	assert_int_equal(verdict_body(&fx->v, body, strlen(body)), 0);
	assert_int_equal(fx->v.format, SCAN_FORMAT_ARRAY);
	while ((rc = verdict_next(&fx->v, &rec)) == 1)
		assert_non_null(rec);
	assert_int_equal(rc, 0);
	assert_int_equal(verdict_end(&fx->v), 0);
	out[verdict_rebuild(&fx->v, out)] = '\0';
	assert_string_equal(out, "[{\"a\":\"1\",\"n\":0.1},{\"a\":3}]");
	assert_int_equal(fx->v.status, 200);
	assert_int_equal(fx->v.nspans, 2);
}

static void
test_malformed_422(void **state)
{
	struct fixture *fx = *state;
	const struct verdict_record *rec;
	const char body[] = "{\"a\":\"1\"}\n{\"a\":1e3}\n";
	char members[128], out[64];
	int rc;

	/* whole body: index and byte offset */
	assert_int_equal(begin(fx, "POST", "/in", "Content-Type",
	                       "application/x-ndjson", "Content-Encoding",
	                       "identity", NULL),
	                 0);
	assert_false(fx->v.streamable); /* identity named: given whole */
	assert_int_equal(verdict_body(&fx->v, body, strlen(body)), 0);
	while ((rc = verdict_next(&fx->v, &rec)) == 1)
		;
	assert_int_equal(rc, -1);
	assert_null(rec);
	assert_int_equal(fx->v.status, 422);
	assert_int_equal(fx->v.index, 1);
	verdict_problem_members(&fx->v, members, sizeof(members));
	assert_non_null(strstr(members, "\"index\":1,\"offset\":"));
	/* streamed: the index only, and nothing more is decided */
	assert_int_equal(begin(fx, "POST", "/in", "Content-Type",
	                       "application/x-ndjson", NULL),
	                 0);
	assert_int_equal(feed(fx, body, out), -1);
	assert_int_equal(fx->v.status, 422);
	verdict_problem_members(&fx->v, members, sizeof(members));
	assert_string_equal(members, "\"index\":1");
	assert_int_equal(verdict_feed_line(&fx->v, "{\"a\":\"1\"}", 9, &rec),
	                 -1);
}

static void
test_block_stops_at_first_deny(void **state)
{
	struct fixture *fx = *state;
	const struct verdict_record *rec;
	const char body[] = "[{\"a\":\"1\"},{\"a\":\"2\"},{\"a\":\"x\"}]";
	char members[128], out[64];
	int rc;

	assert_int_equal(begin(fx, "POST", "/block", "Content-Type",
	                       "application/json", NULL),
	                 0);
	assert_int_equal(verdict_body(&fx->v, body, strlen(body)), 0);
	assert_int_equal(verdict_next(&fx->v, &rec), 1);
	assert_true(rec->d.allow);
	rc = verdict_next(&fx->v, &rec);
	assert_int_equal(rc, -1);
	assert_non_null(rec); /* the denied record, for the log */
	assert_false(rec->d.allow);
	assert_int_equal(rec->index, 1);
	assert_int_equal(fx->v.status, 403);
	assert_int_equal(fx->v.records, 2); /* the third is never decided */
	verdict_problem_members(&fx->v, members, sizeof(members));
	assert_string_equal(members, "\"rule\":\"default\",\"index\":1");
	/* the same streamed */
	assert_int_equal(begin(fx, "POST", "/block", "Content-Type",
	                       "application/x-ndjson", NULL),
	                 0);
	assert_int_equal(
	    feed(fx, "{\"a\":\"3\"}\n{\"a\":\"2\"}\n{\"a\":\"1\"}\n", out), -1);
	assert_int_equal(fx->v.status, 403);
	assert_int_equal(fx->v.records, 2);
	assert_int_equal(fx->v.index, 1);
}

static void
test_all_dropped_204(void **state)
{
	struct fixture *fx = *state;
	char out[64];

	assert_int_equal(begin(fx, "POST", "/in", "Content-Type",
	                       "application/x-ndjson", NULL),
	                 0);
	assert_int_equal(feed(fx, "{\"a\":\"2\"}\n{\"a\":\"7\"}\n", out), 0);
	assert_int_equal(fx->v.status, 204);
	assert_string_equal(out, "");
	/* no records at all is not "all dropped": forwarded as it is */
	assert_int_equal(begin(fx, "POST", "/in", "Content-Type",
	                       "application/x-ndjson", NULL),
	                 0);
	assert_int_equal(feed(fx, "\n\n", out), 0);
	assert_int_equal(fx->v.status, 200);
	assert_int_equal(fx->v.records, 0);
}

static void
test_header_subject(void **state)
{
	struct fixture *fx = *state;
	char members[128];

	/* decided at begin, whatever the body's type (none here) */
	assert_int_equal(begin(fx, "PUT", "/h", "x-subject-id", "1", NULL), 0);
	assert_true(fx->v.decided);
	assert_int_equal(fx->v.status, 200);
	assert_int_equal(fx->v.kept, 1);
	assert_int_equal(fx->v.rec.d.evidence[0].len, 4);
	assert_memory_equal(fx->v.rec.d.evidence[0].ptr, "ev-1", 4);
	/* denied on a drop route: 204 */
	assert_int_equal(begin(fx, "PUT", "/h", "X-Subject-Id", "2", NULL), 0);
	assert_int_equal(fx->v.status, 204);
	/* missing: an unknown person */
	assert_int_equal(begin(fx, "PUT", "/h", NULL), 0);
	assert_int_equal(fx->v.status, 204);
	assert_string_equal(fx->v.rec.d.rule_id, "unknown");
	/* denied on a block route: 403 with the counts */
	assert_int_equal(begin(fx, "PUT", "/hb", "X-Subject-Id", "2", NULL),
	                 -1);
	assert_int_equal(fx->v.status, 403);
	verdict_problem_members(&fx->v, members, sizeof(members));
	assert_string_equal(members,
	                    "\"rule\":\"default\",\"kept\":0,\"dropped\":1");
	/* twice in any spelling, or a list: 400 */
	assert_int_equal(begin(fx, "PUT", "/h", "X-Subject-Id", "1",
	                       "X_Subject_Id", "2", NULL),
	                 -1);
	assert_int_equal(fx->v.status, 400);
	assert_int_equal(begin(fx, "PUT", "/h", "X-SUBJECT-ID", "1",
	                       "x-subject-id", "1", NULL),
	                 -1);
	assert_int_equal(fx->v.status, 400);
	assert_int_equal(begin(fx, "PUT", "/h", "X-Subject-Id", "1, 2", NULL),
	                 -1);
	assert_int_equal(fx->v.status, 400);
	assert_int_equal(fx->v.records, 0);
}

static void
test_encoding(void **state)
{
	struct fixture *fx = *state;

	assert_int_equal(begin(fx, "POST", "/in", "Content-Type",
	                       "application/x-ndjson", "Content-Encoding", "br",
	                       NULL),
	                 -1);
	assert_int_equal(fx->v.status, 415);
	assert_int_equal(begin(fx, "POST", "/in", "Content-Type",
	                       "application/x-ndjson", "content-encoding",
	                       "GZIP", NULL),
	                 0);
	assert_true(fx->v.gzip);
	assert_false(fx->v.streamable);
}

static void
test_staleness_503(void **state)
{
	struct fixture *fx = *state;
	struct verdict_request req = {NULL, 0, (int64_t)time(NULL) + 100, 10};

	assert_int_equal(
	    verdict_begin(&fx->v, route(fx, "POST", "/in"), fx->t, &req), -1);
	assert_int_equal(fx->v.status, 503);
	req.max_staleness_s = 1000;
	assert_int_equal(
	    verdict_begin(&fx->v, route(fx, "POST", "/in"), fx->t, &req), 0);
}

static void
test_evidence_of_every_subject(void **state)
{
	struct fixture *fx = *state;
	const struct verdict_record *rec;
	const char *allowed = "{\"a\":\"1\",\"m\":[\"3\",\"1\"]}";
	const char *denied = "{\"a\":\"2\",\"m\":[\"3\",\"9\"]}";

	assert_int_equal(begin(fx, "POST", "/in", "Content-Type",
	                       "application/x-ndjson", NULL),
	                 0);
	assert_int_equal(
	    verdict_feed_line(&fx->v, allowed, strlen(allowed), &rec), 0);
	assert_true(rec->d.allow);
	assert_int_equal(rec->d.nevidence, 3);
	assert_memory_equal(rec->d.evidence[0].ptr, "ev-1", 4);
	assert_memory_equal(rec->d.evidence[1].ptr, "ev-3", 4);
	assert_memory_equal(rec->d.evidence[2].ptr, "ev-1", 4);
	for (int i = 0; i < 3; i++) {
		assert_true(rec->d.allows[i]);
		assert_string_equal(rec->d.rules[i], "granted");
	}
	/* the first subject denies; the others are decided all the same */
	assert_int_equal(
	    verdict_feed_line(&fx->v, denied, strlen(denied), &rec), 0);
	assert_false(rec->d.allow);
	assert_int_equal(rec->d.subject, 0);
	assert_memory_equal(rec->d.consent.evidence.ptr, "ev-2", 4);
	assert_int_equal(rec->d.nevidence, 3);
	assert_memory_equal(rec->d.evidence[1].ptr, "ev-3", 4);
	assert_int_equal(rec->d.evidence[2].len, 0); /* unknown: no row */
	/* each person's own part: denied, granted, unknown */
	assert_false(rec->d.allows[0]);
	assert_string_equal(rec->d.rules[0], "default");
	assert_true(rec->d.allows[1]);
	assert_string_equal(rec->d.rules[1], "granted");
	assert_false(rec->d.allows[2]);
	assert_string_equal(rec->d.rules[2], "unknown");
}

/* Decide body as the proxy does a gzip NDJSON body (whole) and a plain
 * one (line by line): the status, the counts and the kept bytes. */
static void
both_ways(struct fixture *fx, const char *body, size_t len, int status[2],
          unsigned counts[2][2], char *out[2], size_t olen[2])
{
	const struct verdict_record *rec;
	int rc;

	/* whole, as after inflating */
	assert_int_equal(begin(fx, "POST", "/in", "Content-Type",
	                       "application/x-ndjson", "Content-Encoding",
	                       "gzip", NULL),
	                 0);
	out[0] = malloc(len + 1);
	olen[0] = 0;
	if (verdict_body(&fx->v, body, len) == 0) {
		while ((rc = verdict_next(&fx->v, &rec)) == 1)
			;
		if (rc == 0) {
			verdict_end(&fx->v);
			olen[0] = verdict_rebuild(&fx->v, out[0]);
		}
	}
	status[0] = fx->v.status;
	counts[0][0] = fx->v.records;
	counts[0][1] = fx->v.kept;
	/* streamed, split at LF as inspect_feed splits */
	assert_int_equal(begin(fx, "POST", "/in", "Content-Type",
	                       "application/x-ndjson", NULL),
	                 0);
	out[1] = malloc(len + 1);
	olen[1] = 0;
	rc = 0;
	for (size_t pos = 0; pos < len && rc == 0;) {
		const char *line = body + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - line) : len - pos;

		rc = verdict_feed_line(&fx->v, line, n, &rec);
		if (rc == 0 && rec != NULL && rec->d.allow) {
			memcpy(out[1] + olen[1], line + rec->start,
			       rec->end - rec->start);
			olen[1] += rec->end - rec->start;
			out[1][olen[1]++] = '\n';
		}
		pos += n + (nl != NULL);
	}
	if (rc == 0)
		verdict_end(&fx->v);
	else
		olen[1] = 0;
	status[1] = fx->v.status;
	counts[1][0] = fx->v.records;
	counts[1][1] = fx->v.kept;
}

/*
 * A gzip NDJSON body is decided whole, a plain one line by line: both must
 * give the same verdict, on every file of the scanner's fuzz corpus and on
 * bodies with blank, whitespace and CRLF lines.
 */
static void
test_whole_and_streamed_agree(void **state)
{
	struct fixture *fx = *state;
	static const char *const bodies[] = {
	    "{\"a\":\"1\"}\n\n{\"a\":\"2\"}",
	    "{\"a\":\"1\"}\r\n \t\r\n{\"a\":\"3\"}\r\n",
	    "\n\n\n",
	    " {\"a\":\"1\"} \n\t{\"a\":\"3\"}\t\n",
	    "{\"a\":\"1\"}\n{\"a\":\n",
	    "{\"a\":\"1\"}\r{\"a\":\"3\"}\n",
	    "[1]\n\"x\"\n{\"a\":\"1\",\"m\":[\"3\",\"2\"]}\n",
	    "\r\n",
	    "{\"a\":\"1\"}\n\r",
	};
	char path[512], *buf;
	unsigned checked = 0;
	struct dirent *de;
	DIR *d = NULL;

	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]) + 64; i++) {
		int status[2];
		unsigned counts[2][2];
		char *out[2];
		size_t olen[2], len;
		FILE *f = NULL;

		if (i < sizeof(bodies) / sizeof(bodies[0])) {
			buf = strdup(bodies[i]);
			len = strlen(buf);
		} else {
			if (i == sizeof(bodies) / sizeof(bodies[0]) &&
			    (d = opendir("../fuzz/corpus/scan")) == NULL)
				break;
			if ((de = readdir(d)) == NULL) {
				closedir(d);
				d = NULL;
				break;
			}
			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "../fuzz/corpus/scan/%s",
			         de->d_name);
			assert_non_null(f = fopen(path, "rb"));
			buf = malloc(1 << 20);
			len = fread(buf, 1, 1 << 20, f);
			fclose(f);
		}
		both_ways(fx, buf, len, status, counts, out, olen);
		if (status[0] != status[1] || counts[0][1] != counts[1][1] ||
		    olen[0] != olen[1] || memcmp(out[0], out[1], olen[0]) != 0)
			fail_msg("body %zu (%s): whole %d kept %u, streamed %d "
			         "kept %u",
			         i, f ? path : "inline", status[0],
			         counts[0][1], status[1], counts[1][1]);
		free(out[0]);
		free(out[1]);
		free(buf);
		checked++;
	}
	if (d != NULL)
		closedir(d); /* the corpus has more files than the loop takes */
	assert_true(checked > 20);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ndjson_streamed),
	    cmocka_unit_test(test_missing_content_type_415),
	    cmocka_unit_test(test_array_rebuilt),
	    cmocka_unit_test(test_malformed_422),
	    cmocka_unit_test(test_block_stops_at_first_deny),
	    cmocka_unit_test(test_all_dropped_204),
	    cmocka_unit_test(test_header_subject),
	    cmocka_unit_test(test_encoding),
	    cmocka_unit_test(test_staleness_503),
	    cmocka_unit_test(test_evidence_of_every_subject),
	    cmocka_unit_test(test_whole_and_streamed_agree),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
