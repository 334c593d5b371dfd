/*
 * proxy_internal.h: what the modules of proxy/ share with each other.
 *
 * Threading: one worker thread per core, each with its own event_base,
 * listening socket (SO_REUSEPORT), connections and upstream pool. Nothing
 * on the request path is shared between workers: each runs on its own copy
 * of the current snapshot (policy and consent table, reference counted),
 * which a reload hands it through its event loop (server.c).
 *
 * I/O: both sides of a relay are a struct transport (transport.c):
 * sockets registered once, edge-triggered, for read and write, read and
 * written through a backend (plain system calls, TLS later) into
 * evbuffers, waiting for the kernel only once a read finds the source dry.
 * bufferevents cost an ioctl(FIONREAD) per read and two epoll_ctl per
 * write burst; on a small GET that doubled the system calls, which are
 * most of the cost per request here.
 */
#ifndef CONSENTGATE_PROXY_INTERNAL_H
#define CONSENTGATE_PROXY_INTERNAL_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "consentgate/common.h"
#include "consentgate/policy.h"
#include "consentgate/snapshot.h"
#include "http1_internal.h"
#include "metrics_internal.h"

/* Append a string literal (its length computed by the compiler). */
#define ADD_LIT(buf, lit) evbuffer_add((buf), (lit), sizeof(lit) - 1)

/* ---- config.c ---- */
struct config {
	char *listen;   /* HOST:PORT */
	char *upstream; /* http://HOST:PORT */
	char *policy_path;
	char *consent_path; /* a file, or a postgresql:// URL */
	char *consent_seed; /* with a URL: the local snapshot to start from */
	unsigned workers;   /* 0 = one per core */
	size_t max_header_bytes;
	unsigned max_header_count;
	size_t max_body_bytes;
	unsigned head_timeout_ms, body_timeout_ms, idle_timeout_ms;
	unsigned connect_timeout_ms, response_timeout_ms, drain_timeout_ms;
	unsigned max_conns, fd_reserve, pool_size;
	unsigned max_staleness_s;
	char *decision_log;      /* path, "-" for stdout, NULL off */
	char *decision_log_key;  /* pseudonym key file, NULL: no subjects */
	char *decision_log_full; /* "refuse" (NULL: the default) or "drop" */
	unsigned decision_log_queue; /* lines queued at most, 0: default */
	char *access_log;            /* path, "-" for stdout, NULL off */
	char *admin; /* HOST:PORT for /metrics and /healthz, NULL off */
	/* TLS (tls.c): from clients, mutual with a client CA; to an https://
	   upstream, verified against upstream_ca or the system store */
	char *tls_cert, *tls_key, *tls_client_ca;
	char *upstream_ca, *upstream_cert, *upstream_key;
	unsigned tls_handshake_timeout_ms;
	/* derived by config_resolve */
	struct sockaddr_storage listen_addr;
	socklen_t listen_addrlen;
	struct sockaddr_storage upstream_addr;
	socklen_t upstream_addrlen;
	struct sockaddr_storage admin_addr; /* when admin is set */
	socklen_t admin_addrlen;
	char upstream_hostport[300]; /* for logs */
	bool upstream_tls;           /* https:// */
	char upstream_host[256];     /* for SNI and the certificate check */
};

void config_init(struct config *cfg);
void config_reset(struct config *cfg);
/* Merge a JSON config file: its files (policy, consent, decision_log)
 * relative to its directory. Every problem goes to errs as
 * "file:line:col: message". 0 or -1. */
int config_load_file(struct config *cfg, const char *path,
                     struct cg_errors *errs);
/* Resolve addresses and check values. 0 or -1 with errs. */
int config_resolve(struct config *cfg, struct cg_errors *errs);
/* True when listeners on a and b would take the same connections: one
 * port (not 0) on the same address or a wildcard one. */
bool config_same_listener(const struct sockaddr_storage *a,
                          const struct sockaddr_storage *b);
/* Parse "HOST:PORT" ([v6]:port too) into a socket address. */
int config_parse_hostport(const char *s, struct sockaddr_storage *ss,
                          socklen_t *len, const char **err);

/* ---- server.c ---- */
struct worker;
struct server;

/*
 * A server for cfg running on snap (the caller's reference passes to it).
 * Blocks SIGTERM, SIGINT and SIGHUP in the calling thread, so every thread
 * started after it leaves them to server_run. NULL on allocation failure.
 */
struct server *server_new(const struct config *cfg, struct snapshot *snap);
/*
 * Bind one listening socket per worker on cfg->listen. Fails when any
 * other process listens on that address, also one that would share it
 * through SO_REUSEPORT (listen.c). 0, or -1 with the reason in errs
 * ("--listen: cannot listen on HOST:PORT: address already in use").
 */
int server_listen(struct server *s, struct cg_errors *errs);
/* Start the workers and run until SIGTERM/SIGINT and drained; SIGHUP
 * runs server_reload_all, SIGUSR1 reopens the logs. 0 when stopped. */
int server_run(struct server *s);
void server_free(struct server *s);
/*
 * The one reload every trigger uses (SIGHUP now; an admin endpoint and a
 * database listener later): build the next snapshot aside with new parts
 * for what (SNAPSHOT_POLICY, SNAPSHOT_CONSENT or both, from the configured
 * files) and the running ones for the rest, validate the pair, swap it in
 * and hand it to every worker; new requests use it, requests in flight
 * finish on theirs. Waits (a bounded time) until every worker took it.
 * Logs what it loaded. Returns 0, or -1 with every error in errs and the
 * running snapshot kept. Thread-safe; reloads run one at a time.
 */
int server_reload(struct server *s, unsigned what, struct cg_errors *errs);
/*
 * Install consent table t (taken: freed on failure) with the running
 * policy, as server_reload does, for a source that changes by itself (a
 * database, consent_pg.c). Not counted as a reload. 0, or -1 with errs
 * and the running snapshot kept.
 */
int server_reload_consent(struct server *s, struct consent_table *t,
                          struct cg_errors *errs);
/*
 * What SIGHUP and POST /reload do (the same function): reopen the
 * decision and access logs (as SIGUSR1 does), the TLS certificate and key
 * (when TLS is on), then server_reload of policy and consent table. Logs
 * each part; what fails keeps running. 0, or -1 with every error in errs.
 */
int server_reload_all(struct server *s, struct cg_errors *errs);
/* True once SIGTERM/SIGINT began the drain (readiness turns false). */
bool server_stopping(struct server *s);
/* How many reloads succeeded and failed since the start. */
void server_reload_counts(struct server *s, struct metrics_reloads *out);
/* The running snapshot, with a reference the caller drops. Takes a lock:
 * for the admin listener and tools, not for requests (worker_snapshot). */
struct snapshot *server_snapshot(struct server *s);
/* The port actually bound (after --listen HOST:0). */
int server_port(const struct server *s);
/* The workers (for the metrics), n of them. */
struct worker *server_workers(struct server *s, unsigned *n);
/* The TLS contexts, NULL when that side is plain (for the metrics). */
const struct tls_server *server_tls(const struct server *s);
const struct tls_client *server_upstream_tls(const struct server *s);
/* A policy whose routes name clients needs verified client identities
   (--tls-client-ca). 0, or -1 with the reason in errs. */
int server_tls_check(const struct config *cfg, const struct policy *p,
                     struct cg_errors *errs);

/* Descriptors open in the process, against its limit (RLIMIT_NOFILE). */
struct worker_fds {
	atomic_long open;
	long limit;
};

struct tls_server;
struct tls_client;

struct worker {
	struct server *server;
	struct tls_server *tls;    /* NULL: clients speak plain HTTP */
	struct tls_client *up_tls; /* NULL: the upstream is http:// */
	struct worker_fds *fds;    /* the server's, shared by every worker */
	const struct config *cfg;
	struct event_base *base;
	struct timerq *timers; /* every connection's timer (transport.c) */
	pthread_t thread;
	int listen_fd;
	struct event *accept_ev;
	struct event *accept_retry_ev;
	struct event *drain_poll_ev, *drain_deadline_ev;
	bool accept_paused;
	long accept_pause_logged; /* s (event clock) of the last pause logged */
	unsigned nconns;
	bool draining;
	struct conn *conns;         /* all client connections (list) */
	struct upstream_conn *idle; /* pooled upstream connections */
	unsigned nidle;
	uint64_t next_conn_id;
	unsigned index;
	struct evbuffer *declog;    /* builds a decision-log line */
	struct evbuffer *accesslog; /* builds an access-log line */
	struct metrics metrics;
	struct conn_request *rq_free; /* request states kept for reuse */
	unsigned nrq_free;
	struct event *drain_ev; /* activated on SIGTERM */
	/* the snapshot new requests start on, read only by this thread; a
	   reload puts the next one in snap_pending and activates snap_ev */
	struct snapshot *snap;
	_Atomic(struct snapshot *) snap_pending;
	struct event *snap_ev;
	uint64_t snap_generation; /* of snap; under the server's swap_lock */
	/* once a second: memory back to the system after a burst */
	struct event *memory_ev;
	uint64_t memory_activity, memory_trimmed_at;
};

/* The snapshot for a new request on w, with a reference the caller drops
 * when the request ends. No lock: see server.c. */
struct snapshot *worker_snapshot(struct worker *w);

/* A connection of w ended: accepting resumes when it had paused at
 * max_conns or the fd reserve. */
void worker_conn_closed(struct worker *w);
/* The worker's once-a-second tick (WORKER_MEMORY_TICK_MS): after a
 * second without activity that followed some, free heap pages go back to
 * the system (malloc_trim). */
#define WORKER_MEMORY_TICK_MS 1000
void worker_memory_tick(struct worker *w);
/* Stop accepting on w (retry_later: try again in ACCEPT_RETRY_MS, for
 * EMFILE and the fd reserve); resume unless draining. */
void worker_accept_pause(struct worker *w, bool retry_later);
void worker_accept_resume(struct worker *w);
bool worker_fds_low(struct worker *w); /* true when the fd reserve is reached */
void worker_fd_opened(struct worker *w);
void worker_fd_closed(struct worker *w);

/* ---- conn.c: one client connection ---- */
struct conn;
void conn_accept(struct worker *w, int fd, const struct sockaddr *sa,
                 socklen_t salen);
/* Ask every connection to finish its current request and close. */
void conn_drain_all(struct worker *w);
/* Close every connection at once (the worker is stopping). */
void conn_close_all(struct worker *w);
/* Free the request states the worker keeps for reuse. */
void conn_free_cache(struct worker *w);

/* ---- upstream.c: the pool and one upstream exchange ---- */
struct upstream_conn;
struct upstream_ops {
	/* response head parsed: the connection relays from now on */
	void (*on_head)(void *arg, const struct http1_response *res);
	/* response body bytes to send on (moved out of src) */
	void (*on_body)(void *arg, struct evbuffer *src, size_t n);
	/* the exchange ended: 0 complete; else an HTTP status to report
	   (502/504) when no response byte was relayed yet, or -1 when the
	   response broke after it started */
	void (*on_done)(void *arg, int result);
	/* everything queued so far was written (streamed request bodies) */
	void (*on_writable)(void *arg);
};

/* How upstream_send treats one exchange. */
enum upstream_flags {
	UPSTREAM_RETRYABLE = 1, /* may be sent again on a fresh connection if a
	                           pooled one is found dead before any response
	                           byte (idempotent, no body) */
	UPSTREAM_HEAD = 2,      /* a HEAD request: the response has no body */
	UPSTREAM_DECHUNK = 4,   /* hand a chunked body over de-chunked (the
	                           client speaks HTTP/1.0) */
};

/*
 * Send one request (head and body buffers are moved out; body may be NULL
 * for a body streamed later with upstream_write) on a pooled or new
 * connection. NULL when no connection could be started.
 *
 * The connection returns to the pool only if the request was written
 * completely (for a streamed body: up to the upstream_write marked last)
 * and the response read completely; otherwise it is closed when the
 * exchange ends (errno EMFILE or ENFILE when out of descriptors). on_head
 * may come before the request is written (an early
 * answer): the rest is still written while the response is relayed, unless
 * the caller aborts; upstream_request_written tells which case it is.
 */
struct upstream_conn *upstream_send(struct worker *w, struct evbuffer *head,
                                    struct evbuffer *body, unsigned flags,
                                    const struct upstream_ops *ops, void *arg);
/* Append more request body (streaming); data is moved out. last: these are
   the request's final bytes (the terminating chunk). After a failed write
   the data is dropped; the failure comes through on_done. */
void upstream_write(struct upstream_conn *u, struct evbuffer *data, bool last);
/* True once every byte of the request went to the kernel. From on_head it
   says whether the upstream answered before it could have read the whole
   request. */
bool upstream_request_written(const struct upstream_conn *u);
/* Request bytes queued but not yet written. */
size_t upstream_pending(const struct upstream_conn *u);
/* Abandon the exchange: the connection is closed, callbacks stop, and a
   streamed request stays incomplete at the upstream. */
void upstream_abort(struct upstream_conn *u);
/* Backpressure from the client side. */
void upstream_pause(struct upstream_conn *u);
void upstream_resume(struct upstream_conn *u);
/* Close every idle pooled connection of the worker. */
void upstream_pool_clear(struct worker *w);

/* ---- listen.c: listening sockets ---- */
/* A nonblocking listening socket on addr (its port replaced by port when
 * port > 0), with SO_REUSEPORT when reuseport. -1 with errno. */
int listen_open(const struct sockaddr_storage *addr, socklen_t len, int port,
                bool reuseport);
/* 0 when nothing listens on addr: a socket without SO_REUSEPORT binds it
 * (and is closed), so a group of another process's SO_REUSEPORT sockets
 * conflicts too. Port 0 is always free. -1 with errno (EADDRINUSE). */
int listen_probe(const struct sockaddr_storage *addr, socklen_t len);
/* 0 when every listening socket on port and an address overlapping ss is
 * one of fds[0..n); -1 (errno EADDRINUSE) when another process's is there
 * (it joined through SO_REUSEPORT). 0 when /proc/net cannot be read. */
int listen_check_alone(const struct sockaddr_storage *ss, int port,
                       const int *fds, unsigned n);
/* The port of a socket address, host order. */
int listen_addr_port(const struct sockaddr_storage *ss);

/* ---- respond.c ---- */
/* Append a complete problem+json response to out, with a Date, and
   headers (whole lines, each ending in CRLF; NULL for none) among its
   fields; extra_json adds members to the problem object. */
void respond_problem(struct evbuffer *out, int status, const char *detail,
                     bool close, const char *extra_json, const char *headers);
/* The IMF-fixdate of now (RFC 9110 5.6.7), for Date: 29 characters. */
void respond_date(char out[32]);
const char *respond_reason(int status);
/*
 * Append s[0,n) to out as the inside of a JSON string (RFC 8259 section 7):
 * '"' and '\\' get a backslash, U+0000 to U+001F are written \u00XX, and
 * every other byte (DEL, UTF-8 sequences) is copied as it is. The only JSON
 * string writer of the proxy: problem details and the decision log.
 */
void respond_json_str(struct evbuffer *out, const char *s, size_t n);

/* ---- log.c ---- */
/* A line on stderr: time, level, "consentgate:", the message. log_msg is
   info. */
void log_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
extern int log_verbose;

#endif
