#include "local_agent.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spool.h"
#include "util.h"

#define OUTPUT_MAX 512

/* Today each delivery is a tern-local child of its own. */
struct slot {
	pid_t pid;
	void *cookie;
	int out_fd;
};

struct local_agents {
	char program[PATH_MAX];
	bool changes_identity;
	struct slot *slots;
	size_t nslots;
	size_t busy;
};

struct local_agents *local_agents_new(const struct tern_conf *conf, const char *program,
				      bool changes_identity, unsigned concurrency)
{
	(void)conf;
	struct local_agents *agents = calloc(1, sizeof *agents);
	if (agents == NULL)
		return NULL;
	agents->nslots = concurrency > 0 ? concurrency : 1;
	agents->slots = calloc(agents->nslots, sizeof *agents->slots);
	if (agents->slots == NULL || !str_copy(agents->program, sizeof agents->program, program)) {
		free(agents->slots);
		free(agents);
		return NULL;
	}
	agents->changes_identity = changes_identity;
	return agents;
}

bool local_agents_full(const struct local_agents *agents)
{
	return agents->busy >= agents->nslots;
}

bool local_agents_idle(const struct local_agents *agents)
{
	return agents->busy == 0;
}

static struct slot *free_slot(struct local_agents *agents)
{
	for (size_t i = 0; i < agents->nslots; i++)
		if (agents->slots[i].pid == 0)
			return &agents->slots[i];
	return NULL;
}

/* The uid of the account MAILDIR is delivered as: its owner, as lstat
 * reports it.  A symlink there answers for itself, unless root made it: a
 * user's link must not borrow another account's identity. */
static int maildir_owner(const char *maildir, uid_t *uid)
{
	char path[PATH_MAX];
	struct stat st;

	if (!str_copy(path, sizeof path, maildir))
		return -1;
	for (size_t n = strlen(path); n > 1 && path[n - 1] == '/'; n--)
		path[n - 1] = '\0';	/* "Maildir/" would make lstat follow a link */
	if (lstat(path, &st) < 0)
		return -1;
	if (S_ISLNK(st.st_mode) && st.st_uid == 0 && stat(path, &st) < 0)
		return -1;
	*uid = st.st_uid;
	return 0;
}

/* Takes on the account a Maildir is delivered as (changes_identity): the
 * account LOGIN, else the Maildir's owner; either way that account's
 * passwd entry gives the group and initgroups(3) the supplementary
 * groups (never the Maildir's group).  In the child of a fork only. */
static int drop_privileges(const char *maildir, const char *login)
{
	struct passwd *pw;
	uid_t uid;

	if (geteuid() != 0 && seteuid(0) < 0)
		return -1;	/* back from the spool owner's identity */
	if (login != NULL) {
		pw = getpwnam(login);
	} else {
		if (maildir_owner(maildir, &uid) < 0)
			return -1;
		pw = getpwuid(uid);
	}
	if (pw == NULL || pw->pw_uid == 0)
		return -1;	/* never as root outside an instance */
	uid = pw->pw_uid;
	gid_t gid = pw->pw_gid;
	if (initgroups(pw->pw_name, gid) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
		return -1;
	if (getuid() != uid || geteuid() != uid || getgid() != gid || getegid() != gid)
		return -1;
	return 0;
}

/* A copy of the message alone, for a tern-local that runs as someone
 * else when the message is a TERN1 file, whose envelope names every
 * recipient (Bcc too); a TERN2 message, mess/ID, is the message alone. */
static int message_only(int message, uint64_t length)
{
	int copy = memfd_create("tern-message", MFD_CLOEXEC);
	off_t offset = 0;

	if (copy < 0)
		return -1;
	while ((uint64_t)offset < length) {
		ssize_t n = sendfile(copy, message, &offset, (size_t)(length - (uint64_t)offset));
		if (n <= 0) {
			close(copy);
			return -1;
		}
	}
	if (lseek(copy, 0, SEEK_SET) < 0) {
		close(copy);
		return -1;
	}
	return copy;
}

/* Runs tern-local with the message (LENGTH octets of MESSAGE, ALONE in
 * it or followed by its envelope) as fd 0 and REASON as fd 1.  When the
 * identity stays (an instance, or not root) posix_spawn does it without
 * copying this process, which is much cheaper than fork; otherwise the
 * child of a fork takes on the Maildir owner's identity first, with only
 * the message to read. */
static pid_t start_local(struct local_agents *agents, int message, bool alone, uint64_t length,
			 int reason, char **argv, const char *maildir, const char *login)
{
	if (!agents->changes_identity) {
		pid_t pid;
		const int fds[] = { message, reason };
		return spawn_with_fds(&pid, agents->program, argv, NULL, fds, 2) == 0 ? pid : -1;
	}
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	signals_default();
	if (dup2(reason, 1) < 0)
		_exit(111);
	int copy = alone ? message : message_only(message, length);
	if (copy < 0 || dup2(copy, 0) < 0) {
		dprintf(1, "4.3.0 cannot copy the message for tern-local: %s\n", strerror(errno));
		_exit(111);
	}
	if (drop_privileges(maildir, login) < 0) {
		dprintf(1, "4.3.0 cannot take on the Maildir owner's identity (never root)\n");
		_exit(111);
	}
	execv(agents->program, argv);
	dprintf(1, "4.3.0 cannot run tern-local: %s\n", strerror(errno));
	_exit(111);
}

int local_agents_start(struct local_agents *agents, const struct local_delivery *delivery,
		       void *cookie, const char **why)
{
	char length[32];
	struct slot *slot = free_slot(agents);
	int out[2];

	*why = NULL;
	if (slot == NULL)
		return -1;
	int fd = spool_open_message(delivery->spool, SPOOL_QUEUE, delivery->id, delivery->format,
				    delivery->msglen);
	if (fd < 0) {
		*why = "4.3.0 cannot open the queued message";
		return -1;
	}
	if (pipe2(out, O_CLOEXEC) < 0) {
		close(fd);
		*why = "4.3.0 cannot make a pipe for tern-local";
		return -1;
	}
	snprintf(length, sizeof length, "%llu", (unsigned long long)delivery->msglen);
	char *argv[] = { "tern-local", "--length", length, (char *)delivery->maildir,
			 (char *)delivery->rcpt, (char *)delivery->sender, NULL };
	pid_t pid = start_local(agents, fd, delivery->format == SPOOL_FORMAT_V2, delivery->msglen,
				out[1], argv, delivery->maildir, delivery->login);
	if (pid < 0) {
		close(fd), close(out[0]), close(out[1]);
		*why = "4.3.0 cannot start tern-local";
		return -1;
	}
	close(fd);
	close(out[1]);
	fd_nonblock(out[0]);
	slot->pid = pid;
	slot->cookie = cookie;
	slot->out_fd = out[0];
	agents->busy++;
	return 0;
}

size_t local_agents_pollfds(struct local_agents *agents, struct pollfd *fds, size_t max)
{
	(void)agents, (void)fds, (void)max;
	return 0;	/* a child's end comes as SIGCHLD */
}

int local_agents_timeout_ms(const struct local_agents *agents)
{
	(void)agents;
	return -1;	/* a child runs as long as it runs */
}

/* The outcome of SLOT's tern-local, which ended with STATUS. */
static void finish_delivery(struct local_agents *agents, struct slot *slot, int status,
			    local_done_fn *done, void *ctx)
{
	char output[OUTPUT_MAX + 1];
	ssize_t n = read(slot->out_fd, output, OUTPUT_MAX);

	close(slot->out_fd);
	output[n > 0 ? n : 0] = '\0';
	output[strcspn(output, "\r\n")] = '\0';
	int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	enum local_outcome outcome = LOCAL_TEMPORARY;
	const char *text = output;

	if (code == 0) {
		outcome = LOCAL_DELIVERED;
		text = "";
	} else if (code == 100) {
		outcome = LOCAL_PERMANENT;
		if (output[0] == '\0')
			text = "5.0.0 permanent failure in tern-local";
	} else if (output[0] == '\0') {
		snprintf(output, sizeof output, "4.3.0 tern-local ended with status %d", code);
	}
	void *cookie = slot->cookie;
	slot->pid = 0;
	slot->cookie = NULL;
	agents->busy--;
	done(ctx, cookie, outcome, text);
}

/* Each slot's child by its pid: a report's tern-queue is queue_check's. */
void local_agents_collect(struct local_agents *agents, local_done_fn *done, void *ctx)
{
	int status;

	for (size_t i = 0; i < agents->nslots; i++) {
		pid_t pid = agents->slots[i].pid;
		if (pid > 0 && waitpid(pid, &status, WNOHANG) == pid)
			finish_delivery(agents, &agents->slots[i], status, done, ctx);
	}
}

void local_agents_stop(struct local_agents *agents)
{
	if (agents == NULL)
		return;
	for (size_t i = 0; i < agents->nslots; i++)
		if (agents->slots[i].pid != 0)
			close(agents->slots[i].out_fd);
	free(agents->slots);
	free(agents);
}
