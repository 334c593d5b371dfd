/*
 * bench_consent.c: consent table import, snapshot write/open and lookups.
 *
 *   bench_consent [--people N]   (default: 1000000 then 10000000)
 *
 * For each size it generates a CSV file in /tmp (one ai-training row per
 * person, numeric-looking ids, a 12-byte evidence id), imports it, writes a
 * snapshot to /tmp, opens it and times lookups of random known people and
 * of unknown ones: independent lookups in a loop (the CPU overlaps them),
 * a dependent chain (pure latency), and consent_lookup_many (prefetching).
 * Then the image alone against live views (consent_live.h) whose
 * overlays hold none, 1,000 and 100,000 withdrawals, in interleaved
 * rounds (medians), and the time of a compaction.
 * Times are the thread's CPU time (the benchmark machine is shared), plus
 * wall time for import and open.
 * Output: consent\t<people>\t<metric>\t<value>
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "consentgate/consent.h"
#include "consentgate/consent_live.h"

#define QUERIES 2000000 /* lookups per measurement */
#define ID_MUL 2654435761ull
#define ID_BASE 1000000ull
/* withdrawals in the overlays compared with the image alone (consent_pg.c
 * compacts at 65,536 changed people) */
#define LIVE_CHANGES                                                           \
	{                                                                      \
		0, 1000, 100000                                                \
	}
#define LIVE_ROUNDS 5 /* interleaved rounds; medians reported */

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID,
	              &ts); /* others share the cores */
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double
wall_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t
next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Person i's id; id + 1 is never anyone's (ids are ID_MUL apart). */
static uint64_t
person_id(uint64_t i)
{
	return i * ID_MUL + ID_BASE;
}

static void
report(uint64_t people, const char *metric, double value)
{
	printf("consent\t%llu\t%s\t%.2f\n", (unsigned long long)people, metric,
	       value);
	fflush(stdout);
}

/* n query subjects: random known people (miss == 0) or unknown ones. */
static struct cg_slice *
make_queries(uint64_t people, size_t n, int miss, char **store)
{
	struct cg_slice *q = malloc(n * sizeof(*q));
	char *s = malloc(n * 24);
	for (size_t i = 0; i < n; i++) {
		uint64_t id = person_id(next_rand() % people) + (miss ? 1 : 0);
		int len = sprintf(s + i * 24, "%llu", (unsigned long long)id);
		q[i] = (struct cg_slice){s + i * 24, (size_t)len};
	}
	*store = s;
	return q;
}

/* Times lookups; where names the table ("mem", "snap"), NULL: no output. */
static void
bench_lookups(const struct consent_table *t, uint64_t people, int miss,
              const char *where)
{
	const char *kind = miss ? "miss" : "hit";
	struct consent_lookup_result r, *out;
	char *store, metric[64];
	size_t n = QUERIES, found = 0;
	struct cg_slice *q = make_queries(people, n, miss, &store);
	int pid = consent_purpose_id(t, "ai-training", 11);
	double t0, t1;

	t0 = now_s();
	for (size_t i = 0; i < n; i++) {
		consent_lookup(t, q[i].ptr, q[i].len, pid, &r);
		found += r.known;
	}
	t1 = now_s();
	snprintf(metric, sizeof(metric), "%s_lookup_%s_loop_ns",
	         where ? where : "", kind);
	if (where)
		report(people, metric, (t1 - t0) * 1e9 / (double)n);

	/* Each lookup waits for the one before: latency, no overlap. */
	t0 = now_s();
	size_t j = 0;
	for (size_t i = 0; i < n / 4; i++) {
		consent_lookup(t, q[j].ptr, q[j].len, pid, &r);
		found += r.known;
		j = (j + 1 + (size_t)r.known + (size_t)r.updated_at % 2) % n;
	}
	t1 = now_s();
	snprintf(metric, sizeof(metric), "%s_lookup_%s_dependent_ns",
	         where ? where : "", kind);
	if (where)
		report(people, metric, (t1 - t0) * 1e9 / (double)(n / 4));

	out = malloc(64 * sizeof(*out));
	t0 = now_s();
	for (size_t i = 0; i < n; i += 64) {
		size_t m = n - i < 64 ? n - i : 64;
		consent_lookup_many(t, q + i, m, pid, out);
		for (size_t k = 0; k < m; k++)
			found += out[k].known;
	}
	t1 = now_s();
	snprintf(metric, sizeof(metric), "%s_lookup_%s_batched_ns",
	         where ? where : "", kind);
	if (where)
		report(people, metric, (t1 - t0) * 1e9 / (double)n);

	size_t want = miss ? 0 : n + n / 4 + n;
	if (found != want) {
		fprintf(stderr, "bench_consent: %zu found, want %zu\n", found,
		        want);
		exit(1);
	}
	free(out);
	free(q);
	free(store);
}

/* ns per lookup of q[0,n) on t: in a loop (the CPU overlaps them), as a
 * dependent chain (n/4 of them: latency) or batched (lookup_many). */
enum how { LOOP, DEPENDENT, BATCHED };

static double
lookup_ns(const struct consent_table *t, const struct cg_slice *q, size_t n,
          enum how how, size_t *found)
{
	struct consent_lookup_result r, out[64];
	int pid = consent_purpose_id(t, "ai-training", 11);
	size_t done = 0, j = 0;
	double t0 = now_s();

	if (how == LOOP) {
		for (size_t i = 0; i < n; i++, done++) {
			consent_lookup(t, q[i].ptr, q[i].len, pid, &r);
			*found += r.known;
		}
	} else if (how == DEPENDENT) {
		for (size_t i = 0; i < n / 4; i++, done++) {
			consent_lookup(t, q[j].ptr, q[j].len, pid, &r);
			*found += r.known;
			j = (j + 1 + (size_t)r.known +
			     (size_t)r.updated_at % 2) %
			    n;
		}
	} else {
		for (size_t i = 0; i < n; i += 64) {
			size_t m = n - i < 64 ? n - i : 64;
			consent_lookup_many(t, q + i, m, pid, out);
			for (size_t k = 0; k < m; k++)
				*found += out[k].known;
			done += m;
		}
	}
	return (now_s() - t0) * 1e9 / (double)done;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Apply withdrawals of random people to l up to seq to. -1: refused. */
static int
withdraw_until(struct consent_live *l, uint64_t people, uint64_t to)
{
	char subj[24], ev[24];
	const char *why = NULL;

	for (uint64_t i = consent_live_seq(l) + 1; i <= to; i++) {
		struct consent_change c;
		int n = sprintf(
		    subj, "%llu",
		    (unsigned long long)person_id(next_rand() % people));
		int m = sprintf(ev, "w-%llu", (unsigned long long)i);

		c.seq = i;
		c.subject = (struct cg_slice){subj, (size_t)n};
		c.purpose = CG_SLICE_LIT("ai-training");
		c.status = CG_SLICE_LIT("withdrawn");
		c.jurisdiction = CG_SLICE_LIT("DE");
		c.updated_at = CG_SLICE_LIT("2026-01-01T00:00:00Z");
		c.evidence = (struct cg_slice){ev, (size_t)m};
		if (consent_live_apply(l, &c, &why) != 0) {
			fprintf(stderr, "bench_consent: %s\n", why);
			return -1;
		}
	}
	return 0;
}

/*
 * The image t alone against live views over it whose overlays hold
 * LIVE_CHANGES[k] withdrawals (0: an empty overlay), LIVE_ROUNDS rounds
 * of every table in turn on the same queries (the machine is shared:
 * interleaved, medians). Then the compaction of the largest. Takes t.
 */
static int
bench_live(struct consent_table *t, uint64_t people)
{
	static const uint64_t changes[] = LIVE_CHANGES;
	enum { NV = sizeof(changes) / sizeof(*changes) };
	static const char *const how_name[] = {"loop", "dependent", "batched"};
	struct consent_live *l = consent_live_new(t, 0, (int64_t)time(NULL));
	const struct consent_table *tab[NV + 1] = {t};
	struct consent_table *v[NV];
	double ns[NV + 1][2][3][LIVE_ROUNDS];
	char *store[2], metric[128], name[NV + 1][16];
	struct cg_slice *q[2];
	size_t found[NV + 1][2] = {{0}};
	double t0, t1;

	if (l == NULL)
		return -1;
	snprintf(name[0], sizeof(name[0]), "mem");
	for (int k = 0; k < NV; k++) {
		t0 = now_s();
		if (withdraw_until(l, people, changes[k]) < 0)
			return -1;
		t1 = now_s();
		if (changes[k] > (k ? changes[k - 1] : 0))
			report(people, "live_apply_ns",
			       (t1 - t0) * 1e9 /
			           (double)(changes[k] -
			                    (k ? changes[k - 1] : 0)));
		t0 = now_s();
		v[k] = consent_live_view(l, "live");
		t1 = now_s();
		if (v[k] == NULL)
			return -1;
		tab[k + 1] = v[k];
		snprintf(name[k + 1], sizeof(name[k + 1]), "live%llu",
		         (unsigned long long)changes[k]);
		snprintf(metric, sizeof(metric), "%s_view_ms", name[k + 1]);
		report(people, metric, (t1 - t0) * 1e3);
		snprintf(metric, sizeof(metric), "%s_overlay_people",
		         name[k + 1]);
		report(people, metric, (double)consent_live_pending(l));
		snprintf(metric, sizeof(metric), "%s_bytes_per_person",
		         name[k + 1]);
		report(people, metric,
		       (double)consent_bytes(v[k]) / (double)people);
	}
	q[0] = make_queries(people, QUERIES, 0, &store[0]);
	q[1] = make_queries(people, QUERIES, 1, &store[1]);
	for (int r = 0; r < LIVE_ROUNDS; r++)
		for (int k = 0; k <= NV; k++)
			for (int miss = 0; miss < 2; miss++)
				for (int how = 0; how < 3; how++)
					ns[k][miss][how][r] = lookup_ns(
					    tab[k], q[miss], QUERIES,
					    (enum how)how, &found[k][miss]);
	for (int k = 0; k <= NV; k++)
		for (int miss = 0; miss < 2; miss++)
			for (int how = 0; how < 3; how++) {
				double *x = ns[k][miss][how];

				qsort(x, LIVE_ROUNDS, sizeof(*x), cmp_double);
				snprintf(metric, sizeof(metric),
				         "%s_lookup_%s_%s_ns", name[k],
				         miss ? "miss" : "hit", how_name[how]);
				report(people, metric, x[LIVE_ROUNDS / 2]);
			}
	/* every table knew every known person asked, and nobody else */
	for (int k = 0; k <= NV; k++)
		if (found[k][1] != 0 ||
		    found[k][0] != LIVE_ROUNDS * (QUERIES * 2 + QUERIES / 4)) {
			fprintf(stderr, "bench_consent: %s found %zu/%zu\n",
			        name[k], found[k][0], found[k][1]);
			return -1;
		}
	double w0 = wall_s();
	t0 = now_s();
	struct consent_live_job *j = consent_live_compact_begin(l);
	struct consent_table *img = j ? consent_live_compact_run(j) : NULL;
	if (img == NULL || consent_live_compact_end(l, j, img) != 0)
		return -1;
	t1 = now_s();
	report(people, "live_compact_s", t1 - t0);
	report(people, "live_compact_wall_s", wall_s() - w0);
	for (int k = 0; k < NV; k++)
		consent_free(v[k]);
	consent_live_free(l);
	for (int miss = 0; miss < 2; miss++) {
		free(q[miss]);
		free(store[miss]);
	}
	return 0;
}

static int
run(uint64_t people)
{
	struct cg_errors errs;
	char path[] = "/tmp/bench_consent.XXXXXX";
	char csv_path[] = "/tmp/bench_consent_csv.XXXXXX";
	static const char *const st[] = {"granted", "denied", "withdrawn"};
	static const char *const ju[] = {"DE", "FR", "US", "GB", "BR", "JP"};
	double t0, t1;
	FILE *f;
	int fd;

	/* The CSV goes to a file (page cache, not heap) so that 100M people
	 * fit: the import reads it through consent_open's mmap. */
	cg_errors_init(&errs);
	fd = mkstemp(csv_path);
	if (fd < 0 || (f = fdopen(fd, "w")) == NULL)
		return -1;
	setvbuf(f, NULL, _IOFBF, 1 << 20);
	fprintf(f, "subject,purpose,status,jurisdiction,updated_at,evidence\n");
	for (uint64_t i = 0; i < people; i++)
		fprintf(
		    f,
		    "%llu,ai-training,%s,%s,2025-%02llu-%02lluT12:%02llu:00Z,"
		    "cr-%09llu\n",
		    (unsigned long long)person_id(i), st[i % 3], ju[i % 6],
		    (unsigned long long)(i % 12 + 1),
		    (unsigned long long)(i % 28 + 1),
		    (unsigned long long)(i % 60), (unsigned long long)i);
	report(people, "csv_bytes", (double)ftell(f));
	if (fclose(f) != 0)
		return -1;

	double w0 = wall_s();
	t0 = now_s();
	struct consent_table *t = consent_open(csv_path, &errs);
	t1 = now_s();
	report(people, "import_wall_s", wall_s() - w0);
	unlink(csv_path);
	if (t == NULL) {
		fprintf(stderr, "%s\n",
		        errs.count ? errs.msgs[0] : "import failed");
		return -1;
	}
	report(people, "import_s", t1 - t0);
	report(people, "import_rows_per_s", (double)people / (t1 - t0));
	report(people, "bytes_per_person",
	       (double)consent_bytes(t) / (double)people);

	fd = mkstemp(path);
	if (fd < 0)
		return -1;
	close(fd);
	t0 = now_s();
	if (consent_snapshot_write(t, path, &errs) < 0) {
		fprintf(stderr, "%s\n", errs.msgs[0]);
		return -1;
	}
	t1 = now_s();
	report(people, "snapshot_write_s", t1 - t0);
	bench_lookups(t, people, 0, NULL); /* warm: pages in the image */
	if (bench_live(t, people) < 0)     /* frees t */
		return -1;

	w0 = wall_s();
	t0 = now_s();
	t = consent_open(path, &errs);
	t1 = now_s();
	report(people, "snapshot_open_wall_ms", (wall_s() - w0) * 1e3);
	if (t == NULL) {
		fprintf(stderr, "%s\n", errs.msgs[0]);
		return -1;
	}
	report(people, "snapshot_open_ms", (t1 - t0) * 1e3);
	/* First pass pages the file in; the second measures a warm table. */
	bench_lookups(t, people, 0, NULL);
	bench_lookups(t, people, 0, "snap");
	bench_lookups(t, people, 1, "snap");
	consent_free(t);
	unlink(path);
	cg_errors_reset(&errs);
	return 0;
}

int
main(int argc, char **argv)
{
	uint64_t sizes[2] = {1000000, 10000000};
	int nsizes = 2;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--people") == 0 && i + 1 < argc) {
			sizes[0] = strtoull(argv[++i], NULL, 10);
			nsizes = 1;
		} else {
			fprintf(stderr, "usage: bench_consent [--people N]\n");
			return 2;
		}
	}
	for (int i = 0; i < nsizes; i++)
		if (sizes[i] == 0 || run(sizes[i]) < 0)
			return 1;
	return 0;
}
