/*
 * tls_internal.h: TLS behind the transport seam (transport_internal.h).
 *
 * Two contexts, built from the configuration: the server side (clients
 * connect to us: --tls-cert, --tls-key, and --tls-client-ca for mutual
 * TLS) and the client side (we connect to an https:// upstream, verifying
 * its chain against --upstream-ca or the system store and its host name,
 * with SNI, and optionally presenting --upstream-cert/--upstream-key).
 *
 * A connection gets the TLS backend through tls_server_attach or
 * tls_client_attach instead of transport_attach(..., &transport_plain);
 * from then on conn.c and upstream.c read and write plaintext through the
 * transport and never see OpenSSL. The handshake runs inside the first
 * reads and writes; transport_handshaking says when it is over.
 *
 * Contexts are reference counted by OpenSSL: a reload (SIGHUP) builds a
 * new server context aside and swaps it in under a lock; connections keep
 * the one they started with. Failures are counted by reason for /metrics
 * and logged once each.
 *
 * Only tls.c includes OpenSSL.
 */
#ifndef CONSENTGATE_TLS_INTERNAL_H
#define CONSENTGATE_TLS_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "consentgate/common.h"
#include "transport_internal.h"

struct config;

/* Why a handshake failed: the label of the metric. */
enum tls_failure {
	TLS_FAIL_NO_CERTIFICATE,  /* mutual TLS: the client sent none */
	TLS_FAIL_UNKNOWN_CA,      /* the chain does not lead to a trusted CA */
	TLS_FAIL_EXPIRED,         /* the certificate is expired (or not yet
	                             valid) */
	TLS_FAIL_BAD_CERTIFICATE, /* other verification failures: host name,
	                             purpose, revoked, ... */
	TLS_FAIL_PLAIN_HTTP,      /* an HTTP request on the TLS port */
	TLS_FAIL_PROTOCOL,        /* garbage, no shared version or cipher */
	TLS_FAIL_ALPN,            /* the client offered no http/1.1 */
	TLS_FAIL_EOF,             /* the peer closed during the handshake */
	TLS_FAIL_TIMEOUT,         /* the handshake deadline passed */
	TLS_FAIL_COUNT
};

extern const char *const tls_failure_names[TLS_FAIL_COUNT];

/* Counters of one context, for /metrics. */
struct tls_stats {
	atomic_uint_least64_t handshakes; /* completed */
	atomic_uint_least64_t resumed;    /* of them, resumed sessions */
	atomic_uint_least64_t failures[TLS_FAIL_COUNT];
};

struct tls_server;
struct tls_client;

/*
 * The server context for cfg (tls_cert set), or NULL with the reason in
 * errs ("--tls-cert: cannot read '/x.pem': No such file or directory",
 * "--tls-key: does not match the certificate", ...).
 */
struct tls_server *tls_server_new(const struct config *cfg,
                                  struct cg_errors *errs);
/* Read the certificate, key and client CA again; on error the running
 * context stays and errs says why. 0 or -1. Thread-safe. */
int tls_server_reload(struct tls_server *ts, struct cg_errors *errs);
void tls_server_free(struct tls_server *ts);
const struct tls_stats *tls_server_stats(const struct tls_server *ts);
/* A handshake deadline passed for a connection of ts (counted, logged). */
void tls_server_timed_out(struct tls_server *ts, const char *peer);

/*
 * Take an accepted socket: the transport reads and writes through TLS,
 * the handshake starting with the first read. peer names the client in
 * logs. 0, or -1 (out of memory; the socket is attached anyway, so that
 * closing the transport closes it).
 */
int tls_server_attach(struct tls_server *ts, struct transport *t, int fd,
                      const char *peer);

/* The client context for an https:// upstream, or NULL with errs. */
struct tls_client *tls_client_new(const struct config *cfg,
                                  struct cg_errors *errs);
void tls_client_free(struct tls_client *tc);
const struct tls_stats *tls_client_stats(const struct tls_client *tc);
/* Take a connecting socket to the upstream: TLS with SNI, the host name
 * checked, a cached session offered for resumption. 0 or -1. */
int tls_client_attach(struct tls_client *tc, struct transport *t, int fd);

/* Size of the identity list tls_peer_identities writes. */
#define TLS_IDENTITIES_MAX 1024

/*
 * The verified client certificate's identities as "uri:…", "dns:…" and
 * "cn:…" strings, URI SANs first, then DNS SANs, then the subject CN,
 * each NUL-terminated, the list ended by an empty string, into
 * out[0,len). An identity with a byte outside visible ASCII, or a '"' or
 * '\\', is left out (it could not be written into a header or matched
 * safely). Returns the number of identities; 0 when the connection is not
 * TLS or the client sent no verified certificate.
 */
unsigned tls_peer_identities(const struct transport *t, char *out, size_t len);

#endif
