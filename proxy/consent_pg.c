/*
 * consent_pg.c: the consent table live from PostgreSQL
 * (consent_pg_internal.h; the schema is policy/sql/consent.sql).
 *
 * Start: the table comes from the --consent-seed snapshot when there is a
 * usable one (its version is the seq it holds), else from a binary COPY
 * of the whole history in one repeatable-read snapshot, every row checked
 * as the CSV import checks it and built with the import's merge and
 * builder (so the database decides exactly as a CSV export would).
 *
 * Then one thread with its own event loop follows the database: LISTEN
 * consent_changes, and "every row after the last seq applied" on each
 * notification and each second. The schema draws seq under a lock held
 * to commit, so seq order is commit order and that query never skips a
 * row. A catch-up that came back complete confirms the table current as
 * of when it was sent: that time is the snapshot's age for the staleness
 * check (503 on inspected routes, /readyz false), so a database that is
 * down, unreachable or stuck on a bad row fails closed after
 * max_staleness_s, never silently.
 *
 * A bad row (one the CSV import would refuse, or of a purpose the policy
 * neither declares nor ignores) is never skipped: the source stops before
 * it, logs it by seq, and tries again each second (a policy reload that
 * lists the purpose lets it through).
 *
 * Changes land in the overlay of a consent_live; each batch becomes a
 * view handed to the workers by server_reload_consent. Past
 * COMPACT_PEOPLE changed people, a helper thread rewrites the image
 * (consent_live_compact_run) and the seed file, while this thread goes on.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "consent_pg_internal.h"
#include "consentgate/consent.h"
#include "consentgate/consent_live.h"
#include "pg_copy_internal.h"

#define TICK_MS 1000         /* catch-up (and confirmation) period */
#define BATCH_ROWS 20000     /* rows per catch-up query */
#define QUERY_TIMEOUT_S 5    /* a query silent that long: reconnect */
#define BACKOFF_MAX_S 8      /* reconnect backoff: 1, 2, 4, 8, 8 ... s */
#define COMPACT_PEOPLE 65536 /* overlay size that starts a compaction */
#define STR_(x) #x
#define STR(x) STR_(x)
#define PARALLEL_COPY_ROWS 100000 /* from this many rows, two COPYs */
#define CHANNEL "consent_changes"

/* The timestamp as RFC 3339 (2025-03-01T12:00:00+00:00): JSON's form,
 * which PostgreSQL writes faster than to_char. consent.sql keeps it to
 * the second. */
#define TS "to_json(updated_at) #>> '{}'"
#define COLS                                                                   \
	"subject, purpose, status, jurisdiction, " TS                          \
	" AS updated_at, evidence, seq"

struct consent_pg {
	const struct config *cfg;
	struct server *server;
	struct consent_live *live;
	char name[160]; /* the URL without a password, for messages */
	struct event_base *base;
	struct event *tick_ev, *sock_ev, *stop_ev, *compacted_ev;
	pthread_t thread;
	bool started;
	PGconn *conn;
	bool querying, again, connected_once;
	int64_t sent_at;  /* of the catch-up in flight */
	int64_t retry_at; /* next connection attempt */
	unsigned backoff_s;
	uint64_t refused_at; /* seq of the bad row it stopped at, 0 none */
	/* compaction on a helper thread */
	pthread_t job_thread;
	struct consent_live_job *job;
	struct consent_table *job_image;
	bool job_running, job_seed_only;
	int64_t job_started_ms;
	bool from_seed;       /* else a seed (if any) is written at the start */
	bool uninstalled;     /* changes applied that no view has yet */
	int64_t installed_ms; /* when a view was last handed over */
	/* the database's history ends before our seq: another history (a
	   database restored or recreated, a seed from elsewhere): never
	   confirmed current until that changes */
	bool diverged;
	char last_err[512]; /* the catch-up's last error, logged once */
};

/* One source per process: its counters for /metrics. */
static struct {
	atomic_bool running, connected;
	atomic_uint_least64_t seq, refused_seq, applied, refused, reconnects,
	    compactions;
} stats;

bool
consent_pg_is_url(const char *path)
{
	return path != NULL && (strncmp(path, "postgresql://", 13) == 0 ||
	                        strncmp(path, "postgres://", 11) == 0);
}

static int64_t
now_s(void)
{
	return (int64_t)time(NULL);
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The URL for messages: a password ("user:secret@") is left out. */
static void
safe_name(const char *url, char *out, size_t n)
{
	const char *scheme = strstr(url, "://"), *at = strchr(url, '@');
	const char *colon = scheme ? strchr(scheme + 3, ':') : NULL;

	if (scheme && at && colon && colon < at)
		snprintf(out, n, "%.*s:***%s", (int)(colon - url), url, at);
	else
		snprintf(out, n, "%s", url);
}

/*
 * Connect; the URL may override these defaults (they come first), all
 * but client_encoding, which comes after it: subject ids must reach us as
 * UTF-8, the bytes records carry them in, whatever the database's own
 * encoding. PostgreSQL converts text (binary COPY too) to the client
 * encoding; left to default, a LATIN1 database would send "jürgen" as
 * bytes no record holds, and that person's rows would decide nobody.
 */
static PGconn *
connect_db(const char *url, char *err, size_t errlen)
{
	const char *keys[] = {"connect_timeout",     "keepalives_idle",
	                      "keepalives_interval", "keepalives_count",
	                      "application_name",    "dbname",
	                      "client_encoding",     NULL};
	const char *vals[] = {"3",           "5", "2",    "2",
	                      "consentgate", url, "UTF8", NULL};
	PGconn *c = PQconnectdbParams(keys, vals, 1);
	const char *enc;

	if (c == NULL || PQstatus(c) != CONNECTION_OK) {
		snprintf(err, errlen, "%s",
		         c ? PQerrorMessage(c) : "out of memory");
		err[strcspn(err, "\n")] = '\0';
		PQfinish(c);
		return NULL;
	}
	enc = PQparameterStatus(c, "client_encoding");
	if (enc == NULL || strcmp(enc, "UTF8") != 0) {
		snprintf(err, errlen,
		         "client_encoding is %s, not UTF8: subject ids would "
		         "not match the records' bytes",
		         enc ? enc : "unknown");
		PQfinish(c);
		return NULL;
	}
	return c;
}

static bool
exec_ok(PGconn *c, const char *sql, ExecStatusType want, char *err,
        size_t errlen)
{
	PGresult *r = PQexec(c, sql);
	bool ok = r != NULL && PQresultStatus(r) == want;

	if (!ok) {
		snprintf(err, errlen, "%s", PQerrorMessage(c));
		err[strcspn(err, "\n")] = '\0';
	}
	PQclear(r);
	return ok;
}

/* ---- the initial load ---- */

/*
 * One binary COPY, parsed row by row into a run of rows as it arrives
 * (the second of two on a thread of its own). Binary, not CSV: PostgreSQL
 * sends updated_at as its 8-byte count of microseconds instead of
 * formatting a text for each row (half its CPU time for the COPY), and
 * nothing is buffered whole.
 */
struct stream {
	PGconn *c;
	char sql[400];
	struct pg_copy copy; /* the rows, the bad ones by seq */
	char err[512];
	bool ok;
};

static void *
copy_stream(void *arg)
{
	struct stream *st = arg;
	PGresult *r = PQexec(st->c, st->sql);
	char *row;
	int n = 0;

	if (r == NULL || PQresultStatus(r) != PGRES_COPY_OUT)
		goto done;
	PQclear(r);
	r = NULL;
	while ((n = PQgetCopyData(st->c, &row, 0)) > 0) {
		int rc = pg_copy_feed(&st->copy, row, (size_t)n);

		PQfreemem(row);
		if (rc < 0) {
			snprintf(st->err, sizeof(st->err),
			         "the COPY's binary rows are not as asked "
			         "(or out of memory)");
			return NULL; /* the connection is finished by the caller
			              */
		}
	}
	r = PQgetResult(st->c);
	st->ok = n == -1 && r != NULL &&
	         PQresultStatus(r) == PGRES_COMMAND_OK && st->copy.trailer;
done:
	if (!st->ok)
		snprintf(st->err, sizeof(st->err), "%s",
		         st->copy.trailer || PQerrorMessage(st->c)[0]
		             ? PQerrorMessage(st->c)
		             : "the COPY ended early");
	PQclear(r);
	while ((r = PQgetResult(st->c)) != NULL)
		PQclear(r);
	return NULL;
}

/* A second connection in the snapshot exported as snap (the same rows,
 * for a second COPY in parallel), or NULL (then one COPY reads all). */
static PGconn *
join_snapshot(const char *url, const char *snap)
{
	char err[512], sql[160];
	PGconn *c = connect_db(url, err, sizeof(err));

	snprintf(sql, sizeof(sql), "SET TRANSACTION SNAPSHOT '%s'", snap);
	if (c != NULL &&
	    (!exec_ok(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
	              PGRES_COMMAND_OK, err, sizeof(err)) ||
	     !exec_ok(c, sql, PGRES_COMMAND_OK, err, sizeof(err)))) {
		log_msg("consent: one COPY instead of two: %s", err);
		PQfinish(c);
		c = NULL;
	}
	return c;
}

/*
 * The whole history with binary COPY, checked row by row as it arrives
 * and built with the CSV import's merge and builder. Two COPYs in
 * parallel (the seq range halved, on two connections sharing one
 * snapshot) let PostgreSQL send rows from two cores while each half is
 * checked on a thread of its own. NULL with errs.
 */
static struct consent_table *
load_copy(PGconn *c, const char *url, const char *name, const struct policy *p,
          uint64_t *seq, struct cg_errors *errs)
{
	struct consent_table *t = NULL;
	struct stream st[2];
	char err[512];
	PGresult *r = NULL;
	PGconn *c2 = NULL;
	pthread_t th;
	uint64_t mid;
	int64_t t0 = now_ms(), t1;

	memset(st, 0, sizeof(st));
	for (int i = 0; i < 2; i++)
		pg_copy_init(&st[i].copy, p, name);
	if (!exec_ok(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
	             PGRES_COMMAND_OK, err, sizeof(err)))
		goto fail;
	r = PQexec(c, "SELECT (SELECT coalesce(max(seq), 0) FROM consent), "
	              "pg_export_snapshot()");
	if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK ||
	    PQntuples(r) != 1) {
		snprintf(err, sizeof(err), "%s", PQerrorMessage(c));
		goto fail;
	}
	*seq = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
	if (*seq >= PARALLEL_COPY_ROWS)
		c2 = join_snapshot(url, PQgetvalue(r, 0, 1));
	PQclear(r);
	r = NULL;
	mid = c2 != NULL ? *seq / 2 : *seq;
	/* seqs are unique and positive: no more rows than the max seq */
	st[0].copy.rows = consent_live_rows_new(mid);
	st[1].copy.rows = consent_live_rows_new(*seq - mid);
	if (st[0].copy.rows == NULL || st[1].copy.rows == NULL) {
		snprintf(err, sizeof(err), "out of memory");
		goto fail;
	}
	st[0].c = c;
	snprintf(st[0].sql, sizeof(st[0].sql),
	         "COPY (SELECT " PG_COPY_COLS " FROM consent WHERE seq <= %llu "
	         "ORDER BY seq) TO STDOUT (FORMAT binary)",
	         (unsigned long long)mid);
	st[1].c = c2;
	snprintf(st[1].sql, sizeof(st[1].sql),
	         "COPY (SELECT " PG_COPY_COLS " FROM consent WHERE seq > %llu "
	         "ORDER BY seq) TO STDOUT (FORMAT binary)",
	         (unsigned long long)mid);
	if (c2 != NULL && pthread_create(&th, NULL, copy_stream, &st[1]) != 0) {
		PQfinish(c2);
		c2 = st[1].c = NULL;
		snprintf(st[0].sql, sizeof(st[0].sql),
		         "COPY (SELECT " PG_COPY_COLS
		         " FROM consent ORDER BY seq) "
		         "TO STDOUT (FORMAT binary)");
	}
	copy_stream(&st[0]);
	if (c2 != NULL)
		pthread_join(th, NULL);
	if (!st[0].ok || (c2 != NULL && !st[1].ok)) {
		snprintf(err, sizeof(err), "%s",
		         st[0].ok ? st[1].err : st[0].err);
		goto fail;
	}
	(void)exec_ok(c, "COMMIT", PGRES_COMMAND_OK, err, sizeof(err));
	t1 = now_ms();
	if (st[0].copy.errs.count + st[1].copy.errs.count > 0) {
		/* every bad row by seq, the first half's first */
		for (int i = 0; i < 2; i++)
			for (unsigned k = 0; k < st[i].copy.errs.count; k++)
				cg_errors_add(errs, "--consent", 0, 0, "%s",
				              st[i].copy.errs.msgs[k]);
		goto done;
	}
	t = consent_live_rows_build(st[0].copy.rows, st[1].copy.rows, name,
	                            now_s());
	st[0].copy.rows = st[1].copy.rows = NULL; /* freed by the build */
	if (t == NULL) {
		cg_errors_add(errs, name, 0, 0,
		              "out of memory building the consent table");
		goto done;
	}
	if (policy_check_consent(p, t, errs) != 0) {
		consent_free(t);
		t = NULL;
		goto done;
	}
	log_msg("consent: loaded %llu rows (%llu people, %llu kept, seq %llu) "
	        "from %s: COPY %lld ms, build %lld ms",
	        (unsigned long long)(st[0].copy.lines + st[1].copy.lines),
	        (unsigned long long)consent_people(t),
	        (unsigned long long)consent_rows(t), (unsigned long long)*seq,
	        name, (long long)(t1 - t0), (long long)(now_ms() - t1));
	goto done;
fail:
	err[strcspn(err, "\n")] = '\0';
	cg_errors_add(errs, name, 0, 0, "cannot load the consent table: %s",
	              err);
done:
	PQclear(r);
	for (int i = 0; i < 2; i++)
		pg_copy_reset(&st[i].copy);
	PQfinish(c2);
	return t;
}

/* The seed snapshot, when there is a usable one; NULL otherwise (logged). */
static struct consent_table *
open_seed(const char *path, uint64_t *seq)
{
	struct cg_errors errs;
	struct consent_table *t;

	if (path == NULL || access(path, F_OK) != 0)
		return NULL;
	cg_errors_init(&errs);
	t = consent_open(path, &errs);
	if (t == NULL)
		log_warn("consent: seed %s not used: %s", path,
		         errs.count ? errs.msgs[0] : "unreadable");
	cg_errors_reset(&errs);
	if (t != NULL)
		*seq = consent_version(t);
	return t;
}

struct consent_pg *
consent_pg_open(const struct config *cfg, const struct policy *p,
                struct consent_table **view, struct cg_errors *errs)
{
	struct consent_pg *pg = calloc(1, sizeof(*pg));
	struct consent_table *t = NULL;
	PGconn *c = NULL;
	uint64_t seq = 0;
	int64_t at;
	char err[512];

	*view = NULL;
	if (pg == NULL) {
		cg_errors_add(errs, "--consent", 0, 0, "out of memory");
		return NULL;
	}
	pg->cfg = cfg;
	safe_name(cfg->consent_path, pg->name, sizeof(pg->name));
	t = open_seed(cfg->consent_seed, &seq);
	if (t != NULL && policy_check_consent(p, t, errs) != 0) {
		consent_free(t);
		goto fail;
	}
	if (t != NULL) {
		pg->from_seed = true;
		/* as current as when it was written; the catch-up follows */
		at = consent_created_at(t);
		log_msg("consent: serving the seed %s (seq %llu, %llu people, "
		        "written %lld s ago) while catching up with %s",
		        cfg->consent_seed, (unsigned long long)seq,
		        (unsigned long long)consent_people(t),
		        (long long)(now_s() - at), pg->name);
	} else {
		c = connect_db(cfg->consent_path, err, sizeof(err));
		if (c == NULL) {
			cg_errors_add(errs, "--consent", 0, 0,
			              "cannot connect to %s: %s", pg->name,
			              err);
			goto fail;
		}
		at = now_s();
		t = load_copy(c, cfg->consent_path, pg->name, p, &seq, errs);
		PQfinish(c);
		if (t == NULL)
			goto fail;
		consent_set_version(t, seq);
	}
	pg->live = consent_live_new(t, seq, at);
	if (pg->live == NULL ||
	    (*view = consent_live_view(pg->live, pg->name)) == NULL) {
		cg_errors_add(errs, "--consent", 0, 0, "out of memory");
		goto fail;
	}
	atomic_store(&stats.seq, seq);
	return pg;
fail:
	consent_pg_free(pg);
	return NULL;
}

/* ---- following the database (the source's thread) ---- */

static void
disconnect(struct consent_pg *pg, const char *reason)
{
	char why[256];

	if (pg->conn == NULL)
		return;
	snprintf(why, sizeof(why), "%s", reason); /* one line of libpq's */
	why[strcspn(why, "\n")] = '\0';
	log_warn("consent: lost %s: %s; reconnecting in %u s, catching up "
	         "from seq %llu",
	         pg->name, why, pg->backoff_s ? pg->backoff_s : 1,
	         (unsigned long long)consent_live_seq(pg->live));
	if (pg->sock_ev) {
		event_free(pg->sock_ev);
		pg->sock_ev = NULL;
	}
	PQfinish(pg->conn);
	pg->conn = NULL;
	pg->querying = false;
	pg->retry_at = now_s() + (pg->backoff_s ? pg->backoff_s : 1);
	atomic_store(&stats.connected, false);
}

static void on_socket(evutil_socket_t fd, short what, void *arg);

static void
send_catchup(struct consent_pg *pg)
{
	char seq[24];
	const char *params[] = {seq};

	if (pg->conn == NULL || pg->querying)
		return;
	snprintf(seq, sizeof(seq), "%llu",
	         (unsigned long long)consent_live_seq(pg->live));
	if (!PQsendQueryParams(pg->conn,
	                       "SELECT " COLS " FROM consent WHERE seq > $1 "
	                       "ORDER BY seq LIMIT " STR(BATCH_ROWS),
	                       1, NULL, params, NULL, NULL, 0)) {
		disconnect(pg, PQerrorMessage(pg->conn));
		return;
	}
	pg->querying = true;
	pg->again = false;
	pg->sent_at = now_s();
	(void)PQflush(pg->conn);
}

static void
try_connect(struct consent_pg *pg)
{
	char err[512];
	PGconn *c;

	if (pg->conn != NULL || now_s() < pg->retry_at)
		return;
	c = connect_db(pg->cfg->consent_path, err, sizeof(err));
	if (c == NULL || !exec_ok(c, "LISTEN " CHANNEL, PGRES_COMMAND_OK, err,
	                          sizeof(err))) {
		PQfinish(c);
		pg->backoff_s = pg->backoff_s ? pg->backoff_s * 2 : 1;
		if (pg->backoff_s > BACKOFF_MAX_S)
			pg->backoff_s = BACKOFF_MAX_S;
		pg->retry_at = now_s() + pg->backoff_s;
		log_error("consent: cannot connect to %s: %s; retrying in %u s",
		          pg->name, err, pg->backoff_s);
		return;
	}
	if (PQsetnonblocking(c, 1) != 0) {
		PQfinish(c);
		return;
	}
	/* the history must reach at least as far as what we hold */
	{
		PGresult *r =
		    PQexec(c, "SELECT coalesce(max(seq), 0) FROM consent");
		uint64_t max = 0, seq = consent_live_seq(pg->live);
		bool ok = r != NULL && PQresultStatus(r) == PGRES_TUPLES_OK &&
		          PQntuples(r) == 1;

		if (ok)
			max = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
		PQclear(r);
		if (ok && max < seq && !pg->diverged)
			log_error(
			    "consent: %s ends at seq %llu, before seq %llu "
			    "that this table holds: not the same history "
			    "(restored or recreated?); the table is never "
			    "confirmed current with it",
			    pg->name, (unsigned long long)max,
			    (unsigned long long)seq);
		if (ok)
			pg->diverged = max < seq;
	}
	pg->conn = c;
	pg->backoff_s = 0;
	pg->sock_ev = event_new(pg->base, PQsocket(c), EV_READ | EV_PERSIST,
	                        on_socket, pg);
	event_add(pg->sock_ev, NULL);
	if (pg->connected_once)
		atomic_fetch_add(&stats.reconnects, 1);
	pg->connected_once = true;
	atomic_store(&stats.connected, true);
	log_msg("consent: following %s (LISTEN " CHANNEL ") from seq %llu",
	        pg->name, (unsigned long long)consent_live_seq(pg->live));
	send_catchup(pg);
}

static void *
compact_main(void *arg)
{
	struct consent_pg *pg = arg;
	const struct consent_table *img = consent_live_job_image(pg->job);
	struct cg_errors errs;

	/* nothing to fold in (the first seed): write the image as it is */
	if (!pg->job_seed_only)
		img = pg->job_image = consent_live_compact_run(pg->job);
	if (img != NULL && pg->cfg->consent_seed != NULL) {
		cg_errors_init(&errs);
		if (consent_snapshot_write(img, pg->cfg->consent_seed, &errs) !=
		    0)
			log_error("consent: cannot write the seed: %s",
			          errs.count ? errs.msgs[0] : "?");
		cg_errors_reset(&errs);
	}
	event_active(pg->compacted_ev, EV_READ, 0);
	return NULL;
}

static void
start_compaction(struct consent_pg *pg, bool force)
{
	if (pg->job_running ||
	    (!force && consent_live_pending(pg->live) < COMPACT_PEOPLE))
		return;
	pg->job = consent_live_compact_begin(pg->live);
	if (pg->job == NULL)
		return;
	pg->job_seed_only = consent_live_pending(pg->live) == 0;
	pg->job_started_ms = now_ms();
	if (pthread_create(&pg->job_thread, NULL, compact_main, pg) != 0) {
		consent_live_job_free(pg->job);
		pg->job = NULL;
		return;
	}
	pg->job_running = true;
}

/* Hand the current view to the workers. */
static void
install(struct consent_pg *pg)
{
	struct consent_table *v = consent_live_view(pg->live, pg->name);
	struct cg_errors errs;

	if (v == NULL) {
		log_error("consent: out of memory making a view at seq %llu",
		          (unsigned long long)consent_live_seq(pg->live));
		return;
	}
	cg_errors_init(&errs);
	if (server_reload_consent(pg->server, v, &errs) != 0)
		for (unsigned i = 0; i < errs.count; i++)
			log_error(
			    "consent: seq %llu not installed: %s",
			    (unsigned long long)consent_live_seq(pg->live),
			    errs.msgs[i]);
	cg_errors_reset(&errs);
}

static void
on_compacted(evutil_socket_t fd, short what, void *arg)
{
	struct consent_pg *pg = arg;
	uint64_t seq = consent_live_job_seq(pg->job);
	bool ok = pg->job_image != NULL;

	pthread_join(pg->job_thread, NULL);
	pg->job_running = false;
	if (pg->job_seed_only) {
		consent_live_job_free(pg->job);
		pg->job = NULL;
		log_msg("consent: seed %s written at seq %llu",
		        pg->cfg->consent_seed, (unsigned long long)seq);
		return;
	}
	if (consent_live_compact_end(pg->live, pg->job, pg->job_image) != 0)
		ok = false;
	pg->job = NULL;
	pg->job_image = NULL;
	if (!ok) {
		log_warn("consent: compaction at seq %llu failed; the overlay "
		         "keeps every change",
		         (unsigned long long)seq);
		return;
	}
	atomic_fetch_add(&stats.compactions, 1);
	log_msg("consent: compacted at seq %llu in %lld ms%s%s",
	        (unsigned long long)seq,
	        (long long)(now_ms() - pg->job_started_ms),
	        pg->cfg->consent_seed ? "; seed written to " : "",
	        pg->cfg->consent_seed ? pg->cfg->consent_seed : "");
	install(pg); /* the old image goes with the last request on it */
}

/* Apply a catch-up result; false when it stopped at a bad row. */
static bool
apply_result(struct consent_pg *pg, PGresult *r, unsigned *applied)
{
	struct snapshot *snap = server_snapshot(pg->server);
	const struct policy *p = snapshot_policy(snap);
	bool ok = true;

	*applied = 0;
	for (int i = 0; i < PQntuples(r); i++) {
		struct cg_slice v[7];
		struct consent_change c;
		const char *why = NULL;

		for (int k = 0; k < 7; k++)
			v[k] = (struct cg_slice){PQgetvalue(r, i, k),
			                         (size_t)PQgetlength(r, i, k)};
		c.seq = strtoull(v[6].ptr, NULL, 10);
		c.subject = v[0];
		c.purpose = v[1];
		c.status = v[2];
		c.jurisdiction = v[3];
		c.updated_at = v[4];
		c.evidence = v[5];
		if (!policy_purpose_known(p, c.purpose.ptr, c.purpose.len))
			why = pg_copy_unknown_purpose;
		if (why != NULL ||
		    consent_live_apply(pg->live, &c, &why) != 0) {
			atomic_fetch_add(&stats.refused, 1);
			if (pg->refused_at != c.seq)
				log_error(
				    "consent: row seq %llu refused (purpose "
				    "'%.*s'): %s; consent stays at seq %llu "
				    "and is not current until the row is "
				    "dealt with",
				    (unsigned long long)c.seq,
				    (int)c.purpose.len, c.purpose.ptr, why,
				    (unsigned long long)consent_live_seq(
				        pg->live));
			pg->refused_at = c.seq;
			atomic_store(&stats.refused_seq, c.seq);
			ok = false;
			break;
		}
		if (pg->refused_at == c.seq) {
			log_msg("consent: row seq %llu accepted now",
			        (unsigned long long)c.seq);
			pg->refused_at = 0;
			atomic_store(&stats.refused_seq, 0);
		}
		(*applied)++;
	}
	snapshot_unref(snap);
	return ok;
}

static void
on_result(struct consent_pg *pg)
{
	PGresult *r;
	unsigned applied = 0;
	bool complete = false, ok = true;

	while ((r = PQgetResult(pg->conn)) != NULL) {
		if (PQresultStatus(r) != PGRES_TUPLES_OK) {
			char err[512];

			snprintf(err, sizeof(err), "%s",
			         PQresultErrorMessage(r));
			err[strcspn(err, "\n")] = '\0';
			/* once per error, not once a second */
			if (strcmp(err, pg->last_err) != 0)
				log_error("consent: catch-up failed: %s; "
				          "retrying every second",
				          err);
			snprintf(pg->last_err, sizeof(pg->last_err), "%s", err);
			ok = false;
		} else {
			pg->last_err[0] = '\0';
			ok = apply_result(pg, r, &applied);
			complete = ok && PQntuples(r) < BATCH_ROWS;
		}
		PQclear(r);
	}
	pg->querying = false;
	if (applied > 0) {
		atomic_fetch_add(&stats.applied, applied);
		atomic_store(&stats.seq, consent_live_seq(pg->live));
	}
	/* everything up to when the query was sent is in: current then */
	if (complete && !pg->diverged)
		consent_live_confirm(pg->live, pg->sent_at);
	pg->uninstalled |= applied > 0;
	/* a long catch-up hands over a view a second, not one per batch */
	if (pg->uninstalled &&
	    (complete || now_ms() - pg->installed_ms >= TICK_MS)) {
		install(pg);
		pg->uninstalled = false;
		pg->installed_ms = now_ms();
		start_compaction(pg, false);
	}
	if (ok && (!complete || pg->again))
		send_catchup(pg);
}

static void
on_socket(evutil_socket_t fd, short what, void *arg)
{
	struct consent_pg *pg = arg;
	PGnotify *n;

	if (!PQconsumeInput(pg->conn)) {
		disconnect(pg, PQerrorMessage(pg->conn));
		return;
	}
	/* libpq parses notifications as it parses results: look for them
	   again after each result, or one could wait for the next tick */
	for (;;) {
		while ((n = PQnotifies(pg->conn)) != NULL) {
			pg->again = true;
			PQfreemem(n);
		}
		if (!pg->querying || PQisBusy(pg->conn))
			break;
		on_result(pg); /* may send the next query */
		if (pg->conn == NULL)
			return;
	}
	if (!pg->querying && pg->again)
		send_catchup(pg);
	if (pg->conn != NULL && PQstatus(pg->conn) == CONNECTION_BAD)
		disconnect(pg, "connection closed");
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct consent_pg *pg = arg;

	if (pg->conn == NULL) {
		try_connect(pg);
		return;
	}
	if (pg->querying && now_s() - pg->sent_at > QUERY_TIMEOUT_S) {
		disconnect(pg, "no answer to the catch-up query");
		return;
	}
	send_catchup(pg); /* also the confirmation that nothing is missing */
}

static void
on_stop(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopbreak(((struct consent_pg *)arg)->base);
}

static void *
pg_main(void *arg)
{
	struct consent_pg *pg = arg;

	try_connect(pg);
	if (pg->cfg->consent_seed != NULL && !pg->from_seed)
		start_compaction(pg, true); /* writes the first seed */
	event_base_loop(pg->base, 0);
	if (pg->job_running) {
		pthread_join(pg->job_thread, NULL);
		consent_live_job_free(pg->job);
		consent_free(pg->job_image);
		pg->job_running = false;
	}
	return NULL;
}

int
consent_pg_start(struct consent_pg *pg, struct server *s,
                 struct cg_errors *errs)
{
	struct timeval tick = {TICK_MS / 1000, (TICK_MS % 1000) * 1000};

	pg->server = s;
	pg->base = event_base_new();
	if (pg->base == NULL ||
	    (pg->tick_ev = event_new(pg->base, -1, EV_PERSIST, on_tick, pg)) ==
	        NULL ||
	    (pg->stop_ev = event_new(pg->base, -1, 0, on_stop, pg)) == NULL ||
	    (pg->compacted_ev = event_new(pg->base, -1, 0, on_compacted, pg)) ==
	        NULL) {
		cg_errors_add(errs, "--consent", 0, 0, "out of memory");
		return -1;
	}
	event_add(pg->tick_ev, &tick);
	if (pthread_create(&pg->thread, NULL, pg_main, pg) != 0) {
		cg_errors_add(errs, "--consent", 0, 0,
		              "cannot start the database thread");
		return -1;
	}
	pg->started = true;
	atomic_store(&stats.running, true);
	return 0;
}

void
consent_pg_free(struct consent_pg *pg)
{
	if (pg == NULL)
		return;
	if (pg->started) {
		event_active(pg->stop_ev, EV_READ, 0);
		pthread_join(pg->thread, NULL);
		atomic_store(&stats.running, false);
	}
	if (pg->sock_ev)
		event_free(pg->sock_ev);
	PQfinish(pg->conn);
	if (pg->tick_ev)
		event_free(pg->tick_ev);
	if (pg->stop_ev)
		event_free(pg->stop_ev);
	if (pg->compacted_ev)
		event_free(pg->compacted_ev);
	if (pg->base)
		event_base_free(pg->base);
	consent_live_free(pg->live);
	free(pg);
}

void
consent_pg_stats(struct consent_pg_stats *out)
{
	out->running = atomic_load(&stats.running);
	out->connected = atomic_load(&stats.connected);
	out->seq = atomic_load(&stats.seq);
	out->refused_seq = atomic_load(&stats.refused_seq);
	out->applied = atomic_load(&stats.applied);
	out->refused = atomic_load(&stats.refused);
	out->reconnects = atomic_load(&stats.reconnects);
	out->compactions = atomic_load(&stats.compactions);
}
