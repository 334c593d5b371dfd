/*
 * inspect.c: what consentgate exists for. For an inspected route: inflate
 * the body if gzip, pick the record format from Content-Type, scan and
 * decide every record, and keep only the allowed records' original bytes.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <zlib.h>

#include "declog_internal.h"
#include "inspect_internal.h"
#include "proxy_internal.h"

#define INFLATE_CHUNK (64u << 10) /* bytes inflated per step */

void
inspect_result_init(struct inspect_result *r)
{
	memset(r, 0, sizeof(*r));
}

void
inspect_result_reset(struct inspect_result *r)
{
	free(r->rec);
	if (r->trail)
		evbuffer_free(r->trail);
	inspect_result_init(r);
}

static int
refuse(struct inspect_result *r, int status, const char *detail)
{
	r->error = detail;
	return status;
}

/*
 * The record format of this body, or -1 when the route does not take it.
 * The same rules as the policy author's CLI (policy_body_format), except
 * that a request without Content-Type is refused: doubt fails closed.
 */
static int
body_format(const struct policy_route *route, const struct http1_request *req,
            const char *body, size_t len)
{
	const struct http1_header *h =
	    http1_find(req->headers, req->nheaders, "Content-Type");

	if (h == NULL || h->value.len == 0)
		return -1;
	return policy_body_format(route, h->value, body, len);
}

/* Inflate a gzip body in place, bounded by size and by ratio. */
static int
inflate_body(struct inspect_result *r, struct evbuffer *body, size_t max_body)
{
	struct evbuffer *out = evbuffer_new();
	size_t inlen = evbuffer_get_length(body);
	z_stream zs;
	int zrc = Z_OK, status = 0;

	memset(&zs, 0, sizeof(zs));
	if (out == NULL || inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) {
		status = refuse(r, 500, "cannot start decompression");
		goto done;
	}
	zs.next_in = evbuffer_pullup(body, -1);
	zs.avail_in = (uInt)inlen;
	while (zrc != Z_STREAM_END) {
		struct evbuffer_iovec v;
		size_t produced;

		if (evbuffer_reserve_space(out, INFLATE_CHUNK, &v, 1) < 1) {
			status = refuse(r, 500, "out of memory");
			goto end;
		}
		zs.next_out = v.iov_base;
		zs.avail_out = (uInt)v.iov_len;
		zrc = inflate(&zs, Z_NO_FLUSH);
		produced = v.iov_len - zs.avail_out;
		v.iov_len = produced;
		evbuffer_commit_space(out, &v, 1);
		if (zrc != Z_OK && zrc != Z_STREAM_END) {
			status = refuse(
			    r, 400, "the gzip body is corrupt or truncated");
			goto end;
		}
		if (evbuffer_get_length(out) > max_body ||
		    evbuffer_get_length(out) >
		        (inlen + 1) * CG_DEFAULT_MAX_INFLATE_RATIO) {
			status = refuse(
			    r, 413,
			    "the inflated body is larger than the limit");
			goto end;
		}
		if (zrc == Z_OK && produced == 0 && zs.avail_in == 0) {
			status = refuse(r, 400, "the gzip body is truncated");
			goto end;
		}
	}
	if (zs.avail_in != 0) {
		status = refuse(r, 400, "bytes after the end of the gzip body");
		goto end;
	}
	evbuffer_drain(body, inlen);
	evbuffer_add_buffer(body, out);
	r->inflated = true;
end:
	inflateEnd(&zs);
done:
	if (out)
		evbuffer_free(out);
	return status;
}

static void
finish_headers(struct inspect_result *r, const struct policy_snapshot *snap,
               const struct policy_route *route, int64_t now)
{
	const struct policy *p = policy_snapshot_policy(snap);
	const struct consent_table *t = policy_snapshot_consent(snap);
	int64_t age = now - consent_created_at(t);

	snprintf(r->req_headers, sizeof(r->req_headers),
	         "Consent-Purpose: %s\r\n"
	         "Consent-Policy: id=\"%s\", digest=\"%s\"\r\n"
	         "Consent-Snapshot: version=%llu, age=%lld\r\n%s",
	         policy_route_purpose(route), policy_id(p), policy_digest(p),
	         (unsigned long long)consent_version(t),
	         (long long)(age > 0 ? age : 0),
	         policy_route_content_usage(route)
	             ? "Content-Usage: train-ai=n\r\n"
	             : "");
}

/* name equals lit case-insensitively with '_' read as '-' (as WSGI does) */
static bool
same_field(struct cg_slice name, const char *lit)
{
	size_t n = strlen(lit);

	if (name.len != n)
		return false;
	for (size_t i = 0; i < n; i++) {
		int a = name.ptr[i] == '_' ? '-' : tolower((uint8_t)name.ptr[i]);
		int b = lit[i] == '_' ? '-' : tolower((uint8_t)lit[i]);

		if (a != b)
			return false;
	}
	return true;
}

/* One person in a header: decided without reading the body. */
static int
run_header_subject(struct inspect_result *r, const struct policy_snapshot *snap,
                   const struct policy_route *route,
                   const struct http1_request *req, int64_t now)
{
	const struct http1_header *h = http1_find(
	    req->headers, req->nheaders, policy_route_subject_header(route));
	struct policy_decision d;
	struct cg_slice subj;

	const char *name = policy_route_subject_header(route);
	unsigned seen = 0;

	/* X_Subject_Id is X-Subject-Id to a WSGI server, which keeps the
	 * last: every spelling counts */
	for (unsigned i = 0; i < req->nheaders; i++)
		seen += same_field(req->headers[i].name, name);
	/* two headers, or a list in one, could name two people: refuse */
	if (seen > 1 ||
	    (h != NULL && memchr(h->value.ptr, ',', h->value.len) != NULL))
		return refuse(
		    r, 400,
		    "the subject header must appear once and name one person");
	if (h != NULL && h->value.len > 0) {
		subj = h->value;
		policy_decide(route, policy_snapshot_consent(snap), &subj, 1,
		              now, &d);
	} else {
		policy_decide(route, policy_snapshot_consent(snap), NULL, 0,
		              now, &d);
	}
	r->records = 1;
	declog_record(r->trail, 0, &d);
	if (d.allow) {
		r->kept = 1;
		return 0;
	}
	r->dropped = 1;
	if (policy_route_on_deny(route) == POLICY_ON_DENY_BLOCK) {
		snprintf(r->error_json, sizeof(r->error_json),
		         "\"rule\":\"%s\",\"kept\":0,\"dropped\":1", d.rule_id);
		return refuse(r, 403,
		              "the person this request is about has not "
		              "consented to this purpose");
	}
	return 0;
}

int
inspect_begin(struct inspect_result *r, struct policy_snapshot *snap,
              const struct policy_route *route, const struct http1_request *req,
              unsigned max_staleness_s)
{
	const struct consent_table *t = policy_snapshot_consent(snap);
	const struct http1_header *ce;
	int64_t now = (int64_t)time(NULL);

	inspect_result_reset(r);
	r->active = true;
	r->now = now;
	if (declog_enabled())
		r->trail = evbuffer_new();
	finish_headers(r, snap, route, now);
	if (max_staleness_s > 0 &&
	    now - consent_created_at(t) > (int64_t)max_staleness_s)
		return refuse(r, 503,
		              "the consent data is older than the configured "
		              "staleness limit");
	if (policy_route_subject_header(route) != NULL) {
		/* one person in a header: decided now, the body is never parsed
		 */
		r->decided = true;
		return run_header_subject(r, snap, route, req, now);
	}
	ce = http1_find(req->headers, req->nheaders, "Content-Encoding");

	if (ce != NULL && !http1_slice_ieq(ce->value, "identity") &&
	    !http1_slice_ieq(ce->value, "gzip"))
		return refuse(r, 415,
		              "unsupported Content-Encoding on an inspected "
		              "route (only gzip)");
	r->streaming =
	    ce == NULL && body_format(route, req, "", 0) == SCAN_FORMAT_NDJSON;
	return 0;
}

/* Decide one scanned record: 1 keep it, 0 drop it, or a refusal status. */
static int
decide_record(struct inspect_result *r, const struct consent_table *t,
              const struct policy_route *route, const struct scan_record *rec)
{
	struct policy_decision d;

	policy_decide_record(route, t, rec, r->now, &d);
	declog_record(r->trail, r->records, &d);
	r->records++;
	if (d.allow) {
		r->kept++;
		return 1;
	}
	r->dropped++;
	if (policy_route_on_deny(route) == POLICY_ON_DENY_BLOCK) {
		snprintf(r->error_json, sizeof(r->error_json),
		         "\"rule\":\"%s\",\"index\":%u", d.rule_id,
		         r->records - 1);
		return refuse(r, 403,
		              "a record belongs to a person who has not "
		              "consented to this purpose");
	}
	return 0;
}

/* Decide one NDJSON line; a kept record goes to out with a newline. */
static int
feed_line(struct inspect_result *r, const struct consent_table *t,
          const struct policy_route *route, const char *line, size_t len,
          struct evbuffer *out, struct scan_record *rec)
{
	const char *err = NULL;
	size_t i;
	int keep;

	for (i = 0; i < len; i++)
		if (line[i] != ' ' && line[i] != '\t')
			break;
	if (i == len || (i + 1 == len && line[i] == '\r'))
		return 0; /* blank line (CRLF counts as one line end) */
	if (scan_line(policy_route_scan_spec(route), line, len, rec, &err) !=
	    0) {
		snprintf(r->error_json, sizeof(r->error_json), "\"index\":%u",
		         r->records);
		return refuse(r, 422, err ? err : "malformed record");
	}
	keep = decide_record(r, t, route, rec);
	if (keep == 1) {
		evbuffer_add(out, line + rec->start, rec->end - rec->start);
		ADD_LIT(out, "\n");
	}
	return keep > 1 ? keep : 0;
}

int
inspect_feed(struct inspect_result *r, struct policy_snapshot *snap,
             const struct policy_route *route, struct evbuffer *in,
             struct evbuffer *out, bool final, size_t max_record)
{
	const struct consent_table *t = policy_snapshot_consent(snap);
	int status = 0;

	if (r->rec == NULL && (r->rec = malloc(sizeof(*r->rec))) == NULL)
		return refuse(r, 500, "out of memory");
	for (;;) {
		size_t len = evbuffer_get_length(in), n;
		struct evbuffer_ptr nl = evbuffer_search(in, "\n", 1, NULL);
		const char *line;

		if (nl.pos < 0) {
			if (len > max_record)
				return refuse(
				    r, 413,
				    "a record is larger than the limit");
			if (!final || len == 0)
				return 0;
			n = len;
		} else {
			n = (size_t)nl.pos;
			if (n > max_record)
				return refuse(
				    r, 413,
				    "a record is larger than the limit");
		}
		line = (const char *)evbuffer_pullup(
		    in, (ev_ssize_t)(n + (nl.pos >= 0)));
		status = feed_line(r, t, route, line, n, out, r->rec);
		if (status != 0)
			return status;
		evbuffer_drain(in, n + (nl.pos >= 0));
	}
}

int
inspect_run(struct inspect_result *r, struct policy_snapshot *snap,
            const struct policy_route *route, const struct http1_request *req,
            struct evbuffer *body, size_t max_body)
{
	const struct consent_table *t = policy_snapshot_consent(snap);
	const struct http1_header *ce;
	struct evbuffer *kept = NULL;
	struct scan_iter it;
	struct scan_record *rec = NULL;
	struct policy_span *spans = NULL;
	unsigned nspans = 0, spans_cap = 0;
	struct evbuffer_iovec vec;
	const char *buf;
	size_t len;
	int fmt, rc, status = 0;

	ce = http1_find(req->headers, req->nheaders, "Content-Encoding");
	if (ce != NULL && http1_slice_ieq(ce->value, "gzip")) {
		if ((status = inflate_body(r, body, max_body)) != 0)
			return status;
	}
	len = evbuffer_get_length(body);
	buf = len ? (const char *)evbuffer_pullup(body, -1) : "";
	fmt = body_format(route, req, buf, len);
	if (fmt < 0)
		return refuse(r, 415,
		              "unsupported Content-Type for this route");

	rec = malloc(sizeof(*rec));
	if (rec == NULL) {
		status = refuse(r, 500, "out of memory");
		goto out;
	}
	scan_iter_init(&it, policy_route_scan_spec(route),
	               (enum scan_format)fmt, policy_route_array_at(route), buf,
	               len);
	while ((rc = scan_iter_next(&it, rec)) == 1) {
		int keep = decide_record(r, t, route, rec);

		if (keep > 1) {
			status = keep;
			goto out;
		}
		if (keep == 0)
			continue;
		if (nspans == spans_cap) {
			struct policy_span *grown;

			spans_cap = spans_cap ? spans_cap * 2 : 64;
			grown = realloc(spans, spans_cap * sizeof(*spans));
			if (grown == NULL) {
				status = refuse(r, 500, "out of memory");
				goto out;
			}
			spans = grown;
		}
		spans[nspans].start = rec->start;
		spans[nspans].end = rec->end;
		nspans++;
	}
	if (rc < 0) {
		snprintf(r->error_json, sizeof(r->error_json),
		         "\"index\":%u,\"offset\":%zu", it.index, it.offset);
		status =
		    refuse(r, 422, it.error ? it.error : "malformed record");
		goto out;
	}
	/* the same rebuild as `consentgate eval --output kept` */
	kept = evbuffer_new();
	if (kept == NULL ||
	    evbuffer_reserve_space(kept, (ev_ssize_t)len + 1, &vec, 1) < 1) {
		status = refuse(r, 500, "out of memory");
		goto out;
	}
	vec.iov_len =
	    policy_body_rebuild((enum scan_format)fmt, buf, len, it.array_open,
	                        it.array_close, spans, nspans, vec.iov_base);
	evbuffer_commit_space(kept, &vec, 1);
	evbuffer_drain(body, len);
	evbuffer_add_buffer(body, kept);
out:
	if (kept)
		evbuffer_free(kept);
	free(spans);
	free(rec);
	return status;
}

void
inspect_request_headers(const struct inspect_result *r, struct evbuffer *h,
                        bool streaming)
{
	evbuffer_add(h, r->req_headers, strlen(r->req_headers));
	if (streaming)
		ADD_LIT(h, "Trailer: Consent-Result\r\n");
	else
		inspect_response_headers(r, h);
}

void
inspect_response_headers(const struct inspect_result *r, struct evbuffer *o)
{
	evbuffer_add_printf(o, "Consent-Result: kept=%u, dropped=%u\r\n",
	                    r->kept, r->dropped);
}

bool
inspect_drops_header(const struct inspect_result *r, struct cg_slice name)
{
	return (r->inflated && http1_slice_ieq(name, "Content-Encoding")) ||
	       http1_slice_ieq(name, "Content-Usage");
}
