/*
 * test_reqid.c: the request id: a client's X-Request-Id taken only when it
 * is bounded visible ASCII, else a W3C traceparent's trace id, else a
 * random 128-bit one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../proxy/reqid_internal.h"

#define S(lit) ((struct cg_slice){(lit), sizeof(lit) - 1})
#define NONE ((struct cg_slice){NULL, 0})
#define TP "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

static bool
hex32(const char *s)
{
	if (strlen(s) != 32)
		return false;
	for (int i = 0; i < 32; i++)
		if (!strchr("0123456789abcdef", s[i]))
			return false;
	return true;
}

static void
test_taken(void **state)
{
	char out[REQID_MAX + 1], big[REQID_MAX + 2];

	assert_int_equal(reqid_pick(S("abc-123"), S(TP), out), REQID_TAKEN);
	assert_string_equal(out, "abc-123");
	memset(big, 'x', REQID_MAX);
	big[REQID_MAX] = '\0';
	assert_int_equal(
	    reqid_pick((struct cg_slice){big, REQID_MAX}, NONE, out),
	    REQID_TAKEN);
	assert_int_equal(strlen(out), REQID_MAX);
	/* too long, a space, a control, a byte above ASCII, empty */
	assert_int_equal(
	    reqid_pick((struct cg_slice){big, REQID_MAX + 1}, NONE, out),
	    REQID_MADE);
	assert_int_equal(reqid_pick(S("a b"), NONE, out), REQID_MADE);
	assert_int_equal(reqid_pick(S("a\tb"), NONE, out), REQID_MADE);
	assert_int_equal(reqid_pick(S("caf\xc3\xa9"), NONE, out), REQID_MADE);
	assert_int_equal(reqid_pick(S(""), S(TP), out), REQID_TRACEPARENT);
}

static void
test_traceparent(void **state)
{
	char out[REQID_MAX + 1];
	static const char *bad[] = {
	    "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
	    "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
	    "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	    "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
	    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
	    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
	    "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
	};

	assert_int_equal(reqid_pick(NONE, S(TP), out), REQID_TRACEPARENT);
	assert_string_equal(out, "4bf92f3577b34da6a3ce929d0e0e4736");
	/* a later version may carry more fields */
	assert_int_equal(reqid_pick(NONE,
	                            S("01-4bf92f3577b34da6a3ce929d0e0e"
	                              "4736-00f067aa0ba902b7-01-more"),
	                            out),
	                 REQID_TRACEPARENT);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct cg_slice t = {bad[i], strlen(bad[i])};

		assert_int_equal(reqid_pick(NONE, t, out), REQID_MADE);
		assert_true(hex32(out));
	}
}

static void
test_made_ids_differ(void **state)
{
	char a[33], b[33];

	reqid_make(a);
	for (int i = 0; i < 1000; i++) {
		reqid_make(b);
		assert_true(hex32(b));
		assert_string_not_equal(a, b);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_taken),
	    cmocka_unit_test(test_traceparent),
	    cmocka_unit_test(test_made_ids_differ),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
