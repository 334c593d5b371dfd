/*
 * declog.c: the decision log, the proof. One JSON line per inspected
 * request: when, which route and purpose, the policy id and digest and the
 * consent snapshot version that decided it, the outcome, and for every
 * record its index, the rule that decided it, the decision and the evidence
 * id of the consent row used (and, for a record of several people, the
 * evidence of each). Never a subject id or record content.
 *
 * Each worker buffers its lines and appends them with one write(2) to a
 * file opened O_APPEND (lines from several workers never interleave), when
 * 64 KiB are waiting or every 200 ms, and at exit.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "declog_internal.h"
#include "inspect_internal.h"
#include "proxy_internal.h"

#define DECLOG_FLUSH_BYTES (64u << 10) /* bytes buffered before a write */
#define DECLOG_FLUSH_MS 200            /* ms at most a line waits */

static int declog_fd = -1;
static char *declog_path; /* for reopening after rotation */

int
declog_open(const char *path)
{
	if (path == NULL)
		return 0;
	if (strcmp(path, "-") == 0) {
		declog_fd = STDOUT_FILENO;
		return 0;
	}
	declog_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (declog_fd < 0)
		return -1;
	free(declog_path);
	declog_path = strdup(path);
	return 0;
}

int
declog_reopen(void)
{
	int fd;

	if (declog_path == NULL || declog_fd < 0)
		return 0;
	fd = open(declog_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (fd < 0)
		return -1;
	/* dup2 swaps the file under the same descriptor atomically: a worker
	   writing right now finishes its line in the old file */
	if (dup3(fd, declog_fd, O_CLOEXEC) < 0) {
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

bool
declog_enabled(void)
{
	return declog_fd >= 0;
}

void
declog_record(struct evbuffer *trail, unsigned index,
              const struct policy_decision *d)
{
	if (trail == NULL)
		return;
	evbuffer_add_printf(trail, "%s[%u,\"%s\",\"",
	                    evbuffer_get_length(trail) ? "," : "", index,
	                    d->allow ? "allow" : "deny");
	respond_json_str(trail, d->rule_id, strlen(d->rule_id));
	ADD_LIT(trail, "\",\"");
	respond_json_str(trail, d->consent.evidence.ptr,
	                 d->consent.evidence.len);
	ADD_LIT(trail, "\"");
	/* several people: the evidence of each, in subject order */
	if (d->nevidence > 1) {
		ADD_LIT(trail, ",[");
		for (unsigned i = 0; i < d->nevidence; i++) {
			if (i > 0)
				ADD_LIT(trail, ",");
			ADD_LIT(trail, "\"");
			respond_json_str(trail, d->evidence[i].ptr,
			                 d->evidence[i].len);
			ADD_LIT(trail, "\"");
		}
		ADD_LIT(trail, "]");
	}
	ADD_LIT(trail, "]");
}

void
declog_flush(struct worker *w)
{
	struct evbuffer *b = w->declog;

	while (b != NULL && evbuffer_get_length(b) > 0) {
		int n = evbuffer_write(b, declog_fd);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			log_msg(
			    "decision log: write failed: %s; %zu bytes lost",
			    strerror(errno), evbuffer_get_length(b));
			evbuffer_drain(b, evbuffer_get_length(b));
		}
	}
}

static void
on_flush_timer(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	w->declog_timer_armed = false;
	declog_flush(w);
}

void
declog_write(struct worker *w, uint64_t conn_id, const char *client,
             const struct policy_route *route, const struct snapshot *snap,
             const struct inspect_result *r, const char *outcome, int status)
{
	const struct policy *p = snapshot_policy(snap);
	struct evbuffer *b;
	struct timespec ts;
	struct tm tm;
	char stamp[32];
	const char *name = route_name(route);

	if (declog_fd < 0)
		return;
	if (w->declog == NULL) {
		w->declog = evbuffer_new();
		w->declog_timer = evtimer_new(w->base, on_flush_timer, w);
		if (w->declog == NULL || w->declog_timer == NULL)
			return;
	}
	b = w->declog;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	evbuffer_add_printf(
	    b, "{\"time\":\"%s.%03ldZ\",\"conn\":%llu,\"client\":\"", stamp,
	    ts.tv_nsec / 1000000, (unsigned long long)conn_id);
	/* an IPv6 address comes quoted for Forwarded: not here */
	if (client[0] == '"' && strlen(client) >= 2)
		respond_json_str(b, client + 1, strlen(client) - 2);
	else
		respond_json_str(b, client, strlen(client));
	ADD_LIT(b, "\",\"route\":\"");
	respond_json_str(b, name, strlen(name));
	evbuffer_add_printf(b, "\",\"purpose\":\"%s\",\"policy\":\"",
	                    route_purpose(route));
	respond_json_str(b, policy_id(p), strlen(policy_id(p)));
	evbuffer_add_printf(
	    b,
	    "\",\"digest\":\"%s\",\"snapshot\":%llu,\"outcome\":\"%s\","
	    "\"status\":%d,\"records\":%u,\"kept\":%u,\"dropped\":%u,"
	    "\"decisions\":[",
	    policy_digest(p),
	    (unsigned long long)consent_version(snapshot_consent(snap)),
	    outcome, status, r->records, r->kept, r->dropped);
	if (r->trail)
		evbuffer_add_buffer(b, r->trail);
	ADD_LIT(b, "]}\n");
	if (evbuffer_get_length(b) >= DECLOG_FLUSH_BYTES) {
		declog_flush(w);
	} else if (!w->declog_timer_armed) {
		struct timeval tv = {0, DECLOG_FLUSH_MS * 1000};

		evtimer_add(w->declog_timer, &tv);
		w->declog_timer_armed = true;
	}
}

void
declog_worker_free(struct worker *w)
{
	declog_flush(w);
	if (w->declog_timer)
		event_free(w->declog_timer);
	if (w->declog)
		evbuffer_free(w->declog);
	w->declog = NULL;
	w->declog_timer = NULL;
}
