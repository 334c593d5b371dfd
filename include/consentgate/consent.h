/*
 * consent.h: the consent table: who allowed what, and the proof.
 *
 * A table is immutable once built and shared read-only by all worker
 * threads. It comes from a CSV import or from a binary snapshot that is
 * mmap'ed (consent build). Subjects are strings compared by exact text.
 *
 * CSV header: subject,purpose,status,jurisdiction,updated_at[,evidence][,...]
 * Several rows for one subject and purpose: the latest updated_at decides.
 * A person's jurisdiction is the one on their latest row (any purpose).
 * A bad row fails the whole import with its line number: never a partial
 * table.
 *
 * CSV details: RFC 4180 quoting ("a,b", "" for a quote), LF or CRLF line
 * ends, a leading UTF-8 BOM and blank lines are ignored, every row has the
 * header's field count. Equal updated_at (same instant, fractions count):
 * the later row in the file wins. subject: 1..CG_MAX_SUBJECT_LEN bytes, no
 * leading/trailing space; purpose: 1..CG_MAX_PURPOSE_LEN of [A-Za-z0-9._-],
 * at most CG_MAX_CONSENT_PURPOSES distinct; status: granted|denied|withdrawn;
 * jurisdiction: two upper-case letters; updated_at: RFC 3339 with Z or an
 * offset (rfc3339.h); evidence: <= CG_MAX_EVIDENCE_LEN bytes, may be empty.
 * At most CG_MAX_CSV_COLUMNS columns; extra columns are ignored.
 */
#ifndef CONSENTGATE_CONSENT_H
#define CONSENTGATE_CONSENT_H

#include "consentgate/common.h"

enum consent_status {
	CONSENT_STATUS_NONE = 0, /* known person, no row for this purpose */
	CONSENT_STATUS_GRANTED,
	CONSENT_STATUS_DENIED,
	CONSENT_STATUS_WITHDRAWN,
};

struct consent_table;

/* What a lookup found. Slices point into the table: valid while it lives. */
struct consent_lookup_result {
	bool known;                 /* the subject has at least one row */
	char jurisdiction[3];       /* ISO 3166-1 alpha-2, "" when unknown */
	enum consent_status status; /* for the purpose asked */
	int64_t updated_at;         /* unix seconds of that row, 0 when none */
	struct cg_slice evidence; /* that row's evidence id, empty when none */
};

/*
 * Open a CSV file or a snapshot file (told apart by the snapshot magic).
 * A snapshot is mmap'ed and its header and section bounds checked (no
 * per-entry work); a corrupt or truncated one is refused with the reason
 * in errs. Replace a snapshot in use by rename (consent_snapshot_write
 * does), never by rewriting it in place. NULL on error.
 */
struct consent_table *consent_open(const char *path, struct cg_errors *errs);
/* Import CSV from buf[0,len); name is used in error messages. NULL on
 * error, with every bad row (up to CG_MAX_ERRORS) in errs. */
struct consent_table *consent_import_csv(const char *name, const char *buf,
                                         size_t len, struct cg_errors *errs);
/* Write a snapshot that consent_open can mmap: to a temporary file in the
 * same directory, fsync'ed, then renamed over path. Returns 0 or -1 (errs). */
int consent_snapshot_write(const struct consent_table *t, const char *path,
                           struct cg_errors *errs);
void consent_free(struct consent_table *t); /* NULL: does nothing */

uint64_t consent_version(const struct consent_table *t); /* snapshot version */
int64_t consent_created_at(const struct consent_table *t); /* unix seconds */
uint64_t consent_people(const struct consent_table *t); /* distinct subjects */
uint64_t consent_rows(const struct consent_table *t);   /* rows kept */

/* The id of a purpose name in this table, or -1 when no row names it. */
int consent_purpose_id(const struct consent_table *t, const char *name,
                       size_t len);

/*
 * Look subject[0,len) up for purpose_id (-1: none). Never fails: an
 * unknown subject gives known == false. No allocation; thread-safe.
 */
void consent_lookup(const struct consent_table *t, const char *subject,
                    size_t len, int purpose_id,
                    struct consent_lookup_result *out);

/*
 * Look n subjects up at once, overlapping their memory fetches (several
 * times faster than n calls on a large table). out has n entries.
 */
void consent_lookup_many(const struct consent_table *t,
                         const struct cg_slice *subjects, size_t n,
                         int purpose_id, struct consent_lookup_result *out);

const char *consent_status_name(enum consent_status s);

/* Set the snapshot version the next consent_snapshot_write records
 * (consent build --version). Call before sharing the table. Returns 0. */
int consent_set_version(struct consent_table *t, uint64_t version);
/* Bytes of the table's image (the snapshot file size). */
uint64_t consent_bytes(const struct consent_table *t);
/* Purposes named in the table: ids 0..count-1 and their names. */
unsigned consent_purpose_count(const struct consent_table *t);
struct cg_slice consent_purpose_name(const struct consent_table *t,
                                     unsigned id);

/* Where the table was read from (the name given to consent_open or
 * consent_import_csv), for messages. Owned by the table. */
const char *consent_source(const struct consent_table *t);
/* The first CSV line naming purpose id; 0 for a table opened from a
 * snapshot (or an id out of range). */
int consent_purpose_line(const struct consent_table *t, unsigned id);
/* Rows naming purpose id: in the CSV file for an imported table, kept in
 * the snapshot (one per person) for an opened one. The second walks the
 * whole table: for messages, not for the request path. */
uint64_t consent_purpose_rows(const struct consent_table *t, unsigned id);

#endif
