/*
 * bench_scan: record scanning speed on tweet-like NDJSON.
 *
 * Generates about 64 MiB of ~512-byte records (bench_tweets.h), then
 * times three contenders on the same bytes, median of 5 runs each:
 *   scanner  our validating scanner, subject at /author_id
 *   jansson  json_loadb per line (JSON_REJECT_DUPLICATES) + author_id
 *   memchr   newline splitting only (the floor)
 * Times are this thread's CPU time (the machine is shared). The scanner
 * runs the stage-1 kernel chosen at start (CG_SCAN_KERNEL=scalar|avx2|
 * avx512 forces one); its name is printed on stderr. bench_simdjson runs
 * simdjson on the same data.
 * Options: --ascii (ASCII-only text), --mib N (data size),
 * --dump FILE (write the data and stop), --scanner-only (last argument).
 * Output, one line per contender: scan\t<name>\t<MB/s>\t<records/s>
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "../../policy/scan_internal.h"
#include "bench_tweets.h"
#include "consentgate/scan.h"

#define BENCH_BYTES (64u << 20) /* bytes of generated NDJSON */
#define BENCH_RUNS 5            /* runs per contender; the median counts */

/* Each contender returns the records it saw, or 0 on an error. */
static size_t
run_scanner(const char *buf, size_t len)
{
	static struct scan_record rec;
	struct jsonptr loc;
	struct scan_spec spec = {.locators = &loc, .nlocators = 1};
	struct scan_iter it;
	const char *err;
	size_t n = 0, idlen = 0;
	int r;

	if (jsonptr_parse("/author_id", 10, &loc, &err) < 0)
		return 0;
	scan_iter_init(&it, &spec, SCAN_FORMAT_NDJSON, NULL, buf, len);
	while ((r = scan_iter_next(&it, &rec)) == 1) {
		if (rec.nsubjects != 1)
			return 0;
		idlen += rec.subjects[0].len;
		n++;
	}
	if (r < 0) {
		fprintf(stderr, "scanner: record %u at %zu: %s\n", it.index,
		        it.offset, it.error);
		return 0;
	}
	return idlen > 0 ? n : 0;
}

static size_t
run_jansson(const char *buf, size_t len)
{
	const char *p = buf, *end = buf + len, *nl;
	size_t n = 0;

	for (; p < end; p = nl + 1) {
		json_error_t e;
		json_t *v, *id;

		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL)
			nl = end;
		v = json_loadb(p, (size_t)(nl - p), JSON_REJECT_DUPLICATES, &e);
		if (v == NULL)
			return 0;
		id = json_object_get(v, "author_id");
		if (!json_is_string(id)) {
			json_decref(v);
			return 0;
		}
		json_decref(v);
		n++;
	}
	return n;
}

static size_t
run_memchr(const char *buf, size_t len)
{
	const char *p = buf, *end = buf + len, *nl;
	size_t n = 0;

	while (p < end && (nl = memchr(p, '\n', (size_t)(end - p))) != NULL) {
		p = nl + 1;
		n++;
	}
	return n;
}

static int
bench(const char *name, size_t (*fn)(const char *, size_t), const char *buf,
      size_t len)
{
	double t[BENCH_RUNS], med;
	size_t n = 0;

	for (int i = 0; i < BENCH_RUNS; i++) {
		double t0 = bench_now();

		n = fn(buf, len);
		t[i] = bench_now() - t0;
		if (n == 0) {
			fprintf(stderr, "%s: failed\n", name);
			return -1;
		}
	}
	qsort(t, BENCH_RUNS, sizeof(t[0]), bench_cmp_double);
	med = t[BENCH_RUNS / 2];
	printf("scan\t%s\t%.1f\t%.0f\n", name, (double)len / med / 1e6,
	       (double)n / med);
	fflush(stdout);
	return 0;
}

int
main(int argc, char **argv)
{
	size_t want = BENCH_BYTES, cap, len = 0;
	char *buf = NULL;
	const char *dump = NULL;
	int rc = 1;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--ascii") == 0)
			nwords = 14;
		else if (strcmp(argv[i], "--mib") == 0 && i + 1 < argc)
			want = (size_t)strtoul(argv[++i], NULL, 10) << 20;
		else if (strcmp(argv[i], "--dump") == 0 && i + 1 < argc)
			dump = argv[++i];
	}
	cap = want + 4096;
	if ((buf = malloc(cap)) == NULL)
		goto done;
	len = gen_records(buf, cap, want);
	fprintf(stderr, "generated %zu bytes, %zu records, kernel %s\n", len,
	        run_memchr(buf, len), scan_kernel_name(scan_kernel_active));
	if (dump != NULL) {
		FILE *f = fopen(dump, "wb");

		if (f == NULL || fwrite(buf, 1, len, f) != len ||
		    fclose(f) != 0)
			goto done;
		rc = 0;
		goto done;
	}
	if (bench("scanner", run_scanner, buf, len) < 0)
		goto done;
	if (argc < 2 || strcmp(argv[argc - 1], "--scanner-only") != 0) {
		if (bench("jansson", run_jansson, buf, len) < 0 ||
		    bench("memchr", run_memchr, buf, len) < 0)
			goto done;
	}
	rc = 0;
done:
	free(buf);
	return rc;
}
