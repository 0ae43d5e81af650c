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
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

/* How often queue_wait looks again where the kernel has no pidfd. */
#define WAIT_SLICE_MS 50
/* The child's protocol: fd 0 message, fd 1 envelope, fd 6 custom text. */
#define CHILD_FDS 7

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
	q->pidfd = q->message_fd = q->envelope_fd = q->custom_fd = -1;
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
	char qid_var[QID_MAX + 16], config_var[PATH_MAX + 16];
	pid_t pid;

	if (t->qid != NULL && snprintf(qid_var, sizeof qid_var, "TERN_QID=%s", t->qid) >=
			      (int)sizeof qid_var)
		return -1;
	if (snprintf(config_var, sizeof config_var, "TERN_CONFIG=%s", t->config) >=
	    (int)sizeof config_var)
		return -1;
	char **envp = queue_environment(t->qid != NULL ? qid_var : NULL, config_var);
	if (envp == NULL)
		return -1;
	char *argv[] = { (char *)t->program, NULL };
	int r = spawn_group_with_fds(&pid, t->program, argv, envp, fds, CHILD_FDS);
	free(envp);
	if (r != 0) {
		log_event("error", "what=exec program=%s error=%s", t->program, strerror(r));
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
	return q->broken ? -1 : 0;
}

void queue_end(struct queue_client *q, const char *envelope, size_t len)
{
	close_fd(&q->message_fd);
	q->deadline_ms = deadline_after(q->timeout);
	if (!q->broken && write_by(q, q->envelope_fd, envelope, len, q->deadline_ms) < 0)
		q->broken = true;
	close_fd(&q->envelope_fd);
}

void queue_abort(struct queue_client *q)
{
	close_fd(&q->message_fd);
	close_fd(&q->envelope_fd);
	q->deadline_ms = deadline_after(q->timeout);
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
