/* io: buffered client I/O for tern-smtpd with a timeout on every read.
 *
 * Promises: replies are buffered and flushed before the server would block
 * on a read (so PIPELINING works and replies batch); a line is never longer
 * than the caller's limit; a read that waits longer than the timeout fails
 * with IO_TIMEOUT instead of hanging, and no read or write waits past the
 * caller's deadline (IO_DEADLINE). */
#ifndef TERN_IO_H
#define TERN_IO_H

#include <stdbool.h>
#include <stddef.h>

#define IO_BUFFER_SIZE 16384

struct tls_module;
struct tls_conn;

/* A TLS session the reader and writer go through once it is set: the
 * module's calls, on the client's two fds. */
struct io_tls {
	const struct tls_module *module;
	struct tls_conn *conn;
	int in_fd, out_fd;
};

enum io_status { IO_OK = 0, IO_EOF = -1, IO_ERROR = -2, IO_TIMEOUT = -3, IO_DEADLINE = -4 };

struct writer {
	int fd;
	unsigned timeout;	/* seconds, for each wait */
	long long deadline_ms;	/* monotonic; no wait goes past it; 0: none */
	size_t len;
	bool failed;
	struct io_tls *tls;	/* NULL: plain writes on fd */
	char buf[IO_BUFFER_SIZE];
};

struct reader {
	int fd;
	unsigned timeout;	/* seconds, for each read and each whole line */
	long long deadline_ms;	/* monotonic; no read waits past it; 0: none */
	long long line_deadline_ms;	/* reader_line's own */
	size_t start, end;
	struct writer *flush_first;
	struct io_tls *tls;	/* NULL: plain reads on fd */
	char buf[IO_BUFFER_SIZE];
};

enum line_flags { LINE_TOO_LONG = 1, LINE_BARE_CR = 2, LINE_NUL = 4, LINE_BARE_LF = 8 };

/* Milliseconds of CLOCK_MONOTONIC, the clock of every deadline here. */
long long io_monotonic_ms(void);

void writer_init(struct writer *w, int fd, unsigned timeout);
void writer_put(struct writer *w, const char *s, size_t len);
void writer_reply(struct writer *w, const char *line);	/* adds CRLF */
int writer_flush(struct writer *w);

void reader_init(struct reader *r, int fd, unsigned timeout, struct writer *w);
/* Reads more input (flushing replies first); IO_OK or an error:
 * IO_TIMEOUT after the timeout, IO_DEADLINE at the deadline. */
int reader_fill(struct reader *r);
static inline size_t reader_available(const struct reader *r) { return r->end - r->start; }

/* Throws away every octet read and not yet taken (STARTTLS: what was
 * pipelined in plaintext). */
static inline void reader_discard(struct reader *r) { r->start = r->end = 0; }

/* Runs T's handshake to its end: IO_OK, IO_ERROR (the module says why),
 * or IO_TIMEOUT at DEADLINE_MS. */
int io_tls_handshake(struct io_tls *t, long long deadline_ms);

/* True if the client has sent input not read yet: in the buffer, or
 * waiting on the fd (a poll with timeout 0); an end of file is not input. */
bool reader_input_waiting(const struct reader *r);

/* Lets the last reply reach the client: a socket closed with input unread
 * sends a reset, and the client's system may then drop the reply it had
 * not read yet.  So, if input is waiting on the fd, shuts down OUT_FD's
 * writing side and reads and drops what comes until the end of file, for at
 * most LINGER_MS milliseconds and LINGER_MAX_BYTES octets. */
#define LINGER_MS 1000
#define LINGER_MAX_BYTES (256 * 1024)
void reader_linger(struct reader *r, int out_fd);

/* Reads one line into LINE (at most MAX octets, NUL-terminated, without its
 * line end), all of it within the reader's timeout.  *FLAGS tells what was wrong with it; a too-long line is read
 * to its end and thrown away. */
int reader_line(struct reader *r, char *line, size_t max, size_t *len, int *flags);

#endif
