/*
 * scan_internal.h: the scanner's helpers in their own modules. Nobody
 * outside policy/ includes it.
 */
#ifndef CONSENTGATE_SCAN_INTERNAL_H
#define CONSENTGATE_SCAN_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "consentgate/common.h"

/* keyfold.c: k[0,klen) and t[0,tlen) are one name to a folding decoder
 * (NFKC, full case folding, ignorables, Turkish i). */
bool keyfold_equal(const char *k, size_t klen, const char *t, size_t tlen);

/* subject_id.c: the refusal (a static string) for a numeric subject
 * [s, e) beyond 2^53 or -0, or NULL. */
const char *subject_id_number_unsafe(const char *s, const char *e);
/* subject_id.c: the refusal for a string subject s[0,n) that pandas
 * would read as another number ("0042", "1e3", digits beyond 2^53), or
 * NULL. */
const char *subject_id_string_unsafe(const char *s, size_t n);

#endif
