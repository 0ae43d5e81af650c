#include "spawner.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "local_protocol.h"
#include "log.h"
#include "packet.h"
#include "util.h"

#define SPAWNER_REQUEST_MAX (PATH_MAX + 64)
#define SPAWNER_REPLY_MAX 512
#define SPAWNER_CHILDREN_MAX 4096	/* workers alive at once */
#define SPAWNER_FD 3			/* the spawner's socket, in the spawner */
#define LOGIN_MAX 64

/* Requests, fields ended by NUL: "local" SEQ "login"|"maildir" VALUE, and
 * "kill" PID.  Replies: "ok SEQ PID" with the socket, "no SEQ TEXT". */
#define REQUEST_LOCAL "local"
#define REQUEST_KILL "kill"
#define REQUEST_FIELDS_MAX 4

struct identity {
	uid_t uid;
	gid_t gid;
	char login[LOGIN_MAX + 1];
};

struct children {
	pid_t pids[SPAWNER_CHILDREN_MAX];
	size_t n;
};

/* A worker's environment: empty, but for a sanitizer build's own
 * settings (as the tests give them), so that its reports stay as asked. */
#ifdef TERN_SANITIZE
static const char *const sanitizer_settings[] = { "ASAN_OPTIONS", "UBSAN_OPTIONS",
						  "LSAN_OPTIONS" };
#define WORKER_ENV_MAX (sizeof sanitizer_settings / sizeof sanitizer_settings[0])
#else
#define WORKER_ENV_MAX 0
#endif

struct spawner_state {
	int sock;
	int devnull;
	int child_signals;	/* signalfd for SIGCHLD */
	const char *program;
	bool changes_identity;
	char *worker_env[WORKER_ENV_MAX + 1];	/* NULL-ended */
	struct children children;
};

/* ---- in the spawner: identities ---- */

/* The account a passwd entry names, if it may take mail: never root. */
static int take_account(const struct passwd *pw, struct identity *id)
{
	if (pw == NULL || pw->pw_uid == 0 || !str_copy(id->login, sizeof id->login, pw->pw_name))
		return -1;
	id->uid = pw->pw_uid;
	id->gid = pw->pw_gid;
	return 0;
}

/* RCPT's rules for a system account (recipient.c): a plain login, not
 * root, that owns its home folder. */
static int identity_for_login(const char *login, struct identity *id)
{
	struct stat st;

	if (!login_name_valid(login))
		return -1;
	struct passwd *pw = getpwnam(login);
	if (pw == NULL || pw->pw_dir == NULL || pw->pw_dir[0] != '/' ||
	    stat(pw->pw_dir, &st) < 0 || st.st_uid != pw->pw_uid)
		return -1;
	return take_account(pw, id);
}

/* The owner of MAILDIR as lstat reports it.  A symlink there answers for
 * itself, unless root made it: a user's link must not borrow another
 * account's identity. */
static int identity_for_maildir(const char *maildir, struct identity *id)
{
	char path[PATH_MAX];
	struct stat st;

	if (maildir[0] != '/' || !str_copy(path, sizeof path, maildir))
		return -1;
	for (size_t n = strlen(path); n > 1 && path[n - 1] == '/'; n--)
		path[n - 1] = '\0';	/* "Maildir/" would make lstat follow a link */
	if (lstat(path, &st) < 0)
		return -1;
	if (S_ISLNK(st.st_mode) && st.st_uid == 0 && stat(path, &st) < 0)
		return -1;
	return take_account(getpwuid(st.st_uid), id);
}

/* In the worker's child: the identity, all of it, checked. */
static int become(const struct identity *id)
{
	uid_t ruid, euid, suid;
	gid_t rgid, egid, sgid;

	if (initgroups(id->login, id->gid) < 0 || setgid(id->gid) < 0 || setuid(id->uid) < 0)
		return -1;
	if (getresuid(&ruid, &euid, &suid) < 0 || getresgid(&rgid, &egid, &sgid) < 0)
		return -1;
	if (ruid != id->uid || euid != id->uid || suid != id->uid || ruid == 0 ||
	    rgid != id->gid || egid != id->gid || sgid != id->gid)
		return -1;
	return 0;
}

/* ---- in the spawner: workers ---- */

static void exec_worker(const struct spawner_state *st, int worker_end, const struct identity *id)
{
	char *argv[] = { "tern-local", "--worker", NULL };

	signals_default();
	if (dup2(st->devnull, 0) < 0 || dup2(st->devnull, 1) < 0 ||
	    dup2(worker_end, LOCAL_WORKER_FD) < 0 ||
	    close_range(LOCAL_WORKER_FD + 1, ~0U, 0) < 0) {
		dprintf(2, "tern-deliver: spawner: cannot set up a worker's fds: %s\n",
			strerror(errno));
		_exit(111);
	}
	if (id != NULL && become(id) < 0) {
		dprintf(2, "tern-deliver: spawner: cannot take on uid %lu (never root)\n",
			(unsigned long)id->uid);
		_exit(111);
	}
	execve(st->program, argv, st->worker_env);
	dprintf(2, "tern-deliver: spawner: cannot run %s: %s\n", st->program, strerror(errno));
	_exit(111);
}

static void reply(struct spawner_state *st, const char *text, int fd)
{
	if (packet_send(st->sock, text, strlen(text), fd) < 0)
		log_event("error", "what=spawner_reply error=%m");
}

static void refuse(struct spawner_state *st, const char *seq, const char *why)
{
	char text[SPAWNER_REPLY_MAX];

	snprintf(text, sizeof text, "no %s %s", seq, why);
	reply(st, text, -1);
}

static void start_worker(struct spawner_state *st, const char *seq, const char *kind,
			 const char *value)
{
	struct identity id;
	char text[SPAWNER_REPLY_MAX];
	int pair[2];

	if (strcmp(kind, "login") != 0 && strcmp(kind, "maildir") != 0) {
		refuse(st, seq, "4.3.0 no such kind of worker");
		return;
	}
	bool by_login = strcmp(kind, "login") == 0;
	if (st->changes_identity &&
	    (by_login ? identity_for_login(value, &id) : identity_for_maildir(value, &id)) < 0) {
		refuse(st, seq, by_login
		       ? "4.3.0 cannot take on the account's identity (never root)"
		       : "4.3.0 cannot take on the Maildir owner's identity (never root)");
		return;
	}
	if (st->children.n == SPAWNER_CHILDREN_MAX) {
		refuse(st, seq, "4.3.0 too many workers");
		return;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0) {
		refuse(st, seq, "4.3.0 cannot make a socket for a worker");
		return;
	}
	pid_t pid = fork();
	if (pid == 0)
		exec_worker(st, pair[1], st->changes_identity ? &id : NULL);
	close(pair[1]);
	if (pid < 0) {
		close(pair[0]);
		refuse(st, seq, "4.3.0 cannot fork a worker");
		return;
	}
	st->children.pids[st->children.n++] = pid;
	snprintf(text, sizeof text, "ok %s %ld", seq, (long)pid);
	reply(st, text, pair[0]);
	close(pair[0]);
}

static bool is_child(const struct children *c, pid_t pid)
{
	for (size_t i = 0; i < c->n; i++)
		if (c->pids[i] == pid)
			return true;
	return false;
}

static void forget_child(struct children *c, pid_t pid)
{
	for (size_t i = 0; i < c->n; i++)
		if (c->pids[i] == pid) {
			c->pids[i] = c->pids[--c->n];
			return;
		}
}

static void kill_worker(struct spawner_state *st, const char *text)
{
	char *end;
	long pid = strtol(text, &end, 10);

	if (*end != '\0' || pid <= 0 || !is_child(&st->children, (pid_t)pid)) {
		log_event("error", "what=spawner_kill pid=%s error=\"not a worker of this spawner\"",
			  text);
		return;
	}
	kill((pid_t)pid, SIGKILL);
}

static void reap(struct spawner_state *st)
{
	struct signalfd_siginfo info;
	int status;
	pid_t pid;

	while (read(st->child_signals, &info, sizeof info) == sizeof info)
		;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		forget_child(&st->children, pid);
}

/* One request.  False when the socket is done with (end of file, or an
 * error: tern-deliver is gone). */
static bool handle_request(struct spawner_state *st)
{
	char buf[SPAWNER_REQUEST_MAX];
	const char *fields[REQUEST_FIELDS_MAX];
	size_t count = 0, start = 0;
	int fd;

	ssize_t n = packet_receive(st->sock, buf, sizeof buf, &fd, 0);
	if (n <= 0)
		return n < 0 && errno == EPROTO;	/* refused: the next may be fine */
	if (fd >= 0)
		close(fd);	/* nothing tern-deliver sends is meant to carry one */
	if (buf[n - 1] != '\0') {
		log_event("error", "what=spawner_request error=\"malformed\"");
		return true;
	}
	for (ssize_t i = 0; i < n && count < REQUEST_FIELDS_MAX; i++)
		if (buf[i] == '\0') {
			fields[count++] = buf + start;
			start = (size_t)i + 1;
		}
	if (count == 4 && start == (size_t)n && strcmp(fields[0], REQUEST_LOCAL) == 0)
		start_worker(st, fields[1], fields[2], fields[3]);
	else if (count == 2 && start == (size_t)n && strcmp(fields[0], REQUEST_KILL) == 0)
		kill_worker(st, fields[1]);
	else
		log_event("error", "what=spawner_request error=\"malformed\"");
	return true;
}

static int child_signal_fd(void)
{
	sigset_t chld;

	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &chld, NULL) < 0)
		return -1;
	return signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
}

static void keep_sanitizer_settings(struct spawner_state *st)
{
	size_t n = 0;

#ifdef TERN_SANITIZE
	extern char **environ;
	for (size_t i = 0; i < WORKER_ENV_MAX; i++) {
		size_t len = strlen(sanitizer_settings[i]);
		for (char **e = environ; *e != NULL; e++)
			if (strncmp(*e, sanitizer_settings[i], len) == 0 && (*e)[len] == '=') {
				st->worker_env[n++] = *e;
				break;
			}
	}
#endif
	st->worker_env[n] = NULL;
}

static void spawner_main(int sock, const char *program, bool changes_identity)
{
	struct spawner_state *st = calloc(1, sizeof *st);

	signals_default();
	signal(SIGPIPE, SIG_IGN);
	if (st == NULL || dup2(sock, SPAWNER_FD) < 0 ||
	    close_range(SPAWNER_FD + 1, ~0U, 0) < 0)
		_exit(111);
	st->sock = SPAWNER_FD;
	st->program = program;
	st->changes_identity = changes_identity;
	keep_sanitizer_settings(st);
	st->devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	st->child_signals = child_signal_fd();
	if (st->devnull < 0 || st->child_signals < 0) {
		log_event("error", "what=spawner error=%m");
		_exit(111);
	}
	for (;;) {
		struct pollfd fds[2] = { { .fd = st->sock, .events = POLLIN },
					 { .fd = st->child_signals, .events = POLLIN } };
		if (poll(fds, 2, -1) < 0 && errno != EINTR)
			_exit(111);
		if (fds[1].revents & POLLIN)
			reap(st);
		if ((fds[0].revents & (POLLIN | POLLHUP | POLLERR)) && !handle_request(st))
			_exit(0);
	}
}

/* ---- in tern-deliver ---- */

int spawner_start(struct spawner *s, const char *program, bool changes_identity)
{
	int pair[2];

	s->sock = -1;
	s->next_seq = 1;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		close(pair[0]);
		spawner_main(pair[1], program, changes_identity);
	}
	int saved = errno;
	close(pair[1]);
	if (pid < 0) {
		close(pair[0]);
		errno = saved;
		return -1;
	}
	s->sock = pair[0];
	s->pid = pid;
	return 0;
}

static int send_fields(struct spawner *s, const char *const *fields, size_t count)
{
	char buf[SPAWNER_REQUEST_MAX];
	size_t used = 0;

	for (size_t i = 0; i < count; i++) {
		size_t n = strlen(fields[i]) + 1;
		if (n > sizeof buf - used) {
			errno = ENAMETOOLONG;
			return -1;
		}
		memcpy(buf + used, fields[i], n);
		used += n;
	}
	return packet_send(s->sock, buf, used, -1);
}

/* The reply to request SEQ, skipping (and closing) late ones. */
static int await_reply(struct spawner *s, uint64_t seq, int *sock, pid_t *pid, char *text,
		       size_t size)
{
	struct timespec deadline;
	char buf[SPAWNER_REPLY_MAX + 1], word[4];
	int fd;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += SPAWNER_REPLY_SECONDS;
	for (;;) {
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		long left = (deadline.tv_sec - now.tv_sec) * 1000 +
			    (deadline.tv_nsec - now.tv_nsec) / 1000000;
		struct pollfd pfd = { .fd = s->sock, .events = POLLIN };
		int ready = left > 0 ? poll(&pfd, 1, (int)left) : 0;
		if (ready < 0 && errno == EINTR)
			continue;	/* a report's tern-queue ended meanwhile */
		if (ready <= 0) {
			snprintf(text, size, "4.3.0 the spawner did not answer");
			return -1;
		}
		ssize_t n = packet_receive(s->sock, buf, sizeof buf - 1, &fd, 0);
		if (n <= 0) {
			snprintf(text, size, "4.3.0 the spawner is gone");
			return -1;
		}
		buf[n] = '\0';
		uint64_t got;
		int used = 0;
		if (sscanf(buf, "%3s %" SCNu64 " %n", word, &got, &used) < 2 || got != seq) {
			if (fd >= 0)
				close(fd);
			continue;
		}
		long child;
		if (strcmp(word, "ok") == 0 && fd >= 0 && sscanf(buf + used, "%ld", &child) == 1) {
			*sock = fd;
			*pid = (pid_t)child;
			return 0;
		}
		if (fd >= 0)
			close(fd);
		snprintf(text, size, "%s", strcmp(word, "no") == 0 ? buf + used
			 : "4.3.0 the spawner answered nonsense");
		return -1;
	}
}

int spawner_local_worker(struct spawner *s, const char *login, const char *maildir,
			 int *sock, pid_t *pid, char *text, size_t size)
{
	char seq[24];

	if (s->sock < 0) {
		snprintf(text, size, "4.3.0 the spawner is gone");
		return -1;
	}
	uint64_t mine = s->next_seq++;
	snprintf(seq, sizeof seq, "%" PRIu64, mine);
	const char *fields[] = { REQUEST_LOCAL, seq, login ? "login" : "maildir",
				 login ? login : maildir };
	if (send_fields(s, fields, 4) < 0) {
		snprintf(text, size, "4.3.0 cannot ask the spawner: %s", strerror(errno));
		return -1;
	}
	return await_reply(s, mine, sock, pid, text, size);
}

void spawner_kill(struct spawner *s, pid_t pid)
{
	char text[24];

	if (s->sock < 0)
		return;
	snprintf(text, sizeof text, "%ld", (long)pid);
	const char *fields[] = { REQUEST_KILL, text };
	if (send_fields(s, fields, 2) < 0)
		log_event("error", "what=spawner_kill pid=%ld error=%m", (long)pid);
}

void spawner_stop(struct spawner *s)
{
	if (s->sock >= 0)
		close(s->sock);
	s->sock = -1;
}
