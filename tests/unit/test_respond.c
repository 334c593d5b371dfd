/* test_respond: the JSON string escaper and problem+json responses. */
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

#include <event2/buffer.h>
#include <jansson.h>

#include "../../proxy/proxy_internal.h"

/* s[0,n) escaped, as a NUL-terminated string the caller frees. */
static char *
escaped(const char *s, size_t n)
{
	struct evbuffer *b = evbuffer_new();
	size_t len;
	char *out;

	assert_non_null(b);
	respond_json_str(b, s, n);
	len = evbuffer_get_length(b);
	out = malloc(len + 1);
	assert_non_null(out);
	evbuffer_remove(b, out, len);
	out[len] = '\0';
	evbuffer_free(b);
	return out;
}

/* Every control byte is \u00XX, and jansson reads it back as that byte. */
static void
test_control_bytes(void **state)
{
	for (unsigned ch = 0; ch < 0x20; ch++) {
		char in[3] = {'a', (char)ch, 'b'}, want[16], doc[32];
		char *out = escaped(in, 3);
		json_error_t e;
		json_t *j;

		snprintf(want, sizeof(want), "a\\u%04xb", ch);
		assert_string_equal(out, want);
		snprintf(doc, sizeof(doc), "\"%s\"", out);
		j = json_loads(doc, JSON_ALLOW_NUL | JSON_DECODE_ANY, &e);
		assert_non_null(j);
		assert_int_equal(json_string_length(j), 3);
		assert_memory_equal(json_string_value(j), in, 3);
		json_decref(j);
		free(out);
	}
}

/* RFC 8259 escapes '"', '\' and U+0000-U+001F only: DEL and UTF-8 pass. */
static void
test_quotes_del_and_utf8(void **state)
{
	char *out;

	out = escaped("say \"hi\" \\ /", 12);
	assert_string_equal(out, "say \\\"hi\\\" \\\\ /");
	free(out);
	out = escaped("a\x7f"
	              "b",
	              3);
	assert_string_equal(out, "a\x7f"
	                         "b");
	free(out);
	out = escaped("\xc3\xa9\xe2\x80\xa8\xf0\x9f\x98\x80", 9);
	assert_string_equal(out, "\xc3\xa9\xe2\x80\xa8\xf0\x9f\x98\x80");
	free(out);
	out = escaped("", 0);
	assert_string_equal(out, "");
	free(out);
	/* only n bytes are read */
	out = escaped("abc\"", 3);
	assert_string_equal(out, "abc");
	free(out);
}

/* Every byte value: the result is a JSON string that decodes to it. */
static void
test_every_byte_round_trips(void **state)
{
	char in[256 - 0x80], doc[1024];
	size_t n = 0;

	for (unsigned ch = 0; ch < 0x80; ch++)
		in[n++] = (char)ch;
	char *out = escaped(in, n);
	json_error_t e;
	snprintf(doc, sizeof(doc), "\"%s\"", out);
	json_t *j =
	    json_loadb(doc, strlen(doc), JSON_ALLOW_NUL | JSON_DECODE_ANY, &e);
	assert_non_null(j);
	assert_int_equal(json_string_length(j), n);
	assert_memory_equal(json_string_value(j), in, n);
	json_decref(j);
	free(out);
}

/* A problem detail with control bytes and quotes is valid JSON. */
static void
test_problem_body(void **state)
{
	struct evbuffer *b = evbuffer_new();
	const char *detail = "bad \"x\"\n\x01\x7f";
	char *all, *body;
	size_t len;
	json_error_t e;
	json_t *j;

	respond_problem(b, 400, detail, true, NULL, NULL);
	len = evbuffer_get_length(b);
	all = calloc(1, len + 1);
	evbuffer_remove(b, all, len);
	assert_non_null(strstr(all, "HTTP/1.1 400 Bad Request\r\n"));
	assert_non_null(strstr(all, "Connection: close\r\n"));
	/* a Date (IMF-fixdate: 29 characters) on every problem */
	{
		const char *d = strstr(all, "\r\nDate: ");

		assert_non_null(d);
		assert_true(strstr(d + 2, "\r\n") - (d + 8) == 29);
		assert_memory_equal(d + 8 + 25, " GMT", 4);
	}
	body = strstr(all, "\r\n\r\n");
	assert_non_null(body);
	j = json_loads(body + 4, 0, &e);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "detail")),
	                    detail);
	assert_int_equal(json_integer_value(json_object_get(j, "status")), 400);
	json_decref(j);
	free(all);
	evbuffer_free(b);
}

/* Header lines given to a problem come among its fields; 503 says when
   to retry. */
static void
test_problem_headers(void **state)
{
	struct evbuffer *b = evbuffer_new();
	char *all;
	size_t len;

	respond_problem(b, 405, "no", false, NULL, "Allow: POST\r\n");
	respond_problem(b, 503, "stale", false, NULL, NULL);
	len = evbuffer_get_length(b);
	all = calloc(1, len + 1);
	evbuffer_remove(b, all, len);
	assert_non_null(strstr(all, "HTTP/1.1 405 Method Not Allowed\r\n"));
	assert_non_null(strstr(all, "\r\nAllow: POST\r\n"));
	assert_non_null(strstr(all, "\r\nRetry-After: 1\r\n"));
	assert_null(strstr(all, "Connection: close"));
	free(all);
	evbuffer_free(b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_control_bytes),
	    cmocka_unit_test(test_quotes_del_and_utf8),
	    cmocka_unit_test(test_every_byte_round_trips),
	    cmocka_unit_test(test_problem_body),
	    cmocka_unit_test(test_problem_headers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
