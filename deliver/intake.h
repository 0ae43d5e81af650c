/* intake: messages into memory, from queue/ at start and from incoming/
 * as they come, and out of it again when the queue outgrows the window.
 *
 * Promises: load_queue() lists all of queue/ or fails (-1), lest some sit
 * there unseen; scan_incoming() takes in everything in incoming/ and
 * tries again the loads that failed for a reason that may pass.  A new
 * message is read where it is, in incoming/, and stays there until it
 * needs a state/ID: most are delivered and removed before, and cost no
 * fsync of queue/.  move_to_queue() moves one (link, fsync queue/,
 * unlink: at every moment a message has a durable name), and
 * record_state() moves it before it writes its state/ID, so a message in
 * incoming/ never has one and a restart takes it in as new (every
 * recipient due: at least once).  What finds the window full, a TERN1
 * file, and one a crash left in both folders are moved at take-in, one
 * fsync of queue/ for all.  Every message is verified as it is loaded
 * (from queue/ at start too, since a power loss may have torn what this
 * or an earlier run verified in the page cache): a TERN2 message whose
 * envelope or mess/ID is torn or missing is logged and removed (it was
 * never acknowledged, see tern-queue(8)); any other file that is not a
 * whole message is logged and left alone.  take_in_one() does the same
 * for one id.
 *
 * The active window: at most active_limit messages are in memory
 * (tern.conf(5)), with their recipients; while the whole queue fits, all
 * of it is.  Beyond, the backlog (lib/wake_queue.h) knows the others by
 * id and when they are next due, and nothing else: queue/ at start when
 * it holds more than the window (all due at once), new mail while the
 * window is full, and every message evict_if_idle() takes out of memory
 * (nothing in flight, its state recorded, nothing due before its next
 * retry).  take_from_backlog() reads the backlog's due messages back
 * (verified again), at most BACKLOG_READS_PER_PASS a pass, while the
 * window has room; a message gone meanwhile is skipped.  When the window
 * is full of messages that went idle while the queue still fit and the
 * backlog has mail due, those leave memory (a walk of the window, at most
 * once a second).  load_one() reads one message by id whatever the
 * window holds (for a request). */
#ifndef TERN_INTAKE_H
#define TERN_INTAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "spool.h"
#include "util.h"

struct deliver;
struct message;

/* A list of queue ids. */
struct id_list {
	char (*ids)[QID_MAX];
	size_t n, cap;
};

void id_list_free(struct id_list *l);

int load_queue(struct deliver *d);
void scan_incoming(struct deliver *d, time_t now);
void take_in_one(struct deliver *d, const char *id);

/* M from incoming/ to queue/, if it is not there yet: 0, or -1 (errno
 * set, logged; it stays in incoming/).  If incoming/ID is gone (read while
 * its commit was under way, then taken back when that failed: the client
 * was refused), -1 with ENOENT and M doomed: it is removed, and never
 * reported. */
int move_to_queue(struct deliver *d, struct message *m);
/* M's recipients into state/ID, M moved to queue/ first: 0, or -1 with
 * errno set. */
int record_state(struct deliver *d, struct message *m);

bool window_full(const struct deliver *d);
/* True if M left memory (freed: no pointer to it stays good). */
bool evict_if_idle(struct deliver *d, struct message *m, time_t now);
void take_from_backlog(struct deliver *d, time_t now);
/* When the backlog next needs a look: its first message's time, or with
 * the window full, no sooner than the next chance to make room. */
bool backlog_due(const struct deliver *d, time_t *when);
/* The message ID, read from queue/ if not in memory; NULL if there is none. */
struct message *load_one(struct deliver *d, const char *id);

#endif
