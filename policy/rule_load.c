/*
 * rule_load.c: one entry of a rule file's "rules" (id, purposes, the "if"
 * conditions, then), and the check that every inspected purpose reaches a
 * default rule.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "load_internal.h"

/* Paths in messages are cut at CG_MAX_JSON_PATH on purpose. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

/* "400d", "12h", "30m", "90s" into seconds; -1 when malformed. */
static int64_t
parse_duration(const char *s)
{
	int64_t v = 0;
	const char *c = s;

	if (!isdigit((unsigned char)*c))
		return -1;
	for (; isdigit((unsigned char)*c); c++) {
		v = v * 10 + (*c - '0');
		if (v > 100000000)
			return -1;
	}
	if (c[0] == '\0' || c[1] != '\0')
		return -1;
	switch (*c) {
	case 'd':
		return v * 86400;
	case 'h':
		return v * 3600;
	case 'm':
		return v * 60;
	case 's':
		return v;
	default:
		return -1;
	}
}

static void
load_rule_if(struct load *ld, struct policy_rule *ru, json_t *cond,
             const char *path)
{
	static const char *const keys[] = {
	    "known", "jurisdiction", "status", "older_than", "newer_than", NULL,
	};
	static const char *const status_names[] = {
	    "none", "granted", "denied", "withdrawn", NULL,
	};
	char sub[CG_MAX_JSON_PATH], esub[CG_MAX_JSON_PATH], list[300];
	json_t *a, *e;
	size_t i;

	if (!json_is_object(cond)) {
		load_err(
		    ld, path, false,
		    "must be an object of conditions (known, jurisdiction, "
		    "status, older_than, newer_than)");
		return;
	}
	if (json_object_size(cond) == 0)
		load_err(ld, path, false,
		         "no conditions: leave 'if' out for a default rule");
	load_check_keys(ld, cond, path, keys);

	a = json_object_get(cond, "known");
	if (a != NULL) {
		snprintf(sub, sizeof(sub), "%s.known", path);
		if (!json_is_boolean(a))
			load_err(ld, sub, false, "must be true or false");
		ru->has_known = true;
		ru->known = json_is_true(a);
	}

	a = json_object_get(cond, "jurisdiction");
	if (a != NULL) {
		snprintf(sub, sizeof(sub), "%s.jurisdiction", path);
		ru->has_jurisdiction = true;
		if (!json_is_array(a) || json_array_size(a) == 0)
			load_err(ld, sub, false,
			         "must be a non-empty list of group names or "
			         "country codes");
		list[0] = '\0';
		json_array_foreach(a, i, e)
		{
			const char *t = json_string_value(e);
			int g;
			snprintf(esub, sizeof(esub), "%s[%zu]", sub, i);
			if (t == NULL) {
				load_err(ld, esub, false, "must be a string");
				continue;
			}
			size_t n = strlen(list);
			snprintf(list + n, sizeof(list) - n, "%s%s",
			         i ? "," : "", t);
			if ((g = load_group_index(ld->p, t)) >= 0) {
				ld->p->groups_used |= 1ull << g;
				for (unsigned b = 0; b < sizeof(ru->countries);
				     b++)
					ru->countries[b] |=
					    ld->p->groups[g].countries[b];
			} else if (policy_country_index(t) >= 0) {
				policy_bit_set(
				    ru->countries,
				    (unsigned)policy_country_index(t));
			} else {
				char groups[300];
				groups[0] = '\0';
				for (unsigned k = 0; k < ld->p->ngroups; k++) {
					size_t m = strlen(groups);
					snprintf(groups + m, sizeof(groups) - m,
					         "%s%s", k ? ", " : "",
					         ld->p->groups[k].name);
				}
				load_err(ld, esub, false,
				         "unknown jurisdiction '%s': neither a "
				         "declared group (%s) nor a two-letter "
				         "upper-case country code",
				         t, ld->p->ngroups ? groups : "none");
			}
		}
		ru->jurisdiction_text = load_strdup(ld, list);
	}

	a = json_object_get(cond, "status");
	if (a != NULL) {
		snprintf(sub, sizeof(sub), "%s.status", path);
		ru->has_status = true;
		if (!json_is_array(a) || json_array_size(a) == 0)
			load_err(ld, sub, false,
			         "must be a non-empty list of granted, denied, "
			         "withdrawn, none");
		json_array_foreach(a, i, e)
		{
			const char *t = json_string_value(e);
			int st = -1;
			snprintf(esub, sizeof(esub), "%s[%zu]", sub, i);
			for (int k = 0; t && status_names[k]; k++)
				if (strcmp(t, status_names[k]) == 0)
					st = k;
			if (st < 0) {
				load_err(ld, esub, false,
				         "unknown status (expected granted, "
				         "denied, withdrawn or none)");
				continue;
			}
			ru->status |= POLICY_STATUS_BIT(st);
		}
	}

	const char *age_keys[2] = {"older_than", "newer_than"};
	for (int k = 0; k < 2; k++) {
		a = json_object_get(cond, age_keys[k]);
		if (a == NULL)
			continue;
		snprintf(sub, sizeof(sub), "%s.%s", path, age_keys[k]);
		int64_t d = json_is_string(a)
		                ? parse_duration(json_string_value(a))
		                : -1;
		if (d <= 0)
			load_err(ld, sub, false,
			         "must be a positive duration like \"400d\", "
			         "\"12h\", \"30m\" or \"90s\"");
		if (k == 0) {
			ru->has_older = true;
			ru->older_than = d;
		} else {
			ru->has_newer = true;
			ru->newer_than = d;
		}
	}
}

void
rule_load(struct load *ld, json_t *v, unsigned idx)
{
	static const char *const keys[] = {
	    "id", "purposes", "if", "then", NULL,
	};
	struct policy_rule *ru = &ld->p->rules[idx];
	char path[CG_MAX_JSON_PATH], sub[CG_MAX_JSON_PATH], list[300];
	const char *s;
	json_t *a, *e;
	size_t i;

	snprintf(path, sizeof(path), "rules[%u]", idx);
	load_locate(ld, path, false, &ru->line, &ru->col);
	if (!json_is_object(v)) {
		load_err(ld, path, false, "a rule must be an object");
		ru->id = load_strdup(ld, "");
		return;
	}
	load_check_keys(ld, v, path, keys);

	s = load_string(ld, v, path, "id", true);
	if (s != NULL) {
		snprintf(sub, sizeof(sub), "%s.id", path);
		if (!load_is_name(s))
			load_err(ld, sub, false,
			         "a rule id is 1-64 letters, digits, '-', '_' "
			         "or '.'");
		for (unsigned k = 0; k < idx; k++)
			if (ld->p->rules[k].id &&
			    strcmp(ld->p->rules[k].id, s) == 0)
				load_err(ld, sub, false,
				         "duplicate rule id '%s' (also "
				         "rules[%u])",
				         s, k);
	}
	ru->id = load_strdup(ld, s ? s : "");

	a = json_object_get(v, "purposes");
	if (a != NULL) {
		ru->has_purposes = true;
		snprintf(sub, sizeof(sub), "%s.purposes", path);
		if (!json_is_array(a) || json_array_size(a) == 0)
			load_err(
			    ld, sub, false,
			    "must be a non-empty list of declared purposes "
			    "(leave it out for every purpose)");
		json_array_foreach(a, i, e)
		{
			char esub[CG_MAX_JSON_PATH];
			const char *t = json_string_value(e);
			int pi = t ? load_purpose_index(ld->p, t) : -1;
			snprintf(esub, sizeof(esub), "%s[%zu]", sub, i);
			if (pi < 0) {
				load_purpose_list(ld->p, list, sizeof(list));
				load_err(ld, esub, false,
				         "unknown purpose '%s' (declared: %s)",
				         t ? t : "(not a string)", list);
				continue;
			}
			ru->purposes |= 1ull << pi;
		}
	}

	a = json_object_get(v, "if");
	ru->is_default = a == NULL;
	if (a != NULL) {
		snprintf(sub, sizeof(sub), "%s.if", path);
		load_rule_if(ld, ru, a, sub);
	}

	s = load_string(ld, v, path, "then", true);
	if (s != NULL && strcmp(s, "allow") == 0) {
		ru->allow = true;
	} else if (s != NULL && strcmp(s, "deny") != 0) {
		snprintf(sub, sizeof(sub), "%s.then", path);
		load_err(ld, sub, false,
		         "unknown outcome '%s' (expected allow or deny)", s);
	}
}

/* Every inspected route's purpose must reach a default rule. */
void
rule_check_defaults(struct load *ld)
{
	struct policy *p = ld->p;
	uint64_t reported = 0;

	for (unsigned i = 0; i < p->nroutes; i++) {
		struct policy_route *r = &p->routes[i];
		bool found = false;
		char path[CG_MAX_JSON_PATH];

		if (r->action != POLICY_ACTION_INSPECT || r->purpose < 0)
			continue;
		for (unsigned k = 0; k < p->nrules; k++) {
			struct policy_rule *ru = &p->rules[k];
			if (ru->is_default &&
			    (!ru->has_purposes ||
			     (ru->purposes & (1ull << r->purpose))))
				found = true;
		}
		if (found || (reported & (1ull << r->purpose)))
			continue;
		reported |= 1ull << r->purpose;
		snprintf(path, sizeof(path), "routes[%u].purpose", i);
		load_err(ld, path, false,
		         "no default rule for purpose '%s': add a last rule "
		         "without 'if' (like {\"id\": \"default\", \"then\": "
		         "\"deny\"}) so every person gets a decision",
		         p->purposes[r->purpose].name);
	}
}
