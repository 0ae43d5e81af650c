#include "commit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "queue_protocol.h"
#include "spool.h"

/* A queue-directory operation's failure: a full disk is 53, as for any
 * write; anything else is the directory's (62). */
static int dir_error(int error)
{
	return error == ENOSPC || error == EDQUOT ? QQ_WRITE_ERROR : QQ_QUEUE_DIR;
}

static int failed(struct commit *c, int code, const char *what, int error)
{
	c->outcome = code;
	c->what = what;
	c->error = error;
	return code;
}

int commit_begin(struct commit *c, const char *spool, const char *id)
{
	memset(c, 0, sizeof *c);
	c->fd = -1;
	c->spool = spool;
	str_copy(c->id, sizeof c->id, id);
	if (spool_path(c->tmp_path, sizeof c->tmp_path, spool, SPOOL_TMP, id) < 0) {
		c->tmp_path[0] = '\0';
		return failed(c, QQ_QUEUE_DIR, "path", errno);
	}
	c->fd = open(c->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (c->fd < 0) {
		int error = errno;
		c->tmp_path[0] = '\0';
		return failed(c, error == EEXIST ? QQ_REFUSED_TEMP : dir_error(error),
			      "create tmp file", error);
	}
	return QQ_QUEUED;
}

int commit_add_bytes(struct commit *c, const void *buf, size_t len)
{
	if (write_all(c->fd, buf, len) < 0)
		return failed(c, QQ_WRITE_ERROR, "write message", errno);
	c->size += len;
	return QQ_QUEUED;
}

ssize_t commit_add_from_pipe(struct commit *c, int pipe_fd, size_t len)
{
	ssize_t n;

	do
		n = splice(pipe_fd, NULL, c->fd, NULL, len, SPLICE_F_NONBLOCK);
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno != EAGAIN)
		failed(c, QQ_WRITE_ERROR, "write message", errno);
	else if (n > 0)
		c->size += (uint64_t)n;
	return n;
}

int commit_add_envelope(struct commit *c, time_t queued, const char *sender,
			char *const *rcpts, size_t nrcpts)
{
	if (spool_write_envelope(c->fd, c->size, queued, sender, rcpts, nrcpts) == 0)
		return QQ_QUEUED;
	int error = errno;
	if (error == EMSGSIZE)
		return failed(c, QQ_REFUSED_PERM, "envelope too large", error);
	return failed(c, error == ENOMEM ? QQ_NO_MEMORY : QQ_WRITE_ERROR, "write envelope",
		      error);
}

/* Asked as the effective user (the spool's owner when set-uid), not the
 * real one as access(2) would; anything but "no such file" counts as
 * taken, since it cannot be shown free. */
static bool id_taken(const char *spool, const char *id)
{
	static const char *const dirs[] = { SPOOL_INCOMING, SPOOL_QUEUE, SPOOL_STATE };
	char path[PATH_MAX];
	struct stat st;

	for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
		if (spool_path(path, sizeof path, spool, dirs[i], id) < 0)
			return true;
		if (lstat(path, &st) == 0 || errno != ENOENT)
			return true;
	}
	return false;
}

/* The file durable and closed, then its name in incoming/ (not yet
 * durable itself).  QQ_QUEUED, or the code that refuses it. */
static int link_one(struct commit *c, char *incoming, size_t size)
{
	int r = fsync(c->fd);
	int error = errno;

	if (close(c->fd) < 0 && r == 0)
		r = -1, error = errno;
	c->fd = -1;
	if (r < 0)
		return failed(c, QQ_WRITE_ERROR, "fsync", error);
	if (spool_path(incoming, size, c->spool, SPOOL_INCOMING, c->id) < 0)
		return failed(c, QQ_QUEUE_DIR, "path", errno);
	if (id_taken(c->spool, c->id))
		return failed(c, QQ_REFUSED_TEMP, "queue id taken", EEXIST);
	if (link(c->tmp_path, incoming) < 0) {
		error = errno;
		return failed(c, error == EEXIST ? QQ_REFUSED_TEMP : dir_error(error), "link",
			      error);
	}
	return QQ_QUEUED;
}

/* incoming/'s fsync failed: no link of this batch is known durable. */
static void take_back(struct commit *const *batch, size_t n, char (*incoming)[PATH_MAX],
		      int error)
{
	for (size_t i = 0; i < n; i++) {
		if (batch[i]->outcome != QQ_QUEUED)
			continue;
		unlink(incoming[i]);
		failed(batch[i], QQ_WRITE_ERROR, "fsync incoming", error);
	}
}

void commit_batch(struct commit *const *batch, size_t n)
{
	char dir[PATH_MAX];
	char (*incoming)[PATH_MAX] = calloc(n ? n : 1, PATH_MAX);
	size_t linked = 0;

	for (size_t i = 0; i < n; i++) {
		if (incoming == NULL)
			failed(batch[i], QQ_NO_MEMORY, "malloc", ENOMEM);
		else if (batch[i]->outcome == QQ_QUEUED &&
			 link_one(batch[i], incoming[i], PATH_MAX) == QQ_QUEUED)
			linked++;
	}
	if (linked > 0) {
		if (spool_path(dir, sizeof dir, batch[0]->spool, SPOOL_INCOMING, NULL) < 0)
			take_back(batch, n, incoming, errno);
		else if (fsync_dir(dir) < 0)
			take_back(batch, n, incoming, errno);
	}
	for (size_t i = 0; i < n; i++)
		commit_abort(batch[i]);	/* the tmp/ name, linked or not */
	free(incoming);
}

void commit_abort(struct commit *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	if (c->tmp_path[0] != '\0')
		unlink(c->tmp_path);
	c->tmp_path[0] = '\0';
}
