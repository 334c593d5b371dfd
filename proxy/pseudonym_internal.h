/*
 * pseudonym_internal.h: a person's pseudonym, HMAC-SHA-256(key, id)
 * (pseudonym.c), for the decision log (declog.c), consentgate audit
 * (cmd_audit.c), serve and the configuration check.
 */
#ifndef CONSENTGATE_PSEUDONYM_INTERNAL_H
#define CONSENTGATE_PSEUDONYM_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#define PSEUDONYM_KEY_MIN 32   /* bytes a pseudonym key must have */
#define PSEUDONYM_KEY_MAX 4096 /* bytes read from a key file at most */

/*
 * Read a pseudonym key: the file's bytes, all of them, PSEUDONYM_KEY_MIN
 * to PSEUDONYM_KEY_MAX. 0, or -1 with the reason in why[cap].
 */
int pseudonym_read_key(const char *path, unsigned char *key, size_t *len,
                       char *why, size_t cap);
/* A subject's pseudonym: HMAC-SHA-256(key, id), 64 lower-case hex digits
   into out[65]. 0 or -1. */
int pseudonym_hmac(const unsigned char *key, size_t keylen, const char *id,
                   size_t n, char *out);

/* Before the decision log opens: pseudonymise subjects with the key in
   this file (NULL: no subject field at all). 0, or -1 with why[cap]. */
int pseudonym_set_key(const char *path, char *why, size_t cap);
/* A key is set: the decision log names each person by pseudonym. */
bool pseudonym_enabled(void);
/* id's pseudonym with the key set, from this thread's own HMAC state (no
   key setup per person); 0 or -1. */
int pseudonym_of(const char *id, size_t n, char *out);
/* Free every thread's state and wipe the key (the decision log closes).
   Only once no other thread can call pseudonym_of: theirs would point at
   freed state (serve clears after its workers have joined). */
void pseudonym_clear(void);

#endif
