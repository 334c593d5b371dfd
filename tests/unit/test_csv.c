/* test_csv: the RFC 4180 tokenizer the consent importer reads with. */
/* cmocka.h needs these three before it */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
/* clang-format on */

#include <string.h>

#include "../../policy/csv_internal.h"

static struct csv c;
static struct csv_field f[8];
static unsigned n;
static const char *why;

static void
start(const char *text)
{
	csv_init(&c, text, strlen(text));
}

static int
next(void)
{
	why = NULL;
	return csv_record(&c, f, 8, &n, &why);
}

static void
assert_field(unsigned i, const char *want)
{
	char out[64];
	size_t len = csv_field_unescape(&f[i], out);

	assert_true(i < n);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(out, want, len);
}

static void
test_plain_records_and_line_ends(void **state)
{
	start("a,b,c\r\nd,,f\ng");
	assert_int_equal(next(), 1);
	assert_int_equal(n, 3);
	assert_field(0, "a");
	assert_field(2, "c");
	assert_int_equal(c.line, 2);
	assert_int_equal(next(), 1);
	assert_int_equal(n, 3);
	assert_field(1, "");
	assert_false(f[1].quoted);
	assert_int_equal(next(), 1); /* no final line end */
	assert_int_equal(n, 1);
	assert_field(0, "g");
	assert_int_equal(next(), 0);
	assert_int_equal(next(), 0);
}

static void
test_quoted_fields(void **state)
{
	start("\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\",\"\"\nx\n");
	assert_int_equal(next(), 1);
	assert_int_equal(n, 4);
	assert_field(0, "a,b");
	assert_true(f[0].quoted);
	assert_false(f[0].escaped);
	assert_field(1, "say \"hi\"");
	assert_true(f[1].escaped);
	assert_false(csv_field_is(&f[1], "say \"\"hi\"\""));
	assert_field(2, "two\nlines");
	assert_field(3, "");
	assert_true(f[3].quoted);
	/* a quoted newline counts as a line */
	assert_int_equal(c.line, 3);
	assert_int_equal(next(), 1);
	assert_field(0, "x");
}

static void
test_bom_and_blank_lines(void **state)
{
	start("\xef\xbb\xbfsubject,purpose\n\n\"\"\n");
	assert_int_equal(next(), 1);
	assert_true(csv_field_is(&f[0], "subject")); /* BOM skipped */
	assert_true(csv_field_is(&f[1], "purpose"));
	assert_false(csv_field_is(&f[1], "purpos"));
	assert_int_equal(next(), 1);
	assert_true(csv_blank(f, n));
	assert_int_equal(next(), 1);
	assert_false(csv_blank(f, n)); /* "" is an empty field, not blank */
	assert_int_equal(next(), 0);
	start("\xef\xbb"); /* half a BOM is data */
	assert_int_equal(next(), 1);
	assert_int_equal(f[0].len, 2);
}

static void
test_syntax_errors_skip_the_line(void **state)
{
	start("a\"b,c\nok\n\"x\"y\nok2\nbare\rcr\nok3\n\"open");
	assert_int_equal(next(), -1);
	assert_string_equal(why, "quote inside an unquoted field");
	assert_int_equal(next(), 1);
	assert_field(0, "ok");
	assert_int_equal(next(), -1);
	assert_string_equal(why, "text after a closing quote");
	assert_int_equal(next(), 1);
	assert_field(0, "ok2");
	assert_int_equal(next(), -1);
	assert_string_equal(why, "bare CR (line ends are LF or CRLF)");
	assert_int_equal(next(), 1);
	assert_field(0, "ok3");
	assert_int_equal(c.line, 7);
	assert_int_equal(next(), -1);
	assert_string_equal(why, "unterminated quoted field");
	assert_int_equal(next(), 0);
}

/* More fields than the caller keeps: counted, not written. */
static void
test_field_count_beyond_max(void **state)
{
	struct csv_field two[2];

	start("1,2,3,4,5\n");
	assert_int_equal(csv_record(&c, two, 2, &n, &why), 1);
	assert_int_equal(n, 5);
	assert_int_equal(two[1].len, 1);
	assert_memory_equal(two[1].ptr, "2", 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_plain_records_and_line_ends),
	    cmocka_unit_test(test_quoted_fields),
	    cmocka_unit_test(test_bom_and_blank_lines),
	    cmocka_unit_test(test_syntax_errors_skip_the_line),
	    cmocka_unit_test(test_field_count_beyond_max),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
