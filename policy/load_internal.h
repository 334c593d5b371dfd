/*
 * load_internal.h: the rule-file loader's state and helpers, shared by
 * policy.c (the document, purposes, jurisdictions, the compiled policy),
 * route_load.c (routes) and rule_load.c (rules). Every helper reports into
 * ld->errs as "file:line:col: path: message" and marks ld->failed; none
 * stops at the first error. Nobody outside policy/ includes it.
 */
#ifndef CONSENTGATE_LOAD_INTERNAL_H
#define CONSENTGATE_LOAD_INTERNAL_H

#include <jansson.h>

#include "consentgate/jsonpos.h"
#include "policy_internal.h"

struct load {
	const char *name;
	struct cg_errors *errs;
	struct jsonpos *pos; /* NULL: messages without positions */
	struct policy *p;
	bool failed;
	json_t *rule_jsons; /* the "rules" array, for the lint pass */
};

/* Where path is in the file: its key (key) or its value. */
void load_locate(struct load *ld, const char *path, bool key, int *line,
                 int *col);
/* One error at path, printf-style. */
void load_err(struct load *ld, const char *path, bool key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Unknown keys of obj (allowed: NULL-terminated) are errors. */
void load_check_keys(struct load *ld, json_t *obj, const char *path,
                     const char *const *allowed);
/* An HTTP token / a name of letters, digits, '.', '_', '-'. */
bool load_is_token(const char *s);
bool load_is_name(const char *s);
bool load_looks_like_country(const char *s);
/* A string member: NULL when absent (an error when required) or of
 * another type (an error). */
const char *load_string(struct load *ld, json_t *obj, const char *path,
                        const char *key, bool required);
/* strdup that records an allocation failure. */
char *load_strdup(struct load *ld, const char *s);
/* Indexes of declared purposes and groups, -1 when not declared; the
 * declared purposes as "a, b" for messages. */
int load_purpose_index(const struct policy *p, const char *name);
int load_group_index(const struct policy *p, const char *name);
void load_purpose_list(const struct policy *p, char *buf, size_t cap);

/* route_load.c: routes[idx]. */
void route_load(struct load *ld, json_t *v, unsigned idx);
/* rule_load.c: rules[idx]; then every inspected purpose has a default. */
void rule_load(struct load *ld, json_t *v, unsigned idx);
void rule_check_defaults(struct load *ld);

#endif
