/*
 * test_snapshot.c: the policy and the consent table as separate references:
 * reference counts, replacing one part while sharing the other, retirement
 * while requests still hold a snapshot, the loader every start and reload
 * uses, and many threads swapping and holding snapshots at once.
 */
/* cmocka.h needs these three before it */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
/* clang-format on */

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* the module itself, to build snapshots of counted stand-in parts */
#include "../../policy/snapshot.c"

#include "unit_files.h"

#define EXAMPLE "../../policy/examples/ai-training.json"
#define CSV_HDR "subject,purpose,status,jurisdiction,updated_at,evidence\n"

/* ---- stand-in parts: never freed, only marked, so a use after
 * retirement is seen as a flag, not as a crash that may not happen ---- */

#define POOL 60000 /* stand-in parts one test run may create */

struct fake {
	atomic_int retired;
	uint64_t tag;
};

static struct fake pool[POOL];
static atomic_uint pool_next;
static atomic_uint retired_count;
static atomic_uint retired_twice; /* set from any thread, checked by main */

static void
fake_free(void *obj)
{
	struct fake *f = obj;

	if (atomic_exchange(&f->retired, 1) != 0)
		atomic_fetch_add(&retired_twice, 1);
	atomic_fetch_add(&retired_count, 1);
}

static struct part *
fake_part(uint64_t tag)
{
	unsigned i = atomic_fetch_add(&pool_next, 1);

	assert_true(i < POOL);
	pool[i].tag = tag;
	atomic_init(&pool[i].retired, 0);
	return part_new(&pool[i], fake_free);
}

static const struct fake *
fake_policy(const struct snapshot *s)
{
	return (const struct fake *)(const void *)snapshot_policy(s);
}

static const struct fake *
fake_consent(const struct snapshot *s)
{
	return (const struct fake *)(const void *)snapshot_consent(s);
}

/* The next snapshot after base with stand-ins for the parts in what. */
static struct snapshot *
fake_replace(const struct snapshot *base, unsigned what, uint64_t tag)
{
	struct part *pp, *tp;

	pp = (what & SNAPSHOT_POLICY) ? fake_part(tag) : part_ref(base->policy);
	tp = (what & SNAPSHOT_CONSENT) ? fake_part(tag)
	                               : part_ref(base->consent);
	return pair(pp, tp, base->generation + 1);
}

/* A first snapshot of two stand-ins: the policy is made first (pool[n]),
 * then the table (pool[n + 1]). */
static struct snapshot *
fake_pair(uint64_t tag)
{
	struct part *pp = fake_part(tag);
	struct part *tp = fake_part(tag);

	return pair(pp, tp, 1);
}

static void
reset_pool(void)
{
	atomic_store(&pool_next, 0);
	atomic_store(&retired_count, 0);
}

/* ---- references ---- */

static void
test_replace_shares_the_other_part(void **state)
{
	struct snapshot *s1, *s2, *s3, *w;
	(void)state;

	reset_pool();
	s1 = fake_pair(1);
	assert_non_null(s1);
	assert_int_equal(snapshot_generation(s1), 1);

	/* a consent change: the policy is the same object, not a copy */
	s2 = fake_replace(s1, SNAPSHOT_CONSENT, 2);
	assert_ptr_equal(fake_policy(s2), fake_policy(s1));
	assert_ptr_not_equal(fake_consent(s2), fake_consent(s1));
	assert_int_equal(snapshot_generation(s2), 2);
	assert_int_equal(atomic_load(&s1->policy->refs), 2);

	/* a policy change keeps the table */
	s3 = fake_replace(s2, SNAPSHOT_POLICY, 3);
	assert_ptr_equal(fake_consent(s3), fake_consent(s2));
	assert_ptr_not_equal(fake_policy(s3), fake_policy(s2));

	/* a worker's own copy: same parts, same generation, own count */
	w = snapshot_share(s3);
	assert_ptr_not_equal(w, s3);
	assert_ptr_equal(fake_policy(w), fake_policy(s3));
	assert_ptr_equal(fake_consent(w), fake_consent(s3));
	assert_int_equal(snapshot_generation(w), 3);

	/* retiring s1 frees only its table: its policy lives on in s2 */
	snapshot_unref(s1);
	assert_int_equal(atomic_load(&retired_count), 1);
	assert_int_equal(atomic_load(&pool[1].retired), 1); /* table 1 */
	assert_int_equal(atomic_load(&pool[0].retired), 0); /* policy 1 */
	snapshot_unref(s2); /* policy 1 goes; table 2 is still s3's */
	assert_int_equal(atomic_load(&retired_count), 2);
	snapshot_unref(s3);
	assert_int_equal(atomic_load(&retired_count), 2); /* w holds both */
	snapshot_unref(w);
	assert_int_equal(atomic_load(&retired_count), 4);
	snapshot_unref(NULL);
}

/* A request that started on a snapshot finishes on it, even after the
 * reload that replaced it dropped the running reference. */
static void
test_retired_while_in_use(void **state)
{
	struct snapshot *running, *request, *next;
	(void)state;

	reset_pool();
	running = fake_pair(1);
	request = running;
	snapshot_ref(request); /* a request begins */
	next = fake_replace(running, SNAPSHOT_BOTH, 2);
	snapshot_unref(running); /* the reload swaps and lets go */
	running = next;
	assert_int_equal(atomic_load(&retired_count), 0);
	assert_int_equal(fake_policy(request)->tag, 1);
	assert_int_equal(fake_consent(request)->tag, 1);
	assert_int_equal(atomic_load(&fake_policy(request)->retired), 0);
	snapshot_unref(request); /* the request ends: now both parts go */
	assert_int_equal(atomic_load(&retired_count), 2);
	assert_int_equal(fake_policy(running)->tag, 2);
	snapshot_unref(running);
	assert_int_equal(atomic_load(&retired_count), 4);
}

/* ---- the loader ---- */

static void
test_load_checks_each_pair(void **state)
{
	struct cg_errors errs;
	struct snapshot *s, *s2;
	char *good =
	    unit_write_file("good.csv", CSV_HDR "1,ai-training,granted,DE,"
	                                        "2025-01-01T00:00:00Z,e1\n");
	char *typo =
	    unit_write_file("typo.csv", CSV_HDR "1,ai_training,granted,DE,"
	                                        "2025-01-01T00:00:00Z,e1\n");
	char *bad =
	    unit_write_file("bad.json", "{\"policy\": \"x\", \"routes\": [");
	const struct policy *p;
	(void)state;

	cg_errors_init(&errs);
	s = snapshot_load(NULL, SNAPSHOT_CONSENT, EXAMPLE, good, &errs);
	assert_non_null(s); /* with no base, both parts are loaded */
	assert_int_equal(errs.count, 0);
	p = snapshot_policy(s);
	assert_string_equal(policy_id(p), "ai-training-example");

	/* consent only: the running policy is kept, not loaded again */
	s2 = snapshot_load(s, SNAPSHOT_CONSENT, "/nonexistent.json", good,
	                   &errs);
	assert_non_null(s2);
	assert_ptr_equal(snapshot_policy(s2), p);
	assert_ptr_not_equal(snapshot_consent(s2), snapshot_consent(s));
	assert_int_equal(snapshot_generation(s2), 2);

	/* a table the running policy cannot see is refused; s2 stays */
	assert_null(snapshot_load(s2, SNAPSHOT_CONSENT, NULL, typo, &errs));
	assert_true(unit_has_error(&errs, "ai_training"));
	cg_errors_reset(&errs);

	/* a new policy is checked against the running table too */
	assert_null(snapshot_load(s2, SNAPSHOT_POLICY, bad, NULL, &errs));
	assert_true(errs.count >= 1);
	assert_true(unit_has_error(&errs, "bad.json"));
	cg_errors_reset(&errs);

	/* both broken: the errors of both, not only the first */
	assert_null(
	    snapshot_load(s2, SNAPSHOT_BOTH, bad, "/nonexistent.csv", &errs));
	assert_true(unit_has_error(&errs, "bad.json"));
	assert_true(unit_has_error(&errs, "nonexistent.csv"));
	cg_errors_reset(&errs);

	assert_ptr_equal(snapshot_policy(s2), p); /* nothing changed */
	snapshot_unref(s);
	snapshot_unref(s2);
	unlink(good);
	unlink(typo);
	unlink(bad);
	free(good);
	free(typo);
	free(bad);
}

/* ---- many threads ---- */

#define READERS 4
#define SWAPS 20000
#define HELD 8 /* requests in flight per reader */

/* Under valgrind (make valgrind sets CG_VALGRIND) threads take turns on
 * one lock, and four spinning readers leave the swapper a fifth of it:
 * the full run took from under a minute to over five in CI. */
static unsigned
swaps(void)
{
	return getenv("CG_VALGRIND") != NULL ? SWAPS / 20 : SWAPS;
}

/* what the swapper built for each generation: a reader's snapshot must
 * hold exactly these two parts */
static const struct fake *expect_policy[SWAPS + 2];
static const struct fake *expect_consent[SWAPS + 2];

struct reader {
	pthread_t th;
	_Atomic(struct snapshot *) pending; /* handed over by the swapper */
	atomic_bool stop;
	unsigned long requests, swaps_seen;
	const char *bad;
};

static bool
consistent(const struct snapshot *s)
{
	uint64_t g = snapshot_generation(s);

	return fake_policy(s) == expect_policy[g] &&
	       fake_consent(s) == expect_consent[g] &&
	       !atomic_load(&fake_policy(s)->retired) &&
	       !atomic_load(&fake_consent(s)->retired);
}

/* A worker: takes the newest handed snapshot, starts requests on its
 * current one and finishes them a few requests later. */
static void *
reader_main(void *arg)
{
	struct reader *r = arg;
	struct snapshot *cur = NULL, *held[HELD] = {0};
	unsigned k = 0;

	for (;;) {
		/* stop first: once it is seen, so is the last hand-over */
		bool stop = atomic_load(&r->stop);
		struct snapshot *n = atomic_exchange(&r->pending, NULL);

		if (n != NULL) {
			snapshot_unref(cur);
			cur = n;
			r->swaps_seen++;
		}
		if (cur != NULL) {
			snapshot_unref(held[k]); /* an older request ends */
			snapshot_ref(cur);       /* a new one begins */
			held[k] = cur;
			k = (k + 1) % HELD;
			r->requests++;
			for (unsigned i = 0; i < HELD; i++)
				if (held[i] && !consistent(held[i]))
					r->bad = "mixed or retired parts";
		}
		if (stop && n == NULL)
			break;
	}
	for (unsigned i = 0; i < HELD; i++)
		snapshot_unref(held[i]);
	snapshot_unref(cur);
	return NULL;
}

static void
test_many_threads_swap_and_hold(void **state)
{
	struct reader rd[READERS];
	struct snapshot *running;
	unsigned created;
	(void)state;

	reset_pool();
	memset(rd, 0, sizeof(rd));
	running = fake_pair(1);
	expect_policy[1] = fake_policy(running);
	expect_consent[1] = fake_consent(running);
	for (int i = 0; i < READERS; i++) {
		atomic_init(&rd[i].pending, snapshot_share(running));
		assert_int_equal(
		    pthread_create(&rd[i].th, NULL, reader_main, &rd[i]), 0);
	}
	for (unsigned g = 2, n = swaps(); g <= n + 1; g++) {
		/* policy only, consent only, both: in turn */
		struct snapshot *next = fake_replace(running, 1 + g % 3, g);

		expect_policy[g] = fake_policy(next);
		expect_consent[g] = fake_consent(next);
		snapshot_unref(running);
		running = next;
		for (int i = 0; i < READERS; i++) {
			struct snapshot *old = atomic_exchange(
			    &rd[i].pending, snapshot_share(running));

			snapshot_unref(
			    old); /* superseded before it was taken */
		}
		if (g % 64 == 0)
			usleep(100);
	}
	for (int i = 0; i < READERS; i++)
		atomic_store(&rd[i].stop, true);
	for (int i = 0; i < READERS; i++) {
		pthread_join(rd[i].th, NULL);
		if (rd[i].bad)
			fail_msg("reader %d: %s", i, rd[i].bad);
		assert_true(rd[i].requests > 0);
		assert_true(rd[i].swaps_seen > 1);
	}
	/* only the running snapshot is left; every other part was retired */
	created = atomic_load(&pool_next);
	assert_int_equal(atomic_load(&retired_count), created - 2);
	snapshot_unref(running);
	assert_int_equal(atomic_load(&retired_count), created);
	assert_int_equal(atomic_load(&retired_twice), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_replace_shares_the_other_part),
	    cmocka_unit_test(test_retired_while_in_use),
	    cmocka_unit_test(test_load_checks_each_pair),
	    cmocka_unit_test(test_many_threads_swap_and_hold),
	};

	return cmocka_run_group_tests(tests, unit_files_setup,
	                              unit_files_teardown);
}
