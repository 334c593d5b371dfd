/*
 * upstream.c: connections to the upstream: a bounded keep-alive pool per
 * worker, connect and response timeouts, and the relay of one response.
 *
 * A request is written only once it is complete and valid. A pooled
 * connection that turns out dead before any response byte is retried on a
 * fresh connection only when the caller says the request is retryable
 * (idempotent, no body); a request that may have reached the upstream is
 * otherwise never sent twice.
 *
 * A connection goes back to the pool only when its request was written
 * completely and its response read completely (up_may_pool, the one place
 * that decides). An upstream may answer before it has our whole request;
 * the response is relayed while the rest of the request is still written,
 * but such a connection is closed when the response ends: the next request
 * on it would land inside the unfinished body (request smuggling).
 *
 * The socket side is a struct transport (transport.c): buffers, event,
 * timer, the callback guard and the one teardown path (up_close, then
 * up_free from the transport once no callback of ours is on the stack).
 */
#include <errno.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proxy_internal.h"
#include "tls_internal.h"
#include "transport_internal.h"

enum up_state {
	UP_IDLE,       /* in the pool */
	UP_CONNECTING, /* waiting for connect() */
	UP_WAITING,    /* request sent (or sending), no response head yet */
	UP_BODY,       /* relaying the response body */
	UP_CLOSED,
};

struct upstream_conn {
	struct transport t; /* the upstream side: t.in, t.out, flags, guard */
	struct worker *w;
	struct upstream_conn *next; /* pool list */
	enum up_state state;
	bool reused, paused;
	/* the exchange */
	const struct upstream_ops *ops;
	void *arg;
	bool head_request, retryable, dechunk, got_bytes, retried;
	bool req_queued;   /* the whole request is in out (or was written) */
	bool write_failed; /* a write failed: what is left is never sent */
	struct evbuffer *retry_copy; /* the request, for one retry */
	enum http1_framing framing;
	uint64_t left;
	struct http1_chunked chunked;
	bool reusable;
};

static const struct transport_handlers up_handlers;

/* The transport's on_free: closed, and no callback of ours on the stack. */
static void
up_free(void *arg)
{
	struct upstream_conn *u = arg;

	if (u->t.fd >= 0)
		worker_fd_closed(u->w);
	transport_reset(&u->t); /* closes the socket */
	if (u->retry_copy)
		evbuffer_free(u->retry_copy);
	free(u);
}

/* The single close path: safe to call from inside our own callbacks. */
static void
up_close(struct upstream_conn *u)
{
	if (u->state == UP_CLOSED)
		return;
	u->state = UP_CLOSED;
	u->ops = NULL;
	transport_close(&u->t);
}

static void
pool_remove(struct worker *w, struct upstream_conn *u)
{
	struct upstream_conn **pp;

	for (pp = &w->idle; *pp; pp = &(*pp)->next)
		if (*pp == u) {
			*pp = u->next;
			w->nidle--;
			return;
		}
}

/* Open a socket and start connecting; the timer bounds the connect. */
static int
up_connect(struct upstream_conn *u)
{
	const struct config *cfg = u->w->cfg;
	int one = 1;
	int fd = socket(cfg->upstream_addr.ss_family,
	                SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	worker_fd_opened(u->w);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	u->state = UP_CONNECTING;
	metrics_add(u->w, METRIC_UPSTREAM_CONNECTS, 1);
	if (connect(fd, (const struct sockaddr *)&cfg->upstream_addr,
	            cfg->upstream_addrlen) != 0 &&
	    errno != EINPROGRESS) {
		close(fd);
		worker_fd_closed(u->w);
		return -1;
	}
	/* https://: the handshake runs with the first write (tls.c) */
	if (u->w->up_tls != NULL
	        ? tls_client_attach(u->w->up_tls, &u->t, fd) != 0
	        : transport_attach(&u->t, fd, &transport_plain) != 0)
		return -1;
	transport_set_timer(&u->t, cfg->connect_timeout_ms);
	return 0;
}

static struct upstream_conn *
up_new(struct worker *w)
{
	struct upstream_conn *u = calloc(1, sizeof(*u));

	if (u == NULL)
		return NULL;
	u->w = w;
	if (transport_init(&u->t, w->timers, &up_handlers, u, true) != 0 ||
	    up_connect(u) != 0) {
		int err = errno; /* EMFILE: out of descriptors */

		u->state = UP_CLOSED;
		up_free(u);
		errno = err;
		return NULL;
	}
	return u;
}

/* Every byte of the request went to the kernel: the upstream gets it all
   unless the connection breaks. */
static bool
up_request_written(const struct upstream_conn *u)
{
	return u->req_queued && !u->write_failed &&
	       evbuffer_get_length(u->t.out) == 0;
}

/*
 * May this connection carry another request? Only if the exchange ended
 * cleanly at both ends: the response was read to its end with nothing
 * after it and allows keep-alive, and our request was written completely.
 * A response that ended before our request did (an early answer) leaves
 * the upstream inside our body; whatever we wrote next would be read as
 * part of it.
 */
static bool
up_may_pool(const struct upstream_conn *u, int result)
{
	const struct worker *w = u->w;

	return result == 0 && u->reusable && up_request_written(u) &&
	       evbuffer_get_length(u->t.in) == 0 && !w->draining &&
	       w->nidle < w->cfg->pool_size;
}

/* End the exchange: hand the connection back to the pool or close it. */
static void
up_finish(struct upstream_conn *u, int result)
{
	const struct upstream_ops *ops = u->ops;
	void *arg = u->arg;
	struct worker *w = u->w;

	u->ops = NULL;
	transport_clear_timer(&u->t);
	if (result != 0)
		metrics_add(w, METRIC_UPSTREAM_ERRORS, 1);
	if (u->retry_copy) {
		evbuffer_free(u->retry_copy);
		u->retry_copy = NULL;
	}
	if (result == 0 && !up_request_written(u))
		log_warn("upstream %s: answered before the whole request was "
		         "written; connection closed",
		         w->cfg->upstream_hostport);
	if (up_may_pool(u, result)) {
		u->state = UP_IDLE;
		u->reused = true;
		u->paused = false;
		u->next = w->idle;
		w->idle = u;
		w->nidle++;
	} else {
		up_close(u);
	}
	if (ops)
		ops->on_done(arg, result);
}

/* A dead connection before any response byte: retry once, or fail. */
static void
up_fail(struct upstream_conn *u, int status)
{
	if (u->state == UP_BODY || u->got_bytes) {
		if (u->framing == HTTP1_FRAMING_CLOSE && u->state == UP_BODY) {
			u->reusable = false;
			up_finish(u,
			          0); /* close-delimited: EOF ends the body */
			return;
		}
		u->reusable = false;
		/* a head cut short relayed nothing: the client gets the 502 */
		up_finish(u, u->state == UP_BODY ? -1 : 502);
		return;
	}
	if (u->reused && u->retryable && !u->retried && u->retry_copy &&
	    status == 502) {
		/* The pooled connection had died: same exchange, fresh socket.
		 */
		worker_fd_closed(u->w);
		transport_detach(&u->t);
		evbuffer_add_buffer(u->t.out, u->retry_copy);
		u->write_failed = false;
		u->retried = true;
		u->reused = false;
		if (up_connect(u) == 0)
			return;
	}
	u->reusable = false;
	up_finish(u, status);
}

static void
relay_body(struct upstream_conn *u)
{
	size_t avail;

	while (u->state == UP_BODY && u->ops && !u->paused &&
	       (avail = evbuffer_get_length(u->t.in)) > 0) {
		if (u->framing == HTTP1_FRAMING_LENGTH) {
			size_t n = avail < u->left ? avail : (size_t)u->left;

			u->ops->on_body(u->arg, u->t.in, n);
			u->left -= n;
			if (u->left == 0) {
				if (evbuffer_get_length(u->t.in) > 0)
					u->reusable =
					    false; /* bytes after the body */
				up_finish(u, 0);
				return;
			}
		} else if (u->framing == HTTP1_FRAMING_CHUNKED) {
			struct evbuffer_iovec vec[8];
			int nv = evbuffer_peek(u->t.in, -1, NULL, vec, 8);
			size_t consumed = 0;
			const char *reason = NULL;
			struct evbuffer *payload =
			    u->dechunk ? evbuffer_new() : NULL;

			for (int i = 0; i < nv && !u->chunked.done; i++) {
				const char *p = vec[i].iov_base;
				size_t len = vec[i].iov_len;

				while (len > 0 && !u->chunked.done) {
					struct cg_slice data;
					long k = http1_chunked_feed(
					    &u->chunked, p, len, &data,
					    &reason);

					if (k < 0) {
						if (payload)
							evbuffer_free(payload);
						goto broken;
					}
					if (k == 0)
						break;
					if (payload && data.len > 0)
						evbuffer_add(payload, data.ptr,
						             data.len);
					p += k;
					len -= (size_t)k;
					consumed += (size_t)k;
				}
			}
			if (payload) {
				/* HTTP/1.0 client: relay the payload only */
				evbuffer_drain(u->t.in, consumed);
				if (evbuffer_get_length(payload) > 0)
					u->ops->on_body(
					    u->arg, payload,
					    evbuffer_get_length(payload));
				evbuffer_free(payload);
			} else if (consumed > 0) {
				u->ops->on_body(u->arg, u->t.in, consumed);
			}
			if (consumed == 0 || u->ops == NULL)
				return;
			if (u->chunked.done) {
				if (evbuffer_get_length(u->t.in) > 0)
					u->reusable = false;
				up_finish(u, 0);
				return;
			}
			continue;
		broken:
			log_error("upstream: bad chunked response: %s", reason);
			u->reusable = false;
			up_finish(u, -1);
			return;
		} else { /* CLOSE */
			u->ops->on_body(u->arg, u->t.in, avail);
		}
	}
}

static void
parse_head(struct upstream_conn *u)
{
	for (;;) {
		size_t len = evbuffer_get_length(u->t.in);
		size_t lim = CG_DEFAULT_MAX_RESPONSE_HEADER_BYTES;
		struct http1_response res;
		const char *reason = NULL;
		unsigned char *buf;
		int rc;

		if (len == 0)
			return;
		u->got_bytes = true;
		buf = evbuffer_pullup(u->t.in,
		                      (ev_ssize_t)(len < lim ? len : lim));
		rc = http1_parse_response((const char *)buf,
		                          len < lim ? len : lim,
		                          u->head_request, &res, &reason);
		if (rc == 0) {
			if (len >= lim) {
				reason = "response head too large";
				rc = -1;
			} else {
				return;
			}
		}
		if (rc < 0) {
			log_error("upstream %s: %s",
			          u->w->cfg->upstream_hostport,
			          reason ? reason : "bad response");
			u->reusable = false;
			u->got_bytes = false; /* nothing relayed: report 502 */
			up_finish(u, 502);
			return;
		}
		if (res.status >= 100 && res.status < 200) {
			/* interim responses are not relayed; 101 we never asked
			 * for */
			if (res.status == 101) {
				u->reusable = false;
				up_finish(u, 502);
				return;
			}
			evbuffer_drain(u->t.in, res.head_len);
			continue;
		}
		u->framing = res.framing;
		u->left = res.content_length;
		u->reusable =
		    res.keep_alive && res.framing != HTTP1_FRAMING_CLOSE;
		http1_chunked_init(&u->chunked);
		u->state = UP_BODY;
		u->ops->on_head(u->arg, &res);
		if (u->ops == NULL || u->state != UP_BODY)
			return;
		evbuffer_drain(u->t.in, res.head_len);
		if (u->framing == HTTP1_FRAMING_NONE ||
		    (u->framing == HTTP1_FRAMING_LENGTH && u->left == 0)) {
			up_finish(u, 0);
			return;
		}
		relay_body(u);
		return;
	}
}

/*
 * Write what is queued. A failed write is not the end of the exchange: an
 * upstream that refuses a body often answers (413, 400) and then resets
 * the connection, and that answer is already in our receive queue. So the
 * rest of the request is dropped and the read side decides: the response,
 * or EOF and a 502 (or a retry).
 */
static void
up_write(struct upstream_conn *u)
{
	if (u->write_failed) {
		evbuffer_drain(u->t.out, evbuffer_get_length(u->t.out));
		return;
	}
	if (transport_flush(&u->t) < 0) {
		u->write_failed = true;
		evbuffer_drain(u->t.out, evbuffer_get_length(u->t.out));
		u->t.can_read = true;
	}
}

/* Read a batch, relay it, and go on while the socket has more. */
static void
up_read(struct upstream_conn *u)
{
	size_t r;

	for (;;) {
		while (u->state != UP_CLOSED && u->t.can_read && !u->paused &&
		       evbuffer_get_length(u->t.in) < CG_UPSTREAM_IN_HIGH) {
			/* the transport tells whether more is there (can_read)
			 */
			r = transport_read(&u->t, TRANSPORT_READ_MAX);
			if (r == 0 && u->t.eof) {
				if (u->state == UP_IDLE) {
					pool_remove(u->w, u);
					up_close(u);
					return;
				}
				/* process what arrived before the close first
				 */
				if (u->state == UP_WAITING)
					parse_head(u);
				if (u->state == UP_BODY)
					relay_body(u);
				if (u->state == UP_WAITING ||
				    u->state == UP_BODY)
					up_fail(u, 502);
				return;
			}
			if (r > 0 && u->state == UP_IDLE) {
				/* an idle upstream must not talk: drop it */
				pool_remove(u->w, u);
				up_close(u);
				return;
			}
			if (r > 0 && u->ops)
				transport_set_timer(
				    &u->t, u->w->cfg->response_timeout_ms);
		}
		if (u->state == UP_WAITING)
			parse_head(u);
		else if (u->state == UP_BODY)
			relay_body(u);
		if (u->state != UP_WAITING && u->state != UP_BODY)
			return;
		if (!u->t.can_read || u->paused ||
		    evbuffer_get_length(u->t.in) >= CG_UPSTREAM_IN_HIGH)
			return;
	}
}

/*
 * Read before writing: a response already here must be parsed before more
 * of the request goes out, or an answer given early would pass for one
 * given after the whole request (upstream_request_written).
 */
static void
up_step(struct upstream_conn *u)
{
	if (u->state == UP_CONNECTING)
		return;
	up_read(u);
	if ((u->state != UP_WAITING && u->state != UP_BODY) ||
	    evbuffer_get_length(u->t.out) == 0)
		return;
	up_write(u);
	if (u->write_failed) {
		up_read(u); /* the answer, or the end, is in the socket */
		return;
	}
	if (evbuffer_get_length(u->t.out) == 0 && u->ops && u->ops->on_writable)
		u->ops->on_writable(u->arg);
}

static void
on_up_ready(void *arg)
{
	struct upstream_conn *u = arg;

	if (u->state == UP_CONNECTING) {
		int err = 0;
		socklen_t el = sizeof(err);

		getsockopt(u->t.fd, SOL_SOCKET, SO_ERROR, &err, &el);
		if (err != 0) {
			log_error("upstream %s: connect: %s",
			          u->w->cfg->upstream_hostport, strerror(err));
			up_fail(u, 502);
			return;
		}
		u->state = UP_WAITING;
		transport_set_timer(&u->t, u->w->cfg->response_timeout_ms);
	}
	up_step(u);
}

static void
on_up_timeout(void *arg)
{
	struct upstream_conn *u = arg;

	if (u->state == UP_CONNECTING) {
		log_error("upstream %s: connect timed out",
		          u->w->cfg->upstream_hostport);
		u->reusable = false;
		up_finish(u, 504);
	} else if (u->state == UP_WAITING || u->state == UP_BODY) {
		log_error("upstream %s: no response for %u ms",
		          u->w->cfg->upstream_hostport,
		          u->w->cfg->response_timeout_ms);
		u->reusable = false;
		up_finish(u, u->state == UP_BODY ? -1 : 504);
	}
}

static const struct transport_handlers up_handlers = {
    on_up_ready,
    on_up_timeout,
    up_free,
};

struct upstream_conn *
upstream_send(struct worker *w, struct evbuffer *head, struct evbuffer *body,
              unsigned flags, const struct upstream_ops *ops, void *arg)
{
	struct upstream_conn *u = w->idle;

	if (u != NULL) {
		w->idle = u->next;
		w->nidle--;
		u->next = NULL;
		u->state = UP_WAITING;
	} else {
		u = up_new(w);
		if (u == NULL)
			return NULL;
	}
	u->ops = ops;
	u->arg = arg;
	u->head_request = (flags & UPSTREAM_HEAD) != 0;
	u->retryable = (flags & UPSTREAM_RETRYABLE) != 0;
	u->dechunk = (flags & UPSTREAM_DECHUNK) != 0;
	u->retried = false;
	u->got_bytes = false;
	u->paused = false;
	u->write_failed = false;
	u->req_queued = body != NULL; /* else streamed: upstream_write says */
	evbuffer_add_buffer(u->t.out, head);
	if (body)
		evbuffer_add_buffer(u->t.out, body);
	if (u->retryable && u->reused) {
		u->retry_copy = evbuffer_new();
		if (u->retry_copy)
			evbuffer_add(u->retry_copy,
			             evbuffer_pullup(u->t.out, -1),
			             evbuffer_get_length(u->t.out));
	}
	if (u->state == UP_WAITING) {
		transport_set_timer(&u->t, w->cfg->response_timeout_ms);
		/* write now: the caller holds the handle, callbacks come later
		 */
		up_write(u);
		if (u->write_failed) /* a dead pooled connection: the event */
			event_active(u->t.ev, EV_READ, 0); /* loop reports it */
	}
	return u;
}

void
upstream_write(struct upstream_conn *u, struct evbuffer *data, bool last)
{
	if (u->write_failed || u->state == UP_CLOSED) {
		evbuffer_drain(data, evbuffer_get_length(data));
		return;
	}
	evbuffer_add_buffer(u->t.out, data);
	if (last)
		u->req_queued = true;
	/* We are called from the client's side: the upstream's answer may be
	   in the socket with its event not yet dispatched. The last bytes
	   wait until it is parsed, so that an answer given before them is
	   known as early (once per streamed request). */
	if (last && u->state == UP_WAITING && transport_peer_spoke(&u->t)) {
		u->t.can_read = true;
		event_active(u->t.ev, EV_READ, 0);
		return;
	}
	/* also while the response is relayed: an early answer does not stop
	   the request (the caller decides that), and with edge-triggered
	   events nothing else would write these bytes */
	if (u->state == UP_WAITING || u->state == UP_BODY) {
		up_write(u);
		if (u->write_failed) /* the event loop reports it */
			event_active(u->t.ev, EV_READ, 0);
	}
}

bool
upstream_request_written(const struct upstream_conn *u)
{
	return up_request_written(u);
}

size_t
upstream_pending(const struct upstream_conn *u)
{
	return evbuffer_get_length(u->t.out);
}

void
upstream_abort(struct upstream_conn *u)
{
	if (u == NULL)
		return;
	u->ops = NULL;
	u->reusable = false;
	up_close(u);
}

void
upstream_pause(struct upstream_conn *u)
{
	u->paused = true;
}

void
upstream_resume(struct upstream_conn *u)
{
	if (!u->paused)
		return;
	u->paused = false;
	transport_hold(&u->t);
	up_step(u);
	transport_release(&u->t);
}

void
upstream_pool_clear(struct worker *w)
{
	while (w->idle) {
		struct upstream_conn *u = w->idle;

		w->idle = u->next;
		w->nidle--;
		up_close(u);
	}
}
