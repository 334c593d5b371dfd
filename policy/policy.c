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

#include "load_internal.h"

/* Paths in messages are cut at CG_MAX_JSON_PATH on purpose. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

/* ---- the loader ---- */

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
		load_err(ld, "purposes", false, "more than %d purposes",
		         CG_MAX_PURPOSES);
		return;
	}
	ld->p->purposes = calloc(n ? n : 1, sizeof(*ld->p->purposes));
	if (ld->p->purposes == NULL) {
		load_err(ld, "", false, "out of memory");
		return;
	}
	json_object_foreach(obj, name, v)
	{
		struct policy_purpose *pp;
		const char *s;

		snprintf(path, sizeof(path), "purposes.%s", name);
		if (!load_is_name(name))
			load_err(ld, path, true,
			         "purpose name must be 1-64 letters, digits, "
			         "'-', '_' or '.', starting with a letter or "
			         "digit");
		if (!json_is_object(v)) {
			load_err(ld, path, false,
			         "must be an object like {\"aipref\": "
			         "\"train-ai\"}");
			continue;
		}
		load_check_keys(ld, v, path, keys);
		pp = &ld->p->purposes[ld->p->npurposes++];
		pp->name = load_strdup(ld, name);
		load_locate(ld, path, true, &pp->line, &pp->col);
		s = load_string(ld, v, path, "aipref", true);
		if (s != NULL) {
			bool ok = false;
			for (unsigned i = 0; aipref_categories[i]; i++)
				if (strcmp(s, aipref_categories[i]) == 0)
					ok = true;
			if (!ok) {
				char sub[CG_MAX_JSON_PATH];
				snprintf(sub, sizeof(sub), "%s.aipref", path);
				load_err(
				    ld, sub, false,
				    "unknown AI Preferences category '%s' "
				    "(known: train-ai, train-genai, search, "
				    "ai-use)",
				    s);
			}
			pp->aipref = load_strdup(ld, s);
		}
		s = load_string(ld, v, path, "fideslang", false);
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
				load_err(ld, sub, false,
				         "a fideslang data use is lower-case "
				         "words joined by '_' and '.', like "
				         "'train_ai_system'");
			}
			pp->fideslang = load_strdup(ld, s);
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
		load_err(
		    ld, "ignored_purposes", false,
		    "must be a list of purpose names (at most %d) that the "
		    "consent table holds and this policy ignores",
		    CG_MAX_IGNORED_PURPOSES);
		return;
	}
	ld->p->ignored = calloc(json_array_size(a) + 1, sizeof(char *));
	if (ld->p->ignored == NULL) {
		load_err(ld, "", false, "out of memory");
		return;
	}
	json_array_foreach(a, i, e)
	{
		const char *t = json_string_value(e);
		bool dup = false;

		snprintf(sub, sizeof(sub), "ignored_purposes[%zu]", i);
		if (t == NULL || !load_is_name(t)) {
			load_err(ld, sub, false,
			         "a purpose name is 1-64 letters, digits, '-', "
			         "'_' or '.', starting with a letter or digit");
			continue;
		}
		if (load_purpose_index(ld->p, t) >= 0) {
			load_err(
			    ld, sub, false,
			    "'%s' is declared in \"purposes\": a purpose is "
			    "either decided or ignored, not both",
			    t);
			continue;
		}
		for (unsigned k = 0; k < ld->p->nignored; k++)
			dup |= strcmp(ld->p->ignored[k], t) == 0;
		if (dup) {
			load_err(ld, sub, false, "'%s' is listed twice", t);
			continue;
		}
		ld->p->ignored[ld->p->nignored++] = load_strdup(ld, t);
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
		load_err(ld, "jurisdictions", false, "more than %d groups",
		         CG_MAX_GROUPS);
		return;
	}
	ld->p->groups = calloc(n ? n : 1, sizeof(*ld->p->groups));
	if (ld->p->groups == NULL) {
		load_err(ld, "", false, "out of memory");
		return;
	}
	json_object_foreach(obj, name, v)
	{
		struct policy_group *g;
		size_t i;
		json_t *e;

		snprintf(path, sizeof(path), "jurisdictions.%s", name);
		if (load_looks_like_country(name))
			load_err(ld, path, true,
			         "group name '%s' looks like a country code; "
			         "use a longer name",
			         name);
		else if (!load_is_name(name))
			load_err(ld, path, true,
			         "group name must be 1-64 letters, digits, "
			         "'-', '_' or '.'");
		if (!json_is_array(v) || json_array_size(v) == 0) {
			load_err(ld, path, false,
			         "must be a non-empty list of country codes "
			         "like [\"DE\", \"FR\"]");
			continue;
		}
		g = &ld->p->groups[ld->p->ngroups++];
		g->name = load_strdup(ld, name);
		load_locate(ld, path, true, &g->line, &g->col);
		json_array_foreach(v, i, e)
		{
			const char *cc = json_string_value(e);
			snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
			if (cc == NULL || policy_country_index(cc) < 0) {
				load_err(
				    ld, sub, false,
				    "must be an ISO 3166-1 alpha-2 country "
				    "code (two upper-case letters)");
				continue;
			}
			policy_bit_set(g->countries,
			               (unsigned)policy_country_index(cc));
		}
	}
}

struct policy *
policy_load_buf(const char *name, const char *buf, size_t len,
                struct cg_errors *errs)
{
	static const char *const keys[] = {
	    "policy", "purposes", "ignored_purposes", "jurisdictions",
	    "routes", "rules",    "shadow",           NULL,
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
	         (unsigned long long)policy_fnv1a64(buf, len));
	cg_errors_init(&p->warnings);
	ld.pos = jsonpos_scan(buf, len);
	if (!json_is_object(root)) {
		load_err(&ld, "", false,
		         "a rule file is a JSON object with \"policy\", "
		         "\"purposes\", \"routes\" and \"rules\"");
		goto fail;
	}
	load_check_keys(&ld, root, "", keys);

	v = json_object_get(root, "policy");
	if (v == NULL) {
		load_err(&ld, "", false, "missing \"policy\": the policy's id");
	} else if (!json_is_string(v) || !load_is_name(json_string_value(v))) {
		load_err(&ld, "policy", false,
		         "the policy id must be a string of 1-64 letters, "
		         "digits, '-', '_' or '.'");
	}
	s = json_string_value(v);
	p->id = load_strdup(&ld, s ? s : "");

	v = json_object_get(root, "shadow");
	if (v != NULL && !json_is_boolean(v))
		load_err(&ld, "shadow", false, "must be true or false");
	p->shadow = json_is_true(v);

	v = json_object_get(root, "purposes");
	if (v != NULL && !json_is_object(v))
		load_err(&ld, "purposes", false,
		         "must be an object: {\"name\": {\"aipref\": ...}}");
	else if (v != NULL)
		load_purposes(&ld, v);

	v = json_object_get(root, "ignored_purposes");
	if (v != NULL)
		load_ignored(&ld, v);

	v = json_object_get(root, "jurisdictions");
	if (v != NULL && !json_is_object(v))
		load_err(&ld, "jurisdictions", false,
		         "must be an object: {\"GROUP\": [\"DE\", ...]}");
	else if (v != NULL)
		load_groups(&ld, v);

	v = json_object_get(root, "routes");
	if (v == NULL) {
		load_err(&ld, "", false, "missing \"routes\"");
	} else if (!json_is_array(v) || json_array_size(v) == 0) {
		load_err(&ld, "routes", false,
		         "must be a non-empty list of routes");
	} else if (json_array_size(v) > CG_MAX_ROUTES) {
		load_err(&ld, "routes", false, "more than %d routes",
		         CG_MAX_ROUTES);
	} else {
		p->routes = calloc(json_array_size(v), sizeof(*p->routes));
		if (p->routes == NULL) {
			load_err(&ld, "", false, "out of memory");
			goto fail;
		}
		json_array_foreach(v, i, e)
		{
			p->nroutes++;
			route_load(&ld, e, (unsigned)i);
		}
	}

	v = json_object_get(root, "rules");
	if (v == NULL) {
		load_err(&ld, "", false, "missing \"rules\"");
	} else if (!json_is_array(v) || json_array_size(v) == 0) {
		load_err(&ld, "rules", false,
		         "must be a non-empty list of rules");
	} else if (json_array_size(v) > CG_MAX_RULES) {
		load_err(&ld, "rules", false, "more than %d rules",
		         CG_MAX_RULES);
	} else {
		p->rules = calloc(json_array_size(v), sizeof(*p->rules));
		if (p->rules == NULL) {
			load_err(&ld, "", false, "out of memory");
			goto fail;
		}
		json_array_foreach(v, i, e)
		{
			p->nrules++;
			rule_load(&ld, e, (unsigned)i);
		}
	}
	rule_check_defaults(&ld);
	if (ld.failed)
		goto fail;
	rule_lint(p, name);
	if (route_compile(p, name) != 0) {
		cg_errors_add(errs, name, 0, 0, "out of memory");
		goto fail;
	}
	/* shadow mode enforces nothing: say so wherever the file is checked */
	for (unsigned k = 0; k < p->nroutes; k++)
		if (p->routes[k].action == POLICY_ACTION_INSPECT &&
		    route_shadow(&p->routes[k]))
			cg_errors_add(
			    &p->warnings, name, p->routes[k].line,
			    p->routes[k].col,
			    "warning: routes[%u] ('%s') is in shadow "
			    "mode: its requests are decided and logged "
			    "but forwarded unchanged; nothing is "
			    "enforced",
			    k, p->routes[k].name);
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
		for (unsigned k = 0; k < p->routes[i].nclients; k++)
			free(p->routes[i].clients[k]);
		free(p->routes[i].clients);
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

bool
policy_purpose_known(const struct policy *p, const char *name, size_t len)
{
	for (unsigned i = 0; i < p->npurposes; i++)
		if (strlen(p->purposes[i].name) == len &&
		    memcmp(p->purposes[i].name, name, len) == 0)
			return true;
	for (unsigned i = 0; i < p->nignored; i++)
		if (strlen(p->ignored[i]) == len &&
		    memcmp(p->ignored[i], name, len) == 0)
			return true;
	return false;
}

int
policy_check_consent(const struct policy *p, const struct consent_table *t,
                     struct cg_errors *errs)
{
	const char *src = consent_source(t);
	char declared[300], ignored[300], hint[120];
	int rc = 0;

	load_purpose_list(p, declared, sizeof(declared));
	ignored[0] = '\0';
	for (unsigned i = 0; i < p->nignored; i++) {
		size_t n = strlen(ignored);
		snprintf(ignored + n, sizeof(ignored) - n, "%s%s",
		         i ? ", " : "", p->ignored[i]);
	}
	for (unsigned id = 0; id < consent_purpose_count(t); id++) {
		struct cg_slice s = consent_purpose_name(t, id);
		int line = consent_purpose_line(t, id);

		if (policy_purpose_known(p, s.ptr, s.len))
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
