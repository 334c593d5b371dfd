/*
 * common.h: types and limits shared by every part of consentgate.
 *
 * All limits live here, each with its unit and what exceeding it gives.
 * Limits that the configuration can change are defaults (CG_DEFAULT_*);
 * hard caps (CG_MAX_*) size fixed arrays or bound what a file or request
 * may hold; flow-control marks (CG_*_HIGH, _LOW, ...) pause reading a side
 * and are never errors. Constants that only tune an implementation (read
 * sizes, batch widths, timer periods) stay in their file.
 */
#ifndef CONSENTGATE_COMMON_H
#define CONSENTGATE_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define CG_VERSION "0.1.0"

/* A string that is not owned and not NUL-terminated: a view into a buffer. */
struct cg_slice {
	const char *ptr;
	size_t len;
};

#define CG_SLICE_LIT(s) ((struct cg_slice){(s), sizeof(s) - 1})

/*
 * True when s equals the C string lit but for ASCII letter case: the one
 * case-insensitive compare for header names, methods, codings and media
 * types. Locale-free; bytes other than A-Z and a-z compare exactly.
 */
static inline bool
cg_slice_ieq(struct cg_slice s, const char *lit)
{
	if (strlen(lit) != s.len) /* folds to a constant for a literal */
		return false;
	for (size_t i = 0; i < s.len; i++) {
		unsigned a = (unsigned char)s.ptr[i], b = (unsigned char)lit[i];

		a |= a - 'A' < 26u ? 0x20u : 0u;
		b |= b - 'A' < 26u ? 0x20u : 0u;
		if (a != b)
			return false;
	}
	return true;
}

/* ---- hard caps (size fixed arrays) ---- */
#define CG_MAX_HEADERS 128       /* header fields per request or response */
#define CG_MAX_SUBJECTS 32       /* subject values per record */
#define CG_MAX_SUBJECT_LEN 256   /* bytes of one decoded subject id */
#define CG_MAX_LOCATORS 8        /* subject locators per route */
#define CG_MAX_PTR_TOKENS 16     /* reference tokens in one JSON Pointer */
#define CG_MAX_PTR_TOKEN_LEN 128 /* bytes of one decoded pointer token */
#define CG_MAX_CHUNK_EXT 256     /* bytes of chunk extensions per chunk */
#define CG_MAX_ERRORS 100        /* errors a loader reports before it stops */
#define CG_MAX_CANON_PATH 8192   /* path bytes checked for aliases; 414 */
#define CG_MAX_DETAIL 512        /* bytes of a route refusal's detail */
/* bytes of a chunked trailer section; 400 */
#define CG_MAX_TRAILER_BYTES 8192
/* hex digits of a chunk size (no overflow past 2^64); 400 */
#define CG_MAX_CHUNK_SIZE_DIGITS 16
/* JSON nesting of a record whatever max_depth says; deeper is malformed */
#define CG_MAX_SCAN_DEPTH 1024

/* ---- rule files: more is a load error naming the file and line ---- */
#define CG_MAX_RULE_FILE_BYTES (64u << 20) /* bytes of a rule file */
#define CG_MAX_PURPOSES 64                 /* purposes (a bit mask per rule) */
#define CG_MAX_IGNORED_PURPOSES 255        /* ignored_purposes entries */
#define CG_MAX_GROUPS 64  /* jurisdiction groups (a bit mask) */
#define CG_MAX_ROUTES 256 /* routes */
#define CG_MAX_RULES 1024 /* rules */
/* JSON nesting whose line:col errors name; deeper: the nearest ancestor's */
#define CG_MAX_JSONPOS_DEPTH 8
/* bytes of a value's path in messages ("routes[1].purpose"); cut beyond */
#define CG_MAX_JSON_PATH 256

/* ---- consent tables: more fails the import, naming the line ---- */
#define CG_MAX_CSV_COLUMNS 64       /* columns of a consent CSV header */
#define CG_MAX_CONSENT_PURPOSES 255 /* distinct purposes (a snapshot byte) */
#define CG_MAX_PURPOSE_LEN 64       /* bytes of a purpose name */
#define CG_MAX_EVIDENCE_LEN 255     /* bytes of an evidence id */

/* ---- the policy author's CLI (eval, test): more is a usage error, exit 2 */
#define CG_MAX_CLI_INPUT_BYTES (256u << 20) /* bytes of a body or case file */
#define CG_MAX_CLI_HEADERS 64         /* request headers of one test case */
#define CG_MAX_EVAL_HEADER_OPTIONS 16 /* eval --header options */
#define CG_MAX_CASE_FILES 64          /* case files of one test run */

/* ---- flow control: fixed marks, in bytes; a side over its mark stops
 * being read until the other side drains (never an error) ---- */
#define CG_UPSTREAM_IN_HIGH (1u << 20)  /* buffered from upstream */
#define CG_UPSTREAM_OUT_HIGH (1u << 20) /* queued upstream: client paused */
#define CG_CLIENT_OUT_HIGH                                                     \
	(1u << 20) /* queued to the client: upstream paused */
#define CG_CLIENT_OUT_LOW (256u << 10) /* ... and resumed below this */
/* ms a connection closed after an error keeps reading and dropping what
 * the client still sends, so that closing with unread bytes does not
 * reset the connection before the client read the error (nginx's
 * lingering close); it ends sooner when the client closes */
#define CG_LINGER_TIMEOUT_MS 2000
#define CG_PIPELINE_AHEAD (64u << 10) /* read ahead while a request is busy */
#define CG_STREAM_START (256u << 10)  /* kept NDJSON held before streaming */

/* ---- defaults the configuration may change ---- */
/* bytes of a request head; 431 */
#define CG_DEFAULT_MAX_HEADER_BYTES 16384
/* header fields; 431 */
#define CG_DEFAULT_MAX_HEADER_COUNT 100
/* bytes of a request body; 413 */
#define CG_DEFAULT_MAX_BODY_BYTES (16u << 20)
/* bytes of a response head; 502 */
#define CG_DEFAULT_MAX_RESPONSE_HEADER_BYTES 65536
/* ms to read a whole request head; 408 */
#define CG_DEFAULT_HEAD_TIMEOUT_MS 10000
/* ms of silence while reading a body; 408 */
#define CG_DEFAULT_BODY_TIMEOUT_MS 60000
/* ms a keep-alive client may idle */
#define CG_DEFAULT_IDLE_TIMEOUT_MS 60000
/* ms to connect upstream; 504 */
#define CG_DEFAULT_CONNECT_TIMEOUT_MS 5000
/* ms of upstream silence; 504 */
#define CG_DEFAULT_RESPONSE_TIMEOUT_MS 30000
/* client connections per worker */
#define CG_DEFAULT_MAX_CONNS 10000
/* descriptors kept free per process */
#define CG_DEFAULT_FD_RESERVE 32
/* idle upstream connections per worker */
#define CG_DEFAULT_POOL_SIZE 64
/* ms to finish in-flight on SIGTERM */
#define CG_DEFAULT_DRAIN_TIMEOUT_MS 10000
/* ms a TLS client has for its handshake, before the head timeout starts */
#define CG_DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS 10000
/* JSON nesting depth of a record */
#define CG_DEFAULT_MAX_DEPTH 64
/* bytes of one NDJSON record */
#define CG_DEFAULT_MAX_RECORD_BYTES (1u << 20)
/* gzip output/input ratio; 413 */
#define CG_DEFAULT_MAX_INFLATE_RATIO 100
/* s of consent age; 0 = unchecked */
#define CG_DEFAULT_MAX_STALENESS_S 0

/*
 * Errors found while loading a file. Each message reads
 * "file:line:col: message" and a loader reports all it finds, up to
 * CG_MAX_ERRORS. Embedded in the caller: cg_errors_init/cg_errors_reset.
 */
struct cg_errors {
	char *msgs[CG_MAX_ERRORS];
	unsigned count;
	unsigned dropped; /* errors past CG_MAX_ERRORS, counted not kept */
};

void cg_errors_init(struct cg_errors *e);
void cg_errors_reset(struct cg_errors *e);
/* Add one error; line/col 0 leaves them out ("file: message"). */
void cg_errors_add(struct cg_errors *e, const char *file, int line, int col,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#endif
