/*
 * version_internal.h: what `consentgate --version` prints, for main.c and
 * serve.c alike.
 */
#ifndef CONSENTGATE_VERSION_INTERNAL_H
#define CONSENTGATE_VERSION_INTERNAL_H

#include <stdio.h>

/* The commit the binary was built from (`git describe --always --dirty`,
   passed by the Makefile as CG_COMMIT), or "unknown". Static storage. */
const char *version_commit(void);

/* Print the version, the commit and the version of every library as
   linked at run time (not the headers built against), one per line. */
void version_print(FILE *out);

#endif
