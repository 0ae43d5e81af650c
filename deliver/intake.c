#include "intake.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "deliver.h"
#include "dispatch.h"
#include "log.h"
#include "requests.h"
#include "trigger.h"
#include "util.h"

#define INCOMING_SCAN_INTERVAL 30	/* seconds; a lost poke strands nothing longer */
#define BACKLOG_READS_PER_PASS 1000	/* messages read from the backlog per pass */

/* ID goes at the end of L, even if L holds it already: 0, or -1. */
static int id_list_append(struct id_list *l, const char *id)
{
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

/* ID goes in L unless L holds it already: 0, or -1. */
static int id_list_add(struct id_list *l, const char *id)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->ids[i], id) == 0)
			return 0;
	return id_list_append(l, id);
}

void id_list_free(struct id_list *l)
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

/* A load from FOLDER failed for a reason that may pass: one from queue/
 * is tried again at the next scan; take_in moves one from incoming/ to
 * queue/ and reads it again there at once. */
static void retry_load(struct deliver *d, const char *folder, const char *id)
{
	if (strcmp(folder, SPOOL_QUEUE) == 0)
		retry_later(d, id);
}

/* ID's files, torn by a crash before tern-queue confirmed them (it
 * confirms only once both are durable): removed, envelope first. */
static void discard_torn(struct deliver *d, const char *folder, const char *id,
			 const char *what)
{
	const char *const folders[] = { folder, SPOOL_MESS, SPOOL_STATE };
	char path[PATH_MAX], text[128];

	snprintf(text, sizeof text, "%s; removed, it was never acknowledged", what);
	log_event("error", "id=%s what=torn error=%s", id, text);
	for (size_t i = 0; i < sizeof folders / sizeof folders[0]; i++)
		if (spool_path(path, sizeof path, d->conf.spool, folders[i], id) == 0)
			unlink(path);
}

/* A torn envelope file is a TERN2 one if ID has a mess/ID. */
static bool has_message_file(struct deliver *d, const char *id)
{
	char path[PATH_MAX];
	struct stat st;

	return spool_path(path, sizeof path, d->conf.spool, SPOOL_MESS, id) == 0 &&
	       lstat(path, &st) == 0;
}

/* Checks that the TERN2 message ENV describes is whole: 0; -1 when it is
 * torn or missing (discarded) or cannot be read now (tried later). */
static int verify_message(struct deliver *d, const char *folder, const char *id,
			  const struct envelope *env)
{
	int fd = spool_open_message(d->conf.spool, SPOOL_QUEUE, id, env->format, env->msglen);

	if (fd == SPOOL_NOT_REGULAR) {
		discard_torn(d, folder, id, "mess/ID is not a regular file");
		return -1;
	}
	int r = fd < 0 ? -1 : spool_check_message(fd, env);
	int error = errno;
	if (fd >= 0)
		close(fd);
	if (r == 0)
		return 0;
	if (error == EBADMSG || error == ENOENT) {
		discard_torn(d, folder, id, error == ENOENT ? "no mess/ID" : "mess/ID torn");
		return -1;
	}
	log_event("error", "id=%s what=read error=%s", id, strerror(error));
	retry_load(d, folder, id);
	return -1;
}

bool window_full(const struct deliver *d)
{
	return d->store.count >= d->conf.active_limit;
}

/* Does the queue no longer fit the window?  (The backlog may name a
 * message twice, or one gone: then it only looks fuller.) */
static bool window_over(const struct deliver *d)
{
	return d->store.count + d->backlog.n > d->conf.active_limit;
}

/* ID waits on disk until WHEN: 0, or -1 if even that cannot be noted. */
static int to_backlog(struct deliver *d, const char *id, time_t when, unsigned flags)
{
	if (wake_queue_add(&d->backlog, id, when, flags) == 0)
		return 0;
	log_event("error", "id=%s what=memory error=\"cannot note the message in the backlog\"",
		  id);
	return -1;
}

bool evict_if_idle(struct deliver *d, struct message *m, time_t now)
{
	bool scheduled = heap_contains(&m->wake);

	if (!window_over(d) || m->inflight > 0 || m->dirty || m->waiting || m->doomed ||
	    (scheduled && m->wake.when <= now))
		return false;
	/* the backlog reads queue/ */
	if (move_to_queue(d, m) < 0) {
		if (!m->doomed)
			return false;
		remove_message(&d->store, d->conf.spool, m);
		return true;
	}
	/* nothing due: one held for good waits for its release on disk alone */
	if (scheduled && to_backlog(d, m->id, m->wake.when, 0) < 0)
		return false;
	forget_message(&d->store, m);
	return true;
}

/* Reads FOLDER/ID (queue/, or incoming/ for a message with no past) and
 * its state into memory, the message verified: the message, or NULL.  A
 * file that is not a regular file, or not a whole message and not a
 * TERN2 one, is logged and left alone; one that is missing is logged
 * unless QUIET_IF_MISSING. */
static struct message *load_from(struct deliver *d, const char *folder, const char *id,
				 bool quiet_if_missing)
{
	char queued[PATH_MAX];
	struct envelope env;
	struct message *known = find_message(&d->store, id);
	bool incoming = strcmp(folder, SPOOL_INCOMING) == 0;

	if (known != NULL || !qid_valid(id))
		return known;
	if (spool_path(queued, sizeof queued, d->conf.spool, folder, id) < 0)
		return NULL;
	int fd = spool_open(queued);
	if (fd == SPOOL_NOT_REGULAR) {
		log_event("error", "id=%s what=open error=\"not a regular file; skipped\"", id);
		return NULL;
	}
	if (fd < 0) {
		if (errno != ENOENT || !quiet_if_missing)
			log_event("error", "id=%s what=open error=%s", id, strerror(errno));
		if (errno != ENOENT)
			retry_load(d, folder, id);
		return NULL;
	}
	int r = spool_read_envelope(fd, &env);
	int error = errno;
	close(fd);
	if (r < 0) {
		if (error == EBADMSG && has_message_file(d, id)) {
			discard_torn(d, folder, id, "envelope file torn");
			return NULL;
		}
		log_event("error", "id=%s what=read error=%s", id, strerror(error));
		if (error != EBADMSG)
			retry_load(d, folder, id);
		return NULL;
	}
	if (env.format == SPOOL_FORMAT_V2 && verify_message(d, folder, id, &env) < 0) {
		spool_free_envelope(&env);
		return NULL;
	}
	struct message *m = new_message();
	if (m == NULL || (m->sender = strdup(env.sender)) == NULL) {
		free(m);
		spool_free_envelope(&env);
		log_event("error", "id=%s what=memory", id);
		retry_load(d, folder, id);
		return NULL;
	}
	str_copy(m->id, sizeof m->id, id);
	m->queued = env.queued;
	m->msglen = env.msglen;
	m->format = env.format;
	m->in_incoming = incoming;
	struct rcpt_record *records;
	size_t nrecords;
	int st = incoming ? 0 : spool_read_state(d->conf.spool, id, &records, &nrecords);
	if (st < 0) {
		log_event("error", "id=%s what=state error=%s", id, strerror(errno));
		if (errno != EBADMSG) {	/* its record may be fine: never guess */
			spool_free_envelope(&env);
			free_message(m);
			retry_load(d, folder, id);
			return NULL;
		}
	}
	if (st == 1) {
		/* spool_read_state's array has room to spare: none kept */
		struct rcpt_record *fitted = nrecords == 0 ? NULL
				: realloc(records, nrecords * sizeof *records);
		m->rcpts = fitted != NULL ? fitted : records;
		m->n = m->cap = nrecords;
	} else {
		for (size_t i = 0; i < env.nrcpts; i++) {
			if (add_rcpt(m, env.rcpts[i], env.rcpts[i], 0) < 0) {
				/* never a message with recipients left out */
				log_event("error", "id=%s what=memory", id);
				spool_free_envelope(&env);
				free_message(m);
				retry_load(d, folder, id);
				return NULL;
			}
		}
	}
	spool_free_envelope(&env);
	m->dirty = false;
	if (append_message(&d->store, m) < 0) {
		log_event("error", "id=%s what=memory", id);
		free_message(m);
		retry_load(d, folder, id);
		return NULL;
	}
	schedule(d, m, time(NULL));
	return m;
}

/* Links incoming/ID to queue/ID: 1 if it did, 0 if queue/ID already was
 * that very file (a take-in cut short by a crash), -2 if there is no
 * incoming/ID, -1 if it stays. */
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
		return -2;	/* not (or no longer) in incoming/ */
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

/* Moves the N messages IDS from incoming/ to queue/ and loads them (or
 * notes them in the backlog).  The move is link, fsync queue/, unlink
 * (never rename alone, which a file system without a journal may lose
 * both names of in a crash): at every moment the message has a durable
 * name.  One fsync serves them all. */
static void move_in(struct deliver *d, char (*ids)[QID_MAX], size_t n)
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
			discard_state(d->conf.spool, ids[i]);
		if (!window_full(d) || to_backlog(d, ids[i], 0, 0) < 0)
			load_from(d, SPOOL_QUEUE, ids[i], false);
	}
	free(linked);
}

int move_to_queue(struct deliver *d, struct message *m)
{
	char folder[PATH_MAX], path[PATH_MAX];

	if (!m->in_incoming)
		return 0;
	int linked = link_in(d, m->id);
	if (linked == -2) {
		/* read in incoming/ while its commit was under way, and taken
		 * back when that failed (the client was refused): not ours */
		log_event("error", "id=%s what=gone error=\"incoming/%s is gone before its move; "
			  "dropped, it was never acknowledged\"", m->id, m->id);
		m->doomed = true;
		errno = ENOENT;
		return -1;
	}
	if (linked < 0) {
		errno = EEXIST;	/* link_in logged why */
		return -1;
	}
	if (spool_path(folder, sizeof folder, d->conf.spool, SPOOL_QUEUE, NULL) < 0 ||
	    fsync_dir(folder) < 0) {
		int error = errno;
		log_event("error", "what=fsync path=%s error=%s", folder, strerror(error));
		if (linked == 1 && spool_path(path, sizeof path, d->conf.spool, SPOOL_QUEUE,
					      m->id) == 0)
			unlink(path);	/* still in incoming/ alone: moved at the next try */
		errno = error;
		return -1;
	}
	if (spool_path(path, sizeof path, d->conf.spool, SPOOL_INCOMING, m->id) == 0)
		unlink(path);
	m->in_incoming = false;
	return 0;
}

int record_state(struct deliver *d, struct message *m)
{
	if (move_to_queue(d, m) < 0)
		return -1;
	return spool_write_state(d->conf.spool, m->id, m->rcpts, m->n);
}

/* Is there a FOLDER/ID, or cannot that be told? */
static bool maybe_in(struct deliver *d, const char *folder, const char *id)
{
	char path[PATH_MAX];
	struct stat st;

	return spool_path(path, sizeof path, d->conf.spool, folder, id) < 0 ||
	       lstat(path, &st) == 0 || errno != ENOENT;
}

/* Takes in the N messages IDS from incoming/.  One with no past (not in
 * memory, not in queue/) is read where it is and stays there until it
 * needs a state/ID (move_to_queue): most are delivered and removed
 * before, and never cost an fsync of queue/.  The others are moved now,
 * one fsync of queue/ for all: those that find the window full, those a
 * crash left in both folders, and a file that did not load and was not
 * discarded (not a whole message, not a regular file: it waits in queue/
 * for the administrator, as any such file there, rather than being read
 * again at every scan).  A TERN1 file is moved once read (its message is
 * in it, and delivery reads it in queue/). */
static void take_in(struct deliver *d, char (*ids)[QID_MAX], size_t n)
{
	size_t moving = 0;

	for (size_t i = 0; i < n; i++) {
		struct message *m = find_message(&d->store, ids[i]);
		if (m != NULL && m->in_incoming)
			continue;	/* taken in already, where it is */
		if (m == NULL && !window_full(d) && !maybe_in(d, SPOOL_QUEUE, ids[i])) {
			discard_state(d->conf.spool, ids[i]);	/* no past: a leftover */
			m = load_from(d, SPOOL_INCOMING, ids[i], false);
			bool loaded = m != NULL;
			if (loaded && m->format != SPOOL_FORMAT_V2 && move_to_queue(d, m) < 0)
				forget_message(&d->store, m);	/* the next scan tries again */
			if (loaded || !maybe_in(d, SPOOL_INCOMING, ids[i]))
				continue;
		}
		if (moving != i)
			memcpy(ids[moving], ids[i], QID_MAX);
		moving++;
	}
	move_in(d, ids, moving);
}

void take_in_one(struct deliver *d, const char *id)
{
	char one[1][QID_MAX];

	/* a request may name anything: only a message in incoming/ */
	if (qid_valid(id) && maybe_in(d, SPOOL_INCOMING, id) && str_copy(one[0], sizeof one[0], id))
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
		if (id_list_append(out, e->d_name) < 0) {	/* names in a folder are unique */
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
int load_queue(struct deliver *d)
{
	struct id_list ids;

	int r = list_folder(d, SPOOL_QUEUE, &ids);
	/* more than the window: all due now, read as the window takes them */
	bool later = r == 0 && ids.n > d->conf.active_limit;
	for (size_t i = 0; r == 0 && i < ids.n; i++) {
		if (!later)
			load_from(d, SPOOL_QUEUE, ids.ids[i], false);
		else if (to_backlog(d, ids.ids[i], 0, 0) < 0)
			r = -1;
	}
	id_list_free(&ids);
	return r == 0 ? 0 : -1;
}

/* The window full while the backlog has mail due: messages that went
 * idle while the queue still fit leave memory now (a walk of the window,
 * at most once a second), lest they hold their places until their next
 * retry. */
static void make_room(struct deliver *d, time_t now)
{
	const struct wake_entry *top = wake_queue_top(&d->backlog);

	if (!window_full(d) || top == NULL || top->when > now || d->last_sweep == now)
		return;
	d->last_sweep = now;
	for (struct message *m = d->store.head, *next; m; m = next) {
		next = m->next;
		evict_if_idle(d, m, now);
	}
}

void take_from_backlog(struct deliver *d, time_t now)
{
	const struct wake_entry *top;
	struct wake_entry e;

	make_room(d, now);

	for (unsigned budget = BACKLOG_READS_PER_PASS; budget > 0 && !window_full(d); budget--) {
		if ((top = wake_queue_top(&d->backlog)) == NULL || top->when > now)
			break;
		wake_queue_pop(&d->backlog, &e);
		if (find_message(&d->store, e.id) != NULL)
			continue;	/* in memory already (a request wanted it) */
		struct message *m = load_from(d, SPOOL_QUEUE, e.id, true);	/* gone: delivered */
		if (m != NULL && (e.flags & WAKE_FLUSHED))
			apply_to_message(d, m, "flush", now);	/* settles: may evict it */
		else if (m != NULL)
			evict_if_idle(d, m, now);	/* not due after all */
	}
}

bool backlog_due(const struct deliver *d, time_t *when)
{
	const struct wake_entry *top = wake_queue_top(&d->backlog);

	if (top == NULL)
		return false;
	*when = (time_t)top->when;
	if (window_full(d) && *when <= d->last_sweep)
		*when = d->last_sweep + 1;	/* make_room's next turn */
	return true;
}

struct message *load_one(struct deliver *d, const char *id)
{
	return load_from(d, SPOOL_QUEUE, id, true);
}

/* Takes in everything in incoming/, and tries again the loads that failed:
 * at every poke, and every INCOMING_SCAN_INTERVAL seconds, so that a
 * message whose poke was lost is not stranded. */
void scan_incoming(struct deliver *d, time_t now)
{
	struct id_list ids, retry = d->retry;

	trigger_keep(d->conf.spool, &d->trigger_fd);
	memset(&d->retry, 0, sizeof d->retry);	/* what fails now goes in anew */
	d->next_scan = now + INCOMING_SCAN_INTERVAL;
	if (list_folder(d, SPOOL_INCOMING, &ids) >= 0) {	/* the rest next time */
		take_in(d, ids.ids, ids.n);
		id_list_free(&ids);
	}
	for (size_t i = 0; i < retry.n; i++) {
		struct message *m = load_from(d, SPOOL_QUEUE, retry.ids[i], false);
		if (m != NULL)
			evict_if_idle(d, m, now);
	}
	id_list_free(&retry);
}
