/*
 * logq.c: a log written off the request path. Workers hand whole lines to
 * a mutex-protected bounded queue; one writer thread per log takes every
 * waiting line at once and appends them with writev(2) to a file opened
 * O_APPEND, so lines never interleave and a slow disk never stalls a
 * request. With sync, each batch is followed by fdatasync(2) before its
 * lines leave the queue (a line counts against the bound until it is on
 * disk).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "logq_internal.h"
#include "proxy_internal.h"

#define LOGQ_IOV 64 /* lines per writev */
/* At close, a writer that has lines left and writes none of them this
   long (a hung disk or NFS server, a pipe nobody reads) is given up on:
   shutdown must not hang on it. A slow disk still writing is waited for. */
#define LOGQ_STALL_S 10

static atomic_bool abandoned; /* some close gave up on its writer */

struct logq_line {
	struct logq_line *next;
	size_t len;
	char data[];
};

struct logq {
	int fd;
	char *path; /* NULL for stdout: never reopened */
	unsigned cap;
	bool drop, sync;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct logq_line *head, **tail;
	bool stop;
	pthread_t thread;
	/* read without the lock by logq_full and /metrics */
	atomic_uint_fast64_t depth, dropped;
};

void
logq_stamp(char *buf)
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(buf, 24, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + 19, 13, ".%03dZ", (int)(ts.tv_nsec / 1000000));
}

/* Write a batch whole; a failed write loses it (logged, the proof says
   how much). */
static void
write_batch(struct logq *q, struct logq_line *l)
{
	while (l != NULL) {
		struct iovec iov[LOGQ_IOV];
		int n = 0;

		for (; l != NULL && n < LOGQ_IOV; l = l->next, n++)
			iov[n] = (struct iovec){l->data, l->len};
		for (int i = 0; i < n;) {
			ssize_t k = writev(q->fd, iov + i, n - i);

			if (k < 0 && errno == EINTR)
				continue;
			if (k < 0) {
				log_error("log %s: write failed: %s; "
				          "lines lost",
				          q->path ? q->path : "-",
				          strerror(errno));
				break;
			}
			while (i < n && (size_t)k >= iov[i].iov_len)
				k -= (ssize_t)iov[i++].iov_len;
			if (i < n) {
				iov[i].iov_base = (char *)iov[i].iov_base + k;
				iov[i].iov_len -= (size_t)k;
			}
		}
	}
	/* a pipe or terminal cannot sync: EINVAL, nothing to say */
	if (q->sync)
		fdatasync(q->fd);
}

static void *
writer_main(void *arg)
{
	struct logq *q = arg;

	pthread_mutex_lock(&q->mu);
	for (;;) {
		struct logq_line *batch;
		uint64_t n = 0;

		while (q->head == NULL && !q->stop)
			pthread_cond_wait(&q->cv, &q->mu);
		if (q->head == NULL)
			break;
		batch = q->head;
		q->head = NULL;
		q->tail = &q->head;
		pthread_mutex_unlock(&q->mu);
		write_batch(q, batch);
		while (batch != NULL) {
			struct logq_line *next = batch->next;

			free(batch);
			batch = next;
			n++;
		}
		atomic_fetch_sub_explicit(&q->depth, n, memory_order_relaxed);
		pthread_mutex_lock(&q->mu);
	}
	pthread_mutex_unlock(&q->mu);
	return NULL;
}

static struct logq *
open_q(const char *path, int fd, unsigned cap, bool drop, bool sync)
{
	struct logq *q = calloc(1, sizeof(*q));
	sigset_t all, old;
	int err;

	if (q == NULL)
		return NULL;
	q->fd = -1;
	q->cap = cap > 0 ? cap : 1;
	q->drop = drop;
	q->sync = sync;
	q->tail = &q->head;
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->cv, NULL);
	if (path == NULL) {
		q->fd = fd;
	} else if (strcmp(path, "-") == 0) {
		q->fd = STDOUT_FILENO;
	} else {
		q->path = strdup(path);
		q->fd =
		    open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
		if (q->path == NULL || q->fd < 0)
			goto fail;
	}
	/* the writer takes no signal: server_run's sigwait takes them all,
	   also when the log opens before server_new blocks them */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	errno = pthread_create(&q->thread, NULL, writer_main, q);
	err = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if ((errno = err) != 0)
		goto fail;
	return q;
fail:
	err = errno;
	if (q->path != NULL && q->fd >= 0)
		close(q->fd);
	free(q->path);
	pthread_mutex_destroy(&q->mu);
	pthread_cond_destroy(&q->cv);
	free(q);
	errno = err;
	return NULL;
}

struct logq *
logq_open(const char *path, unsigned cap, bool drop, bool sync)
{
	return open_q(path, -1, cap, drop, sync);
}

struct logq *
logq_open_fd(int fd, unsigned cap, bool drop, bool sync)
{
	return open_q(NULL, fd, cap, drop, sync);
}

bool
logq_full(const struct logq *q)
{
	return q != NULL &&
	       atomic_load_explicit(&q->depth, memory_order_relaxed) >= q->cap;
}

int
logq_push(struct logq *q, struct evbuffer *b)
{
	size_t len = evbuffer_get_length(b);
	struct logq_line *l;

	if (q->drop && logq_full(q)) {
		atomic_fetch_add_explicit(&q->dropped, 1, memory_order_relaxed);
		evbuffer_drain(b, len);
		return -1;
	}
	l = malloc(sizeof(*l) + len);
	if (l == NULL) {
		atomic_fetch_add_explicit(&q->dropped, 1, memory_order_relaxed);
		evbuffer_drain(b, len);
		log_error("log %s: out of memory; a line lost",
		          q->path ? q->path : "-");
		return -1;
	}
	l->next = NULL;
	l->len = len;
	evbuffer_remove(b, l->data, len);
	atomic_fetch_add_explicit(&q->depth, 1, memory_order_relaxed);
	pthread_mutex_lock(&q->mu);
	*q->tail = l;
	q->tail = &l->next;
	pthread_cond_signal(&q->cv);
	pthread_mutex_unlock(&q->mu);
	return 0;
}

int
logq_reopen(struct logq *q)
{
	int fd;

	if (q == NULL || q->path == NULL)
		return 0;
	fd = open(q->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (fd < 0)
		return -1;
	/* dup3 swaps the file under the same descriptor atomically: a batch
	   being written right now finishes in the old file */
	if (dup3(fd, q->fd, O_CLOEXEC) < 0) {
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

void
logq_stats(const struct logq *q, uint64_t *depth, uint64_t *dropped)
{
	*depth = q ? atomic_load_explicit(&q->depth, memory_order_relaxed) : 0;
	*dropped =
	    q ? atomic_load_explicit(&q->dropped, memory_order_relaxed) : 0;
}

bool
logq_abandoned(void)
{
	return atomic_load(&abandoned);
}

int
logq_close(struct logq *q)
{
	uint64_t last;
	unsigned quiet = 0;

	if (q == NULL)
		return 0;
	pthread_mutex_lock(&q->mu);
	q->stop = true;
	pthread_cond_signal(&q->cv);
	pthread_mutex_unlock(&q->mu);
	last = atomic_load_explicit(&q->depth, memory_order_relaxed);
	for (;;) {
		struct timespec until;
		uint64_t depth;
		int e;

		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 1;
		e = pthread_timedjoin_np(q->thread, NULL, &until);
		if (e == 0)
			break;
		if (e != ETIMEDOUT) {
			pthread_join(q->thread, NULL);
			break;
		}
		depth = atomic_load_explicit(&q->depth, memory_order_relaxed);
		if (depth < last) {
			last = depth;
			quiet = 0;
		} else if (++quiet >= LOGQ_STALL_S) {
			/* q stays: its writer still holds it until exit */
			log_error("log %s: its writer has written nothing for "
			          "%d s; exiting without the %llu lines still "
			          "queued",
			          q->path ? q->path : "-", LOGQ_STALL_S,
			          (unsigned long long)depth);
			atomic_store(&abandoned, true);
			return -1;
		}
	}
	if (q->path != NULL)
		close(q->fd);
	free(q->path);
	pthread_mutex_destroy(&q->mu);
	pthread_cond_destroy(&q->cv);
	free(q);
	return 0;
}
