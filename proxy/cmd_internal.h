/*
 * cmd_internal.h: the subcommands of the consentgate binary.
 * Each takes the arguments after the subcommand name (argv[0] is the
 * subcommand), handles its own --help, and returns the process exit code.
 */
#ifndef CONSENTGATE_CMD_INTERNAL_H
#define CONSENTGATE_CMD_INTERNAL_H

int cmd_serve(int argc, char **argv);   /* serve.c: run the proxy */
int cmd_demo(int argc, char **argv);    /* demo.c: proxy + local upstream */
int cmd_check(int argc, char **argv);   /* cmd_check.c: validate a rule file */
int cmd_test(int argc, char **argv);    /* cmd_test.c: run policy test cases */
int cmd_eval(int argc, char **argv);    /* cmd_eval.c: decide a body offline */
int cmd_consent(int argc, char **argv); /* cmd_consent.c: consent build|info */
int cmd_audit(int argc, char **argv);   /* cmd_audit.c: one person's lines */

#endif
