#include "queue_client.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "packet.h"
#include "util.h"

/* How often queue_wait looks again where the kernel has no pidfd. */
#define WAIT_SLICE_MS 50
/* The child's protocol: fd 0 message, fd 1 envelope, fd 6 custom text. */
#define CHILD_FDS 7
/* How long the service may take to greet a new connection before the
 * program runs instead (at most the target's timeout). */
#define GREETING_TIMEOUT_MS 5000
#define SERVICE_SEALS (F_SEAL_SEAL | F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW)
/* The pipe to the service holds this much if the kernel lets it (the
 * default is 64 KiB): a message this size is written whole while the
 * service commits others, so a commit holds up no session's DATA.  The
 * 250 sessions a uid may have (queue_connections_per_uid) hold 62.5 MiB:
 * just within Linux's 64 MiB of pipes a user (pipe-user-pages-soft), past
 * which every new pipe of that user gets 2 pages.  A larger cap or pipe
 * wants that limit raised. */
#define SERVICE_PIPE_SIZE (256 << 10)

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t deadline_after(unsigned seconds)
{
	return now_ms() + (int64_t)seconds * 1000;
}

static int ms_until(int64_t deadline)
{
	int64_t left = deadline - now_ms();

	if (left <= 0)
		return 0;
	return left > INT_MAX ? INT_MAX : (int)left;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void client_init(struct queue_client *q, unsigned timeout)
{
	memset(q, 0, sizeof *q);
	q->pidfd = q->message_fd = q->envelope_fd = q->custom_fd = q->sock = -1;
	q->timeout = timeout;
	q->outcome = QUEUE_PENDING;
}

int queue_program(char *out, size_t outsize)
{
	const char *filter = getenv("QMAILQUEUE");

	if (filter != NULL && filter[0] != '\0')
		return str_copy(out, outsize, filter) ? 0 : -1;
	if (find_program("tern-queue", out, outsize) < 0) {
		log_event("error", "what=find program=tern-queue");
		return -1;
	}
	return 0;
}

const char *queue_socket(const char *socket)
{
	const char *filter = getenv("QMAILQUEUE");

	return filter != NULL && filter[0] != '\0' ? NULL : socket;
}

char *queue_envelope(const char *sender, char *const *rcpts, size_t nrcpts, size_t *len)
{
	size_t size = strlen(sender) + 3;

	for (size_t i = 0; i < nrcpts; i++)
		size += strlen(rcpts[i]) + 2;
	char *env = malloc(size);
	if (env == NULL)
		return NULL;
	size_t n = 0;
	env[n++] = 'F';
	memcpy(env + n, sender, strlen(sender) + 1);
	n += strlen(sender) + 1;
	for (size_t i = 0; i < nrcpts; i++) {
		env[n++] = 'T';
		memcpy(env + n, rcpts[i], strlen(rcpts[i]) + 1);
		n += strlen(rcpts[i]) + 1;
	}
	env[n++] = '\0';
	*len = n;
	return env;
}

/* ---- the service ---- */

/* Reads the service's greeting by DEADLINE: 0 if it takes the connection. */
static int read_greeting(int sock, int64_t deadline)
{
	char buf[sizeof QS_GREETING];
	size_t got = 0, want = sizeof QS_GREETING - 1;

	while (got < want) {
		ssize_t n = read(sock, buf + got, want - got);
		if (n > 0) {
			got += (size_t)n;
			continue;
		}
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			return -1;
		struct pollfd p = { .fd = sock, .events = POLLIN };
		int left = ms_until(deadline);
		if (left == 0 || poll(&p, 1, left) == 0)
			return -1;
	}
	return memcmp(buf, QS_GREETING, want) == 0 ? 0 : -1;
}

/* Whether the peer of SOCK is the owner of the spool folder. */
static bool peer_owns_spool(int sock, const char *spool)
{
	struct ucred cred;
	socklen_t len = sizeof cred;
	struct stat st;

	if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || len != sizeof cred ||
	    stat(spool, &st) < 0)
		return false;
	if (cred.uid == st.st_uid)
		return true;
	log_event("error", "what=queue_socket peer_uid=%u spool_owner=%u",
		  (unsigned)cred.uid, (unsigned)st.st_uid);
	return false;
}

/* A connection to the service at T's socket that passed the owner check
 * (and, if GREET_BY is not 0, whose greeting came by then); -1 if there
 * is none, and nothing was sent. */
static int service_connect(const struct queue_target *t, int64_t greet_by)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	if (t->socket == NULL || t->socket[0] == '\0' || t->spool == NULL ||
	    !str_copy(sa.sun_path, sizeof sa.sun_path, t->socket))
		return -1;
	int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (sock < 0)
		return -1;
	if (connect(sock, (struct sockaddr *)&sa, sizeof sa) < 0 ||
	    !peer_owns_spool(sock, t->spool) ||
	    (greet_by != 0 && read_greeting(sock, greet_by) < 0)) {
		close(sock);
		return -1;
	}
	return sock;
}

/* "begin ID" with FD, in one message: all of it sent, or nothing. */
static int send_begin(int sock, const char *qid, int fd)
{
	char line[QS_LINE_MAX];
	int n = qs_format_begin(line, sizeof line, qid);

	return n < 0 ? -1 : packet_send(sock, line, (size_t)n, fd);
}

/* T's qid, or a fresh one, into Q. */
static void choose_qid(struct queue_client *q, const struct queue_target *t)
{
	if (t->qid != NULL)
		str_copy(q->qid, sizeof q->qid, t->qid);
	else
		qid_make(q->qid);
}

void queue_link_close(struct queue_link *link)
{
	close_fd(&link->sock);
}

/* "begin" with the read end of a new pipe on SOCK: 0 with the write end in
 * *WRITE_END, or -1 with nothing sent. */
static int begin_pipe(int sock, const char *qid, int *write_end)
{
	int p[2];

	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	/* best effort: past pipe-max-size or the user's pipe pages, 64 KiB */
	(void)fcntl(p[1], F_SETPIPE_SZ, SERVICE_PIPE_SIZE);
	int r = send_begin(sock, qid, p[0]);
	close(p[0]);
	if (r < 0) {
		close(p[1]);
		return -1;
	}
	*write_end = p[1];
	return 0;
}

/* The message, piece by piece, through a pipe to the service: on T's kept
 * connection if it still takes a begin, else on a new one.  0, or -1 with
 * nothing sent (the program runs instead). */
static int start_service(struct queue_client *q, const struct queue_target *t)
{
	int64_t greet_by = now_ms() + (t->timeout * 1000LL < GREETING_TIMEOUT_MS
				       ? t->timeout * 1000LL : GREETING_TIMEOUT_MS);
	int sock = -1, write_end = -1;

	choose_qid(q, t);
	if (!qid_valid(q->qid))
		return -1;
	if (t->link != NULL && t->link->sock >= 0) {
		sock = t->link->sock;	/* gone stale (a restart, a timeout): a new one */
		t->link->sock = -1;
		if (begin_pipe(sock, q->qid, &write_end) < 0)
			close_fd(&sock);
	}
	if (sock < 0) {
		sock = service_connect(t, greet_by);
		if (sock < 0 || begin_pipe(sock, q->qid, &write_end) < 0) {
			if (sock >= 0)
				close(sock);
			return -1;
		}
	}
	q->sock = sock;
	q->link = t->link;
	q->greeted = true;
	q->message_fd = write_end;
	fd_nonblock(q->message_fd);
	return 0;
}

/* A memfd made for sealing, at offset 0, sealed now: its size, or -1. */
static off_t sealed_size(int fd)
{
	struct stat st;

	if (lseek(fd, 0, SEEK_CUR) != 0 || fstat(fd, &st) < 0)
		return -1;
	int seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0)
		return -1;
	if ((seals & SERVICE_SEALS) != SERVICE_SEALS &&
	    fcntl(fd, F_ADD_SEALS, SERVICE_SEALS & ~seals) < 0)
		return -1;
	return st.st_size;
}

static int write_by(struct queue_client *q, int fd, const char *buf, size_t len,
		    int64_t deadline);

/* "end MSGLEN ENVLEN" and the envelope, by the deadline. */
static int send_end(struct queue_client *q, const char *envelope, size_t len)
{
	char line[QS_LINE_MAX];
	int n = qs_format_end(line, sizeof line, q->written, len);

	if (n < 0 || write_by(q, q->sock, line, (size_t)n, q->deadline_ms) < 0)
		return -1;
	return write_by(q, q->sock, envelope, len, q->deadline_ms);
}

/* The whole message in MESSAGE_FD to the service, without waiting for
 * its greeting (read with the reply).  0, or -1 with nothing sent. */
static int submit_service(struct queue_client *q, const struct queue_target *t,
			  int message_fd, const char *envelope, size_t len)
{
	off_t size = sealed_size(message_fd);
	int sock = size < 0 ? -1 : service_connect(t, 0);

	if (sock < 0)
		return -1;
	choose_qid(q, t);
	if (!qid_valid(q->qid) || send_begin(sock, q->qid, message_fd) < 0) {
		close(sock);
		return -1;
	}
	q->sock = sock;
	q->written = (uint64_t)size;
	q->deadline_ms = deadline_after(q->timeout);
	if (send_end(q, envelope, len) < 0 && q->sock >= 0) {
		close_fd(&q->sock);
		q->outcome = QUEUE_FAILED;
	}
	return 0;
}

/* Takes what the service has said, without waiting: the outcome once its
 * reply line is whole (QUEUE_FAILED for a busy or broken service). */
static int read_reply(struct queue_client *q)
{
	for (;;) {
		char *lf = memchr(q->line, '\n', q->line_len);
		if (lf != NULL) {
			size_t len = (size_t)(lf - q->line);
			int code;
			if (!q->greeted && len + 1 == sizeof QS_GREETING - 1 &&
			    memcmp(q->line, QS_GREETING, len + 1) == 0) {
				q->greeted = true;
				memmove(q->line, lf + 1, q->line_len - len - 1);
				q->line_len -= len + 1;
				continue;
			}
			bool whole = len + 1 == q->line_len;	/* nothing after the reply */
			if (!q->greeted || qs_parse_reply(q->line, len, &code) < 0)
				code = QUEUE_FAILED;
			if (code >= 0 && whole && q->link != NULL && q->link->sock < 0)
				q->link->sock = q->sock;	/* ready for the next begin */
			else
				close(q->sock);
			q->sock = -1;
			return q->outcome = code;
		}
		if (q->line_len == sizeof q->line)
			break;
		ssize_t n = read(q->sock, q->line + q->line_len, sizeof q->line - q->line_len);
		if (n > 0) {
			q->line_len += (size_t)n;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return QUEUE_PENDING;
		break;
	}
	close_fd(&q->sock);
	return q->outcome = QUEUE_FAILED;
}

/* ---- the child ---- */

/* Moves FD out of the range 0..6 that the child's protocol needs. */
static int lift(int fd)
{
	if (fd >= CHILD_FDS || fd < 0)
		return fd;
	int moved = fcntl(fd, F_DUPFD_CLOEXEC, CHILD_FDS);
	close(fd);
	return moved;
}

/* This environment less any TERN_QID and TERN_CONFIG, plus QID_VAR (if
 * not NULL) and CONFIG_VAR: for the queue program only, so the caller's
 * own stays as it came.  Free the array (not its strings) with free(). */
static char **queue_environment(char *qid_var, char *config_var)
{
	extern char **environ;
	size_t n = 0, k = 0;

	while (environ[n] != NULL)
		n++;
	char **envp = calloc(n + 3, sizeof *envp);
	if (envp == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "TERN_QID=", 9) != 0 &&
		    strncmp(environ[i], "TERN_CONFIG=", 12) != 0)
			envp[k++] = environ[i];
	if (qid_var != NULL)
		envp[k++] = qid_var;
	envp[k++] = config_var;
	envp[k] = NULL;
	return envp;
}

/* Runs the program with MESSAGE, ENVELOPE and CUSTOM as its fds 0, 1, 6. */
static pid_t spawn_queue(const struct queue_target *t, int message, int envelope, int custom)
{
	const int fds[CHILD_FDS] = { message, envelope, -1, -1, -1, -1, custom };
	char qid_var[QID_MAX + 16], config_var[PATH_MAX + 16], found[PATH_MAX];
	const char *program = t->program;
	pid_t pid;

	if (program == NULL) {
		if (queue_program(found, sizeof found) < 0)
			return -1;
		program = found;
	}
	if (t->qid != NULL && snprintf(qid_var, sizeof qid_var, "TERN_QID=%s", t->qid) >=
			      (int)sizeof qid_var)
		return -1;
	if (snprintf(config_var, sizeof config_var, "TERN_CONFIG=%s", t->config) >=
	    (int)sizeof config_var)
		return -1;
	char **envp = queue_environment(t->qid != NULL ? qid_var : NULL, config_var);
	if (envp == NULL)
		return -1;
	char *argv[] = { (char *)program, NULL };
	int r = spawn_group_with_fds(&pid, program, argv, envp, fds, CHILD_FDS);
	free(envp);
	if (r != 0) {
		log_event("error", "what=exec program=%s error=%s", program, strerror(r));
		return -1;
	}
	return pid;
}

/* Spawns the program and keeps what the parent needs of it. */
static int begin(struct queue_client *q, const struct queue_target *t, int message,
		 int envelope)
{
	int cp[2];

	if (pipe2(cp, O_CLOEXEC | O_NONBLOCK) < 0)
		return -1;
	cp[1] = lift(cp[1]);
	pid_t pid = cp[1] < 0 ? -1 : spawn_queue(t, message, envelope, cp[1]);
	close_fd(&cp[1]);
	if (pid < 0) {
		close(cp[0]);
		return -1;
	}
	q->pid = pid;
	q->custom_fd = cp[0];
	q->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	return 0;
}

int queue_start(struct queue_client *q, const struct queue_target *t)
{
	int mp[2] = { -1, -1 }, ep[2] = { -1, -1 };

	client_init(q, t->timeout);
	if (start_service(q, t) == 0)
		return 0;
	if (pipe2(mp, O_CLOEXEC) < 0 || pipe2(ep, O_CLOEXEC) < 0)
		goto fail;
	mp[0] = lift(mp[0]), ep[0] = lift(ep[0]);
	if (mp[0] < 0 || ep[0] < 0 || begin(q, t, mp[0], ep[0]) < 0)
		goto fail;
	close(mp[0]), close(ep[0]);
	q->message_fd = mp[1];
	q->envelope_fd = ep[1];
	fd_nonblock(q->message_fd);
	fd_nonblock(q->envelope_fd);
	return 0;
fail:
	for (int i = 0; i < 2; i++)
		close_fd(&mp[i]), close_fd(&ep[i]);
	q->outcome = QUEUE_FAILED;
	return -1;
}

/* The envelope in a memory file: the child reads it as it would a pipe,
 * and nobody waits for it to. */
static int envelope_file(const char *envelope, size_t len)
{
	int fd = memfd_create("tern-envelope", MFD_CLOEXEC);

	if (fd < 0)
		return -1;
	if (write_all(fd, envelope, len) < 0 || lseek(fd, 0, SEEK_SET) < 0) {
		close(fd);
		return -1;
	}
	return lift(fd);
}

int queue_submit(struct queue_client *q, const struct queue_target *t, int message_fd,
		 const char *envelope, size_t len)
{
	client_init(q, t->timeout);
	if (submit_service(q, t, message_fd, envelope, len) == 0)
		return 0;
	int env = envelope_file(envelope, len);
	int message = env < 0 ? -1 : fcntl(message_fd, F_DUPFD_CLOEXEC, CHILD_FDS);
	int r = message < 0 ? -1 : begin(q, t, message, env);

	close_fd(&env);
	close_fd(&message);
	if (r < 0) {
		q->outcome = QUEUE_FAILED;
		return -1;
	}
	q->deadline_ms = deadline_after(q->timeout);
	return 0;
}

/* ---- the end of the child ---- */

/* The child has ended: OUTCOME is final, and exit 82's text (fd 6) is
 * there now or never. */
static void ended(struct queue_client *q, int outcome)
{
	q->pid = 0;
	q->outcome = outcome;
	close_fd(&q->pidfd);
	if (outcome == 82 && q->custom_fd >= 0) {
		ssize_t n = read(q->custom_fd, q->custom, sizeof q->custom - 1);
		q->custom[n > 0 ? n : 0] = '\0';
	}
	close_fd(&q->custom_fd);
}

/* The whole process group, then the child itself; reaped. */
static void kill_queue(struct queue_client *q)
{
	q->broken = true;
	if (q->sock >= 0) {	/* the service discards what it has not committed */
		log_event("error", "what=queue_timeout socket=yes timeout_s=%u", q->timeout);
		close_fd(&q->sock);
		close_fd(&q->message_fd);
		q->outcome = QUEUE_TIMED_OUT;
		return;
	}
	if (q->pid <= 0) {	/* (never kill(-0): that is this process's own group) */
		if (q->outcome == QUEUE_PENDING)
			q->outcome = QUEUE_TIMED_OUT;
		return;
	}
	log_event("error", "what=queue_timeout pid=%d timeout_s=%u", (int)q->pid, q->timeout);
	kill(-q->pid, SIGKILL);
	kill(q->pid, SIGKILL);
	while (waitpid(q->pid, NULL, 0) < 0 && errno == EINTR)
		;
	ended(q, QUEUE_TIMED_OUT);
}

int queue_check(struct queue_client *q)
{
	int status;

	if (q->outcome != QUEUE_PENDING)
		return q->outcome;
	if (q->sock >= 0) {
		if (read_reply(q) == QUEUE_PENDING && ms_until(q->deadline_ms) == 0)
			kill_queue(q);
		return q->outcome;
	}
	if (q->pid <= 0)
		return q->outcome = QUEUE_FAILED;
	pid_t r = waitpid(q->pid, &status, WNOHANG);
	if (r == q->pid)
		ended(q, WIFEXITED(status) ? WEXITSTATUS(status) : QUEUE_FAILED);
	else if (r < 0 && errno != EINTR)
		ended(q, QUEUE_FAILED);
	else if (ms_until(q->deadline_ms) == 0) {
		kill_queue(q);
	}
	return q->outcome;
}

int queue_remaining_ms(const struct queue_client *q)
{
	return ms_until(q->deadline_ms);
}

int queue_wait(struct queue_client *q)
{
	int outcome;

	while ((outcome = queue_check(q)) == QUEUE_PENDING) {
		int left = ms_until(q->deadline_ms);
		if (q->sock >= 0) {
			struct pollfd p = { .fd = q->sock, .events = POLLIN };
			poll(&p, 1, left);
			continue;
		}
		if (q->pidfd < 0) {
			poll(NULL, 0, left < WAIT_SLICE_MS ? left : WAIT_SLICE_MS);
			continue;
		}
		struct pollfd p = { .fd = q->pidfd, .events = POLLIN };
		poll(&p, 1, left);
	}
	return outcome;
}

/* ---- the message ---- */

/* Writes all of BUF to the non-blocking FD by DEADLINE; past it, kills the
 * queue.  -1 if anything failed. */
static int write_by(struct queue_client *q, int fd, const char *buf, size_t len,
		    int64_t deadline)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n > 0) {
			buf += n, len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -1;
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		int left = ms_until(deadline);
		if (left == 0 || poll(&p, 1, left) == 0) {
			kill_queue(q);
			return -1;
		}
	}
	return 0;
}

int queue_write(struct queue_client *q, const void *buf, size_t len)
{
	if (q->broken)
		return -1;
	if (len > 0 &&
	    write_by(q, q->message_fd, buf, len, deadline_after(q->timeout)) < 0)
		q->broken = true;
	if (!q->broken)
		q->written += len;
	return q->broken ? -1 : 0;
}

void queue_end(struct queue_client *q, const char *envelope, size_t len)
{
	close_fd(&q->message_fd);
	q->deadline_ms = deadline_after(q->timeout);
	if (q->sock >= 0) {
		/* Sent even after a failed write: the service has refused the
		 * message then, and says so in its reply. */
		if (send_end(q, envelope, len) < 0 && q->sock >= 0) {
			close_fd(&q->sock);
			q->outcome = QUEUE_FAILED;
		}
		return;
	}
	if (!q->broken && write_by(q, q->envelope_fd, envelope, len, q->deadline_ms) < 0)
		q->broken = true;
	close_fd(&q->envelope_fd);
}

/* The service has seen the connection end (and removed what it had of
 * the message) when it closes its side: waited for up to the timeout. */
static void close_service(struct queue_client *q)
{
	char buf[QS_LINE_MAX];

	shutdown(q->sock, SHUT_WR);
	for (;;) {
		ssize_t n = read(q->sock, buf, sizeof buf);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			break;
		struct pollfd p = { .fd = q->sock, .events = POLLIN };
		int left = ms_until(q->deadline_ms);
		if (n < 0 && (left == 0 || poll(&p, 1, left) == 0))
			break;
	}
	close_fd(&q->sock);
}

void queue_abort(struct queue_client *q)
{
	close_fd(&q->message_fd);
	close_fd(&q->envelope_fd);
	q->deadline_ms = deadline_after(q->timeout);
	if (q->sock >= 0)
		close_service(q);
	if (q->pid > 0)
		queue_wait(q);
	close_fd(&q->custom_fd);
}

/* ---- the reply ---- */

/* Exit 82: the filter's own text on fd 6, D permanent, Z temporary. */
static void custom_reply(const char *custom, char *reply, size_t size)
{
	char text[QUEUE_REPLY_MAX];

	str_copy(text, sizeof text, custom);
	text[strcspn(text, "\r\n")] = '\0';
	if (strlen(text) <= 1 || (text[0] != 'D' && text[0] != 'Z')) {
		snprintf(reply, size, "451 4.3.0 Temporary failure in queueing");
		return;
	}
	for (char *p = text; *p; p++)
		if ((unsigned char)*p < ' ')
			*p = ' ';
	if (text[0] == 'D')
		snprintf(reply, size, "554 5.3.0 %s", text + 1);
	else
		snprintf(reply, size, "451 4.3.0 %s", text + 1);
}

bool queue_refused_permanently(const struct queue_client *q, int outcome)
{
	return (outcome >= 11 && outcome <= 40) || (outcome == 82 && q->custom[0] == 'D');
}

void queue_reply(const struct queue_client *q, int outcome, const char *qid, char *reply,
		 size_t replysize)
{
	if (outcome == 0)
		snprintf(reply, replysize, "250 2.0.0 Ok: queued as %s", qid);
	else if (outcome == 82)
		custom_reply(q->custom, reply, replysize);
	else if (outcome == 11)
		snprintf(reply, replysize, "554 5.1.3 Envelope address too long");
	else if (outcome >= 11 && outcome <= 40)
		snprintf(reply, replysize, "554 5.3.0 Message refused permanently by the queue");
	else if (outcome == QUEUE_TIMED_OUT)
		snprintf(reply, replysize, "451 4.3.0 Temporary failure: the queue did not answer "
					   "in time");
	else if (outcome < 0)
		snprintf(reply, replysize, "451 4.3.0 Temporary failure in queueing");
	else
		snprintf(reply, replysize, "451 4.3.0 Temporary failure in queueing (code %d)",
			 outcome);
}

int queue_finish(struct queue_client *q, const char *envelope, size_t len, const char *qid,
		 char *reply, size_t replysize)
{
	queue_end(q, envelope, len);
	int outcome = queue_wait(q);
	queue_reply(q, outcome, qid, reply, replysize);
	return outcome;
}
