/*
 * inspect.c: the I/O of an inspected request around its verdict
 * (policy/verdict.c decides everything): inflate a gzip body, split a
 * streamed NDJSON body into lines as it arrives, keep the allowed
 * records' original bytes in evbuffers, log each decision, and write the
 * Consent-* headers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <isa-l/igzip_lib.h>

#include "declog_internal.h"
#include "inspect_internal.h"
#include "proxy_internal.h"

#define INFLATE_CHUNK (64u << 10) /* bytes inflated per step */

void
inspect_result_init(struct inspect_result *r)
{
	memset(r, 0, offsetof(struct inspect_result, v));
}

void
inspect_result_reset(struct inspect_result *r)
{
	if (r->held)
		verdict_reset(&r->v);
	if (r->trail)
		evbuffer_free(r->trail);
	inspect_result_init(r);
}

/* A record the verdict decided: its decision-log entry, its rule's count. */
static void
record_decided(struct inspect_result *r, const struct verdict_record *rec)
{
	declog_record(r->trail, rec);
	metrics_tally(&r->rules, rec->d.rule_id, rec->d.allow);
}

static int
refuse(struct inspect_result *r, int status, const char *detail)
{
	r->error = detail;
	r->error_json[0] = '\0';
	return status;
}

/* The verdict refused: its status, detail and problem members. */
static int
refused(struct inspect_result *r)
{
	r->records = r->v.records;
	r->kept = r->v.kept;
	r->dropped = r->v.dropped;
	r->error = r->v.detail;
	verdict_problem_members(&r->v, r->error_json, sizeof(r->error_json));
	return r->v.status;
}

static void
counted(struct inspect_result *r)
{
	r->records = r->v.records;
	r->kept = r->v.kept;
	r->dropped = r->v.dropped;
}

/* The inflated size a gzip member announces (ISIZE, mod 2^32): only a hint
   for the first reservation, never trusted as a bound. */
static size_t
inflate_hint(struct evbuffer *body, size_t inlen)
{
	unsigned char t[4];
	struct evbuffer_ptr p;

	if (inlen < 18 ||
	    evbuffer_ptr_set(body, &p, inlen - 4, EVBUFFER_PTR_SET) != 0 ||
	    evbuffer_copyout_from(body, &p, t, 4) != 4)
		return 0;
	return (size_t)t[0] | (size_t)t[1] << 8 | (size_t)t[2] << 16 |
	       (size_t)t[3] << 24;
}

/*
 * ISA-L's igzip, fed the body's chains in place (no pullup of the
 * compressed bytes) and writing into reservations that never exceed the
 * bound, so a bomb stops one byte past it. The first reservation is sized
 * from ISIZE so that a body inflates into one contiguous chain and the
 * scanner's pullup copies nothing.
 */
int
inspect_inflate(struct evbuffer *body, size_t max_body, int *status,
                const char **detail)
{
	struct evbuffer *out = evbuffer_new();
	struct inflate_state *st = malloc(sizeof(*st));
	size_t inlen = evbuffer_get_length(body), bound, hint, total = 0;
	struct evbuffer_iovec *in = NULL;
	int n, i = 0, rc = -1;

	*status = 0;
	n = evbuffer_peek(body, -1, NULL, NULL, 0);
	if (n > 0 && (in = malloc((size_t)n * sizeof(*in))) != NULL)
		n = evbuffer_peek(body, -1, NULL, in, n);
	if (out == NULL || st == NULL || (n > 0 && in == NULL)) {
		*status = 500;
		*detail = "out of memory";
		goto done;
	}
	bound = (inlen + 1) * CG_DEFAULT_MAX_INFLATE_RATIO;
	if (bound > max_body)
		bound = max_body;
	hint = inflate_hint(body, inlen);
	hint = hint < INFLATE_CHUNK ? INFLATE_CHUNK : hint + 1;
	isal_inflate_init(st);
	st->crc_flag = ISAL_GZIP;
	while (st->block_state != ISAL_BLOCK_FINISH) {
		struct evbuffer_iovec v;
		size_t want = bound + 1 - total, produced;
		int irc;

		if (st->avail_in == 0 && i < n) {
			st->next_in = in[i].iov_base;
			st->avail_in = (uint32_t)in[i].iov_len;
			i++;
		}
		if (want > hint)
			want = hint;
		if (want > UINT32_MAX)
			want = UINT32_MAX;
		hint = INFLATE_CHUNK;
		if (evbuffer_reserve_space(out, (ev_ssize_t)want, &v, 1) < 1) {
			*status = 500;
			*detail = "out of memory";
			goto done;
		}
		if (v.iov_len > want)
			v.iov_len = want;
		st->next_out = v.iov_base;
		st->avail_out = (uint32_t)v.iov_len;
		irc = isal_inflate(st);
		produced = v.iov_len - st->avail_out;
		v.iov_len = produced;
		evbuffer_commit_space(out, &v, 1);
		total += produced;
		if (irc < 0) {
			*status = 400;
			*detail = "the gzip body is corrupt or truncated";
			goto done;
		}
		if (total > bound) {
			*status = 413;
			*detail = "the inflated body is larger than the limit";
			goto done;
		}
		if (st->block_state != ISAL_BLOCK_FINISH && produced == 0 &&
		    st->avail_in == 0 && i == n) {
			*status = 400;
			*detail = "the gzip body is truncated";
			goto done;
		}
	}
	if (st->avail_in != 0 || i < n) {
		*status = 400;
		*detail = "bytes after the end of the gzip body";
		goto done;
	}
	evbuffer_drain(body, inlen);
	evbuffer_add_buffer(body, out);
	rc = 0;
done:
	free(in);
	free(st);
	if (out)
		evbuffer_free(out);
	return rc;
}

int
inspect_begin(struct inspect_result *r, struct snapshot *snap,
              const struct policy_route *route, const struct http1_request *req,
              unsigned max_staleness_s)
{
	struct verdict_header hv[CG_MAX_HEADERS];
	struct verdict_request vr = {hv, req->nheaders, (int64_t)time(NULL),
	                             max_staleness_s};

	inspect_result_reset(r);
	if (!r->held) {
		verdict_init(&r->v);
		r->held = true;
	}
	r->active = true;
	r->shadow = route_shadow(route);
	r->would = 0;
	if (declog_enabled())
		r->trail = evbuffer_new();
	/* the verdict's plain view of the head (policy/ sees no http1) */
	for (unsigned i = 0; i < req->nheaders; i++) {
		hv[i].name = req->headers[i].name;
		hv[i].value = req->headers[i].value;
	}
	if (verdict_begin(&r->v, route, snapshot_consent(snap), &vr) != 0) {
		if (r->v.decided)
			record_decided(r, &r->v.rec);
		return refused(r);
	}
	r->decided = r->v.decided;
	if (r->decided)
		record_decided(r, &r->v.rec);
	/* shadow: the whole body is forwarded as it came, so it is read
	   whole (up to max_body_bytes) and decided aside */
	r->streaming = r->v.streamable && !r->shadow;
	counted(r);
	return 0;
}

#define PIN_MIN 4096 /* a run shorter than this is copied, not pinned */
#define PIN_PIECES 8 /* chains a pinned run may span */

/*
 * A run of kept lines forwarded by reference: pin holds multicast
 * references to the chains of the body buffer the run lies in (libevent
 * makes those chains immutable and keeps them alive), and each piece of the
 * run is added to the output with evbuffer_add_reference. The last piece
 * written (or freed) upstream releases the pin.
 */
struct feed_pin {
	struct evbuffer *chains;
	unsigned refs;
};

static void
pin_release(const void *data, size_t len, void *arg)
{
	struct feed_pin *pin = arg;

	(void)data;
	(void)len;
	if (--pin->refs == 0) {
		if (pin->chains != NULL) /* NULL: evbuffer_new failed */
			evbuffer_free(pin->chains);
		free(pin);
	}
}

/* The run's pieces added to out by reference; -1 when it cannot be (out
 * is then unchanged). */
static int
feed_pin(struct evbuffer *in, struct evbuffer *out, size_t run)
{
	struct evbuffer_iovec vec[PIN_PIECES];
	struct feed_pin *pin;
	size_t left = run;
	int n = evbuffer_peek(in, (ev_ssize_t)run, NULL, vec, PIN_PIECES);

	if (n < 1 || n > PIN_PIECES || (pin = malloc(sizeof(*pin))) == NULL)
		return -1;
	pin->refs = 1; /* ours until every piece is added */
	/* always a fresh buffer: before 2.1.13, libevent's
	 * add_buffer_reference into an empty buffer that still has a chain
	 * uses it after freeing it (CVE-2026-63381); a new one has none */
	pin->chains = evbuffer_new();
	if (pin->chains == NULL ||
	    evbuffer_add_buffer_reference(pin->chains, in) != 0) {
		pin_release(NULL, 0, pin);
		return -1;
	}
	for (int i = 0; i < n; i++) {
		size_t len = vec[i].iov_len < left ? vec[i].iov_len : left;

		pin->refs++;
		if (evbuffer_add_reference(out, vec[i].iov_base, len,
		                           pin_release, pin) != 0) {
			/* the rest by copy: out must hold the whole run */
			pin->refs--;
			for (; i < n && left > 0; i++, left -= len) {
				len = vec[i].iov_len < left ? vec[i].iov_len
				                            : left;
				if (evbuffer_add(out, vec[i].iov_base, len) !=
				    0)
					break;
			}
			pin_release(NULL, 0, pin);
			return left == 0 ? 0 : -2;
		}
		left -= len;
	}
	pin_release(NULL, 0, pin);
	return 0;
}

/*
 * Move the run of kept lines at the front of in to out, by reference: the
 * partial chains at its ends too (evbuffer_remove_buffer would copy them,
 * and a run of a long read chain is nearly always partial). A short run is
 * copied: pinning costs a few allocations. Returns -1 when out of memory
 * (then part of the run may be in out: the request must fail).
 */
static int
feed_flush(struct evbuffer *in, struct evbuffer *out, size_t *run)
{
	size_t n = *run;
	int rc = -1;

	if (n == 0)
		return 0;
	*run = 0;
	if (n >= PIN_MIN)
		rc = feed_pin(in, out, n);
	if (rc == -2)
		return -1;
	if (rc == 0)
		return evbuffer_drain(in, n);
	return evbuffer_remove_buffer(in, out, n) == (int)n ? 0 : -1;
}

struct feed_line {
	const char *ptr;
	size_t len;
};

/*
 * Stage the line at line (len bytes and its LF, lying in the chain that
 * ends at chain_end) and the complete lines after it in the same chain
 * that are within max_record, up to the verdict's window, so that their
 * subjects are looked up in one batch. The next line ends are found with
 * memchr in the chain, not searched for in the evbuffer. Their bytes stay
 * where they are until decided: moving or draining the lines before them
 * does not move them. Returns the number staged.
 */
static unsigned
feed_stage(struct verdict *v, const char *line, size_t len,
           const char *chain_end, size_t max_record, struct feed_line *ahead)
{
	unsigned k = 0;

	while (k < VERDICT_WINDOW && verdict_stage_line(v, line, len) == 1) {
		const char *next = line + len + 1, *nl;

		ahead[k].ptr = line;
		ahead[k++].len = len;
		if (next >= chain_end)
			break;
		nl = memchr(next, '\n', (size_t)(chain_end - next));
		if (nl == NULL || (size_t)(nl - next) > max_record)
			break;
		line = next;
		len = (size_t)(nl - next);
	}
	return k;
}

/*
 * A line inside one chain is decided where it lies (no pullup). Kept lines
 * that are exactly their record and its newline stay at the front of in
 * as a run, moved to out in one piece when a dropped line or the end of
 * the input breaks it; only a record the verdict trimmed is copied.
 */
int
inspect_feed(struct inspect_result *r, struct snapshot *snap,
             const struct policy_route *route, struct evbuffer *in,
             struct evbuffer *out, bool final, size_t max_record)
{
	size_t run = 0; /* kept bytes at the front of in, not moved yet */
	struct feed_line ahead[VERDICT_WINDOW]; /* staged, not decided */
	unsigned nahead = 0, next = 0;
	int status = 0;

	for (;;) {
		size_t len = evbuffer_get_length(in) - run, n;
		struct evbuffer_ptr at, nl;
		struct evbuffer_iovec v;
		const struct verdict_record *rec;
		const char *line;
		bool has_nl;
		int rc;

		if (next < nahead) {
			/* the next staged line, at the front of in after run */
			line = ahead[next].ptr;
			n = ahead[next++].len;
			has_nl = true;
			rc = verdict_feed_next(&r->v, &rec);
			goto decided;
		}
		evbuffer_ptr_set(in, &at, run, EVBUFFER_PTR_SET);
		nl = evbuffer_search(in, "\n", 1, &at);
		has_nl = nl.pos >= 0;
		n = has_nl ? (size_t)nl.pos - run : len;
		if (n > max_record) {
			status =
			    refuse(r, 413, "a record is larger than the limit");
			goto out;
		}
		if (!has_nl && (!final || len == 0))
			break;
		if (has_nl &&
		    evbuffer_peek(in, (ev_ssize_t)n + 1, &at, &v, 1) == 1) {
			line = v.iov_base;
			nahead = feed_stage(&r->v, line, n, line + v.iov_len,
			                    max_record, ahead);
			next = 0;
		} else {
			if (feed_flush(in, out, &run) != 0)
				goto oom;
			line = (const char *)evbuffer_pullup(
			    in, (ev_ssize_t)(n + has_nl));
			nahead = next = 0;
		}
		if (next < nahead) {
			next++;
			rc = verdict_feed_next(&r->v, &rec);
		} else {
			rc = verdict_feed_line(&r->v, line, n, &rec);
		}
	decided:
		if (rec != NULL)
			record_decided(r, rec);
		if (rc != 0) {
			status = refused(r);
			goto out;
		}
		if (rec != NULL && rec->d.allow && has_nl && rec->start == 0 &&
		    rec->end == n) {
			run += n + 1;
			continue;
		}
		if (feed_flush(in, out, &run) != 0)
			goto oom;
		if (rec != NULL && rec->d.allow &&
		    (evbuffer_add(out, line + rec->start,
		                  rec->end - rec->start) != 0 ||
		     ADD_LIT(out, "\n") != 0))
			goto oom;
		evbuffer_drain(in, n + has_nl);
	}
	if (final)
		verdict_end(&r->v);
	counted(r);
out:
	if (feed_flush(in, out, &run) != 0 && status == 0)
		status = refuse(r, 500, "out of memory");
	return status;
oom:
	/* a kept record not forwarded whole: never a silent loss */
	status = refuse(r, 500, "out of memory");
	goto out;
}

int
inspect_run(struct inspect_result *r, struct snapshot *snap,
            const struct policy_route *route, const struct http1_request *req,
            struct evbuffer *body, size_t max_body)
{
	const struct verdict_record *rec;
	struct evbuffer *kept = NULL;
	struct evbuffer_iovec vec;
	const char *buf, *detail = NULL;
	size_t len;
	int rc, status = 0;

	if (r->v.gzip) {
		if (inspect_inflate(body, max_body, &status, &detail) != 0)
			return refuse(r, status, detail);
		r->inflated = true;
	}
	len = evbuffer_get_length(body);
	buf = len ? (const char *)evbuffer_pullup(body, -1) : "";
	if (verdict_body(&r->v, buf, len) != 0)
		return refused(r);
	while ((rc = verdict_next(&r->v, &rec)) == 1)
		record_decided(r, rec);
	if (rc < 0) {
		if (rec != NULL)
			record_decided(r, rec);
		return refused(r);
	}
	verdict_end(&r->v);
	counted(r);
	/* the same rebuild as `consentgate eval --output kept` */
	kept = evbuffer_new();
	if (kept == NULL ||
	    evbuffer_reserve_space(kept, (ev_ssize_t)len + 1, &vec, 1) < 1) {
		status = refuse(r, 500, "out of memory");
		goto out;
	}
	vec.iov_len = verdict_rebuild(&r->v, vec.iov_base);
	evbuffer_commit_space(kept, &vec, 1);
	evbuffer_drain(body, len);
	evbuffer_add_buffer(body, kept);
out:
	if (kept)
		evbuffer_free(kept);
	return status;
}

void
inspect_request_headers(const struct inspect_result *r, struct evbuffer *h,
                        bool streaming)
{
	const struct verdict *v = &r->v;

	evbuffer_add_printf(h,
	                    "Consent-Purpose: %s\r\n"
	                    "Consent-Policy: %s\r\n"
	                    "Consent-Snapshot: %s\r\n",
	                    v->consent_purpose, v->consent_policy,
	                    v->consent_snapshot);
	if (v->content_usage != NULL)
		evbuffer_add_printf(h, "Content-Usage: %s\r\n",
		                    v->content_usage);
	if (streaming)
		ADD_LIT(h, "Trailer: Consent-Result\r\n");
	else
		inspect_response_headers(r, h);
}

void
inspect_response_headers(const struct inspect_result *r, struct evbuffer *o)
{
	if (r->shadow && r->would >= 400)
		evbuffer_add_printf(o, "Consent-Result: refused=%d, shadow\r\n",
		                    r->would);
	else
		evbuffer_add_printf(
		    o, "Consent-Result: kept=%u, dropped=%u%s\r\n", r->kept,
		    r->dropped, r->shadow ? ", shadow" : "");
}

bool
inspect_all_dropped(const struct inspect_result *r)
{
	return r->held && r->v.status == 204;
}

bool
inspect_drops_header(const struct inspect_result *r, struct cg_slice name)
{
	return (r->inflated && cg_slice_ieq(name, "Content-Encoding")) ||
	       cg_slice_ieq(name, "Content-Usage");
}
