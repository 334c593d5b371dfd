/*
 * scan_avx2.c: stage 1 of the scanner with AVX2, 64 bytes as two halves.
 *
 * Per block: a bit mask of the bytes a string walk stops at ('"', '\\',
 * below 0x20), and UTF-8 validation by the lookup-table method of Keiser
 * and Lemire ("Validating UTF-8 in less than one instruction per byte",
 * 2021): three 16-entry tables indexed by the high and low nibble of the
 * byte before and the high nibble of the byte itself flag every bad pair;
 * a third or fourth byte a lead expects is checked by saturating
 * subtraction on the bytes two and three back. All-ASCII blocks skip it.
 * NDJSON: raw U+2028, U+2029 (E2 80 A8/A9) and U+0085 (C2 85) are found by
 * comparing the same shifted views.
 *
 * The function carries target("avx2"): no build flag is needed and the
 * binary runs on any x86-64; scan_kernel.c calls it only where the CPU has
 * AVX2.
 */
#include <stdbool.h>
#include <stdint.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include "scan_internal.h"

#define AVX2 __attribute__((target("avx2")))

/* the view of cur n bytes back, its first n bytes from prev */
#define BACK(cur, prev, n)                                                     \
	_mm256_alignr_epi8(cur, _mm256_permute2x128_si256(prev, cur, 0x21),    \
	                   16 - (n))

static inline AVX2 __m256i
table(const uint8_t t[16])
{
	return _mm256_broadcastsi128_si256(
	    _mm_loadu_si128((const __m128i *)(const void *)t));
}

/* nonzero bytes where cur (after prev) breaks UTF-8 */
static inline AVX2 __m256i
utf8_errors(__m256i cur, __m256i prev)
{
	const __m256i low4 = _mm256_set1_epi8(0x0F);
	__m256i p1 = BACK(cur, prev, 1), p2 = BACK(cur, prev, 2),
	        p3 = BACK(cur, prev, 3);
	__m256i b1h = _mm256_shuffle_epi8(
	    table(scan_kernel_utf8_byte1_high),
	    _mm256_and_si256(_mm256_srli_epi16(p1, 4), low4));
	__m256i b1l = _mm256_shuffle_epi8(table(scan_kernel_utf8_byte1_low),
	                                  _mm256_and_si256(p1, low4));
	__m256i b2h = _mm256_shuffle_epi8(
	    table(scan_kernel_utf8_byte2_high),
	    _mm256_and_si256(_mm256_srli_epi16(cur, 4), low4));
	__m256i sc = _mm256_and_si256(_mm256_and_si256(b1h, b1l), b2h);
	/* a third byte after E0-FF two back, a fourth after F0-FF three
	 * back: bit 7 of the saturated differences */
	__m256i must23 = _mm256_or_si256(
	    _mm256_subs_epu8(p2, _mm256_set1_epi8((char)(0xE0 - 0x80))),
	    _mm256_subs_epu8(p3, _mm256_set1_epi8((char)(0xF0 - 0x80))));

	return _mm256_xor_si256(
	    sc, _mm256_and_si256(must23, _mm256_set1_epi8((char)0x80)));
}

/* bits at the last byte of each raw U+2028, U+2029, U+0085 */
static inline AVX2 uint32_t
line_ends(__m256i cur, __m256i prev)
{
	__m256i p1 = BACK(cur, prev, 1), p2 = BACK(cur, prev, 2);
	__m256i ls = _mm256_and_si256(
	    _mm256_and_si256(
	        _mm256_cmpeq_epi8(p2, _mm256_set1_epi8((char)0xE2)),
	        _mm256_cmpeq_epi8(p1, _mm256_set1_epi8((char)0x80))),
	    _mm256_cmpeq_epi8(_mm256_or_si256(cur, _mm256_set1_epi8(1)),
	                      _mm256_set1_epi8((char)0xA9)));
	__m256i nel = _mm256_and_si256(
	    _mm256_cmpeq_epi8(p1, _mm256_set1_epi8((char)0xC2)),
	    _mm256_cmpeq_epi8(cur, _mm256_set1_epi8((char)0x85)));

	return (uint32_t)_mm256_movemask_epi8(_mm256_or_si256(ls, nel));
}

static inline AVX2 uint32_t
special(__m256i v)
{
	__m256i m =
	    _mm256_or_si256(_mm256_cmpeq_epi8(v, _mm256_set1_epi8('"')),
	                    _mm256_cmpeq_epi8(v, _mm256_set1_epi8('\\')));

	/* below 0x20: min(v, 0x1F) == v, unsigned */
	m = _mm256_or_si256(
	    m,
	    _mm256_cmpeq_epi8(_mm256_min_epu8(v, _mm256_set1_epi8(0x1F)), v));
	return (uint32_t)_mm256_movemask_epi8(m);
}

AVX2 void
scan_avx2_block(struct scan_kernel_block *s, const char *p)
{
	__m256i lo = _mm256_loadu_si256((const __m256i *)(const void *)p);
	__m256i hi =
	    _mm256_loadu_si256((const __m256i *)(const void *)(p + 32));
	__m256i prev =
	    _mm256_load_si256((const __m256i *)(const void *)(s->prev + 32));

	s->special = (uint64_t)special(lo) | (uint64_t)special(hi) << 32;
	s->line_end = 0;
	if (_mm256_movemask_epi8(_mm256_or_si256(lo, hi)) == 0) {
		/* ASCII: only a character cut by the block end is wrong */
		s->bad_utf8 = s->incomplete;
		s->incomplete = false;
	} else {
		__m256i err =
		    _mm256_or_si256(utf8_errors(lo, prev), utf8_errors(hi, lo));
		/* a lead in the last 3 bytes that needs more bytes */
		__m256i cut = _mm256_subs_epu8(
		    hi,
		    _mm256_loadu_si256(
		        (const __m256i
		             *)(const void *)(scan_kernel_utf8_incomplete_max +
		                              32)));

		s->bad_utf8 = !_mm256_testz_si256(err, err);
		s->incomplete = !_mm256_testz_si256(cut, cut);
		if (s->ndjson)
			s->line_end = (uint64_t)line_ends(lo, prev) |
			              (uint64_t)line_ends(hi, lo) << 32;
	}
	_mm256_store_si256((__m256i *)(void *)(s->prev + 32), hi);
}
#endif
