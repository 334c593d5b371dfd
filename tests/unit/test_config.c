/*
 * test_config.c: the --config file and the settings: errors with
 * file:line:col, files relative to the config file's directory, addresses
 * (the admin listener never on the --listen address).
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
#include <unistd.h>

#include "../../proxy/proxy_internal.h"

#include "unit_files.h"

/* errs holds exactly "PATH" suffix, where PATH is the file's path. */
static void
assert_error(const struct cg_errors *errs, const char *path, const char *suffix)
{
	char *want;

	assert_true(asprintf(&want, "%s%s", path, suffix) > 0);
	for (unsigned i = 0; i < errs->count; i++)
		if (strcmp(errs->msgs[i], want) == 0) {
			free(want);
			return;
		}
	for (unsigned i = 0; i < errs->count; i++)
		print_error("got: %s\n", errs->msgs[i]);
	fail_msg("missing: %s", want);
}

/* Load text, written as the config file name, into a fresh cfg. */
static int
load(const char *name, const char *text, struct config *cfg,
     struct cg_errors *errs, char **path)
{
	*path = unit_write_file(name, text);
	config_init(cfg);
	return config_load_file(cfg, *path, errs);
}

static void
done(struct config *cfg, struct cg_errors *errs, char *path)
{
	cg_errors_reset(errs);
	config_reset(cfg);
	unlink(path);
	free(path);
}

static void
test_errors_carry_line_and_column(void **state)
{
	struct config cfg;
	struct cg_errors errs;
	char *path;
	(void)state;

	cg_errors_init(&errs);
	assert_int_equal(load("pos.json",
	                      "{\n"
	                      "  \"workers\": 2,\n"
	                      "  \"wrokers\": 3,\n"
	                      "  \"listen\": 8000,\n"
	                      "    \"pool_size\": -1\n"
	                      "}\n",
	                      &cfg, &errs, &path),
	                 -1);
	assert_int_equal(errs.count, 3); /* all of them, not the first */
	assert_error(&errs, path, ":3:3: unknown setting \"wrokers\"");
	assert_error(&errs, path, ":4:13: \"listen\" must be a string");
	assert_error(&errs, path,
	             ":5:18: \"pool_size\" is -1; it must be between 0 and "
	             "100000");
	assert_int_equal(cfg.workers, 2); /* the good ones still apply */
	done(&cfg, &errs, path);

	/* a syntax error: where jansson stopped */
	assert_int_equal(
	    load("syntax.json", "{\n  \"workers\" 2\n}\n", &cfg, &errs, &path),
	    -1);
	assert_int_equal(errs.count, 1);
	assert_non_null(strstr(errs.msgs[0], ":2:"));
	assert_int_equal(strncmp(errs.msgs[0], path, strlen(path)), 0);
	done(&cfg, &errs, path);

	/* not an object; a file that is not there */
	assert_int_equal(load("array.json", "[1]\n", &cfg, &errs, &path), -1);
	assert_error(&errs, path,
	             ":1:1: the configuration must be a JSON object");
	assert_int_equal(config_load_file(&cfg, "/nonexistent/cg.json", &errs),
	                 -1);
	assert_int_equal(errs.count, 2);
	done(&cfg, &errs, path);
}

static void
test_paths_relative_to_the_config_file(void **state)
{
	struct config cfg;
	struct cg_errors errs;
	char *path, *want;
	(void)state;

	cg_errors_init(&errs);
	assert_int_equal(load("rel.json",
	                      "{\"policy\": \"p.json\", \"consent\": "
	                      "\"/abs/c.csv\", \"decision_log\": \"logs/d\", "
	                      "\"listen\": \"127.0.0.1:0\"}",
	                      &cfg, &errs, &path),
	                 0);
	assert_true(asprintf(&want, "%s/p.json", unit_dir) > 0);
	assert_string_equal(cfg.policy_path, want);
	free(want);
	assert_string_equal(cfg.consent_path, "/abs/c.csv");
	assert_true(asprintf(&want, "%s/logs/d", unit_dir) > 0);
	assert_string_equal(cfg.decision_log, want);
	free(want);
	assert_string_equal(cfg.listen, "127.0.0.1:0"); /* not a file */
	done(&cfg, &errs, path);

	/* "-" is stdout, wherever the file is */
	assert_int_equal(
	    load("dash.json", "{\"decision_log\": \"-\"}", &cfg, &errs, &path),
	    0);
	assert_string_equal(cfg.decision_log, "-");
	done(&cfg, &errs, path);
}

static int
resolve(const char *listen, const char *admin, struct cg_errors *errs)
{
	struct config cfg;
	int rc;

	config_init(&cfg);
	cfg.listen = strdup(listen);
	cfg.admin = admin ? strdup(admin) : NULL;
	cfg.upstream = strdup("http://127.0.0.1:9");
	cfg.policy_path = strdup("p.json");
	cfg.consent_path = strdup("c.csv");
	rc = config_resolve(&cfg, errs);
	config_reset(&cfg);
	return rc;
}

static void
test_admin_not_on_the_listen_address(void **state)
{
	struct cg_errors errs;
	(void)state;

	cg_errors_init(&errs);
	assert_int_equal(resolve("127.0.0.1:8000", "127.0.0.1:8001", &errs), 0);
	assert_int_equal(resolve("127.0.0.1:0", "127.0.0.1:0", &errs), 0);
	assert_int_equal(resolve("127.0.0.1:8000", NULL, &errs), 0);
	assert_int_equal(errs.count, 0);
	assert_int_equal(resolve("127.0.0.1:8000", "127.0.0.1:8000", &errs),
	                 -1);
	assert_int_equal(errs.count, 1);
	assert_non_null(strstr(errs.msgs[0], "--admin: '127.0.0.1:8000' is "
	                                     "also the --listen address"));
	/* a wildcard takes the other's connections too */
	assert_int_equal(resolve("0.0.0.0:8000", "127.0.0.1:8000", &errs), -1);
	assert_int_equal(resolve("[::1]:8000", "[::]:8000", &errs), -1);
	assert_int_equal(resolve("127.0.0.1:8000", "[::1]:8000", &errs), 0);
	assert_int_equal(resolve("127.0.0.1:8000", "nohost", &errs), -1);
	assert_int_equal(errs.count, 4);
	cg_errors_reset(&errs);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_errors_carry_line_and_column),
	    cmocka_unit_test(test_paths_relative_to_the_config_file),
	    cmocka_unit_test(test_admin_not_on_the_listen_address),
	};

	return cmocka_run_group_tests(tests, unit_files_setup,
	                              unit_files_teardown);
}
