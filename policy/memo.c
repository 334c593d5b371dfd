/*
 * memo.c: the dedup table of a request's subjects (policy_internal.h).
 *
 * A record names a few people and a request often names the same people
 * in many records (a thread, one author's posts): each distinct subject is
 * looked up and matched against the rules once, and the lookups of a
 * window of records go to consent_lookup_many together, so their memory
 * fetches overlap. The outcome depends only on the subject's bytes once
 * the route, the table and the time are fixed, which they are for a
 * request.
 */
#include <string.h>

#include "policy_internal.h"

#define MEMO_LOOKUP_BATCH 32 /* subjects per consent_lookup_many call */

_Static_assert((MEMO_SLOTS & (MEMO_SLOTS - 1)) == 0, "a power of two");
_Static_assert(MEMO_SLOTS > MEMO_PEOPLE, "a free slot ends every probe");
_Static_assert(MEMO_PEOPLE < UINT16_MAX, "slots hold entry + 1");
_Static_assert(MEMO_PEOPLE >= CG_MAX_SUBJECTS &&
                   MEMO_BYTES >= CG_MAX_SUBJECTS * CG_MAX_SUBJECT_LEN,
               "an empty memo takes any one record");

static uint64_t
memo_hash(const char *s, size_t len)
{
	uint64_t h = policy_fnv1a64(s, len);

	return h ^ h >> 29; /* the low bits pick the slot */
}

void
memo_clear(struct memo *m)
{
	memset(m->slot, 0, sizeof(m->slot));
	m->n = 0;
	m->decided = 0;
	m->used = 0;
}

bool
memo_room(const struct memo *m, unsigned nsubjects, size_t bytes)
{
	return m->n + nsubjects <= MEMO_PEOPLE &&
	       m->used + bytes <= sizeof(m->text);
}

int
memo_intern(struct memo *m, struct cg_slice s)
{
	uint64_t h = memo_hash(s.ptr, s.len);
	unsigned b = (unsigned)h & (MEMO_SLOTS - 1);
	struct memo_entry *e;

	/* ends: fewer entries than slots, so an empty slot comes */
	while (m->slot[b] != 0) {
		e = &m->ent[m->slot[b] - 1];
		if (e->hash == h && e->len == s.len &&
		    memcmp(m->text + e->off, s.ptr, s.len) == 0)
			return m->slot[b] - 1;
		b = (b + 1) & (MEMO_SLOTS - 1);
	}
	if (!memo_room(m, 1, s.len))
		return -1;
	e = &m->ent[m->n];
	e->hash = h;
	e->off = (uint32_t)m->used;
	e->len = (uint32_t)s.len;
	memcpy(m->text + m->used, s.ptr, s.len);
	m->used += s.len;
	m->slot[b] = (uint16_t)(++m->n);
	return (int)m->n - 1;
}

void
memo_decide(struct memo *m, const struct policy_route *r,
            const struct consent_table *t, int pid, int64_t now)
{
	struct cg_slice s[MEMO_LOOKUP_BATCH];
	struct consent_lookup_result c[MEMO_LOOKUP_BATCH];

	while (m->decided < m->n) {
		unsigned k = m->n - m->decided;

		if (k > MEMO_LOOKUP_BATCH)
			k = MEMO_LOOKUP_BATCH;
		for (unsigned i = 0; i < k; i++)
			s[i] = memo_subject(m, m->decided + i);
		/* as rule_outcome_of: no table, no row */
		if (t != NULL)
			consent_lookup_many(t, s, k, pid, c);
		else
			memset(c, 0, k * sizeof(c[0]));
		for (unsigned i = 0; i < k; i++) {
			struct rule_outcome *o = &m->ent[m->decided + i].o;

			o->c = c[i];
			o->ru = rule_first_match(r, &o->c, now);
		}
		m->decided += k;
	}
}
