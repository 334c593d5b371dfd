/*
 * http1.c: strict HTTP/1.1 framing (RFC 9112).
 *
 * Every byte of a head is classified in one pass with a 256-entry table;
 * nothing is believed before it is checked. Debian's http-parser is too
 * lenient to decide anything here (see DESIGN.md) and turned out redundant
 * as a cross-check of the request-target, so this file does without it.
 * Pure functions over contiguous buffers: no allocation. Request-targets:
 * http1_target.c; chunked bodies: http1_chunked.c.
 *
 * Choices where the RFC leaves room, all on the strict side:
 *  - the head size limit is enforced inside http1_parse_request too: when
 *    max_head_bytes are buffered without the end of the head it returns 431;
 *    http1_head_too_long gives callers the same answer;
 *  - HTTP/1.2 to HTTP/1.9 get 505, every other version 400;
 *  - origin- and absolute-form targets (http1_target.c); an absolute-form
 *    target whose authority is not the Host sent (a default port aside) is
 *    refused, as HAProxy does (RFC 9112 3.2: a client MUST send them
 *    identical), so that no peer can route by one and the upstream by the
 *    other; CONNECT 501, asterisk and authority form 400;
 *  - OWS around field values is removed, but a HTAB after a
 *    Transfer-Encoding value is refused (http-parser 2.9 reads
 *    "chunked<HTAB>" as another coding); after a request's Content-Length
 *    it is fine, since the framing consentgate forwards is its own;
 *  - empty list elements in Transfer-Encoding are refused (they are
 *    ignored in Connection);
 *  - field names that equal Host, Content-Length or Transfer-Encoding once
 *    '_' is read as '-' are refused: some back ends fold them together; so
 *    are names that merely begin with Transfer-Encoding (http-parser 2.9
 *    lets them cancel chunked);
 *  - responses: any Transfer-Encoding other than exactly "chunked" is
 *    refused rather than read as close-delimited, and so is 101.
 */
#include <string.h>

#include "http1_internal.h"

/* Like ieq with '_' read as '-': spots names some back ends fold. */
static inline bool
fold_eq(const unsigned char *p, size_t n, const char *lit, size_t litlen)
{
	size_t i;

	if (n != litlen)
		return false;
	for (i = 0; i < n; i++) {
		unsigned char c = p[i] == '_' ? '-' : http1_class_lower[p[i]];
		if (c != (unsigned char)lit[i])
			return false;
	}
	return true;
}

#define IEQ(p, n, lit) http1_ieq((p), (n), (lit), sizeof(lit) - 1)
#define FOLD_EQ(p, n, lit) fold_eq((p), (n), (lit), sizeof(lit) - 1)

/*
 * Skip field value bytes eight at a time while none is a control byte or
 * DEL (HTAB included: the byte loop after this handles it). The borrow in
 * the "less than" test only spreads from a byte that is really below 0x20,
 * so a clean word is never misread.
 */
static inline size_t
skip_plain8(const unsigned char *p, size_t i, size_t end)
{
	const uint64_t ones = 0x0101010101010101ull;
	const uint64_t high = 0x8080808080808080ull;

	while (end - i >= 8) {
		uint64_t x, y;
		memcpy(&x, p + i, 8);
		y = x ^ (ones * 0x7f);
		if ((((x - ones * 0x20) & ~x) | ((y - ones) & ~y)) & high)
			break;
		i += 8;
	}
	return i;
}

enum field_rc {
	FIELD_MORE = 0,
	FIELD_LINE = 1,
	FIELD_END = 2,
	FIELD_BAD = -1,
};

struct field {
	const unsigned char *name, *value;
	size_t name_len, value_len;
	bool underscore; /* the name holds a '_' */
	bool trail_tab;  /* HTAB among the trailing OWS trimmed off */
};

/*
 * Read one field line or the empty line that ends a head, starting at
 * p[*pos], never reading p[end] or beyond. On FIELD_LINE and FIELD_END *pos
 * moves past the CRLF.
 */
static inline __attribute__((always_inline)) enum field_rc
read_field(const unsigned char *p, size_t *pos, size_t end, struct field *f,
           const char **reason)
{
	size_t i = *pos, nstart, vstart, vend;
	bool underscore = false;

	if (i == end)
		return FIELD_MORE;
	if (p[i] == '\r') {
		if (i + 1 == end)
			return FIELD_MORE;
		if (p[i + 1] != '\n') {
			*reason = "bare CR in head";
			return FIELD_BAD;
		}
		*pos = i + 2;
		return FIELD_END;
	}
	if (p[i] == ' ' || p[i] == '\t') {
		*reason = "obsolete line folding";
		return FIELD_BAD;
	}
	nstart = i;
	while (i < end && (http1_class[p[i]] & HTTP1_TCHAR)) {
		underscore |= p[i] == '_';
		i++;
	}
	if (i == end)
		return FIELD_MORE;
	if (p[i] != ':') {
		if (p[i] == ' ' || p[i] == '\t')
			*reason = "whitespace before colon";
		else if (p[i] == '\n')
			*reason = "bare LF in head";
		else if (i == nstart)
			*reason = "empty or invalid field name";
		else
			*reason = "invalid field name";
		return FIELD_BAD;
	}
	if (i == nstart) {
		*reason = "empty field name";
		return FIELD_BAD;
	}
	f->name = p + nstart;
	f->name_len = i - nstart;
	f->underscore = underscore;
	i++;
	while (i < end && (p[i] == ' ' || p[i] == '\t'))
		i++;
	vstart = i;
	for (;;) {
		i = skip_plain8(p, i, end);
		while (i < end && (http1_class[p[i]] & HTTP1_FVAL) &&
		       p[i] != '\t' && p[i] != ' ')
			i++;
		if (i == end || !(http1_class[p[i]] & HTTP1_FVAL))
			break;
		i++; /* SP or HTAB: the next word may be clean again */
	}
	if (i == end)
		return FIELD_MORE;
	if (p[i] != '\r') {
		*reason = p[i] == '\n' ? "bare LF in head"
		                       : "control byte in field value";
		return FIELD_BAD;
	}
	if (i + 1 == end)
		return FIELD_MORE;
	if (p[i + 1] != '\n') {
		*reason = "bare CR in head";
		return FIELD_BAD;
	}
	vend = i;
	f->trail_tab = false;
	while (vend > vstart && (p[vend - 1] == ' ' || p[vend - 1] == '\t')) {
		f->trail_tab |= p[vend - 1] == '\t';
		vend--;
	}
	f->value = p + vstart;
	f->value_len = vend - vstart;
	*pos = i + 2;
	return FIELD_LINE;
}

/* The framing and connection facts gathered from the fields of a head. */
struct head_facts {
	unsigned n_cl, n_te, n_host;
	uint64_t content_length;
	int te; /* http1_value_te result of the single TE line */
	bool conn_close, conn_keep_alive;
	bool expect_continue, expect_other, upgrade;
	bool response; /* the head is a response's */
	const unsigned char *host;
	size_t host_len;
};

/*
 * Does an Upgrade value offer only h2c? curl --http2 and other clients
 * offer it on every plain request; RFC 9113 (3.1) deprecates it and a
 * server may ignore an Upgrade (RFC 9110 7.8), so such a request is served
 * as HTTP/1.1 (Upgrade and HTTP2-Settings are hop-by-hop: not forwarded).
 */
static bool
upgrade_only_h2c(const unsigned char *v, size_t len)
{
	size_t i = 0, tokens = 0;

	while (i < len) {
		size_t start;

		while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		start = i;
		while (i < len && v[i] != ',' && v[i] != ' ' && v[i] != '\t')
			i++;
		if (i == start)
			break;
		if (!IEQ(v + start, i - start, "h2c"))
			return false;
		tokens++;
	}
	return tokens > 0;
}

/*
 * Record what one field means for framing. Returns 0, or the status to
 * refuse with and *reason. Requests and responses share the checks; the
 * caller decides what the gathered facts mean.
 */
static int
note_field(const struct field *f, struct head_facts *hf, const char **reason)
{
	const unsigned char *n = f->name;
	size_t len = f->name_len;

	/* http-parser 2.9 reads "Transfer-Encoding<more>" as a second
	 * Transfer-Encoding that cancels chunked: a framing differential for
	 * any peer built on it */
	if (len > 17 && FOLD_EQ(n, 17, "transfer-encoding")) {
		*reason = "ambiguous field name";
		return 400;
	}
	if (f->underscore) {
		if (FOLD_EQ(n, len, "content-length") ||
		    FOLD_EQ(n, len, "transfer-encoding") ||
		    FOLD_EQ(n, len, "host")) {
			*reason = "ambiguous field name";
			return 400;
		}
		return 0;
	}
	switch (len) {
	case 4:
		if (IEQ(n, len, "host")) {
			if (++hf->n_host > 1) {
				*reason = "duplicate Host";
				return 400;
			}
			if (!http1_value_host(f->value, f->value_len)) {
				*reason = "invalid Host";
				return 400;
			}
			hf->host = f->value;
			hf->host_len = f->value_len;
		}
		break;
	case 6:
		if (IEQ(n, len, "expect")) {
			if (IEQ(f->value, f->value_len, "100-continue"))
				hf->expect_continue = true;
			else
				hf->expect_other = true;
		}
		break;
	case 7:
		if (IEQ(n, len, "upgrade") &&
		    !upgrade_only_h2c(f->value, f->value_len))
			hf->upgrade = true;
		break;
	case 10:
		if (IEQ(n, len, "connection") &&
		    http1_value_connection(f->value, f->value_len,
		                           &hf->conn_close,
		                           &hf->conn_keep_alive) < 0) {
			*reason = "invalid Connection";
			return 400;
		}
		break;
	case 14:
		if (IEQ(n, len, "content-length")) {
			/* a request's is read as OWS (RFC 9110 5.5); an
			 * upstream needs no HTAB there, and http-parser 2.9
			 * refuses one: the relayed response heads stay those
			 * it reads alike (the fuzz oracle) */
			if (f->trail_tab && hf->response)
				goto trail_tab;
			if (++hf->n_cl > 1) {
				*reason = "several Content-Length";
				return 400;
			}
			if (http1_value_length(f->value, f->value_len,
			                       &hf->content_length) < 0) {
				*reason = "invalid Content-Length";
				return 400;
			}
		}
		break;
	case 17:
		if (IEQ(n, len, "transfer-encoding")) {
			if (f->trail_tab)
				goto trail_tab;
			if (++hf->n_te > 1) {
				*reason = "several Transfer-Encoding";
				return 400;
			}
			hf->te = http1_value_te(f->value, f->value_len);
			if (hf->te == 501) {
				*reason = "unsupported transfer coding";
				return 501;
			}
			if (hf->te) {
				*reason = "invalid Transfer-Encoding";
				return 400;
			}
		}
		break;
	default:
		break;
	}
	return 0;
trail_tab:
	/* http-parser 2.9 reads "chunked<HTAB>" as not chunked and refuses
	 * "5<HTAB>" */
	*reason = "HTAB after a framing field value";
	return 400;
}

/*
 * The request fields consentgate decides by (Content-Type, Content-Encoding)
 * or writes as proof (Consent-*, Content-Usage) must reach the upstream
 * exactly once, as consentgate meant them. WSGI and CGI servers keep the
 * last of repeated fields and read '_' as '-' (Content_Type becomes
 * CONTENT_TYPE), so a second one, or a '_' twin, could make the upstream
 * read the body, or the proof, differently. Both are refused. (Client
 * Consent-* fields themselves are removed when the request is rebuilt.)
 */
static int
note_request_field(const struct field *f, unsigned *n_ctype, unsigned *n_cenc,
                   const char **reason)
{
	const unsigned char *n = f->name;
	size_t len = f->name_len;

	if (len < 8 || (http1_class_lower[n[0]] != 'c'))
		return 0;
	if (f->underscore) {
		if (FOLD_EQ(n, len, "content-type") ||
		    FOLD_EQ(n, len, "content-encoding") ||
		    FOLD_EQ(n, len, "content-usage") ||
		    FOLD_EQ(n, 8, "consent-")) {
			*reason = "ambiguous field name (a '_' twin of a field "
			          "consentgate decides by or writes)";
			return 400;
		}
		return 0;
	}
	if (IEQ(n, len, "content-type") && ++*n_ctype > 1) {
		*reason = "several Content-Type";
		return 400;
	}
	if (IEQ(n, len, "content-encoding") && ++*n_cenc > 1) {
		*reason = "several Content-Encoding";
		return 400;
	}
	return 0;
}

bool
http1_head_too_long(size_t buffered, const struct http1_limits *lim)
{
	size_t max = lim ? lim->max_head_bytes : CG_DEFAULT_MAX_HEADER_BYTES;

	return buffered >= max;
}

int
http1_parse_request(const char *buf, size_t len, const struct http1_limits *lim,
                    struct http1_request *req, int *status, const char **reason)
{
	const unsigned char *p = (const unsigned char *)buf;
	size_t max_bytes =
	    lim ? lim->max_head_bytes : CG_DEFAULT_MAX_HEADER_BYTES;
	unsigned max_hdrs =
	    lim ? lim->max_headers : CG_DEFAULT_MAX_HEADER_COUNT;
	size_t end = len < max_bytes ? len : max_bytes;
	size_t i = 0, s;
	struct head_facts hf;
	unsigned n_ctype = 0, n_cenc = 0;
	struct field f;
	static const char vers[] = "HTTP/1.";
	int rc = 0, st = 400;
	unsigned k;

	if (max_hdrs > CG_MAX_HEADERS)
		max_hdrs = CG_MAX_HEADERS;
	memset(&hf, 0, sizeof(hf));
	req->nheaders = 0;

	/* RFC 9112 2.2: empty lines before the request line are skipped */
	while (i < end && p[i] == '\r') {
		if (i + 1 == end)
			goto more;
		if (p[i + 1] != '\n') {
			*reason = "bare CR in head";
			goto bad;
		}
		i += 2;
	}

	s = i;
	while (i < end && (http1_class[p[i]] & HTTP1_TCHAR))
		i++;
	if (i == end)
		goto more;
	if (i == s || p[i] != ' ') {
		*reason = p[i] == '\n' ? "bare LF in head" : "invalid method";
		goto bad;
	}
	req->method = (struct cg_slice){buf + s, i - s};
	s = ++i;
	while (i < end && (http1_class[p[i]] & HTTP1_TARGET))
		i++;
	if (i == end)
		goto more;
	if (i == s || p[i] != ' ') {
		*reason = "invalid request-target";
		goto bad;
	}
	req->target = (struct cg_slice){buf + s, i - s};
	i++;
	for (k = 0; k < sizeof(vers) - 1; k++, i++) {
		if (i == end)
			goto more;
		if (p[i] != (unsigned char)vers[k]) {
			*reason = "invalid HTTP version";
			goto bad;
		}
	}
	if (i + 1 >= end)
		goto more;
	if (p[i] >= '2' && p[i] <= '9' && p[i + 1] == '\r') {
		st = 505;
		*reason = "HTTP version not supported";
		goto bad;
	}
	if ((p[i] != '0' && p[i] != '1') || p[i + 1] != '\r') {
		*reason = "invalid HTTP version";
		goto bad;
	}
	req->minor = p[i] - '0';
	i += 2;
	if (i == end)
		goto more;
	if (p[i] != '\n') {
		*reason = "bare CR in head";
		goto bad;
	}
	i++;
	if (req->method.len == 7 &&
	    memcmp(req->method.ptr, "CONNECT", 7) == 0) {
		st = 501;
		*reason = "CONNECT not supported";
		goto bad;
	}
	if (http1_target_parse(req, reason) != 0)
		goto bad;

	for (;;) {
		int r = read_field(p, &i, end, &f, reason);
		if (r == FIELD_MORE)
			goto more;
		if (r == FIELD_BAD)
			goto bad;
		if (r == FIELD_END)
			break;
		if (req->nheaders >= max_hdrs) {
			st = 431;
			*reason = "too many header fields";
			goto bad;
		}
		req->headers[req->nheaders].name =
		    (struct cg_slice){(const char *)f.name, f.name_len};
		req->headers[req->nheaders].value =
		    (struct cg_slice){(const char *)f.value, f.value_len};
		req->nheaders++;
		if ((st = note_field(&f, &hf, reason)) != 0 ||
		    (st = note_request_field(&f, &n_ctype, &n_cenc, reason)) !=
		        0)
			goto bad;
		st = 400;
		if (hf.n_te && req->minor == 0) {
			*reason = "Transfer-Encoding in HTTP/1.0";
			goto bad;
		}
	}

	if (hf.upgrade) {
		st = 501;
		*reason = "Upgrade not supported";
		goto bad;
	}
	if (hf.n_cl && hf.n_te) {
		*reason = "Content-Length with Transfer-Encoding";
		goto bad;
	}
	if (req->minor == 1 && hf.n_host == 0) {
		*reason = "missing Host";
		goto bad;
	}
	if (req->authority.ptr != NULL && hf.n_host &&
	    !http1_target_host_is(req, hf.host, hf.host_len)) {
		*reason =
		    "Host differs from the authority of the request-target";
		goto bad;
	}
	if (hf.expect_other) {
		st = 417;
		*reason = "unsupported expectation";
		goto bad;
	}
	req->host = (struct cg_slice){(const char *)hf.host, hf.host_len};
	if (hf.n_te) {
		req->framing = HTTP1_FRAMING_CHUNKED;
		req->content_length = 0;
	} else if (hf.n_cl) {
		req->framing = HTTP1_FRAMING_LENGTH;
		req->content_length = hf.content_length;
	} else {
		req->framing = HTTP1_FRAMING_NONE;
		req->content_length = 0;
	}
	req->keep_alive = req->minor == 1
	                      ? !hf.conn_close
	                      : hf.conn_keep_alive && !hf.conn_close;
	/* RFC 9110 10.1.1: HTTP/1.0 clients cannot wait for a 100 */
	req->expect_continue = hf.expect_continue && req->minor == 1;
	req->head_len = i;
	rc = 1;
	goto done;

more:
	if (len >= max_bytes) {
		st = 431;
		*reason = "request head too long";
		goto bad;
	}
	rc = 0;
	goto done;
bad:
	*status = st;
	rc = -1;
done:
	return rc;
}

int
http1_parse_response(const char *buf, size_t len, bool head_request,
                     struct http1_response *res, const char **reason)
{
	const unsigned char *p = (const unsigned char *)buf;
	size_t end = len < CG_DEFAULT_MAX_RESPONSE_HEADER_BYTES
	                 ? len
	                 : CG_DEFAULT_MAX_RESPONSE_HEADER_BYTES;
	size_t i = 0, s;
	struct head_facts hf;
	struct field f;
	static const char vers[] = "HTTP/1.";
	int rc = 0, code;
	unsigned k;

	memset(&hf, 0, sizeof(hf));
	hf.response = true;
	res->nheaders = 0;

	for (k = 0; k < sizeof(vers) - 1; k++, i++) {
		if (i == end)
			goto more;
		if (p[i] != (unsigned char)vers[k]) {
			*reason = "invalid status line";
			goto bad;
		}
	}
	if (i + 1 >= end)
		goto more;
	if ((p[i] != '0' && p[i] != '1') || p[i + 1] != ' ') {
		*reason = "invalid HTTP version";
		goto bad;
	}
	res->minor = p[i] - '0';
	i += 2;
	code = 0;
	for (k = 0; k < 3; k++, i++) {
		if (i == end)
			goto more;
		if (p[i] < '0' || p[i] > '9') {
			*reason = "invalid status code";
			goto bad;
		}
		code = code * 10 + (p[i] - '0');
	}
	if (code < 100 || code > 599 || code == 101) {
		*reason = "unexpected status code";
		goto bad;
	}
	res->status = code;
	if (i == end)
		goto more;
	/* lenient where harmless: the SP before an empty reason may lack */
	if (p[i] == ' ')
		i++;
	else if (p[i] != '\r') {
		*reason = "invalid status line";
		goto bad;
	}
	s = i;
	while (i < end && (http1_class[p[i]] & HTTP1_FVAL))
		i++;
	if (i + 1 >= end)
		goto more;
	if (p[i] != '\r' || p[i + 1] != '\n') {
		*reason = "invalid reason phrase";
		goto bad;
	}
	res->reason = (struct cg_slice){buf + s, i - s};
	i += 2;

	for (;;) {
		int r = read_field(p, &i, end, &f, reason);
		if (r == FIELD_MORE)
			goto more;
		if (r == FIELD_BAD)
			goto bad;
		if (r == FIELD_END)
			break;
		if (res->nheaders >= CG_MAX_HEADERS) {
			*reason = "too many header fields";
			goto bad;
		}
		res->headers[res->nheaders].name =
		    (struct cg_slice){(const char *)f.name, f.name_len};
		res->headers[res->nheaders].value =
		    (struct cg_slice){(const char *)f.value, f.value_len};
		res->nheaders++;
		/* Host means nothing in a response: only its syntax is odd */
		if (!f.underscore && IEQ(f.name, f.name_len, "host"))
			continue;
		if (note_field(&f, &hf, reason) != 0)
			goto bad;
	}
	if (hf.n_te && (hf.n_cl || res->minor == 0)) {
		*reason = "ambiguous response framing";
		goto bad;
	}

	res->content_length = 0;
	if (head_request || code < 200 || code == 204 || code == 304)
		res->framing = HTTP1_FRAMING_NONE;
	else if (hf.n_te)
		res->framing = HTTP1_FRAMING_CHUNKED;
	else if (hf.n_cl) {
		res->framing = HTTP1_FRAMING_LENGTH;
		res->content_length = hf.content_length;
	} else
		res->framing = HTTP1_FRAMING_CLOSE;
	res->keep_alive =
	    res->framing != HTTP1_FRAMING_CLOSE &&
	    (res->minor == 1 ? !hf.conn_close
	                     : hf.conn_keep_alive && !hf.conn_close);
	res->head_len = i;
	rc = 1;
	goto done;

more:
	if (len >= CG_DEFAULT_MAX_RESPONSE_HEADER_BYTES) {
		*reason = "response head too long";
		goto bad;
	}
	rc = 0;
	goto done;
bad:
	rc = -1;
done:
	return rc;
}

/* ---- helpers ---- */

bool
http1_is_hop_by_hop(struct cg_slice name)
{
	const unsigned char *n = (const unsigned char *)name.ptr;

	switch (name.len) {
	case 2:
		return IEQ(n, 2, "te");
	case 7:
		return IEQ(n, 7, "trailer") || IEQ(n, 7, "upgrade");
	case 10:
		return IEQ(n, 10, "connection") || IEQ(n, 10, "keep-alive");
	case 17:
		return IEQ(n, 17, "transfer-encoding");
	default:
		break;
	}
	return name.len >= 6 && IEQ(n, 6, "proxy-");
}

bool
http1_connection_names(const struct http1_header *h, unsigned n,
                       struct cg_slice name)
{
	const unsigned char *want = (const unsigned char *)name.ptr;
	unsigned k;

	for (k = 0; k < n; k++) {
		const unsigned char *v;
		size_t i = 0, s, len;

		if (!IEQ((const unsigned char *)h[k].name.ptr, h[k].name.len,
		         "connection"))
			continue;
		v = (const unsigned char *)h[k].value.ptr;
		len = h[k].value.len;
		while (i < len) {
			size_t j;
			while (i < len &&
			       (v[i] == ',' || v[i] == ' ' || v[i] == '\t'))
				i++;
			s = i;
			while (i < len && v[i] != ',' && v[i] != ' ' &&
			       v[i] != '\t')
				i++;
			if (i - s != name.len || i == s)
				continue;
			for (j = 0; j < name.len; j++)
				if (http1_class_lower[v[s + j]] !=
				    http1_class_lower[want[j]])
					break;
			if (j == name.len)
				return true;
		}
	}
	return false;
}

const struct http1_header *
http1_find(const struct http1_header *h, unsigned n, const char *name)
{
	size_t len = strlen(name);
	unsigned k;

	for (k = 0; k < n; k++) {
		const unsigned char *a = (const unsigned char *)h[k].name.ptr;
		size_t j;

		if (h[k].name.len != len)
			continue;
		for (j = 0; j < len; j++)
			if (http1_class_lower[a[j]] !=
			    http1_class_lower[(unsigned char)name[j]])
				break;
		if (j == len)
			return &h[k];
	}
	return NULL;
}
