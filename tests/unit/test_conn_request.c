/*
 * test_conn_request.c: per-request state from the worker's free list
 * (reused, bounded, freed), and the head kept past its input buffer:
 * every slice moves onto the copy.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../proxy/conn_request_internal.h"
#include "../../proxy/proxy_internal.h"

static void
test_free_list(void **state)
{
	static struct worker w;
	struct conn_request *rq[CONN_REQUEST_FREE_MAX + 2];
	struct conn_request *a;

	for (unsigned i = 0; i < CONN_REQUEST_FREE_MAX + 2; i++) {
		rq[i] = conn_request_get(&w);
		assert_non_null(rq[i]);
	}
	for (unsigned i = 0; i < CONN_REQUEST_FREE_MAX + 2; i++)
		conn_request_put(&w, rq[i]);
	assert_int_equal(w.nrq_free, CONN_REQUEST_FREE_MAX); /* bounded */
	a = conn_request_get(&w);
	assert_ptr_equal(a, rq[CONN_REQUEST_FREE_MAX - 1]); /* last in */
	assert_false(a->insp.active);
	assert_int_equal(w.nrq_free, CONN_REQUEST_FREE_MAX - 1);
	conn_request_put(&w, a);
	conn_request_put(&w, NULL); /* nothing */
	conn_request_cache_free(&w);
	assert_int_equal(w.nrq_free, 0);
	assert_null(w.rq_free);
}

static void
test_keep_head(void **state)
{
	static const char raw[] = "GET /a/b?q=1 HTTP/1.1\r\nHost: h\r\n"
	                          "X-One: 1\r\n\r\n";
	static const struct http1_limits lim = {CG_DEFAULT_MAX_HEADER_BYTES,
	                                        CG_DEFAULT_MAX_HEADER_COUNT};
	static struct worker w;
	struct conn_request *rq = conn_request_get(&w);
	char *in = strdup(raw);
	const char *reason = NULL;
	int status = 0;

	assert_non_null(rq);
	assert_int_equal(http1_parse_request(in, strlen(in), &lim, &rq->req,
	                                     &status, &reason),
	                 1);
	assert_int_equal(conn_request_keep_head(rq, in), 0);
	memset(in, 'x', strlen(in)); /* the input buffer is gone */
	free(in);
	assert_true(cg_slice_ieq(rq->req.method, "GET"));
	assert_true(cg_slice_ieq(rq->req.path, "/a/b"));
	assert_true(cg_slice_ieq(rq->req.query, "q=1"));
	assert_true(cg_slice_ieq(rq->req.host, "h"));
	assert_int_equal(rq->req.nheaders, 2);
	assert_true(cg_slice_ieq(rq->req.headers[1].name, "X-One"));
	assert_true(cg_slice_ieq(rq->req.headers[1].value, "1"));
	assert_true(rq->req.method.ptr >= rq->head &&
	            rq->req.method.ptr < rq->head + rq->head_cap);
	conn_request_put(&w, rq);
	conn_request_cache_free(&w);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_free_list),
	    cmocka_unit_test(test_keep_head),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
