/*
 * metrics.c: counters every worker keeps without locks (relaxed atomics on
 * its own cache lines), summed into the Prometheus text format for the
 * admin listener (admin.c), which serves them.
 */
#include <pthread.h>
#include <stddef.h>
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

/* ---- labelled counters and histograms ---- */

/*
 * Label slots: a route name, or a (route, rule) pair, takes a slot the
 * first time it is counted and keeps it for the life of the process, so a
 * reload that renames or removes routes leaves what was counted as it was
 * (keyed by name, never by a policy's pointer). Slot 0 is "(other)", for
 * names past the table's size. Found without a lock: a slot is published
 * in the hash by a release store once its names are written, and never
 * changes after; slots are added under the mutex, once per name.
 */
struct label_table {
	pthread_mutex_t lock;
	unsigned cap;            /* slots; the hash has 2 * cap */
	atomic_uint n;           /* slots in use, for the renderer */
	const char *(*names)[2]; /* route and rule ("" for routes) */
	_Atomic(uint32_t) *hash; /* 0 empty, else slot + 1 */
};

static const char *route_names[METRICS_ROUTES][2] = {{"(other)", ""}};
static _Atomic(uint32_t) route_hash[2 * METRICS_ROUTES];
static struct label_table routes = {PTHREAD_MUTEX_INITIALIZER, METRICS_ROUTES,
                                    1, route_names, route_hash};
static const char *rule_names[METRICS_RULES][2] = {{"(other)", "(other)"}};
static _Atomic(uint32_t) rule_hash[2 * METRICS_RULES];
static struct label_table rules = {PTHREAD_MUTEX_INITIALIZER, METRICS_RULES, 1,
                                   rule_names, rule_hash};

static uint32_t
label_hash(const char *a, const char *b)
{
	uint32_t h = 2166136261u; /* FNV-1a over a, NUL, b */

	for (; *a; a++)
		h = (h ^ (unsigned char)*a) * 16777619u;
	h = (h ^ 0xffu) * 16777619u;
	for (; *b; b++)
		h = (h ^ (unsigned char)*b) * 16777619u;
	return h;
}

/* The slot of (a, b) at or after hash position i, or the first free
   position as ~position (the hash never fills: cap slots in 2 * cap). */
static long
label_probe(struct label_table *t, const char *a, const char *b, uint32_t i)
{
	uint32_t mask = 2 * t->cap - 1;

	for (;; i = (i + 1) & mask) {
		uint32_t v = atomic_load_explicit(&t->hash[i & mask],
		                                  memory_order_acquire);

		if (v == 0)
			return ~(long)(i & mask);
		if (strcmp(t->names[v - 1][0], a) == 0 &&
		    strcmp(t->names[v - 1][1], b) == 0)
			return (long)(v - 1);
	}
}

static unsigned
label_slot(struct label_table *t, const char *a, const char *b)
{
	uint32_t h = label_hash(a, b);
	long at = label_probe(t, a, b, h);
	unsigned n;
	char *ca = NULL, *cb = NULL;

	if (at >= 0)
		return (unsigned)at;
	pthread_mutex_lock(&t->lock);
	at = label_probe(t, a, b, h); /* another worker may have added it */
	if (at >= 0)
		goto out;
	n = atomic_load_explicit(&t->n, memory_order_relaxed);
	if (n == t->cap || (ca = strdup(a)) == NULL ||
	    (cb = strdup(b)) == NULL) {
		free(ca);
		at = 0; /* "(other)" */
		goto out;
	}
	t->names[n][0] = ca;
	t->names[n][1] = cb;
	atomic_store_explicit(&t->hash[~at], n + 1, memory_order_release);
	atomic_store_explicit(&t->n, n + 1, memory_order_release);
	at = n;
out:
	pthread_mutex_unlock(&t->lock);
	return (unsigned)at;
}

/* The status codes counted by their number; the rest are "other" (the
   last slot). 0: the connection ended before a response. */
static const short codes[] = {0,   200, 201, 202, 204, 206, 301, 302,
                              304, 307, 308, 400, 401, 403, 404, 405,
                              408, 409, 411, 413, 414, 415, 422, 429,
                              431, 500, 501, 502, 503, 504, 505};
_Static_assert(sizeof(codes) / sizeof(codes[0]) < METRICS_CODES,
               "a slot for \"other\"");

static unsigned
code_slot(int status)
{
	unsigned lo = 0, hi = sizeof(codes) / sizeof(codes[0]);

	while (lo < hi) {
		unsigned mid = (lo + hi) / 2;

		if (codes[mid] == status)
			return mid;
		if (codes[mid] < status)
			lo = mid + 1;
		else
			hi = mid;
	}
	return METRICS_CODES - 1;
}

/* Bucket bounds: 100 us to 10 s, as ns and as the le label. */
static const int64_t bucket_ns[METRICS_BUCKETS] = {
    100000,     250000,     500000,     1000000,    2500000,   5000000,
    10000000,   25000000,   50000000,   100000000,  250000000, 500000000,
    1000000000, 2500000000, 5000000000, 10000000000};
static const char *const bucket_le[METRICS_BUCKETS] = {
    "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025",
    "0.05",   "0.1",     "0.25",   "0.5",   "1",      "2.5",   "5",    "10"};

static void
observe(struct worker *w, enum metric_hist h, int64_t ns)
{
	struct metrics_hist *m = &w->metrics.hist[h];
	unsigned i = 0;

	while (i < METRICS_BUCKETS && ns > bucket_ns[i])
		i++;
	atomic_fetch_add_explicit(&m->bucket[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&m->sum_ns, (uint64_t)ns,
	                          memory_order_relaxed);
}

void
metrics_request_end(struct worker *w, const char *route, int status,
                    int64_t total_ns, int64_t up_ns)
{
	unsigned r = label_slot(&routes, route ? route : "", "");

	atomic_fetch_add_explicit(&w->metrics.by_code[r][code_slot(status)], 1,
	                          memory_order_relaxed);
	if (total_ns >= 0)
		observe(w, HIST_REQUEST, total_ns);
	if (up_ns > 0)
		observe(w, HIST_UPSTREAM, up_ns);
}

void
metrics_decided(struct worker *w, const char *route,
                const struct metrics_tally *t, int64_t decide_ns)
{
	for (unsigned i = 0; i < t->n; i++) {
		unsigned s = label_slot(&rules, route, t->e[i].rule);

		atomic_fetch_add_explicit(&w->metrics.by_rule[s][0],
		                          t->e[i].kept, memory_order_relaxed);
		atomic_fetch_add_explicit(&w->metrics.by_rule[s][1],
		                          t->e[i].dropped,
		                          memory_order_relaxed);
	}
	observe(w, HIST_DECISION, decide_ns);
}

void
metrics_policy_loaded(const struct policy *p)
{
	for (unsigned i = 0; i < route_count(p); i++) {
		const struct policy_route *r = route_at(p, i);
		const char *ids[64];
		unsigned n;

		if (route_action(r) != POLICY_ACTION_INSPECT)
			continue;
		n = route_rule_ids(r, ids, 64);
		for (unsigned k = 0; k < n && k < 64; k++) {
			/* half the table at most: what traffic names later
			   must still find a slot of its own */
			if (atomic_load_explicit(&rules.n,
			                         memory_order_relaxed) >=
			    rules.cap / 2)
				return;
			label_slot(&rules, route_name(r), ids[k]);
		}
	}
}

/* A label value in the text format: backslash, quote and newline
   escaped. */
static void
add_label(struct evbuffer *out, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\')
			ADD_LIT(out, "\\\\");
		else if (*s == '"')
			ADD_LIT(out, "\\\"");
		else if (*s == '\n')
			ADD_LIT(out, "\\n");
		else
			evbuffer_add(out, s, 1);
	}
}

/* The sum over the workers of one counter, given as workers[0]'s: the
   same counter lies at the same offset in every worker's metrics. */
static uint64_t
sum_workers(const struct worker *workers, unsigned n,
            const atomic_uint_least64_t *first)
{
	uintptr_t off = (uintptr_t)first - (uintptr_t)&workers[0].metrics;
	uint64_t sum = 0;

	for (unsigned i = 0; i < n; i++)
		sum += atomic_load_explicit(
		    (const atomic_uint_least64_t
		         *)((uintptr_t)&workers[i].metrics + off),
		    memory_order_relaxed);
	return sum;
}

static const struct {
	const char *name, *help;
} hist_info[HIST_COUNT] = {
    [HIST_DECISION] = {"consentgate_decision_duration_seconds",
                       "Time spent deciding an inspected request's records "
                       "(inflate, scan, lookup, rules)"},
    [HIST_UPSTREAM] = {"consentgate_upstream_duration_seconds",
                       "Request sent upstream to its response's end (the "
                       "access log's upstream_ms)"},
    [HIST_REQUEST] = {"consentgate_request_duration_seconds",
                      "Request head read to its end (the access log's "
                      "total_ms)"},
};

static void
render_histograms(const struct worker *workers, unsigned n,
                  struct evbuffer *out)
{
	for (int h = 0; h < HIST_COUNT; h++) {
		const struct metrics_hist *m = &workers[0].metrics.hist[h];
		uint64_t cum = 0, sum;

		evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s histogram\n",
		                    hist_info[h].name, hist_info[h].help,
		                    hist_info[h].name);
		for (int i = 0; i <= METRICS_BUCKETS; i++) {
			cum += sum_workers(workers, n, &m->bucket[i]);
			evbuffer_add_printf(out, "%s_bucket{le=\"%s\"} %llu\n",
			                    hist_info[h].name,
			                    i < METRICS_BUCKETS ? bucket_le[i]
			                                        : "+Inf",
			                    (unsigned long long)cum);
		}
		sum = sum_workers(workers, n, &m->sum_ns);
		evbuffer_add_printf(out, "%s_sum %llu.%09llu\n%s_count %llu\n",
		                    hist_info[h].name,
		                    (unsigned long long)(sum / 1000000000),
		                    (unsigned long long)(sum % 1000000000),
		                    hist_info[h].name, (unsigned long long)cum);
	}
}

static void
render_by_route(const struct worker *workers, unsigned n, struct evbuffer *out)
{
	unsigned nr = atomic_load_explicit(&routes.n, memory_order_acquire);
	unsigned nc = sizeof(codes) / sizeof(codes[0]);

	ADD_LIT(out, "# HELP consentgate_http_requests_total Requests by "
	             "route and status code (route \"\": none matched; code "
	             "\"0\": no response)\n"
	             "# TYPE consentgate_http_requests_total counter\n");
	for (unsigned r = 0; r < nr; r++) {
		for (unsigned c = 0; c < METRICS_CODES; c++) {
			uint64_t v;
			char code[8];

			if (c >= nc && c != METRICS_CODES - 1)
				continue;
			v = sum_workers(workers, n,
			                &workers[0].metrics.by_code[r][c]);
			if (v == 0)
				continue;
			if (c < nc)
				snprintf(code, sizeof(code), "%d", codes[c]);
			else
				snprintf(code, sizeof(code), "other");
			ADD_LIT(out,
			        "consentgate_http_requests_total{route=\"");
			add_label(out, routes.names[r][0]);
			evbuffer_add_printf(out, "\",code=\"%s\"} %llu\n", code,
			                    (unsigned long long)v);
		}
	}
}

static void
render_by_rule(const struct worker *workers, unsigned n, struct evbuffer *out)
{
	unsigned nr = atomic_load_explicit(&rules.n, memory_order_acquire);

	ADD_LIT(out, "# HELP consentgate_records_by_rule_total Records "
	             "decided, by route, the rule that decided and the "
	             "decision\n"
	             "# TYPE consentgate_records_by_rule_total counter\n");
	for (unsigned r = 0; r < nr; r++) {
		for (int d = 0; d < 2; d++) {
			uint64_t v = sum_workers(
			    workers, n, &workers[0].metrics.by_rule[r][d]);

			if (r == 0 && v == 0)
				continue; /* "(other)" only once used */
			ADD_LIT(out,
			        "consentgate_records_by_rule_total{route=\"");
			add_label(out, rules.names[r][0]);
			ADD_LIT(out, "\",rule=\"");
			add_label(out, rules.names[r][1]);
			evbuffer_add_printf(out, "\",decision=\"%s\"} %llu\n",
			                    d == 0 ? "kept" : "dropped",
			                    (unsigned long long)v);
		}
	}
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
	if (n > 0) {
		render_histograms(workers, n, out);
		render_by_route(workers, n, out);
		render_by_rule(workers, n, out);
	}
}

static const char *const tls_sides[2] = {"client", "upstream"};

/* One TLS counter family of both sides (NULL: that side is plain); off:
   where the counter lies in struct tls_stats. */
static void
render_tls_family(struct evbuffer *out, const char *name, const char *help,
                  const struct tls_stats *const st[2], size_t off)
{
	evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s counter\n", name,
	                    help, name);
	for (int i = 0; i < 2; i++)
		if (st[i] != NULL)
			evbuffer_add_printf(
			    out, "%s{side=\"%s\"} %llu\n", name, tls_sides[i],
			    (unsigned long long)atomic_load_explicit(
			        (const atomic_uint_least64_t
			             *)((uintptr_t)st[i] + off),
			        memory_order_relaxed));
}

/* The TLS counters of both sides, one family at a time (the text format
   groups a family's samples): side "client" for connections from
   clients, "upstream" for ours to the upstream. */
void
metrics_render_tls(const struct tls_stats *clients,
                   const struct tls_stats *upstream, struct evbuffer *out)
{
	const struct tls_stats *const st[2] = {clients, upstream};

	if (clients == NULL && upstream == NULL)
		return;
	render_tls_family(out, "consentgate_tls_handshakes_total",
	                  "TLS handshakes completed", st,
	                  offsetof(struct tls_stats, handshakes));
	render_tls_family(out, "consentgate_tls_resumed_total",
	                  "Of them, resumed sessions", st,
	                  offsetof(struct tls_stats, resumed));
	ADD_LIT(out, "# HELP consentgate_tls_handshake_failures_total TLS "
	             "handshakes that failed, by reason\n"
	             "# TYPE consentgate_tls_handshake_failures_total "
	             "counter\n");
	for (int i = 0; i < 2; i++)
		for (int r = 0; st[i] != NULL && r < TLS_FAIL_COUNT; r++)
			evbuffer_add_printf(
			    out,
			    "consentgate_tls_handshake_failures_total"
			    "{side=\"%s\",reason=\"%s\"} %llu\n",
			    tls_sides[i], tls_failure_names[r],
			    (unsigned long long)atomic_load_explicit(
			        &st[i]->failures[r], memory_order_relaxed));
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
