/*
 * route.c: matching a request to a route, the route's properties, the
 * body format of a request and the rebuilding of the body to forward.
 */
#include <ctype.h>
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

const struct policy_route *
policy_match(const struct policy *p, struct cg_slice method,
             struct cg_slice path)
{
	if (!path_is_safe(path))
		return NULL;
	for (unsigned i = 0; i < p->nroutes; i++) {
		const struct policy_route *r = &p->routes[i];
		size_t ml = r->method_len, pl = r->path_len;

		/* methods are case-sensitive (RFC 9110, 9.1) */
		if (!(ml == 1 && r->method[0] == '*') &&
		    (ml != method.len ||
		     memcmp(r->method, method.ptr, ml) != 0))
			continue;
		if (r->prefix ? path.len < pl : path.len != pl)
			continue;
		if (memcmp(r->path, path.ptr, pl) != 0)
			continue;
		return r;
	}
	return NULL;
}

unsigned
policy_route_count(const struct policy *p)
{
	return p->nroutes;
}

const struct policy_route *
policy_route_at(const struct policy *p, unsigned i)
{
	return i < p->nroutes ? &p->routes[i] : NULL;
}

const char *
policy_route_name(const struct policy_route *r)
{
	return r->name;
}

enum policy_action
policy_route_action(const struct policy_route *r)
{
	return r->action;
}

const char *
policy_route_purpose(const struct policy_route *r)
{
	return r->purpose >= 0 ? r->policy->purposes[r->purpose].name : NULL;
}

unsigned
policy_route_formats(const struct policy_route *r)
{
	return r->formats;
}

const struct scan_spec *
policy_route_scan_spec(const struct policy_route *r)
{
	return &r->spec;
}

const struct jsonptr *
policy_route_array_at(const struct policy_route *r)
{
	return r->has_array_at ? &r->array_at : NULL;
}

const char *
policy_route_subject_header(const struct policy_route *r)
{
	return r->subject_header;
}

enum policy_on_deny
policy_route_on_deny(const struct policy_route *r)
{
	return r->on_deny;
}

bool
policy_route_content_usage(const struct policy_route *r)
{
	return r->content_usage;
}

static bool
slice_ieq(const char *a, size_t alen, const char *lit)
{
	return alen == strlen(lit) && strncasecmp(a, lit, alen) == 0;
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
		if (pn >= 8 && strncasecmp(ps, "charset=", 8) == 0) {
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
policy_body_format(const struct policy_route *r, struct cg_slice content_type,
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
policy_body_rebuild(enum scan_format format, const char *body, size_t len,
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
