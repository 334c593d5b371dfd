/*
 * server.c: worker threads, accept limits, signals, the one reload every
 * trigger uses, and graceful shutdown.
 * Sockets are read and written by transport.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <event2/thread.h>

#include "consent_pg_internal.h"
#include "accesslog_internal.h"
#include "declog_internal.h"
#include "proxy_internal.h"
#include "tls_internal.h"
#include "transport_internal.h"

#define ACCEPT_BURST 64  /* accepts per readiness event */
#define DRAIN_POLL_MS 20 /* ms between checks while draining */

struct server {
	const struct config *cfg;
	struct worker *workers;
	unsigned nworkers;
	/* the running snapshot, the base of the next reload; workers run on
	   their own copies (w->snap). snap_lock guards the pointer for
	   readers off the request path (the admin listener); reload_lock
	   makes reloads one at a time */
	pthread_mutex_t snap_lock, reload_lock;
	struct snapshot *snap;
	bool stopping;
	/* a reload waits on swapped until every worker took its snapshot */
	pthread_mutex_t swap_lock;
	pthread_cond_t swapped;
	struct worker_fds fds; /* shared by the workers: w->fds */
	int port;
	atomic_uint_least64_t reloads_ok, reloads_failed; /* for /metrics */
	struct tls_server *tls;    /* --tls-cert: clients speak TLS */
	struct tls_client *up_tls; /* an https:// upstream */
};

/* ---- accepting ---- */

static void
on_accept(evutil_socket_t lfd, short what, void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < ACCEPT_BURST; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd;

		if (w->nconns >= w->cfg->max_conns) {
			worker_accept_pause(
			    w, false); /* resumed when one closes */
			return;
		}
		if (worker_fds_low(w)) {
			worker_accept_pause(w, true);
			return;
		}
		fd = accept4(lfd, (struct sockaddr *)&ss, &sl,
		             SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				log_warn(
				    "worker %u: accept: %s; pausing accepts",
				    w->index, strerror(errno));
				worker_accept_pause(w, true);
			}
			return; /* EAGAIN, ECONNABORTED, ...: wait for the next
			           event */
		}
		worker_fd_opened(w);
		conn_accept(w, fd, (struct sockaddr *)&ss, sl);
	}
}

static void
on_accept_retry(evutil_socket_t fd, short what, void *arg)
{
	worker_accept_resume(arg);
}

static void
on_memory_tick(evutil_socket_t fd, short what, void *arg)
{
	worker_memory_tick(arg);
}

/* ---- draining ---- */

static void
on_drain_poll(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	if (w->nconns == 0)
		event_base_loopbreak(w->base);
}

static void
on_drain_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	log_warn("worker %u: drain deadline reached with %u connections; "
	         "closing them",
	         w->index, w->nconns);
	event_base_loopbreak(w->base);
}

static void
on_drain(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct timeval poll = {0, DRAIN_POLL_MS * 1000};
	struct timeval deadline = {w->cfg->drain_timeout_ms / 1000,
	                           (w->cfg->drain_timeout_ms % 1000) * 1000};

	w->draining = true;
	if (!w->accept_paused)
		event_del(w->accept_ev);
	w->accept_paused = true;
	evtimer_del(w->accept_retry_ev);
	if (w->listen_fd >= 0) {
		close(w->listen_fd);
		w->listen_fd = -1;
	}
	conn_drain_all(w);
	upstream_pool_clear(w);
	w->drain_poll_ev = event_new(w->base, -1, EV_PERSIST, on_drain_poll, w);
	w->drain_deadline_ev = evtimer_new(w->base, on_drain_deadline, w);
	event_add(w->drain_poll_ev, &poll);
	event_add(w->drain_deadline_ev, &deadline);
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;

	event_base_loop(w->base, 0);
	return NULL;
}

/* ---- snapshots: how a worker takes a new one ----
 *
 * Each worker keeps its own current snapshot (w->snap) and starts every
 * request on it with one reference count increment, on a snapshot object
 * no other worker touches (snapshot_share): no lock, no shared cache line
 * on the request path. A reload hands each worker the new snapshot through
 * the worker's own event loop: it stores the pointer in the worker's
 * atomic slot and activates the worker's snapshot event; the worker swaps
 * its pointer between two callbacks, so a request never sees half a swap,
 * and drops its reference on the old one, which is freed when the last
 * request on it ends. The slot holds only the newest pointer (two reloads
 * before the worker runs activate the event once; the older snapshot is
 * released by the reload that supersedes it). We chose this over an atomic
 * global pointer: reading it and taking a reference are two steps, and
 * closing the gap between them needs hazard pointers or epochs, while the
 * event loop already gives every worker a point where it holds no pointer
 * half-read.
 */

#define RELOAD_WAIT_MS 2000 /* ms a reload waits for every worker to swap */

static void
on_snapshot(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct server *s = w->server;
	struct snapshot *next = atomic_exchange(&w->snap_pending, NULL);

	if (next == NULL)
		return;
	snapshot_unref(w->snap); /* requests in flight keep their own */
	w->snap = next;
	pthread_mutex_lock(&s->swap_lock);
	w->snap_generation = snapshot_generation(next);
	pthread_cond_broadcast(&s->swapped);
	pthread_mutex_unlock(&s->swap_lock);
}

/* Give every worker its own copy of snap, through its event loop. */
static void
hand_over(struct server *s, struct snapshot *snap)
{
	for (unsigned i = 0; i < s->nworkers; i++) {
		struct worker *w = &s->workers[i];
		struct snapshot *mine = snapshot_share(snap), *old;

		if (mine == NULL) { /* out of memory: share the count */
			snapshot_ref(snap);
			mine = snap;
		}
		old = atomic_exchange(&w->snap_pending, mine);
		snapshot_unref(old); /* superseded before the worker took it */
		event_active(w->snap_ev, EV_READ, 0);
	}
}

/* Wait until every worker runs on generation gen; false after the
 * deadline (a worker busy for that long takes it at its next turn). */
static bool
wait_swapped(struct server *s, uint64_t gen)
{
	struct timespec deadline;
	bool all = false;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += RELOAD_WAIT_MS / 1000;
	deadline.tv_nsec += (long)(RELOAD_WAIT_MS % 1000) * 1000000;
	if (deadline.tv_nsec >= 1000000000) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&s->swap_lock);
	for (;;) {
		all = true;
		for (unsigned i = 0; i < s->nworkers && all; i++)
			all = s->workers[i].snap_generation >= gen;
		if (all || pthread_cond_timedwait(&s->swapped, &s->swap_lock,
		                                  &deadline) != 0)
			break;
	}
	pthread_mutex_unlock(&s->swap_lock);
	return all;
}

/* Make next (the caller's reference) the running snapshot and hand it to
 * every worker; under reload_lock. False when a worker did not take it in
 * time (it does at its next turn). */
static bool
swap_in(struct server *s, struct snapshot *next)
{
	struct snapshot *old;

	pthread_mutex_lock(&s->snap_lock);
	old = s->snap;
	s->snap = next;
	pthread_mutex_unlock(&s->snap_lock);
	snapshot_unref(old);
	hand_over(s, next);
	return wait_swapped(s, snapshot_generation(next));
}

static const char *const part_names[] = {
    [SNAPSHOT_POLICY] = "policy",
    [SNAPSHOT_CONSENT] = "consent table",
    [SNAPSHOT_BOTH] = "policy and consent table",
};

/* The rule file's warnings, what consentgate check prints (shadow mode,
   routes that could take another spelling of an inspected path): in the
   log at start and at each reload of the policy, not only in check. */
static void
log_policy_warnings(const struct policy *p)
{
	const struct cg_errors *w = policy_warnings(p);

	for (unsigned i = 0; i < w->count; i++)
		log_warn("policy: %s", w->msgs[i]);
}

int
server_reload(struct server *s, unsigned what, struct cg_errors *errs)
{
	struct snapshot *next;
	const struct policy *p;
	const struct consent_table *t;
	int rc = -1;

	what &= SNAPSHOT_BOTH;
	if (what == 0)
		what = SNAPSHOT_BOTH;
	/* a database keeps the table current itself (consent_pg.c) */
	if (consent_pg_is_url(s->cfg->consent_path))
		what = SNAPSHOT_POLICY;
	pthread_mutex_lock(&s->reload_lock);
	if (s->stopping) {
		cg_errors_add(errs, "reload", 0, 0,
		              "consentgate is stopping; nothing reloaded");
		goto out;
	}
	/* only reloads write s->snap, and they hold reload_lock */
	next = snapshot_load(s->snap, what, s->cfg->policy_path,
	                     s->cfg->consent_path, errs);
	if (next == NULL)
		goto out;
	if (server_tls_check(s->cfg, snapshot_policy(next), errs) != 0) {
		snapshot_unref(next);
		goto out;
	}
	if (what & SNAPSHOT_POLICY)
		metrics_policy_loaded(snapshot_policy(next));
	/* logged once the workers have it: a request sent after the line is
	   decided by it */
	if (!swap_in(s, next))
		log_msg("reload: a worker is busy; it takes generation %llu "
		        "at its next turn",
		        (unsigned long long)snapshot_generation(next));
	p = snapshot_policy(next);
	t = snapshot_consent(next);
	log_msg("reloaded %s (generation %llu): policy %s (%s), consent "
	        "snapshot version %llu, %llu people",
	        part_names[what], (unsigned long long)snapshot_generation(next),
	        policy_id(p), policy_digest(p),
	        (unsigned long long)consent_version(t),
	        (unsigned long long)consent_people(t));
	if (what & SNAPSHOT_POLICY)
		log_policy_warnings(p);
	rc = 0;
out:
	atomic_fetch_add(rc == 0 ? &s->reloads_ok : &s->reloads_failed, 1);
	pthread_mutex_unlock(&s->reload_lock);
	return rc;
}

int
server_reload_consent(struct server *s, struct consent_table *t,
                      struct cg_errors *errs)
{
	struct snapshot *next = NULL;
	int rc = -1;

	pthread_mutex_lock(&s->reload_lock);
	if (s->stopping) {
		consent_free(t);
		goto out;
	}
	next = snapshot_replace(s->snap, NULL, t); /* t is next's (or freed) */
	if (next == NULL) {
		cg_errors_add(errs, "reload", 0, 0, "out of memory");
		goto out;
	}
	if (policy_check_consent(snapshot_policy(next), t, errs) != 0) {
		snapshot_unref(next);
		goto out;
	}
	(void)swap_in(s, next);
	rc = 0;
out:
	pthread_mutex_unlock(&s->reload_lock);
	return rc;
}

/* The errors from index from on, in the log (a reload has no terminal). */
static void
log_errors_from(const struct cg_errors *errs, unsigned from)
{
	for (unsigned i = from; i < errs->count; i++)
		log_error("reload: %s", errs->msgs[i]);
	if (errs->dropped > 0)
		log_error("reload: (%u more errors)", errs->dropped);
}

/* SIGUSR1 (and every reload): the decision and access logs again at
   their paths, after logrotate moved them. */
static void
server_reopen_logs(void)
{
	if (declog_reopen() != 0)
		log_error("cannot reopen the decision log: %s",
		          strerror(errno));
	if (accesslog_reopen() != 0)
		log_error("cannot reopen the access log: %s", strerror(errno));
}

int
server_reload_all(struct server *s, struct cg_errors *errs)
{
	unsigned before = errs->count;
	int rc = 0;

	server_reopen_logs();
	if (s->tls != NULL) {
		if (tls_server_reload(s->tls, errs) == 0) {
			log_msg("reloaded the TLS certificate and key");
		} else {
			log_errors_from(errs, before);
			log_error("TLS reload failed; keeping the running "
			          "certificate and key");
			rc = -1;
		}
	}
	before = errs->count;
	if (server_reload(s, SNAPSHOT_BOTH, errs) != 0) {
		log_errors_from(errs, before);
		log_error("reload failed; keeping the running policy and "
		          "consent table");
		rc = -1;
	}
	return rc;
}

bool
server_stopping(struct server *s)
{
	bool stopping;

	pthread_mutex_lock(&s->reload_lock);
	stopping = s->stopping;
	pthread_mutex_unlock(&s->reload_lock);
	return stopping;
}

void
server_reload_counts(struct server *s, struct metrics_reloads *out)
{
	out->ok = atomic_load(&s->reloads_ok);
	out->failed = atomic_load(&s->reloads_failed);
}

/* ---- the server ---- */

struct snapshot *
server_snapshot(struct server *s)
{
	struct snapshot *snap;

	pthread_mutex_lock(&s->snap_lock);
	snap = s->snap;
	snapshot_ref(snap);
	pthread_mutex_unlock(&s->snap_lock);
	return snap;
}

int
server_port(const struct server *s)
{
	return s->port;
}

int
server_tls_check(const struct config *cfg, const struct policy *p,
                 struct cg_errors *errs)
{
	for (unsigned i = 0; i < route_count(p); i++) {
		const struct policy_route *r = route_at(p, i);

		if (route_client_count(r) > 0 && cfg->tls_client_ca == NULL) {
			cg_errors_add(errs, "--tls-client-ca", 0, 0,
			              "route '%s' takes only the clients it "
			              "names, but without --tls-client-ca no "
			              "client has a verified identity",
			              route_name(r));
			return -1;
		}
	}
	return 0;
}

const struct tls_server *
server_tls(const struct server *s)
{
	return s->tls;
}

const struct tls_client *
server_upstream_tls(const struct server *s)
{
	return s->up_tls;
}

struct worker *
server_workers(struct server *s, unsigned *n)
{
	*n = s->nworkers;
	return s->workers;
}

struct server *
server_new(const struct config *cfg, struct snapshot *snap)
{
	struct server *s = calloc(1, sizeof(*s));
	struct rlimit rl;
	sigset_t set;

	if (s == NULL)
		return NULL;
	/* before any thread (workers, admin) exists, so all inherit it:
	   signals are taken by server_run's sigwait alone */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	evthread_use_pthreads(); /* before any event_base */
	s->cfg = cfg;
	s->snap = snap;
	pthread_mutex_init(&s->snap_lock, NULL);
	pthread_mutex_init(&s->reload_lock, NULL);
	pthread_mutex_init(&s->swap_lock, NULL);
	pthread_cond_init(&s->swapped, NULL);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
		s->fds.limit = (long)rl.rlim_cur;
	} else {
		s->fds.limit = 1024;
	}
	s->nworkers = cfg->workers;
	if (s->nworkers == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);

		s->nworkers = n > 0 ? (unsigned)n : 1;
	}
	s->workers = calloc(s->nworkers, sizeof(*s->workers));
	if (s->workers == NULL) {
		free(s);
		return NULL;
	}
	for (unsigned i = 0; i < s->nworkers; i++)
		s->workers[i].listen_fd = -1;
	return s;
}

int
server_listen(struct server *s, struct cg_errors *errs)
{
	const struct config *cfg = s->cfg;
	int port = listen_addr_port(&cfg->listen_addr);
	int *fds = calloc(s->nworkers, sizeof(*fds));
	int rc = -1;

	if (fds == NULL)
		goto out;
	/* certificate and key errors are fatal before anything listens */
	if (server_tls_check(cfg, snapshot_policy(s->snap), errs) != 0)
		goto out;
	if (cfg->tls_cert != NULL &&
	    (s->tls = tls_server_new(cfg, errs)) == NULL)
		goto out;
	if (cfg->upstream_tls &&
	    (s->up_tls = tls_client_new(cfg, errs)) == NULL)
		goto out;
	/* another listener there, SO_REUSEPORT or not (see listen.c) */
	if (listen_probe(&cfg->listen_addr, cfg->listen_addrlen) != 0) {
		cg_errors_add(errs, "--listen", 0, 0, "cannot listen on %s: %s",
		              cfg->listen,
		              errno == EADDRINUSE ? "address already in use"
		                                  : strerror(errno));
		goto out;
	}
	for (unsigned i = 0; i < s->nworkers; i++) {
		struct worker *w = &s->workers[i];

		w->server = s;
		w->fds = &s->fds;
		w->cfg = cfg;
		w->index = i;
		w->tls = s->tls;
		w->up_tls = s->up_tls;
		w->base = event_base_new();
		w->timers = w->base ? transport_timers_new(w->base) : NULL;
		/* all workers bind the port the first one got (for --listen
		   HOST:0) */
		w->listen_fd = listen_open(&cfg->listen_addr,
		                           cfg->listen_addrlen, port, true);
		if (w->base == NULL || w->timers == NULL || w->listen_fd < 0) {
			cg_errors_add(errs, "--listen", 0, 0,
			              "cannot listen on %s: %s", cfg->listen,
			              errno == EADDRINUSE
			                  ? "address already in use"
			                  : strerror(errno));
			goto out;
		}
		fds[i] = w->listen_fd;
		worker_fd_opened(w);
		if (port == 0) {
			struct sockaddr_storage ss;
			socklen_t sl = sizeof(ss);

			getsockname(w->listen_fd, (struct sockaddr *)&ss, &sl);
			port = listen_addr_port(&ss);
		}
		w->accept_ev = event_new(w->base, w->listen_fd,
		                         EV_READ | EV_PERSIST, on_accept, w);
		w->accept_retry_ev = evtimer_new(w->base, on_accept_retry, w);
		w->drain_ev = event_new(w->base, -1, 0, on_drain, w);
		w->snap_ev = event_new(w->base, -1, EV_PERSIST, on_snapshot, w);
		w->memory_ev =
		    event_new(w->base, -1, EV_PERSIST, on_memory_tick, w);
		if (w->accept_ev == NULL || w->accept_retry_ev == NULL ||
		    w->drain_ev == NULL || w->snap_ev == NULL ||
		    w->memory_ev == NULL) {
			cg_errors_add(errs, "--listen", 0, 0, "out of memory");
			goto out;
		}
		event_add(w->accept_ev, NULL);
		/* both keep the loop alive; activated on SIGTERM and reload */
		event_add(w->drain_ev, NULL);
		event_add(w->snap_ev, NULL);
		event_add(
		    w->memory_ev,
		    &(struct timeval){WORKER_MEMORY_TICK_MS / 1000,
		                      WORKER_MEMORY_TICK_MS % 1000 * 1000});
		w->snap = snapshot_share(s->snap);
		if (w->snap == NULL) {
			cg_errors_add(errs, "--listen", 0, 0, "out of memory");
			goto out;
		}
		w->snap_generation = snapshot_generation(w->snap);
	}
	if (listen_check_alone(&cfg->listen_addr, port, fds, s->nworkers) !=
	    0) {
		cg_errors_add(errs, "--listen", 0, 0,
		              "cannot listen on %s: address already in use "
		              "(another process joined the port as consentgate "
		              "started)",
		              cfg->listen);
		goto out;
	}
	s->port = port;
	rc = 0;
out:
	free(fds);
	return rc;
}

/* SIGHUP: what POST /reload does (server_reload_all); what fails keeps
   running as it was. */
static void
server_hup(struct server *s)
{
	struct cg_errors errs;

	cg_errors_init(&errs);
	server_reload_all(s, &errs);
	cg_errors_reset(&errs);
}

int
server_run(struct server *s)
{
	const struct config *cfg = s->cfg;
	sigset_t set;
	int sig;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	for (unsigned i = 0; i < s->nworkers; i++)
		pthread_create(&s->workers[i].thread, NULL, worker_main,
		               &s->workers[i]);
	{
		char host[128];
		const char *colon = strrchr(cfg->listen, ':');
		size_t hl = colon ? (size_t)(colon - cfg->listen) : 0;

		snprintf(host, sizeof(host), "%.*s", (int)hl, cfg->listen);
		/* a reference: POST /reload may already swap s->snap */
		struct snapshot *snap = server_snapshot(s);
		const struct policy *p = snapshot_policy(snap);

		metrics_policy_loaded(p);
		/* one line with what runs: harness.py and bench/ read the
		   port from its start */
		log_msg("listening on %s:%d (%u worker%s) -> %s; "
		        "policy %s digest %s; consent snapshot %llu",
		        host, s->port, s->nworkers, s->nworkers == 1 ? "" : "s",
		        cfg->upstream, policy_id(p), policy_digest(p),
		        (unsigned long long)consent_version(
		            snapshot_consent(snap)));
		log_policy_warnings(p);
		snapshot_unref(snap);
	}
	for (;;) {
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			server_hup(s);
			continue;
		}
		if (sig == SIGUSR1) {
			server_reopen_logs();
			continue;
		}
		break;
	}
	pthread_mutex_lock(&s->reload_lock);
	s->stopping = true; /* no reload hands over to a stopped worker */
	pthread_mutex_unlock(&s->reload_lock);
	log_msg("signal %d: draining (deadline %u ms)", sig,
	        cfg->drain_timeout_ms);
	for (unsigned i = 0; i < s->nworkers; i++)
		event_active(s->workers[i].drain_ev, EV_TIMEOUT, 0);
	for (unsigned i = 0; i < s->nworkers; i++)
		pthread_join(s->workers[i].thread, NULL);
	for (unsigned i = 0; i < s->nworkers; i++) {
		struct worker *w = &s->workers[i];

		conn_close_all(w);
		conn_free_cache(w);
		upstream_pool_clear(w);
		declog_worker_free(w);
		if (w->accesslog)
			evbuffer_free(w->accesslog);
		w->accesslog = NULL;
	}
	log_msg("stopped");
	return 0;
}

void
server_free(struct server *s)
{
	if (s == NULL)
		return;
	for (unsigned i = 0; i < s->nworkers; i++) {
		struct worker *w = &s->workers[i];
		struct event *evs[] = {w->drain_ev,         w->snap_ev,
		                       w->memory_ev,        w->accept_ev,
		                       w->accept_retry_ev,  w->drain_poll_ev,
		                       w->drain_deadline_ev};

		if (w->listen_fd >= 0)
			close(w->listen_fd);
		for (size_t k = 0; k < sizeof(evs) / sizeof(evs[0]); k++)
			if (evs[k] != NULL)
				event_free(evs[k]);
		timerq_free(w->timers);
		if (w->base)
			event_base_free(w->base);
		snapshot_unref(atomic_exchange(&w->snap_pending, NULL));
		snapshot_unref(w->snap);
	}
	free(s->workers);
	tls_server_free(s->tls);
	tls_client_free(s->up_tls);
	snapshot_unref(s->snap);
	pthread_mutex_destroy(&s->snap_lock);
	pthread_mutex_destroy(&s->reload_lock);
	pthread_mutex_destroy(&s->swap_lock);
	pthread_cond_destroy(&s->swapped);
	free(s);
}
