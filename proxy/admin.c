/*
 * admin.c: the admin listener: /metrics (the workers' counters in the
 * Prometheus text format, metrics.c) and /healthz (the consent snapshot's
 * age against max_staleness_s).
 *
 * It runs on a thread of its own with libevent's evhttp: it is not on the
 * request path and never sees client traffic. It reads the running
 * snapshot through server_snapshot (a lock the request path never takes).
 * The server does not know this module: serve.c starts it next to the
 * server, so a later POST /reload here calls server_reload one way only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "admin_internal.h"
#include "tls_internal.h"
#include "proxy_internal.h"

struct admin {
	struct server *server;
	unsigned max_staleness_s;
	struct event_base *base;
	struct evhttp *http;
	pthread_t thread;
	bool started;
	int port;
};

static void
on_admin_request(struct evhttp_request *req, void *arg)
{
	struct admin *a = arg;
	const char *uri = evhttp_request_get_uri(req);
	struct evbuffer *out = evbuffer_new();
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	struct snapshot *snap;

	if (out == NULL) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	snap = server_snapshot(a->server);
	if (strcmp(uri, "/metrics") == 0) {
		unsigned n;
		struct worker *w = server_workers(a->server, &n);
		struct metrics_reloads r;

		server_reload_counts(a->server, &r);
		metrics_render(w, n, snap, &r, out);
		{
			const struct tls_server *ts = server_tls(a->server);
			const struct tls_client *tc =
			    server_upstream_tls(a->server);

			metrics_render_tls(ts ? tls_server_stats(ts) : NULL,
			                   tc ? tls_client_stats(tc) : NULL, out);
		}
		metrics_render_consent(snap, out);
		evhttp_add_header(h, "Content-Type",
		                  "text/plain; version=0.0.4");
		evhttp_send_reply(req, 200, "OK", out);
	} else if (strcmp(uri, "/healthz") == 0) {
		long long age =
		    (long long)(time(NULL) -
		                consent_created_at(snapshot_consent(snap)));
		bool stale = a->max_staleness_s > 0 &&
		             age > (long long)a->max_staleness_s;

		evbuffer_add_printf(out, "%s: consent snapshot age %llds\n",
		                    stale ? "stale" : "ok", age);
		evhttp_add_header(h, "Content-Type", "text/plain");
		evhttp_send_reply(req, stale ? 503 : 200,
		                  stale ? "Service Unavailable" : "OK", out);
	} else if (strcmp(uri, "/readyz") == 0) {
		/* ready: the consent table was confirmed current within
		   max_staleness_s (a balancer takes this instance out of
		   rotation before its inspected requests get 503) */
		long long age =
		    (long long)(time(NULL) -
		                consent_created_at(snapshot_consent(snap)));
		bool ready = a->max_staleness_s == 0 ||
		             age <= (long long)a->max_staleness_s;

		evbuffer_add_printf(
		    out,
		    "%s: consent snapshot version %llu, "
		    "confirmed current %llds ago\n",
		    ready ? "ready" : "not ready",
		    (unsigned long long)consent_version(snapshot_consent(snap)),
		    age);
		evhttp_add_header(h, "Content-Type", "text/plain");
		evhttp_send_reply(req, ready ? 200 : 503,
		                  ready ? "OK" : "Service Unavailable", out);
	} else {
		evhttp_send_error(req, 404,
		                  "try /metrics, /healthz or /readyz");
	}
	snapshot_unref(snap);
	evbuffer_free(out);
}

static void *
admin_main(void *arg)
{
	event_base_dispatch(arg);
	return NULL;
}

struct admin *
admin_start(struct server *s, const struct config *cfg, struct cg_errors *errs)
{
	struct admin *a = calloc(1, sizeof(*a));
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int fd = -1;

	if (a == NULL)
		goto fail;
	a->server = s;
	a->max_staleness_s = cfg->max_staleness_s;
	/* no SO_REUSEPORT: nobody may share the admin address either */
	fd = listen_open(&cfg->admin_addr, cfg->admin_addrlen, 0, false);
	if (fd < 0) {
		cg_errors_add(errs, "--admin", 0, 0, "cannot listen on %s: %s",
		              cfg->admin,
		              errno == EADDRINUSE ? "address already in use"
		                                  : strerror(errno));
		goto fail;
	}
	getsockname(fd, (struct sockaddr *)&ss, &sl);
	a->port = listen_addr_port(&ss);
	a->base = event_base_new();
	a->http = a->base ? evhttp_new(a->base) : NULL;
	if (a->http == NULL ||
	    evhttp_accept_socket_with_handle(a->http, fd) == NULL) {
		cg_errors_add(errs, "--admin", 0, 0, "cannot serve on %s",
		              cfg->admin);
		goto fail;
	}
	fd = -1; /* evhttp closes it */
	evhttp_set_gencb(a->http, on_admin_request, a);
	if (pthread_create(&a->thread, NULL, admin_main, a->base) != 0) {
		cg_errors_add(errs, "--admin", 0, 0, "cannot start its thread");
		goto fail;
	}
	a->started = true;
	return a;
fail:
	if (fd >= 0)
		close(fd);
	admin_stop(a);
	return NULL;
}

int
admin_port(const struct admin *a)
{
	return a->port;
}

void
admin_stop(struct admin *a)
{
	if (a == NULL)
		return;
	if (a->started) {
		event_base_loopexit(a->base, NULL);
		pthread_join(a->thread, NULL);
	}
	if (a->http)
		evhttp_free(a->http);
	if (a->base)
		event_base_free(a->base);
	free(a);
}
