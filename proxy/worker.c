/*
 * worker.c: what a worker thread's connections ask of it: descriptors
 * opened and closed against the process's budget (accepting pauses at the
 * reserve instead of failing), accept pauses and resumes, and the snapshot
 * a new request starts on. conn.c and upstream.c call these; server.c owns
 * the threads, the listeners and the reload, and calls conn_accept.
 */
#include <malloc.h>

#include "conn_request_internal.h"
#include "proxy_internal.h"

#define ACCEPT_RETRY_MS 100   /* ms before retrying after EMFILE */
#define ACCEPT_PAUSE_LOG_S 10 /* s between two pause log lines per worker */

/* AddressSanitizer brings its own allocator: glibc's malloc_trim would
   walk arenas nothing allocated from (and crashes doing so) */
#if defined(__SANITIZE_ADDRESS__)
#define TRIM_HEAP 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TRIM_HEAP 0
#endif
#endif
#ifndef TRIM_HEAP
#define TRIM_HEAP 1
#endif

void
worker_fd_opened(struct worker *w)
{
	atomic_fetch_add(&w->fds->open, 1);
}

void
worker_fd_closed(struct worker *w)
{
	atomic_fetch_sub(&w->fds->open, 1);
}

bool
worker_fds_low(struct worker *w)
{
	return atomic_load(&w->fds->open) + (long)w->cfg->fd_reserve >=
	       w->fds->limit;
}

void
worker_accept_pause(struct worker *w, bool retry_later)
{
	if (!w->accept_paused) {
		struct timeval now;

		event_del(w->accept_ev);
		w->accept_paused = true;
		metrics_add(w, METRIC_ACCEPT_PAUSES, 1);
		/* at the reserve a pause recurs every retry: log one of them */
		event_base_gettimeofday_cached(w->base, &now);
		if (w->accept_pause_logged == 0 ||
		    now.tv_sec - w->accept_pause_logged >= ACCEPT_PAUSE_LOG_S) {
			w->accept_pause_logged = now.tv_sec;
			log_warn("worker %u: pausing accepts: %u connections "
			         "(max_conns %u), %ld of %ld descriptors open "
			         "(fd_reserve %u)",
			         w->index, w->nconns, w->cfg->max_conns,
			         atomic_load(&w->fds->open), w->fds->limit,
			         w->cfg->fd_reserve);
		}
	}
	if (retry_later) {
		struct timeval tv = {0, ACCEPT_RETRY_MS * 1000};

		evtimer_add(w->accept_retry_ev, &tv);
	}
}

void
worker_accept_resume(struct worker *w)
{
	if (w->accept_paused && !w->draining && w->listen_fd >= 0) {
		event_add(w->accept_ev, NULL);
		w->accept_paused = false;
	}
}

void
worker_conn_closed(struct worker *w)
{
	w->nconns--;
	if (w->accept_paused && w->nconns < w->cfg->max_conns &&
	    !worker_fds_low(w))
		worker_accept_resume(w);
}

/*
 * glibc keeps the pages of freed chunks below the heap's top, so after a
 * burst (thousands of requests at once, their buffers freed) the RSS stays
 * at the burst's peak while the connections idle on. A second with no
 * accept, request or close, after a second that had some, is the time to
 * give them back, with the request states kept for reuse: malloc_trim is
 * then a walk over free chunks, not a cost on any request, and it runs
 * once per quiet spell, not once a second.
 */
void
worker_memory_tick(struct worker *w)
{
	const atomic_uint_least64_t *v = w->metrics.v;
	uint64_t activity =
	    atomic_load_explicit(&v[METRIC_ACCEPTS], memory_order_relaxed) +
	    atomic_load_explicit(&v[METRIC_REQUESTS], memory_order_relaxed) +
	    w->nconns;

	if (activity == w->memory_activity &&
	    activity != w->memory_trimmed_at) {
		conn_request_cache_free(w); /* 9 KiB each: made again at need */
		if (TRIM_HEAP)
			malloc_trim(0);
		w->memory_trimmed_at = activity;
	}
	w->memory_activity = activity;
}

struct snapshot *
worker_snapshot(struct worker *w)
{
	snapshot_ref(w->snap);
	return w->snap;
}
