#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#ifndef PREFIX
#define PREFIX "/usr/local"
#endif
#ifndef LIBEXECDIR
#define LIBEXECDIR PREFIX "/libexec/tern"
#endif

int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

ssize_t read_full(int fd, void *buf, size_t len)
{
	char *p = buf;
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, p + got, len - got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

int fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int r = fsync(fd);
	int saved = errno;
	close(fd);
	errno = saved;
	return r;
}

int path_join(char *out, size_t outsize, const char *dir, const char *name)
{
	int n;

	if (name[0] == '/' || dir == NULL || dir[0] == '\0')
		n = snprintf(out, outsize, "%s", name);
	else
		n = snprintf(out, outsize, "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= outsize) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

bool str_copy(char *out, size_t outsize, const char *in)
{
	size_t len = strlen(in);

	if (len >= outsize)
		return false;
	memcpy(out, in, len + 1);
	return true;
}

void str_lower(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

char *str_trim(char *s)
{
	while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
		s++;
	size_t len = strlen(s);
	while (len > 0 && strchr(" \t\r\n", s[len - 1]) != NULL)
		s[--len] = '\0';
	return s;
}

bool login_name_valid(const char *name)
{
	if (name[0] == '\0' || name[0] == '.' || name[0] == '-' || strlen(name) > 32)
		return false;
	for (const char *p = name; *p; p++)
		if (!islower((unsigned char)*p) && !isdigit((unsigned char)*p) &&
		    *p != '.' && *p != '_' && *p != '-')
			return false;
	return true;
}

static const char base62[] =
	"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static size_t put_base62(char *out, uint64_t value, size_t width)
{
	char tmp[16];
	size_t n = 0;

	do {
		tmp[n++] = base62[value % 62];
		value /= 62;
	} while (value > 0 && n < sizeof tmp);
	while (n < width && n < sizeof tmp)
		tmp[n++] = '0';
	for (size_t i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	return n;
}

/* Seconds, microseconds and pid: sorted by time, unique on one machine
 * because one process never makes two ids in the same microsecond (each id
 * costs at least a fork). */
void qid_make(char out[QID_MAX])
{
	struct timeval tv;
	size_t n = 0;

	gettimeofday(&tv, NULL);
	n += put_base62(out + n, (uint64_t)tv.tv_sec, 6);
	n += put_base62(out + n, (uint64_t)tv.tv_usec, 4);
	n += put_base62(out + n, (uint64_t)getpid(), 4);
	out[n] = '\0';
}

void rfc5322_date(time_t t, char *out, size_t size)
{
	struct tm tm;

	localtime_r(&t, &tm);
	strftime(out, size, "%a, %d %b %Y %H:%M:%S %z", &tm);
}

bool qid_valid(const char *id)
{
	size_t len = strlen(id);

	if (len == 0 || len >= QID_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)id[i]) || (unsigned char)id[i] > 127)
			return false;
	return true;
}

static bool is_executable(const char *path)
{
	return access(path, X_OK) == 0;
}

int find_program(const char *name, char *out, size_t outsize)
{
	char self[PATH_MAX];
	ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);

	if (len > 0) {
		self[len] = '\0';
		char *slash = strrchr(self, '/');
		if (slash != NULL) {
			*slash = '\0';
			static const char *const relative[] = {
				"%s/%s", "%s/../libexec/tern/%s", "%s/../sbin/%s",
			};
			for (size_t i = 0; i < sizeof relative / sizeof relative[0]; i++) {
				int n = snprintf(out, outsize, relative[i], self, name);
				if (n > 0 && (size_t)n < outsize && is_executable(out))
					return 0;
			}
		}
	}
	int n = snprintf(out, outsize, "%s/%s", LIBEXECDIR, name);
	if (n > 0 && (size_t)n < outsize && is_executable(out))
		return 0;
	n = snprintf(out, outsize, "%s/sbin/%s", PREFIX, name);
	if (n > 0 && (size_t)n < outsize && is_executable(out))
		return 0;
	return -1;
}

int fd_nonblock(int fd)
{
	int flags = fcntl(fd, F_GETFL);
	return flags < 0 ? -1 : fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

/* Default dispositions and an empty mask: tern's programs ignore SIGPIPE
 * (and block signals at times), and an ignored signal or a mask outlives
 * exec.  glibc cannot name its own two internal signals here, and no
 * program can use those anyway. */
static int default_signals(posix_spawnattr_t *attr, short extra_flags)
{
	sigset_t all, none;

	sigfillset(&all);
	sigdelset(&all, SIGKILL);
	sigdelset(&all, SIGSTOP);
	sigemptyset(&none);
	int r = posix_spawnattr_setsigdefault(attr, &all);
	if (r == 0)
		r = posix_spawnattr_setsigmask(attr, &none);
	if (r == 0)
		r = posix_spawnattr_setflags(attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK |
						   extra_flags);
	return r;
}

static int spawn(pid_t *pid, const char *program, char *const argv[], char *const envp[],
		 const int *fds, size_t n, bool own_group)
{
	extern char **environ;
	posix_spawn_file_actions_t actions;
	posix_spawnattr_t attr;

	int r = posix_spawnattr_init(&attr);
	if (r != 0)
		return r;
	r = default_signals(&attr, own_group ? POSIX_SPAWN_SETPGROUP : 0);
	if (r == 0 && own_group)
		r = posix_spawnattr_setpgroup(&attr, 0);
	if (r == 0)
		r = posix_spawn_file_actions_init(&actions);
	if (r != 0) {
		posix_spawnattr_destroy(&attr);
		return r;
	}
	for (size_t i = 0; r == 0 && i < n; i++)
		if (fds[i] >= 0)
			r = posix_spawn_file_actions_adddup2(&actions, fds[i], (int)i);
	if (r == 0)
		r = posix_spawn(pid, program, &actions, &attr, argv, envp ? envp : environ);
	posix_spawn_file_actions_destroy(&actions);
	posix_spawnattr_destroy(&attr);
	return r;
}

int spawn_with_fds(pid_t *pid, const char *program, char *const argv[], char *const envp[],
		   const int *fds, size_t n)
{
	return spawn(pid, program, argv, envp, fds, n, false);
}

int spawn_group_with_fds(pid_t *pid, const char *program, char *const argv[],
			 char *const envp[], const int *fds, size_t n)
{
	return spawn(pid, program, argv, envp, fds, n, true);
}

void signals_default(void)
{
	sigset_t none;

	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			signal(sig, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}
