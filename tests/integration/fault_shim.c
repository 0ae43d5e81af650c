/* An LD_PRELOAD shim that makes one system call fail, for the tests.
 *
 *   TERN_FAULT=fsync|fdatasync|link|rename|write|pread
 *                                        the call to fail (EIO; ENOSPC for write)
 *   TERN_FAULT_PROGRAM=tern-queue        only in this program (default: any)
 *   TERN_FAULT_PATH=/spool/queue         fsync, fdatasync, pread and write: only on a file or
 *                                        folder whose path contains this
 *   TERN_FAULT_TIMES=N                   only the first N calls that qualify
 *   TERN_FAULT_ERRNO=N                   link: fail with errno N instead of EIO
 *
 * Without TERN_FAULT_PATH, write fails only for files under a spool's tmp/,
 * so logging and pipes keep working. */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static int active(const char *call)
{
	const char *fault = getenv("TERN_FAULT");
	const char *only = getenv("TERN_FAULT_PROGRAM");

	if (fault == NULL || strcmp(fault, call) != 0)
		return 0;
	return only == NULL || strcmp(only, program_invocation_short_name) == 0;
}

/* Does FD name a file whose path contains TERN_FAULT_PATH (or, if unset,
 * DEFAULT_PATH; NULL: any fd)? */
static int fd_qualifies(int fd, const char *default_path)
{
	const char *want = getenv("TERN_FAULT_PATH");
	char link_path[64], target[512];

	if (want == NULL)
		want = default_path;
	if (want == NULL)
		return 1;
	snprintf(link_path, sizeof link_path, "/proc/self/fd/%d", fd);
	ssize_t len = readlink(link_path, target, sizeof target - 1);
	if (len <= 0)
		return 0;
	target[len] = '\0';
	return strstr(target, want) != NULL;
}

/* Counts a fault about to be injected; 0 once TERN_FAULT_TIMES are used. */
/* Atomic: the queue service runs a batch's syncs from several threads. */
static int take_a_turn(void)
{
	static long used;
	const char *times = getenv("TERN_FAULT_TIMES");

	if (times == NULL)
		return 1;
	return __atomic_fetch_add(&used, 1, __ATOMIC_SEQ_CST) < atol(times);
}

int fsync(int fd)
{
	static int (*real)(int);
	if (active("fsync") && fd_qualifies(fd, NULL) && take_a_turn()) {
		errno = EIO;
		return -1;
	}
	if (real == NULL)
		real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
	return real(fd);
}

int fdatasync(int fd)
{
	static int (*real)(int);
	if (active("fdatasync") && fd_qualifies(fd, NULL) && take_a_turn()) {
		errno = EIO;
		return -1;
	}
	if (real == NULL)
		real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
	return real(fd);
}

int link(const char *from, const char *to)
{
	static int (*real)(const char *, const char *);
	if (active("link") && take_a_turn()) {
		const char *number = getenv("TERN_FAULT_ERRNO");
		errno = number != NULL ? atoi(number) : EIO;
		return -1;
	}
	if (real == NULL)
		real = (int (*)(const char *, const char *))dlsym(RTLD_NEXT, "link");
	return real(from, to);
}

int rename(const char *from, const char *to)
{
	static int (*real)(const char *, const char *);
	if (active("rename") && take_a_turn()) {
		errno = EIO;
		return -1;
	}
	if (real == NULL)
		real = (int (*)(const char *, const char *))dlsym(RTLD_NEXT, "rename");
	return real(from, to);
}

ssize_t write(int fd, const void *buf, size_t n)
{
	static ssize_t (*real)(int, const void *, size_t);
	if (real == NULL)
		real = (ssize_t (*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
	if (fd > 2 && active("write") && fd_qualifies(fd, "/spool/tmp/") && take_a_turn()) {
		errno = ENOSPC;
		return -1;
	}
	return real(fd, buf, n);
}

ssize_t pread(int fd, void *buf, size_t n, off_t offset)
{
	static ssize_t (*real)(int, void *, size_t, off_t);
	if (real == NULL)
		real = (ssize_t (*)(int, void *, size_t, off_t))dlsym(RTLD_NEXT, "pread");
	if (active("pread") && fd_qualifies(fd, NULL) && take_a_turn()) {
		errno = EIO;
		return -1;
	}
	return real(fd, buf, n, offset);
}
