/* serve_internal.h: the steps of `serve` that `demo` reuses. */
#ifndef CONSENTGATE_SERVE_INTERNAL_H
#define CONSENTGATE_SERVE_INTERNAL_H

#include "proxy_internal.h"

int serve_parse_args(int argc, char **argv, struct config *cfg, bool *check);
/* Load policy and consent (snapshot_load); prints every error; NULL on
 * failure. */
struct snapshot *serve_load(const struct config *cfg);
/* Listen, start the admin listener, run until stopped (server.c), with
 * snap (the caller's reference passes). Prints why it could not start.
 * 0 when stopped cleanly, -1 when it could not start. */
int serve_run(const struct config *cfg, struct snapshot *snap);

#endif
