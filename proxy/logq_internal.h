/*
 * logq_internal.h: a log written off the request path (see logq.c). The
 * decision log and the access log each have one: workers queue whole
 * lines, one writer thread per log appends them.
 */
#ifndef CONSENTGATE_LOGQ_INTERNAL_H
#define CONSENTGATE_LOGQ_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <event2/buffer.h>

struct logq;

/*
 * Open path ("-": stdout) for appending and start its writer. cap: lines
 * queued at most (the admission bound, see logq_push); drop: a full queue
 * drops lines (counted) instead of growing past cap; sync: fdatasync after
 * every batch written. NULL with errno.
 */
struct logq *logq_open(const char *path, unsigned cap, bool drop, bool sync);
/* The same on a descriptor already open (stderr); never reopened. */
struct logq *logq_open_fd(int fd, unsigned cap, bool drop, bool sync);
/*
 * Queue the line in b (all of b, which it drains). In drop mode a full
 * queue drops it (-1, counted); otherwise it is always queued, also past
 * cap: the caller admits no new work while logq_full, so the lines of
 * work already admitted are all kept (0).
 */
int logq_push(struct logq *q, struct evbuffer *b);
/* cap lines are waiting: new work that needs this log should wait. */
bool logq_full(const struct logq *q);
/* Open the path again (after logrotate moved the file); 0 or -1. */
int logq_reopen(struct logq *q);
/* Lines waiting or being written, and lines dropped since the start. */
void logq_stats(const struct logq *q, uint64_t *depth, uint64_t *dropped);
/*
 * Write what is queued, stop the writer and close; NULL does nothing. 0,
 * or -1 when the writer wrote nothing for LOGQ_STALL_S (logq.c) while
 * lines were left: they are lost (logged), q is left to the process's
 * exit, and logq_abandoned says so from then on.
 */
int logq_close(struct logq *q);
/* Some logq_close gave up on a stuck writer: lines were not written. */
bool logq_abandoned(void);

/* "2026-11-29T08:44:16.181Z" (UTC, milliseconds) into buf[32]. */
void logq_stamp(char *buf);

#endif
