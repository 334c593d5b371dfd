/*
 * consent_live.c: a consent table that changes while it is read
 * (consent_live.h).
 *
 * The writer's overlay is a struct consent_work, the CSV import's own
 * working table, and every change goes through consent_work_merge, the
 * import's merge. The first change of a person copies that person's rows
 * from the image into it (seconds only: the image keeps no fractions), so
 * the overlay holds the changed people whole and a lookup that finds one
 * there never reads the image. A view lays the overlay out with
 * consent_snapshot_build into a small table of the image's format, which
 * the lookups in consent.c probe before the image.
 *
 * Every change applied since the image is kept in a log: compaction
 * builds the new image from a copy of the overlay taken at one seq, and
 * the changes after that seq are replayed onto the new image.
 */
#include <stdlib.h>
#include <string.h>

#include "consent_internal.h"
#include "consentgate/consent_live.h"

#define GROW_MIN 64          /* first capacity of the overlay's arrays */
#define FILTER_BITS_MIN 4096 /* bits of a view's overlay filter, at least */
#define FILTER_BITS_PER 16   /* ... and per overlay person */
#define LOAD_PREFETCH 16     /* rows ahead whose slot a load prefetches */
/* The instants RFC 3339 text names as PostgreSQL writes them: years
 * 0001 to 9999 (year 0 is its 1 BC), in Unix seconds. */
#define TIME_MIN INT64_C(-62135596800)
#define TIME_END INT64_C(253402300800)

struct consent_live_clock {
	atomic_uint refs;
	_Atomic int64_t at;
};

/* A change applied, its strings as refs into the overlay's arena. */
struct logent {
	uint64_t seq;
	struct consent_wnew r;
};

/* The overlay: people changed since the image and the changes' log. */
struct overlay {
	struct consent_work w; /* only arena refs: w.buf is NULL */
	uint64_t new_people;   /* people the image does not hold */
	uint64_t new_rows;     /* rows beyond those copied from the image */
	struct logent *log;
	uint64_t nlog, cap_log;
};

struct consent_live {
	struct consent_table *image; /* counted: image->img_refs */
	uint64_t seq, image_seq;
	struct consent_live_clock *clock;
	struct overlay ov;
};

struct consent_live_job {
	struct consent_table *image; /* counted */
	struct consent_work w;       /* copies: people, rows, arena, wslots */
	uint64_t seq;
	int64_t at;
};

/* ---- the image, shared by views ---- */

static void
image_unref(struct consent_table *img)
{
	if (img != NULL && atomic_fetch_sub(&img->img_refs, 1) == 1)
		consent_free(img);
}

static void
clock_unref(struct consent_live_clock *c)
{
	if (c != NULL && atomic_fetch_sub(&c->refs, 1) == 1)
		free(c);
}

int64_t
consent_live_clock_get(const struct consent_live_clock *c)
{
	return atomic_load_explicit(&c->at, memory_order_relaxed);
}

/* The blob of subject[0,len) in t, or NULL. */
static const uint8_t *
image_blob(const struct consent_table *t, const char *subject, size_t len)
{
	uint64_t h = consent_hash(subject, len, t->seed);
	uint64_t b = consent_bucket(h, t->nbuckets), tag = consent_tag(h);

	for (uint64_t i = 0; i < t->nbuckets; i++) {
		uint64_t s = t->slots[b], off = (s & CONSENT_SLOT_OFF_MASK) * 8;
		struct consent_blob_head bh;

		if (s == 0)
			break;
		if (s >> CONSENT_SLOT_OFF_BITS == tag &&
		    off + sizeof(bh) <= t->blobs_size) {
			memcpy(&bh, t->blobs + off, sizeof(bh));
			if (bh.subj_len == len &&
			    off + sizeof(bh) + consent_pad8(len) +
			            bh.nrows *
			                sizeof(struct consent_blob_row) <=
			        t->blobs_size &&
			    memcmp(t->blobs + off + sizeof(bh), subject, len) ==
			        0)
				return t->blobs + off;
		}
		if (++b == t->nbuckets)
			b = 0;
	}
	return NULL;
}

/* ---- the overlay's working table ---- */

static void
work_free(struct consent_work *w)
{
	free(w->arena);
	free(w->wslots);
	free(w->people);
	free(w->rows);
	memset(w, 0, sizeof(*w));
}

static void
overlay_free(struct overlay *o)
{
	work_free(&o->w);
	free(o->log);
	memset(o, 0, sizeof(*o));
}

static int
grow(void **p, uint64_t *cap, uint64_t need, size_t size)
{
	uint64_t n = *cap ? *cap : GROW_MIN;
	void *q;

	if (need <= *cap)
		return 0;
	while (n < need)
		n *= 2;
	if ((q = realloc(*p, n * size)) == NULL)
		return -1;
	*p = q;
	*cap = n;
	return 0;
}

/* Room for one more person with up to nrows rows: wslots stay under 3/4
 * full (rebuilt from the people when they grow). */
static int
work_reserve(struct consent_work *w, unsigned nrows)
{
	if (grow((void **)&w->people, &w->cap_people, w->npeople + 1,
	         sizeof(*w->people)) < 0 ||
	    grow((void **)&w->rows, &w->cap_rows, w->nrows + nrows,
	         sizeof(*w->rows)) < 0)
		return -1;
	if ((w->npeople + 1) * 4 < w->nwslots * 3)
		return 0;
	uint64_t n = w->nwslots ? w->nwslots * 2 : GROW_MIN * 2;
	uint64_t *slots = calloc(n, sizeof(*slots));

	if (slots == NULL)
		return -1;
	for (uint64_t i = 0; i < w->npeople; i++) {
		const struct consent_wperson *p = &w->people[i];
		uint64_t h = consent_hash(consent_ref_ptr(w, p->subj),
		                          p->subj_len, CONSENT_HASH_SEED);
		uint64_t b = consent_bucket(h, n);

		while (slots[b] != 0)
			if (++b == n)
				b = 0;
		slots[b] = consent_tag(h) << CONSENT_SLOT_OFF_BITS | (i + 1);
	}
	free(w->wslots);
	w->wslots = slots;
	w->nwslots = n;
	return 0;
}

/* A ref to a copy of s[0,len) in w's arena. -1: out of memory. */
static int
arena_add(struct consent_work *w, const char *s, size_t len, uint64_t *ref)
{
	if (w->arena_len + len > w->arena_cap) {
		size_t cap = (w->arena_cap ? w->arena_cap * 2 : 4096) + len;
		char *a = realloc(w->arena, cap);

		if (a == NULL)
			return -1;
		w->arena = a;
		w->arena_cap = cap;
	}
	memcpy(w->arena + w->arena_len, s, len);
	*ref = CONSENT_REF_ARENA | w->arena_len;
	w->arena_len += len;
	return 0;
}

/* The overlay's person for h and subject, or NULL. */
static const struct consent_wperson *
work_find(const struct consent_work *w, uint64_t h, const char *subject,
          size_t len)
{
	uint64_t b, tag = consent_tag(h);

	if (w->nwslots == 0)
		return NULL;
	for (b = consent_bucket(h, w->nwslots); w->wslots[b] != 0;) {
		uint64_t s = w->wslots[b];
		const struct consent_wperson *p =
		    &w->people[(s & CONSENT_SLOT_OFF_MASK) - 1];

		if (s >> CONSENT_SLOT_OFF_BITS == tag && p->subj_len == len &&
		    memcmp(consent_ref_ptr(w, p->subj), subject, len) == 0)
			return p;
		if (++b == w->nwslots)
			b = 0;
	}
	return NULL;
}

/* Intern a purpose name into w's list (the image's ids come first). */
static int
purpose_id(struct consent_work *w, const char *s, size_t len)
{
	for (unsigned i = 0; i < w->npurposes; i++)
		if (w->purpose_len[i] == len &&
		    memcmp(w->purpose[i], s, len) == 0)
			return (int)i;
	if (w->npurposes >= CG_MAX_CONSENT_PURPOSES)
		return -1;
	memcpy(w->purpose[w->npurposes], s, len);
	w->purpose[w->npurposes][len] = '\0';
	w->purpose_len[w->npurposes] = (uint8_t)len;
	return (int)w->npurposes++;
}

/*
 * Merge a checked change (subject and evidence given as text) into o over
 * image: a person's first change copies their image rows first. The log
 * keeps it. -1 when out of memory; then o may hold a copy of the
 * person's image rows but never the change.
 */
static int
overlay_merge(struct overlay *o, const struct consent_table *image,
              uint64_t seq, struct consent_wnew *r, struct cg_slice subject,
              struct cg_slice evidence)
{
	struct consent_work *w = &o->w;
	const uint8_t *blob = NULL;
	bool had;

	r->h = consent_hash(subject.ptr, subject.len, CONSENT_HASH_SEED);
	if (grow((void **)&o->log, &o->cap_log, o->nlog + 1, sizeof(*o->log)) <
	        0 ||
	    work_reserve(w, CG_MAX_CONSENT_PURPOSES + 1) < 0 ||
	    arena_add(w, subject.ptr, subject.len, &r->subj) < 0 ||
	    arena_add(w, evidence.ptr, evidence.len, &r->ev) < 0)
		return -1;
	had = work_find(w, r->h, subject.ptr, subject.len) != NULL;
	if (!had)
		blob = image_blob(image, subject.ptr, subject.len);
	if (blob != NULL) {
		struct consent_blob_head bh;
		const uint8_t *rp;

		memcpy(&bh, blob, sizeof(bh));
		rp = blob + sizeof(bh) + consent_pad8(bh.subj_len);
		for (unsigned i = 0; i < bh.nrows; i++) {
			struct consent_blob_row br;
			struct consent_wnew c = *r;

			memcpy(&br, rp + i * sizeof(br), sizeof(br));
			if (br.ev_len > 0 &&
			    arena_add(w, (const char *)blob + br.ev_off,
			              br.ev_len, &c.ev) < 0)
				return -1;
			c.ev_len = br.ev_len;
			c.sec = br.updated_at;
			c.nsec = 0;
			c.purpose = br.purpose;
			c.status = br.status;
			memcpy(c.juris, bh.juris, 2);
			(void)consent_work_merge(w, &c); /* room reserved */
		}
	} else if (!had) {
		o->new_people++;
	}
	uint64_t rows = w->nrows;
	(void)consent_work_merge(w, r);
	o->new_rows += w->nrows - rows;
	o->log[o->nlog].seq = seq;
	o->log[o->nlog].r = *r;
	o->nlog++;
	return 0;
}

/* ---- the source ---- */

static int
overlay_init(struct overlay *o, const struct consent_table *image,
             const struct consent_work *purposes)
{
	memset(o, 0, sizeof(*o));
	if (purposes != NULL) {
		memcpy(o->w.purpose, purposes->purpose, sizeof(o->w.purpose));
		memcpy(o->w.purpose_len, purposes->purpose_len,
		       sizeof(o->w.purpose_len));
		o->w.npurposes = purposes->npurposes;
		return 0;
	}
	for (unsigned i = 0; i < image->h->npurposes; i++) {
		struct cg_slice s = consent_purpose_name(image, i);

		if (purpose_id(&o->w, s.ptr, s.len) != (int)i)
			return -1;
	}
	return 0;
}

struct consent_live *
consent_live_new(struct consent_table *image, uint64_t seq, int64_t now)
{
	struct consent_live *l = calloc(1, sizeof(*l));

	if (l == NULL || image->img != NULL ||
	    (l->clock = calloc(1, sizeof(*l->clock))) == NULL ||
	    overlay_init(&l->ov, image, NULL) < 0) {
		if (l != NULL)
			free(l->clock);
		free(l);
		consent_free(image);
		return NULL;
	}
	atomic_init(&image->img_refs, 1);
	atomic_init(&l->clock->refs, 1);
	atomic_init(&l->clock->at, now);
	l->image = image;
	l->seq = l->image_seq = seq;
	return l;
}

void
consent_live_free(struct consent_live *l)
{
	if (l == NULL)
		return;
	overlay_free(&l->ov);
	image_unref(l->image);
	clock_unref(l->clock);
	free(l);
}

int
consent_live_apply(struct consent_live *l, const struct consent_change *c,
                   const char **why)
{
	struct consent_row row;
	struct consent_wnew r;
	int pid;

	if (c->seq <= l->seq)
		return *why = "change sequence not above the last applied", -1;
	if (consent_row_parse(c->subject, c->purpose, c->status,
	                      c->jurisdiction, c->updated_at, c->evidence, &row,
	                      why) < 0)
		return -1;
	if ((pid = purpose_id(&l->ov.w, c->purpose.ptr, c->purpose.len)) < 0)
		return *why = "more than 255 distinct purposes", -1;
	memset(&r, 0, sizeof(r));
	r.subj_len = (uint16_t)row.subject.len;
	r.ev_len = (uint8_t)row.evidence.len;
	r.sec = row.sec;
	r.nsec = row.nsec;
	r.purpose = (uint8_t)pid;
	r.status = (uint8_t)row.status;
	memcpy(r.juris, row.juris, 2);
	if (overlay_merge(&l->ov, l->image, c->seq, &r, row.subject,
	                  row.evidence) < 0)
		return *why = "out of memory", -1;
	l->seq = c->seq;
	return 0;
}

int
consent_live_check(const struct consent_change *c, const char **why)
{
	struct consent_row row;

	return consent_row_parse(c->subject, c->purpose, c->status,
	                         c->jurisdiction, c->updated_at, c->evidence,
	                         &row, why);
}

uint64_t
consent_live_seq(const struct consent_live *l)
{
	return l->seq;
}

uint64_t
consent_live_pending(const struct consent_live *l)
{
	return l->ov.w.npeople;
}

void
consent_live_confirm(struct consent_live *l, int64_t at)
{
	atomic_store_explicit(&l->clock->at, at, memory_order_relaxed);
}

int64_t
consent_live_confirmed(const struct consent_live *l)
{
	return consent_live_clock_get(l->clock);
}

/* A copy of w's people and rows (and with_index, its slots and arena);
 * the copy's arena is w's unless with_index. -1: out of memory. */
static int
work_copy(struct consent_work *dst, const struct consent_work *w,
          bool with_index)
{
	memset(dst, 0, sizeof(*dst));
	memcpy(dst->purpose, w->purpose, sizeof(dst->purpose));
	memcpy(dst->purpose_len, w->purpose_len, sizeof(dst->purpose_len));
	dst->npurposes = w->npurposes;
	dst->npeople = dst->cap_people = w->npeople;
	dst->nrows = dst->cap_rows = w->nrows;
	dst->people = malloc((w->npeople + 1) * sizeof(*w->people));
	dst->rows = malloc((w->nrows + 1) * sizeof(*w->rows));
	if (dst->people == NULL || dst->rows == NULL)
		goto fail;
	if (w->npeople > 0) { /* an empty overlay has no arrays yet */
		memcpy(dst->people, w->people, w->npeople * sizeof(*w->people));
		memcpy(dst->rows, w->rows, w->nrows * sizeof(*w->rows));
	}
	dst->arena = w->arena;
	if (!with_index)
		return 0;
	dst->arena = malloc(w->arena_len + 1);
	dst->wslots = malloc((w->nwslots + 1) * sizeof(*w->wslots));
	if (dst->arena == NULL || dst->wslots == NULL)
		goto fail;
	if (w->npeople > 0) {
		memcpy(dst->arena, w->arena, w->arena_len);
		memcpy(dst->wslots, w->wslots, w->nwslots * sizeof(*w->wslots));
	}
	dst->arena_len = dst->arena_cap = w->arena_len;
	dst->nwslots = w->nwslots;
	return 0;
fail:
	free(dst->people);
	free(dst->rows);
	if (with_index) {
		free(dst->arena);
		free(dst->wslots);
	}
	memset(dst, 0, sizeof(*dst));
	return -1;
}

/* v's filter of the overlay's people in w, hashed with the image's
 * seed as lookups hash: FILTER_BITS_PER bits a person, 3 of them in one
 * word. None for an empty overlay. -1: no memory. */
static int
ov_filter(struct consent_table *v, const struct consent_work *w)
{
	uint64_t words = FILTER_BITS_MIN / 64;

	if (w->npeople == 0)
		return 0;
	while (words * 64 < w->npeople * FILTER_BITS_PER &&
	       words < UINT64_C(1) << CONSENT_OV_WORD_BITS)
		words *= 2;
	if ((v->ov_filter = calloc(words, sizeof(uint64_t))) == NULL)
		return -1;
	v->ov_filter_mask = words - 1;
	for (uint64_t i = 0; i < w->npeople; i++) {
		const struct consent_wperson *p = &w->people[i];
		uint64_t h = consent_hash(consent_ref_ptr(w, p->subj),
		                          p->subj_len, v->seed);

		v->ov_filter[consent_ov_word(h, v->ov_filter_mask)] |=
		    consent_ov_bits(h);
	}
	return 0;
}

struct consent_table *
consent_live_view(struct consent_live *l, const char *source)
{
	struct consent_table *v = NULL, *ov = NULL, *img = l->image;
	struct consent_work w;

	if (work_copy(&w, &l->ov.w, false) < 0)
		return NULL;
	/* consent_snapshot_build frees wslots (the copy has none) and uses
	 * latest_sec for offsets: on the copy, not on the overlay */
	ov = consent_snapshot_build(&w, consent_live_confirmed(l));
	free(w.people);
	free(w.rows);
	v = calloc(1, sizeof(*v));
	if (ov == NULL || v == NULL || (v->source = strdup(source)) == NULL) {
		consent_free(ov);
		free(v);
		return NULL;
	}
	v->base = img->base;
	v->size = img->size;
	v->storage = img->storage;
	consent_snapshot_bind(v); /* the image's sections */
	v->version = l->seq;
	v->ov = ov;
	v->img = img;
	atomic_fetch_add(&img->img_refs, 1);
	v->clock = l->clock;
	atomic_fetch_add(&l->clock->refs, 1);
	v->live_people = img->h->people + l->ov.new_people;
	v->live_rows = img->h->rows + l->ov.new_rows;
	if (ov_filter(v, &l->ov.w) < 0) {
		consent_free(v);
		return NULL;
	}
	return v;
}

void
consent_live_view_free(struct consent_table *t)
{
	consent_free(t->ov);
	free(t->ov_filter);
	image_unref(t->img);
	clock_unref(t->clock);
	free(t->source);
	free(t);
}

/* ---- compaction ---- */

struct consent_live_job *
consent_live_compact_begin(struct consent_live *l)
{
	struct consent_live_job *j = calloc(1, sizeof(*j));

	if (j == NULL)
		return NULL;
	if (work_copy(&j->w, &l->ov.w, true) < 0) {
		free(j);
		return NULL;
	}
	j->image = l->image;
	atomic_fetch_add(&l->image->img_refs, 1);
	j->seq = l->seq;
	j->at = consent_live_confirmed(l);
	return j;
}

uint64_t
consent_live_job_seq(const struct consent_live_job *j)
{
	return j->seq;
}

const struct consent_table *
consent_live_job_image(const struct consent_live_job *j)
{
	return j->image;
}

void
consent_live_job_free(struct consent_live_job *j)
{
	if (j == NULL)
		return;
	image_unref(j->image);
	work_free(&j->w);
	free(j);
}

/* Add the image's people but those the overlay holds to w (refs into
 * the image's blobs: w->buf). -1 when the blobs do not add up. */
static int
add_image_people(struct consent_work *w, const struct consent_table *img,
                 const struct consent_work *ov)
{
	uint64_t off = 0, seen = 0;

	while (off < img->blobs_size) {
		struct consent_blob_head bh;
		const uint8_t *blob = img->blobs + off;
		uint64_t rows_at, ev = 0;

		if (off + sizeof(bh) > img->blobs_size)
			return -1;
		memcpy(&bh, blob, sizeof(bh));
		rows_at = sizeof(bh) + consent_pad8(bh.subj_len);
		if (bh.nrows == 0 || bh.subj_len == 0 ||
		    rows_at + bh.nrows * sizeof(struct consent_blob_row) >
		        img->blobs_size - off)
			return -1;
		const char *subj = (const char *)blob + sizeof(bh);
		bool changed =
		    work_find(
		        ov, consent_hash(subj, bh.subj_len, CONSENT_HASH_SEED),
		        subj, bh.subj_len) != NULL;
		struct consent_wperson *p = &w->people[w->npeople];

		if (!changed) {
			if (w->npeople >= w->cap_people)
				return -1;
			memset(p, 0, sizeof(*p));
			p->subj = off + sizeof(bh);
			p->subj_len = bh.subj_len;
			p->nrows = bh.nrows;
			memcpy(p->juris, bh.juris, 2);
		}
		for (unsigned i = 0; i < bh.nrows; i++) {
			struct consent_blob_row br;

			memcpy(&br, blob + rows_at + i * sizeof(br),
			       sizeof(br));
			ev += br.ev_len;
			if (changed)
				continue;
			if (w->nrows >= w->cap_rows ||
			    (uint64_t)br.ev_off + br.ev_len >
			        img->blobs_size - off)
				return -1;
			struct consent_wrow *r = &w->rows[w->nrows++];
			memset(r, 0, sizeof(*r));
			r->sec = br.updated_at;
			r->ev = off + br.ev_off;
			r->ev_len = br.ev_len;
			r->purpose = br.purpose;
			r->status = br.status;
			r->next = p->head;
			p->head = (uint32_t)w->nrows;
		}
		if (!changed)
			w->npeople++;
		seen++;
		off += rows_at + bh.nrows * sizeof(struct consent_blob_row) +
		       consent_pad8(ev);
	}
	return seen == img->h->people ? 0 : -1;
}

struct consent_table *
consent_live_compact_run(struct consent_live_job *j)
{
	const struct consent_table *img = j->image;
	struct consent_table *t = NULL;
	struct consent_work w;
	uint64_t base;

	memset(&w, 0, sizeof(w));
	memcpy(w.purpose, j->w.purpose, sizeof(w.purpose));
	memcpy(w.purpose_len, j->w.purpose_len, sizeof(w.purpose_len));
	w.npurposes = j->w.npurposes;
	w.buf = (const char *)img->blobs;
	w.arena = j->w.arena;
	w.cap_people = img->h->people + j->w.npeople;
	w.cap_rows = img->h->rows + j->w.nrows;
	w.people =
	    consent_snapshot_big_alloc((w.cap_people + 1) * sizeof(*w.people));
	w.rows = consent_snapshot_big_alloc((w.cap_rows + 1) * sizeof(*w.rows));
	if (w.people == NULL || w.rows == NULL ||
	    add_image_people(&w, img, &j->w) < 0)
		goto done;
	/* then the overlay's people, their row links moved along */
	base = w.nrows;
	for (uint64_t i = 0; i < j->w.nrows; i++) {
		struct consent_wrow *r = &w.rows[w.nrows++];

		*r = j->w.rows[i];
		if (r->next != 0)
			r->next += (uint32_t)base;
	}
	for (uint64_t i = 0; i < j->w.npeople; i++) {
		struct consent_wperson *p = &w.people[w.npeople++];

		*p = j->w.people[i];
		if (p->head != 0)
			p->head += (uint32_t)base;
	}
	t = consent_snapshot_build(&w, j->at);
	if (t != NULL)
		consent_set_version(t, j->seq);
done:
	consent_snapshot_big_free(w.people,
	                          (w.cap_people + 1) * sizeof(*w.people));
	consent_snapshot_big_free(w.rows, (w.cap_rows + 1) * sizeof(*w.rows));
	return t;
}

int
consent_live_compact_end(struct consent_live *l, struct consent_live_job *j,
                         struct consent_table *image)
{
	struct overlay o;
	int rc = -1;

	if (image == NULL) {
		consent_live_job_free(j);
		return 0;
	}
	/* the changes after the job, replayed onto the new image aside */
	if (overlay_init(&o, image, &l->ov.w) < 0)
		goto done;
	for (uint64_t i = 0; i < l->ov.nlog; i++) {
		const struct logent *e = &l->ov.log[i];
		struct consent_wnew r = e->r;

		if (e->seq <= j->seq)
			continue;
		if (overlay_merge(
		        &o, image, e->seq, &r,
		        (struct cg_slice){consent_ref_ptr(&l->ov.w, e->r.subj),
		                          e->r.subj_len},
		        (struct cg_slice){consent_ref_ptr(&l->ov.w, e->r.ev),
		                          e->r.ev_len}) < 0) {
			overlay_free(&o);
			goto done;
		}
	}
	overlay_free(&l->ov);
	l->ov = o;
	atomic_init(&image->img_refs, 1);
	image_unref(l->image);
	l->image = image;
	l->image_seq = j->seq;
	image = NULL;
	rc = 0;
done:
	consent_free(image);
	consent_live_job_free(j);
	return rc;
}

/* ---- the initial load ---- */

/* A run of checked rows in seq order, their strings in w's arena (only
 * w's arena and purposes are used). */
struct consent_live_rows {
	struct consent_work w;
	struct consent_wnew *rows;
	uint64_t n, cap;
	uint64_t first_seq, seq;
};

struct consent_live_rows *
consent_live_rows_new(uint64_t hint)
{
	struct consent_live_rows *r = calloc(1, sizeof(*r));

	if (r != NULL && hint > 0 &&
	    grow((void **)&r->rows, &r->cap, hint, sizeof(*r->rows)) < 0) {
		free(r);
		r = NULL;
	}
	return r;
}

void
consent_live_rows_free(struct consent_live_rows *r)
{
	if (r == NULL)
		return;
	work_free(&r->w);
	free(r->rows);
	free(r);
}

int
consent_live_rows_add(struct consent_live_rows *r,
                      const struct consent_change *c, bool timed, int64_t sec,
                      uint32_t nsec, const char **why)
{
	struct cg_slice at = c->updated_at;
	struct consent_row row;
	struct consent_wnew *w;
	int pid;

	if (c->seq <= r->seq)
		return *why = "change sequence not above the last applied", -1;
	/* a valid time stands in for the text, an invalid one is refused
	 * with the text's own words */
	if (timed)
		at = sec >= TIME_MIN && sec < TIME_END && nsec < 1000000000
		         ? CG_SLICE_LIT("2000-01-01T00:00:00Z")
		         : CG_SLICE_LIT("");
	if (consent_row_parse(c->subject, c->purpose, c->status,
	                      c->jurisdiction, at, c->evidence, &row, why) < 0)
		return -1;
	if (timed) {
		row.sec = sec;
		row.nsec = nsec;
	}
	if ((pid = purpose_id(&r->w, c->purpose.ptr, c->purpose.len)) < 0)
		return *why = "more than 255 distinct purposes", -1;
	if (grow((void **)&r->rows, &r->cap, r->n + 1, sizeof(*r->rows)) < 0)
		return *why = "out of memory", -1;
	w = &r->rows[r->n];
	memset(w, 0, sizeof(*w));
	if (arena_add(&r->w, row.subject.ptr, row.subject.len, &w->subj) < 0 ||
	    arena_add(&r->w, row.evidence.ptr, row.evidence.len, &w->ev) < 0)
		return *why = "out of memory", -1;
	w->subj &= ~CONSENT_REF_ARENA; /* an offset: build says where */
	w->ev &= ~CONSENT_REF_ARENA;
	w->h =
	    consent_hash(row.subject.ptr, row.subject.len, CONSENT_HASH_SEED);
	w->sec = row.sec;
	w->nsec = row.nsec;
	w->subj_len = (uint16_t)row.subject.len;
	w->ev_len = (uint8_t)row.evidence.len;
	w->purpose = (uint8_t)pid;
	w->status = (uint8_t)row.status;
	memcpy(w->juris, row.juris, 2);
	if (r->n++ == 0)
		r->first_seq = c->seq;
	r->seq = c->seq;
	return 0;
}

/* Merge r's rows into w in order, their refs marked with ref (0: w->buf,
 * CONSENT_REF_ARENA: w->arena) and their purposes mapped to w's. -1: out
 * of memory or too many purposes. */
static int
rows_merge(struct consent_work *w, struct consent_live_rows *r, uint64_t ref)
{
	uint8_t map[CG_MAX_CONSENT_PURPOSES];

	for (unsigned i = 0; i < r->w.npurposes; i++) {
		int id = purpose_id(w, r->w.purpose[i], r->w.purpose_len[i]);

		if (id < 0)
			return -1;
		map[i] = (uint8_t)id;
	}
	for (uint64_t i = 0; i < r->n; i++) {
		struct consent_wnew c = r->rows[i];

		/* the slot's fetch overlaps the merges before it */
		if (i + LOAD_PREFETCH < r->n)
			__builtin_prefetch(&w->wslots[consent_bucket(
			    r->rows[i + LOAD_PREFETCH].h, w->nwslots)]);
		c.subj |= ref;
		c.ev |= ref;
		c.purpose = map[c.purpose];
		if (consent_work_merge(w, &c) < 0)
			return -1;
	}
	free(r->rows); /* a lower peak for the layout */
	r->rows = NULL;
	r->n = r->cap = 0;
	return 0;
}

struct consent_table *
consent_live_rows_build(struct consent_live_rows *first,
                        struct consent_live_rows *then, const char *source,
                        int64_t now)
{
	struct consent_table *t = NULL;
	struct consent_work w;
	uint64_t n = first->n + (then ? then->n : 0);

	memset(&w, 0, sizeof(w));
	if (then != NULL && then->n > 0 && first->seq >= then->first_seq)
		goto done; /* not one history in seq order */
	w.buf = first->w.arena;
	w.arena = then ? then->w.arena : NULL;
	w.cap_people = w.cap_rows = n;
	w.nwslots = n * CONSENT_LOAD_NUM / CONSENT_LOAD_DEN + 1;
	w.wslots = consent_snapshot_big_alloc(w.nwslots * sizeof(uint64_t));
	w.people = consent_snapshot_big_alloc((n + 1) * sizeof(*w.people));
	w.rows = consent_snapshot_big_alloc((n + 1) * sizeof(*w.rows));
	if (w.wslots == NULL || w.people == NULL || w.rows == NULL ||
	    rows_merge(&w, first, 0) < 0 ||
	    (then != NULL && rows_merge(&w, then, CONSENT_REF_ARENA) < 0))
		goto done;
	t = consent_snapshot_build(&w, now); /* frees w.wslots */

	if (t != NULL && (t->source = strdup(source)) == NULL) {
		consent_free(t);
		t = NULL;
	}
done:
	consent_snapshot_big_free(w.wslots, w.nwslots * sizeof(uint64_t));
	consent_snapshot_big_free(w.people, (n + 1) * sizeof(*w.people));
	consent_snapshot_big_free(w.rows, (n + 1) * sizeof(*w.rows));
	consent_live_rows_free(first);
	consent_live_rows_free(then);
	return t;
}
