/* tern-queue: takes one message on fd 0 and its envelope on fd 1 (the
 * qmail-queue protocol), and commits both to the spool atomically
 * (queue/commit.h): write tmp/ID, fsync, link to incoming/ID, fsync
 * incoming/, unlink tmp/ID.  It exits 0 only after that; on any failure
 * it removes tmp/ID.  `tern-queue --service` is the queue service
 * instead (queue/service.h). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "commit.h"
#include "conf.h"
#include "log.h"
#include "queue_protocol.h"
#include "service.h"
#include "spool.h"
#include "util.h"

#define QUEUE_TIMEOUT (24 * 3600)
#define COPY_BUFFER (64 * 1024)

struct job {
	struct commit commit;
	char spool[PATH_MAX];
};

static struct job *current_job;	/* only for the alarm handler's cleanup */

static void on_alarm(int sig)
{
	(void)sig;
	if (current_job != NULL && current_job->commit.tmp_path[0] != '\0')
		unlink(current_job->commit.tmp_path);
	if (current_job != NULL && current_job->commit.mess_path[0] != '\0')
		unlink(current_job->commit.mess_path);
	_exit(QQ_TIMEOUT);
}

/* Logs what failed (if WHAT) and drops the message: CODE. */
static int fail(struct job *job, int code, const char *what, int error)
{
	const char *id = job->commit.id[0] != '\0' ? job->commit.id : "-";

	commit_abort(&job->commit);
	if (what != NULL)
		log_event("error", "id=%s what=%s error=%s", id, what,
			  error ? strerror(error) : "none");
	return code;
}

static int fail_commit(struct job *job)
{
	return fail(job, job->commit.outcome, job->commit.what, job->commit.error);
}

static int copy_message(struct job *job)
{
	char *buf = malloc(COPY_BUFFER);
	if (buf == NULL)
		return fail(job, QQ_NO_MEMORY, "malloc", errno);
	for (;;) {
		ssize_t n = read(0, buf, COPY_BUFFER);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int error = errno;
			free(buf);
			return fail(job, QQ_READ_ERROR, "read message", error);
		}
		if (n == 0)
			break;
		if (commit_add_bytes(&job->commit, buf, (size_t)n) != QQ_QUEUED) {
			free(buf);
			return fail_commit(job);
		}
	}
	free(buf);
	return QQ_QUEUED;
}

struct envelope_in {
	char *data;
	size_t len, cap;
};

static int read_envelope(struct job *job, struct envelope_in *e)
{
	e->cap = 4096;
	e->data = malloc(e->cap);
	if (e->data == NULL)
		return fail(job, QQ_NO_MEMORY, NULL, 0);
	for (;;) {
		if (e->len == e->cap) {
			if (e->cap >= SPOOL_ENVELOPE_MAX)
				return fail(job, QQ_REFUSED_PERM, "envelope too large", 0);
			e->cap *= 2;
			char *more = realloc(e->data, e->cap);
			if (more == NULL)
				return fail(job, QQ_NO_MEMORY, NULL, 0);
			e->data = more;
		}
		ssize_t n = read(1, e->data + e->len, e->cap - e->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return fail(job, QQ_READ_ERROR, "read envelope", errno);
		if (n == 0)
			break;
		e->len += (size_t)n;
		if (e->len >= 2 && e->data[e->len - 1] == '\0' && e->data[e->len - 2] == '\0')
			break;	/* possibly the end; verified by the parser */
	}
	return QQ_QUEUED;
}

/* TERN_QID if set (and valid), else a fresh id, into ID. */
static int choose_id(char *id, size_t size)
{
	const char *given = getenv("TERN_QID");

	if (given == NULL) {
		qid_make(id);
		return QQ_QUEUED;
	}
	if (!qid_valid(given)) {
		log_event("error", "id=- what=\"malformed TERN_QID\" error=none");
		return QQ_REFUSED_TEMP;
	}
	str_copy(id, size, given);
	return QQ_QUEUED;
}

static int queue_one(struct job *job, struct envelope_in *env, struct qq_envelope *parsed)
{
	const char *what = NULL;
	int r;

	if ((r = copy_message(job)) != QQ_QUEUED)
		return r;
	if ((r = read_envelope(job, env)) != QQ_QUEUED)
		return r;
	if ((r = qq_envelope_parse(env->data, env->len, parsed, &what)) != QQ_QUEUED)
		return fail(job, r, what, 0);
	if (commit_add_envelope(&job->commit, time(NULL), parsed->sender, parsed->rcpts,
				parsed->nrcpts) != QQ_QUEUED)
		return fail_commit(job);
	struct commit *batch[] = { &job->commit };
	commit_batch(NULL, batch, 1);	/* one message: no threads for it */
	if (job->commit.outcome != QQ_QUEUED)
		return fail(job, job->commit.outcome, job->commit.what, job->commit.error);
	spool_poke(job->spool);
	return QQ_QUEUED;
}

static int run(struct job *job, const char *config_path)
{
	struct tern_conf conf;
	char err[CONF_ERROR_MAX], id[QID_MAX];
	struct envelope_in env = { 0 };
	struct qq_envelope parsed = { 0 };
	int r;

	if (conf_load(&conf, config_path, err, sizeof err) < 0) {
		fprintf(stderr, "tern-queue: %s\n", err);
		return QQ_CONFIG;
	}
	str_copy(job->spool, sizeof job->spool, conf.spool);
	if ((r = choose_id(id, sizeof id)) != QQ_QUEUED)
		return r;
	if (commit_begin(&job->commit, job->spool, id) != QQ_QUEUED)
		return fail_commit(job);
	r = queue_one(job, &env, &parsed);
	free(env.data);
	free(parsed.rcpts);
	return r;
}

int main(int argc, char **argv)
{
	struct job job = { .commit = { .fd = -1 } };
	const char *flag = NULL;
	bool setid = getuid() != geteuid() || getgid() != getegid();
	bool service = argc >= 2 && strcmp(argv[1], "--service") == 0;
	int rest = service ? 2 : 1;

	if (argc == rest + 2 && strcmp(argv[rest], "-C") == 0)
		flag = argv[rest + 1];
	else if (argc != rest) {
		fprintf(stderr, "usage: tern-queue [-C FILE] <message 0<&- envelope 1<&-\n"
				"       tern-queue --service [-C FILE] <listening-socket\n");
		return QQ_BUG;
	}
	umask(077);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGXFSZ, SIG_IGN);	/* over a file-size limit: EFBIG, exit 53 */
	if (service) {
		if (setid) {
			fprintf(stderr, "tern-queue: --service is never run set-id\n");
			return QQ_BUG;
		}
		return service_main(conf_choose_path(flag, false));
	}
	current_job = &job;
	signal(SIGALRM, on_alarm);
	alarm(QUEUE_TIMEOUT);
	return run(&job, conf_choose_path(setid ? NULL : flag, setid));
}
