/* cg_errors.c: the list of load-time errors every loader reports into. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consentgate/common.h"

void
cg_errors_init(struct cg_errors *e)
{
	memset(e, 0, sizeof(*e));
}

void
cg_errors_reset(struct cg_errors *e)
{
	for (unsigned i = 0; i < e->count; i++)
		free(e->msgs[i]);
	cg_errors_init(e);
}

void
cg_errors_add(struct cg_errors *e, const char *file, int line, int col,
              const char *fmt, ...)
{
	char text[512], *msg;
	va_list ap;

	if (e->count >= CG_MAX_ERRORS) {
		e->dropped++;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (line > 0 && col > 0)
		msg = NULL,
		(void)asprintf(&msg, "%s:%d:%d: %s", file, line, col, text);
	else if (line > 0)
		msg = NULL, (void)asprintf(&msg, "%s:%d: %s", file, line, text);
	else
		msg = NULL, (void)asprintf(&msg, "%s: %s", file, text);
	if (msg == NULL) {
		e->dropped++;
		return;
	}
	e->msgs[e->count++] = msg;
}
