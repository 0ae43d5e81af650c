#include "trigger.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "spool.h"

int trigger_open(const char *spool)
{
	char path[PATH_MAX];

	if (spool_path(path, sizeof path, spool, SPOOL_TRIGGER, NULL) < 0)
		return -1;
	/* O_RDWR: we hold a writer ourselves, so the FIFO never reports EOF. */
	int fd = open(path, O_RDWR | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISFIFO(st.st_mode))) {
		close(fd);	/* a file would wake us for ever */
		fd = -1;
		errno = ENODEV;
		fprintf(stderr, "tern-deliver: %s: not a FIFO\n", path);
	}
	return fd;
}

/* The trigger removed or replaced under a running tern-deliver (by hand,
 * or a restore) would take every poke elsewhere: each scan checks that
 * the FIFO at its name is the one held open, and makes it anew if not. */
void trigger_keep(const char *spool, int *fd)
{
	char path[PATH_MAX];
	struct stat named, held;

	if (*fd < 0 || spool_path(path, sizeof path, spool, SPOOL_TRIGGER, NULL) < 0)
		return;
	if (lstat(path, &named) == 0 && S_ISFIFO(named.st_mode) && fstat(*fd, &held) == 0 &&
	    named.st_dev == held.st_dev && named.st_ino == held.st_ino)
		return;
	if (unlink(path) < 0 && errno != ENOENT) {
		log_event("error", "what=trigger path=%s error=%s", path, strerror(errno));
		return;
	}
	int fresh = spool_create(spool) < 0 ? -1 : trigger_open(spool);
	if (fresh < 0) {
		log_event("error", "what=trigger path=%s error=%s", path, strerror(errno));
		return;	/* the rescans go on meanwhile */
	}
	close(*fd);
	*fd = fresh;
	log_event("trigger_renewed", "path=%s", path);
}

void trigger_drain(int fd)
{
	char buf[512];
	while (read(fd, buf, sizeof buf) > 0)
		;
}
