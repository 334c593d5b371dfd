/* unit_util.h: small helpers several unit tests share (after cmocka.h). */
#ifndef CONSENTGATE_UNIT_UTIL_H
#define CONSENTGATE_UNIT_UTIL_H

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

/* An exactly-sized heap copy of s[0,n), so a sanitizer sees an over-read. */
static inline char *
dup_bytes(const char *s, size_t n)
{
	char *p = malloc(n ? n : 1);

	assert_non_null(p);
	memcpy(p, s, n);
	return p;
}

/* The bytes of b as a NUL-terminated string the caller frees; b keeps
   them. */
static inline char *
buf_text(struct evbuffer *b)
{
	size_t n = evbuffer_get_length(b);
	char *s = malloc(n + 1);

	assert_non_null(s);
	evbuffer_copyout(b, s, n);
	s[n] = '\0';
	return s;
}

#endif
