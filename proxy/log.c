/* log.c: one line per event on stderr: the time, the level, the message. */
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "logq_internal.h"
#include "proxy_internal.h"

int log_verbose;

static void
log_line(const char *level, const char *fmt, va_list ap)
{
	char line[1024], stamp[32];

	logq_stamp(stamp);
	vsnprintf(line, sizeof(line), fmt, ap);
	/* one fprintf: stderr is unbuffered, a line goes out in one write */
	fprintf(stderr, "%s %s consentgate: %s\n", stamp, level, line);
}

void
log_msg(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_line("info", fmt, ap);
	va_end(ap);
}

void
log_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_line("warn", fmt, ap);
	va_end(ap);
}

void
log_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_line("error", fmt, ap);
	va_end(ap);
}
