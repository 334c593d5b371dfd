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

/* A record scanned and not decided yet: its subjects are in the memo. */
struct verdict_staged {
	size_t start, end;
	const char *error; /* a line that failed to scan: its 422 detail */
	unsigned missing;
	uint16_t first, nsubjects; /* into batch.refs */
	bool blank;
};

struct verdict_batch {
	struct memo memo;
	int pid;                    /* the route's purpose in the table */
	struct rule_outcome nobody; /* the unknown person's outcome */
	struct verdict_staged st[VERDICT_WINDOW];
	uint16_t refs[VERDICT_WINDOW * CG_MAX_SUBJECTS]; /* memo entries */
	unsigned nst, next, nrefs; /* staged, handed out, refs used */
	bool stopped; /* a malformed line was staged: stage no more */
	int end_rc;   /* a whole body: the scan's end (0 or -1), 1 before */
	bool carry;   /* a whole body: the scratch holds the next record */
	struct scan_record rec;           /* the record handed out */
	const struct verdict_staged *cur; /* its staged form, for decide */
};

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
	free(v->batch);
	verdict_init(v);
}

/* A new request: clear the results, keep the memory. */
static void
verdict_clear(struct verdict *v)
{
	struct scan_record *scratch = v->scratch;
	struct verdict_batch *batch = v->batch;
	struct policy_span *spans = v->spans;
	unsigned cap = v->spans_cap;

	verdict_init(v);
	v->scratch = scratch;
	v->batch = batch;
	v->spans = spans;
	v->spans_cap = cap;
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

	verdict_clear(v);
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

/* The batch, set up for this request on first use; NULL: out of memory
   (refused). */
static struct verdict_batch *
batch(struct verdict *v)
{
	struct verdict_batch *b = v->batch;

	if (b == NULL && (b = v->batch = malloc(sizeof(*b))) == NULL) {
		refuse(v, 500, "out of memory");
		return NULL;
	}
	if (!v->batch_ready) {
		memo_clear(&b->memo);
		b->nst = b->next = b->nrefs = 0;
		b->stopped = false;
		b->end_rc = 1;
		b->carry = false;
		b->pid = rule_purpose_id(v->route, v->table);
		rule_outcome_of(v->route, v->table, b->pid, NULL, v->now,
		                &b->nobody);
		v->batch_ready = true;
	}
	return b;
}

/* Start a window once the last one is handed out: false when it cannot
   take a line (full, or a malformed line ends it). */
static bool
window_open(struct verdict_batch *b)
{
	if (b->next == b->nst)
		b->nst = b->next = b->nrefs = 0;
	return !b->stopped && b->nst < VERDICT_WINDOW;
}

static struct verdict_staged *
stage(struct verdict_batch *b, size_t start, size_t end)
{
	struct verdict_staged *st = &b->st[b->nst++];

	st->start = start;
	st->end = end;
	st->error = NULL;
	st->missing = 0;
	st->first = (uint16_t)b->nrefs;
	st->nsubjects = 0;
	st->blank = false;
	return st;
}

/* Stage a scanned record. False when its subjects do not fit in the memo
   beside the window's: decide the window first. */
static bool
stage_record(struct verdict_batch *b, const struct scan_record *sr)
{
	struct verdict_staged *st;
	size_t bytes = 0;

	for (unsigned i = 0; i < sr->nsubjects; i++)
		bytes += sr->subjects[i].len;
	if (!memo_room(&b->memo, sr->nsubjects, bytes)) {
		if (b->nst > 0)
			return false;
		/* no record refers to it: start over, one record fits */
		memo_clear(&b->memo);
	}
	st = stage(b, sr->start, sr->end);

	st->missing = sr->missing;
	for (unsigned i = 0; i < sr->nsubjects; i++) {
		int e = memo_intern(&b->memo, sr->subjects[i]);

		/* memo_room promised it; fail closed all the same */
		if (e < 0) {
			st->error = "too many subjects in one request";
			b->stopped = true;
			return true;
		}
		b->refs[b->nrefs++] = (uint16_t)e;
		st->nsubjects++;
	}
	return true;
}

int
verdict_stage_line(struct verdict *v, const char *line, size_t len)
{
	struct verdict_batch *b;
	const char *err = NULL;
	size_t i;

	if (v->status != 0 || (b = batch(v)) == NULL || scratch(v) != 0)
		return 0;
	if (!window_open(b))
		return 0;
	for (i = 0; i < len; i++)
		if (line[i] != ' ' && line[i] != '\t')
			break;
	if (i == len || (i + 1 == len && line[i] == '\r')) {
		/* blank line (CRLF counts as one line end) */
		stage(b, 0, 0)->blank = true;
		return 1;
	}
	if (scan_line(&v->route->spec, line, len, v->scratch, &err) != 0) {
		stage(b, 0, 0)->error = err ? err : "malformed record";
		b->stopped = true;
		return 1;
	}
	/* not staged: offered again (and scanned again) after the window */
	return stage_record(b, v->scratch) ? 1 : 0;
}

static const struct rule_outcome *
memo_each(void *arg, unsigned i, struct rule_outcome *tmp)
{
	const struct verdict_batch *b = arg;

	(void)tmp;
	return &b->memo.ent[b->refs[b->cur->first + i]].o;
}

/*
 * Decide the next staged record: 1 decided (v->rec), 0 a blank line, -1
 * refused. The window's new subjects are looked up first, in one batch.
 */
static int
decide_next(struct verdict *v, struct verdict_batch *b)
{
	const struct verdict_staged *st;

	if (b->next == b->nst)
		return refuse(v, 500, "no record is staged");
	if (b->memo.decided < b->memo.n)
		memo_decide(&b->memo, v->route, v->table, b->pid, v->now);
	st = &b->st[b->next++];
	if (st->blank)
		return 0;
	if (st->error != NULL) {
		v->index = (long)v->records;
		return refuse(v, 422, st->error);
	}
	b->rec.start = st->start;
	b->rec.end = st->end;
	b->rec.missing = st->missing;
	b->rec.nsubjects = st->nsubjects;
	for (unsigned i = 0; i < st->nsubjects; i++)
		b->rec.subjects[i] =
		    memo_subject(&b->memo, b->refs[st->first + i]);
	b->cur = st;
	v->rec.index = v->records;
	v->rec.start = st->start;
	v->rec.end = st->end;
	v->rec.scan = &b->rec;
	rule_decide_with(v->route, st->nsubjects, st->missing, memo_each, b,
	                 &b->nobody, &v->rec.d);
	return 1;
}

int
verdict_feed_next(struct verdict *v, const struct verdict_record **rec)
{
	int rc;

	*rec = NULL;
	if (v->status != 0)
		return -1;
	if (v->batch == NULL || !v->batch_ready)
		return refuse(v, 500, "no record is staged");
	rc = decide_next(v, v->batch);
	if (rc <= 0)
		return rc;
	*rec = &v->rec;
	return count(v);
}

int
verdict_feed_line(struct verdict *v, const char *line, size_t len,
                  const struct verdict_record **rec)
{
	*rec = NULL;
	if (v->status != 0)
		return -1;
	if (verdict_stage_line(v, line, len) != 1)
		return v->status != 0 ? -1 : refuse(v, 500, "lines are staged");
	return verdict_feed_next(v, rec);
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
	struct verdict_batch *b;
	int rc;

	*rec = NULL;
	if (v->status != 0 || v->body == NULL)
		return -1;
	if ((b = batch(v)) == NULL)
		return -1;
	/* scan a window ahead; the scan's end waits for its turn */
	if (b->next == b->nst) {
		window_open(b);
		if (b->carry) /* into the empty window: it fits */
			b->carry = !stage_record(b, v->scratch);
		while (b->end_rc == 1 && !b->carry && window_open(b)) {
			rc = scan_iter_next(&v->it, v->scratch);
			if (rc != 1) {
				b->end_rc = rc;
				break;
			}
			b->carry = !stage_record(b, v->scratch);
		}
	}
	if (b->next == b->nst) {
		if (b->end_rc == 0)
			return 0;
		v->index = (long)v->it.index;
		v->offset = (long long)v->it.offset;
		return refuse(v, 422,
		              v->it.error ? v->it.error : "malformed record");
	}
	rc = decide_next(v, b);
	if (rc < 0)
		return -1;
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
