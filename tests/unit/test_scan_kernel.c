/*
 * test_scan_kernel: every stage-1 kernel the CPU runs says exactly what
 * the scalar reference says (policy/scan_kernel.c): same verdicts, error
 * texts and offsets, record ranges and subjects, through scan_record,
 * scan_line and scan_iter in every format (test_scan_outcome.h).
 *
 * The inputs put what stage 1 must notice at every offset of a 64-byte
 * block, so that each falls on and around a block boundary: string ends,
 * escapes, multi-byte characters, invalid UTF-8, raw U+2028/2029/0085,
 * control bytes, CRs, a buffer end; then random mutations of tweet-like
 * records (fixed seed). test_scan runs its whole suite under every kernel
 * too.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../policy/scan_internal.h"
#include "consentgate/scan.h"
#include "test_scan_outcome.h"

static struct jsonptr loc[2], data_at;
static struct scan_spec spec;
static char want_buf[1 << 16], got_buf[1 << 16];
static unsigned compared, differ;

static void
setup_spec(void)
{
	const char *err;

	assert_int_equal(jsonptr_parse("/author_id", 10, &loc[0], &err), 0);
	assert_int_equal(jsonptr_parse("/mentions/*/id", 14, &loc[1], &err), 0);
	assert_int_equal(jsonptr_parse("/data", 5, &data_at, &err), 0);
	spec.locators = loc;
	spec.nlocators = 2;
}

/* The outcome under kernel k equals the scalar one. */
static void
same_outcome(enum scan_kernel k, const char *buf, size_t len)
{
	struct outcome want = {want_buf, 0, sizeof(want_buf)},
	               got = {got_buf, 0, sizeof(got_buf)};

	assert_int_equal(scan_kernel_use(SCAN_KERNEL_SCALAR), 0);
	outcome_of(&want, &spec, &data_at, buf, len);
	assert_int_equal(scan_kernel_use(k), 0);
	outcome_of(&got, &spec, &data_at, buf, len);
	compared++;
	if (want.len != got.len || memcmp(want.buf, got.buf, want.len) != 0) {
		if (differ++ < 5)
			fprintf(stderr,
			        "kernel %s differs on %zu bytes: %.*s\n"
			        "scalar:%.*s\n%s:%.*s\n",
			        scan_kernel_name(k), len, (int)len, buf,
			        (int)want.len, want.buf, scan_kernel_name(k),
			        (int)got.len, got.buf);
	}
}

/* what stage 1 must notice, each put at every offset of a block */
static const char *const pieces[] = {
    "",
    "\\\"",
    "\\\\",
    "\\u00e9",
    "\\ud83d\\ude00",
    "\\u0000",
    "\\ud83d",
    "\\ude00",
    "\\x",
    "\\u12",
    "\xc3\xa9",
    "\xe6\x97\xa5",
    "\xf0\x9f\x98\x80",
    "\xe2\x80\xa8",
    "\xe2\x80\xa9",
    "\xc2\x85",
    "\xe2\x80\xa7",
    "\xc2\x84",
    "\xc0\x80",
    "\xed\xa0\x80",
    "\xf4\x90\x80\x80",
    "\x80",
    "\xe6\x97",
    "\xf0\x9f\x98",
    "\xff",
    "\x01",
    "\t",
    "\n",
    "\r",
    "\r\n",
    "\"",
    "\\",
};

static enum scan_kernel kernels[3];
static unsigned nkernels;

static void
each_kernel(const char *buf, size_t len)
{
	for (unsigned i = 0; i < nkernels; i++)
		same_outcome(kernels[i], buf, len);
}

/* A piece at every block offset: in a member name, in the subject, in a
 * long text, and as the buffer's last bytes. */
static void
test_block_offsets(void **state)
{
	static char buf[1024];
	int n;

	(void)state;
	for (size_t pi = 0; pi < sizeof(pieces) / sizeof(pieces[0]); pi++) {
		const char *pc = pieces[pi];

		for (int pad = 0; pad < 70; pad++) {
			n = snprintf(
			    buf, sizeof(buf),
			    "{\"a\":\"%.*s%s\",\"author_id\":\"12%s3\","
			    "\"t\":\"%.*s%s%.*s\",\"mentions\":[{\"id\":"
			    "\"%s7\"}]}\n{\"k%s\":%d}",
			    pad,
			    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
			    "xxxxxxxxxxxxxxxxxxxxxxxxx",
			    pc, pc, pad % 13, "yyyyyyyyyyyyy", pc, 70 - pad,
			    "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"
			    "zzzzzzzzzzzzzzzzzzzzzzzzzzz",
			    pc, pc, pad);
			assert_true(n > 0 && (size_t)n < sizeof(buf));
			each_kernel(buf, (size_t)n);
			/* the buffer ends inside or right after the piece */
			n = snprintf(
			    buf, sizeof(buf), "{\"author_id\":\"%.*s%s", pad,
			    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
			    "xxxxxxxxxxxxxxxxxxxxxxxxx",
			    pc);
			each_kernel(buf, (size_t)n);
			buf[n++] = '"';
			buf[n++] = '}';
			each_kernel(buf, (size_t)n);
			/* a string after a long gap of grammar (a fresh
			 * stage-1 window) */
			n = snprintf(
			    buf, sizeof(buf),
			    "[{\"n\":%.*s1,\"author_id\":\"%s\"}]", pad,
			    "000000000000000000000000000000000000000000000"
			    "0000000000000000000000000",
			    pc);
			each_kernel(buf, (size_t)n);
		}
	}
	printf("block offsets: %u outcomes compared\n", compared);
	assert_int_equal(differ, 0);
}

static const char base_records[] =
    "{\"id\":1234567890123,\"author_id\":\"4242\",\"text\":\"caf\xc3\xa9 "
    "\\\"quoted\\\" \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80 line\\nbreak "
    "\\u00e9t\\u00e9 plain words for a while to cross a block\","
    "\"public_metrics\":{\"retweet_count\":12,\"like_count\":3},"
    "\"entities\":{\"mentions\":[{\"start\":0,\"id\":\"77\"}]},"
    "\"mentions\":[{\"id\":\"88\"},{\"id\":99}],\"geo\":null,"
    "\"ok\":true,\"score\":0.25}\n"
    "{\"author_id\":\"5\",\"data\":[{\"author_id\":\"6\"}],\"t\":\"\xd0\xbf"
    "\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82 \xe2\x80\xa8?\"}\r\n"
    "\n  \t\n[1,2,{\"x\":[]}]\n";

static const char *const insert[] = {
    "\"",       "\\",   "\xc3", "\xa9", "\xe2\x80\xa8",
    "\xc2\x85", "\xe2", "\x80", "\xf0", "\xff",
    "\r",       "\n",   "\t",   " ",    "{",
    "}",        "[",    "]",    ",",    ":",
    "0",        "-",    "e",    "\\u",  "\\ud800",
    "\x01",     "\x7f", "x",
};

/* Random byte-level mutations of records that hold everything. */
static void
test_mutations(void **state)
{
	static char buf[2048];
	unsigned start = compared;

	(void)state;
	for (int round = 0; round < 20000; round++) {
		size_t n = sizeof(base_records) - 1;
		unsigned edits = 1 + rnd(4);

		memcpy(buf, base_records, n);
		for (unsigned e = 0; e < edits; e++) {
			size_t at = rnd((uint32_t)n);
			const char *ins =
			    insert[rnd(sizeof(insert) / sizeof(insert[0]))];
			size_t il = strlen(ins);

			switch (rnd(3)) {
			case 0: /* replace */
				if (at + il <= n)
					memcpy(buf + at, ins, il);
				break;
			case 1: /* insert */
				if (n + il < sizeof(buf)) {
					memmove(buf + at + il, buf + at,
					        n - at);
					memcpy(buf + at, ins, il);
					n += il;
				}
				break;
			default: /* delete */
				if (at + il <= n) {
					memmove(buf + at, buf + at + il,
					        n - at - il);
					n -= il;
				}
				break;
			}
		}
		/* also a random cut, for the buffer's end */
		each_kernel(buf, round % 7 == 0 ? rnd((uint32_t)n + 1) : n);
	}
	printf("mutations: %u outcomes compared\n", compared - start);
	assert_int_equal(differ, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_block_offsets),
	    cmocka_unit_test(test_mutations),
	};
	enum scan_kernel active = scan_kernel_active;
	int rc;

	setup_spec();
	for (int k = SCAN_KERNEL_AVX2; k <= SCAN_KERNEL_AVX512; k++) {
		if (scan_kernel_supported((enum scan_kernel)k))
			kernels[nkernels++] = (enum scan_kernel)k;
		printf("kernel %s: %s\n", scan_kernel_name((enum scan_kernel)k),
		       scan_kernel_supported((enum scan_kernel)k)
		           ? "compared with scalar"
		           : "not on this CPU, skipped");
	}
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	scan_kernel_active = active;
	return rc;
}
