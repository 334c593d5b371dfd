/*
 * http1_value.c: the field values the framing depends on, read strictly:
 * Content-Length (digits, no overflow), Transfer-Encoding (exactly one
 * chunked), Connection (a token list) and Host (RFC 9110 7.2, no list).
 */
#include "http1_internal.h"

/* 1*DIGIT without overflow. */
int
http1_value_length(const unsigned char *v, size_t n, uint64_t *out)
{
	uint64_t x = 0;
	size_t i;

	if (n == 0)
		return -1;
	for (i = 0; i < n; i++) {
		unsigned d = (unsigned)v[i] - '0';
		if (d > 9)
			return -1;
		if (x > (UINT64_MAX - d) / 10)
			return -1;
		x = x * 10 + d;
	}
	*out = x;
	return 0;
}

/*
 * Transfer-Encoding value: 0 when it is exactly one "chunked", 501 when it
 * names another coding, 400 when the list is malformed or repeats chunked.
 */
int
http1_value_te(const unsigned char *v, size_t n)
{
	size_t i = 0, s;
	unsigned chunked = 0;
	bool other = false, is_chunked;

	for (;;) {
		s = i;
		while (i < n && (http1_class[v[i]] & HTTP1_TCHAR))
			i++;
		if (i == s)
			return 400; /* empty element or stray byte */
		is_chunked = HTTP1_IEQ(v + s, i - s, "chunked");
		if (is_chunked)
			chunked++;
		else
			other = true;
		while (i < n && (v[i] == ' ' || v[i] == '\t'))
			i++;
		if (i == n)
			break;
		if (v[i] == ';') {
			/* transfer parameters: never valid on chunked (i is
			 * past any OWS: the token ended before it) */
			if (is_chunked)
				return 400;
			while (i < n && v[i] != ',')
				i++;
			if (i == n)
				break;
		}
		if (v[i] != ',')
			return 400;
		i++;
		while (i < n && (v[i] == ' ' || v[i] == '\t'))
			i++;
	}
	if (other)
		return 501;
	return chunked == 1 ? 0 : 400;
}

/*
 * Connection value: a comma list of tokens (empty elements ignored).
 * Returns -1 when an element is not a token.
 */
int
http1_value_connection(const unsigned char *v, size_t n, bool *close,
                       bool *keep_alive)
{
	size_t i = 0, s;

	while (i < n) {
		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		if (i == n)
			break;
		s = i;
		while (i < n && (http1_class[v[i]] & HTTP1_TCHAR))
			i++;
		if (i == s)
			return -1;
		if (HTTP1_IEQ(v + s, i - s, "close"))
			*close = true;
		else if (HTTP1_IEQ(v + s, i - s, "keep-alive"))
			*keep_alive = true;
		while (i < n && (v[i] == ' ' || v[i] == '\t'))
			i++;
		if (i < n && v[i] != ',')
			return -1;
	}
	return 0;
}

/*
 * Host = uri-host [ ":" port ] (RFC 9110 7.2): an IP literal in brackets or
 * a reg-name, then digits after one colon. A comma is refused although
 * reg-name allows it: a back end may read Host as a list.
 */
bool
http1_value_host(const unsigned char *v, size_t n)
{
	size_t i = 0;

	if (n > 0 && v[0] == '[') {
		for (i = 1; i < n && v[i] != ']'; i++)
			if (!(http1_class[v[i]] & HTTP1_HOST) || v[i] == '[')
				return false;
		if (i == n || i == 1)
			return false;
		i++;
	} else {
		while (i < n && (http1_class[v[i]] & HTTP1_HOST) &&
		       v[i] != ':' && v[i] != '[' && v[i] != ']' && v[i] != ',')
			i++;
	}
	if (i < n && v[i] == ':')
		for (i++; i < n && v[i] >= '0' && v[i] <= '9'; i++)
			;
	return i == n;
}
