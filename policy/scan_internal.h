/*
 * scan_internal.h: the scanner's helpers in their own modules. Nobody
 * outside policy/ includes it but the scanner's own tests and benchmarks
 * (to pick a kernel).
 */
#ifndef CONSENTGATE_SCAN_INTERNAL_H
#define CONSENTGATE_SCAN_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "consentgate/common.h"

/* keyfold.c: k[0,klen) and t[0,tlen) are one name to a folding decoder
 * (NFKC, full case folding, ignorables, Turkish i). */
bool keyfold_equal(const char *k, size_t klen, const char *t, size_t tlen);

/* subject_id.c: the refusal (a static string) for a numeric subject
 * [s, e) beyond 2^53 or -0, or NULL. */
const char *subject_id_number_unsafe(const char *s, const char *e);
/* subject_id.c: the refusal for a string subject s[0,n) that pandas
 * would read as another number ("0042", "1e3", digits beyond 2^53), or
 * NULL. */
const char *subject_id_string_unsafe(const char *s, size_t n);

/*
 * Stage 1 of the scanner: a kernel classifies 64 bytes at a time for the
 * string walk (scan.c), which trusts nothing else from it. Kernels are
 * chosen once at start (scan_kernel.c): the best the CPU has, or the one
 * CG_SCAN_KERNEL names (scalar, avx2, avx512). "scalar" is the reference:
 * no stage 1, the byte loops of scan.c alone.
 */
enum scan_kernel {
	SCAN_KERNEL_SCALAR,
	SCAN_KERNEL_AVX2,
	SCAN_KERNEL_AVX512,
};

struct scan_kernel_block {
	/* the last 64 bytes classified: the UTF-8 carry into the next */
	uint8_t prev[64] __attribute__((aligned(64)));
	bool ndjson;     /* in: raw U+2028, U+2029, U+0085 are trouble */
	bool incomplete; /* the last block ended inside a character */
	/* out: bit i set when block byte i is '"', '\' or below 0x20 */
	uint64_t special;
	/* out: the block (with the 3 bytes before it) holds invalid UTF-8,
	 * or, NDJSON, a raw line end whose first byte is at bit
	 * ctz(line_end) - 2 at the earliest */
	bool bad_utf8;
	uint64_t line_end;
};

/* Classify the 64 readable bytes at p, continuing s from the block
 * before (s->prev); s->prev becomes these bytes. */
void scan_avx2_block(struct scan_kernel_block *s, const char *p);
void scan_avx512_block(struct scan_kernel_block *s, const char *p);

/* scan_kernel.c: the UTF-8 lookup tables of the kernels (Keiser and
 * Lemire) and the bytes above which a block's last three bytes cut a
 * character (the last 64 bytes; 32-byte halves use the last 32) */
extern const uint8_t scan_kernel_utf8_byte1_high[16];
extern const uint8_t scan_kernel_utf8_byte1_low[16];
extern const uint8_t scan_kernel_utf8_byte2_high[16];
extern const uint8_t scan_kernel_utf8_incomplete_max[64];

/* scan_kernel.c: the kernel in use, chosen at start */
extern enum scan_kernel scan_kernel_active;
/* Whether the CPU runs kernel k. */
bool scan_kernel_supported(enum scan_kernel k);
/* For tests and benchmarks: use kernel k from now on (not thread-safe).
 * Returns -1 when the CPU lacks it. */
int scan_kernel_use(enum scan_kernel k);
const char *scan_kernel_name(enum scan_kernel k);

#endif
