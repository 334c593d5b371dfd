/*
 * fuzz_http1.c: libFuzzer driver for the strict HTTP/1.1 framing.
 *
 * Invariants checked on every input:
 *  - a parsed request or response has head_len <= len, every slice inside
 *    the head, one known framing, a content length only with LENGTH framing;
 *  - parsing only the head gives the same head, one byte less needs more
 *    or fails the same way (never a different success);
 *  - a refusal carries a status from the documented set and a reason;
 *  - the chunked decoder gives the same payload, consumed count and result
 *    whole and one byte at a time, and never hands out bytes outside input;
 *  - differential: whatever head we accept, Debian's lenient http-parser
 *    (standing in for the upstream) reads with the same framing, length,
 *    field count and keep-alive, so the two can never disagree on where a
 *    message ends.
 *
 * Build with -fsanitize=fuzzer, or with -DFUZZ_STANDALONE to run the files
 * given as arguments (the corpus as a regression test).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <http_parser.h>

#include "../../proxy/http1_internal.h"
#include "fuzz_check.h"

/* exported by libhttp_parser 2.9.4 but missing from its header */
int http_message_needs_eof(const http_parser *parser);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_inside(struct cg_slice s, const char *buf, size_t head_len)
{
	CHECK(s.len == 0 || s.ptr >= buf);
	CHECK(s.len == 0 || s.ptr + s.len <= buf + head_len);
}

static void
check_headers(const struct http1_header *h, unsigned n, const char *buf,
              size_t head_len)
{
	unsigned k;

	CHECK(n <= CG_MAX_HEADERS);
	for (k = 0; k < n; k++) {
		check_inside(h[k].name, buf, head_len);
		check_inside(h[k].value, buf, head_len);
		CHECK(h[k].name.len > 0);
	}
}

struct hp_seen {
	unsigned fields;
	bool complete, skip_body;
	uint64_t content_length;
	bool chunked, keep_alive, needs_eof;
};

static int
hp_on_field(http_parser *hp, const char *at, size_t len)
{
	(void)at;
	(void)len;
	((struct hp_seen *)hp->data)->fields++;
	return 0;
}

static int
hp_on_headers_complete(http_parser *hp)
{
	struct hp_seen *s = hp->data;

	s->complete = true;
	s->content_length =
	    (hp->flags & F_CONTENTLENGTH) ? hp->content_length : 0;
	s->chunked = (hp->flags & F_CHUNKED) != 0;
	s->keep_alive = http_should_keep_alive(hp) != 0;
	s->needs_eof = http_message_needs_eof(hp) != 0;
	return s->skip_body ? 1 : 0;
}

/*
 * Run http-parser over the head we accepted. Returns false when it refuses
 * the head outright (it knows only a fixed list of methods, for one).
 */
static bool
hp_parse(const char *buf, size_t head_len, enum http_parser_type type,
         bool skip_body, struct hp_seen *seen)
{
	http_parser hp;
	http_parser_settings set;
	size_t n;

	memset(&set, 0, sizeof(set));
	memset(seen, 0, sizeof(*seen));
	set.on_header_field = hp_on_field;
	set.on_headers_complete = hp_on_headers_complete;
	seen->skip_body = skip_body;
	http_parser_init(&hp, type);
	hp.data = seen;
	n = http_parser_execute(&hp, &set, buf, head_len);
	if (HTTP_PARSER_ERRNO(&hp) != HPE_OK)
		return false;
	CHECK(n == head_len);
	CHECK(seen->complete);
	return true;
}

static void
fuzz_request(const char *buf, size_t len, const struct http1_limits *lim)
{
	static struct http1_request req, again;
	const char *reason = NULL;
	int st = 0, st2 = 0;
	int rc = http1_parse_request(buf, len, lim, &req, &st, &reason);

	CHECK(rc >= -1 && rc <= 1);
	if (rc == -1) {
		CHECK(reason != NULL);
		CHECK(st == 400 || st == 417 || st == 431 || st == 501 ||
		      st == 505);
		/* the prefix cut in half fails the same way or needs more */
		rc = http1_parse_request(buf, len / 2, lim, &again, &st2,
		                         &reason);
		CHECK(rc == 0 || (rc == -1 && st2 == st));
		return;
	}
	if (rc == 0) {
		CHECK(!http1_head_too_long(len, lim));
		return;
	}
	CHECK(req.head_len <= len);
	CHECK(req.head_len <=
	      (lim ? lim->max_head_bytes : CG_DEFAULT_MAX_HEADER_BYTES));
	CHECK(req.minor == 0 || req.minor == 1);
	check_inside(req.method, buf, req.head_len);
	check_inside(req.target, buf, req.head_len);
	check_inside(req.path, buf, req.head_len);
	check_inside(req.query, buf, req.head_len);
	check_inside(req.host, buf, req.head_len);
	CHECK(req.method.len > 0 && req.target.len > 0);
	CHECK(req.target.ptr[0] == '/');
	check_headers(req.headers, req.nheaders, buf, req.head_len);
	CHECK(req.framing == HTTP1_FRAMING_NONE ||
	      req.framing == HTTP1_FRAMING_LENGTH ||
	      req.framing == HTTP1_FRAMING_CHUNKED);
	CHECK(req.framing == HTTP1_FRAMING_LENGTH || req.content_length == 0);
	CHECK(req.minor == 1 || req.framing != HTTP1_FRAMING_CHUNKED);
	CHECK(req.minor == 0 || req.host.ptr != NULL);
	/* the head alone parses to the same head; one byte less does not */
	CHECK(http1_parse_request(buf, req.head_len, lim, &again, &st2,
	                          &reason) == 1);
	CHECK(again.head_len == req.head_len && again.framing == req.framing &&
	      again.nheaders == req.nheaders &&
	      again.content_length == req.content_length &&
	      again.keep_alive == req.keep_alive);
	CHECK(http1_parse_request(buf, req.head_len - 1, lim, &again, &st2,
	                          &reason) == 0);
	{
		struct hp_seen hs;
		if (hp_parse(buf, req.head_len, HTTP_REQUEST, false, &hs)) {
			CHECK(hs.fields == req.nheaders);
			CHECK(hs.chunked ==
			      (req.framing == HTTP1_FRAMING_CHUNKED));
			CHECK(hs.content_length == req.content_length);
			/* its Connection list parsing is loose; we rebuild
			 * Connection upstream, so only the default matters */
			if (!http1_find(req.headers, req.nheaders,
			                "connection"))
				CHECK(hs.keep_alive == req.keep_alive);
		}
	}
}

static void
fuzz_response(const char *buf, size_t len, bool head)
{
	static struct http1_response res, again;
	const char *reason = NULL;
	int rc = http1_parse_response(buf, len, head, &res, &reason);

	CHECK(rc >= -1 && rc <= 1);
	if (rc == -1)
		CHECK(reason != NULL);
	if (rc != 1)
		return;
	CHECK(res.head_len <= len);
	CHECK(res.status >= 100 && res.status <= 599 && res.status != 101);
	check_inside(res.reason, buf, res.head_len);
	check_headers(res.headers, res.nheaders, buf, res.head_len);
	CHECK(res.framing == HTTP1_FRAMING_NONE ||
	      res.framing == HTTP1_FRAMING_LENGTH ||
	      res.framing == HTTP1_FRAMING_CHUNKED ||
	      res.framing == HTTP1_FRAMING_CLOSE);
	CHECK(res.framing == HTTP1_FRAMING_LENGTH || res.content_length == 0);
	CHECK(!head || res.framing == HTTP1_FRAMING_NONE);
	CHECK(res.framing != HTTP1_FRAMING_CLOSE || !res.keep_alive);
	CHECK(http1_parse_response(buf, res.head_len, head, &again, &reason) ==
	      1);
	CHECK(again.head_len == res.head_len && again.framing == res.framing);
	CHECK(http1_parse_response(buf, res.head_len - 1, head, &again,
	                           &reason) == 0);
	if (res.status >= 200) {
		struct hp_seen hs;
		CHECK(hp_parse(buf, res.head_len, HTTP_RESPONSE, head, &hs));
		CHECK(hs.fields == res.nheaders);
		if (res.framing == HTTP1_FRAMING_CHUNKED)
			CHECK(hs.chunked);
		if (res.framing == HTTP1_FRAMING_LENGTH)
			CHECK(hs.content_length == res.content_length &&
			      !hs.chunked && !hs.needs_eof);
		if (res.framing == HTTP1_FRAMING_CLOSE)
			CHECK(hs.needs_eof);
		/* its skip-body answer (HEAD) takes effect after the callback
		 */
		if (res.framing == HTTP1_FRAMING_NONE && !head)
			CHECK(!hs.needs_eof);
		if (!head &&
		    !http1_find(res.headers, res.nheaders, "connection"))
			CHECK(hs.keep_alive == res.keep_alive);
	}
}

struct ck_out {
	int rc; /* 1 done, 0 more, -1 error */
	size_t consumed, outlen;
	uint64_t sum; /* a position-weighted checksum of the payload */
	const char *reason;
};

static void
ck_feed(struct http1_chunked *c, const char *in, size_t len, struct ck_out *o)
{
	size_t off = 0;

	while (off < len && o->rc == 0) {
		struct cg_slice d;
		const char *reason = NULL;
		long n =
		    http1_chunked_feed(c, in + off, len - off, &d, &reason);
		size_t k;

		if (n < 0) {
			CHECK(reason != NULL);
			o->rc = -1;
			o->reason = reason;
			break;
		}
		CHECK(n > 0 && (size_t)n <= len - off);
		CHECK(d.len == 0 ||
		      (d.ptr >= in + off && d.ptr + d.len <= in + off + n));
		for (k = 0; k < d.len; k++)
			o->sum = o->sum * 31 + (unsigned char)d.ptr[k];
		o->outlen += d.len;
		off += (size_t)n;
		if (c->done)
			o->rc = 1;
	}
	o->consumed += off;
}

struct hp_body {
	uint64_t sum;
	size_t len;
	bool complete;
};

static int
hp_on_body(http_parser *hp, const char *at, size_t len)
{
	struct hp_body *b = hp->data;
	size_t k;

	for (k = 0; k < len; k++)
		b->sum = b->sum * 31 + (unsigned char)at[k];
	b->len += len;
	return 0;
}

static int
hp_on_message_complete(http_parser *hp)
{
	((struct hp_body *)hp->data)->complete = true;
	http_parser_pause(hp, 1); /* stop right at the end of the body */
	return 0;
}

/* A chunked body we accept reads the same, and ends at the same byte. */
static void
hp_check_chunked(const char *body, size_t len, const struct ck_out *o)
{
	static const char head[] = "POST / HTTP/1.1\r\nHost: a\r\n"
	                           "Transfer-Encoding: chunked\r\n\r\n";
	static char msg[sizeof(head) + 4096];
	struct hp_body b = {0, 0, false};
	http_parser hp;
	http_parser_settings set;
	size_t n, total = sizeof(head) - 1 + len;

	if (total > sizeof(msg))
		return;
	memcpy(msg, head, sizeof(head) - 1);
	memcpy(msg + sizeof(head) - 1, body, len);
	memset(&set, 0, sizeof(set));
	set.on_body = hp_on_body;
	set.on_message_complete = hp_on_message_complete;
	http_parser_init(&hp, HTTP_REQUEST);
	hp.data = &b;
	n = http_parser_execute(&hp, &set, msg, total);
	/* it may refuse what we accept in trailers, which we drop anyway
	 * (Content-Length there, say); it must never end elsewhere */
	if (HTTP_PARSER_ERRNO(&hp) != HPE_PAUSED &&
	    HTTP_PARSER_ERRNO(&hp) != HPE_OK)
		return;
	CHECK(b.complete);
	CHECK(n == sizeof(head) - 1 + o->consumed);
	CHECK(b.len == o->outlen && b.sum == o->sum);
}

static void
fuzz_chunked(const char *buf, size_t len)
{
	struct http1_chunked a, b;
	struct ck_out whole = {0}, bytes = {0};
	size_t k;

	http1_chunked_init(&a);
	ck_feed(&a, buf, len, &whole);
	http1_chunked_init(&b);
	for (k = 0; k < len && bytes.rc == 0; k++)
		ck_feed(&b, buf + k, 1, &bytes);
	CHECK(whole.rc == bytes.rc);
	CHECK(whole.outlen == bytes.outlen && whole.sum == bytes.sum);
	CHECK(whole.rc != 1 || whole.consumed == bytes.consumed);
	CHECK(whole.rc != -1 || strcmp(whole.reason, bytes.reason) == 0);
	CHECK(whole.rc != 1 || a.total == whole.outlen);
	if (whole.rc == 1)
		hp_check_chunked(buf, len, &whole);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	struct http1_limits small = {256, 8};

	fuzz_request(buf, size, NULL);
	fuzz_request(buf, size, &small);
	fuzz_response(buf, size, false);
	fuzz_response(buf, size, true);
	fuzz_chunked(buf, size);
	return 0;
}

#ifdef FUZZ_STANDALONE
int
main(int argc, char **argv)
{
	int i, rc = 0;

	for (i = 1; i < argc; i++) {
		FILE *f = fopen(argv[i], "rb");
		char *buf = NULL;
		long n;

		if (!f || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 ||
		    fseek(f, 0, SEEK_SET) != 0 ||
		    !(buf = malloc((size_t)n ? (size_t)n : 1)) ||
		    fread(buf, 1, (size_t)n, f) != (size_t)n) {
			fprintf(stderr, "%s: cannot read\n", argv[i]);
			rc = 1;
		} else {
			LLVMFuzzerTestOneInput((const uint8_t *)buf, (size_t)n);
		}
		free(buf);
		if (f)
			fclose(f);
	}
	if (rc == 0)
		printf("fuzz_http1: %d inputs ok\n", argc - 1);
	return rc;
}
#endif
