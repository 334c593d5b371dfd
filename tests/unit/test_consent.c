/* test_consent.c: the consent table: CSV import, lookups, snapshots
 * (consent.c, consent_snapshot.c); RFC 3339 in test_rfc3339.c. */
/* cmocka.h needs these three before it */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
/* clang-format on */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The consent sources built in, with the hash mask a variable (the
 * library's is a constant) so that collisions can be forced. */
#define CONSENT_TEST_HOOKS
#include "../../policy/consent.c"
#include "../../policy/consent_snapshot.c"

#define HDR "subject,purpose,status,jurisdiction,updated_at,evidence\n"
#define EXAMPLE "../data/consent-example.csv"

static struct consent_table *
import(const char *csv, struct cg_errors *errs)
{
	return consent_import_csv("t.csv", csv, strlen(csv), errs);
}

static struct consent_table *
import_ok(const char *csv)
{
	struct cg_errors errs;
	cg_errors_init(&errs);
	struct consent_table *t = import(csv, &errs);
	for (unsigned i = 0; i < errs.count; i++)
		print_error("unexpected: %s\n", errs.msgs[i]);
	assert_non_null(t);
	assert_int_equal(errs.count, 0);
	cg_errors_reset(&errs);
	return t;
}

static void
look(const struct consent_table *t, const char *subject, const char *purpose,
     struct consent_lookup_result *r)
{
	int id = purpose ? consent_purpose_id(t, purpose, strlen(purpose)) : -1;
	consent_lookup(t, subject, strlen(subject), id, r);
}

static void
assert_slice(struct cg_slice s, const char *want)
{
	assert_int_equal(s.len, strlen(want));
	assert_memory_equal(s.ptr, want, s.len);
}

/* The import fails, and some error reads "t.csv:<line>: ...<reason>...". */
static void
assert_bad(const char *csv, int line, const char *reason)
{
	struct cg_errors errs;
	char prefix[32];
	bool found = false;

	cg_errors_init(&errs);
	assert_null(import(csv, &errs));
	snprintf(prefix, sizeof(prefix), "t.csv:%d: ", line);
	for (unsigned i = 0; i < errs.count; i++)
		if (strncmp(errs.msgs[i], prefix, strlen(prefix)) == 0 &&
		    strstr(errs.msgs[i], reason) != NULL)
			found = true;
	if (!found) {
		for (unsigned i = 0; i < errs.count; i++)
			print_error("got: %s\n", errs.msgs[i]);
		fail_msg("no error '%s...%s'", prefix, reason);
	}
	cg_errors_reset(&errs);
}

static void
test_example_lookups(void **state)
{
	struct cg_errors errs;
	struct consent_lookup_result r;

	cg_errors_init(&errs);
	struct consent_table *t = consent_open(EXAMPLE, &errs);
	assert_non_null(t);
	assert_int_equal(consent_people(t), 22);
	assert_int_equal(consent_rows(t), 23);
	assert_int_equal(consent_purpose_count(t), 2);
	assert_int_equal(consent_purpose_id(t, "ai-training", 11), 0);
	assert_int_equal(consent_purpose_id(t, "analytics", 9), 1);
	assert_int_equal(consent_purpose_id(t, "marketing", 9), -1);

	look(t, "1001", "ai-training", &r);
	assert_true(r.known);
	assert_string_equal(r.jurisdiction, "DE");
	assert_int_equal(r.status, CONSENT_STATUS_GRANTED);
	assert_int_equal(r.updated_at, 1740830400);
	assert_slice(r.evidence, "cr-1001-a");

	look(t, "1003", "ai-training", &r); /* granted, later withdrawn */
	assert_int_equal(r.status, CONSENT_STATUS_WITHDRAWN);
	assert_slice(r.evidence, "cr-1003-b");

	look(t, "1011", "ai-training", &r); /* withdrawn, later granted */
	assert_int_equal(r.status, CONSENT_STATUS_GRANTED);

	look(t, "1009", "ai-training", &r); /* analytics only */
	assert_true(r.known);
	assert_int_equal(r.status, CONSENT_STATUS_NONE);
	assert_int_equal(r.updated_at, 0);
	assert_int_equal(r.evidence.len, 0);
	assert_string_equal(r.jurisdiction, "US");

	look(t, "1016", "ai-training", &r); /* moved DE -> US */
	assert_string_equal(r.jurisdiction, "US");

	look(t, "1020", "ai-training", &r); /* empty evidence */
	assert_int_equal(r.status, CONSENT_STATUS_GRANTED);
	assert_int_equal(r.evidence.len, 0);

	look(t, "u-anna", "ai-training", &r); /* quoted evidence */
	assert_slice(r.evidence, "form:v2,web");
	assert_string_equal(r.jurisdiction, "AT");

	look(t, "1001", NULL, &r); /* purpose -1 */
	assert_true(r.known);
	assert_int_equal(r.status, CONSENT_STATUS_NONE);

	look(t, "9999", "ai-training", &r);
	assert_false(r.known);
	assert_string_equal(r.jurisdiction, "");
	assert_int_equal(r.status, CONSENT_STATUS_NONE);
	look(t, "100", "ai-training", &r); /* prefix of a subject */
	assert_false(r.known);
	look(t, "10011", "ai-training", &r);
	assert_false(r.known);
	look(t, "", "ai-training", &r);
	assert_false(r.known);
	consent_free(t);
	cg_errors_reset(&errs);
}

static void
test_quoting_and_line_ends(void **state)
{
	struct consent_lookup_result r;
	struct consent_table *t = import_ok(
	    "\xef\xbb\xbfsubject,purpose,status,jurisdiction,updated_at,"
	    "evidence,note\r\n"
	    "\"a,b\",p,granted,DE,2025-01-01T00:00:00Z,\"e\"\"1\",x\r\n"
	    "\"say \"\"hi\"\"\",p,denied,FR,2025-01-01T00:00:00Z,,\"multi\n"
	    "line\"\n"
	    "\r\n"
	    "plain,\"p\",withdrawn,GB,2025-01-01T00:00:00Z,\"\",y");
	assert_int_equal(consent_people(t), 3);
	look(t, "a,b", "p", &r);
	assert_int_equal(r.status, CONSENT_STATUS_GRANTED);
	assert_slice(r.evidence, "e\"1");
	look(t, "say \"hi\"", "p", &r);
	assert_int_equal(r.status, CONSENT_STATUS_DENIED);
	look(t, "plain", "p", &r);
	assert_int_equal(r.status, CONSENT_STATUS_WITHDRAWN);
	look(t, "\"a,b\"", "p", &r);
	assert_false(r.known);
	consent_free(t);

	/* No evidence column: evidence is empty. */
	t = import_ok("subject,purpose,status,jurisdiction,updated_at\n"
	              "123,p,granted,JP,2025-01-01T00:00:00Z\n");
	look(t, "123", "p", &r);
	assert_true(r.known);
	assert_int_equal(r.evidence.len, 0);
	look(t, "0123", "p", &r); /* exact bytes, not numbers */
	assert_false(r.known);
	consent_free(t);
}

static void
test_bad_rows(void **state)
{
	assert_bad(HDR ",p,granted,DE,2025-01-01T00:00:00Z,e\n", 2,
	           "empty subject");
	assert_bad(HDR "a,p,granted,DE,2025-01-01T00:00:00Z,e\n"
	               "\"\",p,granted,DE,2025-01-01T00:00:00Z,e\n",
	           3, "empty subject");
	assert_bad(HDR " a,p,granted,DE,2025-01-01T00:00:00Z,e\n", 2,
	           "leading or trailing space");
	assert_bad(HDR "a,p,yes,DE,2025-01-01T00:00:00Z,e\n", 2, "status");
	assert_bad(HDR "a,p,Granted,DE,2025-01-01T00:00:00Z,e\n", 2, "status");
	assert_bad(HDR "a,p,granted,de,2025-01-01T00:00:00Z,e\n", 2,
	           "jurisdiction");
	assert_bad(HDR "a,p,granted,DEU,2025-01-01T00:00:00Z,e\n", 2,
	           "jurisdiction");
	assert_bad(HDR "a,p,granted,,2025-01-01T00:00:00Z,e\n", 2,
	           "jurisdiction");
	assert_bad(HDR "a,p,granted,DE,2025-02-30T00:00:00Z,e\n", 2,
	           "RFC 3339");
	assert_bad(HDR "a,p,granted,DE,yesterday,e\n", 2, "RFC 3339");
	/* the date eval --now once took: one parser (rfc3339.c) refuses both */
	assert_bad(HDR "a,p,granted,DE,2026-02-31T10:00:00Z,e\n", 2,
	           "RFC 3339");
	assert_bad(HDR "a,,granted,DE,2025-01-01T00:00:00Z,e\n", 2, "purpose");
	assert_bad(HDR "a,p q,granted,DE,2025-01-01T00:00:00Z,e\n", 2,
	           "purpose");
	assert_bad(HDR "a,p,granted,DE,2025-01-01T00:00:00Z\n", 2,
	           "5 fields, the header has 6");
	assert_bad(HDR "a,p,granted,DE,2025-01-01T00:00:00Z,e,x\n", 2,
	           "7 fields");
	assert_bad(HDR "a\"b,p,granted,DE,2025-01-01T00:00:00Z,e\n", 2,
	           "quote inside");
	assert_bad(HDR "\"a\"b,p,granted,DE,2025-01-01T00:00:00Z,e\n", 2,
	           "after a closing quote");
	assert_bad(HDR "a,p,granted,DE,2025-01-01T00:00:00Z,e\rb\n", 2,
	           "bare CR");
	assert_bad(HDR "a,p,granted,DE,2025-01-01T00:00:00Z,\"e\n", 2,
	           "unterminated");

	char big[600];
	memset(big, 'x', 300);
	snprintf(big + 300, sizeof(big) - 300,
	         ",p,granted,DE,2025-01-01T00:00:00Z,e\n");
	char csv[1000];
	snprintf(csv, sizeof(csv), HDR "%s", big);
	assert_bad(csv, 2, "subject longer than 256");
	snprintf(csv, sizeof(csv),
	         HDR "a,p,granted,DE,2025-01-01T00:00:00Z,%.300s\n", big);
	assert_bad(csv, 2, "evidence longer than 255");

	/* A quoted field spanning lines: later line numbers still right. */
	assert_bad(HDR "a,p,granted,DE,2025-01-01T00:00:00Z,\"x\ny\"\n"
	               "b,p,nope,DE,2025-01-01T00:00:00Z,e\n",
	           4, "status");
}

static void
test_all_bad_rows_reported(void **state)
{
	struct cg_errors errs;
	cg_errors_init(&errs);
	assert_null(import(HDR "a,p,granted,DE,2025-01-01T00:00:00Z,e\n"
	                       "b,p,nope,DE,2025-01-01T00:00:00Z,e\n"
	                       "c,p,granted,DE,2025-01-01T00:00:00Z,e\n"
	                       ",p,granted,DE,2025-01-01T00:00:00Z,e\n"
	                       "d,p,granted,xx,2025-01-01T00:00:00Z,e\n",
	                   &errs));
	assert_int_equal(errs.count, 3);
	assert_non_null(strstr(errs.msgs[0], "t.csv:3: "));
	assert_non_null(strstr(errs.msgs[1], "t.csv:5: "));
	assert_non_null(strstr(errs.msgs[2], "t.csv:6: "));
	cg_errors_reset(&errs);

	/* Past the cap: the count stops, the rest is counted as dropped. */
	size_t n = 150, len = 0;
	char *csv = malloc(64 * n + 100);
	len += (size_t)sprintf(csv, HDR);
	for (size_t i = 0; i < n; i++)
		len += (size_t)sprintf(
		    csv + len, "s%zu,p,bad,DE,2025-01-01T00:00:00Z,e\n", i);
	cg_errors_init(&errs);
	assert_null(consent_import_csv("t.csv", csv, len, &errs));
	assert_int_equal(errs.count, CG_MAX_ERRORS);
	free(csv);
	cg_errors_reset(&errs);
}

static void
test_bad_header(void **state)
{
	assert_bad("subject,purpose,status,updated_at,jurisdiction\n", 1,
	           "column 4 should be jurisdiction");
	assert_bad("subject,purpose\n", 1, "column 3 should be status");
	assert_bad("subject,purpose,status,jurisdiction,updated_at,evidence,"
	           "evidence\n",
	           1, "evidence appears twice");
	struct cg_errors errs;
	cg_errors_init(&errs);
	assert_null(import("", &errs));
	assert_int_equal(errs.count, 1);
	assert_non_null(strstr(errs.msgs[0], "header"));
	cg_errors_reset(&errs);
}

static void
test_latest_wins(void **state)
{
	struct consent_lookup_result r;
	/* File order must not matter, only updated_at. */
	struct consent_table *t =
	    import_ok(HDR "a,p,withdrawn,DE,2025-04-01T00:00:00Z,e2\n"
	                  "a,p,granted,DE,2024-04-01T00:00:00Z,e1\n"
	                  "b,p,granted,DE,2024-04-01T00:00:00Z,e1\n"
	                  "b,p,denied,DE,2025-04-01T00:00:00Z,e2\n"
	                  /* fractions order rows within one second */
	                  "c,p,granted,DE,2025-04-01T00:00:00.9Z,late\n"
	                  "c,p,denied,DE,2025-04-01T00:00:00.1Z,early\n");
	look(t, "a", "p", &r);
	assert_int_equal(r.status, CONSENT_STATUS_WITHDRAWN);
	assert_slice(r.evidence, "e2");
	look(t, "b", "p", &r);
	assert_int_equal(r.status, CONSENT_STATUS_DENIED);
	look(t, "c", "p", &r);
	assert_int_equal(r.status, CONSENT_STATUS_GRANTED);
	assert_slice(r.evidence, "late");
	assert_int_equal(consent_rows(t), 3);
	assert_int_equal(consent_people(t), 3);
	consent_free(t);
}

static void
test_equal_timestamps_later_row_wins(void **state)
{
	struct consent_lookup_result r;
	struct consent_table *t =
	    import_ok(HDR "a,p,granted,DE,2025-01-01T12:00:00Z,first\n"
	                  "a,p,withdrawn,FR,2025-01-01T14:00:00+02:00,second\n"
	                  "b,p,withdrawn,FR,2025-01-01T12:00:00Z,first\n"
	                  "b,p,granted,DE,2025-01-01T12:00:00Z,second\n");
	look(t, "a", "p", &r);
	assert_int_equal(r.status, CONSENT_STATUS_WITHDRAWN);
	assert_slice(r.evidence, "second");
	assert_string_equal(r.jurisdiction, "FR");
	look(t, "b", "p", &r);
	assert_int_equal(r.status, CONSENT_STATUS_GRANTED);
	assert_string_equal(r.jurisdiction, "DE");
	consent_free(t);
}

static void
test_jurisdiction_latest_any_purpose(void **state)
{
	struct consent_lookup_result r;
	struct consent_table *t =
	    import_ok(HDR "a,p,granted,DE,2025-01-01T00:00:00Z,e\n"
	                  "a,q,granted,GB,2025-06-01T00:00:00Z,e\n"
	                  "a,p,denied,FR,2024-01-01T00:00:00Z,e\n");
	look(t, "a", "p", &r);
	assert_string_equal(r.jurisdiction, "GB");
	assert_int_equal(r.status, CONSENT_STATUS_GRANTED);
	look(t, "a", "q", &r);
	assert_string_equal(r.jurisdiction, "GB");
	consent_free(t);
}

static void
test_many_purposes_per_person(void **state)
{
	struct consent_lookup_result r;
	/* Rows reach the table in any purpose order; each answers for itself.
	 */
	struct consent_table *t =
	    import_ok(HDR "a,p3,denied,DE,2025-01-03T00:00:00Z,e3\n"
	                  "b,p1,granted,FR,2025-01-01T00:00:00Z,b1\n"
	                  "a,p1,granted,DE,2025-01-01T00:00:00Z,e1\n"
	                  "a,p2,withdrawn,DE,2025-01-02T00:00:00Z,e2\n");
	assert_int_equal(consent_purpose_count(t), 3);
	assert_slice(consent_purpose_name(t, 0), "p3");
	assert_slice(consent_purpose_name(t, 2), "p2");
	assert_int_equal(consent_purpose_name(t, 3).len, 0);
	look(t, "a", "p1", &r);
	assert_int_equal(r.status, CONSENT_STATUS_GRANTED);
	assert_slice(r.evidence, "e1");
	look(t, "a", "p2", &r);
	assert_int_equal(r.status, CONSENT_STATUS_WITHDRAWN);
	assert_slice(r.evidence, "e2");
	look(t, "a", "p3", &r);
	assert_int_equal(r.status, CONSENT_STATUS_DENIED);
	assert_int_equal(r.updated_at, 1735862400);
	look(t, "b", "p3", &r);
	assert_true(r.known);
	assert_int_equal(r.status, CONSENT_STATUS_NONE);
	/* An id the table never gave out: known, status none. */
	consent_lookup(t, "a", 1, 7, &r);
	assert_true(r.known);
	assert_int_equal(r.status, CONSENT_STATUS_NONE);
	assert_int_equal(consent_rows(t), 4);
	assert_string_equal(consent_status_name(CONSENT_STATUS_WITHDRAWN),
	                    "withdrawn");
	assert_string_equal(consent_status_name(CONSENT_STATUS_NONE), "none");
	consent_free(t);
}

static void
assert_same_lookups(const struct consent_table *a,
                    const struct consent_table *b, const char *subject)
{
	struct consent_lookup_result x, y;
	for (int p = -1; p < (int)consent_purpose_count(a); p++) {
		consent_lookup(a, subject, strlen(subject), p, &x);
		consent_lookup(b, subject, strlen(subject), p, &y);
		assert_int_equal(x.known, y.known);
		assert_string_equal(x.jurisdiction, y.jurisdiction);
		assert_int_equal(x.status, y.status);
		assert_int_equal(x.updated_at, y.updated_at);
		assert_int_equal(x.evidence.len, y.evidence.len);
		assert_memory_equal(x.evidence.ptr, y.evidence.ptr,
		                    x.evidence.len);
	}
}

static const char *example_subjects[] = {
    "1001", "1002", "1003", "1004", "1005",   "1006",  "1007", "1008",
    "1009", "1010", "1011", "1012", "1013",   "1014",  "1015", "1016",
    "1017", "1018", "1019", "1020", "u-anna", "u-ben", "9999", "u-carl",
};

static char snap_path[] = "/tmp/test_consent.XXXXXX";

static void
test_snapshot_roundtrip(void **state)
{
	struct cg_errors errs;
	cg_errors_init(&errs);
	struct consent_table *a = consent_open(EXAMPLE, &errs);
	assert_non_null(a);
	consent_set_version(a, 42);
	assert_int_equal(consent_snapshot_write(a, snap_path, &errs), 0);
	struct consent_table *b = consent_open(snap_path, &errs);
	assert_non_null(b);
	assert_int_equal(errs.count, 0);
	assert_int_equal(consent_version(b), 42);
	assert_int_equal(consent_created_at(b), consent_created_at(a));
	assert_int_equal(consent_people(b), consent_people(a));
	assert_int_equal(consent_rows(b), consent_rows(a));
	assert_int_equal(consent_bytes(b), consent_bytes(a));
	assert_int_equal(consent_purpose_id(b, "analytics", 9), 1);
	for (size_t i = 0; i < sizeof(example_subjects) / sizeof(char *); i++)
		assert_same_lookups(a, b, example_subjects[i]);

	/* lookup_many answers what lookup answers. */
	struct cg_slice s[24];
	struct consent_lookup_result many[24], one;
	for (size_t i = 0; i < 24; i++)
		s[i] = (struct cg_slice){example_subjects[i],
		                         strlen(example_subjects[i])};
	consent_lookup_many(b, s, 24, 0, many);
	for (size_t i = 0; i < 24; i++) {
		consent_lookup(b, s[i].ptr, s[i].len, 0, &one);
		assert_int_equal(many[i].known, one.known);
		assert_int_equal(many[i].status, one.status);
		assert_int_equal(many[i].updated_at, one.updated_at);
	}
	assert_true(many[0].known);
	assert_false(many[22].known);
	consent_free(a);
	consent_free(b);
	cg_errors_reset(&errs);
}

static uint8_t *
read_whole(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	*len = (size_t)ftell(f);
	rewind(f);
	uint8_t *buf = malloc(*len);
	assert_int_equal(fread(buf, 1, *len, f), *len);
	fclose(f);
	return buf;
}

static void
write_whole(const char *path, const void *buf, size_t len)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(buf, 1, len, f), len);
	fclose(f);
}

/* Opening must fail, with an error that names the file and the reason. */
static void
assert_refused(const char *path, const char *reason)
{
	struct cg_errors errs;
	cg_errors_init(&errs);
	struct consent_table *t = consent_open(path, &errs);
	if (t != NULL)
		consent_free(t);
	assert_null(t);
	assert_true(errs.count >= 1);
	if (strstr(errs.msgs[0], reason) == NULL)
		fail_msg("got '%s', wanted '%s'", errs.msgs[0], reason);
	cg_errors_reset(&errs);
}

/* Where each purpose comes from, for the policy's check of unknown
 * purposes (issue 8, class 7): first CSV line and rows; in a snapshot, the
 * rows kept. */
static void
test_purpose_provenance(void **state)
{
	struct cg_errors errs;
	struct consent_table *a, *b, *c;
	int ai, an;

	cg_errors_init(&errs);
	a = consent_open(EXAMPLE, &errs);
	assert_non_null(a);
	assert_string_equal(consent_source(a), EXAMPLE);
	ai = consent_purpose_id(a, "ai-training", 11);
	an = consent_purpose_id(a, "analytics", 9);
	assert_int_equal(consent_purpose_line(a, (unsigned)ai), 2);
	assert_int_equal(consent_purpose_line(a, (unsigned)an), 3);
	assert_int_equal(consent_purpose_rows(a, (unsigned)ai), 22);
	assert_int_equal(consent_purpose_rows(a, (unsigned)an), 4);
	assert_int_equal(consent_purpose_line(a, 7), 0);
	assert_int_equal(consent_purpose_rows(a, 7), 0);

	/* a snapshot knows no lines; its rows are the latest per person */
	assert_int_equal(consent_snapshot_write(a, snap_path, &errs), 0);
	b = consent_open(snap_path, &errs);
	assert_non_null(b);
	assert_string_equal(consent_source(b), snap_path);
	assert_int_equal(consent_purpose_line(b, (unsigned)an), 0);
	assert_int_equal(consent_purpose_rows(b, (unsigned)an), 4);
	assert_int_equal(consent_purpose_rows(b, (unsigned)ai) +
	                     consent_purpose_rows(b, (unsigned)an),
	                 consent_rows(b));
	assert_true(consent_purpose_rows(b, (unsigned)ai) < 22);

	/* lines count blank lines and quoted line breaks */
	c = import_ok(HDR "\n1,ai-training,granted,DE,2025-01-01T00:00:00Z,"
	                  "\"a\nb\"\n\n2,ai_training,denied,DE,"
	                  "2025-01-01T00:00:00Z,e\n");
	assert_string_equal(consent_source(c), "t.csv");
	assert_int_equal(consent_purpose_line(c, 0), 3);
	assert_int_equal(consent_purpose_line(c, 1), 6);
	assert_int_equal(consent_purpose_rows(c, 1), 1);
	consent_free(c);
	consent_free(b);
	consent_free(a);
	cg_errors_reset(&errs);
}

static void
test_snapshot_corrupt_refused(void **state)
{
	struct cg_errors errs;
	char bad_path[] = "/tmp/test_consent_bad.XXXXXX";
	size_t len;

	cg_errors_init(&errs);
	struct consent_table *a = consent_open(EXAMPLE, &errs);
	assert_non_null(a);
	assert_int_equal(consent_snapshot_write(a, snap_path, &errs), 0);
	uint8_t *good = read_whole(snap_path, &len);
	uint8_t *buf = malloc(len + 8);
	int fd = mkstemp(bad_path);
	assert_true(fd >= 0);
	close(fd);

	/* Truncated anywhere: refused. */
	size_t cuts[] = {8, 100, 127, 128, 200, len / 2, len - 1};
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		write_whole(bad_path, good, cuts[i]);
		assert_refused(bad_path, "truncated");
	}
	/* Longer than the header says. */
	memcpy(buf, good, len);
	memset(buf + len, 0, 8);
	write_whole(bad_path, buf, len + 8);
	assert_refused(bad_path, "longer");
	/* Any flipped header byte: checksum (or magic: then it is CSV). */
	for (size_t i = 8; i < sizeof(struct consent_snap_header); i++) {
		memcpy(buf, good, len);
		buf[i] ^= 0x40;
		write_whole(bad_path, buf, len);
		size_t e = offsetof(struct consent_snap_header, endian);
		assert_refused(bad_path,
		               i >= e && i < e + 4 ? "byte order" : "checksum");
	}
	memcpy(buf, good, len);
	buf[0] = 'X'; /* no magic: read as CSV, which it is not */
	write_whole(bad_path, buf, len);
	assert_refused(bad_path, "");
	/* A header with a valid checksum but sections out of bounds. */
	struct consent_snap_header *h = (void *)buf;
	uint64_t *fields[] = {
	    &h->slots_off,    &h->blobs_off,     &h->blobs_size, &h->nbuckets,
	    &h->purposes_off, &h->purposes_size, &h->people};
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		memcpy(buf, good, len);
		*fields[i] = i % 2 ? UINT64_MAX - 7 : len * 8;
		h->checksum = consent_snapshot_checksum(h);
		write_whole(bad_path, buf, len);
		assert_refused(bad_path, "");
	}
	/* A purpose name offset pointing outside its section. */
	memcpy(buf, good, len);
	uint32_t ent[2] = {1u << 30, 3};
	memcpy(buf + h->purposes_off, ent, 8);
	write_whole(bad_path, buf, len);
	assert_refused(bad_path, "purpose");

	/* Garbage in the slots and blobs opens (no per-entry work) but a
	 * lookup never crashes and never invents a person. */
	for (unsigned round = 0; round < 200; round++) {
		memcpy(buf, good, len);
		srand(round);
		for (int k = 0; k < 8; k++) {
			size_t at = h->slots_off +
			            (size_t)rand() % (len - h->slots_off);
			buf[at] = (uint8_t)rand();
		}
		write_whole(bad_path, buf, len);
		struct consent_table *b = consent_open(bad_path, &errs);
		assert_non_null(b);
		struct consent_lookup_result r;
		for (size_t i = 0; i < 24; i++) {
			const char *s = example_subjects[i];
			consent_lookup(b, s, strlen(s), 0, &r);
			if (r.known)
				assert_int_equal(strlen(r.jurisdiction), 2);
		}
		consent_lookup(b, "nobody", 6, 0, &r);
		assert_false(r.known);
		consent_free(b);
	}
	unlink(bad_path);
	free(buf);
	free(good);
	consent_free(a);
	cg_errors_reset(&errs);
}

static void
test_collisions_never_merge_people(void **state)
{
	struct consent_lookup_result r;
	struct cg_errors errs;
	size_t n = 2000, len = 0;
	char *csv = malloc(80 * n + 100), s[32];

	len += (size_t)sprintf(csv, HDR);
	for (size_t i = 0; i < n; i++)
		len += (size_t)sprintf(
		    csv + len, "%zu,p,%s,DE,2025-01-01T00:00:%02zuZ,e%zu\n", i,
		    i % 3 ? "granted" : "denied", i % 60, i);
	for (int pass = 0; pass < 2; pass++) {
		/* Every subject gets the same hash (and tag), then 4 hashes. */
		consent_hash_mask = pass == 0 ? 0 : 3;
		cg_errors_init(&errs);
		struct consent_table *a =
		    consent_import_csv("c.csv", csv, len, &errs);
		assert_non_null(a);
		assert_int_equal(consent_people(a), n);
		assert_int_equal(consent_snapshot_write(a, snap_path, &errs),
		                 0);
		struct consent_table *b = consent_open(snap_path, &errs);
		assert_non_null(b);
		for (size_t i = 0; i < n; i += 7) {
			sprintf(s, "%zu", i);
			consent_lookup(b, s, strlen(s), 0, &r);
			assert_true(r.known);
			assert_int_equal(r.status, i % 3
			                               ? CONSENT_STATUS_GRANTED
			                               : CONSENT_STATUS_DENIED);
			assert_int_equal(r.updated_at,
			                 1735689600 + (int64_t)(i % 60));
			assert_int_equal(r.evidence.len, strlen(s) + 1);
			assert_memory_equal(r.evidence.ptr + 1, s, strlen(s));
			sprintf(s, "%zu ", i);
			consent_lookup(a, s, strlen(s), 0, &r);
			assert_false(r.known);
		}
		consent_lookup(b, "x", 1, 0, &r);
		assert_false(r.known);
		consent_free(a);
		consent_free(b);
		cg_errors_reset(&errs);
	}
	consent_hash_mask = UINT64_MAX;
	free(csv);
}

static void
test_empty_table(void **state)
{
	struct consent_lookup_result r;
	struct cg_errors errs;
	struct consent_table *a = import_ok(HDR);
	assert_int_equal(consent_people(a), 0);
	assert_int_equal(consent_rows(a), 0);
	assert_int_equal(consent_purpose_count(a), 0);
	assert_int_equal(consent_purpose_id(a, "p", 1), -1);
	look(a, "1001", NULL, &r);
	assert_false(r.known);
	cg_errors_init(&errs);
	assert_int_equal(consent_snapshot_write(a, snap_path, &errs), 0);
	struct consent_table *b = consent_open(snap_path, &errs);
	assert_non_null(b);
	assert_int_equal(consent_people(b), 0);
	look(b, "1001", NULL, &r);
	assert_false(r.known);
	consent_free(a);
	consent_free(b);
	cg_errors_reset(&errs);
	/* A header without its line end is a header too. */
	a = import_ok("subject,purpose,status,jurisdiction,updated_at");
	assert_int_equal(consent_people(a), 0);
	consent_free(a);
}

static void
test_open_errors(void **state)
{
	assert_refused("/nonexistent/consent.csv", "cannot open");
	assert_refused("/tmp", "not a regular file");
}

static void
test_large_table(void **state)
{
	/* Enough people for a mmap'ed image and long probe runs. */
	size_t n = 200000, len = 0;
	char *csv = malloc(64 * n + 100), s[32];
	struct consent_lookup_result r;

	len += (size_t)sprintf(csv, HDR);
	for (size_t i = 0; i < n; i++)
		len += (size_t)sprintf(
		    csv + len, "u%zu,p,granted,DE,2025-01-01T00:00:00Z,\n",
		    i * 7919);
	struct consent_table *t = consent_import_csv("l.csv", csv, len, NULL);
	assert_non_null(t);
	assert_int_equal(consent_people(t), n);
	for (size_t i = 0; i < n; i++) {
		sprintf(s, "u%zu", i * 7919);
		consent_lookup(t, s, strlen(s), 0, &r);
		assert_true(r.known);
		sprintf(s, "u%zu", i * 7919 + 1);
		consent_lookup(t, s, strlen(s), 0, &r);
		assert_false(r.known);
	}
	consent_free(t);
	free(csv);
}

static int
setup(void **state)
{
	int fd = mkstemp(snap_path);
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

static int
teardown(void **state)
{
	unlink(snap_path);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_example_lookups),
	    cmocka_unit_test(test_quoting_and_line_ends),
	    cmocka_unit_test(test_bad_rows),
	    cmocka_unit_test(test_all_bad_rows_reported),
	    cmocka_unit_test(test_bad_header),
	    cmocka_unit_test(test_latest_wins),
	    cmocka_unit_test(test_equal_timestamps_later_row_wins),
	    cmocka_unit_test(test_jurisdiction_latest_any_purpose),
	    cmocka_unit_test(test_many_purposes_per_person),
	    cmocka_unit_test(test_snapshot_roundtrip),
	    cmocka_unit_test(test_purpose_provenance),
	    cmocka_unit_test(test_snapshot_corrupt_refused),
	    cmocka_unit_test(test_collisions_never_merge_people),
	    cmocka_unit_test(test_empty_table),
	    cmocka_unit_test(test_open_errors),
	    cmocka_unit_test(test_large_table),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
