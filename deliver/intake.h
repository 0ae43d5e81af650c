/* intake: messages into memory, from queue/ at start and from incoming/
 * as they come.
 *
 * Promises: load_queue() loads all of queue/ or fails (-1), lest some sit
 * there unseen; scan_incoming() moves everything in incoming/ to queue/
 * (link, one fsync of queue/ for all, unlink: at every moment a message
 * has a durable name), loads it, and tries again the loads that failed
 * for a reason that may pass; a file that is not a whole message is
 * logged and left alone.  take_in_one() does the same for one id. */
#ifndef TERN_INTAKE_H
#define TERN_INTAKE_H

#include <stddef.h>
#include <time.h>

#include "spool.h"
#include "util.h"

struct deliver;

/* A set of queue ids (no id twice). */
struct id_list {
	char (*ids)[QID_MAX];
	size_t n, cap;
};

void id_list_free(struct id_list *l);

int load_queue(struct deliver *d);
void scan_incoming(struct deliver *d, time_t now);
void take_in_one(struct deliver *d, const char *id);

#endif
