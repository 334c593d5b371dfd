/*
 * timerq.c: the timeouts of one event loop, in first-in first-out queues
 * of one duration each.
 *
 * A proxy's connections share a handful of durations (the head, body,
 * idle, linger, connect and response timeouts of the configuration).
 * Appending at the tail of a queue of one duration keeps it sorted by
 * deadline, so a set and a clear are O(1) and one libevent timer per
 * queue, armed for its head's deadline, stands for all of its entries. A
 * connection's timer is then four words inside it instead of a struct
 * event of its own (144 bytes with malloc's header): what an idle
 * keep-alive connection costs.
 *
 * An entry removed from a queue's head leaves the queue's timer armed
 * for the old deadline: it fires early, finds nothing due and is armed
 * again, which is cheaper than re-arming on every clear.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include <event2/event.h>

#include "timerq_internal.h"

struct timerq_queue {
	struct timerq *tq;
	unsigned ms; /* the duration of every entry; any when empty */
	struct timerq_entry *head, *tail;
	struct event *ev;
};

struct timerq {
	struct event_base *base;
	void (*fire)(struct timerq_entry *e);
	struct timerq_queue **queues; /* stable addresses: the events' arg */
	size_t nqueues;
};

/* Cheap, and the clock libevent's own timers use on Linux. A queue timer
   that fires before its head is due (libevent adds to the time it cached
   at the loop's turn) is armed again. */
static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
arm(struct timerq_queue *q, int64_t now)
{
	int64_t d = q->head->deadline_ms - now;
	struct timeval tv;

	if (d < 0)
		d = 0;
	tv.tv_sec = d / 1000;
	tv.tv_usec = (d % 1000) * 1000;
	evtimer_add(q->ev, &tv);
}

static void
unlink_entry(struct timerq_entry *e)
{
	struct timerq_queue *q = e->q;

	if (e->prev)
		e->prev->next = e->next;
	else
		q->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		q->tail = e->prev;
	*e = (struct timerq_entry){0};
}

static void
on_queue_timer(evutil_socket_t fd, short what, void *arg)
{
	struct timerq_queue *q = arg;
	int64_t now = now_ms();
	struct timerq_entry *e;

	(void)fd, (void)what;
	/* the head again after each fire: fire may clear or set others */
	while ((e = q->head) != NULL && e->deadline_ms <= now) {
		unlink_entry(e);
		q->tq->fire(e);
	}
	if (q->head)
		arm(q, now_ms());
}

static struct timerq_queue *
add_queue(struct timerq *tq, unsigned ms)
{
	struct timerq_queue *q, **grown;

	grown = realloc(tq->queues, (tq->nqueues + 1) * sizeof(*grown));
	if (grown == NULL)
		return NULL;
	tq->queues = grown;
	q = calloc(1, sizeof(*q));
	if (q == NULL)
		return NULL;
	q->ev = evtimer_new(tq->base, on_queue_timer, q);
	if (q->ev == NULL) {
		free(q);
		return NULL;
	}
	q->tq = tq;
	q->ms = ms;
	tq->queues[tq->nqueues++] = q;
	return q;
}

/* The queue of duration ms: one that has it, else an empty one taken
   over, else a new one (a reload may change the durations). Out of memory,
   the first one: entries of mixed durations stay sorted, each set then
   costs a walk from the tail, and a set never fails. */
static struct timerq_queue *
queue_for(struct timerq *tq, unsigned ms)
{
	struct timerq_queue *empty = NULL, *q;

	for (size_t i = 0; i < tq->nqueues; i++) {
		q = tq->queues[i];
		if (q->ms == ms)
			return q;
		if (q->head == NULL && empty == NULL)
			empty = q;
	}
	if (empty) {
		empty->ms = ms;
		return empty;
	}
	q = add_queue(tq, ms);
	return q ? q : tq->queues[0];
}

struct timerq *
timerq_new(struct event_base *base, void (*fire)(struct timerq_entry *e))
{
	struct timerq *tq = calloc(1, sizeof(*tq));

	if (tq == NULL)
		return NULL;
	tq->base = base;
	tq->fire = fire;
	/* one queue from the start: the one a set falls back on */
	if (add_queue(tq, 0) == NULL) {
		timerq_free(tq);
		return NULL;
	}
	return tq;
}

void
timerq_free(struct timerq *tq)
{
	if (tq == NULL)
		return;
	for (size_t i = 0; i < tq->nqueues; i++) {
		event_free(tq->queues[i]->ev);
		free(tq->queues[i]);
	}
	free(tq->queues);
	free(tq);
}

struct event_base *
timerq_base(const struct timerq *tq)
{
	return tq->base;
}

void
timerq_set(struct timerq *tq, struct timerq_entry *e, unsigned ms)
{
	struct timerq_queue *q;
	struct timerq_entry *after;
	int64_t now = now_ms();

	timerq_clear(e);
	q = queue_for(tq, ms);
	e->q = q;
	e->deadline_ms = now + ms;
	/* the tail, unless the queue holds longer durations (see queue_for) */
	for (after = q->tail; after && after->deadline_ms > e->deadline_ms;)
		after = after->prev;
	e->prev = after;
	e->next = after ? after->next : q->head;
	if (e->next)
		e->next->prev = e;
	else
		q->tail = e;
	if (after)
		after->next = e;
	else
		q->head = e;
	if (q->head == e || !evtimer_pending(q->ev, NULL))
		arm(q, now);
}

void
timerq_clear(struct timerq_entry *e)
{
	if (e->q)
		unlink_entry(e);
}
