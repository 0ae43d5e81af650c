/* spool: message files and recipient state (lib/spool.h). */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic.h"
#include "helpers.h"
#include "spool.h"
#include "suites.h"

static const char message[] = "Subject: test\n\nHello.\nSecond line.\n";

START_TEST(create_makes_the_layout)
{
	char dir[PATH_MAX], spool[PATH_MAX], path[PATH_MAX];
	struct stat st;

	test_mkdir(dir);
	test_path(spool, dir, "spool");
	ck_assert_int_eq(spool_create(spool), 0);
	static const char *const dirs[] = { SPOOL_TMP, SPOOL_INCOMING, SPOOL_QUEUE, SPOOL_STATE,
					    SPOOL_CONTROL };
	for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
		test_path(path, spool, dirs[i]);
		ck_assert_msg(stat(path, &st) == 0 && S_ISDIR(st.st_mode), "%s", path);
	}
	test_path(path, spool, SPOOL_TRIGGER);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert(S_ISFIFO(st.st_mode));
	/* again: nothing to do, no error */
	ck_assert_int_eq(spool_create(spool), 0);
	/* poking with nobody listening is fine */
	spool_poke(spool);

	ck_assert_int_eq(spool_path(path, sizeof path, spool, "queue", "ABC"), 0);
	char queue[PATH_MAX], want[PATH_MAX];
	test_path(queue, spool, "queue");
	test_path(want, queue, "ABC");
	ck_assert_str_eq(path, want);
	char tiny[8];
	ck_assert_int_ne(spool_path(tiny, sizeof tiny, spool, "queue", "ABC"), 0);
}
END_TEST

/* Writes a message file to DIR/NAME; returns its path in PATH. */
static void write_message(const char *dir, const char *name, char *path, const char *sender,
			  char *const *rcpts, size_t n, time_t when)
{
	test_path(path, dir, name);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ck_assert(fd >= 0);
	ck_assert_int_eq(write(fd, message, strlen(message)), (ssize_t)strlen(message));
	ck_assert_int_eq(spool_write_envelope(fd, strlen(message), when, sender, rcpts, n), 0);
	ck_assert_int_eq(close(fd), 0);
}

static int read_envelope(const char *path, struct envelope *env, int *err)
{
	int fd = open(path, O_RDONLY);
	ck_assert(fd >= 0);
	errno = 0;
	int r = spool_read_envelope(fd, env);
	*err = errno;
	close(fd);
	return r;
}

START_TEST(envelope_round_trip)
{
	char dir[PATH_MAX], path[PATH_MAX];
	char *rcpts[] = { "a@x.test", "b@y.test", "\"john doe\"@z.test", "j\xc3\xb6rg@x.test" };
	struct envelope env;
	int err;

	test_mkdir(dir);
	write_message(dir, "m1", path, "", rcpts, 4, 1700000000);
	ck_assert_int_eq(read_envelope(path, &env, &err), 0);
	ck_assert_str_eq(env.sender, "");
	ck_assert_uint_eq(env.nrcpts, 4);
	for (size_t i = 0; i < 4; i++)
		ck_assert_str_eq(env.rcpts[i], rcpts[i]);
	ck_assert_uint_eq(env.msglen, strlen(message));
	ck_assert_int_eq(env.queued, 1700000000);
	spool_free_envelope(&env);

	/* the message itself is untouched at the front */
	size_t len;
	char *whole = test_read_file(path, &len);
	ck_assert(whole != NULL);
	ck_assert_uint_gt(len, strlen(message) + SPOOL_FOOTER_SIZE);
	ck_assert_mem_eq(whole, message, strlen(message));
	ck_assert_mem_eq(whole + len - SPOOL_FOOTER_SIZE, "TERN1 ", 6);
	ck_assert_int_eq(whole[len - 1], '\n');
	free(whole);

	write_message(dir, "m2", path, "sender@x.test", rcpts, 1, 42);
	ck_assert_int_eq(read_envelope(path, &env, &err), 0);
	ck_assert_str_eq(env.sender, "sender@x.test");
	ck_assert_uint_eq(env.nrcpts, 1);
	ck_assert_str_eq(env.rcpts[0], "a@x.test");
	ck_assert_int_eq(env.queued, 42);
	spool_free_envelope(&env);
}
END_TEST

START_TEST(many_recipients)
{
	char dir[PATH_MAX], path[PATH_MAX];
	enum { N = 1000 };
	char **rcpts = calloc(N, sizeof *rcpts);
	struct envelope env;
	int err;

	ck_assert(rcpts != NULL);
	for (int i = 0; i < N; i++) {
		rcpts[i] = malloc(64);
		ck_assert(rcpts[i] != NULL);
		snprintf(rcpts[i], 64, "user%d@example.test", i);
	}
	test_mkdir(dir);
	write_message(dir, "big", path, "s@x.test", rcpts, N, 1);
	ck_assert_int_eq(read_envelope(path, &env, &err), 0);
	ck_assert_uint_eq(env.nrcpts, N);
	for (int i = 0; i < N; i++)
		ck_assert_str_eq(env.rcpts[i], rcpts[i]);
	spool_free_envelope(&env);
	for (int i = 0; i < N; i++)
		free(rcpts[i]);
	free(rcpts);
}
END_TEST

START_TEST(empty_message_and_no_recipients)
{
	char dir[PATH_MAX], path[PATH_MAX];
	struct envelope env;
	int err;

	test_mkdir(dir);
	test_path(path, dir, "empty");
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ck_assert(fd >= 0);
	char *rcpts[] = { "a@x.test" };
	ck_assert_int_eq(spool_write_envelope(fd, 0, 5, "s@x.test", rcpts, 1), 0);
	close(fd);
	ck_assert_int_eq(read_envelope(path, &env, &err), 0);
	ck_assert_uint_eq(env.msglen, 0);
	ck_assert_uint_eq(env.nrcpts, 1);
	spool_free_envelope(&env);
}
END_TEST

START_TEST(torn_files_refused)
{
	char dir[PATH_MAX], path[PATH_MAX];
	char *rcpts[] = { "a@x.test", "b@x.test" };
	struct envelope env;
	struct stat st;
	int err;

	test_mkdir(dir);
	write_message(dir, "m", path, "s@x.test", rcpts, 2, 1);
	ck_assert_int_eq(stat(path, &st), 0);
	off_t whole = st.st_size;

	/* one octet short */
	ck_assert_int_eq(truncate(path, whole - 1), 0);
	ck_assert_int_eq(read_envelope(path, &env, &err), -1);
	ck_assert_int_eq(err, EBADMSG);

	/* every shorter length, down to nothing */
	for (off_t len = whole - 2; len >= 0; len--) {
		ck_assert_int_eq(truncate(path, len), 0);
		int r = read_envelope(path, &env, &err);
		ck_assert_msg(r == -1 && err == EBADMSG, "length %lld: %d errno %d",
			      (long long)len, r, err);
	}

	/* one octet too many */
	write_message(dir, "m", path, "s@x.test", rcpts, 2, 1);
	int fd = open(path, O_WRONLY | O_APPEND);
	ck_assert(fd >= 0);
	ck_assert_int_eq(write(fd, "\n", 1), 1);
	close(fd);
	ck_assert_int_eq(read_envelope(path, &env, &err), -1);
	ck_assert_int_eq(err, EBADMSG);

	/* a whole extra footer's worth of zeros (a file extended by a crash) */
	write_message(dir, "m", path, "s@x.test", rcpts, 2, 1);
	ck_assert_int_eq(truncate(path, whole + SPOOL_FOOTER_SIZE), 0);
	ck_assert_int_eq(read_envelope(path, &env, &err), -1);
	ck_assert_int_eq(err, EBADMSG);

	/* a plain message without any envelope */
	test_write_file(dir, "plain", message);
	test_path(path, dir, "plain");
	ck_assert_int_eq(read_envelope(path, &env, &err), -1);
	ck_assert_int_eq(err, EBADMSG);
}
END_TEST

START_TEST(corrupt_envelope_refused)
{
	char dir[PATH_MAX], path[PATH_MAX];
	char *rcpts[] = { "a@x.test" };
	struct envelope env;
	int err;

	test_mkdir(dir);
	write_message(dir, "m", path, "s@x.test", rcpts, 1, 1);
	/* change "from " into "frob " in place: same size, bad block */
	size_t len;
	char *whole = test_read_file(path, &len);
	ck_assert(whole != NULL);
	char *from = strstr(whole + strlen(message), "from ");
	ck_assert(from != NULL);
	int fd = open(path, O_WRONLY);
	ck_assert(fd >= 0);
	ck_assert_int_eq(pwrite(fd, "frob", 4, from - whole), 4);
	close(fd);
	free(whole);
	ck_assert_int_eq(read_envelope(path, &env, &err), -1);
	ck_assert_int_eq(err, EBADMSG);
}
END_TEST

/* Writes BLOCK and then FOOTER to DIR/NAME. */
static void write_raw(const char *dir, const char *name, char *path, const char *block,
		      const char *footer)
{
	test_path(path, dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert(fd >= 0);
	ck_assert_int_eq(write(fd, block, strlen(block)), (ssize_t)strlen(block));
	ck_assert_int_eq(write(fd, footer, strlen(footer)), (ssize_t)strlen(footer));
	close(fd);
}

/* Footers whose lengths only add up to the file's size past 2^64, or that
 * are not in the writer's fixed format: malformed (EBADMSG), never a read
 * error to retry for ever.  Found by tests/fuzz/spool_fuzz.c. */
START_TEST(footer_lengths_must_fit_the_file)
{
	char dir[PATH_MAX], path[PATH_MAX];
	static const char block[] = "time 1\nfrom a@b.test\n";	/* 21 octets */
	static const char *const footers[] = {
		/* msglen 2^64 - 1, envlen 22: the sum wraps to the size */
		"TERN1 ffffffffffffffff 00000016\n",
		/* the same -1, spelt as sscanf takes it */
		"TERN1 -000000000000001 00000016\n",
		/* a sign and a space where hex digits go */
		"TERN1 +000000000000000 00000015\n",
		"TERN1  000000000000000 00000015\n",
		"TERN1 0000000000000000 +0000015\n",
	};
	struct envelope env;
	int err;

	test_mkdir(dir);
	write_raw(dir, "good", path, block, "TERN1 0000000000000000 00000015\n");
	ck_assert_int_eq(read_envelope(path, &env, &err), 0);
	ck_assert_str_eq(env.sender, "a@b.test");
	spool_free_envelope(&env);
	for (size_t i = 0; i < sizeof footers / sizeof footers[0]; i++) {
		write_raw(dir, "bad", path, block, footers[i]);
		int r = read_envelope(path, &env, &err);
		ck_assert_msg(r == -1 && err == EBADMSG, "%s: %d errno %d", footers[i], r, err);
	}
}
END_TEST

START_TEST(state_round_trip)
{
	char dir[PATH_MAX], spool[PATH_MAX];
	struct rcpt_record in[3], *out = NULL;
	size_t n = 0;

	test_mkdir(dir);
	test_path(spool, dir, "spool");
	ck_assert_int_eq(spool_create(spool), 0);
	memset(in, 0, sizeof in);
	in[0] = (struct rcpt_record){ .addr = "a@x.test", .orcpt = "a@x.test",
				      .state = RCPT_PENDING };
	in[1] = (struct rcpt_record){ .addr = "u@y.test", .orcpt = "list@x.test",
				      .state = RCPT_DEFERRED, .next_try = 1700000123,
				      .attempts = 3, .hops = 2, .warned = true };
	snprintf(in[1].last_error, sizeof in[1].last_error,
		 "4.4.1 connect\tto\r\n[127.0.0.1]:25\nrefused");
	in[2] = (struct rcpt_record){ .addr = "b@z.test", .orcpt = "b@z.test",
				      .state = RCPT_BOUNCED, .attempts = 1 };
	snprintf(in[2].last_error, sizeof in[2].last_error, "5.1.1 no such user");
	ck_assert_int_eq(spool_write_state(spool, "ID1", in, 3), 0);
	ck_assert_int_eq(spool_read_state(spool, "ID1", &out, &n), 1);
	ck_assert_uint_eq(n, 3);
	for (size_t i = 0; i < 3; i++) {
		ck_assert_str_eq(out[i].addr, in[i].addr);
		ck_assert_str_eq(out[i].orcpt, in[i].orcpt);
		ck_assert_int_eq(out[i].state, in[i].state);
		ck_assert_int_eq(out[i].next_try, in[i].next_try);
		ck_assert_uint_eq(out[i].attempts, in[i].attempts);
		ck_assert_uint_eq(out[i].hops, in[i].hops);
		ck_assert_int_eq(out[i].warned, in[i].warned);
	}
	ck_assert_str_eq(out[0].last_error, "");
	ck_assert_str_eq(out[2].last_error, "5.1.1 no such user");
	/* tabs and line ends are gone, the words are all there */
	ck_assert(strpbrk(out[1].last_error, "\t\r\n") == NULL);
	ck_assert_ptr_nonnull(strstr(out[1].last_error, "4.4.1 connect"));
	ck_assert_ptr_nonnull(strstr(out[1].last_error, "[127.0.0.1]:25"));
	ck_assert_ptr_nonnull(strstr(out[1].last_error, "refused"));
	spool_free_state(out, n);

	/* rewriting replaces */
	in[0].state = RCPT_DELIVERED;
	ck_assert_int_eq(spool_write_state(spool, "ID1", in, 1), 0);
	ck_assert_int_eq(spool_read_state(spool, "ID1", &out, &n), 1);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(out[0].state, RCPT_DELIVERED);
	spool_free_state(out, n);
}
END_TEST

START_TEST(state_every_kind)
{
	char dir[PATH_MAX], spool[PATH_MAX];
	enum rcpt_state all[] = { RCPT_PENDING, RCPT_DEFERRED, RCPT_HELD, RCPT_DELIVERED,
				  RCPT_FAILED, RCPT_BOUNCED };
	struct rcpt_record in[6], *out;
	size_t n;

	test_mkdir(dir);
	test_path(spool, dir, "spool");
	ck_assert_int_eq(spool_create(spool), 0);
	memset(in, 0, sizeof in);
	for (size_t i = 0; i < 6; i++) {
		in[i].addr = "a@x.test";
		in[i].orcpt = "a@x.test";
		in[i].state = all[i];
	}
	ck_assert_int_eq(spool_write_state(spool, "K", in, 6), 0);
	ck_assert_int_eq(spool_read_state(spool, "K", &out, &n), 1);
	ck_assert_uint_eq(n, 6);
	for (size_t i = 0; i < 6; i++)
		ck_assert_int_eq(out[i].state, all[i]);
	spool_free_state(out, n);
	ck_assert_str_eq(rcpt_state_name(RCPT_PENDING), "pending");
	ck_assert_str_eq(rcpt_state_name(RCPT_DEFERRED), "deferred");
	ck_assert_str_eq(rcpt_state_name(RCPT_HELD), "held");
	ck_assert_str_eq(rcpt_state_name(RCPT_DELIVERED), "delivered");
	ck_assert_str_eq(rcpt_state_name(RCPT_BOUNCED), "bounced");
}
END_TEST

START_TEST(long_error_is_cut_not_overflowed)
{
	char dir[PATH_MAX], spool[PATH_MAX];
	struct rcpt_record in, *out;
	size_t n;

	test_mkdir(dir);
	test_path(spool, dir, "spool");
	ck_assert_int_eq(spool_create(spool), 0);
	memset(&in, 0, sizeof in);
	in.addr = "a@x.test";
	in.orcpt = "a@x.test";
	in.state = RCPT_DEFERRED;
	memset(in.last_error, 'e', sizeof in.last_error - 1);
	ck_assert_int_eq(spool_write_state(spool, "L", &in, 1), 0);
	ck_assert_int_eq(spool_read_state(spool, "L", &out, &n), 1);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(strlen(out[0].last_error), sizeof in.last_error - 1);
	spool_free_state(out, n);
}
END_TEST

START_TEST(missing_state)
{
	char dir[PATH_MAX], spool[PATH_MAX];
	struct rcpt_record *out = NULL;
	size_t n = 77;

	test_mkdir(dir);
	test_path(spool, dir, "spool");
	ck_assert_int_eq(spool_create(spool), 0);
	ck_assert_int_eq(spool_read_state(spool, "NOSUCH", &out, &n), 0);
}
END_TEST

/* Rewrites state/ID through EDIT, which changes the file's text in place. */
static void edit_state(const char *spool, const char *id, void (*edit)(char *text, size_t *len))
{
	char state[PATH_MAX], path[PATH_MAX];
	size_t len;

	test_path(state, spool, "state");
	test_path(path, state, id);
	char *text = test_read_file(path, &len);
	ck_assert(text != NULL);
	edit(text, &len);
	text[len] = '\0';
	test_write_file(state, id, text);
	free(text);
}

static void drop_final_newline(char *text, size_t *len)
{
	ck_assert(*len > 0 && text[*len - 1] == '\n');
	(*len)--;
}

static void cut_last_line_short(char *text, size_t *len)
{
	/* keep the last record only up to its second tab */
	char *last = text + *len - 1;
	while (last > text && last[-1] != '\n')
		last--;
	char *tab = strchr(last, '\t');
	ck_assert(tab != NULL);
	tab = strchr(tab + 1, '\t');
	ck_assert(tab != NULL);
	tab[0] = '\n';
	*len = (size_t)(tab + 1 - text);
}

static void unknown_state_name(char *text, size_t *len)
{
	char *p = strstr(text, "\npending\t");
	ck_assert(p != NULL);
	memcpy(p + 1, "pendinx", 7);
	(void)len;
}

static void bad_header(char *text, size_t *len)
{
	text[0] = 'T';
	(void)len;
}

START_TEST(bad_state_refused)
{
	char dir[PATH_MAX], spool[PATH_MAX], state[PATH_MAX];
	struct rcpt_record in = { .addr = "a@x.test", .orcpt = "a@x.test",
				  .state = RCPT_PENDING };
	struct rcpt_record *out = NULL;
	size_t n = 0;
	static void (*const edits[])(char *, size_t *) = {
		drop_final_newline, cut_last_line_short, unknown_state_name, bad_header,
	};

	test_mkdir(dir);
	test_path(spool, dir, "spool");
	ck_assert_int_eq(spool_create(spool), 0);
	test_path(state, spool, "state");
	test_write_file(state, "X0", "garbage\n");
	ck_assert_int_eq(spool_read_state(spool, "X0", &out, &n), -1);
	test_write_file(state, "X1", "");
	ck_assert_int_eq(spool_read_state(spool, "X1", &out, &n), -1);
	for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
		ck_assert_int_eq(spool_write_state(spool, "X2", &in, 1), 0);
		ck_assert_int_eq(spool_read_state(spool, "X2", &out, &n), 1);
		spool_free_state(out, n);
		edit_state(spool, "X2", edits[i]);
		ck_assert_msg(spool_read_state(spool, "X2", &out, &n) == -1, "edit %zu read", i);
		ck_assert_int_eq(errno, EBADMSG);
	}
	/* no records at all is a whole file too */
	ck_assert_int_eq(spool_write_state(spool, "X3", &in, 0), 0);
	ck_assert_int_eq(spool_read_state(spool, "X3", &out, &n), 1);
	ck_assert_uint_eq(n, 0);
	spool_free_state(out, n);
}
END_TEST

START_TEST(state_that_is_not_a_file_is_refused_at_once)
{
	char dir[PATH_MAX], spool[PATH_MAX], state[PATH_MAX], path[PATH_MAX], real[PATH_MAX];
	struct rcpt_record in = { .addr = "a@x.test", .orcpt = "a@x.test",
				  .state = RCPT_PENDING };
	struct rcpt_record *out = NULL;
	size_t n = 0;

	test_mkdir(dir);
	test_path(spool, dir, "spool");
	ck_assert_int_eq(spool_create(spool), 0);
	test_path(state, spool, SPOOL_STATE);
	test_path(path, state, "Fifo");
	ck_assert_int_eq(mkfifo(path, 0600), 0);
	ck_assert_int_eq(spool_read_state(spool, "Fifo", &out, &n), -1);	/* no hang */
	ck_assert_int_eq(errno, EBADMSG);
	/* a symbolic link to a good state file is not read either */
	ck_assert_int_eq(spool_write_state(spool, "Real", &in, 1), 0);
	test_path(real, state, "Real");
	test_path(path, state, "Link");
	ck_assert_int_eq(symlink(real, path), 0);
	ck_assert_int_eq(spool_read_state(spool, "Link", &out, &n), -1);
	ck_assert_int_eq(errno, EBADMSG);
}
END_TEST

START_TEST(spool_open_takes_only_regular_files)
{
	char dir[PATH_MAX], path[PATH_MAX], file[PATH_MAX];

	test_mkdir(dir);
	test_write_file(dir, "file", "x\n");
	test_path(file, dir, "file");
	int fd = spool_open(file);
	ck_assert_int_ge(fd, 0);
	close(fd);
	test_path(path, dir, "fifo");
	ck_assert_int_eq(mkfifo(path, 0600), 0);
	ck_assert_int_eq(spool_open(path), SPOOL_NOT_REGULAR);
	test_path(path, dir, "link");
	ck_assert_int_eq(symlink(file, path), 0);
	ck_assert_int_eq(spool_open(path), SPOOL_NOT_REGULAR);
	ck_assert_int_eq(spool_open(dir), SPOOL_NOT_REGULAR);
	test_path(path, dir, "missing");
	ck_assert_int_eq(spool_open(path), -1);
	ck_assert_int_eq(errno, ENOENT);
}
END_TEST

START_TEST(envelope_too_large_is_not_a_write_error)
{
	char dir[PATH_MAX], path[PATH_MAX];
	size_t len = SPOOL_ENVELOPE_MAX + 1;
	char *sender = malloc(len + 1);

	ck_assert_ptr_nonnull(sender);
	memset(sender, 'a', len);
	sender[len] = '\0';
	test_mkdir(dir);
	test_path(path, dir, "m");
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	errno = 0;
	ck_assert_int_eq(spool_write_envelope(fd, 0, 1700000000, sender, NULL, 0), -1);
	ck_assert_int_eq(errno, EMSGSIZE);	/* never EFBIG, which is a full file */
	struct stat st;
	ck_assert_int_eq(fstat(fd, &st), 0);
	ck_assert_int_eq(st.st_size, 0);
	close(fd);
	free(sender);
}
END_TEST

/* A FIFO or another file's hard link at the temporary name is replaced,
 * never written through: a FIFO would hang the writer, a link truncate
 * the other file. */
START_TEST(atomic_replace_makes_its_temporary_file_anew)
{
	char dir[PATH_MAX], path[PATH_MAX], tmp[PATH_MAX], other[PATH_MAX];
	size_t len = 200000, got;
	char *big = malloc(len);

	ck_assert_ptr_nonnull(big);
	memset(big, 'x', len);
	test_mkdir(dir);
	test_path(path, dir, "target");
	test_path(tmp, dir, "target.tmp");
	ck_assert_int_eq(mkfifo(tmp, 0600), 0);
	alarm(10);	/* a hang fails the test instead of stalling it */
	ck_assert_int_eq(atomic_replace(path, NULL, big, len, 0600), 0);
	alarm(0);
	char *text = test_read_file(path, &got);
	ck_assert_uint_eq(got, len);
	free(text);
	test_path(other, dir, "other");
	FILE *f = fopen(other, "w");
	ck_assert_ptr_nonnull(f);
	fputs("keep me\n", f);
	fclose(f);
	ck_assert_int_eq(link(other, tmp), 0);
	ck_assert_int_eq(atomic_replace(path, NULL, "new\n", 4, 0600), 0);
	text = test_read_file(other, &got);
	ck_assert_str_eq(text, "keep me\n");
	free(text);
	free(big);
}
END_TEST

START_TEST(atomic_replace_is_whole_and_leaves_nothing)
{
	char dir[PATH_MAX], path[PATH_MAX], tmp[PATH_MAX], missing[PATH_MAX];
	struct stat st;
	size_t len;

	test_mkdir(dir);
	test_path(path, dir, "target");
	test_path(tmp, dir, "target.tmp");
	ck_assert_int_eq(atomic_replace(path, NULL, "one\n", 4, 0640), 0);
	char *text = test_read_file(path, &len);
	ck_assert_str_eq(text, "one\n");
	free(text);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0640);	/* exactly, whatever the umask */
	ck_assert_int_eq(access(tmp, F_OK), -1);
	/* again, by way of a temporary name of the caller's */
	char mine[PATH_MAX];
	test_path(mine, dir, "tmp.mine");
	ck_assert_int_eq(atomic_replace(path, mine, "two\n", 4, 0600), 0);
	text = test_read_file(path, &len);
	ck_assert_str_eq(text, "two\n");
	free(text);
	ck_assert_int_eq(access(mine, F_OK), -1);
	/* begun and abandoned: the target stays, the temporary file goes */
	struct atomic_file f;
	ck_assert_int_eq(atomic_begin(&f, path, NULL, 0600), 0);
	ck_assert_int_eq(write(f.fd, "three\n", 6), 6);
	atomic_abort(&f);
	text = test_read_file(path, &len);
	ck_assert_str_eq(text, "two\n");
	free(text);
	ck_assert_int_eq(access(tmp, F_OK), -1);
	/* a bare name lands in the current folder */
	char cwd[PATH_MAX];
	ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
	ck_assert_int_eq(chdir(dir), 0);
	ck_assert_int_eq(atomic_replace("bare", NULL, "b\n", 2, 0600), 0);
	ck_assert_int_eq(chdir(cwd), 0);
	char bare[PATH_MAX];
	test_path(bare, dir, "bare");
	ck_assert_int_eq(access(bare, F_OK), 0);
	/* a folder that is not there: an error, nothing made */
	test_path(missing, dir, "no/such/target");
	ck_assert_int_eq(atomic_replace(missing, NULL, "x", 1, 0600), -1);
	ck_assert_int_eq(errno, ENOENT);
}
END_TEST

Suite *spool_suite(void)
{
	Suite *s = suite_create("spool");
	TCase *tc = tcase_create("files");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, create_makes_the_layout);
	tcase_add_test(tc, envelope_round_trip);
	tcase_add_test(tc, many_recipients);
	tcase_add_test(tc, empty_message_and_no_recipients);
	tcase_add_test(tc, torn_files_refused);
	tcase_add_test(tc, corrupt_envelope_refused);
	tcase_add_test(tc, footer_lengths_must_fit_the_file);
	tcase_add_test(tc, state_round_trip);
	tcase_add_test(tc, state_every_kind);
	tcase_add_test(tc, long_error_is_cut_not_overflowed);
	tcase_add_test(tc, missing_state);
	tcase_add_test(tc, bad_state_refused);
	tcase_add_test(tc, state_that_is_not_a_file_is_refused_at_once);
	tcase_add_test(tc, spool_open_takes_only_regular_files);
	tcase_add_test(tc, envelope_too_large_is_not_a_write_error);
	tcase_add_test(tc, atomic_replace_is_whole_and_leaves_nothing);
	tcase_add_test(tc, atomic_replace_makes_its_temporary_file_anew);
	suite_add_tcase(s, tc);
	return s;
}
