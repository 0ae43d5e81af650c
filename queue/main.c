/* tern-queue: takes one message on fd 0 and its envelope on fd 1 (the
 * qmail-queue protocol), and commits both to the spool atomically:
 * write tmp/ID, fsync, link to incoming/ID, fsync incoming/, unlink tmp/ID.
 * It exits 0 only after that; on any failure it removes tmp/ID. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "conf.h"
#include "log.h"
#include "spool.h"
#include "util.h"

/* Exit codes, as notqmail's qmail-queue(8) documents them. */
enum {
	EXIT_QUEUED = 0,
	EXIT_ADDRESS_TOO_LONG = 11,
	EXIT_REFUSED_PERM = 31,
	EXIT_NO_MEMORY = 51,
	EXIT_TIMEOUT = 52,
	EXIT_WRITE_ERROR = 53,
	EXIT_READ_ERROR = 54,
	EXIT_CONFIG = 55,
	EXIT_QUEUE_DIR = 62,
	EXIT_REFUSED_TEMP = 71,
	EXIT_BUG = 81,
	EXIT_BAD_LEAD_BYTE = 91,
};

#define QUEUE_TIMEOUT (24 * 3600)
#define ENVELOPE_ADDRESS_MAX 1003
#define COPY_BUFFER (64 * 1024)

struct job {
	char spool[PATH_MAX];
	char id[QID_MAX];
	char tmp_path[PATH_MAX];
	int fd;
};

static struct job *current_job;	/* only for the alarm handler's cleanup */

static void on_alarm(int sig)
{
	(void)sig;
	if (current_job != NULL && current_job->tmp_path[0] != '\0')
		unlink(current_job->tmp_path);
	_exit(EXIT_TIMEOUT);
}

/* A queue-directory operation's failure: a full disk is 53, as for any
 * write; anything else is the directory's (62). */
static int dir_error(int error)
{
	return error == ENOSPC || error == EDQUOT ? EXIT_WRITE_ERROR : EXIT_QUEUE_DIR;
}

static int fail(struct job *job, int code, const char *what)
{
	int saved = errno;
	if (job->tmp_path[0] != '\0')
		unlink(job->tmp_path);
	if (what != NULL)
		log_event("error", "id=%s what=%s error=%s", job->id, what,
			  saved ? strerror(saved) : "none");
	return code;
}

static int copy_message(struct job *job, uint64_t *size)
{
	char *buf = malloc(COPY_BUFFER);
	if (buf == NULL)
		return fail(job, EXIT_NO_MEMORY, "malloc");
	*size = 0;
	for (;;) {
		ssize_t n = read(0, buf, COPY_BUFFER);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			free(buf);
			return fail(job, EXIT_READ_ERROR, "read message");
		}
		if (n == 0)
			break;
		if (write_all(job->fd, buf, (size_t)n) < 0) {
			free(buf);
			return fail(job, EXIT_WRITE_ERROR, "write message");
		}
		*size += (uint64_t)n;
	}
	free(buf);
	return EXIT_QUEUED;
}

struct envelope_in {
	char *data;
	size_t len, cap;
	char *sender;
	char **rcpts;
	size_t nrcpts;
};

static int read_envelope(struct job *job, struct envelope_in *e)
{
	e->cap = 4096;
	e->data = malloc(e->cap);
	if (e->data == NULL)
		return fail(job, EXIT_NO_MEMORY, NULL);
	for (;;) {
		if (e->len == e->cap) {
			if (e->cap >= SPOOL_ENVELOPE_MAX)
				return fail(job, EXIT_REFUSED_PERM, "envelope too large");
			e->cap *= 2;
			char *more = realloc(e->data, e->cap);
			if (more == NULL)
				return fail(job, EXIT_NO_MEMORY, NULL);
			e->data = more;
		}
		ssize_t n = read(1, e->data + e->len, e->cap - e->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return fail(job, EXIT_READ_ERROR, "read envelope");
		if (n == 0)
			break;
		e->len += (size_t)n;
		if (e->len >= 2 && e->data[e->len - 1] == '\0' && e->data[e->len - 2] == '\0')
			break;	/* possibly the end; verified below */
	}
	return EXIT_QUEUED;
}

/* CR and LF would split the spool's lines, TAB its state fields; no
 * address of RFC 5321 has any of them. */
static bool has_control_character(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return true;
	return false;
}

/* Splits F sender \0 (T rcpt \0)* \0 into its parts. */
static int parse_envelope(struct job *job, struct envelope_in *e)
{
	size_t pos = 0, cap = 8;

	e->rcpts = malloc(cap * sizeof *e->rcpts);
	if (e->rcpts == NULL)
		return fail(job, EXIT_NO_MEMORY, NULL);
	for (bool first = true;; first = false) {
		if (pos >= e->len)
			return fail(job, EXIT_READ_ERROR, "envelope ends early");
		char lead = e->data[pos];
		if (lead == '\0' && !first) {
			if (pos + 1 != e->len)
				return fail(job, EXIT_READ_ERROR, "bytes after the envelope");
			return EXIT_QUEUED;
		}
		if ((first && lead != 'F') || (!first && lead != 'T'))
			return fail(job, EXIT_BAD_LEAD_BYTE, "envelope lead byte");
		char *item = e->data + pos + 1;
		char *nul = memchr(item, '\0', e->len - pos - 1);
		if (nul == NULL)
			return fail(job, EXIT_READ_ERROR, "envelope ends early");
		size_t len = (size_t)(nul - item);
		if (len >= ENVELOPE_ADDRESS_MAX)
			return fail(job, EXIT_ADDRESS_TOO_LONG, "address too long");
		if (has_control_character(item, len))
			return fail(job, EXIT_REFUSED_PERM, "control character in an address");
		if (!utf8_valid(item, len, NULL)) {
			errno = 0;
			return fail(job, EXIT_REFUSED_PERM, "address not UTF-8");
		}
		if (first) {
			e->sender = item;
		} else {
			if (e->nrcpts == SPOOL_RCPTS_MAX)
				return fail(job, EXIT_REFUSED_PERM, "too many recipients");
			if (e->nrcpts == cap) {
				cap *= 2;
				char **more = realloc(e->rcpts, cap * sizeof *more);
				if (more == NULL)
					return fail(job, EXIT_NO_MEMORY, NULL);
				e->rcpts = more;
			}
			e->rcpts[e->nrcpts++] = item;
		}
		pos += len + 2;
	}
}

static int choose_id(struct job *job)
{
	const char *given = getenv("TERN_QID");

	if (given == NULL) {
		qid_make(job->id);
		return EXIT_QUEUED;
	}
	if (!qid_valid(given)) {
		str_copy(job->id, sizeof job->id, "-");
		errno = 0;
		return fail(job, EXIT_REFUSED_TEMP, "malformed TERN_QID");
	}
	str_copy(job->id, sizeof job->id, given);
	return EXIT_QUEUED;
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

static int commit(struct job *job)
{
	char incoming[PATH_MAX], dir[PATH_MAX];

	if (fsync(job->fd) < 0)
		return fail(job, EXIT_WRITE_ERROR, "fsync");
	if (close(job->fd) < 0) {
		job->fd = -1;
		return fail(job, EXIT_WRITE_ERROR, "close");
	}
	job->fd = -1;
	if (spool_path(incoming, sizeof incoming, job->spool, SPOOL_INCOMING, job->id) < 0 ||
	    spool_path(dir, sizeof dir, job->spool, SPOOL_INCOMING, NULL) < 0)
		return fail(job, EXIT_QUEUE_DIR, "path");
	if (id_taken(job->spool, job->id)) {
		errno = EEXIST;
		return fail(job, EXIT_REFUSED_TEMP, "queue id taken");
	}
	if (link(job->tmp_path, incoming) < 0)
		return fail(job, errno == EEXIST ? EXIT_REFUSED_TEMP : dir_error(errno), "link");
	if (fsync_dir(dir) < 0) {
		int saved = errno;
		unlink(incoming);
		errno = saved;
		return fail(job, EXIT_WRITE_ERROR, "fsync incoming");
	}
	unlink(job->tmp_path);
	job->tmp_path[0] = '\0';
	return EXIT_QUEUED;
}

static int run(struct job *job, const char *config_path)
{
	struct tern_conf conf;
	char err[CONF_ERROR_MAX];
	struct envelope_in env = { 0 };
	uint64_t size = 0;
	int r;

	if (conf_load(&conf, config_path, err, sizeof err) < 0) {
		fprintf(stderr, "tern-queue: %s\n", err);
		return EXIT_CONFIG;
	}
	str_copy(job->spool, sizeof job->spool, conf.spool);
	if ((r = choose_id(job)) != EXIT_QUEUED)
		return r;
	if (spool_path(job->tmp_path, sizeof job->tmp_path, job->spool, SPOOL_TMP, job->id) < 0) {
		job->tmp_path[0] = '\0';
		return fail(job, EXIT_QUEUE_DIR, "path");
	}
	job->fd = open(job->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (job->fd < 0) {
		int code = errno == EEXIST ? EXIT_REFUSED_TEMP : dir_error(errno);
		job->tmp_path[0] = '\0';
		return fail(job, code, "create tmp file");
	}
	if ((r = copy_message(job, &size)) != EXIT_QUEUED)
		goto out;
	if ((r = read_envelope(job, &env)) != EXIT_QUEUED)
		goto out;
	if ((r = parse_envelope(job, &env)) != EXIT_QUEUED)
		goto out;
	if (spool_write_envelope(job->fd, size, time(NULL), env.sender, env.rcpts,
				 env.nrcpts) < 0) {
		r = fail(job, errno == EMSGSIZE ? EXIT_REFUSED_PERM
			      : errno == ENOMEM ? EXIT_NO_MEMORY : EXIT_WRITE_ERROR,
			 errno == EMSGSIZE ? "envelope too large" : "write envelope");
		goto out;
	}
	r = commit(job);
	if (r == EXIT_QUEUED)
		spool_poke(job->spool);
out:
	if (job->fd >= 0)
		close(job->fd);
	free(env.data);
	free(env.rcpts);
	return r;
}

int main(int argc, char **argv)
{
	struct job job = { .fd = -1 };
	const char *flag = NULL;
	bool setid = getuid() != geteuid() || getgid() != getegid();

	if (argc == 3 && strcmp(argv[1], "-C") == 0)
		flag = argv[2];
	else if (argc != 1) {
		fprintf(stderr, "usage: tern-queue [-C FILE] <message 0<&- envelope 1<&-\n");
		return EXIT_BUG;
	}
	umask(077);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGXFSZ, SIG_IGN);	/* over a file-size limit: EFBIG, exit 53 */
	current_job = &job;
	signal(SIGALRM, on_alarm);
	alarm(QUEUE_TIMEOUT);
	return run(&job, conf_choose_path(setid ? NULL : flag, setid));
}
