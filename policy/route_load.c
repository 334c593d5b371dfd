/*
 * route_load.c: one entry of a rule file's "routes": method, path, action,
 * and for inspected routes purpose, formats, subjects, on_deny and the
 * reader-safety options, each checked with its position.
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

static const char *const format_names[] = {
    "ndjson", "object", "array", "array_at", NULL,
};

/*
 * "clients": the identities of the TLS clients the route takes, each
 * "uri:…", "dns:…" or "cn:…" in visible ASCII (what the proxy can read
 * from a certificate and write into a header); an empty list is an error,
 * since it would refuse everyone and is more likely a mistake.
 */
static void
route_load_clients(struct load *ld, json_t *v, const char *path,
                   struct policy_route *r)
{
	json_t *a = json_object_get(v, "clients"), *e;
	char sub[CG_MAX_JSON_PATH];
	size_t i;

	if (a == NULL)
		return;
	snprintf(sub, sizeof(sub), "%s.clients", path);
	if (!json_is_array(a) || json_array_size(a) == 0) {
		load_err(ld, sub, false,
		         "must be a non-empty list of client identities "
		         "(\"uri:spiffe://…\", \"dns:host\" or \"cn:name\")");
		return;
	}
	r->clients = calloc(json_array_size(a), sizeof(*r->clients));
	if (r->clients == NULL) {
		load_err(ld, sub, false, "out of memory");
		return;
	}
	json_array_foreach(a, i, e)
	{
		const char *s = json_string_value(e), *val;
		char item[CG_MAX_JSON_PATH];
		bool ok;

		snprintf(item, sizeof(item), "%s[%zu]", sub, i);
		if (s == NULL) {
			load_err(ld, item, false, "must be a string");
			continue;
		}
		val = strncmp(s, "uri:", 4) == 0 || strncmp(s, "dns:", 4) == 0
		          ? s + 4
		      : strncmp(s, "cn:", 3) == 0 ? s + 3
		                                  : NULL;
		ok = val != NULL && *val != '\0';
		for (const char *c = val; ok && *c; c++)
			ok = *c > 0x20 && *c < 0x7f && *c != '"' && *c != '\\';
		if (!ok) {
			load_err(ld, item, false,
			         "'%s' is not a client identity: write "
			         "\"uri:spiffe://…\", \"dns:host\" or "
			         "\"cn:name\", in visible ASCII",
			         s);
			continue;
		}
		r->clients[r->nclients++] = load_strdup(ld, s);
	}
}

void
route_load(struct load *ld, json_t *v, unsigned idx)
{
	static const char *const keys[] = {
	    "name",        "method",         "path",    "path_prefix",
	    "action",      "purpose",        "formats", "array_at",
	    "subjects",    "subject_header", "on_deny", "content_usage",
	    "subject_ids", "clients",        "shadow",  NULL,
	};
	static const char *const inspect_only[] = {
	    "purpose",        "formats", "array_at",      "subjects",
	    "subject_header", "on_deny", "content_usage", "subject_ids",
	    "shadow",         NULL,
	};
	struct policy_route *r = &ld->p->routes[idx];
	char path[CG_MAX_JSON_PATH], sub[CG_MAX_JSON_PATH], list[300];
	const char *s, *jerr;
	json_t *a, *e;
	size_t i;

	r->policy = ld->p;
	r->purpose = -1;
	snprintf(path, sizeof(path), "routes[%u]", idx);
	load_locate(ld, path, false, &r->line, &r->col);
	if (!json_is_object(v)) {
		load_err(ld, path, false, "a route must be an object");
		return;
	}
	load_check_keys(ld, v, path, keys);

	s = load_string(ld, v, path, "method", true);
	if (s != NULL && strcmp(s, "*") != 0 && !load_is_token(s)) {
		snprintf(sub, sizeof(sub), "%s.method", path);
		load_err(ld, sub, false,
		         "'%s' is not an HTTP method (a token like POST, or "
		         "\"*\" for any)",
		         s);
	}
	r->method = load_strdup(ld, s ? s : "*");

	const char *exact = load_string(ld, v, path, "path", false);
	const char *prefix = load_string(ld, v, path, "path_prefix", false);
	if (exact != NULL && prefix != NULL) {
		load_err(
		    ld, path, false,
		    "give either 'path' (exact) or 'path_prefix', not both");
	} else if (exact == NULL && prefix == NULL) {
		if (!json_object_get(v, "path") &&
		    !json_object_get(v, "path_prefix"))
			load_err(ld, path, false,
			         "missing 'path' (exact) or 'path_prefix'");
	}
	s = exact ? exact : prefix;
	r->prefix = exact == NULL && prefix != NULL;
	if (s != NULL && s[0] != '/') {
		snprintf(sub, sizeof(sub), "%s.%s", path,
		         r->prefix ? "path_prefix" : "path");
		load_err(ld, sub, false, "must start with '/'");
	}
	r->path = load_strdup(ld, s ? s : "/");
	r->path_len = r->path ? strlen(r->path) : 0;
	r->method_len = r->method ? strlen(r->method) : 0;

	s = load_string(ld, v, path, "action", true);
	if (s != NULL && strcmp(s, "pass") == 0) {
		r->action = POLICY_ACTION_PASS;
	} else if (s != NULL && strcmp(s, "inspect") == 0) {
		r->action = POLICY_ACTION_INSPECT;
	} else {
		if (s != NULL) {
			snprintf(sub, sizeof(sub), "%s.action", path);
			load_err(
			    ld, sub, false,
			    "unknown action '%s' (expected pass or inspect)",
			    s);
		}
		r->action = POLICY_ACTION_INSPECT;
	}

	s = load_string(ld, v, path, "name", false);
	if (s != NULL) {
		if (*s == '\0') {
			snprintf(sub, sizeof(sub), "%s.name", path);
			load_err(ld, sub, false, "must not be empty");
		}
		for (unsigned k = 0; k < idx; k++)
			if (ld->p->routes[k].name &&
			    strcmp(ld->p->routes[k].name, s) == 0) {
				snprintf(sub, sizeof(sub), "%s.name", path);
				load_err(ld, sub, false,
				         "route name '%s' is already used by "
				         "routes[%u]",
				         s, k);
			}
		r->name = load_strdup(ld, s);
	} else {
		char nm[CG_MAX_JSON_PATH * 2];
		snprintf(nm, sizeof(nm), "%s %s%s", r->method, r->path,
		         r->prefix ? "*" : "");
		r->name = load_strdup(ld, nm);
	}
	route_load_clients(ld, v, path, r); /* any route may name them */

	if (r->action == POLICY_ACTION_PASS) {
		for (unsigned k = 0; inspect_only[k]; k++)
			if (json_object_get(v, inspect_only[k])) {
				snprintf(sub, sizeof(sub), "%s.%s", path,
				         inspect_only[k]);
				load_err(ld, sub, true,
				         "only inspected routes take '%s' "
				         "(this route's action is pass)",
				         inspect_only[k]);
			}
		return;
	}

	/* purpose */
	s = load_string(ld, v, path, "purpose", true);
	if (s != NULL) {
		r->purpose = load_purpose_index(ld->p, s);
		if (r->purpose < 0) {
			load_purpose_list(ld->p, list, sizeof(list));
			snprintf(sub, sizeof(sub), "%s.purpose", path);
			load_err(ld, sub, false,
			         "unknown purpose '%s' (declared: %s)", s,
			         list);
		}
	}

	/* formats */
	a = json_object_get(v, "formats");
	snprintf(sub, sizeof(sub), "%s.formats", path);
	if (a == NULL) {
		load_err(ld, path, false,
		         "missing 'formats' (a list of ndjson, object, array, "
		         "array_at)");
	} else if (!json_is_array(a) || json_array_size(a) == 0) {
		load_err(ld, sub, false,
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
				load_err(ld, esub, false,
				         "unknown format (expected ndjson, "
				         "object, array or array_at)");
			} else if (r->formats & bit) {
				load_err(ld, esub, false,
				         "format listed twice");
			}
			r->formats |= bit;
		}
		if ((r->formats & SCAN_FORMAT_OBJECT) &&
		    (r->formats & SCAN_FORMAT_ARRAY_AT))
			load_err(ld, sub, false,
			         "'object' and 'array_at' cannot both be "
			         "accepted: a JSON object body would be "
			         "ambiguous");
	}

	/* array_at */
	s = load_string(ld, v, path, "array_at", false);
	snprintf(sub, sizeof(sub), "%s.array_at", path);
	if (s != NULL) {
		if (!(r->formats & SCAN_FORMAT_ARRAY_AT))
			load_err(ld, sub, true,
			         "'array_at' needs the format 'array_at' in "
			         "'formats'");
		if (jsonptr_parse(s, strlen(s), &r->array_at, &jerr) != 0)
			load_err(ld, sub, false, "bad JSON Pointer '%s': %s", s,
			         jerr);
		else if (r->array_at.ntokens == 0)
			load_err(ld, sub, false,
			         "must point inside the document (use the "
			         "format 'array' for a top-level array)");
		else
			for (unsigned k = 0; k < r->array_at.ntokens; k++)
				if (r->array_at.tok[k].wildcard)
					load_err(
					    ld, sub, false,
					    "must not contain the wildcard "
					    "'*'");
		r->has_array_at = true;
	} else if (r->formats & SCAN_FORMAT_ARRAY_AT) {
		load_err(ld, path, false,
		         "the format 'array_at' needs \"array_at\": a JSON "
		         "Pointer to the array of records, like \"/data\"");
	}

	/* subjects XOR subject_header */
	a = json_object_get(v, "subjects");
	s = load_string(ld, v, path, "subject_header", false);
	if (a != NULL && json_object_get(v, "subject_header") != NULL) {
		load_err(ld, path, false,
		         "give either 'subjects' (JSON Pointers into each "
		         "record) or 'subject_header', not both");
	} else if (a == NULL && json_object_get(v, "subject_header") == NULL) {
		load_err(ld, path, false,
		         "missing 'subjects' (JSON Pointers into each record, "
		         "like [\"/author_id\"]) or 'subject_header'");
	}
	if (a != NULL) {
		snprintf(sub, sizeof(sub), "%s.subjects", path);
		if (!json_is_array(a) || json_array_size(a) == 0) {
			load_err(ld, sub, false,
			         "must be a non-empty list of JSON Pointers "
			         "like [\"/author_id\"]");
		} else if (json_array_size(a) > CG_MAX_LOCATORS) {
			load_err(ld, sub, false,
			         "more than %d subject pointers",
			         CG_MAX_LOCATORS);
		} else {
			json_array_foreach(a, i, e)
			{
				char esub[CG_MAX_JSON_PATH];
				json_t *ptr = e, *opt = NULL;
				const char *t;
				snprintf(esub, sizeof(esub), "%s[%zu]", sub, i);
				/* {"pointer": "/reply_to/id", "optional":
				 * true}: its absence is not an unknown person
				 */
				if (json_is_object(e)) {
					static const char *const skeys[] = {
					    "pointer", "optional", NULL};
					load_check_keys(ld, e, esub, skeys);
					ptr = json_object_get(e, "pointer");
					opt = json_object_get(e, "optional");
					if (opt != NULL &&
					    !json_is_boolean(opt))
						load_err(
						    ld, esub, false,
						    "'optional' must be true "
						    "or false");
				}
				t = json_string_value(ptr);
				if (t == NULL) {
					load_err(
					    ld, esub, false,
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
					load_err(ld, esub, false,
					         "bad JSON Pointer '%s': %s", t,
					         jerr);
					continue;
				}
				if (r->locators[r->spec.nlocators].ntokens ==
				    0) {
					load_err(
					    ld, esub, false,
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
		if (!load_is_token(s))
			load_err(ld, sub, false,
			         "'%s' is not a header name (a token)", s);
		else if (strncasecmp(s, "consent-", 8) == 0)
			load_err(
			    ld, sub, false,
			    "Consent-* headers belong to the proxy and are "
			    "removed from requests; choose another header");
		r->subject_header = load_strdup(ld, s);
	}

	/* on_deny */
	s = load_string(ld, v, path, "on_deny", true);
	if (s != NULL && strcmp(s, "drop") == 0) {
		r->on_deny = POLICY_ON_DENY_DROP;
	} else if (s != NULL && strcmp(s, "block") == 0) {
		r->on_deny = POLICY_ON_DENY_BLOCK;
	} else if (s != NULL) {
		snprintf(sub, sizeof(sub), "%s.on_deny", path);
		load_err(ld, sub, false,
		         "unknown value '%s' (expected drop or block)", s);
	}

	e = json_object_get(v, "shadow");
	if (e != NULL) {
		snprintf(sub, sizeof(sub), "%s.shadow", path);
		if (!json_is_boolean(e))
			load_err(ld, sub, false, "must be true or false");
		r->shadow = json_is_true(e);
	}

	e = json_object_get(v, "content_usage");
	if (e != NULL) {
		snprintf(sub, sizeof(sub), "%s.content_usage", path);
		if (!json_is_boolean(e))
			load_err(ld, sub, false, "must be true or false");
		r->content_usage = json_is_true(e);
	}

	/* "text": the pipeline reads ids as text, so a string id that looks
	 * like a number need not survive pandas' float64 inference */
	s = load_string(ld, v, path, "subject_ids", false);
	if (s != NULL && strcmp(s, "text") == 0) {
		r->spec.ids_as_text = true;
	} else if (s != NULL && strcmp(s, "checked") != 0) {
		snprintf(sub, sizeof(sub), "%s.subject_ids", path);
		load_err(ld, sub, false,
		         "unknown value '%s' (expected checked or text)", s);
	}
}
