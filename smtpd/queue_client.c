#include "queue_client.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Moves FD out of the range 0..6 that the child's protocol needs. */
static int lift(int fd)
{
	if (fd > 6)
		return fd;
	int moved = fcntl(fd, F_DUPFD_CLOEXEC, 7);
	close(fd);
	return moved;
}

/* This environment less any TERN_QID and TERN_CONFIG, plus QID_VAR and
 * CONFIG_VAR: for the queue program only, so tern-smtpd's own stays as
 * it came.  Free the array (not its strings) with free(). */
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
	envp[k++] = qid_var;
	envp[k++] = config_var;
	envp[k] = NULL;
	return envp;
}

/* posix_spawn, not fork: no copy of this process's page tables and no
 * copy-on-write faults afterwards, which is most of the cost of a fork. */
static pid_t spawn(const char *program, int message, int envelope, int custom,
		   const char *qid, const char *config)
{
	const int fds[] = { message, envelope, -1, -1, -1, -1, custom };
	char qid_var[QID_MAX + 16], config_var[PATH_MAX + 16];
	pid_t pid;

	snprintf(qid_var, sizeof qid_var, "TERN_QID=%s", qid);
	if (snprintf(config_var, sizeof config_var, "TERN_CONFIG=%s", config) >=
	    (int)sizeof config_var)
		return -1;
	char **envp = queue_environment(qid_var, config_var);
	if (envp == NULL)
		return -1;
	int r = spawn_with_fds(&pid, program, (char *[]){ (char *)program, NULL }, envp, fds, 7);
	free(envp);
	if (r != 0) {
		log_event("error", "what=exec program=%s error=%s", program, strerror(r));
		return -1;
	}
	return pid;
}

int queue_start(struct queue_client *q, const char *qid, const char *config)
{
	char program[PATH_MAX];
	int mp[2], ep[2], cp[2];
	const char *filter = getenv("QMAILQUEUE");

	memset(q, 0, sizeof *q);
	q->message_fd = q->envelope_fd = q->custom_fd = -1;
	if (filter != NULL && filter[0] != '\0') {
		if (!str_copy(program, sizeof program, filter))
			return -1;
	} else if (find_program("tern-queue", program, sizeof program) < 0) {
		log_event("error", "what=find program=tern-queue");
		return -1;
	}
	if (pipe2(mp, O_CLOEXEC) < 0)
		return -1;
	if (pipe2(ep, O_CLOEXEC) < 0) {
		close(mp[0]), close(mp[1]);
		return -1;
	}
	if (pipe2(cp, O_CLOEXEC) < 0) {
		close(mp[0]), close(mp[1]), close(ep[0]), close(ep[1]);
		return -1;
	}
	mp[0] = lift(mp[0]), ep[0] = lift(ep[0]), cp[1] = lift(cp[1]);
	q->pid = spawn(program, mp[0], ep[0], cp[1], qid, config);
	close(mp[0]), close(ep[0]), close(cp[1]);
	if (q->pid < 0) {
		close(mp[1]), close(ep[1]), close(cp[0]);
		q->pid = 0;
		return -1;
	}
	q->message_fd = mp[1];
	q->envelope_fd = ep[1];
	q->custom_fd = cp[0];
	return 0;
}

void queue_write(struct queue_client *q, const char *buf, size_t len)
{
	if (q->broken || len == 0)
		return;
	if (write_all(q->message_fd, buf, len) < 0)
		q->broken = true;
}

static int wait_exit(pid_t pid)
{
	int status;

	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void queue_abort(struct queue_client *q)
{
	close_fd(&q->message_fd);
	close_fd(&q->envelope_fd);
	close_fd(&q->custom_fd);
	if (q->pid > 0)
		wait_exit(q->pid);
	q->pid = 0;
}

/* Exit 82: the filter's own text on fd 6, D permanent, Z temporary. */
static void custom_reply(int fd, char *reply, size_t size)
{
	char text[QUEUE_REPLY_MAX];
	ssize_t n = read_full(fd, text, sizeof text - 1);

	if (n <= 1 || (text[0] != 'D' && text[0] != 'Z')) {
		snprintf(reply, size, "451 4.3.0 Temporary failure in queueing");
		return;
	}
	text[n] = '\0';
	text[strcspn(text, "\r\n")] = '\0';
	for (char *p = text; *p; p++)
		if ((unsigned char)*p < ' ')
			*p = ' ';
	if (text[0] == 'D')
		snprintf(reply, size, "554 5.3.0 %s", text + 1);
	else
		snprintf(reply, size, "451 4.3.0 %s", text + 1);
}

int queue_finish(struct queue_client *q, const char *envelope, size_t len,
		 const char *qid, char *reply, size_t replysize)
{
	close_fd(&q->message_fd);
	if (!q->broken && write_all(q->envelope_fd, envelope, len) < 0)
		q->broken = true;
	close_fd(&q->envelope_fd);
	int code = wait_exit(q->pid);
	q->pid = 0;
	if (code == 0)
		snprintf(reply, replysize, "250 2.0.0 Ok: queued as %s", qid);
	else if (code == 82)
		custom_reply(q->custom_fd, reply, replysize);
	else if (code == 11)
		snprintf(reply, replysize, "554 5.1.3 Envelope address too long");
	else if (code >= 11 && code <= 40)
		snprintf(reply, replysize, "554 5.3.0 Message refused permanently by the queue");
	else
		snprintf(reply, replysize, "451 4.3.0 Temporary failure in queueing (code %d)",
			 code);
	close_fd(&q->custom_fd);
	return code;
}
