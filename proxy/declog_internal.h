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
#define DECLOG_QUEUE_DEFAULT 65536 /* lines queued before admission stops */
#define DECLOG_FULL_DETAIL "the decision log is not keeping up; retry later"

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
