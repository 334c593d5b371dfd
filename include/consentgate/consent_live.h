/*
 * consent_live.h: a consent table that changes while it is read.
 *
 * A live source keeps an image (a consent table as the CSV import or a
 * snapshot file gives it) and the changes applied since, merged person by
 * person with the CSV import's own merge: for a person and purpose the
 * latest updated_at decides, an equal one goes to the later change, and
 * the person's newest row names the jurisdiction. So the image of a
 * history, and an older image plus the rest of that history applied as
 * changes, decide every lookup alike.
 *
 * Readers never see a source change: consent_live_view returns an
 * immutable consent_table (the image, shared, and an overlay holding each
 * changed person whole, which lookups consult first) to put in a
 * snapshot. Compaction lays the image and the changes out as a new image
 * (consent_live_compact_run, on any thread, while the writer goes on
 * applying); consent_live_compact_end then keeps only the changes the new
 * image does not hold.
 *
 * One thread writes a source (every function but compact_run and the
 * views' lookups). Pure: no I/O, no threads, no clock (times are given).
 */
#ifndef CONSENTGATE_CONSENT_LIVE_H
#define CONSENTGATE_CONSENT_LIVE_H

#include "consentgate/consent.h"

struct consent_live;
struct consent_live_job;
struct consent_live_rows;

/* One history row as the source gives it (text, not NUL-terminated). */
struct consent_change {
	uint64_t seq; /* the source's change sequence: increasing */
	struct cg_slice subject, purpose, status, jurisdiction, updated_at,
	    evidence;
};

/*
 * A source over image (taken over: a table from consent_open or
 * consent_import_csv, not a view) holding every change up to seq, last
 * confirmed current at now (unix seconds). NULL when out of memory (the
 * image is freed then).
 */
struct consent_live *consent_live_new(struct consent_table *image, uint64_t seq,
                                      int64_t now);
/* Views made from l stay valid. NULL does nothing. */
void consent_live_free(struct consent_live *l);

/*
 * Check c as the CSV import checks a row (same rules and messages) and
 * merge it. c->seq must be above every seq applied. Returns 0, or -1 with
 * *why (a static string) and nothing applied: a bad row is never merged
 * in part.
 */
int consent_live_apply(struct consent_live *l, const struct consent_change *c,
                       const char **why);

/* Check c as consent_live_apply would, applying nothing. 0, or -1 with
 * *why. */
int consent_live_check(const struct consent_change *c, const char **why);

/*
 * The initial load: a history read as runs of rows in seq order (one per
 * thread: a run is written by one thread at a time), checked as they come
 * and built into one image with the CSV import's merge and builder, so it
 * decides every lookup as the CSV import of the rows in seq order does.
 * hint: the rows expected (room is made once). NULL when out of memory.
 */
struct consent_live_rows *consent_live_rows_new(uint64_t hint);
void consent_live_rows_free(struct consent_live_rows *r); /* NULL: nothing */

/*
 * Check c as consent_live_apply would and keep it. With timed, updated_at
 * is sec and nsec (Unix time; c->updated_at is not read), valid where an
 * RFC 3339 text can name it (years 0001 to 9999, UTC); else the text.
 * Returns 0, or -1 with *why (static) and nothing kept: a bad row, or out
 * of memory.
 */
int consent_live_rows_add(struct consent_live_rows *r,
                          const struct consent_change *c, bool timed,
                          int64_t sec, uint32_t nsec, const char **why);

/*
 * The image of first's rows, then (NULL: none) then's, named source in
 * messages and stamped with now (unix seconds; version and creation
 * time). then's rows must come after first's. Both are freed, on success
 * or not. NULL when out of memory (or then's rows come first).
 */
struct consent_table *consent_live_rows_build(struct consent_live_rows *first,
                                              struct consent_live_rows *then,
                                              const char *source, int64_t now);

/* The last seq applied. */
uint64_t consent_live_seq(const struct consent_live *l);
/* People changed since the image was built (the overlay's size). */
uint64_t consent_live_pending(const struct consent_live *l);

/*
 * The source was confirmed current at unix time at: every view of l,
 * made before or after, reports it as consent_created_at (so a request's
 * staleness is the time since the source last knew it was current).
 */
void consent_live_confirm(struct consent_live *l, int64_t at);
int64_t consent_live_confirmed(const struct consent_live *l);

/*
 * An immutable table of everything applied so far, its version the last
 * seq, named source in messages. The caller owns it (consent_free); it
 * shares the image and stays valid after l changes or is freed. NULL when
 * out of memory. Costs a copy of the overlay, not of the image.
 */
struct consent_table *consent_live_view(struct consent_live *l,
                                        const char *source);

/*
 * Compaction in three steps. begin (writer) copies what the job needs:
 * NULL when out of memory. run (any thread, the heavy part: the whole
 * image is rewritten with the builder the CSV import uses) returns the
 * new image with version = the job's seq, created at the job's confirmed
 * time, or NULL (out of memory, or an image whose entries do not add up).
 * end (writer) puts that image under l and keeps in the overlay only the
 * changes after the job's seq; with image NULL nothing changes. end frees
 * the job and takes image. end returns 0, or -1 (out of memory: l keeps
 * its old image and every change, and image is freed).
 */
struct consent_live_job *consent_live_compact_begin(struct consent_live *l);
struct consent_table *consent_live_compact_run(struct consent_live_job *j);
int consent_live_compact_end(struct consent_live *l, struct consent_live_job *j,
                             struct consent_table *image);
uint64_t consent_live_job_seq(const struct consent_live_job *j);
/* The image the job started from (valid while the job lives). */
const struct consent_table *
consent_live_job_image(const struct consent_live_job *j);
void consent_live_job_free(struct consent_live_job *j); /* NULL: nothing */

#endif
