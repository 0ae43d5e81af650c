/* tern-deliver: the long-running scheduler.  It takes committed messages in
 * from incoming/, hands each local recipient to tern-local (at most
 * local_concurrency at once), retries temporary failures with backoff,
 * bounces permanent ones with an RFC 3464 report through tern-queue, applies
 * ternctl's requests, and removes a message once every recipient is done.
 * It alone records recipient state (state/ID) and removes messages. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "atomic.h"
#include "conf.h"
#include "dsn.h"
#include "log.h"
#include "queue_client.h"
#include "recipient.h"
#include "schedule.h"
#include "spool.h"
#include "util.h"

#define ALIAS_HOPS_MAX 10
#define CLEANUP_INTERVAL 3600
#define OUTPUT_MAX 512
#define DOUBLE_BOUNCE_SENDER "#@[]"
#define COUNTERS_INTERVAL 1
#define LOCK_TRIES 20		/* tenths of a second */
#define SPOOL_OWNER "tern-queue"	/* the set-uid tern-queue's owner */
#define SPOOL_TOP_MODE 0711
#define REPORTS_MAX 8		/* reports waiting for tern-queue at once */
#define INCOMING_SCAN_INTERVAL 30	/* seconds; a lost poke strands nothing longer */

struct message {
	struct message *prev, *next;
	char id[QID_MAX];
	char *sender;
	time_t queued;
	uint64_t msglen;
	struct rcpt_record *rcpts;
	size_t n, cap;
	unsigned inflight;
	bool dirty;		/* rcpts differ from state/ID */
	bool doomed;		/* ternctl delete: remove when idle */
	bool sender_refused;	/* the queue refused a report to the sender for good */
};

struct slot {
	pid_t pid;
	struct message *msg;
	size_t rcpt;
	int out_fd;
	char target[PATH_MAX];
};

/* A report (a bounce or a delay warning) handed to tern-queue, whose
 * confirmation the main loop takes when it comes. */
struct report_job {
	struct queue_client q;
	struct message *msg;	/* NULL: this slot is free */
	size_t *rcpts;		/* indices into msg->rcpts of those it reports on */
	size_t n;
	bool delayed;
	const char *outcome;	/* for the log: "dsn" or "postmaster" */
};

struct counters {
	unsigned long long delivered, deferred, bounced;
	bool changed;
	time_t written;
};

struct id_list {
	char (*ids)[QID_MAX];
	size_t n, cap;
};

struct deliver {
	struct tern_conf conf;
	struct recipient_tables tables;
	char local_program[PATH_MAX];
	char queue_program[PATH_MAX];
	bool have_remote;
	bool as_root;		/* started as root outside an instance */
	struct message *head, *tail;
	struct slot *slots;
	size_t nslots;
	unsigned busy;
	struct report_job reports[REPORTS_MAX];
	int trigger_fd;
	bool stopping;
	time_t next_cleanup;
	time_t next_scan;	/* of incoming/, poke or not */
	struct id_list retry;	/* messages in queue/ whose load failed */
	struct counters counters;
};

static int signal_pipe[2] = { -1, -1 };	/* the handlers' only way in */

static void on_signal(int sig)
{
	unsigned char c = (unsigned char)sig;
	int saved = errno;
	(void)!write(signal_pipe[1], &c, 1);
	errno = saved;
}

/* ---- messages in memory ---- */

static struct message *find_message(struct deliver *d, const char *id)
{
	for (struct message *m = d->head; m; m = m->next)
		if (strcmp(m->id, id) == 0)
			return m;
	return NULL;
}

static int add_rcpt(struct message *m, const char *addr, const char *orcpt, unsigned hops)
{
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 4;
		struct rcpt_record *more = realloc(m->rcpts, cap * sizeof *more);
		if (more == NULL)
			return -1;
		m->rcpts = more;
		m->cap = cap;
	}
	struct rcpt_record *r = &m->rcpts[m->n];
	memset(r, 0, sizeof *r);
	r->addr = strdup(addr);
	r->orcpt = strdup(orcpt);
	r->hops = hops;
	if (r->addr == NULL || r->orcpt == NULL) {
		free(r->addr);
		free(r->orcpt);
		return -1;
	}
	m->n++;
	return 0;
}

static void free_message(struct message *m)
{
	for (size_t i = 0; i < m->n; i++) {
		free(m->rcpts[i].addr);
		free(m->rcpts[i].orcpt);
	}
	free(m->rcpts);
	free(m->sender);
	free(m);
}

static void unlink_message(struct deliver *d, struct message *m)
{
	if (m->prev)
		m->prev->next = m->next;
	else
		d->head = m->next;
	if (m->next)
		m->next->prev = m->prev;
	else
		d->tail = m->prev;
}

static void remove_message(struct deliver *d, struct message *m)
{
	char path[PATH_MAX];

	/* queue/ first: a crash in between leaves only an orphan state file,
	 * which cleanup removes, tern-queue counts as a taken id, and
	 * take_in discards for a message from incoming/ */
	if (spool_path(path, sizeof path, d->conf.spool, SPOOL_QUEUE, m->id) == 0)
		unlink(path);
	if (spool_path(path, sizeof path, d->conf.spool, SPOOL_STATE, m->id) == 0)
		unlink(path);
	log_event("removed", "id=%s", m->id);
	unlink_message(d, m);
	free_message(m);
}

static void discard_state(struct deliver *d, const char *id)
{
	char path[PATH_MAX];

	if (spool_path(path, sizeof path, d->conf.spool, SPOOL_STATE, id) == 0 && unlink(path) == 0)
		log_event("error", "id=%s what=state error=\"a leftover state file, removed\"", id);
}

/* ---- loading messages ---- */

static int id_list_add(struct id_list *l, const char *id)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->ids[i], id) == 0)
			return 0;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		char (*more)[QID_MAX] = realloc(l->ids, cap * sizeof *more);
		if (more == NULL)
			return -1;
		l->ids = more;
		l->cap = cap;
	}
	str_copy(l->ids[l->n++], QID_MAX, id);
	return 0;
}

static void id_list_free(struct id_list *l)
{
	free(l->ids);
	memset(l, 0, sizeof *l);
}

/* A load that failed for a reason that may pass (a read error, memory):
 * tried again at the next scan of incoming/. */
static void retry_later(struct deliver *d, const char *id)
{
	if (id_list_add(&d->retry, id) < 0)
		log_event("error", "id=%s what=memory error=\"cannot note the message for a retry\"",
			  id);
}

/* Reads queue/ID and its state into memory.  A file that is not a
 * regular file, or not a whole message, is logged and left alone. */
static void load_message(struct deliver *d, const char *id)
{
	char queued[PATH_MAX];
	struct envelope env;

	if (find_message(d, id) != NULL || !qid_valid(id))
		return;
	if (spool_path(queued, sizeof queued, d->conf.spool, SPOOL_QUEUE, id) < 0)
		return;
	int fd = spool_open(queued);
	if (fd == SPOOL_NOT_REGULAR) {
		log_event("error", "id=%s what=open error=\"not a regular file; skipped\"", id);
		return;
	}
	if (fd < 0) {
		log_event("error", "id=%s what=open error=%s", id, strerror(errno));
		if (errno != ENOENT)
			retry_later(d, id);
		return;
	}
	int r = spool_read_envelope(fd, &env);
	close(fd);
	if (r < 0) {
		log_event("error", "id=%s what=read error=%s", id, strerror(errno));
		if (errno != EBADMSG)
			retry_later(d, id);
		return;
	}
	struct message *m = calloc(1, sizeof *m);
	if (m == NULL || (m->sender = strdup(env.sender)) == NULL) {
		free(m);
		spool_free_envelope(&env);
		log_event("error", "id=%s what=memory", id);
		retry_later(d, id);
		return;
	}
	str_copy(m->id, sizeof m->id, id);
	m->queued = env.queued;
	m->msglen = env.msglen;
	struct rcpt_record *records;
	size_t nrecords;
	int st = spool_read_state(d->conf.spool, id, &records, &nrecords);
	if (st < 0) {
		log_event("error", "id=%s what=state error=%s", id, strerror(errno));
		if (errno != EBADMSG) {	/* its record may be fine: never guess */
			spool_free_envelope(&env);
			free_message(m);
			retry_later(d, id);
			return;
		}
	}
	if (st == 1) {
		m->rcpts = records;
		m->n = m->cap = nrecords;
	} else {
		for (size_t i = 0; i < env.nrcpts; i++) {
			if (add_rcpt(m, env.rcpts[i], env.rcpts[i], 0) < 0) {
				/* never a message with recipients left out */
				log_event("error", "id=%s what=memory", id);
				spool_free_envelope(&env);
				free_message(m);
				retry_later(d, id);
				return;
			}
		}
	}
	spool_free_envelope(&env);
	m->dirty = false;
	m->prev = d->tail;
	if (d->tail)
		d->tail->next = m;
	else
		d->head = m;
	d->tail = m;
}

/* Links incoming/ID to queue/ID: 1 if it did, 0 if queue/ID already was
 * that very file (a take-in cut short by a crash), -1 if it stays. */
static int link_in(struct deliver *d, const char *id)
{
	char incoming[PATH_MAX], queued[PATH_MAX];
	struct stat in, q;

	if (spool_path(incoming, sizeof incoming, d->conf.spool, SPOOL_INCOMING, id) < 0 ||
	    spool_path(queued, sizeof queued, d->conf.spool, SPOOL_QUEUE, id) < 0)
		return -1;
	if (link(incoming, queued) == 0)
		return 1;
	if (errno == ENOENT)
		return -1;	/* not (or no longer) in incoming/ */
	if (errno != EEXIST) {
		log_event("error", "id=%s what=link error=%s", id, strerror(errno));
		return -1;
	}
	if (lstat(incoming, &in) == 0 && lstat(queued, &q) == 0 && in.st_dev == q.st_dev &&
	    in.st_ino == q.st_ino)
		return 0;
	log_event("error", "id=%s what=link error=\"incoming/%s and queue/%s are different "
		  "files; both left for the administrator\"", id, id, id);
	return -1;
}

/* Moves the N messages IDS from incoming/ to queue/ and loads them.  The
 * move is link, fsync queue/, unlink (never rename alone, which a file
 * system without a journal may lose both names of in a crash): at every
 * moment the message has a durable name.  One fsync serves them all. */
static void take_in(struct deliver *d, char (*ids)[QID_MAX], size_t n)
{
	char folder[PATH_MAX], path[PATH_MAX];
	int *linked = calloc(n ? n : 1, sizeof *linked);
	size_t fresh = 0;

	if (linked == NULL) {
		log_event("error", "what=memory error=\"cannot take in incoming/\"");
		return;	/* the next scan tries again */
	}
	for (size_t i = 0; i < n; i++)	/* a link from before a crash may be unwritten */
		if ((linked[i] = link_in(d, ids[i])) >= 0)
			fresh++;
	if (spool_path(folder, sizeof folder, d->conf.spool, SPOOL_QUEUE, NULL) < 0 ||
	    (fresh > 0 && fsync_dir(folder) < 0)) {
		log_event("error", "what=fsync path=%s error=%s", folder, strerror(errno));
		for (size_t i = 0; i < n; i++)	/* still in incoming/: the next scan */
			if (linked[i] == 1 &&
			    spool_path(path, sizeof path, d->conf.spool, SPOOL_QUEUE, ids[i]) == 0)
				unlink(path);
		free(linked);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (linked[i] < 0 ||
		    spool_path(path, sizeof path, d->conf.spool, SPOOL_INCOMING, ids[i]) < 0)
			continue;
		unlink(path);
		if (linked[i] == 1)	/* it has no past: a state/ID is a leftover */
			discard_state(d, ids[i]);
		load_message(d, ids[i]);
	}
	free(linked);
}

static void take_in_one(struct deliver *d, const char *id)
{
	char one[1][QID_MAX];

	if (str_copy(one[0], sizeof one[0], id))
		take_in(d, one, 1);
}

/* The message names in FOLDER: 0, 1 if memory ran out with only some
 * listed, -1 if it cannot be read. */
static int list_folder(struct deliver *d, const char *folder, struct id_list *out)
{
	char path[PATH_MAX];

	memset(out, 0, sizeof *out);
	if (spool_path(path, sizeof path, d->conf.spool, folder, NULL) < 0)
		return -1;
	DIR *dir = opendir(path);
	if (dir == NULL) {
		log_event("error", "what=opendir path=%s error=%s", path, strerror(errno));
		return -1;
	}
	struct dirent *e;
	while ((e = readdir(dir)) != NULL) {
		if (!qid_valid(e->d_name))
			continue;	/* "." and "..", a *.tmp, anything else */
		if (id_list_add(out, e->d_name) < 0) {
			log_event("error", "what=memory path=%s", path);
			closedir(dir);
			return 1;
		}
	}
	closedir(dir);
	return 0;
}

/* queue/ is listed once, at start: all of it, or tern-deliver does not
 * start (its supervisor starts it again), lest some sit there unseen. */
static int load_queue(struct deliver *d)
{
	struct id_list ids;

	int r = list_folder(d, SPOOL_QUEUE, &ids);
	for (size_t i = 0; r == 0 && i < ids.n; i++)
		load_message(d, ids.ids[i]);
	id_list_free(&ids);
	return r == 0 ? 0 : -1;
}

static void keep_trigger(struct deliver *d);

/* Takes in everything in incoming/, and tries again the loads that failed:
 * at every poke, and every INCOMING_SCAN_INTERVAL seconds, so that a
 * message whose poke was lost is not stranded. */
static void scan_incoming(struct deliver *d, time_t now)
{
	struct id_list ids, retry = d->retry;

	keep_trigger(d);
	memset(&d->retry, 0, sizeof d->retry);	/* what fails now goes in anew */
	d->next_scan = now + INCOMING_SCAN_INTERVAL;
	if (list_folder(d, SPOOL_INCOMING, &ids) >= 0) {	/* the rest next time */
		take_in(d, ids.ids, ids.n);
		id_list_free(&ids);
	}
	for (size_t i = 0; i < retry.n; i++)
		load_message(d, retry.ids[i]);
	id_list_free(&retry);
}

/* ---- outcomes ---- */

static bool finished(enum rcpt_state s)
{
	return s == RCPT_DELIVERED || s == RCPT_BOUNCED || s == RCPT_EXPANDED;
}

static void count(struct deliver *d, unsigned long long *counter)
{
	(*counter)++;
	d->counters.changed = true;
}

static void read_counters(struct deliver *d)
{
	char path[PATH_MAX], name[32];
	unsigned long long value;

	if (spool_path(path, sizeof path, d->conf.spool, SPOOL_CONTROL, "counters") < 0)
		return;
	int fd = spool_open(path);
	if (fd == SPOOL_NOT_REGULAR)
		log_event("error", "what=open path=%s error=\"not a regular file; skipped\"", path);
	FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
	if (f == NULL) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while (fscanf(f, "%31s %llu", name, &value) == 2) {
		if (strcmp(name, "delivered") == 0)
			d->counters.delivered = value;
		else if (strcmp(name, "deferred") == 0)
			d->counters.deferred = value;
		else if (strcmp(name, "bounced") == 0)
			d->counters.bounced = value;
	}
	fclose(f);
}

static void write_counters(struct deliver *d, time_t now, bool force)
{
	char path[PATH_MAX], text[128];

	if (!d->counters.changed || (!force && now - d->counters.written < COUNTERS_INTERVAL))
		return;
	if (spool_path(path, sizeof path, d->conf.spool, SPOOL_CONTROL, "counters") < 0)
		return;
	int len = snprintf(text, sizeof text, "delivered %llu\ndeferred %llu\nbounced %llu\n",
			   d->counters.delivered, d->counters.deferred, d->counters.bounced);
	if (len > 0 && (size_t)len < sizeof text &&
	    atomic_replace(path, NULL, text, (size_t)len, 0600) == 0) {
		d->counters.changed = false;
		d->counters.written = now;
	}
}

static void fail(struct message *m, struct rcpt_record *r, const char *line)
{
	r->state = RCPT_FAILED;
	r->next_try = 0;
	str_copy(r->last_error, sizeof r->last_error, line);
	m->dirty = true;
}

static void defer(struct deliver *d, struct message *m, struct rcpt_record *r,
		  const char *line, time_t now)
{
	r->attempts++;
	if (lifetime_over(m->queued, now, d->conf.queue_lifetime)) {
		char text[SPOOL_ERROR_MAX];
		const char *reason = line;
		char status[16];
		reason = dsn_split_status(line, "4.0.0", status);
		snprintf(text, sizeof text, "4.4.7 queue lifetime exceeded; last error: %s", reason);
		fail(m, r, text);
		return;
	}
	unsigned delay = retry_delay(r->attempts, d->conf.retry_first, d->conf.retry_max,
				     (unsigned)random());
	r->state = RCPT_DEFERRED;
	r->next_try = now + delay;
	str_copy(r->last_error, sizeof r->last_error, line);
	m->dirty = true;
	count(d, &d->counters.deferred);
	log_event("deferred", "id=%s rcpt=%s delay_s=%lld retry_s=%u reason=%s", m->id, r->addr,
		  (long long)(now - m->queued), delay, line);
}

/* ---- bounces ---- */

static void settle(struct deliver *d, struct message *m, time_t now);

static struct report_job *free_report(struct deliver *d)
{
	for (size_t i = 0; i < REPORTS_MAX; i++)
		if (d->reports[i].msg == NULL)
			return &d->reports[i];
	return NULL;
}

static void postmaster_address(struct deliver *d, char *out, size_t size)
{
	char first[ADDR_DOMAIN_MAX + 1];

	if (recipient_first_domain(&d->tables, first, sizeof first) == 0)
		snprintf(out, size, "postmaster@%s", first);
	else
		snprintf(out, size, "postmaster");
}

/* The recipients one DSN reports on, with their status codes. */
struct report {
	struct dsn_rcpt *rcpts;
	char (*codes)[16];
	size_t *index;		/* each one's place in the message */
	size_t n;
};

static bool is_failed(const struct rcpt_record *r)
{
	return r->state == RCPT_FAILED;
}

static bool needs_delay_warning(const struct rcpt_record *r)
{
	return r->state == RCPT_DEFERRED && !r->warned;
}

/* Gathers the recipients of M that WANTED picks; -1 if out of memory. */
static int report_gather(struct report *rep, const struct message *m,
			 bool (*wanted)(const struct rcpt_record *), const char *default_status,
			 time_t now)
{
	rep->n = 0;
	rep->rcpts = calloc(m->n, sizeof *rep->rcpts);
	rep->codes = calloc(m->n, sizeof *rep->codes);
	rep->index = calloc(m->n, sizeof *rep->index);
	if (rep->rcpts == NULL || rep->codes == NULL || rep->index == NULL)
		return -1;
	for (size_t i = 0; i < m->n; i++) {
		const struct rcpt_record *r = &m->rcpts[i];
		if (!wanted(r))
			continue;
		struct dsn_rcpt *out = &rep->rcpts[rep->n];
		out->addr = r->addr;
		out->orcpt = r->orcpt;
		out->diagnostic = dsn_split_status(r->last_error, default_status, rep->codes[rep->n]);
		out->status = rep->codes[rep->n];
		out->last_attempt = now;
		rep->index[rep->n++] = i;
	}
	return 0;
}

static void report_free(struct report *rep)
{
	free(rep->rcpts);
	free(rep->codes);
	free(rep->index);
}

/* The report on REP's recipients of M, written whole into a memory file,
 * so that tern-queue never waits for this process nor this process for it. */
static int report_file(struct deliver *d, struct message *m, const char *to,
		       const struct report *rep, bool delayed)
{
	char path[PATH_MAX];

	if (spool_path(path, sizeof path, d->conf.spool, SPOOL_QUEUE, m->id) < 0)
		return -1;
	int original = spool_open(path);
	if (original < 0)
		return -1;
	int report = memfd_create("tern-report", MFD_CLOEXEC);
	struct dsn_info info = {
		.hostname = d->conf.hostname, .queue_id = m->id, .to = to,
		.arrival = m->queued, .delayed = delayed,
	};
	int r = report < 0 ? -1 : dsn_write(report, &info, rep->rcpts, rep->n, original,
					    m->msglen, d->conf.bounce_max_size);
	close(original);
	if (r == 0 && lseek(report, 0, SEEK_SET) == 0)
		return report;
	if (report >= 0)
		close(report);
	return -1;
}

/* Hands the report on REP's recipients of M from FROM to TO to tern-queue;
 * the job holds M (in flight) until tern-queue confirms or fails.  REP's
 * index moves to the job.  -1 if it could not start. */
static int start_report(struct deliver *d, struct report_job *job, struct message *m,
			const char *from, const char *to, struct report *rep, bool delayed,
			const char *outcome)
{
	struct queue_target target = {
		.program = d->queue_program, .config = d->conf.path, .qid = NULL,
		.timeout = d->conf.queue_timeout,
	};
	size_t envlen;
	char *envelope = queue_envelope(from, (char *[]){ (char *)to }, 1, &envlen);
	int report = envelope == NULL ? -1 : report_file(d, m, to, rep, delayed);
	int r = report < 0 ? -1 : queue_submit(&job->q, &target, report, envelope, envlen);

	free(envelope);
	if (report >= 0)
		close(report);
	if (r < 0)
		return -1;
	job->msg = m;
	job->rcpts = rep->index;
	job->n = rep->n;
	job->delayed = delayed;
	job->outcome = outcome;
	rep->index = NULL;
	m->inflight++;
	return 0;
}

static void mark_bounced(struct deliver *d, struct message *m, struct rcpt_record *r,
			 const char *outcome)
{
	r->state = RCPT_BOUNCED;
	m->dirty = true;
	count(d, &d->counters.bounced);
	log_event("bounced", "id=%s rcpt=%s report=%s reason=%s", m->id, r->addr, outcome,
		  r->last_error);
}

/* Reports every FAILED recipient of M in one DSN, which marks them BOUNCED
 * once tern-queue has it (finish_report). */
static void send_bounces(struct deliver *d, struct message *m, time_t now)
{
	struct report rep;
	struct report_job *job = free_report(d);

	if (strcmp(m->sender, DOUBLE_BOUNCE_SENDER) == 0) {
		/* a failed report to the postmaster: the end */
		for (size_t i = 0; i < m->n; i++)
			if (is_failed(&m->rcpts[i]))
				mark_bounced(d, m, &m->rcpts[i], "dropped");
		return;
	}
	if (job == NULL)
		return;	/* all busy: the next to finish brings it back here */
	if (report_gather(&rep, m, is_failed, "5.0.0", now) < 0) {
		report_free(&rep);
		for (size_t i = 0; i < m->n; i++)
			if (is_failed(&m->rcpts[i]))
				m->rcpts[i].next_try = now + d->conf.retry_first;
		return;
	}
	char postmaster[ADDR_BUFFER + 16];
	const char *to = m->sender, *from = "", *outcome = "dsn";
	if (m->sender[0] == '\0' || m->sender_refused) {
		postmaster_address(d, postmaster, sizeof postmaster);
		to = postmaster;
		from = DOUBLE_BOUNCE_SENDER;
		outcome = "postmaster";
	}
	if (start_report(d, job, m, from, to, &rep, false, outcome) < 0) {
		log_event("error", "id=%s what=bounce error=%s", m->id, "cannot start tern-queue");
		for (size_t i = 0; i < rep.n; i++)
			m->rcpts[rep.index[i]].next_try = now + d->conf.retry_first;
	}
	report_free(&rep);
}

/* delay_warning: tells the sender once about recipients still deferred
 * after delay_warning_after.  Reports never get one. */
static void send_delay_warnings(struct deliver *d, struct message *m, time_t now)
{
	struct report_job *job;

	if (!d->conf.delay_warning || m->sender[0] == '\0' ||
	    strcmp(m->sender, DOUBLE_BOUNCE_SENDER) == 0 ||
	    now - m->queued < (time_t)d->conf.delay_warning_after ||
	    (job = free_report(d)) == NULL)
		return;
	struct report rep;
	if (report_gather(&rep, m, needs_delay_warning, "4.0.0", now) == 0 && rep.n > 0)
		start_report(d, job, m, "", m->sender, &rep, true, "delay_warning");
	report_free(&rep);
}

/* tern-queue has answered JOB with OUTCOME (queue_check's). */
static void finish_report(struct deliver *d, struct report_job *job, int outcome, time_t now)
{
	struct message *m = job->msg;

	if (outcome != 0)
		log_event("error", "id=%s what=%s error=%s", m->id,
			  job->delayed ? "delay_warning" : "bounce",
			  outcome == QUEUE_TIMED_OUT ? "tern-queue timed out"
						     : "tern-queue refused the report");
	/* A bounce the queue can never take (a sender tern-queue refuses)
	 * goes to the postmaster instead; one the postmaster's cannot, ends. */
	bool permanent = queue_refused_permanently(&job->q, outcome);
	bool never = !job->delayed && permanent;
	bool to_postmaster = strcmp(job->outcome, "postmaster") == 0;
	if (never && !to_postmaster)
		m->sender_refused = true;
	for (size_t i = 0; i < job->n; i++) {
		struct rcpt_record *r = &m->rcpts[job->rcpts[i]];
		if (never && to_postmaster && r->state == RCPT_FAILED) {
			mark_bounced(d, m, r, "dropped");
		} else if (never && r->state == RCPT_FAILED) {
			r->next_try = now;
		} else if (job->delayed && (outcome == 0 || permanent)) {
			r->warned = true;	/* a refused one is not tried again */
			m->dirty = true;
			if (outcome == 0)
				log_event("delay_warning", "id=%s rcpt=%s", m->id, r->addr);
		} else if (!job->delayed && r->state == RCPT_FAILED) {
			if (outcome == 0)
				mark_bounced(d, m, r, job->outcome);
			else
				r->next_try = now + d->conf.retry_first;
		}
	}
	free(job->rcpts);
	job->rcpts = NULL;
	job->msg = NULL;
	m->inflight--;
	settle(d, m, now);
}

/* Takes every confirmation that has come; kills what is past queue_timeout. */
static void check_reports(struct deliver *d, time_t now)
{
	for (size_t i = 0; i < REPORTS_MAX; i++) {
		struct report_job *job = &d->reports[i];
		if (job->msg == NULL)
			continue;
		int outcome = queue_check(&job->q);
		if (outcome != QUEUE_PENDING)
			finish_report(d, job, outcome, now);
	}
}

/* Milliseconds until the first report's deadline; -1 if none waits. */
static int reports_timeout(const struct deliver *d)
{
	int wait = -1;

	for (size_t i = 0; i < REPORTS_MAX; i++) {
		if (d->reports[i].msg == NULL)
			continue;
		int left = queue_remaining_ms(&d->reports[i].q);
		if (wait < 0 || left < wait)
			wait = left;
	}
	return wait;
}

/* After a round: bounce what failed, remove what is done, record the rest. */
static void settle(struct deliver *d, struct message *m, time_t now)
{
	bool failed = false, open = false;

	if (m->inflight > 0)
		return;
	if (m->doomed) {
		log_event("deleted", "id=%s", m->id);
		remove_message(d, m);
		return;
	}
	for (size_t i = 0; i < m->n; i++) {
		enum rcpt_state s = m->rcpts[i].state;
		if (s == RCPT_FAILED && m->rcpts[i].next_try <= now)
			failed = true;
		if (!finished(s))
			open = true;
	}
	if (failed) {
		if (m->dirty && spool_write_state(d->conf.spool, m->id, m->rcpts, m->n) == 0)
			m->dirty = false;
		send_bounces(d, m, now);
		if (m->inflight > 0)
			return;	/* its report's end settles it again */
		open = false;
		for (size_t i = 0; i < m->n; i++)
			if (!finished(m->rcpts[i].state))
				open = true;
	}
	if (!open) {
		remove_message(d, m);
		return;
	}
	send_delay_warnings(d, m, now);
	if (m->dirty) {
		if (spool_write_state(d->conf.spool, m->id, m->rcpts, m->n) < 0)
			log_event("error", "id=%s what=state error=%s", m->id, strerror(errno));
		else
			m->dirty = false;
	}
}

/* ---- routing and spawning ---- */

/* Is ADDR already a destination of M (not counting aliases, which are
 * only ways there, nor the alias at EXCEPT being expanded)?  Aliases never
 * count, so a loop keeps expanding until ALIAS_HOPS_MAX stops it. */
static bool already_present(struct message *m, const char *addr, size_t except)
{
	for (size_t i = 0; i < m->n; i++)
		if (i != except && m->rcpts[i].state != RCPT_EXPANDED &&
		    strcasecmp(m->rcpts[i].addr, addr) == 0)
			return true;
	return false;
}


/* Replaces alias recipient R with its targets. */
static void expand_alias(struct deliver *d, struct message *m, size_t ri, const char *list)
{
	char target[TABLE_VALUE_MAX], expanded[TABLE_VALUE_MAX] = "";
	char postmaster[ADDR_BUFFER + 16];
	unsigned hops = m->rcpts[ri].hops + 1;

	if (hops > ALIAS_HOPS_MAX) {
		fail(m, &m->rcpts[ri], "5.4.6 alias loop: too many alias expansions");
		return;
	}
	/* a list from the table fits TARGET whole: no item is cut short */
	while (addr_list_next(&list, target, sizeof target) > 0) {
		char *item = target;
		if (item[0] == '\0')
			continue;
		if (strcasecmp(item, "postmaster") == 0) {
			postmaster_address(d, postmaster, sizeof postmaster);
			item = postmaster;
		}
		if (already_present(m, item, ri))
			continue;
		/* add_rcpt may move m->rcpts: keep no pointer across it */
		char orcpt[ADDR_BUFFER + 16];
		str_copy(orcpt, sizeof orcpt, m->rcpts[ri].orcpt);
		if (add_rcpt(m, item, orcpt, hops) < 0) {
			log_event("error", "id=%s what=memory", m->id);
			return;
		}
		/* a summary for the log: cut short, it still names the first targets */
		size_t len = strlen(expanded);
		if (snprintf(expanded + len, sizeof expanded - len, "%s%s", len ? "," : "", item) < 0)
			expanded[len] = '\0';
	}
	struct rcpt_record *r = &m->rcpts[ri];
	r->state = RCPT_EXPANDED;
	snprintf(r->last_error, sizeof r->last_error, "expanded to %s", expanded[0] ? expanded : "(already listed)");
	m->dirty = true;
	log_event("expanded", "id=%s rcpt=%s to=%s", m->id, r->addr, expanded);
}

/* Does tern-local run as the Maildir's owner, not as tern-deliver?  Only
 * when started as root outside an instance (tern-deliver then works as
 * the spool's owner, with root kept as its saved user id). */
static bool changes_identity(const struct deliver *d)
{
	return d->as_root;
}

/* The uid of the account MAILDIR is delivered as: its owner, as lstat
 * reports it.  A symlink there answers for itself, unless root made it: a
 * user's link must not borrow another account's identity. */
static int maildir_owner(const char *maildir, uid_t *uid)
{
	char path[PATH_MAX];
	struct stat st;

	if (!str_copy(path, sizeof path, maildir))
		return -1;
	for (size_t n = strlen(path); n > 1 && path[n - 1] == '/'; n--)
		path[n - 1] = '\0';	/* "Maildir/" would make lstat follow a link */
	if (lstat(path, &st) < 0)
		return -1;
	if (S_ISLNK(st.st_mode) && st.st_uid == 0 && stat(path, &st) < 0)
		return -1;
	*uid = st.st_uid;
	return 0;
}

/* Takes on the account a Maildir is delivered as (changes_identity): the
 * account LOGIN, else the Maildir's owner; either way that account's
 * passwd entry gives the group and initgroups(3) the supplementary
 * groups (never the Maildir's group).  In the child of a fork only. */
static int drop_privileges(const char *maildir, const char *login)
{
	struct passwd *pw;
	uid_t uid;

	if (geteuid() != 0 && seteuid(0) < 0)
		return -1;	/* back from the spool owner's identity */
	if (login != NULL) {
		pw = getpwnam(login);
	} else {
		if (maildir_owner(maildir, &uid) < 0)
			return -1;
		pw = getpwuid(uid);
	}
	if (pw == NULL || pw->pw_uid == 0)
		return -1;	/* never as root outside an instance */
	uid = pw->pw_uid;
	gid_t gid = pw->pw_gid;
	if (initgroups(pw->pw_name, gid) < 0 || setgid(gid) < 0 || setuid(uid) < 0)
		return -1;
	if (getuid() != uid || geteuid() != uid || getgid() != gid || getegid() != gid)
		return -1;
	return 0;
}

static struct slot *free_slot(struct deliver *d)
{
	for (size_t i = 0; i < d->nslots; i++)
		if (d->slots[i].pid == 0)
			return &d->slots[i];
	return NULL;
}

/* A copy of the message alone, for a tern-local that runs as someone
 * else: the spool file's envelope names every recipient (Bcc too). */
static int message_only(int message, uint64_t length)
{
	int copy = memfd_create("tern-message", MFD_CLOEXEC);
	off_t offset = 0;

	if (copy < 0)
		return -1;
	while ((uint64_t)offset < length) {
		ssize_t n = sendfile(copy, message, &offset, (size_t)(length - (uint64_t)offset));
		if (n <= 0) {
			close(copy);
			return -1;
		}
	}
	if (lseek(copy, 0, SEEK_SET) < 0) {
		close(copy);
		return -1;
	}
	return copy;
}

/* Runs tern-local with the message (LENGTH octets of MESSAGE) as fd 0 and
 * REASON as fd 1.  When the identity stays (an instance, or not root)
 * posix_spawn does it without copying this process, which is much
 * cheaper than fork; otherwise the child of a fork takes on the Maildir
 * owner's identity first, with only the message to read. */
static pid_t start_local(struct deliver *d, int message, uint64_t length, int reason,
			 char **argv, const char *maildir, const char *login)
{
	if (!changes_identity(d)) {
		pid_t pid;
		const int fds[] = { message, reason };
		return spawn_with_fds(&pid, d->local_program, argv, NULL, fds, 2) == 0 ? pid : -1;
	}
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	signals_default();
	if (dup2(reason, 1) < 0)
		_exit(111);
	int copy = message_only(message, length);
	if (copy < 0 || dup2(copy, 0) < 0) {
		dprintf(1, "4.3.0 cannot copy the message for tern-local: %s\n", strerror(errno));
		_exit(111);
	}
	if (drop_privileges(maildir, login) < 0) {
		dprintf(1, "4.3.0 cannot take on the Maildir owner's identity (never root)\n");
		_exit(111);
	}
	execv(d->local_program, argv);
	dprintf(1, "4.3.0 cannot run tern-local: %s\n", strerror(errno));
	_exit(111);
}

static void spawn_local(struct deliver *d, struct message *m, size_t ri,
			const struct resolution *res)
{
	char path[PATH_MAX], length[32];
	struct slot *slot = free_slot(d);
	int out[2];

	if (slot == NULL || spool_path(path, sizeof path, d->conf.spool, SPOOL_QUEUE, m->id) < 0)
		return;
	int fd = spool_open(path);
	if (fd < 0) {
		defer(d, m, &m->rcpts[ri], "4.3.0 cannot open the queued message", time(NULL));
		return;
	}
	if (pipe2(out, O_CLOEXEC) < 0) {
		close(fd);
		defer(d, m, &m->rcpts[ri], "4.3.0 cannot make a pipe for tern-local", time(NULL));
		return;
	}
	snprintf(length, sizeof length, "%llu", (unsigned long long)m->msglen);
	const char *login = res->kind == RESOLVE_SYSTEM ? res->key : NULL;
	char *argv[] = { "tern-local", "--length", length, (char *)res->value,
			 m->rcpts[ri].addr, m->sender, NULL };
	pid_t pid = start_local(d, fd, m->msglen, out[1], argv, res->value, login);
	if (pid < 0) {
		close(fd), close(out[0]), close(out[1]);
		defer(d, m, &m->rcpts[ri], "4.3.0 cannot start tern-local", time(NULL));
		return;
	}
	close(fd);
	close(out[1]);
	fd_nonblock(out[0]);
	slot->pid = pid;
	slot->msg = m;
	slot->rcpt = ri;
	slot->out_fd = out[0];
	str_copy(slot->target, sizeof slot->target, res->value);
	m->inflight++;
	d->busy++;
}

static bool parse_recipient(const char *addr, struct mailbox *mb)
{
	if (addr_parse(addr, mb) == ADDR_OK)
		return true;
	if (strchr(addr, '@') == NULL && strcasecmp(addr, "postmaster") == 0) {
		memset(mb, 0, sizeof *mb);
		str_copy(mb->local, sizeof mb->local, "postmaster");
		return true;
	}
	return false;
}

/* One due recipient: route it.  False when no local slot is left. */
static bool route(struct deliver *d, struct message *m, size_t ri, time_t now)
{
	struct rcpt_record *r = &m->rcpts[ri];
	struct mailbox mb;
	struct resolution res;
	char line[SPOOL_ERROR_MAX];

	if (!parse_recipient(r->addr, &mb)) {
		fail(m, r, "5.1.3 bad recipient address syntax");
		return true;
	}
	recipient_resolve(&d->tables, &mb, &res);
	switch (res.kind) {
	case RESOLVE_MAILBOX:
	case RESOLVE_SYSTEM:
		if (d->busy >= d->nslots)
			return false;
		spawn_local(d, m, ri, &res);
		return true;
	case RESOLVE_ALIAS:
		expand_alias(d, m, ri, res.value);
		return true;
	case RESOLVE_REMOTE:
		defer(d, m, r, "4.4.0 remote delivery is not available: tern-remote is not installed",
		      now);
		return true;
	case RESOLVE_UNKNOWN:
		fail(m, r, "5.1.1 no such user here");
		return true;
	case RESOLVE_POSTMASTER:
		defer(d, m, r, "4.3.0 no mailbox or alias for postmaster; add one to aliases", now);
		return true;
	case RESOLVE_TEMPFAIL:
		snprintf(line, sizeof line, "4.3.0 table %s unreadable; %s", res.failed_table,
			 res.hint);
		log_event("table_error", "table=%s hint=%s", res.failed_table, res.hint);
		defer(d, m, r, line, now);
		return true;
	}
	return true;
}

static bool due(const struct rcpt_record *r, time_t now)
{
	return (r->state == RCPT_PENDING || r->state == RCPT_DEFERRED) && r->next_try <= now;
}

static bool in_flight(const struct deliver *d, const struct message *m, size_t ri)
{
	for (size_t i = 0; i < d->nslots; i++)
		if (d->slots[i].pid != 0 && d->slots[i].msg == m && d->slots[i].rcpt == ri)
			return true;
	return false;
}

static void dispatch(struct deliver *d, time_t now)
{
	/* Tables may have been recompiled: look again at each pass. */
	recipient_tables_close(&d->tables);
	for (struct message *m = d->head, *next; m; m = next) {
		next = m->next;
		bool touched = false;
		for (size_t i = 0; i < m->n && !d->stopping && !m->doomed; i++) {
			if (!due(&m->rcpts[i], now) || (m->inflight && in_flight(d, m, i)))
				continue;
			if (!route(d, m, i, now))
				return;
			touched = true;
		}
		bool failed_due = false;
		for (size_t i = 0; i < m->n; i++)
			if (m->rcpts[i].state == RCPT_FAILED && m->rcpts[i].next_try <= now)
				failed_due = true;
		bool open = false;
		for (size_t i = 0; i < m->n && !open; i++)
			open = !finished(m->rcpts[i].state);
		if (touched || failed_due || m->doomed || !open)
			settle(d, m, now);
	}
}

/* ---- children ---- */

static void finish_delivery(struct deliver *d, struct slot *slot, int status, time_t now)
{
	char output[OUTPUT_MAX + 1];
	ssize_t n = read(slot->out_fd, output, OUTPUT_MAX);

	close(slot->out_fd);
	output[n > 0 ? n : 0] = '\0';
	output[strcspn(output, "\r\n")] = '\0';
	struct message *m = slot->msg;
	struct rcpt_record *r = &m->rcpts[slot->rcpt];
	int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;

	if (code == 0) {
		r->state = RCPT_DELIVERED;
		r->last_error[0] = '\0';
		m->dirty = true;
		count(d, &d->counters.delivered);
		log_event("delivered", "id=%s rcpt=%s to=%s", m->id, r->addr, slot->target);
	} else if (code == 100) {
		fail(m, r, output[0] ? output : "5.0.0 permanent failure in tern-local");
	} else if (r->state != RCPT_HELD && r->state != RCPT_FAILED) {
		/* (held or returned by a request while this delivery ran: kept) */
		if (output[0] == '\0')
			snprintf(output, sizeof output, "4.3.0 tern-local ended with status %d", code);
		defer(d, m, r, output, now);
	}
	slot->pid = 0;
	slot->msg = NULL;
	m->inflight--;
	d->busy--;
	settle(d, m, now);
}

/* Each slot's child by its pid: a report's tern-queue is queue_check's. */
static void reap_children(struct deliver *d)
{
	int status;

	for (size_t i = 0; i < d->nslots; i++) {
		pid_t pid = d->slots[i].pid;
		if (pid > 0 && waitpid(pid, &status, WNOHANG) == pid)
			finish_delivery(d, &d->slots[i], status, time(NULL));
	}
}

/* ---- ternctl's requests ---- */

static void apply_to_message(struct deliver *d, struct message *m, const char *verb, time_t now)
{
	for (size_t i = 0; i < m->n; i++) {
		struct rcpt_record *r = &m->rcpts[i];
		if (strcmp(verb, "flush") == 0 && r->state == RCPT_DEFERRED) {
			r->next_try = now;
		} else if (strcmp(verb, "hold") == 0 &&
			   (r->state == RCPT_PENDING || r->state == RCPT_DEFERRED)) {
			r->state = RCPT_HELD;
			m->dirty = true;
		} else if (strcmp(verb, "release") == 0 && r->state == RCPT_HELD) {
			r->state = RCPT_PENDING;
			r->next_try = now;
			m->dirty = true;
		} else if (strcmp(verb, "bounce") == 0 &&
			   (r->state == RCPT_PENDING || r->state == RCPT_DEFERRED ||
			    r->state == RCPT_HELD)) {
			fail(m, r, "5.0.0 returned to sender by the postmaster");
		}
	}
	if (strcmp(verb, "delete") == 0)
		m->doomed = true;
	/* recorded before the request file goes, even with deliveries in flight */
	if (m->dirty && spool_write_state(d->conf.spool, m->id, m->rcpts, m->n) == 0)
		m->dirty = false;
	settle(d, m, now);
}

static void apply_request(struct deliver *d, char *text, time_t now)
{
	char *save = NULL;
	char *verb = strtok_r(text, " \n", &save);
	bool any = false;

	if (verb == NULL)
		return;
	log_event("request", "verb=%s", verb);
	for (char *id = strtok_r(NULL, " \n", &save); id; id = strtok_r(NULL, " \n", &save)) {
		any = true;
		take_in_one(d, id);	/* it may still be in incoming/ */
		struct message *m = find_message(d, id);
		if (m != NULL)
			apply_to_message(d, m, verb, now);
		else
			log_event("request_unknown", "verb=%s id=%s", verb, id);
	}
	if (!any && strcmp(verb, "flush") == 0)
		for (struct message *m = d->head, *next; m; m = next) {
			next = m->next;
			apply_to_message(d, m, verb, now);
		}
}

static void apply_requests(struct deliver *d, time_t now)
{
	char path[PATH_MAX], file[PATH_MAX];

	if (spool_path(path, sizeof path, d->conf.spool, SPOOL_CONTROL, NULL) < 0)
		return;
	DIR *dir = opendir(path);
	if (dir == NULL)
		return;
	struct dirent *e;
	while ((e = readdir(dir)) != NULL) {
		if (strncmp(e->d_name, "request.", 8) != 0)
			continue;
		if (path_join(file, sizeof file, path, e->d_name) < 0)
			continue;
		int fd = spool_open(file);
		if (fd == SPOOL_NOT_REGULAR) {	/* ternctl makes none such */
			log_event("error", "what=request path=%s error=\"not a regular file; "
				  "removed\"", file);
			unlink(file);
			continue;
		}
		FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
		if (f == NULL) {
			if (fd >= 0)
				close(fd);
			continue;
		}
		char *text = NULL;
		size_t size = 0;
		ssize_t n = getdelim(&text, &size, '\0', f);
		fclose(f);
		if (n < 0) {
			free(text);
			continue;	/* unreadable now: try again at the next poke */
		}
		apply_request(d, text, now);
		free(text);
		unlink(file);
	}
	closedir(dir);
}

/* ---- housekeeping ---- */

static void remove_old_files(const char *folder, time_t now, time_t max_age,
			     bool (*wanted)(const char *name, void *arg), void *arg)
{
	char path[PATH_MAX];
	struct stat st;
	DIR *dir = opendir(folder);

	if (dir == NULL)
		return;
	struct dirent *e;
	while ((e = readdir(dir)) != NULL) {
		if (e->d_name[0] == '.' || path_join(path, sizeof path, folder, e->d_name) < 0)
			continue;
		if (wanted != NULL && !wanted(e->d_name, arg))
			continue;
		if (lstat(path, &st) == 0 && S_ISREG(st.st_mode) && now - st.st_mtime >= max_age) {
			unlink(path);
			log_event("cleanup", "path=%s", path);
		}
	}
	closedir(dir);
}

static bool orphan_state(const char *name, void *arg)
{
	struct deliver *d = arg;
	char path[PATH_MAX];

	if (strstr(name, ".tmp") != NULL)
		return true;
	if (find_message(d, name) != NULL)
		return false;
	static const char *const folders[] = { SPOOL_QUEUE, SPOOL_INCOMING };
	for (size_t i = 0; i < 2; i++) {
		if (spool_path(path, sizeof path, d->conf.spool, folders[i], name) < 0)
			return false;
		if (access(path, F_OK) == 0 || errno != ENOENT)
			return false;
	}
	return true;
}

static bool control_leftover(const char *name, void *arg)
{
	(void)arg;
	return strncmp(name, "tmp.", 4) == 0 || strcmp(name, "counters.tmp") == 0;
}

static void cleanup(struct deliver *d, time_t now)
{
	char path[PATH_MAX];

	if (spool_path(path, sizeof path, d->conf.spool, SPOOL_TMP, NULL) == 0)
		remove_old_files(path, now, SPOOL_TMP_MAX_AGE, NULL, NULL);
	if (spool_path(path, sizeof path, d->conf.spool, SPOOL_STATE, NULL) == 0)
		remove_old_files(path, now, 0, orphan_state, d);
	if (spool_path(path, sizeof path, d->conf.spool, SPOOL_CONTROL, NULL) == 0)
		remove_old_files(path, now, 3600, control_leftover, NULL);
	d->next_cleanup = now + CLEANUP_INTERVAL;
}

/* ---- the loop ---- */

/* The shorter of two poll timeouts, -1 being for ever. */
static int sooner(int a, int b)
{
	if (a < 0)
		return b;
	return b < 0 || a < b ? a : b;
}

static int next_timeout(struct deliver *d, time_t now)
{
	time_t wake = d->next_cleanup < d->next_scan ? d->next_cleanup : d->next_scan;

	for (struct message *m = d->head; m; m = m->next) {
		for (size_t i = 0; i < m->n; i++) {
			const struct rcpt_record *r = &m->rcpts[i];
			bool waiting = r->state == RCPT_PENDING || r->state == RCPT_DEFERRED ||
				       (r->state == RCPT_FAILED && m->inflight == 0 &&
					free_report(d) != NULL);
			if (waiting && !in_flight(d, m, i) && r->next_try < wake)
				wake = r->next_try;
		}
	}
	if (d->counters.changed && d->counters.written + COUNTERS_INTERVAL < wake)
		wake = d->counters.written + COUNTERS_INTERVAL;
	int timeout;
	if (wake <= now)
		timeout = d->busy >= d->nslots ? -1 : 0;
	else
		timeout = wake - now > 3600 ? 3600 * 1000 : (int)((wake - now) * 1000);
	return sooner(timeout, reports_timeout(d));
}

static void drain(int fd)
{
	char buf[512];
	while (read(fd, buf, sizeof buf) > 0)
		;
}

static int open_trigger(struct deliver *d)
{
	char path[PATH_MAX];

	if (spool_path(path, sizeof path, d->conf.spool, SPOOL_TRIGGER, NULL) < 0)
		return -1;
	/* O_RDWR: we hold a writer ourselves, so the FIFO never reports EOF. */
	d->trigger_fd = open(path, O_RDWR | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	if (d->trigger_fd >= 0 && (fstat(d->trigger_fd, &st) < 0 || !S_ISFIFO(st.st_mode))) {
		close(d->trigger_fd);	/* a file would wake us for ever */
		d->trigger_fd = -1;
		errno = ENODEV;
		fprintf(stderr, "tern-deliver: %s: not a FIFO\n", path);
	}
	return d->trigger_fd;
}

/* The trigger removed or replaced under a running tern-deliver (by hand,
 * or a restore) would take every poke elsewhere: each scan checks that
 * the FIFO at its name is the one held open, and makes it anew if not. */
static void keep_trigger(struct deliver *d)
{
	char path[PATH_MAX];
	struct stat named, held;

	if (d->trigger_fd < 0 ||
	    spool_path(path, sizeof path, d->conf.spool, SPOOL_TRIGGER, NULL) < 0)
		return;
	if (lstat(path, &named) == 0 && S_ISFIFO(named.st_mode) &&
	    fstat(d->trigger_fd, &held) == 0 &&
	    named.st_dev == held.st_dev && named.st_ino == held.st_ino)
		return;
	int old = d->trigger_fd;
	if (unlink(path) < 0 && errno != ENOENT) {
		log_event("error", "what=trigger path=%s error=%s", path, strerror(errno));
		return;
	}
	if (spool_create(d->conf.spool) < 0 || open_trigger(d) < 0) {
		log_event("error", "what=trigger path=%s error=%s", path, strerror(errno));
		d->trigger_fd = old;	/* the rescans go on meanwhile */
		return;
	}
	close(old);
	log_event("trigger_renewed", "path=%s", path);
}

static void run_loop(struct deliver *d)
{
	struct pollfd fds[2];

	for (;;) {
		time_t now = time(NULL);
		if (!d->stopping)
			dispatch(d, now);
		write_counters(d, now, false);
		if (d->stopping && d->busy == 0 && reports_timeout(d) < 0)
			break;
		if (now >= d->next_cleanup)
			cleanup(d, now);
		fds[0] = (struct pollfd){ .fd = d->trigger_fd, .events = POLLIN };
		fds[1] = (struct pollfd){ .fd = signal_pipe[0], .events = POLLIN };
		int timeout = d->stopping ? reports_timeout(d) : next_timeout(d, now);
		if (poll(fds, 2, timeout) < 0 && errno != EINTR) {
			log_event("error", "what=poll error=%s", strerror(errno));
			sleep(1);
		}
		if (fds[1].revents & POLLIN) {
			unsigned char sig[64];
			ssize_t n = read(signal_pipe[0], sig, sizeof sig);
			for (ssize_t i = 0; i < n; i++)
				if (sig[i] == SIGTERM || sig[i] == SIGINT)
					d->stopping = true;
			reap_children(d);
		}
		check_reports(d, time(NULL));
		bool poked = fds[0].revents & POLLIN;
		if (poked)
			drain(d->trigger_fd);
		now = time(NULL);
		if (!d->stopping && (poked || now >= d->next_scan)) {
			scan_incoming(d, now);
			apply_requests(d, now);
		}
	}
	write_counters(d, time(NULL), true);
}

/* Makes the spool's top folder, as root, for OWNER (0711: a later socket
 * lives under it; everything below is 0700); an existing one must
 * already be OWNER's.  Says what is wrong on stderr. */
static int make_spool_top(const char *spool, const struct passwd *owner)
{
	struct stat st;
	bool made = mkdir(spool, SPOOL_TOP_MODE) == 0;

	if (!made && errno != EEXIST)
		goto failed;
	int fd = open(spool, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		goto failed;
	if (fstat(fd, &st) < 0 || (made && (fchown(fd, owner->pw_uid, owner->pw_gid) < 0 ||
					    fchmod(fd, SPOOL_TOP_MODE) < 0))) {
		close(fd);
		goto failed;
	}
	close(fd);
	if (!made && st.st_uid != owner->pw_uid) {
		fprintf(stderr, "tern-deliver: %s: owned by uid %lu, not %s (chown -R %s: %s)\n",
			spool, (unsigned long)st.st_uid, SPOOL_OWNER, SPOOL_OWNER, spool);
		return -1;
	}
	return 0;
failed:
	fprintf(stderr, "tern-deliver: %s: %s\n", spool, strerror(errno));
	return -1;
}

#ifdef TERN_SANITIZE
/* LeakSanitizer's check at exit ptraces this process, which its changed
 * credentials forbid: a sanitizer build takes root back for it. */
static void root_for_leak_check(void)
{
	(void)!seteuid(0);
}
#endif

/* From here on works as OWNER (real and effective ids, groups); root
 * stays the saved user id only, for the children that become a Maildir's
 * owner (drop_privileges).  So everything tern-deliver creates in the
 * spool is OWNER's, and the tern-queue it runs for reports is not set-id
 * (it reads tern-deliver's own tern.conf). */
static int become_spool_owner(const struct passwd *owner)
{
	uid_t uid = owner->pw_uid, ruid, euid, suid;
	gid_t gid = owner->pw_gid;

	if (initgroups(owner->pw_name, gid) < 0 || setresgid(gid, gid, gid) < 0 ||
	    setresuid(uid, uid, 0) < 0)
		return -1;
	if (getresuid(&ruid, &euid, &suid) < 0 || ruid != uid || euid != uid || suid != 0 ||
	    getgid() != gid || getegid() != gid)
		return -1;
#ifdef TERN_SANITIZE
	atexit(root_for_leak_check);
#endif
	return 0;
}

/* The spool and its folders, trigger and all: outside an instance, as
 * root, owned by SPOOL_OWNER, whom the set-uid tern-queue runs as. */
static int prepare_spool(struct deliver *d)
{
	const char *spool = d->conf.spool;

	d->as_root = !d->conf.instance && getuid() == 0;
	if (changes_identity(d)) {
		struct passwd *pw = getpwnam(SPOOL_OWNER);
		if (pw == NULL) {
			fprintf(stderr, "tern-deliver: no user %s (make install creates it)\n",
				SPOOL_OWNER);
			return -1;
		}
		if (make_spool_top(spool, pw) < 0)
			return -1;
		if (become_spool_owner(pw) < 0) {
			fprintf(stderr, "tern-deliver: cannot become %s: %s\n", SPOOL_OWNER,
				strerror(errno));
			return -1;
		}
	}
	if (spool_create(spool) < 0) {
		fprintf(stderr, "tern-deliver: %s: %s\n", spool, strerror(errno));
		return -1;
	}
	return 0;
}

/* One tern-deliver a spool: two would deliver everything twice.  The lock
 * goes with the process, kill -9 included; a moment's wait covers a child
 * of a killed one that has not yet reached exec. */
static int lock_spool(struct deliver *d)
{
	char path[PATH_MAX];

	if (spool_path(path, sizeof path, d->conf.spool, SPOOL_CONTROL, "deliver.lock") < 0)
		return -1;
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(stderr, "tern-deliver: %s: %s\n", path, strerror(errno));
		return -1;
	}
	for (int tries = 0; flock(fd, LOCK_EX | LOCK_NB) < 0; tries++) {
		if (errno != EWOULDBLOCK || tries == LOCK_TRIES) {
			fprintf(stderr, "tern-deliver: %s: %s\n", path, errno == EWOULDBLOCK
				? "another tern-deliver is running on this spool" : strerror(errno));
			close(fd);
			return -1;
		}
		struct timespec pause = { 0, 100 * 1000 * 1000 };
		nanosleep(&pause, NULL);
	}
	return 0;	/* fd stays open, and locked, until the process ends */
}

static int setup(struct deliver *d, const char *config_flag)
{
	char err[CONF_ERROR_MAX], path[PATH_MAX];

	if (conf_load(&d->conf, conf_choose_path(config_flag, false), err, sizeof err) < 0) {
		fprintf(stderr, "tern-deliver: %s\n", err);
		return -1;
	}
	if (prepare_spool(d) < 0)
		return -1;
	if (find_program("tern-local", d->local_program, sizeof d->local_program) < 0 ||
	    find_program("tern-queue", d->queue_program, sizeof d->queue_program) < 0) {
		fprintf(stderr, "tern-deliver: cannot find tern-local and tern-queue\n");
		return -1;
	}
	if (lock_spool(d) < 0)
		return -1;
	d->have_remote = find_program("tern-remote", path, sizeof path) == 0;
	recipient_tables_init(&d->tables, &d->conf);
	d->nslots = d->conf.local_concurrency > 0 ? d->conf.local_concurrency : 1;
	d->slots = calloc(d->nslots, sizeof *d->slots);
	if (d->slots == NULL)
		return -1;
	if (open_trigger(d) < 0) {
		fprintf(stderr, "tern-deliver: trigger: %s\n", strerror(errno));
		return -1;
	}
	if (pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		return -1;
	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
	sigaction(SIGCHLD, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGXFSZ, SIG_IGN);	/* over a file-size limit: EFBIG, a write error */
	srandom((unsigned)time(NULL) ^ (unsigned)getpid());
	return 0;
}

int main(int argc, char **argv)
{
	struct deliver d;
	const char *flag = NULL;

	memset(&d, 0, sizeof d);
	d.trigger_fd = -1;
	if (argc == 3 && strcmp(argv[1], "-C") == 0)
		flag = argv[2];
	else if (argc != 1) {
		fprintf(stderr, "usage: tern-deliver [-C FILE]\n");
		return 2;
	}
	umask(077);
	if (setup(&d, flag) < 0)
		return 111;
	time_t now = time(NULL);
	read_counters(&d);
	if (load_queue(&d) < 0) {
		fprintf(stderr, "tern-deliver: cannot list the spool's queue/ whole\n");
		return 111;
	}
	scan_incoming(&d, now);
	cleanup(&d, now);
	apply_requests(&d, now);
	log_event("start", "spool=%s local_concurrency=%zu", d.conf.spool, d.nslots);
	run_loop(&d);
	log_event("stop", "spool=%s", d.conf.spool);
	for (struct message *m = d.head, *next; m; m = next) {
		next = m->next;
		free_message(m);
	}
	recipient_tables_close(&d.tables);
	id_list_free(&d.retry);
	free(d.slots);
	return 0;
}
