#include "cleanup.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "deliver.h"
#include "log.h"
#include "util.h"

#define CLEANUP_INTERVAL 3600

static void remove_old_files(const char *folder, time_t now, time_t max_age,
			     bool (*wanted)(const char *name, void *arg), void *arg)
{
	char path[PATH_MAX];
	struct stat st;
	DIR *dir = opendir(folder);

	if (dir == NULL)
		return;
	struct dirent *e;
	while ((e = readdir(dir)) != NULL) {
		if (e->d_name[0] == '.' || path_join(path, sizeof path, folder, e->d_name) < 0)
			continue;
		if (wanted != NULL && !wanted(e->d_name, arg))
			continue;
		if (lstat(path, &st) == 0 && S_ISREG(st.st_mode) && now - st.st_mtime >= max_age) {
			unlink(path);
			log_event("cleanup", "path=%s", path);
		}
	}
	closedir(dir);
}

static bool orphan_state(const char *name, void *arg)
{
	struct deliver *d = arg;
	char path[PATH_MAX];

	if (strstr(name, ".tmp") != NULL)
		return true;
	if (find_message(&d->store, name) != NULL)
		return false;
	static const char *const folders[] = { SPOOL_QUEUE, SPOOL_INCOMING };
	for (size_t i = 0; i < 2; i++) {
		if (spool_path(path, sizeof path, d->conf.spool, folders[i], name) < 0)
			return false;
		if (access(path, F_OK) == 0 || errno != ENOENT)
			return false;
	}
	return true;
}

/* mess/ID whose envelope file is nowhere (neither being written in tmp/
 * nor committed): what a crash of tern-queue before its link, or of
 * tern-deliver between removing queue/ID and mess/ID, leaves. */
static bool orphan_message(const char *name, void *arg)
{
	struct deliver *d = arg;
	char path[PATH_MAX];

	if (find_message(&d->store, name) != NULL)
		return false;
	static const char *const folders[] = { SPOOL_QUEUE, SPOOL_INCOMING, SPOOL_TMP };
	for (size_t i = 0; i < sizeof folders / sizeof folders[0]; i++) {
		if (spool_path(path, sizeof path, d->conf.spool, folders[i], name) < 0)
			return false;
		if (access(path, F_OK) == 0 || errno != ENOENT)
			return false;
	}
	return true;
}

/* Is FD a whole TERN1 message file (one that may start with "time ",
 * its message empty)? */
static bool whole_tern1(int fd)
{
	struct envelope env;

	if (spool_read_envelope(fd, &env) < 0)
		return false;
	bool tern1 = env.format == SPOOL_FORMAT_V1;
	spool_free_envelope(&env);
	return tern1;
}

/* An envelope file in queue/ that did not load and has no mess/ID: a
 * torn TERN2 envelope (what a crash of a writer that linked before its
 * fsync can leave on a file system without a journal), which is empty or
 * starts with its block ("time ") or with the zeros of unwritten blocks.
 * Anything else may be a TERN1 file (it starts with its message), which
 * was fsync'd before its link, so a crash did not tear it: it is left for
 * the administrator. */
static bool orphan_envelope(const char *name, void *arg)
{
	struct deliver *d = arg;
	char path[PATH_MAX], start[5];
	struct stat st;

	if (!qid_valid(name) || find_message(&d->store, name) != NULL ||
	    spool_path(path, sizeof path, d->conf.spool, SPOOL_MESS, name) < 0 ||
	    lstat(path, &st) == 0 || errno != ENOENT ||
	    spool_path(path, sizeof path, d->conf.spool, SPOOL_QUEUE, name) < 0)
		return false;
	int fd = spool_open(path);
	if (fd < 0)
		return false;
	if (whole_tern1(fd)) {
		close(fd);
		return false;	/* a message only on disk (the window's backlog) */
	}
	ssize_t n = pread(fd, start, sizeof start, 0);
	close(fd);
	return n == 0 || (n > 0 && start[0] == '\0') ||
	       (n == (ssize_t)sizeof start && memcmp(start, "time ", 5) == 0);
}

static bool control_leftover(const char *name, void *arg)
{
	(void)arg;
	return strncmp(name, "tmp.", 4) == 0 || strcmp(name, "counters.tmp") == 0;
}

void cleanup(struct deliver *d, time_t now)
{
	char path[PATH_MAX];

	if (spool_path(path, sizeof path, d->conf.spool, SPOOL_TMP, NULL) == 0)
		remove_old_files(path, now, SPOOL_TMP_MAX_AGE, NULL, NULL);
	if (spool_path(path, sizeof path, d->conf.spool, SPOOL_MESS, NULL) == 0)
		remove_old_files(path, now, SPOOL_TMP_MAX_AGE, orphan_message, d);
	if (spool_path(path, sizeof path, d->conf.spool, SPOOL_QUEUE, NULL) == 0)
		remove_old_files(path, now, SPOOL_TMP_MAX_AGE, orphan_envelope, d);
	if (spool_path(path, sizeof path, d->conf.spool, SPOOL_STATE, NULL) == 0)
		remove_old_files(path, now, 0, orphan_state, d);
	if (spool_path(path, sizeof path, d->conf.spool, SPOOL_CONTROL, NULL) == 0)
		remove_old_files(path, now, 3600, control_leftover, NULL);
	d->next_cleanup = now + CLEANUP_INTERVAL;
}
