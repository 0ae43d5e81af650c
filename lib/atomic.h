/* atomic: replacing a file whole, durably.
 *
 * Promises: the new contents go into a temporary file beside the target
 * (same folder, so same file system), which is written, fsync'd and closed,
 * then renamed over the target, and then the folder itself is fsync'd.  A
 * reader sees the whole old file or the whole new one, never a mix; once
 * atomic_commit() or atomic_replace() returns 0 the new file survives a
 * crash, on a file system without a journal too.  On any failure the
 * temporary file is removed and the target is left as it was.
 *
 * The temporary name is the caller's choice (a name its readers and its
 * cleanup recognise); NULL means the target's name plus ".tmp". */
#ifndef TERN_ATOMIC_H
#define TERN_ATOMIC_H

#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

struct atomic_file {
	char path[PATH_MAX];	/* the target */
	char tmp[PATH_MAX];	/* being written */
	int fd;			/* open read-write on tmp; -1 when done */
};

/* Creates the temporary file anew (removing whatever had its name), mode
 * MODE exactly. */
int atomic_begin(struct atomic_file *f, const char *path, const char *tmp, mode_t mode);
/* fsync, close, rename over the target, fsync its folder. */
int atomic_commit(struct atomic_file *f);
/* Closes and removes the temporary file; the target stays as it was. */
void atomic_abort(struct atomic_file *f);

/* All three in one: PATH becomes the LEN octets at DATA. */
int atomic_replace(const char *path, const char *tmp, const void *data, size_t len,
		   mode_t mode);

#endif
