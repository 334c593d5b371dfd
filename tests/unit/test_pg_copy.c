/* test_pg_copy.c: the binary COPY parser (proxy/pg_copy.c) on hand-built
 * streams (signature, header, tuples, trailer): the rows come out the same
 * in one piece and cut at every byte; a stream that ends early, a bad
 * signature, OIDs, a wrong field count, a field longer than allowed and
 * bytes after the trailer are refused; a bad row is noted by seq. */
/* cmocka.h needs these three before it */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
/* clang-format on */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../proxy/pg_copy_internal.h"
#include "consentgate/consent.h"
#include "consentgate/consent_live.h"

#define PG_EPOCH 946684800 /* s: 2000-01-01 UTC, PostgreSQL's time 0 */
#define T0 1740830400      /* s: 2025-03-01T12:00:00Z */

struct buf {
	uint8_t b[4096];
	size_t n;
};

static void
put_bytes(struct buf *w, const void *p, size_t n)
{
	assert_true(w->n + n <= sizeof(w->b));
	memcpy(w->b + w->n, p, n);
	w->n += n;
}

static void
put_be(struct buf *w, uint64_t v, int bytes)
{
	for (int i = bytes - 1; i >= 0; i--) {
		uint8_t c = (uint8_t)(v >> (8 * i));

		put_bytes(w, &c, 1);
	}
}

/* The signature and a header with flags and an extension of ext bytes. */
static void
put_header(struct buf *w, uint32_t flags, uint32_t ext)
{
	put_bytes(w, "PGCOPY\n\377\r\n", 11);
	put_be(w, flags, 4);
	put_be(w, ext, 4);
	for (uint32_t i = 0; i < ext; i++)
		put_be(w, 0xee, 1);
}

/* A text field; NULL: the field is NULL (length -1). */
static void
put_text(struct buf *w, const char *s)
{
	if (s == NULL) {
		put_be(w, 0xffffffff, 4);
		return;
	}
	put_be(w, strlen(s), 4);
	put_bytes(w, s, strlen(s));
}

static void
put_int8(struct buf *w, uint64_t v)
{
	put_be(w, 8, 4);
	put_be(w, v, 8);
}

/* One tuple of PG_COPY_COLS: updated_at as unix seconds. */
static void
put_row(struct buf *w, const char *subject, const char *status,
        const char *juris, int64_t at, const char *evidence, uint64_t seq)
{
	put_be(w, 7, 2);
	put_text(w, subject);
	put_text(w, "ai-training");
	put_text(w, status);
	put_text(w, juris);
	put_int8(w, (uint64_t)((at - PG_EPOCH) * 1000000));
	put_text(w, evidence);
	put_int8(w, seq);
}

static void
put_trailer(struct buf *w)
{
	put_be(w, 0xffff, 2);
}

/* Three rows of two people, the last one a change of the first's. */
static void
sample(struct buf *w)
{
	w->n = 0;
	put_header(w, 0, 4);
	put_row(w, "1001", "granted", "DE", T0, "ev1", 1);
	put_row(w, "jürgen", "denied", "FR", T0 + 1, NULL, 2);
	put_row(w, "1001", "withdrawn", "DE", T0 + 2, "ev3", 3);
	put_trailer(w);
}

static void
begin(struct pg_copy *st)
{
	pg_copy_init(st, NULL, "db");
	st->rows = consent_live_rows_new(4);
	assert_non_null(st->rows);
}

/* Feed w in the pieces cut at cuts[0..ncuts) (ascending); the last
 * feed's result. */
static int
feed_cut(struct pg_copy *st, const struct buf *w, const size_t *cuts,
         size_t ncuts)
{
	size_t at = 0;
	int rc = 0;

	for (size_t i = 0; i <= ncuts && rc == 0; i++) {
		size_t end = i < ncuts ? cuts[i] : w->n;

		rc = pg_copy_feed(st, (const char *)w->b + at, end - at);
		at = end;
	}
	return rc;
}

/* st holds sample()'s rows, whole: build the table and look them up. */
static void
assert_sample(struct pg_copy *st)
{
	struct consent_lookup_result res;
	struct consent_table *t;
	int pid;

	assert_true(st->header);
	assert_true(st->trailer);
	assert_int_equal(st->lines, 3);
	assert_int_equal(st->errs.count, 0);
	assert_int_equal(st->carry_len, 0);
	t = consent_live_rows_build(st->rows, NULL, "db", 100);
	st->rows = NULL;
	assert_non_null(t);
	assert_int_equal(consent_people(t), 2);
	pid = consent_purpose_id(t, "ai-training", 11);
	assert_true(pid >= 0);
	consent_lookup(t, "1001", 4, pid, &res);
	assert_true(res.known);
	assert_int_equal(res.status, CONSENT_STATUS_WITHDRAWN);
	assert_int_equal(res.updated_at, T0 + 2);
	assert_int_equal(res.evidence.len, 3);
	assert_memory_equal(res.evidence.ptr, "ev3", 3);
	assert_string_equal(res.jurisdiction, "DE");
	consent_lookup(t, "jürgen", strlen("jürgen"), pid, &res);
	assert_true(res.known);
	assert_int_equal(res.status, CONSENT_STATUS_DENIED);
	assert_int_equal(res.updated_at, T0 + 1);
	assert_int_equal(res.evidence.len, 0); /* NULL: the CSV's empty */
	consent_lookup(t, "1002", 4, pid, &res);
	assert_false(res.known);
	consent_free(t);
}

static void
test_rows_in_one_piece(void **state)
{
	struct buf w;
	struct pg_copy st;

	sample(&w);
	begin(&st);
	assert_int_equal(pg_copy_feed(&st, (const char *)w.b, w.n), 0);
	assert_sample(&st);
	pg_copy_reset(&st);
}

/* Cut once at every offset, and into single bytes: the same rows. */
static void
test_rows_cut_at_every_byte(void **state)
{
	struct buf w;
	struct pg_copy st;
	size_t cuts[sizeof(w.b)];

	sample(&w);
	for (size_t k = 0; k <= w.n; k++) {
		begin(&st);
		assert_int_equal(feed_cut(&st, &w, &k, 1), 0);
		assert_sample(&st);
		pg_copy_reset(&st);
	}
	for (size_t k = 0; k < w.n; k++)
		cuts[k] = k + 1;
	begin(&st);
	assert_int_equal(feed_cut(&st, &w, cuts, w.n - 1), 0);
	assert_sample(&st);
	pg_copy_reset(&st);
}

/* Every proper prefix is accepted as far as it goes but never complete:
 * the caller refuses a COPY that ends without its trailer. */
static void
test_truncated_stream_is_never_complete(void **state)
{
	struct buf w;
	struct pg_copy st;

	sample(&w);
	for (size_t k = 0; k < w.n; k++) {
		begin(&st);
		assert_int_equal(pg_copy_feed(&st, (const char *)w.b, k), 0);
		assert_false(st.trailer);
		assert_true(st.lines < 3 || k >= w.n - 2);
		pg_copy_reset(&st);
	}
}

/* Refused with -1: whole, and cut at every byte (the refusal comes once
 * the bad part has arrived, never a row before it is lost). */
static void
assert_refused(const struct buf *w, uint64_t rows_before)
{
	struct pg_copy st;

	begin(&st);
	assert_int_equal(pg_copy_feed(&st, (const char *)w->b, w->n), -1);
	assert_int_equal(st.lines, rows_before);
	pg_copy_reset(&st);
	for (size_t k = 0; k <= w->n; k++) {
		begin(&st);
		assert_int_equal(feed_cut(&st, w, &k, 1), -1);
		pg_copy_reset(&st);
	}
}

static void
test_bad_signature_refused(void **state)
{
	struct buf w;

	for (size_t i = 0; i < 11; i++) {
		sample(&w);
		w.b[i] ^= 0x20;
		assert_refused(&w, 0);
	}
	/* OIDs in each row (flag bit 16): never asked for */
	w.n = 0;
	put_header(&w, 0x10000, 0);
	put_trailer(&w);
	assert_refused(&w, 0);
	/* a header extension longer than INT32_MAX */
	w.n = 0;
	put_header(&w, 0, 0);
	w.b[15] = 0x80;
	put_trailer(&w);
	assert_refused(&w, 0);
}

static void
test_wrong_field_count_refused(void **state)
{
	static const uint16_t counts[] = {0, 1, 6, 8, 0x0107, 0xfffe};
	struct buf w;

	for (size_t i = 0; i < sizeof(counts) / sizeof(*counts); i++) {
		w.n = 0;
		put_header(&w, 0, 0);
		put_row(&w, "1001", "granted", "DE", T0, "ev1", 1);
		put_be(&w, counts[i], 2);
		for (int k = 0; k < counts[i] && k < 8; k++)
			put_text(&w, "x");
		put_trailer(&w);
		assert_refused(&w, 1);
	}
}

static void
test_field_longer_than_allowed_refused(void **state)
{
	struct buf w;

	/* a text of more than INT32_MAX bytes */
	w.n = 0;
	put_header(&w, 0, 0);
	put_row(&w, "1001", "granted", "DE", T0, "ev1", 1);
	put_be(&w, 7, 2);
	put_be(&w, 0x80000000u, 4);
	assert_refused(&w, 1);
	/* updated_at and seq are 8 bytes, never more or fewer */
	for (int col = 4; col <= 6; col += 2) {
		for (uint32_t len = 0; len <= 16; len += 4) {
			if (len == 8)
				continue;
			w.n = 0;
			put_header(&w, 0, 0);
			put_be(&w, 7, 2);
			for (int k = 0; k < 7; k++) {
				uint32_t n = k == col           ? len
				             : k == 4 || k == 6 ? 8
				                                : 2;

				put_be(&w, n, 4);
				for (uint32_t j = 0; j < n; j++)
					put_be(&w, k == 6 ? 0 : 'a', 1);
			}
			put_trailer(&w);
			assert_refused(&w, 0);
		}
	}
	/* a NULL seq */
	w.n = 0;
	put_header(&w, 0, 0);
	put_be(&w, 7, 2);
	for (int k = 0; k < 6; k++)
		put_text(&w, k == 4 ? NULL : "x");
	put_text(&w, NULL);
	put_trailer(&w);
	assert_refused(&w, 0);
}

static void
test_bytes_after_the_trailer_refused(void **state)
{
	struct buf w;

	sample(&w);
	put_be(&w, 0, 1);
	assert_refused(&w, 3);
}

/* A row the CSV import would refuse is noted by seq; the stream goes on. */
static void
test_bad_row_noted_by_seq(void **state)
{
	struct buf w;
	struct pg_copy st;

	w.n = 0;
	put_header(&w, 0, 0);
	put_row(&w, "1001", "granted", "DE", T0, "ev1", 1);
	put_row(&w, "1002", "maybe", "DE", T0, "ev2", 2);
	put_row(&w, "1003", "granted", "DE", T0, "ev3", 3);
	put_trailer(&w);
	begin(&st);
	assert_int_equal(pg_copy_feed(&st, (const char *)w.b, w.n), 0);
	assert_true(st.trailer);
	assert_int_equal(st.lines, 3);
	assert_int_equal(st.errs.count, 1);
	assert_non_null(strstr(st.errs.msgs[0], "seq 2"));
	assert_non_null(strstr(st.errs.msgs[0], "status"));
	pg_copy_reset(&st);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rows_in_one_piece),
	    cmocka_unit_test(test_rows_cut_at_every_byte),
	    cmocka_unit_test(test_truncated_stream_is_never_complete),
	    cmocka_unit_test(test_bad_signature_refused),
	    cmocka_unit_test(test_wrong_field_count_refused),
	    cmocka_unit_test(test_field_longer_than_allowed_refused),
	    cmocka_unit_test(test_bytes_after_the_trailer_refused),
	    cmocka_unit_test(test_bad_row_noted_by_seq),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
