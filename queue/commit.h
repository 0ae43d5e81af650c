/* commit: the one way a message enters the spool, for the tern-queue
 * program and the queue service alike.
 *
 * Promises: commit_begin creates mess/ID, which commit_add_bytes fills
 * with the message (its CRC-32C kept); commit_add_envelope writes the
 * TERN2 envelope file tmp/ID (never seen by delivery); commit_batch makes
 * a batch of them durable and visible as tern-queue(8) says: the
 * writeback of every file started, each envelope file linked into
 * incoming/ before it is durable (a torn file fails its CRC), each file
 * fdatasync'd and closed and ONE fsync of mess/ and of incoming/ for the
 * whole batch, all these syncs issued at once (syncs.h), and only once
 * all have returned does a message's outcome say QQ_QUEUED.
 * A message whose outcome is anything else is in no folder delivery
 * reads: a failure of a folder's fsync takes back every link of that
 * batch, since none of them is known to be durable.  (tern-deliver may
 * have read it meanwhile: a delivery already holding mess/ID completes,
 * at least once; one moved to queue/ keeps its mess/ID; tern-deliver
 * drops the rest when it finds incoming/ID gone.)  Whatever
 * happens, tmp/ID is gone when commit_batch or commit_abort returns, and
 * mess/ID too unless the message is queued.  The spool's format is
 * written here and in lib/spool.c, nowhere else. */
#ifndef TERN_QUEUE_COMMIT_H
#define TERN_QUEUE_COMMIT_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "util.h"

struct commit {
	const char *spool;	/* the caller's; outlives the commit */
	char id[QID_MAX];
	char mess_path[PATH_MAX];	/* mess/ID; "" when there is none (left) */
	int fd;			/* on mess_path; -1 when closed */
	char tmp_path[PATH_MAX];	/* the envelope file; "" when there is none */
	int env_fd;		/* on tmp_path, while tmp_path is set */
	uint64_t size;		/* message octets added */
	uint32_t crc;		/* their CRC-32C */
	int outcome;		/* QQ_QUEUED, or the code that refused it */
	const char *what;	/* the step that failed, for the log */
	int error;		/* its errno, 0 if none */
};

/* Creates mess/ID for a new message.  QQ_QUEUED, or the code that
 * refuses it (71 if ID is in use, 62 or 53 for the folder); nothing is
 * left then. */
int commit_begin(struct commit *c, const char *spool, const char *id);
/* Appends LEN octets of the message.  QQ_QUEUED, or 53 (the commit has
 * then failed: abort it). */
int commit_add_bytes(struct commit *c, const void *buf, size_t len);
/* Moves up to LEN octets of the message from the pipe PIPE_FD into the
 * file, never waiting for the pipe whatever its own flags say (others who
 * hold it may change them): splice(2) with SPLICE_F_NONBLOCK.  The octets
 * moved, 0 at the pipe's end, or -1: EAGAIN when it has none now, else
 * the commit has failed (53: abort it). */
ssize_t commit_add_from_pipe(struct commit *c, int pipe_fd, size_t len);
/* Writes the envelope file tmp/ID for the message added.  QQ_QUEUED, or
 * 31 (too large), 51, 53, 62 or 71. */
int commit_add_envelope(struct commit *c, time_t queued, const char *sender,
			char *const *rcpts, size_t nrcpts);
/* Commits the N messages of BATCH (all in one spool; each one's outcome
 * QQ_QUEUED so far) as this header says, and sets each one's outcome. */
struct syncs;
/* SYNCS: the threads that run the batch's syncs at once; NULL: one after
 * another. */
void commit_batch(struct syncs *syncs, struct commit *const *batch, size_t n);
/* Drops the message: closes and removes tmp/ID and mess/ID. */
void commit_abort(struct commit *c);

#endif
