/*
 * transport_internal.h: one side of a relay (a client connection or an
 * upstream connection): its socket, the backend that moves its bytes, its
 * buffers, its event registration, its timer, and the one callback guard.
 *
 * The state machines (conn.c, upstream.c) never call read(2), write(2) or
 * a TLS library: they call transport_read and transport_flush, and the
 * backend behind them is plain TCP (here) or TLS (tls.c). Only tls.c
 * uses OpenSSL's TLS; pseudonym.c takes libcrypto's HMAC for pseudonyms and
 * version.c prints the library's version.
 *
 * Events are edge-triggered and registered once, for read and write: the
 * transport remembers what the kernel said (can_read, rdhup,
 * write_blocked) and only waits for the next event once a read found the
 * source dry. "Dry" is the backend's answer, never a guess from a length:
 * a read that filled all the room it was given may have left more, and a
 * TLS backend may hold decrypted bytes no socket event will announce
 * (transport_has_pending, Redis's ConnectionType.has_pending_data).
 *
 * The guard: an owner (struct conn, struct upstream_conn) embeds a struct
 * transport and is freed only through its on_free handler, which the
 * transport calls once the side was closed (transport_close) and no
 * callback of the owner is on the stack (transport_hold/transport_release
 * bracket every such callback; the transport's own event and timer
 * callbacks do it themselves). Closing from inside a callback is always
 * safe; freeing happens when the outermost callback returns.
 */
#ifndef CONSENTGATE_TRANSPORT_INTERNAL_H
#define CONSENTGATE_TRANSPORT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "timerq_internal.h"

#define TRANSPORT_READ_MAX (64u << 10) /* bytes asked of one read */
#define TRANSPORT_WRITE_IOV 64         /* buffer segments per write */

struct transport;

/*
 * How the bytes move. Every function works on t->fd (and the backend's own
 * state in t->backend_state) and keeps errno like the system call.
 */
struct transport_backend {
	const char *name;
	/* Read into iov[0,n): bytes read (> 0), 0 at the end of the stream,
	   -1 with errno (EAGAIN: nothing now). A read shorter than the room
	   offered means the source is dry for now: a backend that reads in
	   records keeps reading until the room is full or the socket says
	   EAGAIN, and reports what it still holds through has_pending. */
	ssize_t (*readv)(struct transport *t, const struct iovec *iov, int n);
	/* Write from iov[0,n): bytes written (>= 0) or -1 with errno. A
	   write shorter than offered means the socket is full for now. */
	ssize_t (*writev)(struct transport *t, const struct iovec *iov, int n);
	/* True when bytes are buffered inside the backend that a read
	   returns without any new socket event (TLS plaintext). */
	bool (*has_pending)(const struct transport *t);
	/* True while a handshake is under way (no plaintext moves yet). */
	bool (*handshaking)(const struct transport *t);
	/* Has the peer sent application bytes or closed, that no read took
	   yet? (A TLS peer's session tickets do not count.) */
	bool (*peer_spoke)(const struct transport *t);
	/* End our direction of the stream (FIN, TLS close_notify). 0 or -1. */
	int (*shutdown)(struct transport *t);
	/* Release the backend's state and close the socket. */
	void (*close)(struct transport *t);
};

extern const struct transport_backend transport_plain;

/* What a transport calls on its owner; owner is the handlers' argument. */
struct transport_handlers {
	/* the socket reported readiness (flags are updated first) */
	void (*on_ready)(void *owner);
	/* the timer set with transport_set_timer fired */
	void (*on_timeout)(void *owner);
	/* closed and no callback on the stack: free the owner now; it calls
	   transport_reset on its transport */
	void (*on_free)(void *owner);
};

struct transport {
	struct timerq *timers; /* the loop's timer queues (and its base) */
	int fd;                /* -1 when detached */
	const struct transport_backend *backend;
	void *backend_state; /* e.g. the SSL object */
	struct evbuffer *in, *out;
	struct event *ev;
	struct event *retired_ev; /* replaced while its callback may run */
	struct timerq_entry timer;
	const struct transport_handlers *handlers;
	void *owner;
	bool can_read;      /* a read may find bytes without a new event */
	bool rdhup;         /* the peer closed its side: read to the end */
	bool eof;           /* end of stream or a read error: read no more */
	bool write_blocked; /* out holds bytes the socket did not take */
	/* a TLS backend's read waits for the socket to take bytes (a
	   handshake or key update message), or its write for bytes to come:
	   the other event then unblocks it */
	bool read_needs_write, write_needs_read;
	bool closed; /* transport_close was called */
	int busy;    /* owner callbacks on the stack */
};

/*
 * Set up an embedded transport: its timer in the loop's queues
 * (transport_timers_new), no socket yet, and buffers now when buffered (a
 * side that writes before its first event), else at its first event or
 * timer, as after transport_idle. 0, or -1 when out of memory
 * (transport_reset still cleans up).
 */
int transport_init(struct transport *t, struct timerq *timers,
                   const struct transport_handlers *handlers, void *owner,
                   bool buffered);
/*
 * Take a connected (or connecting) nonblocking socket with the backend and
 * register it, edge-triggered, for read and write; the first event tells
 * whether bytes are already there. A socket attached before is closed
 * first (its event is freed with the transport: its callback may be on the
 * stack). 0, or -1 when the event cannot be made (fd stays attached).
 */
int transport_attach(struct transport *t, int fd,
                     const struct transport_backend *backend);
/* Close the socket and empty both buffers (a retry on a fresh socket). */
void transport_detach(struct transport *t);
/* Free what transport_init and transport_attach made; from on_free. */
void transport_reset(struct transport *t);

/*
 * Read once into t->in, at most about max bytes. Returns the bytes read;
 * 0 when there was nothing (t->can_read is now false: wait for an event)
 * or at the end of the stream or on an error (t->eof is now true). After a
 * read, t->can_read says whether another read may find more now: it asks
 * the backend (a short read means dry, unless it holds pending bytes).
 */
size_t transport_read(struct transport *t, size_t max);
/* True when the backend holds bytes a read returns without an event. */
bool transport_has_pending(const struct transport *t);
/* True while the backend's handshake is under way (TLS). */
bool transport_handshaking(const struct transport *t);
/*
 * Has the peer sent something or closed, that no read took yet? The
 * backend peeks (plain: one recv with MSG_PEEK; TLS: SSL_peek, which
 * reads records but keeps their plaintext).
 */
bool transport_peer_spoke(const struct transport *t);
/*
 * Write as much of t->out as the socket takes. 0 (t->write_blocked tells
 * that bytes remain for the next write event; until it comes, a flush
 * does not try again), or -1 on an error.
 */
int transport_flush(struct transport *t);
/* End our direction of the stream once out is flushed. 0 or -1. */
int transport_shutdown(struct transport *t);

/*
 * The side waits for its peer with nothing buffered (an idle keep-alive
 * connection): both buffers are given back, about 300 bytes per
 * connection, and made again when the next event or the timer comes,
 * before the owner's handler runs. Outside those handlers t->in and
 * t->out may then be NULL. Does nothing while either holds bytes.
 */
void transport_idle(struct transport *t);

/* The timer queues of one event loop, for every transport on it; freed
   with timerq_free once every transport on it is reset. */
struct timerq *transport_timers_new(struct event_base *base);
/* Arm (again) or stop the one timer of this side, in milliseconds. */
void transport_set_timer(struct transport *t, unsigned ms);
void transport_clear_timer(struct transport *t);

/*
 * The one teardown path: stop events and the timer; the owner is freed
 * through on_free now, or when the last transport_release returns. Safe
 * to call more than once and from inside any callback.
 */
void transport_close(struct transport *t);
/* The guard around an owner's callback that may close it. */
void transport_hold(struct transport *t);
/* Ends the guard: true when the owner was freed (touch nothing then). */
bool transport_release(struct transport *t);

#endif
