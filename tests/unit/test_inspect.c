/*
 * test_inspect.c: the I/O inspect.c keeps around the verdict: the gzip
 * inflater and its limits (corrupt, truncated, trailing bytes, size and
 * ratio), the Consent-* lines written from a verdict, and a streamed
 * body split over chains at every kind of boundary forwarding what the
 * verdict line by line keeps.
 */
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

#include <zlib.h>

#include "../../proxy/inspect_internal.h"

/* gzip of buf[0,len) into a new evbuffer */
static struct evbuffer *
gz(const char *buf, size_t len)
{
	struct evbuffer *b = evbuffer_new();
	unsigned char out[1 << 16];
	z_stream zs;

	memset(&zs, 0, sizeof(zs));
	assert_int_equal(deflateInit2(&zs, 9, Z_DEFLATED, 16 + MAX_WBITS, 8,
	                              Z_DEFAULT_STRATEGY),
	                 Z_OK);
	zs.next_in = (unsigned char *)(uintptr_t)buf;
	zs.avail_in = (uInt)len;
	do {
		zs.next_out = out;
		zs.avail_out = sizeof(out);
		deflate(&zs, Z_FINISH);
		evbuffer_add(b, out, sizeof(out) - zs.avail_out);
	} while (zs.avail_out == 0);
	deflateEnd(&zs);
	return b;
}

static void
test_inflate_ok(void **state)
{
	const char body[] = "{\"a\":\"1\"}\n{\"a\":\"2\"}\n";
	struct evbuffer *b = gz(body, strlen(body));
	const char *detail = NULL;
	int status = -1;

	assert_int_equal(inspect_inflate(b, 1 << 20, &status, &detail), 0);
	assert_int_equal(status, 0);
	assert_int_equal(evbuffer_get_length(b), strlen(body));
	assert_memory_equal(evbuffer_pullup(b, -1), body, strlen(body));
	evbuffer_free(b);
}

static void
test_inflate_refusals(void **state)
{
	const char body[] = "{\"a\":\"1\"}\n";
	char *zeros = calloc(1, 1 << 20);
	struct evbuffer *b, *cut;
	const char *detail = NULL;
	int status = 0;

	/* truncated: the last bytes (CRC, size) are missing */
	b = gz(body, strlen(body));
	cut = evbuffer_new();
	evbuffer_remove_buffer(b, cut, evbuffer_get_length(b) - 4);
	assert_int_equal(inspect_inflate(cut, 1 << 20, &status, &detail), -1);
	assert_int_equal(status, 400);
	evbuffer_free(cut);
	evbuffer_free(b);
	/* not gzip at all */
	b = evbuffer_new();
	evbuffer_add(b, body, strlen(body));
	assert_int_equal(inspect_inflate(b, 1 << 20, &status, &detail), -1);
	assert_int_equal(status, 400);
	evbuffer_free(b);
	/* bytes after the end of the gzip member */
	b = gz(body, strlen(body));
	evbuffer_add(b, "junk", 4);
	assert_int_equal(inspect_inflate(b, 1 << 20, &status, &detail), -1);
	assert_int_equal(status, 400);
	assert_non_null(strstr(detail, "after the end"));
	evbuffer_free(b);
	/* larger than max_body once inflated */
	b = gz(zeros, 1 << 20);
	assert_int_equal(inspect_inflate(b, 1 << 19, &status, &detail), -1);
	assert_int_equal(status, 413);
	evbuffer_free(b);
	/* a bomb: 1 MiB of zeros is ~1 KiB of gzip, beyond the ratio */
	b = gz(zeros, 1 << 20);
	assert_int_equal(inspect_inflate(b, 64u << 20, &status, &detail), -1);
	assert_int_equal(status, 413);
	evbuffer_free(b);
	free(zeros);
}

/* b's bytes as a new evbuffer of one chain per piece: [0,cut) and
   [cut,len) by reference, as reads split a body */
static struct evbuffer *
split_at(struct evbuffer *b, size_t cut)
{
	struct evbuffer *s = evbuffer_new();
	const char *p = (const char *)evbuffer_pullup(b, -1);
	size_t len = evbuffer_get_length(b);

	if (cut > 0)
		evbuffer_add_reference(s, p, cut, NULL, NULL);
	if (cut < len)
		evbuffer_add_reference(s, p + cut, len - cut, NULL, NULL);
	return s;
}

static int
inflate_status(struct evbuffer *b, size_t max_body)
{
	const char *detail = NULL;
	int status = -1;

	if (inspect_inflate(b, max_body, &status, &detail) == 0)
		return 0;
	assert_non_null(detail);
	return status;
}

/* A body split into two chains at every byte (as reads split it)
   inflates the same; every prefix is refused as truncated (400); every
   byte after the member is refused (400). */
static void
test_inflate_every_split(void **state)
{
	char body[4096];
	struct evbuffer *b, *s;
	size_t zlen, i;

	for (i = 0; i < sizeof(body); i++)
		body[i] = (char)(i % 61 == 60 ? '\n' : 'a' + (i * 7) % 26);
	b = gz(body, sizeof(body));
	zlen = evbuffer_get_length(b);
	for (i = 0; i <= zlen; i++) {
		s = split_at(b, i);
		assert_int_equal(inflate_status(s, 1 << 20), 0);
		assert_int_equal(evbuffer_get_length(s), sizeof(body));
		assert_memory_equal(evbuffer_pullup(s, -1), body, sizeof(body));
		evbuffer_free(s);
	}
	for (i = 0; i < zlen; i++) {
		struct evbuffer *cut = evbuffer_new();

		evbuffer_add(cut, evbuffer_pullup(b, -1), i);
		s = split_at(cut, i / 2);
		assert_int_equal(inflate_status(s, 1 << 20), 400);
		/* refused bodies are left as they came */
		assert_int_equal(evbuffer_get_length(s), i);
		evbuffer_free(s);
		evbuffer_free(cut);
	}
	for (i = 1; i <= 8; i++) {
		struct evbuffer *tail = evbuffer_new();

		evbuffer_add(tail, evbuffer_pullup(b, -1), zlen);
		evbuffer_add(tail, "\0\0\0\0\0\0\0\0", i);
		s = split_at(tail, zlen);
		assert_int_equal(inflate_status(s, 1 << 20), 400);
		evbuffer_free(s);
		evbuffer_free(tail);
	}
	evbuffer_free(b);
}

/* Two members are refused as bytes after the first (as before ISA-L); a
   flipped CRC or ISIZE is corrupt (400); the size bound is exact and a
   lying ISIZE (the first reservation's hint) changes no bound. */
static void
test_inflate_members_and_bounds(void **state)
{
	const char body[] = "{\"a\":\"1\"}\n";
	char *zeros = calloc(1, 1 << 16);
	struct evbuffer *a, *b;
	unsigned char *p;
	size_t zlen;

	a = gz(body, strlen(body));
	b = gz(body, strlen(body));
	evbuffer_add_buffer(a, b);
	assert_int_equal(inflate_status(a, 1 << 20), 400);
	evbuffer_free(a);
	evbuffer_free(b);
	for (int k = 8; k >= 1; k--) { /* CRC bytes, then ISIZE bytes */
		a = gz(body, strlen(body));
		zlen = evbuffer_get_length(a);
		p = evbuffer_pullup(a, -1);
		p[zlen - k] ^= 0x40;
		assert_int_equal(inflate_status(a, 1 << 20), 400);
		evbuffer_free(a);
	}
	/* 64 KiB of zeros: ~100 bytes of gzip, so the ratio bounds it first;
	   with text the size bound is exact: max_body passes, one less 413 */
	a = gz(zeros, 1 << 16);
	assert_int_equal(inflate_status(a, 1 << 20), 413);
	evbuffer_free(a);
	{
		char text[20000];

		for (size_t i = 0; i < sizeof(text); i++)
			text[i] = (char)(' ' + (i * 2654435761u >> 7) % 90);
		a = gz(text, sizeof(text));
		assert_int_equal(inflate_status(a, sizeof(text)), 0);
		assert_int_equal(evbuffer_get_length(a), sizeof(text));
		evbuffer_free(a);
		a = gz(text, sizeof(text));
		assert_int_equal(inflate_status(a, sizeof(text) - 1), 413);
		evbuffer_free(a);
	}
	free(zeros);
}

/* Policy doc and table csv loaded, and r holding an initialised verdict. */
static void
verdict_fixture(const char *doc, const char *csv, struct policy **p,
                struct consent_table **t, struct inspect_result *r)
{
	struct cg_errors errs;

	cg_errors_init(&errs);
	*p = policy_load_buf("t.json", doc, strlen(doc), &errs);
	*t = consent_import_csv("t.csv", csv, strlen(csv), &errs);
	assert_non_null(*p);
	assert_non_null(*t);
	cg_errors_reset(&errs);
	inspect_result_init(r);
	verdict_init(&r->v);
	r->held = true;
}

static void
test_request_headers(void **state)
{
	static const char doc[] =
	    "{\"policy\": \"t\", \"purposes\": {\"ai\": {\"aipref\": "
	    "\"train-ai\"}}, \"routes\": [{\"method\": \"POST\", \"path\": "
	    "\"/in\", \"action\": \"inspect\", \"purpose\": \"ai\", "
	    "\"formats\": [\"ndjson\"], \"subjects\": [\"/a\"], \"on_deny\": "
	    "\"drop\", \"content_usage\": true}], \"rules\": [{\"id\": \"d\", "
	    "\"then\": \"deny\"}]}";
	static const char csv[] =
	    "subject,purpose,status,jurisdiction,updated_at\n";
	struct policy *p;
	struct consent_table *t;
	struct inspect_result r;
	struct verdict_header h = {CG_SLICE_LIT("Content-Type"),
	                           CG_SLICE_LIT("application/x-ndjson")};
	struct verdict_request req = {&h, 1, 1767225600, 0};
	const struct verdict_record *rec;
	struct evbuffer *o = evbuffer_new();
	char *text;

	verdict_fixture(doc, csv, &p, &t, &r);
	assert_int_equal(verdict_begin(&r.v, route_at(p, 0), t, &req), 0);
	assert_int_equal(verdict_feed_line(&r.v, "{\"a\":1}", 7, &rec), 0);
	verdict_end(&r.v);
	r.kept = r.v.kept;
	r.dropped = r.v.dropped;
	assert_true(inspect_all_dropped(&r));
	inspect_request_headers(&r, o, false);
	evbuffer_add(o, "", 1);
	text = (char *)evbuffer_pullup(o, -1);
	assert_non_null(strstr(text, "Consent-Purpose: ai\r\n"));
	assert_non_null(strstr(text, "Consent-Policy: id=\"t\", digest=\""));
	assert_non_null(strstr(text, "Consent-Snapshot: version="));
	assert_non_null(strstr(text, "Content-Usage: train-ai=n\r\n"));
	assert_non_null(strstr(text, "Consent-Result: kept=0, dropped=1\r\n"));
	/* a streamed body announces the trailer instead */
	evbuffer_drain(o, evbuffer_get_length(o));
	inspect_request_headers(&r, o, true);
	evbuffer_add(o, "", 1);
	text = (char *)evbuffer_pullup(o, -1);
	assert_non_null(strstr(text, "Trailer: Consent-Result\r\n"));
	assert_null(strstr(text, "Consent-Result: kept"));
	assert_true(inspect_drops_header(&r, CG_SLICE_LIT("content-usage")));
	assert_false(
	    inspect_drops_header(&r, CG_SLICE_LIT("Content-Encoding")));
	evbuffer_free(o);
	inspect_result_reset(&r);
	consent_free(t);
	policy_free(p);
}

/* A body of n lines: kept, dropped, trimmed, blank, CRLF, long ones. */
static char *
feed_body(unsigned n, size_t *len)
{
	size_t cap = (size_t)n * 700, o = 0;
	char *b = malloc(cap);

	assert_non_null(b);
	for (unsigned i = 0; i < n; i++) {
		unsigned a = (i * 37u) % 11;

		switch (i % 7) {
		case 0:
			o += (size_t)snprintf(b + o, cap - o, "\n");
			break;
		case 1:
			o += (size_t)snprintf(b + o, cap - o,
			                      "  {\"a\":%u} \r\n", a);
			break;
		case 2:
			o += (size_t)snprintf(b + o, cap - o,
			                      "{\"a\":%u,\"t\":\"%0*u\"}\n", a,
			                      (int)(i % 600), i);
			break;
		default:
			o +=
			    (size_t)snprintf(b + o, cap - o, "{\"a\":%u}\n", a);
		}
	}
	*len = o;
	return b;
}

/*
 * inspect_feed stages the lines that lie whole in one chain and decides
 * them in batches: over chains cut every k bytes (1 to 300), fed as they
 * arrive, it forwards exactly what verdict_feed_line line by line keeps,
 * with the same counts.
 */
static void
test_feed_chains(void **state)
{
	static const char doc[] =
	    "{\"policy\": \"t\", \"purposes\": {\"ai\": {\"aipref\": "
	    "\"train-ai\"}}, \"routes\": [{\"method\": \"POST\", \"path\": "
	    "\"/in\", \"action\": \"inspect\", \"purpose\": \"ai\", "
	    "\"formats\": [\"ndjson\"], \"subjects\": [\"/a\"], \"on_deny\": "
	    "\"drop\"}], \"rules\": [{\"id\": \"g\", \"if\": {\"status\": "
	    "[\"granted\"]}, \"then\": \"allow\"}, {\"id\": \"d\", "
	    "\"then\": \"deny\"}]}";
	static const char csv[] =
	    "subject,purpose,status,jurisdiction,updated_at\n"
	    "1,ai,granted,DE,2025-01-01T00:00:00Z\n"
	    "2,ai,denied,DE,2025-01-01T00:00:00Z\n"
	    "3,ai,granted,DE,2025-01-01T00:00:00Z\n"
	    "5,ai,granted,DE,2025-01-01T00:00:00Z\n"
	    "8,ai,granted,DE,2025-01-01T00:00:00Z\n";
	static const unsigned cuts[] = {1, 2, 7, 13, 64, 100, 300, 5000};
	struct verdict_header h = {CG_SLICE_LIT("Content-Type"),
	                           CG_SLICE_LIT("application/x-ndjson")};
	struct verdict_request req = {&h, 1, 1767225600, 0};
	const struct verdict_record *rec;
	struct policy *p;
	struct consent_table *t;
	struct inspect_result r;
	size_t len, wlen = 0;
	char *body = feed_body(300, &len), *want = malloc(len + 1);
	unsigned wkept, wdropped;

	verdict_fixture(doc, csv, &p, &t, &r);
	/* what line by line keeps */
	assert_int_equal(verdict_begin(&r.v, route_at(p, 0), t, &req), 0);
	for (size_t pos = 0; pos < len;) {
		const char *nl = memchr(body + pos, '\n', len - pos);
		size_t n = (size_t)(nl - (body + pos));

		assert_int_equal(verdict_feed_line(&r.v, body + pos, n, &rec),
		                 0);
		if (rec != NULL && rec->d.allow) {
			memcpy(want + wlen, body + pos + rec->start,
			       rec->end - rec->start);
			wlen += rec->end - rec->start;
			want[wlen++] = '\n';
		}
		pos += n + 1;
	}
	wkept = r.v.kept;
	wdropped = r.v.dropped;
	assert_true(wkept > 0 && wdropped > 0);
	for (unsigned c = 0; c < sizeof(cuts) / sizeof(cuts[0]); c++) {
		struct evbuffer *in = evbuffer_new(), *out = evbuffer_new();

		assert_int_equal(verdict_begin(&r.v, route_at(p, 0), t, &req),
		                 0);
		for (size_t pos = 0; pos < len; pos += cuts[c]) {
			struct evbuffer *piece = evbuffer_new();
			size_t n = len - pos < cuts[c] ? len - pos : cuts[c];

			/* a chain of its own */
			evbuffer_add(piece, body + pos, n);
			evbuffer_add_buffer(in, piece);
			evbuffer_free(piece);
			assert_int_equal(inspect_feed(&r, NULL, route_at(p, 0),
			                              in, out, false, 1 << 20),
			                 0);
		}
		assert_int_equal(inspect_feed(&r, NULL, route_at(p, 0), in, out,
		                              true, 1 << 20),
		                 0);
		assert_int_equal(evbuffer_get_length(in), 0);
		assert_int_equal(evbuffer_get_length(out), wlen);
		assert_memory_equal(evbuffer_pullup(out, -1), want, wlen);
		assert_int_equal(r.kept, wkept);
		assert_int_equal(r.dropped, wdropped);
		evbuffer_free(in);
		evbuffer_free(out);
	}
	inspect_result_reset(&r);
	consent_free(t);
	policy_free(p);
	free(body);
	free(want);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_inflate_ok),
	    cmocka_unit_test(test_inflate_refusals),
	    cmocka_unit_test(test_inflate_every_split),
	    cmocka_unit_test(test_inflate_members_and_bounds),
	    cmocka_unit_test(test_request_headers),
	    cmocka_unit_test(test_feed_chains),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
