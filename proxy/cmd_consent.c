/* cmd_consent.c: consent build (CSV -> snapshot) and consent info. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cmd_internal.h"
#include "consentgate/consent.h"

static void
usage(FILE *out)
{
	fprintf(
	    out,
	    "usage: consentgate consent build TABLE.csv -o TABLE.snap "
	    "[--version N]\n"
	    "       consentgate consent info FILE\n\n"
	    "build  imports a consent CSV (header subject,purpose,status,"
	    "jurisdiction,\n"
	    "       updated_at[,evidence,...]) and writes a binary snapshot "
	    "that the\n"
	    "       proxy maps in well under a second. A bad row fails the "
	    "whole build\n"
	    "       with file:line: reason. --version sets the snapshot "
	    "version\n"
	    "       (default: the creation time in unix seconds).\n"
	    "info   prints a CSV's or snapshot's version, creation time, "
	    "people,\n"
	    "       rows, purposes and size.\n");
}

static void
print_errors(const struct cg_errors *errs)
{
	for (unsigned i = 0; i < errs->count; i++)
		fprintf(stderr, "%s\n", errs->msgs[i]);
	if (errs->dropped)
		fprintf(stderr, "... and %u more errors\n", errs->dropped);
}

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int
cmd_build(int argc, char **argv)
{
	const char *in = NULL, *out = NULL;
	struct consent_table *t = NULL;
	struct cg_errors errs;
	uint64_t version = 0;
	bool have_version = false;
	int rc = 2;

	cg_errors_init(&errs);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			rc = 0;
			goto done;
		} else if (strcmp(argv[i], "-o") == 0 && i + 1 < argc) {
			out = argv[++i];
		} else if (strcmp(argv[i], "--version") == 0 && i + 1 < argc) {
			char *end;
			errno = 0;
			version = strtoull(argv[++i], &end, 10);
			if (errno || *end || end == argv[i] ||
			    argv[i][0] == '-') {
				fprintf(stderr, "consentgate consent build: "
				                "--version wants an unsigned "
				                "integer\n");
				goto done;
			}
			have_version = true;
		} else if (argv[i][0] == '-' || in != NULL) {
			fprintf(stderr,
			        "consentgate consent build: unexpected '%s'\n",
			        argv[i]);
			usage(stderr);
			goto done;
		} else {
			in = argv[i];
		}
	}
	if (in == NULL || out == NULL) {
		usage(stderr);
		goto done;
	}
	double t0 = now_s();
	t = consent_open(in, &errs);
	if (t == NULL) {
		print_errors(&errs);
		rc = 1;
		goto done;
	}
	double t1 = now_s();
	struct stat st;
	double in_mb = stat(in, &st) == 0 ? (double)st.st_size / 1e6 : 0.0;
	if (have_version)
		consent_set_version(t, version);
	if (consent_snapshot_write(t, out, &errs) < 0) {
		print_errors(&errs);
		rc = 1;
		goto done;
	}
	double t2 = now_s();
	uint64_t people = consent_people(t);
	printf("%s: version %llu, %llu people, %llu rows, %llu bytes "
	       "(%.1f bytes/person); import %.2f s (%.0f MB/s), write %.2f s\n",
	       out, (unsigned long long)consent_version(t),
	       (unsigned long long)people, (unsigned long long)consent_rows(t),
	       (unsigned long long)consent_bytes(t),
	       people ? (double)consent_bytes(t) / (double)people : 0.0,
	       t1 - t0, t1 > t0 ? in_mb / (t1 - t0) : 0.0, t2 - t1);
	rc = 0;
done:
	consent_free(t);
	cg_errors_reset(&errs);
	return rc;
}

static int
cmd_info(int argc, char **argv)
{
	struct consent_table *t = NULL;
	struct cg_errors errs;
	char when[64] = "?";
	int rc = 2;

	cg_errors_init(&errs);
	if (argc == 2 &&
	    (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		usage(stdout);
		rc = 0;
		goto done;
	}
	if (argc != 2 || argv[1][0] == '-') {
		usage(stderr);
		goto done;
	}
	t = consent_open(argv[1], &errs);
	if (t == NULL) {
		print_errors(&errs);
		rc = 1;
		goto done;
	}
	time_t created = (time_t)consent_created_at(t);
	struct tm tm;
	if (gmtime_r(&created, &tm) != NULL)
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	printf("file:       %s\n", argv[1]);
	printf("version:    %llu\n", (unsigned long long)consent_version(t));
	printf("created:    %s (%lld)\n", when,
	       (long long)consent_created_at(t));
	printf("people:     %llu\n", (unsigned long long)consent_people(t));
	printf("rows:       %llu\n", (unsigned long long)consent_rows(t));
	printf("purposes:   %u", consent_purpose_count(t));
	for (unsigned i = 0; i < consent_purpose_count(t); i++) {
		struct cg_slice s = consent_purpose_name(t, i);
		printf("%s%.*s", i ? ", " : " (", (int)s.len, s.ptr);
	}
	printf("%s\n", consent_purpose_count(t) ? ")" : "");
	printf("bytes:      %llu", (unsigned long long)consent_bytes(t));
	if (consent_people(t))
		printf(" (%.1f per person)",
		       (double)consent_bytes(t) / (double)consent_people(t));
	printf("\n");
	rc = 0;
done:
	consent_free(t);
	cg_errors_reset(&errs);
	return rc;
}

int
cmd_consent(int argc, char **argv)
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
	if (strcmp(argv[1], "build") == 0)
		return cmd_build(argc - 1, argv + 1);
	if (strcmp(argv[1], "info") == 0)
		return cmd_info(argc - 1, argv + 1);
	fprintf(stderr, "consentgate consent: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
