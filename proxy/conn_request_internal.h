/*
 * conn_request_internal.h: the state a client connection holds while one
 * request is in flight (its parsed head, the head's bytes, the
 * inspection, the body buffers), taken from a small per-worker free list:
 * an idle
 * keep-alive connection holds none, and a busy worker does not pay
 * malloc, free and a 5 KiB memset per request (4% of a small GET's CPU in
 * perf).
 */
#ifndef CONSENTGATE_CONN_REQUEST_INTERNAL_H
#define CONSENTGATE_CONN_REQUEST_INTERNAL_H

#include <time.h>

#include "http1_internal.h"
#include "inspect_internal.h"
#include "reqid_internal.h"

#define CONN_REQUEST_FREE_MAX                                                  \
	64 /* request states a worker keeps (9 KiB each) */

struct worker;

/* CLOCK_MONOTONIC now, in ns: for the request's durations. */
static inline int64_t
conn_request_now(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
}

/* What the request id and the access log keep of one request; zero (rid
   "") between requests. */
struct conn_request_log {
	char rid[REQID_MAX + 1];
	struct timespec t0, up0; /* CLOCK_MONOTONIC: head read, sent upstream */
	int64_t up_ns;           /* upstream time, once its response ended */
	int64_t decide_ns;       /* spent in inspect_* (the verdict) */
	int status;              /* of the response, 0 before one */
	uint64_t bytes_out;      /* response bytes queued to the client */
};

struct conn_request {
	struct http1_request req;
	struct inspect_result insp;
	char *head; /* the head's bytes: req's slices point here */
	size_t head_cap;
	/* the body read so far, and a streamed body's kept records not yet
	   sent: empty between requests */
	struct evbuffer *body, *kept;
	/* reading the body: a length's bytes still to come, or the chunked
	   decoder (here, not in the connection: an idle one costs less) */
	uint64_t body_left;
	struct http1_chunked chunked;
	struct conn_request_log log;
	struct conn_request *next_free; /* in the worker's free list */
};

/* A request state from w's free list or the heap, its inspection
   initialised. NULL when out of memory. */
struct conn_request *conn_request_get(struct worker *w);
/* Give rq back (its inspection reset) to w's free list, or free it when
   the list is full. NULL does nothing. */
void conn_request_put(struct worker *w, struct conn_request *rq);
/* Free every request state w keeps for reuse. */
void conn_request_cache_free(struct worker *w);
/*
 * Copy the head just parsed into rq->req (rq->req.head_len bytes at buf)
 * into rq->head and move every slice of rq->req onto the copy, so that
 * they outlive the input buffer. 0, or -1 when out of memory.
 */
int conn_request_keep_head(struct conn_request *rq, const char *buf);

#endif
