/* reqid_internal.h: the request id (see reqid.c). */
#ifndef CONSENTGATE_REQID_INTERNAL_H
#define CONSENTGATE_REQID_INTERNAL_H

#include "consentgate/common.h"

#define REQID_MAX 128 /* bytes of an X-Request-Id taken from a client */

enum reqid_source {
	REQID_MADE,        /* none usable: a random 128-bit hex id */
	REQID_TAKEN,       /* the client's X-Request-Id */
	REQID_TRACEPARENT, /* the trace id of a W3C traceparent */
};

/*
 * The id of one request into out[REQID_MAX + 1]: xrid (the X-Request-Id
 * value; ptr NULL when absent) when it is 1..REQID_MAX visible ASCII
 * characters, else the trace id of traceparent (W3C: version-traceid-
 * parentid-flags, 32 lower-case hex not all zero), else a random one.
 */
enum reqid_source reqid_pick(struct cg_slice xrid, struct cg_slice traceparent,
                             char *out);
/* A random 128-bit id, 32 lower-case hex digits, into out[33]. */
void reqid_make(char *out);

#endif
