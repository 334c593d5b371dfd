/* test_rfc3339: the one RFC 3339 parser (consent import, eval, test). */
/* cmocka.h needs these three before it */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
/* clang-format on */

#include <stdio.h>
#include <string.h>

#include "consentgate/rfc3339.h"

static int64_t s;
static uint32_t ns;

static int
parse(const char *str)
{
	return rfc3339_parse(str, strlen(str), &s, &ns);
}

#define OK(str, want)                                                          \
	do {                                                                   \
		assert_int_equal(parse(str), 0);                               \
		assert_int_equal(s, want);                                     \
	} while (0)
#define BAD(str)                                                               \
	do {                                                                   \
		s = 42;                                                        \
		ns = 7;                                                        \
		assert_int_equal(parse(str), -1);                              \
		assert_int_equal(s, 42); /* left alone */                      \
		assert_int_equal(ns, 7);                                       \
	} while (0)

static void
test_valid(void **state)
{
	OK("1970-01-01T00:00:00Z", 0);
	OK("2025-03-01T12:00:00Z", 1740830400);
	OK("2025-03-01t12:00:00z", 1740830400);
	OK("1969-12-31T23:59:59Z", -1);
	OK("2026-01-01T00:00:00Z", 1767225600);
	OK("9999-12-31T23:59:59Z", INT64_C(253402300799));
	OK("0000-01-01T00:00:00Z", INT64_C(-62167219200));
	assert_int_equal(ns, 0);
}

static void
test_month_lengths_and_leap_years(void **state)
{
	static const char *last[] = {"01-31", "02-28", "03-31", "04-30",
	                             "05-31", "06-30", "07-31", "08-31",
	                             "09-30", "10-31", "11-30", "12-31"};
	static const char *past[] = {"01-32", "02-29", "03-32", "04-31",
	                             "05-32", "06-31", "07-32", "08-32",
	                             "09-31", "10-32", "11-31", "12-32"};
	char buf[32];

	for (unsigned i = 0; i < 12; i++) {
		snprintf(buf, sizeof(buf), "2025-%sT00:00:00Z", last[i]);
		assert_int_equal(parse(buf), 0);
		snprintf(buf, sizeof(buf), "2025-%sT00:00:00Z", past[i]);
		BAD(buf);
	}
	OK("2024-02-29T00:00:00Z", 1709164800); /* divisible by 4 */
	OK("2000-02-29T00:00:00Z", 951782400);  /* by 400 */
	BAD("2025-02-29T00:00:00Z");
	BAD("2100-02-29T00:00:00Z"); /* by 100, not 400 */
	BAD("1900-02-29T00:00:00Z");
	BAD("2024-02-30T00:00:00Z");
	/* what the CLI's own parser once took: eval --now 2026-02-31 */
	BAD("2026-02-31T10:00:00Z");
	BAD("2025-04-31T00:00:00Z");
	BAD("2025-01-00T00:00:00Z");
	BAD("2025-13-01T00:00:00Z");
	BAD("2025-00-01T00:00:00Z");
}

static void
test_time_ranges(void **state)
{
	OK("2016-12-31T23:59:60Z", 1483228800); /* leap second: the next */
	OK("2024-12-31T23:59:59Z", 1735689599);
	BAD("2025-01-01T24:00:00Z");
	BAD("2025-01-01T23:60:00Z");
	BAD("2025-01-01T23:59:61Z");
}

static void
test_offsets(void **state)
{
	OK("2025-03-01T14:00:00+02:00", 1740830400);
	OK("2025-03-01T07:30:00-04:30", 1740830400);
	OK("2025-03-01T12:00:00+00:00", 1740830400);
	OK("2025-03-01T12:00:00-00:00", 1740830400);
	/* the offset may cross a day and a year */
	OK("2025-12-31T23:00:00-01:00", 1767225600);
	OK("2026-01-02T00:00:00+23:59",
	   1767225600 + 86400 - 23 * 3600 - 59 * 60);
	BAD("2025-01-01T00:00:00"); /* no zone */
	BAD("2025-01-01T00:00:00+2:00");
	BAD("2025-01-01T00:00:00+02");
	BAD("2025-01-01T00:00:00+0200");
	BAD("2025-01-01T00:00:00+24:00");
	BAD("2025-01-01T00:00:00+02:60");
	BAD("2025-01-01T00:00:00+02:00:00");
	BAD("2025-01-01T00:00:00Zjunk");
	BAD("2025-01-01T00:00:00Z ");
	BAD("2025-01-01T00:00:00UTC");
}

static void
test_fractions(void **state)
{
	OK("2025-03-01T12:00:00.123456789Z", 1740830400);
	assert_int_equal(ns, 123456789);
	OK("2025-03-01T12:00:00.5Z", 1740830400);
	assert_int_equal(ns, 500000000);
	OK("2025-03-01T12:00:00.000000001Z", 1740830400);
	assert_int_equal(ns, 1);
	OK("2025-03-01T12:00:00.1234567891234Z", 1740830400); /* cut at 9 */
	assert_int_equal(ns, 123456789);
	OK("2025-03-01T14:00:00.25+02:00", 1740830400);
	assert_int_equal(ns, 250000000);
	BAD("2025-01-01T00:00:00.Z"); /* empty fraction */
	BAD("2025-01-01T00:00:00,5Z");
	BAD("2025-01-01T00:00:00.5x");
}

static void
test_syntax(void **state)
{
	BAD("");
	BAD("2025-01-01");
	BAD("2025-01-01 00:00:00Z"); /* space for T */
	BAD("2025-1-01T00:00:00Z");
	BAD("25-01-01T00:00:00Z");
	BAD("2025/01/01T00:00:00Z");
	BAD("2025-01-01T00-00-00Z");
	BAD("+025-01-01T00:00:00Z");
	BAD("2025-01-01T0a:00:00Z");
	BAD("2025-01-01T00:00: 0Z");
}

/* The input is a slice: bytes past len are never read or counted. */
static void
test_slice_and_null_nsec(void **state)
{
	const char *t = "2025-03-01T12:00:00Zjunk";

	assert_int_equal(rfc3339_parse(t, 20, &s, &ns), 0);
	assert_int_equal(s, 1740830400);
	assert_int_equal(rfc3339_parse(t, 19, &s, &ns), -1);
	assert_int_equal(rfc3339_parse("2025-03-01T12:00:00.5Z", 22, &s, NULL),
	                 0);
	assert_int_equal(s, 1740830400);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_valid),
	    cmocka_unit_test(test_month_lengths_and_leap_years),
	    cmocka_unit_test(test_time_ranges),
	    cmocka_unit_test(test_offsets),
	    cmocka_unit_test(test_fractions),
	    cmocka_unit_test(test_syntax),
	    cmocka_unit_test(test_slice_and_null_nsec),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
