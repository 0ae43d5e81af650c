/* store: the messages tern-deliver holds in memory, with their recipients.
 *
 * Promises: find_message() finds a message by its queue id; add_rcpt()
 * adds a whole recipient or none (-1, out of memory) and may move
 * m->rcpts, so no pointer into it survives a call; remove_message()
 * unlinks queue/ID before mess/ID and state/ID (a crash in between leaves
 * only orphans, which cleanup removes), logs "removed" and frees the
 * message.  Nothing here decides what happens to a message. */
#ifndef TERN_STORE_H
#define TERN_STORE_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "spool.h"
#include "util.h"

struct message {
	struct message *prev, *next;
	char id[QID_MAX];
	char *sender;
	time_t queued;
	uint64_t msglen;
	enum spool_format format;	/* TERN2: the message is mess/ID alone */
	struct rcpt_record *rcpts;
	size_t n, cap;
	unsigned inflight;
	bool dirty;		/* rcpts differ from state/ID */
	bool doomed;		/* ternctl delete: remove when idle */
	bool sender_refused;	/* the queue refused a report to the sender for good */
};

/* In the order they were added; walk from head by next. */
struct message_store {
	struct message *head, *tail;
};

struct message *find_message(const struct message_store *store, const char *id);
void append_message(struct message_store *store, struct message *m);
/* Removes M's files from SPOOL, and M from STORE. */
void remove_message(struct message_store *store, const char *spool, struct message *m);
void free_messages(struct message_store *store);

int add_rcpt(struct message *m, const char *addr, const char *orcpt, unsigned hops);
void free_message(struct message *m);

/* Removes SPOOL's state/ID, a leftover when ID has just come in. */
void discard_state(const char *spool, const char *id);

/* Delivered, bounced or expanded: nothing more to do for it. */
bool finished(enum rcpt_state s);

#endif
