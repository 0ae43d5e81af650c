/* queue_client: the one client of the queue (lib/queue_client.h), with
 * small shell scripts in place of tern-queue. */
#include <check.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers.h"
#include "queue_client.h"
#include "suites.h"

/* DIR/queue.sh running BODY; its path goes to OUT (PATH_MAX). */
static void queue_script(char *out, const char *dir, const char *body)
{
	char text[1024];

	snprintf(text, sizeof text, "#!/bin/sh\n%s", body);
	test_write_file(dir, "queue.sh", text);
	test_path(out, dir, "queue.sh");
	ck_assert_int_eq(chmod(out, 0755), 0);
}

static int message_file(const char *dir, const char *text)
{
	char path[PATH_MAX];

	test_write_file(dir, "message", text);
	test_path(path, dir, "message");
	int fd = open(path, O_RDONLY);
	ck_assert(fd >= 0);
	return fd;
}

static struct queue_target target(const char *program, unsigned timeout)
{
	return (struct queue_target){
		.program = program, .config = "/nonexistent/tern.conf", .qid = "Q1",
		.timeout = timeout,
	};
}

static bool gone(pid_t pid)
{
	return kill(pid, 0) < 0;
}

START_TEST(envelope_bytes)
{
	char *rcpts[] = { "a@x.test", "b@y.test" };
	size_t len;
	char *env = queue_envelope("s@z.test", rcpts, 2, &len);
	static const char want[] = "Fs@z.test\0Ta@x.test\0Tb@y.test\0";

	ck_assert_ptr_nonnull(env);
	ck_assert_uint_eq(len, sizeof want);
	ck_assert_mem_eq(env, want, sizeof want);
	free(env);
	env = queue_envelope("", NULL, 0, &len);
	ck_assert_uint_eq(len, 3);
	ck_assert_mem_eq(env, "F\0\0", 3);
	free(env);
}
END_TEST

START_TEST(submit_hands_over_message_and_envelope)
{
	char dir[PATH_MAX], program[PATH_MAX], got[PATH_MAX];
	struct queue_client q;
	size_t len;

	test_mkdir(dir);
	test_path(got, dir, "got");
	char body[PATH_MAX + 64];
	ck_assert_int_lt(snprintf(body, sizeof body,
				  "exec 3<&1\n{ cat; echo; cat <&3; echo \"$TERN_QID\"; } > %s\n", got),
			 (int)sizeof body);
	queue_script(program, dir, body);
	int fd = message_file(dir, "Subject: x\n\nhi\n");
	char *rcpt[] = { "r@x.test" };
	char *env = queue_envelope("s@x.test", rcpt, 1, &len);
	struct queue_target t = target(program, 30);
	ck_assert_int_eq(queue_submit(&q, &t, fd, env, len), 0);
	close(fd);
	free(env);
	ck_assert_int_eq(queue_wait(&q), 0);
	char *text = test_read_file(got, &len);
	static const char want[] = "Subject: x\n\nhi\n\nFs@x.test\0Tr@x.test\0\0Q1\n";
	ck_assert_ptr_nonnull(text);
	ck_assert_uint_eq(len, sizeof want - 1);
	ck_assert_mem_eq(text, want, sizeof want - 1);
	free(text);
}
END_TEST

START_TEST(confirmation_past_the_timeout_kills_the_queue)
{
	char dir[PATH_MAX], program[PATH_MAX], body[PATH_MAX + 64], pidfile[PATH_MAX];
	struct queue_client q;
	char reply[QUEUE_REPLY_MAX];

	test_mkdir(dir);
	test_path(pidfile, dir, "pid");
	ck_assert_int_lt(snprintf(body, sizeof body, "echo $$ > %s\nexec sleep 100000\n", pidfile),
			 (int)sizeof body);
	queue_script(program, dir, body);
	int fd = message_file(dir, "x\n");
	struct queue_target t = target(program, 1);
	ck_assert_int_eq(queue_submit(&q, &t, fd, "F\0\0", 3), 0);
	close(fd);
	pid_t pid = q.pid;
	ck_assert_int_eq(queue_check(&q), QUEUE_PENDING);	/* and at once */
	ck_assert_int_gt(queue_remaining_ms(&q), 0);
	ck_assert_int_eq(queue_wait(&q), QUEUE_TIMED_OUT);
	ck_assert(gone(pid));
	queue_reply(&q, QUEUE_TIMED_OUT, "Q1", reply, sizeof reply);
	ck_assert_str_eq(reply, "451 4.3.0 Temporary failure: the queue did not answer in time");
}
END_TEST

START_TEST(a_write_past_the_timeout_kills_the_queue)
{
	char dir[PATH_MAX], program[PATH_MAX];
	struct queue_client q;
	static char chunk[65536];

	test_mkdir(dir);
	queue_script(program, dir, "exec sleep 100000\n");
	struct queue_target t = target(program, 1);
	ck_assert_int_eq(queue_start(&q, &t), 0);
	pid_t pid = q.pid;
	int r = 0;
	for (int i = 0; i < 64 && r == 0; i++)	/* a pipe holds far less */
		r = queue_write(&q, chunk, sizeof chunk);
	ck_assert_int_eq(r, -1);
	ck_assert(gone(pid));
	ck_assert_int_eq(queue_write(&q, "x", 1), -1);
	queue_end(&q, "F\0\0", 3);
	ck_assert_int_eq(queue_wait(&q), QUEUE_TIMED_OUT);
}
END_TEST

START_TEST(exit_82_gives_the_programs_text)
{
	char dir[PATH_MAX], program[PATH_MAX], reply[QUEUE_REPLY_MAX];
	struct queue_client q;

	test_mkdir(dir);
	queue_script(program, dir,
		     "cat >/dev/null\ncat <&1 >/dev/null\nprintf 'Dgo away\\n' >&6\nexit 82\n");
	struct queue_target t = target(program, 30);
	ck_assert_int_eq(queue_start(&q, &t), 0);
	ck_assert_int_eq(queue_write(&q, "x\n", 2), 0);
	ck_assert_int_eq(queue_finish(&q, "F\0\0", 3, "Q1", reply, sizeof reply), 82);
	ck_assert_str_eq(reply, "554 5.3.0 go away");
}
END_TEST

START_TEST(abort_leaves_nothing_running)
{
	char dir[PATH_MAX], program[PATH_MAX];
	struct queue_client q;

	test_mkdir(dir);
	queue_script(program, dir, "cat >/dev/null\nexec sleep 100000\n");
	struct queue_target t = target(program, 1);
	ck_assert_int_eq(queue_start(&q, &t), 0);
	pid_t pid = q.pid;
	queue_abort(&q);
	ck_assert(gone(pid));
}
END_TEST

Suite *queue_client_suite(void)
{
	Suite *s = suite_create("queue_client");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, envelope_bytes);
	tcase_add_test(tc, submit_hands_over_message_and_envelope);
	tcase_add_test(tc, confirmation_past_the_timeout_kills_the_queue);
	tcase_add_test(tc, a_write_past_the_timeout_kills_the_queue);
	tcase_add_test(tc, exit_82_gives_the_programs_text);
	tcase_add_test(tc, abort_leaves_nothing_running);
	suite_add_tcase(s, tc);
	return s;
}
