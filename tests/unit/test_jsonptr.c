/* test_jsonptr: RFC 6901 parsing, escapes, errors, wildcard, index, format. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "consentgate/jsonptr.h"

static int
parse(const char *text, struct jsonptr *p, const char **err)
{
	*err = NULL;
	return jsonptr_parse(text, strlen(text), p, err);
}

static void
test_root_and_simple(void **state)
{
	struct jsonptr p;
	const char *err;

	assert_int_equal(parse("", &p, &err), 0);
	assert_int_equal(p.ntokens, 0);

	assert_int_equal(parse("/author_id", &p, &err), 0);
	assert_int_equal(p.ntokens, 1);
	assert_int_equal(p.tok[0].len, 9);
	assert_memory_equal(p.tok[0].name, "author_id", 9);
	assert_false(p.tok[0].wildcard);
	assert_false(p.tok[0].is_index);

	assert_int_equal(parse("/user/profile/id", &p, &err), 0);
	assert_int_equal(p.ntokens, 3);
	assert_string_equal(p.tok[0].name, "user");
	assert_string_equal(p.tok[1].name, "profile");
	assert_string_equal(p.tok[2].name, "id");

	/* "/" is one empty token (the member named ""), "//" two */
	assert_int_equal(parse("/", &p, &err), 0);
	assert_int_equal(p.ntokens, 1);
	assert_int_equal(p.tok[0].len, 0);
	assert_int_equal(parse("//", &p, &err), 0);
	assert_int_equal(p.ntokens, 2);
}

static void
test_escapes(void **state)
{
	struct jsonptr p;
	const char *err;

	assert_int_equal(parse("/a~1b/m~0n/~01", &p, &err), 0);
	assert_int_equal(p.ntokens, 3);
	assert_string_equal(p.tok[0].name, "a/b");
	assert_string_equal(p.tok[1].name, "m~n");
	/* ~01 is "~1" (decode ~0 first, never re-decode) */
	assert_string_equal(p.tok[2].name, "~1");
	assert_int_equal(p.tok[2].len, 2);
}

static void
test_errors(void **state)
{
	struct jsonptr p;
	const char *err;
	char big[CG_MAX_PTR_TOKEN_LEN + 8];

	assert_int_equal(parse("author_id", &p, &err), -1);
	assert_non_null(err);
	assert_non_null(strstr(err, "start with '/'"));

	assert_int_equal(parse("/a~2", &p, &err), -1);
	assert_non_null(strstr(err, "~ must be followed by 0 or 1"));
	assert_int_equal(parse("/a~", &p, &err), -1);
	assert_non_null(strstr(err, "~ must be followed by 0 or 1"));

	/* CG_MAX_PTR_TOKENS tokens fit, one more does not */
	char many[4 * CG_MAX_PTR_TOKENS + 8] = "";
	for (int i = 0; i < CG_MAX_PTR_TOKENS; i++)
		strcat(many, "/a");
	assert_int_equal(parse(many, &p, &err), 0);
	assert_int_equal(p.ntokens, CG_MAX_PTR_TOKENS);
	strcat(many, "/a");
	assert_int_equal(parse(many, &p, &err), -1);
	assert_non_null(strstr(err, "too many tokens"));
	assert_int_equal(p.ntokens, 0);

	/* a token must fit with its NUL */
	big[0] = '/';
	memset(big + 1, 'x', CG_MAX_PTR_TOKEN_LEN - 1);
	big[CG_MAX_PTR_TOKEN_LEN] = '\0';
	assert_int_equal(parse(big, &p, &err), 0);
	assert_int_equal(p.tok[0].len, CG_MAX_PTR_TOKEN_LEN - 1);
	big[CG_MAX_PTR_TOKEN_LEN] = 'x';
	big[CG_MAX_PTR_TOKEN_LEN + 1] = '\0';
	assert_int_equal(parse(big, &p, &err), -1);
	assert_non_null(strstr(err, "too long"));

	/* an embedded NUL can match nothing */
	assert_int_equal(jsonptr_parse("/a\0b", 4, &p, &err), -1);
	assert_non_null(strstr(err, "NUL"));
}

static void
test_wildcard_and_index(void **state)
{
	struct jsonptr p;
	const char *err;

	assert_int_equal(parse("/mentions/*/id", &p, &err), 0);
	assert_int_equal(p.ntokens, 3);
	assert_false(p.tok[0].wildcard);
	assert_true(p.tok[1].wildcard);
	assert_false(p.tok[1].is_index);
	assert_false(p.tok[2].wildcard);

	/* only exactly "*" is the wildcard */
	assert_int_equal(parse("/**/*a/a*", &p, &err), 0);
	assert_false(p.tok[0].wildcard);
	assert_false(p.tok[1].wildcard);
	assert_false(p.tok[2].wildcard);

	assert_int_equal(parse("/0/7/42/4294967295", &p, &err), 0);
	assert_true(p.tok[0].is_index);
	assert_int_equal(p.tok[0].index, 0);
	assert_int_equal(p.tok[1].index, 7);
	assert_int_equal(p.tok[2].index, 42);
	assert_true(p.tok[3].is_index);
	assert_int_equal(p.tok[3].index, 4294967295u);

	/* leading zero, sign, overflow, empty: member names, not indexes */
	assert_int_equal(parse("/01/-1/4294967296/", &p, &err), 0);
	assert_false(p.tok[0].is_index);
	assert_false(p.tok[1].is_index);
	assert_false(p.tok[2].is_index);
	assert_false(p.tok[3].is_index);
}

static void
round_trip(const char *text)
{
	struct jsonptr p, q;
	const char *err;
	char out[4096];

	assert_int_equal(parse(text, &p, &err), 0);
	jsonptr_format(&p, out, sizeof(out));
	assert_string_equal(out, text);
	assert_int_equal(parse(out, &q, &err), 0);
	assert_int_equal(q.ntokens, p.ntokens);
	for (unsigned i = 0; i < p.ntokens; i++) {
		assert_int_equal(q.tok[i].len, p.tok[i].len);
		assert_memory_equal(q.tok[i].name, p.tok[i].name, p.tok[i].len);
	}
}

static void
test_format(void **state)
{
	struct jsonptr p;
	const char *err;
	char small[6];

	round_trip("");
	round_trip("/author_id");
	round_trip("/mentions/*/id");
	round_trip("/a~1b/m~0n/~01/");
	round_trip("/0/caf\xc3\xa9");

	/* truncation stays within cap, never splits an escape */
	assert_int_equal(parse("/ab/c~1d", &p, &err), 0);
	jsonptr_format(&p, small, sizeof(small));
	assert_string_equal(small, "/ab/c");
	jsonptr_format(&p, small, 1);
	assert_string_equal(small, "");
	assert_int_equal(parse("/abc~1", &p, &err), 0);
	jsonptr_format(&p, small, sizeof(small));
	assert_string_equal(small, "/abc");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_root_and_simple),
	    cmocka_unit_test(test_escapes),
	    cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_wildcard_and_index),
	    cmocka_unit_test(test_format),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
