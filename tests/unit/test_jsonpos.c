/* test_jsonpos: line:col of JSON members by path, and of syntax errors. */
/* cmocka.h needs these three before it */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
/* clang-format on */

#include <string.h>

#include <jansson.h>

#include "consentgate/jsonpos.h"

static void
assert_at(const struct jsonpos *m, const char *path, bool key, int line,
          int col)
{
	int l, c;

	jsonpos_find(m, path, key, &l, &c);
	if (l != line || c != col)
		fail_msg("%s%s: %d:%d, expected %d:%d", path,
		         key ? " (key)" : "", l, c, line, col);
}

static void
test_members_and_elements(void **state)
{
	static const char text[] = "{\n"
	                           "  \"policy\": \"p\",\n"
	                           "  \"routes\": [\n"
	                           "    {\"path\": \"/a\"},\n"
	                           "    { \"path\" : \"/b\", \"x\": [1, 2] }\n"
	                           "  ]\n"
	                           "}\n";
	struct jsonpos *m = jsonpos_scan(text, strlen(text));

	assert_non_null(m);
	assert_at(m, "", false, 1, 1);
	assert_at(m, "policy", true, 2, 3);
	assert_at(m, "policy", false, 2, 13);
	assert_at(m, "routes", false, 3, 13);
	assert_at(m, "routes[0]", false, 4, 5);
	assert_at(m, "routes[0]", true, 4, 5); /* elements have no key */
	assert_at(m, "routes[0].path", true, 4, 6);
	assert_at(m, "routes[1].path", true, 5, 7);
	assert_at(m, "routes[1].path", false, 5, 16);
	assert_at(m, "routes[1].x[1]", false, 5, 31);
	/* not recorded: the nearest ancestor's value */
	assert_at(m, "routes[1].nothing", true, 5, 5);
	assert_at(m, "routes[7].path", false, 3, 13);
	assert_at(m, "absent", false, 0, 0); /* no ancestor but the root */
	jsonpos_free(m);
}

/* Columns count characters, as jansson's do; escapes name the key. */
static void
test_utf8_and_escaped_keys(void **state)
{
	static const char text[] =
	    "{\"\xc3\xa9t\xc3\xa9\": 1, \"\\u0061b\": 2}";
	struct jsonpos *m = jsonpos_scan(text, strlen(text));

	assert_at(m, "\xc3\xa9t\xc3\xa9", true, 1, 2);
	assert_at(m, "\xc3\xa9t\xc3\xa9", false, 1, 9);
	assert_at(m, "ab", true, 1, 12);
	jsonpos_free(m);
}

/* Deeper than CG_MAX_JSONPOS_DEPTH: skipped, named by the ancestor. */
static void
test_depth_bound(void **state)
{
	char text[4096];
	size_t o = 0;
	unsigned depth = 2000;

	o += (size_t)snprintf(text, sizeof(text), "{\"a\":");
	for (unsigned i = 0; i < depth; i++)
		text[o++] = '[';
	for (unsigned i = 0; i < depth; i++)
		text[o++] = ']';
	o += (size_t)snprintf(text + o, sizeof(text) - o, ",\"b\":1}");
	struct jsonpos *m = jsonpos_scan(text, o);
	assert_at(m, "b", true, 1, 4007); /* after 5 + 4000 bytes and a comma */
	assert_at(m, "a[0][0][0][0][0][0][0][0][0][0][0]", false, 1, 13);
	jsonpos_free(m);
}

/* Text jansson refuses: the pass stops, never reads past the end. */
static void
test_not_json_and_null(void **state)
{
	static const char *bad[] = {"{\"a\"", "[1,",     "{\"a\":\"x",
	                            "{,,}",   "\"\\u12", "{\"a\":[}",
	                            "}",      ""};
	int l = 9, c = 9;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct jsonpos *m = jsonpos_scan(bad[i], strlen(bad[i]));
		assert_non_null(m);
		jsonpos_find(m, "a", true, &l, &c);
		jsonpos_free(m);
	}
	jsonpos_find(NULL, "a", true, &l, &c);
	assert_int_equal(l, 0);
	assert_int_equal(c, 0);
	jsonpos_free(NULL);
}

static void
syntax_at(const char *text, int line, int col)
{
	json_error_t e;
	json_t *j = json_loadb(text, strlen(text), 0, &e);
	int l, c;

	assert_null(j);
	jsonpos_of_error(text, strlen(text), e.line, e.column, e.position, &l,
	                 &c);
	if (l != line || c != col)
		fail_msg("'%s': %d:%d (jansson %d:%d@%d), expected %d:%d", text,
		         l, c, e.line, e.column, e.position, line, col);
}

/* A syntax error always gets a column, also at the end of the file. */
static void
test_syntax_errors(void **state)
{
	syntax_at("{\n  \"a\": 1,\n  \"b\": [\n", 4, 1); /* truncated */
	syntax_at("{\"a\": 1", 1, 7);
	syntax_at("{\"a\": x}", 1, 7);
	syntax_at("{\n\"a\" 1}", 2, 5);
	syntax_at("\n\n", 3, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_members_and_elements),
	    cmocka_unit_test(test_utf8_and_escaped_keys),
	    cmocka_unit_test(test_depth_bound),
	    cmocka_unit_test(test_not_json_and_null),
	    cmocka_unit_test(test_syntax_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
