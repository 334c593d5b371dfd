/*
 * server.c: listeners, worker threads, accept limits, signals, reload and
 * graceful shutdown.
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

#include "declog_internal.h"
#include "proxy_internal.h"

#define ACCEPT_BURST 64        /* accepts per readiness event */
#define ACCEPT_RETRY_MS 100    /* ms before retrying after EMFILE */
#define DRAIN_POLL_MS 20       /* ms between checks while draining */

struct server {
	const struct config *cfg;
	struct worker *workers;
	unsigned nworkers;
	pthread_mutex_t snap_lock;
	struct policy_snapshot *snap;
	atomic_long open_fds;
	long fd_limit;
	int port;
};

/* ---- file descriptor accounting ---- */

void
worker_fd_opened(struct worker *w)
{
	atomic_fetch_add(&w->server->open_fds, 1);
}

void
worker_fd_closed(struct worker *w)
{
	atomic_fetch_sub(&w->server->open_fds, 1);
}

bool
worker_fds_low(struct worker *w)
{
	return atomic_load(&w->server->open_fds) + (long)w->cfg->fd_reserve >=
	       w->server->fd_limit;
}

/* ---- accepting ---- */

static void
accept_pause(struct worker *w, bool retry_later)
{
	if (!w->accept_paused) {
		event_del(w->accept_ev);
		w->accept_paused = true;
		metrics_add(w, METRIC_ACCEPT_PAUSES, 1);
	}
	if (retry_later) {
		struct timeval tv = {0, ACCEPT_RETRY_MS * 1000};

		evtimer_add(w->accept_retry_ev, &tv);
	}
}

static void
accept_resume(struct worker *w)
{
	if (w->accept_paused && !w->draining && w->listen_fd >= 0) {
		event_add(w->accept_ev, NULL);
		w->accept_paused = false;
	}
}

static void
on_accept(evutil_socket_t lfd, short what, void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < ACCEPT_BURST; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd;

		if (w->nconns >= w->cfg->max_conns) {
			accept_pause(w, false); /* resumed when one closes */
			return;
		}
		if (worker_fds_low(w)) {
			accept_pause(w, true);
			return;
		}
		fd = accept4(lfd, (struct sockaddr *)&ss, &sl,
		             SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				log_msg(
				    "worker %u: accept: %s; pausing accepts",
				    w->index, strerror(errno));
				accept_pause(w, true);
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
	accept_resume(arg);
}

void
worker_conn_closed(struct worker *w)
{
	w->nconns--;
	if (w->accept_paused && w->nconns < w->cfg->max_conns &&
	    !worker_fds_low(w))
		accept_resume(w);
}

static int
listen_socket(const struct config *cfg, int port_override)
{
	struct sockaddr_storage ss = cfg->listen_addr;
	int fd, one = 1;

	if (port_override > 0) {
		if (ss.ss_family == AF_INET)
			((struct sockaddr_in *)&ss)->sin_port =
			    htons((uint16_t)port_override);
		else
			((struct sockaddr_in6 *)&ss)->sin6_port =
			    htons((uint16_t)port_override);
	}
	fd =
	    socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, cfg->listen_addrlen) != 0 ||
	    listen(fd, 4096) != 0) {
		close(fd);
		return -1;
	}
	return fd;
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

	log_msg("worker %u: drain deadline reached with %u connections; "
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

/* ---- the server ---- */

struct policy_snapshot *
server_snapshot(struct server *s)
{
	struct policy_snapshot *snap;

	pthread_mutex_lock(&s->snap_lock);
	snap = s->snap;
	policy_snapshot_ref(snap);
	pthread_mutex_unlock(&s->snap_lock);
	return snap;
}

int
server_port(const struct server *s)
{
	return s->port;
}

struct server *
server_new(const struct config *cfg, struct policy_snapshot *snap)
{
	struct server *s = calloc(1, sizeof(*s));
	struct rlimit rl;

	if (s == NULL)
		return NULL;
	s->cfg = cfg;
	s->snap = snap;
	pthread_mutex_init(&s->snap_lock, NULL);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
		s->fd_limit = (long)rl.rlim_cur;
	} else {
		s->fd_limit = 1024;
	}
	s->nworkers = cfg->workers;
	if (s->nworkers == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);

		s->nworkers = n > 0 ? (unsigned)n : 1;
	}
	return s;
}

static int
reload(struct server *s)
{
	struct cg_errors errs;
	struct policy *p;
	struct consent_table *t = NULL;
	struct policy_snapshot *snap, *old;
	int rc = -1;

	cg_errors_init(&errs);
	p = policy_load(s->cfg->policy_path, &errs);
	if (p != NULL)
		t = consent_open(s->cfg->consent_path, &errs);
	if (p == NULL || t == NULL || policy_check_consent(p, t, &errs) != 0) {
		for (unsigned i = 0; i < errs.count; i++)
			log_msg("reload: %s", errs.msgs[i]);
		if (errs.dropped > 0)
			log_msg("reload: (%u more errors)", errs.dropped);
		log_msg("reload failed; keeping the running policy and consent "
		        "table");
		policy_free(p);
		consent_free(t);
		goto out;
	}
	snap = policy_snapshot_new(p, t);
	if (snap == NULL)
		goto out;
	pthread_mutex_lock(&s->snap_lock);
	old = s->snap;
	s->snap = snap;
	pthread_mutex_unlock(&s->snap_lock);
	policy_snapshot_unref(old);
	log_msg("reloaded: policy %s (%s), consent snapshot version %llu, %llu "
	        "people",
	        policy_id(p), policy_digest(p),
	        (unsigned long long)consent_version(t),
	        (unsigned long long)consent_people(t));
	rc = 0;
out:
	cg_errors_reset(&errs);
	return rc;
}

int
server_run(struct server *s)
{
	const struct config *cfg = s->cfg;
	sigset_t set;
	int sig, port = 0;
	struct event **drain_evs;
	struct metrics_admin admin = {0};

	evthread_use_pthreads();
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	s->workers = calloc(s->nworkers, sizeof(*s->workers));
	drain_evs = calloc(s->nworkers, sizeof(*drain_evs));
	if (s->workers == NULL || drain_evs == NULL)
		return -1;
	for (unsigned i = 0; i < s->nworkers; i++) {
		struct worker *w = &s->workers[i];

		w->server = s;
		w->cfg = cfg;
		w->index = i;
		w->base = event_base_new();
		/* All workers bind the port the first one got (for --listen
		 * :0). */
		w->listen_fd = listen_socket(cfg, port);
		if (w->base == NULL || w->listen_fd < 0) {
			fprintf(stderr,
			        "consentgate: cannot listen on %s: %s\n",
			        cfg->listen, strerror(errno));
			return -1;
		}
		worker_fd_opened(w);
		if (port == 0) {
			struct sockaddr_storage ss;
			socklen_t sl = sizeof(ss);

			getsockname(w->listen_fd, (struct sockaddr *)&ss, &sl);
			port = ntohs(
			    ss.ss_family == AF_INET
			        ? ((struct sockaddr_in *)&ss)->sin_port
			        : ((struct sockaddr_in6 *)&ss)->sin6_port);
		}
		w->accept_ev = event_new(w->base, w->listen_fd,
		                         EV_READ | EV_PERSIST, on_accept, w);
		w->accept_retry_ev = evtimer_new(w->base, on_accept_retry, w);
		event_add(w->accept_ev, NULL);
		drain_evs[i] = event_new(w->base, -1, 0, on_drain, w);
		event_add(
		    drain_evs[i],
		    NULL); /* keeps the loop alive; activated on SIGTERM */
	}
	s->port = port;
	if (cfg->admin &&
	    metrics_admin_start(s, s->workers, s->nworkers, cfg, &admin) != 0) {
		fprintf(stderr, "consentgate: --admin: cannot listen on %s\n",
		        cfg->admin);
		return -1;
	}
	for (unsigned i = 0; i < s->nworkers; i++)
		pthread_create(&s->workers[i].thread, NULL, worker_main,
		               &s->workers[i]);
	{
		char host[128];
		const char *colon = strrchr(cfg->listen, ':');
		size_t hl = colon ? (size_t)(colon - cfg->listen) : 0;

		snprintf(host, sizeof(host), "%.*s", (int)hl, cfg->listen);
		fprintf(stderr,
		        "consentgate: listening on %s:%d (%u workers) -> %s\n",
		        host, port, s->nworkers, cfg->upstream);
	}
	for (;;) {
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			if (declog_reopen() != 0)
				log_msg("reload: cannot reopen the decision "
				        "log: %s",
				        strerror(errno));
			reload(s);
			continue;
		}
		break;
	}
	log_msg("signal %d: draining (deadline %u ms)", sig,
	        cfg->drain_timeout_ms);
	for (unsigned i = 0; i < s->nworkers; i++)
		event_active(drain_evs[i], EV_TIMEOUT, 0);
	for (unsigned i = 0; i < s->nworkers; i++)
		pthread_join(s->workers[i].thread, NULL);
	for (unsigned i = 0; i < s->nworkers; i++) {
		struct worker *w = &s->workers[i];

		conn_close_all(w);
		conn_free_cache(w);
		upstream_pool_clear(w);
		declog_worker_free(w);
		event_free(drain_evs[i]);
		event_free(w->accept_ev);
		event_free(w->accept_retry_ev);
		if (w->drain_poll_ev)
			event_free(w->drain_poll_ev);
		if (w->drain_deadline_ev)
			event_free(w->drain_deadline_ev);
		event_base_free(w->base);
		w->base = NULL;
	}
	free(drain_evs);
	metrics_admin_stop(&admin);
	log_msg("stopped");
	return 0;
}

void
server_free(struct server *s)
{
	if (s == NULL)
		return;
	/* Worker bases keep events we never tracked individually; the
	   process is exiting, so only the shared state is released here. */
	for (unsigned i = 0; s->workers && i < s->nworkers; i++) {
		if (s->workers[i].listen_fd >= 0)
			close(s->workers[i].listen_fd);
	}
	free(s->workers);
	policy_snapshot_unref(s->snap);
	pthread_mutex_destroy(&s->snap_lock);
	free(s);
}
