/* respond.c: the responses consentgate writes itself (RFC 9457 problems). */
#include <stdio.h>
#include <string.h>

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

/* Append s to out as the inside of a JSON string. */
static void
json_escape(struct evbuffer *out, const char *s)
{
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			evbuffer_add_printf(out, "\\%c", ch);
		else if (ch < 0x20)
			evbuffer_add_printf(out, "\\u%04x", ch);
		else
			evbuffer_add(out, s, 1);
	}
}

void
respond_problem(struct evbuffer *out, int status, const char *detail,
                bool close, const char *extra_json)
{
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
	json_escape(body, detail ? detail : title);
	evbuffer_add(body, "\"", 1);
	if (extra_json != NULL && *extra_json)
		evbuffer_add_printf(body, ",%s", extra_json);
	ADD_LIT(body, "}\n");
	evbuffer_add_printf(out,
	                    "HTTP/1.1 %d %s\r\n"
	                    "Content-Type: application/problem+json\r\n"
	                    "Content-Length: %zu\r\n"
	                    "Cache-Control: no-store\r\n"
	                    "%s\r\n",
	                    status, title, evbuffer_get_length(body),
	                    close ? "Connection: close\r\n" : "");
	evbuffer_add_buffer(out, body);
	evbuffer_free(body);
}
