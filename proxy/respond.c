/* respond.c: the responses consentgate writes itself (RFC 9457 problems). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "proxy_internal.h"

const char *
respond_reason(int status)
{
	switch (status) {
	case 100:
		return "Continue";
	case 200:
		return "OK";
	case 204:
		return "No Content";
	case 400:
		return "Bad Request";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 413:
		return "Content Too Large";
	case 414:
		return "URI Too Long";
	case 415:
		return "Unsupported Media Type";
	case 417:
		return "Expectation Failed";
	case 422:
		return "Unprocessable Content";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 501:
		return "Not Implemented";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	case 505:
		return "HTTP Version Not Supported";
	default:
		return "Error";
	}
}

void
respond_json_str(struct evbuffer *out, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t run = 0; /* start of the bytes not written yet */

	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch >= 0x20 && ch != '"' && ch != '\\')
			continue;
		evbuffer_add(out, s + run, i - run);
		if (ch < 0x20) {
			char esc[6] = {'\\', 'u',          '0',
			               '0',  hex[ch >> 4], hex[ch & 15]};
			evbuffer_add(out, esc, sizeof(esc));
		} else {
			char esc[2] = {'\\', (char)ch};
			evbuffer_add(out, esc, sizeof(esc));
		}
		run = i + 1;
	}
	evbuffer_add(out, s + run, n - run);
}

void
respond_date(char out[32])
{
	/* one strftime per second and thread: problems can come in floods */
	static _Thread_local time_t cached_at;
	static _Thread_local char cached[32];
	time_t now = time(NULL);

	if (now != cached_at) {
		struct tm tm;

		gmtime_r(&now, &tm);
		strftime(cached, sizeof(cached), "%a, %d %b %Y %H:%M:%S GMT",
		         &tm);
		cached_at = now;
	}
	memcpy(out, cached, sizeof(cached));
}

void
respond_problem(struct evbuffer *out, int status, const char *detail,
                bool close, const char *extra_json, const char *headers)
{
	char date[32];

	struct evbuffer *body = evbuffer_new();
	const char *title = respond_reason(status);
	char slug[64];
	size_t i;

	for (i = 0; title[i] && i < sizeof(slug) - 1; i++)
		slug[i] = title[i] == ' ' ? '-'
		          : (title[i] >= 'A' && title[i] <= 'Z')
		              ? (char)(title[i] + 32)
		              : title[i];
	slug[i] = '\0';
	evbuffer_add_printf(
	    body,
	    "{\"type\":\"urn:consentgate:problem:%s\",\"title\":\"%s\","
	    "\"status\":%d,\"detail\":\"",
	    slug, title, status);
	if (detail == NULL)
		detail = title;
	respond_json_str(body, detail, strlen(detail));
	evbuffer_add(body, "\"", 1);
	if (extra_json != NULL && *extra_json)
		evbuffer_add_printf(body, ",%s", extra_json);
	ADD_LIT(body, "}\n");
	respond_date(date);
	evbuffer_add_printf(out,
	                    "HTTP/1.1 %d %s\r\n"
	                    "Date: %s\r\n"
	                    "Content-Type: application/problem+json\r\n"
	                    "Content-Length: %zu\r\n"
	                    "Cache-Control: no-store\r\n"
	                    "%s%s%s\r\n",
	                    status, title, date, evbuffer_get_length(body),
	                    /* 503: stale consent or no descriptor left,
	                       both worth a retry in a second */
	                    status == 503 ? "Retry-After: 1\r\n" : "",
	                    headers ? headers : "",
	                    close ? "Connection: close\r\n" : "");
	evbuffer_add_buffer(out, body);
	evbuffer_free(body);
}
