/*
 * declog.c: the decision log, the proof. One JSON line per inspected
 * request (format version DECLOG_VERSION, README "The decision log"):
 * when, the request id, the client, route and purpose, the policy id and
 * digest and the consent snapshot version that decided it, the outcome,
 * and for every record its index, the deciding rule, the decision and the
 * evidence id of the consent row used, and for every person of the record
 * their own decision, rule and evidence. Never a subject id or record
 * content: with a key, each person appears as HMAC-SHA-256(key, id), which
 * only a key holder can link to someone (consentgate audit).
 *
 * Lines are built on the worker and written by logq's writer thread; the
 * queue is bounded, and by default a full queue refuses new inspected
 * requests (declog_admits) rather than lose proof.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "declog_internal.h"
#include "inspect_internal.h"
#include "logq_internal.h"
#include "proxy_internal.h"

static struct logq *declog_q;
static unsigned queue_cap = DECLOG_QUEUE_DEFAULT;
static bool queue_drop;
static unsigned char declog_key[DECLOG_KEY_MAX];
static size_t declog_keylen; /* 0: no pseudonyms */

/* HMAC-SHA-256 (RFC 2104) from SHA-256 states that have absorbed the key
   pads, one pair per thread, copied per subject: no key setup and no MAC
   parameter parsing per person. On a list so that declog_close frees all. */
struct mac_slot {
	EVP_MD_CTX *inner, *outer, *work;
	struct mac_slot *next;
};
static struct mac_slot *mac_slots;
static pthread_mutex_t mac_lock = PTHREAD_MUTEX_INITIALIZER;
static _Thread_local struct mac_slot *my_mac;

int
declog_read_key(const char *path, unsigned char *key, size_t *len, char *why,
                size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t n = 0;
	int rc = -1;

	if (fd < 0) {
		snprintf(why, cap, "cannot open '%s': %s", path,
		         strerror(errno));
		return -1;
	}
	for (;;) {
		unsigned char extra;
		ssize_t k = n < DECLOG_KEY_MAX
		                ? read(fd, key + n, DECLOG_KEY_MAX - n)
		                : read(fd, &extra, 1);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			snprintf(why, cap, "cannot read '%s': %s", path,
			         strerror(errno));
			goto out;
		}
		if (k == 0)
			break;
		if (n >= DECLOG_KEY_MAX) {
			snprintf(why, cap, "'%s': longer than %d bytes", path,
			         DECLOG_KEY_MAX);
			goto out;
		}
		n += (size_t)k;
	}
	if (n < DECLOG_KEY_MIN) {
		snprintf(why, cap,
		         "'%s': %zu bytes; a key needs at least %d (e.g. "
		         "head -c 32 /dev/urandom)",
		         path, n, DECLOG_KEY_MIN);
		goto out;
	}
	*len = n;
	rc = 0;
out:
	close(fd);
	return rc;
}

static void
mac_free(struct mac_slot *m)
{
	EVP_MD_CTX_free(m->inner);
	EVP_MD_CTX_free(m->outer);
	EVP_MD_CTX_free(m->work);
	m->inner = m->outer = m->work = NULL;
}

/* The key pads absorbed into m->inner and m->outer; 0 or -1. */
static int
mac_init(struct mac_slot *m, const unsigned char *key, size_t keylen)
{
	unsigned char k0[64], pad[64];
	unsigned int n = 0;
	int rc = -1;

	memset(k0, 0, sizeof(k0));
	m->inner = EVP_MD_CTX_new();
	m->outer = EVP_MD_CTX_new();
	m->work = EVP_MD_CTX_new();
	if (m->inner == NULL || m->outer == NULL || m->work == NULL)
		goto out;
	/* a key longer than the block is hashed first (RFC 2104 2.) */
	if (keylen > sizeof(k0)) {
		if (EVP_Digest(key, keylen, k0, &n, EVP_sha256(), NULL) != 1)
			goto out;
	} else {
		memcpy(k0, key, keylen);
	}
	for (size_t i = 0; i < sizeof(pad); i++)
		pad[i] = k0[i] ^ 0x36;
	if (EVP_DigestInit_ex(m->inner, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(m->inner, pad, sizeof(pad)) != 1)
		goto out;
	for (size_t i = 0; i < sizeof(pad); i++)
		pad[i] = k0[i] ^ 0x5c;
	if (EVP_DigestInit_ex(m->outer, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(m->outer, pad, sizeof(pad)) != 1)
		goto out;
	rc = 0;
out:
	OPENSSL_cleanse(k0, sizeof(k0));
	OPENSSL_cleanse(pad, sizeof(pad));
	if (rc != 0)
		mac_free(m);
	return rc;
}

static int
mac_hex(struct mac_slot *m, const char *id, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[32];
	unsigned int len = 0;

	if (m->inner == NULL || EVP_MD_CTX_copy_ex(m->work, m->inner) != 1 ||
	    EVP_DigestUpdate(m->work, id, n) != 1 ||
	    EVP_DigestFinal_ex(m->work, md, &len) != 1 ||
	    EVP_MD_CTX_copy_ex(m->work, m->outer) != 1 ||
	    EVP_DigestUpdate(m->work, md, sizeof(md)) != 1 ||
	    EVP_DigestFinal_ex(m->work, md, &len) != 1 || len != 32)
		return -1;
	for (size_t i = 0; i < 32; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[64] = '\0';
	return 0;
}

int
declog_pseudonym(const unsigned char *key, size_t keylen, const char *id,
                 size_t n, char *out)
{
	struct mac_slot m = {0};
	int rc = mac_init(&m, key, keylen) == 0 ? mac_hex(&m, id, n, out) : -1;

	mac_free(&m);
	return rc;
}

/* This thread's pseudonym of id with the configured key; 0 or -1. */
static int
pseudonym(const char *id, size_t n, char *out)
{
	if (my_mac == NULL) {
		struct mac_slot *s = calloc(1, sizeof(*s));

		if (s == NULL)
			return -1;
		mac_init(s, declog_key, declog_keylen); /* fails: NULLs */
		pthread_mutex_lock(&mac_lock);
		s->next = mac_slots;
		mac_slots = s;
		pthread_mutex_unlock(&mac_lock);
		my_mac = s;
	}
	return mac_hex(my_mac, id, n, out);
}

int
declog_set_key(const char *path, char *why, size_t cap)
{
	char probe[65];

	declog_keylen = 0;
	if (path == NULL)
		return 0;
	if (declog_read_key(path, declog_key, &declog_keylen, why, cap) != 0)
		return -1;
	/* fail at start, not on the first request */
	if (declog_pseudonym(declog_key, declog_keylen, "", 0, probe) != 0) {
		snprintf(why, cap, "HMAC-SHA-256 is not available");
		declog_keylen = 0;
		return -1;
	}
	return 0;
}

void
declog_set_queue(unsigned cap, bool drop)
{
	queue_cap = cap > 0 ? cap : DECLOG_QUEUE_DEFAULT;
	queue_drop = drop;
}

int
declog_open(const char *path)
{
	if (path == NULL || declog_q != NULL)
		return 0;
	/* the decision log is synced batch by batch: it is the proof */
	declog_q = logq_open(path, queue_cap, queue_drop, true);
	if (declog_q == NULL)
		return -1;
	atexit(declog_close); /* demo and serve: what is queued is written */
	return 0;
}

int
declog_reopen(void)
{
	return logq_reopen(declog_q);
}

bool
declog_enabled(void)
{
	return declog_q != NULL;
}

bool
declog_admits(void)
{
	return declog_q == NULL || queue_drop || !logq_full(declog_q);
}

void
declog_stats(uint64_t *depth, uint64_t *dropped)
{
	logq_stats(declog_q, depth, dropped);
}

void
declog_close(void)
{
	logq_close(declog_q);
	declog_q = NULL;
	pthread_mutex_lock(&mac_lock);
	while (mac_slots != NULL) {
		struct mac_slot *s = mac_slots;

		mac_slots = s->next;
		mac_free(s);
		free(s);
	}
	pthread_mutex_unlock(&mac_lock);
	OPENSSL_cleanse(declog_key, sizeof(declog_key));
	declog_keylen = 0;
}

static void
add_str(struct evbuffer *b, const char *s, size_t n)
{
	ADD_LIT(b, "\"");
	respond_json_str(b, s, n);
	ADD_LIT(b, "\"");
}

/* A decision-log entry put together on the stack and added to out in few
   pieces: a record has up to CG_MAX_SUBJECTS people, and an
   evbuffer_add_printf per field was a third of a pseudonymised request. */
struct entry {
	struct evbuffer *out;
	size_t n;
	char buf[512];
};

static void
put_flush(struct entry *e)
{
	evbuffer_add(e->out, e->buf, e->n);
	e->n = 0;
}

static void
put(struct entry *e, const char *s, size_t n)
{
	if (n == 0) /* an empty evidence id may have no pointer */
		return;
	if (e->n + n > sizeof(e->buf))
		put_flush(e);
	if (n > sizeof(e->buf)) {
		evbuffer_add(e->out, s, n);
		return;
	}
	memcpy(e->buf + e->n, s, n);
	e->n += n;
}

#define PUT_LIT(e, lit) put((e), (lit), sizeof(lit) - 1)

/* s as a JSON string; one that needs an escape (rare in ids and rule
   names) goes through respond_json_str. */
static void
put_str(struct entry *e, const char *s, size_t n)
{
	size_t i = 0;

	while (i < n && (unsigned char)s[i] >= 0x20 && s[i] != '"' &&
	       s[i] != '\\')
		i++;
	if (i < n) {
		put_flush(e);
		add_str(e->out, s, n);
		return;
	}
	PUT_LIT(e, "\"");
	put(e, s, n);
	PUT_LIT(e, "\"");
}

static void
put_uint(struct entry *e, unsigned v)
{
	char num[12];
	int i = sizeof(num);

	do
		num[--i] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	put(e, num + i, sizeof(num) - (size_t)i);
}

void
declog_record(struct evbuffer *trail, const struct verdict_record *rec)
{
	const struct policy_decision *d = &rec->d;
	const struct cg_slice *subj = NULL;
	struct entry e; /* not zeroed: 512 bytes a record, log off too */
	unsigned n = 0;

	if (trail == NULL)
		return;
	e.out = trail;
	e.n = 0;
	if (rec->scan != NULL) {
		subj = rec->scan->subjects;
		n = rec->scan->nsubjects;
	} else if (rec->header_subject.len > 0) {
		subj = &rec->header_subject;
		n = 1;
	}
	if (n > d->nevidence)
		n = d->nevidence;
	if (evbuffer_get_length(trail) > 0)
		PUT_LIT(&e, ",");
	PUT_LIT(&e, "[");
	put_uint(&e, rec->index);
	if (d->allow)
		PUT_LIT(&e, ",\"allow\",");
	else
		PUT_LIT(&e, ",\"deny\",");
	put_str(&e, d->rule_id, strlen(d->rule_id));
	PUT_LIT(&e, ",");
	put_str(&e, d->consent.evidence.ptr, d->consent.evidence.len);
	/* every person of the record, in order: several people, or one
	 * with a pseudonym to find them by */
	if (n > 1 || (n == 1 && declog_keylen > 0)) {
		PUT_LIT(&e, ",[");
		for (unsigned i = 0; i < n; i++) {
			char pn[65];

			if (i > 0)
				PUT_LIT(&e, ",");
			if (d->allows[i])
				PUT_LIT(&e, "[\"allow\",");
			else
				PUT_LIT(&e, "[\"deny\",");
			put_str(&e, d->rules[i], strlen(d->rules[i]));
			PUT_LIT(&e, ",");
			put_str(&e, d->evidence[i].ptr, d->evidence[i].len);
			if (declog_keylen > 0) {
				/* never the id itself, also when HMAC fails */
				if (pseudonym(subj[i].ptr, subj[i].len, pn) !=
				    0)
					strcpy(pn, "(unavailable)");
				PUT_LIT(&e, ",");
				put_str(&e, pn, strlen(pn));
			}
			PUT_LIT(&e, "]");
		}
		PUT_LIT(&e, "]");
	}
	PUT_LIT(&e, "]");
	put_flush(&e);
}

void
declog_write(struct worker *w, uint64_t conn_id, const char *request_id,
             const char *client, const struct policy_route *route,
             const struct snapshot *snap, const struct inspect_result *r,
             const char *outcome, int status)
{
	const struct policy *p = snapshot_policy(snap);
	struct evbuffer *b;
	char stamp[32];
	const char *name = route_name(route);

	if (declog_q == NULL)
		return;
	if (w->declog == NULL && (w->declog = evbuffer_new()) == NULL)
		return;
	b = w->declog;
	logq_stamp(stamp);
	evbuffer_add_printf(b, "{\"v\":%d,\"time\":\"%s\",\"request_id\":",
	                    DECLOG_VERSION, stamp);
	add_str(b, request_id, strlen(request_id));
	evbuffer_add_printf(
	    b, ",\"conn\":%llu,\"client\":", (unsigned long long)conn_id);
	/* an IPv6 address comes quoted for Forwarded: not here */
	if (client[0] == '"' && strlen(client) >= 2)
		add_str(b, client + 1, strlen(client) - 2);
	else
		add_str(b, client, strlen(client));
	ADD_LIT(b, ",\"route\":");
	add_str(b, name, strlen(name));
	evbuffer_add_printf(
	    b, ",\"purpose\":\"%s\",\"policy\":", route_purpose(route));
	add_str(b, policy_id(p), strlen(policy_id(p)));
	evbuffer_add_printf(
	    b,
	    ",\"digest\":\"%s\",\"snapshot\":%llu,\"outcome\":\"%s\","
	    "\"status\":%d,\"records\":%u,\"kept\":%u,\"dropped\":%u,"
	    "\"decisions\":[",
	    policy_digest(p),
	    (unsigned long long)consent_version(snapshot_consent(snap)),
	    outcome, status, r->records, r->kept, r->dropped);
	if (r->trail)
		evbuffer_add_buffer(b, r->trail);
	ADD_LIT(b, "]}\n");
	logq_push(declog_q, b);
}

void
declog_worker_free(struct worker *w)
{
	if (w->declog)
		evbuffer_free(w->declog);
	w->declog = NULL;
}
