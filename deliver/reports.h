/* reports: bounces and delay warnings, handed to tern-queue through
 * lib/queue_client without waiting for it.
 *
 * Promises: at most REPORTS_MAX reports wait for tern-queue at once; a
 * report holds its message in flight until check_reports() takes its
 * confirmation or its failure (queue_timeout included), then settles it.
 * send_bounces() reports every FAILED recipient in one RFC 3464 DSN, to
 * the sender, or to the postmaster when the sender is null or refused for
 * good; a report to the postmaster that fails ends there ("dropped").
 * send_delay_warnings() tells the sender once about recipients deferred
 * past delay_warning_after.  A report that cannot start now is tried
 * again retry_first seconds later. */
#ifndef TERN_REPORTS_H
#define TERN_REPORTS_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "queue_client.h"

#define REPORTS_MAX 8		/* reports waiting for tern-queue at once */

struct deliver;
struct message;

/* A report (a bounce or a delay warning) handed to tern-queue, whose
 * confirmation the main loop takes when it comes. */
struct report_job {
	struct queue_client q;
	struct message *msg;	/* NULL: this slot is free */
	size_t *rcpts;		/* indices into msg->rcpts of those it reports on */
	size_t n;
	bool delayed;
	const char *outcome;	/* for the log: "dsn" or "postmaster" */
};

/* A free job, or NULL when REPORTS_MAX are waiting. */
struct report_job *free_report(struct deliver *d);
void send_bounces(struct deliver *d, struct message *m, time_t now);
void send_delay_warnings(struct deliver *d, struct message *m, time_t now);
/* Takes every confirmation that has come; kills what is past queue_timeout. */
void check_reports(struct deliver *d, time_t now);
/* Milliseconds until the first report's deadline; -1 if none waits. */
int reports_timeout(const struct deliver *d);

#endif
