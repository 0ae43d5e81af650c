/* dispatch: which due recipients are tried now, and the local deliveries
 * under way.
 *
 * Promises: dispatch() routes every due recipient (PENDING or DEFERRED,
 * next_try passed, not in flight) of every message, in the order they
 * came, until no local agent is free, and settles each message it
 * touched; deliver_locally() hands one recipient to the local agents and
 * holds its message in flight until collect_deliveries() takes the
 * outcome (a recipient held or returned by a request meanwhile keeps
 * that state over a temporary failure).  next_timeout() is how long the
 * main loop may sleep: until the first recipient, cleanup or scan is
 * due, or a deadline of the agents' or the reports'. */
#ifndef TERN_DISPATCH_H
#define TERN_DISPATCH_H

#include <stddef.h>
#include <time.h>

struct deliver;
struct message;
struct resolution;

void dispatch(struct deliver *d, time_t now);
int next_timeout(struct deliver *d, time_t now);
void deliver_locally(struct deliver *d, struct message *m, size_t ri,
		     const struct resolution *res);
void collect_deliveries(struct deliver *d);
/* The shorter of two poll timeouts, -1 being for ever. */
int sooner(int a, int b);
/* Frees the tickets of deliveries never collected (at exit). */
void drop_tickets(struct deliver *d);

#endif
