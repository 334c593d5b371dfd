/*
 * test_scan: the validating record scanner, against jansson as the oracle.
 *
 * JSONTestSuite (test_parsing/): every y_ file is accepted and every n_
 * file refused, by us and by jansson (json_loadb, JSON_REJECT_DUPLICATES |
 * JSON_DECODE_ANY | JSON_ALLOW_NUL). Deliberate differences:
 *  - y_object_escaped_null_in_key: we refuse a member name holding \u0000
 *    (C decoders read "foo\u0000bar" as "foo": a decoy). jansson refuses
 *    it too.
 *  - y_object_duplicated_key*: we accept duplicates off the subject paths
 *    (they cannot change whose record it is); jansson with
 *    JSON_REJECT_DUPLICATES refuses them. On a locator's path we refuse.
 * i_ files (implementation-defined), our choice, checked below:
 *  - numbers beyond int64/double range (i_number_*): accepted, the grammar
 *    is all RFC 8259 asks; a numeric subject id is compared as text, never
 *    converted. jansson refuses them (numeric overflow).
 *  - lone or broken surrogate escapes, invalid UTF-8, overlongs, code
 *    points above U+10FFFF, UTF-16 input, Latin-1 bytes (i_string_*):
 *    refused, as jansson does.
 *  - a UTF-8 BOM (i_structure_UTF-8_BOM_empty_object): refused.
 *  - 500 nested arrays (i_structure_500_nested_arrays): refused by the
 *    depth limit (CG_DEFAULT_MAX_DEPTH = 64); jansson's limit is 2048.
 *
 * Then a differential run on generated records and mutations of them
 * (fixed seed): when jansson refuses (not for a duplicate member or a
 * numeric overflow), we refuse; when we accept, jansson accepts and the
 * subjects we extract are the ones jansson finds at the pointers; when
 * jansson accepts and we refuse, our reason is an ambiguity or subject
 * rule, never a syntax error.
 *
 * All of it runs under every stage-1 kernel the CPU has (scan_kernel.c);
 * test_scan_kernel compares the kernels with each other.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>
#include <jansson.h>

#include "../../policy/scan_internal.h"
#include "consentgate/scan.h"
#include "test_scan_outcome.h"

/* The JSONTestSuite sits in ../shared beside the repository: found from
 * the root the Makefile passes, whatever the working directory. */
#ifndef CG_SOURCE_DIR
#define CG_SOURCE_DIR "../.." /* run from tests/unit */
#endif
#define SUITE_DIR                                                              \
	CG_SOURCE_DIR "/../shared/conformance/JSONTestSuite/test_parsing/"
#define JANSSON_FLAGS                                                          \
	(JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL)

static struct scan_record rec;

/* ---- helpers ---- */

struct spec_buf {
	struct jsonptr loc[CG_MAX_LOCATORS];
	struct scan_spec spec;
};

/* A spec from one or two pointer texts (p1 may be NULL). */
static struct scan_spec *
mkspec(struct spec_buf *b, unsigned max_depth, const char *p0, const char *p1)
{
	const char *ptrs[2] = {p0, p1};
	const char *err;

	memset(&b->spec, 0, sizeof(b->spec));
	b->spec.locators = b->loc;
	b->spec.max_depth = max_depth;
	for (unsigned i = 0; i < 2 && ptrs[i] != NULL; i++) {
		assert_int_equal(
		    jsonptr_parse(ptrs[i], strlen(ptrs[i]), &b->loc[i], &err),
		    0);
		b->spec.nlocators++;
	}
	return &b->spec;
}

static int
scan_str(const struct scan_spec *spec, const char *json, const char **err)
{
	*err = NULL;
	return scan_record(spec, json, strlen(json), &rec, err);
}

/* Accepts json with exactly the subjects given (NULL-terminated list). */
static void
expect_subjects(const struct scan_spec *spec, const char *json, ...)
{
	const char *err, *want;
	unsigned n = 0;
	va_list ap;

	if (scan_str(spec, json, &err) != 0)
		fail_msg("refused %s: %s", json, err);
	va_start(ap, json);
	while ((want = va_arg(ap, const char *)) != NULL) {
		if (n >= rec.nsubjects)
			fail_msg("%s: missing subject %s", json, want);
		if (rec.subjects[n].len != strlen(want) ||
		    memcmp(rec.subjects[n].ptr, want, strlen(want)) != 0)
			fail_msg("%s: subject %u is %.*s, want %s", json, n,
			         (int)rec.subjects[n].len, rec.subjects[n].ptr,
			         want);
		n++;
	}
	va_end(ap);
	if (n != rec.nsubjects)
		fail_msg("%s: %u subjects, want %u", json, rec.nsubjects, n);
}

/* Refuses json with an error containing what. */
static void
expect_refused(const struct scan_spec *spec, const char *json, const char *what)
{
	const char *err;

	if (scan_str(spec, json, &err) == 0)
		fail_msg("accepted %s", json);
	assert_non_null(err);
	if (strstr(err, what) == NULL)
		fail_msg("%s: error \"%s\", want \"%s\"", json, err, what);
}

static char *
read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (f == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 &&
	    fseek(f, 0, SEEK_SET) == 0 &&
	    (buf = malloc((size_t)n + 1)) != NULL &&
	    fread(buf, 1, (size_t)n, f) == (size_t)n) {
		*len = (size_t)n;
	} else {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

/* ---- JSONTestSuite ---- */

struct i_choice {
	const char *file;
	bool accept;
};

static const struct i_choice i_choices[] = {
    {"i_number_double_huge_neg_exp.json", true},
    {"i_number_huge_exp.json", true},
    {"i_number_neg_int_huge_exp.json", true},
    {"i_number_pos_double_huge_exp.json", true},
    {"i_number_real_neg_overflow.json", true},
    {"i_number_real_pos_overflow.json", true},
    {"i_number_real_underflow.json", true},
    {"i_number_too_big_neg_int.json", true},
    {"i_number_too_big_pos_int.json", true},
    {"i_number_very_big_negative_int.json", true},
    {"i_object_key_lone_2nd_surrogate.json", false},
    {"i_string_1st_surrogate_but_2nd_missing.json", false},
    {"i_string_1st_valid_surrogate_2nd_invalid.json", false},
    {"i_string_UTF-16LE_with_BOM.json", false},
    {"i_string_UTF-8_invalid_sequence.json", false},
    {"i_string_UTF8_surrogate_U+D800.json", false},
    {"i_string_incomplete_surrogate_and_escape_valid.json", false},
    {"i_string_incomplete_surrogate_pair.json", false},
    {"i_string_incomplete_surrogates_escape_valid.json", false},
    {"i_string_invalid_lonely_surrogate.json", false},
    {"i_string_invalid_surrogate.json", false},
    {"i_string_invalid_utf-8.json", false},
    {"i_string_inverted_surrogates_U+1D11E.json", false},
    {"i_string_iso_latin_1.json", false},
    {"i_string_lone_second_surrogate.json", false},
    {"i_string_lone_utf8_continuation_byte.json", false},
    {"i_string_not_in_unicode_range.json", false},
    {"i_string_overlong_sequence_2_bytes.json", false},
    {"i_string_overlong_sequence_6_bytes.json", false},
    {"i_string_overlong_sequence_6_bytes_null.json", false},
    {"i_string_truncated-utf-8.json", false},
    {"i_string_utf16BE_no_BOM.json", false},
    {"i_string_utf16LE_no_BOM.json", false},
    {"i_structure_500_nested_arrays.json", false},
    {"i_structure_UTF-8_BOM_empty_object.json", false},
};

/* y_ files we refuse on purpose (see the top of this file) */
static const char *const y_refused[] = {
    "y_object_escaped_null_in_key.json",
};

/* y_ files jansson (with our flags) refuses */
static const char *const y_jansson_refused[] = {
    "y_object_duplicated_key.json",
    "y_object_duplicated_key_and_value.json",
    "y_object_escaped_null_in_key.json",
};

static bool
listed(const char *name, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(name, list[i]) == 0)
			return true;
	return false;
}

static void
test_json_test_suite(void **state)
{
	struct spec_buf sb;
	const struct scan_spec *spec = mkspec(&sb, 0, "/author_id", NULL);
	DIR *d = opendir(SUITE_DIR);
	struct dirent *de;
	unsigned ny = 0, nn = 0, ni = 0, bad = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		char path[512];
		const char *name = de->d_name, *err = NULL;
		size_t len = 0;
		char *buf;
		json_error_t je;
		json_t *j;
		int ours;
		bool theirs;

		if (strstr(name, ".json") == NULL)
			continue;
		snprintf(path, sizeof(path), "%s%s", SUITE_DIR, name);
		buf = read_file(path, &len);
		assert_non_null(buf);
		ours = scan_record(spec, buf, len, &rec, &err);
		j = json_loadb(buf, len, JANSSON_FLAGS, &je);
		theirs = j != NULL;
		json_decref(j);
		free(buf);
		if (name[0] == 'y') {
			bool want =
			    !listed(name, y_refused,
			            sizeof(y_refused) / sizeof(y_refused[0]));
			bool jwant = !listed(name, y_jansson_refused,
			                     sizeof(y_jansson_refused) /
			                         sizeof(y_jansson_refused[0]));

			ny++;
			if ((ours == 0) != want) {
				printf("y mismatch: %s ours=%d (%s)\n", name,
				       ours, err ? err : "");
				bad++;
			}
			if (theirs != jwant) {
				printf("y jansson mismatch: %s jansson=%d\n",
				       name, theirs);
				bad++;
			}
		} else if (name[0] == 'n') {
			nn++;
			if (ours == 0) {
				printf("n accepted: %s\n", name);
				bad++;
			}
		} else if (name[0] == 'i') {
			size_t k, n = sizeof(i_choices) / sizeof(i_choices[0]);

			ni++;
			for (k = 0; k < n; k++)
				if (strcmp(i_choices[k].file, name) == 0)
					break;
			if (k == n) {
				printf("i file without a recorded choice: %s\n",
				       name);
				bad++;
			} else if ((ours == 0) != i_choices[k].accept) {
				printf("i mismatch: %s ours=%d (%s)\n", name,
				       ours, err ? err : "");
				bad++;
			}
		}
	}
	closedir(d);
	printf("JSONTestSuite: %u y, %u n, %u i files\n", ny, nn, ni);
	assert_true(ny > 90 && nn > 180 &&
	            ni == sizeof(i_choices) / sizeof(i_choices[0]));
	assert_int_equal(bad, 0);
}

/* ---- explicit cases ---- */

static void
test_subject_basics(void **state)
{
	struct spec_buf sb;
	const struct scan_spec *s = mkspec(&sb, 0, "/author_id", NULL);

	expect_subjects(s, "{\"author_id\":\"u1\",\"text\":\"hi\"}", "u1",
	                NULL);
	/* the number 123 and the string "123" are the same subject */
	expect_subjects(s, "{\"author_id\":123}", "123", NULL);
	expect_subjects(s, "{\"author_id\":\"123\"}", "123", NULL);
	expect_subjects(s, "{\"author_id\":-42}", "-42", NULL);
	expect_subjects(s, " {\"author_id\" : 0 } ", "0", NULL);
	/* beyond 64 bits: exact text, never converted */
	/* a double holds every integer up to 2^53 exactly, and no more:
	 * beyond it readers round to another id, so it must come quoted */
	expect_subjects(s, "{\"author_id\":9007199254740992}",
	                "9007199254740992", NULL);
	expect_subjects(s, "{\"author_id\":-9007199254740992}",
	                "-9007199254740992", NULL);
	expect_refused(s, "{\"author_id\":9007199254740993}", "beyond 2^53");
	expect_refused(s, "{\"author_id\":-9007199254740993}", "beyond 2^53");
	expect_refused(s, "{\"author_id\":18446744073709551617}",
	               "send it as a JSON string, on a route with "
	               "\"subject_ids\": \"text\"");
	expect_refused(s, "{\"author_id\":123456789012345678901234567890}",
	               "beyond 2^53");
	expect_refused(s, "{\"author_id\":-0}", "-0");
	/* quoted, pandas would still round it (see test_reader_safety) */
	expect_refused(s, "{\"author_id\":\"9007199254740993\"}", "pandas");
	/* escapes are decoded */
	expect_subjects(s, "{\"author_id\":\"a\\u00e9\\n\\/\\\"\"}",
	                "a\xc3\xa9\n/\"", NULL);
	expect_subjects(s, "{\"author_id\":\"\\ud83d\\ude00\"}",
	                "\xf0\x9f\x98\x80", NULL);
	/* no subject: an unknown person, not an error */
	expect_subjects(s, "{\"text\":\"hi\"}", NULL);
	expect_subjects(s, "{}", NULL);
	/* a record that is not an object has no subject */
	expect_subjects(s, "[{\"author_id\":1}]", NULL);
	expect_subjects(s, "\"author_id\"", NULL);
	expect_subjects(s, "17", NULL);
	/* nested decoys are not the subject and not duplicates */
	expect_subjects(s, "{\"x\":{\"author_id\":1},\"author_id\":2}", "2",
	                NULL);
	expect_subjects(s, "{\"x\":[{\"author_id\":1}],\"author_idx\":3}",
	                NULL);
}

static void
test_subject_types(void **state)
{
	struct spec_buf sb;
	const struct scan_spec *s = mkspec(&sb, 0, "/author_id", NULL);

	expect_refused(s, "{\"author_id\":1.5}", "not an integer");
	expect_refused(s, "{\"author_id\":1e3}", "not an integer");
	expect_refused(s, "{\"author_id\":1E+3}", "not an integer");
	expect_refused(s, "{\"author_id\":10.0}", "not an integer");
	expect_refused(s, "{\"author_id\":true}", "not a string or an integer");
	expect_refused(s, "{\"author_id\":false}",
	               "not a string or an integer");
	expect_refused(s, "{\"author_id\":null}", "not a string or an integer");
	expect_refused(s, "{\"author_id\":{\"id\":1}}",
	               "not a string or an integer");
	expect_refused(s, "{\"author_id\":[1]}", "not a string or an integer");
	expect_refused(s, "{\"author_id\":\"\"}", "empty");
	expect_refused(s, "{\"author_id\":\"a\\u0000b\"}", "NUL");

	/* length: CG_MAX_SUBJECT_LEN bytes fit, one more does not */
	char big[CG_MAX_SUBJECT_LEN + 64];
	int n = snprintf(big, sizeof(big), "{\"author_id\":\"");
	memset(big + n, 'x', CG_MAX_SUBJECT_LEN);
	strcpy(big + n + CG_MAX_SUBJECT_LEN, "\"}");
	assert_int_equal(scan_str(s, big, &(const char *){NULL}), 0);
	assert_int_equal(rec.subjects[0].len, CG_MAX_SUBJECT_LEN);
	memset(big + n, 'x', CG_MAX_SUBJECT_LEN + 1);
	strcpy(big + n + CG_MAX_SUBJECT_LEN + 1, "\"}");
	expect_refused(s, big, "too long");
	/* the limit is on decoded bytes: escapes that decode to too many */
	char esc[CG_MAX_SUBJECT_LEN * 6 + 64];
	n = snprintf(esc, sizeof(esc), "{\"author_id\":\"");
	for (int i = 0; i < CG_MAX_SUBJECT_LEN / 2 + 1; i++)
		n += snprintf(esc + n, sizeof(esc) - (size_t)n, "\\u00e9");
	strcpy(esc + n, "\"}");
	expect_refused(s, esc, "too long");
}

static void
test_ambiguity(void **state)
{
	struct spec_buf sb;
	const struct scan_spec *s = mkspec(&sb, 0, "/author_id", NULL);

	expect_refused(s, "{\"author_id\":1,\"author_id\":2}", "duplicate");
	expect_refused(s, "{\"author_id\":1,\"author_id\":1}", "duplicate");
	/* one spelling with \u escapes */
	expect_refused(s, "{\"author_id\":1,\"\\u0061uthor_id\":2}",
	               "ambiguous");
	expect_refused(s, "{\"author\\u005fid\":1,\"author_id\":2}",
	               "ambiguous");
	/* escapes alone are fine: it is the same member name */
	expect_subjects(s, "{\"\\u0061uthor_id\":\"u7\"}", "u7", NULL);
	/* case variants, with or without the exact one */
	expect_refused(s, "{\"author_id\":1,\"Author_ID\":2}", "ambiguous");
	expect_refused(s, "{\"AUTHOR_ID\":2,\"author_id\":1}", "ambiguous");
	expect_refused(s, "{\"Author_id\":2}", "ambiguous");
	expect_refused(s, "{\"\\u0041uthor_id\":2}", "ambiguous");
	/* Unicode case folding that lands on ASCII (Go's decoder does it) */
	s = mkspec(&sb, 0, "/sk", NULL);
	expect_refused(s, "{\"\xc5\xbf\xe2\x84\xaa\":1}", "ambiguous");
	/* and the other way: a locator's first letter not ASCII, a record's
	   member name in ASCII (the first-letter filter must let it by) */
	s = mkspec(&sb, 0, "/\xc5\xbfx", NULL);
	expect_refused(s, "{\"a\":1,\"SX\":1}", "ambiguous");
	/* every locator's first letter counts, not only the first's */
	s = mkspec(&sb, 0, "/author_id", "/mentions/*/id");
	expect_refused(s, "{\"author_id\":1,\"Mentions\":[]}", "ambiguous");
	expect_refused(s, "{\"MENTIONS\":[],\"author_id\":1}", "ambiguous");
	s = mkspec(&sb, 0, "/author_id", NULL);
	/* the subject member appears with a different value type */
	expect_refused(s, "{\"author_id\":\"1\",\"author_id\":{\"x\":1}}",
	               "duplicate");
	/* a NUL in a member name is refused everywhere */
	expect_refused(s, "{\"author_id\\u0000x\":1}", "NUL");
	expect_refused(s, "{\"x\":{\"a\\u0000\":1}}", "NUL");
	/* duplicates off the subject paths are not our business */
	expect_subjects(s, "{\"a\":1,\"a\":2,\"author_id\":3}", "3", NULL);
	expect_subjects(s,
	                "{\"x\":{\"author_id\":1,\"author_id\":2},"
	                "\"author_id\":3}",
	                "3", NULL);
}

static void
test_nested_and_wildcards(void **state)
{
	struct spec_buf sb;
	const struct scan_spec *s =
	    mkspec(&sb, 0, "/author_id", "/mentions/*/id");

	expect_subjects(s,
	                "{\"author_id\":1,\"mentions\":[{\"id\":2},"
	                "{\"id\":\"b\"},{\"x\":1}]}",
	                "1", "2", "b", NULL);
	/* document order */
	expect_subjects(s, "{\"mentions\":[{\"id\":2}],\"author_id\":1}", "2",
	                "1", NULL);
	expect_subjects(s, "{\"mentions\":[],\"author_id\":1}", "1", NULL);
	/* a duplicate inside one mention */
	expect_refused(s, "{\"mentions\":[{\"id\":2,\"id\":3}]}", "duplicate");
	expect_refused(s, "{\"mentions\":[{\"ID\":2}]}", "ambiguous");
	/* the same id in two mentions is two subjects, not a duplicate */
	expect_subjects(s, "{\"mentions\":[{\"id\":2},{\"id\":2}]}", "2", "2",
	                NULL);
	/* mentions twice, or in another case */
	expect_refused(s, "{\"mentions\":[],\"mentions\":[{\"id\":1}]}",
	               "duplicate");
	expect_refused(s, "{\"Mentions\":[{\"id\":1}]}", "ambiguous");
	/* wrong intermediate types */
	expect_refused(s, "{\"mentions\":{\"id\":1}}", "expects an array");
	expect_refused(s, "{\"mentions\":\"x\"}", "locator expects");
	expect_refused(s, "{\"mentions\":null}", "locator expects");
	expect_refused(s, "{\"mentions\":[1]}", "locator expects");
	expect_refused(s, "{\"mentions\":[[{\"id\":1}]]}", "expects an object");
	expect_refused(s, "{\"mentions\":[{\"id\":1.5}]}", "not an integer");
	/* nested decoys deeper down */
	expect_subjects(s, "{\"mentions\":[{\"u\":{\"id\":9},\"id\":1}]}", "1",
	                NULL);

	s = mkspec(&sb, 0, "/user/profile/id", "/thread/1/author");
	expect_subjects(s,
	                "{\"user\":{\"profile\":{\"id\":\"p\"}},"
	                "\"thread\":[{\"author\":\"a0\"},{\"author\":\"a1\"}]}",
	                "p", "a1", NULL);
	expect_subjects(s, "{\"thread\":{\"1\":{\"author\":\"x\"}}}", "x",
	                NULL);
	expect_refused(s, "{\"user\":{\"profile\":{\"id\":1},\"Profile\":{}}}",
	               "ambiguous");
	expect_refused(s, "{\"user\":[]}", "expects an object");

	/* too many subjects */
	char buf[4096];
	int n;

	s = mkspec(&sb, 0, "/mentions/*/id", NULL);
	n = snprintf(buf, sizeof(buf), "{\"mentions\":[");
	for (int i = 0; i < CG_MAX_SUBJECTS; i++)
		n += snprintf(buf + n, sizeof(buf) - (size_t)n, "%s{\"id\":%d}",
		              i ? "," : "", i);
	strcpy(buf + n, "]}");
	assert_int_equal(scan_str(s, buf, &(const char *){NULL}), 0);
	assert_int_equal(rec.nsubjects, CG_MAX_SUBJECTS);
	assert_int_equal(rec.subjects[CG_MAX_SUBJECTS - 1].len, 2);
	assert_memory_equal(rec.subjects[CG_MAX_SUBJECTS - 1].ptr, "31", 2);
	strcpy(buf + n, ",{\"id\":99}]}");
	expect_refused(s, buf, "too many subjects");
}

static void
test_syntax(void **state)
{
	struct spec_buf sb;
	const struct scan_spec *s = mkspec(&sb, 0, "/author_id", NULL);

	/* UTF-8 */
	expect_subjects(s,
	                "{\"t\":\"caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x98\x80 "
	                "\xf4\x8f\xbf\xbf\"}",
	                NULL);
	expect_refused(s, "{\"t\":\"\xc0\xaf\"}", "UTF-8");     /* overlong */
	expect_refused(s, "{\"t\":\"\xe0\x80\xaf\"}", "UTF-8"); /* overlong */
	expect_refused(s, "{\"t\":\"\xed\xa0\x80\"}", "UTF-8"); /* surrogate */
	expect_refused(s, "{\"t\":\"\xf4\x90\x80\x80\"}",
	               "UTF-8"); /* > U+10FFFF */
	expect_refused(s, "{\"t\":\"\x80\"}", "UTF-8");
	expect_refused(s, "{\"t\":\"\xc3\"}", "UTF-8");
	expect_refused(s, "{\"t\":\"\xff\"}", "UTF-8");
	/* the same inside long strings (the 16-byte path) */
	expect_refused(
	    s, "{\"t\":\"0123456789abcdef0123\xc3\x28xyz0123456789abcdef\"}",
	    "UTF-8");
	expect_refused(s, "{\"t\":\"0123456789abcdef012345678901234\xe6\x97\"}",
	               "UTF-8");
	/* surrogates in escapes */
	expect_refused(s, "{\"t\":\"\\ud800\"}", "surrogate");
	expect_refused(s, "{\"t\":\"\\udc00\\ud800\"}", "surrogate");
	expect_refused(s, "{\"t\":\"\\ud800\\u0041\"}", "surrogate");
	expect_refused(s, "{\"t\":\"\\ud800x\"}", "surrogate");
	expect_refused(s, "{\"t\":\"\\u12\"}", "\\u escape");
	expect_refused(s, "{\"t\":\"\\x\"}", "invalid escape");
	expect_refused(s, "{\"t\":\"a\tb\"}", "control character");
	expect_refused(s, "{\"t\":\"a\nb\"}", "control character");
	/* numbers */
	expect_refused(s, "{\"n\":01}", "");
	expect_refused(s, "{\"n\":+1}", "unexpected character");
	expect_refused(s, "{\"n\":.5}", "unexpected character");
	expect_refused(s, "{\"n\":1.}", "invalid number");
	expect_refused(s, "{\"n\":1e}", "invalid number");
	expect_refused(s, "{\"n\":-}", "invalid number");
	expect_refused(s, "{\"n\":0x1}", "");
	expect_subjects(s, "{\"n\":[0,-0,1.5e-7,2E+3,-0.0,1e9]}", NULL);
	/* structure */
	expect_refused(s, "{\"a\":1,}", "member name");
	expect_refused(s, "[1,]", "unexpected character");
	expect_refused(s, "{\"a\" 1}", "':'");
	expect_refused(s, "{\"a\":1} x", "after the JSON value");
	expect_refused(s, "{\"a\":1}{}", "after the JSON value");
	expect_refused(s, "\xef\xbb\xbf{}", "unexpected character");
	expect_refused(s, "", "end of input");
	expect_refused(s, "  ", "end of input");
	expect_refused(s, "nul", "invalid literal");
	/* a raw NUL after the value (jansson stops reading there) */
	const char *err;
	assert_int_equal(scan_record(s, "0\0", 2, &rec, &err), -1);
	assert_int_equal(scan_record(s, "{}\0", 3, &rec, &err), -1);
	assert_int_equal(scan_record(s, "\"a\0\"", 4, &rec, &err), -1);
	expect_refused(s, "{\"author_id\":\"abc", "unterminated");
	/* every truncation of a valid record is refused */
	const char *full = "{\"author_id\":\"u\\u00e9\",\"m\":[1,{\"x\":null}],"
	                   "\"t\":true,\"n\":-1.5e3}";
	for (size_t k = 0; k < strlen(full); k++) {
		if (scan_record(s, full, k, &rec, &err) == 0)
			fail_msg("accepted a truncation at %zu", k);
	}
	expect_subjects(s, full, "u\xc3\xa9", NULL);
}

static void
test_depth(void **state)
{
	struct spec_buf sb;
	const struct scan_spec *s = mkspec(&sb, 0, "/author_id", NULL);
	char buf[2 * 1100 + 2];
	const char *err;

	/* CG_DEFAULT_MAX_DEPTH containers pass, one more does not */
	for (unsigned d = CG_DEFAULT_MAX_DEPTH; d <= CG_DEFAULT_MAX_DEPTH + 1;
	     d++) {
		memset(buf, '[', d);
		memset(buf + d, ']', d);
		buf[2 * d] = '\0';
		assert_int_equal(scan_str(s, buf, &err),
		                 d <= CG_DEFAULT_MAX_DEPTH ? 0 : -1);
	}
	assert_non_null(strstr(err, "nesting"));
	/* the limit is configurable */
	s = mkspec(&sb, 3, "/author_id", NULL);
	expect_subjects(s, "{\"a\":{\"b\":[]},\"author_id\":1}", "1", NULL);
	expect_refused(s, "{\"a\":{\"b\":[{}]},\"author_id\":1}", "nesting");
	/* huge values are capped, not trusted */
	s = mkspec(&sb, 1000000, "/author_id", NULL);
	memset(buf, '[', 1100);
	memset(buf + 1100, ']', 1100);
	buf[2200] = '\0';
	expect_refused(s, buf, "nesting");
}

/* ---- iterators ---- */

static void
test_ndjson(void **state)
{
	struct spec_buf sb;
	const struct scan_spec *s = mkspec(&sb, 0, "/author_id", NULL);
	struct scan_iter it;
	const char *body = "{\"author_id\":1}\r\n"
	                   "\r\n"
	                   "   \n"
	                   "\t{\"author_id\":\"b\"} \r\n"
	                   "[1,2]\n"
	                   "{\"x\":1}";
	size_t want[][2] = {{0, 15}, {24, 41}, {44, 49}, {50, 57}};

	scan_iter_init(&it, s, SCAN_FORMAT_NDJSON, NULL, body, strlen(body));
	for (unsigned i = 0; i < 4; i++) {
		assert_int_equal(scan_iter_next(&it, &rec), 1);
		assert_int_equal(rec.start, want[i][0]);
		assert_int_equal(rec.end, want[i][1]);
		assert_int_equal(it.index, i + 1);
	}
	assert_memory_equal(body + 24, "{\"author_id\":\"b\"}", 17);
	assert_int_equal(scan_iter_next(&it, &rec), 0);
	assert_int_equal(scan_iter_next(&it, &rec), 0);

	/* a value split over two lines is two bad records */
	body = "{\"author_id\":1}\n{\"a\":\n1}\n";
	scan_iter_init(&it, s, SCAN_FORMAT_NDJSON, NULL, body, strlen(body));
	assert_int_equal(scan_iter_next(&it, &rec), 1);
	assert_int_equal(scan_iter_next(&it, &rec), -1);
	assert_int_equal(it.index, 1);
	assert_int_equal(it.offset, 21);
	assert_non_null(strstr(it.error, "end of line"));
	assert_int_equal(scan_iter_next(&it, &rec), -1);

	/* error index and offset of a bad third record */
	body = "{}\n{}\n{\"author_id\":1,\"author_id\":2}\n{}\n";
	scan_iter_init(&it, s, SCAN_FORMAT_NDJSON, NULL, body, strlen(body));
	assert_int_equal(scan_iter_next(&it, &rec), 1);
	assert_int_equal(scan_iter_next(&it, &rec), 1);
	assert_int_equal(scan_iter_next(&it, &rec), -1);
	assert_int_equal(it.index, 2);
	assert_int_equal(it.offset, 21);
	assert_non_null(strstr(it.error, "duplicate"));

	/* a string cut by a line end; a second value on a line */
	body = "{\"author_id\":\"ab\n\"}\n";
	scan_iter_init(&it, s, SCAN_FORMAT_NDJSON, NULL, body, strlen(body));
	assert_int_equal(scan_iter_next(&it, &rec), -1);
	assert_int_equal(it.offset, 16);
	assert_non_null(strstr(it.error, "end of line"));
	body = "{} {}\n";
	scan_iter_init(&it, s, SCAN_FORMAT_NDJSON, NULL, body, strlen(body));
	assert_int_equal(scan_iter_next(&it, &rec), -1);
	assert_int_equal(it.offset, 3);
	assert_non_null(strstr(it.error, "after the JSON value"));
	/* a truncated last line without LF */
	body = "{}\n{\"a\":[1,";
	scan_iter_init(&it, s, SCAN_FORMAT_NDJSON, NULL, body, strlen(body));
	assert_int_equal(scan_iter_next(&it, &rec), 1);
	assert_int_equal(scan_iter_next(&it, &rec), -1);
	assert_int_equal(it.index, 1);
	assert_int_equal(it.offset, strlen(body));
	assert_non_null(strstr(it.error, "end of input"));

	/* a CR not directly before LF is a line end to CR-splitting
	 * readers: refused inside a record, between records and on blank
	 * lines; CRLF is one line end */
	body = "{\"author_id\":\r1}";
	scan_iter_init(&it, s, SCAN_FORMAT_NDJSON, NULL, body, strlen(body));
	assert_int_equal(scan_iter_next(&it, &rec), -1);
	assert_non_null(strstr(it.error, "carriage return"));
	body = "{\"author_id\":\"1001\",\"q\":\r{\"author_id\":\"1002\"}\r}\n";
	scan_iter_init(&it, s, SCAN_FORMAT_NDJSON, NULL, body, strlen(body));
	assert_int_equal(scan_iter_next(&it, &rec), -1);
	assert_int_equal(it.offset, 24);
	body = "{\"author_id\":1}\r\r\n";
	scan_iter_init(&it, s, SCAN_FORMAT_NDJSON, NULL, body, strlen(body));
	assert_int_equal(scan_iter_next(&it, &rec), -1);
	body = "{\"author_id\":1} \r\n\r\n{\"author_id\":2}\r";
	scan_iter_init(&it, s, SCAN_FORMAT_NDJSON, NULL, body, strlen(body));
	assert_int_equal(scan_iter_next(&it, &rec), 1);
	assert_int_equal(scan_iter_next(&it, &rec), 1);
	assert_int_equal(scan_iter_next(&it, &rec), 0);
	/* raw Unicode line ends break NDJSON records in splitlines */
	body = "{\"author_id\":1,\"t\":\"a\xe2\x80\xa8"
	       "b\"}\n";
	scan_iter_init(&it, s, SCAN_FORMAT_NDJSON, NULL, body, strlen(body));
	assert_int_equal(scan_iter_next(&it, &rec), -1);
	assert_non_null(strstr(it.error, "U+2028"));
	body = "{\"author_id\":1,\"t\":\"a\xc2\x85\"}";
	scan_iter_init(&it, s, SCAN_FORMAT_NDJSON, NULL, body, strlen(body));
	assert_int_equal(scan_iter_next(&it, &rec), -1);
	body = "{\"author_id\":1,\"t\":\"a\\u2028\xe2\x80\xaa\xc2\x86"
	       "\"}";
	scan_iter_init(&it, s, SCAN_FORMAT_NDJSON, NULL, body, strlen(body));
	assert_int_equal(scan_iter_next(&it, &rec), 1);
	/* empty body: no records */
	scan_iter_init(&it, s, SCAN_FORMAT_NDJSON, NULL, "", 0);
	assert_int_equal(scan_iter_next(&it, &rec), 0);
	assert_int_equal(it.index, 0);
}

static void
test_object_format(void **state)
{
	struct spec_buf sb;
	const struct scan_spec *s = mkspec(&sb, 0, "/author_id", NULL);
	struct scan_iter it;
	const char *body = " \n{\"author_id\":\"z\"}\n";

	scan_iter_init(&it, s, SCAN_FORMAT_OBJECT, NULL, body, strlen(body));
	assert_int_equal(scan_iter_next(&it, &rec), 1);
	assert_int_equal(rec.start, 2);
	assert_int_equal(rec.end, 19);
	assert_int_equal(rec.nsubjects, 1);
	assert_int_equal(scan_iter_next(&it, &rec), 0);

	body = "[{\"author_id\":\"z\"}]";
	scan_iter_init(&it, s, SCAN_FORMAT_OBJECT, NULL, body, strlen(body));
	assert_int_equal(scan_iter_next(&it, &rec), -1);
	assert_non_null(strstr(it.error, "not a JSON object"));
	body = "{}\n{}";
	scan_iter_init(&it, s, SCAN_FORMAT_OBJECT, NULL, body, strlen(body));
	assert_int_equal(scan_iter_next(&it, &rec), -1);
	assert_int_equal(it.offset, 3);
}

static void
test_array_format(void **state)
{
	struct spec_buf sb;
	const struct scan_spec *s =
	    mkspec(&sb, 0, "/author_id", "/mentions/*/id");
	struct scan_iter it;
	const char *body = " [ {\"author_id\":1} ,\n{\"author_id\":\"x\"},7 ] ";

	scan_iter_init(&it, s, SCAN_FORMAT_ARRAY, NULL, body, strlen(body));
	assert_int_equal(scan_iter_next(&it, &rec), 1);
	assert_int_equal(rec.start, 3);
	assert_int_equal(rec.end, 18);
	assert_int_equal(scan_iter_next(&it, &rec), 1);
	assert_int_equal(rec.start, 21);
	assert_int_equal(rec.end, 38);
	assert_memory_equal(rec.subjects[0].ptr, "x", 1);
	assert_int_equal(scan_iter_next(&it, &rec), 1);
	assert_int_equal(rec.start, 39);
	assert_int_equal(rec.end, 40);
	assert_int_equal(rec.nsubjects, 0);
	assert_int_equal(scan_iter_next(&it, &rec), 0);
	assert_int_equal(it.array_open, 1);
	assert_int_equal(it.array_close, 41);
	assert_int_equal(it.index, 3);

	/* empty array */
	scan_iter_init(&it, s, SCAN_FORMAT_ARRAY, NULL, "[ ]", 3);
	assert_int_equal(scan_iter_next(&it, &rec), 0);
	assert_int_equal(it.array_open, 0);
	assert_int_equal(it.array_close, 2);

	/* errors: trailing comma, garbage after, not an array, bad record */
	const struct {
		const char *body;
		unsigned records;
		size_t offset;
		const char *what;
	} bad[] = {
	    {"[{},]", 1, 4, "unexpected character"},
	    {"[{}] x", 1, 5, "after the JSON value"},
	    {"[{}][]", 1, 4, "after the JSON value"},
	    {"{\"a\":[]}", 0, 0, "not a JSON array"},
	    {"[{} {}]", 1, 4, "expected ','"},
	    {"[{},{\"author_id\":1.5}]", 1, 17, "not an integer"},
	    {"[{\"mentions\":{}}]", 0, 13, "expects an array"},
	    {"[{\"author_id\":[]}]", 0, 14, "not a string"},
	    {"[{\"author_id\":\"\"}]", 0, 14, "empty"},
	    {"[{\"author_id\":null}]", 0, 14, "not a string"},
	    {"[{\"Author_id\":1}]", 0, 2, "ambiguous"},
	    {"[{}", 1, 3, "end of input"},
	    {"", 0, 0, "not a JSON array"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r;
		unsigned n = 0;

		scan_iter_init(&it, s, SCAN_FORMAT_ARRAY, NULL, bad[i].body,
		               strlen(bad[i].body));
		while ((r = scan_iter_next(&it, &rec)) == 1)
			n++;
		if (r != -1 || n != bad[i].records ||
		    it.index != bad[i].records || it.offset != bad[i].offset ||
		    strstr(it.error, bad[i].what) == NULL)
			fail_msg("%s: r=%d n=%u index=%u offset=%zu error=%s",
			         bad[i].body, r, n, it.index, it.offset,
			         it.error ? it.error : "");
	}
}

static void
test_array_at_format(void **state)
{
	struct spec_buf sb;
	const struct scan_spec *s = mkspec(&sb, 0, "/author_id", NULL);
	struct jsonptr at;
	struct scan_iter it;
	const char *err;
	const char *body =
	    "{\"meta\":{\"data\":[9]},\"batch\":{\"n\":2,\"data\":"
	    "[{\"author_id\":1}, {\"author_id\":2}],\"z\":[{}]},"
	    "\"tail\":\"data\"}";

	assert_int_equal(jsonptr_parse("/batch/data", 11, &at, &err), 0);
	scan_iter_init(&it, s, SCAN_FORMAT_ARRAY_AT, &at, body, strlen(body));
	assert_int_equal(scan_iter_next(&it, &rec), 1);
	assert_memory_equal(body + rec.start, "{\"author_id\":1}", 15);
	assert_int_equal(rec.end - rec.start, 15);
	assert_int_equal(rec.start, 44);
	assert_int_equal(scan_iter_next(&it, &rec), 1);
	assert_int_equal(rec.start, 61);
	assert_memory_equal(rec.subjects[0].ptr, "2", 1);
	assert_int_equal(scan_iter_next(&it, &rec), 0);
	assert_int_equal(it.array_open, 43);
	assert_int_equal(body[it.array_open], '[');
	assert_int_equal(it.array_close, 76);
	assert_int_equal(body[it.array_close], ']');

	const struct {
		const char *body;
		unsigned records;
		const char *what;
	} bad[] = {
	    /* the records member twice, or in another case */
	    {"{\"batch\":{\"data\":[{}],\"data\":[]}}", 1, "duplicate"},
	    {"{\"batch\":{\"data\":[{}]},\"batch\":{}}", 1, "duplicate"},
	    {"{\"batch\":{\"Data\":[],\"data\":[{}]}}", 0, "case"},
	    {"{\"batch\":{\"data\":[{}],\"DATA\":[]}}", 1, "duplicate"},
	    {"{\"batch\":{\"dat\\u0061\":[{}],\"data\":[]}}", 1, "duplicate"},
	    /* missing or of the wrong type */
	    {"{\"batch\":{\"n\":[]}}", 0, "not found"},
	    {"{\"batch\":[]}", 0, "not found"},
	    {"{\"batch\":{\"data\":{}}}", 0, "not an array"},
	    {"[]", 0, "not a JSON object"},
	    /* the rest of the document is validated */
	    {"{\"batch\":{\"data\":[{}],\"x\":01}}", 1, ""},
	    {"{\"batch\":{\"data\":[{}]}} {}", 1, "after the JSON value"},
	    {"{\"x\":tru,\"batch\":{\"data\":[{}]}}", 0, "invalid literal"},
	    {"{\"batch\":{\"data\":[{}]}", 1, "end of input"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r;
		unsigned n = 0;

		scan_iter_init(&it, s, SCAN_FORMAT_ARRAY_AT, &at, bad[i].body,
		               strlen(bad[i].body));
		while ((r = scan_iter_next(&it, &rec)) == 1)
			n++;
		if (r != -1 || n != bad[i].records ||
		    strstr(it.error, bad[i].what) == NULL)
			fail_msg("%s: r=%d n=%u error=%s", bad[i].body, r, n,
			         it.error ? it.error : "");
		assert_true(it.offset <= strlen(bad[i].body));
	}
}

/* ---- differential against jansson ---- */

struct gen {
	char buf[8192];
	size_t n;
};

static void
put(struct gen *g, const char *s)
{
	size_t l = strlen(s);

	if (g->n + l < sizeof(g->buf)) {
		memcpy(g->buf + g->n, s, l);
		g->n += l;
	}
}

static void
gen_string(struct gen *g)
{
	static const char *const parts[] = {
	    "a",
	    "b",
	    "Z",
	    "0",
	    " ",
	    "\\\"",
	    "\\\\",
	    "\\/",
	    "\\n",
	    "\\t",
	    "\\u00e9",
	    "\\u0000",
	    "\\ud83d\\ude00",
	    "\xc3\xa9",
	    "\xe6\x97\xa5",
	    "\xf0\x9f\x98\x80",
	    "id",
	    "author_id",
	};
	unsigned n = rnd(6);

	put(g, "\"");
	for (unsigned i = 0; i < n; i++)
		put(g, parts[rnd(sizeof(parts) / sizeof(parts[0]))]);
	put(g, "\"");
}

static void
gen_number(struct gen *g)
{
	static const char *const nums[] = {
	    "0",   "7",       "-3",   "123456",           "-0",
	    "1.5", "-2.25e3", "1E+2", "9007199254740993", "0.001",
	    "42",
	};
	put(g, nums[rnd(sizeof(nums) / sizeof(nums[0]))]);
}

static void gen_value(struct gen *g, int depth);

static const char *const keys[] = {
    "author_id", "mentions",        "id", "text",           "x",    "user",
    "Author_ID", "author\\u005fid", "ID", "m\\u0065ntions", "lang", "n",
};

static void
gen_object(struct gen *g, int depth, bool root)
{
	unsigned n = rnd(5);

	put(g, "{");
	if (root && rnd(4) != 0) {
		put(g, "\"author_id\":");
		if (rnd(3) == 0)
			gen_number(g);
		else if (rnd(8) == 0)
			gen_value(g, depth + 1);
		else
			gen_string(g);
		if (n > 0)
			put(g, ",");
	}
	for (unsigned i = 0; i < n; i++) {
		unsigned k = rnd(sizeof(keys) / sizeof(keys[0]));

		if (i > 0)
			put(g, ",");
		put(g, "\"");
		/* rare keys (variants) less often */
		put(g, keys[k >= 6 && rnd(3) != 0 ? rnd(6) : k]);
		put(g, "\":");
		if (strcmp(keys[k], "mentions") == 0 && rnd(4) != 0) {
			unsigned m = rnd(4);

			put(g, "[");
			for (unsigned j = 0; j < m; j++) {
				put(g, j ? ",{\"id\":" : "{\"id\":");
				if (rnd(2))
					gen_number(g);
				else
					gen_string(g);
				put(g, rnd(3) == 0 ? ",\"x\":1}" : "}");
			}
			put(g, "]");
		} else {
			gen_value(g, depth + 1);
		}
	}
	put(g, "}");
}

static void
gen_value(struct gen *g, int depth)
{
	unsigned k = rnd(depth > 4 ? 6 : 9);

	switch (k) {
	case 0:
	case 1:
		gen_string(g);
		break;
	case 2:
	case 3:
		gen_number(g);
		break;
	case 4:
		put(g, "true");
		break;
	case 5:
		put(g, rnd(2) ? "null" : "false");
		break;
	case 6:
	case 7:
		gen_object(g, depth, false);
		break;
	default: {
		unsigned n = rnd(4);

		put(g, "[");
		for (unsigned i = 0; i < n; i++) {
			if (i > 0)
				put(g, ",");
			gen_value(g, depth + 1);
		}
		put(g, "]");
	}
	}
	if (rnd(8) == 0)
		put(g, " ");
}

static void
mutate(struct gen *g)
{
	static const char bytes[] =
	    "\"\\{}[],:0-e.+ uaE1\x80\xc3\xed\xf4\xff\t";
	unsigned ops = 1 + rnd(3);

	for (unsigned o = 0; o < ops && g->n > 0; o++) {
		size_t at = rnd((uint32_t)g->n);

		switch (rnd(4)) {
		case 0:
			g->buf[at] = bytes[rnd(sizeof(bytes) - 1)];
			break;
		case 1:
			memmove(g->buf + at, g->buf + at + 1, g->n - at - 1);
			g->n--;
			break;
		case 2:
			if (g->n + 1 < sizeof(g->buf)) {
				memmove(g->buf + at + 1, g->buf + at,
				        g->n - at);
				g->buf[at] = bytes[rnd(sizeof(bytes) - 1)];
				g->n++;
			}
			break;
		default: {
			/* copy a span elsewhere: duplicates members */
			size_t len = 1 + rnd(12), to = rnd((uint32_t)g->n);

			if (at + len <= g->n && g->n + len < sizeof(g->buf)) {
				char tmp[16];

				memcpy(tmp, g->buf + at, len);
				memmove(g->buf + to + len, g->buf + to,
				        g->n - to);
				memcpy(g->buf + to, tmp, len);
				g->n += len;
			}
		}
		}
	}
}

struct expect {
	char ids[CG_MAX_SUBJECTS + 8][CG_MAX_SUBJECT_LEN + 32];
	unsigned n;
	bool must_refuse;
};

static bool
case_variant(const char *k, const char *tok)
{
	return strcasecmp(k, tok) == 0 && strcmp(k, tok) != 0;
}

/* What jansson's tree says the subjects are, or that we must refuse. */
static void
expect_from(json_t *v, const char *tok, struct expect *e)
{
	size_t len;

	if (json_is_string(v)) {
		len = json_string_length(v);
		if (len == 0 || len > CG_MAX_SUBJECT_LEN ||
		    memchr(json_string_value(v), '\0', len) != NULL) {
			e->must_refuse = true;
			return;
		}
		if (e->n < CG_MAX_SUBJECTS + 8) {
			memcpy(e->ids[e->n], json_string_value(v), len);
			e->ids[e->n][len] = '\0';
			/* -0 is compared as 0 on both sides (see same_id) */
			if (strcmp(e->ids[e->n], "-0") == 0)
				strcpy(e->ids[e->n], "0");
			e->n++;
		}
	} else if (json_is_integer(v)) {
		if (e->n < CG_MAX_SUBJECTS + 8)
			snprintf(e->ids[e->n++], sizeof(e->ids[0]), "%lld",
			         (long long)json_integer_value(v));
	} else {
		(void)tok;
		e->must_refuse = true;
	}
}

static void
jansson_subjects(json_t *root, struct expect *e)
{
	const char *k;
	json_t *v;

	memset(e, 0, sizeof(*e));
	if (!json_is_object(root))
		return;
	json_object_foreach(root, k, v)
	{
		if (case_variant(k, "author_id") || case_variant(k, "mentions"))
			e->must_refuse = true;
	}
	if ((v = json_object_get(root, "author_id")) != NULL)
		expect_from(v, "author_id", e);
	if ((v = json_object_get(root, "mentions")) != NULL) {
		size_t i;
		json_t *m;

		if (!json_is_array(v)) {
			e->must_refuse = true;
			return;
		}
		json_array_foreach(v, i, m)
		{
			json_t *id;

			if (!json_is_object(m)) {
				e->must_refuse = true;
				continue;
			}
			json_object_foreach(m, k, id)
			{
				if (case_variant(k, "id"))
					e->must_refuse = true;
			}
			if ((id = json_object_get(m, "id")) != NULL)
				expect_from(id, "id", e);
		}
	}
	if (e->n > CG_MAX_SUBJECTS)
		e->must_refuse = true;
}

/* Our subject text equals jansson's value: exact for strings, by value for
 * integers (we keep the text as written, e.g. "-0"). */
static bool
same_id(struct cg_slice s, const char *want)
{
	char tmp[CG_MAX_SUBJECT_LEN + 1];

	if (s.len == strlen(want) && memcmp(s.ptr, want, s.len) == 0)
		return true;
	if (s.len < sizeof(tmp)) {
		char *end;

		memcpy(tmp, s.ptr, s.len);
		tmp[s.len] = '\0';
		return strcmp(want, "0") == 0 && strcmp(tmp, "-0") == 0 &&
		       strtoll(tmp, &end, 10) == 0;
	}
	return false;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(a, b);
}

static bool
subject_error(const char *err)
{
	return strncmp(err, "ambiguous", 9) == 0 ||
	       strncmp(err, "subject", 7) == 0 ||
	       strncmp(err, "too many subjects", 17) == 0;
}

struct diff_stats {
	unsigned total, both_ok, both_refused, we_refused_subject, skipped;
};

static void
differential_one(const struct scan_spec *spec, const char *doc, size_t len,
                 struct diff_stats *st)
{
	json_error_t je;
	json_t *j;
	const char *err = NULL;
	int ours = scan_record(spec, doc, len, &rec, &err);
	struct expect e;

	st->total++;
	/* a raw NUL is never valid JSON; jansson stops reading at one */
	if (memchr(doc, '\0', len) != NULL) {
		if (ours == 0)
			fail_msg("accepted a raw NUL: %.*s", (int)len, doc);
		st->both_refused++;
		return;
	}
	j = json_loadb(doc, len, JANSSON_FLAGS, &je);
	if (j == NULL && json_error_code(&je) == json_error_duplicate_key)
		j = json_loadb(doc, len,
		               JANSSON_FLAGS & ~JSON_REJECT_DUPLICATES, &je);
	if (j == NULL) {
		if (json_error_code(&je) == json_error_numeric_overflow) {
			st->skipped++;
			return;
		}
		if (ours == 0)
			fail_msg("jansson refuses (%s), we accept: %.*s",
			         je.text, (int)len, doc);
		st->both_refused++;
		return;
	}
	jansson_subjects(j, &e);
	json_decref(j);
	if (ours != 0) {
		/* NUL member names: jansson refuses them in keys with our
		 * flags, so this cannot be one; everything else must be a
		 * subject rule */
		if (!subject_error(err))
			fail_msg("jansson accepts, we refuse (%s): %.*s", err,
			         (int)len, doc);
		st->we_refused_subject++;
		return;
	}
	if (e.must_refuse)
		fail_msg("we accept an ambiguous record: %.*s", (int)len, doc);
	if (rec.nsubjects != e.n)
		fail_msg("%u subjects, jansson %u: %.*s", rec.nsubjects, e.n,
		         (int)len, doc);
	/* compare as sorted lists: we give document order */
	char ours_txt[CG_MAX_SUBJECTS][CG_MAX_SUBJECT_LEN + 32];
	for (unsigned i = 0; i < rec.nsubjects; i++) {
		memcpy(ours_txt[i], rec.subjects[i].ptr, rec.subjects[i].len);
		ours_txt[i][rec.subjects[i].len] = '\0';
		if (strcmp(ours_txt[i], "-0") == 0)
			strcpy(ours_txt[i], "0");
	}
	qsort(ours_txt, rec.nsubjects, sizeof(ours_txt[0]), cmp_str);
	qsort(e.ids, e.n, sizeof(e.ids[0]), cmp_str);
	for (unsigned i = 0; i < e.n; i++) {
		struct cg_slice s = {ours_txt[i], strlen(ours_txt[i])};

		if (!same_id(s, e.ids[i]))
			fail_msg("subject %s, jansson %s: %.*s", ours_txt[i],
			         e.ids[i], (int)len, doc);
	}
	st->both_ok++;
}

/* Iterate body in format and return the first refusal (NULL: accepted). */
static const char *
iter_error(const struct scan_spec *spec, enum scan_format fmt,
           const struct jsonptr *at, const char *body)
{
	struct scan_iter it;
	int n;

	scan_iter_init(&it, spec, fmt, at, body, strlen(body));
	while ((n = scan_iter_next(&it, &rec)) == 1)
		;
	return n < 0 ? it.error : NULL;
}

/*
 * What real pipeline readers would read as another record (issue 8): line
 * ends that only some readers split on, nested objects that a line reader
 * takes for records, decoy keys under Unicode folding, rounded ids.
 */
static void
test_reader_safety(void **state)
{
	struct spec_buf b;
	const struct scan_spec *s = mkspec(&b, 0, "/author_id", NULL);
	struct jsonptr at;
	const char *err;
	(void)state;

	/* CR only directly before LF, in every format */
	assert_non_null(iter_error(s, SCAN_FORMAT_OBJECT, NULL,
	                           "{\"author_id\":\"1001\",\"q\":\r"
	                           "{\"x\":1}}"));
	assert_non_null(strstr(
	    iter_error(s, SCAN_FORMAT_ARRAY, NULL, "[{\"author_id\":1}\r,{}]"),
	    "carriage return"));
	assert_null(iter_error(s, SCAN_FORMAT_ARRAY, NULL,
	                       "[\r\n{\"author_id\":1},\r\n{\"author_id\":2}"
	                       "\r\n]\r\n"));
	assert_int_equal(scan_str(s, "{\"author_id\":1}\r", &err), 0);
	assert_int_not_equal(scan_str(s, "{\"author_id\":\r1}", &err), 0);

	/* a nested object or array that starts a line is a record to a line
	 * reader: refused; pretty-printing that opens them at the end of the
	 * member's line is fine */
	err = iter_error(s, SCAN_FORMAT_OBJECT, NULL,
	                 "{\"author_id\":\"1001\",\"quoted\":\n"
	                 "{\"author_id\":\"1002\"}\n}");
	assert_non_null(err);
	assert_non_null(strstr(err, "alone on a line"));
	assert_non_null(iter_error(s, SCAN_FORMAT_OBJECT, NULL,
	                           "{\"author_id\":\"1001\",\"q\":\n"
	                           "  \t[{\"author_id\":\"1002\"}]}"));
	assert_null(
	    iter_error(s, SCAN_FORMAT_OBJECT, NULL,
	               "{\n  \"author_id\": \"1001\",\n  \"quoted\": {\n"
	               "    \"author_id\": \"1002\"\n  },\n"
	               "  \"tags\": [\n    \"a\",\n    1\n  ]\n}\n"));
	assert_null(
	    iter_error(s, SCAN_FORMAT_ARRAY, NULL,
	               "[\n  {\"author_id\": 1},\n  {\"author_id\": 2}\n]"));
	/* json.dumps(indent=2) of a record with an array of objects: each
	 * element spans lines, so no line holds a value of its own */
	assert_null(iter_error(s, SCAN_FORMAT_OBJECT, NULL,
	                       "{\n  \"author_id\": 1,\n  \"mentions\": [\n"
	                       "    {\n      \"id\": 2\n    },\n    {}\n"
	                       "  ]\n}"));
	assert_non_null(iter_error(s, SCAN_FORMAT_OBJECT, NULL,
	                           "{\n  \"author_id\": 1,\n  \"mentions\": [\n"
	                           "    {\"author_id\": 2}\n  ]\n}"));
	assert_null(iter_error(s, SCAN_FORMAT_ARRAY, NULL,
	                       "[\n  {\n    \"author_id\": 1,\n    \"m\": [\n"
	                       "      [\n        3\n      ]\n    ]\n  }\n]"));
	assert_non_null(iter_error(s, SCAN_FORMAT_ARRAY, NULL,
	                           "[\n  {\"author_id\": 1, \"m\": [\n"
	                           "    {\"author_id\": 2}]}\n]"));
	/* around an array_at array nothing is decided: no line of its own
	 * either, at any depth */
	assert_int_equal(jsonptr_parse("/data", 5, &at, &err), 0);
	assert_non_null(iter_error(s, SCAN_FORMAT_ARRAY_AT, &at,
	                           "{\"meta\":\n{\"author_id\":\"1002\"},"
	                           "\"data\":[{\"author_id\":1}]}"));
	assert_non_null(iter_error(s, SCAN_FORMAT_ARRAY_AT, &at,
	                           "{\"data\":[{\"author_id\":1}],\"meta\":\n"
	                           "{\"author_id\":\"1002\"}}"));
	assert_null(iter_error(s, SCAN_FORMAT_ARRAY_AT, &at,
	                       "{\n \"meta\": {\"n\": 1},\n \"data\": [\n"
	                       "  {\"author_id\": 1}\n ]\n}"));
	/* U+2028 in an object body: json readers of a document do not split
	 * lines; only NDJSON refuses it */
	assert_null(iter_error(s, SCAN_FORMAT_OBJECT, NULL,
	                       "{\"author_id\":1,\"t\":\"\xe2\x80\xa8\"}"));
	assert_non_null(
	    strstr(iter_error(s, SCAN_FORMAT_NDJSON, NULL,
	                      "{\"author_id\":1,\"t\":\"\xe2\x80\xa9"
	                      "\"}"),
	           "U+2028"));
	assert_int_not_equal(
	    scan_line(s, "{\"t\":\"\xe2\x80\xa8\"}", 11, &rec, &err), 0);
	assert_int_not_equal(scan_line(s, "{\"t\":\r1}", 8, &rec, &err), 0);
	assert_non_null(strstr(err, "carriage return"));
	assert_int_equal(scan_line(s, "{\"author_id\":7}\r", 16, &rec, &err),
	                 0);

	/* decoy keys: Java's equalsIgnoreCase (also Turkish i's), NFKC
	 * pipelines, Go's folding; raw and \u-escaped */
	expect_refused(s,
	               "{\"author_\xc4\xb1"
	               "d\":\"1002\",\"author_id\":1}",
	               "Unicode form");
	expect_refused(s,
	               "{\"author_id\":1,\"author_\xc4\xb0"
	               "d\":\"1002\"}",
	               "ambiguous");
	expect_refused(s, "{\"author_id\":1,\"author_\\u0131d\":\"1002\"}",
	               "ambiguous");
	expect_refused(s,
	               "{\"\xef\xbd\x81\xef\xbd\x95\xef\xbd\x94\xef\xbd\x88"
	               "\xef\xbd\x8f\xef\xbd\x92\xef\xbc\xbf\xef\xbd\x89"
	               "\xef\xbd\x84\":\"1002\",\"author_id\":1}",
	               "ambiguous"); /* fullwidth */
	expect_refused(s,
	               "{\"author_id\":1,\"\xf0\x9d\x90\x9a"
	               "uthor_id\":2}",
	               "ambiguous"); /* mathematical bold a */
	expect_refused(
	    s, "{\"author_id\":1,\"author\xe2\x80\x8b_id\":2}",
	    "ambiguous"); /* a zero-width space NFKC_Casefold drops */
	expect_refused(s, "{\"author_id\":1,\"\xe1\xb5\x83uthor_id\":2}",
	               "ambiguous"); /* modifier letter small a */
	/* string ids pandas' dtype inference reads through float64 */
	{
		static const char *const bad[] = {
		    "0042",
		    "-0",
		    "1e3",
		    " 12",
		    "12 ",
		    "1_000",
		    "NaN",
		    "inf",
		    "-Infinity",
		    "9007199254740993",
		    "18446744073709551617",
		    "+5",
		    "1.5",
		    "1.",
		    ".5",
		    "00",
		    "\\u0661\\u0662",
		    "\xd9\xa1",
		    "1\xe2\x80\x83",
		};
		static const char *const good[] = {"1001",
		                                   "0",
		                                   "-5",
		                                   "9007199254740992",
		                                   "-9007199254740992",
		                                   "u-anna",
		                                   "nancy",
		                                   "infinite",
		                                   "i-1",
		                                   "1a",
		                                   "0x10",
		                                   "1__0",
		                                   "1_",
		                                   "e5",
		                                   "12 34",
		                                   "-",
		                                   "+",
		                                   "."};
		char doc[128];

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			snprintf(doc, sizeof(doc), "{\"author_id\":\"%s\"}",
			         bad[i]);
			expect_refused(s, doc, "pandas");
		}
		for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
			snprintf(doc, sizeof(doc), "{\"author_id\":\"%s\"}",
			         good[i]);
			expect_subjects(s, doc, good[i], NULL);
		}
		/* a route whose pipeline reads ids as text takes them */
		b.spec.ids_as_text = true;
		expect_subjects(s, "{\"author_id\":\"0042\"}", "0042", NULL);
		expect_subjects(s, "{\"author_id\":\"1234567890123456789\"}",
		                "1234567890123456789", NULL);
		expect_refused(s, "{\"author_id\":1234567890123456789}",
		               "2^53");
		b.spec.ids_as_text = false;
	}
	/* look-alikes no decoder folds are other names */
	expect_subjects(s, "{\"author_id\":1,\"\xd0\xb0uthor_id\":2}", "1",
	                NULL); /* Cyrillic a */
	expect_subjects(s, "{\"author_id\":1,\"auth\xc3\xb6r_id\":2}", "1",
	                NULL);
}

static void
test_required_locators(void **state)
{
	struct spec_buf b;
	struct scan_spec *s = mkspec(&b, 0, "/author_id", "/mentions/*/id");
	const char *err;
	(void)state;

	/* no author: the required locator's bit is missing */
	assert_int_equal(
	    scan_str(s, "{\"mentions\":[{\"id\":\"1001\"}]}", &err), 0);
	assert_int_equal(rec.nsubjects, 1);
	assert_int_equal(rec.missing, 1u);
	assert_int_equal(scan_str(s, "{\"author_id\":2}", &err), 0);
	assert_int_equal(rec.missing, 0u);
	assert_int_equal(scan_str(s, "[1,2]", &err), 0);
	assert_int_equal(rec.missing, 1u);
	/* marked optional: its absence names nobody */
	s->optional = 1;
	assert_int_equal(scan_str(s, "{\"mentions\":[]}", &err), 0);
	assert_int_equal(rec.missing, 0u);
}

static void
test_differential_jansson(void **state)
{
	struct spec_buf sb;
	const struct scan_spec *s =
	    mkspec(&sb, 0, "/author_id", "/mentions/*/id");
	struct diff_stats st = {0};
	struct gen g;

	for (unsigned i = 0; i < 4000; i++) {
		g.n = 0;
		gen_object(&g, 0, true);
		differential_one(s, g.buf, g.n, &st);
		for (unsigned m = 0; m < 4; m++) {
			struct gen h = g;

			mutate(&h);
			differential_one(s, h.buf, h.n, &st);
		}
	}
	printf("differential: %u docs, %u both accept, %u both refuse, "
	       "%u refused by subject rules, %u skipped (numeric overflow)\n",
	       st.total, st.both_ok, st.both_refused, st.we_refused_subject,
	       st.skipped);
	/* the generator must exercise every outcome */
	assert_true(st.both_ok > 2000);
	assert_true(st.both_refused > 2000);
	assert_true(st.we_refused_subject > 500);
}

/*
 * UTF-8 in string bodies, at every alignment against the 16-byte blocks:
 * random bytes, mostly non-ASCII, must be accepted exactly when jansson
 * accepts them (both validate RFC 3629).
 */
static void
test_utf8_differential(void **state)
{
	static const uint8_t pick[] = {
	    'a',  ' ',  0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0,
	    0xc1, 0xc2, 0xc3, 0xdf, 0xe0, 0xe1, 0xec, 0xed, 0xee,
	    0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xff, '"',
	};
	struct spec_buf sb;
	const struct scan_spec *s = mkspec(&sb, 0, "/author_id", NULL);
	unsigned agree_ok = 0, agree_bad = 0;
	char doc[128];

	for (unsigned i = 0; i < 30000; i++) {
		size_t n = 0, pad = rnd(20), len = rnd(24);
		const char *err;
		json_error_t je;
		json_t *j;
		int ours;

		n += (size_t)snprintf(doc, sizeof(doc), "{\"t\":\"");
		for (size_t k = 0; k < pad; k++)
			doc[n++] = 'x';
		for (size_t k = 0; k < len; k++) {
			/* mostly valid sequences, then random bytes */
			if (rnd(12) != 0) {
				static const char *const good[] = {
				    "a",
				    "bc",
				    " ",
				    "\xc3\xa9",
				    "\xe6\x97\xa5",
				    "\xf0\x9f\x98\x80",
				    "\xed\x9f\xbf",
				    "\xf4\x8f\xbf\xbf",
				    "\xee\x80\x80",
				};
				const char *g = good[rnd(9)];

				memcpy(doc + n, g, strlen(g));
				n += strlen(g);
			} else {
				doc[n++] = (char)
				    pick[rnd(sizeof(pick) - 1 + (rnd(8) == 0))];
			}
		}
		doc[n++] = '"';
		doc[n++] = '}';
		ours = scan_record(s, doc, n, &rec, &err);
		j = json_loadb(doc, n, JANSSON_FLAGS, &je);
		if ((ours == 0) != (j != NULL))
			fail_msg("ours %d, jansson %d: %.*s", ours, j != NULL,
			         (int)n, doc);
		if (j != NULL)
			agree_ok++;
		else
			agree_bad++;
		json_decref(j);
	}
	printf("utf8: %u accepted, %u refused by both\n", agree_ok, agree_bad);
	assert_true(agree_ok > 3000 && agree_bad > 3000);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_json_test_suite),
	    cmocka_unit_test(test_subject_basics),
	    cmocka_unit_test(test_subject_types),
	    cmocka_unit_test(test_ambiguity),
	    cmocka_unit_test(test_nested_and_wildcards),
	    cmocka_unit_test(test_syntax),
	    cmocka_unit_test(test_depth),
	    cmocka_unit_test(test_ndjson),
	    cmocka_unit_test(test_object_format),
	    cmocka_unit_test(test_array_format),
	    cmocka_unit_test(test_array_at_format),
	    cmocka_unit_test(test_reader_safety),
	    cmocka_unit_test(test_required_locators),
	    cmocka_unit_test(test_differential_jansson),
	    cmocka_unit_test(test_utf8_differential),
	};

	int rc = 0;

	/* the whole suite under every kernel the CPU runs, scalar first */
	for (int k = SCAN_KERNEL_SCALAR; k <= SCAN_KERNEL_AVX512; k++) {
		if (scan_kernel_use((enum scan_kernel)k) < 0) {
			printf("kernel %s: not on this CPU, skipped\n",
			       scan_kernel_name((enum scan_kernel)k));
			continue;
		}
		printf("kernel %s\n", scan_kernel_name((enum scan_kernel)k));
		rc |= _cmocka_run_group_tests(
		    scan_kernel_name((enum scan_kernel)k), tests,
		    sizeof(tests) / sizeof(tests[0]), NULL, NULL);
	}
	return rc;
}
