/*
 * cli.c: what check, test and eval share, above all cli_run: one request
 * decided offline by the proxy's own pieces (route_match, the verdict,
 * the gzip inflater, the same line splitting and limits), so that a
 * passing policy test means the proxy does the same.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "cli_internal.h"
#include "consentgate/rfc3339.h"
#include "inspect_internal.h"

/* Messages cut long file names on purpose. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

void
cli_print_errors(const struct cg_errors *e)
{
	for (unsigned i = 0; i < e->count; i++)
		fprintf(stderr, "%s\n", e->msgs[i]);
	if (e->dropped > 0)
		fprintf(stderr, "(%u more not shown)\n", e->dropped);
}

bool
cli_is_help(const char *a)
{
	return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0;
}

static char *
read_all(FILE *f, size_t *len)
{
	char *buf = NULL, *nb;
	size_t cap = 0, n = 0, got;

	for (;;) {
		if (n + 1 >= cap) {
			cap = cap ? cap * 2 : 65536;
			if (cap > CG_MAX_CLI_INPUT_BYTES + 1 ||
			    (nb = realloc(buf, cap)) == NULL) {
				errno = errno ? errno : EFBIG;
				goto fail;
			}
			buf = nb;
		}
		got = fread(buf + n, 1, cap - n - 1, f);
		if (got == 0)
			break;
		n += got;
	}
	if (ferror(f))
		goto fail;
	buf[n] = '\0';
	*len = n;
	return buf;
fail:
	free(buf);
	return NULL;
}

char *
cli_read_file(const char *path, size_t *len)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
	char *buf;

	if (f == NULL)
		return NULL;
	errno = 0;
	buf = read_all(f, len);
	if (f != stdin)
		fclose(f);
	return buf;
}

int
cli_parse_now(const char *text, int64_t *now)
{
	return rfc3339_parse(text, strlen(text), now, NULL);
}

int
cli_split_route(const char *route, char *method, size_t cap, const char **path)
{
	const char *sp = strchr(route, ' ');

	if (sp == NULL || sp == route || (size_t)(sp - route) >= cap ||
	    sp[1] != '/')
		return -1;
	memcpy(method, route, (size_t)(sp - route));
	method[sp - route] = '\0';
	*path = sp + 1;
	return 0;
}

void
cli_result_reset(struct cli_result *res)
{
	for (unsigned i = 0; i < res->nrecs; i++) {
		free(res->recs[i].subjects);
		free(res->recs[i].evidence);
	}
	free(res->recs);
	free(res->inflated);
	free(res->out);
	verdict_reset(&res->v);
	memset(res, 0, sizeof(*res));
	verdict_init(&res->v);
}

/* s[0..n) joined by ',' into a new string; empty ones as "-" when
 * several */
static char *
join(const struct cg_slice *s, unsigned n)
{
	size_t len = 1;
	char *buf, *p;

	for (unsigned i = 0; i < n; i++)
		len += s[i].len + 2;
	if ((buf = malloc(len)) == NULL)
		return NULL;
	p = buf;
	for (unsigned i = 0; i < n; i++) {
		if (i > 0)
			*p++ = ',';
		if (s[i].len == 0 && n > 1)
			*p++ = '-';
		memcpy(p, s[i].ptr, s[i].len);
		p += s[i].len;
	}
	*p = '\0';
	return buf;
}

/* Keep a decided record; base is its line's offset in the body. */
static int
add_rec(struct cli_result *res, const struct verdict_record *vr, size_t base)
{
	struct cli_record *nr;

	if (res->nrecs == res->cap) {
		unsigned cap = res->cap ? res->cap * 2 : 16;

		nr = realloc(res->recs, cap * sizeof(*nr));
		if (nr == NULL)
			return -1;
		res->recs = nr;
		res->cap = cap;
	}
	nr = &res->recs[res->nrecs];
	nr->start = base + vr->start;
	nr->end = base + vr->end;
	nr->allow = vr->d.allow;
	nr->rule_id = vr->d.rule_id;
	nr->consent = vr->d.consent;
	if (vr->scan != NULL)
		nr->subjects = join(vr->scan->subjects, vr->scan->nsubjects);
	else
		nr->subjects =
		    join(&vr->header_subject, vr->header_subject.len > 0);
	nr->evidence = join(vr->d.evidence, vr->d.nevidence);
	if (nr->subjects == NULL || nr->evidence == NULL) {
		free(nr->subjects);
		free(nr->evidence);
		return -1;
	}
	res->nrecs++;
	return 0;
}

/* The refusal, with what a person needs to find the record. */
static void
refused(struct cli_result *res, int status, const char *detail)
{
	const struct verdict *v = &res->v;
	bool mine = v->status == status && v->detail == detail;

	res->status = status;
	res->out_len = 0;
	if (mine && v->rule != NULL)
		snprintf(res->error, sizeof(res->error),
		         "%s (rule %s, record %ld)", detail, v->rule,
		         v->index >= 0 ? v->index : 0);
	else if (mine && v->index >= 0 && v->offset >= 0)
		snprintf(res->error, sizeof(res->error),
		         "record %ld: %s (byte %lld)", v->index, detail,
		         v->offset);
	else if (mine && v->index >= 0)
		snprintf(res->error, sizeof(res->error), "record %ld: %s",
		         v->index, detail);
	else if (mine && status == 415 && v->format < 0 &&
	         v->content_type.len > 0)
		snprintf(res->error, sizeof(res->error),
		         "route '%s' does not take Content-Type '%.*s'",
		         route_name(res->route), (int)v->content_type.len,
		         v->content_type.ptr);
	else
		snprintf(res->error, sizeof(res->error), "%s", detail);
}

/* The forwarded body is the request's, untouched. */
static int
forward_as_is(struct cli_result *res, const char *body, size_t len)
{
	if ((res->out = malloc(len + 1)) == NULL)
		return -1;
	memcpy(res->out, body, len);
	res->out_len = len;
	return 0;
}

/* gzip: inflated with the proxy's inflater and limits */
static int
inflate_copy(struct cli_result *res, const char *body, size_t len)
{
	struct evbuffer *eb = evbuffer_new();
	const char *detail = NULL;
	int status = 0, rc = -1;
	size_t n;

	if (eb == NULL || evbuffer_add(eb, body, len) != 0)
		goto done;
	if (inspect_inflate(eb, CG_DEFAULT_MAX_BODY_BYTES, &status, &detail) !=
	    0) {
		refused(res, status, detail);
		rc = 1;
		goto done;
	}
	n = evbuffer_get_length(eb);
	if ((res->inflated = malloc(n + 1)) == NULL)
		goto done;
	evbuffer_remove(eb, res->inflated, n);
	res->body = res->inflated;
	res->len = n;
	rc = 0;
done:
	if (eb)
		evbuffer_free(eb);
	return rc;
}

/* NDJSON as the proxy streams it: line by line, the same limit. */
static int
run_lines(struct cli_result *res)
{
	const struct verdict_record *vr;
	size_t pos = 0;

	while (pos < res->len) {
		const char *line = res->body + pos;
		const char *nl = memchr(line, '\n', res->len - pos);
		size_t n = nl ? (size_t)(nl - line) : res->len - pos;
		int rc;

		if (n > CG_DEFAULT_MAX_RECORD_BYTES) {
			refused(res, 413, "a record is larger than the limit");
			return 0;
		}
		rc = verdict_feed_line(&res->v, line, n, &vr);
		if (vr != NULL && add_rec(res, vr, pos) != 0)
			return -1;
		if (rc != 0) {
			refused(res, res->v.status, res->v.detail);
			return 0;
		}
		if (vr != NULL && vr->d.allow) {
			memcpy(res->out + res->out_len, line + vr->start,
			       vr->end - vr->start);
			res->out_len += vr->end - vr->start;
			res->out[res->out_len++] = '\n';
		}
		pos += n + (nl != NULL);
	}
	return 0;
}

static int
run_body(struct cli_result *res)
{
	const struct verdict_record *vr;
	int rc;

	if (verdict_body(&res->v, res->body, res->len) != 0) {
		refused(res, res->v.status, res->v.detail);
		return 0;
	}
	while ((rc = verdict_next(&res->v, &vr)) == 1)
		if (add_rec(res, vr, 0) != 0)
			return -1;
	if (rc < 0) {
		if (vr != NULL && add_rec(res, vr, 0) != 0)
			return -1;
		refused(res, res->v.status, res->v.detail);
		return 0;
	}
	res->out_len = verdict_rebuild(&res->v, res->out);
	return 0;
}

int
cli_run(const struct policy *p, const struct consent_table *t,
        const struct cli_request *req, struct cli_result *res)
{
	const char *q = strchr(req->path, '?');
	struct verdict_request vr = {req->headers, req->nheaders, req->now, 0};
	struct route_refusal why;
	const struct policy_route *r;
	int rc;

	memset(res, 0, sizeof(*res));
	verdict_init(&res->v);
	res->body = req->body;
	res->len = req->len;
	r = route_match(p, (struct cg_slice){req->method, strlen(req->method)},
	                (struct cg_slice){req->path, q ? (size_t)(q - req->path)
	                                               : strlen(req->path)},
	                &why);
	res->route = r;
	if (r == NULL) {
		char detail[CG_MAX_DETAIL];

		route_refusal_detail(&why, detail, sizeof(detail));
		res->status = why.status;
		snprintf(res->error, sizeof(res->error), "%s %s: %s",
		         req->method, req->path, detail);
		return 0;
	}
	if (!route_client_allowed(r, req->client_ids, NULL)) {
		char detail[CG_MAX_DETAIL];

		route_client_refusal(r, req->client_ids, detail,
		                     sizeof(detail));
		refused(res, 403, detail);
		return 0;
	}
	if (route_action(r) == POLICY_ACTION_PASS) {
		if (req->len > CG_DEFAULT_MAX_BODY_BYTES) {
			refused(res, 413,
			        "the request body is larger than the limit");
			return 0;
		}
		res->status = 200;
		return forward_as_is(res, req->body, req->len);
	}
	if (verdict_begin(&res->v, r, t, &vr) != 0) {
		if (res->v.decided && add_rec(res, &res->v.rec, 0) != 0)
			return -1;
		refused(res, res->v.status, res->v.detail);
		return 0;
	}
	if (res->v.decided) {
		/* one person in a header: the body is forwarded untouched */
		if (add_rec(res, &res->v.rec, 0) != 0)
			return -1;
		res->recs[0].start = 0;
		res->recs[0].end = req->len;
		if (res->v.status == 204) {
			res->status = 204;
			return 0;
		}
	}
	if (req->len > CG_DEFAULT_MAX_BODY_BYTES) {
		refused(res, 413, "the request body is larger than the limit");
		return 0;
	}
	if (res->v.decided) {
		res->status = res->v.status;
		return forward_as_is(res, req->body, req->len);
	}
	if (res->v.gzip && (rc = inflate_copy(res, req->body, req->len)) != 0)
		return rc < 0 ? -1 : 0;
	if ((res->out = malloc(res->len + 1)) == NULL)
		return -1;
	rc = res->v.streamable ? run_lines(res) : run_body(res);
	if (rc != 0 || res->status != 0)
		return rc;
	verdict_end(&res->v);
	res->status = res->v.status;
	if (res->status == 204)
		res->out_len = 0;
	return 0;
}
