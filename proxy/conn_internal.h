/*
 * conn_internal.h: one client connection, shared by the two files of its
 * state machine: conn.c reads and checks the request (accept, framing,
 * route, verdict) and owns the connection's life; relay.c sends the
 * rebuilt request upstream and relays the response back. Nobody else
 * includes it.
 */
#ifndef CONSENTGATE_CONN_INTERNAL_H
#define CONSENTGATE_CONN_INTERNAL_H

#include "conn_request_internal.h"
#include "proxy_internal.h"
#include "rewrite_internal.h"
#include "transport_internal.h"

enum conn_state {
	CS_HEAD,     /* reading a request head (or idle between requests) */
	CS_BODY,     /* reading the request body */
	CS_UPSTREAM, /* the request is forwarded; relaying the response */
	CS_CLOSING,  /* flushing the last bytes, then closing */
	CS_LINGER,   /* our side shut down; reading and dropping what comes */
};

enum timer_kind {
	TIMER_NONE,
	TIMER_IDLE,
	TIMER_HEAD,
	TIMER_BODY,
	TIMER_LINGER,
	TIMER_HANDSHAKE, /* TLS: the handshake's own deadline */
};

struct conn {
	struct transport t; /* the client side: t.in, t.out, flags, guard */
	struct worker *w;
	struct conn *next, *prev;
	enum timer_kind timer_kind;
	uint64_t id;
	char peer[REWRITE_PEER_MAX]; /* for Forwarded: for= */
	bool tls, handshaking;       /* TLS; its handshake not done yet */
	/* the verified client certificate's identities (tls.c's list of
	   "kind:value" strings), NULL without one; client is the one logged
	   and forwarded: the one the route matched, else the first */
	char *client_ids;
	const char *client;
	enum conn_state state;
	/* the request in flight; NULL while the connection idles, so that an
	   idle keep-alive connection costs a few hundred bytes, not kilobytes
	 */
	struct conn_request *rq;
	size_t head_scanned; /* bytes of a partial head already parsed */
	bool stream_started; /* the upstream request is under way, chunked */
	bool body_complete;  /* the whole request body has been read */
	struct snapshot *snap;
	const struct policy_route *route;
	struct upstream_conn *up;
	bool response_started, keep_alive, upstream_paused;
};

/* ---- conn.c ---- */
/* Run the state machine until nothing moves (reads, parses, flushes). */
void conn_step(struct conn *c);
/* After conn_step in an outermost handler: an idle keep-alive connection
   gives its buffers back until it speaks again (transport_idle). */
void conn_settle(struct conn *c);
/* The one way a connection ends; it is freed once no callback of its own
   is on the stack (transport.c's guard). */
void conn_close(struct conn *c);
/* Answer with a problem and close after it is flushed. */
void conn_fail(struct conn *c, int status, const char *detail,
               const char *extra);
/* Answer with a problem; keep the connection when the request was read
   completely and may be followed by another. */
void conn_reply_problem(struct conn *c, int status, const char *detail,
                        const char *extra);
/* Every record was dropped: 204, nothing goes upstream. */
void conn_reply_all_dropped(struct conn *c);
/* Forget the request in flight (the upstream exchange is aborted). */
void conn_end_request(struct conn *c);
/* A response to the request begins (ours or the upstream's): its status
   for the access log; makes a request id when the head was unreadable. */
void conn_responding(struct conn *c, int status);
/* The decision-log line and metrics of an inspected request, once. */
void conn_log_decision(struct conn *c, const char *outcome, int status);
void conn_clear_timer(struct conn *c);
/* Part of the request body is still unread: the connection cannot go on. */
bool conn_body_pending(const struct conn *c);

/* ---- relay.c ---- */
/* The request is complete: decide a buffered body, then send our own
   head and the (kept) body upstream; answers the client itself when
   nothing is to be forwarded or the upstream cannot be reached. */
void relay_forward(struct conn *c);
/* Streaming NDJSON: decide the lines that arrived (done: the body ended)
   and stream the kept ones upstream. */
void relay_stream(struct conn *c, bool done);

#endif
