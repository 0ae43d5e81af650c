/* syncs: a batch's fsyncs side by side (lib/syncs.h): every job runs,
 * each keeps its own errno, with threads or without. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "suites.h"
#include "syncs.h"

#define JOBS 40

/* JOBS jobs on temporary files, every 7th on a closed descriptor. */
static void make_jobs(struct sync_job *jobs, int *fds)
{
	for (size_t i = 0; i < JOBS; i++) {
		char path[] = "/tmp/tern-syncs-XXXXXX";
		fds[i] = mkstemp(path);
		ck_assert_int_ge(fds[i], 0);
		unlink(path);
		ck_assert_int_eq(write(fds[i], "x", 1), 1);
		jobs[i] = (struct sync_job){ .fd = fds[i], .data_only = i % 2 == 0, .error = -1 };
	}
	for (size_t i = 0; i < JOBS; i += 7) {
		close(fds[i]);
		fds[i] = -1;
		jobs[i].fd = 1000 + (int)i;	/* nothing open there */
	}
}

static void check_jobs(const struct sync_job *jobs, int *fds)
{
	for (size_t i = 0; i < JOBS; i++) {
		ck_assert_int_eq(jobs[i].error, i % 7 == 0 ? EBADF : 0);
		if (fds[i] >= 0)
			close(fds[i]);
	}
}

START_TEST(threads_run_every_job_with_its_own_result)
{
	struct syncs s;
	struct sync_job jobs[JOBS];
	int fds[JOBS];

	ck_assert_int_eq(syncs_start(&s), 0);
	ck_assert_uint_eq(s.nthreads, SYNC_THREADS);
	for (int round = 0; round < 50; round++) {	/* rounds reuse the threads */
		make_jobs(jobs, fds);
		syncs_run(&s, jobs, JOBS - (size_t)round % 3);
		for (size_t i = JOBS - (size_t)round % 3; i < JOBS; i++)
			ck_assert_int_eq(jobs[i].error, -1);	/* past N: untouched */
		for (size_t i = JOBS - (size_t)round % 3; i < JOBS; i++)
			jobs[i].error = i % 7 == 0 ? EBADF : 0;
		check_jobs(jobs, fds);
	}
	syncs_run(&s, jobs, 0);
	syncs_stop(&s);
	ck_assert_uint_eq(s.nthreads, 0);
}
END_TEST

START_TEST(without_threads_the_caller_runs_them_alike)
{
	struct sync_job jobs[JOBS];
	int fds[JOBS];

	make_jobs(jobs, fds);
	syncs_run(NULL, jobs, JOBS);
	check_jobs(jobs, fds);
}
END_TEST

Suite *syncs_suite(void)
{
	Suite *s = suite_create("syncs");
	TCase *tc = tcase_create("syncs");

	tcase_add_test(tc, threads_run_every_job_with_its_own_result);
	tcase_add_test(tc, without_threads_the_caller_runs_them_alike);
	suite_add_tcase(s, tc);
	return s;
}
