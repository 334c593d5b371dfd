/*
 * metrics.c: counters every worker keeps without locks (relaxed atomics on
 * its own cache lines), summed into the Prometheus text format for the
 * admin listener (admin.c), which serves them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "accesslog_internal.h"
#include "consent_pg_internal.h"
#include "declog_internal.h"
#include "metrics_internal.h"
#include "proxy_internal.h"
#include "tls_internal.h"

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
    [METRIC_OUT_SHADOW] = {"consentgate_inspected_requests_total",
                           "outcome=\"shadow\"", NULL},
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
    [METRIC_DECLOG_REFUSED] =
        {"consentgate_decision_log_refused_total", "",
         "Inspected requests refused with 503 while the decision log's "
         "queue was full"},
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
metrics_render(const struct worker *workers, unsigned n,
               const struct snapshot *snap,
               const struct metrics_reloads *reloads, struct evbuffer *out)
{
	const struct policy *p = snapshot_policy(snap);
	const struct consent_table *t = snapshot_consent(snap);
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
	evbuffer_add_printf(
	    out,
	    "# HELP consentgate_reloads_total Reloads of the policy and the "
	    "consent table, by result (a failed one kept the running "
	    "snapshot)\n"
	    "# TYPE consentgate_reloads_total counter\n"
	    "consentgate_reloads_total{result=\"ok\"} %llu\n"
	    "consentgate_reloads_total{result=\"failed\"} %llu\n"
	    "# HELP consentgate_snapshot_generation The snapshot in use: 1 at "
	    "start, one more at each reload\n"
	    "# TYPE consentgate_snapshot_generation gauge\n"
	    "consentgate_snapshot_generation %llu\n",
	    (unsigned long long)reloads->ok,
	    (unsigned long long)reloads->failed,
	    (unsigned long long)snapshot_generation(snap));
}

/* One side's TLS counters (side: "client" for connections from clients,
   "upstream" for ours to the upstream). */
static void
render_tls_side(const char *side, const struct tls_stats *st,
                struct evbuffer *out)
{
	evbuffer_add_printf(
	    out,
	    "consentgate_tls_handshakes_total{side=\"%s\"} %llu\n"
	    "consentgate_tls_resumed_total{side=\"%s\"} %llu\n",
	    side,
	    (unsigned long long)atomic_load_explicit(&st->handshakes,
	                                             memory_order_relaxed),
	    side,
	    (unsigned long long)atomic_load_explicit(&st->resumed,
	                                             memory_order_relaxed));
	for (int i = 0; i < TLS_FAIL_COUNT; i++)
		evbuffer_add_printf(
		    out,
		    "consentgate_tls_handshake_failures_total{side=\"%s\","
		    "reason=\"%s\"} %llu\n",
		    side, tls_failure_names[i],
		    (unsigned long long)atomic_load_explicit(
		        &st->failures[i], memory_order_relaxed));
}

void
metrics_render_tls(const struct tls_stats *clients,
                   const struct tls_stats *upstream, struct evbuffer *out)
{
	if (clients == NULL && upstream == NULL)
		return;
	evbuffer_add_printf(
	    out,
	    "# HELP consentgate_tls_handshakes_total TLS handshakes "
	    "completed\n"
	    "# TYPE consentgate_tls_handshakes_total counter\n"
	    "# HELP consentgate_tls_resumed_total Of them, resumed sessions\n"
	    "# TYPE consentgate_tls_resumed_total counter\n"
	    "# HELP consentgate_tls_handshake_failures_total TLS handshakes "
	    "that failed, by reason\n"
	    "# TYPE consentgate_tls_handshake_failures_total counter\n");
	if (clients)
		render_tls_side("client", clients, out);
	if (upstream)
		render_tls_side("upstream", upstream, out);
}

void
metrics_render_logs(struct evbuffer *out)
{
	uint64_t depth, dropped;

	declog_stats(&depth, &dropped);
	evbuffer_add_printf(
	    out,
	    "# HELP consentgate_decision_log_queue_lines Decision-log lines "
	    "waiting for the writer\n"
	    "# TYPE consentgate_decision_log_queue_lines gauge\n"
	    "consentgate_decision_log_queue_lines %llu\n"
	    "# HELP consentgate_decision_log_dropped_total Decision-log lines "
	    "dropped on a full queue (decision_log_full: drop)\n"
	    "# TYPE consentgate_decision_log_dropped_total counter\n"
	    "consentgate_decision_log_dropped_total %llu\n"
	    "# HELP consentgate_access_log_dropped_total Access-log lines "
	    "dropped on a full queue\n"
	    "# TYPE consentgate_access_log_dropped_total counter\n"
	    "consentgate_access_log_dropped_total %llu\n",
	    (unsigned long long)depth, (unsigned long long)dropped,
	    (unsigned long long)accesslog_dropped());
}

void
metrics_render_consent(const struct snapshot *snap, struct evbuffer *out)
{
	const struct consent_table *t = snapshot_consent(snap);
	struct consent_pg_stats st;

	evbuffer_add_printf(
	    out,
	    "# HELP consentgate_consent_version The consent snapshot version "
	    "in use (with a database: the last change sequence applied)\n"
	    "# TYPE consentgate_consent_version gauge\n"
	    "consentgate_consent_version %llu\n",
	    (unsigned long long)consent_version(t));
	consent_pg_stats(&st);
	if (!st.running)
		return;
	evbuffer_add_printf(
	    out,
	    "# HELP consentgate_consent_db_connected 1 while the database "
	    "connection is up\n"
	    "# TYPE consentgate_consent_db_connected gauge\n"
	    "consentgate_consent_db_connected %d\n"
	    "# HELP consentgate_consent_changes_total Consent changes applied "
	    "from the database since the start\n"
	    "# TYPE consentgate_consent_changes_total counter\n"
	    "consentgate_consent_changes_total %llu\n"
	    "# HELP consentgate_consent_rows_refused_total Times a bad "
	    "consent row stopped the catch-up\n"
	    "# TYPE consentgate_consent_rows_refused_total counter\n"
	    "consentgate_consent_rows_refused_total %llu\n"
	    "# HELP consentgate_consent_refused_seq The seq of the bad row "
	    "the table waits at (0: none)\n"
	    "# TYPE consentgate_consent_refused_seq gauge\n"
	    "consentgate_consent_refused_seq %llu\n"
	    "# HELP consentgate_consent_db_reconnects_total Database "
	    "connections after the first\n"
	    "# TYPE consentgate_consent_db_reconnects_total counter\n"
	    "consentgate_consent_db_reconnects_total %llu\n"
	    "# HELP consentgate_consent_compactions_total Overlay compactions "
	    "into a new image\n"
	    "# TYPE consentgate_consent_compactions_total counter\n"
	    "consentgate_consent_compactions_total %llu\n",
	    st.connected ? 1 : 0, (unsigned long long)st.applied,
	    (unsigned long long)st.refused, (unsigned long long)st.refused_seq,
	    (unsigned long long)st.reconnects,
	    (unsigned long long)st.compactions);
}
