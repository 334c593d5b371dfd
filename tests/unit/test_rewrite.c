/*
 * test_rewrite.c: the heads consentgate writes itself: the upstream
 * request (hop-by-hop and Connection-named fields, framing, Expect and
 * Consent-* dropped; Host for HTTP/1.0; Via, Forwarded; one recomputed
 * framing) and the relayed response head; the Forwarded for= value.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../proxy/rewrite_internal.h"
#include "unit_util.h"

static const struct rewrite_client from_v4 = {"10.0.0.1", false, NULL};
static const struct rewrite_client from_v6 = {"\"[::1]\"", false, NULL};

static void
parse(const char *raw, struct http1_request *req)
{
	static const struct http1_limits lim = {CG_DEFAULT_MAX_HEADER_BYTES,
	                                        CG_DEFAULT_MAX_HEADER_COUNT};
	const char *reason = NULL;
	int status = 0;

	assert_int_equal(
	    http1_parse_request(raw, strlen(raw), &lim, req, &status, &reason),
	    1);
}

static void
test_request_head(void **state)
{
	static const char raw[] =
	    "POST /in?x=1 HTTP/1.1\r\nHost: h\r\nConnection: close, X-Hop\r\n"
	    "X-Hop: 1\r\nKeep-Alive: 5\r\nTransfer-Encoding: chunked\r\n"
	    "Expect: 100-continue\r\nConsent-Result: kept=9\r\n"
	    "X-Keep: a\r\n\r\n";
	struct http1_request req;
	struct inspect_result insp;
	struct evbuffer *h = evbuffer_new();
	char *s;

	memset(&insp, 0, sizeof(insp)); /* not inspected */
	parse(raw, &req);
	rewrite_request_head(h, &req, &insp, &from_v4, "up:9000", 7, false);
	s = buf_text(h);
	assert_string_equal(s, "POST /in?x=1 HTTP/1.1\r\nHost: h\r\n"
	                       "X-Keep: a\r\n"
	                       "Via: 1.1 consentgate\r\n"
	                       "Forwarded: for=10.0.0.1;proto=http\r\n"
	                       "X-Forwarded-For: 10.0.0.1\r\n"
	                       "Content-Length: 7\r\n\r\n");
	free(s);
	evbuffer_drain(h, evbuffer_get_length(h));
	/* streamed: chunked instead of a length */
	rewrite_request_head(h, &req, &insp, &from_v4, "up:9000", 0, true);
	s = buf_text(h);
	assert_non_null(strstr(s, "\r\nTransfer-Encoding: chunked\r\n\r\n"));
	assert_null(strstr(s, "Content-Length"));
	free(s);
	evbuffer_free(h);
}

/* HTTP/1.0 without Host: the upstream's; Via says 1.0; no body, no
   framing field. */
static void
test_request_head_http10(void **state)
{
	struct http1_request req;
	struct inspect_result insp;
	struct evbuffer *h = evbuffer_new();
	char *s;

	memset(&insp, 0, sizeof(insp));
	parse("GET / HTTP/1.0\r\n\r\n", &req);
	rewrite_request_head(h, &req, &insp, &from_v6, "up:9000", 0, false);
	s = buf_text(h);
	assert_string_equal(s, "GET / HTTP/1.1\r\nHost: up:9000\r\n"
	                       "Via: 1.0 consentgate\r\n"
	                       "Forwarded: for=\"[::1]\";proto=http\r\n"
	                       "X-Forwarded-For: ::1\r\n\r\n");
	free(s);
	evbuffer_free(h);
}

/* A TLS client: proto=https and its identity, in our element, appended
   last: what the client claims in its own element stays before it; its
   X-Forwarded-For fields become one, our address appended. */
static void
test_request_head_tls_client(void **state)
{
	static const char raw[] =
	    "GET /x HTTP/1.1\r\nHost: h\r\n"
	    "Forwarded: "
	    "for=1.2.3.4;proto=https;client=\"uri:spiffe://x/admin\"\r\n"
	    "X-Forwarded-For: 192.0.2.1, 192.0.2.2\r\nX-Forwarded-For: "
	    "192.0.2.3\r\n"
	    "\r\n";
	static const struct rewrite_client from = {
	    "10.0.0.2", true, "uri:spiffe://example.org/poster"};
	struct http1_request req;
	struct inspect_result insp;
	struct evbuffer *h = evbuffer_new();
	char *s;

	memset(&insp, 0, sizeof(insp));
	parse(raw, &req);
	rewrite_request_head(h, &req, &insp, &from, "up:9000", 0, false);
	s = buf_text(h);
	assert_string_equal(
	    s, "GET /x HTTP/1.1\r\nHost: h\r\n"
	       "Forwarded: for=1.2.3.4;proto=https;client=\"uri:spiffe://x/"
	       "admin\"\r\nVia: 1.1 consentgate\r\n"
	       "Forwarded: for=10.0.0.2;proto=https;"
	       "client=\"uri:spiffe://example.org/poster\"\r\n"
	       /* the client's X-Forwarded-For, every field, ours appended */
	       "X-Forwarded-For: 192.0.2.1, 192.0.2.2, 192.0.2.3, 10.0.0.2\r\n"
	       "\r\n");
	free(s);
	evbuffer_free(h);
}

static void
test_response_head(void **state)
{
	static const char raw[] =
	    "HTTP/1.1 201 Made\r\nConnection: X-A\r\nX-A: 1\r\n"
	    "Transfer-Encoding: chunked\r\nConsent-Result: x\r\nX-B: 2\r\n\r\n";
	struct http1_response res;
	struct evbuffer *o = evbuffer_new();
	const char *reason = NULL;
	char *s;

	assert_int_equal(
	    http1_parse_response(raw, strlen(raw), false, &res, &reason), 1);
	rewrite_response_head(o, &res, true, true, NULL);
	s = buf_text(o);
	assert_string_equal(s, "HTTP/1.1 201 Made\r\nX-B: 2\r\n"
	                       "Transfer-Encoding: chunked\r\n");
	free(s);
	evbuffer_drain(o, evbuffer_get_length(o));
	/* a pass route keeps the upstream's Consent-*; a 1.0 client gets no
	   chunked framing (the body is de-chunked, read to close) */
	rewrite_response_head(o, &res, false, false, NULL);
	s = buf_text(o);
	assert_string_equal(s, "HTTP/1.1 201 Made\r\nConsent-Result: x\r\n"
	                       "X-B: 2\r\n");
	free(s);
	evbuffer_free(o);
}

static void
test_peer(void **state)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};
	struct sockaddr sun = {.sa_family = AF_UNIX};
	char out[REWRITE_PEER_MAX];

	sin.sin_addr.s_addr = htonl(0x7f000001);
	rewrite_peer((struct sockaddr *)&sin, out, sizeof(out));
	assert_string_equal(out, "127.0.0.1");
	sin6.sin6_addr.s6_addr[15] = 1;
	rewrite_peer((struct sockaddr *)&sin6, out, sizeof(out));
	assert_string_equal(out, "\"[::1]\"");
	rewrite_peer(&sun, out, sizeof(out));
	assert_string_equal(out, "unknown");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_request_head),
	    cmocka_unit_test(test_request_head_http10),
	    cmocka_unit_test(test_request_head_tls_client),
	    cmocka_unit_test(test_response_head),
	    cmocka_unit_test(test_peer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
