/*
 * reqid.c: the request id that follows a request through the access log,
 * the decision log, the upstream and the response. A client's own id is
 * taken only when it cannot break a log line or a header (visible ASCII,
 * bounded); a made one comes from a per-thread generator seeded once from
 * the kernel (ids must not repeat, they need not be secret).
 */
#include <string.h>
#include <sys/random.h>

#include "reqid_internal.h"

static bool
visible(struct cg_slice s)
{
	if (s.ptr == NULL || s.len == 0 || s.len > REQID_MAX)
		return false;
	for (size_t i = 0; i < s.len; i++)
		if ((unsigned char)s.ptr[i] < 0x21 ||
		    (unsigned char)s.ptr[i] > 0x7e)
			return false;
	return true;
}

static bool
lower_hex(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((p[i] >= '0' && p[i] <= '9') ||
		      (p[i] >= 'a' && p[i] <= 'f')))
			return false;
	return true;
}

static bool
all_zero(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != '0')
			return false;
	return true;
}

/* W3C Trace Context 3.2: 2 hex version (not ff), '-', 32 hex trace id
   (not all zero), '-', 16 hex parent id (not all zero), '-', 2 hex flags;
   a later version may add fields after another '-'. */
static bool
trace_id(struct cg_slice t)
{
	const char *p = t.ptr;

	if (p == NULL || t.len < 55 || !lower_hex(p, 2) ||
	    memcmp(p, "ff", 2) == 0 || p[2] != '-' || p[35] != '-' ||
	    p[52] != '-' || !lower_hex(p + 3, 32) || all_zero(p + 3, 32) ||
	    !lower_hex(p + 36, 16) || all_zero(p + 36, 16) ||
	    !lower_hex(p + 53, 2))
		return false;
	if (memcmp(p, "00", 2) == 0)
		return t.len == 55;
	return t.len == 55 || p[55] == '-';
}

/* xoshiro256** (Blackman, Vigna), one state per thread */
static _Thread_local uint64_t rng[4];
static _Thread_local bool seeded;

static uint64_t
rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t
next(void)
{
	uint64_t r = rotl(rng[1] * 5, 7) * 9, t = rng[1] << 17;

	rng[2] ^= rng[0];
	rng[3] ^= rng[1];
	rng[1] ^= rng[2];
	rng[0] ^= rng[3];
	rng[2] ^= t;
	rng[3] = rotl(rng[3], 45);
	return r;
}

void
reqid_make(char *out)
{
	static const char hex[] = "0123456789abcdef";

	if (!seeded) {
		/* a failed getrandom leaves a state of the address and time:
		   still distinct per thread */
		if (getrandom(rng, sizeof(rng), 0) != (ssize_t)sizeof(rng)) {
			rng[0] = (uint64_t)(uintptr_t)&rng;
			rng[1] = (uint64_t)(uintptr_t)out ^ 0x9e3779b97f4a7c15u;
		}
		rng[2] |= 1;
		seeded = true;
	}
	for (int w = 0; w < 2; w++) {
		uint64_t v = next();

		for (int i = 0; i < 16; i++)
			out[w * 16 + i] = hex[(v >> (60 - 4 * i)) & 15];
	}
	out[32] = '\0';
}

enum reqid_source
reqid_pick(struct cg_slice xrid, struct cg_slice traceparent, char *out)
{
	if (visible(xrid)) {
		memcpy(out, xrid.ptr, xrid.len);
		out[xrid.len] = '\0';
		return REQID_TAKEN;
	}
	if (trace_id(traceparent)) {
		memcpy(out, traceparent.ptr + 3, 32);
		out[32] = '\0';
		return REQID_TRACEPARENT;
	}
	reqid_make(out);
	return REQID_MADE;
}
