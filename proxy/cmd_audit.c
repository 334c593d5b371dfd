/*
 * cmd_audit.c: consentgate audit --key FILE --subject ID [LOG...]: every
 * decision-log line about one person. The log names people only by
 * HMAC-SHA-256(key, id); with the key the auditor computes that pseudonym
 * and prints, unchanged, each line whose records name it (standard input
 * without LOG).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli_internal.h"
#include "cmd_internal.h"
#include "declog_internal.h"
#include "pseudonym_internal.h"

static void
audit_usage(FILE *out)
{
	fprintf(out,
	        "usage: consentgate audit --key FILE --subject ID [LOG...]\n\n"
	        "Print every decision-log line (format v%d) that names the "
	        "person ID: the log\nholds HMAC-SHA-256(key, ID), computed "
	        "here from the key file given to serve\nas --decision-log-key. "
	        "A line is printed whole: every record of the request\nand "
	        "every person of each (as pseudonyms), not only ID's own "
	        "entries.\nReads standard input without LOG.\n"
	        "  --pseudonym   print the pseudonym of ID and exit\n"
	        "Exit 0 when a line matched, 1 when none did, 2 on bad usage "
	        "or an unreadable\nfile or key.\n",
	        DECLOG_VERSION);
}

/* The line names the pseudonym pn in a record's subjects. */
static bool
names(const char *line, size_t len, const char *pn)
{
	json_t *root = json_loadb(line, len, 0, NULL);
	json_t *decisions = json_object_get(root, "decisions");
	bool found = false;
	size_t i, k;
	json_t *d, *s;

	json_array_foreach(decisions, i, d)
	{
		json_array_foreach(json_array_get(d, 4), k, s)
		{
			const char *v = json_string_value(json_array_get(s, 3));

			if (v != NULL && strcmp(v, pn) == 0)
				found = true;
		}
	}
	json_decref(root);
	return found;
}

/* Print the lines of f that name pn; the number printed, -1 on error. */
static long
audit_file(FILE *f, const char *pn)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	long hits = 0;

	while ((n = getline(&line, &cap, f)) > 0) {
		/* cheap test first: most lines are about other people */
		if (strstr(line, pn) == NULL || !names(line, (size_t)n, pn))
			continue;
		fwrite(line, 1, (size_t)n, stdout);
		hits++;
	}
	free(line);
	return ferror(f) ? -1 : hits;
}

int
cmd_audit(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"key", required_argument, NULL, 'k'},
	    {"subject", required_argument, NULL, 's'},
	    {"pseudonym", no_argument, NULL, 'p'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *keyfile = NULL, *subject = NULL;
	unsigned char *key = NULL;
	bool only_pseudonym = false;
	char why[512], pn[65];
	size_t keylen = 0;
	long hits = 0;
	int ch, rc = 2;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'k':
			keyfile = optarg;
			break;
		case 's':
			subject = optarg;
			break;
		case 'p':
			only_pseudonym = true;
			break;
		case 'h':
			audit_usage(stdout);
			return 0;
		default:
			audit_usage(stderr);
			return 2;
		}
	}
	if (keyfile == NULL || subject == NULL) {
		fprintf(stderr, "consentgate audit: --key and --subject are "
		                "required (see --help)\n");
		return 2;
	}
	key = malloc(PSEUDONYM_KEY_MAX);
	if (key == NULL ||
	    pseudonym_read_key(keyfile, key, &keylen, why, sizeof(why)) != 0) {
		fprintf(stderr, "consentgate audit: --key: %s\n",
		        key ? why : "out of memory");
		goto out;
	}
	if (pseudonym_hmac(key, keylen, subject, strlen(subject), pn) != 0) {
		fprintf(stderr, "consentgate audit: HMAC-SHA-256 failed\n");
		goto out;
	}
	if (only_pseudonym) {
		printf("%s\n", pn);
		rc = 0;
		goto out;
	}
	if (optind == argc)
		hits = audit_file(stdin, pn);
	for (int i = optind; i < argc && hits >= 0; i++) {
		FILE *f = fopen(argv[i], "r");
		long n;

		if (f == NULL) {
			fprintf(stderr,
			        "consentgate audit: cannot open '%s': "
			        "%m\n",
			        argv[i]);
			hits = -1;
			break;
		}
		n = audit_file(f, pn);
		fclose(f);
		hits = n < 0 ? -1 : hits + n;
	}
	rc = hits < 0 ? 2 : hits > 0 ? 0 : 1;
out:
	if (key != NULL)
		memset(key, 0, PSEUDONYM_KEY_MAX);
	free(key);
	return rc;
}
