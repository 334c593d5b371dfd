/*
 * test_http1_chunked.c: the strict chunked decoder (http1_chunked.c).
 * Chunked bodies are fed whole, split at every offset and one byte at a
 * time, and must give the same payload and the same error.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../proxy/http1_internal.h"
#include "unit_util.h"

struct ck_result {
	int rc; /* 1 done, 0 wants more, -1 error */
	const char *reason;
	size_t consumed;
	char out[4096];
	size_t outlen;
};

/* Feed one piece until it is consumed, the body ends or an error. */
static void
feed_piece(struct http1_chunked *c, const char *raw, size_t len,
           struct ck_result *r)
{
	char *piece = dup_bytes(raw, len);
	size_t off = 0;

	while (off < len && !c->done && r->rc != -1) {
		struct cg_slice d;
		const char *reason = NULL;
		long n =
		    http1_chunked_feed(c, piece + off, len - off, &d, &reason);

		if (n < 0) {
			assert_non_null(reason);
			r->rc = -1;
			r->reason = reason;
			break;
		}
		assert_true((size_t)n <= len - off);
		assert_true(n > 0);
		assert_true(d.ptr >= piece + off);
		assert_true(d.ptr + d.len <= piece + off + n);
		assert_true(r->outlen + d.len <= sizeof(r->out));
		memcpy(r->out + r->outlen, d.ptr, d.len);
		r->outlen += d.len;
		off += (size_t)n;
	}
	r->consumed += off;
	if (c->done)
		r->rc = 1;
	free(piece);
}

/* Decode raw cut at the given offsets (cuts[0..ncuts) ascending). */
static void
decode_cut(const char *raw, size_t len, const size_t *cuts, size_t ncuts,
           struct ck_result *r)
{
	struct http1_chunked c;
	size_t prev = 0, k;

	memset(r, 0, sizeof(*r));
	http1_chunked_init(&c);
	for (k = 0; k <= ncuts && r->rc == 0; k++) {
		size_t to = k < ncuts ? cuts[k] : len;
		feed_piece(&c, raw + prev, to - prev, r);
		prev = to;
	}
	if (r->rc == 1)
		assert_int_equal(c.total, r->outlen);
	if (r->rc == -1) {
		/* a failed decoder stays failed */
		struct cg_slice d;
		const char *reason = NULL;
		assert_int_equal(
		    http1_chunked_feed(&c, "0\r\n\r\n", 5, &d, &reason), -1);
	}
}

static void
assert_same(const struct ck_result *a, const struct ck_result *b,
            const char *how, size_t at)
{
	if (a->rc != b->rc || a->outlen != b->outlen ||
	    memcmp(a->out, b->out, a->outlen) != 0 ||
	    (a->rc == 1 && a->consumed != b->consumed) ||
	    (a->rc == -1 && strcmp(a->reason, b->reason) != 0))
		fail_msg("chunked %s %zu differs: rc %d/%d out %zu/%zu", how,
		         at, a->rc, b->rc, a->outlen, b->outlen);
}

/* Whole, split at every offset, one byte at a time: all the same. */
static void
decode_all_ways(const char *raw, size_t len, struct ck_result *whole)
{
	struct ck_result r;
	size_t k, *cuts;

	decode_cut(raw, len, NULL, 0, whole);
	for (k = 0; k <= len; k++) {
		decode_cut(raw, len, &k, 1, &r);
		assert_same(whole, &r, "split at", k);
	}
	cuts = malloc((len + 1) * sizeof(*cuts));
	for (k = 0; k < len; k++)
		cuts[k] = k + 1;
	decode_cut(raw, len, cuts, len ? len - 1 : 0, &r);
	assert_same(whole, &r, "bytewise", 0);
	free(cuts);
}

#define CK(s) s, sizeof(s) - 1

static void
test_chunked_valid(void **state)
{
	static const char body[] =
	    "5\r\nhello\r\n"
	    "6;a=b;c=\"x y\\\" z\";flag\r\n world\r\n"
	    "A\r\n0123456789\r\n"
	    "0000000000000001\r\n!\r\n"
	    "0\r\nX-Trailer: 1\r\nContent-Length: 99\r\n"
	    "Transfer-Encoding: gzip\r\n\r\nNEXT REQUEST";
	static const char empty[] = "0\r\n\r\n";
	static const char ext0[] = "000;x=\"\"\r\n\r\n";
	struct ck_result r;

	decode_all_ways(CK(body), &r);
	assert_int_equal(r.rc, 1);
	assert_int_equal(r.outlen, 22);
	assert_memory_equal(r.out, "hello world0123456789!", 22);
	/* trailers consumed and dropped; what follows is left alone */
	assert_int_equal(r.consumed, sizeof(body) - 1 - strlen("NEXT REQUEST"));

	decode_all_ways(CK(empty), &r);
	assert_int_equal(r.rc, 1);
	assert_int_equal(r.outlen, 0);
	assert_int_equal(r.consumed, 5);

	decode_all_ways(CK(ext0), &r);
	assert_int_equal(r.rc, 1);

	/* incomplete bodies want more, never report done */
	decode_all_ways(CK("5\r\nhel"), &r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.outlen, 3);
	decode_all_ways(CK("0\r\nX: y\r\n"), &r);
	assert_int_equal(r.rc, 0);
	/* the largest size fits 16 digits; its data is simply not there */
	decode_all_ways(CK("ffffffffffffffff\r\nab"), &r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.outlen, 2);
}

static void
test_chunked_errors(void **state)
{
	static const char *const bad[] = {
	    "0x5\r\nhello\r\n0\r\n\r\n",
	    "+5\r\nhello\r\n0\r\n\r\n",
	    "-5\r\nhello\r\n0\r\n\r\n",
	    " 5\r\nhello\r\n0\r\n\r\n",
	    "5 \r\nhello\r\n0\r\n\r\n",
	    "5 \t\r\nhello\r\n0\r\n\r\n",
	    "5;a= \r\nhello\r\n0\r\n\r\n",
	    "5;a \r\nhello\r\n0\r\n\r\n",
	    "5;a=b ;\r\nhello\r\n0\r\n\r\n",
	    "5;a=\r\nhello\r\n0\r\n\r\n",
	    "5;=b\r\nhello\r\n0\r\n\r\n",
	    "5;\r\nhello\r\n0\r\n\r\n",
	    "5;a=b c\r\nhello\r\n0\r\n\r\n",
	    "5;a=\"b\x01\"\r\nhello\r\n0\r\n\r\n",
	    "5;a=\"b\r\nhello\r\n0\r\n\r\n",
	    "5;a=\"b\"c\r\nhello\r\n0\r\n\r\n",
	    "5;a\0\r\nhello\r\n0\r\n\r\n",
	    "\r\nhello\r\n0\r\n\r\n",
	    "g\r\nhello\r\n0\r\n\r\n",
	    "5\nhello\r\n0\r\n\r\n",
	    "5\r\rhello\r\n0\r\n\r\n",
	    "5\r\nhelloX\r\n0\r\n\r\n",
	    "5\r\nhello\n0\r\n\r\n",
	    "5\r\nhello\r0\r\n\r\n",
	    "5\r\nhello0\r\n\r\n",
	    "00000000000000005\r\nhello\r\n0\r\n\r\n",
	    "10000000000000000\r\n",
	    "0\r\nX: a\r\n b\r\n\r\n",
	    "0\r\n X: a\r\n\r\n",
	    "0\r\nX : a\r\n\r\n",
	    "0\r\nX: a\nY: b\r\n\r\n",
	    "0\r\nX: a\x01\r\n\r\n",
	    "0\r\n: a\r\n\r\n",
	    "0\r\nX\r\n\r\n",
	    "0\r\n\r\r",
	    "0\r\n\n",
	    /* BWS only before and after ';' and '=', never before CRLF */
	    "5;a b\r\nhello\r\n0\r\n\r\n",
	    "5;a=\"b\" c\r\nhello\r\n0\r\n\r\n",
	    "5 a\r\nhello\r\n0\r\n\r\n",
	    "5;a=b \r\nhello\r\n0\r\n\r\n",
	    "5;a=\"b\" \r\nhello\r\n0\r\n\r\n",
	    "5 ;a \r\nhello\r\n0\r\n\r\n",
	    "5\v;a\r\nhello\r\n0\r\n\r\n",
	    "5 ;a\nhello\r\n0\r\n\r\n",
	    "5 ;\r\nhello\r\n0\r\n\r\n",
	    "5;a=b c=d\r\nhello\r\n0\r\n\r\n",
	    "0 \r\n\r\n",
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct ck_result r;
		size_t len = strlen(bad[i]);

		if (i == 16)
			len = 18; /* the case with an embedded NUL */
		decode_all_ways(bad[i], len, &r);
		if (r.rc != -1)
			fail_msg("chunked case %zu: rc %d, want -1", i, r.rc);
	}
}

static void
test_chunked_limits(void **state)
{
	char buf[12000];
	struct ck_result r;
	size_t n;

	/* extensions: CG_MAX_CHUNK_EXT bytes pass, one more fails */
	n = (size_t)sprintf(buf, "1;");
	memset(buf + n, 'e', CG_MAX_CHUNK_EXT - 1);
	n += CG_MAX_CHUNK_EXT - 1;
	n += (size_t)sprintf(buf + n, "\r\nx\r\n0\r\n\r\n");
	decode_cut(buf, n, NULL, 0, &r);
	assert_int_equal(r.rc, 1);
	n = (size_t)sprintf(buf, "1;");
	memset(buf + n, 'e', CG_MAX_CHUNK_EXT);
	n += CG_MAX_CHUNK_EXT;
	n += (size_t)sprintf(buf + n, "\r\nx\r\n0\r\n\r\n");
	decode_cut(buf, n, NULL, 0, &r);
	assert_int_equal(r.rc, -1);
	assert_string_equal(r.reason, "chunk extensions too long");

	/* a trailer section over 8 KiB fails */
	n = (size_t)sprintf(buf, "0\r\nX: ");
	memset(buf + n, 'v', 9000);
	n += 9000;
	n += (size_t)sprintf(buf + n, "\r\n\r\n");
	decode_cut(buf, n, NULL, 0, &r);
	assert_int_equal(r.rc, -1);
	assert_string_equal(r.reason, "trailer section too long");
}

/*
 * BWS in chunk extensions (RFC 9112 7.1.1: BWS ";" BWS name [ BWS "="
 * BWS value ]) is removed, as RFC 9110 5.6.3 says a recipient MUST.
 */
static void
test_chunked_bws(void **state)
{
	static const char *const ok[] = {
	    "5 ;a\r\nhello\r\n0\r\n\r\n",
	    "5\t;a=b\r\nhello\r\n0\r\n\r\n",
	    "5; a\r\nhello\r\n0\r\n\r\n",
	    "5;a =b\r\nhello\r\n0\r\n\r\n",
	    "5;a= b\r\nhello\r\n0\r\n\r\n",
	    "5 \t; \ta \t= \t\"x y\" \t; b = c;d\r\nhello\r\n0\r\n\r\n",
	    "5;a=b ;c\r\nhello\r\n0 ; z = \"\"\r\n\r\n",
	};

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct ck_result r;

		decode_all_ways(ok[i], strlen(ok[i]), &r);
		if (r.rc != 1 || r.outlen != 5 || memcmp(r.out, "hello", 5))
			fail_msg("BWS case %zu: rc %d out %zu", i, r.rc,
			         r.outlen);
		assert_int_equal(r.consumed, strlen(ok[i]));
	}
}

/* Sizes: hex in either case, at most CG_MAX_CHUNK_SIZE_DIGITS digits. */
static void
test_chunked_sizes(void **state)
{
	struct ck_result r;

	decode_all_ways(CK("a\r\n0123456789\r\n0\r\n\r\n"), &r);
	assert_int_equal(r.rc, 1);
	assert_int_equal(r.outlen, 10);
	decode_all_ways(CK("00000000000000B\r\n0123456789a\r\n0\r\n\r\n"), &r);
	assert_int_equal(r.rc, 1);
	assert_int_equal(r.outlen, 11);
	decode_cut(CK("00000000000000001\r\nx\r\n0\r\n\r\n"), NULL, 0, &r);
	assert_int_equal(r.rc, -1);
	assert_string_equal(r.reason, "chunk size too long");
	decode_cut(CK("g\r\n"), NULL, 0, &r);
	assert_int_equal(r.rc, -1);
	assert_string_equal(r.reason, "invalid chunk size");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_chunked_valid),
	    cmocka_unit_test(test_chunked_errors),
	    cmocka_unit_test(test_chunked_limits),
	    cmocka_unit_test(test_chunked_bws),
	    cmocka_unit_test(test_chunked_sizes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
