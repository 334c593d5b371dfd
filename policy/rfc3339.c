/*
 * rfc3339.c: RFC 3339 date-times to unix seconds, with every field range
 * checked (include/consentgate/rfc3339.h). No libc time functions: timegm
 * would quietly normalise 02-31 into March.
 */
#include "consentgate/rfc3339.h"

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

/* The value of n decimal digits at s, or -1 when one is not a digit. */
static int
digits(const char *s, int n)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

int
rfc3339_parse(const char *s, size_t len, int64_t *sec, uint32_t *nsec)
{
	static const unsigned mdays[] = {31, 28, 31, 30, 31, 30,
	                                 31, 31, 30, 31, 30, 31};
	int y, mo, d, hh, mi, ss, oh = 0, om = 0, sign = 0;
	uint32_t frac = 0;
	size_t i;

	if (len < 20 || s[4] != '-' || s[7] != '-' ||
	    (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':')
		return -1;
	y = digits(s, 4);
	mo = digits(s + 5, 2);
	d = digits(s + 8, 2);
	hh = digits(s + 11, 2);
	mi = digits(s + 14, 2);
	ss = digits(s + 17, 2);
	if (y < 0 || mo < 1 || mo > 12 || d < 1 || hh < 0 || hh > 23 ||
	    mi < 0 || mi > 59 || ss < 0 || ss > 60)
		return -1;
	unsigned leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	if ((unsigned)d > mdays[mo - 1] + (mo == 2 ? leap : 0))
		return -1;
	i = 19;
	if (i < len && s[i] == '.') {
		size_t start = ++i;
		uint32_t scale = 100000000;
		while (i < len && s[i] >= '0' && s[i] <= '9') {
			frac += (uint32_t)(s[i] - '0') * scale;
			scale /= 10;
			i++;
		}
		if (i == start)
			return -1;
	}
	if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
		i++;
	} else if (i < len && (s[i] == '+' || s[i] == '-')) {
		sign = s[i] == '+' ? 1 : -1;
		if (len - i != 6 || s[i + 3] != ':')
			return -1;
		oh = digits(s + i + 1, 2);
		om = digits(s + i + 4, 2);
		if (oh < 0 || oh > 23 || om < 0 || om > 59)
			return -1;
		i += 6;
	} else {
		return -1;
	}
	if (i != len)
		return -1;
	*sec = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 +
	       hh * 3600 + mi * 60 + ss - sign * (oh * 3600 + om * 60);
	if (nsec != NULL)
		*nsec = frac;
	return 0;
}
