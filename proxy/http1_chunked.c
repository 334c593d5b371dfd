/*
 * http1_chunked.c: the strict incremental decoder of a chunked body (RFC
 * 9112 section 7.1), declared in http1_internal.h. It sees the body one
 * buffer at a time as it arrives, so it is a byte-level state machine
 * that keeps no input: chunk data is handed back as slices of the caller's
 * buffer, and sizes, extensions and trailers are checked as they pass.
 * Strict where the RFC leaves room: no bare LF, sizes without leading '+',
 * '0x' or overflow, whitespace in chunk extensions only where RFC 9112
 * 7.1.1 has BWS (before ';' and '=', after them), never before the CRLF.
 * RFC 9110 5.6.3 says a recipient MUST remove BWS; nginx and HAProxy do,
 * and no peer reads another chunk size from "5 ;a=b".
 */
#include <string.h>

#include "http1_internal.h"

enum {
	CK_SIZE_START,   /* first hex digit of a chunk size */
	CK_SIZE,         /* more hex digits, ';' or CR */
	CK_EXT_NAME0,    /* first byte of an extension name */
	CK_EXT_NAME,     /* name bytes, '=', ';' or CR */
	CK_EXT_VAL0,     /* first byte of a value: token or '"' */
	CK_EXT_TOKEN,    /* token value bytes, ';' or CR */
	CK_EXT_QUOTED,   /* inside a quoted string */
	CK_EXT_QESC,     /* after a backslash in a quoted string */
	CK_EXT_QEND,     /* after the closing quote: ';' or CR */
	CK_EXT_SEMI,     /* BWS after a size or a value: more, or ';' */
	CK_EXT_NAME_BWS, /* BWS after a name: more, '=' or ';' */
	CK_SIZE_LF,      /* LF ending the size line */
	CK_DATA,         /* chunk data */
	CK_DATA_CR,      /* CR after chunk data */
	CK_DATA_LF,      /* LF after chunk data */
	CK_TR_START,     /* start of a trailer line or the final CRLF */
	CK_TR_NAME,      /* trailer field name */
	CK_TR_VALUE,     /* trailer field value */
	CK_TR_LF,        /* LF after a trailer field */
	CK_END_LF,       /* LF of the final CRLF */
	CK_DONE,
	CK_ERROR,
};

void
http1_chunked_init(struct http1_chunked *c)
{
	memset(c, 0, sizeof(*c));
	c->state = CK_SIZE_START;
}

static int
hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20; /* ASCII lower case; maps no other byte into a-f */
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

long
http1_chunked_feed(struct http1_chunked *c, const char *in, size_t len,
                   struct cg_slice *data, const char **reason)
{
	const unsigned char *p = (const unsigned char *)in;
	size_t i = 0;
	const char *why = NULL;
	long rc;

	*data = (struct cg_slice){in, 0};
	if (c->state == CK_ERROR) {
		why = "chunked body already failed";
		goto bad;
	}
	while (i < len && c->state != CK_DONE) {
		unsigned char b = p[i];
		int h;
		bool bws;

		switch (c->state) {
		case CK_SIZE_START:
			if ((h = hexval(b)) < 0) {
				why = "invalid chunk size";
				goto bad;
			}
			c->remaining = (uint64_t)h;
			c->count = 1;
			c->state = CK_SIZE;
			break;
		case CK_SIZE:
			if ((h = hexval(b)) >= 0) {
				if (++c->count > CG_MAX_CHUNK_SIZE_DIGITS) {
					why = "chunk size too long";
					goto bad;
				}
				c->remaining =
				    (c->remaining << 4) | (uint64_t)h;
			} else if (b == ';' || b == ' ' || b == '\t') {
				c->count = 1;
				c->state =
				    b == ';' ? CK_EXT_NAME0 : CK_EXT_SEMI;
			} else if (b == '\r') {
				c->state = CK_SIZE_LF;
			} else {
				why = "invalid chunk size";
				goto bad;
			}
			break;
		case CK_EXT_NAME0:
		case CK_EXT_NAME:
		case CK_EXT_VAL0:
		case CK_EXT_TOKEN:
		case CK_EXT_QUOTED:
		case CK_EXT_QESC:
		case CK_EXT_QEND:
		case CK_EXT_SEMI:
		case CK_EXT_NAME_BWS:
			if (b == '\r' && c->state != CK_EXT_QUOTED &&
			    c->state != CK_EXT_QESC) {
				/* no name, no value, or BWS before CRLF */
				if (c->state == CK_EXT_NAME0 ||
				    c->state == CK_EXT_VAL0 ||
				    c->state == CK_EXT_SEMI ||
				    c->state == CK_EXT_NAME_BWS) {
					why = "invalid chunk extension";
					goto bad;
				}
				c->state = CK_SIZE_LF;
				break;
			}
			if (++c->count > CG_MAX_CHUNK_EXT) {
				why = "chunk extensions too long";
				goto bad;
			}
			bws = b == ' ' || b == '\t';
			switch (c->state) {
			case CK_EXT_NAME0:
				if (bws)
					break;
				if (!(http1_class[b] & HTTP1_TCHAR))
					goto bad_ext;
				c->state = CK_EXT_NAME;
				break;
			case CK_EXT_NAME:
			case CK_EXT_NAME_BWS:
				if (b == '=')
					c->state = CK_EXT_VAL0;
				else if (b == ';')
					c->state = CK_EXT_NAME0;
				else if (bws)
					c->state = CK_EXT_NAME_BWS;
				else if (c->state == CK_EXT_NAME_BWS ||
				         !(http1_class[b] & HTTP1_TCHAR))
					goto bad_ext;
				break;
			case CK_EXT_VAL0:
				if (bws)
					break;
				if (b == '"')
					c->state = CK_EXT_QUOTED;
				else if (http1_class[b] & HTTP1_TCHAR)
					c->state = CK_EXT_TOKEN;
				else
					goto bad_ext;
				break;
			case CK_EXT_TOKEN:
				if (b == ';')
					c->state = CK_EXT_NAME0;
				else if (bws)
					c->state = CK_EXT_SEMI;
				else if (!(http1_class[b] & HTTP1_TCHAR))
					goto bad_ext;
				break;
			case CK_EXT_QUOTED:
				/* qdtext or quoted-pair; no control bytes */
				if (!(http1_class[b] & HTTP1_FVAL))
					goto bad_ext;
				if (b == '"')
					c->state = CK_EXT_QEND;
				else if (b == '\\')
					c->state = CK_EXT_QESC;
				break;
			case CK_EXT_QESC:
				if (!(http1_class[b] & HTTP1_FVAL))
					goto bad_ext;
				c->state = CK_EXT_QUOTED;
				break;
			case CK_EXT_QEND:
			case CK_EXT_SEMI:
				if (bws)
					c->state = CK_EXT_SEMI;
				else if (b == ';')
					c->state = CK_EXT_NAME0;
				else
					goto bad_ext;
				break;
			}
			break;
		case CK_SIZE_LF:
			if (b != '\n') {
				why = "bare CR in chunk size line";
				goto bad;
			}
			c->count = 0;
			c->state = c->remaining ? CK_DATA : CK_TR_START;
			break;
		case CK_DATA: {
			size_t n = len - i;
			if ((uint64_t)n > c->remaining)
				n = (size_t)c->remaining;
			c->remaining -= n;
			c->total += n;
			if (c->remaining == 0)
				c->state = CK_DATA_CR;
			*data = (struct cg_slice){in + i, n};
			i += n;
			rc = (long)i;
			goto done;
		}
		case CK_DATA_CR:
			if (b != '\r') {
				why = "chunk data not followed by CRLF";
				goto bad;
			}
			c->state = CK_DATA_LF;
			break;
		case CK_DATA_LF:
			if (b != '\n') {
				why = "chunk data not followed by CRLF";
				goto bad;
			}
			c->state = CK_SIZE_START;
			break;
		case CK_TR_START:
		case CK_TR_NAME:
		case CK_TR_VALUE:
		case CK_TR_LF:
		case CK_END_LF:
			/* count is the size of the trailer section so far */
			if (++c->count > CG_MAX_TRAILER_BYTES) {
				why = "trailer section too long";
				goto bad;
			}
			switch (c->state) {
			case CK_TR_START:
				if (b == '\r')
					c->state = CK_END_LF;
				else if (http1_class[b] & HTTP1_TCHAR)
					c->state = CK_TR_NAME;
				else
					goto bad_trailer;
				break;
			case CK_TR_NAME:
				if (b == ':')
					c->state = CK_TR_VALUE;
				else if (!(http1_class[b] & HTTP1_TCHAR))
					goto bad_trailer;
				break;
			case CK_TR_VALUE:
				if (b == '\r')
					c->state = CK_TR_LF;
				else if (!(http1_class[b] & HTTP1_FVAL))
					goto bad_trailer;
				break;
			case CK_TR_LF:
				if (b != '\n')
					goto bad_trailer;
				c->state = CK_TR_START;
				break;
			case CK_END_LF:
				if (b != '\n')
					goto bad_trailer;
				c->state = CK_DONE;
				c->done = true;
				break;
			}
			break;
		default:
			why = "chunked decoder in a bad state";
			goto bad;
		}
		i++;
	}
	rc = (long)i;
	goto done;

bad_ext:
	why = "invalid chunk extension";
	goto bad;
bad_trailer:
	why = "invalid trailer field";
bad:
	c->state = CK_ERROR;
	*reason = why;
	rc = -1;
done:
	return rc;
}
