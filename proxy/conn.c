/*
 * conn.c: one client connection: read a request head, check it strictly,
 * route it, read the body, forward it, relay the response, and go again
 * (keep-alive, pipelining: one request at a time, answered in order).
 *
 * The client side is a struct transport (transport.c): socket, buffers,
 * event, timer and the callback guard. One teardown path (conn_close); the
 * connection is freed by conn_free once no callback of its own is on the
 * stack. Once a request is complete (or streams), relay.c takes it
 * upstream and relays the answer; the upstream request head is written by
 * rewrite.c.
 */
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conn_internal.h"
#include "accesslog_internal.h"
#include "declog_internal.h"
#include "inspect_internal.h"
#include "reqid_internal.h"
#include "tls_internal.h"

static void
set_timer(struct conn *c, enum timer_kind kind, unsigned ms)
{
	c->timer_kind = kind;
	transport_set_timer(&c->t, ms);
}

void
conn_clear_timer(struct conn *c)
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

static int64_t
ns_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64_t)(now.tv_sec - t0->tv_sec) * 1000000000 +
	       (now.tv_nsec - t0->tv_nsec);
}

/* The access log's line of the request ending now (once: rid cleared),
   total_ns since its head was read. */
static void
access_line(struct conn *c, int64_t total_ns)
{
	struct conn_request_log *l = &c->rq->log;
	const struct http1_request *r = &c->rq->req;
	struct accesslog_entry e = {l->rid,
	                            c->client ? c->client : c->peer,
	                            r->method,
	                            r->path,
	                            c->route ? route_name(c->route) : NULL,
	                            l->status,
	                            r->head_len,
	                            l->bytes_out,
	                            l->up0.tv_sec || l->up0.tv_nsec ? l->up_ns
	                                                            : -1,
	                            total_ns};

	if (l->t0.tv_sec == 0) /* no head was read: no method, no path */
		e.method = e.path = (struct cg_slice){"", 0}, e.bytes_in = 0,
		e.total_ns = 0;
	else if (r->framing == HTTP1_FRAMING_CHUNKED)
		e.bytes_in += c->rq->chunked.total;
	else if (r->framing == HTTP1_FRAMING_LENGTH)
		e.bytes_in += r->content_length - c->rq->body_left;
	if (c->w->accesslog == NULL)
		c->w->accesslog = evbuffer_new();
	if (c->w->accesslog != NULL)
		accesslog_write(c->w->accesslog, &e);
}

/* The request id and the clock of a request whose head was just read. */
static void
request_begin(struct conn *c)
{
	const struct http1_request *r = &c->rq->req;
	struct cg_slice xrid = {NULL, 0}, tp = {NULL, 0};

	for (unsigned i = 0; i < r->nheaders; i++) {
		if (xrid.ptr == NULL &&
		    cg_slice_ieq(r->headers[i].name, "X-Request-Id"))
			xrid = r->headers[i].value;
		else if (tp.ptr == NULL &&
		         cg_slice_ieq(r->headers[i].name, "traceparent"))
			tp = r->headers[i].value;
	}
	memset(&c->rq->log, 0, sizeof(c->rq->log));
	reqid_pick(xrid, tp, c->rq->log.rid);
	clock_gettime(CLOCK_MONOTONIC, &c->rq->log.t0);
}

/* A response of ours or the upstream's begins: its status, and the id
   of a request whose head could not be read. */
void
conn_responding(struct conn *c, int status)
{
	if (c->rq == NULL)
		return;
	c->rq->log.status = status;
	if (c->rq->log.rid[0] == '\0')
		reqid_make(c->rq->log.rid);
}

void
conn_end_request(struct conn *c)
{
	if (c->rq && c->rq->log.rid[0] != '\0') {
		const struct conn_request_log *l = &c->rq->log;
		/* one reading for the access log and the metrics */
		int64_t total = l->t0.tv_sec ? ns_since(&l->t0) : -1;

		metrics_request_end(
		    c->w, c->route ? route_name(c->route) : NULL, l->status,
		    total, l->up0.tv_sec || l->up0.tv_nsec ? l->up_ns : -1);
		if (accesslog_enabled())
			access_line(c, total);
		memset(&c->rq->log, 0, sizeof(c->rq->log));
	}
	if (c->up) {
		upstream_abort(c->up);
		c->up = NULL;
	}
	if (c->snap) {
		snapshot_unref(c->snap);
		c->snap = NULL;
	}
	if (c->rq &&
	    (c->rq->insp.active || c->rq->insp.held || c->rq->insp.trail))
		inspect_result_reset(&c->rq->insp);
	c->route = NULL;
	c->response_started = false;
	c->upstream_paused = false;
	c->stream_started = false;
	c->body_complete = false;
	if (c->rq) {
		c->rq->body_left = 0;
		evbuffer_drain(c->rq->body, evbuffer_get_length(c->rq->body));
		evbuffer_drain(c->rq->kept, evbuffer_get_length(c->rq->kept));
	}
}

/* The transport's on_free: closed, and no callback of ours on the stack. */
static void
conn_free(void *arg)
{
	struct conn *c = arg;
	struct worker *w = c->w;

	conn_end_request(c);
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	transport_reset(&c->t); /* closes the socket */
	free(c->client_ids);
	rq_release(c);
	worker_fd_closed(w);
	free(c);
	atomic_fetch_sub_explicit(&w->metrics.active_conns, 1,
	                          memory_order_relaxed);
	worker_conn_closed(w);
}

/* The one way a connection ends; conn_free follows when it is safe. */
void
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
bool
conn_body_pending(const struct conn *c)
{
	return c->rq && (c->state == CS_BODY || c->state == CS_HEAD) &&
	       !c->body_complete && c->rq->req.framing != HTTP1_FRAMING_NONE;
}

/* The proof of an inspected request's decisions, once its outcome is known. */
void
conn_log_decision(struct conn *c, const char *outcome, int status)
{
	if (c->rq && c->rq->insp.active && c->route && c->snap) {
		enum metric m =
		    strcmp(outcome, "forwarded") == 0 ? METRIC_OUT_FORWARDED
		    : strcmp(outcome, "all-dropped") == 0
		        ? METRIC_OUT_ALL_DROPPED
		    : strcmp(outcome, "blocked") == 0 ? METRIC_OUT_BLOCKED
		    : strcmp(outcome, "refused") == 0 ? METRIC_OUT_REFUSED
		    : strcmp(outcome, "shadow") == 0
		        ? METRIC_OUT_SHADOW
		        : METRIC_OUT_UPSTREAM_FAILED;

		metrics_add(c->w, m, 1);
		metrics_add(c->w, METRIC_RECORDS_KEPT, c->rq->insp.kept);
		metrics_add(c->w, METRIC_RECORDS_DROPPED, c->rq->insp.dropped);
		metrics_decided(c->w, route_name(c->route), &c->rq->insp.rules,
		                c->rq->log.decide_ns);
		declog_write(c->w, c->id, c->rq->log.rid,
		             c->client ? c->client : c->peer, c->route, c->snap,
		             &c->rq->insp, outcome, status);
		c->rq->insp.active = false; /* one line per request */
	}
}

/* Our problem response: the request id among its header lines. */
static void
problem(struct conn *c, int status, const char *detail, bool close,
        const char *extra, const char *headers)
{
	char lines[REQID_MAX + 512];
	size_t mark = evbuffer_get_length(c->t.out);

	conn_responding(c, status);
	if (c->rq == NULL) {
		respond_problem(c->t.out, status, detail, close, extra,
		                headers);
		return;
	}
	snprintf(lines, sizeof(lines), "X-Request-Id: %s\r\n%s", c->rq->log.rid,
	         headers ? headers : "");
	respond_problem(c->t.out, status, detail, close, extra, lines);
	c->rq->log.bytes_out += evbuffer_get_length(c->t.out) - mark;
}

/* The decision-log outcome of a refusal. */
static const char *
refusal_outcome(int status)
{
	return status == 403   ? "blocked"
	       : status >= 502 ? "upstream-failed"
	                       : "refused";
}

/* conn_fail with header lines among the problem's fields. */
static void
fail_with(struct conn *c, int status, const char *detail, const char *extra,
          const char *headers)
{
	log_msg("conn %llu: %d %s", (unsigned long long)c->id, status, detail);
	conn_log_decision(c, refusal_outcome(status), status);
	metrics_response(c->w, status);
	problem(c, status, detail, true, extra, headers);
	conn_end_request(c);
	c->state = CS_CLOSING;
	conn_clear_timer(c);
}

/* Answer with a problem and close after it is flushed. */
void
conn_fail(struct conn *c, int status, const char *detail, const char *extra)
{
	fail_with(c, status, detail, extra, NULL);
}

/* conn_reply_problem with header lines among the problem's fields. */
static void
reply_with(struct conn *c, int status, const char *detail, const char *extra,
           const char *headers)
{
	/* a body still unread cannot be skipped reliably */
	bool close =
	    !c->rq->req.keep_alive || c->w->draining || conn_body_pending(c);

	conn_log_decision(c, refusal_outcome(status), status);
	metrics_response(c->w, status);
	problem(c, status, detail, close, extra, headers);
	conn_end_request(c);
	c->state = close ? CS_CLOSING : CS_HEAD;
}

/* Reply without closing (the request was read completely). */
void
conn_reply_problem(struct conn *c, int status, const char *detail,
                   const char *extra)
{
	reply_with(c, status, detail, extra, NULL);
}

/*
 * Every record was dropped: nothing goes upstream; the request succeeded.
 * Called before the body was read (header subject), the connection closes.
 */
void
conn_reply_all_dropped(struct conn *c)
{
	c->keep_alive =
	    c->rq->req.keep_alive && !c->w->draining && !conn_body_pending(c);
	size_t mark = evbuffer_get_length(c->t.out);
	char date[32];

	conn_log_decision(c, "all-dropped", 204);
	metrics_response(c->w, 204);
	conn_responding(c, 204);
	respond_date(date); /* RFC 9110 6.6.1: an origin's answers have one */
	evbuffer_add_printf(c->t.out,
	                    "HTTP/1.1 204 No Content\r\nDate: %s\r\n"
	                    "X-Request-Id: %s\r\n",
	                    date, c->rq->log.rid);
	inspect_response_headers(&c->rq->insp, c->t.out);
	evbuffer_add_printf(c->t.out, "%s\r\n",
	                    c->keep_alive ? "" : "Connection: close\r\n");
	c->rq->log.bytes_out += evbuffer_get_length(c->t.out) - mark;
	conn_end_request(c);
	c->state = c->keep_alive ? CS_HEAD : CS_CLOSING;
}

/* ---- reading the request ---- */

/* 413, saying the limit (max_body_bytes) in the detail and as "limit". */
static void
body_too_large(struct conn *c)
{
	char detail[128], extra[48];
	unsigned long long max = c->w->cfg->max_body_bytes;

	snprintf(detail, sizeof(detail),
	         "the request body is larger than the limit of %llu bytes",
	         max);
	snprintf(extra, sizeof(extra), "\"limit\":%llu", max);
	conn_fail(c, 413, detail, extra);
}

/*
 * A route that names its clients takes only a client whose verified
 * certificate carries one of those identities; the others get 403 and
 * nothing is forwarded. False when the request was answered.
 */
static bool
client_may_use(struct conn *c)
{
	const struct http1_request *r = &c->rq->req;
	const char *matched = NULL;
	char detail[CG_MAX_DETAIL];

	if (route_client_allowed(c->route, c->client_ids, &matched)) {
		/* this request's: the identity its route matched, else the
		   certificate's first */
		c->client = matched ? matched : c->client_ids;
		return true;
	}
	route_client_refusal(c->route, c->client_ids, detail, sizeof(detail));
	log_msg("conn %llu: 403 %s", (unsigned long long)c->id, detail);
	if (r->framing == HTTP1_FRAMING_NONE)
		conn_reply_problem(c, 403, detail, NULL);
	else
		conn_fail(c, 403, detail, NULL);
	return false;
}

/* The TLS handshake is over (or failed): read the client's identities,
   then the request head has its own deadline. */
static void
handshake_done(struct conn *c)
{
	char ids[TLS_IDENTITIES_MAX];
	size_t len = 0;

	c->handshaking = false;
	if (c->t.eof)
		return; /* failed: tls.c counted and logged it */
	if (tls_peer_identities(&c->t, ids, sizeof(ids)) > 0) {
		for (const char *id = ids; *id; id += strlen(id) + 1)
			len = (size_t)(id - ids) + strlen(id) + 1;
		c->client_ids = malloc(len + 1);
		if (c->client_ids == NULL) {
			conn_close(c);
			return;
		}
		memcpy(c->client_ids, ids, len + 1);
		c->client = c->client_ids;
	}
	if (c->timer_kind == TIMER_HANDSHAKE)
		set_timer(c, TIMER_HEAD, c->w->cfg->head_timeout_ms);
}

static void
start_request(struct conn *c, const char *buf)
{
	const struct http1_request *r = &c->rq->req;

	/* keep the head: the slices must outlive the input buffer */
	if (conn_request_keep_head(c->rq, buf) != 0) {
		conn_fail(c, 500, "out of memory", NULL);
		return;
	}
	evbuffer_drain(c->t.in, r->head_len);
	conn_clear_timer(c);
	request_begin(c);

	metrics_add(c->w, METRIC_REQUESTS, 1);
	c->snap = worker_snapshot(c->w);
	struct route_refusal why;
	c->route =
	    route_match(snapshot_policy(c->snap), r->method, r->path, &why);
	if (c->route == NULL) {
		char detail[CG_MAX_DETAIL];

		char allow[128] = "", methods[96];

		route_refusal_detail(&why, detail, sizeof(detail));
		/* 405: the methods the routes on this path take */
		if (why.status == 405 && why.route != NULL) {
			route_allow(snapshot_policy(c->snap), r->path, methods,
			            sizeof(methods));
			snprintf(allow, sizeof(allow), "Allow: %s\r\n",
			         methods[0] ? methods
			                    : route_method(why.route));
		}
		if (r->framing == HTTP1_FRAMING_NONE) {
			reply_with(c, why.status, detail, NULL, allow);
		} else {
			/* the unread body would be taken for the next request
			 */
			fail_with(c, why.status, detail, NULL, allow);
		}
		return;
	}
	if (!client_may_use(c))
		return;
	if (route_action(c->route) == POLICY_ACTION_INSPECT &&
	    !declog_admits()) {
		/* the proof is a legal duty: no decision it cannot record */
		metrics_add(c->w, METRIC_DECLOG_REFUSED, 1);
		if (r->framing == HTTP1_FRAMING_NONE)
			conn_reply_problem(c, 503, DECLOG_FULL_DETAIL, NULL);
		else
			conn_fail(c, 503, DECLOG_FULL_DETAIL, NULL);
		return;
	}
	if (route_action(c->route) == POLICY_ACTION_INSPECT) {
		int64_t t = conn_request_now();
		int status = inspect_begin(&c->rq->insp, c->snap, c->route, r,
		                           c->w->cfg->max_staleness_s);

		c->rq->log.decide_ns += conn_request_now() - t;

		if (status != 0 && c->rq->insp.shadow) {
			c->rq->insp.would = status; /* forwarded all the same */
		} else if (status != 0) {
			if (r->framing == HTTP1_FRAMING_NONE)
				conn_reply_problem(c, status, c->rq->insp.error,
				                   c->rq->insp.error_json);
			else
				conn_fail(c, status, c->rq->insp.error,
				          c->rq->insp.error_json);
			return;
		}
		if (c->rq->insp.decided && inspect_all_dropped(&c->rq->insp)) {
			if (c->rq->insp.shadow) {
				c->rq->insp.would = 204;
			} else {
				conn_reply_all_dropped(
				    c); /* the person in the header is denied */
				return;
			}
		}
	}
	if (r->framing == HTTP1_FRAMING_LENGTH &&
	    r->content_length > c->w->cfg->max_body_bytes) {
		body_too_large(c);
		return;
	}
	if (r->expect_continue && r->framing != HTTP1_FRAMING_NONE &&
	    evbuffer_get_length(c->t.in) == 0)
		ADD_LIT(c->t.out, "HTTP/1.1 100 Continue\r\n\r\n");
	if (r->framing == HTTP1_FRAMING_NONE) {
		relay_forward(c);
		return;
	}
	c->rq->body_left = r->content_length;
	http1_chunked_init(&c->rq->chunked);
	c->state = CS_BODY;
	set_timer(c, TIMER_BODY, c->w->cfg->body_timeout_ms);
}

/* Move body bytes from the input; 1 when the body is complete. */
static int
read_body(struct conn *c)
{
	size_t avail = evbuffer_get_length(c->t.in);

	if (c->rq->req.framing == HTTP1_FRAMING_LENGTH) {
		size_t n =
		    avail < c->rq->body_left ? avail : (size_t)c->rq->body_left;

		evbuffer_remove_buffer(c->t.in, c->rq->body, n);
		c->rq->body_left -= n;
		c->body_complete = c->rq->body_left == 0;
		return c->body_complete;
	}
	while (avail > 0 && !c->rq->chunked.done) {
		struct evbuffer_iovec vec;
		struct cg_slice data;
		const char *reason = NULL;
		long k;

		if (evbuffer_peek(c->t.in, -1, NULL, &vec, 1) < 1)
			break;
		k = http1_chunked_feed(&c->rq->chunked, vec.iov_base,
		                       vec.iov_len, &data, &reason);
		if (k < 0) {
			conn_fail(c, 400, reason, NULL);
			return -1;
		}
		if (data.len > 0) {
			if (c->rq->chunked.total > c->w->cfg->max_body_bytes) {
				body_too_large(c);
				return -1;
			}
			evbuffer_add(c->rq->body, data.ptr, data.len);
		}
		evbuffer_drain(c->t.in, (size_t)k);
		avail -= (size_t)k;
		if (k == 0)
			break;
	}
	c->body_complete = c->rq->chunked.done;
	return c->rq->chunked.done;
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
			conn_fail(c, 431,
			          "the request head is larger than the limit",
			          NULL);
			return;
		}
		if (c->timer_kind != TIMER_HEAD)
			set_timer(c, TIMER_HEAD, cfg->head_timeout_ms);
		return;
	}
	if (rc < 0) {
		conn_fail(c, status, reason ? reason : "malformed request",
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

		if (c->state == CS_UPSTREAM && have >= CG_PIPELINE_AHEAD)
			return false;
		if (c->state == CS_BODY && c->up &&
		    upstream_pending(c->up) > CG_UPSTREAM_OUT_HIGH)
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

void
conn_step(struct conn *c)
{
	for (int rounds = 0; !c->t.closed && rounds < 1000; rounds++) {
		enum conn_state before = c->state;
		bool got = conn_read(c);

		if (c->handshaking && !c->t.closed &&
		    !transport_handshaking(&c->t))
			handshake_done(c);
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
				relay_stream(c, done == 1);
				if (c->state == CS_BODY && done == 0 &&
				    c->t.eof) {
					conn_close(c); /* the upstream request
					                  stays incomplete */
					return;
				}
			} else if (done == 1) {
				conn_clear_timer(c);
				relay_forward(c);
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
		case CS_LINGER:
			/* nothing read now is a request */
			evbuffer_drain(c->t.in, evbuffer_get_length(c->t.in));
			if (c->state == CS_LINGER && c->t.eof) {
				conn_close(c);
				return;
			}
			break;
		}
		if (c->t.closed)
			return;
		if (transport_flush(&c->t) < 0) {
			conn_close(c);
			return;
		}
		if (c->upstream_paused && c->up &&
		    evbuffer_get_length(c->t.out) < CG_CLIENT_OUT_LOW) {
			c->upstream_paused = false;
			upstream_resume(c->up);
			if (c->t.closed)
				return;
		}
		if (c->state == CS_CLOSING &&
		    evbuffer_get_length(c->t.out) == 0) {
			/* FIN now, close later: a close with unread bytes
			 * sends a reset, which can destroy the response
			 * before the client read it */
			transport_shutdown(&c->t);
			if (c->t.eof) {
				conn_close(c);
				return;
			}
			if (c->up) {
				upstream_abort(c->up);
				c->up = NULL;
			}
			c->state = CS_LINGER;
			set_timer(c, TIMER_LINGER, CG_LINGER_TIMEOUT_MS);
		}
		/* go round again only while something moved */
		if (c->state == before && !got)
			break;
		if (c->state == before && c->state == CS_UPSTREAM)
			break;
	}
}

void
conn_settle(struct conn *c)
{
	/* only the outermost handler: an inner conn_step (an upstream
	   callback inside ours) returns into code that still uses them */
	if (c->t.busy == 1 && !c->t.closed && c->state == CS_HEAD &&
	    c->timer_kind == TIMER_IDLE)
		transport_idle(&c->t);
}

static void
on_conn_ready(void *arg)
{
	conn_step(arg);
	conn_settle(arg);
}

static void
on_conn_timeout(void *arg)
{
	struct conn *c = arg;
	enum timer_kind kind = c->timer_kind;

	c->timer_kind = TIMER_NONE;
	if (kind == TIMER_HEAD && c->state == CS_HEAD) {
		conn_fail(c, 408, "the request head did not arrive in time",
		          NULL);
		conn_step(c);
	} else if (kind == TIMER_BODY && c->state == CS_BODY) {
		conn_fail(c, 408, "the request body stalled", NULL);
		conn_step(c);
	} else if (kind == TIMER_HANDSHAKE) {
		tls_server_timed_out(c->w->tls, c->peer);
		conn_close(c); /* no TLS yet: nothing can be answered */
	} else if (kind == TIMER_LINGER) {
		conn_close(c); /* the client never closed: enough */
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
	/* no buffers until it speaks: they would sit between this
	   connection's struct and the next one's, holes no trim gives back */
	rc = transport_init(&c->t, w->timers, &conn_handlers, c, false);
	if (w->tls != NULL) {
		c->tls = c->handshaking = true;
		rc |= tls_server_attach(w->tls, &c->t, fd, c->peer);
	} else {
		rc |= transport_attach(&c->t, fd, &transport_plain);
	}
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	if (rc != 0) {
		conn_close(c);
		return;
	}
	if (c->tls)
		set_timer(c, TIMER_HANDSHAKE, w->cfg->tls_handshake_timeout_ms);
	else
		set_timer(c, TIMER_HEAD, w->cfg->head_timeout_ms);
}

void
conn_drain_all(struct worker *w)
{
	struct conn *c, *next;

	for (c = w->conns; c; c = next) {
		next = c->next;
		/* idle keep-alive connections go now; the others finish */
		if (c->state == CS_HEAD &&
		    (c->t.in == NULL || (evbuffer_get_length(c->t.in) == 0 &&
		                         evbuffer_get_length(c->t.out) == 0)))
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
