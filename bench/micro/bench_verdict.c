/*
 * bench_verdict.c: the decision pipeline of one inspected request, without
 * sockets: the verdict over a body, streamed line by line as
 * proxy/inspect.c feeds it, or whole as for a gzip body or a JSON array.
 *
 *   bench_verdict POLICY CONSENT BODY [stream|whole|ab] [ROUNDS]
 *
 * ab: the streamed verdict (batched lookups, each distinct subject once)
 * and the same lines scanned and decided one record at a time with
 * rule_decide_record, alternating round by round in one process, so that
 * a shared machine's moods weigh on both alike.
 *
 * BENCH_BODIES=N reads BODY.0 .. BODY.N-1 instead and takes the next one
 * each round (ab: a different one for each side), so that the people
 * looked up are not all in the cache from the round before, as they would
 * be with one body sent again and again.
 *
 * Meant for instruction counts: run it under
 *   valgrind --tool=callgrind --toggle-collect=pipeline_once ...
 * and divide the inclusive count by ROUNDS. It also prints the thread's
 * CPU time per request (noisy on a shared machine).
 * Output: verdict\t<mode>\t<metric>\t<value>
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "consentgate/verdict.h"

static char *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long n;

	if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) != 0 ||
	    (buf = malloc((size_t)n + 1)) == NULL ||
	    fread(buf, 1, (size_t)n, f) != (size_t)n) {
		fprintf(stderr, "bench_verdict: cannot read %s\n", path);
		exit(1);
	}
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static double
cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One request: begin, every record, end. Returns the kept count. */
__attribute__((noinline)) static unsigned
pipeline_once(struct verdict *v, const struct policy_route *r,
              const struct consent_table *t, const char *body, size_t len,
              bool stream)
{
	struct verdict_header h = {{"Content-Type", 12},
	                           {"application/x-ndjson", 20}};
	struct verdict_request req = {&h, 1, 1767225600, 0};
	const struct verdict_record *rec;
	size_t pos = 0;

	if (verdict_begin(v, r, t, &req) != 0)
		return 0;
	if (!stream) {
		if (verdict_body(v, body, len) != 0)
			return 0;
		while (verdict_next(v, &rec) == 1)
			;
		verdict_end(v);
		return v->kept;
	}
	/* as inspect_feed: the lines of one chunk staged a window at a time,
	   then decided in order */
	while (pos < len) {
		unsigned staged = 0;

		while (pos < len) {
			const char *line = body + pos;
			const char *nl = memchr(line, '\n', len - pos);
			size_t n = nl ? (size_t)(nl - line) : len - pos;

			if (verdict_stage_line(v, line, n) != 1)
				break;
			staged++;
			pos += n + (nl != NULL);
		}
		if (staged == 0)
			return 0;
		while (staged-- > 0)
			if (verdict_feed_next(v, &rec) != 0)
				return 0;
	}
	verdict_end(v);
	return v->kept;
}

/* The same lines, each record decided on its own: a lookup per subject. */
__attribute__((noinline)) static unsigned
direct_once(const struct policy_route *r, const struct consent_table *t,
            struct scan_record *sr, const char *body, size_t len)
{
	struct policy_decision d;
	unsigned kept = 0;
	size_t pos = 0;

	while (pos < len) {
		const char *line = body + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - line) : len - pos;
		const char *err;

		if (n > 0) {
			if (scan_line(route_scan_spec(r), line, n, sr, &err) !=
			    0)
				return 0;
			rule_decide_record(r, t, sr, 1767225600, &d);
			kept += d.allow;
		}
		pos += n + (nl != NULL);
	}
	return kept;
}

int
main(int argc, char **argv)
{
	struct cg_errors errs;
	struct policy *p;
	struct consent_table *t;
	const struct policy_route *r = NULL;
	struct verdict v;
	size_t lens[64];
	char *bodies[64];
	unsigned nbodies = 1, nb = 0;
	bool stream, ab;
	unsigned rounds, kept = 0;
	double t0;

	if (argc < 4) {
		fprintf(stderr, "usage: bench_verdict POLICY CONSENT BODY "
		                "[stream|whole] [ROUNDS]\n");
		return 2;
	}
	stream = argc < 5 || strcmp(argv[4], "whole") != 0;
	ab = argc >= 5 && strcmp(argv[4], "ab") == 0;
	rounds = argc > 5 ? (unsigned)atoi(argv[5]) : 200;
	cg_errors_init(&errs);
	p = policy_load(argv[1], &errs);
	t = consent_open(argv[2], &errs);
	if (p == NULL || t == NULL) {
		for (unsigned i = 0; i < errs.count; i++)
			fprintf(stderr, "%s\n", errs.msgs[i]);
		return 1;
	}
	for (unsigned i = 0; i < route_count(p); i++)
		if (route_action(route_at(p, i)) == POLICY_ACTION_INSPECT &&
		    route_subject_header(route_at(p, i)) == NULL) {
			r = route_at(p, i);
			break;
		}
	if (r == NULL) {
		fprintf(stderr, "bench_verdict: no inspected body route\n");
		return 1;
	}
	if (getenv("BENCH_BODIES") != NULL)
		nbodies = (unsigned)atoi(getenv("BENCH_BODIES"));
	if (nbodies < 1 || nbodies > 64)
		nbodies = 1;
	for (unsigned i = 0; i < nbodies; i++) {
		char path[4096];

		if (getenv("BENCH_BODIES") == NULL)
			snprintf(path, sizeof(path), "%s", argv[3]);
		else
			snprintf(path, sizeof(path), "%s.%u", argv[3], i);
		bodies[i] = slurp(path, &lens[i]);
	}
	verdict_init(&v);
	if (ab) {
		struct scan_record *sr = malloc(sizeof(*sr));
		double ta = 0, tb = 0, x;
		unsigned ka = 0, kb = 0;

		for (unsigned i = 0; sr != NULL && i < rounds; i++) {
			x = cpu_s();
			ka =
			    pipeline_once(&v, r, t, bodies[nb], lens[nb], true);
			ta += cpu_s() - x;
			nb = (nb + 1) % nbodies;
			x = cpu_s();
			kb = direct_once(r, t, sr, bodies[nb], lens[nb]);
			tb += cpu_s() - x;
			nb = (nb + 1) % nbodies;
		}
		printf("verdict\tab\tkept\t%u %u\n", ka, kb);
		printf("verdict\tab\tus_batched\t%.2f\n", ta / rounds * 1e6);
		printf("verdict\tab\tus_one_by_one\t%.2f\n", tb / rounds * 1e6);
		free(sr);
		rounds = 0;
	}
	t0 = cpu_s();
	for (unsigned i = 0; i < rounds; i++) {
		kept = pipeline_once(&v, r, t, bodies[nb], lens[nb], stream);
		nb = (nb + 1) % nbodies;
	}
	t0 = cpu_s() - t0;
	if (ab)
		goto done;
	printf("verdict\t%s\trecords\t%u\n", stream ? "stream" : "whole",
	       v.records);
	printf("verdict\t%s\tkept\t%u\n", stream ? "stream" : "whole", kept);
	printf("verdict\t%s\tus_per_request\t%.2f\n",
	       stream ? "stream" : "whole", t0 / rounds * 1e6);
done:
	verdict_reset(&v);
	for (unsigned i = 0; i < nbodies; i++)
		free(bodies[i]);
	consent_free(t);
	policy_free(p);
	cg_errors_reset(&errs);
	return 0;
}
