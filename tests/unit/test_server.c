/*
 * test_server.c: the one reload (server_reload) on a real server with one
 * worker whose event loop the test turns: a consent-only reload shares the
 * running policy object, a policy-only one the table; a request in flight
 * keeps its snapshot; a failed reload keeps the running one with every
 * error; the worker takes the new snapshot through its own loop.
 */
/* cmocka.h needs these three before it */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
/* clang-format on */

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "../../proxy/proxy_internal.h"
#include "unit_files.h"

#define EXAMPLE "../../policy/examples/ai-training.json"
#define CSV_HDR "subject,purpose,status,jurisdiction,updated_at,evidence\n"
#define ROW "1,ai-training,granted,DE,2025-01-01T00:00:00Z,e1\n"

struct reload_call {
	struct server *s;
	unsigned what;
	struct cg_errors errs;
	int rc;
	atomic_bool done;
};

static void *
reload_main(void *arg)
{
	struct reload_call *c = arg;

	c->rc = server_reload(c->s, c->what, &c->errs);
	atomic_store(&c->done, true);
	return NULL;
}

/* server_reload from another thread (as SIGHUP's would be) while the
 * worker's loop runs here, as it does on its own thread. */
static int
reload(struct server *s, struct worker *w, unsigned what,
       struct cg_errors *errs)
{
	struct reload_call c = {.s = s, .what = what};
	pthread_t th;

	cg_errors_init(&c.errs);
	atomic_init(&c.done, false);
	assert_int_equal(pthread_create(&th, NULL, reload_main, &c), 0);
	while (!atomic_load(&c.done))
		event_base_loop(w->base, EVLOOP_NONBLOCK);
	pthread_join(th, NULL);
	*errs = c.errs; /* the caller resets it */
	return c.rc;
}

static void
test_one_reload(void **state)
{
	struct config cfg;
	struct cg_errors errs;
	struct server *s;
	struct worker *w;
	struct snapshot *held, *cur, *snap;
	const struct policy *p1;
	const struct consent_table *t2;
	char *csv = unit_write_file("c.csv", CSV_HDR ROW);
	char *pol;
	FILE *f = fopen(EXAMPLE, "r");
	char text[16384];
	size_t n;
	unsigned nw;
	(void)state;

	assert_non_null(f);
	n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	pol = unit_write_file("p.json", text);
	config_init(&cfg);
	cfg.listen = strdup("127.0.0.1:0");
	cfg.upstream = strdup("http://127.0.0.1:9");
	cfg.policy_path = strdup(pol);
	cfg.consent_path = strdup(csv);
	cfg.workers = 1;
	cg_errors_init(&errs);
	assert_int_equal(config_resolve(&cfg, &errs), 0);
	snap = snapshot_load(NULL, SNAPSHOT_BOTH, pol, csv, &errs);
	assert_non_null(snap);
	s = server_new(&cfg, snap);
	assert_non_null(s);
	assert_int_equal(server_listen(s, &errs), 0);
	w = server_workers(s, &nw);
	assert_int_equal(nw, 1);

	held = worker_snapshot(w); /* a request in flight */
	p1 = snapshot_policy(held);
	assert_int_equal(snapshot_generation(held), 1);

	/* consent only: the policy object stays, the table is new */
	free(unit_write_file(
	    "c.csv",
	    CSV_HDR ROW "2,ai-training,denied,DE,2025-01-01T00:00:00Z,e2\n"));
	assert_int_equal(reload(s, w, SNAPSHOT_CONSENT, &errs), 0);
	cg_errors_reset(&errs);
	cur = worker_snapshot(w);
	assert_int_equal(snapshot_generation(cur), 2);
	assert_ptr_equal(snapshot_policy(cur), p1);
	assert_int_equal(consent_people(snapshot_consent(cur)), 2);
	assert_int_equal(consent_people(snapshot_consent(held)), 1);
	t2 = snapshot_consent(cur);
	snapshot_unref(cur);
	snapshot_unref(held); /* the request ends: table 1 goes */

	/* a table the policy cannot see: refused, generation 2 stays */
	free(unit_write_file(
	    "c.csv",
	    CSV_HDR "1,ai_training,granted,DE,2025-01-01T00:00:00Z,e1\n"));
	assert_int_equal(reload(s, w, SNAPSHOT_BOTH, &errs), -1);
	assert_true(unit_has_error(&errs, "ai_training"));
	cg_errors_reset(&errs);
	cur = worker_snapshot(w);
	assert_int_equal(snapshot_generation(cur), 2);
	assert_ptr_equal(snapshot_consent(cur), t2);
	snapshot_unref(cur);

	/* policy only: a new policy, the running table kept */
	free(unit_write_file("p.json", "{\"policy\": \"x\","));
	assert_int_equal(reload(s, w, SNAPSHOT_POLICY, &errs), -1);
	assert_true(unit_has_error(&errs, "p.json"));
	cg_errors_reset(&errs);
	free(unit_write_file("p.json", text));
	assert_int_equal(reload(s, w, SNAPSHOT_POLICY, &errs), 0);
	cg_errors_reset(&errs);
	cur = worker_snapshot(w);
	assert_int_equal(snapshot_generation(cur), 3);
	assert_ptr_not_equal(snapshot_policy(cur), p1);
	assert_ptr_equal(snapshot_consent(cur), t2);
	/* and what the admin listener reads is the same pair */
	held = server_snapshot(s);
	assert_ptr_equal(snapshot_policy(held), snapshot_policy(cur));
	assert_ptr_equal(snapshot_consent(held), t2);
	snapshot_unref(held);
	snapshot_unref(cur);

	server_free(s);
	config_reset(&cfg);
	unlink(csv);
	unlink(pol);
	free(csv);
	free(pol);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_one_reload),
	};

	return cmocka_run_group_tests(tests, unit_files_setup,
	                              unit_files_teardown);
}
