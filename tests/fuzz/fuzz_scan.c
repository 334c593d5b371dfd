/*
 * fuzz_scan: the record scanner against jansson as the oracle.
 *
 * For each input: scan_record with the locators /author_id and
 * /mentions/ * /id must agree with json_loadb (JSON_REJECT_DUPLICATES |
 * JSON_DECODE_ANY | JSON_ALLOW_NUL):
 *  - jansson refuses (not for a duplicate member, not for a numeric
 *    overflow) and we accept: abort;
 *  - jansson accepts and we refuse for a reason that is not a subject
 *    rule or our depth limit: abort;
 *  - both accept: the subjects must be the ones jansson finds.
 * A raw NUL byte is never valid JSON, but jansson stops reading at one
 * ("0\0" passes): such inputs we must refuse, whatever jansson says.
 * The iterators run on the same bytes as NDJSON, ARRAY and ARRAY_AT /data:
 * every record range must lie inside the buffer and rescan alone to the
 * same subjects, and a whole array body we accept must be one jansson
 * accepts, with as many records.
 *
 * All of that under the kernel CG_SCAN_KERNEL names (or the one the CPU
 * chose, policy/scan_kernel.c); a kernel other than the scalar reference
 * must then say exactly what the reference says, through every entry
 * point and body format (tests/unit/test_scan_outcome.h).
 *
 * Built with -DFUZZ_STANDALONE it runs every file named on the command
 * line, so a corpus replays as a regression test.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "../../policy/scan_internal.h"
#include "../unit/test_scan_outcome.h"
#include "consentgate/scan.h"

#define ORACLE_FLAGS (JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct scan_record rec, rec2;
static struct jsonptr loc[2], data_at;
static struct scan_spec spec;

static void
setup(void)
{
	const char *err;

	if (spec.locators != NULL)
		return;
	if (jsonptr_parse("/author_id", 10, &loc[0], &err) < 0 ||
	    jsonptr_parse("/mentions/*/id", 14, &loc[1], &err) < 0 ||
	    jsonptr_parse("/data", 5, &data_at, &err) < 0)
		abort();
	spec.locators = loc;
	spec.nlocators = 2;
}

static void
disagree(const char *what, const char *detail, const uint8_t *d, size_t n)
{
	fprintf(stderr, "fuzz_scan: %s (%s) on %zu bytes: %.*s\n", what,
	        detail ? detail : "", n, (int)(n < 300 ? n : 300),
	        (const char *)d);
	abort();
}

/* 1: id collected; 0: nothing to collect; -1: we must refuse */
static int
collect(json_t *v, char ids[][300], unsigned *n)
{
	char tmp[300];
	size_t len;

	if (json_is_string(v)) {
		len = json_string_length(v);
		if (len == 0 || len > CG_MAX_SUBJECT_LEN ||
		    memchr(json_string_value(v), '\0', len) != NULL)
			return -1;
		memcpy(tmp, json_string_value(v), len);
		tmp[len] = '\0';
	} else if (json_is_integer(v)) {
		snprintf(tmp, sizeof(tmp), "%lld",
		         (long long)json_integer_value(v));
	} else {
		return -1;
	}
	if (*n >= CG_MAX_SUBJECTS)
		return -1;
	/* jansson reads the number -0 as 0; we keep "-0": compare both as 0 */
	strcpy(ids[(*n)++], strcmp(tmp, "-0") == 0 ? "0" : tmp);
	return 1;
}

static bool
variant(const char *k, const char *tok)
{
	return strcasecmp(k, tok) == 0 && strcmp(k, tok) != 0;
}

/* The subjects jansson's tree holds, or -1 when the record is ambiguous. */
static int
oracle_subjects(json_t *root, char ids[][300], unsigned *n)
{
	const char *k;
	json_t *v, *m, *id;
	size_t i;

	*n = 0;
	if (!json_is_object(root))
		return 0;
	json_object_foreach(root, k, v) if (variant(k, "author_id") ||
	                                    variant(k, "mentions")) return -1;
	if ((v = json_object_get(root, "author_id")) != NULL &&
	    collect(v, ids, n) < 0)
		return -1;
	if ((v = json_object_get(root, "mentions")) == NULL)
		return 0;
	if (!json_is_array(v))
		return -1;
	json_array_foreach(v, i, m)
	{
		if (!json_is_object(m))
			return -1;
		json_object_foreach(m, k, id) if (variant(k, "id")) return -1;
		if ((id = json_object_get(m, "id")) != NULL &&
		    collect(id, ids, n) < 0)
			return -1;
	}
	return 0;
}

static int
cmp_id(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void
check_oracle(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data, *err = NULL;
	static char want[CG_MAX_SUBJECTS][300], got[CG_MAX_SUBJECTS][300];
	unsigned nwant = 0;
	json_error_t je;
	json_t *j;
	int ours = scan_record(&spec, buf, size, &rec, &err);

	/* a raw NUL is never valid JSON; jansson stops reading at one */
	if (memchr(buf, '\0', size) != NULL) {
		if (ours == 0)
			disagree("we accept a raw NUL byte", NULL, data, size);
		return;
	}
	j = json_loadb(buf, size, ORACLE_FLAGS, &je);
	if (j == NULL && json_error_code(&je) == json_error_duplicate_key)
		j = json_loadb(buf, size,
		               ORACLE_FLAGS & ~JSON_REJECT_DUPLICATES, &je);
	if (j == NULL) {
		if (json_error_code(&je) != json_error_numeric_overflow &&
		    ours == 0)
			disagree("jansson refuses, we accept", je.text, data,
			         size);
		return;
	}
	if (oracle_subjects(j, want, &nwant) < 0) {
		json_decref(j);
		if (ours == 0)
			disagree("we accept an ambiguous record", NULL, data,
			         size);
		return;
	}
	json_decref(j);
	if (ours != 0) {
		/* reader safety (DESIGN.md, contract item 5): refusals of
		 * valid JSON that some pipeline reader would split; each must
		 * have its cause in the input */
		if (strncmp(err, "carriage return", 15) == 0) {
			const char *cr = memchr(buf, '\r', size);
			while (cr != NULL && cr + 1 < buf + size &&
			       cr[1] == '\n')
				cr = memchr(cr + 1, '\r',
				            size - (size_t)(cr + 1 - buf));
			if (cr == NULL || cr + 1 == buf + size)
				disagree("CR refusal without a bare CR", err,
				         data, size);
			return;
		}
		if (strncmp(err, "a nested object", 15) == 0) {
			if (memchr(buf, '\n', size) == NULL)
				disagree("line refusal without a line end", err,
				         data, size);
			return;
		}
		if (strncmp(err, "ambiguous", 9) != 0 &&
		    strncmp(err, "subject", 7) != 0 &&
		    strncmp(err, "too many subjects", 17) != 0 &&
		    strncmp(err, "nesting", 7) != 0)
			disagree("jansson accepts, we refuse", err, data, size);
		return;
	}
	if (rec.nsubjects != nwant)
		disagree("subject count differs", NULL, data, size);
	for (unsigned i = 0; i < nwant; i++) {
		struct cg_slice s = rec.subjects[i];

		if (s.len >= sizeof(got[0]))
			disagree("subject too long", NULL, data, size);
		memcpy(got[i], s.ptr, s.len);
		got[i][s.len] = '\0';
		if (strcmp(got[i], "-0") == 0) /* see collect() */
			strcpy(got[i], "0");
	}
	qsort(want, nwant, sizeof(want[0]), cmp_id);
	qsort(got, nwant, sizeof(got[0]), cmp_id);
	for (unsigned i = 0; i < nwant; i++)
		if (strcmp(want[i], got[i]) != 0)
			disagree("subjects differ", got[i], data, size);
}

/*
 * A whole ARRAY or ARRAY_AT body we accept: jansson accepts it too (unless
 * only for a duplicate member or a number it cannot hold) and its records
 * array holds as many elements as we yielded.
 */
static void
check_wrapper(const uint8_t *data, size_t size, enum scan_format fmt,
              unsigned nrec)
{
	json_error_t je;
	json_t *j, *a;

	if (memchr(data, '\0', size) != NULL)
		disagree("wrapper with a raw NUL accepted", NULL, data, size);
	j = json_loadb((const char *)data, size, ORACLE_FLAGS, &je);
	if (j == NULL && json_error_code(&je) == json_error_duplicate_key)
		j = json_loadb((const char *)data, size,
		               ORACLE_FLAGS & ~JSON_REJECT_DUPLICATES, &je);
	if (j == NULL) {
		if (json_error_code(&je) != json_error_numeric_overflow)
			disagree("jansson refuses a body we accept", je.text,
			         data, size);
		return;
	}
	a = fmt == SCAN_FORMAT_ARRAY ? j : json_object_get(j, "data");
	if (!json_is_array(a) || json_array_size(a) != nrec)
		disagree("records array differs from jansson's", NULL, data,
		         size);
	json_decref(j);
}

static void
check_iter(const uint8_t *data, size_t size, enum scan_format fmt,
           const struct jsonptr *at)
{
	const char *buf = (const char *)data, *err;
	struct scan_iter it;
	unsigned nrec = 0;
	int r;

	scan_iter_init(&it, &spec, fmt, at, buf, size);
	while ((r = scan_iter_next(&it, &rec)) == 1) {
		nrec++;
		if (rec.start >= rec.end || rec.end > size)
			disagree("record range outside the buffer", NULL, data,
			         size);
		if (scan_record(&spec, buf + rec.start, rec.end - rec.start,
		                &rec2, &err) != 0)
			disagree("record does not rescan", err, data, size);
		if (rec2.nsubjects != rec.nsubjects)
			disagree("rescan subjects differ", NULL, data, size);
		for (unsigned i = 0; i < rec.nsubjects; i++)
			if (rec.subjects[i].len != rec2.subjects[i].len ||
			    memcmp(rec.subjects[i].ptr, rec2.subjects[i].ptr,
			           rec.subjects[i].len) != 0)
				disagree("rescan subjects differ", NULL, data,
				         size);
	}
	if (r < 0 && (it.error == NULL || it.offset > size))
		disagree("error without message or offset", NULL, data, size);
	if (r == 0 &&
	    (fmt == SCAN_FORMAT_ARRAY || fmt == SCAN_FORMAT_ARRAY_AT) &&
	    (it.array_open >= it.array_close || it.array_close >= size ||
	     buf[it.array_open] != '[' || buf[it.array_close] != ']'))
		disagree("array offsets", NULL, data, size);
	if (r == 0 && (fmt == SCAN_FORMAT_ARRAY || fmt == SCAN_FORMAT_ARRAY_AT))
		check_wrapper(data, size, fmt, nrec);
}

/* The kernel under test says what the scalar reference says. */
static void
check_kernel(const uint8_t *data, size_t size)
{
	static char want_buf[1 << 20], got_buf[1 << 20];
	struct outcome want = {want_buf, 0, sizeof(want_buf)},
	               got = {got_buf, 0, sizeof(got_buf)};
	enum scan_kernel k = scan_kernel_active;

	if (k == SCAN_KERNEL_SCALAR)
		return;
	outcome_of(&got, &spec, &data_at, (const char *)data, size);
	scan_kernel_active = SCAN_KERNEL_SCALAR;
	outcome_of(&want, &spec, &data_at, (const char *)data, size);
	scan_kernel_active = k;
	if (want.len != got.len || memcmp(want.buf, got.buf, want.len) != 0) {
		fprintf(stderr, "scalar:%.*s\n%s:%.*s\n", (int)want.len,
		        want.buf, scan_kernel_name(k), (int)got.len, got.buf);
		disagree("kernel differs from the scalar reference",
		         scan_kernel_name(k), data, size);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	setup();
	check_oracle(data, size);
	check_iter(data, size, SCAN_FORMAT_NDJSON, NULL);
	check_iter(data, size, SCAN_FORMAT_ARRAY, NULL);
	check_iter(data, size, SCAN_FORMAT_ARRAY_AT, &data_at);
	check_iter(data, size, SCAN_FORMAT_OBJECT, NULL);
	check_kernel(data, size);
	return 0;
}

#ifdef FUZZ_STANDALONE
int
main(int argc, char **argv)
{
	int rc = 0;

	for (int i = 1; i < argc; i++) {
		FILE *f = fopen(argv[i], "rb");
		uint8_t *buf = NULL;
		long n;

		if (f == NULL || fseek(f, 0, SEEK_END) != 0 ||
		    (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0 ||
		    (buf = malloc((size_t)n + 1)) == NULL ||
		    fread(buf, 1, (size_t)n, f) != (size_t)n) {
			fprintf(stderr, "fuzz_scan: cannot read %s\n", argv[i]);
			rc = 1;
		} else {
			LLVMFuzzerTestOneInput(buf, (size_t)n);
		}
		free(buf);
		if (f != NULL)
			fclose(f);
	}
	printf("fuzz_scan: %d inputs, kernel %s\n", argc - 1,
	       scan_kernel_name(scan_kernel_active));
	return rc;
}
#endif
