/*
 * http1_target.c: the request-target (RFC 9112 section 3.2), declared in
 * http1_internal.h. origin-form is taken as sent. absolute-form, which a
 * server MUST accept (3.2.2), is taken apart: its authority is checked like
 * a Host value (and by the caller against Host), and its origin form is
 * what the routes see and what goes upstream, so the path refusals of
 * policy/route.c hold for both forms alike and the upstream reads one
 * origin-form target and one Host. Every other form is refused.
 */
#include <string.h>

#include "http1_internal.h"

/*
 * The origin form t[0,n): a leading '/', no '\\' before the first '?'
 * (WHATWG URL parsers and Windows servers read it as '/'), each '%' followed
 * by two hex digits. NULL, or why not.
 */
static const char *
origin_check(const unsigned char *t, size_t n)
{
	unsigned char want = HTTP1_PATH;

	if (n == 0 || t[0] != '/')
		return "request-target not in origin form";
	for (size_t i = 0; i < n; i++) {
		if (t[i] == '?')
			want = HTTP1_TARGET;
		if (!(http1_class[t[i]] & want))
			return want == HTTP1_PATH ? "backslash in the path"
			                          : "invalid request-target";
		if (t[i] == '%' &&
		    (i + 2 >= n || !(http1_class[t[i + 1]] & HTTP1_HEX) ||
		     !(http1_class[t[i + 2]] & HTTP1_HEX)))
			return "'%' not followed by two hex digits in "
			       "request-target";
	}
	return NULL;
}

#define IS_ALPHA(c) (((c) | 0x20) >= 'a' && ((c) | 0x20) <= 'z')

/* Length of an RFC 3986 scheme followed by ':' at t[0,n), or 0. */
static size_t
scheme_len(const unsigned char *t, size_t n)
{
	size_t i = 0;

	if (n == 0 || !IS_ALPHA(t[0]))
		return 0;
	while (i < n && (IS_ALPHA(t[i]) || (t[i] >= '0' && t[i] <= '9') ||
	                 t[i] == '+' || t[i] == '-' || t[i] == '.'))
		i++;
	return i < n && t[i] == ':' ? i : 0;
}

/* The absolute form t[0,n) into req, or why not. */
static const char *
absolute_split(const unsigned char *t, size_t n, struct http1_request *req)
{
	size_t s = scheme_len(t, n), a, i;

	if (n == 1 && t[0] == '*')
		return "asterisk-form request-target (OPTIONS *) not supported";
	if (s == 0)
		return "request-target not in origin or absolute form";
	if (!HTTP1_IEQ(t, s, "http") && !HTTP1_IEQ(t, s, "https")) {
		for (i = s + 1; i < n && t[i] >= '0' && t[i] <= '9'; i++)
			;
		return i == n && n > s + 1
		           ? "authority-form request-target (CONNECT only)"
		           : "request-target scheme is not http or https";
	}
	if (n < s + 3 || t[s + 1] != '/' || t[s + 2] != '/')
		return "absolute-form request-target without an authority";
	a = s + 3;
	for (i = a; i < n && t[i] != '/' && t[i] != '?'; i++)
		if (t[i] == '@')
			return "userinfo in the request-target";
	if (i == a || t[a] == ':')
		return "empty host in the request-target";
	if (!http1_value_host(t + a, i - a))
		return "invalid host in the request-target";
	if (i == n || t[i] == '?')
		return "empty path in the request-target (send '/')";
	req->https = s == 5;
	req->authority = (struct cg_slice){(const char *)t + a, i - a};
	req->target = (struct cg_slice){(const char *)t + i, n - i};
	return NULL;
}

int
http1_target_parse(struct http1_request *req, const char **reason)
{
	const unsigned char *t = (const unsigned char *)req->target.ptr;
	const char *why = NULL, *q;
	size_t plen;

	req->authority = (struct cg_slice){NULL, 0};
	req->https = false;
	if (req->target.len == 0 || t[0] != '/')
		why = absolute_split(t, req->target.len, req);
	if (why == NULL)
		why = origin_check((const unsigned char *)req->target.ptr,
		                   req->target.len);
	if (why != NULL) {
		*reason = why;
		return -1;
	}
	q = memchr(req->target.ptr, '?', req->target.len);
	plen = q ? (size_t)(q - req->target.ptr) : req->target.len;
	req->path = (struct cg_slice){req->target.ptr, plen};
	req->query = q ? (struct cg_slice){q + 1, req->target.len - plen - 1}
	               : (struct cg_slice){req->target.ptr + plen, 0};
	return 0;
}

/* The length of a host [ ":" port ] v[0,n) without an empty port or the
 * scheme's default one. */
static size_t
without_default_port(const unsigned char *v, size_t n, bool https)
{
	size_t i = n;

	while (i > 0 && v[i - 1] >= '0' && v[i - 1] <= '9')
		i--;
	if (i == 0 || v[i - 1] != ':' || (v[0] == '[' && v[i - 2] != ']'))
		return n;
	if (i == n || (https ? n - i == 3 && memcmp(v + i, "443", 3) == 0
	                     : n - i == 2 && memcmp(v + i, "80", 2) == 0))
		return i - 1;
	return n;
}

bool
http1_target_host_is(const struct http1_request *req, const unsigned char *host,
                     size_t n)
{
	const unsigned char *a = (const unsigned char *)req->authority.ptr;
	size_t alen = without_default_port(a, req->authority.len, req->https);

	n = without_default_port(host, n, req->https);
	if (alen != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (http1_class_lower[a[i]] != http1_class_lower[host[i]])
			return false;
	return true;
}
