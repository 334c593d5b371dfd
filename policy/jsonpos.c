/*
 * jsonpos.c: the line and column of every member and element of a JSON
 * text, by path (include/consentgate/jsonpos.h). A lenient pass: it runs
 * after jansson has accepted the text, so it only needs to find its way,
 * and on anything else it stops early. Recursion is bounded by
 * CG_MAX_JSONPOS_DEPTH; deeper values are skipped without recursion.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consentgate/jsonpos.h"

/* Paths are cut at CG_MAX_JSON_PATH on purpose. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif

struct pos_entry {
	char *path;
	int kline, kcol; /* the member's key; 0 for array elements */
	int vline, vcol; /* the value */
};

struct jsonpos {
	struct pos_entry *v;
	size_t n, cap;
};

struct pos_scan {
	const char *buf;
	size_t len, i;
	int line, col;
	struct jsonpos *map;
};

static void
pos_adv(struct pos_scan *ps)
{
	unsigned char c = (unsigned char)ps->buf[ps->i++];

	if (c == '\n') {
		ps->line++;
		ps->col = 1;
	} else if ((c & 0xC0) != 0x80) {
		/* columns count characters, as jansson's do */
		ps->col++;
	}
}

static void
pos_ws(struct pos_scan *ps)
{
	while (ps->i < ps->len && strchr(" \t\r\n", ps->buf[ps->i]) != NULL &&
	       ps->buf[ps->i] != '\0')
		pos_adv(ps);
}

static void
pos_add(struct jsonpos *m, const char *path, int kl, int kc, int vl, int vc)
{
	struct pos_entry *nv;

	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 64;
		nv = realloc(m->v, cap * sizeof(*nv));
		if (nv == NULL)
			return; /* positions are a courtesy; messages still work
			         */
		m->v = nv;
		m->cap = cap;
	}
	m->v[m->n].path = strdup(path);
	if (m->v[m->n].path == NULL)
		return;
	m->v[m->n].kline = kl;
	m->v[m->n].kcol = kc;
	m->v[m->n].vline = vl;
	m->v[m->n].vcol = vc;
	m->n++;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static void
put_utf8(char *out, size_t cap, size_t *o, uint32_t cp)
{
	char tmp[4];
	size_t n = 0;

	if (cp < 0x80) {
		tmp[n++] = (char)cp;
	} else if (cp < 0x800) {
		tmp[n++] = (char)(0xC0 | (cp >> 6));
		tmp[n++] = (char)(0x80 | (cp & 0x3F));
	} else if (cp < 0x10000) {
		tmp[n++] = (char)(0xE0 | (cp >> 12));
		tmp[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
		tmp[n++] = (char)(0x80 | (cp & 0x3F));
	} else {
		tmp[n++] = (char)(0xF0 | (cp >> 18));
		tmp[n++] = (char)(0x80 | ((cp >> 12) & 0x3F));
		tmp[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
		tmp[n++] = (char)(0x80 | (cp & 0x3F));
	}
	for (size_t k = 0; k < n && *o + 1 < cap; k++)
		out[(*o)++] = tmp[k];
}

static uint32_t
pos_hex4(struct pos_scan *ps)
{
	uint32_t v = 0;

	for (int k = 0; k < 4 && ps->i < ps->len; k++) {
		int h = hexval(ps->buf[ps->i]);
		v = v * 16 + (uint32_t)(h < 0 ? 0 : h);
		pos_adv(ps);
	}
	return v;
}

/* Read a string at the opening quote; decode it into out (truncated). */
static void
pos_string(struct pos_scan *ps, char *out, size_t cap)
{
	size_t o = 0;

	pos_adv(ps); /* " */
	while (ps->i < ps->len && ps->buf[ps->i] != '"') {
		char c = ps->buf[ps->i];
		if (c != '\\') {
			if (o + 1 < cap)
				out[o++] = c;
			pos_adv(ps);
			continue;
		}
		pos_adv(ps);
		if (ps->i >= ps->len)
			break;
		c = ps->buf[ps->i];
		pos_adv(ps);
		if (c == 'u') {
			uint32_t cp = pos_hex4(ps);
			if (cp >= 0xD800 && cp < 0xDC00 &&
			    ps->i + 1 < ps->len && ps->buf[ps->i] == '\\' &&
			    ps->buf[ps->i + 1] == 'u') {
				pos_adv(ps);
				pos_adv(ps);
				uint32_t lo = pos_hex4(ps);
				cp = 0x10000 + ((cp - 0xD800) << 10) +
				     (lo - 0xDC00);
			}
			put_utf8(out, cap, &o, cp);
			continue;
		}
		switch (c) {
		case 'b':
			c = '\b';
			break;
		case 'f':
			c = '\f';
			break;
		case 'n':
			c = '\n';
			break;
		case 'r':
			c = '\r';
			break;
		case 't':
			c = '\t';
			break;
		default:
			break; /* " \ / stand for themselves */
		}
		if (o + 1 < cap)
			out[o++] = c;
	}
	if (ps->i < ps->len)
		pos_adv(ps); /* " */
	if (cap > 0)
		out[o] = '\0';
}

/* Skip one value without recursion: nothing that deep is ever reported,
 * and the stack stays small whatever the nesting. */
static void
pos_skip(struct pos_scan *ps)
{
	size_t depth = 0;
	bool in_string = false;

	do {
		char c = ps->buf[ps->i];
		if (in_string) {
			if (c == '\\' && ps->i + 1 < ps->len)
				pos_adv(ps);
			else if (c == '"')
				in_string = false;
		} else if (c == '"') {
			in_string = true;
		} else if (c == '{' || c == '[') {
			depth++;
		} else if (c == '}' || c == ']') {
			if (depth == 0)
				return; /* the parent's closer */
			depth--;
		} else if (c == ',' && depth == 0) {
			return;
		}
		pos_adv(ps);
	} while (ps->i < ps->len &&
	         (depth > 0 || in_string ||
	          strchr(",]} \t\r\n", ps->buf[ps->i]) == NULL));
}

static void pos_value(struct pos_scan *ps, const char *path, int depth, int kl,
                      int kc);

static void
pos_object(struct pos_scan *ps, const char *path, int depth)
{
	char key[CG_MAX_JSON_PATH], sub[CG_MAX_JSON_PATH];

	pos_adv(ps); /* { */
	for (;;) {
		pos_ws(ps);
		if (ps->i >= ps->len || ps->buf[ps->i] == '}')
			break;
		if (ps->buf[ps->i] == ',') {
			pos_adv(ps);
			continue;
		}
		if (ps->buf[ps->i] != '"')
			return; /* not JSON; jansson has said so already */
		int kl = ps->line, kc = ps->col;
		pos_string(ps, key, sizeof(key));
		pos_ws(ps);
		if (ps->i < ps->len && ps->buf[ps->i] == ':')
			pos_adv(ps);
		if (path[0] != '\0')
			snprintf(sub, sizeof(sub), "%s.%s", path, key);
		else
			snprintf(sub, sizeof(sub), "%s", key);
		pos_value(ps, sub, depth + 1, kl, kc);
	}
	if (ps->i < ps->len)
		pos_adv(ps);
}

static void
pos_array(struct pos_scan *ps, const char *path, int depth)
{
	char sub[CG_MAX_JSON_PATH];
	unsigned idx = 0;

	pos_adv(ps); /* [ */
	for (;;) {
		pos_ws(ps);
		if (ps->i >= ps->len || ps->buf[ps->i] == ']')
			break;
		if (ps->buf[ps->i] == ',') {
			pos_adv(ps);
			continue;
		}
		snprintf(sub, sizeof(sub), "%s[%u]", path, idx++);
		size_t before = ps->i;
		pos_value(ps, sub, depth + 1, 0, 0);
		if (ps->i == before)
			return; /* no progress: not JSON */
	}
	if (ps->i < ps->len)
		pos_adv(ps);
}

static void
pos_value(struct pos_scan *ps, const char *path, int depth, int kl, int kc)
{
	char skip[2];

	pos_ws(ps);
	if (ps->i >= ps->len)
		return;
	if (depth > CG_MAX_JSONPOS_DEPTH) {
		pos_skip(ps);
		return;
	}
	pos_add(ps->map, path, kl, kc, ps->line, ps->col);
	switch (ps->buf[ps->i]) {
	case '{':
		pos_object(ps, path, depth);
		break;
	case '[':
		pos_array(ps, path, depth);
		break;
	case '"':
		pos_string(ps, skip, sizeof(skip));
		break;
	default:
		while (ps->i < ps->len &&
		       strchr(",]} \t\r\n", ps->buf[ps->i]) == NULL)
			pos_adv(ps);
		break;
	}
}

struct jsonpos *
jsonpos_scan(const char *buf, size_t len)
{
	struct jsonpos *m = calloc(1, sizeof(*m));
	struct pos_scan ps = {buf, len, 0, 1, 1, m};

	if (m == NULL)
		return NULL;
	pos_value(&ps, "", 0, 0, 0);
	return m;
}

void
jsonpos_free(struct jsonpos *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->n; i++)
		free(m->v[i].path);
	free(m->v);
	free(m);
}

void
jsonpos_find(const struct jsonpos *m, const char *path, bool key, int *line,
             int *col)
{
	char buf[CG_MAX_JSON_PATH];

	snprintf(buf, sizeof(buf), "%s", path);
	*line = *col = 0;
	if (m == NULL)
		return;
	for (;;) {
		for (size_t i = 0; i < m->n; i++) {
			const struct pos_entry *e = &m->v[i];
			if (strcmp(e->path, buf) != 0)
				continue;
			if (key && e->kline > 0) {
				*line = e->kline;
				*col = e->kcol;
			} else {
				*line = e->vline;
				*col = e->vcol;
			}
			return;
		}
		char *dot = strrchr(buf, '.'), *br = strrchr(buf, '[');
		char *cut = dot > br ? dot : br;
		if (cut == NULL)
			return;
		*cut = '\0';
		key = false;
	}
}

void
jsonpos_of_error(const char *buf, size_t len, int jline, int jcol,
                 int jposition, int *line, int *col)
{
	struct pos_scan ps = {buf, len, 0, 1, 1, NULL};
	size_t end;

	if (jcol > 0 || jposition < 0) {
		*line = jline;
		*col = jcol > 0 ? jcol : 0;
		return;
	}
	/* jansson read nothing on this line yet: the next byte is there */
	end = (size_t)jposition < len ? (size_t)jposition : len;
	while (ps.i < end)
		pos_adv(&ps);
	*line = ps.line;
	*col = ps.col;
}
