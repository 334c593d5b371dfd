/*
 * http1_internal.h: strict HTTP/1.1 message framing (RFC 9112).
 *
 * The only module that talks to http-parser. Debian's libhttp-parser is
 * built lenient, so every byte of a head is checked here before anything
 * is believed: line ends are CRLF only, field names are tokens with no
 * whitespace before the colon, no obs-fold, no control bytes, exactly one
 * Host, one framing. The rest of the proxy sees struct http1_request and
 * never raw parser state. Pure functions over contiguous buffers: no
 * libevent, no allocation.
 */
#ifndef CONSENTGATE_HTTP1_INTERNAL_H
#define CONSENTGATE_HTTP1_INTERNAL_H

#include "consentgate/common.h"

struct http1_header {
	struct cg_slice name;  /* as sent; compare case-insensitively */
	struct cg_slice value; /* leading/trailing OWS removed */
};

enum http1_framing {
	HTTP1_FRAMING_NONE,    /* no body */
	HTTP1_FRAMING_LENGTH,  /* Content-Length */
	HTTP1_FRAMING_CHUNKED, /* Transfer-Encoding: chunked */
	HTTP1_FRAMING_CLOSE,   /* responses only: body until the peer closes */
};

struct http1_limits {
	size_t max_head_bytes; /* 431 above (request) */
	unsigned max_headers;  /* 431 above (request) */
};

struct http1_request {
	struct cg_slice method;
	struct cg_slice target;      /* origin form: as sent, or the path and
	                                query of an absolute-form target */
	struct cg_slice path, query; /* split from target at the first '?' */
	struct cg_slice authority;   /* of an absolute-form target (equal to
	                                Host when both are sent); ptr NULL for
	                                origin-form */
	bool https;                  /* absolute-form with the https scheme */
	int minor;                   /* HTTP/1.<minor>, 0 or 1 */
	unsigned nheaders;
	struct http1_header headers[CG_MAX_HEADERS];
	enum http1_framing framing;
	uint64_t content_length; /* HTTP1_FRAMING_LENGTH */
	struct cg_slice host;
	bool keep_alive;      /* after Connection and version */
	bool expect_continue; /* Expect: 100-continue */
	size_t head_len;      /* bytes of the head, final CRLF included */
};

/*
 * Parse a request head at buf[0,len).
 * Returns 1 when a complete, valid head was parsed (req filled, slices into
 * buf); 0 when more bytes are needed (the caller enforces the size limit
 * with http1_head_too_long); -1 when the request must be refused: *status is
 * 400 (also an absolute-form target whose authority is not the Host sent),
 * 417 (Expect other than 100-continue), 431, 501 (CONNECT, Upgrade, a
 * transfer coding other than chunked) or 505 (HTTP/1.2 to 1.9) and *reason
 * a static message (safe to send). Once lim->max_head_bytes are buffered
 * without the end of the head, the parse itself returns -1 with 431.
 */
int http1_parse_request(const char *buf, size_t len,
                        const struct http1_limits *lim,
                        struct http1_request *req, int *status,
                        const char **reason);

struct http1_response {
	int status;
	int minor;
	struct cg_slice reason;
	unsigned nheaders;
	struct http1_header headers[CG_MAX_HEADERS];
	enum http1_framing framing;
	uint64_t content_length;
	bool keep_alive; /* the upstream connection may be reused */
	size_t head_len;
};

/*
 * True when buffered bytes without a complete head (parse returned 0) already
 * reach lim->max_head_bytes: refuse with 431. lim NULL means the defaults.
 */
bool http1_head_too_long(size_t buffered, const struct http1_limits *lim);

/*
 * Parse a response head; head_request tells that the request was HEAD
 * (no body whatever the headers say); 1xx, 204 and 304 have no body.
 * Same returns as http1_parse_request; -1 means a broken upstream (502):
 * besides bad syntax, a 101, any Transfer-Encoding but exactly "chunked"
 * (never read as close-delimited), Transfer-Encoding in HTTP/1.0 or with
 * Content-Length, and a head over CG_DEFAULT_MAX_RESPONSE_HEADER_BYTES or
 * CG_MAX_HEADERS fields. A 1xx parses with framing NONE: skip head_len
 * bytes and parse the next head.
 */
int http1_parse_response(const char *buf, size_t len, bool head_request,
                         struct http1_response *res, const char **reason);

/*
 * ---- http1_chunked.c ----
 * Incremental strict chunked decoder (RFC 9112 section 7.1). Chunk sizes are
 * plain hex of at most CG_MAX_CHUNK_SIZE_DIGITS digits (no overflow);
 * extensions bounded by CG_MAX_CHUNK_EXT and free of control bytes; chunk
 * data must be followed by CRLF; trailers (at most CG_MAX_TRAILER_BYTES)
 * are read, checked and dropped. Every refusal is a 400 for a request.
 */
struct http1_chunked {
	int state;
	uint64_t remaining; /* bytes left in the current chunk */
	size_t count;       /* bytes in the current size/ext/trailer line */
	uint64_t total;     /* payload bytes so far */
	bool done;          /* last-chunk and trailers consumed */
};

/* Start decoding a body into c (no allocation: nothing to free). */
void http1_chunked_init(struct http1_chunked *c);

/*
 * Feed in[0,len). Returns the number of bytes consumed (>= 0), or -1 with
 * *reason set. Payload found among the consumed bytes is returned in *data
 * (an empty slice when none): call again with the rest until everything is
 * consumed or c->done. Bytes after the end of the body are not consumed.
 */
long http1_chunked_feed(struct http1_chunked *c, const char *in, size_t len,
                        struct cg_slice *data, const char **reason);

/*
 * ---- http1_target.c ----
 * Read req->target, the request-target of a complete request line whose
 * bytes are all HTTP1_TARGET, in place: origin-form ("/p?q") as it is;
 * absolute-form ("http://host:port/p?q", "https://...", scheme in any case)
 * becomes its origin form, with req->authority set. Fills target, path,
 * query and authority. Returns 0, or -1 with *reason (a 400) for asterisk-
 * and authority-form, another scheme, userinfo, an empty or invalid host,
 * an empty path, a '\\' in the path or a '%' without two hex digits.
 */
int http1_target_parse(struct http1_request *req, const char **reason);
/* Host (n bytes, a valid Host value) names what the authority of req's
 * absolute-form target names (RFC 9112 3.2: the same text, letter case
 * aside; as HAProxy does, a default port or an empty one is left out). */
bool http1_target_host_is(const struct http1_request *req,
                          const unsigned char *host, size_t n);

/* ---- http1.c: helpers ---- */

/* Byte classes, one table for the head parsers and the chunked decoder. */
#define HTTP1_TCHAR 0x01  /* token character (RFC 9110 5.6.2) */
#define HTTP1_FVAL 0x02   /* field value byte: HTAB, SP, VCHAR, obs-text */
#define HTTP1_TARGET 0x04 /* any byte of a request-target: VCHAR but '#' */
#define HTTP1_HEX 0x08
#define HTTP1_HOST 0x10 /* uri-host [ ":" port ], IP literals included */
#define HTTP1_PATH 0x20 /* a byte of its path: HTTP1_TARGET but '\\' */
extern const unsigned char http1_class[256]; /* HTTP1_* bits of a byte */
/* ASCII letters in lower case, every other byte as it is. */
extern const unsigned char http1_class_lower[256];

/* p[0,n) equals the lower-case literal lit, ASCII case-blind. */
static inline bool
http1_ieq(const unsigned char *p, size_t n, const char *lit, size_t litlen)
{
	if (n != litlen)
		return false;
	for (size_t i = 0; i < n; i++)
		if (http1_class_lower[p[i]] != (unsigned char)lit[i])
			return false;
	return true;
}
#define HTTP1_IEQ(p, n, lit) http1_ieq((p), (n), (lit), sizeof(lit) - 1)

/* http1_value.c. Content-Length: 0 with *out, -1 when not 1*DIGIT or it
 * overflows. */
int http1_value_length(const unsigned char *v, size_t n, uint64_t *out);
/* Transfer-Encoding: 0 for exactly one "chunked", 501 for another coding,
 * 400 for a malformed list or a repeated chunked. */
int http1_value_te(const unsigned char *v, size_t n);
/* Connection: sets *close / *keep_alive for those tokens; 0, or -1 when an
 * element is not a token. */
int http1_value_connection(const unsigned char *v, size_t n, bool *close,
                           bool *keep_alive);
/* Host = uri-host [ ":" port ], no comma (a list to some back ends). */
bool http1_value_host(const unsigned char *v, size_t n);

/* (The case-insensitive compare of a slice with a C string is
 * cg_slice_ieq, common.h.) */
/*
 * Hop-by-hop per RFC 9110 7.6.1 (plus Proxy-*). Fields named in Connection
 * are hop-by-hop too: ask http1_connection_names with the request's fields.
 */
bool http1_is_hop_by_hop(struct cg_slice name);
/* True when a Connection field among h[0,n) lists this name (any case). */
bool http1_connection_names(const struct http1_header *h, unsigned n,
                            struct cg_slice name);
/* The first header with this name, or NULL. */
const struct http1_header *http1_find(const struct http1_header *h, unsigned n,
                                      const char *name);

#endif
