/*
 * consent_pg_internal.h: the consent table live from PostgreSQL
 * (consent_pg.c), for serve.c and server.c.
 *
 * --consent postgresql://... loads the table (policy/sql/consent.sql) with
 * COPY at start, or opens the --consent-seed snapshot to serve at once,
 * then follows the database on a thread of its own (libpq, its own event
 * loop): LISTEN consent_changes, and a catch-up by seq on every
 * notification and every second. Each batch of changes becomes a new view
 * (consent_live.h) handed to the workers by server_reload_consent; the
 * request path never waits on the database.
 */
#ifndef CONSENTGATE_CONSENT_PG_INTERNAL_H
#define CONSENTGATE_CONSENT_PG_INTERNAL_H

#include "proxy_internal.h"

struct consent_pg;

/* s of max_staleness_s when it is 0 and the table comes from a database */
#define CONSENT_PG_DEFAULT_STALENESS_S 10

/* True when path names a database (postgresql:// or postgres://). */
bool consent_pg_is_url(const char *path);

/*
 * The source for cfg->consent_path, checked against policy p (every row
 * of a purpose p does not know is refused, by seq). *view gets the first
 * table (the caller's). Blocks for the initial load. NULL with every
 * error in errs.
 */
struct consent_pg *consent_pg_open(const struct config *cfg,
                                   const struct policy *p,
                                   struct consent_table **view,
                                   struct cg_errors *errs);
/* Follow the database on a thread of its own, installing each change in
 * s. 0, or -1 with errs. */
int consent_pg_start(struct consent_pg *pg, struct server *s,
                     struct cg_errors *errs);
/* Stop the thread (and a compaction in progress) and free. NULL: nothing. */
void consent_pg_free(struct consent_pg *pg);

/* For /metrics: the source's counters (0s when none runs). */
struct consent_pg_stats {
	bool running, connected;
	uint64_t seq;         /* the last change applied */
	uint64_t refused_seq; /* the row it stopped at, 0 when none */
	uint64_t applied;     /* changes applied since the start */
	uint64_t refused;     /* bad rows met (each time) */
	uint64_t reconnects;  /* connections opened after the first */
	uint64_t compactions;
};
void consent_pg_stats(struct consent_pg_stats *out);

#endif
