#include "syncs.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

static void run_job(struct sync_job *job)
{
	int r = job->data_only ? fdatasync(job->fd) : fsync(job->fd);

	job->error = r < 0 ? errno : 0;
}

/* Takes and runs jobs of the current round until none is left; called
 * and returns with the lock held. */
static void drain(struct syncs *s)
{
	while (s->jobs != NULL && s->next < s->njobs) {
		struct sync_job *job = &s->jobs[s->next++];
		pthread_mutex_unlock(&s->lock);
		run_job(job);
		pthread_mutex_lock(&s->lock);
		if (++s->finished == s->njobs)
			pthread_cond_signal(&s->done);
	}
}

static void *worker(void *arg)
{
	struct syncs *s = arg;

	pthread_mutex_lock(&s->lock);
	while (!s->stopping) {
		drain(s);
		if (!s->stopping)
			pthread_cond_wait(&s->work, &s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

int syncs_start(struct syncs *s)
{
	sigset_t all, old;

	memset(s, 0, sizeof *s);
	int err = pthread_mutex_init(&s->lock, NULL);
	if (err != 0) {
		errno = err;
		return -1;
	}
	pthread_cond_init(&s->work, NULL);
	pthread_cond_init(&s->done, NULL);
	/* the threads inherit a mask that blocks everything: every signal is
	 * the main thread's (the service reads its own on a signalfd) */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (size_t i = 0; i < SYNC_THREADS && err == 0; i++) {
		err = pthread_create(&s->threads[i], NULL, worker, s);
		if (err == 0)
			s->nthreads++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (s->nthreads > 0)
		return 0;
	pthread_cond_destroy(&s->work);
	pthread_cond_destroy(&s->done);
	pthread_mutex_destroy(&s->lock);
	errno = err;
	return -1;
}

void syncs_run(struct syncs *s, struct sync_job *jobs, size_t n)
{
	if (s == NULL || s->nthreads == 0 || n < 2) {
		for (size_t i = 0; i < n; i++)
			run_job(&jobs[i]);
		return;
	}
	pthread_mutex_lock(&s->lock);
	s->jobs = jobs;
	s->njobs = n;
	s->next = s->finished = 0;
	pthread_cond_broadcast(&s->work);
	drain(s);
	while (s->finished < s->njobs)
		pthread_cond_wait(&s->done, &s->lock);
	s->jobs = NULL;
	s->njobs = s->next = s->finished = 0;
	pthread_mutex_unlock(&s->lock);
}

void syncs_stop(struct syncs *s)
{
	if (s->nthreads == 0)
		return;
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	pthread_cond_broadcast(&s->work);
	pthread_mutex_unlock(&s->lock);
	for (size_t i = 0; i < s->nthreads; i++)
		pthread_join(s->threads[i], NULL);
	s->nthreads = 0;
	pthread_cond_destroy(&s->work);
	pthread_cond_destroy(&s->done);
	pthread_mutex_destroy(&s->lock);
}
