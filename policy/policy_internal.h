/*
 * policy_internal.h: the compiled form of a rule file, shared by policy.c
 * (load, validate, snapshot), rule.c (decisions, lint) and route.c
 * (matching, body formats). Nobody outside policy/ includes it.
 */
#ifndef CONSENTGATE_POLICY_INTERNAL_H
#define CONSENTGATE_POLICY_INTERNAL_H

#include "consentgate/policy.h"

#define POLICY_COUNTRY_BITS (26 * 26) /* one bit per two-letter code */

/* Status bits of a rule's "status" condition. */
#define POLICY_STATUS_BIT(s) (1u << (s)) /* s: enum consent_status */

struct policy_purpose {
	char *name;
	char *aipref;
	char *fideslang;
	int line, col;
};

struct policy_group {
	char *name;
	uint8_t countries[POLICY_COUNTRY_BITS / 8 + 1];
	int line, col;
};

struct policy_route {
	const struct policy *policy; /* back pointer, for explanations */
	char *name;                  /* given or "METHOD path" */
	char *method;                /* "*" = any */
	char *path;
	size_t method_len, path_len; /* for matching without strlen */
	bool prefix;
	enum policy_action action;
	int purpose;      /* index into purposes, -1 for pass */
	unsigned formats; /* SCAN_FORMAT_* bits */
	bool has_array_at;
	struct jsonptr array_at;
	struct jsonptr locators[CG_MAX_LOCATORS];
	struct scan_spec spec;
	char *subject_header;
	enum policy_on_deny on_deny;
	bool content_usage;
	bool shadow;    /* decided and logged, everything forwarded */
	char **clients; /* "kind:value" identities it takes; none: any */
	unsigned nclients;
	/* the path as upstream frameworks route it (route.c canon_path):
	 * the exact form for a path, the full form for a prefix */
	char *canon;
	size_t canon_len;
	bool may_alias; /* can take a request that means an inspected route */
	int line, col;
};

/* One compiled rule: every present condition must hold. */
struct policy_rule {
	char *id;
	bool has_purposes; /* false: applies to every purpose */
	uint64_t purposes; /* bit per purpose */
	bool has_known, known;
	bool has_jurisdiction;
	uint8_t countries[POLICY_COUNTRY_BITS / 8 + 1];
	bool has_status;
	unsigned status; /* POLICY_STATUS_BIT mask */
	bool has_older, has_newer;
	int64_t older_than, newer_than; /* seconds */
	bool allow;
	bool is_default; /* no "if" */
	/* the source text of the conditions, for explanations */
	char *jurisdiction_text;
	int line, col;
};

struct policy {
	char *id;
	char digest[17];
	struct policy_purpose *purposes;
	unsigned npurposes;
	struct policy_group *groups;
	unsigned ngroups;
	struct policy_route *routes;
	unsigned nroutes;
	struct policy_rule *rules;
	unsigned nrules;
	char **ignored; /* "ignored_purposes": consent rows loading skips */
	unsigned nignored;
	bool has_inspect;          /* some route is inspected */
	bool shadow;               /* "shadow": every inspected route */
	uint64_t groups_used;      /* bit per group named by a rule */
	struct cg_errors warnings; /* from rule_lint at load */
};

/* rule.c: warnings (never-matching, shadowed, unused) into p->warnings. */
void rule_lint(struct policy *p, const char *name);

/* route.c: the routes' normalised paths and alias flags, and warnings for
 * routes that can take a request meaning an inspected route. -1: out of
 * memory. */
int route_compile(struct policy *p, const char *name);

/* A country code "DE" to its bit index, -1 when not two upper-case letters.
 * Here, not in policy.c, so that rule.c needs nothing back from the loader
 * (policy.c calls rule.c's lint; the dependency goes one way). */
static inline int
policy_country_index(const char *cc)
{
	if (cc[0] < 'A' || cc[0] > 'Z' || cc[1] < 'A' || cc[1] > 'Z' ||
	    cc[2] != '\0')
		return -1;
	return (cc[0] - 'A') * 26 + (cc[1] - 'A');
}

static inline bool
policy_bit_test(const uint8_t *bits, unsigned i)
{
	return (bits[i / 8] >> (i % 8)) & 1;
}

static inline void
policy_bit_set(uint8_t *bits, unsigned i)
{
	bits[i / 8] |= (uint8_t)(1u << (i % 8));
}

#endif
