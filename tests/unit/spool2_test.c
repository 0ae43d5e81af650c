/* spool: the TERN2 format (envelope file + mess/ID with CRC-32C), beside
 * TERN1, and the torn files a crash can leave (lib/spool.h). */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "helpers.h"
#include "spool.h"
#include "suites.h"

static const char message[] = "Subject: two\n\nHello.\nSecond line.\n";

/* A spool in a fresh folder; its path in SPOOL. */
static void make_spool(char *spool)
{
	char dir[PATH_MAX];

	test_mkdir(dir);
	test_path(spool, dir, "spool");
	ck_assert_int_eq(spool_create(spool), 0);
}

static void write_bytes(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	ck_assert_int_eq(close(fd), 0);
}

/* mess/ID holding BODY and DIR/ID its TERN2 envelope file. */
static void write_v2(const char *spool, const char *dir, const char *id, const char *body,
		     char *const *rcpts, size_t n)
{
	char path[PATH_MAX];

	ck_assert_int_eq(spool_path(path, sizeof path, spool, SPOOL_MESS, id), 0);
	write_bytes(path, body, strlen(body));
	ck_assert_int_eq(spool_path(path, sizeof path, spool, dir, id), 0);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(spool_write_envelope_file(fd, strlen(body),
						   crc32c_update(0, body, strlen(body)),
						   1700000000, "s@x.test", rcpts, n), 0);
	ck_assert_int_eq(close(fd), 0);
}

static int read_at(const char *spool, const char *dir, const char *id,
		   struct envelope *env, int *err)
{
	char path[PATH_MAX];

	ck_assert_int_eq(spool_path(path, sizeof path, spool, dir, id), 0);
	int fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	errno = 0;
	int r = spool_read_envelope(fd, env);
	*err = errno;
	close(fd);
	return r;
}

/* spool_open_message then spool_check_message: 0, or -1 with *ERR. */
static int open_and_check(const char *spool, const char *dir, const char *id,
			  const struct envelope *env, int *err)
{
	errno = 0;
	int fd = spool_open_message(spool, dir, id, env->format, env->msglen);
	if (fd < 0) {
		*err = errno;
		return fd;
	}
	int r = spool_check_message(fd, env);
	*err = errno;
	close(fd);
	return r;
}

START_TEST(layout_has_mess)
{
	char spool[PATH_MAX], path[PATH_MAX];
	struct stat st;

	make_spool(spool);
	test_path(path, spool, SPOOL_MESS);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 0777, 0700);
}
END_TEST

START_TEST(v2_round_trip)
{
	char spool[PATH_MAX], path[PATH_MAX], buf[256];
	char *rcpts[] = { "a@x.test", "bcc@y.test" };
	struct envelope env;
	int err;

	make_spool(spool);
	write_v2(spool, SPOOL_INCOMING, "ID2", message, rcpts, 2);
	ck_assert_int_eq(read_at(spool, SPOOL_INCOMING, "ID2", &env, &err), 0);
	ck_assert_int_eq(env.format, SPOOL_FORMAT_V2);
	ck_assert_str_eq(env.sender, "s@x.test");
	ck_assert_uint_eq(env.nrcpts, 2);
	ck_assert_str_eq(env.rcpts[1], "bcc@y.test");
	ck_assert_uint_eq(env.msglen, strlen(message));
	ck_assert_uint_eq(env.msgcrc, crc32c_update(0, message, strlen(message)));
	ck_assert_int_eq(env.queued, 1700000000);

	/* the envelope file holds no message octet; mess/ID holds nothing else */
	size_t len;
	ck_assert_int_eq(spool_path(path, sizeof path, spool, SPOOL_INCOMING, "ID2"), 0);
	char *whole = test_read_file(path, &len);
	ck_assert_ptr_nonnull(whole);
	ck_assert_ptr_null(strstr(whole, "Hello."));
	ck_assert_mem_eq(whole + len - SPOOL_FOOTER2_SIZE, "TERN2 ", 6);
	free(whole);

	int fd = spool_open_message(spool, SPOOL_INCOMING, "ID2", env.format, env.msglen);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, buf, sizeof buf, 0), (ssize_t)strlen(message));
	ck_assert_mem_eq(buf, message, strlen(message));
	ck_assert_int_eq(spool_check_message(fd, &env), 0);
	close(fd);
	spool_free_envelope(&env);
}
END_TEST

START_TEST(v2_empty_message_and_no_recipients)
{
	char spool[PATH_MAX];
	struct envelope env;
	int err;

	make_spool(spool);
	write_v2(spool, SPOOL_QUEUE, "E", "", NULL, 0);
	ck_assert_int_eq(read_at(spool, SPOOL_QUEUE, "E", &env, &err), 0);
	ck_assert_uint_eq(env.msglen, 0);
	ck_assert_uint_eq(env.nrcpts, 0);
	ck_assert_int_eq(open_and_check(spool, SPOOL_QUEUE, "E", &env, &err), 0);
	spool_free_envelope(&env);
}
END_TEST

/* A TERN1 file is still read, and its message is the file's front: the
 * caller opens the file itself. */
START_TEST(v1_still_read)
{
	char spool[PATH_MAX], path[PATH_MAX], buf[256];
	char *rcpts[] = { "a@x.test" };
	struct envelope env;
	int err;

	make_spool(spool);
	ck_assert_int_eq(spool_path(path, sizeof path, spool, SPOOL_QUEUE, "OLD"), 0);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, message, strlen(message)), (ssize_t)strlen(message));
	ck_assert_int_eq(spool_write_envelope(fd, strlen(message), 7, "", rcpts, 1), 0);
	close(fd);
	ck_assert_int_eq(read_at(spool, SPOOL_QUEUE, "OLD", &env, &err), 0);
	ck_assert_int_eq(env.format, SPOOL_FORMAT_V1);
	ck_assert_str_eq(env.sender, "");
	ck_assert_uint_eq(env.msglen, strlen(message));
	fd = spool_open_message(spool, SPOOL_QUEUE, "OLD", env.format, env.msglen);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, buf, env.msglen, 0), (ssize_t)env.msglen);
	ck_assert_mem_eq(buf, message, env.msglen);
	ck_assert_int_eq(spool_check_message(fd, &env), 0);
	close(fd);
	spool_free_envelope(&env);
}
END_TEST

/* An address whose octets put "TERN2 " where a TERN2 footer would start
 * does not make a TERN1 file look like one. */
START_TEST(v1_that_looks_like_v2_at_the_end)
{
	char spool[PATH_MAX], path[PATH_MAX];
	char *rcpts[] = { "\"x TERN2 abc\"@d.test" };
	struct envelope env;
	int err;

	make_spool(spool);
	ck_assert_int_eq(spool_path(path, sizeof path, spool, SPOOL_QUEUE, "T"), 0);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(spool_write_envelope(fd, 0, 7, "s@x.test", rcpts, 1), 0);
	char tail[6];
	struct stat st;
	ck_assert_int_eq(fstat(fd, &st), 0);
	ck_assert_int_eq(pread(fd, tail, 6, st.st_size - SPOOL_FOOTER2_SIZE), 6);
	ck_assert_mem_eq(tail, "TERN2 ", 6);	/* the case this test is for */
	close(fd);
	ck_assert_int_eq(read_at(spool, SPOOL_QUEUE, "T", &env, &err), 0);
	ck_assert_int_eq(env.format, SPOOL_FORMAT_V1);
	ck_assert_str_eq(env.rcpts[0], rcpts[0]);
	spool_free_envelope(&env);
}
END_TEST

static void expect_torn_envelope(const char *spool, const char *id, const char *what)
{
	struct envelope env;
	int err;

	int r = read_at(spool, SPOOL_QUEUE, id, &env, &err);
	ck_assert_msg(r == -1 && err == EBADMSG, "%s: %d errno %d", what, r, err);
	ck_assert_ptr_null(env.block);
}

/* Every way a crash or a copy can tear an envelope file: EBADMSG. */
START_TEST(torn_envelopes_refused)
{
	char spool[PATH_MAX], path[PATH_MAX], what[64];
	enum { N = 200 };
	char *rcpts[N];
	struct stat st;

	for (int i = 0; i < N; i++) {
		rcpts[i] = malloc(40);
		ck_assert_ptr_nonnull(rcpts[i]);
		snprintf(rcpts[i], 40, "user%03d@example.test", i);
	}
	make_spool(spool);
	ck_assert_int_eq(spool_path(path, sizeof path, spool, SPOOL_QUEUE, "M"), 0);
	write_v2(spool, SPOOL_QUEUE, "M", message, rcpts, N);
	ck_assert_int_eq(stat(path, &st), 0);
	off_t whole = st.st_size;
	ck_assert_int_gt(whole, 4096 + SPOOL_FOOTER2_SIZE);
	size_t len;
	char *good = test_read_file(path, &len);
	ck_assert_ptr_nonnull(good);

	/* every shorter length, down to nothing */
	for (off_t cut = whole - 1; cut >= 0; cut -= (cut > 300 ? 97 : 1)) {
		ck_assert_int_eq(truncate(path, cut), 0);
		snprintf(what, sizeof what, "cut to %lld", (long long)cut);
		expect_torn_envelope(spool, "M", what);
	}
	/* longer: a zero-filled tail (the size made durable, not the data) */
	write_bytes(path, good, len);
	ck_assert_int_eq(truncate(path, whole + 4096), 0);
	expect_torn_envelope(spool, "M", "zero tail");
	/* the right size, all zeros */
	char *copy = calloc(1, len);
	ck_assert_ptr_nonnull(copy);
	write_bytes(path, copy, len);
	expect_torn_envelope(spool, "M", "all zeros");
	/* the first 4 KiB block zeroed, the footer whole: only the CRC sees it */
	memcpy(copy, good, len);
	memset(copy, 0, 4096);
	write_bytes(path, copy, len);
	expect_torn_envelope(spool, "M", "first block zeroed");
	/* one octet changed anywhere, still hex where the footer has hex */
	for (size_t at = 0; at < len - 1; at += (at < len - SPOOL_FOOTER2_SIZE ? 131 : 1)) {
		memcpy(copy, good, len);
		copy[at] = copy[at] == '1' ? '2' : '1';
		if (good[at] == ' ' || good[at] == '\n')
			copy[at] = good[at] == ' ' ? '\t' : ' ';
		write_bytes(path, copy, len);
		snprintf(what, sizeof what, "octet %zu changed", at);
		expect_torn_envelope(spool, "M", what);
	}
	/* whole again: read */
	write_bytes(path, good, len);
	struct envelope env;
	int err;
	ck_assert_int_eq(read_at(spool, SPOOL_QUEUE, "M", &env, &err), 0);
	spool_free_envelope(&env);
	free(copy);
	free(good);
	for (int i = 0; i < N; i++)
		free(rcpts[i]);
}
END_TEST

/* Every way mess/ID can be torn or missing while its envelope is whole. */
START_TEST(torn_messages_refused)
{
	char spool[PATH_MAX], mess[PATH_MAX];
	char *rcpts[] = { "a@x.test" };
	struct envelope env;
	int err;
	enum { LEN = 20000 };
	char *body = malloc(LEN + 1), *copy = malloc(LEN + 1);

	ck_assert_ptr_nonnull(body);
	ck_assert_ptr_nonnull(copy);
	for (size_t i = 0; i < LEN; i++)
		body[i] = (i % 64 == 63) ? '\n' : (char)('a' + i % 26);
	body[LEN] = '\0';
	make_spool(spool);
	write_v2(spool, SPOOL_QUEUE, "B", body, rcpts, 1);
	ck_assert_int_eq(spool_path(mess, sizeof mess, spool, SPOOL_MESS, "B"), 0);
	ck_assert_int_eq(read_at(spool, SPOOL_QUEUE, "B", &env, &err), 0);
	ck_assert_int_eq(open_and_check(spool, SPOOL_QUEUE, "B", &env, &err), 0);

	/* short, and longer: refused at open */
	ck_assert_int_eq(truncate(mess, LEN - 1), 0);
	ck_assert_int_eq(open_and_check(spool, SPOOL_QUEUE, "B", &env, &err), -1);
	ck_assert_int_eq(err, EBADMSG);
	ck_assert_int_eq(truncate(mess, 0), 0);
	ck_assert_int_eq(open_and_check(spool, SPOOL_QUEUE, "B", &env, &err), -1);
	ck_assert_int_eq(err, EBADMSG);
	write_bytes(mess, body, LEN);
	ck_assert_int_eq(truncate(mess, LEN + 1), 0);
	ck_assert_int_eq(open_and_check(spool, SPOOL_QUEUE, "B", &env, &err), -1);
	ck_assert_int_eq(err, EBADMSG);

	/* the right length, a block zeroed or one octet changed: the CRC */
	memcpy(copy, body, LEN);
	memset(copy + 8192, 0, 4096);
	write_bytes(mess, copy, LEN);
	ck_assert_int_eq(open_and_check(spool, SPOOL_QUEUE, "B", &env, &err), -1);
	ck_assert_int_eq(err, EBADMSG);
	memcpy(copy, body, LEN);
	copy[LEN - 1] = 'x';
	write_bytes(mess, copy, LEN);
	ck_assert_int_eq(open_and_check(spool, SPOOL_QUEUE, "B", &env, &err), -1);
	ck_assert_int_eq(err, EBADMSG);

	/* missing, and not a regular file */
	ck_assert_int_eq(unlink(mess), 0);
	ck_assert_int_eq(open_and_check(spool, SPOOL_QUEUE, "B", &env, &err), -1);
	ck_assert_int_eq(err, ENOENT);
	ck_assert_int_eq(mkfifo(mess, 0600), 0);
	ck_assert_int_eq(spool_open_message(spool, SPOOL_QUEUE, "B", env.format, env.msglen),
			 SPOOL_NOT_REGULAR);
	ck_assert_int_eq(unlink(mess), 0);

	/* whole again */
	write_bytes(mess, body, LEN);
	ck_assert_int_eq(open_and_check(spool, SPOOL_QUEUE, "B", &env, &err), 0);
	spool_free_envelope(&env);
	free(body);
	free(copy);
}
END_TEST

START_TEST(v2_envelope_too_large_is_not_a_write_error)
{
	char dir[PATH_MAX], path[PATH_MAX];
	size_t len = SPOOL_ENVELOPE_MAX + 1;
	char *sender = malloc(len + 1);
	struct stat st;

	ck_assert_ptr_nonnull(sender);
	memset(sender, 'a', len);
	sender[len] = '\0';
	test_mkdir(dir);
	test_path(path, dir, "m");
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	errno = 0;
	ck_assert_int_eq(spool_write_envelope_file(fd, 0, 0, 1, sender, NULL, 0), -1);
	ck_assert_int_eq(errno, EMSGSIZE);
	ck_assert_int_eq(fstat(fd, &st), 0);
	ck_assert_int_eq(st.st_size, 0);
	close(fd);
	free(sender);
}
END_TEST

Suite *spool_v2_suite(void)
{
	Suite *s = suite_create("spool_v2");
	TCase *tc = tcase_create("files");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, layout_has_mess);
	tcase_add_test(tc, v2_round_trip);
	tcase_add_test(tc, v2_empty_message_and_no_recipients);
	tcase_add_test(tc, v1_still_read);
	tcase_add_test(tc, v1_that_looks_like_v2_at_the_end);
	tcase_add_test(tc, torn_envelopes_refused);
	tcase_add_test(tc, torn_messages_refused);
	tcase_add_test(tc, v2_envelope_too_large_is_not_a_write_error);
	suite_add_tcase(s, tc);
	return s;
}
