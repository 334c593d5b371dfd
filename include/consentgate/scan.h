/*
 * scan.h: the validating record scanner of the request-body path.
 *
 * It never builds a tree and never re-serialises: it yields each record's
 * exact byte range in the caller's buffer and the subject values found at
 * the route's locators. It is strict RFC 8259 (UTF-8 validated, no lone
 * surrogates, number grammar, depth limit) and refuses a record whose
 * subject is ambiguous (DESIGN.md, "Parser differentials"):
 *  - a member on a locator's path present twice in one object, also when one
 *    spelling uses \u escapes or differs only in letter case;
 *  - a subject that is not a string or an integer (object, array, bool,
 *    null, a number with a fraction or exponent);
 *  - a locator's intermediate member that has the wrong type (e.g. the
 *    wildcard's member is not an array);
 *  - a subject longer than CG_MAX_SUBJECT_LEN or more than CG_MAX_SUBJECTS;
 *  - a numeric subject a double cannot hold exactly (beyond 2^53) or -0;
 *  - unless spec->ids_as_text, a string subject that Python's float()
 *    reads ("0042", "1e3", digits beyond 2^53) and that is not plain
 *    digits a double holds: pandas' read_json converts such a column
 *    through float64 by default and reads another id.
 * It also refuses what real pipeline readers would read as other records
 * (DESIGN.md, contract item 5), in every format:
 *  - a CR that is not directly before LF (or the buffer's last byte);
 *  - NDJSON: raw U+2028, U+2029 or U+0085 in a string (splitlines breaks
 *    the record there: a loss);
 *  - in object and array bodies, a nested object or array that starts a
 *    line (a line reader would read it as a record of its own);
 *  - a member name on a locator's path that equals the token under NFKC
 *    and full case folding, Go's folding or Java's Turkish-i rules.
 * A locator without '*' that resolves to nothing sets its bit in
 * rec->missing unless spec->optional has it: the policy decides such a
 * record as an unknown person. A wildcard locator that resolves to
 * nothing contributes no subject; a record with no subject at all is
 * decided as an unknown person by the policy.
 *
 * Subjects are compared by exact text: the number 123 and the string "123"
 * yield the same subject "123"; string escapes are decoded.
 *
 * Errors are static strings, safe to put in a problem+json body: they never
 * carry record content.
 */
#ifndef CONSENTGATE_SCAN_H
#define CONSENTGATE_SCAN_H

#include "consentgate/common.h"
#include "consentgate/jsonptr.h"

/* Body formats a route accepts (bit set). */
enum scan_format {
	SCAN_FORMAT_NDJSON = 1,   /* one JSON value per line (LF or CRLF) */
	SCAN_FORMAT_OBJECT = 2,   /* the body is one JSON object: one record */
	SCAN_FORMAT_ARRAY = 4,    /* the body is a JSON array of records */
	SCAN_FORMAT_ARRAY_AT = 8, /* the records are the array at a pointer */
};

/* What the scanner looks for; owned by the compiled policy route. */
struct scan_spec {
	const struct jsonptr *locators;
	unsigned nlocators;
	unsigned max_depth; /* nesting limit; 0 = CG_DEFAULT_MAX_DEPTH */
	unsigned optional;  /* bit per locator whose absence is allowed */
	/* the pipeline reads subject ids as text: a string id that looks
	 * like a number need not survive a float64 conversion */
	bool ids_as_text;
};

/* One record found in a buffer. */
struct scan_record {
	size_t start,
	    end; /* [start, end) in the scanned buffer, no whitespace */
	unsigned nsubjects;
	/* bit per required locator (no '*', not optional) that resolved to
	 * nothing: the record names someone who is not there, an unknown
	 * person to the policy */
	unsigned missing;
	struct cg_slice
	    subjects[CG_MAX_SUBJECTS]; /* into the buffer or scratch */
	char
	    scratch[CG_MAX_SUBJECTS * CG_MAX_SUBJECT_LEN]; /* decoded escapes */
};

/*
 * Validate buf[0,len) as exactly one JSON value (whitespace around it is
 * allowed) and extract its subjects. Returns 0, or -1 with *err set.
 * The record must be an object for a locator to resolve in it; any other
 * valid value has no subject.
 */
int scan_record(const struct scan_spec *spec, const char *buf, size_t len,
                struct scan_record *rec, const char **err);

/*
 * Validate one NDJSON line buf[0,len) (its LF stripped) as scan_record
 * does, with the NDJSON rules of SCAN_FORMAT_NDJSON: no LF inside, a CR
 * only as the last byte, no raw U+2028, U+2029 or U+0085 in a string.
 * The streamed NDJSON path uses it, so it decides as scan_iter does.
 */
int scan_line(const struct scan_spec *spec, const char *buf, size_t len,
              struct scan_record *rec, const char **err);

/*
 * Iterate the records of a whole body buffer in one of the formats.
 * For NDJSON, blank (whitespace-only) lines are skipped. For ARRAY and
 * ARRAY_AT, the rest of the document (outside the array) is validated too,
 * and array_open/array_close give the offsets of '[' and ']' once the
 * iteration returned 0, so a caller can rebuild the document around the
 * records it keeps.
 */
struct scan_iter {
	/* read-only for callers */
	unsigned
	    index;     /* index of the next record (of the failing one on -1) */
	size_t offset; /* byte offset of the failure on -1 */
	const char *error;  /* static message on -1 */
	size_t array_open;  /* ARRAY/ARRAY_AT: offset of '[' */
	size_t array_close; /* ARRAY/ARRAY_AT: offset of ']' */
	/* private */
	const struct scan_spec *spec;
	enum scan_format format;
	const struct jsonptr *array_at;
	const char *buf;
	size_t len, pos;
	int state;
	const char *bare_cr; /* first CR not before LF (not NDJSON) */
};

void scan_iter_init(struct scan_iter *it, const struct scan_spec *spec,
                    enum scan_format format, const struct jsonptr *array_at,
                    const char *buf, size_t len);
/* 1: a record in *rec; 0: end, the whole body is valid; -1: error. */
int scan_iter_next(struct scan_iter *it, struct scan_record *rec);

#endif
