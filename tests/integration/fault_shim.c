/* An LD_PRELOAD shim that makes one system call fail, for the tests.
 *
 *   TERN_FAULT=fsync|link|rename|write   the call to fail (EIO; ENOSPC for write)
 *   TERN_FAULT_PROGRAM=tern-queue        only in this program (default: any)
 *
 * Only files under a spool's tmp/ or incoming/ are touched for write, so
 * logging and pipes keep working. */
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

int fsync(int fd)
{
	static int (*real)(int);
	if (active("fsync")) {
		errno = EIO;
		return -1;
	}
	if (real == NULL)
		real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
	return real(fd);
}

int link(const char *from, const char *to)
{
	static int (*real)(const char *, const char *);
	if (active("link")) {
		errno = EIO;
		return -1;
	}
	if (real == NULL)
		real = (int (*)(const char *, const char *))dlsym(RTLD_NEXT, "link");
	return real(from, to);
}

int rename(const char *from, const char *to)
{
	static int (*real)(const char *, const char *);
	if (active("rename")) {
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
	if (fd > 2 && active("write")) {
		char link_path[64], target[512];
		snprintf(link_path, sizeof link_path, "/proc/self/fd/%d", fd);
		ssize_t len = readlink(link_path, target, sizeof target - 1);
		if (len > 0) {
			target[len] = '\0';
			if (strstr(target, "/spool/tmp/") != NULL) {
				errno = ENOSPC;
				return -1;
			}
		}
	}
	return real(fd, buf, n);
}
