/*
 * inspect_internal.h: the I/O around the verdict (policy/verdict.c) on an
 * inspected route: inflate a gzip body, split a streamed NDJSON body into
 * lines as it arrives, move the kept records between evbuffers, log every
 * decision, and write the Consent-* headers the verdict computed. Every
 * decision is the verdict's.
 */
#ifndef CONSENTGATE_INSPECT_INTERNAL_H
#define CONSENTGATE_INSPECT_INTERNAL_H

#include <event2/buffer.h>

#include "consentgate/policy.h"
#include "consentgate/verdict.h"
#include "http1_internal.h"
#include "metrics_internal.h"

struct inspect_result {
	bool active; /* an inspected route decided this request */
	bool held;   /* v is initialised and may hold memory */
	/* the verdict's counts, for the connection and the decision log */
	unsigned records, kept, dropped;
	const char *error;    /* static detail for a refusal */
	char error_json[256]; /* extra problem members (index, rule, counts) */
	bool inflated;        /* Content-Encoding was removed */
	bool streaming;       /* NDJSON decided line by line as it arrives */
	bool decided;         /* subject in a header: decided from the head */
	/* shadow mode (route_shadow): decided, logged, forwarded unchanged;
	   would is the status the request would have had (200, 204, or a
	   refusal), 0 while undecided */
	bool shadow;
	int would;
	struct evbuffer *trail; /* decision-log entries, when the log is on */
	struct metrics_tally rules; /* the records by deciding rule */
	/* last: inspect_result_init leaves it alone (a pass request does not
	   pay for clearing it) */
	struct verdict v;
};

void inspect_result_init(struct inspect_result *r);
void inspect_result_reset(struct inspect_result *r);

/*
 * Start deciding a request once its head is read: staleness, encoding and
 * whether the body streams (NDJSON, not compressed: r->streaming). Returns 0
 * or the refusal status.
 */
int inspect_begin(struct inspect_result *r, struct snapshot *snap,
                  const struct policy_route *route,
                  const struct http1_request *req, unsigned max_staleness_s);

/*
 * Streaming NDJSON: decide every complete line of in (consumed), append the
 * kept records to out. final: the body ended, the last line needs no
 * newline. A line longer than max_record is refused (413). 0 or a status.
 */
int inspect_feed(struct inspect_result *r, struct snapshot *snap,
                 const struct policy_route *route, struct evbuffer *in,
                 struct evbuffer *out, bool final, size_t max_record);

/*
 * Buffered formats: decide every record of body (complete, de-chunked) and
 * replace body with the kept records. Returns 0, or the HTTP status of the
 * refusal (403, 413, 415, 422, 503) with r->error and r->error_json set;
 * nothing may be forwarded then.
 */
int inspect_run(struct inspect_result *r, struct snapshot *snap,
                const struct policy_route *route,
                const struct http1_request *req, struct evbuffer *body,
                size_t max_body);

/* Append the Consent-* request headers (and Content-Usage when set); when
   streaming, Consent-Result comes in the trailer (announced here). */
void inspect_request_headers(const struct inspect_result *r, struct evbuffer *h,
                             bool streaming);
/* Append the Consent-Result response header. */
void inspect_response_headers(const struct inspect_result *r,
                              struct evbuffer *o);
/*
 * Inflate a gzip body in place, bounded by max_body and by
 * CG_DEFAULT_MAX_INFLATE_RATIO. Returns 0, or -1 with *status (400 corrupt
 * or truncated, 413 too large, 500) and *detail (static). The CLI inflates
 * with it too.
 */
int inspect_inflate(struct evbuffer *body, size_t max_body, int *status,
                    const char **detail);
/* True when every record was dropped: answer 204, forward nothing. */
bool inspect_all_dropped(const struct inspect_result *r);
/* Client headers the inspection replaces (Content-Encoding after inflate,
   Content-Usage). */
bool inspect_drops_header(const struct inspect_result *r, struct cg_slice name);

#endif
