/*
 * scan.c: the validating JSON record scanner of the body path.
 *
 * One pass over the bytes, no tree, nothing copied except decoded subject
 * ids. String bodies are skipped 16 bytes at a time (SSE2) up to a quote, a
 * backslash or a control byte; a UTF-8 shift DFA runs only over the span of
 * non-ASCII bytes in a block. That is the scalar reference; with a stage-1
 * kernel (scan_kernel.c: AVX2, AVX-512) strings jump from one special byte
 * to the next in a bit mask of 64 bytes whose UTF-8 the kernel validated,
 * and every string it cannot vouch for is walked by the reference, so the
 * kernels change no verdict, error or offset. Subject tracking costs nothing
 * where no locator reaches: each open container carries the bit set of the
 * locators whose path led to it, and member names are compared only when it is
 * not empty.
 *
 * Choices beyond RFC 8259 (all refuse more, never less):
 *  - a member name holding \u0000 is refused anywhere (C decoders read a
 *    shorter name), and so is a subject id holding one;
 *  - a member name that equals a locator token under ASCII case folding,
 *    or under the two non-ASCII folds to ASCII (U+017F, U+212A) that Go's
 *    decoder applies, is a decoy and refuses the record;
 *  - nesting is limited per record (spec->max_depth, capped at
 *    CG_MAX_SCAN_DEPTH); for ARRAY/ARRAY_AT the wrapper levels do not count;
 *  - duplicate members off the locator paths are accepted: they cannot
 *    change whose record it is.
 */
#include <limits.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "consentgate/scan.h"
#include "scan_internal.h"

#define SCAN_TRACK CG_MAX_PTR_TOKENS /* levels a locator can reach */
#define SCAN_MAX_LOC 32              /* locators a mask can hold */

/* what a string body holds, found while skipping it */
#define SF_ESC 1 /* a backslash escape */
#define SF_NUL 4 /* \u0000 */

/* iterator states */
enum {
	IT_START,
	IT_FIRST, /* after '[': a record or ']' */
	IT_NEXT,  /* after a record: ',' or ']' */
	IT_LINES, /* NDJSON */
	IT_DONE,
	IT_FAILED,
};

struct scan_ctx {
	const struct jsonptr *loc;
	unsigned nloc;
	unsigned all_mask; /* locators with at least one token */
	unsigned required; /* locators whose absence is an unknown person */
	/* bit (b | 0x20) & 63 for the first byte b of every locator's first
	 * token (all bits when one is empty or not ASCII): a member name of
	 * the record itself whose ASCII first letter has no bit can be no
	 * locator's, whatever its case, and skips match_member */
	uint64_t root_first;
	unsigned found;   /* locators that gave a subject in this record */
	bool ids_as_text; /* the pipeline reads ids as text (no pandas check) */
	unsigned max_depth;
	uint64_t ws;             /* whitespace inside a value: WS_* */
	bool ndjson;             /* one record per line: line-end rules */
	unsigned guard_from;     /* containers this deep may not start a line */
	struct scan_record *rec; /* NULL: validate only */
	const char *begin;       /* the buffer, for looking back */
	const char *end;
	const char *err;
	const char *errp;
	/* stage 1 (scan_kernel.c), none with the scalar kernel */
	enum scan_kernel kernel;
	const char *s1_base;   /* the block s1 describes */
	const char *clean_end; /* before it, stage 1 vouches for UTF-8 */
	struct scan_kernel_block s1;
};

/*
 * Whitespace tables: 1 whitespace, 2 a CR, whitespace only directly before
 * LF or as the last byte of the buffer (a caller stripped the LF). A CR
 * anywhere else is a line end to readers that split on CR (Spark's
 * LineReader, Python universal newlines, Java readLine, Node readline)
 * and to nobody else: they would read the record as other lines.
 *
 * Inside object and array bodies a CR counts as whitespace here, and a
 * bare one is found up front by first_bare_cr (one memchr pass, mostly
 * none): the hot whitespace loops stay one table load a byte. NDJSON
 * values take no CR at all; only their line tails check it.
 */
static const uint8_t is_ws[256] = {
    [' '] = 1,
    ['\t'] = 1,
    ['\n'] = 1,
    ['\r'] = 1,
};

/* 0 plain ASCII, 1 quote, 2 backslash, 3 control byte, 4 non-ASCII */
static const uint8_t str_class[256] = {
    [0 ... 31] = 3,
    ['"'] = 1,
    ['\\'] = 2,
    [128 ... 255] = 4,
};

/* hex digit value + 1; 0 for any other byte */
static const uint8_t hex_val1[256] = {
    ['0'] = 1,  ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,  ['5'] = 6,
    ['6'] = 7,  ['7'] = 8,  ['8'] = 9,  ['9'] = 10, ['a'] = 11, ['b'] = 12,
    ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16, ['A'] = 11, ['B'] = 12,
    ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16,
};

/* NDJSON after a record and on blank lines: a CR only before the LF */
static const uint8_t is_ws_tail[256] = {
    [' '] = 1,
    ['\t'] = 1,
    ['\r'] = 2,
};

static inline const char *
skip_ws(const uint8_t *tab, const char *p, const char *end)
{
	while (p < end) {
		uint8_t k = tab[(uint8_t)*p];

		if (k == 0 || (k == 2 && p + 1 < end && p[1] != '\n'))
			break;
		p++;
	}
	return p;
}

/*
 * Whitespace inside a value as a bit mask of the bytes below 64 (the
 * tables' values 1): parse_value tests a byte it already holds, with no
 * second load on its per-token path. WS_ALL is is_ws; WS_LINE, for
 * NDJSON, where a line end ends the record, is space and tab.
 */
#define WS_ALL (1ull << ' ' | 1ull << '\t' | 1ull << '\n' | 1ull << '\r')
#define WS_LINE (1ull << ' ' | 1ull << '\t')
#define IS_BLANK(mask, ch)                                                     \
	((uint8_t)(ch) <= ' ' && ((mask) >> (uint8_t)(ch)) & 1)
#define SKIP_BLANK(mask, p, end)                                               \
	while ((p) < (end) && IS_BLANK(mask, *(p)))                            \
	(p)++

#define SKIP_WS_IN(tab, p, end)                                                \
	while ((p) < (end) && (tab)[(uint8_t) * (p)])                          \
	(p)++
#define SKIP_WS(p, end) SKIP_WS_IN(is_ws, p, end)
/* NDJSON line tails: a CR only directly before LF */
#define SKIP_WS_TAIL(p, end) ((p) = skip_ws(is_ws_tail, (p), (end)))

#define CR_ERROR                                                               \
	"carriage return not directly before a line feed: readers that "       \
	"split lines on CR would read a line end inside the record"

/* The first CR in [p, end) neither before LF nor last, or NULL. */
static const char *
first_bare_cr(const char *p, const char *end)
{
	while ((p = memchr(p, '\r', (size_t)(end - p))) != NULL) {
		if (p + 1 < end && p[1] != '\n')
			return p;
		p++;
	}
	return NULL;
}

/* A refusal at a CR is about line ends, whatever the grammar expected. */
static const char *
cr_error(const char *err, const char *at, const char *end)
{
	return at != NULL && at < end && *at == '\r' ? CR_ERROR : err;
}

/* The 4 hex digits at p (the caller checked they are there), or -1. */
static inline int32_t
hex4(const char *p)
{
	int32_t a = hex_val1[(uint8_t)p[0]] - 1,
	        b = hex_val1[(uint8_t)p[1]] - 1;
	int32_t c = hex_val1[(uint8_t)p[2]] - 1,
	        d = hex_val1[(uint8_t)p[3]] - 1;

	if ((a | b | c | d) < 0)
		return -1;
	return a << 12 | b << 8 | c << 4 | d;
}

/*
 * UTF-8 validation as a shift DFA: a state is a bit offset into the row of
 * the next byte, which holds the next state at that offset. One load and
 * one shift a byte, no branch. Error is 0, so unlisted moves go there.
 * RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF.
 */
#define U_ERR 0
#define U_ACC 6 /* between characters */
#define U_1 12  /* one continuation byte to go */
#define U_2 18  /* two to go */
#define U_3 24  /* three to go */
#define U_E0 30 /* after E0: A0-BF (no overlong) */
#define U_ED 36 /* after ED: 80-9F (no surrogate) */
#define U_F0 42 /* after F0: 90-BF (no overlong) */
#define U_F4 48 /* after F4: 80-8F (<= U+10FFFF) */
#define U_T(from, to) ((uint64_t)(to) << (from))

static const uint64_t utf8_row[256] = {
    [0x00 ... 0x7F] = U_T(U_ACC, U_ACC),
    [0x80 ... 0x8F] = U_T(U_1, U_ACC) | U_T(U_2, U_1) | U_T(U_3, U_2) |
                      U_T(U_ED, U_1) | U_T(U_F4, U_2),
    [0x90 ... 0x9F] = U_T(U_1, U_ACC) | U_T(U_2, U_1) | U_T(U_3, U_2) |
                      U_T(U_ED, U_1) | U_T(U_F0, U_2),
    [0xA0 ... 0xBF] = U_T(U_1, U_ACC) | U_T(U_2, U_1) | U_T(U_3, U_2) |
                      U_T(U_E0, U_1) | U_T(U_F0, U_2),
    [0xC2 ... 0xDF] = U_T(U_ACC, U_1),
    [0xE0] = U_T(U_ACC, U_E0),
    [0xE1 ... 0xEC] = U_T(U_ACC, U_2),
    [0xED] = U_T(U_ACC, U_ED),
    [0xEE ... 0xEF] = U_T(U_ACC, U_2),
    [0xF0] = U_T(U_ACC, U_F0),
    [0xF1 ... 0xF3] = U_T(U_ACC, U_3),
    [0xF4] = U_T(U_ACC, U_F4),
};

static inline uint64_t
utf8_run(const char *p, size_t n, uint64_t st)
{
	for (size_t i = 0; i < n; i++)
		st = utf8_row[(uint8_t)p[i]] >> (st & 63);
	return st & 63;
}

/* Where utf8_run from state st went wrong: the offending byte. */
static const char *
utf8_error_at(const char *p, size_t n, uint64_t st)
{
	for (size_t i = 0; i < n; i++) {
		st = (utf8_row[(uint8_t)p[i]] >> (st & 63)) & 63;
		if (st == U_ERR)
			return p + i;
	}
	return p + n;
}

/*
 * U+2028, U+2029 and U+0085 (NEL) at p, raw: Python's str.splitlines and
 * other Unicode-aware line splitters end a line there, so the record would
 * reach the pipeline in pieces. JSON writers that escape them (\u2028)
 * produce bytes every reader agrees on.
 */
static inline bool
is_unicode_line_end(const char *p, const char *end)
{
	const uint8_t *u = (const uint8_t *)p;

	if (end - p < 2)
		return false;
	if (u[0] == 0xC2)
		return u[1] == 0x85;
	return u[0] == 0xE2 && end - p >= 3 && u[1] == 0x80 &&
	       (u[2] == 0xA8 || u[2] == 0xA9);
}

#define LINE_END_ERROR                                                         \
	"raw U+2028, U+2029 or U+0085 in a string: line splitters such as "    \
	"Python's splitlines break the record there; send it escaped, "        \
	"as \\u2028"

/*
 * Skip a string body; p is just past the opening quote. Returns the closing
 * quote with *flags set, or NULL with c->err and c->errp set. Blocks of 16
 * bytes with no quote, backslash or control byte are skipped at once; the
 * UTF-8 DFA runs only over blocks that hold a non-ASCII byte.
 */
static inline __attribute__((always_inline)) const char *
scan_string_ref(struct scan_ctx *c, const char *p, unsigned *flags)
{
	const char *end = c->end;
	unsigned f = 0;
	uint64_t st = U_ACC, st2;
	int32_t cp, lo;

	for (;;) {
#ifdef __SSE2__
		const __m128i quote = _mm_set1_epi8('"');
		const __m128i bslash = _mm_set1_epi8('\\');
		/* signed compare: bytes < 0x20 and bytes >= 0x80 at once */
		const __m128i space = _mm_set1_epi8(0x20);
		const __m128i lead2 = _mm_set1_epi8((char)0xC2);
		const __m128i lead3 = _mm_set1_epi8((char)0xE2);

		while (end - p >= 16) {
			__m128i v =
			    _mm_loadu_si128((const __m128i *)(const void *)p);
			unsigned hi = (unsigned)_mm_movemask_epi8(v);
			unsigned sp = (unsigned)_mm_movemask_epi8(_mm_or_si128(
			                  _mm_cmpeq_epi8(v, quote),
			                  _mm_cmpeq_epi8(v, bslash))) |
			              ((unsigned)_mm_movemask_epi8(
			                   _mm_cmplt_epi8(v, space)) &
			               ~hi);
			unsigned k;

			k = sp != 0 ? (unsigned)__builtin_ctz(sp) : 16;
			hi &= (1u << k) - 1;
			if ((hi | (unsigned)(st ^ U_ACC)) != 0) {
				/* ASCII keeps the DFA between characters, so it
				 * runs only from the first to the last
				 * non-ASCII byte of the block (or from 0
				 * mid-character) */
				unsigned from =
				    st != U_ACC ? 0
				                : (unsigned)__builtin_ctz(hi);
				unsigned to =
				    hi != 0 ? 32 - (unsigned)__builtin_clz(hi)
				            : 0;

				if (to > from) {
					st2 = utf8_run(p + from, to - from, st);
					if (st2 == U_ERR) {
						p = utf8_error_at(
						    p + from, to - from, st);
						goto bad_utf8;
					}
					st = st2;
				}
				/* lead bytes of the Unicode line ends */
				for (unsigned m =
				         !c->ndjson
				             ? 0
				             : hi & (unsigned)_mm_movemask_epi8(
				                        _mm_or_si128(
				                            _mm_cmpeq_epi8(
				                                v, lead2),
				                            _mm_cmpeq_epi8(
				                                v, lead3)));
				     m != 0; m &= m - 1)
					if (is_unicode_line_end(
					        p + __builtin_ctz(m), end)) {
						p += __builtin_ctz(m);
						goto line_end;
					}
				/* a character cut by an ASCII byte (at "to",
				 * perhaps the special one at k) */
				if (st != U_ACC && to < 16) {
					p += to;
					goto bad_utf8;
				}
			}
			p += k;
			if (sp != 0)
				goto special;
		}
#endif
		/* the last bytes of the buffer, one at a time */
		for (;;) {
			uint8_t b;

			if (p >= end) {
				c->err = st == U_ACC
				             ? "unterminated string"
				             : "invalid UTF-8 in string";
				goto fail;
			}
			b = (uint8_t)*p;
			if (st == U_ACC && b < 0x80 && str_class[b] != 0)
				break;
			if (st == U_ACC && (b == 0xC2 || b == 0xE2) &&
			    c->ndjson && is_unicode_line_end(p, end))
				goto line_end;
			st = (utf8_row[b] >> st) & 63;
			if (st == U_ERR)
				goto bad_utf8;
			p++;
		}
#ifdef __SSE2__
	special:
#endif
		/* most often the closing quote */
		if (*p == '"') {
			*flags = f;
			return p;
		}
		if (*p != '\\') {
			c->err = "control character in string";
			goto fail;
		}
		f |= SF_ESC;
		if (end - p < 2) {
			c->err = "unterminated string";
			goto fail;
		}
		switch (p[1]) {
		case '"':
		case '\\':
		case '/':
		case 'b':
		case 'f':
		case 'n':
		case 'r':
		case 't':
			p += 2;
			continue;
		case 'u':
			break;
		default:
			c->err = "invalid escape in string";
			goto fail;
		}
		if (end - p < 6 || (cp = hex4(p + 2)) < 0) {
			c->err = "invalid \\u escape in string";
			goto fail;
		}
		if (cp == 0)
			f |= SF_NUL;
		if (cp >= 0xDC00 && cp <= 0xDFFF) {
			c->err = "lone surrogate in \\u escape";
			goto fail;
		}
		if (cp >= 0xD800 && cp <= 0xDBFF) {
			if (end - p < 12 || p[6] != '\\' || p[7] != 'u' ||
			    (lo = hex4(p + 8)) < 0xDC00 || lo > 0xDFFF) {
				c->err = "lone surrogate in \\u escape";
				goto fail;
			}
			p += 6;
		}
		p += 6;
	}
bad_utf8:
	c->err = "invalid UTF-8 in string";
	goto fail;
line_end:
	c->err = LINE_END_ERROR;
fail:
	c->errp = p;
	return NULL;
}

/* The reference walk out of line: where stage 1 cannot vouch. */
static __attribute__((noinline)) const char *
scan_string_slow(struct scan_ctx *c, const char *p, unsigned *flags)
{
	return scan_string_ref(c, p, flags);
}

/*
 * Stage 1 over the 64 bytes at b (fewer at the buffer's end: s1_tail pads
 * them with spaces, which no string walk stops at). Where the block holds
 * invalid UTF-8, or in NDJSON a raw line end, stage 1 stops vouching:
 * clean_end moves before it (3 bytes before the block, for a character
 * the block boundary cut), and strings that reach it take the reference
 * walk, which finds the exact error. The full block, the common one, has
 * no pad on its stack: no stack-protector frame around every kernel call.
 */
static inline void
s1_classify(struct scan_ctx *c, const char *b, const char *src, size_t n)
{
	struct scan_kernel_block *s = &c->s1;
	const char *clean = c->clean_end;

	s->ndjson = c->ndjson;
#if defined(__x86_64__) || defined(__i386__)
	if (c->kernel == SCAN_KERNEL_AVX512)
		scan_avx512_block(s, src);
	else
		scan_avx2_block(s, src);
#endif
	if (n < 64)
		s->special &= (1ull << n) - 1;
	if (__builtin_expect(s->bad_utf8, 0))
		clean = b - c->begin >= 3 ? b - 3 : c->begin;
	if (__builtin_expect(s->line_end != 0, 0)) {
		size_t at = (size_t)__builtin_ctzll(s->line_end);
		const char *lead =
		    (size_t)(b - c->begin) + at >= 2 ? b + at - 2 : c->begin;

		if (lead < clean)
			clean = lead;
	}
	c->clean_end = clean;
	c->s1_base = b;
}

static __attribute__((noinline)) void
s1_tail(struct scan_ctx *c, const char *b, size_t n)
{
	char pad[64];

	memcpy(pad, b, n);
	memset(pad + n, ' ', 64 - n);
	s1_classify(c, b, pad, n);
}

static __attribute__((noinline)) void
s1_block(struct scan_ctx *c, const char *b)
{
	size_t n = (size_t)(c->end - b);

	if (n < 64)
		s1_tail(c, b, n);
	else
		s1_classify(c, b, b, 64);
}

/*
 * The first '"', '\\' or control byte at or after p, inside a string, by
 * stage 1; NULL where it does not vouch. Blocks follow each other; a
 * string further on (the bytes between were parsed as grammar, ASCII)
 * starts a fresh one, its body starting a character.
 */
static inline const char *
s1_next(struct scan_ctx *c, const char *p)
{
	for (;;) {
		uintptr_t off = (uintptr_t)p - (uintptr_t)c->s1_base, b;

		if (off < 64) {
			uint64_t m = c->s1.special >> off;

			if (m != 0)
				return p + __builtin_ctzll(m);
			b = (uintptr_t)c->s1_base + 64;
			if (b >= (uintptr_t)c->clean_end)
				return NULL;
			p = (const char *)b;
		} else if (off < 128) {
			b = (uintptr_t)c->s1_base + 64;
		} else {
			b = (uintptr_t)p;
			memset(c->s1.prev, 0, sizeof(c->s1.prev));
			c->s1.incomplete = false;
		}
		if (b >= (uintptr_t)c->clean_end)
			return NULL;
		s1_block(c, (const char *)b);
	}
}

/*
 * scan_string with stage 1: jump from special byte to special byte, the
 * UTF-8 already proven. Anything but a closing quote or a valid escape,
 * and any string stage 1 cannot vouch for, is walked again from its start
 * by the reference, so every verdict and error is the reference's. The
 * escape checks repeat the reference's: one helper for both costs the
 * reference's loop 1 instruction a byte (callgrind), and walking a string
 * with escapes twice costs the kernel more than it saves.
 */
static __attribute__((noinline)) const char *
scan_string_s1(struct scan_ctx *c, const char *s, unsigned *flags)
{
	const char *p = s, *end = c->end;
	unsigned f = 0;
	int32_t cp, lo;

	for (;;) {
		p = s1_next(c, p);
		if (p == NULL || p >= c->clean_end)
			break;
		if (*p == '"') {
			*flags = f;
			return p;
		}
		if (*p != '\\' || end - p < 2)
			break;
		f |= SF_ESC;
		switch (p[1]) {
		case '"':
		case '\\':
		case '/':
		case 'b':
		case 'f':
		case 'n':
		case 'r':
		case 't':
			p += 2;
			continue;
		case 'u':
			break;
		default:
			goto slow;
		}
		if (end - p < 6 || (cp = hex4(p + 2)) < 0)
			break;
		if (cp == 0)
			f |= SF_NUL;
		if (cp >= 0xDC00 && cp <= 0xDFFF)
			break;
		if (cp >= 0xD800 && cp <= 0xDBFF) {
			if (end - p < 12 || p[6] != '\\' || p[7] != 'u' ||
			    (lo = hex4(p + 8)) < 0xDC00 || lo > 0xDFFF)
				break;
			p += 6;
		}
		p += 6;
	}
slow:
	return scan_string_slow(c, s, flags);
}

/* s1: c->kernel is not the scalar one (parse_value reads it once: its
 * stores through c->rec would make the compiler reload it every string) */
static inline __attribute__((always_inline)) const char *
scan_string(struct scan_ctx *c, const char *p, unsigned *flags, bool s1)
{
	if (s1) {
		/* most strings: no escape, closed in the current block */
		uintptr_t off = (uintptr_t)p - (uintptr_t)c->s1_base;
		uint64_t m;
		const char *q;

		if (off < 64 && (m = c->s1.special >> off) != 0 &&
		    *(q = p + __builtin_ctzll(m)) == '"' && q < c->clean_end) {
			*flags = 0;
			return q;
		}
		return scan_string_s1(c, p, flags);
	}
	return scan_string_ref(c, p, flags);
}

/* The first byte at or after p that is not an ASCII digit. */
static inline const char *
skip_digits(const char *p, const char *end)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	/* 8 at a time: a digit has high nibble 3 and low nibble + 6 < 16 */
	while (end - p >= 8) {
		uint64_t x, nd;

		memcpy(&x, p, 8);
		nd = ((x & 0xF0F0F0F0F0F0F0F0ull) ^ 0x3030303030303030ull) |
		     (((x + 0x0606060606060606ull) & 0xF0F0F0F0F0F0F0F0ull) ^
		      0x3030303030303030ull);
		if (nd != 0)
			return p + (__builtin_ctzll(nd) >> 3);
		p += 8;
	}
#endif
	while (p < end && (unsigned)(*p - '0') < 10)
		p++;
	return p;
}

/*
 * Decode a string body that scan_string accepted into out[0,cap). Returns
 * 0 with *outlen set, or -1 when it does not fit.
 */
static int
decode_string(const char *s, size_t n, char *out, size_t cap, size_t *outlen)
{
	const char *end = s + n;
	size_t o = 0;
	uint32_t cp;

	while (s < end) {
		if (*s != '\\') {
			if (o == cap)
				return -1;
			out[o++] = *s++;
			continue;
		}
		switch (s[1]) {
		case 'b':
			cp = '\b';
			break;
		case 'f':
			cp = '\f';
			break;
		case 'n':
			cp = '\n';
			break;
		case 'r':
			cp = '\r';
			break;
		case 't':
			cp = '\t';
			break;
		case 'u':
			cp = (uint32_t)hex4(s + 2);
			break;
		default:
			cp = (uint8_t)s[1];
			break;
		}
		s += s[1] == 'u' ? 6 : 2;
		if (cp >= 0xD800 && cp <= 0xDBFF) {
			cp = 0x10000 + ((cp - 0xD800) << 10) +
			     ((uint32_t)hex4(s + 2) - 0xDC00);
			s += 6;
		}
		if (cp < 0x80) {
			if (cap - o < 1)
				return -1;
			out[o++] = (char)cp;
		} else if (cp < 0x800) {
			if (cap - o < 2)
				return -1;
			out[o++] = (char)(0xC0 | cp >> 6);
			out[o++] = (char)(0x80 | (cp & 0x3F));
		} else if (cp < 0x10000) {
			if (cap - o < 3)
				return -1;
			out[o++] = (char)(0xE0 | cp >> 12);
			out[o++] = (char)(0x80 | ((cp >> 6) & 0x3F));
			out[o++] = (char)(0x80 | (cp & 0x3F));
		} else {
			if (cap - o < 4)
				return -1;
			out[o++] = (char)(0xF0 | cp >> 18);
			out[o++] = (char)(0x80 | ((cp >> 12) & 0x3F));
			out[o++] = (char)(0x80 | ((cp >> 6) & 0x3F));
			out[o++] = (char)(0x80 | (cp & 0x3F));
		}
	}
	*outlen = o;
	return 0;
}

/*
 * The next character of a member name folded for a case-blind compare:
 * ASCII letters lowered, and the two non-ASCII letters that Unicode simple
 * case folding maps to ASCII (U+017F long s, U+212A Kelvin sign), since
 * some decoders (Go's encoding/json) fold them too.
 */
static inline int
fold_next(const char *s, size_t n, size_t *i)
{
	const uint8_t *u = (const uint8_t *)s + *i;
	size_t left = n - *i;

	if (left >= 2 && u[0] == 0xC5 && u[1] == 0xBF) {
		*i += 2;
		return 's';
	}
	if (left >= 3 && u[0] == 0xE2 && u[1] == 0x84 && u[2] == 0xAA) {
		*i += 3;
		return 'k';
	}
	*i += 1;
	return u[0] >= 'A' && u[0] <= 'Z' ? u[0] + 32 : u[0];
}

static bool
fold_equal(const char *a, size_t an, const char *b, size_t bn)
{
	size_t i = 0, j = 0;

	while (i < an && j < bn)
		if (fold_next(a, an, &i) != fold_next(b, bn, &j))
			return false;
	return i == an && j == bn;
}

static bool
has_non_ascii(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((uint8_t)s[i] >= 0x80)
			return true;
	return false;
}

/*
 * Compare a member name (raw string body) with a pointer token: 0 another
 * name, 1 the same name, 2 the same name to a case-blind or normalising
 * decoder.
 */
static int
key_match(const struct jsonptr_token *t, const char *k, size_t klen,
          unsigned flags)
{
	/* folding shrinks a name at most 3 to 1 */
	char tmp[3 * CG_MAX_PTR_TOKEN_LEN];

	if (flags & SF_ESC) {
		if (decode_string(k, klen, tmp, sizeof(tmp), &klen) < 0)
			return 0;
		k = tmp;
	}
	if (klen == t->len && memcmp(k, t->name, klen) == 0)
		return 1;
	/* two ASCII first bytes that differ beyond case: no fold can match */
	if (klen > 0 && t->len > 0 &&
	    ((uint8_t)k[0] | (uint8_t)t->name[0]) < 0x80 &&
	    ((uint8_t)k[0] | 0x20) != ((uint8_t)t->name[0] | 0x20))
		return 0;
	if (fold_equal(k, klen, t->name, t->len))
		return 2;
	if ((has_non_ascii(k, klen) || has_non_ascii(t->name, t->len)) &&
	    keyfold_equal(k, klen, t->name, t->len))
		return 2;
	return 0;
}

/*
 * A member name in an object at depth d that some locators reach (mask):
 * the locators that go on into the member's value, or -1 when the name is
 * a second occurrence or a case variant of a locator's token.
 */
static int
match_member(struct scan_ctx *c, unsigned mask, unsigned d, const char *k,
             size_t klen, unsigned flags, unsigned *seen, unsigned *next)
{
	unsigned out = 0;

	for (unsigned m = mask; m != 0; m &= m - 1) {
		unsigned i = (unsigned)__builtin_ctz(m);
		const struct jsonptr_token *t = &c->loc[i].tok[d];
		int r;

		/* key_match's own first test, without the call: most names
		 * differ from the token in their first letter */
		if (!(flags & SF_ESC) && klen > 0 && t->len > 0 &&
		    ((uint8_t)k[0] | (uint8_t)t->name[0]) < 0x80 &&
		    ((uint8_t)k[0] | 0x20) != ((uint8_t)t->name[0] | 0x20))
			continue;
		r = key_match(t, k, klen, flags);
		if (r == 0)
			continue;
		if (r == 2) {
			c->err = "ambiguous subject: member name differs only "
			         "in case or Unicode form";
			return -1;
		}
		if (*seen & (1u << i)) {
			c->err = "ambiguous subject: duplicate member";
			return -1;
		}
		*seen |= 1u << i;
		out |= 1u << i;
	}
	*next = out;
	return 0;
}

/* The locators of an array at depth d that go on into element idx. */
static inline unsigned
elem_mask(const struct scan_ctx *c, unsigned mask, unsigned d, uint32_t idx)
{
	unsigned out = 0;

	for (unsigned m = mask; m != 0; m &= m - 1) {
		unsigned i = (unsigned)__builtin_ctz(m);
		const struct jsonptr_token *t = &c->loc[i].tok[d];

		if (t->wildcard || (t->is_index && t->index == idx))
			out |= 1u << i;
	}
	return out;
}

/* Locators in mask that end at depth d (the value is their subject). */
static inline unsigned
terminal_mask(const struct scan_ctx *c, unsigned mask, unsigned d)
{
	unsigned out = 0;

	for (unsigned m = mask; m != 0; m &= m - 1) {
		unsigned i = (unsigned)__builtin_ctz(m);

		if (c->loc[i].ntokens == d)
			out |= 1u << i;
	}
	return out;
}

/* A container at depth d that locators reach: it must be what they need. */
static int
check_container(struct scan_ctx *c, unsigned mask, unsigned d, bool obj)
{
	unsigned term = terminal_mask(c, mask, d);

	if (term != 0) {
		c->err = "subject id is not a string or an integer";
		return -1;
	}
	for (unsigned m = mask; m != 0; m &= m - 1) {
		const struct jsonptr_token *t =
		    &c->loc[__builtin_ctz(m)].tok[d];

		if (obj && t->wildcard) {
			c->err = "ambiguous subject: locator expects an array";
			return -1;
		}
		if (!obj && !t->wildcard && !t->is_index) {
			c->err = "ambiguous subject: locator expects an object";
			return -1;
		}
	}
	return 0;
}

/* A scalar at depth d that locators reach: it must be their subject. */
static int
check_scalar(struct scan_ctx *c, unsigned mask, unsigned d)
{
	if (terminal_mask(c, mask, d) != mask) {
		c->err =
		    "ambiguous subject: locator expects an object or array";
		return -1;
	}
	return 0;
}

static int
add_subject(struct scan_ctx *c, const char *s, size_t n, unsigned flags)
{
	struct scan_record *r = c->rec;

	if (r->nsubjects >= CG_MAX_SUBJECTS) {
		c->err = "too many subjects in one record";
		return -1;
	}
	if (flags & SF_ESC) {
		char *out = r->scratch + r->nsubjects * CG_MAX_SUBJECT_LEN;

		if (decode_string(s, n, out, CG_MAX_SUBJECT_LEN, &n) < 0) {
			c->err = "subject id is too long";
			return -1;
		}
		s = out;
	}
	if (n == 0) {
		c->err = "subject id is empty";
		return -1;
	}
	if (n > CG_MAX_SUBJECT_LEN) {
		c->err = "subject id is too long";
		return -1;
	}
	if (flags & SF_NUL) {
		/* C consumers would read a shorter id */
		c->err = "subject id contains a NUL character";
		return -1;
	}
	r->subjects[r->nsubjects++] = (struct cg_slice){s, n};
	return 0;
}

/*
 * True when p is the first non-blank byte of a line. A line reader (one
 * that splits an object or array body on LF) would read a container that
 * starts a line as a value of its own: if it closes on that line, as a
 * record of whoever it names, a person consentgate never decided.
 */
static inline bool
starts_line(const char *begin, const char *p)
{
	while (p > begin && (p[-1] == ' ' || p[-1] == '\t' || p[-1] == '\r'))
		p--;
	return p > begin && p[-1] == '\n';
}

#define NESTED_LINE_ERROR                                                      \
	"a nested object or array is alone on a line: line readers would "     \
	"read it as a record of its own; open it on its member's line, or "    \
	"spread it over lines"

/*
 * A container at depth d opens at p, the first byte of a line: a line
 * reader reads that line as a value of its own if the container also
 * closes on it. Note the line's end; the close checks it was passed.
 * Returns -1 beyond the tracked depth (refused outright).
 */
static inline int
guard_open(const struct scan_ctx *c, const char *p, unsigned d,
           unsigned *guarded, const char **guard_lf)
{
	const char *lf;

	/* {} and [] name nobody, wherever they stand */
	for (lf = p + 1; lf < c->end && (*lf == ' ' || *lf == '\t'); lf++)
		;
	if (lf < c->end && *lf == (*p == '{' ? '}' : ']'))
		return 0;
	if (d >= SCAN_TRACK)
		return -1;
	lf = memchr(p, '\n', (size_t)(c->end - p));
	guard_lf[d] = lf != NULL ? lf : c->end;
	*guarded |= 1u << d;
	return 0;
}

/*
 * Parse one JSON value at *pp (no whitespace before it). On success *pp is
 * just past it. Locators in root_mask resolve when the value is an object;
 * subjects go to c->rec. Returns 0, or -1 with c->err and c->errp set.
 */
static int
parse_value(struct scan_ctx *c, const char **pp, unsigned root_mask)
{
	const char *p = *pp, *end = c->end, *s, *q;
	const char *err = NULL;
	unsigned depth = 0, vmask, cmask = 0, flags, litlen;
	unsigned max_depth = c->max_depth;
	const uint64_t ws = c->ws;
	uint8_t is_obj[CG_MAX_SCAN_DEPTH];
	unsigned lmask[SCAN_TRACK], lseen[SCAN_TRACK];
	uint32_t lidx[SCAN_TRACK];
	const char *guard_lf[SCAN_TRACK]; /* the LF a guarded one must pass */
	unsigned guarded = 0;             /* bit per depth: started a line */
	const unsigned guard_from = c->guard_from;
	const bool s1 = c->kernel != SCAN_KERNEL_SCALAR;
	const uint64_t root_first = c->root_first;
	bool is_int, obj;

	vmask = p < end && *p == '{' ? root_mask : 0;
value:
	if (p >= end) {
		err = "unexpected end of input";
		goto fail;
	}
	if (*p == '"')
		goto string; /* the most common value, before the jump table */
	switch (*p) {
	case '{':
	case '[':
		obj = *p == '{';
		if (vmask != 0 && check_container(c, vmask, depth, obj) < 0)
			goto fail_ctx_p;
		if (__builtin_expect(depth >= guard_from, 0) &&
		    starts_line(c->begin, p) &&
		    guard_open(c, p, depth, &guarded, guard_lf) < 0) {
			err = NESTED_LINE_ERROR;
			goto fail;
		}
		if (depth >= max_depth) {
			err = "nesting deeper than the limit";
			goto fail;
		}
		is_obj[depth] = obj;
		if (depth < SCAN_TRACK) {
			lmask[depth] = vmask;
			lseen[depth] = 0;
			lidx[depth] = 0;
		}
		cmask = vmask;
		depth++;
		p++;
		SKIP_BLANK(ws, p, end);
		if (p < end && *p == (obj ? '}' : ']')) {
			p++;
			goto close;
		}
		if (obj)
			goto key;
		vmask = cmask != 0 ? elem_mask(c, cmask, depth - 1, 0) : 0;
		goto value;
	case '"':
	string:
		s = p + 1;
		q = scan_string(c, s, &flags, s1);
		if (q == NULL)
			goto fail_ctx;
		if (vmask != 0) {
			if (check_scalar(c, vmask, depth) < 0 ||
			    add_subject(c, s, (size_t)(q - s), flags) < 0) {
				c->errp = p;
				goto fail_ctx;
			}
			if (!c->ids_as_text) {
				const struct cg_slice *id =
				    &c->rec->subjects[c->rec->nsubjects - 1];

				if ((c->err = subject_id_string_unsafe(
				         id->ptr, id->len)) != NULL) {
					c->errp = p;
					goto fail_ctx;
				}
			}
			c->found |= vmask;
		}
		p = q + 1;
		goto after_value;
	case '-':
	case '0':
	case '1':
	case '2':
	case '3':
	case '4':
	case '5':
	case '6':
	case '7':
	case '8':
	case '9':
		s = p;
		is_int = true;
		if (*p == '-')
			p++;
		if (p < end && *p == '0') {
			p++;
		} else if (p < end && *p >= '1' && *p <= '9') {
			p = skip_digits(p + 1, end);
		} else {
			err = "invalid number";
			goto fail;
		}
		if (p < end && *p == '.') {
			p++;
			is_int = false;
			if (p >= end || (unsigned)(*p - '0') >= 10) {
				err = "invalid number";
				goto fail;
			}
			p = skip_digits(p + 1, end);
		}
		if (p < end && (*p == 'e' || *p == 'E')) {
			p++;
			is_int = false;
			if (p < end && (*p == '+' || *p == '-'))
				p++;
			if (p >= end || (unsigned)(*p - '0') >= 10) {
				err = "invalid number";
				goto fail;
			}
			while (p < end && (unsigned)(*p - '0') < 10)
				p++;
		}
		if (vmask != 0) {
			if (check_scalar(c, vmask, depth) < 0) {
				c->errp = s;
				goto fail_ctx;
			}
			if (!is_int) {
				c->err = "subject id is not an integer";
				c->errp = s;
				goto fail_ctx;
			}
			if ((c->err = subject_id_number_unsafe(s, p)) != NULL) {
				c->errp = s;
				goto fail_ctx;
			}
			if (add_subject(c, s, (size_t)(p - s), 0) < 0) {
				c->errp = s;
				goto fail_ctx;
			}
			c->found |= vmask;
		}
		goto after_value;
	case 't':
		if (end - p < 4 || memcmp(p, "true", 4) != 0) {
			err = "invalid literal";
			goto fail;
		}
		litlen = 4;
		goto literal;
	case 'f':
		if (end - p < 5 || memcmp(p, "false", 5) != 0) {
			err = "invalid literal";
			goto fail;
		}
		litlen = 5;
		goto literal;
	case 'n':
		if (end - p < 4 || memcmp(p, "null", 4) != 0) {
			err = "invalid literal";
			goto fail;
		}
		litlen = 4;
		goto literal;
	default:
		err = "unexpected character";
		goto fail;
	}
literal:
	if (vmask != 0) {
		if (check_scalar(c, vmask, depth) == 0)
			c->err = "subject id is not a string or an integer";
		goto fail_ctx_p;
	}
	p += litlen;
	goto after_value;
close:
	depth--;
	if (__builtin_expect(guarded != 0, 0) && depth < SCAN_TRACK &&
	    (guarded & (1u << depth))) {
		/* it started a line: it must not end on it */
		guarded &= ~(1u << depth);
		if (p <= guard_lf[depth]) {
			err = NESTED_LINE_ERROR;
			goto fail;
		}
	}
	cmask = depth > 0 && depth - 1 < SCAN_TRACK ? lmask[depth - 1] : 0;
after_value:
	if (depth == 0)
		goto done;
	if (p >= end || IS_BLANK(ws, *p)) {
		SKIP_BLANK(ws, p, end);
		if (p >= end) {
			err = "unexpected end of input";
			goto fail;
		}
	}
	if (is_obj[depth - 1]) {
		if (*p == ',') {
			p++;
			if (p < end && IS_BLANK(ws, *p))
				SKIP_BLANK(ws, p, end);
			goto key;
		}
		if (*p == '}') {
			p++;
			goto close;
		}
		err = "expected ',' or '}' in object";
		goto fail;
	}
	if (*p == ',') {
		p++;
		SKIP_BLANK(ws, p, end);
		vmask = cmask != 0
		            ? elem_mask(c, cmask, depth - 1, ++lidx[depth - 1])
		            : 0;
		goto value;
	}
	if (*p == ']') {
		p++;
		goto close;
	}
	err = "expected ',' or ']' in array";
	goto fail;
key:
	if (p >= end || *p != '"') {
		err = p >= end ? "unexpected end of input"
		               : "expected a member name";
		goto fail;
	}
	s = p + 1;
	q = scan_string(c, s, &flags, s1);
	if (q == NULL)
		goto fail_ctx;
	if (flags & SF_NUL) {
		/* C decoders would read a shorter name: a decoy */
		err = "member name contains a NUL character";
		goto fail;
	}
	vmask = 0;
	/* the record's own members: most names' first letter is no
	   locator's (root_first), and match_member would say so one by one */
	if (cmask != 0 &&
	    (depth > 1 || (flags & SF_ESC) || q == s || (uint8_t)*s >= 0x80 ||
	     ((root_first >> (((uint8_t)*s | 0x20) & 63)) & 1)) &&
	    match_member(c, cmask, depth - 1, s, (size_t)(q - s), flags,
	                 &lseen[depth - 1], &vmask) < 0)
		goto fail_ctx_p;
	p = q + 1;
	if (p < end && *p == ':') {
		p++; /* compact JSON: no whitespace around ':' */
	} else {
		SKIP_BLANK(ws, p, end);
		if (p >= end || *p != ':') {
			err = p >= end ? "unexpected end of input"
			               : "expected ':' after member name";
			goto fail;
		}
		p++;
	}
	SKIP_BLANK(ws, p, end);
	goto value;
done:
	*pp = p;
	return 0;
fail:
	c->err = err;
fail_ctx_p:
	c->errp = p;
fail_ctx:
	return -1;
}

static void
ctx_init(struct scan_ctx *c, const struct scan_spec *spec,
         struct scan_record *rec, const char *begin, const char *end)
{
	c->loc = NULL;
	c->nloc = 0;
	c->all_mask = 0;
	c->max_depth = CG_DEFAULT_MAX_DEPTH;
	if (spec != NULL) {
		c->loc = spec->locators;
		c->nloc = spec->nlocators < SCAN_MAX_LOC ? spec->nlocators
		                                         : SCAN_MAX_LOC;
		if (spec->max_depth != 0)
			c->max_depth = spec->max_depth;
	}
	if (c->max_depth > CG_MAX_SCAN_DEPTH)
		c->max_depth = CG_MAX_SCAN_DEPTH;
	c->required = 0;
	c->root_first = 0;
	c->ids_as_text = spec != NULL && spec->ids_as_text;
	for (unsigned i = 0; i < c->nloc; i++) {
		const struct jsonptr_token *first;
		bool wild = false;

		if (c->loc[i].ntokens == 0)
			continue;
		c->all_mask |= 1u << i;
		first = &c->loc[i].tok[0];
		if (first->len == 0 || (uint8_t)first->name[0] >= 0x80)
			c->root_first = ~0ull;
		else
			c->root_first |=
			    1ull << (((uint8_t)first->name[0] | 0x20) & 63);
		for (unsigned t = 0; t < c->loc[i].ntokens; t++)
			wild |= c->loc[i].tok[t].wildcard;
		/* a locator without '*' names someone who must be there */
		if (!wild && !(spec->optional & (1u << i)))
			c->required |= 1u << i;
	}
	c->ws = WS_ALL;
	c->ndjson = false;
	c->guard_from = 1; /* a record itself may start a line */
	c->rec = rec;
	c->begin = begin;
	c->end = end;
	c->err = NULL;
	c->errp = NULL;
	c->kernel = scan_kernel_active;
	c->s1_base = NULL;
	c->clean_end = end;
}

/*
 * One value with optional whitespace around it in [p, end). Returns 0 with
 * rec->start/end as offsets from base, or -1 with c->err/c->errp.
 */
static int
scan_one(struct scan_ctx *c, const char *base, const char *p,
         struct scan_record *rec, const uint8_t *outer)
{
	const char *start;

	p = skip_ws(outer, p, c->end);
	start = p;
	rec->nsubjects = 0;
	c->found = 0;
	if (parse_value(c, &p, c->all_mask) < 0)
		return -1;
	rec->missing = c->required & ~c->found;
	rec->start = (size_t)(start - base);
	rec->end = (size_t)(p - base);
	p = skip_ws(outer, p, c->end);
	if (p != c->end) {
		c->err = "unexpected data after the JSON value";
		c->errp = p;
		return -1;
	}
	return 0;
}

int
scan_record(const struct scan_spec *spec, const char *buf, size_t len,
            struct scan_record *rec, const char **err)
{
	struct scan_ctx c;
	int rc;

	ctx_init(&c, spec, rec, buf, buf + len);
	rc = scan_one(&c, buf, buf, rec, is_ws);
	if (rc < 0)
		*err = cr_error(c.err, c.errp, c.end);
	else if (first_bare_cr(buf, buf + len) != NULL)
		rc = -1, *err = CR_ERROR;
	return rc;
}

int
scan_line(const struct scan_spec *spec, const char *buf, size_t len,
          struct scan_record *rec, const char **err)
{
	struct scan_ctx c;
	int rc;

	ctx_init(&c, spec, rec, buf, buf + len);
	c.ws = WS_LINE;
	c.ndjson = true;
	c.guard_from = UINT_MAX; /* no line end inside an NDJSON value */
	rc = scan_one(&c, buf, buf, rec, is_ws_tail);
	if (rc < 0)
		*err = c.errp < c.end && *c.errp == '\n'
		           ? "line feed inside an NDJSON record"
		           : cr_error(c.err, c.errp, c.end);
	return rc;
}

void
scan_iter_init(struct scan_iter *it, const struct scan_spec *spec,
               enum scan_format format, const struct jsonptr *array_at,
               const char *buf, size_t len)
{
	memset(it, 0, sizeof(*it));
	it->spec = spec;
	it->format = format;
	it->array_at = array_at;
	it->buf = buf;
	it->len = len;
	it->state = format == SCAN_FORMAT_NDJSON ? IT_LINES : IT_START;
	if (format != SCAN_FORMAT_NDJSON)
		it->bare_cr = first_bare_cr(buf, buf + len);
}

static int
iter_fail(struct scan_iter *it, const char *err, const char *at)
{
	it->error = cr_error(err, at, it->buf + it->len);
	it->offset = (size_t)(at - it->buf);
	it->state = IT_FAILED;
	return -1;
}

/* Records path tokens (ARRAY_AT), or none (ARRAY: the root is the array). */
static unsigned
iter_depth(const struct scan_iter *it)
{
	if (it->format != SCAN_FORMAT_ARRAY_AT || it->array_at == NULL)
		return 0;
	return it->array_at->ntokens;
}

/*
 * Walk from the document root to the records array of ARRAY_AT (or to the
 * root array of ARRAY), validating every member skipped on the way. A
 * member on the path present twice, or in another letter case, is refused.
 */
static int
iter_enter(struct scan_iter *it, struct scan_ctx *c)
{
	const char *p = it->buf, *end = c->end, *s, *q;
	unsigned n = iter_depth(it), flags;
	int m;

	if (it->format == SCAN_FORMAT_ARRAY_AT && it->array_at == NULL)
		return iter_fail(it, "records array pointer missing", p);
	SKIP_WS(p, end);
	for (unsigned l = 0; l < n; l++) {
		const struct jsonptr_token *t = &it->array_at->tok[l];

		if (t->wildcard)
			return iter_fail(
			    it, "records array pointer has a wildcard", p);
		if (p >= end || *p != '{')
			return iter_fail(it,
			                 l == 0 ? "body is not a JSON object"
			                        : "records array not found",
			                 p);
		if (l > 0 && starts_line(it->buf, p))
			return iter_fail(it, NESTED_LINE_ERROR, p);
		p++;
		SKIP_WS(p, end);
		if (p < end && *p == '}')
			return iter_fail(it, "records array not found", p);
		for (;;) {
			if (p >= end || *p != '"')
				return iter_fail(it, "expected a member name",
				                 p);
			s = p + 1;
			q = scan_string(c, s, &flags,
			                c->kernel != SCAN_KERNEL_SCALAR);
			if (q == NULL)
				return iter_fail(it, c->err, c->errp);
			if (flags & SF_NUL)
				return iter_fail(
				    it, "member name contains a NUL character",
				    p);
			m = key_match(t, s, (size_t)(q - s), flags);
			if (m == 2)
				return iter_fail(
				    it,
				    "ambiguous records array: member name "
				    "differs only in case",
				    p);
			p = q + 1;
			SKIP_WS(p, end);
			if (p >= end || *p != ':')
				return iter_fail(
				    it, "expected ':' after member name", p);
			p++;
			SKIP_WS(p, end);
			if (m == 1)
				break;
			c->guard_from =
			    0; /* not a record: no line of its own */
			if (parse_value(c, &p, 0) < 0)
				return iter_fail(it, c->err, c->errp);
			c->guard_from = 1;
			SKIP_WS(p, end);
			if (p < end && *p == ',') {
				p++;
				SKIP_WS(p, end);
				continue;
			}
			return iter_fail(it,
			                 p < end && *p == '}'
			                     ? "records array not found"
			                     : "expected ',' or '}' in object",
			                 p);
		}
	}
	if (p >= end || *p != '[')
		return iter_fail(it,
		                 n == 0 ? "body is not a JSON array"
		                        : "records member is not an array",
		                 p);
	if (n > 0 && starts_line(it->buf, p))
		return iter_fail(it, NESTED_LINE_ERROR, p);
	it->array_open = (size_t)(p - it->buf);
	it->pos = it->array_open + 1;
	it->state = IT_FIRST;
	return 0;
}

/*
 * After the records array's ']': validate the rest of every object on the
 * path up to the root, and nothing but whitespace after it.
 */
static int
iter_leave(struct scan_iter *it, struct scan_ctx *c)
{
	const char *p = it->buf + it->array_close + 1, *end = c->end, *s, *q;
	unsigned n = iter_depth(it), flags;

	for (unsigned l = n; l-- > 0;) {
		const struct jsonptr_token *t = &it->array_at->tok[l];

		for (;;) {
			SKIP_WS(p, end);
			if (p < end && *p == '}') {
				p++;
				break;
			}
			if (p >= end || *p != ',')
				return iter_fail(
				    it,
				    p >= end ? "unexpected end of input"
				             : "expected ',' or '}' in object",
				    p);
			p++;
			SKIP_WS(p, end);
			if (p >= end || *p != '"')
				return iter_fail(it, "expected a member name",
				                 p);
			s = p + 1;
			q = scan_string(c, s, &flags,
			                c->kernel != SCAN_KERNEL_SCALAR);
			if (q == NULL)
				return iter_fail(it, c->err, c->errp);
			if (flags & SF_NUL)
				return iter_fail(
				    it, "member name contains a NUL character",
				    p);
			if (key_match(t, s, (size_t)(q - s), flags) != 0)
				return iter_fail(
				    it,
				    "ambiguous records array: duplicate member",
				    p);
			p = q + 1;
			SKIP_WS(p, end);
			if (p >= end || *p != ':')
				return iter_fail(
				    it, "expected ':' after member name", p);
			p++;
			SKIP_WS(p, end);
			c->guard_from =
			    0; /* not a record: no line of its own */
			if (parse_value(c, &p, 0) < 0)
				return iter_fail(it, c->err, c->errp);
			c->guard_from = 1;
		}
	}
	SKIP_WS(p, end);
	if (p != end)
		return iter_fail(it, "unexpected data after the JSON value", p);
	it->pos = it->len;
	it->state = IT_DONE;
	return 0;
}

/*
 * NDJSON without a separate pass for line ends: the value is parsed with
 * neither LF nor CR counted as whitespace, so it must end on its own line;
 * after it only spaces, tabs and one CR may come before LF.
 */
static int
iter_lines(struct scan_iter *it, struct scan_ctx *c, struct scan_record *rec)
{
	const char *buf = it->buf, *end = buf + it->len, *p, *start;

	c->ws = WS_LINE;
	c->ndjson = true;
	c->guard_from = UINT_MAX; /* no line end inside an NDJSON value */
	while (it->pos < it->len) {
		p = buf + it->pos;
		/* blank lines (spaces, tabs, CRLF) carry no record */
		SKIP_WS_TAIL(p, end);
		if (p == end)
			break;
		if (*p == '\n') {
			it->pos = (size_t)(p + 1 - buf);
			continue;
		}
		start = p;
		rec->nsubjects = 0;
		c->found = 0;
		if (parse_value(c, &p, c->all_mask) < 0) {
			if (c->errp < end && *c->errp == '\n')
				c->err = "unexpected end of line";
			return iter_fail(it, c->err, c->errp);
		}
		rec->missing = c->required & ~c->found;
		rec->start = (size_t)(start - buf);
		rec->end = (size_t)(p - buf);
		SKIP_WS_TAIL(p, end);
		if (p < end && *p != '\n')
			return iter_fail(
			    it, "unexpected data after the JSON value", p);
		it->pos = p < end ? (size_t)(p + 1 - buf) : it->len;
		it->index++;
		return 1;
	}
	it->pos = it->len;
	it->state = IT_DONE;
	return 0;
}

int
scan_iter_next(struct scan_iter *it, struct scan_record *rec)
{
	struct scan_ctx c;
	const char *p, *start;

	ctx_init(&c, it->spec, rec, it->buf, it->buf + it->len);
	switch (it->state) {
	case IT_DONE:
		return 0;
	case IT_FAILED:
		return -1;
	case IT_LINES:
		return iter_lines(it, &c, rec);
	case IT_START:
		if (it->format == SCAN_FORMAT_OBJECT) {
			p = it->buf;
			SKIP_WS(p, c.end);
			if (p >= c.end || *p != '{')
				return iter_fail(
				    it, "body is not a JSON object", p);
			if (scan_one(&c, it->buf, p, rec, is_ws) < 0)
				return iter_fail(it, c.err, c.errp);
			if (it->bare_cr != NULL)
				return iter_fail(it, CR_ERROR, it->bare_cr);
			it->pos = it->len;
			it->state = IT_DONE;
			it->index++;
			return 1;
		}
		if (it->format != SCAN_FORMAT_ARRAY &&
		    it->format != SCAN_FORMAT_ARRAY_AT)
			return iter_fail(it, "unknown body format", it->buf);
		if (iter_enter(it, &c) < 0)
			return -1;
		break;
	default:
		break;
	}
	p = it->buf + it->pos;
	SKIP_WS(p, c.end);
	if (it->state == IT_NEXT) {
		if (p < c.end && *p == ',') {
			p++;
			SKIP_WS(p, c.end);
		} else if (p >= c.end || *p != ']') {
			return iter_fail(it,
			                 p >= c.end
			                     ? "unexpected end of input"
			                     : "expected ',' or ']' in array",
			                 p);
		} else {
			goto close;
		}
	} else if (p < c.end && *p == ']') {
		goto close;
	}
	start = p;
	rec->nsubjects = 0;
	c.found = 0;
	if (parse_value(&c, &p, c.all_mask) < 0)
		return iter_fail(it, c.err, c.errp);
	rec->missing = c.required & ~c.found;
	if (it->bare_cr != NULL && it->bare_cr < p)
		return iter_fail(it, CR_ERROR, it->bare_cr);
	rec->start = (size_t)(start - it->buf);
	rec->end = (size_t)(p - it->buf);
	it->pos = rec->end;
	it->state = IT_NEXT;
	it->index++;
	return 1;
close:
	it->array_close = (size_t)(p - it->buf);
	if (iter_leave(it, &c) < 0)
		return -1;
	if (it->bare_cr != NULL)
		return iter_fail(it, CR_ERROR, it->bare_cr);
	return 0;
}
