/*
 * test_upstream.c: the upstream pool and one exchange, against a fake
 * upstream on loopback. The rule issue 8 put in up_may_pool must hold: a
 * connection is reused only after its request was written completely and
 * its response read completely; an early answer, bytes after the body,
 * Connection: close or a streamed request without its last chunk close it.
 * Also: a pooled connection found dead is retried once on a fresh socket
 * (retryable requests only), and aborting from inside a callback is safe.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../proxy/upstream.c"
#include "proxy_fixture.h"

/* What the exchange reported to its caller. */
struct rec {
	int heads, done, writable;
	int status, result;
	bool written_at_head; /* upstream_request_written from on_head */
	bool abort_in_head;
	struct upstream_conn *u;
	struct evbuffer *body;
};

static void
rec_head(void *arg, const struct http1_response *res)
{
	struct rec *r = arg;

	r->heads++;
	r->status = res->status;
	r->written_at_head = upstream_request_written(r->u);
	if (r->abort_in_head)
		upstream_abort(r->u);
}

static void
rec_body(void *arg, struct evbuffer *src, size_t n)
{
	struct rec *r = arg;

	evbuffer_remove_buffer(src, r->body, n);
}

static void
rec_done(void *arg, int result)
{
	struct rec *r = arg;

	r->done++;
	r->result = result;
}

static void
rec_writable(void *arg)
{
	struct rec *r = arg;

	r->writable++;
}

static const struct upstream_ops rec_ops = {rec_head, rec_body, rec_done,
                                            rec_writable};

static int
setup(void **state)
{
	*state = fixture_new();
	return 0;
}

static int
teardown(void **state)
{
	fixture_free(*state);
	return 0;
}

/* Send head (and body, NULL: streamed) with the recorder. */
static struct upstream_conn *
send_req(struct fixture *f, struct rec *r, const char *head,
         struct evbuffer *body, unsigned flags)
{
	struct evbuffer *h = evbuffer_new();
	struct evbuffer *empty = NULL;

	memset(r, 0, sizeof(*r) - sizeof(r->body));
	if (r->body == NULL)
		r->body = evbuffer_new();
	evbuffer_drain(r->body, evbuffer_get_length(r->body));
	evbuffer_add(h, head, strlen(head));
	if (body == NULL && !(flags & 0x100))
		body = empty = evbuffer_new();
	r->u = upstream_send(&f->w, h, body, flags & 0xff, &rec_ops, r);
	evbuffer_free(h);
	if (empty)
		evbuffer_free(empty);
	return r->u;
}
#define STREAMED 0x100 /* send_req: no body now, upstream_write later */

static void
wait_done(struct fixture *f, struct rec *r)
{
	for (int i = 0; i < PUMP_ROUNDS && r->done == 0; i++)
		fixture_pump(f);
	assert_int_equal(r->done, 1);
}

static const char get_head[] = "GET /p HTTP/1.1\r\nHost: x\r\n\r\n";
static const char ok_resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

/* A GET on a new upstream connection, answered with resp; returns the
   fake upstream's socket. */
static int
exchange(struct fixture *f, struct rec *r, unsigned flags, const char *resp)
{
	char buf[4096];
	int fd;

	send_req(f, r, get_head, NULL, flags);
	fd = fixture_accept(f, PUMP_ROUNDS);
	assert_true(fd >= 0);
	fixture_read_until(f, fd, "\r\n\r\n", buf, sizeof(buf), 0);
	assert_string_equal(buf, get_head);
	fixture_puts(f, fd, resp);
	wait_done(f, r);
	return fd;
}

/* A complete exchange pools; the next request reuses the connection. */
static void
test_pool_after_complete_exchange(void **state)
{
	struct fixture *f = *state;
	struct rec r = {0};
	struct upstream_conn *first;
	char buf[4096];
	int fd;

	fd = exchange(f, &r, UPSTREAM_RETRYABLE, ok_resp);
	first = r.u;
	assert_int_equal(r.result, 0);
	assert_int_equal(r.status, 200);
	assert_true(r.written_at_head);
	assert_int_equal(evbuffer_get_length(r.body), 2);
	assert_int_equal(f->w.nidle, 1);
	/* the second request goes out on the same socket */
	assert_ptr_equal(send_req(f, &r, get_head, NULL, 0), first);
	assert_int_equal(f->w.nidle, 0);
	fixture_read_until(f, fd, "\r\n\r\n", buf, sizeof(buf), 0);
	assert_string_equal(buf, get_head);
	assert_int_equal(fixture_accept(f, 10), -1); /* no new connection */
	fixture_puts(f, fd, ok_resp);
	wait_done(f, &r);
	assert_int_equal(f->w.nidle, 1);
	close(fd);
	evbuffer_free(r.body);
}

/* The upstream answered before it read our whole body: never pooled. */
static void
test_no_pool_after_early_answer(void **state)
{
	struct fixture *f = *state;
	struct rec r = {0};
	struct evbuffer *body = evbuffer_new();
	size_t n = 16u << 20;
	char *big = calloc(1, n), buf[4096];
	int fd, small = 4096;

	assert_non_null(big);
	memset(big, 'a', n);
	evbuffer_add(body, big, n);
	free(big);
	assert_non_null(send_req(f, &r,
	                         "POST /p HTTP/1.1\r\nHost: x\r\n"
	                         "Content-Length: 16777216\r\n\r\n",
	                         body, 0));
	evbuffer_free(body);
	fd = fixture_accept(f, PUMP_ROUNDS);
	assert_true(fd >= 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	fixture_read_until(f, fd, "\r\n\r\n", buf, sizeof(buf), 0);
	fixture_puts(f, fd,
	             "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"
	             "Connection: keep-alive\r\n\r\n");
	wait_done(f, &r);
	assert_int_equal(r.result, 0);
	assert_false(r.written_at_head);
	assert_int_equal(f->w.nidle, 0); /* the rule of up_may_pool */
	close(fd);
	evbuffer_free(r.body);
}

/* Bytes after the end of the response, or Connection: close: the
   connection did not end cleanly and is closed. */
static void
test_no_pool_unclean_end(void **state)
{
	static const char *const answers[] = {
	    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK"
	    "\r\n\r\n",
	    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n"
	    "\r\nok",
	};
	struct fixture *f = *state;
	struct rec r = {0};

	for (size_t i = 0; i < sizeof(answers) / sizeof(answers[0]); i++) {
		close(exchange(f, &r, 0, answers[i]));
		assert_int_equal(r.result, 0);
		assert_int_equal(evbuffer_get_length(r.body), 2);
		assert_int_equal(f->w.nidle, 0);
	}
	evbuffer_free(r.body);
}

/* A chunked POST whose body comes later; returns the upstream's socket. */
static int
start_streamed(struct fixture *f, struct rec *r)
{
	int fd;

	send_req(f, r,
	         "POST /p HTTP/1.1\r\nHost: x\r\n"
	         "Transfer-Encoding: chunked\r\n\r\n",
	         NULL, STREAMED);
	fd = fixture_accept(f, PUMP_ROUNDS);
	assert_true(fd >= 0);
	return fd;
}

/* A streamed request answered before its last chunk is not pooled; one
   whose last chunk was written is. */
static void
test_streamed_request(void **state)
{
	struct fixture *f = *state;
	struct rec r = {0};
	struct evbuffer *chunk = evbuffer_new();
	char buf[4096];
	size_t have;
	int fd;

	fd = start_streamed(f, &r);
	evbuffer_add(chunk, "3\r\nabc\r\n", 8);
	upstream_write(r.u, chunk, false);
	have = fixture_read_until(f, fd, "abc\r\n", buf, sizeof(buf), 0);
	assert_non_null(memmem(buf, have, "3\r\nabc\r\n", 8));
	fixture_puts(f, fd, "HTTP/1.1 400 Bad\r\nContent-Length: 0\r\n\r\n");
	wait_done(f, &r);
	assert_int_equal(r.status, 400);
	assert_false(r.written_at_head);
	assert_int_equal(f->w.nidle, 0);
	close(fd);

	fd = start_streamed(f, &r);
	evbuffer_add(chunk, "3\r\nabc\r\n0\r\n\r\n", 13);
	upstream_write(r.u, chunk, true);
	fixture_read_until(f, fd, "0\r\n\r\n", buf, sizeof(buf), 0);
	for (int i = 0; i < 50; i++)
		fixture_pump(f);
	assert_true(upstream_request_written(r.u));
	fixture_puts(f, fd, ok_resp);
	wait_done(f, &r);
	assert_true(r.written_at_head);
	assert_int_equal(f->w.nidle, 1);
	close(fd);
	evbuffer_free(chunk);
	evbuffer_free(r.body);
}

/* A pooled connection the upstream closed: a retryable request is sent
   again, once, on a fresh socket; a non-retryable one fails with 502. */
static void
test_retry_dead_pooled(void **state)
{
	struct fixture *f = *state;
	struct rec r = {0};
	char buf[4096];
	int fd, fd2;

	fd = exchange(f, &r, 0, ok_resp);
	assert_int_equal(f->w.nidle, 1);
	close(fd); /* no pump: the pool has not noticed */
	send_req(f, &r, get_head, NULL, UPSTREAM_RETRYABLE);
	fd2 = fixture_accept(f, PUMP_ROUNDS);
	assert_true(fd2 >= 0);
	fixture_read_until(f, fd2, "\r\n\r\n", buf, sizeof(buf), 0);
	assert_string_equal(buf, get_head);
	fixture_puts(f, fd2, ok_resp);
	wait_done(f, &r);
	assert_int_equal(r.result, 0);
	assert_int_equal(evbuffer_get_length(r.body), 2);
	assert_int_equal(f->w.nidle, 1);

	close(fd2);
	send_req(f, &r, get_head, NULL, 0); /* not retryable */
	wait_done(f, &r);
	assert_int_equal(r.result, 502);
	assert_int_equal(r.heads, 0);
	assert_int_equal(f->w.nidle, 0);
	evbuffer_free(r.body);
}

/* Nothing listens: 502 through on_done, from the event loop. */
static void
test_connect_refused(void **state)
{
	struct fixture *f = *state;
	struct rec r = {0};

	close(f->up_listen);
	f->up_listen = socket(AF_INET, SOCK_STREAM, 0);
	send_req(f, &r, get_head, NULL, 0);
	assert_int_equal(r.done, 0); /* callbacks come later */
	wait_done(f, &r);
	assert_int_equal(r.result, 502);
	evbuffer_free(r.body);
}

/* Aborting from inside on_head: no on_done, freed after the callback. */
static void
test_abort_in_callback(void **state)
{
	struct fixture *f = *state;
	struct rec r = {0};
	char buf[4096];
	int fd;

	send_req(f, &r, get_head, NULL, 0);
	r.abort_in_head = true;
	fd = fixture_accept(f, PUMP_ROUNDS);
	fixture_read_until(f, fd, "\r\n\r\n", buf, sizeof(buf), 0);
	fixture_puts(f, fd, ok_resp);
	for (int i = 0; i < PUMP_ROUNDS && r.heads == 0; i++)
		fixture_pump(f);
	assert_int_equal(r.heads, 1);
	for (int i = 0; i < 20; i++)
		fixture_pump(f);
	assert_int_equal(r.done, 0);
	assert_int_equal(f->w.nidle, 0);
	/* the socket was closed: the fake upstream reads the end */
	assert_int_equal(fixture_read_until(f, fd, NULL, buf, sizeof(buf), 0),
	                 0);
	close(fd);
	evbuffer_free(r.body);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_pool_after_complete_exchange,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_pool_after_early_answer,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_no_pool_unclean_end, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_streamed_request, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_retry_dead_pooled, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_connect_refused, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_abort_in_callback, setup,
	                                    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
