/*
 * listen.c: listening sockets, and the checks that an address is ours
 * alone.
 *
 * Every worker has its own listening socket on the same address
 * (SO_REUSEPORT), so the kernel spreads connections over the workers. But
 * SO_REUSEPORT lets any process of the same user join the group: a second
 * consentgate with another (say older, laxer) policy started on the same
 * address would silently take half the traffic. So, before the workers
 * bind, a probe binds the address without SO_REUSEPORT: that fails with
 * EADDRINUSE on any listener there, SO_REUSEPORT or not. Two instances
 * started at the same moment could both pass the probe before either
 * binds; after binding, each therefore looks for listening sockets on its
 * port that are not its own (/proc/net/tcp), and refuses to start when it
 * finds one. Whichever binds second sees the first; neither has accepted a
 * connection at that point.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proxy_internal.h"

#define LISTEN_BACKLOG 4096 /* connections the kernel queues per socket */

static void
set_port(struct sockaddr_storage *ss, int port)
{
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
	else
		((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
}

int
listen_addr_port(const struct sockaddr_storage *ss)
{
	return ntohs(ss->ss_family == AF_INET
	                 ? ((const struct sockaddr_in *)ss)->sin_port
	                 : ((const struct sockaddr_in6 *)ss)->sin6_port);
}

/* Close fd keeping errno (the reason the caller reports); -1. */
static int
close_failed(int fd)
{
	int saved = errno;

	close(fd);
	errno = saved;
	return -1;
}

/* A socket bound to addr (port replaced when port > 0); -1 with errno. */
static int
bound_socket(const struct sockaddr_storage *addr, socklen_t len, int port,
             bool reuseport)
{
	struct sockaddr_storage ss = *addr;
	int fd, one = 1;

	if (port > 0)
		set_port(&ss, port);
	fd =
	    socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	/* SO_REUSEADDR only passes over connections in TIME_WAIT; it never
	   lets two listeners share an address */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (reuseport)
		setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) != 0)
		return close_failed(fd);
	return fd;
}

int
listen_open(const struct sockaddr_storage *addr, socklen_t len, int port,
            bool reuseport)
{
	int fd = bound_socket(addr, len, port, reuseport);

	if (fd >= 0 && listen(fd, LISTEN_BACKLOG) != 0)
		return close_failed(fd);
	return fd;
}

int
listen_probe(const struct sockaddr_storage *addr, socklen_t len)
{
	int fd;

	if (listen_addr_port(addr) == 0)
		return 0; /* the kernel picks a free port */
	/* bound, never listening: no client can be accepted and reset */
	fd = bound_socket(addr, len, 0, false);
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

/* The address as /proc/net/tcp{,6} prints it: the raw 32-bit words of the
 * address in network order, each as %08X of its native value. */
static void
proc_addr(const struct sockaddr_storage *ss, char *out, size_t cap)
{
	uint32_t w[4];

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)ss;

		snprintf(out, cap, "%08X", in->sin_addr.s_addr);
	} else {
		const struct sockaddr_in6 *in6 = (const void *)ss;

		memcpy(w, &in6->sin6_addr, sizeof(w));
		snprintf(out, cap, "%08X%08X%08X%08X", w[0], w[1], w[2], w[3]);
	}
}

static bool
all_zero(const char *hex)
{
	return hex[strspn(hex, "0")] == '\0';
}

int
listen_check_alone(const struct sockaddr_storage *ss, int port, const int *fds,
                   unsigned n)
{
	const char *table =
	    ss->ss_family == AF_INET ? "/proc/net/tcp" : "/proc/net/tcp6";
	char ours[40], line[512];
	FILE *f = fopen(table, "re");
	int rc = 0;

	if (f == NULL)
		return 0; /* no /proc: the probe before binding has to do */
	proc_addr(ss, ours, sizeof(ours));
	if (fgets(line, sizeof(line), f) == NULL) /* the header */
		goto out;
	while (fgets(line, sizeof(line), f) != NULL) {
		char addr[40];
		unsigned p, st;
		unsigned long inode;
		bool mine = false;

		/* sl local rem st tx:rx tr:when retrnsmt uid timeout inode */
		if (sscanf(line,
		           " %*s %39[0-9A-Fa-f]:%x %*s %x %*s %*s %*s %*s %*s "
		           "%lu",
		           addr, &p, &st, &inode) != 4)
			continue;
		if (st != 0x0A || (int)p != port) /* 0A: LISTEN */
			continue;
		if (strcmp(addr, ours) != 0 && !all_zero(addr) &&
		    !all_zero(ours))
			continue;
		for (unsigned i = 0; i < n && !mine; i++) {
			struct stat sb;

			mine = fstat(fds[i], &sb) == 0 &&
			       (unsigned long)sb.st_ino == inode;
		}
		if (!mine) {
			rc = -1;
			break;
		}
	}
out:
	fclose(f);
	if (rc != 0)
		errno = EADDRINUSE;
	return rc;
}
