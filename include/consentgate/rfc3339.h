/*
 * rfc3339.h: the one RFC 3339 date-time parser. The consent importer reads
 * updated_at with it, and the CLI reads --now and a case file's "now" with
 * it, so a time one refuses is never accepted by the other.
 */
#ifndef CONSENTGATE_RFC3339_H
#define CONSENTGATE_RFC3339_H

#include <stddef.h>
#include <stdint.h>

/*
 * Parse s[0,len) (not NUL-terminated) as
 * "YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)", T and Z in either case.
 * The day must exist in its month (02-29 in leap years only), hours are
 * 00-23, minutes 00-59, seconds 00-60 (a leap second reads as the next
 * second), an offset at most 23:59; a '.' needs at least one digit, and
 * digits past the ninth are ignored. A space for the T is refused.
 * Returns 0 with *sec (unix seconds, UTC) and *nsec (the fraction in
 * nanoseconds; nsec may be NULL), or -1 when s is not such a time (*sec
 * and *nsec are then left alone).
 */
int rfc3339_parse(const char *s, size_t len, int64_t *sec, uint32_t *nsec);

#endif
