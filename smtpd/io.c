#include "io.h"

#include "tls_module.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

long long io_monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void writer_init(struct writer *w, int fd, unsigned timeout)
{
	w->fd = fd;
	w->timeout = timeout;
	w->deadline_ms = 0;
	w->len = 0;
	w->failed = false;
	w->tls = NULL;
}

/* Waits up to TIMEOUT seconds, or until DEADLINE_MS if that comes first. */
static int wait_until(int fd, short events, unsigned timeout, long long deadline_ms)
{
	struct pollfd p = { .fd = fd, .events = events };

	for (;;) {
		long long wait = timeout > 0 ? (long long)timeout * 1000 : -1;
		if (deadline_ms > 0) {
			long long left = deadline_ms - io_monotonic_ms();
			if (left <= 0)
				return IO_TIMEOUT;
			if (wait < 0 || left < wait)
				wait = left;
		}
		int n = poll(&p, 1, (int)wait);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return IO_ERROR;
		if (n == 0)
			return IO_TIMEOUT;
		return IO_OK;
	}
}

/* What a TLS call that must wait waits for: the fd and its event. */
static int tls_wait(const struct io_tls *t, ssize_t status, unsigned timeout,
		    long long deadline_ms)
{
	if (status == TLS_WANT_WRITE)
		return wait_until(t->out_fd, POLLOUT, timeout, deadline_ms);
	return wait_until(t->in_fd, POLLIN, timeout, deadline_ms);
}

int io_tls_handshake(struct io_tls *t, long long deadline_ms)
{
	for (;;) {
		int st = t->module->handshake(t->conn);
		if (st == TLS_OK)
			return IO_OK;
		if (st == TLS_FAILED)
			return IO_ERROR;
		int w = tls_wait(t, st, 0, deadline_ms);
		if (w != IO_OK)
			return w;
	}
}

static int flush_tls(struct writer *w)
{
	size_t done = 0;

	while (done < w->len) {
		ssize_t n = w->tls->module->write(w->tls->conn, w->buf + done, w->len - done);
		if (n == TLS_WANT_READ || n == TLS_WANT_WRITE) {
			if (tls_wait(w->tls, n, w->timeout, w->deadline_ms) != IO_OK)
				return IO_ERROR;
			continue;
		}
		if (n <= 0)
			return IO_ERROR;
		done += (size_t)n;
	}
	return IO_OK;
}

static int flush_plain(struct writer *w)
{
	size_t done = 0;

	while (done < w->len) {
		ssize_t n = write(w->fd, w->buf + done, w->len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			if (wait_until(w->fd, POLLOUT, w->timeout, w->deadline_ms) != IO_OK)
				return IO_ERROR;
			continue;
		}
		if (n <= 0)
			return IO_ERROR;
		done += (size_t)n;
	}
	return IO_OK;
}

int writer_flush(struct writer *w)
{
	if (!w->failed && w->len > 0 &&
	    (w->tls != NULL ? flush_tls(w) : flush_plain(w)) != IO_OK)
		w->failed = true;
	w->len = 0;
	return w->failed ? IO_ERROR : IO_OK;
}

void writer_put(struct writer *w, const char *s, size_t len)
{
	while (len > 0) {
		if (w->len == sizeof w->buf && writer_flush(w) != IO_OK)
			return;
		size_t room = sizeof w->buf - w->len;
		size_t n = len < room ? len : room;
		memcpy(w->buf + w->len, s, n);
		w->len += n;
		s += n;
		len -= n;
	}
}

void writer_reply(struct writer *w, const char *line)
{
	writer_put(w, line, strlen(line));
	writer_put(w, "\r\n", 2);
}

/* The earlier of two deadlines, 0 being none. */
static long long earlier(long long a, long long b)
{
	if (a == 0 || (b != 0 && b < a))
		return b;
	return a;
}

void reader_init(struct reader *r, int fd, unsigned timeout, struct writer *w)
{
	r->fd = fd;
	r->timeout = timeout;
	r->start = r->end = 0;
	r->deadline_ms = 0;
	r->line_deadline_ms = 0;
	r->flush_first = w;
	r->tls = NULL;
}

/* A wait's result for R: IO_DEADLINE when R's own deadline has come. */
static int reader_waited(const struct reader *r, int w)
{
	if (w == IO_TIMEOUT && r->deadline_ms > 0 && io_monotonic_ms() >= r->deadline_ms)
		return IO_DEADLINE;
	return w;
}

/* What one read of N octets into R's buffer means (plain or TLS). */
static int took(struct reader *r, ssize_t n)
{
	if (n < 0)
		return IO_ERROR;
	if (n == 0)
		return IO_EOF;
	r->end += (size_t)n;
	return IO_OK;
}

/* One read through TLS into R's buffer, waiting as the module asks. */
static int fill_tls(struct reader *r, long long until)
{
	const struct io_tls *t = r->tls;
	ssize_t n;

	/* Decrypted octets are not on the fd: poll would not see them. */
	while ((n = t->module->read(t->conn, r->buf + r->end, sizeof r->buf - r->end)) ==
		       TLS_WANT_READ || n == TLS_WANT_WRITE) {
		int w = reader_waited(r, tls_wait(t, n, r->timeout, until));
		if (w != IO_OK)
			return w;
	}
	return took(r, n);
}

int reader_fill(struct reader *r)
{
	if (r->flush_first != NULL && r->flush_first->len > 0 &&
	    writer_flush(r->flush_first) != IO_OK)
		return IO_ERROR;
	if (r->start > 0) {
		memmove(r->buf, r->buf + r->start, r->end - r->start);
		r->end -= r->start;
		r->start = 0;
	}
	if (r->end == sizeof r->buf)
		return IO_OK;
	long long until = earlier(r->deadline_ms, r->line_deadline_ms);
	if (r->tls != NULL)
		return fill_tls(r, until);
	for (;;) {
		int w = reader_waited(r, wait_until(r->fd, POLLIN, r->timeout, until));
		if (w != IO_OK)
			return w;
		ssize_t n = read(r->fd, r->buf + r->end, sizeof r->buf - r->end);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		return took(r, n);
	}
}

/* Octets readable on FD now, without waiting; an end of file is none. */
static bool fd_input_waiting(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int n, octets;

	do
		n = poll(&p, 1, 0);
	while (n < 0 && errno == EINTR);
	if (n <= 0 || !(p.revents & POLLIN))
		return false;
	if (ioctl(fd, FIONREAD, &octets) < 0)
		return true;	/* readable, and no way to tell an end of file */
	return octets > 0;
}

bool reader_input_waiting(const struct reader *r)
{
	if (reader_available(r) > 0)
		return true;
	if (r->tls != NULL && r->tls->module->pending(r->tls->conn) > 0)
		return true;
	return fd_input_waiting(r->fd);
}

void reader_linger(struct reader *r, int out_fd)
{
	long long deadline = io_monotonic_ms() + LINGER_MS;
	size_t dropped = 0;

	if (!fd_input_waiting(r->fd))
		return;
	shutdown(out_fd, SHUT_WR);
	while (dropped < LINGER_MAX_BYTES) {
		if (wait_until(r->fd, POLLIN, 0, deadline) != IO_OK)
			return;
		ssize_t n = read(r->fd, r->buf, sizeof r->buf);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			return;
		dropped += (size_t)n;
	}
}

int reader_line(struct reader *r, char *line, size_t max, size_t *len, int *flags)
{
	size_t n = 0;

	*flags = 0;
	for (;;) {
		if (r->start == r->end) {
			if (r->line_deadline_ms == 0 && r->timeout > 0)
				r->line_deadline_ms = io_monotonic_ms() + (long long)r->timeout * 1000;
			int st = reader_fill(r);
			if (st != IO_OK) {
				r->line_deadline_ms = 0;
				return st;
			}
		}
		char c = r->buf[r->start++];
		if (c == '\n') {
			if (n > 0 && line[n - 1] == '\r' && !(*flags & LINE_TOO_LONG))
				n--;
			else if (!(*flags & LINE_TOO_LONG))
				*flags |= LINE_BARE_LF;
			break;
		}
		if (n > 0 && line[n - 1] == '\r')
			*flags |= LINE_BARE_CR;
		if (c == '\0')
			*flags |= LINE_NUL;
		if (n < max)
			line[n++] = c;
		else
			*flags |= LINE_TOO_LONG;
	}
	line[n] = '\0';
	*len = n;
	r->line_deadline_ms = 0;
	return IO_OK;
}
