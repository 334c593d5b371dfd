/*
 * consent_snapshot.c: the consent snapshot image (consent_internal.h): lay
 * an import's working table out as one, check one before trusting it,
 * open a mapped one, and write one atomically. A table imported from CSV
 * and a table opened from a file are the same image, so they share one
 * lookup path (consent.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "consent_internal.h"

#define CHECKSUM_SEED UINT64_C(0x2d358dccaa6c78a5)
#define BIG_IMAGE (1u << 20) /* bytes from which images use mmap */
#define BUILD_AHEAD 16       /* people whose slot fetch is in flight */

#ifdef CONSENT_TEST_HOOKS
uint64_t consent_hash_mask = UINT64_MAX;
#endif

uint64_t
consent_snapshot_checksum(const struct consent_snap_header *h)
{
	return consent_hash_raw(
	    h, offsetof(struct consent_snap_header, checksum), CHECKSUM_SEED);
}

void
consent_snapshot_bind(struct consent_table *t)
{
	const struct consent_snap_header *h = (const void *)t->base;
	t->h = h;
	t->purposes = t->base + h->purposes_off;
	t->slots = (const uint64_t *)(const void *)(t->base + h->slots_off);
	t->blobs = t->base + h->blobs_off;
	t->nbuckets = h->nbuckets;
	t->blobs_size = h->blobs_size;
	t->seed = h->hash_seed;
	t->version = h->version;
}

void *
consent_snapshot_big_alloc(size_t size)
{
	if (size < BIG_IMAGE)
		return calloc(1, size ? size : 1);
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
	               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
#ifdef MADV_HUGEPAGE
	/* Fewer TLB misses on random lookups into a large table. */
	(void)madvise(p, size, MADV_HUGEPAGE);
#endif
	return p;
}

void
consent_snapshot_big_free(void *p, size_t size)
{
	if (p == NULL)
		return;
	if (size < BIG_IMAGE)
		free(p);
	else
		munmap(p, size);
}

static int
cmp_row_purpose(const void *a, const void *b)
{
	const struct consent_wrow *x = *(const struct consent_wrow *const *)a;
	const struct consent_wrow *y = *(const struct consent_wrow *const *)b;
	return (int)x->purpose - (int)y->purpose;
}

/* Person i's hash, its slot's fetch started: slots land anywhere, and
 * fetching BUILD_AHEAD people before the write overlaps the misses. */
static uint64_t
slot_prefetch(const struct consent_work *w, uint64_t i, const uint64_t *slots,
              uint64_t nbuckets)
{
	const struct consent_wperson *p = &w->people[i];
	uint64_t h = consent_hash(consent_ref_ptr(w, p->subj), p->subj_len,
	                          CONSENT_HASH_SEED);

	__builtin_prefetch(&slots[consent_bucket(h, nbuckets)], 1);
	return h;
}

struct consent_table *
consent_snapshot_build(struct consent_work *w, int64_t now)
{
	struct consent_table *t = NULL;
	struct consent_snap_header *h;
	uint64_t nbuckets, blobs_size = 0, rows = 0;
	size_t purposes_size, size = 0;
	uint8_t *img = NULL;

	/* not needed any more: lower the peak */
	consent_snapshot_big_free(w->wslots, w->nwslots * sizeof(uint64_t));
	w->wslots = NULL;
	nbuckets = w->npeople * CONSENT_LOAD_NUM / CONSENT_LOAD_DEN + 1;
	for (uint64_t i = 0; i < w->npeople; i++) {
		struct consent_wperson *p = &w->people[i];
		size_t ev = 0;
		for (uint32_t j = p->head; j != 0; j = w->rows[j - 1].next)
			ev += w->rows[j - 1].ev_len;
		p->latest_sec = (int64_t)blobs_size; /* now: the blob offset */
		blobs_size += sizeof(struct consent_blob_head) +
		              consent_pad8(p->subj_len) +
		              p->nrows * sizeof(struct consent_blob_row) +
		              consent_pad8(ev);
		rows += p->nrows;
	}
	if (blobs_size / 8 > CONSENT_SLOT_OFF_MASK)
		goto fail;
	purposes_size = w->npurposes * 8;
	for (unsigned i = 0; i < w->npurposes; i++)
		purposes_size += w->purpose_len[i] + 1u;
	purposes_size = consent_pad8(purposes_size);

	size_t purposes_off = sizeof(*h);
	size_t slots_off = (purposes_off + purposes_size + 63) & ~(size_t)63;
	size_t blobs_off = slots_off + nbuckets * 8;
	size = blobs_off + blobs_size;
	img = consent_snapshot_big_alloc(size);
	t = calloc(1, sizeof(*t));
	if (img == NULL || t == NULL)
		goto fail;

	h = (struct consent_snap_header *)(void *)img;
	memcpy(h->magic, CONSENT_MAGIC, 8);
	h->format = CONSENT_FORMAT;
	h->header_size = sizeof(*h);
	h->version = (uint64_t)now;
	h->created_at = now;
	h->people = w->npeople;
	h->rows = rows;
	h->file_size = size;
	h->nbuckets = nbuckets;
	h->slots_off = slots_off;
	h->blobs_off = blobs_off;
	h->blobs_size = blobs_size;
	h->purposes_off = purposes_off;
	h->purposes_size = purposes_size;
	h->npurposes = w->npurposes;
	h->endian = CONSENT_ENDIAN;
	h->hash_seed = CONSENT_HASH_SEED;
	h->checksum = consent_snapshot_checksum(h);

	uint8_t *pp = img + purposes_off;
	uint32_t name_off = w->npurposes * 8;
	for (unsigned i = 0; i < w->npurposes; i++) {
		uint32_t ent[2] = {name_off, w->purpose_len[i]};
		memcpy(pp + i * 8, ent, 8);
		memcpy(pp + name_off, w->purpose[i], w->purpose_len[i] + 1u);
		name_off += w->purpose_len[i] + 1u;
	}

	uint64_t *slots = (uint64_t *)(void *)(img + slots_off);
	uint8_t *blobs = img + blobs_off;
	const struct consent_wrow *sorted[CG_MAX_CONSENT_PURPOSES];
	uint64_t ahead[BUILD_AHEAD]; /* hashes of the people next in line */
	for (uint64_t i = 0; i < w->npeople && i < BUILD_AHEAD; i++)
		ahead[i] = slot_prefetch(w, i, slots, nbuckets);
	for (uint64_t i = 0; i < w->npeople; i++) {
		struct consent_wperson *p = &w->people[i];
		const char *subj = consent_ref_ptr(w, p->subj);
		uint8_t *blob = blobs + p->latest_sec;
		struct consent_blob_head bh = {
		    p->subj_len, p->nrows, {p->juris[0], p->juris[1]}, {0}};
		unsigned n = 0;

		memcpy(blob, &bh, sizeof(bh));
		memcpy(blob + sizeof(bh), subj, p->subj_len);
		for (uint32_t j = p->head; j != 0; j = w->rows[j - 1].next)
			sorted[n++] = &w->rows[j - 1];
		qsort(sorted, n, sizeof(sorted[0]), cmp_row_purpose);
		size_t row_at = sizeof(bh) + consent_pad8(p->subj_len);
		size_t ev_at = row_at + n * sizeof(struct consent_blob_row);
		for (unsigned j = 0; j < n; j++) {
			struct consent_blob_row br = {
			    .updated_at = sorted[j]->sec,
			    .ev_off = (uint32_t)ev_at,
			    .ev_len = sorted[j]->ev_len,
			    .purpose = sorted[j]->purpose,
			    .status = sorted[j]->status,
			};
			memcpy(blob + row_at + j * sizeof(br), &br, sizeof(br));
			memcpy(blob + ev_at, consent_ref_ptr(w, sorted[j]->ev),
			       sorted[j]->ev_len);
			ev_at += sorted[j]->ev_len;
		}

		uint64_t hv = ahead[i % BUILD_AHEAD];
		uint64_t b = consent_bucket(hv, nbuckets);
		if (i + BUILD_AHEAD < w->npeople)
			ahead[i % BUILD_AHEAD] =
			    slot_prefetch(w, i + BUILD_AHEAD, slots, nbuckets);
		while (slots[b] != 0)
			if (++b == nbuckets)
				b = 0;
		slots[b] = consent_tag(hv) << CONSENT_SLOT_OFF_BITS |
		           (uint64_t)p->latest_sec / 8;
	}
	t->base = img;
	t->size = size;
	t->storage = CONSENT_STORAGE_BUILT;
	consent_snapshot_bind(t);
	return t;
fail:
	consent_snapshot_big_free(img, size);
	free(t);
	return NULL;
}

static bool
range_ok(uint64_t off, uint64_t size, uint64_t file_size)
{
	return off <= file_size && size <= file_size - off;
}

const char *
consent_snapshot_check(const uint8_t *base, size_t size)
{
	const struct consent_snap_header *h = (const void *)base;

	if (size < sizeof(*h))
		return "truncated snapshot (shorter than its header)";
	if (memcmp(h->magic, CONSENT_MAGIC, 8) != 0)
		return "not a consent snapshot (bad magic)";
	if (h->endian != CONSENT_ENDIAN)
		return "snapshot written on a machine of another byte order";
	if (h->checksum != consent_snapshot_checksum(h))
		return "header checksum mismatch (corrupt snapshot)";
	if (h->format != CONSENT_FORMAT)
		return "unsupported snapshot format version";
	if (h->header_size != sizeof(*h))
		return "bad header size";
	if (h->file_size != size)
		return h->file_size > size ? "truncated snapshot (shorter than "
		                             "its header says)"
		                           : "snapshot longer than its header "
		                             "says";
	if (h->purposes_off % 8 || h->slots_off % 8 || h->blobs_off % 8 ||
	    h->blobs_size % 8)
		return "misaligned section";
	if (!range_ok(h->purposes_off, h->purposes_size, size) ||
	    h->nbuckets == 0 || h->nbuckets > size / 8 ||
	    !range_ok(h->slots_off, h->nbuckets * 8, size) ||
	    !range_ok(h->blobs_off, h->blobs_size, size))
		return "section out of bounds";
	if (h->nbuckets <= h->people || h->people > h->blobs_size / 24 ||
	    h->rows > h->people * CG_MAX_CONSENT_PURPOSES ||
	    h->blobs_size / 8 > CONSENT_SLOT_OFF_MASK)
		return "inconsistent counts";
	if (h->npurposes > CG_MAX_CONSENT_PURPOSES ||
	    (uint64_t)h->npurposes * 8 > h->purposes_size)
		return "bad purpose table";
	for (uint32_t i = 0; i < h->npurposes; i++) {
		const uint8_t *pp = base + h->purposes_off;
		uint32_t ent[2];
		memcpy(ent, pp + i * 8, 8);
		if (ent[0] < h->npurposes * 8u || ent[1] > CG_MAX_PURPOSE_LEN ||
		    (uint64_t)ent[0] + ent[1] + 1 > h->purposes_size ||
		    pp[ent[0] + ent[1]] != '\0')
			return "bad purpose name";
	}
	return NULL;
}

struct consent_table *
consent_snapshot_open(const char *path, const uint8_t *base, size_t size,
                      struct cg_errors *errs)
{
	const char *why = consent_snapshot_check(base, size);
	struct consent_table *t;

	if (why != NULL) {
		cg_errors_add(errs, path, 0, 0, "%s", why);
		return NULL;
	}
	t = calloc(1, sizeof(*t));
	if (t == NULL || (t->source = strdup(path)) == NULL) {
		free(t);
		cg_errors_add(errs, path, 0, 0, "out of memory");
		return NULL;
	}
	t->base = base;
	t->size = size;
	t->storage = CONSENT_STORAGE_FILE;
	consent_snapshot_bind(t);
	return t;
}

static int
write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len > (1u << 30) ? (1u << 30) : len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int
consent_snapshot_write(const struct consent_table *t, const char *path,
                       struct cg_errors *errs)
{
	struct consent_snap_header h;
	char *tmp = NULL;
	int fd = -1, rc = -1;

	if (asprintf(&tmp, "%s.XXXXXX", path) < 0) {
		tmp = NULL;
		cg_errors_add(errs, path, 0, 0, "out of memory");
		goto done;
	}
	fd = mkstemp(tmp);
	if (fd < 0) {
		cg_errors_add(errs, path, 0, 0, "cannot create %s: %s", tmp,
		              strerror(errno));
		goto done;
	}
	memcpy(&h, t->h, sizeof(h));
	h.version = t->version;
	h.checksum = consent_snapshot_checksum(&h);
	if (write_all(fd, &h, sizeof(h)) < 0 ||
	    write_all(fd, t->base + sizeof(h), t->size - sizeof(h)) < 0 ||
	    fchmod(fd, 0644) < 0 || fsync(fd) < 0) {
		cg_errors_add(errs, path, 0, 0, "cannot write: %s",
		              strerror(errno));
		goto done;
	}
	if (close(fd) < 0) {
		fd = -1;
		cg_errors_add(errs, path, 0, 0, "cannot write: %s",
		              strerror(errno));
		goto done;
	}
	fd = -1;
	/* Readers see the old file or the whole new one, never half. */
	if (rename(tmp, path) < 0) {
		cg_errors_add(errs, path, 0, 0, "cannot rename %s: %s", tmp,
		              strerror(errno));
		goto done;
	}
	rc = 0;
done:
	if (fd >= 0)
		close(fd);
	if (rc < 0 && tmp != NULL)
		unlink(tmp);
	free(tmp);
	return rc;
}
