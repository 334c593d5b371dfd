/*
 * rewrite_internal.h: the heads consentgate writes itself, apart from
 * parsing (http1.c) and from the connection's state machine (conn.c): the
 * request head sent upstream and the response head relayed to the client.
 * Nothing the client sent is copied blindly: hop-by-hop fields, fields
 * named in Connection, framing and Consent-* are dropped and recomputed.
 */
#ifndef CONSENTGATE_REWRITE_INTERNAL_H
#define CONSENTGATE_REWRITE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include <event2/buffer.h>

#include "http1_internal.h"
#include "inspect_internal.h"

#define REWRITE_PEER_MAX                                                       \
	64 /* bytes of a Forwarded for= value, NUL included                    \
	    */

/* The Forwarded for= value of a client address (RFC 7239: an IPv6
   address quoted in brackets) into out[0,len); "unknown" for others. */
void rewrite_peer(const struct sockaddr *sa, char *out, size_t len);

/* Who sent the request, for Forwarded. */
struct rewrite_client {
	const char *addr;       /* the for= value (rewrite_peer) */
	bool https;             /* it spoke TLS to us: proto=https */
	const char *client;     /* its verified certificate identity, or NULL */
	const char *request_id; /* sent as X-Request-Id (reqid.c) */
};

/*
 * Append our own upstream request head to h: request line, the client's
 * end-to-end fields, Host when an HTTP/1.0 client sent none (upstream
 * host:port), Via, Forwarded (appended after the client's own, RFC 7239:
 * the upstream trusts the last element, ours, for proto= and client=),
 * one framing
 * (Transfer-Encoding: chunked when streaming, else Content-Length of
 * body_len when there is a body) and, when insp->active, the Consent-*
 * fields of the inspection. Cannot fail (evbuffer errors are ignored as
 * everywhere on the request path).
 */
void rewrite_request_head(struct evbuffer *h, const struct http1_request *r,
                          const struct inspect_result *insp,
                          const struct rewrite_client *from,
                          const char *upstream_hostport, size_t body_len,
                          bool streaming);

/*
 * Append the response's status line (always HTTP/1.1) and end-to-end
 * fields to o, without the final CRLF: the caller adds Consent-Result and
 * Connection. strip_consent drops the upstream's Consent-* fields (an
 * inspected route: only the proxy speaks for consent); chunked_client
 * re-announces a chunked body relayed verbatim to an HTTP/1.1 client.
 */
/* request_id replaces any X-Request-Id of the upstream's (NULL: none). */
void rewrite_response_head(struct evbuffer *o, const struct http1_response *res,
                           bool strip_consent, bool chunked_client,
                           const char *request_id);

#endif
