/*
 * scan_kernel.c: which stage-1 kernel the scanner runs, chosen once at
 * start, and the tables the kernels share.
 *
 * The best kernel the CPU runs, unless CG_SCAN_KERNEL (scalar, avx2,
 * avx512) names another: tests and benchmarks compare them. A kernel the
 * CPU lacks is never used; an unknown name keeps the automatic choice.
 * AVX-512 is chosen automatically only where it was proven on hardware
 * (see README, "Benchmarks"): until then it runs only when named.
 */
#include <stdlib.h>
#include <string.h>

#include "scan_internal.h"

/* UTF-8 error classes, one bit each (Keiser and Lemire) */
#define TOO_SHORT 0x01 /* a lead or ASCII where a continuation belongs */
#define TOO_LONG 0x02  /* a continuation after ASCII */
#define OVERLONG_3 0x04
#define TOO_LARGE 0x08 /* above U+10FFFF */
#define SURROGATE 0x10
#define OVERLONG_2 0x20
#define TOO_LARGE_1000 0x40
#define OVERLONG_4 0x40
#define TWO_CONTS 0x80 /* a continuation after a continuation */
#define CARRY (TOO_SHORT | TOO_LONG | TWO_CONTS)

/* by the high nibble of the byte before */
const uint8_t scan_kernel_utf8_byte1_high[16] = {
    TOO_LONG,
    TOO_LONG,
    TOO_LONG,
    TOO_LONG,
    TOO_LONG,
    TOO_LONG,
    TOO_LONG,
    TOO_LONG,
    TWO_CONTS,
    TWO_CONTS,
    TWO_CONTS,
    TWO_CONTS,
    TOO_SHORT | OVERLONG_2,
    TOO_SHORT,
    TOO_SHORT | OVERLONG_3 | SURROGATE,
    TOO_SHORT | TOO_LARGE | TOO_LARGE_1000 | OVERLONG_4,
};

/* by the low nibble of the byte before */
const uint8_t scan_kernel_utf8_byte1_low[16] = {
    CARRY | OVERLONG_3 | OVERLONG_2 | OVERLONG_4,
    CARRY | OVERLONG_2,
    CARRY,
    CARRY,
    CARRY | TOO_LARGE,
    CARRY | TOO_LARGE | TOO_LARGE_1000,
    CARRY | TOO_LARGE | TOO_LARGE_1000,
    CARRY | TOO_LARGE | TOO_LARGE_1000,
    CARRY | TOO_LARGE | TOO_LARGE_1000,
    CARRY | TOO_LARGE | TOO_LARGE_1000,
    CARRY | TOO_LARGE | TOO_LARGE_1000,
    CARRY | TOO_LARGE | TOO_LARGE_1000,
    CARRY | TOO_LARGE | TOO_LARGE_1000,
    CARRY | TOO_LARGE | TOO_LARGE_1000 | SURROGATE,
    CARRY | TOO_LARGE | TOO_LARGE_1000,
    CARRY | TOO_LARGE | TOO_LARGE_1000,
};

/* by the high nibble of the byte itself */
const uint8_t scan_kernel_utf8_byte2_high[16] = {
    TOO_SHORT,
    TOO_SHORT,
    TOO_SHORT,
    TOO_SHORT,
    TOO_SHORT,
    TOO_SHORT,
    TOO_SHORT,
    TOO_SHORT,
    TOO_LONG | OVERLONG_2 | TWO_CONTS | OVERLONG_3 | TOO_LARGE_1000 |
        OVERLONG_4,
    TOO_LONG | OVERLONG_2 | TWO_CONTS | OVERLONG_3 | TOO_LARGE,
    TOO_LONG | OVERLONG_2 | TWO_CONTS | SURROGATE | TOO_LARGE,
    TOO_LONG | OVERLONG_2 | TWO_CONTS | SURROGATE | TOO_LARGE,
    TOO_SHORT,
    TOO_SHORT,
    TOO_SHORT,
    TOO_SHORT,
};

/* a block whose last byte is above BF, second last above DF or third
 * last above EF ends inside a character */
const uint8_t scan_kernel_utf8_incomplete_max[64] = {
    [0 ... 60] = 0xFF,
    [61] = 0xF0 - 1,
    [62] = 0xE0 - 1,
    [63] = 0xC0 - 1,
};

enum scan_kernel scan_kernel_active = SCAN_KERNEL_SCALAR;

static const char *const names[] = {
    [SCAN_KERNEL_SCALAR] = "scalar",
    [SCAN_KERNEL_AVX2] = "avx2",
    [SCAN_KERNEL_AVX512] = "avx512",
};

const char *
scan_kernel_name(enum scan_kernel k)
{
	return (unsigned)k < sizeof(names) / sizeof(names[0]) ? names[k] : "?";
}

bool
scan_kernel_supported(enum scan_kernel k)
{
	switch (k) {
	case SCAN_KERNEL_SCALAR:
		return true;
#if defined(__x86_64__) || defined(__i386__)
	case SCAN_KERNEL_AVX2:
		return __builtin_cpu_supports("avx2");
	case SCAN_KERNEL_AVX512:
		return __builtin_cpu_supports("avx512f") &&
		       __builtin_cpu_supports("avx512bw");
#endif
	default:
		return false;
	}
}

int
scan_kernel_use(enum scan_kernel k)
{
	if (!scan_kernel_supported(k))
		return -1;
	scan_kernel_active = k;
	return 0;
}

/* before main: no thread sees the choice change */
__attribute__((constructor)) static void
scan_kernel_choose(void)
{
	const char *want = getenv("CG_SCAN_KERNEL");

#if defined(__x86_64__) || defined(__i386__)
	__builtin_cpu_init();
#endif
	scan_kernel_active = scan_kernel_supported(SCAN_KERNEL_AVX2)
	                         ? SCAN_KERNEL_AVX2
	                         : SCAN_KERNEL_SCALAR;
	if (want == NULL)
		return;
	for (unsigned k = 0; k < sizeof(names) / sizeof(names[0]); k++)
		if (strcmp(want, names[k]) == 0)
			(void)scan_kernel_use((enum scan_kernel)k);
}
