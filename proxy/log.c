/* log.c: one line per event on stderr, with the time. */
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "proxy_internal.h"

int log_verbose;

void
log_msg(const char *fmt, ...)
{
	char line[1024], stamp[32];
	struct timespec ts;
	struct tm tm;
	va_list ap;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s.%03ldZ consentgate: %s\n", stamp,
	        ts.tv_nsec / 1000000, line);
}
