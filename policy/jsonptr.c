/* jsonptr.c: RFC 6901 JSON Pointers with the "*" array wildcard. */
#include <string.h>

#include "consentgate/jsonptr.h"

/* All digits, no leading zero, fits 32 bits: an array index (RFC 6901). */
static void
classify_token(struct jsonptr_token *t)
{
	uint64_t v = 0;

	t->wildcard = t->len == 1 && t->name[0] == '*';
	t->is_index = false;
	t->index = 0;
	if (t->len == 0 || t->len > 10 || (t->len > 1 && t->name[0] == '0'))
		return;
	for (size_t i = 0; i < t->len; i++) {
		if (t->name[i] < '0' || t->name[i] > '9')
			return;
		v = v * 10 + (uint64_t)(t->name[i] - '0');
	}
	if (v > UINT32_MAX)
		return;
	t->is_index = true;
	t->index = (uint32_t)v;
}

int
jsonptr_parse(const char *text, size_t len, struct jsonptr *out,
              const char **err)
{
	struct jsonptr_token *t = NULL;
	size_t i;
	int rc = -1;

	out->ntokens = 0;
	if (len == 0) {
		rc = 0;
		goto done;
	}
	if (text[0] != '/') {
		*err = "JSON Pointer must start with '/'";
		goto done;
	}
	for (i = 0; i < len; i++) {
		char c = text[i];

		if (c == '/') {
			if (t != NULL)
				classify_token(t);
			if (out->ntokens == CG_MAX_PTR_TOKENS) {
				*err = "JSON Pointer has too many tokens";
				goto done;
			}
			t = &out->tok[out->ntokens++];
			t->len = 0;
			t->name[0] = '\0';
			continue;
		}
		if (c == '\0') {
			/* no record member can hold a NUL: the scanner refuses
			 * it */
			*err = "JSON Pointer must not contain a NUL byte";
			goto done;
		}
		if (c == '~') {
			if (i + 1 >= len ||
			    (text[i + 1] != '0' && text[i + 1] != '1')) {
				*err = "~ must be followed by 0 or 1 in a JSON "
				       "Pointer";
				goto done;
			}
			c = text[++i] == '0' ? '~' : '/';
		}
		if (t->len + 1 >= CG_MAX_PTR_TOKEN_LEN) {
			*err = "JSON Pointer token is too long";
			goto done;
		}
		t->name[t->len++] = c;
		t->name[t->len] = '\0';
	}
	classify_token(t);
	rc = 0;
done:
	if (rc != 0)
		out->ntokens = 0;
	return rc;
}

void
jsonptr_format(const struct jsonptr *p, char *buf, size_t cap)
{
	size_t n = 0;

	if (cap == 0)
		return;
	/* on truncation stop at a token boundary or a whole escape pair */
	for (unsigned i = 0; i < p->ntokens; i++) {
		const struct jsonptr_token *t = &p->tok[i];

		if (n + 1 >= cap)
			goto done;
		buf[n++] = '/';
		for (size_t j = 0; j < t->len; j++) {
			char c = t->name[j];

			if (c == '~' || c == '/') {
				if (n + 2 >= cap)
					goto done;
				buf[n++] = '~';
				buf[n++] = c == '~' ? '0' : '1';
			} else {
				if (n + 1 >= cap)
					goto done;
				buf[n++] = c;
			}
		}
	}
done:
	buf[n] = '\0';
}
