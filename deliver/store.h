/* store: the messages tern-deliver holds in memory, with their recipients,
 * and the indexes that find them without a walk.
 *
 * Promises: find_message() finds a message by its queue id in O(1)
 * (id_table); the schedule is a heap of the messages that have something
 * due, by when (heap), ties in arrival order, so next_due() is O(1) and
 * schedule_message() O(log n); messages whose only due work is a report
 * that waits for a free report job wait in arrival order on a list of
 * their own.  add_rcpt() adds a whole recipient or none (-1, out of
 * memory) and may move m->rcpts, so no pointer into it survives a call;
 * remove_message() takes a message out of every index, unlinks mess/ID,
 * then its envelope (queue/ID, or incoming/ID for one never moved) and
 * state/ID (a crash in between leaves an envelope without its message,
 * which the next start discards as torn), logs "removed" and frees it.  Nothing here
 * decides what happens to a message, nor when (dispatch.h does). */
#ifndef TERN_STORE_H
#define TERN_STORE_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "heap.h"
#include "id_table.h"
#include "spool.h"
#include "util.h"

struct message {
	struct message *prev, *next;	/* in arrival order */
	struct id_node by_id;
	struct heap_node wake;		/* in the schedule when something is due */
	struct message *prev_waiting, *next_waiting;
	bool waiting;			/* on the list for a report job */
	char id[QID_MAX];
	char *sender;
	time_t queued;
	uint64_t msglen;
	enum spool_format format;	/* TERN2: the message is mess/ID alone */
	struct rcpt_record *rcpts;
	size_t n, cap;
	unsigned char *delivering;	/* per recipient: with a local agent; NULL: none yet */
	unsigned inflight;
	bool dirty;		/* rcpts differ from state/ID */
	bool doomed;		/* ternctl delete, or its commit taken back: remove when idle */
	bool sender_refused;	/* the queue refused a report to the sender for good */
	bool in_incoming;	/* its envelope is still incoming/ID: no state/ID yet */
};

struct message_store {
	struct message *head, *tail;
	struct id_table by_id;
	struct heap schedule;
	struct message *waiting_head, *waiting_tail;
	uint64_t arrivals;
	size_t count;
};

void store_init(struct message_store *store);
struct message *find_message(const struct message_store *store, const char *id);
/* M, made by new_message and not yet stored, goes in: 0, or -1 if out of memory. */
int append_message(struct message_store *store, struct message *m);
/* Removes M's files from SPOOL, and M from STORE. */
void remove_message(struct message_store *store, const char *spool, struct message *m);
/* Takes M out of STORE and frees it, its files left as they are. */
void forget_message(struct message_store *store, struct message *m);
/* Frees every message and index (at exit). */
void free_messages(struct message_store *store);

/* An empty message, or NULL if out of memory. */
struct message *new_message(void);
int add_rcpt(struct message *m, const char *addr, const char *orcpt, unsigned hops);
void free_message(struct message *m);

/* The schedule: M is due at WHEN, or not at all. */
void schedule_message(struct message_store *store, struct message *m, time_t when);
void unschedule_message(struct message_store *store, struct message *m);
/* The first due message if it is due at NOW, else NULL. */
struct message *next_due(const struct message_store *store, time_t now);
/* When the first due message is due; false if none is. */
bool first_wake(const struct message_store *store, time_t *when);

/* The list for a report job: M goes on it once; the first comes off. */
void wait_for_report(struct message_store *store, struct message *m);
struct message *take_waiting(struct message_store *store);

/* Recipient RI of M handed to a local agent, or back: 0, or -1 if out
 * of memory (marking only). */
int set_delivering(struct message *m, size_t ri, bool on);
bool is_delivering(const struct message *m, size_t ri);

/* Removes SPOOL's state/ID, a leftover when ID has just come in. */
void discard_state(const char *spool, const char *id);

/* Delivered, bounced or expanded: nothing more to do for it. */
bool finished(enum rcpt_state s);

#endif
