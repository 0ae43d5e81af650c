/* ternctl passwd: sets one AUTH password in the users table and compiles
 * the tables, or changes nothing. */
#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "atomic.h"
#include "table.h"
#include "ternctl.h"
#include "ternctl_users.h"
#include "util.h"

/* octets, the line end excluded: what libcrypt hashes */
#define PASSWORD_MAX (CRYPT_MAX_PASSPHRASE_SIZE - 1)
#define USERS_TEXT_MAX (16L << 20)	/* a users file larger is refused */
#define INSTALLED_GROUP "tern-smtpd"	/* reads users where installed */

enum line_result { LINE_OK, LINE_EOF, LINE_TOO_LONG, LINE_NUL, LINE_INTERRUPTED, LINE_ERROR };

/* One line from FD into BUF (PASSWORD_MAX + 2: a CR, a NUL), its LF and a
 * CR before it cut, read an octet at a time so nothing after the line is
 * taken. */
static enum line_result read_line(int fd, char *buf, size_t size, size_t *len)
{
	size_t n = 0;

	for (;;) {
		char ch;
		ssize_t r = read(fd, &ch, 1);
		if (r < 0)
			return errno == EINTR ? LINE_INTERRUPTED : LINE_ERROR;
		if (r == 0 && n == 0)
			return LINE_EOF;
		if (r == 0 || ch == '\n')
			break;
		if (ch == '\0')
			return LINE_NUL;
		if (n + 1 >= size)
			return LINE_TOO_LONG;
		buf[n++] = ch;
	}
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	buf[n] = '\0';
	*len = n;
	return n > PASSWORD_MAX ? LINE_TOO_LONG : LINE_OK;
}

static void wake(int sig)
{
	(void)sig;
}

static const int stop_signals[] = { SIGINT, SIGQUIT, SIGTERM, SIGHUP, SIGTSTP };
enum { STOP_SIGNALS = sizeof stop_signals / sizeof stop_signals[0] };

/* As read_line, from the terminal FD with its echo off.  A signal that
 * would stop or end ternctl ends the read instead (LINE_INTERRUPTED), so
 * the terminal always gets its echo back. */
static enum line_result read_hidden(int fd, const char *prompt, char *buf, size_t size,
				    size_t *len)
{
	struct termios saved, quiet;
	struct sigaction on_stop = { .sa_handler = wake }, old[STOP_SIGNALS];

	if (tcgetattr(fd, &saved) < 0)
		return LINE_ERROR;
	sigemptyset(&on_stop.sa_mask);	/* no SA_RESTART: read returns EINTR */
	for (size_t i = 0; i < STOP_SIGNALS; i++)
		sigaction(stop_signals[i], &on_stop, &old[i]);
	quiet = saved;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	quiet.c_lflag |= ECHONL;
	enum line_result r = LINE_ERROR;
	/* the prompt after the flush: what is typed after it is kept */
	if (tcsetattr(fd, TCSAFLUSH, &quiet) == 0) {
		fprintf(stderr, "%s", prompt);
		fflush(stderr);
		r = read_line(fd, buf, size, len);
		tcsetattr(fd, TCSAFLUSH, &saved);
	}
	if (r == LINE_INTERRUPTED || r == LINE_EOF)
		fprintf(stderr, "\n");
	for (size_t i = 0; i < STOP_SIGNALS; i++)
		sigaction(stop_signals[i], &old[i], NULL);
	return r;
}

static int line_problem(enum line_result r)
{
	switch (r) {
	case LINE_OK: return CTL_OK;
	case LINE_EOF: fprintf(stderr, "ternctl passwd: no password given\n"); break;
	case LINE_TOO_LONG:
		fprintf(stderr, "ternctl passwd: password longer than %d octets\n", PASSWORD_MAX);
		break;
	case LINE_NUL: fprintf(stderr, "ternctl passwd: password holds a NUL octet\n"); break;
	case LINE_INTERRUPTED: fprintf(stderr, "ternctl passwd: interrupted\n"); break;
	case LINE_ERROR:
		fprintf(stderr, "ternctl passwd: standard input: %s\n", strerror(errno));
		return CTL_TEMPORARY;
	}
	return CTL_REFUSED;
}

/* The password into PW (PASSWORD_MAX + 1): asked twice on a terminal,
 * else one line of standard input. */
static int read_password(const char *name, char *pw, size_t size)
{
	char again[PASSWORD_MAX + 2], prompt[USERS_NAME_MAX + 32];
	size_t len, len2;
	int r;

	if (!isatty(STDIN_FILENO))
		return line_problem(read_line(STDIN_FILENO, pw, size, &len));
	snprintf(prompt, sizeof prompt, "New password for %s: ", name);
	r = line_problem(read_hidden(STDIN_FILENO, prompt, pw, size, &len));
	if (r != CTL_OK || len == 0)
		return r;
	r = line_problem(read_hidden(STDIN_FILENO, "Again: ", again, sizeof again, &len2));
	if (r == CTL_OK && (len2 != len || memcmp(again, pw, len) != 0)) {
		fprintf(stderr, "ternctl passwd: the passwords differ\n");
		r = CTL_REFUSED;
	}
	explicit_bzero(again, sizeof again);
	return r;
}

/* yescrypt, or SHA-512 crypt where this libcrypt has no yescrypt. */
static int hash_password(const char *pw, char *out, size_t outsize)
{
	static const char *const methods[] = { "$y$", "$6$" };
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data *data = calloc(1, sizeof *data);
	int r = -1;

	if (data == NULL)
		return -1;
	for (size_t i = 0; r < 0 && i < sizeof methods / sizeof methods[0]; i++) {
		if (crypt_gensalt_rn(methods[i], 0, NULL, 0, setting, sizeof setting) == NULL)
			continue;
		const char *hash = crypt_rn(pw, setting, data, sizeof *data);
		if (hash != NULL && hash[0] == '$' && str_copy(out, outsize, hash))
			r = 0;
	}
	explicit_bzero(data, sizeof *data);
	free(data);
	return r;
}

/* What users holds now, and whose it is. */
struct users_file {
	char path[PATH_MAX];
	bool exists;
	char *text;
	size_t len;
	uid_t uid;
	gid_t gid;
	mode_t mode;
};

/* A new users: the invoking user's in an instance; where installed,
 * readable by tern-smtpd's group when there is one. */
static void new_owner(const struct tern_conf *conf, struct users_file *u)
{
	struct group *g = conf->instance ? NULL : getgrnam(INSTALLED_GROUP);

	u->uid = geteuid();
	u->gid = getegid();
	u->mode = 0600;
	if (g != NULL) {
		u->uid = 0;
		u->gid = g->gr_gid;
		u->mode = 0640;
	}
}

static int load_users(const struct tern_conf *conf, struct users_file *u)
{
	struct stat st;

	if (conf_path(conf, "users", u->path, sizeof u->path) < 0) {
		fprintf(stderr, "ternctl passwd: users: %s\n", strerror(ENAMETOOLONG));
		return CTL_REFUSED;
	}
	int fd = open(u->path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		new_owner(conf, u);
		return CTL_OK;
	}
	if (fd < 0 && errno == ELOOP) {
		fprintf(stderr, "ternctl passwd: %s: a symbolic link; not replacing it\n", u->path);
		return CTL_REFUSED;
	}
	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "ternctl passwd: %s: %s\n", u->path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return CTL_TEMPORARY;
	}
	int r = CTL_OK;
	if (!S_ISREG(st.st_mode) || st.st_size > USERS_TEXT_MAX) {
		fprintf(stderr, "ternctl passwd: %s: %s\n", u->path,
			S_ISREG(st.st_mode) ? "too large" : "not a regular file");
		r = CTL_REFUSED;
	} else if ((u->text = malloc((size_t)st.st_size + 1)) == NULL) {
		fprintf(stderr, "ternctl passwd: %s\n", strerror(ENOMEM));
		r = CTL_TEMPORARY;
	} else {
		ssize_t got = read_full(fd, u->text, (size_t)st.st_size);
		if (got != st.st_size) {
			fprintf(stderr, "ternctl passwd: %s: %s\n", u->path,
				got < 0 ? strerror(errno) : "changed while it was read");
			r = CTL_TEMPORARY;
		}
	}
	close(fd);
	u->exists = true;
	u->len = (size_t)st.st_size;
	u->uid = st.st_uid;
	u->gid = st.st_gid;
	u->mode = st.st_mode & 07777;
	return r;
}

/* Replaces users by TEXT, with U's owner, group and mode. */
static int store_users(const struct users_file *u, const char *text, size_t len)
{
	struct atomic_file f;

	if (atomic_begin(&f, u->path, NULL, 0600) < 0)
		return -1;
	if (write_all(f.fd, text, len) < 0 || fchown(f.fd, u->uid, u->gid) < 0 ||
	    fchmod(f.fd, u->mode) < 0) {
		atomic_abort(&f);
		return -1;
	}
	return atomic_commit(&f);
}

/* The tables did not compile: users (in DIR) goes back to what it was. */
static int restore_users(const struct users_file *u, const char *dir)
{
	if (u->exists)
		return store_users(u, u->text, u->len);
	if (unlink(u->path) < 0)
		return -1;
	return fsync_dir(dir);
}

static int set_password(const struct tern_conf *conf, const char *name, const char *hash)
{
	struct users_file u = { .exists = false };
	char *text = NULL;
	size_t len;

	int r = load_users(conf, &u);
	if (r != CTL_OK)
		goto out;
	size_t size = users_rewrite_size(u.len, name, hash);
	if ((text = malloc(size)) == NULL ||
	    users_rewrite(u.text ? u.text : "", u.len, name, hash, text, size, &len) < 0) {
		fprintf(stderr, "ternctl passwd: %s\n", strerror(ENOMEM));
		r = CTL_TEMPORARY;
		goto out;
	}
	if (store_users(&u, text, len) < 0) {
		fprintf(stderr, "ternctl passwd: %s: %s\n", u.path, strerror(errno));
		r = CTL_TEMPORARY;
		goto out;
	}
	int compiled = table_compile_all(conf, NULL, NULL);
	if (compiled != 0) {
		r = compiled < 0 ? CTL_TEMPORARY : CTL_REFUSED;
		if (restore_users(&u, conf->dir) == 0) {
			fprintf(stderr, "ternctl passwd: the tables did not compile; users and "
				"every cdb are as they were\n");
		} else {
			fprintf(stderr, "ternctl passwd: the tables did not compile, and %s could "
				"not be put back (%s): it has the new password, users.cdb the old "
				"one\n", u.path, strerror(errno));
			r = CTL_TEMPORARY;
		}
	}
out:
	free(u.text);
	free(text);
	return r;
}

/* One ternctl passwd at a time: each rewrites users from what it read. */
static int lock_folder(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd >= 0 && flock(fd, LOCK_EX) == 0)
		return fd;
	fprintf(stderr, "ternctl passwd: cannot lock %s: %s\n", dir, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

/* Safe to show on a terminal as it is. */
static bool printable(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < ' ' || *s == 0x7F)
			return false;
	return true;
}

int cmd_passwd(struct ctl *ctl)
{
	char pw[PASSWORD_MAX + 2], hash[CRYPT_OUTPUT_SIZE];
	struct tern_conf conf;
	const char *why;

	if (ctl->argc != 1 || ctl->argv[0][0] == '-') {
		fprintf(stderr, "usage: ternctl passwd NAME\n");
		return CTL_USAGE;
	}
	const char *name = ctl->argv[0];
	if (!users_name_valid(name, &why)) {
		if (printable(name))
			fprintf(stderr, "ternctl passwd: user name '%s' %s\n", name, why);
		else
			fprintf(stderr, "ternctl passwd: the user name %s\n", why);
		return CTL_REFUSED;
	}
	if (ctl_load_conf(ctl, &conf) < 0)
		return CTL_REFUSED;
	int r = read_password(name, pw, sizeof pw);
	if (r == CTL_OK && pw[0] == '\0') {
		fprintf(stderr, "ternctl passwd: empty password refused; nothing changed\n");
		r = CTL_REFUSED;
	}
	if (r == CTL_OK && hash_password(pw, hash, sizeof hash) < 0) {
		fprintf(stderr, "ternctl passwd: cannot hash the password: %s\n", strerror(errno));
		r = CTL_TEMPORARY;
	}
	explicit_bzero(pw, sizeof pw);
	if (r != CTL_OK)
		return r;
	int lock = lock_folder(conf.dir);
	if (lock < 0)
		return CTL_TEMPORARY;
	r = set_password(&conf, name, hash);
	close(lock);
	if (r == CTL_OK)
		printf("%s: password set\n", name);
	return r;
}
