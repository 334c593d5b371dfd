/*
 * pg_copy.c: the binary COPY wire format of the consent history
 * (pg_copy_internal.h), parsed row by row as it arrives and checked as
 * the CSV import checks it. No connection here: consent_pg.c runs the
 * COPY and hands over its messages.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "consentgate/consent_live.h"
#include "pg_copy_internal.h"

/* A row whose purpose the policy neither declares nor ignores. */
const char pg_copy_unknown_purpose[] =
    "its purpose is neither declared by the policy nor in its "
    "\"ignored_purposes\" (an opt-out there would never take effect)";

static uint32_t
pg_copy_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static uint64_t
pg_copy_be64(const uint8_t *p)
{
	return (uint64_t)pg_copy_be32(p) << 32 | pg_copy_be32(p + 4);
}

/* Check and keep one row: v[7] as the COPY's columns (PG_COPY_COLS). */
static void
pg_copy_row(struct pg_copy *st, const struct cg_slice *v, bool timed)
{
	/* PostgreSQL counts microseconds from 2000-01-01 UTC */
	int64_t us = (int64_t)pg_copy_be64((const uint8_t *)v[4].ptr);
	int64_t sec = us / 1000000, frac = us % 1000000;
	struct consent_change c;
	const char *why = NULL;

	if (frac < 0) {
		sec--;
		frac += 1000000;
	}
	sec += 946684800;
	st->lines++;
	c.seq = pg_copy_be64((const uint8_t *)v[6].ptr);
	c.subject = v[0];
	c.purpose = v[1];
	c.status = v[2];
	c.jurisdiction = v[3];
	c.updated_at = CG_SLICE_LIT("");
	c.evidence = v[5];
	if (st->errs.count >= CG_MAX_ERRORS)
		return; /* the table is lost: only drain the COPY */
	if (consent_live_rows_add(st->rows, &c, timed, sec,
	                          (uint32_t)frac * 1000, &why) != 0 ||
	    (st->p != NULL &&
	     !policy_purpose_known(st->p, c.purpose.ptr, c.purpose.len) &&
	     (why = pg_copy_unknown_purpose)))
		cg_errors_add(&st->errs, st->name, 0, 0,
		              "consent row seq %llu (purpose '%.*s'): %s",
		              (unsigned long long)c.seq, (int)c.purpose.len,
		              c.purpose.ptr, why);
}

/*
 * Parse the rows whole in p[0,n) (header, tuples of 7 fields, trailer):
 * the bytes used, or -1 when it is not our COPY's binary format.
 */
static ssize_t
pg_copy_parse(struct pg_copy *st, const uint8_t *p, size_t n)
{
	static const char sig[11] = "PGCOPY\n\377\r\n";
	size_t off = 0;

	if (!st->header) {
		if (n < 19)
			return 0;
		/* flags: bit 16 would mean OIDs in each row (never asked) */
		if (memcmp(p, sig, 11) != 0 ||
		    (pg_copy_be32(p + 11) & 0x10000) ||
		    pg_copy_be32(p + 15) > INT32_MAX)
			return -1;
		if (pg_copy_be32(p + 15) > n - 19)
			return 0;
		off = 19 + pg_copy_be32(p + 15);
		st->header = true;
	}
	while (!st->trailer && n - off >= 2) {
		size_t at = off + 2;
		struct cg_slice v[7];
		bool timed = true;

		if (p[off] == 0xff && p[off + 1] == 0xff) {
			st->trailer = true;
			off += 2;
			break;
		}
		if (p[off] != 0 || p[off + 1] != 7)
			return -1;
		for (int k = 0; k < 7; k++) {
			uint32_t len;

			if (n - at < 4)
				return (ssize_t)off;
			len = pg_copy_be32(p + at);
			at += 4;
			if (len ==
			    UINT32_MAX) { /* NULL: the CSV's empty field */
				v[k] = CG_SLICE_LIT("\0\0\0\0\0\0\0\0");
				if (k == 4)
					timed = false;
				else if (k == 6)
					return -1;
				else
					v[k].len = 0;
				continue;
			}
			if (len > INT32_MAX || ((k == 4 || k == 6) && len != 8))
				return -1;
			if (n - at < len)
				return (ssize_t)off;
			v[k] = (struct cg_slice){(const char *)p + at, len};
			at += len;
		}
		pg_copy_row(st, v, timed);
		off = at;
	}
	return (ssize_t)off;
}

/* Room for need bytes in st's carry. -1: out of memory. */
static int
pg_copy_reserve(struct pg_copy *st, size_t need)
{
	char *q;

	if (need <= st->carry_cap)
		return 0;
	if ((q = realloc(st->carry, need * 2)) == NULL)
		return -1;
	st->carry = q;
	st->carry_cap = need * 2;
	return 0;
}

/* Feed one COPY message (rows may be cut anywhere). -1: malformed. */
int
pg_copy_feed(struct pg_copy *st, const char *msg, size_t n)
{
	const uint8_t *p = (const uint8_t *)msg;
	ssize_t used;
	size_t rest;

	if (st->carry_len > 0) {
		if (pg_copy_reserve(st, st->carry_len + n) < 0)
			return -1;
		memcpy(st->carry + st->carry_len, msg, n);
		n += st->carry_len;
		p = (const uint8_t *)st->carry;
	}
	if ((used = pg_copy_parse(st, p, n)) < 0 ||
	    (st->trailer && (size_t)used != n))
		return -1;
	rest = n - (size_t)used; /* kept for the next message */
	if (rest > 0 && p != (const uint8_t *)st->carry) {
		if (pg_copy_reserve(st, rest) < 0)
			return -1;
		memcpy(st->carry, p + used, rest);
	} else if (rest > 0) {
		memmove(st->carry, p + used, rest);
	}
	st->carry_len = rest;
	return 0;
}

void
pg_copy_init(struct pg_copy *st, const struct policy *p, const char *name)
{
	memset(st, 0, sizeof(*st));
	cg_errors_init(&st->errs);
	st->p = p;
	st->name = name;
}

void
pg_copy_reset(struct pg_copy *st)
{
	consent_live_rows_free(st->rows);
	free(st->carry);
	cg_errors_reset(&st->errs);
	memset(st, 0, sizeof(*st));
}
