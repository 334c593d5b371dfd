/*
 * subject_id.c: subject ids that some reader would read as another id:
 * integers a double cannot hold, and strings pandas' dtype inference turns
 * into such numbers. The scanner asks once per subject; plain ids take the
 * first test and return.
 */
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include <utf8proc.h>

#include "scan_internal.h"

static bool
all_digits(const char *p, const char *e)
{
	for (; p < e; p++)
		if ((unsigned)(*p - '0') >= 10)
			return false;
	return true;
}

/*
 * A numeric subject id [s, e) that readers holding numbers as doubles
 * (JavaScript, Go's interface{}, jq, orjson beyond 64 bits) would read as
 * another id: beyond 2^53 a double rounds (9007199254740993 becomes
 * ...992), and -0 prints as 0. Returns the refusal, or NULL when every
 * reader reads the integer as written.
 */
const char *
subject_id_number_unsafe(const char *s, const char *e)
{
	bool neg = *s == '-';
	const char *d = s + neg;
	size_t n = (size_t)(e - d);

	if (neg && n == 1 && *d == '0')
		return "subject id -0: readers read it as 0; send the id as a "
		       "JSON string";
	if (n > 16 || (n == 16 && memcmp(d, "9007199254740992", 16) > 0))
		return "subject id is a number beyond 2^53: readers that "
		       "hold numbers as doubles (JavaScript, Go, jq) round it "
		       "to another id; send it as a JSON string, on a route "
		       "with \"subject_ids\": \"text\" (pandas rounds long "
		       "digit strings too)";
	return NULL;
}

/*
 * A string subject id as Python's float() sees it (pandas' read_json
 * converts a column of numeric-looking strings through float64 by
 * default): ASCII with every Unicode decimal digit as '1', every Unicode
 * space as ' ', any other non-ASCII character as 'x'. Returns the length
 * written to out (which holds n bytes).
 */
static size_t
float_view(const char *s, size_t n, char *out)
{
	size_t o = 0, i = 0;

	while (i < n) {
		utf8proc_int32_t cp;
		utf8proc_ssize_t k;
		const utf8proc_property_t *pr;

		if ((uint8_t)s[i] < 0x80) {
			out[o++] = s[i++];
			continue;
		}
		k = utf8proc_iterate((const utf8proc_uint8_t *)s + i,
		                     (utf8proc_ssize_t)(n - i), &cp);
		if (k <= 0)
			k = 1, cp = -1;
		i += (size_t)k;
		pr = cp >= 0 ? utf8proc_get_property(cp) : NULL;
		if (pr != NULL && pr->category == UTF8PROC_CATEGORY_ND)
			out[o++] = '1';
		else if (pr != NULL &&
		         (pr->category == UTF8PROC_CATEGORY_ZS ||
		          pr->bidi_class == UTF8PROC_BIDI_CLASS_WS ||
		          pr->bidi_class == UTF8PROC_BIDI_CLASS_B ||
		          pr->bidi_class == UTF8PROC_BIDI_CLASS_S))
			out[o++] = ' ';
		else
			out[o++] = 'x';
	}
	return o;
}

/* Digits with single '_' between them (Python's digitpart). */
static const char *
float_digits(const char *p, const char *e)
{
	const char *start = p;

	while (p < e && (unsigned)(*p - '0') < 10) {
		p++;
		if (p + 1 < e && *p == '_' && (unsigned)(p[1] - '0') < 10)
			p++;
	}
	return p > start ? p : NULL;
}

static bool
py_space(char ch)
{
	return ch == ' ' || (ch >= '\t' && ch <= '\r') ||
	       (ch >= 0x1c && ch <= 0x1f);
}

/* True when Python's float() accepts t[0,n) (ASCII, see float_view). */
static bool
float_accepts(const char *t, size_t n)
{
	const char *p = t, *e = t + n, *q;

	while (p < e && py_space(*p))
		p++;
	while (e > p && py_space(e[-1]))
		e--;
	if (p < e && (*p == '+' || *p == '-'))
		p++;
	if ((e - p == 3 && (strncasecmp(p, "inf", 3) == 0 ||
	                    strncasecmp(p, "nan", 3) == 0)) ||
	    (e - p == 8 && strncasecmp(p, "infinity", 8) == 0))
		return true;
	if ((q = float_digits(p, e)) != NULL) {
		p = q;
		if (p < e && *p == '.') {
			p++;
			if ((q = float_digits(p, e)) != NULL)
				p = q;
		}
	} else if (p < e && *p == '.' && (q = float_digits(p + 1, e)) != NULL) {
		p = q;
	} else {
		return false;
	}
	if (p < e && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < e && (*p == '+' || *p == '-'))
			p++;
		if ((q = float_digits(p, e)) == NULL)
			return false;
		p = q;
	}
	return p == e;
}

/*
 * A string subject id that pandas would read as another id: one Python's
 * float() accepts ("0042", "1e3", " 12", "1_000", "NaN", Arabic-Indic
 * digits) that is not a plain integer a double holds exactly. Those read
 * back the same; anything else numeric-looking does not. NULL when safe.
 */
const char *
subject_id_string_unsafe(const char *s, size_t n)
{
	char t[CG_MAX_SUBJECT_LEN];
	const char *d;
	size_t tn;

	if (n == 0 || n > sizeof(t))
		return NULL;
	/* the common ids: plain digits, or a letter first (no float()
	 * reads those) */
	d = s + (s[0] == '-');
	if (d < s + n && all_digits(d, s + n))
		goto digits;
	if (((uint8_t)s[0] | 0x20) >= 'a' && ((uint8_t)s[0] | 0x20) <= 'z' &&
	    ((uint8_t)s[0] | 0x20) != 'i' && ((uint8_t)s[0] | 0x20) != 'n')
		return NULL;
	tn = float_view(s, n, t);
	if (!float_accepts(t, tn))
		return NULL;
	goto unsafe; /* numeric, and not plain digits */
digits:
	/* plain: -?[1-9][0-9]* or 0, and within 2^53 */
	if ((d[0] != '0' || (n == 1 && d == s)) &&
	    subject_id_number_unsafe(s, s + n) == NULL)
		return NULL;
unsafe:
	return "subject id is a number written as a string that pandas' "
	       "default dtype inference reads as another id (\"0042\" as "
	       "42, digits beyond 2^53 rounded); send plain digits up to "
	       "2^53, or declare \"subject_ids\": \"text\" on the route "
	       "if the pipeline reads ids as text";
}
