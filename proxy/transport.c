/*
 * transport.c: one side of a relay: socket I/O through a backend (plain
 * TCP here; TLS in tls.c), buffers, the edge-triggered event, the timer,
 * and the one callback guard. See transport_internal.h.
 */
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "transport_internal.h"

/* ---- the plain backend ---- */

static ssize_t
plain_readv(struct transport *t, const struct iovec *iov, int n)
{
	ssize_t r;

	do
		r = readv(t->fd, iov, n);
	while (r < 0 && errno == EINTR);
	return r;
}

static ssize_t
plain_writev(struct transport *t, const struct iovec *iov, int n)
{
	ssize_t r;

	do
		r = writev(t->fd, iov, n);
	while (r < 0 && errno == EINTR);
	return r;
}

static bool
plain_has_pending(const struct transport *t)
{
	return false; /* the kernel buffers; its events tell */
}

static bool
plain_handshaking(const struct transport *t)
{
	return false;
}

static bool
plain_peer_spoke(const struct transport *t)
{
	char b;
	ssize_t r = recv(t->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);

	return r >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
}

static int
plain_shutdown(struct transport *t)
{
	return shutdown(t->fd, SHUT_WR);
}

static void
plain_close(struct transport *t)
{
	close(t->fd);
}

const struct transport_backend transport_plain = {
    .name = "plain",
    .readv = plain_readv,
    .writev = plain_writev,
    .has_pending = plain_has_pending,
    .handshaking = plain_handshaking,
    .peer_spoke = plain_peer_spoke,
    .shutdown = plain_shutdown,
    .close = plain_close,
};

/* ---- events and the guard ---- */

void
transport_hold(struct transport *t)
{
	t->busy++;
}

bool
transport_release(struct transport *t)
{
	if (--t->busy > 0 || !t->closed)
		return false;
	t->handlers->on_free(t->owner);
	return true;
}

void
transport_idle(struct transport *t)
{
	if (t->in == NULL || evbuffer_get_length(t->in) > 0 ||
	    evbuffer_get_length(t->out) > 0)
		return;
	evbuffer_free(t->in);
	evbuffer_free(t->out);
	t->in = t->out = NULL;
}

/* Before an owner's handler: the buffers transport_idle gave back. False
   when they cannot be made (the side is closed then). */
static bool
buffers_back(struct transport *t)
{
	if (t->in != NULL)
		return true;
	t->in = evbuffer_new();
	t->out = evbuffer_new();
	if (t->in != NULL && t->out != NULL)
		return true;
	transport_close(t); /* out of memory: nothing can be read */
	return false;
}

static void
on_event(evutil_socket_t fd, short what, void *arg)
{
	struct transport *t = arg;

	if (what & EV_READ) {
		t->can_read = true;
		if (t->write_needs_read)
			t->write_blocked = t->write_needs_read = false;
	}
	if (what & EV_CLOSED)
		t->rdhup = t->can_read = true;
	if (what & EV_WRITE) {
		t->write_blocked = false;
		if (t->read_needs_write) {
			t->can_read = true;
			t->read_needs_write = false;
		}
	}
	if (!buffers_back(t))
		return;
	transport_hold(t);
	t->handlers->on_ready(t->owner);
	transport_release(t);
}

static void
on_timer(struct timerq_entry *e)
{
	struct transport *t =
	    (struct transport *)((char *)e - offsetof(struct transport, timer));

	if (!buffers_back(t))
		return;
	transport_hold(t);
	t->handlers->on_timeout(t->owner);
	transport_release(t);
}

struct timerq *
transport_timers_new(struct event_base *base)
{
	return timerq_new(base, on_timer);
}

int
transport_init(struct transport *t, struct timerq *timers,
               const struct transport_handlers *handlers, void *owner,
               bool buffered)
{
	*t = (struct transport){
	    .timers = timers, .fd = -1, .handlers = handlers, .owner = owner};
	if (!buffered)
		return 0; /* buffers_back makes them before the first handler */
	t->in = evbuffer_new();
	t->out = evbuffer_new();
	return t->in && t->out ? 0 : -1;
}

int
transport_attach(struct transport *t, int fd,
                 const struct transport_backend *backend)
{
	if (t->fd >= 0)
		transport_detach(t);
	t->fd = fd;
	t->backend = backend;
	t->can_read = t->rdhup = t->eof = t->write_blocked = false;
	t->read_needs_write = t->write_needs_read = false;
	t->ev = event_new(timerq_base(t->timers), fd,
	                  EV_READ | EV_WRITE | EV_PERSIST | EV_ET | EV_CLOSED,
	                  on_event, t);
	if (t->ev == NULL)
		return -1;
	event_add(t->ev, NULL);
	return 0;
}

void
transport_detach(struct transport *t)
{
	if (t->ev) {
		event_del(t->ev);
		/* we may be inside its callback: it is freed with the side */
		if (t->retired_ev)
			event_free(t->retired_ev);
		t->retired_ev = t->ev;
		t->ev = NULL;
	}
	if (t->fd >= 0) {
		t->backend->close(t);
		t->fd = -1;
	}
	t->backend_state = NULL;
	if (t->in != NULL) {
		evbuffer_drain(t->in, evbuffer_get_length(t->in));
		evbuffer_drain(t->out, evbuffer_get_length(t->out));
	}
}

void
transport_reset(struct transport *t)
{
	if (t->ev)
		event_free(t->ev);
	if (t->retired_ev)
		event_free(t->retired_ev);
	timerq_clear(&t->timer);
	if (t->fd >= 0)
		t->backend->close(t);
	if (t->in)
		evbuffer_free(t->in);
	if (t->out)
		evbuffer_free(t->out);
	*t = (struct transport){.fd = -1};
}

void
transport_close(struct transport *t)
{
	if (t->closed)
		return;
	t->closed = true;
	if (t->ev)
		event_del(t->ev);
	timerq_clear(&t->timer);
	if (t->busy == 0)
		t->handlers->on_free(t->owner);
}

void
transport_set_timer(struct transport *t, unsigned ms)
{
	timerq_set(t->timers, &t->timer, ms);
}

void
transport_clear_timer(struct transport *t)
{
	timerq_clear(&t->timer);
}

/* ---- reading and writing ---- */

bool
transport_has_pending(const struct transport *t)
{
	return t->fd >= 0 && t->backend->has_pending(t);
}

size_t
transport_read(struct transport *t, size_t max)
{
	struct evbuffer_iovec vec[2];
	struct iovec iov[2];
	size_t room = 0, left;
	ssize_t r;
	int n;

	if (max > TRANSPORT_READ_MAX)
		max = TRANSPORT_READ_MAX;
	n = evbuffer_reserve_space(t->in, (ev_ssize_t)max, vec, 2);
	if (n <= 0) {
		t->can_read = false;
		t->eof = true; /* out of memory: treat as a broken stream */
		return 0;
	}
	for (int i = 0; i < n; i++) {
		iov[i].iov_base = vec[i].iov_base;
		iov[i].iov_len = vec[i].iov_len;
		room += vec[i].iov_len;
	}
	r = t->backend->readv(t, iov, n);
	if (r <= 0) {
		t->can_read = false;
		if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
			t->eof = true;
		return 0;
	}
	left = (size_t)r;
	for (int i = 0; i < n; i++) {
		if (vec[i].iov_len > left)
			vec[i].iov_len = left;
		left -= vec[i].iov_len;
	}
	evbuffer_commit_space(t->in, vec, n);
	/* Dry unless the room was filled, the backend holds more, or the
	   peer closed (its end is still to be read: no event will say so). */
	if ((size_t)r < room && !t->rdhup && !transport_has_pending(t))
		t->can_read = false;
	return (size_t)r;
}

bool
transport_handshaking(const struct transport *t)
{
	return t->fd >= 0 && t->backend->handshaking(t);
}

bool
transport_peer_spoke(const struct transport *t)
{
	return transport_has_pending(t) || t->backend->peer_spoke(t);
}

int
transport_flush(struct transport *t)
{
	if (t->out == NULL)
		return 0; /* idle: nothing to write (transport_idle) */
	if (t->write_blocked)
		return 0; /* the write event clears it */
	while (evbuffer_get_length(t->out) > 0) {
		struct evbuffer_iovec vec[TRANSPORT_WRITE_IOV];
		struct iovec iov[TRANSPORT_WRITE_IOV];
		int n =
		    evbuffer_peek(t->out, -1, NULL, vec, TRANSPORT_WRITE_IOV);
		size_t offered = 0;
		ssize_t w;

		if (n > TRANSPORT_WRITE_IOV)
			n = TRANSPORT_WRITE_IOV;
		for (int i = 0; i < n; i++) {
			iov[i].iov_base = vec[i].iov_base;
			iov[i].iov_len = vec[i].iov_len;
			offered += vec[i].iov_len;
		}
		w = t->backend->writev(t, iov, n);
		if (w < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			return -1;
		}
		evbuffer_drain(t->out, (size_t)w);
		/* a short write means the socket is full: the next write event
		   says when it takes more (no EAGAIN round trip to learn it) */
		if ((size_t)w < offered)
			break;
	}
	t->write_blocked = evbuffer_get_length(t->out) > 0;
	return 0;
}

int
transport_shutdown(struct transport *t)
{
	return t->backend->shutdown(t);
}
