/* syncs: the fsyncs of one group commit, run side by side.
 *
 * One after another, every sync after the first of a batch finds the
 * journal committed and still waits for a cache flush of its own (ext4
 * asks the device for one at each call): four calls a message cost one
 * commit and three flushes in a row.  Issued at once, from a few threads,
 * they wait for the same commit and their flushes merge in the block
 * layer.  Nothing else runs on those threads: each takes a descriptor,
 * calls fdatasync(2) or fsync(2) on it (the libc calls, so the test
 * suite's fault shim still sees them), and keeps the errno.
 *
 * Promises: syncs_run() returns once every job has run, whatever each
 * one's result; job i's error is 0 or the errno of its call.  Without
 * threads (S NULL, or syncs_start() failed) the jobs run one after
 * another in the caller: the same results, only slower.  The threads are
 * started once and live until syncs_stop() or the end of the process;
 * they hold no descriptor of their own and block every signal. */
#ifndef TERN_QUEUE_SYNCS_H
#define TERN_QUEUE_SYNCS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#define SYNC_THREADS 3	/* besides the caller, which runs jobs too */

struct sync_job {
	int fd;
	bool data_only;		/* fdatasync, else fsync */
	int error;		/* 0, or the call's errno */
};

struct syncs {
	pthread_t threads[SYNC_THREADS];
	size_t nthreads;
	pthread_mutex_t lock;
	pthread_cond_t work, done;
	struct sync_job *jobs;
	size_t njobs, next, finished;
	bool stopping;
};

/* 0, or -1 (errno set) when no thread could start: then syncs_run runs
 * the jobs in the caller. */
int syncs_start(struct syncs *s);
void syncs_run(struct syncs *s, struct sync_job *jobs, size_t n);
void syncs_stop(struct syncs *s);

#endif
