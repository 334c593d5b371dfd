/*
 * policy.h: rule files, routes and per-record decisions.
 *
 * A policy is loaded from a JSON rule file (jansson, duplicate keys
 * rejected), validated with every error reported as "file:line:col:
 * message", and compiled into an immutable object. It does no I/O after
 * loading and allocates nothing per decision.
 *
 * A policy and a consent table decide requests together as a snapshot
 * (snapshot.h), each part with a reference count of its own.
 */
#ifndef CONSENTGATE_POLICY_H
#define CONSENTGATE_POLICY_H

#include "consentgate/common.h"
#include "consentgate/consent.h"
#include "consentgate/scan.h"
#include "consentgate/snapshot.h" /* the snapshot's old names */

enum policy_action {
	POLICY_ACTION_PASS,    /* forward without inspection */
	POLICY_ACTION_INSPECT, /* decide every record */
};

enum policy_on_deny {
	POLICY_ON_DENY_DROP,  /* drop the denied record, forward the rest */
	POLICY_ON_DENY_BLOCK, /* refuse the whole request with 403 */
};

struct policy;
struct policy_route;

/* Load and compile a rule file. NULL on error, with every error in errs. */
struct policy *policy_load(const char *path, struct cg_errors *errs);
/* The same from memory; name is used in error messages. */
struct policy *policy_load_buf(const char *name, const char *buf, size_t len,
                               struct cg_errors *errs);
void policy_free(struct policy *p);

/* The file's "policy" id, and a hex digest of its bytes (16 hex digits). */
const char *policy_id(const struct policy *p);
const char *policy_digest(const struct policy *p);

/* Why route_match gave no route: what the client is answered. */
struct route_refusal {
	int status;         /* 404, 405, 400 or 414 */
	const char *reason; /* static text */
	/* the inspected route the request could mean, NULL when none */
	const struct policy_route *route;
};

/*
 * The route for a request: method and path (the request-target's path,
 * without the query). Routes are tried in file order; the first match
 * wins. NULL when no route may take it, with why filled in (why may be
 * NULL):
 * - 404: no route covers it; or the path could be resolved upstream to
 *   another one (dot segments, also "..;"; %2e, %2f, %5c, %00; a backslash
 *   or NUL); or, normalised as upstream frameworks route (%-escapes
 *   decoded, letters in lower case, "//" merged, ";" parameters, a trailing
 *   "/" and a format suffix like ".json" dropped), it means an inspected
 *   route that is not the one taking it: "//ingest", "/INGEST",
 *   "/ingest.json" through a catch-all pass route. Only a request written
 *   as the inspected route matches it.
 * - 405: no route takes the method, and one takes the path with
 *   another; or another method on an inspected route's path, unless the
 *   route taking it names exactly that method and path.
 * - 400: a method not in upper case on a pass route when its upper-case
 *   form is an inspected route's method (methods are case-sensitive;
 *   werkzeug and others upper-case them).
 * - 414: a path longer than CG_MAX_CANON_PATH that would need that check.
 * The normalisation runs only for routes that can take such a request
 * (found at load; see policy_warnings), into a stack buffer. Pure.
 */
const struct policy_route *route_match(const struct policy *p,
                                       struct cg_slice method,
                                       struct cg_slice path,
                                       struct route_refusal *why);

/*
 * The problem detail for a refusal into buf (NUL-terminated, truncated to
 * cap; CG_MAX_DETAIL is enough): the reason and, when there is
 * one, the inspected route and the method and path to send instead.
 */
void route_refusal_detail(const struct route_refusal *why, char *buf,
                          size_t cap);

/*
 * The methods of the routes that take path (exactly or as a prefix),
 * once each and in file order, joined by ", ", into buf (NUL-terminated;
 * a method that does not fit is left out): a 405's Allow. Routes for any
 * method are not listed ("" when only they take it).
 */
void route_allow(const struct policy *p, struct cg_slice path, char *buf,
                 size_t cap);

/* Number of routes and the i-th route, in file order (for tools). */
unsigned route_count(const struct policy *p);
const struct policy_route *route_at(const struct policy *p, unsigned i);

const char *
route_name(const struct policy_route *r); /* "POST /ingest" if unnamed */
enum policy_action route_action(const struct policy_route *r);
const char *route_method(const struct policy_route *r); /* "*" for any */
/* The media types an inspected route takes, as JSON strings joined by
   ',' ("\"application/x-ndjson\",\"application/json\""), for a 415. */
void route_media_types(const struct policy_route *r, char *buf, size_t cap);
const char *route_purpose(const struct policy_route *r); /* NULL for pass */
unsigned route_formats(const struct policy_route *r); /* SCAN_FORMAT_* bits */
const struct scan_spec *route_scan_spec(const struct policy_route *r);
const struct jsonptr *
route_array_at(const struct policy_route *r); /* NULL if none */
/* Header that names the one subject of the request, NULL when in the body. */
const char *route_subject_header(const struct policy_route *r);
enum policy_on_deny route_on_deny(const struct policy_route *r);
/* True when forwarded requests get "Content-Usage: train-ai=n". */
bool route_content_usage(const struct policy_route *r);
/*
 * Shadow mode (the route's "shadow", or the policy's): requests are
 * decided, logged and counted as usual, but forwarded unchanged, with
 * headers saying what would have happened. For rolling a policy out.
 */
bool route_shadow(const struct policy_route *r);

/*
 * The clients a route takes, by the identity in their verified TLS
 * certificate: "uri:spiffe://…" (a URI SAN), "dns:host" (a DNS SAN) or
 * "cn:name" (the subject CN). A route that names none takes any client.
 */
unsigned route_client_count(const struct policy_route *r);
const char *route_client_at(const struct policy_route *r, unsigned i);
/*
 * May a client with these identities use r? ids is a list of
 * NUL-terminated "kind:value" strings ended by an empty string, as the
 * proxy reads them from the client's certificate (NULL or "" for a client
 * without one). URI and CN compare exactly, DNS names without regard to
 * ASCII case. *matched (may be NULL) gets the identity that matched, or
 * NULL. True for a route that names no client.
 */
bool route_client_allowed(const struct policy_route *r, const char *ids,
                          const char **matched);
/* The 403 detail for a client route_client_allowed refused, into
   buf[0,cap) (NUL-terminated; CG_MAX_DETAIL is enough). */
void route_client_refusal(const struct policy_route *r, const char *ids,
                          char *buf, size_t cap);

/* The outcome for one record. */
struct policy_decision {
	bool allow;
	const char *rule_id; /* the rule that decided; owned by the policy */
	unsigned subject;    /* index of the subject that decided a deny
	                        (or the last one checked on allow) */
	struct consent_lookup_result
	    consent; /* the row used for that subject */
	/* the evidence id of every subject's row, in subject order (empty
	 * when the person has none): every one proves the decision */
	unsigned nevidence;
	struct cg_slice evidence[CG_MAX_SUBJECTS];
	/* each subject's own decision and rule, in the same order: the
	 * decision log proves every person's part, not only the decider's */
	const char *rules[CG_MAX_SUBJECTS];
	bool allows[CG_MAX_SUBJECTS];
};

/*
 * Decide one record of an inspected route: every subject must be allowed
 * (first denied subject decides); no subject at all is an unknown person.
 * Every subject is looked up, also after a deny, so out->evidence holds
 * the evidence of each (out->nevidence == nsubjects, at most
 * CG_MAX_SUBJECTS). now is unix seconds (consent age conditions). Pure; no
 * allocation.
 */
void rule_decide(const struct policy_route *r, const struct consent_table *t,
                 const struct cg_slice *subjects, unsigned nsubjects,
                 int64_t now, struct policy_decision *out);

/*
 * Decide one scanned record: as rule_decide over its subjects, and a
 * required locator that found nobody (rec->missing) counts as one unknown
 * person, so a post without its author is never kept for a mention. Then
 * out->subject is rec->nsubjects. The proxy and the CLI both decide with
 * this. Pure; no allocation.
 */
void rule_decide_record(const struct policy_route *r,
                        const struct consent_table *t,
                        const struct scan_record *rec, int64_t now,
                        struct policy_decision *out);

/* ---- for tools and the proxy ---- */

/* Warnings found at load (rules that never match, unused declarations),
 * each "file:line:col: message". Owned by the policy. */
const struct cg_errors *policy_warnings(const struct policy *p);

/*
 * Check the consent table t against the policy: a row whose purpose p
 * neither declares ("purposes") nor knowingly ignores ("ignored_purposes")
 * would be silently ignored (a typo like "ai_training" loses that person's
 * opt-out), so each such purpose is one error in errs: "table.csv:LINE:
 * ..." at its first row for a table imported from CSV, "table.snap: ...
 * (N rows)" for a snapshot. Call it wherever a policy meets a table (serve,
 * reload, serve --check, eval, test). Returns 0, or -1 when t has such
 * rows. Pure: no I/O.
 */
/* True when p declares purpose name[0,len) or lists it in
 * "ignored_purposes": a consent row of it is one the policy can see. */
bool policy_purpose_known(const struct policy *p, const char *name, size_t len);
int policy_check_consent(const struct policy *p, const struct consent_table *t,
                         struct cg_errors *errs);

/* Number of rules and the i-th rule's id, in file order. */
unsigned policy_rule_count(const struct policy *p);
const char *policy_rule_id(const struct policy *p, unsigned i);
/*
 * The ids a decision on route r can name, in file order: the rules of its
 * purpose up to the first without conditions (none after it can match),
 * then "(no rule)" when no such rule ends the list. The first cap go to
 * ids; returns how many there are. For counters that exist before traffic.
 */
unsigned route_rule_ids(const struct policy_route *r, const char **ids,
                        unsigned cap);

/*
 * Write why decision d was taken into buf (NUL-terminated, truncated to
 * cap): the person's jurisdiction, the conditions of the deciding rule with
 * the values that met them, and the evidence id. now as for rule_decide.
 */
void rule_explain(const struct policy_route *r, const struct policy_decision *d,
                  int64_t now, char *buf, size_t cap);

/*
 * The body format of a request to an inspected route: SCAN_FORMAT_* or -1
 * when the route does not accept it (the proxy answers 415).
 * application/json is told apart by the first non-whitespace byte ('[' an
 * array, '{' an object, or ARRAY_AT when the route accepts that);
 * application/x-ndjson, application/ndjson, application/jsonl and
 * application/x-jsonlines are NDJSON;
 * an empty content type means NDJSON when the route accepts it, else it is
 * sniffed as application/json. A charset other than utf-8 gives -1.
 */
int route_body_format(const struct policy_route *r,
                      struct cg_slice content_type, const char *body,
                      size_t len);

/* A kept record's byte range [start, end) in the body. */
struct policy_span {
	size_t start, end;
};

/*
 * Write the body to forward into out, which holds at least len + 1 bytes:
 * NDJSON: the kept records joined by "\n" with a final "\n" (nothing when
 * none is kept); ARRAY: "[" kept records joined by "," "]"; ARRAY_AT: the
 * original document with its array rebuilt so (array_open and array_close
 * from scan_iter); OBJECT: the record or nothing. Returns the length.
 */
size_t route_body_rebuild(enum scan_format format, const char *body, size_t len,
                          size_t array_open, size_t array_close,
                          const struct policy_span *kept, unsigned nkept,
                          char *out);

#endif
