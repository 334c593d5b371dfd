/*
 * timerq_internal.h: the timeouts of one event loop, in first-in
 * first-out queues of one duration each (timerq.c).
 */
#ifndef CG_TIMERQ_INTERNAL_H
#define CG_TIMERQ_INTERNAL_H

#include <stdint.h>

struct event_base;
struct timerq;
struct timerq_queue;

/* Embedded in its owner; zeroed means not set. */
struct timerq_entry {
	struct timerq_entry *prev, *next;
	struct timerq_queue *q; /* NULL: not set */
	int64_t deadline_ms;    /* CLOCK_MONOTONIC_COARSE */
};

/*
 * The timer queues of base; fire is called with each entry whose
 * deadline passed, after the entry is cleared (it may be set again, and
 * its owner freed, from fire). NULL when out of memory.
 */
struct timerq *timerq_new(struct event_base *base,
                          void (*fire)(struct timerq_entry *e));
/* Every entry must be cleared first (its owner freed). */
void timerq_free(struct timerq *tq);
struct event_base *timerq_base(const struct timerq *tq);
/* (Re)start e to fire in ms milliseconds; never fails (timerq.c). */
void timerq_set(struct timerq *tq, struct timerq_entry *e, unsigned ms);
/* Stop e; nothing when it is not set. */
void timerq_clear(struct timerq_entry *e);

#endif
