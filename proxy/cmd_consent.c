/* cmd_consent.c: consent build (CSV -> snapshot) and consent info. */
#include <stdio.h>

#include "cmd_internal.h"

int
cmd_consent(int argc, char **argv)
{
	fprintf(stderr, "consentgate consent: not built yet\n");
	return 2;
}
