/*
 * verdict.c: the decision of one inspected request, for the proxy and the
 * CLI alike (see verdict.h for what is decided and in which order).
 *
 * It owns no I/O: the proxy inflates gzip, reads the socket and splits a
 * streamed body into lines; the CLI reads files. Both hand the bytes here,
 * so they cannot disagree.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consentgate/verdict.h"
#include "policy_internal.h"

void
verdict_init(struct verdict *v)
{
	memset(v, 0, sizeof(*v));
	v->format = -1;
	v->index = -1;
	v->offset = -1;
}

void
verdict_reset(struct verdict *v)
{
	free(v->scratch);
	free(v->spans);
	verdict_init(v);
}

static int
refuse(struct verdict *v, int status, const char *detail)
{
	v->status = status;
	v->detail = detail;
	return -1;
}

/* name equals lit case-insensitively with '_' read as '-' (as WSGI does) */
static bool
same_field(struct cg_slice name, const char *lit)
{
	size_t n = strlen(lit);

	if (name.len != n)
		return false;
	for (size_t i = 0; i < n; i++) {
		int a =
		    name.ptr[i] == '_' ? '-' : tolower((uint8_t)name.ptr[i]);
		int b = lit[i] == '_' ? '-' : tolower((uint8_t)lit[i]);

		if (a != b)
			return false;
	}
	return true;
}

/* The first header of that name, or NULL. */
static const struct verdict_header *
find_header(const struct verdict_request *req, const char *name)
{
	for (unsigned i = 0; i < req->nheaders; i++)
		if (cg_slice_ieq(req->headers[i].name, name))
			return &req->headers[i];
	return NULL;
}

static void
consent_values(struct verdict *v)
{
	const struct policy *p = v->route->policy;
	int64_t age = v->now - consent_created_at(v->table);

	v->consent_purpose = route_purpose(v->route);
	snprintf(v->consent_policy, sizeof(v->consent_policy),
	         "id=\"%s\", digest=\"%s\"", policy_id(p), policy_digest(p));
	snprintf(v->consent_snapshot, sizeof(v->consent_snapshot),
	         "version=%llu, age=%lld",
	         (unsigned long long)consent_version(v->table),
	         (long long)(age > 0 ? age : 0));
	v->content_usage = route_content_usage(v->route) ? "train-ai=n" : NULL;
}

/* Count a decided record; on a block route a deny ends the request. */
static int
count(struct verdict *v)
{
	v->records++;
	if (v->rec.d.allow) {
		v->kept++;
		return 0;
	}
	v->dropped++;
	if (v->route->on_deny != POLICY_ON_DENY_BLOCK)
		return 0;
	v->rule = v->rec.d.rule_id;
	if (v->decided) {
		v->counts = true;
		return refuse(v, 403,
		              "the person this request is about has not "
		              "consented to this purpose");
	}
	v->index = (long)v->rec.index;
	return refuse(v, 403,
	              "a record belongs to a person who has not consented to "
	              "this purpose");
}

/* One person in a header: decided without reading the body. */
static int
decide_header(struct verdict *v, const struct verdict_request *req)
{
	const char *name = route_subject_header(v->route);
	const struct verdict_header *h = find_header(req, name);
	unsigned seen = 0;

	/* X_Subject_Id is X-Subject-Id to a WSGI server, which keeps the
	 * last: every spelling counts */
	for (unsigned i = 0; i < req->nheaders; i++)
		seen += same_field(req->headers[i].name, name);
	/* two headers, or a list in one, could name two people: refuse */
	if (seen > 1 ||
	    (h != NULL && memchr(h->value.ptr, ',', h->value.len) != NULL))
		return refuse(
		    v, 400,
		    "the subject header must appear once and name one person");
	v->decided = true;
	v->rec.index = 0;
	v->rec.scan = NULL;
	if (h != NULL && h->value.len > 0) {
		v->rec.header_subject = h->value;
		rule_decide(v->route, v->table, &v->rec.header_subject, 1,
		            v->now, &v->rec.d);
	} else {
		v->rec.header_subject = (struct cg_slice){"", 0};
		rule_decide(v->route, v->table, NULL, 0, v->now, &v->rec.d);
	}
	if (count(v) != 0)
		return -1;
	return verdict_end(v);
}

int
verdict_begin(struct verdict *v, const struct policy_route *r,
              const struct consent_table *t, const struct verdict_request *req)
{
	const struct verdict_header *ce, *ct;

	verdict_reset(v);
	v->route = r;
	v->table = t;
	v->now = req->now;
	consent_values(v);
	if (req->max_staleness_s > 0 &&
	    req->now - consent_created_at(t) > (int64_t)req->max_staleness_s)
		return refuse(v, 503,
		              "the consent data is older than the configured "
		              "staleness limit");
	if (route_subject_header(r) != NULL)
		return decide_header(v, req);
	ce = find_header(req, "Content-Encoding");
	if (ce != NULL && !cg_slice_ieq(ce->value, "identity") &&
	    !cg_slice_ieq(ce->value, "gzip"))
		return refuse(v, 415,
		              "unsupported Content-Encoding on an inspected "
		              "route (only gzip)");
	v->gzip = ce != NULL && cg_slice_ieq(ce->value, "gzip");
	ct = find_header(req, "Content-Type");
	if (ct != NULL)
		v->content_type = ct->value;
	/* NDJSON is decided line by line as it arrives; a body given whole
	 * (identity named, or gzip) goes through verdict_body */
	v->streamable =
	    ce == NULL && v->content_type.len > 0 &&
	    route_body_format(r, v->content_type, "", 0) == SCAN_FORMAT_NDJSON;
	if (v->streamable)
		v->format = SCAN_FORMAT_NDJSON;
	return 0;
}

static int
scratch(struct verdict *v)
{
	if (v->scratch == NULL &&
	    (v->scratch = malloc(sizeof(*v->scratch))) == NULL)
		return refuse(v, 500, "out of memory");
	return 0;
}

int
verdict_feed_line(struct verdict *v, const char *line, size_t len,
                  const struct verdict_record **rec)
{
	const char *err = NULL;
	size_t i;

	*rec = NULL;
	if (v->status != 0)
		return -1;
	if (scratch(v) != 0)
		return -1;
	for (i = 0; i < len; i++)
		if (line[i] != ' ' && line[i] != '\t')
			break;
	if (i == len || (i + 1 == len && line[i] == '\r'))
		return 0; /* blank line (CRLF counts as one line end) */
	if (scan_line(&v->route->spec, line, len, v->scratch, &err) != 0) {
		v->index = (long)v->records;
		return refuse(v, 422, err ? err : "malformed record");
	}
	v->rec.index = v->records;
	v->rec.start = v->scratch->start;
	v->rec.end = v->scratch->end;
	v->rec.scan = v->scratch;
	rule_decide_record(v->route, v->table, v->scratch, v->now, &v->rec.d);
	*rec = &v->rec;
	return count(v);
}

int
verdict_body(struct verdict *v, const char *buf, size_t len)
{
	if (v->status != 0)
		return -1;
	/* a request without Content-Type is refused: doubt fails closed */
	v->format =
	    v->content_type.len == 0
	        ? -1
	        : route_body_format(v->route, v->content_type, buf, len);
	if (v->format < 0)
		return refuse(
		    v, 415,
		    v->content_type.len == 0
		        ? "a Content-Type is required on an inspected "
		          "route"
		        : "unsupported Content-Type for this route");
	if (scratch(v) != 0)
		return -1;
	v->body = buf;
	v->body_len = len;
	scan_iter_init(&v->it, route_scan_spec(v->route),
	               (enum scan_format)v->format, route_array_at(v->route),
	               buf, len);
	return 0;
}

static int
keep_span(struct verdict *v)
{
	if (v->nspans == v->spans_cap) {
		unsigned cap = v->spans_cap ? v->spans_cap * 2 : 64;
		struct policy_span *grown =
		    realloc(v->spans, cap * sizeof(*grown));

		if (grown == NULL)
			return refuse(v, 500, "out of memory");
		v->spans = grown;
		v->spans_cap = cap;
	}
	v->spans[v->nspans].start = v->rec.start;
	v->spans[v->nspans].end = v->rec.end;
	v->nspans++;
	return 0;
}

int
verdict_next(struct verdict *v, const struct verdict_record **rec)
{
	int rc;

	*rec = NULL;
	if (v->status != 0 || v->body == NULL)
		return -1;
	rc = scan_iter_next(&v->it, v->scratch);
	if (rc == 0)
		return 0;
	if (rc < 0) {
		v->index = (long)v->it.index;
		v->offset = (long long)v->it.offset;
		return refuse(v, 422,
		              v->it.error ? v->it.error : "malformed record");
	}
	v->rec.index = v->records;
	v->rec.start = v->scratch->start;
	v->rec.end = v->scratch->end;
	v->rec.scan = v->scratch;
	rule_decide_record(v->route, v->table, v->scratch, v->now, &v->rec.d);
	*rec = &v->rec;
	if (count(v) != 0)
		return -1;
	if (v->rec.d.allow && keep_span(v) != 0)
		return -1;
	return 1;
}

size_t
verdict_rebuild(const struct verdict *v, char *out)
{
	return route_body_rebuild((enum scan_format)v->format, v->body,
	                          v->body_len, v->it.array_open,
	                          v->it.array_close, v->spans, v->nspans, out);
}

int
verdict_end(struct verdict *v)
{
	if (v->status == 0)
		v->status = v->records > 0 && v->kept == 0 ? 204 : 200;
	return 0;
}

void
verdict_consent_result(const struct verdict *v, char *buf, size_t cap)
{
	snprintf(buf, cap, "kept=%u, dropped=%u", v->kept, v->dropped);
}

void
verdict_problem_members(const struct verdict *v, char *buf, size_t cap)
{
	if (v->rule != NULL && v->counts)
		snprintf(buf, cap, "\"rule\":\"%s\",\"kept\":0,\"dropped\":1",
		         v->rule);
	else if (v->rule != NULL)
		snprintf(buf, cap, "\"rule\":\"%s\",\"index\":%ld", v->rule,
		         v->index);
	else if (v->index >= 0 && v->offset >= 0)
		snprintf(buf, cap, "\"index\":%ld,\"offset\":%lld", v->index,
		         v->offset);
	else if (v->index >= 0)
		snprintf(buf, cap, "\"index\":%ld", v->index);
	else if (v->status == 415 && v->route != NULL && v->detail &&
	         strstr(v->detail, "Content-Type") != NULL) {
		/* what the route would take (RFC 9110 15.5.16) */
		char types[96];

		route_media_types(v->route, types, sizeof(types));
		snprintf(buf, cap, "\"accepted\":[%s]", types);
	} else if (cap > 0)
		buf[0] = '\0';
}
