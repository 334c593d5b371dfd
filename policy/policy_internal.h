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

/*
 * rule.c: one subject's outcome, and the decision of a record from its
 * subjects' outcomes. rule_decide and the verdict's dedup table
 * (memo.c) both decide through rule_decide_with, so a subject decided once
 * per request decides as a lookup per record would.
 */
struct rule_outcome {
	struct consent_lookup_result c; /* the subject's row */
	const struct policy_rule *ru; /* the first rule matching; NULL: none */
};

/* The outcome of subject i of a record; tmp may be filled and returned. */
typedef const struct rule_outcome *(*rule_outcome_cb)(void *arg, unsigned i,
                                                      struct rule_outcome *tmp);

/* The consent table's id of r's purpose, -1 when none (or t NULL). */
int rule_purpose_id(const struct policy_route *r,
                    const struct consent_table *t);
/* The first rule of r's purpose that matches c; NULL when none. */
const struct policy_rule *
rule_first_match(const struct policy_route *r,
                 const struct consent_lookup_result *c, int64_t now);
/* The outcome of subject (looked up for pid) or, subject NULL, of the
   unknown person. */
void rule_outcome_of(const struct policy_route *r,
                     const struct consent_table *t, int pid,
                     const struct cg_slice *subject, int64_t now,
                     struct rule_outcome *o);
/* rule_decide_record over n subjects whose outcomes each gives (asked in
   subject order, possibly twice), nobody the unknown person's. */
void rule_decide_with(const struct policy_route *r, unsigned n,
                      unsigned missing, rule_outcome_cb each, void *arg,
                      const struct rule_outcome *nobody,
                      struct policy_decision *out);

/*
 * memo.c: a request's distinct subjects and their outcomes, so that each
 * is looked up (in one batch with its neighbours) and matched once per
 * request. Open addressing keyed by the subject bytes, which it copies;
 * fixed size, embedded, no allocation. Cleared per request, and when a
 * record's subjects do not fit (memo_room) between two windows of
 * records: one record's always do.
 */
#define MEMO_PEOPLE 256 /* distinct subjects held */
#define MEMO_SLOTS 512  /* hash slots (a power of two, > MEMO_PEOPLE) */
#define MEMO_BYTES 8192 /* bytes of subject text held: one record's worst */

struct memo_entry {
	uint64_t hash;
	uint32_t off; /* its text in memo.text */
	uint32_t len;
	struct rule_outcome o; /* valid once memo_decide has run on it */
};

struct memo {
	uint16_t slot[MEMO_SLOTS]; /* 0: empty, else entry index + 1 */
	unsigned n;                /* entries */
	unsigned decided;          /* entries [0, decided) hold outcomes */
	size_t used;               /* bytes of text */
	struct memo_entry ent[MEMO_PEOPLE];
	char text[MEMO_BYTES];
};

void memo_clear(struct memo *m);
/* Room for nsubjects more distinct subjects of bytes text in all? */
bool memo_room(const struct memo *m, unsigned nsubjects, size_t bytes);
/* The entry of subject s, added (undecided) when new. -1 when there is no
   room (see memo_room). */
int memo_intern(struct memo *m, struct cg_slice s);
/* Decide every new entry: their consent rows in batches
   (consent_lookup_many, prefetching), then each one's first rule. */
void memo_decide(struct memo *m, const struct policy_route *r,
                 const struct consent_table *t, int pid, int64_t now);

static inline struct cg_slice
memo_subject(const struct memo *m, unsigned i)
{
	return (struct cg_slice){m->text + m->ent[i].off, m->ent[i].len};
}

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

/* FNV-1a, 64 bits: the policy digest, the memo's subject hash. */
static inline uint64_t
policy_fnv1a64(const char *buf, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)buf[i];
		h *= 0x100000001b3ull;
	}
	return h;
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
