/* intake: messages into memory, from queue/ at start and from incoming/
 * as they come.
 *
 * Promises: load_queue() loads all of queue/ or fails (-1), lest some sit
 * there unseen; scan_incoming() moves everything in incoming/ to queue/
 * (link, one fsync of queue/ for all, unlink: at every moment a message
 * has a durable name), loads it, and tries again the loads that failed
 * for a reason that may pass.  Every message is verified as it is loaded
 * (from queue/ at start too, since a power loss may have torn what this
 * or an earlier run verified in the page cache): a TERN2 message whose
 * envelope or mess/ID is torn or missing is logged and removed (it was
 * never acknowledged, see tern-queue(8)); any other file that is not a
 * whole message is logged and left alone.  take_in_one() does the same
 * for one id. */
#ifndef TERN_INTAKE_H
#define TERN_INTAKE_H

#include <stddef.h>
#include <time.h>

#include "spool.h"
#include "util.h"

struct deliver;

/* A list of queue ids. */
struct id_list {
	char (*ids)[QID_MAX];
	size_t n, cap;
};

void id_list_free(struct id_list *l);

int load_queue(struct deliver *d);
void scan_incoming(struct deliver *d, time_t now);
void take_in_one(struct deliver *d, const char *id);

#endif
