/*
 * pseudonym.c: how the decision log names a person (pseudonym_internal.h):
 * HMAC-SHA-256(key, id) in hex, which only a key holder can link to
 * someone. The log (declog.c) and consentgate audit (cmd_audit.c), which
 * searches the log for one person, compute it here alike; the key file is
 * read here for both, and for the configuration check.
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

#include "pseudonym_internal.h"

static unsigned char pseudonym_key[PSEUDONYM_KEY_MAX];
static size_t pseudonym_keylen; /* 0: no pseudonyms */

/* HMAC-SHA-256 (RFC 2104) from SHA-256 states that have absorbed the key
   pads, one pair per thread, copied per subject: no key setup and no MAC
   parameter parsing per person. On a list so that pseudonym_clear frees all. */
struct mac_slot {
	EVP_MD_CTX *inner, *outer, *work;
	struct mac_slot *next;
};
static struct mac_slot *mac_slots;
static pthread_mutex_t mac_lock = PTHREAD_MUTEX_INITIALIZER;
static _Thread_local struct mac_slot *my_mac;

int
pseudonym_read_key(const char *path, unsigned char *key, size_t *len, char *why,
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
		ssize_t k = n < PSEUDONYM_KEY_MAX
		                ? read(fd, key + n, PSEUDONYM_KEY_MAX - n)
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
		if (n >= PSEUDONYM_KEY_MAX) {
			snprintf(why, cap, "'%s': longer than %d bytes", path,
			         PSEUDONYM_KEY_MAX);
			goto out;
		}
		n += (size_t)k;
	}
	if (n < PSEUDONYM_KEY_MIN) {
		snprintf(why, cap,
		         "'%s': %zu bytes; a key needs at least %d (e.g. "
		         "head -c 32 /dev/urandom)",
		         path, n, PSEUDONYM_KEY_MIN);
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
pseudonym_hmac(const unsigned char *key, size_t keylen, const char *id,
               size_t n, char *out)
{
	struct mac_slot m = {0};
	int rc = mac_init(&m, key, keylen) == 0 ? mac_hex(&m, id, n, out) : -1;

	mac_free(&m);
	return rc;
}

/* This thread's pseudonym of id with the configured key; 0 or -1. */
int
pseudonym_of(const char *id, size_t n, char *out)
{
	if (my_mac == NULL) {
		struct mac_slot *s = calloc(1, sizeof(*s));

		if (s == NULL)
			return -1;
		mac_init(s, pseudonym_key, pseudonym_keylen); /* fails: NULLs */
		pthread_mutex_lock(&mac_lock);
		s->next = mac_slots;
		mac_slots = s;
		pthread_mutex_unlock(&mac_lock);
		my_mac = s;
	}
	return mac_hex(my_mac, id, n, out);
}

int
pseudonym_set_key(const char *path, char *why, size_t cap)
{
	char probe[65];

	pseudonym_keylen = 0;
	if (path == NULL)
		return 0;
	if (pseudonym_read_key(path, pseudonym_key, &pseudonym_keylen, why,
	                       cap) != 0)
		return -1;
	/* fail at start, not on the first request */
	if (pseudonym_hmac(pseudonym_key, pseudonym_keylen, "", 0, probe) !=
	    0) {
		snprintf(why, cap, "HMAC-SHA-256 is not available");
		pseudonym_keylen = 0;
		return -1;
	}
	return 0;
}

bool
pseudonym_enabled(void)
{
	return pseudonym_keylen > 0;
}

void
pseudonym_clear(void)
{
	pthread_mutex_lock(&mac_lock);
	while (mac_slots != NULL) {
		struct mac_slot *s = mac_slots;

		mac_slots = s->next;
		mac_free(s);
		free(s);
	}
	pthread_mutex_unlock(&mac_lock);
	my_mac = NULL; /* this thread's; the others have stopped */
	OPENSSL_cleanse(pseudonym_key, sizeof(pseudonym_key));
	pseudonym_keylen = 0;
}
