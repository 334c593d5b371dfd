/*
 * tls.c: TLS for both sides of a relay, as a transport backend, with
 * OpenSSL 3. See tls_internal.h.
 *
 * The backend drives a nonblocking SSL object on the socket itself (no
 * BIO pair: one copy fewer). A read or write that OpenSSL cannot finish
 * says which way the socket must move first: SSL_ERROR_WANT_READ on a
 * write (a handshake still waiting for the peer) sets write_needs_read,
 * WANT_WRITE on a read sets read_needs_write, and the transport's event
 * handler turns the other event into the retry. Reads take records until
 * the room is full or the socket is dry; what OpenSSL still holds is
 * reported by has_pending, so an edge-triggered loop never waits for an
 * event that will not come.
 *
 * Writes gather small segments into one record (a response head and its
 * body go out as one record, not two), with partial writes and moving
 * buffers enabled so that a retry after WANT_WRITE may come from a buffer
 * rebuilt at another address, as OpenSSL allows in that mode.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "proxy_internal.h"
#include "tls_internal.h"

#define TLS_RECORD_MAX 16384 /* plaintext bytes of one record */

/* Mozilla's "intermediate" TLS 1.2 suites: forward secret AEAD only
   (TLS 1.3's are OpenSSL's defaults). */
#define TLS12_CIPHERS                                                          \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"           \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"           \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

const char *const tls_failure_names[TLS_FAIL_COUNT] = {
    [TLS_FAIL_NO_CERTIFICATE] = "no_certificate",
    [TLS_FAIL_UNKNOWN_CA] = "unknown_ca",
    [TLS_FAIL_EXPIRED] = "expired",
    [TLS_FAIL_BAD_CERTIFICATE] = "bad_certificate",
    [TLS_FAIL_PLAIN_HTTP] = "plain_http",
    [TLS_FAIL_PROTOCOL] = "protocol",
    [TLS_FAIL_ALPN] = "alpn",
    [TLS_FAIL_EOF] = "eof",
    [TLS_FAIL_TIMEOUT] = "timeout",
};

struct tls_server {
	const struct config *cfg;
	pthread_mutex_t lock; /* guards ctx against a reload */
	SSL_CTX *ctx;
	struct tls_stats stats;
};

struct tls_client {
	const struct config *cfg;
	SSL_CTX *ctx;
	bool host_is_ip;
	/* the last session the upstream gave, offered to new connections */
	pthread_mutex_t lock;
	SSL_SESSION *session;
	struct tls_stats stats;
};

/* One connection's state (t->backend_state). */
struct tls_conn {
	SSL *ssl;
	struct tls_stats *stats;
	bool handshake_done, failed, is_server;
	char peer[300]; /* for logs: the client address or upstream host */
};

static int conn_index = -1;   /* SSL ex_data: the struct tls_conn */
static int client_index = -1; /* SSL_CTX ex_data: the struct tls_client */
static pthread_once_t index_once = PTHREAD_ONCE_INIT;

static void
make_indexes(void)
{
	conn_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	client_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

/* The first OpenSSL error queued, as text; the queue is emptied. */
static void
ssl_error_text(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();

	if (e == 0)
		snprintf(buf, len, "%s", errno ? strerror(errno) : "no detail");
	else
		ERR_error_string_n(e, buf, len);
	ERR_clear_error();
}

/* ---- classifying failures ---- */

static enum tls_failure
classify(SSL *ssl, int ssl_err, unsigned long e)
{
	long v = SSL_get_verify_result(ssl);

	if (ssl_err == SSL_ERROR_SYSCALL || ssl_err == SSL_ERROR_ZERO_RETURN)
		return TLS_FAIL_EOF;
	if (ERR_GET_LIB(e) == ERR_LIB_SSL) {
		switch (ERR_GET_REASON(e)) {
		case SSL_R_HTTP_REQUEST:
		case SSL_R_HTTPS_PROXY_REQUEST:
			return TLS_FAIL_PLAIN_HTTP;
		case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
			return TLS_FAIL_NO_CERTIFICATE;
		case SSL_R_NO_APPLICATION_PROTOCOL:
			return TLS_FAIL_ALPN;
		case SSL_R_UNEXPECTED_EOF_WHILE_READING:
			return TLS_FAIL_EOF;
		case SSL_R_CERTIFICATE_VERIFY_FAILED:
		case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
		case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
		case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
			break; /* the verify result tells more */
		default:
			if (v == X509_V_OK)
				return TLS_FAIL_PROTOCOL;
		}
	}
	switch (v) {
	case X509_V_OK:
		if (ERR_GET_REASON(e) == SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED)
			return TLS_FAIL_EXPIRED;
		if (ERR_GET_REASON(e) == SSL_R_TLSV1_ALERT_UNKNOWN_CA)
			return TLS_FAIL_UNKNOWN_CA;
		return e ? TLS_FAIL_BAD_CERTIFICATE : TLS_FAIL_PROTOCOL;
	case X509_V_ERR_CERT_HAS_EXPIRED:
	case X509_V_ERR_CERT_NOT_YET_VALID:
		return TLS_FAIL_EXPIRED;
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
		return TLS_FAIL_UNKNOWN_CA;
	default:
		return TLS_FAIL_BAD_CERTIFICATE;
	}
}

/* A plain HTTP request reached the TLS port: say so in plain HTTP, as
   nginx does, so that `curl http://` shows the reason instead of an
   empty reply. One best-effort write; the connection closes after it. */
static void
answer_plain_http(int fd)
{
	static const char body[] =
	    "{\"type\":\"about:blank\",\"title\":\"Bad Request\","
	    "\"status\":400,\"detail\":\"this port speaks TLS: use "
	    "https://\"}\n";
	char msg[512];
	int n = snprintf(msg, sizeof(msg),
	                 "HTTP/1.1 400 Bad Request\r\n"
	                 "Content-Type: application/problem+json\r\n"
	                 "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
	                 sizeof(body) - 1, body);
	ssize_t w;

	do
		w = send(fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (w < 0 && errno == EINTR);
}

static void
handshake_failed(struct transport *t, struct tls_conn *tc, int ssl_err)
{
	unsigned long e = ERR_peek_error();
	enum tls_failure why = classify(tc->ssl, ssl_err, e);
	char text[256];
	long v = SSL_get_verify_result(tc->ssl);

	ssl_error_text(text, sizeof(text));
	tc->failed = true;
	atomic_fetch_add_explicit(&tc->stats->failures[why], 1,
	                          memory_order_relaxed);
	if (why == TLS_FAIL_PLAIN_HTTP && tc->is_server)
		answer_plain_http(t->fd);
	if (v != X509_V_OK)
		log_warn("tls: handshake %s %s failed: %s (%s; %s)",
		         tc->is_server ? "from" : "with", tc->peer,
		         tls_failure_names[why],
		         X509_verify_cert_error_string(v), text);
	else
		log_warn("tls: handshake %s %s failed: %s (%s)",
		         tc->is_server ? "from" : "with", tc->peer,
		         tls_failure_names[why], text);
}

/*
 * Drive the handshake. 1 done; 0 waiting (errno EAGAIN, the flag for the
 * direction it waits on set by the caller from *want); -1 failed (errno
 * EPROTO).
 */
static int
handshake(struct transport *t, struct tls_conn *tc, int *want)
{
	int r, err;

	if (tc->handshake_done)
		return 1;
	if (tc->failed) {
		errno = EPROTO;
		return -1;
	}
	ERR_clear_error();
	r = SSL_do_handshake(tc->ssl);
	if (r == 1) {
		tc->handshake_done = true;
		atomic_fetch_add_explicit(&tc->stats->handshakes, 1,
		                          memory_order_relaxed);
		if (SSL_session_reused(tc->ssl))
			atomic_fetch_add_explicit(&tc->stats->resumed, 1,
			                          memory_order_relaxed);
		return 1;
	}
	err = SSL_get_error(tc->ssl, r);
	if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
		*want = err;
		errno = EAGAIN;
		return 0;
	}
	handshake_failed(t, tc, err);
	errno = EPROTO;
	return -1;
}

/* ---- the backend ---- */

static ssize_t
tls_readv(struct transport *t, const struct iovec *iov, int n)
{
	struct tls_conn *tc = t->backend_state;
	size_t total = 0;
	int want = 0, hs = handshake(t, tc, &want);

	if (hs <= 0) {
		if (want == SSL_ERROR_WANT_WRITE)
			t->read_needs_write = true;
		return -1;
	}
	for (int i = 0; i < n; i++) {
		size_t off = 0;

		while (off < iov[i].iov_len) {
			size_t got = 0;
			int r, err;

			ERR_clear_error();
			r = SSL_read_ex(tc->ssl, (char *)iov[i].iov_base + off,
			                iov[i].iov_len - off, &got);
			if (r == 1) {
				off += got;
				total += got;
				continue;
			}
			err = SSL_get_error(tc->ssl, r);
			if (total > 0)
				return (ssize_t)total; /* the rest next time */
			if (err == SSL_ERROR_WANT_READ) {
				errno = EAGAIN;
				return -1;
			}
			if (err == SSL_ERROR_WANT_WRITE) {
				t->read_needs_write = true;
				errno = EAGAIN;
				return -1;
			}
			if (err == SSL_ERROR_ZERO_RETURN)
				return 0; /* close_notify */
			if (err == SSL_ERROR_SYSCALL &&
			    (errno == 0 || errno == ECONNRESET)) {
				ERR_clear_error();
				return 0; /* EOF without close_notify, or a
				             reset: the framing tells */
			}
			{
				char text[256];

				ssl_error_text(text, sizeof(text));
				log_warn("tls: read from %s: %s", tc->peer,
				         text);
			}
			errno = EPROTO;
			return -1;
		}
	}
	return (ssize_t)total;
}

/* SSL_write_ex of one buffer: bytes written, 0 when the socket is full
   (or a handshake message must be read first), -1 on an error. */
static ssize_t
write_one(struct transport *t, struct tls_conn *tc, const void *p, size_t len)
{
	size_t done = 0;
	int r, err;

	ERR_clear_error();
	r = SSL_write_ex(tc->ssl, p, len, &done);
	if (r == 1)
		return (ssize_t)done;
	err = SSL_get_error(tc->ssl, r);
	if (err == SSL_ERROR_WANT_WRITE)
		return 0;
	if (err == SSL_ERROR_WANT_READ) {
		t->write_needs_read = true;
		return 0;
	}
	{
		char text[256];

		ssl_error_text(text, sizeof(text));
		log_warn("tls: write to %s: %s", tc->peer, text);
	}
	errno = EPIPE;
	return -1;
}

static ssize_t
tls_writev(struct transport *t, const struct iovec *iov, int n)
{
	struct tls_conn *tc = t->backend_state;
	char stage[TLS_RECORD_MAX];
	size_t total = 0, staged = 0;
	int i = 0, want = 0;
	size_t off = 0; /* into iov[i] */
	int hs = handshake(t, tc, &want);

	if (hs <= 0) {
		if (want == SSL_ERROR_WANT_READ)
			t->write_needs_read = true;
		return -1;
	}
	while (i < n) {
		const char *p = (const char *)iov[i].iov_base + off;
		size_t left = iov[i].iov_len - off, len;
		ssize_t w;

		if (left == 0) {
			i++;
			off = 0;
			continue;
		}
		if (left >= TLS_RECORD_MAX) {
			/* a whole record straight from the buffer */
			len = TLS_RECORD_MAX;
		} else {
			/* gather small segments into one record */
			staged = 0;
			for (int k = i; k < n && staged < TLS_RECORD_MAX; k++) {
				size_t o = k == i ? off : 0;
				size_t m = iov[k].iov_len - o;

				if (m > TLS_RECORD_MAX - staged)
					m = TLS_RECORD_MAX - staged;
				memcpy(stage + staged,
				       (const char *)iov[k].iov_base + o, m);
				staged += m;
			}
			p = stage;
			len = staged;
		}
		w = write_one(t, tc, p, len);
		if (w < 0)
			return total > 0 ? (ssize_t)total : -1;
		if (w == 0) {
			if (total > 0)
				return (ssize_t)total;
			errno = EAGAIN;
			return -1;
		}
		total += (size_t)w;
		/* advance over w bytes of the iovec */
		for (size_t adv = (size_t)w; adv > 0 && i < n;) {
			size_t m = iov[i].iov_len - off;

			if (adv < m) {
				off += adv;
				adv = 0;
			} else {
				adv -= m;
				i++;
				off = 0;
			}
		}
	}
	return (ssize_t)total;
}

static bool
tls_has_pending(const struct transport *t)
{
	const struct tls_conn *tc = t->backend_state;

	return tc->handshake_done && SSL_has_pending(tc->ssl);
}

static bool
tls_handshaking(const struct transport *t)
{
	const struct tls_conn *tc = t->backend_state;

	return !tc->handshake_done && !tc->failed;
}

static bool
tls_peer_spoke(const struct transport *t)
{
	struct tls_conn *tc = t->backend_state;
	char b;
	size_t got = 0;
	int r, err;

	if (!tc->handshake_done)
		return true; /* let the read decide */
	ERR_clear_error();
	r = SSL_peek_ex(tc->ssl, &b, 1, &got);
	if (r == 1)
		return true;
	err = SSL_get_error(tc->ssl, r);
	ERR_clear_error();
	return err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE;
}

static int
tls_shutdown(struct transport *t)
{
	struct tls_conn *tc = t->backend_state;

	if (tc->handshake_done) {
		ERR_clear_error();
		SSL_shutdown(tc->ssl); /* close_notify, best effort */
		ERR_clear_error();
	}
	return shutdown(t->fd, SHUT_WR);
}

static void
tls_close(struct transport *t)
{
	struct tls_conn *tc = t->backend_state;

	if (tc != NULL) {
		/* close_notify (best effort), and the session counts as
		   ended cleanly: OpenSSL would otherwise mark it not
		   resumable, and the next connection to the upstream would
		   pay a full handshake (nginx does the same) */
		if (tc->handshake_done && !tc->failed) {
			ERR_clear_error();
			if (!(SSL_get_shutdown(tc->ssl) & SSL_SENT_SHUTDOWN))
				SSL_shutdown(tc->ssl);
			SSL_set_shutdown(tc->ssl, SSL_SENT_SHUTDOWN |
			                              SSL_RECEIVED_SHUTDOWN);
			ERR_clear_error();
		}
		SSL_free(tc->ssl);
		free(tc);
		t->backend_state = NULL;
	}
	close(t->fd);
}

static const struct transport_backend transport_tls = {
    .name = "tls",
    .readv = tls_readv,
    .writev = tls_writev,
    .has_pending = tls_has_pending,
    .handshaking = tls_handshaking,
    .peer_spoke = tls_peer_spoke,
    .shutdown = tls_shutdown,
    .close = tls_close,
};

/* ---- contexts ---- */

/* The file must be readable: say so plainly before OpenSSL's codes. */
static bool
readable(const char *path, const char *flag, struct cg_errors *errs)
{
	FILE *f = fopen(path, "r");

	if (f == NULL) {
		cg_errors_add(errs, flag, 0, 0, "cannot read '%s': %s", path,
		              strerror(errno));
		return false;
	}
	fclose(f);
	return true;
}

static int
alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
            const unsigned char *in, unsigned inlen, void *arg)
{
	static const unsigned char h1[] = "\x08http/1.1";
	unsigned char *sel = NULL;
	unsigned char sellen = 0;

	if (SSL_select_next_proto(&sel, &sellen, h1, sizeof(h1) - 1, in,
	                          inlen) != OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_ALERT_FATAL; /* no_application_protocol */
	*out = sel;
	*outlen = sellen;
	return SSL_TLSEXT_ERR_OK;
}

/* What every context shares: versions, suites, modes, options. */
static SSL_CTX *
ctx_common(const SSL_METHOD *method)
{
	SSL_CTX *ctx = SSL_CTX_new(method);

	if (ctx == NULL)
		return NULL;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
	                             SSL_OP_NO_COMPRESSION |
	                             SSL_OP_IGNORE_UNEXPECTED_EOF);
	/* a record in one read(), not a 5-byte header then its body (as
	   nginx does): 6.3 -> 4.1 reads per TLS GET; what it reads beyond a
	   record is seen by SSL_has_pending, so edge-triggered reads hold */
	SSL_CTX_set_read_ahead(ctx, 1);
	/* idle connections give their record buffers back */
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
	                          SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
	                          SSL_MODE_RELEASE_BUFFERS);
	return ctx;
}

static SSL_CTX *
server_ctx_build(const struct config *cfg, struct cg_errors *errs)
{
	SSL_CTX *ctx = ctx_common(TLS_server_method());
	static const unsigned char sid[] = "consentgate";
	char text[256];

	if (ctx == NULL) {
		cg_errors_add(errs, "--tls-cert", 0, 0, "out of memory");
		return NULL;
	}
	if (!readable(cfg->tls_cert, "--tls-cert", errs) ||
	    !readable(cfg->tls_key, "--tls-key", errs) ||
	    (cfg->tls_client_ca &&
	     !readable(cfg->tls_client_ca, "--tls-client-ca", errs)))
		goto fail;
	if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert) != 1) {
		ssl_error_text(text, sizeof(text));
		cg_errors_add(errs, "--tls-cert", 0, 0,
		              "cannot use '%s' as a PEM certificate chain: %s",
		              cfg->tls_cert, text);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key, SSL_FILETYPE_PEM) !=
	    1) {
		if (ERR_GET_REASON(ERR_peek_last_error()) ==
		    X509_R_KEY_VALUES_MISMATCH) {
			ERR_clear_error();
			cg_errors_add(
			    errs, "--tls-key", 0, 0,
			    "'%s' is not the key of the certificate in "
			    "'%s'",
			    cfg->tls_key, cfg->tls_cert);
			goto fail;
		}
		ssl_error_text(text, sizeof(text));
		cg_errors_add(errs, "--tls-key", 0, 0,
		              "cannot use '%s' as a PEM private key: %s",
		              cfg->tls_key, text);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		ERR_clear_error();
		cg_errors_add(errs, "--tls-key", 0, 0,
		              "'%s' is not the key of the certificate in '%s'",
		              cfg->tls_key, cfg->tls_cert);
		goto fail;
	}
	if (cfg->tls_client_ca != NULL) {
		STACK_OF(X509_NAME) *names =
		    SSL_load_client_CA_file(cfg->tls_client_ca);

		if (names == NULL || SSL_CTX_load_verify_locations(
		                         ctx, cfg->tls_client_ca, NULL) != 1) {
			ssl_error_text(text, sizeof(text));
			if (names)
				sk_X509_NAME_pop_free(names, X509_NAME_free);
			cg_errors_add(errs, "--tls-client-ca", 0, 0,
			              "cannot use '%s' as PEM CA certificates: "
			              "%s",
			              cfg->tls_client_ca, text);
			goto fail;
		}
		SSL_CTX_set_client_CA_list(ctx, names);
		SSL_CTX_set_verify(
		    ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
		    NULL);
	}
	/* resumption: the session cache and (TLS 1.3) tickets; the id
	   context keeps a session from moving to another context */
	SSL_CTX_set_session_id_context(ctx, sid, sizeof(sid) - 1);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
	SSL_CTX_sess_set_cache_size(ctx, 20480);
	SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

struct tls_server *
tls_server_new(const struct config *cfg, struct cg_errors *errs)
{
	struct tls_server *ts;
	SSL_CTX *ctx;

	pthread_once(&index_once, make_indexes);
	ctx = server_ctx_build(cfg, errs);
	if (ctx == NULL)
		return NULL;
	ts = calloc(1, sizeof(*ts));
	if (ts == NULL) {
		SSL_CTX_free(ctx);
		cg_errors_add(errs, "--tls-cert", 0, 0, "out of memory");
		return NULL;
	}
	ts->cfg = cfg;
	ts->ctx = ctx;
	pthread_mutex_init(&ts->lock, NULL);
	return ts;
}

int
tls_server_reload(struct tls_server *ts, struct cg_errors *errs)
{
	SSL_CTX *ctx = server_ctx_build(ts->cfg, errs), *old;

	if (ctx == NULL)
		return -1;
	pthread_mutex_lock(&ts->lock);
	old = ts->ctx;
	ts->ctx = ctx;
	pthread_mutex_unlock(&ts->lock);
	SSL_CTX_free(old); /* connections hold their own references */
	return 0;
}

void
tls_server_free(struct tls_server *ts)
{
	if (ts == NULL)
		return;
	SSL_CTX_free(ts->ctx);
	pthread_mutex_destroy(&ts->lock);
	free(ts);
}

const struct tls_stats *
tls_server_stats(const struct tls_server *ts)
{
	return &ts->stats;
}

void
tls_server_timed_out(struct tls_server *ts, const char *peer)
{
	atomic_fetch_add_explicit(&ts->stats.failures[TLS_FAIL_TIMEOUT], 1,
	                          memory_order_relaxed);
	log_warn("tls: handshake from %s failed: timeout", peer);
}

/* Attach fd with a fresh SSL object; the socket is attached even when
   this fails, so that closing the transport closes it. */
static int
attach(struct transport *t, int fd, SSL *ssl, struct tls_stats *stats,
       bool is_server, const char *peer)
{
	struct tls_conn *tc = ssl ? calloc(1, sizeof(*tc)) : NULL;

	if (tc == NULL || SSL_set_fd(ssl, fd) != 1) {
		SSL_free(ssl);
		free(tc);
		transport_attach(t, fd, &transport_plain);
		return -1;
	}
	tc->ssl = ssl;
	tc->stats = stats;
	tc->is_server = is_server;
	snprintf(tc->peer, sizeof(tc->peer), "%s", peer);
	SSL_set_ex_data(ssl, conn_index, tc);
	if (is_server)
		SSL_set_accept_state(ssl);
	else
		SSL_set_connect_state(ssl);
	if (transport_attach(t, fd, &transport_tls) != 0) {
		t->backend_state = tc; /* tls_close frees it with the socket */
		return -1;
	}
	t->backend_state = tc;
	return 0;
}

int
tls_server_attach(struct tls_server *ts, struct transport *t, int fd,
                  const char *peer)
{
	SSL *ssl;

	pthread_mutex_lock(&ts->lock);
	ssl = SSL_new(ts->ctx);
	pthread_mutex_unlock(&ts->lock);
	return attach(t, fd, ssl, &ts->stats, true, peer);
}

/* ---- the upstream side ---- */

/* A new session from the upstream (TLS 1.3 sends it after the
   handshake): keep the newest for the next connection. */
static int
on_new_session(SSL *ssl, SSL_SESSION *sess)
{
	struct tls_client *tc =
	    SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), client_index);
	SSL_SESSION *old;

	if (tc == NULL || !SSL_SESSION_is_resumable(sess))
		return 0;
	pthread_mutex_lock(&tc->lock);
	old = tc->session;
	tc->session = sess;
	pthread_mutex_unlock(&tc->lock);
	SSL_SESSION_free(old);
	return 1; /* we took the reference */
}

struct tls_client *
tls_client_new(const struct config *cfg, struct cg_errors *errs)
{
	struct tls_client *tc;
	SSL_CTX *ctx;
	char text[256];
	struct in6_addr a6;
	struct in_addr a4;

	pthread_once(&index_once, make_indexes);
	ctx = ctx_common(TLS_client_method());
	if (ctx == NULL) {
		cg_errors_add(errs, "--upstream", 0, 0, "out of memory");
		return NULL;
	}
	if ((cfg->upstream_ca &&
	     !readable(cfg->upstream_ca, "--upstream-ca", errs)) ||
	    (cfg->upstream_cert &&
	     (!readable(cfg->upstream_cert, "--upstream-cert", errs) ||
	      !readable(cfg->upstream_key, "--upstream-key", errs))))
		goto fail;
	if (cfg->upstream_ca != NULL
	        ? SSL_CTX_load_verify_locations(ctx, cfg->upstream_ca, NULL) !=
	              1
	        : SSL_CTX_set_default_verify_paths(ctx) != 1) {
		ssl_error_text(text, sizeof(text));
		cg_errors_add(errs, "--upstream-ca", 0, 0,
		              "cannot use '%s' as PEM CA certificates: %s",
		              cfg->upstream_ca ? cfg->upstream_ca
		                               : "the system store",
		              text);
		goto fail;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (cfg->upstream_cert != NULL) {
		if (SSL_CTX_use_certificate_chain_file(
		        ctx, cfg->upstream_cert) != 1) {
			ssl_error_text(text, sizeof(text));
			cg_errors_add(errs, "--upstream-cert", 0, 0,
			              "cannot use '%s' as a PEM certificate "
			              "chain: %s",
			              cfg->upstream_cert, text);
			goto fail;
		}
		if (SSL_CTX_use_PrivateKey_file(ctx, cfg->upstream_key,
		                                SSL_FILETYPE_PEM) != 1 ||
		    SSL_CTX_check_private_key(ctx) != 1) {
			ssl_error_text(text, sizeof(text));
			cg_errors_add(errs, "--upstream-key", 0, 0,
			              "cannot use '%s' as the key of '%s': %s",
			              cfg->upstream_key, cfg->upstream_cert,
			              text);
			goto fail;
		}
	}
	SSL_CTX_set_alpn_protos(ctx, (const unsigned char *)"\x08http/1.1", 9);
	SSL_CTX_set_session_cache_mode(
	    ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(ctx, on_new_session);
	tc = calloc(1, sizeof(*tc));
	if (tc == NULL) {
		cg_errors_add(errs, "--upstream", 0, 0, "out of memory");
		goto fail;
	}
	tc->cfg = cfg;
	tc->ctx = ctx;
	tc->host_is_ip = inet_pton(AF_INET, cfg->upstream_host, &a4) == 1 ||
	                 inet_pton(AF_INET6, cfg->upstream_host, &a6) == 1;
	pthread_mutex_init(&tc->lock, NULL);
	SSL_CTX_set_ex_data(ctx, client_index, tc);
	return tc;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

void
tls_client_free(struct tls_client *tc)
{
	if (tc == NULL)
		return;
	SSL_CTX_free(tc->ctx);
	SSL_SESSION_free(tc->session);
	pthread_mutex_destroy(&tc->lock);
	free(tc);
}

const struct tls_stats *
tls_client_stats(const struct tls_client *tc)
{
	return &tc->stats;
}

int
tls_client_attach(struct tls_client *tc, struct transport *t, int fd)
{
	SSL *ssl = SSL_new(tc->ctx);
	const char *host = tc->cfg->upstream_host;

	if (ssl != NULL) {
		/* the certificate must name the host we were told to reach */
		if (tc->host_is_ip) {
			X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl),
			                              host);
		} else {
			SSL_set_tlsext_host_name(ssl, host);
			SSL_set1_host(ssl, host);
		}
		pthread_mutex_lock(&tc->lock);
		if (tc->session)
			SSL_set_session(ssl, tc->session);
		pthread_mutex_unlock(&tc->lock);
	}
	return attach(t, fd, ssl, &tc->stats, false,
	              tc->cfg->upstream_hostport);
}

/* ---- the client's identity ---- */

/* Append "prefix:value" to out when value is visible ASCII without '"'
   or '\\'. */
static bool
add_identity(char *out, size_t len, size_t *used, const char *prefix,
             const unsigned char *v, int vlen)
{
	size_t pl = strlen(prefix);

	if (vlen <= 0)
		return false;
	for (int i = 0; i < vlen; i++)
		if (v[i] <= 0x20 || v[i] >= 0x7f || v[i] == '"' || v[i] == '\\')
			return false;
	if (*used + pl + (size_t)vlen + 2 > len)
		return false;
	memcpy(out + *used, prefix, pl);
	memcpy(out + *used + pl, v, (size_t)vlen);
	*used += pl + (size_t)vlen;
	out[(*used)++] = '\0';
	return true;
}

unsigned
tls_peer_identities(const struct transport *t, char *out, size_t len)
{
	const struct tls_conn *tc;
	X509 *cert;
	GENERAL_NAMES *names;
	X509_NAME *subject;
	size_t used = 0;
	unsigned count = 0;

	if (len < 1)
		return 0;
	out[0] = '\0';
	if (t->fd < 0 || t->backend != &transport_tls)
		return 0;
	tc = t->backend_state;
	if (!tc->handshake_done)
		return 0;
	cert = SSL_get0_peer_certificate(tc->ssl);
	if (cert == NULL || SSL_get_verify_result(tc->ssl) != X509_V_OK)
		return 0;
	names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	for (int pass = 0; pass < 2 && names; pass++) {
		int want = pass == 0 ? GEN_URI : GEN_DNS;

		for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
			const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
			const ASN1_IA5STRING *s =
			    g->type == GEN_URI ? g->d.uniformResourceIdentifier
			                       : g->d.dNSName;

			if (g->type == want &&
			    add_identity(out, len - 1, &used,
			                 pass == 0 ? "uri:" : "dns:",
			                 ASN1_STRING_get0_data(s),
			                 ASN1_STRING_length(s)))
				count++;
		}
	}
	GENERAL_NAMES_free(names);
	subject = X509_get_subject_name(cert);
	for (int i = -1;;) {
		const X509_NAME_ENTRY *e;
		const ASN1_STRING *s;

		i = X509_NAME_get_index_by_NID(subject, NID_commonName, i);
		if (i < 0)
			break;
		e = X509_NAME_get_entry(subject, i);
		s = X509_NAME_ENTRY_get_data(e);
		if (add_identity(out, len - 1, &used,
		                 "cn:", ASN1_STRING_get0_data(s),
		                 ASN1_STRING_length(s)))
			count++;
	}
	out[used] = '\0'; /* the empty string ends the list */
	return count;
}
