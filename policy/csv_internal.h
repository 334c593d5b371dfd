/*
 * csv_internal.h: the RFC 4180 tokenizer the consent importer reads its
 * CSV with (csv.c). Nobody outside policy/ includes it.
 *
 * Fields are slices into the caller's buffer: a quoted field holding ""
 * pairs is marked escaped and csv_field_unescape gives its text. LF or
 * CRLF line ends; a bare CR, a quote inside an unquoted field and text
 * after a closing quote are syntax errors.
 */
#ifndef CONSENTGATE_CSV_INTERNAL_H
#define CONSENTGATE_CSV_INTERNAL_H

#include "consentgate/common.h"

struct csv_field {
	const char *ptr; /* inside the quotes of a quoted field */
	size_t len;
	bool quoted;
	bool escaped; /* quoted and holds "" pairs: unescape before use */
};

/* A reader over buf[0,len); embedded in the caller, no allocation. */
struct csv {
	const char *buf;
	size_t len, pos;
	int line; /* physical line of pos, from 1 */
};

/* Start reading buf[0,len), past a UTF-8 byte-order mark (spreadsheet
 * exports write one) when there is one. */
void csv_init(struct csv *c, const char *buf, size_t len);

/*
 * Read one record's fields into f (at most max kept, *n counts them all).
 * Returns 1 for a record, 0 at the end of the input, -1 with *why (a
 * static message) on a syntax error; the rest of that line is skipped, so
 * the next call reads the next line.
 */
int csv_record(struct csv *c, struct csv_field *f, unsigned max, unsigned *n,
               const char **why);

/* True for the record of a blank line (one empty unquoted field). */
bool csv_blank(const struct csv_field *f, unsigned n);

/* True when f is exactly the text s (and not escaped). */
bool csv_field_is(const struct csv_field *f, const char *s);

/* Write f's text, "" pairs made one quote, to out (room for f->len bytes).
 * Returns the length written. */
size_t csv_field_unescape(const struct csv_field *f, char *out);

#endif
