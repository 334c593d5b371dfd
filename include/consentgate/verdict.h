/*
 * verdict.h: the one decision of a request to an inspected route, shared by
 * the proxy (proxy/inspect.c) and the policy author's CLI (check, test,
 * eval), so that a passing policy test means the proxy does the same.
 *
 * Input: the route, a plain view of the request headers, the consent table,
 * the time, and the body: either whole (verdict_body, then verdict_next
 * for each record) or, for NDJSON that arrives as a stream, one line at a
 * time (verdict_feed_line). Output: the HTTP status and problem detail, per
 * record the decision with its rule and the evidence of every subject, the
 * kept records' byte ranges, and the Consent-* header values.
 *
 * What it decides (in this order):
 *  - 503 when the consent table is older than the staleness limit;
 *  - a route with a subject header: the header must appear once in any
 *    spelling (X_Subject_Id counts: WSGI servers read '_' as '-' and keep
 *    the last) and name one person (no list), else 400; the request is one
 *    record, decided at verdict_begin without reading the body;
 *  - Content-Encoding other than identity or gzip: 415 (gzip is inflated
 *    by the caller before the body is given);
 *  - the body format from Content-Type (route_body_format); a missing or
 *    empty Content-Type is 415: doubt fails closed;
 *  - a record that is not valid JSON or whose subject is ambiguous: 422
 *    with its index (and byte offset for a whole body);
 *  - on a block route, the first denied record: 403 with its rule and
 *    index, and nothing after it is decided;
 *  - at the end: 204 when records were given and every one was dropped,
 *    else 200 (forward the kept records).
 *
 * Each distinct subject is looked up and matched once per request, the
 * lookups of up to VERDICT_WINDOW records at a time in one batch: records
 * are scanned ahead of their decision (verdict_next does it itself; a
 * streamed body stages its lines with verdict_stage_line). Records are
 * still decided, counted and refused in order, exactly as one at a time.
 *
 * Pure: no I/O, no libevent. A verdict allocates its scan scratch, its
 * dedup table and, for a whole body, the array of kept spans once and
 * keeps them from one request to the next until verdict_reset; nothing
 * per record.
 */
#ifndef CONSENTGATE_VERDICT_H
#define CONSENTGATE_VERDICT_H

#include "consentgate/common.h"
#include "consentgate/consent.h"
#include "consentgate/policy.h"
#include "consentgate/scan.h"

#define VERDICT_WINDOW 32 /* records scanned ahead of their decision */

struct verdict_batch;

/* One request header, as sent. */
struct verdict_header {
	struct cg_slice name, value;
};

struct verdict_request {
	const struct verdict_header *headers;
	unsigned nheaders;
	int64_t now;              /* unix seconds the request is decided at */
	unsigned max_staleness_s; /* 0: the consent age is not checked */
};

/* One decided record. */
struct verdict_record {
	unsigned index;    /* record number in the request, from 0 */
	size_t start, end; /* its bytes: in the body (verdict_next) or in the
	                      line (verdict_feed_line); whole for a header */
	const struct scan_record *scan; /* its subjects; NULL for a header */
	struct cg_slice header_subject; /* the header's person, if any */
	struct policy_decision d;       /* allow, rule, every evidence */
};

struct verdict {
	/* ---- results, read-only ---- */
	/* 0 while undecided; after verdict_end 200 (forward the kept
	 * records) or 204 (every record dropped); else the refusal: 400,
	 * 403, 415, 422, 500, 503 */
	int status;
	const char *detail; /* static problem detail for a refusal */
	/* problem members a refusal carries: -1 / NULL when absent */
	long index;       /* the record */
	long long offset; /* its byte offset in a whole body */
	const char *rule; /* the deciding rule (403) */
	bool counts;      /* 403 of a header subject: "kept":0,"dropped":1 */

	unsigned records, kept, dropped;
	int format;      /* SCAN_FORMAT_* once known, else -1 */
	bool decided;    /* subject header: decided by verdict_begin */
	bool gzip;       /* the body must be inflated before verdict_body */
	bool streamable; /* NDJSON known from the head: lines may be fed */
	struct verdict_record rec; /* the last record decided */

	/* whole bodies: the kept records, for verdict_rebuild */
	struct policy_span *spans;
	unsigned nspans, spans_cap;

	/* Consent-* values for the forwarded request (NUL-terminated) */
	const char *consent_purpose; /* Consent-Purpose */
	char consent_policy[128];    /* Consent-Policy */
	char consent_snapshot[64];   /* Consent-Snapshot */
	const char *content_usage;   /* Content-Usage, NULL when not set */

	/* ---- private ---- */
	const struct policy_route *route;
	const struct consent_table *table;
	int64_t now;
	struct cg_slice content_type;
	struct scan_record *scratch;
	struct verdict_batch *batch; /* staged records, dedup table */
	bool batch_ready;            /* batch set up for this request */
	struct scan_iter it;
	const char *body;
	size_t body_len;
};

void verdict_init(struct verdict *v);
/* Free what a verdict holds; it can begin again after. */
void verdict_reset(struct verdict *v);

/*
 * Start deciding a request to the inspected route r (the request head is
 * read) against table t. req's header array is read during the call
 * only; the bytes its values point to must outlive v. Returns 0, or -1
 * when the request is refused (v->status, v->detail). A subject-header
 * route is decided here (v->decided; v->status 200 or 204).
 */
int verdict_begin(struct verdict *v, const struct policy_route *r,
                  const struct consent_table *t,
                  const struct verdict_request *req);

/*
 * Streamed NDJSON (v->streamable): decide one line (without its LF).
 * Returns 0 with *rec the decided record (keep it when (*rec)->d.allow)
 * or NULL for a blank line; -1 when the request is refused (v->status),
 * *rec then the denied record of a 403 or NULL. The line may be reused
 * after the call; rec's start and end are offsets in it, its subjects
 * point into the verdict. Not while lines are staged (verdict_stage_line).
 */
int verdict_feed_line(struct verdict *v, const char *line, size_t len,
                      const struct verdict_record **rec);

/*
 * Streamed NDJSON, in batches: stage one line (without its LF), scanned
 * now and decided by a later verdict_feed_next, with the lines staged
 * with it (their subjects looked up in one batch). Returns 1 when staged
 * (a blank line and a malformed one too: its refusal comes in its turn),
 * 0 when not: the window is full (VERDICT_WINDOW lines, or the dedup
 * table's room), a malformed line was staged, or the request is refused.
 * A staged line must stay in place, unchanged, until its turn.
 */
int verdict_stage_line(struct verdict *v, const char *line, size_t len);
/*
 * The decision of the oldest staged line, as verdict_feed_line returns
 * it for that line (-1 with status 500 when none is staged).
 */
int verdict_feed_next(struct verdict *v, const struct verdict_record **rec);

/*
 * A whole body (de-chunked, inflated): pick its format. Returns 0, or -1
 * with 415. buf must stay until verdict_rebuild.
 */
int verdict_body(struct verdict *v, const char *buf, size_t len);
/*
 * The next record of the whole body. 1: *rec decided (kept ones are
 * recorded for verdict_rebuild); 0: the end, the body is valid; -1:
 * refused (v->status; *rec the denied record of a 403, else NULL).
 */
int verdict_next(struct verdict *v, const struct verdict_record **rec);

/*
 * Write the body to forward after verdict_next returned 0 into out (at
 * least len + 1 bytes of the body given to verdict_body). Returns its
 * length. See route_body_rebuild.
 */
size_t verdict_rebuild(const struct verdict *v, char *out);

/* All records are decided: sets v->status to 200 or 204. Returns 0. */
int verdict_end(struct verdict *v);

/* "kept=N, dropped=N" (the Consent-Result value) into buf. */
void verdict_consent_result(const struct verdict *v, char *buf, size_t cap);

/*
 * The problem members of a refusal (without braces) into buf, "" when
 * none: "\"index\":3,\"offset\":120" or "\"rule\":\"r\",\"index\":3".
 */
void verdict_problem_members(const struct verdict *v, char *buf, size_t cap);

#endif
