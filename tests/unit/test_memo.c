/*
 * test_memo.c: the per-request dedup table of subjects (memo.c) and the
 * verdict's batched decisions over it (verdict.c): colliding hashes stay
 * two people, a clear forgets everyone, a full table says so, a subject
 * in many records is looked up once but every record is decided and
 * logged as before, and across windows, table clears and refusals every
 * record decides exactly as rule_decide_record does on its own.
 */
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

#include "../../policy/memo.c"
#include "../../policy/verdict.c"

#define NOW 1767225600 /* 2026-01-01T00:00:00Z */

static const char policy_doc[] =
    "{\"policy\": \"t\",\n"
    " \"purposes\": {\"ai\": {\"aipref\": \"train-ai\"}},\n"
    " \"routes\": [\n"
    "  {\"method\": \"POST\", \"path\": \"/in\", \"action\": \"inspect\",\n"
    "   \"purpose\": \"ai\", \"formats\": [\"ndjson\", \"array\"],\n"
    "   \"subjects\": [\"/a\", \"/m/*\",\n"
    "    {\"pointer\": \"/r\", \"optional\": true}],\n"
    "   \"on_deny\": \"drop\"},\n"
    "  {\"method\": \"POST\", \"path\": \"/b\", \"action\": \"inspect\",\n"
    "   \"purpose\": \"ai\", \"formats\": [\"ndjson\", \"array\"],\n"
    "   \"subjects\": [\"/a\", \"/m/*\"], \"on_deny\": \"block\"}\n"
    " ],\n"
    " \"rules\": [\n"
    "  {\"id\": \"unknown\", \"if\": {\"known\": false}, \"then\": "
    "\"deny\"},\n"
    "  {\"id\": \"granted\", \"if\": {\"status\": [\"granted\"]}, \"then\": "
    "\"allow\"},\n"
    "  {\"id\": \"default\", \"then\": \"deny\"}\n"
    " ]}\n";

/* people 0..999: every seventh denied, every eleventh without a row */
static char *
make_csv(void)
{
	size_t cap = 1 << 16, n;
	char *csv = malloc(cap);

	assert_non_null(csv);
	n = (size_t)snprintf(csv, cap,
	                     "subject,purpose,status,jurisdiction,"
	                     "updated_at,evidence\n");
	for (unsigned i = 0; i < 1000; i++) {
		if (i % 11 == 3)
			continue;
		n +=
		    (size_t)snprintf(csv + n, cap - n,
		                     "%u,ai,%s,DE,2025-01-01T00:00:00Z,ev-%u\n",
		                     i, i % 7 == 2 ? "denied" : "granted", i);
		assert_true(n < cap);
	}
	return csv;
}

struct fixture {
	struct policy *p;
	struct consent_table *t;
	struct verdict v;
	struct memo m;
};

static int
setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	struct cg_errors errs;
	char *csv = make_csv();

	cg_errors_init(&errs);
	fx->p =
	    policy_load_buf("t.json", policy_doc, strlen(policy_doc), &errs);
	for (unsigned i = 0; i < errs.count; i++)
		print_error("%s\n", errs.msgs[i]);
	assert_non_null(fx->p);
	fx->t = consent_import_csv("t.csv", csv, strlen(csv), &errs);
	assert_non_null(fx->t);
	cg_errors_reset(&errs);
	free(csv);
	verdict_init(&fx->v);
	memo_clear(&fx->m);
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;

	verdict_reset(&fx->v);
	consent_free(fx->t);
	policy_free(fx->p);
	free(fx);
	return 0;
}

static struct cg_slice
sl(const char *s)
{
	return (struct cg_slice){s, strlen(s)};
}

/* Two subjects whose hashes pick the same slot are two entries. */
static void
test_collisions(void **state)
{
	struct fixture *fx = *state;
	char a[16], b[16];
	unsigned want, i;

	snprintf(a, sizeof(a), "p0");
	want = (unsigned)memo_hash(a, strlen(a)) & (MEMO_SLOTS - 1);
	for (i = 1;; i++) {
		snprintf(b, sizeof(b), "p%u", i);
		if (((unsigned)memo_hash(b, strlen(b)) & (MEMO_SLOTS - 1)) ==
		    want)
			break;
	}
	assert_int_equal(memo_intern(&fx->m, sl(a)), 0);
	assert_int_equal(memo_intern(&fx->m, sl(b)), 1);
	assert_int_equal(memo_intern(&fx->m, sl(a)), 0);
	assert_int_equal(memo_intern(&fx->m, sl(b)), 1);
	/* a prefix, an empty subject and an embedded NUL are others */
	assert_int_equal(memo_intern(&fx->m, (struct cg_slice){"p", 1}), 2);
	assert_int_equal(memo_intern(&fx->m, (struct cg_slice){"", 0}), 3);
	assert_int_equal(memo_intern(&fx->m, (struct cg_slice){"p0\0", 3}), 4);
	assert_int_equal(memo_intern(&fx->m, (struct cg_slice){"", 0}), 3);
	assert_int_equal(fx->m.n, 5);
	assert_memory_equal(memo_subject(&fx->m, 1).ptr, b, strlen(b));
}

/* A clear forgets everyone; a full table refuses a new subject but still
 * finds the ones it holds. */
static void
test_clear_and_full(void **state)
{
	struct fixture *fx = *state;
	char s[16];

	for (unsigned i = 0; i < MEMO_PEOPLE; i++) {
		snprintf(s, sizeof(s), "%u", i);
		assert_int_equal(memo_intern(&fx->m, sl(s)), (int)i);
	}
	assert_false(memo_room(&fx->m, 1, 1));
	assert_int_equal(memo_intern(&fx->m, sl("new")), -1);
	assert_int_equal(memo_intern(&fx->m, sl("17")), 17);
	memo_clear(&fx->m);
	assert_true(memo_room(&fx->m, MEMO_PEOPLE, MEMO_BYTES));
	assert_int_equal(memo_intern(&fx->m, sl("17")), 0);
	assert_int_equal(fx->m.n, 1);
	/* the text runs out before the entries do */
	memo_clear(&fx->m);
	assert_false(memo_room(&fx->m, 1, MEMO_BYTES + 1));
}

static void
begin(struct fixture *fx, const char *path)
{
	struct verdict_header h = {sl("Content-Type"),
	                           sl("application/x-ndjson")};
	struct verdict_request req = {&h, 1, NOW, 0};
	const struct policy_route *r =
	    route_match(fx->p, sl("POST"), sl(path), NULL);

	assert_non_null(r);
	assert_int_equal(verdict_begin(&fx->v, r, fx->t, &req), 0);
}

/* d equals what rule_decide_record gives for the record on its own. */
static void
assert_same_decision(struct fixture *fx, const struct verdict_record *rec)
{
	struct policy_decision want;
	const struct policy_decision *d = &rec->d;

	rule_decide_record(fx->v.route, fx->t, rec->scan, NOW, &want);
	assert_int_equal(d->allow, want.allow);
	assert_string_equal(d->rule_id, want.rule_id);
	assert_int_equal(d->subject, want.subject);
	assert_memory_equal(&d->consent, &want.consent, sizeof(want.consent));
	assert_int_equal(d->nevidence, want.nevidence);
	for (unsigned i = 0; i < want.nevidence; i++) {
		assert_int_equal(d->evidence[i].len, want.evidence[i].len);
		assert_memory_equal(d->evidence[i].ptr, want.evidence[i].ptr,
		                    want.evidence[i].len);
		assert_string_equal(d->rules[i], want.rules[i]);
		assert_int_equal(d->allows[i], want.allows[i]);
	}
}

/* One person in 100 records: looked up once, every record decided (and
 * so logged) with the same rule and evidence as before. */
static void
test_one_subject_many_records(void **state)
{
	struct fixture *fx = *state;
	const struct verdict_record *rec;
	static const char line[] = "{\"a\":5,\"m\":[\"5\",\"2\"]}";
	unsigned records = 0;

	begin(fx, "/in");
	for (unsigned i = 0; i < 100; i++) {
		assert_int_equal(
		    verdict_feed_line(&fx->v, line, strlen(line), &rec), 0);
		assert_non_null(rec);
		assert_int_equal(rec->index, i);
		assert_int_equal(rec->scan->nsubjects, 3);
		assert_memory_equal(rec->scan->subjects[0].ptr, "5", 1);
		assert_false(rec->d.allow); /* 2 is denied */
		assert_string_equal(rec->d.rule_id, "default");
		assert_int_equal(rec->d.nevidence, 3);
		assert_memory_equal(rec->d.evidence[2].ptr, "ev-2", 4);
		assert_same_decision(fx, rec);
		records++;
	}
	/* two people, each looked up once */
	assert_int_equal(fx->v.batch->memo.n, 2);
	assert_int_equal(fx->v.batch->memo.decided, 2);
	assert_int_equal(records, 100);
	assert_int_equal(fx->v.dropped, 100);
	/* the next request starts with an empty table, same memory */
	struct verdict_batch *b = fx->v.batch;
	begin(fx, "/in");
	assert_int_equal(verdict_feed_line(&fx->v, "{\"a\":1}", 7, &rec), 0);
	assert_ptr_equal(fx->v.batch, b);
	assert_int_equal(fx->v.batch->memo.n, 1);
	assert_true(rec->d.allow);
}

/* The body: n records of varied people (repeats, unknown ones, missing
 * author, several mentions, escapes, a blank line now and then). */
static char *
make_body(unsigned n, size_t *len)
{
	size_t cap = (size_t)n * 160 + 1, o = 0;
	char *body = malloc(cap);

	assert_non_null(body);
	for (unsigned i = 0; i < n; i++) {
		unsigned a = (i * 7919u) % 1400; /* some beyond the table */

		if (i % 13 == 5)
			o += (size_t)snprintf(body + o, cap - o, "\n");
		if (i % 17 == 4)
			o += (size_t)snprintf(body + o, cap - o,
			                      "{\"m\":[\"%u\"]}\n", a);
		else if (i % 5 == 1)
			o += (size_t)snprintf(
			    body + o, cap - o,
			    "{\"a\":\"\\u003%u\",\"m\":[%u,\"%u\",%u],"
			    "\"r\":\"%u\"}\n",
			    i % 10, a, (a + 1) % 1000, i % 3, i);
		else
			o += (size_t)snprintf(body + o, cap - o,
			                      "{\"a\":%u,\"m\":[]}\n", a);
	}
	*len = o;
	return body;
}

/* Streamed in windows and whole, over more people than the table holds:
 * every record decides as on its own, and the counts agree. */
static void
test_batched_equals_direct(void **state)
{
	struct fixture *fx = *state;
	const struct verdict_record *rec;
	size_t len, pos = 0;
	char *body = make_body(3000, &len);
	unsigned streamed[3], staged, decided = 0, short_windows = 0;
	int rc;

	begin(fx, "/in");
	while (pos < len) {
		size_t from = pos;

		staged = 0;
		while (pos < len) {
			const char *nl = memchr(body + pos, '\n', len - pos);
			size_t n = (size_t)(nl - (body + pos));

			if (verdict_stage_line(&fx->v, body + pos, n) != 1)
				break;
			staged++;
			pos += n + 1;
		}
		assert_true(staged > 0 && staged <= VERDICT_WINDOW);
		/* the memo filled up: the window ended early */
		short_windows += pos < len && staged < VERDICT_WINDOW;
		(void)from;
		while (staged-- > 0) {
			assert_int_equal(verdict_feed_next(&fx->v, &rec), 0);
			if (rec != NULL) {
				assert_same_decision(fx, rec);
				decided++;
			}
		}
	}
	assert_int_equal(verdict_end(&fx->v), 0);
	assert_int_equal(decided, 3000);
	assert_true(short_windows > 0);
	streamed[0] = fx->v.records;
	streamed[1] = fx->v.kept;
	streamed[2] = fx->v.dropped;
	assert_true(streamed[1] > 0 && streamed[2] > 0);

	begin(fx, "/in");
	assert_int_equal(verdict_body(&fx->v, body, len), 0);
	decided = 0;
	while ((rc = verdict_next(&fx->v, &rec)) == 1) {
		assert_same_decision(fx, rec);
		assert_int_equal(rec->index, decided);
		decided++;
	}
	assert_int_equal(rc, 0);
	verdict_end(&fx->v);
	assert_int_equal(fx->v.records, streamed[0]);
	assert_int_equal(fx->v.kept, streamed[1]);
	assert_int_equal(fx->v.dropped, streamed[2]);
	free(body);
}

/* Refusals keep their place: a malformed line staged after a denied one
 * on a block route is never reached (403 at the deny); on a drop route it
 * is refused (422) with its index after the records before it. */
static void
test_refusals_in_order(void **state)
{
	struct fixture *fx = *state;
	const struct verdict_record *rec;
	static const char *const lines[] = {"{\"a\":1}", "{\"a\":2}",
	                                    "{\"a\":", "{\"a\":1}"};
	unsigned staged = 0;

	begin(fx, "/b");
	for (unsigned i = 0; i < 4; i++)
		staged += (unsigned)verdict_stage_line(&fx->v, lines[i],
		                                       strlen(lines[i]));
	assert_int_equal(staged, 3); /* nothing after the malformed one */
	assert_int_equal(verdict_feed_next(&fx->v, &rec), 0);
	assert_true(rec->d.allow);
	assert_int_equal(verdict_feed_next(&fx->v, &rec), -1);
	assert_int_equal(fx->v.status, 403);
	assert_int_equal(fx->v.index, 1);
	assert_string_equal(fx->v.rule, "default");

	begin(fx, "/in");
	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(
		    verdict_stage_line(&fx->v, lines[i], strlen(lines[i])), 1);
	assert_int_equal(verdict_feed_next(&fx->v, &rec), 0);
	assert_int_equal(verdict_feed_next(&fx->v, &rec), 0);
	assert_false(rec->d.allow);
	assert_int_equal(verdict_feed_next(&fx->v, &rec), -1);
	assert_null(rec);
	assert_int_equal(fx->v.status, 422);
	assert_int_equal(fx->v.index, 2);
	assert_int_equal(fx->v.records, 2);
	/* nothing staged: refused, not a crash */
	begin(fx, "/in");
	assert_int_equal(verdict_feed_next(&fx->v, &rec), -1);
	assert_int_equal(fx->v.status, 500);
}

/* Records of the most subjects of the longest ids, after others: each
 * one fills an empty memo and is decided as on its own. */
static void
test_largest_records(void **state)
{
	struct fixture *fx = *state;
	const struct verdict_record *rec;
	size_t cap = 16 * 40 * 300, o = 0;
	char *body = malloc(cap);
	unsigned decided = 0;
	int rc;

	assert_non_null(body);
	for (unsigned r = 0; r < 16; r++) {
		if (r % 2 == 0) {
			o += (size_t)snprintf(body + o, cap - o,
			                      "{\"a\":%u,\"m\":[%u]}\n", r,
			                      r + 1);
			continue;
		}
		o +=
		    (size_t)snprintf(body + o, cap - o, "{\"a\":\"%c", 'a' + r);
		memset(body + o, 'x', CG_MAX_SUBJECT_LEN - 1);
		o += CG_MAX_SUBJECT_LEN - 1;
		o += (size_t)snprintf(body + o, cap - o, "\",\"m\":[");
		for (unsigned i = 1; i < CG_MAX_SUBJECTS; i++) {
			o += (size_t)snprintf(body + o, cap - o, "%s\"%c%02u",
			                      i > 1 ? "," : "", 'a' + r, i);
			memset(body + o, 'y', CG_MAX_SUBJECT_LEN - 3);
			o += CG_MAX_SUBJECT_LEN - 3;
			body[o++] = '"';
		}
		o += (size_t)snprintf(body + o, cap - o, "]}\n");
		assert_true(o < cap);
	}
	begin(fx, "/in");
	assert_int_equal(verdict_body(&fx->v, body, o), 0);
	while ((rc = verdict_next(&fx->v, &rec)) == 1) {
		assert_same_decision(fx, rec);
		if (decided % 2 == 1) {
			assert_int_equal(rec->scan->nsubjects, CG_MAX_SUBJECTS);
			assert_int_equal(rec->scan->subjects[5].len,
			                 CG_MAX_SUBJECT_LEN);
		}
		decided++;
	}
	assert_int_equal(rc, 0);
	assert_int_equal(decided, 16);
	free(body);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_collisions, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_clear_and_full, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_one_subject_many_records,
	                                    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_batched_equals_direct, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_refusals_in_order, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(test_largest_records, setup,
	                                    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
