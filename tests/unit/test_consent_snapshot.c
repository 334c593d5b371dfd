/*
 * test_consent_snapshot: the consent snapshot image (consent_snapshot.c):
 * laying a working table out, the checks an image must pass before a
 * lookup follows it, the big-block allocator, and the atomic write.
 */
/* cmocka.h needs these three before it */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
/* clang-format on */

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../policy/consent_internal.h"

/* A working table by hand: "ann" (two purposes, latest row FR) and "bo". */
static struct consent_table *
build_two(void)
{
	static const char buf[] = "annbo"
	                          "ev-1ev-2ev-3";
	static struct consent_wperson people[2];
	static struct consent_wrow rows[3];
	struct consent_work w;

	memset(&w, 0, sizeof(w));
	memset(people, 0, sizeof(people));
	memset(rows, 0, sizeof(rows));
	w.buf = buf;
	w.npurposes = 2;
	memcpy(w.purpose[0], "ai-training", 12);
	w.purpose_len[0] = 11;
	memcpy(w.purpose[1], "ads", 4);
	w.purpose_len[1] = 3;
	rows[0] = (struct consent_wrow){.sec = 100,
	                                .ev = 5,
	                                .next = 0,
	                                .purpose = 0,
	                                .status = 1,
	                                .ev_len = 4};
	rows[1] = (struct consent_wrow){.sec = 200,
	                                .ev = 9,
	                                .next = 1,
	                                .purpose = 1,
	                                .status = 2,
	                                .ev_len = 4};
	rows[2] = (struct consent_wrow){.sec = 300,
	                                .ev = 13,
	                                .next = 0,
	                                .purpose = 0,
	                                .status = 3,
	                                .ev_len = 4};
	people[0] = (struct consent_wperson){.subj = 0,
	                                     .head = 2,
	                                     .subj_len = 3,
	                                     .nrows = 2,
	                                     .juris = {'F', 'R'}};
	people[1] = (struct consent_wperson){.subj = 3,
	                                     .head = 3,
	                                     .subj_len = 2,
	                                     .nrows = 1,
	                                     .juris = {'D', 'E'}};
	w.people = people;
	w.npeople = 2;
	w.rows = rows;
	w.nrows = 3;
	return consent_snapshot_build(&w, 1700000000);
}

static void
assert_row(const struct consent_table *t, const char *subj, int purpose,
           enum consent_status st, int64_t at, const char *ev)
{
	struct consent_lookup_result r;

	consent_lookup(t, subj, strlen(subj), purpose, &r);
	assert_true(r.known);
	assert_int_equal(r.status, st);
	assert_int_equal(r.updated_at, at);
	assert_int_equal(r.evidence.len, strlen(ev));
	assert_memory_equal(r.evidence.ptr, ev, r.evidence.len);
}

static void
test_build_layout(void **state)
{
	struct consent_table *t = build_two();
	struct consent_lookup_result r;

	assert_non_null(t);
	assert_null(consent_snapshot_check(t->base, t->size));
	assert_int_equal(consent_people(t), 2);
	assert_int_equal(consent_rows(t), 3);
	assert_int_equal(consent_version(t), 1700000000);
	assert_int_equal(consent_created_at(t), 1700000000);
	assert_int_equal(consent_bytes(t), t->size);
	assert_int_equal(t->size % 8, 0);
	assert_int_equal(consent_purpose_count(t), 2);
	assert_int_equal(consent_purpose_id(t, "ads", 3), 1);
	assert_row(t, "ann", 0, CONSENT_STATUS_GRANTED, 100, "ev-1");
	assert_row(t, "ann", 1, CONSENT_STATUS_DENIED, 200, "ev-2");
	assert_row(t, "bo", 0, CONSENT_STATUS_WITHDRAWN, 300, "ev-3");
	consent_lookup(t, "ann", 3, -1, &r);
	assert_string_equal(r.jurisdiction, "FR");
	consent_lookup(t, "bo", 2, 1, &r); /* known, no row for "ads" */
	assert_true(r.known);
	assert_int_equal(r.status, CONSENT_STATUS_NONE);
	consent_lookup(t, "an", 2, 0, &r);
	assert_false(r.known);
	consent_free(t);
}

/* Every header field a lookup follows is checked, with a reason. */
static void
test_check_refusals(void **state)
{
	struct consent_table *t = build_two();
	uint8_t *img = malloc(t->size + 8);
	struct consent_snap_header *h = (void *)img;
	size_t size = t->size;
	static const struct {
		size_t off, len;
		uint64_t value;
		const char *why;
	} cases[] = {
#define F(field)                                                               \
	offsetof(struct consent_snap_header, field),                           \
	    sizeof(((struct consent_snap_header *)0)->field)
	    {F(format), 2, "unsupported snapshot format"},
	    {F(header_size), 64, "bad header size"},
	    {F(file_size), 8, "longer than its header"},
	    {F(slots_off), 12, "misaligned"},
	    {F(blobs_off), UINT64_MAX - 7, "out of bounds"},
	    {F(nbuckets), 0, "out of bounds"},
	    {F(people), 1u << 20, "inconsistent counts"},
	    {F(npurposes), 300, "bad purpose table"},
#undef F
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memcpy(img, t->base, size);
		memcpy(img + cases[i].off, &cases[i].value, cases[i].len);
		h->checksum = consent_snapshot_checksum(h);
		const char *why = consent_snapshot_check(img, size);
		if (why == NULL || strstr(why, cases[i].why) == NULL)
			fail_msg("case %zu: '%s', expected '%s'", i,
			         why ? why : "(accepted)", cases[i].why);
	}
	/* a field changed without its checksum */
	memcpy(img, t->base, size);
	h->people++;
	assert_non_null(strstr(consent_snapshot_check(img, size), "checksum"));
	/* magic, byte order, size */
	memcpy(img, t->base, size);
	img[0] = 'X';
	assert_non_null(strstr(consent_snapshot_check(img, size), "magic"));
	memcpy(img, t->base, size);
	h->endian = 0x04030201u;
	assert_non_null(
	    strstr(consent_snapshot_check(img, size), "byte order"));
	memcpy(img, t->base, size);
	assert_non_null(
	    strstr(consent_snapshot_check(img, size - 8), "truncated"));
	assert_non_null(strstr(consent_snapshot_check(img, 100), "truncated"));
	/* a purpose name without its NUL */
	memcpy(img, t->base, size);
	img[h->purposes_off + 16 + 11] = 'x';
	assert_non_null(
	    strstr(consent_snapshot_check(img, size), "bad purpose name"));
	free(img);
	consent_free(t);
}

static void
test_big_alloc(void **state)
{
	size_t sizes[] = {0, 1, 4096, (1u << 20) - 1, 1u << 20, 3u << 20};

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint8_t *p = consent_snapshot_big_alloc(sizes[i]);
		assert_non_null(p);
		for (size_t k = 0; k < sizes[i]; k += 4096)
			assert_int_equal(p[k], 0);
		if (sizes[i] > 0)
			p[sizes[i] - 1] = 1;
		consent_snapshot_big_free(p, sizes[i]);
	}
	consent_snapshot_big_free(NULL, 1u << 20);
}

static unsigned
entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	unsigned n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* Written aside and renamed: the file is whole, no temporary is left. */
static void
test_write_atomic(void **state)
{
	char dir[] = "/tmp/test_consent_snapshot.XXXXXX", path[128];
	struct consent_table *t = build_two(), *u;
	struct cg_errors errs;

	cg_errors_init(&errs);
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/c.snap", dir);
	assert_int_equal(consent_set_version(t, 42), 0);
	assert_int_equal(consent_snapshot_write(t, path, &errs), 0);
	assert_int_equal(consent_snapshot_write(t, path, &errs), 0);
	assert_int_equal(entries(dir), 1);
	u = consent_open(path, &errs);
	assert_non_null(u);
	assert_int_equal(consent_version(u), 42);
	assert_int_equal(consent_bytes(u), consent_bytes(t));
	assert_row(u, "bo", 0, CONSENT_STATUS_WITHDRAWN, 300, "ev-3");
	consent_free(u);
	/* a directory that does not exist: an error, nothing written */
	snprintf(path, sizeof(path), "%s/none/c.snap", dir);
	assert_int_equal(consent_snapshot_write(t, path, &errs), -1);
	assert_int_equal(errs.count, 1);
	assert_non_null(strstr(errs.msgs[0], "cannot create"));
	snprintf(path, sizeof(path), "%s/c.snap", dir);
	unlink(path);
	rmdir(dir);
	cg_errors_reset(&errs);
	consent_free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_build_layout),
	    cmocka_unit_test(test_check_refusals),
	    cmocka_unit_test(test_big_alloc),
	    cmocka_unit_test(test_write_atomic),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
