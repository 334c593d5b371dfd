/*
 * consent_internal.h: the consent snapshot layout and the working table an
 * import builds, shared by consent.c (import, open, lookup),
 * consent_snapshot.c (layout, checks, write) and their tests, fuzzer and
 * benchmark (nobody in proxy/ includes it).
 *
 * One layout serves the mmap'ed snapshot and the table built in memory from
 * CSV, so both take the same lookup path. All integers are host order; the
 * header records the byte order and a foreign one is refused.
 *
 *   header (128 bytes)
 *   purposes: npurposes x {u32 off, u32 len} then the NUL-terminated names
 *   slots:    nbuckets x u64, 0 = empty, else tag(24 bits) | blob_off/8
 *   blobs:    one per person, 8-byte aligned:
 *             blob_head, subject bytes (padded to 8), nrows x blob_row
 *             (sorted by purpose id), evidence bytes (padded to 8)
 *
 * A slot is found by linear probing from fastrange(hash, nbuckets); the tag
 * skips most foreign blobs, and the subject bytes in the blob are compared
 * exactly, so a hash collision can never merge two people.
 */
#ifndef CONSENTGATE_CONSENT_INTERNAL_H
#define CONSENTGATE_CONSENT_INTERNAL_H

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "consentgate/consent.h"

#define CONSENT_MAGIC "CGCONSNP"   /* first 8 bytes of a snapshot */
#define CONSENT_FORMAT 1           /* snapshot format version */
#define CONSENT_ENDIAN 0x01020304u /* byte-order mark */
#define CONSENT_HASH_SEED UINT64_C(0x8bb84b93962eacc9) /* tables we build */
#define CONSENT_LOAD_NUM 4 /* buckets = people * 4 / 3 + 1 */
#define CONSENT_LOAD_DEN 3
#define CONSENT_SLOT_OFF_BITS 40 /* blob offset / 8 in a slot */
#define CONSENT_SLOT_OFF_MASK ((UINT64_C(1) << CONSENT_SLOT_OFF_BITS) - 1)

struct consent_snap_header {
	char magic[8];
	uint32_t format;
	uint32_t header_size;
	uint64_t version;   /* snapshot version (build --version) */
	int64_t created_at; /* unix seconds */
	uint64_t people;
	uint64_t rows;
	uint64_t file_size;
	uint64_t nbuckets;
	uint64_t slots_off;
	uint64_t blobs_off;
	uint64_t blobs_size;
	uint64_t purposes_off;
	uint64_t purposes_size;
	uint32_t npurposes;
	uint32_t endian;
	uint64_t hash_seed;
	uint64_t checksum; /* hash of the bytes before this field */
};

struct consent_blob_head {
	uint16_t subj_len;
	uint8_t nrows;
	char juris[2];
	uint8_t pad[3];
};

struct consent_blob_row {
	int64_t updated_at;
	uint32_t ev_off; /* from the blob's start */
	uint8_t ev_len;
	uint8_t purpose;
	uint8_t status; /* enum consent_status */
	uint8_t pad;
};

_Static_assert(sizeof(struct consent_snap_header) == 128, "header size");
_Static_assert(sizeof(struct consent_blob_head) == 8, "blob head size");
_Static_assert(sizeof(struct consent_blob_row) == 16, "blob row size");
_Static_assert(CG_MAX_CONSENT_PURPOSES <= 255, "a purpose id is a byte");
_Static_assert(CG_MAX_EVIDENCE_LEN <= 255, "an evidence length is a byte");

enum consent_storage {
	CONSENT_STORAGE_BUILT, /* from consent_snapshot_big_alloc */
	CONSENT_STORAGE_FILE,  /* the mmap'ed snapshot file */
};

struct consent_table {
	const uint8_t
	    *base; /* the image: mmap'ed file, anonymous map or heap */
	size_t size;
	enum consent_storage storage;
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
	int purpose_line[CG_MAX_CONSENT_PURPOSES];
	uint64_t purpose_rows[CG_MAX_CONSENT_PURPOSES];
	bool from_csv;
	/* a live view (consent_live.c): the image fields above are img's,
	   and ov, a table of the people changed since img was built, is
	   consulted before them; people and rows count both */
	struct consent_table *ov;
	struct consent_table *img;        /* counted by img->img_refs */
	struct consent_live_clock *clock; /* when it was last current */
	uint64_t live_people, live_rows;
	/* a blocked bloom filter of the overlay's people (consent_ov_maybe):
	   most lookups of someone unchanged stop at one word of it; NULL
	   when the overlay is empty (and in a plain table), so lookups skip
	   it with one branch */
	uint64_t *ov_filter;
	uint64_t ov_filter_mask; /* words - 1 */
	atomic_uint img_refs;    /* an image shared by views: its owners */
};

/* A person's word of the overlay filter (bits 24 up: the tag has the
 * low 24) and their three bits in it (the top 18 bits, 6 each). */
#define CONSENT_OV_WORD_BITS 22 /* at most 4 Mi words in a filter */

static inline uint64_t
consent_ov_word(uint64_t h, uint64_t mask)
{
	return (h >> 24) & mask;
}

static inline uint64_t
consent_ov_bits(uint64_t h)
{
	return UINT64_C(1) << (h >> 58) | UINT64_C(1) << (h >> 52 & 63) |
	       UINT64_C(1) << (h >> 46 & 63);
}

/* false: h (hashed with t's seed) is nobody in t's overlay; true: it may
 * be (1 lookup in 130 of someone else at 16 bits a person) */
static inline bool
consent_ov_maybe(const struct consent_table *t, uint64_t h)
{
	uint64_t bits = consent_ov_bits(h);

	return (t->ov_filter[consent_ov_word(h, t->ov_filter_mask)] & bits) ==
	       bits;
}

/* Tear a live view down (consent_free calls it for one). */
void consent_live_view_free(struct consent_table *t);
/* When the live source behind t was last confirmed current. */
int64_t consent_live_clock_get(const struct consent_live_clock *c);

/* ---- the working table an import merges rows into ---- */

#define CONSENT_REF_ARENA (UINT64_C(1) << 63) /* ref into the arena */

struct consent_wperson {
	uint64_t subj;      /* string ref */
	int64_t latest_sec; /* newest row (any purpose); later: blob offset */
	uint32_t latest_nsec;
	uint32_t head; /* first wrow + 1, 0 = none */
	uint16_t subj_len;
	uint8_t nrows;
	char juris[2];
};

struct consent_wrow {
	int64_t sec;
	uint64_t ev; /* string ref */
	uint32_t nsec;
	uint32_t next; /* next wrow of the person + 1 */
	uint8_t purpose, status, ev_len;
};

/*
 * People, their latest rows and the purposes, as consent_snapshot_build
 * lays them out. A string ref is an offset into buf (the CSV text), or
 * with CONSENT_REF_ARENA into arena (unescaped quoted fields).
 */
struct consent_work {
	const char *buf;
	char *arena;
	size_t arena_len, arena_cap;
	uint64_t *wslots; /* people by subject hash: tag | index + 1 */
	uint64_t nwslots;
	struct consent_wperson *people;
	uint64_t npeople, cap_people;
	struct consent_wrow *rows;
	uint64_t nrows, cap_rows;
	char purpose[CG_MAX_CONSENT_PURPOSES][CG_MAX_PURPOSE_LEN + 1];
	uint8_t purpose_len[CG_MAX_CONSENT_PURPOSES];
	unsigned npurposes;
};

/* A validated row to merge, its strings as refs. */
struct consent_wnew {
	uint64_t subj, ev, h; /* h: consent_hash with CONSENT_HASH_SEED */
	int64_t sec;
	uint32_t nsec;
	uint16_t subj_len;
	uint8_t purpose, status, ev_len;
	char juris[2];
};

/*
 * Merge r into w as the CSV import does: for its person and purpose the
 * latest updated_at wins, an equal one wins over what was merged before;
 * the person's newest row names the jurisdiction. -1 when w has no room
 * (cap_people, cap_rows); the caller keeps wslots under 3/4 full.
 */
int consent_work_merge(struct consent_work *w, const struct consent_wnew *r);

/* One consent row's fields, checked. */
struct consent_row {
	struct cg_slice subject, purpose, evidence;
	enum consent_status status;
	char juris[2];
	int64_t sec;
	uint32_t nsec;
};

/*
 * Check one row's fields (unescaped) as the CSV import checks every row:
 * the same rules and messages, so a live change is refused exactly where
 * the same row in a CSV would be. 0, or -1 with *why (static).
 */
int consent_row_parse(struct cg_slice subject, struct cg_slice purpose,
                      struct cg_slice status, struct cg_slice jurisdiction,
                      struct cg_slice updated_at, struct cg_slice evidence,
                      struct consent_row *out, const char **why);

static inline const char *
consent_ref_ptr(const struct consent_work *w, uint64_t ref)
{
	return ref & CONSENT_REF_ARENA ? w->arena + (ref & ~CONSENT_REF_ARENA)
	                               : w->buf + ref;
}

/* ---- consent_snapshot.c: the image ---- */

/*
 * Lay w out as a snapshot image stamped with now (unix seconds) as its
 * version and creation time. Frees w->wslots first (a lower peak); the
 * rest of w stays the caller's. The table's source and CSV provenance are
 * left for the caller. NULL when out of memory or too large.
 */
struct consent_table *consent_snapshot_build(struct consent_work *w,
                                             int64_t now);
/* Why base[0,size) is not a snapshot lookups can follow (header, bounds,
 * purpose table; no per-entry work), or NULL when it is. */
const char *consent_snapshot_check(const uint8_t *base, size_t size);
/* A table over the checked, mapped snapshot base[0,size) (the table owns
 * the map on success). NULL with the reason in errs. */
struct consent_table *consent_snapshot_open(const char *path,
                                            const uint8_t *base, size_t size,
                                            struct cg_errors *errs);
/* Point t's section pointers into t->base (after a check). */
void consent_snapshot_bind(struct consent_table *t);
/* The checksum a header h carries (of the bytes before that field). */
uint64_t consent_snapshot_checksum(const struct consent_snap_header *h);

/* Zeroed memory; a large block is an anonymous huge-page map (fewer faults
 * and TLB misses). NULL when out of memory. Free with consent_snapshot_big_free
 * and the same size; consent_snapshot_big_free(NULL, n) does nothing. */
void *consent_snapshot_big_alloc(size_t size);
void consent_snapshot_big_free(void *p, size_t size);

/* ---- hashing: a wyhash-style multiply-fold over 8-byte words ---- */

/*
 * All ones, a constant the compiler folds away. A test that builds the
 * consent sources into itself with CONSENT_TEST_HOOKS defined may narrow
 * it to force collisions (test_consent.c).
 */
#ifdef CONSENT_TEST_HOOKS
extern uint64_t consent_hash_mask;
#else
#define consent_hash_mask UINT64_MAX
#endif

static inline uint64_t
consent_fold(uint64_t a, uint64_t b)
{
	unsigned __int128 r = (unsigned __int128)a * b;
	return (uint64_t)r ^ (uint64_t)(r >> 64);
}

static inline uint64_t
consent_rd64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static inline uint64_t
consent_rd32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static inline uint64_t
consent_hash_raw(const void *data, size_t len, uint64_t seed)
{
	const uint8_t *p = data;
	const uint64_t k1 = UINT64_C(0xa0761d6478bd642f);
	const uint64_t k2 = UINT64_C(0xe7037ed1a0b428db);
	uint64_t s = seed ^ consent_fold(seed ^ k1, k2 ^ len);
	uint64_t a, b;

	while (len > 16) {
		s = consent_fold(consent_rd64(p) ^ k1, consent_rd64(p + 8) ^ s);
		p += 16;
		len -= 16;
	}
	if (len >= 8) {
		a = consent_rd64(p);
		b = consent_rd64(p + len - 8);
	} else if (len >= 4) {
		a = consent_rd32(p);
		b = consent_rd32(p + len - 4);
	} else if (len > 0) {
		a = (uint64_t)p[0] << 16 | (uint64_t)p[len / 2] << 8 |
		    p[len - 1];
		b = 0;
	} else {
		a = b = 0;
	}
	return consent_fold(consent_fold(a ^ k1, b ^ s) ^ k2, s ^ len);
}

/* The hash of a subject, as slots and lookups use it. */
static inline uint64_t
consent_hash(const void *data, size_t len, uint64_t seed)
{
	return consent_hash_raw(data, len, seed) & consent_hash_mask;
}

static inline uint64_t
consent_bucket(uint64_t h, uint64_t nbuckets)
{
	return (uint64_t)(((unsigned __int128)h * nbuckets) >> 64);
}

/* 24 bits the bucket did not use; never 0 so a filled slot is never 0. */
static inline uint64_t
consent_tag(uint64_t h)
{
	uint64_t tag = h & 0xffffff;
	return tag ? tag : 1;
}

static inline size_t
consent_pad8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

#endif
