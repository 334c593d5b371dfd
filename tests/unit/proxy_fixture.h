/*
 * proxy_fixture.h: what test_conn and test_upstream share: one worker on a
 * real event_base with a real server (snapshot, fd accounting), and a fake
 * upstream: a loopback listener the test accepts on and talks to by hand.
 * Every wait is bounded (PUMP_ROUNDS rounds of the event loop).
 */
#ifndef CONSENTGATE_TEST_PROXY_FIXTURE_H
#define CONSENTGATE_TEST_PROXY_FIXTURE_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../proxy/proxy_internal.h"
#include "../../proxy/transport_internal.h"
#include "consentgate/consent.h"

#define PUMP_ROUNDS 4000 /* loop passes before a wait gives up */
#define PUMP_SLEEP_US 250

/* The example policy with a pass route for every /p path. */
static const char fixture_policy[] =
    "{\"policy\": \"unit\","
    " \"purposes\": {\"ai-training\": {\"aipref\": \"train-ai\"}},"
    " \"jurisdictions\": {\"EEA\": [\"DE\", \"FR\"]},"
    " \"routes\": ["
    "  {\"method\": \"*\", \"path_prefix\": \"/p\", \"action\": \"pass\"},"
    "  {\"name\": \"ingest\", \"method\": \"POST\", \"path\": \"/ingest\","
    "   \"action\": \"inspect\", \"purpose\": \"ai-training\","
    "   \"formats\": [\"ndjson\"], \"subjects\": [\"/author_id\"],"
    "   \"on_deny\": \"drop\"}],"
    " \"rules\": ["
    "  {\"id\": \"unknown-person\", \"if\": {\"known\": false},"
    "   \"then\": \"deny\"},"
    "  {\"id\": \"opted-out\", \"if\": {\"status\": [\"denied\","
    "   \"withdrawn\"]}, \"then\": \"deny\"},"
    "  {\"id\": \"default-allow\", \"then\": \"allow\"}]}";

struct fixture {
	struct config cfg;
	struct event_base *base;
	struct server *server;
	struct worker w;
	struct worker_fds fds; /* the worker's descriptor budget */
	int up_listen;         /* the fake upstream's listening socket */
};

static void
fixture_nonblock(int fd)
{
	assert_int_equal(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK),
	                 0);
}

static struct fixture *
fixture_new(void)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct sockaddr_in *sin;
	socklen_t sl = sizeof(struct sockaddr_in);
	struct cg_errors errs;
	struct policy *p;
	struct consent_table *t;

	assert_non_null(f);
	config_init(&f->cfg);
	f->base = event_base_new();
	assert_non_null(f->base);
	/* the fake upstream */
	f->up_listen = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	assert_true(f->up_listen >= 0);
	sin = (struct sockaddr_in *)&f->cfg.upstream_addr;
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(f->up_listen, (struct sockaddr *)sin, sl), 0);
	assert_int_equal(listen(f->up_listen, 16), 0);
	assert_int_equal(getsockname(f->up_listen, (struct sockaddr *)sin, &sl),
	                 0);
	f->cfg.upstream_addrlen = sl;
	snprintf(f->cfg.upstream_hostport, sizeof(f->cfg.upstream_hostport),
	         "127.0.0.1:%d", ntohs(sin->sin_port));
	/* policy and consent */
	cg_errors_init(&errs);
	p = policy_load_buf("unit.json", fixture_policy,
	                    sizeof(fixture_policy) - 1, &errs);
	t = consent_open("../data/consent-example.csv", &errs);
	for (unsigned i = 0; i < errs.count; i++)
		fprintf(stderr, "%s\n", errs.msgs[i]);
	assert_non_null(p);
	assert_non_null(t);
	cg_errors_reset(&errs);
	f->server = server_new(&f->cfg, snapshot_new(p, t));
	assert_non_null(f->server);
	/* one worker, as server_run would set it up */
	f->w.server = f->server;
	f->fds.limit = 1 << 20;
	f->w.fds = &f->fds;
	f->w.cfg = &f->cfg;
	f->w.base = f->base;
	f->w.timers = transport_timers_new(f->base);
	assert_non_null(f->w.timers);
	f->w.listen_fd = -1;
	f->w.snap = server_snapshot(f->server); /* what requests start on */
	return f;
}

static void
fixture_free(struct fixture *f)
{
	conn_close_all(&f->w);
	conn_free_cache(&f->w);
	upstream_pool_clear(&f->w);
	snapshot_unref(f->w.snap);
	close(f->up_listen);
	server_free(f->server);
	timerq_free(f->w.timers);
	event_base_free(f->base);
	free(f);
}

/* One pass of the event loop, and a breath for the kernel. */
static void
fixture_pump(struct fixture *f)
{
	event_base_loop(f->base, EVLOOP_NONBLOCK);
	usleep(PUMP_SLEEP_US);
}

/* The next connection to the fake upstream (nonblocking), or -1. */
static int
fixture_accept(struct fixture *f, int rounds)
{
	for (int i = 0; i < rounds; i++) {
		int fd = accept(f->up_listen, NULL, NULL);

		if (fd >= 0) {
			fixture_nonblock(fd);
			return fd;
		}
		assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
		fixture_pump(f);
	}
	return -1;
}

/* Read from fd (pumping the loop) until buf holds needle or the peer
   closed; returns the bytes in buf (NUL-terminated). */
static size_t
fixture_read_until(struct fixture *f, int fd, const char *needle, char *buf,
                   size_t cap, size_t have)
{
	for (int i = 0; i < PUMP_ROUNDS; i++) {
		ssize_t r;

		buf[have] = '\0';
		if (needle && memmem(buf, have, needle, strlen(needle)))
			break;
		r = read(fd, buf + have, cap - 1 - have);
		if (r == 0 || (r < 0 && errno != EAGAIN))
			break;
		if (r > 0) {
			have += (size_t)r;
			continue;
		}
		fixture_pump(f);
	}
	buf[have] = '\0';
	return have;
}

/* Write all of s (pumping the loop while the socket is full). */
static void
fixture_write(struct fixture *f, int fd, const char *s, size_t n)
{
	for (int i = 0; n > 0 && i < PUMP_ROUNDS; i++) {
		ssize_t w = write(fd, s, n);

		if (w > 0) {
			s += w;
			n -= (size_t)w;
		} else {
			assert_int_equal(errno, EAGAIN);
			fixture_pump(f);
		}
	}
	assert_int_equal(n, 0);
}

#define fixture_puts(f, fd, s) fixture_write((f), (fd), (s), strlen(s))

#endif
