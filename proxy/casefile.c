/*
 * casefile.c: the case files of consentgate test, checked as strictly as
 * rule files, all of them before any case runs: unknown keys, wrong types,
 * expected rule ids the policy does not have, duplicate case names, bad
 * consent rows, unreadable files; every error at once as file:line:col:
 * path: message (exit 2). Each case comes out ready to run: its request
 * (method, path, headers, body), clock and consent table.
 *
 * {
 *   "now": "2026-01-01T00:00:00Z",          default clock for every case
 *   "consent": [[subject, purpose, status, jurisdiction, updated_at,
 *                evidence], ...]            default consent rows
 *   "consent_file": "table.csv",            or a CSV/snapshot file
 *   "cases": [ {
 *     "name": "eea-granted-kept",           required, unique
 *     "route": "POST /ingest",              required: method and path
 *     "now", "consent", "consent_file":     override the defaults
 *     "content_type": "application/json",   the Content-Type sent
 *     "headers": {"X-Subject-Id": "1001"},  request headers
 *     "client": "uri:spiffe://…" | [...]   the TLS client's identities
 *     "body": "..." | "body_file": "x.ndjson" | "records": [values]
 *                                           records are sent as NDJSON
 *     "expect": { "status": 200, "kept": [0, 2], "kept_records": [...],
 *                 "dropped": 1, "blocked": false,
 *                 "decisions": ["allow", "deny"], "rules": [...] }
 *   } ]
 * }
 * Relative file names resolve against the case file's directory.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "casefile_internal.h"

/* Messages cut long file names on purpose. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

static void __attribute__((format(printf, 5, 6)))
err_at(struct casefile_set *s, const struct casefile *f, const char *path,
       bool key, const char *fmt, ...)
{
	char text[1024];
	int line, col;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	jsonpos_find(f->pos, path, key, &line, &col);
	if (path[0] != '\0')
		cg_errors_add(&s->errs, f->path, line, col, "%s: %s", path,
		              text);
	else
		cg_errors_add(&s->errs, f->path, line, col, "%s", text);
}

static void
resolve(const struct casefile *f, const char *name, char *buf, size_t cap)
{
	if (name[0] == '/')
		snprintf(buf, cap, "%s", name);
	else
		snprintf(buf, cap, "%s%s", f->dir, name);
}

/* path + "." + key into buf */
static const char *
sub(char *buf, const char *path, const char *key)
{
	snprintf(buf, CG_MAX_JSON_PATH, "%s%s%s", path, path[0] ? "." : "",
	         key);
	return buf;
}

/* Unknown keys of obj are errors; allowed ends with NULL. */
static void
check_keys(struct casefile_set *s, const struct casefile *f, json_t *obj,
           const char *path, const char *const *allowed)
{
	char list[300], at[CG_MAX_JSON_PATH];
	const char *key;
	json_t *v;

	list[0] = '\0';
	for (unsigned i = 0; allowed[i] != NULL; i++) {
		size_t n = strlen(list);

		snprintf(list + n, sizeof(list) - n, "%s%s", i ? ", " : "",
		         allowed[i]);
	}
	json_object_foreach(obj, key, v)
	{
		bool ok = false;

		for (unsigned i = 0; allowed[i] != NULL; i++)
			ok |= strcmp(key, allowed[i]) == 0;
		if (!ok)
			err_at(s, f, sub(at, path, key), true,
			       "unknown key '%s' (expected one of: %s)", key,
			       list);
	}
}

/* ---- consent tables ---- */

static void
csv_field(char **buf, size_t *len, size_t *cap, const char *str, bool last)
{
	bool quote = strpbrk(str, ",\"\r\n") != NULL;
	size_t need = strlen(str) * 2 + 4;

	if (*len + need >= *cap) {
		size_t ncap = (*cap + need) * 2;
		char *nb = realloc(*buf, ncap);

		if (nb == NULL)
			return;
		*buf = nb;
		*cap = ncap;
	}
	if (quote)
		(*buf)[(*len)++] = '"';
	for (; *str; str++) {
		if (*str == '"' && quote)
			(*buf)[(*len)++] = '"';
		(*buf)[(*len)++] = *str;
	}
	if (quote)
		(*buf)[(*len)++] = '"';
	(*buf)[(*len)++] = last ? '\n' : ',';
	(*buf)[*len] = '\0';
}

#define ROWS_SOURCE "rows" /* the CSV a "consent" list is imported as */

/*
 * Report the importer's (or policy_check_consent's) errors: those about
 * ROWS_SOURCE line N are about the row N - 2 of the list at path.
 */
static void
table_errors(struct casefile_set *s, const struct casefile *f, const char *path,
             bool rows, const struct cg_errors *e)
{
	char at[CG_MAX_JSON_PATH];

	for (unsigned i = 0; i < e->count; i++) {
		const char *m = e->msgs[i];
		int line = 0, n = 0;

		if (rows && sscanf(m, ROWS_SOURCE ":%d:%n", &line, &n) == 1 &&
		    line >= 2) {
			snprintf(at, sizeof(at), "%s[%d]", path, line - 2);
			err_at(s, f, at, false, "%s", m + n + (m[n] == ' '));
		} else if (rows && strncmp(m, ROWS_SOURCE ": ", 6) == 0) {
			err_at(s, f, path, false, "%s", m + 6);
		} else {
			err_at(s, f, path, false, "%s", m);
		}
	}
}

/* Rows [[subject, purpose, status, jurisdiction, updated_at,
 * evidence?], ...] through the proxy's CSV importer. */
static struct consent_table *
table_from_rows(struct casefile_set *s, const struct casefile *f, json_t *rows,
                const char *path)
{
	struct consent_table *t = NULL;
	struct cg_errors errs;
	char *csv = NULL, at[CG_MAX_JSON_PATH];
	size_t len = 0, cap = 0, i, k;
	static const char *const cols[] = {
	    "subject",      "purpose",    "status",
	    "jurisdiction", "updated_at", "evidence",
	};
	json_t *row, *fv;
	bool bad = false;

	cg_errors_init(&errs);
	if (!json_is_array(rows)) {
		err_at(s, f, path, false, "must be a list of rows");
		goto done;
	}
	for (k = 0; k < 6; k++)
		csv_field(&csv, &len, &cap, cols[k], k == 5);
	json_array_foreach(rows, i, row)
	{
		size_t n = json_array_size(row);

		snprintf(at, sizeof(at), "%s[%zu]", path, i);
		if (!json_is_array(row) || n < 5 || n > 6) {
			err_at(s, f, at, false,
			       "a row is [subject, purpose, status, "
			       "jurisdiction, updated_at, evidence?]");
			bad = true;
			continue;
		}
		for (k = 0; k < n; k++)
			if (!json_is_string(json_array_get(row, k))) {
				snprintf(at, sizeof(at), "%s[%zu][%zu]", path,
				         i, k);
				err_at(s, f, at, false, "%s must be a string",
				       cols[k]);
				bad = true;
			}
		for (k = 0; k < 6 && !bad; k++) {
			fv = json_array_get(row, k);
			csv_field(&csv, &len, &cap,
			          k < n ? json_string_value(fv) : "", k == 5);
		}
	}
	if (bad)
		goto done;
	if (csv == NULL) {
		err_at(s, f, path, false, "out of memory");
		goto done;
	}
	t = consent_import_csv(ROWS_SOURCE, csv, len, &errs);
	if (t == NULL)
		table_errors(s, f, path, true, &errs);
	else if (policy_check_consent(s->p, t, &errs) != 0) {
		table_errors(s, f, path, true, &errs);
		consent_free(t);
		t = NULL;
	}
done:
	free(csv);
	cg_errors_reset(&errs);
	return t;
}

static struct consent_table *
table_from_file(struct casefile_set *s, const struct casefile *f, json_t *v,
                const char *path)
{
	struct consent_table *t;
	struct cg_errors errs;
	char fpath[CASEFILE_PATH_LEN];

	if (!json_is_string(v)) {
		err_at(s, f, path, false, "must be a file name (string)");
		return NULL;
	}
	cg_errors_init(&errs);
	resolve(f, json_string_value(v), fpath, sizeof(fpath));
	t = consent_open(fpath, &errs);
	if (t != NULL && policy_check_consent(s->p, t, &errs) != 0) {
		consent_free(t);
		t = NULL;
	}
	if (t == NULL)
		table_errors(s, f, path, false, &errs);
	cg_errors_reset(&errs);
	return t;
}

/*
 * The table of obj's "consent" or "consent_file" (at path); *given false
 * when obj has neither. NULL on error (reported) or when not given.
 */
static struct consent_table *
table_of(struct casefile_set *s, const struct casefile *f, json_t *obj,
         const char *path, bool *given)
{
	json_t *rows = json_object_get(obj, "consent");
	json_t *file = json_object_get(obj, "consent_file");
	char at[CG_MAX_JSON_PATH];

	*given = rows != NULL || file != NULL;
	if (rows != NULL && file != NULL) {
		err_at(s, f, sub(at, path, "consent_file"), true,
		       "give 'consent' or 'consent_file', not both");
		return NULL;
	}
	if (rows != NULL)
		return table_from_rows(s, f, rows, sub(at, path, "consent"));
	if (file != NULL)
		return table_from_file(s, f, file,
		                       sub(at, path, "consent_file"));
	return NULL;
}

static bool
check_now(struct casefile_set *s, const struct casefile *f, json_t *obj,
          const char *path, int64_t *now)
{
	json_t *v = json_object_get(obj, "now");
	char at[CG_MAX_JSON_PATH];

	if (v == NULL)
		return false;
	if (!json_is_string(v) || cli_parse_now(json_string_value(v), now) != 0)
		err_at(s, f, sub(at, path, "now"), false,
		       "must be an RFC 3339 time like 2026-01-01T00:00:00Z");
	return true;
}

/* ---- one case, checked ---- */

static bool
is_index_list(json_t *v)
{
	size_t i;
	json_t *e;

	if (!json_is_array(v))
		return false;
	json_array_foreach(v, i, e)
	{
		if (!json_is_integer(e) || json_integer_value(e) < 0)
			return false;
	}
	return true;
}

static int
rule_known(const struct policy *p, const char *id)
{
	for (unsigned k = 0; k < policy_rule_count(p); k++)
		if (strcmp(policy_rule_id(p, k), id) == 0)
			return 1;
	return 0;
}

static void
check_expect(struct casefile_set *s, const struct casefile *f, json_t *expect,
             const char *path)
{
	static const char *const keys[] = {
	    "status",  "kept",      "kept_records", "dropped",
	    "blocked", "decisions", "rules",        NULL,
	};
	char at[CG_MAX_JSON_PATH], ids[400];
	const char *key;
	json_t *v, *e;
	size_t i;

	if (!json_is_object(expect) || json_object_size(expect) == 0) {
		/* a case that expects nothing would pass whatever happens */
		err_at(s, f, path, false,
		       "%s a non-empty object of status, kept, kept_records, "
		       "dropped, blocked, decisions, rules",
		       expect == NULL ? "required:" : "must be");
		return;
	}
	check_keys(s, f, expect, path, keys);
	ids[0] = '\0';
	for (unsigned k = 0; k < policy_rule_count(s->p); k++) {
		size_t n = strlen(ids);

		snprintf(ids + n, sizeof(ids) - n, "%s%s", k ? ", " : "",
		         policy_rule_id(s->p, k));
	}
	json_object_foreach(expect, key, v)
	{
		sub(at, path, key);
		if (strcmp(key, "status") == 0 &&
		    (!json_is_integer(v) || json_integer_value(v) < 100 ||
		     json_integer_value(v) > 599))
			err_at(s, f, at, false,
			       "must be an HTTP status (an integer 100-599)");
		else if ((strcmp(key, "kept") == 0) && !is_index_list(v))
			err_at(s, f, at, false,
			       "must be a list of record indexes (integers "
			       ">= 0)");
		else if (strcmp(key, "kept_records") == 0 && !json_is_array(v))
			err_at(s, f, at, false,
			       "must be a list of records (JSON values)");
		else if (strcmp(key, "dropped") == 0 &&
		         (!json_is_integer(v) || json_integer_value(v) < 0))
			err_at(s, f, at, false,
			       "must be a count (an integer >= 0)");
		else if (strcmp(key, "blocked") == 0 && !json_is_boolean(v))
			err_at(s, f, at, false, "must be true or false");
		else if (strcmp(key, "decisions") == 0 ||
		         strcmp(key, "rules") == 0) {
			bool rules = key[0] == 'r';

			if (!json_is_array(v)) {
				err_at(s, f, at, false,
				       "must be a list, one per record");
				continue;
			}
			json_array_foreach(v, i, e)
			{
				char el[CG_MAX_JSON_PATH];
				const char *str = json_string_value(e);

				snprintf(el, sizeof(el), "%s[%zu]", at, i);
				if (!rules && (str == NULL ||
				               (strcmp(str, "allow") != 0 &&
				                strcmp(str, "deny") != 0)))
					err_at(s, f, el, false,
					       "must be \"allow\" or \"deny\"");
				else if (rules && str == NULL)
					err_at(s, f, el, false,
					       "must be a rule id (string)");
				else if (rules && !rule_known(s->p, str))
					err_at(s, f, el, false,
					       "the policy has no rule '%s' "
					       "(rules: %s)",
					       str, ids);
			}
		}
	}
}

/* The body as records, one compact JSON value per line. */
static char *
records_body(json_t *records, size_t *len)
{
	char *body = NULL, *nb;
	size_t cap = 0, i;
	json_t *r;

	*len = 0;
	json_array_foreach(records, i, r)
	{
		char *line = json_dumps(r, JSON_COMPACT | JSON_ENCODE_ANY);
		size_t n = line ? strlen(line) : 0;

		if (line == NULL)
			goto fail;
		if (*len + n + 2 > cap) {
			cap = (*len + n + 2) * 2;
			if ((nb = realloc(body, cap)) == NULL) {
				free(line);
				goto fail;
			}
			body = nb;
		}
		memcpy(body + *len, line, n);
		*len += n;
		body[(*len)++] = '\n';
		free(line);
	}
	if (body == NULL)
		body = calloc(1, 1);
	return body;
fail:
	free(body);
	return NULL;
}

static void
check_body(struct casefile_set *s, struct casefile *f, json_t *c,
           struct casefile_case *tc)
{
	json_t *body = json_object_get(c, "body");
	json_t *bfile = json_object_get(c, "body_file");
	json_t *records = json_object_get(c, "records");
	char at[CG_MAX_JSON_PATH], fpath[CASEFILE_PATH_LEN];

	if ((body != NULL) + (bfile != NULL) + (records != NULL) > 1) {
		err_at(s, f, tc->path, false,
		       "give one of 'body', 'body_file' and 'records'");
		return;
	}
	if (body != NULL && !json_is_string(body)) {
		err_at(s, f, sub(at, tc->path, "body"), false,
		       "must be a string");
	} else if (body != NULL) {
		tc->len = json_string_length(body);
		if ((tc->body = malloc(tc->len + 1)) != NULL)
			memcpy(tc->body, json_string_value(body), tc->len);
	} else if (bfile != NULL && !json_is_string(bfile)) {
		err_at(s, f, sub(at, tc->path, "body_file"), false,
		       "must be a file name (string)");
	} else if (bfile != NULL) {
		resolve(f, json_string_value(bfile), fpath, sizeof(fpath));
		if ((tc->body = cli_read_file(fpath, &tc->len)) == NULL)
			err_at(s, f, sub(at, tc->path, "body_file"), false,
			       "cannot read %s: %s", fpath, strerror(errno));
	} else if (records != NULL && !json_is_array(records)) {
		err_at(s, f, sub(at, tc->path, "records"), false,
		       "must be a list of records (JSON values)");
	} else if (records != NULL) {
		tc->body = records_body(records, &tc->len);
	} else {
		tc->body = calloc(1, 1);
	}
}

/* "client": one identity or a list, each "uri:…", "dns:…" or "cn:…". */
static void
check_client(struct casefile_set *s, struct casefile *f, json_t *c,
             struct casefile_case *tc)
{
	json_t *v = json_object_get(c, "client"), *one = NULL;
	char at[CG_MAX_JSON_PATH];
	size_t used = 0, i;
	bool list = json_is_array(v);

	if (v == NULL)
		return;
	sub(at, tc->path, "client");
	if (!list && !json_is_string(v)) {
		err_at(s, f, at, false,
		       "must be an identity (\"uri:…\", \"dns:…\", "
		       "\"cn:…\") or a list of them");
		return;
	}
	for (i = 0; list ? i < json_array_size(v) : i < 1; i++) {
		const char *id;
		size_t n;

		one = list ? json_array_get(v, i) : v;
		id = json_string_value(one);
		n = id ? strlen(id) : 0;
		if (id == NULL || (strncmp(id, "uri:", 4) != 0 &&
		                   strncmp(id, "dns:", 4) != 0 &&
		                   strncmp(id, "cn:", 3) != 0)) {
			err_at(s, f, at, false,
			       "'%s' is not an identity: \"uri:…\", \"dns:…\" "
			       "or \"cn:…\"",
			       id ? id : "(not a string)");
			return;
		}
		if (used + n + 2 > sizeof(tc->client_ids)) {
			err_at(s, f, at, false, "too long");
			return;
		}
		memcpy(tc->client_ids + used, id, n + 1);
		used += n + 1;
	}
	tc->client_ids[used] = '\0';
	tc->has_client = true;
}

static void
check_headers(struct casefile_set *s, struct casefile *f, json_t *c,
              struct casefile_case *tc)
{
	json_t *hs = json_object_get(c, "headers");
	json_t *ct = json_object_get(c, "content_type");
	char at[CG_MAX_JSON_PATH], el[CG_MAX_JSON_PATH];
	const char *key;
	bool has_ct = false;
	json_t *v;

	if (hs != NULL && !json_is_object(hs)) {
		err_at(s, f, sub(at, tc->path, "headers"), false,
		       "must be an object of header names and values");
		hs = NULL;
	}
	json_object_foreach(hs, key, v)
	{
		sub(el, sub(at, tc->path, "headers"), key);
		if (!json_is_string(v)) {
			err_at(s, f, el, false, "must be a string");
			continue;
		}
		if (strcasecmp(key, "Content-Type") == 0 && ct != NULL) {
			err_at(s, f, el, true,
			       "give the Content-Type once: here or in "
			       "'content_type'");
			continue;
		}
		has_ct |= strcasecmp(key, "Content-Type") == 0;
		if (key[0] == '\0' || tc->nheaders == CG_MAX_CLI_HEADERS - 1) {
			err_at(s, f, el, true,
			       "a header needs a name (at most %d headers)",
			       CG_MAX_CLI_HEADERS - 1);
			continue;
		}
		tc->headers[tc->nheaders].name =
		    (struct cg_slice){key, strlen(key)};
		tc->headers[tc->nheaders].value = (struct cg_slice){
		    json_string_value(v), json_string_length(v)};
		tc->nheaders++;
	}
	if (ct != NULL && !json_is_string(ct)) {
		err_at(s, f, sub(at, tc->path, "content_type"), false,
		       "must be a string");
		return;
	}
	if (ct != NULL)
		tc->headers[tc->nheaders++] = (struct verdict_header){
		    CG_SLICE_LIT("Content-Type"),
		    {json_string_value(ct), json_string_length(ct)}};
	else if (json_object_get(c, "records") != NULL && !has_ct)
		/* records are sent as NDJSON, and say so */
		tc->headers[tc->nheaders++] = (struct verdict_header){
		    CG_SLICE_LIT("Content-Type"),
		    CG_SLICE_LIT("application/x-ndjson")};
}

/* A case name seen before in this run, with where. */
static const struct casefile_case *
seen_name(const struct casefile_set *s, const char *name)
{
	for (unsigned i = 0; i < s->ncases; i++)
		if (s->cases[i].name != NULL &&
		    strcmp(s->cases[i].name, name) == 0)
			return &s->cases[i];
	return NULL;
}

static void
check_case(struct casefile_set *s, struct casefile *f, json_t *c, size_t idx)
{
	static const char *const keys[] = {
	    "name",         "route",   "now",  "consent",   "consent_file",
	    "content_type", "headers", "body", "body_file", "records",
	    "expect",       "client",  NULL,
	};
	struct casefile_case *tc;
	const struct casefile_case *first;
	const char *route;
	char at[CG_MAX_JSON_PATH];
	bool given;

	if (s->ncases == s->cap) {
		unsigned cap = s->cap ? s->cap * 2 : 64;
		struct casefile_case *nc = realloc(s->cases, cap * sizeof(*nc));

		if (nc == NULL) {
			cg_errors_add(&s->errs, f->path, 0, 0, "out of memory");
			return;
		}
		s->cases = nc;
		s->cap = cap;
	}
	tc = &s->cases[s->ncases];
	memset(tc, 0, sizeof(*tc));
	tc->f = f;
	snprintf(tc->path, sizeof(tc->path), "cases[%zu]", idx);
	if (!json_is_object(c)) {
		err_at(s, f, tc->path, false, "a case must be an object");
		return;
	}
	s->ncases++;
	check_keys(s, f, c, tc->path, keys);
	tc->name = json_string_value(json_object_get(c, "name"));
	if (tc->name == NULL || tc->name[0] == '\0')
		err_at(s, f, sub(at, tc->path, "name"), false,
		       "required: a non-empty string");
	else if ((first = seen_name(s, tc->name)) != tc && first != NULL) {
		int line, col;
		char fat[CG_MAX_JSON_PATH];

		jsonpos_find(first->f->pos, sub(fat, first->path, "name"),
		             false, &line, &col);
		err_at(s, f, sub(at, tc->path, "name"), false,
		       "duplicate case name '%s' (first at %s:%d:%d)", tc->name,
		       first->f->path, line, col);
	}
	route = json_string_value(json_object_get(c, "route"));
	if (route == NULL)
		err_at(s, f, sub(at, tc->path, "route"), false,
		       "required: \"METHOD /path\"");
	else if (cli_split_route(route, tc->method, sizeof(tc->method),
	                         &tc->target) != 0)
		err_at(s, f, sub(at, tc->path, "route"), false,
		       "must be \"METHOD /path\", not '%s'", route);
	tc->now = f->now;
	check_now(s, f, c, tc->path, &tc->now);
	tc->own = table_of(s, f, c, tc->path, &given);
	tc->table = given ? tc->own : f->table;
	check_headers(s, f, c, tc);
	check_client(s, f, c, tc);
	check_body(s, f, c, tc);
	tc->expect = json_object_get(c, "expect");
	check_expect(s, f, tc->expect, sub(at, tc->path, "expect"));
}

static void
check_file(struct casefile_set *s, struct casefile *f)
{
	static const char *const keys[] = {
	    "now", "consent", "consent_file", "cases", NULL,
	};
	json_error_t jerr;
	json_t *cases, *c;
	const char *slash = strrchr(f->path, '/');
	bool given;
	size_t i;

	snprintf(f->dir, sizeof(f->dir), "%.*s",
	         slash ? (int)(slash - f->path + 1) : 0, f->path);
	f->now = (int64_t)time(NULL);
	if (f->text == NULL &&
	    (f->text = cli_read_file(f->path, &f->len)) == NULL) {
		cg_errors_add(&s->errs, f->path, 0, 0, "cannot read: %s",
		              strerror(errno));
		return;
	}
	f->root = json_loadb(f->text, f->len, JSON_REJECT_DUPLICATES, &jerr);
	if (f->root == NULL) {
		int line, col;

		jsonpos_of_error(f->text, f->len, jerr.line, jerr.column,
		                 jerr.position, &line, &col);
		cg_errors_add(&s->errs, f->path, line, col, "%s", jerr.text);
		return;
	}
	f->pos = jsonpos_scan(f->text, f->len);
	if (!json_is_object(f->root)) {
		err_at(s, f, "", false,
		       "a case file is an object with \"cases\"");
		return;
	}
	check_keys(s, f, f->root, "", keys);
	check_now(s, f, f->root, "", &f->now);
	f->table = table_of(s, f, f->root, "", &given);
	if (!given) {
		json_t *none = json_array();

		f->table = table_from_rows(s, f, none, "consent");
		json_decref(none);
	}
	cases = json_object_get(f->root, "cases");
	if (!json_is_array(cases) || json_array_size(cases) == 0) {
		err_at(s, f, "cases", cases != NULL,
		       "required: a non-empty list of cases");
		return;
	}
	json_array_foreach(cases, i, c) check_case(s, f, c, i);
}

void
casefile_set_init(struct casefile_set *s, const struct policy *p)
{
	memset(s, 0, sizeof(*s));
	s->p = p;
	cg_errors_init(&s->errs);
}

int
casefile_load(struct casefile_set *s, const char *path)
{
	if (s->nfiles == CG_MAX_CASE_FILES)
		return -1;
	s->files[s->nfiles].path = path;
	check_file(s, &s->files[s->nfiles++]);
	return 0;
}

int
casefile_load_text(struct casefile_set *s, const char *path, char *text,
                   size_t len)
{
	if (s->nfiles == CG_MAX_CASE_FILES) {
		free(text);
		return -1;
	}
	s->files[s->nfiles].text = text;
	s->files[s->nfiles].len = len;
	return casefile_load(s, path);
}

void
casefile_set_reset(struct casefile_set *s)
{
	for (unsigned i = 0; i < s->ncases; i++) {
		free(s->cases[i].body);
		consent_free(s->cases[i].own);
	}
	free(s->cases);
	for (unsigned i = 0; i < s->nfiles; i++) {
		json_decref(s->files[i].root);
		jsonpos_free(s->files[i].pos);
		free(s->files[i].text);
		consent_free(s->files[i].table);
	}
	cg_errors_reset(&s->errs);
	memset(s, 0, sizeof(*s));
}
