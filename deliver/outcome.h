/* outcome: what a recipient's attempt comes to, and what follows for its
 * message.
 *
 * Promises: fail() marks a recipient FAILED (bounced at the next settle);
 * defer() counts an attempt and schedules the next by retry_delay(), or
 * fails it once queue_lifetime is over; delivered() marks it DELIVERED;
 * each logs as tern-deliver(8) says and counts in control/counters
 * (written at most every COUNTERS_INTERVAL seconds, or when forced).
 * settle() runs after anything happened to a message: when nothing of
 * it is in flight, it removes a doomed or finished message, starts its
 * bounce or delay warning, and records the recipients' state in state/ID
 * when they changed; a message it keeps it schedules anew (dispatch.h),
 * and takes out of memory if the window is over and nothing of it is due
 * (intake.h). */
#ifndef TERN_OUTCOME_H
#define TERN_OUTCOME_H

#include <stdbool.h>
#include <time.h>

#include "spool.h"

#define COUNTERS_INTERVAL 1	/* seconds between writes of control/counters */

struct deliver;
struct message;

struct counters {
	unsigned long long delivered, deferred, bounced;
	bool changed;
	time_t written;
};

void count(struct deliver *d, unsigned long long *counter);
void read_counters(struct deliver *d);
void write_counters(struct deliver *d, time_t now, bool force);

void fail(struct message *m, struct rcpt_record *r, const char *line);
void defer(struct deliver *d, struct message *m, struct rcpt_record *r, const char *line,
	   time_t now);
void delivered(struct deliver *d, struct message *m, struct rcpt_record *r, const char *target);
/* OUTCOME names the report for the log: "dsn", "postmaster", "dropped". */
void mark_bounced(struct deliver *d, struct message *m, struct rcpt_record *r,
		  const char *outcome);

/* False if M is gone (removed, or out of the window: freed). */
bool settle(struct deliver *d, struct message *m, time_t now);

#endif
