/*
 * consent.c: the consent table: CSV import, snapshot write/open, lookup.
 *
 * Import is one pass over the CSV: every row is validated and merged into a
 * working hash of people (latest row per purpose wins; on equal timestamps
 * the later row in the file wins). The working data is then laid out into
 * the snapshot image (consent_internal.h), so a table from CSV and a table
 * from an mmap'ed snapshot share one lookup path.
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
#include "consentgate/consent.h"

#define HASH_SEED UINT64_C(0x8bb84b93962eacc9) /* tables we build */
#define CHECKSUM_SEED UINT64_C(0x2d358dccaa6c78a5)
#define MAX_COLUMNS 64       /* CSV columns in the header */
#define BIG_IMAGE (1u << 20) /* bytes from which images use mmap */
#define BATCH 16             /* lookups overlapped by lookup_many */
#define PENDING 16           /* rows merged at once by the import */

struct consent_table {
	const uint8_t
	    *base; /* the image: mmap'ed file, anonymous map or heap */
	size_t size;
	int storage; /* STORAGE_* */
	const struct consent_snap_header *h;
	const uint8_t *purposes;
	const uint64_t *slots;
	const uint8_t *blobs;
	uint64_t nbuckets;
	uint64_t blobs_size;
	uint64_t seed;
	uint64_t version; /* may differ from the image's until written */
	char *source;     /* the file name, for messages */
	/* imported from CSV: each purpose's first line and rows */
	int purpose_line[CONSENT_MAX_PURPOSES];
	uint64_t purpose_rows[CONSENT_MAX_PURPOSES];
	bool from_csv;
};

enum { STORAGE_HEAP, STORAGE_ANON, STORAGE_FILE };

/* Tests force collisions by narrowing every hash (see test_consent.c). */
static uint64_t hash_mask = UINT64_MAX;

/* ---- hashing: a wyhash-style multiply-fold over 8-byte words ---- */

static inline uint64_t
fold(uint64_t a, uint64_t b)
{
	unsigned __int128 r = (unsigned __int128)a * b;
	return (uint64_t)r ^ (uint64_t)(r >> 64);
}

static inline uint64_t
rd64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static inline uint64_t
rd32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static inline uint64_t
hash_raw(const void *data, size_t len, uint64_t seed)
{
	const uint8_t *p = data;
	const uint64_t k1 = UINT64_C(0xa0761d6478bd642f);
	const uint64_t k2 = UINT64_C(0xe7037ed1a0b428db);
	uint64_t s = seed ^ fold(seed ^ k1, k2 ^ len);
	uint64_t a, b;

	while (len > 16) {
		s = fold(rd64(p) ^ k1, rd64(p + 8) ^ s);
		p += 16;
		len -= 16;
	}
	if (len >= 8) {
		a = rd64(p);
		b = rd64(p + len - 8);
	} else if (len >= 4) {
		a = rd32(p);
		b = rd32(p + len - 4);
	} else if (len > 0) {
		a = (uint64_t)p[0] << 16 | (uint64_t)p[len / 2] << 8 |
		    p[len - 1];
		b = 0;
	} else {
		a = b = 0;
	}
	return fold(fold(a ^ k1, b ^ s) ^ k2, s ^ len);
}

static inline uint64_t
hash_bytes(const void *data, size_t len, uint64_t seed)
{
	return hash_raw(data, len, seed) & hash_mask;
}

static inline uint64_t
bucket_of(uint64_t h, uint64_t nbuckets)
{
	return (uint64_t)(((unsigned __int128)h * nbuckets) >> 64);
}

/* 24 bits the bucket did not use; never 0 so a filled slot is never 0. */
static inline uint64_t
tag_of(uint64_t h)
{
	uint64_t tag = h & 0xffffff;
	return tag ? tag : 1;
}

static inline size_t
pad8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

/* ---- RFC 3339 timestamps ---- */

static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static int
digits(const char *s, int n)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/*
 * Parse "YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)" with range checks.
 * A leap second (:60) counts as the next second. Returns 0 or -1.
 */
static int
parse_rfc3339(const char *s, size_t len, int64_t *sec, uint32_t *nsec)
{
	static const unsigned mdays[] = {31, 28, 31, 30, 31, 30,
	                                 31, 31, 30, 31, 30, 31};
	int y, mo, d, hh, mi, ss, oh = 0, om = 0, sign = 0;
	uint32_t frac = 0;
	size_t i;

	if (len < 20 || s[4] != '-' || s[7] != '-' ||
	    (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':')
		return -1;
	y = digits(s, 4);
	mo = digits(s + 5, 2);
	d = digits(s + 8, 2);
	hh = digits(s + 11, 2);
	mi = digits(s + 14, 2);
	ss = digits(s + 17, 2);
	if (y < 0 || mo < 1 || mo > 12 || d < 1 || hh < 0 || hh > 23 ||
	    mi < 0 || mi > 59 || ss < 0 || ss > 60)
		return -1;
	unsigned leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	if ((unsigned)d > mdays[mo - 1] + (mo == 2 ? leap : 0))
		return -1;
	i = 19;
	if (i < len && s[i] == '.') {
		size_t start = ++i;
		uint32_t scale = 100000000;
		while (i < len && s[i] >= '0' && s[i] <= '9') {
			frac += (uint32_t)(s[i] - '0') * scale;
			scale /= 10;
			i++;
		}
		if (i == start)
			return -1;
	}
	if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
		i++;
	} else if (i < len && (s[i] == '+' || s[i] == '-')) {
		sign = s[i] == '+' ? 1 : -1;
		if (len - i != 6 || s[i + 3] != ':')
			return -1;
		oh = digits(s + i + 1, 2);
		om = digits(s + i + 4, 2);
		if (oh < 0 || oh > 23 || om < 0 || om > 59)
			return -1;
		i += 6;
	} else {
		return -1;
	}
	if (i != len)
		return -1;
	*sec = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 +
	       hh * 3600 + mi * 60 + ss - sign * (oh * 3600 + om * 60);
	*nsec = frac;
	return 0;
}

/* ---- CSV tokenizer (RFC 4180, CRLF or LF) ---- */

struct field {
	const char *ptr;
	size_t len;
	bool escaped; /* quoted and holds "" pairs: unescape before use */
};

struct csv {
	const char *buf;
	size_t len, pos;
	int line; /* physical line of pos, from 1 */
};

/* Skip to just after the next LF (error recovery). */
static void
skip_line(struct csv *c)
{
	const char *nl = memchr(c->buf + c->pos, '\n', c->len - c->pos);
	c->pos = nl ? (size_t)(nl - c->buf) + 1 : c->len;
	if (nl)
		c->line++;
}

/*
 * Read one record's fields into f (at most max kept, *n counts all).
 * Returns 1 for a record, 0 at end of input, -1 with *why on a syntax
 * error (the rest of the line is skipped).
 */
static int
csv_record(struct csv *c, struct field *f, unsigned max, unsigned *n,
           const char **why)
{
	*n = 0;
	if (c->pos >= c->len)
		return 0;
	for (;;) {
		const char *p = c->buf + c->pos, *end = c->buf + c->len;
		struct field cur = {p, 0, false};

		if (p < end && *p == '"') {
			const char *q = ++p;
			for (;;) {
				q = memchr(q, '"', (size_t)(end - q));
				if (q == NULL) {
					*why = "unterminated quoted field";
					c->pos = c->len;
					return -1;
				}
				if (q + 1 < end && q[1] == '"') {
					cur.escaped = true;
					q += 2;
					continue;
				}
				break;
			}
			for (const char *r = p; r < q; r++)
				c->line += *r == '\n';
			cur.ptr = p;
			cur.len = (size_t)(q - p);
			p = q + 1;
			if (p < end && *p != ',' && *p != '\n' && *p != '\r') {
				*why = "text after a closing quote";
				c->pos = (size_t)(p - c->buf);
				skip_line(c);
				return -1;
			}
		} else {
			while (p < end && *p != ',' && *p != '\n' &&
			       *p != '\r') {
				if (*p == '"') {
					*why = "quote inside an unquoted field";
					c->pos = (size_t)(p - c->buf);
					skip_line(c);
					return -1;
				}
				p++;
			}
			cur.len = (size_t)(p - cur.ptr);
		}
		if (*n < max)
			f[*n] = cur;
		if (*n < UINT32_MAX)
			(*n)++; /* a 4 GB line of commas must not wrap */
		if (p < end && *p == '\r') {
			if (p + 1 >= end || p[1] != '\n') {
				*why = "bare CR (line ends are LF or CRLF)";
				c->pos = (size_t)(p - c->buf);
				skip_line(c);
				return -1;
			}
			p++;
		}
		if (p >= end) {
			c->pos = c->len;
			return 1;
		}
		if (*p == '\n') {
			c->pos = (size_t)(p - c->buf) + 1;
			c->line++;
			return 1;
		}
		c->pos = (size_t)(p - c->buf) + 1; /* past the comma */
	}
}

/* ---- import: working structures ---- */

#define REF_ARENA (UINT64_C(1) << 63) /* string ref into the unescape arena */

struct wperson {
	uint64_t subj;      /* string ref */
	int64_t latest_sec; /* newest row (any purpose); later: blob offset */
	uint32_t latest_nsec;
	uint32_t head; /* first wrow + 1, 0 = none */
	uint16_t subj_len;
	uint8_t nrows;
	char juris[2];
};

struct wrow {
	int64_t sec;
	uint64_t ev; /* string ref */
	uint32_t nsec;
	uint32_t next; /* next wrow of the person + 1 */
	uint8_t purpose, status, ev_len;
};

/* A validated row waiting to be merged (rows are merged in batches so
 * their hash-slot fetches overlap). */
struct pending {
	uint64_t subj, ev, h;
	int64_t sec;
	uint32_t nsec;
	int line;
	uint16_t subj_len;
	uint8_t purpose, status, ev_len;
	char juris[2];
};

struct import {
	const char *name;
	const char *buf;
	struct cg_errors *errs;
	unsigned nerr;
	char *arena; /* unescaped quoted fields */
	size_t arena_len, arena_cap;
	uint64_t *wslots;
	uint64_t nwslots;
	struct wperson *people;
	uint64_t npeople, cap_people;
	struct wrow *rows;
	uint64_t nrows, cap_rows;
	struct pending pend[PENDING];
	unsigned npend;
	char purpose[CONSENT_MAX_PURPOSES][CONSENT_MAX_PURPOSE_LEN + 1];
	uint8_t purpose_len[CONSENT_MAX_PURPOSES];
	int purpose_line[CONSENT_MAX_PURPOSES];      /* first row naming it */
	uint64_t purpose_rows[CONSENT_MAX_PURPOSES]; /* rows naming it */
	unsigned npurposes;
};

static const char *
ref_ptr(const struct import *im, uint64_t ref)
{
	return ref & REF_ARENA ? im->arena + (ref & ~REF_ARENA) : im->buf + ref;
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
field_ref(struct import *im, const struct field *f, uint64_t *ref, size_t *len)
{
	if (!f->escaped) {
		*ref = (uint64_t)(f->ptr - im->buf);
		*len = f->len;
		return 0;
	}
	if (im->arena_len + f->len > im->arena_cap) {
		size_t cap =
		    (im->arena_cap ? im->arena_cap * 2 : 4096) + f->len;
		char *a = realloc(im->arena, cap);
		if (a == NULL)
			return -1;
		im->arena = a;
		im->arena_cap = cap;
	}
	size_t start = im->arena_len, o = start;
	for (size_t i = 0; i < f->len; i++) {
		im->arena[o++] = f->ptr[i];
		if (f->ptr[i] == '"')
			i++; /* the second quote of a pair */
	}
	im->arena_len = o;
	*ref = REF_ARENA | start;
	*len = o - start;
	return 0;
}

/* The id of a purpose name, counting the row on line that names it. */
static int
purpose_intern(struct import *im, const char *s, size_t len, int line)
{
	for (unsigned i = 0; i < im->npurposes; i++)
		if (im->purpose_len[i] == len &&
		    memcmp(im->purpose[i], s, len) == 0) {
			im->purpose_rows[i]++;
			return (int)i;
		}
	if (im->npurposes >= CONSENT_MAX_PURPOSES)
		return -1;
	memcpy(im->purpose[im->npurposes], s, len);
	im->purpose[im->npurposes][len] = '\0';
	im->purpose_len[im->npurposes] = (uint8_t)len;
	im->purpose_line[im->npurposes] = line;
	im->purpose_rows[im->npurposes] = 1;
	return (int)im->npurposes++;
}

static bool
later_or_equal(int64_t sec, uint32_t nsec, int64_t than_sec, uint32_t than_nsec)
{
	return sec > than_sec || (sec == than_sec && nsec >= than_nsec);
}

/* Merge one valid row into the working table. -1: out of capacity. */
static int
merge_row(struct import *im, const struct pending *pr)
{
	uint64_t subj = pr->subj, ev = pr->ev;
	size_t subj_len = pr->subj_len, ev_len = pr->ev_len;
	int purpose = pr->purpose, status = pr->status;
	const char *juris = pr->juris;
	int64_t sec = pr->sec;
	uint32_t nsec = pr->nsec;
	const char *sp = ref_ptr(im, subj);
	uint64_t h = pr->h;
	uint64_t b = bucket_of(h, im->nwslots), tag = tag_of(h);
	struct wperson *p = NULL;
	struct wrow *r;

	for (;;) {
		uint64_t s = im->wslots[b];
		if (s == 0) {
			if (im->npeople >= im->cap_people)
				return -1;
			p = &im->people[im->npeople++];
			memset(p, 0, sizeof(*p));
			p->subj = subj;
			p->subj_len = (uint16_t)subj_len;
			p->latest_sec = INT64_MIN;
			im->wslots[b] =
			    tag << CONSENT_SLOT_OFF_BITS | im->npeople;
			break;
		}
		if (s >> CONSENT_SLOT_OFF_BITS == tag) {
			struct wperson *q =
			    &im->people[(s & CONSENT_SLOT_OFF_MASK) - 1];
			if (q->subj_len == subj_len &&
			    memcmp(ref_ptr(im, q->subj), sp, subj_len) == 0) {
				p = q;
				break;
			}
		}
		if (++b == im->nwslots)
			b = 0;
	}
	/* The newest row of any purpose names the jurisdiction. */
	if (p->latest_sec == INT64_MIN ||
	    later_or_equal(sec, nsec, p->latest_sec, p->latest_nsec)) {
		p->latest_sec = sec;
		p->latest_nsec = nsec;
		memcpy(p->juris, juris, 2);
	}
	for (uint32_t i = p->head; i != 0; i = im->rows[i - 1].next) {
		r = &im->rows[i - 1];
		if (r->purpose != purpose)
			continue;
		if (later_or_equal(sec, nsec, r->sec, r->nsec))
			goto set;
		return 0;
	}
	if (im->nrows >= im->cap_rows)
		return -1;
	r = &im->rows[im->nrows++];
	r->next = p->head;
	r->purpose = (uint8_t)purpose;
	p->head = (uint32_t)im->nrows;
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
		if (merge_row(im, &im->pend[i]) < 0)
			bad(im, im->pend[i].line, "out of memory");
	im->npend = 0;
}

static bool
is_space(char ch)
{
	return ch == ' ' || ch == '\t';
}

/* Validate one data row and merge it. -1 when reported bad. */
static int
import_row(struct import *im, const struct field *f, int ev_col, int line)
{
	uint64_t subj, ev = 0;
	size_t subj_len, ev_len = 0;
	int purpose, status;
	int64_t sec;
	uint32_t nsec;

	if (field_ref(im, &f[0], &subj, &subj_len) < 0)
		goto nomem;
	const char *sp = ref_ptr(im, subj);
	if (subj_len == 0)
		return bad(im, line, "empty subject");
	if (subj_len > CG_MAX_SUBJECT_LEN)
		return bad(im, line, "subject longer than 256 bytes");
	if (is_space(sp[0]) || is_space(sp[subj_len - 1]))
		return bad(im, line, "subject has leading or trailing space");

	const struct field *pf = &f[1];
	if (pf->len == 0 || pf->len > CONSENT_MAX_PURPOSE_LEN)
		return bad(im, line, "purpose must be 1 to 64 characters");
	for (size_t i = 0; i < pf->len; i++) {
		char ch = pf->ptr[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' ||
		      ch == '.'))
			return bad(im, line,
			           "purpose may hold only letters, digits, "
			           "'-', '_' and '.'");
	}
	purpose = purpose_intern(im, pf->ptr, pf->len, line);
	if (purpose < 0)
		return bad(im, line, "more than 255 distinct purposes");

	const struct field *st = &f[2];
	if (st->len == 7 && memcmp(st->ptr, "granted", 7) == 0)
		status = CONSENT_STATUS_GRANTED;
	else if (st->len == 6 && memcmp(st->ptr, "denied", 6) == 0)
		status = CONSENT_STATUS_DENIED;
	else if (st->len == 9 && memcmp(st->ptr, "withdrawn", 9) == 0)
		status = CONSENT_STATUS_WITHDRAWN;
	else
		return bad(im, line,
		           "status must be granted, denied or withdrawn");

	const struct field *ju = &f[3];
	if (ju->len != 2 || ju->ptr[0] < 'A' || ju->ptr[0] > 'Z' ||
	    ju->ptr[1] < 'A' || ju->ptr[1] > 'Z')
		return bad(im, line,
		           "jurisdiction must be an ISO 3166-1 alpha-2 code "
		           "(two upper-case letters)");

	if (parse_rfc3339(f[4].ptr, f[4].len, &sec, &nsec) < 0)
		return bad(im, line,
		           "updated_at is not a valid RFC 3339 timestamp "
		           "(e.g. 2025-03-01T12:00:00Z)");

	if (ev_col >= 0) {
		if (field_ref(im, &f[ev_col], &ev, &ev_len) < 0)
			goto nomem;
		if (ev_len > CONSENT_MAX_EVIDENCE_LEN)
			return bad(im, line, "evidence longer than 255 bytes");
	}
	if (im->nerr > 0)
		return 0; /* the table is lost anyway; only keep validating */
	struct pending *pr = &im->pend[im->npend++];
	pr->subj = subj;
	pr->subj_len = (uint16_t)subj_len;
	pr->h = hash_bytes(sp, subj_len, HASH_SEED);
	pr->purpose = (uint8_t)purpose;
	pr->status = (uint8_t)status;
	memcpy(pr->juris, ju->ptr, 2);
	pr->sec = sec;
	pr->nsec = nsec;
	pr->ev = ev;
	pr->ev_len = (uint8_t)ev_len;
	pr->line = line;
	__builtin_prefetch(&im->wslots[bucket_of(pr->h, im->nwslots)]);
	if (im->npend == PENDING)
		flush_pending(im);
	return 0;
nomem:
	return bad(im, line, "out of memory");
}

static const char *const header_cols[] = {"subject", "purpose", "status",
                                          "jurisdiction", "updated_at"};

static bool
field_is(const struct field *f, const char *s)
{
	return !f->escaped && f->len == strlen(s) &&
	       memcmp(f->ptr, s, f->len) == 0;
}

/* ---- image layout ---- */

static void
table_bind(struct consent_table *t)
{
	const struct consent_snap_header *h = (const void *)t->base;
	t->h = h;
	t->purposes = t->base + h->purposes_off;
	t->slots = (const uint64_t *)(const void *)(t->base + h->slots_off);
	t->blobs = t->base + h->blobs_off;
	t->nbuckets = h->nbuckets;
	t->blobs_size = h->blobs_size;
	t->seed = h->hash_seed;
	t->version = h->version;
}

static uint64_t
header_checksum(const struct consent_snap_header *h)
{
	return hash_raw(h, offsetof(struct consent_snap_header, checksum),
	                CHECKSUM_SEED);
}

/* Zeroed memory; large blocks come from huge-page maps (fewer faults
 * and TLB misses). Free with big_free and the same size. */
static void *
big_alloc(size_t size)
{
	if (size < BIG_IMAGE)
		return calloc(1, size ? size : 1);
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
#ifdef MADV_HUGEPAGE
	(void)madvise(p, size, MADV_HUGEPAGE);
#endif
	return p;
}

static void
big_free(void *p, size_t size)
{
	if (p == NULL)
		return;
	if (size < BIG_IMAGE)
		free(p);
	else
		munmap(p, size);
}

static uint8_t *
image_alloc(size_t size, int *storage)
{
	if (size >= BIG_IMAGE) {
		void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			return NULL;
#ifdef MADV_HUGEPAGE
		/* Fewer TLB misses on random lookups into a large table. */
		(void)madvise(p, size, MADV_HUGEPAGE);
#endif
		*storage = STORAGE_ANON;
		return p;
	}
	*storage = STORAGE_HEAP;
	return calloc(1, size);
}

static int
cmp_row_purpose(const void *a, const void *b)
{
	const struct wrow *x = *(const struct wrow *const *)a;
	const struct wrow *y = *(const struct wrow *const *)b;
	return (int)x->purpose - (int)y->purpose;
}

/* Lay the working table out as a snapshot image. NULL on failure. */
static struct consent_table *
build_image(struct import *im, int64_t now)
{
	struct consent_table *t = NULL;
	struct consent_snap_header *h;
	uint64_t nbuckets, blobs_size = 0, rows = 0;
	size_t purposes_size, size;
	uint8_t *img = NULL;
	int storage;

	/* not needed any more: lower the peak */
	big_free(im->wslots, im->nwslots * sizeof(uint64_t));
	im->wslots = NULL;
	nbuckets = im->npeople * CONSENT_LOAD_NUM / CONSENT_LOAD_DEN + 1;
	for (uint64_t i = 0; i < im->npeople; i++) {
		struct wperson *p = &im->people[i];
		size_t ev = 0;
		for (uint32_t j = p->head; j != 0; j = im->rows[j - 1].next)
			ev += im->rows[j - 1].ev_len;
		p->latest_sec = (int64_t)blobs_size; /* now: the blob offset */
		blobs_size +=
		    sizeof(struct consent_blob_head) + pad8(p->subj_len) +
		    p->nrows * sizeof(struct consent_blob_row) + pad8(ev);
		rows += p->nrows;
	}
	if (blobs_size / 8 > CONSENT_SLOT_OFF_MASK)
		goto fail;
	purposes_size = im->npurposes * 8;
	for (unsigned i = 0; i < im->npurposes; i++)
		purposes_size += im->purpose_len[i] + 1u;
	purposes_size = pad8(purposes_size);

	size_t purposes_off = sizeof(*h);
	size_t slots_off = (purposes_off + purposes_size + 63) & ~(size_t)63;
	size_t blobs_off = slots_off + nbuckets * 8;
	size = blobs_off + blobs_size;
	img = image_alloc(size, &storage);
	t = calloc(1, sizeof(*t));
	if (img == NULL || t == NULL)
		goto fail;

	h = (struct consent_snap_header *)(void *)img;
	memcpy(h->magic, CONSENT_MAGIC, 8);
	h->format = CONSENT_FORMAT;
	h->header_size = sizeof(*h);
	h->version = (uint64_t)now;
	h->created_at = now;
	h->people = im->npeople;
	h->rows = rows;
	h->file_size = size;
	h->nbuckets = nbuckets;
	h->slots_off = slots_off;
	h->blobs_off = blobs_off;
	h->blobs_size = blobs_size;
	h->purposes_off = purposes_off;
	h->purposes_size = purposes_size;
	h->npurposes = im->npurposes;
	h->endian = CONSENT_ENDIAN;
	h->hash_seed = HASH_SEED;
	h->checksum = header_checksum(h);

	uint8_t *pp = img + purposes_off;
	uint32_t name_off = im->npurposes * 8;
	for (unsigned i = 0; i < im->npurposes; i++) {
		uint32_t ent[2] = {name_off, im->purpose_len[i]};
		memcpy(pp + i * 8, ent, 8);
		memcpy(pp + name_off, im->purpose[i], im->purpose_len[i] + 1u);
		name_off += im->purpose_len[i] + 1u;
	}

	uint64_t *slots = (uint64_t *)(void *)(img + slots_off);
	uint8_t *blobs = img + blobs_off;
	const struct wrow *sorted[CONSENT_MAX_PURPOSES];
	for (uint64_t i = 0; i < im->npeople; i++) {
		struct wperson *p = &im->people[i];
		const char *subj = ref_ptr(im, p->subj);
		uint8_t *blob = blobs + p->latest_sec;
		struct consent_blob_head bh = {
		    p->subj_len, p->nrows, {p->juris[0], p->juris[1]}, {0}};
		unsigned n = 0;

		memcpy(blob, &bh, sizeof(bh));
		memcpy(blob + sizeof(bh), subj, p->subj_len);
		for (uint32_t j = p->head; j != 0; j = im->rows[j - 1].next)
			sorted[n++] = &im->rows[j - 1];
		qsort(sorted, n, sizeof(sorted[0]), cmp_row_purpose);
		size_t row_at = sizeof(bh) + pad8(p->subj_len);
		size_t ev_at = row_at + n * sizeof(struct consent_blob_row);
		for (unsigned j = 0; j < n; j++) {
			struct consent_blob_row br = {
			    .updated_at = sorted[j]->sec,
			    .ev_off = (uint32_t)ev_at,
			    .ev_len = sorted[j]->ev_len,
			    .purpose = sorted[j]->purpose,
			    .status = sorted[j]->status,
			};
			memcpy(blob + row_at + j * sizeof(br), &br, sizeof(br));
			memcpy(blob + ev_at, ref_ptr(im, sorted[j]->ev),
			       sorted[j]->ev_len);
			ev_at += sorted[j]->ev_len;
		}

		uint64_t hv = hash_bytes(subj, p->subj_len, HASH_SEED);
		uint64_t b = bucket_of(hv, nbuckets);
		while (slots[b] != 0)
			if (++b == nbuckets)
				b = 0;
		slots[b] = tag_of(hv) << CONSENT_SLOT_OFF_BITS |
		           (uint64_t)p->latest_sec / 8;
	}
	t->base = img;
	t->size = size;
	t->storage = storage;
	table_bind(t);
	return t;
fail:
	if (img != NULL && storage == STORAGE_ANON)
		munmap(img, size);
	else
		free(img);
	free(t);
	return NULL;
}

static void
import_reset(struct import *im)
{
	free(im->arena);
	big_free(im->wslots, im->nwslots * sizeof(uint64_t));
	big_free(im->people, im->cap_people * sizeof(struct wperson));
	big_free(im->rows, im->cap_rows * sizeof(struct wrow));
}

struct consent_table *
consent_import_csv(const char *name, const char *buf, size_t len,
                   struct cg_errors *errs)
{
	struct import *im;
	struct consent_table *t = NULL;
	struct cg_errors local;
	struct field f[MAX_COLUMNS];
	struct csv c = {buf, len, 0, 1};
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
	im->buf = buf;
	im->errs = errs;

	/* A UTF-8 byte-order mark (spreadsheet exports) is not data. */
	if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0)
		c.pos = 3;
	rc = csv_record(&c, f, MAX_COLUMNS, &n, &why);
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
	if (n > MAX_COLUMNS) {
		cg_errors_add(errs, name, 1, 0, "more than %d columns",
		              MAX_COLUMNS);
		goto done;
	}
	ncols = n;
	for (unsigned i = 0; i < 5; i++)
		if (i >= n || !field_is(&f[i], header_cols[i])) {
			cg_errors_add(errs, name, 1, 0,
			              "header must start with "
			              "subject,purpose,status,jurisdiction,"
			              "updated_at (column %u should be %s)",
			              i + 1, header_cols[i]);
			goto done;
		}
	for (unsigned i = 5; i < n; i++)
		if (field_is(&f[i], "evidence")) {
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
	im->cap_people = im->cap_rows = bound;
	im->nwslots = bound * CONSENT_LOAD_NUM / CONSENT_LOAD_DEN + 1;
	im->wslots = big_alloc(im->nwslots * sizeof(uint64_t));
	im->people = big_alloc(bound * sizeof(struct wperson));
	im->rows = big_alloc(bound * sizeof(struct wrow));
	if (im->wslots == NULL || im->people == NULL || im->rows == NULL) {
		cg_errors_add(errs, name, 0, 0, "out of memory");
		goto done;
	}

	while (im->nerr < CG_MAX_ERRORS) {
		line = c.line;
		rc = csv_record(&c, f, MAX_COLUMNS, &n, &why);
		if (rc == 0)
			break;
		if (rc < 0) {
			bad(im, line, why);
			continue;
		}
		if (n == 1 && f[0].len == 0 && f[0].ptr[-1] != '"')
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
		t = build_image(im, (int64_t)time(NULL));
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

/* ---- snapshot open ---- */

static bool
range_ok(uint64_t off, uint64_t size, uint64_t file_size)
{
	return off <= file_size && size <= file_size - off;
}

/* Check everything lookups will follow without per-entry work. */
static const char *
snapshot_check(const uint8_t *base, size_t size)
{
	const struct consent_snap_header *h = (const void *)base;

	if (size < sizeof(*h))
		return "truncated snapshot (shorter than its header)";
	if (memcmp(h->magic, CONSENT_MAGIC, 8) != 0)
		return "not a consent snapshot (bad magic)";
	if (h->endian != CONSENT_ENDIAN)
		return "snapshot written on a machine of another byte order";
	if (h->checksum != header_checksum(h))
		return "header checksum mismatch (corrupt snapshot)";
	if (h->format != CONSENT_FORMAT)
		return "unsupported snapshot format version";
	if (h->header_size != sizeof(*h))
		return "bad header size";
	if (h->file_size != size)
		return h->file_size > size ? "truncated snapshot (shorter than "
		                             "its header says)"
		                           : "snapshot longer than its header "
		                             "says";
	if (h->purposes_off % 8 || h->slots_off % 8 || h->blobs_off % 8 ||
	    h->blobs_size % 8)
		return "misaligned section";
	if (!range_ok(h->purposes_off, h->purposes_size, size) ||
	    h->nbuckets == 0 || h->nbuckets > size / 8 ||
	    !range_ok(h->slots_off, h->nbuckets * 8, size) ||
	    !range_ok(h->blobs_off, h->blobs_size, size))
		return "section out of bounds";
	if (h->nbuckets <= h->people || h->people > h->blobs_size / 24 ||
	    h->rows > h->people * CONSENT_MAX_PURPOSES ||
	    h->blobs_size / 8 > CONSENT_SLOT_OFF_MASK)
		return "inconsistent counts";
	if (h->npurposes > CONSENT_MAX_PURPOSES ||
	    (uint64_t)h->npurposes * 8 > h->purposes_size)
		return "bad purpose table";
	for (uint32_t i = 0; i < h->npurposes; i++) {
		const uint8_t *pp = base + h->purposes_off;
		uint32_t ent[2];
		memcpy(ent, pp + i * 8, 8);
		if (ent[0] < h->npurposes * 8u ||
		    ent[1] > CONSENT_MAX_PURPOSE_LEN ||
		    (uint64_t)ent[0] + ent[1] + 1 > h->purposes_size ||
		    pp[ent[0] + ent[1]] != '\0')
			return "bad purpose name";
	}
	return NULL;
}

static struct consent_table *
open_snapshot(const char *path, const uint8_t *base, size_t size,
              struct cg_errors *errs)
{
	const char *why = snapshot_check(base, size);
	struct consent_table *t;

	if (why != NULL) {
		cg_errors_add(errs, path, 0, 0, "%s", why);
		return NULL;
	}
	t = calloc(1, sizeof(*t));
	if (t == NULL || (t->source = strdup(path)) == NULL) {
		free(t);
		cg_errors_add(errs, path, 0, 0, "out of memory");
		return NULL;
	}
	t->base = base;
	t->size = size;
	t->storage = STORAGE_FILE;
	table_bind(t);
	return t;
}

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
		t = open_snapshot(path, map, size, errs);
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

/* ---- snapshot write ---- */

static int
write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len > (1u << 30) ? (1u << 30) : len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int
consent_snapshot_write(const struct consent_table *t, const char *path,
                       struct cg_errors *errs)
{
	struct consent_snap_header h;
	char *tmp = NULL;
	int fd = -1, rc = -1;

	if (asprintf(&tmp, "%s.XXXXXX", path) < 0) {
		tmp = NULL;
		cg_errors_add(errs, path, 0, 0, "out of memory");
		goto done;
	}
	fd = mkstemp(tmp);
	if (fd < 0) {
		cg_errors_add(errs, path, 0, 0, "cannot create %s: %s", tmp,
		              strerror(errno));
		goto done;
	}
	memcpy(&h, t->h, sizeof(h));
	h.version = t->version;
	h.checksum = header_checksum(&h);
	if (write_all(fd, &h, sizeof(h)) < 0 ||
	    write_all(fd, t->base + sizeof(h), t->size - sizeof(h)) < 0 ||
	    fchmod(fd, 0644) < 0 || fsync(fd) < 0) {
		cg_errors_add(errs, path, 0, 0, "cannot write: %s",
		              strerror(errno));
		goto done;
	}
	if (close(fd) < 0) {
		fd = -1;
		cg_errors_add(errs, path, 0, 0, "cannot write: %s",
		              strerror(errno));
		goto done;
	}
	fd = -1;
	/* Readers see the old file or the whole new one, never half. */
	if (rename(tmp, path) < 0) {
		cg_errors_add(errs, path, 0, 0, "cannot rename %s: %s", tmp,
		              strerror(errno));
		goto done;
	}
	rc = 0;
done:
	if (fd >= 0)
		close(fd);
	if (rc < 0 && tmp != NULL)
		unlink(tmp);
	free(tmp);
	return rc;
}

void
consent_free(struct consent_table *t)
{
	if (t == NULL)
		return;
	if (t->storage == STORAGE_HEAP)
		free((void *)(uintptr_t)t->base);
	else
		munmap((void *)(uintptr_t)t->base, t->size);
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
	return t->h->created_at;
}

uint64_t
consent_people(const struct consent_table *t)
{
	return t->h->people;
}

uint64_t
consent_rows(const struct consent_table *t)
{
	return t->h->rows;
}

uint64_t
consent_bytes(const struct consent_table *t)
{
	return t->size;
}

unsigned
consent_purpose_count(const struct consent_table *t)
{
	return t->h->npurposes;
}

struct cg_slice
consent_purpose_name(const struct consent_table *t, unsigned id)
{
	uint32_t ent[2];

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

	if (id >= t->h->npurposes)
		return 0;
	if (t->from_csv)
		return t->purpose_rows[id];
	/* the blobs lie end to end (build_image); stop at anything odd */
	while (off + sizeof(struct consent_blob_head) <= t->blobs_size) {
		struct consent_blob_head bh;
		const uint8_t *blob = t->blobs + off;
		uint64_t rows_at, ev = 0;

		memcpy(&bh, blob, sizeof(bh));
		rows_at = sizeof(bh) + pad8(bh.subj_len);
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
		off += rows_at + (uint64_t)bh.nrows * 16 + pad8(ev);
	}
	return n;
}

int
consent_purpose_id(const struct consent_table *t, const char *name, size_t len)
{
	for (unsigned i = 0; i < t->h->npurposes; i++) {
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
	if (sizeof(bh) + pad8(len) + (uint64_t)bh.nrows * 16 > room)
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
	const uint8_t *rp = blob + sizeof(bh) + pad8(len);
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

static void
probe(const struct consent_table *t, uint64_t h, const char *subject,
      size_t len, int purpose_id, struct consent_lookup_result *out)
{
	uint64_t b = bucket_of(h, t->nbuckets), tag = tag_of(h);

	/* Bounded even on a corrupt file without an empty slot. */
	for (uint64_t i = 0; i < t->nbuckets; i++) {
		uint64_t s = t->slots[b];
		if (s == 0)
			break;
		if (s >> CONSENT_SLOT_OFF_BITS == tag) {
			int m = blob_match(t, (s & CONSENT_SLOT_OFF_MASK) * 8,
			                   subject, len, purpose_id, out);
			if (m == 1)
				return;
			if (m < 0)
				break; /* fail closed: unknown */
		}
		if (++b == t->nbuckets)
			b = 0;
	}
	result_unknown(out);
}

void
consent_lookup(const struct consent_table *t, const char *subject, size_t len,
               int purpose_id, struct consent_lookup_result *out)
{
	if (purpose_id >= (int)t->h->npurposes)
		purpose_id = -1;
	probe(t, hash_bytes(subject, len, t->seed), subject, len, purpose_id,
	      out);
}

void
consent_lookup_many(const struct consent_table *t,
                    const struct cg_slice *subjects, size_t n, int purpose_id,
                    struct consent_lookup_result *out)
{
	uint64_t h[BATCH];

	if (purpose_id >= (int)t->h->npurposes)
		purpose_id = -1;
	for (size_t base = 0; base < n; base += BATCH) {
		size_t m = n - base < BATCH ? n - base : BATCH;
		/* Start every memory fetch first, then wait on them once. */
		for (size_t i = 0; i < m; i++) {
			const struct cg_slice *s = &subjects[base + i];
			h[i] = hash_bytes(s->ptr, s->len, t->seed);
			__builtin_prefetch(
			    &t->slots[bucket_of(h[i], t->nbuckets)]);
		}
		for (size_t i = 0; i < m; i++) {
			/* The person often sits a slot or two further on. */
			uint64_t b = bucket_of(h[i], t->nbuckets);
			uint64_t tag = tag_of(h[i]);
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
			probe(t, h[i], subjects[base + i].ptr,
			      subjects[base + i].len, purpose_id,
			      &out[base + i]);
	}
}
