/*
 * relay.c: the upstream half of a client connection: the inspected body
 * decided, our own request head built (rewrite.c), the exchange started
 * on a pooled or new upstream connection (upstream.c), a streamed NDJSON
 * body sent chunk by chunk, and the response relayed back to the client
 * under the connection's guard. See conn_internal.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conn_internal.h"
#include "inspect_internal.h"

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
	log_warn("conn %llu: the upstream answered %d before the request was "
	         "written completely",
	         (unsigned long long)c->id, status);
	upstream_abort(c->up); /* we are in its callback: it frees itself */
	c->up = NULL;
	conn_fail(c, 502,
	          "the upstream answered before it received the whole "
	          "request",
	          NULL);
	conn_step(c); /* flush the answer; nothing else would now */
}

static void
write_response_head(struct conn *c, const struct http1_response *res)
{
	struct evbuffer *o = c->t.out;
	bool chunked = res->framing == HTTP1_FRAMING_CHUNKED;
	bool inspected = route_action(c->route) == POLICY_ACTION_INSPECT;
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
		conn_clear_timer(c);
	}
	size_t mark = evbuffer_get_length(o);

	c->response_started = true;
	metrics_response(c->w, res->status);
	conn_responding(c, res->status);
	c->keep_alive = c->rq->req.keep_alive && !c->w->draining &&
	                !conn_body_pending(c) && !(early && inspected) &&
	                res->framing != HTTP1_FRAMING_CLOSE &&
	                !(chunked && c->rq->req.minor == 0);
	/* a chunked body to a 1.0 client is de-chunked: it reads to close */
	rewrite_response_head(o, res, c->rq->insp.active,
	                      chunked && c->rq->req.minor == 1, c->rq->log.rid);
	if (c->rq->insp.active && early) {
		/* no Consent-Result: its counts would claim records that were
		   not all delivered */
		conn_log_decision(c, "upstream-failed", res->status);
	} else if (c->rq->insp.active) {
		inspect_response_headers(&c->rq->insp, o);
		/* shadow: the line proves what would have happened */
		conn_log_decision(
		    c, c->rq->insp.shadow ? "shadow" : "forwarded",
		    c->rq->insp.shadow ? c->rq->insp.would : res->status);
	}
	if (!c->keep_alive)
		ADD_LIT(o, "Connection: close\r\n\r\n");
	else if (c->rq->req.minor == 0)
		ADD_LIT(o, "Connection: keep-alive\r\n\r\n");
	else
		ADD_LIT(o, "\r\n");
	c->rq->log.bytes_out += evbuffer_get_length(o) - mark;
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
	write_response_head(c, res);
	transport_release(&c->t);
}

static void
on_up_body(void *arg, struct evbuffer *src, size_t n)
{
	struct conn *c = arg;

	transport_hold(&c->t);
	if (c->rq != NULL)
		c->rq->log.bytes_out += n;
	evbuffer_remove_buffer(src, c->t.out, n);
	if (transport_flush(&c->t) < 0)
		conn_close(c);
	else if (evbuffer_get_length(c->t.out) > CG_CLIENT_OUT_HIGH && c->up &&
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
	if (c->rq != NULL && c->rq->log.up0.tv_sec != 0) {
		struct timespec now;

		clock_gettime(CLOCK_MONOTONIC, &now);
		c->rq->log.up_ns =
		    (int64_t)(now.tv_sec - c->rq->log.up0.tv_sec) * 1000000000 +
		    (now.tv_nsec - c->rq->log.up0.tv_nsec);
	}
	if (result == 0) {
		conn_end_request(c);
		c->state = c->keep_alive ? CS_HEAD : CS_CLOSING;
	} else if (!c->response_started && result > 0) {
		conn_reply_problem(
		    c, result,
		    result == 504 ? "the upstream did not answer in time"
		                  : "the upstream could not be reached or sent "
		                    "a broken response",
		    NULL);
	} else {
		/* the response broke after it started: the client must see it
		   end early, never a truncated response presented as complete
		 */
		log_error("conn %llu: upstream response broke; closing",
		          (unsigned long long)c->id);
		conn_end_request(c);
		c->state = CS_CLOSING;
	}
	conn_step(c);
	conn_settle(c);
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
	const struct rewrite_client from = {c->peer, c->tls, c->client,
	                                    c->rq->log.rid};

	clock_gettime(CLOCK_MONOTONIC, &c->rq->log.up0);

	rewrite_request_head(h, &c->rq->req, &c->rq->insp, &from,
	                     c->w->cfg->upstream_hostport, body_len, streaming);
}

/* upstream_send found no connection: out of descriptors is ours (503,
   retry later), anything else the upstream's (502). */
static void
no_upstream(struct conn *c, int err, bool streaming)
{
	bool fds = err == EMFILE || err == ENFILE;
	int status = fds ? 503 : 502;
	const char *detail =
	    fds ? "the proxy is out of descriptors; retry later"
	        : "the upstream could not be reached";

	if (fds)
		log_error("conn %llu: 503: no descriptor for an upstream "
		          "connection",
		          (unsigned long long)c->id);
	if (streaming)
		conn_fail(c, status, detail, NULL);
	else
		conn_reply_problem(c, status, detail, NULL);
}

/*
 * Shadow mode: decide a copy of the body (a reference to the same bytes:
 * the verdict inflates and rebuilds the copy, never the body), and keep
 * only what would have happened; the body goes upstream as it came.
 */
static void
shadow_decide(struct conn *c)
{
	struct inspect_result *insp = &c->rq->insp;
	struct evbuffer *copy;

	if (insp->would == 0 && !insp->decided) {
		copy = evbuffer_new();
		if (copy == NULL ||
		    evbuffer_add_buffer_reference(copy, c->rq->body) != 0) {
			insp->would = 500;
		} else {
			int64_t t = conn_request_now();
			int status =
			    inspect_run(insp, c->snap, c->route, &c->rq->req,
			                copy, c->w->cfg->max_body_bytes);

			c->rq->log.decide_ns += conn_request_now() - t;
			if (status != 0)
				insp->would = status;
		}
		if (copy)
			evbuffer_free(copy);
		insp->inflated =
		    false; /* Content-Encoding stays: the body does */
	}
	if (insp->would == 0)
		insp->would = inspect_all_dropped(insp) ? 204 : 200;
}

void
relay_forward(struct conn *c)
{
	struct evbuffer *h, *body = c->rq->body;
	size_t body_len;
	int err;

	if (route_action(c->route) == POLICY_ACTION_INSPECT &&
	    c->rq->insp.shadow) {
		shadow_decide(c);
	} else if (route_action(c->route) == POLICY_ACTION_INSPECT) {
		if (c->rq->insp.streaming) {
			body = c->rq->kept; /* decided line by line already */
		} else if (!c->rq->insp.decided) {
			int64_t t = conn_request_now();
			int status = inspect_run(
			    &c->rq->insp, c->snap, c->route, &c->rq->req,
			    c->rq->body, c->w->cfg->max_body_bytes);

			c->rq->log.decide_ns += conn_request_now() - t;
			if (status != 0) {
				conn_reply_problem(c, status, c->rq->insp.error,
				                   c->rq->insp.error_json);
				return;
			}
		}
		if (inspect_all_dropped(&c->rq->insp)) {
			conn_reply_all_dropped(c);
			return;
		}
	}
	h = evbuffer_new();
	body_len = evbuffer_get_length(body);
	build_upstream_head(c, h, body_len, false);
	c->state = CS_UPSTREAM;
	c->up = upstream_send(c->w, h, body, exchange_flags(c, body_len),
	                      &conn_upstream_ops, c);
	err = errno;
	evbuffer_free(h);
	if (c->up == NULL)
		no_upstream(c, err, false);
}

/* Send the kept records so far as one chunk of the streamed request. */
static void
stream_chunk(struct conn *c)
{
	struct evbuffer *chunk;
	size_t n = evbuffer_get_length(c->rq->kept);

	if (n == 0 || c->up == NULL || (chunk = evbuffer_new()) == NULL)
		return;
	evbuffer_add_printf(chunk, "%zx\r\n", n);
	evbuffer_add_buffer(chunk, c->rq->kept);
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
void
relay_stream(struct conn *c, bool done)
{
	int64_t t = conn_request_now();
	int status =
	    inspect_feed(&c->rq->insp, c->snap, c->route, c->rq->body,
	                 c->rq->kept, done, CG_DEFAULT_MAX_RECORD_BYTES);

	c->rq->log.decide_ns += conn_request_now() - t;
	if (status != 0) {
		conn_fail(c, status, c->rq->insp.error, c->rq->insp.error_json);
		return;
	}
	if (!c->stream_started && !done &&
	    evbuffer_get_length(c->rq->kept) >= CG_STREAM_START) {
		struct evbuffer *h = evbuffer_new();
		int err;

		build_upstream_head(c, h, 0, true);
		c->up = upstream_send(c->w, h, NULL, exchange_flags(c, 1),
		                      &conn_upstream_ops, c);
		err = errno;
		evbuffer_free(h);
		if (c->up == NULL) {
			no_upstream(c, err, true);
			return;
		}
		c->stream_started = true;
	}
	if (!c->stream_started) {
		if (done) {
			conn_clear_timer(c);
			relay_forward(c);
		}
		return;
	}
	stream_chunk(c);
	if (done && c->up) {
		struct evbuffer *end = evbuffer_new();

		conn_clear_timer(c);
		evbuffer_add_printf(
		    end, "0\r\nConsent-Result: kept=%u, dropped=%u\r\n\r\n",
		    c->rq->insp.kept, c->rq->insp.dropped);
		upstream_write(c->up, end, true);
		evbuffer_free(end);
		c->state = CS_UPSTREAM;
	}
}
