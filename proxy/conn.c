/*
 * conn.c: one client connection: read a request head, check it strictly,
 * route it, read the body, forward it, relay the response, and go again
 * (keep-alive, pipelining: one request at a time, answered in order).
 *
 * The client side is a struct transport (transport.c): socket, buffers,
 * event, timer and the callback guard. One teardown path (conn_close); the
 * connection is freed by conn_free once no callback of its own is on the
 * stack. The upstream request head is written by rewrite.c.
 */
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn_request_internal.h"
#include "declog_internal.h"
#include "inspect_internal.h"
#include "proxy_internal.h"
#include "rewrite_internal.h"
#include "transport_internal.h"

#define CONN_OUT_HIGH                                                          \
	(1u << 20) /* bytes queued to the client before pausing upstream */
#define CONN_OUT_LOW (256u << 10) /* ... and resuming it */
#define CONN_PIPELINE_MAX                                                      \
	(64u << 10) /* bytes read ahead while a request is in flight */
#define STREAM_START                                                           \
	(256u << 10) /* kept NDJSON bytes before streaming upstream */
#define STREAM_HIGH                                                            \
	(1u << 20) /* bytes queued upstream before pausing the client */

enum conn_state {
	CS_HEAD,     /* reading a request head (or idle between requests) */
	CS_BODY,     /* reading the request body */
	CS_UPSTREAM, /* the request is forwarded; relaying the response */
	CS_CLOSING,  /* flushing the last bytes, then closing */
};

enum timer_kind { TIMER_NONE, TIMER_IDLE, TIMER_HEAD, TIMER_BODY };

struct conn {
	struct transport t; /* the client side: t.in, t.out, flags, guard */
	struct worker *w;
	struct conn *next, *prev;
	enum timer_kind timer_kind;
	uint64_t id;
	char peer[REWRITE_PEER_MAX]; /* for Forwarded: for= */
	enum conn_state state;
	/* the request in flight; NULL while the connection idles, so that an
	   idle keep-alive connection costs a few hundred bytes, not kilobytes
	 */
	struct conn_request *rq;
	size_t head_scanned; /* bytes of a partial head already parsed */
	struct http1_chunked chunked;
	uint64_t body_left;
	struct evbuffer *body;
	struct evbuffer *kept; /* streamed NDJSON: kept records not yet sent */
	bool stream_started;   /* the upstream request is under way, chunked */
	bool body_complete;    /* the whole request body has been read */
	struct policy_snapshot *snap;
	const struct policy_route *route;
	struct upstream_conn *up;
	bool response_started, keep_alive, upstream_paused;
};

static void conn_step(struct conn *c);

static void
set_timer(struct conn *c, enum timer_kind kind, unsigned ms)
{
	c->timer_kind = kind;
	transport_set_timer(&c->t, ms);
}

static void
clear_timer(struct conn *c)
{
	if (c->timer_kind != TIMER_NONE) {
		transport_clear_timer(&c->t);
		c->timer_kind = TIMER_NONE;
	}
}

/* Drop the per-request state of an idle connection. */
static void
rq_release(struct conn *c)
{
	conn_request_put(c->w, c->rq);
	c->rq = NULL;
}

void
conn_free_cache(struct worker *w)
{
	conn_request_cache_free(w);
}

static void
request_reset(struct conn *c)
{
	if (c->up) {
		upstream_abort(c->up);
		c->up = NULL;
	}
	if (c->snap) {
		policy_snapshot_unref(c->snap);
		c->snap = NULL;
	}
	if (c->rq &&
	    (c->rq->insp.active || c->rq->insp.held || c->rq->insp.trail))
		inspect_result_reset(&c->rq->insp);
	c->route = NULL;
	c->response_started = false;
	c->upstream_paused = false;
	c->body_left = 0;
	c->stream_started = false;
	c->body_complete = false;
	evbuffer_drain(c->body, evbuffer_get_length(c->body));
	evbuffer_drain(c->kept, evbuffer_get_length(c->kept));
}

/* The transport's on_free: closed, and no callback of ours on the stack. */
static void
conn_free(void *arg)
{
	struct conn *c = arg;
	struct worker *w = c->w;

	request_reset(c);
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	transport_reset(&c->t); /* closes the socket */
	if (c->body)
		evbuffer_free(c->body);
	if (c->kept)
		evbuffer_free(c->kept);
	rq_release(c);
	worker_fd_closed(w);
	free(c);
	atomic_fetch_sub_explicit(&w->metrics.active_conns, 1,
	                          memory_order_relaxed);
	worker_conn_closed(w);
}

/* The one way a connection ends; conn_free follows when it is safe. */
static void
conn_close(struct conn *c)
{
	if (c->t.closed)
		return;
	c->timer_kind = TIMER_NONE; /* transport_close stops the timer */
	if (c->up) {
		upstream_abort(c->up);
		c->up = NULL;
	}
	transport_close(&c->t);
}

/* Part of the request body is still unread: the connection cannot go on. */
static bool
body_pending(const struct conn *c)
{
	return c->rq && (c->state == CS_BODY || c->state == CS_HEAD) &&
	       !c->body_complete && c->rq->req.framing != HTTP1_FRAMING_NONE;
}

/* The proof of an inspected request's decisions, once its outcome is known. */
static void
log_decision(struct conn *c, const char *outcome, int status)
{
	if (c->rq && c->rq->insp.active && c->route && c->snap) {
		enum metric m =
		    strcmp(outcome, "forwarded") == 0 ? METRIC_OUT_FORWARDED
		    : strcmp(outcome, "all-dropped") == 0
		        ? METRIC_OUT_ALL_DROPPED
		    : strcmp(outcome, "blocked") == 0 ? METRIC_OUT_BLOCKED
		    : strcmp(outcome, "refused") == 0
		        ? METRIC_OUT_REFUSED
		        : METRIC_OUT_UPSTREAM_FAILED;

		metrics_add(c->w, m, 1);
		metrics_add(c->w, METRIC_RECORDS_KEPT, c->rq->insp.kept);
		metrics_add(c->w, METRIC_RECORDS_DROPPED, c->rq->insp.dropped);
		declog_write(c->w, c->id, c->route, c->snap, &c->rq->insp,
		             outcome, status);
		c->rq->insp.active = false; /* one line per request */
	}
}

/* The decision-log outcome of a refusal. */
static const char *
refusal_outcome(int status)
{
	return status == 403   ? "blocked"
	       : status >= 502 ? "upstream-failed"
	                       : "refused";
}

/* Answer with a problem and close after it is flushed. */
static void
fail_request(struct conn *c, int status, const char *detail, const char *extra)
{
	log_msg("conn %llu: %d %s", (unsigned long long)c->id, status, detail);
	log_decision(c, refusal_outcome(status), status);
	metrics_response(c->w, status);
	respond_problem(c->t.out, status, detail, true, extra);
	request_reset(c);
	c->state = CS_CLOSING;
	clear_timer(c);
}

/* Reply without closing (the request was read completely). */
static void
reply_problem(struct conn *c, int status, const char *detail, const char *extra)
{
	/* a body still unread cannot be skipped reliably */
	bool close =
	    !c->rq->req.keep_alive || c->w->draining || body_pending(c);

	log_decision(c, refusal_outcome(status), status);
	metrics_response(c->w, status);
	respond_problem(c->t.out, status, detail, close, extra);
	request_reset(c);
	c->state = close ? CS_CLOSING : CS_HEAD;
}

/*
 * Every record was dropped: nothing goes upstream; the request succeeded.
 * Called before the body was read (header subject), the connection closes.
 */
static void
reply_all_dropped(struct conn *c)
{
	c->keep_alive =
	    c->rq->req.keep_alive && !c->w->draining && !body_pending(c);
	log_decision(c, "all-dropped", 204);
	metrics_response(c->w, 204);
	ADD_LIT(c->t.out, "HTTP/1.1 204 No Content\r\n");
	inspect_response_headers(&c->rq->insp, c->t.out);
	evbuffer_add_printf(c->t.out, "%s\r\n",
	                    c->keep_alive ? "" : "Connection: close\r\n");
	request_reset(c);
	c->state = c->keep_alive ? CS_HEAD : CS_CLOSING;
}

/* ---- the upstream exchange ---- */

/*
 * An inspected request answered 2xx/3xx before the upstream could have
 * read all of it: the answer cannot prove that the kept records arrived,
 * so it is never relayed as a success. The upstream connection is closed
 * (a streamed body stays without its terminating chunk) and the client
 * gets 502 and the connection closes.
 */
static void
refuse_early_answer(struct conn *c, int status)
{
	log_msg("conn %llu: the upstream answered %d before the request was "
	        "written completely",
	        (unsigned long long)c->id, status);
	upstream_abort(c->up); /* we are in its callback: it frees itself */
	c->up = NULL;
	fail_request(c, 502,
	             "the upstream answered before it received the whole "
	             "request",
	             NULL);
	conn_step(c); /* flush the answer; nothing else would now */
}

static void
relay_head(struct conn *c, const struct http1_response *res)
{
	struct evbuffer *o = c->t.out;
	bool chunked = res->framing == HTTP1_FRAMING_CHUNKED;
	bool inspected = policy_route_action(c->route) == POLICY_ACTION_INSPECT;
	/* the upstream answered before it had our whole request */
	bool early = !upstream_request_written(c->up);

	if (early && inspected && res->status < 400) {
		refuse_early_answer(c, res->status);
		return;
	}
	if (early && inspected && c->state == CS_BODY) {
		/* an error relayed early ends the streamed request: no more of
		   the body is read or sent, and the connection closes after
		   the answer */
		c->state = CS_UPSTREAM;
		clear_timer(c);
	}
	c->response_started = true;
	metrics_response(c->w, res->status);
	c->keep_alive = c->rq->req.keep_alive && !c->w->draining &&
	                !body_pending(c) && !(early && inspected) &&
	                res->framing != HTTP1_FRAMING_CLOSE &&
	                !(chunked && c->rq->req.minor == 0);
	/* a chunked body to a 1.0 client is de-chunked: it reads to close */
	rewrite_response_head(o, res, c->rq->insp.active,
	                      chunked && c->rq->req.minor == 1);
	if (c->rq->insp.active && early) {
		/* no Consent-Result: its counts would claim records that were
		   not all delivered */
		log_decision(c, "upstream-failed", res->status);
	} else if (c->rq->insp.active) {
		inspect_response_headers(&c->rq->insp, o);
		log_decision(c, "forwarded", res->status);
	}
	if (!c->keep_alive)
		ADD_LIT(o, "Connection: close\r\n\r\n");
	else if (c->rq->req.minor == 0)
		ADD_LIT(o, "Connection: keep-alive\r\n\r\n");
	else
		ADD_LIT(o, "\r\n");
}

/*
 * The upstream's callbacks into this connection: each runs under the
 * guard, so that whatever it closes, the connection is freed only after.
 */
static void
on_up_head(void *arg, const struct http1_response *res)
{
	struct conn *c = arg;

	transport_hold(&c->t);
	relay_head(c, res);
	transport_release(&c->t);
}

static void
on_up_body(void *arg, struct evbuffer *src, size_t n)
{
	struct conn *c = arg;

	transport_hold(&c->t);
	evbuffer_remove_buffer(src, c->t.out, n);
	if (transport_flush(&c->t) < 0)
		conn_close(c);
	else if (evbuffer_get_length(c->t.out) > CONN_OUT_HIGH && c->up &&
	         !c->upstream_paused) {
		upstream_pause(c->up);
		c->upstream_paused = true;
	}
	transport_release(&c->t);
}

static void
on_up_done(void *arg, int result)
{
	struct conn *c = arg;

	transport_hold(&c->t);
	c->up = NULL;
	if (result == 0) {
		request_reset(c);
		c->state = c->keep_alive ? CS_HEAD : CS_CLOSING;
	} else if (!c->response_started && result > 0) {
		reply_problem(c, result,
		              result == 504
		                  ? "the upstream did not answer in time"
		                  : "the upstream could not be reached or sent "
		                    "a broken response",
		              NULL);
	} else {
		/* the response broke after it started: the client must see it
		   end early, never a truncated response presented as complete
		 */
		log_msg("conn %llu: upstream response broke; closing",
		        (unsigned long long)c->id);
		request_reset(c);
		c->state = CS_CLOSING;
	}
	conn_step(c);
	transport_release(&c->t);
}

static void
on_up_writable(void *arg)
{
	struct conn *c = arg;

	/* a streamed body drained upstream: read more from the client */
	if (c->state == CS_BODY && c->t.can_read) {
		transport_hold(&c->t);
		conn_step(c);
		transport_release(&c->t);
	}
}

static const struct upstream_ops conn_upstream_ops = {
    on_up_head,
    on_up_body,
    on_up_done,
    on_up_writable,
};

static unsigned
exchange_flags(const struct conn *c, size_t body_len)
{
	struct cg_slice m = c->rq->req.method;
	unsigned flags = 0;

	if (body_len == 0 &&
	    (cg_slice_ieq(m, "GET") || cg_slice_ieq(m, "HEAD") ||
	     cg_slice_ieq(m, "OPTIONS")))
		flags |= UPSTREAM_RETRYABLE;
	if (cg_slice_ieq(m, "HEAD"))
		flags |= UPSTREAM_HEAD;
	if (c->rq->req.minor == 0)
		flags |= UPSTREAM_DECHUNK;
	return flags;
}

/* Our own request head (rewrite.c). */
static void
build_upstream_head(struct conn *c, struct evbuffer *h, size_t body_len,
                    bool streaming)
{
	rewrite_request_head(h, &c->rq->req, &c->rq->insp, c->peer,
	                     c->w->cfg->upstream_hostport, body_len, streaming);
}

static void
forward(struct conn *c)
{
	struct evbuffer *h, *body = c->body;
	size_t body_len;

	if (policy_route_action(c->route) == POLICY_ACTION_INSPECT) {
		if (c->rq->insp.streaming) {
			body = c->kept; /* decided line by line already */
		} else if (!c->rq->insp.decided) {
			int status = inspect_run(&c->rq->insp, c->snap,
			                         c->route, &c->rq->req, c->body,
			                         c->w->cfg->max_body_bytes);

			if (status != 0) {
				reply_problem(c, status, c->rq->insp.error,
				              c->rq->insp.error_json);
				return;
			}
		}
		if (inspect_all_dropped(&c->rq->insp)) {
			reply_all_dropped(c);
			return;
		}
	}
	h = evbuffer_new();
	body_len = evbuffer_get_length(body);
	build_upstream_head(c, h, body_len, false);
	c->state = CS_UPSTREAM;
	c->up = upstream_send(c->w, h, body, exchange_flags(c, body_len),
	                      &conn_upstream_ops, c);
	evbuffer_free(h);
	if (c->up == NULL)
		reply_problem(c, 502, "the upstream could not be reached",
		              NULL);
}

/* Send the kept records so far as one chunk of the streamed request. */
static void
stream_chunk(struct conn *c)
{
	struct evbuffer *chunk;
	size_t n = evbuffer_get_length(c->kept);

	if (n == 0 || c->up == NULL || (chunk = evbuffer_new()) == NULL)
		return;
	evbuffer_add_printf(chunk, "%zx\r\n", n);
	evbuffer_add_buffer(chunk, c->kept);
	ADD_LIT(chunk, "\r\n");
	upstream_write(c->up, chunk, false);
	evbuffer_free(chunk);
}

/*
 * Streaming NDJSON: decide the lines that arrived; start the upstream
 * request once enough was kept (a small body still goes out in one piece
 * with a Content-Length); on a bad record after streaming began, abort the
 * upstream connection so that it never receives a complete request.
 */
static void
stream_progress(struct conn *c, bool done)
{
	int status = inspect_feed(&c->rq->insp, c->snap, c->route, c->body,
	                          c->kept, done, CG_DEFAULT_MAX_RECORD_BYTES);

	if (status != 0) {
		fail_request(c, status, c->rq->insp.error,
		             c->rq->insp.error_json);
		return;
	}
	if (!c->stream_started && !done &&
	    evbuffer_get_length(c->kept) >= STREAM_START) {
		struct evbuffer *h = evbuffer_new();

		build_upstream_head(c, h, 0, true);
		c->up = upstream_send(c->w, h, NULL, exchange_flags(c, 1),
		                      &conn_upstream_ops, c);
		evbuffer_free(h);
		if (c->up == NULL) {
			fail_request(c, 502,
			             "the upstream could not be reached", NULL);
			return;
		}
		c->stream_started = true;
	}
	if (!c->stream_started) {
		if (done) {
			clear_timer(c);
			forward(c);
		}
		return;
	}
	stream_chunk(c);
	if (done && c->up) {
		struct evbuffer *end = evbuffer_new();

		clear_timer(c);
		evbuffer_add_printf(
		    end, "0\r\nConsent-Result: kept=%u, dropped=%u\r\n\r\n",
		    c->rq->insp.kept, c->rq->insp.dropped);
		upstream_write(c->up, end, true);
		evbuffer_free(end);
		c->state = CS_UPSTREAM;
	}
}

/* ---- reading the request ---- */

static void
start_request(struct conn *c, const char *buf)
{
	const struct http1_request *r = &c->rq->req;

	/* keep the head: the slices must outlive the input buffer */
	if (conn_request_keep_head(c->rq, buf) != 0) {
		fail_request(c, 500, "out of memory", NULL);
		return;
	}
	evbuffer_drain(c->t.in, r->head_len);
	clear_timer(c);

	metrics_add(c->w, METRIC_REQUESTS, 1);
	c->snap = server_snapshot(c->w->server);
	struct policy_refusal why;
	c->route = policy_match(policy_snapshot_policy(c->snap), r->method,
	                        r->path, &why);
	if (c->route == NULL) {
		char detail[CG_MAX_DETAIL];

		policy_refusal_detail(&why, detail, sizeof(detail));
		if (r->framing == HTTP1_FRAMING_NONE) {
			reply_problem(c, why.status, detail, NULL);
		} else {
			/* the unread body would be taken for the next request
			 */
			fail_request(c, why.status, detail, NULL);
		}
		return;
	}
	if (policy_route_action(c->route) == POLICY_ACTION_INSPECT) {
		int status = inspect_begin(&c->rq->insp, c->snap, c->route, r,
		                           c->w->cfg->max_staleness_s);

		if (status != 0) {
			if (r->framing == HTTP1_FRAMING_NONE)
				reply_problem(c, status, c->rq->insp.error,
				              c->rq->insp.error_json);
			else
				fail_request(c, status, c->rq->insp.error,
				             c->rq->insp.error_json);
			return;
		}
		if (c->rq->insp.decided && inspect_all_dropped(&c->rq->insp)) {
			reply_all_dropped(
			    c); /* the person in the header is denied */
			return;
		}
	}
	if (r->framing == HTTP1_FRAMING_LENGTH &&
	    r->content_length > c->w->cfg->max_body_bytes) {
		fail_request(c, 413,
		             "the request body is larger than the limit", NULL);
		return;
	}
	if (r->expect_continue && r->framing != HTTP1_FRAMING_NONE &&
	    evbuffer_get_length(c->t.in) == 0)
		ADD_LIT(c->t.out, "HTTP/1.1 100 Continue\r\n\r\n");
	if (r->framing == HTTP1_FRAMING_NONE) {
		forward(c);
		return;
	}
	c->body_left = r->content_length;
	http1_chunked_init(&c->chunked);
	c->state = CS_BODY;
	set_timer(c, TIMER_BODY, c->w->cfg->body_timeout_ms);
}

/* Move body bytes from the input; 1 when the body is complete. */
static int
read_body(struct conn *c)
{
	size_t avail = evbuffer_get_length(c->t.in);

	if (c->rq->req.framing == HTTP1_FRAMING_LENGTH) {
		size_t n = avail < c->body_left ? avail : (size_t)c->body_left;

		evbuffer_remove_buffer(c->t.in, c->body, n);
		c->body_left -= n;
		c->body_complete = c->body_left == 0;
		return c->body_complete;
	}
	while (avail > 0 && !c->chunked.done) {
		struct evbuffer_iovec vec;
		struct cg_slice data;
		const char *reason = NULL;
		long k;

		if (evbuffer_peek(c->t.in, -1, NULL, &vec, 1) < 1)
			break;
		k = http1_chunked_feed(&c->chunked, vec.iov_base, vec.iov_len,
		                       &data, &reason);
		if (k < 0) {
			fail_request(c, 400, reason, NULL);
			return -1;
		}
		if (data.len > 0) {
			if (c->chunked.total > c->w->cfg->max_body_bytes) {
				fail_request(
				    c, 413,
				    "the request body is larger than the limit",
				    NULL);
				return -1;
			}
			evbuffer_add(c->body, data.ptr, data.len);
		}
		evbuffer_drain(c->t.in, (size_t)k);
		avail -= (size_t)k;
		if (k == 0)
			break;
	}
	c->body_complete = c->chunked.done;
	return c->chunked.done;
}

static void
parse_head(struct conn *c)
{
	const struct config *cfg = c->w->cfg;
	size_t len = evbuffer_get_length(c->t.in);
	size_t lim = cfg->max_header_bytes + 2;
	struct http1_limits limits = {cfg->max_header_bytes,
	                              cfg->max_header_count};
	const char *reason = NULL;
	unsigned char *buf;
	int status = 400, rc;

	if (c->rq == NULL) {
		c->rq = conn_request_get(c->w);
		if (c->rq == NULL) {
			conn_close(c);
			return;
		}
	}
	if (len > lim)
		len = lim;
	/* A head only changes meaning at a line end: parse again only when a
	   new '\n' arrived (a head trickling in byte by byte stays linear). */
	if (c->head_scanned > 0 && c->head_scanned < len && len < lim) {
		struct evbuffer_ptr from;

		evbuffer_ptr_set(c->t.in, &from, c->head_scanned,
		                 EVBUFFER_PTR_SET);
		if (evbuffer_search(c->t.in, "\n", 1, &from).pos < 0) {
			c->head_scanned = len;
			return;
		}
	}
	c->head_scanned = len;
	buf = evbuffer_pullup(c->t.in, (ev_ssize_t)len);
	rc = http1_parse_request((const char *)buf, len, &limits, &c->rq->req,
	                         &status, &reason);
	if (rc == 0) {
		if (len >= lim) {
			fail_request(
			    c, 431, "the request head is larger than the limit",
			    NULL);
			return;
		}
		if (c->timer_kind != TIMER_HEAD)
			set_timer(c, TIMER_HEAD, cfg->head_timeout_ms);
		return;
	}
	if (rc < 0) {
		fail_request(c, status, reason ? reason : "malformed request",
		             NULL);
		return;
	}
	c->head_scanned = 0;
	start_request(c, (const char *)buf);
}

/* Read once if we may; true when bytes arrived. */
static bool
conn_read(struct conn *c)
{
	while (c->t.can_read && !c->t.eof && !c->t.closed) {
		size_t have = evbuffer_get_length(c->t.in);

		if (c->state == CS_UPSTREAM && have >= CONN_PIPELINE_MAX)
			return false;
		if (c->state == CS_BODY && c->up &&
		    upstream_pending(c->up) > STREAM_HIGH)
			return false; /* backpressure: resumed by on_up_writable
			               */
		if (c->state == CS_HEAD &&
		    have > c->w->cfg->max_header_bytes + 2)
			return false;
		/* the transport tells whether more is there (can_read) */
		if (transport_read(&c->t, TRANSPORT_READ_MAX) > 0) {
			if (c->state == CS_BODY)
				set_timer(c, TIMER_BODY,
				          c->w->cfg->body_timeout_ms);
			return true; /* process before reading more */
		}
	}
	return false;
}

static void
conn_step(struct conn *c)
{
	for (int rounds = 0; !c->t.closed && rounds < 1000; rounds++) {
		enum conn_state before = c->state;
		bool got = conn_read(c);

		if (c->t.closed)
			return;
		switch (c->state) {
		case CS_HEAD:
			if (evbuffer_get_length(c->t.in) > 0) {
				parse_head(c);
			} else if (c->t.eof || c->w->draining) {
				conn_close(c);
				return;
			} else if (c->timer_kind == TIMER_NONE) {
				set_timer(c, TIMER_IDLE,
				          c->w->cfg->idle_timeout_ms);
				rq_release(c);
			}
			if (c->state == CS_HEAD && c->t.eof &&
			    evbuffer_get_length(c->t.in) > 0) {
				/* half a head and the client left */
				conn_close(c);
				return;
			}
			break;
		case CS_BODY: {
			int done = read_body(c);

			if (done >= 0 && c->rq->insp.streaming) {
				stream_progress(c, done == 1);
				if (c->state == CS_BODY && done == 0 &&
				    c->t.eof) {
					conn_close(c); /* the upstream request
					                  stays incomplete */
					return;
				}
			} else if (done == 1) {
				clear_timer(c);
				forward(c);
			} else if (done == 0 && c->t.eof) {
				/* client gone mid-request: nothing was
				 * forwarded */
				conn_close(c);
				return;
			}
			break;
		}
		case CS_UPSTREAM:
			if (c->t.eof && !c->response_started) {
				/* the client left: abandon the upstream request
				 */
				conn_close(c);
				return;
			}
			break;
		case CS_CLOSING:
			break;
		}
		if (c->t.closed)
			return;
		if (transport_flush(&c->t) < 0) {
			conn_close(c);
			return;
		}
		if (c->upstream_paused && c->up &&
		    evbuffer_get_length(c->t.out) < CONN_OUT_LOW) {
			c->upstream_paused = false;
			upstream_resume(c->up);
			if (c->t.closed)
				return;
		}
		if (c->state == CS_CLOSING &&
		    evbuffer_get_length(c->t.out) == 0) {
			transport_shutdown(&c->t);
			conn_close(c);
			return;
		}
		/* go round again only while something moved */
		if (c->state == before && !got)
			break;
		if (c->state == before && c->state == CS_UPSTREAM)
			break;
	}
}

static void
on_conn_ready(void *arg)
{
	conn_step(arg);
}

static void
on_conn_timeout(void *arg)
{
	struct conn *c = arg;
	enum timer_kind kind = c->timer_kind;

	c->timer_kind = TIMER_NONE;
	if (kind == TIMER_HEAD && c->state == CS_HEAD) {
		fail_request(c, 408, "the request head did not arrive in time",
		             NULL);
		conn_step(c);
	} else if (kind == TIMER_BODY && c->state == CS_BODY) {
		fail_request(c, 408, "the request body stalled", NULL);
		conn_step(c);
	} else {
		conn_close(c); /* idle keep-alive connection */
	}
}

static const struct transport_handlers conn_handlers = {
    on_conn_ready,
    on_conn_timeout,
    conn_free,
};

void
conn_accept(struct worker *w, int fd, const struct sockaddr *sa,
            socklen_t salen)
{
	struct conn *c = calloc(1, sizeof(*c));
	int one = 1, rc;

	if (c == NULL) {
		close(fd);
		worker_fd_closed(w);
		return;
	}
	w->nconns++;
	metrics_add(w, METRIC_ACCEPTS, 1);
	atomic_fetch_add_explicit(&w->metrics.active_conns, 1,
	                          memory_order_relaxed);
	c->w = w;
	c->id = ((uint64_t)w->index << 48) | ++w->next_conn_id;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	rewrite_peer(sa, c->peer, sizeof(c->peer));
	/* attached even when init failed: conn_free closes the socket */
	rc = transport_init(&c->t, w->base, &conn_handlers, c);
	rc |= transport_attach(&c->t, fd, &transport_plain);
	c->body = evbuffer_new();
	c->kept = evbuffer_new();
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	if (rc != 0 || !c->body || !c->kept) {
		conn_close(c);
		return;
	}
	set_timer(c, TIMER_HEAD, w->cfg->head_timeout_ms);
}

void
conn_drain_all(struct worker *w)
{
	struct conn *c, *next;

	for (c = w->conns; c; c = next) {
		next = c->next;
		/* idle keep-alive connections go now; the others finish */
		if (c->state == CS_HEAD && evbuffer_get_length(c->t.in) == 0 &&
		    evbuffer_get_length(c->t.out) == 0)
			conn_close(c);
	}
}

void
conn_close_all(struct worker *w)
{
	while (w->conns) {
		struct conn *c = w->conns;

		if (c->t.closed) {
			conn_free(
			    c); /* the loop stopped: nothing is on the stack */
		} else {
			conn_close(c);
		}
	}
}
