/*
 * consent.c: the consent table: CSV import, open, lookup.
 *
 * Import is one pass over the CSV (csv.c): every row is validated and
 * merged into a working hash of people (latest row per purpose wins; on
 * equal timestamps the later row in the file wins). The working table is
 * then laid out as a snapshot image (consent_snapshot.c), so a table from
 * CSV and a table from an mmap'ed snapshot share one lookup path.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "consent_internal.h"
#include "consentgate/rfc3339.h"
#include "csv_internal.h"

#define BATCH 16   /* lookups overlapped by lookup_many */
#define PENDING 16 /* rows merged at once by the import */

/* ---- import: working structures ---- */

/* A validated row waiting to be merged (rows are merged in batches so
 * their hash-slot fetches overlap). */
struct pending {
	struct consent_wnew r;
	int line;
};

struct import {
	const char *name;
	struct cg_errors *errs;
	unsigned nerr;
	struct consent_work w;
	struct pending pend[PENDING];
	unsigned npend;
	int purpose_line[CG_MAX_CONSENT_PURPOSES]; /* first row naming it */
	uint64_t purpose_rows[CG_MAX_CONSENT_PURPOSES]; /* rows naming it */
};

static const char *
ref_ptr(const struct import *im, uint64_t ref)
{
	return consent_ref_ptr(&im->w, ref);
}

static int
bad(struct import *im, int line, const char *msg)
{
	im->nerr++;
	cg_errors_add(im->errs, im->name, line, 0, "%s", msg);
	return -1;
}

/* A ref to the field's bytes, unescaping "" into the arena. -1: no memory. */
static int
field_ref(struct import *im, const struct csv_field *f, uint64_t *ref,
          size_t *len)
{
	struct consent_work *w = &im->w;

	if (!f->escaped) {
		*ref = (uint64_t)(f->ptr - w->buf);
		*len = f->len;
		return 0;
	}
	if (w->arena_len + f->len > w->arena_cap) {
		size_t cap = (w->arena_cap ? w->arena_cap * 2 : 4096) + f->len;
		char *a = realloc(w->arena, cap);
		if (a == NULL)
			return -1;
		w->arena = a;
		w->arena_cap = cap;
	}
	*ref = CONSENT_REF_ARENA | w->arena_len;
	*len = csv_field_unescape(f, w->arena + w->arena_len);
	w->arena_len += *len;
	return 0;
}

/* The id of a purpose name, counting the row on line that names it. */
static int
purpose_intern(struct import *im, const char *s, size_t len, int line)
{
	for (unsigned i = 0; i < im->w.npurposes; i++)
		if (im->w.purpose_len[i] == len &&
		    memcmp(im->w.purpose[i], s, len) == 0) {
			im->purpose_rows[i]++;
			return (int)i;
		}
	if (im->w.npurposes >= CG_MAX_CONSENT_PURPOSES)
		return -1;
	memcpy(im->w.purpose[im->w.npurposes], s, len);
	im->w.purpose[im->w.npurposes][len] = '\0';
	im->w.purpose_len[im->w.npurposes] = (uint8_t)len;
	im->purpose_line[im->w.npurposes] = line;
	im->purpose_rows[im->w.npurposes] = 1;
	return (int)im->w.npurposes++;
}

static bool
later_or_equal(int64_t sec, uint32_t nsec, int64_t than_sec, uint32_t than_nsec)
{
	return sec > than_sec || (sec == than_sec && nsec >= than_nsec);
}

/* Merge one valid row into the working table (consent_internal.h). */
int
consent_work_merge(struct consent_work *w, const struct consent_wnew *pr)
{
	uint64_t subj = pr->subj, ev = pr->ev;
	size_t subj_len = pr->subj_len, ev_len = pr->ev_len;
	int purpose = pr->purpose, status = pr->status;
	const char *juris = pr->juris;
	int64_t sec = pr->sec;
	uint32_t nsec = pr->nsec;
	const char *sp = consent_ref_ptr(w, subj);
	uint64_t h = pr->h;
	uint64_t b = consent_bucket(h, w->nwslots), tag = consent_tag(h);
	struct consent_wperson *p = NULL;
	struct consent_wrow *r;

	for (;;) {
		uint64_t s = w->wslots[b];
		if (s == 0) {
			if (w->npeople >= w->cap_people)
				return -1;
			p = &w->people[w->npeople++];
			memset(p, 0, sizeof(*p));
			p->subj = subj;
			p->subj_len = (uint16_t)subj_len;
			p->latest_sec = INT64_MIN;
			w->wslots[b] =
			    tag << CONSENT_SLOT_OFF_BITS | w->npeople;
			break;
		}
		if (s >> CONSENT_SLOT_OFF_BITS == tag) {
			struct consent_wperson *q =
			    &w->people[(s & CONSENT_SLOT_OFF_MASK) - 1];
			if (q->subj_len == subj_len &&
			    memcmp(consent_ref_ptr(w, q->subj), sp, subj_len) ==
			        0) {
				p = q;
				break;
			}
		}
		if (++b == w->nwslots)
			b = 0;
	}
	/* The newest row of any purpose names the jurisdiction. */
	if (p->latest_sec == INT64_MIN ||
	    later_or_equal(sec, nsec, p->latest_sec, p->latest_nsec)) {
		p->latest_sec = sec;
		p->latest_nsec = nsec;
		memcpy(p->juris, juris, 2);
	}
	for (uint32_t i = p->head; i != 0; i = w->rows[i - 1].next) {
		r = &w->rows[i - 1];
		if (r->purpose != purpose)
			continue;
		if (later_or_equal(sec, nsec, r->sec, r->nsec))
			goto set;
		return 0;
	}
	if (w->nrows >= w->cap_rows)
		return -1;
	r = &w->rows[w->nrows++];
	r->next = p->head;
	r->purpose = (uint8_t)purpose;
	p->head = (uint32_t)w->nrows;
	p->nrows++;
set:
	r->sec = sec;
	r->nsec = nsec;
	r->status = (uint8_t)status;
	r->ev = ev;
	r->ev_len = (uint8_t)ev_len;
	return 0;
}

static void
flush_pending(struct import *im)
{
	for (unsigned i = 0; i < im->npend; i++)
		if (consent_work_merge(&im->w, &im->pend[i].r) < 0)
			bad(im, im->pend[i].line, "out of memory");
	im->npend = 0;
}

static bool
is_space(char ch)
{
	return ch == ' ' || ch == '\t';
}

int
consent_row_parse(struct cg_slice subject, struct cg_slice purpose,
                  struct cg_slice status, struct cg_slice jurisdiction,
                  struct cg_slice updated_at, struct cg_slice evidence,
                  struct consent_row *out, const char **why)
{
	const char *sp = subject.ptr, *st = status.ptr, *ju = jurisdiction.ptr;

	if (subject.len == 0)
		return *why = "empty subject", -1;
	if (subject.len > CG_MAX_SUBJECT_LEN)
		return *why = "subject longer than 256 bytes", -1;
	if (is_space(sp[0]) || is_space(sp[subject.len - 1]))
		return *why = "subject has leading or trailing space", -1;
	if (purpose.len == 0 || purpose.len > CG_MAX_PURPOSE_LEN)
		return *why = "purpose must be 1 to 64 characters", -1;
	for (size_t i = 0; i < purpose.len; i++) {
		char ch = purpose.ptr[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' ||
		      ch == '.'))
			return *why = "purpose may hold only letters, digits, "
			              "'-', '_' and '.'",
			       -1;
	}
	if (status.len == 7 && memcmp(st, "granted", 7) == 0)
		out->status = CONSENT_STATUS_GRANTED;
	else if (status.len == 6 && memcmp(st, "denied", 6) == 0)
		out->status = CONSENT_STATUS_DENIED;
	else if (status.len == 9 && memcmp(st, "withdrawn", 9) == 0)
		out->status = CONSENT_STATUS_WITHDRAWN;
	else
		return *why = "status must be granted, denied or withdrawn", -1;
	if (jurisdiction.len != 2 || ju[0] < 'A' || ju[0] > 'Z' ||
	    ju[1] < 'A' || ju[1] > 'Z')
		return *why = "jurisdiction must be an ISO 3166-1 alpha-2 code "
		              "(two upper-case letters)",
		       -1;
	if (rfc3339_parse(updated_at.ptr, updated_at.len, &out->sec,
	                  &out->nsec) < 0)
		return *why = "updated_at is not a valid RFC 3339 timestamp "
		              "(e.g. 2025-03-01T12:00:00Z)",
		       -1;
	if (evidence.len > CG_MAX_EVIDENCE_LEN)
		return *why = "evidence longer than 255 bytes", -1;
	out->subject = subject;
	out->purpose = purpose;
	out->evidence = evidence;
	memcpy(out->juris, ju, 2);
	return 0;
}

static struct cg_slice
field_slice(const struct csv_field *f)
{
	return (struct cg_slice){f->ptr, f->len};
}

/* Validate one data row and merge it. -1 when reported bad. */
static int
import_row(struct import *im, const struct csv_field *f, int ev_col, int line)
{
	uint64_t subj, ev = 0;
	size_t subj_len, ev_len = 0;
	struct consent_row row;
	const char *why;
	int purpose;

	if (field_ref(im, &f[0], &subj, &subj_len) < 0)
		goto nomem;
	if (ev_col >= 0 && field_ref(im, &f[ev_col], &ev, &ev_len) < 0)
		goto nomem;
	if (consent_row_parse((struct cg_slice){ref_ptr(im, subj), subj_len},
	                      field_slice(&f[1]), field_slice(&f[2]),
	                      field_slice(&f[3]), field_slice(&f[4]),
	                      (struct cg_slice){ref_ptr(im, ev), ev_len}, &row,
	                      &why) < 0)
		return bad(im, line, why);
	purpose = purpose_intern(im, f[1].ptr, f[1].len, line);
	if (purpose < 0)
		return bad(im, line, "more than 255 distinct purposes");
	if (im->nerr > 0)
		return 0; /* the table is lost anyway; only keep validating */
	struct pending *pd = &im->pend[im->npend++];
	struct consent_wnew *pr = &pd->r;
	pr->subj = subj;
	pr->subj_len = (uint16_t)subj_len;
	pr->h = consent_hash(row.subject.ptr, subj_len, CONSENT_HASH_SEED);
	pr->purpose = (uint8_t)purpose;
	pr->status = (uint8_t)row.status;
	memcpy(pr->juris, row.juris, 2);
	pr->sec = row.sec;
	pr->nsec = row.nsec;
	pr->ev = ev;
	pr->ev_len = (uint8_t)ev_len;
	pd->line = line;
	__builtin_prefetch(&im->w.wslots[consent_bucket(pr->h, im->w.nwslots)]);
	if (im->npend == PENDING)
		flush_pending(im);
	return 0;
nomem:
	return bad(im, line, "out of memory");
}

static const char *const header_cols[] = {"subject", "purpose", "status",
                                          "jurisdiction", "updated_at"};

static void
import_reset(struct import *im)
{
	struct consent_work *w = &im->w;

	free(w->arena);
	consent_snapshot_big_free(w->wslots, w->nwslots * sizeof(uint64_t));
	consent_snapshot_big_free(w->people,
	                          w->cap_people * sizeof(*w->people));
	consent_snapshot_big_free(w->rows, w->cap_rows * sizeof(*w->rows));
}

struct consent_table *
consent_import_csv(const char *name, const char *buf, size_t len,
                   struct cg_errors *errs)
{
	struct import *im;
	struct consent_table *t = NULL;
	struct cg_errors local;
	struct csv_field f[CG_MAX_CSV_COLUMNS];
	struct csv c;
	unsigned n, ncols;
	int ev_col = -1, rc, line;
	const char *why = NULL;
	uint64_t bound = 1;

	if (errs == NULL) {
		cg_errors_init(&local);
		errs = &local;
	}
	im = calloc(1, sizeof(*im));
	if (im == NULL) {
		cg_errors_add(errs, name, 0, 0, "out of memory");
		goto done;
	}
	im->name = name;
	im->w.buf = buf;
	im->errs = errs;

	csv_init(&c, buf, len);
	rc = csv_record(&c, f, CG_MAX_CSV_COLUMNS, &n, &why);
	if (rc == 0) {
		cg_errors_add(errs, name, 0, 0,
		              "empty file: the header line "
		              "subject,purpose,status,jurisdiction,updated_at "
		              "is missing");
		goto done;
	}
	if (rc < 0) {
		cg_errors_add(errs, name, 1, 0, "%s", why);
		goto done;
	}
	if (n > CG_MAX_CSV_COLUMNS) {
		cg_errors_add(errs, name, 1, 0, "more than %d columns",
		              CG_MAX_CSV_COLUMNS);
		goto done;
	}
	ncols = n;
	for (unsigned i = 0; i < 5; i++)
		if (i >= n || !csv_field_is(&f[i], header_cols[i])) {
			cg_errors_add(errs, name, 1, 0,
			              "header must start with "
			              "subject,purpose,status,jurisdiction,"
			              "updated_at (column %u should be %s)",
			              i + 1, header_cols[i]);
			goto done;
		}
	for (unsigned i = 5; i < n; i++)
		if (csv_field_is(&f[i], "evidence")) {
			if (ev_col >= 0) {
				cg_errors_add(errs, name, 1, 0,
				              "column evidence appears twice");
				goto done;
			}
			ev_col = (int)i;
		}

	/* Rows cannot outnumber line feeds: size everything once. */
	for (const char *p = buf + c.pos;
	     (p = memchr(p, '\n', len - (size_t)(p - buf))); p++)
		bound++;
	im->w.cap_people = im->w.cap_rows = bound;
	im->w.nwslots = bound * CONSENT_LOAD_NUM / CONSENT_LOAD_DEN + 1;
	im->w.wslots =
	    consent_snapshot_big_alloc(im->w.nwslots * sizeof(uint64_t));
	im->w.people =
	    consent_snapshot_big_alloc(bound * sizeof(struct consent_wperson));
	im->w.rows =
	    consent_snapshot_big_alloc(bound * sizeof(struct consent_wrow));
	if (im->w.wslots == NULL || im->w.people == NULL ||
	    im->w.rows == NULL) {
		cg_errors_add(errs, name, 0, 0, "out of memory");
		goto done;
	}

	while (im->nerr < CG_MAX_ERRORS) {
		line = c.line;
		rc = csv_record(&c, f, CG_MAX_CSV_COLUMNS, &n, &why);
		if (rc == 0)
			break;
		if (rc < 0) {
			bad(im, line, why);
			continue;
		}
		if (csv_blank(f, n))
			continue; /* a blank line carries nothing */
		if (n != ncols) {
			char msg[64];
			snprintf(msg, sizeof(msg),
			         "%u fields, the header has %u", n, ncols);
			bad(im, line, msg);
			continue;
		}
		(void)import_row(im, f, ev_col, line);
	}
	flush_pending(im);
	if (im->nerr == 0) {
		t = consent_snapshot_build(&im->w, (int64_t)time(NULL));
		if (t != NULL && (t->source = strdup(name)) == NULL) {
			consent_free(t);
			t = NULL;
		}
		if (t == NULL)
			cg_errors_add(errs, name, 0, 0,
			              "out of memory building the table");
	}
	if (t != NULL) {
		t->from_csv = true;
		memcpy(t->purpose_line, im->purpose_line,
		       sizeof(t->purpose_line));
		memcpy(t->purpose_rows, im->purpose_rows,
		       sizeof(t->purpose_rows));
	}
done:
	if (im != NULL)
		import_reset(im);
	free(im);
	if (errs == &local)
		cg_errors_reset(&local);
	return t;
}

/* ---- open ---- */

struct consent_table *
consent_open(const char *path, struct cg_errors *errs)
{
	struct consent_table *t = NULL;
	struct cg_errors local;
	struct stat st;
	void *map = MAP_FAILED;
	size_t size = 0;
	int fd;

	if (errs == NULL) {
		cg_errors_init(&local);
		errs = &local;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		cg_errors_add(errs, path, 0, 0, "cannot open: %s",
		              strerror(errno));
		goto done;
	}
	if (!S_ISREG(st.st_mode)) {
		cg_errors_add(errs, path, 0, 0, "not a regular file");
		goto done;
	}
	size = (size_t)st.st_size;
	if (size == 0) {
		t = consent_import_csv(path, "", 0, errs);
		goto done;
	}
	map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		cg_errors_add(errs, path, 0, 0, "cannot map: %s",
		              strerror(errno));
		goto done;
	}
	if (size >= 8 && memcmp(map, CONSENT_MAGIC, 8) == 0) {
		/* Lookups land anywhere: read-ahead only wastes I/O. Huge
		 * pages, where the kernel maps files with them, cut TLB misses.
		 */
		(void)madvise(map, size, MADV_RANDOM);
#ifdef MADV_HUGEPAGE
		(void)madvise(map, size, MADV_HUGEPAGE);
#endif
		t = consent_snapshot_open(path, map, size, errs);
		if (t != NULL)
			map = MAP_FAILED; /* the table owns it now */
		goto done;
	}
	/* No MADV_SEQUENTIAL: the layout pass re-reads subjects from this map
	 * in random order, and early reclaim would turn that into disk reads.
	 */
	t = consent_import_csv(path, map, size, errs);
done:
	if (map != MAP_FAILED)
		munmap(map, size);
	if (fd >= 0)
		close(fd);
	if (errs == &local)
		cg_errors_reset(&local);
	return t;
}

void
consent_free(struct consent_table *t)
{
	if (t == NULL)
		return;
	if (t->img != NULL) {
		consent_live_view_free(t);
		return;
	}
	if (t->storage == CONSENT_STORAGE_FILE)
		munmap((void *)(uintptr_t)t->base, t->size);
	else
		consent_snapshot_big_free((void *)(uintptr_t)t->base, t->size);
	free(t->source);
	free(t);
}

/* ---- accessors ---- */

uint64_t
consent_version(const struct consent_table *t)
{
	return t->version;
}

int
consent_set_version(struct consent_table *t, uint64_t version)
{
	t->version = version;
	return 0;
}

int64_t
consent_created_at(const struct consent_table *t)
{
	return t->clock ? consent_live_clock_get(t->clock) : t->h->created_at;
}

uint64_t
consent_people(const struct consent_table *t)
{
	return t->img ? t->live_people : t->h->people;
}

uint64_t
consent_rows(const struct consent_table *t)
{
	return t->img ? t->live_rows : t->h->rows;
}

uint64_t
consent_bytes(const struct consent_table *t)
{
	return t->size + (t->ov ? t->ov->size : 0) +
	       (t->ov_filter ? (t->ov_filter_mask + 1) * 8 : 0);
}

/* A live view's purposes are its overlay's: the image's, then new ones. */
unsigned
consent_purpose_count(const struct consent_table *t)
{
	return (t->ov ? t->ov : t)->h->npurposes;
}

struct cg_slice
consent_purpose_name(const struct consent_table *t, unsigned id)
{
	uint32_t ent[2];

	if (t->ov != NULL)
		t = t->ov;
	if (id >= t->h->npurposes)
		return (struct cg_slice){"", 0};
	memcpy(ent, t->purposes + id * 8, 8);
	return (struct cg_slice){(const char *)t->purposes + ent[0], ent[1]};
}

const char *
consent_source(const struct consent_table *t)
{
	return t->source ? t->source : "";
}

int
consent_purpose_line(const struct consent_table *t, unsigned id)
{
	return t->from_csv && id < t->h->npurposes ? t->purpose_line[id] : 0;
}

uint64_t
consent_purpose_rows(const struct consent_table *t, unsigned id)
{
	uint64_t n = 0, off = 0;

	if (t->ov != NULL) /* people in both are counted twice: messages */
		n = consent_purpose_rows(t->ov, id);
	if (id >= t->h->npurposes)
		return n;
	if (t->from_csv)
		return t->purpose_rows[id];
	/* the blobs lie end to end (consent_snapshot_build); stop at anything
	 * odd */
	while (off + sizeof(struct consent_blob_head) <= t->blobs_size) {
		struct consent_blob_head bh;
		const uint8_t *blob = t->blobs + off;
		uint64_t rows_at, ev = 0;

		memcpy(&bh, blob, sizeof(bh));
		rows_at = sizeof(bh) + consent_pad8(bh.subj_len);
		if (bh.nrows == 0 ||
		    rows_at + (uint64_t)bh.nrows * 16 > t->blobs_size - off)
			break;
		for (unsigned i = 0; i < bh.nrows; i++) {
			struct consent_blob_row br;
			memcpy(&br, blob + rows_at + i * sizeof(br),
			       sizeof(br));
			n += br.purpose == id;
			ev += br.ev_len;
		}
		off += rows_at + (uint64_t)bh.nrows * 16 + consent_pad8(ev);
	}
	return n;
}

int
consent_purpose_id(const struct consent_table *t, const char *name, size_t len)
{
	for (unsigned i = 0; i < consent_purpose_count(t); i++) {
		struct cg_slice s = consent_purpose_name(t, i);
		if (s.len == len && memcmp(s.ptr, name, len) == 0)
			return (int)i;
	}
	return -1;
}

const char *
consent_status_name(enum consent_status s)
{
	switch (s) {
	case CONSENT_STATUS_NONE:
		return "none";
	case CONSENT_STATUS_GRANTED:
		return "granted";
	case CONSENT_STATUS_DENIED:
		return "denied";
	case CONSENT_STATUS_WITHDRAWN:
		return "withdrawn";
	}
	return "invalid";
}

/* ---- lookup ---- */

static void
result_unknown(struct consent_lookup_result *out)
{
	memset(out, 0, sizeof(*out));
	out->evidence = (struct cg_slice){"", 0};
}

/*
 * Fill out from the blob at off, if it holds exactly this subject.
 * 1: match, 0: another subject, -1: the blob is malformed (unknown).
 */
static int
blob_match(const struct consent_table *t, uint64_t off, const char *subject,
           size_t len, int purpose_id, struct consent_lookup_result *out)
{
	struct consent_blob_head bh;
	const uint8_t *blob = t->blobs + off;
	uint64_t room = t->blobs_size - off;

	if (off + sizeof(bh) > t->blobs_size)
		return -1;
	memcpy(&bh, blob, sizeof(bh));
	if (bh.subj_len != len)
		return 0;
	if (sizeof(bh) + consent_pad8(len) + (uint64_t)bh.nrows * 16 > room)
		return -1;
	if (memcmp(blob + sizeof(bh), subject, len) != 0)
		return 0;
	if (bh.juris[0] < 'A' || bh.juris[0] > 'Z' || bh.juris[1] < 'A' ||
	    bh.juris[1] > 'Z' || bh.nrows == 0)
		return -1;
	result_unknown(out);
	out->known = true;
	out->jurisdiction[0] = bh.juris[0];
	out->jurisdiction[1] = bh.juris[1];
	if (purpose_id < 0)
		return 1;
	const uint8_t *rp = blob + sizeof(bh) + consent_pad8(len);
	for (unsigned i = 0; i < bh.nrows; i++) {
		struct consent_blob_row br;
		memcpy(&br, rp + i * sizeof(br), sizeof(br));
		if (br.purpose != purpose_id)
			continue;
		if (br.status < CONSENT_STATUS_GRANTED ||
		    br.status > CONSENT_STATUS_WITHDRAWN ||
		    (uint64_t)br.ev_off + br.ev_len > room)
			return -1;
		out->status = (enum consent_status)br.status;
		out->updated_at = br.updated_at;
		out->evidence.ptr = (const char *)blob + br.ev_off;
		out->evidence.len = br.ev_len;
		break;
	}
	return 1;
}

/* true when t decided the subject (found, or a malformed blob: unknown,
 * failing closed); false when t has no such subject */
static bool
probe(const struct consent_table *t, uint64_t h, const char *subject,
      size_t len, int purpose_id, struct consent_lookup_result *out)
{
	uint64_t b = consent_bucket(h, t->nbuckets), tag = consent_tag(h);

	if (purpose_id >= (int)t->h->npurposes)
		purpose_id = -1;
	/* Bounded even on a corrupt file without an empty slot. */
	for (uint64_t i = 0; i < t->nbuckets; i++) {
		uint64_t s = t->slots[b];
		if (s == 0)
			break;
		if (s >> CONSENT_SLOT_OFF_BITS == tag) {
			int m = blob_match(t, (s & CONSENT_SLOT_OFF_MASK) * 8,
			                   subject, len, purpose_id, out);
			if (m == 1)
				return true;
			if (m < 0) {
				result_unknown(out); /* fail closed */
				return true;
			}
		}
		if (++b == t->nbuckets)
			b = 0;
	}
	return false;
}

/* A live view's overlay holds a changed person whole: it decides first. */
static void
lookup_hashed(const struct consent_table *t, uint64_t h, const char *subject,
              size_t len, int purpose_id, struct consent_lookup_result *out)
{
	if (t->ov_filter != NULL && consent_ov_maybe(t, h) &&
	    probe(t->ov,
	          t->ov->seed == t->seed
	              ? h
	              : consent_hash(subject, len, t->ov->seed),
	          subject, len, purpose_id, out))
		return;
	if (!probe(t, h, subject, len, purpose_id, out))
		result_unknown(out);
}

void
consent_lookup(const struct consent_table *t, const char *subject, size_t len,
               int purpose_id, struct consent_lookup_result *out)
{
	lookup_hashed(t, consent_hash(subject, len, t->seed), subject, len,
	              purpose_id, out);
}

void
consent_lookup_many(const struct consent_table *t,
                    const struct cg_slice *subjects, size_t n, int purpose_id,
                    struct consent_lookup_result *out)
{
	uint64_t h[BATCH];

	for (size_t base = 0; base < n; base += BATCH) {
		size_t m = n - base < BATCH ? n - base : BATCH;
		/* Start every memory fetch first, then wait on them once. */
		for (size_t i = 0; i < m; i++) {
			const struct cg_slice *s = &subjects[base + i];
			h[i] = consent_hash(s->ptr, s->len, t->seed);
			__builtin_prefetch(
			    &t->slots[consent_bucket(h[i], t->nbuckets)]);
			if (t->ov_filter != NULL)
				__builtin_prefetch(
				    &t->ov_filter[consent_ov_word(
				        h[i], t->ov_filter_mask)]);
		}
		for (size_t i = 0; i < m; i++) {
			/* The person often sits a slot or two further on. */
			uint64_t b = consent_bucket(h[i], t->nbuckets);
			uint64_t tag = consent_tag(h[i]);
			for (unsigned k = 0; k < 8; k++) {
				uint64_t s = t->slots[b];
				uint64_t off = (s & CONSENT_SLOT_OFF_MASK) * 8;
				if (s == 0)
					break;
				if (s >> CONSENT_SLOT_OFF_BITS == tag) {
					if (off < t->blobs_size)
						__builtin_prefetch(t->blobs +
						                   off);
					break;
				}
				if (++b == t->nbuckets)
					b = 0;
			}
		}
		for (size_t i = 0; i < m; i++)
			lookup_hashed(t, h[i], subjects[base + i].ptr,
			              subjects[base + i].len, purpose_id,
			              &out[base + i]);
	}
}
