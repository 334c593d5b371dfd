/*
 * snapshot.h: what decides a request: a compiled policy and a consent
 * table, each with a reference count of its own.
 *
 * A snapshot pairs one policy with one consent table. The two are separate
 * references: the next snapshot is built from the running one with a new
 * policy, a new table or both, and shares what did not change, so a consent
 * change never rebuilds (or copies) the policy, nor a policy change the
 * table. A request holds one reference on its snapshot from start to end:
 * requests in flight finish on the pair they started with, whatever is
 * swapped meanwhile, and never see a policy of one generation with a table
 * of another. A part is freed when the last snapshot using it goes.
 *
 * Snapshots are immutable and every function here is thread-safe
 * (reference counts are atomic). Pure: only snapshot_load reads files.
 */
#ifndef CONSENTGATE_SNAPSHOT_H
#define CONSENTGATE_SNAPSHOT_H

#include "consentgate/common.h"

struct policy;
struct consent_table;
struct snapshot;

/* Which parts a load replaces (bits). */
enum snapshot_part {
	SNAPSHOT_POLICY = 1,
	SNAPSHOT_CONSENT = 2,
	SNAPSHOT_BOTH = 3,
};

/*
 * A first snapshot (generation 1) owning p and t (both non-NULL). NULL on
 * allocation failure; p and t are freed then.
 */
struct snapshot *snapshot_new(struct policy *p, struct consent_table *t);

/*
 * The snapshot after base: p and t, when not NULL, replace base's policy
 * and table (their ownership passes to the new snapshot); a NULL part is
 * base's, shared, not copied. The generation is base's plus one; base is
 * unchanged and keeps its own reference. NULL on allocation failure; p and
 * t are freed then.
 */
struct snapshot *snapshot_replace(const struct snapshot *base, struct policy *p,
                                  struct consent_table *t);

/*
 * Another snapshot object with s's parts and generation. Each worker takes
 * its own so that requests on different cores never write to one shared
 * reference count. NULL on allocation failure.
 */
struct snapshot *snapshot_share(const struct snapshot *s);

/*
 * Build the next snapshot from files: load the parts what names (policy
 * from policy_path, consent table from consent_path; with base NULL both,
 * whatever what says), take the others from base, and check the pair with
 * policy_check_consent. Every error of every part goes to errs (a broken
 * policy does not hide a broken table). Returns the new snapshot (one
 * reference, the caller's), or NULL with errs filled; base is never
 * changed. The same function serves the first start, serve --check and
 * every reload, so they fail alike.
 */
struct snapshot *snapshot_load(const struct snapshot *base, unsigned what,
                               const char *policy_path,
                               const char *consent_path,
                               struct cg_errors *errs);

/* One more reference. */
void snapshot_ref(struct snapshot *s);
/* Drop one reference; the last frees the snapshot and any part no other
 * snapshot uses. NULL does nothing. */
void snapshot_unref(struct snapshot *s);

/* The parts, valid while the caller holds its reference. */
const struct policy *snapshot_policy(const struct snapshot *s);
const struct consent_table *snapshot_consent(const struct snapshot *s);
/* 1 for snapshot_new, one more at each snapshot_replace. */
uint64_t snapshot_generation(const struct snapshot *s);

#endif
