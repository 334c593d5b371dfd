/*
 * jsonpos.h: where things are in a JSON text, for "file:line:col" messages
 * (rule files, the --config file).
 *
 * jansson parses without keeping positions, so jsonpos_scan makes a second
 * small pass over the same text and records the line and column of every
 * member and element by its path: "" is the root, "routes[1].purpose" the
 * member "purpose" of the second element of the root's "routes", to a
 * depth of CG_MAX_JSONPOS_DEPTH and paths of CG_MAX_JSON_PATH bytes. Lines
 * count from 1; columns count characters (not bytes) from 1, as jansson's
 * do. Pure: no I/O.
 */
#ifndef CONSENTGATE_JSONPOS_H
#define CONSENTGATE_JSONPOS_H

#include "consentgate/common.h"

struct jsonpos;

/*
 * Record the positions in buf[0,len), text jansson accepted (on other text
 * the pass stops early and never reads past len). NULL when out of memory:
 * callers then report without positions (jsonpos_find on NULL gives 0:0).
 * Free with jsonpos_free.
 */
struct jsonpos *jsonpos_scan(const char *buf, size_t len);
void jsonpos_free(struct jsonpos *m); /* NULL: does nothing */

/*
 * The line and column of path's key (key true, for a member) or of its
 * value. A path not recorded (too deep, or absent) gives its nearest
 * recorded ancestor's value ("" only when asked for); nothing gives 0 and
 * 0, which cg_errors_add leaves out of a message.
 */
void jsonpos_find(const struct jsonpos *m, const char *path, bool key,
                  int *line, int *col);

/*
 * The line and column of a jansson syntax error (json_error_t's line,
 * column and position) in buf[0,len): jansson's own when it gives a
 * column, else those of byte position (an error at the start of a line or
 * at the end of the file, where jansson says column 0 or -1).
 */
void jsonpos_of_error(const char *buf, size_t len, int jline, int jcol,
                      int jposition, int *line, int *col);

#endif
