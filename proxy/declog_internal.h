/* declog_internal.h: the decision log (see declog.c). */
#ifndef CONSENTGATE_DECLOG_INTERNAL_H
#define CONSENTGATE_DECLOG_INTERNAL_H

#include <event2/buffer.h>

#include "consentgate/policy.h"

struct worker;
struct inspect_result;

/* Open the log (a path, or "-" for stdout); NULL leaves it off. 0 or -1. */
int declog_open(const char *path);
bool declog_enabled(void);
/* Open the path again (after logrotate moved the file); 0 or -1. */
int declog_reopen(void);
/* Add one record's decision to a request's trail (NULL: logging is off). */
void declog_record(struct evbuffer *trail, unsigned index,
                   const struct policy_decision *d);
/* Queue the line of one decided request. outcome: forwarded, all-dropped,
   blocked, refused. */
/* client: the verified TLS identity, else the address. */
void declog_write(struct worker *w, uint64_t conn_id, const char *client,
                  const struct policy_route *route, const struct snapshot *snap,
                  const struct inspect_result *r, const char *outcome,
                  int status);
void declog_flush(struct worker *w);
void declog_worker_free(struct worker *w);

#endif
