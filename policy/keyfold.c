/*
 * keyfold.c: whether a non-ASCII member name is the same name as a pointer
 * token to some decoder that folds keys: NFKC with full Unicode case
 * folding and default-ignorables removed (utf8proc), and both Turkish i's
 * read as i (Java). The scanner calls it only for names with a non-ASCII
 * byte, so ASCII keys never pay.
 */
#include <string.h>

#include <utf8proc.h>

#include "scan_internal.h"

/* Java's equalsIgnoreCase and Jackson under a Turkish locale read both
 * Turkish i's as ASCII i; Unicode case folding keeps them apart. */
static utf8proc_int32_t
fold_turkish_i(utf8proc_int32_t cp, void *data)
{
	(void)data;
	return cp == 0x130 || cp == 0x131 ? 'i' : cp;
}

#define UFOLD_CAP (4 * CG_MAX_PTR_TOKEN_LEN) /* code points of a fold */

/*
 * s[0,n) as the pipelines that fold keys could see it: NFKC, full Unicode
 * case folding, default-ignorable code points removed, both Turkish i's as
 * i. Returns the number of code points in out, or -1 when the fold is
 * longer than UFOLD_CAP (then it cannot equal a pointer token).
 */
static utf8proc_ssize_t
keyfold_nfkc(const char *s, size_t n, utf8proc_int32_t *out)
{
	const utf8proc_option_t opt = UTF8PROC_STABLE | UTF8PROC_COMPAT |
	                              UTF8PROC_COMPOSE | UTF8PROC_CASEFOLD |
	                              UTF8PROC_IGNORE;
	utf8proc_ssize_t k;

	k = utf8proc_decompose_custom((const utf8proc_uint8_t *)s,
	                              (utf8proc_ssize_t)n, out, UFOLD_CAP, opt,
	                              fold_turkish_i, NULL);
	if (k < 0 || k > UFOLD_CAP)
		return -1;
	return utf8proc_normalize_utf32(out, k, opt);
}

/*
 * A non-ASCII member name that some decoder could still match to the
 * token: Java equalsIgnoreCase ("author_ıd"), NFKC-normalising pipelines
 * (fullwidth or mathematical letters), Go's folding (U+017F, U+212A).
 * Only names with a non-ASCII byte get here, so ASCII keys never pay.
 */
bool
keyfold_equal(const char *k, size_t klen, const char *t, size_t tlen)
{
	utf8proc_int32_t a[UFOLD_CAP], b[UFOLD_CAP];
	utf8proc_ssize_t na = keyfold_nfkc(k, klen, a),
	                 nb = keyfold_nfkc(t, tlen, b);

	return na >= 0 && na == nb &&
	       memcmp(a, b, (size_t)na * sizeof(a[0])) == 0;
}
