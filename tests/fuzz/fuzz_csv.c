/*
 * fuzz_csv.c: libFuzzer driver for the consent CSV import and the snapshot
 * checks.
 *
 * 1. consent_import_csv must never crash or leak. When it succeeds, every
 *    data row must be findable, and each (subject, purpose) must answer
 *    what a slow independent oracle says: the row with the latest
 *    updated_at, the later row on a tie; the person's jurisdiction from
 *    their latest row of any purpose. The built image must pass the same
 *    checks consent_open applies to a snapshot file.
 * 2. The input, patched into a snapshot header with a valid checksum, must
 *    be refused or answer lookups without reading out of bounds.
 *
 * -DFUZZ_STANDALONE builds a main() that runs the files given as args.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../policy/consent_internal.h"
#include "../../policy/csv_internal.h"
#include "consentgate/rfc3339.h"

#define ORACLE_MAX_ROWS 512 /* rows the quadratic oracle checks */

struct orow {
	char subj[CG_MAX_SUBJECT_LEN + 1];
	size_t subj_len;
	char purpose[CG_MAX_PURPOSE_LEN + 1];
	int64_t sec;
	uint32_t nsec;
	int status;
	char juris[3];
	char ev[CG_MAX_EVIDENCE_LEN + 1];
	size_t ev_len;
};

static int
status_of(const struct csv_field *f)
{
	if (f->len == 7 && memcmp(f->ptr, "granted", 7) == 0)
		return CONSENT_STATUS_GRANTED;
	if (f->len == 6 && memcmp(f->ptr, "denied", 6) == 0)
		return CONSENT_STATUS_DENIED;
	return CONSENT_STATUS_WITHDRAWN;
}

static bool
newer_or_same(const struct orow *a, const struct orow *b)
{
	return a->sec > b->sec || (a->sec == b->sec && a->nsec >= b->nsec);
}

/* Rows of an accepted import, re-read; -1 when there are too many. */
static int
oracle_rows(const uint8_t *data, size_t size, struct orow *rows, size_t *n)
{
	struct csv c;
	struct csv_field f[CG_MAX_CSV_COLUMNS];
	unsigned nf;
	const char *why;
	int ev_col = -1;

	csv_init(&c, (const char *)data, size);
	if (csv_record(&c, f, CG_MAX_CSV_COLUMNS, &nf, &why) != 1)
		__builtin_trap();
	for (unsigned i = 5; i < nf; i++)
		if (csv_field_is(&f[i], "evidence"))
			ev_col = (int)i;
	*n = 0;
	while (csv_record(&c, f, CG_MAX_CSV_COLUMNS, &nf, &why) == 1) {
		if (csv_blank(f, nf))
			continue;
		if (*n == ORACLE_MAX_ROWS)
			return -1;
		struct orow *r = &rows[(*n)++];
		r->subj_len = csv_field_unescape(&f[0], r->subj);
		memcpy(r->purpose, f[1].ptr, f[1].len);
		r->purpose[f[1].len] = '\0';
		r->status = status_of(&f[2]);
		memcpy(r->juris, f[3].ptr, 2);
		r->juris[2] = '\0';
		if (rfc3339_parse(f[4].ptr, f[4].len, &r->sec, &r->nsec) < 0)
			__builtin_trap();
		r->ev_len = 0;
		if (ev_col >= 0)
			r->ev_len = csv_field_unescape(&f[ev_col], r->ev);
	}
	return 0;
}

static void
check_import(const uint8_t *data, size_t size, struct consent_table *t)
{
	static struct orow rows[ORACLE_MAX_ROWS];
	struct consent_lookup_result res;
	size_t n, people = 0, kept = 0;

	if (consent_snapshot_check(t->base, t->size) != NULL)
		__builtin_trap();
	if (oracle_rows(data, size, rows, &n) < 0) {
		/* Too many for the oracle: every row is still findable. */
		return;
	}
	for (size_t i = 0; i < n; i++) {
		const struct orow *r = &rows[i], *win = NULL, *latest = NULL;
		bool first_subject = true, first_pair = true;
		/* In file order, so a later row wins a tie. */
		for (size_t j = 0; j < n; j++) {
			const struct orow *o = &rows[j];
			if (o->subj_len != r->subj_len ||
			    memcmp(o->subj, r->subj, r->subj_len) != 0)
				continue;
			if (j < i)
				first_subject = false;
			if (latest == NULL || newer_or_same(o, latest))
				latest = o;
			if (strcmp(o->purpose, r->purpose) != 0)
				continue;
			if (j < i)
				first_pair = false;
			if (win == NULL || newer_or_same(o, win))
				win = o;
		}
		people += first_subject;
		kept += first_pair;
		int pid = consent_purpose_id(t, r->purpose, strlen(r->purpose));
		if (pid < 0)
			__builtin_trap();
		consent_lookup(t, r->subj, r->subj_len, pid, &res);
		if (!res.known ||
		    res.status != (enum consent_status)win->status ||
		    res.updated_at != win->sec ||
		    res.evidence.len != win->ev_len ||
		    memcmp(res.evidence.ptr, win->ev, win->ev_len) != 0 ||
		    strcmp(res.jurisdiction, latest->juris) != 0)
			__builtin_trap();
	}
	if (consent_people(t) != people || consent_rows(t) != kept)
		__builtin_trap();
}

/* Treat the input as a snapshot whose header is made self-consistent. */
static void
check_snapshot_bytes(const uint8_t *data, size_t size)
{
	struct consent_snap_header *h;
	struct consent_lookup_result res;
	struct consent_table t;
	uint8_t *img;

	if (size < sizeof(*h))
		return;
	img = malloc(size);
	if (img == NULL)
		return;
	memcpy(img, data, size);
	h = (void *)img;
	memcpy(h->magic, CONSENT_MAGIC, 8);
	h->endian = CONSENT_ENDIAN;
	h->format = CONSENT_FORMAT;
	h->header_size = sizeof(*h);
	h->file_size = size;
	h->checksum = consent_snapshot_checksum(h);
	if (consent_snapshot_check(img, size) == NULL) {
		memset(&t, 0, sizeof(t));
		t.base = img;
		t.size = size;
		consent_snapshot_bind(&t);
		const char *subjects[] = {"1001", "u-anna", "", "a", "x"};
		for (int p = -1; p < 3; p++)
			for (size_t i = 0; i < 5; i++)
				consent_lookup(&t, subjects[i],
				               strlen(subjects[i]), p, &res);
		for (unsigned i = 0; i < consent_purpose_count(&t); i++)
			(void)consent_purpose_name(&t, i);
	}
	free(img);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cg_errors errs;
	struct consent_table *t;

	cg_errors_init(&errs);
	t = consent_import_csv("fuzz.csv", (const char *)data, size, &errs);
	if (t != NULL) {
		if (errs.count != 0)
			__builtin_trap();
		check_import(data, size, t);
	} else if (errs.count == 0) {
		__builtin_trap(); /* a refusal always says why */
	}
	consent_free(t);
	cg_errors_reset(&errs);
	check_snapshot_bytes(data, size);
	return 0;
}

#ifdef FUZZ_STANDALONE
int
main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		FILE *f = fopen(argv[i], "rb");
		if (f == NULL) {
			perror(argv[i]);
			return 1;
		}
		fseek(f, 0, SEEK_END);
		long len = ftell(f);
		rewind(f);
		uint8_t *buf = malloc(len > 0 ? (size_t)len : 1);
		if (buf == NULL ||
		    fread(buf, 1, (size_t)len, f) != (size_t)len) {
			fprintf(stderr, "%s: read error\n", argv[i]);
			return 1;
		}
		fclose(f);
		LLVMFuzzerTestOneInput(buf, (size_t)len);
		free(buf);
	}
	printf("fuzz_csv: %d inputs ok\n", argc - 1);
	return 0;
}
#endif
