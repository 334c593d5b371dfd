/*
 * test_conn.c: the client connection's state machine, driven over a
 * socketpair with a real event_base and a fake upstream on loopback: a GET
 * forwarded with our own head, keep-alive on both sides, pipelined
 * requests answered in order and forwarded one at a time, an inspected
 * NDJSON body, framing errors that close the connection, timeouts, and the
 * one teardown path (client gone mid-head, while the upstream works, and
 * closed from inside an upstream callback).
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../proxy/conn.c"
#include "proxy_fixture.h"

struct cfix {
	struct fixture *f;
	int client; /* our end of the client connection */
};

static int
setup(void **state)
{
	struct cfix *c = calloc(1, sizeof(*c));

	assert_non_null(c);
	signal(SIGPIPE, SIG_IGN);
	c->f = fixture_new();
	*state = c;
	return 0;
}

static int
teardown(void **state)
{
	struct cfix *c = *state;

	if (c->client >= 0)
		close(c->client);
	fixture_free(c->f);
	free(c);
	return 0;
}

/* A client connection from 127.0.0.1, as the listener hands it over. */
static void
connect_client(struct cfix *c)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	int sv[2];

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	fixture_nonblock(sv[0]);
	fixture_nonblock(sv[1]);
	worker_fd_opened(&c->f->w);
	conn_accept(&c->f->w, sv[0], (struct sockaddr *)&sin, sizeof(sin));
	c->client = sv[1];
	assert_int_equal(c->f->w.nconns, 1);
}

/* Pump until the worker has no connection left (bounded). */
static void
wait_closed(struct fixture *f)
{
	for (int i = 0; i < PUMP_ROUNDS && f->w.nconns > 0; i++)
		fixture_pump(f);
	assert_int_equal(f->w.nconns, 0);
	assert_null(f->w.conns);
	assert_int_equal(atomic_load(&f->w.metrics.active_conns), 0);
}

/* A new client connection sends a GET; returns the fake upstream's
   socket once the request arrived there. */
static int
forward_get(struct cfix *c)
{
	char up[8192];
	int fd;

	connect_client(c);
	fixture_puts(c->f, c->client, "GET /p HTTP/1.1\r\nHost: h\r\n\r\n");
	fd = fixture_accept(c->f, PUMP_ROUNDS);
	assert_true(fd >= 0);
	fixture_read_until(c->f, fd, "\r\n\r\n", up, sizeof(up), 0);
	assert_true(strncmp(up, "GET /p HTTP/1.1\r\n", 17) == 0);
	return fd;
}

static const char ok_resp_conn[] =
    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

static bool
has(const char *buf, const char *s)
{
	return strstr(buf, s) != NULL;
}

static void
test_get_forwarded(void **state)
{
	struct cfix *c = *state;
	struct fixture *f = c->f;
	char up[8192], cl[8192];
	int fd;

	connect_client(c);
	fixture_puts(f, c->client,
	             "GET /p/x?q=1 HTTP/1.1\r\nHost: h\r\n"
	             "Connection: keep-alive, X-Hop\r\nX-Hop: 1\r\n"
	             "Consent-Result: kept=99\r\nX-Keep: 2\r\n\r\n");
	fd = fixture_accept(f, PUMP_ROUNDS);
	assert_true(fd >= 0);
	fixture_read_until(f, fd, "\r\n\r\n", up, sizeof(up), 0);
	/* our own head: request line, end-to-end fields, Via, Forwarded */
	assert_true(strncmp(up, "GET /p/x?q=1 HTTP/1.1\r\n", 23) == 0);
	assert_true(has(up, "\r\nHost: h\r\n"));
	assert_true(has(up, "\r\nX-Keep: 2\r\n"));
	assert_true(has(up, "\r\nVia: 1.1 consentgate\r\n"));
	assert_true(has(up, "\r\nForwarded: for=127.0.0.1;proto=http\r\n"));
	assert_false(has(up, "X-Hop"));
	assert_false(has(up, "Connection"));
	assert_false(has(up, "Consent-"));
	fixture_puts(f, fd,
	             "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
	             "Keep-Alive: timeout=5\r\nX-Up: 1\r\n\r\nhello");
	fixture_read_until(f, c->client, "hello", cl, sizeof(cl), 0);
	assert_true(strncmp(cl, "HTTP/1.1 200 OK\r\n", 17) == 0);
	assert_true(has(cl, "\r\nX-Up: 1\r\n"));
	assert_true(has(cl, "\r\nContent-Length: 5\r\n"));
	assert_false(has(cl, "Keep-Alive"));
	assert_false(has(cl, "Connection: close"));
	assert_int_equal(f->w.nidle, 1); /* read completely: pooled */
	assert_int_equal(f->w.nconns, 1);
	assert_int_equal(f->w.conns->state, CS_HEAD);
	close(fd);
}

/* Two requests in a row on one client connection reuse the upstream one. */
static void
test_keep_alive(void **state)
{
	struct cfix *c = *state;
	struct fixture *f = c->f;
	char up[8192], cl[8192];
	int fd = -1;

	connect_client(c);
	for (int i = 0; i < 3; i++) {
		char body[8];

		fixture_puts(f, c->client,
		             "GET /p HTTP/1.1\r\nHost: h\r\n\r\n");
		if (i == 0)
			fd = fixture_accept(f, PUMP_ROUNDS);
		else
			assert_int_equal(fixture_accept(f, 5), -1);
		fixture_read_until(f, fd, "\r\n\r\n", up, sizeof(up), 0);
		assert_true(strncmp(up, "GET /p HTTP/1.1\r\n", 17) == 0);
		snprintf(body, sizeof(body), "r%d", i);
		fixture_puts(f, fd,
		             "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n");
		fixture_puts(f, fd, body);
		fixture_read_until(f, c->client, body, cl, sizeof(cl), 0);
		assert_true(has(cl, body));
	}
	assert_int_equal(f->w.nconns, 1);
	close(fd);
}

/* Pipelined: the second request goes upstream only after the first
   response, and the answers come back in order. */
static void
test_pipelining_order(void **state)
{
	struct cfix *c = *state;
	struct fixture *f = c->f;
	char up[8192], cl[8192];
	size_t n;
	int fd;

	connect_client(c);
	fixture_puts(f, c->client,
	             "GET /p/a HTTP/1.1\r\nHost: h\r\n\r\n"
	             "GET /p/b HTTP/1.1\r\nHost: h\r\n\r\n");
	fd = fixture_accept(f, PUMP_ROUNDS);
	n = fixture_read_until(f, fd, "\r\n\r\n", up, sizeof(up), 0);
	for (int i = 0; i < 20; i++)
		fixture_pump(f); /* b must not come while a is in flight */
	n = fixture_read_until(f, fd, "GET /p/b", up, sizeof(up), n);
	assert_true(strncmp(up, "GET /p/a ", 9) == 0);
	assert_false(has(up, "GET /p/b"));
	fixture_puts(f, fd, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nA");
	n = fixture_read_until(f, fd, "\r\n\r\n", up, sizeof(up), 0);
	assert_true(strncmp(up, "GET /p/b ", 9) == 0);
	fixture_puts(f, fd, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nB");
	n = fixture_read_until(f, c->client, "\r\n\r\nB", cl, sizeof(cl), 0);
	assert_true(has(cl, "\r\n\r\nA"));
	assert_true(strstr(cl, "\r\n\r\nA") < strstr(cl, "\r\n\r\nB"));
	close(fd);
}

/* An inspected NDJSON body: only the allowed record goes upstream. */
static void
test_inspected_ndjson(void **state)
{
	struct cfix *c = *state;
	struct fixture *f = c->f;
	char up[8192], cl[8192];
	const char body[] = "{\"author_id\": 1001, \"t\": \"kept\"}\n"
	                    "{\"author_id\": 1002, \"t\": \"denied\"}\n";
	char req[512];
	int fd;

	connect_client(c);
	snprintf(req, sizeof(req),
	         "POST /ingest HTTP/1.1\r\nHost: h\r\n"
	         "Content-Type: application/x-ndjson\r\n"
	         "Content-Length: %zu\r\n\r\n%s",
	         sizeof(body) - 1, body);
	fixture_puts(f, c->client, req);
	fd = fixture_accept(f, PUMP_ROUNDS);
	assert_true(fd >= 0);
	fixture_read_until(f, fd, "\"kept\"}\n", up, sizeof(up), 0);
	assert_true(has(up, "\r\nConsent-Purpose: "));
	assert_true(has(up, "\r\nConsent-Result: kept=1, dropped=1\r\n"));
	assert_true(has(up, "\r\nContent-Length: 33\r\n"));
	assert_false(has(up, "denied"));
	fixture_puts(f, fd, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
	fixture_read_until(f, c->client, "\r\n\r\n", cl, sizeof(cl), 0);
	assert_true(strncmp(cl, "HTTP/1.1 200 OK\r\n", 17) == 0);
	assert_true(has(cl, "Consent-Result: kept=1, dropped=1"));
	close(fd);
}

/* A framing error: 400, the connection closes, nothing goes upstream. */
static void
test_framing_error_closes(void **state)
{
	struct cfix *c = *state;
	struct fixture *f = c->f;
	char cl[8192];

	connect_client(c);
	fixture_puts(f, c->client,
	             "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
	             "Transfer-Encoding: chunked\r\n\r\nabc");
	fixture_read_until(f, c->client, NULL, cl, sizeof(cl), 0);
	assert_true(strncmp(cl, "HTTP/1.1 400 ", 13) == 0);
	assert_true(has(cl, "\r\nConnection: close\r\n"));
	assert_true(has(cl, "application/problem+json"));
	/* the client reads the error and closes: so does the proxy
	 * (until then it lingers, reading) */
	close(c->client);
	c->client = -1;
	wait_closed(f);
	assert_int_equal(fixture_accept(f, 5), -1);
}

/*
 * After an error with request bytes unread, the proxy shuts its side down
 * (the client sees the response, then EOF) but keeps reading and dropping
 * what the client still sends, so that no reset destroys the response;
 * it closes when the client does, or after CG_LINGER_TIMEOUT_MS.
 */
static void
test_linger_after_error(void **state)
{
	struct cfix *c = *state;
	struct fixture *f = c->f;
	char cl[8192], more[4096];

	connect_client(c);
	fixture_puts(f, c->client,
	             "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
	             "Transfer-Encoding: chunked\r\n\r\nabc");
	fixture_read_until(f, c->client, NULL, cl, sizeof(cl), 0);
	assert_true(strncmp(cl, "HTTP/1.1 400 ", 13) == 0);
	/* EOF came, and the connection still reads what the client sends */
	assert_int_equal(f->w.nconns, 1);
	memset(more, 'x', sizeof(more));
	for (int i = 0; i < 8; i++) {
		assert_int_equal(write(c->client, more, sizeof(more)),
		                 (ssize_t)sizeof(more));
		fixture_pump(f);
	}
	assert_int_equal(f->w.nconns, 1);
	close(c->client);
	c->client = -1;
	wait_closed(f);
}

/* Half a head and the client leaves: closed once, nothing forwarded. */
static void
test_client_gone_mid_head(void **state)
{
	struct cfix *c = *state;
	struct fixture *f = c->f;

	connect_client(c);
	fixture_puts(f, c->client, "GET /p HTTP/1.1\r\nHo");
	for (int i = 0; i < 10; i++)
		fixture_pump(f);
	assert_int_equal(f->w.nconns, 1);
	close(c->client);
	c->client = -1;
	wait_closed(f);
	assert_int_equal(fixture_accept(f, 5), -1);
}

/* The client leaves while the upstream works: the exchange is abandoned
   and the upstream connection closed (never pooled mid-exchange). */
static void
test_client_gone_during_upstream(void **state)
{
	struct cfix *c = *state;
	struct fixture *f = c->f;
	char up[8192];
	int fd;

	fd = forward_get(c);
	close(c->client);
	c->client = -1;
	wait_closed(f);
	assert_int_equal(f->w.nidle, 0);
	assert_int_equal(fixture_read_until(f, fd, NULL, up, sizeof(up), 0), 0);
	close(fd);
}

/* The upstream breaks mid-body: the client sees the connection end, never
   a truncated response presented as complete. */
static void
test_upstream_breaks_mid_body(void **state)
{
	struct cfix *c = *state;
	struct fixture *f = c->f;
	char cl[8192];
	size_t n;
	int fd;

	fd = forward_get(c);
	fixture_puts(f, fd, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
	close(fd);
	n = fixture_read_until(f, c->client, NULL, cl, sizeof(cl), 0);
	assert_true(strncmp(cl, "HTTP/1.1 200 OK\r\n", 17) == 0);
	assert_true(n > 3 && strcmp(cl + n - 3, "abc") == 0);
	/* the client reads the error and closes: so does the proxy
	 * (until then it lingers, reading) */
	close(c->client);
	c->client = -1;
	wait_closed(f);
}

/*
 * The client's socket breaks while the upstream's body is relayed: the
 * connection closes inside on_up_body (an upstream callback) and is freed
 * once, after the callback returned.
 */
static void
test_close_inside_upstream_callback(void **state)
{
	struct cfix *c = *state;
	struct fixture *f = c->f;
	int fd;

	fd = forward_get(c);
	close(c->client); /* before the loop hears of it, the body comes */
	c->client = -1;
	fixture_puts(f, fd, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody");
	wait_closed(f);
	assert_int_equal(f->w.nidle, 0);
	close(fd);
}

/* A head that does not arrive in time: 408, closed. */
static void
test_head_timeout(void **state)
{
	struct cfix *c = *state;
	struct fixture *f = c->f;
	char cl[8192];

	f->cfg.head_timeout_ms = 20;
	connect_client(c);
	fixture_puts(f, c->client, "GET /p HTTP/1.1\r\n");
	fixture_read_until(f, c->client, NULL, cl, sizeof(cl), 0);
	assert_true(strncmp(cl, "HTTP/1.1 408 ", 13) == 0);
	/* the client reads the error and closes: so does the proxy
	 * (until then it lingers, reading) */
	close(c->client);
	c->client = -1;
	wait_closed(f);
}

/* An idle keep-alive connection closes silently. */
static void
test_idle_timeout(void **state)
{
	struct cfix *c = *state;
	struct fixture *f = c->f;
	char cl[8192];
	size_t n;
	int fd;

	f->cfg.idle_timeout_ms = 20;
	fd = forward_get(c);
	fixture_puts(f, fd, ok_resp_conn);
	n = fixture_read_until(f, c->client, "ok", cl, sizeof(cl), 0);
	assert_int_equal(
	    fixture_read_until(f, c->client, NULL, cl, sizeof(cl), n),
	    n); /* nothing more, then the end */
	wait_closed(f);
	close(fd);
}

/* Draining closes idle connections at once. */
static void
test_drain_idle(void **state)
{
	struct cfix *c = *state;
	struct fixture *f = c->f;

	connect_client(c);
	fixture_pump(f);
	f->w.draining = true;
	conn_drain_all(&f->w);
	assert_int_equal(f->w.nconns, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_get_forwarded, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_keep_alive, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pipelining_order, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_inspected_ndjson, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_framing_error_closes, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_linger_after_error, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_client_gone_mid_head, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_client_gone_during_upstream,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_upstream_breaks_mid_body,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_close_inside_upstream_callback,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_head_timeout, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_idle_timeout, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_drain_idle, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
