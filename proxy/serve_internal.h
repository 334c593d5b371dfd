/* serve_internal.h: the steps of `serve` that `demo` reuses. */
#ifndef CONSENTGATE_SERVE_INTERNAL_H
#define CONSENTGATE_SERVE_INTERNAL_H

#include "proxy_internal.h"

int serve_parse_args(int argc, char **argv, struct config *cfg, bool *check);
/* Load policy and consent; prints every error; NULL on failure. */
struct policy_snapshot *serve_load(const struct config *cfg);

#endif
