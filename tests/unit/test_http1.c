/*
 * test_http1.c: strict HTTP/1.1 framing.
 *
 * Every request and response here is also parsed at every prefix, each from
 * its own exactly-sized heap copy (so a sanitizer sees any over-read): a
 * prefix must answer "need more" or the very same refusal, never a
 * different successful parse. The chunked decoder: test_http1_chunked.c.
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
#include "consentgate/policy.h"
#include "unit_util.h"

static const struct http1_limits deflim = {CG_DEFAULT_MAX_HEADER_BYTES,
                                           CG_DEFAULT_MAX_HEADER_COUNT};

/* Slices of a parsed head must point inside buf[0,head_len). */
static void
assert_inside(struct cg_slice s, const char *buf, size_t head_len)
{
	assert_true(s.ptr >= buf);
	assert_true(s.ptr + s.len <= buf + head_len);
}

/*
 * Parse raw at every prefix and whole. Returns the full parse's result,
 * with req filled from a copy the caller frees (*keep).
 */
static int
check_request_lim(const char *raw, size_t len, const struct http1_limits *lim,
                  struct http1_request *req, int *status, char **keep)
{
	const char *reason = NULL;
	char *full = dup_bytes(raw, len);
	int rc, st = 0;
	size_t k;
	unsigned h;

	rc = http1_parse_request(full, len, lim, req, &st, &reason);
	if (rc == 1) {
		assert_true(req->head_len <= len);
		for (h = 0; h < req->nheaders; h++) {
			assert_inside(req->headers[h].name, full,
			              req->head_len);
			assert_inside(req->headers[h].value, full,
			              req->head_len);
		}
		assert_inside(req->method, full, req->head_len);
		assert_inside(req->target, full, req->head_len);
	} else if (rc == -1) {
		assert_non_null(reason);
	}
	for (k = 0; k < len; k++) {
		struct http1_request pre;
		char *part = dup_bytes(raw, k);
		const char *r2 = NULL;
		int st2 = 0;
		int rc2 = http1_parse_request(part, k, lim, &pre, &st2, &r2);

		if (rc == 1 && k >= req->head_len) {
			assert_int_equal(rc2, 1);
			assert_int_equal(pre.head_len, req->head_len);
		} else if (rc2 != 0) {
			if (rc2 != -1 || st2 != st)
				fail_msg("prefix %zu of %zu gave %d/%d, full "
				         "gives %d/%d",
				         k, len, rc2, st2, rc, st);
		}
		free(part);
	}
	*status = st;
	*keep = full;
	return rc;
}

static int
check_request(const char *raw, size_t len, struct http1_request *req,
              int *status, char **keep)
{
	return check_request_lim(raw, len, &deflim, req, status, keep);
}

struct refusal {
	const char *raw;
	size_t len; /* 0: strlen */
	int status;
};

#define R(s, st)                                                               \
	{                                                                      \
		s, sizeof(s) - 1, st                                           \
	}
#define H "Host: a\r\n"

static const struct refusal refusals[] = {
    /* framing */
    R("POST / HTTP/1.1\r\n" H "Content-Length: 5\r\n"
      "Transfer-Encoding: chunked\r\n\r\n",
      400),
    R("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n"
      "Content-Length: 5\r\n\r\n",
      400),
    R("POST / HTTP/1.1\r\n" H "Content-Length: 5\r\n"
      "Content-Length: 5\r\n\r\n",
      400),
    R("POST / HTTP/1.1\r\n" H "Content-Length: 5, 5\r\n\r\n", 400),
    R("POST / HTTP/1.1\r\n" H "Content-Length: +5\r\n\r\n", 400),
    R("POST / HTTP/1.1\r\n" H "Content-Length: -1\r\n\r\n", 400),
    R("POST / HTTP/1.1\r\n" H "Content-Length: 0x5\r\n\r\n", 400),
    R("POST / HTTP/1.1\r\n" H "Content-Length: 5a\r\n\r\n", 400),
    R("POST / HTTP/1.1\r\n" H "Content-Length: 5 5\r\n\r\n", 400),
    R("POST / HTTP/1.1\r\n" H "Content-Length: \r\n\r\n", 400),
    R("POST / HTTP/1.1\r\n" H "Content-Length: 18446744073709551616\r\n\r\n",
      400),
    R("POST / HTTP/1.1\r\n" H "Content-Length: 99999999999999999999999\r\n\r\n",
      400),
    R("POST / HTTP/1.1\r\n" H "Transfer-Encoding: gzip\r\n\r\n", 501),
    R("POST / HTTP/1.1\r\n" H "Transfer-Encoding: identity\r\n\r\n", 501),
    R("POST / HTTP/1.1\r\n" H "Transfer-Encoding: gzip, chunked\r\n\r\n", 501),
    R("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked, gzip\r\n\r\n", 501),
    R("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked, chunked\r\n\r\n",
      400),
    R("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n"
      "Transfer-Encoding: chunked\r\n\r\n",
      400),
    R("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked,\r\n\r\n", 400),
    R("POST / HTTP/1.1\r\n" H "Transfer-Encoding: ,chunked\r\n\r\n", 400),
    R("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked;q=1\r\n\r\n", 400),
    /* OWS before the parameter: still chunked's parameter (fuzz_http1) */
    R("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked ;q=1\r\n\r\n", 400),
    R("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\t;q=\"x y\"\r\n\r\n",
      400),
    R("POST / HTTP/1.1\r\n" H "Transfer-Encoding: \r\n\r\n", 400),
    R("POST / HTTP/1.1\r\n" H "Transfer-Encoding: \"chunked\"\r\n\r\n", 400),
    R("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
    R("POST / HTTP/1.1\r\n" H "Transfer_Encoding: chunked\r\n\r\n", 400),
    R("POST / HTTP/1.1\r\n" H "content_length: 5\r\n\r\n", 400),
    R("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n"
      "Transfer-Encodingx: chunked\r\n\r\n",
      400),
    R("POST / HTTP/1.1\r\n" H "transfer-encoding-foo: 1\r\n\r\n", 400),
    R("POST / HTTP/1.1\r\n" H "Content-Length-X: 1\r\n\r\n", 200),
    R("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\t\r\n\r\n", 400),
    R("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked \t \r\n\r\n", 400),
    /* OWS around Content-Length (RFC 9110 5.5): SP and HTAB, both sides
     * (the value is read; consentgate forwards its own framing) */
    R("POST / HTTP/1.1\r\n" H "Content-Length: 5\t\r\n\r\n", 200),
    R("POST / HTTP/1.1\r\n" H "Content-Length:\t5\t\r\n\r\n", 200),
    R("POST / HTTP/1.1\r\n" H "Content-Length: \t 5 \t \r\n\r\n", 200),
    R("POST / HTTP/1.1\r\n" H "Content-Length:5\r\n\r\n", 200),
    R("POST / HTTP/1.1\r\n" H "Content-Length: \t \r\n\r\n", 400),
    R("POST / HTTP/1.1\r\n" H "Content-Length: 5\t,5\r\n\r\n", 400),
    R("POST / HTTP/1.1\r\n" H "Content-Length: 5\t5\r\n\r\n", 400),
    R("POST / HTTP/1.1\r\n" H "Content-Length: 5\v\r\n\r\n", 400),
    R("POST / HTTP/1.1\r\n" H "Content-Length: 5\f\r\n\r\n", 400),
    R("POST / HTTP/1.1\r\n" H "Content-Length: \xa0"
      "5\r\n\r\n",
      400),
    R("POST / HTTP/1.1\r\n" H "Content-Length: 5\t\r\n"
      "Content-Length: 5\r\n\r\n",
      400),
    R("POST / HTTP/1.1\r\n" H "Content-Length: -0\t\r\n\r\n", 400),
    R("POST / HTTP/1.1\r\n" H "Content-Length:\t+5\r\n\r\n", 400),
    R("POST / HTTP/1.1\r\n" H "Transfer-Encoding:\tchunked  \r\n\r\n", 200),
    R("GET / HTTP/1.1\r\n" H "HOST_: b\r\n"
      "Ho_st: b\r\nHos_t: c\r\n"
      "h_ost: d\r\n\r\n",
      200 /* not refused: see test_valid_misc */),
    /* field syntax */
    R("GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
    R("POST / HTTP/1.1\r\n" H "Content-Length : 5\r\n\r\n", 400),
    R("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", 400),
    R("GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", 400),
    R("GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", 400),
    R("GET / HTTP/1.1\r\nHost: a\r\n\n", 400),
    R("GET / HTTP/1.1\r\nHost: a\n\n", 400),
    R("GET / HTTP/1.1\r\nHost: a\r\n\r\r\n", 400),
    R("GET / HTTP/1.1\nHost: a\r\n\r\n", 400),
    R("GET / HTTP/1.1\rHost: a\r\n\r\n", 400),
    R("GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n c\r\n\r\n", 400),
    R("GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n\tc\r\n\r\n", 400),
    R("GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400),
    R("GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", 400),
    R("GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f"
      "b\r\n\r\n",
      400),
    R("GET / HTTP/1.1\r\nHost: a\r\nX: a\x01"
      "b\r\n\r\n",
      400),
    R("GET / HTTP/1.1\r\nHost: a\r\nX: a\x1b"
      "b\r\n\r\n",
      400),
    R("GET / HTTP/1.1\r\nHost: a\r\nX\0: b\r\n\r\n", 400),
    R("GET / HTTP/1.1\r\nHost: a\r\nX\x7f: b\r\n\r\n", 400),
    R("GET / HTTP/1.1\r\nHost: a\r\nX(y: b\r\n\r\n", 400),
    R("GET / HTTP/1.1\r\nHost: a\r\nX@y: b\r\n\r\n", 400),
    R("GET / HTTP/1.1\r\nHost: a\r\nX\xc3\xa9: b\r\n\r\n", 400),
    R("GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n", 400),
    R("GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", 400),
    /* Host */
    R("GET / HTTP/1.1\r\n\r\n", 400),
    R("GET / HTTP/1.1\r\nX: a\r\n\r\n", 400),
    R("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400),
    R("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 400),
    R("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
    R("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
    R("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400),
    R("GET / HTTP/1.1\r\nHost: a,b\r\n\r\n", 400),
    R("GET / HTTP/1.1\r\nHost: a:b\r\n\r\n", 400),
    R("GET / HTTP/1.1\r\nHost: a:80:80\r\n\r\n", 400),
    R("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400),
    R("GET / HTTP/1.1\r\nHost: []\r\n\r\n", 400),
    R("GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n", 400),
    R("GET / HTTP/1.1\r\nHost: a]\r\n\r\n", 400),
    R("GET / HTTP/1.1\r\nHost: a:80\r\n\r\n", 200),
    R("GET / HTTP/1.1\r\nHost: a:\r\n\r\n", 200),
    R("GET / HTTP/1.1\r\nHost:\r\n\r\n", 200),
    R("GET / HTTP/1.1\r\nHost: [v1.x]:8\r\n\r\n", 200),
    /* request line */
    R("GET / HTTP/2.0\r\n" H "\r\n", 400),
    R("GET / http/1.1\r\n" H "\r\n", 400),
    R("GET / HTTP/1.10\r\n" H "\r\n", 400),
    R("GET / HTTP/1\r\n" H "\r\n", 400),
    R("GET / HTTP/1.1 \r\n" H "\r\n", 400),
    R("GET / HTTP/1.x\r\n" H "\r\n", 400),
    R("GET /\r\n" H "\r\n", 400),
    R("GET / HTTP/1.2\r\n" H "\r\n", 505),
    R("GET / HTTP/1.9\r\n" H "\r\n", 505),
    R("G(T / HTTP/1.1\r\n" H "\r\n", 400),
    R("G\x01T / HTTP/1.1\r\n" H "\r\n", 400),
    R(" GET / HTTP/1.1\r\n" H "\r\n", 400),
    R("GET  / HTTP/1.1\r\n" H "\r\n", 400),
    R("GET /  HTTP/1.1\r\n" H "\r\n", 400),
    R("GET\t/ HTTP/1.1\r\n" H "\r\n", 400),
    R("GET /a b HTTP/1.1\r\n" H "\r\n", 400),
    R("GET /a\x01 HTTP/1.1\r\n" H "\r\n", 400),
    R("GET /a\x7f HTTP/1.1\r\n" H "\r\n", 400),
    R("GET /\xc3\xa9 HTTP/1.1\r\n" H "\r\n", 400),
    R("GET /a\0b HTTP/1.1\r\n" H "\r\n", 400),
    R("GET /a#f HTTP/1.1\r\n" H "\r\n", 400),
    R("GET /a%zz HTTP/1.1\r\n" H "\r\n", 400),
    R("GET /a% HTTP/1.1\r\n" H "\r\n", 400),
    /* bytes real clients send raw outside RFC 3986: taken in the path and
     * the query, '\\' in the query only (read as '/' in a path) */
    R("GET /a\"b HTTP/1.1\r\n" H "\r\n", 200),
    R("GET /a\"<>^`{|}[]b HTTP/1.1\r\n" H "\r\n", 200),
    R("GET /a?q=\"<>^`{|}[]\\ HTTP/1.1\r\n" H "\r\n", 200),
    R("GET /a?x=1|2&y={\"k\":[1]} HTTP/1.1\r\n" H "\r\n", 200),
    R("GET /a\\b HTTP/1.1\r\n" H "\r\n", 400),
    R("GET /a\\?b HTTP/1.1\r\n" H "\r\n", 400),
    R("GET /a?b#c HTTP/1.1\r\n" H "\r\n", 400),
    R("GET /a?b\tc HTTP/1.1\r\n" H "\r\n", 400),
    R("GET /a?b\x7f HTTP/1.1\r\n" H "\r\n", 400),
    R("GET /a?b\x01 HTTP/1.1\r\n" H "\r\n", 400),
    R("GET /a?b\x0c HTTP/1.1\r\n" H "\r\n", 400),
    R("GET /a?\xc3\xa9 HTTP/1.1\r\n" H "\r\n", 400),
    R("GET /a?\x80 HTTP/1.1\r\n" H "\r\n", 400),
    R("GET /a?\xff HTTP/1.1\r\n" H "\r\n", 400),
    R("GET /a?b\rc HTTP/1.1\r\n" H "\r\n", 400),
    R("GET /a?b\nc HTTP/1.1\r\n" H "\r\n", 400),
    R("GET /a?b\0c HTTP/1.1\r\n" H "\r\n", 400),
    R("GET /a?b%zz HTTP/1.1\r\n" H "\r\n", 400),
    R("GET /a?b% HTTP/1.1\r\n" H "\r\n", 400),
    R("GET /a?b%4 HTTP/1.1\r\n" H "\r\n", 400),
    /* absolute-form (RFC 9112 3.2.2) with a Host identical to its
     * authority; other forms refused */
    R("GET http://a/ HTTP/1.1\r\n" H "\r\n", 200),
    R("GET HTTP://A/x?y HTTP/1.1\r\n" H "\r\n", 200),
    R("GET https://a/x HTTP/1.1\r\n" H "\r\n", 200),
    R("GET http://a:8080/ HTTP/1.1\r\nHost: A:8080\r\n\r\n", 200),
    R("GET http://[::1]:8/p HTTP/1.1\r\nHost: [::1]:8\r\n\r\n", 200),
    R("GET http://a/ HTTP/1.0\r\n\r\n", 200),
    R("GET http://a/ HTTP/1.1\r\nHost: b\r\n\r\n", 400),
    R("GET http://a/ HTTP/1.1\r\nHost: a:80\r\n\r\n", 200),
    R("GET http://a:80/ HTTP/1.1\r\n" H "\r\n", 200),
    R("GET http://a:/ HTTP/1.1\r\nHost: a:80\r\n\r\n", 200),
    R("GET https://a:443/ HTTP/1.1\r\nHost: a:\r\n\r\n", 200),
    R("GET http://[::1]/ HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", 200),
    R("GET http://a:443/ HTTP/1.1\r\n" H "\r\n", 400),
    R("GET https://a:80/ HTTP/1.1\r\n" H "\r\n", 400),
    R("GET http://a:080/ HTTP/1.1\r\n" H "\r\n", 400),
    R("GET http://a:8/ HTTP/1.1\r\nHost: a:80\r\n\r\n", 400),
    R("GET http://[::1]/ HTTP/1.1\r\nHost: [::1:80]\r\n\r\n", 400),
    R("GET http://a:80/ HTTP/1.1\r\nHost: b:80\r\n\r\n", 400),
    R("GET http://1:80/ HTTP/1.1\r\nHost: 180\r\n\r\n", 400),
    R("GET http://a/ HTTP/1.1\r\nHost:\r\n\r\n", 400),
    R("GET http://a/ HTTP/1.0\r\nHost: b\r\n\r\n", 400),
    R("GET http://a/ HTTP/1.1\r\n\r\n", 400),
    R("GET http://a/ HTTP/1.1\r\n" H H "\r\n", 400),
    R("GET http://a HTTP/1.1\r\n" H "\r\n", 400),
    R("GET http://a?x HTTP/1.1\r\n" H "\r\n", 400),
    R("GET http://u@a/ HTTP/1.1\r\n" H "\r\n", 400),
    R("GET http://u:p@a/ HTTP/1.1\r\n" H "\r\n", 400),
    R("GET http://@a/ HTTP/1.1\r\n" H "\r\n", 400),
    R("GET http:///a HTTP/1.1\r\n" H "\r\n", 400),
    R("GET http://:80/ HTTP/1.1\r\nHost: :80\r\n\r\n", 400),
    R("GET http:/a/ HTTP/1.1\r\n" H "\r\n", 400),
    R("GET http:a/ HTTP/1.1\r\n" H "\r\n", 400),
    R("GET http: HTTP/1.1\r\n" H "\r\n", 400),
    R("GET ftp://a/ HTTP/1.1\r\n" H "\r\n", 400),
    R("GET ws://a/ HTTP/1.1\r\n" H "\r\n", 400),
    R("GET httpx://a/ HTTP/1.1\r\n" H "\r\n", 400),
    R("GET urn:a HTTP/1.1\r\n" H "\r\n", 400),
    R("GET http://a,b/ HTTP/1.1\r\nHost: a,b\r\n\r\n", 400),
    R("GET http://a:x/ HTTP/1.1\r\nHost: a:x\r\n\r\n", 400),
    R("GET http://[::1/ HTTP/1.1\r\n" H "\r\n", 400),
    R("GET http://a\\b/ HTTP/1.1\r\n" H "\r\n", 400),
    R("GET http://a\"b/ HTTP/1.1\r\n" H "\r\n", 400),
    R("GET http://a/x\\y HTTP/1.1\r\n" H "\r\n", 400),
    R("GET http://a/%zz HTTP/1.1\r\n" H "\r\n", 400),
    R("GET http://a/#f HTTP/1.1\r\n" H "\r\n", 400),
    R("GET http://a/\xc3\xa9 HTTP/1.1\r\n" H "\r\n", 400),
    R("GET a HTTP/1.1\r\n" H "\r\n", 400),
    R("GET a:443 HTTP/1.1\r\n" H "\r\n", 400),
    R("GET //a/b HTTP/1.1\r\n" H "\r\n", 200),
    R("OPTIONS * HTTP/1.1\r\n" H "\r\n", 400),
    R("CONNECT http://a/ HTTP/1.1\r\n" H "\r\n", 501),
    R("CONNECT a:443 HTTP/1.1\r\n" H "\r\n", 501),
    R("\nGET / HTTP/1.1\r\n" H "\r\n", 400),
    R("\r\n\nGET / HTTP/1.1\r\n" H "\r\n", 400),
    R("\r\rGET / HTTP/1.1\r\n" H "\r\n", 400),
    /* fields consentgate decides by or writes as proof: once, no '_'
     * twin (a WSGI server keeps the last and reads '_' as '-') */
    R("POST / HTTP/1.1\r\n" H "Content-Type: application/x-ndjson\r\n"
      "Content-Type: application/json\r\n\r\n",
      400),
    R("POST / HTTP/1.1\r\n" H "Content-Type: application/json\r\n"
      "content-type: application/json\r\n\r\n",
      400),
    R("POST / HTTP/1.1\r\n" H "Content-Type: application/json\r\n"
      "Content_Type: application/x-ndjson\r\n\r\n",
      400),
    R("POST / HTTP/1.1\r\n" H "Content-Encoding: gzip\r\n"
      "Content-Encoding: identity\r\n\r\n",
      400),
    R("POST / HTTP/1.1\r\n" H "content_encoding: gzip\r\n\r\n", 400),
    R("POST / HTTP/1.1\r\n" H "Consent_Result: kept=9\r\n\r\n", 400),
    R("POST / HTTP/1.1\r\n" H "CONSENT_PURPOSE: x\r\n\r\n", 400),
    R("POST / HTTP/1.1\r\n" H "Consent_Policy: x\r\n\r\n", 400),
    R("POST / HTTP/1.1\r\n" H "Content_Usage: train-ai=y\r\n\r\n", 400),
    R("POST / HTTP/1.1\r\n" H "Content-Type: a\r\nContent-Usage: x\r\n"
      "Consent-Result: x\r\nX_Other_Name: y\r\nContent_Typo: z\r\n\r\n",
      200),
    /* Upgrade, Expect, Connection */
    R("GET / HTTP/1.1\r\n" H "Upgrade: websocket\r\n"
      "Connection: Upgrade\r\n\r\n",
      501),
    R("POST / HTTP/1.1\r\n" H "Expect: 200-ok\r\n\r\n", 417),
    R("POST / HTTP/1.1\r\n" H "Expect: 100-continue, x\r\n\r\n", 417),
    R("GET / HTTP/1.1\r\n" H "Connection: close;x\r\n\r\n", 400),
    R("GET / HTTP/1.1\r\n" H "Connection: \"close\"\r\n\r\n", 400),
};

static void
test_refusals(void **state)
{
	size_t i;

	for (i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
		struct http1_request req;
		char *keep;
		int st = 0;
		int rc = check_request(refusals[i].raw, refusals[i].len, &req,
		                       &st, &keep);

		if (refusals[i].status == 200) {
			if (rc != 1)
				fail_msg("case %zu: expected a parse", i);
		} else if (rc != -1 || st != refusals[i].status) {
			fail_msg("case %zu: expected %d, got rc %d status %d",
			         i, refusals[i].status, rc, st);
		}
		free(keep);
	}
}

static void
assert_slice(struct cg_slice s, const char *lit)
{
	if (s.len != strlen(lit) || memcmp(s.ptr, lit, s.len) != 0)
		fail_msg("slice \"%.*s\" != \"%s\"", (int)s.len, s.ptr, lit);
}

static void
test_valid_get(void **state)
{
	static const char raw[] = "GET /v1/items?id=7&x=%2F HTTP/1.1\r\n"
	                          "Host: api.example:8080\r\n"
	                          "User-Agent: t\r\n"
	                          "Accept:*/*\r\n"
	                          "X-Pad: \t v a l \t \r\n"
	                          "X-Obs: caf\xc3\xa9\r\n"
	                          "X-Empty:\r\n"
	                          "\r\n";
	struct http1_request req;
	char *keep;
	int st;

	assert_int_equal(check_request(raw, sizeof(raw) - 1, &req, &st, &keep),
	                 1);
	assert_slice(req.method, "GET");
	assert_slice(req.target, "/v1/items?id=7&x=%2F");
	assert_slice(req.path, "/v1/items");
	assert_slice(req.query, "id=7&x=%2F");
	assert_int_equal(req.minor, 1);
	assert_int_equal(req.nheaders, 6);
	assert_slice(req.headers[0].name, "Host");
	assert_slice(req.headers[0].value, "api.example:8080");
	assert_slice(req.headers[2].name, "Accept");
	assert_slice(req.headers[2].value, "*/*");
	assert_slice(req.headers[3].value, "v a l");
	assert_slice(req.headers[4].value, "caf\xc3\xa9");
	assert_slice(req.headers[5].name, "X-Empty");
	assert_int_equal(req.headers[5].value.len, 0);
	assert_slice(req.host, "api.example:8080");
	assert_int_equal(req.framing, HTTP1_FRAMING_NONE);
	assert_int_equal(req.content_length, 0);
	assert_true(req.keep_alive);
	assert_false(req.expect_continue);
	assert_int_equal(req.head_len, sizeof(raw) - 1);
	free(keep);
}

static void
test_valid_post_length(void **state)
{
	static const char raw[] = "\r\n\r\nPOST /ingest HTTP/1.1\r\n"
	                          "host: h\r\n"
	                          "content-length: 0042\r\n"
	                          "Connection: foo, , Close\r\n"
	                          "Expect: 100-Continue\r\n"
	                          "\r\n"
	                          "{\"a\":1}";
	struct http1_request req;
	char *keep;
	int st;

	assert_int_equal(check_request(raw, sizeof(raw) - 1, &req, &st, &keep),
	                 1);
	assert_slice(req.method, "POST");
	assert_slice(req.path, "/ingest");
	assert_int_equal(req.query.len, 0);
	assert_int_equal(req.framing, HTTP1_FRAMING_LENGTH);
	assert_int_equal(req.content_length, 42);
	assert_false(req.keep_alive);
	assert_true(req.expect_continue);
	assert_slice(req.host, "h");
	assert_int_equal(req.head_len, sizeof(raw) - 1 - 7);
	free(keep);
}

static void
test_valid_chunked_and_versions(void **state)
{
	static const char te[] = "POST /x? HTTP/1.1\r\nHost: h\r\n"
	                         "Transfer-Encoding: \tChunked \r\n\r\n";
	static const char v10[] = "GET / HTTP/1.0\r\n\r\n";
	static const char v10ka[] = "GET / HTTP/1.0\r\n"
	                            "Expect: 100-continue\r\n"
	                            "Connection: Keep-Alive\r\n\r\n";
	static const char v10kac[] = "GET / HTTP/1.0\r\n"
	                             "Connection: keep-alive\r\n"
	                             "Connection: close\r\n\r\n";
	static const char big[] =
	    "POST / HTTP/1.1\r\nHost: h\r\n"
	    "Content-Length: 18446744073709551615\r\n\r\n";
	struct http1_request req;
	char *keep;
	int st;

	assert_int_equal(check_request(te, sizeof(te) - 1, &req, &st, &keep),
	                 1);
	assert_int_equal(req.framing, HTTP1_FRAMING_CHUNKED);
	assert_slice(req.path, "/x");
	assert_int_equal(req.query.len, 0);
	assert_true(req.keep_alive);
	free(keep);

	assert_int_equal(check_request(v10, sizeof(v10) - 1, &req, &st, &keep),
	                 1);
	assert_int_equal(req.minor, 0);
	assert_false(req.keep_alive);
	assert_int_equal(req.host.len, 0);
	assert_int_equal(req.nheaders, 0);
	free(keep);

	assert_int_equal(
	    check_request(v10ka, sizeof(v10ka) - 1, &req, &st, &keep), 1);
	assert_true(req.keep_alive);
	assert_false(req.expect_continue); /* ignored in HTTP/1.0 */
	free(keep);

	assert_int_equal(
	    check_request(v10kac, sizeof(v10kac) - 1, &req, &st, &keep), 1);
	assert_false(req.keep_alive);
	free(keep);

	assert_int_equal(check_request(big, sizeof(big) - 1, &req, &st, &keep),
	                 1);
	assert_int_equal(req.framing, HTTP1_FRAMING_LENGTH);
	assert_int_equal(req.content_length, UINT64_MAX);
	free(keep);
}

static void
test_limits(void **state)
{
	static const char raw[] = "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\n"
	                          "B: 2\r\nC: 3\r\n\r\n"; /* 44 bytes */
	struct http1_limits lim = {1024, 3};
	struct http1_request req;
	const char *reason;
	char *keep;
	int st = 0;

	/* four fields over a limit of three */
	assert_int_equal(
	    check_request_lim(raw, sizeof(raw) - 1, &lim, &req, &st, &keep),
	    -1);
	assert_int_equal(st, 431);
	free(keep);
	lim.max_headers = 4;
	assert_int_equal(
	    check_request_lim(raw, sizeof(raw) - 1, &lim, &req, &st, &keep), 1);
	free(keep);

	/* a head of exactly max_head_bytes fits; one byte less does not */
	lim.max_head_bytes = sizeof(raw) - 1;
	assert_int_equal(
	    check_request_lim(raw, sizeof(raw) - 1, &lim, &req, &st, &keep), 1);
	free(keep);
	assert_false(http1_head_too_long(sizeof(raw) - 2, &lim));
	assert_true(http1_head_too_long(sizeof(raw) - 1, &lim));
	lim.max_head_bytes = sizeof(raw) - 2;
	assert_int_equal(
	    check_request_lim(raw, sizeof(raw) - 1, &lim, &req, &st, &keep),
	    -1);
	assert_int_equal(st, 431);
	free(keep);

	/* an endless head is refused once the limit is buffered */
	{
		size_t n = CG_DEFAULT_MAX_HEADER_BYTES + 100;
		char *buf = malloc(n);
		memset(buf, 'a', n);
		memcpy(buf, "GET / HTTP/1.1\r\nX: ", 19);
		assert_int_equal(
		    http1_parse_request(buf, n - 200, NULL, &req, &st, &reason),
		    0);
		assert_int_equal(
		    http1_parse_request(buf, n, NULL, &req, &st, &reason), -1);
		assert_int_equal(st, 431);
		free(buf);
	}

	/* more fields than CG_MAX_HEADERS even when the limit says more */
	{
		char buf[8192];
		size_t n = 0;
		int k;
		lim.max_head_bytes = sizeof(buf);
		lim.max_headers = 10000;
		n += (size_t)sprintf(buf + n, "GET / HTTP/1.1\r\nHost: h\r\n");
		for (k = 0; k < CG_MAX_HEADERS; k++)
			n += (size_t)sprintf(buf + n, "X%d: y\r\n", k);
		n += (size_t)sprintf(buf + n, "\r\n");
		assert_int_equal(
		    http1_parse_request(buf, n, &lim, &req, &st, &reason), -1);
		assert_int_equal(st, 431);
	}
}

static void
test_valid_misc(void **state)
{
	static const char raw[] = "GET /a/b;c=d/@:!$&'()*+,=-._~ HTTP/1.1\r\n"
	                          "Host: [::1]:80\r\n"
	                          "X-Tab: a\tb\r\n"
	                          "!#$%&'*+-.^_`|~09aZ: v\r\n"
	                          "X_Under: ok\r\n"
	                          "\r\n";
	struct http1_request req;
	char *keep;
	int st;

	assert_int_equal(check_request(raw, sizeof(raw) - 1, &req, &st, &keep),
	                 1);
	assert_slice(req.host, "[::1]:80");
	assert_slice(req.headers[1].value, "a\tb");
	assert_slice(req.headers[2].name, "!#$%&'*+-.^_`|~09aZ");
	assert_int_equal(req.nheaders, 4);
	free(keep);
}

/* absolute-form: the origin form and the authority, slices into buf */
static void
test_valid_absolute(void **state)
{
	static const char raw[] = "POST hTTp://Api.Example:8080/v1/in%20x"
	                          "?q=a|b&r=\"c\" HTTP/1.1\r\n"
	                          "Host: api.example:8080\r\n"
	                          "Content-Length: 0\r\n\r\n";
	static const char v10[] = "GET https://[::1]/ HTTP/1.0\r\n\r\n";
	static const char orig[] = "GET /x HTTP/1.1\r\nHost: a\r\n\r\n";
	struct http1_request req;
	char *keep;
	int st;

	assert_int_equal(check_request(raw, sizeof(raw) - 1, &req, &st, &keep),
	                 1);
	assert_slice(req.target, "/v1/in%20x?q=a|b&r=\"c\"");
	assert_slice(req.path, "/v1/in%20x");
	assert_slice(req.query, "q=a|b&r=\"c\"");
	assert_slice(req.authority, "Api.Example:8080");
	assert_slice(req.host, "api.example:8080");
	assert_inside(req.authority, keep, req.head_len);
	assert_inside(req.path, keep, req.head_len);
	free(keep);

	assert_int_equal(check_request(v10, sizeof(v10) - 1, &req, &st, &keep),
	                 1);
	assert_slice(req.target, "/");
	assert_slice(req.authority, "[::1]");
	assert_null(req.host.ptr);
	free(keep);

	/* origin-form leaves no authority behind from an earlier parse */
	assert_int_equal(
	    check_request(orig, sizeof(orig) - 1, &req, &st, &keep), 1);
	assert_null(req.authority.ptr);
	assert_slice(req.target, "/x");
	free(keep);
}

/* The reason a refused target gets says what is wrong with it. */
static void
test_target_reasons(void **state)
{
	static const struct {
		const char *target, *host, *reason;
	} cases[] = {
	    {"http://b/", "a", "Host differs from the authority"},
	    {"http://a:81/", "a", "Host differs from the authority"},
	    {"http://u@a/", "a", "userinfo"},
	    {"http://a", "a", "empty path"},
	    {"https://a?q", "a", "empty path"},
	    {"http:///x", "a", "empty host"},
	    {"http://:8/x", ":8", "empty host"},
	    {"http://a,b/", "a,b", "invalid host"},
	    {"ftp://a/", "a", "scheme is not http or https"},
	    {"http:/a", "a", "without an authority"},
	    {"*", "a", "asterisk-form"},
	    {"a:443", "a", "authority-form"},
	    {"a", "a", "not in origin or absolute form"},
	    {"http://a/x\\y", "a", "backslash in the path"},
	    {"/x\\y", "a", "backslash in the path"},
	    {"/x?%g0", "a", "'%' not followed by two hex digits"},
	    {"/x#y", "a", "invalid request-target"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char raw[256];
		struct http1_request req;
		const char *reason = NULL;
		int st = 0;
		int n = snprintf(raw, sizeof(raw),
		                 "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n",
		                 cases[i].target, cases[i].host);

		assert_int_equal(http1_parse_request(raw, (size_t)n, &deflim,
		                                     &req, &st, &reason),
		                 -1);
		assert_int_equal(st, 400);
		if (strstr(reason, cases[i].reason) == NULL)
			fail_msg("%s: reason \"%s\", want \"%s\"",
			         cases[i].target, reason, cases[i].reason);
	}
}

/* SP and HTAB around a Content-Length value are OWS (RFC 9110 5.5). */
static void
test_content_length_ows(void **state)
{
	static const char *const values[] = {
	    "5", " 5", "5 ", "\t5", "5\t", " \t5\t ", "\t\t5 \t", "0005"};

	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		char raw[128];
		struct http1_request req;
		char *keep;
		int st = 0;
		int n = snprintf(raw, sizeof(raw),
		                 "POST / HTTP/1.1\r\nHost: a\r\n"
		                 "Content-Length:%s\r\n\r\nhello",
		                 values[i]);

		assert_int_equal(
		    check_request(raw, (size_t)n, &req, &st, &keep), 1);
		assert_int_equal(req.framing, HTTP1_FRAMING_LENGTH);
		assert_int_equal(req.content_length, 5);
		assert_slice(req.headers[1].value, i == 7 ? "0005" : "5");
		free(keep);
	}
}

/*
 * The path of an absolute-form target is the path of its origin form, so
 * every refusal of an inspected route's spellings holds for it: the same
 * route_match answer for "POST <p>" and "POST http://h<p>".
 */
static void
test_absolute_aliases_refused(void **state)
{
	static const char doc[] =
	    "{\"policy\": \"x\", \"purposes\": {\"ai\": {\"aipref\": "
	    "\"train-ai\"}},\n\"routes\": [\n"
	    "{\"name\": \"ingest\", \"method\": \"POST\", \"path\": "
	    "\"/ingest\", \"action\": \"inspect\", \"purpose\": \"ai\", "
	    "\"formats\": [\"ndjson\"], \"subjects\": [\"/a\"], \"on_deny\": "
	    "\"drop\"},\n"
	    "{\"method\": \"*\", \"path_prefix\": \"/\", \"action\": "
	    "\"pass\"}],\n"
	    "\"rules\": [{\"id\": \"d\", \"then\": \"deny\"}]}";
	static const struct {
		const char *method, *path;
		int status; /* 0: the inspected route takes it */
	} cases[] = {
	    {"POST", "/ingest", 0},
	    {"POST", "//ingest", 404},
	    {"POST", "/%69ngest", 404},
	    {"POST", "/%2569ngest", 404},
	    {"POST", "/ingest/", 404},
	    {"POST", "/INGEST", 404},
	    {"POST", "/ingest;x", 404},
	    {"POST", "/ingest.json", 404},
	    {"POST", "/ingest?x=1", 0},
	    {"POST", "/x/../ingest", 404},
	    {"POST", "/x/%2e%2e/ingest", 404},
	    {"POST", "/x%2fingest", 404},
	    {"POST", "/x/%5cingest", 404},
	    {"POST", "/./ingest", 404},
	    {"POST", "/ingest/..;/x", 404},
	    {"POST", "/%00", 404},
	    {"PUT", "/ingest", 405},
	    {"post", "/ingest", 400},
	};
	struct cg_errors errs;
	struct policy *p;

	cg_errors_init(&errs);
	p = policy_load_buf("t.json", doc, sizeof(doc) - 1, &errs);
	assert_non_null(p);
	cg_errors_reset(&errs);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char raw[2][256];
		int n[2];
		int status[2];

		n[0] = snprintf(raw[0], sizeof(raw[0]),
		                "%s %s HTTP/1.1\r\nHost: h\r\n\r\n",
		                cases[i].method, cases[i].path);
		n[1] = snprintf(raw[1], sizeof(raw[1]),
		                "%s http://h%s HTTP/1.1\r\nHost: h\r\n\r\n",
		                cases[i].method, cases[i].path);
		for (int k = 0; k < 2; k++) {
			struct http1_request req;
			struct route_refusal why;
			const struct policy_route *r;
			const char *reason = NULL;
			int st = 0;

			assert_int_equal(
			    http1_parse_request(raw[k], (size_t)n[k], &deflim,
			                        &req, &st, &reason),
			    1);
			memset(&why, 0, sizeof(why));
			r = route_match(p, req.method, req.path, &why);
			status[k] = r ? 0 : why.status;
			if (r != NULL && cases[i].status == 0 &&
			    strcmp(route_name(r), "ingest") != 0)
				fail_msg("%s: taken by %s", raw[k],
				         route_name(r));
		}
		if (status[0] != cases[i].status ||
		    status[1] != cases[i].status)
			fail_msg("%s %s: origin-form %d, absolute-form %d, "
			         "want %d",
			         cases[i].method, cases[i].path, status[0],
			         status[1], cases[i].status);
	}
	policy_free(p);
}

/* ---- responses ---- */

static int
check_response(const char *raw, size_t len, bool head,
               struct http1_response *res, char **keep)
{
	const char *reason = NULL;
	char *full = dup_bytes(raw, len);
	int rc = http1_parse_response(full, len, head, res, &reason);
	size_t k;

	if (rc == 1)
		assert_true(res->head_len <= len);
	if (rc == -1)
		assert_non_null(reason);
	for (k = 0; k < len; k++) {
		struct http1_response pre;
		char *part = dup_bytes(raw, k);
		int rc2 = http1_parse_response(part, k, head, &pre, &reason);

		if (rc == 1 && k >= res->head_len)
			assert_int_equal(rc2, 1);
		else if (rc2 != 0 && rc2 != rc)
			fail_msg("response prefix %zu gave %d, full %d", k, rc2,
			         rc);
		free(part);
	}
	*keep = full;
	return rc;
}

struct resp_case {
	const char *raw;
	size_t len;
	bool head;
	int rc;
	enum http1_framing framing;
	uint64_t content_length;
	bool keep_alive;
};

#define RS(s, head, rc, fr, cl, ka)                                            \
	{                                                                      \
		s, sizeof(s) - 1, head, rc, fr, cl, ka                         \
	}
#define HN HTTP1_FRAMING_NONE
#define HL HTTP1_FRAMING_LENGTH
#define HC HTTP1_FRAMING_CHUNKED
#define HX HTTP1_FRAMING_CLOSE

static const struct resp_case resp_cases[] = {
    RS("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false, 1, HL, 5,
       true),
    RS("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false, 1, HC, 0,
       true),
    RS("HTTP/1.1 200 OK\r\nServer: x\r\n\r\n", false, 1, HX, 0, false),
    RS("HTTP/1.1 204 No Content\r\n\r\n", false, 1, HN, 0, true),
    RS("HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n", false, 1, HN,
       0, true),
    RS("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", true, 1, HN, 0, true),
    RS("HTTP/1.1 100 Continue\r\n\r\n", false, 1, HN, 0, true),
    RS("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false, 1, HL, 1, false),
    RS("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n"
       "Connection: keep-alive\r\n\r\n",
       false, 1, HL, 1, true),
    RS("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n"
       "Connection: close\r\n\r\n",
       false, 1, HL, 1, false),
    RS("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", false, 1, HL, 0, true),
    RS("HTTP/1.1 503 \r\nContent-Length: 0\r\n\r\n", false, 1, HL, 0, true),
    RS("HTTP/1.1 404 Not \xc3\xa9 found\r\nHost: a\r\nHost: b\r\n"
       "Content-Length: 0\r\n\r\n",
       false, 1, HL, 0, true),
    /* refused: framing ambiguity and broken syntax */
    RS("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
       false, -1, HN, 0, false),
    RS("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
       "Transfer-Encoding: chunked\r\n\r\n",
       false, -1, HN, 0, false),
    RS("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", false, -1,
       HN, 0, false),
    RS("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false, -1, HN, 0,
       false),
    RS("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false, -1, HN,
       0, false),
    RS("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", false, -1, HN, 0, false),
    RS("HTTP/1.1 200 OK\r\nContent_Length: 3\r\n\r\n", false, -1, HN, 0, false),
    RS("HTTP/1.1 101 Switching Protocols\r\n\r\n", false, -1, HN, 0, false),
    RS("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\t\r\n\r\n", false, -1, HN,
       0, false),
    /* OWS around Content-Length: a request's HTAB is taken, a response's
     * refused (http-parser 2.9 refuses it; no upstream needs it) */
    RS("HTTP/1.1 200 OK\r\nContent-Length: 5\t\r\n\r\n", false, -1, HN, 0,
       false),
    RS("HTTP/1.1 200 OK\r\nContent-Length:\t5 \r\n\r\n", false, 1, HL, 5, true),
    RS("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
       "Transfer-Encoding_X: 1\r\n\r\n",
       false, -1, HN, 0, false),
    RS("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
       "Transfer-Encodingx: 1\r\n\r\n",
       false, -1, HN, 0, false),
    RS("HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", false, -1, HN, 0, false),
    RS("HTTP/1.1 200 OK\r\nContent-Length: 0\n\r\n", false, -1, HN, 0, false),
    RS("HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", false, -1, HN, 0, false),
    RS("HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n", false, -1, HN, 0,
       false),
    RS("HTTP/1.1 200 O\x01K\r\n\r\n", false, -1, HN, 0, false),
    RS("HTTP/2 200 OK\r\n\r\n", false, -1, HN, 0, false),
    RS("HTTP/1.2 200 OK\r\n\r\n", false, -1, HN, 0, false),
    RS("HTTP/1.1 20 OK\r\n\r\n", false, -1, HN, 0, false),
    RS("HTTP/1.1 2000 OK\r\n\r\n", false, -1, HN, 0, false),
    RS("HTTP/1.1 999 OK\r\n\r\n", false, -1, HN, 0, false),
    RS("HTTP/1.1 099 OK\r\n\r\n", false, -1, HN, 0, false),
    RS("http/1.1 200 OK\r\n\r\n", false, -1, HN, 0, false),
};

static void
test_responses(void **state)
{
	size_t i;

	for (i = 0; i < sizeof(resp_cases) / sizeof(resp_cases[0]); i++) {
		const struct resp_case *c = &resp_cases[i];
		struct http1_response res;
		char *keep;
		int rc = check_response(c->raw, c->len, c->head, &res, &keep);

		if (rc != c->rc)
			fail_msg("response case %zu: rc %d, want %d", i, rc,
			         c->rc);
		if (rc == 1 && (res.framing != c->framing ||
		                res.content_length != c->content_length ||
		                res.keep_alive != c->keep_alive))
			fail_msg("response case %zu: framing %d cl %llu ka %d",
			         i, res.framing,
			         (unsigned long long)res.content_length,
			         res.keep_alive);
		free(keep);
	}
}

static void
test_response_fields(void **state)
{
	static const char raw[] =
	    "HTTP/1.1 201 Created Now\r\n"
	    "Location: /x\r\nContent-Length: 3\r\n\r\nabc";
	struct http1_response res;
	const char *reason;
	char *big;
	size_t n = CG_DEFAULT_MAX_RESPONSE_HEADER_BYTES + 10;

	assert_int_equal(
	    http1_parse_response(raw, sizeof(raw) - 1, false, &res, &reason),
	    1);
	assert_int_equal(res.status, 201);
	assert_int_equal(res.minor, 1);
	assert_slice(res.reason, "Created Now");
	assert_int_equal(res.nheaders, 2);
	assert_slice(res.headers[0].value, "/x");
	assert_int_equal(res.head_len, sizeof(raw) - 4);

	/* a response head that never ends is refused at the limit */
	big = malloc(n);
	memset(big, 'a', n);
	memcpy(big, "HTTP/1.1 200 OK\r\nX: ", 20);
	assert_int_equal(
	    http1_parse_response(big, n - 100, false, &res, &reason), 0);
	assert_int_equal(http1_parse_response(big, n, false, &res, &reason),
	                 -1);
	free(big);
}

/* ---- helpers ---- */

static void
test_helpers(void **state)
{
	static const char raw[] = "GET / HTTP/1.1\r\nHost: h\r\n"
	                          "Connection: keep-alive, X-Secret ,Foo\r\n"
	                          "connection: bar\r\nX-Secret: 1\r\n\r\n";
	struct http1_request req;
	const char *reason;
	int st;

	assert_true(
	    cg_slice_ieq(CG_SLICE_LIT("Content-Length"), "content-length"));
	assert_true(cg_slice_ieq(CG_SLICE_LIT("x"), "X"));
	assert_false(
	    cg_slice_ieq(CG_SLICE_LIT("Content-Lengt"), "content-length"));
	assert_false(
	    cg_slice_ieq(CG_SLICE_LIT("Content-Lengthx"), "content-length"));
	assert_true(cg_slice_ieq((struct cg_slice){"", 0}, ""));

	assert_true(http1_is_hop_by_hop(CG_SLICE_LIT("Connection")));
	assert_true(http1_is_hop_by_hop(CG_SLICE_LIT("keep-alive")));
	assert_true(http1_is_hop_by_hop(CG_SLICE_LIT("TE")));
	assert_true(http1_is_hop_by_hop(CG_SLICE_LIT("Trailer")));
	assert_true(http1_is_hop_by_hop(CG_SLICE_LIT("Transfer-Encoding")));
	assert_true(http1_is_hop_by_hop(CG_SLICE_LIT("Upgrade")));
	assert_true(http1_is_hop_by_hop(CG_SLICE_LIT("Proxy-Authorization")));
	assert_true(http1_is_hop_by_hop(CG_SLICE_LIT("proxy-connection")));
	assert_false(http1_is_hop_by_hop(CG_SLICE_LIT("Trailers")));
	assert_false(http1_is_hop_by_hop(CG_SLICE_LIT("Content-Length")));
	assert_false(http1_is_hop_by_hop(CG_SLICE_LIT("Host")));
	assert_false(http1_is_hop_by_hop(CG_SLICE_LIT("Proxy")));
	assert_false(http1_is_hop_by_hop(CG_SLICE_LIT("Sec-GPC")));

	assert_int_equal(http1_parse_request(raw, sizeof(raw) - 1, &deflim,
	                                     &req, &st, &reason),
	                 1);
	assert_true(http1_connection_names(req.headers, req.nheaders,
	                                   CG_SLICE_LIT("x-secret")));
	assert_true(http1_connection_names(req.headers, req.nheaders,
	                                   CG_SLICE_LIT("FOO")));
	assert_true(http1_connection_names(req.headers, req.nheaders,
	                                   CG_SLICE_LIT("bar")));
	assert_false(http1_connection_names(req.headers, req.nheaders,
	                                    CG_SLICE_LIT("X-Secre")));
	assert_false(http1_connection_names(req.headers, req.nheaders,
	                                    CG_SLICE_LIT("Host")));
	assert_false(http1_connection_names(req.headers, req.nheaders,
	                                    (struct cg_slice){"", 0}));
	assert_true(req.keep_alive);

	assert_ptr_equal(http1_find(req.headers, req.nheaders, "CONNECTION"),
	                 &req.headers[1]);
	assert_ptr_equal(http1_find(req.headers, req.nheaders, "x-secret"),
	                 &req.headers[3]);
	assert_null(http1_find(req.headers, req.nheaders, "x-secre"));
	assert_null(http1_find(req.headers, 0, "host"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_refusals),
	    cmocka_unit_test(test_valid_get),
	    cmocka_unit_test(test_valid_post_length),
	    cmocka_unit_test(test_valid_chunked_and_versions),
	    cmocka_unit_test(test_valid_misc),
	    cmocka_unit_test(test_valid_absolute),
	    cmocka_unit_test(test_target_reasons),
	    cmocka_unit_test(test_content_length_ows),
	    cmocka_unit_test(test_absolute_aliases_refused),
	    cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_responses),
	    cmocka_unit_test(test_response_fields),
	    cmocka_unit_test(test_helpers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
