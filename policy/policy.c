/*
 * policy.c: load a rule file, validate every part of it, compile it.
 *
 * jansson parses (duplicate keys rejected) but keeps no positions, so a
 * second small pass over the text (jsonpos.c) records the line and column
 * of every member and element by its path ("routes[1].purpose");
 * validation errors are then reported as "file:line:col: path: message",
 * all at once.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "consentgate/jsonpos.h"
#include "policy_internal.h"

/* Paths in messages are cut at CG_MAX_JSON_PATH on purpose. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

/* ---- the loader ---- */

struct load {
	const char *name;
	struct cg_errors *errs;
	struct jsonpos *pos; /* NULL: messages without positions */
	struct policy *p;
	bool failed;
	json_t *rule_jsons; /* the "rules" array, for the lint pass */
};

/* Where path is: its key (key) or its value; the parent's when unknown. */
static void
locate(struct load *ld, const char *path, bool key, int *line, int *col)
{
	jsonpos_find(ld->pos, path, key, line, col);
}

static void __attribute__((format(printf, 4, 5)))
err_at(struct load *ld, const char *path, bool key, const char *fmt, ...)
{
	char text[400];
	int line, col;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	locate(ld, path, key, &line, &col);
	if (path[0] != '\0')
		cg_errors_add(ld->errs, ld->name, line, col, "%s: %s", path,
		              text);
	else
		cg_errors_add(ld->errs, ld->name, line, col, "%s", text);
	ld->failed = true;
}

/* Unknown keys are errors: a typo must not silently weaken a policy. */
static void
check_keys(struct load *ld, json_t *obj, const char *path,
           const char *const *allowed)
{
	const char *key;
	json_t *v;
	char sub[CG_MAX_JSON_PATH], list[200];

	json_object_foreach(obj, key, v)
	{
		bool ok = false;
		for (unsigned i = 0; allowed[i] != NULL; i++)
			if (strcmp(key, allowed[i]) == 0)
				ok = true;
		if (ok)
			continue;
		list[0] = '\0';
		for (unsigned i = 0; allowed[i] != NULL; i++) {
			size_t n = strlen(list);
			snprintf(list + n, sizeof(list) - n, "%s%s",
			         i ? ", " : "", allowed[i]);
		}
		if (path[0] != '\0')
			snprintf(sub, sizeof(sub), "%s.%s", path, key);
		else
			snprintf(sub, sizeof(sub), "%s", key);
		err_at(ld, sub, true, "unknown key '%s' (expected one of: %s)",
		       key, list);
	}
}

static bool
is_tchar(unsigned char c)
{
	return isalnum(c) || (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool
is_token(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s; s++)
		if (!is_tchar((unsigned char)*s))
			return false;
	return true;
}

/* Names of purposes, groups and rule ids: letters, digits, - _ . */
static bool
is_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 64 || !isalnum((unsigned char)s[0]))
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && strchr("-_.", *s) == NULL)
			return false;
	return true;
}

static bool
looks_like_country(const char *s)
{
	return policy_country_index(s) >= 0;
}

/* A string member: NULL when absent; an error when of another type. */
static const char *
get_string(struct load *ld, json_t *obj, const char *path, const char *key,
           bool required)
{
	char sub[CG_MAX_JSON_PATH];
	json_t *v = json_object_get(obj, key);

	snprintf(sub, sizeof(sub), "%s.%s", path, key);
	if (v == NULL) {
		if (required)
			err_at(ld, path, false, "missing '%s'", key);
		return NULL;
	}
	if (!json_is_string(v)) {
		err_at(ld, sub, false, "must be a string");
		return NULL;
	}
	if (json_string_length(v) != strlen(json_string_value(v))) {
		err_at(ld, sub, false, "must not contain a NUL character");
		return NULL;
	}
	return json_string_value(v);
}

static char *
xstrdup(struct load *ld, const char *s)
{
	char *d = strdup(s ? s : "");

	if (d == NULL) {
		cg_errors_add(ld->errs, ld->name, 0, 0, "out of memory");
		ld->failed = true;
	}
	return d;
}

static int
purpose_index(const struct policy *p, const char *name)
{
	for (unsigned i = 0; i < p->npurposes; i++)
		if (strcmp(p->purposes[i].name, name) == 0)
			return (int)i;
	return -1;
}

static int
group_index(const struct policy *p, const char *name)
{
	for (unsigned i = 0; i < p->ngroups; i++)
		if (strcmp(p->groups[i].name, name) == 0)
			return (int)i;
	return -1;
}

static void
purpose_list(const struct policy *p, char *buf, size_t cap)
{
	buf[0] = '\0';
	for (unsigned i = 0; i < p->npurposes; i++) {
		size_t n = strlen(buf);
		snprintf(buf + n, cap - n, "%s%s", i ? ", " : "",
		         p->purposes[i].name);
	}
	if (p->npurposes == 0)
		snprintf(buf, cap, "none");
}

static const char *const aipref_categories[] = {
    "train-ai", "train-genai", "search", "ai-use", NULL,
};

static void
load_purposes(struct load *ld, json_t *obj)
{
	static const char *const keys[] = {"aipref", "fideslang", NULL};
	const char *name;
	json_t *v;
	char path[CG_MAX_JSON_PATH];
	size_t n = json_object_size(obj);

	if (n > CG_MAX_PURPOSES) {
		err_at(ld, "purposes", false, "more than %d purposes",
		       CG_MAX_PURPOSES);
		return;
	}
	ld->p->purposes = calloc(n ? n : 1, sizeof(*ld->p->purposes));
	if (ld->p->purposes == NULL) {
		err_at(ld, "", false, "out of memory");
		return;
	}
	json_object_foreach(obj, name, v)
	{
		struct policy_purpose *pp;
		const char *s;

		snprintf(path, sizeof(path), "purposes.%s", name);
		if (!is_name(name))
			err_at(ld, path, true,
			       "purpose name must be 1-64 letters, digits, "
			       "'-', '_' or '.', starting with a letter or "
			       "digit");
		if (!json_is_object(v)) {
			err_at(ld, path, false,
			       "must be an object like {\"aipref\": "
			       "\"train-ai\"}");
			continue;
		}
		check_keys(ld, v, path, keys);
		pp = &ld->p->purposes[ld->p->npurposes++];
		pp->name = xstrdup(ld, name);
		locate(ld, path, true, &pp->line, &pp->col);
		s = get_string(ld, v, path, "aipref", true);
		if (s != NULL) {
			bool ok = false;
			for (unsigned i = 0; aipref_categories[i]; i++)
				if (strcmp(s, aipref_categories[i]) == 0)
					ok = true;
			if (!ok) {
				char sub[CG_MAX_JSON_PATH];
				snprintf(sub, sizeof(sub), "%s.aipref", path);
				err_at(ld, sub, false,
				       "unknown AI Preferences category '%s' "
				       "(known: train-ai, train-genai, search, "
				       "ai-use)",
				       s);
			}
			pp->aipref = xstrdup(ld, s);
		}
		s = get_string(ld, v, path, "fideslang", false);
		if (s != NULL) {
			bool ok = *s != '\0';
			for (const char *c = s; *c; c++)
				if (!islower((unsigned char)*c) &&
				    !isdigit((unsigned char)*c) && *c != '_' &&
				    *c != '.')
					ok = false;
			if (!ok) {
				char sub[CG_MAX_JSON_PATH];
				snprintf(sub, sizeof(sub), "%s.fideslang",
				         path);
				err_at(ld, sub, false,
				       "a fideslang data use is lower-case "
				       "words joined by '_' and '.', like "
				       "'train_ai_system'");
			}
			pp->fideslang = xstrdup(ld, s);
		}
	}
}

/* "ignored_purposes": consent-table purposes this policy knowingly skips. */
static void
load_ignored(struct load *ld, json_t *a)
{
	char sub[CG_MAX_JSON_PATH];
	json_t *e;
	size_t i;

	if (!json_is_array(a) || json_array_size(a) > CG_MAX_IGNORED_PURPOSES) {
		err_at(ld, "ignored_purposes", false,
		       "must be a list of purpose names (at most %d) that the "
		       "consent table holds and this policy ignores",
		       CG_MAX_IGNORED_PURPOSES);
		return;
	}
	ld->p->ignored = calloc(json_array_size(a) + 1, sizeof(char *));
	if (ld->p->ignored == NULL) {
		err_at(ld, "", false, "out of memory");
		return;
	}
	json_array_foreach(a, i, e)
	{
		const char *t = json_string_value(e);
		bool dup = false;

		snprintf(sub, sizeof(sub), "ignored_purposes[%zu]", i);
		if (t == NULL || !is_name(t)) {
			err_at(ld, sub, false,
			       "a purpose name is 1-64 letters, digits, '-', "
			       "'_' or '.', starting with a letter or digit");
			continue;
		}
		if (purpose_index(ld->p, t) >= 0) {
			err_at(ld, sub, false,
			       "'%s' is declared in \"purposes\": a purpose is "
			       "either decided or ignored, not both",
			       t);
			continue;
		}
		for (unsigned k = 0; k < ld->p->nignored; k++)
			dup |= strcmp(ld->p->ignored[k], t) == 0;
		if (dup) {
			err_at(ld, sub, false, "'%s' is listed twice", t);
			continue;
		}
		ld->p->ignored[ld->p->nignored++] = xstrdup(ld, t);
	}
}

static void
load_groups(struct load *ld, json_t *obj)
{
	const char *name;
	json_t *v;
	char path[CG_MAX_JSON_PATH], sub[CG_MAX_JSON_PATH];
	size_t n = json_object_size(obj);

	if (n > CG_MAX_GROUPS) {
		err_at(ld, "jurisdictions", false, "more than %d groups",
		       CG_MAX_GROUPS);
		return;
	}
	ld->p->groups = calloc(n ? n : 1, sizeof(*ld->p->groups));
	if (ld->p->groups == NULL) {
		err_at(ld, "", false, "out of memory");
		return;
	}
	json_object_foreach(obj, name, v)
	{
		struct policy_group *g;
		size_t i;
		json_t *e;

		snprintf(path, sizeof(path), "jurisdictions.%s", name);
		if (looks_like_country(name))
			err_at(ld, path, true,
			       "group name '%s' looks like a country code; "
			       "use a longer name",
			       name);
		else if (!is_name(name))
			err_at(ld, path, true,
			       "group name must be 1-64 letters, digits, "
			       "'-', '_' or '.'");
		if (!json_is_array(v) || json_array_size(v) == 0) {
			err_at(ld, path, false,
			       "must be a non-empty list of country codes "
			       "like [\"DE\", \"FR\"]");
			continue;
		}
		g = &ld->p->groups[ld->p->ngroups++];
		g->name = xstrdup(ld, name);
		locate(ld, path, true, &g->line, &g->col);
		json_array_foreach(v, i, e)
		{
			const char *cc = json_string_value(e);
			snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
			if (cc == NULL || policy_country_index(cc) < 0) {
				err_at(ld, sub, false,
				       "must be an ISO 3166-1 alpha-2 country "
				       "code (two upper-case letters)");
				continue;
			}
			policy_bit_set(g->countries,
			               (unsigned)policy_country_index(cc));
		}
	}
}

static const char *const format_names[] = {
    "ndjson", "object", "array", "array_at", NULL,
};

static void
load_route(struct load *ld, json_t *v, unsigned idx)
{
	static const char *const keys[] = {
	    "name",     "method",         "path",    "path_prefix",
	    "action",   "purpose",        "formats", "array_at",
	    "subjects", "subject_header", "on_deny", "content_usage",
	    "subject_ids", NULL,
	};
	static const char *const inspect_only[] = {
	    "purpose",        "formats", "array_at",      "subjects",
	    "subject_header", "on_deny", "content_usage", "subject_ids", NULL,
	};
	struct policy_route *r = &ld->p->routes[idx];
	char path[CG_MAX_JSON_PATH], sub[CG_MAX_JSON_PATH], list[300];
	const char *s, *jerr;
	json_t *a, *e;
	size_t i;

	r->policy = ld->p;
	r->purpose = -1;
	snprintf(path, sizeof(path), "routes[%u]", idx);
	locate(ld, path, false, &r->line, &r->col);
	if (!json_is_object(v)) {
		err_at(ld, path, false, "a route must be an object");
		return;
	}
	check_keys(ld, v, path, keys);

	s = get_string(ld, v, path, "method", true);
	if (s != NULL && strcmp(s, "*") != 0 && !is_token(s)) {
		snprintf(sub, sizeof(sub), "%s.method", path);
		err_at(ld, sub, false,
		       "'%s' is not an HTTP method (a token like POST, or "
		       "\"*\" for any)",
		       s);
	}
	r->method = xstrdup(ld, s ? s : "*");

	const char *exact = get_string(ld, v, path, "path", false);
	const char *prefix = get_string(ld, v, path, "path_prefix", false);
	if (exact != NULL && prefix != NULL) {
		err_at(ld, path, false,
		       "give either 'path' (exact) or 'path_prefix', not both");
	} else if (exact == NULL && prefix == NULL) {
		if (!json_object_get(v, "path") &&
		    !json_object_get(v, "path_prefix"))
			err_at(ld, path, false,
			       "missing 'path' (exact) or 'path_prefix'");
	}
	s = exact ? exact : prefix;
	r->prefix = exact == NULL && prefix != NULL;
	if (s != NULL && s[0] != '/') {
		snprintf(sub, sizeof(sub), "%s.%s", path,
		         r->prefix ? "path_prefix" : "path");
		err_at(ld, sub, false, "must start with '/'");
	}
	r->path = xstrdup(ld, s ? s : "/");
	r->path_len = r->path ? strlen(r->path) : 0;
	r->method_len = r->method ? strlen(r->method) : 0;

	s = get_string(ld, v, path, "action", true);
	if (s != NULL && strcmp(s, "pass") == 0) {
		r->action = POLICY_ACTION_PASS;
	} else if (s != NULL && strcmp(s, "inspect") == 0) {
		r->action = POLICY_ACTION_INSPECT;
	} else {
		if (s != NULL) {
			snprintf(sub, sizeof(sub), "%s.action", path);
			err_at(ld, sub, false,
			       "unknown action '%s' (expected pass or inspect)",
			       s);
		}
		r->action = POLICY_ACTION_INSPECT;
	}

	s = get_string(ld, v, path, "name", false);
	if (s != NULL) {
		if (*s == '\0') {
			snprintf(sub, sizeof(sub), "%s.name", path);
			err_at(ld, sub, false, "must not be empty");
		}
		for (unsigned k = 0; k < idx; k++)
			if (ld->p->routes[k].name &&
			    strcmp(ld->p->routes[k].name, s) == 0) {
				snprintf(sub, sizeof(sub), "%s.name", path);
				err_at(ld, sub, false,
				       "route name '%s' is already used by "
				       "routes[%u]",
				       s, k);
			}
		r->name = xstrdup(ld, s);
	} else {
		char nm[CG_MAX_JSON_PATH * 2];
		snprintf(nm, sizeof(nm), "%s %s%s", r->method, r->path,
		         r->prefix ? "*" : "");
		r->name = xstrdup(ld, nm);
	}

	if (r->action == POLICY_ACTION_PASS) {
		for (unsigned k = 0; inspect_only[k]; k++)
			if (json_object_get(v, inspect_only[k])) {
				snprintf(sub, sizeof(sub), "%s.%s", path,
				         inspect_only[k]);
				err_at(ld, sub, true,
				       "only inspected routes take '%s' "
				       "(this route's action is pass)",
				       inspect_only[k]);
			}
		return;
	}

	/* purpose */
	s = get_string(ld, v, path, "purpose", true);
	if (s != NULL) {
		r->purpose = purpose_index(ld->p, s);
		if (r->purpose < 0) {
			purpose_list(ld->p, list, sizeof(list));
			snprintf(sub, sizeof(sub), "%s.purpose", path);
			err_at(ld, sub, false,
			       "unknown purpose '%s' (declared: %s)", s, list);
		}
	}

	/* formats */
	a = json_object_get(v, "formats");
	snprintf(sub, sizeof(sub), "%s.formats", path);
	if (a == NULL) {
		err_at(ld, path, false,
		       "missing 'formats' (a list of ndjson, object, array, "
		       "array_at)");
	} else if (!json_is_array(a) || json_array_size(a) == 0) {
		err_at(ld, sub, false,
		       "must be a non-empty list of ndjson, object, array, "
		       "array_at");
	} else {
		json_array_foreach(a, i, e)
		{
			char esub[CG_MAX_JSON_PATH];
			unsigned bit = 0;
			snprintf(esub, sizeof(esub), "%s[%zu]", sub, i);
			for (unsigned k = 0; format_names[k]; k++)
				if (json_is_string(e) &&
				    strcmp(json_string_value(e),
				           format_names[k]) == 0)
					bit = 1u << k;
			if (bit == 0) {
				err_at(ld, esub, false,
				       "unknown format (expected ndjson, "
				       "object, array or array_at)");
			} else if (r->formats & bit) {
				err_at(ld, esub, false, "format listed twice");
			}
			r->formats |= bit;
		}
		if ((r->formats & SCAN_FORMAT_OBJECT) &&
		    (r->formats & SCAN_FORMAT_ARRAY_AT))
			err_at(ld, sub, false,
			       "'object' and 'array_at' cannot both be "
			       "accepted: a JSON object body would be "
			       "ambiguous");
	}

	/* array_at */
	s = get_string(ld, v, path, "array_at", false);
	snprintf(sub, sizeof(sub), "%s.array_at", path);
	if (s != NULL) {
		if (!(r->formats & SCAN_FORMAT_ARRAY_AT))
			err_at(ld, sub, true,
			       "'array_at' needs the format 'array_at' in "
			       "'formats'");
		if (jsonptr_parse(s, strlen(s), &r->array_at, &jerr) != 0)
			err_at(ld, sub, false, "bad JSON Pointer '%s': %s", s,
			       jerr);
		else if (r->array_at.ntokens == 0)
			err_at(ld, sub, false,
			       "must point inside the document (use the "
			       "format 'array' for a top-level array)");
		else
			for (unsigned k = 0; k < r->array_at.ntokens; k++)
				if (r->array_at.tok[k].wildcard)
					err_at(ld, sub, false,
					       "must not contain the wildcard "
					       "'*'");
		r->has_array_at = true;
	} else if (r->formats & SCAN_FORMAT_ARRAY_AT) {
		err_at(ld, path, false,
		       "the format 'array_at' needs \"array_at\": a JSON "
		       "Pointer to the array of records, like \"/data\"");
	}

	/* subjects XOR subject_header */
	a = json_object_get(v, "subjects");
	s = get_string(ld, v, path, "subject_header", false);
	if (a != NULL && json_object_get(v, "subject_header") != NULL) {
		err_at(ld, path, false,
		       "give either 'subjects' (JSON Pointers into each "
		       "record) or 'subject_header', not both");
	} else if (a == NULL && json_object_get(v, "subject_header") == NULL) {
		err_at(ld, path, false,
		       "missing 'subjects' (JSON Pointers into each record, "
		       "like [\"/author_id\"]) or 'subject_header'");
	}
	if (a != NULL) {
		snprintf(sub, sizeof(sub), "%s.subjects", path);
		if (!json_is_array(a) || json_array_size(a) == 0) {
			err_at(ld, sub, false,
			       "must be a non-empty list of JSON Pointers "
			       "like [\"/author_id\"]");
		} else if (json_array_size(a) > CG_MAX_LOCATORS) {
			err_at(ld, sub, false, "more than %d subject pointers",
			       CG_MAX_LOCATORS);
		} else {
			json_array_foreach(a, i, e)
			{
				char esub[CG_MAX_JSON_PATH];
				json_t *ptr = e, *opt = NULL;
				const char *t;
				snprintf(esub, sizeof(esub), "%s[%zu]", sub, i);
				/* {"pointer": "/reply_to/id", "optional": true}:
				 * its absence is not an unknown person */
				if (json_is_object(e)) {
					static const char *const skeys[] = {
					    "pointer", "optional", NULL};
					check_keys(ld, e, esub, skeys);
					ptr = json_object_get(e, "pointer");
					opt = json_object_get(e, "optional");
					if (opt != NULL && !json_is_boolean(opt))
						err_at(ld, esub, false,
						       "'optional' must be true "
						       "or false");
				}
				t = json_string_value(ptr);
				if (t == NULL) {
					err_at(ld, esub, false,
					       "must be a JSON Pointer string, "
					       "or {\"pointer\": ..., "
					       "\"optional\": true}");
					continue;
				}
				if (json_is_true(opt))
					r->spec.optional |=
					    1u << r->spec.nlocators;
				if (jsonptr_parse(
				        t, json_string_length(ptr),
				        &r->locators[r->spec.nlocators],
				        &jerr) != 0) {
					err_at(ld, esub, false,
					       "bad JSON Pointer '%s': %s", t,
					       jerr);
					continue;
				}
				if (r->locators[r->spec.nlocators].ntokens ==
				    0) {
					err_at(ld, esub, false,
					       "the pointer \"\" is the whole "
					       "record; point at its subject "
					       "member, like \"/author_id\"");
					continue;
				}
				r->spec.nlocators++;
			}
			r->spec.locators = r->locators;
		}
	}
	if (s != NULL) {
		snprintf(sub, sizeof(sub), "%s.subject_header", path);
		if (!is_token(s))
			err_at(ld, sub, false,
			       "'%s' is not a header name (a token)", s);
		else if (strncasecmp(s, "consent-", 8) == 0)
			err_at(ld, sub, false,
			       "Consent-* headers belong to the proxy and are "
			       "removed from requests; choose another header");
		r->subject_header = xstrdup(ld, s);
	}

	/* on_deny */
	s = get_string(ld, v, path, "on_deny", true);
	if (s != NULL && strcmp(s, "drop") == 0) {
		r->on_deny = POLICY_ON_DENY_DROP;
	} else if (s != NULL && strcmp(s, "block") == 0) {
		r->on_deny = POLICY_ON_DENY_BLOCK;
	} else if (s != NULL) {
		snprintf(sub, sizeof(sub), "%s.on_deny", path);
		err_at(ld, sub, false,
		       "unknown value '%s' (expected drop or block)", s);
	}

	e = json_object_get(v, "content_usage");
	if (e != NULL) {
		snprintf(sub, sizeof(sub), "%s.content_usage", path);
		if (!json_is_boolean(e))
			err_at(ld, sub, false, "must be true or false");
		r->content_usage = json_is_true(e);
	}

	/* "text": the pipeline reads ids as text, so a string id that looks
	 * like a number need not survive pandas' float64 inference */
	s = get_string(ld, v, path, "subject_ids", false);
	if (s != NULL && strcmp(s, "text") == 0) {
		r->spec.ids_as_text = true;
	} else if (s != NULL && strcmp(s, "checked") != 0) {
		snprintf(sub, sizeof(sub), "%s.subject_ids", path);
		err_at(ld, sub, false,
		       "unknown value '%s' (expected checked or text)", s);
	}
}

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
		err_at(ld, path, false,
		       "must be an object of conditions (known, jurisdiction, "
		       "status, older_than, newer_than)");
		return;
	}
	if (json_object_size(cond) == 0)
		err_at(ld, path, false,
		       "no conditions: leave 'if' out for a default rule");
	check_keys(ld, cond, path, keys);

	a = json_object_get(cond, "known");
	if (a != NULL) {
		snprintf(sub, sizeof(sub), "%s.known", path);
		if (!json_is_boolean(a))
			err_at(ld, sub, false, "must be true or false");
		ru->has_known = true;
		ru->known = json_is_true(a);
	}

	a = json_object_get(cond, "jurisdiction");
	if (a != NULL) {
		snprintf(sub, sizeof(sub), "%s.jurisdiction", path);
		ru->has_jurisdiction = true;
		if (!json_is_array(a) || json_array_size(a) == 0)
			err_at(ld, sub, false,
			       "must be a non-empty list of group names or "
			       "country codes");
		list[0] = '\0';
		json_array_foreach(a, i, e)
		{
			const char *t = json_string_value(e);
			int g;
			snprintf(esub, sizeof(esub), "%s[%zu]", sub, i);
			if (t == NULL) {
				err_at(ld, esub, false, "must be a string");
				continue;
			}
			size_t n = strlen(list);
			snprintf(list + n, sizeof(list) - n, "%s%s",
			         i ? "," : "", t);
			if ((g = group_index(ld->p, t)) >= 0) {
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
				err_at(ld, esub, false,
				       "unknown jurisdiction '%s': neither a "
				       "declared group (%s) nor a two-letter "
				       "upper-case country code",
				       t, ld->p->ngroups ? groups : "none");
			}
		}
		ru->jurisdiction_text = xstrdup(ld, list);
	}

	a = json_object_get(cond, "status");
	if (a != NULL) {
		snprintf(sub, sizeof(sub), "%s.status", path);
		ru->has_status = true;
		if (!json_is_array(a) || json_array_size(a) == 0)
			err_at(ld, sub, false,
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
				err_at(ld, esub, false,
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
			err_at(ld, sub, false,
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

static void
load_rule(struct load *ld, json_t *v, unsigned idx)
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
	locate(ld, path, false, &ru->line, &ru->col);
	if (!json_is_object(v)) {
		err_at(ld, path, false, "a rule must be an object");
		ru->id = xstrdup(ld, "");
		return;
	}
	check_keys(ld, v, path, keys);

	s = get_string(ld, v, path, "id", true);
	if (s != NULL) {
		snprintf(sub, sizeof(sub), "%s.id", path);
		if (!is_name(s))
			err_at(ld, sub, false,
			       "a rule id is 1-64 letters, digits, '-', '_' "
			       "or '.'");
		for (unsigned k = 0; k < idx; k++)
			if (ld->p->rules[k].id &&
			    strcmp(ld->p->rules[k].id, s) == 0)
				err_at(ld, sub, false,
				       "duplicate rule id '%s' (also "
				       "rules[%u])",
				       s, k);
	}
	ru->id = xstrdup(ld, s ? s : "");

	a = json_object_get(v, "purposes");
	if (a != NULL) {
		ru->has_purposes = true;
		snprintf(sub, sizeof(sub), "%s.purposes", path);
		if (!json_is_array(a) || json_array_size(a) == 0)
			err_at(ld, sub, false,
			       "must be a non-empty list of declared purposes "
			       "(leave it out for every purpose)");
		json_array_foreach(a, i, e)
		{
			char esub[CG_MAX_JSON_PATH];
			const char *t = json_string_value(e);
			int pi = t ? purpose_index(ld->p, t) : -1;
			snprintf(esub, sizeof(esub), "%s[%zu]", sub, i);
			if (pi < 0) {
				purpose_list(ld->p, list, sizeof(list));
				err_at(ld, esub, false,
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

	s = get_string(ld, v, path, "then", true);
	if (s != NULL && strcmp(s, "allow") == 0) {
		ru->allow = true;
	} else if (s != NULL && strcmp(s, "deny") != 0) {
		snprintf(sub, sizeof(sub), "%s.then", path);
		err_at(ld, sub, false,
		       "unknown outcome '%s' (expected allow or deny)", s);
	}
}

/* Every inspected route's purpose must reach a default rule. */
static void
check_defaults(struct load *ld)
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
		err_at(ld, path, false,
		       "no default rule for purpose '%s': add a last rule "
		       "without 'if' (like {\"id\": \"default\", \"then\": "
		       "\"deny\"}) so every person gets a decision",
		       p->purposes[r->purpose].name);
	}
}

static uint64_t
fnv1a64(const char *buf, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)buf[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

struct policy *
policy_load_buf(const char *name, const char *buf, size_t len,
                struct cg_errors *errs)
{
	static const char *const keys[] = {
	    "policy", "purposes", "ignored_purposes", "jurisdictions", "routes",
	    "rules",  NULL,
	};
	struct load ld;
	json_error_t jerr;
	json_t *root = NULL, *v, *e;
	struct policy *p = NULL;
	const char *s;
	size_t i;

	memset(&ld, 0, sizeof(ld));
	ld.name = name;
	ld.errs = errs;
	root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		int line, col;
		jsonpos_of_error(buf, len, jerr.line, jerr.column,
		                 jerr.position, &line, &col);
		cg_errors_add(errs, name, line, col, "%s", jerr.text);
		goto fail;
	}
	if (memchr(buf, '\0', len) != NULL) {
		cg_errors_add(errs, name, 0, 0, "the file contains a NUL byte");
		goto fail;
	}
	p = calloc(1, sizeof(*p));
	if (p == NULL) {
		cg_errors_add(errs, name, 0, 0, "out of memory");
		goto fail;
	}
	ld.p = p;
	snprintf(p->digest, sizeof(p->digest), "%016llx",
	         (unsigned long long)fnv1a64(buf, len));
	cg_errors_init(&p->warnings);
	ld.pos = jsonpos_scan(buf, len);
	if (!json_is_object(root)) {
		err_at(&ld, "", false,
		       "a rule file is a JSON object with \"policy\", "
		       "\"purposes\", \"routes\" and \"rules\"");
		goto fail;
	}
	check_keys(&ld, root, "", keys);

	v = json_object_get(root, "policy");
	if (v == NULL) {
		err_at(&ld, "", false, "missing \"policy\": the policy's id");
	} else if (!json_is_string(v) || !is_name(json_string_value(v))) {
		err_at(&ld, "policy", false,
		       "the policy id must be a string of 1-64 letters, "
		       "digits, '-', '_' or '.'");
	}
	s = json_string_value(v);
	p->id = xstrdup(&ld, s ? s : "");

	v = json_object_get(root, "purposes");
	if (v != NULL && !json_is_object(v))
		err_at(&ld, "purposes", false,
		       "must be an object: {\"name\": {\"aipref\": ...}}");
	else if (v != NULL)
		load_purposes(&ld, v);

	v = json_object_get(root, "ignored_purposes");
	if (v != NULL)
		load_ignored(&ld, v);

	v = json_object_get(root, "jurisdictions");
	if (v != NULL && !json_is_object(v))
		err_at(&ld, "jurisdictions", false,
		       "must be an object: {\"GROUP\": [\"DE\", ...]}");
	else if (v != NULL)
		load_groups(&ld, v);

	v = json_object_get(root, "routes");
	if (v == NULL) {
		err_at(&ld, "", false, "missing \"routes\"");
	} else if (!json_is_array(v) || json_array_size(v) == 0) {
		err_at(&ld, "routes", false,
		       "must be a non-empty list of routes");
	} else if (json_array_size(v) > CG_MAX_ROUTES) {
		err_at(&ld, "routes", false, "more than %d routes",
		       CG_MAX_ROUTES);
	} else {
		p->routes = calloc(json_array_size(v), sizeof(*p->routes));
		if (p->routes == NULL) {
			err_at(&ld, "", false, "out of memory");
			goto fail;
		}
		json_array_foreach(v, i, e)
		{
			p->nroutes++;
			load_route(&ld, e, (unsigned)i);
		}
	}

	v = json_object_get(root, "rules");
	if (v == NULL) {
		err_at(&ld, "", false, "missing \"rules\"");
	} else if (!json_is_array(v) || json_array_size(v) == 0) {
		err_at(&ld, "rules", false,
		       "must be a non-empty list of rules");
	} else if (json_array_size(v) > CG_MAX_RULES) {
		err_at(&ld, "rules", false, "more than %d rules",
		       CG_MAX_RULES);
	} else {
		p->rules = calloc(json_array_size(v), sizeof(*p->rules));
		if (p->rules == NULL) {
			err_at(&ld, "", false, "out of memory");
			goto fail;
		}
		json_array_foreach(v, i, e)
		{
			p->nrules++;
			load_rule(&ld, e, (unsigned)i);
		}
	}
	check_defaults(&ld);
	if (ld.failed)
		goto fail;
	policy_lint(p, name);
	if (policy_routes_compile(p, name) != 0) {
		cg_errors_add(errs, name, 0, 0, "out of memory");
		goto fail;
	}
	json_decref(root);
	jsonpos_free(ld.pos);
	return p;
fail:
	json_decref(root);
	jsonpos_free(ld.pos);
	policy_free(p);
	return NULL;
}

struct policy *
policy_load(const char *path, struct cg_errors *errs)
{
	struct policy *p = NULL;
	char *buf = NULL;
	size_t len = 0, cap = 0;
	FILE *f = fopen(path, "rb");

	if (f == NULL) {
		cg_errors_add(errs, path, 0, 0, "cannot open: %s",
		              strerror(errno));
		goto done;
	}
	for (;;) {
		if (len == cap) {
			char *nb;
			cap = cap ? cap * 2 : 65536;
			if (cap > CG_MAX_RULE_FILE_BYTES) {
				cg_errors_add(errs, path, 0, 0,
				              "file larger than %u MiB",
				              CG_MAX_RULE_FILE_BYTES >> 20);
				goto done;
			}
			nb = realloc(buf, cap);
			if (nb == NULL) {
				cg_errors_add(errs, path, 0, 0,
				              "out of memory");
				goto done;
			}
			buf = nb;
		}
		size_t n = fread(buf + len, 1, cap - len, f);
		if (n == 0)
			break;
		len += n;
	}
	if (ferror(f)) {
		cg_errors_add(errs, path, 0, 0, "read error: %s",
		              strerror(errno));
		goto done;
	}
	p = policy_load_buf(path, buf ? buf : "", len, errs);
done:
	if (f != NULL)
		fclose(f);
	free(buf);
	return p;
}

void
policy_free(struct policy *p)
{
	if (p == NULL)
		return;
	free(p->id);
	for (unsigned i = 0; i < p->npurposes; i++) {
		free(p->purposes[i].name);
		free(p->purposes[i].aipref);
		free(p->purposes[i].fideslang);
	}
	free(p->purposes);
	for (unsigned i = 0; i < p->ngroups; i++)
		free(p->groups[i].name);
	free(p->groups);
	for (unsigned i = 0; i < p->nroutes; i++) {
		free(p->routes[i].name);
		free(p->routes[i].method);
		free(p->routes[i].path);
		free(p->routes[i].subject_header);
		free(p->routes[i].canon);
	}
	free(p->routes);
	for (unsigned i = 0; i < p->nignored; i++)
		free(p->ignored[i]);
	free(p->ignored);
	for (unsigned i = 0; i < p->nrules; i++) {
		free(p->rules[i].id);
		free(p->rules[i].jurisdiction_text);
	}
	free(p->rules);
	cg_errors_reset(&p->warnings);
	free(p);
}

const char *
policy_id(const struct policy *p)
{
	return p->id;
}

const char *
policy_digest(const struct policy *p)
{
	return p->digest;
}

const struct cg_errors *
policy_warnings(const struct policy *p)
{
	return &p->warnings;
}

/* Equal but for letter case and the separators '-', '_', '.'? */
static bool
near_name(const char *a, size_t alen, const char *b)
{
	size_t blen = strlen(b);

	if (alen != blen)
		return false;
	for (size_t i = 0; i < alen; i++) {
		bool sa = strchr("-_.", a[i]) != NULL;
		bool sb = strchr("-_.", b[i]) != NULL;
		if (sa != sb || (!sa && tolower((unsigned char)a[i]) !=
		                            tolower((unsigned char)b[i])))
			return false;
	}
	return true;
}

int
policy_check_consent(const struct policy *p, const struct consent_table *t,
                     struct cg_errors *errs)
{
	const char *src = consent_source(t);
	char declared[300], ignored[300], hint[120];
	int rc = 0;

	purpose_list(p, declared, sizeof(declared));
	ignored[0] = '\0';
	for (unsigned i = 0; i < p->nignored; i++) {
		size_t n = strlen(ignored);
		snprintf(ignored + n, sizeof(ignored) - n, "%s%s",
		         i ? ", " : "", p->ignored[i]);
	}
	for (unsigned id = 0; id < consent_purpose_count(t); id++) {
		struct cg_slice s = consent_purpose_name(t, id);
		bool seen = false;
		int line = consent_purpose_line(t, id);

		for (unsigned i = 0; i < p->npurposes && !seen; i++)
			seen = strlen(p->purposes[i].name) == s.len &&
			       memcmp(p->purposes[i].name, s.ptr, s.len) == 0;
		for (unsigned i = 0; i < p->nignored && !seen; i++)
			seen = strlen(p->ignored[i]) == s.len &&
			       memcmp(p->ignored[i], s.ptr, s.len) == 0;
		if (seen)
			continue;
		hint[0] = '\0';
		for (unsigned i = 0; i < p->npurposes; i++)
			if (near_name(s.ptr, s.len, p->purposes[i].name)) {
				snprintf(hint, sizeof(hint),
				         " (did you mean '%s'?)",
				         p->purposes[i].name);
				break;
			}
		uint64_t rows = consent_purpose_rows(t, id);
		cg_errors_add(errs, src, line, 0,
		              "purpose '%.*s' is not declared by policy '%s' "
		              "(declared: %s; ignored_purposes: %s)%s: its "
		              "%llu row%s%s would be silently ignored, so an "
		              "opt-out there would never take effect; correct "
		              "the rows, or list the purpose in "
		              "\"ignored_purposes\" if the policy is meant not "
		              "to see them",
		              (int)s.len, s.ptr, p->id, declared,
		              p->nignored ? ignored : "none", hint,
		              (unsigned long long)rows, rows == 1 ? "" : "s",
		              line > 0 ? ", the first on this line," : "");
		rc = -1;
	}
	return rc;
}

unsigned
policy_rule_count(const struct policy *p)
{
	return p->nrules;
}

const char *
policy_rule_id(const struct policy *p, unsigned i)
{
	return i < p->nrules ? p->rules[i].id : NULL;
}
