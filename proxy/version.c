/*
 * version.c: the version, the commit it was built from, and the libraries
 * as the dynamic linker resolved them: a bug report names the OpenSSL
 * that ran, not the headers the build saw.
 */
#include <stdio.h>

#include <event2/event.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <openssl/crypto.h>
#include <utf8proc.h>
#include <zlib.h>

#include "consentgate/common.h"
#include "version_internal.h"

#ifndef CG_COMMIT
#define CG_COMMIT "unknown" /* built without the Makefile, or not from git */
#endif

const char *
version_commit(void)
{
	return CG_COMMIT[0] != '\0' ? CG_COMMIT : "unknown";
}

/* PQlibVersion: major*10000 + minor since PostgreSQL 10, before that
   major*10000 + minor*100 + patch. */
static void
print_libpq(FILE *out)
{
	int v = PQlibVersion();

	if (v >= 100000)
		fprintf(out, "libpq %d.%d\n", v / 10000, v % 10000);
	else
		fprintf(out, "libpq %d.%d.%d\n", v / 10000, v / 100 % 100,
		        v % 100);
}

void
version_print(FILE *out)
{
	fprintf(out, "consentgate %s (commit %s)\n", CG_VERSION,
	        version_commit());
	fprintf(out, "openssl %s\n", OpenSSL_version(OPENSSL_VERSION_STRING));
	fprintf(out, "libevent %s\n", event_get_version());
#if JANSSON_VERSION_HEX >= 0x020d00 /* jansson_version_str: 2.13 */
	fprintf(out, "jansson %s\n", jansson_version_str());
#else
	fprintf(out, "jansson %s\n", JANSSON_VERSION);
#endif
	fprintf(out, "zlib %s\n", zlibVersion());
	fprintf(out, "utf8proc %s\n", utf8proc_version());
	print_libpq(out);
}
