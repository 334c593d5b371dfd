/* declog_internal.h: the decision log (see declog.c). */
#ifndef CONSENTGATE_DECLOG_INTERNAL_H
#define CONSENTGATE_DECLOG_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>

#include "consentgate/policy.h"
#include "consentgate/verdict.h"

struct worker;
struct inspect_result;

#define DECLOG_VERSION 2           /* the "v" of every line (README) */
#define DECLOG_KEY_MIN 32          /* bytes a pseudonym key must have */
#define DECLOG_KEY_MAX 4096        /* bytes read from a key file at most */
#define DECLOG_QUEUE_DEFAULT 65536 /* lines queued before admission stops */
#define DECLOG_FULL_DETAIL "the decision log is not keeping up; retry later"

/*
 * Read a pseudonym key: the file's bytes, all of them, DECLOG_KEY_MIN to
 * DECLOG_KEY_MAX. 0, or -1 with the reason in why[cap].
 */
int declog_read_key(const char *path, unsigned char *key, size_t *len,
                    char *why, size_t cap);
/* A subject's pseudonym: HMAC-SHA-256(key, id), 64 lower-case hex digits
   into out[65]. 0 or -1. */
int declog_pseudonym(const unsigned char *key, size_t keylen, const char *id,
                     size_t n, char *out);

/* Before declog_open: pseudonymise subjects with the key in this file
   (NULL: no subject field at all). 0, or -1 with why[cap]. */
int declog_set_key(const char *path, char *why, size_t cap);
/* Before declog_open: queue bound in lines (0: the default) and what a
   full queue does (drop: drop and count; else new inspected requests get
   503 until it drains). */
void declog_set_queue(unsigned cap, bool drop);
/* Open the log (a path, or "-" for stdout) and start its writer; NULL
   leaves it off. 0 or -1 with errno. */
int declog_open(const char *path);
bool declog_enabled(void);
/* False while a new inspected request must be refused (503): the queue
   is full and lines may not be dropped. */
bool declog_admits(void);
/* Open the path again (after logrotate moved the file); 0 or -1. */
int declog_reopen(void);
/* Lines waiting, and lines dropped (drop mode) since the start. */
void declog_stats(uint64_t *depth, uint64_t *dropped);
/* Write what is queued and stop the writer. */
void declog_close(void);
/* Add one record's decisions (every subject's) to a request's trail
   (NULL: logging is off). */
void declog_record(struct evbuffer *trail, const struct verdict_record *rec);
/* Queue the line of one decided request. outcome: forwarded, all-dropped,
   blocked, refused, upstream-failed. client: the verified TLS identity,
   else the address. */
void declog_write(struct worker *w, uint64_t conn_id, const char *request_id,
                  const char *client, const struct policy_route *route,
                  const struct snapshot *snap, const struct inspect_result *r,
                  const char *outcome, int status);
void declog_worker_free(struct worker *w);

#endif
