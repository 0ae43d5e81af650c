/* dispatch: which due recipients are tried now, and the local deliveries
 * under way.
 *
 * Promises: no walk of all messages: dispatch() takes the messages due
 * now off the store's schedule, first due first (ties in arrival order),
 * routes each one's due recipients (PENDING or DEFERRED, next_try passed,
 * not with a local agent) until no local agent is free, and settles each
 * message it touched; a message is scheduled anew (schedule()) whenever
 * anything happens to it, by its first due recipient not in flight.  A
 * bounce waiting for a free report job never holds up the schedule: its
 * message waits on a list of its own until a job comes free.
 * deliver_locally() hands one recipient to the local agents, marks it
 * in flight and holds its message until collect_deliveries() takes the
 * outcome (a recipient held or returned by a request meanwhile keeps
 * that state over a temporary failure).  next_timeout() is how long the
 * main loop may sleep: until the first message, cleanup or scan is due,
 * or a deadline of the agents' or the reports'. */
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
/* When M next needs a look: its first due recipient not in flight, or
 * its bounce when a report job is free (else M waits for one). */
void schedule(struct deliver *d, struct message *m, time_t now);
/* Report jobs came free: as many waiting messages as there are free jobs
 * go back on the schedule. */
void wake_report_waiters(struct deliver *d, time_t now);

#endif
