/*
 * scan_avx512.c: stage 1 of the scanner with AVX-512 (F and BW), a block
 * in one register. The same method as scan_avx2.c (see there), with
 * compares straight into 64-bit masks.
 *
 * target("avx512f,avx512bw") per function: no build flag, and
 * scan_kernel.c calls it only where the CPU has both.
 */
#include <stdbool.h>
#include <stdint.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#include "scan_internal.h"

#define AVX512 __attribute__((target("avx512f,avx512bw")))

/* the view of cur n bytes back, its first n bytes from prev: each 128-bit
 * lane is joined with the lane before it (prev's last for the first) */
#define BACK(cur, prev, n)                                                     \
	_mm512_alignr_epi8(                                                    \
	    cur,                                                               \
	    _mm512_permutex2var_epi64(                                         \
	        prev, _mm512_set_epi64(13, 12, 11, 10, 9, 8, 7, 6), cur),      \
	    16 - (n))

static inline AVX512 __m512i
table(const uint8_t t[16])
{
	return _mm512_broadcast_i32x4(
	    _mm_loadu_si128((const __m128i *)(const void *)t));
}

AVX512 void
scan_avx512_block(struct scan_kernel_block *s, const char *p)
{
	const __m512i low4 = _mm512_set1_epi8(0x0F);
	__m512i v = _mm512_loadu_si512((const void *)p);
	__m512i prev = _mm512_load_si512((const void *)s->prev);
	__m512i p1, p2, p3, sc, must23, err, cut;

	s->special = _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8('"')) |
	             _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8('\\')) |
	             _mm512_cmplt_epu8_mask(v, _mm512_set1_epi8(0x20));
	s->line_end = 0;
	_mm512_store_si512((void *)s->prev, v);
	if (_mm512_movepi8_mask(v) == 0) {
		/* ASCII: only a character cut by the block end is wrong */
		s->bad_utf8 = s->incomplete;
		s->incomplete = false;
		return;
	}
	p1 = BACK(v, prev, 1);
	p2 = BACK(v, prev, 2);
	p3 = BACK(v, prev, 3);
	sc = _mm512_and_si512(
	    _mm512_and_si512(
	        _mm512_shuffle_epi8(
	            table(scan_kernel_utf8_byte1_high),
	            _mm512_and_si512(_mm512_srli_epi16(p1, 4), low4)),
	        _mm512_shuffle_epi8(table(scan_kernel_utf8_byte1_low),
	                            _mm512_and_si512(p1, low4))),
	    _mm512_shuffle_epi8(
	        table(scan_kernel_utf8_byte2_high),
	        _mm512_and_si512(_mm512_srli_epi16(v, 4), low4)));
	must23 = _mm512_or_si512(
	    _mm512_subs_epu8(p2, _mm512_set1_epi8((char)(0xE0 - 0x80))),
	    _mm512_subs_epu8(p3, _mm512_set1_epi8((char)(0xF0 - 0x80))));
	err = _mm512_xor_si512(
	    sc, _mm512_and_si512(must23, _mm512_set1_epi8((char)0x80)));
	cut = _mm512_subs_epu8(
	    v,
	    _mm512_loadu_si512((const void *)scan_kernel_utf8_incomplete_max));
	s->bad_utf8 = _mm512_test_epi8_mask(err, err) != 0;
	s->incomplete = _mm512_test_epi8_mask(cut, cut) != 0;
	if (s->ndjson)
		s->line_end =
		    (_mm512_cmpeq_epi8_mask(p2, _mm512_set1_epi8((char)0xE2)) &
		     _mm512_cmpeq_epi8_mask(p1, _mm512_set1_epi8((char)0x80)) &
		     _mm512_cmpeq_epi8_mask(
		         _mm512_or_si512(v, _mm512_set1_epi8(1)),
		         _mm512_set1_epi8((char)0xA9))) |
		    (_mm512_cmpeq_epi8_mask(p1, _mm512_set1_epi8((char)0xC2)) &
		     _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8((char)0x85)));
}
#endif
