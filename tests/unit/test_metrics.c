/*
 * test_metrics.c: the labelled counters and histograms of /metrics: a
 * request's records tallied by rule pointer (and "(other)" past
 * METRICS_TALLY), label slots kept by name for the life of the process
 * (and "(other)" once the table is full), status codes by number with an
 * "other" bucket, bucket bounds inclusive, and every worker summed at
 * render time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../proxy/metrics.c"
#include "unit_util.h"

static void
test_tally(void **state)
{
	struct metrics_tally t = {0};
	const char *a = "allow-a", *b = "deny-b";
	char many[METRICS_TALLY + 2][8];

	(void)state;
	metrics_tally(&t, a, true);
	metrics_tally(&t, b, false);
	metrics_tally(&t, a, true);
	assert_int_equal(t.n, 2);
	assert_ptr_equal(t.e[0].rule, a);
	assert_int_equal(t.e[0].kept, 2);
	assert_int_equal(t.e[1].dropped, 1);
	/* more distinct rules than slots: the rest under "(other)" */
	memset(&t, 0, sizeof(t));
	for (int i = 0; i < METRICS_TALLY + 2; i++) {
		snprintf(many[i], sizeof(many[i]), "r%d", i);
		metrics_tally(&t, many[i], i % 2 == 0);
	}
	assert_int_equal(t.n, METRICS_TALLY);
	assert_ptr_equal(t.e[METRICS_TALLY - 2].rule, many[METRICS_TALLY - 2]);
	assert_int_equal(
	    t.e[METRICS_TALLY - 2].kept + t.e[METRICS_TALLY - 2].dropped, 1);
	assert_string_equal(t.e[METRICS_TALLY - 1].rule, "(other)");
	assert_int_equal(
	    t.e[METRICS_TALLY - 1].kept + t.e[METRICS_TALLY - 1].dropped, 3);
}

static void
test_codes(void **state)
{
	(void)state;
	assert_int_equal(codes[code_slot(200)], 200);
	assert_int_equal(codes[code_slot(0)], 0);
	assert_int_equal(codes[code_slot(505)], 505);
	assert_int_equal(codes[code_slot(415)], 415);
	assert_int_equal(code_slot(418), METRICS_CODES - 1);
	assert_int_equal(code_slot(599), METRICS_CODES - 1);
	assert_int_equal(code_slot(-1), METRICS_CODES - 1);
}

static void
test_label_slots(void **state)
{
	char name[32];
	unsigned a, b;

	(void)state;
	a = label_slot(&rules, "ingest", "default-allow");
	b = label_slot(&rules, "ingest", "opted-out");
	assert_true(a > 0 && b > 0 && a != b);
	/* by name, not by pointer: another copy finds the same slot */
	strcpy(name, "default-allow");
	assert_int_equal(label_slot(&rules, "ingest", name), a);
	/* the split between route and rule is part of the key */
	assert_int_not_equal(label_slot(&rules, "ingestd", "efault-allow"), a);
	/* full: "(other)", and the slots taken stay */
	for (unsigned i = 0; i < METRICS_RULES; i++) {
		snprintf(name, sizeof(name), "rule-%u", i);
		label_slot(&rules, "r", name);
	}
	assert_int_equal(atomic_load(&rules.n), METRICS_RULES);
	assert_int_equal(label_slot(&rules, "r", "one-more"), 0);
	assert_int_equal(label_slot(&rules, "ingest", "opted-out"), b);
}

static void
test_buckets_and_sums(void **state)
{
	struct worker *w = calloc(2, sizeof(*w));
	struct evbuffer *out = evbuffer_new();
	struct metrics_tally t = {0};
	char *s;

	(void)state;
	assert_non_null(w);
	assert_non_null(out);
	/* le is inclusive: 100 us is in the first bucket */
	metrics_request_end(&w[0], "ingest", 200, 100000, -1);
	metrics_request_end(&w[1], "ingest", 200, 100001, 2000000);
	metrics_request_end(&w[1], NULL, 404, 11000000000, 0);
	metrics_request_end(&w[0], "ingest", 418, -1, -1);
	metrics_tally(&t, "default-allow", true);
	metrics_tally(&t, "opted-out", false);
	metrics_decided(&w[1], "ingest", &t, 5000);
	render_histograms(w, 2, out);
	render_by_route(w, 2, out);
	render_by_rule(w, 2, out);
	s = buf_text(out);
	assert_non_null(strstr(
	    s, "consentgate_request_duration_seconds_bucket{le=\"0.0001\"} 1\n"
	       "consentgate_request_duration_seconds_bucket{le=\"0.00025\"} "
	       "2\n"));
	assert_non_null(strstr(
	    s, "consentgate_request_duration_seconds_bucket{le=\"10\"} 2\n"
	       "consentgate_request_duration_seconds_bucket{le=\"+Inf\"} 3\n"
	       "consentgate_request_duration_seconds_sum 11.000200001\n"
	       "consentgate_request_duration_seconds_count 3\n"));
	/* no upstream time (-1) and no exchange that ended (0): not seen */
	assert_non_null(
	    strstr(s, "consentgate_upstream_duration_seconds_count 1\n"));
	assert_non_null(
	    strstr(s, "consentgate_decision_duration_seconds_count 1\n"));
	assert_non_null(strstr(s, "consentgate_http_requests_total{route="
	                          "\"ingest\",code=\"200\"} 2\n"));
	assert_non_null(strstr(s, "consentgate_http_requests_total{route="
	                          "\"ingest\",code=\"other\"} 1\n"));
	assert_non_null(strstr(s, "consentgate_http_requests_total{route="
	                          "\"\",code=\"404\"} 1\n"));
	assert_non_null(
	    strstr(s, "consentgate_records_by_rule_total{route=\"ingest\","
	              "rule=\"opted-out\",decision=\"dropped\"} 1\n"));
	/* an unused "(other)" series is not shown */
	assert_null(strstr(s, "route=\"(other)\""));
	free(s);
	evbuffer_free(out);
	free(w);
}

static void
test_label_escapes(void **state)
{
	struct evbuffer *out = evbuffer_new();
	char *s;

	(void)state;
	add_label(out, "a\"b\\c\nd");
	s = buf_text(out);
	assert_string_equal(s, "a\\\"b\\\\c\\nd");
	free(s);
	evbuffer_free(out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_tally),
	    cmocka_unit_test(test_codes),
	    cmocka_unit_test(test_buckets_and_sums),
	    cmocka_unit_test(test_label_slots),
	    cmocka_unit_test(test_label_escapes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
