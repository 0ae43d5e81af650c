#include "service.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "commit.h"
#include "conf.h"
#include "log.h"
#include "packet.h"
#include "queue_protocol.h"
#include "spool.h"
#include "syncs.h"
#include "util.h"

#define EXIT_CANNOT_START 111
#define ACCEPTS_PER_ROUND 64
#define READ_CHUNK (64 * 1024)
/* Octets of one message copied in one round, so that a large one does
 * not hold up the others' commits. */
#define ROUND_BUDGET (1024 * 1024)
/* What a message may have over max_message_size: tern-smtpd's Received
 * header, which its own limit does not count. */
#define TRACE_ALLOWANCE (8 * 1024)
/* Each connection holds at most its socket, the message's fd and tmp/ID. */
#define FDS_PER_CONNECTION 3
#define FDS_RESERVED 16
#define REQUIRED_SEALS (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW)
/* Envelope octets announced by all connections at once, at most: one
 * client may send the largest envelope the program takes, but a crowd
 * of them cannot make the service hold gigabytes; and those of one uid,
 * so that it cannot take the budget from the others (tern-smtpd's). */
#define ENVELOPE_BUDGET ((size_t)64 << 20)
#define ENVELOPE_BUDGET_PER_UID (ENVELOPE_BUDGET / 2)

enum phase {
	PHASE_IDLE,		/* between messages: a begin line is due */
	PHASE_MESSAGE,		/* begin seen: the fd is read, an end line is due */
	PHASE_ENVELOPE,		/* end seen: its envelope octets are due */
};

enum data_kind { DATA_NONE, DATA_PIPE, DATA_MEMFD };

struct conn {
	int sock;
	uid_t uid;
	enum phase phase;
	int64_t deadline_ms;
	char line[QS_LINE_MAX];
	size_t line_len;
	int pending_fd;		/* came with the octets in line: begin's */
	bool dead;		/* to be closed at the end of the round */
	bool peer_closed;	/* shut down its side: it takes no reply */
	/* the message since begin */
	struct commit commit;	/* mess/ID and tmp/ID, while their paths are set */
	int code;		/* QQ_QUEUED so far, else the reply it gets */
	int data_fd;
	enum data_kind kind;
	uint64_t data_size;	/* a memfd's (sealed) */
	uint64_t data_read;
	bool data_done;
	uint64_t msglen;	/* as the end line says */
	const char *sender;	/* parsed, into env: for the log */
	size_t nrcpts;
	char *env;
	size_t env_len, env_cap, env_want;
};

struct service {
	struct tern_conf conf;
	int listen_fd, signal_fd;
	struct conn **conns;
	size_t nconns, max_conns;
	struct pollfd *pfd;
	char *buf;
	struct conn **ready;	/* whole messages of this round */
	struct commit **batch;
	size_t nready;
	uint64_t size_limit;
	struct syncs syncs;	/* a round's fsyncs, side by side */
	bool stopping;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void touch(const struct service *s, struct conn *c)
{
	c->deadline_ms = now_ms() + (int64_t)s->conf.queue_timeout * 1000;
}

static const char *message_id(const struct conn *c)
{
	return c->phase != PHASE_IDLE && c->commit.id[0] != '\0' ? c->commit.id : "-";
}

/* The connection breaks the protocol, or is gone: closed this round. */
static void drop(struct conn *c, const char *what)
{
	if (what != NULL)
		log_event("error", "id=%s uid=%u what=%s", message_id(c), (unsigned)c->uid,
			  what);
	c->dead = true;
}

/* Forgets the message (a tmp/ file removed, its fd closed). */
static void message_reset(struct conn *c)
{
	commit_abort(&c->commit);
	memset(&c->commit, 0, sizeof c->commit);
	c->commit.fd = -1;
	close_fd(&c->data_fd);
	free(c->env);
	c->env = NULL;
	c->env_len = c->env_cap = c->env_want = 0;
	c->kind = DATA_NONE;
	c->data_size = c->data_read = c->msglen = 0;
	c->data_done = false;
	c->sender = NULL;
	c->nrcpts = 0;
	c->code = QQ_QUEUED;
	c->phase = PHASE_IDLE;
}

/* The message is refused with CODE (its first reason stays): nothing
 * more of it is read, and its tmp/ file goes now; the reply waits for the
 * end line, as always. */
static void refuse(struct conn *c, int code, const char *what, int error)
{
	if (c->code == QQ_QUEUED) {
		c->code = code;
		log_event("error", "id=%s uid=%u what=%s error=%s", message_id(c),
			  (unsigned)c->uid, what, error ? strerror(error) : "none");
	}
	commit_abort(&c->commit);
	close_fd(&c->data_fd);
	c->data_done = true;
}

static void send_reply(struct conn *c, int code)
{
	char line[QS_LINE_MAX];
	int n = qs_format_reply(line, sizeof line, code);

	/* A few octets into a socket the client reads before writing more:
	 * its buffer has room, or the client is broken. */
	if (n < 0 || write(c->sock, line, (size_t)n) != n)
		drop(c, "reply");
}

static void close_conn(struct service *s, size_t i)
{
	struct conn *c = s->conns[i];

	message_reset(c);
	close_fd(&c->pending_fd);
	close_fd(&c->sock);
	free(c);
	s->conns[i] = s->conns[--s->nconns];
}

/* ---- new connections ---- */

static unsigned connections_of(const struct service *s, uid_t uid)
{
	unsigned n = 0;

	for (size_t i = 0; i < s->nconns; i++)
		n += s->conns[i]->uid == uid;
	return n;
}

static void greet(struct service *s, int sock, uid_t uid)
{
	if (s->nconns >= s->max_conns || connections_of(s, uid) >= s->conf.queue_connections_per_uid) {
		log_event("busy", "uid=%u connections=%zu", (unsigned)uid, s->nconns);
		(void)!write(sock, QS_BUSY, sizeof QS_BUSY - 1);
		close(sock);
		return;
	}
	struct conn *c = calloc(1, sizeof *c);
	if (c == NULL || write(sock, QS_GREETING, sizeof QS_GREETING - 1) !=
			     (ssize_t)(sizeof QS_GREETING - 1)) {
		free(c);
		close(sock);
		return;
	}
	c->sock = sock;
	c->uid = uid;
	c->pending_fd = c->data_fd = c->commit.fd = -1;
	message_reset(c);
	touch(s, c);
	s->conns[s->nconns++] = c;
}

static void accept_all(struct service *s)
{
	for (int i = 0; i < ACCEPTS_PER_ROUND; i++) {
		int sock = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (sock < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				log_event("error", "what=accept error=%s", strerror(errno));
			return;
		}
		struct ucred cred;
		socklen_t len = sizeof cred;
		if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
		    len != sizeof cred) {
			close(sock);
			continue;
		}
		greet(s, sock, cred.uid);
	}
}

/* ---- the message's fd ---- */

/* A pipe's read end (not a named FIFO), or a memfd sealed against any
 * change: nothing else is read.  0 with C's data set, or -1. */
static int check_data_fd(struct service *s, struct conn *c, int fd)
{
	struct stat st;
	struct statfs sf;
	int flags = fcntl(fd, F_GETFL);

	if (flags < 0 || fstat(fd, &st) < 0)
		return -1;
	if (S_ISFIFO(st.st_mode)) {
		if (fstatfs(fd, &sf) < 0 || sf.f_type != PIPEFS_MAGIC ||
		    (flags & O_ACCMODE) != O_RDONLY)
			return -1;
		c->kind = DATA_PIPE;	/* never read(2): see read_pipe */
	} else if (S_ISREG(st.st_mode)) {
		int seals = fcntl(fd, F_GET_SEALS);
		if (seals < 0 || (seals & REQUIRED_SEALS) != REQUIRED_SEALS ||
		    (flags & O_ACCMODE) == O_WRONLY)
			return -1;
		c->kind = DATA_MEMFD;
		c->data_size = (uint64_t)st.st_size;
		if (c->data_size > s->size_limit) {
			c->data_fd = fd;
			refuse(c, QQ_REFUSED_PERM, "message too large", 0);
			return 0;
		}
	} else {
		return -1;
	}
	c->data_fd = fd;
	return 0;
}

static void begin_message(struct service *s, struct conn *c, const char *qid)
{
	int fd = c->pending_fd;

	c->pending_fd = -1;
	message_reset(c);
	c->phase = PHASE_MESSAGE;
	int r = commit_begin(&c->commit, s->conf.spool, qid);
	if (r != QQ_QUEUED) {
		close(fd);
		refuse(c, r, c->commit.what, c->commit.error);
		return;
	}
	if (check_data_fd(s, c, fd) < 0) {
		close(fd);
		refuse(c, QQ_READ_ERROR, "message fd neither a pipe nor a sealed memfd", 0);
	}
}

/* Up to WANT octets of a memfd's, copied into tmp/ID: their count, 0 at
 * its end, or -1 when the message is refused. */
static ssize_t read_memfd(struct service *s, struct conn *c, size_t want)
{
	uint64_t left = c->data_size - c->data_read;
	ssize_t n;

	want = left < want ? (size_t)left : want;
	do
		n = want == 0 ? 0 : pread(c->data_fd, s->buf, want, (off_t)c->data_read);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		refuse(c, QQ_READ_ERROR, "read message", errno);
	else if (n > 0 && commit_add_bytes(&c->commit, s->buf, (size_t)n) != QQ_QUEUED)
		refuse(c, c->commit.outcome, c->commit.what, c->commit.error);
	return c->data_done ? -1 : n;
}

/* A pipe's octets go into tmp/ID by splice, whose SPLICE_F_NONBLOCK never
 * waits: the pipe's O_NONBLOCK is in a file description the client shares
 * and may take back.  Their count, 0 at its end, or -1 when it has none
 * now or the message is refused. */
static ssize_t read_pipe(struct conn *c, size_t want)
{
	ssize_t n = commit_add_from_pipe(&c->commit, c->data_fd, want);

	if (n < 0 && errno != EAGAIN)
		refuse(c, c->commit.outcome, c->commit.what, c->commit.error);
	return n;
}

/* Copies what the fd has now into tmp/ID, up to the round's budget. */
static void read_data(struct service *s, struct conn *c)
{
	size_t budget = ROUND_BUDGET;

	while (!c->data_done && budget > 0) {
		ssize_t n = c->kind == DATA_MEMFD ? read_memfd(s, c, READ_CHUNK)
						  : read_pipe(c, READ_CHUNK);
		if (n < 0)
			return;
		if (n == 0) {
			close_fd(&c->data_fd);
			c->data_done = true;
			return;
		}
		touch(s, c);
		c->data_read += (uint64_t)n;
		if (c->data_read > s->size_limit) {
			refuse(c, QQ_REFUSED_PERM, "message too large", 0);
			return;
		}
		budget -= (size_t)n < budget ? (size_t)n : budget;
	}
}

/* ---- the socket's lines ---- */

/* Envelope octets the other connections (of UID only, unless NULL) have
 * announced and not yet handed in whole. */
static size_t envelopes_announced(const struct service *s, const uid_t *uid)
{
	size_t n = 0;

	for (size_t i = 0; i < s->nconns; i++)
		if (s->conns[i]->phase == PHASE_ENVELOPE &&
		    (uid == NULL || s->conns[i]->uid == *uid))
			n += s->conns[i]->env_want;
	return n;
}

/* The envelope is not read: the stream is lost after the reply. */
static void refuse_envelope(struct conn *c, int code, const char *what)
{
	refuse(c, code, what, 0);
	send_reply(c, c->code);
	drop(c, NULL);
}

static void end_message(struct service *s, struct conn *c, const struct qs_request *r)
{
	if (r->envlen > QQ_ENVELOPE_MAX || r->envlen == 0) {
		refuse_envelope(c, QQ_REFUSED_PERM, "envelope too large");
		return;
	}
	if (r->envlen > ENVELOPE_BUDGET - envelopes_announced(s, NULL) ||
	    r->envlen > ENVELOPE_BUDGET_PER_UID - envelopes_announced(s, &c->uid)) {
		refuse_envelope(c, QQ_NO_MEMORY, "envelopes over the service's budget");
		return;
	}
	c->msglen = r->msglen;
	c->env_want = (size_t)r->envlen;
	c->phase = PHASE_ENVELOPE;
	touch(s, c);
}

static void handle_line(struct service *s, struct conn *c, const char *line, size_t len)
{
	struct qs_request r;

	if (qs_parse_request(line, len, &r) < 0) {
		drop(c, "protocol");
		return;
	}
	if (r.verb == QS_BEGIN && c->phase == PHASE_IDLE && c->pending_fd >= 0) {
		begin_message(s, c, r.qid);
		touch(s, c);
	} else if (r.verb == QS_END && c->phase == PHASE_MESSAGE && c->pending_fd < 0) {
		end_message(s, c, &r);
	} else {
		drop(c, "protocol");
	}
}

static int take_envelope_octets(struct conn *c, const char *p, size_t n)
{
	if (n > c->env_want - c->env_len)
		return -1;	/* more than it announced, before its reply */
	if (c->env_len + n > c->env_cap) {
		size_t cap = c->env_cap ? c->env_cap : 4096;
		while (cap < c->env_len + n)
			cap *= 2;
		if (cap > c->env_want)
			cap = c->env_want;
		char *more = realloc(c->env, cap);
		if (more == NULL)
			return -1;
		c->env = more;
		c->env_cap = cap;
	}
	memcpy(c->env + c->env_len, p, n);
	c->env_len += n;
	return 0;
}

/* Handles every whole line in C's buffer; octets after an end line are
 * its envelope's. */
static void handle_lines(struct service *s, struct conn *c)
{
	while (!c->dead && c->phase != PHASE_ENVELOPE) {
		char *lf = memchr(c->line, '\n', c->line_len);
		if (lf == NULL) {
			if (c->line_len == sizeof c->line)
				drop(c, "protocol");
			return;
		}
		size_t len = (size_t)(lf - c->line);
		handle_line(s, c, c->line, len);
		memmove(c->line, lf + 1, c->line_len - len - 1);
		c->line_len -= len + 1;
	}
	if (!c->dead && c->line_len > 0) {
		if (take_envelope_octets(c, c->line, c->line_len) < 0)
			drop(c, "protocol");
		c->line_len = 0;
	}
}

static void receive(struct service *s, struct conn *c)
{
	bool envelope = c->phase == PHASE_ENVELOPE;
	char *into = envelope ? s->buf : c->line + c->line_len;
	size_t room = envelope ? c->env_want - c->env_len : sizeof c->line - c->line_len;
	if (room > READ_CHUNK)
		room = READ_CHUNK;
	int fd;
	ssize_t n = packet_receive(c->sock, into, room, &fd, MSG_DONTWAIT);

	if (n < 0 && errno == EAGAIN)
		return;
	if (n < 0 && errno == EPROTO) {
		drop(c, "protocol");	/* a control message cut short, or two fds */
		return;
	}
	if (n < 0) {
		drop(c, NULL);	/* reset: what it had not committed goes with it */
		return;
	}
	if (fd >= 0) {
		/* An fd comes only with a begin line, the first octets of a message. */
		if (envelope || c->phase != PHASE_IDLE || c->line_len > 0 || c->pending_fd >= 0) {
			close(fd);
			drop(c, "protocol");
			return;
		}
		c->pending_fd = fd;
	}
	if (n == 0) {
		drop(c, NULL);	/* gone: what it had not committed goes with it */
		return;
	}
	touch(s, c);
	if (envelope) {
		if (take_envelope_octets(c, s->buf, (size_t)n) < 0)
			drop(c, "protocol");
		return;
	}
	c->line_len += (size_t)n;
	handle_lines(s, c);
}

/* ---- whole messages ---- */

static bool whole(const struct conn *c)
{
	return !c->dead && c->phase == PHASE_ENVELOPE && c->env_len == c->env_want &&
	       c->data_done;
}

/* The message of C is whole: refused now, or ready for this round's commit. */
static void finish_message(struct service *s, struct conn *c)
{
	struct qq_envelope e;
	const char *what = NULL;

	if (c->peer_closed) {	/* gave up (its timeout): nothing is committed */
		drop(c, NULL);
		return;
	}
	if (c->code == QQ_QUEUED && c->data_read != c->msglen)
		refuse(c, QQ_READ_ERROR, "message length differs from the end line", 0);
	if (c->code == QQ_QUEUED) {
		int r = qq_envelope_parse(c->env, c->env_len, &e, &what);
		if (r != QQ_QUEUED)
			refuse(c, r, what, 0);
		else if (commit_add_envelope(&c->commit, time(NULL), e.sender, e.rcpts,
					     e.nrcpts) != QQ_QUEUED)
			refuse(c, c->commit.outcome, c->commit.what, c->commit.error);
		if (c->code == QQ_QUEUED) {
			c->sender = e.sender;
			c->nrcpts = e.nrcpts;
			s->batch[s->nready] = &c->commit;
			s->ready[s->nready++] = c;
		}
		free(e.rcpts);
		if (c->code == QQ_QUEUED)
			return;
	}
	send_reply(c, c->code);
	message_reset(c);
}

/* Commits this round's whole messages together, then answers each. */
static void commit_round(struct service *s)
{
	bool any = false;

	if (s->nready == 0)
		return;
	commit_batch(&s->syncs, s->batch, s->nready);
	for (size_t i = 0; i < s->nready; i++) {
		struct conn *c = s->ready[i];
		struct commit *m = &c->commit;
		if (m->outcome == QQ_QUEUED) {
			any = true;
			log_event("accepted", "id=%s uid=%u from=%s rcpts=%zu size=%llu", m->id,
				  (unsigned)c->uid, c->sender, c->nrcpts,
				  (unsigned long long)c->data_read);
		} else
			log_event("error", "id=%s uid=%u what=%s error=%s", m->id, (unsigned)c->uid,
				  m->what, m->error ? strerror(m->error) : "none");
		send_reply(c, m->outcome);
		message_reset(c);
		touch(s, c);
	}
	s->nready = 0;
	if (any)
		spool_poke(s->conf.spool);
}

/* ---- the loop ---- */

static int poll_timeout(const struct service *s)
{
	int64_t now = now_ms(), first = -1;

	for (size_t i = 0; i < s->nconns; i++) {
		const struct conn *c = s->conns[i];
		if (c->kind == DATA_MEMFD && !c->data_done)
			return 0;	/* more to copy, without waiting */
		if (first < 0 || c->deadline_ms < first)
			first = c->deadline_ms;
	}
	if (first < 0)
		return -1;
	return first <= now ? 0 : first - now > 3600000 ? 3600000 : (int)(first - now);
}

static size_t fill_pollfds(struct service *s)
{
	size_t n = 0;

	s->pfd[n++] = (struct pollfd){ .fd = s->signal_fd, .events = POLLIN };
	s->pfd[n++] = (struct pollfd){ .fd = s->listen_fd, .events = POLLIN };
	for (size_t i = 0; i < s->nconns; i++) {
		struct conn *c = s->conns[i];
		s->pfd[n++] = (struct pollfd){ .fd = c->sock, .events = POLLIN | POLLRDHUP };
		bool reading = c->kind == DATA_PIPE && !c->data_done;
		s->pfd[n++] = (struct pollfd){ .fd = reading ? c->data_fd : -1, .events = POLLIN };
	}
	return n;
}

static void serve_connections(struct service *s, size_t polled)
{
	for (size_t i = 0; i < polled; i++) {
		struct conn *c = s->conns[i];
		short sock_ev = s->pfd[2 + 2 * i].revents, data_ev = s->pfd[3 + 2 * i].revents;
		if (sock_ev & (POLLRDHUP | POLLHUP))
			c->peer_closed = true;
		if (sock_ev)
			receive(s, c);
		if (!c->dead && !c->data_done &&
		    (data_ev || c->kind == DATA_MEMFD) && c->phase != PHASE_IDLE)
			read_data(s, c);
		if (whole(c))
			finish_message(s, c);
	}
}

static void close_dead_and_expired(struct service *s)
{
	int64_t now = now_ms();

	for (size_t i = s->nconns; i-- > 0;) {
		struct conn *c = s->conns[i];
		if (!c->dead && c->deadline_ms <= now)
			drop(c, "queue_timeout");
		if (c->dead)
			close_conn(s, i);
	}
}

static void run(struct service *s)
{
	while (!s->stopping) {
		size_t n = fill_pollfds(s), polled = s->nconns;
		if (poll(s->pfd, n, poll_timeout(s)) < 0 && errno != EINTR) {
			log_event("error", "what=poll error=%s", strerror(errno));
			return;
		}
		if (s->pfd[0].revents & POLLIN)
			s->stopping = true;
		serve_connections(s, polled);
		commit_round(s);
		close_dead_and_expired(s);
		if (s->pfd[1].revents & POLLIN)
			accept_all(s);
	}
}

/* ---- start ---- */

static bool is_listening_unix_socket(int fd)
{
	int value;
	socklen_t len = sizeof value;

	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &value, &len) < 0 || !value)
		return false;
	len = sizeof value;
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &value, &len) < 0 || value != AF_UNIX)
		return false;
	len = sizeof value;
	return getsockopt(fd, SOL_SOCKET, SO_TYPE, &value, &len) == 0 && value == SOCK_STREAM;
}

/* As many connections as descriptors allow, up to queue_connections. */
static size_t connection_cap(const struct tern_conf *conf)
{
	struct rlimit rl;
	size_t cap = conf->queue_connections;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
		size_t room = rl.rlim_cur > FDS_RESERVED
			? (size_t)(rl.rlim_cur - FDS_RESERVED) / FDS_PER_CONNECTION : 1;
		if (room < cap)
			cap = room;
	}
	return cap > 0 ? cap : 1;
}

static int setup(struct service *s, const char *config_path)
{
	char err[CONF_ERROR_MAX];
	sigset_t mask;

	if (conf_load(&s->conf, config_path, err, sizeof err) < 0) {
		fprintf(stderr, "tern-queue: %s\n", err);
		return -1;
	}
	if (geteuid() == 0 && !s->conf.instance) {
		fprintf(stderr, "tern-queue: the service never runs as root\n");
		return -1;
	}
	/* tern-deliver keeps the socket, and this service with it: when it
	 * ends (kill -9 included), so does this. */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() == 1) {
		fprintf(stderr, "tern-queue: --service: no tern-deliver\n");
		return -1;
	}
	s->listen_fd = 0;
	if (!is_listening_unix_socket(s->listen_fd) || fd_nonblock(s->listen_fd) < 0) {
		fprintf(stderr, "tern-queue: --service: fd 0 is not a listening local socket\n");
		return -1;
	}
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	s->signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	s->max_conns = connection_cap(&s->conf);
	s->size_limit = s->conf.max_message_size + TRACE_ALLOWANCE;
	s->conns = calloc(s->max_conns, sizeof *s->conns);
	s->ready = calloc(s->max_conns, sizeof *s->ready);
	s->batch = calloc(s->max_conns, sizeof *s->batch);
	s->pfd = calloc(2 + 2 * s->max_conns, sizeof *s->pfd);
	s->buf = malloc(READ_CHUNK);
	if (s->signal_fd < 0 || !s->conns || !s->ready || !s->batch || !s->pfd || !s->buf) {
		fprintf(stderr, "tern-queue: --service: %s\n", strerror(errno));
		return -1;
	}
	if (syncs_start(&s->syncs) < 0)	/* slower, never wrong: one after another */
		log_event("error", "what=threads error=\"%s; syncs run one after another\"",
			  strerror(errno));
	return 0;
}

static void teardown(struct service *s)
{
	while (s->nconns > 0)
		close_conn(s, s->nconns - 1);
	free(s->conns);
	free(s->ready);
	free(s->batch);
	free(s->pfd);
	free(s->buf);
	if (s->signal_fd >= 0)
		close(s->signal_fd);
	syncs_stop(&s->syncs);
}

int service_main(const char *config_path)
{
	struct service s = { .signal_fd = -1 };
	int status = 0;

	if (setup(&s, config_path) < 0)
		status = EXIT_CANNOT_START;
	else {
		log_event("service_start", "connections=%zu per_uid=%u spool=%s", s.max_conns,
			  s.conf.queue_connections_per_uid, s.conf.spool);
		run(&s);
		log_event("service_end", "spool=%s", s.conf.spool);
	}
	teardown(&s);
	return status;
}
