/* metrics_internal.h: lock-free counters per worker. */
#ifndef CONSENTGATE_METRICS_INTERNAL_H
#define CONSENTGATE_METRICS_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

enum metric {
	METRIC_REQUESTS,
	METRIC_RESP_1XX,
	METRIC_RESP_2XX,
	METRIC_RESP_3XX,
	METRIC_RESP_4XX,
	METRIC_RESP_5XX,
	METRIC_OUT_FORWARDED,
	METRIC_OUT_ALL_DROPPED,
	METRIC_OUT_BLOCKED,
	METRIC_OUT_REFUSED,
	METRIC_OUT_UPSTREAM_FAILED,
	METRIC_OUT_SHADOW,
	METRIC_RECORDS_KEPT,
	METRIC_RECORDS_DROPPED,
	METRIC_UPSTREAM_CONNECTS,
	METRIC_UPSTREAM_ERRORS,
	METRIC_ACCEPTS,
	METRIC_ACCEPT_PAUSES,
	METRIC_DECLOG_REFUSED, /* 503: the decision log's queue was full */
	METRIC_COUNT
};

/* Latency histograms (seconds in /metrics, nanoseconds here). */
enum metric_hist {
	HIST_DECISION, /* deciding an inspected request's records */
	HIST_UPSTREAM, /* the access log's upstream time */
	HIST_REQUEST,  /* the access log's total time */
	HIST_COUNT
};
#define METRICS_BUCKETS 16 /* finite bucket bounds (metrics.c), then +Inf */
#define METRICS_ROUTES 256 /* route names counted; more: route="(other)" */
#define METRICS_CODES 32   /* status codes counted, "other" included */
#define METRICS_RULES 1024 /* (route, rule) pairs; more: rule="(other)" */
#define METRICS_TALLY 8    /* rules one request tallies, "(other)" too */

/* One histogram: counts per bucket (not cumulative) and the sum. */
struct metrics_hist {
	atomic_uint_least64_t bucket[METRICS_BUCKETS + 1];
	atomic_uint_least64_t sum_ns;
};

/* Embedded in each worker; written by it alone, read by the admin thread.
 * The labelled counters are indexed by slots every worker shares
 * (metrics.c): a route name, a (route, rule) pair. */
struct metrics {
	_Alignas(64) atomic_uint_least64_t v[METRIC_COUNT];
	atomic_uint_least64_t active_conns;
	struct metrics_hist hist[HIST_COUNT];
	atomic_uint_least64_t by_code[METRICS_ROUTES][METRICS_CODES];
	atomic_uint_least64_t by_rule[METRICS_RULES][2]; /* kept, dropped */
};

/*
 * The records of one request counted by the rule that decided them,
 * without a lock or a lookup per record: rule pointers are the policy's
 * and live as long as the request's snapshot. Cleared by zeroing n. The
 * last slot is "(other)": a request deciding by more distinct rules than
 * the others hold counts the rest there.
 */
struct metrics_tally {
	unsigned n;
	struct {
		const char *rule;
		unsigned kept, dropped;
	} e[METRICS_TALLY];
};

static inline void
metrics_tally(struct metrics_tally *t, const char *rule, bool allow)
{
	unsigned i = 0;

	while (i < t->n && t->e[i].rule != rule)
		i++;
	if (i == METRICS_TALLY) {
		i--; /* the last slot is "(other)" */
	} else if (i == t->n) {
		t->e[i].rule = i == METRICS_TALLY - 1 ? "(other)" : rule;
		t->e[i].kept = t->e[i].dropped = 0;
		t->n++;
	}
	if (allow)
		t->e[i].kept++;
	else
		t->e[i].dropped++;
}

struct worker;
struct snapshot;
struct evbuffer;

void metrics_add(struct worker *w, enum metric m, uint64_t n);
/* Count a response of this status by its class. */
void metrics_response(struct worker *w, int status);
/*
 * A request ended (where the access log writes its line, with the same
 * clock readings): counted by route (NULL: none matched) and status (0:
 * no response), its total time observed when total_ns >= 0 (its head was
 * read) and its upstream time when up_ns > 0 (an exchange ended).
 */
void metrics_request_end(struct worker *w, const char *route, int status,
                         int64_t total_ns, int64_t up_ns);
/* An inspected request was decided (once, with its decision-log line):
   its records by rule, and decide_ns spent deciding. */
void metrics_decided(struct worker *w, const char *route,
                     const struct metrics_tally *t, int64_t decide_ns);
/* A policy is in use (at start, at each policy reload): the by-rule
   series of its inspected routes exist from now on, at 0 until counted,
   so that a rate over them sees their first records. */
struct policy;
void metrics_policy_loaded(const struct policy *p);
/* Reloads since the start (server_reload_counts). */
struct metrics_reloads {
	uint64_t ok, failed;
};

/* Sum the counters of workers[0..n) into out, in the Prometheus text
 * format, with the gauges of snap (the policy and consent table in use)
 * and the reloads. */
struct tls_stats;
/* The TLS counters of either side that speaks TLS (NULL: plain). */
void metrics_render_tls(const struct tls_stats *clients,
                        const struct tls_stats *upstream, struct evbuffer *out);
void metrics_render(const struct worker *workers, unsigned n,
                    const struct snapshot *snap,
                    const struct metrics_reloads *reloads,
                    struct evbuffer *out);

/* The decision log's queue depth and drops, the access log's drops. */
void metrics_render_logs(struct evbuffer *out);

/* The consent table's version and age, and with a database source its
 * counters (consent_pg.c), in the same format. */
void metrics_render_consent(const struct snapshot *snap, struct evbuffer *out);

#endif
