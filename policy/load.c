/*
 * load.c: the helpers every part of the rule-file loader uses: positions,
 * errors, key and type checks, names, declared purposes and groups.
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

/* Where path is: its key (key) or its value; the parent's when unknown. */
void
load_locate(struct load *ld, const char *path, bool key, int *line, int *col)
{
	jsonpos_find(ld->pos, path, key, line, col);
}

void
load_err(struct load *ld, const char *path, bool key, const char *fmt, ...)
{
	char text[400];
	int line, col;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	load_locate(ld, path, key, &line, &col);
	if (path[0] != '\0')
		cg_errors_add(ld->errs, ld->name, line, col, "%s: %s", path,
		              text);
	else
		cg_errors_add(ld->errs, ld->name, line, col, "%s", text);
	ld->failed = true;
}

/* Unknown keys are errors: a typo must not silently weaken a policy. */
void
load_check_keys(struct load *ld, json_t *obj, const char *path,
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
		load_err(ld, sub, true,
		         "unknown key '%s' (expected one of: %s)", key, list);
	}
}

static bool
is_tchar(unsigned char c)
{
	return isalnum(c) || (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

bool
load_is_token(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s; s++)
		if (!is_tchar((unsigned char)*s))
			return false;
	return true;
}

/* Names of purposes, groups and rule ids: letters, digits, - _ . */
bool
load_is_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 64 || !isalnum((unsigned char)s[0]))
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && strchr("-_.", *s) == NULL)
			return false;
	return true;
}

bool
load_looks_like_country(const char *s)
{
	return policy_country_index(s) >= 0;
}

/* A string member: NULL when absent; an error when of another type. */
const char *
load_string(struct load *ld, json_t *obj, const char *path, const char *key,
            bool required)
{
	char sub[CG_MAX_JSON_PATH];
	json_t *v = json_object_get(obj, key);

	snprintf(sub, sizeof(sub), "%s.%s", path, key);
	if (v == NULL) {
		if (required)
			load_err(ld, path, false, "missing '%s'", key);
		return NULL;
	}
	if (!json_is_string(v)) {
		load_err(ld, sub, false, "must be a string");
		return NULL;
	}
	if (json_string_length(v) != strlen(json_string_value(v))) {
		load_err(ld, sub, false, "must not contain a NUL character");
		return NULL;
	}
	return json_string_value(v);
}

char *
load_strdup(struct load *ld, const char *s)
{
	char *d = strdup(s ? s : "");

	if (d == NULL) {
		cg_errors_add(ld->errs, ld->name, 0, 0, "out of memory");
		ld->failed = true;
	}
	return d;
}

int
load_purpose_index(const struct policy *p, const char *name)
{
	for (unsigned i = 0; i < p->npurposes; i++)
		if (strcmp(p->purposes[i].name, name) == 0)
			return (int)i;
	return -1;
}

int
load_group_index(const struct policy *p, const char *name)
{
	for (unsigned i = 0; i < p->ngroups; i++)
		if (strcmp(p->groups[i].name, name) == 0)
			return (int)i;
	return -1;
}

void
load_purpose_list(const struct policy *p, char *buf, size_t cap)
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
