/*
 * fuzz_check.h: CHECK(cond), a driver's invariant: it names the one that
 * failed, then aborts, so that libFuzzer keeps the input.
 */
#ifndef CONSENTGATE_FUZZ_CHECK_H
#define CONSENTGATE_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: invariant failed: %s\n",       \
			        __FILE__, __LINE__, #cond);                    \
			abort();                                               \
		}                                                              \
	} while (0)

#endif
