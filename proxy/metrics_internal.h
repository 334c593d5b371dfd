/* metrics_internal.h: lock-free counters per worker, and the admin listener. */
#ifndef CONSENTGATE_METRICS_INTERNAL_H
#define CONSENTGATE_METRICS_INTERNAL_H

#include <pthread.h>
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
	METRIC_RECORDS_KEPT,
	METRIC_RECORDS_DROPPED,
	METRIC_UPSTREAM_CONNECTS,
	METRIC_UPSTREAM_ERRORS,
	METRIC_ACCEPTS,
	METRIC_ACCEPT_PAUSES,
	METRIC_COUNT
};

/* Embedded in each worker; written by it alone, read by the admin thread. */
struct metrics {
	_Alignas(64) atomic_uint_least64_t v[METRIC_COUNT];
	atomic_uint_least64_t active_conns;
};

struct worker;
struct server;
struct config;
struct evbuffer;

void metrics_add(struct worker *w, enum metric m, uint64_t n);
/* Count a response of this status by its class. */
void metrics_response(struct worker *w, int status);
/* Sum the workers' counters into out, in the Prometheus text format. */
void metrics_render(struct server *s, struct worker *workers, unsigned n,
                    struct evbuffer *out);

struct metrics_admin {
	struct event_base *base;
	struct evhttp *http;
	pthread_t thread;
};

/* Serve /metrics and /healthz on cfg->admin in a thread of its own. */
int metrics_admin_start(struct server *s, struct worker *workers, unsigned n,
                        const struct config *cfg, struct metrics_admin *out);
void metrics_admin_stop(struct metrics_admin *m);

#endif
