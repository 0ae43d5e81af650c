#include "atomic.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

/* The folder PATH is in: "." for a bare name. */
static int parent_of(const char *path, char *out, size_t outsize)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		return str_copy(out, outsize, ".") ? 0 : -1;
	size_t len = slash == path ? 1 : (size_t)(slash - path);
	if (len >= outsize) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(out, path, len);
	out[len] = '\0';
	return 0;
}

int atomic_begin(struct atomic_file *f, const char *path, const char *tmp, mode_t mode)
{
	f->fd = -1;
	f->tmp[0] = '\0';
	if (!str_copy(f->path, sizeof f->path, path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	int n = tmp != NULL ? snprintf(f->tmp, sizeof f->tmp, "%s", tmp)
			    : snprintf(f->tmp, sizeof f->tmp, "%s.tmp", path);
	if (n < 0 || (size_t)n >= sizeof f->tmp) {
		f->tmp[0] = '\0';
		errno = ENAMETOOLONG;
		return -1;
	}
	/* Whatever is there (a crash's leftover, a FIFO, a link to another
	 * file) goes: the temporary file is always a new one. */
	if (unlink(f->tmp) < 0 && errno != ENOENT) {
		f->tmp[0] = '\0';
		return -1;
	}
	f->fd = open(f->tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (f->fd < 0) {
		f->tmp[0] = '\0';
		return -1;
	}
	if (fchmod(f->fd, mode) < 0) {
		atomic_abort(f);
		return -1;
	}
	return 0;
}

void atomic_abort(struct atomic_file *f)
{
	int saved = errno;

	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	if (f->tmp[0] != '\0')
		unlink(f->tmp);
	f->tmp[0] = '\0';
	errno = saved;
}

int atomic_commit(struct atomic_file *f)
{
	char folder[PATH_MAX];

	if (parent_of(f->path, folder, sizeof folder) < 0 || fsync(f->fd) < 0)
		goto failed;
	int r = close(f->fd);
	f->fd = -1;
	if (r < 0 || rename(f->tmp, f->path) < 0)
		goto failed;
	f->tmp[0] = '\0';	/* the target now, whatever happens next */
	return fsync_dir(folder);
failed:
	atomic_abort(f);
	return -1;
}

int atomic_replace(const char *path, const char *tmp, const void *data, size_t len,
		   mode_t mode)
{
	struct atomic_file f;

	if (atomic_begin(&f, path, tmp, mode) < 0)
		return -1;
	if (write_all(f.fd, data, len) < 0) {
		atomic_abort(&f);
		return -1;
	}
	return atomic_commit(&f);
}
