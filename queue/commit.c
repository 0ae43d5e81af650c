#include "commit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "queue_protocol.h"
#include "spool.h"
#include "syncs.h"

#define CRC_READBACK 16384	/* octets read back at a time for the CRC */

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

/* Creates PATH (DIR/ID) anew for writing: the fd, or -1 with the code
 * that refuses it in C (71 if the name is taken); PATH is "" then. */
static int create(struct commit *c, char *path, size_t size, const char *dir,
		  const char *what)
{
	if (spool_path(path, size, c->spool, dir, c->id) < 0) {
		path[0] = '\0';
		failed(c, QQ_QUEUE_DIR, "path", errno);
		return -1;
	}
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		int error = errno;
		path[0] = '\0';
		failed(c, error == EEXIST ? QQ_REFUSED_TEMP : dir_error(error), what, error);
	}
	return fd;
}

int commit_begin(struct commit *c, const char *spool, const char *id)
{
	memset(c, 0, sizeof *c);
	c->fd = c->env_fd = -1;
	c->spool = spool;
	str_copy(c->id, sizeof c->id, id);
	c->fd = create(c, c->mess_path, sizeof c->mess_path, SPOOL_MESS, "create message file");
	return c->fd < 0 ? c->outcome : QQ_QUEUED;
}

int commit_add_bytes(struct commit *c, const void *buf, size_t len)
{
	if (write_all(c->fd, buf, len) < 0)
		return failed(c, QQ_WRITE_ERROR, "write message", errno);
	c->crc = crc32c_update(c->crc, buf, len);
	c->size += len;
	return QQ_QUEUED;
}

/* The CRC of LEN octets just spliced in at the message's end: splice(2)
 * moves them without passing through here, so they are read back (from
 * the page cache) for it.  0, or -1 with the commit failed (53). */
static int crc_from_file(struct commit *c, size_t len)
{
	char buf[CRC_READBACK];

	while (len > 0) {
		size_t want = len < sizeof buf ? len : sizeof buf;
		ssize_t n = pread(c->fd, buf, want, (off_t)c->size);
		if (n <= 0) {
			failed(c, QQ_WRITE_ERROR, "read back message", n < 0 ? errno : EIO);
			errno = EIO;	/* not EAGAIN: the commit has failed */
			return -1;
		}
		c->crc = crc32c_update(c->crc, buf, (size_t)n);
		c->size += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

ssize_t commit_add_from_pipe(struct commit *c, int pipe_fd, size_t len)
{
	ssize_t n;

	do
		n = splice(pipe_fd, NULL, c->fd, NULL, len, SPLICE_F_NONBLOCK);
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno != EAGAIN)
		failed(c, QQ_WRITE_ERROR, "write message", errno);
	else if (n > 0 && crc_from_file(c, (size_t)n) < 0)
		return -1;
	return n;
}

int commit_add_envelope(struct commit *c, time_t queued, const char *sender,
			char *const *rcpts, size_t nrcpts)
{
	c->env_fd = create(c, c->tmp_path, sizeof c->tmp_path, SPOOL_TMP, "create tmp file");
	if (c->env_fd < 0)
		return c->outcome;
	if (spool_write_envelope_file(c->env_fd, c->size, c->crc, queued, sender, rcpts,
				      nrcpts) == 0)
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

/* Starts the writeback of both files, waiting for nothing, so that the
 * first fdatasync of a batch finds every file's blocks allocated and its
 * one journal commit carries them all.  Only a hint: a failure shows in
 * the fdatasync. */
static void start_writeback(struct commit *c)
{
	(void)sync_file_range(c->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
	(void)sync_file_range(c->env_fd, 0, 0, SYNC_FILE_RANGE_WRITE);
}

/* The envelope file's name in incoming/, before either file is durable:
 * a reader sees both whole (every write has returned), and a crash's
 * torn file fails its CRC (tern-queue(8)).  QQ_QUEUED or the code. */
static int link_one(struct commit *c, char *incoming, size_t size)
{
	if (spool_path(incoming, size, c->spool, SPOOL_INCOMING, c->id) < 0)
		return failed(c, QQ_QUEUE_DIR, "path", errno);
	if (id_taken(c->spool, c->id))
		return failed(c, QQ_REFUSED_TEMP, "queue id taken", EEXIST);
	if (link(c->tmp_path, incoming) < 0) {
		int error = errno;
		incoming[0] = '\0';
		return failed(c, error == EEXIST ? QQ_REFUSED_TEMP : dir_error(error), "link",
			      error);
	}
	return QQ_QUEUED;
}

/* Closes both files of C: 0, or the errno of a failed close. */
static int close_files(struct commit *c)
{
	int error = 0;

	if (close(c->fd) < 0)
		error = errno;
	c->fd = -1;
	if (close(c->env_fd) < 0 && error == 0)
		error = errno;
	c->env_fd = -1;
	return error;
}

/* A linked message that failed after its link: its incoming/ name goes
 * first.  If the name is gone already, tern-deliver has moved the message
 * to queue/ (or delivered and removed it): its mess/ID stays for that
 * delivery (the client, told 53, may send it again: at least once).  One
 * tern-deliver read where it was loses its name now, and is dropped by
 * tern-deliver, unless a delivery holds mess/ID open already. */
static void take_back(struct commit *c, char *incoming)
{
	if (incoming[0] == '\0')
		return;
	if (unlink(incoming) < 0 && errno == ENOENT)
		c->mess_path[0] = '\0';
	incoming[0] = '\0';
}

/* The folders a batch syncs, and what their failure is called. */
static const char *const batch_folders[] = { SPOOL_MESS, SPOOL_INCOMING };
static const char *const batch_folder_what[] = { "fsync mess", "fsync incoming" };

/* Opens mess/ and incoming/ of SPOOL into DIRS: NULL, or what failed
 * (errno set; those opened are closed). */
static const char *open_folders(const char *spool, int dirs[2])
{
	char dir[PATH_MAX];

	for (size_t i = 0; i < 2; i++) {
		dirs[i] = spool_path(dir, sizeof dir, spool, batch_folders[i], NULL) < 0 ? -1
			: open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dirs[i] < 0) {
			int error = errno;
			if (i == 1) {
				close(dirs[0]);
				dirs[0] = -1;
			}
			errno = error;
			return batch_folder_what[i];
		}
	}
	return NULL;
}

/* The syncs of a batch, all at once (syncs.h): each linked message's two
 * files (fdatasync), then mess/ and incoming/ (fsync) if any is linked.
 * Fills JOBS (room for 2 n + 2); a message whose file failed is taken
 * back and refused; if a folder failed, every one is, since none of the
 * batch's names is known durable. */
static void sync_batch(struct syncs *syncs, struct commit *const *batch, size_t n,
		       char (*incoming)[PATH_MAX], struct sync_job *jobs)
{
	int dirs[2] = { -1, -1 };
	size_t njobs = 0, linked = 0;

	for (size_t i = 0; i < n; i++) {
		if (batch[i]->outcome != QQ_QUEUED)
			continue;
		jobs[njobs++] = (struct sync_job){ .fd = batch[i]->fd, .data_only = true };
		jobs[njobs++] = (struct sync_job){ .fd = batch[i]->env_fd, .data_only = true };
		linked++;
	}
	const char *what = linked > 0 ? open_folders(batch[0]->spool, dirs) : NULL;
	int folder_error = what != NULL ? errno : 0;
	if (what == NULL && linked > 0)
		for (size_t i = 0; i < 2; i++)
			jobs[njobs++] = (struct sync_job){ .fd = dirs[i], .data_only = false };
	syncs_run(syncs, jobs, njobs);
	for (size_t i = 0; what == NULL && linked > 0 && i < 2; i++)
		if (jobs[2 * linked + i].error != 0) {
			what = batch_folder_what[i];
			folder_error = jobs[2 * linked + i].error;
		}
	if (dirs[0] >= 0)
		close(dirs[0]), close(dirs[1]);
	for (size_t i = 0, j = 0; i < n; i++) {
		if (batch[i]->outcome != QQ_QUEUED)
			continue;
		int error = jobs[j].error ? jobs[j].error : jobs[j + 1].error;
		int closed = close_files(batch[i]);
		j += 2;
		if (error != 0 || closed != 0) {
			take_back(batch[i], incoming[i]);
			failed(batch[i], QQ_WRITE_ERROR, error ? "fdatasync" : "close",
			       error ? error : closed);
		} else if (what != NULL) {
			take_back(batch[i], incoming[i]);
			failed(batch[i], QQ_WRITE_ERROR, what, folder_error);
		}
	}
}

void commit_batch(struct syncs *syncs, struct commit *const *batch, size_t n)
{
	char (*incoming)[PATH_MAX] = calloc(n ? n : 1, PATH_MAX);
	struct sync_job *jobs = calloc(2 * n + 2, sizeof *jobs);

	for (size_t i = 0; i < n; i++) {
		if (incoming == NULL || jobs == NULL)
			failed(batch[i], QQ_NO_MEMORY, "malloc", ENOMEM);
		else if (batch[i]->outcome == QQ_QUEUED)
			start_writeback(batch[i]);
	}
	for (size_t i = 0; incoming != NULL && jobs != NULL && i < n; i++)
		if (batch[i]->outcome == QQ_QUEUED)
			link_one(batch[i], incoming[i], PATH_MAX);
	if (incoming != NULL && jobs != NULL)
		sync_batch(syncs, batch, n, incoming, jobs);
	for (size_t i = 0; i < n; i++) {
		if (batch[i]->outcome == QQ_QUEUED)
			batch[i]->mess_path[0] = '\0';	/* committed: it stays */
		commit_abort(batch[i]);	/* the tmp/ name, linked or not */
	}
	free(jobs);
	free(incoming);
}

void commit_abort(struct commit *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	if (c->tmp_path[0] != '\0') {
		if (c->env_fd >= 0)
			close(c->env_fd);
		unlink(c->tmp_path);
	}
	c->env_fd = -1;
	c->tmp_path[0] = '\0';
	if (c->mess_path[0] != '\0')
		unlink(c->mess_path);
	c->mess_path[0] = '\0';
}
