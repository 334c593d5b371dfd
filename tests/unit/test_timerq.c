/*
 * test_timerq.c: the event loop's timer queues (proxy/timerq.c): every
 * entry fires once and never before its deadline, whatever the mix of
 * durations; a cleared entry never fires; a fire may set its own entry
 * again or clear another one due at the same moment; queues are taken over
 * when the durations change (a reload). No upper bound on lateness is
 * asserted: the machines are shared.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <event2/event.h>

#include "../../proxy/timerq_internal.h"

#define N 64

struct item {
	struct timerq_entry e; /* first: the fire callback casts back */
	int64_t deadline;      /* as timerq_set computed it */
	int fired;
	int rearm;                  /* times to set itself again */
	struct item *clear_on_fire; /* another entry to clear when fired */
};

static struct timerq *tq;
static int early; /* fires seen before their deadline */
static int total_fired;

static int64_t
coarse_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
set(struct item *it, unsigned ms)
{
	timerq_set(tq, &it->e, ms);
	it->deadline = it->e.deadline_ms;
}

static void
fire(struct timerq_entry *e)
{
	struct item *it = (struct item *)e;

	if (coarse_ms() < it->deadline)
		early++;
	assert_null(e->q); /* cleared before the call */
	it->fired++;
	total_fired++;
	if (it->clear_on_fire)
		timerq_clear(&it->clear_on_fire->e);
	if (it->rearm > 0) {
		it->rearm--;
		set(it, 3);
	}
}

/* Run the loop until want fires were seen, at most 5 s. */
static void
run_until(struct event_base *base, int want)
{
	int64_t stop = coarse_ms() + 5000;

	while (total_fired < want && coarse_ms() < stop)
		event_base_loop(base, EVLOOP_ONCE);
}

static int
setup(void **state)
{
	struct event_base *base = event_base_new();

	assert_non_null(base);
	tq = timerq_new(base, fire);
	assert_non_null(tq);
	assert_ptr_equal(timerq_base(tq), base);
	early = total_fired = 0;
	*state = base;
	return 0;
}

static int
teardown(void **state)
{
	timerq_free(tq);
	event_base_free(*state);
	return 0;
}

static void
test_mixed_durations_fire_once_never_early(void **state)
{
	static struct item it[N];
	static const unsigned ms[] = {12, 3, 7, 20, 3, 1};

	memset(it, 0, sizeof(it));
	for (int i = 0; i < N; i++)
		set(&it[i], ms[i % 6]);
	/* a set again moves an entry to its queue's tail, once */
	set(&it[0], 25);
	set(&it[1], 25);
	run_until(*state, N);
	for (int i = 0; i < N; i++)
		assert_int_equal(it[i].fired, 1);
	assert_int_equal(early, 0);
	event_base_loop(*state, EVLOOP_NONBLOCK);
	assert_int_equal(total_fired, N);
}

static void
test_cleared_never_fire(void **state)
{
	static struct item it[N];

	memset(it, 0, sizeof(it));
	for (int i = 0; i < N; i++)
		set(&it[i], 2 + i % 3);
	for (int i = 0; i < N; i += 2)
		timerq_clear(&it[i].e);
	timerq_clear(&it[0].e); /* twice: nothing */
	run_until(*state, N / 2);
	/* the cleared ones would be due by now too: give them a turn */
	set(&it[1], 10);
	run_until(*state, N / 2 + 1);
	for (int i = 0; i < N; i++)
		assert_int_equal(it[i].fired, i % 2 ? 1 + (i == 1) : 0);
	assert_int_equal(early, 0);
}

static void
test_fire_sets_again_and_clears_another(void **state)
{
	static struct item a, b, c;

	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	memset(&c, 0, sizeof(c));
	a.rearm = 3;          /* fires 4 times */
	a.clear_on_fire = &b; /* b is due with a, in the same queue */
	set(&a, 5);
	set(&b, 5);
	set(&c, 5);
	run_until(*state, 5);
	assert_int_equal(a.fired, 4);
	assert_int_equal(b.fired, 0);
	assert_int_equal(c.fired, 1);
	assert_int_equal(early, 0);
}

static void
test_durations_change(void **state)
{
	static struct item it[4 * N];
	int n = 0;

	memset(it, 0, sizeof(it));
	/* rounds of new durations, as reloads would bring: emptied queues
	   are taken over, the rest keep firing */
	for (unsigned round = 0; round < 4; round++) {
		for (int i = 0; i < N; i++)
			set(&it[n++], 1 + round * 4 + (unsigned)i % 4);
		run_until(*state, n - N / 2);
	}
	run_until(*state, n);
	for (int i = 0; i < n; i++)
		assert_int_equal(it[i].fired, 1);
	assert_int_equal(early, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
	        test_mixed_durations_fire_once_never_early, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cleared_never_fire, setup,
	                                    teardown),
	    cmocka_unit_test_setup_teardown(
	        test_fire_sets_again_and_clears_another, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_durations_change, setup,
	                                    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
