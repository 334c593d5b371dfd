/* cmd_policy.c: the policy author's commands: check, test, eval. */
#include <stdio.h>

#include "cmd_internal.h"

int
cmd_check(int argc, char **argv)
{
	fprintf(stderr, "consentgate check: not built yet\n");
	return 2;
}

int
cmd_test(int argc, char **argv)
{
	fprintf(stderr, "consentgate test: not built yet\n");
	return 2;
}

int
cmd_eval(int argc, char **argv)
{
	fprintf(stderr, "consentgate eval: not built yet\n");
	return 2;
}
