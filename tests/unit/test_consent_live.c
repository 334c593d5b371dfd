/* test_consent_live.c: the live consent table (consent_live.c): an image
 * plus changes decides every lookup as the CSV import of the whole history
 * does, before and after compaction; bad changes are refused whole. */
/* cmocka.h needs these three before it */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
/* clang-format on */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../policy/consent_internal.h" /* the overlay's filter */
#include "consentgate/consent_live.h"

#define HDR "subject,purpose,status,jurisdiction,updated_at,evidence\n"
#define NROWS 600    /* rows of a generated history */
#define NSUBJECTS 60 /* people it names: many rows each */

struct row {
	char subject[16], purpose[16], status[16], juris[3], at[32], ev[16];
};

static struct row hist[NROWS];

static const char *const purposes[] = {"ai-training", "analytics", "ads.v2"};
static const char *const statuses[] = {"granted", "denied", "withdrawn"};
static const char *const countries[] = {"DE", "FR", "US", "GB"};

/* Few distinct seconds, so equal updated_at (ties) are common. */
static void
gen_history(unsigned seed)
{
	srand(seed);
	for (int i = 0; i < NROWS; i++) {
		struct row *r = &hist[i];

		snprintf(r->subject, sizeof(r->subject), "s%d",
		         rand() % NSUBJECTS);
		/* the third purpose appears only late: new in the overlay */
		snprintf(r->purpose, sizeof(r->purpose), "%s",
		         purposes[rand() % (i < NROWS / 2 ? 2 : 3)]);
		snprintf(r->status, sizeof(r->status), "%s",
		         statuses[rand() % 3]);
		snprintf(r->juris, sizeof(r->juris), "%s",
		         countries[rand() % 4]);
		snprintf(r->at, sizeof(r->at), "2025-01-01T00:00:%02dZ",
		         rand() % 20);
		snprintf(r->ev, sizeof(r->ev), rand() % 5 ? "ev-%d" : "", i);
	}
}

/* The CSV import of rows [from, to). */
static struct consent_table *
import_rows(int from, int to)
{
	size_t cap = (size_t)(to - from + 1) * 96 + sizeof(HDR), len;
	char *buf = malloc(cap);
	struct cg_errors errs;
	struct consent_table *t;

	assert_non_null(buf);
	len = (size_t)snprintf(buf, cap, "%s", HDR);
	for (int i = from; i < to; i++)
		len += (size_t)snprintf(buf + len, cap - len,
		                        "%s,%s,%s,%s,%s,%s\n", hist[i].subject,
		                        hist[i].purpose, hist[i].status,
		                        hist[i].juris, hist[i].at, hist[i].ev);
	cg_errors_init(&errs);
	t = consent_import_csv("h.csv", buf, len, &errs);
	for (unsigned i = 0; i < errs.count; i++)
		print_error("%s\n", errs.msgs[i]);
	assert_non_null(t);
	cg_errors_reset(&errs);
	free(buf); /* a table owns its image, not the CSV text */
	return t;
}

static struct cg_slice
sl(const char *s)
{
	return (struct cg_slice){s, strlen(s)};
}

static int
apply_row(struct consent_live *l, int i, const char **why)
{
	struct consent_change c = {
	    (uint64_t)i + 1,    sl(hist[i].subject), sl(hist[i].purpose),
	    sl(hist[i].status), sl(hist[i].juris),   sl(hist[i].at),
	    sl(hist[i].ev),
	};
	return consent_live_apply(l, &c, why);
}

static void
apply_rows(struct consent_live *l, int from, int to)
{
	const char *why = NULL;

	for (int i = from; i < to; i++)
		if (apply_row(l, i, &why) != 0)
			fail_msg("row %d refused: %s", i, why);
}

/* a and b answer every subject and purpose (by name) alike, one by one
 * and batched. */
static void
assert_same(const struct consent_table *a, const struct consent_table *b)
{
	struct consent_lookup_result x, y, many[NSUBJECTS + 1];
	struct cg_slice subj[NSUBJECTS + 1];
	char names[NSUBJECTS + 1][16];

	for (int s = 0; s <= NSUBJECTS; s++) { /* s60: never in a history */
		snprintf(names[s], sizeof(names[s]), "s%d", s);
		subj[s] = sl(names[s]);
	}
	for (int p = -1; p < 3; p++) {
		const char *pn = p < 0 ? "" : purposes[p];
		int pa = consent_purpose_id(a, pn, strlen(pn));
		int pb = consent_purpose_id(b, pn, strlen(pn));

		consent_lookup_many(b, subj, NSUBJECTS + 1, pb, many);
		for (int s = 0; s <= NSUBJECTS; s++) {
			consent_lookup(a, subj[s].ptr, subj[s].len, pa, &x);
			consent_lookup(b, subj[s].ptr, subj[s].len, pb, &y);
			if (x.known != y.known || x.status != y.status ||
			    strcmp(x.jurisdiction, y.jurisdiction) != 0 ||
			    x.updated_at != y.updated_at ||
			    x.evidence.len != y.evidence.len ||
			    memcmp(x.evidence.ptr, y.evidence.ptr,
			           x.evidence.len) != 0)
				fail_msg("%s/%s: %d %s %s %lld '%.*s' vs %d %s "
				         "%s %lld '%.*s'",
				         names[s], pn, x.known, x.jurisdiction,
				         consent_status_name(x.status),
				         (long long)x.updated_at,
				         (int)x.evidence.len, x.evidence.ptr,
				         y.known, y.jurisdiction,
				         consent_status_name(y.status),
				         (long long)y.updated_at,
				         (int)y.evidence.len, y.evidence.ptr);
			assert_int_equal(many[s].known, y.known);
			assert_int_equal(many[s].status, y.status);
			assert_string_equal(many[s].jurisdiction,
			                    y.jurisdiction);
			assert_int_equal(many[s].evidence.len, y.evidence.len);
		}
	}
	assert_int_equal(consent_people(a), consent_people(b));
}

/* An image of the first k rows plus the rest as changes decides as the
 * import of all rows, for many splits and histories. */
static void
test_image_plus_changes_is_the_whole_history(void **state)
{
	for (unsigned seed = 1; seed <= 8; seed++) {
		gen_history(seed);
		struct consent_table *all = import_rows(0, NROWS);
		int splits[] = {0,         1,    NROWS / 3, NROWS / 2 + 7,
		                NROWS - 1, NROWS};

		for (size_t k = 0; k < sizeof(splits) / sizeof(*splits); k++) {
			struct consent_live *l =
			    consent_live_new(import_rows(0, splits[k]),
			                     (uint64_t)splits[k], 100);
			assert_non_null(l);
			apply_rows(l, splits[k], NROWS);
			assert_int_equal(consent_live_seq(l), NROWS);
			struct consent_table *v = consent_live_view(l, "live");
			assert_non_null(v);
			assert_int_equal(consent_version(v), NROWS);
			assert_same(all, v);
			/* a view outlives its source */
			consent_live_free(l);
			assert_same(all, v);
			consent_free(v);
		}
		consent_free(all);
	}
}

/* Compaction while changes go on: the job's image holds the changes up
 * to its seq, the overlay keeps the later ones, and views before, during
 * and after agree with the import. */
static void
test_compaction_keeps_later_changes(void **state)
{
	for (unsigned seed = 11; seed <= 16; seed++) {
		gen_history(seed);
		struct consent_table *all = import_rows(0, NROWS);
		struct consent_table *half = import_rows(0, NROWS / 2);
		struct consent_live *l =
		    consent_live_new(import_rows(0, NROWS / 5), NROWS / 5, 100);

		apply_rows(l, NROWS / 5, NROWS / 2);
		struct consent_live_job *j = consent_live_compact_begin(l);
		assert_non_null(j);
		assert_int_equal(consent_live_job_seq(j), NROWS / 2);
		apply_rows(l, NROWS / 2, NROWS);
		struct consent_table *img = consent_live_compact_run(j);
		assert_non_null(img);
		assert_int_equal(consent_version(img), NROWS / 2);
		assert_same(half, img); /* the image alone: up to the job */
		struct consent_table *before = consent_live_view(l, "live");
		assert_int_equal(consent_live_compact_end(l, j, img), 0);
		struct consent_table *after = consent_live_view(l, "live");
		assert_same(all, before);
		assert_same(all, after);
		assert_true(consent_live_pending(l) <= NSUBJECTS);
		/* and a second round, with nothing after the job */
		j = consent_live_compact_begin(l);
		img = consent_live_compact_run(j);
		assert_int_equal(consent_live_compact_end(l, j, img), 0);
		assert_int_equal(consent_live_pending(l), 0);
		struct consent_table *last = consent_live_view(l, "live");
		assert_same(all, last);
		consent_free(before);
		consent_free(after);
		consent_free(last);
		consent_free(half);
		consent_free(all);
		consent_live_free(l);
	}
}

/* A bad change is refused with the import's message, and nothing of it
 * is applied; the seq must grow. */
static void
test_bad_change_refused_whole(void **state)
{
	struct consent_live *l;
	struct consent_table *v;
	struct consent_lookup_result r;
	const char *why = NULL;
	struct consent_change c = {5,
	                           sl("1001"),
	                           sl("ai-training"),
	                           sl("granted"),
	                           sl("DE"),
	                           sl("2025-01-01T00:00:00Z"),
	                           sl("e1")};

	gen_history(1);
	l = consent_live_new(import_rows(0, 0), 4, 100);
	assert_non_null(l);
	c.status = sl("revoked");
	assert_int_equal(consent_live_apply(l, &c, &why), -1);
	assert_string_equal(why, "status must be granted, denied or withdrawn");
	c.status = sl("granted");
	c.jurisdiction = sl("de");
	assert_int_equal(consent_live_apply(l, &c, &why), -1);
	assert_non_null(strstr(why, "jurisdiction"));
	c.jurisdiction = sl("DE");
	c.updated_at = sl("yesterday");
	assert_int_equal(consent_live_apply(l, &c, &why), -1);
	assert_non_null(strstr(why, "RFC 3339"));
	c.updated_at = sl("2025-01-01T00:00:00Z");
	c.purpose = sl("ai training");
	assert_int_equal(consent_live_apply(l, &c, &why), -1);
	c.purpose = sl("ai-training");
	c.seq = 4; /* not above the last applied */
	assert_int_equal(consent_live_apply(l, &c, &why), -1);
	assert_int_equal(consent_live_seq(l), 4);
	assert_int_equal(consent_live_pending(l), 0);
	c.seq = 9;
	assert_int_equal(consent_live_apply(l, &c, &why), 0);
	v = consent_live_view(l, "live");
	consent_lookup(v, "1001", 4, consent_purpose_id(v, "ai-training", 11),
	               &r);
	assert_true(r.known);
	assert_int_equal(r.status, CONSENT_STATUS_GRANTED);
	assert_int_equal(consent_version(v), 9);
	assert_int_equal(consent_people(v), 1);
	consent_free(v);
	consent_live_free(l);
}

/* Rows [from, to) into a run of the initial load, every other one with
 * its time given as seconds instead of text. */
static struct consent_live_rows *
load_run(int from, int to)
{
	struct consent_live_rows *r = consent_live_rows_new(0);
	const char *why = NULL;

	assert_non_null(r);
	for (int i = from; i < to; i++) {
		struct consent_change c = {
		    (uint64_t)i + 1,     sl(hist[i].subject),
		    sl(hist[i].purpose), sl(hist[i].status),
		    sl(hist[i].juris),   sl(hist[i].at),
		    sl(hist[i].ev),
		};
		/* 2025-01-01T00:00:SSZ */
		int64_t sec = INT64_C(1735689600) + atoi(hist[i].at + 17);

		if (consent_live_rows_add(r, &c, i % 2 == 0, sec, 0, &why) != 0)
			fail_msg("row %d refused: %s", i, why);
	}
	return r;
}

/* The initial load of a history in two runs, split anywhere, builds the
 * table the CSV import of the whole history builds. */
static void
test_load_in_two_runs_is_the_csv_import(void **state)
{
	for (unsigned seed = 21; seed <= 24; seed++) {
		gen_history(seed);
		struct consent_table *all = import_rows(0, NROWS);

		for (int k = 0; k <= NROWS;
		     k += k < 5 || k > NROWS - 5 ? 1 : 37) {
			struct consent_table *t = consent_live_rows_build(
			    load_run(0, k), k % 3 ? load_run(k, NROWS) : NULL,
			    "db", 100);

			if (k % 3 == 0) { /* one run: the first k rows */
				struct consent_table *part = import_rows(0, k);
				assert_same(part, t);
				consent_free(part);
			} else {
				assert_same(all, t);
			}
			assert_string_equal(consent_source(t), "db");
			consent_free(t);
		}
		consent_free(all);
	}
}

/* A run refuses what the CSV import refuses, a time as seconds where its
 * text would be refused, and seqs out of order. */
static void
test_load_refuses_what_the_import_refuses(void **state)
{
	struct consent_live_rows *r = consent_live_rows_new(4), *r2;
	struct consent_lookup_result res;
	struct consent_table *t;
	const char *why = NULL;
	struct consent_change c = {5,
	                           sl("1001"),
	                           sl("ai-training"),
	                           sl("revoked"),
	                           sl("DE"),
	                           sl("2025-01-01T00:00:00Z"),
	                           sl("e1")};

	assert_int_equal(consent_live_rows_add(r, &c, false, 0, 0, &why), -1);
	assert_string_equal(why, "status must be granted, denied or withdrawn");
	c.status = sl("withdrawn");
	/* 10000-01-01, 0000-12-31T23:59:59 (PostgreSQL's 1 BC), a second's
	 * worth of nanoseconds: no RFC 3339 text of its names them */
	int64_t bad[][2] = {{INT64_C(253402300800), 0},
	                    {INT64_C(-62135596801), 0},
	                    {0, 1000000000}};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		assert_int_equal(consent_live_rows_add(r, &c, true, bad[i][0],
		                                       (uint32_t)bad[i][1],
		                                       &why),
		                 -1);
		assert_non_null(strstr(why, "RFC 3339"));
	}
	/* the text is not read when the time is given */
	c.updated_at = sl("yesterday");
	assert_int_equal(
	    consent_live_rows_add(r, &c, true, INT64_C(253402300799), 5, &why),
	    0);
	c.seq = 5; /* not above the last kept */
	assert_int_equal(consent_live_rows_add(r, &c, true, 0, 0, &why), -1);
	c.seq = 6;
	c.subject = sl("1002");
	assert_int_equal(
	    consent_live_rows_add(r, &c, true, INT64_C(-62135596800), 0, &why),
	    0);
	/* a second run that starts before the first ends is not one history */
	r2 = consent_live_rows_new(0);
	c.seq = 3;
	assert_int_equal(consent_live_rows_add(r2, &c, false, 0, 0, &why), -1);
	c.updated_at = sl("2025-01-01T00:00:00Z");
	assert_int_equal(consent_live_rows_add(r2, &c, false, 0, 0, &why), 0);
	assert_null(consent_live_rows_build(r, r2, "db", 100));
	/* and what was kept decides */
	r = consent_live_rows_new(0);
	c.seq = 5;
	c.subject = sl("1001");
	assert_int_equal(consent_live_rows_add(
	                     r, &c, true, INT64_C(253402300799), 5000, &why),
	                 0);
	t = consent_live_rows_build(r, NULL, "db", 100);
	assert_non_null(t);
	consent_lookup(t, "1001", 4, consent_purpose_id(t, "ai-training", 11),
	               &res);
	assert_true(res.known);
	assert_int_equal(res.status, CONSENT_STATUS_WITHDRAWN);
	assert_int_equal(res.updated_at, INT64_C(253402300799));
	assert_int_equal(consent_people(t), 1);
	consent_free(t);
}

#define NPEOPLE 4000 /* the image of the overlay tests */

static enum consent_status
status_of(const struct consent_table *t, int person)
{
	struct consent_lookup_result r;
	char s[16];
	int n = snprintf(s, sizeof(s), "p%d", person);

	consent_lookup(t, s, (size_t)n,
	               consent_purpose_id(t, "ai-training", 11), &r);
	return r.known ? r.status : CONSENT_STATUS_NONE;
}

static void
change(struct consent_live *l, uint64_t seq, int person, const char *status,
       const char *at)
{
	char s[16];
	const char *why = NULL;
	int n = snprintf(s, sizeof(s), "p%d", person);
	struct consent_change c = {seq,
	                           (struct cg_slice){s, (size_t)n},
	                           sl("ai-training"),
	                           sl(status),
	                           sl("DE"),
	                           sl(at),
	                           sl("ev")};

	if (consent_live_apply(l, &c, &why) != 0)
		fail_msg("p%d: %s", person, why);
}

/* The overlay decides before the image: a withdrawal of a granted person
 * always wins, a later grant wins over it and an older one does not; its
 * filter never misses a changed person (every one of them checked) and
 * lets few others through; an empty overlay has no filter to consult. */
static void
test_overlay_wins_and_its_filter_never_misses(void **state)
{
	size_t cap = (size_t)NPEOPLE * 64 + sizeof(HDR), len;
	char *buf = malloc(cap);
	struct cg_errors errs;
	unsigned fp = 0, others = 0;

	len = (size_t)snprintf(buf, cap, "%s", HDR);
	for (int i = 0; i < NPEOPLE; i++)
		len += (size_t)snprintf(buf + len, cap - len,
		                        "p%d,ai-training,granted,DE,"
		                        "2025-01-01T00:00:00Z,g\n",
		                        i);
	cg_errors_init(&errs);
	struct consent_live *l = consent_live_new(
	    consent_import_csv("i.csv", buf, len, &errs), 0, 1);
	free(buf);
	assert_non_null(l);
	struct consent_table *v0 = consent_live_view(l, "live");
	assert_null(v0->ov_filter); /* empty: one branch, no probe */
	assert_int_equal(status_of(v0, 7), CONSENT_STATUS_GRANTED);

	uint64_t seq = 0;
	for (int i = 1; i < NPEOPLE; i += 2) /* the odd ones withdraw */
		change(l, ++seq, i, "withdrawn", "2025-01-02T00:00:00Z");
	for (int i = NPEOPLE; i < NPEOPLE + 100; i++) /* and new people */
		change(l, ++seq, i, "withdrawn", "2025-01-02T00:00:00Z");
	struct consent_table *v1 = consent_live_view(l, "live");
	for (int i = 0; i < NPEOPLE + 100; i++) {
		char s[16];
		int n = snprintf(s, sizeof(s), "p%d", i);
		uint64_t h = consent_hash(s, (size_t)n, v1->seed);

		assert_int_equal(status_of(v1, i),
		                 i % 2 || i >= NPEOPLE
		                     ? CONSENT_STATUS_WITHDRAWN
		                     : CONSENT_STATUS_GRANTED);
		if (i % 2 || i >= NPEOPLE)
			assert_true(consent_ov_maybe(v1, h)); /* no miss */
		else
			fp += consent_ov_maybe(v1, h), others++;
	}
	for (int i = 0; i < 20 * NPEOPLE; i++) { /* nobody's names */
		char s[16];
		int n = snprintf(s, sizeof(s), "q%d", i);

		fp +=
		    consent_ov_maybe(v1, consent_hash(s, (size_t)n, v1->seed));
		others++;
	}
	print_message("filter: %u of %u others pass\n", fp, others);
	assert_true(fp * 50 < others); /* under 2% (0.8% expected) */

	/* a later grant after the withdrawal wins; an older one does not */
	for (int i = 1; i < NPEOPLE; i += 6)
		change(l, ++seq, i, "granted", "2025-01-03T00:00:00Z");
	for (int i = 3; i < NPEOPLE; i += 6)
		change(l, ++seq, i, "granted", "2025-01-01T12:00:00Z");
	struct consent_table *v2 = consent_live_view(l, "live");
	for (int i = 0; i < NPEOPLE; i++)
		assert_int_equal(status_of(v2, i),
		                 i % 6 == 1 || i % 2 == 0
		                     ? CONSENT_STATUS_GRANTED
		                     : CONSENT_STATUS_WITHDRAWN);
	/* views are immutable: the earlier ones still answer as they did */
	assert_int_equal(status_of(v1, 1), CONSENT_STATUS_WITHDRAWN);
	assert_int_equal(status_of(v0, 1), CONSENT_STATUS_GRANTED);
	consent_free(v0);
	consent_free(v1);
	consent_free(v2);
	consent_live_free(l);
	cg_errors_reset(&errs);
}

/* Every view reports the source's last confirmation as its time. */
static void
test_confirm_moves_every_view(void **state)
{
	gen_history(2);
	struct consent_live *l = consent_live_new(import_rows(0, 10), 10, 100);
	struct consent_table *a = consent_live_view(l, "live");

	assert_int_equal(consent_created_at(a), 100);
	consent_live_confirm(l, 250);
	struct consent_table *b = consent_live_view(l, "live");
	assert_int_equal(consent_created_at(a), 250);
	assert_int_equal(consent_created_at(b), 250);
	assert_int_equal(consent_live_confirmed(l), 250);
	consent_live_free(l);
	assert_int_equal(consent_created_at(b), 250);
	consent_free(a);
	consent_free(b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_image_plus_changes_is_the_whole_history),
	    cmocka_unit_test(test_compaction_keeps_later_changes),
	    cmocka_unit_test(test_bad_change_refused_whole),
	    cmocka_unit_test(test_confirm_moves_every_view),
	    cmocka_unit_test(test_load_in_two_runs_is_the_csv_import),
	    cmocka_unit_test(test_load_refuses_what_the_import_refuses),
	    cmocka_unit_test(test_overlay_wins_and_its_filter_never_misses),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
