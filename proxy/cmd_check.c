/*
 * cmd_check.c: consentgate check POLICY: validate a rule file, print every
 * error and warning as file:line:col, then "POLICY: OK (N routes, N
 * rules)".
 */
#include <stdio.h>
#include <string.h>

#include "cli_internal.h"
#include "cmd_internal.h"

int
cmd_check(int argc, char **argv)
{
	struct cg_errors errs;
	struct policy *p;
	int rc;

	if (argc == 2 && cli_is_help(argv[1])) {
		printf(
		    "usage: consentgate check POLICY\n\n"
		    "Validate a rule file. Prints every error and warning as "
		    "file:line:col: message,\nthen \"POLICY: OK (N routes, "
		    "N rules)\".\nExit 0 when valid (warnings allowed), 1 on "
		    "errors, 2 on bad usage.\n");
		return 0;
	}
	if (argc != 2 || argv[1][0] == '-') {
		fprintf(stderr, "consentgate check: expected one POLICY file "
		                "(see --help)\n");
		return 2;
	}
	cg_errors_init(&errs);
	p = policy_load(argv[1], &errs);
	if (p == NULL) {
		cli_print_errors(&errs);
		fprintf(stderr, "%s: %u error%s\n", argv[1],
		        errs.count + errs.dropped,
		        errs.count + errs.dropped == 1 ? "" : "s");
		rc = 1;
		goto done;
	}
	cli_print_errors(policy_warnings(p));
	printf("%s: OK (%u route%s, %u rule%s)\n", argv[1], route_count(p),
	       route_count(p) == 1 ? "" : "s", policy_rule_count(p),
	       policy_rule_count(p) == 1 ? "" : "s");
	rc = 0;
done:
	policy_free(p);
	cg_errors_reset(&errs);
	return rc;
}
