/* test_common: the helpers of common.h (cg_slice_ieq) and cg_errors. */
/* cmocka.h needs these three before it */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
/* clang-format on */

#include <string.h>

#include "consentgate/common.h"

static bool
ieq(const char *s, const char *lit)
{
	return cg_slice_ieq((struct cg_slice){s, strlen(s)}, lit);
}

static void
test_slice_ieq(void **state)
{
	assert_true(ieq("Content-Length", "content-length"));
	assert_true(ieq("CONTENT-LENGTH", "Content-Length"));
	assert_true(ieq("", ""));
	assert_false(ieq("Content-Lengt", "content-length"));
	assert_false(ieq("Content-Lengthx", "content-length"));
	assert_false(ieq("", "x"));
	assert_false(ieq("x", ""));
	/* only A-Z fold: '@' (0x40) and '`' (0x60), '[' and '{' stay apart */
	assert_false(ieq("@", "`"));
	assert_false(ieq("[", "{"));
	assert_false(ieq("_", "-"));
	/* non-ASCII compares exactly (no locale folding of U+00C9) */
	assert_true(ieq("\xc3\xa9", "\xc3\xa9"));
	assert_false(ieq("\xc3\x89", "\xc3\xa9"));
	/* a slice is not NUL-terminated: only len bytes count */
	assert_true(cg_slice_ieq((struct cg_slice){"GETX", 3}, "get"));
	assert_false(cg_slice_ieq((struct cg_slice){"GET", 2}, "get"));
}

static void
test_errors(void **state)
{
	struct cg_errors e;

	cg_errors_init(&e);
	cg_errors_add(&e, "f.json", 3, 7, "bad %s", "thing");
	cg_errors_add(&e, "f.json", 3, 0, "no column");
	cg_errors_add(&e, "f.json", 0, 0, "no position");
	assert_int_equal(e.count, 3);
	assert_string_equal(e.msgs[0], "f.json:3:7: bad thing");
	assert_string_equal(e.msgs[1], "f.json:3: no column");
	assert_string_equal(e.msgs[2], "f.json: no position");
	for (unsigned i = 0; i < CG_MAX_ERRORS + 5; i++)
		cg_errors_add(&e, "f", 1, 1, "x");
	assert_int_equal(e.count, CG_MAX_ERRORS);
	assert_int_equal(e.dropped, 8);
	cg_errors_reset(&e);
	assert_int_equal(e.count, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_slice_ieq),
	    cmocka_unit_test(test_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
