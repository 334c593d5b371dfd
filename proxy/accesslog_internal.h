/* accesslog_internal.h: the access log (see accesslog.c). */
#ifndef CONSENTGATE_ACCESSLOG_INTERNAL_H
#define CONSENTGATE_ACCESSLOG_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/buffer.h>

#include "consentgate/common.h"

/* One request as the access log tells it. */
struct accesslog_entry {
	const char *request_id, *client; /* client: TLS identity or address */
	struct cg_slice method, path;
	const char *route; /* NULL: no route matched */
	int status;        /* 0: the connection ended before a response */
	uint64_t bytes_in, bytes_out;
	int64_t upstream_ns; /* -1: nothing was sent upstream */
	int64_t total_ns;
};

/* Open path (a file, or "-" for stdout; NULL: none) and, with verbose,
   stderr too. 0 or -1 with errno. */
int accesslog_open(const char *path, bool verbose);
bool accesslog_enabled(void);
/* Open the file again (after rotation); 0 or -1. */
int accesslog_reopen(void);
/* Queue the line of one request; scratch is the caller's buffer. */
void accesslog_write(struct evbuffer *scratch, const struct accesslog_entry *e);
/* Lines dropped because the queue was full (the access log drops rather
   than refuse a request). */
uint64_t accesslog_dropped(void);
void accesslog_close(void);

#endif
