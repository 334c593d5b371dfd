/*
 * metrics.c: counters every worker keeps without locks (relaxed atomics on
 * its own cache lines), and the admin listener that serves them in the
 * Prometheus text format (/metrics) with a health check (/healthz).
 *
 * The admin listener runs on a thread of its own with libevent's evhttp:
 * it is not on the request path and never sees client traffic.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "metrics_internal.h"
#include "proxy_internal.h"

static const struct {
	const char *name, *labels, *help;
} metric_info[METRIC_COUNT] = {
    [METRIC_REQUESTS] = {"consentgate_requests_total", "",
                         "Requests whose head was read"},
    [METRIC_RESP_1XX] = {"consentgate_responses_total", "code=\"1xx\"",
                         "Responses sent to clients by class"},
    [METRIC_RESP_2XX] = {"consentgate_responses_total", "code=\"2xx\"", NULL},
    [METRIC_RESP_3XX] = {"consentgate_responses_total", "code=\"3xx\"", NULL},
    [METRIC_RESP_4XX] = {"consentgate_responses_total", "code=\"4xx\"", NULL},
    [METRIC_RESP_5XX] = {"consentgate_responses_total", "code=\"5xx\"", NULL},
    [METRIC_OUT_FORWARDED] = {"consentgate_inspected_requests_total",
                              "outcome=\"forwarded\"",
                              "Inspected requests by outcome"},
    [METRIC_OUT_ALL_DROPPED] = {"consentgate_inspected_requests_total",
                                "outcome=\"all-dropped\"", NULL},
    [METRIC_OUT_BLOCKED] = {"consentgate_inspected_requests_total",
                            "outcome=\"blocked\"", NULL},
    [METRIC_OUT_REFUSED] = {"consentgate_inspected_requests_total",
                            "outcome=\"refused\"", NULL},
    [METRIC_OUT_UPSTREAM_FAILED] = {"consentgate_inspected_requests_total",
                                    "outcome=\"upstream-failed\"", NULL},
    [METRIC_RECORDS_KEPT] = {"consentgate_records_total", "decision=\"kept\"",
                             "Records decided, by decision"},
    [METRIC_RECORDS_DROPPED] = {"consentgate_records_total",
                                "decision=\"dropped\"", NULL},
    [METRIC_UPSTREAM_CONNECTS] = {"consentgate_upstream_connects_total", "",
                                  "Connections opened to the upstream"},
    [METRIC_UPSTREAM_ERRORS] =
        {"consentgate_upstream_errors_total", "",
         "Upstream exchanges that failed (refused, timed out, broken)"},
    [METRIC_ACCEPTS] = {"consentgate_accepted_connections_total", "",
                        "Client connections accepted"},
    [METRIC_ACCEPT_PAUSES] =
        {"consentgate_accept_pauses_total", "",
         "Times accepting paused at max_conns or the fd reserve"},
};

void
metrics_add(struct worker *w, enum metric m, uint64_t n)
{
	atomic_fetch_add_explicit(&w->metrics.v[m], n, memory_order_relaxed);
}

void
metrics_response(struct worker *w, int status)
{
	if (status >= 100 && status < 600)
		metrics_add(
		    w, (enum metric)(METRIC_RESP_1XX + status / 100 - 1), 1);
}

void
metrics_render(struct server *s, struct worker *workers, unsigned n,
               struct evbuffer *out)
{
	struct policy_snapshot *snap = server_snapshot(s);
	const struct policy *p = policy_snapshot_policy(snap);
	const struct consent_table *t = policy_snapshot_consent(snap);
	uint64_t active = 0;

	for (int m = 0; m < METRIC_COUNT; m++) {
		uint64_t sum = 0;

		for (unsigned i = 0; i < n; i++)
			sum += atomic_load_explicit(&workers[i].metrics.v[m],
			                            memory_order_relaxed);
		if (metric_info[m].help)
			evbuffer_add_printf(
			    out, "# HELP %s %s\n# TYPE %s counter\n",
			    metric_info[m].name, metric_info[m].help,
			    metric_info[m].name);
		evbuffer_add_printf(
		    out, "%s%s%s%s %llu\n", metric_info[m].name,
		    *metric_info[m].labels ? "{" : "", metric_info[m].labels,
		    *metric_info[m].labels ? "}" : "", (unsigned long long)sum);
	}
	for (unsigned i = 0; i < n; i++)
		active += atomic_load_explicit(&workers[i].metrics.active_conns,
		                               memory_order_relaxed);
	evbuffer_add_printf(
	    out,
	    "# HELP consentgate_connections Client connections open now\n"
	    "# TYPE consentgate_connections gauge\n"
	    "consentgate_connections %llu\n"
	    "# HELP consentgate_consent_snapshot_age_seconds Age of the "
	    "consent snapshot in use\n"
	    "# TYPE consentgate_consent_snapshot_age_seconds gauge\n"
	    "consentgate_consent_snapshot_age_seconds %lld\n"
	    "# HELP consentgate_consent_people People in the consent snapshot "
	    "in use\n"
	    "# TYPE consentgate_consent_people gauge\n"
	    "consentgate_consent_people %llu\n"
	    "# HELP consentgate_policy_info The policy in use\n"
	    "# TYPE consentgate_policy_info gauge\n"
	    "consentgate_policy_info{id=\"%s\",digest=\"%s\",snapshot=\"%llu\"}"
	    " 1\n",
	    (unsigned long long)active,
	    (long long)(time(NULL) - consent_created_at(t)),
	    (unsigned long long)consent_people(t), policy_id(p),
	    policy_digest(p), (unsigned long long)consent_version(t));
	policy_snapshot_unref(snap);
}

/* ---- the admin listener ---- */

struct admin {
	struct server *server;
	struct worker *workers;
	unsigned nworkers;
	unsigned max_staleness_s;
};

static void
on_admin_request(struct evhttp_request *req, void *arg)
{
	struct admin *a = arg;
	const char *uri = evhttp_request_get_uri(req);
	struct evbuffer *out = evbuffer_new();
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);

	if (out == NULL) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	if (strcmp(uri, "/metrics") == 0) {
		metrics_render(a->server, a->workers, a->nworkers, out);
		evhttp_add_header(h, "Content-Type",
		                  "text/plain; version=0.0.4");
		evhttp_send_reply(req, 200, "OK", out);
	} else if (strcmp(uri, "/healthz") == 0) {
		struct policy_snapshot *snap = server_snapshot(a->server);
		long long age = (long long)(time(NULL) -
		                            consent_created_at(
		                                policy_snapshot_consent(snap)));
		bool stale = a->max_staleness_s > 0 &&
		             age > (long long)a->max_staleness_s;

		policy_snapshot_unref(snap);
		evbuffer_add_printf(out, "%s: consent snapshot age %llds\n",
		                    stale ? "stale" : "ok", age);
		evhttp_add_header(h, "Content-Type", "text/plain");
		evhttp_send_reply(req, stale ? 503 : 200,
		                  stale ? "Service Unavailable" : "OK", out);
	} else {
		evhttp_send_error(req, 404, "try /metrics or /healthz");
	}
	evbuffer_free(out);
}

static void *
admin_main(void *arg)
{
	event_base_dispatch(arg);
	return NULL;
}

int
metrics_admin_start(struct server *s, struct worker *workers, unsigned n,
                    const struct config *cfg, struct metrics_admin *out)
{
	static struct admin a;
	char host[128];
	const char *colon = strrchr(cfg->admin, ':');
	size_t hl;

	memset(out, 0, sizeof(*out));
	if (colon == NULL)
		return -1;
	hl = (size_t)(colon - cfg->admin);
	if (hl >= sizeof(host))
		return -1;
	memcpy(host, cfg->admin, hl);
	host[hl] = '\0';
	a.server = s;
	a.workers = workers;
	a.nworkers = n;
	a.max_staleness_s = cfg->max_staleness_s;
	out->base = event_base_new();
	out->http = out->base ? evhttp_new(out->base) : NULL;
	if (out->http == NULL ||
	    evhttp_bind_socket(out->http, host, (ev_uint16_t)atoi(colon + 1)) !=
	        0)
		return -1;
	evhttp_set_gencb(out->http, on_admin_request, &a);
	return pthread_create(&out->thread, NULL, admin_main, out->base) == 0
	           ? 0
	           : -1;
}

void
metrics_admin_stop(struct metrics_admin *m)
{
	if (m->base == NULL)
		return;
	if (m->thread) {
		event_base_loopexit(m->base, NULL);
		pthread_join(m->thread, NULL);
	}
	if (m->http)
		evhttp_free(m->http);
	event_base_free(m->base);
	memset(m, 0, sizeof(*m));
}
