/* main.c: the consentgate binary: one entry point, one subcommand each. */
#include <stdio.h>
#include <string.h>

#include "consentgate/common.h"
#include "cmd_internal.h"
#include "version_internal.h"

static const struct {
	const char *name;
	int (*run)(int, char **);
	const char *summary;
} commands[] = {
    {"serve", cmd_serve, "run the proxy"},
    {"demo", cmd_demo,
     "run the proxy on the example policy with a local upstream"},
    {"check", cmd_check, "validate a rule file"},
    {"test", cmd_test, "run table-driven test cases against a rule file"},
    {"eval", cmd_eval, "decide every record of a body, offline"},
    {"consent", cmd_consent, "build or inspect a consent snapshot"},
    {"audit", cmd_audit, "print the decision-log lines about one person"},
};

static void
usage(FILE *out)
{
	fprintf(out, "usage: consentgate COMMAND [OPTIONS]\n\n"
	             "consentgate enforces opt-in consent between content "
	             "services and ML ingestion.\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-8s %s\n", commands[i].name,
		        commands[i].summary);
	fprintf(out, "\n`consentgate COMMAND --help` describes a command.\n");
}

int
main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0 ||
	    strcmp(argv[1], "version") == 0) {
		version_print(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "consentgate: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
