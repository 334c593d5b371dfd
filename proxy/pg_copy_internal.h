/*
 * pg_copy_internal.h: the consent history's binary COPY (pg_copy.c), for
 * consent_pg.c.
 *
 * COPY (SELECT PG_COPY_COLS ...) TO STDOUT (FORMAT binary) sends a
 * signature and header, one tuple of 7 fields per row (a 4-byte length,
 * -1 for NULL, then the bytes) and a trailer, cut into messages anywhere.
 * pg_copy checks each row as the CSV import checks it and keeps it in a
 * run of rows (consent_live.h); a bad row is noted by seq, never skipped
 * silently. It reads no socket: the caller feeds it the messages.
 */
#ifndef CONSENTGATE_PG_COPY_INTERNAL_H
#define CONSENTGATE_PG_COPY_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "consentgate/common.h"
#include "consentgate/policy.h"

struct consent_live_rows;

/* The columns, in the order and of the types the parser reads (a table
 * whose columns are varchar or timestamp reads alike). */
#define PG_COPY_COLS                                                           \
	"subject::text, purpose::text, status::text, jurisdiction::text, "     \
	"updated_at::timestamptz, evidence::text, seq::int8"

/* Why a row whose purpose the policy neither declares nor ignores is bad
 * (the follower refuses such a change with the same words). */
extern const char pg_copy_unknown_purpose[];

/* One COPY's parse: embedded, pg_copy_init/pg_copy_reset. */
struct pg_copy {
	const struct policy *p;         /* NULL: every purpose is known */
	const char *name;               /* the source, for messages */
	struct consent_live_rows *rows; /* the caller's; freed by reset */
	struct cg_errors errs;          /* bad rows, by seq */
	uint64_t lines;                 /* rows received */
	char *carry;                    /* a row cut across messages */
	size_t carry_len, carry_cap;
	bool header, trailer; /* seen; after the trailer nothing may come */
};

/* Ready to parse for policy p (purposes it neither declares nor ignores
 * are bad rows) and source name; st->rows is set by the caller. */
void pg_copy_init(struct pg_copy *st, const struct policy *p, const char *name);
/* Free st's rows, carry and errors. */
void pg_copy_reset(struct pg_copy *st);
/*
 * Feed one COPY message (rows may be cut anywhere): whole rows go to
 * st->rows, bad ones to st->errs (from CG_MAX_ERRORS on, rows are only
 * drained). -1: not our COPY's binary format (signature, OIDs, field
 * count, a field's length, a NULL seq, bytes after the trailer) or out of
 * memory. The stream is complete when st->trailer is set.
 */
int pg_copy_feed(struct pg_copy *st, const char *msg, size_t n);

#endif
