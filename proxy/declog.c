/*
 * declog.c: the decision log, the proof. One JSON line per inspected
 * request (format version DECLOG_VERSION, README "The decision log"):
 * when, the request id, the client, route and purpose, the policy id and
 * digest and the consent snapshot version that decided it, the outcome,
 * and for every record its index, the deciding rule, the decision and the
 * evidence id of the consent row used, and for every person of the record
 * their own decision, rule and evidence. Never a subject id or record
 * content: with a key, each person appears as HMAC-SHA-256(key, id)
 * (pseudonym.c), which only a key holder can link to someone (consentgate
 * audit).
 *
 * Lines are built on the worker and written by logq's writer thread; the
 * queue is bounded, and by default a full queue refuses new inspected
 * requests (declog_admits) rather than lose proof.
 */
#include <stdlib.h>
#include <string.h>

#include "declog_internal.h"
#include "inspect_internal.h"
#include "logq_internal.h"
#include "proxy_internal.h"
#include "pseudonym_internal.h"

static struct logq *declog_q;
static unsigned queue_cap = DECLOG_QUEUE_DEFAULT;
static bool queue_drop;

void
declog_set_queue(unsigned cap, bool drop)
{
	queue_cap = cap > 0 ? cap : DECLOG_QUEUE_DEFAULT;
	queue_drop = drop;
}

int
declog_open(const char *path)
{
	if (path == NULL || declog_q != NULL)
		return 0;
	/* the decision log is synced batch by batch: it is the proof */
	declog_q = logq_open(path, queue_cap, queue_drop, true);
	if (declog_q == NULL)
		return -1;
	atexit(declog_close); /* demo and serve: what is queued is written */
	return 0;
}

int
declog_reopen(void)
{
	return logq_reopen(declog_q);
}

bool
declog_enabled(void)
{
	return declog_q != NULL;
}

bool
declog_admits(void)
{
	return declog_q == NULL || queue_drop || !logq_full(declog_q);
}

void
declog_stats(uint64_t *depth, uint64_t *dropped)
{
	logq_stats(declog_q, depth, dropped);
}

void
declog_close(void)
{
	logq_close(declog_q);
	declog_q = NULL;
	pseudonym_clear();
}

static void
add_str(struct evbuffer *b, const char *s, size_t n)
{
	ADD_LIT(b, "\"");
	respond_json_str(b, s, n);
	ADD_LIT(b, "\"");
}

/* A decision-log entry put together on the stack and added to out in few
   pieces: a record has up to CG_MAX_SUBJECTS people, and an
   evbuffer_add_printf per field was a third of a pseudonymised request. */
struct entry {
	struct evbuffer *out;
	size_t n;
	char buf[512];
};

static void
put_flush(struct entry *e)
{
	evbuffer_add(e->out, e->buf, e->n);
	e->n = 0;
}

static void
put(struct entry *e, const char *s, size_t n)
{
	if (n == 0) /* an empty evidence id may have no pointer */
		return;
	if (e->n + n > sizeof(e->buf))
		put_flush(e);
	if (n > sizeof(e->buf)) {
		evbuffer_add(e->out, s, n);
		return;
	}
	memcpy(e->buf + e->n, s, n);
	e->n += n;
}

#define PUT_LIT(e, lit) put((e), (lit), sizeof(lit) - 1)

/* s as a JSON string; one that needs an escape (rare in ids and rule
   names) goes through respond_json_str. */
static void
put_str(struct entry *e, const char *s, size_t n)
{
	size_t i = 0;

	while (i < n && (unsigned char)s[i] >= 0x20 && s[i] != '"' &&
	       s[i] != '\\')
		i++;
	if (i < n) {
		put_flush(e);
		add_str(e->out, s, n);
		return;
	}
	PUT_LIT(e, "\"");
	put(e, s, n);
	PUT_LIT(e, "\"");
}

static void
put_uint(struct entry *e, unsigned v)
{
	char num[12];
	int i = sizeof(num);

	do
		num[--i] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	put(e, num + i, sizeof(num) - (size_t)i);
}

void
declog_record(struct evbuffer *trail, const struct verdict_record *rec)
{
	const struct policy_decision *d = &rec->d;
	const struct cg_slice *subj = NULL;
	struct entry e; /* not zeroed: 512 bytes a record, log off too */
	unsigned n = 0;

	if (trail == NULL)
		return;
	e.out = trail;
	e.n = 0;
	if (rec->scan != NULL) {
		subj = rec->scan->subjects;
		n = rec->scan->nsubjects;
	} else if (rec->header_subject.len > 0) {
		subj = &rec->header_subject;
		n = 1;
	}
	if (n > d->nevidence)
		n = d->nevidence;
	if (evbuffer_get_length(trail) > 0)
		PUT_LIT(&e, ",");
	PUT_LIT(&e, "[");
	put_uint(&e, rec->index);
	if (d->allow)
		PUT_LIT(&e, ",\"allow\",");
	else
		PUT_LIT(&e, ",\"deny\",");
	put_str(&e, d->rule_id, strlen(d->rule_id));
	PUT_LIT(&e, ",");
	put_str(&e, d->consent.evidence.ptr, d->consent.evidence.len);
	/* every person of the record, in order: several people, or one
	 * with a pseudonym to find them by */
	if (n > 1 || (n == 1 && pseudonym_enabled())) {
		PUT_LIT(&e, ",[");
		for (unsigned i = 0; i < n; i++) {
			char pn[65];

			if (i > 0)
				PUT_LIT(&e, ",");
			if (d->allows[i])
				PUT_LIT(&e, "[\"allow\",");
			else
				PUT_LIT(&e, "[\"deny\",");
			put_str(&e, d->rules[i], strlen(d->rules[i]));
			PUT_LIT(&e, ",");
			put_str(&e, d->evidence[i].ptr, d->evidence[i].len);
			if (pseudonym_enabled()) {
				/* never the id itself, also when HMAC fails */
				if (pseudonym_of(subj[i].ptr, subj[i].len,
				                 pn) != 0)
					strcpy(pn, "(unavailable)");
				PUT_LIT(&e, ",");
				put_str(&e, pn, strlen(pn));
			}
			PUT_LIT(&e, "]");
		}
		PUT_LIT(&e, "]");
	}
	PUT_LIT(&e, "]");
	put_flush(&e);
}

void
declog_write(struct worker *w, uint64_t conn_id, const char *request_id,
             const char *client, const struct policy_route *route,
             const struct snapshot *snap, const struct inspect_result *r,
             const char *outcome, int status)
{
	const struct policy *p = snapshot_policy(snap);
	struct evbuffer *b;
	char stamp[32];
	const char *name = route_name(route);

	if (declog_q == NULL)
		return;
	if (w->declog == NULL && (w->declog = evbuffer_new()) == NULL)
		return;
	b = w->declog;
	logq_stamp(stamp);
	evbuffer_add_printf(b, "{\"v\":%d,\"time\":\"%s\",\"request_id\":",
	                    DECLOG_VERSION, stamp);
	add_str(b, request_id, strlen(request_id));
	evbuffer_add_printf(
	    b, ",\"conn\":%llu,\"client\":", (unsigned long long)conn_id);
	/* an IPv6 address comes quoted for Forwarded: not here */
	if (client[0] == '"' && strlen(client) >= 2)
		add_str(b, client + 1, strlen(client) - 2);
	else
		add_str(b, client, strlen(client));
	ADD_LIT(b, ",\"route\":");
	add_str(b, name, strlen(name));
	evbuffer_add_printf(
	    b, ",\"purpose\":\"%s\",\"policy\":", route_purpose(route));
	add_str(b, policy_id(p), strlen(policy_id(p)));
	evbuffer_add_printf(
	    b,
	    ",\"digest\":\"%s\",\"snapshot\":%llu,\"outcome\":\"%s\","
	    "\"status\":%d,\"records\":%u,\"kept\":%u,\"dropped\":%u,"
	    "\"decisions\":[",
	    policy_digest(p),
	    (unsigned long long)consent_version(snapshot_consent(snap)),
	    outcome, status, r->records, r->kept, r->dropped);
	if (r->trail)
		evbuffer_add_buffer(b, r->trail);
	ADD_LIT(b, "]}\n");
	logq_push(declog_q, b);
}

void
declog_worker_free(struct worker *w)
{
	if (w->declog)
		evbuffer_free(w->declog);
	w->declog = NULL;
}
