/* route: where a due recipient goes, from the tables (recipient.h).
 *
 * Promises: route() takes one due recipient to its next step: a local
 * delivery started (dispatch.h), an alias replaced by its targets (at
 * most ALIAS_HOPS_MAX expansions deep, no target listed twice), a
 * deferral (remote, a postmaster with nowhere to go, an unreadable
 * table: always temporary) or a failure (bad syntax, no such user).  It
 * returns false, and does nothing, when a local delivery is due but no
 * local agent is free. */
#ifndef TERN_ROUTE_H
#define TERN_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

struct deliver;
struct message;

bool route(struct deliver *d, struct message *m, size_t ri, time_t now);

/* "postmaster@" the first local domain, or "postmaster" without one. */
void postmaster_address(struct deliver *d, char *out, size_t size);

#endif
