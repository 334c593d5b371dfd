/*
 * test_scan_outcome.h: what the scanner's tests share. outcome_of puts
 * everything the scanner says about one buffer into bytes, so that two
 * kernels can be compared with memcmp (test_scan_kernel.c, fuzz_scan.c);
 * rnd is the tests' fixed-seed generator (test_scan.c too).
 *
 * For scan_record and scan_line: the verdict, the error text, the record
 * range, the missing bits and every subject; then for each body format the
 * records scan_iter_next yields (ranges, missing bits, subjects) and how it
 * ended (verdict, index, offset, error, array offsets).
 */
#ifndef TEST_SCAN_OUTCOME_H
#define TEST_SCAN_OUTCOME_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "consentgate/scan.h"

struct outcome {
	char *buf;
	size_t len, cap;
};

static inline void
outcome_put(struct outcome *o, const void *p, size_t n)
{
	if (o->cap - o->len < n)
		n = o->cap - o->len; /* truncated: still compared */
	memcpy(o->buf + o->len, p, n);
	o->len += n;
}

static inline void outcome_printf(struct outcome *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static inline void
outcome_printf(struct outcome *o, const char *fmt, ...)
{
	char tmp[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0)
		outcome_put(o, tmp,
		            (size_t)n < sizeof(tmp) ? (size_t)n
		                                    : sizeof(tmp) - 1);
}

static inline void
outcome_record(struct outcome *o, const struct scan_record *r)
{
	outcome_printf(o, " [%zu,%zu) m%u n%u", r->start, r->end, r->missing,
	               r->nsubjects);
	for (unsigned i = 0; i < r->nsubjects && i < CG_MAX_SUBJECTS; i++) {
		outcome_printf(o, " %zu:", r->subjects[i].len);
		outcome_put(o, r->subjects[i].ptr, r->subjects[i].len);
	}
}

static inline void
outcome_single(struct outcome *o, const char *what, int rc,
               const struct scan_record *r, const char *err)
{
	outcome_printf(o, "\n%s %d", what, rc);
	if (rc == 0)
		outcome_record(o, r);
	else
		outcome_printf(o, " %s", err != NULL ? err : "(null)");
}

/* The outcome of every entry point on buf[0,len) into o (reset first). */
static inline void
outcome_of(struct outcome *o, const struct scan_spec *spec,
           const struct jsonptr *array_at, const char *buf, size_t len)
{
	static const enum scan_format fmts[] = {
	    SCAN_FORMAT_NDJSON,
	    SCAN_FORMAT_ARRAY,
	    SCAN_FORMAT_ARRAY_AT,
	    SCAN_FORMAT_OBJECT,
	};
	static struct scan_record r;
	struct scan_iter it;
	const char *err;
	int rc;

	o->len = 0;
	err = NULL;
	rc = scan_record(spec, buf, len, &r, &err);
	outcome_single(o, "record", rc, &r, err);
	err = NULL;
	rc = scan_line(spec, buf, len, &r, &err);
	outcome_single(o, "line", rc, &r, err);
	for (size_t f = 0; f < sizeof(fmts) / sizeof(fmts[0]); f++) {
		scan_iter_init(&it, spec, fmts[f], array_at, buf, len);
		outcome_printf(o, "\nformat %d:", (int)fmts[f]);
		while ((rc = scan_iter_next(&it, &r)) == 1)
			outcome_record(o, &r);
		outcome_printf(o, " end %d i%u", rc, it.index);
		if (rc < 0)
			outcome_printf(o, " @%zu %s", it.offset,
			               it.error != NULL ? it.error : "(null)");
		else if (fmts[f] == SCAN_FORMAT_ARRAY ||
		         fmts[f] == SCAN_FORMAT_ARRAY_AT)
			outcome_printf(o, " [%zu %zu]", it.array_open,
			               it.array_close);
	}
}

/* xorshift64*, fixed seed: a run is the same every time */
static uint64_t rnd_state = 0x2545f4914f6cdd1dull;

static inline uint32_t
rnd(uint32_t n)
{
	rnd_state ^= rnd_state >> 12;
	rnd_state ^= rnd_state << 25;
	rnd_state ^= rnd_state >> 27;
	return (uint32_t)((rnd_state * 0x2545f4914f6cdd1dull) >> 33) % n;
}

#endif
