/*
 * snapshot.c: the reference-counted pair of a policy and a consent table
 * that decides requests, and the one loader every start and reload uses.
 *
 * Two levels of counts: a snapshot (what a request holds: one atomic
 * increment at its start, one decrement at its end) refers to two parts,
 * and a part (the policy or the table) is shared by every snapshot built
 * with it. Replacing one part therefore costs a small allocation, not a
 * rebuild of the other.
 */
#include <stdatomic.h>
#include <stdlib.h>

#include "consentgate/consent.h"
#include "consentgate/policy.h"
#include "consentgate/snapshot.h"

/* A policy or a consent table, shared by the snapshots that use it. */
struct part {
	atomic_uint refs;
	void *obj;
	void (*free_obj)(void *);
};

/* On a cache line of its own: each worker's copy is counted by that
 * worker alone, which helps only if two copies never share a line. */
#define SNAPSHOT_ALIGN 64 /* bytes of a cache line */

struct snapshot {
	_Alignas(SNAPSHOT_ALIGN) atomic_uint refs;
	struct part *policy, *consent;
	uint64_t generation;
};

static void
free_policy(void *p)
{
	policy_free(p);
}

static void
free_consent(void *t)
{
	consent_free(t);
}

/* A part owning obj; NULL on allocation failure (obj is freed). */
static struct part *
part_new(void *obj, void (*free_obj)(void *))
{
	struct part *pt = malloc(sizeof(*pt));

	if (pt == NULL) {
		free_obj(obj);
		return NULL;
	}
	atomic_init(&pt->refs, 1);
	pt->obj = obj;
	pt->free_obj = free_obj;
	return pt;
}

static struct part *
part_ref(struct part *pt)
{
	atomic_fetch_add_explicit(&pt->refs, 1, memory_order_relaxed);
	return pt;
}

static void
part_unref(struct part *pt)
{
	if (pt == NULL)
		return;
	/* release our reads; the last owner acquires everyone's */
	if (atomic_fetch_sub_explicit(&pt->refs, 1, memory_order_acq_rel) != 1)
		return;
	pt->free_obj(pt->obj);
	free(pt);
}

/* A snapshot of two parts whose references it takes over (either may be
 * NULL after a failed part_new: then both are released and NULL returned). */
static struct snapshot *
pair(struct part *policy, struct part *consent, uint64_t generation)
{
	struct snapshot *s = NULL;

	if (policy == NULL || consent == NULL ||
	    (s = aligned_alloc(SNAPSHOT_ALIGN, sizeof(*s))) == NULL) {
		part_unref(policy);
		part_unref(consent);
		return NULL;
	}
	atomic_init(&s->refs, 1);
	s->policy = policy;
	s->consent = consent;
	s->generation = generation;
	return s;
}

struct snapshot *
snapshot_new(struct policy *p, struct consent_table *t)
{
	return pair(part_new(p, free_policy), part_new(t, free_consent), 1);
}

struct snapshot *
snapshot_replace(const struct snapshot *base, struct policy *p,
                 struct consent_table *t)
{
	struct part *pp = p ? part_new(p, free_policy) : part_ref(base->policy);
	struct part *tp =
	    t ? part_new(t, free_consent) : part_ref(base->consent);

	return pair(pp, tp, base->generation + 1);
}

struct snapshot *
snapshot_share(const struct snapshot *s)
{
	return pair(part_ref(s->policy), part_ref(s->consent), s->generation);
}

struct snapshot *
snapshot_load(const struct snapshot *base, unsigned what,
              const char *policy_path, const char *consent_path,
              struct cg_errors *errs)
{
	struct policy *p = NULL;
	struct consent_table *t = NULL;
	struct snapshot *s = NULL;

	if (base == NULL)
		what = SNAPSHOT_BOTH;
	if (what & SNAPSHOT_POLICY)
		p = policy_load(policy_path, errs);
	if (what & SNAPSHOT_CONSENT)
		t = consent_open(consent_path, errs);
	if (((what & SNAPSHOT_POLICY) && p == NULL) ||
	    ((what & SNAPSHOT_CONSENT) && t == NULL))
		goto fail;
	/* a new policy meets the running table and the other way round */
	if (policy_check_consent(p ? p : snapshot_policy(base),
	                         t ? t : snapshot_consent(base), errs) != 0)
		goto fail;
	s = base ? snapshot_replace(base, p, t) : snapshot_new(p, t);
	if (s == NULL)
		cg_errors_add(errs, "snapshot", 0, 0, "out of memory");
	return s; /* p and t belong to s, or were freed with it */
fail:
	policy_free(p);
	consent_free(t);
	return NULL;
}

void
snapshot_ref(struct snapshot *s)
{
	atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void
snapshot_unref(struct snapshot *s)
{
	if (s == NULL)
		return;
	if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
		return;
	part_unref(s->policy);
	part_unref(s->consent);
	free(s);
}

const struct policy *
snapshot_policy(const struct snapshot *s)
{
	return s->policy->obj;
}

const struct consent_table *
snapshot_consent(const struct snapshot *s)
{
	return s->consent->obj;
}

uint64_t
snapshot_generation(const struct snapshot *s)
{
	return s->generation;
}
