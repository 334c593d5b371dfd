/* metrics_internal.h: lock-free counters per worker. */
#ifndef CONSENTGATE_METRICS_INTERNAL_H
#define CONSENTGATE_METRICS_INTERNAL_H

#include <stdatomic.h>
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

/* Embedded in each worker; written by it alone, read by the admin thread. */
struct metrics {
	_Alignas(64) atomic_uint_least64_t v[METRIC_COUNT];
	atomic_uint_least64_t active_conns;
};

struct worker;
struct snapshot;
struct evbuffer;

void metrics_add(struct worker *w, enum metric m, uint64_t n);
/* Count a response of this status by its class. */
void metrics_response(struct worker *w, int status);
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
