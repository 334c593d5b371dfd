/*
 * bench_tweets.h: the tweet-like NDJSON of the scanner benchmarks
 * (bench_scan.c, bench_simdjson.cpp): ~512-byte records (nested objects,
 * non-ASCII text, escapes, numbers) from a fixed seed, so that every
 * contender reads the same bytes.
 */
#ifndef BENCH_TWEETS_H
#define BENCH_TWEETS_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* Fill buf[0,cap) with about want bytes of records; returns the length. */
static size_t
gen_records(char *buf, size_t cap, size_t want)
{
	size_t len = 0, k;

	while (len < want && (k = gen_record(buf + len, cap - len)) > 0)
		len += k;
	return len;
}

/* CPU time of this thread: the machine is shared, wall time would count
   others (the C benchmarks' clock) */
static inline double
bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* qsort order of doubles, for the medians */
static inline int
bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

#endif
