/*
 * rewrite.c: the request head consentgate sends upstream and the response
 * head it relays to the client (h2o builds the upstream request in
 * lib/core/proxy.c, apart from its HTTP/1 parser). See rewrite_internal.h.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "rewrite_internal.h"

/* Append a string literal (its length computed by the compiler). */
#define ADD_LIT(buf, lit) evbuffer_add((buf), (lit), sizeof(lit) - 1)

static bool
is_consent_field(struct cg_slice n)
{
	return n.len >= 8 && strncasecmp(n.ptr, "consent-", 8) == 0;
}

static void
add_field(struct evbuffer *b, const struct http1_header *h)
{
	evbuffer_add(b, h->name.ptr, h->name.len);
	ADD_LIT(b, ": ");
	evbuffer_add(b, h->value.ptr, h->value.len);
	ADD_LIT(b, "\r\n");
}

void
rewrite_peer(const struct sockaddr *sa, char *out, size_t len)
{
	if (sa->sa_family == AF_INET) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
		          out, (socklen_t)len);
	} else if (sa->sa_family == AF_INET6) {
		char a[INET6_ADDRSTRLEN];

		inet_ntop(AF_INET6,
		          &((const struct sockaddr_in6 *)sa)->sin6_addr, a,
		          sizeof(a));
		snprintf(out, len, "\"[%s]\"", a);
	} else {
		snprintf(out, len, "unknown");
	}
}

/*
 * X-Forwarded-For: the client's own values (every field, in order), then
 * its address, appended as proxies do; one field. The address without the
 * quotes and brackets Forwarded needs for IPv6.
 */
static void
add_forwarded_for(struct evbuffer *h, const struct http1_request *r,
                  const char *addr)
{
	size_t alen = strlen(addr);
	bool first = true;

	ADD_LIT(h, "X-Forwarded-For: ");
	for (unsigned i = 0; i < r->nheaders; i++) {
		const struct http1_header *hd = &r->headers[i];

		if (!cg_slice_ieq(hd->name, "X-Forwarded-For") ||
		    hd->value.len == 0)
			continue;
		if (!first)
			ADD_LIT(h, ", ");
		evbuffer_add(h, hd->value.ptr, hd->value.len);
		first = false;
	}
	if (!first)
		ADD_LIT(h, ", ");
	if (alen >= 4 && addr[0] == '"' && addr[1] == '[')
		evbuffer_add(h, addr + 2, alen - 4); /* "[v6]" */
	else
		evbuffer_add(h, addr, alen);
	ADD_LIT(h, "\r\n");
}

void
rewrite_request_head(struct evbuffer *h, const struct http1_request *r,
                     const struct inspect_result *insp,
                     const struct rewrite_client *from,
                     const char *upstream_hostport, size_t body_len,
                     bool streaming)
{
	evbuffer_add(h, r->method.ptr, r->method.len);
	ADD_LIT(h, " ");
	evbuffer_add(h, r->target.ptr, r->target.len);
	ADD_LIT(h, " HTTP/1.1\r\n");
	for (unsigned i = 0; i < r->nheaders; i++) {
		const struct http1_header *hd = &r->headers[i];
		struct cg_slice n = hd->name;

		if (http1_is_hop_by_hop(n) ||
		    http1_connection_names(r->headers, r->nheaders, n) ||
		    cg_slice_ieq(n, "Content-Length") ||
		    cg_slice_ieq(n, "Expect") || is_consent_field(n) ||
		    cg_slice_ieq(n, "X-Forwarded-For") ||
		    (from->request_id && cg_slice_ieq(n, "X-Request-Id")))
			continue;
		if (insp->active && inspect_drops_header(insp, n))
			continue;
		add_field(h, hd);
	}
	if (r->host.ptr == NULL && r->authority.ptr != NULL) {
		/* HTTP/1.0 absolute-form: the target names the host */
		ADD_LIT(h, "Host: ");
		evbuffer_add(h, r->authority.ptr, r->authority.len);
		ADD_LIT(h, "\r\n");
	} else if (r->host.ptr == NULL) { /* HTTP/1.0 may omit it */
		evbuffer_add_printf(h, "Host: %s\r\n", upstream_hostport);
	}
	if (r->minor == 0)
		ADD_LIT(h, "Via: 1.0 consentgate\r\nForwarded: for=");
	else
		ADD_LIT(h, "Via: 1.1 consentgate\r\nForwarded: for=");
	evbuffer_add(h, from->addr, strlen(from->addr));
	if (from->https)
		ADD_LIT(h, ";proto=https");
	else
		ADD_LIT(h, ";proto=http");
	/* tls.c keeps only identities without '"', '\\' or controls */
	if (from->client)
		evbuffer_add_printf(h, ";client=\"%s\"", from->client);
	ADD_LIT(h, "\r\n");
	add_forwarded_for(h, r, from->addr);
	/* reqid.c keeps only visible ASCII: safe in a field */
	if (from->request_id)
		evbuffer_add_printf(h, "X-Request-Id: %s\r\n",
		                    from->request_id);
	if (streaming)
		ADD_LIT(h, "Transfer-Encoding: chunked\r\n");
	else if (body_len > 0 || r->framing != HTTP1_FRAMING_NONE)
		evbuffer_add_printf(h, "Content-Length: %zu\r\n", body_len);
	if (insp->active)
		inspect_request_headers(insp, h, streaming);
	ADD_LIT(h, "\r\n");
}

void
rewrite_response_head(struct evbuffer *o, const struct http1_response *res,
                      bool strip_consent, bool chunked_client,
                      const char *request_id)
{
	/* the status line without printf: it is on every response */
	char line[16] = "HTTP/1.1 ";

	line[9] = (char)('0' + res->status / 100 % 10);
	line[10] = (char)('0' + res->status / 10 % 10);
	line[11] = (char)('0' + res->status % 10);
	line[12] = ' ';
	evbuffer_add(o, line, 13);
	evbuffer_add(o, res->reason.ptr, res->reason.len);
	ADD_LIT(o, "\r\n");
	for (unsigned i = 0; i < res->nheaders; i++) {
		const struct http1_header *h = &res->headers[i];

		if (http1_is_hop_by_hop(h->name) ||
		    http1_connection_names(res->headers, res->nheaders,
		                           h->name) ||
		    (strip_consent && is_consent_field(h->name)) ||
		    (request_id && cg_slice_ieq(h->name, "X-Request-Id")))
			continue;
		add_field(o, h);
	}
	if (request_id)
		evbuffer_add_printf(o, "X-Request-Id: %s\r\n", request_id);
	if (chunked_client)
		ADD_LIT(o, "Transfer-Encoding: chunked\r\n");
}
