/*
 * rule.c: deciding a record against the compiled rules, explaining a
 * decision, and the load-time lint (rules that can never match, unused
 * declarations).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "policy_internal.h"

static const char *const status_words[] = {
    "none",
    "granted",
    "denied",
    "withdrawn",
};

static bool
has_row(const struct consent_lookup_result *c)
{
	return c->known && c->status != CONSENT_STATUS_NONE;
}

/* Every condition present must hold; unknown people have no jurisdiction,
 * no status and no consent age, so those conditions never match them. */
static bool
rule_matches(const struct policy_rule *ru,
             const struct consent_lookup_result *c, int64_t now)
{
	if (ru->has_known && ru->known != c->known)
		return false;
	if (ru->has_jurisdiction) {
		int ci = policy_country_index(c->jurisdiction);
		if (!c->known || ci < 0 ||
		    !policy_bit_test(ru->countries, (unsigned)ci))
			return false;
	}
	if (ru->has_status &&
	    (!c->known || (unsigned)c->status > CONSENT_STATUS_WITHDRAWN ||
	     !(ru->status & POLICY_STATUS_BIT(c->status))))
		return false;
	if (ru->has_older &&
	    (!has_row(c) || now - c->updated_at <= ru->older_than))
		return false;
	if (ru->has_newer &&
	    (!has_row(c) || now - c->updated_at >= ru->newer_than))
		return false;
	return true;
}

/* The first rule that applies to purpose and matches; NULL when none. */
static const struct policy_rule *
first_match(const struct policy *p, int purpose,
            const struct consent_lookup_result *c, int64_t now)
{
	uint64_t bit = purpose >= 0 ? 1ull << purpose : 0;

	for (unsigned i = 0; i < p->nrules; i++) {
		const struct policy_rule *ru = &p->rules[i];
		if (ru->has_purposes && !(ru->purposes & bit))
			continue;
		if (rule_matches(ru, c, now))
			return ru;
	}
	return NULL;
}

const struct policy_rule *
rule_first_match(const struct policy_route *r,
                 const struct consent_lookup_result *c, int64_t now)
{
	return first_match(r->policy, r->purpose, c, now);
}

unsigned
route_rule_ids(const struct policy_route *r, const char **ids, unsigned cap)
{
	const struct policy *p = r->policy;
	uint64_t bit = r->purpose >= 0 ? 1ull << r->purpose : 0;
	unsigned n = 0;

	for (unsigned i = 0; i < p->nrules; i++) {
		const struct policy_rule *ru = &p->rules[i];

		if (ru->has_purposes && !(ru->purposes & bit))
			continue;
		if (n < cap)
			ids[n] = ru->id;
		n++;
		if (!ru->has_known && !ru->has_jurisdiction &&
		    !ru->has_status && !ru->has_older && !ru->has_newer)
			return n; /* matches every record */
	}
	if (n < cap)
		ids[n] = "(no rule)";
	return n + 1;
}

int
rule_purpose_id(const struct policy_route *r, const struct consent_table *t)
{
	const struct policy *p = r->policy;
	const char *pname = r->purpose >= 0 ? p->purposes[r->purpose].name : "";

	return t != NULL ? consent_purpose_id(t, pname, strlen(pname)) : -1;
}

/* One more subject's part in the proof: its rule, its own outcome, its
   evidence. */
static void
add_evidence(struct policy_decision *out, const struct rule_outcome *o)
{
	if (out->nevidence >= CG_MAX_SUBJECTS)
		return;
	out->rules[out->nevidence] = o->ru != NULL ? o->ru->id : "(no rule)";
	out->allows[out->nevidence] = o->ru != NULL && o->ru->allow;
	out->evidence[out->nevidence++] = o->c.evidence;
}

/* Every subject must be allowed, the first denied one decides; nobody at
   all (n == 0) is decided as the unknown person. After a deny the rest are
   still added, for each one's evidence and own rule (the proof of every
   person). */
static void
combine(const struct policy_route *r, unsigned n, rule_outcome_cb each,
        void *arg, const struct rule_outcome *nobody,
        struct policy_decision *out)
{
	struct rule_outcome tmp;

	/* not the whole struct: the evidence array is filled as far as
	 * nevidence says, and this runs for every record */
	out->allow = true;
	out->rule_id = NULL;
	out->subject = 0;
	out->nevidence = 0;
	memset(&out->consent, 0, sizeof(out->consent));
	if (r->action != POLICY_ACTION_INSPECT) {
		out->rule_id = "(pass)";
		return;
	}
	for (unsigned i = 0; i < (n ? n : 1); i++) {
		const struct rule_outcome *o = n ? each(arg, i, &tmp) : nobody;

		out->subject = i;
		out->consent = o->c;
		/* load guarantees a default; fail closed all the same */
		out->allow = o->ru != NULL && o->ru->allow;
		out->rule_id = o->ru != NULL ? o->ru->id : "(no rule)";
		if (n > 0)
			add_evidence(out, o);
		if (!out->allow) {
			for (unsigned k = i + 1; k < n; k++)
				add_evidence(out, each(arg, k, &tmp));
			return;
		}
	}
}

void
rule_decide_with(const struct policy_route *r, unsigned n, unsigned missing,
                 rule_outcome_cb each, void *arg,
                 const struct rule_outcome *nobody, struct policy_decision *out)
{
	struct rule_outcome tmp;

	if (missing != 0) {
		/* a required locator found nobody: an unknown person, decided
		 * before the people who are there */
		combine(r, 0, each, arg, nobody, out);
		out->subject = n;
		if (!out->allow) {
			for (unsigned k = 0; k < n; k++)
				add_evidence(out, each(arg, k, &tmp));
			return;
		}
		if (n == 0)
			return;
	}
	combine(r, n, each, arg, nobody, out);
}

void
rule_outcome_of(const struct policy_route *r, const struct consent_table *t,
                int pid, const struct cg_slice *subject, int64_t now,
                struct rule_outcome *o)
{
	memset(&o->c, 0, sizeof(o->c));
	if (subject != NULL && t != NULL)
		consent_lookup(t, subject->ptr, subject->len, pid, &o->c);
	o->ru = rule_first_match(r, &o->c, now);
}

/* rule_decide's subjects, looked up one at a time as they are asked for */
struct direct {
	const struct policy_route *r;
	const struct consent_table *t;
	const struct cg_slice *subjects;
	int pid;
	int64_t now;
};

static const struct rule_outcome *
direct_each(void *arg, unsigned i, struct rule_outcome *tmp)
{
	const struct direct *d = arg;

	rule_outcome_of(d->r, d->t, d->pid, &d->subjects[i], d->now, tmp);
	return tmp;
}

static void
decide_direct(const struct policy_route *r, const struct consent_table *t,
              const struct cg_slice *subjects, unsigned n, unsigned missing,
              int64_t now, struct policy_decision *out)
{
	struct direct d = {r, t, subjects, -1, now};
	struct rule_outcome nobody;

	if (r->action == POLICY_ACTION_INSPECT)
		d.pid = rule_purpose_id(r, t);
	rule_outcome_of(r, t, d.pid, NULL, now, &nobody);
	rule_decide_with(r, n, missing, direct_each, &d, &nobody, out);
}

void
rule_decide(const struct policy_route *r, const struct consent_table *t,
            const struct cg_slice *subjects, unsigned nsubjects, int64_t now,
            struct policy_decision *out)
{
	decide_direct(r, t, subjects, nsubjects, 0, now, out);
}

void
rule_decide_record(const struct policy_route *r, const struct consent_table *t,
                   const struct scan_record *rec, int64_t now,
                   struct policy_decision *out)
{
	decide_direct(r, t, rec->subjects, rec->nsubjects, rec->missing, now,
	              out);
}

static const struct policy_rule *
rule_by_id(const struct policy *p, const char *id)
{
	for (unsigned i = 0; id != NULL && i < p->nrules; i++)
		if (strcmp(p->rules[i].id, id) == 0)
			return &p->rules[i];
	return NULL;
}

static void appendf(char *buf, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
appendf(char *buf, size_t cap, const char *fmt, ...)
{
	size_t n = strnlen(buf, cap);
	va_list ap;

	if (n + 1 >= cap)
		return;
	va_start(ap, fmt);
	vsnprintf(buf + n, cap - n, fmt, ap);
	va_end(ap);
}

static void
format_duration(int64_t s, char *buf, size_t cap)
{
	if (s % 86400 == 0)
		snprintf(buf, cap, "%lldd", (long long)(s / 86400));
	else if (s % 3600 == 0)
		snprintf(buf, cap, "%lldh", (long long)(s / 3600));
	else if (s % 60 == 0)
		snprintf(buf, cap, "%lldm", (long long)(s / 60));
	else
		snprintf(buf, cap, "%llds", (long long)s);
}

void
rule_explain(const struct policy_route *r, const struct policy_decision *d,
             int64_t now, char *buf, size_t cap)
{
	const struct consent_lookup_result *c = &d->consent;
	const struct policy_rule *ru = rule_by_id(r->policy, d->rule_id);
	char age[32], lim[32];
	const char *sep = "";

	if (cap == 0)
		return;
	buf[0] = '\0';
	if (!c->known)
		appendf(buf, cap, "unknown person (no consent row)");
	else
		appendf(buf, cap, "jurisdiction=%s",
		        c->jurisdiction[0] ? c->jurisdiction : "(none)");
	if (ru == NULL) {
		appendf(buf, cap, "; %s", d->rule_id ? d->rule_id : "");
		goto evidence;
	}
	appendf(buf, cap, "; rule %s: ", ru->id);
	if (ru->is_default) {
		appendf(buf, cap, "default (no conditions)");
		goto evidence;
	}
	if (ru->has_known) {
		appendf(buf, cap, "known=%s", ru->known ? "true" : "false");
		sep = ", ";
	}
	if (ru->has_jurisdiction) {
		appendf(buf, cap, "%sjurisdiction in [%s] (%s)", sep,
		        ru->jurisdiction_text ? ru->jurisdiction_text : "",
		        c->jurisdiction);
		sep = ", ";
	}
	if (ru->has_status) {
		appendf(buf, cap, "%sstatus in [", sep);
		const char *ssep = "";
		for (unsigned s = 0; s < 4; s++)
			if (ru->status & POLICY_STATUS_BIT(s)) {
				appendf(buf, cap, "%s%s", ssep,
				        status_words[s]);
				ssep = ",";
			}
		appendf(buf, cap, "] (%s)",
		        (unsigned)c->status < 4 ? status_words[c->status]
		                                : "?");
		sep = ", ";
	}
	format_duration(now - c->updated_at, age, sizeof(age));
	if (ru->has_older) {
		format_duration(ru->older_than, lim, sizeof(lim));
		appendf(buf, cap, "%solder_than %s (%s)", sep, lim, age);
		sep = ", ";
	}
	if (ru->has_newer) {
		format_duration(ru->newer_than, lim, sizeof(lim));
		appendf(buf, cap, "%snewer_than %s (%s)", sep, lim, age);
	}
evidence:
	if (c->evidence.len > 0)
		appendf(buf, cap, "; evidence=%.*s", (int)c->evidence.len,
		        c->evidence.ptr);
}

/* ---- lint ---- */

/* Does every person matching b also match a (purposes aside)? */
static bool
implied_by(const struct policy_rule *a, const struct policy_rule *b)
{
	bool b_known_true = (b->has_known && b->known) || b->has_jurisdiction ||
	                    b->has_status || b->has_older || b->has_newer;

	if (a->has_known) {
		if (a->known && !b_known_true)
			return false;
		if (!a->known && !(b->has_known && !b->known))
			return false;
	}
	if (a->has_jurisdiction) {
		if (!b->has_jurisdiction)
			return false;
		for (size_t i = 0; i < sizeof(a->countries); i++)
			if (b->countries[i] & ~a->countries[i])
				return false;
	}
	if (a->has_status && (!b->has_status || (b->status & ~a->status) != 0))
		return false;
	if (a->has_older && (!b->has_older || b->older_than < a->older_than))
		return false;
	if (a->has_newer && (!b->has_newer || b->newer_than > a->newer_than))
		return false;
	return true;
}

static bool
never_matches(const struct policy_rule *ru, const char **why)
{
	if (ru->has_known && !ru->known &&
	    (ru->has_jurisdiction || ru->has_status || ru->has_older ||
	     ru->has_newer)) {
		*why = "unknown people (known: false) have no jurisdiction, "
		       "status or consent age";
		return true;
	}
	if (ru->has_status && ru->status == POLICY_STATUS_BIT(0) &&
	    (ru->has_older || ru->has_newer)) {
		*why = "an age condition needs a consent row, which status "
		       "'none' excludes";
		return true;
	}
	if (ru->has_older && ru->has_newer &&
	    ru->older_than >= ru->newer_than - 1) {
		*why = "no consent age is both older_than and newer_than these";
		return true;
	}
	return false;
}

static bool
route_covers(const struct policy_route *a, const struct policy_route *b)
{
	if (strcmp(a->method, "*") != 0 && strcmp(a->method, b->method) != 0)
		return false;
	if (!a->prefix)
		return !b->prefix && strcmp(a->path, b->path) == 0;
	return strncmp(a->path, b->path, strlen(a->path)) == 0;
}

void
rule_lint(struct policy *p, const char *name)
{
	struct cg_errors *w = &p->warnings;
	uint64_t used = 0, named = 0;

	for (unsigned i = 0; i < p->nroutes; i++) {
		const struct policy_route *r = &p->routes[i];
		if (r->action == POLICY_ACTION_INSPECT && r->purpose >= 0)
			used |= 1ull << r->purpose;
		for (unsigned j = 0; j < i; j++)
			if (route_covers(&p->routes[j], r)) {
				cg_errors_add(w, name, r->line, r->col,
				              "warning: routes[%u] ('%s') is "
				              "never used: routes[%u] ('%s') "
				              "before it matches every request "
				              "it would",
				              i, r->name, j, p->routes[j].name);
				break;
			}
	}
	for (unsigned k = 0; k < p->nrules; k++) {
		const struct policy_rule *b = &p->rules[k];
		uint64_t eb = (b->has_purposes ? b->purposes : used) & used;
		const char *why;

		named |= b->purposes;
		if (never_matches(b, &why)) {
			cg_errors_add(w, name, b->line, b->col,
			              "warning: rule '%s' can never match: %s",
			              b->id, why);
			continue;
		}
		if (eb == 0) {
			cg_errors_add(w, name, b->line, b->col,
			              "warning: rule '%s' applies to no "
			              "purpose of an inspected route",
			              b->id);
			continue;
		}
		for (unsigned j = 0; j < k; j++) {
			const struct policy_rule *a = &p->rules[j];
			uint64_t ea = a->has_purposes ? a->purposes : used;
			if ((eb & ~ea) != 0 || !implied_by(a, b))
				continue;
			if (a->is_default)
				cg_errors_add(w, name, b->line, b->col,
				              "warning: rule '%s' can never "
				              "match: the default rule '%s' "
				              "(line %d) before it decides "
				              "every person",
				              b->id, a->id, a->line);
			else
				cg_errors_add(w, name, b->line, b->col,
				              "warning: rule '%s' can never "
				              "match: rule '%s' (line %d) "
				              "before it has the same or wider "
				              "conditions",
				              b->id, a->id, a->line);
			break;
		}
	}
	for (unsigned i = 0; i < p->npurposes; i++)
		if (!(used & (1ull << i)))
			cg_errors_add(
			    w, name, p->purposes[i].line, p->purposes[i].col,
			    "warning: purpose '%s' is declared but "
			    "no inspected route uses it%s",
			    p->purposes[i].name,
			    (named & (1ull << i)) ? " (only rules)" : "");
	for (unsigned i = 0; i < p->ngroups; i++)
		if (!(p->groups_used & (1ull << i)))
			cg_errors_add(w, name, p->groups[i].line,
			              p->groups[i].col,
			              "warning: jurisdiction group '%s' is "
			              "declared but no rule uses it",
			              p->groups[i].name);
}
