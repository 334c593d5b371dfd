/*
 * http1_class.c: the byte classes the strict HTTP/1.1 code tests with one
 * table load (token, field value, request-target and path, hex, host;
 * RFC 9110 and RFC 3986), and ASCII lower case for case-blind compares.
 * Built by the compiler from the RFC grammar, so no byte is listed by hand.
 */
#include "http1_internal.h"

#define IS_ALNUM(c)                                                            \
	(((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z') ||           \
	 ((c) >= '0' && (c) <= '9'))
#define IS_TCHAR(c)                                                            \
	(IS_ALNUM(c) || (c) == '!' || (c) == '#' || (c) == '$' ||              \
	 (c) == '%' || (c) == '&' || (c) == '\'' || (c) == '*' ||              \
	 (c) == '+' || (c) == '-' || (c) == '.' || (c) == '^' || (c) == '_' || \
	 (c) == '`' || (c) == '|' || (c) == '~')
#define IS_SUBDELIM(c)                                                         \
	((c) == '!' || (c) == '$' || (c) == '&' || (c) == '\'' ||              \
	 (c) == '(' || (c) == ')' || (c) == '*' || (c) == '+' || (c) == ',' || \
	 (c) == ';' || (c) == '=')
#define IS_UNRESERVED(c)                                                       \
	(IS_ALNUM(c) || (c) == '-' || (c) == '.' || (c) == '_' || (c) == '~')
#define IS_HEX(c)                                                              \
	(((c) >= '0' && (c) <= '9') || ((c) >= 'a' && (c) <= 'f') ||           \
	 ((c) >= 'A' && (c) <= 'F'))

/*
 * A request-target byte: RFC 3986 allows pchar, '/', '?' and '%' only, but
 * clients send '"', '<', '>', '[', ']', '\\', '^', '`', '{', '|', '}' raw
 * (curl as given, browsers some of them), nginx 1.22 and HAProxy 2.6
 * forward them, and no
 * request-line parser we know (http-parser, llhttp, nginx, HAProxy,
 * Python's str.split) splits at them: SP, controls, DEL and non-ASCII are
 * what some split at. '#' starts a fragment that a peer would cut off.
 */
#define IS_TARGET(c) ((c) > 0x20 && (c) < 0x7f && (c) != '#')

#define CLASS_OF(c)                                                            \
	((IS_TCHAR(c) ? HTTP1_TCHAR : 0) |                                     \
	 (((c) == '\t' || ((c) >= 0x20 && (c) != 0x7f)) ? HTTP1_FVAL : 0) |    \
	 (IS_TARGET(c) ? HTTP1_TARGET : 0) |                                   \
	 ((IS_TARGET(c) && (c) != '\\') ? HTTP1_PATH : 0) |                    \
	 (IS_HEX(c) ? HTTP1_HEX : 0) |                                         \
	 ((IS_UNRESERVED(c) || IS_SUBDELIM(c) || (c) == ':' || (c) == '%' ||   \
	   (c) == '[' || (c) == ']')                                           \
	      ? HTTP1_HOST                                                     \
	      : 0))

#define T1(c) CLASS_OF(c)
#define T4(c) T1(c), T1((c) + 1), T1((c) + 2), T1((c) + 3)
#define T16(c) T4(c), T4((c) + 4), T4((c) + 8), T4((c) + 12)
#define T64(c) T16(c), T16((c) + 16), T16((c) + 32), T16((c) + 48)

const unsigned char http1_class[256] = {T64(0), T64(64), T64(128), T64(192)};

/* ASCII lower case, with '_' read as '-' (see fold_eq). */
#define L1(c) (((c) >= 'A' && (c) <= 'Z') ? ((c) | 0x20) : (c))
#define L4(c) L1(c), L1((c) + 1), L1((c) + 2), L1((c) + 3)
#define L16(c) L4(c), L4((c) + 4), L4((c) + 8), L4((c) + 12)
#define L64(c) L16(c), L16((c) + 16), L16((c) + 32), L16((c) + 48)

const unsigned char http1_class_lower[256] = {L64(0), L64(64), L64(128),
                                              L64(192)};
