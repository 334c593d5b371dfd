/*
 * csv.c: an RFC 4180 tokenizer over a buffer in memory (csv_internal.h):
 * one record per call, fields as slices, no allocation.
 */
#include <string.h>

#include "csv_internal.h"

void
csv_init(struct csv *c, const char *buf, size_t len)
{
	c->buf = buf;
	c->len = len;
	c->pos = len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0 ? 3 : 0;
	c->line = 1;
}

/* Skip to just after the next LF (error recovery). */
static void
skip_line(struct csv *c)
{
	const char *nl = memchr(c->buf + c->pos, '\n', c->len - c->pos);
	c->pos = nl ? (size_t)(nl - c->buf) + 1 : c->len;
	if (nl)
		c->line++;
}

int
csv_record(struct csv *c, struct csv_field *f, unsigned max, unsigned *n,
           const char **why)
{
	*n = 0;
	if (c->pos >= c->len)
		return 0;
	for (;;) {
		const char *p = c->buf + c->pos, *end = c->buf + c->len;
		struct csv_field cur = {p, 0, false, false};

		if (p < end && *p == '"') {
			const char *q = ++p;
			for (;;) {
				q = memchr(q, '"', (size_t)(end - q));
				if (q == NULL) {
					*why = "unterminated quoted field";
					c->pos = c->len;
					return -1;
				}
				if (q + 1 < end && q[1] == '"') {
					cur.escaped = true;
					q += 2;
					continue;
				}
				break;
			}
			for (const char *r = p; r < q; r++)
				c->line += *r == '\n';
			cur.ptr = p;
			cur.len = (size_t)(q - p);
			cur.quoted = true;
			p = q + 1;
			if (p < end && *p != ',' && *p != '\n' && *p != '\r') {
				*why = "text after a closing quote";
				c->pos = (size_t)(p - c->buf);
				skip_line(c);
				return -1;
			}
		} else {
			while (p < end && *p != ',' && *p != '\n' &&
			       *p != '\r') {
				if (*p == '"') {
					*why = "quote inside an unquoted field";
					c->pos = (size_t)(p - c->buf);
					skip_line(c);
					return -1;
				}
				p++;
			}
			cur.len = (size_t)(p - cur.ptr);
		}
		if (*n < max)
			f[*n] = cur;
		if (*n < UINT32_MAX)
			(*n)++; /* a 4 GB line of commas must not wrap */
		if (p < end && *p == '\r') {
			if (p + 1 >= end || p[1] != '\n') {
				*why = "bare CR (line ends are LF or CRLF)";
				c->pos = (size_t)(p - c->buf);
				skip_line(c);
				return -1;
			}
			p++;
		}
		if (p >= end) {
			c->pos = c->len;
			return 1;
		}
		if (*p == '\n') {
			c->pos = (size_t)(p - c->buf) + 1;
			c->line++;
			return 1;
		}
		c->pos = (size_t)(p - c->buf) + 1; /* past the comma */
	}
}

bool
csv_blank(const struct csv_field *f, unsigned n)
{
	return n == 1 && f[0].len == 0 && !f[0].quoted;
}

bool
csv_field_is(const struct csv_field *f, const char *s)
{
	return !f->escaped && f->len == strlen(s) &&
	       memcmp(f->ptr, s, f->len) == 0;
}

size_t
csv_field_unescape(const struct csv_field *f, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < f->len; i++) {
		out[o++] = f->ptr[i];
		if (f->escaped && f->ptr[i] == '"')
			i++; /* the second quote of a pair */
	}
	return o;
}
