/*
 * jsonptr.h: RFC 6901 JSON Pointers, compiled once at load time.
 *
 * consentgate extends RFC 6901 with one wildcard: a token that is exactly
 * "*" matches every member of an array (e.g. "/mentions/ * /id" without the
 * spaces). A literal "*" member name cannot be addressed; policy authors
 * are told so at load time.
 */
#ifndef CONSENTGATE_JSONPTR_H
#define CONSENTGATE_JSONPTR_H

#include "consentgate/common.h"

struct jsonptr_token {
	char name[CG_MAX_PTR_TOKEN_LEN]; /* decoded (~0 -> ~, ~1 -> /) */
	size_t len;
	bool wildcard;  /* the token "*" */
	bool is_index;  /* all digits, no leading zero */
	uint32_t index; /* valid when is_index */
};

struct jsonptr {
	struct jsonptr_token tok[CG_MAX_PTR_TOKENS];
	unsigned ntokens; /* 0 = the whole document ("") */
};

/*
 * Parse text[0,len) into *out. Returns 0, or -1 with *err set to a static
 * message a policy author understands ("must start with '/'", "~ must be
 * followed by 0 or 1", "too many tokens", ...).
 */
int jsonptr_parse(const char *text, size_t len, struct jsonptr *out,
                  const char **err);

/* Write the pointer back in RFC 6901 form into buf (NUL-terminated, cut at
 * a token boundary or a whole escape when cap is too small). */
void jsonptr_format(const struct jsonptr *p, char *buf, size_t cap);

#endif
