/*
 * accesslog.c: one JSON line per request (README "Logs"), written off the
 * request path by logq like the decision log. It is operations data, not
 * proof: a full queue drops lines (counted in /metrics) and nothing is
 * synced. -v writes the same lines to stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "accesslog_internal.h"
#include "logq_internal.h"
#include "proxy_internal.h"

#define ACCESSLOG_QUEUE 65536 /* lines waiting at most */

static struct logq *file_q, *stderr_q;

int
accesslog_open(const char *path, bool verbose)
{
	if (path != NULL && file_q == NULL &&
	    (file_q = logq_open(path, ACCESSLOG_QUEUE, true, false)) == NULL)
		return -1;
	if (verbose && stderr_q == NULL &&
	    (stderr_q = logq_open_fd(STDERR_FILENO, ACCESSLOG_QUEUE, true,
	                             false)) == NULL)
		return -1;
	if (file_q != NULL || stderr_q != NULL)
		atexit(accesslog_close);
	return 0;
}

bool
accesslog_enabled(void)
{
	return file_q != NULL || stderr_q != NULL;
}

int
accesslog_reopen(void)
{
	return logq_reopen(file_q);
}

uint64_t
accesslog_dropped(void)
{
	uint64_t depth, a = 0, b = 0;

	logq_stats(file_q, &depth, &a);
	logq_stats(stderr_q, &depth, &b);
	return a + b;
}

void
accesslog_close(void)
{
	logq_close(file_q);
	logq_close(stderr_q);
	file_q = stderr_q = NULL;
}

static void
add_str(struct evbuffer *b, const char *s, size_t n)
{
	ADD_LIT(b, "\"");
	respond_json_str(b, s, n);
	ADD_LIT(b, "\"");
}

/* nanoseconds as milliseconds with microsecond precision */
static void
add_ms(struct evbuffer *b, int64_t ns)
{
	int64_t us = ns / 1000;

	evbuffer_add_printf(b, "%lld.%03lld", (long long)(us / 1000),
	                    (long long)(us % 1000));
}

void
accesslog_write(struct evbuffer *b, const struct accesslog_entry *e)
{
	char stamp[32];
	const char *client = e->client;
	size_t clen = strlen(client);

	if (!accesslog_enabled())
		return;
	logq_stamp(stamp);
	evbuffer_add_printf(b, "{\"time\":\"%s\",\"request_id\":", stamp);
	add_str(b, e->request_id, strlen(e->request_id));
	ADD_LIT(b, ",\"client\":");
	/* an IPv6 address comes quoted for Forwarded: not here */
	if (client[0] == '"' && clen >= 2)
		add_str(b, client + 1, clen - 2);
	else
		add_str(b, client, clen);
	ADD_LIT(b, ",\"method\":");
	add_str(b, e->method.ptr, e->method.len);
	ADD_LIT(b, ",\"path\":");
	add_str(b, e->path.ptr, e->path.len);
	ADD_LIT(b, ",\"route\":");
	if (e->route != NULL)
		add_str(b, e->route, strlen(e->route));
	else
		ADD_LIT(b, "null");
	evbuffer_add_printf(
	    b,
	    ",\"status\":%d,\"bytes_in\":%llu,\"bytes_out\":%llu,"
	    "\"upstream_ms\":",
	    e->status, (unsigned long long)e->bytes_in,
	    (unsigned long long)e->bytes_out);
	if (e->upstream_ns >= 0)
		add_ms(b, e->upstream_ns);
	else
		ADD_LIT(b, "null");
	ADD_LIT(b, ",\"total_ms\":");
	add_ms(b, e->total_ns);
	ADD_LIT(b, "}\n");
	if (file_q != NULL && stderr_q != NULL) {
		struct evbuffer *copy = evbuffer_new();

		if (copy != NULL) {
			evbuffer_add_buffer_reference(copy, b);
			logq_push(stderr_q, copy);
			evbuffer_free(copy);
		}
		logq_push(file_q, b);
	} else {
		logq_push(file_q != NULL ? file_q : stderr_q, b);
	}
}
