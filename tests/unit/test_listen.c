/*
 * test_listen.c: an address another listener holds is refused, also when
 * that listener shares it through SO_REUSEPORT (the probe before binding,
 * and the look for foreign sockets after it, which closes the race of two
 * instances starting at once).
 */
/* cmocka.h needs these three before it */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
/* clang-format on */

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "../../proxy/proxy_internal.h"

static void
loopback(struct sockaddr_storage *ss, socklen_t *len, int port)
{
	struct sockaddr_in *in = (struct sockaddr_in *)ss;

	memset(ss, 0, sizeof(*ss));
	in->sin_family = AF_INET;
	in->sin_port = htons((uint16_t)port);
	in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	*len = sizeof(*in);
}

static int
bound_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &sl), 0);
	return listen_addr_port(&ss);
}

static void
test_probe_refuses_any_listener(void **state)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int other, port;
	(void)state;

	loopback(&ss, &len, 0);
	assert_int_equal(listen_probe(&ss, len), 0); /* port 0: always */
	for (int reuseport = 0; reuseport < 2; reuseport++) {
		other = listen_open(&ss, len, 0, reuseport);
		assert_true(other >= 0);
		port = bound_port(other);
		loopback(&ss, &len, port);
		errno = 0;
		assert_int_equal(listen_probe(&ss, len), -1);
		assert_int_equal(errno, EADDRINUSE);
		close(other);
		/* once it is gone the address is free again */
		assert_int_equal(listen_probe(&ss, len), 0);
		loopback(&ss, &len, 0);
	}
}

/* Two instances started at once both passed the probe and joined one
 * SO_REUSEPORT group: each must see the other's socket. */
static void
test_foreign_socket_in_the_group_seen(void **state)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int other, mine[2], all[3], port;
	(void)state;

	if (access("/proc/net/tcp", R_OK) != 0)
		skip();
	loopback(&ss, &len, 0);
	other = listen_open(&ss, len, 0, true);
	assert_true(other >= 0);
	port = bound_port(other);
	mine[0] = listen_open(&ss, len, port, true);
	mine[1] = listen_open(&ss, len, port, true);
	assert_true(mine[0] >= 0 && mine[1] >= 0); /* the kernel lets us */
	errno = 0;
	assert_int_equal(listen_check_alone(&ss, port, mine, 2), -1);
	assert_int_equal(errno, EADDRINUSE);
	all[0] = mine[0];
	all[1] = mine[1];
	all[2] = other;
	assert_int_equal(listen_check_alone(&ss, port, all, 3), 0);
	close(other);
	assert_int_equal(listen_check_alone(&ss, port, mine, 2), 0);
	/* a wildcard listener on the port overlaps too */
	close(mine[0]);
	close(mine[1]);
	{
		struct sockaddr_storage any = ss;

		((struct sockaddr_in *)&any)->sin_addr.s_addr =
		    htonl(INADDR_ANY);
		other = listen_open(&any, len, 0, true);
		assert_true(other >= 0);
		port = bound_port(other);
		mine[0] = listen_open(&ss, len, port, true);
		assert_true(mine[0] >= 0);
		assert_int_equal(listen_check_alone(&ss, port, mine, 1), -1);
		close(mine[0]);
		close(other);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_probe_refuses_any_listener),
	    cmocka_unit_test(test_foreign_socket_in_the_group_seen),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
