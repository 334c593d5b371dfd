/*
 * test_pseudonym.c: a person's pseudonym (proxy/pseudonym.c):
 * HMAC-SHA-256 as RFC 4231 computes it (cases 2 and 6: a key shorter and
 * one longer than the block); the key file's bounds; the configured key's
 * per-thread state gives the one-shot function's pseudonym on every
 * thread, and is gone after pseudonym_clear.
 */
/* cmocka.h needs these three before it */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
/* clang-format on */

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../proxy/pseudonym_internal.h"
#include "unit_files.h"

static void
test_rfc4231(void **state)
{
	static const char msg6[] =
	    "Test Using Larger Than Block-Size Key - Hash Key First";
	unsigned char key[131];
	char out[65];

	/* RFC 4231 test case 2 */
	assert_int_equal(pseudonym_hmac((const unsigned char *)"Jefe", 4,
	                                "what do ya want for nothing?", 28,
	                                out),
	                 0);
	assert_string_equal(out, "5bdcc146bf60754e6a042426089575c7"
	                         "5a003f089d2739839dec58b964ec3843");
	/* case 6: a key longer than the block is hashed first */
	memset(key, 0xaa, sizeof(key));
	assert_int_equal(
	    pseudonym_hmac(key, sizeof(key), msg6, strlen(msg6), out), 0);
	assert_string_equal(out, "60e431591ee0b67f0d8a26aacbf5b77f"
	                         "8e0bc6213728c5140546040f0ee37f54");
}

/* A key file of n bytes ('k'); the path, which the caller frees. */
static char *
key_file(size_t n)
{
	char *text = malloc(n + 1), *path;

	assert_non_null(text);
	memset(text, 'k', n);
	text[n] = '\0';
	path = unit_write_file("key", text);
	free(text);
	return path;
}

static void
test_key_file_bounds(void **state)
{
	static const size_t ok[] = {PSEUDONYM_KEY_MIN, 64, PSEUDONYM_KEY_MAX};
	static const size_t bad[] = {0, PSEUDONYM_KEY_MIN - 1,
	                             PSEUDONYM_KEY_MAX + 1,
	                             3 * PSEUDONYM_KEY_MAX};
	unsigned char *key = malloc(PSEUDONYM_KEY_MAX);
	char why[512], *path;
	size_t len;

	assert_non_null(key);
	for (size_t i = 0; i < sizeof(ok) / sizeof(*ok); i++) {
		path = key_file(ok[i]);
		assert_int_equal(
		    pseudonym_read_key(path, key, &len, why, sizeof(why)), 0);
		assert_int_equal(len, ok[i]);
		unlink(path);
		free(path);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		path = key_file(bad[i]);
		why[0] = '\0';
		assert_int_equal(
		    pseudonym_read_key(path, key, &len, why, sizeof(why)), -1);
		assert_non_null(strstr(why, bad[i] > PSEUDONYM_KEY_MAX
		                                ? "longer than"
		                                : "at least 32"));
		assert_int_equal(pseudonym_set_key(path, why, sizeof(why)), -1);
		assert_false(pseudonym_enabled());
		unlink(path);
		free(path);
	}
	assert_int_equal(
	    pseudonym_read_key("/nonexistent/key", key, &len, why, sizeof(why)),
	    -1);
	assert_non_null(strstr(why, "cannot open"));
	free(key);
}

struct on_thread {
	const char *id;
	char out[65];
	int rc;
};

static void *
run_on_thread(void *arg)
{
	struct on_thread *t = arg;

	t->rc = pseudonym_of(t->id, strlen(t->id), t->out);
	return NULL;
}

/* The configured key's pseudonym, this thread's and another's, is the
 * one-shot function's with the file's bytes. */
static void
test_configured_key_on_every_thread(void **state)
{
	struct on_thread t = {"jürgen", "", -1};
	char why[512], want[65], got[65], *path = key_file(40);
	unsigned char key[40];
	pthread_t th;

	memset(key, 'k', sizeof(key));
	assert_int_equal(pseudonym_set_key(NULL, why, sizeof(why)), 0);
	assert_false(pseudonym_enabled());
	assert_int_equal(pseudonym_set_key(path, why, sizeof(why)), 0);
	assert_true(pseudonym_enabled());
	assert_int_equal(
	    pseudonym_hmac(key, sizeof(key), t.id, strlen(t.id), want), 0);
	assert_int_equal(pseudonym_of(t.id, strlen(t.id), got), 0);
	assert_string_equal(got, want);
	assert_int_equal(pseudonym_of(t.id, strlen(t.id), got), 0);
	assert_string_equal(got, want); /* the state is reused, not spent */
	assert_int_equal(pthread_create(&th, NULL, run_on_thread, &t), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(t.rc, 0);
	assert_string_equal(t.out, want);
	assert_int_equal(pseudonym_of("1001", 4, got), 0);
	assert_string_not_equal(got, want);
	pseudonym_clear();
	assert_false(pseudonym_enabled());
	unlink(path);
	free(path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rfc4231),
	    cmocka_unit_test(test_key_file_bounds),
	    cmocka_unit_test(test_configured_key_on_every_thread),
	};

	return cmocka_run_group_tests(tests, unit_files_setup,
	                              unit_files_teardown);
}
