/*
 * route.c: matching a request to a route (and refusing the spellings of an
 * inspected route's method and path that another route would take), the
 * route's properties, the body format of a request and the rebuilding of
 * the body to forward.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "policy_internal.h"

/*
 * A path an upstream could read as another path is covered by no route:
 * "/ok/../ingest" or "/ok/%2e%2e/ingest" matches a pass prefix "/ok/" here
 * but nginx serves it as /ingest. Dot segments (also with ";" parameters),
 * encoded dots, slashes, backslashes and NULs, and raw backslashes and NULs
 * fail closed.
 */
static bool
path_is_safe(struct cg_slice path)
{
	size_t seg = 0;

	for (size_t i = 0; i <= path.len; i++) {
		char c = i < path.len ? path.ptr[i] : '/';
		if (c == '\\' || c == '\0')
			return false;
		if (c == '%' && i + 2 < path.len) {
			char h = path.ptr[i + 1];
			char l = (char)tolower((unsigned char)path.ptr[i + 2]);
			if ((h == '2' && (l == 'e' || l == 'f')) ||
			    (h == '5' && l == 'c') || (h == '0' && l == '0'))
				return false;
		}
		if (c != '/')
			continue;
		/* the segment [seg, i): ".", "..", ".;x", "..;x" */
		size_t n = i - seg;
		const char *s = path.ptr + seg;
		if ((n == 1 && s[0] == '.') ||
		    (n == 2 && s[0] == '.' && s[1] == '.') ||
		    (n >= 2 && s[0] == '.' && s[1] == ';') ||
		    (n >= 3 && s[0] == '.' && s[1] == '.' && s[2] == ';'))
			return false;
		seg = i + 1;
	}
	return true;
}

/* Does r's path (exact, or as a prefix) take path, whatever the method? */
static bool
route_has_path(const struct policy_route *r, struct cg_slice path)
{
	size_t pl = r->path_len;

	if (r->prefix ? path.len < pl : path.len != pl)
		return false;
	return memcmp(r->path, path.ptr, pl) == 0;
}

/* Does r take (method, path) as written? */
static bool
route_takes(const struct policy_route *r, struct cg_slice method,
            struct cg_slice path)
{
	size_t ml = r->method_len;

	/* methods are case-sensitive (RFC 9110, 9.1) */
	if (!(ml == 1 && r->method[0] == '*') &&
	    (ml != method.len || memcmp(r->method, method.ptr, ml) != 0))
		return false;
	return route_has_path(r, path);
}

static int
hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)(c | 0x20);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/*
 * The path as upstream frameworks may route it, into out (room for len
 * bytes): %-escapes decoded (werkzeug, Express; "%25" followed by an
 * escape again, as a second decoder would), ASCII letters in
 * lower case (case-insensitive routers), runs of '/' merged (werkzeug,
 * nginx merge_slashes), ';' parameters cut from every segment (Java
 * servlet containers; an escaped ';' too). *full is that length; *exact
 * the length once a trailing '/' (strict_slashes=False, Django's
 * APPEND_SLASH) and a format suffix of the last segment (Rails ".:format",
 * Django REST format_suffix_patterns: from its first '.' that does not
 * begin it) are dropped: what an exact route compares with, while a prefix
 * route compares with the full form. Paths that path_is_safe refuses never
 * get here.
 */
static void
canon_path(const char *s, size_t len, char *out, size_t *full, size_t *exact)
{
	bool in_params = false;
	size_t o = 0, e, seg;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		/* "%2569" is "%69" to a second decoder (a proxy, then the
		 * app): decode as often as an escape follows */
		while (c == '%' && i + 2 < len && hex_digit(s[i + 1]) >= 0 &&
		       hex_digit(s[i + 2]) >= 0) {
			c = (unsigned char)(hex_digit(s[i + 1]) * 16 +
			                    hex_digit(s[i + 2]));
			i += 2;
		}
		if (c == '/') {
			in_params = false;
			if (o == 0 || out[o - 1] != '/')
				out[o++] = '/';
			continue;
		}
		if (in_params)
			continue;
		if (c == ';') {
			in_params = true;
			continue;
		}
		out[o++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
	}
	*full = e = o;
	if (e > 1 && out[e - 1] == '/')
		e--;
	for (seg = e; seg > 0 && out[seg - 1] != '/'; seg--)
		;
	for (size_t k = seg + 1; k < e; k++)
		if (out[k] == '.') {
			e = k;
			break;
		}
	*exact = e;
}

static bool
is_inspected(const struct policy_route *r)
{
	return r->action == POLICY_ACTION_INSPECT;
}

static bool
is_any_method(const struct policy_route *r)
{
	return r->method_len == 1 && r->method[0] == '*';
}

/* Could the method mean r's, once upper-cased as werkzeug does? */
static bool
method_means(const struct policy_route *r, struct cg_slice method)
{
	return is_any_method(r) || cg_slice_ieq(method, r->method);
}

static bool
method_is_upper(struct cg_slice method)
{
	for (size_t i = 0; i < method.len; i++)
		if (method.ptr[i] >= 'a' && method.ptr[i] <= 'z')
			return false;
	return true;
}

static const struct policy_route *
refuse(struct route_refusal *why, int status, const char *reason,
       const struct policy_route *route)
{
	if (why != NULL) {
		why->status = status;
		why->reason = reason;
		why->route = route;
	}
	return NULL;
}

/* What the client is told (policy_refusal.reason); compared by address. */
static const char reason_no_route[] = "no route covers this method and path";
static const char reason_unsafe[] =
    "the path has dot segments, encoded dots or separators, a backslash "
    "or a NUL: an upstream could resolve it to another path";
static const char reason_alias[] =
    "this path is another spelling of an inspected route's path (as "
    "upstream frameworks route it), and only the spelling in the rule "
    "file is inspected";
static const char reason_shadowed[] =
    "an earlier route of the rule file takes this request before the "
    "inspected route it means; consentgate refuses it rather than pass "
    "it uninspected (fix the order of the routes)";
static const char reason_method[] =
    "this method is not the inspected route's, and no route names "
    "exactly this method and path";
static const char reason_path_other_method[] =
    "the routes on this path take other methods (Allow lists them)";
static const char reason_method_case[] =
    "methods are case-sensitive (RFC 9110), and upstream frameworks "
    "upper-case this one into an inspected route's method";
static const char reason_too_long[] =
    "the path is too long to compare with the inspected routes";

/*
 * r took (method, path) as written and can take requests that mean an
 * inspected route: normalise the path and find the inspected route it
 * means (an exact path before the longest prefix). r, or NULL (why).
 */
static const struct policy_route *
check_alias(const struct policy *p, const struct policy_route *r,
            struct cg_slice method, struct cg_slice path,
            struct route_refusal *why)
{
	char buf[CG_MAX_CANON_PATH];
	const struct policy_route *exact = NULL, *prefix = NULL, *other = NULL;
	size_t full, elen;

	if (path.len > sizeof(buf))
		return refuse(why, 414, reason_too_long, NULL);
	canon_path(path.ptr, path.len, buf, &full, &elen);
	for (unsigned i = 0; i < p->nroutes && exact == NULL; i++) {
		const struct policy_route *j = &p->routes[i];
		bool same;

		if (!is_inspected(j))
			continue;
		if (j->prefix)
			same = full >= j->canon_len &&
			       memcmp(buf, j->canon, j->canon_len) == 0;
		else
			same = elen == j->canon_len &&
			       memcmp(buf, j->canon, elen) == 0;
		if (!same)
			continue;
		if (!method_means(j, method)) {
			if (other == NULL)
				other = j;
		} else if (!j->prefix) {
			exact = j;
		} else if (prefix == NULL || j->canon_len > prefix->canon_len) {
			prefix = j;
		}
	}
	if (exact == NULL)
		exact = prefix;
	if (exact == r)
		return r;
	if (exact != NULL)
		return refuse(why, 404,
		              route_takes(exact, method, path) ? reason_shadowed
		                                               : reason_alias,
		              exact);
	/* a route naming exactly this method and path may take it */
	if (other != NULL && (is_any_method(r) || r->prefix))
		return refuse(why, 405, reason_method, other);
	return r;
}

const struct policy_route *
route_match(const struct policy *p, struct cg_slice method,
            struct cg_slice path, struct route_refusal *why)
{
	const struct policy_route *r = NULL;

	if (!path_is_safe(path))
		return refuse(why, 404, reason_unsafe, NULL);
	for (unsigned i = 0; i < p->nroutes && r == NULL; i++)
		if (route_takes(&p->routes[i], method, path))
			r = &p->routes[i];
	if (r == NULL) {
		/* RFC 9110 15.5.6: the path is known, the method is not */
		for (unsigned i = 0; i < p->nroutes; i++)
			if (route_has_path(&p->routes[i], path))
				return refuse(why, 405,
				              reason_path_other_method,
				              &p->routes[i]);
		return refuse(why, 404, reason_no_route, NULL);
	}
	if (r->action == POLICY_ACTION_PASS && p->has_inspect &&
	    !method_is_upper(method))
		for (unsigned i = 0; i < p->nroutes; i++)
			if (is_inspected(&p->routes[i]) &&
			    method_means(&p->routes[i], method))
				return refuse(why, 400, reason_method_case,
				              &p->routes[i]);
	if (!r->may_alias)
		return r;
	return check_alias(p, r, method, path, why);
}

void
route_allow(const struct policy *p, struct cg_slice path, char *buf, size_t cap)
{
	size_t len = 0;

	if (cap == 0)
		return;
	buf[0] = '\0';
	for (unsigned i = 0; i < p->nroutes; i++) {
		const struct policy_route *r = &p->routes[i];
		bool seen = false;

		if (is_any_method(r) || !route_has_path(r, path))
			continue;
		for (unsigned j = 0; j < i && !seen; j++)
			seen = !is_any_method(&p->routes[j]) &&
			       route_has_path(&p->routes[j], path) &&
			       strcmp(p->routes[j].method, r->method) == 0;
		if (seen || len + r->method_len + 3 > cap)
			continue;
		len += (size_t)snprintf(buf + len, cap - len, "%s%s",
		                        len ? ", " : "", r->method);
	}
}

void
route_refusal_detail(const struct route_refusal *why, char *buf, size_t cap)
{
	const struct policy_route *j = why->route;
	const char *star = j != NULL && j->prefix ? "..." : "";

	if (cap == 0)
		return;
	if (j == NULL)
		snprintf(buf, cap, "%s", why->reason);
	else if (why->reason == reason_alias)
		snprintf(buf, cap,
		         "%s: the inspected route is '%s' (%s %s%s); send %s%s"
		         "%s%s",
		         why->reason, j->name, j->method, j->path, star,
		         is_any_method(j) ? "" : j->method,
		         is_any_method(j) ? "" : " ", j->path, star);
	else if (why->reason == reason_path_other_method)
		snprintf(buf, cap, "%s: route '%s' takes %s %s%s", why->reason,
		         j->name, j->method, j->path, star);
	else if (why->status == 400)
		snprintf(buf, cap,
		         "%s: the inspected route is '%s' (%s %s%s); send the "
		         "method in upper case",
		         why->reason, j->name, j->method, j->path, star);
	else
		snprintf(buf, cap, "%s: the inspected route is '%s' (%s %s%s)",
		         why->reason, j->name, j->method, j->path, star);
}

/* ---- load time: normalised paths, alias flags, warnings ---- */

/*
 * Could r take a request that means the inspected route j (conservative:
 * true when unsure)? r takes, as written, its exact path or any path that
 * starts with its prefix; normalising such a path keeps the prefix's own
 * normalised form except at the end: a trailing '%' escape cut in two, a
 * format suffix and a trailing '/' of its last segment.
 */
static bool
could_take(const struct policy_route *r, const struct policy_route *j,
           const char *rfull, size_t rfull_len, size_t rexact_len)
{
	const char *jc = j->canon;
	size_t jl = j->canon_len, base, seg;

	if (!is_any_method(r) && !is_any_method(j) &&
	    strcasecmp(r->method, j->method) != 0 && !r->prefix)
		return false; /* a route of its own for another method */
	if (!r->prefix) {
		if (j->prefix)
			return rfull_len >= jl && memcmp(rfull, jc, jl) == 0;
		return rexact_len == jl && memcmp(rfull, jc, jl) == 0;
	}
	/* j's region inside r's: r takes some of j's requests */
	if (j->prefix && rfull_len >= jl && memcmp(rfull, jc, jl) == 0)
		return true;
	/* r's normalised prefix, cut to what any continuation keeps */
	base = rfull_len;
	for (seg = base; seg > 0 && rfull[seg - 1] != '/'; seg--)
		;
	for (size_t k = seg + 1; k < base; k++)
		if (rfull[k] == '.') {
			base = k;
			break;
		}
	if (base > 1 && rfull[base - 1] == '/')
		base--;
	return base <= jl && memcmp(rfull, jc, base) == 0;
}

/* Does an earlier route take every request routes[i] would (a route the
 * lint already reports as never used)? */
static bool
never_used(const struct policy *p, unsigned i)
{
	const struct policy_route *r = &p->routes[i];

	for (unsigned k = 0; k < i; k++) {
		const struct policy_route *a = &p->routes[k];
		if (!is_any_method(a) && strcmp(a->method, r->method) != 0)
			continue;
		if (a->prefix ? strncmp(a->path, r->path, a->path_len) == 0
		              : !r->prefix && strcmp(a->path, r->path) == 0)
			return true;
	}
	return false;
}

int
route_compile(struct policy *p, const char *name)
{
	char *full = NULL;
	size_t cap = 1;
	int rc = -1;

	for (unsigned i = 0; i < p->nroutes; i++) {
		if (is_inspected(&p->routes[i]))
			p->has_inspect = true;
		if (p->routes[i].path_len + 1 > cap)
			cap = p->routes[i].path_len + 1;
	}
	if ((full = malloc(cap)) == NULL)
		goto done;
	for (unsigned i = 0; i < p->nroutes; i++) {
		struct policy_route *r = &p->routes[i];
		size_t fl, el;

		if ((r->canon = malloc(r->path_len + 1)) == NULL)
			goto done;
		canon_path(r->path, r->path_len, r->canon, &fl, &el);
		r->canon_len = r->prefix ? fl : el;
	}
	for (unsigned i = 0; i < p->nroutes; i++) {
		struct policy_route *r = &p->routes[i];
		const struct policy_route *first = NULL;
		char desc[256];
		unsigned more = 0;
		size_t fl, el, n = r->path_len;

		/* a prefix cut inside a %-escape continues it */
		if (r->prefix && n > 0 && r->path[n - 1] == '%')
			n--;
		else if (r->prefix && n > 1 && r->path[n - 2] == '%')
			n -= 2;
		canon_path(r->path, n, full, &fl, &el);
		if ((is_inspected(r) && !r->prefix) || never_used(p, i))
			continue; /* taken only as written, or never */
		for (unsigned k = 0; k < p->nroutes; k++) {
			const struct policy_route *j = &p->routes[k];
			if (j == r || !is_inspected(j) ||
			    !could_take(r, j, full, fl, el))
				continue;
			r->may_alias = true;
			if (first == NULL)
				first = j;
			else
				more++;
		}
		if (first == NULL)
			continue;
		snprintf(desc, sizeof(desc), "%s %s%s", first->method,
		         first->path, first->prefix ? "*" : "");
		if (strcmp(desc, first->name) == 0)
			desc[0] = '\0';
		cg_errors_add(
		    &p->warnings, name, r->line, r->col,
		    "warning: routes[%u] ('%s') can take requests "
		    "that mean the inspected route '%s'%s%s%s%s: "
		    "other spellings of its path (//x, /X, %%-escapes, "
		    "a trailing /, ;params, .json), other methods or "
		    "lower-case ones; consentgate refuses those "
		    "requests (404, 405, 400) instead of %s them",
		    i, r->name, first->name, desc[0] ? " (" : "", desc,
		    desc[0] ? ")" : "",
		    more ? " and other inspected routes" : "",
		    is_inspected(r) ? "deciding" : "passing");
	}
	rc = 0;
done:
	free(full);
	return rc;
}

unsigned
route_count(const struct policy *p)
{
	return p->nroutes;
}

const struct policy_route *
route_at(const struct policy *p, unsigned i)
{
	return i < p->nroutes ? &p->routes[i] : NULL;
}

const char *
route_name(const struct policy_route *r)
{
	return r->name;
}

enum policy_action
route_action(const struct policy_route *r)
{
	return r->action;
}

const char *
route_purpose(const struct policy_route *r)
{
	return r->purpose >= 0 ? r->policy->purposes[r->purpose].name : NULL;
}

unsigned
route_formats(const struct policy_route *r)
{
	return r->formats;
}

const struct scan_spec *
route_scan_spec(const struct policy_route *r)
{
	return &r->spec;
}

const struct jsonptr *
route_array_at(const struct policy_route *r)
{
	return r->has_array_at ? &r->array_at : NULL;
}

bool
route_shadow(const struct policy_route *r)
{
	return r->shadow || r->policy->shadow;
}

const char *
route_method(const struct policy_route *r)
{
	return r->method;
}

void
route_media_types(const struct policy_route *r, char *buf, size_t cap)
{
	bool nd = (r->formats & SCAN_FORMAT_NDJSON) != 0;
	bool js = (r->formats & ~(unsigned)SCAN_FORMAT_NDJSON) != 0;

	snprintf(buf, cap, "%s%s%s", nd ? "\"application/x-ndjson\"" : "",
	         nd && js ? "," : "", js ? "\"application/json\"" : "");
}

unsigned
route_client_count(const struct policy_route *r)
{
	return r->nclients;
}

const char *
route_client_at(const struct policy_route *r, unsigned i)
{
	return i < r->nclients ? r->clients[i] : NULL;
}

bool
route_client_allowed(const struct policy_route *r, const char *ids,
                     const char **matched)
{
	if (matched)
		*matched = NULL;
	if (r->nclients == 0)
		return true;
	for (const char *id = ids; id && *id; id += strlen(id) + 1)
		for (unsigned i = 0; i < r->nclients; i++) {
			const char *want = r->clients[i];
			bool same = strncmp(want, "dns:", 4) == 0
			                ? strcasecmp(want, id) == 0
			                : strcmp(want, id) == 0;

			if (same) {
				if (matched)
					*matched = id;
				return true;
			}
		}
	return false;
}

void
route_client_refusal(const struct policy_route *r, const char *ids, char *buf,
                     size_t cap)
{
	bool some = ids != NULL && ids[0] != '\0';

	snprintf(buf, cap, "route '%s' takes only the clients it names; %s%s%s",
	         r->name, some ? "this client's certificate names " : "",
	         some ? ids : "this client presented no verified certificate",
	         some ? ", which is not one of them" : "");
}

const char *
route_subject_header(const struct policy_route *r)
{
	return r->subject_header;
}

enum policy_on_deny
route_on_deny(const struct policy_route *r)
{
	return r->on_deny;
}

bool
route_content_usage(const struct policy_route *r)
{
	return r->content_usage;
}

static bool
slice_ieq(const char *a, size_t alen, const char *lit)
{
	return cg_slice_ieq((struct cg_slice){a, alen}, lit);
}

/* Trim optional whitespace (SP, HTAB) around [*s, *s + *n). */
static void
trim(const char **s, size_t *n)
{
	while (*n > 0 && (**s == ' ' || **s == '\t')) {
		(*s)++;
		(*n)--;
	}
	while (*n > 0 && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
		(*n)--;
}

/* Only UTF-8 JSON exists (RFC 8259, 8.1): any other charset is refused. */
static bool
params_ok(const char *s, size_t n)
{
	while (n > 0) {
		const char *semi = memchr(s, ';', n);
		size_t plen = semi ? (size_t)(semi - s) : n;
		const char *ps = s;
		size_t pn = plen;

		trim(&ps, &pn);
		if (pn >= 8 && slice_ieq(ps, 8, "charset=")) {
			const char *v = ps + 8;
			size_t vn = pn - 8;
			if (vn >= 2 && v[0] == '"' && v[vn - 1] == '"') {
				v++;
				vn -= 2;
			}
			if (!slice_ieq(v, vn, "utf-8") &&
			    !slice_ieq(v, vn, "utf8"))
				return false;
		}
		if (semi == NULL)
			break;
		s = semi + 1;
		n -= plen + 1;
	}
	return true;
}

static int
sniff_json(unsigned formats, const char *body, size_t len)
{
	size_t i = 0;

	while (i < len && strchr(" \t\r\n", body[i]) != NULL && body[i] != 0)
		i++;
	if (i == len)
		return -1;
	if (body[i] == '[')
		return (formats & SCAN_FORMAT_ARRAY) ? SCAN_FORMAT_ARRAY : -1;
	if (body[i] == '{') {
		if (formats & SCAN_FORMAT_ARRAY_AT)
			return SCAN_FORMAT_ARRAY_AT;
		return (formats & SCAN_FORMAT_OBJECT) ? SCAN_FORMAT_OBJECT : -1;
	}
	return -1;
}

int
route_body_format(const struct policy_route *r, struct cg_slice content_type,
                  const char *body, size_t len)
{
	const char *s = content_type.ptr;
	size_t n = content_type.len, tn;
	const char *semi;

	if (r->action != POLICY_ACTION_INSPECT)
		return -1;
	trim(&s, &n);
	if (n == 0) {
		if (r->formats & SCAN_FORMAT_NDJSON)
			return SCAN_FORMAT_NDJSON;
		return sniff_json(r->formats, body, len);
	}
	semi = memchr(s, ';', n);
	tn = semi ? (size_t)(semi - s) : n;
	if (semi != NULL && !params_ok(semi + 1, n - tn - 1))
		return -1;
	while (tn > 0 && (s[tn - 1] == ' ' || s[tn - 1] == '\t'))
		tn--;
	if (slice_ieq(s, tn, "application/json"))
		return sniff_json(r->formats, body, len);
	if (slice_ieq(s, tn, "application/x-ndjson") ||
	    slice_ieq(s, tn, "application/ndjson") ||
	    slice_ieq(s, tn, "application/jsonl") ||
	    slice_ieq(s, tn, "application/x-jsonlines"))
		return (r->formats & SCAN_FORMAT_NDJSON) ? SCAN_FORMAT_NDJSON
		                                         : -1;
	return -1;
}

size_t
route_body_rebuild(enum scan_format format, const char *body, size_t len,
                   size_t array_open, size_t array_close,
                   const struct policy_span *kept, unsigned nkept, char *out)
{
	size_t o = 0;

	switch (format) {
	case SCAN_FORMAT_NDJSON:
		for (unsigned i = 0; i < nkept; i++) {
			size_t n = kept[i].end - kept[i].start;
			memcpy(out + o, body + kept[i].start, n);
			o += n;
			out[o++] = '\n';
		}
		break;
	case SCAN_FORMAT_OBJECT:
		if (nkept > 0) {
			memcpy(out, body + kept[0].start,
			       kept[0].end - kept[0].start);
			o = kept[0].end - kept[0].start;
		}
		break;
	case SCAN_FORMAT_ARRAY:
	case SCAN_FORMAT_ARRAY_AT:
		/* the document up to and including '[' (ARRAY: just '[') */
		if (format == SCAN_FORMAT_ARRAY_AT) {
			memcpy(out, body, array_open + 1);
			o = array_open + 1;
		} else {
			out[o++] = '[';
		}
		for (unsigned i = 0; i < nkept; i++) {
			size_t n = kept[i].end - kept[i].start;
			if (i > 0)
				out[o++] = ',';
			memcpy(out + o, body + kept[i].start, n);
			o += n;
		}
		if (format == SCAN_FORMAT_ARRAY_AT) {
			memcpy(out + o, body + array_close, len - array_close);
			o += len - array_close;
		} else {
			out[o++] = ']';
		}
		break;
	}
	return o;
}
