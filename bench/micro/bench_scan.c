/*
 * bench_scan: record scanning speed on tweet-like NDJSON.
 *
 * Generates about 64 MiB of ~512-byte records (nested objects, non-ASCII
 * text, escapes, numbers) with a fixed seed, then times three contenders on
 * the same bytes, median of 5 runs each:
 *   scanner  our validating scanner, subject at /author_id
 *   jansson  json_loadb per line (JSON_REJECT_DUPLICATES) + author_id
 *   memchr   newline splitting only (the floor)
 * Times are this thread's CPU time (the machine is shared).
 * Options: --ascii (ASCII-only text), --mib N (data size),
 * --dump FILE (write the data and stop), --scanner-only (last argument).
 * Output, one line per contender: scan\t<name>\t<MB/s>\t<records/s>
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "consentgate/scan.h"

#define BENCH_BYTES (64u << 20) /* bytes of generated NDJSON */
#define BENCH_RUNS 5            /* runs per contender; the median counts */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t
rng(void)
{
	/* xorshift64*: deterministic, fast enough */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

static const char *const words[] = {
    "the",
    "model",
    "consent",
    "data",
    "training",
    "river",
    "coffee",
    "morning",
    "release",
    "build",
    "proxy",
    "night",
    "week",
    "city",
    "caf\xc3\xa9",
    "na\xc3\xafve",
    "\xe6\x97\xa5\xe6\x9c\xac",
    "\xf0\x9f\x98\x80",
    "\\\"quoted\\\"",
    "line\\nbreak",
    "\\u00e9t\\u00e9",
    "M\xc3\xbcnchen",
    "\xd0\xbf\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82",
    "#ai",
    "@friend",
    "https://example.com/x/y?z=1",
};

/* words[0, nwords): --ascii keeps the first 14 (plain ASCII text) */
static size_t nwords = sizeof(words) / sizeof(words[0]);

static size_t
gen_record(char *out, size_t cap)
{
	char text[400];
	size_t tn = 0;
	int n;

	while (tn < 180 + rng() % 60) {
		const char *w = words[rng() % nwords];
		size_t wl = strlen(w);

		if (tn + wl + 2 >= sizeof(text))
			break;
		memcpy(text + tn, w, wl);
		tn += wl;
		text[tn++] = ' ';
	}
	text[tn] = '\0';
	n = snprintf(
	    out, cap,
	    "{\"id\":%llu,\"author_id\":\"%llu\",\"created_at\":"
	    "\"2024-%02u-%02uT%02u:%02u:%02u.000Z\",\"text\":\"%s\","
	    "\"lang\":\"en\",\"public_metrics\":{\"retweet_count\":%u,"
	    "\"reply_count\":%u,\"like_count\":%u,\"quote_count\":%u},"
	    "\"entities\":{\"hashtags\":[{\"start\":%u,\"end\":%u,"
	    "\"tag\":\"ai\"}],\"mentions\":[{\"start\":0,\"end\":7,"
	    "\"username\":\"friend\",\"id\":\"%llu\"}]},"
	    "\"possibly_sensitive\":false,\"geo\":null,\"score\":0.%03u}\n",
	    (unsigned long long)(rng() >> 4),
	    (unsigned long long)(rng() % 100000000000ull),
	    (unsigned)(1 + rng() % 12), (unsigned)(1 + rng() % 28),
	    (unsigned)(rng() % 24), (unsigned)(rng() % 60),
	    (unsigned)(rng() % 60), text, (unsigned)(rng() % 1000),
	    (unsigned)(rng() % 100), (unsigned)(rng() % 10000),
	    (unsigned)(rng() % 50), (unsigned)(rng() % 100),
	    (unsigned)(rng() % 100),
	    (unsigned long long)(rng() % 100000000000ull),
	    (unsigned)(rng() % 1000));
	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

static double
now(void)
{
	struct timespec ts;

	/* CPU time: the machine is shared, wall time would count others */
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

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
		double t0 = now();

		n = fn(buf, len);
		t[i] = now() - t0;
		if (n == 0) {
			fprintf(stderr, "%s: failed\n", name);
			return -1;
		}
	}
	qsort(t, BENCH_RUNS, sizeof(t[0]), cmp_double);
	med = t[BENCH_RUNS / 2];
	printf("scan\t%s\t%.1f\t%.0f\n", name, (double)len / med / 1e6,
	       (double)n / med);
	fflush(stdout);
	return 0;
}

int
main(int argc, char **argv)
{
	size_t want = BENCH_BYTES, cap, len = 0, k;
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
	while (len < want && (k = gen_record(buf + len, cap - len)) > 0)
		len += k;
	fprintf(stderr, "generated %zu bytes, %zu records\n", len,
	        run_memchr(buf, len));
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
