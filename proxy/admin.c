/*
 * admin.c: the admin listener: GET /metrics (the workers' counters in the
 * Prometheus text format, metrics.c), GET /healthz (the consent
 * snapshot's age against max_staleness_s), GET /readyz (fresh enough and
 * not draining: what a balancer asks) and POST /reload (what SIGHUP does,
 * answered with the result or every error). Other paths and methods get a
 * problem+json 404 or 405.
 *
 * It runs on a thread of its own with libevent's evhttp: it is not on the
 * request path and never sees client traffic. It reads the running
 * snapshot through server_snapshot (a lock the request path never takes).
 * The server does not know this module: serve.c starts it next to the
 * server; POST /reload calls the one reload function (server_reload_all).
 * The admin listener has no authentication: bind it to loopback or a
 * management network.
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
#include "proxy_internal.h"
#include "tls_internal.h"
#include "version_internal.h"

struct admin {
	struct server *server;
	unsigned max_staleness_s;
	struct event_base *base;
	struct evhttp *http;
	pthread_t thread;
	bool started;
	int port;
};

/* A problem+json answer (RFC 9457), as the proxy's own; allow, when
   given, is the Allow field of a 405. */
static void
admin_problem(struct evhttp_request *req, struct evbuffer *out, int status,
              const char *detail, const char *allow, const char *extra)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);

	evbuffer_drain(out, evbuffer_get_length(out));
	evbuffer_add_printf(out,
	                    "{\"type\":\"about:blank\",\"title\":\"%s\","
	                    "\"status\":%d,\"detail\":\"",
	                    respond_reason(status), status);
	respond_json_str(out, detail, strlen(detail));
	evbuffer_add_printf(out, "\"%s%s}\n", extra ? "," : "",
	                    extra ? extra : "");
	evhttp_add_header(h, "Content-Type", "application/problem+json");
	if (allow)
		evhttp_add_header(h, "Allow", allow);
	evhttp_send_reply(req, status, respond_reason(status), out);
}

/*
 * POST /reload: what SIGHUP does (server_reload_all), answered with what
 * runs now, or 422 with every error while the running one is kept.
 */
static void
admin_reload(struct admin *a, struct evhttp_request *req, struct evbuffer *out)
{
	struct cg_errors errs;
	struct snapshot *snap;
	int rc;

	cg_errors_init(&errs);
	rc = server_reload_all(a->server, &errs);
	snap = server_snapshot(a->server);
	if (rc == 0) {
		const struct policy *p = snapshot_policy(snap);

		evbuffer_add_printf(
		    out,
		    "{\"reloaded\":true,\"generation\":%llu,"
		    "\"policy\":\"",
		    (unsigned long long)snapshot_generation(snap));
		respond_json_str(out, policy_id(p), strlen(policy_id(p)));
		evbuffer_add_printf(
		    out, "\",\"digest\":\"%s\",\"consent_snapshot\":%llu}\n",
		    policy_digest(p),
		    (unsigned long long)consent_version(
		        snapshot_consent(snap)));
		evhttp_add_header(evhttp_request_get_output_headers(req),
		                  "Content-Type", "application/json");
		evhttp_send_reply(req, 200, "OK", out);
	} else {
		struct evbuffer *list = evbuffer_new();
		char *extra = NULL;
		size_t n;

		if (list != NULL) {
			ADD_LIT(list, "\"errors\":[");
			for (unsigned i = 0; i < errs.count; i++) {
				evbuffer_add_printf(list, "%s\"", i ? "," : "");
				respond_json_str(list, errs.msgs[i],
				                 strlen(errs.msgs[i]));
				ADD_LIT(list, "\"");
			}
			ADD_LIT(list, "]");
			n = evbuffer_get_length(list);
			if ((extra = malloc(n + 1)) != NULL) {
				evbuffer_remove(list, extra, n);
				extra[n] = '\0';
			}
			evbuffer_free(list);
		}
		admin_problem(req, out, 422,
		              "the reload failed; the running configuration is "
		              "kept",
		              NULL, extra);
		free(extra);
	}
	snapshot_unref(snap);
	cg_errors_reset(&errs);
}

static void
on_admin_request(struct evhttp_request *req, void *arg)
{
	struct admin *a = arg;
	const char *uri = evhttp_request_get_uri(req);
	struct evbuffer *out = evbuffer_new();
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	bool known = strcmp(uri, "/metrics") == 0 ||
	             strcmp(uri, "/healthz") == 0 ||
	             strcmp(uri, "/readyz") == 0;
	struct snapshot *snap;

	if (out == NULL) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	if (strcmp(uri, "/reload") == 0) {
		if (cmd == EVHTTP_REQ_POST)
			admin_reload(a, req, out);
		else
			admin_problem(req, out, 405, "POST /reload reloads",
			              "POST", NULL);
		evbuffer_free(out);
		return;
	}
	if (known && cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
		admin_problem(req, out, 405, "this endpoint only answers GET",
		              "GET, HEAD", NULL);
		evbuffer_free(out);
		return;
	}
	snap = server_snapshot(a->server);
	if (strcmp(uri, "/metrics") == 0) {
		unsigned n;
		struct worker *w = server_workers(a->server, &n);
		struct metrics_reloads r;

		server_reload_counts(a->server, &r);
		metrics_render(w, n, snap, &r, out);
		evbuffer_add_printf(
		    out,
		    "# HELP consentgate_build_info The running build\n"
		    "# TYPE consentgate_build_info gauge\n"
		    "consentgate_build_info{version=\"%s\",commit=\"%s\"} 1\n",
		    CG_VERSION, version_commit());
		{
			const struct tls_server *ts = server_tls(a->server);
			const struct tls_client *tc =
			    server_upstream_tls(a->server);

			metrics_render_tls(ts ? tls_server_stats(ts) : NULL,
			                   tc ? tls_client_stats(tc) : NULL,
			                   out);
		}
		metrics_render_consent(snap, out);
		metrics_render_logs(out);
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
		bool draining = server_stopping(a->server);
		bool ready =
		    !draining && (a->max_staleness_s == 0 ||
		                  age <= (long long)a->max_staleness_s);

		evbuffer_add_printf(
		    out,
		    "%s: consent snapshot version %llu, "
		    "confirmed current %llds ago\n",
		    ready      ? "ready"
		    : draining ? "not ready (draining)"
		               : "not ready",
		    (unsigned long long)consent_version(snapshot_consent(snap)),
		    age);
		evhttp_add_header(h, "Content-Type", "text/plain");
		evhttp_send_reply(req, ready ? 200 : 503,
		                  ready ? "OK" : "Service Unavailable", out);
	} else {
		admin_problem(req, out, 404,
		              "no such admin endpoint: GET /metrics, /healthz, "
		              "/readyz; POST /reload",
		              NULL, NULL);
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
