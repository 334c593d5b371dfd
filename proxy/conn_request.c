/*
 * conn_request.c: per-request state of a client connection and the
 * worker's free list of them. See conn_request_internal.h.
 */
#include <stdlib.h>
#include <string.h>

#include "conn_request_internal.h"
#include "proxy_internal.h"

static void
rq_free(struct conn_request *rq)
{
	if (rq->body)
		evbuffer_free(rq->body);
	if (rq->kept)
		evbuffer_free(rq->kept);
	free(rq->head);
	free(rq);
}

struct conn_request *
conn_request_get(struct worker *w)
{
	struct conn_request *rq = w->rq_free;

	if (rq != NULL) {
		w->rq_free = rq->next_free;
		w->nrq_free--;
	} else if ((rq = malloc(sizeof(*rq))) != NULL) {
		rq->head = NULL;
		rq->head_cap = 0;
		rq->body = evbuffer_new();
		rq->kept = evbuffer_new();
		if (rq->body == NULL || rq->kept == NULL) {
			rq_free(rq);
			return NULL;
		}
	} else {
		return NULL;
	}
	rq->next_free = NULL;
	rq->body_left = 0;
	http1_chunked_init(&rq->chunked);
	memset(&rq->log, 0, sizeof(rq->log));
	inspect_result_init(&rq->insp);
	return rq;
}

void
conn_request_put(struct worker *w, struct conn_request *rq)
{
	if (rq == NULL)
		return;
	inspect_result_reset(&rq->insp);
	evbuffer_drain(rq->body, evbuffer_get_length(rq->body));
	evbuffer_drain(rq->kept, evbuffer_get_length(rq->kept));
	if (w->nrq_free < CONN_REQUEST_FREE_MAX) {
		rq->next_free = w->rq_free;
		w->rq_free = rq;
		w->nrq_free++;
		return;
	}
	rq_free(rq);
}

void
conn_request_cache_free(struct worker *w)
{
	while (w->rq_free) {
		struct conn_request *rq = w->rq_free;

		w->rq_free = rq->next_free;
		rq_free(rq);
	}
	w->nrq_free = 0;
}

int
conn_request_keep_head(struct conn_request *rq, const char *buf)
{
	struct http1_request *r = &rq->req;
	ptrdiff_t shift;

	if (rq->head_cap < r->head_len) {
		free(rq->head);
		rq->head_cap = r->head_len < 4096 ? 4096 : r->head_len;
		rq->head = malloc(rq->head_cap);
		if (rq->head == NULL) {
			rq->head_cap = 0;
			return -1;
		}
	}
	memcpy(rq->head, buf, r->head_len);
	shift = rq->head - buf;
#define MOVE(s) ((s).ptr = (s).ptr ? (s).ptr + shift : NULL)
	MOVE(r->method);
	MOVE(r->target);
	MOVE(r->path);
	MOVE(r->query);
	MOVE(r->host);
	MOVE(r->authority);
	for (unsigned i = 0; i < r->nheaders; i++) {
		MOVE(r->headers[i].name);
		MOVE(r->headers[i].value);
	}
#undef MOVE
	return 0;
}
