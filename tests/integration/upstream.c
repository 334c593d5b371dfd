/*
 * upstream.c: the recording test upstream of the integration tests.
 *
 * Listens on 127.0.0.1:0 (or --port N), prints "listening PORT" on stdout,
 * and serves each connection in its own thread with blocking sockets: the
 * simplest code that is obviously right, which is what a test oracle needs.
 *
 * With --record DIR it writes, for every COMPLETE request (head and whole
 * body received), three files named by a global sequence number:
 *   NNNNNN.head  the request head byte-exact (through the empty line)
 *   NNNNNN.body  the body, de-chunked when chunked
 *   NNNNNN.trailers  the trailer field lines of a chunked body (often empty)
 *   NNNNNN.meta  "conn C\nseq S\nchunked 0|1\n" (S: index on its connection)
 * each written to a temporary name and renamed, so a reader never sees a
 * half-written request. Every byte received on connection C is appended to
 * conn-CCCCCC.raw as it arrives; an incomplete request shows up only there.
 *
 * The response is chosen by the path (a scenario is data):
 *   /echo              200, the request body, Content-Length
 *   /chunked?n=N       200, chunked, N bytes (default 1000) in several chunks
 *   /close-delimited   200, no length, body then close
 *   /empty204          204, no body
 *   /not-modified      304, no body
 *   /slow?ms=N         200 "slow" after N ms
 *   /hang              never answers (waits for the peer to close)
 *   /die-mid           Content-Length 100, sends 50 bytes, closes
 *   /big?n=N           200, N bytes of a known pattern, Content-Length
 *   /resp-hop          200 with hop-by-hop response headers to strip
 *   /early-hints       103 Early Hints, then 200 "ok"
 *   /bad-cl            200 with two different Content-Length (broken)
 *   /cl-te             200 with Content-Length and chunked (ambiguous)
 *   /slow-read?ms=N    waits N ms before reading the body, then 200 "ok"
 *   /close-after?ms=N  200 "ok" saying keep-alive, then closes after N ms
 *                      (a pooled connection that goes stale)
 *   anything else      200 "ok"
 * HEAD gets the GET headers without a body. Keep-alive unless the request
 * says Connection: close or is HTTP/1.0.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_HEAD 65536       /* bytes of a request head */
#define MAX_BODY (64u << 20) /* bytes of a request body */

static const char *record_dir;
static pthread_mutex_t seq_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long next_req = 1;
static unsigned long next_conn = 1;

struct conn {
	int fd;
	unsigned long id;
	FILE *raw;
	char *buf; /* received, not yet consumed */
	size_t len, cap;
	int eof;
};

static void
die(const char *msg)
{
	perror(msg);
	exit(1);
}

/* Read more bytes into c->buf; 0 on data, -1 on EOF or error. */
static int
fill(struct conn *c)
{
	if (c->len == c->cap) {
		size_t ncap = c->cap ? c->cap * 2 : 65536;
		char *n = realloc(c->buf, ncap);
		if (n == NULL)
			return -1;
		c->buf = n;
		c->cap = ncap;
	}
	ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
	if (r <= 0) {
		c->eof = 1;
		return -1;
	}
	if (c->raw) {
		fwrite(c->buf + c->len, 1, (size_t)r, c->raw);
		fflush(c->raw);
	}
	c->len += (size_t)r;
	return 0;
}

static void
consume(struct conn *c, size_t n)
{
	memmove(c->buf, c->buf + n, c->len - n);
	c->len -= n;
}

static int
send_all(int fd, const void *p, size_t n)
{
	const char *s = p;
	while (n > 0) {
		ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
		if (w <= 0) {
			if (w < 0 && errno == EINTR)
				continue;
			return -1;
		}
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

static int
sendf(int fd, const char *fmt, ...)
{
	char tmp[4096];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return -1;
	return send_all(fd, tmp, (size_t)n);
}

/* Value of header name in head[0,len) (case-insensitive), copied into out. */
static int
header_value(const char *head, size_t len, const char *name, char *out,
             size_t outsz)
{
	size_t nl = strlen(name);
	const char *p = memchr(head, '\n', len);
	const char *end = head + len;
	while (p != NULL && p + 1 < end) {
		const char *line = p + 1;
		const char *eol = memchr(line, '\n', (size_t)(end - line));
		if (eol == NULL)
			break;
		if ((size_t)(eol - line) > nl && line[nl] == ':' &&
		    strncasecmp(line, name, nl) == 0) {
			const char *v = line + nl + 1;
			const char *ve = eol;
			while (v < ve && (*v == ' ' || *v == '\t'))
				v++;
			while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' ||
			                  ve[-1] == '\t'))
				ve--;
			size_t vl = (size_t)(ve - v);
			if (vl >= outsz)
				vl = outsz - 1;
			memcpy(out, v, vl);
			out[vl] = '\0';
			return 1;
		}
		p = eol;
	}
	return 0;
}

static long
query_num(const char *target, const char *key, long dflt)
{
	const char *q = strchr(target, '?');
	size_t kl = strlen(key);
	while (q != NULL) {
		q++;
		if (strncmp(q, key, kl) == 0 && q[kl] == '=')
			return strtol(q + kl + 1, NULL, 10);
		q = strchr(q, '&');
	}
	return dflt;
}

static void
write_file(const char *name, const char *data, size_t len)
{
	char tmp[4096], final[4096];
	snprintf(tmp, sizeof(tmp), "%s/.tmp-%s", record_dir, name);
	snprintf(final, sizeof(final), "%s/%s", record_dir, name);
	FILE *f = fopen(tmp, "wb");
	if (f == NULL)
		die("record");
	fwrite(data, 1, len, f);
	fclose(f);
	if (rename(tmp, final) != 0)
		die("rename");
}

static void
record(struct conn *c, unsigned long seq, const char *head, size_t hlen,
       const char *body, size_t blen, int chunked, const char *trailers,
       size_t tlen)
{
	if (record_dir == NULL)
		return;
	pthread_mutex_lock(&seq_lock);
	unsigned long n = next_req++;
	char name[64], meta[256];
	/* Head and body first, meta last: a reader waits for the meta. */
	snprintf(name, sizeof(name), "%06lu.head", n);
	write_file(name, head, hlen);
	snprintf(name, sizeof(name), "%06lu.body", n);
	write_file(name, body, blen);
	snprintf(name, sizeof(name), "%06lu.trailers", n);
	write_file(name, trailers ? trailers : "", tlen);
	int ml = snprintf(meta, sizeof(meta), "conn %lu\nseq %lu\nchunked %d\n",
	                  c->id, seq, chunked);
	snprintf(name, sizeof(name), "%06lu.meta", n);
	write_file(name, meta, (size_t)ml);
	pthread_mutex_unlock(&seq_lock);
}

static void
pattern(char *p, size_t n, size_t off)
{
	for (size_t i = 0; i < n; i++) {
		size_t k = off + i;
		p[i] = (char)('a' + (k * 7 + k / 26) % 26);
	}
}

static void
msleep(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Read a chunked body and its trailer section (*trailers, the field lines
 * as received, CRLFs included); -1 on EOF or malformed framing. */
static int
read_chunked(struct conn *c, char **body, size_t *blen, char **trailers,
             size_t *tlen)
{
	char *t = NULL;
	size_t tl = 0;
	size_t cap = 65536, len = 0;
	char *b = malloc(cap);
	if (b == NULL)
		return -1;
	for (;;) {
		char *eol;
		while ((eol = memmem(c->buf, c->len, "\r\n", 2)) == NULL)
			if (c->len > 4096 || fill(c) < 0)
				goto fail;
		char *endp;
		errno = 0;
		unsigned long long sz = strtoull(c->buf, &endp, 16);
		if (endp == c->buf || errno != 0 || sz > MAX_BODY)
			goto fail;
		consume(c, (size_t)(eol - c->buf) + 2);
		if (sz == 0)
			break;
		if (len + sz > MAX_BODY)
			goto fail;
		if (len + sz > cap) {
			while (cap < len + sz)
				cap *= 2;
			char *nb = realloc(b, cap);
			if (nb == NULL)
				goto fail;
			b = nb;
		}
		while (c->len < sz + 2)
			if (fill(c) < 0)
				goto fail;
		memcpy(b + len, c->buf, sz);
		len += sz;
		if (c->buf[sz] != '\r' || c->buf[sz + 1] != '\n')
			goto fail;
		consume(c, sz + 2);
	}
	/* Trailer fields, then the empty line. */
	for (;;) {
		char *eol;
		while ((eol = memmem(c->buf, c->len, "\r\n", 2)) == NULL)
			if (c->len > 65536 || fill(c) < 0)
				goto fail;
		size_t ll = (size_t)(eol - c->buf);
		if (ll > 0) {
			char *nt = realloc(t, tl + ll + 2);
			if (nt == NULL)
				goto fail;
			t = nt;
			memcpy(t + tl, c->buf, ll + 2);
			tl += ll + 2;
		}
		consume(c, ll + 2);
		if (ll == 0)
			break;
	}
	*body = b;
	*blen = len;
	*trailers = t;
	*tlen = tl;
	return 0;
fail:
	free(b);
	free(t);
	return -1;
}

static int
respond(struct conn *c, const char *method, const char *target, int keep,
        const char *body, size_t blen)
{
	int head = strcmp(method, "HEAD") == 0;
	const char *conn_hdr = keep ? "keep-alive" : "close";
	char path[1024];
	size_t pl = strcspn(target, "?");
	if (pl >= sizeof(path))
		pl = sizeof(path) - 1;
	memcpy(path, target, pl);
	path[pl] = '\0';

	if (strncmp(path, "/echo", 5) == 0) {
		if (sendf(c->fd,
		          "HTTP/1.1 200 OK\r\nContent-Type: "
		          "application/octet-stream\r\nContent-Length: %zu\r\n"
		          "X-Upstream-Conn: %lu\r\nConnection: %s\r\n\r\n",
		          blen, c->id, conn_hdr) < 0)
			return -1;
		return head ? 0 : send_all(c->fd, body, blen);
	}
	if (strncmp(path, "/chunked", 8) == 0) {
		long n = query_num(target, "n", 1000);
		if (sendf(c->fd,
		          "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
		          "X-Upstream-Conn: %lu\r\nConnection: %s\r\n\r\n",
		          c->id, conn_hdr) < 0)
			return -1;
		if (head)
			return 0;
		char buf[8192];
		size_t off = 0, step = 1;
		while (off < (size_t)n) {
			size_t k = (size_t)n - off;
			if (k > step)
				k = step;
			pattern(buf, k, off);
			if (sendf(c->fd, "%zx\r\n", k) < 0 ||
			    send_all(c->fd, buf, k) < 0 ||
			    send_all(c->fd, "\r\n", 2) < 0)
				return -1;
			off += k;
			step = step * 3 + 1;
			if (step > sizeof(buf))
				step = sizeof(buf);
		}
		return send_all(c->fd, "0\r\n\r\n", 5);
	}
	if (strncmp(path, "/close-delimited", 16) == 0) {
		if (sendf(c->fd,
		          "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n") < 0)
			return -1;
		if (!head)
			sendf(c->fd, "close-delimited body\n");
		return -1; /* the end of the body is the close */
	}
	if (strncmp(path, "/empty204", 9) == 0)
		return sendf(
		    c->fd, "HTTP/1.1 204 No Content\r\nConnection: %s\r\n\r\n",
		    conn_hdr);
	if (strncmp(path, "/not-modified", 13) == 0)
		return sendf(c->fd,
		             "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\n"
		             "Connection: %s\r\n\r\n",
		             conn_hdr);
	if (strncmp(path, "/slow", 5) == 0)
		msleep(query_num(target, "ms", 1000));
	if (strncmp(path, "/hang", 5) == 0) {
		while (fill(c) == 0)
			c->len = 0;
		return -1;
	}
	if (strncmp(path, "/die-mid", 8) == 0) {
		char half[50];
		memset(half, 'x', sizeof(half));
		sendf(c->fd, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
		if (!head)
			send_all(c->fd, half, sizeof(half));
		return -1;
	}
	if (strncmp(path, "/big", 4) == 0) {
		long n = query_num(target, "n", 1 << 20);
		if (sendf(c->fd,
		          "HTTP/1.1 200 OK\r\nContent-Length: %ld\r\n"
		          "X-Upstream-Conn: %lu\r\nConnection: %s\r\n\r\n",
		          n, c->id, conn_hdr) < 0)
			return -1;
		if (head)
			return 0;
		char buf[65536];
		for (long off = 0; off < n;) {
			size_t k = (size_t)(n - off);
			if (k > sizeof(buf))
				k = sizeof(buf);
			pattern(buf, k, (size_t)off);
			if (send_all(c->fd, buf, k) < 0)
				return -1;
			off += (long)k;
		}
		return 0;
	}
	if (strncmp(path, "/resp-hop", 9) == 0)
		return sendf(
		    c->fd,
		    "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
		    "Connection: keep-alive, X-Secret-Hop\r\n"
		    "Keep-Alive: timeout=5\r\nX-Secret-Hop: 1\r\n"
		    "Proxy-Authenticate: Basic\r\nX-End-To-End: yes\r\n"
		    "\r\n%s",
		    head ? "" : "ok\n");
	if (strncmp(path, "/early-hints", 12) == 0)
		return sendf(c->fd,
		             "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; "
		             "rel=preload\r\n\r\nHTTP/1.1 200 OK\r\n"
		             "Content-Length: 3\r\nConnection: %s\r\n\r\n%s",
		             conn_hdr, head ? "" : "ok\n");
	if (strncmp(path, "/bad-cl", 7) == 0) {
		sendf(c->fd, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
		             "Content-Length: 5\r\n\r\nok\nXY");
		return -1;
	}
	if (strncmp(path, "/cl-te", 6) == 0) {
		sendf(c->fd, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n"
		             "Transfer-Encoding: chunked\r\n\r\n3\r\nok\n\r\n"
		             "0\r\n\r\n");
		return -1;
	}
	if (strncmp(path, "/close-after", 12) == 0) {
		if (sendf(c->fd,
		          "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
		          "X-Upstream-Conn: %lu\r\nConnection: "
		          "keep-alive\r\n\r\nok\n",
		          c->id) < 0)
			return -1;
		msleep(query_num(target, "ms", 100));
		return -1;
	}
	const char *text = strncmp(path, "/slow", 5) == 0 ? "slow\n" : "ok\n";
	if (sendf(c->fd,
	          "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
	          "Content-Length: %zu\r\nX-Upstream-Conn: %lu\r\n"
	          "Connection: %s\r\n\r\n",
	          strlen(text), c->id, conn_hdr) < 0)
		return -1;
	return head ? 0 : sendf(c->fd, "%s", text);
}

static void *
serve(void *arg)
{
	struct conn *c = arg;
	unsigned long seq = 0;
	if (record_dir != NULL) {
		char name[4096];
		snprintf(name, sizeof(name), "%s/conn-%06lu.raw", record_dir,
		         c->id);
		c->raw = fopen(name, "wb");
	}
	for (;;) {
		char *end;
		while ((end = memmem(c->buf, c->len, "\r\n\r\n", 4)) == NULL) {
			if (c->len > MAX_HEAD || fill(c) < 0)
				goto done;
		}
		size_t hlen = (size_t)(end - c->buf) + 4;
		char *head = malloc(hlen + 1);
		if (head == NULL)
			goto done;
		memcpy(head, c->buf, hlen);
		head[hlen] = '\0';
		consume(c, hlen);

		char method[32] = "", target[2048] = "", version[32] = "";
		if (sscanf(head, "%31s %2047s %31s", method, target, version) !=
		    3) {
			free(head);
			goto done;
		}
		char v[256];
		int keep = strcmp(version, "HTTP/1.1") == 0;
		if (header_value(head, hlen, "Connection", v, sizeof(v))) {
			if (strcasestr(v, "close"))
				keep = 0;
			else if (strcasestr(v, "keep-alive"))
				keep = 1;
		}
		char *body = NULL, *trailers = NULL;
		size_t blen = 0, tlen = 0;
		/* /slow-read: the peer must hold the body back for a while. */
		if (strncmp(target, "/slow-read", 10) == 0)
			msleep(query_num(target, "ms", 500));
		int chunked = header_value(head, hlen, "Transfer-Encoding", v,
		                           sizeof(v)) &&
		              strcasestr(v, "chunked") != NULL;
		if (chunked) {
			if (read_chunked(c, &body, &blen, &trailers, &tlen) <
			    0) {
				free(head);
				goto done;
			}
		} else {
			unsigned long long cl = 0;
			if (header_value(head, hlen, "Content-Length", v,
			                 sizeof(v)))
				cl = strtoull(v, NULL, 10);
			if (cl > MAX_BODY) {
				free(head);
				goto done;
			}
			while (c->len < cl)
				if (fill(c) < 0) {
					free(head);
					goto done;
				}
			blen = (size_t)cl;
			body = malloc(blen + 1);
			if (body == NULL) {
				free(head);
				goto done;
			}
			memcpy(body, c->buf, blen);
			consume(c, blen);
		}
		record(c, seq++, head, hlen, body, blen, chunked, trailers,
		       tlen);
		free(trailers);
		int rc = respond(c, method, target, keep, body, blen);
		free(head);
		free(body);
		if (rc < 0 || !keep)
			goto done;
	}
done:
	shutdown(c->fd, SHUT_WR);
	close(c->fd);
	if (c->raw)
		fclose(c->raw);
	free(c->buf);
	free(c);
	return NULL;
}

int
main(int argc, char **argv)
{
	int port = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--record") == 0 && i + 1 < argc)
			record_dir = argv[++i];
		else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
			port = atoi(argv[++i]);
		else {
			fprintf(
			    stderr,
			    "usage: test-upstream [--record DIR] [--port N]\n");
			return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	if (record_dir != NULL)
		mkdir(record_dir, 0755);
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0)
		die("socket");
	int one = 1;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in sa = {0};
	sa.sin_family = AF_INET;
	sa.sin_port = htons((unsigned short)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die("bind");
	if (listen(lfd, 512) < 0)
		die("listen");
	socklen_t sl = sizeof(sa);
	if (getsockname(lfd, (struct sockaddr *)&sa, &sl) < 0)
		die("getsockname");
	printf("listening %d\n", ntohs(sa.sin_port));
	fflush(stdout);
	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED ||
			    errno == EMFILE || errno == ENFILE) {
				if (errno == EMFILE || errno == ENFILE)
					msleep(10);
				continue;
			}
			die("accept");
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		struct conn *c = calloc(1, sizeof(*c));
		if (c == NULL) {
			close(fd);
			continue;
		}
		c->fd = fd;
		pthread_mutex_lock(&seq_lock);
		c->id = next_conn++;
		pthread_mutex_unlock(&seq_lock);
		pthread_t t;
		pthread_attr_t attr;
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&t, &attr, serve, c) != 0) {
			close(fd);
			free(c);
		}
		pthread_attr_destroy(&attr);
	}
}
